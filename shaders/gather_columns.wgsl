// Per-row column gather: out[r, j] = src[r, cols[r, j]] for the F column slots of each row;
// a slot holding NONE (0xffffffff) reads nothing and gets 0. Constrained beam search reads back
// only the log-probs of the tokens the item trie allows (a few hundred per row) instead of
// whole vocabulary rows (150k+ per row).
//
// One dispatch covers rows [r0, r0 + rows) of a window: src is bound from an aligned element
// offset, `src_base` is row r0's first element within that binding; cols and out are bound
// whole and indexed by absolute row.

struct Params {
    r0: u32,
    rows: u32,
    v: u32,        // columns of src
    f: u32,        // column slots per row
    src_base: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> cols: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn gather_columns(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wg.x + wg.y * nwg.x) * 256u + lid;
    if (i >= p.rows * p.f) {
        return;
    }
    let r = i / p.f;
    let slot = (p.r0 + r) * p.f + i % p.f;
    let c = cols[slot];
    // The launch code rejects columns >= v other than NONE.
    if (c == NONE) {
        out[slot] = 0.0;
        return;
    }
    out[slot] = src[p.src_base + r * p.v + c];
}
