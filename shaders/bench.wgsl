// Micro-kernels that measure the card's own ceilings for `grrm bench kernels`: f32 FMA
// throughput and device-memory bandwidth.

struct Params {
    n: u32,      // fma: iterations per invocation; copy: vec4 elements
    seed: f32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

// Eight independent vec4 FMA chains (32 FMAs per iteration) keep the pipes full; the result is
// stored only when it cannot happen (seed is never NaN), so nothing is optimised away.
@compute @workgroup_size(256, 1, 1)
fn fma_peak(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let id = gid.x + gid.y * nwg.x * 256u;
    let x = vec4<f32>(f32(id & 7u) * 1e-7 + p.seed);
    let m = vec4<f32>(0.9999, 0.9998, 0.9997, 0.9996);
    var a0 = x;
    var a1 = x + 1.0;
    var a2 = x + 2.0;
    var a3 = x + 3.0;
    var a4 = x + 4.0;
    var a5 = x + 5.0;
    var a6 = x + 6.0;
    var a7 = x + 7.0;
    for (var i = 0u; i < p.n; i++) {
        a0 = fma(a0, m, x);
        a1 = fma(a1, m, x);
        a2 = fma(a2, m, x);
        a3 = fma(a3, m, x);
        a4 = fma(a4, m, x);
        a5 = fma(a5, m, x);
        a6 = fma(a6, m, x);
        a7 = fma(a7, m, x);
    }
    let s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
    if (s.x == 12345.678) {
        dst[id % arrayLength(&dst)] = s;
    }
}

// Grid-stride copy of n vec4 (16-byte accesses, coalesced).
@compute @workgroup_size(256, 1, 1)
fn copy_peak(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let stride = nwg.x * 256u;
    for (var i = gid.x; i < p.n; i += stride) {
        dst[i] = src[i];
    }
}
