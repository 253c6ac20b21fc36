//! The axes a table can be laid out along: the hyperparameters that tell
//! one cell of a sweep from another, plus the seed, the recipe and the
//! sweep itself.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use widesweep_arch::{BlockPattern, Dataset};

use super::ReportError;
use crate::spec::Recipe;
use crate::store::ResultRow;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Axis {
    Block,
    /// Convolutions per block (the deepening factor).
    L,
    Depth,
    /// N, blocks per group.
    BlocksPerGroup,
    /// k, the widening factor.
    Width,
    Dropout,
    Dataset,
    // The recipe's fields a spec sweeps most (training axes of a spec).
    Epochs,
    BatchSize,
    Lr,
    LrMilestones,
    LrGamma,
    Momentum,
    Nesterov,
    WeightDecay,
    Augment,
    Precision,
    Seed,
    /// The training recipe (epochs, lr schedule, batch, ...), labelled by
    /// the fields that differ.
    Recipe,
    /// The sweep a job belongs to, when a table spans several.
    Sweep,
    /// What trained the job: candle, or a command engine of the spec.
    Engine,
    /// A command engine's free-form parameters, "mixup=0.2 smoothing=0.1".
    Params,
}

/// The network's own axes.
pub const NETWORK_AXES: [Axis; 6] =
    [Axis::Block, Axis::L, Axis::Depth, Axis::BlocksPerGroup, Axis::Width, Axis::Dropout];

/// The recipe's fields that have axes of their own, in recipe order.
pub const RECIPE_FIELD_AXES: [Axis; 10] = [
    Axis::Epochs,
    Axis::BatchSize,
    Axis::Lr,
    Axis::LrMilestones,
    Axis::LrGamma,
    Axis::Momentum,
    Axis::Nesterov,
    Axis::WeightDecay,
    Axis::Augment,
    Axis::Precision,
];

/// The hyperparameters that make a cell (everything but the seed and the
/// sweep), the whole recipe last: what a cell's curves are labelled by.
pub const CELL_AXES: [Axis; 20] =
    join(&[&NETWORK_AXES, &[Axis::Dataset, Axis::Params], &RECIPE_FIELD_AXES, &[Axis::Recipe, Axis::Engine]]);

/// `parts` one after the other, as one array of `N` axes.
pub(crate) const fn join<const N: usize>(parts: &[&[Axis]]) -> [Axis; N] {
    let mut out = [Axis::Block; N];
    let (mut at, mut part) = (0, 0);
    while part < parts.len() {
        let mut i = 0;
        while i < parts[part].len() {
            out[at] = parts[part][i];
            at += 1;
            i += 1;
        }
        part += 1;
    }
    assert!(at == N, "the parts fill the array exactly");
    out
}

impl Axis {
    /// Every axis; the newer recipe-field axes after the older ones, whose
    /// order error messages quote.
    pub const ALL: [Axis; 22] = join(&[
        &NETWORK_AXES,
        &[Axis::Dataset, Axis::Seed, Axis::Recipe, Axis::Sweep],
        &RECIPE_FIELD_AXES,
        &[Axis::Engine, Axis::Params],
    ]);

