//! Recognition and classification against references written by `scripts/oracle/rec_cases.py`
//! (PaddleOCR's rules with numpy and rapidfuzz), and the real PP-OCR dictionaries from `make setup`.

mod cases;
mod dictionaries;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The path of a rec fixture.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rec")
        .join(name)
}

/// `cases.json`, parsed once per test.
pub fn cases() -> Value {
    let path = fixture("cases.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Quantised probabilities as both sides read them: `float32(q) / float32(65535)`.
pub fn probs(q: &Value) -> Vec<f32> {
    q.as_array()
        .expect("q: a list")
        .iter()
        .map(|v| v.as_u64().expect("q: integers") as f32 / 65535.0f32)
        .collect()
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("a list of strings")
        .iter()
        .map(|s| s.as_str().expect("a string").to_string())
        .collect()
}

pub fn usize_of(v: &Value) -> usize {
    v.as_u64().expect("an unsigned integer") as usize
}
