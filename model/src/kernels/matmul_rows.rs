//! Tensor-core matmul for decode-sized row counts (shaders/matmul_rows.wgsl, then
//! shaders/matmul_rows_reduce.wgsl): `C = diag(inv_a) (A B^T) inv_b (+ bias) (+ C)` with A f16
//! rows scaled one power of two per row ([`quantize_rows`](super::quantize_rows)) and B an f16
//! weight `[N, K]` with its per-tensor scale words. The first pass splits K over the grid so a
//! 64-row product still has a few hundred workgroups; the second sums the splits in order and
//! undoes the scales.

use bytemuck::{Pod, Zeroable};

use super::matmul::coop16_available;
use crate::gpu::{
    grid_1d, Access, DType, GpuContext, GpuError, KernelEntry, Recorder, Result, ShaderSource,
    Tensor,
};

static SRC: ShaderSource = crate::shader!("matmul_rows.wgsl");
static MATMUL_ROWS: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "main",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};
static REDUCE_SRC: ShaderSource = crate::shader!("matmul_rows_reduce.wgsl");
static REDUCE: KernelEntry = KernelEntry {
    source: &REDUCE_SRC,
    entry: "main",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
    ],
};

const BIAS: u32 = 1;
const ACCUMULATE: u32 = 2;
/// Output block of one workgroup of the first pass.
const BLOCK_ROWS: usize = 64;
const BLOCK_COLS: usize = 32;
/// K per staged round; K splits are whole rounds.
const ROUND: usize = 64;
/// Workgroups the split count aims for: about three per SM on a 132-SM H100 (each holds
/// 14 KiB of workgroup memory), enough loads in flight to cover the latency.
const TARGET_GROUPS: usize = 400;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    m_pad: u32,
    n: u32,
    k: u32,
    k_split: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct ReduceParams {
    m: u32,
    n: u32,
    m_pad: u32,
    splits: u32,
    c_rs: u32,
    c_col0: u32,
    bias_off: u32,
    flags: u32,
}

/// Whether a product of N columns over K takes [`matmul_rows`] on an adapter that has it: at
/// least 16 columns (any count: the last block overlaps its neighbour) and K a multiple of 32.
pub fn matmul_rows_shape_fits(n: usize, k: usize) -> bool {
    n >= 16 && k >= 32 && k.is_multiple_of(32)
}

/// Whether this adapter and shape take [`matmul_rows`]: cooperative matrices and
/// [`matmul_rows_shape_fits`].
pub fn matmul_rows_fits(ctx: &GpuContext, n: usize, k: usize) -> bool {
    coop16_available(ctx) && matmul_rows_shape_fits(n, k)
}

/// The A operand: `t` f16 `[m_pad, K]` and `inv` f32 `[m_pad]` as written by `quantize_rows`,
/// of which the first `m` rows are real.
pub struct RowsOperand<'a> {
    pub t: &'a Tensor,
    pub inv: &'a Tensor,
    pub m: usize,
}

/// K splits for a grid of `blocks` output blocks: enough for `TARGET_GROUPS` workgroups, each
/// split at least one round.
fn default_splits(blocks: usize, k: usize) -> usize {
    TARGET_GROUPS
        .div_ceil(blocks.max(1))
        .clamp(1, k.div_ceil(ROUND))
}

/// `c = diag(a.inv) (a.t b^T) b_scale[1] (+ bias) (+ c if accumulate)`, `c` f32 `[m, N]`.
pub fn matmul_rows(
    rec: &mut Recorder,
    a: &RowsOperand,
    b: &Tensor,
    b_scale: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    accumulate: bool,
) -> Result<()> {
    matmul_rows_with(rec, a, b, b_scale, bias, c, accumulate, None)
}

