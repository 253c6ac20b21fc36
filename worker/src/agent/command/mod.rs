//! The command engine: a slot runs a lab's own training command for a
//! job instead of training the WRN itself, and keeps every guarantee of the
//! built-in engine. The slot holds the lease and its secret; the command
//! gets the job as a JSON file and talks to its slot over a Unix socket in
//! the job's directory (mode 0700: only the worker's user reaches it).
//! Through it the command reports epochs and hands over checkpoint files,
//! which the slot sends on to the coordinator as fenced calls, exactly as
//! for the built-in engine.
//!
//! How an attempt ends:
//! - exit 0 after the last epoch: the job succeeded, with that epoch's metrics;
//! - asked to stop (worker shutdown, allocation deadline): SIGTERM to the
//!   command's process group, SIGKILL after `grace_seconds`; the job is
//!   handed back without spending an attempt, from its newest checkpoint;
//! - exit [`EXIT_DO_NOT_RETRY`]: the job's own failure, not retried;
//! - any other exit, or a signal: failed with the last lines of stderr,
//!   retried (perhaps on another machine);
//! - silent for `heartbeat_seconds`: killed as hung, failed, retried;
//! - a broken protocol (garbage, an epoch twice or past the last): killed,
//!   failed, not retried;
//! - the lease lost: killed at once, nothing more is written.

mod channel;
mod process;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::net::unix::OwnedWriteHalf;
use widesweep_arch::{CommandEngine, EpochMetrics, JobConfig, Recipe};
use widesweep_proto::v1 as pb;

use channel::{Action, Ledger, ProtocolError};
pub use channel::{MAX_LINE_BYTES, PROTOCOL};
use process::Child;

use super::checkpoints::{self, TransferError};
use super::rpc::{self, CallError, Patience};
use super::slot::{JobOutcome, Slot, SlotEvent, keep_alive};
use crate::device::DeviceSpec;

/// The exit status by which a command says "this job fails the same way
/// every time: do not retry it" (a bad parameter, a diverged run).
pub const EXIT_DO_NOT_RETRY: i32 = 3;

/// Lines of the command's stderr kept for a failed attempt's error.
const TAIL_LINES: usize = 20;

/// How an attempt's command ended, before it is reported.
enum End {
    Exited(std::process::ExitStatus),
    Protocol(ProtocolError),
    Hung(u32),
    LeaseLost(String),
    Setup(String, bool),
}

impl Slot {
    /// Runs one leased attempt of a command engine's job.
    pub(super) async fn attempt_command(&self, job: &pb::Job, config: JobConfig) -> JobOutcome {
        let patience = Patience::Job(self.shutdown.clone());
        let Some(engine) = job.command.as_ref().map(CommandEngine::from) else {
            let error = format!(
                "the job's engine {:?} is not defined by its sweep: resubmit the spec with its [engines.{}] table",
                config.engine, config.engine
            );
            return self.fail(job, error, false, pb::ErrorClass::Job).await;
        };
        let dir = self.scratch.join(format!("job-{}-{}", job.job_id, job.attempt));
        let outcome = self.run_command(job, &config, &engine, &dir, &patience).await;
        if let Err(error) = tokio::fs::remove_dir_all(&dir).await {
            tracing::debug!(%error, dir = %dir.display(), "cannot remove the job's directory");
        }
        outcome
    }

