//! The results layer over real databases: tables of a sweep with known
//! results in every format, running and missing cells, baselines, exports,
//! plots, and the read-only guarantee of `widesweep sql` on both backends.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestDb, token};
use widesweep_coordinator::report::export::{ExportFormat, export};
use widesweep_coordinator::report::plot::{PlotKind, PlotOptions, plot_data, write_plot};
use widesweep_coordinator::report::sql::{SqlError, SqlValue, query, query_into, role_risks};
use widesweep_coordinator::report::table::parse_assignment;
use widesweep_coordinator::report::{Axis, Format, ReportError, TableOptions, build, default_table, render};
use widesweep_coordinator::store::{
    self, EpochMetrics, JobResult, JobStatus, LeasedJob, Provenance, Store, StoreError,
};

const LEASE: i64 = 60_000;

fn quickstart_spec() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/quickstart.toml")).unwrap()
}

/// The known final test error of a quickstart job, as a fraction: each
/// cell has a base error and seed 2 is worse by a fixed step, so that
/// medians and standard deviations are known in advance.
fn known_error(job: &LeasedJob) -> f64 {
    let c = &job.config;
    let (base, step) = match (c.block.to_string().as_str(), c.width) {
        ("B(3,3)", 1) => (0.1210, 0.0040),
        ("B(3,3)", 2) => (0.1050, 0.0080),
        ("B(1,3,1)", 1) => (0.1400, 0.0040),
        ("B(1,3,1)", 2) => (0.1150, 0.0020),
        other => panic!("no quickstart cell {other:?}"),
    };
    base + (c.seed as f64 - 1.0) * step
}

/// Seconds per epoch: wider and deeper blocks cost more.
fn known_epoch_seconds(job: &LeasedJob) -> f64 {
    1.0 + 0.5 * job.config.width as f64 + if job.config.block.to_string() == "B(3,3)" { 0.0 } else { 0.3 }
}

fn epoch(job: &LeasedJob, epoch: u32, test_error: f64) -> EpochMetrics {
    EpochMetrics {
        epoch,
        train_loss: 0.5 / epoch as f64,
        train_error: test_error * 0.8,
        test_loss: 0.6 / epoch as f64,
        test_error,
        lr: 0.05,
        epoch_seconds: known_epoch_seconds(job),
        images_per_second: 4096.0 / known_epoch_seconds(job),
    }
}

/// Trains (in name only) a leased job to its known result: every epoch
/// but the last 5 points worse than the last.
async fn finish(store: &dyn Store, job: &LeasedJob) {
    finish_as(store, job, None, 3_000).await;
}

/// [`finish`] with the provenance a worker would send, at time `now`.
async fn finish_as(store: &dyn Store, job: &LeasedJob, provenance: Option<Provenance>, now: i64) {
    let error = known_error(job);
    let epochs = job.config.recipe.epochs;
    for n in 1..epochs {
        store.report_epoch(job.fence(), &epoch(job, n, error + 0.05), LEASE, 2_000).await.unwrap();
    }
    let last = epoch(job, epochs, error);
    let result = JobResult {
        final_metrics: last,
        best_test_error: error,
        train_seconds: f64::from(epochs) * known_epoch_seconds(job),
        provenance,
    };
    store.complete_job(job.fence(), &result, now).await.unwrap();
}

/// Submits the quickstart and runs every job but the `leave` last ones.
async fn quickstart(store: &dyn Store, leave: usize) -> Vec<LeasedJob> {
    let outcome = common::submit(store, &quickstart_spec(), 0, 3).await;
    assert_eq!(outcome.new, 8);
    let worker = store.register_worker("test", &["cpu".into()], "t", 1_000).await.unwrap();
    // Leasing takes the longest jobs first; the jobs left unfinished are
    // the last by id, whatever order they were leased in.
    let mut leased = Vec::new();
    for _ in 0..8 {
        leased.push(store.lease_job(worker, "cpu", token(), LEASE, 1_000).await.unwrap().unwrap());
    }
    leased.sort_by_key(|job| job.job_id);
    let left = leased.split_off(8 - leave);
    for job in &leased {
        finish(store, job).await;
    }
    left
}

/// Submits `spec` and runs every job to its known result.
async fn run_all(store: &dyn Store, spec: &str) {
    // A higher priority than the quickstart's: its own jobs are leased first.
    let outcome = common::submit(store, spec, 1, 3).await;
    let worker = store.register_worker("test", &["cpu".into()], "t", 1_000).await.unwrap();
    for _ in 0..outcome.new {
        let job = store.lease_job(worker, "cpu", token(), LEASE, 1_000).await.unwrap().unwrap();
        finish(store, &job).await;
    }
}

fn table(rows: &[store::ResultRow], options: &TableOptions, format: Format) -> String {
    render(&build(rows, options).unwrap(), format)
}

const QUICKSTART_TEXT: &str = "\
quickstart on fashion-mnist: test error (%), median over seeds
┌──────────┬───────┬───────────────────┬────────┬─────────┬───────────────────┬────────┬─────────┐
│ block    ┆ depth ┆ k=1               ┆ k=1    ┆ k=1     ┆ k=2               ┆ k=2    ┆ k=2     │
│          ┆       ┆ test error (%)    ┆ params ┆ s/epoch ┆ test error (%)    ┆ params ┆ s/epoch │
╞══════════╪═══════╪═══════════════════╪════════╪═════════╪═══════════════════╪════════╪═════════╡
│ B(3,3)   ┆ 10    ┆ 12.30 ±0.28 (n=2) ┆  77.6k ┆     1.5 ┆ 10.90 ±0.57 (n=2) ┆ 303.4k ┆     2.0 │
│ B(1,3,1) ┆ 13    ┆ 14.20 ±0.28 (n=2) ┆  60.6k ┆     1.8 ┆ 11.60 ±0.14 (n=2) ┆ 239.4k ┆     2.3 │
└──────────┴───────┴───────────────────┴────────┴─────────┴───────────────────┴────────┴─────────┘
median test error (%) ± sample std over seeds; n = seeds with a result
95 % intervals of each cell's mean (Student t): B(3,3) / k=1: [9.76, 14.84]; B(3,3) / k=2: [5.82, 15.98]; B(1,3,1) / k=1: [11.66, 16.74]; B(1,3,1) / k=2: [10.33, 12.87]
";

const QUICKSTART_MARKDOWN: &str = "\
quickstart on fashion-mnist: test error (%), median over seeds

| block | depth | k=1 test error (%) | k=1 params | k=1 s/epoch | k=2 test error (%) | k=2 params | k=2 s/epoch |
|:---|:---|---:|---:|---:|---:|---:|---:|
| B(3,3) | 10 | 12.30 ±0.28 (n=2) | 77.6k | 1.5 | 10.90 ±0.57 (n=2) | 303.4k | 2.0 |
| B(1,3,1) | 13 | 14.20 ±0.28 (n=2) | 60.6k | 1.8 | 11.60 ±0.14 (n=2) | 239.4k | 2.3 |

- median test error (%) ± sample std over seeds; n = seeds with a result
- 95 % intervals of each cell's mean (Student t): B(3,3) / k=1: [9.76, 14.84]; B(3,3) / k=2: [5.82, 15.98]; B(1,3,1) / k=1: [11.66, 16.74]; B(1,3,1) / k=2: [10.33, 12.87]
";

