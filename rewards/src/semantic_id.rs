//! The format gate and the residual-sensitive match of SPEC.md section 4, as pure functions.
//!
//! Reasoning mode: the response needs one non-empty `<think>...</think>` block followed by exactly
//! one `<answer>...</answer>` whose content is only index tokens (whitespace allowed between
//! them). Free text may surround the blocks ("Based on the above analysis, the recommended
//! product is <answer>..</answer>"). When the prompt ends with `<think>` (the assistant turn is
//! prefilled), the response is read as the continuation of that block and must not open another.
//!
//! Several `<answer>` blocks fail the gate instead of one of them being picked: picking the first
//! or the last would let a policy list many candidates and be paid whenever the right one lands in
//! the scored slot, and SFT data always holds exactly one answer. A stray or unbalanced tag also
//! fails.
//!
//! Direct mode: the whole response, after stripping whitespace and trailing end-of-turn markers,
//! must be a run of L or L+1 index tokens.

use std::fmt;

use serde::Deserialize;

use crate::index_tokens::{is_well_formed_id, parse_index_run};

/// Which response layout the gate expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Reasoning,
    Direct,
}

/// Options shared by the semantic-ID, exact-match and format-only rewards.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatOptions {
    #[serde(default)]
    pub mode: Mode,
    /// Code levels L of the index (4 by default); IDs have L tokens, or L+1 with a collision token.
    #[serde(default = "default_levels")]
    pub levels: usize,
    /// Also require the answer to be shaped like an ID: L or L+1 tokens with level letters
    /// a, b, c, ... in order. Off by default, as in the spec (any run of index tokens passes).
    #[serde(default)]
    pub strict_levels: bool,
    /// Reasoning mode: the think block must hold non-whitespace text (an empty block is a way
    /// to skip the reasoning the mode is meant to train).
    #[serde(default = "default_true")]
    pub require_think_content: bool,
    /// Direct mode: end-of-turn markers the decoder may leave at the end of the response text.
    #[serde(default = "default_end_markers")]
    pub end_markers: Vec<String>,
}

fn default_levels() -> usize {
    4
}
fn default_true() -> bool {
    true
}
fn default_end_markers() -> Vec<String> {
    vec!["<|im_end|>".into(), "<|endoftext|>".into()]
}

impl Default for FormatOptions {
    fn default() -> Self {
        Self {
            mode: Mode::default(),
            levels: default_levels(),
            strict_levels: false,
            require_think_content: true,
            end_markers: default_end_markers(),
        }
    }
}

impl FormatOptions {
    pub fn direct(levels: usize) -> Self {
        Self {
            mode: Mode::Direct,
            levels,
            ..Self::default()
        }
    }

    pub fn reasoning(levels: usize) -> Self {
        Self {
            mode: Mode::Reasoning,
            levels,
            ..Self::default()
        }
    }
}

/// Why a response failed the format gate (for debugging and tests; the reward only logs 0/1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatFailure {
    MissingThink,
    SeveralThinkBlocks,
    EmptyThink,
    MissingAnswer,
    SeveralAnswers,
    /// `<answer>` without `</answer>`, closing before opening, or an answer inside the think block.
    MisplacedAnswer,
    /// Something other than index tokens and whitespace where only index tokens may be.
    NonIndexText,
    EmptyAnswer,
    /// Direct mode: not L or L+1 tokens.
    WrongLength,
    /// `strict_levels`: level letters out of order or wrong count.
    NotAnId,
}

impl fmt::Display for FormatFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

const THINK_OPEN: &str = "<think>";
const THINK_CLOSE: &str = "</think>";
const ANSWER_OPEN: &str = "<answer>";
const ANSWER_CLOSE: &str = "</answer>";

/// Applies the format gate; on success returns the answer's index tokens.
pub fn extract_answer<'a>(
    prompt: &str,
    response: &'a str,
    opts: &FormatOptions,
) -> Result<Vec<&'a str>, FormatFailure> {
    let tokens = match opts.mode {
        Mode::Reasoning => reasoning_answer(prompt, response, opts)?,
        Mode::Direct => direct_answer(response, opts)?,
    };
    if opts.strict_levels && !is_well_formed_id(&tokens, opts.levels) {
        return Err(FormatFailure::NotAnId);
    }
    Ok(tokens)
}

