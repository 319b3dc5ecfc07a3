//! The dashboard (issue 15) as a user sees it: a real `coordinator serve --http` on a fresh database of the
//! main Postgres server (`DATABASE_URL`), two real `worker join` processes on a small cls grid, and the page in
//! headless Chromium driven through chromedriver.
//!
//! 1. The page opened right after submit shows the run's heatmap with every group in model order, skipped
//!    groups drawn as skipped; its done cells grow over time (seen at two or more counts before the end); it
//!    reads `done` at the end with every cell done. Screenshots: `target/tmp/dashboard/{start,running,end}.png`
//!    (`running.png` once half the cells are done).
//! 2. `GET /metrics`, scraped while both workers are paused with SIGSTOP, has a `sensgrid_jobs` series per run
//!    and state equal to the job table's counts; its counters and histograms are there and count the work.
//! 3. Cancel through the API: 401 without or with a wrong admin token, 200 with it.
//!
//! A recovery (issue 25) on a det run with a `Recover` section and one worker: `GET /api/runs/{id}` carries
//! its progress, and the page shows it running on the worker at some step short of the end, then done at
//! step N of N with its loss, last and best eval metric and the metric before and after pruning, equal to
//! the recover job's stored report. Screenshots: `target/tmp/dashboard_recovery/recovery-{running,done}.png`.
//!
//! A test binary of its own, so cargo runs it alone: it keeps both cores busy with workers and a browser, and
//! its two tests take turns.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{Value, json};

use common::{
    ADMIN_TOKEN, CLIENT_TIMEOUT, Cluster, Database, Proc, TailsOnPanic, det_recover_config, free_port, root, scratch,
    synth, wait_for,
};

/// Held by each test for its whole length: each keeps both cores busy, and the other's timeouts assume it.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Line crops in the eval set: the 34 cells take about 20 s on two busy cores.
const IMAGES: &str = "160";
/// The two ratios of the grid.
const RATIOS: [f64; 2] = [0.3, 0.6];
/// Groups left out of the grid, drawn as skipped rows: the nine squeeze-excitation groups (a fraction of a
/// percent of the FLOPs), which leaves 17 groups, 34 cells.
const SKIP: &str = "['*_se_1_weights']";
const SKIPPED_GROUPS: usize = 9;
/// The states a job can be in, as `sensgrid_jobs` labels them.
const JOB_STATES: [&str; 6] = ["queued", "leased", "done", "failed", "cancelled", "skipped"];
/// How long the grid may take before the test gives up (about 30 s on two idle cores).
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// The recovery's steps, and how often it evaluates (and checkpoints): a 64-pixel crop's step takes about
/// 50 ms on an idle core, so the recovery runs for seconds, over several of the worker's reports and the
/// page's polls.
const RECOVER_STEPS: u64 = 200;
const RECOVER_EVAL_EVERY: u64 = 50;
/// How long the baseline, four cells, the export and the recovery may take on two busy cores.
const RECOVER_TIMEOUT: Duration = Duration::from_secs(600);

fn browser_tools_installed() {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).is_file(),
            "{tool} is missing: the dashboard test needs Chromium and chromedriver; run `make setup`, which \
             installs them"
        );
    }
}

