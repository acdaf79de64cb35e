//! Inference forward with a KV cache: one code path for prefill (S tokens per sequence) and
//! decode (S = 1). Sequences keep their own lengths, so prompts of different lengths share a
//! batch: a right-padded prefill writes junk cache rows past a short prompt's end, which stay
//! invisible (a query only sees positions up to its own) until decoding overwrites them.
//!
//! One set of layer temporaries serves every layer (the recorder keeps whatever a dispatch
//! binds alive until submit, so per-layer tensors would add up to the whole model's worth for
//! a long prefill), and the residual stream is updated in place: the o and down projections
//! add into it in their epilogues, so no separate add runs.

use crate::gpu::{Recorder, Result, Tensor};
use crate::kernels::attention::{
    attention_decode, attention_decode_shared, attention_forward, kv_cache_gather_keeping,
    AttentionInputs, KvCache, PrefixTable,
};
use crate::kernels::embedding::{embedding, embedding_column0};
use crate::kernels::matmul::MatmulOpts;
use crate::kernels::qk_norm_rope::{qk_norm_rope_append, AppendTo, QkNorm};
use crate::kernels::softmax::{softmax, SoftmaxOpts};
use crate::transformer::precision::{InferWeights, Mm, Operand, Proj};
use crate::transformer::{f32_zeros, MlpActs, QkvActs, Transformer};
use crate::{DType, GpuError};

/// The KV caches of every layer for a batch of sequences, how long each sequence is, and the
/// weights its forwards multiply with.
pub struct DecodeState {
    pub caches: Vec<KvCache>,
    pub lengths: Vec<usize>,
    /// Capacity in positions.
    pub max_len: usize,
    /// f32 masters, or f16 copies cast when this state was made (states derived from it by
    /// gathering keep them): weights may change between generate calls, never within one.
    pub(crate) weights: InferWeights,
    /// Rows whose first positions live in another state's caches (`share_prefix`); their own
    /// caches then hold only the positions after the prefix, and `max_len` counts those.
    pub(crate) prefix: Option<SharedPrefix>,
}

/// The caches rows read their first positions from: row `i` of the state reads positions
/// `0..lens[i]` of row `rows[i]` of `caches` (beam search: a user's prompt, held once for all
/// of the user's beams).
#[derive(Clone)]
pub(crate) struct SharedPrefix {
    caches: Vec<KvCache>,
    rows: Vec<u32>,
    lens: Vec<usize>,
}

impl DecodeState {
    /// Empty caches; under f16 tensor-core precision also casts the weights (one submission).
    pub fn new(t: &Transformer, batch: usize, max_len: usize) -> Result<Self> {
        Self::alloc(t, batch, max_len, t.inference_weights()?)
    }

    /// Empty caches multiplying with `weights` (another state's: no cast).
    pub(crate) fn alloc(
        t: &Transformer,
        batch: usize,
        max_len: usize,
        weights: InferWeights,
    ) -> Result<Self> {
        let c = &t.cfg;
        let dtype = cache_dtype(t, &weights);
        let caches = (0..c.num_hidden_layers)
            .map(|_| {
                let (g, d) = (c.num_key_value_heads, c.head_dim);
                KvCache::with_dtype(t.ctx(), dtype, batch, g, max_len, d)
            })
            .collect::<Result<_>>()?;
        Ok(DecodeState {
            caches,
            lengths: vec![0; batch],
            max_len,
            weights,
            prefix: None,
        })
    }

    pub fn batch(&self) -> usize {
        self.lengths.len()
    }

    /// Whether rows read their first positions from another state's caches (`share_prefix`).
    pub(crate) fn reads_prefix(&self) -> bool {
        self.prefix.is_some()
    }

    /// Positions row `i` holds in its own cache (all of them unless it reads a prefix).
    fn own_len(&self, i: usize) -> usize {
        self.lengths[i] - self.prefix.as_ref().map_or(0, |p| p.lens[i])
    }

