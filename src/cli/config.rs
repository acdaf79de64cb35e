//! `grrm config show`: the config after `--set` overrides, as TOML.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use grrm_actors::config::{show_untyped, ConfigSource};

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Print the resolved config: the file with every `--set` applied.
    Show(ShowArgs),
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// TOML run config.
    #[arg(long)]
    pub config: PathBuf,
    /// Override a key, e.g. `--set train.lr=3e-4` (repeatable; the value is TOML or a bare word).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn run(cmd: ConfigCmd) -> anyhow::Result<()> {
    match cmd {
        ConfigCmd::Show(a) => {
            // No run-config schema yet: syntax and override errors only. Once one exists, use
            // `grrm_actors::config::show_config::<RunConfig, _>` here to reject unknown keys and
            // print the defaults too.
            let text = show_untyped(&ConfigSource::File(a.config), &a.set)?;
            print!("{text}");
            Ok(())
        }
    }
}
