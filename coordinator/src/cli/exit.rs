//! How a command's outcome ends the process: the same for every command (README, "Exit codes").
//!
//! - 0: done; also a command whose stdout reader left (`| head -1`), ended quietly.
//! - 1: the run followed (`watch`, `submit --watch`, `run`) ended failed or cancelled, or done with failed
//!   cells ([`RunEnded`]).
//! - 2: anything else refused or failed: bad flags (clap's own exit) or config, an unknown run, a coordinator
//!   that does not answer.
//!
//! An error is one line on stderr, its causes joined by ": ". `run` stopped by SIGINT, SIGTERM or SIGHUP ends
//! by that signal instead ([`Interrupted`]).

use std::process::ExitCode;

use sensgrid_client::stdout::StdoutClosed;

use super::run::Interrupted;
use super::watch::RunEnded;

/// The run that `watch`, `submit --watch` or `run` followed did not end done with every job.
const RUN_ENDED: u8 = 1;
/// Anything else refused or failed.
const FAILED: u8 = 2;

/// Prints a failed command's error and answers its exit code; a command stopped by a signal ends here, by it.
pub fn code(outcome: anyhow::Result<()>) -> ExitCode {
    let Err(error) = outcome else {
        return ExitCode::SUCCESS;
    };
    if error.is::<StdoutClosed>() {
        return ExitCode::SUCCESS;
    }
    eprintln!("coordinator: {error:#}");
    if let Some(interrupted) = error.downcast_ref::<Interrupted>() {
        interrupted.end_process();
    }
    ExitCode::from(if error.is::<RunEnded>() { RUN_ENDED } else { FAILED })
}
