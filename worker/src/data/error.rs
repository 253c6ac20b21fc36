use std::path::PathBuf;

/// Everything that can be wrong with a dataset on disk. Every message names
/// the file and says what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is missing; {hint}")]
    Missing { path: PathBuf, hint: String },
    #[error("{path} is truncated: {actual} bytes, expected {expected}")]
    Truncated { path: PathBuf, actual: u64, expected: u64 },
    #[error("{path} has the wrong record size: {len} bytes is not a whole number of {record}-byte records")]
    RecordSize { path: PathBuf, len: u64, record: usize },
    #[error("{path} has {found} records, expected {expected}")]
    RecordCount { path: PathBuf, found: usize, expected: usize },
    #[error("{path}: label {label} of record {record} is out of range (expected 0 to {max})")]
    LabelRange { path: PathBuf, record: usize, label: u8, max: u8 },
    #[error("{path} is not an IDX {kind} file: magic number {found}, expected {expected}")]
    Magic { path: PathBuf, kind: &'static str, found: u32, expected: u32 },
    #[error("{path} holds {rows}x{cols} images, expected 28x28")]
    ImageSize { path: PathBuf, rows: u32, cols: u32 },
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch { images: PathBuf, n_images: usize, labels: PathBuf, n_labels: usize },
    #[error("{path} is not valid gzip")]
    Gzip { path: PathBuf, source: std::io::Error },
    #[error("{path} has checksum md5 {actual}, expected {expected} (corrupt or not the official file)")]
    Checksum { path: PathBuf, expected: String, actual: String },
    #[error("downloading {url} failed: {message}")]
    Download { url: String, message: String },
    #[error("cannot import {path}: {message}")]
    Import { path: PathBuf, message: String },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> DataError {
        let path = path.into();
        move |source| DataError::Io { path, source }
    }
}
