//! One SRPO step end to end on a tiny model: the sample accounting adds up, the metrics are
//! there and finite, the actor system's step equals the synchronous engine's step, and config
//! errors name the key.

mod rl_common;

use grrm_actors::config::{load_config, ConfigSource};
use grrm_actors::srpo::run::Trainer;
use grrm_actors::srpo::{RlConfig, RlEngine, RunContext};
use grrm_actors::system::ActorTrainer;
use grrm_rewards::Registry;

fn without_time(m: &std::collections::BTreeMap<String, f64>) -> Vec<(String, f64)> {
    m.iter()
        .filter(|(k, _)| k.as_str() != "step_seconds")
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

#[test]
fn step_accounts_for_every_sample_and_actors_match_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = rl_common::setup(dir.path(), 30);
    cfg.system.actors = false;
    let ctx = rl_common::ctx();
    let mut engine = RlEngine::new(RunContext::load(&cfg, &ctx, Registry::new()).unwrap()).unwrap();
    eprintln!("prompt tokens: {}", engine.run.pools.rl[0].ids.len());
    let r = engine.step().unwrap();
    eprintln!("engine step: {:?} in {:.2}s", r.counts, r.seconds);
    let c = r.counts;
    c.check(cfg.n as u64).unwrap();
    assert!(c.prompts_issued >= cfg.prompts_per_step as u64 || c.groups_filtered > 0);
    assert_eq!(c.responses_generated, c.prompts_issued * cfg.n as u64);
    assert_eq!(
        c.responses_trained + c.responses_filtered + c.responses_reward_dropped,
        c.responses_generated
    );
    assert!(c.groups_trained > 0, "no informative group: {c:?}");
    for k in [
        "reward_mean",
        "reward_max",
        "hit_rate",
        "kl",
        "clip_frac",
        "zero_var_frac",
        "entropy",
        "response_length",
        "loss",
        "grad_norm",
        "step_seconds",
    ] {
        let v = r.metrics[k];
        assert!(v.is_finite(), "{k} = {v}");
    }
    assert!(r.metrics["response_length"] >= 1.0);
    assert!(r.metrics["grad_norm"] > 0.0);
    assert_eq!(engine.state.step, 1);
    assert_eq!(engine.state.version, 1);
    assert_eq!(engine.state.cursor, c.prompts_issued);

    // The same step through the actors (two rollout actors) gives the same numbers.
    let mut acfg = cfg.clone();
    acfg.system.actors = true;
    acfg.system.rollout_workers = 2;
    acfg.system.queue_capacity = 3;
    let mut actors =
        ActorTrainer::new(RunContext::load(&acfg, &ctx, Registry::new()).unwrap()).unwrap();
    let a = actors.step().unwrap();
    eprintln!(
        "actor step in {:.2}s; counters {:?}",
        a.seconds,
        actors.counters()
    );
    assert_eq!(a.counts, r.counts);
    assert_eq!(without_time(&a.metrics), without_time(&r.metrics));
    let counter = |actors: &ActorTrainer, k: &str| {
        actors
            .counters()
            .iter()
            .find(|(n, _)| n == k)
            .map_or(0, |x| x.1)
    };
    // Rollout jobs hold up to `rollout_batch` prompts each; every round's groups are covered.
    let jobs = counter(&actors, "rollout.handled");
    assert!(
        jobs >= c.prompts_issued.div_ceil(acfg.rollout_batch as u64),
        "{jobs} jobs"
    );
    assert!(jobs <= c.prompts_issued, "{jobs} jobs");
    assert_eq!(counter(&actors, "reward.handled"), c.prompts_issued);
    assert_eq!(
        counter(&actors, "coordinator.responses_generated"),
        c.responses_generated
    );
    assert_eq!(
        counter(&actors, "coordinator.responses_trained"),
        c.responses_trained
    );
    // The starting weights and step 1's.
    assert_eq!(counter(&actors, "learner.published"), 2);
    assert!(actors.shared.in_flight.is_empty());
    // Second step: rollouts pick up version 1; both paths still agree.
    let r2 = engine.step().unwrap();
    let a2 = actors.step().unwrap();
    assert_eq!(without_time(&a2.metrics), without_time(&r2.metrics));
    assert_eq!(a2.metrics["staleness_max"], 0.0);
    assert_eq!(a2.metrics["staleness_mean"], 0.0);
    // Version 1 reached the rollouts by copies on the device, nothing through the host.
    assert!(counter(&actors, "rollout.versions_adopted") >= 2);
    assert_eq!(counter(&actors, "learner.published"), 3);
    assert!(counter(&actors, "publish.gpu_bytes") > 0);
    assert_eq!(counter(&actors, "publish.host_bytes"), 0);
}

