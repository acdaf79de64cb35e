//! RecBole atomic files: `NAME.inter` and `NAME.item`, tab-separated, first line a header of
//! `field:type` (type one of token, token_seq, float, float_seq).
//!
//! Fields used: `.inter` needs `user_id` and `item_id`; `timestamp` orders a user's sequence
//! (file order when absent); `review`/`review_text` and `summary`, when present, become reviews.
//! `.item` needs `item_id`; metadata comes from `title` (or `movie_title`, `item_name`, `name`),
//! `description` (or `desc`), `brand`, `categories` (or `category`, `genre`, `class`) and
//! `price`. A categories value is split on commas when it has any, else (token_seq) on spaces;
//! surrounding quotes and brackets are stripped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::{ImportReport, Malformed, OnMalformed};
use crate::dataset::{Dataset, ItemMeta, Review};
use crate::error::{DataError, Result};
use crate::io::for_each_line;
use crate::preprocess::{preprocess, PreprocessConfig, RawInteraction, RawLog};

#[derive(Debug, Clone)]
pub struct RecboleConfig {
    /// The folder holding `NAME.inter` and `NAME.item`.
    pub dir: PathBuf,
    /// `NAME`; default: the folder's only `*.inter` file.
    pub name: Option<String>,
    pub on_malformed: OnMalformed,
    pub preprocess: PreprocessConfig,
}

impl RecboleConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        RecboleConfig {
            dir: dir.into(),
            name: None,
            on_malformed: OnMalformed::Error,
            preprocess: PreprocessConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum FieldType {
    Token,
    TokenSeq,
    Float,
    FloatSeq,
}

#[derive(Debug)]
struct Header {
    fields: Vec<(String, FieldType)>,
}

impl Header {
    fn parse(path: &Path, line: &str) -> Result<Header> {
        let mut fields = Vec::new();
        for col in line.split('\t') {
            let (name, ty) = col.trim().split_once(':').ok_or_else(|| {
                DataError::line(path, 1, format!("header column {col:?} is not `name:type`"))
            })?;
            let ty = match ty {
                "token" => FieldType::Token,
                "token_seq" => FieldType::TokenSeq,
                "float" => FieldType::Float,
                "float_seq" => FieldType::FloatSeq,
                other => {
                    return Err(DataError::line(
                        path,
                        1,
                        format!("unknown field type {other:?} in {col:?}"),
                    ))
                }
            };
            fields.push((name.to_string(), ty));
        }
        Ok(Header { fields })
    }

    fn find(&self, names: &[&str]) -> Option<usize> {
        names
            .iter()
            .find_map(|n| self.fields.iter().position(|(f, _)| f == n))
    }

    fn require(&self, path: &Path, name: &str) -> Result<usize> {
        self.find(&[name])
            .ok_or_else(|| DataError::line(path, 1, format!("header has no `{name}` field")))
    }

    /// Split a data line and check column count and float fields.
    fn row<'a>(&self, line: &'a str) -> Result<Vec<&'a str>, String> {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() != self.fields.len() {
            return Err(format!(
                "{} columns, the header has {}",
                cols.len(),
                self.fields.len()
            ));
        }
        for (c, (name, ty)) in cols.iter().zip(&self.fields) {
            let bad = match ty {
                FieldType::Float => !c.trim().is_empty() && c.trim().parse::<f64>().is_err(),
                FieldType::FloatSeq => c.split_whitespace().any(|x| x.parse::<f64>().is_err()),
                _ => false,
            };
            if bad {
                return Err(format!("field `{name}`: {c:?} is not a number"));
            }
        }
        Ok(cols)
    }
}

/// Read a TSV file with a header: call `f(line_no, header, columns)` per data line.
fn read_tsv(
    path: &Path,
    bad: &mut Malformed,
    mut f: impl FnMut(&Header, &[&str]) -> Result<(), String>,
) -> Result<(Header, usize)> {
    let mut header: Option<Header> = None;
    let lines = for_each_line(path, |n, line| {
        let Some(h) = &header else {
            header = Some(Header::parse(path, line)?);
            return Ok(());
        };
        match h.row(line).and_then(|cols| f(h, &cols)) {
            Ok(()) => Ok(()),
            Err(msg) => bad.handle(DataError::line(path, n, msg)),
        }
    })?;
    let header = header.ok_or_else(|| DataError::line(path, 1, "empty file: no header"))?;
    Ok((header, lines))
}

fn single_inter_file(dir: &Path) -> Result<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".inter")
                .map(str::to_string)
        })
        .collect();
    names.sort();
    match names.len() {
        1 => Ok(names.pop().unwrap()),
        0 => Err(DataError::Layout {
            msg: format!("{}: no *.inter file", dir.display()),
        }),
        _ => Err(DataError::Layout {
            msg: format!(
                "{}: several *.inter files ({}); name one",
                dir.display(),
                names.join(", ")
            ),
        }),
    }
}

fn categories(value: &str, ty: FieldType) -> Vec<String> {
    let parts: Vec<&str> = if value.contains(',') {
        value.split(',').collect()
    } else if ty == FieldType::TokenSeq {
        value.split_whitespace().collect()
    } else {
        vec![value]
    };
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        let p = p
            .trim()
            .trim_matches(|c| matches!(c, '[' | ']' | '\'' | '"'))
            .trim();
        if !p.is_empty() && !out.iter().any(|c| c == p) {
            out.push(p.to_string());
        }
    }
    out
}

