//! Evaluation on a tiny random model, a tiny tokenizer with the ID tokens added as special
//! tokens, and a small synthetic dataset indexed with TF-IDF embeddings and 4 codes per level.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use grrm_actors::config::ConfigSource;
use grrm_actors::eval::{
    demo_rows, format_table, load_eval_config, metrics_from_records, rank_completions, run_eval_in,
    Aggregate, Catalogue, Completion, EvalConfig, EvalResults, UserRecord, RESULTS_FILE,
    SETTINGS_FILE, USERS_FILE,
};
use grrm_model::hf::{
    extend_vocab, init_random, save_pretrained, Arch, ConfigBuilder, SaveOptions, VocabExtension,
};
use grrm_model::tokenizer::{build_tiny_tokenizer, Tokenizer, TINY_CORPUS};
use grrm_model::GpuContext;
use grrm_recsys::{build_index, io, synth, Dataset, IndexConfig, PromptMode, SynthConfig};
use grrm_recsys::{Split, TfidfEmbedder};

struct Fixture {
    root: PathBuf,
    model: PathBuf,
    dataset: PathBuf,
    ds: Dataset,
    tok: Tokenizer,
    base_tok: Tokenizer,
}

fn ctx() -> GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| GpuContext::from_env().expect("a GPU adapter (lavapipe in CI)"))
        .clone()
}

fn fixture() -> &'static Fixture {
    static FIX: OnceLock<Fixture> = OnceLock::new();
    FIX.get_or_init(|| {
        let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("eval-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let mut ds = synth(&SynthConfig {
            users: 120,
            items: 200,
            ..Default::default()
        })
        .unwrap();
        let icfg = IndexConfig {
            codes: 4,
            ..Default::default()
        };
        let (ids, _) = build_index(&ds, &icfg, &TfidfEmbedder::default()).unwrap();
        ds.index = Some(ids);
        let dataset = root.join("data");
        io::save(&ds, &dataset).unwrap();

        let base_tok = build_tiny_tokenizer(TINY_CORPUS, 300).unwrap();
        let mut tok = base_tok.clone();
        let base = tok.len();
        let id_tokens: Vec<String> = ds
            .index
            .as_ref()
            .unwrap()
            .iter()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let new_ids = tok.add_special_tokens(&id_tokens).unwrap();
        let mut cfg = ConfigBuilder::new(Arch::Qwen3)
            .layers(2)
            .hidden(32)
            .heads(4)
            .kv_heads(2)
            .head_dim(8)
            .ffn(64)
            .vocab(base)
            .max_positions(2048)
            .build()
            .unwrap();
        cfg.initializer_range = 0.3;
        let mut w = init_random(&cfg, 5);
        extend_vocab(
            &mut cfg,
            &mut w,
            &VocabExtension {
                new_ids,
                reference_rows: base,
                pad_to_multiple_of: 1,
            },
        )
        .unwrap();
        let model = root.join("model");
        save_pretrained(&model, &cfg, &w, Some(&tok), &SaveOptions::default()).unwrap();
        Fixture {
            root,
            model,
            dataset,
            ds,
            tok,
            base_tok,
        }
    })
}

fn config(out: &str) -> EvalConfig {
    let f = fixture();
    EvalConfig::new(&f.model, &f.dataset, f.root.join(out))
}

fn read_records(dir: &Path) -> Vec<UserRecord> {
    std::fs::read_to_string(dir.join(USERS_FILE))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn results_without_timing(dir: &Path) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(RESULTS_FILE)).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("timing");
    v
}

