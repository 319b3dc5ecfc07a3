//! Configs: PaddleOCR's det, rec and cls configs as they are (`tests/fixtures/configs/`), variants of them
//! that each test writes out, and `-o` overrides.

mod accept;
mod overrides;
mod strict;

use std::path::{Path, PathBuf};

use sensgrid_eval::config::{Config, ConfigError};

/// The path of a fixture config.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/configs")
        .join(name)
}

/// The text of a fixture config.
pub fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

/// `text` written to a fresh file named `file_name` under the test's own temporary folder.
pub fn write_config(test: &str, file_name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sensgrid-eval-it-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file_name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The overrides every det test needs: the model, and an eval set of its own.
pub const DET_OVERRIDES: [&str; 3] = [
    "Global.pretrained_model=models/det.onnx",
    "Eval.dataset.data_dir=/data/icdar2015",
    "Eval.dataset.label_file_list=[/data/icdar2015/a.txt, /data/icdar2015/b.txt]",
];

/// The message of loading `text` as `det.yml` with `overrides`, which must fail.
pub fn error(text: &str, overrides: &[&str]) -> String {
    match Config::from_yaml(text, "det.yml", overrides) {
        Ok(_) => panic!("loaded, expected an error"),
        Err(e) => one_line(e),
    }
}

/// The error's message, checked to be one line.
pub fn one_line(e: ConfigError) -> String {
    let message = e.to_string();
    assert!(!message.contains('\n'), "not one line: {message}");
    message
}

/// The det fixture with `from` replaced by `to` (which must be found once), so lines stay the fixture's.
pub fn det_with(from: &str, to: &str) -> String {
    replace_once(&fixture_text("ch_det_mv3_db_v2.0.yml"), from, to)
}

/// `text` with its one occurrence of `from` replaced by `to`.
pub fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "{from:?} is not in the text exactly once"
    );
    text.replacen(from, to, 1)
}
