//! matmul against an f64 CPU reference on odd shapes, every transpose combination, batching,
//! bias, accumulation, and the chunked path for operands larger than one binding.
//! Tolerance: |err| <= 1e-6 + 2e-6 * sqrt(K) * sum_k |a_ik b_kj| (f32 accumulation over K terms).

mod common;

use common::*;
use grrm_model::kernels::matmul::{matmul, MatmulOpts};
use grrm_model::{DType, GpuContext, Recorder, Tensor};

struct Case {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    o: MatmulOpts,
    bias: bool,
    b_batched: bool,
}

fn reference(c: &Case, a: &[f32], b: &[f32], bias: &[f32], c0: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let (m, n, k) = (c.m, c.n, c.k);
    let mut out = vec![0f64; c.batch * m * n];
    let mut scale = vec![0f64; c.batch * m * n];
    for bi in 0..c.batch {
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut mag) = (0f64, 0f64);
                for kk in 0..k {
                    let av = if c.o.trans_a {
                        a[bi * m * k + kk * m + i]
                    } else {
                        a[bi * m * k + i * k + kk]
                    };
                    let bb = if c.b_batched { bi * k * n } else { 0 };
                    let bv = if c.o.trans_b {
                        b[bb + j * k + kk]
                    } else {
                        b[bb + kk * n + j]
                    };
                    s += av as f64 * bv as f64;
                    mag += (av as f64 * bv as f64).abs();
                }
                let idx = bi * m * n + i * n + j;
                let mut v = c.o.alpha as f64 * s;
                if c.bias {
                    v += bias[j] as f64;
                }
                if c.o.accumulate {
                    v += c0[idx] as f64;
                }
                out[idx] = v;
                scale[idx] = mag * (k as f64).sqrt() * 2.0 + 1.0;
            }
        }
    }
    (out, scale)
}

fn run(ctx: &GpuContext, c: &Case, seed: u64) {
    let mut r = rng(seed);
    let a = randn(&mut r, c.batch * c.m * c.k);
    let nb = if c.b_batched { c.batch } else { 1 };
    let b = randn(&mut r, nb * c.k * c.n);
    let bias = randn(&mut r, c.n);
    let c0 = randn(&mut r, c.batch * c.m * c.n);
    let a_shape = if c.o.trans_a {
        [c.batch, c.k, c.m]
    } else {
        [c.batch, c.m, c.k]
    };
    let b_shape: Vec<usize> = {
        let s = if c.o.trans_b { [c.n, c.k] } else { [c.k, c.n] };
        if c.b_batched {
            vec![c.batch, s[0], s[1]]
        } else {
            s.to_vec()
        }
    };
    let ta = Tensor::from_f32(ctx, &a_shape, &a).unwrap();
    let tb = Tensor::from_f32(ctx, &b_shape, &b).unwrap();
    let tbias = Tensor::from_f32(ctx, &[c.n], &bias).unwrap();
    let tc = if c.o.accumulate {
        Tensor::from_f32(ctx, &[c.batch, c.m, c.n], &c0).unwrap()
    } else {
        Tensor::poisoned(ctx, &[c.batch, c.m, c.n], DType::F32).unwrap()
    };
    let mut rec = Recorder::new(ctx, "test");
    matmul(&mut rec, &ta, &tb, c.bias.then_some(&tbias), &tc, c.o).unwrap();
    rec.submit().unwrap();
    let got = tc.to_f32_vec().unwrap();
    let (want, scale) = reference(c, &a, &b, &bias, &c0);
    let what = format!(
        "matmul b{} m{} n{} k{} ta{} tb{} bias{} acc{}",
        c.batch, c.m, c.n, c.k, c.o.trans_a, c.o.trans_b, c.bias, c.o.accumulate
    );
    assert_close(&what, &got, &want, 1e-6, 1e-6, Some(&scale));
}

#[test]
fn matmul_all_layouts_odd_shapes() {
    let ctx = ctx();
    let mut seed = 1;
    for (m, n, k) in [(1, 1, 1), (7, 13, 5), (33, 65, 17), (64, 31, 129)] {
        for ta in [false, true] {
            for tb in [false, true] {
                let o = MatmulOpts {
                    trans_a: ta,
                    trans_b: tb,
                    alpha: 0.75,
                    accumulate: seed % 3 == 0,
                };
                run(
                    &ctx,
                    &Case {
                        batch: 1,
                        m,
                        n,
                        k,
                        o,
                        bias: seed % 2 == 0,
                        b_batched: false,
                    },
                    seed,
                );
                seed += 1;
            }
        }
    }
}

#[test]
fn matmul_batched_and_broadcast() {
    let ctx = ctx();
    for (i, b_batched) in [true, false].into_iter().enumerate() {
        let o = MatmulOpts {
            trans_b: true,
            ..Default::default()
        };
        run(
            &ctx,
            &Case {
                batch: 3,
                m: 9,
                n: 35,
                k: 23,
                o,
                bias: true,
                b_batched,
            },
            100 + i as u64,
        );
    }
}

#[test]
fn matmul_chunks_operands_larger_than_a_binding() {
    // 128 KiB bindings force chunking of B over N (stored [N, K]) and over K (stored [K, N]),
    // and of A and C over M.
    let small = ctx().with_binding_limit(128 << 10);
    for (seed, tb) in [(200, true), (201, false)] {
        let o = MatmulOpts {
            trans_b: tb,
            accumulate: !tb,
            ..Default::default()
        };
        run(
            &small,
            &Case {
                batch: 1,
                m: 150,
                n: 300,
                k: 130,
                o,
                bias: true,
                b_batched: false,
            },
            seed,
        );
    }
}

#[test]
fn matmul_shape_errors_name_the_op() {
    let ctx = ctx();
    let a = Tensor::zeros(&ctx, &[4, 5], DType::F32).unwrap();
    let b = Tensor::zeros(&ctx, &[6, 7], DType::F32).unwrap();
    let c = Tensor::zeros(&ctx, &[4, 7], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let e = matmul(&mut rec, &a, &b, None, &c, MatmulOpts::default()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("matmul: inner dimensions differ"), "{msg}");
    assert!(msg.contains("[4, 5]") && msg.contains("[6, 7]"), "{msg}");
    let ci = Tensor::zeros(&ctx, &[4, 7], DType::I32).unwrap();
    let b2 = Tensor::zeros(&ctx, &[5, 7], DType::F32).unwrap();
    let e = matmul(&mut rec, &a, &b2, None, &ci, MatmulOpts::default()).unwrap_err();
    assert!(e.to_string().contains("f32"), "{e}");
    assert!(rec.is_empty());
}