#[test]
fn direct_mode_trie_metrics_and_resume() {
    let f = fixture();
    let mut cfg = config("direct-full");
    cfg.max_users = 12;
    cfg.batch_size = 4;
    let res = run_eval_in(&cfg, &ctx()).unwrap();
    eprintln!(
        "direct: {} users decoded in {:.2} s = {:.2} users/s",
        res.timing.decoded_users, res.timing.decode_seconds, res.timing.users_per_second
    );
    assert_eq!(res.users, 12);
    assert_eq!(res.timing.decoded_users, 12);
    assert_eq!(res.mode, PromptMode::Direct);

    // Exactly 10 distinct real items per user, each with its own ID.
    let ids: Vec<String> =
        f.ds.index
            .as_ref()
            .unwrap()
            .iter()
            .map(|t| t.concat())
            .collect();
    let recs = read_records(&cfg.output);
    let split = Split::new(&f.ds).unwrap();
    assert_eq!(recs.len(), 12);
    for (u, r) in recs.iter().enumerate() {
        assert_eq!(r.user as usize, u, "records in user order");
        assert_eq!(r.target, split.users[u].test.target);
        assert_eq!(r.ranked.len(), 10);
        let distinct: BTreeSet<u32> = r.ranked.iter().map(|x| x.item).collect();
        assert_eq!(distinct.len(), 10, "user {u}: repeated items");
        for x in &r.ranked {
            assert!((x.item as usize) < f.ds.n_items());
            assert_eq!(x.id, ids[x.item as usize]);
            assert!(x.score.is_finite() && x.score <= 0.0);
        }
        assert!(
            r.ranked.windows(2).all(|w| w[0].score >= w[1].score),
            "ranked by score"
        );
    }

    // Metrics recomputed by hand from the JSONL.
    let (mut hits, mut ndcg) = ([0.0f64; 3], [0.0f64; 2]);
    for r in &recs {
        if let Some(p) = r.ranked.iter().position(|x| x.item == r.target) {
            let rank = p + 1;
            for (h, k) in hits.iter_mut().zip([1, 5, 10]) {
                if rank <= k {
                    *h += 1.0;
                }
            }
            for (g, k) in ndcg.iter_mut().zip([5, 10]) {
                if rank <= k {
                    *g += 1.0 / ((rank + 1) as f64).log2();
                }
            }
        }
    }
    let m = &res.metrics;
    let n = recs.len() as f64;
    let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    close(m.recall_1, hits[0] / n);
    close(m.recall_5, hits[1] / n);
    close(m.recall_10, hits[2] / n);
    close(m.ndcg_5, ndcg[0] / n);
    close(m.ndcg_10, ndcg[1] / n);
    assert_eq!((m.invalid_rate, m.duplicate_rate), (0.0, 0.0));
    assert_eq!(m.users, 12);
    // Baselines on the same users.
    assert_eq!(res.baselines.len(), 2);
    assert!(res.baselines.iter().all(|b| b.metrics.users == 12));
    let on_disk = EvalResults::read(&cfg.output.join(RESULTS_FILE)).unwrap();
    assert_eq!(on_disk.metrics, res.metrics);

    // A rerun finds every user recorded and decodes nothing.
    let first = results_without_timing(&cfg.output);
    let again = run_eval_in(&cfg, &ctx()).unwrap();
    assert_eq!(again.timing.decoded_users, 0);
    assert_eq!(again.timing.resumed_users, 12);
    assert_eq!(results_without_timing(&cfg.output), first);

    // Interrupted run: 5 whole lines (batch 0 and the first user of batch 1) and half of the
    // sixth, as a kill mid-write leaves it.
    let mut cut = config("direct-resumed");
    cut.max_users = 12;
    cut.batch_size = 4;
    std::fs::create_dir_all(&cut.output).unwrap();
    let text = std::fs::read_to_string(cfg.output.join(USERS_FILE)).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut partial = lines[..5].join("\n");
    partial.push('\n');
    partial.push_str(&lines[5][..lines[5].len() / 2]);
    std::fs::write(cut.output.join(USERS_FILE), partial).unwrap();
    // The settings file the interrupted run wrote (output path aside, the same settings).
    std::fs::copy(
        cfg.output.join(SETTINGS_FILE),
        cut.output.join(SETTINGS_FILE),
    )
    .unwrap();
    let resumed = run_eval_in(&cut, &ctx()).unwrap();
    assert_eq!(resumed.timing.resumed_users, 5);
    assert_eq!(resumed.timing.decoded_users, 7);
    let mut want = results_without_timing(&cfg.output);
    let mut got = results_without_timing(&cut.output);
    for v in [&mut want, &mut got] {
        v["config"].as_object_mut().unwrap().remove("output");
    }
    assert_eq!(
        got, want,
        "resumed results differ from the uninterrupted run"
    );
    assert_eq!(read_records(&cut.output), recs);

    // A rerun into the same folder with other decoding settings is refused.
    let mut other = cut.clone();
    other.beam.num_beams = 12;
    let err = run_eval_in(&other, &ctx()).unwrap_err().to_string();
    assert!(err.contains("beam"), "{err}");

    // The demo table carries both baselines and the model row.
    let table = format_table(&demo_rows(&[("SFT model", &res)]));
    let rows: Vec<&str> = table.lines().collect();
    assert_eq!(rows.len(), 4, "{table}");
    assert!(rows[0].contains("R@10") && rows[0].contains("duplicate"));
    assert!(rows[1].starts_with("popularity") && rows[2].starts_with("sequential baseline"));
    assert!(rows[3].starts_with("SFT model") && rows[3].contains("direct"));
    assert!(rows[3].contains(&format!("{:.4}", res.metrics.recall_10)));
}

