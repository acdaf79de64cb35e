//! The actor system beyond on-policy steps: with `max_staleness = 1` the next step's first
//! round samples while the learner trains (seen in the activity timeline), staleness is logged
//! and every sample is accounted once; held-out evaluation runs in the evaluator actor beside
//! training; every actor's handler runs in a span naming actor, step and version; published
//! weights reach rollouts by copies on the device (nothing read back to the host) and go
//! through the host only to another device.

mod rl_common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use grrm_actors::srpo::pieces::{upload_into, Learner};
use grrm_actors::srpo::run::Trainer;
use grrm_actors::srpo::{Counts, RunContext};
use grrm_actors::system::{ActorTrainer, Shared};
use grrm_model::transformer::{TokenBatch, Transformer};
use grrm_model::GpuContext;
use grrm_rewards::Registry;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// A span's name and fields.
type SpanRecord = (String, BTreeMap<String, String>);

/// Every span opened in this test binary.
#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<SpanRecord>>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        self.0.insert(f.name().to_string(), format!("{v:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Spans {
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        let mut fields = BTreeMap::new();
        attrs.record(&mut Fields(&mut fields));
        let name = attrs.metadata().name().to_string();
        self.0.lock().unwrap().push((name, fields));
    }
}

/// Global, since the actors run on their own threads.
fn capture() -> Spans {
    static SPANS: OnceLock<Spans> = OnceLock::new();
    SPANS
        .get_or_init(|| {
            let s = Spans::default();
            tracing_subscriber::registry().with(s.clone()).init();
            s
        })
        .clone()
}

fn counter(t: &ActorTrainer, k: &str) -> u64 {
    t.shared.counter(k)
}

