//! The one error type of reading a config. Every message is one line that starts with where the problem is:
//! `det.yml:14: PostProcess.box_thresh: expected a number, got "high"`, or the override that set it:
//! `-o PostProcess.thresh=x: expected a number, got "x"`.

use std::fmt;
use std::path::PathBuf;

use super::tree::Origin;

/// What is wrong with a config or an override.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The cause is part of the message and deliberately not a `source`: an error chain printed with `{:#}`
    // would otherwise repeat it.
    #[error("{path}: {reason}")]
    Io { path: PathBuf, reason: std::io::Error },
    /// A config file over [`super::MAX_CONFIG_BYTES`], refused before reading it.
    #[error(
        "{path}: {size} bytes, over the limit of {} MiB ({} bytes) for a config (PaddleOCR's take a few KB)",
        super::MAX_CONFIG_BYTES >> 20,
        super::MAX_CONFIG_BYTES
    )]
    TooLarge { path: PathBuf, size: u64 },
    /// Not valid YAML: in the file (`det.yml:7: …`) or in an override's value (`-o K=[1,: …`).
    #[error("{origin}: not valid YAML: {message}")]
    Yaml { origin: Origin, message: String },
    /// An override that cannot be applied: no `=`, an empty key, or a path that does not lead anywhere.
    #[error("-o {text}: {message}")]
    Override { text: String, message: String },
    /// A key that is unknown, missing, mistyped or out of range, with its dotted path (`Sensitivity.ratios[2]`).
    #[error("{}", KeyMessage { origin, key, message })]
    Key {
        origin: Origin,
        key: String,
        message: String,
    },
}

/// The crate's result type for configs.
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// Formats a [`ConfigError::Key`]: `origin: key: message`, leaving the key out when it is empty (the file as a
/// whole) or when the origin is an override of exactly that key, which already names it
/// (`-o PostProcess.thresh=x: expected a number, got "x"`).
struct KeyMessage<'a> {
    origin: &'a Origin,
    key: &'a str,
    message: &'a str,
}

impl fmt::Display for KeyMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { origin, key, message } = self;
        if key.is_empty() || origin.override_key() == Some(key) {
            write!(f, "{origin}: {message}")
        } else {
            write!(f, "{origin}: {key}: {message}")
        }
    }
}

impl ConfigError {
    /// A problem with the value or key at `key` (a dotted path), located by `origin`.
    pub(crate) fn key(origin: &Origin, key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Key {
            origin: origin.clone(),
            key: key.into(),
            message: message.into(),
        }
    }
}