    /// A state whose row `i` continues row `src[i]` of this one without copying it: it reads
    /// this state's positions from its caches and keeps the positions it adds in the first
    /// `src.len()` rows of `dst`'s caches (whose capacity, `dst.max_len`, counts only those).
    /// No GPU work; this state's caches must not change while the result is in use.
    pub(crate) fn share_prefix(&self, src: &[u32], dst: &DecodeState) -> Result<DecodeState> {
        let bad = self.prefix.is_some()
            || src.len() > dst.batch()
            || dst.caches.len() != self.caches.len()
            || src.iter().any(|&i| i as usize >= self.batch());
        if bad {
            return Err(GpuError::shape(
                "share-prefix",
                format!(
                    "{} rows (indices below {}) into a state of {} rows, from a state that \
                     reads no prefix itself",
                    src.len(),
                    self.batch(),
                    dst.batch()
                ),
            ));
        }
        let lens: Vec<usize> = src.iter().map(|&i| self.lengths[i as usize]).collect();
        Ok(DecodeState {
            caches: dst.row_views(src.len())?,
            lengths: lens.clone(),
            max_len: dst.max_len,
            weights: self.weights.clone(),
            prefix: Some(SharedPrefix {
                caches: self.caches.clone(),
                rows: src.to_vec(),
                lens,
            }),
        })
    }

    /// The first `n` rows of every layer's cache.
    fn row_views(&self, n: usize) -> Result<Vec<KvCache>> {
        self.caches
            .iter()
            .map(|c| {
                Ok(KvCache {
                    k: c.k.rows(0, n)?,
                    v: c.v.rows(0, n)?,
                })
            })
            .collect()
    }

    /// A new state whose row `i` is a copy of row `src[i]` of this one (beam reordering, or
    /// fanning a prompt out to several samples).
    pub fn gather(&self, t: &Transformer, src: &[u32]) -> Result<DecodeState> {
        let mut rec = Recorder::new(t.ctx(), "cache-gather");
        let out = self.record_gather(&mut rec, t, src)?;
        rec.submit()?;
        Ok(out)
    }

    /// `gather`, recorded into `rec` (the copy happens when `rec` is submitted, after whatever
    /// `rec` recorded before it).
    pub fn record_gather(
        &self,
        rec: &mut Recorder,
        t: &Transformer,
        src: &[u32],
    ) -> Result<DecodeState> {
        let fresh = DecodeState::alloc(t, src.len(), self.max_len, self.weights.clone())?;
        self.record_gather_into(rec, src, &fresh)
    }

    /// `record_gather` into the first `src.len()` rows of `dst`'s buffers instead of new ones
    /// (the result shares them): beam search alternates between two preallocated states
    /// rather than allocating a whole cache per step. `dst` must not share buffers with `self`.
    pub fn record_gather_into(
        &self,
        rec: &mut Recorder,
        src: &[u32],
        dst: &DecodeState,
    ) -> Result<DecodeState> {
        self.record_gather_keeping(rec, src, None, dst)
    }

    /// `record_gather_into` leaving positions below `keep[i]` of `dst`'s row `i` as they are
    /// (beam search: a row that already holds the prompt of the beam moved into it).
    pub(crate) fn record_gather_keeping(
        &self,
        rec: &mut Recorder,
        src: &[u32],
        keep: Option<&[u32]>,
        dst: &DecodeState,
    ) -> Result<DecodeState> {
        if src.len() > dst.batch()
            || dst.max_len != self.max_len
            || dst.caches.len() != self.caches.len()
        {
            return Err(GpuError::shape(
                "cache-gather-into",
                format!(
                    "{} rows into a state of {} rows (max_len {} vs {})",
                    src.len(),
                    dst.batch(),
                    dst.max_len,
                    self.max_len
                ),
            ));
        }
        if src.iter().any(|&i| i as usize >= self.batch()) {
            return Err(GpuError::shape(
                "cache-gather-into",
                format!("a source row index is not below {}", self.batch()),
            ));
        }
        let caches = dst.row_views(src.len())?;
        let idx = Tensor::from_u32(rec.ctx(), &[src.len()], src)?;
        // One keep list for every layer (nothing kept when none is given).
        let zeros;
        let keep = match keep {
            Some(k) => k,
            None => {
                zeros = vec![0; src.len()];
                &zeros
            }
        };
        let keep_t = Tensor::from_u32(rec.ctx(), &[src.len()], keep)?;
        let p0 = keep.iter().copied().min().unwrap_or(0) as usize;
        // Nothing past the longest source row is visible to anyone (rows reading a prefix
        // copy only their own positions; the prefix stays where it is).
        let end = src
            .iter()
            .map(|&i| self.own_len(i as usize))
            .max()
            .unwrap_or(0);
        for (s, d) in self.caches.iter().zip(&caches) {
            kv_cache_gather_keeping(rec, s, &idx, Some((&keep_t, p0)), end, d)?;
        }
        let prefix = self.prefix.as_ref().map(|p| SharedPrefix {
            caches: p.caches.clone(),
            rows: src.iter().map(|&i| p.rows[i as usize]).collect(),
            lens: src.iter().map(|&i| p.lens[i as usize]).collect(),
        });
        Ok(DecodeState {
            caches,
            lengths: src.iter().map(|&i| self.lengths[i as usize]).collect(),
            max_len: self.max_len,
            weights: self.weights.clone(),
            prefix,
        })
    }
}

