//! Writing weights as `model.safetensors` (f32, f16 or bf16), sharded with
//! `model.safetensors.index.json` above a size threshold, in the layout transformers loads.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, View};
use serde_json::json;

use super::dtype::{f32_to_bytes, StorageDType};
use super::error::HfError;
use super::load::{INDEX_FILE, SINGLE_FILE};
use super::weights::Weights;

/// How to write weights.
#[derive(Clone, Debug, PartialEq)]
pub struct SaveOptions {
    /// Element type on disk.
    pub dtype: StorageDType,
    /// A checkpoint larger than this is split into shards of at most this many bytes (a tensor
    /// larger than the limit gets a shard of its own). transformers uses 5 GB by default.
    pub max_shard_bytes: usize,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            dtype: StorageDType::BF16,
            max_shard_bytes: 5_000_000_000,
        }
    }
}

/// One encoded tensor, as safetensors' serializer wants it.
struct Encoded {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Encoded {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// Writes the weight files into the existing folder `dir` (not atomically: callers stage a
/// temporary folder, see `checkpoint::save_pretrained`). Returns the files written.
pub fn write_weights(
    dir: &Path,
    weights: &Weights,
    opts: &SaveOptions,
) -> Result<Vec<PathBuf>, HfError> {
    let named = weights.named_tensors();
    let elem = opts.dtype.size_in_bytes();
    let total: usize = named.iter().map(|(_, t)| t.numel() * elem).sum();

    // Greedy split in checkpoint order.
    let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
    let mut size = 0usize;
    for (i, (_, t)) in named.iter().enumerate() {
        let bytes = t.numel() * elem;
        let last = shards.last_mut().expect("non-empty");
        if !last.is_empty() && size + bytes > opts.max_shard_bytes {
            shards.push(vec![i]);
            size = bytes;
        } else {
            last.push(i);
            size += bytes;
        }
    }

    let metadata = Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]));
    let count = shards.len();
    let mut written = Vec::new();
    let mut weight_map = BTreeMap::new();
    for (s, members) in shards.iter().enumerate() {
        let file_name = if count == 1 {
            SINGLE_FILE.to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", s + 1, count)
        };
        let path = dir.join(&file_name);
        let encoded: Vec<(String, Encoded)> = members
            .iter()
            .map(|&i| {
                let (name, t) = &named[i];
                let enc = Encoded {
                    dtype: opts.dtype.safetensors_dtype(),
                    shape: t.shape.clone(),
                    bytes: f32_to_bytes(opts.dtype, &t.data),
                };
                (name.clone(), enc)
            })
            .collect();
        for (name, _) in &encoded {
            weight_map.insert(name.clone(), file_name.clone());
        }
        safetensors::serialize_to_file(
            encoded.iter().map(|(n, e)| (n.as_str(), e)),
            metadata.clone(),
            &path,
        )
        .map_err(|e| HfError::Corrupt {
            file: path.clone(),
            tensor: None,
            reason: format!("writing failed: {e:?}"),
        })?;
        written.push(path);
    }
    if count > 1 {
        let index = json!({
            "metadata": { "total_size": total },
            "weight_map": weight_map,
        });
        let path = dir.join(INDEX_FILE);
        write_json(&path, &index)?;
        written.push(path);
    }
    Ok(written)
}

/// The weights as one in-memory safetensors file (for sending them over a network: rollout
/// workers load it with `load::weights_from_bytes`).
pub fn weights_to_bytes(weights: &Weights, dtype: StorageDType) -> Result<Vec<u8>, HfError> {
    let encoded: Vec<(String, Encoded)> = weights
        .named_tensors()
        .into_iter()
        .map(|(name, t)| {
            let enc = Encoded {
                dtype: dtype.safetensors_dtype(),
                shape: t.shape.clone(),
                bytes: f32_to_bytes(dtype, &t.data),
            };
            (name, enc)
        })
        .collect();
    safetensors::serialize(encoded.iter().map(|(n, e)| (n.as_str(), e)), None).map_err(|e| {
        HfError::Invalid {
            what: "encoding weights".into(),
            reason: format!("{e:?}"),
        }
    })
}

/// Writes pretty JSON with a trailing newline.
pub(crate) fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), HfError> {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialise");
    text.push('\n');
    std::fs::write(path, text).map_err(|e| HfError::io(path, e))
}