const QUICKSTART_CSV: &str = "\
block,width,depth,metric,agg,value,std,ci95_lo,ci95_hi,ci95_clipped,n,jobs,succeeded,running,pending,failed,cancelled,params,epoch_seconds,job_ids,provenance_differs
\"B(3,3)\",1,10,test_error,median,12.3,0.282842712475,9.75875905277,14.8412409472,false,2,2,2,0,0,0,0,77562,1.5,\"[1,2]\",[]
\"B(3,3)\",2,10,test_error,median,10.9,0.565685424949,5.81751810553,15.9824818945,false,2,2,2,0,0,0,0,303418,2.0,\"[3,4]\",[]
\"B(1,3,1)\",1,13,test_error,median,14.2,0.282842712475,11.6587590528,16.7412409472,false,2,2,2,0,0,0,0,60634,1.8,\"[5,6]\",[]
\"B(1,3,1)\",2,13,test_error,median,11.6,0.141421356237,10.3293795264,12.8706204736,false,2,2,2,0,0,0,0,239354,2.3,\"[7,8]\",[]
";

const QUICKSTART_LATEX: &str = r"% widesweep table; needs \usepackage{booktabs}
\begin{table}[t]
\centering
\caption{quickstart on fashion-mnist: test error (\%), median over seeds}
\begin{tabular}{llrrrrrr}
\toprule
 &  & \multicolumn{3}{c}{k=1} & \multicolumn{3}{c}{k=2} \\
\cmidrule(lr){3-5} \cmidrule(lr){6-8}
block & depth & test error (\%) & params & s/epoch & test error (\%) & params & s/epoch \\
\midrule
B(3,3) & 10 & 12.30 $\pm$0.28 (n=2) & 77.6k & 1.5 & 10.90 $\pm$0.57 (n=2) & 303.4k & 2.0 \\
B(1,3,1) & 13 & 14.20 $\pm$0.28 (n=2) & 60.6k & 1.8 & 11.60 $\pm$0.14 (n=2) & 239.4k & 2.3 \\
\bottomrule
\end{tabular}
\end{table}
% median test error (%) ± sample std over seeds; n = seeds with a result
% 95 % intervals of each cell's mean (Student t): B(3,3) / k=1: [9.76, 14.84]; B(3,3) / k=2: [5.82, 15.98]; B(1,3,1) / k=1: [11.66, 16.74]; B(1,3,1) / k=2: [10.33, 12.87]
";

