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
use widesweep_arch::{NetworkPlan, WrnConfig};

use crate::rng::{self, Purpose};
use block::Block;
use init::{SeededInit, TensorStore};
use layers::{Conv, Head, Layout, MaskSource};

/// A WRN ready to train: its layers and the store holding its tensors.
pub struct Wrn {
    config: WrnConfig,
    stem: Conv,
    blocks: Vec<Block>,
    head: Head,
    masks: MaskSource,
    layout: Layout,
    store: TensorStore,
}

impl Wrn {
    /// Builds `config` with the official initialisation drawn from `seed`.
    pub fn new(config: &WrnConfig, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        Self::with_layout(config, seed, dtype, device, Layout::for_device(device))
    }

    /// As [`Wrn::new`] with an explicit activation layout (tests compare the two).
    pub fn with_layout(config: &WrnConfig, seed: u64, dtype: DType, device: &Device, layout: Layout) -> Result<Self> {
        let store = TensorStore::default();
        let backend = SeededInit { seed, store: store.clone() };
        let vb = VarBuilder::from_backend(Box::new(backend), dtype, device.clone());
        let plan = config.plan();
        let masks = MaskSource::default();
        let stem = Conv::new(plan.stem, layout, vb.pp("stem"))?;
        let mut blocks = Vec::new();
        for (group_idx, group) in plan.groups.iter().enumerate() {
            let group_vb = vb.pp(format!("group{}", group_idx + 1));
            for (block_idx, block) in group.blocks.iter().enumerate() {
                let block_vb = group_vb.pp(format!("block{block_idx}"));
                blocks.push(Block::new(block, config.dropout, masks.clone(), layout, block_vb)?);
            }
        }
        let head = Head::new(plan.head, layout, vb.pp("head"))?;
        Ok(Self { config: config.clone(), stem, blocks, head, masks, layout, store })
    }

    pub fn config(&self) -> &WrnConfig {
        &self.config
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

    /// Seeds the dropout masks of the next training forward pass from
    /// (seed, epoch, step).
    pub fn reseed_dropout(&self, seed: u64, epoch: u64, step: u64) {
        self.masks.reseed(rng::stream(seed, epoch, step, Purpose::Dropout));
    }
}

impl ModuleT for Wrn {
    /// Images `[batch, in_channels, 32, 32]` to logits `[batch, classes]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let xs = match self.layout {
            Layout::Nchw => xs.clone(),
            Layout::Nhwc => xs.permute((0, 2, 3, 1))?.contiguous()?,
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
