//! The channels-last kernels on CUDA (builds with the `cudnn` feature):
//! the GPU side of [`crate::wrn::layers::Layout::Nhwc`], which the CPU
//! kernels implement on the CPU. The layer code calls the same functions
//! (`kernels::conv::conv2d_nhwc`, `kernels::batch_norm::*`) on either
//! device; those hand CUDA tensors to this module.
//!
//! - [`conv`]: convolution forward, backward-data and backward-filter through
//!   cuDNN (NHWC activations and filters, f32 or bf16 with f32 accumulation,
//!   TF32 for f32 where allowed), the algorithm chosen once per shape and one
//!   workspace per stream, grown as needed.
//! - [`batch_norm`]: training batch norm + ReLU in three kernels forward
//!   (statistics, their per-channel finish, the normalisation) and three
//!   backward, statistics and gradients of gamma and beta in f32 for bf16
//!   activations; deterministic like the CPU's.
//! - [`dropout`]: inverted dropout in one kernel, its mask computed on the
//!   device from the layer's key, as the CPU computes it.
//! - [`sgd`]: the optimizer's step, two in-place kernels per parameter.
//!
//! None of this code can be tested without a GPU: the self-check
//! ([`crate::selfcheck`]) compares it with the CPU kernels on a slot's first
//! contact with a device and falls back to candle's generic operators if it
//! disagrees.

pub mod batch_norm;
pub mod conv;
pub mod dropout;
pub mod sgd;

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::{CudaView, CudaViewMut, DeviceRepr, LaunchConfig};
use candle_core::cuda::{CudaDType, CudaDevice, CudaStorage};
use candle_core::{DType, Layout, Result, Shape, Storage, Tensor, WithDType};

/// The contiguous elements of a CUDA kernel argument, or an error naming
/// the operation and the argument.
fn view<'a, T: CudaDType + DeviceRepr + WithDType>(
    op: &str,
    arg: &str,
    storage: &'a CudaStorage,
    layout: &Layout,
) -> Result<CudaView<'a, T>> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: {arg} must be contiguous (call .contiguous() first)")
    };
    match storage.as_cuda_slice::<T>() {
        Ok(slice) => Ok(slice.slice(start..end)),
        Err(_) => candle_core::bail!("{op}: {arg} is {:?}, expected {:?}", storage.dtype(), T::DTYPE),
    }
}

/// The contiguous f32 elements an in-place operation updates, checked to
/// be `n` (as many as its other arguments).
fn view_mut<'a>(op: &str, storage: &'a mut CudaStorage, layout: &Layout, n: usize) -> Result<CudaViewMut<'a, f32>> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: the updated tensor must be contiguous")
    };
    if end - start != n {
        candle_core::bail!("{op}: {} values to update, {n} in its other arguments", end - start);
    }
    Ok(storage.as_cuda_slice_mut::<f32>()?.slice_mut(start..end))
}

/// One thread per element in blocks of 256, at most 2^16 blocks (the
/// element-wise kernels loop over the rest).
fn elementwise_config(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 1 << 16) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 }
}

/// Runs `f` on the CUDA storage of a tensor that is not an argument of the
/// operation (batch statistics, gamma), checked to be contiguous f32.
fn with_f32_tensor<R>(
    op: &str,
    arg: &str,
    tensor: &Tensor,
    f: impl FnOnce(CudaView<'_, f32>) -> Result<R>,
) -> Result<R> {
    let (storage, layout) = tensor.storage_and_layout();
    let Storage::Cuda(storage) = &*storage else {
        candle_core::bail!("{op}: {arg} must be on the CUDA device of the input")
    };
    f(view::<f32>(op, arg, storage, layout)?)
}

/// An f32 tensor wrapping a result of the kernels (not differentiable).
fn f32_tensor(
    slice: candle_core::cuda::cudarc::driver::CudaSlice<f32>,
    device: &CudaDevice,
    shape: impl Into<Shape>,
) -> Tensor {
    let storage = CudaStorage::wrap_cuda_slice(slice, device.clone());
    Tensor::from_storage(Storage::Cuda(storage), shape, candle_core::op::BackpropOp::none(), false)
}

/// The element types of the activations: f32, and bf16 in mixed precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Element {
    F32,
    Bf16,
}

impl Element {
    fn of(op: &str, dtype: DType) -> Result<Self> {
        match dtype {
            DType::F32 => Ok(Element::F32),
            DType::BF16 => Ok(Element::Bf16),
            other => candle_core::bail!("{op}: supports f32 and bf16 activations on CUDA, not {other:?}"),
        }
    }

    /// The suffix of the kernels' names for this type.
    fn suffix(self) -> &'static str {
        match self {
            Element::F32 => "f32",
            Element::Bf16 => "bf16",
        }
    }
}

/// Runs `f::<T>` for the element type of `storage`.
macro_rules! dispatch_element {
    ($op:expr, $storage:expr, $f:ident ( $($arg:expr),* )) => {
        match super::Element::of($op, candle_core::backend::BackendStorage::dtype($storage))? {
            super::Element::F32 => $f::<f32>($($arg),*),
            super::Element::Bf16 => $f::<half::bf16>($($arg),*),
        }
    };
}
use dispatch_element;
