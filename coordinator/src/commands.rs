//! The client commands of the `coordinator` binary: `submit`, `status`, `watch`, `results`, `plan`, `cancel`,
//! `retry` and `workers`. Each talks to a running coordinator's admin service.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use sensgrid_client::atomic_file::AtomicFile;
use sensgrid_client::stdout::write_stdout;
use sensgrid_client::{self as client, AdminClient, Tls};
use sensgrid_coordinator::progress::Progress;
use sensgrid_coordinator::results::RunResults;
use sensgrid_coordinator::spec::RunSpec;
use sensgrid_coordinator::submit::{self, Prepared};
use sensgrid_proto::v1 as pb;
use serde_json::json;

/// Where the coordinator is, and the admin token.
#[derive(Args, Clone)]
pub struct Connection {
    /// The coordinator's address.
    #[arg(long, env = "SENSGRID_COORDINATOR", default_value = "http://127.0.0.1:7070")]
    coordinator: String,
    /// The admin bearer token.
    #[arg(long, env = "SENSGRID_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
    /// PEM CA certificate that signed the coordinator's TLS certificate (for an https:// address).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
}

impl Connection {
    async fn admin(&self) -> Result<AdminClient> {
        let tls = match &self.tls_ca {
            Some(path) => Some(Tls {
                ca_pem: std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
                domain: None,
            }),
            None => None,
        };
        let channel = client::connect(&self.coordinator, tls.as_ref()).await?;
        Ok(client::admin_client(channel, &self.token)?)
    }
}

#[derive(Args)]
pub struct SubmitArgs {
    /// The PaddleOCR-style config (Global.pretrained_model names the ONNX model; Eval.dataset the eval set).
    #[arg(short = 'c', long)]
    config: PathBuf,
    /// Overrides, `Section.key=value` as in PaddleOCR's tools (repeatable; several after one -o).
    #[arg(short = 'o', long = "opt", num_args = 1..)]
    overrides: Vec<String>,
    /// A name for the run (default: the config's file name).
    #[arg(long)]
    name: Option<String>,
    /// Import known cells instead of computing them: a sen.pickle, or the id of an earlier run of the same
    /// model.
    #[arg(long)]
    resume_from: Option<String>,
    /// Follow the run as `coordinator watch` does once submitted.
    #[arg(long)]
    watch: bool,
    #[command(flatten)]
    connection: Connection,
}

pub async fn submit(args: SubmitArgs) -> Result<()> {
    let mut admin = args.connection.admin().await?;
    let run_id = create_run(
        &mut admin,
        &args.config,
        &args.overrides,
        args.name.as_deref(),
        args.resume_from.as_deref(),
    )
    .await?;
    write_stdout(&format!("{run_id}\n"))?;
    if args.watch {
        return watch_run(&mut admin, run_id).await;
    }
    Ok(())
}

/// What `submit` does before printing the run id: checks and lays out the submission, then creates its run
/// ([`create_prepared_run`]). Answers the run id.
pub async fn create_run(
    admin: &mut AdminClient,
    config: &Path,
    overrides: &[String],
    name: Option<&str>,
    resume_from: Option<&str>,
) -> Result<i64> {
    create_prepared_run(admin, submit::prepare(config, overrides, name)?, resume_from).await
}

