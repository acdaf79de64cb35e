//! A whole model folder: config.json + weights (+ tokenizer files), loaded together and saved
//! atomically.
//!
//! Atomic save: everything is written into a temporary folder next to the destination (same
//! parent, so the final step is a rename on one file system), then swapped in. If the destination
//! already exists, its other top-level files (not weights, config or tokenizer files, which are
//! replaced) are copied over and its sub-folders moved over first, the old folder is renamed
//! aside, the new one renamed into place, and the old one removed. A reader never sees a
//! half-written checkpoint at the destination path; a crash leaves either the old or the new
//! folder there (plus a hidden temporary one beside it).

use std::path::{Path, PathBuf};

use super::config::ModelConfig;
use super::error::HfError;
use super::load::{load_weights, INDEX_FILE, SINGLE_FILE};
use super::save::{write_json, write_weights, SaveOptions};
use super::weights::Weights;
use crate::tokenizer::{Tokenizer, TOKENIZER_CONFIG_FILE, TOKENIZER_FILE};

pub const CONFIG_FILE: &str = "config.json";

/// A loaded model folder.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    pub config: ModelConfig,
    pub weights: Weights,
    /// Present when the folder has a tokenizer.json.
    pub tokenizer: Option<Tokenizer>,
}

impl Checkpoint {
    /// Loads config.json, the weights (checked against the config) and the tokenizer if any.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, HfError> {
        let dir = dir.as_ref();
        let config = ModelConfig::from_file(dir.join(CONFIG_FILE))?;
        let weights = load_weights(dir, &config)?;
        let tokenizer = if dir.join(TOKENIZER_FILE).is_file() {
            Some(Tokenizer::from_dir(dir)?)
        } else {
            None
        };
        if let Some(t) = &tokenizer {
            if t.len() > config.vocab_size {
                return Err(HfError::config(
                    dir.join(CONFIG_FILE),
                    "vocab_size",
                    format!(
                        "{} rows cannot embed the {} ids of {}",
                        config.vocab_size,
                        t.len(),
                        dir.join(TOKENIZER_FILE).display()
                    ),
                ));
            }
        }
        Ok(Checkpoint {
            config,
            weights,
            tokenizer,
        })
    }

    /// Saves this checkpoint to `dir` atomically (see the module docs).
    pub fn save(&self, dir: impl AsRef<Path>, opts: &SaveOptions) -> Result<(), HfError> {
        save_pretrained(
            dir,
            &self.config,
            &self.weights,
            self.tokenizer.as_ref(),
            opts,
        )
    }
}

/// Writes config.json (with `torch_dtype` set to the saved dtype), the weights and the tokenizer
/// files into `dir`, atomically.
pub fn save_pretrained(
    dir: impl AsRef<Path>,
    config: &ModelConfig,
    weights: &Weights,
    tokenizer: Option<&Tokenizer>,
    opts: &SaveOptions,
) -> Result<(), HfError> {
    let dir = dir.as_ref();
    weights
        .check_shapes(config)
        .map_err(|reason| HfError::Invalid {
            what: format!("saving {}", dir.display()),
            reason,
        })?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| HfError::io(&parent, e))?;
    let name = dir
        .file_name()
        .ok_or_else(|| HfError::Invalid {
            what: dir.display().to_string(),
            reason: "not a folder name".into(),
        })?
        .to_string_lossy()
        .into_owned();
    let stage = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp-"))
        .tempdir_in(&parent)
        .map_err(|e| HfError::io(&parent, e))?;

    let mut config = config.clone();
    config.dtype = Some(opts.dtype);
    write_json(&stage.path().join(CONFIG_FILE), &config.to_json())?;
    write_weights(stage.path(), weights, opts)?;
    if let Some(t) = tokenizer {
        t.save(stage.path())?;
    }
    write_generation_config(stage.path(), &config, tokenizer)?;
    commit(stage, dir, &parent, &name)
}

