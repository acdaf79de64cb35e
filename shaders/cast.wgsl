// f32 <-> f16 casts on packed f16 (two halves per u32 word, element 2k in the low half).
// Both directions work on raw bits with integer arithmetic: pack2x16float's result is
// indeterminate outside the finite f16 range and Vulkan lets it round toward zero, and drivers
// may flush subnormals; the integer path is round-to-nearest-even with overflow to infinity and
// gradual underflow everywhere, bit-identical to `half::f16::from_f32` / `to_f32`.
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

fn f32_bits_to_f16(x: u32) -> u32 {
    let sign = (x >> 16u) & 0x8000u;
    let exp = (x >> 23u) & 0xffu;
    let man = x & 0x7fffffu;
    if (exp == 0xffu) {
        // Inf stays inf; NaN keeps its top payload bits and is made quiet.
        let quiet = select(0u, 0x200u, man != 0u);
        return sign | 0x7c00u | quiet | (man >> 13u);
    }
    let e = i32(exp) - 127 + 15;
    if (e >= 31) {
        return sign | 0x7c00u;
    }
    if (e <= 0) {
        // Subnormal f16 (or zero): shift the mantissa with its implicit bit into place.
        if (14 - e > 24) {
            return sign;
        }
        let m = man | 0x800000u;
        let shift = u32(14 - e);
        var h = m >> shift;
        let round_bit = 1u << (shift - 1u);
        // Round up when above half, or exactly half and the kept value is odd.
        if ((m & round_bit) != 0u && (m & (3u * round_bit - 1u)) != 0u) {
            h += 1u;
        }
        return sign | h;
    }
    let h = sign | (u32(e) << 10u) | (man >> 13u);
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    if ((man & 0x1000u) != 0u && (man & 0x2fffu) != 0u) {
        return h + 1u;
    }
    return h;
}

fn f16_bits_to_f32(h: u32) -> u32 {
    let sign = (h & 0x8000u) << 16u;
    let exp = (h >> 10u) & 0x1fu;
    let man = h & 0x3ffu;
    if (exp == 0x1fu) {
        if (man == 0u) {
            return sign | 0x7f800000u;
        }
        return sign | 0x7fc00000u | (man << 13u);
    }
    if (exp == 0u) {
        if (man == 0u) {
            return sign;
        }
        // Subnormal f16: normalise (it is a normal f32).
        let lead = 31u - firstLeadingBit(man); // leading zeros in 32 bits
        let shift = lead - 21u; // bring the top set bit to position 10
        let m = (man << shift) & 0x3ffu;
        let e = 127u - 15u + 1u - shift;
        return sign | (e << 23u) | (m << 13u);
    }
    return sign | ((exp + 112u) << 23u) | (man << 13u);
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
