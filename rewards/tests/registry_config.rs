//! Config parsing, the registry, weighted sums, output checks and the batch error policy.

mod common;

#[allow(dead_code)]
#[path = "../examples/length_penalized.rs"]
mod length_penalized;

use std::sync::Arc;

use common::*;
use grrm_rewards::*;
use serde_json::json;

fn config(text: &str) -> Result<RewardsConfig, ConfigError> {
    RewardsConfig::from_toml_str(text)
}

fn build(text: &str) -> Result<RewardSet, ConfigError> {
    Registry::new().build(&config(text)?)
}

#[test]
fn toml_config_round_trip() {
    let cfg = config(
        r#"
        on_error = "drop"
        threads = 3
        [[terms]]
        name = "semantic_id"
        options = { mode = "direct", levels = 4, strict_levels = true }
        [[terms]]
        name = "format_only"
        label = "fmt"
        weight = 0.25
        range = [0.0, 1.0]
        "#,
    )
    .unwrap();
    assert_eq!(
        (cfg.on_error, cfg.threads, cfg.terms.len()),
        (OnError::Drop, 3, 2)
    );
    assert_eq!(cfg.terms[0].weight, 1.0);
    assert_eq!(cfg.terms[1].label(), "fmt");
    assert_eq!(cfg.terms[0].options["strict_levels"], json!(true));
    assert_eq!(
        config("[[terms]]\nname = \"exact_match\"")
            .unwrap()
            .on_error,
        OnError::Stop
    );
}

#[test]
fn config_errors_name_the_field() {
    let cases = [
        (
            "on_eror = \"drop\"\n[[terms]]\nname = \"format_only\"",
            "on_eror",
        ),
        ("[[terms]]\nname = \"format_only\"\nwieght = 2.0", "wieght"),
        (
            "on_error = \"ignore\"\n[[terms]]\nname = \"format_only\"",
            "ignore",
        ),
        (
            "[[terms]]\nname = \"format_only\"\nrange = [1.0, 0.0]",
            "range",
        ),
        ("[[terms]]\nname = \"format_only\"\nweight = nan", "weight"),
        ("terms = []", "at least one term"),
        ("threads = 0\n[[terms]]\nname = \"format_only\"", "threads"),
        (
            "[[terms]]\nname = \"format_only\"\n[[terms]]\nname = \"format_only\"",
            "label",
        ),
    ];
    for (text, needle) in cases {
        let e = config(text).unwrap_err().to_string();
        assert!(e.contains(needle), "{text:?} -> {e}");
    }
    // Options are checked by the reward's factory, with the reward's label in the message.
    let e = build(
        "[[terms]]\nname = \"semantic_id\"\nlabel = \"sid\"\noptions = { mdoe = \"direct\" }",
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("sid") && e.contains("mdoe"), "{e}");
    let e = build("[[terms]]\nname = \"semantic_id\"\noptions = { mode = \"chatty\" }")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("chatty"), "{e}");
    let e = build("[[terms]]\nname = \"process\"\noptions = { args = [] }")
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("program"), "{e}");
}

#[test]
fn unknown_reward_name_lists_the_registered_ones() {
    let e = build("[[terms]]\nname = \"semantic_idd\"").err().unwrap();
    assert!(matches!(&e, ConfigError::UnknownReward { name, .. } if name == "semantic_idd"));
    let msg = e.to_string();
    for known in [
        "semantic_id",
        "exact_match",
        "format_only",
        "process",
        "http",
    ] {
        assert!(msg.contains(known), "{msg}");
    }
    assert!(Registry::empty()
        .build(&config("[[terms]]\nname = \"exact_match\"").unwrap())
        .is_err());
}

#[test]
fn weighted_combination_sums_and_keeps_every_component() {
    let set = build(
        r#"
        [[terms]]
        name = "semantic_id"
        [[terms]]
        name = "exact_match"
        weight = 2.0
        [[terms]]
        name = "format_only"
        label = "fmt"
        weight = -0.5
        "#,
    )
    .unwrap();
    assert_eq!(set.reward.range(), Some((-0.5, 3.0)));
    let close = input("s", "p", &reasoning(&with_prefix(&T4, 2).concat()), &T4);
    let out = set.reward.score(&close).unwrap();
    let m2 = 0.5f64.sqrt();
    assert!(
        (out.score - (m2 + 0.0 - 0.5)).abs() < 1e-12,
        "{}",
        out.score
    );
    assert_eq!(out.components["semantic_id"], m2);
    assert_eq!(out.components["semantic_id/prefix_len"], 2.0);
    assert_eq!(out.components["exact_match"], 0.0);
    assert_eq!(out.components["fmt"], 1.0);
    assert_eq!(out.components["fmt/format"], 1.0);
    let exact = input("s", "p", &reasoning(&T4.concat()), &T4);
    assert_eq!(set.reward.score(&exact).unwrap().score, 1.0 + 2.0 - 0.5);
}

#[test]
fn configured_range_is_enforced() {
    let set =
        build("[[terms]]\nname = \"semantic_id\"\nlabel = \"capped\"\nrange = [0.0, 0.9]").unwrap();
    let exact = input("u3/r7", "p", &reasoning(&T4.concat()), &T4);
    let e = set.reward.score(&exact).unwrap_err();
    assert_eq!(
        (e.reward.as_str(), e.sample_id.as_str()),
        ("capped", "u3/r7")
    );
    assert_eq!(
        e.kind,
        RewardErrorKind::OutOfRange {
            score: 1.0,
            min: 0.0,
            max: 0.9
        }
    );
}

