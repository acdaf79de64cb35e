//! Supervised samples (SPEC.md section 3): chat samples for the alignment tasks, reasoning
//! samples with a leak-free rationale (offline or from a teacher endpoint), user-supplied
//! ShareGPT/Alpaca data, and `build_sft`, which mixes them by the curriculum.

pub mod align;
pub mod byo;
pub mod rationale;
pub mod reasoning;
pub mod sft;
pub mod teacher;
pub mod templates;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dataset::Dataset;
use crate::error::{DataError, Result};

/// System turn of the alignment tasks (the reference's plain assistant prompt).
pub const ALIGN_SYSTEM_PROMPT: &str = "You are a helpful assistant.";

/// System turn of reasoning samples and reasoning-mode prompts: the think/answer format.
pub const REASONING_SYSTEM_PROMPT: &str = "You are a recommender that reasons before it answers. \
Think step by step inside <think> and </think>: first the behavioural evidence in the user's \
history, then the user's latent preferences, then the current purchase intent. After </think>, \
rewrite the user's purchase history keeping the items that matter, then give the recommended \
item's ID inside <answer> and </answer>, written only with item ID tokens.";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: impl Into<String>) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// One chat sample; the last message is the assistant turn the loss is taken on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSample {
    pub messages: Vec<Message>,
    pub task: String,
    #[serde(default)]
    pub meta: Map<String, Value>,
}

impl ChatSample {
    pub fn new(system: &str, user: String, assistant: String, task: &str) -> ChatSample {
        ChatSample {
            messages: vec![
                Message::new("system", system),
                Message::new("user", user),
                Message::new("assistant", assistant),
            ],
            task: task.into(),
            meta: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> ChatSample {
        self.meta.insert(key.into(), value.into());
        self
    }
}

/// The dataset's semantic IDs as joined strings (`ids[i]` = item i's ID), or an error telling
/// the user to run the indexer first.
pub fn item_ids(ds: &Dataset) -> Result<Vec<String>> {
    let index = ds.index.as_ref().ok_or_else(|| DataError::Layout {
        msg: format!(
            "dataset {:?} has no semantic IDs ({}.index.json); run `grrm index` first",
            ds.name, ds.name
        ),
    })?;
    Ok(index.iter().map(|t| t.concat()).collect())
}

/// A title without trailing punctuation, or a stand-in naming the item when it has none.
pub fn title_of(ds: &Dataset, item: u32) -> String {
    ds.items[item as usize]
        .title
        .as_deref()
        .map(|t| {
            t.trim()
                .trim_end_matches(['.', '!', '?', ',', ';', ':'])
                .to_string()
        })
        .unwrap_or_else(|| format!("item {item}"))
}

/// History IDs joined as the reference does (", ").
pub fn history_ids(ids: &[String], history: &[u32]) -> String {
    history
        .iter()
        .map(|&i| ids[i as usize].as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
