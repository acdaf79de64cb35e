//! matmul against an f64 CPU reference on odd shapes, every transpose combination, batching,
//! bias, accumulation, and the chunked path for operands larger than one binding; each for the
//! portable kernel and for the shared-memory tiled kernel forced on whatever adapter runs the
//! tests (lavapipe in CI), the subgroup-broadcast `Simd8` kernel where subgroups are exactly 8
//! wide (lavapipe), and the cooperative-matrix kernel where the adapter has it.
//! Tolerance: |err| <= 1e-6 + 2e-6 * sqrt(K) * sum_k |a_ik b_kj| (f32 accumulation over K terms;
//! the f16 kernel's products of f16 values are exact in f32, so the same bound holds against the
//! reference computed from the f16-rounded inputs).

mod common;

use common::*;
use grrm_model::kernels::cast_scaled::cast_scaled;
use grrm_model::kernels::matmul::{
    matmul, matmul_scaled, planned_shader, MatmulKernel, MatmulOpts, SplitK, TiledConfig,
};
use grrm_model::{DType, GpuContext, Recorder, Tensor};

#[derive(Debug)]
struct Case {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    o: MatmulOpts,
    bias: bool,
    b_batched: bool,
    /// The shader file that must run the case (checked before running it), if any.
    shader: Option<&'static str>,
    /// Dispatches the matmul must record (2 when split K adds its reduction), if checked.
    dispatches: Option<usize>,
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
    let half = matches!(
        c.o.kernel,
        MatmulKernel::Coop16 | MatmulKernel::Coop16Staged
    );
    // f16 operands: the reference sees exactly the rounded values the kernel sees.
    let round = |v: Vec<f32>| -> Vec<f32> {
        if half {
            v.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect()
        } else {
            v
        }
    };
    let a = round(randn(&mut r, c.batch * c.m * c.k));
    let nb = if c.b_batched { c.batch } else { 1 };
    let b = round(randn(&mut r, nb * c.k * c.n));
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
    let upload = |shape: &[usize], v: &[f32]| {
        if half {
            let h: Vec<half::f16> = v.iter().map(|x| half::f16::from_f32(*x)).collect();
            Tensor::from_f16(ctx, shape, &h).unwrap()
        } else {
            Tensor::from_f32(ctx, shape, v).unwrap()
        }
    };
    let ta = upload(&a_shape, &a);
    let tb = upload(&b_shape, &b);
    let tbias = Tensor::from_f32(ctx, &[c.n], &bias).unwrap();
    let tc = if c.o.accumulate {
        Tensor::from_f32(ctx, &[c.batch, c.m, c.n], &c0).unwrap()
    } else {
        Tensor::poisoned(ctx, &[c.batch, c.m, c.n], DType::F32).unwrap()
    };
    let mut rec = Recorder::new(ctx, "test");
    if let Some(want) = c.shader {
        let got = planned_shader(&rec, &ta, &tb, c.bias.then_some(&tbias), &tc, c.o).unwrap();
        assert_eq!(got, want, "kernel for {c:?}");
    }
    matmul(&mut rec, &ta, &tb, c.bias.then_some(&tbias), &tc, c.o).unwrap();
    if let Some(n) = c.dispatches {
        assert_eq!(rec.len(), n, "dispatches recorded for {c:?}");
    }
    rec.submit().unwrap();
    let got = tc.to_f32_vec().unwrap();
    let (want, scale) = reference(c, &a, &b, &bias, &c0);
    let what = format!(
        "matmul {:?} {:?} b{} m{} n{} k{} ta{} tb{} bias{} acc{}",
        c.o.kernel,
        c.o.split_k,
        c.batch,
        c.m,
        c.n,
        c.k,
        c.o.trans_a,
        c.o.trans_b,
        c.bias,
        c.o.accumulate
    );
    assert_close(&what, &got, &want, 1e-6, 1e-6, Some(&scale));
}

fn all_layouts(ctx: &GpuContext, kernel: MatmulKernel, shapes: &[(usize, usize, usize)]) {
    all_layouts_split(ctx, kernel, SplitK::Auto, None, shapes);
}

