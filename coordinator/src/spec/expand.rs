use std::collections::HashSet;

use widesweep_arch::{BlockPattern, Dataset, MAX_BLOCKS_PER_GROUP, WrnConfig, widen};

use super::cell::conv_layers;
use super::engine::ParamAxis;
use super::training::{Choice, RecipeAxis, cell_training};
use super::{CellConfig, JobSpec, Spec, SpecError};

/// How `depth` in a spec maps to blocks per group N.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepthConvention {
    /// depth = 3 * N * l + 4: the paper's count of layers (Tables 3 to 6).
    ConvLayers,
    /// N = (depth - 4) / 6 for every block type: the nominal depth of the
    /// paper's block-type study (Table 2).
    Nominal,
}

impl DepthConvention {
    pub fn name(self) -> &'static str {
        match self {
            DepthConvention::ConvLayers => "conv-layers",
            DepthConvention::Nominal => "nominal",
        }
    }
}

/// Depths and blocks per group, range-checked by the parser (see `raw`).
#[derive(Clone, Debug)]
pub(super) enum DepthAxis {
    Depth(Vec<u32>),
    BlocksPerGroup(Vec<u32>),
}

/// A set of axes; in a grid or a case every present axis multiplies.
#[derive(Clone, Debug)]
pub(super) struct Grid {
    pub blocks: Option<Vec<BlockPattern>>,
    pub depth: Option<DepthAxis>,
    pub widths: Option<Vec<u32>>,
    pub dropouts: Option<Vec<f64>>,
    pub datasets: Option<Vec<Dataset>>,
    /// The recipe's fields as axes, in the order a grid lists them.
    pub recipe: Vec<RecipeAxis>,
    /// `candle` and command engines' names.
    pub engines: Option<Vec<String>>,
    /// Free-form axes of a command engine, by name.
    pub params: Vec<ParamAxis>,
}

#[derive(Clone, Debug)]
pub(super) struct Case(pub Grid);

#[derive(Clone, Debug)]
pub(super) struct Exclusion(pub Grid);

/// The cells and jobs of a spec.
#[derive(Clone, Debug)]
pub struct Expansion {
    /// Distinct cells in spec order: grid cells, then cases.
    pub cells: Vec<CellConfig>,
    /// One job per cell and seed, cell-major.
    pub jobs: Vec<JobSpec>,
    /// The adaptive seeds' reserve: one job per cell and reserve seed,
    /// cell-major; stored but not leased until the coordinator adds it to
    /// its cell. Empty for a list of seeds.
    pub reserve: Vec<JobSpec>,
}

impl Grid {
    fn product(&self) -> Option<u64> {
        let blocks = self.blocks.as_ref().map_or(1, Vec::len) as u64;
        let depths = match &self.depth {
            Some(DepthAxis::Depth(d)) | Some(DepthAxis::BlocksPerGroup(d)) => d.len() as u64,
            None => 1,
        };
        let widths = self.widths.as_ref().map_or(1, Vec::len) as u64;
        let dropouts = self.dropouts.as_ref().map_or(1, Vec::len) as u64;
        let datasets = self.datasets.as_ref().map_or(1, Vec::len) as u64;
        let mut product =
            blocks.checked_mul(depths)?.checked_mul(widths)?.checked_mul(dropouts)?.checked_mul(datasets)?;
        for axis in &self.recipe {
            product = product.checked_mul(axis.values.len() as u64)?;
        }
        for axis in &self.params {
            product = product.checked_mul(axis.values.len() as u64)?;
        }
        product.checked_mul(self.engines.as_ref().map_or(1, Vec::len) as u64)
    }

