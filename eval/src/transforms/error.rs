//! Errors of the eval transforms: a transform list sensgrid cannot run as PaddleOCR would, a label the label
//! transform cannot read, and an image a transform cannot process. Each names the transform or says what in
//! the label is wrong; the dataset adds the label file and line.

use crate::image::DecodeError;

/// What is wrong with a transform list, a label or an image.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransformError {
    /// A transform list PaddleOCR could not evaluate with (or would evaluate differently from how sensgrid
    /// reads its output), with the config key at fault: `Eval.dataset.transforms[3].KeepKeys`.
    #[error("{key}: {message}")]
    Config { key: String, message: String },
    /// A label the label transform rejects with an exception in PaddleOCR (bad JSON, missing points, …).
    #[error("{transform}: {message}")]
    Label { transform: &'static str, message: String },
    /// An image that does not decode.
    #[error("DecodeImage: {0}")]
    Decode(DecodeError),
    /// An image a transform cannot process (PaddleOCR raises there too).
    #[error("{transform}: {message}")]
    Image { transform: &'static str, message: String },
}

impl TransformError {
    pub(crate) fn config(key: impl Into<String>, message: impl Into<String>) -> Self {
        TransformError::Config {
            key: key.into(),
            message: message.into(),
        }
    }

    pub(crate) fn label(transform: &'static str, message: impl Into<String>) -> Self {
        TransformError::Label {
            transform,
            message: message.into(),
        }
    }

    pub(crate) fn image(transform: &'static str, message: impl Into<String>) -> Self {
        TransformError::Image {
            transform,
            message: message.into(),
        }
    }
}
