//! A tiny byte-level BPE tokenizer trained by the `tokenizers` crate itself on a corpus given at
//! run time, with Qwen's ChatML special tokens: self-made, so tests and demos need no
//! third-party tokenizer. Byte-level means any UTF-8 text (Chinese, emoji) round-trips.

use serde_json::{json, Map, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

use super::chat::{END_OF_TEXT, IM_END, IM_START};
use super::Tokenizer;
use crate::hf::HfError;

/// A small built-in corpus (written for this project) for demos.
pub const TINY_CORPUS: &[&str] = &[
    "The user bought a guitar, a set of strings and a tuner.",
    "Here is the item interaction history of the user: what to recommend to the user next?",
    "Based on the above analysis, the recommended product is the following item.",
    "Let's rewrite user's purchase history and infer the purchase intent.",
    "Step 1: behavioural evidence. Step 2: latent preferences. Step 3: purchase intent.",
    "A lightweight travel bag, a stainless water bottle and hiking socks.",
    "Moisturising cream, sunscreen with high protection, and a gentle cleanser.",
    "You are a helpful assistant that recommends products from a catalogue.",
];

/// The ChatML template (Jinja) written into the tiny tokenizer's tokenizer_config.json; it
/// renders exactly what [`super::ChatStyle::ChatMl`] renders.
pub const CHATML_TEMPLATE: &str = "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/// Trains a byte-level BPE of at most `vocab_size` ids (256 byte symbols + merges + 3 special
/// tokens + 4 reasoning markers) on `corpus`. `<|endoftext|>` is id 0 (padding),
/// `<|im_start|>` 1, `<|im_end|>` 2 (end of turn, the eos).
pub fn build_tiny_tokenizer(corpus: &[&str], vocab_size: usize) -> Result<Tokenizer, HfError> {
    let fail = |e: &dyn std::fmt::Display| HfError::Tokenizer {
        path: "<tiny tokenizer>".into(),
        reason: e.to_string(),
    };
    let specials: Vec<AddedToken> = [END_OF_TEXT, IM_START, IM_END]
        .iter()
        .map(|t| AddedToken::from(t.to_string(), true))
        .collect();
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(vocab_size)
        .min_frequency(1)
        .show_progress(false)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    let mut inner = tokenizers::Tokenizer::new(BPE::default());
    inner.with_pre_tokenizer(Some(ByteLevel::new(false, false, true)));
    inner.with_decoder(Some(ByteLevelDecoder::new(false, false, true)));
    inner
        .train(&mut trainer, corpus.iter())
        .map_err(|e| fail(&e))?;
    let markers = ["<think>", "</think>", "<answer>", "</answer>"]
        .iter()
        .map(|t| AddedToken::from(t.to_string(), false));
    inner.add_tokens(markers).map_err(|e| fail(&e))?;

    let mut config = Map::new();
    let mut put = |k: &str, v: Value| {
        config.insert(k.to_string(), v);
    };
    put("tokenizer_class", "PreTrainedTokenizerFast".into());
    put("bos_token", Value::Null);
    put("eos_token", IM_END.into());
    put("pad_token", END_OF_TEXT.into());
    put("unk_token", Value::Null);
    put("additional_special_tokens", json!([IM_START, IM_END]));
    put("chat_template", CHATML_TEMPLATE.into());
    put("clean_up_tokenization_spaces", false.into());
    put("model_max_length", 131072.into());
    put("split_special_tokens", false.into());
    let mut tok = Tokenizer::from_parts(inner, config);
    super::config::sync_added_tokens_decoder(&mut tok.config, &tok.inner);
    Ok(tok)
}
