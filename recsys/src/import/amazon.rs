//! Raw Amazon review dumps (McAuley et al.), 2014 and 2018 editions: a reviews file and a
//! metadata file, one object per line, optionally gzipped.
//!
//! - reviews (both years, JSON): `reviewerID`, `asin`, `unixReviewTime`, optional `reviewText`,
//!   `summary`.
//! - metadata 2014: Python literals (`{'asin': ..., 'categories': [[...]], 'price': 3.17}`);
//!   metadata 2018: JSON (`category` list, `description` list, `price` like `"$12.99"`). Each line
//!   is tried as JSON, then as a Python literal, so either edition (or a mix) works.
//!
//! The first metadata line per `asin` wins (the 2018 dump repeats some).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{name_from_path, pylit, ImportReport, Malformed, OnMalformed};
use crate::dataset::{
    categories_from_value, price_from_value, text_from_value, Dataset, ItemMeta, Review,
};
use crate::error::{DataError, Result};
use crate::io::for_each_line;
use crate::preprocess::{preprocess, PreprocessConfig, RawInteraction, RawLog};

#[derive(Debug, Clone)]
pub struct AmazonConfig {
    pub reviews: PathBuf,
    pub meta: PathBuf,
    /// Dataset name; default derived from the reviews file name (see `name_from_path`).
    pub name: Option<String>,
    pub on_malformed: OnMalformed,
    /// Keep review texts for `D.review.json`.
    pub keep_reviews: bool,
    pub preprocess: PreprocessConfig,
}

impl AmazonConfig {
    pub fn new(reviews: impl Into<PathBuf>, meta: impl Into<PathBuf>) -> Self {
        AmazonConfig {
            reviews: reviews.into(),
            meta: meta.into(),
            name: None,
            on_malformed: OnMalformed::Error,
            keep_reviews: true,
            preprocess: PreprocessConfig::default(),
        }
    }
}

pub fn import_amazon(cfg: &AmazonConfig) -> Result<(Dataset, ImportReport)> {
    let name = cfg
        .name
        .clone()
        .unwrap_or_else(|| name_from_path(&cfg.reviews));
    let mut bad = Malformed::new(cfg.on_malformed);
    let mut log = RawLog::default();

    tracing::info!(file = %cfg.meta.display(), "reading Amazon metadata");
    let mut lines_read = for_each_line(&cfg.meta, |n, line| match parse_meta(line) {
        Ok((asin, meta)) => {
            log.items.entry(asin).or_insert(meta);
            Ok(())
        }
        Err(msg) => bad.handle(DataError::line(&cfg.meta, n, msg)),
    })?;

    tracing::info!(file = %cfg.reviews.display(), "reading Amazon reviews");
    lines_read += for_each_line(&cfg.reviews, |n, line| match parse_review(line) {
        Ok((x, review)) => {
            if cfg.keep_reviews && (review.review.is_some() || review.summary.is_some()) {
                log.reviews
                    .entry((x.user.clone(), x.item.clone()))
                    .or_insert(review);
            }
            log.interactions.push(x);
            Ok(())
        }
        Err(msg) => bad.handle(DataError::line(&cfg.reviews, n, msg)),
    })?;

    let (ds, pre) = preprocess(&name, log, &cfg.preprocess)?;
    Ok((
        ds,
        ImportReport {
            format: "amazon",
            name,
            files: vec![cfg.reviews.clone(), cfg.meta.clone()],
            lines_read,
            malformed_skipped: bad.skipped,
            malformed_examples: bad.examples,
            preprocess: pre,
        },
    ))
}

fn field_str(obj: &Value, key: &str) -> Result<String, String> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(_) => Err(format!("field {key:?} is not a non-empty string")),
        None => Err(format!("missing field {key:?}")),
    }
}

fn parse_review(line: &str) -> Result<(RawInteraction, Review), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("invalid JSON: {e}"))?;
    if !v.is_object() {
        return Err("expected a JSON object".into());
    }
    let user = field_str(&v, "reviewerID")?;
    let item = field_str(&v, "asin")?;
    let time = match v.get("unixReviewTime") {
        Some(Value::Number(n)) => n.as_f64().ok_or("bad unixReviewTime")?,
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| "unixReviewTime is not a number")?,
        _ => return Err("missing field \"unixReviewTime\"".into()),
    };
    let text = |k: &str| v.get(k).and_then(text_from_value).map(|s| clean_text(&s));
    let review = Review {
        review: text("reviewText"),
        summary: text("summary"),
    };
    Ok((RawInteraction { user, item, time }, review))
}

