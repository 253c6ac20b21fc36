//! Batch norm fused with the ReLU after it, over channels-last activations
//! (the channels are the last dimension, every other dimension is reduced).
//!
//! Training forward: one pass for the per-channel sum and sum of squares
//! (accumulated in f64), one pass for `max(0, x * scale + shift)`. Backward:
//! one pass for the two per-channel sums of the gradient, one pass for the
//! input gradient, with the ReLU's mask read from the saved output. Only the
//! input, the output and two numbers per channel are kept between the two.

use std::sync::{Arc, Mutex};

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::{Real, dispatch_real, partitions, slice, slices3, sum_in_order, unpack_gradients, vectorized};

/// Rows per parallel task of the elementwise passes.
const ROWS_PER_TASK: usize = 1024;

/// The batch statistics of one training forward pass, per channel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchStats {
    pub mean: Vec<f64>,
    /// Biased (divided by the count), as used for normalising.
    pub var: Vec<f64>,
    /// Values per channel.
    pub count: usize,
}

/// Per-channel sums over the rows of `[rows, c]` data: `acc` values per
/// channel, accumulated in f64 by `body(row_range, accumulators)` in fixed
/// partitions summed in order.
fn reduce_rows(
    rows: usize,
    c: usize,
    acc: usize,
    body: impl Fn(std::ops::Range<usize>, &mut [f64]) + Sync,
) -> Vec<f64> {
    let partials = partitions(rows)
        .into_par_iter()
        .map(|range| {
            let mut sums = vec![0.0; acc * c];
            body(range, &mut sums);
            sums
        })
        .collect();
    sum_in_order(partials).unwrap_or_else(|| vec![0.0; acc * c])
}

fn statistics<T: Real>(x: &[T], c: usize) -> BatchStats {
    let rows = x.len() / c;
    let sums = reduce_rows(rows, c, 2, |range, acc| {
        let (sum, sq) = acc.split_at_mut(c);
        sums_and_squares(&x[range.start * c..range.end * c], sum, sq);
    });
    let n = rows.max(1) as f64;
    let mean: Vec<f64> = sums[..c].iter().map(|s| s / n).collect();
    let var = sums[c..].iter().zip(&mean).map(|(q, m)| (q / n - m * m).max(0.0)).collect();
    BatchStats { mean, var, count: rows }
}

/// `max(0, x * scale + shift)` per channel.
fn affine_relu<T: Real>(x: &[T], scale: &[f64], shift: &[f64]) -> Vec<T> {
    let c = scale.len();
    let scale: Vec<T> = scale.iter().map(|v| T::from_f64(*v)).collect();
    let shift: Vec<T> = shift.iter().map(|v| T::from_f64(*v)).collect();
    let mut y = vec![T::zero(); x.len()];
    y.par_chunks_mut(ROWS_PER_TASK * c).zip(x.par_chunks(ROWS_PER_TASK * c)).for_each(|(y, x)| {
        affine_relu_rows(y, x, &scale, &shift);
    });
    y
}

#[inline(always)]
fn relu_grad<T: Real>(y: T, dy: T) -> T {
    if y > T::zero() { dy } else { T::zero() }
}

// The element-wise loops, each over rows of `c` channels (c = the length of
// the per-channel slices), vectorised across channels: every channel is its
// own lane, so the sums keep their order and the bits do not depend on the
// instruction set.
vectorized! {
    /// Adds each channel's values and squares (in f64) to `sum` and `sq`.
    fn sums_and_squares<T: Real>(x: &[T], sum: &mut [f64], sq: &mut [f64]) {
        let c = sum.len();
        let sq = &mut sq[..c];
        for row in x.chunks_exact(c) {
            for j in 0..c {
                let v = row[j].to_f64();
                sum[j] += v;
                sq[j] += v * v;
            }
        }
    }

    /// `y = max(0, x * scale + shift)` per channel.
    fn affine_relu_rows<T: Real>(y: &mut [T], x: &[T], scale: &[T], shift: &[T]) {
        let c = scale.len();
        let shift = &shift[..c];
        for (y, x) in y.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
            for j in 0..c {
                let v = x[j] * scale[j] + shift[j];
                y[j] = if v > T::zero() { v } else { T::zero() };
            }
        }
    }

    /// Adds `g` and `g * (x - mean)` per channel to `sg` and `sgx` (in f64),
    /// `g` the output gradient through the ReLU.
    fn gradient_sums<T: Real>(x: &[T], y: &[T], dy: &[T], mean: &[f64], sg: &mut [f64], sgx: &mut [f64]) {
        let c = mean.len();
        let (sg, sgx) = (&mut sg[..c], &mut sgx[..c]);
        for ((x, y), dy) in x.chunks_exact(c).zip(y.chunks_exact(c)).zip(dy.chunks_exact(c)) {
            for j in 0..c {
                let g = relu_grad(y[j], dy[j]).to_f64();
                sg[j] += g;
                sgx[j] += g * (x[j].to_f64() - mean[j]);
            }
        }
    }

    /// `dx = coef_g * g + bias + coef_x * (x - mean)` per channel, `g` the
    /// output gradient through the ReLU; `coefs` = [coef_g, bias, coef_x, mean].
    fn input_gradient_rows<T: Real>(dx: &mut [T], x: &[T], y: &[T], dy: &[T], coefs: [&[T]; 4]) {
        let [coef_g, bias, coef_x, mean] = coefs;
        let c = coef_g.len();
        let (bias, coef_x, mean) = (&bias[..c], &coef_x[..c], &mean[..c]);
        for (((dx, x), y), dy) in dx.chunks_exact_mut(c).zip(x.chunks_exact(c)).zip(y.chunks_exact(c)).zip(dy.chunks_exact(c)) {
            for j in 0..c {
                dx[j] = coef_g[j] * relu_grad(y[j], dy[j]) + bias[j] + coef_x[j] * (x[j] - mean[j]);
            }
        }
    }
}

