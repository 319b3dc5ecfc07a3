//! Errors of recognition dictionaries, CTC decoding and label encoding. Each names the input at fault.

use std::path::PathBuf;

/// What is wrong with a dictionary file or a recognition model's output.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecError {
    /// A dictionary file that cannot be read.
    #[error("{}: {reason}", path.display())]
    DictRead { path: PathBuf, reason: String },
    /// A dictionary line that is not UTF-8 (PaddleOCR's `line.decode('utf-8')` raises there too).
    #[error("{}:{line}: not UTF-8: {reason}", path.display())]
    DictUtf8 { path: PathBuf, line: usize, reason: String },
    /// A CTC output whose class axis does not match the dictionary.
    #[error("CTC output has {got} classes, but the dictionary has {expected} (blank included)")]
    Classes { expected: usize, got: usize },
    /// A CTC output whose data does not fill its stated shape.
    #[error("CTC output: expected batch {batch} x time {time} x classes {classes} = {expected} values, got {got}")]
    OutputSize {
        batch: usize,
        time: usize,
        classes: usize,
        expected: usize,
        got: usize,
    },
    /// A label index past the end of the dictionary.
    #[error("label index {index} is out of range for a dictionary of {len} entries (blank included)")]
    LabelIndex { index: usize, len: usize },
}
