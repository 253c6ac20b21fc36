//! A leased job, as the trainer needs it: the gRPC cell config turned into
//! a [`RunSpec`], checked with the same rules as a local `widesweep train`.

use widesweep_arch::{BlockPattern, Dataset, Precision, WrnConfig};
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
            cell.blocks_per_group as usize,
            cell.width as usize,
            cell.dropout,
            dataset.in_channels(),
            dataset.num_classes(),
        )
        .map_err(|e| invalid("config", &cell, e.to_string()))?;
        // The spec's "lr drops after N epochs" is the trainer's "at the
        // start of 0-based epoch N": the same number.
        let recipe = Recipe {
            epochs: r.epochs as usize,
            batch_size: r.batch_size as usize,
            lr: r.lr,
            lr_milestones: r.lr_milestones.iter().map(|m| *m as usize).collect(),
            lr_gamma: r.lr_gamma,
            momentum: r.momentum,
            nesterov: r.nesterov,
            weight_decay: r.weight_decay,
            reset_momentum_on_drop: r.reset_momentum_on_drop,
            augment: r.augment.unwrap_or(true),
            precision: Precision::from_wire(&r.precision)
                .map_err(|e| invalid("recipe.precision", &r.precision, e.to_string()))?,
        };
        recipe.validate().map_err(|e| invalid("recipe", r, e.to_string()))?;
        let train_subset = (r.train_subset > 0).then_some(r.train_subset as usize);
        let test_subset = (r.test_subset > 0).then_some(r.test_subset as usize);
        Ok(Self {
            job_id,
            attempt: job.attempt,
            lease_token: job.lease_token.clone(),
            label: cell_label(cell),
            spec: RunSpec { config, dataset, recipe, seed: cell.seed, train_subset, test_subset },
            checkpoint_every: r.checkpoint_every as usize,
        })
    }

    pub fn epochs(&self) -> usize {
        self.spec.recipe.epochs
    }
}

/// `WRN-16-4 B(3,3) seed 1`, with the dropout when there is some.
pub fn cell_label(cell: &pb::CellConfig) -> String {
    let dropout = if cell.dropout > 0.0 { format!(" dropout {}", cell.dropout) } else { String::new() };
    format!("WRN-{}-{} {}{dropout} seed {}", cell.depth, cell.width, cell.block, cell.seed)
}