fn reasoning_answer<'a>(
    prompt: &str,
    response: &'a str,
    opts: &FormatOptions,
) -> Result<Vec<&'a str>, FormatFailure> {
    let prefilled = prompt.trim_end().ends_with(THINK_OPEN);
    let opens = response.matches(THINK_OPEN).count();
    let think_start = match (prefilled, opens) {
        (true, 0) => 0,
        (false, 1) => response.find(THINK_OPEN).unwrap() + THINK_OPEN.len(),
        (false, 0) => return Err(FormatFailure::MissingThink),
        _ => return Err(FormatFailure::SeveralThinkBlocks),
    };
    let think_end = match response.matches(THINK_CLOSE).count() {
        0 => return Err(FormatFailure::MissingThink),
        1 => response.find(THINK_CLOSE).unwrap(),
        _ => return Err(FormatFailure::SeveralThinkBlocks),
    };
    if think_end < think_start {
        return Err(FormatFailure::MissingThink);
    }
    if opts.require_think_content && response[think_start..think_end].trim().is_empty() {
        return Err(FormatFailure::EmptyThink);
    }

    let (n_open, n_close) = (
        response.matches(ANSWER_OPEN).count(),
        response.matches(ANSWER_CLOSE).count(),
    );
    match (n_open, n_close) {
        (0, 0) => return Err(FormatFailure::MissingAnswer),
        (1, 1) => {}
        (o, c) if o > 1 || c > 1 => return Err(FormatFailure::SeveralAnswers),
        _ => return Err(FormatFailure::MisplacedAnswer),
    }
    let start = response.find(ANSWER_OPEN).unwrap();
    let end = response.find(ANSWER_CLOSE).unwrap();
    let content_start = start + ANSWER_OPEN.len();
    if start < think_end + THINK_CLOSE.len() || end < content_start {
        return Err(FormatFailure::MisplacedAnswer);
    }
    let tokens =
        parse_index_run(&response[content_start..end]).ok_or(FormatFailure::NonIndexText)?;
    if tokens.is_empty() {
        return Err(FormatFailure::EmptyAnswer);
    }
    Ok(tokens)
}

fn direct_answer<'a>(
    response: &'a str,
    opts: &FormatOptions,
) -> Result<Vec<&'a str>, FormatFailure> {
    let mut body = response.trim_end();
    // Strip any trailing sequence of end markers (e.g. "<|im_end|>\n<|endoftext|>").
    while let Some(rest) = opts
        .end_markers
        .iter()
        .filter(|m| !m.is_empty())
        .find_map(|m| body.strip_suffix(m.as_str()))
    {
        body = rest.trim_end();
    }
    let tokens = parse_index_run(body).ok_or(FormatFailure::NonIndexText)?;
    if tokens.is_empty() {
        return Err(FormatFailure::EmptyAnswer);
    }
    if tokens.len() != opts.levels && tokens.len() != opts.levels + 1 {
        return Err(FormatFailure::WrongLength);
    }
    Ok(tokens)
}

/// Outcome of comparing an answer with the ground truth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchResult {
    /// Longest common prefix, token by token, stopping at the first mismatch.
    pub prefix_len: usize,
    pub exact: bool,
    /// m in SPEC.md: 1 for exact, else [`prefix_credit`]`(prefix_len)`.
    pub score: f64,
}

/// Credit for a non-exact answer sharing `k` leading tokens with the target:
/// 0 for k = 0, sqrt(k/4) for k = 1..=3 (0.5, 0.707, 0.866), 0.95 for k >= 4.
pub fn prefix_credit(k: usize) -> f64 {
    match k {
        0 => 0.0,
        1..=3 => (k as f64 / 4.0).sqrt(),
        _ => 0.95,
    }
}

/// Residual-sensitive match of `answer` against `target`.
pub fn match_id<A: AsRef<str>, T: AsRef<str>>(answer: &[A], target: &[T]) -> MatchResult {
    let prefix_len = answer
        .iter()
        .zip(target)
        .take_while(|(a, t)| a.as_ref() == t.as_ref())
        .count();
    let exact = prefix_len == answer.len() && prefix_len == target.len();
    let score = if exact {
        1.0
    } else {
        prefix_credit(prefix_len)
    };
    MatchResult {
        prefix_len,
        exact,
        score,
    }
}
