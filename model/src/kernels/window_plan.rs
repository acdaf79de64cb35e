//! Splits tensors larger than one storage binding into windows that start on the adapter's
//! storage-offset alignment (256 bytes on most adapters). Shared by the vocabulary-sized row
//! kernels (softmax, cross-entropy) and the flat element-wise ones (reduce, AdamW, grad norm).

use crate::gpu::{GpuContext, GpuError, Result};

/// Elements of 4 bytes per alignment unit of a binding's start.
fn align_elems(ctx: &GpuContext) -> usize {
    (ctx.limits().min_storage_buffer_offset_alignment as usize / 4).max(1)
}

/// Largest number of 4-byte elements one binding may hold.
fn max_elems(ctx: &GpuContext) -> usize {
    (ctx.max_binding_bytes() / 4) as usize
}

/// A contiguous window `[start, start + len)` of a flat 4-byte-element tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FlatWindow {
    pub start: usize,
    pub len: usize,
}

/// Windows covering `n` elements; every start is aligned (so several tensors of the same length
/// can be windowed identically and bound at the same element ranges).
pub(crate) fn flat_windows(ctx: &GpuContext, n: usize) -> Vec<FlatWindow> {
    let a = align_elems(ctx);
    let chunk = (max_elems(ctx) / a * a).max(a);
    (0..n)
        .step_by(chunk)
        .map(|start| FlatWindow {
            start,
            len: chunk.min(n - start),
        })
        .collect()
}

/// Rows `[row0, row0 + rows)` of a row-major `[R, row_len]` tensor, bound as elements
/// `[start, start + len)`; row `row0` begins `base` elements into the binding (the binding's
/// start is rounded down to the alignment, which a row start generally is not).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RowWindow {
    pub row0: usize,
    pub rows: usize,
    pub start: usize,
    pub len: usize,
    pub base: usize,
}

/// Windows of whole rows, as many rows per window as one binding holds.
pub(crate) fn row_windows(
    ctx: &GpuContext,
    op: &'static str,
    rows: usize,
    row_len: usize,
) -> Result<Vec<RowWindow>> {
    let a = align_elems(ctx);
    let room = max_elems(ctx).saturating_sub(a - 1);
    let per = room / row_len.max(1);
    if per == 0 {
        return Err(GpuError::TooLarge {
            op,
            bytes: row_len as u64 * 4,
            limit: ctx.max_binding_bytes(),
            what: "one row must fit a storage binding",
        });
    }
    let mut out = Vec::new();
    let mut row0 = 0;
    while row0 < rows {
        let n = per.min(rows - row0);
        let first = row0 * row_len;
        let start = first / a * a;
        out.push(RowWindow {
            row0,
            rows: n,
            start,
            len: first - start + n * row_len,
            base: first - start,
        });
        row0 += n;
    }
    Ok(out)
}

/// Checks that every value fits the u32 fields of a kernel's parameter block.
pub(crate) fn fits_u32(op: &'static str, what: &str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| GpuError::shape(op, format!("{what} = {v} exceeds u32")))
}
