//! The command's process: started in a process group of its own, so that
//! a stop or a kill reaches every process it started (data loaders,
//! launchers), and tied to the worker, so that it dies with it.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use tokio::process::{ChildStderr, ChildStdout};
use widesweep_arch::CommandEngine;

use super::Lines;

pub(super) struct Child {
    inner: tokio::process::Child,
    /// Its pid, which is also its process group's id.
    pid: i32,
    exited: bool,
}

impl Child {
    pub(super) fn spawn(engine: &CommandEngine, cwd: &Path, env: &[(String, String)]) -> std::io::Result<Self> {
        let mut command = tokio::process::Command::new(&engine.command[0]);
        // The worker's own settings (its token above all) stay the worker's:
        // the command inherits the rest of its environment.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("WIDESWEEP_") {
                command.env_remove(&key);
            }
        }
        command
            .args(&engine.command[1..])
            .current_dir(cwd)
            .envs(&engine.env)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe, as code between fork and exec
        // must be; it only sets a flag of the new process.
        unsafe {
            command.pre_exec(|| {
                // A worker killed with SIGKILL cannot stop its command: the
                // kernel does, so that no orphan trains on a lost lease.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let inner = command.spawn()?;
        let pid = inner.id().and_then(|id| i32::try_from(id).ok()).unwrap_or(0);
        Ok(Self { inner, pid, exited: false })
    }

    pub(super) fn pid(&self) -> i32 {
        self.pid
    }

    pub(super) fn stdout(&mut self) -> Option<Lines<ChildStdout>> {
        self.inner.stdout.take().map(Lines::new)
    }

    pub(super) fn stderr(&mut self) -> Option<Lines<ChildStderr>> {
        self.inner.stderr.take().map(Lines::new)
    }

    /// Asks the whole group to stop (SIGTERM).
    pub(super) fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Kills the whole group (SIGKILL) and reaps the command.
    pub(super) async fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        if !self.exited {
            let _ = self.inner.kill().await;
            self.exited = true;
        }
    }

    pub(super) async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        let status = self.inner.wait().await;
        self.exited = true;
        // What it started and left behind goes with it.
        self.signal(libc::SIGKILL);
        status
    }

    fn signal(&self, signal: i32) {
        if self.pid > 0 {
            // SAFETY: kill(2) with a negative pid signals the process group
            // this worker created for the command, and nothing else.
            unsafe {
                libc::kill(-self.pid, signal);
            }
        }
    }
}

/// The signal that ended a process, if one did.
pub(super) fn signal_of(status: &ExitStatus) -> Option<i32> {
    status.signal()
}