/// The per-channel `scale` and `shift` of `gamma * (x - mean) / sqrt(var + eps) + beta`.
pub fn scale_shift(gamma: &[f64], beta: &[f64], mean: &[f64], var: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>) {
    let scale: Vec<f64> = gamma.iter().zip(var).map(|(g, v)| g / (v + eps).sqrt()).collect();
    let shift = beta.iter().zip(mean).zip(&scale).map(|((b, m), s)| b - m * s).collect();
    (scale, shift)
}

/// Training-mode BN + ReLU: `(x, gamma, beta) -> y`. The batch statistics
/// go to the shared slot, for the backward pass and for the caller's
/// running averages.
struct BatchNormReluTrain {
    eps: f64,
    stats: Arc<Mutex<Option<BatchStats>>>,
}

/// `(x, y, dy) -> [dx | dgamma | dbeta]`.
struct BatchNormReluBackward {
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    gamma: Vec<f64>,
}

/// Inference BN + ReLU with fixed per-channel scale and shift.
struct AffineRelu {
    scale: Vec<f64>,
    shift: Vec<f64>,
}

fn to_f64s(t: &Tensor) -> Result<Vec<f64>> {
    t.flatten_all()?.to_dtype(candle_core::DType::F64)?.to_vec1::<f64>()
}

impl CustomOp3 for BatchNormReluTrain {
    fn name(&self) -> &'static str {
        "batch-norm-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: Real>(op: &BatchNormReluTrain, s: [(&CpuStorage, &Layout); 3]) -> Result<(CpuStorage, BatchStats)> {
            let name = "batch-norm-relu";
            let [x, gamma, beta] = slices3::<T>(name, ["input", "gamma", "beta"], s)?;
            let c = gamma.len();
            let channels = s[0].1.dims().last().copied().unwrap_or(0);
            if beta.len() != c || c != channels || c == 0 {
                candle_core::bail!(
                    "{name}: gamma ({c}) and beta ({}) must have one value per channel of the input's last dimension ({channels})",
                    beta.len()
                );
            }
            let stats = statistics(x, c);
            let gamma: Vec<f64> = gamma.iter().map(|v| v.to_f64()).collect();
            let beta: Vec<f64> = beta.iter().map(|v| v.to_f64()).collect();
            let (scale, shift) = scale_shift(&gamma, &beta, &stats.mean, &stats.var, op.eps);
            Ok((T::wrap(affine_relu(x, &scale, &shift)), stats))
        }
        let (out, stats) = dispatch_real!(self.name(), s1, run(self, [(s1, l1), (s2, l2), (s3, l3)]))?;
        *self.stats.lock().expect("batch statistics lock poisoned") = Some(stats);
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let Some(stats) = self.stats.lock().expect("batch statistics lock poisoned").clone() else {
            candle_core::bail!("batch-norm-relu: backward before forward");
        };
        let inv_std = stats.var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        let op = BatchNormReluBackward { mean: stats.mean, inv_std, gamma: to_f64s(gamma)? };
        let packed = x.apply_op3_no_bwd(y, &dy.contiguous()?, &op)?;
        let (dx, [dgamma, dbeta]) = unpack_gradients(&packed, Some(x.shape()), [gamma.shape(), gamma.shape()])?;
        Ok((dx, Some(dgamma), Some(dbeta)))
    }
}

