//! The optimizer's step on CUDA: each f32 parameter and its momentum
//! buffer updated in place by two kernels (`sgd.cu`) where candle
//! operations launch nine and allocate as many temporaries. The arithmetic
//! is [`crate::train::optimizer::Sgd`]'s, which keeps the first step of
//! each buffer and the CPU's steps.

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::PushKernelArg;
use candle_core::cuda::{CudaStorage, WrapErr};
use candle_core::{CpuStorage, InplaceOp3, Layout, Result, Tensor};

use super::{elementwise_config, view, view_mut};

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

/// Which tensor a kernel updates in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// The momentum buffer, from `(grad, param)`: `sgd_momentum`.
    Momentum,
    /// The parameter, from `(grad, buf)` once the buffer is updated:
    /// `sgd_apply`.
    Parameter,
}

struct Update {
    target: Target,
    step: SgdStep,
}

impl InplaceOp3 for Update {
    fn name(&self) -> &'static str {
        match self.target {
            Target::Momentum => "sgd-momentum-cuda",
            Target::Parameter => "sgd-apply-cuda",
        }
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
        let (kernel, other) = match self.target {
            Target::Momentum => ("sgd_momentum", "parameter"),
            Target::Parameter => ("sgd_apply", "momentum buffer"),
        };
        let grad = view::<f32>(name, "gradient", s2, l2)?;
        let other_values = view::<f32>(name, other, s3, l3)?;
        let n = grad.len();
        if other_values.len() != n {
            candle_core::bail!("{name}: {} {other} values, {n} gradient values", other_values.len());
        }
        let device = s1.device().clone();
        let mut updated = view_mut(name, s1, l1, n)?;
        let step = self.step;
        let (n_arg, lr, momentum, decay) = (n as i64, step.lr as f32, step.momentum as f32, step.weight_decay as f32);
        let nesterov = i32::from(step.nesterov);
        let func = device.get_or_load_custom_func(kernel, MODULE, PTX)?;
        let mut launch = func.builder();
        launch.arg(&mut updated).arg(&grad).arg(&other_values).arg(&n_arg);
        match self.target {
            Target::Momentum => launch.arg(&momentum).arg(&decay),
            Target::Parameter => launch.arg(&lr).arg(&momentum).arg(&decay).arg(&nesterov),
        };
        unsafe { launch.launch(elementwise_config(n)) }.w()?;
        Ok(())
    }
}

/// One step of `param` (a CUDA f32 parameter, updated in place) with its
/// existing momentum buffer `buf` (also updated in place).
pub fn step(param: &Tensor, grad: &Tensor, buf: &Tensor, step: SgdStep) -> Result<()> {
    let grad = grad.contiguous()?;
    buf.inplace_op3(&grad, param, &Update { target: Target::Momentum, step })?;
    param.inplace_op3(&grad, buf, &Update { target: Target::Parameter, step })
}
