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

/// An upload in progress: bytes go to a temporary file while hashed. The
/// file is removed when the upload is dropped without being committed,
/// whatever ended it (an error, a client that went away mid-stream, a
/// refused fence), so no failure path leaves it behind.
pub struct PendingUpload {
    file: Option<fs::File>,
    /// `None` once committed (the file was renamed into place).
    temp: Option<PathBuf>,
    hasher: Sha256,
    written: u64,
    expected_size: u64,
    expected_sha: String,
    max_bytes: u64,
}

/// How long a temporary upload file may sit untouched before
/// [`ArtifactStore::sweep_abandoned`] removes it.
pub const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io { path: path.to_path_buf(), source }
}

fn valid_digest(sha: &str) -> bool {
    sha.len() == 64 && valid_hex(sha)
}

fn valid_hex(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
            file: Some(file),
            temp: Some(temp),
            hasher: Sha256::new(),
            written: 0,
            expected_size,
            expected_sha: expected_sha.to_string(),
            max_bytes: self.max_bytes,
        })
    }

    /// Moves a verified upload into place (an identical file may already be
    /// there: content addressing makes that harmless).
    pub async fn commit(&self, mut upload: PendingUpload) -> Result<PathBuf, ArtifactError> {
        let mut file = upload.file.take().expect("an upload is committed once");
        let temp = upload.temp.clone().expect("an upload is committed once");
        let (written, expected_size) = (upload.written, upload.expected_size);
        let hasher = std::mem::take(&mut upload.hasher);
        let expected_sha = upload.expected_sha.clone();
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
        if result.is_ok() {
            upload.temp = None;
        }
        // Otherwise dropping `upload` removes the temporary file.
        result
    }

    /// Removes temporary files of uploads that a crash cut short: those
    /// untouched for [`ABANDONED_AFTER`] (a live upload writes every chunk,
    /// and another coordinator may share the directory). Returns how many.
    pub async fn sweep_abandoned(&self) -> Result<usize, ArtifactError> {
        let tmp_dir = self.dir.join("tmp");
        let mut entries = match fs::read_dir(&tmp_dir).await {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => return Err(ArtifactError::Io { path: tmp_dir, source }),
        };
        let mut removed = 0;
        while let Some(entry) = entries.next_entry().await.map_err(io(&tmp_dir))? {
            let path = entry.path();
            let Ok(meta) = entry.metadata().await else { continue };
            let idle = meta.modified().ok().and_then(|m| m.elapsed().ok()).unwrap_or_default();
            if meta.is_file() && idle >= ABANDONED_AFTER && fs::remove_file(&path).await.is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// The digests of stored checkpoint files untouched for
    /// [`ABANDONED_AFTER`]: those a sweep for unreferenced files may judge
    /// (a younger one may be an upload between its commit and its row).
    pub async fn settled_files(&self) -> Result<Vec<String>, ArtifactError> {
        let mut digests = Vec::new();
        let mut shards = match fs::read_dir(&self.dir).await {
            Ok(entries) => entries,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(digests),
            Err(source) => return Err(ArtifactError::Io { path: self.dir.clone(), source }),
        };
        while let Some(shard) = shards.next_entry().await.map_err(io(&self.dir))? {
            let name = shard.file_name();
            let Some(prefix) = name.to_str().filter(|n| n.len() == 2 && valid_hex(n)) else { continue };
            let shard_dir = shard.path();
            let mut files = fs::read_dir(&shard_dir).await.map_err(io(&shard_dir))?;
            while let Some(file) = files.next_entry().await.map_err(io(&shard_dir))? {
                let Some(sha) = file.file_name().to_str().map(str::to_string) else { continue };
                if !valid_digest(&sha) || !sha.starts_with(prefix) {
                    continue;
                }
                let Ok(meta) = file.metadata().await else { continue };
                let idle = meta.modified().ok().and_then(|m| m.elapsed().ok()).unwrap_or_default();
                if meta.is_file() && idle >= ABANDONED_AFTER {
                    digests.push(sha);
                }
            }
        }
        Ok(digests)
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
            return Err(if self.written > self.max_bytes {
                ArtifactError::TooLarge { size: self.written, limit: self.max_bytes }
            } else {
                ArtifactError::SizeMismatch { expected: self.expected_size, got: self.written }
            });
        }
        self.hasher.update(data);
        let (Some(file), Some(temp)) = (self.file.as_mut(), self.temp.as_ref()) else {
            unreachable!("a committed upload is consumed");
        };
        file.write_all(data).await.map_err(io(temp))
    }

    /// The temporary file's path while the upload is open (tests).
    pub fn temp_path(&self) -> Option<&Path> {
        self.temp.as_deref()
    }
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        drop(self.file.take());
        if let Some(temp) = self.temp.take() {
            // Synchronous, but one unlink: dropping may happen outside any
            // runtime (a cancelled handler's future).
            let _ = std::fs::remove_file(temp);
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    const SHA: &str = "5e5b7a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7";

    fn temp_files(dir: &Path) -> Vec<PathBuf> {
        match std::fs::read_dir(dir.join("tmp")) {
            Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Regression: an upload that ended any other way than a commit (an
    /// error, a client gone mid-stream, a refused fence) left its file.
    #[tokio::test]
    async fn an_upload_dropped_on_any_path_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path(), 1 << 20);
        let mut upload = store.begin(10, SHA).await.unwrap();
        upload.write(b"12345").await.unwrap();
        let temp = upload.temp_path().unwrap().to_path_buf();
        assert!(temp.exists());
        drop(upload);
        assert!(!temp.exists(), "dropping an upload removes its file");
        // Too many bytes, then a failed commit: nothing stays behind either.
        let mut upload = store.begin(3, SHA).await.unwrap();
        assert!(matches!(upload.write(b"1234").await, Err(ArtifactError::SizeMismatch { .. })));
        drop(upload);
        let mut upload = store.begin(3, SHA).await.unwrap();
        upload.write(b"123").await.unwrap();
        assert!(matches!(store.commit(upload).await, Err(ArtifactError::DigestMismatch { .. })));
        assert_eq!(temp_files(dir.path()), Vec::<PathBuf>::new());
    }

    #[tokio::test]
    async fn a_committed_upload_keeps_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path(), 1 << 20);
        let data = b"checkpoint bytes";
        let sha = hex::encode(Sha256::digest(data));
        let mut upload = store.begin(data.len() as u64, &sha).await.unwrap();
        upload.write(data).await.unwrap();
        let path = store.commit(upload).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert_eq!(temp_files(dir.path()), Vec::<PathBuf>::new());
    }

    /// What a crash leaves (no drop ran) is swept at start-up, once it is
    /// old enough not to belong to a live upload of another coordinator.
    #[tokio::test]
    async fn abandoned_temporary_files_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path(), 1 << 20);
        assert_eq!(store.sweep_abandoned().await.unwrap(), 0, "no tmp directory yet");
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        let old = dir.path().join("tmp").join("crashed");
        let live = dir.path().join("tmp").join("live");
        std::fs::write(&old, b"x").unwrap();
        std::fs::write(&live, b"y").unwrap();
        let two_hours_ago = SystemTime::now() - ABANDONED_AFTER - Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&old).unwrap().set_modified(two_hours_ago).unwrap();
        assert_eq!(store.sweep_abandoned().await.unwrap(), 1);
        assert!(!old.exists() && live.exists());
    }

    #[tokio::test]
    async fn only_settled_checkpoint_files_are_offered_for_the_orphan_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path(), 1 << 20);
        assert!(store.settled_files().await.unwrap().is_empty(), "no directory yet");
        let (old, young) = (SHA.to_string(), format!("5e{}", &SHA[2..].replace('7', "8")));
        for sha in [&old, &young] {
            std::fs::create_dir_all(dir.path().join(&sha[..2])).unwrap();
            std::fs::write(store.path_of(sha).unwrap(), b"x").unwrap();
        }
        // Neither a temporary file nor a stray name is a checkpoint.
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::write(dir.path().join("5e").join("notes.txt"), b"x").unwrap();
        let two_hours_ago = SystemTime::now() - ABANDONED_AFTER - Duration::from_secs(3600);
        let path = store.path_of(&old).unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(two_hours_ago).unwrap();
        assert_eq!(store.settled_files().await.unwrap(), vec![old]);
    }
}
