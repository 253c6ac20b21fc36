//! The training engine's subcommands: `train`, `model`, `data fetch` and
//! `bench train`. They parse what the user typed (validated by clap), turn
//! it into the worker's types, and print; the work is in `widesweep-worker`.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use widesweep_arch::{BlockPattern, Dataset, Precision, WrnConfig, widen};
use widesweep_coordinator::plan::group_thousands;
use widesweep_worker::candle;
use widesweep_worker::data::fetch::{FetchOptions, fetch};
use widesweep_worker::data::{self, LoadOptions};
use widesweep_worker::device::DeviceSpec;
use widesweep_worker::train::bench::{BenchOptions, bench_train};
use widesweep_worker::train::{EpochMetrics, Recipe, RunSpec, TrainError, Trainer};
use widesweep_worker::wrn::Wrn;
use widesweep_worker::wrn::layers::Layout;

/// One network, with the same fields as a cell of a sweep spec.
#[derive(Args, Debug, Clone)]
pub struct CellArgs {
    /// Block pattern, e.g. B(3,3), B(1,3,1), B(3,1,3).
    #[arg(long, conflicts_with = "l")]
    pub block: Option<BlockPattern>,
    /// Deepening factor: blocks of l 3x3 convolutions (l = 2 is B(3,3)).
    #[arg(long)]
    pub l: Option<usize>,
    /// Total depth (3 * N * l + 4); must divide exactly into blocks.
    #[arg(long, conflicts_with = "blocks_per_group", required_unless_present = "blocks_per_group")]
    pub depth: Option<usize>,
    /// Blocks per group N, given directly (e.g. for the block-type study's nominal depth).
    #[arg(long)]
    pub blocks_per_group: Option<usize>,
    /// Width factor k: groups have 16k, 32k and 64k channels.
    #[arg(long, short = 'k')]
    pub width: usize,
    /// Dropout between the convolutions of a block.
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    /// cifar10, cifar100, fashion-mnist or mnist.
    #[arg(long, default_value = "cifar10")]
    pub dataset: Dataset,
}

impl CellArgs {
    pub fn config(&self) -> anyhow::Result<WrnConfig> {
        let block = match (&self.block, self.l) {
            (Some(block), _) => block.clone(),
            (None, Some(l)) => BlockPattern::deepened(l)?,
            (None, None) => BlockPattern::basic(),
        };
        let n = match (self.depth, self.blocks_per_group) {
            (_, Some(n)) => n,
            (Some(depth), None) => WrnConfig::blocks_for_depth(depth, &block)?,
            (None, None) => bail!("give --depth or --blocks-per-group"),
        };
        let d = self.dataset;
        Ok(WrnConfig::new(block, n, self.width, self.dropout, d.in_channels(), d.num_classes())?)
    }
}

/// The training recipe; defaults are the paper's CIFAR recipe.
#[derive(Args, Debug, Clone)]
pub struct RecipeArgs {
    #[arg(long, default_value_t = 200)]
    pub epochs: u32,
    #[arg(long, default_value_t = 128)]
    pub batch_size: u32,
    #[arg(long, default_value_t = 0.1)]
    pub lr: f64,
    /// Epochs at which the learning rate is multiplied by --lr-gamma
    /// [default: the paper's 60,120,160 of 200, scaled to --epochs: 30, 60
    /// and 80 % of them]
    #[arg(long, value_delimiter = ',')]
    pub lr_milestones: Option<Vec<u32>>,
    #[arg(long, default_value_t = 0.2)]
    pub lr_gamma: f64,
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    /// Plain momentum instead of Nesterov's.
    #[arg(long)]
    pub no_nesterov: bool,
    #[arg(long, default_value_t = 5e-4)]
    pub weight_decay: f64,
    /// Keep the momentum buffers across learning-rate drops (the official
    /// code resets them).
    #[arg(long)]
    pub keep_momentum_on_drop: bool,
    /// No random crops and flips.
    #[arg(long)]
    pub no_augment: bool,
    /// f32, or bf16 mixed precision (bf16 convolutions and activations, f32
    /// master weights; meant for CUDA).
    #[arg(long, default_value = "f32")]
    pub precision: Precision,
    /// Precise batch norm: re-estimate the running statistics on this many
    /// un-augmented training batches before each evaluation; 0 = off
    /// [default: 50 for recipes of at most 10 epochs, else 0]
    #[arg(long)]
    pub bn_recalibration_batches: Option<u32>,
}

