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
    /// Build the SFT curriculum (alignment tasks + reasoning samples, mixed as SPEC.md) as
    /// chat JSONL, from the training split only.
    Sft(SftArgs),
}

#[derive(Args, Debug)]
pub struct SftArgs {
    /// Dataset folder (with D.index.json from `grrm index`).
    #[arg(long)]
    pub data: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// A TOML file with the curriculum settings (recsys SftConfig; unknown keys rejected).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// An OpenAI-compatible chat endpoint (http://host:port/v1/chat/completions) that writes
    /// steps 1-3 of the reasoning samples; replies are cached beside --out.
    #[arg(long)]
    pub teacher_url: Option<String>,
    /// The teacher's model name.
    #[arg(long, default_value = "teacher")]
    pub teacher_model: String,
    /// Cap on alignment samples per task.
    #[arg(long)]
    pub max_per_task: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
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
        DataCmd::Sft(a) => sft(a),
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

fn sft(a: SftArgs) -> anyhow::Result<()> {
    use grrm_recsys::tasks::sft::{build_sft, write_jsonl, SftConfig};
    use grrm_recsys::tasks::teacher::TeacherConfig;
    let ds = io::load(&a.data)?;
    let mut cfg: SftConfig = match &a.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("{}", p.display()))?
        }
        None => SftConfig::default(),
    };
    if let Some(url) = a.teacher_url {
        let cache = a.out.with_extension("teacher-cache.jsonl");
        cfg.reasoning.teacher = Some(TeacherConfig {
            url,
            model: a.teacher_model,
            cache: Some(cache),
            ..Default::default()
        });
    }
    if a.max_per_task.is_some() {
        cfg.max_examples_per_task = a.max_per_task;
    }
    if let Some(s) = a.seed {
        cfg.seed = s;
    }
    let (samples, report) = build_sft(&ds, &cfg)?;
    write_jsonl(&a.out, &samples)?;
    println!("wrote {} samples to {}", samples.len(), a.out.display());
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