/// The caches hold f16 where the products do (both f16 precisions, so the emulated one rounds
/// as the tensor-core one does), with an even head dim: a decode step reads every cached K and
/// V row, which at f32 was the largest part of a 64-row step on the H100 (bench/NOTES.md).
fn cache_dtype(t: &Transformer, weights: &InferWeights) -> DType {
    match weights {
        InferWeights::Half(..) if t.cfg.head_dim.is_multiple_of(2) => DType::F16,
        _ => DType::F32,
    }
}

impl Transformer {
    /// Whether decode states of this model can read a shared prefix (`share_prefix`): the
    /// decode kernel that reads one runs on this adapter for these heads.
    pub(crate) fn decodes_shared_prefixes(&self) -> Result<bool> {
        Ok(self.attention_heads()?.decodes_shared_prefix(self.ctx()))
    }

    /// Feeds `chunk[b]` (all of one length S >= 1) to sequence b at its current length, updates
    /// the caches and lengths, and returns log-softmax(logits / temperature) `[B, V]` at each
    /// sequence's last real token (`real[b]` tokens of the chunk are real; the rest padding).
    pub fn infer(
        &self,
        state: &mut DecodeState,
        chunk: &[Vec<u32>],
        real: &[usize],
        temperature: f32,
    ) -> Result<Vec<f32>> {
        let mut rec = Recorder::new(self.ctx(), "infer");
        let logp = self.record_infer(&mut rec, state, chunk, real, temperature, 1)?;
        rec.submit()?;
        logp.to_f32_vec()
    }

    /// `infer` recorded into `rec` without reading anything back: returns the log-softmax rows
    /// as a tensor `[B * repeat, V]` in which rows `b * repeat ..< (b + 1) * repeat` all belong
    /// to sequence b (`repeat` > 1 fans a prefill out to several samples per prompt; the LM head
    /// runs once per output row, so each row is computed exactly as a separate sequence's would
    /// be). The lengths are updated now; the caches when `rec` is submitted.
    pub fn record_infer(
        &self,
        rec: &mut Recorder,
        state: &mut DecodeState,
        chunk: &[Vec<u32>],
        real: &[usize],
        temperature: f32,
        repeat: usize,
    ) -> Result<Tensor> {
        let b = state.batch();
        let s = chunk.first().map_or(0, |c| c.len());
        if chunk.len() != b || real.len() != b || s == 0 || chunk.iter().any(|c| c.len() != s) {
            return Err(GpuError::shape(
                "infer",
                format!("{b} sequences need {b} equal-length non-empty chunks"),
            ));
        }
        let tokens = Tokens::Host(chunk, s);
        self.record_tokens(rec, state, tokens, real, temperature, repeat)
    }

