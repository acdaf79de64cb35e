//! Helpers shared by the hf_* tests: tiny configs, temporary folders, file surgery.
#![allow(dead_code)]

use std::path::Path;

use grrm_model::hf::{Arch, ConfigBuilder, ModelConfig};
use safetensors::tensor::TensorView;
use safetensors::SafeTensors;

/// A small config of `arch` (2 layers, hidden 32, 4 heads / 2 kv heads, head_dim 8, ffn 48).
pub fn tiny(arch: Arch, tied: bool) -> ModelConfig {
    ConfigBuilder::new(arch)
        .layers(2)
        .hidden(32)
        .heads(4)
        .kv_heads(2)
        .head_dim(8)
        .ffn(48)
        .vocab(50)
        .tied(tied)
        .build()
        .expect("valid tiny config")
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// Rewrites a safetensors file: `edit` sees each tensor and returns its replacement
/// (shape, dtype, bytes), or `None` to drop it.
pub fn rewrite_safetensors(
    file: &Path,
    mut edit: impl FnMut(&str, &TensorView<'_>) -> Option<(Vec<usize>, safetensors::Dtype, Vec<u8>)>,
) {
    let bytes = std::fs::read(file).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, Vec<usize>, safetensors::Dtype, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .filter_map(|(name, view)| {
            edit(&name, &view).map(|(shape, dtype, data)| (name, shape, dtype, data))
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = kept
        .iter()
        .map(|(n, s, d, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    let out = safetensors::serialize(views, None).unwrap();
    std::fs::write(file, out).unwrap();
}

/// Keeps a tensor as it is.
pub fn keep(view: &TensorView<'_>) -> Option<(Vec<usize>, safetensors::Dtype, Vec<u8>)> {
    Some((view.shape().to_vec(), view.dtype(), view.data().to_vec()))
}
