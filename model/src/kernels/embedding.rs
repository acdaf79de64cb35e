//! Embedding gather `out[t, :] = table[ids[t], :]` and its gradient, a deterministic
//! scatter-add without float atomics. Tables larger than one storage binding (a 150k x 1024
//! f32 table is 600 MiB; lavapipe binds 128 MiB) are processed in row windows.

use bytemuck::{Pod, Zeroable};

use super::elementwise::{self, groups_for};
use crate::gpu::{
    grid_1d, Access, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor,
};

static SRC: ShaderSource = crate::shader!("embedding.wgsl");
static GATHER: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "gather",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};
static SCATTER_ADD: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "scatter_add",
    bindings: &[Access::Read, Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    n_tok: u32,
    dim: u32,
    row0: u32,
    rows: u32,
    vocab: u32,
    zero_oob: u32,
    u0: u32,
    n_uniq: u32,
    n_all: u32,
    /// gather: words between consecutive ids.
    ids_stride: u32,
    _p: [u32; 2],
}

/// Table rows per window so a window fits one binding, a multiple of 64 rows so every window
/// starts on a 256-byte boundary whatever the row length.
fn rows_per_window(vocab: usize, dim: usize, limit: u64) -> usize {
    let fit = (limit / (dim.max(1) as u64 * 4)) as usize;
    if fit >= vocab {
        vocab.max(1)
    } else {
        (fit / 64 * 64).max(64)
    }
}

fn dims(
    op: &'static str,
    table: &Tensor,
    n_ids: usize,
    ids: Option<&Tensor>,
    rows: &Tensor,
) -> Result<(usize, usize)> {
    let err = || {
        GpuError::shape(
            op,
            format!(
                "table {:?} {:?} must be f32 [V, D]; ids {} must be u32 [N]; rows {:?} {:?} must \
                 be f32 [N, D]",
                table.dtype(),
                table.shape(),
                ids.map(|t| format!("{:?} {:?}", t.dtype(), t.shape()))
                    .unwrap_or_else(|| format!("[{n_ids}] (host)")),
                rows.dtype(),
                rows.shape()
            ),
        )
    };
    let [v, d] = table.shape() else {
        return Err(err());
    };
    let ids_ok = ids.is_none_or(|t| t.dtype() == DType::U32 && t.shape() == [n_ids]);
    if table.dtype() != DType::F32
        || rows.dtype() != DType::F32
        || rows.shape() != [n_ids, *d]
        || !ids_ok
    {
        return Err(err());
    }
    Ok((*v, *d))
}

/// Errors (naming `op`) when an id is not a row of a `vocab`-row table.
pub fn check_ids(op: &'static str, ids: &[u32], vocab: usize) -> Result<()> {
    match ids.iter().position(|&i| i as usize >= vocab) {
        None => Ok(()),
        Some(t) => Err(GpuError::shape(
            op,
            format!(
                "id {} at position {t} is outside the table's {vocab} rows",
                ids[t]
            ),
        )),
    }
}

/// `out[t, :] = table[ids[t], :]` with table f32 [V, D], ids u32 [N], out f32 [N, D].
/// An id >= V cannot be checked on the host here (the ids live on the device); its row of
/// `out` is written as zeros instead of reading out of bounds. `out` must fit one binding.
pub fn embedding(rec: &mut Recorder, table: &Tensor, ids: &Tensor, out: &Tensor) -> Result<()> {
    let n = ids.shape().first().copied().unwrap_or(0);
    let (v, d) = dims("embedding", table, n, Some(ids), out)?;
    gather_rows(rec, table, ids, 1, (n, v, d), out)
}

/// [`embedding`] of the ids in column 0 of `ids` u32 `[N, C]` (e.g. the sample kernel's
/// `[N, 2]` of token and log-prob bits, so a decode step reads its input tokens on the GPU).
pub fn embedding_column0(
    rec: &mut Recorder,
    table: &Tensor,
    ids: &Tensor,
    out: &Tensor,
) -> Result<()> {
    let (n, stride) = match *ids.shape() {
        [n, c] if c > 0 && ids.dtype() == DType::U32 => (n, c),
        _ => {
            return Err(GpuError::shape(
                "embedding",
                format!(
                    "ids must be u32 [N, C]; got {:?} {:?}",
                    ids.dtype(),
                    ids.shape()
                ),
            ))
        }
    };
    let flat = ids.reshape(&[n * stride])?;
    let (v, d) = dims("embedding", table, n, None, out)?;
    gather_rows(rec, table, &flat, stride, (n, v, d), out)
}

