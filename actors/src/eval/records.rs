//! Per-user results (`users.jsonl`, one JSON object per line), reading them back with a torn
//! last line repaired, and the metrics recomputed from them.
//!
//! Metrics: the ranking metrics (Recall@K, NDCG@K) are taken on `ranked`, the distinct items
//! shown to the user, best first. The invalid-ID and duplicate rates are taken over the slots the
//! decoder produced: the `ranked` list itself in direct mode (the trie makes both rates zero), and
//! every sampled completion in reasoning mode (a completion whose answer names no item is an
//! invalid slot; one naming an item an earlier completion named is a duplicate slot).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use grrm_recsys::metrics::{MetricsAccumulator, RankingMetrics};
use serde::{Deserialize, Serialize};

/// One recommended item.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RankedItem {
    pub item: u32,
    /// Its semantic ID.
    pub id: String,
    /// Direct: the beam score (summed log-prob, length-penalised if configured). Reasoning:
    /// the aggregated sequence log-prob of the completions naming it.
    pub score: f64,
    /// Reasoning: how many completions named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
}

/// One sampled completion (reasoning mode).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleRecord {
    /// The generated text after the prefilled `<think>\n`, special tokens kept.
    pub response: String,
    /// Sum of the generated tokens' log-probs (under the sampling temperature).
    pub logprob: f64,
    pub tokens: usize,
    /// Ended with a stop token (else the token cap cut it).
    pub stopped: bool,
    /// The answer's index tokens, joined, when the format gate passed.
    pub answer: Option<String>,
    /// The item the answer names; `None` = an invalid slot.
    pub item: Option<u32>,
    /// Why there is no item: a format failure of the rewards crate's gate, or `UnknownId`.
    pub failure: Option<String>,
}

/// Everything recorded for one user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    pub user: u32,
    pub target: u32,
    pub target_id: String,
    /// Distinct items, best first.
    pub ranked: Vec<RankedItem>,
    /// Reasoning mode: every completion, in sampling order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<Vec<SampleRecord>>,
}

impl UserRecord {
    /// 1-based rank of the target in `ranked`.
    pub fn hit_rank(&self) -> Option<usize> {
        self.ranked
            .iter()
            .position(|r| r.item == self.target)
            .map(|p| p + 1)
    }

    /// The decoder's slots for the invalid/duplicate rates (see the module docs).
    pub fn slots(&self) -> Vec<Option<u32>> {
        match &self.samples {
            Some(s) => s.iter().map(|x| x.item).collect(),
            None => self.ranked.iter().map(|r| Some(r.item)).collect(),
        }
    }
}

/// Metrics over `records` (see the module docs for which list each metric uses).
pub fn metrics_from_records<'a>(
    records: impl IntoIterator<Item = &'a UserRecord>,
) -> RankingMetrics {
    let mut ranking = MetricsAccumulator::new();
    let mut slots = MetricsAccumulator::new();
    for r in records {
        let ranked: Vec<Option<u32>> = r.ranked.iter().map(|x| Some(x.item)).collect();
        ranking.add(&ranked, r.target);
        slots.add(&r.slots(), r.target);
    }
    let s = slots.finish();
    RankingMetrics {
        invalid_rate: s.invalid_rate,
        duplicate_rate: s.duplicate_rate,
        ..ranking.finish()
    }
}

/// What opening the store found at the end of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TailRepair {
    Clean,
    /// The last record was whole but lacked its newline; one was added.
    AddedNewline,
    /// A partial last line (bytes) was cut off.
    Truncated(u64),
}

/// `users.jsonl`: the records read at open, and appends of whole batches.
pub struct UserStore {
    path: PathBuf,
    file: File,
    records: HashMap<u32, UserRecord>,
    pub repair: TailRepair,
}

impl UserStore {
    /// Opens (creating) the file, repairs a torn last line and reads every record; a malformed
    /// line elsewhere, or a user recorded twice, is an error naming the line.
    pub fn open(path: &Path) -> Result<Self> {
        let repair = repair_tail(path)?;
        if let TailRepair::Truncated(n) = repair {
            tracing::warn!("{}: cut a torn last line ({n} bytes)", path.display());
        }
        let mut records = HashMap::new();
        if path.exists() {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let r: UserRecord = serde_json::from_str(line)
                    .with_context(|| format!("{}:{}: not a user record", path.display(), i + 1))?;
                if records.contains_key(&r.user) {
                    bail!(
                        "{}:{}: user {} recorded twice",
                        path.display(),
                        i + 1,
                        r.user
                    );
                }
                records.insert(r.user, r);
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(UserStore {
            path: path.to_path_buf(),
            file,
            records,
            repair,
        })
    }

    pub fn get(&self, user: u32) -> Option<&UserRecord> {
        self.records.get(&user)
    }

    pub fn contains(&self, user: u32) -> bool {
        self.records.contains_key(&user)
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Appends the records with one write and an fsync, so an interruption leaves whole lines
    /// and at most one torn tail (repaired by the next `open`).
    pub fn append(&mut self, batch: Vec<UserRecord>) -> Result<()> {
        let mut buf = String::new();
        for r in &batch {
            if self.records.contains_key(&r.user) {
                bail!(
                    "{}: user {} is already recorded",
                    self.path.display(),
                    r.user
                );
            }
            buf.push_str(&serde_json::to_string(r)?);
            buf.push('\n');
        }
        self.file
            .write_all(buf.as_bytes())
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("appending to {}", self.path.display()))?;
        for r in batch {
            self.records.insert(r.user, r);
        }
        Ok(())
    }
}

fn repair_tail(path: &Path) -> Result<TailRepair> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(TailRepair::Clean),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if bytes.is_empty() || bytes.ends_with(b"\n") {
        return Ok(TailRepair::Clean);
    }
    let start = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let whole = std::str::from_utf8(&bytes[start..])
        .ok()
        .and_then(|t| serde_json::from_str::<UserRecord>(t).ok())
        .is_some();
    if whole {
        file.seek(SeekFrom::End(0))
            .and_then(|_| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("appending to {}", path.display()))?;
        return Ok(TailRepair::AddedNewline);
    }
    file.set_len(start as u64)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("truncating {}", path.display()))?;
    Ok(TailRepair::Truncated((bytes.len() - start) as u64))
}
