//! The Wide Residual Network in candle (Zagoruyko & Komodakis, "Wide Residual
//! Networks", BMVC 2016, arXiv:1605.07146), built by walking the
//! [`NetworkPlan`] of `widesweep-arch`: the same definition the coordinator
//! uses for parameter counts and costs.
//!
//! - [`layers`]: convolution, batch norm, seeded dropout, classifier head.
//! - [`block`]: one pre-activation block of any pattern.
//! - [`init`]: seeded tensor creation and the named tensor store.
//!
//! Tensor names mirror the module tree: `stem.weight`,
//! `group1.block0.bn0.weight`, `group1.block0.conv0.weight`,
//! `group1.block0.shortcut.weight`, `head.bn.running_mean`, `head.fc.bias`.

pub mod block;
pub mod init;
pub mod layers;

use candle_core::{DType, Device, Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use widesweep_arch::{NetworkPlan, Precision, WrnConfig};

use crate::rng::{self, Purpose};
use block::Block;
use init::{SeededInit, TensorStore};
use layers::{Conv, Head, Layout, MaskSource, Recalibration};

/// How a model computes: the layout of its activations and its arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelOptions {
    pub layout: Layout,
    pub precision: Precision,
}

impl ModelOptions {
    /// The fastest layout `device` has for `precision`: NHWC through
    /// widesweep's kernels on the CPU (f32) and through cuDNN on CUDA (f32
    /// and bf16, builds with cuDNN); candle's NCHW operators otherwise.
    pub fn for_device(device: &Device, precision: Precision) -> Self {
        let layout = match (precision, device.is_cpu()) {
            (Precision::Bf16, true) => Layout::Nchw,
            _ => Layout::for_device(device),
        };
        Self { layout, precision }
    }

    /// Refuses combinations no kernel of `device` implements, naming what
    /// would work.
    pub fn check(&self, device: &Device) -> Result<()> {
        if self.layout != Layout::Nhwc {
            return Ok(());
        }
        if device.is_cpu() && self.precision == Precision::Bf16 {
            candle_core::bail!(
                "precision bf16 runs in the nchw layout on the CPU (candle's operators); the nhwc CPU kernels are \
                 f32: use layout nchw, or precision f32"
            );
        }
        if device.is_cuda() && !cfg!(feature = "cudnn") {
            candle_core::bail!(
                "the nhwc layout on CUDA runs through cuDNN, which this build lacks (build with --features cudnn, \
                 scripts/build-cuda.sh --cudnn): use layout nchw"
            );
        }
        Ok(())
    }

    /// Which kernels train, for the logs: a slow path should be visible, not
    /// guessed from throughput.
    pub fn kernels(&self, device: &Device) -> String {
        let precision = match self.precision {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16 mixed precision, f32 master weights",
        };
        match self.layout {
            Layout::Nhwc if device.is_cuda() => format!(
                "cuDNN convolutions (NHWC, {precision}{}, {} algorithms chosen once per shape) and widesweep's \
                 fused batch norm + ReLU kernels",
                if self.precision == Precision::F32 && candle_core::cuda::gemm_reduced_precision_f32() {
                    ", TF32 tensor cores"
                } else {
                    ""
                },
                if cudnn_deterministic() { "deterministic" } else { "any" }
            ),
            Layout::Nhwc => format!(
                "widesweep CPU kernels (NHWC, {precision}, {}im2col + GEMM{}, fused batch norm + ReLU) on {} threads",
                if crate::kernels::winograd::enabled() { "Winograd F(2x2,3x3) and " } else { "" },
                if layers::avx512() { " with AVX-512" } else { "" },
                rayon::current_num_threads()
            ),
            Layout::Nchw if device.is_cpu() => format!(
                "candle's generic CPU operators (NCHW, {precision}): a reference path, several times slower \
                 than widesweep's NHWC kernels"
            ),
            Layout::Nchw if cfg!(feature = "cudnn") => {
                format!("candle's generic operators (NCHW, {precision}; forward convolutions through cuDNN)")
            }
            Layout::Nchw => format!(
                "candle conv2d (NCHW, {precision}) as im2col + cuBLAS{}, without cuDNN (build with --features cudnn)",
                if self.precision == Precision::F32 && candle_core::cuda::gemm_reduced_precision_f32() {
                    " with TF32 tensor cores"
                } else {
                    ""
                }
            ),
        }
    }
}

#[cfg(feature = "cudnn")]
fn cudnn_deterministic() -> bool {
    crate::kernels::cuda::conv::deterministic()
}

#[cfg(not(feature = "cudnn"))]
fn cudnn_deterministic() -> bool {
    false
}

/// A WRN ready to train: its layers and the store holding its tensors.
pub struct Wrn {
    config: WrnConfig,
    stem: Conv,
    blocks: Vec<Block>,
    head: Head,
    masks: MaskSource,
    recalibration: Recalibration,
    options: ModelOptions,
    store: TensorStore,
}

