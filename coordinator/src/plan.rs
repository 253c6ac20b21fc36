//! `widesweep plan`: what a spec expands to, and what it will cost, without
//! touching a database.

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::spec::{Expansion, Spec, SpecError};

#[derive(Serialize, Debug)]
pub struct PlanReport {
    pub sweep: String,
    pub dataset: String,
    pub depth_convention: String,
    pub seeds: Vec<u64>,
    pub epochs: u32,
    pub cells: Vec<PlanCell>,
    pub totals: PlanTotals,
}

#[derive(Serialize, Debug)]
pub struct PlanCell {
    pub block: String,
    /// Convolutions per block (the deepening factor l).
    pub l: usize,
    pub blocks_per_group: u32,
    /// Depth in the spec's convention.
    pub depth: u32,
    /// Depth counted as 3 * N * l + 4 whatever the convention.
    pub conv_depth: u32,
    pub width: u32,
    pub dropout: f64,
    pub params: u64,
    pub forward_macs: u64,
    pub seeds: usize,
}

#[derive(Serialize, Debug)]
pub struct PlanTotals {
    pub cells: usize,
    pub jobs: usize,
    pub epochs: u64,
    /// Training images processed by all jobs (drop-last batches).
    pub train_images: u64,
    /// Training compute: forward MACs x 2 FLOPs x 3 (forward and backward).
    pub train_pflops: f64,
}

impl PlanReport {
    pub fn new(spec: &Spec, allow_large: bool) -> Result<Self, SpecError> {
        let Expansion { cells, jobs } = spec.expand(allow_large)?;
        let recipe = &spec.recipe;
        let per_epoch = recipe.train_images_per_epoch(spec.dataset) as u64;
        let seeds = spec.seeds.len();
        let plan_cells: Vec<PlanCell> = cells
            .iter()
            .zip(jobs.chunks(seeds))
            .map(|(cell, cell_jobs)| PlanCell {
                block: cell.block.to_string(),
                l: cell.block.deepening(),
                blocks_per_group: cell.blocks_per_group,
                depth: cell.depth,
                conv_depth: cell.conv_depth(),
                width: cell.width,
                dropout: cell.dropout,
                params: cell_jobs[0].params,
                forward_macs: cell_jobs[0].forward_macs,
                seeds,
            })
            .collect();
        let epochs = jobs.len() as u64 * recipe.epochs as u64;
        let train_images = epochs * per_epoch;
        let train_pflops =
            jobs.iter().map(|j| j.forward_macs as f64 * 6.0 * per_epoch as f64 * recipe.epochs as f64).sum::<f64>()
                / 1e15;
        Ok(Self {
            sweep: spec.name.clone(),
            dataset: spec.dataset.name().to_string(),
            depth_convention: spec.depth_convention.name().to_string(),
            seeds: spec.seeds.clone(),
            epochs: recipe.epochs,
            totals: PlanTotals { cells: plan_cells.len(), jobs: jobs.len(), epochs, train_images, train_pflops },
            cells: plan_cells,
        })
    }

    pub fn to_text(&self) -> String {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
            "#",
            "block",
            "l",
            "N",
            "depth",
            "conv depth",
            "k",
            "dropout",
            "params",
            "fwd GMAC/img",
            "seeds",
        ]);
        for (i, cell) in self.cells.iter().enumerate() {
            table.add_row(vec![
                Cell::new(i + 1),
                Cell::new(&cell.block),
                Cell::new(cell.l),
                Cell::new(cell.blocks_per_group),
                Cell::new(cell.depth),
                Cell::new(cell.conv_depth),
                Cell::new(cell.width),
                Cell::new(format!("{:.2}", cell.dropout)),
                Cell::new(group_thousands(cell.params)).set_alignment(CellAlignment::Right),
                Cell::new(format!("{:.3}", cell.forward_macs as f64 / 1e9)).set_alignment(CellAlignment::Right),
                Cell::new(cell.seeds),
            ]);
        }
        let t = &self.totals;
        format!(
            "sweep {} on {} ({} depth), seeds {:?}, {} epochs\n{table}\n{} cells, {} jobs, {} epochs, {} training images, {:.2} PFLOP of training compute\n",
            self.sweep,
            self.dataset,
            self.depth_convention,
            self.seeds,
            self.epochs,
            t.cells,
            t.jobs,
            t.epochs,
            group_thousands(t.train_images),
            t.train_pflops,
        )
    }
}

/// 36479194 -> "36,479,194", as the paper's reference counts are written.
pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group_thousands(36_479_194), "36,479,194");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1_000), "1,000");
    }

    #[test]
    fn plan_reports_exact_counts_and_totals() {
        let spec = Spec::parse(
            "name = \"t\"\ndataset = \"cifar100\"\nseeds = [1, 2]\n[recipe]\nepochs = 2\nlr_milestones = []\n[grid]\ndepth = [28]\nwidth = [10]\n",
        )
        .unwrap();
        let report = PlanReport::new(&spec, false).unwrap();
        assert_eq!(report.cells[0].params, 36_536_884);
        assert_eq!(report.totals.jobs, 2);
        assert_eq!(report.totals.train_images, 2 * 2 * 390 * 128);
        assert!(report.to_text().contains("36,536,884"));
    }
}
