//! Synthetic datasets in the real binary formats, written by the tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A learnable image of class `label`: each class brightens its own
/// horizontal band of the image, on a noisy background.
pub fn class_image(rng: &mut ChaCha8Rng, label: u8, classes: u8, channels: usize, side: usize) -> Vec<u8> {
    let mut img = vec![0u8; channels * side * side];
    let band = side / classes as usize;
    for c in 0..channels {
        for y in 0..side {
            for x in 0..side {
                let lit = (y / band.max(1)) == label as usize % (side / band.max(1));
                let base: u8 = if lit { 200 } else { 40 };
                img[c * side * side + y * side + x] = base.saturating_add(rng.random_range(0..40));
            }
        }
    }
    img
}

/// CIFAR-10 records: label byte then 3072 pixel bytes.
pub fn cifar10_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * 3073);
    for i in 0..n {
        let label = (i % 10) as u8;
        out.push(label);
        out.extend(class_image(&mut rng, label, 10, 3, 32));
    }
    out
}

/// CIFAR-100 records: coarse label, fine label, 3072 pixel bytes.
pub fn cifar100_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * 3074);
    for i in 0..n {
        let fine = (i % 100) as u8;
        out.push(fine / 5);
        out.push(fine);
        out.extend(class_image(&mut rng, fine % 10, 10, 3, 32));
    }
    out
}

/// Writes a CIFAR-10 folder (`cifar-10-batches-bin`) under `dir` with
/// `per_file` training records in each of the five batches and `test` test records.
pub fn write_cifar10(dir: &Path, per_file: usize, test: usize) {
    let folder = dir.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&folder).unwrap();
    for b in 1..=5 {
        std::fs::write(folder.join(format!("data_batch_{b}.bin")), cifar10_bytes(per_file, b)).unwrap();
    }
    std::fs::write(folder.join("test_batch.bin"), cifar10_bytes(test, 99)).unwrap();
    std::fs::write(folder.join("batches.meta.txt"), "airplane\n").unwrap();
}

/// 28x28 greyscale images and labels.
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
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Writes the four gzipped IDX files of an MNIST-like dataset into `folder`.
pub fn write_idx_dataset(folder: &Path, train: usize, test: usize) {
    std::fs::create_dir_all(folder).unwrap();
    for (prefix, n, seed) in [("train", train, 1), ("t10k", test, 2)] {
        let (images, labels) = idx_images(n, seed);
        let (img, lab) = widesweep_worker::data::idx::encode(&images, &labels);
        std::fs::write(folder.join(format!("{prefix}-images-idx3-ubyte.gz")), gzip(&img)).unwrap();
        std::fs::write(folder.join(format!("{prefix}-labels-idx1-ubyte.gz")), gzip(&lab)).unwrap();
    }
}