    /// A decode step (one token a sequence) whose tokens are column 0 of `chosen` u32 `[B, 2]`,
    /// the sample kernel's output of the previous step, read on the GPU: the host records the
    /// step without waiting for that choice. A skipped row's token (out of range) embeds as
    /// zeros; its outputs mean nothing.
    pub(crate) fn record_decode_chosen(
        &self,
        rec: &mut Recorder,
        state: &mut DecodeState,
        chosen: &Tensor,
        temperature: f32,
    ) -> Result<Tensor> {
        let b = state.batch();
        if chosen.dtype() != DType::U32 || chosen.shape() != [b, 2] {
            return Err(GpuError::shape(
                "infer",
                format!(
                    "{b} sequences need chosen tokens u32 [{b}, 2]; got {:?} {:?}",
                    chosen.dtype(),
                    chosen.shape()
                ),
            ));
        }
        let real = vec![1; b];
        self.record_tokens(rec, state, Tokens::Chosen(chosen), &real, temperature, 1)
    }

    /// `record_infer` with the input tokens from `tokens` (checked against the state there).
    fn record_tokens(
        &self,
        rec: &mut Recorder,
        state: &mut DecodeState,
        tokens: Tokens,
        real: &[usize],
        temperature: f32,
        repeat: usize,
    ) -> Result<Tensor> {
        let b = state.batch();
        let s = match tokens {
            Tokens::Host(_, s) => s,
            Tokens::Chosen(_) => 1,
        };
        if repeat == 0 {
            return Err(GpuError::shape("infer", "repeat must be at least 1"));
        }
        if let Some(i) = (0..b)
            .find(|&i| state.own_len(i) + real[i] > state.max_len || real[i] == 0 || real[i] > s)
        {
            return Err(GpuError::shape(
                "infer",
                format!(
                    "sequence {i}: length {} + {} real tokens exceeds the cache's {} (or no real token)",
                    state.own_len(i),
                    real[i],
                    state.max_len
                ),
            ));
        }
        if state.prefix.is_some() && s != 1 {
            return Err(GpuError::shape(
                "infer",
                format!("a state reading a shared prefix decodes one token a step; got {s}"),
            ));
        }
        let c = &self.cfg;
        let ctx = self.ctx();
        let n = b * s;
        let positions: Vec<u32> = (0..n)
            .map(|r| (state.lengths[r / s] + r % s).min(self.max_positions() - 1) as u32)
            .collect();
        // Where the chunk goes in each row's own cache; with a prefix, the kernels read the
        // prefix from its caches as the table says.
        let start: Vec<u32> = (0..b).map(|i| state.own_len(i) as u32).collect();
        // The rotary positions, then where each sequence's rows go in its own cache.
        let pos_start: Vec<u32> = positions.iter().chain(&start).copied().collect();
        let pos_t = Tensor::from_u32(ctx, &[n + b], &pos_start)?;
        let start_t = Tensor::from_u32(ctx, &[b], &start)?;
        let table = match &state.prefix {
            Some(p) => {
                let qpos: Vec<u32> = state.lengths.iter().map(|&l| l as u32).collect();
                let lens: Vec<u32> = p.lens.iter().map(|&l| l as u32).collect();
                Some(PrefixTable::new(ctx, &qpos, &p.rows, &lens)?)
            }
            None => None,
        };

        let rows = b * repeat;
        let mm = Mm::for_inference(self, &state.weights, n.max(rows))?;
        let scratch = InferScratch::alloc(self, n)?;
        let x = f32_zeros(self, &[n, c.hidden_size])?;
        let table_w = &self.params.embed_tokens;
        match tokens {
            Tokens::Host(chunk, _) => {
                let ids_t = Tensor::from_u32(ctx, &[n], &chunk.concat())?;
                embedding(rec, table_w, &ids_t, &x)?;
            }
            Tokens::Chosen(chosen) => embedding_column0(rec, table_w, chosen, &x)?,
        }
        // A prefill into empty f16 caches attends over its own f32 keys and values (the
        // training kernels, causal: a right-padded row's real queries never see its padding);
        // only the single-row decode kernel reads f16 caches directly.
        let fresh_half = s > 1
            && state.prefix.is_none()
            && state.lengths.iter().all(|&l| l == 0)
            && state
                .caches
                .first()
                .is_some_and(|c| c.dtype() == DType::F16);
        let lse = if fresh_half {
            Some(f32_zeros(self, &[b, c.num_attention_heads, s])?)
        } else {
            None
        };
        let layers = &self.params.layers;
        let mut h1 = match layers.first() {
            Some(l) => Some(mm.norm_act(
                rec,
                &x,
                &l.input_layernorm,
                self.eps(),
                &scratch.qkv.h1,
                &scratch.qkv.rstd1,
            )?),
            None => None,
        };
        for (li, (l, cache)) in layers.iter().zip(&state.caches).enumerate() {
            let lw = (&mm, li);
            let shared = match (&state.prefix, &table) {
                (Some(p), Some(t)) => Some((&p.caches[li], t)),
                _ => None,
            };
            let step = LayerStep {
                cache,
                shared,
                pos: &pos_t,
                start: &start_t,
                x: &x,
                s: &scratch,
                next_norm: layers.get(li + 1).map(|n| &n.input_layernorm),
                fresh_lse: lse.as_ref(),
                batch: b,
            };
            let input = h1.take().expect("each layer leaves the next one's input");
            h1 = self.layer_infer(rec, l, lw, &input, &step)?;
        }
        // The final norm and LM head only at each sequence's last real token (once per
        // output row).
        let last: Vec<u32> = (0..rows)
            .map(|r| {
                let i = r / repeat;
                (i * s + real[i] - 1) as u32
            })
            .collect();
        let last_t = Tensor::from_u32(ctx, &[rows], &last)?;
        let x_last = f32_zeros(self, &[rows, c.hidden_size])?;
        embedding(rec, &x, &last_t, &x_last)?;
        let hidden = f32_zeros(self, &[rows, c.hidden_size])?;
        let rstd = f32_zeros(self, &[rows])?;
        let hidden_op = mm.norm_act(rec, &x_last, &self.params.norm, self.eps(), &hidden, &rstd)?;
        let logits = f32_zeros(self, &[rows, c.vocab_size])?;
        let out_w = self.params.output_embedding();
        mm.mm(
            rec,
            &hidden_op,
            &mm.out_weight(out_w),
            None,
            &logits,
            MatmulOpts::nt(),
        )?;
        let logp = f32_zeros(self, &[rows, c.vocab_size])?;
        let t = if temperature > 0.0 { temperature } else { 1.0 };
        softmax(rec, &logits, &logp, SoftmaxOpts::log().temperature(t))?;
        for (len, r) in state.lengths.iter_mut().zip(real) {
            *len += r;
        }
        Ok(logp)
    }