/// Creates the run of a checked submission: imports known cells, uploads what the coordinator does not hold
/// yet and creates the run. Answers the run id. `coordinator run` prepares before it starts anything.
pub async fn create_prepared_run(
    admin: &mut AdminClient,
    prepared: Prepared,
    resume_from: Option<&str>,
) -> Result<i64> {
    let known = match resume_from {
        None => BTreeMap::new(),
        Some(from) => {
            let resumed = submit::resume_cells(&prepared.spec, known_cells(admin, from, &prepared).await?);
            // Known cells of which none fits are surely a mistake (a sen.pickle of another model, a config
            // with other ratios): refused rather than computing the whole grid again.
            if resumed.cells.is_empty() && !resumed.dropped.is_empty() {
                bail!(
                    "--resume-from {from}: none of its {} cells is a cell of this run: {}",
                    resumed.dropped_cells(),
                    resumed.reasons()
                );
            }
            eprintln!("--resume-from {from}: {}", resumed.summary());
            resumed.cells
        }
    };
    let model_digest = upload(admin, Upload::File(&prepared.model), "application/onnx").await?;
    let dataset_digest = upload(admin, Upload::Bytes(&prepared.bundle), "application/x-tar").await?;
    let cells: Vec<pb::Cell> = prepared
        .cells
        .iter()
        .map(|(key, ratio)| pb::Cell {
            group_key: key.clone(),
            ratio: *ratio,
            result_json: known
                .get(&(key.clone(), ratio.to_bits()))
                .map(ToString::to_string)
                .unwrap_or_default(),
        })
        .collect();
    let imported = cells.iter().filter(|c| !c.result_json.is_empty()).count();
    let run_id = admin
        .create_run(pb::CreateRunRequest {
            config_yaml: prepared.config_yaml.clone(),
            model_digest,
            dataset_digest,
            criterion: prepared.criterion.into(),
            cells,
            spec_json: serde_json::to_string(&prepared.spec)?,
        })
        .await
        .context("CreateRun")?
        .into_inner()
        .run_id;
    eprintln!(
        "submitted '{}' as run {run_id}: {} groups x {} ratios = {} cells ({} imported), {} skipped groups, input {:?}",
        prepared.spec.name,
        prepared.spec.groups.len(),
        prepared.spec.ratios.len(),
        prepared.cells.len(),
        imported,
        prepared.spec.skipped.len(),
        prepared.spec.input_shape
    );
    Ok(run_id)
}

enum Upload<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

