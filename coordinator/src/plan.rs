//! `widesweep plan`: what a spec expands to, and what it will cost: work in
//! the cost model's FLOP-equivalents, and, for a device whose rate has been
//! measured (learnt from reported epochs, see [`DeviceRate`]), hours.

use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::spec::{Expansion, JobSpec, Spec, SpecError};
use crate::store::DeviceRate;
use widesweep_arch::Dataset;

#[derive(Serialize, Debug)]
pub struct PlanReport {
    pub sweep: String,
    pub dataset: Dataset,
    pub depth_convention: String,
    /// The command engines of the spec, by name, as `program arg ...`
    /// (none: candle trains every cell).
    pub engines: std::collections::BTreeMap<String, String>,
    /// The seeds every cell trains from the start.
    pub seeds: Vec<u64>,
    /// Adaptive seeds, when the spec asks for them.
    pub adaptive: Option<PlanAdaptive>,
    pub epochs: u32,
    /// The device the hours are for, with its measured rate.
    pub device: Option<PlanDevice>,
    pub cells: Vec<PlanCell>,
    pub totals: PlanTotals,
}

#[derive(Serialize, Debug)]
pub struct PlanAdaptive {
    /// Seeds a cell may grow to.
    pub max_seeds: u32,
    /// Half-width of the 95 % interval each cell should reach, in percentage points.
    pub target_ci: f64,
}

#[derive(Serialize, Debug)]
pub struct PlanDevice {
    pub name: String,
    /// FLOP-equivalents per second, learnt from `epochs` reported epochs.
    pub rate: f64,
    pub epochs: u64,
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
    /// The cell's values of the training axes ("dataset=mnist lr=0.05"),
    /// empty when it trains the spec's dataset and recipe.
    pub training: String,
    pub params: u64,
    pub forward_macs: u64,
    pub seeds: usize,
    /// The cost model's work of one job, FLOP-equivalents.
    pub work_per_job: f64,
    /// Device-hours of the cell's starting seeds, and of all its seeds when
    /// they are adaptive; with a device only.
    pub hours: Option<f64>,
    pub max_hours: Option<f64>,
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
    /// The cost model's work of every job (training, evaluation, batch-norm
    /// re-estimation, memory traffic), in PFLOP-equivalents.
    pub work_pflops: f64,
    /// With adaptive seeds: jobs and work if every cell uses all its seeds.
    pub max_jobs: Option<usize>,
    pub max_work_pflops: Option<f64>,
    /// Device-hours of the work (and of the most work), with a device only.
    pub hours: Option<f64>,
    pub max_hours: Option<f64>,
}

impl PlanReport {
    /// `device`, when given, turns work into hours at its measured rate.
    pub fn new(spec: &Spec, allow_large: bool, device: Option<&DeviceRate>) -> Result<Self, SpecError> {
        let Expansion { cells, jobs, reserve } = spec.expand(allow_large)?;
        let seeds = spec.seeds.len();
        let max_seeds = spec.all_seeds().len();
        let hours = |work: f64| device.map(|d| work / d.rate() / 3600.0);
        let adaptive = spec.adaptive.is_some();
        let plan_cells: Vec<PlanCell> = cells
            .iter()
            .zip(jobs.chunks(seeds))
            .map(|(cell, cell_jobs)| {
                let work_per_job = cell_jobs[0].work;
                PlanCell {
                    block: cell.block.to_string(),
                    l: cell.block.deepening(),
                    blocks_per_group: cell.blocks_per_group,
                    depth: cell.depth,
                    conv_depth: cell.conv_depth(),
                    width: cell.width,
                    dropout: cell.dropout,
                    training: cell.training.label(),
                    params: cell_jobs[0].params,
                    forward_macs: cell_jobs[0].forward_macs,
                    seeds,
                    work_per_job,
                    hours: hours(work_per_job * seeds as f64),
                    max_hours: hours(work_per_job * max_seeds as f64).filter(|_| adaptive),
                }
            })
            .collect();
        // Each job trains its own cell's recipe on its cell's dataset.
        let epochs: u64 = jobs.iter().map(|j| u64::from(j.recipe().epochs)).sum();
        let images = |j: &JobSpec| u64::from(j.recipe().epochs) * j.recipe().train_images_per_epoch(j.dataset()) as u64;
        let train_images: u64 = jobs.iter().map(images).sum();
        let train_pflops = jobs.iter().map(|j| j.forward_macs as f64 * 6.0 * images(j) as f64).sum::<f64>() / 1e15;
        let work: f64 = jobs.iter().map(|j| j.work).sum();
        let max_work = adaptive.then(|| work + reserve.iter().map(|j| j.work).sum::<f64>());
        Ok(Self {
            sweep: spec.name.clone(),
            dataset: spec.dataset,
            depth_convention: spec.depth_convention.name().to_string(),
            engines: spec.engines.defined.iter().map(|(name, e)| (name.clone(), e.command.join(" "))).collect(),
            seeds: spec.seeds.clone(),
            adaptive: spec.adaptive.map(|a| PlanAdaptive { max_seeds: a.max, target_ci: a.target_ci }),
            epochs: spec.recipe.epochs,
            device: device.map(|d| PlanDevice { name: d.device.clone(), rate: d.rate(), epochs: d.epochs }),
            totals: PlanTotals {
                cells: plan_cells.len(),
                jobs: jobs.len(),
                epochs,
                train_images,
                train_pflops,
                work_pflops: work / 1e15,
                max_jobs: adaptive.then(|| jobs.len() + reserve.len()),
                max_work_pflops: max_work.map(|w| w / 1e15),
                hours: hours(work),
                max_hours: max_work.and_then(hours),
            },
            cells: plan_cells,
        })
    }

