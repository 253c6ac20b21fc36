//! Checkpoint files on the coordinator's disk, content-addressed by their
//! SHA-256 (`<dir>/<first two hex digits>/<digest>`); the database holds
//! the references. A file is written under a temporary name and renamed
//! into place only once its size and digest check out, so a reader never
//! sees a partial checkpoint.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::fs;
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("checkpoint of {size} bytes exceeds the coordinator's limit of {limit} bytes (--max-checkpoint-mb)")]
    TooLarge { size: u64, limit: u64 },
    #[error("checkpoint is {got} bytes, its header announced {expected}")]
    SizeMismatch { expected: u64, got: u64 },
    #[error("checkpoint digest is {got}, its header announced {expected}")]
    DigestMismatch { expected: String, got: String },
    #[error("invalid digest {0:?}: expected 64 lowercase hex digits")]
    BadDigest(String),
    #[error("artifact storage at {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

#[derive(Clone, Debug)]
pub struct ArtifactStore {
    dir: PathBuf,
    /// Largest checkpoint accepted, so one upload cannot fill the disk.
    max_bytes: u64,
}

/// An upload in progress: bytes go to a temporary file while hashed.
pub struct PendingUpload {
    file: fs::File,
    temp: PathBuf,
    hasher: Sha256,
    written: u64,
    expected_size: u64,
    expected_sha: String,
    max_bytes: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io { path: path.to_path_buf(), source }
}

fn valid_digest(sha: &str) -> bool {
    sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ArtifactStore {
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> Self {
        Self { dir: dir.into(), max_bytes }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path_of(&self, sha: &str) -> Result<PathBuf, ArtifactError> {
        if !valid_digest(sha) {
            return Err(ArtifactError::BadDigest(sha.to_string()));
        }
        Ok(self.dir.join(&sha[..2]).join(sha))
    }

    pub async fn begin(&self, expected_size: u64, expected_sha: &str) -> Result<PendingUpload, ArtifactError> {
        if expected_size > self.max_bytes {
            return Err(ArtifactError::TooLarge { size: expected_size, limit: self.max_bytes });
        }
        if !valid_digest(expected_sha) {
            return Err(ArtifactError::BadDigest(expected_sha.to_string()));
        }
        let tmp_dir = self.dir.join("tmp");
        fs::create_dir_all(&tmp_dir).await.map_err(io(&tmp_dir))?;
        let unique = format!("{expected_sha}.{}.{:x}", std::process::id(), rand_suffix());
        let temp = tmp_dir.join(unique);
        let file = fs::File::create(&temp).await.map_err(io(&temp))?;
        Ok(PendingUpload {
            file,
            temp,
            hasher: Sha256::new(),
            written: 0,
            expected_size,
            expected_sha: expected_sha.to_string(),
            max_bytes: self.max_bytes,
        })
    }

    /// Moves a verified upload into place (an identical file may already be
    /// there: content addressing makes that harmless).
    pub async fn commit(&self, upload: PendingUpload) -> Result<PathBuf, ArtifactError> {
        let PendingUpload { mut file, temp, hasher, written, expected_size, expected_sha, .. } = upload;
        let result = async {
            file.flush().await.map_err(io(&temp))?;
            file.sync_all().await.map_err(io(&temp))?;
            drop(file);
            if written != expected_size {
                return Err(ArtifactError::SizeMismatch { expected: expected_size, got: written });
            }
            let got = hex::encode(hasher.finalize());
            if got != expected_sha {
                return Err(ArtifactError::DigestMismatch { expected: expected_sha.clone(), got });
            }
            let dest = self.path_of(&expected_sha)?;
            let parent = dest.parent().expect("artifact paths have a parent");
            fs::create_dir_all(parent).await.map_err(io(parent))?;
            fs::rename(&temp, &dest).await.map_err(io(&dest))?;
            Ok(dest)
        }
        .await;
        if result.is_err() {
            let _ = fs::remove_file(&temp).await;
        }
        result
    }

    pub async fn remove(&self, sha: &str) {
        if let Ok(path) = self.path_of(sha)
            && let Err(error) = fs::remove_file(&path).await
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), %error, "could not remove a pruned checkpoint");
        }
    }
}

impl PendingUpload {
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ArtifactError> {
        self.written += data.len() as u64;
        if self.written > self.expected_size.min(self.max_bytes) {
            let _ = fs::remove_file(&self.temp).await;
            return Err(if self.written > self.max_bytes {
                ArtifactError::TooLarge { size: self.written, limit: self.max_bytes }
            } else {
                ArtifactError::SizeMismatch { expected: self.expected_size, got: self.written }
            });
        }
        self.hasher.update(data);
        self.file.write_all(data).await.map_err(io(&self.temp))
    }

    /// Removes the temporary file of an abandoned upload.
    pub async fn abort(self) {
        drop(self.file);
        let _ = fs::remove_file(&self.temp).await;
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}
