//! Tensor-core matmul for decode-sized row counts (shaders/matmul_rows.wgsl):
//! `C = diag(inv_a) (A B^T) inv_b (+ bias) (+ C)` with A f16 rows scaled one power of two per
//! row ([`quantize_rows`](super::quantize_rows)) and B an f16 weight `[N, K]` with its
//! per-tensor scale words. One dispatch per product: the workgroup's four subgroups split K and
//! meet in workgroup memory, so no split-K reduction pass follows.

use bytemuck::{Pod, Zeroable};

use super::matmul::coop16_available;
use crate::gpu::{Access, DType, GpuContext, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor};

static SRC: ShaderSource = crate::shader!("matmul_rows.wgsl");
static MATMUL_ROWS: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "main",
    bindings: &[
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::Read,
        Access::ReadWrite,
    ],
};

const BIAS: u32 = 1;
const ACCUMULATE: u32 = 2;
/// Output rows of one workgroup.
const BLOCK_ROWS: usize = 64;
/// Subgroups per workgroup (column strips x K slices).
const SUBGROUPS: usize = 4;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    m_pad: u32,
    c_rs: u32,
    c_col0: u32,
    bias_off: u32,
    flags: u32,
    k_slice: u32,
    _p: [u32; 3],
}

/// Whether this adapter and shape take [`matmul_rows`]: cooperative matrices, at least 16
/// columns (any count: the last strip overlaps its neighbour) and K a multiple of 32 (whole
/// fragments, two per loop step).
pub fn matmul_rows_fits(ctx: &GpuContext, n: usize, k: usize) -> bool {
    coop16_available(ctx) && n >= 16 && k >= 32 && k.is_multiple_of(32)
}

/// Column strips per workgroup for N columns: wide products (the LM head) take 64 columns a
/// workgroup so every A fragment serves four weight fragments; narrower ones 16, with the K
/// slices giving the few workgroups more loads in flight.
fn default_strips(n: usize) -> usize {
    if n >= 16_384 {
        4
    } else {
        1
    }
}

/// The A operand: `t` f16 `[m_pad, K]` and `inv` f32 `[m_pad]` as written by `quantize_rows`,
/// of which the first `m` rows are real.
pub struct RowsOperand<'a> {
    pub t: &'a Tensor,
    pub inv: &'a Tensor,
    pub m: usize,
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
    let n = b.shape().first().copied().unwrap_or(0);
    matmul_rows_with(rec, a, b, b_scale, bias, c, accumulate, default_strips(n))
}

/// [`matmul_rows`] with `strips` (1, 2 or 4) 16-column strips per workgroup (tests cover each).
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
    strips: usize,
) -> Result<()> {
    let op = "matmul_rows";
    let (m_pad, k) = match *a.t.shape() {
        [r, k] => (r, k),
        _ => return Err(GpuError::shape(op, format!("A must be 2-D, got {:?}", a.t.shape()))),
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
        && [1, 2, 4].contains(&strips);
    if !shapes_ok {
        return Err(GpuError::shape(
            op,
            format!(
                "expects f16 A [m_pad % 16 == 0, K] with f32 inv [m_pad], f16 B [N, K], f32 \
                 b_scale [2], f32 C [m <= m_pad, N], f32 bias [N], strips 1/2/4; got A {:?} {:?}, \
                 inv {:?}, m {m}, B {:?} {:?}, b_scale {:?}, C {:?} {:?}, bias {:?}, strips {strips}",
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
    let slices = SUBGROUPS / strips;
    let k_slice = k.div_ceil(slices).div_ceil(32) * 32;
    let mut flags = 0;
    if bias.is_some() {
        flags |= BIAS;
    }
    if accumulate {
        flags |= ACCUMULATE;
    }
    let ctx = rec.ctx().clone();
    let bias_b = match bias {
        Some(t) => t.binding(op)?,
        None => ctx.unused_binding(),
    };
    // Weight windows of whole 16-row tiles within one binding (the f16 LM head can exceed it).
    let row_bytes = (k * 2) as u64;
    let per = ((ctx.max_binding_bytes() / row_bytes) as usize / 16 * 16).max(16);
    let constants = [("CS", strips as f64)];
    for (n0, nw) in weight_windows(n, per)? {
        let p = Params {
            m: m as u32,
            n: nw as u32,
            k: k as u32,
            m_pad: m_pad as u32,
            c_rs: n as u32,
            c_col0: n0 as u32,
            bias_off: n0 as u32,
            flags,
            k_slice: k_slice as u32,
            ..Default::default()
        };
        let binds = vec![
            a.t.binding(op)?,
            b.rows(n0, nw)?.binding(op)?,
            a.inv.binding(op)?,
            b_scale.binding(op)?,
            bias_b.clone(),
            c.binding(op)?,
        ];
        let groups = [
            nw.div_ceil(16 * strips) as u32,
            m.div_ceil(BLOCK_ROWS) as u32,
            1,
        ];
        rec.dispatch(&MATMUL_ROWS, &constants, &p, binds, groups)?;
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
        for (n, per) in [(213, 96), (200, 96), (16, 96), (97, 32), (4096, 4096), (4111, 4096)] {
            let w = weight_windows(n, per).unwrap();
            assert_eq!(w[0].0, 0);
            for pair in w.windows(2) {
                assert_eq!(pair[0].0 + pair[0].1, pair[1].0, "{n} {per}: {w:?}");
            }
            let last = w.last().unwrap();
            assert_eq!(last.0 + last.1, n);
            assert!(w.iter().all(|&(s, l)| l >= 16 && l <= per && s % 16 == 0), "{w:?}");
        }
    }
}
