//! Files: the dataset folder layout, atomic writes, and line readers for (optionally gzipped)
//! raw inputs.
//!
//! Folder layout (SPEC.md section 1): `D.inter.json`, `D.item.json`, optional `D.review.json`
//! and `D.index.json`. The dataset name `D` is derived from the folder's single `*.inter.json`
//! file (no extra manifest); a folder holding several datasets needs `load_named`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::dataset::{check_name, format_pair_key, IdxKey, ItemMeta, PairKey, Review};
use crate::error::{DataError, Result};
use crate::Dataset;

pub const INTER_SUFFIX: &str = ".inter.json";
pub const ITEM_SUFFIX: &str = ".item.json";
pub const REVIEW_SUFFIX: &str = ".review.json";
pub const INDEX_SUFFIX: &str = ".index.json";

/// Paths of dataset `name`'s files in `dir`.
pub fn dataset_file(dir: &Path, name: &str, suffix: &str) -> PathBuf {
    dir.join(format!("{name}{suffix}"))
}

/// The name of the only dataset in `dir` (the prefix of its single `*.inter.json`).
pub fn dataset_name(dir: &Path) -> Result<String> {
    let entries = fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let file = entry.file_name();
        if let Some(name) = file.to_str().and_then(|f| f.strip_suffix(INTER_SUFFIX)) {
            if !name.is_empty() {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    match names.len() {
        1 => Ok(names.pop().unwrap()),
        0 => Err(DataError::Layout {
            msg: format!(
                "{}: no *{INTER_SUFFIX} file, not a dataset folder",
                dir.display()
            ),
        }),
        _ => Err(DataError::Layout {
            msg: format!(
                "{}: several datasets ({}); name one explicitly",
                dir.display(),
                names.join(", ")
            ),
        }),
    }
}

// ---- reading ----

pub(crate) fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| DataError::io(path, e))
}

pub(crate) fn parse_json<T: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| DataError::json(path, e))
}

/// A dataset folder as written, before the checks that make it a `Dataset`: keys need not be
/// contiguous and sequences may name items without metadata. `import_gream` starts from this.
#[derive(Debug, Clone, Default)]
pub struct RawFolder {
    pub name: String,
    pub inter: BTreeMap<u32, Vec<u32>>,
    pub items: BTreeMap<u32, ItemMeta>,
    pub reviews: BTreeMap<(u32, u32), Review>,
    pub index: Option<BTreeMap<u32, Vec<String>>>,
}

pub fn read_raw_folder(dir: &Path, name: &str) -> Result<RawFolder> {
    check_name(name).map_err(|msg| DataError::Layout { msg })?;
    let inter_path = dataset_file(dir, name, INTER_SUFFIX);
    let item_path = dataset_file(dir, name, ITEM_SUFFIX);
    let inter: BTreeMap<IdxKey, Vec<u32>> = parse_json(&inter_path, &read_bytes(&inter_path)?)?;
    let items: BTreeMap<IdxKey, ItemMeta> = parse_json(&item_path, &read_bytes(&item_path)?)?;
    let review_path = dataset_file(dir, name, REVIEW_SUFFIX);
    let reviews: BTreeMap<PairKey, Review> = if review_path.exists() {
        parse_json(&review_path, &read_bytes(&review_path)?)?
    } else {
        BTreeMap::new()
    };
    let index_path = dataset_file(dir, name, INDEX_SUFFIX);
    let index: Option<BTreeMap<IdxKey, Vec<String>>> = if index_path.exists() {
        Some(parse_json(&index_path, &read_bytes(&index_path)?)?)
    } else {
        None
    };
    Ok(RawFolder {
        name: name.to_string(),
        inter: inter.into_iter().map(|(k, v)| (k.0, v)).collect(),
        items: items.into_iter().map(|(k, v)| (k.0, v)).collect(),
        reviews: reviews.into_iter().map(|(k, v)| ((k.0, k.1), v)).collect(),
        index: index.map(|m| m.into_iter().map(|(k, v)| (k.0, v)).collect()),
    })
}

/// Keys must be exactly 0..n for a folder to load as a `Dataset`.
fn dense<T>(path: &Path, what: &str, map: BTreeMap<u32, T>) -> Result<Vec<T>> {
    let n = map.len();
    let mut out = Vec::with_capacity(n);
    for (expect, (k, v)) in map.into_iter().enumerate() {
        if k as usize != expect {
            return Err(DataError::invalid(
                path,
                format!("{what} keys must be 0..{n} without gaps; {expect} is missing"),
            ));
        }
        out.push(v);
    }
    Ok(out)
}

/// Load the only dataset in `dir` (see `dataset_name`).
pub fn load(dir: &Path) -> Result<Dataset> {
    load_named(dir, &dataset_name(dir)?)
}

