// Single-token decode attention against a KV cache (one new query row per sequence): the
// function of attention.wgsl's attn_fwd with S = 1 and the cache layout (read its header for
// the masking rules), for adapters whose subgroup size is fixed. This file is the algorithm;
// it is compiled before attention_decode_f32.wgsl or attention_decode_f16.wgsl, which bind the
// cache (bindings 2 and 3) and a shared-prefix cache (7 and 8) and define load_k / load_v and
// load_pk / load_pv (vec4 i of the rows as f32).
// An f16 cache halves the bytes a step reads, which are this kernel's whole cost.
//
//   out[b, h] = softmax_j(scale * q[b, h] . K[b, g, j]) V[b, g, j] over the visible keys j,
//   g = h / G, G = Hq / Hkv; key j is visible when j <= qpos = start[b] and its mask entry
//   is 1. A query whose own position is >= Tmax or masked gets a zero row.
//
// Why this split. Decode reads every cached key and value row once per step, and the rows are
// the whole cost: attn_fwd gives each (query row, query head) a workgroup, so the G query heads
// of a kv head each re-read its rows, and each invocation walks one key row along D by itself
// (lanes read rows 512 bytes apart at D 128). Here:
// - one workgroup per (sequence b, kv head g) serves all G query heads of the group, so each
//   K and V row is read from memory once. WG = NSG x SG invocations, NSG up to 8 subgroups
//   (256 invocations at SG 32, 64 at lavapipe's 8), fewer where the merge buffer would not fit
//   (attention_decode.rs, `workgroup_size`);
// - its NSG subgroups split the keys: subgroup s takes the blocks of KU = 4 consecutive keys
//   starting at KU * (s + NSG * n), n = 0, 1, ...; the KU rows of a block are loaded together
//   (2 KU independent vec4 loads in flight per lane at D 128, SG 32);
// - inside a subgroup the lanes split D: lane `lane` owns the vec4 columns c * SG + lane,
//   c < NC = ceil(D4 / SG) (D4 = D / 4), so a row is read by coalesced vec4 loads (one per
//   chunk: 512 contiguous bytes per subgroup at D 128, SG 32); the KU x G partial dot products
//   are summed across the lanes by G vec4 subgroupAdds;
// - each subgroup keeps an online-softmax state per query head in registers: running max m,
//   sum l and the lane's NC vec4 of the output accumulator (q likewise, G * NC vec4);
// - at the end the subgroups' states merge through workgroup memory with the log-sum-exp rule:
//   M = max_s m_s, L = sum_s l_s exp(m_s - M); each subgroup stores acc_s exp(m_s - M) / L in
//   its own slice of `red` (NSG x G x D4 vec4), and after one barrier the workgroup sums the
//   slices in subgroup order (deterministic) and writes the G output rows with coalesced vec4
//   stores. Two barriers in all: each barrier splits the shader into coroutine pieces on
//   llvmpipe, where a merge with one barrier per subgroup (16 of them) compiled twice as
//   slowly (4.4 vs 2.1 s at G 3, D 32).
// Shared prefix (flag HAS_PREFIX): the first plen keys of sequence b are positions 0..plen of
// row prow of a second cache (bindings 7 and 8, [P, Hkv, PTmax, D], load_pk / load_pv), and key
// j >= plen is position j - plen of b's own cache. Beam search keeps each user's prompt once
// and gives its beams own caches of only the few positions they add, so reordering beams
// copies those few positions instead of whole prompts; the beams of one user read the same
// prompt rows (L2 hits rather than memory traffic). `start` then holds 3 B words: qpos at b,
// prow at B + b, plen at 2 B + b (no key mask with a prefix).
//
// The key mask and the causal bound are the same for the whole subgroup (one key per step), so
// a masked key's rows are never loaded (the branch is uniform in the subgroup), like rows past
// the query's position: the cache may hold anything there, NaN included. Invisible keys get
// weight exactly 0.
//
// Launch conditions (attention_decode.rs, `fits`, checks them; the proof below rests on them):
// SG is the adapter's fixed subgroup size, a power of two with 8 <= SG <= WG, and WG a multiple
// of SG, so every subgroup is full (lanes 0..SG) and NSG = WG / SG; D % 4 == 0 and D <= 256
// (D4 <= 64, so NC <= 8); 1 <= G <= 8; NSG x G x (D4 + 1/2) x 16 bytes fit the workgroup
// memory; S = 1 (q and out are [B, Hq * D]); q, the cache [B, Hkv, Tmax, D], mask [B, Tmax]
// and start [B] have the shapes the launch code checks. Override constants SG, WG, G and D4
// fix every loop bound but the key loop's and the arrays' used lengths: one pipeline per
// (adapter, model), and the driver can unroll the inner loops (the arrays then live in
// registers).
//
// Compiled without wgpu's runtime checks (shader!(trusted ...)). Function arrays: q and acc
// index h * NC + c < G * NC <= 64; kv and vv index u * NC + c < KU * NC <= 32; part index
// u * G + h and 4 * r + 3 with r < G, both < KU * G <= 32 (KU = 4); m, l < G <= 8; vis, pu
// < KU. Workgroup arrays (sized by the overrides): st_m, st_l index r * G + h < NSG * G; red
// index (r * G + h) * D4 + i with r < NSG, h < G, i < D4, and r * G * D4 + e with e < G * D4:
// both < NSG * G * D4. The subgroup index is clamped to NSG - 1 (a no-op when the subgroups
// are those the launch conditions promise). Storage: q and out rows
// (b * Hq + g * G + h) * D4 + i with b < B (w < n_wg = B * Hkv), g < Hkv, h < G, i < D4:
// below B * Hq * D4; cache rows ((b * Hkv + g) * Tmax + j) * D4 + i are read only for
// j < nk <= Tmax (nk is 0 unless qpos < Tmax); mask entries b * Tmax + j only for j < Tmax
// (the query's own entry only once qpos < Tmax is known); start[b] with b < B. The key loop
// steps by NSG * KU >= 4 up to nk <= Tmax < 2^30; every other loop counts to a constant.
// With a prefix (the launch code checks every table entry on the host): start has 3 B words,
// read at b, B + b and 2 B + b; prow < P and plen <= PTmax, so prefix rows
// ((prow * Hkv + g) * PTmax + j) * D4 + i with j < plen lie in the prefix cache; nk is 0
// unless plen <= qpos and qpos - plen < Tmax, so own rows (kb + j - plen) * D4 + i with
// plen <= j < nk stay below (kb + Tmax) * D4; the mask is never read (flag rejected).