async fn a_finished_sweep_prints_a_paper_table_in_every_format(store: Arc<dyn Store>) {
    quickstart(&*store, 0).await;
    // What `widesweep run` prints at the end of a sweep.
    assert_eq!(default_table(&*store, "quickstart", &TableOptions::default()).await.unwrap(), QUICKSTART_TEXT);
    let rows = store.sweep_results("quickstart").await.unwrap();
    let options = TableOptions::default();
    assert_eq!(table(&rows, &options, Format::Text), QUICKSTART_TEXT);
    assert_eq!(table(&rows, &options, Format::Markdown), QUICKSTART_MARKDOWN);
    assert_eq!(table(&rows, &options, Format::Csv), QUICKSTART_CSV);
    assert_eq!(table(&rows, &options, Format::Latex), QUICKSTART_LATEX);
    check_latex(QUICKSTART_LATEX);
    let json: serde_json::Value = serde_json::from_str(&table(&rows, &options, Format::Json)).unwrap();
    assert_eq!(json["rows"], serde_json::json!(["block"]));
    assert_eq!(json["columns"], serde_json::json!(["width"]));
    assert_eq!(json["attributes"], serde_json::json!(["depth"]));
    let cells = json["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    assert_eq!(cells[3]["block"], "B(1,3,1)");
    assert_eq!(cells[3]["width"], 2);
    assert_eq!(cells[3]["value"], 11.6);
    assert_eq!(cells[3]["params"], 239_354);
    assert_eq!(cells[3]["n"], 2);

    // The axes can be chosen, and the metric and the aggregate.
    let transposed = TableOptions { rows: Some(vec![Axis::Width]), cols: Some(vec![Axis::Block]), ..options.clone() };
    let text = table(&rows, &transposed, Format::Markdown);
    assert!(text.contains("| k | B(3,3) test error (%) |"), "{text}");
    assert!(text.contains("depth also varies (10, 13) with the columns"), "{text}");
    let best =
        TableOptions { metric: "best_test_error".parse().unwrap(), agg: "min".parse().unwrap(), ..options.clone() };
    let text = table(&rows, &best, Format::Markdown);
    assert!(text.contains("min best test error (%) over seeds") && text.contains("| 12.10 (n=2) |"), "{text}");
    let params = TableOptions { metric: "params".parse().unwrap(), ..options.clone() };
    let text = table(&rows, &params, Format::Markdown);
    assert!(text.contains("| B(3,3) | 10 | 77.6k | 1.5 | 303.4k | 2.0 |"), "{text}");
    // Per seed, each cell has one value: its std is undefined, not zero.
    let per_seed = TableOptions {
        rows: Some(vec![Axis::Block, Axis::Width]),
        cols: Some(vec![Axis::Seed]),
        agg: "std".parse().unwrap(),
        extras: false,
        ..options.clone()
    };
    let text = table(&rows, &per_seed, Format::Markdown);
    assert!(text.contains("| B(3,3) | 1 | 10 | n/a (n=1) | n/a (n=1) |"), "{text}");
    let count = TableOptions { agg: "count".parse().unwrap(), extras: false, ..options.clone() };
    assert!(table(&rows, &count, Format::Markdown).contains("| B(3,3) | 10 | 2 (n=2) | 2 (n=2) |"));
}

async fn baselines_add_the_difference_to_the_baseline_cell(store: Arc<dyn Store>) {
    quickstart(&*store, 0).await;
    let rows = store.sweep_results("quickstart").await.unwrap();
    let by_block = TableOptions {
        baseline: Some(parse_assignment("block=b(3, 3)", "--baseline").unwrap()),
        extras: false,
        ..TableOptions::default()
    };
    let text = table(&rows, &by_block, Format::Markdown);
    assert!(text.contains("| k=1 test error (%) | k=1 Δ vs B(3,3) |"), "{text}");
    assert!(text.contains("| B(3,3) | 10 | 12.30 ±0.28 (n=2) | base | 10.90 ±0.57 (n=2) | base |"), "{text}");
    assert!(text.contains("| B(1,3,1) | 13 | 14.20 ±0.28 (n=2) | +1.90 | 11.60 ±0.14 (n=2) | +0.70 |"), "{text}");
    // A column axis works the same way.
    let by_width = TableOptions { baseline: Some((Axis::Width, "2".into())), extras: false, ..TableOptions::default() };
    let built = build(&rows, &by_width).unwrap();
    let deltas: Vec<Option<f64>> =
        built.rows[0].cells.iter().map(|c| c.delta.map(|d| (d * 100.0).round() / 100.0)).collect();
    assert_eq!(deltas, [Some(1.4), Some(0.0)]);
    assert!(built.rows[0].cells[1].is_baseline);
    let json: serde_json::Value = serde_json::from_str(&render(&built, Format::Json)).unwrap();
    assert_eq!(json["baseline"], serde_json::json!({"axis": "width", "value": 2}));
    assert_eq!(json["cells"][0]["delta"], 1.4);

    // The cells share seeds 1 and 2: compared seed by seed. B(1,3,1) is
    // worse than B(3,3) by the same 1.90 (k=1) and 0.70 - 0.60 (k=2)...
    let json: serde_json::Value = serde_json::from_str(&table(&rows, &by_block, Format::Json)).unwrap();
    let (k1, k2) = (&json["cells"][2], &json["cells"][3]);
    assert_eq!((k1["test"].as_str(), k1["paired_seeds"].as_u64()), (Some("sign-flip (exact)"), Some(2)));
    assert_eq!(k1["p_value"], 0.5);
    assert_eq!(k2["test"], "paired t");
    assert_eq!((json["correction"].as_str(), json["comparisons"].as_u64()), (Some("holm"), Some(2)));
    // ...and Holm doubles the smaller p-value of two.
    let adjusted = k1["p_adjusted"].as_f64().unwrap().min(k2["p_adjusted"].as_f64().unwrap());
    let smaller = k1["p_value"].as_f64().unwrap().min(k2["p_value"].as_f64().unwrap());
    assert!((adjusted - (2.0 * smaller).min(1.0)).abs() < 1e-12, "{json}");
    let text = table(&rows, &by_block, Format::Text);
    assert!(text.contains("2 comparisons to the baseline (sign-flip (exact), paired t)"), "{text}");
    assert!(text.contains("adjusted by Holm's step-down method"), "{text}");
    let none = TableOptions { correction: "none".parse().unwrap(), ..by_block.clone() };
    assert!(table(&rows, &none, Format::Text).contains("p-values not adjusted (--correction none)"));

    let error = |options: TableOptions| build(&rows, &options).unwrap_err().to_string();
    let missing = error(TableOptions { baseline: Some((Axis::Block, "B(3,1)".into())), ..TableOptions::default() });
    assert_eq!(missing, "--baseline block=B(3,1) matches nothing: the values of block are B(3,3), B(1,3,1)");
    let elsewhere = error(TableOptions { baseline: Some((Axis::Dropout, "0".into())), ..TableOptions::default() });
    assert!(elsewhere.contains("neither a row axis (block) nor a column axis (width)"), "{elsewhere}");
}

/// What a worker on machine `dataset` would record.
fn provenance(dataset: &str) -> Provenance {
    Provenance {
        widesweep_version: "0.1.0".into(),
        git_commit: "abc".into(),
        engine: "candle".into(),
        engine_version: "0.11.1".into(),
        kernels: "cpu (nhwc, f32)".into(),
        rng: "widesweep-rng 2".into(),
        dataset_sha256: dataset.into(),
        hostname: format!("host-{dataset}"),
        ..Provenance::default()
    }
}

async fn provenance_that_changes_results_is_flagged_refused_and_rerun(store: Arc<dyn Store>) {
    let outcome = common::submit(&*store, &quickstart_spec(), 0, 3).await;
    assert_eq!(outcome.new, 8);
    let worker = store.register_worker("test", &["cpu".into()], "t", 1_000).await.unwrap();
    // Seed 1 trained on one machine's copy of the data, seed 2 later on
    // another's that differs.
    for _ in 0..8 {
        let job = store.lease_job(worker, "cpu", token(), LEASE, 1_000).await.unwrap().unwrap();
        let (data, now) = if job.config.seed == 1 { ("aaaa", 3_000) } else { ("bbbb", 4_000) };
        finish_as(&*store, &job, Some(provenance(data)), now).await;
    }
    let rows = store.sweep_results("quickstart").await.unwrap();
    assert!(rows.iter().all(|r| r.provenance.as_ref().is_some_and(|p| p.hostname.starts_with("host-"))));
    let options = TableOptions::default();
    let built = build(&rows, &options).unwrap();
    assert!(built.rows.iter().flat_map(|r| &r.cells).all(|c| c.provenance_differs == ["dataset_sha256"]));
    for format in [Format::Text, Format::Markdown] {
        let text = table(&rows, &options, format);
        assert_eq!(text.matches('‡').count(), 4 + 1, "{format}: {text}");
        assert!(text.contains("4 cell(s) pool seeds trained under different provenance"), "{text}");
        assert!(text.contains("block=B(3,3), width=1 (dataset_sha256)"), "{text}");
    }
    let latex = table(&rows, &options, Format::Latex);
    assert_eq!(latex.matches("\\ddag{}").count(), 4, "{latex}");
    assert!(latex.contains("% ‡ 4 cell(s) pool seeds"), "{latex}");
    let csv = table(&rows, &options, Format::Csv);
    assert!(csv.lines().next().unwrap().contains("provenance_differs"), "{csv}");
    assert_eq!(csv.matches("dataset_sha256").count(), 4, "{csv}");
    let json: serde_json::Value = serde_json::from_str(&table(&rows, &options, Format::Json)).unwrap();
    assert_eq!(json["cells"][0]["provenance_differs"], serde_json::json!(["dataset_sha256"]));
    let strict = build(&rows, &TableOptions { strict: true, ..options.clone() }).unwrap_err();
    assert!(matches!(strict, ReportError::Incomparable { cells: 4, .. }), "{strict}");
    assert!(strict.to_string().contains("different dataset_sha256"), "{strict}");
    assert!(strict.to_string().contains("widesweep rerun SWEEP --incomparable"), "{strict}");

    // The odd ones out are seed 1's: the newest results (seed 2's) are
    // what re-runs will match.
    use widesweep_coordinator::report::rerun::select;
    let seed = |s: u64| rows.iter().filter(|r| r.config.seed == s).map(|r| r.job_id).collect::<Vec<_>>();
    assert_eq!(select(&rows, &[], true).unwrap(), seed(1));
    assert_eq!(select(&rows, &[(Axis::Seed, vec!["2".into()])], false).unwrap(), seed(2));
    let (requeued, _) = store.rerun_jobs("quickstart", &seed(1), 5_000).await.unwrap();
    assert_eq!(requeued, seed(1));
    // Only finished jobs go back: asking again requeues nothing.
    assert_eq!(store.rerun_jobs("quickstart", &seed(1), 5_000).await.unwrap().0, Vec::<i64>::new());
    let rows = store.sweep_results("quickstart").await.unwrap();
    for row in rows.iter().filter(|r| r.config.seed == 1) {
        assert_eq!((row.status, row.final_test_error, row.provenance.as_ref()), (JobStatus::Pending, None, None));
    }
    assert!(build(&rows, &TableOptions { strict: true, ..options.clone() }).is_ok());
    // The earlier attempts keep their results and provenance.
    for job_id in seed(1) {
        let attempts = store.job_detail(job_id).await.unwrap().attempts;
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].provenance.as_ref().map(|p| p.dataset_sha256.as_str()), Some("aaaa"));
        assert!(attempts[0].final_test_error.is_some());
    }
    // The re-run is a new attempt, trained from scratch on the new data.
    for _ in 0..4 {
        let job = store.lease_job(worker, "cpu", token(), LEASE, 6_000).await.unwrap().unwrap();
        assert_eq!((job.attempt, job.checkpoint.is_none()), (2, true));
        finish_as(&*store, &job, Some(provenance("bbbb")), 7_000).await;
    }
    let rows = store.sweep_results("quickstart").await.unwrap();
    assert!(build(&rows, &TableOptions { strict: true, ..options }).is_ok());

    // verify's copies: the same cells and seeds, pending, in a new sweep.
    let copied = store.copy_jobs("quickstart", &seed(2)[..2], "quickstart-verify", 8_000).await.unwrap();
    assert_eq!((copied.name.as_str(), copied.counts.pending), ("quickstart-verify", 2));
    let copies = store.sweep_results("quickstart-verify").await.unwrap();
    let originals: Vec<_> = rows.iter().filter(|r| seed(2)[..2].contains(&r.job_id)).collect();
    for (copy, original) in copies.iter().zip(originals) {
        assert_eq!((&copy.cell_hash, copy.config.seed), (&original.cell_hash, original.config.seed));
    }
    let again = store.copy_jobs("quickstart", &seed(2), "quickstart-verify", 8_000).await.unwrap_err();
    assert!(matches!(again, StoreError::SweepConflict { .. }), "{again}");
}

