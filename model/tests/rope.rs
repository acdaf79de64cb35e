//! Rotary embedding against an f64 reference of HF's rotate_half form, on odd head counts and
//! head dims, arbitrary positions, thetas 1e4 and 1e6, in place and out of place; the backward
//! (inverse rotation) against the transpose of the forward by finite differences.
//! Tolerance: cos/sin are f32 values within 1 ulp of cos/sin of HF's f32 angle, and each output
//! is two products and a sum in f32: |err| <= 1e-6 * (|x1 cos| + |x2 sin| + 1).

mod common;

use common::*;
use grrm_model::kernels::rope::{inv_freq, rope, RopeTable};
use grrm_model::{DType, GpuContext, Recorder, Tensor};
use rand::Rng;

/// HF: out = x * cos + rotate_half(x) * sin, with the angle computed in f32 as HF does and the
/// trigonometry in f64. `sign` -1 is the inverse rotation.
fn reference(
    x: &[f32],
    pos: &[u32],
    h: usize,
    d: usize,
    theta: f64,
    sign: f64,
) -> (Vec<f64>, Vec<f64>) {
    let f = inv_freq(d, theta);
    let half = d / 2;
    let mut out = vec![0.0; x.len()];
    let mut scale = vec![0.0; x.len()];
    for (t, &p) in pos.iter().enumerate() {
        for hh in 0..h {
            let base = (t * h + hh) * d;
            for k in 0..half {
                let angle = (p as f32 * f[k]) as f64;
                let (c, s) = (angle.cos(), sign * angle.sin());
                let (x1, x2) = (x[base + k] as f64, x[base + half + k] as f64);
                out[base + k] = x1 * c - x2 * s;
                out[base + half + k] = x2 * c + x1 * s;
                let m = (x1 * c).abs() + (x2 * s).abs() + (x2 * c).abs() + (x1 * s).abs() + 1.0;
                scale[base + k] = m;
                scale[base + half + k] = m;
            }
        }
    }
    (out, scale)
}

fn case(ctx: &GpuContext, t: usize, h: usize, d: usize, theta: f64, seed: u64) {
    let mut r = rng(seed);
    let table = RopeTable::new(ctx, d, theta, 4099).unwrap();
    let x = randn(&mut r, t * h * d);
    let pos: Vec<u32> = (0..t).map(|_| r.random_range(0..4099)).collect();
    let tx = Tensor::from_f32(ctx, &[t, h * d], &x).unwrap();
    let tp = Tensor::from_u32(ctx, &[t], &pos).unwrap();
    let out = Tensor::poisoned(ctx, &[t, h * d], DType::F32).unwrap();
    let back = Tensor::poisoned(ctx, &[t, h * d], DType::F32).unwrap();
    let inplace = Tensor::from_f32(ctx, &[t, h * d], &x).unwrap();
    let mut rec = Recorder::new(ctx, "test");
    rope(&mut rec, &table, &tx, &tp, Some(&out), false).unwrap();
    rope(&mut rec, &table, &tx, &tp, Some(&back), true).unwrap();
    rope(&mut rec, &table, &inplace, &tp, None, false).unwrap();
    rec.submit().unwrap();
    let what = |s: &str| format!("rope {s} t{t} h{h} d{d} theta{theta}");
    let (want, scale) = reference(&x, &pos, h, d, theta, 1.0);
    assert_close(
        &what("forward"),
        &out.to_f32_vec().unwrap(),
        &want,
        0.0,
        1e-6,
        Some(&scale),
    );
    let got = inplace.to_f32_vec().unwrap();
    assert_close(&what("in place"), &got, &want, 0.0, 1e-6, Some(&scale));
    let (want, scale) = reference(&x, &pos, h, d, theta, -1.0);
    assert_close(
        &what("inverse"),
        &back.to_f32_vec().unwrap(),
        &want,
        0.0,
        1e-6,
        Some(&scale),
    );
}

#[test]
fn rope_odd_shapes_and_thetas() {
    let ctx = ctx();
    case(&ctx, 1, 1, 2, 10_000.0, 1);
    case(&ctx, 7, 3, 34, 10_000.0, 2);
    case(&ctx, 33, 2, 128, 1_000_000.0, 3);
    case(&ctx, 5, 1, 6, 500.0, 4);
}

