//! Supervised fine-tuning on this machine's adapter (lavapipe in CI): a tiny Qwen3 model and a
//! tokenizer trained on the samples themselves, a small synthetic curriculum (synth -> semantic
//! IDs -> build_sft). The loss falls; accumulation 2x2 equals one batch of 4; a run interrupted
//! after a checkpoint resumes to the same losses and weights; the schedule; config errors.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use grrm_actors::config::{ConfigSource, ResolvedToml};
use grrm_actors::metrics_log::MetricsLog;
use grrm_actors::progress::ProgressMode;
use grrm_actors::run_dir::RunDir;
use grrm_actors::sft::{
    names, run_sft, Batching, LrSchedule, Schedule, SftConfig, SftFile, SftOptions, SftTrainer,
};
use grrm_model::hf::{
    init_random, save_pretrained, Arch, Checkpoint, ConfigBuilder, SaveOptions, StorageDType,
    Weights,
};
use grrm_model::tokenizer::build_tiny_tokenizer;
use grrm_model::GpuContext;
use grrm_recsys::tasks::align::Task;
use grrm_recsys::{
    all_index_tokens, build_index, build_sft, synth, write_jsonl, IndexConfig, ReasoningConfig,
    SynthConfig, TfidfEmbedder,
};

struct Fixture {
    _dir: tempfile::TempDir,
    model: PathBuf,
    data: PathBuf,
    samples: usize,
}

fn ctx() -> GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::from_env().expect("a GPU adapter (lavapipe in CI)"))
        .clone()
}

/// Synthetic data -> semantic IDs -> curriculum (first 48 samples) -> JSONL; a tokenizer trained
/// on those samples plus the index tokens; a random tiny Qwen3 saved as a Hugging Face folder.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let t0 = std::time::Instant::now();
        let dir = tempfile::tempdir().unwrap();
        let mut ds = synth(&SynthConfig {
            users: 60,
            items: 80,
            ..Default::default()
        })
        .unwrap();
        let icfg = IndexConfig {
            levels: 3,
            codes: 8,
            collab: None,
            ..Default::default()
        };
        let (ids, report) = build_index(&ds, &icfg, &TfidfEmbedder::default()).unwrap();
        ds.index = Some(ids);
        let scfg = grrm_recsys::SftConfig {
            tasks: vec![Task::Seqrec, Task::Item2index, Task::Index2item],
            align_rounds: 1,
            max_examples_per_task: Some(24),
            reasoning: ReasoningConfig {
                examples: 4,
                ..Default::default()
            },
            ..Default::default()
        };
        let (mut samples, _) = build_sft(&ds, &scfg).unwrap();
        samples.truncate(48);
        let data = dir.path().join("sft.jsonl");
        write_jsonl(&data, &samples).unwrap();

        let corpus: Vec<&str> = samples
            .iter()
            .flat_map(|s| s.messages.iter().map(|m| m.content.as_str()))
            .collect();
        let mut tok = build_tiny_tokenizer(&corpus, 600).unwrap();
        tok.add_special_tokens(&all_index_tokens(
            icfg.levels,
            icfg.codes,
            report.max_collision,
        ))
        .unwrap();
        let cfg = ConfigBuilder::new(Arch::Qwen3)
            .layers(2)
            .hidden(32)
            .heads(4)
            .kv_heads(2)
            .head_dim(8)
            .ffn(64)
            .vocab(tok.len())
            .max_positions(2048)
            .build()
            .unwrap();
        let model = dir.path().join("tiny-model");
        let opts = SaveOptions {
            dtype: StorageDType::F32,
            ..Default::default()
        };
        save_pretrained(&model, &cfg, &init_random(&cfg, 7), Some(&tok), &opts).unwrap();
        eprintln!(
            "fixture: {} samples, vocab {}, built in {:.1} s",
            samples.len(),
            tok.len(),
            t0.elapsed().as_secs_f64()
        );
        Fixture {
            samples: samples.len(),
            _dir: dir,
            model,
            data,
        }
    })
}

