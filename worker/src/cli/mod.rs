//! The `worker` command line: one file per subcommand, each with its clap arguments and its `run`.

mod bench;
mod infer;
mod inspect;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use sensgrid_model::{ir::Graph, onnx};

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
}

/// Runs one subcommand.
///
/// # Errors
/// Whatever the subcommand met: an unreadable or unsupported model, a bad input, a failing node.
pub fn run(command: Command) -> Result<()> {
    match command {
        Command::Devices => {
            println!("devices: {}", DeviceReport::probe());
            Ok(())
        }
        Command::Inspect(args) => inspect::run(&args),
        Command::Infer(args) => infer::run(&args),
        Command::Bench(args) => bench::run(&args),
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
}

impl ModelRun {
    /// Loads the model onto `device` and reads the input.
    fn load(&self, device: tch::Device) -> Result<(Executor, tch::Tensor)> {
        let executor = Executor::new(&load(&self.model)?, device)?;
        Ok((executor, read_input(&self.input)?))
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
