//! Connecting to a coordinator: one channel, the bearer token on every
//! call, TLS when the URL is https.

use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::v1::sweep_service_client::SweepServiceClient;
use crate::v1::worker_service_client::WorkerServiceClient;

/// Largest message either side accepts: checkpoint chunks are 1 MiB.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Clone, Default)]
pub struct BearerToken(Option<AsciiMetadataValue>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request.metadata_mut().insert("authorization", value.clone());
        }
        Ok(request)
    }
}

pub type SweepClient = SweepServiceClient<InterceptedService<Channel, BearerToken>>;
pub type WorkerClient = WorkerServiceClient<InterceptedService<Channel, BearerToken>>;

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("invalid coordinator URL {url:?}: {source} (expected e.g. http://127.0.0.1:7070)")]
    Url { url: String, source: tonic::transport::Error },
    #[error("invalid token: it must be printable ASCII")]
    Token,
    #[error("TLS setup for {url:?} failed: {source}")]
    Tls { url: String, source: tonic::transport::Error },
}

/// Where and how to reach a coordinator.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    pub url: String,
    pub token: Option<String>,
    /// PEM of the CA that signed the coordinator's certificate (https URLs).
    pub ca_pem: Option<Vec<u8>>,
}

#[derive(Clone)]
pub struct Clients {
    pub sweeps: SweepClient,
    pub workers: WorkerClient,
}

impl ClientOptions {
    /// A lazily connected channel: the first call connects, and a lost
    /// connection is re-established on the next call.
    pub fn connect_lazy(&self) -> Result<Clients, ConnectError> {
        let mut endpoint = Endpoint::from_shared(self.url.clone())
            .map_err(|source| ConnectError::Url { url: self.url.clone(), source })?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30));
        if self.url.starts_with("https://") {
            let mut tls = ClientTlsConfig::new().with_enabled_roots();
            if let Some(ca) = &self.ca_pem {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            endpoint =
                endpoint.tls_config(tls).map_err(|source| ConnectError::Tls { url: self.url.clone(), source })?;
        }
        let channel = endpoint.connect_lazy();
        let token = match &self.token {
            Some(token) => Some(format!("Bearer {token}").parse().map_err(|_| ConnectError::Token)?),
            None => None,
        };
        let auth = BearerToken(token);
        Ok(Clients {
            sweeps: SweepServiceClient::with_interceptor(channel.clone(), auth.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            workers: WorkerServiceClient::with_interceptor(channel, auth).max_decoding_message_size(MAX_MESSAGE_BYTES),
        })
    }
}
