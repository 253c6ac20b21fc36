//! The one conversion between the wire's `EpochMetrics` and
//! widesweep-arch's, which the trainer produces and the store keeps.
//! Reading checks the ranges ([`EpochMetrics::check`]): a report enters
//! here, so the store never sees a value it would have to refuse.

use widesweep_arch::{EpochMetrics, MetricsError};

use crate::v1 as pb;

impl From<&EpochMetrics> for pb::EpochMetrics {
    fn from(m: &EpochMetrics) -> Self {
        pb::EpochMetrics {
            epoch: m.epoch,
            train_loss: m.train_loss,
            train_error: m.train_error,
            test_loss: m.test_loss,
            test_error: m.test_error,
            lr: m.lr,
            epoch_seconds: m.epoch_seconds,
            images_per_second: m.images_per_second,
        }
    }
}

impl TryFrom<&pb::EpochMetrics> for EpochMetrics {
    type Error = MetricsError;

    fn try_from(m: &pb::EpochMetrics) -> Result<Self, Self::Error> {
        let metrics = EpochMetrics {
            epoch: m.epoch,
            train_loss: m.train_loss,
            train_error: m.train_error,
            test_loss: m.test_loss,
            test_error: m.test_error,
            lr: m.lr,
            epoch_seconds: m.epoch_seconds,
            images_per_second: m.images_per_second,
        };
        metrics.check()?;
        Ok(metrics)
    }
}
