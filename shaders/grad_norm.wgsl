// Global gradient L2 norm over many tensors and the clip coefficient AdamW reads.
//   `sumsq`:  workgroup g of one tensor window writes sum(x^2) of elements
//             [g * BLOCK, (g + 1) * BLOCK) to partials[part_off + g] (one dispatch per window;
//             all tensors share one partials buffer).
//   `finish`: one workgroup folds all partials (fixed order: deterministic) and writes
//             norm[0] = sqrt(total), clip[0] = min(1, max_norm / (norm + 1e-6)).

struct Params {
    n: u32, part_off: u32, max_norm: f32, _p0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 256u;
const PER_THREAD: u32 = 16u;
const BLOCK: u32 = WG * PER_THREAD;

var<workgroup> sh: array<f32, WG>;

fn tree(lid: u32, v: f32) {
    sh[lid] = v;
    workgroupBarrier();
    for (var w = WG / 2u; w > 0u; w >>= 1u) {
        if (lid < w) {
            sh[lid] += sh[lid + w];
        }
        workgroupBarrier();
    }
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn sumsq(
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
    var acc = 0.0;
    for (var i = first + lid; i < end; i += WG) {
        let v = x[i];
        acc += v * v;
    }
    tree(lid, acc);
    if (lid == 0u) {
        partials[p.part_off + g] = sh[0];
    }
}

// Bindings of `finish`: partials (read), norm, clip (read_write); p.n = number of partials.
@group(0) @binding(1) var<storage, read> parts_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> norm: array<f32>;
@group(0) @binding(3) var<storage, read_write> clip: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn finish(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        acc += parts_in[i];
    }
    tree(lid, acc);
    if (lid == 0u) {
        let nrm = sqrt(sh[0]);
        norm[0] = nrm;
        clip[0] = min(1.0, p.max_norm / (nrm + 1e-6));
    }
}