fn base_config() -> SftConfig {
    let f = fixture();
    SftConfig {
        model: f.model.clone(),
        data: f.data.clone(),
        micro_batch_size: 4,
        grad_accum_steps: 1,
        checkpoint_every: 0,
        // The reasoning samples (~560 tokens) are cut: attention at that length dominates a
        // lavapipe step (20 s for 4 of them versus 0.8 s for 4 alignment samples).
        cutoff_len: 320,
        ..Default::default()
    }
}

fn quiet(resume: bool, stop_after: Option<u64>) -> SftOptions {
    SftOptions {
        ctx: Some(ctx()),
        progress: ProgressMode::Hidden,
        resume,
        stop_after,
    }
}

fn new_run(root: &Path, name: &str, cfg: &SftConfig) -> RunDir {
    let text = SftFile { sft: cfg.clone() }.render().unwrap();
    RunDir::create_at(&root.join(name), &text).unwrap()
}

fn losses(run: &RunDir) -> Vec<(u64, f64)> {
    let log = MetricsLog::read(&run.metrics_path()).unwrap();
    log.series(names::LOSS)
        .into_iter()
        .flat_map(|s| s.points)
        .collect()
}

/// Largest |a - b| over every tensor, and the largest |a|.
fn max_diff(a: &Weights, b: &Weights) -> (f64, f64) {
    let (mut d, mut s) = (0f64, 0f64);
    for ((na, ta), (nb, tb)) in a.named_tensors().into_iter().zip(b.named_tensors()) {
        assert_eq!(na, nb);
        assert_eq!(ta.shape, tb.shape, "{na}");
        for (x, y) in ta.data.iter().zip(&tb.data) {
            d = d.max((x - y).abs() as f64);
            s = s.max(x.abs() as f64);
        }
    }
    (d, s)
}

