//! Supervision: rollout, reward, reference and evaluator actors that panic (and a reward
//! plug-in that fails) are restarted and their work re-queued; the step's numbers and every count equal
//! those of a run without faults (nothing lost, nothing counted twice).

mod rl_common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use grrm_actors::srpo::run::Trainer;
use grrm_actors::srpo::{FaultConfig, RunContext};
use grrm_actors::system::ActorTrainer;
use grrm_rewards::{
    FormatOptions, Registry, Reward, RewardError, RewardErrorKind, RewardInput, RewardOutput,
    SemanticIdReward,
};

/// The semantic-ID reward behind a "plug-in" that fails on its k-th call overall.
struct Flaky {
    inner: SemanticIdReward,
    calls: Arc<AtomicU64>,
    fail_on: u64,
}

impl Reward for Flaky {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn score(&self, input: &RewardInput) -> Result<RewardOutput, RewardError> {
        let k = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if k == self.fail_on {
            return Err(input.error(
                self.name(),
                RewardErrorKind::Plugin {
                    message: "plug-in process exited".into(),
                },
            ));
        }
        self.inner.score(input)
    }
}

fn registry(calls: Arc<AtomicU64>, fail_on: u64) -> Registry {
    let mut r = Registry::new();
    r.register_with("flaky_semantic_id", move |label, o: FormatOptions| {
        Ok(Flaky {
            inner: SemanticIdReward::new(label, o),
            calls: calls.clone(),
            fail_on,
        })
    })
    .unwrap();
    r
}

#[test]
fn faults_are_restarted_and_requeued_with_exact_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = rl_common::setup(dir.path(), 30);
    cfg.system.rollout_workers = 2;
    cfg.system.queue_capacity = 2;
    cfg.rewards = Some(grrm_rewards::RewardsConfig {
        on_error: grrm_rewards::OnError::Stop,
        threads: 1,
        terms: vec![grrm_rewards::TermConfig::new(
            "flaky_semantic_id",
            1.0,
            serde_json::json!({"mode": "direct", "levels": 2}),
        )],
    });
    let ctx = rl_common::ctx();

    // Reference run: no faults (the flaky reward never reaches its failing call).
    let clean_calls = Arc::new(AtomicU64::new(0));
    let mut clean = ActorTrainer::new(
        RunContext::load(&cfg, &ctx, registry(clean_calls.clone(), u64::MAX)).unwrap(),
    )
    .unwrap();
    let c1 = clean.step().unwrap();
    let c2 = clean.step().unwrap();

    let mut fcfg = cfg.clone();
    fcfg.system.faults = vec![
        FaultConfig {
            actor: "rollout".into(),
            on_message: 2,
        },
        FaultConfig {
            actor: "rollout".into(),
            on_message: 4,
        },
        FaultConfig {
            actor: "reward".into(),
            on_message: 3,
        },
        FaultConfig {
            actor: "reference".into(),
            on_message: 1,
        },
        FaultConfig {
            actor: "evaluator".into(),
            on_message: 1,
        },
    ];
    let calls = Arc::new(AtomicU64::new(0));
    // The plug-in dies on the 20th response it scores.
    let mut faulty =
        ActorTrainer::new(RunContext::load(&fcfg, &ctx, registry(calls.clone(), 20)).unwrap())
            .unwrap();
    let f1 = faulty.step().unwrap();
    let f2 = faulty.step().unwrap();
    let counters = faulty.counters();
    eprintln!("counters with faults: {counters:?}");
    let get = |k: &str| counters.iter().find(|(n, _)| n == k).map_or(0, |x| x.1);

    let strip = |m: &std::collections::BTreeMap<String, f64>| {
        let mut m = m.clone();
        m.remove("step_seconds");
        m
    };
    assert_eq!(f1.counts, c1.counts);
    assert_eq!(f2.counts, c2.counts);
    assert_eq!(strip(&f1.metrics), strip(&c1.metrics));
    assert_eq!(strip(&f2.metrics), strip(&c2.metrics));

    let issued = c1.counts.prompts_issued + c2.counts.prompts_issued;
    assert_eq!(get("rollout.panics"), 2);
    assert_eq!(get("rollout.requeued"), 2);
    let clean_get = |k: &str| {
        clean
            .counters()
            .iter()
            .find(|(n, _)| n == k)
            .map_or(0, |x| x.1)
    };
    assert_eq!(
        get("rollout.handled"),
        clean_get("rollout.handled"),
        "each rollout job done once"
    );
    assert_eq!(
        get("rollout.starts"),
        2 + 2,
        "two workers plus two restarts"
    );
    assert_eq!(get("reward.panics"), 1);
    assert_eq!(get("reward.plugin_failures"), 1);
    assert_eq!(get("reward.requeued"), 2);
    assert_eq!(get("reward.handled"), issued, "each group scored once");
    assert_eq!(get("reward.starts"), 1 + 2);
    assert_eq!(get("reference.panics"), 1);
    assert_eq!(get("reference.requeued"), 1);
    assert_eq!(get("coordinator.prompts_issued"), issued);
    assert_eq!(
        get("coordinator.responses_generated"),
        issued * cfg.n as u64
    );
    assert_eq!(
        get("coordinator.responses_trained"),
        c1.counts.responses_trained + c2.counts.responses_trained
    );
    assert!(faulty.shared.in_flight.is_empty());

    // The evaluator panics on its first evaluation: restarted, the evaluation sent again, the
    // same result as without the fault.
    assert_eq!(faulty.evaluate().unwrap(), clean.evaluate().unwrap());
    let get = |k: &str| faulty.shared.counter(k);
    assert_eq!(get("evaluator.panics"), 1);
    assert_eq!(get("evaluator.requeued"), 1);
    assert_eq!(get("evaluator.starts"), 2);
    assert_eq!(get("evaluator.handled"), 1);
}
