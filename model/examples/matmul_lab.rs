//! Matmul lab: times WGSL matmul kernels read at run time (no rebuild per shader change)
//! against the portable kernel in one process, interleaved sample by sample, at the `grrm demo`
//! model's shapes in every layout, and checks each against an f64 reference (cells marked BAD).
//!
//! `matmul_lab [--samples N] [--shapes SUBSTR] [--no-portable] SPEC...` where SPEC is
//! `file.wgsl:ROWS:COLS[:trusted][:NAME=VAL...]`: one workgroup covers ROWS x COLS of C (grid
//! ceil(N/COLS) x ceil(M/ROWS)), `trusted` compiles without wgpu's runtime checks, NAME=VAL are
//! override constants (TA/TB are set per layout when the shader declares them). The kernels take
//! matmul.wgsl's Params block and bindings. E.g.
//! `cargo run --release -p grrm-model --example matmul_lab -- shaders/matmul_simd8.wgsl:32:32:trusted`
//!
//! Each cell is the median wall-clock GFLOP/s and, in parentheses, the GFLOP/s per CPU-second of
//! the least disturbed sample times 2 cores (lavapipe's threads are this process's threads):
//! on a machine shared with other jobs the second is the steadier way to compare kernels.

use std::time::Instant;

use grrm_model::gpu::{Access, AdapterSelector, KernelEntry, ShaderSource};
use grrm_model::kernels::matmul::{matmul, params_for, MatmulKernel, MatmulOpts};
use grrm_model::{DType, GpuContext, Recorder, Tensor};

struct Spec {
    label: String,
    entry: &'static KernelEntry,
    rows: u32,
    cols: u32,
    constants: Vec<(&'static str, f64)>,
    /// The shader takes the layout as override constants TA / TB.
    layout_constants: bool,
}

fn parse(spec: &str) -> Spec {
    let parts: Vec<&str> = spec.split(':').collect();
    let path = parts[0];
    let wgsl: &'static str = Box::leak(std::fs::read_to_string(path).expect(path).into_boxed_str());
    let mut trusted = false;
    let mut constants = Vec::new();
    for p in &parts[3..] {
        if *p == "trusted" {
            trusted = true;
        } else if let Some((n, v)) = p.split_once('=') {
            let n: &'static str = Box::leak(n.to_string().into_boxed_str());
            constants.push((n, v.parse::<f64>().unwrap()));
        }
    }
    let name: &'static str = Box::leak(spec.to_string().into_boxed_str());
    let src: &'static ShaderSource = Box::leak(Box::new(ShaderSource {
        name,
        wgsl,
        trusted,
    }));
    let entry: &'static KernelEntry = Box::leak(Box::new(KernelEntry {
        source: src,
        entry: "main",
        bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
    }));
    Spec {
        label: spec.rsplit('/').next().unwrap().to_string(),
        entry,
        rows: parts[1].parse().unwrap(),
        cols: parts[2].parse().unwrap(),
        constants,
        layout_constants: wgsl.contains("override TA"),
    }
}

/// CPU time of every thread of this process (lavapipe's workers included), in seconds: a
/// measure of work that other processes on the machine disturb much less than wall time.
fn cpu_seconds() -> f64 {
    let mut ns = 0u64;
    for t in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
            ns += s.split_whitespace().next().unwrap().parse::<u64>().unwrap();
        }
    }
    ns as f64 * 1e-9
}

