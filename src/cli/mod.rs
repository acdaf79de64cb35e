//! Subcommands. Each lives in its own module and only parses arguments and calls a library crate.

mod bench;
mod config;
mod data;
mod demo;
mod devices;
mod eval;
mod index;
mod model;
mod report;
mod rl;
mod sft;
mod worker;

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
    /// The main job on the embedded default: synthetic data, semantic IDs, curriculum SFT,
    /// SRPO, evaluation beside the baselines (configs/demo.toml).
    Demo(demo::DemoArgs),
    /// Semantic IDs for a dataset's items (writes D.index.json).
    Index(index::IndexArgs),
    /// Write a randomly initialised Qwen3/Qwen2/Llama model of any size (tests, demos).
    InitModel(model::InitModelArgs),
    /// Generate a continuation of a prompt with a model folder.
    Generate(model::GenerateArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
    /// Run configs: print the resolved config after `--set` overrides.
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Draw a run's training curves (SVG) and write report.html.
    Report(report::ReportArgs),
    /// Supervised fine-tuning on a curriculum (assistant tokens only), with checkpoints and --resume.
    Sft(sft::SftArgs),
    /// Evaluate a model: trie-constrained beam search (direct) or sampled reasoning; metrics,
    /// results.json and per-user JSONL, resumable.
    Eval(eval::EvalArgs),
    /// SRPO training (SPEC.md section 4) of a model on a dataset's RL prompts.
    Rl(rl::RlArgs),
    /// Serve rollouts of an RL run whose config has `[system.remote]`, from any machine that
    /// reaches its NATS server (JetStream).
    RolloutWorker(worker::WorkerArgs),
}

pub fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Events carry their span context (`rollout{actor=1 step=3 version=3}: ...`), and each
    // actor's message handler logs one line when it ends (its span with fields and busy
    // time), so `-v` / `RUST_LOG=grrm=debug` show which actor did what for which step.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_writer(std::io::stderr)
        .init();
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Command::Devices(a) => devices::devices(a),
        Command::Selfcheck(a) => devices::selfcheck(a),
        Command::Data(c) => data::run(c),
        Command::Demo(a) => demo::run(a),
        Command::Index(a) => index::run(a),
        Command::InitModel(a) => model::init_model(a),
        Command::Generate(a) => model::generate_cmd(a),
        Command::Bench(c) => bench::run(c),
        Command::Config(c) => config::run(c),
        Command::Report(a) => report::run(a),
        Command::Sft(a) => sft::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Rl(a) => rl::run(a),
        Command::RolloutWorker(a) => worker::run(a),
    }
}
