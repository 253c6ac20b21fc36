//! CIFAR-10 and CIFAR-100 binary files
//! (www.cs.toronto.edu/~kriz/cifar.html): fixed-size records of label
//! byte(s) followed by 1024 R, 1024 G and 1024 B bytes (row-major 32x32).

use std::path::Path;

use super::{DataError, ImageSet};

const PIXELS: usize = 3 * 32 * 32;
/// Records per file in the official CIFAR-10 batches.
pub const CIFAR10_RECORDS_PER_FILE: usize = 10_000;

/// The record layout of one CIFAR variant.
#[derive(Clone, Copy, Debug)]
pub struct CifarLayout {
    /// Label bytes before the pixels: 1 for CIFAR-10, 2 (coarse, fine) for CIFAR-100.
    pub label_bytes: usize,
    /// Classes of each label byte, in order.
    pub classes: &'static [u8],
}

pub const CIFAR10: CifarLayout = CifarLayout { label_bytes: 1, classes: &[10] };
pub const CIFAR100: CifarLayout = CifarLayout { label_bytes: 2, classes: &[20, 100] };

impl CifarLayout {
    pub fn record_size(self) -> usize {
        self.label_bytes + PIXELS
    }
}

/// Reads one file; `expected_records` checks the count when given. The
/// image's label is its last label byte (the fine label on CIFAR-100).
pub fn read(path: &Path, layout: CifarLayout, expected_records: Option<usize>) -> Result<ImageSet, DataError> {
    let bytes = std::fs::read(path).map_err(DataError::io(path))?;
    parse(path, &bytes, layout, expected_records)
}

pub fn parse(
    path: &Path,
    bytes: &[u8],
    layout: CifarLayout,
    expected_records: Option<usize>,
) -> Result<ImageSet, DataError> {
    let record = layout.record_size();
    let len = bytes.len() as u64;
    if let Some(expected) = expected_records {
        let want = (expected * record) as u64;
        if len < want {
            return Err(DataError::Truncated { path: path.into(), actual: len, expected: want });
        }
    }
    if bytes.is_empty() || !bytes.len().is_multiple_of(record) {
        return Err(DataError::RecordSize { path: path.into(), len, record });
    }
    let n = bytes.len() / record;
    if let Some(expected) = expected_records.filter(|e| *e != n) {
        return Err(DataError::RecordCount { path: path.into(), found: n, expected });
    }
    let mut images = Vec::with_capacity(n * PIXELS);
    let mut labels = Vec::with_capacity(n);
    for (idx, rec) in bytes.chunks_exact(record).enumerate() {
        for (&label, &classes) in rec[..layout.label_bytes].iter().zip(layout.classes) {
            if label >= classes {
                return Err(DataError::LabelRange { path: path.into(), record: idx, label, max: classes - 1 });
            }
        }
        labels.push(rec[layout.label_bytes - 1]);
        images.extend_from_slice(&rec[layout.label_bytes..]);
    }
    Ok(ImageSet { images, labels, channels: 3 })
}
