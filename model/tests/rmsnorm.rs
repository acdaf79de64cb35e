//! RMSNorm forward and backward (whole vector and per attention head) against an f64
//! reference on odd shapes with poisoned outputs, gradient accumulation into dw, and a
//! finite-difference check of the backward against the GPU forward.
//! Tolerances: y and dx involve a length-D f32 sum (relative error <= D * 2^-24, 8e-6 at
//! D = 129) and a few roundings: |err| <= 1e-5 * (1 + |value|). dw sums rows * D products:
//! |err| <= 1e-6 + 2e-5 * sum |terms|.

mod common;

use common::*;
use grrm_model::kernels::rmsnorm::{rmsnorm, rmsnorm_backward};
use grrm_model::{DType, GpuContext, Recorder, Tensor};

const EPS: f32 = 1e-6;

struct Reference {
    y: Vec<f64>,
    rstd: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
    dw_scale: Vec<f64>,
}

fn reference(x: &[f32], w: &[f32], dy: &[f32], d: usize) -> Reference {
    let rows = x.len() / d;
    let mut r = Reference {
        y: vec![0.0; x.len()],
        rstd: vec![0.0; rows],
        dx: vec![0.0; x.len()],
        dw: vec![0.0; d],
        dw_scale: vec![0.0; d],
    };
    for row in 0..rows {
        let xs: Vec<f64> = x[row * d..][..d].iter().map(|&v| v as f64).collect();
        let ms = xs.iter().map(|v| v * v).sum::<f64>() / d as f64;
        let rs = 1.0 / (ms + EPS as f64).sqrt();
        r.rstd[row] = rs;
        let mut s = 0.0;
        for k in 0..d {
            let i = row * d + k;
            r.y[i] = w[k] as f64 * xs[k] * rs;
            s += dy[i] as f64 * w[k] as f64 * xs[k];
            r.dw[k] += dy[i] as f64 * xs[k] * rs;
            r.dw_scale[k] += (dy[i] as f64 * xs[k] * rs).abs();
        }
        for k in 0..d {
            let i = row * d + k;
            r.dx[i] = rs * (dy[i] as f64 * w[k] as f64 - xs[k] * rs * rs * s / d as f64);
        }
    }
    r
}

fn scale_of(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| 1.0 + x.abs()).collect()
}

/// x [t, h*d], w [d].
fn case(ctx: &GpuContext, t: usize, h: usize, d: usize, seed: u64) {
    let mut r = rng(seed);
    let n = t * h * d;
    let x = randn(&mut r, n);
    let w = randn(&mut r, d);
    let dy = randn(&mut r, n);
    let dw0 = randn(&mut r, d);
    let tx = Tensor::from_f32(ctx, &[t, h * d], &x).unwrap();
    let tw = Tensor::from_f32(ctx, &[d], &w).unwrap();
    let tdy = Tensor::from_f32(ctx, &[t, h * d], &dy).unwrap();
    let y = Tensor::poisoned(ctx, &[t, h * d], DType::F32).unwrap();
    let rstd = Tensor::poisoned(ctx, &[t, h], DType::F32).unwrap();
    let dx = Tensor::poisoned(ctx, &[t, h * d], DType::F32).unwrap();
    let dw = Tensor::poisoned(ctx, &[d], DType::F32).unwrap();
    let dw_acc = Tensor::from_f32(ctx, &[d], &dw0).unwrap();
    let mut rec = Recorder::new(ctx, "test");
    rmsnorm(&mut rec, &tx, &tw, EPS, &y, &rstd).unwrap();
    rmsnorm_backward(&mut rec, &tx, &tw, &rstd, &tdy, &dx, &dw, false).unwrap();
    rmsnorm_backward(&mut rec, &tx, &tw, &rstd, &tdy, &dx, &dw_acc, true).unwrap();
    rec.submit().unwrap();
    let want = reference(&x, &w, &dy, d);
    let what = |s: &str| format!("rmsnorm {s} t{t} h{h} d{d}");
    let y_got = y.to_f32_vec().unwrap();
    assert_close(
        &what("y"),
        &y_got,
        &want.y,
        0.0,
        1e-5,
        Some(&scale_of(&want.y)),
    );
    let rs = rstd.to_f32_vec().unwrap();
    assert_close(&what("rstd"), &rs, &want.rstd, 0.0, 1e-5, None);
    let dx_got = dx.to_f32_vec().unwrap();
    assert_close(
        &what("dx"),
        &dx_got,
        &want.dx,
        0.0,
        1e-5,
        Some(&scale_of(&want.dx)),
    );
    let dw_got = dw.to_f32_vec().unwrap();
    assert_close(
        &what("dw"),
        &dw_got,
        &want.dw,
        1e-6,
        2e-5,
        Some(&want.dw_scale),
    );
    let acc_want: Vec<f64> = (0..d).map(|k| want.dw[k] + dw0[k] as f64).collect();
    let acc_scale: Vec<f64> = (0..d)
        .map(|k| want.dw_scale[k] + dw0[k].abs() as f64)
        .collect();
    let acc_got = dw_acc.to_f32_vec().unwrap();
    assert_close(
        &what("dw accumulated"),
        &acc_got,
        &acc_want,
        1e-6,
        2e-5,
        Some(&acc_scale),
    );
}

#[test]
fn rmsnorm_whole_vector_odd_shapes() {
    let ctx = ctx();
    for (i, (t, d)) in [(1, 1), (7, 129), (33, 33), (3, 1031)]
        .into_iter()
        .enumerate()
    {
        case(&ctx, t, 1, d, 1 + i as u64);
    }
}

