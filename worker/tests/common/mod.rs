//! The harness of the real-process tests (`e2e`, `dashboard`): a fresh database on the main Postgres server,
//! a real `coordinator serve` with its `worker join` processes and client commands, children killed on drop,
//! and the polling and command helpers around them. What one test alone needs stays in its own file.
//!
//! Each test binary compiles this module on its own and uses a part of it.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const WORKER_TOKEN: &str = "e2e-worker-token";
pub const ADMIN_TOKEN: &str = "e2e-admin-token";
/// How long one run may take before the test gives up: about a minute on two idle cores, but other builds
/// and tests on the same cores have made one take over three.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a client command other than `watch` may take (`submit` analyses the model and packs the set).
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// `target/release/coordinator` (the profile's folder, next to the worker binary cargo built for the test),
/// built first when it is missing or older than a source it was built from. The worker package does not
/// depend on the coordinator's (a worker links no database code), so `cargo test -p sensgrid-worker` does not
/// build it; `cargo test --workspace` does, and then it is left as it is.
pub fn coordinator_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let worker = Path::new(env!("CARGO_BIN_EXE_worker"));
        let bin = worker.with_file_name("coordinator");
        if !is_current(&bin) {
            build_coordinator(worker, &bin);
        }
        bin
    })
    .clone()
}

/// Whether `bin` exists and is newer than every file of the dep-info cargo writes beside it (`bin.d`: the
/// workspace's sources and the embedded migrations it was built from).
fn is_current(bin: &Path) -> bool {
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let (Some(built), Ok(dep_info)) = (modified(bin), std::fs::read_to_string(bin.with_extension("d"))) else {
        return false;
    };
    let Some((_, sources)) = dep_info.split_once(": ") else {
        return false;
    };
    sources
        .split_whitespace()
        .all(|source| modified(Path::new(source)).is_some_and(|source| source <= built))
}