    /// Every combination of the training axes: an engine and a dataset
    /// (or the spec's), one value of each recipe axis and of each param.
    fn trainings(&self) -> Vec<Choice<'_>> {
        let engines: Vec<Option<&str>> = match &self.engines {
            Some(engines) => engines.iter().map(|e| Some(e.as_str())).collect(),
            None => vec![None],
        };
        let datasets: Vec<Option<Dataset>> = match &self.datasets {
            Some(datasets) => datasets.iter().copied().map(Some).collect(),
            None => vec![None],
        };
        let mut combinations: Vec<Choice> = engines
            .iter()
            .flat_map(|&engine| datasets.iter().map(move |&dataset| Choice { engine, dataset, ..Choice::default() }))
            .collect();
        for axis in &self.recipe {
            combinations = combinations
                .into_iter()
                .flat_map(|choice| {
                    axis.values.iter().map(move |value| {
                        let mut choice = choice.clone();
                        choice.fields.push((axis.field, value));
                        choice
                    })
                })
                .collect();
        }
        for axis in &self.params {
            combinations = combinations
                .into_iter()
                .flat_map(|choice| {
                    axis.values.iter().map(move |value| {
                        let mut choice = choice.clone();
                        choice.params.push((axis.name.as_str(), value));
                        choice
                    })
                })
                .collect();
        }
        combinations
    }

    fn cells(&self, section: &str, spec: &Spec) -> Result<Vec<CellConfig>, SpecError> {
        let convention = spec.depth_convention;
        let trainings = self
            .trainings()
            .into_iter()
            .map(|choice| cell_training(spec, section, &choice))
            .collect::<Result<Vec<_>, _>>()?;
        let default_blocks = vec![BlockPattern::basic()];
        let blocks = self.blocks.as_ref().unwrap_or(&default_blocks);
        let widths = self.widths.as_deref().unwrap_or_default();
        let default_dropouts = vec![0.0];
        let dropouts = self.dropouts.as_ref().unwrap_or(&default_dropouts);
        let mut cells = Vec::new();
        for block in blocks {
            let depths: Vec<(u32, u32)> = match &self.depth {
                Some(DepthAxis::Depth(depths)) => depths
                    .iter()
                    .map(|&d| blocks_for(d, block, convention, section).map(|n| (n, d)))
                    .collect::<Result<_, _>>()?,
                // N is at most MAX_BLOCKS_PER_GROUP (checked by the parser):
                // neither depth can overflow.
                Some(DepthAxis::BlocksPerGroup(ns)) => ns
                    .iter()
                    .map(|&n| {
                        let depth = match convention {
                            DepthConvention::ConvLayers => conv_layers(n, block),
                            DepthConvention::Nominal => 6 * n + 4,
                        };
                        (n, depth)
                    })
                    .collect(),
                None => Vec::new(),
            };
            for &(blocks_per_group, depth) in &depths {
                for &width in widths {
                    for &dropout in dropouts {
                        for training in &trainings {
                            cells.push(CellConfig {
                                block: block.clone(),
                                blocks_per_group,
                                depth,
                                width,
                                dropout,
                                training: training.clone(),
                            });
                        }
                    }
                }
            }
        }
        Ok(cells)
    }

    /// Whether an exclusion (a partial grid) covers `cell`.
    fn matches(&self, cell: &CellConfig) -> bool {
        self.blocks.as_ref().is_none_or(|b| b.contains(&cell.block))
            && match &self.depth {
                Some(DepthAxis::Depth(d)) => d.contains(&cell.depth),
                Some(DepthAxis::BlocksPerGroup(n)) => n.contains(&cell.blocks_per_group),
                None => true,
            }
            && self.widths.as_ref().is_none_or(|w| w.contains(&cell.width))
            && self.dropouts.as_ref().is_none_or(|d| d.contains(&cell.dropout))
            && self.datasets.as_ref().is_none_or(|d| d.contains(&cell.training.dataset))
            && self.recipe.iter().all(|axis| axis.matches(&cell.training.recipe))
            && self.engines.as_ref().is_none_or(|e| e.contains(&cell.training.engine))
            && self
                .params
                .iter()
                .all(|axis| cell.training.params.get(&axis.name).is_some_and(|value| axis.values.contains(value)))
    }
}

