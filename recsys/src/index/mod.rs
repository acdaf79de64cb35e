//! Item indexing (SPEC.md section 2): fused item text -> embedding (an `ItemEmbedder`,
//! optionally fused with collaborative factors) -> residual balanced K-means -> semantic-ID
//! tokens with a collision token -> `D.index.json`.
//!
//! Fusion: the embedder's vectors and the collaborative factors are each scaled to unit l2
//! norm per item, the collaborative block is multiplied by its weight, and the two are
//! concatenated (so the weight is the ratio of their contributions to squared distances).

pub mod collab;
pub mod embed;
pub mod ids;
pub mod kmeans;
pub mod linalg;
pub mod text;
pub mod tfidf;

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use collab::CollabConfig;
pub use embed::{EmbedError, ItemEmbedder, TfidfEmbedder};
pub use ids::{all_index_tokens, PrefixStats};
pub use text::TextConfig;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::split::Split;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// L (SPEC.md default 4; at most 25 so the collision letter stays in a..z).
    pub levels: usize,
    /// K per level; each level uses min(K, n items).
    pub codes: usize,
    pub seed: u64,
    /// Lloyd iterations per level (stops early when the assignment is stable).
    pub max_iter: usize,
    pub text: TextConfig,
    /// Collaborative factors fused into the embedding; None = text only.
    pub collab: Option<CollabConfig>,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            levels: 4,
            codes: 256,
            seed: 42,
            max_iter: 30,
            text: TextConfig::default(),
            collab: Some(CollabConfig::default()),
        }
    }
}