async fn running_failed_and_missing_cells_are_marked_never_dropped(store: Arc<dyn Store>) {
    let left = quickstart(&*store, 3).await;
    // One job trains (an epoch reported), one failed, one waits in the queue.
    store.report_epoch(left[0].fence(), &epoch(&left[0], 1, 0.2), LEASE, 2_000).await.unwrap();
    store.fail_job(left[1].fence(), "CUDA out of memory\\nat layer 3", false, 2_000).await.unwrap();
    store.release_job(left[2].fence(), 2_000).await.unwrap();
    let rows = store.sweep_results("quickstart").await.unwrap();
    let running = rows.iter().find(|r| r.job_id == left[0].job_id).unwrap();
    assert_eq!((running.status.as_str(), running.epochs_done, running.recorded_seconds), ("running", 1, 1.8));
    let text = table(&rows, &TableOptions::default(), Format::Markdown);
    assert!(
        text.contains("| B(1,3,1) | 13 | 14.00 (n=1/2, 1 running) | 60.6k | 1.8 | 1 pending, 1 failed | 239.4k | - |"),
        "{text}"
    );
    assert!(text.contains("- 5 of 8 jobs have a result; 1 running, 1 pending, 1 failed"), "{text}");
    assert!(text.contains(&format!("- job {} (seed 1) failed: CUDA out of memory\\n", left[1].job_id)), "{text}");

    // A cell the grid excludes is marked "-", never left out.
    let spec = "name = \"holes\"\ndataset = \"fashion-mnist\"\nseeds = [1]\n[recipe]\nepochs = 2\nlr_milestones = []\n\
                [grid]\nblock = [\"B(3,3)\", \"B(1,3,1)\"]\nblocks_per_group = [1]\nwidth = [1, 2]\n\
                [[exclude]]\nblock = \"B(1,3,1)\"\nwidth = 2\n";
    run_all(&*store, spec).await;
    let rows = store.sweep_results("holes").await.unwrap();
    let text = table(&rows, &TableOptions { extras: false, ..TableOptions::default() }, Format::Markdown);
    assert!(text.contains("| B(1,3,1) | 13 | 14.00 (n=1) | - |"), "{text}");
    assert!(text.contains("- = no such cell in the sweep"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&table(&rows, &TableOptions::default(), Format::Json)).unwrap();
    assert_eq!(json["cells"].as_array().unwrap().len(), 4, "the absent cell is a record too");
    assert_eq!(json["cells"][3]["jobs"], 0);
}

async fn cells_never_pool_datasets_or_other_hyperparameters(store: Arc<dyn Store>) {
    quickstart(&*store, 0).await;
    run_all(
        &*store,
        &quickstart_spec().replace("name = \"quickstart\"", "name = \"qs-mnist\"").replace("fashion-mnist", "mnist"),
    )
    .await;
    let rows =
        widesweep_coordinator::report::load_rows(&*store, &["quickstart".into(), "qs-mnist".into()]).await.unwrap();
    // By default the dataset becomes an axis: Table 4's layout.
    let built = build(&rows, &TableOptions { extras: false, ..TableOptions::default() }).unwrap();
    assert_eq!((built.row_axes.clone(), built.col_axes.clone()), (vec![Axis::Block, Axis::Width], vec![Axis::Dataset]));
    let text = render(&built, Format::Markdown);
    assert!(text.starts_with("quickstart + qs-mnist on fashion-mnist + mnist: test error (%)"), "{text}");
    assert!(text.contains("| block | k | depth | fashion-mnist test error (%) | mnist test error (%) |"), "{text}");
    // Naming rows and columns that leave the dataset out is refused...
    let mixed = build(
        &rows,
        &TableOptions { rows: Some(vec![Axis::Block]), cols: Some(vec![Axis::Width]), ..TableOptions::default() },
    )
    .unwrap_err();
    assert!(matches!(mixed, ReportError::MixedCell { axis: "dataset", .. }), "{mixed}");
    assert_eq!(
        mixed.to_string(),
        "cell block=B(3,3), width=1 would pool jobs that differ in dataset (fashion-mnist, mnist), not only in their \
         seed: name dataset in --rows or --cols, or keep one value with --where dataset=VALUE"
    );
    // ...unless a filter keeps one dataset.
    let one = TableOptions {
        rows: Some(vec![Axis::Block]),
        cols: Some(vec![Axis::Width]),
        filters: vec![(Axis::Dataset, vec!["mnist".into()])],
        ..TableOptions::default()
    };
    assert!(build(&rows, &one).is_ok());
    let nothing = TableOptions { filters: vec![(Axis::Width, vec!["3".into()])], ..TableOptions::default() };
    assert_eq!(
        build(&rows, &nothing).unwrap_err().to_string(),
        "--where width=3 matches nothing: the values of width are 1, 2"
    );

    // A resubmitted spec with another recipe leaves its old jobs out of the
    // table unless asked; asked, the recipe must be an axis.
    let longer = quickstart_spec().replace("epochs = 2", "epochs = 3");
    run_all(&*store, &longer).await;
    let rows = store.sweep_results("quickstart").await.unwrap();
    let text = table(&rows, &TableOptions::default(), Format::Markdown);
    assert!(text.contains("8 job(s) no longer in the sweep's spec are left out"), "{text}");
    let all = TableOptions { include_out_of_spec: true, ..TableOptions::default() };
    let built = build(&rows, &all).unwrap();
    assert_eq!(built.col_axes, [Axis::Recipe], "block, width, recipe: the last becomes the columns");
    let text = render(&built, Format::Markdown);
    assert!(text.contains("| epochs=2 test error (%) |") && text.contains("| epochs=3 test error (%) |"), "{text}");
    let refused = build(&rows, &TableOptions { rows: Some(vec![Axis::Block, Axis::Width]), cols: Some(vec![]), ..all });
    assert!(matches!(refused, Err(ReportError::MixedCell { axis: "recipe", .. })), "{refused:?}");
}

async fn exports_have_one_row_per_job_or_per_epoch(store: Arc<dyn Store>) {
    quickstart(&*store, 1).await;
    let rows = store.sweep_results("quickstart").await.unwrap();
    let mut csv = Vec::new();
    assert_eq!(export(&rows, None, ExportFormat::Csv, &mut csv).unwrap(), 8);
    let csv = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 9);
    assert_eq!(
        lines[0],
        "sweep,job_id,cell_hash,status,in_spec,block,l,blocks_per_group,depth,depth_convention,width,dropout,dataset,\
         engine,params_json,seed,epochs,batch_size,lr,lr_milestones,lr_gamma,momentum,nesterov,weight_decay,reset_momentum_on_drop,\
         train_subset,test_subset,augment,precision,checkpoint_every,params,forward_macs,attempt,epochs_done,final_train_loss,final_train_error,\
         final_test_loss,final_test_error,best_test_error,train_seconds,epoch_seconds,gpu_hours,created_at_ms,\
         started_at_ms,finished_at_ms,last_error,widesweep_version,git_commit,engine_version,kernels,device,\
         driver_version,cuda_version,cudnn_version,rng,dataset_sha256,hostname"
    );
    assert!(
        lines[1].starts_with("quickstart,1,")
            && lines[1].contains(
                ",succeeded,true,\"B(3,3)\",2,1,10,conv-layers,1,0.0,fashion-mnist,candle,{},1,2,16,0.05,[1],"
            ),
        "{}",
        lines[1]
    );
    // Leasing takes the longest jobs first, so the unfinished job is not the last by id.
    assert!(
        lines[1..].iter().filter(|l| l.contains(",running,")).count() == 1,
        "the unfinished job is exported too: {lines:?}"
    );

    let epochs = store.sweep_epochs("quickstart").await.unwrap();
    assert_eq!(epochs.len(), 7 * 2, "two epochs of each finished job");
    let mut jsonl = Vec::new();
    assert_eq!(export(&rows, Some(&epochs), ExportFormat::Jsonl, &mut jsonl).unwrap(), 14);
    let records: Vec<serde_json::Value> =
        String::from_utf8(jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(records[0]["epoch"], 1);
    assert_eq!(records[1]["epoch"], 2);
    assert_eq!(records[1]["test_error"], records[1]["final_test_error"]);
    assert_eq!(records[0]["lr_milestones"], serde_json::json!([1]));
    assert_eq!(records[0]["block"], "B(3,3)");
}

async fn plots_of_both_kinds_render_as_png_and_svg(store: Arc<dyn Store>) {
    quickstart(&*store, 0).await;
    let rows = store.sweep_results("quickstart").await.unwrap();
    let epochs = store.sweep_epochs("quickstart").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    for kind in [PlotKind::Curves, PlotKind::MetricVsAxis] {
        let options = PlotOptions { kind, width: 800, height: 500, ..PlotOptions::default() };
        let data = plot_data(&rows, &epochs, &options).unwrap();
        let labels: Vec<&str> = data.series.iter().map(|s| s.label.as_str()).collect();
        match kind {
            PlotKind::Curves => {
                assert_eq!(labels, ["B(3,3) k=1", "B(3,3) k=2", "B(1,3,1) k=1", "B(1,3,1) k=2"]);
                assert_eq!(
                    data.series[0].points.iter().map(|p| (p.0, round(p.1))).collect::<Vec<_>>(),
                    [(1.0, 17.3), (2.0, 12.3)]
                );
                assert_eq!(data.x_label, "epoch");
            }
            PlotKind::MetricVsAxis => {
                assert_eq!(labels, ["B(3,3)", "B(1,3,1)"], "error against width, one line per block");
                assert_eq!(
                    data.series[1].points.iter().map(|p| (p.0, round(p.1))).collect::<Vec<_>>(),
                    [(1.0, 14.2), (2.0, 11.6)]
                );
                assert_eq!(data.x_label, "width k (widening factor)");
            }
        }
        let png = dir.path().join(format!("{kind:?}.png"));
        write_plot(&data, &png, 800, 500).unwrap();
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
        let reader = decoder.read_info().unwrap();
        assert_eq!((reader.info().width, reader.info().height), (800, 500), "{kind:?}");
        let svg_path = dir.path().join(format!("{kind:?}.svg"));
        write_plot(&data, &svg_path, 800, 500).unwrap();
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("width=\"800\"") && svg.contains("height=\"500\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        for label in labels {
            assert!(
                svg.contains(&format!(">{label}<")) || svg.contains(&format!(">\n{label}\n<")),
                "legend {label} in the SVG"
            );
        }
    }
    // Along a categorical axis (block), positions are named.
    let options = PlotOptions { kind: PlotKind::MetricVsAxis, axis: Some(Axis::Block), ..PlotOptions::default() };
    let data = plot_data(&rows, &epochs, &options).unwrap();
    assert_eq!(data.x_names.as_deref(), Some(&["B(3,3)".to_string(), "B(1,3,1)".to_string()][..]));
    let bad = write_plot(&data, &dir.path().join("plot.pdf"), 100, 100).unwrap_err().to_string();
    assert!(bad.contains(".svg or .png"), "{bad}");
}

/// ListResults gives the rows and epochs the store gives, page by page.
async fn list_results_streams_what_the_store_holds(store: Arc<dyn Store>) {
    use tokio_stream::StreamExt;
    use widesweep_coordinator::service::{ServerConfig, job_epoch_from_proto, result_row_from_proto, serve};
    use widesweep_proto::client::ClientOptions;
    use widesweep_proto::v1 as pb;

    quickstart(&*store, 2).await;
    // 625 more jobs: more than one page of 500.
    common::submit(&*store, &common::spec("big", &(1..=25).collect::<Vec<_>>(), &(1..=25).collect::<Vec<_>>()), 0, 3)
        .await;
    let artifacts = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // The jobs' leases were taken at a made-up time long past: no reaper
    // may requeue them while the two reads are compared.
    let config = ServerConfig {
        artifacts_dir: artifacts.path().to_path_buf(),
        reap_interval: std::time::Duration::from_secs(3600),
        ..ServerConfig::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(Arc::clone(&store), config, listener, async {
        let _ = stopped.await;
    }));
    let mut clients = ClientOptions { url, token: None, ca_pem: None }.connect_lazy().unwrap();
    for (sweep, epochs) in [("quickstart", true), ("big", false)] {
        let request = pb::ListResultsRequest { sweep: sweep.into(), include_epochs: epochs };
        let mut pages = clients.sweeps.list_results(request).await.unwrap().into_inner();
        let (mut rows, mut got_epochs, mut count) = (Vec::new(), Vec::new(), 0);
        while let Some(page) = pages.next().await {
            let page = page.unwrap();
            count += 1;
            rows.extend(page.jobs.into_iter().map(|j| result_row_from_proto(j).unwrap()));
            got_epochs.extend(page.epochs.into_iter().map(|e| job_epoch_from_proto(e).unwrap()));
        }
        assert_eq!(rows, store.sweep_results(sweep).await.unwrap(), "{sweep}");
        if epochs {
            assert_eq!(got_epochs, store.sweep_epochs(sweep).await.unwrap());
            assert_eq!(count, 2, "one page of jobs, one of epochs");
        } else {
            assert!(got_epochs.is_empty());
            assert_eq!((rows.len(), count), (625, 2), "jobs come in pages of 500");
        }
    }
    let missing = clients
        .sweeps
        .list_results(pb::ListResultsRequest { sweep: "nope".into(), include_epochs: false })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

fn round(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

async fn read_only_stores_read_and_refuse_writes(db: &TestDb) {
    quickstart(&*db.store, 0).await;
    let reader = store::open_read_only(&db.url).await.unwrap();
    assert_eq!(reader.sweep_results("quickstart").await.unwrap().len(), 8);
    let text = default_table(&*reader, "quickstart", &TableOptions::default()).await.unwrap();
    assert_eq!(text, QUICKSTART_TEXT);
    let refused = common::try_submit(&*reader, &common::spec("more", &[1], &[1])).await;
    assert!(matches!(refused, Err(StoreError::Database(_))), "{refused:?}");
    assert!(matches!(reader.sweep_results("nope").await, Err(StoreError::SweepNotFound(_))));
}

/// The statements `widesweep sql` must refuse, on either backend.
const REFUSED: [&str; 11] = [
    "INSERT INTO sweeps (name, dataset, spec_toml, created_at_ms, updated_at_ms) VALUES ('x', 'mnist', '', 0, 0)",
    "UPDATE jobs SET status = 'failed'",
    "DELETE FROM epochs",
    "DROP TABLE checkpoints",
    "DROP VIEW results",
    "ATTACH DATABASE 'evil.db' AS evil",
    "PRAGMA journal_mode = DELETE",
    "PRAGMA user_version = 7",
    "CREATE TABLE notes (x INTEGER)",
    "SELECT 1; DELETE FROM jobs",
    "SELECT 1;\nUPDATE sweeps SET state = 'cancelled'",
];

/// The rows of jobs and epochs, read through `widesweep sql` itself.
async fn rows_of_jobs_and_epochs(db: &TestDb) -> SqlValue {
    let sql = "SELECT (SELECT COUNT(*) FROM jobs) + (SELECT COUNT(*) FROM epochs) AS n";
    query(&db.url, sql, TIMEOUT, MAX_ROWS).await.unwrap().rows[0][0].clone()
}

const TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ROWS: usize = 1_000;

async fn sql_is_read_only(db: &TestDb) {
    quickstart(&*db.store, 0).await;
    let before = rows_of_jobs_and_epochs(db).await;
    assert_eq!(before, SqlValue::Int(8 + 16));
    for statement in REFUSED {
        let error = query(&db.url, statement, TIMEOUT, MAX_ROWS).await.unwrap_err();
        assert!(matches!(error, SqlError::Refused { .. } | SqlError::Multiple { .. }), "{statement}: {error}");
    }
    // Statements that read at first sight but write, data-modifying CTEs
    // among them, are refused by the database: SQLite's compiled statement
    // says it writes, PostgreSQL's read-only transaction refuses.
    let mut sneaky = vec![
        "WITH doomed AS (SELECT id FROM jobs) UPDATE jobs SET status = 'failed' WHERE id IN (SELECT id FROM doomed)",
    ];
    match db.store.backend() {
        store::Backend::Sqlite => {
            sneaky.push("WITH doomed AS (SELECT id FROM jobs) DELETE FROM epochs WHERE job_id IN doomed");
            sneaky.push("WITH x AS (SELECT 1) INSERT INTO epochs SELECT * FROM epochs");
        }
        store::Backend::Postgres => sneaky.extend([
            "WITH doomed AS (DELETE FROM epochs RETURNING job_id) SELECT COUNT(*) FROM doomed",
            "WITH moved AS (UPDATE jobs SET status = 'failed' RETURNING id) SELECT * FROM moved",
            "EXPLAIN ANALYZE DELETE FROM epochs",
            "SELECT nextval('sweeps_id_seq')",
        ]),
    }
    for statement in sneaky {
        let error = query(&db.url, statement, TIMEOUT, MAX_ROWS).await.unwrap_err();
        assert!(matches!(error, SqlError::Writes { .. }), "{statement}: {error}");
        assert!(error.to_string().contains("read-only"), "{statement}: {error}");
    }
    if db.store.backend() == store::Backend::Postgres {
        let statement = "SELECT set_config('transaction_read_only', 'off', true)";
        let error = query(&db.url, statement, TIMEOUT, MAX_ROWS).await.unwrap_err();
        assert!(error.to_string().contains("read"), "{statement}: {error}");
    }
    assert_eq!(rows_of_jobs_and_epochs(db).await, before, "nothing changed");

    // A runaway statement is stopped by the timeout.
    let endless = match db.store.backend() {
        store::Backend::Sqlite => {
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT COUNT(*) FROM c"
        }
        store::Backend::Postgres => "SELECT pg_sleep(30)",
    };
    let started = std::time::Instant::now();
    let error = query(&db.url, endless, Duration::from_millis(500), MAX_ROWS).await.unwrap_err();
    assert!(matches!(error, SqlError::Timeout { .. }), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));

    // Reading works, with typed values.
    let result = query(
        &db.url,
        "SELECT block, width, COUNT(*) AS jobs, AVG(final_test_error) AS mean_error FROM results \
         WHERE sweep = 'quickstart' GROUP BY block, width ORDER BY block DESC, width",
        TIMEOUT,
        MAX_ROWS,
    )
    .await
    .unwrap();
    assert_eq!(result.columns, ["block", "width", "jobs", "mean_error"]);
    assert_eq!(result.rows.len(), 4);
    assert_eq!(result.cut_at, None);
    assert_eq!(result.rows[0][..3], [SqlValue::Text("B(3,3)".into()), SqlValue::Int(1), SqlValue::Int(2)]);
    let SqlValue::Float(mean) = result.rows[0][3] else { panic!("{:?}", result.rows[0][3]) };
    assert!((mean - 0.123).abs() < 1e-9);
}

/// Issue 13's finding: on PostgreSQL a `$$` that the server reads as part
/// of an identifier (`a$$`) hid the `;`s from our lexer, and the simple-query
/// protocol then ran every statement, the DELETE in a read-write transaction
/// of its own. Now the database itself decides what is one statement.
async fn sql_runs_one_statement_as_the_database_parses_it(db: &TestDb) {
    common::submit(&*db.store, &common::spec("victim", &[1, 2], &[1, 2, 3]), 0, 3).await;
    let jobs = || async { query(&db.url, "SELECT COUNT(*) AS n FROM jobs", TIMEOUT, MAX_ROWS).await.unwrap().rows };
    assert_eq!(jobs().await, [[SqlValue::Int(6)]]);
    let mut texts = vec![
        "SELECT 1 AS a$$; COMMIT; BEGIN READ WRITE; DELETE FROM jobs; COMMIT; SELECT 1 AS b$$",
        "SELECT 1 AS x$t$; COMMIT; BEGIN READ WRITE; DELETE FROM jobs; COMMIT; SELECT 2 AS y$t$",
        // Quotes and comments that hide or fake a `;`.
        "SELECT '--'; DELETE FROM jobs",
        "SELECT 1 /* ; */; DELETE FROM jobs /* ; */",
        "SELECT \"a;b\" FROM (SELECT 1 AS \"a;b\") t; DELETE FROM jobs",
        "SELECT 'it''s'; DELETE FROM jobs; --'",
        "SELECT 1 -- ;\n; SELECT 2",
        "SELECT 1;;; SELECT 2",
    ];
    match db.store.backend() {
        store::Backend::Sqlite => texts.extend([
            "SELECT [a;b] FROM (SELECT 1 AS [a;b]); DELETE FROM jobs",
            "SELECT `a;b` FROM (SELECT 1 AS `a;b`); DELETE FROM jobs",
            "SELECT 1 /* unterminated ; */ ; SELECT 2 /*",
        ]),
        store::Backend::Postgres => texts.extend([
            "SELECT $$;$$; DELETE FROM jobs",
            "SELECT E'\\''; DELETE FROM jobs; --'",
            "SELECT 1 /* a /* nested ; */ comment ; */; DELETE FROM jobs",
        ]),
    }
    for text in texts {
        let result = query(&db.url, text, TIMEOUT, MAX_ROWS).await;
        assert_eq!(jobs().await, [[SqlValue::Int(6)]], "{text} deleted jobs");
        let error = result.expect_err(text);
        assert!(matches!(error, SqlError::Multiple { .. }), "{text}: {error}");
        assert!(error.to_string().contains("only one statement is accepted"), "{text}: {error}");
    }
    // One statement however it is quoted or commented, with a trailing
    // `;`, empty statements or a comment after it.
    let mut single = vec![
        ("SELECT ';' AS semi; ", SqlValue::Text(";".into())),
        ("SELECT 'a; b' AS t;;  -- done; really", SqlValue::Text("a; b".into())),
        ("/* ; */ SELECT 2 AS n /* ; */", SqlValue::Int(2)),
    ];
    if db.store.backend() == store::Backend::Postgres {
        single.push(("SELECT $x$;$x$ AS d", SqlValue::Text(";".into())));
        // `a$$` is an identifier: what the old lexer took for a quote.
        single.push(("SELECT 3 AS a$$, ';' AS b$$", SqlValue::Int(3)));
    }
    for (text, first) in single {
        let result = query(&db.url, text, TIMEOUT, MAX_ROWS).await.unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(result.rows[0][0], first, "{text}");
    }
}

/// Values come back typed, whatever the backend sends: PostgreSQL's binary
/// NUMERIC (AVG and SUM of integers) included.
async fn sql_values_are_typed(db: &TestDb) {
    common::submit(&*db.store, &common::spec("typed", &[1, 2], &[1, 2, 3]), 0, 3).await;
    let one = |sql: &'static str| async move {
        let result = query(&db.url, sql, TIMEOUT, MAX_ROWS).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
        result.rows.into_iter().next().unwrap_or_else(|| panic!("{sql}: no row"))
    };
    assert_eq!(
        one("SELECT 1 AS i, 2.5 AS f, 'naïve; $$ ok' AS t, NULL AS n").await,
        [SqlValue::Int(1), SqlValue::Float(2.5), SqlValue::Text("naïve; $$ ok".into()), SqlValue::Null]
    );
    assert_eq!(
        one("SELECT AVG(width) AS mean, SUM(width) AS total, COUNT(*) AS n, MIN(block) AS b FROM jobs").await,
        [SqlValue::Float(1.5), SqlValue::Int(9), SqlValue::Int(6), SqlValue::Text("B(3,3)".into())]
    );
    assert_eq!(one("SELECT CAST(1 AS DOUBLE PRECISION) / 4 AS q").await, [SqlValue::Float(0.25)]);
    // An empty result still has its columns.
    let empty = query(&db.url, "SELECT id, block FROM jobs WHERE id < 0", TIMEOUT, MAX_ROWS).await.unwrap();
    assert_eq!((empty.columns, empty.rows.len(), empty.cut_at), (vec!["id".to_string(), "block".into()], 0, None));
    match db.store.backend() {
        store::Backend::Sqlite => {
            assert_eq!(one("SELECT x'deadbeef' AS b").await, [SqlValue::Blob("deadbeef".into())]);
        }
        store::Backend::Postgres => {
            let row = one(
                "SELECT TRUE AS b, 7::int2 AS s, 7::int4 AS i, 7::int8 AS l, 1e300::float8 AS d, 0.5::float4 AS r, \
                 'v'::varchar AS v, 'c'::char(3) AS c, 'n'::name AS nm, '{\"a\": 1}'::json AS j, '{\"a\": 1}'::jsonb AS jb, \
                 '\\xdeadbeef'::bytea AS by, 26::oid AS o, (-1.25)::numeric AS neg, 0.000123::numeric AS small, \
                 12345678901234567890::numeric AS huge, 'NaN'::numeric AS nan, 100000::numeric AS round",
            )
            .await;
            assert_eq!(
                row[..16],
                [
                    SqlValue::Bool(true),
                    SqlValue::Int(7),
                    SqlValue::Int(7),
                    SqlValue::Int(7),
                    SqlValue::Float(1e300),
                    SqlValue::Float(0.5),
                    SqlValue::Text("v".into()),
                    SqlValue::Text("c  ".into()),
                    SqlValue::Text("n".into()),
                    SqlValue::Text("{\"a\": 1}".into()),
                    SqlValue::Text("{\"a\": 1}".into()),
                    SqlValue::Blob("deadbeef".into()),
                    SqlValue::Int(26),
                    SqlValue::Float(-1.25),
                    SqlValue::Float(0.000123),
                    SqlValue::Float(12345678901234567890.0),
                ]
            );
            assert!(matches!(row[16], SqlValue::Float(v) if v.is_nan()), "{:?}", row[16]);
            assert_eq!(row[17], SqlValue::Int(100_000));
            assert_eq!(
                one("SELECT DATE '2024-02-29' AS d, TIMESTAMP '2024-02-29 12:34:56.5' AS ts, \
                     TIMESTAMPTZ '2024-02-29 12:34:56+00' AS tz, TIME '01:02:03' AS t, \
                     INTERVAL '1 year 2 months 3 days 04:05:06' AS i, \
                     'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u")
                .await,
                [
                    SqlValue::Text("2024-02-29".into()),
                    SqlValue::Text("2024-02-29 12:34:56.5".into()),
                    SqlValue::Text("2024-02-29 12:34:56+00".into()),
                    SqlValue::Text("01:02:03".into()),
                    SqlValue::Text("1 year 2 mons 3 days 04:05:06".into()),
                    SqlValue::Text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".into()),
                ]
            );
            // The migrations table's timestamptz and bytea read too.
            let migrations = query(&db.url, "TABLE _sqlx_migrations", TIMEOUT, MAX_ROWS).await.unwrap();
            assert!(!migrations.rows.is_empty());
            // A type without a decoder is named, with the cast that reads it.
            let error = query(&db.url, "SELECT ARRAY[1, 2] AS pair", TIMEOUT, MAX_ROWS).await.unwrap_err();
            assert!(matches!(error, SqlError::UnsupportedType { .. }), "{error}");
            let message = error.to_string();
            assert!(message.contains("\"pair\" has type INT4[]") && message.contains("::text AS pair"), "{message}");
            assert_eq!(one("SELECT ARRAY[1, 2]::text AS pair").await, [SqlValue::Text("{1,2}".into())]);
        }
    }
}

/// `--max-rows`: reading stops at the cap (an endless result returns at
/// once) and the result says that it was cut, in every format.
async fn sql_cuts_results_at_max_rows(db: &TestDb) {
    common::submit(&*db.store, &common::spec("many", &[1, 2], &[1, 2, 3]), 0, 3).await;
    let ids = "SELECT id FROM jobs ORDER BY id";
    let cut = query(&db.url, ids, TIMEOUT, 4).await.unwrap();
    assert_eq!((cut.rows.len(), cut.cut_at), (4, Some(4)));
    for format in Format::ALL {
        let text = render::render_query(&cut, format);
        match format {
            Format::Csv | Format::Json => assert!(!text.contains("cut at"), "{format}: data only\n{text}"),
            _ => assert!(
                text.contains("cut at 4 rows: the result has more; raise --max-rows or page with LIMIT and OFFSET"),
                "{format}: {text}"
            ),
        }
    }
    // Exactly as many rows as the cap is not a cut.
    let all = query(&db.url, ids, TIMEOUT, 6).await.unwrap();
    assert_eq!((all.rows.len(), all.cut_at), (6, None));
    assert!(render::render_query(&all, Format::Text).contains("(6 rows)"));

    let endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c";
    let started = std::time::Instant::now();
    let first = query(&db.url, endless, TIMEOUT, 3).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "streamed, not read to the end: {:?}", started.elapsed());
    assert_eq!(first.rows, [[SqlValue::Int(1)], [SqlValue::Int(2)], [SqlValue::Int(3)]]);
    assert_eq!(first.cut_at, Some(3));

    // The CSV and JSON writers print rows as they come, and read back.
    for format in [Format::Csv, Format::Json] {
        let mut writer = render::QueryWriter::new(format, Vec::new()).unwrap();
        let streamed = query_into(&db.url, ids, TIMEOUT, 4, &mut writer).await.unwrap();
        assert_eq!((streamed.rows, streamed.cut_at), (4, Some(4)));
        let text = String::from_utf8(writer.finish().unwrap()).unwrap();
        assert_eq!(text, render::render_query(&cut, format), "{format}");
    }
    assert_eq!(render::render_query(&cut, Format::Csv).lines().count(), 5);
    let json: serde_json::Value = serde_json::from_str(&render::render_query(&cut, Format::Json)).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 4);
}

