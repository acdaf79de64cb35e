#![allow(dead_code)]

use grrm_rewards::{RewardInput, SampleMeta};

pub const T4: [&str; 4] = ["<|a_12|>", "<|b_3|>", "<|c_77|>", "<|d_5|>"];
pub const T5: [&str; 5] = ["<|a_12|>", "<|b_3|>", "<|c_77|>", "<|d_5|>", "<|e_2|>"];

pub fn input(id: &str, prompt: &str, response: &str, target: &[&str]) -> RewardInput {
    RewardInput {
        prompt: prompt.into(),
        response: response.into(),
        token_ids: (0..response.len() as u32 / 4).collect(),
        meta: SampleMeta {
            sample_id: id.into(),
            target: target.iter().map(|s| s.to_string()).collect(),
            fields: Default::default(),
        },
    }
}

/// A reasoning-mode response answering with `answer`.
pub fn reasoning(answer: &str) -> String {
    format!(
        "<think>\nStep 1: the user bought guitar strings twice.\nStep 2: prefers acoustic gear.\n\
         Step 3: wants a capo.\n</think>\nLet's rewrite user's purchase history: <|a_1|><|b_2|><|c_3|><|d_4|>\n\
         Based on the above analysis, the recommended product is <answer>{answer}</answer>"
    )
}

/// An answer sharing the first `k` tokens with `target`, then differing at every later position.
pub fn with_prefix(target: &[&str], k: usize) -> Vec<String> {
    target
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i < k {
                t.to_string()
            } else {
                // same level letter, different code
                format!("<|{}_999{}|>", &t[2..3], i)
            }
        })
        .collect()
}

/// Python 3 when present; `None` (with a printed reason) otherwise.
pub fn python3() -> Option<&'static str> {
    match std::process::Command::new("python3")
        .arg("--version")
        .output()
    {
        Ok(o) if o.status.success() => Some("python3"),
        _ => {
            eprintln!("SKIPPED: python3 is not available on this machine");
            None
        }
    }
}

pub fn manifest_path(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}
