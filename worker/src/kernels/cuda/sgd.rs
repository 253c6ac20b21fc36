//! The optimizer's step on CUDA: each f32 parameter and its momentum
//! buffer updated in place by two kernels (`sgd.cu`) where candle
//! operations launch nine and allocate as many temporaries. The arithmetic
//! is [`crate::train::optimizer::Sgd`]'s, which keeps the first step of
//! each buffer and the CPU's steps.

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::{CudaViewMut, LaunchConfig, PushKernelArg};
use candle_core::cuda::{CudaStorage, WrapErr};
use candle_core::{CpuStorage, InplaceOp3, Layout, Result, Tensor};

use super::view;

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/sgd.ptx"));
const MODULE: &str = "widesweep_sgd";

/// The hyper-parameters of one step.
#[derive(Clone, Copy, Debug)]
pub struct SgdStep {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
    pub nesterov: bool,
}

/// `buf` in place, from `(grad, param)`.
struct Momentum(SgdStep);

/// `param` in place, from `(grad, buf)`.
struct Apply(SgdStep);

/// The mutable argument's contiguous elements, checked to be `n` f32.
fn target<'a>(op: &str, storage: &'a mut CudaStorage, layout: &Layout, n: usize) -> Result<CudaViewMut<'a, f32>> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: the updated tensor must be contiguous")
    };
    if end - start != n {
        candle_core::bail!("{op}: {} values to update, {n} in the gradient", end - start);
    }
    Ok(storage.as_cuda_slice_mut::<f32>()?.slice_mut(start..end))
}

fn config(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(256).clamp(1, 1 << 16) as u32;
    LaunchConfig { grid_dim: (blocks, 1, 1), block_dim: (256, 1, 1), shared_mem_bytes: 0 }
}

impl InplaceOp3 for Momentum {
    fn name(&self) -> &'static str {
        "sgd-momentum-cuda"
    }

    fn cpu_fwd(
        &self,
        _: &mut CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<()> {
        candle_core::bail!("{} runs on CUDA only", self.name())
    }

    fn cuda_fwd(
        &self,
        s1: &mut CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<()> {
        let name = self.name();
        let grad = view::<f32>(name, "gradient", s2, l2)?;
        let param = view::<f32>(name, "parameter", s3, l3)?;
        let n = grad.len();
        if param.len() != n {
            candle_core::bail!("{name}: {} parameter values, {n} gradient values", param.len());
        }
        let device = s1.device().clone();
        let mut buf = target(name, s1, l1, n)?;
        let (n_arg, momentum, decay) = (n as i64, self.0.momentum as f32, self.0.weight_decay as f32);
        let func = device.get_or_load_custom_func("sgd_momentum", MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&mut buf).arg(&grad).arg(&param).arg(&n_arg).arg(&momentum).arg(&decay);
        unsafe { launch.launch(config(n)) }.w()?;
        Ok(())
    }
}

impl InplaceOp3 for Apply {
    fn name(&self) -> &'static str {
        "sgd-apply-cuda"
    }

    fn cpu_fwd(
        &self,
        _: &mut CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> Result<()> {
        candle_core::bail!("{} runs on CUDA only", self.name())
    }

    fn cuda_fwd(
        &self,
        s1: &mut CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> Result<()> {
        let name = self.name();
        let grad = view::<f32>(name, "gradient", s2, l2)?;
        let buf = view::<f32>(name, "momentum buffer", s3, l3)?;
        let n = grad.len();
        if buf.len() != n {
            candle_core::bail!("{name}: {} momentum values, {n} gradient values", buf.len());
        }
        let device = s1.device().clone();
        let mut param = target(name, s1, l1, n)?;
        let step = self.0;
        let (n_arg, lr, momentum, decay) = (n as i64, step.lr as f32, step.momentum as f32, step.weight_decay as f32);
        let nesterov = i32::from(step.nesterov);
        let func = device.get_or_load_custom_func("sgd_apply", MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&mut param).arg(&grad).arg(&buf).arg(&n_arg).arg(&lr).arg(&momentum).arg(&decay).arg(&nesterov);
        unsafe { launch.launch(config(n)) }.w()?;
        Ok(())
    }
}

/// One step of `param` (a CUDA f32 parameter, updated in place) with its
/// existing momentum buffer `buf` (also updated in place).
pub fn step(param: &Tensor, grad: &Tensor, buf: &Tensor, step: SgdStep) -> Result<()> {
    let grad = grad.contiguous()?;
    buf.inplace_op3(&grad, param, &Momentum(step))?;
    param.inplace_op3(&grad, buf, &Apply(step))
}
