//! config.json: the three architectures, their switches, defaults, bad configs, writing back.

use std::path::Path;

use grrm_model::hf::{Arch, ConfigBuilder, HfError, ModelConfig, StorageDType};
use serde_json::{json, Value};

fn parse(v: Value) -> Result<ModelConfig, HfError> {
    ModelConfig::from_json(&v, Path::new("/m/config.json"))
}

fn qwen3_json() -> Value {
    // The shape of Qwen3-0.6B's config.json, with keys grrm does not use.
    json!({
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": false,
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "head_dim": 128,
        "hidden_act": "silu",
        "hidden_size": 1024,
        "initializer_range": 0.02,
        "intermediate_size": 3072,
        "max_position_embeddings": 40960,
        "max_window_layers": 28,
        "model_type": "qwen3",
        "num_attention_heads": 16,
        "num_hidden_layers": 28,
        "num_key_value_heads": 8,
        "rms_norm_eps": 1e-06,
        "rope_scaling": null,
        "rope_theta": 1000000,
        "sliding_window": null,
        "tie_word_embeddings": true,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.51.0",
        "use_cache": true,
        "use_sliding_window": false,
        "vocab_size": 151936
    })
}

#[test]
fn qwen3_config_parses_with_its_switches() {
    let c = parse(qwen3_json()).unwrap();
    assert_eq!(c.arch, Arch::Qwen3);
    assert_eq!((c.hidden_size, c.num_hidden_layers), (1024, 28));
    assert_eq!(
        (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
        (16, 8, 128)
    );
    assert_eq!(
        c.q_dim(),
        2048,
        "Qwen3 head_dim is explicit, not hidden/heads"
    );
    assert!(c.qk_norm() && !c.qkv_bias() && !c.o_bias() && c.tie_word_embeddings);
    assert_eq!(c.rope_theta, 1e6);
    assert_eq!(c.dtype, Some(StorageDType::BF16));
    assert_eq!(
        (c.bos_token_id, c.eos_token_ids.clone()),
        (Some(151643), vec![151645])
    );
    assert_eq!(
        c.extra["max_window_layers"],
        json!(28),
        "unknown keys are kept"
    );
    // About 0.6B parameters (0.44B without the tied embedding).
    let n = c.num_parameters();
    assert!((590_000_000..610_000_000).contains(&n), "{n}");
}

#[test]
fn qwen2_has_qkv_bias_and_derived_head_dim() {
    let c = parse(json!({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
        "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
        "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": true,
        "torch_dtype": "bfloat16", "sliding_window": 32768, "use_sliding_window": false
    }))
    .unwrap();
    assert_eq!(c.arch, Arch::Qwen2);
    assert_eq!(c.head_dim, 64);
    assert!(c.qkv_bias() && !c.o_bias() && !c.qk_norm());
}

#[test]
fn llama_attention_bias_and_eos_list() {
    let c = parse(json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
        "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49152,
        "rms_norm_eps": 1e-5, "rope_theta": 100000, "tie_word_embeddings": true,
        "attention_bias": true, "mlp_bias": false, "bos_token_id": 1, "eos_token_id": [2, 0],
        "pretraining_tp": 1, "rope_scaling": null, "dtype": "float32"
    }))
    .unwrap();
    assert_eq!(c.arch, Arch::Llama);
    assert_eq!(c.head_dim, 64);
    assert!(c.qkv_bias() && c.o_bias() && !c.qk_norm());
    assert_eq!(c.eos_token_ids, vec![2, 0]);
    assert_eq!(
        c.dtype,
        Some(StorageDType::F32),
        "`dtype` is read like `torch_dtype`"
    );
    assert_eq!(c.to_json()["eos_token_id"], json!([2, 0]));
}

