// Next-token choice on the GPU: one workgroup per row of log-probabilities x (log-softmax at the
// sampling temperature, computed by softmax.wgsl in the same recording), so only the chosen
// token id and its log-prob go back to the host.
//
// Semantics (the host reference `generate::choose_with` implements the same definition in f64):
// - Candidates: the whole row, or the row's allowed-id list (strictly ascending ids). Candidate j
//   is the j-th of them; "index order" is j ascending.
// - Rank order: by key(x) descending (key = the order-preserving u32 image of the f32 bits, i.e.
//   IEEE totalOrder), then by j ascending. No candidates: token 0.
// - Greedy: the first candidate in rank order.
// - Sampling: K = the first top_k candidates in rank order (all when top_k = 0 or >= n);
//   weights w = exp(x - x_max); N = the shortest rank-order prefix of K whose weight is at least
//   top_p * W(K) (all of K when top_p >= 1; only the first when top_p <= 0); the token is the
//   first member of N in index order whose cumulative weight (index order) exceeds u * W(N).
//   u in [0, 1) is the row's uniform, drawn by the host from the sequence's RNG.
// - The log-prob written is x[token] itself.
//
// Arithmetic: masses are f32 sums in a fixed order (deterministic). The top-p threshold is found
// by a search over the key space that evaluates 8 thresholds per pass (one workgroup reduction
// each pass); top-k by a 4-pass radix select on keys with workgroup-atomic histograms (integer
// counts, exact); ties at either cut are resolved in index order by a chunked count + scan; the
// inverse-CDF pick walks contiguous chunks (one per invocation) after a scan of chunk sums.
//
// Rows come in windows of one binding: row i of the window starts at base + i * v of x; its
// instructions are rows[(row0 + i) * 4 ..]: allowed start, allowed count, flags, bits of u.
// Output out[(row0 + i) * 2 ..]: token id, bits of its log-prob (skipped rows: 0xffffffff, 0).