/// `all_layouts` with K split as `split` says, checking the dispatch count when given.
fn all_layouts_split(
    ctx: &GpuContext,
    kernel: MatmulKernel,
    split_k: SplitK,
    dispatches: Option<usize>,
    shapes: &[(usize, usize, usize)],
) {
    let mut seed = 1;
    for &(m, n, k) in shapes {
        for ta in [false, true] {
            for tb in [false, true] {
                let o = MatmulOpts {
                    trans_a: ta,
                    trans_b: tb,
                    alpha: 0.75,
                    accumulate: seed % 3 == 0,
                    kernel,
                    split_k,
                };
                run(
                    ctx,
                    &Case {
                        batch: 1,
                        m,
                        n,
                        k,
                        o,
                        bias: seed % 2 == 0,
                        b_batched: false,
                        shader: None,
                        dispatches,
                    },
                    seed,
                );
                seed += 1;
            }
        }
    }
}

#[test]
fn matmul_all_layouts_odd_shapes() {
    let shapes = [(1, 1, 1), (7, 13, 5), (33, 65, 17), (64, 31, 129)];
    all_layouts(&ctx(), MatmulKernel::Portable, &shapes);
}

/// The tiled kernel forced on any adapter: shapes straddling its 128x128 block and 16-deep K
/// slabs, with both the scalar (unaligned) and the 16-byte (4-aligned) operand loads.
#[test]
fn matmul_tiled_all_layouts_odd_shapes() {
    let shapes = [(1, 1, 1), (7, 13, 5), (129, 131, 37), (132, 136, 36)];
    all_layouts(&ctx(), MatmulKernel::Tiled, &shapes);
}

/// Whole 128x128 blocks and 8-deep slabs, where `Tiled` runs its unchecked interior kernel
/// (K = 36 is no whole number of slabs: the general kernel), and the general kernel forced.
#[test]
fn matmul_tiled_interior_all_layouts() {
    let ctx = ctx();
    let shapes = [(128, 256, 48), (256, 128, 8), (128, 128, 36)];
    all_layouts(&ctx, MatmulKernel::Tiled, &shapes);
    all_layouts(
        &ctx,
        MatmulKernel::TiledGeneral,
        &[(129, 131, 37), (128, 256, 48)],
    );
}

/// Whole 64x64 blocks that are not whole 128x128 ones (decode's 64 rows) run the unchecked
/// 64x64 kernel: every layout, split K (slices 64 + 64 + 32), batching; K not a multiple of 16
/// falls back to the general kernel.
#[test]
fn matmul_tiled64_all_layouts() {
    let ctx = ctx();
    let plan = |m: usize, n: usize, k: usize| {
        let a = Tensor::zeros(&ctx, &[m, k], DType::F32).unwrap();
        let b = Tensor::zeros(&ctx, &[n, k], DType::F32).unwrap();
        let c = Tensor::zeros(&ctx, &[m, n], DType::F32).unwrap();
        let rec = Recorder::new(&ctx, "test");
        let o = MatmulOpts::nt().kernel(MatmulKernel::Tiled);
        planned_shader(&rec, &a, &b, None, &c, o).unwrap()
    };
    assert_eq!(plan(64, 192, 48), "matmul_tiled64.wgsl");
    assert_eq!(plan(192, 64, 32), "matmul_tiled64.wgsl");
    assert_eq!(plan(128, 256, 48), "matmul_tiled_interior.wgsl");
    assert_eq!(plan(64, 192, 40), "matmul_tiled.wgsl");
    all_layouts(&ctx, MatmulKernel::Tiled, &[(64, 192, 48), (192, 64, 32)]);
    all_layouts_split(
        &ctx,
        MatmulKernel::Tiled,
        SplitK::Slices(3),
        Some(2),
        &[(64, 128, 160)],
    );
    batched_and_broadcast(&ctx, MatmulKernel::Tiled, (64, 64, 32));
}

/// The benchmark variants of the tiled kernel compute the same function.
#[test]
fn matmul_tiled_variants() {
    let ctx = ctx();
    let v = |interior, checked, bk| {
        MatmulKernel::TiledVariant(TiledConfig {
            interior,
            checked,
            bk,
        })
    };
    all_layouts(&ctx, v(false, false, 16), &[(129, 131, 37), (132, 136, 36)]);
    all_layouts(&ctx, v(true, true, 16), &[(128, 256, 48)]);
    all_layouts(&ctx, v(true, false, 16), &[(128, 256, 48), (128, 128, 40)]);
}

