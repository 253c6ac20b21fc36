//! Convolutions over channels-last activations through cuDNN: forward,
//! backward-data and backward-filter, each as a candle custom operation,
//! the forward ones differentiable through the other two.
//!
//! cuDNN wants NHWC activations and NHWC (`[c_out, k, k, c]`) filters for
//! its tensor-core kernels in bf16; the model's weights stay in PyTorch's
//! `[c_out, c, k, k]` (checkpoints are the same on every device) and are
//! permuted by candle on the way in, which is differentiable and costs a
//! copy of the weights, not of the activations.
//!
//! Per thread and stream (each slot trains on one thread with one stream):
//! one cuDNN handle bound to the stream, the algorithm of each (pass,
//! shape, element type) chosen once by cuDNN's heuristics, deterministic
//! ones preferred (see [`deterministic`]), and one workspace, grown to the
//! largest any algorithm asked for and reused.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::cudnn::safe::{
    ConvBackwardData, ConvBackwardFilter, ConvDescriptor, ConvForward, Cudnn,
};
use candle_core::cuda::cudarc::cudnn::{CudnnDataType, sys};
use candle_core::cuda::cudarc::driver::{CudaSlice, CudaView, DeviceRepr, ValidAsZeroBits};
use candle_core::cuda::{CudaDType, CudaDevice, CudaStorage, DeviceId};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, WithDType};

use super::{Element, dispatch_element, view};
use crate::kernels::conv::ConvGeometry;

/// Which of the three convolution passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Pass {
    Forward,
    BackwardData,
    BackwardFilter,
}

#[derive(Clone, Copy, Debug)]
enum Algorithm {
    Forward(sys::cudnnConvolutionFwdAlgo_t),
    BackwardData(sys::cudnnConvolutionBwdDataAlgo_t),
    BackwardFilter(sys::cudnnConvolutionBwdFilterAlgo_t),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct AlgorithmKey {
    pass: Pass,
    geometry: ConvGeometry,
    element: Element,
    tf32: bool,
}

/// One stream's cuDNN state.
struct StreamState {
    cudnn: Arc<Cudnn>,
    /// The algorithm and the workspace bytes it needs.
    algorithms: HashMap<AlgorithmKey, (Algorithm, usize)>,
    workspace: Option<CudaSlice<u8>>,
}

impl StreamState {
    fn algorithm(
        &mut self,
        key: AlgorithmKey,
        choose: impl FnOnce() -> Result<(Algorithm, usize)>,
    ) -> Result<(Algorithm, usize)> {
        if let Some(found) = self.algorithms.get(&key) {
            return Ok(*found);
        }
        let chosen = choose()?;
        tracing::debug!(?key, algorithm = ?chosen.0, workspace_bytes = chosen.1, "cuDNN algorithm chosen");
        self.algorithms.insert(key, chosen);
        Ok(chosen)
    }

    /// A workspace of at least `bytes`, `None` when none is needed. A
    /// larger one replaces the old on the same stream, so work still
    /// queued on the old one finishes before its memory is reused.
    fn workspace(&mut self, device: &CudaDevice, bytes: usize) -> Result<Option<&mut CudaSlice<u8>>> {
        if bytes == 0 {
            return Ok(None);
        }
        if self.workspace.as_ref().is_none_or(|w| w.len() < bytes) {
            self.workspace = None;
            self.workspace = Some(unsafe { device.alloc::<u8>(bytes) }?);
        }
        Ok(self.workspace.as_mut())
    }
}

// cuDNN handles are neither Send nor Sync: one per thread and device
// (a device here is one stream: every slot opens its own).
thread_local! {
    static STATES: RefCell<HashMap<DeviceId, StreamState>> = RefCell::new(HashMap::new());
}

fn with_state<R>(device: &CudaDevice, f: impl FnOnce(&mut StreamState) -> Result<R>) -> Result<R> {
    STATES.with(|states| {
        let mut states = states.borrow_mut();
        let state = match states.entry(device.id()) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(StreamState {
                cudnn: Cudnn::new(device.cuda_stream())?,
                algorithms: HashMap::new(),
                workspace: None,
            }),
        };
        f(state)
    })
}

