//! `metrics.jsonl`: one JSON object per line,
//! `{"step": 12, "phase": "rl", "time": 1732579200.5, "reward_mean": 0.41, ...}`,
//! appended and flushed per record. A crash can leave a torn last line; opening for append cuts
//! it off and reading skips it, both saying so.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde_json::{Map, Number, Value};

/// Metric names the training loops log and the report knows by title.
pub mod names {
    pub const REWARD_MEAN: &str = "reward_mean";
    pub const HIT_RATE: &str = "hit_rate";
    pub const KL: &str = "kl";
    pub const CLIP_FRAC: &str = "clip_frac";
    pub const ZERO_VAR_FRAC: &str = "zero_var_frac";
    pub const LOSS: &str = "loss";
    pub const RECALL_AT_10: &str = "recall@10";
    pub const STEP_SECONDS: &str = "step_seconds";
}

/// Phase labels; any other string is allowed too.
pub mod phases {
    pub const SFT: &str = "sft";
    pub const RL: &str = "rl";
    pub const EVAL: &str = "eval";
}

const RESERVED: [&str; 3] = ["step", "phase", "time"];

#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub step: u64,
    pub phase: String,
    /// Unix seconds.
    pub time: f64,
    /// Non-finite values are written as `null` and read back as NaN.
    pub metrics: BTreeMap<String, f64>,
}

impl Record {
    /// A record stamped with the current time.
    pub fn new(step: u64, phase: &str) -> Self {
        let time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Self {
            step,
            phase: phase.to_string(),
            time,
            metrics: BTreeMap::new(),
        }
    }

    pub fn with(mut self, metric: &str, value: f64) -> Self {
        self.metrics.insert(metric.to_string(), value);
        self
    }

    pub fn get(&self, metric: &str) -> Option<f64> {
        self.metrics.get(metric).copied()
    }

    fn to_line(&self) -> Result<String> {
        let mut obj = Map::new();
        obj.insert("step".into(), self.step.into());
        obj.insert("phase".into(), self.phase.clone().into());
        obj.insert("time".into(), number(self.time));
        for (k, v) in &self.metrics {
            if RESERVED.contains(&k.as_str()) {
                bail!("metric name `{k}` is reserved");
            }
            obj.insert(k.clone(), number(*v));
        }
        let mut line = serde_json::to_string(&Value::Object(obj))?;
        line.push('\n');
        Ok(line)
    }

    fn parse(line: &str) -> std::result::Result<Self, String> {
        let Value::Object(obj) = serde_json::from_str(line).map_err(|e| e.to_string())? else {
            return Err("not a JSON object".into());
        };
        let step = obj
            .get("step")
            .and_then(Value::as_u64)
            .ok_or("missing or non-integer `step`")?;
        let phase = obj
            .get("phase")
            .and_then(Value::as_str)
            .ok_or("missing `phase`")?
            .to_string();
        let time = obj.get("time").and_then(Value::as_f64).unwrap_or(f64::NAN);
        let metrics = obj
            .iter()
            .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
            .filter_map(|(k, v)| match v {
                Value::Number(n) => n.as_f64().map(|x| (k.clone(), x)),
                Value::Null => Some((k.clone(), f64::NAN)),
                // Strings and nested values are annotations, not series.
                _ => None,
            })
            .collect();
        Ok(Self {
            step,
            phase,
            time,
            metrics,
        })
    }
}

fn number(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

/// What opening found at the end of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TailRepair {
    Clean,
    /// The last record was whole but lacked its newline; one was added.
    AddedNewline,
    /// A partial last line was cut off.
    Truncated {
        bytes: u64,
        text: String,
    },
}

/// Appends records to `metrics.jsonl`.
#[derive(Debug)]
pub struct MetricsWriter {
    file: File,
    path: PathBuf,
}

