//! Global gradient norm and clip coefficient against an f64 reference over several tensors of odd
//! sizes, with max_norm below (clipping) and above (no clipping) the norm, across binding
//! windows; and the clip coefficient feeding AdamW's gradient scale with no readback.
//!
//! Tolerance, from the arithmetic (eps = 1.2e-7): each square is summed through at most 16
//! sequential adds, an 8-level tree, n / 2^20 sequential adds of partials and a second tree:
//! relative error of the sum of squares <= (40 + n / 2^20) eps, half that for the norm; the clip
//! coefficient inherits the norm's relative error: rtol 5e-6 for both.

mod common;

use common::*;
use grrm_model::kernels::adamw::{adamw_step, AdamWConfig, AdamWState};
use grrm_model::kernels::grad_norm::{clip_grad_norm, GradNorm};
use grrm_model::{DType, GpuContext, Recorder, Tensor};

const SIZES: [&[usize]; 4] = [&[1], &[7], &[33, 31], &[8197]];

fn grads(ctx: &GpuContext, seed: u64) -> (Vec<Tensor>, f64) {
    let mut r = rng(seed);
    let mut sumsq = 0f64;
    let ts = SIZES
        .iter()
        .map(|shape| {
            let x = randn(&mut r, shape.iter().product());
            sumsq += x.iter().map(|&a| a as f64 * a as f64).sum::<f64>();
            Tensor::from_f32(ctx, shape, &x).unwrap()
        })
        .collect();
    (ts, sumsq.sqrt())
}

fn run(ctx: &GpuContext, seed: u64) {
    let (ts, norm) = grads(ctx, seed);
    let refs: Vec<&Tensor> = ts.iter().collect();
    for factor in [0.5, 2.0] {
        let max_norm = (norm * factor) as f32;
        let out = GradNorm {
            norm: Tensor::poisoned(ctx, &[1], DType::F32).unwrap(),
            clip: Tensor::poisoned(ctx, &[1], DType::F32).unwrap(),
        };
        let mut rec = Recorder::new(ctx, "test");
        clip_grad_norm(&mut rec, &refs, max_norm, &out).unwrap();
        rec.submit().unwrap();
        let want_clip = (max_norm as f64 / (norm + 1e-6)).min(1.0);
        assert_close(
            "grad norm",
            &[out.read_norm().unwrap()],
            &[norm],
            0.0,
            5e-6,
            None,
        );
        let clip = out.clip.to_f32_vec().unwrap();
        assert_close(
            &format!("clip x{factor}"),
            &clip,
            &[want_clip],
            0.0,
            5e-6,
            None,
        );
        if factor > 1.0 {
            assert_eq!(clip[0], 1.0);
        }
    }
}

#[test]
fn grad_norm_and_clip_over_many_tensors() {
    run(&ctx(), 1);
}

#[test]
fn grad_norm_across_binding_windows() {
    // 4 KiB bindings: the 8197-element gradient is summed in 3 windows.
    run(&ctx().with_binding_limit(4 << 10), 2);
}

#[test]
fn grad_norm_of_nothing_does_not_clip() {
    let ctx = ctx();
    let out = GradNorm::new(&ctx).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    clip_grad_norm(&mut rec, &[], 1.0, &out).unwrap();
    rec.submit().unwrap();
    assert_eq!(out.read_norm().unwrap(), 0.0);
    assert_eq!(out.clip.to_f32_vec().unwrap(), [1.0]);
}

#[test]
fn clip_coefficient_scales_adamw_without_readback() {
    // One recorded step: norm + clip, then AdamW reading the clip buffer, against AdamW with the
    // gradient pre-scaled on the host by the reference coefficient.
    let ctx = ctx();
    let (ts, norm) = grads(&ctx, 3);
    let g = &ts[2];
    let max_norm = (norm * 0.25) as f32;
    let coef = (max_norm as f64 / (norm + 1e-6)) as f32;
    let p0 = randn(&mut rng(4), g.numel());
    let cfg = AdamWConfig::default();
    let out = GradNorm::new(&ctx).unwrap();
    let pa = Tensor::from_f32(&ctx, g.shape(), &p0).unwrap();
    let sa = AdamWState::zeros_like(&pa).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    clip_grad_norm(&mut rec, &ts.iter().collect::<Vec<_>>(), max_norm, &out).unwrap();
    adamw_step(&mut rec, &cfg, 1, &pa, g, &sa, Some(&out.clip)).unwrap();
    rec.submit().unwrap();

    let scaled: Vec<f32> = g.to_f32_vec().unwrap().iter().map(|a| a * coef).collect();
    let gb = Tensor::from_f32(&ctx, g.shape(), &scaled).unwrap();
    let pb = Tensor::from_f32(&ctx, g.shape(), &p0).unwrap();
    let sb = AdamWState::zeros_like(&pb).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    adamw_step(&mut rec, &cfg, 1, &pb, &gb, &sb, None).unwrap();
    rec.submit().unwrap();
    let want: Vec<f64> =
        sb.m.to_f32_vec()
            .unwrap()
            .iter()
            .map(|&a| a as f64)
            .collect();
    // m = (1 - b1) g coef: the only difference is the clip coefficient's 5e-6 relative error.
    assert_close(
        "clipped m",
        &sa.m.to_f32_vec().unwrap(),
        &want,
        0.0,
        1e-5,
        None,
    );
    let want: Vec<f64> = pb.to_f32_vec().unwrap().iter().map(|&a| a as f64).collect();
    assert_close(
        "clipped param",
        &pa.to_f32_vec().unwrap(),
        &want,
        1e-6,
        1e-6,
        None,
    );
}

#[test]
fn grad_norm_errors_name_the_op() {
    let ctx = ctx();
    let g = Tensor::zeros(&ctx, &[5, 2], DType::I32).unwrap();
    let out = GradNorm::new(&ctx).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let msg = clip_grad_norm(&mut rec, &[&g], 1.0, &out)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("clip_grad_norm: gradient 0 must be f32"),
        "{msg}"
    );
    assert!(msg.contains("[5, 2]"), "{msg}");
    let f = Tensor::zeros(&ctx, &[5, 2], DType::F32).unwrap();
    let msg = clip_grad_norm(&mut rec, &[&f], 0.0, &out)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("clip_grad_norm: max_norm 0 must be > 0"),
        "{msg}"
    );
    assert!(rec.is_empty());
}
