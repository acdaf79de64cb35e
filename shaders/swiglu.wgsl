// SwiGLU on separate gate and up tensors of one shape: h = silu(gate) * up, with
// silu(g) = g * sigmoid(g) (HF's act_fn(gate_proj(x)) * up_proj(x)). Backward:
//   d_up = dh * silu(g),  d_gate = dh * up * sigmoid(g) * (1 + g * (1 - sigmoid(g))).
// Indices are relative to the window of the tensors the launch code bound.

struct Params {
    n: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;

fn linear(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * 256u + lid;
}

fn sigmoid(g: f32) -> f32 {
    // exp(-g) overflows to inf for g < -88: the result is then 0, as it should be.
    return 1.0 / (1.0 + exp(-g));
}

@group(0) @binding(1) var<storage, read> f_gate: array<f32>;
@group(0) @binding(2) var<storage, read> f_up: array<f32>;
@group(0) @binding(3) var<storage, read_write> f_h: array<f32>;

@compute @workgroup_size(256)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = linear(wg, nwg, lid);
    if (i < p.n) {
        let g = f_gate[i];
        f_h[i] = g * sigmoid(g) * f_up[i];
    }
}

@group(0) @binding(1) var<storage, read> b_gate: array<f32>;
@group(0) @binding(2) var<storage, read> b_up: array<f32>;
@group(0) @binding(3) var<storage, read> b_dh: array<f32>;
@group(0) @binding(4) var<storage, read_write> b_dgate: array<f32>;
@group(0) @binding(5) var<storage, read_write> b_dup: array<f32>;

@compute @workgroup_size(256)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let i = linear(wg, nwg, lid);
    if (i < p.n) {
        let g = b_gate[i];
        let s = sigmoid(g);
        let dh = b_dh[i];
        b_dup[i] = dh * (g * s);
        b_dgate[i] = dh * b_up[i] * s * (1.0 + g * (1.0 - s));
    }
}
