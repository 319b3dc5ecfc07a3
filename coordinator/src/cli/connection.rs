//! How the client commands reach a coordinator: its address, the admin token and the CA of its TLS
//! certificate, flattened into each command's arguments.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use sensgrid_client::{AdminClient, Tls};

/// Where the coordinator is, and the admin token.
#[derive(Args, Clone)]
pub struct Connection {
    /// The coordinator's address.
    #[arg(long, env = "SENSGRID_COORDINATOR", default_value = "http://127.0.0.1:7070")]
    coordinator: String,
    /// The admin bearer token.
    #[arg(long, env = "SENSGRID_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
    /// PEM CA certificate that signed the coordinator's TLS certificate (for an https:// address).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
}

impl Connection {
    /// An admin client of the coordinator, connected.
    ///
    /// # Errors
    /// An unreadable `--tls-ca`, a coordinator that cannot be reached, a token that cannot travel as metadata.
    pub async fn admin(&self) -> Result<AdminClient> {
        let tls = match &self.tls_ca {
            Some(path) => Some(Tls {
                ca_pem: std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
                domain: None,
            }),
            None => None,
        };
        let channel = sensgrid_client::connect(&self.coordinator, tls.as_ref()).await?;
        Ok(sensgrid_client::admin_client(channel, &self.token)?)
    }
}
