//! softmax / log-softmax against an f64 reference on odd row lengths (V = 1, 7, 1000 and one row
//! of 153,217), with temperatures, and through the row-window path used when R x V exceeds a
//! binding.
//!
//! Tolerance, from the arithmetic: z = x / T is rounded (|z| eps), exp adds a few ulp, and each
//! invocation sums about V / 256 terms sequentially before an 8-level tree, so the row sum carries
//! a relative error up to (V / 256 + 8) eps. With eps = 1.2e-7:
//!   probabilities: |err| <= tol * p,  log-probabilities: |err| <= tol + eps |log p|,
//!   tol = (max|z| + 10 + V / 256) * eps.

mod common;

use common::*;
use grrm_model::kernels::softmax::{softmax, SoftmaxOpts};
use grrm_model::{DType, GpuContext, Recorder, Tensor};
use rand::Rng;

const EPS: f64 = 1.2e-7;

fn reference(x: &[f32], v: usize, t: f32, log: bool) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(v) {
        let z: Vec<f64> = row.iter().map(|&a| a as f64 / t as f64).collect();
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + z.iter().map(|a| (a - m).exp()).sum::<f64>().ln();
        out.extend(
            z.iter()
                .map(|a| if log { a - lse } else { (a - lse).exp() }),
        );
    }
    out
}

fn run(ctx: &GpuContext, rows: usize, v: usize, t: f32, log: bool, seed: u64) {
    let mut r = rng(seed);
    // Logits spread over [-8, 8] so exp covers a wide range.
    let x: Vec<f32> = (0..rows * v)
        .map(|_| r.random_range(-8.0f32..8.0))
        .collect();
    let tx = Tensor::from_f32(ctx, &[rows, v], &x).unwrap();
    let ty = Tensor::poisoned(ctx, &[rows, v], DType::F32).unwrap();
    let mut rec = Recorder::new(ctx, "test");
    let o = SoftmaxOpts {
        log,
        temperature: t,
    };
    softmax(&mut rec, &tx, &ty, o).unwrap();
    rec.submit().unwrap();
    let got = ty.to_f32_vec().unwrap();
    let want = reference(&x, v, t, log);
    let tol = (8.0 / t as f64 + 10.0 + v as f64 / 256.0) * EPS;
    let what = format!("softmax rows {rows} V {v} T {t} log {log}");
    if log {
        assert_close(&what, &got, &want, tol, EPS, None);
    } else {
        assert_close(&what, &got, &want, 0.0, tol, None);
    }
}

#[test]
fn softmax_and_log_softmax_odd_sizes() {
    let ctx = ctx();
    let mut seed = 1;
    for (rows, v) in [(1, 1), (3, 7), (5, 1000), (2, 257)] {
        for log in [false, true] {
            for t in [1.0, 0.7] {
                run(&ctx, rows, v, t, log, seed);
                seed += 1;
            }
        }
    }
}

#[test]
fn softmax_one_row_of_the_full_vocabulary() {
    // Qwen3's 151,936 tokens + 1,280 item-ID tokens + 1.
    let ctx = ctx();
    run(&ctx, 1, 153_217, 1.0, false, 50);
    run(&ctx, 1, 153_217, 1.3, true, 51);
}

#[test]
fn softmax_rows_in_windows_when_larger_than_a_binding() {
    // 16 KiB bindings hold 4 rows of 1000: windows start mid-alignment (base != 0).
    let small = ctx().with_binding_limit(16 << 10);
    run(&small, 11, 1000, 0.9, false, 60);
    run(&small, 11, 1000, 1.0, true, 61);
}

#[test]
fn softmax_shape_errors_name_the_op() {
    let ctx = ctx();
    let x = Tensor::zeros(&ctx, &[3, 7], DType::F32).unwrap();
    let y = Tensor::zeros(&ctx, &[3, 8], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let msg = softmax(&mut rec, &x, &y, SoftmaxOpts::default())
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("softmax: x and y must have the same shape"),
        "{msg}"
    );
    assert!(msg.contains("[3, 7]") && msg.contains("[3, 8]"), "{msg}");
    let y = Tensor::zeros(&ctx, &[3, 7], DType::F32).unwrap();
    let msg = softmax(&mut rec, &x, &y, SoftmaxOpts::log().temperature(0.0))
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("softmax: temperature 0"), "{msg}");
    let msg = softmax(&mut rec, &x, &x, SoftmaxOpts::default())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("distinct"), "{msg}");
    assert!(rec.is_empty());
}