/// `cargo build -p sensgrid-coordinator --bin coordinator` in the profile `worker` was built in.
fn build_coordinator(worker: &Path, bin: &Path) {
    let profile = match worker.parent().and_then(Path::file_name).and_then(|name| name.to_str()) {
        // The dev profile builds into `debug`; every other profile into a folder of its name.
        Some("debug") => "dev",
        Some(profile) => profile,
        None => panic!("{}: not in a profile's folder", worker.display()),
    };
    let args = [
        "build",
        "--profile",
        profile,
        "-p",
        "sensgrid-coordinator",
        "--bin",
        "coordinator",
    ];
    let command = format!("cargo {}", args.join(" "));
    // `CARGO` is the cargo running this test: the same toolchain and target directory.
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(args)
        .current_dir(root())
        .status()
        .unwrap_or_else(|error| panic!("running `{command}`: {error}"));
    assert!(status.success(), "`{command}` failed ({status}); run it to see why");
    assert!(bin.is_file(), "`{command}` left no {}", bin.display());
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `target/tmp/<test>`, emptied, with the `client/` folder the client commands write their output to.
pub fn scratch(test: &str) -> PathBuf {
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(test);
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(scratch.join("client")).unwrap();
    scratch
}

/// `worker synth KIND --count COUNT --seed SEED --out OUT`: a synthetic eval set.
pub fn synth(kind: &str, count: &str, seed: &str, out: &Path) {
    succeed(
        Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(["synth", kind, "--count", count, "--seed", seed, "--out"])
            .arg(out),
    );
}

/// The coordinator, its workers and the client commands, all on one port, database and artifact dir.
pub struct Cluster {
    pub bin: PathBuf,
    pub scratch: PathBuf,
    pub port: u16,
    /// The port of `serve --http` (the dashboard, its API and /metrics), when the coordinator serves one.
    pub http_port: Option<u16>,
    pub database_url: String,
    pub coordinator: Option<Proc>,
    /// How many times the coordinator was started: each start has its own log.
    pub starts: u32,
    pub workers: Vec<(String, Proc)>,
    /// Client commands run so far: each has its own output files.
    pub commands: u32,
}

/// A client command's outcome.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Cluster {
    /// A cluster of nothing yet, on a free port, writing its logs and artifacts under `scratch`.
    pub fn new(scratch: &Path, database_url: &str) -> Cluster {
        Cluster {
            bin: coordinator_bin(),
            scratch: scratch.to_owned(),
            port: free_port(),
            http_port: None,
            database_url: database_url.to_owned(),
            coordinator: None,
            starts: 0,
            workers: Vec::new(),
            commands: 0,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn start_coordinator(&mut self) {
        self.starts += 1;
        let log_path = self.scratch.join(format!("coordinator-{}.log", self.starts));
        let log = File::create(&log_path).unwrap();
        let mut command = Command::new(&self.bin);
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--database-url", &self.database_url])
            .args(["--worker-token", WORKER_TOKEN, "--admin-token", ADMIN_TOKEN])
            .arg("--artifact-dir")
            .arg(self.scratch.join("artifacts"))
            // Short enough that a killed worker's job is back within seconds.
            .args(["--heartbeat", "1s", "--lease", "4s", "--sweep", "500ms"]);
        if let Some(http) = self.http_port {
            command.args(["--http", &format!("127.0.0.1:{http}")]);
        }
        let child = command.stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
        self.coordinator = Some(Proc(child));
        // `http on ADDR` comes after `listening on ADDR`.
        let ready = if self.http_port.is_some() {
            "http on"
        } else {
            "listening on"
        };
        wait_for(Duration::from_secs(60), "the coordinator to listen", || {
            std::fs::read_to_string(&log_path)
                .unwrap()
                .contains(ready)
                .then_some(())
        });
    }

    pub fn kill_coordinator(&mut self) {
        let mut coordinator = self.coordinator.take().expect("the coordinator runs");
        coordinator.0.kill().unwrap();
        coordinator.0.wait().unwrap();
    }

    pub fn start_worker(&mut self, name: &str) {
        self.start_worker_with(name, &[]);
    }

    /// A worker with `args` after the cluster's own (`--prefetch 0`, `--log-format json`).
    pub fn start_worker_with(&mut self, name: &str, args: &[&str]) {
        let log = File::create(self.scratch.join(format!("{name}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_worker"))
            .args(["join", "--coordinator", &self.url(), "--token", WORKER_TOKEN])
            .args(["--device", "cpu", "--name", name, "--cache-dir"])
            .arg(self.scratch.join(format!("cache-{name}")))
            .args(args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.workers.push((name.to_owned(), Proc(child)));
    }

    fn take_worker(&mut self, name: &str) -> Proc {
        let at = self
            .workers
            .iter()
            .position(|(n, _)| n == name)
            .expect("a running worker");
        self.workers.remove(at).1
    }

    /// SIGTERM, then the worker must leave on its own, with success.
    pub fn stop_worker(&mut self, name: &str) {
        let mut worker = self.take_worker(name);
        signal(&worker, libc::SIGTERM);
        let status = wait_for(Duration::from_secs(60), &format!("{name} to leave"), || {
            worker.0.try_wait().unwrap()
        });
        assert!(status.success(), "{name} exited with {status} after SIGTERM");
    }

    pub fn kill_worker(&mut self, name: &str) {
        let mut worker = self.take_worker(name);
        worker.0.kill().unwrap();
        worker.0.wait().unwrap();
    }

    /// Sends `sig` to every worker (SIGSTOP and SIGCONT pause and resume them).
    pub fn signal_workers(&self, sig: libc::c_int) {
        for (_, worker) in &self.workers {
            signal(worker, sig);
        }
    }

    /// Runs `coordinator ARGS` against this cluster, for at most `limit`.
    pub fn client(&mut self, args: &[&str], limit: Duration) -> Output {
        self.commands += 1;
        let base = self.scratch.join("client").join(self.commands.to_string());
        let (out_path, err_path) = (base.with_extension("out"), base.with_extension("err"));
        let mut child = Proc(
            Command::new(&self.bin)
                .args(args)
                .env("SENSGRID_COORDINATOR", self.url())
                .env("SENSGRID_ADMIN_TOKEN", ADMIN_TOKEN)
                .stdin(Stdio::null())
                .stdout(File::create(&out_path).unwrap())
                .stderr(File::create(&err_path).unwrap())
                .spawn()
                .unwrap(),
        );
        let status = wait_for(limit, &format!("coordinator {}", args.join(" ")), || {
            child.0.try_wait().unwrap()
        });
        Output {
            status,
            stdout: std::fs::read_to_string(out_path).unwrap(),
            stderr: std::fs::read_to_string(err_path).unwrap(),
        }
    }

    pub fn client_ok(&mut self, args: &[&str], limit: Duration) -> Output {
        let out = self.client(args, limit);
        assert!(
            out.status.success(),
            "coordinator {}: {}\n{}",
            args.join(" "),
            out.status,
            out.stderr
        );
        out
    }

    pub fn client_json(&mut self, args: &[&str]) -> Value {
        let out = self.client_ok(args, CLIENT_TIMEOUT);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("coordinator {}: {e}: {}", args.join(" "), out.stdout))
    }

    /// Submits `config`: the run id, the last line of stdout.
    pub fn submit(&mut self, config: &Path) -> i64 {
        let out = self.client_ok(&["submit", "-c", path(config)], CLIENT_TIMEOUT);
        let last = out.stdout.lines().last().unwrap_or_default();
        last.parse()
            .unwrap_or_else(|_| panic!("submit printed no run id: {}", out.stdout))
    }

    /// `coordinator watch RUN` until the run is done: its progress lines.
    pub fn watch(&mut self, run: i64) -> String {
        self.client_ok(&["watch", &run.to_string()], RUN_TIMEOUT).stderr
    }

    pub fn results(&mut self, run: i64, out: &Path) {
        self.client_ok(&["results", &run.to_string(), "--out", path(out)], CLIENT_TIMEOUT);
    }

    /// Polls `status RUN --json` until `enough(finished cells, total cells)`: those two then. A status that
    /// fails (the coordinator is restarting) is polled again.
    pub fn wait_cells(&mut self, run: i64, what: &str, mut enough: impl FnMut(u64, u64) -> bool) -> (u64, u64) {
        let run = run.to_string();
        wait_for(RUN_TIMEOUT, what, || {
            let out = self.client(&["status", &run, "--json"], CLIENT_TIMEOUT);
            let status: Value = serde_json::from_str(&out.stdout).ok()?;
            let cells = &status["cells"];
            let (done, total) = (cells["finished"].as_u64()?, cells["total"].as_u64()?);
            enough(done, total).then_some((done, total))
        })
    }
}

impl Drop for Cluster {
    /// Workers first, so that none outlives its coordinator's database (the [`Proc`]s kill them). A worker
    /// paused with SIGSTOP when a test failed is killed all the same (SIGKILL needs no resume).
    fn drop(&mut self) {
        self.workers.clear();
        self.coordinator = None;
    }
}

/// What a worker's log says: `worker join --log-format json`, one event per line, each event of a job inside
/// its `job` span (so the span's `job_id` and `epoch` say which lease it is about).
pub struct Log {
    text: String,
}

/// The messages that end a job's lease on the worker (see `sensgrid_worker::join`).
const ENDS: [&str; 4] = ["completed", "failed", "stopped", "report"];

impl Log {
    pub fn read(scratch: &Path, name: &str) -> Log {
        Log {
            text: std::fs::read_to_string(scratch.join(format!("{name}.log"))).unwrap_or_default(),
        }
    }

    /// The events of jobs: (job, epoch, message). A line still being written is not one yet.
    pub fn events(&self) -> impl Iterator<Item = (i64, i64, String)> {
        self.text.lines().filter_map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).ok()?;
            let span = &event["span"];
            let message = event["message"].as_str()?.to_owned();
            Some((span["job_id"].as_i64()?, span["epoch"].as_i64()?, message))
        })
    }

    /// The job the worker started last, when it has not ended it yet.
    pub fn running(&self) -> Option<(i64, i64)> {
        let (job, epoch, _) = self.events().filter(|(_, _, message)| message == "started").last()?;
        let ended = self
            .events()
            .any(|(j, e, message)| (j, e) == (job, epoch) && ENDS.iter().any(|end| message.starts_with(end)));
        (!ended).then_some((job, epoch))
    }

    /// For each job, the epochs under which the coordinator took a completion from this worker.
    pub fn completions(&self) -> BTreeMap<i64, BTreeSet<i64>> {
        let mut completions: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
        for (job, epoch, message) in self.events() {
            if message == "completed" {
                completions.entry(job).or_default().insert(epoch);
            }
        }
        completions
    }
}

