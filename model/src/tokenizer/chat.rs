//! The ChatML chat template of Qwen, rendered in Rust (no Jinja engine):
//! `<|im_start|>role\ncontent<|im_end|>\n` per turn, an optional generation prompt
//! `<|im_start|>assistant\n`, and an optional assistant prefix such as `<think>\n`.
//!
//! Two styles: [`ChatStyle::ChatMl`] writes every turn verbatim (Qwen2/Qwen2.5 without the
//! default system prompt, and the tiny test tokenizer); [`ChatStyle::Qwen3`] reproduces the
//! Qwen3 template's handling of reasoning for conversations without tools: assistant turns before
//! the last user turn lose their `<think>...</think>` block, assistant turns after it are written
//! as `<think>\n{reasoning}\n</think>\n\n{answer}`, and `enable_thinking = false` appends an
//! empty think block to the generation prompt.

pub const IM_START: &str = "<|im_start|>";
pub const IM_END: &str = "<|im_end|>";
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// A speaker of a chat turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One chat turn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// Which template's rules to follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChatStyle {
    ChatMl,
    Qwen3,
}

impl ChatStyle {
    /// Recognises the Qwen3 template (it handles `reasoning_content`); anything else is ChatML.
    pub fn detect(jinja_template: Option<&str>) -> ChatStyle {
        match jinja_template {
            Some(t) if t.contains("reasoning_content") && t.contains("<think>") => ChatStyle::Qwen3,
            _ => ChatStyle::ChatMl,
        }
    }
}

/// Options of one rendering.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChatOptions {
    /// Append `<|im_start|>assistant\n` so the model continues as the assistant.
    pub add_generation_prompt: bool,
    /// Qwen3 only: `Some(false)` appends `<think>\n\n</think>\n\n` to the generation prompt.
    pub enable_thinking: Option<bool>,
    /// Text appended after everything else (after the generation prompt), e.g. `<think>\n`
    /// to prefill the assistant turn.
    pub assistant_prefix: Option<String>,
}

impl ChatOptions {
    /// A generation prompt, optionally prefilled.
    pub fn generation(prefix: Option<&str>) -> Self {
        ChatOptions {
            add_generation_prompt: true,
            enable_thinking: None,
            assistant_prefix: prefix.map(str::to_string),
        }
    }
}

/// Renders `messages` with the rules of `style`.
pub fn render_chat(style: ChatStyle, messages: &[Message], opts: &ChatOptions) -> String {
    let mut out = String::new();
    match style {
        ChatStyle::ChatMl => {
            for m in messages {
                turn(&mut out, m.role.as_str(), &m.content);
                out.push_str(IM_END);
                out.push('\n');
            }
        }
        ChatStyle::Qwen3 => render_qwen3(&mut out, messages),
    }
    if opts.add_generation_prompt {
        out.push_str(IM_START);
        out.push_str("assistant\n");
        if style == ChatStyle::Qwen3 && opts.enable_thinking == Some(false) {
            out.push_str("<think>\n\n</think>\n\n");
        }
    }
    if let Some(prefix) = &opts.assistant_prefix {
        out.push_str(prefix);
    }
    out
}

fn turn(out: &mut String, role: &str, content: &str) {
    out.push_str(IM_START);
    out.push_str(role);
    out.push('\n');
    out.push_str(content);
}

fn render_qwen3(out: &mut String, messages: &[Message]) {
    let last_query = messages
        .iter()
        .rposition(|m| {
            m.role == Role::User
                && !(m.content.starts_with("<tool_response>")
                    && m.content.ends_with("</tool_response>"))
        })
        .unwrap_or(messages.len().saturating_sub(1));
    for (i, m) in messages.iter().enumerate() {
        match m.role {
            Role::System | Role::User => turn(out, m.role.as_str(), &m.content),
            Role::Assistant => {
                let (reasoning, content) = split_reasoning(&m.content);
                let last = i + 1 == messages.len();
                if i > last_query && (last || !reasoning.is_empty()) {
                    turn(out, "assistant", "<think>\n");
                    out.push_str(reasoning.trim_matches('\n'));
                    out.push_str("\n</think>\n\n");
                    out.push_str(content.trim_start_matches('\n'));
                } else {
                    turn(out, "assistant", content);
                }
            }
        }
        out.push_str(IM_END);
        out.push('\n');
    }
}

/// Splits an assistant message into (reasoning, answer) the way the Qwen3 template does.
fn split_reasoning(content: &str) -> (&str, &str) {
    match content.rfind("</think>") {
        None => ("", content),
        Some(last_close) => {
            let answer = content[last_close + "</think>".len()..].trim_start_matches('\n');
            let first_close = content.find("</think>").expect("present");
            let before = content[..first_close].trim_end_matches('\n');
            let reasoning = match before.rfind("<think>") {
                Some(p) => &before[p + "<think>".len()..],
                None => before,
            };
            (reasoning.trim_start_matches('\n'), answer)
        }
    }
}
