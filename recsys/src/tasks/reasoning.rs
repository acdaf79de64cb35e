//! The reasoning sample's assistant turn in SPEC.md's layout, and the leak guard.

use super::{history_ids, title_of, ChatSample, REASONING_SYSTEM_PROMPT};
use crate::dataset::Dataset;

pub const REWRITE_PREFIX: &str = "Let's rewrite user's purchase history: ";
pub const ANSWER_PREFIX: &str = "Based on the above analysis, the recommended product is ";

/// `<think>\n{steps}\n</think>\n\nLet's rewrite ...: {ids}.\n\nBased on ... <answer>ID</answer>`.
pub fn assistant_turn(steps: &str, rewritten: &str, target_id: &str) -> String {
    format!(
        "<think>\n{}\n</think>\n\n{REWRITE_PREFIX}{rewritten}.\n\n{ANSWER_PREFIX}<answer>{target_id}</answer>",
        steps.trim()
    )
}

/// The text between `<think>` and `</think>`, if the layout holds one.
pub fn think_block(assistant: &str) -> Option<&str> {
    let start = assistant.find("<think>")? + "<think>".len();
    let end = assistant[start..].find("</think>")? + start;
    Some(&assistant[start..end])
}

/// Whether `text` reveals the target: its ID string, or its title (case-insensitive).
pub fn leaks(text: &str, target_title: &str, target_id: &str) -> bool {
    let title = target_title.trim().to_lowercase();
    (!target_id.is_empty() && text.contains(target_id))
        || (!title.is_empty() && text.to_lowercase().contains(&title))
}

/// Leak check against item `target` of `ds` with ID `target_id`.
pub fn leaks_target(ds: &Dataset, text: &str, target: u32, target_id: &str) -> bool {
    let title = match ds.items[target as usize].title {
        Some(_) => title_of(ds, target),
        None => String::new(),
    };
    leaks(text, &title, target_id)
}

/// A whole reasoning sample.
pub fn reasoning_sample(
    user_turn: String,
    steps: &str,
    ids: &[String],
    rewritten: &[u32],
    target: u32,
) -> ChatSample {
    let assistant = assistant_turn(steps, &history_ids(ids, rewritten), &ids[target as usize]);
    ChatSample::new(REASONING_SYSTEM_PROMPT, user_turn, assistant, "reasoning")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let a = assistant_turn(
            "Step 1: x\nStep 2: y\nStep 3: z",
            "<|a_1|>, <|a_2|>",
            "<|a_3|>",
        );
        assert_eq!(
            a,
            "<think>\nStep 1: x\nStep 2: y\nStep 3: z\n</think>\n\nLet's rewrite user's purchase history: <|a_1|>, <|a_2|>.\n\nBased on the above analysis, the recommended product is <answer><|a_3|></answer>"
        );
        assert_eq!(
            think_block(&a).unwrap().trim(),
            "Step 1: x\nStep 2: y\nStep 3: z"
        );
        assert!(leaks("I bet on the RED Guitar", "Red guitar", "<|a_1|>"));
        assert!(leaks("go <|a_1|>", "Red guitar", "<|a_1|>"));
        assert!(!leaks("a guitar", "Red guitar", "<|a_1|>"));
    }
}
