//! The whole pipeline end to end at a tiny size, as `grrm demo` runs it: synthetic data, semantic
//! IDs, curriculum SFT, SRPO, evaluation in both modes beside the baselines. Then the SRPO stage
//! is interrupted after its first step and resumed from the checkpoint: the resumed step must be
//! the uninterrupted run's step, bit for bit.

use std::collections::BTreeMap;
use std::path::Path;

use grrm_actors::config::{load_config, ConfigSource};
use grrm_actors::demo::{rl_config, run_demo, DemoConfig, EMBEDDED_CONFIG};
use grrm_actors::metrics_log::MetricsLog;
use grrm_actors::run_dir::RunDir;
use grrm_actors::srpo::{run_rl, RunOptions};
use grrm_model::GpuContext;

/// The embedded demo config (what `grrm demo` runs) shrunk to a few minutes on lavapipe.
fn tiny() -> DemoConfig {
    let sets = [
        "prepare.seed=5",
        "prepare.users=120",
        "prepare.items=64",
        "prepare.index_levels=3",
        "prepare.index_codes=4",
        "prepare.tokenizer_vocab=400",
        "prepare.layers=2",
        "prepare.hidden=48",
        "prepare.heads=2",
        "prepare.kv_heads=1",
        "prepare.head_dim=24",
        "prepare.ffn=96",
        "prepare.max_positions=320",
        "prepare.history_cap=3",
        r#"prepare.tasks=["seqrec","item2index","index2item"]"#,
        "prepare.align_rounds=1",
        "prepare.task_caps.seqrec=100000",
        "prepare.reasoning_examples=16",
        "prepare.rationale=brief",
        "sft.lr=1e-2",
        "sft.epochs=1",
        "sft.micro_batch_size=8",
        "sft.cutoff_len=256",
        "sft.log_every=50",
        "rl.mode=direct",
        "rl.steps=3",
        "rl.n=6",
        "rl.prompts_per_step=8",
        "rl.mini_batch_prompts=8",
        "rl.lr=1e-3",
        "rl.lr_warmup_steps=0",
        "rl.max_response_tokens=6",
        "rl.rl_eval_every=3",
        "rl.eval_prompts=32",
        "rl.eval_samples=4",
        "rl.checkpoint_every=1",
        "eval.max_users=20",
        "eval.batch_size=10",
        "eval.num_beams=5",
        "eval.reasoning_samples=1",
        "eval.reasoning_max_new_tokens=72",
    ];
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let source = ConfigSource::file_or_embedded(None, "configs/demo.toml", EMBEDDED_CONFIG);
    load_config(&source, &sets).unwrap()
}

/// Step `step`'s RL metrics without the wall time.
fn rl_step(run: &Path, step: u64) -> BTreeMap<String, f64> {
    let log = MetricsLog::read(&run.join("metrics.jsonl")).unwrap();
    let r = log
        .records
        .iter()
        .rfind(|r| r.phase == "rl" && r.step == step)
        .unwrap_or_else(|| panic!("no rl step {step} in {}", run.display()))
        .clone();
    let mut m = r.metrics;
    m.remove("step_seconds");
    m
}

#[test]
fn demo_pipeline_learns_evaluates_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let ctx = GpuContext::from_env().unwrap();
    let cfg = tiny();
    let res = run_demo(&cfg, &out, &ctx).unwrap();

    // SFT learned, SRPO raised the held-out mean reward.
    assert!(
        res.sft_final_loss_mean < 0.6 * res.sft_first_loss,
        "SFT loss {} -> {} (mean of the last steps)",
        res.sft_first_loss,
        res.sft_final_loss_mean
    );
    assert!(
        res.rl_reward_after > res.rl_reward_before,
        "SRPO held-out reward {} -> {}",
        res.rl_reward_before,
        res.rl_reward_after
    );

    // Evaluation: the baselines and both models in both modes, metrics in range, files written.
    let names: Vec<(String, String)> = res
        .table
        .iter()
        .map(|r| (r.name.clone(), r.mode.clone()))
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    for row in &res.table {
        for v in [
            row.metrics.recall_1,
            row.metrics.recall_5,
            row.metrics.recall_10,
            row.metrics.ndcg_5,
            row.metrics.ndcg_10,
            row.metrics.invalid_rate,
            row.metrics.duplicate_rate,
        ] {
            assert!((0.0..=1.0).contains(&v), "{row:?}");
        }
        assert!(row.metrics.recall_1 <= row.metrics.recall_5 + 1e-12);
        assert!(row.metrics.recall_5 <= row.metrics.recall_10 + 1e-12);
    }
    assert!(out.join("results.json").is_file());
    for tag in [
        "sft-direct",
        "sft-reasoning",
        "srpo-direct",
        "srpo-reasoning",
    ] {
        let users = out.join("eval").join(tag).join("users.jsonl");
        let n = std::fs::read_to_string(&users).unwrap().lines().count();
        assert_eq!(n, cfg.eval.max_users, "{}", users.display());
    }

    // Interrupt SRPO after step 1 and resume: step 2 equals the uninterrupted run's step 2.
    let rl = rl_config(&cfg, &out.join("model-sft"), &out.join("data"));
    let cut = RunDir::create_at(&dir.path().join("cut"), "").unwrap();
    let opts = |resume: bool, max: Option<u64>| RunOptions {
        resume,
        ctx: Some(ctx.clone()),
        print: false,
        max_steps_this_call: max,
        ..Default::default()
    };
    run_rl(&rl, &cut, opts(false, Some(1))).unwrap();
    assert_eq!(cut.checkpoints().latest().unwrap().unwrap().step, 1);
    run_rl(&rl, &cut, opts(true, Some(1))).unwrap();
    let full = rl_step(&out.join("runs/rl"), 2);
    assert!(full.contains_key("reward_mean"), "{full:?}");
    assert_eq!(rl_step(cut.path(), 2), full, "step 2 differs after resume");
}
