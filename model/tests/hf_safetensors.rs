//! Weights through safetensors: round trips in f32/bf16/f16, sharding with an index, tied and
//! untied heads, the tensor names of each architecture, random initialisation.

mod hf_util;

use grrm_model::hf::{
    init_random, load_weights, save_pretrained, tensor_specs, Arch, Checkpoint, SaveOptions,
    StorageDType, Weights, INDEX_FILE, SINGLE_FILE,
};
use half::{bf16, f16};
use hf_util::{tempdir, tiny};
use safetensors::SafeTensors;

fn opts(dtype: StorageDType) -> SaveOptions {
    SaveOptions {
        dtype,
        ..SaveOptions::default()
    }
}

fn names_in(file: &std::path::Path) -> Vec<String> {
    let bytes = std::fs::read(file).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut n: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    n.sort();
    n
}

/// Applies `round` to every value, tensor by tensor.
fn rounded(w: &Weights, round: impl Fn(f32) -> f32) -> Vec<Vec<f32>> {
    w.named_tensors()
        .iter()
        .map(|(_, t)| t.data.iter().map(|&x| round(x)).collect())
        .collect()
}

#[test]
fn f32_round_trip_is_exact_for_every_arch() {
    for arch in Arch::ALL {
        for tied in [true, false] {
            let c = tiny(arch, tied);
            let w = init_random(&c, 7);
            let dir = tempdir();
            let out = dir.path().join("ckpt");
            save_pretrained(&out, &c, &w, None, &opts(StorageDType::F32)).unwrap();
            let back = Checkpoint::load(&out).unwrap();
            assert_eq!(back.weights, w, "{arch} tied={tied}");
            let mut want = c.clone();
            want.dtype = Some(StorageDType::F32);
            assert_eq!(back.config, want);
        }
    }
}

#[test]
fn bf16_and_f16_round_trips_match_rounding() {
    let c = tiny(Arch::Qwen3, false);
    let w = init_random(&c, 3);
    for (dtype, round) in [
        (
            StorageDType::BF16,
            (|x| bf16::from_f32(x).to_f32()) as fn(f32) -> f32,
        ),
        (StorageDType::F16, |x| f16::from_f32(x).to_f32()),
    ] {
        let dir = tempdir();
        save_pretrained(dir.path().join("m"), &c, &w, None, &opts(dtype)).unwrap();
        let back = load_weights(&dir.path().join("m"), &c).unwrap();
        let got: Vec<Vec<f32>> = back
            .named_tensors()
            .iter()
            .map(|(_, t)| t.data.clone())
            .collect();
        assert_eq!(got, rounded(&w, round), "{dtype:?}");
        // Storing what was read is lossless: bf16 -> f32 -> bf16 is exact.
        save_pretrained(dir.path().join("m2"), &c, &back, None, &opts(dtype)).unwrap();
        let again = load_weights(&dir.path().join("m2"), &c).unwrap();
        assert_eq!(again, back, "{dtype:?}");
        let raw = std::fs::read(dir.path().join("m").join(SINGLE_FILE)).unwrap();
        let st = SafeTensors::deserialize(&raw).unwrap();
        assert_eq!(
            st.tensor("model.norm.weight").unwrap().dtype(),
            dtype.safetensors_dtype()
        );
    }
}

#[test]
fn tied_checkpoints_omit_lm_head_and_untied_keep_it() {
    for tied in [true, false] {
        let c = tiny(Arch::Llama, tied);
        let w = init_random(&c, 1);
        assert_eq!(w.lm_head.is_none(), tied);
        let dir = tempdir();
        save_pretrained(dir.path(), &c, &w, None, &opts(StorageDType::F32)).unwrap();
        let names = names_in(&dir.path().join(SINGLE_FILE));
        assert_eq!(names.contains(&"lm_head.weight".to_string()), !tied);
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(cfg["tie_word_embeddings"], serde_json::json!(tied));
        assert_eq!(cfg["torch_dtype"], serde_json::json!("float32"));
        let back = Checkpoint::load(dir.path()).unwrap();
        assert_eq!(back.weights.output_embedding(), w.output_embedding());
    }
}

#[test]
fn tensor_names_follow_each_architecture() {
    let has = |arch, name: &str| {
        tensor_specs(&tiny(arch, true))
            .iter()
            .any(|s| s.name == name)
    };
    let q_bias = "model.layers.1.self_attn.q_proj.bias";
    let o_bias = "model.layers.1.self_attn.o_proj.bias";
    let q_norm = "model.layers.1.self_attn.q_norm.weight";
    assert!(has(Arch::Qwen2, q_bias) && !has(Arch::Qwen2, o_bias) && !has(Arch::Qwen2, q_norm));
    assert!(!has(Arch::Qwen3, q_bias) && has(Arch::Qwen3, q_norm));
    assert!(!has(Arch::Llama, q_bias) && !has(Arch::Llama, q_norm));
    let c = tiny(Arch::Qwen3, true);
    let specs = tensor_specs(&c);
    let shape = |n: &str| specs.iter().find(|s| s.name == n).unwrap().shape.clone();
    assert_eq!(shape("model.embed_tokens.weight"), vec![50, 32]);
    assert_eq!(
        shape("model.layers.0.self_attn.q_proj.weight"),
        vec![32, 32]
    );
    assert_eq!(
        shape("model.layers.0.self_attn.k_proj.weight"),
        vec![16, 32]
    );
    assert_eq!(
        shape("model.layers.0.self_attn.o_proj.weight"),
        vec![32, 32]
    );
    assert_eq!(shape("model.layers.0.self_attn.k_norm.weight"), vec![8]);
    assert_eq!(shape("model.layers.0.mlp.down_proj.weight"), vec![32, 48]);
    // Qwen3 with attention_bias has all four biases.
    let mut biased = c.clone();
    biased.attention_bias = true;
    let names: Vec<String> = tensor_specs(&biased).into_iter().map(|s| s.name).collect();
    assert!(names.contains(&o_bias.to_string()) && names.contains(&q_bias.to_string()));
    // Saved files hold exactly the specified names.
    let q2 = tiny(Arch::Qwen2, false);
    let dir = tempdir();
    save_pretrained(
        dir.path(),
        &q2,
        &init_random(&q2, 0),
        None,
        &opts(StorageDType::BF16),
    )
    .unwrap();
    let mut want: Vec<String> = tensor_specs(&q2).into_iter().map(|s| s.name).collect();
    want.sort();
    assert_eq!(names_in(&dir.path().join(SINGLE_FILE)), want);
}

