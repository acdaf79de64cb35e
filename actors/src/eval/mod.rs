//! Evaluation (SPEC.md section 5; `grrm eval`): next-item prediction on the test (or
//! validation) targets of the leave-one-out split.
//!
//! - Direct mode: the SPEC's user turn through the chat template with a generation prompt, then
//!   beam search (10 beams, top 10) constrained by a prefix trie of the catalogue's IDs, so every
//!   returned item exists and none repeats. (The reference constrains each position only to its
//!   level's tokens and can emit IDs of no item; reports should say which was used:
//!   [`EvalResults::decoding`] does.)
//! - Reasoning mode: the think/answer system prompt, the assistant turn prefilled with
//!   `<think>\n`, `num_samples` sampled completions per user (temperature 0.7, top-p 0.9); each
//!   answer is read with the rewards crate's gate and looked up in the catalogue (no item =
//!   invalid slot); distinct items are ranked by their best completion's summed token log-prob
//!   (`aggregate = "max"`, default) or by the log of their summed sequence probabilities
//!   (`"log_sum_exp"`). Optionally the answer span is decoded through the trie.
//! - Metrics: Recall@1/5/10 and NDCG@5/10 on the ranked distinct items; invalid-ID and
//!   duplicate rates over the decoder's slots (see [`records`]); the popularity and
//!   first-order-transition baselines on the same users for context.
//!
//! Output folder: `eval_config.json` (the settings that shape per-user results; a rerun with
//! different ones is refused), `users.jsonl` (one record per user, appended one batch per write)
//! and `results.json` (atomic). Resuming: batches are fixed chunks of the selected users
//! (`batch_size`); a batch with every user recorded is skipped, any other batch is decoded again
//! in full (same prompts, same per-batch seed: the same outputs) and its missing users appended.
//! A torn last line is cut first. Metrics are always recomputed from the records of every
//! selected user.

pub mod catalogue;
pub mod config;
pub mod decode;
pub mod records;
pub mod table;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use grrm_model::gpu::AdapterSelector;
use grrm_model::hf::Checkpoint;
use grrm_model::tokenizer::{ChatOptions, Tokenizer};
use grrm_model::transformer::Transformer;
use grrm_model::GpuContext;
use grrm_recsys::baselines::{evaluate as evaluate_baseline, Popularity, Recommender, Transition};
use grrm_recsys::metrics::RankingMetrics;
use grrm_recsys::{build_prompts, Dataset, Prompt, PromptConfig, PromptMode, Split};
use serde::{Deserialize, Serialize};

pub use catalogue::{rank_completions, Catalogue, Completion};
pub use config::{load_eval_config, Aggregate, EvalConfig, EvalSplit, ReasoningEvalConfig};
pub use records::{metrics_from_records, RankedItem, SampleRecord, UserRecord, UserStore};
pub use table::{demo_rows, format_table, TableRow};

use crate::atomic::write_json_atomic;
use crate::data::encode::chat_messages;
use crate::progress::Progress;

pub const RESULTS_FILE: &str = "results.json";
pub const USERS_FILE: &str = "users.jsonl";
pub const SETTINGS_FILE: &str = "eval_config.json";

/// A baseline's metrics on the evaluated users.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineMetrics {
    pub name: String,
    pub metrics: RankingMetrics,
}

/// Wall time of one invocation (differs between a resumed and an uninterrupted run; everything
/// else in `results.json` is the same).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Whole invocation: loading excluded when a model was passed in, included by `run_eval`.
    pub seconds: f64,
    /// Seconds spent decoding batches.
    pub decode_seconds: f64,
    /// Users decoded by this invocation (resumed users excluded).
    pub decoded_users: usize,
    /// Users whose records were already in `users.jsonl`.
    pub resumed_users: usize,
    pub users_per_second: f64,
}

/// What `results.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalResults {
    pub mode: PromptMode,
    pub split: EvalSplit,
    pub dataset: String,
    /// Users evaluated (records in the metrics).
    pub users: usize,
    pub metrics: RankingMetrics,
    /// Empty when `baselines = false`.
    pub baselines: Vec<BaselineMetrics>,
    /// How the items were decoded, for reports.
    pub decoding: String,
    pub config: EvalConfig,
    pub timing: Timing,
}