impl BatchNormReluBackward {
    fn run<T: Real>(&self, x: &[T], y: &[T], dy: &[T]) -> Vec<T> {
        let c = self.mean.len();
        let rows = x.len() / c;
        // sum(g) and sum(g * (x - mean)), g the gradient through the ReLU.
        let sums = reduce_rows(rows, c, 2, |range, acc| {
            let (sg, sgx) = acc.split_at_mut(c);
            let span = range.start * c..range.end * c;
            gradient_sums(&x[span.clone()], &y[span.clone()], &dy[span], &self.mean, sg, sgx);
        });
        let n = rows.max(1) as f64;
        let dbeta = &sums[..c];
        let dgamma: Vec<f64> = sums[c..].iter().zip(&self.inv_std).map(|(s, i)| s * i).collect();
        // dx = a * (g - mean(g)) - a * inv_std * mean(g * xhat) * (x - mean), a = gamma * inv_std
        let a: Vec<f64> = self.gamma.iter().zip(&self.inv_std).map(|(g, i)| g * i).collect();
        let coef_g: Vec<T> = a.iter().map(|v| T::from_f64(*v)).collect();
        let bias: Vec<T> = a.iter().zip(dbeta).map(|(a, s)| T::from_f64(-a * s / n)).collect();
        let coef_x: Vec<T> = (0..c).map(|j| T::from_f64(-a[j] * self.inv_std[j] * dgamma[j] / n)).collect();
        let mean: Vec<T> = self.mean.iter().map(|v| T::from_f64(*v)).collect();
        let mut out = vec![T::zero(); x.len() + 2 * c];
        let (dx, tail) = out.split_at_mut(x.len());
        let task = ROWS_PER_TASK * c;
        dx.par_chunks_mut(task)
            .zip(x.par_chunks(task))
            .zip(y.par_chunks(task))
            .zip(dy.par_chunks(task))
            .for_each(|(((dx, x), y), dy)| input_gradient_rows(dx, x, y, dy, [&coef_g, &bias, &coef_x, &mean]));
        for j in 0..c {
            tail[j] = T::from_f64(dgamma[j]);
            tail[c + j] = T::from_f64(dbeta[j]);
        }
        out
    }
}

impl CustomOp3 for BatchNormReluBackward {
    fn name(&self) -> &'static str {
        "batch-norm-relu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        fn run<T: Real>(op: &BatchNormReluBackward, s: [(&CpuStorage, &Layout); 3]) -> Result<CpuStorage> {
            let name = "batch-norm-relu-backward";
            let [x, y, dy] = slices3::<T>(name, ["input", "output", "output gradient"], s)?;
            if y.len() != x.len() || dy.len() != x.len() {
                candle_core::bail!("{name}: input, output and gradient sizes differ");
            }
            Ok(T::wrap(op.run(x, y, dy)))
        }
        let out = dispatch_real!(self.name(), s1, run(self, [(s1, l1), (s2, l2), (s3, l3)]))?;
        Ok((out, Shape::from(l1.shape().elem_count() + 2 * self.mean.len())))
    }
}

impl CustomOp1 for AffineRelu {
    fn name(&self) -> &'static str {
        "affine-relu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Real>(op: &AffineRelu, s: &CpuStorage, l: &Layout) -> Result<CpuStorage> {
            let x = slice::<T>("affine-relu", "input", s, l)?;
            Ok(T::wrap(affine_relu(x, &op.scale, &op.shift)))
        }
        let out = dispatch_real!(self.name(), storage, run(self, storage, layout))?;
        Ok((out, layout.shape().clone()))
    }
}

/// Training-mode `relu(batch_norm(x))` over the last dimension of `x`,
/// normalising with the batch's statistics, which it also returns (for the
/// running averages). Differentiable in `x`, `gamma` and `beta`.
pub fn batch_norm_relu_train(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64) -> Result<(Tensor, BatchStats)> {
    let stats = Arc::new(Mutex::new(None));
    let op = BatchNormReluTrain { eps, stats: stats.clone() };
    let y = x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)?;
    let stats = stats.lock().expect("batch statistics lock poisoned").clone();
    Ok((y, stats.expect("the forward pass records its statistics")))
}

/// As [`batch_norm_relu_train`] on either device, the statistics (mean and
/// biased variance) as f64 tensors on the CPU and f32 tensors on CUDA,
/// where they never leave the GPU.
pub fn batch_norm_relu_train_on_device(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> Result<(Tensor, Tensor, Tensor)> {
    #[cfg(feature = "cudnn")]
    if x.device().is_cuda() {
        return super::cuda::batch_norm::train(x, gamma, beta, eps);
    }
    let (y, stats) = batch_norm_relu_train(x, gamma, beta, eps)?;
    let mean = Tensor::new(stats.mean.as_slice(), x.device())?;
    let var = Tensor::new(stats.var.as_slice(), x.device())?;
    Ok((y, mean, var))
}

/// Inference `relu(batch_norm(x))` with given (running) statistics; not differentiable.
pub fn batch_norm_relu_eval(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    mean: &Tensor,
    var: &Tensor,
    eps: f64,
) -> Result<Tensor> {
    #[cfg(feature = "cudnn")]
    if x.device().is_cuda() {
        return super::cuda::batch_norm::eval(x, gamma, beta, mean, var, eps);
    }
    let (scale, shift) = scale_shift(&to_f64s(gamma)?, &to_f64s(beta)?, &to_f64s(mean)?, &to_f64s(var)?, eps);
    if scale.is_empty() || x.dim(candle_core::D::Minus1)? != scale.len() {
        candle_core::bail!("affine-relu: {} channels of statistics for input {:?}", scale.len(), x.dims());
    }
    x.contiguous()?.apply_op1_no_bwd(&AffineRelu { scale, shift })
}
