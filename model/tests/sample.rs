//! `kernels::sample` (GPU token choice) against an f64 reference of the rule in
//! shaders/sample.wgsl (`generate::choose_with` implements the same rule and is checked against
//! this reference too): free rows, allowed-id lists, skipped rows, greedy / top-k / top-p /
//! both, rows with many exact ties, odd row lengths (1, 7, 33, 129, 1000) and one row of
//! 150,001, through the row-window path, into poisoned outputs.
//!
//! Tolerance, from the arithmetic: the GPU forms every cumulative weight (top-p masses and the
//! inverse-CDF sums) in f32: per-invocation sums of up to c = ceil(n / 256) terms, an 8-level
//! tree or scan, at most 11 search passes each adding one rounding, the goal u * W with u
//! rounded to f32, and exp() within a few ulp. Each is a relative error <= 2^-24 of W, so every
//! cumulative weight is within eps(n) = (c + 24) * 2^-23 * W of the f64 value (a factor 2 to
//! spare). The GPU's token must be one that the f64 rule yields for some top-p cut and goal moved
//! by at most eps(n) * W; a row where that leaves one token (no boundary within eps) must match
//! exactly, and most rows of every case are of that kind. The log-prob must be x[token] bit for
//! bit, and greedy / top-k membership is integer-exact.

mod common;

use common::*;
use grrm_model::generate::{choose_with, SamplingParams};
use grrm_model::kernels::sample::{read_choices, sample, RowChoice, RowPlan, SampleOpts};
use grrm_model::{DType, GpuContext, Recorder, Tensor};
use rand::Rng;

/// Log-softmax (f64, stored as f32) of logits drawn from `spread` * U(-1, 1), quantised to
/// steps of `step` when > 0 (many exact ties).
fn log_probs(r: &mut impl Rng, v: usize, spread: f64, step: f64) -> Vec<f32> {
    let z: Vec<f64> = (0..v)
        .map(|_| {
            let a = r.random_range(-1.0..1.0) * spread;
            if step > 0.0 {
                (a / step).round() * step
            } else {
                a
            }
        })
        .collect();
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + z.iter().map(|a| (a - m).exp()).sum::<f64>().ln();
    z.iter().map(|a| (a - lse) as f32).collect()
}

fn eps(n: usize) -> f64 {
    (n.div_ceil(256) as f64 + 24.0) * 2f64.powi(-23)
}

/// Every token the rule may yield for `row` when each cumulative weight may be off by
/// eps(n) * W: the top-p cut may move across near-boundary prefixes and the inverse-CDF goal by
/// eps * W(N).
fn acceptable(row: &[f32], ids: &[u32], o: SampleOpts, u: f64) -> Vec<u32> {
    if ids.is_empty() {
        return vec![0];
    }
    let x = |j: usize| row[ids[j] as usize];
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by(|a, b| x(*b).total_cmp(&x(*a)).then(a.cmp(b)));
    if o.greedy || ids.len() == 1 || o.top_p <= 0.0 {
        return vec![ids[order[0]]];
    }
    let k = if o.top_k > 0 {
        o.top_k.min(ids.len())
    } else {
        ids.len()
    };
    order.truncate(k);
    let xmax = x(order[0]) as f64;
    let w = |j: usize| (x(j) as f64 - xmax).exp();
    let e = eps(ids.len());
    let cuts: Vec<usize> = if o.top_p >= 1.0 {
        vec![k]
    } else {
        let wk: f64 = order.iter().map(|&j| w(j)).sum();
        let target = o.top_p as f64 * wk;
        let mut cum = vec![0.0];
        for &j in &order {
            cum.push(cum.last().unwrap() + w(j));
        }
        (1..=k)
            .filter(|&l| cum[l - 1] < target + e * wk && (cum[l] >= target - e * wk || l == k))
            .collect()
    };
    let mut ok = Vec::new();
    for l in cuts {
        let mut kept: Vec<usize> = order[..l].to_vec();
        kept.sort();
        let wn: f64 = kept.iter().map(|&j| w(j)).sum();
        let goal = u * wn;
        let mut cum = 0.0;
        for &j in &kept {
            let prev = cum;
            cum += w(j);
            if prev < goal + e * wn && cum > goal - e * wn && !ok.contains(&ids[j]) {
                ok.push(ids[j]);
            }
        }
    }
    ok
}

struct Row {
    x: Vec<f32>,
    allowed: Option<Vec<u32>>,
    skip: bool,
    u: f64,
}

