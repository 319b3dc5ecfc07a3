//! The entry points of the fuzz targets (`fuzz/`): each takes arbitrary bytes, runs one reader of hostile input,
//! and must return without panicking or aborting whatever the bytes. The `fuzz_replay` test runs them on every
//! stored corpus file under stable, so a crash once found stays fixed.

use std::path::Path;
use std::sync::OnceLock;

use crate::Config;
use crate::bundle;
use crate::dataset::parse_line;
use crate::image::{self, ReadMode};
use crate::transforms::Pipeline;

/// The image decoder in both read modes, EXIF orientation applied.
pub fn image_decode(bytes: &[u8]) {
    for mode in [ReadMode::Color, ReadMode::Gray] {
        let _ = image::decode(bytes, mode, true);
    }
}

/// The eval bundle reader, unpacking into a scratch folder of this process that is removed afterwards.
pub fn eval_bundle(bytes: &[u8]) {
    let dir = std::env::temp_dir().join(format!("sensgrid-fuzz-bundle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = bundle::unpack(bytes, &dir);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The config reader with overrides: the bytes up to the first NUL are the YAML, each line after it one `-o`
/// pair. A config that reads must write back (`Config::to_yaml`, what `submit` sends) as one that reads again.
pub fn config(bytes: &[u8]) {
    let (yaml, overrides) = match bytes.iter().position(|&b| b == 0) {
        Some(at) => (&bytes[..at], &bytes[at + 1..]),
        None => (bytes, &[][..]),
    };
    let yaml = String::from_utf8_lossy(yaml);
    let overrides: Vec<String> = String::from_utf8_lossy(overrides).lines().map(str::to_owned).collect();
    if let Ok(config) = Config::from_yaml(&yaml, "fuzz.yml", &overrides) {
        let written = config.to_yaml();
        if let Err(error) = Config::from_yaml(&written, "fuzz.yml", &[] as &[&str]) {
            panic!("a config that read does not read back: {error}\n{written}");
        }
    }
}

/// A det and a cls config whose eval transforms encode labels (`DetLabelEncode`, `ClsLabelEncode`).
const LABEL_CONFIGS: [&str; 2] = [
    "Global: {pretrained_model: det.onnx}
PostProcess: {name: DBPostProcess}
Metric: {name: DetMetric, main_indicator: hmean}
Eval:
  dataset:
    name: SimpleDataSet
    data_dir: data
    label_file_list: [data/label.txt]
    transforms:
      - DecodeImage: {img_mode: BGR, channel_first: False}
      - DetLabelEncode:
      - DetResizeForTest: {limit_side_len: 320, limit_type: max}
      - NormalizeImage: {scale: 1./255., mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], order: hwc}
      - ToCHWImage:
      - KeepKeys: {keep_keys: [image, shape, polys, ignore_tags]}
",
    "Global: {pretrained_model: cls.onnx}
PostProcess: {name: ClsPostProcess, label_list: ['0', '180']}
Metric: {name: ClsMetric, main_indicator: acc}
Eval:
  dataset:
    name: SimpleDataSet
    data_dir: data
    label_file_list: [data/label.txt]
    transforms:
      - DecodeImage: {img_mode: BGR, channel_first: False}
      - ClsLabelEncode: {label_list: ['0', '180']}
      - ClsResizeImg: {image_shape: [3, 48, 192]}
      - KeepKeys: {keep_keys: [image, label]}
",
];

/// One label line, as `Dataset::open` parses it, under the det and the cls label transforms.
pub fn label_line(bytes: &[u8]) {
    static PIPELINES: OnceLock<Vec<(Pipeline, String)>> = OnceLock::new();
    let pipelines = PIPELINES.get_or_init(|| {
        LABEL_CONFIGS
            .iter()
            .map(|yaml| {
                let config = Config::from_yaml(yaml, "label.yml", &[] as &[&str]).expect("the fixed configs read");
                let dataset = config.eval_dataset();
                let pipeline = Pipeline::new(&dataset.transforms).expect("the fixed transforms build");
                (pipeline, dataset.delimiter.clone())
            })
            .collect()
    });
    for (pipeline, delimiter) in pipelines {
        let _ = parse_line(bytes, delimiter, Path::new("data"), pipeline);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_label_line_configs_build_their_pipelines() {
        super::label_line(b"images/a.png\t0\n");
    }
}
