//! Synthetic datasets in the real binary formats, written by the tests.
#![allow(dead_code, unused_imports)]

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use widesweep_worker::data::synthetic::{class_image, gzip, idx_images};

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

/// Writes the four gzipped IDX files of an MNIST-like dataset into `folder`.
pub fn write_idx_dataset(folder: &Path, train: usize, test: usize) {
    widesweep_worker::data::synthetic::write_idx_dataset(folder, train, test).unwrap();
}