#[test]
fn unknown_architecture_names_the_file_and_value() {
    let mut v = qwen3_json();
    v["architectures"] = json!(["MistralForCausalLM"]);
    let e = parse(v).unwrap_err();
    assert!(matches!(e, HfError::UnknownArch { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("/m/config.json") && msg.contains("MistralForCausalLM"),
        "{msg}"
    );
}

#[test]
fn bad_fields_are_named() {
    let cases: Vec<(&str, Value, &str)> = vec![
        ("num_key_value_heads", json!(3), "does not divide"),
        ("hidden_size", Value::Null, "missing"),
        ("vocab_size", json!("big"), "expected"),
        ("hidden_act", json!("gelu"), "not supported"),
        (
            "rope_scaling",
            json!({"rope_type": "yarn", "factor": 4.0}),
            "not supported",
        ),
        ("use_sliding_window", json!(true), "not supported"),
        ("rms_norm_eps", json!(0.0), "positive"),
        ("torch_dtype", json!("int8"), "unsupported dtype"),
        ("eos_token_id", json!(999999), "outside vocab_size"),
    ];
    for (field, value, want) in cases {
        let mut v = qwen3_json();
        if value.is_null() {
            v.as_object_mut().unwrap().remove(field);
        } else {
            v[field] = value;
        }
        let msg = parse(v).unwrap_err().to_string();
        assert!(
            msg.contains(&format!("`{field}`"))
                && msg.contains(want)
                && msg.contains("config.json"),
            "{field}: {msg}"
        );
    }
    // heads must divide hidden when head_dim is derived (Qwen2/Llama).
    let msg = parse(json!({
        "architectures": ["Qwen2ForCausalLM"], "hidden_size": 100, "intermediate_size": 8,
        "num_hidden_layers": 1, "num_attention_heads": 3, "vocab_size": 10
    }))
    .unwrap_err()
    .to_string();
    assert!(
        msg.contains("`num_attention_heads`") && msg.contains("does not divide"),
        "{msg}"
    );
}

#[test]
fn invalid_json_and_missing_file_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config.json");
    let e = ModelConfig::from_file(&p).unwrap_err().to_string();
    assert!(e.contains("config.json"), "{e}");
    std::fs::write(&p, "{ not json").unwrap();
    let e = ModelConfig::from_file(&p).unwrap_err().to_string();
    assert!(
        e.contains("config.json") && e.contains("invalid JSON"),
        "{e}"
    );
}

#[test]
fn written_config_parses_back_identically() {
    for arch in Arch::ALL {
        let c = ConfigBuilder::new(arch)
            .layers(3)
            .hidden(48)
            .heads(6)
            .kv_heads(2)
            .ffn(80)
            .vocab(300)
            .tied(arch != Arch::Llama)
            .eos(vec![2])
            .build()
            .unwrap();
        let v = c.to_json();
        assert_eq!(v["architectures"], json!([arch.hf_architecture()]));
        assert_eq!(v["model_type"], json!(arch.model_type()));
        assert_eq!(v["hidden_act"], json!("silu"));
        let back = parse(v).unwrap();
        assert_eq!(back, c, "{arch}");
    }
    // A real-shaped config keeps its unknown keys through a write.
    let c = parse(qwen3_json()).unwrap();
    let back = parse(c.to_json()).unwrap();
    assert_eq!(back, c);
    assert_eq!(back.to_json()["transformers_version"], json!("4.51.0"));
}

#[test]
fn builder_rejects_bad_shapes() {
    let e = ConfigBuilder::new(Arch::Llama)
        .hidden(30)
        .heads(4)
        .vocab(10)
        .build();
    assert!(e.unwrap_err().to_string().contains("num_attention_heads"));
    let e = ConfigBuilder::new(Arch::Qwen3)
        .heads(4)
        .kv_heads(3)
        .vocab(10)
        .build();
    assert!(e.unwrap_err().to_string().contains("num_key_value_heads"));
    let e = ConfigBuilder::new(Arch::Qwen3).vocab(0).build();
    assert!(e.unwrap_err().to_string().contains("vocab_size"));
    assert_eq!(Arch::parse("QWEN3"), Some(Arch::Qwen3));
    assert_eq!(Arch::parse("LlamaForCausalLM"), Some(Arch::Llama));
}