/// Split K forced on the tiled kernels: every layout, bias, accumulation and alpha applied once
/// by the reduction; K of 200 in slices of 96, 96 and 8 (the interior kernel at 128 x 256, the
/// general one at odd sizes), K of 100 in 64 + 36, and K too shallow to split (one dispatch).
#[test]
fn matmul_split_k_tiled_all_layouts() {
    let ctx = ctx();
    let split = SplitK::Slices(3);
    all_layouts_split(
        &ctx,
        MatmulKernel::Tiled,
        split,
        Some(2),
        &[(128, 256, 200)],
    );
    all_layouts_split(
        &ctx,
        MatmulKernel::Tiled,
        split,
        Some(2),
        &[(129, 131, 200), (7, 13, 100)],
    );
    all_layouts_split(
        &ctx,
        MatmulKernel::TiledGeneral,
        split,
        Some(2),
        &[(128, 256, 200)],
    );
    all_layouts_split(&ctx, MatmulKernel::Tiled, split, Some(1), &[(33, 65, 37)]);
    all_layouts_split(
        &ctx,
        MatmulKernel::Tiled,
        SplitK::Off,
        Some(1),
        &[(7, 13, 200)],
    );
}

/// Split K with a batch (partial sums of each batch entry kept apart) and broadcast or batched
/// B, and through the chunked path for operands larger than a binding (each chunk split).
#[test]
fn matmul_split_k_batched_and_chunked() {
    let ctx = ctx();
    for (i, b_batched) in [true, false].into_iter().enumerate() {
        for (m, n, k) in [(9, 35, 130), (128, 128, 256)] {
            let o = MatmulOpts {
                trans_b: true,
                accumulate: i == 1,
                kernel: MatmulKernel::Tiled,
                split_k: SplitK::Slices(4),
                ..Default::default()
            };
            let case = Case {
                batch: 3,
                m,
                n,
                k,
                o,
                bias: true,
                b_batched,
                shader: None,
                dispatches: Some(2),
            };
            run(&ctx, &case, 300 + i as u64);
        }
    }
    chunks_split(MatmulKernel::Tiled, SplitK::Slices(2), (150, 300, 130));
}

/// The portable kernels do not split: asking them to is an error, not a silent no-op.
#[test]
fn matmul_split_k_needs_a_splitting_kernel() {
    let ctx = ctx();
    let a = Tensor::zeros(&ctx, &[4, 256], DType::F32).unwrap();
    let b = Tensor::zeros(&ctx, &[256, 8], DType::F32).unwrap();
    let c = Tensor::zeros(&ctx, &[4, 8], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let o = MatmulOpts::default()
        .kernel(MatmulKernel::Portable)
        .split_k(SplitK::Slices(2));
    let e = matmul(&mut rec, &a, &b, None, &c, o)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("split K needs the tiled or cooperative kernels"),
        "{e}"
    );
    assert!(rec.is_empty());
}

const SIMD8: &str = "matmul_simd8.wgsl";
const PORTABLE: &str = "matmul.wgsl";

fn simd8_available(ctx: &GpuContext) -> bool {
    let ok = ctx.caps().fixed_subgroup_size() == Some(8);
    if !ok {
        eprintln!("skipped: {} has no subgroups of exactly 8", ctx.info().name);
    }
    ok
}

/// Runs `Simd8` on (m, n, k) in one layout, with bias and accumulation by the seed, checking
/// that the planned kernel is `shader` (the simd8 kernel where its vec4 loads are aligned, else
/// the portable fallback).
#[allow(clippy::too_many_arguments)]
fn simd8_case(
    ctx: &GpuContext,
    (m, n, k): (usize, usize, usize),
    trans_a: bool,
    trans_b: bool,
    batch: usize,
    b_batched: bool,
    seed: u64,
    shader: &'static str,
) {
    let o = MatmulOpts {
        trans_a,
        trans_b,
        alpha: 0.75,
        accumulate: seed.is_multiple_of(3),
        kernel: MatmulKernel::Simd8,
        split_k: SplitK::Auto,
    };
    let case = Case {
        batch,
        m,
        n,
        k,
        o,
        bias: seed.is_multiple_of(2),
        b_batched,
        shader: Some(shader),
        dispatches: None,
    };
    run(ctx, &case, seed);
}

