//! Health: `coordinator serve --http` answers the standard gRPC health service and `GET /healthz`, and
//! `/healthz` says 503 once the database stops answering.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// `GET path` over a fresh connection: the status code and the body.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, "GET", path, &[]).await
}

/// `METHOD path` with `headers` (and no body) over a fresh connection: the status code and the body.
pub async fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connecting");
    let headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n{headers}\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a header and a body");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status code in {head:?}"));
    (code, body.to_owned())
}

/// Reads one stdout line of the child and strips `prefix` from it.
fn read_line(stdout: &mut impl std::io::BufRead, prefix: &str) -> SocketAddr {
    let mut line = String::new();
    stdout.read_line(&mut line).expect("reading stdout");
    line.trim_end()
        .strip_prefix(prefix)
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("expected '{prefix}ADDR', got {line:?}"))
}

#[sqlx::test(migrations = false)]
async fn serve_answers_grpc_health_and_healthz(
    _pool: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let artifact_dir = tempfile::tempdir().unwrap();
    let mut child = crate::cli::serve_command(&connect, artifact_dir.path())
        .args(["--http", "127.0.0.1:0"])
        .spawn()
        .expect("starting coordinator serve");
    let stdout = child.stdout.take().unwrap();
    // Blocks until both listeners are bound (and the database migrated).
    let (grpc, http) = tokio::task::spawn_blocking(move || {
        let mut stdout = std::io::BufReader::new(stdout);
        (
            read_line(&mut stdout, "listening on "),
            read_line(&mut stdout, "http on "),
        )
    })
    .await
    .unwrap();

    let channel = sensgrid_client::connect(&format!("http://{grpc}"), None).await.unwrap();
    // No token: probes and balancers ask without one.
    let mut health = HealthClient::new(channel);
    for service in ["", "sensgrid.v1.WorkerService", "sensgrid.v1.AdminService"] {
        let request = HealthCheckRequest {
            service: service.into(),
        };
        let status = health.check(request).await.unwrap().into_inner().status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let unknown = HealthCheckRequest {
        service: "sensgrid.v1.NoSuchService".into(),
    };
    assert_eq!(health.check(unknown).await.unwrap_err().code(), tonic::Code::NotFound);
    assert_eq!(get(http, "/healthz").await, (200, "ok".into()));
    assert_eq!(get(http, "/nowhere").await.0, 404);

    let output = crate::cli::terminate(child).await;
    assert!(
        output.status.success(),
        "both listeners stop on SIGTERM: exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}
