//! The cost model: how much work one job is, independent of the device, so
//! that jobs can be ordered longest first and their seconds predicted from a
//! device's measured rate.
//!
//! A job's work is counted in FLOP-equivalents:
//! - training: 6 FLOPs per forward multiply-accumulate per image (forward
//!   2, backward 4), for every image of every epoch;
//! - evaluation and batch-norm re-estimation: 2 per MAC per image (forward
//!   only);
//! - memory-bound layers (batch norm, ReLU, the residual additions, the
//!   optimizer's traffic): [`MEMORY_FLOPS_PER_ELEMENT`] per activation
//!   element a training step keeps, a term that weighs more in thin
//!   networks (WRN-40-1) than in wide ones, whose time the convolutions set.
//!
//! Leasing orders jobs by this work, so the model only has to get the
//! *ratios* between jobs right, which the shape terms above do. Predicting
//! seconds needs a device kind's rate in FLOP-equivalents per second: the
//! coordinator learns it from the epochs each device reports (its store's
//! `device_rates`), and `widesweep plan --device` applies it.

use crate::{Dataset, NetworkPlan, Recipe, widen};

/// FLOP-equivalents charged per activation element a training step keeps.
/// On the CPU kernels and on GPUs alike an element costs a few reads and
/// writes in batch norm, ReLU, the residual sum and their backward passes;
/// at a FLOP-to-byte balance of 10 to 50 that is worth about this much
/// arithmetic.
pub const MEMORY_FLOPS_PER_ELEMENT: f64 = 32.0;

/// The work of one job, split by kind, in FLOP-equivalents.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JobWork {
    pub train: f64,
    pub evaluate: f64,
    pub memory: f64,
}

impl JobWork {
    /// The work of training `plan` with `recipe` on `dataset`: every epoch,
    /// its evaluation and its batch-norm re-estimation.
    pub fn of(plan: &NetworkPlan, recipe: &Recipe, dataset: Dataset) -> Self {
        let batch = widen(recipe.batch_size).max(1);
        let per_epoch = recipe.train_images_per_epoch(dataset);
        let train_images = per_epoch as f64;
        let test_images = recipe.test_subset_len().map_or(dataset.test_size(), |n| n.min(dataset.test_size())) as f64;
        // As the trainer: at most the batches one epoch holds.
        let recalibration_images = (widen(recipe.bn_recalibration_batches).min(per_epoch / batch) * batch) as f64;
        let epochs = f64::from(recipe.epochs);
        let macs = plan.forward_macs() as f64;
        Self {
            train: 6.0 * macs * train_images * epochs,
            evaluate: 2.0 * macs * (test_images + recalibration_images) * epochs,
            memory: MEMORY_FLOPS_PER_ELEMENT * plan.activation_elems() as f64 * train_images * epochs,
        }
    }

    pub fn total(&self) -> f64 {
        self.train + self.evaluate + self.memory
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WrnConfig;

    fn work(depth: usize, k: usize, recipe: &Recipe) -> JobWork {
        JobWork::of(&WrnConfig::wrn(depth, k, Dataset::Cifar10).unwrap().plan(), recipe, Dataset::Cifar10)
    }

    #[test]
    fn training_dominates_and_scales_with_epochs_and_images() {
        let paper = Recipe::default();
        let w = work(28, 10, &paper);
        let macs = WrnConfig::wrn(28, 10, Dataset::Cifar10).unwrap().plan().forward_macs() as f64;
        // 390 full batches of 128 out of 50,000 images, 200 epochs.
        assert_eq!(w.train, 6.0 * macs * 49_920.0 * 200.0);
        assert_eq!(w.evaluate, 2.0 * macs * 10_000.0 * 200.0);
        assert!(w.train > 10.0 * w.evaluate && w.train > w.memory, "{w:?}");
        let half = work(28, 10, &Recipe { epochs: 100, lr_milestones: vec![30, 60, 80], ..paper.clone() });
        assert!((w.total() / half.total() - 2.0).abs() < 1e-12);
        let subset = work(28, 10, &Recipe { train_subset: 1000, test_subset: 100, ..paper });
        assert_eq!(subset.train, 6.0 * macs * 896.0 * 200.0, "7 batches of 128");
        assert_eq!(subset.evaluate, 2.0 * macs * 100.0 * 200.0);
    }

    #[test]
    fn re_estimating_batch_norm_is_charged_as_forward_passes_capped_by_the_data() {
        let base =
            Recipe { epochs: 2, lr_milestones: vec![1], train_subset: 1024, test_subset: 1000, ..Recipe::default() };
        let with = Recipe { bn_recalibration_batches: 50, ..base.clone() };
        let macs = WrnConfig::wrn(28, 10, Dataset::Cifar10).unwrap().plan().forward_macs() as f64;
        let extra = work(28, 10, &with).evaluate - work(28, 10, &base).evaluate;
        // 1,024 images hold 8 batches of 128: at most those are re-used.
        assert_eq!(extra, 2.0 * macs * 1024.0 * 2.0);
    }

    /// The ranking the longest-first schedule relies on: wider and deeper
    /// networks of the paper's Table 4 cost more.
    #[test]
    fn the_model_ranks_networks_by_size() {
        let r = Recipe::default();
        let order = [(40, 1), (40, 2), (16, 4), (40, 4), (16, 8), (16, 10), (28, 10)];
        let totals: Vec<f64> = order.iter().map(|&(d, k)| work(d, k, &r).total()).collect();
        for (pair, names) in totals.windows(2).zip(order.windows(2)) {
            assert!(pair[0] < pair[1], "{names:?}: {pair:?}");
        }
        // The memory term weighs more in a thin network than in a wide one.
        let share = |w: JobWork| w.memory / w.train;
        assert!(share(work(40, 1, &r)) > 2.0 * share(work(28, 10, &r)));
    }
}
