//! `[sft]`: the supervised fine-tuning run. Defaults follow SPEC.md section 3 (lr 5e-5, 1 epoch,
//! cosine schedule with 10% warm-up, cut-off 2560 tokens); the optimizer defaults are the
//! Hugging Face Trainer's (AdamW, betas 0.9/0.999, eps 1e-8, no weight decay, clip 1.0), which
//! the reference SFT run used.

use std::path::PathBuf;

use anyhow::{bail, Result};
use grrm_model::hf::StorageDType;
use grrm_model::transformer::OptimizerConfig;
use serde::{Deserialize, Serialize};

use crate::config::{load_config, render_config, ConfigSource};

/// A config file for `grrm sft`: one `[sft]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftFile {
    pub sft: SftConfig,
}

impl SftFile {
    /// Loads `[sft]` from `source` with `--set` overrides (`sft.lr=1e-4`), then validates it.
    pub fn load<S: AsRef<str>>(source: &ConfigSource, overrides: &[S]) -> Result<Self> {
        let file: SftFile = load_config(source, overrides)?;
        file.sft.validate()?;
        Ok(file)
    }

    /// The resolved config with every default filled in (written to the run folder).
    pub fn render(&self) -> Result<String> {
        Ok(render_config(self)?)
    }
}

/// How the samples of a micro-batch are laid out.
///
/// Packing (several samples concatenated into one row) is not offered: the attention kernels
/// mask by key padding and causality only, so packed samples would attend across their
/// boundaries. `length_grouped` gets most of packing's saving without that error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Batching {
    /// Consecutive samples per micro-batch, right-padded to the longest of the micro-batch.
    #[default]
    Padding,
    /// The samples of one optimizer step are sorted by length before they are cut into
    /// micro-batches (still right-padded to the longest of each), so similar lengths share a
    /// micro-batch and little padding is computed. The step sees exactly the same samples and
    /// the loss is a token-mean over the whole step, so the update is the same as with
    /// `padding` (up to float summation order) and the curriculum order is kept step by step.
    LengthGrouped,
}

/// Learning-rate schedule after the linear warm-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Half a cosine from the peak to 0 (transformers' `get_cosine_schedule_with_warmup`).
    #[default]
    Cosine,
    /// Straight line from the peak to 0.
    Linear,
    Constant,
}

/// Format of the data file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFormat {
    /// JSON lines written by `recsys::tasks::write_jsonl` (the curriculum).
    #[default]
    Chat,
    /// ShareGPT JSON lines (`conversations` or `messages`).
    Sharegpt,
    /// Alpaca JSON lines (`instruction`, `input`, `output`).
    Alpaca,
}

/// Element type of the saved final model (checkpoints are always f32 so a resume is exact).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SaveDtype {
    #[default]
    F32,
    Bf16,
    F16,
}

impl SaveDtype {
    pub fn storage(self) -> StorageDType {
        match self {
            SaveDtype::F32 => StorageDType::F32,
            SaveDtype::Bf16 => StorageDType::BF16,
            SaveDtype::F16 => StorageDType::F16,
        }
    }
}

/// AdamW settings, each with a default so one can be overridden alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftOptimizer {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// Global gradient-norm clip; `inf` disables clipping.
    pub max_grad_norm: f32,
}

impl Default for SftOptimizer {
    fn default() -> Self {
        SftOptimizer {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
        }
    }
}