/// `Simd8` in every layout on odd sizes (1, 7, 33, 129 along each axis the layout leaves free;
/// the axes it reads as vec4 runs are multiples of 4): edges of its 32x32 blocks in M and N, a
/// partial last k slab in TN, and the portable fallback for unaligned shapes.
#[test]
fn matmul_simd8_all_layouts_odd_shapes() {
    let ctx = ctx();
    if !simd8_available(&ctx) {
        return;
    }
    // (layout, shapes): NT needs K % 4, NN K and N, TN M and N, TT M and K.
    type Shapes = [(usize, usize, usize); 4];
    let layouts: [((bool, bool), Shapes); 4] = [
        (
            (false, true),
            [(1, 1, 4), (7, 13, 8), (33, 65, 20), (129, 31, 132)],
        ),
        (
            (false, false),
            [(1, 4, 4), (7, 12, 8), (33, 68, 20), (129, 36, 132)],
        ),
        (
            (true, false),
            [(4, 4, 1), (8, 12, 7), (36, 68, 33), (132, 36, 129)],
        ),
        (
            (true, true),
            [(4, 1, 4), (8, 13, 8), (36, 65, 20), (132, 31, 132)],
        ),
    ];
    let mut seed = 300;
    for ((ta, tb), shapes) in layouts {
        for shape in shapes {
            simd8_case(&ctx, shape, ta, tb, 1, false, seed, SIMD8);
            seed += 1;
        }
    }
    // Unaligned runs: K odd for NT/NN/TT, M odd for TN; the portable kernel runs them.
    for (ta, tb) in [(false, true), (false, false), (true, false), (true, true)] {
        simd8_case(&ctx, (33, 65, 17), ta, tb, 1, false, seed, PORTABLE);
        seed += 1;
    }
}

/// `Simd8` with a batch of A and C against a batched and a broadcast B, in NT and TN.
#[test]
fn matmul_simd8_batched_and_broadcast() {
    let ctx = ctx();
    if !simd8_available(&ctx) {
        return;
    }
    let mut seed = 400;
    for b_batched in [true, false] {
        simd8_case(&ctx, (37, 35, 24), false, true, 3, b_batched, seed, SIMD8);
        simd8_case(
            &ctx,
            (36, 20, 13),
            true,
            false,
            2,
            b_batched,
            seed + 1,
            SIMD8,
        );
        seed += 2;
    }
}

/// `Simd8` over chunked operands: row windows of A and C, column windows of C and the bias
/// (B stored [N, K] chunked over N) and K windows (B stored [K, N] chunked over K, A read from
/// a K offset, partial products accumulated into C).
#[test]
fn matmul_simd8_chunks() {
    if !simd8_available(&ctx()) {
        return;
    }
    chunks(MatmulKernel::Simd8, (150, 300, 132));
}

/// `Auto` takes `Simd8` on an adapter with subgroups of 8 for 8 rows or more, and the portable
/// kernel below that or where the operands are not 4-aligned.
#[test]
fn matmul_auto_picks_simd8_on_cpu() {
    let ctx = ctx();
    let cpu = ctx.info().device_type == wgpu::DeviceType::Cpu;
    if !cpu || !simd8_available(&ctx) {
        return;
    }
    let plan = |m: usize, k: usize| {
        let a = Tensor::zeros(&ctx, &[m, k], DType::F32).unwrap();
        let b = Tensor::zeros(&ctx, &[64, k], DType::F32).unwrap();
        let c = Tensor::zeros(&ctx, &[m, 64], DType::F32).unwrap();
        let rec = Recorder::new(&ctx, "test");
        planned_shader(&rec, &a, &b, None, &c, MatmulOpts::nt()).unwrap()
    };
    assert_eq!(plan(8, 32), SIMD8);
    assert_eq!(plan(7, 32), PORTABLE);
    assert_eq!(plan(64, 30), PORTABLE);
}