    /// One layer on the residual stream `x.x` (in place) from its normalised input operand
    /// `h1`, appending to the layer's cache. Returns the next layer's input operand (its
    /// input norm applied to the updated stream: decode rows cast it in the down projection's
    /// reduction), or `None` after the last layer.
    fn layer_infer(
        &self,
        rec: &mut Recorder,
        l: &crate::transformer::Layer,
        lw: (&Mm, usize),
        h1: &Operand,
        x: &LayerStep,
    ) -> Result<Option<Operand>> {
        let (a, s, eps) = (&l.self_attn, x.s, self.eps());
        // Inference keeps nothing: q and k are normalised and rotated in place, and k and v
        // appended to the cache, in one dispatch.
        self.qkv_from(rec, l, lw, h1, &s.qkv)?;
        let (q, k) = (&s.qkv.q_lin, &s.qkv.k_lin);
        let norm = match (&a.q_norm, &a.k_norm) {
            (Some(q), Some(k)) => Some(QkNorm { q, k, eps }),
            _ => None,
        };
        let to = AppendTo {
            kv: &s.kv,
            v: &s.qkv.v,
            cache: x.cache,
            batch: x.batch,
        };
        qk_norm_rope_append(rec, &self.rope, q, k, x.pos, norm.as_ref(), &to)?;
        let heads = self.attention_heads()?;
        match (x.fresh_lse, x.shared) {
            (_, Some((prefix, table))) => {
                attention_decode_shared(rec, &heads, x.cache, prefix, table, q, &s.attn)?
            }
            (Some(lse), None) => {
                let chunk = AttentionInputs {
                    batch: x.batch,
                    q,
                    k,
                    v: &s.qkv.v,
                    mask: None,
                };
                attention_forward(rec, &heads, &chunk, &s.attn, lse)?;
            }
            (None, None) => attention_decode(rec, &heads, x.cache, q, x.start, None, &s.attn)?,
        }
        let (mm, li) = lw;
        let attn = mm.act(rec, &s.attn)?;
        let w_o = mm.weight(li, Proj::O, &a.o_proj);
        let norm2 = (&l.post_attention_layernorm, eps);
        let (h2, rstd2) = (&s.mlp.h2, &s.mlp.rstd2);
        let h2 = mm.linear_acc_norm_act(rec, &attn, &w_o, &a.o_proj, x.x, norm2, h2, rstd2)?;
        let act = self.mlp_act_from(rec, l, lw, &h2, &s.mlp)?;
        let m = &l.mlp;
        let w_down = mm.weight(li, Proj::Down, &m.down_proj);
        let Some(next_norm) = x.next_norm else {
            mm.linear_acc(rec, &act, &w_down, &m.down_proj, x.x)?;
            return Ok(None);
        };
        let (h1, rstd1) = (&s.qkv.h1, &s.qkv.rstd1);
        let next = (next_norm, eps);
        let h1 = mm.linear_acc_norm_act(rec, &act, &w_down, &m.down_proj, x.x, next, h1, rstd1)?;
        Ok(Some(h1))
    }
}

