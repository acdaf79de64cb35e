//! A run folder: `config.resolved.toml`, `metrics.jsonl`, `logs/`, `checkpoints/`.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};

use crate::atomic::write_atomic;
use crate::checkpoints::CheckpointDir;
use crate::metrics_log::{MetricsWriter, TailRepair};

pub const CONFIG_FILE: &str = "config.resolved.toml";
pub const METRICS_FILE: &str = "metrics.jsonl";
pub const LOGS_DIR: &str = "logs";
pub const CHECKPOINTS_DIR: &str = "checkpoints";

#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
    checkpoints: CheckpointDir,
}

impl RunDir {
    /// Creates `runs_root/<name>-<YYYYmmdd-HHMMSS>` (UTC; `-2`, `-3`… on a clash) and writes the
    /// resolved config into it.
    pub fn create(runs_root: &Path, name: &str, resolved_config: &str) -> Result<Self> {
        std::fs::create_dir_all(runs_root)
            .with_context(|| format!("creating {}", runs_root.display()))?;
        let base = format!("{}-{}", sanitize(name), utc_stamp(SystemTime::now()));
        for n in 1u32.. {
            let candidate = match n {
                1 => runs_root.join(&base),
                _ => runs_root.join(format!("{base}-{n}")),
            };
            // create_dir (not _all) fails on an existing folder, so two runs never share one.
            match std::fs::create_dir(&candidate) {
                Ok(()) => return Self::init(candidate, resolved_config),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).with_context(|| format!("creating {}", candidate.display()))
                }
            }
        }
        unreachable!("u32 suffixes exhausted")
    }

    /// Creates a run folder at exactly `path`, which must not exist or be empty.
    pub fn create_at(path: &Path, resolved_config: &str) -> Result<Self> {
        if path.exists() {
            let nonempty = std::fs::read_dir(path)
                .with_context(|| format!("listing {}", path.display()))?
                .next()
                .is_some();
            if nonempty {
                bail!(
                    "{} already exists and is not empty (use --resume to continue a run)",
                    path.display()
                );
            }
        } else {
            std::fs::create_dir_all(path)
                .with_context(|| format!("creating {}", path.display()))?;
        }
        Self::init(path.to_path_buf(), resolved_config)
    }

    /// Opens a run folder made by `create` (for `--resume`, `report`).
    pub fn open_existing(path: &Path) -> Result<Self> {
        if !path.join(CONFIG_FILE).is_file() {
            bail!("{} is not a run folder (no {CONFIG_FILE})", path.display());
        }
        std::fs::create_dir_all(path.join(LOGS_DIR))?;
        let checkpoints = CheckpointDir::new(path.join(CHECKPOINTS_DIR))?;
        checkpoints.remove_stale_temps()?;
        Ok(Self {
            root: path.to_path_buf(),
            checkpoints,
        })
    }

    fn init(root: PathBuf, resolved_config: &str) -> Result<Self> {
        std::fs::create_dir_all(root.join(LOGS_DIR))?;
        let checkpoints = CheckpointDir::new(root.join(CHECKPOINTS_DIR))?;
        write_atomic(&root.join(CONFIG_FILE), resolved_config.as_bytes())?;
        Ok(Self { root, checkpoints })
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join(CONFIG_FILE)
    }

    pub fn metrics_path(&self) -> PathBuf {
        self.root.join(METRICS_FILE)
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.root.join(LOGS_DIR)
    }

    pub fn checkpoints(&self) -> &CheckpointDir {
        &self.checkpoints
    }

    /// The config the run was started with.
    pub fn read_config(&self) -> Result<String> {
        std::fs::read_to_string(self.config_path())
            .with_context(|| format!("reading {}", self.config_path().display()))
    }

    /// Opens `metrics.jsonl` for appending, first cutting a torn last line left by a crash.
    pub fn metrics_writer(&self) -> Result<(MetricsWriter, TailRepair)> {
        MetricsWriter::open(&self.metrics_path())
    }
}

/// Keeps run names to one path segment of portable characters.
fn sanitize(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match s.trim_matches('.') {
        "" => "run".to_string(),
        t => t.to_string(),
    }
}

/// `YYYYmmdd-HHMMSS` in UTC, without a date library.
fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps_are_utc_calendar_dates() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
        // 2024-02-29T23:59:59Z
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199);
        assert_eq!(utc_stamp(t), "20240229-235959");
    }

    #[test]
    fn names_become_one_segment() {
        assert_eq!(sanitize("demo/run 1"), "demo_run_1");
        assert_eq!(sanitize(".."), "run");
    }
}
