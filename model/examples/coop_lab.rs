//! Cooperative-matrix (tensor-core) matmul lab: times f16 WGSL matmul kernels read at run time
//! against the launcher's own choice (`matmul` with `Coop16`) on the shapes of a Qwen3-0.6B
//! training step and 4096^3, by GPU timestamps (`GpuContext::open_with(.., profile = true)`),
//! and checks each on sampled outputs against an f64 reference of the same f16 values.
//!
//! `coop_lab [--reps N] [--shapes SUBSTR] [--alpha X] SPEC...` where SPEC is
//! `file.wgsl:BM:BN[:trusted][:NAME=VAL...]`: one workgroup covers BM x BN of C; `trusted`
//! compiles without wgpu's runtime checks; NAME=VAL replaces the shader's `const NAME: u32 =`
//! line (tile shapes), or sets an override constant when there is no such line. TA/TB are set
//! per layout when the shader declares them. The kernels take matmul_coop.wgsl's Params block
//! and bindings (A, B, bias, C, two scale words). E.g.
//! `cargo run --release -p grrm-model --example coop_lab -- shaders/matmul_coop_tiled.wgsl:128:128:WARPS_M=2:WARPS_N=2`
//!
//! Each cell is TFLOP/s (mean GPU time over N dispatches) and the worst sampled error relative
//! to sum |a b| (BAD above 1e-4).

use grrm_model::gpu::{Access, AdapterSelector, KernelEntry, ShaderSource};
use grrm_model::kernels::matmul::{matmul, params_for, MatmulKernel, MatmulOpts, Params};
use grrm_model::{DType, GpuContext, Recorder, Tensor};

struct Spec {
    label: String,
    entry: &'static KernelEntry,
    rows: u32,
    cols: u32,
    constants: Vec<(&'static str, f64)>,
    layout_constants: bool,
}

fn parse(spec: &str) -> Spec {
    let parts: Vec<&str> = spec.split(':').collect();
    let path = parts[0];
    let mut wgsl = std::fs::read_to_string(path).expect(path);
    let mut trusted = false;
    let mut constants = Vec::new();
    for p in &parts[3..] {
        if *p == "trusted" {
            trusted = true;
        } else if let Some((n, v)) = p.split_once('=') {
            let line = format!("const {n}: u32 = ");
            match wgsl.find(&line) {
                Some(at) => {
                    let end = at + wgsl[at..].find(';').expect("const line ends with ;");
                    wgsl.replace_range(at..end, &format!("{line}{v}u"));
                }
                None => {
                    let n: &'static str = Box::leak(n.to_string().into_boxed_str());
                    constants.push((n, v.parse::<f64>().unwrap()));
                }
            }
        }
    }
    let name: &'static str = Box::leak(
        spec.rsplit('/')
            .next()
            .unwrap()
            .to_string()
            .into_boxed_str(),
    );
    let src: &'static ShaderSource = Box::leak(Box::new(ShaderSource {
        name,
        wgsl: Box::leak(wgsl.clone().into_boxed_str()),
        trusted,
    }));
    let entry: &'static KernelEntry = Box::leak(Box::new(KernelEntry {
        source: src,
        entry: "main",
        bindings: &[
            Access::Read,
            Access::Read,
            Access::Read,
            Access::ReadWrite,
            Access::Read,
            Access::Read,
        ],
    }));
    Spec {
        label: name.to_string(),
        entry,
        rows: parts[1].parse().unwrap(),
        cols: parts[2].parse().unwrap(),
        constants,
        layout_constants: wgsl.contains("override TA"),
    }
}

