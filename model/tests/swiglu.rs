//! SwiGLU forward and backward against an f64 reference on odd shapes (gate values in
//! [-8, 8] to reach the sigmoid's tails), with poisoned outputs, through whole bindings and
//! windows, and a finite-difference check of the backward against the GPU forward.
//! Tolerance: the GPU exp may be off by 3 + 2|x| ulp (Vulkan), at most ~19 ulp for |g| <= 8,
//! plus a few roundings: |err| <= 1e-6 + 1e-5 * scale, where scale is the magnitude of the
//! terms (|h| forward; |dh up s| (1 + |g| (1 - s)) and |dh silu(g)| backward).

mod common;

use common::*;
use grrm_model::kernels::swiglu::{swiglu, swiglu_backward};
use grrm_model::{DType, GpuContext, Recorder, Tensor};

fn sig(g: f64) -> f64 {
    1.0 / (1.0 + (-g).exp())
}

fn case(ctx: &GpuContext, shape: &[usize], seed: u64) {
    let n: usize = shape.iter().product();
    let mut r = rng(seed);
    let gate: Vec<f32> = randn(&mut r, n).iter().map(|v| 8.0 * v).collect();
    let up = randn(&mut r, n);
    let dh = randn(&mut r, n);
    let t = |v: &[f32]| Tensor::from_f32(ctx, shape, v).unwrap();
    let (tg, tu, tdh) = (t(&gate), t(&up), t(&dh));
    let p = || Tensor::poisoned(ctx, shape, DType::F32).unwrap();
    let (h, dg, du) = (p(), p(), p());
    let mut rec = Recorder::new(ctx, "test");
    swiglu(&mut rec, &tg, &tu, &h).unwrap();
    swiglu_backward(&mut rec, &tg, &tu, &tdh, &dg, &du).unwrap();
    rec.submit().unwrap();
    let (mut wh, mut wdg, mut wdu) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    let (mut sh, mut sdg) = (vec![0.0; n], vec![0.0; n]);
    for i in 0..n {
        let (g, u, d) = (gate[i] as f64, up[i] as f64, dh[i] as f64);
        let s = sig(g);
        wh[i] = g * s * u;
        sh[i] = wh[i].abs();
        wdu[i] = d * g * s;
        wdg[i] = d * u * s * (1.0 + g * (1.0 - s));
        sdg[i] = (d * u * s).abs() * (1.0 + g.abs() * (1.0 - s));
    }
    let what = |s: &str| format!("swiglu {s} {shape:?}");
    assert_close(
        &what("h"),
        &h.to_f32_vec().unwrap(),
        &wh,
        1e-6,
        1e-5,
        Some(&sh),
    );
    let sdu: Vec<f64> = wdu.iter().map(|v| v.abs()).collect();
    assert_close(
        &what("d_up"),
        &du.to_f32_vec().unwrap(),
        &wdu,
        1e-6,
        1e-5,
        Some(&sdu),
    );
    assert_close(
        &what("d_gate"),
        &dg.to_f32_vec().unwrap(),
        &wdg,
        1e-6,
        1e-5,
        Some(&sdg),
    );
}

#[test]
fn swiglu_odd_shapes() {
    let ctx = ctx();
    case(&ctx, &[1, 1], 1);
    case(&ctx, &[7, 33], 2);
    case(&ctx, &[33, 129], 3);
}

#[test]
fn swiglu_windows_larger_than_a_binding() {
    // 1 KiB bindings: 256-element windows over 9 x 129 = 1161 elements.
    case(&ctx().with_binding_limit(1024), &[9, 129], 4);
}

#[test]
fn swiglu_backward_matches_finite_differences() {
    // L = sum(w * swiglu(gate, up)); central differences of the GPU forward along random
    // directions (h = 1e-2): tolerance 2e-3 * (sum |grad_i v_i| + 1).
    let ctx = ctx();
    let shape = [5, 13];
    let n = 65;
    let mut r = rng(40);
    let gate: Vec<f32> = randn(&mut r, n).iter().map(|v| 3.0 * v).collect();
    let up = randn(&mut r, n);
    let w = randn(&mut r, n);
    let t = |v: &[f32]| Tensor::from_f32(&ctx, &shape, v).unwrap();
    let loss = |g: &[f32], u: &[f32]| -> f64 {
        let h = Tensor::poisoned(&ctx, &shape, DType::F32).unwrap();
        let mut rec = Recorder::new(&ctx, "fd");
        swiglu(&mut rec, &t(g), &t(u), &h).unwrap();
        rec.submit().unwrap();
        h.to_f32_vec()
            .unwrap()
            .iter()
            .zip(&w)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    };
    let dg = Tensor::poisoned(&ctx, &shape, DType::F32).unwrap();
    let du = Tensor::poisoned(&ctx, &shape, DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "fd");
    swiglu_backward(&mut rec, &t(&gate), &t(&up), &t(&w), &dg, &du).unwrap();
    rec.submit().unwrap();
    let (dg, du) = (dg.to_f32_vec().unwrap(), du.to_f32_vec().unwrap());
    let step = 1e-2f32;
    for dir in 0..3 {
        let vg = randn(&mut r, n);
        let vu = randn(&mut r, n);
        let shift = |a: &[f32], v: &[f32], s: f32| -> Vec<f32> {
            a.iter().zip(v).map(|(&p, &q)| p + s * q).collect()
        };
        let fd = (loss(&shift(&gate, &vg, step), &shift(&up, &vu, step))
            - loss(&shift(&gate, &vg, -step), &shift(&up, &vu, -step)))
            / (2.0 * step as f64);
        let terms = dg
            .iter()
            .zip(&vg)
            .chain(du.iter().zip(&vu))
            .map(|(&a, &b)| a as f64 * b as f64);
        let an: f64 = terms.clone().sum();
        let mag: f64 = terms.map(f64::abs).sum();
        assert!(
            (fd - an).abs() <= 2e-3 * (mag + 1.0),
            "swiglu fd direction {dir}: {fd} vs {an}"
        );
    }
}

#[test]
fn swiglu_shape_errors_name_the_op() {
    let ctx = ctx();
    let a = Tensor::zeros(&ctx, &[4, 6], DType::F32).unwrap();
    let b = Tensor::zeros(&ctx, &[4, 7], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let e = swiglu(&mut rec, &a, &b, &a).unwrap_err().to_string();
    assert!(
        e.starts_with("swiglu:") && e.contains("[4, 6]") && e.contains("[4, 7]"),
        "{e}"
    );
    let e = swiglu_backward(&mut rec, &a, &a, &a, &b, &a)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("swiglu_backward:") && e.contains("d_gate F32 [4, 7]"),
        "{e}"
    );
    assert!(rec.is_empty());
}
