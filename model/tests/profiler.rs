//! The per-kernel GPU profiler: every dispatch of a submission is counted under its kernel and
//! grid, times are positive, results are the same as without profiling, and a submission of more
//! dispatches than one query set holds (2,048) is counted whole.

mod common;

use common::*;
use grrm_model::gpu::AdapterSelector;
use grrm_model::kernels::elementwise::{add, scale};
use grrm_model::{DType, GpuContext, Recorder, Tensor};

fn profiled() -> GpuContext {
    let ctx = GpuContext::open_with(&AdapterSelector::from_arg_or_env(None), true).unwrap();
    assert!(
        ctx.profiler().is_some(),
        "adapter {} has no timestamp queries",
        ctx.info().name
    );
    ctx
}

#[test]
fn counts_every_dispatch_by_kernel_and_grid() {
    let ctx = profiled();
    let p = ctx.profiler().unwrap();
    let mut r = rng(7);
    let n = 3_001;
    let a = randn(&mut r, n);
    let b = randn(&mut r, n);
    let ta = Tensor::from_f32(&ctx, &[n], &a).unwrap();
    let tb = Tensor::from_f32(&ctx, &[n], &b).unwrap();
    let out = Tensor::poisoned(&ctx, &[n], DType::F32).unwrap();
    let small = Tensor::from_f32(&ctx, &[5], &a[..5]).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    add(&mut rec, &ta, &tb, &out).unwrap();
    // Two grids of one kernel: 5 and 3,001 elements.
    scale(&mut rec, 2.0, &out).unwrap();
    scale(&mut rec, 2.0, &small).unwrap();
    scale(&mut rec, 0.5, &small).unwrap();
    rec.submit().unwrap();

    let got = out.to_f32_vec().unwrap();
    for i in 0..n {
        assert_eq!(got[i], (a[i] + b[i]) * 2.0, "element {i}");
    }
    assert_eq!(small.to_f32_vec().unwrap(), a[..5].to_vec());

    let kernels = p.by_kernel();
    let calls = |name: &str| {
        kernels
            .iter()
            .find(|k| k.0 == name)
            .unwrap_or_else(|| panic!("{name} missing from {kernels:?}"))
    };
    assert_eq!(calls("elementwise.wgsl:add").1, 1);
    assert_eq!(calls("elementwise.wgsl:scale_fill").1, 3);
    assert_eq!(kernels.len(), 2, "{kernels:?}");
    assert!(kernels.iter().all(|k| k.2 >= 0.0 && k.2.is_finite()));
    assert!(kernels.iter().map(|k| k.2).sum::<f64>() > 0.0);
    assert!(p.span_ms() > 0.0 && p.span_ms().is_finite());
    let report = p.report(10);
    // One row per (kernel, grid): add, scale over 3,001 and scale over 5.
    let site_rows = report
        .lines()
        .skip_while(|l| !l.starts_with("| kernel | grid"))
        .filter(|l| l.starts_with("| elementwise"))
        .count();
    assert_eq!(site_rows, 3, "{report}");
    p.reset();
    assert!(p.by_kernel().is_empty());
    assert_eq!(p.span_ms(), 0.0);
}

#[test]
fn counts_submissions_larger_than_one_query_set() {
    let ctx = profiled();
    let p = ctx.profiler().unwrap();
    let t = Tensor::from_f32(&ctx, &[7], &[1.0; 7]).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let dispatches = 2_100;
    for _ in 0..dispatches {
        scale(&mut rec, 1.0, &t).unwrap();
    }
    scale(&mut rec, 3.0, &t).unwrap();
    rec.submit().unwrap();
    assert_eq!(t.to_f32_vec().unwrap(), vec![3.0; 7]);
    let kernels = p.by_kernel();
    assert_eq!(kernels.len(), 1);
    assert_eq!(kernels[0].1, dispatches + 1);
}
