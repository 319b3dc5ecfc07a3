//! `coordinator recover`: fine-tunes a done run's exported model by distillation from the run's model. The
//! run's config takes the `-o` overrides (`Recover.steps=…`, `Recover.data_dir=…`); its training set
//! (`Recover.data_dir` + `Recover.label_file_list`, else `Train.dataset`) is bundled here and uploaded, and the
//! run runs again with a recover job until the recovery ends (`coordinator watch RUN` follows it). A run that
//! ended (done, or failed or cancelled in an earlier recovery) with a done export is recovered again this way,
//! with other options; a run still running, recovering already, or without a done export is refused (exit 2).

use anyhow::{Context, Result};
use clap::Args;
use sensgrid_client::stdout::write_stdout;
use sensgrid_coordinator::submit;
use sensgrid_eval::Config;
use sensgrid_proto::v1 as pb;

use super::connection::Connection;
use super::submit::{Upload, upload};

#[derive(Args)]
pub struct RecoverArgs {
    /// The run's id (as `submit` printed it).
    run: i64,
    /// Overrides of the run's config, `Recover.steps=200` (repeatable).
    #[arg(short = 'o', long = "opt", num_args = 1..)]
    overrides: Vec<String>,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(args: RecoverArgs) -> Result<()> {
    let mut admin = args.connection.admin().await?;
    let run = admin
        .get_run(pb::GetRunRequest { run_id: args.run })
        .await
        .context("GetRun")?
        .into_inner();
    let at = format!("run {} config", args.run);
    let config = Config::from_yaml(&run.config_yaml, &at, &args.overrides)?;
    let bundle = tokio::task::block_in_place(|| submit::train_bundle(&config, &at))?;
    let train_set_digest = upload(&mut admin, Upload::Bytes(&bundle), "application/x-tar").await?;
    admin
        .recover_run(pb::RecoverRunRequest {
            run_id: args.run,
            config_yaml: config.to_yaml(),
            train_set_digest,
        })
        .await
        .context("RecoverRun")?;
    write_stdout(&format!(
        "run {}: running (recovery queued; `coordinator watch {}` follows it)\n",
        args.run, args.run
    ))
}
