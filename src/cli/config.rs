//! `grrm config show`: a run config after `--set` overrides, checked against its schema
//! (unknown keys rejected with their path) and printed with every default filled in.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use grrm_actors::config::{show_config, show_untyped, ConfigSource};
use grrm_actors::demo::DemoConfig;
use grrm_actors::eval::EvalConfig;
use grrm_actors::sft::SftFile;
use grrm_actors::srpo::RlConfig;

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print the resolved config: the file with every `--set` applied and defaults filled in.
    Show(ShowArgs),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Schema {
    /// `grrm demo` (sections prepare, sft, rl, eval).
    Demo,
    /// `grrm sft` (section sft).
    Sft,
    /// `grrm rl` (the whole file).
    Rl,
    /// `grrm eval` (the whole file).
    Eval,
    /// No schema: syntax and override errors only.
    Raw,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// TOML config; default: the embedded configs/demo.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "demo")]
    pub schema: Schema,
    /// Override a key, e.g. `--set sft.lr=3e-4` (repeatable; the value is TOML or a bare word).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn run(cmd: ConfigCmd) -> anyhow::Result<()> {
    match cmd {
        ConfigCmd::Show(a) => {
            let src = ConfigSource::file_or_embedded(
                a.config.as_deref(),
                "configs/demo.toml",
                grrm_actors::demo::EMBEDDED_CONFIG,
            );
            let text = match a.schema {
                Schema::Demo => show_config::<DemoConfig, _>(&src, &a.set)?,
                Schema::Sft => show_config::<SftFile, _>(&src, &a.set)?,
                Schema::Rl => show_config::<RlConfig, _>(&src, &a.set)?,
                Schema::Eval => show_config::<EvalConfig, _>(&src, &a.set)?,
                Schema::Raw => show_untyped(&src, &a.set)?,
            };
            print!("{text}");
            Ok(())
        }
    }
}
