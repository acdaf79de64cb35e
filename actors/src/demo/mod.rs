//! `grrm demo`: the whole method on the embedded default, end to end — synthesise the dataset,
//! index the items, build the curriculum, tokenizer and a small model, SFT, SRPO, evaluate in
//! direct and reasoning mode, and print one table beside the popularity and sequential
//! baselines (also written to `results.json`).

pub mod prepare;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use grrm_model::GpuContext;
use grrm_recsys::prompts::PromptMode;
use serde::{Deserialize, Serialize};

use crate::eval::{demo_rows, format_table, run_eval_in, EvalConfig, EvalResults};
use crate::run_dir::RunDir;
use crate::sft::{run_sft, SftConfig, SftOptions};
use crate::srpo::{run_rl, RlConfig, RunOptions};

pub use prepare::{prepare, PrepareConfig, Prepared};

/// `configs/demo.toml`, compiled in: what `grrm demo` runs without `--config`.
pub const EMBEDDED_CONFIG: &str = include_str!("../../../configs/demo.toml");

/// The evaluation settings the demo applies to every model and mode.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DemoEval {
    /// Test users evaluated (0 = all).
    pub max_users: usize,
    pub batch_size: usize,
    pub num_beams: usize,
    /// Completions sampled per user in reasoning mode.
    pub reasoning_samples: usize,
    pub reasoning_max_new_tokens: usize,
    /// Decode inside `<answer>` through the item trie (every answered ID names an item).
    pub reasoning_constrain_answer: bool,
}

impl Default for DemoEval {
    fn default() -> Self {
        DemoEval {
            max_users: 200,
            batch_size: 16,
            num_beams: 10,
            reasoning_samples: 4,
            reasoning_max_new_tokens: 160,
            reasoning_constrain_answer: true,
        }
    }
}

/// `configs/demo.toml`: every section's fields default to the demo's values; paths between the
/// stages are filled in by the demo.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    pub prepare: PrepareConfig,
    pub sft: SftConfig,
    pub rl: RlConfig,
    pub eval: DemoEval,
}

#[derive(Clone, Debug, Serialize)]
pub struct DemoResults {
    pub table: Vec<crate::eval::TableRow>,
    pub sft_first_loss: f64,
    pub sft_last_loss: f64,
    /// Mean loss over the last 5% of SFT steps (one step's loss swings with the task mix).
    pub sft_final_loss_mean: f64,
    pub rl_reward_before: f64,
    pub rl_reward_after: f64,
    pub stage_seconds: Vec<(String, f64)>,
    pub total_seconds: f64,
    pub adapter: String,
}

fn eval_cfg(
    d: &DemoEval,
    history_cap: usize,
    model: &Path,
    data: &Path,
    out: PathBuf,
    mode: PromptMode,
) -> EvalConfig {
    let mut e = EvalConfig::new(model, data, out);
    e.history_cap = history_cap;
    e.mode = mode;
    e.max_users = d.max_users;
    e.batch_size = d.batch_size;
    e.beam.num_beams = d.num_beams;
    e.beam.num_results = d.num_beams.min(10);
    e.reasoning.num_samples = d.reasoning_samples;
    e.reasoning.max_new_tokens = d.reasoning_max_new_tokens;
    e.reasoning.constrain_answer = d.reasoning_constrain_answer;
    e
}

/// The demo's SRPO config: `cfg.rl` on the SFT model and the prepared dataset, with the
/// prompts' history matched to the curriculum's.
pub fn rl_config(cfg: &DemoConfig, sft_model: &Path, data_dir: &Path) -> RlConfig {
    let mut rl = cfg.rl.clone();
    rl.model = sft_model.to_path_buf();
    rl.data = data_dir.to_path_buf();
    rl.prompts.history_cap = cfg.prepare.history_cap;
    // A demo with short histories still needs RL prompts: they cannot ask for more than it shows.
    rl.prompts.min_history = rl.prompts.min_history.min(cfg.prepare.history_cap);
    rl
}

