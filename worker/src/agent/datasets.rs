//! Datasets read once per process and shared by every slot and job.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use widesweep_arch::Dataset;

use crate::data::{self, DataError, LoadOptions, Splits};

pub struct DatasetCache {
    data_dir: PathBuf,
    options: LoadOptions,
    loaded: Mutex<HashMap<Dataset, Arc<OnceCell<Arc<Splits>>>>>,
    hashes: Mutex<HashMap<Dataset, Arc<OnceCell<String>>>>,
}

impl DatasetCache {
    pub fn new(data_dir: PathBuf, options: LoadOptions) -> Self {
        Self { data_dir, options, loaded: Mutex::default(), hashes: Mutex::default() }
    }

    /// Where datasets are read from (and downloaded to).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// SHA-256 of the dataset's files as this machine has them, computed
    /// once per process (files changed under a running worker are not
    /// seen); empty when they cannot be read (a command engine's dataset
    /// the worker does not keep).
    pub async fn sha256(&self, dataset: Dataset) -> String {
        let cell = Arc::clone(self.hashes.lock().expect("dataset cache poisoned").entry(dataset).or_default());
        cell.get_or_init(|| async {
            let dir = self.data_dir.clone();
            tokio::task::spawn_blocking(move || {
                let folder = data::locate(dataset, &dir).ok()?;
                super::provenance::files_sha256(&folder, data::files(dataset)).ok()
            })
            .await
            .ok()
            .flatten()
            .unwrap_or_default()
        })
        .await
        .clone()
    }

    /// The dataset's splits, read from disk by the first caller while the
    /// others wait. A failed read is not remembered: the next job tries
    /// again (the files may have been repaired meanwhile).
    pub async fn get(&self, dataset: Dataset) -> Result<Arc<Splits>, DataError> {
        let cell = Arc::clone(self.loaded.lock().expect("dataset cache poisoned").entry(dataset).or_default());
        let splits = cell
            .get_or_try_init(|| async {
                let (dir, options) = (self.data_dir.clone(), self.options);
                let started = std::time::Instant::now();
                let splits = tokio::task::spawn_blocking(move || data::load(dataset, &dir, options))
                    .await
                    .expect("dataset loading panicked")?;
                tracing::info!(%dataset, train = splits.train.len(), test = splits.test.len(), seconds = started.elapsed().as_secs_f64(), "dataset loaded");
                Ok::<_, DataError>(Arc::new(splits))
            })
            .await?;
        Ok(Arc::clone(splits))
    }
}
