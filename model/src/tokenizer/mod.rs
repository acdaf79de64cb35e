//! Tokenizers of Hugging Face model folders (`tokenizer.json` + `tokenizer_config.json`) through
//! the `tokenizers` crate: encode/decode, the ChatML chat template, stop tokens, vocabulary
//! extension with special tokens, saving in the layout `transformers.AutoTokenizer` loads, and a
//! tiny self-made tokenizer for tests.

mod chat;
mod config;
mod semantic;
mod tiny;

pub use chat::{render_chat, ChatOptions, ChatStyle, Message, Role, END_OF_TEXT, IM_END, IM_START};
pub use semantic::semantic_id_tokens;
pub use tiny::{build_tiny_tokenizer, TINY_CORPUS};

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use tokenizers::AddedToken;

use crate::hf::HfError;

pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";

/// A tokenizer with its `tokenizer_config.json` (special-token names, chat template).
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// tokenizer_config.json as read (or built); updated by `add_special_tokens`.
    config: Map<String, Value>,
    /// Where it was read from, for error messages.
    source: PathBuf,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("source", &self.source)
            .field("vocab_size", &self.len())
            .finish()
    }
}

impl Tokenizer {
    /// Loads `tokenizer.json` and, if present, `tokenizer_config.json` from a model folder.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, HfError> {
        let dir = dir.as_ref();
        let cfg = dir.join(TOKENIZER_CONFIG_FILE);
        Self::from_files(dir.join(TOKENIZER_FILE), cfg.is_file().then_some(cfg))
    }

    /// Loads a tokenizer.json and an optional tokenizer_config.json.
    pub fn from_files(
        tokenizer_json: impl AsRef<Path>,
        tokenizer_config: Option<impl AsRef<Path>>,
    ) -> Result<Self, HfError> {
        let path = tokenizer_json.as_ref();
        let bytes = crate::hf::error::read_file(path)?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| HfError::Tokenizer {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let config = match tokenizer_config {
            None => Map::new(),
            Some(p) => {
                let p = p.as_ref();
                match crate::hf::error::read_json::<Value>(p)? {
                    Value::Object(m) => m,
                    _ => {
                        return Err(HfError::Tokenizer {
                            path: p.to_path_buf(),
                            reason: "expected a JSON object".into(),
                        })
                    }
                }
            }
        };
        Ok(Tokenizer {
            inner,
            config,
            source: path.to_path_buf(),
        })
    }

    /// Wraps an in-memory tokenizer and its tokenizer_config.json object.
    pub fn from_parts(inner: tokenizers::Tokenizer, config: Map<String, Value>) -> Self {
        Tokenizer {
            inner,
            config,
            source: PathBuf::from("<memory>"),
        }
    }

    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }

    /// tokenizer_config.json as it will be written.
    pub fn config(&self) -> &Map<String, Value> {
        &self.config
    }

    /// Number of ids, added tokens included (the minimum embedding row count).
    pub fn len(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn err(&self, e: impl std::fmt::Display) -> HfError {
        HfError::Tokenizer {
            path: self.source.clone(),
            reason: e.to_string(),
        }
    }

    /// Encodes text; special-token strings in it (`<|im_start|>`, added ID tokens) map to
    /// their single ids. `add_special_tokens` runs the post-processor (BOS for Llama).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, HfError> {
        self.inner
            .encode(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| self.err(e))
    }

    /// Decodes ids; `skip_special_tokens` drops tokens marked special (the ID tokens too, when
    /// they were added as special: decode with `false` to read item IDs back).
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, HfError> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| self.err(e))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// A special token named in tokenizer_config.json (`eos_token`, `pad_token`, `bos_token`),
    /// written either as a string or as an object with `content`.
    pub fn special_token(&self, key: &str) -> Option<String> {
        match self.config.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
            _ => None,
        }
    }

    pub fn eos_token_id(&self) -> Option<u32> {
        self.special_token("eos_token")
            .and_then(|t| self.token_to_id(&t))
    }

    pub fn pad_token_id(&self) -> Option<u32> {
        self.special_token("pad_token")
            .and_then(|t| self.token_to_id(&t))
    }

    /// Ids that end generation: `<|im_end|>`, `<|endoftext|>` and the configured eos, those
    /// that exist, without repeats.
    pub fn stop_token_ids(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let named = [Some(IM_END.to_string()), Some(END_OF_TEXT.to_string())];
        for tok in named
            .into_iter()
            .chain([self.special_token("eos_token")])
            .flatten()
        {
            if let Some(id) = self.token_to_id(&tok) {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
        out
    }

    /// The Jinja chat template of tokenizer_config.json, if any.
    pub fn chat_template(&self) -> Option<&str> {
        match self.config.get("chat_template")? {
            Value::String(s) => Some(s),
            // Newer configs may list named templates: take "default".
            Value::Array(list) => list
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template")?.as_str()),
            _ => None,
        }
    }

    pub fn chat_style(&self) -> ChatStyle {
        ChatStyle::detect(self.chat_template())
    }

    /// Renders a conversation with this tokenizer's chat style.
    pub fn render_chat(&self, messages: &[Message], opts: &ChatOptions) -> String {
        render_chat(self.chat_style(), messages, opts)
    }

    /// Renders and encodes a conversation (no post-processor: the template carries the markers).
    pub fn encode_chat(
        &self,
        messages: &[Message],
        opts: &ChatOptions,
    ) -> Result<Vec<u32>, HfError> {
        self.encode(&self.render_chat(messages, opts), false)
    }

    /// Adds special tokens (e.g. [`semantic_id_tokens`]) so each encodes to one id; returns the
    /// id of every token in the order given (tokens already present keep their id). The new
    /// tokens are recorded in tokenizer_config.json's `added_tokens_decoder` and
    /// `additional_special_tokens`. Grow the model's rows afterwards with
    /// `hf::extend_vocab`.
    pub fn add_special_tokens<S: AsRef<str>>(&mut self, tokens: &[S]) -> Result<Vec<u32>, HfError> {
        let new: Vec<AddedToken> = tokens
            .iter()
            .map(|t| t.as_ref())
            .filter(|t| self.inner.token_to_id(t).is_none())
            .map(|t| AddedToken::from(t.to_string(), true))
            .collect();
        let new_names: Vec<String> = new.iter().map(|t| t.content.clone()).collect();
        self.inner
            .add_special_tokens(new)
            .map_err(|e| self.err(e))?;
        let ids = tokens
            .iter()
            .map(|t| {
                self.inner
                    .token_to_id(t.as_ref())
                    .ok_or_else(|| self.err(format!("token {:?} was not added", t.as_ref())))
            })
            .collect::<Result<Vec<u32>, _>>()?;
        config::record_added_tokens(&mut self.config, &self.inner, &new_names);
        Ok(ids)
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` into `dir` (which must exist).
    pub fn save(&self, dir: &Path) -> Result<(), HfError> {
        let path = dir.join(TOKENIZER_FILE);
        self.inner
            .save(&path, false)
            .map_err(|e| HfError::Tokenizer {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let mut cfg = self.config.clone();
        config::sync_added_tokens_decoder(&mut cfg, &self.inner);
        crate::hf::save::write_json(&dir.join(TOKENIZER_CONFIG_FILE), &Value::Object(cfg))
    }
}
