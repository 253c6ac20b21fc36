use tonic::Status;

use super::text::{MAX_ECHO_CHARS, escaped};
use crate::store::StoreError;

/// Maps store errors to gRPC status codes. Database internals reach the
/// client as generic text (and are logged in full here).
impl From<StoreError> for Status {
    fn from(error: StoreError) -> Self {
        if error.is_transient() {
            tracing::warn!(%error, "database unavailable");
            return Status::unavailable("the coordinator's database is unavailable; retry shortly");
        }
        // Messages may repeat what the client sent (a sweep's name): bounded
        // and escaped, like every echo.
        let message = escaped(&error.to_string(), MAX_ECHO_CHARS);
        match &error {
            StoreError::SweepNotFound(_)
            | StoreError::JobNotFound(_)
            | StoreError::WorkerNotFound(_)
            | StoreError::CheckpointNotFound { .. } => Status::not_found(message),
            // A fencing failure: the caller's attempt was replaced.
            StoreError::StaleAttempt { .. } => Status::aborted(message),
            StoreError::WrongLeaseToken { .. } => Status::permission_denied(message),
            StoreError::EpochOutOfRange { .. } | StoreError::InvalidReport { .. } => Status::invalid_argument(message),
            StoreError::Cancelled { .. } | StoreError::SweepConflict { .. } => Status::failed_precondition(message),
            StoreError::BadUrl(_) => Status::invalid_argument(message),
            StoreError::Database(_)
            | StoreError::Migrate(_)
            | StoreError::Corrupt(_)
            | StoreError::Interrupted(_)
            | StoreError::SchemaVersion { .. }
            | StoreError::NotWidesweep { .. }
            | StoreError::NoDatabaseFile { .. } => {
                tracing::error!(%error, "store error");
                Status::internal("internal database error (see the coordinator's log)")
            }
        }
    }
}

/// A required message field that the client left out.
pub(crate) fn missing(field: &str) -> Status {
    Status::invalid_argument(format!("missing field {field}"))
}