/// The element types cuDNN convolves here.
trait ConvElement: CudaDType + DeviceRepr + ValidAsZeroBits + WithDType + CudnnDataType<Scalar = f32> {}
impl ConvElement for f32 {}
impl ConvElement for half::bf16 {}

/// The descriptors of one convolution: NHWC input, NHWC filter, NHWC
/// output, f32 accumulation.
struct Descriptors<T: ConvElement> {
    conv: ConvDescriptor<f32>,
    x: candle_core::cuda::cudarc::cudnn::safe::TensorDescriptor<T>,
    w: candle_core::cuda::cudarc::cudnn::safe::FilterDescriptor<T>,
    y: candle_core::cuda::cudarc::cudnn::safe::TensorDescriptor<T>,
}

fn dim(n: usize) -> Result<std::ffi::c_int> {
    std::ffi::c_int::try_from(n)
        .map_err(|_| candle_core::Error::Msg(format!("convolution dimension {n} exceeds cuDNN's")))
}

/// Tensor cores for bf16; TF32 for f32 where candle's TF32 switch (set by
/// `DeviceSpec::open`, vetoed by NVIDIA_TF32_OVERRIDE=0) allows it, as
/// PyTorch's `allow_tf32` does for its cuDNN convolutions.
fn tf32() -> bool {
    candle_core::cuda::gemm_reduced_precision_f32()
}

impl<T: ConvElement> Descriptors<T> {
    fn new(cudnn: &Arc<Cudnn>, g: &ConvGeometry) -> Result<Self> {
        use sys::cudnnTensorFormat_t::CUDNN_TENSOR_NHWC as NHWC;
        let (pad, stride) = (dim(g.padding)?, dim(g.stride)?);
        let mut conv = cudnn.create_conv2d::<f32>(
            [pad, pad],
            [stride, stride],
            [1, 1],
            sys::cudnnConvolutionMode_t::CUDNN_CROSS_CORRELATION,
        )?;
        let math = match (Element::of("cudnn-conv2d", T::DTYPE)?, tf32()) {
            (Element::Bf16, _) => sys::cudnnMathType_t::CUDNN_TENSOR_OP_MATH,
            (Element::F32, true) => sys::cudnnMathType_t::CUDNN_DEFAULT_MATH,
            (Element::F32, false) => sys::cudnnMathType_t::CUDNN_FMA_MATH,
        };
        conv.set_math_type(math)?;
        let (b, c, k, kernel) = (dim(g.batch)?, dim(g.in_channels)?, dim(g.out_channels)?, dim(g.kernel)?);
        Ok(Self {
            conv,
            x: cudnn.create_4d_tensor::<T>(NHWC, [b, c, dim(g.height)?, dim(g.width)?])?,
            w: cudnn.create_4d_filter::<T>(NHWC, [k, c, kernel, kernel])?,
            y: cudnn.create_4d_tensor::<T>(NHWC, [b, k, dim(g.out_h())?, dim(g.out_w())?])?,
        })
    }
}

/// Whether the backward passes keep to deterministic cuDNN algorithms
/// (the default; `WIDESWEEP_CUDNN_DETERMINISTIC=0` lets cuDNN's heuristics
/// pick freely). cuDNN's forward algorithms are all deterministic; backward
/// data ALGO_0 and backward filter ALGO_0 and ALGO_3 add partial sums with
/// atomics, so two runs of one seed would differ in their last bits and then
/// drift apart: a sweep's seeds are meant to be its only source of variance,
/// and a resumed run should retrace the one it continues. Like PyTorch's
/// `cudnn.deterministic`, at some cost in speed (gpu-compare.sh measures it).
pub fn deterministic() -> bool {
    static DETERMINISTIC: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DETERMINISTIC.get_or_init(|| std::env::var("WIDESWEEP_CUDNN_DETERMINISTIC").map_or(true, |v| v.trim() != "0"))
}

