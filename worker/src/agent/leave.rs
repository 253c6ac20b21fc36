//! When a worker leaves on its own, so that a cluster allocation ends with
//! the work: after a while with no job pending (`--exit-when-idle`), and
//! before the allocation's end (`--deadline`, or Slurm's time limit), when
//! the next job or epoch could not finish and checkpoint in time.

use std::time::{Duration, SystemTime};

/// A finished epoch's checkpoint upload and report need this long beyond
/// the epoch itself, at least.
const CHECKPOINT_MARGIN: Duration = Duration::from_secs(30);

/// Epochs vary (evaluation, a slower batch): one is budgeted this much
/// longer than the last one took.
const EPOCH_SLACK: f64 = 1.25;

/// The end of the allocation the worker runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline(pub SystemTime);

impl Deadline {
    /// Whether one more epoch of about `epoch` (unknown before the first)
    /// still finishes and checkpoints before the deadline, seen at `now`.
    pub fn allows(self, epoch: Option<Duration>, now: SystemTime) -> bool {
        let needed = epoch.map_or(Duration::ZERO, |e| e.mul_f64(EPOCH_SLACK)) + CHECKPOINT_MARGIN;
        now.checked_add(needed).is_some_and(|done| done <= self.0)
    }

    /// Reads `--deadline`: seconds since the Unix epoch, or a duration from
    /// now such as `90m`, `2h` or `3600s`.
    pub fn parse(text: &str, now: SystemTime) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(seconds) = text.parse::<u64>() {
            return Ok(Self(SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)));
        }
        let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let scale = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => 0,
        };
        match number.parse::<u64>() {
            Ok(n) if scale > 0 => Ok(Self(now + Duration::from_secs(n * scale))),
            _ => Err(format!(
                "{text:?} is not a deadline: give seconds since the Unix epoch (e.g. 1767225600) or a time \
                 from now (e.g. 90m, 2h, 3600s)"
            )),
        }
    }

    /// Slurm's remaining time as `squeue -o %L` prints it: `MM:SS`,
    /// `HH:MM:SS` or `D-HH:MM:SS`; `None` for `UNLIMITED` or `NOT_SET`.
    pub fn from_slurm_time_left(text: &str, now: SystemTime) -> Option<Self> {
        let text = text.trim();
        let (days, clock) = match text.split_once('-') {
            Some((days, clock)) => (days.parse::<u64>().ok()?, clock),
            None => (0, text),
        };
        let parts: Vec<u64> = clock.split(':').map(|p| p.parse().ok()).collect::<Option<_>>()?;
        let seconds = match parts[..] {
            [m, s] => m * 60 + s,
            [h, m, s] => h * 3600 + m * 60 + s,
            _ => return None,
        };
        Some(Self(now + Duration::from_secs(days * 86_400 + seconds)))
    }

    /// The end of the Slurm job this process runs in, asked of `squeue`;
    /// `None` outside Slurm or without a time limit.
    pub fn from_slurm(now: SystemTime) -> Option<Self> {
        let job = std::env::var("SLURM_JOB_ID").ok()?;
        let output = std::process::Command::new("squeue").args(["-h", "-j", &job, "-o", "%L"]).output().ok()?;
        if !output.status.success() {
            tracing::warn!(job, "squeue could not tell the Slurm job's time left; no deadline");
            return None;
        }
        Self::from_slurm_time_left(&String::from_utf8_lossy(&output.stdout), now)
    }
}

/// When a worker's slots stop leasing jobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeavePolicy {
    /// Stop after this long with no job to lease.
    pub when_idle: Option<Duration>,
    /// Stop leasing, and hand jobs back, before this.
    pub deadline: Option<Deadline>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn an_epoch_is_allowed_only_if_it_and_its_checkpoint_fit() {
        let deadline = Deadline(at(1_000));
        assert!(deadline.allows(None, at(900)), "30 s of margin fit in 100 s");
        assert!(!deadline.allows(None, at(980)));
        // 60 s epochs are budgeted 75 s, plus 30 s: 105 s.
        assert!(deadline.allows(Some(Duration::from_secs(60)), at(895)));
        assert!(!deadline.allows(Some(Duration::from_secs(60)), at(896)));
    }

    #[test]
    fn deadlines_are_parsed_from_the_flag_and_from_slurm() {
        let now = at(10_000);
        assert_eq!(Deadline::parse("1767225600", now), Ok(Deadline(at(1_767_225_600))));
        assert_eq!(Deadline::parse("90m", now), Ok(Deadline(at(10_000 + 5_400))));
        assert_eq!(Deadline::parse("2h", now), Ok(Deadline(at(17_200))));
        assert!(Deadline::parse("soon", now).unwrap_err().contains("90m"));
        assert!(Deadline::parse("5y", now).is_err());
        assert_eq!(Deadline::from_slurm_time_left("4:30\n", now), Some(Deadline(at(10_270))));
        assert_eq!(Deadline::from_slurm_time_left("1:00:00", now), Some(Deadline(at(13_600))));
        assert_eq!(Deadline::from_slurm_time_left("2-00:00:10", now), Some(Deadline(at(10_000 + 172_810))));
        assert_eq!(Deadline::from_slurm_time_left("UNLIMITED", now), None);
        assert_eq!(Deadline::from_slurm_time_left("NOT_SET", now), None);
    }
}
