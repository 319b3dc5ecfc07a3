//! Errors of detection post-processing and metrics. Each names the input at fault and why.

/// What is wrong with an input to post-processing or the metric.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DetError {
    /// A probability map whose data does not fill its stated size.
    #[error("probability map: expected {height}x{width} = {expected} values, got {got}")]
    MapSize {
        height: usize,
        width: usize,
        expected: usize,
        got: usize,
    },
    /// A `shape_list` entry that cannot scale boxes back (not finite, or not positive).
    #[error("shape_list: {name} must be a positive finite number, got {value}")]
    Shape { name: &'static str, value: f64 },
    /// A coordinate that pyclipper refuses.
    #[error("coordinate {value}: {reason}")]
    Coordinate { value: f64, reason: &'static str },
    /// An option outside its domain.
    #[error("DBPostProcess: {name} {message}")]
    Option { name: &'static str, message: String },
}
