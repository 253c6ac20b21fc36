//! 2-D convolution over channels-last activations: `x [b, h, w, c]` and
//! weights in PyTorch's layout `[c_out, c, k, k]` (so checkpoints are the
//! same on every device) to `y [b, oh, ow, c_out]`.
//!
//! Images are processed in groups of a few hundred output pixels. For each
//! group, im2col gathers the receptive fields into a `[pixels, k*k*c]` buffer
//! (columns ordered (ky, kx, c), so each kernel row is one copy of `k*c`
//! contiguous values) that stays in cache, and one GEMM with the weights
//! permuted to `[c_out, k*k*c]` gives the outputs. The backward pass
//! rebuilds that buffer instead of keeping it (it is k*k times the size of
//! the input), multiplies it with the output gradient for the weight
//! gradient, and scatters `dy x W` back through col2im for the input
//! gradient. A 1x1 stride-1 convolution skips im2col: the input already is
//! the buffer.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::gemm::{View, matmul};
use super::winograd;
use super::{PerThread, Real, dispatch_real, partitions, slice, slices3, sum_in_order, unpack_gradients};

/// Output pixels per GEMM: enough rows to amortise packing the weights,
/// few enough that the im2col buffer stays in L2/L3.
const TARGET_ROWS: usize = 256;

/// The shape of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvGeometry {
    pub batch: usize,
    pub height: usize,
    pub width: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvGeometry {
    pub fn out_h(&self) -> usize {
        (self.height + 2 * self.padding - self.kernel) / self.stride + 1
    }

    pub fn out_w(&self) -> usize {
        (self.width + 2 * self.padding - self.kernel) / self.stride + 1
    }

    /// Columns of the im2col buffer: one receptive field.
    fn patch(&self) -> usize {
        self.kernel * self.kernel * self.in_channels
    }

    fn in_image(&self) -> usize {
        self.height * self.width * self.in_channels
    }

    pub(crate) fn out_shape(&self) -> Shape {
        Shape::from((self.batch, self.out_h(), self.out_w(), self.out_channels))
    }

    /// Length of the input gradient in a backward kernel's packed output.
    fn input_gradient_len(&self, input_grad: bool) -> usize {
        if input_grad { self.batch * self.in_image() } else { 0 }
    }

    fn out_pixels(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// The input is its own im2col buffer.
    fn pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }

    /// Images per GEMM group. Groups are whole images so that col2im of one
    /// group never writes another group's input gradient.
    fn images_per_group(&self) -> usize {
        TARGET_ROWS.div_ceil(self.out_pixels().max(1)).clamp(1, self.batch.max(1))
    }

    fn groups(&self) -> Vec<std::ops::Range<usize>> {
        let per = self.images_per_group();
        (0..self.batch.div_ceil(per)).map(|g| g * per..((g + 1) * per).min(self.batch)).collect()
    }

    fn check(&self, op: &str) -> Result<()> {
        let g = self;
        if g.batch == 0 || g.in_channels == 0 || g.out_channels == 0 {
            candle_core::bail!("{op}: empty input or weight ({g:?})");
        }
        if g.kernel == 0 || g.stride == 0 {
            candle_core::bail!(
                "{op}: kernel and stride must be at least 1, got kernel {} stride {}",
                g.kernel,
                g.stride
            );
        }
        if g.height + 2 * g.padding < g.kernel || g.width + 2 * g.padding < g.kernel {
            candle_core::bail!(
                "{op}: a {}x{} kernel does not fit a {}x{} input with padding {}",
                g.kernel,
                g.kernel,
                g.height,
                g.width,
                g.padding
            );
        }
        Ok(())
    }

    /// Calls `f(tap_column, input_offset, len)` for each run of in-bounds
    /// taps of output pixel (oy, ox) of one image: a run is up to `k*c`
    /// values, contiguous both in the patch and in the image. Taps outside
    /// the image are skipped (they read zero padding).
    #[inline]
    fn for_each_run(&self, oy: usize, ox: usize, mut f: impl FnMut(usize, usize, usize)) {
        let (k, c, w) = (self.kernel, self.in_channels, self.width);
        let x0 = (ox * self.stride) as isize - self.padding as isize;
        let kx_lo = (-x0).max(0) as usize;
        let kx_hi = ((w as isize - x0).min(k as isize)).max(0) as usize;
        if kx_lo >= kx_hi {
            return;
        }
        for ky in 0..k {
            let iy = (oy * self.stride + ky) as isize - self.padding as isize;
            if iy < 0 || iy >= self.height as isize {
                continue;
            }
            let ix = (x0 + kx_lo as isize) as usize;
            f((ky * k + kx_lo) * c, (iy as usize * w + ix) * c, (kx_hi - kx_lo) * c);
        }
    }

    /// Whether every tap of output pixel (oy, ox) lies inside the image.
    #[inline]
    fn interior(&self, oy: usize, ox: usize) -> bool {
        let (y0, x0) = (oy * self.stride, ox * self.stride);
        y0 >= self.padding
            && x0 >= self.padding
            && y0 + self.kernel <= self.height + self.padding
            && x0 + self.kernel <= self.width + self.padding
    }

    /// The `[images * oh * ow, k*k*c]` receptive fields of `x` (whole images).
    /// Only rows that touch the padding are zeroed first: every other value
    /// is written once.
    fn im2col<T: Real>(&self, x: &[T], cols: &mut Vec<T>) {
        let (patch, images) = (self.patch(), x.len() / self.in_image());
        cols.resize(images * self.out_pixels() * patch, T::zero());
        let mut rows = cols.chunks_exact_mut(patch);
        for image in x.chunks_exact(self.in_image()) {
            for oy in 0..self.out_h() {
                for ox in 0..self.out_w() {
                    let row = rows.next().expect("one row per output pixel");
                    if !self.interior(oy, ox) {
                        row.fill(T::zero());
                    }
                    self.for_each_run(oy, ox, |col, src, len| {
                        row[col..col + len].copy_from_slice(&image[src..src + len])
                    });
                }
            }
        }
    }

    /// The adjoint of [`Self::im2col`]: adds each receptive field's gradient
    /// back onto the input pixels it was read from. `dx` must start zeroed.
    fn col2im<T: Real>(&self, cols: &[T], dx: &mut [T]) {
        let mut rows = cols.chunks_exact(self.patch());
        for image in dx.chunks_exact_mut(self.in_image()) {
            for oy in 0..self.out_h() {
                for ox in 0..self.out_w() {
                    let row = rows.next().expect("one row per output pixel");
                    self.for_each_run(oy, ox, |col, dst, len| {
                        for (d, s) in image[dst..dst + len].iter_mut().zip(&row[col..col + len]) {
                            *d += *s;
                        }
                    });
                }
            }
        }
    }
}

