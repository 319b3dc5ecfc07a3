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

/// `coordinator serve` on this test's database, with the given extra flags.
pub(crate) fn serve_command(connect: &sqlx::postgres::PgConnectOptions, artifact_dir: &std::path::Path) -> Command {
    let database = connect.get_database().expect("the test database has a name");
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for the tests");
    let (server, _) = base.rsplit_once('/').expect("DATABASE_URL ends in /<database>");
    let mut command = Command::new(env!("CARGO_BIN_EXE_coordinator"));
    command
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--worker-token",
            "w",
            "--admin-token",
            "a",
        ])
        .args([
            "--heartbeat",
            "250ms",
            "--lease",
            "2s",
            "--sweep",
            "100ms",
            "--max-attempts",
            "2",
        ])
        .arg("--artifact-dir")
        .arg(artifact_dir)
        .env("DATABASE_URL", format!("{server}/{database}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    command
}

/// Reads a started `coordinator serve`'s first stdout line, `listening on ADDR` (printed once it is bound and
/// migrated), and answers ADDR.
pub(crate) async fn listening_addr(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .expect("reading the first line");
    line.trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("expected 'listening on ADDR' on stdout, got {line:?}"))
        .to_owned()
}

/// Sends SIGTERM to `child` and waits for it, answering what it wrote.
pub(crate) async fn terminate(child: std::process::Child) -> std::process::Output {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap()
}

#[sqlx::test(migrations = false)]
async fn serve_prints_the_bound_address_serves_and_stops_on_sigterm(
    _pool: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let artifact_dir = tempfile::tempdir().unwrap();
    let mut child = serve_command(&connect, artifact_dir.path())
        .spawn()
        .expect("starting coordinator serve");
    let addr = listening_addr(&mut child).await;
    assert!(!addr.ends_with(":0"), "the real port is printed: {addr}");

    let channel = sensgrid_coordinator::client::connect(&format!("http://{addr}"), None)
        .await
        .unwrap();
    let mut worker = sensgrid_coordinator::client::worker_client(channel, "w").unwrap();
    let request = sensgrid_proto::v1::RegisterRequest {
        name: "cli".into(),
        device: "cpu".into(),
    };
    let registered = worker.register(request).await.unwrap().into_inner();
    assert_eq!(registered.heartbeat_interval_ms, 250, "--heartbeat reaches the workers");

    let output = terminate(child).await;
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn serve_refuses_a_heartbeat_not_shorter_than_the_lease() {
    let artifact_dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args([
            "serve",
            "--worker-token",
            "w",
            "--admin-token",
            "a",
            "--heartbeat",
            "20s",
        ])
        .arg("--artifact-dir")
        .arg(artifact_dir.path())
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--heartbeat: expected less than --lease (20s), got 20s"),
        "{stderr}"
    );
}
