use tonic::Status;

use crate::store::StoreError;

/// Maps store errors to gRPC status codes. Database internals reach the
/// client as generic text (and are logged in full here).
impl From<StoreError> for Status {
    fn from(error: StoreError) -> Self {
        if error.is_transient() {
            tracing::warn!(%error, "database unavailable");
            return Status::unavailable("the coordinator's database is unavailable; retry shortly");
        }
        match &error {
            StoreError::SweepNotFound(_)
            | StoreError::JobNotFound(_)
            | StoreError::WorkerNotFound(_)
            | StoreError::CheckpointNotFound { .. } => Status::not_found(error.to_string()),
            // A fencing failure: the caller's attempt was replaced.
            StoreError::StaleAttempt { .. } => Status::aborted(error.to_string()),
            StoreError::WrongLeaseToken { .. } => Status::permission_denied(error.to_string()),
            StoreError::EpochOutOfRange { .. } | StoreError::InvalidReport { .. } => {
                Status::invalid_argument(error.to_string())
            }
            StoreError::Cancelled { .. } | StoreError::SweepConflict { .. } => {
                Status::failed_precondition(error.to_string())
            }
            StoreError::BadUrl(_) => Status::invalid_argument(error.to_string()),
            StoreError::Database(_)
            | StoreError::Migrate(_)
            | StoreError::Corrupt(_)
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