/// Uploads an artifact unless the coordinator stores it already; answers its digest.
async fn upload(admin: &mut AdminClient, what: Upload<'_>, media_type: &str) -> Result<String> {
    let digest = match what {
        Upload::File(path) => {
            client::sha256_hex(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        Upload::Bytes(bytes) => client::sha256_hex(bytes),
    };
    let stored = admin
        .stat_artifact(pb::StatArtifactRequest { digest: digest.clone() })
        .await
        .context("StatArtifact")?
        .into_inner()
        .stored;
    if stored {
        return Ok(digest);
    }
    Ok(match what {
        Upload::File(path) => client::upload_artifact_file(admin, path, media_type).await?,
        Upload::Bytes(bytes) => client::upload_artifact(admin, bytes, media_type).await?,
    })
}

/// The cells of `--resume-from`: a sen.pickle's losses, or an earlier run's done cells of the same model and
/// eval set.
async fn known_cells(
    admin: &mut AdminClient,
    from: &str,
    prepared: &Prepared,
) -> Result<BTreeMap<(String, u64), serde_json::Value>> {
    let Ok(run_id) = from.parse::<i64>() else {
        return submit::read_sen_pickle(Path::new(from)).context("--resume-from");
    };
    let run = admin
        .get_run(pb::GetRunRequest { run_id })
        .await
        .with_context(|| format!("--resume-from {run_id}"))?
        .into_inner();
    let digest = client::sha256_hex(&std::fs::read(&prepared.model)?);
    if run.model_digest != digest || run.dataset_digest != client::sha256_hex(&prepared.bundle) {
        bail!("--resume-from {run_id}: that run evaluated another model or eval set; its cells do not carry over");
    }
    Ok(run
        .jobs
        .into_iter()
        .filter(|j| j.kind == "cell" && j.state == "done")
        .filter_map(|j| {
            Some((
                (j.group_key, j.ratio.to_bits()),
                serde_json::from_str(&j.result_json).ok()?,
            ))
        })
        .collect())
}

#[derive(Args)]
pub struct RunArgs {
    /// The run's id (as `submit` printed it).
    run: i64,
    #[command(flatten)]
    connection: Connection,
}

#[derive(Args)]
pub struct StatusArgs {
    /// One run's detail; every run when left out.
    run: Option<i64>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    connection: Connection,
}

fn seconds(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

pub async fn status(args: StatusArgs) -> Result<()> {
    let mut admin = args.connection.admin().await?;
    // Written in one go once complete: a reader that leaves early (`| head -1`) ends the command quietly.
    let mut out = String::new();
    let Some(run_id) = args.run else {
        let runs = admin.list_runs(pb::ListRunsRequest::default()).await?.into_inner().runs;
        if args.json {
            let runs: Vec<_> = runs
                .iter()
                .map(|r| {
                    json!({"run_id": r.run_id, "name": r.name, "state": r.state, "jobs": r.jobs,
                    "created_at": r.created_at, "finished_at": r.finished_at, "error": r.error})
                })
                .collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&runs)?)?;
            return write_stdout(&out);
        }
        writeln!(
            out,
            "{:>5}  {:<24} {:<10} {:>11}  {:<25} error",
            "run", "name", "state", "jobs done", "created"
        )?;
        for r in runs {
            let total: u64 = r.jobs.values().sum();
            let done = r.jobs.get("done").copied().unwrap_or(0);
            // A done run's failed jobs are missing from its results: the error column says so.
            let failed = r.jobs.get("failed").copied().unwrap_or(0);
            let error = if r.error.is_empty() && failed > 0 {
                format!("{failed} failed jobs (`coordinator retry {}`)", r.run_id)
            } else {
                r.error.clone()
            };
            writeln!(
                out,
                "{:>5}  {:<24} {:<10} {:>5}/{:<5}  {:<25} {}",
                r.run_id, r.name, r.state, done, total, r.created_at, error
            )?;
        }
        return write_stdout(&out);
    };
    let run = admin.get_run(pb::GetRunRequest { run_id }).await?.into_inner();
    let p = Progress::of(&run);
    let job_state = |kind: &str| {
        run.jobs
            .iter()
            .find(|j| j.kind == kind)
            .map_or_else(|| "none".to_owned(), |j| j.state.clone())
    };
    // A spec that does not read (an older client's, a bare test run) shows neither setting.
    let spec = serde_json::from_str::<serde_json::Value>(&run.spec_json)
        .ok()
        .and_then(|spec| RunSpec::from_json(&spec).ok())
        .unwrap_or_default();
    let early_stopped = run
        .jobs
        .iter()
        .filter(|j| j.kind == "cell" && j.state == "skipped" && j.last_error.starts_with("early stop"))
        .count();
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&json!({
                "run_id": run_id, "state": p.state, "error": p.error,
                "failed": p.failed.iter().map(|j| j.json()).collect::<Vec<_>>(),
                "baseline": job_state("baseline"), "export": job_state("export"),
                "cells": {"total": p.cells_total, "finished": p.cells_finished, "by_state": p.by_state},
                "probes": {"total": p.probes_total, "finished": p.probes_finished},
                "eval_samples": spec.eval_samples,
                "early_stop": spec.early_stop_loss.map(|loss| json!({"loss": loss, "skipped": early_stopped})),
                "precision": spec.precision(),
                "active_workers": p.workers, "elapsed_s": p.elapsed.as_secs_f64(),
                "eta_s": p.eta.map(|d| d.as_secs_f64()),
            }))?
        )?;
        return write_stdout(&out);
    }
    let name = run.summary.as_ref().map(|s| s.name.clone()).unwrap_or_default();
    if p.failed.is_empty() {
        writeln!(out, "run {run_id} '{name}': {}", p.state)?;
    } else {
        writeln!(out, "run {run_id} '{name}': {} ({})", p.state, p.failed_text())?;
    }
    if !p.error.is_empty() {
        writeln!(out, "  error: {}", p.error)?;
    }
    writeln!(
        out,
        "  baseline: {}   export: {}",
        job_state("baseline"),
        job_state("export")
    )?;
    let states: Vec<String> = p.by_state.iter().map(|(s, n)| format!("{s} {n}")).collect();
    writeln!(
        out,
        "  cells: {}/{} finished ({})",
        p.cells_finished,
        p.cells_total,
        states.join(", ")
    )?;
    if !p.failed.is_empty() {
        writeln!(
            out,
            "  failed: {} (`coordinator retry {run_id}` queues them again)",
            p.failed_text()
        )?;
        for job in &p.failed {
            writeln!(out, "    {job}")?;
        }
    }
    if p.probes_total > 0 {
        writeln!(
            out,
            "  probes: {}/{} finished (candidate plans of the measured Prune target)",
            p.probes_finished, p.probes_total
        )?;
    }
    match spec.eval_samples {
        Some(subset) => writeln!(
            out,
            "  eval set: {} of {} samples (Sensitivity.seed {})",
            subset.count, subset.of, subset.seed
        )?,
        None => writeln!(out, "  eval set: every sample")?,
    }
    writeln!(out, "  precision: {}", spec.precision())?;
    if let Some(loss) = spec.early_stop_loss {
        writeln!(
            out,
            "  early stop: a group's larger ratios skipped once its loss exceeds {loss} ({early_stopped} cells skipped)"
        )?;
    }
    writeln!(out, "  active workers: {}", describe_workers(&p.workers))?;
    writeln!(
        out,
        "  elapsed: {}   ETA: {}",
        seconds(p.elapsed),
        p.eta.map_or_else(|| "-".into(), seconds)
    )?;
    write_stdout(&out)
}

