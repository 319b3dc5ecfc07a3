//! The sensgrid coordinator: the job store in Postgres, the gRPC services that lease its jobs to workers, and
//! the client that workers and admin tools talk to them with.
//!
//! - [`client`]: connecting to a coordinator with a bearer token and optional TLS; artifact upload and
//!   download. The only module without the `server` feature, so a worker links no database code.
//! - [`clock`]: where services get the time ([`clock::ManualClock`] in tests).
//! - [`store`]: every database operation, behind the [`store::JobStore`] trait; [`store::pg::PgStore`] holds
//!   all the SQL.
//! - [`service`]: the worker and admin gRPC services, and the tasks behind them (the dispatcher that batches
//!   claims, the completer that batches completions, the sweeper that takes back expired leases).

pub mod client;
#[cfg(feature = "server")]
pub mod clock;
#[cfg(feature = "server")]
pub mod service;
#[cfg(feature = "server")]
pub mod store;

/// Every migration in `migrations/`, embedded at compile time and applied by the coordinator at start.
#[cfg(feature = "server")]
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
