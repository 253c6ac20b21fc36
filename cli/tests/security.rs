//! The bearer token and TLS, with real processes: a wrong token is refused
//! with a reason, and a whole job runs over TLS with a private CA.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_worker_with_a_wrong_token_is_refused_and_says_why() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5);
    let _coordinator = cluster.serve("coordinator.log");
    let out = cluster.work_command("intruder", "wrong-token").output().unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("refused") && stderr.contains("token"), "{stderr}");
}

#[test]
fn a_sweep_runs_over_tls_and_clients_without_the_ca_are_refused() {
    let _serial = serial();
    let cluster = Cluster::new(None, 5).with_tls();
    let _coordinator = cluster.serve("coordinator.log");
    cluster.submit("tls", &[1], &[1], 2, 2);
    let _worker = cluster.work("worker");
    let jobs = wait_for("the job over TLS", Duration::from_secs(120), || all_done(&cluster.db, "tls"));
    assert_eq!(jobs[0].status, "succeeded", "{jobs:?}");

    // Without the CA the certificate cannot be trusted.
    let out = widesweep().args(["status", "tls", "--coordinator", &cluster.url(), "--token", TOKEN]).output().unwrap();
    assert!(!out.status.success(), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot reach the coordinator"), "{stderr}");
}

/// `sql` refuses a PostgreSQL role that can do more than read, saying what
/// it can do and how to go on; `--privileged` runs the statement anyway.
#[test]
fn sql_refuses_a_privileged_role_unless_told() {
    let url = fresh_postgres();
    let refused = widesweep().args(["sql", "SELECT 1 AS one", "--db", &url]).output().unwrap();
    let stderr = text(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("is a superuser") && stderr.contains("--privileged"), "{stderr}");
    assert!(!stderr.contains(&url), "the URL may hold a password: {stderr}");
    let allowed =
        widesweep().args(["sql", "SELECT 1 AS one", "--db", &url, "--privileged", "--format", "csv"]).output().unwrap();
    assert!(allowed.status.success(), "{}", text(&allowed.stderr));
    assert_eq!(text(&allowed.stdout), "one\n1\n");
}
