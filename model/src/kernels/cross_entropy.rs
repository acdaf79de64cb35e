//! Fused cross-entropy over vocabulary-sized rows: per-row logsumexp, target log-prob, loss and
//! entropy in one read of the logits, and the gradient written in place over the logits (either
//! fused into the same pass when the per-row coefficient is known up front, as in SFT, or as a
//! second pass from the stored logsumexp, as in RL where the coefficient depends on the
//! log-probs). Temperature-scaled: z = logits / T; gradients are with respect to the raw logits.

use bytemuck::{Pod, Zeroable};

use super::window_plan::{fits_u32, row_windows};
use crate::gpu::{
    grid_1d, Access, Binding, DType, GpuContext, GpuError, KernelEntry, Recorder, Result,
    ShaderSource, Tensor,
};

/// Target value of a row that contributes no loss and no gradient (padding, prompt tokens).
pub const IGNORE_INDEX: u32 = u32::MAX;

static SRC: ShaderSource = crate::shader!("cross_entropy.wgsl");
static FORWARD: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "forward",
    bindings: &[
        Access::ReadWrite, // logits (gradient written in place when fused)
        Access::Read,      // targets
        Access::Read,      // coef
        Access::ReadWrite, // lse
        Access::ReadWrite, // logprob
        Access::ReadWrite, // loss
        Access::ReadWrite, // entropy
    ],
};
static BACKWARD: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "backward",
    // The lse slot is declared read_write in the shader (shared with `forward`); only read here.
    bindings: &[
        Access::ReadWrite,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
    ],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    rows: u32,
    v: u32,
    base: u32,
    flags: u32,
    inv_tau: f32,
    row0: u32,
    _p: [u32; 2],
}

/// Per-row results of the forward, each an f32 tensor `[R]`.
/// Ignored rows get logprob = loss = 0; lse and entropy are reported for every row.
#[derive(Clone, Debug)]
pub struct CeStats {
    /// log sum_v exp(z_v)
    pub lse: Tensor,
    /// z_target - lse
    pub logprob: Tensor,
    /// -logprob
    pub loss: Tensor,
    /// -sum_v p_v log p_v of p = softmax(z)
    pub entropy: Tensor,
}

impl CeStats {
    pub fn zeros(ctx: &GpuContext, rows: usize) -> Result<Self> {
        Self::make(|| Tensor::zeros(ctx, &[rows], DType::F32))
    }
    /// NaN-filled, for tests that must notice unwritten outputs.
    pub fn poisoned(ctx: &GpuContext, rows: usize) -> Result<Self> {
        Self::make(|| Tensor::poisoned(ctx, &[rows], DType::F32))
    }
    fn make(f: impl Fn() -> Result<Tensor>) -> Result<Self> {
        Ok(CeStats {
            lse: f()?,
            logprob: f()?,
            loss: f()?,
            entropy: f()?,
        })
    }
}

/// Rows and vocabulary size after validating `logits [R, V]`, `targets u32 [R]` and the f32
/// `[R]` per-row tensors.
fn check(
    op: &'static str,
    logits: &Tensor,
    targets: &Tensor,
    per_row: &[(&str, &Tensor)],
    temperature: f32,
) -> Result<(usize, usize)> {
    let err = |why: &str| {
        let rest: String = per_row
            .iter()
            .map(|(n, t)| format!(", {n} {:?} {:?}", t.shape(), t.dtype()))
            .collect();
        GpuError::shape(
            op,
            format!(
                "{why}: logits {:?} {:?}, targets {:?} {:?}{rest}",
                logits.shape(),
                logits.dtype(),
                targets.shape(),
                targets.dtype()
            ),
        )
    };
    let (r, v) = match logits.shape() {
        [r, v] => (*r, *v),
        _ => return Err(err("logits must be [R, V]")),
    };
    if logits.dtype() != DType::F32 {
        return Err(err("logits must be f32"));
    }
    if v == 0 {
        return Err(err("the vocabulary is empty"));
    }
    if targets.dtype() != DType::U32 || targets.shape() != [r] {
        return Err(err("targets must be u32 [R]"));
    }
    for (name, t) in per_row {
        if t.dtype() != DType::F32 || t.shape() != [r] {
            return Err(err(&format!("{name} must be f32 [R]")));
        }
    }
    if !(temperature.is_finite() && temperature > 0.0 && (1.0 / temperature).is_finite()) {
        return Err(err(&format!(
            "temperature {temperature} must be finite and > 0"
        )));
    }
    Ok((r, v))
}

