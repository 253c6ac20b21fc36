use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Refuses calls without the coordinator's bearer token. With no token
/// configured every call passes (allowed on loopback, or with --insecure).
#[derive(Clone)]
pub struct RequireToken {
    /// The full expected header value, "Bearer <token>".
    expected: Option<Arc<[u8]>>,
}

impl RequireToken {
    pub fn new(token: Option<&str>) -> Self {
        Self { expected: token.map(|t| Arc::from(format!("Bearer {t}").into_bytes())) }
    }
}

impl Interceptor for RequireToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        let given = request.metadata().get("authorization").map(|v| v.as_bytes()).unwrap_or_default();
        if constant_time_eq(given, expected) {
            Ok(request)
        } else {
            Err(Status::unauthenticated("missing or wrong bearer token (pass --token or set WIDESWEEP_TOKEN)"))
        }
    }
}

/// Compares without an early exit, so response time does not reveal how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_the_bearer_token() {
        let mut auth = RequireToken::new(Some("s3cret"));
        let mut request = Request::new(());
        assert_eq!(auth.call(Request::new(())).unwrap_err().code(), tonic::Code::Unauthenticated);
        request.metadata_mut().insert("authorization", "Bearer s3cret".parse().unwrap());
        assert!(auth.call(request).is_ok());
        let mut wrong = Request::new(());
        wrong.metadata_mut().insert("authorization", "Bearer s3creT".parse().unwrap());
        assert!(auth.call(wrong).is_err());
        assert!(RequireToken::new(None).call(Request::new(())).is_ok());
    }
}
