//! The `worker` command line: one file per subcommand, each with its clap arguments and its `run`.

mod bench;
mod eval;
mod eval_bench;
mod infer;
mod inspect;
mod join;
mod prune;
mod recover;
mod synth;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use sensgrid_client::stdout::write_stdout;
use sensgrid_eval::config::Precision;
use sensgrid_model::ir::{Dim, Graph};
use sensgrid_model::onnx;
use sensgrid_model::prune::Criterion;

use crate::devices::DeviceReport;
use crate::exec::Executor;

/// The worker's subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Lists the devices libtorch can compute on here: `cpu`, then each CUDA device.
    Devices,
    /// Describes a model: inputs, outputs, ops, params and FLOPs.
    Inspect(inspect::Args),
    /// Runs a model on one float32 .npy input and writes its outputs as .npy files.
    Infer(infer::Args),
    /// Times a model's forward pass: prints one JSON line with the median milliseconds per run.
    Bench(bench::Args),
    /// Removes the channels a plan prunes and writes the smaller model as ONNX, with the kept indices.
    Prune(prune::Args),
    /// Scores a model on its config's eval set as PaddleOCR does: prints the metric dict as one JSON line.
    Eval(eval::Args),
    /// Times DB post-processing and DetMetric on saved det outputs (for bench/eval): one JSON line.
    EvalBench(eval_bench::Args),
    /// Works for a coordinator: registers, then evaluates the baseline and cell jobs it hands out, until
    /// interrupted (Ctrl-C or SIGTERM once: finish the current job; twice: hand it back).
    Join(join::Args),
    /// Fine-tunes a pruned model by distillation from the original and writes it as recovered.onnx.
    Recover(recover::Args),
    /// Renders a synthetic det, rec or cls eval set in PaddleOCR's layout, the same for the same seed.
    Synth(synth::Args),
}

/// Runs one subcommand.
///
/// # Errors
/// Whatever the subcommand met: an unreadable or unsupported model, a bad input, a failing node.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Devices => write_stdout(&format!("devices: {}\n", DeviceReport::probe())),
        Command::Inspect(args) => inspect::run(&args),
        Command::Infer(args) => infer::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Prune(args) => prune::run(&args),
        Command::Synth(args) => synth::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::EvalBench(args) => eval_bench::run(&args),
        Command::Join(args) => join::run(&args),
        Command::Recover(args) => recover::run(&args),
    }
}

/// A model and one float32 .npy input for it.
#[derive(clap::Args)]
pub struct ModelRun {
    /// The ONNX model.
    #[arg(long)]
    model: PathBuf,
    /// A float32 .npy array for the model's (only) input.
    #[arg(long)]
    input: PathBuf,
    /// fp32, or fp16 (the float part of the model held and computed in half precision, as
    /// `Sensitivity.precision: fp16` runs it); the outputs are float32 either way.
    #[arg(long, default_value = "fp32", value_parser = parse_precision)]
    precision: Precision,
}

impl ModelRun {
    /// Loads the model onto `device` and reads the input.
    fn load(&self, device: tch::Device) -> Result<(Graph, Executor, tch::Tensor)> {
        let graph = load(&self.model)?;
        let executor = Executor::with_precision(&graph, device, self.precision)?;
        Ok((graph, executor, read_input(&self.input)?))
    }
}

/// Reads a model, with the path in any error.
fn load(path: &Path) -> Result<Graph> {
    onnx::read(path).map_err(anyhow::Error::from)
}

/// Reads a float32 .npy file.
fn read_input(path: &Path) -> Result<tch::Tensor> {
    let tensor =
        tch::Tensor::read_npy(path).with_context(|| format!("{}: not a readable .npy file", path.display()))?;
    anyhow::ensure!(
        tensor.kind() == tch::Kind::Float,
        "{}: expected float32 values, got {:?}",
        path.display(),
        tensor.kind()
    );
    Ok(tensor)
}

fn parse_shape(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|part| {
            part.trim()
                .parse::<usize>()
                .with_context(|| format!("--input-shape {text}: '{part}' is not a size"))
        })
        .collect()
}

/// The input shape to analyse and count FLOPs at: the one given, or the model's declared one when every size is fixed.
fn counting_shape(graph: &Graph, given: Option<&str>) -> Result<Option<Vec<usize>>> {
    if graph.inputs.len() != 1 {
        bail!(
            "the model has {} inputs; only single-input models are analysed",
            graph.inputs.len()
        );
    }
    if let Some(text) = given {
        return parse_shape(text).map(Some);
    }
    let declared = graph.inputs[0].fact.as_ref().and_then(|f| f.shape.as_ref());
    Ok(declared.and_then(|dims| {
        dims.iter()
            .map(|d| if let Dim::Known(s) = d { Some(*s) } else { None })
            .collect()
    }))
}

/// Which channels a plan prunes: the plan file and the criterion that ranks channels.
#[derive(clap::Args)]
pub struct PlanArgs {
    /// How channels are ranked within a group: l1_norm, l1_norm_group or fpgm.
    #[arg(long, default_value_t = Criterion::default(), value_parser = parse_criterion)]
    criterion: Criterion,
}

fn parse_precision(text: &str) -> Result<Precision, String> {
    Precision::ALL
        .into_iter()
        .find(|p| p.as_str() == text)
        .ok_or_else(|| format!("'{text}': expected fp32 or fp16"))
}

fn parse_criterion(text: &str) -> Result<Criterion, String> {
    text.parse().map_err(|e: sensgrid_model::ModelError| e.to_string())
}