/// Blocks per group N of a `depth` in `convention`: it must divide into
/// whole blocks and give at most [`MAX_BLOCKS_PER_GROUP`] of them; the
/// error names `<section>.depth`.
fn blocks_for(depth: u32, block: &BlockPattern, convention: DepthConvention, section: &str) -> Result<u32, SpecError> {
    let field = format!("{section}.depth");
    let n = match convention {
        DepthConvention::ConvLayers => WrnConfig::blocks_for_depth(widen(depth), block)
            .map_err(|e| SpecError::field(field.clone(), e.to_string()))?,
        DepthConvention::Nominal => {
            if depth > 4 && (depth - 4).is_multiple_of(6) {
                widen((depth - 4) / 6)
            } else {
                let below = depth.saturating_sub(4) / 6 * 6 + 4;
                let below = if below > 4 { below.to_string() } else { "none".to_string() };
                return Err(SpecError::field(
                    field,
                    format!(
                        "nominal depth {depth} is not 6N + 4; nearest valid depths: {below}, {}",
                        (depth.saturating_sub(4) / 6 + 1) * 6 + 4
                    ),
                ));
            }
        }
    };
    match u32::try_from(n) {
        Ok(n) if widen(n) <= MAX_BLOCKS_PER_GROUP => Ok(n),
        _ => {
            let per_block = match convention {
                DepthConvention::ConvLayers => 3 * block.deepening(),
                DepthConvention::Nominal => 6,
            };
            Err(SpecError::field(
                field,
                format!(
                    "depth {depth} gives N = {n} {block} blocks per group, more than {MAX_BLOCKS_PER_GROUP}: use a depth from {} to {} ({} convention)",
                    per_block + 4,
                    per_block * MAX_BLOCKS_PER_GROUP + 4,
                    convention.name()
                ),
            ))
        }
    }
}

/// Upper bound of the cell count (grid product plus cases, before
/// exclusions), computed without materialising anything.
pub(super) fn count_cells(spec: &Spec) -> Result<u64, SpecError> {
    let overflow = || SpecError::TooLarge { jobs: u64::MAX, limit: super::MAX_SWEEP_JOBS };
    let mut total = spec.grid.as_ref().map_or(Some(0), Grid::product).ok_or_else(overflow)?;
    for case in &spec.cases {
        total = total.checked_add(case.0.product().ok_or_else(overflow)?).ok_or_else(overflow)?;
    }
    Ok(total)
}

pub(super) fn expand(spec: &Spec) -> Result<Expansion, SpecError> {
    let mut cells = Vec::new();
    if let Some(grid) = &spec.grid {
        let mut grid_cells = grid.cells("grid", spec)?;
        for (i, exclusion) in spec.exclusions.iter().enumerate() {
            let before = grid_cells.len();
            grid_cells.retain(|cell| !exclusion.0.matches(cell));
            if grid_cells.len() == before {
                return Err(SpecError::field(
                    format!("exclude[{i}]"),
                    "matches no cell of the grid; check its values against the grid's axes",
                ));
            }
        }
        cells.extend(grid_cells.into_iter().map(|c| (c, "grid".to_string())));
    }
    for (i, case) in spec.cases.iter().enumerate() {
        let section = format!("case[{i}]");
        let case_cells = case.0.cells(&section, spec)?;
        cells.extend(case_cells.into_iter().map(|c| (c, section.clone())));
    }

    let mut seen = HashSet::new();
    let mut distinct = Vec::with_capacity(cells.len());
    let all_seeds = spec.all_seeds();
    let mut jobs = Vec::with_capacity(cells.len() * spec.seeds.len());
    let mut reserve = Vec::with_capacity(cells.len() * (all_seeds.len() - spec.seeds.len()));
    for (cell, section) in cells {
        // The starting seeds come first in `all_seeds`, then the reserve.
        for (i, &seed) in all_seeds.iter().enumerate() {
            let job = JobSpec::new(cell.clone(), seed, spec.depth_convention)
                .map_err(|e| SpecError::field(section.clone(), e.to_string()))?;
            if !seen.insert(job.cell_hash.clone()) {
                let training = match cell.training.label() {
                    label if label.is_empty() => label,
                    label => format!(" {label}"),
                };
                return Err(SpecError::field(
                    section,
                    format!(
                        "repeats the cell {} N={} k={} dropout={}{training} already in the spec",
                        cell.block, cell.blocks_per_group, cell.width, cell.dropout
                    ),
                ));
            }
            if i < spec.seeds.len() { jobs.push(job) } else { reserve.push(job) }
        }
        distinct.push(cell);
    }
    Ok(Expansion { cells: distinct, jobs, reserve })
}
