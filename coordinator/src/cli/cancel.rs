//! `coordinator cancel`: stops a run's queued and running jobs; finished results stay.

use anyhow::{Context, Result};
use clap::Args;
use sensgrid_client::stdout::write_stdout;
use sensgrid_proto::v1 as pb;

use super::connection::Connection;

#[derive(Args)]
pub struct CancelArgs {
    /// The run's id (as `submit` printed it).
    run: i64,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(args: CancelArgs) -> Result<()> {
    let mut admin = args.connection.admin().await?;
    let answer = admin
        .cancel_run(pb::CancelRunRequest { run_id: args.run })
        .await
        .context("CancelRun")?
        .into_inner();
    write_stdout(&format!(
        "run {}: {} ({} queued and {} leased jobs cancelled)\n",
        args.run,
        answer.state(),
        answer.queued_cancelled,
        answer.leased_cancelled
    ))
}