/// Deterministic values in [-1, 1), rounded to f16.
fn randh(n: usize, seed: u64) -> Vec<half::f16> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            half::f16::from_f32((x >> 40) as f32 / (1u64 << 23) as f32 - 1.0)
        })
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let mut reps = 20usize;
    let mut filter: Option<String> = None;
    let mut alpha = 1.0f32;
    let mut specs = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reps" => reps = args.next().unwrap().parse().unwrap(),
            "--shapes" => filter = args.next(),
            // alpha != 1 takes the kernels' scaling epilogue (as f16 training matmuls do).
            "--alpha" => alpha = args.next().unwrap().parse().unwrap(),
            s => specs.push(parse(s)),
        }
    }
    let ctx = GpuContext::open_with(&AdapterSelector::from_arg_or_env(None), true).unwrap();
    let prof = ctx.profiler().expect("the lab needs timestamp queries");
    eprintln!("adapter: {}", ctx.info().name);
    // (M, N, K, trans_a, trans_b): 4096^3 in each layout, then a Qwen3-0.6B step at 8 x 1024
    // tokens: forward NT (q/o, gate/up, down), input gradient NN, weight gradient TN.
    let shapes: Vec<(usize, usize, usize, bool, bool)> = vec![
        (4096, 4096, 4096, false, true),
        (4096, 4096, 4096, false, false),
        (4096, 4096, 4096, true, false),
        (8192, 1024, 1024, false, true),
        (8192, 2048, 1024, false, true),
        (8192, 3072, 1024, false, true),
        (8192, 1024, 3072, false, true),
        (8192, 1024, 3072, false, false),
        (1024, 3072, 8192, true, false),
        (3072, 1024, 8192, true, false),
    ];
    println!(
        "| shape | matmul Coop16 | {} |",
        specs
            .iter()
            .map(|s| s.label.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|---|{}", "---|".repeat(specs.len()));
    for &(m, n, k, ta, tb) in &shapes {
        let name = format!(
            "{m}x{n}x{k} {}{}",
            if ta { "T" } else { "N" },
            if tb { "T" } else { "N" }
        );
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        let a = randh(m * k, 1);
        let b = randh(n * k, 2);
        let at = Tensor::from_f16(&ctx, &if ta { [k, m] } else { [m, k] }, &a).unwrap();
        let bt = Tensor::from_f16(&ctx, &if tb { [n, k] } else { [k, n] }, &b).unwrap();
        let c = Tensor::poisoned(&ctx, &[m, n], DType::F32).unwrap();
        let p = Params {
            alpha,
            ..params_for(m, n, k, ta, tb, true)
        };
        let unused = ctx.unused_binding();
        let launch = |rec: &mut Recorder, which: Option<&Spec>| match which {
            None => matmul(
                rec,
                &at,
                &bt,
                None,
                &c,
                MatmulOpts {
                    trans_a: ta,
                    trans_b: tb,
                    kernel: MatmulKernel::Coop16,
                    alpha,
                    ..Default::default()
                },
            )
            .unwrap(),
            Some(s) => {
                let binds = vec![
                    at.binding("lab").unwrap(),
                    bt.binding("lab").unwrap(),
                    unused.clone(),
                    c.binding("lab").unwrap(),
                    unused.clone(),
                    unused.clone(),
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
        // Sampled outputs and their f64 reference.
        let samples: Vec<(usize, usize)> = (0..97)
            .map(|i| ((i * 7919) % m, (i * 104_729) % n))
            .collect();
        let reference: Vec<(f64, f64)> = samples
            .iter()
            .map(|&(i, j)| {
                let (mut s, mut g) = (0f64, 0f64);
                for kk in 0..k {
                    let av = if ta { a[kk * m + i] } else { a[i * k + kk] }.to_f64();
                    let bv = if tb { b[j * k + kk] } else { b[kk * n + j] }.to_f64();
                    s += av * bv;
                    g += (av * bv).abs();
                }
                (s, g)
            })
            .collect();
        let mut kernels: Vec<Option<&Spec>> = vec![None];
        kernels.extend(specs.iter().map(Some));
        let mut cells = Vec::new();
        for &kk in &kernels {
            let mut rec = Recorder::new(&ctx, "lab");
            let c0 = Tensor::poisoned(&ctx, &[m, n], DType::F32).unwrap();
            rec.copy(c0.binding("lab").unwrap(), c.binding("lab").unwrap())
                .unwrap();
            launch(&mut rec, kk);
            rec.submit().unwrap();
            let got = c.to_f32_vec().unwrap();
            let worst = samples
                .iter()
                .zip(&reference)
                .map(|(&(i, j), &(s, g))| {
                    let e = (got[i * n + j] as f64 - alpha as f64 * s).abs() / (1e-6 + g);
                    if e.is_nan() {
                        f64::INFINITY
                    } else {
                        e
                    }
                })
                .fold(0f64, f64::max);
            // The driver lowers the clock during the host's reference work (nvidia-smi showed
            // 1980 -> 345 MHz within a second of idling): keep the GPU busy for 0.3 s first.
            let warm = std::time::Instant::now();
            while warm.elapsed().as_secs_f64() < 0.3 {
                let mut rec = Recorder::new(&ctx, "lab");
                for _ in 0..reps {
                    launch(&mut rec, kk);
                }
                rec.submit().unwrap();
            }
            prof.reset();
            let mut rec = Recorder::new(&ctx, "lab");
            for _ in 0..reps {
                launch(&mut rec, kk);
            }
            rec.submit().unwrap();
            let ms: f64 = prof.by_kernel().iter().map(|k| k.2).sum();
            let tflops = 2.0 * (m * n * k) as f64 * reps as f64 / (ms * 1e-3) / 1e12;
            let bad = if worst > 1e-4 { " BAD" } else { "" };
            cells.push(format!("{tflops:.1} ({worst:.0e}){bad}"));
        }
        println!("| {name} | {} |", cells.join(" | "));
    }
}