#[test]
fn inv_freq_matches_the_f64_formula() {
    // f32 pow is within 1 ulp of the exact value, and so is the f32 reciprocal.
    for (d, theta) in [(128usize, 1e6f64), (64, 1e4), (34, 1e4)] {
        for (i, &f) in inv_freq(d, theta).iter().enumerate() {
            let e = (2 * i) as f32 / d as f32;
            let exact = 1.0 / theta.powf(e as f64);
            assert!(
                ((f as f64) - exact).abs() <= 3e-7 * exact,
                "inv_freq d{d} i{i}: {f} vs {exact}"
            );
        }
    }
}

#[test]
fn rope_position_outside_the_table_is_nan() {
    let ctx = ctx();
    let table = RopeTable::new(&ctx, 4, 10_000.0, 8).unwrap();
    let tx = Tensor::from_f32(&ctx, &[2, 4], &[1.0; 8]).unwrap();
    let tp = Tensor::from_u32(&ctx, &[2], &[0, 8]).unwrap();
    let out = Tensor::poisoned(&ctx, &[2, 4], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    rope(&mut rec, &table, &tx, &tp, Some(&out), false).unwrap();
    rec.submit().unwrap();
    let got = out.to_f32_vec().unwrap();
    assert_eq!(&got[..4], &[1.0; 4], "position 0 is the identity");
    assert!(got[4..].iter().all(|v| v.is_nan()), "{got:?}");
}

#[test]
fn rope_backward_matches_finite_differences() {
    // L(x) = <g, rope(x)> is linear in x, so the central difference along v equals
    // <rope_inverse(g), v> up to f32 rounding of the outputs: tolerance 1e-4 * (sum |.| + 1).
    let ctx = ctx();
    let (t, h, d) = (5, 3, 10);
    let n = t * h * d;
    let mut r = rng(30);
    let table = RopeTable::new(&ctx, d, 10_000.0, 64).unwrap();
    let pos: Vec<u32> = (0..t).map(|_| r.random_range(0..64)).collect();
    let tp = Tensor::from_u32(&ctx, &[t], &pos).unwrap();
    let x = randn(&mut r, n);
    let g = randn(&mut r, n);
    let apply = |v: &[f32], inverse: bool| -> Vec<f32> {
        let tx = Tensor::from_f32(&ctx, &[t, h * d], v).unwrap();
        let out = Tensor::poisoned(&ctx, &[t, h * d], DType::F32).unwrap();
        let mut rec = Recorder::new(&ctx, "fd");
        rope(&mut rec, &table, &tx, &tp, Some(&out), inverse).unwrap();
        rec.submit().unwrap();
        out.to_f32_vec().unwrap()
    };
    let loss = |v: &[f32]| -> f64 {
        apply(v, false)
            .iter()
            .zip(&g)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum()
    };
    let grad = apply(&g, true);
    let step = 1e-2f32;
    for dir in 0..3 {
        let v = randn(&mut r, n);
        let plus: Vec<f32> = x.iter().zip(&v).map(|(a, b)| a + step * b).collect();
        let minus: Vec<f32> = x.iter().zip(&v).map(|(a, b)| a - step * b).collect();
        let fd = (loss(&plus) - loss(&minus)) / (2.0 * step as f64);
        let an: f64 = grad
            .iter()
            .zip(&v)
            .map(|(&a, &b)| a as f64 * b as f64)
            .sum();
        let mag: f64 = grad
            .iter()
            .zip(&v)
            .map(|(&a, &b)| (a as f64 * b as f64).abs())
            .sum();
        assert!(
            (fd - an).abs() <= 1e-4 * (mag + 1.0),
            "rope fd direction {dir}: {fd} vs {an}"
        );
    }
}

#[test]
fn rope_shape_errors_name_the_op() {
    let ctx = ctx();
    let table = RopeTable::new(&ctx, 8, 10_000.0, 16).unwrap();
    let x = Tensor::zeros(&ctx, &[3, 20], DType::F32).unwrap();
    let pos = Tensor::zeros(&ctx, &[3], DType::U32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let e = rope(&mut rec, &table, &x, &pos, None, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("rope:") && e.contains("[3, 20]") && e.contains("H*8"),
        "{e}"
    );
    let x = Tensor::zeros(&ctx, &[3, 16], DType::F32).unwrap();
    let pos2 = Tensor::zeros(&ctx, &[4], DType::U32).unwrap();
    let e = rope(&mut rec, &table, &x, &pos2, None, false)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("rope:") && e.contains("[4]"), "{e}");
    let e = rope(&mut rec, &table, &x, &pos, Some(&x.clone()), false)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("rope:") && e.contains("another buffer"),
        "{e}"
    );
    assert!(RopeTable::new(&ctx, 7, 1e4, 4).is_err());
    assert!(rec.is_empty());
}
