//! `coordinator workers`: the registered workers, their devices and the jobs they hold.

use std::fmt::Write as _;

use anyhow::Result;
use clap::Args;
use sensgrid_client::stdout::write_stdout;
use sensgrid_proto::v1 as pb;

use super::connection::Connection;

#[derive(Args)]
pub struct WorkersArgs {
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(args: WorkersArgs) -> Result<()> {
    let mut admin = args.connection.admin().await?;
    let workers = admin
        .list_workers(pb::ListWorkersRequest {})
        .await?
        .into_inner()
        .workers;
    let mut out = format!("{:>4}  {:<24} {:<8} {:<25} jobs\n", "id", "name", "device", "last seen");
    for w in workers {
        let jobs: Vec<String> = w
            .lease_jobs
            .iter()
            .zip(&w.lease_runs)
            .map(|(j, r)| format!("job {j} (run {r})"))
            .collect();
        writeln!(
            out,
            "{:>4}  {:<24} {:<8} {:<25} {}",
            w.worker_id,
            w.name,
            w.device,
            w.last_seen_at,
            if jobs.is_empty() {
                "idle".into()
            } else {
                jobs.join(", ")
            }
        )?;
    }
    write_stdout(&out)
}