#[test]
fn the_dashboard_shows_a_run_live_and_metrics_equal_the_job_store() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    browser_tools_installed();
    let scratch = scratch("dashboard");
    // Dropped last: on a failure, after every process is gone, it shows their logs.
    let _tails = TailsOnPanic(scratch.clone());
    let started = Instant::now();

    let data = scratch.join("data");
    synth("cls", IMAGES, "15", &data);
    let config = scratch.join("cls_dashboard.yml");
    std::fs::write(
        &config,
        cls_config(&root().join("models/ch_ppocr_mobile_v2.0_cls_infer.onnx"), &data),
    )
    .unwrap();

    let database = Database::create("dashboard");
    let mut cluster = Cluster::new(&scratch, &database.url);
    let http_port = free_port();
    cluster.http_port = Some(http_port);
    cluster.start_coordinator();
    let http = Http(http_port);
    let browser = Browser::start(&scratch);
    cluster.start_worker("w1");
    cluster.start_worker("w2");

    // 1. The page, opened right after submit.
    let run = cluster.submit(&config);
    browser.goto(&format!("http://127.0.0.1:{http_port}/"));
    let detail = http.get_json(&format!("/api/runs/{run}"));
    let groups = detail["results"]["groups"].as_array().expect("results.groups").clone();
    let group_keys: Vec<&str> = groups.iter().map(|g| g["key"].as_str().unwrap()).collect();
    let skipped: Vec<&str> = groups
        .iter()
        .filter(|g| g["skipped"] == true)
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    let cells_total = detail["progress"]["cells_total"].as_u64().unwrap() as usize;
    assert_eq!(
        skipped.len(),
        SKIPPED_GROUPS,
        "groups the skip pattern {SKIP} leaves out: {skipped:?}"
    );
    assert!(cells_total >= 10, "a grid of {cells_total} cells is too small to watch");
    let first = wait_for(Duration::from_secs(30), "the heatmap of the run", || {
        let page = browser.page();
        (page.rows == group_keys && page.cells.len() == group_keys.len() * RATIOS.len()).then_some(page)
    });
    assert_eq!(
        first.run_id,
        run.to_string(),
        "the page selected another run than the newest running one"
    );
    browser.screenshot(&scratch.join("start.png"));

    // 2. The heatmap grows, and /metrics is compared with the job table once cells are done.
    let mut counts = vec![first.done];
    let mut metrics_checked = false;
    let last = wait_for(RUN_TIMEOUT, "the page to read done", || {
        let page = browser.page();
        if page.state == "running" && page.done > *counts.last().unwrap() {
            if page.done >= cells_total / 2 && *counts.last().unwrap() < cells_total / 2 {
                browser.screenshot(&scratch.join("running.png"));
            }
            counts.push(page.done);
        }
        assert!(
            page.state == "running" || page.state == "done",
            "the run ended {}: {:?}",
            page.state,
            http.get_json(&format!("/api/runs/{run}"))["progress"]
        );
        if !metrics_checked && page.done >= 2 && page.state == "running" {
            metrics_checked = compare_jobs_gauge_paused(&cluster, &http, &database);
        }
        (page.state == "done").then_some(page)
    });
    eprintln!(
        "dashboard: done cells seen on the page while running: {counts:?} of {cells_total}, after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        metrics_checked,
        "the run ended before /metrics could be compared while it ran"
    );
    assert!(
        counts.iter().filter(|&&n| n > 0 && n < cells_total).count() >= 2,
        "the page showed fewer than two growing done counts before the end: {counts:?}"
    );
    // The poll after the one that showed `done` has nothing new: the counts are final.
    let page = browser.page();
    browser.screenshot(&scratch.join("end.png"));
    assert_eq!(page.state, "done");
    assert_eq!(page.done, last.done);
    assert_eq!(page.done, cells_total, "done cells on the page");
    assert_eq!(page.done_text, cells_total.to_string(), "#cells-done");
    assert!(!page.cancel_shown, "Cancel is offered on a finished run");
    for (group, ratio, state, title) in &page.cells {
        let expected = if skipped.contains(&group.as_str()) {
            "skipped"
        } else {
            "done"
        };
        assert_eq!(state, expected, "the cell {group} @ {ratio}");
        if expected == "done" {
            assert!(
                title.contains("loss"),
                "the done cell {group} @ {ratio} has the title {title:?}"
            );
        }
    }
    let ratios: Vec<String> = page.cells.iter().take(RATIOS.len()).map(|c| c.1.clone()).collect();
    assert_eq!(ratios, RATIOS.map(|r| r.to_string()), "the heatmap's columns");

    // Finished: nothing moves, so the gauge must equal the table at once, and the counters count the work.
    let metrics = http.metrics();
    assert_eq!(metrics.jobs(), jobs_in_store(&database), "sensgrid_jobs after the run");
    for counter in [
        "sensgrid_job_claims_total",
        "sensgrid_job_completions_total",
        "sensgrid_job_completions_rejected_total",
        "sensgrid_lease_expiries_total",
        "sensgrid_workers_connected",
        "sensgrid_eval_seconds_count",
        "sensgrid_dispatch_latency_seconds_count",
    ] {
        metrics.value(counter);
    }
    // The baseline and every cell were claimed and completed at least once.
    assert!(metrics.value("sensgrid_job_claims_total") > cells_total as f64);
    assert!(metrics.value("sensgrid_job_completions_total") > cells_total as f64);
    assert!(metrics.value("sensgrid_eval_seconds_count") > 0.0);
    assert!(
        metrics.has_histogram("sensgrid_eval_seconds"),
        "sensgrid_eval_seconds is no histogram"
    );
    assert!(
        metrics.has_histogram("sensgrid_dispatch_latency_seconds"),
        "sensgrid_dispatch_latency_seconds is no histogram"
    );

    // 3. Cancel: refused without the admin token or with a wrong one, accepted with it (the finished run
    // keeps its final state).
    let cancel = format!("/api/runs/{run}/cancel");
    for token in [None, Some("not-the-admin-token")] {
        let (status, body) = http.request("POST", &cancel, token);
        assert_eq!(status, 401, "POST {cancel} with {token:?}: {body}");
        let body: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert!(body["error"].is_string(), "a 401 without an error: {body}");
    }
    let (status, body) = http.request("POST", &cancel, Some(ADMIN_TOKEN));
    assert_eq!(status, 200, "POST {cancel} with the admin token: {body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["state"], "done", "cancelling the finished run {run}: {body}");
    assert_eq!(http.request("GET", "/api/runs/999999", None).0, 404);

    browser.close();
    eprintln!(
        "dashboard: {} groups ({} skipped) x {} ratios in {:.1} s; screenshots in {}",
        group_keys.len(),
        skipped.len(),
        RATIOS.len(),
        started.elapsed().as_secs_f64(),
        scratch.display()
    );
}

