//! The channel between a slot and the command it runs: JSON lines over a
//! Unix socket in the job's own directory. The command sends; every line
//! gets one line back, `{"ok": true, "stop": false}`, or `{"ok": false,
//! "error": "..."}` after which the worker ends the command.
//!
//! What the command sends is checked here, before anything reaches the
//! coordinator: a malformed line, an epoch reported twice, out of order or
//! past the last, a checkpoint of an epoch not yet reported, each is a
//! [`ProtocolError`] naming what was wrong.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use widesweep_arch::EpochMetrics;

/// The protocol's version; the job file and `hello` carry it.
pub const PROTOCOL: u32 = 1;

/// The longest line a command may send, in bytes.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// One message of a command.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Message {
    /// Optional first message: the protocol the command speaks.
    Hello {
        protocol: u32,
        #[serde(default)]
        client: Option<String>,
    },
    /// An epoch finished: [`EpochMetrics`]'s fields (`images_per_second`
    /// may be left out).
    Epoch(EpochMetrics),
    /// A checkpoint of the state after `epoch`, at `path` (relative paths
    /// from the job's directory), to be uploaded.
    Checkpoint { epoch: u32, path: String },
    /// Alive, with nothing to report.
    Heartbeat {},
}

/// What the command did wrong; it fails the attempt, not retried: the
/// same command does the same again.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ProtocolError {
    #[error("sent a line that is not a message ({reason}): {line:?}")]
    Garbage { line: String, reason: String },
    #[error("sent a line longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
    #[error(
        "speaks protocol {0}; this worker speaks protocol {PROTOCOL} (install the widesweep package of the worker's version)"
    )]
    Version(u32),
    #[error("reported epoch {epoch} twice")]
    Twice { epoch: u32 },
    #[error("reported epoch {epoch} after epoch {last}: epochs are reported in order, one at a time")]
    OutOfOrder { epoch: u32, last: u32 },
    #[error("reported epoch {epoch}, past the job's last ({epochs})")]
    PastLast { epoch: u32, epochs: u32 },
    #[error("started at epoch {epoch}, but the job resumes after epoch {resume} (or starts at 1)")]
    BadStart { epoch: u32, resume: u32 },
    #[error("reported metrics the coordinator would refuse: {0}")]
    Metrics(String),
    #[error("handed over a checkpoint of epoch {epoch}, which it has not reported (last reported: {last})")]
    CheckpointAhead { epoch: u32, last: u32 },
    #[error("handed over a checkpoint of epoch {epoch}, not newer than the one already stored ({stored})")]
    CheckpointStale { epoch: u32, stored: u32 },
    #[error("handed over a checkpoint at {path} that is not a readable file: {reason}")]
    CheckpointFile { path: String, reason: String },
}

/// What the slot does with a valid message.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Nothing,
    Report(EpochMetrics),
    Upload { epoch: u32, path: PathBuf },
}

/// The state of one attempt's channel: what the command reported so far.
#[derive(Clone, Debug)]
pub struct Ledger {
    epochs: u32,
    /// The checkpoint epoch the attempt resumed from (0: none).
    resume: u32,
    /// The last epoch this attempt reported (None: none yet).
    last: Option<u32>,
    /// The newest checkpoint epoch the coordinator holds.
    stored: u32,
    job_dir: PathBuf,
}

impl Ledger {
    pub fn new(epochs: u32, resume: u32, job_dir: &Path) -> Self {
        Self { epochs, resume, last: None, stored: resume, job_dir: job_dir.to_path_buf() }
    }

    pub fn last_epoch(&self) -> Option<u32> {
        self.last
    }

    pub fn finished(&self) -> bool {
        self.last == Some(self.epochs)
    }

    /// Reads and checks one line.
    pub fn read(&mut self, line: &str) -> Result<Action, ProtocolError> {
        let message: Message = serde_json::from_str(line.trim())
            .map_err(|e| ProtocolError::Garbage { line: truncated(line.trim_end(), 200), reason: e.to_string() })?;
        match message {
            Message::Hello { protocol, .. } if protocol != PROTOCOL => Err(ProtocolError::Version(protocol)),
            Message::Hello { .. } | Message::Heartbeat {} => Ok(Action::Nothing),
            Message::Epoch(metrics) => {
                let epoch = metrics.epoch;
                if epoch > self.epochs {
                    return Err(ProtocolError::PastLast { epoch, epochs: self.epochs });
                }
                match self.last {
                    Some(last) if epoch == last => return Err(ProtocolError::Twice { epoch }),
                    Some(last) if epoch != last + 1 => return Err(ProtocolError::OutOfOrder { epoch, last }),
                    // The first report: after the resumed epoch, or a run
                    // that chose to start over.
                    None if epoch != self.resume + 1 && epoch != 1 => {
                        return Err(ProtocolError::BadStart { epoch, resume: self.resume });
                    }
                    _ => {}
                }
                metrics.check().map_err(|e| ProtocolError::Metrics(e.to_string()))?;
                if self.last.is_none() && epoch == 1 {
                    // Started over: an older checkpoint says nothing of this run.
                    self.stored = 0;
                }
                self.last = Some(epoch);
                Ok(Action::Report(metrics))
            }
            Message::Checkpoint { epoch, path } => {
                let last = self.last.unwrap_or(self.resume);
                if epoch > last {
                    return Err(ProtocolError::CheckpointAhead { epoch, last });
                }
                if epoch <= self.stored {
                    return Err(ProtocolError::CheckpointStale { epoch, stored: self.stored });
                }
                let path = self.job_dir.join(&path);
                match std::fs::metadata(&path) {
                    Ok(meta) if meta.is_file() => {}
                    Ok(_) => {
                        return Err(ProtocolError::CheckpointFile {
                            path: path.display().to_string(),
                            reason: "not a regular file".into(),
                        });
                    }
                    Err(e) => {
                        return Err(ProtocolError::CheckpointFile {
                            path: path.display().to_string(),
                            reason: e.to_string(),
                        });
                    }
                }
                Ok(Action::Upload { epoch, path })
            }
        }
    }

