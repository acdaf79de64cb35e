//! `grrm demo`: the main job on the embedded default (configs/demo.toml compiled in).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use grrm_actors::config::{load_config, ConfigSource};
use grrm_actors::demo::{run_demo, DemoConfig, EMBEDDED_CONFIG};
use grrm_model::gpu::AdapterSelector;
use grrm_model::GpuContext;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Where everything is written (dataset, models, runs, evaluation, results.json).
    #[arg(long, default_value = "demo-out")]
    pub out: PathBuf,
    /// A config instead of the embedded configs/demo.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// section.key=value overrides.
    #[arg(long = "set")]
    pub set: Vec<String>,
    #[arg(long)]
    pub adapter: Option<String>,
}

pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    let source =
        ConfigSource::file_or_embedded(a.config.as_deref(), "configs/demo.toml", EMBEDDED_CONFIG);
    let cfg: DemoConfig = load_config(&source, &a.set)?;
    let ctx = GpuContext::open(&AdapterSelector::from_arg_or_env(a.adapter.as_deref()))
        .context("opening the GPU adapter")?;
    println!(
        "[demo] adapter: {} ({:?})",
        ctx.info().name,
        ctx.info().backend
    );
    run_demo(&cfg, &a.out, &ctx)?;
    Ok(())
}