/// Load dataset `name` from `dir`, checking keys are dense and every reference resolves.
pub fn load_named(dir: &Path, name: &str) -> Result<Dataset> {
    let raw = read_raw_folder(dir, name)?;
    let inter_path = dataset_file(dir, name, INTER_SUFFIX);
    let item_path = dataset_file(dir, name, ITEM_SUFFIX);
    let review_path = dataset_file(dir, name, REVIEW_SUFFIX);
    let index_path = dataset_file(dir, name, INDEX_SUFFIX);
    let sequences = dense(&inter_path, "user", raw.inter)?;
    let items = dense(&item_path, "item", raw.items)?;
    let index = raw
        .index
        .map(|m| dense(&index_path, "item", m))
        .transpose()?;
    let ds = Dataset {
        name: raw.name,
        sequences,
        items,
        reviews: raw.reviews,
        index,
    };
    // Attribute a failed check to the file that holds the offending reference.
    if let Err(msg) = ds.check() {
        let path = if msg.starts_with("review") {
            review_path
        } else if msg.contains("index") || msg.contains("semantic ID") {
            index_path
        } else {
            inter_path
        };
        return Err(DataError::invalid(&path, msg));
    }
    Ok(ds)
}

// ---- writing ----

/// JSON object with numeric keys in numeric order, one entry per line (diffable, and what the
/// reference's Python `json.dump` readers accept).
fn object_lines<'a, V: Serialize + 'a>(
    entries: impl Iterator<Item = (String, &'a V)>,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = b"{".to_vec();
    let mut first = true;
    for (k, v) in entries {
        out.extend_from_slice(if first { b"\n  " } else { b",\n  " });
        first = false;
        serde_json::to_writer(&mut out, &k)?;
        out.extend_from_slice(b": ");
        serde_json::to_writer(&mut out, v)?;
    }
    out.extend_from_slice(if first { b"}\n" } else { b"\n}\n" });
    Ok(out)
}

/// Write all files to temporaries in `dir` first, then rename each into place: a failure while
/// writing leaves the old files untouched.
fn commit_files(dir: &Path, files: Vec<(PathBuf, Vec<u8>)>) -> Result<()> {
    let mut staged = Vec::with_capacity(files.len());
    for (path, bytes) in files {
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| DataError::io(dir, e))?;
        tmp.write_all(&bytes)
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|e| DataError::io(tmp.path(), e))?;
        staged.push((tmp, path));
    }
    for (tmp, path) in staged {
        tmp.persist(&path)
            .map_err(|e| DataError::io(&path, e.error))?;
    }
    Ok(())
}

/// Atomically write one file (temporary in the same folder, then rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    commit_files(dir, vec![(path.to_path_buf(), bytes.to_vec())])
}

