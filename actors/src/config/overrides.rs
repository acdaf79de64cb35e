//! `--set section.key=value` overrides applied to a parsed document.
//!
//! The value is read as TOML when it parses as one (integer, float, bool, quoted string, array,
//! inline table, date) and as a bare string otherwise, so `--set run.name=demo` needs no quotes.
//! Missing tables and leaf keys are created; whether the schema accepts them is decided later by
//! deserialization, which rejects unknown keys with their path.

use toml::{Table, Value};

use super::ConfigError;

/// Applies one `dotted.key=value` assignment.
pub fn apply_override(doc: &mut Table, assignment: &str) -> Result<(), ConfigError> {
    let err = |message: String| ConfigError::Override {
        assignment: assignment.to_string(),
        message,
    };
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| err("expected KEY=VALUE".into()))?;
    let path = split_key(key).map_err(err)?;
    let (leaf, parents) = path
        .split_last()
        .expect("split_key returns at least one segment");

    let table = walk(doc, parents).map_err(err)?;
    let value = infer_value(raw, table.get(*leaf));
    table.insert((*leaf).to_string(), value);
    Ok(())
}

/// Applies assignments in order; a later one wins over an earlier one on the same key.
pub fn apply_overrides<S: AsRef<str>>(
    doc: &mut Table,
    assignments: &[S],
) -> Result<(), ConfigError> {
    assignments
        .iter()
        .try_for_each(|a| apply_override(doc, a.as_ref()))
}

fn split_key(key: &str) -> Result<Vec<&str>, String> {
    let key = key.trim();
    if key.is_empty() {
        return Err("empty key".into());
    }
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("empty segment in key `{key}`"));
    }
    Ok(parts)
}

/// Walks to the table that holds the leaf, creating missing tables. A numeric segment after an
/// array of tables (`rewards.0.weight`) selects an element.
fn walk<'a>(doc: &'a mut Table, parents: &[&str]) -> Result<&'a mut Table, String> {
    let mut table = doc;
    let mut i = 0;
    while i < parents.len() {
        let entry = table
            .entry(parents[i].to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        i += 1;
        let here = parents[..i].join(".");
        table = match entry {
            Value::Table(t) => t,
            Value::Array(items) => {
                let len = items.len();
                let index = parents
                    .get(i)
                    .and_then(|s| s.parse::<usize>().ok())
                    .ok_or_else(|| format!("`{here}` is an array; index it as `{here}.N.key`"))?;
                i += 1;
                match items.get_mut(index) {
                    Some(Value::Table(t)) => t,
                    Some(other) => {
                        return Err(format!(
                            "`{here}.{index}` is a {}, not a table",
                            other.type_str()
                        ))
                    }
                    None => {
                        return Err(format!(
                            "`{here}` has {len} element(s); index {index} is out of range"
                        ))
                    }
                }
            }
            other => return Err(format!("`{here}` is a {}, not a table", other.type_str())),
        };
    }
    Ok(table)
}

/// Parses `raw` as a TOML value, falling back to a bare string. When the key already holds a
/// string, a value that only parses as another type (`--set run.name=2024`) stays a string; an
/// integer given for a float key becomes a float so the rendered config keeps its type.
fn infer_value(raw: &str, existing: Option<&Value>) -> Value {
    let raw_trimmed = raw.trim();
    let parsed = parse_value(raw_trimmed);
    match (parsed, existing) {
        (Some(Value::String(s)), _) => Value::String(s),
        (Some(Value::Integer(i)), Some(Value::Float(_))) => Value::Float(i as f64),
        (Some(_), Some(Value::String(_))) => Value::String(raw_trimmed.to_string()),
        (Some(v), _) => v,
        (None, _) => Value::String(raw_trimmed.to_string()),
    }
}

/// One TOML value, or `None` when `raw` is not exactly one value (so `1\nx = 2` is a string).
fn parse_value(raw: &str) -> Option<Value> {
    if raw.is_empty() {
        return None;
    }
    let mut doc: Table = format!("v = {raw}").parse().ok()?;
    if doc.len() != 1 {
        return None;
    }
    doc.remove("v")
}
