//! Channels-last training kernels as candle custom operations, each with
//! its own backward pass: on the CPU written here, on CUDA (builds with the
//! `cudnn` feature) cuDNN's convolutions and batch-norm kernels of our own
//! (`kernels::cuda`), behind the same functions.
//!
//! candle's generic CPU path differentiates `conv2d` through a direct
//! `conv_transpose2d` loop and runs batch norm as a chain of elementwise
//! passes, each kept alive for the backward pass. These kernels work on
//! channels-last (NHWC) activations, where a convolution is one GEMM per
//! group of images over an im2col buffer that stays in cache, and batch norm
//! fused with the ReLU that always follows it in a pre-activation WRN is two
//! passes over memory forward and two backward.
//!
//! - [`conv`]: 2-D convolution, forward, input gradient and weight gradient.
//! - [`winograd`]: F(2x2, 3x3) for 3x3 stride-1 convolutions (forward, input
//!   and weight gradients), 2.25x fewer multiplications than im2col.
//! - [`batch_norm`]: training-mode batch norm + ReLU, and its inference form.
//!
//! Every reduction is split into a fixed number of partitions summed in a
//! fixed order, so results do not depend on thread scheduling: the CPU path
//! is bit-reproducible run to run.

pub mod batch_norm;
pub mod conv;
#[cfg(feature = "cudnn")]
pub mod cuda;
mod gemm;
pub mod winograd;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout, Result, Shape, Tensor, WithDType};

/// The element types the kernels accept: f32 for training, f64 for the
/// finite-difference tests.
pub trait Real: WithDType + Send + Sync {
    fn storage(data: &CpuStorage) -> Option<&[Self]>;
    fn wrap(data: Vec<Self>) -> CpuStorage;
}

macro_rules! real {
    ($t:ty, $variant:ident) => {
        impl Real for $t {
            fn storage(data: &CpuStorage) -> Option<&[Self]> {
                match data {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }

            fn wrap(data: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(data)
            }
        }
    };
}
real!(f32, F32);
real!(f64, F64);

/// The contiguous elements of a kernel argument, or an error naming the
/// operation and the argument when it is not contiguous or not of type `T`.
fn slice<'a, T: Real>(op: &str, arg: &str, storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [T]> {
    let Some(data) = T::storage(storage) else {
        candle_core::bail!(
            "{op}: {arg} is {:?}, expected {:?} like the first argument",
            BackendStorage::dtype(storage),
            T::DTYPE
        )
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: {arg} must be contiguous (call .contiguous() first)"),
    }
}

/// The three arguments of a `CustomOp3`, each checked by [`slice`].
fn slices3<'a, T: Real>(op: &str, names: [&str; 3], args: [(&'a CpuStorage, &'a Layout); 3]) -> Result<[&'a [T]; 3]> {
    Ok([
        slice(op, names[0], args[0].0, args[0].1)?,
        slice(op, names[1], args[1].0, args[1].1)?,
        slice(op, names[2], args[2].0, args[2].1)?,
    ])
}

/// Runs `f::<T>` for the dtype of the first argument: f32 or f64.
macro_rules! dispatch_real {
    ($op:expr, $storage:expr, $f:ident ( $($arg:expr),* )) => {
        match $storage {
            candle_core::CpuStorage::F32(_) => $f::<f32>($($arg),*),
            candle_core::CpuStorage::F64(_) => $f::<f64>($($arg),*),
            other => candle_core::bail!("{}: supports f32 and f64, not {:?}", $op, candle_core::backend::BackendStorage::dtype(other)),
        }
    };
}
use dispatch_real;

/// One value per thread of the current rayon pool: buffers that the tasks
/// a thread runs reuse, where `for_each_init` would build one per split
/// (and zero-fill megabytes each time).
struct PerThread<S>(Vec<std::sync::Mutex<S>>);

impl<S: Default> PerThread<S> {
    fn new() -> Self {
        Self((0..rayon::current_num_threads()).map(|_| Default::default()).collect())
    }

    /// `f` on this thread's value; on a fresh one if it is taken (only
    /// possible if `f` itself waited on rayon work, which none does).
    fn with<R>(&self, f: impl FnOnce(&mut S) -> R) -> R {
        let slot = &self.0[rayon::current_thread_index().unwrap_or(0) % self.0.len()];
        match slot.try_lock() {
            Ok(mut value) => f(&mut value),
            Err(_) => f(&mut S::default()),
        }
    }
}

/// Defines functions whose bodies are compiled three times, for AVX-512,
/// for AVX2 + FMA and for baseline x86-64, the best chosen at run time by
/// each call. The release build targets baseline x86-64, whose 4-wide SSE
/// is otherwise all that the element-wise loops of the kernels get (gemm
/// does its own dispatch). Helpers a body calls must be `#[inline(always)]`
/// to be compiled inside it.
macro_rules! vectorized {
    ($(
        $(#[$attr:meta])*
        fn $name:ident<T: Real>($($arg:ident: $ty:ty),* $(,)?) $body:block
    )*) => {$(
        $(#[$attr])*
        fn $name<T: Real>($($arg: $ty),*) {
            #[inline(always)]
            fn generic<T: Real>($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                fn avx512<T: Real>($($arg: $ty),*) {
                    generic($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2<T: Real>($($arg: $ty),*) {
                    generic($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: this CPU has AVX-512F (checked just above).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: this CPU has AVX2 and FMA (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    )*};
}
use vectorized;

/// Fixed partitions for reductions: enough for the cores of a big CPU box,
/// few enough that the per-partition partial sums stay small. Independent of
/// the thread count so that sums are the same on any pool.
const PARTITIONS: usize = 8;

/// `0..n` split into at most [`PARTITIONS`] contiguous, nearly equal ranges.
fn partitions(n: usize) -> Vec<std::ops::Range<usize>> {
    let parts = PARTITIONS.min(n).max(1);
    (0..parts).map(|p| (p * n / parts)..((p + 1) * n / parts)).collect()
}

/// The element-wise sum of per-partition partial results, in partition
/// order (so the same bits on any thread pool); `None` for no partials.
fn sum_in_order<T: Copy + std::ops::AddAssign>(partials: Vec<Vec<T>>) -> Option<Vec<T>> {
    partials.into_iter().reduce(|mut acc, partial| {
        acc.iter_mut().zip(&partial).for_each(|(a, b)| *a += *b);
        acc
    })
}

/// Splits a backward kernel's packed output `[dx | dp1 | dp2 ...]`: the
/// input gradient (when there is one) as a view, each parameter gradient in
/// storage of its own. Parameter gradients live to the end of the backward
/// pass; as views (or `Tensor::copy`, which clones the whole storage) they
/// would keep the input gradient alive as long.
fn unpack_gradients<const N: usize>(
    packed: &Tensor,
    input: Option<&Shape>,
    params: [&Shape; N],
) -> Result<(Option<Tensor>, [Tensor; N])> {
    let dx = input.map(|shape| packed.narrow(0, 0, shape.elem_count())?.reshape(shape)).transpose()?;
    let mut offset = input.map_or(0, Shape::elem_count);
    let mut grads = Vec::with_capacity(N);
    for shape in params {
        grads.push(packed.narrow(0, offset, shape.elem_count())?.reshape(shape)?.force_contiguous()?);
        offset += shape.elem_count();
    }
    let grads = grads.try_into().expect("one gradient per parameter shape");
    Ok((dx, grads))
}