    /// The name used on the command line, in CSV/JSON and in the database.
    pub fn name(self) -> &'static str {
        match self {
            Axis::Block => "block",
            Axis::L => "l",
            Axis::Depth => "depth",
            Axis::BlocksPerGroup => "blocks_per_group",
            Axis::Width => "width",
            Axis::Dropout => "dropout",
            Axis::Dataset => "dataset",
            Axis::Epochs => "epochs",
            Axis::BatchSize => "batch_size",
            Axis::Lr => "lr",
            Axis::LrMilestones => "lr_milestones",
            Axis::LrGamma => "lr_gamma",
            Axis::Momentum => "momentum",
            Axis::Nesterov => "nesterov",
            Axis::WeightDecay => "weight_decay",
            Axis::Augment => "augment",
            Axis::Precision => "precision",
            Axis::Seed => "seed",
            Axis::Recipe => "recipe",
            Axis::Sweep => "sweep",
            Axis::Engine => "engine",
            Axis::Params => "params",
        }
    }

    /// The short name of a table header, as the paper writes it.
    pub fn label(self) -> &'static str {
        match self {
            Axis::BlocksPerGroup => "N",
            Axis::Width => "k",
            // Not "params", which tables use for the network's parameter count.
            Axis::Params => "engine params",
            other => other.name(),
        }
    }

    /// Whether a header names the value alone ("B(3,3)", "cifar10") rather
    /// than as "k=4".
    fn self_describing(self) -> bool {
        matches!(self, Axis::Block | Axis::Dataset | Axis::Recipe | Axis::Sweep | Axis::Engine | Axis::Params)
    }

    /// A header for one value of this axis: "k=4", "B(3,3)".
    pub fn describe(self, value: &AxisValue) -> String {
        if self.self_describing() { value.to_string() } else { format!("{}={value}", self.label()) }
    }

    /// Whether values sort by number (else by first appearance, which is
    /// the spec's order).
    pub fn numeric(self) -> bool {
        self.integer() || self.real()
    }

    /// Whether values are whole numbers.
    pub fn integer(self) -> bool {
        matches!(
            self,
            Axis::L | Axis::Depth | Axis::BlocksPerGroup | Axis::Width | Axis::Seed | Axis::Epochs | Axis::BatchSize
        )
    }

    /// Whether values are real numbers (rates, probabilities).
    fn real(self) -> bool {
        matches!(self, Axis::Dropout | Axis::Lr | Axis::LrGamma | Axis::Momentum | Axis::WeightDecay)
    }

    pub fn value(self, row: &ResultRow) -> AxisValue {
        let c = &row.config;
        match self {
            Axis::Block => AxisValue::Text(c.block.to_string()),
            Axis::L => AxisValue::Int(c.deepening.into()),
            Axis::Depth => AxisValue::Int(c.depth.into()),
            Axis::BlocksPerGroup => AxisValue::Int(c.blocks_per_group.into()),
            Axis::Width => AxisValue::Int(c.width.into()),
            Axis::Dropout => AxisValue::Float(c.dropout),
            Axis::Dataset => AxisValue::Text(c.dataset.name().to_string()),
            Axis::Epochs => AxisValue::Int(c.recipe.epochs.into()),
            Axis::BatchSize => AxisValue::Int(c.recipe.batch_size.into()),
            Axis::Lr => AxisValue::Float(c.recipe.lr),
            Axis::LrMilestones => AxisValue::Text(milestones_text(&c.recipe.lr_milestones)),
            Axis::LrGamma => AxisValue::Float(c.recipe.lr_gamma),
            Axis::Momentum => AxisValue::Float(c.recipe.momentum),
            Axis::Nesterov => AxisValue::Text(c.recipe.nesterov.to_string()),
            Axis::WeightDecay => AxisValue::Float(c.recipe.weight_decay),
            Axis::Augment => AxisValue::Text(c.recipe.augment.to_string()),
            Axis::Precision => AxisValue::Text(c.recipe.precision.to_string()),
            Axis::Seed => AxisValue::Int(c.seed as i64),
            Axis::Recipe => AxisValue::Text(recipe_key(&c.recipe)),
            Axis::Sweep => AxisValue::Text(row.sweep.clone()),
            Axis::Engine => AxisValue::Text(c.engine.clone()),
            Axis::Params => AxisValue::Text(params_text(&c.params)),
        }
    }

    /// Parses a value the user typed for this axis into the form the
    /// database holds: "b(3, 3)" is B(3,3), "0.30" is 0.3.
    pub fn parse_value(self, text: &str) -> Result<AxisValue, ReportError> {
        let text = text.trim();
        let bad = |reason: String| ReportError::BadAxisValue { axis: self.name(), value: text.to_string(), reason };
        match self {
            Axis::Block => {
                text.parse::<BlockPattern>().map(|b| AxisValue::Text(b.to_string())).map_err(|e| bad(e.to_string()))
            }
            axis if axis.integer() => {
                text.parse::<i64>().map(AxisValue::Int).map_err(|_| bad("expected a whole number".into()))
            }
            axis if axis.real() => text
                .parse::<f64>()
                .ok()
                .filter(|p| p.is_finite())
                .map(AxisValue::Float)
                .ok_or_else(|| bad("expected a number such as 0.3".into())),
            Axis::LrMilestones => {
                let milestones: Result<Vec<u32>, _> = text
                    .split(['/', ','])
                    .map(str::trim)
                    .filter(|m| !m.is_empty() && *m != "none")
                    .map(str::parse)
                    .collect();
                milestones
                    .map(|m| AxisValue::Text(milestones_text(&m)))
                    .map_err(|_| bad("expected epochs separated by '/', such as 60/120/160, or none".into()))
            }
            Axis::Nesterov | Axis::Augment => text
                .parse::<bool>()
                .map(|b| AxisValue::Text(b.to_string()))
                .map_err(|_| bad("expected true or false".into())),
            Axis::Precision => text
                .parse::<widesweep_arch::Precision>()
                .map(|p| AxisValue::Text(p.to_string()))
                .map_err(|e| bad(e.to_string())),
            Axis::Dataset => {
                text.parse::<Dataset>().map(|d| AxisValue::Text(d.name().to_string())).map_err(|e| bad(e.to_string()))
            }
            _ => Ok(AxisValue::Text(text.to_string())),
        }
    }

    /// Parses "block,width" (or "k,N": the paper's letters are accepted).
    pub fn parse_list(text: &str) -> Result<Vec<Axis>, ReportError> {
        let axes = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Axis>, _>>()?;
        for (i, axis) in axes.iter().enumerate() {
            if axes[..i].contains(axis) {
                return Err(ReportError::AxisTwice { axis: axis.name() });
            }
        }
        Ok(axes)
    }

    pub fn valid_names() -> String {
        Axis::ALL.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
    }
}

