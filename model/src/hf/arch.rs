//! The supported architectures and the switches that tell them apart.

/// A member of the Qwen3 family of decoder-only transformers.
///
/// | switch            | Qwen3                | Qwen2     | Llama                |
/// |-------------------|----------------------|-----------|----------------------|
/// | q/k/v bias        | `attention_bias`     | always    | `attention_bias`     |
/// | o_proj bias       | `attention_bias`     | never     | `attention_bias`     |
/// | q/k RMSNorm/head  | yes                  | no        | no                   |
/// | head_dim          | explicit (HF default 128) | hidden/heads | explicit or hidden/heads |
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    Qwen3,
    Qwen2,
    Llama,
}

impl Arch {
    pub const ALL: [Arch; 3] = [Arch::Qwen3, Arch::Qwen2, Arch::Llama];

    /// The class name in config.json's `architectures`.
    pub fn hf_architecture(self) -> &'static str {
        match self {
            Arch::Qwen3 => "Qwen3ForCausalLM",
            Arch::Qwen2 => "Qwen2ForCausalLM",
            Arch::Llama => "LlamaForCausalLM",
        }
    }

    /// config.json's `model_type`.
    pub fn model_type(self) -> &'static str {
        match self {
            Arch::Qwen3 => "qwen3",
            Arch::Qwen2 => "qwen2",
            Arch::Llama => "llama",
        }
    }

    pub fn from_hf_architecture(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.hf_architecture() == name)
    }

    pub fn from_model_type(name: &str) -> Option<Arch> {
        Arch::ALL.into_iter().find(|a| a.model_type() == name)
    }

    /// Parses a command-line spelling: `qwen3`, `qwen2`, `llama` or the HF class name.
    pub fn parse(name: &str) -> Option<Arch> {
        Arch::from_model_type(&name.to_ascii_lowercase())
            .or_else(|| Arch::from_hf_architecture(name))
    }

    /// Per-head RMSNorm on queries and keys before RoPE (Qwen3 only).
    pub fn has_qk_norm(self) -> bool {
        matches!(self, Arch::Qwen3)
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.model_type())
    }
}