struct Params {
    batch: u32,
    hq: u32,
    hkv: u32,
    tmax: u32,     // cache positions per sequence and head (mask entries per sequence)
    scale: f32,
    flags: u32,    // 1 = key mask bound, 2 = start positions bound (no lse: decode never asks)
    n_wg: u32,     // workgroups that do work, B * Hkv (the grid may be rounded up)
    ptmax: u32,    // prefix cache positions per row (flag 4 only)
}

override SG: u32 = 32u;  // the adapter's subgroup size (fixed)
override G: u32 = 1u;    // query heads per kv head, 1..=8
override D4: u32 = 32u;  // D / 4, 1..=64
override NC: u32 = (D4 + SG - 1u) / SG;  // vec4 columns per lane
override WG: u32 = 128u;                 // invocations per workgroup
override NSG: u32 = WG / SG;             // subgroups per workgroup

const KU: u32 = 4u;      // keys per subgroup step
const MAX_G: u32 = 8u;
const MAX_D4: u32 = 64u;
const MAX_V: u32 = 64u;  // MAX_G * MAX_NC (MAX_NC = MAX_D4 / 8 = 8)
const MAX_KV: u32 = 32u; // KU * MAX_NC
const MAX_P: u32 = 32u;  // KU * MAX_G
const NEG: f32 = -3.0e38;
const HAS_MASK: u32 = 1u;
const HAS_START: u32 = 2u;
const HAS_PREFIX: u32 = 4u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> mask: array<u32>;
@group(0) @binding(5) var<storage, read> start: array<u32>;
@group(0) @binding(6) var<storage, read_write> out4: array<vec4<f32>>;

override NRED: u32 = NSG * G * D4;
override NST: u32 = NSG * G;
var<workgroup> red: array<vec4<f32>, NRED>;
var<workgroup> st_m: array<f32, NST>;
var<workgroup> st_l: array<f32, NST>;

fn key_visible(b: u32, j: u32) -> bool {
    return (p.flags & HAS_MASK) == 0u || mask[b * p.tmax + j] != 0u;
}

