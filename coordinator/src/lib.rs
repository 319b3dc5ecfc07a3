//! The sensgrid coordinator: the job store in Postgres, the gRPC services that lease its jobs to workers, and
//! what its admin commands compute from a run. The typed client, the log flags and the atomic files live in
//! `sensgrid-client`, which the worker links instead of this crate.
//!
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

pub mod clock;
pub mod planning;
pub mod plots;
pub mod progress;
pub mod results;
pub mod sensitivity;
pub mod service;
pub mod spec;
pub mod store;
pub mod submit;

/// Every migration in `migrations/`, embedded at compile time and applied by the coordinator at start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
