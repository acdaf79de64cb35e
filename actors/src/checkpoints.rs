//! Checkpoint folders: `step-N/` appear whole or not at all, `latest` names the newest, and only
//! the last K are kept.
//!
//! A checkpoint is written into `.tmp-step-N/`, fsynced, then renamed to `step-N/`; the `latest`
//! pointer is replaced atomically after that. A crash leaves at worst a `.tmp-*` folder (removed
//! on the next save) and a pointer one step behind, which `latest()` corrects by scanning.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::atomic::{sync_dir, sync_tree, write_atomic};

const LATEST: &str = "latest";
const TMP_PREFIX: &str = ".tmp-step-";
const OLD_PREFIX: &str = ".old-step-";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub step: u64,
    pub path: PathBuf,
}

/// The `checkpoints/` folder of a run.
#[derive(Clone, Debug)]
pub struct CheckpointDir {
    dir: PathBuf,
}

impl CheckpointDir {
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Starts checkpoint `step`: an empty temp folder to write files into.
    pub fn begin(&self, step: u64) -> Result<PendingCheckpoint> {
        self.remove_stale_temps()?;
        let tmp = self.dir.join(format!("{TMP_PREFIX}{step}"));
        std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(PendingCheckpoint {
            dir: self.clone(),
            tmp,
            step,
            committed: false,
        })
    }

    /// Writes a checkpoint through `write` (given the folder to fill), commits it and keeps the
    /// last `keep_last` (all when `None`).
    pub fn save<F>(&self, step: u64, keep_last: Option<usize>, write: F) -> Result<Checkpoint>
    where
        F: FnOnce(&Path) -> Result<()>,
    {
        let pending = self.begin(step)?;
        write(pending.path()).with_context(|| format!("writing checkpoint step {step}"))?;
        let ckpt = pending.commit()?;
        if let Some(k) = keep_last {
            self.prune(k)?;
        }
        Ok(ckpt)
    }

    /// Complete checkpoints, oldest first.
    pub fn list(&self) -> Result<Vec<Checkpoint>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)
            .with_context(|| format!("listing {}", self.dir.display()))?
        {
            let entry = entry?;
            let name = entry.file_name();
            let Some(step) = name.to_str().and_then(parse_step_name) else {
                continue;
            };
            if entry.file_type()?.is_dir() {
                out.push(Checkpoint {
                    step,
                    path: entry.path(),
                });
            }
        }
        out.sort_by_key(|c| c.step);
        Ok(out)
    }

    /// The newest complete checkpoint. Every `step-N/` is whole (it got its name by rename after
    /// an fsync), so a folder newer than the `latest` pointer means a crash hit between the rename
    /// and the pointer update: the folder wins and the pointer is only a hint for other tools.
    pub fn latest(&self) -> Result<Option<Checkpoint>> {
        let newest = self.list()?.pop();
        let pointed = self.pointer();
        if let (Some(c), Some(p)) = (&newest, pointed) {
            if p != c.step {
                tracing::warn!(
                    "`latest` names step {p}, newest complete checkpoint is {}",
                    c.step
                );
            }
        }
        Ok(newest)
    }

    /// The step the `latest` file names, if readable.
    pub fn pointer(&self) -> Option<u64> {
        std::fs::read_to_string(self.dir.join(LATEST))
            .ok()
            .and_then(|s| parse_step_name(s.trim()))
    }

    /// Deletes all but the newest `keep_last` checkpoints (at least one is kept, and never the
    /// one the `latest` pointer names). Returns the deleted folders.
    pub fn prune(&self, keep_last: usize) -> Result<Vec<PathBuf>> {
        let keep_last = keep_last.max(1);
        let list = self.list()?;
        let latest = self.pointer();
        let cut = list.len().saturating_sub(keep_last);
        let mut removed = Vec::new();
        for c in &list[..cut] {
            if Some(c.step) == latest {
                continue;
            }
            std::fs::remove_dir_all(&c.path)
                .with_context(|| format!("removing {}", c.path.display()))?;
            removed.push(c.path.clone());
        }
        Ok(removed)
    }

    /// Removes temp folders left by an interrupted save.
    pub fn remove_stale_temps(&self) -> Result<usize> {
        let mut n = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if (name.starts_with(TMP_PREFIX) || name.starts_with(OLD_PREFIX))
                && entry.file_type()?.is_dir()
            {
                std::fs::remove_dir_all(entry.path())
                    .with_context(|| format!("removing {}", entry.path().display()))?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// A checkpoint being written; dropped without `commit`, its temp folder is removed.
#[derive(Debug)]
pub struct PendingCheckpoint {
    dir: CheckpointDir,
    tmp: PathBuf,
    step: u64,
    committed: bool,
}

impl PendingCheckpoint {
    /// The folder to write this checkpoint's files into.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    pub fn step(&self) -> u64 {
        self.step
    }

    /// Makes the checkpoint durable and visible, then points `latest` at it.
    pub fn commit(mut self) -> Result<Checkpoint> {
        let root = self.dir.path().to_path_buf();
        let name = step_name(self.step);
        let target = root.join(&name);
        sync_tree(&self.tmp)?;
        // Re-saving a step (after a resume) replaces the old folder; it stays whole until then.
        let old = root.join(format!("{OLD_PREFIX}{}", self.step));
        let replaced = target.exists();
        if replaced {
            if target.is_file() {
                bail!("{} exists and is not a folder", target.display());
            }
            std::fs::rename(&target, &old)
                .with_context(|| format!("moving aside {}", target.display()))?;
        }
        std::fs::rename(&self.tmp, &target)
            .with_context(|| format!("renaming into {}", target.display()))?;
        self.committed = true;
        sync_dir(&root)?;
        write_atomic(&root.join(LATEST), format!("{name}\n").as_bytes())?;
        if replaced {
            std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))?;
        }
        Ok(Checkpoint {
            step: self.step,
            path: target,
        })
    }
}

impl Drop for PendingCheckpoint {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

pub fn step_name(step: u64) -> String {
    format!("step-{step}")
}

fn parse_step_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step-")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