#[test]
fn loss_falls_over_a_few_dozen_steps() {
    let root = tempfile::tempdir().unwrap();
    let cfg = SftConfig {
        lr: 1e-2,
        max_steps: 36,
        epochs: 3,
        ..base_config()
    };
    let run = new_run(root.path(), "falls", &cfg);
    let s = run_sft(&cfg, &run, &quiet(false, None)).unwrap();
    let l = losses(&run);
    let curve: Vec<String> = l
        .iter()
        .step_by(5)
        .map(|(st, v)| format!("{st}:{v:.3}"))
        .collect();
    eprintln!(
        "loss curve {}; {} tokens in {:.2} s = {:.0} tokens/s",
        curve.join(" "),
        s.tokens,
        s.seconds,
        s.tokens_per_s
    );
    let log = MetricsLog::read(&run.metrics_path()).unwrap();
    let mut secs: Vec<f64> = log
        .records
        .iter()
        .filter_map(|r| r.get(names::STEP_SECONDS))
        .collect();
    let toks: Vec<f64> = log
        .records
        .iter()
        .filter_map(|r| r.get(names::TOKENS))
        .collect();
    eprintln!("step seconds {secs:.2?}\ntokens {toks:?}");
    secs.sort_by(f64::total_cmp);
    eprintln!(
        "median step {:.3} s, max {:.3} s",
        secs[secs.len() / 2],
        secs[secs.len() - 1]
    );
    assert!(s.finished);
    assert_eq!((s.steps, s.total_steps), (36, 36));
    assert_eq!(l.len(), 36, "one loss record per step");
    let mean = |v: &[(u64, f64)]| v.iter().map(|p| p.1).sum::<f64>() / v.len() as f64;
    let (head, tail) = (mean(&l[..4]), mean(&l[l.len() - 4..]));
    assert!(head > 5.0, "initial loss {head} should be near ln(V)");
    assert!(
        tail < 0.6 * head,
        "loss only fell from {head:.3} to {tail:.3}"
    );
    assert_eq!(s.first_loss, l[0].1);
    assert_eq!(s.last_loss, l[35].1);
    // Every per-step metric is logged; lr follows the schedule (warm-up: step 1 at lr 0).
    let r = &log.records[0];
    for m in [
        names::LOSS,
        names::LR,
        names::GRAD_NORM,
        names::TOKENS_PER_S,
        names::STEP_SECONDS,
    ] {
        assert!(r.get(m).is_some_and(f64::is_finite), "{m} missing");
    }
    assert_eq!(r.get(names::LR), Some(0.0));
    let peak = log.records[4].get(names::LR).unwrap();
    assert!((peak - 1e-2).abs() < 1e-12, "step 5 lr {peak}");
    // The final model loads as a Hugging Face folder.
    let out = Checkpoint::load(s.output.as_ref().unwrap()).unwrap();
    assert!(out.tokenizer.is_some());
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.path().join("sft_summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["steps"], 36);
}

#[test]
fn accumulation_2x2_equals_one_batch_of_4() {
    let c = ctx();
    let one = SftConfig {
        warmup_ratio: 0.0,
        lr: 1e-3,
        optimizer: grrm_actors::sft::SftOptimizer {
            weight_decay: 0.1,
            ..Default::default()
        },
        ..base_config()
    };
    let two = SftConfig {
        micro_batch_size: 2,
        grad_accum_steps: 2,
        ..one.clone()
    };
    let grouped = SftConfig {
        batching: Batching::LengthGrouped,
        ..two.clone()
    };
    let mut results = Vec::new();
    for cfg in [&one, &two, &grouped] {
        let mut t = SftTrainer::new(cfg, &c, None).unwrap();
        assert_eq!(t.plan[0].samples(), 4);
        assert!(
            t.data.truncated > 0 && t.data.max_len == 320,
            "reasoning samples are cut"
        );
        let acc = t.accumulate(0).unwrap();
        let grads = t.gradients().unwrap();
        t.apply(t.schedule.lr(0)).unwrap();
        results.push((acc, grads, t.weights().unwrap(), t.plan[0].clone()));
    }
    assert_eq!(results[0].3.micro_batches.len(), 1);
    assert_eq!(results[1].3.micro_batches, vec![vec![0, 1], vec![2, 3]]);
    // Length grouping reorders within the step only.
    let mut g: Vec<usize> = results[2].3.micro_batches.concat();
    g.sort();
    assert_eq!(g, vec![0, 1, 2, 3]);
    let (a, ga, wa, _) = &results[0];
    for (b, gb, wb, _) in &results[1..] {
        assert_eq!(a.target_tokens, b.target_tokens);
        assert!(
            (a.loss - b.loss).abs() < 1e-5,
            "loss {} vs {}",
            a.loss,
            b.loss
        );
        let (dg, sg) = max_diff(ga, gb);
        eprintln!("gradients: max |diff| {dg:e} (max |g| {sg:e})");
        assert!(dg <= 1e-4 * sg, "gradients differ by {dg:e} (scale {sg:e})");
        let (dw, _) = max_diff(wa, wb);
        eprintln!("weights after one step: max |diff| {dw:e} (lr 1e-3)");
        assert!(dw < 1e-5, "weights differ by {dw:e}");
    }
    assert!(
        results[2].0.padded_tokens <= results[1].0.padded_tokens,
        "length grouping computed more padding"
    );
}

#[test]
fn resume_continues_exactly() {
    let root = tempfile::tempdir().unwrap();
    let cfg = SftConfig {
        lr: 5e-3,
        max_steps: 4,
        warmup_ratio: 0.25,
        micro_batch_size: 2,
        grad_accum_steps: 2,
        checkpoint_every: 2,
        keep_last: 2,
        ..base_config()
    };
    let full = new_run(root.path(), "full", &cfg);
    let a = run_sft(&cfg, &full, &quiet(false, None)).unwrap();
    let la = losses(&full);

    // Interrupted after step 3 (checkpoint at 2), then resumed.
    let cut = new_run(root.path(), "cut", &cfg);
    let b1 = run_sft(&cfg, &cut, &quiet(false, Some(3))).unwrap();
    assert!(!b1.finished && b1.output.is_none());
    assert_eq!(b1.steps, 3);
    let ckpt = cut.path().join("checkpoints/step-2");
    let loaded = Checkpoint::load(&ckpt).unwrap();
    assert!(loaded.tokenizer.is_some(), "checkpoint has the tokenizer");
    assert!(ckpt.join("optimizer/exp_avg/model.safetensors").is_file());
    let reopened = RunDir::open_existing(cut.path()).unwrap();
    let b = run_sft(&cfg, &reopened, &quiet(true, None)).unwrap();
    let lb = losses(&reopened);

    eprintln!("uninterrupted {la:?}\nresumed       {lb:?}");
    assert_eq!(
        lb.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4],
        "step 3's record from before the interruption is replaced"
    );
    for (x, y) in la.iter().zip(&lb) {
        assert!(
            (x.1 - y.1).abs() <= 1e-6,
            "step {}: {} vs {}",
            x.0,
            x.1,
            y.1
        );
    }
    assert_eq!((a.steps, b.steps), (4, 4));
    assert_eq!(a.first_loss, b.first_loss);
    let wa = Checkpoint::load(a.output.unwrap()).unwrap().weights;
    let wb = Checkpoint::load(b.output.unwrap()).unwrap().weights;
    let (d, s) = max_diff(&wa, &wb);
    eprintln!("final weights: max |diff| {d:e} (max |w| {s:e})");
    assert!(d <= 1e-6, "final weights differ by {d:e}");
    // Both checkpoints kept (keep_last 2), the newest is the final step.
    let steps: Vec<u64> = reopened
        .checkpoints()
        .list()
        .unwrap()
        .iter()
        .map(|c| c.step)
        .collect();
    assert_eq!(steps, vec![2, 4]);
}

