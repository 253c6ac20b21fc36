//! `widesweep train`: one cell trained directly, every epoch printed; and
//! the network and recipe flags that `model` and `bench train` share.

use std::io::Write;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use clap::Args;
use widesweep_arch::{BlockPattern, Dataset, Precision, WrnConfig};
use widesweep_coordinator::plan::group_thousands;
use widesweep_worker::data::{self, LoadOptions};
use widesweep_worker::device::DeviceSpec;
use widesweep_worker::train::{EpochMetrics, Recipe, RunSpec, TrainError, Trainer};

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
            m.images_per_second,
            m.epoch_seconds
        );
        let _ = std::io::stdout().flush();
        if let Some(path) = &args.checkpoint {
            let recipe = &t.spec().recipe;
            let last = m.epoch == recipe.epochs;
            if last || m.epoch.is_multiple_of(recipe.checkpoint_every.max(1)) {
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
