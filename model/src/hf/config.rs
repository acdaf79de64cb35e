//! `config.json`: parsing with field-named errors, validation, and writing back in the layout
//! transformers reads. Keys grrm does not use are kept verbatim in `extra` and written back.

use std::path::Path;

use serde_json::{Map, Value};

use super::arch::Arch;
use super::dtype::StorageDType;
use super::error::{read_json, HfError};

/// Keys this module interprets; everything else goes to [`ModelConfig::extra`].
const KNOWN_KEYS: &[&str] = &[
    "architectures",
    "model_type",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "vocab_size",
    "max_position_embeddings",
    "rope_theta",
    "rms_norm_eps",
    "initializer_range",
    "attention_bias",
    "tie_word_embeddings",
    "torch_dtype",
    "dtype",
    "bos_token_id",
    "eos_token_id",
    "pad_token_id",
    "hidden_act",
    "mlp_bias",
    "rope_scaling",
    "use_sliding_window",
];

/// The hyper-parameters of a Qwen3-family model, resolved (defaults applied) and validated.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    /// Rows of the embedding (and LM head); may exceed the tokenizer's size (padding rows).
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
    /// Std of the normal initialisation (`initializer_range`, 0.02 by default).
    pub initializer_range: f64,
    /// The `attention_bias` field (Qwen3/Llama); Qwen2 has q/k/v biases regardless.
    pub attention_bias: bool,
    pub tie_word_embeddings: bool,
    /// `torch_dtype` (or `dtype` in newer transformers), if given.
    pub dtype: Option<StorageDType>,
    pub bos_token_id: Option<u32>,
    /// One or more end-of-sequence ids (Llama 3 lists several).
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    /// Keys grrm does not interpret, kept so that writing the config back loses nothing.
    pub extra: Map<String, Value>,
}

impl ModelConfig {
    /// Biases on q_proj, k_proj and v_proj.
    pub fn qkv_bias(&self) -> bool {
        match self.arch {
            Arch::Qwen2 => true,
            Arch::Qwen3 | Arch::Llama => self.attention_bias,
        }
    }

    /// Bias on o_proj.
    pub fn o_bias(&self) -> bool {
        match self.arch {
            Arch::Qwen2 => false,
            Arch::Qwen3 | Arch::Llama => self.attention_bias,
        }
    }

    /// Per-head RMSNorm of queries and keys (Qwen3).
    pub fn qk_norm(&self) -> bool {
        self.arch.has_qk_norm()
    }

    /// Width of the query projection: heads x head_dim.
    pub fn q_dim(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    /// Width of the key and value projections: kv heads x head_dim.
    pub fn kv_dim(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }

    /// Reads and validates `path` (a config.json).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, HfError> {
        let path = path.as_ref();
        let value: Value = read_json(path)?;
        Self::from_json(&value, path)
    }

