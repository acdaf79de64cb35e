//! Resume: a run stopped after a checkpoint and resumed gives exactly the next step of the
//! uninterrupted run (metrics and weights), through `run_rl` and the run folder.

mod rl_common;

use grrm_actors::metrics_log::MetricsLog;
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

#[test]
fn resume_gives_the_same_next_step() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = rl_common::setup(dir.path(), 30);
    cfg.steps = 2;
    cfg.checkpoint_every = 1;

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
    let s2 = run_rl(&cfg, &cut, opts(true, None)).unwrap();
    assert_eq!(s2.steps, 2);
    assert_eq!(s2.totals, s_full.totals);
    assert_eq!(s2.reward_before, s_full.reward_before);
    assert_eq!(s2.reward_after, s_full.reward_after);

    let step2 = |run: &RunDir| {
        let log = MetricsLog::read(&run.metrics_path()).unwrap();
        let r = log
            .records
            .iter()
            .rfind(|r| r.phase == "rl" && r.step == 2)
            .unwrap()
            .clone();
        let mut m = r.metrics;
        m.remove("step_seconds");
        m
    };
    let (a, b) = (step2(&full), step2(&cut));
    assert!(!a.is_empty());
    assert_eq!(a, b, "step 2 metrics differ after resume");

    let mc = grrm_model::hf::ModelConfig::from_file(cfg.model.join("config.json")).unwrap();
    let w = |run: &RunDir| {
        let c = run.checkpoints().latest().unwrap().unwrap();
        assert_eq!(c.step, 2);
        load_weights(&c.path.join("model"), &mc).unwrap()
    };
    assert_eq!(w(&full), w(&cut), "weights differ after resume");
    let start = load_weights(&cfg.model, &mc).unwrap();
    assert_ne!(w(&full), start, "training changed nothing");
}
