//! Token-level clipped-surrogate + KL loss over a packed batch of responses, the gradient with
//! respect to each token's new log-prob, and the loss metrics: three dispatches of
//! `shaders/srpo_loss.wgsl` recorded back to back (no readback in between).

use bytemuck::{Pod, Zeroable};

use super::config::SrpoConfig;
use super::metrics::LossMetrics;
use crate::gpu::{
    grid_1d, Access, DType, GpuContext, GpuError, KernelEntry, Recorder, Result, ShaderSource,
    Tensor,
};

static SRC: ShaderSource = crate::shader!("srpo_loss.wgsl");
const BINDINGS: &[Access] = &[
    Access::Read,      // new log-probs
    Access::Read,      // old log-probs
    Access::Read,      // reference log-probs
    Access::Read,      // advantages
    Access::Read,      // loss mask
    Access::Read,      // sequence offsets
    Access::Read,      // entropy
    Access::ReadWrite, // scratch
    Access::ReadWrite, // grad
    Access::ReadWrite, // loss
    Access::ReadWrite, // metrics
];
static SEQ_STATS: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "seq_stats",
    bindings: BINDINGS,
};
static TOKEN_LOSS: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "token_loss",
    bindings: BINDINGS,
};
static FINALIZE: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "finalize",
    bindings: BINDINGS,
};

/// Tokens per `token_loss` workgroup and partial sums per workgroup (as in the shader).
const WG: usize = 256;
const NSTAT: usize = 8;
const GLOBALS: usize = 4;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    n_tok: u32,
    n_seq: u32,
    n_wg: u32,
    flags: u32,
    agg: u32,
    kl_est: u32,
    _p0: [u32; 2],
    eps_low: f32,
    eps_high: f32,
    dual_clip: f32,
    kl_coef: f32,
    kl_clamp: f32,
    log_ratio_clamp: f32,
    scale: f32,
    _p1: f32,
}

/// Advantages given per token (f32 [Ntok]) or per sequence (f32 [S], broadcast to its tokens).
#[derive(Clone, Copy, Debug)]
pub enum TokenAdvantages<'a> {
    PerToken(&'a Tensor),
    PerSequence(&'a Tensor),
}

/// A packed batch of S responses, Ntok tokens in all. Sequence s owns tokens
/// `[seq_offsets[s], seq_offsets[s+1])`; the offsets must be non-decreasing from 0 to Ntok (the
/// kernels trust them: they live on the GPU).
#[derive(Clone, Copy, Debug)]
pub struct PolicyLossInputs<'a> {
    /// f32 [Ntok]: log-probs of the sampled tokens under the policy being trained.
    pub new_logp: &'a Tensor,
    /// f32 [Ntok]: log-probs under the behaviour policy that sampled them.
    pub old_logp: &'a Tensor,
    /// f32 [Ntok]: log-probs under the frozen reference (required when kl_coef > 0).
    pub ref_logp: Option<&'a Tensor>,
    pub advantages: TokenAdvantages<'a>,
    /// u32 [Ntok]: nonzero = the token counts (response tokens); others get zero gradient.
    pub mask: &'a Tensor,
    /// u32 [S+1].
    pub seq_offsets: &'a Tensor,
    /// f32 [Ntok]: per-token entropy from the cross-entropy kernel, averaged into the metrics.
    pub entropy: Option<&'a Tensor>,
}

/// Outputs of `policy_loss` for Ntok tokens.
pub struct PolicyLossOutputs {
    /// f32 [1]: scale * (pg_loss + kl_coef * kl_loss).
    pub loss: Tensor,
    /// f32 [Ntok]: d loss / d new_logp (0 on masked tokens and where a clip or clamp is active).
    pub grad: Tensor,
    /// f32 [LossMetrics::LEN].
    pub metrics: Tensor,
}

impl PolicyLossOutputs {
    pub fn new(ctx: &GpuContext, n_tok: usize) -> Result<Self> {
        Self::alloc(ctx, n_tok, Tensor::zeros)
    }

    /// Outputs pre-filled with NaN, for tests that must notice unwritten elements.
    pub fn poisoned(ctx: &GpuContext, n_tok: usize) -> Result<Self> {
        Self::alloc(ctx, n_tok, Tensor::poisoned)
    }

    fn alloc(
        ctx: &GpuContext,
        n_tok: usize,
        make: fn(&GpuContext, &[usize], DType) -> Result<Tensor>,
    ) -> Result<Self> {
        Ok(PolicyLossOutputs {
            loss: make(ctx, &[1], DType::F32)?,
            grad: make(ctx, &[n_tok], DType::F32)?,
            metrics: make(ctx, &[LossMetrics::LEN], DType::F32)?,
        })
    }

    /// Reads the metrics back (waits for submitted work).
    pub fn read_metrics(&self) -> Result<LossMetrics> {
        Ok(LossMetrics::from_values(&self.metrics.to_f32_vec()?))
    }
}

