//! `grrm report RUN_DIR`: training curves as SVG charts and an HTML page.

use std::path::PathBuf;

use clap::Args;
use grrm_actors::report::generate_report;

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// A run folder (holds metrics.jsonl).
    pub run_dir: PathBuf,
    /// Output folder [default: RUN_DIR/report].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Prints the files written; skipped metrics lines are reported by the library as warnings.
pub fn run(a: ReportArgs) -> anyhow::Result<()> {
    let rep = generate_report(&a.run_dir, a.out.as_deref())?;
    for c in &rep.charts {
        println!("{}", rep.out_dir.join(&c.file).display());
    }
    println!("{}", rep.html.display());
    Ok(())
}