@compute @workgroup_size(WG, 1, 1)
fn attn_decode(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    @builtin(subgroup_id) sub: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let w = wg.x + wg.y * nwg.x;
    if (w >= p.n_wg) {
        return;
    }
    let b = w / p.hkv;
    let g = w % p.hkv;
    let s = min(sub, NSG - 1u);
    var qpos = 0u;
    if ((p.flags & HAS_START) != 0u) {
        qpos = start[b];
    }
    // Keys below plen come from row prow of the prefix cache (none without a prefix).
    var plen = 0u;
    var pbase = 0u;
    var real = false;
    if ((p.flags & HAS_PREFIX) != 0u) {
        plen = start[2u * p.batch + b];
        pbase = (start[p.batch + b] * p.hkv + g) * p.ptmax;
        real = plen <= qpos && qpos - plen < p.tmax;
    } else {
        real = qpos < p.tmax && key_visible(b, qpos);
    }
    let nk = select(0u, qpos + 1u, real);

    // Query head rows h0 + h, h < G, of this group.
    let h0 = b * p.hq + g * G;
    var q: array<vec4<f32>, MAX_V>;
    var acc: array<vec4<f32>, MAX_V>;
    var m: array<f32, MAX_G>;
    var l: array<f32, MAX_G>;
    for (var h = 0u; h < G; h++) {
        m[h] = NEG;
        l[h] = 0.0;
        for (var c = 0u; c < NC; c++) {
            let i = c * SG + lane;
            var x = vec4<f32>(0.0);
            if (i < D4) {
                x = q4[(h0 + h) * D4 + i];
            }
            q[h * NC + c] = x;
            acc[h * NC + c] = vec4<f32>(0.0);
        }
    }

    let kb = (b * p.hkv + g) * p.tmax;
    // Per-block scratch, declared once (WGSL zero-fills a declaration each time it runs).
    var kv: array<vec4<f32>, MAX_KV>;
    var vv: array<vec4<f32>, MAX_KV>;
    var vis: array<bool, KU>;
    var part: array<f32, MAX_P>;
    var pu: array<f32, KU>;
    for (var j0 = s * KU; j0 < nk; j0 += NSG * KU) {
        // Load the block's K and V rows (invisible keys: zeros, nothing read).
        for (var u = 0u; u < KU; u++) {
            let j = j0 + u;
            let seen = j < nk && key_visible(b, j);
            vis[u] = seen;
            // (j is the same on every lane: the branch is uniform.)
            let in_prefix = j < plen;
            let row = select(kb + j - plen, pbase + j, in_prefix) * D4;
            for (var c = 0u; c < NC; c++) {
                let i = c * SG + lane;
                var kx = vec4<f32>(0.0);
                var vx = vec4<f32>(0.0);
                if (seen && i < D4) {
                    if (in_prefix) {
                        kx = load_pk(row + i);
                        vx = load_pv(row + i);
                    } else {
                        kx = load_k(row + i);
                        vx = load_v(row + i);
                    }
                }
                kv[u * NC + c] = kx;
                vv[u * NC + c] = vx;
            }
        }
        // Partial dot products of this lane's columns, then summed over the subgroup.
        for (var u = 0u; u < KU; u++) {
            for (var h = 0u; h < G; h++) {
                var d = 0.0;
                for (var c = 0u; c < NC; c++) {
                    d += dot(q[h * NC + c], kv[u * NC + c]);
                }
                part[u * G + h] = d;
            }
        }
        for (var r = 0u; r < G; r++) {
            let x = subgroupAdd(vec4<f32>(
                part[4u * r], part[4u * r + 1u], part[4u * r + 2u], part[4u * r + 3u]));
            part[4u * r] = x.x;
            part[4u * r + 1u] = x.y;
            part[4u * r + 2u] = x.z;
            part[4u * r + 3u] = x.w;
        }
        // Online softmax per query head over the block's KU keys.
        for (var h = 0u; h < G; h++) {
            var mx = m[h];
            for (var u = 0u; u < KU; u++) {
                let sc = select(NEG, part[u * G + h] * p.scale, vis[u]);
                part[u * G + h] = sc;
                mx = max(mx, sc);
            }
            // mx == m[h] == NEG (nothing visible yet) gives alpha 1 on a still-zero state.
            let alpha = exp(m[h] - mx);
            var ls = l[h] * alpha;
            for (var u = 0u; u < KU; u++) {
                pu[u] = select(0.0, exp(part[u * G + h] - mx), vis[u]);
                ls += pu[u];
            }
            for (var c = 0u; c < NC; c++) {
                var a = acc[h * NC + c] * alpha;
                for (var u = 0u; u < KU; u++) {
                    a += pu[u] * vv[u * NC + c];
                }
                acc[h * NC + c] = a;
            }
            m[h] = mx;
            l[h] = ls;
        }
    }

    // Merge the subgroups' states: M, L per head from every subgroup's (m, l) ...
    if (lane == 0u) {
        for (var h = 0u; h < G; h++) {
            st_m[s * G + h] = m[h];
            st_l[s * G + h] = l[h];
        }
    }
    workgroupBarrier();
    for (var h = 0u; h < G; h++) {
        var mx = NEG;
        for (var r = 0u; r < NSG; r++) {
            mx = max(mx, st_m[r * G + h]);
        }
        var ls = 0.0;
        for (var r = 0u; r < NSG; r++) {
            ls += st_l[r * G + h] * exp(st_m[r * G + h] - mx);
        }
        // A query that sees nothing (ls == 0) gets a zero row.
        let f = select(0.0, exp(m[h] - mx) / ls, ls > 0.0);
        for (var c = 0u; c < NC; c++) {
            acc[h * NC + c] *= f;
        }
    }
    // ... then every subgroup's rescaled accumulator into its own slice, summed per output
    // element in subgroup order (deterministic).
    for (var h = 0u; h < G; h++) {
        for (var c = 0u; c < NC; c++) {
            let i = c * SG + lane;
            if (i < D4) {
                red[(s * G + h) * D4 + i] = acc[h * NC + c];
            }
        }
    }
    workgroupBarrier();
    for (var e = t; e < G * D4; e += WG) {
        var x = red[e];
        for (var r = 1u; r < NSG; r++) {
            x += red[r * G * D4 + e];
        }
        out4[h0 * D4 + e] = x;
    }
}
