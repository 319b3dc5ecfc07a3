//! `coordinator submit`: checks a config, its model and eval set, uploads what the coordinator does not hold
//! yet and creates the run; `--watch` then follows it as `watch` does. `run` creates its run the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use sensgrid_client::AdminClient;
use sensgrid_client::stdout::write_stdout;
use sensgrid_coordinator::submit::{self, Prepared};
use sensgrid_proto::v1 as pb;

use super::connection::Connection;
use super::watch::watch_run;

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

pub async fn run(args: SubmitArgs) -> Result<()> {
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
async fn create_run(
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
    if let Some(train_set) = &prepared.train_set {
        upload(admin, Upload::Bytes(train_set), "application/x-tar").await?;
    }
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

pub enum Upload<'a> {
    File(&'a Path),
    Bytes(&'a [u8]),
}

/// Uploads an artifact unless the coordinator stores it already; answers its digest.
pub async fn upload(admin: &mut AdminClient, what: Upload<'_>, media_type: &str) -> Result<String> {
    let digest = match what {
        Upload::File(path) => {
            sensgrid_client::sha256_hex(&std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        Upload::Bytes(bytes) => sensgrid_client::sha256_hex(bytes),
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
        Upload::File(path) => sensgrid_client::upload_artifact_file(admin, path, media_type).await?,
        Upload::Bytes(bytes) => sensgrid_client::upload_artifact(admin, bytes, media_type).await?,
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
    let digest = sensgrid_client::sha256_hex(&std::fs::read(&prepared.model)?);
    if run.model_digest != digest || run.dataset_digest != sensgrid_client::sha256_hex(&prepared.bundle) {
        bail!("--resume-from {run_id}: that run evaluated another model or eval set; its cells do not carry over");
    }
    Ok(run
        .jobs
        .into_iter()
        .filter(|j| j.kind() == pb::JobKind::Cell && j.state() == pb::JobState::Done)
        .filter_map(|j| {
            Some((
                (j.group_key, j.ratio.to_bits()),
                serde_json::from_str(&j.result_json).ok()?,
            ))
        })
        .collect())
}
