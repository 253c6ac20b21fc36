//! One training run of one cell: a WRN, a dataset, a recipe and a seed.
//!
//! Randomness per epoch e and step s (see [`crate::rng`]): the data order
//! comes from stream (seed, e, 0, DataOrder), the crops and flips of batch s
//! from (seed, e, s, Augment), its dropout masks from (seed, e, s, Dropout).
//! The run's state after an epoch is therefore its tensors plus the epoch
//! counter, which is exactly what a checkpoint holds.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{D, DType, Device, ModuleT, Tensor};
use widesweep_arch::{Dataset, WrnConfig, widen};

use super::checkpoint::{self, CheckpointState};
use super::optimizer::Sgd;
use super::{Recipe, TrainError};
use crate::data::batch::{HostBatch, make_batch};
use crate::data::prefetch::for_each_prefetched;
use crate::data::{ImageSet, Normalisation, Splits};
use crate::rng::{self, Purpose};
use crate::wrn::layers::Layout;
use crate::wrn::{ModelOptions, Wrn};

/// Batch size of evaluation passes (no gradients, so larger than training's).
const EVAL_BATCH: usize = 250;

/// Batches built ahead of the step (see [`for_each_prefetched`]): two keep
/// the device fed through a slow batch without holding many in memory.
const PREFETCH_BATCHES: usize = 2;

/// One cell as the trainer needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSpec {
    pub config: WrnConfig,
    pub dataset: Dataset,
    /// The recipe, subsets included (`recipe.train_subset`: train on that
    /// many images of the training set, the same ones for every seed;
    /// `recipe.test_subset`: evaluate on the first that many test images).
    pub recipe: Recipe,
    pub seed: u64,
}

pub use widesweep_arch::EpochMetrics;

/// Told about every finished epoch; the future job agent reports epochs over
/// gRPC and checkpoints through it. `Break` stops the run after this epoch.
pub trait EpochObserver {
    fn epoch_finished(&mut self, metrics: &EpochMetrics, trainer: &Trainer) -> Result<ControlFlow<()>, TrainError>;
}

/// An observer that does nothing.
pub struct Silent;

impl EpochObserver for Silent {
    fn epoch_finished(&mut self, _: &EpochMetrics, _: &Trainer) -> Result<ControlFlow<()>, TrainError> {
        Ok(ControlFlow::Continue(()))
    }
}

impl<F: FnMut(&EpochMetrics, &Trainer) -> Result<ControlFlow<()>, TrainError>> EpochObserver for F {
    fn epoch_finished(&mut self, metrics: &EpochMetrics, trainer: &Trainer) -> Result<ControlFlow<()>, TrainError> {
        self(metrics, trainer)
    }
}

pub struct Trainer {
    spec: RunSpec,
    model: Wrn,
    optimizer: Sgd,
    device: Device,
    /// The dataset, shared by every run of the process.
    splits: Arc<Splits>,
    /// The subsets of `train_subset` and `test_subset` when given (copies of
    /// those images only); the full splits are never copied.
    train_subset: Option<ImageSet>,
    test_subset: Option<ImageSet>,
    norm: Normalisation,
    epochs_done: usize,
    history: Vec<EpochMetrics>,
    /// Set by another thread to stop the run at the next step.
    abort: Option<Arc<AtomicBool>>,
}

impl Trainer {
    /// A fresh run: weights initialised from the spec's seed, on the
    /// device's fastest kernels.
    pub fn new(spec: RunSpec, splits: Arc<Splits>, device: &Device) -> Result<Self, TrainError> {
        let layout = ModelOptions::for_device(device, spec.recipe.precision).layout;
        Self::with_layout(spec, splits, device, layout)
    }

    /// As [`Trainer::new`] on the kernels of `layout` (a slot whose fastest
    /// kernels failed the self-check trains on candle's NCHW operators).
    pub fn with_layout(
        spec: RunSpec,
        splits: Arc<Splits>,
        device: &Device,
        layout: Layout,
    ) -> Result<Self, TrainError> {
        spec.recipe.validate_for(spec.dataset)?;
        if splits.train.channels != spec.config.in_channels {
            return Err(TrainError::Channels {
                dataset: spec.dataset.to_string(),
                found: splits.train.channels,
                expected: spec.config.in_channels,
            });
        }
        let train_subset = match spec.recipe.train_subset_len() {
            Some(n) if n < splits.train.len() => {
                let order = rng::permutation(&mut rng::stream(0, 0, 0, Purpose::Subset), splits.train.len());
                Some(splits.train.subset(&order[..n]))
            }
            _ => None,
        };
        let test_subset = match spec.recipe.test_subset_len() {
            Some(n) if n < splits.test.len() => Some(splits.test.subset(&(0..n).collect::<Vec<_>>())),
            _ => None,
        };
        let train_images = train_subset.as_ref().map_or(splits.train.len(), ImageSet::len);
        let batch = widen(spec.recipe.batch_size);
        if train_images < batch {
            return Err(TrainError::TooFewImages { images: train_images, batch });
        }
        let options = ModelOptions { layout, precision: spec.recipe.precision };
        let model = Wrn::with_options(&spec.config, spec.seed, DType::F32, device, options)?;
        tracing::info!(kernels = %options.kernels(device), "model built");
        let r = &spec.recipe;
        let optimizer = Sgd::new(model.store().params(), r.momentum, r.nesterov, r.weight_decay);
        let norm = Normalisation::of(spec.dataset);
        Ok(Self {
            spec,
            model,
            optimizer,
            device: device.clone(),
            splits,
            train_subset,
            test_subset,
            norm,
            epochs_done: 0,
            history: Vec::new(),
            abort: None,
        })
    }

