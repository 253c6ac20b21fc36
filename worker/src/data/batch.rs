//! From stored images to normalised, augmented batches.
//!
//! Augmentation runs on the CPU over the stored bytes and draws from the
//! batch's own seeded stream, so a batch depends only on (seed, epoch, step).

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use widesweep_arch::IMAGE_SIZE;

use super::{ImageSet, Normalisation};

/// Pixels of reflection padding before the random crop.
pub const CROP_PADDING: usize = 4;

/// One batch on the host: `[n, channels, 32, 32]` normalised pixels and labels.
#[derive(Clone, Debug, PartialEq)]
pub struct HostBatch {
    pub pixels: Vec<f32>,
    pub labels: Vec<u32>,
    pub channels: usize,
}

impl HostBatch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// Reflects `i` (which may lie up to `CROP_PADDING` outside `0..n`) back
/// into range, without repeating the edge pixel (numpy/PyTorch "reflect").
fn reflect(i: isize, n: isize) -> usize {
    let r = if i < 0 {
        -i
    } else if i >= n {
        2 * (n - 1) - i
    } else {
        i
    };
    r as usize
}

/// The images at `indices`, normalised, with a random reflect-padded crop and
/// flip per image when `augment` is set (drawn from `stream` in image order).
pub fn make_batch(
    set: &ImageSet,
    indices: &[usize],
    norm: &Normalisation,
    augment: Option<&mut ChaCha8Rng>,
) -> HostBatch {
    let side = IMAGE_SIZE;
    let plane = side * side;
    let mut pixels = vec![0f32; indices.len() * set.image_len()];
    let scale: Vec<f32> = norm.std.iter().map(|s| 1.0 / s).collect();
    let mut augment = augment;
    for (slot, &idx) in indices.iter().enumerate() {
        let (dy, dx, flip) = match augment.as_deref_mut() {
            Some(stream) => {
                let dy = stream.random_range(0..=2 * CROP_PADDING) as isize - CROP_PADDING as isize;
                let dx = stream.random_range(0..=2 * CROP_PADDING) as isize - CROP_PADDING as isize;
                (dy, dx, stream.random_bool(0.5))
            }
            None => (0, 0, false),
        };
        let src = set.image(idx);
        let dst = &mut pixels[slot * set.image_len()..(slot + 1) * set.image_len()];
        for c in 0..set.channels {
            let (mean, inv_std) = (norm.mean[c], scale[c]);
            let src_plane = &src[c * plane..(c + 1) * plane];
            let dst_plane = &mut dst[c * plane..(c + 1) * plane];
            for y in 0..side {
                let sy = reflect(y as isize + dy, side as isize);
                for x in 0..side {
                    let cx = if flip { side - 1 - x } else { x };
                    let sx = reflect(cx as isize + dx, side as isize);
                    dst_plane[y * side + x] = (src_plane[sy * side + sx] as f32 - mean) * inv_std;
                }
            }
        }
    }
    HostBatch { pixels, labels: indices.iter().map(|&i| set.labels[i] as u32).collect(), channels: set.channels }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflection_does_not_repeat_the_edge() {
        assert_eq!(reflect(-1, 32), 1);
        assert_eq!(reflect(-4, 32), 4);
        assert_eq!(reflect(32, 32), 30);
        assert_eq!(reflect(35, 32), 27);
        assert_eq!(reflect(5, 32), 5);
    }

    #[test]
    fn unaugmented_batch_is_the_normalised_image() {
        let set = ImageSet { images: (0..1024).map(|i| (i % 256) as u8).collect(), labels: vec![3], channels: 1 };
        let norm = Normalisation { mean: vec![10.0], std: vec![2.0] };
        let b = make_batch(&set, &[0], &norm, None);
        assert_eq!(b.labels, vec![3]);
        assert_eq!(b.pixels[0], -5.0);
        assert_eq!(b.pixels[20], 5.0);
    }
}
