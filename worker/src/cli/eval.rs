//! `worker eval`: a model scored on its config's eval set, as PaddleOCR's `tools/eval.py` scores it.
//!
//! stdout gets one JSON line, the metric dict (PaddleOCR's keys plus `num_samples`); stderr a short summary.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use sensgrid_eval::Config;
use sensgrid_model::prune::Criterion;

use super::{parse_criterion, write_stdout};
use crate::evaluate::Session;
use crate::exec::parse_device;
use crate::pruning;

#[derive(clap::Args)]
pub struct Args {
    /// A PaddleOCR-style YAML config; `Global.pretrained_model` names the ONNX model.
    #[arg(long, short = 'c')]
    config: PathBuf,
    /// Overrides, as in PaddleOCR: `-o Global.pretrained_model=m.onnx Eval.dataset.data_dir=data/`; several
    /// pairs after one `-o`, and `-o` may repeat. Values are read as YAML.
    #[arg(short = 'o', long = "opt", num_args = 1.., action = clap::ArgAction::Append)]
    overrides: Vec<String>,
    /// auto (the first GPU when there is one), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Zero the channels this plan (a JSON object of group key to ratio) prunes before evaluating.
    #[arg(long)]
    mask: Option<PathBuf>,
    /// How channels are ranked for --mask: l1_norm, l1_norm_group or fpgm (default: the config's
    /// Sensitivity.criterion).
    #[arg(long, value_parser = parse_criterion)]
    criterion: Option<Criterion>,
}

pub fn run(args: &Args) -> Result<()> {
    let config = Config::load(&args.config, &args.overrides)?;
    let device = parse_device(&args.device)?;
    let started = Instant::now();
    let mut session = Session::open(config, device)?;
    let mut no_progress = |_| Ok(());
    let metrics = match &args.mask {
        Some(path) => {
            let plan = pruning::read_plan(path)?;
            let criterion = args.criterion.unwrap_or(session.config().sensitivity().criterion);
            eprintln!("masking {} groups from {} ({criterion})", plan.len(), path.display());
            session.evaluate_masked(&plan, criterion, &mut no_progress)?
        }
        None => session.evaluate(&mut no_progress)?,
    };
    write_stdout(&format!("{}\n", serde_json::to_string(metrics.as_map())?))?;
    let summary: Vec<String> = metrics
        .as_map()
        .iter()
        .filter(|(key, _)| *key != "num_samples")
        .map(|(key, value)| format!("{key} {value:.4}"))
        .collect();
    eprintln!(
        "{}: {} on {} samples in {:.1}s ({})",
        session.config().model_path().display(),
        summary.join(", "),
        session.num_samples(),
        started.elapsed().as_secs_f64(),
        session.config().metric().kind.name(),
    );
    Ok(())
}
