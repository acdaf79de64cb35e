//! Benchmark rows for a decode step's products (64 rows at the Qwen3-0.6B shapes): the f32
//! kernels the decode used to run against the row-cast tensor-core path (`quantize_rows` +
//! `matmul_rows`), and a chain of tiny dependent dispatches that prices one launch plus the
//! barrier before it (what a decode step pays ~800 times).

use crate::bench::{Case, Launch};
use crate::bench_ops::f32t;
use crate::gpu::{Recorder, Tensor};
use crate::kernels::cast_scaled::cast_scaled;
use crate::kernels::elementwise::add;
use crate::kernels::matmul::{matmul, MatmulOpts};
use crate::kernels::matmul_rows::{matmul_rows, matmul_rows_fits, RowsOperand};
use crate::kernels::quantize_rows::{padded_rows, quantize_rows};
use crate::{DType, GpuContext};

/// (N, K) of Qwen3-0.6B's decode products: k/v, q, o, gate/up, down, LM head.
const SHAPES: [(usize, usize); 5] = [
    (1024, 1024),
    (2048, 1024),
    (3072, 1024),
    (1024, 3072),
    (153_216, 1024),
];

pub fn decode_cases(ctx: &GpuContext, quick: bool) -> Vec<Case> {
    let m = if quick { 8 } else { 64 };
    let mut v = Vec::new();
    v.push(Case::new(
        "dispatch chain (add)",
        format!("{m}x32, 2 dependent adds a launch"),
        0.0,
        4.0 * (6 * m * 32) as f64,
        200,
        move |ctx| {
            let (x, y, z) = (
                f32t(ctx, &[m, 32], 1)?,
                f32t(ctx, &[m, 32], 2)?,
                Tensor::zeros(ctx, &[m, 32], DType::F32)?,
            );
            let l: Launch = Box::new(move |rec: &mut Recorder| {
                add(rec, &x, &y, &z)?;
                add(rec, &z, &y, &x)
            });
            Ok(l)
        },
    ));
    for (n, k) in SHAPES {
        let (n, k) = if quick { (n / 16, k / 8) } else { (n, k) };
        let flops = 2.0 * (m * n * k) as f64;
        v.push(Case::new(
            "decode product f32 (matmul)",
            format!("{m}x{n}x{k}"),
            flops,
            4.0 * (n * k + m * k + m * n) as f64,
            20,
            move |ctx| {
                let (a, w, c) = (
                    f32t(ctx, &[m, k], 3)?,
                    f32t(ctx, &[n, k], 4)?,
                    Tensor::zeros(ctx, &[m, n], DType::F32)?,
                );
                let l: Launch = Box::new(move |rec: &mut Recorder| {
                    matmul(rec, &a, &w, None, &c, MatmulOpts::nt())
                });
                Ok(l)
            },
        ));
        let mut rows = Case::new(
            "decode product f16 rows (quantize_rows + matmul_rows)",
            format!("{m}x{n}x{k}"),
            flops,
            (4 * m * k + 2 * n * k + 4 * m * n) as f64,
            20,
            move |ctx| {
                let m_pad = padded_rows(m);
                let a = f32t(ctx, &[m, k], 3)?;
                let (a16, inv) = (
                    Tensor::zeros(ctx, &[m_pad, k], DType::F16)?,
                    Tensor::zeros(ctx, &[m_pad], DType::F32)?,
                );
                let (w16, ws) = (
                    Tensor::zeros(ctx, &[n, k], DType::F16)?,
                    Tensor::zeros(ctx, &[2], DType::F32)?,
                );
                let mut rec = Recorder::new(ctx, "bench-cast-weight");
                cast_scaled(&mut rec, &f32t(ctx, &[n, k], 4)?, &ws, &w16)?;
                rec.submit()?;
                let c = Tensor::zeros(ctx, &[m, n], DType::F32)?;
                let l: Launch = Box::new(move |rec: &mut Recorder| {
                    quantize_rows(rec, &a, &a16, &inv)?;
                    let op = RowsOperand {
                        t: &a16,
                        inv: &inv,
                        m,
                    };
                    matmul_rows(rec, &op, &w16, &ws, None, &c, false)
                });
                Ok(l)
            },
        );
        rows.unavailable = rows_unavailable(ctx);
        v.push(rows);
    }
    v
}

/// Why the row path cannot run here, if it cannot (shape-independent: the adapter).
fn rows_unavailable(ctx: &GpuContext) -> Option<String> {
    (!matmul_rows_fits(ctx, 1024, 1024)).then(|| {
        format!(
            "{} has no 16x16x16 f16 cooperative matrices",
            ctx.info().name
        )
    })
}
