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
}

impl DatasetCache {
    pub fn new(data_dir: PathBuf, options: LoadOptions) -> Self {
        Self { data_dir, options, loaded: Mutex::default() }
    }

    /// Where datasets are read from (and downloaded to).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
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
