//! The layers of a WRN with the official initialisation
//! (github.com/szagoruyko/wide-residual-networks, `utils.py`): convolutions
//! He-normal over their fan-in, BN gamma U(0, 1) and beta 0, classifier bias 0.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::{D, DType, Device, ModuleT, Result, Tensor, Var};
use candle_nn::{Init, VarBuilder};
use rand_chacha::ChaCha8Rng;
use widesweep_arch::{ConvSpec, HeadSpec};

use crate::kernels;
use crate::rng;

/// BN epsilon and running-statistics momentum of the official code.
pub const BN_EPS: f64 = 1e-5;
pub const BN_MOMENTUM: f64 = 0.1;

/// How activations are laid out in memory, and so which kernels run.
///
/// NHWC (channels-last) runs the custom operations of [`crate::kernels`],
/// each with its own backward pass: on the CPU widesweep's kernels
/// (convolutions as im2col + GEMM or Winograd, batch norm fused with the
/// ReLU after it; f32 and f64), on CUDA in builds with cuDNN its
/// convolutions and our fused batch-norm kernels (f32 and bf16). NCHW runs
/// candle's generic operators on either device: the reference path, and
/// the fallback the self-check picks when the NHWC kernels disagree with
/// the CPU. The model's input and output are NCHW and `[batch, classes]`
/// either way, and the weights keep PyTorch's layout, so checkpoints move
/// between devices and layouts.
///
/// Layers compute in the dtype of their input: in bf16 mixed precision each
/// casts its f32 master weights to bf16 per forward pass, and the cast's
/// backward hands the optimizer f32 gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Nchw,
    Nhwc,
}

impl std::str::FromStr for Layout {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "nchw" => Ok(Layout::Nchw),
            "nhwc" => Ok(Layout::Nhwc),
            other => Err(format!("unknown layout {other:?}: use nchw or nhwc")),
        }
    }
}

impl Layout {
    /// The fastest layout `device` has kernels for: NHWC on the CPU and,
    /// in builds with cuDNN, on CUDA; NCHW on CUDA without cuDNN.
    pub fn for_device(device: &Device) -> Self {
        if device.is_cpu() || (device.is_cuda() && cfg!(feature = "cudnn")) { Layout::Nhwc } else { Layout::Nchw }
    }
}

pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A convolution without bias, padding kernel / 2, weights
/// N(0, sqrt(2 / (kh * kw * C_in))).
pub struct Conv {
    weight: Tensor,
    spec: ConvSpec,
    layout: Layout,
}

impl Conv {
    pub fn new(spec: ConvSpec, layout: Layout, vb: VarBuilder) -> Result<Self> {
        let fan_in = (spec.kernel * spec.kernel * spec.in_channels) as f64;
        let init = Init::Randn { mean: 0.0, stdev: (2.0 / fan_in).sqrt() };
        let weight = vb.get_with_hints(spec.weight_shape().to_vec(), "weight", init)?;
        Ok(Self { weight, spec, layout })
    }

    /// `forward(xs) + residual`; on the CPU one kernel that never stores the
    /// bare convolution.
    pub fn forward_add(&self, xs: &Tensor, residual: &Tensor) -> Result<Tensor> {
        self.convolve(xs, Some(residual))
    }

    fn convolve(&self, xs: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        let (stride, padding) = (self.spec.stride, self.spec.padding());
        match (self.layout, residual) {
            (Layout::Nchw, None) => self.conv2d_nchw(xs),
            (Layout::Nchw, Some(residual)) => self.conv2d_nchw(xs)? + residual,
            // The kernels take the f32 master weights: on CUDA in bf16 they
            // permute and cast them in one pass.
            (Layout::Nhwc, None) => kernels::conv::conv2d_nhwc(xs, &self.weight, stride, padding),
            (Layout::Nhwc, Some(residual)) => {
                kernels::conv::conv2d_nhwc_add(xs, &self.weight, residual, stride, padding)
            }
        }
    }