/// A fresh database on the `DATABASE_URL` server (`postgres://$USER@127.0.0.1:5432/postgres` by default),
/// dropped at the end.
pub struct Database {
    server: String,
    name: String,
    pub url: String,
}

impl Database {
    /// The database `sensgrid_<test>_<pid>`, dropped first should an earlier process have left it.
    pub fn create(test: &str) -> Database {
        let base = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
            let user = String::from_utf8(succeed_output(Command::new("id").arg("-un")).stdout).unwrap();
            format!("postgres://{}@127.0.0.1:5432/postgres", user.trim())
        });
        let (server, _) = base.rsplit_once('/').expect("DATABASE_URL ends in /<database>");
        let name = format!("sensgrid_{test}_{}", std::process::id());
        let database = Database {
            server: server.to_owned(),
            url: format!("{server}/{name}"),
            name,
        };
        database.admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", database.name));
        database.admin(&format!("CREATE DATABASE {}", database.name));
        database
    }

    /// Runs `sql` on the server's `postgres` database.
    fn admin(&self, sql: &str) {
        psql(&format!("{}/postgres", self.server), sql);
    }

    /// Runs `sql` on this database: its output, unaligned and without headers.
    pub fn psql(&self, sql: &str) -> String {
        psql(&self.url, sql).trim().to_owned()
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = Command::new("psql")
            .args([&format!("{}/postgres", self.server), "-qc", &sql])
            .output();
    }
}

