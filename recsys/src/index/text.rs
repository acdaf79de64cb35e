//! Fused item text (SPEC.md section 2): title, brand, categories, description and, optionally,
//! reviews from training interactions only (`Split::train_reviews_by_item`), so no validation
//! or test interaction leaks into the IDs.

use crate::dataset::{Dataset, ItemMeta, Review};
use crate::split::Split;

/// Which evidence goes into an item's text, and how much of the free text.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextConfig {
    pub use_reviews: bool,
    /// At most this many training reviews per item (in (user, item) key order).
    pub max_reviews: usize,
    /// Descriptions and reviews are cut at a word boundary after this many characters.
    pub max_chars: usize,
}

impl Default for TextConfig {
    fn default() -> Self {
        TextConfig {
            use_reviews: true,
            max_reviews: 5,
            max_chars: 600,
        }
    }
}

/// Cut `s` at the last word boundary within `max` characters.
pub fn clip(s: &str, max: usize) -> &str {
    if s.chars().count() <= max {
        return s;
    }
    let end = s.char_indices().nth(max).map_or(s.len(), |(b, _)| b);
    match s[..end].rfind(char::is_whitespace) {
        Some(b) if b > 0 => &s[..b],
        _ => &s[..end],
    }
}

/// One item's fused text: labelled fields on separate lines, missing fields left out.
pub fn fuse(meta: &ItemMeta, reviews: &[&Review], cfg: &TextConfig) -> String {
    let mut lines = Vec::new();
    if let Some(t) = &meta.title {
        lines.push(format!("Title: {t}"));
    }
    if let Some(b) = &meta.brand {
        lines.push(format!("Brand: {b}"));
    }
    if !meta.categories.is_empty() {
        lines.push(format!("Categories: {}", meta.categories.join(" > ")));
    }
    if let Some(d) = &meta.description {
        lines.push(format!("Description: {}", clip(d, cfg.max_chars)));
    }
    if cfg.use_reviews {
        for r in reviews.iter().take(cfg.max_reviews) {
            let text = [r.summary.as_deref(), r.review.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(". ");
            if !text.is_empty() {
                lines.push(format!("Review: {}", clip(&text, cfg.max_chars)));
            }
        }
    }
    lines.join("\n")
}

/// Fused texts of all items, `out[i]` for item i.
pub fn item_texts(ds: &Dataset, split: &Split, cfg: &TextConfig) -> Vec<String> {
    let reviews = if cfg.use_reviews {
        split.train_reviews_by_item(ds)
    } else {
        vec![Vec::new(); ds.n_items()]
    };
    ds.items
        .iter()
        .zip(&reviews)
        .map(|(m, r)| fuse(m, r, cfg))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_fields_and_clipping() {
        let m = ItemMeta {
            title: Some("Capo".into()),
            brand: Some("Zed".into()),
            categories: vec!["Music".into(), "Guitars".into()],
            description: Some("one two three four".into()),
            price: Some(3.0),
        };
        let r = Review {
            review: Some("great".into()),
            summary: Some("ok".into()),
        };
        let cfg = TextConfig {
            max_chars: 9,
            ..Default::default()
        };
        let t = fuse(&m, &[&r], &cfg);
        assert_eq!(
            t,
            "Title: Capo\nBrand: Zed\nCategories: Music > Guitars\nDescription: one two\nReview: ok. great"
        );
        assert_eq!(clip("abcdefghijk", 4), "abcd");
    }
}
