//! SFT samples and the curriculum on synthetic data.

mod common;

use std::collections::BTreeMap;
use std::io::Write;

use grrm_recsys::curriculum::{expected_insertions, mix};
use grrm_recsys::tasks::reasoning::{think_block, ANSWER_PREFIX, REWRITE_PREFIX};
use grrm_recsys::tasks::title_of;
use grrm_recsys::{
    build_sft, read_byo, read_chat_jsonl, write_jsonl, ByoFormat, CurriculumConfig, SftConfig,
    Split,
};

#[test]
fn every_task_renders_from_training_data_only() {
    let ds = common::indexed(120);
    let dir = tempfile::tempdir().unwrap();
    let prefs = dir.path().join("prefs.json");
    std::fs::write(&prefs, r#"{"0": "likes guitars", "3": "budget drummer"}"#).unwrap();
    let cfg = SftConfig {
        preferences: Some(prefs),
        align_rounds: 2,
        reasoning: grrm_recsys::ReasoningConfig {
            examples: 200,
            ..Default::default()
        },
        ..Default::default()
    };
    let (samples, report) = build_sft(&ds, &cfg).unwrap();
    for task in [
        "seqrec",
        "item2index",
        "index2item",
        "fusionseqrec",
        "itemsearch",
        "preferenceobtain",
    ] {
        assert!(
            report.per_task[task] > 0,
            "{task} missing: {:?}",
            report.per_task
        );
    }
    assert_eq!(report.per_task["itemsearch"], 4, "2 users x 2 rounds");
    assert_eq!(report.reasoning, 200);
    assert_eq!(report.rationale_offline, 200);
    // Several templates are used per task.
    let mut templates: BTreeMap<&str, std::collections::BTreeSet<u64>> = BTreeMap::new();
    let mut per_task: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &samples {
        assert_eq!(s.messages.last().unwrap().role, "assistant");
        assert!(s
            .messages
            .iter()
            .all(|m| !m.content.contains('{') || s.task.contains("index")));
        *per_task.entry(&s.task).or_default() += 1;
        if let Some(k) = s.meta.get("template").and_then(|v| v.as_u64()) {
            templates.entry(&s.task).or_default().insert(k);
        }
    }
    for (task, t) in &templates {
        assert!(per_task[task] < 20 || t.len() >= 3, "{task}: {t:?}");
    }
    // No validation or test target is an SFT target of a user's interaction sample.
    let split = Split::new(&ds).unwrap();
    for s in samples.iter().filter(|s| s.meta.contains_key("user")) {
        let (u, t) = (
            s.meta["user"].as_u64(),
            s.meta.get("target").and_then(|v| v.as_u64()),
        );
        if let (Some(u), Some(t)) = (u, t) {
            let us = &split.users[u as usize];
            // The target must come from the training part of that user's sequence.
            assert!(us.train.contains(&(t as u32)), "task {} target {t}", s.task);
        }
    }
    // Counts preserved by the curriculum: alignment once, reasoning once per part.
    assert_eq!(report.total, report.alignment + 3 * report.reasoning);
    assert_eq!(samples.len(), report.total);
    // Round trip through the JSON-lines writer.
    let out = dir.path().join("sft.jsonl");
    write_jsonl(&out, &samples).unwrap();
    assert_eq!(read_chat_jsonl(&out).unwrap(), samples);
}

#[test]
fn reasoning_samples_follow_the_layout_and_never_leak() {
    let ds = common::indexed(150);
    let ids: Vec<String> = ds
        .index
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| t.concat())
        .collect();
    let cfg = SftConfig {
        tasks: vec![],
        reasoning: grrm_recsys::ReasoningConfig {
            examples: 400,
            ..Default::default()
        },
        ..Default::default()
    };
    let (samples, report) = build_sft(&ds, &cfg).unwrap();
    assert_eq!(report.alignment, 0);
    let reasoning: Vec<_> = samples.iter().filter(|s| s.task == "reasoning").collect();
    assert_eq!(reasoning.len(), 3 * report.reasoning);
    let mut distinct = std::collections::BTreeSet::new();
    for s in reasoning {
        let a = &s.messages.last().unwrap().content;
        let target = s.meta["target"].as_u64().unwrap() as u32;
        let tid = &ids[target as usize];
        let think = think_block(a).expect("think block");
        assert!(a.starts_with("<think>\nStep 1: "), "{a}");
        assert!(think.contains("\nStep 2: ") && think.contains("\nStep 3: "));
        assert!(
            !think.contains(tid.as_str()),
            "target ID in the think block: {a}"
        );
        let title = title_of(&ds, target).to_lowercase();
        assert!(
            !think.to_lowercase().contains(&title),
            "target title {title:?} leaked: {think}"
        );
        assert!(a.ends_with(&format!("{ANSWER_PREFIX}<answer>{tid}</answer>")));
        let rewrite = a
            .split(REWRITE_PREFIX)
            .nth(1)
            .unwrap()
            .split(".\n\n")
            .next()
            .unwrap();
        assert!(
            !rewrite.is_empty(),
            "denoised history keeps at least one item"
        );
        distinct.insert(think.to_string());
    }
    assert!(
        distinct.len() > report.reasoning / 2,
        "rationales should vary"
    );
}

