//! The training loop: learning, determinism, checkpoint-resume bit identity
//! and refusal of foreign or corrupt checkpoints.

mod common;

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use widesweep_arch::{Dataset, Precision, WrnConfig};
use widesweep_worker::data::{ImageSet, Splits, cifar};
use widesweep_worker::train::trainer::Silent;
use widesweep_worker::train::{EpochMetrics, Recipe, RunSpec, TrainError, Trainer};

fn synthetic(train: usize, test: usize) -> Arc<Splits> {
    let set = |n, seed| -> ImageSet {
        cifar::parse(Path::new("synthetic"), &common::cifar10_bytes(n, seed), cifar::CIFAR10, None).unwrap()
    };
    Arc::new(Splits { dataset: Dataset::Cifar10, train: set(train, 1), test: set(test, 2) })
}

/// Milestones at 1 and 2 where the run is long enough for them (a
/// milestone must come before the last epoch).
fn tiny_spec(dropout: f64, epochs: u32, batch: u32) -> RunSpec {
    let config = WrnConfig::new("B(3,3)".parse().unwrap(), 1, 1, dropout, 3, 10).unwrap();
    let lr_milestones = [1, 2].into_iter().filter(|m| *m < epochs).collect();
    let recipe = Recipe { epochs, batch_size: batch, lr: 0.05, lr_milestones, ..Recipe::default() };
    RunSpec { config, dataset: Dataset::Cifar10, recipe, seed: 7 }
}

fn weights(trainer: &Trainer) -> Vec<(String, Vec<f32>)> {
    trainer
        .model()
        .store()
        .all()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().flatten_all().unwrap().to_vec1::<f32>().unwrap()))
        .collect()
}

/// Metrics without the wall-clock fields, for exact comparison.
fn curve(history: &[EpochMetrics]) -> Vec<[u64; 6]> {
    history
        .iter()
        .map(|m| {
            [
                u64::from(m.epoch),
                m.lr.to_bits(),
                m.train_loss.to_bits(),
                m.train_error.to_bits(),
                m.test_loss.to_bits(),
                m.test_error.to_bits(),
            ]
        })
        .collect()
}

#[test]
fn a_tiny_wrn_learns_a_learnable_synthetic_set() {
    let splits = synthetic(160, 100);
    let mut spec = tiny_spec(0.0, 12, 8);
    spec.recipe.lr_milestones = vec![8];
    // Crops shift the 3-pixel class bands by up to 4 pixels: off, so the set stays learnable.
    spec.recipe.augment = false;
    let mut trainer = Trainer::new(spec, splits, &Device::Cpu).unwrap();
    trainer.run(&mut Silent).unwrap();
    let last = trainer.history().last().unwrap();
    // 12 epochs of 20 steps = 240 steps; chance is 90% error.
    assert!(last.train_error < 0.1, "train error {} after 240 steps: {:?}", last.train_error, trainer.history());
    assert!(last.test_error < 0.2, "test error {}", last.test_error);
    assert!(last.train_loss < trainer.history()[0].train_loss);
}

#[test]
fn the_same_seed_gives_a_bit_identical_run() {
    let splits = synthetic(96, 40);
    let run = || {
        let mut t = Trainer::new(tiny_spec(0.3, 3, 32), splits.clone(), &Device::Cpu).unwrap();
        t.run(&mut Silent).unwrap();
        t
    };
    let (a, b) = (run(), run());
    assert_eq!(curve(a.history()), curve(b.history()));
    assert_eq!(weights(&a), weights(&b));
    let mut other = tiny_spec(0.3, 3, 32);
    other.seed = 8;
    let mut c = Trainer::new(other, splits, &Device::Cpu).unwrap();
    c.run(&mut Silent).unwrap();
    assert_ne!(curve(a.history()), curve(c.history()), "another seed, another run");
}

