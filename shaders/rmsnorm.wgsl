// RMSNorm over rows of length `dim`: y = w * (x * rstd), rstd = 1 / sqrt(mean(x^2) + eps),
// in the order of HF's Qwen3RMSNorm. Rows are whole hidden vectors, or single attention heads
// (rows = tokens * heads, dim = head_dim, one weight shared by every head: heads are contiguous
// in the feature dimension, so a [T, H*D] tensor is a [T*H, D] one).
// Backward: dx per row; dw = sum over rows of dy * x * rstd, reduced deterministically in two
// passes (fixed row blocks, then the blocks in order) instead of with atomics.

struct Params {
    rows: u32,
    dim: u32,
    eps: f32,
    accumulate: u32, // dw_reduce: add into dw instead of overwriting it
    rows_per_block: u32,
    blocks: u32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// 64 invocations a workgroup: sums over it go through row_norm.wgsl's `sum64` (the prelude).
const WG: u32 = 64u;

@group(0) @binding(1) var<storage, read> f_x: array<f32>;
@group(0) @binding(2) var<storage, read> f_w: array<f32>;
@group(0) @binding(3) var<storage, read_write> f_y: array<f32>;
@group(0) @binding(4) var<storage, read_write> f_rstd: array<f32>;

// One workgroup per row.
@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.dim;
    var ss = 0.0;
    for (var d = lid; d < p.dim; d += WG) {
        let v = f_x[base + d];
        ss += v * v;
    }
    let r = rstd_of(sum64(lid, ss), p.dim, p.eps);
    if (lid == 0u) {
        f_rstd[row] = r;
    }
    for (var d = lid; d < p.dim; d += WG) {
        f_y[base + d] = f_w[d] * (f_x[base + d] * r);
    }
}

@group(0) @binding(1) var<storage, read> b_x: array<f32>;
@group(0) @binding(2) var<storage, read> b_w: array<f32>;
@group(0) @binding(3) var<storage, read> b_dy: array<f32>;
@group(0) @binding(4) var<storage, read> b_rstd: array<f32>;
@group(0) @binding(5) var<storage, read_write> b_dx: array<f32>;

// dx_k = rstd * (dy_k w_k - x_k * rstd^2 * sum_d(dy_d w_d x_d) / dim). One workgroup per row.
@compute @workgroup_size(64)
fn backward_dx(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let row = wg.x + wg.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.dim;
    var s = 0.0;
    for (var d = lid; d < p.dim; d += WG) {
        s += b_dy[base + d] * b_w[d] * b_x[base + d];
    }
    let r = b_rstd[row];
    let c = sum64(lid, s) * r * r / f32(p.dim);
    for (var d = lid; d < p.dim; d += WG) {
        b_dx[base + d] = r * (b_dy[base + d] * b_w[d] - b_x[base + d] * c);
    }
}

@group(0) @binding(1) var<storage, read> pw_x: array<f32>;
@group(0) @binding(2) var<storage, read> pw_dy: array<f32>;
@group(0) @binding(3) var<storage, read> pw_rstd: array<f32>;
@group(0) @binding(4) var<storage, read_write> pw_partial: array<f32>;

// partial[b, d] = sum over rows of block b (ascending) of dy * (x * rstd).
// Grid: x over column groups of 64, y over row blocks.
@compute @workgroup_size(64)
fn dw_partial(@builtin(global_invocation_id) gid: vec3<u32>) {
    let d = gid.x;
    let b = gid.y;
    if (d >= p.dim || b >= p.blocks) {
        return;
    }
    let r0 = b * p.rows_per_block;
    let r1 = min(r0 + p.rows_per_block, p.rows);
    var acc = 0.0;
    for (var r = r0; r < r1; r++) {
        acc += pw_dy[r * p.dim + d] * (pw_x[r * p.dim + d] * pw_rstd[r]);
    }
    pw_partial[b * p.dim + d] = acc;
}

@group(0) @binding(1) var<storage, read> rd_partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> rd_dw: array<f32>;

// dw[d] (+)= sum over blocks of partial[b, d]: one workgroup per column d (a 1-D grid), its
// invocation l summing blocks l, l + 64, .. in ascending order, then sum64's fixed tree
// (deterministic). One invocation per column summing all blocks took ~210 us for the 128-wide
// q/k norms on an H100 (a grid of 2 workgroups over up to 1,024 blocks).
// The loop runs the same number of rounds in every invocation: written as
// `for (b = lid; b < blocks; b += WG)` it summed wrong on an H100 (driver 580.159.04: the blocks
// of the second round were lost, 17.3 against 22.9 at 104 blocks) while lavapipe was right.
@compute @workgroup_size(64)
fn dw_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
    let d = wg.x + wg.y * nwg.x;
    if (d >= p.dim) {
        return; // uniform: the whole workgroup
    }
    var acc = 0.0;
    let rounds = (p.blocks + WG - 1u) / WG;
    for (var i = 0u; i < rounds; i++) {
        let b = lid + i * WG;
        if (b < p.blocks) {
            acc += rd_partial[b * p.dim + d];
        }
    }
    var total = sum64(lid, acc);
    if (lid == 0u) {
        if (p.accumulate != 0u) {
            total += rd_dw[d];
        }
        rd_dw[d] = total;
    }
}
