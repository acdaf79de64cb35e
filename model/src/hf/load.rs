//! Reading weights from `model.safetensors` or a sharded `model.safetensors.index.json`,
//! converting bf16/f16/f32 (and f64) to f32 and checking every tensor against the config.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use safetensors::{SafeTensorError, SafeTensors};
use serde::Deserialize;

use super::config::ModelConfig;
use super::dtype::bytes_to_f32;
use super::error::{read_file, read_json, HfError};
use super::weights::{tensor_specs, HostTensor, TensorSpec, Weights};

pub const SINGLE_FILE: &str = "model.safetensors";
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// `model.safetensors.index.json`.
#[derive(Debug, Deserialize)]
pub struct ShardIndex {
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub weight_map: BTreeMap<String, String>,
}

/// Reads the weights of the model folder `dir` (single file preferred, else the index).
pub fn load_weights(dir: &Path, config: &ModelConfig) -> Result<Weights, HfError> {
    let single = dir.join(SINGLE_FILE);
    let index = dir.join(INDEX_FILE);
    if single.is_file() {
        load_single(&single, config)
    } else if index.is_file() {
        load_sharded(&index, config)
    } else {
        Err(HfError::io(
            &single,
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no {SINGLE_FILE} nor {INDEX_FILE} in this folder"),
            ),
        ))
    }
}

/// Reads one safetensors file holding every tensor.
pub fn load_single(file: &Path, config: &ModelConfig) -> Result<Weights, HfError> {
    let specs = tensor_specs(config);
    let bytes = read_file(file)?;
    let mut tensors = read_tensors(file, &bytes, specs.iter())?;
    Weights::build(config, |spec| take(&mut tensors, spec, file))
}

/// Parses weights from one in-memory safetensors file (`save::weights_to_bytes`); `origin`
/// names where the bytes came from in errors.
pub fn weights_from_bytes(
    origin: &Path,
    bytes: &[u8],
    config: &ModelConfig,
) -> Result<Weights, HfError> {
    let specs = tensor_specs(config);
    let mut tensors = read_tensors(origin, bytes, specs.iter())?;
    Weights::build(config, |spec| take(&mut tensors, spec, origin))
}

/// Reads a sharded checkpoint through its index, one shard in memory at a time.
pub fn load_sharded(index_path: &Path, config: &ModelConfig) -> Result<Weights, HfError> {
    let index: ShardIndex = read_json(index_path)?;
    let dir = index_path.parent().unwrap_or(Path::new("."));
    let specs = tensor_specs(config);
    let mut by_shard: BTreeMap<&str, Vec<&TensorSpec>> = BTreeMap::new();
    for spec in &specs {
        let shard = index
            .weight_map
            .get(&spec.name)
            .ok_or_else(|| HfError::MissingTensor {
                file: index_path.to_path_buf(),
                tensor: spec.name.clone(),
            })?;
        by_shard.entry(shard.as_str()).or_default().push(spec);
    }
    let mut tensors = HashMap::new();
    let mut origin: HashMap<String, PathBuf> = HashMap::new();
    for (shard, wanted) in by_shard {
        if shard.contains('/') || shard.contains('\\') || shard == ".." {
            return Err(HfError::Corrupt {
                file: index_path.to_path_buf(),
                tensor: None,
                reason: format!("shard name {shard:?} leaves the model folder"),
            });
        }
        let path = dir.join(shard);
        let bytes = read_file(&path)?;
        for (name, t) in read_tensors(&path, &bytes, wanted.into_iter())? {
            origin.insert(name.clone(), path.clone());
            tensors.insert(name, t);
        }
    }
    Weights::build(config, |spec| {
        let file = origin.get(&spec.name).cloned().unwrap_or(index_path.into());
        take(&mut tensors, spec, &file)
    })
}

fn take(
    tensors: &mut HashMap<String, HostTensor>,
    spec: &TensorSpec,
    file: &Path,
) -> Result<HostTensor, HfError> {
    tensors
        .remove(&spec.name)
        .ok_or_else(|| HfError::MissingTensor {
            file: file.to_path_buf(),
            tensor: spec.name.clone(),
        })
}

/// Parses `bytes` (the whole of `file`) and extracts the wanted tensors as f32, checking
/// presence, dtype and shape. Tensors in the file that are not wanted are ignored (for example
/// a redundant `lm_head.weight` in a tied checkpoint, or rotary `inv_freq` buffers).
fn read_tensors<'s>(
    file: &Path,
    bytes: &[u8],
    wanted: impl Iterator<Item = &'s TensorSpec>,
) -> Result<HashMap<String, HostTensor>, HfError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| corrupt(file, bytes, e))?;
    let mut out = HashMap::new();
    for spec in wanted {
        let view = st.tensor(&spec.name).map_err(|_| HfError::MissingTensor {
            file: file.to_path_buf(),
            tensor: spec.name.clone(),
        })?;
        if view.shape() != spec.shape.as_slice() {
            return Err(HfError::ShapeMismatch {
                file: file.to_path_buf(),
                tensor: spec.name.clone(),
                expected: spec.shape.clone(),
                found: view.shape().to_vec(),
            });
        }
        let data =
            bytes_to_f32(view.dtype(), view.data()).ok_or_else(|| HfError::UnsupportedDtype {
                file: file.to_path_buf(),
                tensor: spec.name.clone(),
                dtype: format!("{:?}", view.dtype()),
            })?;
        out.insert(spec.name.clone(), HostTensor::new(spec.shape.clone(), data));
    }
    for name in st.names() {
        if !out.contains_key(name) {
            tracing::debug!(file = %file.display(), tensor = name, "tensor not used");
        }
    }
    Ok(out)
}

/// Turns a safetensors parse error into one naming the file and, for a truncated or
/// inconsistent data section, the first tensor whose bytes are not all there.
fn corrupt(file: &Path, bytes: &[u8], e: SafeTensorError) -> HfError {
    let tensor = match e {
        SafeTensorError::MetadataIncompleteBuffer | SafeTensorError::InvalidOffset(_) => {
            first_incomplete_tensor(bytes)
        }
        _ => None,
    };
    let reason = match (&e, &tensor) {
        (SafeTensorError::MetadataIncompleteBuffer, Some(_)) => {
            format!("the file ends before this tensor's data ({e:?})")
        }
        _ => format!("{e:?}"),
    };
    HfError::Corrupt {
        file: file.to_path_buf(),
        tensor,
        reason,
    }
}

/// Reads the header by hand and names the first tensor (by data offset) that reaches past the
/// end of the buffer; with no such tensor, the one whose offsets are inconsistent.
fn first_incomplete_tensor(bytes: &[u8]) -> Option<String> {
    let n = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(bytes.get(8..8usize.checked_add(n)?)?).ok()?;
    let available = bytes.len() - 8 - n;
    let mut spans: Vec<(usize, usize, &str)> = header
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(k, v)| {
            let o = v.get("data_offsets")?.as_array()?;
            Some((
                o.first()?.as_u64()? as usize,
                o.get(1)?.as_u64()? as usize,
                k.as_str(),
            ))
        })
        .collect();
    spans.sort();
    spans
        .iter()
        .find(|(_, end, _)| *end > available)
        .or_else(|| spans.windows(2).find(|w| w[0].1 != w[1].0).map(|w| &w[1]))
        .map(|(_, _, name)| name.to_string())
}
