//! The JSON-lines plug-in: the Python example, and a fixture that dies, hangs and lies.

mod common;

use std::time::{Duration, Instant};

use common::*;
use grrm_rewards::*;
use serde_json::json;

fn fixture(timeout_ms: u64, state: &std::path::Path) -> Option<ProcessReward> {
    let py = python3()?;
    let mut opts = ProcessOptions::new(
        py,
        vec![
            manifest_path("tests/fixtures/faulty_plugin.py"),
            "--state".into(),
            state.display().to_string(),
        ],
    );
    opts.timeout_ms = timeout_ms;
    Some(ProcessReward::new("faulty", opts).unwrap())
}

fn pid(o: &RewardOutput) -> f64 {
    o.components["pid"]
}

#[test]
fn process_dying_mid_run_is_restarted_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let Some(r) = fixture(10_000, dir.path()) else {
        return;
    };
    let inputs: Vec<_> = (0..8)
        .map(|i| {
            let text = if i == 3 {
                "DIE_ONCE here".to_string()
            } else {
                "x".repeat(i + 1)
            };
            input(&format!("u{i}/r0"), "p", &text, &T4)
        })
        .collect();
    let scores = score_batch(&r, &inputs, OnError::Stop, 1).unwrap();
    assert!(scores.dropped.is_empty());
    let outs: Vec<_> = scores.outputs.iter().map(|o| o.clone().unwrap()).collect();
    for (o, i) in outs.iter().zip(&inputs) {
        assert_eq!(
            o.score,
            i.response.len() as f64 / 100.0,
            "{}",
            i.meta.sample_id
        );
    }
    assert_eq!((r.restarts(), r.spawns()), (1, 2));
    // Samples before the crash were served by the first process, the retried one and the
    // rest by its replacement.
    assert!(outs[..3].iter().all(|o| pid(o) == pid(&outs[0])));
    assert!(outs[3..].iter().all(|o| pid(o) == pid(&outs[3])));
    assert_ne!(pid(&outs[0]), pid(&outs[3]));
}

#[test]
fn process_dying_twice_fails_the_sample_with_its_stderr_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(r) = fixture(10_000, dir.path()) else {
        return;
    };
    let e = r
        .score(&input("u5/r1", "p", "DIE_ALWAYS", &T4))
        .unwrap_err();
    assert_eq!(
        (e.reward.as_str(), e.sample_id.as_str()),
        ("faulty", "u5/r1")
    );
    let RewardErrorKind::ProcessDied {
        detail,
        stderr_tail,
    } = &e.kind
    else {
        panic!("{e}")
    };
    assert!(
        stderr_tail.contains("fixture: fatal error on u5/r1"),
        "{stderr_tail}"
    );
    assert!(detail.contains("exit status: 4"), "{detail}");
    assert!(e.to_string().contains("fatal error on u5/r1"));
    assert_eq!(r.restarts(), 1); // for the retry; the dead replacement is replaced lazily
    assert_eq!(r.score(&input("u6", "p", "abcd", &T4)).unwrap().score, 0.04);
    assert_eq!(r.restarts(), 2);
}

#[test]
fn timeout_kills_the_process_and_the_next_sample_gets_a_fresh_one() {
    let dir = tempfile::tempdir().unwrap();
    let Some(r) = fixture(400, dir.path()) else {
        return;
    };
    let first = r.score(&input("a", "p", "ab", &T4)).unwrap();
    let t0 = Instant::now();
    let e = r.score(&input("slow/1", "p", "SLEEP", &T4)).unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(e.sample_id, "slow/1");
    assert_eq!(
        e.kind,
        RewardErrorKind::Timeout {
            timeout: Duration::from_millis(400)
        }
    );
    let next = r.score(&input("b", "p", "abc", &T4)).unwrap();
    assert_eq!(next.score, 0.03);
    assert_ne!(pid(&first), pid(&next));
    assert_eq!(r.restarts(), 1);
}

#[test]
fn malformed_nan_out_of_range_and_plugin_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(r) = fixture(2_000, dir.path()) else {
        return;
    };
    let kind = |text: &str| r.score(&input("s1", "p", text, &T4)).unwrap_err().kind;
    assert!(matches!(
        kind("GARBAGE"),
        RewardErrorKind::MalformedReply { .. }
    ));
    assert!(matches!(kind("NAN"), RewardErrorKind::NonFiniteScore { value } if value.is_nan()));
    assert!(matches!(
        kind("INF_COMPONENT"),
        RewardErrorKind::NonFiniteComponent { component, value } if component == "x" && value.is_infinite()
    ));
    assert_eq!(
        kind("ERROR"),
        RewardErrorKind::Plugin {
            message: "cannot score s1".into()
        }
    );
    // The process served all of these; none of them needed a restart.
    assert_eq!(r.restarts(), 0);
    // Range is checked by the wrapper built from config (see the registry tests) or here:
    let checked = Checked::new(std::sync::Arc::new(r), Some((0.0, 1.0)));
    let e = checked
        .score(&input("s2", "p", "OUT_OF_RANGE", &T4))
        .unwrap_err();
    assert_eq!(
        e.kind,
        RewardErrorKind::OutOfRange {
            score: 7.0,
            min: 0.0,
            max: 1.0
        }
    );
}

