//! Errors of the Hugging Face checkpoint layer. Every variant names the file it is about, and the
//! tensor or config field where there is one, so a bad checkpoint is diagnosed from the message.

use std::path::PathBuf;

/// An error reading or writing a Hugging Face model folder.
#[derive(Debug, thiserror::Error)]
pub enum HfError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: unsupported architecture {value:?} (supported: Qwen3ForCausalLM, Qwen2ForCausalLM, LlamaForCausalLM)")]
    UnknownArch { path: PathBuf, value: String },
    #[error("{path}: field `{field}`: {reason}")]
    InvalidConfig {
        path: PathBuf,
        field: String,
        reason: String,
    },
    #[error("{file}: tensor `{tensor}` is missing")]
    MissingTensor { file: PathBuf, tensor: String },
    #[error("{file}: tensor `{tensor}` has shape {found:?}, the config asks for {expected:?}")]
    ShapeMismatch {
        file: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{file}: tensor `{tensor}` has dtype {dtype}, expected BF16, F16, F32 or F64")]
    UnsupportedDtype {
        file: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("{file}: corrupt or truncated safetensors file{}: {reason}", tensor.as_ref().map(|t| format!(" (tensor `{t}`)")).unwrap_or_default())]
    Corrupt {
        file: PathBuf,
        tensor: Option<String>,
        reason: String,
    },
    #[error("{path}: tokenizer: {reason}")]
    Tokenizer { path: PathBuf, reason: String },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
}

impl HfError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HfError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn config(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        HfError::InvalidConfig {
            path: path.into(),
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Reads a whole file, mapping the error to one that names it.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, HfError> {
    std::fs::read(path).map_err(|e| HfError::io(path, e))
}

/// Reads and parses a JSON file, naming it in any error.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(
    path: &std::path::Path,
) -> Result<T, HfError> {
    let bytes = read_file(path)?;
    serde_json::from_slice(&bytes).map_err(|source| HfError::Json {
        path: path.to_path_buf(),
        source,
    })
}
