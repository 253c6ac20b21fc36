//! The one conversion between the wire's `CellConfig` and widesweep-arch's
//! `JobConfig`, which the coordinator stores and the worker trains: the
//! block and the dataset travel as text and are parsed here, once, with
//! the field named when they do not parse.

use widesweep_arch::{JobConfig, Recipe};

use crate::v1 as pb;

/// Why a `CellConfig` off the wire is not a job's configuration.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("config.{field} = {value:?} is invalid: {reason}")]
pub struct CellConfigError {
    pub field: &'static str,
    pub value: String,
    pub reason: String,
}

impl From<&JobConfig> for pb::CellConfig {
    fn from(c: &JobConfig) -> Self {
        pb::CellConfig {
            block: c.block.to_string(),
            deepening: c.deepening,
            blocks_per_group: c.blocks_per_group,
            depth: c.depth,
            width: c.width,
            dropout: c.dropout,
            dataset: c.dataset.name().to_string(),
            seed: c.seed,
            recipe: Some(pb::Recipe::from(&c.recipe)),
        }
    }
}

impl TryFrom<&pb::CellConfig> for JobConfig {
    type Error = CellConfigError;

    fn try_from(c: &pb::CellConfig) -> Result<Self, Self::Error> {
        let invalid = |field, value: &dyn std::fmt::Display, reason: String| CellConfigError {
            field,
            value: value.to_string(),
            reason,
        };
        let recipe = c.recipe.as_ref().ok_or_else(|| invalid("recipe", &"", "is missing".into()))?;
        Ok(JobConfig {
            block: c.block.parse().map_err(|e| invalid("block", &c.block, format!("{e}")))?,
            deepening: c.deepening,
            blocks_per_group: c.blocks_per_group,
            depth: c.depth,
            width: c.width,
            dropout: c.dropout,
            dataset: c.dataset.parse().map_err(|e| invalid("dataset", &c.dataset, format!("{e}")))?,
            seed: c.seed,
            recipe: Recipe::try_from(recipe)
                .map_err(|e| invalid("recipe.precision", &recipe.precision, e.to_string()))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use widesweep_arch::{BlockPattern, Dataset};

    use super::*;

    #[test]
    fn a_job_config_survives_the_wire_and_bad_text_names_its_field() {
        let config = JobConfig {
            block: "B(1,3,1)".parse::<BlockPattern>().unwrap(),
            deepening: 3,
            blocks_per_group: 2,
            depth: 22,
            width: 4,
            dropout: 0.3,
            dataset: Dataset::Cifar100,
            seed: 7,
            recipe: Recipe::default(),
        };
        let wire = pb::CellConfig::from(&config);
        assert_eq!(JobConfig::try_from(&wire), Ok(config));
        let error = JobConfig::try_from(&pb::CellConfig { dataset: "imagenet".into(), ..wire.clone() }).unwrap_err();
        assert_eq!((error.field, error.value.as_str()), ("dataset", "imagenet"));
        let error = JobConfig::try_from(&pb::CellConfig { recipe: None, ..wire }).unwrap_err();
        assert_eq!(error.field, "recipe");
    }
}
