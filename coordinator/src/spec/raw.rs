//! What the user typed: the TOML document as serde structs. Unknown fields
//! and duplicate keys are refused by the parser; meaning is checked in
//! [`RawSpec::validate`].

use serde::Deserialize;
use widesweep_arch::{BlockPattern, Dataset};

use super::expand::{Case, DepthAxis, DepthConvention, Exclusion, Grid};
use super::{Recipe, Spec, SpecError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpec {
    name: String,
    dataset: String,
    seeds: Vec<u64>,
    #[serde(default)]
    depth_convention: Option<String>,
    #[serde(default)]
    recipe: Recipe,
    #[serde(default)]
    grid: Option<RawCellSet>,
    #[serde(default, rename = "case")]
    cases: Vec<RawCellSet>,
    #[serde(default, rename = "exclude")]
    exclusions: Vec<RawCellSet>,
}

/// The fields shared by `[grid]` (lists), `[[case]]` (scalars or lists,
/// expanded as a small grid) and `[[exclude]]` (partial match).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCellSet {
    block: Option<OneOrMany<String>>,
    l: Option<OneOrMany<u64>>,
    depth: Option<OneOrMany<u64>>,
    blocks_per_group: Option<OneOrMany<u64>>,
    width: Option<OneOrMany<u64>>,
    dropout: Option<OneOrMany<f64>>,
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

const NAME_MAX: usize = 100;

impl RawSpec {
    pub(super) fn validate(self) -> Result<Spec, SpecError> {
        let name = self.name.trim().to_string();
        if name.is_empty()
            || name.len() > NAME_MAX
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            || name.chars().all(|c| c.is_ascii_digit())
        {
            return Err(SpecError::field(
                "name",
                format!(
                    "{:?} is invalid: use 1 to {NAME_MAX} letters, digits, '-', '_' or '.', not only digits",
                    self.name
                ),
            ));
        }
        let dataset: Dataset = self
            .dataset
            .parse()
            .map_err(|e: widesweep_arch::ParseDatasetError| SpecError::field("dataset", e.to_string()))?;
        if self.seeds.is_empty() {
            return Err(SpecError::field("seeds", "is empty: give at least one seed, e.g. seeds = [1, 2, 3]"));
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = self.seeds.iter().find(|s| !seen.insert(**s)) {
            return Err(SpecError::field("seeds", format!("seed {dup} appears twice; seeds must be distinct")));
        }
        if let Some(big) = self.seeds.iter().find(|s| **s > i64::MAX as u64) {
            return Err(SpecError::field("seeds", format!("seed {big} is too large: use 0 to {}", i64::MAX)));
        }
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
        self.recipe.validate_for(dataset)?;
        let grid = self.grid.map(|g| g.into_grid("grid", true)).transpose()?;
        let cases = self
            .cases
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.into_grid(&format!("case[{i}]"), true).map(Case))
            .collect::<Result<Vec<_>, _>>()?;
        let exclusions = self
            .exclusions
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.into_grid(&format!("exclude[{i}]"), false).map(Exclusion))
            .collect::<Result<Vec<_>, _>>()?;
        if grid.is_none() && cases.is_empty() {
            return Err(SpecError::field("grid", "the spec has neither a [grid] nor any [[case]]: add one"));
        }
        if grid.is_none() && !exclusions.is_empty() {
            return Err(SpecError::field("exclude", "exclusions apply to the [grid], and the spec has none"));
        }
        Ok(Spec { name, dataset, seeds: self.seeds, recipe: self.recipe, depth_convention, grid, cases, exclusions })
    }
}

impl RawCellSet {
    /// Checks each axis. `complete` sets (grid, cases) need a width and a
    /// depth; exclusions may name any subset of axes.
    fn into_grid(self, section: &str, complete: bool) -> Result<Grid, SpecError> {
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
                non_empty(ls.into_vec(), &field("l"))?
                    .into_iter()
                    .map(|l| {
                        BlockPattern::deepened(usize::try_from(l).unwrap_or(usize::MAX))
                            .map_err(|e| SpecError::field(field("l"), e.to_string()))
                    })
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
            (Some(depths), None) => Some(DepthAxis::Depth(non_empty(depths.into_vec(), &field("depth"))?)),
            (None, Some(ns)) => {
                let ns = non_empty(ns.into_vec(), &field("blocks_per_group"))?;
                if let Some(zero) = ns.iter().find(|n| **n == 0) {
                    return Err(SpecError::field(
                        field("blocks_per_group"),
                        format!("{zero} is invalid: use 1 or more"),
                    ));
                }
                Some(DepthAxis::BlocksPerGroup(ns))
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
                if let Some(bad) = w.iter().find(|k| **k == 0 || **k > widesweep_arch_max_width()) {
                    return Err(SpecError::field(
                        field("width"),
                        format!("{bad} is invalid: use an integer from 1 to {}", widesweep_arch_max_width()),
                    ));
                }
                Some(w)
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
        Ok(Grid { blocks, depth, widths, dropouts })
    }
}

fn widesweep_arch_max_width() -> u64 {
    widesweep_arch::MAX_WIDTH as u64
}

/// Refuses empty and repeated axis values: a repeat would hash to the same
/// cell twice.
fn non_empty<T: PartialEq + std::fmt::Debug>(values: Vec<T>, field: &str) -> Result<Vec<T>, SpecError> {
    if values.is_empty() {
        return Err(SpecError::field(field, "is empty: give at least one value"));
    }
    for (i, v) in values.iter().enumerate() {
        if values[..i].contains(v) {
            return Err(SpecError::field(field, format!("{v:?} appears twice; axis values must be distinct")));
        }
    }
    Ok(values)
}
