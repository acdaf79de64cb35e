//! Importers: raw logs in a source format -> `RawLog` -> `preprocess` -> `Dataset`.

pub mod amazon;
pub mod gream;
pub mod pylit;
pub mod recbole;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{DataError, Result};
use crate::preprocess::PreprocessReport;

/// What to do with a line that cannot be parsed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub enum OnMalformed {
    /// Stop with an error naming the file and line (default: bad data should be seen).
    #[default]
    Error,
    /// Skip it, count it in the report and log a warning.
    Skip,
}

/// Everything an import did, for the CLI to print or save.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub format: &'static str,
    pub name: String,
    pub files: Vec<PathBuf>,
    pub lines_read: usize,
    pub malformed_skipped: usize,
    /// The first few skipped lines' errors, to see what went wrong without a log.
    pub malformed_examples: Vec<String>,
    pub preprocess: PreprocessReport,
}

/// Applies the `OnMalformed` policy and counts skipped lines.
#[derive(Debug, Default)]
pub(crate) struct Malformed {
    policy: OnMalformed,
    pub skipped: usize,
    pub examples: Vec<String>,
}

impl Malformed {
    pub fn new(policy: OnMalformed) -> Self {
        Malformed {
            policy,
            ..Default::default()
        }
    }

    pub fn handle(&mut self, err: DataError) -> Result<()> {
        match self.policy {
            OnMalformed::Error => Err(err),
            OnMalformed::Skip => {
                tracing::warn!("skipping malformed line: {err}");
                self.skipped += 1;
                if self.examples.len() < 5 {
                    self.examples.push(err.to_string());
                }
                Ok(())
            }
        }
    }
}

/// A dataset name from a raw file name: extensions (`.gz`, `.json`, `.inter`, ...) and the
/// Amazon dump decorations (`reviews_` / `meta_` prefixes, `_5` 5-core suffix) removed, e.g.
/// `reviews_Musical_Instruments_5.json.gz` -> `Musical_Instruments`.
pub fn name_from_path(path: &Path) -> String {
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or("dataset");
    let mut stem = file;
    for ext in [".gz", ".json", ".jsonl", ".inter", ".item", ".txt"] {
        stem = stem.strip_suffix(ext).unwrap_or(stem);
    }
    let stem = stem
        .strip_prefix("reviews_")
        .or_else(|| stem.strip_prefix("meta_"))
        .unwrap_or(stem);
    let stem = stem.strip_suffix("_5").unwrap_or(stem);
    if stem.is_empty() {
        "dataset".to_string()
    } else {
        stem.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_amazon_and_recbole_files() {
        assert_eq!(
            name_from_path(Path::new("/x/reviews_Musical_Instruments_5.json.gz")),
            "Musical_Instruments"
        );
        assert_eq!(name_from_path(Path::new("Beauty.json")), "Beauty");
        assert_eq!(name_from_path(Path::new("ml-100k.inter")), "ml-100k");
    }

    #[test]
    fn skip_policy_counts() {
        let mut m = Malformed::new(OnMalformed::Skip);
        m.handle(DataError::line(Path::new("f"), 3, "bad")).unwrap();
        assert_eq!((m.skipped, m.examples[0].as_str()), (1, "f: line 3: bad"));
        let mut m = Malformed::new(OnMalformed::Error);
        assert!(m.handle(DataError::line(Path::new("f"), 3, "bad")).is_err());
    }
}
