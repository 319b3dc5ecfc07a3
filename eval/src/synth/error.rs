//! Errors of generating a synthetic dataset. Each names the file or directory at fault.

use std::path::PathBuf;

/// What stopped a dataset from being written.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    // The cause is part of the message and deliberately not a `source`: an error chain printed with `{:#}`
    // would otherwise repeat it.
    /// A file or directory that cannot be read or written.
    #[error("{}: {reason}", path.display())]
    Io { path: PathBuf, reason: std::io::Error },
    /// A font file that does not parse.
    #[error("{}: not a usable font: {reason}", path.display())]
    Font { path: PathBuf, reason: String },
    /// A fonts directory without a font for some of the text.
    #[error("{}: no font there draws {what} (scripts/setup-fonts.sh installs the fonts there)", dir.display())]
    NoFont { dir: PathBuf, what: &'static str },
    /// An image the encoder refused.
    #[error("{}: cannot encode the image: {reason}", path.display())]
    Encode { path: PathBuf, reason: String },
    /// An unknown dataset kind.
    #[error("unknown dataset kind '{0}': expected det, rec or cls")]
    Kind(String),
}

impl SynthError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |reason| Self::Io { path, reason }
    }
}