/// The cooperative-matrix kernel where the adapter has it (f16 operands, f32 accumulation).
#[test]
fn matmul_coop16_all_layouts_odd_shapes() {
    let ctx = ctx();
    if !coop_available(&ctx) {
        return;
    }
    let shapes = [(1, 1, 1), (7, 13, 5), (129, 131, 37), (256, 192, 96)];
    all_layouts(&ctx, MatmulKernel::Coop16, &shapes);
    batched_and_broadcast(&ctx, MatmulKernel::Coop16, (9, 35, 23));
    all_layouts(&ctx, MatmulKernel::Coop16Staged, &[(256, 192, 96)]);
    // Split K through the staged kernel (K = 200: 96 + 96 + 8, a partial slab at the end).
    all_layouts_split(
        &ctx,
        MatmulKernel::Coop16,
        SplitK::Slices(3),
        Some(2),
        &[(129, 131, 200)],
    );
}

/// The direct cooperative-matrix kernel (whole 16x16 tiles): blocks of 64x64 cut by M and N
/// (clamped tiles), K of one and several tiles, every layout, batching; the staged kernel for
/// a shape just off the tile grid.
#[test]
fn matmul_coop16_direct_all_layouts() {
    let ctx = ctx();
    if !coop_available(&ctx) {
        return;
    }
    let shapes = [(16, 16, 16), (80, 48, 32), (144, 208, 64), (64, 64, 272)];
    for &(m, n, k) in &shapes {
        assert_eq!(
            plan_coop(&ctx, m, n, k),
            "matmul_coop_direct.wgsl",
            "{m}x{n}x{k}"
        );
    }
    assert_eq!(plan_coop(&ctx, 80, 48, 40), "matmul_coop.wgsl");
    all_layouts(&ctx, MatmulKernel::Coop16, &shapes);
    batched_and_broadcast(&ctx, MatmulKernel::Coop16, (48, 80, 32));
    // Split K through the direct kernel (K = 272: 96 + 96 + 80).
    all_layouts_split(
        &ctx,
        MatmulKernel::Coop16,
        SplitK::Slices(3),
        Some(2),
        &[(80, 48, 272)],
    );
}

/// The 16-byte-load staged cooperative kernel (whole 128x128 blocks, K a multiple of 32):
/// every layout with alpha, bias and accumulation through the scratch epilogue, the plain
/// epilogue (alpha 1, nothing added: fragments stored straight to C), batching, and split K.
#[test]
fn matmul_coop16_tiled_all_layouts() {
    let ctx = ctx();
    if !coop_available(&ctx) {
        return;
    }
    let tiled = "matmul_coop_tiled.wgsl";
    for (m, n, k) in [(128, 256, 64), (256, 128, 96), (128, 128, 256)] {
        assert_eq!(plan_coop(&ctx, m, n, k), tiled, "{m}x{n}x{k}");
    }
    assert_eq!(plan_coop(&ctx, 128, 128, 48), "matmul_coop_direct.wgsl");
    assert_eq!(plan_coop(&ctx, 144, 128, 64), "matmul_coop_direct.wgsl");
    all_layouts(
        &ctx,
        MatmulKernel::Coop16,
        &[(128, 256, 64), (256, 128, 96)],
    );
    let mut seed = 500;
    for ta in [false, true] {
        for tb in [false, true] {
            // Unsplit (a GPU would split this small grid, and its slices store raw sums), so
            // the kernel's own epilogue runs: plain, accumulate, alpha with a bias (the
            // scratch path), and alpha with accumulate (on the accumulators).
            let o = MatmulOpts {
                trans_a: ta,
                trans_b: tb,
                alpha: if ta { 0.75 } else { 1.0 },
                accumulate: tb,
                kernel: MatmulKernel::Coop16,
                split_k: SplitK::Off,
            };
            let case = Case {
                batch: 1,
                m: 256,
                n: 128,
                k: 160,
                o,
                bias: ta && !tb,
                b_batched: false,
                shader: Some(tiled),
                dispatches: Some(1),
            };
            run(&ctx, &case, seed);
            seed += 1;
        }
    }
    batched_and_broadcast(&ctx, MatmulKernel::Coop16, (128, 128, 64));
    all_layouts_split(
        &ctx,
        MatmulKernel::Coop16,
        SplitK::Slices(3),
        Some(2),
        &[(128, 128, 256)],
    );
}

fn plan_coop(ctx: &GpuContext, m: usize, n: usize, k: usize) -> &'static str {
    let a = Tensor::zeros(ctx, &[m, k], DType::F16).unwrap();
    let b = Tensor::zeros(ctx, &[n, k], DType::F16).unwrap();
    let c = Tensor::zeros(ctx, &[m, n], DType::F32).unwrap();
    let rec = Recorder::new(ctx, "test");
    planned_shader(&rec, &a, &b, None, &c, MatmulOpts::nt()).unwrap()
}