    /// Parses a config.json value; `path` only names the source in errors.
    pub fn from_json(value: &Value, path: &Path) -> Result<Self, HfError> {
        let obj = value
            .as_object()
            .ok_or_else(|| HfError::config(path, "<root>", "expected a JSON object"))?;
        let f = Fields { obj, path };

        let arch = parse_arch(&f)?;
        let hidden_size = f.usize_req("hidden_size")?;
        let num_attention_heads = f.usize_req("num_attention_heads")?;
        let head_dim = match f.usize_opt("head_dim")? {
            Some(d) => d,
            // Qwen3Config's own default; the others derive it.
            None if arch == Arch::Qwen3 => 128,
            None => {
                if num_attention_heads == 0 || !hidden_size.is_multiple_of(num_attention_heads) {
                    return Err(HfError::config(
                        path,
                        "num_attention_heads",
                        format!("{num_attention_heads} does not divide hidden_size {hidden_size}"),
                    ));
                }
                hidden_size / num_attention_heads
            }
        };
        let dtype = match f.str_opt("torch_dtype")?.or(f.str_opt("dtype")?) {
            None => None,
            Some(s) => Some(StorageDType::from_hf_name(s).ok_or_else(|| {
                HfError::config(path, "torch_dtype", format!("unsupported dtype {s:?}"))
            })?),
        };
        let default_max_pos = if arch == Arch::Llama { 2048 } else { 32768 };
        let rope_theta = match f.f64_opt("rope_theta")? {
            Some(t) => t,
            None => obj
                .get("rope_parameters")
                .and_then(|p| p.get("rope_theta"))
                .and_then(Value::as_f64)
                .unwrap_or(10000.0),
        };

        let config = ModelConfig {
            arch,
            hidden_size,
            intermediate_size: f.usize_req("intermediate_size")?,
            num_hidden_layers: f.usize_req("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads: f
                .usize_opt("num_key_value_heads")?
                .unwrap_or(num_attention_heads),
            head_dim,
            vocab_size: f.usize_req("vocab_size")?,
            max_position_embeddings: f
                .usize_opt("max_position_embeddings")?
                .unwrap_or(default_max_pos),
            rope_theta,
            rms_norm_eps: f.f64_opt("rms_norm_eps")?.unwrap_or(1e-6),
            initializer_range: f.f64_opt("initializer_range")?.unwrap_or(0.02),
            attention_bias: f.bool_opt("attention_bias")?.unwrap_or(false),
            tie_word_embeddings: f.bool_opt("tie_word_embeddings")?.unwrap_or(false),
            dtype,
            bos_token_id: f.u32_opt("bos_token_id")?,
            eos_token_ids: f.ids_opt("eos_token_id")?,
            pad_token_id: f.u32_opt("pad_token_id")?,
            extra: obj
                .iter()
                .filter(|(k, _)| !KNOWN_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };

        // Features the transformer does not implement: refuse rather than compute wrong logits.
        if let Some(act) = f.str_opt("hidden_act")? {
            if act != "silu" {
                return Err(HfError::config(
                    path,
                    "hidden_act",
                    format!("{act:?} is not supported (only \"silu\")"),
                ));
            }
        }
        if f.bool_opt("mlp_bias")? == Some(true) {
            return Err(HfError::config(
                path,
                "mlp_bias",
                "MLP biases are not supported",
            ));
        }
        if f.bool_opt("use_sliding_window")? == Some(true) {
            return Err(HfError::config(
                path,
                "use_sliding_window",
                "sliding-window attention is not supported",
            ));
        }
        match obj.get("rope_scaling") {
            None | Some(Value::Null) => {}
            Some(v) => {
                let kind = v
                    .get("rope_type")
                    .or_else(|| v.get("type"))
                    .and_then(Value::as_str);
                if kind != Some("default") {
                    return Err(HfError::config(
                        path,
                        "rope_scaling",
                        format!("RoPE scaling {v} is not supported"),
                    ));
                }
            }
        }

        config.validate(path)?;
        Ok(config)
    }

    /// Checks the invariants the transformer relies on; errors name the field.
    pub fn validate(&self, path: &Path) -> Result<(), HfError> {
        let positive = [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_key_value_heads),
            ("head_dim", self.head_dim),
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (field, v) in positive {
            if v == 0 {
                return Err(HfError::config(path, field, "must be positive"));
            }
        }
        if !self
            .num_attention_heads
            .is_multiple_of(self.num_key_value_heads)
        {
            return Err(HfError::config(
                path,
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            ));
        }
        if !self.head_dim.is_multiple_of(2) {
            return Err(HfError::config(
                path,
                "head_dim",
                format!("{} is odd; RoPE rotates pairs", self.head_dim),
            ));
        }
        if self.arch == Arch::Qwen2 && self.q_dim() != self.hidden_size {
            return Err(HfError::config(
                path,
                "num_attention_heads",
                format!(
                    "Qwen2 needs heads x head_dim = hidden_size, got {} x {} != {}",
                    self.num_attention_heads, self.head_dim, self.hidden_size
                ),
            ));
        }
        let finite_pos = [
            ("rope_theta", self.rope_theta),
            ("rms_norm_eps", self.rms_norm_eps),
            ("initializer_range", self.initializer_range),
        ];
        for (field, v) in finite_pos {
            if !(v.is_finite() && v > 0.0) {
                return Err(HfError::config(
                    path,
                    field,
                    format!("{v} must be finite and positive"),
                ));
            }
        }
        for (field, id) in [
            ("bos_token_id", self.bos_token_id),
            ("pad_token_id", self.pad_token_id),
        ] {
            if let Some(id) = id {
                if id as usize >= self.vocab_size {
                    return Err(HfError::config(
                        path,
                        field,
                        format!("{id} is outside vocab_size {}", self.vocab_size),
                    ));
                }
            }
        }
        if let Some(id) = self
            .eos_token_ids
            .iter()
            .find(|&&id| id as usize >= self.vocab_size)
        {
            return Err(HfError::config(
                path,
                "eos_token_id",
                format!("{id} is outside vocab_size {}", self.vocab_size),
            ));
        }
        Ok(())
    }

    /// The config.json object transformers loads (`AutoConfig` / `AutoModelForCausalLM`).
    pub fn to_json(&self) -> Value {
        let mut m = self.extra.clone();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        put(
            "architectures",
            Value::from(vec![self.arch.hf_architecture()]),
        );
        put("model_type", self.arch.model_type().into());
        put("hidden_size", self.hidden_size.into());
        put("intermediate_size", self.intermediate_size.into());
        put("num_hidden_layers", self.num_hidden_layers.into());
        put("num_attention_heads", self.num_attention_heads.into());
        put("num_key_value_heads", self.num_key_value_heads.into());
        put("head_dim", self.head_dim.into());
        put("vocab_size", self.vocab_size.into());
        put(
            "max_position_embeddings",
            self.max_position_embeddings.into(),
        );
        put("rope_theta", self.rope_theta.into());
        put("rms_norm_eps", self.rms_norm_eps.into());
        put("initializer_range", self.initializer_range.into());
        put("attention_bias", self.attention_bias.into());
        put("tie_word_embeddings", self.tie_word_embeddings.into());
        put("hidden_act", "silu".into());
        put("rope_scaling", Value::Null);
        if self.arch == Arch::Llama {
            put("mlp_bias", false.into());
        } else {
            put("use_sliding_window", false.into());
        }
        if let Some(d) = self.dtype {
            put("torch_dtype", d.hf_name().into());
        }
        if let Some(id) = self.bos_token_id {
            put("bos_token_id", id.into());
        }
        match self.eos_token_ids.as_slice() {
            [] => {}
            [one] => put("eos_token_id", (*one).into()),
            many => put("eos_token_id", Value::from(many.to_vec())),
        }
        if let Some(id) = self.pad_token_id {
            put("pad_token_id", id.into());
        }
        Value::Object(m)
    }

    /// Parameter count (embedding and LM head counted once when tied).
    pub fn num_parameters(&self) -> usize {
        let h = self.hidden_size;
        let mut attn = h * self.q_dim() * 2 + h * self.kv_dim() * 2;
        if self.qkv_bias() {
            attn += self.q_dim() + 2 * self.kv_dim();
        }
        if self.o_bias() {
            attn += h;
        }
        if self.qk_norm() {
            attn += 2 * self.head_dim;
        }
        let layer = attn + 3 * h * self.intermediate_size + 2 * h;
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.vocab_size * h
        };
        self.vocab_size * h + self.num_hidden_layers * layer + h + head
    }
}

fn parse_arch(f: &Fields<'_>) -> Result<Arch, HfError> {
    match f.obj.get("architectures") {
        Some(Value::Array(list)) if !list.is_empty() => {
            let name = list[0].as_str().ok_or_else(|| {
                HfError::config(f.path, "architectures", "expected a list of strings")
            })?;
            Arch::from_hf_architecture(name).ok_or_else(|| HfError::UnknownArch {
                path: f.path.to_path_buf(),
                value: name.to_string(),
            })
        }
        Some(Value::Array(_)) | None | Some(Value::Null) => {
            let mt = f.str_opt("model_type")?.ok_or_else(|| {
                HfError::config(f.path, "architectures", "missing (and no model_type)")
            })?;
            Arch::from_model_type(mt).ok_or_else(|| HfError::UnknownArch {
                path: f.path.to_path_buf(),
                value: mt.to_string(),
            })
        }
        Some(_) => Err(HfError::config(
            f.path,
            "architectures",
            "expected a list of strings",
        )),
    }
}

/// Typed access to config.json fields with errors naming the field.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    path: &'a Path,
}

