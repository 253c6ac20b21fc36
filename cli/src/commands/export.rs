//! `widesweep export`: every job (or every epoch) of sweeps for pandas and
//! spreadsheets.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use widesweep_coordinator::report::export::{ExportFormat, export};

use super::results::{SourceArgs, fetch};

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Sweep names or ids.
    #[arg(required = true)]
    pub sweeps: Vec<String>,
    /// csv (a header, then one line per record) or jsonl (one JSON object per line).
    #[arg(long, default_value = "csv")]
    pub format: ExportFormat,
    /// One record per job and recorded epoch (learning curves) instead of one per job.
    #[arg(long)]
    pub epochs: bool,
    /// Write to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub source: SourceArgs,
}

pub async fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let (rows, epochs) = fetch(&args.source, &args.sweeps, args.epochs).await?;
    let epochs = args.epochs.then_some(epochs.as_slice());
    match &args.out {
        Some(path) => {
            let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
            let mut out = std::io::BufWriter::new(file);
            let written = export(&rows, epochs, args.format, &mut out)?;
            out.flush().with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {written} records to {}", path.display());
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            match export(&rows, epochs, args.format, &mut out) {
                Err(error) if error.is_broken_pipe() => {}
                other => {
                    other?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