/// `widesweep train`: train one cell directly, printing every epoch.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub cell: CellArgs,
    #[command(flatten)]
    pub recipe: RecipeArgs,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Where `widesweep data fetch` put the datasets.
    #[arg(long, env = "WIDESWEEP_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Train on this many training images only (the same ones for every seed).
    #[arg(long)]
    pub train_subset: Option<u32>,
    /// Evaluate on this many test images only (the first ones).
    #[arg(long)]
    pub test_subset: Option<u32>,
    /// Save the whole training state here after every --checkpoint-every epochs.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    #[arg(long, default_value_t = 1, requires = "checkpoint")]
    pub checkpoint_every: u32,
    /// Continue from --checkpoint when the file exists.
    #[arg(long, requires = "checkpoint")]
    pub resume: bool,
    /// Accept datasets whose record counts differ from the official ones.
    #[arg(long)]
    pub allow_unofficial: bool,
}

impl TrainArgs {
    /// The run's recipe, subsets and checkpoint period included, validated
    /// for its dataset as a leased job's is (the same type and rules as a
    /// sweep spec's, from widesweep-arch).
    pub fn recipe(&self) -> anyhow::Result<Recipe> {
        let r = &self.recipe;
        let recipe = Recipe {
            epochs: r.epochs,
            batch_size: r.batch_size,
            lr: r.lr,
            lr_milestones: r.lr_milestones.clone().unwrap_or_else(|| Recipe::scaled_milestones(r.epochs)),
            lr_gamma: r.lr_gamma,
            momentum: r.momentum,
            nesterov: !r.no_nesterov,
            weight_decay: r.weight_decay,
            reset_momentum_on_drop: !r.keep_momentum_on_drop,
            train_subset: self.train_subset.unwrap_or(0),
            test_subset: self.test_subset.unwrap_or(0),
            augment: !r.no_augment,
            checkpoint_every: self.checkpoint_every,
            precision: r.precision,
            bn_recalibration_batches: r
                .bn_recalibration_batches
                .unwrap_or_else(|| Recipe::default_bn_recalibration_batches(r.epochs)),
        };
        recipe.validate_for(self.cell.dataset)?;
        Ok(recipe)
    }
}

/// `widesweep model`: the size and cost of one network.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    #[command(flatten)]
    pub cell: CellArgs,
}

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

pub fn run_train(args: &TrainArgs) -> anyhow::Result<()> {
    let config = args.cell.config()?;
    let recipe = args.recipe()?;
    let dataset = args.cell.dataset;
    let device = args.device.open()?;
    let options = LoadOptions { official_sizes: !args.allow_unofficial };
    let splits = data::load(dataset, &args.data_dir, options)?;
    let spec = RunSpec { config: config.clone(), dataset, recipe, seed: args.seed };
    let splits = Arc::new(splits);
    let mut trainer = match &args.checkpoint {
        Some(path) if args.resume && path.exists() => {
            let t = Trainer::resume(spec, splits.clone(), &device, path)?;
            println!("resumed {} after epoch {}", path.display(), t.epochs_done());
            t
        }
        _ => Trainer::new(spec, splits.clone(), &device)?,
    };
    println!(
        "{} on {dataset} ({} train / {} test images), {} parameters, seed {}, {}",
        config.name(),
        trainer.train_images(),
        splits.test.len(),
        group_thousands(trainer.model().param_count()),
        args.seed,
        args.device
    );
    println!(
        "{:>5} {:>8} {:>10} {:>9} {:>9} {:>9} {:>8}",
        "epoch", "lr", "train loss", "train err", "test err", "img/s", "seconds"
    );
    let mut observer = |m: &EpochMetrics, t: &Trainer| -> Result<ControlFlow<()>, TrainError> {
        println!(
            "{:>5} {:>8.5} {:>10.4} {:>8.2}% {:>8.2}% {:>9.1} {:>8.1}",
            m.epoch,
            m.lr,
            m.train_loss,
            100.0 * m.train_error,
            100.0 * m.test_error,
            m.images_per_sec,
            m.seconds
        );
        let _ = std::io::stdout().flush();
        if let Some(path) = &args.checkpoint {
            let recipe = &t.spec().recipe;
            let last = m.epoch == widen(recipe.epochs);
            if last || m.epoch.is_multiple_of(widen(recipe.checkpoint_every).max(1)) {
                t.save_checkpoint(path)?;
            }
        }
        Ok(ControlFlow::Continue(()))
    };
    trainer.run(&mut observer)?;
    if let Some(m) = trainer.history().last() {
        println!("final test error {:.2}% after {} epochs", 100.0 * m.test_error, m.epoch);
    }
    Ok(())
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
        report.images_per_sec,
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
