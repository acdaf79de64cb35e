//! The project's own JSON format (SPEC.md section 1) as an import source: a folder written by
//! the reference code or by hand. Unlike `io::load`, keys need not be dense and sequences may
//! name items without metadata; the data goes through the same preprocessing as raw logs (a
//! no-op on an already clean 5-core dataset), then is re-indexed.

use std::collections::HashMap;
use std::path::PathBuf;

use super::{ImportReport, OnMalformed};
use crate::dataset::Dataset;
use crate::error::Result;
use crate::io::{dataset_file, dataset_name, read_raw_folder, INTER_SUFFIX, ITEM_SUFFIX};
use crate::preprocess::{preprocess, PreprocessConfig, RawInteraction, RawLog};

#[derive(Debug, Clone)]
pub struct GreamConfig {
    pub dir: PathBuf,
    /// Default: the folder's only `*.inter.json`.
    pub name: Option<String>,
    /// JSON files are parsed whole, so a syntax error always stops the import; kept for a
    /// uniform CLI.
    pub on_malformed: OnMalformed,
    pub preprocess: PreprocessConfig,
}

impl GreamConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        GreamConfig {
            dir: dir.into(),
            name: None,
            on_malformed: OnMalformed::Error,
            preprocess: PreprocessConfig::default(),
        }
    }
}

pub fn import_gream(cfg: &GreamConfig) -> Result<(Dataset, ImportReport)> {
    let name = match &cfg.name {
        Some(n) => n.clone(),
        None => dataset_name(&cfg.dir)?,
    };
    let raw = read_raw_folder(&cfg.dir, &name)?;
    let n_source_items = raw.items.len();
    let mut log = RawLog::default();
    for (u, seq) in &raw.inter {
        // Sequences are already chronological: the position is the time.
        for (t, i) in seq.iter().enumerate() {
            log.interactions.push(RawInteraction {
                user: u.to_string(),
                item: i.to_string(),
                time: t as f64,
            });
        }
    }
    log.items = raw
        .items
        .iter()
        .map(|(i, m)| (i.to_string(), m.clone()))
        .collect();
    log.reviews = raw
        .reviews
        .iter()
        .map(|(&(u, i), r)| ((u.to_string(), i.to_string()), r.clone()))
        .collect::<HashMap<_, _>>();
    let (mut ds, pre) = preprocess(&name, log, &cfg.preprocess)?;

    // Semantic IDs survive only when item indices did not move.
    if let Some(index) = raw.index {
        let identity = ds.n_items() == n_source_items
            && pre
                .item_ids
                .iter()
                .enumerate()
                .all(|(k, s)| *s == k.to_string());
        if identity && (0..ds.n_items() as u32).all(|i| index.contains_key(&i)) {
            ds.index = Some(index.into_values().take(ds.n_items()).collect());
        } else {
            tracing::warn!(
                "items were filtered or re-indexed: dropping D.index.json, re-run the indexer"
            );
        }
    }
    Ok((
        ds,
        ImportReport {
            format: "gream",
            name: name.clone(),
            files: vec![
                dataset_file(&cfg.dir, &name, INTER_SUFFIX),
                dataset_file(&cfg.dir, &name, ITEM_SUFFIX),
            ],
            lines_read: 0,
            malformed_skipped: 0,
            malformed_examples: Vec::new(),
            preprocess: pre,
        },
    ))
}