    async fn run_command(
        &self,
        job: &pb::Job,
        config: &JobConfig,
        engine: &CommandEngine,
        dir: &Path,
        patience: &Patience,
    ) -> JobOutcome {
        if let Err(error) = private_dir(dir).await {
            let error = format!("cannot create the job's directory {}: {error}", dir.display());
            return self.fail(job, error, true, pb::ErrorClass::Machine).await;
        }
        let path = dir.join("resume.ckpt");
        let resume = match self.fetch_checkpoint(job, &path, patience).await {
            Ok(epoch) => epoch.map(|epoch| (path, epoch)),
            Err(dropped) => return dropped,
        };
        let resume_epoch = resume.as_ref().map_or(0, |(_, epoch)| *epoch);
        let job_file = dir.join("job.json");
        let socket = dir.join("channel.sock");
        let description = describe(job, config, dir, resume.as_ref(), &socket, self);
        if let Err(error) = tokio::fs::write(&job_file, description.to_string()).await {
            let error = format!("cannot write {}: {error}", job_file.display());
            return self.fail(job, error, true, pb::ErrorClass::Machine).await;
        }
        let listener = match UnixListener::bind(&socket) {
            Ok(listener) => listener,
            Err(error) => {
                let error = format!(
                    "cannot open the command's channel {} ({error}); a Unix socket's path must be under 108 bytes: use a shorter --scratch-dir",
                    socket.display()
                );
                return self.fail(job, error, true, pb::ErrorClass::Machine).await;
            }
        };
        let env = [
            ("WIDESWEEP_JOB_FILE".to_string(), job_file.display().to_string()),
            ("WIDESWEEP_SOCKET".to_string(), socket.display().to_string()),
            ("CUDA_VISIBLE_DEVICES".to_string(), visible_devices(self.device_spec)),
        ];
        let cwd = engine.cwd.as_ref().map_or_else(|| PathBuf::from("."), PathBuf::from);
        let child = match Child::spawn(engine, &cwd, &env) {
            Ok(child) => child,
            Err(error) => {
                let program = &engine.command[0];
                let error = format!("cannot start the command {program:?} in {}: {error}", cwd.display());
                // The program or its directory is missing on this machine.
                return self.fail(job, error, true, pb::ErrorClass::Machine).await;
            }
        };
        let epochs = config.recipe.epochs;
        self.emit(SlotEvent::Started {
            slot: self.index,
            job_id: job.job_id,
            label: config.label(),
            epochs: epochs as usize,
            resumed_after: resume_epoch as usize,
        });
        tracing::info!(engine = %config.engine, pid = child.pid(), resume_epoch, "command started");

        let abort = Arc::new(AtomicBool::new(false));
        let lease_lost = Arc::new(AtomicBool::new(false));
        let keep_alive = tokio::spawn(keep_alive(
            self.client.clone(),
            pb::HeartbeatRequest { job_id: job.job_id, attempt: job.attempt, lease_token: job.lease_token.clone() },
            self.heartbeat_every,
            abort,
            Arc::clone(&lease_lost),
        ));
        let mut run = Run {
            slot: self,
            job,
            engine,
            patience,
            ledger: Ledger::new(epochs, resume_epoch, dir),
            history: Vec::new(),
            stopping: None,
            lease_lost,
        };
        let (end, tail) = run.supervise(child, listener).await;
        keep_alive.abort();
        let stopping = run.stopping.is_some();
        let last = run.ledger.last_epoch().unwrap_or(resume_epoch);
        let after = match last {
            0 => "before its first epoch".to_string(),
            n => format!("after epoch {n}"),
        };
        let error_of = |what: String| match tail.is_empty() {
            true => what,
            false => format!("{what}; its last lines of output:\n{}", tail.join("\n")),
        };
        match end {
            End::LeaseLost(reason) => JobOutcome::Dropped { reason },
            End::Setup(error, retryable) => self.fail(job, error, retryable, pb::ErrorClass::Machine).await,
            End::Protocol(error) => self.fail(job, format!("the command {error}"), false, pb::ErrorClass::Job).await,
            End::Hung(seconds) => {
                let error = format!(
                    "the command sent nothing on its channel for {seconds} s (heartbeat_seconds) {after}: killed as hung"
                );
                self.fail(job, error_of(error), true, pb::ErrorClass::Unknown).await
            }
            End::Exited(_) if stopping => self.release(job, last as usize, patience).await,
            End::Exited(status) if status.success() && run.ledger.finished() => {
                let provenance =
                    self.machine.command(&config.engine, engine, self.datasets.sha256(config.dataset).await);
                self.complete(job, &run.history, provenance).await
            }
            End::Exited(status) if status.success() => {
                let error = format!(
                    "the command exited with status 0 after epoch {last} of {epochs} without being asked to stop"
                );
                self.fail(job, error_of(error), false, pb::ErrorClass::Job).await
            }
            End::Exited(status) => {
                let code = status.code();
                let error = match (code, process::signal_of(&status)) {
                    (Some(EXIT_DO_NOT_RETRY), _) => {
                        format!("the command failed with exit status {EXIT_DO_NOT_RETRY} (do not retry) {after}")
                    }
                    (Some(code), _) => format!("the command failed with exit status {code} {after}"),
                    (None, Some(signal)) => format!("the command was killed by signal {signal} {after}"),
                    (None, None) => format!("the command ended abnormally {after}"),
                };
                // Exit 3 is the trainer saying the job cannot succeed; any
                // other crash may be the job's or the machine's.
                let (retryable, class) = match code {
                    Some(EXIT_DO_NOT_RETRY) => (false, pb::ErrorClass::Job),
                    _ => (true, pb::ErrorClass::Unknown),
                };
                self.fail(job, error_of(error), retryable, class).await
            }
        }
    }
}