fn describe_workers(workers: &[i64]) -> String {
    if workers.is_empty() {
        "none".into()
    } else {
        workers.iter().map(|w| format!("#{w}")).collect::<Vec<_>>().join(" ")
    }
}

pub async fn watch(args: RunArgs) -> Result<()> {
    let mut admin = args.connection.admin().await?;
    watch_run(&mut admin, args.run).await
}

/// A followed run ended failed or cancelled, or done with failed jobs: `watch`, `submit --watch` and `run` exit 1
/// with it, where any other error (a bad flag, an unknown run, a coordinator that does not answer) exits 2.
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
        let message = format!(
            "{}{}{}; active workers: {}",
            p.state,
            p.probes_text(),
            if failed.is_empty() {
                String::new()
            } else {
                format!(", {failed}")
            },
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
        if p.state != "running" {
            bar.finish();
            eprintln!("run {run_id} {} after {}", p.state, seconds(p.elapsed));
            if p.done_with_failures() {
                return Err(failed_jobs_ended(&p).into());
            }
            if p.state == "done" {
                return Ok(());
            }
            return Err(RunEnded {
                run_id,
                state: p.state,
                error: p.error,
            }
            .into());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[derive(Args)]
pub struct ResultsArgs {
    run: i64,
    /// The folder to write into (created).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    connection: Connection,
}

pub async fn results(args: ResultsArgs) -> Result<()> {
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

pub async fn retry(args: RunArgs) -> Result<()> {
    let mut admin = args.connection.admin().await?;
    let answer = admin
        .retry_run(pb::RetryRunRequest { run_id: args.run })
        .await
        .context("RetryRun")?
        .into_inner();
    write_stdout(&format!(
        "run {}: {} ({} failed jobs queued again)\n",
        args.run, answer.state, answer.requeued
    ))
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
        let (pruned, _) = client::download_artifact_into(admin, &digest, pruned).await?;
        staged.add(pruned);
    }
    staged.commit()
}

#[derive(Args)]
pub struct PlanArgs {
    run: i64,
    /// PaddleSlim's loss threshold: per group, the largest ratio whose loss stays under it (interpolated).
    #[arg(
        long,
        value_parser = share_arg,
        conflicts_with_all = ["flops_reduction", "max_model_loss", "latency_reduction"]
    )]
    max_loss: Option<f64>,
    /// The share of FLOPs to remove: alone, the smallest loss threshold whose plan removes at least this much;
    /// with --max-model-loss, the least cut that removes it, its loss measured.
    #[arg(long, value_parser = share_arg, conflicts_with = "latency_reduction")]
    flops_reduction: Option<f64>,
    /// The exported model's loss, measured on the eval set: the run searches candidate plans with probe jobs
    /// (it runs again until the plan and export are done; `coordinator watch RUN` follows it).
    #[arg(long, value_parser = share_arg)]
    max_model_loss: Option<f64>,
    /// The share of the latency to remove, measured on the workers' device by probe jobs.
    #[arg(long, value_parser = share_arg)]
    latency_reduction: Option<f64>,
    /// With a measured target: stop the search once its bracket's FLOPs reductions are this close.
    #[arg(long, value_parser = tolerance_arg)]
    tolerance: Option<f64>,
    /// Queue the export job by this plan (prune, evaluate, measure latency, upload the pruned model) and make
    /// it the run's. Without it, a --max-loss or --flops-reduction plan is printed, and stored as the run's
    /// only when the run has no export: plan.json, prune_report.json and pruned.onnx stay of one plan.
    #[arg(long)]
    export: bool,
    #[command(flatten)]
    connection: Connection,
}

