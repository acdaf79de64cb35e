//! `grrm bench model`: the issue-3 benchmark of the whole transformer on one adapter. A
//! random-weight model of a given shape (Qwen3-0.6B by default) is built once; each phase then
//! measures one workload with its own peak-memory window (grrm's count of tensor bytes, the
//! weights included):
//!
//! ```text
//! train.rs     training tokens/s: full steps at batch x seq, warm-up untimed; plan beside peak
//! sample.rs    sampled generation tokens/s (temperature, top-p, seed), new tokens only
//! beam.rs      trie-constrained beam search users/s over a catalogue of semantic IDs
//! workload.rs  deterministic prompts and IDs shared with bench/model_transformers.py
//! shape.rs     the model's shape and the random-weight model
//! report.rs    the markdown table
//! ```

mod beam;
mod report;
mod sample;
mod shape;
mod train;
mod workload;

use std::time::Instant;

use serde::Serialize;

pub use beam::{BeamOpts, BeamResult};
pub use sample::{SampleOpts, SampleResult};
pub use shape::ModelShape;
pub use train::{TrainOpts, TrainResult};
pub use workload::{Catalogue, SplitMix64};

use crate::gpu::{GpuContext, GpuError, Result};

/// Receives one line per event (the CLI prints them as they come).
pub type Progress<'a> = dyn FnMut(&str) + 'a;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Train,
    Generate,
    Beam,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Train, Phase::Generate, Phase::Beam];
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "train" => Ok(Phase::Train),
            "generate" => Ok(Phase::Generate),
            "beam" => Ok(Phase::Beam),
            _ => Err(format!("unknown phase {s:?} (train, generate or beam)")),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ModelBenchOpts {
    pub shape: ModelShape,
    pub seed: u64,
    /// Run in this order (training first frees its gradients and moments before the others).
    pub phases: Vec<Phase>,
    pub train: TrainOpts,
    pub sample: SampleOpts,
    pub beam: BeamOpts,
}

impl ModelBenchOpts {
    /// The issue-3 workloads on Qwen3-0.6B.
    pub fn full() -> Self {
        ModelBenchOpts {
            shape: ModelShape::qwen3_0_6b(),
            seed: 0,
            phases: Phase::ALL.to_vec(),
            train: TrainOpts {
                batch: 8,
                seq: 1024,
                warmup_steps: 1,
                steps: 3,
                recompute: false,
            },
            sample: SampleOpts {
                prompts: 64,
                prompt_len: 256,
                new_tokens: 128,
                temperature: 1.0,
                top_p: 0.95,
            },
            beam: BeamOpts {
                users: 64,
                batch_users: 16,
                prompt_len: 256,
                beams: 10,
                catalogue: Catalogue {
                    items: 4096,
                    levels: 4,
                    codes: 256,
                },
            },
        }
    }

    /// Tiny shapes that finish in well under a minute on lavapipe.
    pub fn quick() -> Self {
        let full = Self::full();
        ModelBenchOpts {
            shape: ModelShape::quick(),
            train: TrainOpts {
                batch: 2,
                seq: 64,
                steps: 2,
                ..full.train
            },
            sample: SampleOpts {
                prompts: 4,
                prompt_len: 16,
                new_tokens: 8,
                ..full.sample
            },
            beam: BeamOpts {
                users: 4,
                batch_users: 2,
                prompt_len: 16,
                beams: 10,
                catalogue: Catalogue {
                    items: 500,
                    levels: 3,
                    codes: 16,
                },
            },
            ..full
        }
    }

    /// Positions the RoPE table must cover for every workload.
    fn max_positions(&self) -> usize {
        // beam_search feeds back at most an ID's tokens after the prompt (8 is ample).
        (self.train.seq)
            .max(self.sample.prompt_len + self.sample.new_tokens)
            .max(self.beam.prompt_len + 8)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ModelBenchReport {
    pub engine: &'static str,
    pub adapter: String,
    pub backend: String,
    pub driver: String,
    pub shape: ModelShape,
    pub parameters: usize,
    pub seed: u64,
    /// Host initialisation and upload of the weights.
    pub build_seconds: f64,
    pub train: Option<TrainResult>,
    pub generate: Option<SampleResult>,
    pub beam: Option<BeamResult>,
}

/// Builds the model and runs the selected phases.
pub fn run_model_bench(
    ctx: &GpuContext,
    o: &ModelBenchOpts,
    progress: &mut Progress<'_>,
) -> Result<ModelBenchReport> {
    if o.phases.is_empty() {
        return Err(GpuError::shape("bench model", "no phase selected"));
    }
    let info = ctx.info();
    progress(&format!(
        "adapter: {} ({:?}); model: {}",
        info.name,
        info.backend,
        o.shape.describe()
    ));
    let start = Instant::now();
    let model = o
        .shape
        .build(ctx, o.seed, o.max_positions())?
        .with_recompute(o.train.recompute)
        .with_attention_kernel(attention_kernel_from_env()?)
        .with_matmul_precision(crate::transformer::MatmulPrecision::from_env()?);
    progress(&format!(
        "attention kernel: {:?}; training matmuls: {:?} ({} to choose)",
        model.attention_heads()?.resolved_kernel(ctx),
        model.matmul_precision()?,
        crate::transformer::PRECISION_ENV
    ));
    ctx.wait_idle()?;
    let build_seconds = start.elapsed().as_secs_f64();
    let parameters = model.params.num_parameters();
    progress(&format!(
        "model built: {parameters} parameters in {build_seconds:.1} s ({:.1} MiB live)",
        mib(ctx.memory_stats().live_bytes)
    ));
    let mut report = ModelBenchReport {
        engine: "grrm",
        adapter: info.name.clone(),
        backend: format!("{:?}", info.backend),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        shape: o.shape.clone(),
        parameters,
        seed: o.seed,
        build_seconds,
        train: None,
        generate: None,
        beam: None,
    };
    for phase in &o.phases {
        if let Some(p) = ctx.profiler() {
            p.reset();
        }
        match phase {
            Phase::Train => report.train = Some(train::run(&model, &o.train, o.seed, progress)?),
            Phase::Generate => {
                report.generate = Some(sample::run(&model, &o.sample, o.seed, progress)?)
            }
            Phase::Beam => report.beam = Some(beam::run(&model, &o.beam, o.seed, progress)?),
        }
        // The next phase allocates other shapes: what this one freed is of no use to it.
        ctx.release_cached_buffers();
        if let Some(p) = ctx.profiler() {
            // Warm-up included: GPU time per kernel over the whole phase.
            progress(&format!(
                "GPU profile of phase {phase:?}:\n{}",
                p.report(30)
            ));
        }
    }
    Ok(report)
}

pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

pub(crate) fn median(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// `GRRM_ATTENTION_KERNEL` = auto | workgroup | rows | tiled (default auto): compares attention
/// kernels end to end without a rebuild.
fn attention_kernel_from_env() -> Result<crate::kernels::attention::AttentionKernel> {
    use crate::kernels::attention::AttentionKernel as K;
    let v = std::env::var("GRRM_ATTENTION_KERNEL").unwrap_or_default();
    Ok(match v.to_ascii_lowercase().as_str() {
        "" | "auto" => K::Auto,
        "workgroup" => K::Workgroup,
        "rows" => K::Rows,
        "tiled" => K::Tiled,
        "tensor-core" | "tensor_core" => K::TensorCore,
        other => {
            return Err(GpuError::shape(
                "bench model",
                format!(
                    "GRRM_ATTENTION_KERNEL {other:?}: want auto, workgroup, rows, tiled or \
                     tensor-core"
                ),
            ))
        }
    })
}