#[test]
fn extra_output_lines_and_wrong_ids_do_not_desynchronise_later_samples() {
    let dir = tempfile::tempdir().unwrap();
    let Some(r) = fixture(500, dir.path()) else {
        return;
    };
    // "debug: ..." is taken as the reply (malformed); the real reply arrives late and is skipped.
    let e = r.score(&input("s1", "p", "EXTRA_LINE", &T4)).unwrap_err();
    assert!(
        matches!(e.kind, RewardErrorKind::MalformedReply { .. }),
        "{e}"
    );
    for (id, text) in [("s2", "abcde"), ("s3", "ab")] {
        assert_eq!(
            r.score(&input(id, "p", text, &T4)).unwrap().score,
            text.len() as f64 / 100.0
        );
    }
    // A reply that never carries the right id is malformed, once the timeout has passed.
    let e = r.score(&input("s4", "p", "WRONG_ID", &T4)).unwrap_err();
    let RewardErrorKind::MalformedReply { detail } = &e.kind else {
        panic!("{e}")
    };
    assert!(detail.contains("s4-other"), "{detail}");
    assert_eq!(r.score(&input("s5", "p", "abc", &T4)).unwrap().score, 0.03);
}

#[test]
fn several_workers_score_a_batch_in_parallel() {
    let Some(py) = python3() else { return };
    let mut opts = ProcessOptions::new(py, vec![manifest_path("tests/fixtures/faulty_plugin.py")]);
    opts.workers = 3;
    let r = ProcessReward::new("pool", opts).unwrap();
    let inputs: Vec<_> = (0..30)
        .map(|i| input(&format!("s{i}"), "p", &"y".repeat(i), &T4))
        .collect();
    let out = score_batch(&r, &inputs, OnError::Stop, 3).unwrap();
    for (i, s) in out.scores().into_iter().enumerate() {
        assert_eq!(s, Some(i as f64 / 100.0));
    }
    assert_eq!(r.spawns(), 3);
}

#[test]
fn a_missing_program_fails_at_build_time_naming_the_field() {
    let e = ProcessReward::new(
        "ghost",
        ProcessOptions::new("/nonexistent/reward-plugin", vec![]),
    )
    .err()
    .unwrap();
    let msg = e.to_string();
    assert!(msg.contains("`program`") && msg.contains("ghost"), "{msg}");
}

#[test]
fn python_example_reward_through_the_registry() {
    let Some(py) = python3() else { return };
    let script = manifest_path("examples/python_reward.py");
    let cfg = RewardsConfig {
        on_error: OnError::Drop,
        threads: 1,
        terms: vec![TermConfig {
            label: Some("grounding".into()),
            range: Some([0.0, 1.0]),
            ..TermConfig::new(
                "process",
                1.0,
                json!({"program": py, "args": [script, "--min-words", "4", "--max-words", "8"]}),
            )
        }],
    };
    let set = Registry::new().build(&cfg).unwrap();
    let with_cat = |id: &str, prompt: &str, resp: &str| {
        let mut i = input(id, prompt, resp, &T4);
        i.meta
            .fields
            .insert("target_category".into(), json!("Capos"));
        i
    };
    let inputs = vec![
        // mentions the category, 6 words: 0.5 + 0.5
        with_cat(
            "a",
            "p",
            "<think>the user needs new capos soon</think><answer>x</answer>",
        ),
        // no mention, 2 words (2 below min 4): 0.5 * (1 - 2/4)
        with_cat("b", "p", "<think>acoustic strings</think>"),
        // prefilled think, mention, 12 words (4 above max 8): 0.5 + 0.5 * (1 - 4/8)
        with_cat(
            "c",
            "...<think>\n",
            "capos capos capos capos capos capos capos capos capos capos capos capos</think>",
        ),
        // no think block at all
        with_cat("d", "p", "<answer>x</answer>"),
        // the dataset field is missing: the plugin replies with an error, the sample is dropped
        input("e", "p", "<think>capos</think>", &T4),
    ];
    let out = set.score_batch(&inputs).unwrap();
    assert_eq!(
        out.scores(),
        vec![Some(1.0), Some(0.25), Some(0.75), Some(0.0), None]
    );
    let a = out.outputs[0].as_ref().unwrap();
    assert_eq!(a.components["grounding/think_words"], 6.0);
    assert_eq!(a.components["grounding/mention"], 1.0);
    assert_eq!(out.dropped.len(), 1);
    let d = &out.dropped[0];
    assert_eq!(
        (d.index, d.error.sample_id.as_str(), d.error.reward.as_str()),
        (4, "e", "grounding")
    );
    assert!(
        d.error.to_string().contains("target_category"),
        "{}",
        d.error
    );
}
