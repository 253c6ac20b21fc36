//! `widesweep bench self-check`: the check each worker slot runs before it
//! trains (see `widesweep_worker::selfcheck`), on demand, for every device
//! and precision, with the agreement of every kernel path it tried.

use std::process::ExitCode;

use clap::Args;
use widesweep_arch::Precision;
use widesweep_worker::selfcheck::{self, SelfCheckMode};

use crate::commands::work::DeviceList;

#[derive(Args, Debug)]
pub struct SelfCheckArgs {
    /// Devices to check: cpu, cuda:0,cuda:1, or all.
    #[arg(long, default_value = "all")]
    pub devices: DeviceList,
}

/// Exit status 1 when a device has a precision that no kernel path computes
/// right: a worker there would not train it.
pub fn run(args: &SelfCheckArgs) -> anyhow::Result<ExitCode> {
    let mut all_usable = true;
    for spec in &args.devices.0 {
        let device = spec.open()?;
        for precision in [Precision::F32, Precision::Bf16] {
            match selfcheck::choose(&device, precision, SelfCheckMode::On) {
                Ok((options, reports)) => {
                    for report in &reports {
                        println!("{spec} {precision}: {}: {report}", report.options.kernels(&device));
                    }
                    println!("{spec} {precision}: trains on {}", options.kernels(&device));
                }
                Err(error) => {
                    all_usable = false;
                    println!("{spec} {precision}: {error}");
                }
            }
        }
    }
    Ok(if all_usable { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