fn check(
    x: &PolicyLossInputs,
    cfg: &SrpoConfig,
    out: &PolicyLossOutputs,
) -> Result<(usize, usize)> {
    const OP: &str = "srpo_policy_loss";
    let desc = |t: &Tensor| format!("{:?} {:?}", t.dtype(), t.shape());
    let opt = |t: Option<&Tensor>| t.map_or("none".to_string(), desc);
    let (adv_kind, adv) = match x.advantages {
        TokenAdvantages::PerToken(t) => ("per-token", t),
        TokenAdvantages::PerSequence(t) => ("per-sequence", t),
    };
    let err = |why: &str| {
        GpuError::shape(
            OP,
            format!(
                "{why}: new_logp {}, old_logp {}, ref_logp {}, {adv_kind} advantages {}, mask {}, \
                 seq_offsets {}, entropy {}, loss {}, grad {}, metrics {}",
                desc(x.new_logp),
                desc(x.old_logp),
                opt(x.ref_logp),
                desc(adv),
                desc(x.mask),
                desc(x.seq_offsets),
                opt(x.entropy),
                desc(&out.loss),
                desc(&out.grad),
                desc(&out.metrics),
            ),
        )
    };
    let n_tok = x.new_logp.numel();
    let is = |t: &Tensor, dt: DType, len: usize| t.dtype() == dt && t.shape() == [len];
    if !is(x.new_logp, DType::F32, n_tok) {
        return Err(err("new_logp must be f32 [Ntok]"));
    }
    if !is(x.old_logp, DType::F32, n_tok) {
        return Err(err("old_logp must be f32 [Ntok] like new_logp"));
    }
    if x.ref_logp.is_some_and(|t| !is(t, DType::F32, n_tok)) {
        return Err(err("ref_logp must be f32 [Ntok] like new_logp"));
    }
    if x.entropy.is_some_and(|t| !is(t, DType::F32, n_tok)) {
        return Err(err("entropy must be f32 [Ntok] like new_logp"));
    }
    if !is(x.mask, DType::U32, n_tok) {
        return Err(err("mask must be u32 [Ntok] like new_logp"));
    }
    let n_seq = match x.seq_offsets.shape() {
        [s1] if *s1 >= 2 && x.seq_offsets.dtype() == DType::U32 => s1 - 1,
        _ => return Err(err("seq_offsets must be u32 [S+1] with S >= 1")),
    };
    let adv_len = match x.advantages {
        TokenAdvantages::PerToken(_) => n_tok,
        TokenAdvantages::PerSequence(_) => n_seq,
    };
    if !is(adv, DType::F32, adv_len) {
        return Err(err(
            "advantages must be f32 [Ntok] per token or [S] per sequence",
        ));
    }
    if !is(&out.loss, DType::F32, 1)
        || !is(&out.grad, DType::F32, n_tok)
        || !is(&out.metrics, DType::F32, LossMetrics::LEN)
    {
        return Err(err(
            "outputs must be loss f32 [1], grad f32 [Ntok], metrics f32 [11]",
        ));
    }
    if cfg.kl_coef > 0.0 && x.ref_logp.is_none() {
        return Err(err(
            "kl_coef > 0 needs reference log-probs (pass ref_logp or set kl_coef = 0)",
        ));
    }
    cfg.validate().map_err(|e| err(&e))?;
    Ok((n_tok, n_seq))
}

/// Records the loss `scale * (pg + kl_coef * kl)` aggregated per `cfg.agg`, its gradient with
/// respect to `new_logp` and the metrics. `scale` multiplies loss and gradient (1 for a whole
/// mini-batch; e.g. tokens_in_micro_batch / tokens_in_mini_batch when a token-mean mini-batch is
/// split into micro-batches). The estimator fields of `cfg` are not used here.
pub fn policy_loss(
    rec: &mut Recorder,
    x: &PolicyLossInputs,
    cfg: &SrpoConfig,
    scale: f32,
    out: &PolicyLossOutputs,
) -> Result<()> {
    const OP: &str = "srpo_policy_loss";
    let (n_tok, n_seq) = check(x, cfg, out)?;
    let n_wg = n_tok.div_ceil(WG);
    let ctx = rec.ctx().clone();
    let scratch = Tensor::zeros(&ctx, &[GLOBALS + n_seq + n_wg * NSTAT], DType::F32)?;
    let (adv, per_seq) = match x.advantages {
        TokenAdvantages::PerToken(t) => (t, false),
        TokenAdvantages::PerSequence(t) => (t, true),
    };
    let unused = ctx.unused_binding();
    let opt = |t: Option<&Tensor>| t.map_or(Ok(unused.clone()), |t| t.binding(OP));
    let bindings = vec![
        x.new_logp.binding(OP)?,
        x.old_logp.binding(OP)?,
        opt(x.ref_logp)?,
        adv.binding(OP)?,
        x.mask.binding(OP)?,
        x.seq_offsets.binding(OP)?,
        opt(x.entropy)?,
        scratch.binding(OP)?,
        out.grad.binding(OP)?,
        out.loss.binding(OP)?,
        out.metrics.binding(OP)?,
    ];
    let p = Params {
        n_tok: n_tok as u32,
        n_seq: n_seq as u32,
        n_wg: n_wg as u32,
        flags: u32::from(x.ref_logp.is_some())
            | (u32::from(per_seq) << 1)
            | (u32::from(x.entropy.is_some()) << 2),
        agg: cfg.agg.code(),
        kl_est: cfg.kl_estimator.code(),
        _p0: [0; 2],
        eps_low: cfg.eps_low,
        eps_high: cfg.eps_high,
        dual_clip: cfg.dual_clip,
        kl_coef: if x.ref_logp.is_some() {
            cfg.kl_coef
        } else {
            0.0
        },
        kl_clamp: cfg.kl_clamp,
        log_ratio_clamp: cfg.log_ratio_clamp,
        scale,
        _p1: 0.0,
    };
    rec.dispatch(&SEQ_STATS, &[], &p, bindings.clone(), [1, 1, 1])?;
    let grid = grid_1d(n_wg as u32, rec.max_groups());
    rec.dispatch(&TOKEN_LOSS, &[], &p, bindings.clone(), grid)?;
    rec.dispatch(&FINALIZE, &[], &p, bindings, [1, 1, 1])
}
