//! `grrm data import|stats|synth|baselines`: the dataset commands of the `recsys` crate.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use grrm_recsys::{
    evaluate_baselines, import_amazon, import_gream, import_recbole, io, stats, synth_with_report,
    AmazonConfig, GreamConfig, OnMalformed, PreprocessConfig, RecboleConfig, SynthConfig,
};

#[derive(Subcommand, Debug)]
pub enum DataCmd {
    /// Import raw logs (Amazon 2014/2018 dumps, RecBole atomic files, or the GREAM JSON format),
    /// preprocess (metadata filter, dedupe, k-core, chronological order) and write a dataset.
    Import(ImportArgs),
    /// Users, items, interactions, sparsity and sequence-length quantiles, per split.
    Stats(DirArg),
    /// Generate the embedded default: a deterministic Amazon-like catalogue and users.
    Synth(SynthArgs),
    /// Popularity and first-order-transition baselines on the leave-one-out split.
    Baselines(DirArg),
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Amazon,
    Recbole,
    Gream,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[arg(long, value_enum)]
    pub format: Format,
    /// Amazon: the reviews file (.json/.json.gz). RecBole/GREAM: the folder.
    #[arg(long)]
    pub input: PathBuf,
    /// Amazon only: the metadata file (.json/.json.gz; 2014 Python-literal lines are handled).
    #[arg(long)]
    pub meta: Option<PathBuf>,
    #[arg(long)]
    pub out: PathBuf,
    /// Dataset name (file prefix); default derived from the input.
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long, default_value_t = 5)]
    pub k_core: usize,
    /// Skip malformed lines (counted and reported) instead of stopping at the first.
    #[arg(long)]
    pub skip_malformed: bool,
}

#[derive(Args, Debug)]
pub struct DirArg {
    /// Dataset folder.
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct SynthArgs {
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub users: Option<usize>,
    #[arg(long)]
    pub items: Option<usize>,
}

pub fn run(cmd: DataCmd) -> anyhow::Result<()> {
    match cmd {
        DataCmd::Import(a) => import(a),
        DataCmd::Stats(a) => {
            let ds = io::load(&a.dir)?;
            print!("{}", stats(&ds));
            Ok(())
        }
        DataCmd::Synth(a) => {
            let mut cfg = SynthConfig::default();
            cfg.seed = a.seed.unwrap_or(cfg.seed);
            cfg.users = a.users.unwrap_or(cfg.users);
            cfg.items = a.items.unwrap_or(cfg.items);
            let (ds, report) = synth_with_report(&cfg)?;
            io::save(&ds, &a.out)?;
            println!(
                "wrote {} to {} ({} raw interactions, {} after filtering)",
                ds.name,
                a.out.display(),
                report.raw_interactions,
                ds.n_interactions()
            );
            print!("{}", stats(&ds));
            Ok(())
        }
        DataCmd::Baselines(a) => {
            let ds = io::load(&a.dir)?;
            print!("{}", evaluate_baselines(&ds)?);
            Ok(())
        }
    }
}

fn import(a: ImportArgs) -> anyhow::Result<()> {
    let on_malformed = if a.skip_malformed {
        OnMalformed::Skip
    } else {
        OnMalformed::Error
    };
    let preprocess = PreprocessConfig {
        k_core: a.k_core,
        ..Default::default()
    };
    let (ds, report) = match a.format {
        Format::Amazon => {
            let meta = a
                .meta
                .clone()
                .context("--format amazon needs --meta (the metadata file)")?;
            let mut cfg = AmazonConfig::new(&a.input, meta);
            cfg.name = a.name.clone();
            cfg.on_malformed = on_malformed;
            cfg.preprocess = preprocess;
            import_amazon(&cfg)?
        }
        Format::Recbole => {
            let mut cfg = RecboleConfig::new(&a.input);
            cfg.name = a.name.clone();
            cfg.on_malformed = on_malformed;
            cfg.preprocess = preprocess;
            import_recbole(&cfg)?
        }
        Format::Gream => {
            let mut cfg = GreamConfig::new(&a.input);
            cfg.name = a.name.clone();
            cfg.on_malformed = on_malformed;
            cfg.preprocess = preprocess;
            import_gream(&cfg)?
        }
    };
    io::save(&ds, &a.out)?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    print!("{}", stats(&ds));
    Ok(())
}