/// `[c_out, c, ky, kx]` -> `[c_out, ky, kx, c]` (the im2col column order)
/// when `to_patch`, the inverse otherwise.
fn permute_taps<T: Real>(g: &ConvGeometry, w: &[T], to_patch: bool) -> Vec<T> {
    let (c, kk) = (g.in_channels, g.kernel * g.kernel);
    if kk == 1 {
        return w.to_vec();
    }
    let mut out = vec![T::zero(); w.len()];
    for (src, dst) in w.chunks_exact(c * kk).zip(out.chunks_exact_mut(c * kk)) {
        for ci in 0..c {
            for tap in 0..kk {
                let (patch, torch) = (tap * c + ci, ci * kk + tap);
                if to_patch {
                    dst[patch] = src[torch];
                } else {
                    dst[torch] = src[patch];
                }
            }
        }
    }
    out
}

/// `conv(x, w)`, plus `residual` when given (the GEMM accumulates onto it).
fn forward<T: Real>(g: &ConvGeometry, x: &[T], w: &[T], residual: Option<&[T]>) -> Vec<T> {
    let (patch, c_out, out_image) = (g.patch(), g.out_channels, g.out_pixels() * g.out_channels);
    let mut y = match residual {
        Some(r) => r.to_vec(),
        None => vec![T::zero(); g.batch * out_image],
    };
    if winograd::applies(g) {
        winograd::forward(g, x, w, &mut y, residual.is_some());
        return y;
    }
    let w = permute_taps(g, w, true);
    let weights = View::transposed(&w, patch, c_out);
    let per = g.images_per_group();
    let cols = PerThread::<Vec<T>>::new();
    y.par_chunks_mut(per * out_image).zip(x.par_chunks(per * g.in_image())).for_each(|(y, x)| {
        cols.with(|cols| {
            let rows = y.len() / c_out;
            let lhs = if g.pointwise() {
                View::row_major(x, rows, patch)
            } else {
                g.im2col(x, cols);
                View::row_major(cols, rows, patch)
            };
            matmul(y, lhs, weights, residual.is_some());
        })
    });
    y
}

