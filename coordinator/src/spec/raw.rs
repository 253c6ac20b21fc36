//! What the user typed: the TOML document as serde structs. Unknown fields
//! and duplicate keys are refused by the parser; meaning is checked in
//! [`RawSpec::validate`].
//!
//! Integers are read as TOML's own type, i64, and each is range-checked
//! here, before it is narrowed, with an error naming the field, the value
//! and the range: `depth = [25769803792]` is refused, never truncated into
//! another cell. The recipe's integers are checked the same way by the
//! shared [`Recipe`] type.

use std::ops::RangeInclusive;

use std::collections::BTreeMap;

use serde::Deserialize;
use widesweep_arch::{BlockPattern, CommandEngine, Dataset, MAX_BLOCKS_PER_GROUP, MAX_CONVS_PER_BLOCK, MAX_WIDTH};

use super::engine::{Engines, ParamAxis};
use super::expand::{Case, DepthAxis, DepthConvention, Exclusion, Grid};
use super::training::{RecipeAxis, spec_recipe};
use super::{AdaptiveSeeds, Spec, SpecError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpec {
    name: String,
    dataset: String,
    /// A list of seeds, or a table asking for seeds until each cell's
    /// interval is narrow enough ([`RawAdaptiveSeeds`]).
    seeds: toml::Value,
    #[serde(default)]
    depth_convention: Option<String>,
    /// Kept as written: each cell's recipe axes are written over it before
    /// it is read as a recipe (`training::cell_training`).
    #[serde(default)]
    recipe: toml::Table,
    #[serde(default)]
    grid: Option<RawCellSet>,
    #[serde(default, rename = "case")]
    cases: Vec<RawCellSet>,
    #[serde(default, rename = "exclude")]
    exclusions: Vec<RawCellSet>,
    /// `[engine]`: a command that trains every cell instead of candle.
    #[serde(default)]
    engine: Option<CommandEngine>,
    /// `[engines.NAME]`: commands an `engine` axis picks among.
    #[serde(default)]
    engines: BTreeMap<String, CommandEngine>,
    /// The sweep pauses once more than this fraction of its jobs failed.
    #[serde(default)]
    max_failed_fraction: Option<f64>,
}

/// The two forms of `seeds`, told apart by hand: serde's untagged enums
/// would answer a typo in the table with "did not match any variant".
enum RawSeeds {
    List(Vec<i64>),
    Adaptive(RawAdaptiveSeeds),
}

impl TryFrom<toml::Value> for RawSeeds {
    type Error = SpecError;

    fn try_from(value: toml::Value) -> Result<Self, SpecError> {
        let invalid = |e: toml::de::Error| SpecError::field("seeds", e.message().to_string());
        match value {
            value @ toml::Value::Array(_) => value.try_into().map(RawSeeds::List).map_err(|e| {
                SpecError::field("seeds", format!("{}: give integers, e.g. seeds = [1, 2, 3]", e.message()))
            }),
            value @ toml::Value::Table(_) => value.try_into().map(RawSeeds::Adaptive).map_err(invalid),
            other => Err(SpecError::field(
                "seeds",
                format!(
                    "{other} is invalid: give a list (seeds = [1, 2, 3]) or a table \
                     ([seeds] start = 3, max = 10, target_ci = 0.2)"
                ),
            )),
        }
    }
}

/// `[seeds] start = 3, max = 10, target_ci = 0.2`: every cell trains seeds
/// 1..=start, and gets the next seed while its 95 % interval of the test
/// error is wider than +-target_ci percentage points, up to seed `max`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdaptiveSeeds {
    start: i64,
    max: i64,
    target_ci: f64,
}

