//! Where both binaries' log events go: the global `--log-format` and `--log-level` flags and the `tracing`
//! subscriber they set up. The events themselves are emitted where things happen (the services, the store,
//! `worker join`); command output (run ids, tables, metric dicts, progress, the final error line) is printed,
//! not logged.

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
    /// `info,sensgrid_coordinator::service=debug` or `info,sensgrid_worker=debug` (default: info; warn for
    /// `coordinator run`, whose progress bar shares the terminal with its in-process coordinator).
    #[arg(long, global = true, env = "RUST_LOG")]
    log_level: Option<String>,
}

impl LogArgs {
    /// Installs the process's subscriber; `default_level` applies when neither `--log-level` nor RUST_LOG is
    /// set.
    ///
    /// # Errors
    /// A `--log-level` that is not a valid filter, or a subscriber already installed.
    pub fn init(&self, default_level: &str) -> anyhow::Result<()> {
        let level = self.log_level.as_deref().unwrap_or(default_level);
        let filter = tracing_subscriber::EnvFilter::try_new(level).with_context(|| format!("--log-level '{level}'"))?;
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
