//! The self-check a slot runs before its first job: the kernels it is
//! about to train with compute a tiny seeded WRN's forward and backward
//! pass, and the result is compared with the CPU reference kernels in f64
//! (the oracle). Code that has never met this device (a new GPU, a new
//! cuDNN, a kernel of ours never run on it) then cannot silently train
//! wrong: on a mismatch the slot logs which tensor disagreed and by how
//! much, and falls back to candle's generic operators, checked the same
//! way; with no path that agrees it trains nothing.
//!
//! The network is WRN-10-1 with the B(1,3,1) block (1x1, 3x3 and strided
//! convolutions, a projection shortcut, every batch norm, dropout) on sixteen 3x16x16
//! images, its loss a fixed random weighting of the logits; after the
//! training pass, an evaluation pass with the running statistics it
//! updated, and two optimizer steps: every kind of kernel a WRN uses, in a
//! fraction of a second. A
//! pass that fails to run on the fastest kernels counts as a disagreement.

use candle_core::{DType, Device, ModuleT, Tensor};
use widesweep_arch::{Precision, WrnConfig};

use crate::rng;
use crate::train::optimizer::Sgd;
use crate::wrn::layers::Layout;
use crate::wrn::{ModelOptions, Wrn};

/// How the slot's self-check runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SelfCheckMode {
    /// Check each kernel path before it first trains.
    #[default]
    On,
    /// Trust the kernels (saves the check's second or two per slot).
    Off,
    /// For tests of the fallback: the fastest path's result is perturbed
    /// before the comparison, as a broken kernel's would be.
    FailFastest,
}

/// Agreement with the oracle, by precision: the L2 norm of a tensor's
/// difference over the norm of the oracle's tensor. On the CPU, f32 is
/// within 1e-5 of f64. bf16 gradients are not close: 0.42 on this
/// network's seeded inputs with dropout 0.3 (L2, the worst the first batch
/// norm's gamma gradient; 0.32 without dropout, 0.30 to 0.33 on unseeded
/// inputs tried before; logits and parameters after the SGD steps much
/// closer), as each layer's bf16 rounding is amplified by the batch norms'
/// backward passes; TF32 tensor cores
/// (f32 on CUDA, 10-bit mantissa against bf16's 8) sit between the two.
/// The bounds leave that room and still catch what broken kernels do: a
/// gradient of the wrong sign or input, a transposed filter, a lost stride
/// or NaN are off by 1 or more.
pub fn tolerance(precision: Precision) -> f64 {
    match precision {
        Precision::F32 => 0.1,
        Precision::Bf16 => 0.6,
    }
}

/// One compared tensor: the logits, the loss, or a parameter's gradient.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorError {
    pub name: String,
    /// |candidate - oracle| / |oracle| in the L2 norm (the difference's
    /// norm alone when the oracle is all zeros).
    pub relative: f64,
}

