//! Host-side weights, one struct per module with fields named like the checkpoint's tensors
//! (`model.layers.{i}.self_attn.q_proj.weight` is `weights.layers[i].self_attn.q_proj.weight`).
//! Linear weights keep PyTorch's `[out_features, in_features]` row-major layout.

use super::config::ModelConfig;

/// A dense f32 tensor in host memory, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Panics if `data` does not hold `shape`'s element count (a programming error).
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        assert_eq!(
            shape.iter().product::<usize>(),
            data.len(),
            "HostTensor: shape {shape:?} does not match {} values",
            data.len()
        );
        HostTensor { shape, data }
    }

    pub fn filled(shape: Vec<usize>, value: f32) -> Self {
        let n = shape.iter().product();
        HostTensor::new(shape, vec![value; n])
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// Row `i` of a 2-D tensor.
    pub fn row(&self, i: usize) -> &[f32] {
        let cols = self.shape[1];
        &self.data[i * cols..(i + 1) * cols]
    }
}

/// `nn.Linear`: `weight` is `[out, in]`, `bias` is `[out]` where the architecture has one.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub weight: HostTensor,
    pub bias: Option<HostTensor>,
}

/// `model.layers.{i}.self_attn`.
#[derive(Clone, Debug, PartialEq)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    /// Qwen3 only: RMSNorm weight over head_dim, applied per head.
    pub q_norm: Option<HostTensor>,
    pub k_norm: Option<HostTensor>,
}

/// `model.layers.{i}.mlp` (SwiGLU: down(silu(gate(x)) * up(x))).
#[derive(Clone, Debug, PartialEq)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

/// `model.layers.{i}`.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    pub self_attn: Attention,
    pub mlp: Mlp,
    pub input_layernorm: HostTensor,
    pub post_attention_layernorm: HostTensor,
}

/// All weights of a causal LM. `lm_head` is `None` when the config ties it to `embed_tokens`.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    pub embed_tokens: HostTensor,
    pub layers: Vec<Layer>,
    pub norm: HostTensor,
    pub lm_head: Option<HostTensor>,
}

/// What a tensor is, for initialisation: matrices are drawn at random, norms start at one,
/// biases at zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorRole {
    Matrix,
    Norm,
    Bias,
}

/// The name, shape and role of one checkpoint tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub role: TensorRole,
}

/// Every tensor the config implies, in checkpoint order (embedding, layers, norm, head).
pub fn tensor_specs(c: &ModelConfig) -> Vec<TensorSpec> {
    let mut out = Vec::new();
    let mut push =
        |name: String, shape: Vec<usize>, role| out.push(TensorSpec { name, shape, role });
    let (h, v, f) = (c.hidden_size, c.vocab_size, c.intermediate_size);
    push(
        "model.embed_tokens.weight".into(),
        vec![v, h],
        TensorRole::Matrix,
    );
    for i in 0..c.num_hidden_layers {
        let p = format!("model.layers.{i}");
        for (proj, out_dim, in_dim, bias) in [
            ("q_proj", c.q_dim(), h, c.qkv_bias()),
            ("k_proj", c.kv_dim(), h, c.qkv_bias()),
            ("v_proj", c.kv_dim(), h, c.qkv_bias()),
            ("o_proj", h, c.q_dim(), c.o_bias()),
        ] {
            push(
                format!("{p}.self_attn.{proj}.weight"),
                vec![out_dim, in_dim],
                TensorRole::Matrix,
            );
            if bias {
                push(
                    format!("{p}.self_attn.{proj}.bias"),
                    vec![out_dim],
                    TensorRole::Bias,
                );
            }
        }
        if c.qk_norm() {
            push(
                format!("{p}.self_attn.q_norm.weight"),
                vec![c.head_dim],
                TensorRole::Norm,
            );
            push(
                format!("{p}.self_attn.k_norm.weight"),
                vec![c.head_dim],
                TensorRole::Norm,
            );
        }
        push(
            format!("{p}.mlp.gate_proj.weight"),
            vec![f, h],
            TensorRole::Matrix,
        );
        push(
            format!("{p}.mlp.up_proj.weight"),
            vec![f, h],
            TensorRole::Matrix,
        );
        push(
            format!("{p}.mlp.down_proj.weight"),
            vec![h, f],
            TensorRole::Matrix,
        );
        push(
            format!("{p}.input_layernorm.weight"),
            vec![h],
            TensorRole::Norm,
        );
        push(
            format!("{p}.post_attention_layernorm.weight"),
            vec![h],
            TensorRole::Norm,
        );
    }
    push("model.norm.weight".into(), vec![h], TensorRole::Norm);
    if !c.tie_word_embeddings {
        push("lm_head.weight".into(), vec![v, h], TensorRole::Matrix);
    }
    out
}

