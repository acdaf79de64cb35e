//! The f16 (or, emulated, f16-rounded f32) copies of every matmul weight that the tensor-core
//! paths multiply with, each with its power-of-two scale words (`kernels::cast_scaled`). q, k
//! and v, and gate and up, are stacked in one buffer with one scale where their offsets allow
//! it, so a decode step multiplies each stack once; the per-projection operands are views of
//! the stack, so training multiplies them one by one as before.

use std::sync::{Arc, Mutex, OnceLock};

use crate::gpu::{GpuContext, GpuError, Recorder, Result, Tensor, TrackedBuffer};
use crate::kernels::cast_scaled::{cast_scaled, cast_scaled_group};
use crate::DType;

use super::params::{Linear, Params};
use super::precision::Operand;

/// Stats slots are 64 f32 apart so every `[2]` view starts on a 256-byte boundary.
pub(crate) const SLOT: usize = 64;

/// The cast copies of every matmul weight (the seven projections of each layer and the
/// output embedding), in the operand dtype, with their scale words.
pub(crate) struct HalfWeights {
    pub(crate) layers: Vec<LayerWeights>,
    pub(crate) out: Operand,
    /// The masters' buffers and write counts as of the last submitted `refresh_if_stale`.
    cast_from: Mutex<Vec<Stamp>>,
}

/// A buffer and how many writes it had seen (`TrackedBuffer::writes`).
struct Stamp(Arc<TrackedBuffer>, u64);

impl PartialEq for Stamp {
    fn eq(&self, o: &Stamp) -> bool {
        Arc::ptr_eq(&self.0, &o.0) && self.1 == o.1
    }
}

/// Every master a refresh reads, stamped now.
fn stamps(p: &Params) -> Vec<Stamp> {
    p.layers
        .iter()
        .flat_map(|l| layer_linears(l).map(|lin| &lin.weight))
        .chain([p.output_embedding()])
        .map(|t| Stamp(t.buffer.clone(), t.buffer.writes()))
        .collect()
}

/// One layer's cast weights. q, k and v (and gate and up) live stacked in one buffer with one
/// scale where the views' offsets allow it, so a decode step multiplies each stack once
/// (`matmul_rows`' split and SwiGLU outputs); the per-projection operands are views of it.
pub(crate) struct LayerWeights {
    /// q, k, v, o, gate, up, down.
    pub(crate) proj: [Operand; 7],
    pub(crate) qkv: Option<Operand>,
    pub(crate) gate_up: Option<Operand>,
}