fn psql(url: &str, sql: &str) -> String {
    succeed(Command::new("psql").args([url, "-v", "ON_ERROR_STOP=1", "-qtAc", sql]))
}

/// Prints the tail of every log in the scratch dir when the test fails.
pub struct TailsOnPanic(pub PathBuf);

impl Drop for TailsOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let mut logs: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .into_iter()
            .flatten()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        logs.sort();
        for log in logs {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            eprintln!("--- {} (last 20 lines)\n{tail}", log.display());
        }
    }
}

/// A child process, killed when dropped, so a failing test leaves none behind.
pub struct Proc(pub Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends `sig` to `child`, which must still run.
pub fn signal(child: &Proc, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(child.0.id()).unwrap();
    // SAFETY: kill(2) on the pid of a child this process spawned and has not reaped.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

/// Calls `check` every 100 ms until it answers, for at most `limit`. Idle cells take a third of a second
/// each, so polling `status` this often sees a run's progress a cell or so late, well before it ends.
pub fn wait_for<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(Instant::now() < deadline, "gave up after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn path(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

pub fn succeed_output(command: &mut Command) -> std::process::Output {
    let output = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `command`, which must succeed: its stdout.
pub fn succeed(command: &mut Command) -> String {
    String::from_utf8(succeed_output(command).stdout).unwrap()
}

/// A det config (`scratch/det_recover.yml`) with a plan exported and recovered: PP-OCRv3 det on two synthetic
/// eval images, two groups at two ratios and a FLOPs target, then a recovery of `steps` steps of one 64-pixel
/// crop on three synthetic training images (a seed other than the eval set's), checkpointed every
/// `checkpoint_every` steps and evaluated every `eval_every`.
pub fn det_recover_config(scratch: &Path, steps: u64, checkpoint_every: u64, eval_every: u64) -> PathBuf {
    let (data, train) = (scratch.join("data"), scratch.join("train"));
    synth("det", "2", "1", &data);
    synth("det", "3", "2", &train);
    let train = train.display();
    let sections = format!(
        "Sensitivity:
  ratios: [0.1, 0.3]
  skip: ['conv2d_transpose_*', 'conv2d_[2-9]*', 'conv2d_1[0-9]*']
Prune:
  flops_reduction: 0.001
  export: true
Recover:
  steps: {steps}
  batch_size: 1
  input_size: 64
  checkpoint_every: {checkpoint_every}
  eval_every: {eval_every}
  data_dir: {train}
  label_file_list: [{train}/label.txt]
"
    );
    let model = root().join("models/ch_PP-OCRv3_det_infer.onnx");
    let config = scratch.join("det_recover.yml");
    std::fs::write(&config, det_config(&model, &data, &sections)).unwrap();
    config
}

/// examples/configs/det_ppocrv3.yml's Global, PostProcess, Metric and Eval sections for `model` on the
/// synthetic set in `data`, its images at most 320 pixels a side (a cell takes a second or two), followed by
/// `sections` (the test's own Sensitivity and Prune).
pub fn det_config(model: &Path, data: &Path, sections: &str) -> String {
    let (model, data) = (model.display(), data.display());
    format!(
        "Global:
  pretrained_model: {model}
PostProcess:
  name: DBPostProcess
  thresh: 0.3
  box_thresh: 0.6
  max_candidates: 1000
  unclip_ratio: 1.5
Metric:
  name: DetMetric
  main_indicator: hmean
Eval:
  dataset:
    name: SimpleDataSet
    data_dir: {data}
    label_file_list: [{data}/label.txt]
    transforms:
      - DecodeImage:
          img_mode: BGR
          channel_first: False
      - DetLabelEncode:
      - DetResizeForTest:
          limit_side_len: 320
          limit_type: max
      - NormalizeImage:
          scale: 1./255.
          mean: [0.485, 0.456, 0.406]
          std: [0.229, 0.224, 0.225]
          order: 'hwc'
      - ToCHWImage:
      - KeepKeys:
          keep_keys: ['image', 'shape', 'polys', 'ignore_tags']
  loader:
    shuffle: False
    drop_last: False
    batch_size_per_card: 1
    num_workers: 2
{sections}"
    )
}

/// `scripts/oracle/e2e_check.py` in the oracle venv.
pub fn oracle_check(root: &Path) -> Command {
    let mut command = Command::new(root.join(".oracle/bin/python"));
    command.arg(root.join("scripts/oracle/e2e_check.py"));
    command
}

/// `e2e_check.py results DIR` on what `coordinator results` wrote into `dir` for a run of [`det_config`] on
/// the set in `data`: the config's DetResizeForTest and DBPostProcess settings passed on.
pub fn check_results(dir: &Path, data: &Path) -> Command {
    let mut command = oracle_check(&root());
    command
        .arg("results")
        .arg(dir)
        .arg("--data-dir")
        .arg(data)
        .arg("--label-file")
        .arg(data.join("label.txt"))
        .args(["--limit-side-len", "320", "--limit-type", "max", "--thresh", "0.3"])
        .args([
            "--box-thresh",
            "0.6",
            "--max-candidates",
            "1000",
            "--unclip-ratio",
            "1.5",
        ]);
    command
}
