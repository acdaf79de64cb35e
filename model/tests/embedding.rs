//! Embedding gather and its scatter-add gradient against an f64 reference, on odd shapes,
//! with ids outside the table, repeated ids, tables chunked over several bindings, and a
//! 150,001-row vocabulary; the gather of column 0 of [N, 2] id rows equals the plain gather.
//! Tolerances: gather is a copy (bit-exact; out-of-range ids give zero rows). The gradient
//! sums at most N f32 rows per table row: |err| <= 1e-6 + N * 2^-24 * sum |terms|
//! (stated as 1e-6 + 1e-5 * sum |terms| for N <= 129).

mod common;

use common::*;
use grrm_model::kernels::embedding::{embedding, embedding_backward, embedding_column0};
use grrm_model::{DType, GpuContext, Recorder, Tensor};
use rand::Rng;

fn gather_case(ctx: &GpuContext, v: usize, d: usize, ids: &[u32], seed: u64) {
    let mut r = rng(seed);
    let table = randn(&mut r, v * d);
    let n = ids.len();
    let tt = Tensor::from_f32(ctx, &[v, d], &table).unwrap();
    let ti = Tensor::from_u32(ctx, &[n], ids).unwrap();
    // The same ids as column 0 of [N, 2] rows whose column 1 holds other ids (a choice
    // output's token and log-prob bits).
    let rows: Vec<u32> = ids.iter().flat_map(|&i| [i, i ^ 0x5a5a]).collect();
    let tr = Tensor::from_u32(ctx, &[n, 2], &rows).unwrap();
    let out = Tensor::poisoned(ctx, &[n, d], DType::F32).unwrap();
    let out_rows = Tensor::poisoned(ctx, &[n, d], DType::F32).unwrap();
    let mut rec = Recorder::new(ctx, "test");
    embedding(&mut rec, &tt, &ti, &out).unwrap();
    embedding_column0(&mut rec, &tt, &tr, &out_rows).unwrap();
    rec.submit().unwrap();
    let got = out.to_f32_vec().unwrap();
    assert_eq!(
        out_rows
            .to_f32_vec()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect::<Vec<_>>(),
        got.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        "embedding_column0 v{v} d{d}"
    );
    for (t, &id) in ids.iter().enumerate() {
        for k in 0..d {
            let want = if (id as usize) < v {
                table[id as usize * d + k]
            } else {
                0.0
            };
            assert_eq!(
                got[t * d + k].to_bits(),
                want.to_bits(),
                "embedding v{v} d{d}: token {t} id {id} col {k}"
            );
        }
    }
}

fn backward_case(ctx: &GpuContext, v: usize, d: usize, ids: &[u32], accumulate: bool, seed: u64) {
    let mut r = rng(seed);
    let n = ids.len();
    let dout = randn(&mut r, n * d);
    let init = randn(&mut r, v * d);
    let tdo = Tensor::from_f32(ctx, &[n, d], &dout).unwrap();
    let dt = if accumulate {
        Tensor::from_f32(ctx, &[v, d], &init).unwrap()
    } else {
        Tensor::poisoned(ctx, &[v, d], DType::F32).unwrap()
    };
    let mut rec = Recorder::new(ctx, "test");
    embedding_backward(&mut rec, ids, &tdo, &dt, accumulate).unwrap();
    rec.submit().unwrap();
    let got = dt.to_f32_vec().unwrap();
    let mut want: Vec<f64> = if accumulate {
        init.iter().map(|&x| x as f64).collect()
    } else {
        vec![0.0; v * d]
    };
    let mut scale: Vec<f64> = want.iter().map(|x| x.abs()).collect();
    for (t, &id) in ids.iter().enumerate() {
        for k in 0..d {
            want[id as usize * d + k] += dout[t * d + k] as f64;
            scale[id as usize * d + k] += dout[t * d + k].abs() as f64;
        }
    }
    let what = format!("embedding_backward v{v} d{d} n{n} acc{accumulate}");
    assert_close(&what, &got, &want, 1e-6, 1e-5, Some(&scale));
}