    fn conv2d_nchw(&self, xs: &Tensor) -> Result<Tensor> {
        let (stride, padding) = (self.spec.stride, self.spec.padding());
        let weight = self.weight.to_dtype(xs.dtype())?;
        if xs.dtype() == DType::BF16 && xs.device().is_cpu() {
            // candle's CPU matmul has no bf16 kernel. Multiplying the bf16
            // values in f32 and rounding the sums back to bf16 is what tensor
            // cores do (exact products, f32 accumulation), so the CPU stays
            // a faithful reference for the GPU's bf16 runs.
            let wide = xs.to_dtype(DType::F32)?.conv2d(&weight.to_dtype(DType::F32)?, padding, stride, 1, 1)?;
            return wide.to_dtype(DType::BF16);
        }
        xs.conv2d(&weight, padding, stride, 1, 1)
    }
}

impl candle_core::Module for Conv {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.convolve(xs, None)
    }
}

/// Precise batch norm: while on, a training-mode forward pass re-estimates
/// every batch norm's running statistics as the exact average of the batches
/// passed through since [`Recalibration::start`] (the cumulative average,
/// momentum 1/n for batch n, as PyTorch's `momentum=None`), and dropout is
/// off, so the statistics are those evaluation will see. Shared by every
/// layer of one model.
#[derive(Clone, Default)]
pub struct Recalibration {
    /// 0 when off; otherwise the 1-based number of the batch going through.
    batch: Arc<AtomicU64>,
}

impl Recalibration {
    /// The next forward pass is the first batch of a re-estimation.
    pub fn start(&self) {
        self.batch.store(1, Ordering::Relaxed);
    }

    /// The forward pass that follows is the next batch.
    pub fn advance(&self) {
        self.batch.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stop(&self) {
        self.batch.store(0, Ordering::Relaxed);
    }

    fn is_on(&self) -> bool {
        self.batch.load(Ordering::Relaxed) > 0
    }

    /// The running statistics' momentum: 1/n for batch n while re-estimating,
    /// so that after n batches they are the plain mean of n batches.
    fn momentum(&self) -> f64 {
        match self.batch.load(Ordering::Relaxed) {
            0 => BN_MOMENTUM,
            n => 1.0 / n as f64,
        }
    }
}

/// Spatial batch normalisation over (N, H, W) with affine gamma and beta,
/// always followed by a ReLU in a pre-activation WRN, so the two are one
/// layer. In training it normalises with the batch statistics and updates
/// the running ones as PyTorch does (unbiased variance, momentum 0.1).
pub struct BatchNorm {
    layout: Layout,
    gamma: Tensor,
    beta: Tensor,
    running_mean: Var,
    running_var: Var,
    recalibration: Recalibration,
}

impl BatchNorm {
    pub fn new(channels: usize, layout: Layout, recalibration: Recalibration, vb: VarBuilder) -> Result<Self> {
        let gamma = vb.get_with_hints(channels, "weight", Init::Uniform { lo: 0.0, up: 1.0 })?;
        let beta = vb.get_with_hints(channels, "bias", Init::Const(0.0))?;
        let running_mean = Var::from_tensor(&vb.get_with_hints(channels, "running_mean", Init::Const(0.0))?)?;
        let running_var = Var::from_tensor(&vb.get_with_hints(channels, "running_var", Init::Const(1.0))?)?;
        Ok(Self { layout, gamma, beta, running_mean, running_var, recalibration })
    }

    /// `relu(x * scale + shift)` with per-channel scale and shift (NCHW):
    /// two passes over the activation instead of four.
    ///
    /// In the parameters' dtype, the result rounded to the activation's:
    /// with bf16 activations the backward pass then sums the gradients of
    /// gamma and beta (and the statistics' terms) over N x H x W in f32, as
    /// cuDNN does; summed in bf16 they came out up to a third off.
    fn affine_relu(&self, xs: &Tensor, mean: &Tensor, var: &Tensor) -> Result<Tensor> {
        let scale = (&self.gamma / (var + BN_EPS)?.sqrt()?)?;
        let shift = (&self.beta - (mean * &scale)?)?;
        let shape = (1, scale.dim(0)?, 1, 1);
        let wide = xs.to_dtype(self.gamma.dtype())?;
        let normalised = wide.broadcast_mul(&scale.reshape(shape)?)?.broadcast_add(&shift.reshape(shape)?)?;
        // Rounded before the ReLU, so that the ReLU keeps the narrow copy
        // for its backward pass.
        normalised.to_dtype(xs.dtype())?.relu()
    }

