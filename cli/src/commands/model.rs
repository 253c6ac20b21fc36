//! `widesweep model`: the size and cost of one network, counted from the
//! instantiated candle model and checked against the plan.

use anyhow::{Context, bail};
use clap::Args;
use widesweep_coordinator::plan::group_thousands;
use widesweep_worker::candle;
use widesweep_worker::wrn::Wrn;

use super::train::CellArgs;

/// `widesweep model`: the size and cost of one network.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    #[command(flatten)]
    pub cell: CellArgs,
}

pub fn run_model(args: &ModelArgs) -> anyhow::Result<()> {
    let config = args.cell.config()?;
    let plan = config.plan();
    // Counted from the instantiated candle model, and checked against the plan.
    let model = Wrn::new(&config, 0, candle::DType::F32, &candle::Device::Cpu).context("instantiating the model")?;
    let params = model.param_count();
    if params != plan.param_count() {
        bail!("instantiated model has {params} parameters but the plan says {}", plan.param_count());
    }
    let macs = plan.forward_macs();
    let activations = plan.activation_elems();
    println!("network      {}", config.name());
    println!(
        "dataset      {} ({} input channels, {} classes)",
        args.cell.dataset, config.in_channels, config.num_classes
    );
    println!("blocks/group {}", config.blocks_per_group);
    println!("dropout      {}", config.dropout);
    println!("parameters   {} ({:.1}M)", group_thousands(params), params as f64 / 1e6);
    println!("forward MACs {:.3} G per image (training step ~3x)", macs as f64 / 1e9);
    println!(
        "activations  {:.1} MiB per training image (f32, lower bound: {} elements)",
        activations as f64 * 4.0 / (1 << 20) as f64,
        group_thousands(activations)
    );
    Ok(())
}