/// Every example query of the documentation (README.md and the guides in
/// docs/, wherever the ```sql blocks live) runs on both databases.
async fn the_documented_queries_run(db: &TestDb) {
    quickstart(&*db.store, 0).await;
    let queries = documented_queries(&documentation());
    assert!(queries.len() >= 5, "the documentation has its example queries: {queries:?}");
    for sql in queries {
        let sql = sql.replace("'block-types'", "'quickstart'").replace("job_id = 17", "job_id = 1");
        let result = query(&db.url, &sql, TIMEOUT, MAX_ROWS).await;
        let result = result.unwrap_or_else(|e| panic!("{sql}\n{e}"));
        assert!(!result.rows.is_empty() || sql.contains("'failed'"), "{sql} returned nothing");
    }
}

/// README.md, then every docs/*.md in name order, concatenated.
fn documentation() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut guides: Vec<_> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    guides.sort();
    let files = std::iter::once(root.join("README.md")).chain(guides);
    let texts: Vec<String> = files
        .map(|path| std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect();
    texts.join("\n")
}

/// The statements of the ```sql blocks of `docs` (one per `;`).
fn documented_queries(docs: &str) -> Vec<String> {
    let mut out = Vec::new();
    for block in docs.split("```sql\n").skip(1) {
        let body = block.split("```").next().unwrap();
        let mut current = String::new();
        for line in body.lines() {
            if line.trim_start().starts_with("--") && current.trim().is_empty() {
                continue;
            }
            current.push_str(line);
            current.push('\n');
            if line.trim_end().ends_with(';') {
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// The structure of a LaTeX table: balanced braces and environments, and
/// every row with as many cells as the tabular has columns.
fn check_latex(latex: &str) {
    let body: Vec<&str> = latex.lines().filter(|l| !l.starts_with('%')).collect();
    let mut depth = 0i32;
    for line in &body {
        let mut escaped = false;
        for c in line.chars() {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '{') => depth += 1,
                (false, '}') => depth -= 1,
                (false, '%' | '_' | '#' | '$') if c != '$' || !line.contains("\\pm") => {
                    panic!("unescaped {c} in {line}")
                }
                _ => escaped = false,
            }
            assert!(depth >= 0, "unbalanced braces in {line}");
        }
    }
    assert_eq!(depth, 0);
    let begins: Vec<&&str> = body.iter().filter(|l| l.starts_with("\\begin{")).collect();
    let ends: Vec<&&str> = body.iter().filter(|l| l.starts_with("\\end{")).collect();
    assert_eq!(begins.len(), ends.len());
    let spec = body.iter().find_map(|l| l.strip_prefix("\\begin{tabular}{")).unwrap().trim_end_matches('}');
    let midrule = body.iter().position(|l| *l == "\\midrule").unwrap();
    let bottom = body.iter().position(|l| *l == "\\bottomrule").unwrap();
    for line in &body[midrule - 1..bottom] {
        if *line == "\\midrule" {
            continue;
        }
        assert!(line.ends_with(" \\\\"), "row ends with \\\\: {line}");
        assert_eq!(line.matches(" & ").count() + 1, spec.len(), "cells of {line}");
    }
}

contract_tests!(
    a_finished_sweep_prints_a_paper_table_in_every_format,
    baselines_add_the_difference_to_the_baseline_cell,
    provenance_that_changes_results_is_flagged_refused_and_rerun,
    running_failed_and_missing_cells_are_marked_never_dropped,
    cells_never_pool_datasets_or_other_hyperparameters,
    exports_have_one_row_per_job_or_per_epoch,
    plots_of_both_kinds_render_as_png_and_svg,
    list_results_streams_what_the_store_holds,
);

/// `widesweep sql` names what its role may do beyond reading: the test
/// server's superuser, a role that may write a table, and none for a reader.
#[tokio::test]
async fn roles_that_can_do_more_than_read_are_named() {
    use sqlx::Connection;
    let db = TestDb::postgres().await;
    let risks = role_risks(&db.url).await.unwrap();
    assert!(risks.iter().any(|r| r == "is a superuser"), "{risks:?}");
    let role = format!("widesweep_reader_{}", std::process::id());
    let name = db.url.rsplit('/').next().unwrap().to_string();
    let mut admin = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for statement in [
        format!("DROP ROLE IF EXISTS {role}"),
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT CONNECT ON DATABASE {name} TO {role}"),
        format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}"),
    ] {
        sqlx::query(&statement).execute(&mut admin).await.unwrap();
    }
    let (scheme_user, host) = db.url.split_once('@').unwrap();
    let scheme = &scheme_user[..scheme_user.find("://").unwrap() + 3];
    let reader_url = format!("{scheme}{role}@{host}");
    assert_eq!(role_risks(&reader_url).await.unwrap(), Vec::<String>::new());
    sqlx::query(&format!("GRANT UPDATE ON jobs TO {role}")).execute(&mut admin).await.unwrap();
    assert_eq!(role_risks(&reader_url).await.unwrap(), vec!["may write the table jobs".to_string()]);
    sqlx::query(&format!("ALTER ROLE {role} REPLICATION")).execute(&mut admin).await.unwrap();
    let risks = role_risks(&reader_url).await.unwrap();
    assert!(risks.iter().any(|r| r.starts_with("may start replication")), "{risks:?}");
    for statement in [
        format!("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {role}"),
        format!("REVOKE CONNECT ON DATABASE {name} FROM {role}"),
    ] {
        sqlx::query(&statement).execute(&mut admin).await.unwrap();
    }
    admin.close().await.unwrap();
    db.finish().await;
    let mut admin = sqlx::PgConnection::connect(&common::admin_url()).await.unwrap();
    sqlx::query(&format!("DROP ROLE IF EXISTS {role}")).execute(&mut admin).await.unwrap();
    // SQLite's file is opened read-only: nothing to name.
    assert!(role_risks("sqlite:///nonexistent.db").await.unwrap().is_empty());
}

url_tests!(
    read_only_stores_read_and_refuse_writes,
    sql_is_read_only,
    sql_runs_one_statement_as_the_database_parses_it,
    sql_values_are_typed,
    sql_cuts_results_at_max_rows,
    the_documented_queries_run,
);
