//! `widesweep bench train`: steady-state training throughput of one config
//! on synthetic data, with the same step as real training (forward,
//! cross-entropy, backward, SGD update), so the figure is comparable with
//! bench/pytorch_reference.py.

use std::time::Instant;

use candle_core::{DType, Device, ModuleT, Tensor};
use rand::Rng;
use widesweep_arch::{IMAGE_SIZE, Precision, WrnConfig};

use super::optimizer::Sgd;
use super::{Recipe, TrainError};
use crate::rng::{self, Purpose};
use crate::wrn::layers::Layout;
use crate::wrn::{ModelOptions, Wrn};

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub batch_size: usize,
    /// Untimed steps first (allocator and kernel warm-up).
    pub warmup_steps: usize,
    pub steps: usize,
    /// Activation layout; `None` picks the fastest for the device and
    /// precision (NHWC on the CPU in f32).
    pub layout: Option<Layout>,
    pub precision: Precision,
}

impl BenchOptions {
    pub fn model_options(&self, device: &Device) -> ModelOptions {
        let fastest = ModelOptions::for_device(device, self.precision);
        ModelOptions { layout: self.layout.unwrap_or(fastest.layout), ..fastest }
    }
}

#[derive(Clone, Debug)]
pub struct BenchReport {
    pub images_per_second: f64,
    pub ms_per_step: f64,
    /// Peak memory: resident set of the process on the CPU (VmHWM), device
    /// memory in use sampled after every step on CUDA. `None` where unknown.
    pub peak_memory_bytes: Option<u64>,
    /// The training loss of every step, warm-up included. The same synthetic
    /// batch is trained on every step, so it falls as the network memorises
    /// it: a check that the kernels being timed also learn, and, with the same
    /// seed on two devices, that they compute the same thing.
    pub losses: Vec<f32>,
}

pub fn bench_train(config: &WrnConfig, options: &BenchOptions, device: &Device) -> Result<BenchReport, TrainError> {
    let recipe = Recipe::default();
    let model = Wrn::with_options(config, 0, DType::F32, device, options.model_options(device))?;
    let mut optimizer = Sgd::new(model.store().params(), recipe.momentum, recipe.nesterov, recipe.weight_decay);
    let b = options.batch_size;
    let mut stream = rng::stream(0, 0, 0, Purpose::Augment);
    let pixels: Vec<f32> =
        (0..b * config.in_channels * IMAGE_SIZE * IMAGE_SIZE).map(|_| stream.random::<f32>() - 0.5).collect();
    let labels: Vec<u32> = (0..b).map(|_| stream.random_range(0..config.num_classes as u32)).collect();
    let mut peak = 0u64;
    let mut losses = Vec::with_capacity(options.warmup_steps + options.steps);
    let mut step = |step: usize| -> Result<(), TrainError> {
        // Host-to-device copies each step, as in training.
        let images = Tensor::from_slice(&pixels, (b, config.in_channels, IMAGE_SIZE, IMAGE_SIZE), &Device::Cpu)?
            .to_device(device)?;
        let targets = Tensor::from_slice(&labels, b, &Device::Cpu)?.to_device(device)?;
        model.reseed_dropout(0, 0, step as u64);
        let logits = model.forward_t(&images, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
        let grads = loss.backward()?;
        optimizer.step(&grads, recipe.lr)?;
        // Reading the loss waits for the device (one stream, so for the
        // update too): steps are timed end to end.
        losses.push(loss.to_scalar::<f32>()?);
        if let Some(used) = device_memory_in_use(device) {
            peak = peak.max(used);
        }
        Ok(())
    };
    for s in 0..options.warmup_steps {
        step(s)?;
    }
    let started = Instant::now();
    for s in 0..options.steps {
        step(options.warmup_steps + s)?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let peak_memory_bytes = if device.is_cpu() { peak_rss_bytes() } else { (peak > 0).then_some(peak) };
    Ok(BenchReport {
        images_per_second: (options.steps * b) as f64 / seconds,
        ms_per_step: 1e3 * seconds / options.steps.max(1) as f64,
        peak_memory_bytes,
        losses,
    })
}

/// Peak resident set size of this process (Linux), in bytes.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(feature = "cuda")]
fn device_memory_in_use(device: &Device) -> Option<u64> {
    let Device::Cuda(cuda) = device else {
        return None;
    };
    let _ = cuda;
    let (free, total) = candle_core::cuda_backend::cudarc::driver::result::mem_get_info().ok()?;
    Some((total - free) as u64)
}

#[cfg(not(feature = "cuda"))]
fn device_memory_in_use(_: &Device) -> Option<u64> {
    None
}