/// The input gradient followed by the weight gradient, in one buffer (no
/// input gradient at all when `input_grad` is false).
fn backward<T: Real>(g: &ConvGeometry, x: &[T], w: &[T], dy: &[T], input_grad: bool) -> Vec<T> {
    let (patch, c_out, out_image) = (g.patch(), g.out_channels, g.out_pixels() * g.out_channels);
    let dx_len = g.input_gradient_len(input_grad);
    let mut out = vec![T::zero(); dx_len + c_out * patch];
    if winograd::applies(g) {
        let (dx, dw) = out.split_at_mut(dx_len);
        dw.copy_from_slice(&winograd::weight_gradient(g, x, dy));
        if input_grad {
            winograd::input_gradient(g, w, dy, dx);
        }
        return out;
    }
    let w = permute_taps(g, w, true);
    let weights = View::row_major(&w, c_out, patch);
    let groups = g.groups();
    let parts = partitions(groups.len());
    let image_len = if input_grad { g.in_image() } else { 0 };
    let (dx, _) = out.split_at_mut(dx_len);
    // Each partition owns the input gradient of its images and a partial
    // weight gradient; partials are summed in partition order.
    let mut dx_parts = Vec::with_capacity(parts.len());
    let mut rest = dx;
    for part in &parts {
        let images = groups[part.end - 1].end - groups[part.start].start;
        let (mine, tail) = rest.split_at_mut(images * image_len);
        dx_parts.push(mine);
        rest = tail;
    }
    let partials: Vec<Vec<T>> = parts
        .par_iter()
        .zip(dx_parts)
        .map(|(part, dx_part)| {
            let mut dw = vec![T::zero(); c_out * patch];
            let (mut cols, mut dcols) = (Vec::new(), Vec::new());
            let first_image = groups[part.start].start;
            for (i, images) in groups[part.clone()].iter().enumerate() {
                let rows = images.len() * g.out_pixels();
                let x = &x[images.start * g.in_image()..images.end * g.in_image()];
                let dy = &dy[images.start * out_image..images.end * out_image];
                let fields = if g.pointwise() {
                    View::row_major(x, rows, patch)
                } else {
                    g.im2col(x, &mut cols);
                    View::row_major(&cols, rows, patch)
                };
                // dW [c_out, patch] += dy^T [c_out, rows] x fields [rows, patch]
                matmul(&mut dw, View::transposed(dy, c_out, rows), fields, i > 0);
                if !input_grad {
                    continue;
                }
                // d(fields) [rows, patch] = dy [rows, c_out] x W [c_out, patch]
                let dy_rows = View::row_major(dy, rows, c_out);
                let dx = &mut dx_part[(images.start - first_image) * image_len..][..images.len() * image_len];
                if g.pointwise() {
                    matmul(dx, dy_rows, weights, false);
                } else {
                    dcols.resize(rows * patch, T::zero());
                    matmul(&mut dcols, dy_rows, weights, false);
                    g.col2im(&dcols, dx); // dx: still the zeros `out` was created with
                }
            }
            dw
        })
        .collect();
    let dw = sum_in_order(partials).unwrap_or_else(|| vec![T::zero(); c_out * patch]);
    let dw = permute_taps(g, &dw, false);
    out[dx_len..].copy_from_slice(&dw);
    out
}

/// `conv2d(x, w)` over NHWC: the forward operation, differentiable in both arguments.
struct Conv2d {
    geometry: ConvGeometry,
    /// False when `x` is not part of the graph (the network's input): its
    /// gradient is then skipped.
    input_grad: bool,
}

/// `conv2d(x, w) + residual`: a residual block's last convolution with the
/// shortcut added by the GEMM itself, so the bare convolution output is
/// never stored (candle would keep it alive for the sum's backward pass).
struct Conv2dAdd(ConvGeometry);

/// `(x, w, dy) -> [dx | dw]` flattened into one buffer.
struct Conv2dBackward {
    geometry: ConvGeometry,
    input_grad: bool,
}

impl Conv2dBackward {
    /// `(dx, dw)`, dx `None` when not asked for.
    fn gradients(&self, x: &Tensor, w: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Tensor)> {
        let both = x.apply_op3_no_bwd(w, &dy.contiguous()?, self)?;
        let (dx, [dw]) = unpack_gradients(&both, self.input_grad.then_some(x.shape()), [w.shape()])?;
        Ok((dx, dw))
    }
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d-nhwc"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        fn run<T: Real>(
            g: &ConvGeometry,
            s1: &CpuStorage,
            l1: &Layout,
            s2: &CpuStorage,
            l2: &Layout,
        ) -> Result<CpuStorage> {
            let x = slice::<T>("conv2d-nhwc", "input", s1, l1)?;
            let w = slice::<T>("conv2d-nhwc", "weight", s2, l2)?;
            Ok(T::wrap(forward(g, x, w, None)))
        }
        let g = &self.geometry;
        let out = dispatch_real!(self.name(), s1, run(g, s1, l1, s2, l2))?;
        Ok((out, g.out_shape()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let backward = Conv2dBackward { geometry: self.geometry, input_grad: self.input_grad };
        let (dx, dw) = backward.gradients(x, w, dy)?;
        Ok((dx, Some(dw)))
    }
}

