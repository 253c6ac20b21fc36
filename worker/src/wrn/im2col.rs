//! im2col and its adjoint col2im for CNHW activations, as candle custom ops.
//!
//! A convolution is then `weights [c_out, c*k*k] x im2col(x) [c*k*k, b*oh*ow]`:
//! candle differentiates the matrix product with fast GEMMs, and im2col's
//! backward is col2im, one pass over memory. candle's own CPU `conv2d`
//! backward runs a direct `conv_transpose2d` loop that is many times slower,
//! and building im2col from tensor views (narrow/stack) made candle keep
//! nine padded gradient copies per convolution.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor, WithDType};
use rayon::prelude::*;

/// The geometry of one convolution over a `[c, b, h, w]` input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub c: usize,
    pub b: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: usize,
}

impl Geometry {
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.padding - self.k) / self.stride + 1
    }

    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.padding - self.k) / self.stride + 1
    }

    fn rows(&self) -> usize {
        self.c * self.k * self.k
    }

    fn cols(&self) -> usize {
        self.b * self.out_h() * self.out_w()
    }

    /// Calls `f(col_index, input_index)` for every in-bounds tap of row
    /// (ky, kx) of channel plane `plane` (the `[b, h, w]` block of one channel).
    #[inline]
    fn for_each_tap(&self, ky: usize, kx: usize, mut f: impl FnMut(usize, usize)) {
        let (oh, ow) = (self.out_h(), self.out_w());
        for bi in 0..self.b {
            for oy in 0..oh {
                let iy = (oy * self.stride + ky) as isize - self.padding as isize;
                if iy < 0 || iy >= self.h as isize {
                    continue;
                }
                let in_row = (bi * self.h + iy as usize) * self.w;
                let out_row = (bi * oh + oy) * ow;
                for ox in 0..ow {
                    let ix = (ox * self.stride + kx) as isize - self.padding as isize;
                    if ix >= 0 && ix < self.w as isize {
                        f(out_row + ox, in_row + ix as usize);
                    }
                }
            }
        }
    }

    fn im2col<T: WithDType>(&self, x: &[T]) -> Vec<T> {
        let (k, plane, n_cols) = (self.k, self.b * self.h * self.w, self.cols());
        let mut out = vec![T::zero(); self.rows() * n_cols];
        out.par_chunks_mut(n_cols).enumerate().for_each(|(row, dst)| {
            let (c, ky, kx) = (row / (k * k), (row / k) % k, row % k);
            let src = &x[c * plane..(c + 1) * plane];
            self.for_each_tap(ky, kx, |col, idx| dst[col] = src[idx]);
        });
        out
    }

    fn col2im<T: WithDType>(&self, cols: &[T]) -> Vec<T> {
        let (k, plane, n_cols) = (self.k, self.b * self.h * self.w, self.cols());
        let mut out = vec![T::zero(); self.c * plane];
        // One channel per task: its k*k rows only write that channel's plane.
        out.par_chunks_mut(plane).enumerate().for_each(|(c, dst)| {
            for ky in 0..k {
                for kx in 0..k {
                    let row = (c * k + ky) * k + kx;
                    let src = &cols[row * n_cols..(row + 1) * n_cols];
                    self.for_each_tap(ky, kx, |col, idx| dst[idx] += src[col]);
                }
            }
        });
        out
    }
}

fn contiguous<'a, T>(data: &'a [T], layout: &Layout) -> Result<&'a [T]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("im2col/col2im need a contiguous tensor"),
    }
}

/// `[c, b, h, w]` -> `[c*k*k, b*oh*ow]`.
pub struct Im2Col(pub Geometry);

/// The adjoint of [`Im2Col`]: `[c*k*k, b*oh*ow]` -> `[c, b, h, w]`, summing overlaps.
pub struct Col2Im(pub Geometry);

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col-cnhw"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let shape = Shape::from((g.rows(), g.cols()));
        let out = match storage {
            CpuStorage::F32(x) => CpuStorage::F32(g.im2col(contiguous(x, layout)?)),
            CpuStorage::F64(x) => CpuStorage::F64(g.im2col(contiguous(x, layout)?)),
            other => candle_core::bail!("im2col supports f32 and f64, not {:?}", other.dtype()),
        };
        Ok((out, shape))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad_res.contiguous()?.apply_op1_no_bwd(&Col2Im(self.0))?))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im-cnhw"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = self.0;
        let shape = Shape::from((g.c, g.b, g.h, g.w));
        let out = match storage {
            CpuStorage::F32(x) => CpuStorage::F32(g.col2im(contiguous(x, layout)?)),
            CpuStorage::F64(x) => CpuStorage::F64(g.col2im(contiguous(x, layout)?)),
            other => candle_core::bail!("col2im supports f32 and f64, not {:?}", other.dtype()),
        };
        Ok((out, shape))
    }
}

/// A CNHW convolution: `[c_out, c, k, k]` weights over a `[c, b, h, w]` input.
pub fn conv_cnhw(xs: &Tensor, weight: &Tensor, k: usize, stride: usize, padding: usize) -> Result<Tensor> {
    let (c, b, h, w) = xs.dims4()?;
    let c_out = weight.dim(0)?;
    let g = Geometry { c, b, h, w, k, stride, padding };
    let weight = weight.reshape((c_out, c * k * k))?;
    let cols =
        if k == 1 && stride == 1 { xs.reshape((c, b * h * w))? } else { xs.contiguous()?.apply_op1(Im2Col(g))? };
    weight.matmul(&cols)?.reshape((c_out, b, g.out_h(), g.out_w()))
}
