//! The binary's log output: the real `coordinator serve --log-format json` on this test's database, driven
//! through `sensgrid_client` as a worker would, writes nothing but JSON objects on stderr, and the
//! leases it hands out and the run's end carry their run, job and worker ids as fields.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sensgrid_client::{self as client, WorkerClient};
use sensgrid_proto::v1 as pb;
use serde_json::Value;

const WORKER_TOKEN: &str = "w";
const ADMIN_TOKEN: &str = "a";

#[sqlx::test(migrations = false)]
async fn json_logs_are_one_object_per_line_with_run_job_and_worker_ids(
    _pool: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let artifact_dir = tempfile::tempdir().unwrap();
    let database = connect.get_database().expect("the test database has a name");
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL is set for the tests");
    let (server, _) = base.rsplit_once('/').expect("DATABASE_URL ends in /<database>");
    let mut child = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
        .args(["--worker-token", WORKER_TOKEN, "--admin-token", ADMIN_TOKEN])
        .arg("--artifact-dir")
        .arg(artifact_dir.path())
        .env("DATABASE_URL", format!("{server}/{database}"))
        // The flag, not the environment, decides the level here.
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting coordinator serve");
    let addr = crate::cli::listening_addr(&mut child).await;

    let endpoint = format!("http://{addr}");
    let mut worker = client::worker_client(client::connect(&endpoint, None).await.unwrap(), WORKER_TOKEN).unwrap();
    let mut admin = client::admin_client(client::connect(&endpoint, None).await.unwrap(), ADMIN_TOKEN).unwrap();
    let model_digest = client::upload_artifact(&mut worker, b"a model", "application/onnx")
        .await
        .unwrap();
    let dataset_digest = client::upload_artifact(&mut worker, b"a dataset", "application/x-tar")
        .await
        .unwrap();
    let run_id = admin
        .create_run(pb::CreateRunRequest {
            config_yaml: "Global:\n  use_gpu: false\n".into(),
            model_digest,
            dataset_digest,
            criterion: "l1_norm".into(),
            cells: vec![pb::Cell {
                group_key: "conv1".into(),
                ratio: 0.5,
                result_json: String::new(),
            }],
            spec_json: r#"{"name": "log test", "metric": "hmean"}"#.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .run_id;
    let worker_id = worker
        .register(pb::RegisterRequest {
            name: "log-test".into(),
            device: "cpu".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    let baseline = work_one(&mut worker, worker_id, 0.8).await;
    let cell = work_one(&mut worker, worker_id, 0.6).await;
    assert_eq!(cell.group_key, "conv1", "the cell follows the baseline");

    // The pipeline ends the run when the last completion wakes it, or at the next sweep (2 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let run = admin.get_run(pb::GetRunRequest { run_id }).await.unwrap().into_inner();
        if run.state() == pb::RunState::Done {
            break;
        }
        assert!(Instant::now() < deadline, "run {run_id} is still {}", run.state());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let output = crate::cli::terminate(child).await;
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    assert!(output.status.success(), "exit {:?}: {stderr}", output.status);

    let events: Vec<Value> = stderr
        .lines()
        .map(|line| {
            let event: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("a stderr line is not JSON ({e}): {line:?}"));
            assert!(
                event["timestamp"].is_string() && event["level"].is_string() && event["message"].is_string(),
                "an event without timestamp, level or message: {line}"
            );
            event
        })
        .collect();
    let leased = |job: &pb::Job| {
        events
            .iter()
            .find(|e| e["message"] == "job leased" && e["job_id"] == job.job_id)
            .unwrap_or_else(|| panic!("no 'job leased' event for job {}: {stderr}", job.job_id))
    };
    let baseline_leased = leased(&baseline);
    assert_eq!(
        (
            &baseline_leased["run_id"],
            &baseline_leased["worker_id"],
            &baseline_leased["epoch"],
            &baseline_leased["kind"]
        ),
        (
            &Value::from(run_id),
            &Value::from(worker_id),
            &Value::from(baseline.lease_epoch),
            &Value::from("baseline")
        ),
        "{baseline_leased}"
    );
    let cell_leased = leased(&cell);
    assert_eq!(
        (
            &cell_leased["run_id"],
            &cell_leased["worker_id"],
            &cell_leased["kind"],
            &cell_leased["group"],
            &cell_leased["ratio"]
        ),
        (
            &Value::from(run_id),
            &Value::from(worker_id),
            &Value::from("cell"),
            &Value::from("conv1"),
            &Value::from(0.5)
        ),
        "{cell_leased}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["message"] == "run ended" && e["run_id"] == run_id && e["state"] == "done"),
        "no 'run ended' event for run {run_id}: {stderr}"
    );
}

/// Polls for the next job and completes it with this hmean.
async fn work_one(worker: &mut WorkerClient, worker_id: i64, hmean: f64) -> pb::Job {
    let job = worker
        .poll_job(pb::PollJobRequest {
            worker_id,
            wait_ms: 5_000,
            complete: None,
        })
        .await
        .unwrap()
        .into_inner()
        .job
        .expect("a job");
    worker
        .complete_job(pb::CompleteJobRequest {
            job_id: job.job_id,
            lease_epoch: job.lease_epoch,
            metrics: [("hmean".to_owned(), hmean)].into(),
            ..Default::default()
        })
        .await
        .unwrap();
    job
}

#[test]
fn a_bad_log_level_is_one_line_naming_the_flag() {
    let output = Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args([
            "--log-level",
            "info,[",
            "migrate",
            "--database-url",
            "postgres://nobody@127.0.0.1:1/none",
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("coordinator: --log-level 'info,['"), "{stderr}");
}
