//! `worker join`: works for a coordinator until interrupted (see `crate::join`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use sensgrid_client::Tls;

use crate::exec::parse_device;
use crate::join::{self, Options};

#[derive(clap::Args)]
pub struct Args {
    /// The coordinator's gRPC address: http://HOST:7070, or https://HOST:7070 with --tls-ca.
    #[arg(long)]
    coordinator: String,
    /// The worker token (the coordinator's --worker-token).
    #[arg(long, env = "SENSGRID_WORKER_TOKEN", hide_env_values = true)]
    token: String,
    /// PEM certificate of the CA that signed the coordinator's certificate (for https).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// The name the coordinator's certificate is checked against (default: the host of --coordinator).
    #[arg(long, requires = "tls_ca")]
    tls_domain: Option<String>,
    /// auto (the first GPU when there is one), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Where downloaded models and eval sets are kept between jobs (default: $XDG_CACHE_HOME/sensgrid/worker,
    /// or ~/.cache/sensgrid/worker). One live worker per folder: a second one is refused.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// How this worker appears in the coordinator (default: the host name and the process id).
    #[arg(long)]
    name: Option<String>,
    /// Evaluate every cell on the whole graph instead of reusing the activations upstream of its group
    /// (the results are the same; benchmarks measure the difference).
    #[arg(long)]
    no_incremental: bool,
    /// Jobs held leased beside the one computing, so the next starts the moment the current one ends and its
    /// report travels with the next claim (0: claim only when idle).
    #[arg(long, default_value_t = 1)]
    prefetch: usize,
}

pub fn run(args: &Args) -> Result<()> {
    let tls = match &args.tls_ca {
        Some(path) => Some(Tls {
            ca_pem: std::fs::read(path).with_context(|| format!("--tls-ca {}", path.display()))?,
            domain: args.tls_domain.clone(),
        }),
        None => None,
    };
    let cache_dir = match &args.cache_dir {
        Some(dir) => dir.clone(),
        None => default_cache_dir()?,
    };
    join::run(Options {
        coordinator: args.coordinator.clone(),
        token: args.token.clone(),
        tls,
        device: parse_device(&args.device)?,
        cache_dir,
        name: args.name.clone().unwrap_or_else(join::default_name),
        incremental: !args.no_incremental,
        prefetch: args.prefetch,
    })
}

fn default_cache_dir() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").context("--cache-dir: not given, and HOME is not set")?)
            .join(".cache"),
    };
    Ok(base.join("sensgrid").join("worker"))
}