    /// Continues the run saved at `path`; refuses a checkpoint of another
    /// cell (architecture, dataset, seed, recipe) or a corrupt file.
    pub fn resume(spec: RunSpec, splits: Arc<Splits>, device: &Device, path: &Path) -> Result<Self, TrainError> {
        let layout = ModelOptions::for_device(device, spec.recipe.precision).layout;
        Self::resume_with_layout(spec, splits, device, layout, path)
    }

    /// As [`Trainer::resume`] on the kernels of `layout`: checkpoints keep
    /// PyTorch's layout, so any layout resumes any checkpoint.
    pub fn resume_with_layout(
        spec: RunSpec,
        splits: Arc<Splits>,
        device: &Device,
        layout: Layout,
        path: &Path,
    ) -> Result<Self, TrainError> {
        let mut trainer = Self::with_layout(spec, splits, device, layout)?;
        let state = checkpoint::load(path, &trainer.spec, &trainer.model, &mut trainer.optimizer)?;
        trainer.epochs_done = state.epochs_done;
        trainer.history = state.history;
        Ok(trainer)
    }

    pub fn save_checkpoint(&self, path: &Path) -> Result<(), TrainError> {
        let state = CheckpointState { epochs_done: self.epochs_done, history: self.history.clone() };
        checkpoint::save(path, &self.spec, &self.model, &self.optimizer, &state)?;
        Ok(())
    }

    /// Makes the run stop at the next training step once `flag` is set,
    /// with [`TrainError::Aborted`]. The epoch in progress is lost: the
    /// trainer's state is then between two epochs and must not be saved.
    pub fn set_abort_flag(&mut self, flag: Arc<AtomicBool>) {
        self.abort = Some(flag);
    }

    /// The images a run trains on: the subset, or the whole training split.
    fn train_set(&self) -> &ImageSet {
        self.train_subset.as_ref().unwrap_or(&self.splits.train)
    }

    /// The images each epoch is evaluated on.
    fn test_set(&self) -> &ImageSet {
        self.test_subset.as_ref().unwrap_or(&self.splits.test)
    }

    pub fn spec(&self) -> &RunSpec {
        &self.spec
    }

    pub fn model(&self) -> &Wrn {
        &self.model
    }

    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// Metrics of every epoch so far, those before a resume included.
    pub fn history(&self) -> &[EpochMetrics] {
        &self.history
    }

    pub fn train_images(&self) -> usize {
        self.train_set().len()
    }

    /// Trains the remaining epochs of the recipe, telling `observer` after each.
    pub fn run(&mut self, observer: &mut dyn EpochObserver) -> Result<(), TrainError> {
        while self.epochs_done < widen(self.spec.recipe.epochs) {
            let metrics = self.train_epoch()?;
            if observer.epoch_finished(&metrics, self)?.is_break() {
                break;
            }
        }
        Ok(())
    }

