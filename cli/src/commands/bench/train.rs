//! `widesweep bench train`: timed training steps of one network on one
//! device, with device-resident data.

use clap::Args;
use widesweep_arch::Precision;
use widesweep_worker::device::DeviceSpec;
use widesweep_worker::train::bench::{BenchOptions, bench_train};
use widesweep_worker::wrn::layers::Layout;

use crate::commands::train::CellArgs;

#[derive(Args, Debug, Clone)]
pub struct BenchTrainArgs {
    #[command(flatten)]
    pub cell: CellArgs,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed steps before them.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Activation layout: nhwc (widesweep's kernels: its own on the CPU in
    /// f32, cuDNN and fused batch norm on CUDA in builds with cuDNN; the
    /// default where available) or nchw (candle's generic operators).
    #[arg(long)]
    pub layout: Option<Layout>,
    /// f32, or bf16 mixed precision (f32 master weights), as
    /// bench/pytorch_reference.py --precision.
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    /// Print the loss of every step (warm-up included), one per line, to
    /// compare devices or against bench/pytorch_reference.py --print-losses.
    #[arg(long)]
    pub print_losses: bool,
}

/// `widesweep bench train`.
pub fn run_bench_train(args: &BenchTrainArgs) -> anyhow::Result<()> {
    let config = args.cell.config()?;
    let device = args.device.open()?;
    let options = BenchOptions {
        batch_size: args.batch_size,
        warmup_steps: args.warmup,
        steps: args.steps,
        layout: args.layout,
        precision: args.precision,
    };
    let model_options = options.model_options(&device);
    model_options.check(&device)?;
    println!("kernels: {}", model_options.kernels(&device));
    let report = bench_train(&config, &options, &device)?;
    let memory =
        report.peak_memory_bytes.map_or("unknown".to_string(), |b| format!("{:.0} MiB", b as f64 / (1 << 20) as f64));
    println!(
        "{} batch {} {} on {}: {:.1} images/s, {:.1} ms/step, peak memory {} ({} timed steps after {} warm-up)",
        config.name(),
        args.batch_size,
        args.precision,
        args.device,
        report.images_per_second,
        report.ms_per_step,
        memory,
        args.steps,
        args.warmup
    );
    if let (Some(first), Some(last)) = (report.losses.first(), report.losses.last()) {
        println!("loss {first:.4} at step 1, {last:.4} at step {}", report.losses.len());
    }
    if args.print_losses {
        for (step, loss) in report.losses.iter().enumerate() {
            println!("step {} loss {loss:.6}", step + 1);
        }
    }
    Ok(())
}
