//! Scaled f32 -> f16 cast (mixed-precision matmul operands) against a CPU reference built on
//! the `half` crate: the power-of-two scale from max |x| (max |x| s in [2^14, 2^15)), the f16
//! bits of x s (round to nearest even, subnormals), the dequantized f32 output f16(x s) / s, and
//! the scale words `[bits of max |x|, 1/s]`. Odd sizes, magnitudes from 1e-30 to 1e30, all
//! zeros, inf and NaN, outputs poisoned; several windows through a small binding limit.
//! Tolerance: 0 (bit-exact; NaN compared as NaN).

mod common;

use common::*;
use grrm_model::kernels::cast_scaled::{cast_scaled, cast_scaled_group, scale_log2};
use grrm_model::{DType, GpuContext, Recorder, Tensor};
use half::f16;

struct Want {
    absmax_bits: u32,
    inv: f32,
    h: Vec<f16>,
}

fn reference(x: &[f32]) -> Want {
    let absmax_bits = x
        .iter()
        .map(|v| v.to_bits() & 0x7fff_ffff)
        .max()
        .unwrap_or(0);
    let k = scale_log2(absmax_bits);
    let s = 2f32.powi(k);
    Want {
        absmax_bits,
        inv: 2f32.powi(-k),
        h: x.iter().map(|v| f16::from_f32(v * s)).collect(),
    }
}

fn run(ctx: &GpuContext, x: &[f32], what: &str) {
    let want = reference(x);
    let n = x.len();
    let tx = Tensor::from_f32(ctx, &[n], x).unwrap();
    let h = Tensor::poisoned(ctx, &[n], DType::F16).unwrap();
    let d = Tensor::poisoned(ctx, &[n], DType::F32).unwrap();
    let (sh, sd) = (
        Tensor::poisoned(ctx, &[2], DType::F32).unwrap(),
        Tensor::poisoned(ctx, &[2], DType::F32).unwrap(),
    );
    let mut rec = Recorder::new(ctx, "test");
    cast_scaled(&mut rec, &tx, &sh, &h).unwrap();
    cast_scaled(&mut rec, &tx, &sd, &d).unwrap();
    rec.submit().unwrap();
    for (name, s) in [("f16", &sh), ("dequant", &sd)] {
        let words = s.to_f32_vec().unwrap();
        assert_eq!(
            words[0].to_bits(),
            want.absmax_bits,
            "{what} {name}: max |x| bits"
        );
        assert_eq!(words[1].to_bits(), want.inv.to_bits(), "{what} {name}: 1/s");
    }
    let got_h = h.to_f16_vec().unwrap();
    let got_d = d.to_f32_vec().unwrap();
    for i in 0..n {
        let w = want.h[i];
        let g = got_h[i];
        assert!(
            g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
            "{what}: element {i} ({}): f16 bits {:#06x}, want {:#06x}",
            x[i],
            g.to_bits(),
            w.to_bits()
        );
        let wd = w.to_f32() * want.inv;
        assert!(
            got_d[i].to_bits() == wd.to_bits() || (got_d[i].is_nan() && wd.is_nan()),
            "{what}: element {i} ({}): dequantized {}, want {wd}",
            x[i],
            got_d[i]
        );
    }
}

#[test]
fn cast_scaled_matches_reference() {
    let ctx = ctx();
    let mut r = rng(17);
    for (n, mag) in [
        (1, 1.0f32),
        (7, 3e-9),
        (1001, 1e-30),
        (4099, 1e30),
        (3, 65504.0),
        (70_001, 0.02),
    ] {
        let x: Vec<f32> = randn(&mut r, n).iter().map(|v| v * mag).collect();
        run(&ctx, &x, &format!("n {n} x {mag:e}"));
    }
    // Wide dynamic range inside one tensor: small values become f16 subnormals or zero.
    let x: Vec<f32> = (0..999)
        .map(|i| (if i % 2 == 0 { 1.0 } else { -1.0 }) * 10f32.powi(i % 13 - 9))
        .collect();
    run(&ctx, &x, "range");
    run(&ctx, &[0.0; 13], "zeros");
    run(&ctx, &[-0.0, 0.0, -0.0], "signed zeros");
    let mut x = randn(&mut r, 301);
    x[100] = f32::INFINITY;
    run(&ctx, &x, "inf");
    x[200] = f32::NAN;
    run(&ctx, &x, "nan");
}

/// Windows of a small binding limit: the max spans all windows, every window is quantized.
#[test]
fn cast_scaled_windows() {
    let ctx = ctx().with_binding_limit(4096);
    let mut r = rng(3);
    let mut x = randn(&mut r, 5 * 1024 + 77);
    x[4000] = 37.5; // the max sits in the fourth window
    run(&ctx, &x, "windows");
}

/// Several tensors cast with one scale: the max over all of them (here in the second), every
/// output as the reference casts the concatenation.
#[test]
fn cast_scaled_group_shares_one_scale() {
    let ctx = ctx();
    let mut r = rng(11);
    let parts: Vec<Vec<f32>> = [(33, 1.0f32), (17, 900.0), (5, 1e-3)]
        .iter()
        .map(|&(n, mag)| randn(&mut r, n).iter().map(|v| v * mag).collect())
        .collect();
    let all: Vec<f32> = parts.concat();
    let want = reference(&all);
    let xs: Vec<Tensor> = parts
        .iter()
        .map(|p| Tensor::from_f32(&ctx, &[p.len()], p).unwrap())
        .collect();
    let outs: Vec<Tensor> = parts
        .iter()
        .map(|p| Tensor::poisoned(&ctx, &[p.len()], DType::F16).unwrap())
        .collect();
    let stats = Tensor::poisoned(&ctx, &[2], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let (xr, or): (Vec<&Tensor>, Vec<&Tensor>) = (xs.iter().collect(), outs.iter().collect());
    cast_scaled_group(&mut rec, &xr, &stats, &or).unwrap();
    rec.submit().unwrap();
    let words = stats.to_f32_vec().unwrap();
    assert_eq!(
        words[0].to_bits(),
        want.absmax_bits,
        "max |x| over the group"
    );
    assert_eq!(words[1].to_bits(), want.inv.to_bits(), "1/s");
    let got: Vec<u16> = outs
        .iter()
        .flat_map(|o| o.to_f16_vec().unwrap())
        .map(|h| h.to_bits())
        .collect();
    let exp: Vec<u16> = want.h.iter().map(|h| h.to_bits()).collect();
    assert_eq!(got, exp);
}