#[test]
fn the_dashboard_shows_a_recovery_step_by_step() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    browser_tools_installed();
    let scratch = scratch("dashboard_recovery");
    let _tails = TailsOnPanic(scratch.clone());
    let config = det_recover_config(&scratch, RECOVER_STEPS, RECOVER_EVAL_EVERY, RECOVER_EVAL_EVERY);

    let database = Database::create("dashboard_recovery");
    let mut cluster = Cluster::new(&scratch, &database.url);
    let http_port = free_port();
    cluster.http_port = Some(http_port);
    cluster.start_coordinator();
    let http = Http(http_port);
    let browser = Browser::start(&scratch);
    cluster.start_worker("w1");
    let run = cluster.submit(&config);
    browser.goto(&format!("http://127.0.0.1:{http_port}/?run={run}"));
    let worker_id = wait_for(Duration::from_secs(60), "w1 to register", || {
        http.get_json("/api/workers")["workers"]
            .as_array()?
            .iter()
            .find(|w| w["name"] == "w1")
            .and_then(|w| w["worker_id"].as_i64())
    });

    // Running: the API carries the worker's last report, and the page shows it on w1 short of the end.
    let steps = format!("of {RECOVER_STEPS}");
    let (running, step) = wait_for(RECOVER_TIMEOUT, "the page to show the recovery running", || {
        let text = browser.recovery()?;
        assert!(
            !text.contains("done"),
            "the recovery ended before the page showed it running: {text:?}"
        );
        let step = step_shown(&text)?;
        (text.contains("running") && step > 0 && step < RECOVER_STEPS).then_some((text, step))
    });
    browser.screenshot(&scratch.join("recovery-running.png"));
    assert!(
        running.contains(&format!("step {step} {steps}")) && running.contains("on worker w1"),
        "the running recovery on the page: {running:?}"
    );
    assert!(running.contains("loss "), "no loss on the page: {running:?}");
    let recovery = http.get_json(&format!("/api/runs/{run}"))["recovery"].clone();
    assert!(
        ["leased", "done"].contains(&recovery["state"].as_str().unwrap()),
        "the recovery after the page showed it running: {recovery}"
    );
    if recovery["state"] == "leased" {
        assert_eq!(recovery["worker"], worker_id, "{recovery}");
        assert!(recovery["step"].as_u64().unwrap() >= step, "{recovery}");
        assert_eq!(recovery["steps"], RECOVER_STEPS, "{recovery}");
        assert!(recovery["loss"].is_f64(), "{recovery}");
    }

    // Done: step N of N, and the figures of the report the recover job stored.
    let done = wait_for(RECOVER_TIMEOUT, "the page to show the recovery done", || {
        let text = browser.recovery()?;
        assert!(
            !text.contains("failed"),
            "the recovery failed: {text:?}; {}",
            http.get_json(&format!("/api/runs/{run}"))["recovery"]
        );
        (text.contains("done") && text.contains(&format!("step {RECOVER_STEPS} {steps}"))).then_some(text)
    });
    browser.screenshot(&scratch.join("recovery-done.png"));
    let report: Value = serde_json::from_str(&database.psql(&format!(
        "SELECT result->'recover_report' FROM job WHERE run_id = {run} AND kind = 'recover' AND state = 'done'"
    )))
    .unwrap();
    let figure = |key: &str| {
        report[key]
            .as_f64()
            .unwrap_or_else(|| panic!("recover_report.{key}: {report}"))
    };
    let last_eval = report["history"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find_map(|h| h["metric"].as_f64())
        .expect("the last step is evaluated");
    let shown = format!(
        "hmean: last eval {last_eval:.4} · best {:.4} · before pruning {:.4} · after pruning {:.4}",
        figure("recovered"),
        figure("baseline"),
        figure("pruned")
    );
    assert!(done.contains(&shown), "the page shows {done:?}, not {shown:?}");
    assert!(!done.contains("on worker"), "a done recovery has no worker: {done:?}");

    let detail = http.get_json(&format!("/api/runs/{run}"));
    let recovery = &detail["recovery"];
    assert_eq!(recovery["state"], "done", "{recovery}");
    assert_eq!(
        (recovery["step"].as_u64(), recovery["steps"].as_u64()),
        (Some(RECOVER_STEPS), Some(RECOVER_STEPS))
    );
    assert_eq!(recovery["metric"], "hmean");
    for (key, expected) in [
        ("last_metric", last_eval),
        ("best_metric", figure("recovered")),
        ("baseline_metric", figure("baseline")),
        ("pruned_metric", figure("pruned")),
    ] {
        assert_eq!(recovery[key].as_f64(), Some(expected), "recovery.{key}: {recovery}");
    }

    // /metrics keeps the recover job's last heartbeat: a step of its steps, and a best no worse than the pruned
    // model's (the pruned weights are the best until an eval beats them).
    let metrics = http.metrics();
    assert_eq!(metrics.value("sensgrid_recover_steps"), RECOVER_STEPS as f64);
    let reported = metrics.value("sensgrid_recover_step");
    assert!(
        reported > 0.0 && reported <= RECOVER_STEPS as f64,
        "sensgrid_recover_step {reported}"
    );
    let best = metrics.value("sensgrid_recover_best");
    assert!(best >= figure("pruned"), "sensgrid_recover_best {best}");
    browser.close();
}