pub fn import_recbole(cfg: &RecboleConfig) -> Result<(Dataset, ImportReport)> {
    let name = match &cfg.name {
        Some(n) => n.clone(),
        None => single_inter_file(&cfg.dir)?,
    };
    let inter_path = cfg.dir.join(format!("{name}.inter"));
    let item_path = cfg.dir.join(format!("{name}.item"));
    if !item_path.is_file() {
        return Err(DataError::Layout {
            msg: format!(
                "{} not found: items need metadata (at least a title) to be kept",
                item_path.display()
            ),
        });
    }
    let mut bad = Malformed::new(cfg.on_malformed);
    let mut log = RawLog::default();

    tracing::info!(file = %item_path.display(), "reading RecBole items");
    let mut items: HashMap<String, ItemMeta> = HashMap::new();
    let mut cols_item = None;
    let (item_header, mut lines_read) = read_tsv(&item_path, &mut bad, |h, cols| {
        let &mut (id, title, desc, brand, cat, price) = cols_item.get_or_insert_with(|| {
            (
                h.find(&["item_id"]),
                h.find(&["title", "movie_title", "item_name", "name"]),
                h.find(&["description", "desc"]),
                h.find(&["brand"]),
                h.find(&["categories", "category", "genre", "class"]),
                h.find(&["price"]),
            )
        });
        let id = id.ok_or("header has no `item_id` field")?;
        let text = |k: Option<usize>| {
            k.map(|k| cols[k].split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|s| !s.is_empty())
        };
        let meta = ItemMeta {
            title: text(title),
            description: text(desc),
            brand: text(brand),
            categories: cat
                .map(|k| categories(cols[k], h.fields[k].1))
                .unwrap_or_default(),
            price: price
                .and_then(|k| cols[k].trim().parse().ok())
                .filter(|p: &f64| p.is_finite() && *p >= 0.0),
        };
        items.entry(cols[id].trim().to_string()).or_insert(meta);
        Ok(())
    })?;
    item_header.require(&item_path, "item_id")?;
    log.items = items;

    tracing::info!(file = %inter_path.display(), "reading RecBole interactions");
    let mut cols_inter = None;
    let mut row_no = 0usize;
    let (header, n) = read_tsv(&inter_path, &mut bad, |h, cols| {
        let &mut (u, i, t, rv, sm) = cols_inter.get_or_insert_with(|| {
            (
                h.find(&["user_id"]),
                h.find(&["item_id"]),
                h.find(&["timestamp"]),
                h.find(&["review", "review_text"]),
                h.find(&["summary"]),
            )
        });
        let (Some(u), Some(i)) = (u, i) else {
            return Err("header lacks `user_id` or `item_id`".into());
        };
        row_no += 1;
        let (user, item) = (cols[u].trim(), cols[i].trim());
        if user.is_empty() || item.is_empty() {
            return Err("empty user_id or item_id".into());
        }
        let time = match t {
            Some(t) => cols[t]
                .trim()
                .parse()
                .map_err(|_| "missing timestamp".to_string())?,
            None => row_no as f64,
        };
        let text = |k: Option<usize>| {
            k.map(|k| cols[k].trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let review = Review {
            review: text(rv),
            summary: text(sm),
        };
        if review.review.is_some() || review.summary.is_some() {
            log.reviews
                .entry((user.to_string(), item.to_string()))
                .or_insert(review);
        }
        log.interactions.push(RawInteraction {
            user: user.to_string(),
            item: item.to_string(),
            time,
        });
        Ok(())
    })?;
    // A header without the id fields is a file error even when skipping bad lines.
    header.require(&inter_path, "user_id")?;
    header.require(&inter_path, "item_id")?;
    lines_read += n;

    let (ds, pre) = preprocess(&name, log, &cfg.preprocess)?;
    Ok((
        ds,
        ImportReport {
            format: "recbole",
            name,
            files: vec![inter_path, item_path],
            lines_read,
            malformed_skipped: bad.skipped,
            malformed_examples: bad.examples,
            preprocess: pre,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_splitting() {
        assert_eq!(
            categories("'Beauty', 'Skin Care'", FieldType::TokenSeq),
            ["Beauty", "Skin Care"]
        );
        assert_eq!(
            categories("Action Comedy Action", FieldType::TokenSeq),
            ["Action", "Comedy"]
        );
        assert_eq!(categories("Skin Care", FieldType::Token), ["Skin Care"]);
    }

    #[test]
    fn header_and_rows() {
        let p = Path::new("x.inter");
        assert!(Header::parse(p, "user_id:token\titem_id").is_err());
        assert!(Header::parse(p, "user_id:token\tx:blob")
            .unwrap_err()
            .to_string()
            .contains("blob"));
        let h = Header::parse(p, "user_id:token\titem_id:token\ttimestamp:float").unwrap();
        assert_eq!(h.row("1\t2\t3.5").unwrap(), ["1", "2", "3.5"]);
        assert!(h.row("1\t2").unwrap_err().contains("2 columns"));
        assert!(h.row("1\t2\tnoon").unwrap_err().contains("timestamp"));
    }
}