impl IndexConfig {
    fn check(&self) -> Result<()> {
        let bad = |msg: &str| {
            Err(DataError::Config {
                msg: format!("index: {msg}"),
            })
        };
        if !(1..=25).contains(&self.levels) {
            return bad("levels must be in 1..=25");
        }
        if self.codes == 0 {
            return bad("codes must be at least 1");
        }
        if let Some(c) = &self.collab {
            if c.dims == 0 || c.window == 0 || !(c.weight.is_finite() && c.weight >= 0.0) {
                return bad("collab needs dims >= 1, window >= 1 and a finite weight >= 0");
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelReport {
    pub level: usize,
    /// Codes available at this level (min(K, n)).
    pub codes: usize,
    pub used: usize,
    pub min_cluster: usize,
    pub max_cluster: usize,
    pub iterations: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexReport {
    /// Which embedding produced the index.
    pub embedding: String,
    pub dims: usize,
    pub items: usize,
    pub levels: Vec<LevelReport>,
    /// Share of items whose L codes are shared with another item (before the extra token).
    pub collision_rate: f64,
    pub collision_groups: usize,
    pub max_collision: usize,
    pub prefixes: Vec<PrefixStats>,
    pub seed: u64,
}

impl fmt::Display for IndexReport {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        writeln!(f, "embedding: {} ({} dims)", self.embedding, self.dims)?;
        writeln!(f, "items: {}, seed {}", self.items, self.seed)?;
        for l in &self.levels {
            writeln!(
                f,
                "level {} ({}): {}/{} codes used ({:.1}%), cluster sizes {}..={}, {} iterations",
                l.level + 1,
                ids::level_letter(l.level),
                l.used,
                l.codes,
                100.0 * l.used as f64 / l.codes as f64,
                l.min_cluster,
                l.max_cluster,
                l.iterations
            )?;
        }
        for p in &self.prefixes {
            writeln!(
                f,
                "depth {}: {} prefixes, items per prefix max {} mean {:.2}",
                p.depth, p.prefixes, p.max_items, p.mean_items
            )?;
        }
        write!(
            f,
            "collisions before the extra token: {:.2}% of items in {} groups (largest {})",
            100.0 * self.collision_rate,
            self.collision_groups,
            self.max_collision
        )
    }
}

/// Item embeddings (n x dim, flat) and the embedding's name.
fn embeddings(
    ds: &Dataset,
    split: &Split,
    cfg: &IndexConfig,
    embedder: &dyn ItemEmbedder,
) -> Result<(Vec<f32>, usize, String)> {
    let texts = text::item_texts(ds, split, &cfg.text);
    let ext = |msg: String| DataError::External {
        what: format!("embedder {}", embedder.name()),
        msg,
    };
    let mut rows = embedder.embed(&texts).map_err(|e| ext(e.to_string()))?;
    if rows.len() != ds.n_items() {
        return Err(ext(format!(
            "returned {} vectors for {} items",
            rows.len(),
            ds.n_items()
        )));
    }
    let dim = rows[0].len();
    if dim == 0 || rows.iter().any(|r| r.len() != dim) {
        return Err(ext("vectors are empty or of different lengths".into()));
    }
    if rows.iter().flatten().any(|x| !x.is_finite()) {
        return Err(ext("vectors hold non-finite values".into()));
    }
    let mut name = embedder.name();
    linalg::l2_normalize_rows(&mut rows);
    if let Some(c) = cfg.collab.as_ref().filter(|c| c.weight > 0.0) {
        let mut cf = collab::collab_factors(ds.n_items(), split.train_sequences(), c);
        linalg::l2_normalize_rows(&mut cf);
        for (r, extra) in rows.iter_mut().zip(cf) {
            r.extend(extra.into_iter().map(|x| x * c.weight));
        }
        name = format!("{name} + {}", c.describe());
    }
    let dim = rows[0].len();
    Ok((rows.concat(), dim, name))
}

/// Semantic IDs for every item of `ds` (`out[i]` = item i's tokens) and the report. Pure: the
/// caller writes the file (`io::write_index`, or `index_folder`).
pub fn build_index(
    ds: &Dataset,
    cfg: &IndexConfig,
    embedder: &dyn ItemEmbedder,
) -> Result<(Vec<Vec<String>>, IndexReport)> {
    cfg.check()?;
    if ds.n_items() == 0 {
        return Err(DataError::Empty {
            msg: format!("dataset {:?} has no items to index", ds.name),
        });
    }
    let split = Split::new(ds)?;
    let (mut residual, dim, embedding) = embeddings(ds, &split, cfg, embedder)?;
    let n = ds.n_items();
    let mut codes = vec![Vec::with_capacity(cfg.levels); n];
    let mut levels = Vec::with_capacity(cfg.levels);
    for l in 0..cfg.levels {
        let p = kmeans::Points {
            data: &residual,
            dim,
        };
        let seed = cfg.seed.wrapping_mul(1_000_003).wrapping_add(l as u64);
        let c = kmeans::balanced_kmeans(&p, cfg.codes, cfg.max_iter, seed);
        let mut size = vec![0usize; c.k];
        for (i, &a) in c.assign.iter().enumerate() {
            size[a] += 1;
            codes[i].push(a);
        }
        levels.push(LevelReport {
            level: l,
            codes: c.k,
            used: size.iter().filter(|&&s| s > 0).count(),
            min_cluster: size.iter().copied().min().unwrap_or(0),
            max_cluster: size.iter().copied().max().unwrap_or(0),
            iterations: c.iterations,
        });
        // R_{l+1} = R_l - c_s.
        for (i, &a) in c.assign.iter().enumerate() {
            let centre = &c.centres[a * dim..(a + 1) * dim];
            for (x, m) in residual[i * dim..(i + 1) * dim].iter_mut().zip(centre) {
                *x -= m;
            }
        }
    }
    let ids = ids::assign_ids(&codes);
    let report = IndexReport {
        embedding,
        dims: dim,
        items: n,
        levels,
        collision_rate: ids.collision_rate,
        collision_groups: ids.collision_groups,
        max_collision: ids.max_collision,
        prefixes: ids::prefix_stats(&codes),
        seed: cfg.seed,
    };
    tracing::info!(
        items = n,
        collision_rate = report.collision_rate,
        "semantic IDs built ({})",
        report.embedding
    );
    Ok((ids.tokens, report))
}

/// Load the dataset in `dir`, index it and write `D.index.json` atomically.
pub fn index_folder(
    dir: &Path,
    cfg: &IndexConfig,
    embedder: &dyn ItemEmbedder,
) -> Result<IndexReport> {
    let ds = crate::io::load(dir)?;
    let (tokens, report) = build_index(&ds, cfg, embedder)?;
    crate::io::write_index(dir, &ds.name, &tokens)?;
    Ok(report)
}
