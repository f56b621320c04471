//! Typed errors of the readers: each names the file and what is wrong with it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Format { path: PathBuf, problem: String },
    #[error("{path}: label {label} at record {index} is out of range (expected 0..{classes})")]
    LabelOutOfRange { path: PathBuf, index: usize, label: u32, classes: usize },
    #[error("dataset not found: {what} (looked in {root}); {hint}")]
    NotFound { root: PathBuf, what: String, hint: String },
}

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), source }
    }

    pub fn format(path: impl Into<PathBuf>, problem: impl Into<String>) -> Self {
        DataError::Format { path: path.into(), problem: problem.into() }
    }
}

pub type Result<T> = std::result::Result<T, DataError>;
