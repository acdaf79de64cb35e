//! TF-IDF of item texts with a vocabulary built from the corpus: lower-cased alphanumeric
//! tokens of 2+ characters, minus a few English stop words; terms in fewer than `min_df`
//! documents or in every document (idf 0) are dropped. Weight = (1 + ln tf) * ln(n / df)
//! (sublinear tf), rows l2-normalised.

use std::collections::BTreeMap;

use super::linalg::SparseRows;

const STOP: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "in", "is", "it", "its",
    "of", "on", "or", "that", "the", "this", "to", "was", "were", "will", "with",
];

pub fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| t.chars().count() >= 2)
        .map(str::to_lowercase)
        .filter(|t| !STOP.contains(&t.as_str()))
}

/// The sparse TF-IDF matrix (one row per text) and the vocabulary size.
pub fn tfidf(texts: &[String], min_df: usize) -> SparseRows {
    let n = texts.len();
    let counts: Vec<BTreeMap<String, u32>> = texts
        .iter()
        .map(|t| {
            let mut m = BTreeMap::new();
            for tok in tokens(t) {
                *m.entry(tok).or_insert(0) += 1;
            }
            m
        })
        .collect();
    let mut df: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &counts {
        for k in c.keys() {
            *df.entry(k.as_str()).or_insert(0) += 1;
        }
    }
    let vocab: BTreeMap<&str, (u32, f64)> = df
        .into_iter()
        .filter(|&(_, d)| d >= min_df.max(1) && d < n)
        .enumerate()
        .map(|(col, (term, d))| (term, (col as u32, (n as f64 / d as f64).ln())))
        .collect();
    let rows = counts
        .iter()
        .map(|c| {
            let mut row: Vec<(u32, f64)> = c
                .iter()
                .filter_map(|(term, &tf)| {
                    let &(col, idf) = vocab.get(term.as_str())?;
                    Some((col, (1.0 + (tf as f64).ln()) * idf))
                })
                .collect();
            let norm = row.iter().map(|x| x.1 * x.1).sum::<f64>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|x| x.1 /= norm);
            }
            row.sort_by_key(|x| x.0);
            row
        })
        .collect();
    SparseRows {
        n_cols: vocab.len(),
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_and_vocabulary() {
        let texts: Vec<String> = ["red red guitar", "blue guitar", "red drum of the"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let m = tfidf(&texts, 1);
        // vocabulary: blue, drum, red ("guitar" is in 2 of 3, kept; stop words gone).
        assert_eq!(m.n_cols, 4);
        for row in &m.rows {
            let n: f64 = row.iter().map(|x| x.1 * x.1).sum();
            assert!((n - 1.0).abs() < 1e-12);
        }
        // Doc 0 = [guitar, red]: both have df 2, so their ratio is the sublinear tf of "red" (2).
        let r0 = &m.rows[0];
        assert_eq!((r0[0].0, r0[1].0), (2, 3));
        assert!((r0[1].1 / r0[0].1 - (1.0 + 2f64.ln())).abs() < 1e-9);
        assert_eq!(tfidf(&texts, 2).n_cols, 2);
    }
}
