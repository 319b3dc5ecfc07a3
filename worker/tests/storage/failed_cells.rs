//! Item 3 of the storage-faults issue: failed cells, on a real `coordinator serve`, real `worker join` processes
//! and the real client commands, PP-OCRv3 det on four synthetic images.
//!
//! 1. A worker whose cache is on a tmpfs too small for the model hands each job back without spending an
//!    attempt and waits, while a healthy worker does them: the run ends done, every job at its first attempt,
//!    none failed. Once the tmpfs is enlarged, the same worker runs the next run by itself. (Before: the full
//!    worker burnt the baseline's three attempts in seconds and the run failed.)
//! 2. A run whose cells failed for good (a worker that reports its full disk as an ordinary failure, as one
//!    from before the hand-back does) ends done with failed cells, and says so: `watch` exits 1 naming each
//!    (group, ratio, error), `status` and the dashboard's API list them, `results` warns; `coordinator retry`
//!    queues them again and a healthy worker finishes the run with every cell. (Before: `watch` exited 0 and
//!    nothing could retry them.)
//! 3. `coordinator run` on the same `--out` queues a run's failed cells again when it resumes. (Before: it said
//!    "resuming" and left them failed.)

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use sensgrid_client as client;
use sensgrid_proto::v1::{CompleteJobRequest, FailJobRequest, JobKind, PollJobRequest, RegisterRequest};
use serde_json::Value;

use crate::common::{self, CLIENT_TIMEOUT, Cluster, Database, RUN_TIMEOUT, TailsOnPanic, WORKER_TOKEN, path, root};
use crate::tmpfs::Tmpfs;

/// A tmpfs this small holds the cache's folders and lock but not the 2.4 MB model.
const FULL_CACHE_BYTES: u64 = 256 * 1024;

/// A det config on a fresh synthetic set of four images: one or two groups at two ratios, so a run is seconds.
fn small_config(scratch: &Path) -> std::path::PathBuf {
    let data = scratch.join("data");
    common::synth("det", "4", "7", &data);
    let model = root().join("models/ch_PP-OCRv3_det_infer.onnx");
    let sections = "Sensitivity:\n  ratios: [0.3, 0.6]\n  skip: ['conv2d_transpose_*', 'conv2d_[1-9]*']\n";
    let config = scratch.join("det.yml");
    std::fs::write(&config, common::det_config(&model, &data, sections)).unwrap();
    config
}

