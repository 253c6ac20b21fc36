//! One pre-activation residual block of any pattern B(k1, k2, ...).

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::VarBuilder;
use widesweep_arch::BlockPlan;

use super::layers::{BatchNorm, Conv, Dropout, Layout, MaskSource, Recalibration};

/// Convolution i is preceded by BN_i -> ReLU, with dropout after the ReLU of
/// every convolution but the first (dropout sits between convolutions, never
/// on the shortcut). When the block changes the channel count, the first
/// BN -> ReLU is applied once, before the split, and feeds both the residual
/// branch and the 1x1 shortcut projection; otherwise the shortcut is the raw
/// input.
pub struct Block {
    bns: Vec<BatchNorm>,
    convs: Vec<Conv>,
    dropout: Dropout,
    shortcut: Option<Conv>,
}

impl Block {
    pub fn new(
        plan: &BlockPlan,
        dropout: f64,
        masks: MaskSource,
        recalibration: Recalibration,
        layout: Layout,
        vb: VarBuilder,
    ) -> Result<Self> {
        let mut bns = Vec::with_capacity(plan.convs.len());
        let mut convs = Vec::with_capacity(plan.convs.len());
        for (conv_idx, spec) in plan.convs.iter().enumerate() {
            let bn_vb = vb.pp(format!("bn{conv_idx}"));
            bns.push(BatchNorm::new(spec.in_channels, layout, recalibration.clone(), bn_vb)?);
            convs.push(Conv::new(*spec, layout, vb.pp(format!("conv{conv_idx}")))?);
        }
        let shortcut = plan.shortcut.map(|spec| Conv::new(spec, layout, vb.pp("shortcut"))).transpose()?;
        Ok(Self { bns, convs, dropout: Dropout::new(dropout, layout, masks, recalibration), shortcut })
    }
}

impl ModuleT for Block {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        let mut residual = xs.clone();
        let mut shortcut = xs.clone();
        let last = self.convs.len() - 1;
        for (conv_idx, (bn, conv)) in self.bns.iter().zip(&self.convs).enumerate() {
            let mut activated = bn.forward_relu_t(&residual, train)?;
            if conv_idx == 0 {
                if let Some(projection) = &self.shortcut {
                    shortcut = projection.forward(&activated)?;
                }
            } else {
                activated = self.dropout.forward_t(&activated, train)?;
            }
            residual =
                if conv_idx == last { conv.forward_add(&activated, &shortcut)? } else { conv.forward(&activated)? };
        }
        Ok(residual)
    }
}