    fn update_running(&self, mean: &Tensor, var: &Tensor, count: usize) -> Result<()> {
        let unbiased = count as f64 / (count.max(2) - 1) as f64;
        let m = self.recalibration.momentum();
        #[cfg(feature = "cudnn")]
        if self.layout == Layout::Nhwc && mean.device().is_cuda() {
            // One kernel each where the candle operations below launch
            // four: small WRNs on a GPU are bound by launches.
            kernels::cuda::batch_norm::update_running(self.running_mean.as_tensor(), mean, m, 1.0)?;
            return kernels::cuda::batch_norm::update_running(self.running_var.as_tensor(), var, m, unbiased);
        }
        self.running_mean.set(&((self.running_mean.as_tensor() * (1.0 - m))? + (mean.detach() * m)?)?)?;
        self.running_var.set(&((self.running_var.as_tensor() * (1.0 - m))? + (var.detach() * (m * unbiased))?)?)
    }

    /// `relu(batch_norm(xs))`.
    pub fn forward_relu_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        match (self.layout, train) {
            (Layout::Nhwc, false) => kernels::batch_norm::batch_norm_relu_eval(
                xs,
                &self.gamma,
                &self.beta,
                self.running_mean.as_tensor(),
                self.running_var.as_tensor(),
                BN_EPS,
            ),
            (Layout::Nhwc, true) => {
                let (ys, mean, var) =
                    kernels::batch_norm::batch_norm_relu_train_on_device(xs, &self.gamma, &self.beta, BN_EPS)?;
                let dtype = self.gamma.dtype();
                let count = xs.elem_count() / xs.dim(D::Minus1)?;
                self.update_running(&mean.to_dtype(dtype)?, &var.to_dtype(dtype)?, count)?;
                Ok(ys)
            }
            (Layout::Nchw, false) => self.affine_relu(xs, self.running_mean.as_tensor(), self.running_var.as_tensor()),
            (Layout::Nchw, true) => {
                let c = xs.dim(1)?;
                // Channels first and flattened, so that the statistics are
                // reductions over the contiguous last dimension (candle's fast
                // path); in the parameters' dtype, so that bf16 activations
                // still get f32 statistics, as cuDNN computes them.
                let per_channel = xs.transpose(0, 1)?.flatten_from(1)?.contiguous()?.to_dtype(self.gamma.dtype())?;
                let count = per_channel.dim(1)?;
                let mean = per_channel.mean_keepdim(1)?;
                let var = per_channel.broadcast_sub(&mean)?.sqr()?.mean_keepdim(1)?;
                let (mean, var) = (mean.reshape(c)?, var.reshape(c)?);
                self.update_running(&mean, &var, count)?;
                self.affine_relu(xs, &mean, &var)
            }
        }
    }
}

/// Where dropout masks come from: a stream the trainer re-seeds before each
/// step from (seed, epoch, step). Shared by every dropout layer of a model so
/// that masks are drawn in forward order from one stream.
#[derive(Clone, Default)]
pub struct MaskSource {
    stream: Arc<Mutex<Option<ChaCha8Rng>>>,
}

impl MaskSource {
    pub fn reseed(&self, stream: ChaCha8Rng) {
        *self.stream.lock().expect("mask stream lock poisoned") = Some(stream);
    }

    /// The key of the next dropout layer's mask: one draw from the step's
    /// stream, so layers draw in forward order.
    fn next_key(&self) -> Result<u64> {
        use rand::RngCore;
        let mut guard = self.stream.lock().expect("mask stream lock poisoned");
        let Some(stream) = guard.as_mut() else {
            candle_core::bail!("dropout in training needs a seeded mask stream (call Wrn::reseed_dropout)");
        };
        Ok(stream.next_u64())
    }

