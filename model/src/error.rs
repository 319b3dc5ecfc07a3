//! Errors of reading, checking and writing models. Each names the file, node, op or attribute at fault.

use std::path::PathBuf;

/// What went wrong with a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    // The cause is part of the message and deliberately not a `source`: an error chain printed with `{:#}`
    // would otherwise repeat it.
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: std::io::Error },
    #[error("{path}: not a valid ONNX model: {reason}")]
    Decode { path: PathBuf, reason: prost::DecodeError },
    #[error("{0}")]
    Invalid(String),
    #[error("node '{node}' ({op}): {message}")]
    Node { node: String, op: String, message: String },
    #[error("node '{node}' ({op}), attribute '{attr}': {message}")]
    Attribute {
        node: String,
        op: String,
        attr: String,
        message: String,
    },
    #[error("tensor '{tensor}': {message}")]
    Tensor { tensor: String, message: String },
}

/// The crate's result type.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
