//! `coordinator results`: writes a run's files into `--out` (sen.pickle, sensitivities.csv and .json, the
//! plots, after an export plan.json, prune_report.json and pruned.onnx, after a recovery recover_report.json
//! and recovered.onnx), naming its failed jobs, which the files miss. `run` writes its results the same way ([`write_results`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use sensgrid_client::AdminClient;
use sensgrid_client::atomic_file::AtomicFile;
use sensgrid_client::stdout::write_stdout;
use sensgrid_coordinator::progress::Progress;
use sensgrid_coordinator::results::RunResults;
use sensgrid_proto::v1 as pb;

use super::connection::Connection;

#[derive(Args)]
pub struct ResultsArgs {
    run: i64,
    /// The folder to write into (created).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(args: ResultsArgs) -> Result<()> {
    let mut admin = args.connection.admin().await?;
    let mut out = String::new();
    for file in write_results(&mut admin, args.run, &args.out).await? {
        writeln!(out, "{}", file.display())?;
    }
    let run = admin
        .get_run(pb::GetRunRequest { run_id: args.run })
        .await
        .context("GetRun")?
        .into_inner();
    let p = Progress::of(&run);
    if !p.failed.is_empty() {
        // The files hold what was computed; what failed is missing from them, which a reader must know.
        eprintln!(
            "run {}: {}; the results miss them (`coordinator retry {}` queues them again):",
            args.run,
            p.failed_text(),
            args.run
        );
        for job in &p.failed {
            eprintln!("  {job}");
        }
    }
    write_stdout(&out)
}

/// Writes a run's results into `out` (see `sensgrid_coordinator::results`), fetching the pruned model after
/// an export; answers the files written. Every file, `pruned.onnx` included, is staged before any is renamed
/// into place: a failure leaves the folder's earlier results as they were.
pub async fn write_results(admin: &mut AdminClient, run_id: i64, out: &Path) -> Result<Vec<PathBuf>> {
    let run = admin.get_run(pb::GetRunRequest { run_id }).await?.into_inner();
    let workers = admin
        .list_workers(pb::ListWorkersRequest {})
        .await?
        .into_inner()
        .workers;
    let results = RunResults::new(&run, &workers)?;
    let mut staged = results.stage(out)?;
    if let Some(digest) = staged.pruned_model.clone() {
        let pruned = AtomicFile::create(out.join("pruned.onnx"))?;
        let (pruned, _) = sensgrid_client::download_artifact_into(admin, &digest, pruned).await?;
        staged.add(pruned);
    }
    if let Some(digest) = staged.recovered_model.clone() {
        let recovered = AtomicFile::create(out.join("recovered.onnx"))?;
        let (recovered, _) = sensgrid_client::download_artifact_into(admin, &digest, recovered).await?;
        staged.add(recovered);
    }
    staged.commit()
}
