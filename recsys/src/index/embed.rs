//! Item embedders. `ItemEmbedder` is the seam for the backbone LLM (the model crate will
//! implement it with the attention-masked mean of the last hidden states); `TfidfEmbedder` is
//! the documented offline embedder for untrained or tiny backbones whose hidden states carry
//! no meaning yet.

use serde::{Deserialize, Serialize};

use super::linalg::{dense_to_rows, truncated_svd};
use super::tfidf::tfidf;

/// Error type of external embedders (kept open: the model crate has its own errors).
pub type EmbedError = Box<dyn std::error::Error + Send + Sync>;

/// Maps item texts (`texts[i]` = item i's fused text) to one f32 vector each, all of the same
/// length.
pub trait ItemEmbedder {
    /// Names the embedding in the index report (model, pooling, dimensions, ...).
    fn name(&self) -> String;
    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Offline embedder: latent semantic analysis. TF-IDF of the fused text (vocabulary-based,
/// sublinear tf, l2-normalised rows; see `tfidf`) reduced to `dims` dimensions by a truncated
/// SVD (randomized subspace iteration with `power_iters` power steps from `seed`; see
/// `linalg::truncated_svd`). The output is U_k S_k, so dot products approximate those of the
/// TF-IDF rows. Deterministic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TfidfEmbedder {
    pub dims: usize,
    /// Terms in fewer documents are dropped.
    pub min_df: usize,
    pub power_iters: usize,
    pub seed: u64,
}

impl Default for TfidfEmbedder {
    fn default() -> Self {
        TfidfEmbedder {
            dims: 32,
            min_df: 2,
            power_iters: 4,
            seed: 17,
        }
    }
}

impl ItemEmbedder for TfidfEmbedder {
    fn name(&self) -> String {
        format!(
            "tfidf-lsa(sublinear tf, l2, min_df {}, truncated SVD to {} dims, {} power iterations, seed {})",
            self.min_df, self.dims, self.power_iters, self.seed
        )
    }

    fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if self.dims == 0 {
            return Err("tfidf embedder: dims must be at least 1".into());
        }
        let m = tfidf(texts, self.min_df);
        if m.n_cols == 0 {
            return Err(format!(
                "tfidf embedder: no term occurs in at least {} but not all of the {} item texts",
                self.min_df,
                texts.len()
            )
            .into());
        }
        let (emb, _) = truncated_svd(&m, self.dims, 8, self.power_iters, self.seed);
        Ok(dense_to_rows(&emb))
    }
}