struct Params {
    rows: u32, v: u32, base: u32, row0: u32,
    greedy: u32, top_k: u32, top_p: f32, _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> rows: array<u32>;
@group(0) @binding(3) var<storage, read> allowed: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

// Invocations per row: 1024 on GPUs that allow it (sample.rs), where a row's ~12 passes are
// bound by load latency and four times the loads in flight make them ~4x shorter; 256 (at
// least the 256 histogram bins) elsewhere.
override WG: u32 = 256u;
const CONSTRAINED: u32 = 1u;
const SKIP: u32 = 2u;
const NONE: u32 = 0xffffffffu;

var<workgroup> sh_a: array<u32, WG>;
var<workgroup> sh_b: array<u32, WG>;
var<workgroup> sh_c: array<u32, WG>;
var<workgroup> sh_s: array<f32, WG>;
var<workgroup> sh_m0: array<vec4<f32>, WG>;
var<workgroup> hist: array<atomic<u32>, 256>;
var<workgroup> bc: array<u32, 4>;

// The row this workgroup samples (every invocation holds the same values).
var<private> row_x: u32;
var<private> n: u32;
var<private> constrained: bool;
var<private> first_allowed: u32;
var<private> xmax: f32;

fn key_of(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    return select(b | 0x80000000u, ~b, (b & 0x80000000u) != 0u);
}

fn value_of(k: u32) -> f32 {
    return bitcast<f32>(select(~k, k & 0x7fffffffu, (k & 0x80000000u) != 0u));
}

fn id_of(j: u32) -> u32 {
    if (constrained) {
        return allowed[first_allowed + j];
    }
    return j;
}

fn val(j: u32) -> f32 {
    return x[row_x + id_of(j)];
}

fn weight(v: f32) -> f32 {
    return exp(v - xmax);
}

// Membership of a rank-order prefix given by its last element: key > kt, or key == kt and j <= jt.
fn member(k: u32, j: u32, kt: u32, jt: u32) -> bool {
    return k > kt || (k == kt && j <= jt);
}

// Contiguous chunk of candidates owned by invocation `lid` (for index-order scans).
fn chunk_lo(lid: u32) -> u32 {
    return min(n, lid * ((n + WG - 1u) / WG));
}

fn chunk_hi(lid: u32) -> u32 {
    return min(n, (lid + 1u) * ((n + WG - 1u) / WG));
}

fn emit(r: u32, j: u32) {
    let id = id_of(j);
    out[r * 2u] = id;
    out[r * 2u + 1u] = bitcast<u32>(x[row_x + id]);
}

// Inclusive prefix sums of sh_a / sh_s (Hillis-Steele: fixed order, deterministic).
fn scan_a(lid: u32) {
    for (var off = 1u; off < WG; off <<= 1u) {
        let add = select(0u, sh_a[max(lid, off) - off], lid >= off);
        workgroupBarrier();
        sh_a[lid] += add;
        workgroupBarrier();
    }
}

fn scan_s(lid: u32) {
    for (var off = 1u; off < WG; off <<= 1u) {
        let add = select(0.0, sh_s[max(lid, off) - off], lid >= off);
        workgroupBarrier();
        sh_s[lid] += add;
        workgroupBarrier();
    }
}

// Index j of the c-th candidate (1-based, index order) whose key is kt; c is clamped to
// [1, count]. kt must be the key of some candidate.
fn nth_with_key(kt: u32, c_in: u32, lid: u32) -> u32 {
    let lo = chunk_lo(lid);
    let hi = chunk_hi(lid);
    var cnt = 0u;
    for (var j = lo; j < hi; j += 1u) {
        if (key_of(val(j)) == kt) {
            cnt += 1u;
        }
    }
    workgroupBarrier();
    sh_a[lid] = cnt;
    workgroupBarrier();
    scan_a(lid);
    let c = clamp(c_in, 1u, sh_a[WG - 1u]);
    let before = select(0u, sh_a[max(lid, 1u) - 1u], lid > 0u);
    if (before < c && c <= sh_a[lid]) {
        var seen = before;
        for (var j = lo; j < hi; j += 1u) {
            if (key_of(val(j)) == kt) {
                seen += 1u;
                if (seen == c) {
                    bc[2] = j;
                    break;
                }
            }
        }
    }
    workgroupBarrier();
    let res = bc[2];
    workgroupBarrier();
    return res;
}

// The top-k cut: returns (kt, jt, ties) where (kt, jt) ends the first k candidates in rank
// order and `ties` of them have key kt.
fn top_k_cut(k: u32, lid: u32) -> vec3<u32> {
    var prefix = 0u;
    var mask = 0u;
    var need = k;
    for (var level = 0u; level < 4u; level += 1u) {
        let shift = 24u - 8u * level;
        if (lid < 256u) {
            atomicStore(&hist[lid], 0u);
        }
        workgroupBarrier();
        // Runs of equal bins are added at once: the leading bytes of nearby values agree, and
        // one shared counter hit by every invocation would serialise.
        var run_bin = 0u;
        var run_n = 0u;
        for (var j = lid; j < n; j += WG) {
            let kj = key_of(val(j));
            if ((kj & mask) == prefix) {
                let b = (kj >> shift) & 255u;
                if (run_n > 0u && b != run_bin) {
                    atomicAdd(&hist[run_bin], run_n);
                    run_n = 0u;
                }
                run_bin = b;
                run_n += 1u;
            }
        }
        if (run_n > 0u) {
            atomicAdd(&hist[run_bin], run_n);
        }
        workgroupBarrier();
        if (lid == 0u) {
            var acc = 0u;
            var b = 255u;
            loop {
                let h = atomicLoad(&hist[b]);
                if (acc + h >= need || b == 0u) {
                    break;
                }
                acc += h;
                b -= 1u;
            }
            bc[0] = prefix | (b << shift);
            bc[1] = need - acc;
        }
        workgroupBarrier();
        prefix = bc[0];
        need = bc[1];
        mask |= 255u << shift;
        workgroupBarrier();
    }
    return vec3<u32>(prefix, nth_with_key(prefix, need, lid), need);
}

// The workgroup's sum of one vec4 per invocation (fixed tree: deterministic).
fn sum_vec4(x: vec4<f32>, lid: u32) -> vec4<f32> {
    workgroupBarrier();
    sh_m0[lid] = x;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
        if (lid < w) {
            sh_m0[lid] += sh_m0[lid + w];
        }
        workgroupBarrier();
    }
    let res = sh_m0[0];
    workgroupBarrier();
    return res;
}

// Adds candidate j (value v) to the masses of the 8 thresholds when it is a member of K with
// key in [lo, hi).
fn mass_add(v: f32, j: u32, lo: u32, hi: u32, ta: vec4<u32>, tb: vec4<u32>, kk: u32, jk: u32,
            a0: ptr<function, vec4<f32>>, a1: ptr<function, vec4<f32>>) {
    let k = key_of(v);
    if (k >= lo && k < hi && member(k, j, kk, jk)) {
        let w = vec4<f32>(weight(v));
        let kv = vec4<u32>(k);
        *a0 += select(vec4<f32>(0.0), w, kv >= ta);
        *a1 += select(vec4<f32>(0.0), w, kv >= tb);
    }
}

