//! A leased job, as the trainer needs it: the gRPC cell config turned into
//! a [`RunSpec`], checked with the same rules as a local `widesweep train`.

use widesweep_arch::{JobConfig, widen};
use widesweep_proto::v1 as pb;

use crate::train::RunSpec;

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
        // The same types and validation as the coordinator's (widesweep-arch),
        // read off the message by their one wire conversion.
        let cell = JobConfig::try_from(cell).map_err(|e| JobPlanError::Invalid {
            job_id,
            field: e.field,
            value: e.value.clone(),
            reason: e.reason.clone(),
        })?;
        let invalid = |field, value: String, reason: String| JobPlanError::Invalid { job_id, field, value, reason };
        let config = cell.wrn().map_err(|e| invalid("config", cell.label(), e.to_string()))?;
        let recipe = cell.recipe.clone();
        recipe.validate_for(cell.dataset).map_err(|e| invalid("recipe", format!("{recipe:?}"), e.to_string()))?;
        Ok(Self {
            job_id,
            attempt: job.attempt,
            lease_token: job.lease_token.clone(),
            label: cell.label(),
            checkpoint_every: widen(recipe.checkpoint_every),
            spec: RunSpec { config, dataset: cell.dataset, recipe, seed: cell.seed },
        })
    }

    pub fn epochs(&self) -> usize {
        widen(self.spec.recipe.epochs)
    }
}
