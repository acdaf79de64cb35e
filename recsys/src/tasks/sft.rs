//! `build_sft`: the whole supervised curriculum of SPEC.md section 3 from a dataset with
//! semantic IDs — alignment tasks rendered `align_rounds` times (fresh templates each round, as
//! the reference does before cutting the data into the curriculum's parts), reasoning samples
//! from training examples, user-supplied data, then the curriculum mix. The output order is
//! the training order.
//!
//! Preference text (itemsearch, preferenceobtain) is not part of any dataset this crate imports
//! or generates: the synthetic and imported data have none, so those tasks run only when
//! `preferences` names a JSON file `{"user_idx": "preference text"}`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::align::{Ctx, Task};
use super::byo::{read_byo, ByoRole, ByoSource};
use super::rationale::{brief_rationale, denoise, intent, offline_rationale};
use super::reasoning::{leaks_target, reasoning_sample};
use super::teacher::{Teacher, TeacherConfig, TeacherStats};
use super::templates::{render, SEQREC};
use super::{history_ids, item_ids, ChatSample};
use crate::curriculum::{mix, CurriculumConfig, CurriculumReport};
use crate::dataset::{Dataset, IdxKey};
use crate::error::{DataError, Result};
use crate::split::{Example, Split, HISTORY_CAP};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReasoningConfig {
    /// Reasoning samples to build (drawn from training examples, seeded); 0 = none.
    pub examples: usize,
    pub min_history: usize,
    /// Steps 1-3 from this endpoint; None = the offline rationale.
    pub teacher: Option<TeacherConfig>,
    /// When the teacher fails or keeps leaking, use the offline rationale (else: error).
    pub fallback_offline: bool,
    /// Rewrite the history without items unrelated to the inferred intent (else copy it).
    pub denoise: bool,
    /// Length of the offline rationale (the teacher's is its own).
    pub style: RationaleStyle,
}

/// `full`: several sentences per step, naming recent items (the reference's shape); `brief`:
/// one short line per step naming no item, for small models and CPU runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RationaleStyle {
    #[default]
    Full,
    Brief,
}

