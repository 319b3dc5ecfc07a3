//! Text recognition as PaddleOCR evaluates it: the character dictionary ([`dict`]), greedy CTC decoding of
//! model outputs ([`ctc`]), the eval targets ([`encode`]) and the metric ([`metric`]).
//!
//! Each reproduces PaddleOCR's Python (`ppocr/postprocess/rec_postprocess.py`,
//! `ppocr/data/imaug/label_ops.py`, `ppocr/metrics/rec_metric.py`) with numpy's arithmetic where it
//! matters. Nothing here runs a model; reading a model's metadata is the caller's.

pub mod ctc;
pub mod dict;
pub mod encode;
pub mod error;
pub mod metric;

pub use ctc::CtcLabelDecode;
pub use dict::CharacterDict;
pub use encode::{CtcLabelEncode, LabelTransform};
pub use error::RecError;
pub use metric::{RecCounts, RecMetric, RecScores};
