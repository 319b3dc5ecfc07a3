//! The `coordinator` binary: parses flags, sets up logging and dispatches to the command's module in `cli`,
//! which turns the outcome into the exit code ([`cli::exit`]).

mod cli;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let outcome = match cli.logs.init(cli.command.default_log_level()) {
        Ok(()) => cli.command.run().await,
        Err(error) => Err(error),
    };
    cli::exit::code(outcome)
}
