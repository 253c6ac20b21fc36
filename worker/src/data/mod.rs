//! Datasets: readers for the official binary formats, the on-disk layout
//! under `--data-dir`, normalisation and augmentation.
//!
//! Preprocessing follows the paper's CIFAR recipe (Zagoruyko & Komodakis,
//! BMVC 2016, section 4): per-channel mean/std normalisation, random 32x32
//! crops of the image reflect-padded by 4 pixels, horizontal flips with
//! p = 0.5. Greyscale datasets (MNIST, Fashion-MNIST) enter the network with
//! one channel, zero-padded from 28x28 to 32x32.
//!
//! - [`cifar`], [`idx`]: the readers; each verifies sizes, counts and labels.
//! - [`batch`]: turning images into normalised, augmented batches.
//! - [`prefetch`]: building them on a helper thread ahead of the training step.
//! - [`fetch`]: download or import into the data directory, with checksums.
//! - [`synthetic`]: small learnable datasets in the official formats, for tests.

pub mod batch;
pub mod cifar;
mod error;
pub mod fetch;
pub mod idx;
pub mod prefetch;
pub mod synthetic;

use std::path::{Path, PathBuf};

pub use error::DataError;
use widesweep_arch::{Dataset, IMAGE_SIZE};

/// Images as stored bytes, `[n, channels, 32, 32]` row-major, and one label per image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSet {
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
    pub channels: usize,
}

impl ImageSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_len(&self) -> usize {
        self.channels * IMAGE_SIZE * IMAGE_SIZE
    }

    pub fn image(&self, idx: usize) -> &[u8] {
        let len = self.image_len();
        &self.images[idx * len..(idx + 1) * len]
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> ImageSet {
        let mut images = Vec::with_capacity(indices.len() * self.image_len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        ImageSet { images, labels: indices.iter().map(|&i| self.labels[i]).collect(), channels: self.channels }
    }

    fn concat(parts: Vec<ImageSet>) -> ImageSet {
        let channels = parts.first().map_or(3, |p| p.channels);
        let mut out = ImageSet { images: Vec::new(), labels: Vec::new(), channels };
        for part in parts {
            out.images.extend(part.images);
            out.labels.extend(part.labels);
        }
        out
    }
}

/// The training and test splits of one dataset, read once per process.
#[derive(Clone, Debug)]
pub struct Splits {
    pub dataset: Dataset,
    pub train: ImageSet,
    pub test: ImageSet,
}

/// Per-channel mean and standard deviation on the 0-255 scale.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalisation {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Normalisation {
    /// The official statistics: CIFAR's (the official code uses the same
    /// for CIFAR-10 and CIFAR-100); the published training-set statistics of
    /// Fashion-MNIST (0.2860, 0.3530) and MNIST (0.1307, 0.3081).
    pub fn of(dataset: Dataset) -> Self {
        let scaled = |m: f32, s: f32| Self { mean: vec![m * 255.0], std: vec![s * 255.0] };
        match dataset {
            Dataset::Cifar10 | Dataset::Cifar100 => {
                Self { mean: vec![125.3, 123.0, 113.9], std: vec![63.0, 62.1, 66.7] }
            }
            Dataset::FashionMnist => scaled(0.2860, 0.3530),
            Dataset::Mnist => scaled(0.1307, 0.3081),
        }
    }
}

/// How strictly to check the files.
#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Require the official record counts (50,000 / 60,000 and 10,000).
    /// Off only for the small synthetic datasets of tests.
    pub official_sizes: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self { official_sizes: true }
    }
}

/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const DEBIAN_FASHION_MNIST: &str = "/usr/share/datasets/fashion-mnist";

/// The folder of `dataset` inside a data directory, named as in the
/// official archives.
pub fn folder(dataset: Dataset) -> &'static str {
    match dataset {
        Dataset::Cifar10 => "cifar-10-batches-bin",
        Dataset::Cifar100 => "cifar-100-binary",
        Dataset::FashionMnist => "fashion-mnist",
        Dataset::Mnist => "mnist",
    }
}

/// The files of one dataset, relative to its folder.
pub fn files(dataset: Dataset) -> &'static [&'static str] {
    match dataset {
        Dataset::Cifar10 => &[
            "data_batch_1.bin",
            "data_batch_2.bin",
            "data_batch_3.bin",
            "data_batch_4.bin",
            "data_batch_5.bin",
            "test_batch.bin",
        ],
        Dataset::Cifar100 => &["train.bin", "test.bin"],
        Dataset::FashionMnist | Dataset::Mnist => &IDX_FILES,
    }
}

pub(crate) const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// The folder holding `dataset`: `data_dir/<folder>`, or for Fashion-MNIST
/// Debian's copy when the data directory has none.
pub fn locate(dataset: Dataset, data_dir: &Path) -> Result<PathBuf, DataError> {
    let dir = data_dir.join(folder(dataset));
    let first = files(dataset)[0];
    if dir.join(first).exists() {
        return Ok(dir);
    }
    if dataset == Dataset::FashionMnist && Path::new(DEBIAN_FASHION_MNIST).join(first).exists() {
        tracing::info!(dir = DEBIAN_FASHION_MNIST, "using Debian's Fashion-MNIST files");
        return Ok(DEBIAN_FASHION_MNIST.into());
    }
    Err(DataError::Missing {
        path: dir.join(first),
        hint: format!("run `widesweep data fetch {dataset} --data-dir {}`", data_dir.display()),
    })
}

/// Reads and verifies both splits of `dataset` from `data_dir`.
pub fn load(dataset: Dataset, data_dir: &Path, options: LoadOptions) -> Result<Splits, DataError> {
    let dir = locate(dataset, data_dir)?;
    load_from(dataset, &dir, options)
}

/// Reads and verifies both splits from the dataset's own folder.
pub fn load_from(dataset: Dataset, dir: &Path, options: LoadOptions) -> Result<Splits, DataError> {
    let strict = options.official_sizes;
    let (train, test) = match dataset {
        Dataset::Cifar10 => {
            let per_file = strict.then_some(cifar::CIFAR10_RECORDS_PER_FILE);
            let names = files(dataset);
            let train = names[..5]
                .iter()
                .map(|f| cifar::read(&dir.join(f), cifar::CIFAR10, per_file))
                .collect::<Result<Vec<_>, _>>()?;
            (ImageSet::concat(train), cifar::read(&dir.join(names[5]), cifar::CIFAR10, per_file)?)
        }
        Dataset::Cifar100 => (
            cifar::read(&dir.join("train.bin"), cifar::CIFAR100, strict.then_some(dataset.train_size()))?,
            cifar::read(&dir.join("test.bin"), cifar::CIFAR100, strict.then_some(dataset.test_size()))?,
        ),
        Dataset::FashionMnist | Dataset::Mnist => (
            idx::read_split(&dir.join(IDX_FILES[0]), &dir.join(IDX_FILES[1]), strict.then_some(dataset.train_size()))?,
            idx::read_split(&dir.join(IDX_FILES[2]), &dir.join(IDX_FILES[3]), strict.then_some(dataset.test_size()))?,
        ),
    };
    tracing::debug!(%dataset, train = train.len(), test = test.len(), "dataset loaded");
    Ok(Splits { dataset, train, test })
}