/// The fields shared by `[grid]` (lists), `[[case]]` (scalars or lists,
/// expanded as a small grid) and `[[exclude]]` (partial match).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCellSet {
    block: Option<OneOrMany<String>>,
    l: Option<OneOrMany<i64>>,
    depth: Option<OneOrMany<i64>>,
    blocks_per_group: Option<OneOrMany<i64>>,
    width: Option<OneOrMany<i64>>,
    dropout: Option<OneOrMany<f64>>,
    dataset: Option<OneOrMany<String>>,
    // The recipe's fields as axes: every field that changes what a network
    // learns (not `checkpoint_every`, which changes only when the state is
    // saved), read as the recipe reads them.
    epochs: Option<toml::Value>,
    batch_size: Option<toml::Value>,
    lr: Option<toml::Value>,
    lr_milestones: Option<toml::Value>,
    lr_gamma: Option<toml::Value>,
    momentum: Option<toml::Value>,
    nesterov: Option<toml::Value>,
    weight_decay: Option<toml::Value>,
    reset_momentum_on_drop: Option<toml::Value>,
    train_subset: Option<toml::Value>,
    test_subset: Option<toml::Value>,
    augment: Option<toml::Value>,
    precision: Option<toml::Value>,
    bn_recalibration_batches: Option<toml::Value>,
    /// `candle` or the names of the spec's command engines.
    engine: Option<OneOrMany<String>>,
    /// Free-form axes for a command engine (`[grid.params]`).
    params: Option<toml::Table>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(value) => vec![value],
            OneOrMany::Many(values) => values,
        }
    }
}

// The ranges of the spec's integers, from the architecture's own limits
// (usize constants of at most 9604: these casts widen).
const L_RANGE: RangeInclusive<i64> = 1..=MAX_CONVS_PER_BLOCK as i64;
const BLOCKS_PER_GROUP_RANGE: RangeInclusive<i64> = 1..=MAX_BLOCKS_PER_GROUP as i64;
const WIDTH_RANGE: RangeInclusive<i64> = 1..=MAX_WIDTH as i64;
/// Up to the deepest network accepted, N = 200 blocks per group of l = 16
/// convolutions; whether a depth divides into whole blocks of the cell's
/// block type (and gives at most 200 of them) is checked on expansion.
const DEPTH_RANGE: RangeInclusive<i64> = 1..=(3 * MAX_BLOCKS_PER_GROUP * MAX_CONVS_PER_BLOCK + 4) as i64;
/// Seeds are stored as the databases' signed 64-bit integers.
const SEED_RANGE: RangeInclusive<i64> = 0..=i64::MAX;
/// At most this many seeds per cell when seeds are added adaptively.
const MAX_ADAPTIVE_SEEDS: i64 = 100;

impl RawSpec {
    pub(super) fn validate(self) -> Result<Spec, SpecError> {
        let name = self.name.trim().to_string();
        if !super::valid_name(&name) {
            return Err(SpecError::field("name", format!("{:?} is invalid: use {}", self.name, super::NAME_RULE)));
        }
        let dataset: Dataset = self
            .dataset
            .parse()
            .map_err(|e: widesweep_arch::ParseDatasetError| SpecError::field("dataset", e.to_string()))?;
        let (seeds, adaptive) = RawSeeds::try_from(self.seeds)?.validate()?;
        let depth_convention = match self.depth_convention.as_deref() {
            None | Some("conv-layers") => DepthConvention::ConvLayers,
            Some("nominal") => DepthConvention::Nominal,
            Some(other) => {
                return Err(SpecError::field(
                    "depth_convention",
                    format!(
                        "{other:?} is invalid: use \"conv-layers\" (depth = 3*N*l + 4) or \"nominal\" (N = (depth - 4) / 6 for every block, as in the paper's Table 2)"
                    ),
                ));
            }
        };
        let recipe = spec_recipe(dataset, &self.recipe)?;
        let engines = Engines::read(self.engine, self.engines)?;
        let grid = self.grid.map(|g| g.into_grid("grid", true, &engines)).transpose()?;
        let cases = self
            .cases
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.into_grid(&format!("case[{i}]"), true, &engines).map(Case))
            .collect::<Result<Vec<_>, _>>()?;
        let exclusions = self
            .exclusions
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.into_grid(&format!("exclude[{i}]"), false, &engines).map(Exclusion))
            .collect::<Result<Vec<_>, _>>()?;
        if grid.is_none() && cases.is_empty() {
            return Err(SpecError::field("grid", "the spec has neither a [grid] nor any [[case]]: add one"));
        }
        if grid.is_none() && !exclusions.is_empty() {
            return Err(SpecError::field("exclude", "exclusions apply to the [grid], and the spec has none"));
        }
        if let Some(fraction) = self.max_failed_fraction
            && !(fraction > 0.0 && fraction <= 1.0)
        {
            return Err(SpecError::field(
                "max_failed_fraction",
                format!("{fraction} is invalid: give a fraction of the jobs above 0 and at most 1 (e.g. 0.1)"),
            ));
        }
        Ok(Spec {
            max_failed_fraction: self.max_failed_fraction,
            name,
            dataset,
            seeds,
            adaptive,
            recipe,
            depth_convention,
            recipe_table: self.recipe,
            engines,
            grid,
            cases,
            exclusions,
        })
    }
}