/// The step the page's recovery shows (`step 12 of 24`).
fn step_shown(text: &str) -> Option<u64> {
    let (_, after) = text.split_once("step ")?;
    after.split_whitespace().next()?.parse().ok()
}

/// Pauses both workers (SIGSTOP), scrapes /metrics and reads the job table until the two agree (a sweep may
/// move a job between the scrape and the query: up to five tries), resumes the workers and asserts they agree.
/// False when the run had no job left to move (the comparison then waits for the end of the test).
fn compare_jobs_gauge_paused(cluster: &Cluster, http: &Http, database: &Database) -> bool {
    cluster.signal_workers(libc::SIGSTOP);
    std::thread::sleep(Duration::from_millis(300));
    let mut tries = Vec::new();
    for _ in 0..5 {
        let (gauge, store) = (http.metrics().jobs(), jobs_in_store(database));
        let agree = gauge == store;
        tries.push((gauge, store));
        if agree {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.signal_workers(libc::SIGCONT);
    let (gauge, store) = tries.last().unwrap();
    assert_eq!(
        gauge,
        store,
        "sensgrid_jobs against the job table, {} tries",
        tries.len()
    );
    let moving = |state: &str| store.iter().any(|((_, s), &n)| s == state && n > 0.0);
    eprintln!("dashboard: sensgrid_jobs equals the job table while running: {store:?}");
    moving("queued") || moving("leased")
}

/// `SELECT run_id, state, count(*) FROM job`, with a zero for every state a run has no job in.
fn jobs_in_store(database: &Database) -> BTreeMap<(String, String), f64> {
    let mut counts = BTreeMap::new();
    for run in database.psql("SELECT id FROM run").lines() {
        for state in JOB_STATES {
            counts.insert((run.to_owned(), state.to_owned()), 0.0);
        }
    }
    for line in database
        .psql("SELECT run_id, state, count(*) FROM job GROUP BY 1, 2")
        .lines()
    {
        let [run, state, count] = line.split('|').collect::<Vec<_>>()[..] else {
            panic!("psql printed {line:?}");
        };
        counts.insert((run.to_owned(), state.to_owned()), count.parse().unwrap());
    }
    counts
}

/// examples/configs' PaddleOCR style for the v2.0 cls model: 48x192 crops, accuracy, two ratios, two groups
/// skipped, and a plan under a loss budget without an export (the export would add a long tail to the run).
fn cls_config(model: &Path, data: &Path) -> String {
    let (model, data) = (model.display(), data.display());
    let ratios = RATIOS.map(|r| r.to_string()).join(", ");
    format!(
        "Global:
  pretrained_model: {model}
  label_list: ['0', '180']
PostProcess:
  name: ClsPostProcess
Metric:
  name: ClsMetric
  main_indicator: acc
Eval:
  dataset:
    name: SimpleDataSet
    data_dir: {data}
    label_file_list: [{data}/label.txt]
    transforms:
      - DecodeImage:
          img_mode: BGR
          channel_first: False
      - ClsLabelEncode:
      - ClsResizeImg:
          image_shape: [3, 48, 192]
      - KeepKeys:
          keep_keys: ['image', 'label']
  loader:
    shuffle: False
    drop_last: False
    batch_size_per_card: 64
    num_workers: 2
Sensitivity:
  ratios: [{ratios}]
  criterion: l1_norm
  metric: acc
  skip: {SKIP}
Prune:
  max_loss: 0.05
  export: false
"
    )
}

/// What the page shows, read in one script.
#[derive(Debug)]
struct Page {
    /// `#run-id`: the run it shows.
    run_id: String,
    /// `#run-state`.
    state: String,
    /// `#cells-done`.
    done_text: String,
    /// `.cell[data-state=done]` elements.
    done: usize,
    /// The group of each heatmap row, top to bottom.
    rows: Vec<String>,
    /// Every heatmap cell: (data-group, data-ratio, data-state, title).
    cells: Vec<(String, String, String, String)>,
    /// Whether the Cancel button is visible.
    cancel_shown: bool,
}

/// Headless Chromium through chromedriver, driven from this synchronous test on a runtime of its own.
struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    /// chromedriver, killed when dropped: after the session's end (see `Drop`), which quits Chromium.
    _driver: Proc,
}

impl Browser {
    /// chromedriver on a free port, with a fresh profile under `scratch`.
    fn start(scratch: &Path) -> Browser {
        let port = free_port();
        let log = std::fs::File::create(scratch.join("chromedriver.log")).unwrap();
        let driver = Proc(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("{CHROMEDRIVER}: {e}")),
        );
        wait_for(Duration::from_secs(30), "chromedriver to listen", || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        let profile = scratch.join("chromium-profile");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    "--window-size=1400,1000", format!("--user-data-dir={}", profile.display()),
                ],
            }
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = runtime
            .block_on(
                ClientBuilder::new(connector)
                    .capabilities(capabilities)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .unwrap_or_else(|e| panic!("a Chromium session through chromedriver: {e}"));
        Browser {
            runtime,
            client: Some(client),
            _driver: driver,
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("the session is open")
    }

    fn goto(&self, url: &str) {
        self.runtime
            .block_on(self.client().goto(url))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }

    fn page(&self) -> Page {
        const SCRIPT: &str = "
            const text = (id) => document.getElementById(id).textContent;
            const cells = [...document.querySelectorAll('#heatmap .cell')];
            return {
                run_id: text('run-id'),
                state: text('run-state'),
                done_text: text('cells-done'),
                done: document.querySelectorAll('.cell[data-state=done]').length,
                rows: [...document.querySelectorAll('#heatmap tbody tr')]
                    .map((row) => row.querySelector('.cell'))
                    .filter((cell) => cell)
                    .map((cell) => cell.dataset.group),
                cells: cells.map((c) => [c.dataset.group, c.dataset.ratio, c.dataset.state || '', c.title]),
                cancel_shown: !document.getElementById('cancel').hidden,
            };";
        let page = self
            .runtime
            .block_on(self.client().execute(SCRIPT, Vec::new()))
            .unwrap_or_else(|e| panic!("reading the page: {e}"));
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect()
        };
        let text = |key: &str| page[key].as_str().unwrap().to_owned();
        Page {
            run_id: text("run_id"),
            state: text("state"),
            done_text: text("done_text"),
            done: page["done"].as_u64().unwrap() as usize,
            rows: strings(&page["rows"]),
            cells: page["cells"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    let c = strings(c);
                    (c[0].clone(), c[1].clone(), c[2].clone(), c[3].clone())
                })
                .collect(),
            cancel_shown: page["cancel_shown"] == true,
        }
    }

    /// The recovery's line as the page renders it (`innerText`), `None` while it is hidden.
    fn recovery(&self) -> Option<String> {
        const SCRIPT: &str = "
            const box = document.getElementById('recovery');
            const error = document.getElementById('recovery-error');
            return box.hidden ? null : box.innerText + (error.hidden ? '' : '\\n' + error.innerText);";
        let shown = self
            .runtime
            .block_on(self.client().execute(SCRIPT, Vec::new()))
            .unwrap_or_else(|e| panic!("reading the page: {e}"));
        shown.as_str().map(str::to_owned)
    }

    /// A PNG of the window at `to`.
    fn screenshot(&self, to: &Path) {
        let png = self
            .runtime
            .block_on(self.client().screenshot())
            .unwrap_or_else(|e| panic!("a screenshot: {e}"));
        std::fs::write(to, png).unwrap();
    }

    /// Ends the session: chromedriver quits Chromium.
    fn close(mut self) {
        let client = self.client.take().unwrap();
        self.runtime.block_on(client.close()).unwrap();
    }
}

