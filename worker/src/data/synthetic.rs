//! Small learnable datasets in the official file formats, for tests and
//! for trying the whole loop without downloading anything: each class
//! brightens its own horizontal band of the image, on a noisy background.

use std::io::Write;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use widesweep_arch::Dataset;

use super::{DataError, IDX_FILES, files, folder, idx};

/// One image of class `label`, `channels * side * side` bytes.
pub fn class_image(rng: &mut ChaCha8Rng, label: u8, classes: u8, channels: usize, side: usize) -> Vec<u8> {
    let mut img = vec![0u8; channels * side * side];
    let band = (side / classes as usize).max(1);
    for c in 0..channels {
        for y in 0..side {
            for x in 0..side {
                let lit = (y / band) == label as usize % (side / band);
                let base: u8 = if lit { 200 } else { 40 };
                img[c * side * side + y * side + x] = base.saturating_add(rng.random_range(0..40));
            }
        }
    }
    img
}

/// `n` 28x28 greyscale images of the ten classes in turn, and their labels.
pub fn idx_images(n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(n * 784);
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    for &l in &labels {
        images.extend(class_image(&mut rng, l, 10, 1, 28));
    }
    (images, labels)
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("writing to memory cannot fail");
    encoder.finish().expect("writing to memory cannot fail")
}

/// Writes the four gzipped IDX files of an MNIST-like dataset into
/// `folder` (e.g. `<data-dir>/mnist`), with `train` and `test` images.
pub fn write_idx_dataset(folder: &Path, train: usize, test: usize) -> Result<(), DataError> {
    let io = |path: &Path, source| DataError::Io { path: path.to_path_buf(), source };
    std::fs::create_dir_all(folder).map_err(|e| io(folder, e))?;
    for (names, n, seed) in [(&IDX_FILES[..2], train, 1), (&IDX_FILES[2..], test, 2)] {
        let (images, labels) = idx_images(n, seed);
        let (img, lab) = idx::encode(&images, &labels);
        for (name, bytes) in names.iter().zip([img, lab]) {
            let path = folder.join(name);
            std::fs::write(&path, gzip(&bytes)).map_err(|e| io(&path, e))?;
        }
    }
    Ok(())
}

/// Writes a synthetic `dataset` with `train` and `test` images into its
/// folder under `data_dir`, in the official file format (IDX for the
/// MNISTs; CIFAR's binary records, the training set over the five batch
/// files of CIFAR-10): what a machine without the network (a GPU node, a
/// test) trains on to measure speed. Returns the folder.
pub fn write_dataset(
    dataset: Dataset,
    data_dir: &Path,
    train: usize,
    test: usize,
) -> Result<std::path::PathBuf, DataError> {
    let dir = data_dir.join(folder(dataset));
    match dataset {
        Dataset::Mnist | Dataset::FashionMnist => write_idx_dataset(&dir, train, test)?,
        Dataset::Cifar10 | Dataset::Cifar100 => {
            let io = |path: &Path, source| DataError::Io { path: path.to_path_buf(), source };
            std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
            let names = files(dataset);
            let (train_files, test_file) = names.split_at(names.len() - 1);
            let parts = train_files.len();
            for (i, name) in train_files.iter().enumerate() {
                let range = (i * train / parts)..((i + 1) * train / parts);
                let path = dir.join(name);
                std::fs::write(&path, cifar_records(dataset, range, 1)).map_err(|e| io(&path, e))?;
            }
            let path = dir.join(test_file[0]);
            std::fs::write(&path, cifar_records(dataset, 0..test, 2)).map_err(|e| io(&path, e))?;
        }
    }
    Ok(dir)
}

/// CIFAR records for images `range` of a split: a label byte (CIFAR-100:
/// the coarse label, then the fine one) and 3x32x32 pixels, each image
/// drawn from its own index so that a split's files do not depend on how
/// it is divided.
fn cifar_records(dataset: Dataset, range: std::ops::Range<usize>, split_seed: u64) -> Vec<u8> {
    let classes: u8 = if dataset == Dataset::Cifar100 { 100 } else { 10 };
    let mut out = Vec::new();
    for index in range {
        let mut rng = ChaCha8Rng::seed_from_u64(split_seed << 32 | index as u64);
        let label = (index % classes as usize) as u8;
        if dataset == Dataset::Cifar100 {
            out.push(label / 5);
        }
        out.push(label);
        out.extend(class_image(&mut rng, label, classes, 3, 32));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{LoadOptions, load};

    #[test]
    fn synthetic_datasets_load_like_real_ones() {
        let dir = tempfile::tempdir().unwrap();
        for dataset in [Dataset::Cifar10, Dataset::Cifar100, Dataset::Mnist] {
            write_dataset(dataset, dir.path(), 23, 7).unwrap();
            let splits = load(dataset, dir.path(), LoadOptions { official_sizes: false }).unwrap();
            assert_eq!((splits.train.len(), splits.test.len()), (23, 7), "{dataset}");
            let channels = if dataset == Dataset::Mnist { 1 } else { 3 };
            assert_eq!(splits.train.channels, channels, "{dataset}");
            let error = load(dataset, dir.path(), LoadOptions { official_sizes: true }).err();
            assert!(error.is_some(), "{dataset}: the official sizes refuse a synthetic set");
        }
    }
}
