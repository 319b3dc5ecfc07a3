//! `coordinator migrate`: applies the pending migrations and lists what is applied. Its pool, migrated, is
//! also how `serve` and `run --database-url` start on Postgres.

use anyhow::{Context, Result};
use clap::Args;
use sensgrid_client::stdout::write_stdout;
use sensgrid_coordinator::MIGRATOR;
use sensgrid_coordinator::store::pg;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

#[derive(Args)]
pub struct MigrateArgs {
    /// Postgres URL, e.g. postgres://user@127.0.0.1:5432/sensgrid.
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
}

pub async fn run(args: MigrateArgs) -> Result<()> {
    migrated_pool(&args.database_url, 1).await?;
    let mut applied = String::new();
    for migration in MIGRATOR.iter().filter(|m| m.migration_type.is_up_migration()) {
        applied.push_str(&format!("applied {} {}\n", migration.version, migration.description));
    }
    write_stdout(&applied)
}

/// A pool of `max_connections` to the database at `database_url`, every migration applied.
pub async fn migrated_pool(database_url: &str, max_connections: u32) -> Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .connect_with(pg::connect_options(database_url).with_context(|| format!("--database-url '{database_url}'"))?)
        .await
        .with_context(|| format!("connecting to {database_url}"))?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    Ok(pool)
}
