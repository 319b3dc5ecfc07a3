//! The commands of the `coordinator` binary, one module each, which owns the command's arguments and what it
//! does; `main.rs` parses and calls [`Command::run`], then [`exit::code`] turns the outcome into the process's
//! exit, the one table every command's errors go through (README, "Exit codes").
//!
//! - [`serve`] and [`migrate`]: the coordinator itself, on Postgres.
//! - [`submit`], [`status`], [`watch`], [`results`], [`plan`], [`cancel`], [`retry`], [`recover`] and [`workers`]: clients of
//!   a running coordinator's admin service, reached through [`connection::Connection`].
//! - [`run`]: a config's whole job on this machine, the coordinator in this process and `worker join` children.

mod cancel;
mod connection;
pub mod exit;
mod migrate;
mod plan;
mod recover;
mod results;
mod retry;
mod run;
mod serve;
mod status;
mod submit;
mod watch;
mod workers;

use clap::{Parser, Subcommand};
use sensgrid_client::logs::LogArgs;

/// Spreads PaddleSlim-style sensitivity analysis of an ONNX model over a cluster of workers.
#[derive(Parser)]
#[command(name = "coordinator", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub logs: LogArgs,
}

#[derive(Subcommand)]
pub enum Command {
    /// Applies every pending migration to the database and lists what is applied.
    Migrate(migrate::MigrateArgs),
    /// Applies the migrations, then serves the worker and admin gRPC services (and the gRPC health service)
    /// until SIGTERM or Ctrl-C. Prints `listening on ADDR` once bound, then `http on ADDR` with --http.
    Serve(Box<serve::ServeArgs>),
    /// Checks a PaddleOCR-style config, its model and eval set, uploads them and creates the run: its baseline
    /// and one cell per (channel group, ratio). Prints the run id as its last stdout line.
    Submit(Box<submit::SubmitArgs>),
    /// Lists the runs, or shows one run's cells by state, active workers, elapsed time and ETA.
    Status(status::StatusArgs),
    /// Follows a run with a progress bar until it ends; exits 0 when it is done, 1 when it failed, was
    /// cancelled, or ended done with failed cells (named).
    Watch(watch::WatchArgs),
    /// Writes a run's sen.pickle, sensitivities.csv and .json, and after an export plan.json,
    /// prune_report.json and pruned.onnx.
    Results(results::ResultsArgs),
    /// Plans per-group ratios for a finished run (PaddleSlim's max loss, or a FLOPs reduction) and can queue
    /// the export.
    Plan(plan::PlanArgs),
    /// Cancels a run: queued and running jobs stop, finished results stay.
    Cancel(cancel::CancelArgs),
    /// Queues a run's failed jobs again with fresh attempts; a run that ended done with them runs again
    /// (`coordinator watch RUN` follows it). A failed or cancelled run is refused.
    Retry(retry::RetryArgs),
    /// Fine-tunes a done run's exported model by distillation from its model, on its training set (`Recover`
    /// section, `-o Recover.key=value`); the run runs again until the recovery ends. Other runs are refused.
    Recover(recover::RecoverArgs),
    /// Lists the registered workers, their devices and the jobs they hold.
    Workers(workers::WorkersArgs),
    /// Runs a config's whole job on this machine: the coordinator in this process on an embedded SQLite store
    /// in --out (or Postgres with --database-url), --workers `worker join` children on loopback, the progress
    /// bar, then the results in --out. Started again with the same --out, it resumes the run.
    Run(Box<run::RunArgs>),
}

impl Command {
    /// The log level when neither `--log-level` nor RUST_LOG sets one: `run`'s progress bar shares the terminal
    /// with its in-process coordinator, whose info events would break it up.
    pub fn default_log_level(&self) -> &'static str {
        match self {
            Command::Run(_) => "warn",
            _ => "info",
        }
    }

    /// Runs the command; [`exit::code`] says how its outcome ends the process.
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Command::Migrate(args) => migrate::run(args).await,
            Command::Serve(args) => serve::run(*args).await,
            Command::Submit(args) => submit::run(*args).await,
            Command::Status(args) => status::run(args).await,
            Command::Watch(args) => watch::run(args).await,
            Command::Results(args) => results::run(args).await,
            Command::Plan(args) => plan::run(args).await,
            Command::Cancel(args) => cancel::run(args).await,
            Command::Retry(args) => retry::run(args).await,
            Command::Recover(args) => recover::run(args).await,
            Command::Workers(args) => workers::run(args).await,
            Command::Run(args) => run::run(*args).await,
        }
    }
}
