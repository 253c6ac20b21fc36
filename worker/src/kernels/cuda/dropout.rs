//! Inverted dropout over a CUDA tensor as one kernel (`dropout.cu`), its
//! mask a pure function of the layer's key and the element's index
//! ([`crate::rng::dropout_keeps`]): nothing is drawn on the host or copied
//! to the device, and the backward pass recomputes the mask instead of
//! keeping it.

use candle_core::backend::BackendStorage;
use candle_core::cuda::cudarc::driver::{DeviceRepr, PushKernelArg};
use candle_core::cuda::{CudaDType, CudaStorage, WrapErr};
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, WithDType};

use super::{dispatch_element, elementwise_config, view};

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/dropout.ptx"));
const MODULE: &str = "widesweep_dropout";

/// `x -> x * mask * scale`, differentiable (the gradient is the same
/// operation on the output's gradient).
struct Dropout {
    key: u64,
    threshold: u64,
    /// 1 / (1 - p), rounded to each element type as the CPU's mask is.
    scale: f64,
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "dropout-cuda"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        candle_core::bail!("{} runs on CUDA only (the CPU builds its mask in wrn::layers)", self.name())
    }

    fn cuda_fwd(&self, storage: &CudaStorage, layout: &Layout) -> Result<(CudaStorage, Shape)> {
        fn run<T: CudaDType + DeviceRepr + WithDType>(
            op: &Dropout,
            storage: &CudaStorage,
            layout: &Layout,
        ) -> Result<CudaStorage> {
            let name = op.name();
            let x = view::<T>(name, "input", storage, layout)?;
            let device = storage.device();
            let n = layout.shape().elem_count();
            let y = unsafe { device.alloc::<T>(n) }?;
            let suffix = super::Element::of(name, T::DTYPE)?.suffix();
            // The scale as the CPU's mask holds it: rounded to T.
            let scale = T::from_f64(op.scale).to_f64() as f32;
            let n_arg = n as i64;
            let func = device.get_or_load_custom_func(&format!("dropout_{suffix}"), MODULE, PTX)?;
            let mut launch = func.builder();
            launch.arg(&x).arg(&n_arg).arg(&op.key).arg(&op.threshold).arg(&scale).arg(&y);
            unsafe { launch.launch(elementwise_config(n)) }.w()?;
            Ok(CudaStorage::wrap_cuda_slice(y, device.clone()))
        }
        let y = dispatch_element!(self.name(), storage, run(self, storage, layout))?;
        Ok((y, layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        let again = Dropout { key: self.key, threshold: self.threshold, scale: self.scale };
        Ok(Some(dy.contiguous()?.apply_op1_no_bwd(&again)?))
    }
}

/// Inverted dropout with probability `p` of the contiguous elements of a
/// CUDA tensor (f32 or bf16), mask `key`.
pub fn apply(x: &Tensor, key: u64, p: f64) -> Result<Tensor> {
    if !matches!(x.dtype(), DType::F32 | DType::BF16) {
        candle_core::bail!("dropout-cuda: supports f32 and bf16, not {:?}", x.dtype());
    }
    let op = Dropout { key, threshold: crate::rng::dropout_threshold(p), scale: 1.0 / (1.0 - p) };
    x.contiguous()?.apply_op1(op)
}
