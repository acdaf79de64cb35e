//! Run configs: TOML with unknown keys rejected, `--set` overrides, rendering back to TOML.

mod error;
mod loader;
mod overrides;
mod parse;

pub use error::ConfigError;
pub use loader::{
    load_config, render_config, show_config, show_untyped, ConfigSource, ResolvedToml,
};
pub use overrides::{apply_override, apply_overrides};
pub use parse::{line_column, parse_document};