#[test]
fn rmsnorm_per_head_odd_shapes() {
    let ctx = ctx();
    // Qwen3 q_norm/k_norm: rows = tokens * heads, one weight per head_dim.
    case(&ctx, 5, 3, 33, 10);
    case(&ctx, 129, 2, 7, 11); // 258 rows: several dw row blocks

    // 3,300 rows: 104 row blocks of 32, so each of dw_reduce's 64 invocations sums up to two.
    case(&ctx, 1100, 3, 5, 12);
}

#[test]
fn rmsnorm_backward_matches_finite_differences() {
    // L = sum(g * rmsnorm(x, w)); directional derivatives along random v by central
    // differences of the GPU forward (h = 1e-2, f32 outputs): error ~ n * 2^-24 / h + O(h^2),
    // tolerance 2e-3 * (sum |grad_i v_i| + 1).
    let ctx = ctx();
    let (t, h, d) = (3, 2, 17);
    let n = t * h * d;
    let mut r = rng(20);
    let x = randn(&mut r, n);
    let w = randn(&mut r, d);
    let g = randn(&mut r, n);
    let loss = |x: &[f32], w: &[f32]| -> f64 {
        let y = Tensor::poisoned(&ctx, &[t, h * d], DType::F32).unwrap();
        let rstd = Tensor::poisoned(&ctx, &[t * h], DType::F32).unwrap();
        let mut rec = Recorder::new(&ctx, "fd");
        let tx = Tensor::from_f32(&ctx, &[t, h * d], x).unwrap();
        let tw = Tensor::from_f32(&ctx, &[d], w).unwrap();
        rmsnorm(&mut rec, &tx, &tw, EPS, &y, &rstd).unwrap();
        rec.submit().unwrap();
        let y = y.to_f32_vec().unwrap();
        y.iter().zip(&g).map(|(&a, &b)| a as f64 * b as f64).sum()
    };
    // Analytic gradients from the GPU backward.
    let tx = Tensor::from_f32(&ctx, &[t, h * d], &x).unwrap();
    let tw = Tensor::from_f32(&ctx, &[d], &w).unwrap();
    let tg = Tensor::from_f32(&ctx, &[t, h * d], &g).unwrap();
    let y = Tensor::poisoned(&ctx, &[t, h * d], DType::F32).unwrap();
    let rstd = Tensor::poisoned(&ctx, &[t * h], DType::F32).unwrap();
    let dx = Tensor::poisoned(&ctx, &[t, h * d], DType::F32).unwrap();
    let dw = Tensor::poisoned(&ctx, &[d], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "fd");
    rmsnorm(&mut rec, &tx, &tw, EPS, &y, &rstd).unwrap();
    rmsnorm_backward(&mut rec, &tx, &tw, &rstd, &tg, &dx, &dw, false).unwrap();
    rec.submit().unwrap();
    let (dx, dw) = (dx.to_f32_vec().unwrap(), dw.to_f32_vec().unwrap());
    let step = 1e-2f32;
    for dir in 0..3 {
        let vx = randn(&mut r, n);
        let vw = randn(&mut r, d);
        let shift = |a: &[f32], v: &[f32], s: f32| -> Vec<f32> {
            a.iter().zip(v).map(|(&p, &q)| p + s * q).collect()
        };
        let fd = (loss(&shift(&x, &vx, step), &shift(&w, &vw, step))
            - loss(&shift(&x, &vx, -step), &shift(&w, &vw, -step)))
            / (2.0 * step as f64);
        let terms = dx
            .iter()
            .zip(&vx)
            .chain(dw.iter().zip(&vw))
            .map(|(&a, &b)| a as f64 * b as f64);
        let an: f64 = terms.clone().sum();
        let mag: f64 = terms.map(f64::abs).sum();
        assert!(
            (fd - an).abs() <= 2e-3 * (mag + 1.0),
            "rmsnorm finite differences, direction {dir}: fd {fd}, analytic {an}"
        );
    }
}

#[test]
fn rmsnorm_shape_errors_name_the_op() {
    let ctx = ctx();
    let x = Tensor::zeros(&ctx, &[4, 12], DType::F32).unwrap();
    let w = Tensor::zeros(&ctx, &[5], DType::F32).unwrap();
    let y = Tensor::zeros(&ctx, &[4, 12], DType::F32).unwrap();
    let rstd = Tensor::zeros(&ctx, &[4], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let e = rmsnorm(&mut rec, &x, &w, EPS, &y, &rstd)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("rmsnorm:") && e.contains("[4, 12]") && e.contains("[5]"),
        "{e}"
    );
    let w6 = Tensor::zeros(&ctx, &[6], DType::F32).unwrap();
    // Per-head use (2 heads of 6) needs 8 rstd entries, not 4.
    let e = rmsnorm(&mut rec, &x, &w6, EPS, &y, &rstd)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("rmsnorm:") && e.contains("rstd"), "{e}");
    let w12 = Tensor::zeros(&ctx, &[12], DType::F32).unwrap();
    let dw = Tensor::zeros(&ctx, &[11], DType::F32).unwrap();
    let e = rmsnorm_backward(&mut rec, &x, &w12, &rstd, &y, &y, &dw, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("rmsnorm_backward:") && e.contains("[11]"),
        "{e}"
    );
    assert!(rec.is_empty());
}
