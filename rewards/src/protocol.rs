//! The plug-in wire format, shared by the JSON-lines process and the HTTP endpoint.
//!
//! Request: `{"id": "<sample id>", "prompt": "...", "response": "...", "token_ids": [..],
//!            "metadata": {"target": ["<|a_1|>", ..], "fields": {..}}}`
//! Reply:   `{"id": "<same id>", "score": 0.5, "components": {"name": 1.0}}` (components optional)
//!      or  `{"id": "<same id>", "error": "why the sample cannot be scored"}`.
//! Replies must echo the request id and hold no other keys. Python's `json.dumps` writes NaN and
//! infinities as bare `NaN`/`Infinity`; those are read so that such a score is reported as
//! non-finite rather than as unparsable JSON.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::error::{RewardError, RewardErrorKind};
use crate::reward::{RewardInput, RewardOutput, SampleMeta};

#[derive(Serialize)]
struct Request<'a> {
    id: &'a str,
    prompt: &'a str,
    response: &'a str,
    token_ids: &'a [u32],
    metadata: Metadata<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    target: &'a [String],
    fields: &'a serde_json::Map<String, Value>,
}

/// The request as one JSON line (no trailing newline; JSON escapes keep it on one line).
pub fn encode_request(input: &RewardInput) -> String {
    let SampleMeta {
        sample_id,
        target,
        fields,
    } = &input.meta;
    serde_json::to_string(&Request {
        id: sample_id,
        prompt: &input.prompt,
        response: &input.response,
        token_ids: &input.token_ids,
        metadata: Metadata { target, fields },
    })
    .expect("request of strings and numbers always serialises")
}

/// Parses and checks one reply for `input`; every failure names `reward` and the sample.
pub fn decode_reply(
    reward: &str,
    input: &RewardInput,
    text: &str,
) -> Result<RewardOutput, RewardError> {
    let sample_id = &input.meta.sample_id;
    let malformed = |detail: String| {
        input.error(
            reward,
            RewardErrorKind::MalformedReply {
                detail: format!("{detail}; reply was {}", snippet(text)),
            },
        )
    };
    let value: Value = serde_json::from_str(&quote_non_finite(text))
        .map_err(|e| malformed(format!("not JSON ({e})")))?;
    let Value::Object(mut obj) = value else {
        return Err(malformed("not a JSON object".into()));
    };
    match obj.remove("id") {
        Some(Value::String(id)) if &id == sample_id => {}
        Some(Value::Number(n)) if &n.to_string() == sample_id => {}
        Some(other) => return Err(malformed(format!("id {other} does not match the request"))),
        None => return Err(malformed("missing `id`".into())),
    }
    if let Some(extra) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "score" | "components" | "error"))
    {
        return Err(malformed(format!("unknown key `{extra}`")));
    }
    if let Some(e) = obj.remove("error") {
        let message = match e {
            Value::String(s) => s,
            other => other.to_string(),
        };
        return Err(input.error(reward, RewardErrorKind::Plugin { message }));
    }
    let score = match obj.remove("score") {
        Some(v) => number(&v).ok_or_else(|| malformed(format!("`score` is not a number: {v}")))?,
        None => return Err(malformed("missing `score` (and no `error`)".into())),
    };
    let mut components = BTreeMap::new();
    match obj.remove("components") {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                let x = number(&v)
                    .ok_or_else(|| malformed(format!("component `{k}` is not a number: {v}")))?;
                components.insert(k, x);
            }
        }
        Some(other) => return Err(malformed(format!("`components` is not an object: {other}"))),
    }
    Ok(RewardOutput { score, components })
}

/// The `id` of a reply, when it is a JSON object with a string or number id.
pub(crate) fn reply_id(text: &str) -> Option<String> {
    match serde_json::from_str::<Value>(&quote_non_finite(text))
        .ok()?
        .get("id")?
    {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

/// Rewrites bare `NaN`, `Infinity` and `-Infinity` outside strings as JSON strings.
fn quote_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if let Some(word) = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|w| rest.starts_with(w))
        {
            out.push('"');
            out.push_str(word);
            out.push('"');
            rest = &rest[word.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The start of a reply for error messages (replies can be huge or binary garbage).
pub(crate) fn snippet(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{:?}...", &text[..i]),
        None => format!("{text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(id: &str) -> RewardInput {
        RewardInput {
            meta: SampleMeta {
                sample_id: id.into(),
                target: vec!["<|a_1|>".into()],
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn request_is_one_line_with_metadata() {
        let mut i = input("u1/r0");
        i.response = "line1\nline2".into();
        i.token_ids = vec![1, 2];
        i.meta.fields.insert("category".into(), "Guitars".into());
        let line = encode_request(&i);
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["id"], "u1/r0");
        assert_eq!(v["token_ids"], serde_json::json!([1, 2]));
        assert_eq!(v["metadata"]["target"][0], "<|a_1|>");
        assert_eq!(v["metadata"]["fields"]["category"], "Guitars");
    }

    #[test]
    fn replies() {
        let i = input("s7");
        let ok = decode_reply("p", &i, r#"{"id":"s7","score":0.25,"components":{"a":1}}"#).unwrap();
        assert_eq!(ok.score, 0.25);
        assert_eq!(ok.components["a"], 1.0);

        let nan = decode_reply("p", &i, r#"{"id": "s7", "score": NaN}"#).unwrap();
        assert!(nan.score.is_nan());
        let inf = decode_reply(
            "p",
            &i,
            r#"{"id":"s7","score":1,"components":{"x":-Infinity}}"#,
        )
        .unwrap();
        assert_eq!(inf.components["x"], f64::NEG_INFINITY);
        // NaN inside a string is text, not a number.
        let e = decode_reply("p", &i, r#"{"id":"s7","error":"got NaN"}"#).unwrap_err();
        assert_eq!(
            e.kind,
            RewardErrorKind::Plugin {
                message: "got NaN".into()
            }
        );
        assert_eq!((e.reward.as_str(), e.sample_id.as_str()), ("p", "s7"));

        for bad in [
            "not json",
            "[1]",
            r#"{"score":1}"#,
            r#"{"id":"other","score":1}"#,
            r#"{"id":"s7"}"#,
            r#"{"id":"s7","score":"high"}"#,
            r#"{"id":"s7","score":1,"extra":2}"#,
            r#"{"id":"s7","score":1,"components":[1]}"#,
        ] {
            let e = decode_reply("p", &i, bad).unwrap_err();
            assert!(
                matches!(e.kind, RewardErrorKind::MalformedReply { .. }),
                "{bad}: {e}"
            );
        }
    }
}