/// Runs one `sample` call over `rows` (all of length v) and checks each row; returns how many
/// rows had a single acceptable token.
fn check(ctx: &GpuContext, v: usize, rows: &[Row], o: SampleOpts, what: &str) -> usize {
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.x.iter().copied()).collect();
    let logp = Tensor::from_f32(ctx, &[rows.len(), v], &flat).unwrap();
    let mut plan = RowPlan::new();
    for r in rows {
        let choice = match (&r.allowed, r.skip) {
            (_, true) => RowChoice::Skip,
            (Some(a), false) => RowChoice::Allowed(a),
            (None, false) => RowChoice::Free,
        };
        plan.push(choice, r.u);
    }
    let plan = plan.upload(ctx, v).unwrap();
    let out = Tensor::poisoned(ctx, &[rows.len(), 2], DType::U32).unwrap();
    let mut rec = Recorder::new(ctx, "test");
    sample(&mut rec, &logp, &plan, o, &out).unwrap();
    rec.submit().unwrap();
    let got = read_choices(&out).unwrap();
    let mut exact = 0;
    let mut checked = 0;
    for (i, (r, &(tok, lp))) in rows.iter().zip(&got).enumerate() {
        if r.skip {
            assert_eq!(
                (tok, lp.to_bits()),
                (u32::MAX, 0),
                "{what}: skipped row {i}"
            );
            continue;
        }
        let all: Vec<u32> = (0..v as u32).collect();
        let ids = r.allowed.as_deref().unwrap_or(&all);
        let ok = acceptable(&r.x, ids, o, r.u);
        assert!(
            ok.contains(&tok),
            "{what}: row {i}: GPU chose {tok}, acceptable {ok:?} (u {})",
            r.u
        );
        assert_eq!(
            lp.to_bits(),
            r.x[tok as usize].to_bits(),
            "{what}: row {i}: log-prob of {tok}"
        );
        // The host rule (`choose_with`) must be inside the same set.
        let params = SamplingParams {
            temperature: if o.greedy { 0.0 } else { 1.0 },
            top_k: o.top_k,
            top_p: o.top_p,
            ..Default::default()
        };
        let host = choose_with(&r.x, r.allowed.as_deref(), &params, r.u);
        assert!(
            ok.contains(&host),
            "{what}: row {i}: host rule chose {host}, acceptable {ok:?}"
        );
        if ok.len() == 1 {
            assert_eq!(tok, host, "{what}: row {i}");
            exact += 1;
        }
        checked += 1;
    }
    eprintln!("{what}: {exact} of {checked} rows unambiguous and equal");
    exact
}

fn opts_grid() -> Vec<SampleOpts> {
    let o = |greedy, top_k, top_p| SampleOpts {
        greedy,
        top_k,
        top_p,
    };
    vec![
        o(true, 0, 1.0),
        o(false, 0, 1.0),
        o(false, 1, 1.0),
        o(false, 5, 1.0),
        o(false, 0, 0.5),
        o(false, 0, 0.9),
        o(false, 5, 0.77),
        o(false, 0, 0.0),
        o(false, 40, 0.95),
    ]
}

#[test]
fn free_rows_odd_sizes_every_option() {
    let ctx = ctx();
    let mut r = rng(1);
    for v in [1usize, 7, 33, 129, 1000] {
        for o in opts_grid() {
            // Smooth rows, rows quantised to 13 levels (ties at every cut) and to 3 levels
            // (hundreds of ties at the top: lowest-index tie-breaks in every phase).
            let rows: Vec<Row> = (0..6)
                .map(|i| Row {
                    x: log_probs(&mut r, v, 6.0, [0.0, 1.0, 4.0][i % 3]),
                    allowed: None,
                    skip: false,
                    u: r.random(),
                })
                .collect();
            let what = format!("V {v} opts {o:?}");
            let exact = check(&ctx, v, &rows, o, &what);
            assert!(exact >= 4, "{what}: only {exact} of 6 rows unambiguous");
        }
    }
}

#[test]
fn allowed_lists_forced_empty_and_skipped_rows_in_one_call() {
    let ctx = ctx();
    let mut r = rng(2);
    let v = 301;
    for o in opts_grid() {
        let mut rows = Vec::new();
        for len in [0usize, 1, 3, 50, 301] {
            let mut ids: Vec<u32> = (0..v as u32).filter(|_| r.random_bool(0.5)).collect();
            ids.truncate(len);
            if len == 301 {
                ids = (0..v as u32).collect();
            }
            rows.push(Row {
                x: log_probs(&mut r, v, 5.0, 0.0),
                allowed: Some(ids),
                skip: false,
                u: r.random(),
            });
        }
        rows.push(Row {
            x: log_probs(&mut r, v, 5.0, 0.0),
            allowed: None,
            skip: true,
            u: 0.5,
        });
        rows.push(Row {
            x: log_probs(&mut r, v, 5.0, 0.5),
            allowed: None,
            skip: false,
            u: r.random(),
        });
        let what = format!("allowed lists, opts {o:?}");
        let exact = check(&ctx, v, &rows, o, &what);
        assert!(exact >= 5, "{what}: only {exact} of 6 rows unambiguous");
    }
}