/// Operands cast with per-tensor scales (`cast_scaled`) through both cooperative kernels: the
/// epilogue undoes the scales. Inputs of very different magnitudes (1e-7 and 1e3) that plain
/// f16 would flush or round coarsely; reference: f64 over the f16-rounded scaled values.
/// Tolerance as for the other f16 cases, relative to sum |a b|.
#[test]
fn matmul_coop16_scaled_operands() {
    let ctx = ctx();
    if !coop_available(&ctx) {
        return;
    }
    for (m, n, k, kernel) in [
        (96, 80, 48, MatmulKernel::Coop16),
        (37, 29, 23, MatmulKernel::Coop16),
        (96, 80, 48, MatmulKernel::Coop16Staged),
        (128, 256, 64, MatmulKernel::Coop16), // the 16-byte-load staged kernel
    ] {
        let mut r = rng(91);
        let a: Vec<f32> = randn(&mut r, m * k).iter().map(|x| x * 1e-7).collect();
        let b: Vec<f32> = randn(&mut r, n * k).iter().map(|x| x * 1e3).collect();
        let ta = Tensor::from_f32(&ctx, &[m, k], &a).unwrap();
        let tb = Tensor::from_f32(&ctx, &[n, k], &b).unwrap();
        let (ha, hb) = (
            Tensor::poisoned(&ctx, &[m, k], DType::F16).unwrap(),
            Tensor::poisoned(&ctx, &[n, k], DType::F16).unwrap(),
        );
        let (sa, sb) = (
            Tensor::poisoned(&ctx, &[2], DType::F32).unwrap(),
            Tensor::poisoned(&ctx, &[2], DType::F32).unwrap(),
        );
        let c = Tensor::poisoned(&ctx, &[m, n], DType::F32).unwrap();
        let mut rec = Recorder::new(&ctx, "test");
        cast_scaled(&mut rec, &ta, &sa, &ha).unwrap();
        cast_scaled(&mut rec, &tb, &sb, &hb).unwrap();
        // Unsplit, so the kernels' own epilogues undo the scales.
        let o = MatmulOpts {
            split_k: SplitK::Off,
            ..MatmulOpts::nt().kernel(kernel)
        };
        matmul_scaled(&mut rec, &ha, &hb, Some([&sa, &sb]), None, &c, o).unwrap();
        rec.submit().unwrap();
        let got = c.to_f32_vec().unwrap();
        let deq = |x: &[f32], h: &Tensor, s: &Tensor| -> Vec<f64> {
            let inv = s.to_f32_vec().unwrap()[1] as f64;
            let hv = h.to_f16_vec().unwrap();
            assert_eq!(hv.len(), x.len());
            hv.iter().map(|v| v.to_f32() as f64 * inv).collect()
        };
        let (da, db) = (deq(&a, &ha, &sa), deq(&b, &hb, &sb));
        let mut want = vec![0f64; m * n];
        let mut scale = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                for kk in 0..k {
                    let p = da[i * k + kk] * db[j * k + kk];
                    want[i * n + j] += p;
                    scale[i * n + j] += p.abs();
                }
                scale[i * n + j] *= 2.0 * (k as f64).sqrt();
            }
        }
        // And the scaled operands are within f16 rounding of the f32 inputs.
        for (x, d) in a.iter().zip(&da) {
            assert!((*x as f64 - d).abs() <= 1e-3 * x.abs() as f64 + 1e-30);
        }
        assert_close(
            &format!("scaled {kernel:?} {m}x{n}x{k}"),
            &got,
            &want,
            0.0,
            1e-6,
            Some(&scale),
        );
    }
}

fn coop_available(ctx: &GpuContext) -> bool {
    let c = ctx.caps();
    let ok = c.has_coop_16x16_f16_f32() && c.shader_f16 && c.fixed_subgroup_size() == Some(32);
    if !ok {
        eprintln!(
            "skipped: {} lacks 16x16x16 f16->f32 cooperative matrices with subgroups of 32",
            ctx.info().name
        );
    }
    ok
}

