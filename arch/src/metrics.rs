//! One epoch's numbers: the record the trainer produces, the worker
//! reports, the coordinator stores and the reports read. One definition,
//! so that a field means the same thing (and has the same name) at every
//! step; its one wire conversion is in widesweep-proto.

use serde::{Deserialize, Serialize};

/// What one finished epoch measured. Errors are fractions in [0, 1];
/// losses, the learning rate and timings are finite and non-negative, and
/// the timings and the learning rate within what a real run can produce
/// ([`EpochMetrics::check`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based: the number of epochs completed.
    pub epoch: u32,
    /// Mean cross-entropy of the training batches (with augmentation and dropout).
    pub train_loss: f64,
    /// Error on the training batches as they were trained on.
    pub train_error: f64,
    pub test_loss: f64,
    pub test_error: f64,
    /// The learning rate the epoch trained at.
    pub lr: f64,
    /// Wall-clock seconds of the whole epoch, evaluation included.
    // Checkpoints written before the record was shared named it `seconds`.
    #[serde(alias = "seconds")]
    pub epoch_seconds: f64,
    /// Training images per second (the training pass only, not evaluation);
    /// 0 when not measured (a command engine may leave it out).
    #[serde(alias = "images_per_sec", default)]
    pub images_per_second: f64,
}

/// Why an [`EpochMetrics`] cannot be stored: the field and what is wrong.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{field} = {value} {problem}")]
pub struct MetricsError {
    pub field: &'static str,
    pub value: f64,
    pub problem: &'static str,
}

/// The longest epoch a run can report: 30 days. Stored durations feed the
/// ETAs and every device's measured rate; `epoch_seconds = 1e308` made an
/// ETA of 5e15 hours.
pub const MAX_EPOCH_SECONDS: f64 = 30.0 * 86_400.0;

/// The fastest training a device can report, in images per second (a
/// thousand times an H100 on the smallest WRN).
pub const MAX_IMAGES_PER_SECOND: f64 = 1e9;

/// The largest learning rate a run can train at.
pub const MAX_LR: f64 = 1e4;

impl EpochMetrics {
    /// The ranges every stored epoch keeps: epochs count from 1, errors
    /// are fractions, the rest finite and non-negative, and the timings
    /// and learning rate below [`MAX_EPOCH_SECONDS`],
    /// [`MAX_IMAGES_PER_SECOND`] and [`MAX_LR`].
    pub fn check(&self) -> Result<(), MetricsError> {
        if self.epoch == 0 {
            return Err(MetricsError { field: "epoch", value: 0.0, problem: "is 0: epochs count from 1" });
        }
        for (field, value) in [("train_error", self.train_error), ("test_error", self.test_error)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(MetricsError { field, value, problem: "is out of range: errors are fractions in [0, 1]" });
            }
        }
        for (field, value) in [
            ("train_loss", self.train_loss),
            ("test_loss", self.test_loss),
            ("lr", self.lr),
            ("epoch_seconds", self.epoch_seconds),
            ("images_per_second", self.images_per_second),
        ] {
            if !value.is_finite() || value < 0.0 {
                return Err(MetricsError { field, value, problem: "is invalid: use a finite value >= 0" });
            }
        }
        for (field, value, limit, problem) in [
            (
                "epoch_seconds",
                self.epoch_seconds,
                MAX_EPOCH_SECONDS,
                "is implausible: an epoch lasts at most 30 days (2592000 s)",
            ),
            (
                "images_per_second",
                self.images_per_second,
                MAX_IMAGES_PER_SECOND,
                "is implausible: at most 1e9 images per second",
            ),
            ("lr", self.lr, MAX_LR, "is implausible: a learning rate is at most 1e4"),
        ] {
            if value > limit {
                return Err(MetricsError { field, value, problem });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> EpochMetrics {
        EpochMetrics {
            epoch: 1,
            train_loss: 2.0,
            train_error: 0.5,
            test_loss: 2.1,
            test_error: 0.6,
            lr: 0.1,
            epoch_seconds: 3.0,
            images_per_second: 100.0,
        }
    }

    #[test]
    fn check_names_the_field_out_of_range() {
        assert_eq!(metrics().check(), Ok(()));
        let bad = EpochMetrics { test_error: 1.5, ..metrics() };
        assert_eq!(bad.check().unwrap_err().field, "test_error");
        let bad = EpochMetrics { lr: f64::NAN, ..metrics() };
        assert_eq!(bad.check().unwrap_err().field, "lr");
        let bad = EpochMetrics { epoch: 0, ..metrics() };
        assert_eq!(bad.check().unwrap_err().field, "epoch");
        let bad = EpochMetrics { epoch_seconds: 1e308, ..metrics() };
        assert!(bad.check().unwrap_err().to_string().contains("30 days"));
        let bad = EpochMetrics { images_per_second: 1e12, ..metrics() };
        assert_eq!(bad.check().unwrap_err().field, "images_per_second");
        assert_eq!(EpochMetrics { epoch_seconds: MAX_EPOCH_SECONDS, ..metrics() }.check(), Ok(()));
    }

    #[test]
    fn checkpoints_written_with_the_old_names_still_read() {
        let old = r#"{"epoch":1,"lr":0.1,"train_loss":2.0,"train_error":0.5,"test_loss":2.1,"test_error":0.6,"images_per_sec":100.0,"seconds":3.0}"#;
        let read: EpochMetrics = serde_json::from_str(old).unwrap();
        assert_eq!(read, metrics());
    }
}