// Sums over the members of K (kk, jk) with key in [lo, hi), for the 8 thresholds t: the weight
// of those with key >= t. An invocation's candidates are j = lid, lid + WG, ..., taken four
// loads at a time (the pass is bound by load latency: one load in flight per invocation made
// each of a row's ~10 passes ~75 us on an H100) and added in that same order.
fn masses(lo: u32, hi: u32, ta: vec4<u32>, tb: vec4<u32>, kk: u32, jk: u32, lid: u32) -> mat2x4<f32> {
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var j = lid;
    for (; j + 3u * WG < n; j += 4u * WG) {
        let v0 = val(j);
        let v1 = val(j + WG);
        let v2 = val(j + 2u * WG);
        let v3 = val(j + 3u * WG);
        mass_add(v0, j, lo, hi, ta, tb, kk, jk, &a0, &a1);
        mass_add(v1, j + WG, lo, hi, ta, tb, kk, jk, &a0, &a1);
        mass_add(v2, j + 2u * WG, lo, hi, ta, tb, kk, jk, &a0, &a1);
        mass_add(v3, j + 3u * WG, lo, hi, ta, tb, kk, jk, &a0, &a1);
    }
    for (; j < n; j += WG) {
        mass_add(val(j), j, lo, hi, ta, tb, kk, jk, &a0, &a1);
    }
    // One array for both halves, one after the other (two arrays of WG vec4s would not fit
    // 48 KiB at WG = 1024).
    let m0 = sum_vec4(a0, lid);
    let m1 = sum_vec4(a1, lid);
    return mat2x4<f32>(m0, m1);
}

// The top-p cut inside K: returns (kt, jt) ending the shortest rank-order prefix of K whose
// weight reaches need_w = top_p * W(K). Invariant of the search: M(lo) >= need_w > M(hi), where M(t) is
// the weight of K's members with key >= t (M(kmax + 1) = 0).
fn top_p_cut(kk: u32, jk: u32, k_ties: u32, kmax: u32, lid: u32) -> vec2<u32> {
    var lo = kk;
    var hi = select(kmax + 1u, kmax, kmax == NONE);
    var m_hi = 0.0;
    var need_w = 0.0;
    var first = true;
    loop {
        let d = hi - lo;
        if (!first && d <= 1u) {
            break;
        }
        var t: array<u32, 8>;
        for (var m = 0u; m < 8u; m += 1u) {
            t[m] = lo + (d / 8u) * m + ((d % 8u) * m) / 8u;
        }
        let ta = vec4<u32>(t[0], t[1], t[2], t[3]);
        let tb = vec4<u32>(t[4], t[5], t[6], t[7]);
        let s = masses(lo, hi, ta, tb, kk, jk, lid);
        var ms: array<f32, 8>;
        for (var m = 0u; m < 4u; m += 1u) {
            ms[m] = m_hi + s[0][m];
            ms[m + 4u] = m_hi + s[1][m];
        }
        if (first) {
            need_w = p.top_p * ms[0];
            first = false;
        }
        var nlo = lo;
        var nhi = hi;
        var nm_hi = m_hi;
        for (var m = 1u; m < 8u; m += 1u) {
            if (t[m] == lo) {
                continue;
            }
            if (ms[m] >= need_w) {
                nlo = t[m];
            } else {
                nhi = t[m];
                nm_hi = ms[m];
                break;
            }
        }
        lo = nlo;
        hi = nhi;
        m_hi = nm_hi;
    }
    // Ties at the cut key: as many (index order) as the mass still needs, within K.
    let w = weight(value_of(lo));
    let need = ceil(min((need_w - m_hi) / w, 4.0e9));
    var c = u32(max(need, 1.0));
    if (lo == kk) {
        c = min(c, k_ties);
    }
    return vec2<u32>(lo, nth_with_key(lo, c, lid));
}

// Candidate j (key k) into an invocation's running first-in-rank-order (bk, bj) and least key.
fn first_add(k: u32, j: u32, bk: ptr<function, u32>, bj: ptr<function, u32>,
             mn: ptr<function, u32>) {
    if (*bj == NONE || k > *bk) {
        *bk = k;
        *bj = j;
    }
    *mn = min(*mn, k);
}