impl fmt::Display for Axis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Axis {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        let axis = match name {
            "k" => Some(Axis::Width),
            "N" | "n" => Some(Axis::BlocksPerGroup),
            "deepening" => Some(Axis::L),
            _ => Axis::ALL.into_iter().find(|a| a.name() == name.to_ascii_lowercase()),
        };
        axis.ok_or_else(|| ReportError::UnknownName {
            what: "axis",
            plural: "axes",
            name: name.to_string(),
            valid: Axis::valid_names(),
        })
    }
}

/// One value of an axis. Dropout rates compare exactly: they come from the
/// same spec text through the same parser.
#[derive(Clone, Debug)]
pub enum AxisValue {
    Int(i64),
    Float(f64),
    Text(String),
}

impl AxisValue {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            AxisValue::Int(v) => Some(*v as f64),
            AxisValue::Float(v) => Some(*v),
            AxisValue::Text(_) => None,
        }
    }

    /// The value as JSON: numbers stay numbers.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            AxisValue::Int(v) => (*v).into(),
            AxisValue::Float(v) => serde_json::Number::from_f64(*v).map_or(serde_json::Value::Null, Into::into),
            AxisValue::Text(v) => v.clone().into(),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            AxisValue::Int(_) | AxisValue::Float(_) => 0,
            AxisValue::Text(_) => 1,
        }
    }
}

impl PartialEq for AxisValue {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for AxisValue {}

impl PartialOrd for AxisValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AxisValue {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (AxisValue::Text(a), AxisValue::Text(b)) => a.cmp(b),
            (AxisValue::Int(a), AxisValue::Int(b)) => a.cmp(b),
            (a, b) => match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => a.rank().cmp(&b.rank()),
            },
        }
    }
}

impl Hash for AxisValue {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            // Ints and floats that compare equal must hash alike.
            AxisValue::Int(v) => (*v as f64 + 0.0).to_bits().hash(state),
            AxisValue::Float(v) => (v + 0.0).to_bits().hash(state),
            AxisValue::Text(v) => v.hash(state),
        }
    }
}

impl fmt::Display for AxisValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AxisValue::Int(v) => write!(f, "{v}"),
            // Shortest form that reads back the same: 0.3, 0, 0.25.
            AxisValue::Float(v) => write!(f, "{v}"),
            AxisValue::Text(v) => f.write_str(v),
        }
    }
}

/// Params as a header shows them: "mixup=0.2 smoothing=0", or "no params".
fn params_text(params: &widesweep_arch::Params) -> String {
    if params.is_empty() {
        return "no params".into();
    }
    params.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join(" ")
}

/// Milestones as a header shows them: "60/120/160", or "none".
fn milestones_text(milestones: &[u32]) -> String {
    let text = milestones.iter().map(|m| m.to_string()).collect::<Vec<_>>().join("/");
    if text.is_empty() { "none".into() } else { text }
}

