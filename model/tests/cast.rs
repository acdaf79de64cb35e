//! f32 <-> f16 casts, bit-exact against the `half` crate. f32 -> f16 is checked on every f16
//! value, every midpoint between neighbouring f16 values (the round-to-nearest-even ties),
//! one f32 ulp either side of each midpoint, the overflow threshold (65520 -> inf), f32
//! subnormals, infinities, NaNs and random bit patterns. f16 -> f32 is checked exhaustively on
//! all 65,536 f16 bit patterns. NaNs must stay NaN (the payload rule is the same as `half`'s,
//! and is compared bit-exactly too). Tolerance: 0 (bit-exact).

mod common;

use common::*;
use grrm_model::kernels::cast::{f16_to_f32, f32_to_f16};
use grrm_model::{DType, GpuContext, Recorder, Tensor};
use half::f16;
use rand::Rng;

fn tricky_f32() -> Vec<f32> {
    let mut v = Vec::new();
    for h in 0u16..0x7c00 {
        let lo = f16::from_bits(h).to_f32();
        let hi = f16::from_bits(h + 1).to_f32();
        let mid = ((lo as f64 + hi as f64) / 2.0) as f32; // exact: f16 midpoints fit in f32
        for x in [
            lo,
            mid,
            f32::from_bits(mid.to_bits() - 1),
            f32::from_bits(mid.to_bits() + 1),
        ] {
            v.push(x);
            v.push(-x);
        }
    }
    v.extend([
        65504.0,
        65519.99,
        65520.0,
        1e10,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0x7fbf_ffff),
        f32::from_bits(1),
        f32::from_bits(0x807f_ffff),
        f32::MIN_POSITIVE,
        -0.0,
    ]);
    let mut r = rng(7);
    v.extend((0..20_001).map(|_| f32::from_bits(r.random::<u32>())));
    v
}

fn to_f16(ctx: &GpuContext, x: &[f32]) -> Vec<f16> {
    let tx = Tensor::from_f32(ctx, &[x.len()], x).unwrap();
    let out = Tensor::poisoned(ctx, &[x.len()], DType::F16).unwrap();
    let mut rec = Recorder::new(ctx, "test");
    f32_to_f16(&mut rec, &tx, &out).unwrap();
    rec.submit().unwrap();
    out.to_f16_vec().unwrap()
}

fn to_f32(ctx: &GpuContext, x: &[f16]) -> Vec<f32> {
    let tx = Tensor::from_f16(ctx, &[x.len()], x).unwrap();
    let out = Tensor::poisoned(ctx, &[x.len()], DType::F32).unwrap();
    let mut rec = Recorder::new(ctx, "test");
    f16_to_f32(&mut rec, &tx, &out).unwrap();
    rec.submit().unwrap();
    out.to_f32_vec().unwrap()
}

fn check_to_f16(what: &str, x: &[f32], got: &[f16]) {
    for (i, (&xi, g)) in x.iter().zip(got).enumerate() {
        let want = f16::from_f32(xi);
        assert!(
            g.to_bits() == want.to_bits() || (want.is_nan() && g.is_nan()),
            "{what}: element {i}: f16({xi:e} = {:#010x}) got {:#06x}, want {:#06x}",
            xi.to_bits(),
            g.to_bits(),
            want.to_bits()
        );
    }
    let nan_bits_equal = x
        .iter()
        .zip(got)
        .all(|(&xi, g)| !xi.is_nan() || g.to_bits() == f16::from_f32(xi).to_bits());
    assert!(nan_bits_equal, "{what}: NaN payloads differ from half's");
}

#[test]
fn f32_to_f16_rounds_like_half() {
    let ctx = ctx();
    let mut x = tricky_f32();
    if x.len().is_multiple_of(2) {
        x.pop(); // odd count: the last word is half filled
    }
    let got = to_f16(&ctx, &x);
    check_to_f16("f32_to_f16", &x, &got);
    for n in [1, 7, 33] {
        check_to_f16(&format!("f32_to_f16 n{n}"), &x[..n], &to_f16(&ctx, &x[..n]));
    }
}

#[test]
fn f16_to_f32_exhaustive() {
    let ctx = ctx();
    // All 65,536 patterns but the last, for an odd count.
    let x: Vec<f16> = (0..=u16::MAX - 1).map(f16::from_bits).collect();
    let got = to_f32(&ctx, &x);
    for (i, (h, g)) in x.iter().zip(&got).enumerate() {
        let want = h.to_f32();
        assert!(
            g.to_bits() == want.to_bits(),
            "f16_to_f32: element {i}: {:#06x} got {:#010x}, want {:#010x}",
            h.to_bits(),
            g.to_bits(),
            want.to_bits()
        );
    }
    let one = to_f32(&ctx, &[f16::from_f32(-1.5)]);
    assert_eq!(one, vec![-1.5]);
}

#[test]
fn cast_windows_larger_than_a_binding() {
    // 1 KiB bindings: 256-element windows over 1001 elements, both directions.
    let small = ctx().with_binding_limit(1024);
    let mut r = rng(3);
    let x: Vec<f32> = randn(&mut r, 1001).iter().map(|v| v * 1000.0).collect();
    let h = to_f16(&small, &x);
    check_to_f16("f32_to_f16 windowed", &x, &h);
    let back = to_f32(&small, &h);
    for (i, (a, b)) in h.iter().zip(&back).enumerate() {
        assert_eq!(
            a.to_f32().to_bits(),
            b.to_bits(),
            "f16_to_f32 windowed: element {i}"
        );
    }
}

#[test]
fn cast_shape_errors_name_the_op() {
    let ctx = ctx();
    let a = Tensor::zeros(&ctx, &[3, 5], DType::F32).unwrap();
    let h = Tensor::zeros(&ctx, &[5, 3], DType::F16).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let e = f32_to_f16(&mut rec, &a, &h).unwrap_err().to_string();
    assert!(
        e.starts_with("f32_to_f16:") && e.contains("[3, 5]") && e.contains("[5, 3]"),
        "{e}"
    );
    let e = f16_to_f32(&mut rec, &a, &h).unwrap_err().to_string();
    assert!(e.starts_with("f16_to_f32:") && e.contains("F32"), "{e}");
    assert!(rec.is_empty());
}
