//! One error type for the data pipeline. Every variant that comes from a file names it, and
//! line/column where the format has lines, so a user can open the file at the right place.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Malformed JSON (or a value of the wrong shape) at a position serde_json reported.
    #[error("{}: line {line}, column {column}: {msg}", path.display())]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        msg: String,
    },
    /// A malformed line in a line-oriented file (JSON lines, Python literals, TSV).
    #[error("{}: line {line}: {msg}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    /// Well-formed content that is inconsistent (unknown item id, non-contiguous keys, ...).
    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
    /// A folder that does not hold exactly one dataset, a missing file, ...
    #[error("{msg}")]
    Layout { msg: String },
    /// Filtering removed everything, or a split cannot be made.
    #[error("{msg}")]
    Empty { msg: String },
    /// A configuration value out of range.
    #[error("invalid configuration: {msg}")]
    Config { msg: String },
    /// A failure of something outside the data files: an embedder, a teacher endpoint.
    #[error("{what}: {msg}")]
    External { what: String, msg: String },
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;

impl DataError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// serde_json errors carry line/column for syntax and shape errors; keep them.
    pub fn json(path: &Path, err: serde_json::Error) -> Self {
        // `Display` of serde_json::Error appends " at line L column C"; strip it, we print our own.
        let mut msg = err.to_string();
        if let Some(pos) = msg.rfind(" at line ") {
            msg.truncate(pos);
        }
        DataError::Json {
            path: path.to_path_buf(),
            line: err.line(),
            column: err.column(),
            msg,
        }
    }

    pub fn line(path: &Path, line: usize, msg: impl Into<String>) -> Self {
        DataError::Line {
            path: path.to_path_buf(),
            line,
            msg: msg.into(),
        }
    }

    pub fn invalid(path: &Path, msg: impl Into<String>) -> Self {
        DataError::Invalid {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
}
