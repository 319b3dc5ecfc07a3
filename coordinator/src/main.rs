//! The `coordinator` binary: parses flags and dispatches; the work lives in the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use sensgrid_coordinator::MIGRATOR;
use sqlx::postgres::PgPoolOptions;

/// Spreads PaddleSlim-style sensitivity analysis of an ONNX model over a cluster of workers.
#[derive(Parser)]
#[command(name = "coordinator", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Applies every pending migration to the database and lists what is applied.
    Migrate {
        /// Postgres URL, e.g. postgres://user@127.0.0.1:5432/sensgrid.
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Migrate { database_url } => migrate(&database_url).await,
    }
}

async fn migrate(database_url: &str) -> anyhow::Result<()> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(database_url)
        .await
        .with_context(|| format!("connecting to {database_url}"))?;
    MIGRATOR.run(&pool).await.context("applying migrations")?;
    for migration in MIGRATOR.iter().filter(|m| m.migration_type.is_up_migration()) {
        println!("applied {} {}", migration.version, migration.description);
    }
    Ok(())
}
