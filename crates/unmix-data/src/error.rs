//! Typed errors of the readers: each names the file and what is wrong with it.

use std::path::{Path, PathBuf};

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

    /// The file (or, for `NotFound`, the folder) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            DataError::Io { path, .. } | DataError::Format { path, .. } | DataError::LabelOutOfRange { path, .. } => {
                path
            }
            DataError::NotFound { root, .. } => root,
        }
    }

    /// What is wrong, without the path (the message after `PATH: `).
    pub fn problem(&self) -> String {
        match self {
            DataError::Io { source, .. } => source.to_string(),
            DataError::Format { problem, .. } => problem.clone(),
            DataError::LabelOutOfRange { index, label, classes, .. } => {
                format!("label {label} at record {index} is out of range (expected 0..{classes})")
            }
            DataError::NotFound { what, hint, .. } => format!("not found: {what}; {hint}"),
        }
    }
}

pub type Result<T> = std::result::Result<T, DataError>;
