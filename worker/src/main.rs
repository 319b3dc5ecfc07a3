//! The `worker` binary: parses flags and dispatches; the work lives in the library.

use clap::{Parser, Subcommand};
use sensgrid_worker::devices::DeviceReport;

/// Evaluates pruned variants of an ONNX model on libtorch for a sensgrid coordinator.
#[derive(Parser)]
#[command(name = "worker", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Lists the devices libtorch can compute on here: `cpu`, then each CUDA device.
    Devices,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Devices => println!("devices: {}", DeviceReport::probe()),
    }
    Ok(())
}