/// [`matmul_rows`] with `splits` K splits instead of the default (tests cover several).
#[allow(clippy::too_many_arguments)]
#[doc(hidden)]
pub fn matmul_rows_with(
    rec: &mut Recorder,
    a: &RowsOperand,
    b: &Tensor,
    b_scale: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    accumulate: bool,
    splits: Option<usize>,
) -> Result<()> {
    let op = "matmul_rows";
    let (m_pad, k) = match *a.t.shape() {
        [r, k] => (r, k),
        _ => {
            return Err(GpuError::shape(
                op,
                format!("A must be 2-D, got {:?}", a.t.shape()),
            ))
        }
    };
    let n = b.shape().first().copied().unwrap_or(0);
    let m = a.m;
    let shapes_ok = a.t.dtype() == DType::F16
        && b.dtype() == DType::F16
        && b.shape() == [n, k]
        && a.inv.dtype() == DType::F32
        && a.inv.shape() == [m_pad]
        && m_pad >= m
        && m_pad.is_multiple_of(16)
        && b_scale.dtype() == DType::F32
        && b_scale.numel() == 2
        && c.dtype() == DType::F32
        && c.shape() == [m, n]
        && bias.is_none_or(|t| t.dtype() == DType::F32 && t.shape() == [n])
        && splits != Some(0);
    if !shapes_ok {
        return Err(GpuError::shape(
            op,
            format!(
                "expects f16 A [m_pad % 16 == 0, K] with f32 inv [m_pad], f16 B [N, K], f32 \
                 b_scale [2], f32 C [m <= m_pad, N], f32 bias [N], splits >= 1; got A {:?} {:?}, \
                 inv {:?}, m {m}, B {:?} {:?}, b_scale {:?}, C {:?} {:?}, bias {:?}, splits {splits:?}",
                a.t.dtype(),
                a.t.shape(),
                a.inv.shape(),
                b.dtype(),
                b.shape(),
                b_scale.shape(),
                c.dtype(),
                c.shape(),
                bias.map(|t| t.shape().to_vec())
            ),
        ));
    }
    if !matmul_rows_fits(rec.ctx(), n, k) {
        return Err(GpuError::shape(
            op,
            format!(
                "needs cooperative matrices, N >= 16 and K % 32 == 0; got N {n}, K {k} on {}",
                rec.ctx().info().name
            ),
        ));
    }
    if m == 0 {
        return Ok(());
    }
    let mut flags = 0;
    if bias.is_some() {
        flags |= BIAS;
    }
    if accumulate {
        flags |= ACCUMULATE;
    }
    let ctx = rec.ctx().clone();
    let limit = ctx.max_binding_bytes();
    let bias_b = match bias {
        Some(t) => t.binding(op)?,
        None => ctx.unused_binding(),
    };
    // Weight windows of whole 16-row tiles whose weight rows and one split of partial sums fit
    // a binding (the f16 LM head can exceed one).
    let rows_fit = (limit / (k * 2) as u64).min(limit / (m_pad * 4) as u64) as usize;
    let per = (rows_fit / 16 * 16).max(16);
    for (n0, nw) in weight_windows(n, per)? {
        let blocks = nw.div_ceil(BLOCK_COLS) * m_pad.div_ceil(BLOCK_ROWS);
        let want = splits.unwrap_or_else(|| default_splits(blocks, k));
        let most = (limit / (m_pad * nw * 4) as u64).max(1) as usize;
        let k_split = k.div_ceil(want.min(most)).div_ceil(ROUND) * ROUND;
        let z = k.div_ceil(k_split);
        let part = rec.scratch_f32(z * m_pad * nw)?;
        let p = Params {
            m_pad: m_pad as u32,
            n: nw as u32,
            k: k as u32,
            k_split: k_split as u32,
        };
        let part_b = part.binding_range(op, 0, z * m_pad * nw)?;
        let binds = vec![
            a.t.binding(op)?,
            b.rows(n0, nw)?.binding(op)?,
            part_b.clone(),
        ];
        let groups = [
            nw.div_ceil(BLOCK_COLS) as u32,
            m_pad.div_ceil(BLOCK_ROWS) as u32,
            z as u32,
        ];
        rec.dispatch(&MATMUL_ROWS, &[], &p, binds, groups)?;
        let rp = ReduceParams {
            m: m as u32,
            n: nw as u32,
            m_pad: m_pad as u32,
            splits: z as u32,
            c_rs: n as u32,
            c_col0: n0 as u32,
            bias_off: n0 as u32,
            flags,
        };
        let binds = vec![
            part_b,
            a.inv.binding(op)?,
            b_scale.binding(op)?,
            bias_b.clone(),
            c.binding(op)?,
        ];
        let groups = grid_1d(((m * nw) as u32).div_ceil(256), rec.max_groups());
        rec.dispatch(&REDUCE, &[], &rp, binds, groups)?;
    }
    Ok(())
}

/// `[n0, n0 + len)` windows of at most `per` weight rows (a multiple of 16), none shorter than
/// 16 (the kernel's last strip ends at its window's end): a short tail takes 16 rows from the
/// window before it.
fn weight_windows(n: usize, per: usize) -> Result<Vec<(usize, usize)>> {
    let mut w: Vec<(usize, usize)> = (0..n).step_by(per).map(|s| (s, per.min(n - s))).collect();
    let k = w.len();
    if k >= 2 && w[k - 1].1 < 16 {
        if w[k - 2].1 < 32 {
            return Err(GpuError::shape(
                "matmul_rows",
                format!("the binding limit leaves windows of {per} weight rows"),
            ));
        }
        w[k - 2].1 -= 16;
        w[k - 1] = (w[k - 1].0 - 16, w[k - 1].1 + 16);
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::weight_windows;

    #[test]
    fn windows_cover_every_row_once_and_none_is_short() {
        for (n, per) in [
            (213, 96),
            (200, 96),
            (16, 96),
            (97, 32),
            (4096, 4096),
            (4111, 4096),
        ] {
            let w = weight_windows(n, per).unwrap();
            assert_eq!(w[0].0, 0);
            for pair in w.windows(2) {
                assert_eq!(pair[0].0 + pair[0].1, pair[1].0, "{n} {per}: {w:?}");
            }
            let last = w.last().unwrap();
            assert_eq!(last.0 + last.1, n);
            assert!(
                w.iter().all(|&(s, l)| l >= 16 && l <= per && s % 16 == 0),
                "{w:?}"
            );
        }
    }
}
