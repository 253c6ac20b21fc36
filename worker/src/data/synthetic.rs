//! Small learnable datasets in the official file formats, for tests and
//! for trying the whole loop without downloading anything: each class
//! brightens its own horizontal band of the image, on a noisy background.

use std::io::Write;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{DataError, IDX_FILES, idx};

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
