// Inference's per-head query/key preparation in one dispatch: Qwen3's RMSNorm over each head
// of q and k (NORM; Qwen2 has none), then the rotary embedding, in place on q [T, Hq*D] and
// k [T, Hkv*D]. One workgroup of 64 per (token, head): heads 0..Hq-1 of q, then Hkv of k.
//
// It writes bit for bit what rmsnorm.wgsl's forward on [T*H, D] followed by rope.wgsl would:
// the same 64-lane sum of squares (row_norm.wgsl, the prelude), y = w * (x * rstd), then
// out1 = y1 cos - y2 sin, out2 = y2 cos + y1 sin with rope.wgsl's table (and NaN for a
// position off the table). Each invocation rotates pairs (k, k + D/2) it alone reads after the
// sum-of-squares pass, so working in place is safe.
//
// APPEND also does kv_cache.wgsl's kv_append for the layer (one dispatch fewer a decode
// layer, where each costs its launch and barrier): k and v live in one buffer (binding 4, k
// at k_off, v at v_off), Hkv more workgroups take the v heads, and every k and v row goes to
// cache position start[b] + s (token t = b S + s, S = T / B; `pos` holds the T positions and
// then the B starts), dropped at or beyond Tmax; a k head writes its rotated row after a
// storage barrier, as 32-bit words: f32, or with HALF pairs rounded by f16_bits.wgsl (a
// prelude), so the cache gets the bits kv_append would write.

struct Params {
    tokens: u32,
    hq: u32,
    hkv: u32,
    half: u32,
    table_rows: u32,
    eps: f32,
    nan: f32, // a quiet NaN, from the host
    batch: u32, // APPEND: sequences B (T / B new rows each)
    k_off: u32, // first element of k (and, APPEND, v) in binding 4
    v_off: u32,
    tmax: u32,  // APPEND: cache positions per sequence
    _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read> pos: array<u32>;
@group(0) @binding(3) var<storage, read_write> q: array<f32>;
@group(0) @binding(4) var<storage, read_write> k: array<f32>;
@group(0) @binding(5) var<storage, read> q_w: array<f32>;
@group(0) @binding(6) var<storage, read> k_w: array<f32>;
@group(0) @binding(7) var<storage, read_write> cache_k: array<u32>;
@group(0) @binding(8) var<storage, read_write> cache_v: array<u32>;

override NORM: bool = true;
override APPEND: bool = false;
override HALF: bool = false;

// Appends row `src` (D elements of binding 4) of token t, kv head g, to `cache_k` (or
// `cache_v`) at the token's cache position, one word per invocation step.
fn append_row(to_k: bool, src: u32, t: u32, g: u32, lid: u32) {
    let dim = 2u * p.half;
    let s_len = p.tokens / p.batch;
    let b = t / s_len;
    let at = pos[p.tokens + b] + t % s_len;
    if (at >= p.tmax) {
        return;
    }
    let words = select(dim, p.half, HALF);
    let row = ((b * p.hkv + g) * p.tmax + at) * words;
    for (var w = lid; w < words; w += 64u) {
        var word = 0u;
        if (HALF) {
            let lo = f32_bits_to_f16(bitcast<u32>(k[src + 2u * w]));
            word = lo | (f32_bits_to_f16(bitcast<u32>(k[src + 2u * w + 1u])) << 16u);
        } else {
            word = bitcast<u32>(k[src + w]);
        }
        if (to_k) {
            cache_k[row + w] = word;
        } else {
            cache_v[row + w] = word;
        }
    }
}

fn load(is_q: bool, i: u32) -> f32 {
    if (is_q) {
        return q[i];
    }
    return k[i];
}

fn store(is_q: bool, i: u32, v: f32) {
    if (is_q) {
        q[i] = v;
    } else {
        k[i] = v;
    }
}

// rmsnorm's output at element i of the head (offset d within it), or x itself without NORM.
fn normed(is_q: bool, i: u32, d: u32, rstd: f32) -> f32 {
    let x = load(is_q, i);
    if (!NORM) {
        return x;
    }
    let w = select(k_w[d], q_w[d], is_q);
    return w * (x * rstd);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let heads = p.hq + select(p.hkv, 2u * p.hkv, APPEND);
    let id = wg.x + wg.y * nwg.x;
    if (id >= p.tokens * heads) {
        return;
    }
    let t = id / heads;
    let h = id % heads;
    let is_q = h < p.hq;
    let dim = 2u * p.half;
    if (APPEND && h >= p.hq + p.hkv) {
        // A v head: appended as it is.
        let g = h - p.hq - p.hkv;
        append_row(false, p.v_off + (t * p.hkv + g) * dim, t, g, lid);
        return;
    }
    let base = select(p.k_off + (t * p.hkv + h - p.hq) * dim, (t * p.hq + h) * dim, is_q);
    var rstd = 1.0;
    if (NORM) {
        var ss = 0.0;
        for (var d = lid; d < dim; d += 64u) {
            let v = load(is_q, base + d);
            ss += v * v;
        }
        rstd = rstd_of(sum64(lid, ss), dim, p.eps);
    }
    let ps = pos[t];
    for (var kk = lid; kk < p.half; kk += 64u) {
        var c = p.nan;
        var s = c;
        if (ps < p.table_rows) {
            let ti = ps * dim + kk;
            c = table[ti];
            s = 1.0 * table[ti + p.half];
        }
        let y1 = normed(is_q, base + kk, kk, rstd);
        let y2 = normed(is_q, base + kk + p.half, kk + p.half, rstd);
        store(is_q, base + kk, y1 * c - y2 * s);
        store(is_q, base + kk + p.half, y2 * c + y1 * s);
    }
    if (APPEND && !is_q) {
        // The rotated row, read back whole: other invocations wrote parts of it.
        storageBarrier();
        append_row(true, base, t, h - p.hq, lid);
    }
}
