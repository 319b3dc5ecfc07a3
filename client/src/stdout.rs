//! What both binaries print on stdout, written so that a reader that leaves early (`coordinator status | head
//! -1`, `worker inspect m.onnx | head -1`) ends the command quietly instead of panicking as `println!` does.
//!
//! SIGPIPE stays ignored (Rust's default): gRPC writes to sockets with `writev`, which would otherwise kill a
//! client mid-call when its peer goes.

use std::io::Write;

use anyhow::Context;

/// Stdout's reader went away (EPIPE): what [`write_stdout`] answers; the binaries end with 0 on it, as a
/// pipeline expects.
#[derive(Debug, thiserror::Error)]
#[error("stdout is closed")]
pub struct StdoutClosed;

/// Writes `text` to stdout and flushes it; a reader that left is [`StdoutClosed`].
///
/// # Errors
/// [`StdoutClosed`], or another write error.
pub fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        written => written.context("writing to stdout"),
    }
}
