//! AdamW over several steps against an f64 CPU AdamW (PyTorch semantics, decoupled weight decay),
//! with and without a GPU gradient scale, on odd sizes and across binding windows.
//!
//! Tolerance, from the arithmetic (eps = 1.2e-7): each step rounds p * (1 - lr wd) and the
//! update (a few f32 operations on m, v, sqrt and the division: <= 8 eps relative of the update,
//! whose size is <= lr); over S steps |err p| <= S (2 eps |p| + 8 eps lr) <= 1e-6 + 2e-6 |p| for
//! S = 6, lr = 1e-2; the moments are within 4 S eps relative: of v, and of m's recurrence run on |g| (m's terms
//! cancel, so its own magnitude is no scale).

mod common;

use common::*;
use grrm_model::kernels::adamw::{adamw_step, AdamWConfig, AdamWState};
use grrm_model::{DType, GpuContext, Recorder, Tensor};

/// f64 AdamW, as torch.optim.AdamW(foreach=False) computes it.
struct CpuAdamW {
    p: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
    /// m's recurrence on |g|: the scale of m's rounding error when its terms cancel.
    m_abs: Vec<f64>,
}

impl CpuAdamW {
    fn step(&mut self, c: &AdamWConfig, t: i32, g: &[f32], scale: f64) {
        let (lr, b1, b2) = (c.lr as f64, c.beta1 as f64, c.beta2 as f64);
        let (eps, wd) = (c.eps as f64, c.weight_decay as f64);
        for (i, &gv) in g.iter().enumerate() {
            let gi = gv as f64 * scale;
            self.p[i] *= 1.0 - lr * wd;
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * gi;
            self.m_abs[i] = b1 * self.m_abs[i] + (1.0 - b1) * gi.abs();
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * gi * gi;
            let mh = self.m[i] / (1.0 - b1.powi(t));
            let vh = self.v[i] / (1.0 - b2.powi(t));
            self.p[i] -= lr * mh / (vh.sqrt() + eps);
        }
    }
}

fn run(ctx: &GpuContext, n: usize, scale: Option<f32>, seed: u64) {
    let cfg = AdamWConfig {
        lr: 1e-2,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let mut r = rng(seed);
    let p0 = randn(&mut r, n);
    let param = Tensor::from_f32(ctx, &[n], &p0).unwrap();
    let state = AdamWState::zeros_like(&param).unwrap();
    let st = scale.map(|s| Tensor::from_f32(ctx, &[1], &[s]).unwrap());
    let mut cpu = CpuAdamW {
        p: p0.iter().map(|&a| a as f64).collect(),
        m: vec![0.0; n],
        v: vec![0.0; n],
        m_abs: vec![0.0; n],
    };
    let steps = 6;
    for t in 1..=steps {
        let g = randn(&mut r, n);
        let grad = Tensor::from_f32(ctx, &[n], &g).unwrap();
        let mut rec = Recorder::new(ctx, "test");
        adamw_step(&mut rec, &cfg, t as u64, &param, &grad, &state, st.as_ref()).unwrap();
        rec.submit().unwrap();
        cpu.step(&cfg, t, &g, scale.unwrap_or(1.0) as f64);
    }
    let what = format!("adamw n {n} scale {scale:?} after {steps} steps");
    let got = param.to_f32_vec().unwrap();
    assert_close(&format!("{what} param"), &got, &cpu.p, 1e-6, 2e-6, None);
    let s = 4.0 * steps as f64 * 1.2e-7;
    assert_close(
        &format!("{what} m"),
        &state.m.to_f32_vec().unwrap(),
        &cpu.m,
        0.0,
        s,
        Some(&cpu.m_abs),
    );
    assert_close(
        &format!("{what} v"),
        &state.v.to_f32_vec().unwrap(),
        &cpu.v,
        1e-12,
        s,
        None,
    );
}

#[test]
fn adamw_several_steps_odd_sizes() {
    let ctx = ctx();
    for (i, n) in [1usize, 7, 1000, 4097].into_iter().enumerate() {
        run(&ctx, n, None, i as u64);
        run(&ctx, n, Some(0.37), 10 + i as u64);
    }
}

#[test]
fn adamw_across_binding_windows() {
    // 1 KiB bindings: windows of 256 elements.
    let small = ctx().with_binding_limit(1 << 10);
    run(&small, 1000, Some(0.5), 20);
}

#[test]
fn adamw_shape_errors_name_the_op() {
    let ctx = ctx();
    let p = Tensor::zeros(&ctx, &[4, 3], DType::F32).unwrap();
    let g = Tensor::zeros(&ctx, &[3, 4], DType::F32).unwrap();
    let state = AdamWState::zeros_like(&p).unwrap();
    let cfg = AdamWConfig::default();
    let mut rec = Recorder::new(&ctx, "test");
    let msg = adamw_step(&mut rec, &cfg, 1, &p, &g, &state, None)
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("adamw: param, grad, m and v must have the same shape"),
        "{msg}"
    );
    assert!(msg.contains("[4, 3]") && msg.contains("[3, 4]"), "{msg}");
    let g = Tensor::zeros(&ctx, &[4, 3], DType::F32).unwrap();
    let two = Tensor::zeros(&ctx, &[2], DType::F32).unwrap();
    let msg = adamw_step(&mut rec, &cfg, 1, &p, &g, &state, Some(&two))
        .unwrap_err()
        .to_string();
    assert!(
        msg.starts_with("adamw: grad_scale must be one f32 element"),
        "{msg}"
    );
    let msg = adamw_step(&mut rec, &cfg, 0, &p, &g, &state, None)
        .unwrap_err()
        .to_string();
    assert!(msg.starts_with("adamw: step counts from 1"), "{msg}");
    assert!(rec.is_empty());
}
