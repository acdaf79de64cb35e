//! Config errors: each names where the problem is (file, line/column or key path).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: TOML syntax error: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("--set {assignment}: {message}")]
    Override { assignment: String, message: String },
    #[error("{origin}: key `{path}`: {message}")]
    Schema {
        origin: String,
        /// Dotted key path, `.` for the document root.
        path: String,
        message: String,
    },
    #[error("cannot render config as TOML: {0}")]
    Render(String),
}
