//! Every spec the coordinator accepts yields jobs a worker accepts.
//!
//! Specs are generated as TOML text over every axis, with edge and
//! out-of-range values (batch sizes 1 and 2, milestones at the edges,
//! integers beyond u32). Each spec the coordinator accepts is stored in a
//! SQLite queue and its jobs are read back and converted to the message a
//! worker receives by the coordinator's own code (`store` rows,
//! `pb::CellConfig::from`, the one wire conversion); the worker's `JobPlan::from_job` must accept
//! every one, and train the recipe and the network the spec asked for.
//! This test lives in the cli crate because it needs both sides, and the
//! worker never depends on the coordinator.

use std::cell::Cell;
use std::sync::Arc;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use widesweep_coordinator::spec::{JobSpec, Spec};
use widesweep_coordinator::store::{self, NewSweep, Store};
use widesweep_proto::v1 as pb;
use widesweep_worker::agent::JobPlan;

/// Generated specs; about a fifth are accepted (see the test's floor). A
/// run takes about a second.
const CASES: u32 = 512;

/// A queue in a temporary SQLite file, shared by every generated spec.
struct Queue {
    runtime: tokio::runtime::Runtime,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

impl Queue {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("queue.db").display());
        let store = runtime.block_on(store::open(&url)).unwrap();
        Self { runtime, store, _dir: dir }
    }

    /// Stores the jobs as a sweep and returns them as workers receive them.
    fn leased_as(&self, sweep: &str, spec: &Spec, jobs: &[JobSpec], text: &str) -> Vec<pb::Job> {
        let new = NewSweep {
            name: sweep,
            dataset: spec.dataset,
            spec_toml: text,
            engines: &spec.engines.defined,
            priority: 0,
            max_attempts: 3,
            jobs,
            reserve: &[],
            seeds_target_ci: None,
            max_failed_fraction: None,
        };
        self.runtime.block_on(self.store.submit_sweep(&new, store::now_ms())).unwrap();
        let rows = self.runtime.block_on(self.store.sweep_results(sweep)).unwrap();
        assert_eq!(rows.len(), jobs.len(), "every job of {sweep} is stored");
        rows.iter()
            .map(|row| pb::Job {
                job_id: row.job_id,
                attempt: 1,
                max_attempts: 3,
                sweep_name: sweep.to_string(),
                cell_hash: row.cell_hash.clone(),
                config: Some(pb::CellConfig::from(&row.config)),
                ..Default::default()
            })
            .collect()
    }
}

/// Checks that the worker accepts every job of an accepted spec, with the
/// recipe and network the coordinator hashed.
fn check_spec(queue: &Queue, sweep: &str, text: &str) -> Result<bool, TestCaseError> {
    let Ok(spec) = Spec::parse(text) else { return Ok(false) };
    let Ok(expansion) = spec.expand(true) else { return Ok(false) };
    let jobs = queue.leased_as(sweep, &spec, &expansion.jobs, text);
    for (job, spec_job) in jobs.iter().zip(&expansion.jobs) {
        prop_assert_eq!(&job.cell_hash, &spec_job.cell_hash);
        let plan = JobPlan::from_job(job).map_err(|e| {
            TestCaseError::fail(format!("the worker refused a job the coordinator accepted: {e}\n{text}"))
        })?;
        prop_assert_eq!(&plan.spec.recipe, spec_job.recipe(), "the worker trains the recipe the spec asked for");
        prop_assert_eq!(plan.spec.dataset, spec_job.dataset());
        prop_assert_eq!(plan.spec.seed, spec_job.seed);
        let network = spec_job.cell.wrn(spec_job.dataset()).unwrap();
        prop_assert_eq!(&plan.spec.config, &network, "the worker trains the network the spec asked for");
        prop_assert_eq!(plan.spec.config.plan().param_count(), spec_job.params);
    }
    Ok(true)
}

/// One of `values`, mostly the first `common` of them (valid ones), else
/// any (edges and values out of range).
fn pick(values: &'static [&'static str], common: usize) -> BoxedStrategy<String> {
    prop_oneof![
        6 => proptest::sample::select(&values[..common]).prop_map(str::to_string),
        1 => proptest::sample::select(values).prop_map(str::to_string),
    ]
    .boxed()
}

/// A list of one or two distinct values from `values`, as TOML.
fn list(values: &'static [&'static str], common: usize) -> BoxedStrategy<String> {
    proptest::collection::vec(pick(values, common), 1..=2)
        .prop_map(|mut v| {
            v.dedup();
            format!("[{}]", v.join(", "))
        })
        .boxed()
}

