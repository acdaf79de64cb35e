//! `grrm devices` and `grrm selfcheck`.

use anyhow::Context;
use clap::Args;
use grrm_model::gpu::{list_adapters, AdapterSelector};
use grrm_model::GpuContext;

#[derive(Args, Debug)]
pub struct DevicesArgs {}

#[derive(Args, Debug)]
pub struct SelfcheckArgs {
    /// Adapter by name substring or index (see `grrm devices`); default GRRM_ADAPTER or the best.
    #[arg(long)]
    pub adapter: Option<String>,
}

pub fn devices(_: DevicesArgs) -> anyhow::Result<()> {
    let adapters = list_adapters();
    if adapters.is_empty() {
        return Err(grrm_model::GpuError::NoAdapter.into());
    }
    for a in adapters {
        print!("{a}");
    }
    Ok(())
}

pub fn selfcheck(a: SelfcheckArgs) -> anyhow::Result<()> {
    let sel = AdapterSelector::from_arg_or_env(a.adapter.as_deref());
    let ctx = GpuContext::open(&sel).context("opening the GPU adapter")?;
    println!("adapter: {} ({:?})", ctx.info().name, ctx.info().backend);
    let report = grrm_model::selfcheck::run(&ctx)?;
    print!("{report}");
    anyhow::ensure!(report.all_passed(), "self-check failed");
    Ok(())
}