/// The recipe's fields that change what is trained, as (name, value)
/// pairs. `checkpoint_every` is left out: it changes how often a job is
/// saved, not its result.
pub fn recipe_fields(r: &Recipe) -> Vec<(&'static str, String)> {
    vec![
        ("epochs", r.epochs.to_string()),
        ("batch", r.batch_size.to_string()),
        ("lr", r.lr.to_string()),
        ("milestones", milestones_text(&r.lr_milestones)),
        ("gamma", r.lr_gamma.to_string()),
        ("momentum", r.momentum.to_string()),
        ("nesterov", r.nesterov.to_string()),
        ("wd", r.weight_decay.to_string()),
        ("reset_momentum", r.reset_momentum_on_drop.to_string()),
        ("subset", r.train_subset.to_string()),
        ("test_subset", r.test_subset.to_string()),
        ("augment", r.augment.to_string()),
        ("precision", r.precision.to_string()),
        ("bn_batches", r.bn_recalibration_batches.to_string()),
    ]
}

/// The whole recipe as one comparable text: "epochs=200 batch=128 ...".
pub fn recipe_key(r: &Recipe) -> String {
    recipe_fields(r).iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// Each distinct key of `keys` ([`recipe_key`]) with its short label
/// ([`shorten_recipe_keys`]), for tables and curves alike.
pub fn recipe_labels<'a>(keys: impl IntoIterator<Item = &'a String>) -> HashMap<String, String> {
    let mut seen = HashSet::new();
    let distinct: Vec<String> = keys.into_iter().filter(|k| seen.insert(*k)).cloned().collect();
    let short = shorten_recipe_keys(&distinct);
    distinct.into_iter().zip(short).collect()
}

/// Shortens recipe keys to the fields in which they differ, so that a
/// header reads "epochs=2" rather than the whole recipe.
pub fn shorten_recipe_keys(keys: &[String]) -> Vec<String> {
    let split: Vec<Vec<&str>> = keys.iter().map(|k| k.split(' ').collect()).collect();
    let Some(first) = split.first() else { return Vec::new() };
    let differing: Vec<usize> =
        (0..first.len()).filter(|i| split.iter().any(|fields| fields.get(*i) != first.get(*i))).collect();
    split
        .iter()
        .map(|fields| {
            if differing.is_empty() {
                "same recipe".to_string()
            } else {
                differing.iter().filter_map(|i| fields.get(*i).copied()).collect::<Vec<_>>().join(" ")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_axes_name_every_valid_one() {
        let error = "depht".parse::<Axis>().unwrap_err().to_string();
        assert_eq!(
            error,
            "unknown axis depht: valid axes are block, l, depth, blocks_per_group, width, dropout, dataset, seed, recipe, sweep, \
             epochs, batch_size, lr, lr_milestones, lr_gamma, momentum, nesterov, weight_decay, augment, precision, engine, params"
        );
        assert_eq!("k".parse::<Axis>().unwrap(), Axis::Width);
        assert_eq!(Axis::parse_list("block, width").unwrap(), [Axis::Block, Axis::Width]);
        assert!(Axis::parse_list("width,k").unwrap_err().to_string().contains("width"));
    }

    #[test]
    fn typed_values_read_as_the_database_writes_them() {
        assert_eq!(Axis::Block.parse_value("b(3, 3)").unwrap(), AxisValue::Text("B(3,3)".into()));
        assert_eq!(Axis::Dropout.parse_value("0.30").unwrap(), AxisValue::Float(0.3));
        assert_eq!(Axis::Dropout.parse_value("0").unwrap(), AxisValue::Float(0.0));
        assert_eq!(AxisValue::Int(4), AxisValue::Float(4.0));
        assert!(Axis::Width.parse_value("wide").unwrap_err().to_string().contains("width"));
        assert!(Axis::Dataset.parse_value("imagenet").unwrap_err().to_string().contains("cifar10"));
        assert_eq!(Axis::Width.describe(&AxisValue::Int(10)), "k=10");
        assert_eq!(Axis::Block.describe(&AxisValue::Text("B(3,3)".into())), "B(3,3)");
    }

    #[test]
    fn recipe_labels_keep_only_what_differs() {
        let short = Recipe { epochs: 2, ..Recipe::default() };
        let keys = vec![recipe_key(&Recipe::default()), recipe_key(&short)];
        assert_eq!(shorten_recipe_keys(&keys), ["epochs=200", "epochs=2"]);
        let same = [recipe_key(&short), recipe_key(&Recipe { checkpoint_every: 5, ..short.clone() })];
        assert_eq!(same[0], same[1], "checkpointing does not change the recipe");
    }
}