impl RawSeeds {
    /// The seeds every cell trains, and the adaptive policy when there is one.
    fn validate(self) -> Result<(Vec<u64>, Option<AdaptiveSeeds>), SpecError> {
        match self {
            RawSeeds::List(seeds) => {
                if seeds.is_empty() {
                    return Err(SpecError::field(
                        "seeds",
                        "is empty: give at least one seed, e.g. seeds = [1, 2, 3], or a [seeds] table with start, max and target_ci",
                    ));
                }
                let mut seen = std::collections::HashSet::new();
                if let Some(dup) = seeds.iter().find(|s| !seen.insert(**s)) {
                    return Err(SpecError::field("seeds", format!("seed {dup} appears twice; seeds must be distinct")));
                }
                Ok((narrow(seeds, "seeds", SEED_RANGE)?, None))
            }
            RawSeeds::Adaptive(RawAdaptiveSeeds { start, max, target_ci }) => {
                let [start] = narrow::<u32>(vec![start], "seeds.start", 1..=MAX_ADAPTIVE_SEEDS)?[..] else {
                    unreachable!("one value in, one out")
                };
                let [max] = narrow::<u32>(vec![max], "seeds.max", 1..=MAX_ADAPTIVE_SEEDS)?[..] else {
                    unreachable!("one value in, one out")
                };
                if max < start {
                    return Err(SpecError::field(
                        "seeds.max",
                        format!("{max} is invalid: use at least seeds.start ({start})"),
                    ));
                }
                if !(target_ci.is_finite() && target_ci > 0.0) {
                    return Err(SpecError::field(
                        "seeds.target_ci",
                        format!(
                            "{target_ci} is invalid: use the widest acceptable half-width of a cell's 95 % interval, \
                             in percentage points of test error (a positive number, e.g. 0.2)"
                        ),
                    ));
                }
                let seeds = (1..=u64::from(start)).collect();
                Ok((seeds, Some(AdaptiveSeeds { max, target_ci })))
            }
        }
    }
}

