//! The `worker` binary: parses flags and dispatches; the work lives in the library.
//!
//! Exit codes, as the coordinator's (README, "Exit codes"): 0 on success (and for `join`, leaving after
//! SIGINT or SIGTERM; and a stdout whose reader left, `| head -1`), 2 on any error (one line on stderr), as
//! clap does for bad flags. The worker follows no run, so it never exits 1.

use std::process::ExitCode;

use clap::Parser;
use sensgrid_client::logs::LogArgs;
use sensgrid_worker::cli::{self, Command};

/// Evaluates pruned variants of an ONNX model on libtorch for a sensgrid coordinator.
#[derive(Parser)]
#[command(name = "worker", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    logs: LogArgs,
}

fn main() -> ExitCode {
    sensgrid_worker::malloc::keep_freed_memory();
    let cli = Cli::parse();
    match cli.logs.init("info").and_then(|()| cli::run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.is::<sensgrid_client::stdout::StdoutClosed>() => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
