// AdamW with decoupled weight decay, PyTorch semantics, one element per invocation:
//   g  = grad * scale                      (scale = clip coefficient from a 1-element buffer)
//   p *= 1 - lr * wd
//   m  = b1 m + (1 - b1) g ;  v = b2 v + (1 - b2) g^2
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// The step-dependent factors are computed on the host (in f64) and passed in.

struct Params {
    n: u32, has_scale: u32, b1: f32, b2: f32,
    lr: f32, decay: f32, eps: f32, inv_bc1: f32, // decay = 1 - lr * wd; inv_bc1 = 1 / (1 - b1^t)
    inv_sqrt_bc2: f32, _p0: u32, _p1: u32, _p2: u32, // 1 / sqrt(1 - b2^t)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m1: array<f32>;
@group(0) @binding(4) var<storage, read_write> m2: array<f32>;
@group(0) @binding(5) var<storage, read> scale: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = (wg.x + wg.y * nwg.x) * 256u + lid;
    if (i >= p.n) {
        return;
    }
    var g = grad[i];
    if (p.has_scale != 0u) {
        g *= scale[0];
    }
    let m = p.b1 * m1[i] + (1.0 - p.b1) * g;
    let v = p.b2 * m2[i] + (1.0 - p.b2) * g * g;
    m1[i] = m;
    m2[i] = v;
    let denom = sqrt(v) * p.inv_sqrt_bc2 + p.eps;
    param[i] = param[i] * p.decay - p.lr * (m * p.inv_bc1) / denom;
}
