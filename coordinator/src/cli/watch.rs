//! `coordinator watch`: follows a run until it ends, with a progress bar on a terminal; it exits 1 with
//! [`RunEnded`] unless the run ends done with every job. `submit --watch` and `run` follow their run the same
//! way ([`watch_run`]).

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use sensgrid_client::AdminClient;
use sensgrid_coordinator::progress::{Progress, Recovery};
use sensgrid_coordinator::spec::RunSpec;
use sensgrid_proto::v1 as pb;

use super::connection::Connection;
use super::status::{describe_workers, seconds};

#[derive(Args)]
pub struct WatchArgs {
    /// The run's id (as `submit` printed it).
    run: i64,
    #[command(flatten)]
    connection: Connection,
}

pub async fn run(args: WatchArgs) -> Result<()> {
    let mut admin = args.connection.admin().await?;
    watch_run(&mut admin, args.run).await
}

/// A followed run ended failed or cancelled, or done with failed jobs: `watch`, `submit --watch` and `run` exit 1
/// with it, where any other error (a bad flag, an unknown run, a coordinator that does not answer) exits 2
/// ([`super::exit`]).
#[derive(Debug)]
pub struct RunEnded {
    pub run_id: i64,
    /// `failed`, `cancelled`, or `done with N of M cells failed`.
    pub state: String,
    /// The run's error, empty when it has none (a cancelled run).
    pub error: String,
}

impl std::fmt::Display for RunEnded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "run {} {}", self.run_id, self.state)?;
        if !self.error.is_empty() {
            write!(f, ": {}", self.error)?;
        }
        Ok(())
    }
}

impl std::error::Error for RunEnded {}

/// Follows a run until it ends: a progress bar on a terminal, a line per change elsewhere. Fails with
/// [`RunEnded`] unless the run ends done with every job (a done run's failed jobs are named, with the command
/// that retries them).
pub async fn watch_run(admin: &mut AdminClient, run_id: i64) -> Result<()> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("run {prefix} [{bar:40}] {pos}/{len} cells  ETA {eta}  {msg}")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    bar.set_prefix(run_id.to_string());
    let mut last_key = String::new();
    loop {
        let run = admin
            .get_run(pb::GetRunRequest { run_id })
            .await
            .context("GetRun")?
            .into_inner();
        let p = Progress::of(&run);
        bar.set_length(p.cells_total);
        bar.set_position(p.cells_finished);
        let failed = p.failed_text();
        let recovery = Recovery::of(&run, &RunSpec::shown(&run).metric);
        let message = format!(
            "{}{}{}{}; active workers: {}",
            p.state,
            p.probes_text(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(", {failed}")
            },
            recovery.map_or_else(String::new, |recovery| format!(", recover: {}", recovery.text())),
            describe_workers(&p.workers)
        );
        bar.set_message(message.clone());
        let line = format!(
            "run {run_id}: {}/{} cells, {message}, elapsed {}, ETA {}",
            p.cells_finished,
            p.cells_total,
            seconds(p.elapsed),
            p.eta.map_or_else(|| "-".into(), seconds)
        );
        // Off a terminal: a line whenever the cells, the state or the workers change (not every tick).
        let key = format!("{}/{} {message}", p.cells_finished, p.cells_total);
        if bar.is_hidden() && key != last_key {
            eprintln!("{line}");
            last_key = key;
        }
        if p.state != pb::RunState::Running {
            bar.finish();
            eprintln!("run {run_id} {} after {}", p.state, seconds(p.elapsed));
            if p.done_with_failures() {
                return Err(failed_jobs_ended(&p).into());
            }
            if p.state == pb::RunState::Done {
                return Ok(());
            }
            return Err(RunEnded {
                run_id,
                state: p.state.to_string(),
                error: p.error,
            }
            .into());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The [`RunEnded`] of a run that ended done with failed jobs, naming each (group, ratio, last error).
fn failed_jobs_ended(p: &Progress) -> RunEnded {
    let named: Vec<String> = p.failed.iter().map(ToString::to_string).collect();
    RunEnded {
        run_id: p.run_id,
        state: format!("done with {}", p.failed_text()),
        error: format!(
            "{}; `coordinator retry {}` queues them again",
            named.join("; "),
            p.run_id
        ),
    }
}
