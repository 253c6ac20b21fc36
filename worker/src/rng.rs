//! Seeded random streams.
//!
//! candle's CPU random generator cannot be seeded, so every random number the
//! engine uses comes from ChaCha8 streams keyed by where they are used: the
//! run's seed, the epoch, the step and a purpose tag. A stream is a pure
//! function of its key, so the "RNG state" of a run is nothing more than the
//! position it has reached (seed, epoch); a resumed run re-derives exactly the
//! streams an uninterrupted run would have drawn.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// The scheme every random number of a run follows, recorded with each
/// result: results under different schemes are not comparable seed for
/// seed. Change the version whenever a draw changes (a new stream purpose,
/// another mask function, another initialisation).
pub const SCHEME: &str = "widesweep-rng 2 (ChaCha8 streams keyed by seed, epoch, step and purpose; \
                          counter-hash dropout masks)";

/// What a stream is used for; part of the key so that streams never overlap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Initial weights of one named tensor (`step` holds a hash of the name).
    Init = 1,
    /// The order of the training set in one epoch.
    DataOrder = 2,
    /// Crops and flips of one training batch.
    Augment = 3,
    /// Dropout masks of one training step.
    Dropout = 4,
    /// The subset of the training set used by `--train-subset`.
    Subset = 5,
    /// The batches batch norm's statistics are re-estimated on after an epoch.
    BnRecalibration = 6,
}

/// The stream for `(seed, epoch, step, purpose)`.
pub fn stream(seed: u64, epoch: u64, step: u64, purpose: Purpose) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[0..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&epoch.to_le_bytes());
    key[16..24].copy_from_slice(&step.to_le_bytes());
    key[24..32].copy_from_slice(&(purpose as u64).to_le_bytes());
    ChaCha8Rng::from_seed(key)
}

/// A stable 64-bit hash of a tensor name (stable across platforms and
/// releases, unlike `std::hash`).
pub fn name_hash(name: &str) -> u64 {
    let digest = Sha256::digest(name.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("sha256 has 32 bytes"))
}

/// The stream that initialises the tensor `name` of a model seeded with `seed`;
/// independent of the order in which tensors are created.
pub fn init_stream(seed: u64, name: &str) -> ChaCha8Rng {
    stream(seed, 0, name_hash(name), Purpose::Init)
}

/// One standard normal sample (Box-Muller; uses two uniforms per sample so
/// the stream position never depends on cached state).
pub fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    // 1 - u maps [0, 1) to (0, 1], keeping ln finite.
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The drop threshold of dropout with probability `p`: an element is
/// dropped when its 32-bit draw falls below `p * 2^32`.
pub fn dropout_threshold(p: f64) -> u64 {
    (p.clamp(0.0, 1.0) * 4_294_967_296.0) as u64
}

/// Whether dropout keeps element `index` of a layer whose mask has `key`
/// (drawn from the step's dropout stream, one per layer in forward order):
/// the top 32 bits of SplitMix64's output function over the counter
/// `key + (index + 1) * golden gamma`. A pure function of (key, index), so
/// masks cost no sequential stream, are built in parallel on the CPU, on
/// the GPU by `kernels/cuda/dropout.cu` (the same arithmetic), and are
/// recomputed by the backward pass instead of stored.
#[inline]
pub fn dropout_keeps(key: u64, index: u64, threshold: u64) -> bool {
    let mut z = key.wrapping_add(index.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 32) >= threshold
}

/// A permutation of `0..n` (Fisher-Yates).
pub fn permutation(rng: &mut ChaCha8Rng, n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.random_range(0..=i);
        order.swap(i, j);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_pure_functions_of_their_key() {
        let a: Vec<u32> = (0..4).map(|_| stream(7, 3, 2, Purpose::Augment).random()).collect();
        let mut s = stream(7, 3, 2, Purpose::Augment);
        let first: u32 = s.random();
        assert_eq!(a[0], first);
        let other: u32 = stream(7, 3, 2, Purpose::Dropout).random();
        assert_ne!(first, other);
    }

    /// SplitMix64's published first outputs for seed 0 (the counter at
    /// gamma, 2 gamma, ...), which the CUDA kernel's arithmetic must give
    /// too; and the kept fraction is 1 - p.
    #[test]
    fn dropout_masks_are_splitmix64_and_keep_one_minus_p() {
        let first = [0xe220_a839_7b1d_cdafu64, 0x6e78_9e6a_a1b9_65f4, 0x06c4_5d18_8009_454f];
        for (i, want) in first.iter().enumerate() {
            // Kept exactly when the top 32 bits reach the threshold.
            assert!(dropout_keeps(0, i as u64, want >> 32));
            assert!(!dropout_keeps(0, i as u64, (want >> 32) + 1));
        }
        let threshold = dropout_threshold(0.3);
        let kept = (0..100_000u64).filter(|&i| dropout_keeps(42, i, threshold)).count();
        assert!((kept as f64 / 1e5 - 0.7).abs() < 0.01, "kept {kept} of 100000");
        assert!((0..1000).all(|i| dropout_keeps(7, i, dropout_threshold(0.0))));
        assert!(!(0..1000).any(|i| dropout_keeps(7, i, dropout_threshold(1.0))));
    }

    #[test]
    fn normal_samples_have_unit_variance() {
        let mut rng = stream(1, 0, 0, Purpose::Init);
        let xs: Vec<f64> = (0..20_000).map(|_| standard_normal(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean} var {var}");
    }
}
