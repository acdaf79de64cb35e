//! In-memory dataset: chronological item sequences per user, item metadata, optional reviews and
//! semantic IDs. Users and items are dense 0-based indices (the JSON keys of SPEC.md section 1).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Item metadata. Every field may be missing in real catalogues. Reading is lenient about the
/// shapes found in the wild (description as a list of paragraphs, categories as a comma-separated
/// string or nested lists, price as `"$3.17"`); writing is canonical.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ItemMeta {
    #[serde(
        default,
        deserialize_with = "de_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub title: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub brand: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_categories",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub categories: Vec<String>,
    #[serde(
        default,
        deserialize_with = "de_price",
        skip_serializing_if = "Option::is_none"
    )]
    pub price: Option<f64>,
}

/// A user's review of an item (`D.review.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Review {
    #[serde(
        default,
        deserialize_with = "de_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub review: Option<String>,
    #[serde(
        default,
        deserialize_with = "de_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub summary: Option<String>,
}

/// A dataset `D` as stored in a folder (see `io` for the files).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dataset {
    /// The `D` of the file names.
    pub name: String,
    /// `sequences[u]` = user u's items, oldest first.
    pub sequences: Vec<Vec<u32>>,
    /// `items[i]` = item i's metadata.
    pub items: Vec<ItemMeta>,
    /// Reviews keyed by (user, item).
    pub reviews: BTreeMap<(u32, u32), Review>,
    /// `index[i]` = item i's semantic ID tokens, once an indexer wrote them.
    pub index: Option<Vec<Vec<String>>>,
}

impl Dataset {
    pub fn n_users(&self) -> usize {
        self.sequences.len()
    }

    pub fn n_items(&self) -> usize {
        self.items.len()
    }

    pub fn n_interactions(&self) -> usize {
        self.sequences.iter().map(Vec::len).sum()
    }

    /// Consistency checks shared by the reader and the writer; the message says what is wrong.
    pub fn check(&self) -> Result<(), String> {
        check_name(&self.name)?;
        let n_items = self.items.len();
        for (u, seq) in self.sequences.iter().enumerate() {
            if let Some(&i) = seq.iter().find(|&&i| i as usize >= n_items) {
                return Err(format!(
                    "user {u}: unknown item id {i} (the catalogue has {n_items} items)"
                ));
            }
        }
        for &(u, i) in self.reviews.keys() {
            if u as usize >= self.sequences.len() || i as usize >= n_items {
                return Err(format!("review ({u}, {i}) names an unknown user or item"));
            }
        }
        if let Some(index) = &self.index {
            if index.len() != n_items {
                return Err(format!(
                    "index covers {} items, the catalogue has {n_items}",
                    index.len()
                ));
            }
            if let Some(i) = index.iter().position(Vec::is_empty) {
                return Err(format!("item {i} has an empty semantic ID"));
            }
        }
        Ok(())
    }
}

/// Dataset names become file-name prefixes: keep them to one plain path component.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(format!("invalid dataset name {name:?}"));
    }
    Ok(())
}

// ---- lenient field readers (also used by the importers on raw metadata) ----

/// Text from a string, a list of strings (joined by a space) or a number; blank becomes None.
pub fn text_from_value(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(text_from_value)
            .collect::<Vec<_>>()
            .join(" "),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    (!s.is_empty()).then_some(s)
}

/// Categories from `"A, B"`, `["A", "B"]` or `[["A", "B"], ["A", "C"]]` (Amazon 2014), flattened,
/// blank and repeated entries dropped, first occurrence order kept.
pub fn categories_from_value(v: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => {
                for part in s.split(',') {
                    let part = part.split_whitespace().collect::<Vec<_>>().join(" ");
                    if !part.is_empty() && !out.contains(&part) {
                        out.push(part);
                    }
                }
            }
            Value::Array(xs) => xs.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

/// Price from a number or from the first number in a string like `"$1,299.00"` or
/// `"$3.17 - $5.00"`; non-finite or negative values become None.
pub fn price_from_value(v: &Value) -> Option<f64> {
    let p = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => {
            let start = s.find(|c: char| c.is_ascii_digit())?;
            let num: String = s[start..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
                .filter(|c| *c != ',')
                .collect();
            num.parse().ok()?
        }
        _ => return None,
    };
    (p.is_finite() && p >= 0.0).then_some(p)
}

fn de_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(text_from_value(&Value::deserialize(d)?))
}

fn de_categories<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(categories_from_value(&Value::deserialize(d)?))
}

fn de_price<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(price_from_value(&Value::deserialize(d)?))
}

// ---- JSON keys ----

/// A JSON object key that must be a non-negative integer ("12"). Parsing inside serde lets
/// serde_json report the line and column of a bad key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct IdxKey(pub u32);

impl<'de> Deserialize<'de> for IdxKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = IdxKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a non-negative integer key such as \"12\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<IdxKey, E> {
                s.trim().parse().map(IdxKey).map_err(|_| {
                    E::custom(format!("key {s:?} is not a non-negative integer index"))
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// The `"(uid, iid)"` key of `D.review.json` (Python's tuple repr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PairKey(pub u32, pub u32);

pub(crate) fn parse_pair_key(s: &str) -> Option<(u32, u32)> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    let (a, b) = inner.split_once(',')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

pub(crate) fn format_pair_key(u: u32, i: u32) -> String {
    format!("({u}, {i})")
}

impl<'de> Deserialize<'de> for PairKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = PairKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key of the form \"(uid, iid)\"")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<PairKey, E> {
                parse_pair_key(s)
                    .map(|(u, i)| PairKey(u, i))
                    .ok_or_else(|| {
                        E::custom(format!("key {s:?} is not of the form \"(uid, iid)\""))
                    })
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lenient_metadata_shapes() {
        let m: ItemMeta = serde_json::from_value(json!({
            "title": "  Girls'  Ballet Tutu ",
            "description": ["Soft.", "Pink."],
            "categories": [["Clothing", "Girls"], ["Clothing", "Ballet"]],
            "price": "$1,299.50 - $1,500.00",
            "brand": null
        }))
        .unwrap();
        assert_eq!(m.title.as_deref(), Some("Girls' Ballet Tutu"));
        assert_eq!(m.description.as_deref(), Some("Soft. Pink."));
        assert_eq!(m.categories, vec!["Clothing", "Girls", "Ballet"]);
        assert_eq!(m.price, Some(1299.5));
        assert_eq!(m.brand, None);
        let m: ItemMeta =
            serde_json::from_value(json!({"categories": "A, B ,A", "price": 3})).unwrap();
        assert_eq!(m.categories, vec!["A", "B"]);
        assert_eq!(m.price, Some(3.0));
        assert_eq!(serde_json::to_string(&ItemMeta::default()).unwrap(), "{}");
    }

    #[test]
    fn pair_keys() {
        assert_eq!(parse_pair_key("(3, 14)"), Some((3, 14)));
        assert_eq!(parse_pair_key(" (3,14) "), Some((3, 14)));
        assert_eq!(parse_pair_key("3, 14"), None);
        assert_eq!(parse_pair_key("(3, -1)"), None);
        assert_eq!(format_pair_key(3, 14), "(3, 14)");
    }

    #[test]
    fn check_finds_unknown_items() {
        let mut ds = Dataset {
            name: "D".into(),
            sequences: vec![vec![0, 1]],
            items: vec![ItemMeta::default(); 2],
            ..Default::default()
        };
        assert!(ds.check().is_ok());
        ds.sequences[0].push(2);
        assert!(ds.check().unwrap_err().contains("unknown item id 2"));
    }
}
