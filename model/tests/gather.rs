//! `kernels::gather` (per-row column gather) against a CPU reference: odd shapes, NONE slots,
//! repeated columns, rows whose window starts off the storage alignment, into poisoned
//! outputs. A gather moves bits, so the tolerance is zero: every value must be bit-identical.

mod common;

use common::*;
use grrm_model::kernels::gather::{gather_columns, gather_columns_windowed, NONE};
use grrm_model::{DType, Recorder, Tensor};
use rand::Rng;

fn case(r: usize, v: usize, f: usize, window: Option<usize>, seed: u64) {
    let ctx = ctx();
    let mut g = rng(seed);
    let src = randn(&mut g, r * v);
    let cols: Vec<u32> = (0..r * f)
        .map(|_| {
            if g.random_range(0..5) == 0 {
                NONE
            } else {
                g.random_range(0..v as u32)
            }
        })
        .collect();
    let want: Vec<f32> = cols
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if c == NONE {
                0.0
            } else {
                src[(i / f) * v + c as usize]
            }
        })
        .collect();
    let s = Tensor::from_f32(&ctx, &[r, v], &src).unwrap();
    let c = Tensor::from_u32(&ctx, &[r, f], &cols).unwrap();
    let out = Tensor::poisoned(&ctx, &[r, f], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "gather");
    match window {
        Some(w) => gather_columns_windowed(&mut rec, &s, &c, &cols, &out, w).unwrap(),
        None => gather_columns(&mut rec, &s, &c, &cols, &out).unwrap(),
    }
    rec.submit().unwrap();
    let got = out.to_f32_vec().unwrap();
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "R{r} V{v} F{f} window {window:?}: slot {i} (row {}, column {}): {a} vs {b}",
            i / f,
            cols[i]
        );
    }
}

#[test]
fn gathers_match_the_reference_on_odd_shapes() {
    for (i, &(r, v, f)) in [
        (1, 1, 1),
        (3, 7, 5),
        (17, 1000, 33),
        (40, 2049, 257),
        (5, 33, 64),
    ]
    .iter()
    .enumerate()
    {
        case(r, v, f, None, i as u64);
    }
}

#[test]
fn row_windows_start_off_the_alignment() {
    // V = 1001 puts most window starts off the 256-byte alignment.
    for w in [1, 2, 3, 7] {
        case(23, 1001, 19, Some(w), 40 + w as u64);
    }
}

#[test]
fn bad_columns_and_shapes_are_errors() {
    let ctx = ctx();
    let s = Tensor::from_f32(&ctx, &[2, 4], &[0.0; 8]).unwrap();
    let cols = [0u32, 4, 1, 2];
    let c = Tensor::from_u32(&ctx, &[2, 2], &cols).unwrap();
    let out = Tensor::zeros(&ctx, &[2, 2], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "gather");
    let e = gather_columns(&mut rec, &s, &c, &cols, &out).unwrap_err();
    assert!(e.to_string().contains("column 4"), "{e}");
    let out3 = Tensor::zeros(&ctx, &[2, 3], DType::F32).unwrap();
    assert!(gather_columns(&mut rec, &s, &c, &[0, 1, 1, 2], &out3).is_err());
}