/// `key = value` or nothing (the default).
fn maybe(key: &'static str, value: BoxedStrategy<String>) -> BoxedStrategy<String> {
    proptest::option::weighted(0.6, value)
        .prop_map(move |v| v.map(|v| format!("{key} = {v}\n")).unwrap_or_default())
        .boxed()
}

/// The axes of a grid or a case: a block pattern or l, a depth or blocks
/// per group, widths and dropouts; `scalars` writes single values unbracketed.
fn cell_set(scalars: bool) -> BoxedStrategy<String> {
    const BLOCKS: &[&str] =
        &["\"B(3,3)\"", "\"B(1,3,1)\"", "\"B(3,1,3)\"", "\"B(1,3)\"", "\"B(3,1)\"", "\"B(3,1,1)\"", "\"B(3,5)\""];
    const L: &[&str] = &["1", "2", "3", "4", "16", "17", "0", "-1", "4294967298"];
    const DEPTH: &[&str] = &["16", "22", "28", "40", "10", "1204", "30", "1210", "0", "-16", "9605", "25769803792"];
    const N: &[&str] = &["1", "2", "3", "200", "201", "0", "-1", "4294967297"];
    const WIDTH: &[&str] = &["1", "2", "4", "64", "65", "0", "-4", "4294967300"];
    const DROPOUT: &[&str] = &["0.0", "0.3", "0.99", "1.0", "-0.1"];
    let axis = move |values: &'static [&'static str], common: usize| {
        if scalars { pick(values, common) } else { list(values, common) }
    };
    let block = prop_oneof![
        2 => Just(String::new()),
        2 => axis(BLOCKS, 6).prop_map(|b| format!("block = {b}\n")),
        1 => axis(L, 6).prop_map(|l| format!("l = {l}\n")),
    ];
    let depth = prop_oneof![
        3 => axis(DEPTH, 6).prop_map(|d| format!("depth = {d}\n")),
        2 => axis(N, 4).prop_map(|n| format!("blocks_per_group = {n}\n")),
    ];
    let width = axis(WIDTH, 4).prop_map(|w| format!("width = {w}\n"));
    let dropout = maybe("dropout", axis(DROPOUT, 3));
    (block, depth, width, dropout).prop_map(|(b, d, w, p)| format!("{b}{d}{w}{p}")).boxed()
}

fn recipe() -> BoxedStrategy<String> {
    const EPOCHS: &[&str] = &["1", "2", "3", "10", "200", "10000", "0", "10001", "-1", "4294967296"];
    const BATCH: &[&str] = &["2", "3", "16", "128", "50000", "60000", "1", "0", "50001", "65537", "4294967298"];
    const MILESTONE: &[&str] = &["1", "2", "5", "9", "0", "10", "199", "200", "9999", "4294967297"];
    const LR: &[&str] = &["0.1", "0.05", "1e-300", "0.0", "-0.1", "inf", "nan"];
    const GAMMA: &[&str] = &["0.2", "1.0", "1e-9", "0.0", "1.5", "nan"];
    const MOMENTUM: &[&str] = &["0.9", "0.0", "0.999", "1.0", "-0.5"];
    const BOOL: &[&str] = &["true", "false"];
    const DECAY: &[&str] = &["5e-4", "0.0", "-1e-4", "inf"];
    const SUBSET: &[&str] = &["0", "1024", "4294967295", "1", "2", "127", "4294967296", "-1"];
    const EVERY: &[&str] = &["0", "1", "5", "4294967295", "4294967296", "-1"];
    const PRECISION: &[&str] = &["\"f32\"", "\"bf16\"", "\"fp16\""];
    let milestones = proptest::collection::vec(pick(MILESTONE, 4), 0..=3).prop_map(|m| format!("[{}]", m.join(", ")));
    let fields = [
        maybe("epochs", pick(EPOCHS, 6)),
        maybe("batch_size", pick(BATCH, 6)),
        maybe("lr", pick(LR, 3)),
        maybe("lr_milestones", milestones.boxed()),
        maybe("lr_gamma", pick(GAMMA, 3)),
        maybe("momentum", pick(MOMENTUM, 3)),
        maybe("nesterov", pick(BOOL, 2)),
        maybe("weight_decay", pick(DECAY, 2)),
        maybe("reset_momentum_on_drop", pick(BOOL, 2)),
        maybe("train_subset", pick(SUBSET, 3)),
        maybe("test_subset", pick(SUBSET, 3)),
        maybe("augment", pick(BOOL, 2)),
        maybe("checkpoint_every", pick(EVERY, 4)),
        maybe("precision", pick(PRECISION, 2)),
    ];
    fields.into_iter().collect::<Vec<_>>().prop_map(|lines| lines.concat()).boxed()
}

