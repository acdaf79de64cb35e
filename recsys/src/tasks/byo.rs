//! Bring-your-own SFT data: ShareGPT (`{"conversations": [{"from", "value"}], "system"?}` or
//! `{"messages": [{"role", "content"}]}`) and Alpaca (`{"instruction", "input"?, "output",
//! "system"?}`) JSON lines, read into `ChatSample`s. Errors name the file and line.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ChatSample, Message};
use crate::error::{DataError, Result};
use crate::io::for_each_line;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ByoFormat {
    Sharegpt,
    Alpaca,
}

/// Where user data joins the curriculum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ByoRole {
    #[default]
    Alignment,
    Reasoning,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ByoSource {
    pub path: PathBuf,
    pub format: ByoFormat,
    #[serde(default)]
    pub role: ByoRole,
}

fn role_of(from: &str) -> Option<&'static str> {
    match from {
        "human" | "user" => Some("user"),
        "gpt" | "assistant" | "model" => Some("assistant"),
        "system" => Some("system"),
        _ => None,
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> std::result::Result<Option<&'a str>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("field {key:?} must be a string")),
    }
}

fn sharegpt(v: &Value) -> std::result::Result<Vec<Message>, String> {
    let (turns, rk, ck) = if let Some(t) = v.get("conversations") {
        (t, "from", "value")
    } else if let Some(t) = v.get("messages") {
        (t, "role", "content")
    } else {
        return Err("no \"conversations\" or \"messages\" list".into());
    };
    let turns = turns.as_array().ok_or("the conversation is not a list")?;
    let mut msgs = Vec::new();
    if let Some(s) = str_field(v, "system")?.filter(|s| !s.is_empty()) {
        msgs.push(Message::new("system", s));
    }
    for (k, t) in turns.iter().enumerate() {
        let from = str_field(t, rk)?.ok_or(format!("turn {k}: no {rk:?}"))?;
        let role = role_of(from).ok_or(format!("turn {k}: unknown role {from:?}"))?;
        let text = str_field(t, ck)?.ok_or(format!("turn {k}: no {ck:?}"))?;
        msgs.push(Message::new(role, text));
    }
    Ok(msgs)
}

fn alpaca(v: &Value) -> std::result::Result<Vec<Message>, String> {
    let instruction = str_field(v, "instruction")?.ok_or("no \"instruction\"")?;
    let output = str_field(v, "output")?.ok_or("no \"output\"")?;
    let mut msgs = Vec::new();
    if let Some(s) = str_field(v, "system")?.filter(|s| !s.is_empty()) {
        msgs.push(Message::new("system", s));
    }
    let user = match str_field(v, "input")?.filter(|s| !s.trim().is_empty()) {
        Some(input) => format!("{instruction}\n\n{input}"),
        None => instruction.to_string(),
    };
    msgs.push(Message::new("user", user));
    msgs.push(Message::new("assistant", output));
    Ok(msgs)
}

/// Read one JSON-lines file; blank lines are skipped, anything else malformed is an error.
pub fn read_byo(path: &Path, format: ByoFormat) -> Result<Vec<ChatSample>> {
    let mut out = Vec::new();
    let task = match format {
        ByoFormat::Sharegpt => "byo-sharegpt",
        ByoFormat::Alpaca => "byo-alpaca",
    };
    for_each_line(path, |line_no, line| {
        if line.trim().is_empty() {
            return Ok(());
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| DataError::line(path, line_no, format!("invalid JSON: {e}")))?;
        let messages = match format {
            ByoFormat::Sharegpt => sharegpt(&v),
            ByoFormat::Alpaca => alpaca(&v),
        }
        .map_err(|m| DataError::line(path, line_no, m))?;
        match messages.last() {
            Some(m) if m.role == "assistant" && !m.content.trim().is_empty() => {}
            _ => {
                return Err(DataError::line(
                    path,
                    line_no,
                    "the last turn must be a non-empty assistant turn",
                ))
            }
        }
        out.push(ChatSample {
            messages,
            task: task.into(),
            meta: Default::default(),
        });
        Ok(())
    })?;
    Ok(out)
}
