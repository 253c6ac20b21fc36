use std::fmt;
use std::str::FromStr;

/// A dataset the WRN family is trained on. Greyscale datasets enter the
/// network with one input channel, zero-padded from 28x28 to 32x32.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Dataset {
    Cifar10,
    Cifar100,
    FashionMnist,
    Mnist,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown dataset {0:?}: use one of cifar10, cifar100, fashion-mnist, mnist")]
pub struct ParseDatasetError(pub String);

impl Dataset {
    pub const ALL: [Dataset; 4] = [Dataset::Cifar10, Dataset::Cifar100, Dataset::FashionMnist, Dataset::Mnist];

    /// The name used in specs, the CLI and the database.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Cifar10 => "cifar10",
            Dataset::Cifar100 => "cifar100",
            Dataset::FashionMnist => "fashion-mnist",
            Dataset::Mnist => "mnist",
        }
    }

    pub fn in_channels(self) -> usize {
        match self {
            Dataset::Cifar10 | Dataset::Cifar100 => 3,
            Dataset::FashionMnist | Dataset::Mnist => 1,
        }
    }

    pub fn num_classes(self) -> usize {
        match self {
            Dataset::Cifar100 => 100,
            _ => 10,
        }
    }

    /// Side of the images as stored in the dataset's files.
    pub fn stored_image_size(self) -> usize {
        match self {
            Dataset::Cifar10 | Dataset::Cifar100 => 32,
            Dataset::FashionMnist | Dataset::Mnist => 28,
        }
    }

    pub fn train_size(self) -> usize {
        match self {
            Dataset::Cifar10 | Dataset::Cifar100 => 50_000,
            Dataset::FashionMnist | Dataset::Mnist => 60_000,
        }
    }

    pub fn test_size(self) -> usize {
        10_000
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dataset {
    type Err = ParseDatasetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dataset::ALL.into_iter().find(|d| d.name() == s).ok_or_else(|| ParseDatasetError(s.to_string()))
    }
}

crate::serde_as_text!(Dataset);