#[test]
fn resuming_from_a_checkpoint_is_bit_identical_to_an_uninterrupted_run() {
    let splits = synthetic(96, 40);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    // Milestones at 1 and 2: the resumed epochs cross a learning-rate drop
    // with its momentum reset.
    let mut full = Trainer::new(tiny_spec(0.3, 3, 32), splits.clone(), &Device::Cpu).unwrap();
    full.run(&mut Silent).unwrap();

    let mut first = Trainer::new(tiny_spec(0.3, 3, 32), splits.clone(), &Device::Cpu).unwrap();
    let mut stop_after_one = |_: &EpochMetrics, t: &Trainer| -> Result<ControlFlow<()>, TrainError> {
        t.save_checkpoint(&path)?;
        Ok(ControlFlow::Break(()))
    };
    first.run(&mut stop_after_one).unwrap();
    assert_eq!(first.epochs_done(), 1);
    drop(first);

    let mut resumed = Trainer::resume(tiny_spec(0.3, 3, 32), splits, &Device::Cpu, &path).unwrap();
    assert_eq!(resumed.epochs_done(), 1);
    resumed.run(&mut Silent).unwrap();
    assert_eq!(curve(resumed.history()), curve(full.history()));
    assert_eq!(weights(&resumed), weights(&full));
}

#[test]
fn foreign_and_corrupt_checkpoints_are_refused() {
    let splits = synthetic(64, 20);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    // One epoch of three, so that extending the run keeps its milestones.
    let mut t = Trainer::new(tiny_spec(0.0, 3, 32), splits.clone(), &Device::Cpu).unwrap();
    t.train_epoch().unwrap();
    t.save_checkpoint(&path).unwrap();

    let mut wider = tiny_spec(0.0, 3, 32);
    wider.config = WrnConfig::new("B(3,3)".parse().unwrap(), 1, 2, 0.0, 3, 10).unwrap();
    let err = Trainer::resume(wider, splits.clone(), &Device::Cpu, &path).err().unwrap().to_string();
    assert!(err.contains("another cell") && err.contains("architecture") && err.contains("WRN-10-2"), "{err}");

    let mut reseeded = tiny_spec(0.0, 3, 32);
    reseeded.seed = 99;
    let err = Trainer::resume(reseeded, splits.clone(), &Device::Cpu, &path).err().unwrap().to_string();
    assert!(err.contains("seed is 7, this run's is 99"), "{err}");

    // More epochs is allowed: a run can be extended.
    Trainer::resume(tiny_spec(0.0, 4, 32), splits.clone(), &Device::Cpu, &path).unwrap();
    // Another recipe is not.
    let mut faster = tiny_spec(0.0, 3, 32);
    faster.recipe.lr = 0.1;
    let err = Trainer::resume(faster, splits.clone(), &Device::Cpu, &path).err().unwrap().to_string();
    assert!(err.contains("another cell") && err.contains("recipe"), "{err}");
    let mut subset = tiny_spec(0.0, 3, 32);
    subset.recipe.train_subset = 32;
    let err = Trainer::resume(subset, splits.clone(), &Device::Cpu, &path).err().unwrap().to_string();
    assert!(err.contains("train_subset is None, this run's is Some(32)"), "{err}");

    let bytes = std::fs::read(&path).unwrap();
    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() - 100]).unwrap();
    let err =
        Trainer::resume(tiny_spec(0.0, 1, 32), splits.clone(), &Device::Cpu, &truncated).err().unwrap().to_string();
    assert!(err.contains("truncated.safetensors") && err.contains("corrupt"), "{err}");

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a checkpoint at all").unwrap();
    let err = Trainer::resume(tiny_spec(0.0, 1, 32), splits, &Device::Cpu, &garbage).err().unwrap().to_string();
    assert!(err.contains("garbage.safetensors") && err.contains("corrupt"), "{err}");
}

