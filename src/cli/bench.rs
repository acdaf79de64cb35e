//! `grrm bench kernels`: GFLOP/s and GB/s per kernel and shape beside the card's measured peak.
//! `grrm bench model`: training, sampling and beam-search throughput of a whole random-weight
//! model (Qwen3-0.6B by default) with peak memory per phase.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use grrm_actors::atomic::write_atomic;
use grrm_model::bench::{format_table, kernel_bench, BenchOpts};
use grrm_model::bench_model::{run_model_bench, ModelBenchOpts, Phase};
use grrm_model::gpu::AdapterSelector;
use grrm_model::GpuContext;

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Time every kernel family at benchmark shapes (or small ones with --quick).
    Kernels(KernelArgs),
    /// Training tokens/s, sampled generation tokens/s and constrained beam-search users/s of a
    /// random-weight model (Qwen3-0.6B shape unless shrunk), with peak memory per phase.
    Model(Box<ModelArgs>),
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

/// Every size defaults to the issue-3 workload on Qwen3-0.6B, or to tiny shapes with --quick.
#[derive(Args, Debug)]
pub struct ModelArgs {
    /// Tiny model and workloads that finish in well under a minute on lavapipe.
    #[arg(long)]
    pub quick: bool,
    #[arg(long)]
    pub adapter: Option<String>,
    /// Phases to run, in order (default: train,generate,beam).
    #[arg(long, value_delimiter = ',')]
    pub phases: Vec<Phase>,
    #[arg(long)]
    pub seed: Option<u64>,
    #[arg(long)]
    pub layers: Option<usize>,
    #[arg(long)]
    pub hidden: Option<usize>,
    #[arg(long)]
    pub heads: Option<usize>,
    #[arg(long)]
    pub kv_heads: Option<usize>,
    #[arg(long)]
    pub head_dim: Option<usize>,
    #[arg(long)]
    pub ffn: Option<usize>,
    #[arg(long)]
    pub vocab: Option<usize>,
    /// Training: sequences per step.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Training: tokens per sequence.
    #[arg(long)]
    pub seq: Option<usize>,
    #[arg(long)]
    pub warmup_steps: Option<usize>,
    /// Training: recompute each layer's activations in the backward (keeps only layer inputs).
    #[arg(long)]
    pub recompute: bool,
    /// Training: timed steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Sampling: prompts in the batch.
    #[arg(long)]
    pub gen_prompts: Option<usize>,
    #[arg(long)]
    pub gen_prompt_len: Option<usize>,
    #[arg(long)]
    pub gen_new_tokens: Option<usize>,
    #[arg(long)]
    pub top_p: Option<f32>,
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Beam search: users timed in all.
    #[arg(long)]
    pub beam_users: Option<usize>,
    /// Beam search: users per beam_search call.
    #[arg(long)]
    pub beam_batch: Option<usize>,
    #[arg(long)]
    pub beam_prompt_len: Option<usize>,
    #[arg(long)]
    pub beams: Option<usize>,
    /// Beam search: items in the catalogue (random semantic IDs).
    #[arg(long)]
    pub items: Option<usize>,
    /// Beam search: tokens per semantic ID.
    #[arg(long)]
    pub levels: Option<usize>,
    /// Beam search: codes per level.
    #[arg(long)]
    pub codes: Option<usize>,
    /// Write the results as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the markdown table here.
    #[arg(long)]
    pub table: Option<PathBuf>,
}

impl ModelArgs {
    fn opts(&self) -> ModelBenchOpts {
        let mut o = if self.quick {
            ModelBenchOpts::quick()
        } else {
            ModelBenchOpts::full()
        };
        let set = |dst: &mut usize, v: Option<usize>| {
            if let Some(v) = v {
                *dst = v;
            }
        };
        if !self.phases.is_empty() {
            o.phases = self.phases.clone();
        }
        o.seed = self.seed.unwrap_or(o.seed);
        let s = &mut o.shape;
        set(&mut s.layers, self.layers);
        set(&mut s.hidden, self.hidden);
        set(&mut s.heads, self.heads);
        set(&mut s.kv_heads, self.kv_heads);
        set(&mut s.head_dim, self.head_dim);
        set(&mut s.ffn, self.ffn);
        set(&mut s.vocab, self.vocab);
        set(&mut o.train.batch, self.batch);
        set(&mut o.train.seq, self.seq);
        set(&mut o.train.warmup_steps, self.warmup_steps);
        set(&mut o.train.steps, self.steps);
        o.train.recompute = self.recompute;
        set(&mut o.sample.prompts, self.gen_prompts);
        set(&mut o.sample.prompt_len, self.gen_prompt_len);
        set(&mut o.sample.new_tokens, self.gen_new_tokens);
        o.sample.top_p = self.top_p.unwrap_or(o.sample.top_p);
        o.sample.temperature = self.temperature.unwrap_or(o.sample.temperature);
        set(&mut o.beam.users, self.beam_users);
        set(&mut o.beam.batch_users, self.beam_batch);
        set(&mut o.beam.prompt_len, self.beam_prompt_len);
        set(&mut o.beam.beams, self.beams);
        set(&mut o.beam.catalogue.items, self.items);
        set(&mut o.beam.catalogue.levels, self.levels);
        set(&mut o.beam.catalogue.codes, self.codes);
        o
    }
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
        BenchCmd::Model(a) => {
            let ctx = GpuContext::open(&AdapterSelector::from_arg_or_env(a.adapter.as_deref()))?;
            let opts = a.opts();
            let mut progress = |line: &str| eprintln!("[bench model] {line}");
            let report = run_model_bench(&ctx, &opts, &mut progress)?;
            let table = report.markdown();
            print!("{table}");
            if let Some(p) = &a.table {
                write_atomic(p, table.as_bytes())?;
            }
            if let Some(p) = &a.out {
                write_atomic(
                    p,
                    (serde_json::to_string_pretty(&report)? + "\n").as_bytes(),
                )?;
            }
            Ok(())
        }
    }
}
