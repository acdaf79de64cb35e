//! Chat samples -> token ids with a loss mask over assistant turns only (SPEC.md section 3:
//! "loss on the assistant turn only"), truncated to a cut-off length.

use anyhow::{bail, Context, Result};
use grrm_model::tokenizer::{ChatOptions, Message, Role, Tokenizer};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedSample {
    pub ids: Vec<u32>,
    /// 1 where the token belongs to an assistant turn (its loss counts).
    pub loss_mask: Vec<u32>,
}

/// Renders the conversation with the tokenizer's chat template and marks each assistant turn's
/// tokens (its content and closing marker, not the `<|im_start|>assistant\n` header).
/// Truncates to `max_len` tokens; a sample with no assistant token left is an error.
pub fn encode_sample(
    tok: &Tokenizer,
    messages: &[Message],
    max_len: usize,
) -> Result<EncodedSample> {
    let full_opts = ChatOptions::default();
    let ids = tok
        .encode_chat(messages, &full_opts)
        .context("encoding a chat sample")?;
    let mut loss_mask = vec![0u32; ids.len()];
    for (i, m) in messages.iter().enumerate() {
        if m.role != Role::Assistant {
            continue;
        }
        let before = tok.encode_chat(&messages[..i], &ChatOptions::generation(None))?;
        let through = tok.encode_chat(&messages[..=i], &full_opts)?;
        if !ids.starts_with(&through) || !through.starts_with(&before) {
            bail!(
                "assistant turn {i} does not tokenize as a suffix of its prompt (the chat \
                 template re-tokenizes across the turn boundary)"
            );
        }
        for m in &mut loss_mask[before.len()..through.len()] {
            *m = 1;
        }
    }
    let mut s = EncodedSample { ids, loss_mask };
    if s.ids.len() > max_len {
        s.ids.truncate(max_len);
        s.loss_mask.truncate(max_len);
    }
    if !s.loss_mask.contains(&1) {
        bail!("sample has no assistant token within the first {max_len} tokens");
    }
    Ok(s)
}

/// The recsys crate's chat messages (roles as strings, as in ShareGPT/JSONL files) converted
/// for the tokenizer; an unknown role is an error naming it.
pub fn chat_messages(msgs: &[grrm_recsys::tasks::Message]) -> Result<Vec<Message>> {
    msgs.iter()
        .map(|m| match m.role.as_str() {
            "system" => Ok(Message::system(m.content.clone())),
            "user" => Ok(Message::user(m.content.clone())),
            "assistant" => Ok(Message::assistant(m.content.clone())),
            other => bail!("unknown chat role {other:?} (expected system, user or assistant)"),
        })
        .collect()
}

/// Encodes one SFT sample of the curriculum.
pub fn encode_chat_sample(
    tok: &Tokenizer,
    sample: &grrm_recsys::tasks::ChatSample,
    max_len: usize,
) -> Result<EncodedSample> {
    encode_sample(tok, &chat_messages(&sample.messages)?, max_len)
        .with_context(|| format!("sample of task {}", sample.task))
}

#[cfg(test)]
mod tests {
    use super::*;
    use grrm_model::tokenizer::{build_tiny_tokenizer, TINY_CORPUS};

    #[test]
    fn masks_exactly_the_assistant_turn() {
        let tok = build_tiny_tokenizer(TINY_CORPUS, 400).unwrap();
        let msgs = vec![
            Message::system("You recommend products."),
            Message::user("history: <|a_1|>"),
            Message::assistant("the next item"),
        ];
        let e = encode_sample(&tok, &msgs, 4096).unwrap();
        let masked: Vec<u32> = e
            .ids
            .iter()
            .zip(&e.loss_mask)
            .filter(|(_, &m)| m == 1)
            .map(|(&i, _)| i)
            .collect();
        let text = tok.decode(&masked, false).unwrap();
        assert!(text.starts_with("the next item"), "{text:?}");
        assert!(text.contains("<|im_end|>"), "{text:?}");
        assert!(!text.contains("assistant"), "{text:?}");
        let short = encode_sample(&tok, &msgs, 5);
        assert!(
            short.is_err(),
            "truncated before the answer must be an error"
        );
    }
}