impl Drop for Browser {
    /// A test that fails with the session open still ends it, or Chromium would outlive chromedriver.
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // The timeout's timer needs the runtime: made inside block_on.
            let close = async { tokio::time::timeout(Duration::from_secs(10), client.close()).await };
            let _ = self.runtime.block_on(close);
        }
    }
}

/// The coordinator's plain-HTTP port: one HTTP/1.0 request per connection, read to its end.
struct Http(u16);

impl Http {
    /// `METHOD path`, with `Authorization: Bearer token` when given: the status and the body.
    fn request(&self, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.0)).unwrap();
        stream.set_read_timeout(Some(CLIENT_TIMEOUT)).unwrap();
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{auth}Content-Length: 0\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{method} {path}: no header end in {response:?}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{method} {path}: the status line of {head:?}"));
        (status, body.to_owned())
    }

    fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.request("GET", path, None);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    fn metrics(&self) -> Metrics {
        let (status, body) = self.request("GET", "/metrics", None);
        assert_eq!(status, 200, "GET /metrics: {body}");
        let lines = body.lines().map(|l| Ok(l.to_owned()));
        Metrics(prometheus_parse::Scrape::parse(lines).unwrap_or_else(|e| panic!("GET /metrics: {e}: {body}")))
    }
}

/// One scrape of /metrics.
struct Metrics(prometheus_parse::Scrape);

