//! How every client subcommand reaches a coordinator.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use widesweep_proto::client::{ClientOptions, Clients};

pub const DEFAULT_COORDINATOR: &str = "http://127.0.0.1:7070";

#[derive(Args, Clone, Debug)]
pub struct CoordinatorArgs {
    /// Coordinator URL (https:// for TLS).
    #[arg(long, env = "WIDESWEEP_COORDINATOR", default_value = DEFAULT_COORDINATOR)]
    pub coordinator: String,
    /// Bearer token of your role (user, worker or viewer); prefer the
    /// environment or --token-file, which `ps` does not show.
    #[arg(long, env = "WIDESWEEP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the bearer token (its first line).
    #[arg(long, value_name = "FILE", env = "WIDESWEEP_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA that signed the coordinator's TLS certificate.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
}

impl CoordinatorArgs {
    pub fn options(&self) -> anyhow::Result<ClientOptions> {
        let ca_pem = match &self.tls_ca {
            Some(path) => Some(std::fs::read(path).with_context(|| format!("reading --tls-ca {}", path.display()))?),
            None => None,
        };
        let token = crate::secrets::token_from(self.token.as_deref(), self.token_file.as_deref(), "--token-file")?;
        Ok(ClientOptions { url: self.coordinator.clone(), token, ca_pem })
    }

    pub fn connect(&self) -> anyhow::Result<Clients> {
        Ok(self.options()?.connect_lazy()?)
    }
}

/// Turns a gRPC failure into a message a user can act on.
pub fn explain(status: tonic::Status, coordinator: &str) -> anyhow::Error {
    match status.code() {
        tonic::Code::Unavailable => anyhow::anyhow!(
            "cannot reach the coordinator at {coordinator}: {} (is `widesweep serve` running there?)",
            status.message()
        ),
        _ => anyhow::anyhow!("{}", status.message()),
    }
}
