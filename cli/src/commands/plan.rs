use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use widesweep_coordinator::plan::PlanReport;
use widesweep_coordinator::store::{self, DEFAULT_DB_URL, DeviceRate};

use super::common::read_spec;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Sweep spec (TOML).
    pub spec: PathBuf,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    pub format: PlanFormat,
    /// Accept a spec that expands to more than 100,000 jobs.
    #[arg(long)]
    pub allow_large: bool,
    /// Give device-hours per cell and in all for this device, at the rate
    /// learnt from the epochs it has reported (a worker's device name, e.g.
    /// `cpu` or `NVIDIA H100 80GB HBM3`; a unique part of it is enough).
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,
    /// The database the device's epochs are read from, read-only.
    #[arg(long, value_name = "URL", default_value = DEFAULT_DB_URL, requires = "device")]
    pub db: String,
}

pub async fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let (_, spec) = read_spec(&args.spec)?;
    let device = match &args.device {
        Some(name) => {
            let store =
                store::open_read_only(&args.db).await.with_context(|| format!("opening {} read-only", args.db))?;
            Some(pick_device(name, store.device_rates().await?, &args.db)?)
        }
        None => None,
    };
    let report = PlanReport::new(&spec, args.allow_large, device.as_ref())
        .with_context(|| format!("invalid spec {}", args.spec.display()))?;
    match args.format {
        PlanFormat::Text => print!("{}", report.to_text()),
        PlanFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// The measured device called `name`: its exact name, or else the one
/// device whose name contains it (ignoring case).
fn pick_device(name: &str, rates: Vec<DeviceRate>, db: &str) -> anyhow::Result<DeviceRate> {
    let known = || {
        if rates.is_empty() {
            "none yet: a device's rate is learnt from the epochs its workers report".to_string()
        } else {
            rates.iter().map(|r| format!("{:?} ({} epochs)", r.device, r.epochs)).collect::<Vec<_>>().join(", ")
        }
    };
    if let Some(exact) = rates.iter().find(|r| r.device == name) {
        return Ok(exact.clone());
    }
    let needle = name.to_lowercase();
    let matches: Vec<&DeviceRate> = rates.iter().filter(|r| r.device.to_lowercase().contains(&needle)).collect();
    match matches[..] {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!(
            "--device {name:?}: no epochs reported on such a device in {db}; measured devices: {}",
            known()
        ),
        _ => anyhow::bail!("--device {name:?} names several devices in {db}: {}; give more of the name", known()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(device: &str) -> DeviceRate {
        DeviceRate { device: device.to_string(), epochs: 3, work: 1.0, seconds: 1.0 }
    }

    #[test]
    fn a_device_is_named_exactly_or_by_a_unique_part() {
        let rates = vec![rate("cpu"), rate("NVIDIA H100 80GB HBM3"), rate("NVIDIA H200")];
        assert_eq!(pick_device("cpu", rates.clone(), "db").unwrap().device, "cpu");
        assert_eq!(pick_device("h100", rates.clone(), "db").unwrap().device, "NVIDIA H100 80GB HBM3");
        let several = pick_device("nvidia", rates.clone(), "db").unwrap_err().to_string();
        assert!(several.contains("several devices"), "{several}");
        let none = pick_device("a100", rates, "db").unwrap_err().to_string();
        assert!(none.contains("\"cpu\" (3 epochs)"), "{none}");
    }
}
