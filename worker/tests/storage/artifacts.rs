//! Item 1 of the storage-faults issue: with too little room in `--artifact-dir`, `coordinator submit` exited 0
//! while the stored model was shorter than its `artifact` row (tokio's `File` lost the error of the last
//! write); every job then failed on the digest, and later submits, told the digest was held, never sent it
//! again. Now an upload is written, synced, read back and checked before it is renamed and recorded: a full
//! disk fails the submit naming the artifact dir, and leaves no file and no row. A held artifact's file is
//! checked before the coordinator answers "held", so a damaged one is uploaded again and repaired.
//!
//! 1. The artifact dir is a tmpfs with room for less than the model: `submit` fails (exit 2) saying the disk
//!    is full and naming the artifact dir; no run, no artifact row, no file.
//! 2. Enlarged: the same `submit` succeeds and its run ends done; every file holds the bytes its name hashes.
//! 3. The model's file truncated and one byte of the bundle's flipped (the same size): the next `submit`
//!    uploads both again, and its run ends done on a worker that has neither cached.

use std::path::{Path, PathBuf};

use sensgrid_client::sha256_hex;

use super::common::{self, CLIENT_TIMEOUT, Cluster, Database, RUN_TIMEOUT, TailsOnPanic, path, root};
use super::tmpfs::Tmpfs;

/// The model of [`one_cell_config`], under the repository root.
pub const MODEL: &str = "models/ch_PP-OCRv3_det_infer.onnx";

/// `scratch/det.yml`: [`MODEL`] on 4 synthetic images in `scratch/data`, one group at one ratio: a run of a
/// baseline and one cell, seconds long.
pub fn one_cell_config(scratch: &Path) -> PathBuf {
    let data = scratch.join("data");
    common::synth("det", "4", "7", &data);
    let config = scratch.join("det.yml");
    let sections = "Sensitivity:\n  ratios: [0.5]\n  skip: ['conv2d_transpose_*', 'conv2d_[1-9]*']\n";
    std::fs::write(&config, common::det_config(&root().join(MODEL), &data, sections)).unwrap();
    config
}

#[test]
fn a_full_artifact_dir_fails_the_submit_leaving_nothing_and_a_damaged_held_artifact_is_uploaded_again() {
    let scratch = common::scratch("storage_artifacts");
    let _tails = TailsOnPanic(scratch.clone());
    let model = root().join(MODEL);
    let config = one_cell_config(&scratch);
    let submit = ["submit", "-c", path(&config)];

    // The model is uploaded first, in 1 MiB chunks: its first two fit, its last does not.
    let model_len = std::fs::metadata(&model).unwrap().len();
    assert!(model_len > 2 << 20, "the model is {model_len} bytes");
    let artifacts = scratch.join("artifacts");
    let disk = Tmpfs::mount(&artifacts, (2 << 20) + 160 * 1024);
    let database = Database::create("storage_artifacts");
    let mut cluster = Cluster::new(&scratch, &database.url);
    cluster.start_coordinator();
    cluster.start_worker("w1");

    // 1. Too little room: refused, nothing stored.
    let refused = cluster.client(&submit, CLIENT_TIMEOUT);
    assert_eq!(
        refused.status.code(),
        Some(2),
        "submit with a full artifact dir: {}",
        refused.stderr
    );
    for named in ["No space left on device", &artifacts.display().to_string()] {
        assert!(
            refused.stderr.contains(named),
            "submit's error does not name {named:?}: {}",
            refused.stderr
        );
    }
    assert_eq!(
        database.psql("SELECT count(*) FROM run"),
        "0",
        "a refused submit left a run"
    );
    assert_eq!(
        database.psql("SELECT count(*) FROM artifact"),
        "0",
        "a failed upload left a row"
    );
    let left: Vec<_> = std::fs::read_dir(&artifacts)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "a failed upload left files in the artifact dir: {left:?}"
    );

    // 2. Enlarged: the same submit stores whole artifacts, and its run ends done.
    disk.resize(64 << 20);
    let run = cluster.submit(&config);
    let watched = cluster.client(&["watch", &run.to_string()], RUN_TIMEOUT);
    assert_eq!(
        watched.status.code(),
        Some(0),
        "the run after the disk was enlarged: {}",
        watched.stderr
    );
    assert_whole(&artifacts, &database);

    // 3. Damage both stored files; a worker with an empty cache must get whole ones.
    let model_file = artifacts.join(sha256_hex(&std::fs::read(&model).unwrap()));
    let bundle_file = std::fs::read_dir(&artifacts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| *p != model_file)
        .expect("the bundle's file");
    let file = std::fs::OpenOptions::new().write(true).open(&model_file).unwrap();
    file.set_len(model_len / 2).unwrap();
    drop(file);
    let mut bundle = std::fs::read(&bundle_file).unwrap();
    let middle = bundle.len() / 2;
    bundle[middle] ^= 0xff;
    std::fs::write(&bundle_file, &bundle).unwrap();
    cluster.stop_worker("w1");
    cluster.start_worker("w2");

    let again = cluster.submit(&config);
    let watched = cluster.client(&["watch", &again.to_string()], RUN_TIMEOUT);
    assert_eq!(
        watched.status.code(),
        Some(0),
        "the run after the files were damaged: {}",
        watched.stderr
    );
    assert_whole(&artifacts, &database);
    let log = std::fs::read_to_string(scratch.join("coordinator-1.log")).unwrap();
    assert_eq!(
        log.matches("a stored artifact's file is damaged").count(),
        2,
        "the coordinator does not log both damaged files:\n{log}"
    );
}

/// Every file in `artifacts` holds the bytes its name hashes to, and its row says its size; no other file.
fn assert_whole(artifacts: &Path, database: &Database) {
    let rows = database.psql("SELECT digest || ' ' || size_bytes FROM artifact ORDER BY digest");
    let mut files: Vec<String> = std::fs::read_dir(artifacts)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            let bytes = std::fs::read(entry.path()).unwrap();
            assert_eq!(sha256_hex(&bytes), name, "the artifact file {name} holds other bytes");
            format!("{name} {}", bytes.len())
        })
        .collect();
    files.sort();
    assert_eq!(files.join("\n"), rows, "the artifact dir against the artifact rows");
}
