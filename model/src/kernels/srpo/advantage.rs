//! Group advantages (bonus-calibrated / GRPO / Dr.GRPO / RLOO), the zero-variance group filter
//! and the reward metrics: one dispatch of `shaders/srpo_advantage.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::config::Estimator;
use super::metrics::AdvantageMetrics;
use crate::gpu::{
    Access, DType, GpuContext, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor,
};

static SRC: ShaderSource = crate::shader!("srpo_advantage.wgsl");
static GROUP_ADVANTAGES: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "group_advantages",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    groups: u32,
    n: u32,
    estimator: u32,
    k: u32,
    flags: u32,
    _p: [u32; 3],
}

/// Outputs of `group_advantages` for G groups of n responses.
pub struct AdvantageOutputs {
    /// f32 [G*n], same order as the rewards.
    pub advantages: Tensor,
    /// u32 [G]: 1 if the group's filter score has variance > 1e-12 (an informative group).
    pub keep: Tensor,
    /// f32 [AdvantageMetrics::LEN].
    pub metrics: Tensor,
}

impl AdvantageOutputs {
    pub fn new(ctx: &GpuContext, groups: usize, n: usize) -> Result<Self> {
        Self::alloc(ctx, groups, n, Tensor::zeros)
    }

    /// Outputs pre-filled with NaN / all-ones, for tests that must notice unwritten elements.
    pub fn poisoned(ctx: &GpuContext, groups: usize, n: usize) -> Result<Self> {
        Self::alloc(ctx, groups, n, Tensor::poisoned)
    }

    fn alloc(
        ctx: &GpuContext,
        groups: usize,
        n: usize,
        make: fn(&GpuContext, &[usize], DType) -> Result<Tensor>,
    ) -> Result<Self> {
        Ok(AdvantageOutputs {
            advantages: make(ctx, &[groups * n], DType::F32)?,
            keep: make(ctx, &[groups], DType::U32)?,
            metrics: make(ctx, &[AdvantageMetrics::LEN], DType::F32)?,
        })
    }

    /// Reads the metrics back (waits for submitted work).
    pub fn read_metrics(&self) -> Result<AdvantageMetrics> {
        Ok(AdvantageMetrics::from_values(&self.metrics.to_f32_vec()?))
    }
}

/// Records the advantages of `rewards` (f32 [G*n], groups of n contiguous, n >= 2).
///
/// `exact` (u32 [G*n], nonzero = exact hit) gives the hits counted by the pass@k bonus and the
/// hit rate; without it a hit is a reward of exactly 1 (SPEC.md's definition). `filter_score`
/// (f32 [G*n]) is the score whose zero variance marks a group as uninformative (e.g. the match
/// score); without it the rewards are used. A group whose rewards have variance <= 1e-12 gets
/// zero advantages (plus its bonus under `BonusCalibrated`).
pub fn group_advantages(
    rec: &mut Recorder,
    rewards: &Tensor,
    exact: Option<&Tensor>,
    filter_score: Option<&Tensor>,
    n: usize,
    estimator: Estimator,
    out: &AdvantageOutputs,
) -> Result<()> {
    const OP: &str = "srpo_group_advantages";
    let total = rewards.numel();
    let describe = || {
        format!(
            "rewards {:?} {:?}, n {n}, exact {:?}, filter_score {:?}, advantages {:?}, keep {:?}, \
             metrics {:?}",
            rewards.dtype(),
            rewards.shape(),
            exact.map(|t| (t.dtype(), t.shape().to_vec())),
            filter_score.map(|t| (t.dtype(), t.shape().to_vec())),
            out.advantages.shape(),
            out.keep.shape(),
            out.metrics.shape(),
        )
    };
    let err = |why: &str| GpuError::shape(OP, format!("{why}: {}", describe()));
    if n < 2 {
        return Err(err(
            "group size n must be >= 2 (the unbiased std needs two samples)",
        ));
    }
    if rewards.dtype() != DType::F32
        || rewards.shape().len() != 1
        || total == 0
        || !total.is_multiple_of(n)
    {
        return Err(err("rewards must be f32 [G*n] with G >= 1"));
    }
    let groups = total / n;
    if let Estimator::BonusCalibrated { k } = estimator {
        if k == 0 {
            return Err(err("pass@k bonus needs k >= 1"));
        }
    }
    let same_len = |t: &Tensor, dt: DType| t.dtype() == dt && t.shape() == [total];
    if exact.is_some_and(|t| !same_len(t, DType::U32)) {
        return Err(err("exact must be u32 [G*n]"));
    }
    if filter_score.is_some_and(|t| !same_len(t, DType::F32)) {
        return Err(err("filter_score must be f32 [G*n]"));
    }
    if !same_len(&out.advantages, DType::F32)
        || out.keep.dtype() != DType::U32
        || out.keep.shape() != [groups]
        || out.metrics.dtype() != DType::F32
        || out.metrics.shape() != [AdvantageMetrics::LEN]
    {
        return Err(err(
            "outputs must be advantages f32 [G*n], keep u32 [G], metrics f32 [4]",
        ));
    }
    let unused = rec.ctx().unused_binding();
    let p = Params {
        groups: groups as u32,
        n: n as u32,
        estimator: estimator.code(),
        k: estimator.bonus_k(),
        flags: u32::from(exact.is_some()) | (u32::from(filter_score.is_some()) << 1),
        _p: [0; 3],
    };
    let bindings = vec![
        rewards.binding(OP)?,
        exact.map_or(Ok(unused.clone()), |t| t.binding(OP))?,
        filter_score.map_or(Ok(unused), |t| t.binding(OP))?,
        out.advantages.binding(OP)?,
        out.keep.binding(OP)?,
        out.metrics.binding(OP)?,
    ];
    rec.dispatch(&GROUP_ADVANTAGES, &[], &p, bindings, [1, 1, 1])
}
