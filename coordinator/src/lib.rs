//! The sensgrid coordinator: the job store in Postgres and, as the issues land, the gRPC services, the
//! rescuer that returns expired leases to the queue, and the run pipeline.
//!
//! - [`clock`]: where services get the time ([`clock::ManualClock`] in tests).
//! - [`store`]: every database operation, behind the [`store::JobStore`] trait; [`store::pg::PgStore`] holds
//!   all the SQL.

pub mod clock;
pub mod store;

/// Every migration in `migrations/`, embedded at compile time and applied by the coordinator at start.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");