impl CustomOp3 for Conv2dAdd {
    fn name(&self) -> &'static str {
        "conv2d-nhwc-add"
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
        fn run<T: Real>(g: &ConvGeometry, s: [(&CpuStorage, &Layout); 3]) -> Result<CpuStorage> {
            let [x, w, residual] = slices3::<T>("conv2d-nhwc-add", ["input", "weight", "residual"], s)?;
            Ok(T::wrap(forward(g, x, w, Some(residual))))
        }
        let g = &self.0;
        let out = dispatch_real!(self.name(), s1, run(g, [(s1, l1), (s2, l2), (s3, l3)]))?;
        Ok((out, g.out_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _residual: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = Conv2dBackward { geometry: self.0, input_grad: true }.gradients(x, w, dy)?;
        Ok((dx, Some(dw), Some(dy.clone())))
    }
}

impl CustomOp3 for Conv2dBackward {
    fn name(&self) -> &'static str {
        "conv2d-nhwc-backward"
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
        fn run<T: Real>(g: &ConvGeometry, input_grad: bool, s: [(&CpuStorage, &Layout); 3]) -> Result<CpuStorage> {
            let names = ["input", "weight", "output gradient"];
            let [x, w, dy] = slices3::<T>("conv2d-nhwc-backward", names, s)?;
            Ok(T::wrap(backward(g, x, w, dy, input_grad)))
        }
        let (g, input_grad) = (&self.geometry, self.input_grad);
        let out = dispatch_real!(self.name(), s1, run(g, input_grad, [(s1, l1), (s2, l2), (s3, l3)]))?;
        Ok((out, Shape::from(g.input_gradient_len(input_grad) + g.out_channels * g.patch())))
    }
}

fn geometry(op: &str, x: &Tensor, weight: &Tensor, stride: usize, padding: usize) -> Result<ConvGeometry> {
    let (batch, height, width, in_channels) = x.dims4()?;
    let (out_channels, weight_in, kernel, kernel_w) = weight.dims4()?;
    if weight_in != in_channels || kernel != kernel_w {
        candle_core::bail!(
            "{op}: weight {:?} does not fit input {:?} (expected [c_out, {in_channels}, k, k])",
            weight.dims(),
            x.dims()
        );
    }
    let g = ConvGeometry { batch, height, width, in_channels, out_channels, kernel, stride, padding };
    g.check(op)?;
    Ok(g)
}

/// A convolution of NHWC `x [b, h, w, c]` with `weight [c_out, c, k, k]`,
/// square kernel, equal stride and padding on both axes, no bias.
pub fn conv2d_nhwc(x: &Tensor, weight: &Tensor, stride: usize, padding: usize) -> Result<Tensor> {
    let geometry = geometry("conv2d-nhwc", x, weight, stride, padding)?;
    #[cfg(feature = "cudnn")]
    if x.device().is_cuda() {
        return super::cuda::conv::conv2d(x, weight, geometry);
    }
    let op = Conv2d { geometry, input_grad: x.track_op() };
    x.contiguous()?.apply_op2(&weight.contiguous()?, op)
}

/// `conv2d_nhwc(x, weight, ..) + residual`, without storing the bare
/// convolution.
pub fn conv2d_nhwc_add(
    x: &Tensor,
    weight: &Tensor,
    residual: &Tensor,
    stride: usize,
    padding: usize,
) -> Result<Tensor> {
    let g = geometry("conv2d-nhwc-add", x, weight, stride, padding)?;
    if residual.shape() != &g.out_shape() {
        candle_core::bail!(
            "conv2d-nhwc-add: residual {:?} must have the output's shape {:?}",
            residual.dims(),
            g.out_shape()
        );
    }
    #[cfg(feature = "cudnn")]
    if x.device().is_cuda() {
        return super::cuda::conv::conv2d_add(x, weight, residual, g);
    }
    x.contiguous()?.apply_op3(&weight.contiguous()?, &residual.contiguous()?, Conv2dAdd(g))
}