impl Default for ReasoningConfig {
    fn default() -> Self {
        ReasoningConfig {
            examples: 1024,
            min_history: 2,
            teacher: None,
            fallback_offline: true,
            denoise: true,
            style: RationaleStyle::Full,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftConfig {
    pub seed: u64,
    pub tasks: Vec<Task>,
    pub align_rounds: usize,
    /// Cap on training examples per interaction task and round (seeded subset); None = all.
    pub max_examples_per_task: Option<usize>,
    /// Per-task caps overriding `max_examples_per_task` (e.g. `seqrec = 800`).
    pub task_caps: BTreeMap<Task, usize>,
    pub history_cap: usize,
    pub max_description_chars: usize,
    /// JSON `{"user_idx": "text"}`; enables itemsearch and preferenceobtain.
    pub preferences: Option<PathBuf>,
    pub reasoning: ReasoningConfig,
    pub curriculum: CurriculumConfig,
    pub byo: Vec<ByoSource>,
}

impl Default for SftConfig {
    fn default() -> Self {
        SftConfig {
            seed: 42,
            tasks: vec![
                Task::Seqrec,
                Task::Item2index,
                Task::Index2item,
                Task::Fusionseqrec,
                Task::Itemsearch,
                Task::Preferenceobtain,
            ],
            align_rounds: 3,
            max_examples_per_task: None,
            task_caps: BTreeMap::new(),
            history_cap: HISTORY_CAP,
            max_description_chars: 300,
            preferences: None,
            reasoning: ReasoningConfig::default(),
            curriculum: CurriculumConfig::default(),
            byo: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SftReport {
    /// Alignment samples per task (all rounds), user data included under its task name.
    pub per_task: BTreeMap<String, usize>,
    pub alignment: usize,
    pub reasoning: usize,
    pub rationale_offline: usize,
    pub rationale_teacher: usize,
    pub teacher: Option<TeacherStats>,
    /// Reasoning examples dropped because no leak-free rationale could be written.
    pub skipped_leaky: usize,
    pub preference_users: usize,
    pub curriculum: CurriculumReport,
    pub total: usize,
}

fn subset(examples: &[Example], cap: Option<usize>, rng: &mut ChaCha8Rng) -> Vec<Example> {
    match cap {
        Some(c) if c < examples.len() => {
            let mut idx: Vec<usize> = (0..examples.len()).collect();
            idx.shuffle(rng);
            let mut keep = idx[..c].to_vec();
            keep.sort_unstable();
            keep.into_iter().map(|i| examples[i].clone()).collect()
        }
        _ => examples.to_vec(),
    }
}

fn load_preferences(path: &Path, n_users: usize) -> Result<BTreeMap<u32, String>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let raw: BTreeMap<IdxKey, String> =
        serde_json::from_slice(&bytes).map_err(|e| DataError::json(path, e))?;
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        if k.0 as usize >= n_users {
            return Err(DataError::invalid(path, format!("unknown user {}", k.0)));
        }
        if !v.trim().is_empty() {
            out.insert(k.0, v);
        }
    }
    Ok(out)
}

fn alignment(
    ds: &Dataset,
    split: &Split,
    ids: &[String],
    cfg: &SftConfig,
    prefs: &BTreeMap<u32, String>,
    report: &mut SftReport,
) -> Vec<ChatSample> {
    let ctx = Ctx {
        ds,
        ids,
        max_description_chars: cfg.max_description_chars,
    };
    let examples = split.train_examples();
    let last: BTreeMap<u32, Example> = examples.iter().map(|e| (e.user, e.clone())).collect();
    let train: Vec<Vec<u32>> = split.train_sequences().map(<[u32]>::to_vec).collect();
    let mut out = Vec::new();
    for round in 0..cfg.align_rounds {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ (0x5eed_0000 + round as u64));
        for &task in &cfg.tasks {
            let cap = cfg
                .task_caps
                .get(&task)
                .copied()
                .or(cfg.max_examples_per_task);
            let samples = match task {
                Task::Seqrec => {
                    let ex = subset(&examples, cap, &mut rng);
                    ctx.seqrec(&ex, &mut rng)
                }
                Task::Item2index => ctx.item2index(&mut rng),
                Task::Index2item => ctx.index2item(&mut rng),
                Task::Fusionseqrec => {
                    let ex = subset(&examples, cap, &mut rng);
                    ctx.fusionseqrec(&ex, &mut rng)
                }
                Task::Itemsearch => ctx.itemsearch(&last, prefs, &mut rng),
                Task::Preferenceobtain => {
                    ctx.preferenceobtain(&train, prefs, cfg.history_cap, &mut rng)
                }
            };
            *report.per_task.entry(task.name().into()).or_insert(0) += samples.len();
            out.extend(samples.into_iter().map(|s| s.with("round", round)));
        }
    }
    out
}

fn reasoning(
    ds: &Dataset,
    split: &Split,
    ids: &[String],
    cfg: &ReasoningConfig,
    seed: u64,
    report: &mut SftReport,
) -> Result<Vec<ChatSample>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7ea5_0000);
    let mut pool: Vec<Example> = split
        .train_examples()
        .into_iter()
        .filter(|e| e.history.len() >= cfg.min_history.max(1))
        .collect();
    pool.shuffle(&mut rng);
    pool.truncate(cfg.examples);
    let mut teacher = cfg.teacher.as_ref().map(Teacher::new).transpose()?;
    let mut out = Vec::with_capacity(pool.len());
    for e in &pool {
        let target_id = &ids[e.target as usize];
        let from_teacher = match teacher.as_mut() {
            Some(t) => match t.rationale(ds, &e.history, e.target, target_id) {
                Ok(r) => r,
                Err(err) if cfg.fallback_offline => {
                    tracing::warn!("teacher failed, using the offline rationale: {err}");
                    None
                }
                Err(err) => return Err(err),
            },
            None => None,
        };
        if teacher.is_some() && from_teacher.is_none() && !cfg.fallback_offline {
            return Err(DataError::External {
                what: "teacher".into(),
                msg: format!(
                    "no leak-free rationale for user {} (target {})",
                    e.user, e.target
                ),
            });
        }
        let (steps, source) = match from_teacher {
            Some(s) => (s, "teacher"),
            None if cfg.style == RationaleStyle::Brief => {
                (brief_rationale(ds, &e.history), "offline")
            }
            None => {
                let s = offline_rationale(ds, &e.history, e.target, true, &mut rng);
                let s = if leaks_target(ds, &s, e.target, target_id) {
                    offline_rationale(ds, &e.history, e.target, false, &mut rng)
                } else {
                    s
                };
                (s, "offline")
            }
        };
        if leaks_target(ds, &steps, e.target, target_id) {
            report.skipped_leaky += 1;
            continue;
        }
        let rewritten = if cfg.denoise {
            denoise(ds, &e.history, &intent(ds, &e.history))
        } else {
            e.history.clone()
        };
        let k = rng.random_range(0..SEQREC.len());
        let h = history_ids(ids, &e.history);
        let user = render(SEQREC[k].0, &[("history", &h)]);
        if source == "teacher" {
            report.rationale_teacher += 1;
        } else {
            report.rationale_offline += 1;
        }
        out.push(
            reasoning_sample(user, &steps, ids, &rewritten, e.target)
                .with("user", e.user)
                .with("target", e.target)
                .with("target_id", target_id.as_str())
                .with("rationale", source)
                .with("template", k),
        );
    }
    report.teacher = teacher.map(|t| t.stats);
    Ok(out)
}

/// The SFT samples in training order, and what went into them.
pub fn build_sft(ds: &Dataset, cfg: &SftConfig) -> Result<(Vec<ChatSample>, SftReport)> {
    if cfg.align_rounds == 0 {
        return Err(DataError::Config {
            msg: "sft: align_rounds must be at least 1".into(),
        });
    }
    let ids = item_ids(ds)?;
    let split = Split::with_cap(ds, cfg.history_cap)?;
    let prefs = match &cfg.preferences {
        Some(p) => load_preferences(p, ds.n_users())?,
        None => BTreeMap::new(),
    };
    let mut report = SftReport {
        preference_users: prefs.len(),
        ..Default::default()
    };
    let mut align = alignment(ds, &split, &ids, cfg, &prefs, &mut report);
    let mut reason = reasoning(ds, &split, &ids, &cfg.reasoning, cfg.seed, &mut report)?;
    for src in &cfg.byo {
        let samples = read_byo(&src.path, src.format)?;
        if let Some(s) = samples.first() {
            *report.per_task.entry(s.task.clone()).or_insert(0) += samples.len();
        }
        match src.role {
            ByoRole::Alignment => align.extend(samples),
            ByoRole::Reasoning => reason.extend(samples),
        }
    }
    report.alignment = align.len();
    report.reasoning = reason.len();
    let (mixed, cur) = mix(&align, &reason, &cfg.curriculum)?;
    report.curriculum = cur;
    report.total = mixed.len();
    Ok((mixed, report))
}

/// Write samples as JSON lines, atomically.
pub fn write_jsonl<T: Serialize>(path: &Path, samples: &[T]) -> Result<()> {
    let mut buf = Vec::new();
    for s in samples {
        serde_json::to_writer(&mut buf, s).map_err(|e| DataError::invalid(path, e.to_string()))?;
        buf.push(b'\n');
    }
    crate::io::write_atomic(path, &buf)
}

/// Read chat samples written by `write_jsonl`; errors name the file and line.
pub fn read_chat_jsonl(path: &Path) -> Result<Vec<ChatSample>> {
    let mut out = Vec::new();
    crate::io::for_each_line(path, |n, line| {
        out.push(serde_json::from_str(line).map_err(|e| DataError::line(path, n, e.to_string()))?);
        Ok(())
    })?;
    Ok(out)
}