    /// Records that the coordinator holds the checkpoint of `epoch`.
    pub fn stored(&mut self, epoch: u32) {
        self.stored = self.stored.max(epoch);
    }
}

/// At most `max_chars` characters of `line` (then `...`).
pub(super) fn truncated(line: &str, max_chars: usize) -> String {
    match line.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}...", &line[..at]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(n: u32) -> String {
        format!(
            r#"{{"type":"epoch","epoch":{n},"train_loss":0.5,"train_error":0.1,"test_loss":0.6,"test_error":0.2,"lr":0.1,"epoch_seconds":1.0}}"#
        )
    }

    #[test]
    fn epochs_come_in_order_once_each_up_to_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::new(3, 0, dir.path());
        assert!(matches!(ledger.read(&epoch(1)), Ok(Action::Report(m)) if m.epoch == 1));
        assert_eq!(ledger.read(&epoch(1)), Err(ProtocolError::Twice { epoch: 1 }));
        assert_eq!(ledger.read(&epoch(3)), Err(ProtocolError::OutOfOrder { epoch: 3, last: 1 }));
        assert!(ledger.read(&epoch(2)).is_ok());
        assert!(ledger.read(&epoch(3)).is_ok());
        assert!(ledger.finished());
        assert_eq!(ledger.read(&epoch(4)), Err(ProtocolError::PastLast { epoch: 4, epochs: 3 }));
    }

    #[test]
    fn a_resumed_run_starts_after_its_checkpoint_or_from_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::new(5, 2, dir.path());
        assert_eq!(ledger.read(&epoch(2)), Err(ProtocolError::BadStart { epoch: 2, resume: 2 }));
        assert!(ledger.read(&epoch(3)).is_ok());
        let mut over = Ledger::new(5, 2, dir.path());
        assert!(over.read(&epoch(1)).is_ok(), "a command may ignore the checkpoint and start over");
    }

    #[test]
    fn garbage_bad_metrics_and_other_protocols_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::new(3, 0, dir.path());
        assert!(matches!(ledger.read("hello there"), Err(ProtocolError::Garbage { .. })));
        assert!(matches!(ledger.read(r#"{"type":"epoch","epoch":1}"#), Err(ProtocolError::Garbage { .. })));
        assert!(matches!(ledger.read(r#"{"type":"launch"}"#), Err(ProtocolError::Garbage { .. })));
        assert_eq!(ledger.read(r#"{"type":"hello","protocol":9}"#), Err(ProtocolError::Version(9)));
        assert_eq!(ledger.read(r#"{"type":"hello","protocol":1,"client":"t"}"#), Ok(Action::Nothing));
        let percent = epoch(1).replace("\"test_error\":0.2", "\"test_error\":20.0");
        assert!(matches!(ledger.read(&percent), Err(ProtocolError::Metrics(m)) if m.contains("test_error")));
        assert_eq!(ledger.last_epoch(), None, "a refused report records nothing");
    }

    #[test]
    fn checkpoints_follow_reported_epochs_and_name_real_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.pt"), b"state").unwrap();
        let mut ledger = Ledger::new(3, 0, dir.path());
        let at = |epoch: u32, path: &str| format!(r#"{{"type":"checkpoint","epoch":{epoch},"path":"{path}"}}"#);
        assert_eq!(ledger.read(&at(1, "c.pt")), Err(ProtocolError::CheckpointAhead { epoch: 1, last: 0 }));
        ledger.read(&epoch(1)).unwrap();
        assert!(matches!(ledger.read(&at(1, "missing.pt")), Err(ProtocolError::CheckpointFile { .. })));
        assert_eq!(ledger.read(&at(1, "c.pt")), Ok(Action::Upload { epoch: 1, path: dir.path().join("c.pt") }));
        ledger.stored(1);
        assert_eq!(ledger.read(&at(1, "c.pt")), Err(ProtocolError::CheckpointStale { epoch: 1, stored: 1 }));
    }
}