/// Where a step's input tokens come from: the host (chunks of S tokens), or the previous
/// step's choices on the GPU (one a sequence).
#[derive(Clone, Copy)]
enum Tokens<'a> {
    Host(&'a [Vec<u32>], usize),
    Chosen(&'a Tensor),
}

/// What a layer of one `infer` call works with: its cache, positions, starts, the residual
/// stream, the temporaries, the next layer's input norm weight, and how a prefill attends.
struct LayerStep<'a> {
    cache: &'a KvCache,
    /// The layer's shared-prefix cache and the step's table, for a state that reads one.
    shared: Option<(&'a KvCache, &'a PrefixTable)>,
    /// The rotary positions `[B*S]`, then the starts `[B]`.
    pos: &'a Tensor,
    /// Where the chunk goes in each row's own cache.
    start: &'a Tensor,
    x: &'a Tensor,
    s: &'a InferScratch,
    next_norm: Option<&'a Tensor>,
    /// For a prefill into empty f16 caches: the attention's lse scratch `[B, Hq, S]` (it runs
    /// on the chunk's own keys and values instead of the caches).
    fresh_lse: Option<&'a Tensor>,
    batch: usize,
}

/// The temporaries of one layer for `n` tokens, shared by all layers of one `infer` call.
struct InferScratch {
    qkv: QkvActs,
    /// The buffer k and v are views of (the fused norm, rotation and append binds it once).
    kv: Tensor,
    attn: Tensor,
    mlp: MlpActs,
}

impl InferScratch {
    fn alloc(t: &Transformer, n: usize) -> Result<Self> {
        let c = &t.cfg;
        let (h, kvd) = (c.hidden_size, c.kv_dim());
        // v starts on the storage offset alignment so that it can be a view.
        let align = t.ctx().limits().min_storage_buffer_offset_alignment as usize / 4;
        let v_at = (n * kvd).next_multiple_of(align.max(1));
        let kv = f32_zeros(t, &[v_at + n * kvd])?;
        let qkv = QkvActs {
            h1: f32_zeros(t, &[n, h])?,
            rstd1: f32_zeros(t, &[n])?,
            q_lin: f32_zeros(t, &[n, c.q_dim()])?,
            k_lin: kv.view(0, &[n, kvd])?,
            v: kv.view(v_at, &[n, kvd])?,
            qk_norm: None,
        };
        Ok(InferScratch {
            qkv,
            kv,
            attn: f32_zeros(t, &[n, c.q_dim()])?,
            mlp: MlpActs::alloc(t, n)?,
        })
    }
}