@compute @workgroup_size(WG, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = wg.x + wg.y * nwg.x;
    if (i >= p.rows) {
        return;
    }
    let r = p.row0 + i;
    let flags = rows[r * 4u + 2u];
    if ((flags & SKIP) != 0u) {
        if (lid == 0u) {
            out[r * 2u] = NONE;
            out[r * 2u + 1u] = 0u;
        }
        return;
    }
    row_x = p.base + i * p.v;
    constrained = (flags & CONSTRAINED) != 0u;
    first_allowed = rows[r * 4u];
    n = select(p.v, rows[r * 4u + 1u], constrained);
    if (n == 0u) {
        if (lid == 0u) {
            out[r * 2u] = 0u;
            out[r * 2u + 1u] = bitcast<u32>(x[row_x]);
        }
        return;
    }

    // The first candidate in rank order, and the smallest key.
    var bk = 0u;
    var bj = NONE;
    var mn = NONE;
    // Four loads at a time, taken in order (as in `masses`).
    var j = lid;
    for (; j + 3u * WG < n; j += 4u * WG) {
        let v0 = val(j);
        let v1 = val(j + WG);
        let v2 = val(j + 2u * WG);
        let v3 = val(j + 3u * WG);
        first_add(key_of(v0), j, &bk, &bj, &mn);
        first_add(key_of(v1), j + WG, &bk, &bj, &mn);
        first_add(key_of(v2), j + 2u * WG, &bk, &bj, &mn);
        first_add(key_of(v3), j + 3u * WG, &bk, &bj, &mn);
    }
    for (; j < n; j += WG) {
        first_add(key_of(val(j)), j, &bk, &bj, &mn);
    }
    sh_a[lid] = bk;
    sh_b[lid] = bj;
    sh_c[lid] = mn;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
        if (lid < w) {
            let k2 = sh_a[lid + w];
            let j2 = sh_b[lid + w];
            let k1 = sh_a[lid];
            let j1 = sh_b[lid];
            if (j2 != NONE && (j1 == NONE || k2 > k1 || (k2 == k1 && j2 < j1))) {
                sh_a[lid] = k2;
                sh_b[lid] = j2;
            }
            sh_c[lid] = min(sh_c[lid], sh_c[lid + w]);
        }
        workgroupBarrier();
    }
    let kmax = sh_a[0];
    let jmax = sh_b[0];
    let kmin = sh_c[0];
    workgroupBarrier();
    xmax = val(jmax);
    if (p.greedy != 0u || n == 1u || p.top_p <= 0.0) {
        if (lid == 0u) {
            emit(r, jmax);
        }
        return;
    }

    // K, then N, as (last key, last index) of a rank-order prefix.
    var kt = kmin;
    var jt = n - 1u;
    var k_ties = n;
    if (p.top_k > 0u && p.top_k < n) {
        let cut = top_k_cut(p.top_k, lid);
        kt = cut.x;
        jt = cut.y;
        k_ties = cut.z;
    }
    if (p.top_p < 1.0) {
        let cut = top_p_cut(kt, jt, k_ties, kmax, lid);
        kt = cut.x;
        jt = cut.y;
    }

    // Inverse CDF over N in index order: chunk sums, their scan, then the owning chunk walks
    // its members (comparing the in-chunk running sum against what remains of the goal).
    let lo = chunk_lo(lid);
    let hi = chunk_hi(lid);
    var s = 0.0;
    for (var j = lo; j < hi; j += 1u) {
        let v = val(j);
        if (member(key_of(v), j, kt, jt)) {
            s += weight(v);
        }
    }
    sh_s[lid] = s;
    workgroupBarrier();
    scan_s(lid);
    let total = sh_s[WG - 1u];
    let u = bitcast<f32>(rows[r * 4u + 3u]);
    let goal = u * total;
    let before = select(0.0, sh_s[max(lid, 1u) - 1u], lid > 0u);
    let mine = sh_s[lid];
    let fallback = !(total > goal);
    let owner = select(mine > goal && before <= goal, mine >= total && before < total, fallback);
    if (owner) {
        let rest = goal - before;
        var run = 0.0;
        var last = NONE;
        var last_pos = NONE;
        var picked = NONE;
        for (var j = lo; j < hi; j += 1u) {
            let v = val(j);
            if (member(key_of(v), j, kt, jt)) {
                let w = weight(v);
                run += w;
                last = j;
                if (w > 0.0) {
                    last_pos = j;
                }
                if (!fallback && run > rest) {
                    picked = j;
                    break;
                }
            }
        }
        if (picked == NONE) {
            picked = select(last, last_pos, last_pos != NONE);
        }
        emit(r, picked);
    }
}
