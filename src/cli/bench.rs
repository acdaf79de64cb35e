//! `grrm bench kernels`: GFLOP/s and GB/s per kernel and shape beside the card's measured peak.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use grrm_model::bench::{format_table, kernel_bench, BenchOpts};
use grrm_model::gpu::AdapterSelector;
use grrm_model::GpuContext;

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Time every kernel family at benchmark shapes (or small ones with --quick).
    Kernels(KernelArgs),
}

#[derive(Args, Debug)]
pub struct KernelArgs {
    /// Small sizes that finish in well under a minute on lavapipe.
    #[arg(long)]
    pub quick: bool,
    #[arg(long)]
    pub adapter: Option<String>,
    /// Only rows whose kernel name contains this.
    #[arg(long)]
    pub filter: Option<String>,
    #[arg(long, default_value_t = 5)]
    pub samples: usize,
    /// Also write the table (markdown) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(cmd: BenchCmd) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Kernels(a) => {
            let ctx = GpuContext::open(&AdapterSelector::from_arg_or_env(a.adapter.as_deref()))?;
            let opts = BenchOpts {
                quick: a.quick,
                samples: a.samples,
                filter: a.filter,
                ..Default::default()
            };
            let rows = kernel_bench(&ctx, &opts)?;
            let table = format_table(&ctx, &rows);
            print!("{table}");
            if let Some(p) = a.out {
                std::fs::write(&p, &table)?;
            }
            Ok(())
        }
    }
}
