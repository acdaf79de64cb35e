//! Bad checkpoints: missing tensors, wrong shapes, wrong dtypes, truncated or corrupt files,
//! missing files and unknown architectures give errors that name the file and the tensor.

mod hf_util;

use grrm_model::hf::{
    init_random, save_pretrained, Arch, Checkpoint, HfError, SaveOptions, StorageDType, INDEX_FILE,
    SINGLE_FILE,
};
use hf_util::{keep, rewrite_safetensors, tempdir, tiny};
use safetensors::SafeTensors;

fn saved(arch: Arch, tied: bool, max_shard_bytes: usize) -> tempfile::TempDir {
    let c = tiny(arch, tied);
    let dir = tempdir();
    let o = SaveOptions {
        dtype: StorageDType::BF16,
        max_shard_bytes,
    };
    save_pretrained(dir.path(), &c, &init_random(&c, 9), None, &o).unwrap();
    dir
}

fn load_err(dir: &std::path::Path) -> (HfError, String) {
    let e = Checkpoint::load(dir).unwrap_err();
    let msg = e.to_string();
    (e, msg)
}

#[test]
fn missing_tensor_names_file_and_tensor() {
    let dir = saved(Arch::Qwen3, true, usize::MAX);
    let file = dir.path().join(SINGLE_FILE);
    let victim = "model.layers.1.self_attn.k_norm.weight";
    rewrite_safetensors(&file, |name, v| if name == victim { None } else { keep(v) });
    let (e, msg) = load_err(dir.path());
    assert!(matches!(e, HfError::MissingTensor { .. }), "{msg}");
    assert!(msg.contains(SINGLE_FILE) && msg.contains(victim), "{msg}");
}

#[test]
fn untied_checkpoint_without_lm_head_is_an_error() {
    let dir = saved(Arch::Llama, false, usize::MAX);
    rewrite_safetensors(&dir.path().join(SINGLE_FILE), |name, v| {
        if name == "lm_head.weight" {
            None
        } else {
            keep(v)
        }
    });
    let (_, msg) = load_err(dir.path());
    assert!(
        msg.contains("lm_head.weight") && msg.contains("missing"),
        "{msg}"
    );
}

#[test]
fn tied_checkpoint_with_a_redundant_lm_head_loads() {
    let dir = saved(Arch::Qwen3, true, usize::MAX);
    let file = dir.path().join(SINGLE_FILE);
    let mut embed = None;
    rewrite_safetensors(&file, |name, v| {
        if name == "model.embed_tokens.weight" {
            embed = Some((v.shape().to_vec(), v.data().to_vec()));
        }
        keep(v)
    });
    let (shape, data) = embed.unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut all: Vec<(String, safetensors::tensor::TensorView<'_>)> = st.tensors();
    all.push((
        "lm_head.weight".into(),
        safetensors::tensor::TensorView::new(safetensors::Dtype::BF16, shape, &data).unwrap(),
    ));
    let out = safetensors::serialize(all, None).unwrap();
    std::fs::write(&file, out).unwrap();
    let ck = Checkpoint::load(dir.path()).unwrap();
    assert!(ck.weights.lm_head.is_none());
}

#[test]
fn wrong_shape_names_file_tensor_and_shapes() {
    let dir = saved(Arch::Qwen2, false, usize::MAX);
    let victim = "model.layers.0.mlp.up_proj.weight";
    rewrite_safetensors(&dir.path().join(SINGLE_FILE), |name, v| {
        let (mut shape, dtype, data) = keep(v).unwrap();
        if name == victim {
            shape = vec![shape[1], shape[0]];
        }
        Some((shape, dtype, data))
    });
    let (e, msg) = load_err(dir.path());
    assert!(matches!(e, HfError::ShapeMismatch { .. }), "{msg}");
    assert!(msg.contains(SINGLE_FILE) && msg.contains(victim), "{msg}");
    assert!(
        msg.contains("[32, 48]") && msg.contains("[48, 32]"),
        "{msg}"
    );
}

#[test]
fn config_disagreeing_with_weights_is_a_shape_error() {
    let dir = saved(Arch::Qwen3, true, usize::MAX);
    let p = dir.path().join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    cfg["intermediate_size"] = serde_json::json!(64);
    std::fs::write(&p, cfg.to_string()).unwrap();
    let (_, msg) = load_err(dir.path());
    assert!(
        msg.contains("model.layers.0.mlp.gate_proj.weight") && msg.contains("[64, 32]"),
        "{msg}"
    );
}

#[test]
fn integer_tensor_is_an_unsupported_dtype() {
    let dir = saved(Arch::Llama, true, usize::MAX);
    let victim = "model.norm.weight";
    rewrite_safetensors(&dir.path().join(SINGLE_FILE), |name, v| {
        let (shape, dtype, data) = keep(v).unwrap();
        if name == victim {
            Some((shape, safetensors::Dtype::I16, data))
        } else {
            Some((shape, dtype, data))
        }
    });
    let (e, msg) = load_err(dir.path());
    assert!(matches!(e, HfError::UnsupportedDtype { .. }), "{msg}");
    assert!(msg.contains(victim) && msg.contains("I16"), "{msg}");
}

#[test]
fn truncated_file_names_file_and_the_cut_tensor() {
    let dir = saved(Arch::Qwen3, false, usize::MAX);
    let file = dir.path().join(SINGLE_FILE);
    let bytes = std::fs::read(&file).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let last = meta
        .tensors()
        .into_iter()
        .max_by_key(|(_, info)| info.data_offsets.1)
        .map(|(n, _)| n)
        .unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 5]).unwrap();
    let (e, msg) = load_err(dir.path());
    assert!(matches!(e, HfError::Corrupt { .. }), "{msg}");
    assert!(
        msg.contains(SINGLE_FILE) && msg.contains(&format!("`{last}`")),
        "{msg}"
    );
    // A file cut inside its header, and garbage, are corrupt too.
    std::fs::write(&file, &bytes[..20]).unwrap();
    let (_, msg) = load_err(dir.path());
    assert!(
        msg.contains(SINGLE_FILE) && msg.contains("corrupt"),
        "{msg}"
    );
    std::fs::write(&file, b"definitely not safetensors").unwrap();
    let (_, msg) = load_err(dir.path());
    assert!(
        msg.contains(SINGLE_FILE) && msg.contains("corrupt"),
        "{msg}"
    );
}

