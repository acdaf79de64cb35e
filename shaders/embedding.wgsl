// Embedding gather and its deterministic gradient. The table may be larger than one storage
// binding: the launch code binds row windows [row0, row0 + rows) of it and dispatches once per
// window; indices into the table binding are window-relative.

struct Params {
    n_tok: u32,
    dim: u32,
    row0: u32,  // first table row of the bound window
    rows: u32,  // rows in the bound window
    vocab: u32, // rows of the whole table
    zero_oob: u32, // gather: this dispatch writes zeros for ids >= vocab (exactly one does)
    u0: u32,    // scatter_add: first unique id (index into the CSR) of this window
    n_uniq: u32, // scatter_add: unique ids in this window
    n_all: u32, // scatter_add: unique ids in the whole CSR (offsets start at csr[n_all])
    ids_stride: u32, // gather: words between consecutive ids (1, or 2 for [N, 2] rows)
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

// out[t, d] = table[ids[t * ids_stride], d]; an id >= vocab gives a zero row instead of reading
// out of bounds.
@group(0) @binding(1) var<storage, read> g_ids: array<u32>;
@group(0) @binding(2) var<storage, read> g_table: array<f32>;
@group(0) @binding(3) var<storage, read_write> g_out: array<f32>;

@compute @workgroup_size(256)
fn gather(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i = (wg.x + wg.y * nwg.x) * 256u + lid;
    if (i >= p.n_tok * p.dim) {
        return;
    }
    let t = i / p.dim;
    let d = i - t * p.dim;
    let id = g_ids[t * p.ids_stride];
    if (id >= p.row0 && id - p.row0 < p.rows) {
        g_out[i] = g_table[(id - p.row0) * p.dim + d];
    } else if (p.zero_oob != 0u && id >= p.vocab) {
        g_out[i] = 0.0;
    }
}

// dtable[id, :] += sum over the token positions of id, in CSR order (ascending positions), of
// dout[pos, :]. One workgroup per unique id: no two workgroups write one row, no atomics.
// csr = [unique ids (n_all) | offsets (n_all + 1) | positions]
@group(0) @binding(1) var<storage, read> s_csr: array<u32>;
@group(0) @binding(2) var<storage, read> s_dout: array<f32>;
@group(0) @binding(3) var<storage, read_write> s_dtable: array<f32>;

@compute @workgroup_size(64)
fn scatter_add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let u = wg.x + wg.y * nwg.x;
    if (u >= p.n_uniq) {
        return;
    }
    let uu = p.u0 + u;
    let row = (s_csr[uu] - p.row0) * p.dim;
    let start = s_csr[p.n_all + uu];
    let end = s_csr[p.n_all + uu + 1u];
    let pos_base = 2u * p.n_all + 1u;
    for (var d = lid; d < p.dim; d += 64u) {
        var acc = 0.0;
        for (var j = start; j < end; j++) {
            acc += s_dout[s_csr[pos_base + j] * p.dim + d];
        }
        s_dtable[row + d] += acc;
    }
}
