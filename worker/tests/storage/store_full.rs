//! Item 2: `coordinator run --out` on a disk that fills mid-run. Before the fix the SQLite writer stayed inside
//! a failed transaction ("begin_with at non-zero transaction depth" on every later write), `/healthz` kept
//! answering 200 and the run never ended, not even once space was freed.
//!
//! Now: `/healthz` answers 503 with the store's error, `run` exits 2 within seconds naming the store file, and
//! started again on the same `--out` once there is space it resumes the run and ends done with every cell,
//! recomputing none that was reported before the disk filled.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Proc, RUN_TIMEOUT, TailsOnPanic, root, wait_for};
use crate::tmpfs::Tmpfs;

/// Everything `run --out` writes: the store, the artifacts (the model and the packed set, about 3 MB), the
/// worker's cache (as much again) and the logs.
const DISK_BYTES: u64 = 64 << 20;

#[test]
fn a_local_run_whose_disk_fills_stops_with_the_reason_and_resumes_with_nothing_lost_once_there_is_space() {
    let scratch = common::scratch("store_full");
    let _tails = TailsOnPanic(scratch.clone());
    let model = root().join("models/ch_PP-OCRv3_det_infer.onnx");
    let data = scratch.join("data");
    common::synth("det", "3", "11", &data);
    let config = scratch.join("det.yml");
    let sections = "Sensitivity:\n  ratios: [0.3, 0.6]\n  skip: ['conv2d_transpose_*', 'conv2d_[3-9]*']\n";
    std::fs::write(&config, common::det_config(&model, &data, sections)).unwrap();
    let disk = Tmpfs::mount(&scratch.join("disk"), DISK_BYTES);
    let out = disk.dir.join("out");
    let worker_log = out.join("logs/worker-1.log");

    // 1. The disk fills once two cells are reported.
    let http = common::free_port();
    let mut first = start_run(&config, &out, http, &scratch.join("run-1.log"));
    wait_for(RUN_TIMEOUT, "two cells completed", || {
        (completed_jobs(&read(&worker_log)).len() >= 2).then_some(())
    });
    let filler = disk.fill(0);
    let filled = Instant::now();
    let mut unhealthy = None;
    let status = wait_for(Duration::from_secs(60), "run to stop on the full disk", || {
        if unhealthy.is_none() {
            unhealthy = healthz(http).filter(|(code, _)| *code == 503);
        }
        first.try_wait().unwrap()
    });
    let stopped_after = filled.elapsed();
    let stderr = read(&scratch.join("run-1.log"));
    assert_eq!(status.code(), Some(2), "run on a full disk: {status}\n{stderr}");
    let reason = stderr.lines().last().unwrap_or_default();
    for named in ["sensgrid.db", "cannot be written", "full"] {
        assert!(
            reason.contains(named),
            "run's last line does not name {named:?}: {reason}"
        );
    }
    assert!(
        stopped_after < Duration::from_secs(30),
        "run took {stopped_after:?} to stop"
    );
    let (_, body) = unhealthy.expect("/healthz never answered 503 while the disk was full");
    assert!(body.contains("writes failing"), "/healthz: {body}");
    let before = read(&worker_log);
    let reported_before = completed_jobs(&before);

    // 2. With space again, the same --out resumes and ends done, recomputing no cell reported before.
    std::fs::remove_file(filler).unwrap();
    let mut second = start_run(&config, &out, common::free_port(), &scratch.join("run-2.log"));
    let status = wait_for(RUN_TIMEOUT, "the resumed run to end", || second.try_wait().unwrap());
    let stderr = read(&scratch.join("run-2.log"));
    assert!(status.success(), "resumed run: {status}\n{stderr}");
    assert!(
        stderr.contains("resuming run"),
        "the second run did not resume: {stderr}"
    );
    let after = read(&worker_log);
    let recomputed: BTreeSet<_> = completed_jobs(&after[before.len()..])
        .intersection(&reported_before)
        .cloned()
        .collect();
    assert!(
        recomputed.is_empty(),
        "jobs reported before the disk filled ran again: {recomputed:?}"
    );
    let csv = read(&out.join("sensitivities.csv"));
    // The header, and a row per cell: the groups left by `skip`, at two ratios each.
    assert!(csv.lines().count() > 2, "sensitivities.csv: {csv}");
    assert!(!csv.contains("NaN"), "sensitivities.csv: {csv}");
}

fn start_run(config: &Path, out: &Path, http: u16, log: &Path) -> Proc {
    let log = std::fs::File::create(log).unwrap();
    Proc(
        Command::new(common::coordinator_bin())
            .args(["run", "--workers", "1", "--device", "cpu", "-c"])
            .arg(config)
            .arg("--out")
            .arg(out)
            .args(["--http", &format!("127.0.0.1:{http}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The job ids of a worker log's `completed` events (each event's span names its job).
fn completed_jobs(log: &str) -> BTreeSet<String> {
    log.lines()
        .filter(|line| line.contains(": completed"))
        .filter_map(|line| {
            let start = line.find("job_id=")? + "job_id=".len();
            let id: String = line[start..].chars().take_while(char::is_ascii_digit).collect();
            (!id.is_empty()).then_some(id)
        })
        .collect()
}

/// `GET /healthz` on the run's dashboard port: the status code and body, `None` when it does not answer.
fn healthz(port: u16) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())?;
    Some((code, body))
}