/// The f16 kernel against the portable f32 kernel on the same (f16-representable) values.
#[test]
fn matmul_coop16_matches_portable() {
    let ctx = ctx();
    if !coop_available(&ctx) {
        return;
    }
    let (m, n, k) = (300, 260, 200);
    let mut r = rng(77);
    let a: Vec<half::f16> = randn(&mut r, m * k)
        .iter()
        .map(|x| half::f16::from_f32(*x))
        .collect();
    let b: Vec<half::f16> = randn(&mut r, n * k)
        .iter()
        .map(|x| half::f16::from_f32(*x))
        .collect();
    let wide = |v: &[half::f16]| v.iter().map(|x| x.to_f32()).collect::<Vec<_>>();
    let ah = Tensor::from_f16(&ctx, &[m, k], &a).unwrap();
    let bh = Tensor::from_f16(&ctx, &[n, k], &b).unwrap();
    let af = Tensor::from_f32(&ctx, &[m, k], &wide(&a)).unwrap();
    let bf = Tensor::from_f32(&ctx, &[n, k], &wide(&b)).unwrap();
    let c_coop = Tensor::poisoned(&ctx, &[m, n], DType::F32).unwrap();
    let c_port = Tensor::poisoned(&ctx, &[m, n], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    let o = MatmulOpts::nt();
    matmul(
        &mut rec,
        &ah,
        &bh,
        None,
        &c_coop,
        o.kernel(MatmulKernel::Coop16),
    )
    .unwrap();
    matmul(
        &mut rec,
        &af,
        &bf,
        None,
        &c_port,
        o.kernel(MatmulKernel::Portable),
    )
    .unwrap();
    rec.submit().unwrap();
    let got = c_coop.to_f32_vec().unwrap();
    let want: Vec<f64> = c_port
        .to_f32_vec()
        .unwrap()
        .iter()
        .map(|&x| x as f64)
        .collect();
    // Both sum the same exact products in f32, in different orders.
    let scale = vec![2e-6 * (k as f64).sqrt() * k as f64; m * n];
    assert_close("coop16 vs portable", &got, &want, 1e-5, 1.0, Some(&scale));
}

#[test]
fn matmul_batched_and_broadcast() {
    batched_and_broadcast(&ctx(), MatmulKernel::Portable, (9, 35, 23));
    batched_and_broadcast(&ctx(), MatmulKernel::Tiled, (9, 35, 23));
    // Whole blocks: the interior kernel.
    batched_and_broadcast(&ctx(), MatmulKernel::Tiled, (128, 128, 32));
}

fn batched_and_broadcast(ctx: &GpuContext, kernel: MatmulKernel, (m, n, k): (usize, usize, usize)) {
    for (i, b_batched) in [true, false].into_iter().enumerate() {
        let o = MatmulOpts {
            trans_b: true,
            accumulate: i == 1,
            kernel,
            ..Default::default()
        };
        run(
            ctx,
            &Case {
                batch: 3,
                m,
                n,
                k,
                o,
                bias: true,
                b_batched,
                shader: None,
                dispatches: None,
            },
            100 + i as u64,
        );
    }
}

#[test]
fn matmul_chunks_operands_larger_than_a_binding() {
    chunks(MatmulKernel::Portable, (150, 300, 130));
    chunks(MatmulKernel::Tiled, (150, 300, 130));
    // 128-row chunks of A and C and 128-deep chunks of B: the interior kernel per chunk.
    chunks(MatmulKernel::Tiled, (256, 256, 256));
}

fn chunks(kernel: MatmulKernel, shape: (usize, usize, usize)) {
    chunks_split(kernel, SplitK::Auto, shape);
}

fn chunks_split(kernel: MatmulKernel, split_k: SplitK, (m, n, k): (usize, usize, usize)) {
    // 128 KiB bindings force chunking of B over N (stored [N, K]) and over K (stored [K, N]),
    // and of A and C over M.
    let small = ctx().with_binding_limit(128 << 10);
    for (seed, tb) in [(200, true), (201, false)] {
        let o = MatmulOpts {
            trans_b: tb,
            accumulate: !tb,
            kernel,
            split_k,
            ..Default::default()
        };
        run(
            &small,
            &Case {
                batch: 1,
                m,
                n,
                k,
                o,
                bias: true,
                b_batched: false,
                shader: None,
                dispatches: None,
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