/// Which projection of a layer.
#[derive(Clone, Copy)]
pub(crate) enum Proj {
    Q = 0,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

fn layer_linears(l: &super::params::Layer) -> [&Linear; 7] {
    let (a, m) = (&l.self_attn, &l.mlp);
    [
        &a.q_proj,
        &a.k_proj,
        &a.v_proj,
        &a.o_proj,
        &m.gate_proj,
        &m.up_proj,
        &m.down_proj,
    ]
}

/// Weights `ws` (all `[_, K]`) stacked into one new buffer with one scale slot: the stack and
/// a view per weight, or `None` when a view would not start on the storage offset alignment.
fn stack(ws: &[&Tensor], dtype: DType, scale: &Tensor) -> Result<Option<(Operand, Vec<Operand>)>> {
    let ctx = ws[0].ctx();
    let k = ws[0].shape()[1];
    let rows: usize = ws.iter().map(|w| w.shape()[0]).sum();
    let align = ctx.limits().min_storage_buffer_offset_alignment as usize;
    let mut starts = Vec::new();
    let mut at = 0;
    for w in ws {
        if w.shape()[1] != k || !(at * dtype.size_bytes()).is_multiple_of(align) {
            return Ok(None);
        }
        starts.push(at);
        at += w.numel();
    }
    let whole = Tensor::zeros(ctx, &[rows, k], dtype)?;
    let op = |t: Tensor| Operand {
        t,
        scale: Some(scale.clone()),
        rows: None,
    };
    let views = ws
        .iter()
        .zip(starts)
        .map(|(w, s)| Ok(op(whole.view(s, w.shape())?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(Some((op(whole), views)))
}

/// Scale slots (views of one stats buffer) handed out in order.
struct Slots {
    stats: Tensor,
    next: usize,
}

impl Slots {
    fn take(&mut self) -> Result<Tensor> {
        let s = self.stats.view(self.next * SLOT, &[2])?;
        self.next += 1;
        Ok(s)
    }
}

/// A weight's own cast copy with its own scale.
fn alone(w: &Tensor, dtype: DType, slots: &mut Slots) -> Result<Operand> {
    Ok(Operand {
        t: Tensor::zeros(w.ctx(), w.shape(), dtype)?,
        scale: Some(slots.take()?),
        rows: None,
    })
}

/// Weights stacked with one scale (views pushed to `proj`), or each alone when they cannot be.
fn group(
    ws: &[&Tensor],
    dtype: DType,
    slots: &mut Slots,
    proj: &mut Vec<Operand>,
) -> Result<Option<Operand>> {
    let scale = slots.take()?;
    if let Some((whole, views)) = stack(ws, dtype, &scale)? {
        proj.extend(views);
        return Ok(Some(whole));
    }
    for w in ws {
        proj.push(alone(w, dtype, slots)?);
    }
    Ok(None)
}

impl HalfWeights {
    pub(crate) fn alloc(p: &Params, dtype: DType) -> Result<Self> {
        let ctx = p.embed_tokens.ctx();
        // At most one slot per weight plus one per stack.
        let count = p.layers.len() * 9 + 1;
        let mut slots = Slots {
            stats: Tensor::zeros(ctx, &[count * SLOT], DType::F32)?,
            next: 0,
        };
        let mut layers = Vec::with_capacity(p.layers.len());
        for l in &p.layers {
            let w: Vec<&Tensor> = layer_linears(l).iter().map(|l| &l.weight).collect();
            let mut proj = Vec::with_capacity(7);
            let qkv = group(&w[0..3], dtype, &mut slots, &mut proj)?;
            proj.push(alone(w[3], dtype, &mut slots)?);
            let gate_up = group(&w[4..6], dtype, &mut slots, &mut proj)?;
            proj.push(alone(w[6], dtype, &mut slots)?);
            let proj: [Operand; 7] = proj
                .try_into()
                .map_err(|_| GpuError::shape("half weights", "a layer has seven projections"))?;
            layers.push(LayerWeights { proj, qkv, gate_up });
        }
        let out = alone(p.output_embedding(), dtype, &mut slots)?;
        Ok(HalfWeights {
            layers,
            out,
            cast_from: Mutex::new(Vec::new()),
        })
    }

    /// `refresh` in a submission of its own, skipped when no master was written since the
    /// last one (inference calls between optimizer steps: a beam-search call cast 0.6B
    /// weights, two passes over 2.3 GB, to get the copies it already had).
    pub(crate) fn refresh_if_stale(&self, ctx: &GpuContext, p: &Params) -> Result<()> {
        let now = stamps(p);
        let mut last = self.cast_from.lock().expect("cast stamps");
        if *last == now {
            return Ok(());
        }
        let mut rec = Recorder::new(ctx, "cast-weights");
        self.refresh(&mut rec, p)?;
        rec.submit()?;
        *last = now;
        Ok(())
    }

    /// Casts every weight from the f32 masters (a stack with its one scale), recorded into
    /// `rec` (the copies are fresh whoever wrote the masters, whenever `rec` is submitted).
    pub(crate) fn refresh(&self, rec: &mut Recorder, p: &Params) -> Result<()> {
        for (l, h) in p.layers.iter().zip(&self.layers) {
            let ls = layer_linears(l);
            let mut cast = |range: std::ops::Range<usize>, stacked: bool| -> Result<()> {
                let ops = &h.proj[range.clone()];
                if stacked {
                    let xs: Vec<&Tensor> = ls[range].iter().map(|l| &l.weight).collect();
                    let outs: Vec<&Tensor> = ops.iter().map(|o| &o.t).collect();
                    return cast_scaled_group(rec, &xs, ops[0].scale.as_ref().unwrap(), &outs);
                }
                for (lin, o) in ls[range].iter().zip(ops) {
                    cast_scaled(rec, &lin.weight, o.scale.as_ref().unwrap(), &o.t)?;
                }
                Ok(())
            };
            cast(0..3, h.qkv.is_some())?;
            cast(3..4, false)?;
            cast(4..6, h.gate_up.is_some())?;
            cast(6..7, false)?;
        }
        let o = &self.out;
        cast_scaled(rec, p.output_embedding(), o.scale.as_ref().unwrap(), &o.t)
    }
}

/// Lazily allocated cast weights of one `Transformer` (allocated by the first forward that
/// needs them; `with_matmul_precision` drops them).
#[derive(Default)]
pub(crate) struct HalfWeightsCell(OnceLock<Arc<HalfWeights>>);

impl HalfWeightsCell {
    pub(crate) fn get(&self, p: &Params, dtype: DType) -> Result<Arc<HalfWeights>> {
        if let Some(w) = self.0.get() {
            return Ok(w.clone());
        }
        let w = Arc::new(HalfWeights::alloc(p, dtype)?);
        // A concurrent first forward may have won; either copy is equivalent.
        Ok(self.0.get_or_init(|| w).clone())
    }
}