/// One attempt's supervision: the command's channel, output and exit.
struct Run<'a> {
    slot: &'a Slot,
    job: &'a pb::Job,
    engine: &'a CommandEngine,
    patience: &'a Patience,
    ledger: Ledger,
    /// The epochs this attempt reported, in order.
    history: Vec<EpochMetrics>,
    /// When the stop was asked for; the command is killed `grace_seconds` later.
    stopping: Option<Instant>,
    lease_lost: Arc<AtomicBool>,
}

impl Run<'_> {
    /// Watches the command until it exits (or is killed); returns how it
    /// ended and the last lines it wrote to stderr (else stdout).
    async fn supervise(&mut self, mut child: Child, listener: UnixListener) -> (End, Vec<String>) {
        let heartbeat = Duration::from_secs(u64::from(self.engine.heartbeat_seconds));
        let grace = Duration::from_secs(u64::from(self.engine.grace_seconds));
        let mut last_heard = Instant::now();
        let mut reader: Option<Lines<tokio::net::unix::OwnedReadHalf>> = None;
        let mut writer: Option<OwnedWriteHalf> = None;
        let (mut stdout, mut stderr) = (child.stdout(), child.stderr());
        let (mut out_tail, mut err_tail) = (VecDeque::new(), VecDeque::new());
        let mut poll = tokio::time::interval(Duration::from_millis(200));
        let shutdown = self.slot.shutdown.clone();
        // Set once the command outlived its grace and was killed: its exit
        // is the next event, and the stop stands.
        let mut killed = false;
        let end = loop {
            let hung_at = tokio::time::Instant::from_std(last_heard + heartbeat);
            let kill_at = self.stopping.filter(|_| !killed).map(|since| tokio::time::Instant::from_std(since + grace));
            tokio::select! {
                accepted = listener.accept(), if reader.is_none() => match accepted {
                    Ok((stream, _)) => {
                        let (read, write) = stream.into_split();
                        reader = Some(Lines::new(read));
                        writer = Some(write);
                        last_heard = Instant::now();
                    }
                    Err(error) => tracing::warn!(%error, "cannot accept the command's connection"),
                },
                line = next_line(&mut reader) => match line {
                    Ok(Some(line)) => {
                        last_heard = Instant::now();
                        let was_stopping = self.stopping.is_some();
                        match self.handle(&line).await {
                            Ok(()) => {
                                // The allocation's deadline came with this
                                // epoch: the command hears it as a signal too.
                                if !was_stopping && self.stopping.is_some() {
                                    child.terminate();
                                }
                                let reply = serde_json::json!({"ok": true, "stop": self.stopping.is_some()});
                                send(&mut writer, &reply).await;
                            }
                            Err(end) => {
                                if let End::Protocol(error) = &end {
                                    send(&mut writer, &serde_json::json!({"ok": false, "error": error.to_string()})).await;
                                }
                                child.kill().await;
                                break end;
                            }
                        }
                    }
                    // The command closed its end: its exit will follow.
                    Ok(None) => reader = None,
                    Err(error) => {
                        child.kill().await;
                        break End::Protocol(error);
                    }
                },
                Some(line) = output_line(&mut stdout) => {
                    tracing::info!(target: "widesweep::command", stream = "stdout", "{line}");
                    keep(&mut out_tail, line);
                }
                Some(line) = output_line(&mut stderr) => {
                    tracing::info!(target: "widesweep::command", stream = "stderr", "{line}");
                    keep(&mut err_tail, line);
                }
                status = child.wait() => match status {
                    Ok(status) => break End::Exited(status),
                    Err(error) => break End::Setup(format!("cannot wait for the command: {error}"), true),
                },
                () = tokio::time::sleep_until(hung_at) => {
                    child.kill().await;
                    break End::Hung(self.engine.heartbeat_seconds);
                }
                () = sleep_until(kill_at) => {
                    tracing::warn!(grace_s = self.engine.grace_seconds, "the command ignored the stop request: killing it");
                    child.kill().await;
                    killed = true;
                }
                () = shutdown.requested(), if self.stopping.is_none() => self.stop(&child, "the worker is shutting down"),
                _ = poll.tick() => {
                    if self.lease_lost.load(Ordering::Relaxed) {
                        child.kill().await;
                        break End::LeaseLost("the coordinator gave the lease to another attempt".into());
                    }
                }
            }
        };
        // The rest of its output, for the error: the pipes close at its exit.
        let drain = async {
            while stdout.is_some()
                && let Some(line) = output_line(&mut stdout).await
            {
                keep(&mut out_tail, line);
            }
            while stderr.is_some()
                && let Some(line) = output_line(&mut stderr).await
            {
                keep(&mut err_tail, line);
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        child.kill().await;
        let tail = if err_tail.is_empty() { out_tail } else { err_tail };
        (end, tail.into())
    }

    /// Acts on one line of the command; an `Err` ends the attempt.
    async fn handle(&mut self, line: &str) -> Result<(), End> {
        let action = self.ledger.read(line).map_err(End::Protocol)?;
        let job = self.job;
        match action {
            Action::Nothing => Ok(()),
            Action::Report(metrics) => {
                let request = pb::ReportEpochRequest {
                    job_id: job.job_id,
                    attempt: job.attempt,
                    metrics: Some(pb::EpochMetrics::from(&metrics)),
                    lease_token: job.lease_token.clone(),
                };
                let reported = rpc::call("report an epoch", self.patience, || {
                    let (mut client, request) = (self.slot.client.clone(), request.clone());
                    async move { client.report_epoch(request).await }
                })
                .await;
                match reported {
                    Ok(_) => {}
                    Err(CallError::LeaseGone(reason)) => return Err(End::LeaseLost(reason)),
                    Err(error) => tracing::warn!(%error, epoch = metrics.epoch, "epoch report failed"),
                }
                self.history.push(metrics);
                self.slot.emit(SlotEvent::Epoch { slot: self.slot.index, job_id: job.job_id, metrics });
                let took = Duration::from_secs_f64(metrics.epoch_seconds);
                self.slot.last_epoch_ms.store(took.as_millis() as u64, Ordering::Relaxed);
                let out_of_time = self.slot.leave.deadline.is_some_and(|d| !d.allows(Some(took), SystemTime::now()));
                if out_of_time && !self.ledger.finished() && self.stopping.is_none() {
                    tracing::info!(epoch = metrics.epoch, "the allocation ends before the next epoch could finish");
                    self.stopping = Some(Instant::now());
                }
                Ok(())
            }
            Action::Upload { epoch, path } => {
                let uploaded = checkpoints::upload(
                    &self.slot.client,
                    job.job_id,
                    job.attempt,
                    &job.lease_token,
                    epoch,
                    &path,
                    self.patience,
                )
                .await;
                match uploaded {
                    Ok(stored) => {
                        tracing::info!(epoch, bytes = stored.size_bytes, "checkpoint uploaded");
                        self.ledger.stored(epoch);
                        Ok(())
                    }
                    Err(TransferError::Call(CallError::LeaseGone(reason))) => Err(End::LeaseLost(reason)),
                    // A lost checkpoint costs time if the job is interrupted, nothing else.
                    Err(error) => {
                        tracing::warn!(%error, epoch, "checkpoint upload failed; training goes on");
                        Ok(())
                    }
                }
            }
        }
    }

    /// Asks the command to checkpoint and exit: SIGTERM now (and `stop` in
    /// every reply), SIGKILL after `grace_seconds`.
    fn stop(&mut self, child: &Child, why: &str) {
        tracing::info!(why, grace_s = self.engine.grace_seconds, "asking the command to checkpoint and stop");
        self.stopping = Some(Instant::now());
        child.terminate();
    }
}

/// The job as the command reads it (`WIDESWEEP_JOB_FILE`).
fn describe(
    job: &pb::Job,
    config: &JobConfig,
    dir: &Path,
    resume: Option<&(PathBuf, u32)>,
    socket: &Path,
    slot: &Slot,
) -> serde_json::Value {
    let deadline_ms =
        slot.leave.deadline.and_then(|d| d.0.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_millis() as u64);
    serde_json::json!({
        "protocol": PROTOCOL,
        "job_id": job.job_id,
        "attempt": job.attempt,
        "sweep": job.sweep_name,
        "cell_hash": job.cell_hash,
        "engine": config.engine,
        "seed": config.seed,
        "epochs": config.recipe.epochs,
        "dataset": config.dataset.name(),
        "network": {
            "block": config.block.to_string(),
            "deepening": config.deepening,
            "blocks_per_group": config.blocks_per_group,
            "depth": config.depth,
            "width": config.width,
            "dropout": config.dropout,
        },
        "recipe": recipe_json(&config.recipe),
        "params": config.params,
        "resume": resume.map(|(path, epoch)| serde_json::json!({"checkpoint": path, "epoch": epoch})),
        "job_dir": dir,
        "socket": socket,
        "data_dir": slot.datasets.data_dir(),
        "device": slot.device_spec.to_string(),
        "deadline_unix_ms": deadline_ms,
    })
}

/// Every field of the recipe, written out (the recipe's own serde form
/// leaves fields at their default out, for the cell hash).
fn recipe_json(r: &Recipe) -> serde_json::Value {
    serde_json::json!({
        "epochs": r.epochs,
        "batch_size": r.batch_size,
        "lr": r.lr,
        "lr_milestones": r.lr_milestones,
        "lr_gamma": r.lr_gamma,
        "momentum": r.momentum,
        "nesterov": r.nesterov,
        "weight_decay": r.weight_decay,
        "reset_momentum_on_drop": r.reset_momentum_on_drop,
        "train_subset": r.train_subset,
        "test_subset": r.test_subset,
        "augment": r.augment,
        "precision": r.precision.to_string(),
        "bn_recalibration_batches": r.bn_recalibration_batches,
        "checkpoint_every": r.checkpoint_every,
    })
}

/// The command's CUDA_VISIBLE_DEVICES: the slot's GPU alone (as the
/// worker's own CUDA_VISIBLE_DEVICES names it, when it has one), none on
/// the CPU.
fn visible_devices(device: DeviceSpec) -> String {
    match device {
        DeviceSpec::Cpu => String::new(),
        DeviceSpec::Cuda(ordinal) => std::env::var("CUDA_VISIBLE_DEVICES")
            .ok()
            .and_then(|list| list.split(',').nth(ordinal).map(|d| d.trim().to_string()))
            .unwrap_or_else(|| ordinal.to_string()),
    }
}

/// A fresh directory only the worker's user can enter.
async fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if tokio::fs::try_exists(dir).await? {
        tokio::fs::remove_dir_all(dir).await?;
    }
    tokio::fs::create_dir_all(dir).await?;
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).await
}

