//! `grrm rl --config FILE [--set k=v]... [--out DIR] [--resume RUN_DIR]`: SRPO training.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use grrm_actors::config::{render_config, ConfigSource, ResolvedToml};
use grrm_actors::run_dir::RunDir;
use grrm_actors::srpo::{run_rl, RlConfig, RunOptions};

#[derive(Args, Debug)]
pub struct RlArgs {
    /// Run config (TOML; see `RlConfig`). Not needed with --resume (the run's own config is used).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a key: `--set srpo.kl_coef=0.01` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Run folder to create [default: runs/rl-<UTC time>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue a run from its newest checkpoint (weights, optimizer, data cursor, step).
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "out")]
    pub resume: Option<PathBuf>,
}

pub fn run(a: RlArgs) -> Result<()> {
    let (cfg, run, resume) = match &a.resume {
        Some(dir) => {
            let run = RunDir::open_existing(dir)?;
            let mut doc = ResolvedToml::from_str(
                &run.config_path().display().to_string(),
                &run.read_config()?,
            )?;
            doc.apply(&a.set)?;
            let cfg: RlConfig = doc.deserialize()?;
            (cfg, run, true)
        }
        None => {
            let path = a
                .config
                .as_deref()
                .context("--config FILE is required (or --resume RUN_DIR)")?;
            let doc = ResolvedToml::load(&ConfigSource::File(path.to_path_buf()), &a.set)?;
            let cfg: RlConfig = doc.deserialize()?;
            cfg.validate()?;
            let text = render_config(&cfg)?;
            let run = match &a.out {
                Some(p) => RunDir::create_at(p, &text)?,
                None => RunDir::create(std::path::Path::new("runs"), "rl", &text)?,
            };
            (cfg, run, false)
        }
    };
    eprintln!("run folder: {}", run.path().display());
    let s = run_rl(
        &cfg,
        &run,
        RunOptions {
            resume,
            ..Default::default()
        },
    )?;
    println!(
        "SRPO: {} steps in {:.1} s ({:.2} s/step); held-out mean reward {:.4} -> {:.4}, hit rate \
         {:.4} -> {:.4}",
        s.steps,
        s.seconds,
        s.mean_step_seconds,
        s.reward_before,
        s.reward_after,
        s.hit_rate_before,
        s.hit_rate_after
    );
    Ok(())
}
