//! The training recipe: the paper's CIFAR defaults (Zagoruyko & Komodakis,
//! BMVC 2016, section 4, and the official code).

use serde::{Deserialize, Serialize};
use widesweep_arch::Precision;

/// Everything about how a network is trained, apart from the network (its
/// dropout rate is part of the config) and the seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Recipe {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// Epochs (0-based) at whose start the learning rate is multiplied by `lr_gamma`.
    pub lr_milestones: Vec<usize>,
    pub lr_gamma: f64,
    pub momentum: f64,
    pub nesterov: bool,
    /// L2 penalty on every parameter, BN and biases included.
    pub weight_decay: f64,
    /// Zero the momentum buffers at each learning-rate drop. The official
    /// code does this, because it builds a fresh optimizer at every
    /// milestone; turn it off to keep momentum across drops as PyTorch's
    /// MultiStepLR would.
    pub reset_momentum_on_drop: bool,
    /// Random reflect-padded crops and horizontal flips of training images.
    pub augment: bool,
    /// f32, or bf16 mixed precision (see [`Precision`]). Checkpoints written
    /// before this field existed read back as f32, which they trained in.
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
            augment: true,
            precision: Precision::F32,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecipeError {
    #[error("epochs = {0} is invalid: train at least 1 epoch")]
    Epochs(usize),
    #[error("batch_size = {0} is invalid: use at least 2 (batch norm needs two samples)")]
    BatchSize(usize),
    #[error("lr = {0} is invalid: use a positive learning rate")]
    Lr(f64),
    #[error("lr_gamma = {0} is invalid: use a factor in (0, 1]")]
    Gamma(f64),
    #[error("momentum = {0} is invalid: use a value in [0, 1)")]
    Momentum(f64),
    #[error("nesterov = true needs momentum > 0")]
    NesterovWithoutMomentum,
    #[error("weight_decay = {0} is invalid: use a non-negative value")]
    WeightDecay(f64),
    #[error("lr_milestones = {0:?} is invalid: use strictly increasing epochs")]
    Milestones(Vec<usize>),
}

impl Recipe {
    pub fn validate(&self) -> Result<(), RecipeError> {
        if self.epochs == 0 {
            return Err(RecipeError::Epochs(self.epochs));
        }
        if self.batch_size < 2 {
            return Err(RecipeError::BatchSize(self.batch_size));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(RecipeError::Lr(self.lr));
        }
        if !(self.lr_gamma > 0.0 && self.lr_gamma <= 1.0) {
            return Err(RecipeError::Gamma(self.lr_gamma));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(RecipeError::Momentum(self.momentum));
        }
        if self.nesterov && self.momentum == 0.0 {
            return Err(RecipeError::NesterovWithoutMomentum);
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return Err(RecipeError::WeightDecay(self.weight_decay));
        }
        if self.lr_milestones.windows(2).any(|w| w[0] >= w[1]) {
            return Err(RecipeError::Milestones(self.lr_milestones.clone()));
        }
        Ok(())
    }

    /// Learning rate during 0-based `epoch`: lr * gamma^(milestones passed).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let drops = self.lr_milestones.iter().filter(|m| **m <= epoch).count();
        self.lr * self.lr_gamma.powi(drops as i32)
    }

    /// Whether the learning rate drops at the start of 0-based `epoch`.
    pub fn drops_at(&self, epoch: usize) -> bool {
        epoch > 0 && self.lr_milestones.contains(&epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_follows_the_paper() {
        let r = Recipe::default();
        assert_eq!(r.lr_at(0), 0.1);
        assert_eq!(r.lr_at(59), 0.1);
        assert!((r.lr_at(60) - 0.02).abs() < 1e-12);
        assert!((r.lr_at(199) - 0.1 * 0.2f64.powi(3)).abs() < 1e-12);
        assert!(r.drops_at(120) && !r.drops_at(121));
        r.validate().unwrap();
    }

    #[test]
    fn invalid_recipes_name_the_field() {
        let r = Recipe { lr_milestones: vec![60, 30], ..Recipe::default() };
        assert!(r.validate().unwrap_err().to_string().contains("lr_milestones"));
        let r = Recipe { momentum: 0.0, ..Recipe::default() };
        assert!(r.validate().unwrap_err().to_string().contains("nesterov"));
    }

    #[test]
    fn serde_fills_defaults() {
        let r: Recipe = serde_json::from_str(r#"{"epochs": 3}"#).unwrap();
        assert_eq!(r, Recipe { epochs: 3, ..Recipe::default() });
    }
}