/// Lines of at most [`MAX_LINE_BYTES`] from a stream the command writes:
/// a line that never ends cannot grow the worker's memory. Cancel-safe
/// (the partial line stays in `buf`), as `select!` needs.
struct Lines<R> {
    inner: BufReader<R>,
    buf: Vec<u8>,
}

/// What [`Lines::next`] read.
enum Read {
    Line(String),
    /// More than [`MAX_LINE_BYTES`] without a newline: the part read so far.
    TooLong(String),
    Closed,
}

impl<R: AsyncRead + Unpin> Lines<R> {
    fn new(inner: R) -> Self {
        Self { inner: BufReader::new(inner), buf: Vec::new() }
    }

    async fn next(&mut self) -> Read {
        loop {
            let room = (MAX_LINE_BYTES + 1).saturating_sub(self.buf.len()) as u64;
            let read = (&mut self.inner).take(room).read_until(b'\n', &mut self.buf).await;
            let text = |buf: &mut Vec<u8>| {
                let line = String::from_utf8_lossy(buf).trim_end_matches(['\n', '\r']).to_string();
                buf.clear();
                line
            };
            match read {
                Ok(_) if self.buf.ends_with(b"\n") => return Read::Line(text(&mut self.buf)),
                Ok(_) if self.buf.len() > MAX_LINE_BYTES => return Read::TooLong(text(&mut self.buf)),
                Ok(0) | Err(_) if self.buf.is_empty() => return Read::Closed,
                // The stream ended in the middle of a line: that line is the last.
                Ok(0) | Err(_) => return Read::Line(text(&mut self.buf)),
                Ok(_) => {}
            }
        }
    }
}

