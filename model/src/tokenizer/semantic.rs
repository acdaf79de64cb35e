//! Names of the semantic-ID tokens: level letters `a`, `b`, ... and 1-based codes.

/// `levels` x `codes` tokens, level-major: `<|a_1|>` ... `<|a_codes|>`, `<|b_1|>`, ...
/// (5 x 256 gives the 1,280 tokens of four code levels plus the collision level `e`).
pub fn semantic_id_tokens(levels: usize, codes: usize) -> Vec<String> {
    assert!(levels <= 26, "at most 26 levels (a..z)");
    (0..levels)
        .flat_map(|l| {
            let letter = (b'a' + l as u8) as char;
            (1..=codes).map(move |k| format!("<|{letter}_{k}|>"))
        })
        .collect()
}
