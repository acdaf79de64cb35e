//! Element-wise ops (add, axpy, scale, fill) against an f64 reference on odd sizes with
//! poisoned outputs, through whole bindings and through the windowed path for tensors larger
//! than one binding.
//! Tolerance: one f32 rounding of the result (add, scale) or two (axpy, a product then a sum,
//! or one when fused): |err| <= 2^-23 * (|a| + |b|) covers both.

mod common;

use common::*;
use grrm_model::kernels::elementwise::{add, axpy, fill, scale};
use grrm_model::{DType, GpuContext, Recorder, Tensor};

const ULP2: f64 = 1.0 / (1u64 << 23) as f64;

fn check_all(ctx: &GpuContext, n: usize, seed: u64) {
    let mut r = rng(seed);
    let a = randn(&mut r, n);
    let b = randn(&mut r, n);
    let ta = Tensor::from_f32(ctx, &[n], &a).unwrap();
    let tb = Tensor::from_f32(ctx, &[n], &b).unwrap();
    let out = Tensor::poisoned(ctx, &[n], DType::F32).unwrap();
    let y = Tensor::from_f32(ctx, &[n], &b).unwrap();
    let s = Tensor::from_f32(ctx, &[n], &a).unwrap();
    let f = Tensor::poisoned(ctx, &[n], DType::F32).unwrap();
    let mut rec = Recorder::new(ctx, "test");
    add(&mut rec, &ta, &tb, &out).unwrap();
    axpy(&mut rec, -0.37, &ta, &y).unwrap();
    scale(&mut rec, 1.9, &s).unwrap();
    fill(&mut rec, &f, 2.5).unwrap();
    rec.submit().unwrap();

    let mag: Vec<f64> = (0..n).map(|i| (a[i].abs() + b[i].abs()) as f64).collect();
    let want: Vec<f64> = (0..n).map(|i| a[i] as f64 + b[i] as f64).collect();
    assert_close(
        &format!("add n{n}"),
        &out.to_f32_vec().unwrap(),
        &want,
        0.0,
        ULP2,
        Some(&mag),
    );
    let want: Vec<f64> = (0..n)
        .map(|i| b[i] as f64 - 0.37f32 as f64 * a[i] as f64)
        .collect();
    assert_close(
        &format!("axpy n{n}"),
        &y.to_f32_vec().unwrap(),
        &want,
        0.0,
        ULP2,
        Some(&mag),
    );
    let want: Vec<f64> = (0..n).map(|i| 1.9f32 as f64 * a[i] as f64).collect();
    assert_close(
        &format!("scale n{n}"),
        &s.to_f32_vec().unwrap(),
        &want,
        0.0,
        ULP2,
        None,
    );
    assert!(
        f.to_f32_vec().unwrap().iter().all(|&v| v == 2.5),
        "fill n{n}"
    );
}

#[test]
fn elementwise_odd_sizes() {
    let ctx = ctx();
    for (i, n) in [1, 7, 33, 129, 1031].into_iter().enumerate() {
        check_all(&ctx, n, 10 + i as u64);
    }
}

#[test]
fn elementwise_windows_larger_than_a_binding() {
    // 1 KiB bindings: 256-element windows, the last one partial (1031 = 4 * 256 + 7).
    let small = ctx().with_binding_limit(1024);
    check_all(&small, 1031, 20);
}

#[test]
fn axpy_with_itself_doubles() {
    let ctx = ctx();
    let x = Tensor::from_f32(&ctx, &[3], &[1.0, -2.0, 0.5]).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    axpy(&mut rec, 1.0, &x, &x).unwrap();
    rec.submit().unwrap();
    assert_eq!(x.to_f32_vec().unwrap(), vec![2.0, -4.0, 1.0]);
}

#[test]
fn elementwise_shape_errors_name_the_op() {
    let ctx = ctx();
    let a = Tensor::zeros(&ctx, &[4, 5], DType::F32).unwrap();
    let b = Tensor::zeros(&ctx, &[5, 4], DType::F32).unwrap();
    let i = Tensor::zeros(&ctx, &[4, 5], DType::I32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let e = add(&mut rec, &a, &b, &a.clone()).unwrap_err().to_string();
    assert!(
        e.starts_with("add:") && e.contains("[4, 5]") && e.contains("[5, 4]"),
        "{e}"
    );
    let e = axpy(&mut rec, 1.0, &a, &b).unwrap_err().to_string();
    assert!(e.starts_with("axpy:") && e.contains("[5, 4]"), "{e}");
    let e = fill(&mut rec, &i, 0.0).unwrap_err().to_string();
    assert!(e.starts_with("fill:") && e.contains("I32"), "{e}");
    let c = Tensor::zeros(&ctx, &[4, 5], DType::F32).unwrap();
    let e = add(&mut rec, &a, &c, &a).unwrap_err().to_string();
    assert!(e.starts_with("add:") && e.contains("aliases"), "{e}");
    assert!(rec.is_empty());
}