#[test]
fn one_row_of_150001_and_row_windows() {
    let ctx = ctx();
    let mut r = rng(3);
    let v = 150_001;
    // A tail of logits in [-5, 5] and a head of 24 tokens in [12, 20] holding all but ~0.5% of
    // the mass, so few goals land within eps of a boundary (a flat row of 150k tokens would
    // put one within eps(150001) = 7e-5 of almost every goal).
    let mut z: Vec<f32> = log_probs(&mut r, v, 5.0, 0.0);
    for _ in 0..24 {
        let t = r.random_range(0..v);
        z[t] = r.random_range(12.0f32..20.0);
    }
    let m = z.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = m + z.iter().map(|&a| (a as f64 - m).exp()).sum::<f64>().ln();
    let x: Vec<f32> = z.iter().map(|&a| (a as f64 - lse) as f32).collect();
    let mut exact = 0;
    let mut total = 0;
    for o in [
        SampleOpts {
            greedy: true,
            top_k: 0,
            top_p: 1.0,
        },
        SampleOpts {
            greedy: false,
            top_k: 0,
            top_p: 1.0,
        },
        SampleOpts {
            greedy: false,
            top_k: 0,
            top_p: 0.9,
        },
        SampleOpts {
            greedy: false,
            top_k: 1000,
            top_p: 0.95,
        },
    ] {
        let rows: Vec<Row> = (0..2)
            .map(|_| Row {
                x: x.clone(),
                allowed: None,
                skip: false,
                u: r.random(),
            })
            .collect();
        exact += check(&ctx, v, &rows, o, &format!("V {v} opts {o:?}"));
        total += rows.len();
    }
    assert!(
        exact + 1 >= total,
        "only {exact} of {total} rows unambiguous"
    );

    // Rows split over several bindings (windows of whole rows at unaligned starts).
    let small = ctx.with_binding_limit(4 << 10);
    let v = 333;
    let rows: Vec<Row> = (0..9)
        .map(|_| Row {
            x: log_probs(&mut r, v, 4.0, 0.0),
            allowed: None,
            skip: false,
            u: r.random(),
        })
        .collect();
    let o = SampleOpts {
        greedy: false,
        top_k: 0,
        top_p: 0.9,
    };
    assert!(check(&small, v, &rows, o, "windows") >= 8);
}

/// Stratified uniforms over one row: each token's share of the choices is its probability
/// (within one stratum per token), so the rule samples the intended distribution.
#[test]
fn stratified_uniforms_reproduce_the_distribution() {
    let ctx = ctx();
    let mut r = rng(4);
    let v = 9;
    let x = log_probs(&mut r, v, 2.0, 0.0);
    let draws = 900;
    let rows: Vec<Row> = (0..draws)
        .map(|i| Row {
            x: x.clone(),
            allowed: None,
            skip: false,
            u: (i as f64 + 0.5) / draws as f64,
        })
        .collect();
    let o = SampleOpts {
        greedy: false,
        top_k: 0,
        top_p: 1.0,
    };
    check(&ctx, v, &rows, o, "stratified");
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.x.iter().copied()).collect();
    let logp = Tensor::from_f32(&ctx, &[draws, v], &flat).unwrap();
    let mut plan = RowPlan::new();
    for row in &rows {
        plan.push(RowChoice::Free, row.u);
    }
    let plan = plan.upload(&ctx, v).unwrap();
    let out = Tensor::poisoned(&ctx, &[draws, 2], DType::U32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    sample(&mut rec, &logp, &plan, o, &out).unwrap();
    rec.submit().unwrap();
    let mut counts = vec![0usize; v];
    for (t, _) in read_choices(&out).unwrap() {
        counts[t as usize] += 1;
    }
    for (t, &c) in counts.iter().enumerate() {
        let want = (x[t] as f64).exp() * draws as f64;
        assert!(
            (c as f64 - want).abs() <= 1.0,
            "token {t}: {c} of {draws}, want {want:.1}"
        );
    }
}

#[test]
fn shape_errors_name_the_op_and_shapes() {
    let ctx = ctx();
    let logp = Tensor::zeros(&ctx, &[3, 10], DType::F32).unwrap();
    let mut plan = RowPlan::new();
    plan.push(RowChoice::Free, 0.5);
    plan.push(RowChoice::Free, 0.5);
    let two = plan.upload(&ctx, 10).unwrap();
    let out = Tensor::zeros(&ctx, &[3, 2], DType::U32).unwrap();
    let o = SampleOpts {
        greedy: false,
        top_k: 0,
        top_p: 1.0,
    };
    let mut rec = Recorder::new(&ctx, "test");
    let e = sample(&mut rec, &logp, &two, o, &out)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sample") && e.contains("[3, 10]") && e.contains("2 rows"),
        "{e}"
    );
    plan.push(RowChoice::Free, 0.5);
    let three = plan.upload(&ctx, 10).unwrap();
    let bad_out = Tensor::zeros(&ctx, &[3, 1], DType::U32).unwrap();
    let e = sample(&mut rec, &logp, &three, o, &bad_out)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sample") && e.contains("[3, 1]"), "{e}");
    let mut bad = RowPlan::new();
    bad.push(RowChoice::Allowed(&[4, 2]), 0.5);
    let e = bad.upload(&ctx, 10).unwrap_err().to_string();
    assert!(e.contains("sample") && e.contains("ascending"), "{e}");
    let mut oob = RowPlan::new();
    oob.push(RowChoice::Allowed(&[2, 10]), 0.5);
    assert!(oob.upload(&ctx, 10).is_err());
}
