//! Loading: a file (or the embedded default), then `--set` overrides, then a typed schema.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use toml::{Table, Value};

use super::overrides::apply_overrides;
use super::parse::parse_document;
use super::ConfigError;

/// Where the base document comes from.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    File(PathBuf),
    /// Text compiled into the binary (the demo config); `name` labels it in errors.
    Embedded {
        name: String,
        text: &'static str,
    },
}

impl ConfigSource {
    /// The file when given, else the embedded default.
    pub fn file_or_embedded(file: Option<&Path>, name: &str, text: &'static str) -> Self {
        match file {
            Some(p) => Self::File(p.to_path_buf()),
            None => Self::Embedded {
                name: name.to_string(),
                text,
            },
        }
    }

    /// How errors name this source.
    pub fn origin(&self) -> String {
        match self {
            Self::File(p) => p.display().to_string(),
            Self::Embedded { name, .. } => format!("<embedded {name}>"),
        }
    }
}

/// A parsed document with overrides applied, not yet checked against a schema.
#[derive(Clone, Debug)]
pub struct ResolvedToml {
    origin: String,
    table: Table,
}

impl ResolvedToml {
    /// Reads and parses the source, then applies `overrides` in order.
    pub fn load<S: AsRef<str>>(
        source: &ConfigSource,
        overrides: &[S],
    ) -> Result<Self, ConfigError> {
        let origin = source.origin();
        let mut table = match source {
            ConfigSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                parse_document(&origin, &text)?
            }
            ConfigSource::Embedded { text, .. } => parse_document(&origin, text)?,
        };
        apply_overrides(&mut table, overrides)?;
        Ok(Self { origin, table })
    }

    /// Parses text given directly (tests, configs held in memory).
    pub fn from_str(origin: &str, text: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            origin: origin.to_string(),
            table: parse_document(origin, text)?,
        })
    }

    pub fn apply<S: AsRef<str>>(&mut self, overrides: &[S]) -> Result<(), ConfigError> {
        apply_overrides(&mut self.table, overrides)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    /// Checks the document against `T`; unknown keys are rejected when `T`'s structs use
    /// `#[serde(deny_unknown_fields)]`, and the error names the key path.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(Value::Table(self.table.clone())).map_err(|e| {
            // The path includes an unknown field's own name (`train.optim.beta3`).
            let path = e.path().to_string();
            ConfigError::Schema {
                origin: self.origin.clone(),
                path,
                message: e.into_inner().message().trim().to_string(),
            }
        })
    }

    /// The document as TOML text (key order as in the file).
    pub fn to_toml_string(&self) -> Result<String, ConfigError> {
        toml::to_string(&self.table).map_err(|e| ConfigError::Render(e.to_string()))
    }
}

/// Loads and checks a typed config: source, overrides, schema.
pub fn load_config<T: DeserializeOwned, S: AsRef<str>>(
    source: &ConfigSource,
    overrides: &[S],
) -> Result<T, ConfigError> {
    ResolvedToml::load(source, overrides)?.deserialize()
}

/// Renders a typed config (defaults filled in) as TOML, e.g. for `config.resolved.toml`.
pub fn render_config<T: Serialize>(config: &T) -> Result<String, ConfigError> {
    toml::to_string(config).map_err(|e| ConfigError::Render(e.to_string()))
}

/// What `grrm config show` prints once a schema is bound: the config after overrides, checked
/// against `T` and rendered back with every default filled in.
pub fn show_config<T: DeserializeOwned + Serialize, S: AsRef<str>>(
    source: &ConfigSource,
    overrides: &[S],
) -> Result<String, ConfigError> {
    render_config(&load_config::<T, S>(source, overrides)?)
}

/// `grrm config show` without a schema: syntax and override errors only.
pub fn show_untyped<S: AsRef<str>>(
    source: &ConfigSource,
    overrides: &[S],
) -> Result<String, ConfigError> {
    ResolvedToml::load(source, overrides)?.to_toml_string()
}