impl Metrics {
    /// The value of the one sample named `name` (counters read back untyped from OpenMetrics `_total` names).
    fn value(&self, name: &str) -> f64 {
        let found: Vec<f64> = self
            .0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter_map(|s| scalar(&s.value))
            .collect();
        assert_eq!(found.len(), 1, "/metrics: {name} should have one sample, has {found:?}");
        found[0]
    }

    fn has_histogram(&self, name: &str) -> bool {
        self.0
            .samples
            .iter()
            .any(|s| s.metric == name && matches!(s.value, prometheus_parse::Value::Histogram(_)))
    }

    /// `sensgrid_jobs{run, state}` by (run, state).
    fn jobs(&self) -> BTreeMap<(String, String), f64> {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == "sensgrid_jobs")
            .map(|s| {
                let label = |name: &str| {
                    s.labels
                        .get(name)
                        .unwrap_or_else(|| panic!("sensgrid_jobs without a {name} label: {s:?}"))
                        .to_owned()
                };
                let value = scalar(&s.value).unwrap_or_else(|| panic!("sensgrid_jobs is no number: {s:?}"));
                ((label("run"), label("state")), value)
            })
            .collect()
    }
}

fn scalar(value: &prometheus_parse::Value) -> Option<f64> {
    use prometheus_parse::Value::{Counter, Gauge, Untyped};
    match value {
        Counter(v) | Gauge(v) | Untyped(v) => Some(*v),
        _ => None,
    }
}