fn randv(n: usize, seed: u64) -> Vec<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let mut samples = 5usize;
    let mut filter: Option<String> = None;
    let mut specs = Vec::new();
    let mut no_portable = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--samples" => samples = args.next().unwrap().parse().unwrap(),
            "--shapes" => filter = args.next(),
            "--no-portable" => no_portable = true,
            s => specs.push(parse(s)),
        }
    }
    let ctx = GpuContext::open(&AdapterSelector::from_arg_or_env(None)).unwrap();
    eprintln!("adapter: {}", ctx.info().name);
    // (M, N, K, trans_a, trans_b): forward NT, backward NN (dX) and TN (dW) at demo sizes.
    let shapes: Vec<(usize, usize, usize, bool, bool)> = vec![
        (777, 128, 128, false, true),
        (777, 384, 128, false, true),
        (777, 128, 384, false, true),
        (777, 832, 128, false, true),
        (777, 128, 128, false, false),
        (777, 128, 384, false, false),
        (777, 384, 128, false, false),
        (777, 128, 832, false, false),
        (128, 128, 777, true, false),
        (384, 128, 777, true, false),
        (128, 384, 777, true, false),
        (832, 128, 777, true, false),
        (33, 97, 29, false, true),
        (1, 128, 128, false, true),
        (4, 832, 128, false, true),
        (8, 384, 128, false, true),
        (16, 832, 128, false, true),
        (16, 128, 384, false, true),
        (64, 832, 128, false, true),
        (160, 832, 128, false, true),
    ];
    println!(
        "| shape | {}{} |",
        if no_portable { "" } else { "portable | " },
        specs
            .iter()
            .map(|s| s.label.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    for &(m, n, k, ta, tb) in &shapes {
        let name = format!(
            "{m}x{n}x{k} {}{}",
            if ta { "T" } else { "N" },
            if tb { "T" } else { "N" }
        );
        if let Some(f) = &filter {
            if !name.contains(f.as_str()) {
                continue;
            }
        }
        let a = randv(m * k, 1);
        let b = randv(n * k, 2);
        let ta_t = Tensor::from_f32(&ctx, &if ta { [k, m] } else { [m, k] }, &a).unwrap();
        let tb_t = Tensor::from_f32(&ctx, &if tb { [n, k] } else { [k, n] }, &b).unwrap();
        let c = Tensor::poisoned(&ctx, &[m, n], DType::F32).unwrap();
        // Reference.
        let mut want = vec![0f64; m * n];
        let mut mag = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let (mut s, mut g) = (0f64, 0f64);
                for kk in 0..k {
                    let av = if ta { a[kk * m + i] } else { a[i * k + kk] };
                    let bv = if tb { b[j * k + kk] } else { b[kk * n + j] };
                    s += av as f64 * bv as f64;
                    g += (av as f64 * bv as f64).abs();
                }
                want[i * n + j] = s;
                mag[i * n + j] = g;
            }
        }
        // The launcher's parameter block; this lab's kernels read the operands with scalar
        // loads (no VEC bits), as it always has.
        let mut p = params_for(m, n, k, ta, tb, false);
        p.flags = (if ta { 4 } else { 0 }) | (if tb { 8 } else { 0 });
        let unused = ctx.unused_binding();
        let launch = |rec: &mut Recorder, which: Option<&Spec>| match which {
            None => matmul(
                rec,
                &ta_t,
                &tb_t,
                None,
                &c,
                MatmulOpts {
                    trans_a: ta,
                    trans_b: tb,
                    kernel: MatmulKernel::Portable,
                    ..Default::default()
                },
            )
            .unwrap(),
            Some(s) => {
                let binds = vec![
                    ta_t.binding("lab").unwrap(),
                    tb_t.binding("lab").unwrap(),
                    unused.clone(),
                    c.binding("lab").unwrap(),
                ];
                let groups = [(n as u32).div_ceil(s.cols), (m as u32).div_ceil(s.rows), 1];
                let mut constants = s.constants.clone();
                if s.layout_constants {
                    constants.push(("TA", ta as u8 as f64));
                    constants.push(("TB", tb as u8 as f64));
                }
                rec.dispatch(s.entry, &constants, &p, binds, groups)
                    .unwrap()
            }
        };
        let mut kernels: Vec<Option<&Spec>> = if no_portable { vec![] } else { vec![None] };
        kernels.extend(specs.iter().map(Some));
        // Check each.
        let mut errs = Vec::new();
        for &kk in &kernels {
            let c0 = Tensor::poisoned(&ctx, &[m, n], DType::F32).unwrap();
            let mut rec = Recorder::new(&ctx, "lab");
            rec.copy(c0.binding("lab").unwrap(), c.binding("lab").unwrap())
                .unwrap();
            launch(&mut rec, kk);
            rec.submit().unwrap();
            let got = c.to_f32_vec().unwrap();
            let mut worst = 0f64;
            for ((g, w), s) in got.iter().zip(&want).zip(&mag) {
                let e = (*g as f64 - w).abs() / (1e-6 + s);
                worst = if e.is_nan() {
                    f64::INFINITY
                } else {
                    worst.max(e)
                };
            }
            errs.push(worst);
        }
        let flops = 2.0 * (m * n * k) as f64;
        let reps = ((0.05e9 / flops).ceil() as usize).clamp(2, 40);
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); kernels.len()];
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); kernels.len()];
        for s in 0..=samples {
            for (i, &kk) in kernels.iter().enumerate() {
                let mut rec = Recorder::new(&ctx, "lab");
                for _ in 0..reps {
                    launch(&mut rec, kk);
                }
                let (t0, c0) = (Instant::now(), cpu_seconds());
                rec.submit().unwrap();
                ctx.wait_idle().unwrap();
                if s > 0 {
                    times[i].push(t0.elapsed().as_secs_f64() / reps as f64);
                    cpu[i].push((cpu_seconds() - c0) / reps as f64);
                }
            }
        }
        let cells: Vec<String> = times
            .iter_mut()
            .zip(cpu.iter_mut())
            .zip(&errs)
            .map(|((t, u), e)| {
                t.sort_by(f64::total_cmp);
                u.sort_by(f64::total_cmp);
                let g = flops / t[t.len() / 2] / 1e9;
                // GFLOP/s per CPU-second of the least disturbed sample, times 2 cores.
                let gc = 2.0 * flops / u[0] / 1e9;
                let bad = if *e > 1e-5 {
                    format!(" BAD({e:.1e})")
                } else {
                    String::new()
                };
                format!("{g:.1} ({gc:.1}){bad}")
            })
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    }
}
