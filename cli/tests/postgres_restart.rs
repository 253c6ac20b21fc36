//! The coordinator rides out a PostgreSQL restart mid-sweep. The test runs
//! its own PostgreSQL server (initdb in a temporary directory, on a free
//! port) so that restarting it disturbs nothing else on the machine.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const EPOCHS: i64 = 5;

fn pg_bin(tool: &str) -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<_> = std::fs::read_dir(root)
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (scripts/setup.sh installs them)")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    versions.sort();
    versions.last().expect("a PostgreSQL version").join("bin").join(tool)
}

/// A PostgreSQL server of this test's own. initdb and postgres refuse to
/// run as root, so under root they run as the `postgres` user.
struct Postgres {
    dir: PathBuf,
    port: u16,
}

impl Postgres {
    fn command(tool: &str) -> Command {
        let as_root = Command::new("id").arg("-u").output().map(|o| text(&o.stdout).trim() == "0").unwrap_or(false);
        if as_root {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(pg_bin(tool));
            command
        } else {
            Command::new(pg_bin(tool))
        }
    }

    fn init(parent: &Path) -> Self {
        let dir = parent.join("pgdata");
        std::fs::create_dir_all(&dir).unwrap();
        // The server's user must own its directory and reach it.
        let _ = Command::new("chown").args(["-R", "postgres"]).arg(parent).status();
        let _ = Command::new("chmod").args(["755"]).arg(parent).status();
        let out = Self::command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb failed: {}{}", text(&out.stdout), text(&out.stderr));
        let pg = Self { dir, port: free_port() };
        pg.ctl("start");
        pg
    }

    fn ctl(&self, action: &str) {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        let out = Self::command("pg_ctl")
            .args([action, "-w", "-m", "fast", "-D"])
            .arg(&self.dir)
            .args(["-o", &options, "-l"])
            .arg(self.dir.join("server.log"))
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl {action} failed: {}{}", text(&out.stdout), text(&out.stderr));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Self::command("pg_ctl").args(["stop", "-m", "immediate", "-D"]).arg(&self.dir).output();
    }
}

#[test]
fn the_coordinator_rides_out_a_postgres_restart() {
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let pg = Postgres::init(scratch.path());
    let cluster = Cluster::new(Some(pg.url()), 10);
    let mut coordinator = cluster.serve("coordinator.log");
    cluster.submit("pg-restart", &[1], &[1, 2], EPOCHS as u32, 3);
    let _worker = cluster.work("worker");
    wait_for("the first epochs", Duration::from_secs(120), || {
        jobs(&cluster.db, "pg-restart").iter().any(|j| j.epochs.len() >= 2).then_some(())
    });

    pg.ctl("stop");
    std::thread::sleep(Duration::from_secs(2));
    pg.ctl("start");

    let jobs = wait_for("the sweep to finish", Duration::from_secs(120), || all_done(&cluster.db, "pg-restart"));
    assert!(coordinator.is_running(), "the coordinator died: {}", coordinator.log_text());
    assert_eq!(jobs.len(), 2);
    for job in &jobs {
        assert_eq!(job.status, "succeeded", "{job:?}");
        let numbers: Vec<i64> = job.epochs.iter().map(|(e, _)| *e).collect();
        assert_eq!(numbers, (1..=EPOCHS).collect::<Vec<_>>());
    }
}