impl MetricsWriter {
    /// Opens (creating if needed) for appending, first repairing a torn last line.
    pub fn open(path: &Path) -> Result<(Self, TailRepair)> {
        let repair = repair_tail(path)?;
        if let TailRepair::Truncated { bytes, text } = &repair {
            tracing::warn!(
                "{}: cut a torn last line ({bytes} bytes): {text:?}",
                path.display()
            );
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok((
            Self {
                file,
                path: path.to_path_buf(),
            },
            repair,
        ))
    }

    /// Writes one line with a single write call, so a kill leaves whole lines or one torn tail.
    pub fn append(&mut self, record: &Record) -> Result<()> {
        let line = record.to_line()?;
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .with_context(|| format!("appending to {}", self.path.display()))
    }

    /// Shorthand: a record stamped now with the given metrics.
    pub fn log(&mut self, step: u64, phase: &str, metrics: &[(&str, f64)]) -> Result<()> {
        let record = metrics
            .iter()
            .fold(Record::new(step, phase), |r, (k, v)| r.with(k, *v));
        self.append(&record)
    }

    pub fn path(&self) -> &Path {
        &self.path
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
    let tail = String::from_utf8_lossy(&bytes[start..]).into_owned();
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    if Record::parse(&tail).is_ok() {
        file.seek(SeekFrom::End(0))
            .and_then(|_| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .with_context(|| format!("appending to {}", path.display()))?;
        return Ok(TailRepair::AddedNewline);
    }
    file.set_len(start as u64)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("truncating {}", path.display()))?;
    Ok(TailRepair::Truncated {
        bytes: (bytes.len() - start) as u64,
        text: tail,
    })
}

/// One metric in one phase: `(step, value)` in file order, NaN for missing/non-finite values.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub metric: String,
    pub phase: String,
    pub points: Vec<(u64, f64)>,
}

/// A whole metrics file, read tolerantly.
#[derive(Clone, Debug, Default)]
pub struct MetricsLog {
    pub records: Vec<Record>,
    /// A partial last line (no newline, not parseable), skipped.
    pub torn_tail: Option<String>,
    /// Other unreadable lines: (1-based line number, reason), skipped.
    pub bad_lines: Vec<(usize, String)>,
}

impl MetricsLog {
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(Self::parse(&String::from_utf8_lossy(&text)))
    }

    pub fn parse(text: &str) -> Self {
        let mut log = Self::default();
        let complete = text.ends_with('\n');
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            match Record::parse(line) {
                Ok(r) => log.records.push(r),
                Err(_) if i + 1 == lines.len() && !complete => {
                    log.torn_tail = Some((*line).to_string())
                }
                Err(e) => log.bad_lines.push((i + 1, e)),
            }
        }
        log
    }

    /// Metric names in first-seen order.
    pub fn metric_names(&self) -> Vec<String> {
        let mut seen = Vec::<String>::new();
        for r in &self.records {
            for k in r.metrics.keys() {
                if !seen.contains(k) {
                    seen.push(k.clone());
                }
            }
        }
        seen
    }

    /// The series of `metric`, one per phase that logged it, phases in first-seen order.
    pub fn series(&self, metric: &str) -> Vec<Series> {
        let mut out: Vec<Series> = Vec::new();
        for r in &self.records {
            let Some(v) = r.get(metric) else { continue };
            let idx = match out.iter().position(|s| s.phase == r.phase) {
                Some(i) => i,
                None => {
                    out.push(Series {
                        metric: metric.to_string(),
                        phase: r.phase.clone(),
                        points: Vec::new(),
                    });
                    out.len() - 1
                }
            };
            out[idx].points.push((r.step, v));
        }
        out
    }

    /// Every metric's series, keyed by metric name.
    pub fn all_series(&self) -> BTreeMap<String, Vec<Series>> {
        self.metric_names()
            .into_iter()
            .map(|m| {
                let s = self.series(&m);
                (m, s)
            })
            .collect()
    }
}
