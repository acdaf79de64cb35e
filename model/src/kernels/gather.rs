//! Per-row column gather (`shaders/gather_columns.wgsl`): `out[r, j] = src[r, cols[r, j]]`,
//! 0 where `cols[r, j] == NONE`. Beam search uses it to read back only the trie-allowed
//! tokens' log-probs of each beam row.

use bytemuck::{Pod, Zeroable};

use super::elementwise::{groups_for, WG};
use crate::gpu::{Access, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor};

/// A column slot that reads nothing.
pub const NONE: u32 = u32::MAX;

static SRC: ShaderSource = crate::shader!("gather_columns.wgsl");
static GATHER: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "gather_columns",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    r0: u32,
    rows: u32,
    v: u32,
    f: u32,
    src_base: u32,
    _p: [u32; 3],
}

/// `out[r, j] = src[r, cols[r, j]]` for src `[R, V]` f32, cols `[R, F]` u32 (each `< V` or
/// `NONE`, checked on the host from `cols_host`), out `[R, F]` f32. src may exceed one storage
/// binding (it is bound in windows of rows); cols and out must fit one.
pub fn gather_columns(
    rec: &mut Recorder,
    src: &Tensor,
    cols: &Tensor,
    cols_host: &[u32],
    out: &Tensor,
) -> Result<()> {
    let g = check(rec, src, cols, cols_host, out)?;
    gather_in_windows(rec, src, cols, out, &g, g.max_rows)
}

/// A checked gather: R rows of V columns, F slots per row; src is bound from element offsets
/// that are multiples of `align`, at most `max_rows` rows per binding.
struct Geometry {
    r: usize,
    v: usize,
    f: usize,
    align: usize,
    max_rows: usize,
}

/// Shapes, dtypes and column ranges, and how src is windowed.
fn check(
    rec: &Recorder,
    src: &Tensor,
    cols: &Tensor,
    cols_host: &[u32],
    out: &Tensor,
) -> Result<Geometry> {
    let op = "gather_columns";
    let (r, v) = match *src.shape() {
        [r, v] => (r, v),
        _ => {
            return Err(GpuError::shape(
                op,
                format!("src must be [R, V], got {:?}", src.shape()),
            ))
        }
    };
    let f = cols.shape().get(1).copied().unwrap_or(0);
    if src.dtype() != DType::F32
        || cols.dtype() != DType::U32
        || out.dtype() != DType::F32
        || cols.shape() != [r, f]
        || out.shape() != [r, f]
        || cols_host.len() != r * f
        || r == 0
        || f == 0
        || v == 0
    {
        return Err(GpuError::shape(
            op,
            format!(
                "src [R, V] f32, cols and out [R, F] u32/f32 with R, F, V > 0; got src {:?}, \
                 cols {:?} {:?} ({} host values), out {:?} {:?}",
                src.shape(),
                cols.dtype(),
                cols.shape(),
                cols_host.len(),
                out.dtype(),
                out.shape()
            ),
        ));
    }
    if let Some((i, c)) = cols_host
        .iter()
        .enumerate()
        .find(|&(_, &c)| c != NONE && c as usize >= v)
    {
        return Err(GpuError::shape(
            op,
            format!("column {c} at slot {i} is outside the {v} columns of src"),
        ));
    }
    let limit = rec.ctx().max_binding_bytes();
    let align = (rec.ctx().limits().min_storage_buffer_offset_alignment as usize / 4).max(1);
    // A window starts up to align - 1 elements before its first row.
    let max_rows = (limit as usize / 4).saturating_sub(align) / v;
    if max_rows == 0 {
        return Err(GpuError::shape(
            op,
            format!("a row of {v} columns exceeds one binding"),
        ));
    }
    Ok(Geometry {
        r,
        v,
        f,
        align,
        max_rows,
    })
}

/// `gather_columns` with at most `rows_per_window` rows per dispatch (tests use small windows
/// to reach the unaligned window starts that large vocabularies produce).
#[doc(hidden)]
pub fn gather_columns_windowed(
    rec: &mut Recorder,
    src: &Tensor,
    cols: &Tensor,
    cols_host: &[u32],
    out: &Tensor,
    rows_per_window: usize,
) -> Result<()> {
    let g = check(rec, src, cols, cols_host, out)?;
    gather_in_windows(
        rec,
        src,
        cols,
        out,
        &g,
        rows_per_window.clamp(1, g.max_rows),
    )
}

fn gather_in_windows(
    rec: &mut Recorder,
    src: &Tensor,
    cols: &Tensor,
    out: &Tensor,
    g: &Geometry,
    per_window: usize,
) -> Result<()> {
    let op = "gather_columns";
    let Geometry { r, v, f, align, .. } = *g;
    let mut r0 = 0;
    while r0 < r {
        let rows = per_window.min(r - r0);
        let start = r0 * v;
        let aligned = start - start % align;
        let p = Params {
            r0: r0 as u32,
            rows: rows as u32,
            v: v as u32,
            f: f as u32,
            src_base: (start - aligned) as u32,
            ..Default::default()
        };
        let binds = vec![
            src.binding_range(op, aligned, start + rows * v - aligned)?,
            cols.binding(op)?,
            out.binding(op)?,
        ];
        let g = groups_for(rec, rows * f, WG);
        rec.dispatch(&GATHER, &[], &p, binds, g)?;
        r0 += rows;
    }
    Ok(())
}