/// The next line of the channel; pending while there is none (no
/// connection yet, or closed), so that `select!` waits on the rest.
async fn next_line<R: AsyncRead + Unpin>(reader: &mut Option<Lines<R>>) -> Result<Option<String>, ProtocolError> {
    match reader {
        None => std::future::pending().await,
        Some(lines) => match lines.next().await {
            Read::Line(line) => Ok(Some(line)),
            Read::TooLong(_) => Err(ProtocolError::TooLong),
            Read::Closed => Ok(None),
        },
    }
}

/// The next line of the command's stdout or stderr (a very long one in
/// pieces); pending once closed.
async fn output_line<R: AsyncRead + Unpin>(lines: &mut Option<Lines<R>>) -> Option<String> {
    let Some(reader) = lines else { return std::future::pending().await };
    match reader.next().await {
        Read::Line(line) | Read::TooLong(line) => Some(line),
        Read::Closed => {
            *lines = None;
            None
        }
    }
}

/// Pending forever without a time.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn send(writer: &mut Option<OwnedWriteHalf>, reply: &serde_json::Value) {
    if let Some(stream) = writer {
        let mut line = reply.to_string();
        line.push('\n');
        if stream.write_all(line.as_bytes()).await.is_err() {
            *writer = None;
        }
    }
}

/// Keeps the last [`TAIL_LINES`] lines, each at most 500 characters.
fn keep(tail: &mut VecDeque<String>, line: String) {
    if tail.len() == TAIL_LINES {
        tail.pop_front();
    }
    tail.push_back(channel::truncated(&line, 500));
}
