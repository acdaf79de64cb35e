//! What a checkpoint holds besides the model: the trainer's progress (`trainer_state.json`:
//! step, data cursor, running totals, the data fingerprint) and the AdamW moments
//! (`optimizer/exp_avg/model.safetensors`, `optimizer/exp_avg_sq/model.safetensors`, f32, named
//! like the weights). With the f32 weights beside them a resume continues exactly.

use std::path::Path;

use anyhow::{Context, Result};
use grrm_model::hf::{
    load_weights, write_weights, ModelConfig, SaveOptions, StorageDType, Weights,
};
use serde::{Deserialize, Serialize};

use super::data::DataFingerprint;
use crate::atomic::write_atomic;

pub const TRAINER_STATE_FILE: &str = "trainer_state.json";
pub const OPTIMIZER_DIR: &str = "optimizer";
pub const EXP_AVG_DIR: &str = "exp_avg";
pub const EXP_AVG_SQ_DIR: &str = "exp_avg_sq";

/// Progress of a run; the data cursor is `step` (the plan is a pure function of the data and
/// the config) with `samples_consumed` as a check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done (the next step to run has this 0-based index).
    pub step: u64,
    pub total_steps: u64,
    pub samples_consumed: u64,
    /// Real (non-padding) tokens trained on.
    pub tokens: u64,
    /// Tokens that counted toward the loss.
    pub target_tokens: u64,
    pub first_loss: Option<f64>,
    pub last_loss: Option<f64>,
    /// Seconds spent in training steps, over every process of the run.
    pub train_seconds: f64,
    /// AdamW's step count (bias correction).
    pub optimizer_step: u64,
    pub data: Option<DataFingerprint>,
}

impl TrainerState {
    pub fn write(&self, dir: &Path) -> Result<()> {
        let mut text = serde_json::to_string_pretty(self)?;
        text.push('\n');
        write_atomic(&dir.join(TRAINER_STATE_FILE), text.as_bytes())
    }

    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(TRAINER_STATE_FILE);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

fn f32_opts() -> SaveOptions {
    SaveOptions {
        dtype: StorageDType::F32,
        ..Default::default()
    }
}

/// Writes the two AdamW moments under `dir/optimizer/`.
pub fn write_moments(dir: &Path, m: &Weights, v: &Weights) -> Result<()> {
    for (name, w) in [(EXP_AVG_DIR, m), (EXP_AVG_SQ_DIR, v)] {
        let sub = dir.join(OPTIMIZER_DIR).join(name);
        std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        write_weights(&sub, w, &f32_opts())
            .with_context(|| format!("writing optimizer state into {}", sub.display()))?;
    }
    Ok(())
}

/// Reads the moments written by `write_moments` (shapes checked against `config`).
pub fn read_moments(dir: &Path, config: &ModelConfig) -> Result<(Weights, Weights)> {
    let read = |name: &str| -> Result<Weights> {
        let sub = dir.join(OPTIMIZER_DIR).join(name);
        load_weights(&sub, config)
            .with_context(|| format!("reading optimizer state from {}", sub.display()))
    };
    Ok((read(EXP_AVG_DIR)?, read(EXP_AVG_SQ_DIR)?))
}