/// What one kernel path's check found.
#[derive(Clone, Debug)]
pub struct CheckReport {
    pub options: ModelOptions,
    pub tolerance: f64,
    /// Tensors compared (logits, loss, every parameter's gradient).
    pub compared: usize,
    /// The tensor that agreed least.
    pub worst: TensorError,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.worst.relative <= self.tolerance
    }

    /// The report of a path whose pass did not run to the end (a kernel
    /// that does not support a shape, a launch that fails): it disagrees.
    pub fn failed(options: ModelOptions, error: &candle_core::Error) -> Self {
        let message = error.to_string().lines().next().unwrap_or("").to_string();
        CheckReport {
            options,
            tolerance: tolerance(options.precision),
            compared: 0,
            worst: TensorError { name: message, relative: f64::INFINITY },
        }
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.compared == 0 {
            return write!(f, "FAILED to run: {}", self.worst.name);
        }
        write!(
            f,
            "{} of {} tensors: worst {} at {:.2e} (tolerance {})",
            if self.passed() { "agreed" } else { "DISAGREED" },
            self.compared,
            self.worst.name,
            self.worst.relative,
            self.tolerance
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SelfCheckError {
    #[error("the self-check could not run: {0}")]
    Candle(#[from] candle_core::Error),
    #[error(
        "no kernel path of this device agrees with the CPU reference ({}): it trains nothing",
        .reports.iter().map(|r| format!("{:?} {:?}: {r}", r.options.layout, r.options.precision)).collect::<Vec<_>>().join("; ")
    )]
    NoPath { reports: Vec<CheckReport> },
}

/// The kernels a slot on `device` trains `precision` with: the fastest
/// ones if they agree with the oracle, else candle's generic operators if
/// those do. Every check's report is returned, for the logs.
pub fn choose(
    device: &Device,
    precision: Precision,
    mode: SelfCheckMode,
) -> Result<(ModelOptions, Vec<CheckReport>), SelfCheckError> {
    let fastest = ModelOptions::for_device(device, precision);
    if mode == SelfCheckMode::Off {
        return Ok((fastest, Vec::new()));
    }
    // The fastest kernels are the ones that may never have met this
    // device: their failing to run is a disagreement, not the end.
    let first = match check(device, fastest, mode == SelfCheckMode::FailFastest) {
        Err(SelfCheckError::Candle(error)) => CheckReport::failed(fastest, &error),
        other => other?,
    };
    if first.passed() {
        return Ok((fastest, vec![first]));
    }
    let generic = ModelOptions { layout: Layout::Nchw, precision };
    if generic == fastest {
        return Err(SelfCheckError::NoPath { reports: vec![first] });
    }
    let second = check(device, generic, false)?;
    if second.passed() {
        Ok((generic, vec![first, second]))
    } else {
        Err(SelfCheckError::NoPath { reports: vec![first, second] })
    }
}

/// One forward and backward pass of the check network with `options` on
/// `device`, compared with the oracle's. `perturb` flips the first
/// gradient's sign before the comparison (what a broken kernel looks like).
pub fn check(device: &Device, options: ModelOptions, perturb: bool) -> Result<CheckReport, SelfCheckError> {
    let config = WrnConfig::new("B(1,3,1)".parse().expect("a valid block"), 1, 1, DROPOUT, 3, 10)
        .map_err(|e| candle_core::Error::Msg(format!("self-check network: {e}")))?;
    let candidate = Wrn::with_options(&config, SEED, DType::F32, device, options)?;
    // The CPU in f64 in the candidate's layout: dropout masks index the
    // activations in memory order, so both drop the same elements.
    let oracle = Wrn::with_layout(&config, SEED, DType::F64, &Device::Cpu, options.layout)?;
    // The same weights on both: the oracle's are the candidate's in f64.
    for (name, var) in candidate.store().all() {
        let target =
            oracle.store().get(&name).ok_or_else(|| candle_core::Error::Msg(format!("oracle lacks {name}")))?;
        target.set(&var.as_tensor().to_device(&Device::Cpu)?.to_dtype(DType::F64)?)?;
    }
    let images = seeded_normal("self-check images", &[16, 3, 16, 16])?;
    let weights = seeded_normal("self-check loss weights", &[16, 10])?;

    let on_device = |t: &Tensor| t.to_dtype(DType::F32)?.to_device(device);
    let (logits, loss, grads) = pass(&candidate, &on_device(&images)?, &on_device(&weights)?)?;
    let (want_logits, want_loss, want_grads) = pass(&oracle, &images, &weights)?;

    let mut errors = vec![compare("logits", &logits, &want_logits)?, compare("loss", &loss, &want_loss)?];
    for (index, (name, var)) in candidate.store().params().iter().enumerate() {
        let Some(grad) = grads.get(var.as_tensor()) else {
            return Err(candle_core::Error::Msg(format!("no gradient for {name}")).into());
        };
        let want = oracle
            .store()
            .get(name)
            .and_then(|v| want_grads.get(v.as_tensor()).cloned())
            .ok_or_else(|| candle_core::Error::Msg(format!("the oracle has no gradient for {name}")))?;
        let grad = if perturb && index == 0 { grad.neg()? } else { grad.clone() };
        errors.push(compare(&format!("{name} gradient"), &grad, &want)?);
    }
    // Evaluation after that step: the running statistics it updated and
    // the inference kernels, which training alone never runs.
    let eval_logits = candidate.forward_t(&on_device(&images)?, false)?;
    let want_eval_logits = oracle.forward_t(&images, false)?;
    errors.push(compare("evaluation logits", &eval_logits, &want_eval_logits)?);
    // Two optimizer steps with these gradients: the first makes the
    // momentum buffers, the second runs the device's fused update.
    let mut optimizers = [&candidate, &oracle].map(|model| Sgd::new(model.store().params(), 0.9, true, 5e-4));
    for _ in 0..2 {
        optimizers[0].step(&grads, 0.1)?;
        optimizers[1].step(&want_grads, 0.1)?;
    }
    for (name, var) in candidate.store().params() {
        let want = oracle.store().get(&name).ok_or_else(|| candle_core::Error::Msg(format!("oracle lacks {name}")))?;
        errors.push(compare(&format!("{name} after two SGD steps"), var.as_tensor(), want.as_tensor())?);
    }
    let compared = errors.len();
    let worst = errors.into_iter().max_by(|a, b| a.relative.total_cmp(&b.relative)).expect("logits at least");
    Ok(CheckReport { options, tolerance: tolerance(options.precision), compared, worst })
}

/// The seed of the check network's weights, inputs and dropout masks.
const SEED: u64 = 7;

/// Dropout in the check network, so that its kernel is checked too.
const DROPOUT: f64 = 0.3;

/// Standard-normal f64 values of `shape` from the named seeded stream:
/// nothing random comes from candle, whose generator cannot be seeded, so
/// the check computes the same thing on every run and machine.
fn seeded_normal(name: &str, shape: &[usize]) -> candle_core::Result<Tensor> {
    let mut rng = rng::init_stream(SEED, name);
    let count = shape.iter().product();
    let values: Vec<f64> = (0..count).map(|_| rng::standard_normal(&mut rng)).collect();
    Tensor::from_vec(values, shape, &Device::Cpu)
}

/// Logits, loss and gradients of one training-mode pass.
fn pass(
    model: &Wrn,
    images: &Tensor,
    weights: &Tensor,
) -> candle_core::Result<(Tensor, Tensor, candle_core::backprop::GradStore)> {
    model.reseed_dropout(SEED, 0, 0);
    let logits = model.forward_t(images, true)?;
    let loss = (logits.to_dtype(weights.dtype())? * weights)?.mean_all()?;
    let grads = loss.backward()?;
    Ok((logits, loss, grads))
}

/// The relative L2 error of `candidate` against `oracle` (any devices and
/// float dtypes, the same shape); NaN anywhere is an infinite error.
pub fn compare(name: &str, candidate: &Tensor, oracle: &Tensor) -> candle_core::Result<TensorError> {
    if candidate.dims() != oracle.dims() {
        candle_core::bail!("{name}: shape {:?}, the oracle's is {:?}", candidate.dims(), oracle.dims());
    }
    let a = candidate.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let b = oracle.to_device(&Device::Cpu)?.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    let mut diff = 0f64;
    for (x, y) in a.iter().zip(&b) {
        diff += (x - y) * (x - y);
    }
    let scale = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    // NaN compares false with everything: made infinite, not lost.
    let diff = if diff.is_nan() { f64::INFINITY } else { diff.sqrt() };
    let relative = if scale > 0.0 { diff / scale } else { diff };
    Ok(TensorError { name: name.to_string(), relative })
}
