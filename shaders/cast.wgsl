// f32 <-> f16 casts on packed f16 (two halves per u32 word, element 2k in the low half).
// Both directions are f16_bits.wgsl's (the prelude): bit-identical to `half::f16`.
// The last word of an odd-length f16 tensor has its high half zero.

struct Params {
    n: u32, // elements in this window
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn linear(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * 256u + lid;
}

// One invocation per output word: elements 2w and 2w+1.
@group(0) @binding(1) var<storage, read> to16_in: array<u32>;
@group(0) @binding(2) var<storage, read_write> to16_out: array<u32>;

@compute @workgroup_size(256)
fn f32_to_f16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let w = linear(wg, nwg, lid);
    let i = 2u * w;
    if (i >= p.n) {
        return;
    }
    let lo = f32_bits_to_f16(to16_in[i]);
    var hi = 0u;
    if (i + 1u < p.n) {
        hi = f32_bits_to_f16(to16_in[i + 1u]);
    }
    to16_out[w] = lo | (hi << 16u);
}

// One invocation per input word.
@group(0) @binding(1) var<storage, read> to32_in: array<u32>;
@group(0) @binding(2) var<storage, read_write> to32_out: array<u32>;

@compute @workgroup_size(256)
fn f16_to_f32(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let w = linear(wg, nwg, lid);
    let i = 2u * w;
    if (i >= p.n) {
        return;
    }
    let word = to32_in[w];
    to32_out[i] = f16_bits_to_f32(word & 0xffffu);
    if (i + 1u < p.n) {
        to32_out[i + 1u] = f16_bits_to_f32(word >> 16u);
    }
}
