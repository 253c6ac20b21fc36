//! The one conversion between the wire's `CellConfig` and widesweep-arch's
//! `JobConfig`, which the coordinator stores and the worker trains: the
//! block and the dataset travel as text and are parsed here, once, with
//! the field named when they do not parse.

use widesweep_arch::{CANDLE, CommandEngine, JobConfig, Params, Recipe};

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
            engine: c.engine.clone(),
            params_json: if c.params.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&c.params).expect("scalars serialise")
            },
        }
    }
}

impl From<&CommandEngine> for pb::CommandEngine {
    fn from(c: &CommandEngine) -> Self {
        pb::CommandEngine {
            command: c.command.clone(),
            cwd: c.cwd.clone(),
            env: c.env.clone().into_iter().collect(),
            grace_seconds: c.grace_seconds,
            heartbeat_seconds: c.heartbeat_seconds,
        }
    }
}

impl From<&pb::CommandEngine> for CommandEngine {
    fn from(c: &pb::CommandEngine) -> Self {
        CommandEngine {
            command: c.command.clone(),
            cwd: c.cwd.clone(),
            env: c.env.clone().into_iter().collect(),
            grace_seconds: c.grace_seconds,
            heartbeat_seconds: c.heartbeat_seconds,
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
            engine: if c.engine.is_empty() { CANDLE.to_string() } else { c.engine.clone() },
            params: if c.params_json.is_empty() {
                Params::new()
            } else {
                serde_json::from_str(&c.params_json).map_err(|e| {
                    invalid("params_json", &c.params_json, format!("{e}: give a JSON object of scalars"))
                })?
            },
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
            engine: "pytorch".into(),
            params: Params::from([("mixup".to_string(), widesweep_arch::ParamValue::Float(0.2))]),
        };
        let wire = pb::CellConfig::from(&config);
        assert_eq!(JobConfig::try_from(&wire), Ok(config));
        let error = JobConfig::try_from(&pb::CellConfig { dataset: "imagenet".into(), ..wire.clone() }).unwrap_err();
        assert_eq!((error.field, error.value.as_str()), ("dataset", "imagenet"));
        let error = JobConfig::try_from(&pb::CellConfig { params_json: "[1]".into(), ..wire.clone() }).unwrap_err();
        assert_eq!(error.field, "params_json");
        let older =
            JobConfig::try_from(&pb::CellConfig { engine: String::new(), params_json: String::new(), ..wire.clone() });
        assert!(older.unwrap().is_candle(), "an older peer's empty engine is candle");
        let error = JobConfig::try_from(&pb::CellConfig { recipe: None, ..wire }).unwrap_err();
        assert_eq!(error.field, "recipe");
    }
}
