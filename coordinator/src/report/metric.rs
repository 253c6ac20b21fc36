//! What a table's cells measure, read from one job's results.

use std::fmt;
use std::str::FromStr;

use super::ReportError;
use crate::store::{JobStatus, ResultRow};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Final test error, in percent (as the paper's tables).
    TestError,
    /// Lowest test error over the epochs, in percent.
    BestTestError,
    /// Training loss of the last epoch.
    TrainLoss,
    /// Parameters of the network (known before training).
    Params,
    /// Mean seconds per training epoch.
    EpochSeconds,
    /// Training time of the job in hours of its device.
    GpuHours,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::TestError,
        Metric::BestTestError,
        Metric::TrainLoss,
        Metric::Params,
        Metric::EpochSeconds,
        Metric::GpuHours,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Metric::TestError => "test_error",
            Metric::BestTestError => "best_test_error",
            Metric::TrainLoss => "train_loss",
            Metric::Params => "params",
            Metric::EpochSeconds => "epoch_seconds",
            Metric::GpuHours => "gpu_hours",
        }
    }

    /// A header with the unit.
    pub fn title(self) -> &'static str {
        match self {
            Metric::TestError => "test error (%)",
            Metric::BestTestError => "best test error (%)",
            Metric::TrainLoss => "train loss",
            Metric::Params => "params",
            Metric::EpochSeconds => "s/epoch",
            Metric::GpuHours => "GPU-hours",
        }
    }

    /// The job's value, or `None` while it has none. Measured metrics come
    /// from succeeded jobs only, so that a cell never mixes a finished run
    /// with one still training; the parameter count is known for every job.
    pub fn value(self, row: &ResultRow) -> Option<f64> {
        if self == Metric::Params {
            return Some(row.params as f64);
        }
        if row.status != JobStatus::Succeeded {
            return None;
        }
        match self {
            Metric::TestError => row.final_test_error.map(|e| e * 100.0),
            Metric::BestTestError => row.best_test_error.map(|e| e * 100.0),
            Metric::TrainLoss => row.final_train_loss,
            Metric::Params => unreachable!("handled above"),
            Metric::EpochSeconds => epoch_seconds(row),
            Metric::GpuHours => row.train_seconds.map(|s| s / 3600.0),
        }
    }

    /// The values the metric can take: errors are percentages, the rest
    /// are counts, losses and durations (never negative).
    pub fn range(self) -> (f64, f64) {
        match self {
            Metric::TestError | Metric::BestTestError => (0.0, 100.0),
            Metric::TrainLoss | Metric::Params | Metric::EpochSeconds | Metric::GpuHours => (0.0, f64::INFINITY),
        }
    }

    /// Formats a value of this metric for a human-readable table.
    pub fn format(self, value: f64) -> String {
        match self {
            Metric::TestError | Metric::BestTestError => format!("{value:.2}"),
            Metric::TrainLoss => format!("{value:.3}"),
            Metric::Params => format_params(value),
            Metric::EpochSeconds => format!("{value:.1}"),
            Metric::GpuHours => format!("{value:.2}"),
        }
    }
}

/// Seconds per epoch of a job: the mean over its recorded epochs, or its
/// training time over its epochs when none were recorded.
pub fn epoch_seconds(row: &ResultRow) -> Option<f64> {
    row.mean_epoch_seconds.or_else(|| match (row.train_seconds, row.epochs_done) {
        (Some(seconds), done) if done > 0 => Some(seconds / f64::from(done)),
        _ => None,
    })
}

/// Parameters as the paper writes them: 36.5M, 1.47M, 78.3k.
pub fn format_params(params: f64) -> String {
    match params {
        p if p >= 1e7 => format!("{:.1}M", p / 1e6),
        p if p >= 1e6 => format!("{:.2}M", p / 1e6),
        p if p >= 1e3 => format!("{:.1}k", p / 1e3),
        p => format!("{p:.0}"),
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = ReportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase().replace('-', "_");
        Metric::ALL.into_iter().find(|m| m.name() == name).ok_or_else(|| ReportError::UnknownName {
            what: "metric",
            plural: "metrics",
            name: s.to_string(),
            valid: Metric::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_read_like_the_papers() {
        assert_eq!(format_params(36_479_194.0), "36.5M");
        assert_eq!(format_params(1_467_610.0), "1.47M");
        assert_eq!(format_params(78_330.0), "78.3k");
        assert_eq!(format_params(512.0), "512");
    }

    #[test]
    fn names_round_trip() {
        for metric in Metric::ALL {
            assert_eq!(metric.name().parse::<Metric>().unwrap(), metric);
        }
        assert!("error".parse::<Metric>().unwrap_err().to_string().contains("test_error, best_test_error"));
    }
}
