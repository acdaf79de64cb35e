//! `grrm selfcheck`: runs kernels on the chosen adapter against CPU references, so a user on a
//! new GPU or driver learns at once whether the kernels compute correctly there. The full
//! per-kernel suites live in `model/tests/`; this is the quick on-device subset: f32 matmuls in
//! three layouts, and training attention with the kernel `Auto` picks (selfcheck/attention.rs).

mod attention;

use std::fmt;
use std::time::Instant;

use rand::{Rng, SeedableRng};

use crate::gpu::Result;
use crate::kernels::matmul::{matmul, MatmulOpts};
use crate::{DType, GpuContext, Recorder, Tensor};

pub struct CheckResult {
    pub name: String,
    pub max_rel_err: f64,
    pub tolerance: f64,
    pub millis: f64,
}

impl CheckResult {
    pub fn passed(&self) -> bool {
        self.max_rel_err <= self.tolerance
    }
}

pub struct Report(pub Vec<CheckResult>);

impl Report {
    pub fn all_passed(&self) -> bool {
        self.0.iter().all(CheckResult::passed)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<40} {:>12} {:>10} {:>9}  result",
            "check", "max rel err", "tolerance", "ms"
        )?;
        for r in &self.0 {
            writeln!(
                f,
                "{:<40} {:>12.3e} {:>10.0e} {:>9.1}  {}",
                r.name,
                r.max_rel_err,
                r.tolerance,
                r.millis,
                if r.passed() { "ok" } else { "FAILED" }
            )?;
        }
        Ok(())
    }
}

/// Worst |got - want| / (sum_k |a_ik b_kj| + 1e-6): the error relative to the magnitude an f32
/// dot product of that length can resolve. NaN (an unwritten output) counts as infinite.
fn rel_err(got: &[f32], want: &[f64], scale: &[f64]) -> f64 {
    got.iter()
        .zip(want)
        .zip(scale)
        .map(|((g, w), s)| {
            let e = (*g as f64 - w).abs() / (s + 1e-6);
            if e.is_nan() {
                f64::INFINITY
            } else {
                e
            }
        })
        .fold(0.0, f64::max)
}

fn check_matmul(
    ctx: &GpuContext,
    m: usize,
    n: usize,
    k: usize,
    o: MatmulOpts,
) -> Result<CheckResult> {
    let mut rng = rand::rngs::StdRng::seed_from_u64((m * 31 + n * 7 + k) as u64);
    let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let a_shape = if o.trans_a { [k, m] } else { [m, k] };
    let b_shape = if o.trans_b { [n, k] } else { [k, n] };
    let ta = Tensor::from_f32(ctx, &a_shape, &a)?;
    let tb = Tensor::from_f32(ctx, &b_shape, &b)?;
    let tc = Tensor::poisoned(ctx, &[m, n], DType::F32)?;
    let t0 = Instant::now();
    let mut rec = Recorder::new(ctx, "selfcheck");
    matmul(&mut rec, &ta, &tb, None, &tc, o)?;
    rec.submit()?;
    let got = tc.to_f32_vec()?;
    let millis = t0.elapsed().as_secs_f64() * 1e3;
    let mut want = vec![0f64; m * n];
    let mut scale = vec![0f64; m * n];
    for i in 0..m {
        for j in 0..n {
            for kk in 0..k {
                let av = if o.trans_a {
                    a[kk * m + i]
                } else {
                    a[i * k + kk]
                } as f64;
                let bv = if o.trans_b {
                    b[j * k + kk]
                } else {
                    b[kk * n + j]
                } as f64;
                want[i * n + j] += av * bv;
                scale[i * n + j] += (av * bv).abs();
            }
        }
    }
    Ok(CheckResult {
        name: format!(
            "matmul {m}x{n}x{k}{}{}",
            if o.trans_a { " A^T" } else { "" },
            if o.trans_b { " B^T" } else { "" }
        ),
        max_rel_err: rel_err(&got, &want, &scale),
        tolerance: 1e-5,
        millis,
    })
}

/// Runs every check; kernel failures are reported in the table, device errors abort.
pub fn run(ctx: &GpuContext) -> Result<Report> {
    let mut out = Vec::new();
    for (m, n, k) in [(1, 1, 1), (67, 45, 129), (130, 257, 64)] {
        for o in [MatmulOpts::default(), MatmulOpts::nt(), MatmulOpts::tn()] {
            out.push(check_matmul(ctx, m, n, k, o)?);
        }
    }
    out.extend(attention::check_attention(ctx)?);
    Ok(Report(out))
}
