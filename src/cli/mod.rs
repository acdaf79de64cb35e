//! Subcommands. Each lives in its own module and only parses arguments and calls a library crate.

mod config;
mod data;
mod devices;
mod report;
mod rl;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "grrm",
    version,
    about = "Generative reasoning recommendation with LLMs: semantic IDs, reasoning curriculum and SRPO on portable WGSL kernels"
)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub cmd: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// List every GPU adapter with backend, type, features, limits and cooperative-matrix shapes.
    Devices(devices::DevicesArgs),
    /// Open an adapter and check every kernel family against its CPU reference.
    Selfcheck(devices::SelfcheckArgs),
    /// Datasets: import, statistics, the synthetic default, baselines.
    #[command(subcommand)]
    Data(data::DataCmd),
    /// Run configs: print the resolved config after `--set` overrides.
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Draw a run's training curves (SVG) and write report.html.
    Report(report::ReportArgs),
    /// SRPO training (SPEC.md section 4) of a model on a dataset's RL prompts.
    Rl(rl::RlArgs),
}

pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Command::Devices(a) => devices::devices(a),
        Command::Selfcheck(a) => devices::selfcheck(a),
        Command::Data(c) => data::run(c),
        Command::Config(c) => config::run(c),
        Command::Report(a) => report::run(a),
        Command::Rl(a) => rl::run(a),
    }
}
