// KV-cache maintenance for decoding. Cache layout [B, Hkv, Tmax, D]: each head's keys of one
// sequence are contiguous rows of D, which is what the decode attention streams. A cache holds
// f32, or f16 (two per 32-bit word, element 2i in the low half); every entry here moves 32-bit
// words, so gathers are the same for both and d counts words per row (D, or D / 2).
//
// kv_append: new rows k_new/v_new [B*S, Hkv*D] f32 (as the projections produce them) go to cache
//   positions start[b] + s, s < S. Rows that would land at or beyond Tmax are dropped (the
//   attention treats queries past the capacity as empty). One invocation per cache word: an f32
//   element, or with HALF a pair of elements rounded to nearest even (f16_bits.wgsl, compiled
//   before this file; D even).
// kv_gather: dst[b] = src[index[b]] for both caches (beam reordering); an index outside the
//   source batch yields a zero row. Positions below keep[b] are left as they are (beam search
//   skips a prompt the destination row already holds), and so are positions from p1 on (past
//   every source row's length: nothing a query can see). Source and destination must be
//   different buffers.
// kv_widen: an f16 cache's words as an f32 cache of the same shape (d = D / 2 words a row of
//   the source; n = its word count): for the attention kernels that read f32 caches only.
// Consecutive invocations on consecutive words of a row.

struct Params {
    batch: u32,     // append: B; gather: destination batch
    rows: u32,      // append: S new rows per sequence; gather: source batch
    hkv: u32,
    d: u32,         // words per cache row
    tmax: u32,
    n: u32,         // words to process
    p0: u32,        // gather: positions below p0 are not visited (every keep[b] >= p0)
    p1: u32,        // gather: nor are positions from p1 on (p0 <= p1 <= tmax)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src_k: array<u32>;
@group(0) @binding(2) var<storage, read> src_v: array<u32>;
@group(0) @binding(3) var<storage, read> index: array<u32>;
@group(0) @binding(4) var<storage, read_write> dst_k: array<u32>;
@group(0) @binding(5) var<storage, read_write> dst_v: array<u32>;
@group(0) @binding(6) var<storage, read> keep: array<u32>; // kv_gather only

fn element(wg: vec3<u32>, nwg: vec3<u32>, t: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * 256u + t;
}

// The cache word that word e of the new rows [B, S, Hkv, d] goes to, or 0xffffffff when its
// position is at or beyond Tmax (dropped).
fn append_target(e: u32) -> u32 {
    let dd = e % p.d;
    let r = e / p.d;
    let g = r % p.hkv;
    let bs = r / p.hkv;
    let s = bs % p.rows;
    let b = bs / p.rows;
    let pos = index[b] + s;
    if (pos >= p.tmax) {
        return 0xffffffffu;
    }
    return ((b * p.hkv + g) * p.tmax + pos) * p.d + dd;
}

// kv_append: whether the cache holds f16 pairs rather than f32.
override HALF: bool = false;

@compute @workgroup_size(256, 1, 1)
fn kv_append(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let e = element(wg, nwg, t);
    if (e >= p.n) {
        return;
    }
    let at = append_target(e);
    if (at == 0xffffffffu) {
        return;
    }
    if (HALF) {
        dst_k[at] = f32_bits_to_f16(src_k[2u * e]) | (f32_bits_to_f16(src_k[2u * e + 1u]) << 16u);
        dst_v[at] = f32_bits_to_f16(src_v[2u * e]) | (f32_bits_to_f16(src_v[2u * e + 1u]) << 16u);
    } else {
        dst_k[at] = src_k[e];
        dst_v[at] = src_v[e];
    }
}

@compute @workgroup_size(256, 1, 1)
fn kv_gather(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    // w indexes the window [B, Hkv, p1 - p0, d] of positions p0..p1 (n = its size).
    let w = element(wg, nwg, t);
    if (w >= p.n) {
        return;
    }
    let span = p.p1 - p.p0;
    let dd = w % p.d;
    let pos = p.p0 + (w / p.d) % span;
    let bg = w / (p.d * span);
    let b = bg / p.hkv;
    if (pos < keep[b]) {
        return;
    }
    let per = p.hkv * p.tmax * p.d;
    let e = (bg * p.tmax + pos) * p.d + dd;
    let sb = index[b];
    if (sb >= p.rows) {
        dst_k[e] = 0u;
        dst_v[e] = 0u;
        return;
    }
    let at = sb * per + e % per;
    dst_k[e] = src_k[at];
    dst_v[e] = src_v[at];
}

@compute @workgroup_size(256, 1, 1)
fn kv_widen(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let w = element(wg, nwg, t);
    if (w >= p.n) {
        return;
    }
    let k = src_k[w];
    let v = src_v[w];
    dst_k[2u * w] = f16_bits_to_f32(k & 0xffffu);
    dst_k[2u * w + 1u] = f16_bits_to_f32(k >> 16u);
    dst_v[2u * w] = f16_bits_to_f32(v & 0xffffu);
    dst_v[2u * w + 1u] = f16_bits_to_f32(v >> 16u);
}