impl EvalResults {
    pub fn baseline(&self, name: &str) -> Option<&RankingMetrics> {
        self.baselines
            .iter()
            .find(|b| b.name == name)
            .map(|b| &b.metrics)
    }

    /// Reads a `results.json`.
    pub fn read(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// A prompt with its rendered text and token ids.
pub struct EncodedPrompt {
    pub prompt: Prompt,
    pub text: String,
    pub ids: Vec<u32>,
}

/// The users to evaluate, their encoded prompts and the catalogue.
pub struct Prepared {
    pub prompts: Vec<EncodedPrompt>,
    pub catalogue: Catalogue,
    pub split: Split,
}

impl Prepared {
    /// Positions the model must cover: the longest prompt plus the longest continuation.
    pub fn positions_needed(&self, cfg: &EvalConfig) -> usize {
        let longest = self.prompts.iter().map(|p| p.ids.len()).max().unwrap_or(0);
        longest
            + match cfg.mode {
                // beam_search feeds back all but an ID's last token (8 kept as a floor).
                PromptMode::Direct => 8.max(self.catalogue.max_id_len() + 1),
                PromptMode::Reasoning => cfg.reasoning.max_new_tokens,
            }
    }
}

/// Selects the split's users (first `max_users`, in user order), builds their prompts in the
/// configured mode and encodes them with the chat template (generation prompt, plus `<think>\n`
/// in reasoning mode), and maps the catalogue onto the tokenizer.
pub fn prepare(cfg: &EvalConfig, tok: &Tokenizer, ds: &Dataset) -> Result<Prepared> {
    let catalogue = Catalogue::new(ds, tok)?;
    let pcfg = PromptConfig {
        history_cap: cfg.history_cap,
        min_history: 1,
        valid_pool: None,
        rl_modes: Vec::new(),
        eval_modes: vec![cfg.mode],
        ..Default::default()
    };
    let sets = build_prompts(ds, &pcfg).context("building evaluation prompts")?;
    let mut prompts = match cfg.split {
        EvalSplit::Test => sets.test,
        EvalSplit::Valid => sets.valid,
    };
    prompts.sort_by_key(|p| p.user);
    if cfg.max_users > 0 {
        prompts.truncate(cfg.max_users);
    }
    if prompts.is_empty() {
        bail!("dataset {:?} has no users to evaluate", ds.name);
    }
    let encoded = prompts
        .into_iter()
        .map(|p| {
            let msgs = chat_messages(&p.messages)?;
            let prefix = (!p.assistant_prefix.is_empty()).then_some(p.assistant_prefix.as_str());
            let opts = ChatOptions::generation(prefix);
            let text = tok.render_chat(&msgs, &opts);
            let ids = tok
                .encode(&text, false)
                .with_context(|| format!("encoding user {}'s prompt", p.user))?;
            Ok(EncodedPrompt {
                prompt: p,
                text,
                ids,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let split = Split::with_cap(ds, cfg.history_cap)?;
    Ok(Prepared {
        prompts: encoded,
        catalogue,
        split,
    })
}

/// Loads the model and dataset named by `cfg`, opens its adapter and evaluates.
pub fn run_eval(cfg: &EvalConfig) -> Result<EvalResults> {
    let ctx = GpuContext::open(&AdapterSelector::from_arg_or_env(cfg.adapter.as_deref()))
        .context("opening the GPU adapter")?;
    run_eval_in(cfg, &ctx)
}

/// `run_eval` on a GPU context the caller already holds.
pub fn run_eval_in(cfg: &EvalConfig, ctx: &GpuContext) -> Result<EvalResults> {
    let start = Instant::now();
    check(cfg)?;
    let ckpt = Checkpoint::load(&cfg.model)
        .with_context(|| format!("loading the model {}", cfg.model.display()))?;
    let tok = ckpt
        .tokenizer
        .clone()
        .with_context(|| format!("model folder {} has no tokenizer.json", cfg.model.display()))?;
    let ds = grrm_recsys::io::load(&cfg.dataset)
        .with_context(|| format!("loading the dataset {}", cfg.dataset.display()))?;
    let prep = prepare(cfg, &tok, &ds)?;
    let positions = prep.positions_needed(cfg);
    if positions > ckpt.config.max_position_embeddings {
        bail!(
            "prompts need {positions} positions with their continuations, beyond the model's \
             max_position_embeddings ({}); lower history_cap or reasoning.max_new_tokens",
            ckpt.config.max_position_embeddings
        );
    }
    let model = Transformer::new(ctx, &ckpt.config, &ckpt.weights, positions)
        .context("uploading the model")?;
    let mut res = evaluate_prepared(cfg, &model, &tok, &ds, &prep)?;
    res.timing.seconds = start.elapsed().as_secs_f64();
    write_json_atomic(&cfg.output.join(RESULTS_FILE), &res)?;
    Ok(res)
}

/// Evaluates a model already in memory (e.g. `grrm demo` right after training).
pub fn evaluate(
    cfg: &EvalConfig,
    model: &Transformer,
    tok: &Tokenizer,
    ds: &Dataset,
) -> Result<EvalResults> {
    check(cfg)?;
    let prep = prepare(cfg, tok, ds)?;
    evaluate_prepared(cfg, model, tok, ds, &prep)
}

fn check(cfg: &EvalConfig) -> Result<()> {
    cfg.validate()
        .map_err(|(key, msg)| anyhow::anyhow!("eval config: key `{key}`: {msg}"))
}

/// The settings that shape per-user records; `batch_size` only matters in reasoning mode
/// (it decides which completions share a seed).
fn settings(cfg: &EvalConfig) -> serde_json::Value {
    let mut v = serde_json::json!({
        "model": cfg.model,
        "dataset": cfg.dataset,
        "split": cfg.split,
        "mode": cfg.mode,
        "history_cap": cfg.history_cap,
    });
    let m = v.as_object_mut().expect("an object");
    match cfg.mode {
        PromptMode::Direct => {
            m.insert(
                "beam".into(),
                serde_json::to_value(&cfg.beam).expect("plain data"),
            );
        }
        PromptMode::Reasoning => {
            m.insert(
                "reasoning".into(),
                serde_json::to_value(&cfg.reasoning).expect("plain data"),
            );
            m.insert("batch_size".into(), cfg.batch_size.into());
        }
    }
    v
}

/// Writes `eval_config.json`, or checks an existing one matches.
fn claim_output(cfg: &EvalConfig) -> Result<()> {
    std::fs::create_dir_all(&cfg.output)
        .with_context(|| format!("creating {}", cfg.output.display()))?;
    let path = cfg.output.join(SETTINGS_FILE);
    let want = settings(cfg);
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let have: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if have != want {
            let keys: Vec<String> = want
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, v)| have.get(k.as_str()) != Some(v))
                .map(|(k, v)| {
                    format!(
                        "{k}: {} there, {v} now",
                        have.get(k.as_str()).unwrap_or(&serde_json::Value::Null)
                    )
                })
                .collect();
            bail!(
                "{} holds an evaluation with other settings ({}); use another output folder or \
                 remove it",
                cfg.output.display(),
                if keys.is_empty() {
                    "keys differ".to_string()
                } else {
                    keys.join("; ")
                }
            );
        }
        return Ok(());
    }
    write_json_atomic(&path, &want)
}

fn decoding_note(cfg: &EvalConfig) -> String {
    match cfg.mode {
        PromptMode::Direct => format!(
            "beam search ({} beams, top {}) constrained by a prefix trie of real item IDs: every \
             returned item exists and none repeats (the reference constrains each position only \
             to its level's tokens)",
            cfg.beam.num_beams, cfg.beam.num_results
        ),
        PromptMode::Reasoning => {
            let r = &cfg.reasoning;
            format!(
                "{} sampled completions per user (temperature {}, top-p {}, at most {} new \
                 tokens){}; distinct answered items ranked by the {} of their completions' \
                 summed token log-probs",
                r.num_samples,
                r.temperature,
                r.top_p,
                r.max_new_tokens,
                if r.constrain_answer {
                    ", the <answer> span decoded through the item trie"
                } else {
                    ", answers sampled freely"
                },
                match r.aggregate {
                    Aggregate::Max => "best",
                    Aggregate::LogSumExp => "log-sum-exp",
                }
            )
        }
    }
}

/// The core: decodes every selected user not yet recorded, then recomputes the metrics from
/// the records and writes `results.json`.
pub fn evaluate_prepared(
    cfg: &EvalConfig,
    model: &Transformer,
    tok: &Tokenizer,
    ds: &Dataset,
    prep: &Prepared,
) -> Result<EvalResults> {
    let start = Instant::now();
    let positions = prep.positions_needed(cfg);
    if positions > model.max_positions() {
        bail!(
            "prompts need {positions} positions with their continuations; the model was set up \
             for {} (Transformer::new's max_positions)",
            model.max_positions()
        );
    }
    claim_output(cfg)?;
    let users_path: PathBuf = cfg.output.join(USERS_FILE);
    let mut store = UserStore::open(&users_path)?;
    let total = prep.prompts.len();
    let resumed = prep
        .prompts
        .iter()
        .filter(|p| store.contains(p.prompt.user))
        .count();
    if resumed > 0 {
        tracing::info!(
            "{}: {resumed} of {total} users already evaluated; resuming",
            users_path.display()
        );
    }
    let label = match cfg.mode {
        PromptMode::Direct => "eval direct",
        PromptMode::Reasoning => "eval reasoning",
    };
    let progress = Progress::new(label, total as u64);
    progress.set_position(resumed as u64);
    let decode_start = Instant::now();
    let mut decoded = 0usize;
    let mut beams = grrm_model::generate::BeamWorkspace::default();
    for (bi, chunk) in prep.prompts.chunks(cfg.batch_size).enumerate() {
        let missing = chunk
            .iter()
            .filter(|p| !store.contains(p.prompt.user))
            .count();
        if missing == 0 {
            continue;
        }
        let batch: Vec<&EncodedPrompt> = chunk.iter().collect();
        let recs = match cfg.mode {
            PromptMode::Direct => {
                decode::decode_direct(&mut beams, cfg, model, &prep.catalogue, &batch)?
            }
            PromptMode::Reasoning => {
                decode::decode_reasoning(cfg, model, tok, &prep.catalogue, &batch, bi)?
            }
        };
        let new: Vec<UserRecord> = recs
            .into_iter()
            .filter(|r| !store.contains(r.user))
            .collect();
        decoded += new.len();
        store.append(new)?;
        progress.inc(missing as u64);
    }
    progress.finish();
    let decode_seconds = decode_start.elapsed().as_secs_f64();

    let mut records = Vec::with_capacity(total);
    for p in &prep.prompts {
        let r = store.get(p.prompt.user).with_context(|| {
            format!(
                "{}: no record for user {}",
                users_path.display(),
                p.prompt.user
            )
        })?;
        if r.target != p.prompt.target {
            bail!(
                "{}: user {}'s recorded target is item {}, the dataset's is {} (the dataset \
                 changed; use a fresh output folder)",
                users_path.display(),
                r.user,
                r.target,
                p.prompt.target
            );
        }
        records.push(r);
    }
    let metrics = metrics_from_records(records.iter().copied());

    let baselines = if cfg.baselines {
        let examples: Vec<&grrm_recsys::Example> = prep
            .prompts
            .iter()
            .map(|p| {
                let u = &prep.split.users[p.prompt.user as usize];
                match cfg.split {
                    EvalSplit::Test => &u.test,
                    EvalSplit::Valid => &u.valid,
                }
            })
            .collect();
        let n = ds.n_items();
        let models: Vec<Box<dyn Recommender>> = vec![
            Box::new(Popularity::fit(&prep.split, n, true)),
            Box::new(Transition::fit(&prep.split, n, Default::default())),
        ];
        models
            .iter()
            .map(|m| BaselineMetrics {
                name: m.name(),
                metrics: evaluate_baseline(m.as_ref(), examples.iter().copied(), n),
            })
            .collect()
    } else {
        Vec::new()
    };

    let res = EvalResults {
        mode: cfg.mode,
        split: cfg.split,
        dataset: ds.name.clone(),
        users: total,
        metrics,
        baselines,
        decoding: decoding_note(cfg),
        config: cfg.clone(),
        timing: Timing {
            seconds: start.elapsed().as_secs_f64(),
            decode_seconds,
            decoded_users: decoded,
            resumed_users: resumed,
            users_per_second: if decode_seconds > 0.0 {
                decoded as f64 / decode_seconds
            } else {
                0.0
            },
        },
    };
    write_json_atomic(&cfg.output.join(RESULTS_FILE), &res)?;
    Ok(res)
}