fn parse_meta(line: &str) -> Result<(String, ItemMeta), String> {
    let v: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(_) => {
            pylit::parse(line).map_err(|e| format!("neither JSON nor a Python literal: {e}"))?
        }
    };
    if !v.is_object() {
        return Err("expected an object".into());
    }
    let asin = field_str(&v, "asin")?;
    let text = |k: &str| {
        v.get(k)
            .and_then(text_from_value)
            .map(|s| clean_text(&s))
            .filter(|s| !s.is_empty())
    };
    // 2014 has `categories` (list of paths), 2018 has `category` (one path).
    let cats = v.get("categories").or_else(|| v.get("category"));
    let meta = ItemMeta {
        title: text("title"),
        description: text("description"),
        brand: text("brand"),
        categories: cats
            .map(categories_from_value)
            .unwrap_or_default()
            .into_iter()
            .map(|c| clean_text(&c))
            .filter(|c| !c.is_empty())
            .collect(),
        price: v.get("price").and_then(price_from_value),
    };
    Ok((asin, meta))
}

/// The 2018 metadata carries HTML entities and stray tags; keep plain text.
fn clean_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    if in_tag {
        // An unmatched '<' was text, not a tag.
        out = s.to_string();
    }
    // `&amp;` last, so `&amp;lt;` decodes once to `&lt;`, as a browser shows it.
    let mut text = out;
    for (k, v) in [
        ("&quot;", "\""),
        ("&#39;", "'"),
        ("&apos;", "'"),
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&nbsp;", " "),
        ("&amp;", "&"),
    ] {
        text = text.replace(k, v);
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Helper for callers that only have the folder: the conventional file names of one category
/// (`reviews_X_5.json[.gz]` + `meta_X.json[.gz]` for 2014, `X_5.json[.gz]`/`X.json[.gz]` +
/// `meta_X.json[.gz]` for 2018), first existing pair wins.
pub fn find_files(dir: &Path, category: &str) -> Option<(PathBuf, PathBuf)> {
    let reviews = [
        format!("reviews_{category}_5.json"),
        format!("reviews_{category}.json"),
        format!("{category}_5.json"),
        format!("{category}.json"),
    ];
    let pick = |names: &[String]| {
        names
            .iter()
            .flat_map(|n| [dir.join(n), dir.join(format!("{n}.gz"))])
            .find(|p| p.is_file())
    };
    Some((pick(&reviews)?, pick(&[format!("meta_{category}.json")])?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_lines_of_both_editions() {
        let (asin, m) = parse_meta(r#"{'asin': 'A1', 'title': "Girls' Ballet Tutu", 'categories': [['Clothing', 'Girls']], 'price': 3.17, 'brand': 'Coxlures'}"#).unwrap();
        assert_eq!(asin, "A1");
        assert_eq!(m.title.as_deref(), Some("Girls' Ballet Tutu"));
        assert_eq!(m.categories, ["Clothing", "Girls"]);
        assert_eq!(m.price, Some(3.17));
        let (_, m) = parse_meta(r#"{"asin": "B2", "title": "Strings &amp; Things <b>Pro</b>", "category": ["Musical Instruments", "Strings"], "description": ["Bright.", "Long-lasting."], "price": "$12.99"}"#).unwrap();
        assert_eq!(m.title.as_deref(), Some("Strings & Things Pro"));
        assert_eq!(m.description.as_deref(), Some("Bright. Long-lasting."));
        assert_eq!(m.price, Some(12.99));
        assert!(parse_meta("{'title': 'x'}").unwrap_err().contains("asin"));
        assert!(parse_meta("{'asin': 'x',").unwrap_err().contains("column"));
    }

    #[test]
    fn review_lines() {
        let (x, r) = parse_review(r#"{"reviewerID": "U1", "asin": "A1", "overall": 5.0, "reviewText": "Great", "summary": "Five", "unixReviewTime": 1390000000}"#).unwrap();
        assert_eq!(
            (x.user.as_str(), x.item.as_str(), x.time),
            ("U1", "A1", 1.39e9)
        );
        assert_eq!(
            (r.review.as_deref(), r.summary.as_deref()),
            (Some("Great"), Some("Five"))
        );
        assert!(parse_review(r#"{"reviewerID": "U1", "asin": "A1"}"#)
            .unwrap_err()
            .contains("unixReviewTime"));
        assert!(parse_review("[1]").is_err());
    }

    #[test]
    fn clean_text_keeps_plain_comparisons() {
        assert_eq!(clean_text("a < b and c"), "a < b and c");
        assert_eq!(clean_text("x <br/> y"), "x y");
    }
}
