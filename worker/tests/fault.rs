//! Fault tests: a real `coordinator serve` and real `worker join` processes on a private Postgres cluster
//! (`pg_createcluster <version> fault -p 5433`, created on first use, started and stopped here), running real
//! cells of PP-OCRv3 det on a small synthetic set.
//!
//! One run meets three faults in turn: a worker killed with SIGKILL mid-job, the coordinator killed and
//! started again, and Postgres restarted. Afterwards every job must be done, with the metrics the engine
//! gives without any fault (computed in this process first), and with exactly one accepted completion: across
//! every worker's log, each job is reported completed under one lease epoch only.
//!
//! This is a test binary of its own with one test, so cargo runs it after the others, alone: it restarts
//! its cluster and keeps the CPU busy with two workers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sensgrid_client::{self as client, AdminClient};
use sensgrid_eval::{Config, bundle};
use sensgrid_model::prune::{Criterion, Plan};
use sensgrid_proto::v1::{Cell, CreateRunRequest, GetRunRequest, GetRunResponse, JobKind, JobState};
use sensgrid_worker::evaluate::Session;

use common::{Log, Proc, coordinator_bin, free_port, succeed};

const CLUSTER: &str = "fault";
const CLUSTER_PORT: &str = "5433";
const DATABASE: &str = "sensgrid_fault";
const WORKER_TOKEN: &str = "fault-worker-token";
const ADMIN_TOKEN: &str = "fault-admin-token";
/// Images in the eval set: each job takes a second or two on this machine's CPU.
const IMAGES: &str = "6";
/// Groups whose cells the run holds, each at two ratios.
const GROUPS: usize = 6;
const RATIOS: [f64; 2] = [0.3, 0.6];
/// How long the whole run may take before the test gives up.
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_a_restarted_coordinator_and_a_restarted_postgres_lose_nothing_and_count_nothing_twice() {
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fault");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let coordinator_bin = coordinator_bin();

    // The set, the config and the reference metrics, before any process competes for the CPU.
    let data = scratch.join("data");
    succeed(
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(["synth", "det", "--count", IMAGES, "--seed", "21", "--out"])
            .arg(&data),
    );
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let config_path = root.join("eval/tests/fixtures/configs/ch_det_mv3_db_v2.0.yml");
    let config_yaml = std::fs::read_to_string(&config_path).unwrap();
    let model = root.join("models/ch_PP-OCRv3_det_infer.onnx");
    let overrides = [
        format!("Global.pretrained_model={}", model.display()),
        format!("Eval.dataset.data_dir={}", data.display()),
        format!("Eval.dataset.label_file_list=[{}]", data.join("label.txt").display()),
    ];
    let config = Config::load(&config_path, &overrides).unwrap();
    let mut bundle_bytes = Vec::new();
    bundle::pack(&config, &mut bundle_bytes).unwrap();
    let (cells, expected) = reference_metrics(config);

    let cluster = Cluster::start();
    let coordinator_port = free_port();
    let coordinator_url = format!("http://127.0.0.1:{coordinator_port}");
    let artifacts = scratch.join("artifacts");
    let database_url = cluster.url();
    // The coordinator, started once and again after its kill: the same port, database and artifacts.
    let start = |nth| {
        start_coordinator(
            &coordinator_bin,
            &database_url,
            coordinator_port,
            &artifacts,
            &scratch,
            nth,
        )
    };
    let mut coordinator = start(1);
    let channel = client::connect(&coordinator_url, None).await.unwrap();
    let mut uploads = client::worker_client(channel.clone(), WORKER_TOKEN).unwrap();
    let model_digest = client::upload_artifact_file(&mut uploads, &model, "application/onnx")
        .await
        .unwrap();
    let dataset_digest = client::upload_artifact(&mut uploads, &bundle_bytes, "application/x-tar")
        .await
        .unwrap();
    let mut admin = client::admin_client(channel, ADMIN_TOKEN).unwrap();
    let run_id = admin
        .create_run(CreateRunRequest {
            config_yaml,
            model_digest,
            dataset_digest,
            criterion: "l1_norm".into(),
            cells: cells
                .iter()
                .map(|(group_key, ratio)| Cell {
                    group_key: group_key.clone(),
                    ratio: *ratio,
                    result_json: String::new(),
                })
                .collect(),
            spec_json: r#"{"name": "fault test", "metric": "hmean"}"#.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .run_id;
    let jobs = cells.len() + 1;

    let mut workers = vec![
        start_worker(&coordinator_url, &scratch, "w1"),
        start_worker(&coordinator_url, &scratch, "w2"),
    ];

    // Fault 1: kill -9 w1 in the middle of a job; that job must be completed by another worker.
    let (killed_job, killed_epoch) = wait_until(&mut admin, run_id, "w1 to start a job", |_| {
        Log::read(&scratch, "w1").running()
    })
    .await;
    // Into the evaluation, which takes seconds, so w1 is still in it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let still_running = Log::read(&scratch, "w1").running();
    assert_eq!(
        still_running,
        Some((killed_job, killed_epoch)),
        "w1 finished job {killed_job} before it could be killed"
    );
    workers[0].kill().unwrap();
    workers[0].wait().unwrap();
    eprintln!("fault test: killed w1 during job {killed_job} (epoch {killed_epoch})");
    wait_until(&mut admin, run_id, "the killed job to be completed elsewhere", |run| {
        job_state(run, killed_job).filter(|&state| state == JobState::Done)
    })
    .await;
    // Taken back from w1 and completed by w2 under a later lease.
    let taken_over = Log::read(&scratch, "w2").completions().get(&killed_job).cloned();
    assert!(
        taken_over
            .as_ref()
            .is_some_and(|epochs| epochs.iter().all(|&e| e > killed_epoch)),
        "job {killed_job} was not completed by w2 under an epoch after {killed_epoch}: {taken_over:?}"
    );
    workers.push(start_worker(&coordinator_url, &scratch, "w3"));

    // Fault 2: kill -9 the coordinator mid-run and start it again on the same port and database.
    let done_before = wait_until(&mut admin, run_id, "progress before the coordinator restart", |run| {
        let done = count_done(run);
        (done >= 3 && done < jobs).then_some(done)
    })
    .await;
    coordinator.kill().unwrap();
    coordinator.wait().unwrap();
    eprintln!("fault test: killed the coordinator with {done_before}/{jobs} jobs done");
    tokio::time::sleep(Duration::from_secs(1)).await;
    coordinator = start(2);
    let channel = client::connect(&coordinator_url, None).await.unwrap();
    admin = client::admin_client(channel, ADMIN_TOKEN).unwrap();

    // Fault 3: restart Postgres mid-run.
    let done_before = wait_until(&mut admin, run_id, "progress before the Postgres restart", |run| {
        let done = count_done(run);
        (done > done_before && done < jobs).then_some(done)
    })
    .await;
    eprintln!("fault test: restarting Postgres with {done_before}/{jobs} jobs done");
    cluster.restart();

    let run = wait_until(&mut admin, run_id, "every job to be done", |run| {
        (count_done(run) == jobs).then(|| run.clone())
    })
    .await;

    // Exactly one accepted completion per job, whichever worker and however many attempts.
    let mut epochs: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for name in ["w1", "w2", "w3"] {
        for (job, job_epochs) in Log::read(&scratch, name).completions() {
            epochs.entry(job).or_default().extend(job_epochs);
        }
    }
    for job in &run.jobs {
        let accepted = epochs.get(&job.job_id).map_or(0, BTreeSet::len);
        assert_eq!(
            accepted,
            1,
            "job {} has {accepted} accepted completions: {:?}",
            job.job_id,
            epochs.get(&job.job_id)
        );
    }
    // The same metrics as without faults.
    for job in &run.jobs {
        let key = (job.kind() == JobKind::Cell).then(|| (job.group_key.clone(), job.ratio.to_bits()));
        let want = expected.get(&key).unwrap_or_else(|| panic!("unexpected job {job:?}"));
        let got: BTreeMap<String, f64> = job.metrics.clone().into_iter().collect();
        assert_eq!(
            &got, want,
            "job {} ({:?}) differs from the run without faults",
            job.job_id, key
        );
    }
    assert!(
        job_attempt(&run, killed_job) >= 2,
        "the killed job {killed_job} was not attempted again"
    );

    // An interrupted idle worker leaves at once, with success.
    for (name, worker) in ["w2", "w3"].into_iter().zip(workers.iter_mut().skip(1)) {
        let pid = worker.id().to_string();
        succeed(Command::new("kill").args(["-INT", &pid]));
        let status = wait_exit(worker, Duration::from_secs(20));
        assert!(status.success(), "{name} exited with {status} after Ctrl-C");
    }
    coordinator.kill().unwrap();
    coordinator.wait().unwrap();
}

/// A job as the reference knows it: `None` for the baseline, else the cell's group and ratio (as bits).
type JobKey = Option<(String, u64)>;

/// Each job's metric dict.
type Metrics = BTreeMap<JobKey, BTreeMap<String, f64>>;

/// The cells (the first [`GROUPS`] groups at each of [`RATIOS`]) and the metrics of each job without
/// faults.
fn reference_metrics(config: Config) -> (Vec<(String, f64)>, Metrics) {
    let mut session = Session::open(config, tch::Device::Cpu).unwrap();
    let keys: Vec<String> = session
        .analysis()
        .unwrap()
        .groups
        .iter()
        .take(GROUPS)
        .map(|g| g.key.clone())
        .collect();
    let cells: Vec<(String, f64)> = keys.iter().flat_map(|k| RATIOS.map(|r| (k.clone(), r))).collect();
    let mut expected = BTreeMap::new();
    let baseline = session.evaluate(&mut |_| Ok(())).unwrap();
    expected.insert(None, baseline.into_map());
    for (key, ratio) in &cells {
        let plan = Plan::from([(key.clone(), *ratio)]);
        let metrics = session
            .evaluate_masked(&plan, Criterion::L1Norm, &mut |_| Ok(()))
            .unwrap();
        expected.insert(Some((key.clone(), ratio.to_bits())), metrics.into_map());
    }
    (cells, expected)
}

/// Polls `GetRun` until `check` answers something, for at most [`RUN_TIMEOUT`]. Calls the coordinator does
/// not answer (it is restarting) are retried.
async fn wait_until<T>(
    admin: &mut AdminClient,
    run_id: i64,
    what: &str,
    mut check: impl FnMut(&GetRunResponse) -> Option<T>,
) -> T {
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(run) = admin.get_run(GetRunRequest { run_id }).await {
            let run = run.into_inner();
            if let Some(found) = check(&run) {
                return found;
            }
            last = Some(run);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gave up waiting for {what}; the run: {last:#?}");
}

fn count_done(run: &GetRunResponse) -> usize {
    run.jobs.iter().filter(|j| j.state() == JobState::Done).count()
}

fn job_state(run: &GetRunResponse, job: i64) -> Option<JobState> {
    run.jobs.iter().find(|j| j.job_id == job).map(|j| j.state())
}

fn job_attempt(run: &GetRunResponse, job: i64) -> i32 {
    run.jobs.iter().find(|j| j.job_id == job).map_or(0, |j| j.attempt)
}

/// A private Postgres cluster on port 5433, dropped and created again if it is broken, stopped at the end.
struct Cluster {
    version: String,
}

impl Cluster {
    fn start() -> Cluster {
        let mut versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
            .expect("/etc/postgresql: the fault tests need Debian's postgresql-common (pg_createcluster)")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        versions.sort();
        let version = versions.pop().expect("no Postgres version under /etc/postgresql");
        let cluster = Cluster { version };
        let exists = Path::new("/etc/postgresql")
            .join(&cluster.version)
            .join(CLUSTER)
            .is_dir();
        if !exists {
            succeed(Command::new("pg_createcluster").args([
                &cluster.version,
                CLUSTER,
                "-p",
                CLUSTER_PORT,
                "--",
                "--auth=trust",
            ]));
        }
        if !cluster.ctl("status").success() {
            succeed(Command::new("pg_ctlcluster").args([&cluster.version, CLUSTER, "start"]));
        }
        cluster.wait_ready();
        cluster.psql(&format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"));
        cluster.psql(&format!("CREATE DATABASE {DATABASE}"));
        cluster
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{CLUSTER_PORT}/{DATABASE}")
    }

    fn restart(&self) {
        succeed(Command::new("pg_ctlcluster").args([&self.version, CLUSTER, "restart", "-m", "fast"]));
        self.wait_ready();
    }

    fn ctl(&self, action: &str) -> std::process::ExitStatus {
        Command::new("pg_ctlcluster")
            .args([&self.version, CLUSTER, action])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("running pg_ctlcluster")
    }

    fn wait_ready(&self) {
        for _ in 0..100 {
            let ready = Command::new("pg_isready")
                .args(["--quiet", "--host", "127.0.0.1", "--port", CLUSTER_PORT])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the {CLUSTER} cluster on port {CLUSTER_PORT} did not become ready");
    }

    fn psql(&self, sql: &str) {
        succeed(Command::new("psql").args([
            "-h",
            "127.0.0.1",
            "-p",
            CLUSTER_PORT,
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            sql,
        ]));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.ctl("stop");
    }
}

/// A child process, killed when dropped, so a failing test leaves none behind.
fn start_coordinator(bin: &Path, database_url: &str, port: u16, artifacts: &Path, scratch: &Path, nth: u32) -> Proc {
    let log_path = scratch.join(format!("coordinator-{nth}.log"));
    let log = File::create(&log_path).unwrap();
    let child = Proc(
        Command::new(bin)
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--database-url",
                database_url,
            ])
            .args([
                "--worker-token",
                WORKER_TOKEN,
                "--admin-token",
                ADMIN_TOKEN,
                "--artifact-dir",
            ])
            .arg(artifacts)
            // Short enough that the killed worker's job is back within seconds.
            .args([
                "--heartbeat",
                "250ms",
                "--lease",
                "2s",
                "--sweep",
                "250ms",
                "--max-attempts",
                "10",
            ])
            .args(["--backoff-base", "100ms", "--backoff-cap", "1s"])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::fs::read_to_string(&log_path).unwrap().contains("listening on") {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "the coordinator did not start: {}",
        std::fs::read_to_string(&log_path).unwrap()
    );
}

/// `worker join` as `name`, with its own cache folder (a folder holds one live worker) and its log in `scratch`.
fn start_worker(coordinator: &str, scratch: &Path, name: &str) -> Proc {
    let log = File::create(scratch.join(format!("{name}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_worker"))
        .args([
            "join",
            "--coordinator",
            coordinator,
            "--token",
            WORKER_TOKEN,
            "--device",
            "cpu",
            "--name",
            name,
            "--log-format",
            "json",
        ])
        .arg("--cache-dir")
        .arg(scratch.join(format!("cache-{name}")))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Proc(child)
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the process did not exit within {limit:?}");
}