impl Weights {
    /// Assembles the weights by asking `get` for each tensor of [`tensor_specs`], in order.
    /// `get` returns a tensor of exactly `spec.shape` or an error (loading checks shapes there).
    pub fn build<E>(
        c: &ModelConfig,
        mut get: impl FnMut(&TensorSpec) -> Result<HostTensor, E>,
    ) -> Result<Self, E> {
        let mut specs = tensor_specs(c).into_iter();
        let mut next = || get(&specs.next().expect("tensor_specs covers every field"));
        let embed_tokens = next()?;
        let mut layers = Vec::with_capacity(c.num_hidden_layers);
        for _ in 0..c.num_hidden_layers {
            let linear = |bias: bool, next: &mut dyn FnMut() -> Result<HostTensor, E>| {
                let weight = next()?;
                let bias = if bias { Some(next()?) } else { None };
                Ok::<_, E>(Linear { weight, bias })
            };
            let q_proj = linear(c.qkv_bias(), &mut next)?;
            let k_proj = linear(c.qkv_bias(), &mut next)?;
            let v_proj = linear(c.qkv_bias(), &mut next)?;
            let o_proj = linear(c.o_bias(), &mut next)?;
            let (q_norm, k_norm) = if c.qk_norm() {
                (Some(next()?), Some(next()?))
            } else {
                (None, None)
            };
            let mlp = Mlp {
                gate_proj: linear(false, &mut next)?,
                up_proj: linear(false, &mut next)?,
                down_proj: linear(false, &mut next)?,
            };
            layers.push(Layer {
                self_attn: Attention {
                    q_proj,
                    k_proj,
                    v_proj,
                    o_proj,
                    q_norm,
                    k_norm,
                },
                mlp,
                input_layernorm: next()?,
                post_attention_layernorm: next()?,
            });
        }
        let norm = next()?;
        let lm_head = if c.tie_word_embeddings {
            None
        } else {
            Some(next()?)
        };
        Ok(Weights {
            embed_tokens,
            layers,
            norm,
            lm_head,
        })
    }

    /// Every tensor with its checkpoint name, in [`tensor_specs`] order.
    pub fn named_tensors(&self) -> Vec<(String, &HostTensor)> {
        let mut out = vec![("model.embed_tokens.weight".to_string(), &self.embed_tokens)];
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            let a = &l.self_attn;
            for (name, lin) in [
                ("q_proj", &a.q_proj),
                ("k_proj", &a.k_proj),
                ("v_proj", &a.v_proj),
                ("o_proj", &a.o_proj),
            ] {
                out.push((format!("{p}.self_attn.{name}.weight"), &lin.weight));
                if let Some(b) = &lin.bias {
                    out.push((format!("{p}.self_attn.{name}.bias"), b));
                }
            }
            if let Some(t) = &a.q_norm {
                out.push((format!("{p}.self_attn.q_norm.weight"), t));
            }
            if let Some(t) = &a.k_norm {
                out.push((format!("{p}.self_attn.k_norm.weight"), t));
            }
            out.push((format!("{p}.mlp.gate_proj.weight"), &l.mlp.gate_proj.weight));
            out.push((format!("{p}.mlp.up_proj.weight"), &l.mlp.up_proj.weight));
            out.push((format!("{p}.mlp.down_proj.weight"), &l.mlp.down_proj.weight));
            out.push((format!("{p}.input_layernorm.weight"), &l.input_layernorm));
            out.push((
                format!("{p}.post_attention_layernorm.weight"),
                &l.post_attention_layernorm,
            ));
        }
        out.push(("model.norm.weight".to_string(), &self.norm));
        if let Some(t) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), t));
        }
        out
    }

    /// Every tensor, mutable, in [`tensor_specs`] order.
    pub fn tensors_mut(&mut self) -> Vec<&mut HostTensor> {
        let mut out = vec![&mut self.embed_tokens];
        for l in &mut self.layers {
            let a = &mut l.self_attn;
            for lin in [&mut a.q_proj, &mut a.k_proj, &mut a.v_proj, &mut a.o_proj] {
                out.push(&mut lin.weight);
                out.extend(lin.bias.as_mut());
            }
            out.extend(a.q_norm.as_mut());
            out.extend(a.k_norm.as_mut());
            for lin in [
                &mut l.mlp.gate_proj,
                &mut l.mlp.up_proj,
                &mut l.mlp.down_proj,
            ] {
                out.push(&mut lin.weight);
            }
            out.push(&mut l.input_layernorm);
            out.push(&mut l.post_attention_layernorm);
        }
        out.push(&mut self.norm);
        out.extend(self.lm_head.as_mut());
        out
    }

    /// [`Weights::named_tensors`], mutable.
    pub fn named_tensors_mut(&mut self) -> Vec<(String, &mut HostTensor)> {
        let names: Vec<String> = self.named_tensors().into_iter().map(|(n, _)| n).collect();
        names.into_iter().zip(self.tensors_mut()).collect()
    }

    /// The output projection: `lm_head` or, when tied, `embed_tokens`.
    pub fn output_embedding(&self) -> &HostTensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// Total number of stored values.
    pub fn num_parameters(&self) -> usize {
        self.named_tensors().iter().map(|(_, t)| t.numel()).sum()
    }

    /// Checks every tensor against the config's shapes (for weights built in code).
    pub fn check_shapes(&self, c: &ModelConfig) -> Result<(), String> {
        let specs = tensor_specs(c);
        let named = self.named_tensors();
        if specs.len() != named.len() {
            return Err(format!(
                "the config implies {} tensors, the weights hold {}",
                specs.len(),
                named.len()
            ));
        }
        for (spec, (name, t)) in specs.iter().zip(&named) {
            if spec.name != *name || spec.shape != t.shape {
                return Err(format!(
                    "tensor `{name}` has shape {:?}, the config asks for `{}` {:?}",
                    t.shape, spec.name, spec.shape
                ));
            }
        }
        Ok(())
    }
}
