//! Reference data from onnxruntime (`scripts/oracle/`, run in the `.oracle` venv that `make setup` makes),
//! generated once per build directory and its inputs (keyed by their sha256) and read back by the parity
//! tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tch::{Kind, Tensor};

/// The workspace root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs the worker binary with `args`.
pub fn worker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_worker"))
        .args(args)
        .output()
        .expect("running the worker")
}

/// A fresh-enough scratch folder for one test, under the build directory.
pub fn scratch(area: &str, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(area).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The path of a model that `make setup` extracted into `models/`.
pub fn model(file: &str) -> String {
    root().join("models").join(file).display().to_string()
}

/// Runs `scripts/oracle/<script> --out <dir>` unless `<dir>` holds what the same inputs made, and returns
/// `<dir>`. The output is keyed by [`oracle_key`]: editing the script, the helpers it shares, the oracle's
/// pinned packages or a model regenerates it from scratch, so no stale reference outlives its cause.
pub fn generated(script: &str, dir_name: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oracle").join(dir_name);
    let marker = dir.join(".sha256");
    let key = oracle_key(script);
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(key.as_str()) {
        let python = root().join(".oracle/bin/python");
        assert!(python.exists(), "{} is missing: run `make setup`", python.display());
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        let status = Command::new(&python)
            .arg(root().join("scripts/oracle").join(script))
            .arg("--out")
            .arg(&dir)
            .current_dir(root())
            .status()
            .expect("running the oracle");
        assert!(status.success(), "scripts/oracle/{script} failed");
        std::fs::write(&marker, &key).unwrap();
    }
    dir
}

/// The sha256, in hex, of everything `scripts/oracle/<script>`'s output depends on: the script, the oracle's
/// shared helpers (`oracle_common.py`), its pinned packages (`scripts/oracle-*requirements.txt`), and the
/// models in `models/` that the reference scripts run.
pub fn oracle_key(script: &str) -> String {
    static MODELS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    let models = MODELS.get_or_init(|| {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("models"))
            .map(|entries| entries.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .into_iter()
            .filter(|path| path.extension().is_some_and(|e| e == "onnx"))
            .map(|path| {
                let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                (
                    path.file_name().unwrap().to_string_lossy().into_owned(),
                    Sha256::digest(bytes).to_vec(),
                )
            })
            .collect()
    });
    let mut hasher = Sha256::new();
    for file in [
        format!("scripts/oracle/{script}"),
        "scripts/oracle/oracle_common.py".to_owned(),
        "scripts/oracle-requirements.txt".to_owned(),
        "scripts/oracle-torch-requirements.txt".to_owned(),
    ] {
        let path = root().join(&file);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // Each input is named and length-prefixed, so moving bytes between inputs changes the key.
        hasher.update(format!("{file}\0{}\0", bytes.len()));
        hasher.update(bytes);
    }
    for (name, digest) in models {
        hasher.update(format!("models/{name}\0"));
        hasher.update(digest);
    }
    format!("{:x}", hasher.finalize())
}

/// Reads a JSON file.
pub fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Reads a .npy file. tch reads a 0-d array as shape [1]; the header says when it is a scalar.
pub fn npy(path: &Path) -> Tensor {
    let tensor = Tensor::read_npy(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let head = std::fs::read(path).unwrap().into_iter().take(256).collect::<Vec<u8>>();
    let scalar = String::from_utf8_lossy(&head).contains("'shape': ()");
    if scalar {
        tensor.reshape(Vec::<i64>::new())
    } else {
        tensor
    }
}

/// How far `actual` is from `expected`: None when within tolerance, else a description.
/// Floats: largest absolute difference ≤ `tol`, and relative difference ≤ `tol` where |expected| > 1.
/// Integers and booleans: equal.
pub fn mismatch(actual: &Tensor, expected: &Tensor, tol: f64) -> Option<String> {
    let actual = actual.to_device(tch::Device::Cpu);
    if actual.size() != expected.size() {
        return Some(format!("shape {:?}, expected {:?}", actual.size(), expected.size()));
    }
    if actual.numel() == 0 {
        return None;
    }
    let floating = matches!(expected.kind(), Kind::Float | Kind::Double | Kind::Half);
    let (a, e) = (actual.to_kind(Kind::Double), expected.to_kind(Kind::Double));
    let diff = (&a - &e).abs();
    let max_abs = diff.max().double_value(&[]);
    if !floating {
        return (max_abs != 0.0).then(|| format!("integer values differ by up to {max_abs}"));
    }
    let scale = e.abs().clamp_min(1.0);
    let max_rel = (&diff / &scale).max().double_value(&[]);
    let big = e.abs().gt(1.0);
    let abs_small = diff.masked_fill(&big, 0.0).max().double_value(&[]);
    (abs_small > tol || max_rel > tol || max_abs.is_nan())
        .then(|| format!("max abs diff {abs_small:.3e} (|x| <= 1), max rel diff {max_rel:.3e} (|x| > 1)"))
}

/// For ops that sum many products (Conv, ConvTranspose, MatMul, Gemm): the largest difference relative
/// to the tensor's largest magnitude. An output element that cancels a sum of thousands of large terms
/// carries float32 rounding of the order of those terms, whichever library sums them; measuring it against
/// the element itself would test summation order, not the kernel. None when within `tol`.
pub fn mismatch_normalized(actual: &Tensor, expected: &Tensor, tol: f64) -> Option<String> {
    let actual = actual.to_device(tch::Device::Cpu).to_kind(Kind::Double);
    if actual.size() != expected.size() {
        return Some(format!("shape {:?}, expected {:?}", actual.size(), expected.size()));
    }
    let expected = expected.to_kind(Kind::Double);
    let max_diff = (&actual - &expected).abs().max().double_value(&[]);
    let scale = expected.abs().max().double_value(&[]).max(1.0);
    (max_diff > tol * scale || max_diff.is_nan())
        .then(|| format!("max diff {max_diff:.3e} against the tensor's largest magnitude {scale:.3e}"))
}
