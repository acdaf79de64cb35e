// Scaled f32 -> f16 cast of a matmul operand (mixed-precision training).
//
// f16's range (6e-8 .. 65504) would flush most gradient values of a token-mean loss to zero
// (dloss/dlogit ~ 1e-9 at 8k tokens x 150k vocabulary) and can overflow large activations, so
// every operand is cast with its own power-of-two scale s chosen on the GPU from its max |x|:
// max |x| * s lies in [2^14, 2^15). Powers of two make x * s and the matmul's unscaling (C *=
// 1/(s_a s_b)) exact; only the rounding to f16 loses anything.
//
// Two passes over the same stats buffer: `absmax` (stats[0] = bits of max |x|, via atomicMax on
// the bits, which order like the values for non-negative floats; the caller zeroes stats[0]
// first), then `quantize`, which writes round_f16(x * s) (packed, two per word) or, with
// DEQUANT, the f32 value round_f16(x * s) / s (CPU emulation of the tensor-core numerics), and
// stats[1] = 1/s for the matmul. Zero, inf or NaN maxima take s = 1 (NaN and inf pass through).
// The f32 <-> f16 bit conversions are f16_bits.wgsl's (the prelude: round to nearest even,
// gradual underflow).

struct Params {
    n: u32, // elements in this window
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

override DEQUANT: bool = false;

fn linear(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * 256u + lid;
}

// --- absmax: one invocation per 4 elements, one atomic per workgroup ---
@group(0) @binding(1) var<storage, read> am_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> am_stats: array<atomic<u32>>;

var<workgroup> partial: array<u32, 256>;

@compute @workgroup_size(256)
fn absmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) lid: u32) {
    let i0 = 4u * linear(wg, nwg, lid);
    var m = 0u;
    for (var j = 0u; j < 4u; j++) {
        if (i0 + j < p.n) {
            m = max(m, bitcast<u32>(am_x[i0 + j]) & 0x7fffffffu);
        }
    }
    partial[lid] = m;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid < s) {
            partial[lid] = max(partial[lid], partial[lid + s]);
        }
        workgroupBarrier();
    }
    if (lid == 0u && partial[0] != 0u) {
        atomicMax(&am_stats[0], partial[0]);
    }
}

// --- quantize: one invocation per pair of elements ---
@group(0) @binding(1) var<storage, read> q_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> q_stats: array<u32>;
@group(0) @binding(3) var<storage, read_write> q_out: array<u32>;

@compute @workgroup_size(256)
fn quantize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let w = linear(wg, nwg, lid);
    let k = scale_log2(q_stats[0]);
    let s = ldexp(1.0, k);
    let inv = ldexp(1.0, -k);
    if (w == 0u) {
        q_stats[1] = bitcast<u32>(inv);
    }
    let i = 2u * w;
    if (i >= p.n) {
        return;
    }
    let lo = f32_bits_to_f16(bitcast<u32>(q_x[i] * s));
    var hi = 0u;
    if (i + 1u < p.n) {
        hi = f32_bits_to_f16(bitcast<u32>(q_x[i + 1u] * s));
    }
    if (DEQUANT) {
        q_out[i] = bitcast<u32>(bitcast<f32>(f16_bits_to_f32(lo)) * inv);
        if (i + 1u < p.n) {
            q_out[i + 1u] = bitcast<u32>(bitcast<f32>(f16_bits_to_f32(hi)) * inv);
        }
    } else {
        q_out[w] = lo | (hi << 16u);
    }
}