#[test]
fn cosine_schedule_with_warm_up() {
    let s = LrSchedule::new(1.0, 0.1, 20, Schedule::Cosine);
    assert_eq!(s.warmup_steps, 2);
    let lr: Vec<f64> = (0..20).map(|i| s.lr(i)).collect();
    assert_eq!(&lr[..3], &[0.0, 0.5, 1.0]);
    // Half-way through the decay (step 2 + 9) the factor is 0.5.
    assert!((lr[11] - 0.5).abs() < 1e-12, "{}", lr[11]);
    let last = 0.5 * (1.0 + (std::f64::consts::PI * 17.0 / 18.0).cos());
    assert!((lr[19] - last).abs() < 1e-12);
    assert!(
        lr[2..].windows(2).all(|w| w[1] < w[0]),
        "decreasing: {lr:?}"
    );
    assert_eq!(s.lr(20), 0.0, "reaches 0 at the end");
    // Warm-up steps are rounded up (transformers: ceil(ratio * total)).
    assert_eq!(
        LrSchedule::new(5e-5, 0.1, 15, Schedule::Cosine).warmup_steps,
        2
    );
    assert_eq!(LrSchedule::new(5e-5, 0.0, 15, Schedule::Cosine).lr(0), 5e-5);
    let lin = LrSchedule::new(2.0, 0.0, 4, Schedule::Linear);
    assert_eq!(
        (0..5).map(|i| lin.lr(i)).collect::<Vec<_>>(),
        vec![2.0, 1.5, 1.0, 0.5, 0.0]
    );
    assert_eq!(LrSchedule::new(3.0, 0.5, 4, Schedule::Constant).lr(3), 3.0);
}

