//! Turning recommendation samples into model inputs: chat rendering and tokenisation with the
//! assistant-turn loss mask, batching into `TokenBatch`es.

pub mod embed;
pub mod encode;

pub use embed::LlmEmbedder;
pub use encode::{chat_messages, encode_chat_sample, encode_sample, EncodedSample};