#[test]
fn rollouts_overlap_the_learner_with_bounded_staleness() {
    let spans = capture();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = rl_common::setup(dir.path(), 30);
    cfg.steps = 3;
    cfg.system.max_staleness = 1;
    cfg.system.rollout_workers = 2;
    let n = cfg.n as u64;
    let ctx = rl_common::ctx();
    let mut t = ActorTrainer::new(RunContext::load(&cfg, &ctx, Registry::new()).unwrap()).unwrap();

    let mut reports = vec![t.step().unwrap()];
    // Version 1's held-out evaluation runs in the evaluator while steps 2 and 3 train.
    assert!(t.start_eval().unwrap().is_none());
    assert_eq!(t.evals_in_flight(), 1);
    reports.push(t.step().unwrap());
    reports.push(t.step().unwrap());
    let evals = t.finished_evals(Some(u64::MAX)).unwrap();
    assert_eq!(evals.len(), 1);
    assert_eq!((evals[0].step, evals[0].version), (1, 1));
    let e = evals[0].report;
    assert!(e.prompts > 0);
    assert_eq!(e.samples, e.prompts * cfg.eval_samples);
    assert_eq!(t.evals_in_flight(), 0);
    for r in &reports {
        assert!(
            r.metrics["optimizer_steps"] > 0.0,
            "step {} did not update",
            r.step
        );
    }

    // Overlap: step k+1's first round was sampled with version k and started before the
    // learner's update of step k ended (the learner's activity names the version it published).
    let acts = t.shared.timeline.activities();
    for k in 0..2u64 {
        let train = acts
            .iter()
            .find(|a| a.actor == "learner" && a.step == k)
            .unwrap();
        let ahead: Vec<_> = acts
            .iter()
            .filter(|a| a.actor == "rollout" && a.step == k + 1 && a.version + 1 == train.version)
            .collect();
        assert!(!ahead.is_empty(), "step {}: no rollout ahead", k + 2);
        assert!(
            ahead.iter().any(|a| a.start < train.end),
            "step {}'s rollouts all started after step {}'s update ended",
            k + 2,
            k + 1
        );
    }
    // The evaluation ran beside later steps' work.
    let ev = acts.iter().find(|a| a.actor == "evaluator").unwrap();
    assert_eq!((ev.step, ev.version), (1, 1));
    assert!(
        acts.iter()
            .any(|a| a.actor != "evaluator" && a.step >= 1 && a.start < ev.end && a.end > ev.start),
        "the evaluation did not overlap training"
    );

    // Staleness: step 1 on-policy; later steps consume one round sampled a version behind.
    assert_eq!(reports[0].metrics["staleness_max"], 0.0);
    assert_eq!(reports[0].metrics["staleness_mean"], 0.0);
    for r in &reports[1..] {
        assert_eq!(r.metrics["staleness_max"], 1.0);
        let ahead = cfg.prompts_per_step as f64 / r.counts.prompts_issued as f64;
        assert_eq!(r.metrics["staleness_mean"], ahead);
    }

    // Every sample accounted for exactly once: per step, in total, and by the actors' counters;
    // the cursor moved over exactly the consumed draws.
    let mut totals = Counts::default();
    for r in &reports {
        r.counts.check(n).unwrap();
        totals.add(&r.counts);
    }
    assert_eq!(t.state().totals, totals);
    assert_eq!(t.state().cursor, totals.prompts_issued);
    assert_eq!(
        counter(&t, "coordinator.prompts_issued"),
        totals.prompts_issued
    );
    assert_eq!(
        counter(&t, "coordinator.responses_generated"),
        totals.responses_generated
    );
    assert_eq!(counter(&t, "reward.handled"), totals.prompts_issued);
    assert_eq!(
        counter(&t, "coordinator.responses_trained"),
        totals.responses_trained
    );
    assert_eq!(counter(&t, "publish.host_bytes"), 0);
    assert!(t.shared.in_flight.is_empty());

    // Each actor's handlers ran in spans naming the actor instance, the step and (where one
    // applies) the policy version.
    let spans = spans.0.lock().unwrap().clone();
    for name in [
        "coordinator",
        "rollout",
        "reward",
        "reference",
        "learner",
        "evaluator",
    ] {
        assert!(
            spans
                .iter()
                .any(|(s, f)| s == name && f.contains_key("actor") && f.contains_key("step")),
            "no {name} span with actor and step"
        );
    }
    let rollout_ids: std::collections::BTreeSet<&String> = spans
        .iter()
        .filter(|(s, f)| s == "rollout" && f.contains_key("version"))
        .map(|(_, f)| &f["actor"])
        .collect();
    assert_eq!(rollout_ids.len(), 2, "both rollout actors worked");
    assert!(spans.iter().any(|(s, f)| s == "evaluator"
        && f.get("step").map(String::as_str) == Some("1")
        && f.get("version").map(String::as_str) == Some("1")));
}

fn logits(m: &Transformer) -> Vec<f32> {
    let rows: [&[u32]; 2] = [&[1, 5, 9, 2], &[7, 3]];
    m.logits(&TokenBatch::right_padded(&rows, 0)).unwrap()
}

