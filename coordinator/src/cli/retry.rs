//! `coordinator retry`: queues a run's failed jobs again with fresh attempts.

use anyhow::{Context, Result};
use clap::Args;
use sensgrid_client::stdout::write_stdout;
use sensgrid_proto::v1 as pb;

use super::connection::Connection;

#[derive(Args)]
pub struct RetryArgs {
    /// The run's id (as `submit` printed it).
    run: i64,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(args: RetryArgs) -> Result<()> {
    let mut admin = args.connection.admin().await?;
    let answer = admin
        .retry_run(pb::RetryRunRequest { run_id: args.run })
        .await
        .context("RetryRun")?
        .into_inner();
    write_stdout(&format!(
        "run {}: {} ({} failed jobs queued again)\n",
        args.run,
        answer.state(),
        answer.requeued
    ))
}