impl From<&SftOptimizer> for OptimizerConfig {
    fn from(o: &SftOptimizer) -> Self {
        OptimizerConfig {
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
            weight_decay: o.weight_decay,
            max_grad_norm: o.max_grad_norm,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftConfig {
    /// Hugging Face model folder: config.json, safetensors weights and the tokenizer files.
    pub model: PathBuf,
    /// Training samples, in training order.
    pub data: PathBuf,
    pub data_format: DataFormat,
    /// Where the final model is saved; empty = `<run folder>/model`.
    pub output_dir: PathBuf,
    pub save_dtype: SaveDtype,
    /// Peak learning rate.
    pub lr: f64,
    pub epochs: usize,
    /// Fraction of the optimizer steps spent warming up linearly from 0 (rounded up).
    pub warmup_ratio: f64,
    pub schedule: Schedule,
    /// Stop after this many optimizer steps; the schedule is laid out over them. 0 = all.
    pub max_steps: usize,
    /// Samples are truncated to this many tokens.
    pub cutoff_len: usize,
    pub micro_batch_size: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum_steps: usize,
    pub batching: Batching,
    /// Keep only each layer's input during the forward and recompute the layer inside the
    /// backward: the activation memory of one layer instead of all of them, for about one
    /// more forward per step. Gradients are the same.
    pub recompute_activations: bool,
    pub optimizer: SftOptimizer,
    /// Reshuffle each epoch with `seed`. Off by default: SPEC.md section 3 trains the
    /// curriculum in its order.
    pub shuffle: bool,
    pub seed: u64,
    /// Checkpoint every N optimizer steps (0 = only the final model).
    pub checkpoint_every: usize,
    /// Checkpoints kept (the newest ones).
    pub keep_last: usize,
    /// Write a metrics record and print a summary line every N steps.
    pub log_every: usize,
    /// Adapter name substring or index; empty = `GRRM_ADAPTER`, else the best adapter.
    pub adapter: String,
}

impl Default for SftConfig {
    fn default() -> Self {
        SftConfig {
            model: PathBuf::new(),
            data: PathBuf::new(),
            data_format: DataFormat::Chat,
            output_dir: PathBuf::new(),
            save_dtype: SaveDtype::F32,
            lr: 5e-5,
            epochs: 1,
            warmup_ratio: 0.1,
            schedule: Schedule::Cosine,
            max_steps: 0,
            cutoff_len: 2560,
            micro_batch_size: 4,
            grad_accum_steps: 1,
            batching: Batching::Padding,
            recompute_activations: false,
            optimizer: SftOptimizer::default(),
            shuffle: false,
            seed: 42,
            checkpoint_every: 500,
            keep_last: 2,
            log_every: 1,
            adapter: String::new(),
        }
    }
}

impl SftConfig {
    /// Checks values serde cannot; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("sft.epochs", self.epochs),
            ("sft.cutoff_len", self.cutoff_len),
            ("sft.micro_batch_size", self.micro_batch_size),
            ("sft.grad_accum_steps", self.grad_accum_steps),
            ("sft.log_every", self.log_every),
            ("sft.keep_last", self.keep_last),
        ];
        for (key, v) in positive {
            if v == 0 {
                bail!("key `{key}`: must be at least 1");
            }
        }
        if self.model.as_os_str().is_empty() {
            bail!("key `sft.model`: a Hugging Face model folder is required");
        }
        if self.data.as_os_str().is_empty() {
            bail!("key `sft.data`: a training data file is required");
        }
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            bail!("key `sft.lr`: {} is not a learning rate", self.lr);
        }
        if !(0.0..=1.0).contains(&self.warmup_ratio) {
            bail!(
                "key `sft.warmup_ratio`: {} is not in [0, 1]",
                self.warmup_ratio
            );
        }
        let o = &self.optimizer;
        if !(0.0..1.0).contains(&o.beta1) || !(0.0..1.0).contains(&o.beta2) {
            bail!("key `sft.optimizer.beta1`/`beta2`: must be in [0, 1)");
        }
        if o.max_grad_norm.is_nan() || o.max_grad_norm <= 0.0 {
            bail!("key `sft.optimizer.max_grad_norm`: must be > 0 (inf disables clipping)");
        }
        Ok(())
    }

    /// Samples per optimizer step.
    pub fn samples_per_step(&self) -> usize {
        self.micro_batch_size * self.grad_accum_steps
    }

    /// Makes the paths absolute (relative to the working folder), so the resolved config in
    /// the run folder still works when `--resume` runs from elsewhere.
    pub fn absolutize(&mut self) -> Result<()> {
        for p in [&mut self.model, &mut self.data, &mut self.output_dir] {
            if !p.as_os_str().is_empty() && p.is_relative() {
                *p = std::path::absolute(&*p)?;
            }
        }
        Ok(())
    }
}