    /// A keep mask scaled by 1 / (1 - p) (inverted dropout), element `i`
    /// kept as [`rng::dropout_keeps`] says for the layer's key: built on the
    /// CPU in parallel and moved to `device` as bytes (a quarter of the f32
    /// traffic), then scaled there.
    fn mask(&self, shape: &[usize], p: f64, dtype: DType, device: &Device) -> Result<Tensor> {
        use rayon::prelude::*;
        let key = self.next_key()?;
        let threshold = rng::dropout_threshold(p);
        let n: usize = shape.iter().product();
        let keep: Vec<u8> =
            (0..n as u64).into_par_iter().map(|i| u8::from(rng::dropout_keeps(key, i, threshold))).collect();
        let mask = Tensor::from_vec(keep, shape, &Device::Cpu)?.to_device(device)?.to_dtype(dtype)?;
        mask.affine(1.0 / (1.0 - p), 0.0)
    }
}

/// Inverted dropout with masks from a [`MaskSource`]; identity in
/// evaluation and while batch norm is re-estimated. On CUDA in the NHWC
/// layout one kernel computes the mask on the device (the same mask the
/// CPU builds), so the GPU never waits for the host to draw one.
pub struct Dropout {
    p: f64,
    #[cfg_attr(not(feature = "cudnn"), allow(dead_code))]
    layout: Layout,
    masks: MaskSource,
    recalibration: Recalibration,
}

impl Dropout {
    pub fn new(p: f64, layout: Layout, masks: MaskSource, recalibration: Recalibration) -> Self {
        Self { p, layout, masks, recalibration }
    }
}

impl ModuleT for Dropout {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        if !train || self.p == 0.0 || self.recalibration.is_on() {
            return Ok(xs.clone());
        }
        #[cfg(feature = "cudnn")]
        if self.layout == Layout::Nhwc && xs.device().is_cuda() {
            return kernels::cuda::dropout::apply(xs, self.masks.next_key()?, self.p);
        }
        let mask = self.masks.mask(xs.dims(), self.p, xs.dtype(), xs.device())?;
        xs * mask
    }
}

/// BN -> ReLU -> global average pool -> Linear with bias.
///
/// The classifier's weight is He-normal over its fan-in, N(0, sqrt(2 / C)),
/// as in the official PyTorch code (`linear_params` uses kaiming_normal_);
/// its bias starts at 0.
pub struct Head {
    layout: Layout,
    bn: BatchNorm,
    fc_weight: Tensor,
    fc_bias: Tensor,
}

impl Head {
    pub fn new(spec: HeadSpec, layout: Layout, recalibration: Recalibration, vb: VarBuilder) -> Result<Self> {
        let bn = BatchNorm::new(spec.channels, layout, recalibration, vb.pp("bn"))?;
        let fc = vb.pp("fc");
        let init = Init::Randn { mean: 0.0, stdev: (2.0 / spec.channels as f64).sqrt() };
        let fc_weight = fc.get_with_hints((spec.num_classes, spec.channels), "weight", init)?;
        let fc_bias = fc.get_with_hints(spec.num_classes, "bias", Init::Const(0.0))?;
        Ok(Self { layout, bn, fc_weight, fc_bias })
    }
}

impl ModuleT for Head {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        // Global average pooling: at the 32x32 input the last feature map is
        // 8x8, so this is the paper's 8x8 average pool.
        // Pooling and the classifier run in the parameters' dtype: in bf16
        // mixed precision the logits, and so the loss, stay f32.
        let activated = self.bn.forward_relu_t(xs, train)?.to_dtype(self.fc_weight.dtype())?;
        let pooled = match self.layout {
            Layout::Nchw => activated.flatten_from(2)?.mean(D::Minus1)?,
            Layout::Nhwc => activated.flatten(1, 2)?.mean(1)?,
        };
        pooled.matmul(&self.fc_weight.t()?)?.broadcast_add(&self.fc_bias)
    }
}
