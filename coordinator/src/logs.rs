//! Where the `coordinator` binary's log events go: the global `--log-format` and `--log-level` flags and the
//! `tracing` subscriber they set up. The events themselves are emitted where things happen (the services, the
//! store); command output (run ids, tables, progress, the final error line) is printed, not logged.
//!
//! The worker binary has the same two flags (`sensgrid_worker::cli::logs`); the binaries share no crate this
//! could live in without pulling the command line into the workers' client library.

use std::io::IsTerminal;

use anyhow::{Context, anyhow};

/// How events are written to stderr.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event: time, level, message, then the fields (`run_id=3 job_id=17 …`).
    Human,
    /// One JSON object per line, the event's fields at the top level (for log collectors on clusters).
    Json,
}

/// The logging flags, global to every subcommand.
#[derive(clap::Args)]
pub struct LogArgs {
    /// How log events are written to stderr: human (readable lines) or json (one object per line).
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "human",
        env = "SENSGRID_LOG_FORMAT"
    )]
    log_format: LogFormat,
    /// Which events are written: a level (error, warn, info, debug, trace) or RUST_LOG directives such as
    /// `info,sensgrid_coordinator::service=debug`.
    #[arg(long, global = true, default_value = "info", env = "RUST_LOG")]
    log_level: String,
}

impl LogArgs {
    /// Installs the process's subscriber.
    ///
    /// # Errors
    /// A `--log-level` that is not a valid filter, or a subscriber already installed.
    pub fn init(&self) -> anyhow::Result<()> {
        let filter = tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .with_context(|| format!("--log-level '{}'", self.log_level))?;
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let installed = match self.log_format {
            // The module path is noise on a terminal; the JSON keeps it as "target" for filtering.
            LogFormat::Human => builder
                .with_target(false)
                .with_ansi(std::io::stderr().is_terminal())
                .try_init(),
            LogFormat::Json => builder.json().flatten_event(true).with_span_list(false).try_init(),
        };
        installed.map_err(|error| anyhow!("installing the log subscriber: {error}"))
    }
}
