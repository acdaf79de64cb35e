//! Keeping tokenizer_config.json consistent with tokenizer.json's added tokens, so that
//! transformers sees the same special tokens as the `tokenizers` crate.

use serde_json::{json, Map, Value};

/// Writes `added_tokens_decoder` from the tokenizer's added vocabulary (id -> token flags).
pub fn sync_added_tokens_decoder(cfg: &mut Map<String, Value>, inner: &tokenizers::Tokenizer) {
    let mut added: Vec<(u32, tokenizers::AddedToken)> =
        inner.get_added_tokens_decoder().into_iter().collect();
    added.sort_by_key(|(id, _)| *id);
    let mut decoder = Map::new();
    for (id, t) in added {
        decoder.insert(
            id.to_string(),
            json!({
                "content": t.content,
                "lstrip": t.lstrip,
                "normalized": t.normalized,
                "rstrip": t.rstrip,
                "single_word": t.single_word,
                "special": t.special,
            }),
        );
    }
    cfg.insert("added_tokens_decoder".into(), Value::Object(decoder));
}

/// Appends newly added special tokens to `additional_special_tokens` and refreshes
/// `added_tokens_decoder`.
pub fn record_added_tokens(
    cfg: &mut Map<String, Value>,
    inner: &tokenizers::Tokenizer,
    new_tokens: &[String],
) {
    let list = cfg
        .entry("additional_special_tokens")
        .or_insert_with(|| Value::Array(Vec::new()));
    if !list.is_array() {
        *list = Value::Array(Vec::new());
    }
    let arr = list.as_array_mut().expect("array");
    for t in new_tokens {
        let v = Value::String(t.clone());
        if !arr.contains(&v) {
            arr.push(v);
        }
    }
    sync_added_tokens_decoder(cfg, inner);
}
