//! The sensgrid coordinator: the job store in Postgres, the gRPC services that lease its jobs to workers, and
//! the client that workers and admin tools talk to them with.
//!
//! - [`atomic_file`]: every file the coordinator writes (results, plots, artifacts) appears whole or not at
//!   all, via a temporary file, fsync and rename.
//! - [`client`]: connecting to a coordinator with a bearer token and optional TLS; artifact upload and
//!   download. With [`atomic_file`], all the crate is without the `server` feature, so a worker links no
//!   database code.
//! - [`logs`]: the `--log-format`/`--log-level` flags and the `tracing` subscriber of both binaries;
//!   [`stdout`]: their stdout, which a reader may close early; [`process`]: how they end when signalled.
//! - [`clock`]: where services get the time ([`clock::ManualClock`] in tests).
//! - [`store`]: every database operation, behind the [`store::JobStore`] trait; [`store::pg::PgStore`] holds
//!   all the SQL.
//! - [`service`]: the worker and admin gRPC services, and the tasks behind them (the dispatcher that batches
//!   claims, the completer that batches completions, the sweeper that takes back expired leases, the
//!   pipeline that plans and ends runs).
//! - [`spec`]: what a submission says about its run (metric, ratios, groups, the Prune target).
//! - [`sensitivity`]: losses from results; [`planning`]: ratios for a Prune target, with their FLOPs.
//! - [`progress`]: a run's cells by state, elapsed time and ETA (`status`, `watch`, the dashboard).
//! - [`submit`]: the checks and the grid of `coordinator submit`; [`results`]: the files of `coordinator
//!   results` (sen.pickle, sensitivities.csv and .json, plan.json, prune_report.json); [`plots`]: the
//!   plots written with them (sensitivity curves, the heatmap, the plan's channels).

pub mod atomic_file;
pub mod client;
#[cfg(feature = "server")]
pub mod clock;
#[cfg(feature = "logs")]
pub mod logs;
#[cfg(feature = "server")]
pub mod planning;
#[cfg(feature = "server")]
pub mod plots;
#[cfg(feature = "logs")]
pub mod process;
#[cfg(feature = "server")]
pub mod progress;
#[cfg(feature = "server")]
pub mod results;
#[cfg(feature = "server")]
pub mod sensitivity;
#[cfg(feature = "server")]
pub mod service;
#[cfg(feature = "server")]
pub mod spec;
#[cfg(feature = "logs")]
pub mod stdout;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod submit;

/// Every migration in `migrations/`, embedded at compile time and applied by the coordinator at start.
#[cfg(feature = "server")]
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