/// The heuristics' pick, or, when it is not deterministic and determinism
/// is asked for, `substitute` (deterministic for every layout and type)
/// if cuDNN accepts it for this convolution (`workspace` answers with its
/// size); the pick when it does not.
fn prefer_deterministic<A: Copy + std::fmt::Debug>(
    picked: A,
    deterministic_pick: bool,
    substitute: A,
    workspace: impl Fn(A) -> Result<usize>,
) -> Result<(A, usize)> {
    if deterministic_pick || !deterministic() {
        return Ok((picked, workspace(picked)?));
    }
    match workspace(substitute) {
        Ok(bytes) => Ok((substitute, bytes)),
        Err(error) => {
            tracing::warn!(?picked, ?substitute, %error, "no deterministic cuDNN algorithm for a convolution: using a non-deterministic one");
            Ok((picked, workspace(picked)?))
        }
    }
}

fn key<T: ConvElement>(pass: Pass, geometry: &ConvGeometry) -> Result<AlgorithmKey> {
    Ok(AlgorithmKey { pass, geometry: *geometry, element: Element::of("cudnn-conv2d", T::DTYPE)?, tf32: tf32() })
}

/// `y = conv(x, w)`, plus `residual` when given (cuDNN's beta = 1 over a
/// copy of it, so the sum costs no pass of its own).
fn forward<T: ConvElement>(
    g: &ConvGeometry,
    device: &CudaDevice,
    x: &CudaView<'_, T>,
    w: &CudaView<'_, T>,
    residual: Option<&CudaView<'_, T>>,
) -> Result<CudaSlice<T>> {
    with_state(device, |state| {
        let d = Descriptors::<T>::new(&state.cudnn, g)?;
        let op = ConvForward { conv: &d.conv, x: &d.x, w: &d.w, y: &d.y };
        let (algorithm, bytes) = state.algorithm(key::<T>(Pass::Forward, g)?, || {
            let algorithm = op.pick_algorithm()?;
            Ok((Algorithm::Forward(algorithm), op.get_workspace_size(algorithm)?))
        })?;
        let Algorithm::Forward(algorithm) = algorithm else { unreachable!("forward key, forward algorithm") };
        let mut y = unsafe { device.alloc::<T>(g.out_shape().elem_count()) }?;
        let beta = match residual {
            Some(residual) => {
                device.cuda_stream().memcpy_dtod(residual, &mut y)?;
                T::from_f64(1.0)
            }
            None => T::from_f64(0.0),
        };
        let workspace = state.workspace(device, bytes)?;
        unsafe { op.launch(algorithm, workspace, (T::from_f64(1.0), beta), x, w, &mut y) }?;
        Ok(y)
    })
}

/// `dx` from `w` and `dy`.
fn backward_data<T: ConvElement>(
    g: &ConvGeometry,
    device: &CudaDevice,
    w: &CudaView<'_, T>,
    dy: &CudaView<'_, T>,
) -> Result<CudaSlice<T>> {
    with_state(device, |state| {
        let d = Descriptors::<T>::new(&state.cudnn, g)?;
        let op = ConvBackwardData { conv: &d.conv, dx: &d.x, w: &d.w, dy: &d.y };
        let (algorithm, bytes) = state.algorithm(key::<T>(Pass::BackwardData, g)?, || {
            use sys::cudnnConvolutionBwdDataAlgo_t as A;
            let picked = op.pick_algorithm()?;
            let (algorithm, bytes) = prefer_deterministic(
                picked,
                picked != A::CUDNN_CONVOLUTION_BWD_DATA_ALGO_0,
                A::CUDNN_CONVOLUTION_BWD_DATA_ALGO_1,
                |a| Ok(op.get_workspace_size(a)?),
            )?;
            Ok((Algorithm::BackwardData(algorithm), bytes))
        })?;
        let Algorithm::BackwardData(algorithm) = algorithm else { unreachable!("data key, data algorithm") };
        let mut dx = unsafe { device.alloc::<T>(g.batch * g.height * g.width * g.in_channels) }?;
        let workspace = state.workspace(device, bytes)?;
        unsafe { op.launch(algorithm, workspace, (T::from_f64(1.0), T::from_f64(0.0)), &mut dx, w, dy) }?;
        Ok(dx)
    })
}

