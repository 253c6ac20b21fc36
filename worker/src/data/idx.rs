//! MNIST and Fashion-MNIST IDX files, gzipped (yann.lecun.com/exdb/mnist):
//! images are a 16-byte big-endian header (magic 2051, count, 28, 28) and
//! count * 784 bytes; labels an 8-byte header (magic 2049, count) and count bytes.
//!
//! The network sees every dataset at 32x32, so images are zero-padded by 2
//! pixels on each side when read: 0 is the background of these datasets, so
//! the padding looks like more background.

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use super::{DataError, ImageSet};

pub const IMAGES_MAGIC: u32 = 2051;
pub const LABELS_MAGIC: u32 = 2049;
const SIDE: usize = 28;
const PADDED: usize = 32;

/// The file's bytes, gunzipped when they start with the gzip magic.
fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>, DataError> {
    let raw = std::fs::read(path).map_err(DataError::io(path))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|source| DataError::Gzip { path: path.into(), source })?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn header(path: &Path, bytes: &[u8], words: usize) -> Result<Vec<u32>, DataError> {
    if bytes.len() < 4 * words {
        return Err(DataError::Truncated { path: path.into(), actual: bytes.len() as u64, expected: 4 * words as u64 });
    }
    Ok(bytes[..4 * words].chunks_exact(4).map(|w| u32::from_be_bytes(w.try_into().expect("4-byte chunk"))).collect())
}

/// Reads the images and labels of one split, checking magics, shapes, the
/// agreement of the two counts, the labels' range (0 to 9) and, when given,
/// the expected count.
pub fn read_split(images: &Path, labels: &Path, expected: Option<usize>) -> Result<ImageSet, DataError> {
    let image_bytes = read_maybe_gzipped(images)?;
    let label_bytes = read_maybe_gzipped(labels)?;
    parse_split(images, &image_bytes, labels, &label_bytes, expected)
}

pub fn parse_split(
    images_path: &Path,
    image_bytes: &[u8],
    labels_path: &Path,
    label_bytes: &[u8],
    expected: Option<usize>,
) -> Result<ImageSet, DataError> {
    let h = header(images_path, image_bytes, 4)?;
    if h[0] != IMAGES_MAGIC {
        return Err(DataError::Magic { path: images_path.into(), kind: "images", found: h[0], expected: IMAGES_MAGIC });
    }
    if (h[2], h[3]) != (SIDE as u32, SIDE as u32) {
        return Err(DataError::ImageSize { path: images_path.into(), rows: h[2], cols: h[3] });
    }
    let n_images = h[1] as usize;
    let want = 16 + (n_images * SIDE * SIDE) as u64;
    if image_bytes.len() as u64 != want {
        return Err(DataError::Truncated {
            path: images_path.into(),
            actual: image_bytes.len() as u64,
            expected: want,
        });
    }
    let h = header(labels_path, label_bytes, 2)?;
    if h[0] != LABELS_MAGIC {
        return Err(DataError::Magic { path: labels_path.into(), kind: "labels", found: h[0], expected: LABELS_MAGIC });
    }
    let n_labels = h[1] as usize;
    let want = 8 + n_labels as u64;
    if label_bytes.len() as u64 != want {
        return Err(DataError::Truncated {
            path: labels_path.into(),
            actual: label_bytes.len() as u64,
            expected: want,
        });
    }
    if n_images != n_labels {
        return Err(DataError::CountMismatch {
            images: images_path.into(),
            n_images,
            labels: labels_path.into(),
            n_labels,
        });
    }
    if let Some(expected) = expected.filter(|e| *e != n_images) {
        return Err(DataError::RecordCount { path: images_path.into(), found: n_images, expected });
    }
    let labels = label_bytes[8..].to_vec();
    if let Some((record, &label)) = labels.iter().enumerate().find(|(_, l)| **l > 9) {
        return Err(DataError::LabelRange { path: labels_path.into(), record, label, max: 9 });
    }
    let pad = (PADDED - SIDE) / 2;
    let mut padded = vec![0u8; n_images * PADDED * PADDED];
    for (src, dst) in image_bytes[16..].chunks_exact(SIDE * SIDE).zip(padded.chunks_exact_mut(PADDED * PADDED)) {
        for row in 0..SIDE {
            let at = (row + pad) * PADDED + pad;
            dst[at..at + SIDE].copy_from_slice(&src[row * SIDE..(row + 1) * SIDE]);
        }
    }
    Ok(ImageSet { images: padded, labels, channels: 1 })
}

/// Encodes a split in the IDX format (uncompressed); used to write
/// synthetic datasets for tests and examples.
pub fn encode(images_28x28: &[u8], labels: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let n = labels.len() as u32;
    let mut img = Vec::with_capacity(16 + images_28x28.len());
    for w in [IMAGES_MAGIC, n, SIDE as u32, SIDE as u32] {
        img.extend_from_slice(&w.to_be_bytes());
    }
    img.extend_from_slice(images_28x28);
    let mut lab = Vec::with_capacity(8 + labels.len());
    for w in [LABELS_MAGIC, n] {
        lab.extend_from_slice(&w.to_be_bytes());
    }
    lab.extend_from_slice(labels);
    (img, lab)
}