#[test]
fn sharded_errors_name_the_shard_or_the_index() {
    let dir = saved(Arch::Qwen3, true, 6 * 1024);
    let index_path = dir.path().join(INDEX_FILE);
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    let victim = "model.layers.1.mlp.down_proj.weight";
    let shard = index["weight_map"][victim].as_str().unwrap().to_string();

    // The shard lacks the tensor the index promises.
    let shard_path = dir.path().join(&shard);
    let original = std::fs::read(&shard_path).unwrap();
    rewrite_safetensors(
        &shard_path,
        |name, v| if name == victim { None } else { keep(v) },
    );
    let (_, msg) = load_err(dir.path());
    assert!(msg.contains(&shard) && msg.contains(victim), "{msg}");
    std::fs::write(&shard_path, &original).unwrap();

    // The index lacks the tensor.
    let mut bad = index.clone();
    bad["weight_map"].as_object_mut().unwrap().remove(victim);
    std::fs::write(&index_path, bad.to_string()).unwrap();
    let (_, msg) = load_err(dir.path());
    assert!(msg.contains(INDEX_FILE) && msg.contains(victim), "{msg}");

    // A shard file is gone.
    std::fs::write(&index_path, index.to_string()).unwrap();
    std::fs::remove_file(&shard_path).unwrap();
    let (e, msg) = load_err(dir.path());
    assert!(
        matches!(e, HfError::Io { .. }) && msg.contains(&shard),
        "{msg}"
    );
}

#[test]
fn missing_files_and_unknown_architecture() {
    let dir = saved(Arch::Llama, true, usize::MAX);
    std::fs::remove_file(dir.path().join(SINGLE_FILE)).unwrap();
    let (_, msg) = load_err(dir.path());
    assert!(
        msg.contains(SINGLE_FILE) && msg.contains(INDEX_FILE),
        "{msg}"
    );

    let p = dir.path().join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    cfg["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
    std::fs::write(&p, cfg.to_string()).unwrap();
    let (e, msg) = load_err(dir.path());
    assert!(matches!(e, HfError::UnknownArch { .. }), "{msg}");
    assert!(
        msg.contains("config.json") && msg.contains("GPT2LMHeadModel"),
        "{msg}"
    );

    std::fs::remove_file(&p).unwrap();
    let (_, msg) = load_err(dir.path());
    assert!(msg.contains("config.json"), "{msg}");
}
