//! sum / mean / max (optionally masked) against an f64 reference on odd lengths, across block and
//! binding-window boundaries, empty selections, and bitwise determinism.
//!
//! Tolerance, from the arithmetic (eps = 1.2e-7): each value passes through at most 16
//! sequential adds per invocation, an 8-level tree, n / 2^20 sequential adds over partials and a
//! second 8-level tree, so |err| <= (40 + n / 2^20) eps sum|x| for sum; the mean divides that by
//! the count (one more rounding); max is exact.

mod common;

use common::*;
use grrm_model::kernels::reduce::{reduce, ReduceOp};
use grrm_model::{DType, GpuContext, Recorder, Tensor};
use rand::Rng;

const EPS: f64 = 1.2e-7;

fn gpu(ctx: &GpuContext, op: ReduceOp, x: &[f32], mask: Option<&[u32]>) -> f32 {
    let tx = Tensor::from_f32(ctx, &[x.len()], x).unwrap();
    let tm = mask.map(|m| Tensor::from_u32(ctx, &[m.len()], m).unwrap());
    let out = Tensor::poisoned(ctx, &[1], DType::F32).unwrap();
    let mut rec = Recorder::new(ctx, "test");
    reduce(&mut rec, op, &tx, tm.as_ref(), &out).unwrap();
    rec.submit().unwrap();
    out.to_f32_vec().unwrap()[0]
}

fn check(ctx: &GpuContext, x: &[f32], mask: Option<&[u32]>) {
    let keep = |i: usize| mask.is_none_or(|m| m[i] != 0);
    let sel: Vec<f64> = (0..x.len())
        .filter(|&i| keep(i))
        .map(|i| x[i] as f64)
        .collect();
    let sum: f64 = sel.iter().sum();
    let abs: f64 = sel.iter().map(|a| a.abs()).sum();
    let tol = (40.0 + x.len() as f64 / (1 << 20) as f64) * EPS * abs;
    let what = format!("reduce n {} masked {}", x.len(), mask.is_some());
    let got = gpu(ctx, ReduceOp::Sum, x, mask);
    assert_close(&format!("{what} sum"), &[got], &[sum], tol, 0.0, None);
    let got = gpu(ctx, ReduceOp::Max, x, mask);
    let max = sel.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(got as f64, max, "{what} max");
    let got = gpu(ctx, ReduceOp::Mean, x, mask);
    if sel.is_empty() {
        assert!(got.is_nan(), "{what} mean of nothing: {got}");
    } else {
        let n = sel.len() as f64;
        assert_close(
            &format!("{what} mean"),
            &[got],
            &[sum / n],
            tol / n,
            EPS,
            None,
        );
    }
}

fn data(n: usize, seed: u64) -> (Vec<f32>, Vec<u32>) {
    let mut r = rng(seed);
    let x = randn(&mut r, n);
    let m = (0..n).map(|_| u32::from(r.random_bool(0.6))).collect();
    (x, m)
}

#[test]
fn reduce_odd_lengths_masked_and_not() {
    let ctx = ctx();
    for (i, n) in [1usize, 7, 1000, 4096 * 3 + 5, 153_217]
        .into_iter()
        .enumerate()
    {
        let (x, m) = data(n, i as u64);
        check(&ctx, &x, None);
        check(&ctx, &x, Some(&m));
    }
}

#[test]
fn reduce_across_binding_windows() {
    // 4 KiB bindings: windows of 1024 elements, each with its own partials.
    let small = ctx().with_binding_limit(4 << 10);
    let (x, m) = data(5000, 20);
    check(&small, &x, None);
    check(&small, &x, Some(&m));
}

#[test]
fn reduce_of_nothing() {
    let ctx = ctx();
    let (x, _) = data(9, 30);
    let none = vec![0u32; 9];
    assert_eq!(gpu(&ctx, ReduceOp::Sum, &x, Some(&none)), 0.0);
    assert_eq!(gpu(&ctx, ReduceOp::Max, &x, Some(&none)), f32::NEG_INFINITY);
    assert!(gpu(&ctx, ReduceOp::Mean, &x, Some(&none)).is_nan());
    assert_eq!(gpu(&ctx, ReduceOp::Sum, &[], None), 0.0);
}

#[test]
fn reduce_is_deterministic() {
    let ctx = ctx();
    let (x, m) = data(100_003, 40);
    let a = gpu(&ctx, ReduceOp::Sum, &x, Some(&m));
    let b = gpu(&ctx, ReduceOp::Sum, &x, Some(&m));
    assert_eq!(a.to_bits(), b.to_bits());
}

#[test]
fn reduce_shape_errors_name_the_op() {
    let ctx = ctx();
    let x = Tensor::zeros(&ctx, &[3, 5], DType::F32).unwrap();
    let m = Tensor::zeros(&ctx, &[14], DType::U32).unwrap();
    let out = Tensor::zeros(&ctx, &[1], DType::F32).unwrap();
    let out2 = Tensor::zeros(&ctx, &[2], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let msg = reduce(&mut rec, ReduceOp::Mean, &x, Some(&m), &out)
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("reduce: mask must be u32"), "{msg}");
    assert!(msg.contains("[3, 5]") && msg.contains("[14]"), "{msg}");
    let msg = reduce(&mut rec, ReduceOp::Sum, &x, None, &out2)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("reduce: out must have exactly one element"),
        "{msg}"
    );
    assert!(rec.is_empty());
}
