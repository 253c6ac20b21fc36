//! A leased job, as the trainer needs it: the gRPC cell config turned into
//! a [`RunSpec`], checked with the same rules as a local `widesweep train`.

use widesweep_arch::{BlockPattern, Dataset, WrnConfig, widen};
use widesweep_proto::v1 as pb;

use crate::train::{Recipe, RunSpec};

#[derive(Debug, thiserror::Error)]
pub enum JobPlanError {
    #[error("job {job_id} arrived without its {field}")]
    Missing { job_id: i64, field: &'static str },
    #[error("job {job_id}: {field} = {value:?} is invalid: {reason}")]
    Invalid { job_id: i64, field: &'static str, value: String, reason: String },
}

/// Everything a slot needs to train one leased attempt.
#[derive(Clone, Debug)]
pub struct JobPlan {
    pub job_id: i64,
    pub attempt: u32,
    /// The lease's secret, repeated in every call about the job.
    pub lease_token: String,
    pub spec: RunSpec,
    /// Upload a checkpoint every this many epochs; 0 never (except when
    /// handing the job back at shutdown).
    pub checkpoint_every: usize,
    /// A short human name of the cell, e.g. `WRN-16-4 B(3,3) seed 1`.
    pub label: String,
}

impl JobPlan {
    pub fn from_job(job: &pb::Job) -> Result<Self, JobPlanError> {
        let job_id = job.job_id;
        let cell = job.config.as_ref().ok_or(JobPlanError::Missing { job_id, field: "config" })?;
        let r = cell.recipe.as_ref().ok_or(JobPlanError::Missing { job_id, field: "config.recipe" })?;
        let invalid = |field, value: &dyn std::fmt::Debug, reason: String| JobPlanError::Invalid {
            job_id,
            field,
            value: format!("{value:?}"),
            reason,
        };
        let block: BlockPattern = cell.block.parse().map_err(|e| invalid("block", &cell.block, format!("{e}")))?;
        let dataset: Dataset = cell.dataset.parse().map_err(|e| invalid("dataset", &cell.dataset, format!("{e}")))?;
        let config = WrnConfig::new(
            block,
            widen(cell.blocks_per_group),
            widen(cell.width),
            cell.dropout,
            dataset.in_channels(),
            dataset.num_classes(),
        )
        .map_err(|e| invalid("config", &cell, e.to_string()))?;
        // The same type and validation as the coordinator's (widesweep-arch),
        // field for field from the message.
        let recipe = Recipe::try_from(r).map_err(|e| invalid("recipe.precision", &r.precision, e.to_string()))?;
        recipe.validate_for(dataset).map_err(|e| invalid("recipe", r, e.to_string()))?;
        Ok(Self {
            job_id,
            attempt: job.attempt,
            lease_token: job.lease_token.clone(),
            label: cell_label(cell),
            checkpoint_every: widen(recipe.checkpoint_every),
            spec: RunSpec { config, dataset, recipe, seed: cell.seed },
        })
    }

    pub fn epochs(&self) -> usize {
        widen(self.spec.recipe.epochs)
    }
}

/// `WRN-16-4 B(3,3) seed 1`, with the dropout when there is some.
pub fn cell_label(cell: &pb::CellConfig) -> String {
    let dropout = if cell.dropout > 0.0 { format!(" dropout {}", cell.dropout) } else { String::new() };
    format!("WRN-{}-{} {}{dropout} seed {}", cell.depth, cell.width, cell.block, cell.seed)
}
