//! Training axes through the real store on both backends: a sweep over the
//! learning rate, weight decay, dataset and epochs is stored job by job
//! with each cell's own recipe, its table is laid out along those axes, and
//! a database written before training axes existed keeps its cells.

mod common;

use std::sync::Arc;

use common::token;
use widesweep_coordinator::report::{Axis, Format, TableOptions, build, render};
use widesweep_coordinator::store::{self, EpochMetrics, JobResult, LeasedJob, Store};

const LEASE: i64 = 60_000;

const SPEC: &str = r#"
name = "lr-wd"
dataset = "fashion-mnist"
seeds = [1, 2]

[recipe]
epochs = 2
lr_milestones = []

[grid]
depth = [10]
width = [1]
lr = [0.05, 0.1]
weight_decay = [0.0005, 0.001]
dataset = ["fashion-mnist", "mnist"]
epochs = [1, 2]
"#;

/// A known result per cell: the learning rate and weight decay each move
/// the error by a fixed step, so the table's medians are known.
fn known_error(job: &LeasedJob) -> f64 {
    let r = &job.config.recipe;
    let mut error = 0.20;
    if r.lr == 0.1 {
        error -= 0.02;
    }
    if r.weight_decay == 0.001 {
        error += 0.01;
    }
    error + job.config.seed as f64 * 0.001
}

async fn finish(store: &dyn Store, job: &LeasedJob) {
    let error = known_error(job);
    let epochs = job.config.recipe.epochs;
    let metrics = |epoch: u32| EpochMetrics {
        epoch,
        train_loss: 0.5,
        train_error: error,
        test_loss: 0.6,
        test_error: error,
        lr: job.config.recipe.lr,
        epoch_seconds: 1.0,
        images_per_second: 1000.0,
    };
    for epoch in 1..=epochs {
        store.report_epoch(job.fence(), &metrics(epoch), LEASE, 2_000).await.unwrap();
    }
    let result = JobResult {
        final_metrics: metrics(epochs),
        best_test_error: error,
        train_seconds: f64::from(epochs),
        provenance: None,
    };
    store.complete_job(job.fence(), &result, 3_000).await.unwrap();
}

async fn a_sweep_over_training_axes_stores_and_tabulates_them(store: Arc<dyn Store>) {
    let outcome = common::submit(store.as_ref(), SPEC, 0, 3).await;
    assert_eq!(outcome.new, 2 * 2 * 2 * 2 * 2, "16 cells of 2 seeds");
    let worker = store.register_worker("test", &["cpu".into()], "t", 1_000).await.unwrap();
    let mut combinations = std::collections::HashSet::new();
    for _ in 0..outcome.new {
        let job = store.lease_job(worker, "cpu", token(), LEASE, 1_000).await.unwrap().unwrap();
        let (c, r) = (&job.config, &job.config.recipe);
        combinations.insert((c.dataset.name(), r.lr.to_bits(), r.weight_decay.to_bits(), r.epochs, c.seed));
        finish(store.as_ref(), &job).await;
    }
    assert_eq!(combinations.len(), 32, "every cell and seed leased once, with its own training");

    let rows = store.sweep_results("lr-wd").await.unwrap();
    assert!(rows.iter().all(|r| r.status == store::JobStatus::Succeeded));
    assert!(rows.iter().any(|r| r.config.dataset.name() == "mnist" && r.config.recipe.epochs == 1));
    let table = build(&rows, &TableOptions::default()).unwrap();
    let mut axes: Vec<Axis> = table.row_axes.iter().chain(&table.col_axes).copied().collect();
    axes.sort();
    assert_eq!(
        axes,
        [Axis::Dataset, Axis::Epochs, Axis::Lr, Axis::WeightDecay],
        "the sweep's own axes, not the recipe"
    );
    let text = render(&table, Format::Text);
    assert!(text.contains("lr=0.05") && text.contains("weight_decay=0.001"), "{text}");
    assert!(!text.contains("also varies"), "the recipe fields named say all the recipe does: {text}");
    // lr = 0.1, weight decay 0.0005: 18 % plus the seeds' 0.1 and 0.2 points.
    assert!(text.contains("18.15"), "{text}");

    let options = TableOptions {
        rows: Some(vec![Axis::Lr]),
        cols: Some(vec![Axis::WeightDecay]),
        filters: vec![(Axis::Dataset, vec!["mnist".into()]), (Axis::Epochs, vec!["2".into()])],
        ..TableOptions::default()
    };
    let table = build(&rows, &options).unwrap();
    assert_eq!(table.rows.len(), 2);
    assert_eq!(table.columns.len(), 2);

    let again = common::submit(store.as_ref(), SPEC, 0, 3).await;
    assert_eq!((again.new, again.existing), (0, 32), "resubmitting finds every cell");
}

contract_tests!(a_sweep_over_training_axes_stores_and_tabulates_them);

/// `fixtures/before-training-axes.db` was written by widesweep at commit
/// aa199f0, before training axes existed (`widesweep serve` on a fresh
/// SQLite file, then `widesweep submit` of examples/quickstart.toml,
/// examples/paper/table2-block-types.toml, examples/paper/table6-dropout-cifar100.toml
/// and examples/adaptive-seeds.toml). Opening it migrates it; submitting the
/// same specs now must find every cell, none new and none dropped.
#[tokio::test]
async fn specs_submitted_before_training_axes_keep_their_cells() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("before.db");
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/before-training-axes.db"), &path).unwrap();
    let store = store::open(&format!("sqlite://{}", path.display())).await.unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for (spec, jobs) in [
        ("examples/quickstart.toml", 8),
        ("examples/paper/table2-block-types.toml", 30),
        ("examples/paper/table6-dropout-cifar100.toml", 30),
        ("examples/adaptive-seeds.toml", 12),
    ] {
        let text = std::fs::read_to_string(format!("{root}/{spec}")).unwrap();
        let outcome = common::submit(store.as_ref(), &text, 0, 3).await;
        assert_eq!((outcome.new, outcome.existing, outcome.dropped), (0, jobs, 0), "{spec}");
    }
}