#[test]
fn config_errors_name_the_key() {
    let load = |text: &str, sets: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rl.toml");
        std::fs::write(&p, text).unwrap();
        load_config::<RlConfig, _>(&ConfigSource::File(p), sets)
    };
    let base = "model = \"m\"\ndata = \"d\"\n";
    let e = load(&format!("{base}[srpo]\neps_lo = 0.1\n"), &[]).unwrap_err();
    assert!(e.to_string().contains("srpo.eps_lo"), "{e}");
    let e = load(base, &["system.rollout_worker=2"]).unwrap_err();
    assert!(e.to_string().contains("system.rollout_worker"), "{e}");
    let e = load(&format!("{base}n = \"ten\"\n"), &[]).unwrap_err();
    assert!(e.to_string().contains("`n`"), "{e}");
    let e = load(
        &format!("{base}[[rewards.terms]]\nname = \"semantic_id\"\nwieght = 1.0\n"),
        &[],
    )
    .unwrap_err();
    assert!(e.to_string().contains("wieght"), "{e}");

    let cfg: RlConfig = load(base, &["n=1"]).unwrap();
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("`n`"), "{e}");
    let cfg: RlConfig = load(base, &["srpo.eps_low=2.0"]).unwrap();
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("`srpo.eps_low`"), "{e}");
    let cfg: RlConfig = load(base, &["system.queue_capacity=0"]).unwrap();
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("`system.queue_capacity`"), "{e}");
    let cfg: RlConfig = load(
        &format!("{base}[[system.faults]]\nactor = \"learner\"\non_message = 1\n"),
        &[],
    )
    .unwrap();
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("system.faults[0].actor"), "{e}");
    // Remote rollouts: unknown keys, bad run names, and local adapters beside remote workers.
    let e = load(base, &["system.remote.ack_wait=3"]).unwrap_err();
    assert!(e.to_string().contains("system.remote.ack_wait"), "{e}");
    let cfg: RlConfig = load(base, &[r#"system.remote.run="a.b""#]).unwrap();
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("`system.remote.run`"), "{e}");
    let cfg: RlConfig = load(
        base,
        &[
            r#"system.remote.url="nats://h:4222""#,
            r#"system.rollout_adapters=["0"]"#,
        ],
    )
    .unwrap();
    let e = cfg.validate().unwrap_err().to_string();
    assert!(e.contains("`system.rollout_adapters`"), "{e}");
    let cfg: RlConfig = load(base, &[r#"system.remote.url="nats://h:4222""#]).unwrap();
    let remote = cfg.system.remote.as_ref().unwrap();
    assert_eq!((remote.run.as_str(), remote.max_in_flight), ("grrm", 64));
    cfg.validate().unwrap();

    // Defaults are SPEC.md's and render back as TOML that loads again.
    let cfg: RlConfig = load(base, &[]).unwrap();
    assert_eq!((cfg.n, cfg.temperature, cfg.top_p), (10, 1.0, 1.0));
    assert_eq!((cfg.lr, cfg.lr_warmup_steps), (2e-6, 10));
    assert_eq!((cfg.weight_decay, cfg.grad_clip), (0.1, 1.0));
    assert_eq!((cfg.prompts_per_step, cfg.mini_batch_prompts), (256, 64));
    assert_eq!(
        (cfg.max_prompt_tokens, cfg.max_response_tokens),
        (768, 1560)
    );
    assert_eq!(cfg.srpo.kl_coef, 0.001);
    let text = grrm_actors::config::render_config(&cfg).unwrap();
    let again: RlConfig = load(&text, &[]).unwrap();
    assert_eq!(again, cfg);
    let rc = cfg.rewards_config(4);
    assert_eq!(rc.terms[0].name, "semantic_id");
    assert_eq!(rc.terms[0].options["mode"], "reasoning");
}
