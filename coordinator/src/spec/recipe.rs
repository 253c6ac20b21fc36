use serde::{Deserialize, Serialize};
use widesweep_arch::Precision;

use super::SpecError;

/// The training recipe of every cell of a sweep. Defaults are the paper's
/// CIFAR recipe (wrn-facts.md): SGD, Nesterov momentum 0.9, weight decay
/// 5e-4, batch 128, lr 0.1 x0.2 at epochs 60, 120, 160, 200 epochs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Recipe {
    pub epochs: u32,
    pub batch_size: u32,
    pub lr: f64,
    pub lr_milestones: Vec<u32>,
    pub lr_gamma: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub weight_decay: f64,
    /// Reset the momentum buffers at each learning-rate drop, as the
    /// official code does.
    pub reset_momentum_on_drop: bool,
    /// Train on the first N training images only (quick studies); 0 = all.
    pub train_subset: u32,
    /// Evaluate each epoch on the first N test images only; 0 = all.
    /// Left out of the canonical config when 0, so that the hashes of
    /// cells written before this field existed do not change.
    #[serde(skip_serializing_if = "is_zero")]
    pub test_subset: u32,
    /// Random reflect-padded crops and horizontal flips of training images
    /// (the paper's augmentation). Left out of the canonical config when
    /// true, for the same reason as `test_subset`.
    #[serde(skip_serializing_if = "is_true")]
    pub augment: bool,
    /// Upload a checkpoint every N epochs; 0 disables periodic checkpoints.
    pub checkpoint_every: u32,
    /// "f32" or "bf16" (mixed precision, f32 master weights). Left out of
    /// the canonical config at f32, for the same reason as `test_subset`.
    #[serde(skip_serializing_if = "Precision::is_default")]
    pub precision: Precision,
}

impl Default for Recipe {
    fn default() -> Self {
        Self {
            epochs: 200,
            batch_size: 128,
            lr: 0.1,
            lr_milestones: vec![60, 120, 160],
            lr_gamma: 0.2,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-4,
            reset_momentum_on_drop: true,
            train_subset: 0,
            test_subset: 0,
            augment: true,
            checkpoint_every: 1,
            precision: Precision::F32,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_true(b: &bool) -> bool {
    *b
}

impl Recipe {
    pub fn validate(&self) -> Result<(), SpecError> {
        let bad = |field: &str, message: String| Err(SpecError::field(format!("recipe.{field}"), message));
        if self.epochs == 0 || self.epochs > 10_000 {
            return bad("epochs", format!("{} is invalid: use 1 to 10000", self.epochs));
        }
        if self.batch_size == 0 || self.batch_size > 65_536 {
            return bad("batch_size", format!("{} is invalid: use 1 to 65536", self.batch_size));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("{} is invalid: use a positive learning rate", self.lr));
        }
        if !(self.lr_gamma.is_finite() && self.lr_gamma > 0.0 && self.lr_gamma <= 1.0) {
            return bad("lr_gamma", format!("{} is invalid: use a factor in (0, 1]", self.lr_gamma));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad("momentum", format!("{} is invalid: use a value in [0, 1)", self.momentum));
        }
        if self.nesterov && self.momentum == 0.0 {
            return bad("nesterov", "Nesterov momentum needs momentum > 0".to_string());
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", format!("{} is invalid: use a value >= 0", self.weight_decay));
        }
        for pair in self.lr_milestones.windows(2) {
            if pair[0] >= pair[1] {
                return bad("lr_milestones", format!("{:?} must be strictly increasing", self.lr_milestones));
            }
        }
        if let Some(&last) = self.lr_milestones.last()
            && last >= self.epochs
        {
            return bad(
                "lr_milestones",
                format!("milestone {last} is not before the last epoch ({}); use epochs below it", self.epochs),
            );
        }
        if self.lr_milestones.first() == Some(&0) {
            return bad("lr_milestones", "milestones count epochs from 1; 0 is invalid".to_string());
        }
        Ok(())
    }
}