    /// Trains one epoch and evaluates on the test set.
    pub fn train_epoch(&mut self) -> Result<EpochMetrics, TrainError> {
        let started = Instant::now();
        let epoch = self.epochs_done;
        let recipe = &self.spec.recipe;
        let (seed, batch) = (self.spec.seed, widen(recipe.batch_size));
        if recipe.reset_momentum_on_drop && recipe.drops_at(epoch) {
            self.optimizer.reset_momentum();
        }
        let lr = recipe.lr_at(epoch);
        let order =
            rng::permutation(&mut rng::stream(seed, epoch as u64, 0, Purpose::DataOrder), self.train_set().len());
        let steps = self.train_set().len() / batch;
        // Sums stay on the device so that a step never waits for the host.
        let mut loss_sum = Tensor::zeros((), DType::F32, &self.device)?;
        let mut wrong_sum = Tensor::zeros((), DType::F32, &self.device)?;
        // Fields, not methods: the batches borrow the data while the steps
        // update the optimizer.
        let (set, norm, augment) =
            (self.train_subset.as_ref().unwrap_or(&self.splits.train), &self.norm, recipe.augment);
        let make = |step: usize| {
            let indices = &order[step * batch..(step + 1) * batch];
            let mut stream = rng::stream(seed, epoch as u64, step as u64, Purpose::Augment);
            make_batch(set, indices, norm, augment.then_some(&mut stream))
        };
        let (model, optimizer, device, abort) = (&self.model, &mut self.optimizer, &self.device, &self.abort);
        for_each_prefetched(steps, PREFETCH_BATCHES, make, |step, host| {
            if abort.as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed)) {
                return Err(TrainError::Aborted { epoch: epoch + 1, step });
            }
            let (images, labels) = to_device(&host, device)?;
            model.reseed_dropout(seed, epoch as u64, step as u64);
            let logits = model.forward_t(&images, true)?;
            let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
            let grads = loss.backward()?;
            optimizer.step(&grads, lr)?;
            loss_sum = (&loss_sum + loss.detach())?;
            wrong_sum = (&wrong_sum + count_wrong(&logits.detach(), &labels)?)?;
            Ok(())
        })?;
        let train_loss = loss_sum.to_scalar::<f32>()? as f64 / steps as f64;
        let train_error = wrong_sum.to_scalar::<f32>()? as f64 / (steps * batch) as f64;
        let train_seconds = started.elapsed().as_secs_f64();
        if !train_loss.is_finite() {
            return Err(TrainError::Diverged { epoch: epoch + 1, loss: train_loss });
        }
        self.recalibrate_batch_norm(epoch)?;
        let (test_loss, test_error) = self.evaluate(self.test_set())?;
        self.epochs_done += 1;
        let metrics = EpochMetrics {
            epoch: u32::try_from(self.epochs_done).expect("a recipe's epochs count in u32"),
            lr,
            train_loss,
            train_error,
            test_loss,
            test_error,
            images_per_second: (steps * batch) as f64 / train_seconds,
            epoch_seconds: started.elapsed().as_secs_f64(),
        };
        tracing::info!(
            epoch = metrics.epoch,
            train_loss,
            train_error,
            test_error,
            images_per_second = metrics.images_per_second,
            "epoch finished"
        );
        self.history.push(metrics);
        Ok(metrics)
    }

    /// Precise batch norm, when the recipe asks: the running statistics
    /// become the exact average over `recipe.bn_recalibration_batches`
    /// un-augmented training batches (at most the training set's), drawn by
    /// the seed and the epoch, so that a resumed run draws the same ones.
    fn recalibrate_batch_norm(&self, epoch: usize) -> Result<(), TrainError> {
        let recipe = &self.spec.recipe;
        let batch = widen(recipe.batch_size);
        let set = self.train_set();
        let batches = widen(recipe.bn_recalibration_batches).min(set.len() / batch);
        if batches == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let mut stream = rng::stream(self.spec.seed, epoch as u64, 0, Purpose::BnRecalibration);
        let order = rng::permutation(&mut stream, set.len());
        let images = (0..batches).map(|b| {
            let host = make_batch(set, &order[b * batch..(b + 1) * batch], &self.norm, None);
            to_device(&host, &self.device).map(|(images, _)| images)
        });
        self.model.recalibrate_batch_norm(images)?;
        tracing::debug!(batches, seconds = started.elapsed().as_secs_f64(), "batch norm re-estimated");
        Ok(())
    }

    /// Mean loss and error of the model in evaluation mode over `set`.
    pub fn evaluate(&self, set: &ImageSet) -> Result<(f64, f64), TrainError> {
        let mut loss_sum = Tensor::zeros((), DType::F32, &self.device)?;
        let mut wrong_sum = Tensor::zeros((), DType::F32, &self.device)?;
        let all: Vec<usize> = (0..set.len()).collect();
        let chunks: Vec<&[usize]> = all.chunks(EVAL_BATCH).collect();
        let make = |i: usize| make_batch(set, chunks[i], &self.norm, None);
        for_each_prefetched(chunks.len(), PREFETCH_BATCHES, make, |_, host| -> Result<(), TrainError> {
            let (images, labels) = to_device(&host, &self.device)?;
            // Detached: otherwise the sums keep every batch's computation
            // graph, activations included, alive until the end of the pass.
            let logits = self.model.forward_t(&images, false)?.detach();
            let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
            loss_sum = (&loss_sum + (loss * host.len() as f64)?)?;
            wrong_sum = (&wrong_sum + count_wrong(&logits, &labels)?)?;
            Ok(())
        })?;
        let n = set.len().max(1) as f64;
        Ok((loss_sum.to_scalar::<f32>()? as f64 / n, wrong_sum.to_scalar::<f32>()? as f64 / n))
    }
}

fn to_device(host: &HostBatch, device: &Device) -> candle_core::Result<(Tensor, Tensor)> {
    let side = widesweep_arch::IMAGE_SIZE;
    let images =
        Tensor::from_slice(&host.pixels, (host.len(), host.channels, side, side), &Device::Cpu)?.to_device(device)?;
    let labels = Tensor::from_slice(&host.labels, host.len(), &Device::Cpu)?.to_device(device)?;
    Ok((images, labels))
}

/// Misclassified samples of a batch, as an f32 scalar on the device.
fn count_wrong(logits: &Tensor, labels: &Tensor) -> candle_core::Result<Tensor> {
    let predicted = logits.argmax(D::Minus1)?;
    predicted.ne(labels)?.to_dtype(DType::F32)?.sum_all()
}