    pub fn to_text(&self) -> String {
        let mut header = vec![
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
            "work/job (FLOP-eq)",
        ];
        // Shown only when a cell varies how it trains.
        let training = self.cells.iter().any(|c| !c.training.is_empty());
        if training {
            header.insert(8, "training");
        }
        if self.device.is_some() {
            header.push("device-hours");
        }
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header(header);
        let seeds = match &self.adaptive {
            Some(a) => format!("{}-{}", self.seeds.len(), a.max_seeds),
            None => self.seeds.len().to_string(),
        };
        for (i, cell) in self.cells.iter().enumerate() {
            let mut row = vec![
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
                Cell::new(&seeds),
                Cell::new(si(cell.work_per_job)).set_alignment(CellAlignment::Right),
            ];
            if training {
                row.insert(8, Cell::new(&cell.training));
            }
            if let Some(hours) = cell.hours {
                row.push(Cell::new(range(hours, cell.max_hours, hours_text)).set_alignment(CellAlignment::Right));
            }
            table.add_row(row);
        }
        let t = &self.totals;
        let seeds = match &self.adaptive {
            Some(a) => format!(
                "seeds 1..{} and up to {} per cell while a cell's 95 % interval is wider than +-{} pp",
                self.seeds.len(),
                a.max_seeds,
                a.target_ci
            ),
            None => format!("seeds {:?}", self.seeds),
        };
        let jobs = match t.max_jobs {
            Some(max) => format!("{} to {max}", t.jobs),
            None => t.jobs.to_string(),
        };
        let mut text = format!(
            "sweep {} on {} ({} depth), {seeds}, {} epochs\n{table}\n{} cells, {jobs} jobs, {} epochs, {} training images, {:.2} PFLOP of training compute, {} FLOP-equivalents of work (cost model)\n",
            self.sweep,
            self.dataset,
            self.depth_convention,
            self.epochs,
            t.cells,
            t.epochs,
            group_thousands(t.train_images),
            t.train_pflops,
            range(t.work_pflops * 1e15, t.max_work_pflops.map(|w| w * 1e15), si),
        );
        for (name, command) in &self.engines {
            text += &format!("engine {name}: the command `{command}`\n");
        }
        if let (Some(device), Some(hours)) = (&self.device, t.hours) {
            text += &format!(
                "on {}: {} device-hours in all, at {:.2} TFLOP-eq/s measured over {} reported epochs\n",
                device.name,
                range(hours, t.max_hours, hours_text),
                device.rate / 1e12,
                device.epochs
            );
        }
        text
    }
}

/// `low`, or `low-high` when there is a high end (adaptive seeds).
fn range(low: f64, high: Option<f64>, show: impl Fn(f64) -> String) -> String {
    match high {
        Some(high) => format!("{}-{}", show(low), show(high)),
        None => show(low),
    }
}

/// Hours to three significant digits (whole hours from 1,000 on): a cell
/// of minutes and a sweep of GPU-years both read at a glance.
fn hours_text(hours: f64) -> String {
    if hours >= 1000.0 || hours == 0.0 {
        return group_thousands(hours.round() as u64);
    }
    let decimals = (2 - hours.log10().floor() as i32).max(0) as usize;
    format!("{hours:.decimals$}")
}

