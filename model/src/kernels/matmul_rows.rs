//! Tensor-core matmul for decode-sized row counts (shaders/matmul_rows.wgsl, then
//! shaders/matmul_rows_reduce.wgsl): `C = diag(inv_a) (A B^T) inv_b (+ bias) (+ C)` with A f16
//! rows scaled one power of two per row ([`quantize_rows`](super::quantize_rows)) and B an f16
//! weight `[N, K]` with its per-tensor scale words. The first pass splits K over the grid so a
//! 64-row product still has a few hundred workgroups; the second sums the splits in order and
//! undoes the scales. Where the product feeds another, [`matmul_rows_cast`]'s second pass
//! (shaders/matmul_rows_reduce_cast.wgsl) also casts its output rows into the next product's A
//! operand, as [`quantize_rows`](super::quantize_rows) would: one dispatch fewer.

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
static REDUCE_SRC: ShaderSource =
    crate::shader!("matmul_rows_reduce.wgsl" after "rows_split_sum.wgsl");
static REDUCE: KernelEntry = KernelEntry {
    source: &REDUCE_SRC,
    entry: "main",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
    ],
};

static REDUCE_CAST_SRC: ShaderSource = crate::shader!(
    "matmul_rows_reduce_cast.wgsl" after "f16_bits.wgsl",
    "row_norm.wgsl",
    "row_cast.wgsl",
    "rows_split_sum.wgsl"
);
static REDUCE_CAST: KernelEntry = KernelEntry {
    source: &REDUCE_CAST_SRC,
    entry: "main",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::ReadWrite,
        Access::Read,
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
    n0: u32,
    n1: u32,
    _p: [u32; 2],
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct ReduceCastParams {
    m: u32,
    n: u32,
    m_pad: u32,
    splits: u32,
    bias_off: u32,
    flags: u32,
    eps: f32,
    _p: u32,
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

/// Where the product goes (all f32, `m` rows).
pub enum RowsOut<'a> {
    /// `c` `[m, N]` `(+ bias) (+ c if accumulate)`.
    One {
        c: &'a Tensor,
        bias: Option<&'a Tensor>,
        accumulate: bool,
    },
    /// Consecutive column ranges into two or three tensors `[m, n_i]` (q, k and v from one
    /// product over their stacked weights).
    Split(&'a [&'a Tensor]),
    /// `silu(gate) * up` into `[m, N / 2]`, gate the first N / 2 columns, up the rest (one
    /// product over stacked gate and up weights).
    Swiglu(&'a Tensor),
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
    let out = RowsOut::One {
        c,
        bias,
        accumulate,
    };
    matmul_rows_to(rec, a, b, b_scale, &out, None)
}

/// The next product's A operand, cast from the rows a product writes: `out` f16 `[m_pad, k]`
/// and `inv` f32 `[m_pad]` as [`quantize_rows`](super::quantize_rows) (or, with `norm` =
/// `(w, eps)`, `quantize_rows_normed`) would write them from the product's output `[m, k]`.
pub struct RowCast<'a> {
    pub out: &'a Tensor,
    pub inv: &'a Tensor,
    pub norm: Option<(&'a Tensor, f32)>,
}

/// The product `diag(a.inv) (a.t b^T) b_scale[1]` into `out`, with `splits` K splits instead
/// of the default when given (tests cover several).
pub fn matmul_rows_to(
    rec: &mut Recorder,
    a: &RowsOperand,
    b: &Tensor,
    b_scale: &Tensor,
    out: &RowsOut,
    splits: Option<usize>,
) -> Result<()> {
    record(rec, a, b, b_scale, out, splits, None)
}

/// [`matmul_rows_to`] into `out` (one output, or SwiGLU's) whose second pass also casts the
/// output rows as `cast` says. `cast.inv` must be another buffer than `a.inv`; the weight must
/// fit one binding.
pub fn matmul_rows_cast(
    rec: &mut Recorder,
    a: &RowsOperand,
    b: &Tensor,
    b_scale: &Tensor,
    out: &RowsOut,
    cast: &RowCast,
    splits: Option<usize>,
) -> Result<()> {
    record(rec, a, b, b_scale, out, splits, Some(cast))
}

fn record(
    rec: &mut Recorder,
    a: &RowsOperand,
    b: &Tensor,
    b_scale: &Tensor,
    out: &RowsOut,
    splits: Option<usize>,
    cast: Option<&RowCast>,
) -> Result<()> {
    let op = if cast.is_some() {
        "matmul_rows_cast"
    } else {
        "matmul_rows"
    };
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
    let f32_rows = |t: &Tensor, cols: usize| t.dtype() == DType::F32 && t.shape() == [m, cols];
    let (mode, outs, flags, bias, widths): (u32, Vec<&Tensor>, u32, Option<&Tensor>, Vec<usize>) =
        match out {
            RowsOut::One {
                c,
                bias,
                accumulate,
            } => {
                let flags = if bias.is_some() { BIAS } else { 0 }
                    | if *accumulate { ACCUMULATE } else { 0 };
                (0, vec![*c], flags, *bias, vec![n])
            }
            RowsOut::Split(ts) => (
                1,
                ts.to_vec(),
                0,
                None,
                ts.iter()
                    .map(|t| t.shape().get(1).copied().unwrap_or(0))
                    .collect(),
            ),
            RowsOut::Swiglu(t) => (2, vec![*t], 0, None, vec![n / 2]),
        };
    let outs_ok = match mode {
        0 => {
            f32_rows(outs[0], n) && bias.is_none_or(|t| t.dtype() == DType::F32 && t.shape() == [n])
        }
        1 => {
            (2..=3).contains(&outs.len())
                && widths.iter().sum::<usize>() == n
                && outs
                    .iter()
                    .zip(&widths)
                    .all(|(t, &w)| w > 0 && f32_rows(t, w))
        }
        _ => n.is_multiple_of(2) && f32_rows(outs[0], n / 2),
    };
    let shapes_ok = a.t.dtype() == DType::F16
        && b.dtype() == DType::F16
        && b.shape() == [n, k]
        && a.inv.dtype() == DType::F32
        && a.inv.shape() == [m_pad]
        && m_pad >= m
        && m_pad.is_multiple_of(16)
        && b_scale.dtype() == DType::F32
        && b_scale.numel() == 2
        && outs_ok
        && splits != Some(0);
    if !shapes_ok {
        return Err(GpuError::shape(
            op,
            format!(
                "expects f16 A [m_pad % 16 == 0, K] with f32 inv [m_pad], f16 B [N, K], f32 \
                 b_scale [2], f32 outputs of m rows covering N columns (one [m, N] with an \
                 optional bias [N], 2-3 column ranges, or SwiGLU's [m, N / 2]), splits >= 1; \
                 got A {:?} {:?}, inv {:?}, m {m}, B {:?} {:?}, b_scale {:?}, outputs {:?}, \
                 bias {:?}, splits {splits:?}",
                a.t.dtype(),
                a.t.shape(),
                a.inv.shape(),
                b.dtype(),
                b.shape(),
                b_scale.shape(),
                outs.iter()
                    .map(|t| (t.dtype(), t.shape().to_vec()))
                    .collect::<Vec<_>>(),
                bias.map(|t| t.shape().to_vec())
            ),
        ));
    }
    if let Some(cast) = cast {
        check_cast(
            op,
            cast,
            mode,
            m_pad,
            if mode == 2 { n / 2 } else { n },
            a.inv,
        )?;
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
    let ctx = rec.ctx().clone();
    let limit = ctx.max_binding_bytes();
    let bias_b = match bias {
        Some(t) => t.binding(op)?,
        None => ctx.unused_binding(),
    };
    // Weight windows of whole 16-row tiles whose weight rows and one split of partial sums fit
    // a binding (the f16 LM head can exceed one). Split and SwiGLU outputs need one window.
    let rows_fit = (limit / (k * 2) as u64).min(limit / (m_pad * 4) as u64) as usize;
    let per = (rows_fit / 16 * 16).max(16);
    let windows = weight_windows(n, per)?;
    if (mode != 0 || cast.is_some()) && windows.len() > 1 {
        return Err(GpuError::TooLarge {
            op,
            bytes: (n * k * 2) as u64,
            limit,
            what: "a split, SwiGLU or casting product's weight must fit one binding",
        });
    }
    let mut out_b = outs
        .iter()
        .map(|t| t.binding(op))
        .collect::<Result<Vec<_>>>()?;
    // Unused output slots repeat the first output (the shared unused buffer already sits in
    // the read-only bias slot, and one buffer may not be bound read-only and writable at once).
    while out_b.len() < 3 {
        out_b.push(out_b[0].clone());
    }
    let constants = [("MODE", mode as f64)];
    for (n0, nw) in windows {
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
        if let Some(cast) = cast {
            let rp = ReduceCastParams {
                m: m as u32,
                n: nw as u32,
                m_pad: m_pad as u32,
                splits: z as u32,
                bias_off: n0 as u32,
                flags,
                eps: cast.norm.map_or(0.0, |(_, eps)| eps),
                _p: 0,
            };
            let norm_b = match cast.norm {
                Some((w, _)) => w.binding(op)?,
                None => ctx.unused_binding(),
            };
            let binds = vec![
                part_b,
                a.inv.binding(op)?,
                b_scale.binding(op)?,
                bias_b.clone(),
                out_b[0].clone(),
                cast.out.binding(op)?,
                cast.inv.binding(op)?,
                norm_b,
            ];
            let constants = [
                ("MODE", mode as f64),
                ("NORMED", if cast.norm.is_some() { 1.0 } else { 0.0 }),
                ("CAST_WG", f64::from(super::row_workgroup_size(&ctx, 4096))),
            ];
            let groups = grid_1d(m_pad as u32, rec.max_groups());
            rec.dispatch(&REDUCE_CAST, &constants, &rp, binds, groups)?;
            continue;
        }
        let rp = ReduceParams {
            m: m as u32,
            n: nw as u32,
            m_pad: m_pad as u32,
            splits: z as u32,
            c_rs: n as u32,
            c_col0: n0 as u32,
            bias_off: n0 as u32,
            flags,
            n0: widths[0] as u32,
            n1: widths.iter().take(2).sum::<usize>() as u32,
            _p: [0; 2],
        };
        let mut binds = vec![
            part_b,
            a.inv.binding(op)?,
            b_scale.binding(op)?,
            bias_b.clone(),
        ];
        binds.extend(out_b.iter().cloned());
        let outputs = if mode == 2 { m * nw / 2 } else { m * nw };
        let groups = grid_1d((outputs as u32).div_ceil(256), rec.max_groups());
        rec.dispatch(&REDUCE, &constants, &rp, binds, groups)?;
    }
    Ok(())
}

/// Checks a fused cast of a mode-`mode` product whose output rows are `k` wide.
fn check_cast(
    op: &'static str,
    cast: &RowCast,
    mode: u32,
    m_pad: usize,
    k: usize,
    a_inv: &Tensor,
) -> Result<()> {
    let same_inv = std::sync::Arc::ptr_eq(&cast.inv.buffer, &a_inv.buffer);
    let ok = mode != 1
        && k.is_multiple_of(2)
        && cast.out.dtype() == DType::F16
        && cast.out.shape() == [m_pad, k]
        && cast.inv.dtype() == DType::F32
        && cast.inv.shape() == [m_pad]
        && !same_inv
        && cast
            .norm
            .is_none_or(|(w, _)| w.dtype() == DType::F32 && w.shape() == [k]);
    if ok {
        return Ok(());
    }
    Err(GpuError::shape(
        op,
        format!(
            "casting the output needs one output or SwiGLU's, an even row width k, f16 out \
             [m_pad, k], f32 inv [m_pad] in another buffer than A's inv, and an f32 norm \
             weight [k]; got k {k}, m_pad {m_pad}, out {:?} {:?}, inv {:?} (A's own: \
             {same_inv}), norm {:?}",
            cast.out.dtype(),
            cast.out.shape(),
            cast.inv.shape(),
            cast.norm.map(|(w, _)| w.shape().to_vec())
        ),
    ))
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