pub fn run_demo(cfg: &DemoConfig, out: &Path, ctx: &GpuContext) -> Result<DemoResults> {
    let t0 = Instant::now();
    let mut stages = Vec::new();
    let mut lap = |name: &str, t: &mut Instant| {
        stages.push((name.to_string(), t.elapsed().as_secs_f64()));
        *t = Instant::now();
    };
    let mut t = Instant::now();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    println!(
        "[demo] preparing data, index, curriculum, tokenizer and model in {}",
        out.display()
    );
    let p = prepare(&cfg.prepare, out)?;
    println!(
        "[demo] {} items indexed ({}), {} curriculum samples",
        p.index.items, p.index.embedding, p.samples
    );
    lap("prepare", &mut t);

    let mut sft = cfg.sft.clone();
    sft.model = p.model_dir.clone();
    sft.data = p.curriculum.clone();
    sft.output_dir = out.join("model-sft");
    let sft_run = RunDir::create_at(&out.join("runs/sft"), &toml::to_string(&sft)?)?;
    println!("[demo] SFT");
    let s = run_sft(
        &sft,
        &sft_run,
        &SftOptions {
            ctx: Some(ctx.clone()),
            ..Default::default()
        },
    )?;
    let sft_model = s
        .output
        .clone()
        .context("the SFT run saved no final model")?;
    lap("sft", &mut t);

    let rl = rl_config(cfg, &sft_model, &p.data_dir);
    let rl_run = RunDir::create_at(&out.join("runs/rl"), &toml::to_string(&rl)?)?;
    println!("[demo] SRPO");
    let r = run_rl(
        &rl,
        &rl_run,
        RunOptions {
            ctx: Some(ctx.clone()),
            print: true,
            ..Default::default()
        },
    )?;
    // The last step always writes a checkpoint; its model folder is the SRPO model.
    let last = rl_run
        .checkpoints()
        .latest()?
        .context("the SRPO run wrote no checkpoint")?;
    let rl_model = last.path.join(crate::srpo::engine::MODEL_DIR);
    lap("srpo", &mut t);

    println!("[demo] evaluating");
    let mut evals: Vec<(String, EvalResults)> = Vec::new();
    for (name, model) in [("SFT model", &sft_model), ("SRPO model", &rl_model)] {
        for mode in [PromptMode::Direct, PromptMode::Reasoning] {
            let tag = if name.starts_with("SFT") {
                "sft"
            } else {
                "srpo"
            };
            let dir = out.join(format!("eval/{tag}-{mode:?}").to_lowercase());
            let ecfg = eval_cfg(
                &cfg.eval,
                cfg.prepare.history_cap,
                model,
                &p.data_dir,
                dir,
                mode,
            );
            let res = run_eval_in(&ecfg, ctx)?;
            evals.push((name.to_string(), res));
        }
    }
    lap("eval", &mut t);
    let runs: Vec<(&str, &EvalResults)> = evals.iter().map(|(n, r)| (n.as_str(), r)).collect();
    let table = demo_rows(&runs);
    println!("{}", format_table(&table));
    let results = DemoResults {
        table,
        sft_first_loss: s.first_loss,
        sft_last_loss: s.last_loss,
        sft_final_loss_mean: s.final_loss_mean,
        rl_reward_before: r.reward_before,
        rl_reward_after: r.reward_after,
        stage_seconds: stages,
        total_seconds: t0.elapsed().as_secs_f64(),
        adapter: ctx.info().name.clone(),
    };
    crate::atomic::write_json_atomic(&out.join("results.json"), &results)?;
    println!(
        "[demo] SFT loss {:.3} -> {:.3} (mean of the last 5% of steps); SRPO held-out mean reward \
         {:.3} -> {:.3}; {:.0} s on {}",
        results.sft_first_loss,
        results.sft_final_loss_mean,
        results.rl_reward_before,
        results.rl_reward_after,
        results.total_seconds,
        results.adapter
    );
    Ok(results)
}
