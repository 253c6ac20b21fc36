use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use widesweep_coordinator::plan::PlanReport;
use widesweep_coordinator::spec::Spec;

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
}

/// Reads and validates a spec file; errors name the file.
pub fn read_spec(path: &PathBuf) -> anyhow::Result<(String, Spec)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading spec {}", path.display()))?;
    let spec = Spec::parse(&text).with_context(|| format!("invalid spec {}", path.display()))?;
    Ok((text, spec))
}

pub fn run(args: PlanArgs) -> anyhow::Result<ExitCode> {
    let (_, spec) = read_spec(&args.spec)?;
    let report =
        PlanReport::new(&spec, args.allow_large).with_context(|| format!("invalid spec {}", args.spec.display()))?;
    match args.format {
        PlanFormat::Text => print!("{}", report.to_text()),
        PlanFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(ExitCode::SUCCESS)
}