fn params(
    op: &'static str,
    w_rows: usize,
    v: usize,
    base: usize,
    row0: usize,
    t: f32,
    flags: u32,
) -> Result<Params> {
    Ok(Params {
        rows: fits_u32(op, "rows", w_rows)?,
        v: fits_u32(op, "V", v)?,
        base: base as u32,
        flags,
        inv_tau: 1.0 / t,
        row0: fits_u32(op, "row", row0)?,
        _p: [0; 2],
    })
}

fn forward_impl(
    op: &'static str,
    rec: &mut Recorder,
    logits: &Tensor,
    targets: &Tensor,
    coef: Option<&Tensor>,
    stats: &CeStats,
    temperature: f32,
) -> Result<()> {
    let mut per_row = vec![
        ("lse", &stats.lse),
        ("logprob", &stats.logprob),
        ("loss", &stats.loss),
        ("entropy", &stats.entropy),
    ];
    if let Some(c) = coef {
        per_row.push(("coef", c));
    }
    let (r, v) = check(op, logits, targets, &per_row, temperature)?;
    let ctx = rec.ctx().clone();
    let coef_b: Binding = match coef {
        Some(c) => c.binding(op)?,
        None => ctx.unused_binding(),
    };
    for w in row_windows(&ctx, op, r, v)? {
        let p = params(
            op,
            w.rows,
            v,
            w.base,
            w.row0,
            temperature,
            u32::from(coef.is_some()),
        )?;
        let binds = vec![
            logits.binding_range(op, w.start, w.len)?,
            targets.binding(op)?,
            coef_b.clone(),
            stats.lse.binding(op)?,
            stats.logprob.binding(op)?,
            stats.loss.binding(op)?,
            stats.entropy.binding(op)?,
        ];
        rec.dispatch(&FORWARD, &[], &p, binds, grid_1d(p.rows, rec.max_groups()))?;
    }
    Ok(())
}

/// Per-row lse, target log-prob, loss and entropy of `softmax(logits / temperature)`.
/// `logits` f32 `[R, V]` (left unchanged), `targets` u32 `[R]` (`IGNORE_INDEX` skips a row).
pub fn cross_entropy_forward(
    rec: &mut Recorder,
    logits: &Tensor,
    targets: &Tensor,
    stats: &CeStats,
    temperature: f32,
) -> Result<()> {
    forward_impl(
        "cross_entropy_forward",
        rec,
        logits,
        targets,
        None,
        stats,
        temperature,
    )
}

/// The forward, then the gradient in place in the same pass:
/// `logits[r, v] <- coef[r] / T * (softmax(logits[r] / T)[v] - [v == targets[r]])`
/// (zero on ignored rows). `coef` f32 `[R]`, e.g. 1 / (number of non-ignored tokens) for a
/// token-mean SFT loss. `stats` hold the forward's values (computed before the overwrite).
pub fn cross_entropy_fused(
    rec: &mut Recorder,
    logits: &Tensor,
    targets: &Tensor,
    coef: &Tensor,
    stats: &CeStats,
    temperature: f32,
) -> Result<()> {
    forward_impl(
        "cross_entropy_fused",
        rec,
        logits,
        targets,
        Some(coef),
        stats,
        temperature,
    )
}

/// The gradient alone, in place over unchanged logits, from the `lse` [R] a
/// `cross_entropy_forward` at the same temperature produced: same formula as
/// `cross_entropy_fused`. For RL, `coef[r]` = -dL/d(logprob_r).
pub fn cross_entropy_backward(
    rec: &mut Recorder,
    logits: &Tensor,
    targets: &Tensor,
    coef: &Tensor,
    lse: &Tensor,
    temperature: f32,
) -> Result<()> {
    const OP: &str = "cross_entropy_backward";
    let (r, v) = check(
        OP,
        logits,
        targets,
        &[("coef", coef), ("lse", lse)],
        temperature,
    )?;
    if coef.buffer() == lse.buffer() {
        return Err(GpuError::shape(OP, "coef and lse must be distinct buffers"));
    }
    let ctx = rec.ctx().clone();
    for w in row_windows(&ctx, OP, r, v)? {
        let p = params(OP, w.rows, v, w.base, w.row0, temperature, 0)?;
        let binds = vec![
            logits.binding_range(OP, w.start, w.len)?,
            targets.binding(OP)?,
            coef.binding(OP)?,
            lse.binding(OP)?,
        ];
        rec.dispatch(&BACKWARD, &[], &p, binds, grid_1d(p.rows, rec.max_groups()))?;
    }
    Ok(())
}
