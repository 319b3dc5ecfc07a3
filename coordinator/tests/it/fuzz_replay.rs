//! Replays every stored fuzz corpus (`fuzz/corpus/TARGET/*`) through its target's entry point under stable, so
//! a crash `cargo +nightly fuzz run` once found, and whose input was kept, stays fixed. The targets are thin
//! calls to these same functions (`fuzz/fuzz_targets`).

use std::path::PathBuf;

/// Feeds each file of `fuzz/corpus/{target}` to `entry`; a panic names the file, an abort ends the test binary.
fn replay(target: &str, entry: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no corpus", dir.display());
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| entry(&bytes));
        assert!(outcome.is_ok(), "fuzz target {target} panicked on {}", file.display());
    }
}

#[test]
fn onnx_model_corpus_replays() {
    replay("onnx_model", sensgrid_model::fuzzing::onnx_model);
}

#[test]
fn image_decode_corpus_replays() {
    replay("image_decode", sensgrid_eval::fuzzing::image_decode);
}

#[test]
fn eval_bundle_corpus_replays() {
    replay("eval_bundle", sensgrid_eval::fuzzing::eval_bundle);
}

#[test]
fn sen_pickle_corpus_replays() {
    replay("sen_pickle", sensgrid_model::fuzzing::sen_pickle);
}

#[test]
fn config_corpus_replays() {
    replay("config", sensgrid_eval::fuzzing::config);
}

#[test]
fn label_line_corpus_replays() {
    replay("label_line", sensgrid_eval::fuzzing::label_line);
}