/// `dw` (`[c_out, k, k, c]`) from `x` and `dy`.
fn backward_filter<T: ConvElement>(
    g: &ConvGeometry,
    device: &CudaDevice,
    x: &CudaView<'_, T>,
    dy: &CudaView<'_, T>,
) -> Result<CudaSlice<T>> {
    with_state(device, |state| {
        let d = Descriptors::<T>::new(&state.cudnn, g)?;
        let op = ConvBackwardFilter { conv: &d.conv, x: &d.x, dw: &d.w, dy: &d.y };
        let (algorithm, bytes) = state.algorithm(key::<T>(Pass::BackwardFilter, g)?, || {
            use sys::cudnnConvolutionBwdFilterAlgo_t as A;
            let picked = op.pick_algorithm()?;
            let nondeterministic =
                matches!(picked, A::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0 | A::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_3);
            let (algorithm, bytes) =
                prefer_deterministic(picked, !nondeterministic, A::CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, |a| {
                    Ok(op.get_workspace_size(a)?)
                })?;
            Ok((Algorithm::BackwardFilter(algorithm), bytes))
        })?;
        let Algorithm::BackwardFilter(algorithm) = algorithm else { unreachable!("filter key, filter algorithm") };
        let mut dw = unsafe { device.alloc::<T>(g.out_channels * g.kernel * g.kernel * g.in_channels) }?;
        let workspace = state.workspace(device, bytes)?;
        unsafe { op.launch(algorithm, workspace, (T::from_f64(1.0), T::from_f64(0.0)), x, &mut dw, dy) }?;
        Ok(dw)
    })
}

/// `conv2d(x, w)`, `w` as `[c_out, k, k, c]`.
struct Conv2d {
    geometry: ConvGeometry,
    /// False when `x` is not part of the graph (the network's input).
    input_grad: bool,
}

/// `conv2d(x, w) + residual`.
struct Conv2dAdd(ConvGeometry);

/// `(w, dy) -> dx` (pass `BackwardData`) or `(x, dy) -> dw` (pass
/// `BackwardFilter`).
struct Backward {
    pass: Pass,
    geometry: ConvGeometry,
}

fn weight_shape(g: &ConvGeometry) -> Shape {
    Shape::from((g.out_channels, g.kernel, g.kernel, g.in_channels))
}

/// The gradients of both arguments, `dx` only when asked for.
fn gradients(
    g: &ConvGeometry,
    x: &Tensor,
    w: &Tensor,
    dy: &Tensor,
    input_grad: bool,
) -> Result<(Option<Tensor>, Tensor)> {
    let dy = dy.contiguous()?;
    let dx = if input_grad {
        Some(w.apply_op2_no_bwd(&dy, &Backward { pass: Pass::BackwardData, geometry: *g })?)
    } else {
        None
    };
    let dw = x.apply_op2_no_bwd(&dy, &Backward { pass: Pass::BackwardFilter, geometry: *g })?;
    Ok((dx, dw))
}

macro_rules! cuda_only {
    ($name:expr) => {
        candle_core::bail!("{} runs on CUDA only (the CPU has kernels::conv)", $name)
    };
}

impl CustomOp2 for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d-nhwc-cudnn"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        cuda_only!(self.name())
    }

    fn cuda_fwd(&self, s1: &CudaStorage, l1: &Layout, s2: &CudaStorage, l2: &Layout) -> Result<(CudaStorage, Shape)> {
        fn run<T: ConvElement>(
            g: &ConvGeometry,
            s1: &CudaStorage,
            l1: &Layout,
            s2: &CudaStorage,
            l2: &Layout,
        ) -> Result<CudaStorage> {
            let name = "conv2d-nhwc-cudnn";
            let (x, w) = (view::<T>(name, "input", s1, l1)?, view::<T>(name, "weight", s2, l2)?);
            let y = forward(g, s1.device(), &x, &w, None)?;
            Ok(CudaStorage::wrap_cuda_slice(y, s1.device().clone()))
        }
        let g = &self.geometry;
        let y = dispatch_element!(self.name(), s1, run(g, s1, l1, s2, l2))?;
        Ok((y, g.out_shape()))
    }

    fn bwd(&self, x: &Tensor, w: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = gradients(&self.geometry, x, w, dy, self.input_grad)?;
        Ok((dx, Some(dw)))
    }
}