/// A number as the `Prune` section takes a loss or a reduction: a share in (0, 1).
fn share_arg(text: &str) -> std::result::Result<f64, String> {
    let value = number_arg(text)?;
    // NaN fails both comparisons, so it is refused too.
    if value > 0.0 && value < 1.0 {
        Ok(value)
    } else {
        Err(format!("expected a share in (0, 1), got {value}"))
    }
}

/// The measured search's tolerance, as `Prune.tolerance` takes it: in [0, 1).
fn tolerance_arg(text: &str) -> std::result::Result<f64, String> {
    let value = number_arg(text)?;
    if (0.0..1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("expected a number in [0, 1), got {value}"))
    }
}

fn number_arg(text: &str) -> std::result::Result<f64, String> {
    text.parse().map_err(|_| format!("expected a number, got '{text}'"))
}

pub async fn plan(args: PlanArgs) -> Result<()> {
    let mut admin = args.connection.admin().await?;
    let measured = args.max_model_loss.is_some() || args.latency_reduction.is_some();
    // The run's export keeps its plan unless this one is exported too (see `PlanArgs::export`).
    let keeps_export_plan = !args.export
        && !measured
        && admin
            .get_run(pb::GetRunRequest { run_id: args.run })
            .await
            .context("GetRun")?
            .into_inner()
            .jobs
            .iter()
            .any(|job| job.kind == "export");
    let target = match (args.max_loss, args.flops_reduction) {
        (Some(loss), _) => pb::plan_run_request::Target::MaxLoss(loss),
        _ if measured => pb::plan_run_request::Target::Measured(pb::MeasuredTarget {
            max_model_loss: args.max_model_loss,
            flops_reduction: args.flops_reduction,
            latency_reduction: args.latency_reduction,
            tolerance: args.tolerance,
        }),
        (None, Some(share)) => pb::plan_run_request::Target::FlopsReduction(share),
        (None, None) => bail!("set --max-loss, --flops-reduction, --max-model-loss or --latency-reduction"),
    };
    let planned = admin
        .plan_run(pb::PlanRunRequest {
            run_id: args.run,
            target: Some(target),
            export: args.export,
        })
        .await
        .context("PlanRun")?
        .into_inner();
    if measured {
        eprintln!(
            "run {}: searching the measured target with probes; `coordinator watch {}` follows it, `coordinator \
             results {} --out DIR` then writes the plan{}",
            args.run,
            args.run,
            args.run,
            if args.export { " and the pruned model" } else { "" }
        );
        return Ok(());
    }
    let reduction = 1.0 - planned.flops_after as f64 / planned.flops_before.max(1) as f64;
    let stored = if args.export {
        "; export queued"
    } else if keeps_export_plan {
        "; not stored: the run keeps the plan its export pruned by (--export replaces both)"
    } else {
        ""
    };
    eprintln!(
        "run {}: loss threshold {}, FLOPs {} -> {} ({:.1}% fewer){stored}",
        args.run,
        planned.max_loss,
        planned.flops_before,
        planned.flops_after,
        reduction * 100.0,
    );
    write_stdout(&format!("{}\n", planned.plan_json))
}

pub async fn cancel(args: RunArgs) -> Result<()> {
    let mut admin = args.connection.admin().await?;
    let answer = admin
        .cancel_run(pb::CancelRunRequest { run_id: args.run })
        .await
        .context("CancelRun")?
        .into_inner();
    write_stdout(&format!(
        "run {}: {} ({} queued and {} leased jobs cancelled)\n",
        args.run, answer.state, answer.queued_cancelled, answer.leased_cancelled
    ))
}

#[derive(Args)]
pub struct WorkersArgs {
    #[command(flatten)]
    connection: Connection,
}

pub async fn workers(args: WorkersArgs) -> Result<()> {
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