#[test]
fn sharded_save_writes_an_index_and_loads_back() {
    let c = tiny(Arch::Qwen2, false);
    let w = init_random(&c, 11);
    let dir = tempdir();
    let o = SaveOptions {
        dtype: StorageDType::BF16,
        max_shard_bytes: 8 * 1024,
    };
    save_pretrained(dir.path(), &c, &w, None, &o).unwrap();
    assert!(!dir.path().join(SINGLE_FILE).exists());
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join(INDEX_FILE)).unwrap()).unwrap();
    let map = index["weight_map"].as_object().unwrap();
    assert_eq!(map.len(), tensor_specs(&c).len());
    let mut shards: Vec<&str> = map.values().map(|v| v.as_str().unwrap()).collect();
    shards.sort();
    shards.dedup();
    assert!(shards.len() > 2, "{shards:?}");
    for s in &shards {
        assert!(
            s.starts_with("model-") && s.ends_with(&format!("-of-{:05}.safetensors", shards.len()))
        );
        let size = std::fs::metadata(dir.path().join(s)).unwrap().len();
        assert!(size < 8 * 1024 + 4096, "{s}: {size} bytes");
    }
    let total: usize = w.num_parameters() * 2;
    assert_eq!(index["metadata"]["total_size"], serde_json::json!(total));
    let back = Checkpoint::load(dir.path()).unwrap();
    assert_eq!(back.weights.named_tensors().len(), w.named_tensors().len());
    let want = rounded(&w, |x| bf16::from_f32(x).to_f32());
    let got: Vec<Vec<f32>> = back
        .weights
        .named_tensors()
        .iter()
        .map(|(_, t)| t.data.clone())
        .collect();
    assert_eq!(got, want);
    // Saving small again over the sharded folder leaves no stale shards.
    save_pretrained(dir.path(), &c, &w, None, &opts(StorageDType::F32)).unwrap();
    let files: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files
            .iter()
            .all(|f| !f.starts_with("model-") && f != INDEX_FILE),
        "{files:?}"
    );
    assert_eq!(Checkpoint::load(dir.path()).unwrap().weights, w);
}

#[test]
fn random_init_is_seeded_and_hf_shaped() {
    let c = tiny(Arch::Qwen3, true);
    let a = init_random(&c, 5);
    assert_eq!(a, init_random(&c, 5));
    assert_ne!(a, init_random(&c, 6));
    a.check_shapes(&c).unwrap();
    assert!(a.norm.data.iter().all(|&x| x == 1.0));
    assert!(a.layers[0]
        .self_attn
        .q_norm
        .as_ref()
        .unwrap()
        .data
        .iter()
        .all(|&x| x == 1.0));
    let e = &a.embed_tokens.data;
    let mean = e.iter().map(|&x| x as f64).sum::<f64>() / e.len() as f64;
    let std = (e.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / e.len() as f64).sqrt();
    assert!(
        mean.abs() < 0.002 && (std - 0.02).abs() < 0.002,
        "mean {mean} std {std}"
    );
    let q2 = tiny(Arch::Qwen2, true);
    let b = init_random(&q2, 5);
    assert!(b.layers[1]
        .self_attn
        .v_proj
        .bias
        .as_ref()
        .unwrap()
        .data
        .iter()
        .all(|&x| x == 0.0));
}

#[test]
fn saving_over_a_folder_keeps_other_files() {
    let c = tiny(Arch::Llama, true);
    let dir = tempdir();
    let out = dir.path().join("run").join("ckpt");
    save_pretrained(
        &out,
        &c,
        &init_random(&c, 1),
        None,
        &opts(StorageDType::F32),
    )
    .unwrap();
    std::fs::write(out.join("notes.txt"), "keep me").unwrap();
    std::fs::create_dir(out.join("optimizer")).unwrap();
    std::fs::write(out.join("optimizer").join("state.bin"), [1u8, 2, 3]).unwrap();
    let w2 = init_random(&c, 2);
    save_pretrained(&out, &c, &w2, None, &opts(StorageDType::F32)).unwrap();
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(
        std::fs::read(out.join("optimizer").join("state.bin")).unwrap(),
        [1, 2, 3]
    );
    assert_eq!(Checkpoint::load(&out).unwrap().weights, w2);
    // No temporary folders are left beside the checkpoint.
    let siblings: Vec<String> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(siblings, vec!["ckpt".to_string()]);
}
