//! Runs the kernel benchmark table (what `grrm bench kernels` prints) without the CLI:
//! `bench_kernels [--quick] [--adapter NAME|INDEX] [--out FILE.md] [--filter TEXT]`.

use grrm_model::bench::{format_table, kernel_bench, BenchOpts};
use grrm_model::gpu::AdapterSelector;
use grrm_model::GpuContext;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut opts = BenchOpts::default();
    let (mut adapter, mut out) = (None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--adapter" => adapter = args.next(),
            "--out" => out = args.next(),
            "--filter" => opts.filter = args.next(),
            "--samples" => opts.samples = args.next().ok_or("--samples N")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let ctx = GpuContext::open(&AdapterSelector::from_arg_or_env(adapter.as_deref()))?;
    let rows = kernel_bench(&ctx, &opts)?;
    let table = format_table(&ctx, &rows);
    print!("{table}");
    if let Some(path) = out {
        std::fs::write(path, table)?;
    }
    Ok(())
}
