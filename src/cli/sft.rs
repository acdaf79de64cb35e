//! `grrm sft --config FILE [--set k=v]... | --resume RUN_DIR`: supervised fine-tuning.

use std::path::PathBuf;

use anyhow::bail;
use clap::Args;
use grrm_actors::config::ConfigSource;
use grrm_actors::run_dir::RunDir;
use grrm_actors::sft::{run_sft, SftFile, SftOptions};

#[derive(Args, Debug)]
pub struct SftArgs {
    /// TOML config with an `[sft]` table (required unless --resume).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a key, e.g. `--set sft.lr=1e-4` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue this run folder from its newest checkpoint, with the config it was started with.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["config", "set"])]
    pub resume: Option<PathBuf>,
    /// Where new run folders are created.
    #[arg(long, default_value = "runs")]
    pub runs_dir: PathBuf,
    /// Name prefix of the new run folder.
    #[arg(long, default_value = "sft")]
    pub name: String,
}

pub fn run(a: SftArgs) -> anyhow::Result<()> {
    let (file, run, resume) = match (&a.resume, &a.config) {
        (Some(dir), _) => {
            let run = RunDir::open_existing(dir)?;
            let file = SftFile::load(&ConfigSource::File(run.config_path()), &[] as &[&str])?;
            (file, run, true)
        }
        (None, Some(path)) => {
            let mut file = SftFile::load(&ConfigSource::File(path.clone()), &a.set)?;
            file.sft.absolutize()?;
            let run = RunDir::create(&a.runs_dir, &a.name, &file.render()?)?;
            (file, run, false)
        }
        (None, None) => bail!("give --config FILE (a new run) or --resume RUN_DIR"),
    };
    eprintln!("sft: run folder {}", run.path().display());
    let opts = SftOptions {
        resume,
        ..Default::default()
    };
    let summary = run_sft(&file.sft, &run, &opts)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