/// Save `ds` into `dir` (created if needed) as `{ds.name}.*.json`. Optional files the dataset
/// does not have are removed, so a stale index or review file never pairs with new data.
pub fn save(ds: &Dataset, dir: &Path) -> Result<()> {
    ds.check()
        .map_err(|msg| DataError::invalid(dir, format!("refusing to write dataset: {msg}")))?;
    fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let name = &ds.name;
    let ser = |path: &Path, r: Result<Vec<u8>, serde_json::Error>| {
        r.map_err(|e| DataError::invalid(path, e.to_string()))
    };
    let mut files = Vec::new();
    let p = dataset_file(dir, name, INTER_SUFFIX);
    let b = ser(
        &p,
        object_lines(
            ds.sequences
                .iter()
                .enumerate()
                .map(|(u, s)| (u.to_string(), s)),
        ),
    )?;
    files.push((p, b));
    let p = dataset_file(dir, name, ITEM_SUFFIX);
    let b = ser(
        &p,
        object_lines(ds.items.iter().enumerate().map(|(i, m)| (i.to_string(), m))),
    )?;
    files.push((p, b));
    let review_path = dataset_file(dir, name, REVIEW_SUFFIX);
    if !ds.reviews.is_empty() {
        let entries = ds
            .reviews
            .iter()
            .map(|(&(u, i), r)| (format_pair_key(u, i), r));
        let b = ser(&review_path, object_lines(entries))?;
        files.push((review_path.clone(), b));
    }
    let index_path = dataset_file(dir, name, INDEX_SUFFIX);
    if let Some(index) = &ds.index {
        let b = ser(
            &index_path,
            object_lines(index.iter().enumerate().map(|(i, t)| (i.to_string(), t))),
        )?;
        files.push((index_path.clone(), b));
    }
    commit_files(dir, files)?;
    for (present, path) in [
        (!ds.reviews.is_empty(), review_path),
        (ds.index.is_some(), index_path),
    ] {
        if !present && path.exists() {
            tracing::warn!(file = %path.display(), "removing stale file not backed by the dataset");
            fs::remove_file(&path).map_err(|e| DataError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Write `D.index.json` alone (the indexer's output), atomically; `index[i]` = item i's tokens.
pub fn write_index(dir: &Path, name: &str, index: &[Vec<String>]) -> Result<()> {
    check_name(name).map_err(|msg| DataError::Layout { msg })?;
    let path = dataset_file(dir, name, INDEX_SUFFIX);
    let b = object_lines(index.iter().enumerate().map(|(i, t)| (i.to_string(), t)))
        .map_err(|e| DataError::invalid(&path, e.to_string()))?;
    write_atomic(&path, &b)
}

// ---- raw line-oriented inputs ----

/// Open a file for reading, decompressing when its name ends in `.gz`.
pub fn open_maybe_gz(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let gz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"));
    let inner: Box<dyn Read> = if gz {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::new(inner)))
}

/// Call `f(line_number, line)` for each non-blank line (1-based numbers, trailing `\r\n`
/// stripped). Invalid UTF-8 and read errors name the file and line.
pub fn for_each_line(path: &Path, mut f: impl FnMut(usize, &str) -> Result<()>) -> Result<usize> {
    let mut reader = open_maybe_gz(path)?;
    let mut buf = Vec::new();
    let mut line_no = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::line(path, line_no + 1, format!("read error: {e}")))?;
        if n == 0 {
            return Ok(line_no);
        }
        line_no += 1;
        let line = std::str::from_utf8(&buf)
            .map_err(|e| DataError::line(path, line_no, format!("invalid UTF-8: {e}")))?;
        let line = line.trim_end_matches(['\n', '\r']);
        if !line.trim().is_empty() {
            f(line_no, line)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        let mut ds = Dataset {
            name: "toy".into(),
            sequences: vec![vec![0, 1, 2], vec![2, 1, 0, 1]],
            items: vec![
                ItemMeta {
                    title: Some("A \"quoted\" title".into()),
                    price: Some(2.5),
                    ..Default::default()
                },
                ItemMeta::default(),
                ItemMeta {
                    categories: vec!["X".into(), "Y".into()],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        ds.reviews.insert(
            (1, 2),
            Review {
                review: Some("good".into()),
                summary: None,
            },
        );
        ds
    }

    #[test]
    fn roundtrip_and_name_from_folder() {
        let dir = tempfile::tempdir().unwrap();
        let mut ds = tiny();
        save(&ds, dir.path()).unwrap();
        assert_eq!(dataset_name(dir.path()).unwrap(), "toy");
        assert_eq!(load(dir.path()).unwrap(), ds);
        // An index round-trips and is removed again when the dataset no longer has one.
        ds.index = Some((0..3).map(|i| vec![format!("<|a_{i}|>")]).collect());
        save(&ds, dir.path()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), ds);
        ds.index = None;
        save(&ds, dir.path()).unwrap();
        assert!(!dataset_file(dir.path(), "toy", INDEX_SUFFIX).exists());
        // No temporaries are left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn written_json_is_numeric_key_order() {
        let dir = tempfile::tempdir().unwrap();
        let ds = Dataset {
            name: "n".into(),
            sequences: (0..12).map(|u| vec![u % 2]).collect(),
            items: vec![ItemMeta::default(); 2],
            ..Default::default()
        };
        save(&ds, dir.path()).unwrap();
        let text = fs::read_to_string(dir.path().join("n.inter.json")).unwrap();
        let keys: Vec<&str> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        assert_eq!(keys, (0..12).map(|u| u.to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn errors_name_file_and_position() {
        let dir = tempfile::tempdir().unwrap();
        save(&tiny(), dir.path()).unwrap();
        let p = dir.path().join("toy.inter.json");
        fs::write(&p, "{\n  \"0\": [0, 1],\n  \"1\": [0,, 1]\n}\n").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("toy.inter.json: line 3, column"), "{e}");
        fs::write(&p, "{\n  \"zero\": [0]\n}").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("\"zero\""), "{e}");
        fs::write(&p, "{\"0\": [0], \"2\": [1]}").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("1 is missing"), "{e}");
        fs::write(&p, "{\"0\": [0, 7], \"1\": [1]}").unwrap();
        let e = load(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("toy.inter.json") && e.contains("unknown item id 7"),
            "{e}"
        );
    }

    #[test]
    fn name_ambiguity_and_absence() {
        let dir = tempfile::tempdir().unwrap();
        assert!(dataset_name(dir.path())
            .unwrap_err()
            .to_string()
            .contains("no *.inter.json"));
        let mut ds = tiny();
        save(&ds, dir.path()).unwrap();
        ds.name = "other".into();
        save(&ds, dir.path()).unwrap();
        let e = dataset_name(dir.path()).unwrap_err().to_string();
        assert!(e.contains("other, toy"), "{e}");
        assert_eq!(load_named(dir.path(), "other").unwrap(), ds);
    }
}
