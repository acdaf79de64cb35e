// f32 <-> f16 conversions on raw bits with integer arithmetic, the prelude of every kernel that
// writes or widens packed f16 (cast, cast_scaled, quantize_rows). pack2x16float's result is
// indeterminate outside the finite f16 range and Vulkan lets it round toward zero, and drivers
// may flush subnormals; this path is round-to-nearest-even with overflow to infinity and gradual
// underflow everywhere, bit-identical to `half::f16::from_f32` / `to_f32`.

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

// log2 of the power-of-two scale s for an operand whose max |x| has the f32 bits `a`: max |x| * s
// lies in [2^14, 2^15), so nothing overflows f16 and small values keep their precision. Zero,
// inf or NaN maxima take s = 1.
fn scale_log2(a: u32) -> i32 {
    let e = i32((a >> 23u) & 0xffu);
    if (a == 0u || e == 255) {
        return 0;
    }
    // max |x| < 2^(e - 126) (subnormals: e = 0 behaves like e = 1).
    return clamp(14 - (max(e, 1) - 127), -126, 126);
}
