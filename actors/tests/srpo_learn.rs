//! SRPO raises the mean reward on held-out prompts: a tiny model that answers in format with
//! random item IDs learns, through `run_rl` and the actor system, the item every user buys
//! next (a rule the validation prompts share).

mod rl_common;

use grrm_actors::run_dir::RunDir;
use grrm_actors::srpo::{run_rl, RunOptions};

#[test]
fn srpo_raises_the_held_out_mean_reward() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = rl_common::setup(dir.path(), 30);
    cfg.steps = 6;
    cfg.checkpoint_every = 0;
    cfg.keep_checkpoints = 1;
    cfg.prompts_per_step = 6;
    cfg.mini_batch_prompts = 3;
    cfg.n = 8;
    cfg.rollout_batch = 6;
    let run = RunDir::create_at(&dir.path().join("run"), "").unwrap();
    let s = run_rl(
        &cfg,
        &run,
        RunOptions {
            ctx: Some(rl_common::ctx()),
            ..Default::default()
        },
    )
    .unwrap();
    eprintln!("{s:?}");
    assert_eq!(s.steps, cfg.steps);
    assert!(
        s.reward_after > s.reward_before + 0.1,
        "held-out reward {:.3} -> {:.3}",
        s.reward_before,
        s.reward_after
    );
    s.totals.check(cfg.n as u64).unwrap();
}