#[test]
fn reasoning_mode_samples_parse_and_count() {
    let mut cfg = config("reasoning");
    cfg.mode = PromptMode::Reasoning;
    cfg.max_users = 3;
    cfg.batch_size = 3;
    cfg.reasoning.num_samples = 2;
    cfg.reasoning.max_new_tokens = 8;
    cfg.reasoning.constrain_answer = true;
    let res = run_eval_in(&cfg, &ctx()).unwrap();
    eprintln!(
        "reasoning: {} users x 2 samples x 8 tokens in {:.2} s = {:.2} users/s",
        res.timing.decoded_users, res.timing.decode_seconds, res.timing.users_per_second
    );
    let recs = read_records(&cfg.output);
    assert_eq!(recs.len(), 3);
    let (mut invalid, mut slots) = (0usize, 0usize);
    for r in &recs {
        let samples = r
            .samples
            .as_ref()
            .expect("reasoning records keep the samples");
        assert_eq!(samples.len(), 2);
        for s in samples {
            assert!(s.tokens >= 1 && s.tokens <= 8);
            assert!(s.logprob.is_finite() && s.logprob < 0.0);
            assert_eq!(s.item.is_none(), s.failure.is_some());
            slots += 1;
            invalid += s.item.is_none() as usize;
        }
        let named: BTreeSet<u32> = samples.iter().filter_map(|s| s.item).collect();
        assert_eq!(r.ranked.len(), named.len());
    }
    assert_eq!(res.metrics.invalid_rate, invalid as f64 / slots as f64);
    assert_eq!(res.metrics, metrics_from_records(&recs));
    // Same config, same seed: a fresh run draws the same completions.
    let mut again = cfg.clone();
    again.output = fixture().root.join("reasoning-again");
    run_eval_in(&again, &ctx()).unwrap();
    assert_eq!(read_records(&again.output), recs);
}

#[test]
fn reasoning_answers_are_parsed_ranked_and_counted() {
    let f = fixture();
    let cat = Catalogue::new(&f.ds, &f.tok).unwrap();
    let ids = &cat.ids;
    let prompt = "<|im_start|>assistant\n<think>\n";
    let ok = |id: &str| {
        format!(
            "evidence from the history\n</think>\nLet's rewrite user's purchase history: x\n\
             Based on the above analysis, the recommended product is <answer>{id}</answer><|im_end|>"
        )
    };
    let responses = [
        (ok(&ids[0]), -5.0),
        (ok(&ids[0]), -3.0),
        (ok(&ids[1]), -4.0),
        (format!("no closing tag <answer>{}</answer>", ids[1]), -1.0),
        (
            ok("<|a_99|><|b_1|><|c_1|><|d_1|>"), // well formed, names no item
            -0.5,
        ),
        (
            format!(
                "x</think><answer>{}</answer> or <answer>{}</answer>",
                ids[2], ids[0]
            ),
            -0.2,
        ),
        ("x</think><answer>item 3</answer>".to_string(), -0.1),
    ];
    let completions: Vec<Completion> = responses
        .iter()
        .map(|(r, lp)| Completion {
            response: r.clone(),
            logprob: *lp,
            tokens: 10,
            stopped: true,
        })
        .collect();
    let (ranked, samples) = rank_completions(&cat, prompt, &completions, Aggregate::Max);
    let failures: Vec<Option<&str>> = samples.iter().map(|s| s.failure.as_deref()).collect();
    assert_eq!(
        failures,
        vec![
            None,
            None,
            None,
            Some("MissingThink"),
            Some("UnknownId"),
            Some("SeveralAnswers"),
            Some("NonIndexText"),
        ]
    );
    assert_eq!(
        samples[4].answer.as_deref(),
        Some("<|a_99|><|b_1|><|c_1|><|d_1|>")
    );
    // Item 0: best of -5 and -3; item 1: -4.
    let got: Vec<(u32, f64, Option<usize>)> =
        ranked.iter().map(|r| (r.item, r.score, r.count)).collect();
    assert_eq!(got, vec![(0, -3.0, Some(2)), (1, -4.0, Some(1))]);
    let (lse, _) = rank_completions(&cat, prompt, &completions, Aggregate::LogSumExp);
    let want = ((-5.0f64).exp() + (-3.0f64).exp()).ln();
    assert!((lse[0].score - want).abs() < 1e-12);

    // Target item 1 at rank 2; 7 slots: 4 invalid, 1 duplicate (item 0 twice).
    let rec = UserRecord {
        user: 0,
        target: 1,
        target_id: ids[1].clone(),
        ranked,
        samples: Some(samples),
    };
    let m = metrics_from_records([&rec]);
    assert_eq!((m.recall_1, m.recall_5, m.recall_10), (0.0, 1.0, 1.0));
    assert!((m.ndcg_5 - 1.0 / 3f64.log2()).abs() < 1e-12);
    assert!((m.invalid_rate - 4.0 / 7.0).abs() < 1e-12);
    assert!((m.duplicate_rate - 1.0 / 7.0).abs() < 1e-12);
    // Records survive a JSON round trip unchanged.
    let line = serde_json::to_string(&rec).unwrap();
    assert_eq!(serde_json::from_str::<UserRecord>(&line).unwrap(), rec);
}

