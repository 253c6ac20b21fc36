//! `widesweep data fetch` and `data synthetic`: datasets into the data
//! directory, verified.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use widesweep_arch::Dataset;
use widesweep_worker::data::fetch::{FetchOptions, fetch};
use widesweep_worker::data::{self};

/// `widesweep data ...`
#[derive(Subcommand, Debug, Clone)]
pub enum DataCommand {
    /// Download a dataset (or import a local copy) into the data directory and verify it.
    Fetch(FetchArgs),
    /// Write a synthetic dataset in the official format (each class a bright
    /// band on noise), for machines without the network: speed benchmarks,
    /// trying the loop. Train on it with --unofficial-dataset-sizes.
    Synthetic(SyntheticArgs),
}

#[derive(Args, Debug, Clone)]
pub struct SyntheticArgs {
    /// cifar10, cifar100, fashion-mnist or mnist.
    pub dataset: Dataset,
    #[arg(long, env = "WIDESWEEP_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Training images (CIFAR-10 spreads them over its five batch files).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(10..=1_000_000))]
    pub train: u64,
    /// Test images.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub test: u64,
}

#[derive(Args, Debug, Clone)]
pub struct FetchArgs {
    /// cifar10, cifar100, fashion-mnist or mnist.
    pub dataset: Dataset,
    #[arg(long, env = "WIDESWEEP_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Import this archive (.tar.gz), IDX .gz file or directory instead of downloading.
    #[arg(long)]
    pub from: Option<PathBuf>,
    /// Accept files that differ from the official ones (checksums, record
    /// counts); they must still be well formed.
    #[arg(long)]
    pub allow_unofficial: bool,
}

pub fn run_data(command: &DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Synthetic(args) => {
            let (train, test) = (args.train as usize, args.test as usize);
            let dir = data::synthetic::write_dataset(args.dataset, &args.data_dir, train, test)
                .with_context(|| format!("writing a synthetic {}", args.dataset))?;
            println!(
                "{}: {train} training and {test} synthetic test images in {} (train with --unofficial-dataset-sizes)",
                args.dataset,
                dir.display()
            );
            Ok(())
        }
        DataCommand::Fetch(args) => {
            let options =
                FetchOptions { from: args.from.clone(), allow_unofficial: args.allow_unofficial, progress: true };
            let report =
                fetch(args.dataset, &args.data_dir, &options).with_context(|| format!("fetching {}", args.dataset))?;
            println!(
                "{}: {} training and {} test images verified in {} (from {})",
                args.dataset,
                report.train_images,
                report.test_images,
                report.dir.display(),
                report.source
            );
            Ok(())
        }
    }
}