#[test]
fn embedding_gather_odd_shapes_and_out_of_range_ids() {
    let ctx = ctx();
    gather_case(&ctx, 1, 1, &[0], 1);
    let mut r = rng(2);
    let mut ids: Vec<u32> = (0..129).map(|_| r.random_range(0..37)).collect();
    ids[5] = 37;
    ids[50] = 1000;
    ids[128] = u32::MAX;
    gather_case(&ctx, 37, 33, &ids, 3);
}

#[test]
fn embedding_backward_repeated_ids() {
    let ctx = ctx();
    backward_case(&ctx, 1, 1, &[0], false, 4);
    let mut r = rng(5);
    // Few distinct ids among 129 tokens: many repeats per row, many rows untouched.
    let ids: Vec<u32> = (0..129).map(|_| r.random_range(0..7) * 5).collect();
    backward_case(&ctx, 37, 33, &ids, false, 6);
    backward_case(&ctx, 37, 33, &ids, true, 7);
}

#[test]
fn embedding_backward_is_bitwise_reproducible() {
    let ctx = ctx();
    let mut r = rng(8);
    let ids: Vec<u32> = (0..129).map(|_| r.random_range(0..3)).collect();
    let dout = Tensor::from_f32(&ctx, &[129, 17], &randn(&mut r, 129 * 17)).unwrap();
    let runs: Vec<Vec<f32>> = (0..2)
        .map(|_| {
            let dt = Tensor::poisoned(&ctx, &[3, 17], DType::F32).unwrap();
            let mut rec = Recorder::new(&ctx, "test");
            embedding_backward(&mut rec, &ids, &dout, &dt, false).unwrap();
            rec.submit().unwrap();
            dt.to_f32_vec().unwrap()
        })
        .collect();
    assert!(runs[0]
        .iter()
        .zip(&runs[1])
        .all(|(a, b)| a.to_bits() == b.to_bits()));
}

#[test]
fn embedding_table_chunked_over_bindings() {
    // Bindings of 192 rows x 17 f32: a 1000-row table spans 6 windows.
    let small = ctx().with_binding_limit(192 * 17 * 4);
    let mut r = rng(9);
    let mut ids: Vec<u32> = (0..129).map(|_| r.random_range(0..1000)).collect();
    ids[0] = 1000; // out of range: zeros, written by exactly one window
    ids[1] = 999;
    ids[2] = 192; // first row of the second window
    ids[3] = 191;
    gather_case(&small, 1000, 17, &ids, 10);
    ids[0] = 0;
    backward_case(&small, 1000, 17, &ids, false, 11);
    backward_case(&small, 1000, 17, &ids, true, 12);
}

#[test]
fn embedding_large_vocabulary() {
    // 150,001 rows x 8, with 1 MiB bindings: 5 windows.
    let small = ctx().with_binding_limit(1 << 20);
    let mut r = rng(13);
    let mut ids: Vec<u32> = (0..33).map(|_| r.random_range(0..150_001)).collect();
    ids[0] = 150_000;
    ids[1] = ids[2];
    gather_case(&small, 150_001, 8, &ids, 14);
    backward_case(&small, 150_001, 8, &ids, false, 15);
}

#[test]
fn embedding_errors_name_the_op() {
    let ctx = ctx();
    let table = Tensor::zeros(&ctx, &[10, 4], DType::F32).unwrap();
    let ids = Tensor::zeros(&ctx, &[3], DType::U32).unwrap();
    let out = Tensor::zeros(&ctx, &[3, 5], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let e = embedding(&mut rec, &table, &ids, &out)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("embedding:") && e.contains("[10, 4]") && e.contains("[3, 5]"),
        "{e}"
    );
    let dout = Tensor::zeros(&ctx, &[3, 4], DType::F32).unwrap();
    let e = embedding_backward(&mut rec, &[1, 10, 2], &dout, &table, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("embedding_backward:") && e.contains("id 10"),
        "{e}"
    );
    let e = embedding_backward(&mut rec, &[1, 2], &dout, &table, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("embedding_backward:") && e.contains("[3, 4]"),
        "{e}"
    );
    assert!(rec.is_empty());
}