#[test]
fn config_errors_name_the_key() {
    let f = fixture();
    let dir = f.root.join("configs");
    std::fs::create_dir_all(&dir).unwrap();
    let load = |text: &str, sets: &[&str]| {
        let p = dir.join(format!("c{}.toml", text.len() + sets.len()));
        std::fs::write(&p, text).unwrap();
        load_eval_config(&ConfigSource::File(p), sets)
    };
    let base = "model = \"m\"\ndataset = \"d\"\noutput = \"o\"\n";
    let cfg = load(base, &[]).unwrap();
    assert_eq!(cfg.mode, PromptMode::Direct);
    assert_eq!((cfg.beam.num_beams, cfg.beam.num_results), (10, 10));
    assert_eq!(cfg.reasoning.num_samples, 10);
    assert_eq!((cfg.reasoning.temperature, cfg.reasoning.top_p), (0.7, 0.9));
    assert_eq!((cfg.batch_size, cfg.history_cap, cfg.max_users), (8, 20, 0));
    let cfg = load(base, &["mode=reasoning", "reasoning.num_samples=4"]).unwrap();
    assert_eq!(cfg.mode, PromptMode::Reasoning);
    assert_eq!(cfg.reasoning.num_samples, 4);

    let cases: [(&str, &[&str], &str); 6] = [
        (base, &["beam.num_beam=3"], "beam.num_beam"),
        (base, &["reasoning.top_p=1.5"], "reasoning.top_p"),
        (base, &["beam.num_results=12"], "beam.num_results"),
        (base, &["mode=sideways"], "mode"),
        (base, &["batch_size=0"], "batch_size"),
        ("dataset = \"d\"\noutput = \"o\"\n", &[], "model"),
    ];
    for (text, sets, key) in cases {
        let err = load(text, sets).unwrap_err().to_string();
        assert!(err.contains(key), "{sets:?}: {err}");
        assert!(err.contains("configs/c"), "the error names the file: {err}");
    }

    // A tokenizer without the ID tokens, a dataset without an index.
    let err = Catalogue::new(&f.ds, &f.base_tok)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("<|a_") && err.contains("add_special_tokens"),
        "{err}"
    );
    let mut bare = f.ds.clone();
    bare.index = None;
    let err = Catalogue::new(&bare, &f.tok).err().unwrap().to_string();
    assert!(err.contains("index"), "{err}");
    // A model folder that does not exist.
    let mut cfg = config("missing-model");
    cfg.model = f.root.join("no-such-model");
    let err = format!("{:#}", run_eval_in(&cfg, &ctx()).unwrap_err());
    assert!(err.contains("no-such-model"), "{err}");
}
