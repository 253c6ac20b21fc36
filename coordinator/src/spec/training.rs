//! Training axes: the dataset and the recipe's fields, varied per cell like
//! the network's shape. A cell's recipe is the spec's `[recipe]` table with
//! the cell's values written over it, then resolved (defaults that depend
//! on the epochs) and validated as one recipe for the cell's dataset: the
//! same type and rules as a spec without training axes, so a cell that
//! varies nothing trains, and hashes, exactly as before.

use serde::Deserialize;
use widesweep_arch::{Dataset, Recipe, WrittenRecipe};

use super::SpecError;

/// The recipe fields a sweep may vary per cell: everything that changes
/// what a network learns. `checkpoint_every` is not among them: it changes
/// when the state is saved, not the result.
pub const RECIPE_AXES: [&str; 14] = [
    "epochs",
    "batch_size",
    "lr",
    "lr_milestones",
    "lr_gamma",
    "momentum",
    "nesterov",
    "weight_decay",
    "reset_momentum_on_drop",
    "train_subset",
    "test_subset",
    "augment",
    "precision",
    "bn_recalibration_batches",
];

/// One recipe axis: the field and its values as the spec wrote them (in
/// its order), each
/// already known to be a valid value of the field on its own.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct RecipeAxis {
    pub field: &'static str,
    pub values: Vec<toml::Value>,
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
        for (i, value) in values.iter().enumerate() {
            if values[..i].contains(value) {
                return Err(SpecError::field(name, format!("{value} appears twice; axis values must be distinct")));
            }
            written(&toml::Table::from_iter([(field.to_string(), value.clone())]))
                .map_err(|message| SpecError::field(&name, message))?;
        }
        Ok(Self { field, values })
    }
}

/// What a cell trains on and how, beside its network.
#[derive(Clone, Debug, PartialEq)]
pub struct Training {
    pub dataset: Dataset,
    pub recipe: Recipe,
    /// The cell's own values of the training axes, the dataset first, then
    /// the recipe's fields in [`RECIPE_AXES`] order: what tells it from its
    /// neighbours.
    pub axes: Vec<(&'static str, String)>,
}

impl Training {
    /// "dataset=mnist lr=0.05", or "" for a cell that varies nothing.
    pub fn label(&self) -> String {
        self.axes.iter().map(|(field, value)| format!("{field}={value}")).collect::<Vec<_>>().join(" ")
    }
}

/// The spec's own dataset and `[recipe]` table, which every cell starts from.
#[derive(Clone, Debug)]
pub(super) struct TrainingDefaults {
    pub dataset: Dataset,
    /// The `[recipe]` table as written.
    pub table: toml::Table,
    /// That table resolved: the recipe of a cell that varies nothing.
    pub recipe: Recipe,
}

impl TrainingDefaults {
    pub(super) fn new(dataset: Dataset, table: toml::Table) -> Result<Self, SpecError> {
        let recipe = written(&table).map_err(|message| SpecError::field("recipe", message))?.for_spec();
        recipe.validate_for(dataset)?;
        Ok(Self { dataset, table, recipe })
    }

    /// The training of a cell with `dataset` (or the spec's) and the
    /// recipe values `fields` written over the spec's; the error names
    /// `section` and the cell's values.
    pub(super) fn cell(
        &self,
        section: &str,
        dataset: Option<Dataset>,
        fields: &[(&'static str, &toml::Value)],
    ) -> Result<Training, SpecError> {
        let mut axes: Vec<(&'static str, String)> = Vec::with_capacity(fields.len() + 1);
        if let Some(dataset) = dataset {
            axes.push(("dataset", dataset.name().to_string()));
        }
        axes.extend(fields.iter().map(|(field, value)| (*field, show(value))));
        let dataset = dataset.unwrap_or(self.dataset);
        let recipe = if fields.is_empty() {
            self.recipe.clone()
        } else {
            let mut table = self.table.clone();
            table.extend(fields.iter().map(|(field, value)| (field.to_string(), (*value).clone())));
            written(&table).map_err(|message| SpecError::field(section, message))?.for_spec()
        };
        let training = Training { dataset, recipe, axes };
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
}

/// Reads a recipe table the way a spec's `[recipe]` is read.
fn written(table: &toml::Table) -> Result<WrittenRecipe, String> {
    WrittenRecipe::deserialize(toml::Value::Table(table.clone())).map_err(|e| e.message().trim().to_string())
}

/// A value as a spec would write it: `0.05`, `[60, 120]`, `bf16`.
fn show(value: &toml::Value) -> String {
    match value {
        toml::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Whether a recipe's `field` holds `value` (as a spec writes it): both
/// are read through the recipe type, so `lr = 1` matches a stored 1.0 and
/// a field at its default matches its default written out.
pub(super) fn recipe_has(recipe: &Recipe, field: &str, value: &toml::Value) -> bool {
    let Ok(other) = written(&toml::Table::from_iter([(field.to_string(), value.clone())])) else {
        return false;
    };
    let field_of = |recipe: &Recipe| serde_json::to_value(recipe).ok().and_then(|v| v.get(field).cloned());
    field_of(recipe) == field_of(&other.for_spec())
}
