//! Resume: a run stopped after a checkpoint and resumed gives exactly the next step of the
//! uninterrupted run (metrics and weights), through `run_rl` and the run folder. The on-policy
//! actor system (`max_staleness = 0`, held-out evaluation in the evaluator actor beside
//! training) gives bit for bit the synchronous engine's steps and evaluations, and a resume
//! redoes the evaluation of the checkpoint step when a kill lost it.

mod rl_common;

use grrm_actors::metrics_log::{MetricsLog, Record};
use grrm_actors::run_dir::RunDir;
use grrm_actors::srpo::{run_rl, RunOptions};
use grrm_model::hf::load_weights;

fn opts(resume: bool, max: Option<u64>) -> RunOptions {
    RunOptions {
        resume,
        ctx: Some(rl_common::ctx()),
        print: false,
        max_steps_this_call: max,
        ..Default::default()
    }
}

fn records(run: &RunDir, phase: &str) -> Vec<Record> {
    MetricsLog::read(&run.metrics_path())
        .unwrap()
        .records
        .into_iter()
        .filter(|r| r.phase == phase)
        .collect()
}

/// The rl record of `step` without its wall time.
fn step_metrics(run: &RunDir, step: u64) -> std::collections::BTreeMap<String, f64> {
    let mut m = records(run, "rl")
        .into_iter()
        .rfind(|r| r.step == step)
        .unwrap()
        .metrics;
    m.remove("step_seconds");
    m
}

/// (step, reward, hit rate, version) of each eval record, by step.
fn evals(run: &RunDir) -> Vec<(u64, f64, f64, f64)> {
    let mut v: Vec<_> = records(run, "eval")
        .iter()
        .map(|r| {
            (
                r.step,
                r.get("eval_reward_mean").unwrap(),
                r.get("eval_hit_rate").unwrap(),
                r.get("version").unwrap(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

#[test]
fn resume_gives_the_same_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = rl_common::setup(dir.path(), 30);
    cfg.steps = 2;
    cfg.checkpoint_every = 1;
    cfg.rl_eval_every = 1;
    assert_eq!(cfg.system.max_staleness, 0);

    let full = RunDir::create_at(&dir.path().join("full"), "").unwrap();
    let s_full = run_rl(&cfg, &full, opts(false, None)).unwrap();
    assert_eq!(s_full.steps, 2);

    let cut = RunDir::create_at(&dir.path().join("cut"), "").unwrap();
    let s1 = run_rl(&cfg, &cut, opts(false, Some(1))).unwrap();
    assert_eq!(s1.steps, 1);
    let latest = cut.checkpoints().latest().unwrap().unwrap();
    assert_eq!(latest.step, 1);
    // The model folder of a checkpoint is a plain HF folder.
    assert!(latest.path.join("model/config.json").is_file());
    assert!(latest.path.join("model/tokenizer.json").is_file());
    // A kill while step 1's evaluation ran: its record never reached the log.
    let text = std::fs::read_to_string(cut.metrics_path()).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !(l.contains("\"phase\":\"eval\"") && l.contains("\"step\":1,")))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(kept.lines().count() + 1, text.lines().count());
    std::fs::write(cut.metrics_path(), kept).unwrap();

    let s2 = run_rl(&cfg, &cut, opts(true, None)).unwrap();
    assert_eq!(s2.steps, 2);
    assert_eq!(s2.totals, s_full.totals);
    assert_eq!(s2.reward_before, s_full.reward_before);
    assert_eq!(s2.reward_after, s_full.reward_after);

    let (a, b) = (step_metrics(&full, 2), step_metrics(&cut, 2));
    assert!(!a.is_empty());
    assert_eq!(a, b, "step 2 metrics differ after resume");
    assert_eq!(a["staleness_max"], 0.0);

    // Every evaluation (before, after step 1 -- redone by the resume -- and after step 2) is
    // logged once with its step and version, equal to the uninterrupted run's.
    let e_full = evals(&full);
    assert_eq!(
        e_full.iter().map(|e| (e.0, e.3)).collect::<Vec<_>>(),
        [(0, 0.0), (1, 1.0), (2, 2.0)]
    );
    assert_eq!(evals(&cut), e_full);

    let mc = grrm_model::hf::ModelConfig::from_file(cfg.model.join("config.json")).unwrap();
    let w = |run: &RunDir| {
        let c = run.checkpoints().latest().unwrap().unwrap();
        assert_eq!(c.step, 2);
        load_weights(&c.path.join("model"), &mc).unwrap()
    };
    assert_eq!(w(&full), w(&cut), "weights differ after resume");
    let start = load_weights(&cfg.model, &mc).unwrap();
    assert_ne!(w(&full), start, "training changed nothing");

    // The synchronous engine (evaluation inline): the same steps, evaluations and weights.
    let mut ecfg = cfg.clone();
    ecfg.system.actors = false;
    let engine = RunDir::create_at(&dir.path().join("engine"), "").unwrap();
    let s_engine = run_rl(&ecfg, &engine, opts(false, None)).unwrap();
    assert_eq!(s_engine.totals, s_full.totals);
    for step in [1, 2] {
        assert_eq!(step_metrics(&engine, step), step_metrics(&full, step));
    }
    assert_eq!(evals(&engine), e_full);
    assert_eq!(w(&engine), w(&full));
}
