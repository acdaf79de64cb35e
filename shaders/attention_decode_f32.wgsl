// attention_decode.wgsl over an f32 cache: vec4 i of the K and V rows, one 16-byte load each.

@group(0) @binding(2) var<storage, read> k4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> v4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> pk4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> pv4: array<vec4<f32>>;

fn load_k(i: u32) -> vec4<f32> {
    return k4[i];
}

fn load_v(i: u32) -> vec4<f32> {
    return v4[i];
}

fn load_pk(i: u32) -> vec4<f32> {
    return pk4[i];
}

fn load_pv(i: u32) -> vec4<f32> {
    return pv4[i];
}