#[test]
fn a_full_cache_worker_hands_its_jobs_back_without_spending_attempts_and_a_healthy_one_does_them() {
    let scratch = common::scratch("failed_cells_hand_back");
    let _tails = TailsOnPanic(scratch.clone());
    let config = small_config(&scratch);
    let cache = Tmpfs::mount(&scratch.join("cache-full"), FULL_CACHE_BYTES);

    let database = Database::create("failed_cells_hand_back");
    let mut cluster = Cluster::new(&scratch, &database.url);
    cluster.start_coordinator();
    cluster.start_worker("full");
    let run = cluster.submit(&config);

    // Alone, the full worker gives the baseline back again and again: queued, no attempt spent.
    let handed_back = format!(
        "SELECT count(*) FROM job WHERE run_id = {run} AND kind = 'baseline' AND state = 'queued' \
         AND attempt = 0 AND last_error LIKE '%No space left on device%'"
    );
    common::wait_for(
        Duration::from_secs(60),
        "the full worker to hand the baseline back",
        || (database.psql(&handed_back) == "1").then_some(()),
    );
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(
        database.psql(&format!(
            "SELECT state || ' ' || attempt FROM job WHERE run_id = {run} AND kind = 'baseline'"
        )),
        "queued 0",
        "the full worker spent the baseline's attempts"
    );
    let log = std::fs::read_to_string(scratch.join("full.log")).unwrap();
    assert!(log.contains("handing the job back"), "full.log: {log}");
    assert!(
        log.contains("waiting before the next job"),
        "the full worker did not back off: {log}"
    );

    cluster.start_worker("healthy");
    let watched = cluster.client(&["watch", &run.to_string()], RUN_TIMEOUT);
    assert_eq!(watched.status.code(), Some(0), "watch: {}", watched.stderr);
    let status = cluster.client_json(&["status", &run.to_string(), "--json"]);
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(status["failed"], Value::Array(Vec::new()), "{status}");
    assert_eq!(
        database.psql(&format!(
            "SELECT count(*) FROM job WHERE run_id = {run} AND (state <> 'done' OR attempt <> 1)"
        )),
        "0",
        "every job done at its first attempt: {}",
        database.psql(&format!(
            "SELECT kind, group_key, ratio, state, attempt, last_error FROM job WHERE run_id = {run}"
        ))
    );
    assert_eq!(
        database.psql(&format!(
            "SELECT DISTINCT w.name FROM job j JOIN worker w ON w.id = j.done_by WHERE j.run_id = {run}"
        )),
        "healthy"
    );

    // Space given back, the same worker takes up work again by itself, no attempt lost on the way.
    cluster.stop_worker("healthy");
    cache.resize(256 * 1024 * 1024);
    let next = cluster.submit(&config);
    let watched = cluster.client(&["watch", &next.to_string()], RUN_TIMEOUT);
    assert_eq!(watched.status.code(), Some(0), "watch: {}", watched.stderr);
    assert_eq!(
        database.psql(&format!(
            "SELECT DISTINCT w.name || ' ' || j.attempt FROM job j JOIN worker w ON w.id = j.done_by \
             WHERE j.run_id = {next}"
        )),
        "full 1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_cells_are_named_on_every_surface_and_retry_runs_them_again() {
    let scratch = common::scratch("failed_cells_retry");
    let _tails = TailsOnPanic(scratch.clone());
    let config = small_config(&scratch);
    let database = Database::create("failed_cells_retry");
    let mut cluster = Cluster::new(&scratch, &database.url);
    let http = common::free_port();
    cluster.http_port = Some(http);
    cluster.start_coordinator();
    let run = cluster.submit(&config);

    // A worker that reports its full disk as an ordinary failure: the baseline goes through (a made-up
    // metric), every cell fails until its three attempts are spent.
    let channel = client::connect(&cluster.url(), None).await.unwrap();
    let mut worker = client::worker_client(channel, WORKER_TOKEN).unwrap();
    let worker_id = worker
        .register(RegisterRequest {
            name: "old".into(),
            device: "cpu".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .worker_id;
    let error = "cache/models: No space left on device (os error 28)";
    let deadline = std::time::Instant::now() + RUN_TIMEOUT;
    loop {
        let state = database.psql(&format!("SELECT state FROM run WHERE id = {run}"));
        if state != "running" {
            assert_eq!(state, "done", "the run ends done with its failed cells");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the cells never failed");
        let polled = worker
            .poll_job(PollJobRequest {
                worker_id,
                wait_ms: 1000,
                complete: None,
            })
            .await
            .unwrap()
            .into_inner();
        let Some(job) = polled.job else { continue };
        if job.kind() == JobKind::Baseline {
            worker
                .complete_job(CompleteJobRequest {
                    job_id: job.job_id,
                    lease_epoch: job.lease_epoch,
                    metrics: [("hmean".to_owned(), 0.5)].into_iter().collect(),
                    device: "cpu".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
        } else {
            worker
                .fail_job(FailJobRequest {
                    job_id: job.job_id,
                    lease_epoch: job.lease_epoch,
                    error: error.into(),
                    retryable: true,
                    local: false,
                })
                .await
                .unwrap();
        }
    }
    let cells: Vec<(String, String)> = database
        .psql(&format!(
            "SELECT group_key || '|' || ratio FROM job WHERE run_id = {run} AND kind = 'cell' AND state = 'failed' \
             AND attempt = 3 ORDER BY id"
        ))
        .lines()
        .map(|l| {
            let (group, ratio) = l.split_once('|').unwrap();
            (group.to_owned(), ratio.to_owned())
        })
        .collect();
    let total: usize = database
        .psql(&format!(
            "SELECT count(*) FROM job WHERE run_id = {run} AND kind = 'cell'"
        ))
        .parse()
        .unwrap();
    assert!(
        !cells.is_empty() && cells.len() == total,
        "every cell failed: {cells:?} of {total}"
    );

    // watch: exit 1, each failed cell named with its ratio and error.
    let watched = cluster.client(&["watch", &run.to_string()], CLIENT_TIMEOUT);
    assert_eq!(watched.status.code(), Some(1), "watch: {}", watched.stderr);
    let last = watched.stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains(&format!("{} of {total} cells failed", cells.len())),
        "watch: {}",
        watched.stderr
    );
    for (group, ratio) in &cells {
        assert!(
            last.contains(&format!("cell {group} at {ratio} (attempt 3): {error}")),
            "watch does not name {group} at {ratio}: {last}"
        );
    }
    assert!(last.contains(&format!("coordinator retry {run}")), "{last}");

    // status, text and JSON.
    let text = cluster.client_ok(&["status", &run.to_string()], CLIENT_TIMEOUT).stdout;
    assert!(
        text.lines()
            .next()
            .unwrap_or_default()
            .ends_with(&format!("done ({} of {total} cells failed)", cells.len())),
        "status: {text}"
    );
    for (group, ratio) in &cells {
        assert!(text.contains(&format!("cell {group} at {ratio}")), "status: {text}");
    }
    let status = cluster.client_json(&["status", &run.to_string(), "--json"]);
    assert_eq!(status["failed"].as_array().map(Vec::len), Some(cells.len()), "{status}");
    assert_eq!(status["failed"][0]["error"], error, "{status}");
    let listed = cluster.client_ok(&["status"], CLIENT_TIMEOUT).stdout;
    assert!(
        listed.contains(&format!("{} failed jobs", cells.len())),
        "status: {listed}"
    );

    // The dashboard's API.
    let api = http_get_json(http, &format!("/api/runs/{run}"));
    assert_eq!(
        api["progress"]["failed"].as_array().map(Vec::len),
        Some(cells.len()),
        "{api}"
    );

    // results: the files, and a warning naming what they miss.
    let results = cluster.client(
        &["results", &run.to_string(), "--out", path(&scratch.join("results"))],
        CLIENT_TIMEOUT,
    );
    assert!(
        results
            .stderr
            .contains(&format!("{} of {total} cells failed", cells.len())),
        "results: {}",
        results.stderr
    );

    // Retry: the failed cells are queued with fresh attempts, a healthy worker finishes them.
    cluster.start_worker("healthy");
    let retried = cluster.client_ok(&["retry", &run.to_string()], CLIENT_TIMEOUT).stdout;
    assert!(
        retried.contains(&format!("({} failed jobs queued again)", cells.len())),
        "retry: {retried}"
    );
    let watched = cluster.client(&["watch", &run.to_string()], RUN_TIMEOUT);
    assert_eq!(watched.status.code(), Some(0), "watch after retry: {}", watched.stderr);
    let status = cluster.client_json(&["status", &run.to_string(), "--json"]);
    assert_eq!(status["state"], "done", "{status}");
    assert_eq!(
        status["cells"]["by_state"]["done"].as_u64(),
        Some(total as u64),
        "{status}"
    );
    assert_eq!(status["failed"], Value::Array(Vec::new()), "{status}");

    // A cancelled run is not reopened.
    let other = cluster.submit(&config);
    cluster.client_ok(&["cancel", &other.to_string()], CLIENT_TIMEOUT);
    let refused = cluster.client(&["retry", &other.to_string()], CLIENT_TIMEOUT);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "retry of a cancelled run: {}",
        refused.stderr
    );
    assert!(refused.stderr.contains("cancelled"), "{}", refused.stderr);
}

/// `coordinator run` on the same `--out` queues a finished run's failed cells again: the cells of a local run
/// that ended done with failures (left so in its SQLite store, as a full cache left them before the hand-back)
/// are computed on resuming, and the run ends with every cell.
#[test]
fn a_resumed_local_run_queues_its_failed_cells_again() {
    let scratch = common::scratch("failed_cells_local");
    let _tails = TailsOnPanic(scratch.clone());
    let config = small_config(&scratch);
    let out = scratch.join("out");
    let run_local = |what: &str| {
        let log = scratch.join(format!("run-{what}.log"));
        let status = std::process::Command::new(common::coordinator_bin())
            .args([
                "run",
                "-c",
                path(&config),
                "--out",
                path(&out),
                "--workers",
                "1",
                "--device",
                "cpu",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .status()
            .unwrap();
        (status, std::fs::read_to_string(&log).unwrap())
    };
    let (status, log) = run_local("first");
    assert!(status.success(), "coordinator run: {status}: {log}");

    let db = out.join("sensgrid.db");
    let sqlite = |sql: &str| common::succeed(std::process::Command::new("sqlite3").arg(&db).arg(sql));
    let error = "worker 1 (local-1): cache/models: No space left on device (os error 28)";
    sqlite(&format!(
        "UPDATE job SET state = 'failed', result = NULL, done_by = NULL, attempt = 3, last_error = '{error}' \
         WHERE kind = 'cell'"
    ));
    let cells: usize = sqlite("SELECT count(*) FROM job WHERE kind = 'cell'")
        .trim()
        .parse()
        .unwrap();
    assert!(cells > 0);

    let (status, log) = run_local("resumed");
    assert!(status.success(), "coordinator run, resumed: {status}: {log}");
    assert!(log.contains(&format!("{cells} failed jobs queued again")), "{log}");
    assert_eq!(
        sqlite("SELECT state || ' ' || attempt FROM job WHERE kind = 'cell' GROUP BY state, attempt").trim(),
        "done 1",
        "{log}"
    );
    assert_eq!(sqlite("SELECT state FROM run").trim(), "done");
    let csv = std::fs::read_to_string(out.join("sensitivities.csv")).unwrap();
    assert_eq!(csv.lines().count(), cells + 1, "a line per cell: {csv}");
}

/// `GET path` on the coordinator's HTTP port: the JSON body.
fn http_get_json(port: u16, path: &str) -> Value {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "GET {path}: {head}");
    // A chunked body: the JSON between its first chunk size and the trailer.
    let json = body
        .find('{')
        .map(|start| &body[start..=body.rfind('}').unwrap()])
        .unwrap_or(body);
    serde_json::from_str(json).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}
