//! How both binaries end when a signal stopped them: by that same signal, as a shell and `make` expect of a
//! command that was interrupted (a shell shows 128 + its number).

/// Ends the process by `signal` with its default action.
pub fn end_by_signal(signal: libc::c_int) -> ! {
    // SAFETY: signal(2) and raise(3) with a valid signal number; restoring the default action first replaces
    // tokio's handler, so the raise terminates the process.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    // Not reached for the signals the binaries catch (SIGINT, SIGTERM, SIGHUP): their default is to terminate.
    std::process::exit(128 + signal)
}