impl CustomOp3 for Conv2dAdd {
    fn name(&self) -> &'static str {
        "conv2d-nhwc-add-cudnn"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        cuda_only!(self.name())
    }

    fn cuda_fwd(
        &self,
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<(CudaStorage, Shape)> {
        fn run<T: ConvElement>(g: &ConvGeometry, args: [(&CudaStorage, &Layout); 3]) -> Result<CudaStorage> {
            let name = "conv2d-nhwc-add-cudnn";
            let x = view::<T>(name, "input", args[0].0, args[0].1)?;
            let w = view::<T>(name, "weight", args[1].0, args[1].1)?;
            let residual = view::<T>(name, "residual", args[2].0, args[2].1)?;
            let device = args[0].0.device();
            let y = forward(g, device, &x, &w, Some(&residual))?;
            Ok(CudaStorage::wrap_cuda_slice(y, device.clone()))
        }
        let g = &self.0;
        let y = dispatch_element!(self.name(), s1, run(g, [(s1, l1), (s2, l2), (s3, l3)]))?;
        Ok((y, g.out_shape()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _residual: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw) = gradients(&self.0, x, w, dy, true)?;
        Ok((dx, Some(dw), Some(dy.clone())))
    }
}

impl CustomOp2 for Backward {
    fn name(&self) -> &'static str {
        match self.pass {
            Pass::BackwardData => "conv2d-nhwc-cudnn-backward-data",
            Pass::BackwardFilter | Pass::Forward => "conv2d-nhwc-cudnn-backward-filter",
        }
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        cuda_only!(self.name())
    }

    fn cuda_fwd(&self, s1: &CudaStorage, l1: &Layout, s2: &CudaStorage, l2: &Layout) -> Result<(CudaStorage, Shape)> {
        fn run<T: ConvElement>(
            op: &Backward,
            s1: &CudaStorage,
            l1: &Layout,
            s2: &CudaStorage,
            l2: &Layout,
        ) -> Result<CudaStorage> {
            let (name, g, device) = (op.name(), &op.geometry, s1.device());
            let dy = view::<T>(name, "output gradient", s2, l2)?;
            let gradient = if op.pass == Pass::BackwardData {
                backward_data(g, device, &view::<T>(name, "weight", s1, l1)?, &dy)?
            } else {
                backward_filter(g, device, &view::<T>(name, "input", s1, l1)?, &dy)?
            };
            Ok(CudaStorage::wrap_cuda_slice(gradient, device.clone()))
        }
        let g = &self.geometry;
        let gradient = dispatch_element!(self.name(), s1, run(self, s1, l1, s2, l2))?;
        let shape = match self.pass {
            Pass::BackwardData => Shape::from((g.batch, g.height, g.width, g.in_channels)),
            Pass::BackwardFilter | Pass::Forward => weight_shape(g),
        };
        Ok((gradient, shape))
    }
}

/// cuDNN wants the filter channels-last, `[c_out, c, k, k] -> [c_out, k,
/// k, c]`, in the input's type: one copy does both (the cast reads the
/// permuted view), and its backward hands the f32 master weights their
/// gradient.
fn filter_nhwc(weight: &Tensor, dtype: candle_core::DType) -> Result<Tensor> {
    weight.permute((0, 2, 3, 1))?.to_dtype(dtype)?.contiguous()
}

/// A convolution of NHWC `x` with `weight [c_out, c, k, k]` (checked into
/// `geometry` by the caller) on CUDA.
pub fn conv2d(x: &Tensor, weight: &Tensor, geometry: ConvGeometry) -> Result<Tensor> {
    let op = Conv2d { geometry, input_grad: x.track_op() };
    x.contiguous()?.apply_op2(&filter_nhwc(weight, x.dtype())?, op)
}

/// `conv2d(x, weight) + residual` on CUDA.
pub fn conv2d_add(x: &Tensor, weight: &Tensor, residual: &Tensor, geometry: ConvGeometry) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&filter_nhwc(weight, x.dtype())?, &residual.contiguous()?, Conv2dAdd(geometry))
}
