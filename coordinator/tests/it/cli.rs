//! The built binary starts on its own.

use std::process::Command;

#[test]
fn help_starts_without_ld_library_path() {
    let output = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .arg("--help")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("running coordinator --help");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("Usage: coordinator"), "{stdout}");
    assert!(stdout.contains("migrate"), "{stdout}");
}
