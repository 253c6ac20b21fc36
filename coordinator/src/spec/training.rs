//! Training axes: the dataset and the recipe's fields, varied per cell like
//! the network's shape. A cell's recipe is the spec's `[recipe]` table with
//! the cell's values written over it, then resolved (defaults that depend
//! on the epochs) and validated as one recipe for the cell's dataset: the
//! same type and rules as a spec without training axes, so a cell that
//! varies nothing trains, and hashes, exactly as before.

use serde::Deserialize;
use widesweep_arch::{CANDLE, Dataset, ParamValue, Params, Recipe, WrittenRecipe};

use super::{Spec, SpecError};

/// One recipe axis: the field and its values as the spec wrote them (in
/// its order), each already known to be a valid value of the field on
/// its own.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RecipeAxis {
    pub field: &'static str,
    pub values: Vec<toml::Value>,
    /// Each value as a recipe holds it ([`field_of`]), read once here so
    /// that matching a cell against an exclusion reads nothing again.
    held: Vec<Option<serde_json::Value>>,
}

impl RecipeAxis {
    /// Reads `field = value` of a grid, case or exclusion. A list is the
    /// axis's values, except for `lr_milestones`, whose one value is
    /// itself a list: it varies with a list of lists.
    pub(super) fn read(section: &str, field: &'static str, value: toml::Value) -> Result<Self, SpecError> {
        let name = format!("{section}.{field}");
        let values = match value {
            toml::Value::Array(items) if field != "lr_milestones" => items,
            toml::Value::Array(items) if items.iter().all(|i| matches!(i, toml::Value::Array(_))) => items,
            one => vec![one],
        };
        if values.is_empty() {
            return Err(SpecError::field(name, "is empty: give at least one value"));
        }
        if let Some(value) = super::raw::repeated(&values) {
            return Err(SpecError::field(name, format!("{value} appears twice; axis values must be distinct")));
        }
        let mut held = Vec::with_capacity(values.len());
        for value in &values {
            let alone = written(toml::Table::from_iter([(field.to_string(), value.clone())]))
                .map_err(|message| SpecError::field(&name, message))?;
            held.push(field_of(&alone.for_spec(), field));
        }
        Ok(Self { field, values, held })
    }

    /// Whether `recipe` holds one of the axis's values: compared as the
    /// recipe type holds them, so `lr = 1` matches a stored 1.0 and a
    /// field at its default matches its default written out.
    pub(super) fn matches(&self, recipe: &Recipe) -> bool {
        self.held.contains(&field_of(recipe, self.field))
    }
}

/// What a cell trains on and how, beside its network.
#[derive(Clone, Debug, PartialEq)]
pub struct Training {
    pub dataset: Dataset,
    pub recipe: Recipe,
    /// `candle` or one of the spec's command engines.
    pub engine: String,
    /// A command engine's free-form parameters (none for candle).
    pub params: Params,
    /// The cell's own values of the training axes: the engine and the
    /// dataset first, then the recipe's fields in the order a grid lists
    /// them (`raw::RawCellSet`), then the params: what tells it from its
    /// neighbours.
    pub axes: Vec<(String, String)>,
}

/// A cell's choice on the training axes: an engine and a dataset (`None`:
/// the spec's), one value of each recipe axis and of each param.
#[derive(Clone, Debug, Default)]
pub(super) struct Choice<'a> {
    pub engine: Option<&'a str>,
    pub dataset: Option<Dataset>,
    pub fields: Vec<(&'static str, &'a toml::Value)>,
    pub params: Vec<(&'a str, &'a ParamValue)>,
}

impl Training {
    /// "dataset=mnist lr=0.05", or "" for a cell that varies nothing.
    pub fn label(&self) -> String {
        self.axes.iter().map(|(field, value)| format!("{field}={value}")).collect::<Vec<_>>().join(" ")
    }
}

/// The spec's own recipe: its `[recipe]` table read and validated for its
/// dataset. What a cell that varies no recipe field trains.
pub(super) fn spec_recipe(dataset: Dataset, table: &toml::Table) -> Result<Recipe, SpecError> {
    let recipe = written(table.clone()).map_err(|message| SpecError::field("recipe", message))?.for_spec();
    recipe.validate_for(dataset)?;
    Ok(recipe)
}

/// The training of a cell of `spec` with `dataset` (or the spec's) and the
/// recipe values `fields` written over the spec's `[recipe]` table; the
/// error names `section` and the cell's values.
pub(super) fn cell_training(spec: &Spec, section: &str, choice: &Choice) -> Result<Training, SpecError> {
    let Choice { engine, dataset, fields, params } = choice;
    let mut axes: Vec<(String, String)> = Vec::with_capacity(fields.len() + params.len() + 2);
    if let Some(engine) = engine {
        axes.push(("engine".to_string(), engine.to_string()));
    }
    if let Some(dataset) = dataset {
        axes.push(("dataset".to_string(), dataset.name().to_string()));
    }
    axes.extend(fields.iter().map(|(field, value)| (field.to_string(), show(value))));
    axes.extend(params.iter().map(|(name, value)| (name.to_string(), value.to_string())));
    let engine = engine.unwrap_or(&spec.engines.default).to_string();
    if engine == CANDLE && !params.is_empty() {
        let label = axes.iter().map(|(field, value)| format!("{field}={value}")).collect::<Vec<_>>().join(" ");
        return Err(SpecError::field(
            format!("{section}.params"),
            format!(
                "the cell {label} trains with candle, which takes no params: give params only to cells of a command engine ([engine], or engine = \"NAME\" in a [[case]])"
            ),
        ));
    }
    let params: Params = params.iter().map(|(name, value)| (name.to_string(), (*value).clone())).collect();
    let dataset = dataset.unwrap_or(spec.dataset);
    let fields = fields.as_slice();
    let recipe = if fields.is_empty() {
        spec.recipe.clone()
    } else {
        let mut table = spec.recipe_table.clone();
        table.extend(fields.iter().map(|(field, value)| (field.to_string(), (*value).clone())));
        written(table).map_err(|message| SpecError::field(section, message))?.for_spec()
    };
    let training = Training { dataset, recipe, engine, params, axes };
    if let Err(e) = training.recipe.validate_for(dataset) {
        if training.axes.is_empty() {
            return Err(SpecError::Recipe(e));
        }
        // Name the axis at fault when the cell sets it (`grid.lr`), else the section.
        let field = e.field().trim_start_matches("recipe.");
        let at_fault = training.axes.iter().any(|(axis, _)| *axis == field);
        let field = if at_fault { format!("{section}.{field}") } else { section.to_string() };
        return Err(SpecError::field(field, format!("the cell {}: {e}", training.label())));
    }
    Ok(training)
}

/// Reads a recipe table the way a spec's `[recipe]` is read.
fn written(table: toml::Table) -> Result<WrittenRecipe, String> {
    WrittenRecipe::deserialize(toml::Value::Table(table)).map_err(|e| e.message().trim().to_string())
}

/// A value as a spec would write it: `0.05`, `[60, 120]`, `bf16`.
fn show(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// A recipe's `field` as its serde form holds it (`None` for a field left
/// out at its default).
fn field_of(recipe: &Recipe, field: &str) -> Option<serde_json::Value> {
    serde_json::to_value(recipe).ok().and_then(|v| v.get(field).cloned())
}