#[test]
fn config_defaults_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sft.toml");
    std::fs::write(
        &path,
        "[sft]\nmodel = \"m\"\ndata = \"d.jsonl\"\n\n[sft.optimizer]\nweight_decay = 0.1\n",
    )
    .unwrap();
    let src = ConfigSource::File(path.clone());
    let f = SftFile::load(&src, &["sft.batching=length_grouped"]).unwrap();
    let c = &f.sft;
    assert_eq!((c.lr, c.epochs, c.warmup_ratio), (5e-5, 1, 0.1));
    assert_eq!((c.cutoff_len, c.schedule), (2560, Schedule::Cosine));
    assert_eq!(c.optimizer.weight_decay, 0.1);
    assert_eq!(c.optimizer.max_grad_norm, 1.0);
    assert_eq!(c.batching, Batching::LengthGrouped);
    // The rendered config reads back the same.
    let text = f.render().unwrap();
    let back: SftFile = ResolvedToml::from_str("rendered", &text)
        .unwrap()
        .deserialize()
        .unwrap();
    assert_eq!(&back, &f);

    let err = |sets: &[&str]| SftFile::load(&src, sets).unwrap_err().to_string();
    let e = err(&["sft.learning_rate=1e-4"]);
    assert!(e.contains("sft.learning_rate"), "{e}");
    let e = err(&["sft.optimizer.beta3=0.5"]);
    assert!(e.contains("sft.optimizer.beta3"), "{e}");
    let e = err(&["sft.batching=packing"]);
    assert!(
        e.contains("sft.batching") && e.contains("length_grouped"),
        "{e}"
    );
    let e = err(&["sft.micro_batch_size=0"]);
    assert!(e.contains("sft.micro_batch_size"), "{e}");
    let e = err(&["sft.warmup_ratio=1.5"]);
    assert!(e.contains("sft.warmup_ratio"), "{e}");
    let e = err(&["sft.model=\"\""]);
    assert!(e.contains("sft.model"), "{e}");
    std::fs::write(
        &path,
        "[sft]\nmodel = \"m\"\ndata = \"d\"\n[train]\nlr = 1\n",
    )
    .unwrap();
    let e = SftFile::load(&src, &[] as &[&str]).unwrap_err().to_string();
    assert!(e.contains("train"), "{e}");

    // A data line whose assistant turn lies past the cut-off is named.
    let tiny = SftConfig {
        cutoff_len: 8,
        ..base_config()
    };
    let e = SftTrainer::new(&tiny, &ctx(), None)
        .err()
        .expect("cut-off before the answer")
        .to_string();
    assert!(e.contains("line 1") && e.contains("cut-off of 8"), "{e}");
    assert!(fixture().samples >= 40);
}

#[test]
fn recomputed_activations_give_the_same_gradients_with_a_smaller_plan() {
    let c = ctx();
    let kept = SftConfig {
        micro_batch_size: 2,
        ..base_config()
    };
    let redone = SftConfig {
        recompute_activations: true,
        ..kept.clone()
    };
    let mut out = Vec::new();
    for cfg in [&kept, &redone] {
        let t = SftTrainer::new(cfg, &c, None).unwrap();
        assert_eq!(t.model.recompute_activations, cfg.recompute_activations);
        let acc = t.accumulate(0).unwrap();
        out.push((acc.loss, t.gradients().unwrap(), t.memory.plan.clone()));
    }
    assert!(
        (out[0].0 - out[1].0).abs() <= 1e-9 * out[0].0.abs(),
        "loss {} vs {}",
        out[0].0,
        out[1].0
    );
    let (dg, sg) = max_diff(&out[0].1, &out[1].1);
    assert!(dg <= 1e-6 * sg, "gradients differ by {dg:e} (scale {sg:e})");
    assert!(out[1].2.recompute_activations);
    assert!(
        out[1].2.activations < out[0].2.activations,
        "{} vs {}",
        out[1].2,
        out[0].2
    );
}
