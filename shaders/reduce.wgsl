// Sum, mean and max of an f32 tensor of any length, optionally masked (u32 mask, nonzero =
// included), into a 1-element tensor. Deterministic: a fixed assignment of elements to
// invocations and fixed-order trees, no atomics.
//   `partial`: workgroup g of a window reduces elements [g * BLOCK, (g + 1) * BLOCK) of it into
//              partials[2 * (part_off + g)] = bits of the value, [.. + 1] = count (for the mean);
//              u32 words so no driver can flush or canonicalise the value on the way.
//   `finish`:  one workgroup folds every partial into out[0].

struct Params {
    n: u32, part_off: u32, op: u32, masked: u32, // op: 0 = sum, 1 = mean, 2 = max
    _p0: u32, _p1: u32, _p2: u32, _p3: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 256u;
const PER_THREAD: u32 = 16u;
const BLOCK: u32 = WG * PER_THREAD;
const OP_MAX: u32 = 2u;

var<workgroup> sh_v: array<f32, WG>;
var<workgroup> sh_c: array<u32, WG>;

fn neg_inf() -> f32 {
    return bitcast<f32>(0xff800000u);
}

fn identity() -> f32 {
    return select(0.0, neg_inf(), p.op == OP_MAX);
}

fn combine(a: f32, b: f32) -> f32 {
    return select(a + b, max(a, b), p.op == OP_MAX);
}

// Leaves the workgroup's (value, count) in sh_v[0], sh_c[0].
fn tree(lid: u32, v: f32, c: u32) {
    sh_v[lid] = v;
    sh_c[lid] = c;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
        if (lid < w) {
            sh_v[lid] = combine(sh_v[lid], sh_v[lid + w]);
            sh_c[lid] += sh_c[lid + w];
        }
        workgroupBarrier();
    }
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> mask: array<u32>;
@group(0) @binding(3) var<storage, read_write> partials: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn partial(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = wg.x + wg.y * nwg.x;
    let first = g * BLOCK;
    if (first >= p.n) {
        return;
    }
    let end = min(first + BLOCK, p.n);
    var v = identity();
    var c = 0u;
    for (var i = first + lid; i < end; i += WG) {
        if (p.masked == 0u || mask[i] != 0u) {
            v = combine(v, x[i]);
            c += 1u;
        }
    }
    tree(lid, v, c);
    if (lid == 0u) {
        let k = 2u * (p.part_off + g);
        partials[k] = bitcast<u32>(sh_v[0]);
        partials[k + 1u] = sh_c[0];
    }
}

// Bindings of `finish`: partials (read), out (read_write); p.n = number of partials.
@group(0) @binding(1) var<storage, read> parts_in: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn finish(@builtin(local_invocation_index) lid: u32) {
    var v = identity();
    var c = 0u;
    for (var i = lid; i < p.n; i += WG) {
        v = combine(v, bitcast<f32>(parts_in[2u * i]));
        c += parts_in[2u * i + 1u];
    }
    tree(lid, v, c);
    if (lid == 0u) {
        var r = sh_v[0];
        if (p.op == 1u) {
            // The mean of no elements is NaN, as in PyTorch.
            r = select(bitcast<f32>(0x7fc00000u), r / f32(sh_c[0]), sh_c[0] > 0u);
        }
        out[0] = r;
    }
}
