//! Shared helpers for kernel tests: one device per test binary, seeded random data, and a
//! comparison that reports the worst element and fails on NaN (poisoned outputs).
#![allow(dead_code)]

use std::sync::OnceLock;

use grrm_model::GpuContext;
use rand::{Rng, SeedableRng};

pub fn ctx() -> GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::from_env().expect("a GPU adapter (lavapipe in CI)"))
        .clone()
}

pub fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

pub fn randn(rng: &mut impl Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Asserts |got - want| <= atol + rtol * scale[i] element-wise (scale defaults to |want|).
pub fn assert_close(
    what: &str,
    got: &[f32],
    want: &[f64],
    atol: f64,
    rtol: f64,
    scale: Option<&[f64]>,
) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0usize, 0f64);
    for i in 0..got.len() {
        let g = got[i] as f64;
        let s = scale.map_or(want[i].abs(), |s| s[i]);
        let err = (g - want[i]).abs();
        assert!(
            g.is_finite() || !want[i].is_finite(),
            "{what}: element {i} is {g} (want {}): unwritten or overflow",
            want[i]
        );
        assert!(
            err <= atol + rtol * s,
            "{what}: element {i}: got {g}, want {}, |err| {err:e} > {atol:e} + {rtol:e} * {s:e}",
            want[i]
        );
        if err > worst.1 {
            worst = (i, err);
        }
    }
    eprintln!("{what}: max |err| {:e} at {}", worst.1, worst.0);
}

/// The tiny Qwen3 configuration the generation tests share (2 layers, hidden 32, 4/2 heads of
/// 8, vocabulary 50, 96 positions), with a wide initializer so its predictions are far from
/// uniform.
pub fn tiny_generation_config() -> grrm_model::hf::ModelConfig {
    use grrm_model::hf::{Arch, ConfigBuilder};
    let mut cfg = ConfigBuilder::new(Arch::Qwen3)
        .layers(2)
        .hidden(32)
        .heads(4)
        .kv_heads(2)
        .head_dim(8)
        .ffn(48)
        .vocab(50)
        .max_positions(96)
        .build()
        .unwrap();
    cfg.initializer_range = 0.3;
    cfg
}
