//! Sweep specs: parse the user's TOML strictly, validate every field once,
//! and expand the grid, the explicit cases and the exclusions into cells.
//!
//! Parsing happens in two layers, as in ripgrep: [`raw`] holds what the user
//! typed (serde, unknown fields refused), [`Spec::parse`] turns it into what
//! it means (validated domain values). A cell's identity is the SHA-256 of
//! its canonical config, so the same cell hashes the same whatever the
//! order of fields in the file.

mod cell;
mod engine;
mod error;
mod expand;
mod raw;
mod training;

pub use cell::{CellConfig, JobSpec};
pub use engine::{Engines, SINGLE_ENGINE};
pub use error::SpecError;
pub use expand::{DepthConvention, Expansion};
pub use training::Training;
/// The recipe is shared with the worker: one type, one validation.
pub use widesweep_arch::{Recipe, RecipeError};

use widesweep_arch::Dataset;

/// Submitting more jobs than this needs `--allow-large`: a typo in an axis
/// should not silently fill the queue with millions of jobs.
pub const LARGE_SWEEP_JOBS: u64 = 100_000;

/// Hard ceiling even with `--allow-large`, to keep one submission bounded
/// in memory and in transaction size.
pub const MAX_SWEEP_JOBS: u64 = 5_000_000;

/// The longest sweep name; [`NAME_RULE`] says the same number.
const NAME_MAX: usize = 100;

/// What [`valid_name`] accepts, as errors say it.
pub const NAME_RULE: &str = "1 to 100 letters, digits, '-', '_' or '.', not only digits";

/// Whether `name` can name a sweep ([`NAME_RULE`]; an all-digit
/// reference is a sweep's id).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= NAME_MAX
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.chars().all(|c| c.is_ascii_digit())
}

/// A validated sweep spec.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    /// The dataset of cells that do not vary it (a `dataset` axis does).
    pub dataset: Dataset,
    /// The seeds every cell trains from the start.
    pub seeds: Vec<u64>,
    /// Seeds added to a cell while its interval is too wide, when asked for.
    pub adaptive: Option<AdaptiveSeeds>,
    /// The recipe of cells that vary none of its fields.
    pub recipe: Recipe,
    pub depth_convention: DepthConvention,
    /// The `[recipe]` table as written, which each cell's recipe axes are
    /// written over.
    recipe_table: toml::Table,
    /// The command engines the spec defines, and the engine of cells that
    /// name none.
    pub engines: Engines,
    /// The failure budget: the sweep pauses once more than this fraction of
    /// its jobs has failed for good, instead of burning through the queue.
    pub max_failed_fraction: Option<f64>,
    grid: Option<expand::Grid>,
    cases: Vec<expand::Case>,
    exclusions: Vec<expand::Exclusion>,
}

/// `[seeds] start, max, target_ci`: after a cell's jobs finish, the
/// coordinator adds the next seed's job while the cell's 95 % t-interval of
/// the final test error is wider than +-`target_ci` percentage points,
/// up to seed `max`. The seeds are 1, 2, ...: `start` of them from the
/// start, the rest held in reserve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdaptiveSeeds {
    pub max: u32,
    /// Half-width of the 95 % interval, in percentage points.
    pub target_ci: f64,
}

impl Spec {
    /// Every seed a cell may train: the starting ones, then the reserve.
    pub fn all_seeds(&self) -> Vec<u64> {
        match self.adaptive {
            Some(adaptive) => (1..=u64::from(adaptive.max)).collect(),
            None => self.seeds.clone(),
        }
    }

    /// Parses and validates a spec; `origin` (a file name) prefixes errors.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        let raw: raw::RawSpec = toml::from_str(text).map_err(|e| SpecError::Toml(e.to_string()))?;
        raw.validate()
    }

    /// Number of cells (configs without the seed) and of jobs (cells x
    /// seeds, counting the reserve of adaptive seeds: the sweep may grow to
    /// that), computed without materialising the cells.
    pub fn count(&self) -> Result<(u64, u64), SpecError> {
        let cells = expand::count_cells(self)?;
        let jobs = cells
            .checked_mul(self.all_seeds().len() as u64)
            .ok_or(SpecError::TooLarge { jobs: u64::MAX, limit: MAX_SWEEP_JOBS })?;
        Ok((cells, jobs))
    }

    /// Expands the spec into cells and jobs. `allow_large` lifts the
    /// [`LARGE_SWEEP_JOBS`] limit (not [`MAX_SWEEP_JOBS`]).
    pub fn expand(&self, allow_large: bool) -> Result<Expansion, SpecError> {
        let (_, jobs) = self.count()?;
        if jobs > MAX_SWEEP_JOBS {
            return Err(SpecError::TooLarge { jobs, limit: MAX_SWEEP_JOBS });
        }
        if jobs > LARGE_SWEEP_JOBS && !allow_large {
            return Err(SpecError::NeedsAllowLarge { jobs, limit: LARGE_SWEEP_JOBS });
        }
        expand::expand(self)
    }
}

#[cfg(test)]
mod tests;