#[test]
fn curriculum_insertions_match_their_expectation() {
    // 3 parts of 40 alignment batches each; 12 reasoning batches.
    let align: Vec<u32> = (0..960).collect();
    let reason: Vec<u32> = (10_000..10_096).collect();
    let (n_align, n_reason) = (40, 12);
    let expect = expected_insertions(n_align, n_reason, 1.5);
    let seeds = 600;
    let mut counts = Vec::new();
    for seed in 0..seeds {
        let cfg = CurriculumConfig {
            seed,
            ..Default::default()
        };
        let (out, rep) = mix(&align, &reason, &cfg).unwrap();
        assert_eq!(out.len(), 960 + 3 * 96);
        let mut sorted = out.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 960 + 96, "every sample present");
        for p in &rep.parts[..2] {
            assert_eq!(p.alignment_batches, n_align);
            assert_eq!(p.inserted_batches + p.appended_batches, n_reason);
            counts.push(p.inserted_batches as f64);
        }
        // Order kept: part boundaries hold (part 1's alignment data = the first third).
        let first_part_len = 320 + 96;
        assert!(out[..first_part_len]
            .iter()
            .all(|&x| !(320..10_000).contains(&x)));
        // Reasoning batches stay whole (8 consecutive reasoning samples).
        let mut run = 0;
        for &x in &out {
            if x >= 10_000 {
                run += 1;
            } else {
                assert_eq!(run % 8, 0, "a reasoning batch was split");
                run = 0;
            }
        }
    }
    let n = counts.len() as f64;
    let mean = counts.iter().sum::<f64>() / n;
    let var = counts.iter().map(|c| (c - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let se = (var / n).sqrt();
    assert!(
        (mean - expect).abs() < 4.0 * se + 1e-9,
        "mean inserted {mean:.3} vs expected {expect:.3} (se {se:.3})"
    );
    // Sanity of the expectation against the fixed-N_reason sum of p_i: remaining-count
    // dependence can only lower it.
    let naive: f64 = (0..n_align)
        .map(|i| (i as f64 / n_align as f64) * (n_reason as f64 / n_align as f64) * 1.5)
        .sum();
    assert!(
        expect <= naive && expect > 0.5 * naive,
        "{expect} vs {naive}"
    );
}

#[test]
fn byo_readers_and_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let sg = dir.path().join("sg.jsonl");
    let mut f = std::fs::File::create(&sg).unwrap();
    writeln!(f, r#"{{"conversations": [{{"from": "human", "value": "hi"}}, {{"from": "gpt", "value": "hello"}}], "system": "be brief"}}"#).unwrap();
    writeln!(f).unwrap();
    writeln!(f, r#"{{"messages": [{{"role": "user", "content": "q"}}, {{"role": "assistant", "content": "a"}}]}}"#).unwrap();
    drop(f);
    let s = read_byo(&sg, ByoFormat::Sharegpt).unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s[0].messages.len(), 3);
    assert_eq!(s[0].messages[0].role, "system");
    assert_eq!(s[1].messages[1].content, "a");

    let al = dir.path().join("al.jsonl");
    std::fs::write(
        &al,
        "{\"instruction\": \"Name it\", \"input\": \"a red guitar\", \"output\": \"X\"}\n{\"instruction\": \"no output\"}\n",
    )
    .unwrap();
    let e = read_byo(&al, ByoFormat::Alpaca).unwrap_err().to_string();
    assert!(
        e.contains("al.jsonl") && e.contains("line 2") && e.contains("output"),
        "{e}"
    );

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"conversations\": [{\"from\": \"human\", \"value\": \"x\"}, {\"from\": \"gpt\", \"value\": \"y\"}]}\n{not json\n",
    )
    .unwrap();
    let e = read_byo(&bad, ByoFormat::Sharegpt).unwrap_err().to_string();
    assert!(e.contains("bad.jsonl") && e.contains("line 2"), "{e}");
    std::fs::write(
        &bad,
        "{\"conversations\": [{\"from\": \"human\", \"value\": \"x\"}]}\n",
    )
    .unwrap();
    let e = read_byo(&bad, ByoFormat::Sharegpt).unwrap_err().to_string();
    assert!(e.contains("line 1") && e.contains("assistant"), "{e}");
}

