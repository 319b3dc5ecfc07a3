//! Text detection against references written by the Python side (`scripts/oracle/*_cases.py`): pyclipper's
//! offsets, PaddleOCR's DBPostProcess on synthetic maps, and the detection metric.

mod clipper;
mod metric;
mod opencv;
mod postprocess;

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The path of a det fixture.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A det fixture parsed as JSON.
pub fn json(name: &str) -> Value {
    let text = std::fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `[[x, y], ...]` as float points.
pub fn points_f64(v: &Value) -> Vec<[f64; 2]> {
    v.as_array()
        .expect("a list of points")
        .iter()
        .map(|p| [p[0].as_f64().expect("x"), p[1].as_f64().expect("y")])
        .collect()
}

/// `[[x, y], ...]` as integer points.
pub fn points_i64(v: &Value) -> Vec<[i64; 2]> {
    v.as_array()
        .expect("a list of points")
        .iter()
        .map(|p| [p[0].as_i64().expect("x"), p[1].as_i64().expect("y")])
        .collect()
}