fn spec_text() -> impl Strategy<Value = String> {
    const DATASETS: &[&str] = &["cifar10", "cifar100", "mnist", "fashion-mnist"];
    const CONVENTION: &[&str] = &["\"conv-layers\"", "\"nominal\""];
    const SEEDS: &[&str] = &["1", "2", "7", "0", "9223372036854775807", "-1"];
    (
        proptest::sample::select(DATASETS),
        maybe("depth_convention", pick(CONVENTION, 2)),
        list(SEEDS, 5),
        recipe(),
        cell_set(false),
        proptest::option::weighted(0.3, cell_set(true)),
    )
        .prop_map(|(dataset, convention, seeds, recipe, grid, case)| {
            let mut text = format!(
                "name = \"generated\"\ndataset = \"{dataset}\"\nseeds = {seeds}\n{convention}[recipe]\n{recipe}[grid]\n{grid}"
            );
            if let Some(case) = case {
                text.push_str(&format!("[[case]]\n{case}"));
            }
            text
        })
}

#[test]
fn every_job_of_an_accepted_spec_is_accepted_by_a_worker() {
    let queue = Queue::new();
    let mut runner = TestRunner::new(Config { cases: CASES, failure_persistence: None, ..Config::default() });
    let (case, accepted) = (Cell::new(0), Cell::new(0));
    runner
        .run(&spec_text(), |text| {
            case.set(case.get() + 1);
            // Each accepted spec is its own sweep: one case's jobs never
            // mix with another's.
            if check_spec(&queue, &format!("generated-{}", case.get()), &text)? {
                accepted.set(accepted.get() + 1);
            }
            Ok(())
        })
        .unwrap();
    let accepted = accepted.get();
    // The generator must reach the accepted side often enough to mean
    // something: 68 of 384 (18%) in a measured run; a tenth is five
    // standard deviations below that.
    assert!(accepted >= CASES / 10, "only {accepted} of {CASES} generated specs were accepted");
}

/// The edges the generator may miss, as the tester found them: each is
/// either refused by the coordinator or accepted by the worker too.
#[test]
fn the_edges_hold_on_both_sides() {
    let queue = Queue::new();
    let grid = "[grid]\ndepth = [16]\nwidth = [1]\n";
    let head = "name = \"edge\"\ndataset = \"cifar10\"\nseeds = [1]\n";
    let refused = [
        "batch_size = 1\n",
        "epochs = 4294967296\n",
        "epochs = 10\nlr_milestones = [10]\n",
        "lr_milestones = [0]\n",
        "train_subset = 100\n",
        "batch_size = 50001\n",
    ];
    for recipe in refused {
        let text = format!("{head}[recipe]\n{recipe}{grid}");
        assert!(Spec::parse(&text).is_err(), "accepted:\n{text}");
    }
    assert!(Spec::parse(&format!("{head}[grid]\ndepth = [25769803792]\nwidth = [1]\n")).is_err());
    let accepted = [
        "batch_size = 2\n",
        "batch_size = 50000\n",
        "epochs = 10\nlr_milestones = [1, 9]\n",
        "epochs = 1\nlr_milestones = []\n",
        "train_subset = 128\ntest_subset = 1\ncheckpoint_every = 0\n",
        "train_subset = 4294967295\ntest_subset = 4294967295\ncheckpoint_every = 4294967295\n",
    ];
    for (i, recipe) in accepted.iter().enumerate() {
        let text = format!("{head}[recipe]\n{recipe}{grid}");
        assert!(check_spec(&queue, &format!("edge-{i}"), &text).unwrap(), "refused:\n{text}");
    }
}

/// The shipped examples, the paper's tables included.
#[test]
fn every_example_spec_yields_jobs_a_worker_accepts() {
    let queue = Queue::new();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<_> =
        std::fs::read_dir(&root).unwrap().chain(std::fs::read_dir(root.join("paper")).unwrap()).collect();
    files.retain(|f| f.as_ref().unwrap().path().extension().is_some_and(|e| e == "toml"));
    assert!(files.len() >= 4, "examples found: {}", files.len());
    for (i, file) in files.into_iter().enumerate() {
        let path = file.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(check_spec(&queue, &format!("example-{i}"), &text).unwrap(), "{} is refused", path.display());
    }
}
