//! The trie-constrained answer span of a sampled sequence: free tokens until the `open` marker
//! (e.g. `<answer>`), then only children of the item trie until a whole ID is out, then the
//! `close` marker forced token by token.

use super::trie::{PrefixTrie, TrieNode};

/// Switches sampling to the item trie after the `open` token sequence (e.g. `<answer>`), and
/// forces `close` once a whole ID has been generated.
pub struct AnswerConstraint<'a> {
    pub open: Vec<u32>,
    pub close: Vec<u32>,
    pub trie: &'a PrefixTrie,
}

/// Where a sequence is in the answer constraint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AnswerState {
    Free,
    InTrie(TrieNode),
    /// Forcing `close[i..]`.
    Closing(usize),
    Done,
}

impl AnswerState {
    /// The state at the start of generation: a prompt may already end inside the trigger
    /// (e.g. a prefilled `<answer>`).
    pub(crate) fn start(prompt: &[u32], c: Option<&AnswerConstraint>) -> Self {
        match c {
            Some(c) if !c.open.is_empty() && prompt.ends_with(&c.open) => {
                AnswerState::InTrie(PrefixTrie::ROOT)
            }
            _ => AnswerState::Free,
        }
    }

    /// The state after `tok`, the last of `tokens` (the sequence's generated tokens so far).
    pub(crate) fn advance(self, c: &AnswerConstraint, tokens: &[u32], tok: u32) -> Self {
        match self {
            AnswerState::Free if !c.open.is_empty() && tokens.ends_with(&c.open) => {
                AnswerState::InTrie(PrefixTrie::ROOT)
            }
            AnswerState::InTrie(node) => match c.trie.next(node, tok) {
                Some(n) if c.trie.item(n).is_some() => {
                    if c.close.is_empty() {
                        AnswerState::Done
                    } else {
                        AnswerState::Closing(0)
                    }
                }
                Some(n) => AnswerState::InTrie(n),
                None => AnswerState::Done,
            },
            AnswerState::Closing(k) if k + 1 < c.close.len() => AnswerState::Closing(k + 1),
            AnswerState::Closing(_) => AnswerState::Done,
            other => other,
        }
    }
}