#[test]
fn publication_copies_on_the_device_and_uses_the_host_only_across_devices() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = rl_common::setup(dir.path(), 5);
    let ctx = rl_common::ctx();
    let run = RunContext::load(&cfg, &ctx, Registry::new()).unwrap();
    let learner = Learner::new(&ctx, &cfg, &run.base).unwrap();
    let base = logits(&learner.model);
    let mut w = run.base.weights.clone();
    let train = |w: &mut grrm_model::hf::Weights, by: f32| {
        for t in w.tensors_mut() {
            for (i, x) in t.data.iter_mut().enumerate() {
                *x += by * ((i % 7) as f32 - 3.0);
            }
        }
    };
    let shared = Shared::new(run);
    let bytes: u64 = learner
        .model
        .params
        .tensors()
        .iter()
        .map(|t| t.size_bytes())
        .sum();

    // Version 1: the published model's logits are the learner's, bit for bit; nothing was
    // read back to the host.
    train(&mut w, 1e-3);
    upload_into(&learner.model.params, &w).unwrap();
    shared.publish(1, &learner.model.params).unwrap();
    let v1 = shared.published().unwrap();
    let l1 = logits(&learner.model);
    assert_ne!(l1, base);
    assert!(v1.on_device(&ctx));
    assert_eq!(logits(&v1.model), l1);
    assert_eq!(shared.counter("publish.gpu_bytes"), bytes);
    assert_eq!(shared.counter("publish.host_bytes"), 0);

    // Version 2 while version 1 is held: version 1 stays intact.
    train(&mut w, 2e-3);
    upload_into(&learner.model.params, &w).unwrap();
    shared.publish(2, &learner.model.params).unwrap();
    let l2 = logits(&learner.model);
    let v2 = shared.published().unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(logits(&v2.model), l2);
    assert_eq!(logits(&v1.model), l1, "a held version changed");
    // Version 3 reuses version 1's buffers once nobody holds it.
    let v1_buffer = v1.model.params.embed_tokens.clone();
    drop(v1);
    train(&mut w, -1e-3);
    upload_into(&learner.model.params, &w).unwrap();
    shared.publish(3, &learner.model.params).unwrap();
    let v3 = shared.published().unwrap();
    assert!(v3.model.params.embed_tokens.buffer() == v1_buffer.buffer());
    assert_eq!(logits(&v3.model), logits(&learner.model));
    assert_eq!(logits(&v2.model), l2);
    assert_eq!(shared.counter("publish.host_bytes"), 0);

    // A rollout on another device gets the version through the host, once per version.
    let other = GpuContext::from_env().unwrap();
    assert!(!v3.on_device(&other));
    let far = shared.run.model_copy_on(&other).unwrap();
    shared.pull_through_host(&v3, &far).unwrap();
    assert_eq!(logits(&far), logits(&learner.model));
    assert_eq!(shared.counter("publish.host_bytes"), bytes);
    let far2 = shared.run.model_copy_on(&other).unwrap();
    shared.pull_through_host(&v3, &far2).unwrap();
    assert_eq!(shared.counter("publish.host_bytes"), bytes, "fetched twice");
    assert_eq!(logits(&far2), logits(&learner.model));
}

#[test]
fn rollouts_on_another_device_get_weights_through_the_host_with_the_same_steps() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = rl_common::setup(dir.path(), 30);
    let ctx = rl_common::ctx();
    let two_steps = |cfg: &grrm_actors::srpo::RlConfig| {
        let mut t =
            ActorTrainer::new(RunContext::load(cfg, &ctx, Registry::new()).unwrap()).unwrap();
        let mut m = Vec::new();
        for _ in 0..2 {
            let mut r = t.step().unwrap().metrics;
            r.remove("step_seconds");
            m.push(r);
        }
        (m, counter(&t, "publish.host_bytes"), t)
    };
    let (same, same_bytes, _) = two_steps(&cfg);
    let mut far_cfg = cfg.clone();
    // The same adapter opened again is another device: the host path.
    far_cfg.system.rollout_adapters = vec![ctx.info().name.clone()];
    let (far, far_bytes, t) = two_steps(&far_cfg);
    assert_eq!(same_bytes, 0);
    assert!(far_bytes > 0);
    // Versions 0 and 1 each crossed once.
    assert_eq!(counter(&t, "publish.host_pulls"), 2);
    assert_eq!(far, same);
    drop(t);

    // Two more devices, one pool of rollout actors each: jobs spread over both, each version
    // is read back once (same bytes as one device) and uploaded once per device that used it.
    let mut two_cfg = far_cfg.clone();
    two_cfg.system.rollout_adapters = vec![ctx.info().name.clone(); 2];
    let (two, two_bytes, t) = two_steps(&two_cfg);
    assert_eq!(two, same);
    assert_eq!(two_bytes, far_bytes);
    let (pool0, pool1) = (
        counter(&t, "rollout.pool0.jobs"),
        counter(&t, "rollout.pool1.jobs"),
    );
    assert!(pool0 > 0 && pool1 > 0, "jobs per pool: {pool0} and {pool1}");
    let pulls = counter(&t, "publish.host_pulls");
    assert!(
        (3..=4).contains(&pulls),
        "{pulls} uploads for 2 versions on 2 devices"
    );
}