/// A count of FLOP-equivalents with an SI prefix: 155.5P, 1.23T.
fn si(value: f64) -> String {
    const PREFIXES: [(f64, &str); 6] = [(1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")];
    match PREFIXES.iter().find(|(scale, _)| value >= *scale) {
        Some((scale, prefix)) => format!("{:.1}{prefix}", value / scale),
        None => format!("{value:.0}"),
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
    fn hours_and_work_read_at_a_glance() {
        assert_eq!(hours_text(0.01234), "0.0123");
        assert_eq!(hours_text(2.5049), "2.50");
        assert_eq!(hours_text(42.42), "42.4");
        assert_eq!(hours_text(38_992.4), "38,992");
        assert_eq!(si(155.538e15), "155.5P");
        assert_eq!(si(2.5e11), "250.0G");
        assert_eq!(si(12.0), "12");
    }

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
        let report = PlanReport::new(&spec, false, None).unwrap();
        assert_eq!(report.cells[0].params, 36_536_884);
        assert_eq!(report.totals.jobs, 2);
        assert_eq!(report.totals.train_images, 2 * 2 * 390 * 128);
        assert!(report.to_text().contains("36,536,884"));
        assert!(report.totals.hours.is_none());
        assert!(!report.to_text().contains("engine"), "candle alone goes unsaid");
    }

    #[test]
    fn a_plan_names_the_commands_that_train_its_cells() {
        let spec = Spec::parse(
            "name = \"t\"\ndataset = \"mnist\"\nseeds = [1]\n[recipe]\nepochs = 2\nlr_milestones = []\n\
             [engine]\ncommand = [\"python3\", \"train.py\"]\n[grid]\nblocks_per_group = [1]\nwidth = [1]\n\
             [grid.params]\nhidden = [32, 64]\n",
        )
        .unwrap();
        let text = PlanReport::new(&spec, false, None).unwrap().to_text();
        assert!(text.contains("engine command: the command `python3 train.py`"), "{text}");
        assert!(text.contains("hidden=32") && text.contains("hidden=64"), "{text}");
    }

    #[test]
    fn each_job_is_counted_with_its_own_training() {
        let spec = Spec::parse(
            "name = \"t\"\ndataset = \"cifar10\"\nseeds = [1]\n[recipe]\nepochs = 2\nlr_milestones = []\n[grid]\ndepth = [16]\nwidth = [1]\nepochs = [2, 4]\ndataset = [\"cifar10\", \"fashion-mnist\"]\n",
        )
        .unwrap();
        let report = PlanReport::new(&spec, false, None).unwrap();
        assert_eq!(report.totals.jobs, 4);
        assert_eq!(report.totals.epochs, 2 + 4 + 2 + 4);
        // 390 full batches of 128 of CIFAR-10's 50,000 images; 468 of Fashion-MNIST's 60,000.
        assert_eq!(report.totals.train_images, 6 * 390 * 128 + 6 * 468 * 128);
        let training: Vec<&str> = report.cells.iter().map(|c| c.training.as_str()).collect();
        assert_eq!(
            training,
            [
                "dataset=cifar10 epochs=2",
                "dataset=cifar10 epochs=4",
                "dataset=fashion-mnist epochs=2",
                "dataset=fashion-mnist epochs=4"
            ]
        );
        assert!(report.to_text().contains("dataset=fashion-mnist epochs=4"));
    }

    #[test]
    fn device_hours_are_the_work_at_the_measured_rate_and_adaptive_seeds_give_a_range() {
        let spec = Spec::parse(
            "name = \"t\"\ndataset = \"cifar10\"\n[seeds]\nstart = 2\nmax = 5\ntarget_ci = 0.3\n[recipe]\nepochs = 2\n[grid]\ndepth = [16, 28]\nwidth = [4]\n",
        )
        .unwrap();
        // 1 PFLOP-equivalent per hour.
        let device = DeviceRate { device: "gpu".to_string(), epochs: 7, work: 1e15, seconds: 3600.0 };
        let report = PlanReport::new(&spec, false, Some(&device)).unwrap();
        let t = &report.totals;
        assert_eq!((t.jobs, t.max_jobs), (4, Some(10)));
        assert!((t.hours.unwrap() - t.work_pflops).abs() < 1e-9 * t.work_pflops);
        assert!((t.max_hours.unwrap() - t.work_pflops * 2.5).abs() < 1e-9 * t.work_pflops);
        let cell = &report.cells[1];
        assert!((cell.hours.unwrap() - 2.0 * cell.work_per_job / 1e15).abs() < 1e-12);
        assert!(report.cells[1].work_per_job > report.cells[0].work_per_job, "WRN-28-4 costs more than WRN-16-4");
        let text = report.to_text();
        assert!(text.contains("up to 5 per cell while a cell's 95 % interval is wider than +-0.3 pp"), "{text}");
        assert!(text.contains("4 to 10 jobs"), "{text}");
        assert!(text.contains("on gpu:"), "{text}");
    }
}
