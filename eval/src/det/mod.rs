//! Text detection as PaddleOCR evaluates it: DB post-processing of a probability map into boxes
//! ([`postprocess`]) and the detection metric over boxes ([`metric`]).
//!
//! Everything here reproduces the Python reference bit for bit where that is possible: the OpenCV
//! primitives PaddleOCR calls (`findContours`, `minAreaRect`, `boxPoints`, `fillPoly`, `mean`, `dilate`,
//! `approxPolyDP`) live in their own modules, and polygon offsetting follows pyclipper ([`clipper`]).
//! Nothing here reads files or runs a model.

pub mod approx;
pub mod clipper;
pub mod contours;
pub mod error;
pub mod metric;
pub mod polygon;
pub mod postprocess;
pub mod raster;
pub mod rect;
mod stdsort;

pub use error::DetError;
pub use metric::{DetMetric, DetScores, GtPolygon, ImageCounts};
pub use postprocess::{BoxType, DbPostProcess, DetBox, ProbMap, ScoreMode, ShapeInfo};