#[test]
fn custom_rust_reward_from_the_example() {
    let mut registry = Registry::new();
    length_penalized::register(&mut registry).unwrap();
    assert!(matches!(
        length_penalized::register(&mut registry),
        Err(ConfigError::DuplicateName(n)) if n == "length_penalized"
    ));
    let set = registry
        .build(&config(length_penalized::CONFIG).unwrap())
        .unwrap();
    let mut short = input("a", "p", &T4.concat(), &T4);
    short.token_ids = vec![0; 5];
    let mut long = short.clone();
    long.token_ids = vec![0; 12]; // 4 over budget 8 at 0.05 each: factor 0.8
    let s = set.reward.score(&short).unwrap();
    let l = set.reward.score(&long).unwrap();
    assert_eq!(s.score, 1.0 + 0.1);
    assert!((l.score - (0.8 + 0.1)).abs() < 1e-12, "{}", l.score);
    assert!((l.components["length_penalized/length_factor"] - 0.8).abs() < 1e-12);
    assert_eq!(l.components["length_penalized/exact"], 1.0);
    // Its own option checks and unknown keys surface as config errors.
    let bad =
        length_penalized::CONFIG.replace("penalty_per_token = 0.05", "penalty_per_token = -1.0");
    let e = registry
        .build(&config(&bad).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("penalty_per_token"), "{e}");
    let bad = length_penalized::CONFIG.replace("budget_tokens", "budget");
    let e = registry
        .build(&config(&bad).unwrap())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("budget"), "{e}");
}

/// A Rust reward that misbehaves on purpose, by sample id.
struct Flaky;

impl Reward for Flaky {
    fn name(&self) -> &str {
        "flaky"
    }

    fn score(&self, input: &RewardInput) -> Result<RewardOutput, RewardError> {
        let id = &input.meta.sample_id;
        if id.starts_with("nan") {
            return Ok(RewardOutput::new(f64::NAN));
        }
        if id.starts_with("inf") {
            return Ok(RewardOutput::new(f64::INFINITY));
        }
        if id.starts_with("fail") {
            return Err(input.error(self.name(), RewardErrorKind::Custom("no luck".into())));
        }
        Ok(RewardOutput::new(input.response.len() as f64))
    }
}

fn flaky_set(on_error: &str, threads: usize) -> RewardSet {
    let mut registry = Registry::new();
    registry
        .register("flaky", |_, _| Ok(Arc::new(Flaky) as Arc<dyn Reward>))
        .unwrap();
    let text = format!(
        "on_error = \"{on_error}\"\nthreads = {threads}\n[[terms]]\nname = \"flaky\"\nweight = 2.0"
    );
    registry.build(&config(&text).unwrap()).unwrap()
}

fn flaky_batch() -> Vec<RewardInput> {
    ["ok0", "nan1", "ok2", "fail3", "inf4", "ok5", "ok6"]
        .iter()
        .enumerate()
        .map(|(i, id)| input(id, "p", &"z".repeat(i), &T4))
        .collect()
}

#[test]
fn drop_policy_keeps_the_good_samples_and_lists_the_bad_ones() {
    for threads in [1, 3] {
        let out = flaky_set("drop", threads)
            .score_batch(&flaky_batch())
            .unwrap();
        assert_eq!(
            out.scores(),
            vec![
                Some(0.0),
                None,
                Some(4.0),
                None,
                None,
                Some(10.0),
                Some(12.0)
            ]
        );
        let reasons: Vec<_> = out
            .dropped
            .iter()
            .map(|d| {
                (
                    d.index,
                    d.error.sample_id.as_str(),
                    d.error.reward.as_str(),
                    d.error.kind.clone(),
                )
            })
            .collect();
        assert_eq!(reasons.len(), 3);
        assert!(
            matches!(&reasons[0], (1, "nan1", "flaky", RewardErrorKind::NonFiniteScore { value }) if value.is_nan())
        );
        assert_eq!(
            reasons[1],
            (
                3,
                "fail3",
                "flaky",
                RewardErrorKind::Custom("no luck".into())
            )
        );
        assert_eq!(
            reasons[2],
            (
                4,
                "inf4",
                "flaky",
                RewardErrorKind::NonFiniteScore {
                    value: f64::INFINITY
                }
            )
        );
    }
}

#[test]
fn stop_policy_fails_the_batch_with_the_first_error() {
    let e = flaky_set("stop", 1)
        .score_batch(&flaky_batch())
        .unwrap_err();
    assert_eq!((e.sample_id.as_str(), e.reward.as_str()), ("nan1", "flaky"));
    assert!(e
        .to_string()
        .contains("reward `flaky` failed on sample `nan1`: score is not finite"));
    // Any failing sample stops a parallel batch; with good inputs it completes.
    assert!(flaky_set("stop", 3).score_batch(&flaky_batch()).is_err());
    let good: Vec<_> = flaky_batch()
        .into_iter()
        .filter(|i| i.meta.sample_id.starts_with("ok"))
        .collect();
    let out = flaky_set("stop", 3).score_batch(&good).unwrap();
    assert_eq!(
        out.scores(),
        vec![Some(0.0), Some(4.0), Some(10.0), Some(12.0)]
    );
    assert!(score_batch(&Flaky, &[], OnError::Stop, 4)
        .unwrap()
        .outputs
        .is_empty());
}
