//! `grrm bench kernels`: time each kernel on real shapes and put its GFLOP/s and GB/s next to
//! the card's measured ceilings (an FMA-throughput micro-kernel and a large copy).
//!
//! Timing: every sample records `reps` launches of the kernel in one submission and waits for
//! the device (wall clock around submit + wait, divided by `reps`); the row reports the median
//! of `samples` after `warmup` untimed submissions. Adding a row is one line in `cases()`.

use std::fmt::Write as _;
use std::time::Instant;

use bytemuck::{Pod, Zeroable};

use crate::gpu::{Access, DType, GpuContext, KernelEntry, Recorder, Result, ShaderSource, Tensor};
use crate::kernels::matmul::{matmul, MatmulKernel, MatmulOpts, TiledConfig};

#[derive(Clone, Debug)]
pub struct BenchOpts {
    /// Small sizes that finish in well under a minute on lavapipe.
    pub quick: bool,
    /// Timed samples per row (the median is reported).
    pub samples: usize,
    /// Untimed submissions before sampling (pipeline compilation, clocks ramping up).
    pub warmup: usize,
    /// Only rows whose kernel name contains this.
    pub filter: Option<String>,
}

impl Default for BenchOpts {
    fn default() -> Self {
        BenchOpts {
            quick: false,
            samples: 5,
            warmup: 1,
            filter: None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct BenchRow {
    pub kernel: String,
    pub shape: String,
    /// Median time of one launch.
    pub seconds: f64,
    pub flops: f64,
    /// Fewest bytes the kernel must move (each input read once, each output written once).
    pub bytes: f64,
    /// Fraction of the measured FMA peak (f32 CUDA-core rate; tensor-core rows exceed 1).
    pub peak_flops_frac: Option<f64>,
    /// Fraction of the measured copy bandwidth.
    pub peak_bw_frac: Option<f64>,
    /// Rows that did not run on this adapter say why (e.g. no cooperative matrix).
    pub skipped: Option<String>,
}

impl BenchRow {
    pub fn gflops(&self) -> f64 {
        self.flops / self.seconds / 1e9
    }
    pub fn gbs(&self) -> f64 {
        self.bytes / self.seconds / 1e9
    }
}

/// Records one launch of the benchmarked kernel (its tensors captured by the closure).
pub(crate) type Launch = Box<dyn FnMut(&mut Recorder) -> Result<()>>;
/// Allocates a case's tensors on the device and returns its launch.
type Setup = Box<dyn FnOnce(&GpuContext) -> Result<Launch>>;

/// One row of the table before it has run.
pub struct Case {
    pub kernel: String,
    pub shape: String,
    pub flops: f64,
    pub bytes: f64,
    /// Launches per submission.
    pub reps: usize,
    /// Why the case cannot run on this adapter, if it cannot.
    pub unavailable: Option<String>,
    setup: Setup,
}

impl Case {
    pub fn new(
        kernel: impl Into<String>,
        shape: impl Into<String>,
        flops: f64,
        bytes: f64,
        reps: usize,
        setup: impl FnOnce(&GpuContext) -> Result<Launch> + 'static,
    ) -> Self {
        Case {
            kernel: kernel.into(),
            shape: shape.into(),
            flops,
            bytes,
            reps,
            unavailable: None,
            setup: Box::new(setup),
        }
    }
}

/// Deterministic non-zero data (timing on zeros flatters some hardware).
pub(crate) fn data(n: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

/// C[M, N] = A[M, K] @ B^T with B stored [N, K] (a Linear layer), by one kernel variant.
pub fn matmul_case(ctx: &GpuContext, kernel: MatmulKernel, m: usize, n: usize, k: usize) -> Case {
    matmul_layout_case(ctx, kernel, m, n, k, false, true)
}

/// C[M, N] = op(A) @ op(B) with A stored [K, M] when `trans_a`, B stored [N, K] when `trans_b`.
pub fn matmul_layout_case(
    ctx: &GpuContext,
    kernel: MatmulKernel,
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
) -> Case {
    let half = matches!(kernel, MatmulKernel::Coop16 | MatmulKernel::Coop16Staged);
    let es = if half { 2.0 } else { 4.0 };
    let flops = 2.0 * (m * n * k) as f64;
    let bytes = es * (m * k + n * k) as f64 + 4.0 * (m * n) as f64;
    // Aim for ~50 ms of work per submission at ~20 TFLOP/s, at least one launch.
    let reps = ((1e12 / flops).round() as usize).clamp(1, 20);
    let name = match kernel {
        MatmulKernel::Portable => "matmul portable f32".to_string(),
        MatmulKernel::Simd8 => "matmul simd8 f32".to_string(),
        MatmulKernel::Tiled => "matmul tiled f32".to_string(),
        MatmulKernel::TiledGeneral => "matmul tiled f32 general".to_string(),
        MatmulKernel::TiledVariant(v) => format!(
            "matmul tiled f32 {} {} bk{}",
            if v.interior { "interior" } else { "general" },
            if v.checked { "checked" } else { "unchecked" },
            v.bk
        ),
        MatmulKernel::Coop16 => "matmul coop f16->f32".to_string(),
        MatmulKernel::Coop16Staged => "matmul coop f16->f32 staged".to_string(),
        MatmulKernel::Auto => "matmul auto".to_string(),
    };
    let layout = format!(
        "{}{}",
        if trans_a { "T" } else { "N" },
        if trans_b { "T" } else { "N" }
    );
    let mut case = Case::new(
        name,
        format!("{m}x{n}x{k} {layout}"),
        flops,
        bytes,
        reps,
        move |ctx| {
            let upload = |shape: &[usize], seed| -> Result<Tensor> {
                let v = data(shape.iter().product(), seed);
                if half {
                    let h: Vec<half::f16> = v.iter().map(|x| half::f16::from_f32(*x)).collect();
                    Tensor::from_f16(ctx, shape, &h)
                } else {
                    Tensor::from_f32(ctx, shape, &v)
                }
            };
            let a = upload(&if trans_a { [k, m] } else { [m, k] }, 1)?;
            let b = upload(&if trans_b { [n, k] } else { [k, n] }, 2)?;
            let c = Tensor::zeros(ctx, &[m, n], DType::F32)?;
            let o = MatmulOpts {
                trans_a,
                trans_b,
                ..Default::default()
            }
            .kernel(kernel);
            Ok(Box::new(move |rec: &mut Recorder| {
                matmul(rec, &a, &b, None, &c, o)
            }))
        },
    );
    if half {
        let caps = ctx.caps();
        if !(caps.has_coop_16x16_f16_f32() && caps.fixed_subgroup_size() == Some(32)) {
            case.unavailable = Some("no 16x16x16 f16->f32 cooperative matrix".into());
        }
    }
    case
}

/// The table's rows. Add a kernel by pushing one more `Case` here.
pub fn cases(ctx: &GpuContext, quick: bool) -> Vec<Case> {
    use MatmulKernel::*;
    let mut v = Vec::new();
    if quick {
        for kern in [Portable, Tiled, Coop16] {
            v.push(matmul_case(ctx, kern, 256, 256, 256));
        }
        v.push(matmul_case(ctx, Portable, 128, 1024, 256));
        v.push(matmul_case(ctx, Tiled, 128, 1024, 256));
        v.extend(demo_matmul_cases(ctx));
        v.extend(crate::bench_ops::op_cases(true));
        v.extend(crate::bench_decode::decode_cases(ctx, true));
        return v;
    }
    for kern in [Portable, Tiled, Coop16, Coop16Staged] {
        v.push(matmul_case(ctx, kern, 4096, 4096, 4096));
    }
    // What each change to the tiled kernel is worth: the general kernel with and without wgpu's
    // runtime checks, the interior kernel with them, and with 16-deep slabs.
    let variant = |interior, checked, bk| {
        MatmulKernel::TiledVariant(TiledConfig {
            interior,
            checked,
            bk,
        })
    };
    for kern in [
        TiledGeneral,
        variant(false, false, 16),
        variant(true, true, 16),
        variant(true, false, 16),
    ] {
        v.push(matmul_case(ctx, kern, 4096, 4096, 4096));
    }
    // The other layouts (NN: activations @ weight stored [K, N]; TN: weight gradients).
    for kern in [Tiled, Coop16] {
        v.push(matmul_layout_case(
            ctx, kern, 4096, 4096, 4096, false, false,
        ));
        v.push(matmul_layout_case(ctx, kern, 4096, 4096, 4096, true, false));
    }
    // Transformer shapes: 8192 tokens through a 1024 -> 3072 projection, and the LM head over
    // a 153,216-token vocabulary for 4096 tokens (C is 2.5 GB, over NVIDIA's 2 GiB binding
    // limit: chunked over rows; 8192 tokens would exceed its 4 GiB buffer limit).
    // `Coop16` runs these whole-tile shapes through the direct kernel; `Coop16Staged` is the
    // shared-memory one. Input gradients (NN) and weight gradients (TN) of the same layers.
    for kern in [Tiled, Coop16, Coop16Staged] {
        v.push(matmul_case(ctx, kern, 8192, 3072, 1024));
        v.push(matmul_case(ctx, kern, 8192, 1024, 3072));
    }
    for kern in [Tiled, Coop16] {
        v.push(matmul_layout_case(
            ctx, kern, 8192, 1024, 3072, false, false,
        ));
        v.push(matmul_layout_case(ctx, kern, 3072, 1024, 8192, true, false));
    }
    for kern in [Tiled, Coop16] {
        v.push(matmul_case(ctx, kern, 4096, 153_216, 1024));
    }
    v.extend(crate::bench_ops::op_cases(false));
    v.extend(crate::bench_decode::decode_cases(ctx, false));
    v
}

/// The `grrm demo` model's matmuls (hidden 128, ffn 384, vocabulary 832, ~777 tokens per
/// micro-batch) on the kernels that run on a CPU adapter: the forward projections (NT), the
/// input gradients (NN) and the weight gradients (TN).
fn demo_matmul_cases(ctx: &GpuContext) -> Vec<Case> {
    let shapes = [
        (777, 384, 128, false, true),
        (777, 832, 128, false, true),
        (777, 128, 384, false, false),
        (777, 128, 832, false, false),
        (384, 128, 777, true, false),
        (832, 128, 777, true, false),
    ];
    let mut v = Vec::new();
    for (m, n, k, ta, tb) in shapes {
        for kern in [MatmulKernel::Portable, MatmulKernel::Simd8] {
            let mut case = matmul_layout_case(ctx, kern, m, n, k, ta, tb);
            if kern == MatmulKernel::Simd8 && ctx.caps().fixed_subgroup_size() != Some(8) {
                case.unavailable = Some("subgroups are not exactly 8 wide".into());
            }
            v.push(case);
        }
    }
    v
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct PeakParams {
    n: u32,
    seed: f32,
    _p: [u32; 2],
}

static PEAK_SRC: ShaderSource = crate::shader!("bench.wgsl");
static FMA_PEAK: KernelEntry = KernelEntry {
    source: &PEAK_SRC,
    entry: "fma_peak",
    bindings: &[Access::Read, Access::ReadWrite],
};
static COPY_PEAK: KernelEntry = KernelEntry {
    source: &PEAK_SRC,
    entry: "copy_peak",
    bindings: &[Access::Read, Access::ReadWrite],
};

/// The ceilings: FMA throughput and copy bandwidth (bytes read + written).
fn peak_cases(quick: bool) -> Vec<Case> {
    let (groups, iters) = if quick {
        (64u32, 1024u32)
    } else {
        (65_535, 4096)
    };
    let fma_flops = groups as f64 * 256.0 * iters as f64 * 64.0;
    let fma = Case::new(
        "peak: f32 FMA",
        format!("{groups}x256 inv x {iters} it"),
        fma_flops,
        0.0,
        if quick { 1 } else { 4 },
        move |ctx| {
            let src = Tensor::zeros(ctx, &[4], DType::F32)?;
            let dst = Tensor::zeros(ctx, &[4], DType::F32)?;
            Ok(Box::new(move |rec: &mut Recorder| {
                let p = PeakParams {
                    n: iters,
                    seed: 0.5,
                    _p: [0; 2],
                };
                let binds = vec![src.binding("bench")?, dst.binding("bench")?];
                rec.dispatch(&FMA_PEAK, &[], &p, binds, [groups, 1, 1])
            }))
        },
    );
    let words: usize = if quick { 4 << 20 } else { 256 << 20 }; // f32 elements: 16 MiB / 1 GiB
    let copy = Case::new(
        "peak: copy",
        format!("{} MiB", (words * 4) >> 20),
        0.0,
        (words * 8) as f64,
        if quick { 2 } else { 10 },
        move |ctx| {
            let src = Tensor::from_f32(ctx, &[words], &data(words, 3))?;
            let dst = Tensor::zeros(ctx, &[words], DType::F32)?;
            Ok(Box::new(move |rec: &mut Recorder| {
                let p = PeakParams {
                    n: (words / 4) as u32,
                    seed: 0.0,
                    _p: [0; 2],
                };
                let groups = ((words / 4).div_ceil(256) as u32).min(4 * 132 * 8);
                let binds = vec![src.binding("bench")?, dst.binding("bench")?];
                rec.dispatch(&COPY_PEAK, &[], &p, binds, [groups, 1, 1])
            }))
        },
    );
    vec![fma, copy]
}

fn time_case(ctx: &GpuContext, case: Case, opts: &BenchOpts) -> Result<BenchRow> {
    let mut row = BenchRow {
        kernel: case.kernel,
        shape: case.shape,
        seconds: f64::NAN,
        flops: case.flops,
        bytes: case.bytes,
        peak_flops_frac: None,
        peak_bw_frac: None,
        skipped: case.unavailable,
    };
    if row.skipped.is_some() {
        return Ok(row);
    }
    let mut launch = (case.setup)(ctx)?;
    ctx.wait_idle()?;
    let mut submit = |reps: usize| -> Result<f64> {
        let mut rec = Recorder::new(ctx, "bench");
        for _ in 0..reps {
            launch(&mut rec)?;
        }
        let t0 = Instant::now();
        rec.submit()?;
        ctx.wait_idle()?;
        Ok(t0.elapsed().as_secs_f64())
    };
    for _ in 0..opts.warmup {
        submit(case.reps)?;
    }
    let mut times: Vec<f64> = (0..opts.samples.max(1))
        .map(|_| submit(case.reps).map(|t| t / case.reps as f64))
        .collect::<Result<_>>()?;
    times.sort_by(f64::total_cmp);
    row.seconds = times[times.len() / 2];
    Ok(row)
}

/// Measures the ceilings, then every case, and fills in the fractions of the ceilings.
pub fn kernel_bench(ctx: &GpuContext, opts: &BenchOpts) -> Result<Vec<BenchRow>> {
    let mut rows = Vec::new();
    for case in peak_cases(opts.quick) {
        rows.push(time_case(ctx, case, opts)?);
    }
    let peak_flops = rows[0].flops / rows[0].seconds;
    let peak_bw = rows[1].bytes / rows[1].seconds;
    for case in cases(ctx, opts.quick) {
        if let Some(f) = &opts.filter {
            if !case.kernel.contains(f.as_str()) {
                continue;
            }
        }
        let (kernel, shape) = (case.kernel.clone(), case.shape.clone());
        // A row that fails (out of memory, a driver error) is reported, not fatal.
        let row = time_case(ctx, case, opts).unwrap_or_else(|e| BenchRow {
            kernel: kernel.clone(),
            shape: shape.clone(),
            seconds: f64::NAN,
            flops: 0.0,
            bytes: 0.0,
            peak_flops_frac: None,
            peak_bw_frac: None,
            skipped: Some(format!("failed: {e}")),
        });
        eprintln!(
            "{kernel} {shape}: {}",
            row.skipped.clone().unwrap_or_else(|| format!(
                "{:.3} ms, {:.1} GFLOP/s",
                row.seconds * 1e3,
                row.gflops()
            ))
        );
        rows.push(row);
    }
    for r in &mut rows {
        if r.skipped.is_none() {
            r.peak_flops_frac = (r.flops > 0.0).then(|| r.flops / r.seconds / peak_flops);
            r.peak_bw_frac = (r.bytes > 0.0).then(|| r.bytes / r.seconds / peak_bw);
        }
    }
    Ok(rows)
}

/// A markdown table with the adapter, driver and the measured ceilings in its heading.
pub fn format_table(ctx: &GpuContext, rows: &[BenchRow]) -> String {
    let i = ctx.info();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "adapter: {} ({:?}, {:?}), driver: {} {}\n",
        i.name, i.backend, i.device_type, i.driver, i.driver_info
    );
    let _ = writeln!(
        s,
        "| kernel | shape | time (ms) | GFLOP/s | GB/s | % FMA peak | % copy BW |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|");
    let pct = |f: Option<f64>| f.map_or("-".to_string(), |f| format!("{:.1}", f * 100.0));
    for r in rows {
        if let Some(why) = &r.skipped {
            let _ = writeln!(s, "| {} | {} | skipped: {why} | | | | |", r.kernel, r.shape);
            continue;
        }
        let _ = writeln!(
            s,
            "| {} | {} | {:.3} | {:.1} | {:.1} | {} | {} |",
            r.kernel,
            r.shape,
            r.seconds * 1e3,
            r.gflops(),
            r.gbs(),
            pct(r.peak_flops_frac),
            pct(r.peak_bw_frac)
        );
    }
    s
}