impl Wrn {
    /// Builds `config` without mixed precision (computing in `dtype`), with
    /// the official initialisation drawn from `seed`.
    pub fn new(config: &WrnConfig, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        Self::with_options(config, seed, dtype, device, ModelOptions::for_device(device, Precision::F32))
    }

    /// As [`Wrn::new`] with an explicit activation layout (tests compare the two).
    pub fn with_layout(config: &WrnConfig, seed: u64, dtype: DType, device: &Device, layout: Layout) -> Result<Self> {
        Self::with_options(config, seed, dtype, device, ModelOptions { layout, precision: Precision::F32 })
    }

    /// Builds `config` with parameters in `dtype` that computes as `options`
    /// says. In bf16 the parameters stay in `dtype` (the master weights).
    pub fn with_options(
        config: &WrnConfig,
        seed: u64,
        dtype: DType,
        device: &Device,
        options: ModelOptions,
    ) -> Result<Self> {
        options.check(device)?;
        let layout = options.layout;
        let store = TensorStore::default();
        let backend = SeededInit { seed, store: store.clone() };
        let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
        let plan = config.plan();
        let masks = MaskSource::default();
        let recalibration = Recalibration::default();
        let stem = Conv::new(plan.stem, layout, vb.pp("stem"))?;
        let mut blocks = Vec::new();
        for (group_idx, group) in plan.groups.iter().enumerate() {
            let group_vb = vb.pp(format!("group{}", group_idx + 1));
            for (block_idx, block) in group.blocks.iter().enumerate() {
                let block_vb = group_vb.pp(format!("block{block_idx}"));
                let (masks, recalibration) = (masks.clone(), recalibration.clone());
                blocks.push(Block::new(block, config.dropout, masks, recalibration, layout, block_vb)?);
            }
        }
        let head = Head::new(plan.head, layout, recalibration.clone(), vb.pp("head"))?;
        Ok(Self { config: config.clone(), stem, blocks, head, masks, recalibration, options, store })
    }

    pub fn config(&self) -> &WrnConfig {
        &self.config
    }

    pub fn options(&self) -> ModelOptions {
        self.options
    }

    pub fn plan(&self) -> NetworkPlan {
        self.config.plan()
    }

    /// Every tensor of the model by name (parameters and running statistics).
    pub fn store(&self) -> &TensorStore {
        &self.store
    }

    /// Trainable parameters of the instantiated model (running statistics excluded).
    pub fn param_count(&self) -> u64 {
        self.store.params().iter().map(|(_, v)| v.elem_count() as u64).sum()
    }

    /// Precise batch norm: replaces every batch norm's running statistics
    /// by the exact average of their batch statistics over `batches`
    /// (training-mode forward passes, dropout off, nothing learnt).
    pub fn recalibrate_batch_norm(&self, batches: impl IntoIterator<Item = Result<Tensor>>) -> Result<usize> {
        struct Off<'a>(&'a Recalibration);
        impl Drop for Off<'_> {
            fn drop(&mut self) {
                self.0.stop();
            }
        }
        let _off = Off(&self.recalibration);
        self.recalibration.start();
        let mut count = 0;
        for images in batches {
            // The logits are dropped at once: only the running statistics,
            // updated inside the pass, are wanted.
            self.forward_t(&images?, true)?;
            self.recalibration.advance();
            count += 1;
        }
        Ok(count)
    }

    /// Seeds the dropout masks of the next training forward pass from
    /// (seed, epoch, step).
    pub fn reseed_dropout(&self, seed: u64, epoch: u64, step: u64) {
        self.masks.reseed(rng::stream(seed, epoch, step, Purpose::Dropout));
    }
}

impl ModuleT for Wrn {
    /// Images `[batch, in_channels, 32, 32]` to logits `[batch, classes]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let xs = match (self.options.layout, self.options.precision) {
            (Layout::Nchw, Precision::F32) => xs.clone(),
            (Layout::Nchw, Precision::Bf16) => xs.to_dtype(DType::BF16)?,
            (Layout::Nhwc, Precision::F32) => xs.permute((0, 2, 3, 1))?.contiguous()?,
            (Layout::Nhwc, Precision::Bf16) => xs.permute((0, 2, 3, 1))?.to_dtype(DType::BF16)?.contiguous()?,
        };
        let mut hidden = self.stem.forward(&xs)?;
        for block in &self.blocks {
            hidden = block.forward_t(&hidden, train)?;
            if !train {
                // candle has no no-grad mode: every result keeps its inputs
                // alive for a backward pass. Cutting the graph after each
                // block lets evaluation free activations as it goes.
                hidden = hidden.detach();
            }
        }
        self.head.forward_t(&hidden, train)
    }
}
