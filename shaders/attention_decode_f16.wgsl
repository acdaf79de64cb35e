// attention_decode.wgsl over an f16 cache (kv_cache.wgsl's kv_append with HALF: two halves a
// word, the lower element in the low half): vec4 i of the K and V rows is one 8-byte load,
// widened by unpack2x16float (exact, though a driver may flush f16 subnormals to zero), so the
// kernel computes what it would on an f32 cache holding the same rounded values.

@group(0) @binding(2) var<storage, read> k2: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> v2: array<vec2<u32>>;
@group(0) @binding(7) var<storage, read> pk2: array<vec2<u32>>;
@group(0) @binding(8) var<storage, read> pv2: array<vec2<u32>>;

fn widen(w: vec2<u32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}

fn load_k(i: u32) -> vec4<f32> {
    return widen(k2[i]);
}

fn load_v(i: u32) -> vec4<f32> {
    return widen(v2[i]);
}

fn load_pk(i: u32) -> vec4<f32> {
    return widen(pk2[i]);
}

fn load_pv(i: u32) -> vec4<f32> {
    return widen(pv2[i]);
}
