//! One evaluation as PaddleOCR's `eval.py` runs it, minus the model: the config's eval set opened and
//! checked ([`open_dataset`]), then, batch by batch, the model's output post-processed and scored
//! ([`Evaluator::add_batch`]), and at the end the metric dict with `num_samples` ([`Evaluator::finish`]).
//!
//! The post-processing, the metric and the label transform must belong to one task (DB with `DetMetric`
//! and `DetLabelEncode`, CTC with `RecMetric` and a rec label encoder, classification with `ClsMetric` and
//! `ClsLabelEncode`): PaddleOCR would fail deep in its eval loop on a mix, so it is refused up front.

use std::path::PathBuf;

use crate::batch::Batch;
use crate::cls::{ClsError, ClsMetric, ClsPostProcess};
use crate::config::schema::transform::RecLabelEncode;
use crate::config::{Config, MetricKind, PostProcess, Transform};
use crate::dataset::{Dataset, DatasetError, OpenOptions};
use crate::det::{DbPostProcess, DetError, DetMetric, ProbMap, ShapeInfo};
use crate::metric_dict::MetricDict;
use crate::rec::{CharacterDict, CtcLabelDecode, CtcLabelEncode, LabelTransform, RecError, RecMetric};
use crate::transforms::Target;

/// What stops an evaluation. Each message is one line naming what is at fault.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Sections of the config that do not belong to one task.
    #[error("{path}: {message}")]
    Mismatch { path: PathBuf, message: String },
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{path}: {error}")]
    Dictionary { path: PathBuf, error: RecError },
    #[error("model output {output}: {message}")]
    Output { output: String, message: String },
    #[error("DB post-processing: {0}")]
    Det(#[from] DetError),
    #[error("CTC decoding: {0}")]
    Rec(#[from] RecError),
    #[error("cls post-processing: {0}")]
    Cls(#[from] ClsError),
}

/// The options a sensitivity run opens the config's eval set with: `Sensitivity.eval_samples` lines chosen by
/// `Sensitivity.seed`, or all of them when that is 0.
pub fn sensitivity_open_options(config: &Config) -> OpenOptions {
    let sensitivity = config.sensitivity();
    OpenOptions {
        eval_samples: (sensitivity.eval_samples > 0).then_some(sensitivity.eval_samples),
        subset_seed: sensitivity.seed,
        ..OpenOptions::default()
    }
}

/// Opens the config's eval set: [`Dataset::open`], then, for recognition, the lines PaddleOCR's rec label
/// encoder returns `None` for (empty, too long, nothing in the dictionary) marked so that their neighbours
/// stand in for them.
///
/// # Errors
/// [`EvalError::Dataset`] as [`Dataset::open`]; [`EvalError::Dictionary`] for an unreadable dictionary.
pub fn open_dataset(config: &Config, options: &OpenOptions) -> Result<Dataset, EvalError> {
    let mut dataset = Dataset::open(config.eval_dataset(), options)?;
    if let Some(encoder) = rec_label_encoder(config, dataset.pipeline().label_transform())? {
        dataset.skip_where(|entry| match &entry.target {
            Some(Target::Rec { text }) => encoder.encode(text).is_none(),
            _ => false,
        })?;
    }
    Ok(dataset)
}

/// The rec label encoder of a `CTCLabelEncode` or `MultiLabelEncode` label transform; `None` for others.
fn rec_label_encoder(config: &Config, label: &Transform) -> Result<Option<CtcLabelEncode>, EvalError> {
    let (args, transform): (&RecLabelEncode, _) = match label {
        Transform::CTCLabelEncode(args) => (args, LabelTransform::Ctc),
        Transform::MultiLabelEncode(multi) => (&multi.label, LabelTransform::Multi),
        _ => return Ok(None),
    };
    let dict = dictionary(config, args.character_dict_path.as_ref(), args.use_space_char)?;
    Ok(Some(CtcLabelEncode::new(dict, args.max_text_length, transform)))
}

fn dictionary(config: &Config, path: Option<&PathBuf>, use_space_char: bool) -> Result<CharacterDict, EvalError> {
    CharacterDict::from_config(path.map(PathBuf::as_path), use_space_char).map_err(|error| EvalError::Dictionary {
        path: path.cloned().unwrap_or_else(|| config.path().to_owned()),
        error,
    })
}

/// Post-processing and metric of one task, accumulated over the batches of an eval set.
#[derive(Debug)]
pub struct Evaluator {
    task: Task,
    num_samples: usize,
}

#[derive(Debug)]
enum Task {
    Det {
        post: DbPostProcess,
        metric: DetMetric,
    },
    Rec {
        decode: CtcLabelDecode,
        encode: CtcLabelEncode,
        metric: RecMetric,
    },
    Cls {
        post: ClsPostProcess,
        /// The label transform's `label_list`: the text of each target index.
        labels: Vec<String>,
        metric: ClsMetric,
    },
}

impl Evaluator {
    /// The post-processing and metric of `config`.
    ///
    /// # Errors
    /// [`EvalError::Mismatch`] when `PostProcess`, `Metric` and the label transform are not of one task;
    /// [`EvalError::Dictionary`] for an unreadable character dictionary.
    pub fn new(config: &Config) -> Result<Evaluator, EvalError> {
        let metric = &config.metric().kind;
        let label = config.eval_dataset().transforms.iter().find(|t| is_label_transform(t));
        // The error for a `PostProcess` whose metric or label transform is not the one it needs.
        let mismatch = |want_metric: &str, want_label: &str| EvalError::Mismatch {
            path: config.path().to_owned(),
            message: format!(
                "PostProcess.name {} needs Metric.name {want_metric} and {want_label} in Eval.dataset.transforms, \
                 got {} and {}",
                config.post_process().name(),
                metric.name(),
                label.map_or("no label transform", |t| t.name()),
            ),
        };
        let task = match config.post_process() {
            PostProcess::DBPostProcess(args) => {
                if *metric != MetricKind::DetMetric || !matches!(label, Some(Transform::DetLabelEncode)) {
                    return Err(mismatch("DetMetric", "DetLabelEncode"));
                }
                Task::Det {
                    post: args.clone(),
                    metric: DetMetric::new(),
                }
            }
            PostProcess::CTCLabelDecode(args) => {
                let rec_mismatch = || mismatch("RecMetric", "CTCLabelEncode or MultiLabelEncode");
                let MetricKind::RecMetric {
                    ignore_space,
                    is_filter,
                } = *metric
                else {
                    return Err(rec_mismatch());
                };
                let Some(encode) = label.map(|l| rec_label_encoder(config, l)).transpose()?.flatten() else {
                    return Err(rec_mismatch());
                };
                let dict = dictionary(config, args.character_dict_path.as_ref(), args.use_space_char)?;
                Task::Rec {
                    decode: CtcLabelDecode::new(dict),
                    encode,
                    metric: RecMetric::with_options(is_filter, ignore_space),
                }
            }
            PostProcess::ClsPostProcess(args) => {
                let Some(Transform::ClsLabelEncode(encode)) = label.filter(|_| *metric == MetricKind::ClsMetric) else {
                    return Err(mismatch("ClsMetric", "ClsLabelEncode"));
                };
                Task::Cls {
                    post: ClsPostProcess::new(args.label_list.clone()),
                    labels: encode.label_list.clone(),
                    metric: ClsMetric::new(),
                }
            }
        };
        Ok(Evaluator { task, num_samples: 0 })
    }

    /// Post-processes the model's output for `batch` (row-major, of shape `dims`) and scores it.
    ///
    /// Det outputs are `[N, 1, H, W]` probability maps; rec outputs `[N, T, classes]` probabilities;
    /// cls outputs `[N, classes]` probabilities.
    ///
    /// # Errors
    /// [`EvalError::Output`] for an output of the wrong shape; the post-processing's errors (a class count
    /// that does not match the dictionary, say).
    pub fn add_batch(&mut self, batch: &Batch, output: &[f32], dims: &[usize]) -> Result<(), EvalError> {
        let n = batch.shape[0];
        let wrong = |expected: &str| EvalError::Output {
            output: format!("{dims:?}"),
            message: format!("expected {expected} for a batch of {n}"),
        };
        match &mut self.task {
            Task::Det { post, metric } => {
                let &[batch_size, 1, height, width] = dims else {
                    return Err(wrong("[N, 1, H, W]"));
                };
                if batch_size != n || batch.shape_lists.len() != n {
                    return Err(wrong("[N, 1, H, W]"));
                }
                let plane = height * width;
                for (i, target) in batch.targets.iter().enumerate() {
                    let map = ProbMap::new(&output[i * plane..(i + 1) * plane], height, width)?;
                    let boxes = post.boxes(map, ShapeInfo::from(batch.shape_lists[i]))?;
                    let detections: Vec<Vec<[f64; 2]>> = boxes
                        .iter()
                        .map(|b| b.points.iter().map(|&[x, y]| [f64::from(x), f64::from(y)]).collect())
                        .collect();
                    let gt = target.gt_polygons().ok_or_else(|| wrong("det targets"))?;
                    metric.accumulate(&gt, &detections);
                }
            }
            Task::Rec { decode, encode, metric } => {
                let &[batch_size, time, classes] = dims else {
                    return Err(wrong("[N, T, classes]"));
                };
                if batch_size != n {
                    return Err(wrong("[N, T, classes]"));
                }
                let predictions = decode.decode(output, batch_size, time, classes)?;
                let targets: Vec<String> = batch
                    .targets
                    .iter()
                    .map(|t| match t {
                        // The dataset only hands out lines the encoder keeps (see `open_dataset`).
                        Target::Rec { text } => encode.target(text).ok_or_else(|| EvalError::Output {
                            output: format!("{dims:?}"),
                            message: format!(
                                "label {text:?} has no recognition target (dataset not opened by open_dataset)"
                            ),
                        }),
                        _ => Err(wrong("rec targets")),
                    })
                    .collect::<Result<_, _>>()?;
                metric.accumulate_batch(
                    predictions
                        .iter()
                        .map(|(p, _)| p.as_str())
                        .zip(targets.iter().map(String::as_str)),
                );
            }
            Task::Cls { post, labels, metric } => {
                let &[batch_size, classes] = dims else {
                    return Err(wrong("[N, classes]"));
                };
                if batch_size != n {
                    return Err(wrong("[N, classes]"));
                }
                let predictions = post.decode(output, batch_size, classes)?;
                let targets: Vec<&str> = batch
                    .targets
                    .iter()
                    .map(|t| match t {
                        Target::Cls { label } => labels
                            .get(*label)
                            .map(String::as_str)
                            .ok_or_else(|| wrong("cls targets")),
                        _ => Err(wrong("cls targets")),
                    })
                    .collect::<Result<_, _>>()?;
                metric.accumulate_batch(predictions.iter().map(|(p, _)| p.as_str()).zip(targets));
            }
        }
        self.num_samples += n;
        Ok(())
    }

    /// Samples scored so far.
    pub fn num_samples(&self) -> usize {
        self.num_samples
    }

    /// The metric dict under PaddleOCR's keys, plus `num_samples`.
    pub fn finish(&self) -> MetricDict {
        let mut dict: MetricDict = match &self.task {
            Task::Det { metric, .. } => metric.finalize().into(),
            Task::Rec { metric, .. } => metric.finalize().into(),
            Task::Cls { metric, .. } => metric.finalize().into(),
        };
        dict.insert("num_samples", self.num_samples as f64);
        dict
    }
}

fn is_label_transform(t: &Transform) -> bool {
    matches!(
        t,
        Transform::DetLabelEncode
            | Transform::CTCLabelEncode(_)
            | Transform::MultiLabelEncode(_)
            | Transform::ClsLabelEncode(_)
    )
}
