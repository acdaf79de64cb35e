// Element-wise f32 ops over one window of a tensor. Tensors larger than one storage binding
// (AdamW moments of a large model) are covered by the launch code looping over windows, so
// every index here is window-relative and `p.n` is the window length.
// Entry points bind different variables at the same slots; each pipeline sees only its own.

struct Params {
    n: u32,
    alpha: f32,
    value: f32,
    fill: u32, // scale_fill: 1 = y = value, 0 = y = alpha * y
}

@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 256u;

fn linear(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * WG + lid;
}

// out = a + b
@group(0) @binding(1) var<storage, read> add_a: array<f32>;
@group(0) @binding(2) var<storage, read> add_b: array<f32>;
@group(0) @binding(3) var<storage, read_write> add_out: array<f32>;

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_index) lid: u32) {
    let i = linear(wg, nwg, lid);
    if (i < p.n) {
        add_out[i] = add_a[i] + add_b[i];
    }
}

// y += alpha * x
@group(0) @binding(1) var<storage, read> axpy_x: array<f32>;
@group(0) @binding(2) var<storage, read_write> axpy_y: array<f32>;

@compute @workgroup_size(256)
fn axpy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = linear(wg, nwg, lid);
    if (i < p.n) {
        axpy_y[i] = axpy_y[i] + p.alpha * axpy_x[i];
    }
}

// y = alpha * y, or y = value (fill does not read y, so NaN garbage is overwritten).
@group(0) @binding(1) var<storage, read_write> sf_y: array<f32>;

@compute @workgroup_size(256)
fn scale_fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let i = linear(wg, nwg, lid);
    if (i < p.n) {
        if (p.fill != 0u) {
            sf_y[i] = p.value;
        } else {
            sf_y[i] = p.alpha * sf_y[i];
        }
    }
}
