//! Real data: a WRN-10-1 trained on 2,048 images of Debian's Fashion-MNIST
//! (`apt-get install dataset-fashion-mnist`) must land far below chance.

use std::path::Path;
use std::sync::Arc;

use candle_core::Device;
use widesweep_arch::{Dataset, WrnConfig};
use widesweep_worker::data::{self, DEBIAN_FASHION_MNIST, LoadOptions};
use widesweep_worker::train::trainer::Silent;
use widesweep_worker::train::{Recipe, RunSpec, Trainer};

#[test]
fn a_tiny_wrn_on_real_fashion_mnist_beats_chance_by_far() {
    if !Path::new(DEBIAN_FASHION_MNIST).join("train-images-idx3-ubyte.gz").exists() {
        panic!("install the real data first: apt-get install dataset-fashion-mnist");
    }
    // An empty data directory: the loader falls back to Debian's files.
    let empty = tempfile::tempdir().unwrap();
    let mut splits = data::load(Dataset::FashionMnist, empty.path(), LoadOptions::default()).unwrap();
    assert_eq!((splits.train.len(), splits.test.len()), (60_000, 10_000));
    let first: Vec<usize> = (0..500).collect();
    splits.test = splits.test.subset(&first);

    let config = WrnConfig::wrn(10, 1, Dataset::FashionMnist).unwrap();
    // Two passes over 1,024 images, the second at a fifth of the rate: with
    // a single pass at a high rate the BN running statistics lag the weights
    // and the test error swings widely between seeds.
    let recipe = Recipe {
        epochs: 2,
        batch_size: 16,
        lr: 0.05,
        lr_milestones: vec![1],
        augment: false,
        train_subset: 1024,
        ..Recipe::default()
    };
    let spec = RunSpec { config, dataset: Dataset::FashionMnist, recipe, seed: 1 };
    let mut trainer = Trainer::new(spec, Arc::new(splits), &Device::Cpu).unwrap();
    trainer.run(&mut Silent).unwrap();
    let m = trainer.history()[1];
    // Measured on a 2-core machine: 30.8% with seed 1 (this test) and 39.8%
    // with seed 2 (same flags through `widesweep train`). Chance is 90%.
    assert!(m.test_error < 0.60, "test error {:.1}% after one epoch: {m:?}", 100.0 * m.test_error);
}