/// `bench train`'s step learns (its fixed synthetic batch gets memorised)
/// and, on the CPU, gives the same losses bit for bit on a second run: the
/// reference that a device's losses are compared with.
#[test]
fn bench_steps_learn_and_repeat_exactly_on_the_cpu() {
    use widesweep_worker::train::bench::{BenchOptions, bench_train};
    let config = WrnConfig::new("B(3,3)".parse().unwrap(), 1, 1, 0.0, 3, 10).unwrap();
    let options = BenchOptions { batch_size: 8, warmup_steps: 2, steps: 28, layout: None, precision: Precision::F32 };
    let first = bench_train(&config, &options, &Device::Cpu).unwrap();
    let again = bench_train(&config, &options, &Device::Cpu).unwrap();
    assert_eq!(first.losses.len(), 30, "one loss per step, warm-up included");
    let (start, end) = (first.losses[0], *first.losses.last().unwrap());
    assert!(start > 1.5 && end < 0.5 * start, "loss {start} -> {end}: the batch was not learnt");
    assert_eq!(first.losses, again.losses, "CPU losses differ between two identical runs");
}

/// bf16 mixed precision trains: the memorised batch's loss falls as in f32,
/// starts where f32 starts (same weights, bf16 rounding apart), and repeats
/// bit for bit on the CPU.
#[test]
fn bf16_bench_steps_learn_like_f32_and_repeat_exactly() {
    use widesweep_worker::train::bench::{BenchOptions, bench_train};
    let config = WrnConfig::new("B(3,3)".parse().unwrap(), 1, 1, 0.0, 3, 10).unwrap();
    let f32 = BenchOptions { batch_size: 8, warmup_steps: 0, steps: 20, layout: None, precision: Precision::F32 };
    let bf16 = BenchOptions { precision: Precision::Bf16, ..f32.clone() };
    let reference = bench_train(&config, &f32, &Device::Cpu).unwrap().losses;
    let first = bench_train(&config, &bf16, &Device::Cpu).unwrap().losses;
    let again = bench_train(&config, &bf16, &Device::Cpu).unwrap().losses;
    assert_eq!(first, again, "bf16 losses differ between two identical CPU runs");
    let (start, end) = (first[0], *first.last().unwrap());
    assert!((start - reference[0]).abs() < 0.02 * reference[0], "first loss {start} (bf16) vs {} (f32)", reference[0]);
    assert!(end < 0.5 * start, "bf16 loss {start} -> {end}: the batch was not learnt (f32: -> {})", reference[19]);
}

/// A bf16 run's checkpoints hold f32 master weights and resume into the
/// same run, bit for bit, as an uninterrupted one.
#[test]
fn a_bf16_run_resumes_bit_identically() {
    let splits = synthetic(32, 16);
    let mut spec = tiny_spec(0.3, 2, 8);
    spec.recipe.precision = Precision::Bf16;
    let mut straight = Trainer::new(spec.clone(), splits.clone(), &Device::Cpu).unwrap();
    straight.run(&mut Silent).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bf16.ckpt");
    let mut first = Trainer::new(spec.clone(), splits.clone(), &Device::Cpu).unwrap();
    first.train_epoch().unwrap();
    first.save_checkpoint(&path).unwrap();
    let mut resumed = Trainer::resume(spec.clone(), splits.clone(), &Device::Cpu, &path).unwrap();
    resumed.run(&mut Silent).unwrap();
    assert_eq!(curve(straight.history()), curve(resumed.history()));
    assert_eq!(weights(&straight), weights(&resumed));
    assert!(straight.history().iter().all(|m| m.train_loss.is_finite() && m.test_loss.is_finite()));
    let f32_spec = RunSpec { recipe: Recipe { precision: Precision::F32, ..spec.recipe.clone() }, ..spec };
    let refused = Trainer::resume(f32_spec, splits, &Device::Cpu, &path).err().expect("another recipe is refused");
    assert!(refused.to_string().contains("precision"), "{refused}");
}
