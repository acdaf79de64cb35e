// Rotary position embedding, HF's half-rotation form (rotate_half): with x1 = x[..D/2] and
// x2 = x[D/2..] of one head, out = x * cos + rotate_half(x) * sin, i.e.
//   out1 = x1 * cos_i - x2 * sin_i,  out2 = x2 * cos_i + x1 * sin_i.
// cos/sin come from a table built on the host in f32 exactly as HF computes them (see rope.rs):
// row `pos` is [cos_0 .. cos_{D/2-1}, sin_0 .. sin_{D/2-1}]. `sign` = -1 rotates by the negative
// angle (the backward). A position outside the table writes NaN (loud, never out of bounds).
// x is [tokens, heads * D] with heads contiguous in the feature dimension.

struct Params {
    tokens: u32,
    heads: u32,
    half: u32,
    table_rows: u32,
    sign: f32,
    nan: f32, // a quiet NaN, from the host (a NaN constant is a shader-creation error)
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// The (token, head, k) pair invocation `i` rotates: element index of x1, token, and k.
struct Pair {
    valid: bool,
    i1: u32,
    t: u32,
    k: u32,
}

fn pair(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> Pair {
    var r: Pair;
    let i = (wg.x + wg.y * nwg.x) * 256u + lid;
    r.valid = i < p.tokens * p.heads * p.half;
    let per_tok = p.heads * p.half;
    r.t = i / per_tok;
    let rem = i - r.t * per_tok;
    let h = rem / p.half;
    r.k = rem - h * p.half;
    r.i1 = (r.t * p.heads + h) * 2u * p.half + r.k;
    return r;
}

// Index of cos in the table for position `ps` and frequency k, or -1 when off the table.
fn table_index(ps: u32, k: u32) -> i32 {
    if (ps >= p.table_rows) {
        return -1;
    }
    return i32(ps * 2u * p.half + k);
}

@group(0) @binding(1) var<storage, read> o_table: array<f32>;
@group(0) @binding(2) var<storage, read> o_pos: array<u32>;
@group(0) @binding(3) var<storage, read> o_x: array<f32>;
@group(0) @binding(4) var<storage, read_write> o_out: array<f32>;

@compute @workgroup_size(256)
fn rope(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let r = pair(wg, nwg, lid);
    if (!r.valid) {
        return;
    }
    let ti = table_index(o_pos[r.t], r.k);
    var c = p.nan;
    var s = c;
    if (ti >= 0) {
        c = o_table[ti];
        s = p.sign * o_table[u32(ti) + p.half];
    }
    let x1 = o_x[r.i1];
    let x2 = o_x[r.i1 + p.half];
    o_out[r.i1] = x1 * c - x2 * s;
    o_out[r.i1 + p.half] = x2 * c + x1 * s;
}

@group(0) @binding(1) var<storage, read> i_table: array<f32>;
@group(0) @binding(2) var<storage, read> i_pos: array<u32>;
@group(0) @binding(3) var<storage, read_write> i_x: array<f32>;

@compute @workgroup_size(256)
fn rope_inplace(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
    let r = pair(wg, nwg, lid);
    if (!r.valid) {
        return;
    }
    let ti = table_index(i_pos[r.t], r.k);
    var c = p.nan;
    var s = c;
    if (ti >= 0) {
        c = i_table[ti];
        s = p.sign * i_table[u32(ti) + p.half];
    }
    let x1 = i_x[r.i1];
    let x2 = i_x[r.i1 + p.half];
    i_x[r.i1] = x1 * c - x2 * s;
    i_x[r.i1 + p.half] = x2 * c + x1 * s;
}
