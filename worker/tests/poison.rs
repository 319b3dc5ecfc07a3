//! A poisoned image on real processes: a real `coordinator serve` on a fresh database of the main Postgres
//! server, two real `worker join` processes, PP-OCRv3 det on a small synthetic set.
//!
//! The image is 68 bytes of PNG whose header claims 100000x100000 pixels (30 GB decoded); before the limit
//! on image sizes every worker that decoded it aborted on the allocation and the run sat "running" with no
//! worker left.
//!
//! 1. `coordinator submit` refuses it, naming the label file, its line and the image.
//! 2. Forced past `submit` (a client that uploads its own bundle and creates the run over gRPC, as a hostile
//!    one would), the run fails with an error naming the bundle's line and the image, and every worker is
//!    still up.
//! 3. The next run, on the same workers, ends done.
//!
//! A test binary of its own, so cargo runs it alone: it keeps both cores busy with two workers.

mod common;

use std::io::Read;
use std::path::Path;

use sensgrid_client as client;
use sensgrid_eval::{Config, bundle};
use sensgrid_model::analysis::groups;
use sensgrid_model::onnx;
use sensgrid_proto::v1::{Cell, CreateRunRequest};

use common::{ADMIN_TOKEN, CLIENT_TIMEOUT, Cluster, Database, RUN_TIMEOUT, TailsOnPanic, WORKER_TOKEN, path, root};

/// The label line that names the poisoned image, in the det set's format.
const POISONED_LINE: &str =
    "images/poison.png\t[{\"transcription\": \"x\", \"points\": [[0, 0], [9, 0], [9, 9], [0, 9]]}]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_image_is_refused_at_submit_and_forced_past_it_fails_its_run_while_every_worker_stays_up() {
    let scratch = common::scratch("poison");
    let _tails = TailsOnPanic(scratch.clone());
    let root = root();
    let model = root.join("models/ch_PP-OCRv3_det_infer.onnx");
    let poison = std::fs::read(root.join("eval/tests/fixtures/hostile/header_100000x100000.png")).unwrap();
    assert_eq!(poison.len(), 68);

    // A clean set of three images, and a copy of it with the poisoned image on its fourth line.
    let clean = scratch.join("clean");
    common::synth("det", "3", "7", &clean);
    let poisoned = scratch.join("poisoned");
    copy_set(&clean, &poisoned);
    std::fs::write(poisoned.join("images/poison.png"), &poison).unwrap();
    let mut labels = std::fs::read_to_string(poisoned.join("label.txt")).unwrap();
    labels.push_str(POISONED_LINE);
    labels.push('\n');
    std::fs::write(poisoned.join("label.txt"), labels).unwrap();
    let sections = "Sensitivity:\n  ratios: [0.5]\n  skip: ['conv2d_transpose_*', 'conv2d_[1-9]*']\n";
    let clean_config = scratch.join("clean.yml");
    std::fs::write(&clean_config, common::det_config(&model, &clean, sections)).unwrap();
    let poisoned_config = scratch.join("poisoned.yml");
    std::fs::write(&poisoned_config, common::det_config(&model, &poisoned, sections)).unwrap();

    let database = Database::create("poison");
    let mut cluster = Cluster::new(&scratch, &database.url);
    cluster.start_coordinator();
    cluster.start_worker("w1");
    cluster.start_worker("w2");

    // 1. Refused at submit, naming the user's label file, line 4 and the image, with exit code 2.
    let refused = cluster.client(&["submit", "-c", path(&poisoned_config)], CLIENT_TIMEOUT);
    assert_eq!(refused.status.code(), Some(2), "submit: {}", refused.stderr);
    let line = refused.stderr.trim_end();
    for named in [
        poisoned.join("label.txt").display().to_string(),
        "line 4".to_owned(),
        "poison.png".to_owned(),
        "100000x100000".to_owned(),
    ] {
        assert!(
            line.contains(&named),
            "submit's refusal does not name {named:?}: {line}"
        );
    }
    assert_eq!(
        database.psql("SELECT count(*) FROM run"),
        "0",
        "a refused submission left a run"
    );

    // 2. Forced past submit: the clean set's bundle with its second image swapped for the poisoned one.
    let config = Config::load(&clean_config, &[] as &[&str]).unwrap();
    let mut packed = Vec::new();
    bundle::pack(&config, &mut packed).unwrap();
    let forced = swap_image(&packed, 1, &poison);
    let graph = onnx::read(&model).unwrap();
    let analysis = groups::analyse_at(&graph, &[vec![1, 3, 640, 640]]).unwrap();
    let channel = client::connect(&cluster.url(), None).await.unwrap();
    let mut uploads = client::worker_client(channel.clone(), WORKER_TOKEN).unwrap();
    let model_digest = client::upload_artifact_file(&mut uploads, &model, "application/onnx")
        .await
        .unwrap();
    let dataset_digest = client::upload_artifact(&mut uploads, &forced, "application/x-tar")
        .await
        .unwrap();
    let mut admin = client::admin_client(channel, ADMIN_TOKEN).unwrap();
    let run_id = admin
        .create_run(CreateRunRequest {
            config_yaml: config.to_yaml(),
            model_digest,
            dataset_digest,
            criterion: "l1_norm".into(),
            cells: analysis.groups[..2]
                .iter()
                .map(|g| Cell {
                    group_key: g.key.clone(),
                    ratio: 0.5,
                    result_json: String::new(),
                })
                .collect(),
            spec_json: r#"{"name": "forced past submit", "metric": "hmean"}"#.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .run_id;
    let watched = cluster.client(&["watch", &run_id.to_string()], RUN_TIMEOUT);
    assert_eq!(
        watched.status.code(),
        Some(1),
        "watch of the poisoned run: {}",
        watched.stderr
    );
    let status = cluster.client_json(&["status", &run_id.to_string(), "--json"]);
    assert_eq!(status["state"], "failed", "{status}");
    let error = status["error"].as_str().unwrap_or_default();
    for named in ["line 2", "100000x100000"] {
        assert!(
            error.contains(named),
            "the run's error does not name {named:?}: {error}"
        );
    }
    for (name, worker) in &mut cluster.workers {
        assert_eq!(
            worker.0.try_wait().unwrap(),
            None,
            "{name} is gone after the poisoned run"
        );
    }

    // 3. The next run, on the same two workers, ends done.
    let next = cluster.submit(&clean_config);
    cluster.watch(next);
    let status = cluster.client_json(&["status", &next.to_string(), "--json"]);
    assert_eq!(status["state"], "done", "{status}");
}

/// Copies a synthetic set (its label file and images) into `to`.
fn copy_set(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("images")).unwrap();
    std::fs::copy(from.join("label.txt"), to.join("label.txt")).unwrap();
    for entry in std::fs::read_dir(from.join("images")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join("images").join(entry.file_name())).unwrap();
    }
}

/// The bundle `packed` with the bytes of its `index`th image (in entry order) replaced by `bytes`.
fn swap_image(packed: &[u8], index: usize, bytes: &[u8]) -> Vec<u8> {
    let mut archive = tar::Archive::new(packed);
    let mut out = tar::Builder::new(Vec::new());
    let mut images = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().into_owned();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if name.starts_with(bundle::IMAGES) {
            if images == index {
                data = bytes.to_vec();
            }
            images += 1;
        }
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        out.append_data(&mut header, &name, data.as_slice()).unwrap();
    }
    out.into_inner().unwrap()
}