impl Fields<'_> {
    fn get(&self, k: &str) -> Option<&Value> {
        self.obj.get(k).filter(|v| !v.is_null())
    }

    fn bad(&self, k: &str, want: &str) -> HfError {
        HfError::config(
            self.path,
            k,
            format!("expected {want}, found {}", self.obj[k]),
        )
    }

    fn usize_opt(&self, k: &str) -> Result<Option<usize>, HfError> {
        self.get(k)
            .map(|v| {
                v.as_u64()
                    .map(|x| x as usize)
                    .ok_or_else(|| self.bad(k, "a non-negative integer"))
            })
            .transpose()
    }

    fn usize_req(&self, k: &str) -> Result<usize, HfError> {
        self.usize_opt(k)?
            .ok_or_else(|| HfError::config(self.path, k, "missing"))
    }

    fn u32_opt(&self, k: &str) -> Result<Option<u32>, HfError> {
        self.get(k)
            .map(|v| {
                v.as_u64()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(|| self.bad(k, "a token id"))
            })
            .transpose()
    }

    fn ids_opt(&self, k: &str) -> Result<Vec<u32>, HfError> {
        match self.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_u64()
                        .and_then(|x| u32::try_from(x).ok())
                        .ok_or_else(|| self.bad(k, "token ids"))
                })
                .collect(),
            Some(_) => Ok(vec![self.u32_opt(k)?.expect("present")]),
        }
    }

    fn f64_opt(&self, k: &str) -> Result<Option<f64>, HfError> {
        self.get(k)
            .map(|v| v.as_f64().ok_or_else(|| self.bad(k, "a number")))
            .transpose()
    }

    fn bool_opt(&self, k: &str) -> Result<Option<bool>, HfError> {
        self.get(k)
            .map(|v| v.as_bool().ok_or_else(|| self.bad(k, "true or false")))
            .transpose()
    }

    fn str_opt(&self, k: &str) -> Result<Option<&str>, HfError> {
        self.get(k)
            .map(|v| v.as_str().ok_or_else(|| self.bad(k, "a string")))
            .transpose()
    }
}