/// generation_config.json with the stop ids, so `model.generate` in transformers stops at
/// `<|im_end|>` like grrm does.
fn write_generation_config(
    dir: &Path,
    config: &ModelConfig,
    tokenizer: Option<&Tokenizer>,
) -> Result<(), HfError> {
    let mut eos: Vec<u32> = config.eos_token_ids.clone();
    if let Some(t) = tokenizer {
        for id in t.stop_token_ids() {
            if !eos.contains(&id) {
                eos.push(id);
            }
        }
    }
    let mut g = serde_json::Map::new();
    if let Some(b) = config.bos_token_id {
        g.insert("bos_token_id".into(), b.into());
    }
    if !eos.is_empty() {
        g.insert("eos_token_id".into(), eos.into());
    }
    let pad = config
        .pad_token_id
        .or_else(|| tokenizer.and_then(Tokenizer::pad_token_id));
    if let Some(p) = pad {
        g.insert("pad_token_id".into(), p.into());
    }
    write_json(
        &dir.join("generation_config.json"),
        &serde_json::Value::Object(g),
    )
}

/// Files a save replaces (never carried over from an existing destination).
fn is_managed(file_name: &str) -> bool {
    file_name == CONFIG_FILE
        || file_name == "generation_config.json"
        || file_name == TOKENIZER_FILE
        || file_name == TOKENIZER_CONFIG_FILE
        || file_name == SINGLE_FILE
        || file_name == INDEX_FILE
        || (file_name.starts_with("model-") && file_name.ends_with(".safetensors"))
}

fn commit(stage: tempfile::TempDir, dest: &Path, parent: &Path, name: &str) -> Result<(), HfError> {
    if !dest.exists() {
        let staged = stage.keep();
        return std::fs::rename(&staged, dest).map_err(|e| HfError::io(dest, e));
    }
    if !dest.is_dir() {
        return Err(HfError::Invalid {
            what: dest.display().to_string(),
            reason: "exists and is not a folder".into(),
        });
    }
    // Top-level files the save does not manage are copied into the new folder first.
    let mut sub_folders = Vec::new();
    for entry in std::fs::read_dir(dest).map_err(|e| HfError::io(dest, e))? {
        let entry = entry.map_err(|e| HfError::io(dest, e))?;
        let file_name = entry.file_name();
        if is_managed(&file_name.to_string_lossy()) {
            continue;
        }
        let kind = entry
            .file_type()
            .map_err(|e| HfError::io(entry.path(), e))?;
        if kind.is_dir() {
            sub_folders.push(file_name);
        } else {
            std::fs::copy(entry.path(), stage.path().join(&file_name))
                .map_err(|e| HfError::io(entry.path(), e))?;
        }
    }
    let aside = tempfile::Builder::new()
        .prefix(&format!(".{name}.old-"))
        .tempdir_in(parent)
        .map_err(|e| HfError::io(parent, e))?;
    let old = aside.path().join("old");
    std::fs::rename(dest, &old).map_err(|e| HfError::io(dest, e))?;
    let staged = stage.keep();
    if let Err(e) = std::fs::rename(&staged, dest) {
        // Put the old folder back; the new one stays in its temporary place.
        let _ = std::fs::rename(&old, dest);
        let _ = aside.keep();
        return Err(HfError::io(dest, e));
    }
    // Sub-folders (e.g. optimizer state) move from the old folder into the new one; on failure
    // the old folder is kept beside the destination so nothing is lost.
    for f in sub_folders {
        if let Err(e) = std::fs::rename(old.join(&f), dest.join(&f)) {
            let kept = aside.keep();
            return Err(HfError::io(
                kept.join("old").join(&f),
                std::io::Error::new(
                    e.kind(),
                    format!("could not move into the new checkpoint: {e}"),
                ),
            ));
        }
    }
    drop(aside); // removes the old folder
    Ok(())
}