/// The gather dispatches: `out[t] = table[ids[t * stride]]`.
fn gather_rows(
    rec: &mut Recorder,
    table: &Tensor,
    ids: &Tensor,
    stride: usize,
    (n, v, d): (usize, usize, usize),
    out: &Tensor,
) -> Result<()> {
    if n == 0 || d == 0 {
        return Ok(());
    }
    let ids_b = ids.binding("embedding")?;
    let out_b = out.binding("embedding")?;
    let rw = rows_per_window(v, d, rec.ctx().max_binding_bytes());
    // With an empty table every id is out of range: one dispatch that only writes zeros.
    let starts: Vec<usize> = if v == 0 {
        vec![0]
    } else {
        (0..v).step_by(rw).collect()
    };
    for (k, &r0) in starts.iter().enumerate() {
        let rows = rw.min(v - r0);
        let table_b = if rows == 0 {
            rec.ctx().unused_binding()
        } else {
            table.binding_range("embedding", r0 * d, rows * d)?
        };
        let p = Params {
            n_tok: n as u32,
            dim: d as u32,
            row0: r0 as u32,
            rows: rows as u32,
            vocab: v as u32,
            zero_oob: u32::from(k == 0),
            ids_stride: stride as u32,
            ..Default::default()
        };
        let g = groups_for(rec, n * d, 256);
        rec.dispatch(
            &GATHER,
            &[],
            &p,
            vec![ids_b.clone(), table_b, out_b.clone()],
            g,
        )?;
    }
    Ok(())
}

/// Unique ids (ascending), CSR offsets into the positions, and the positions of each id in
/// ascending order, packed as `[uniq | offsets | positions]`.
fn csr(ids: &[u32]) -> (Vec<u32>, usize) {
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    // Stable: equal ids keep ascending positions, which fixes the summation order.
    order.sort_by_key(|&t| ids[t as usize]);
    let mut uniq = Vec::new();
    let mut offsets = Vec::new();
    for (j, &t) in order.iter().enumerate() {
        let id = ids[t as usize];
        if uniq.last() != Some(&id) {
            uniq.push(id);
            offsets.push(j as u32);
        }
    }
    offsets.push(order.len() as u32);
    let n_uniq = uniq.len();
    let mut packed = uniq;
    packed.extend(offsets);
    packed.extend(order);
    (packed, n_uniq)
}

/// Gradient of `embedding`: `dtable[ids[t], :] += dout[t, :]` for every t, summed per row in
/// ascending token order (bitwise reproducible). `ids` come from the host (the caller built the
/// batch) and are validated against the table. Without `accumulate`, `dtable` is zeroed first;
/// with it the gradient is added to what `dtable` holds. `dout` must fit one binding; `dtable`
/// may be of any size.
pub fn embedding_backward(
    rec: &mut Recorder,
    ids: &[u32],
    dout: &Tensor,
    dtable: &Tensor,
    accumulate: bool,
) -> Result<()> {
    let (v, d) = dims("embedding_backward", dtable, ids.len(), None, dout)?;
    check_ids("embedding_backward", ids, v)?;
    if !accumulate {
        elementwise::fill(rec, dtable, 0.0)?;
    }
    if ids.is_empty() || d == 0 {
        return Ok(());
    }
    let (packed, n_all) = csr(ids);
    let uniq = &packed[..n_all];
    let csr_t = Tensor::from_u32(rec.ctx(), &[packed.len()], &packed)?;
    let csr_b = csr_t.binding("embedding_backward")?;
    let dout_b = dout.binding("embedding_backward")?;
    let rw = rows_per_window(v, d, rec.ctx().max_binding_bytes());
    for r0 in (0..v).step_by(rw) {
        let rows = rw.min(v - r0);
        let u0 = uniq.partition_point(|&u| (u as usize) < r0);
        let u1 = uniq.partition_point(|&u| (u as usize) < r0 + rows);
        if u1 == u0 {
            continue;
        }
        let p = Params {
            n_tok: ids.len() as u32,
            dim: d as u32,
            row0: r0 as u32,
            rows: rows as u32,
            vocab: v as u32,
            u0: u0 as u32,
            n_uniq: (u1 - u0) as u32,
            n_all: n_all as u32,
            ..Default::default()
        };
        let binds = vec![
            csr_b.clone(),
            dout_b.clone(),
            dtable.binding_range("embedding_backward", r0 * d, rows * d)?,
        ];
        let g = grid_1d((u1 - u0) as u32, rec.max_groups());
        rec.dispatch(&SCATTER_ADD, &[], &p, binds, g)?;
    }
    Ok(())
}
