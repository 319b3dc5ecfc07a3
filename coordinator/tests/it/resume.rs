//! `coordinator submit --resume-from sen.pickle` with the real binary against `coordinator serve`: a hostile
//! pickle is refused in one line with exit code 2 and no run, and a pickle partly outside the grid is imported
//! with a line saying what was dropped and why.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_pickle::{HashableValue, SerOptions, Value as Pickle};

use crate::cli::{listening_addr, serve_command, terminate};

/// A channel group of PP-OCRv3 det.
const GROUP: &str = "conv2d_1.w_0";

/// A det config for PP-OCRv3 det on a one-image eval set in `dir`, with a grid of two ratios.
fn write_config(dir: &Path) -> PathBuf {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/ch_PP-OCRv3_det_infer.onnx");
    let image = std::fs::File::create(dir.join("image.png")).unwrap();
    let mut encoder = png::Encoder::new(image, 8, 8);
    encoder.set_color(png::ColorType::Rgb);
    encoder
        .write_header()
        .unwrap()
        .write_image_data(&[128; 8 * 8 * 3])
        .unwrap();
    std::fs::write(
        dir.join("label.txt"),
        "image.png\t[{\"transcription\": \"a\", \"points\": [[0, 0], [8, 0], [8, 8], [0, 8]]}]\n",
    )
    .unwrap();
    let config = dir.join("det.yml");
    let data = dir.display();
    std::fs::write(
        &config,
        format!(
            "Global:
  pretrained_model: {model}
PostProcess:
  name: DBPostProcess
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
Sensitivity:
  ratios: [0.1, 0.2]
",
            model = model.display()
        ),
    )
    .unwrap();
    config
}

/// `coordinator submit -c CONFIG --resume-from PICKLE` against the coordinator at `addr`.
fn submit(addr: &str, config: &Path, pickle: &Path) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .arg("submit")
        .arg("-c")
        .arg(config)
        .arg("--resume-from")
        .arg(pickle)
        .args(["--coordinator", &format!("http://{addr}"), "--token", "a"])
        .output()
        .expect("running coordinator submit")
}

/// The pickle's bytes written as `name` in `dir`.
fn write_pickle(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn table(groups: &[(&str, &[(f64, f64)])]) -> Vec<u8> {
    let dict = Pickle::Dict(
        groups
            .iter()
            .map(|(group, cells)| {
                let losses = cells
                    .iter()
                    .map(|&(r, l)| (HashableValue::F64(r), Pickle::F64(l)))
                    .collect();
                (HashableValue::String((*group).to_owned()), Pickle::Dict(losses))
            })
            .collect(),
    );
    serde_pickle::value_to_vec(&dict, SerOptions::new()).unwrap()
}

/// The `coordinator serve` child, killed if the test fails before it is terminated: it would otherwise keep
/// its test database open and block the next run's cleanup.
struct Serving(Option<std::process::Child>);

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Asserts that `output` is a refusal: exit code 2 (not a signal), one stderr line ending in `reason`.
fn assert_refused(output: &Output, reason: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let line = stderr.trim_end();
    assert!(
        line.lines().count() == 1 && line.ends_with(reason),
        "expected one line ending in {reason:?}, got {line:?}"
    );
}

#[sqlx::test(migrations = false)]
async fn resume_from_refuses_hostile_pickles_and_says_what_it_dropped(
    _pool: sqlx::postgres::PgPoolOptions,
    connect: sqlx::postgres::PgConnectOptions,
) {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let config = write_config(dir);
    let artifact_dir = dir.join("artifacts");
    let mut serving = Serving(Some(
        serve_command(&connect, &artifact_dir)
            .spawn()
            .expect("starting coordinator serve"),
    ));
    let addr = listening_addr(serving.0.as_mut().expect("serving")).await;

    // Protocol 0's INST: OrderedDict built from a dict of the right shape.
    let inst = write_pickle(
        dir,
        "inst.pickle",
        b"(}(S'conv2d_1.w_0'\n}F0.1\nF0.5\nsuicollections\nOrderedDict\n.",
    );
    let refused = "byte 32: INST is refused: a sen.pickle holds only a dict {str: {float: float}}";
    assert_refused(
        &submit(&addr, &config, &inst),
        &format!("--resume-from: {}: {refused}", inst.display()),
    );

    // PaddleSlim's dygraph Status: GLOBAL, NEWOBJ, and BUILD with the table in its attribute dict.
    let mut status =
        b"\x80\x02cpaddleslim.dygraph.prune.filter_pruner\nStatus\n)\x81}X\x0b\x00\x00\x00sensitivies".to_vec();
    status.extend_from_slice(&table(&[(GROUP, &[(0.1, 0.5)])])[2..]);
    status.pop();
    status.extend_from_slice(b"sb.");
    let status = write_pickle(dir, "status.pickle", &status);
    assert_refused(
        &submit(&addr, &config, &status),
        "byte 2: GLOBAL is refused: a sen.pickle holds only a dict {str: {float: float}}",
    );

    // 1.4 MB of {'a': {'a': ...}}: refused, not a stack overflow.
    let levels = 200_000;
    let mut nested = b"\x80\x02".to_vec();
    for _ in 0..levels {
        nested.extend_from_slice(b"}X\x01\x00\x00\x00a");
    }
    nested.extend(std::iter::repeat_n(b's', levels));
    nested.push(b'.');
    let nested = write_pickle(dir, "nested.pickle", &nested);
    assert_refused(
        &submit(&addr, &config, &nested),
        "byte 229378: EMPTY_DICT: more than 65536 values on the stack: a dict {group: {ratio: loss}} needs a few \
         thousand",
    );

    // Nothing of another model fits: refused rather than run from scratch.
    let foreign = write_pickle(dir, "foreign.pickle", &table(&[("conv9", &[(0.1, 0.3), (0.2, 0.1)])]));
    assert_refused(
        &submit(&addr, &config, &foreign),
        &format!(
            "--resume-from {}: none of its 2 cells is a cell of this run: 'conv9' is not a channel group of this \
             model (2 cells)",
            foreign.display()
        ),
    );

    let status_json = std::process::Command::new(env!("CARGO_BIN_EXE_coordinator"))
        .args([
            "status",
            "--json",
            "--coordinator",
            &format!("http://{addr}"),
            "--token",
            "a",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&status_json.stdout).trim(),
        "[]",
        "a refused submission left a run"
    );

    // An unknown group and an off-grid ratio are dropped, and the line says so.
    let partial = write_pickle(
        dir,
        "partial.pickle",
        &table(&[
            (GROUP, &[(0.1, 0.5), (0.15, 0.25)]),
            ("conv9", &[(0.1, 0.3), (0.2, 0.1)]),
        ]),
    );
    let output = submit(&addr, &config, &partial);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let expected = format!(
        "--resume-from {}: imported 1 cell; dropped 3: 'conv9' is not a channel group of this model (2 cells), \
         ratio 0.15 of '{GROUP}' is not in Sensitivity.ratios",
        partial.display()
    );
    assert!(
        stderr.lines().any(|line| line == expected),
        "expected {expected:?} in {stderr}"
    );
    assert!(stderr.contains("(1 imported)"), "{stderr}");

    let output = terminate(serving.0.take().expect("still serving")).await;
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}