#[test]
fn unknown_config_fields_are_rejected() {
    let e = serde_json::from_str::<SftConfig>(r#"{"seed": 1, "bogus": 2}"#).unwrap_err();
    assert!(e.to_string().contains("bogus"));
    let c: SftConfig =
        serde_json::from_str(r#"{"tasks": ["seqrec"], "reasoning": {"examples": 3}}"#).unwrap();
    assert_eq!(c.reasoning.examples, 3);
}

#[test]
fn brief_rationales_are_short_three_steps_and_name_no_item() {
    let ds = common::indexed(150);
    let full_cfg = SftConfig {
        tasks: vec![],
        reasoning: grrm_recsys::ReasoningConfig {
            examples: 200,
            ..Default::default()
        },
        ..Default::default()
    };
    let mut brief_cfg = full_cfg.clone();
    brief_cfg.reasoning.style = grrm_recsys::tasks::sft::RationaleStyle::Brief;
    let thinks = |cfg: &SftConfig| -> Vec<String> {
        let (samples, _) = build_sft(&ds, cfg).unwrap();
        samples
            .iter()
            .filter(|s| s.task == "reasoning")
            .map(|s| {
                let a = &s.messages.last().unwrap().content;
                think_block(a).expect("think block").to_string()
            })
            .collect()
    };
    let brief = thinks(&brief_cfg);
    let full = thinks(&full_cfg);
    assert_eq!(brief.len(), full.len());
    let mean = |v: &[String]| v.iter().map(String::len).sum::<usize>() / v.len();
    assert!(
        mean(&brief) * 3 < mean(&full),
        "brief {} chars vs full {}",
        mean(&brief),
        mean(&full)
    );
    for think in &brief {
        let steps: Vec<&str> = think.trim().lines().collect();
        assert_eq!(steps.len(), 3, "{think}");
        for (k, line) in steps.iter().enumerate() {
            assert!(line.starts_with(&format!("Step {}: ", k + 1)), "{think}");
        }
        // No title at all: not the target's, not the history's.
        for i in 0..ds.items.len() as u32 {
            assert!(!think.contains(&title_of(&ds, i)), "{think}");
        }
    }
}

#[test]
fn per_task_caps_override_the_common_cap() {
    use grrm_recsys::tasks::align::Task;
    let ds = common::indexed(150);
    let cfg = SftConfig {
        tasks: vec![Task::Seqrec, Task::Fusionseqrec],
        align_rounds: 2,
        max_examples_per_task: Some(7),
        task_caps: BTreeMap::from([(Task::Seqrec, 11)]),
        reasoning: grrm_recsys::ReasoningConfig {
            examples: 0,
            ..Default::default()
        },
        ..Default::default()
    };
    let (_, report) = build_sft(&ds, &cfg).unwrap();
    assert_eq!(report.per_task["seqrec"], 2 * 11);
    assert_eq!(report.per_task["fusionseqrec"], 2 * 7);
}