impl RawCellSet {
    /// Checks each axis. `complete` sets (grid, cases) need a width and a
    /// depth; exclusions may name any subset of axes.
    fn into_grid(self, section: &str, complete: bool, engines: &Engines) -> Result<Grid, SpecError> {
        let field = |name: &str| format!("{section}.{name}");
        let blocks = match (self.block, self.l) {
            (Some(_), Some(_)) => {
                return Err(SpecError::field(
                    field("l"),
                    "give either block or l, not both: l is shorthand for block = B(3,...,3) with l convolutions",
                ));
            }
            (Some(blocks), None) => Some(
                non_empty(blocks.into_vec(), &field("block"))?
                    .into_iter()
                    .map(|text| {
                        text.parse::<BlockPattern>().map_err(|e| SpecError::field(field("block"), e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            (None, Some(ls)) => Some(
                narrow::<usize>(non_empty(ls.into_vec(), &field("l"))?, &field("l"), L_RANGE)?
                    .into_iter()
                    .map(|l| BlockPattern::deepened(l).map_err(|e| SpecError::field(field("l"), e.to_string())))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            (None, None) => None,
        };
        let depth = match (self.depth, self.blocks_per_group) {
            (Some(_), Some(_)) => {
                return Err(SpecError::field(
                    field("blocks_per_group"),
                    "give either depth or blocks_per_group, not both",
                ));
            }
            (Some(depths), None) => {
                let depths = non_empty(depths.into_vec(), &field("depth"))?;
                Some(DepthAxis::Depth(narrow(depths, &field("depth"), DEPTH_RANGE)?))
            }
            (None, Some(ns)) => {
                let ns = non_empty(ns.into_vec(), &field("blocks_per_group"))?;
                Some(DepthAxis::BlocksPerGroup(narrow(ns, &field("blocks_per_group"), BLOCKS_PER_GROUP_RANGE)?))
            }
            (None, None) if complete => {
                return Err(SpecError::field(
                    field("depth"),
                    "is missing: give depth (e.g. depth = [16, 28]) or blocks_per_group",
                ));
            }
            (None, None) => None,
        };
        let widths = match self.width {
            Some(w) => {
                let w = non_empty(w.into_vec(), &field("width"))?;
                Some(narrow(w, &field("width"), WIDTH_RANGE)?)
            }
            None if complete => {
                return Err(SpecError::field(
                    field("width"),
                    "is missing: give the widening factor k, e.g. width = [4, 10]",
                ));
            }
            None => None,
        };
        let dropouts = match self.dropout {
            Some(d) => {
                let d = non_empty(d.into_vec(), &field("dropout"))?;
                if let Some(bad) = d.iter().find(|p| !(0.0..1.0).contains(*p)) {
                    return Err(SpecError::field(
                        field("dropout"),
                        format!("{bad} is invalid: use a probability in [0, 1)"),
                    ));
                }
                Some(d)
            }
            None => None,
        };
        let datasets = match self.dataset {
            Some(names) => Some(
                non_empty(names.into_vec(), &field("dataset"))?
                    .iter()
                    .map(|name| name.parse::<Dataset>().map_err(|e| SpecError::field(field("dataset"), e.to_string())))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            None => None,
        };
        let recipe = [
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("lr", self.lr),
            ("lr_milestones", self.lr_milestones),
            ("lr_gamma", self.lr_gamma),
            ("momentum", self.momentum),
            ("nesterov", self.nesterov),
            ("weight_decay", self.weight_decay),
            ("reset_momentum_on_drop", self.reset_momentum_on_drop),
            ("train_subset", self.train_subset),
            ("test_subset", self.test_subset),
            ("augment", self.augment),
            ("precision", self.precision),
            ("bn_recalibration_batches", self.bn_recalibration_batches),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|value| RecipeAxis::read(section, name, value)))
        .collect::<Result<Vec<_>, _>>()?;
        let engine_names = match self.engine {
            Some(names) => {
                let names = non_empty(names.into_vec(), &field("engine"))?;
                engines.check_axis(section, &names)?;
                Some(names)
            }
            None => None,
        };
        let params = self
            .params
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| ParamAxis::read(section, name, value))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Grid { blocks, depth, widths, dropouts, datasets, recipe, engines: engine_names, params })
    }
}

/// Checks every value against `range`, then narrows it to `T`: the one
/// way a spec's integer becomes a smaller type. The error names the field,
/// the value and the range.
fn narrow<T: TryFrom<i64>>(values: Vec<i64>, field: &str, range: RangeInclusive<i64>) -> Result<Vec<T>, SpecError> {
    values
        .into_iter()
        .map(|value| {
            range.contains(&value).then(|| T::try_from(value).ok()).flatten().ok_or_else(|| {
                SpecError::field(
                    field,
                    format!("{value} is invalid: use an integer from {} to {}", range.start(), range.end()),
                )
            })
        })
        .collect()
}

/// Refuses empty and repeated axis values: a repeat would hash to the same
/// cell twice.
fn non_empty<T: std::fmt::Debug>(values: Vec<T>, field: &str) -> Result<Vec<T>, SpecError> {
    if values.is_empty() {
        return Err(SpecError::field(field, "is empty: give at least one value"));
    }
    if let Some(v) = repeated(&values) {
        return Err(SpecError::field(field, format!("{v:?} appears twice; axis values must be distinct")));
    }
    Ok(values)
}

/// The first value that appears twice, compared as written (`Debug`), in
/// linear time: a spec under the size limit may hold 100,000 values, and a
/// pairwise check of those took seconds of the coordinator's time.
pub(super) fn repeated<T: std::fmt::Debug>(values: &[T]) -> Option<&T> {
    let mut seen = std::collections::HashSet::with_capacity(values.len());
    values.iter().find(|v| !seen.insert(format!("{v:?}")))
}
