// Per-row scaled f32 -> f16 cast of a decode step's matmul input (matmul_rows.wgsl's A operand):
// row_cast.wgsl's cast of each row of x, one workgroup per row, in one dispatch where the
// per-tensor cast (cast_scaled.wgsl) needs a fill, an absmax and a quantize pass. A row's scale
// follows only its own values, so one sequence's large activations do not cost another's
// precision.
//
// `norm` casts rmsnorm(x) * w instead, bit for bit what rmsnorm.wgsl followed by `main` would
// write: one dispatch for both.
//
// Rows rows..rows_out-1 are padding (matmul_rows reads whole 16-row tiles): zeros, inv 0.
// Compiled after f16_bits.wgsl, row_norm.wgsl and row_cast.wgsl.

struct Params {
    rows: u32,
    rows_out: u32,
    k: u32,
    eps: f32, // norm only
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<storage, read_write> inv: array<f32>;
@group(0) @binding(4) var<storage, read> norm_w: array<f32>;

override DEQUANT: bool = false;

fn cast_input(i: u32) -> f32 {
    return x[i];
}

@compute @workgroup_size(CAST_WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = wg.x + wg.y * nwg.x;
    if (r >= p.rows_out || pad_row(r, p.rows, p.k, lid)) {
        return;
    }
    cast_row(r, r * p.k, p.k, 1.0, false, lid);
}

@compute @workgroup_size(CAST_WG)
fn norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = wg.x + wg.y * nwg.x;
    if (r >= p.rows_out || pad_row(r, p.rows, p.k, lid)) {
        return;
    }
    let rstd = row_rstd(r * p.k, p.k, p.eps, lid);
    cast_row(r, r * p.k, p.k, rstd, true, lid);
}
