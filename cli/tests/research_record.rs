//! The research record with real workers on loopback: each result's
//! provenance as workers record it, a cell whose seeds read two different
//! copies of the data flagged and refused with --strict, `rerun` handing
//! exactly the odd ones out back, and `verify` reproducing results bit for
//! bit on the CPU and catching a result altered in the database.

mod common;

use std::time::Duration;

use common::*;

const LONG: Duration = Duration::from_secs(180);

fn client(cluster: &Cluster, args: &[&str]) -> std::process::Output {
    let mut command = widesweep();
    command.args(args);
    cluster.client_args(&mut command, TOKEN);
    command.output().unwrap()
}

/// A worker reading its datasets from `data` under the cluster's folder.
fn worker_on(cluster: &Cluster, name: &str, data: &str) -> Proc {
    let mut command = widesweep();
    command.args(["work", "--devices", "cpu"]);
    cluster.client_args(&mut command, TOKEN);
    command.arg("--data-dir").arg(cluster.path(data)).arg("--unofficial-dataset-sizes");
    command.arg("--scratch-dir").arg(cluster.path(&format!("scratch-{name}")));
    spawn(command, cluster.path(&format!("{name}.log")))
}

/// The ids of the jobs of `seed`, from the export's records.
fn ids(records: &[serde_json::Value], seed: u64) -> Vec<i64> {
    records.iter().filter(|r| r["seed"] == seed).map(|r| r["job_id"].as_i64().unwrap()).collect()
}

fn research_record(db: Option<String>) {
    let _serial = serial();
    let cluster = Cluster::new(db, 5);
    // A second copy of the data that differs (fewer training images).
    widesweep_worker::data::synthetic::write_idx_dataset(&cluster.path("data-b/mnist"), 96, 32).unwrap();
    let _coordinator = cluster.serve("coordinator.log");
    cluster.submit("rec", &[1, 2], &[1, 2], 1, 3);
    let first = worker_on(&cluster, "first", "data");
    let jobs = wait_for("the sweep", LONG, || all_done(&cluster.db, "rec"));
    drop(first);
    assert!(jobs.iter().all(|j| j.status == "succeeded"), "{jobs:?}");

    // Provenance as the worker recorded it, in the public results view.
    let out = client(&cluster, &["export", "rec", "--format", "jsonl"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let export = text(&out.stdout);
    let records: Vec<serde_json::Value> = export.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let first_record = &records[0];
    assert!(first_record["kernels"].as_str().unwrap().starts_with("cpu ("), "{first_record}");
    assert!(first_record["rng"].as_str().unwrap().starts_with("widesweep-rng"), "{first_record}");
    assert_eq!(first_record["dataset_sha256"].as_str().unwrap().len(), 64, "{first_record}");
    assert!(!first_record["git_commit"].as_str().unwrap().is_empty(), "{first_record}");
    assert_eq!(first_record["engine_version"].as_str().unwrap().split('.').count(), 3, "{first_record}");
    let sql = widesweep()
        .args(["sql", "--db", &cluster.db, "--format", "csv", "--privileged"])
        .arg("SELECT COUNT(DISTINCT dataset_sha256) AS hashes, COUNT(*) AS jobs FROM results WHERE sweep = 'rec'")
        .output()
        .unwrap();
    assert_eq!(text(&sql.stdout).lines().nth(1), Some("1,4"), "{}", text(&sql.stderr));

    // verify: two sampled jobs re-trained on the same build and data.
    let verifier = worker_on(&cluster, "verifier", "data");
    let out = client(&cluster, &["verify", "rec", "--sample", "2"]);
    let said = text(&out.stdout);
    assert!(out.status.success(), "{said}\n{}", text(&out.stderr));
    assert_eq!(said.matches("reproduced bit for bit").count(), 2, "{said}");
    assert!(said.contains("2 of 2 re-trained jobs reproduced"), "{said}");
    // A stored result altered behind widesweep's back is caught.
    let altered = jobs[0].id;
    alter(&cluster.db, altered);
    let out = client(&cluster, &["verify", "rec", "--all"]);
    let said = text(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains(&format!("job {altered} (")) && said.contains("NOT reproduced"), "{said}");
    assert!(said.contains("3 of 4 re-trained jobs reproduced"), "{said}");
    drop(verifier);

    // Seed 2 again, on a machine whose data differ: every cell mixes.
    let seed_2 = ids(&records, 2);
    let out = client(&cluster, &["rerun", "rec", "--where", "seed=2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed = seed_2.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(", ");
    assert!(text(&out.stdout).contains(&format!("2 job(s) of rec back in the queue to be trained again: {listed}")));
    let second = worker_on(&cluster, "second", "data-b");
    wait_for("the re-runs", LONG, || all_done(&cluster.db, "rec"));
    let out = client(&cluster, &["table", "rec", "--format", "json"]);
    let table: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for cell in table["cells"].as_array().unwrap() {
        assert_eq!(cell["provenance_differs"], serde_json::json!(["dataset_sha256"]), "{cell}");
    }
    let out = client(&cluster, &["table", "rec", "--strict"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("different dataset_sha256"), "{}", text(&out.stderr));

    // The odd ones out are seed 1's (the newest results read data-b).
    let out = client(&cluster, &["rerun", "rec", "--incomparable"]);
    let seed_1 = ids(&records, 1);
    let listed = seed_1.iter().map(|id| id.to_string()).collect::<Vec<_>>().join(", ");
    assert!(
        text(&out.stdout).contains(&format!("back in the queue to be trained again: {listed}")),
        "{}",
        text(&out.stdout)
    );
    wait_for("the odd ones out", LONG, || all_done(&cluster.db, "rec"));
    drop(second);
    let out = client(&cluster, &["table", "rec", "--strict"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// Adds a point of test error to a job's stored result, as a hand-edit of
/// the database would.
fn alter(db: &str, job_id: i64) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let sql = format!("UPDATE jobs SET final_test_error = final_test_error + 0.01 WHERE id = {job_id}");
    runtime.block_on(async {
        if db.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(db).await.unwrap();
            sqlx::query(&sql).execute(&pool).await.unwrap();
        } else {
            let pool = sqlx::PgPool::connect(db).await.unwrap();
            sqlx::query(&sql).execute(&pool).await.unwrap();
        }
    });
}

#[test]
fn research_record_on_sqlite() {
    research_record(None);
}

#[test]
fn research_record_on_postgres() {
    research_record(Some(fresh_postgres()));
}
