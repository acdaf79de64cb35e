//! `grrm eval --config FILE --mode direct|reasoning [--set k=v]...`: evaluation of a model
//! folder on a dataset's test (or validation) targets.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use grrm_actors::config::ConfigSource;
use grrm_actors::eval::{demo_rows, format_table, load_eval_config, run_eval, RESULTS_FILE};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    Direct,
    Reasoning,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// TOML eval config (keys: model, dataset, output, split, max_users, mode, batch_size,
    /// history_cap, adapter, baselines, [beam], [reasoning]).
    #[arg(long)]
    pub config: PathBuf,
    /// Decoding mode; overrides the config's `mode`.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Override a key, e.g. `--set max_users=100` or `--set reasoning.num_samples=5`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let mut overrides = a.set.clone();
    if let Some(m) = a.mode {
        let m = match m {
            ModeArg::Direct => "direct",
            ModeArg::Reasoning => "reasoning",
        };
        overrides.push(format!("mode={m}"));
    }
    let cfg = load_eval_config(&ConfigSource::File(a.config), &overrides)?;
    let res = run_eval(&cfg)?;
    print!("{}", format_table(&demo_rows(&[("model", &res)])));
    println!(
        "{} users of {} ({}); {}",
        res.users,
        res.dataset,
        res.split.as_str(),
        res.decoding
    );
    println!(
        "decoded {} users in {:.1} s ({:.2} users/s), {} resumed; wrote {}",
        res.timing.decoded_users,
        res.timing.decode_seconds,
        res.timing.users_per_second,
        res.timing.resumed_users,
        cfg.output.join(RESULTS_FILE).display()
    );
    Ok(())
}
