//! Index tokens: `<|x_N|>` with `x` one lowercase ASCII letter (the level: a, b, c, d, then e for
//! the collision rank) and `N` one or more ASCII digits, i.e. the regex `<\|[a-z]_[0-9]+\|>`.

/// Byte length of the index token at the start of `s`, if `s` starts with one.
pub fn index_token_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.len() < 7 || &b[..2] != b"<|" || !b[2].is_ascii_lowercase() || b[3] != b'_' {
        return None;
    }
    let digits = b[4..].iter().take_while(|c| c.is_ascii_digit()).count();
    let end = 4 + digits;
    (digits > 0 && b.get(end..end + 2) == Some(b"|>".as_slice())).then_some(end + 2)
}

/// True when `s` is exactly one index token.
pub fn is_index_token(s: &str) -> bool {
    index_token_len(s) == Some(s.len())
}

/// The level letter of an index token (`'a'` for `<|a_12|>`).
pub fn level_of(token: &str) -> Option<char> {
    is_index_token(token).then(|| token.as_bytes()[2] as char)
}

/// Splits `s` into index tokens when it holds nothing else: whitespace (Unicode) may sit between,
/// before and after tokens; any other character makes the whole string invalid (`None`).
/// An empty or all-whitespace string gives `Some(vec![])`; callers decide whether that passes.
pub fn parse_index_run(s: &str) -> Option<Vec<&str>> {
    let mut tokens = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let n = index_token_len(rest)?;
        tokens.push(&rest[..n]);
        rest = rest[n..].trim_start();
    }
    Some(tokens)
}

/// True when `tokens` has the shape of an item ID with `levels` code levels: `levels` or
/// `levels + 1` tokens whose level letters run a, b, c, ... in order (the optional last one is
/// the collision token).
pub fn is_well_formed_id<S: AsRef<str>>(tokens: &[S], levels: usize) -> bool {
    (tokens.len() == levels || tokens.len() == levels + 1)
        && tokens
            .iter()
            .enumerate()
            .all(|(i, t)| level_of(t.as_ref()) == Some((b'a' + i as u8) as char))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_grammar() {
        for ok in ["<|a_1|>", "<|z_0|>", "<|e_12345|>", "<|d_007|>"] {
            assert!(is_index_token(ok), "{ok}");
        }
        for bad in [
            "<|A_1|>",
            "<|a_|>",
            "<|a1|>",
            "<|ab_1|>",
            "<|a_1|",
            "<a_1|>",
            "<|a_1 |>",
            "<|a_-1|>",
            "<|a_1.5|>",
            "<|im_end|>",
            "",
            "<|a_1|>x",
        ] {
            assert!(!is_index_token(bad), "{bad}");
        }
        assert_eq!(level_of("<|c_77|>"), Some('c'));
    }

    #[test]
    fn runs_allow_only_whitespace_between_tokens() {
        assert_eq!(
            parse_index_run(" <|a_1|>\n<|b_2|>\t <|c_3|> ").unwrap(),
            vec!["<|a_1|>", "<|b_2|>", "<|c_3|>"]
        );
        assert_eq!(parse_index_run("  ").unwrap(), Vec::<&str>::new());
        for bad in [
            "<|a_1|>,<|b_2|>",
            "item <|a_1|>",
            "<|a_1|>.",
            "<|a_1|><|im_end|>",
            "<|a_1|><",
        ] {
            assert!(parse_index_run(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn id_shape() {
        let four = ["<|a_1|>", "<|b_2|>", "<|c_3|>", "<|d_4|>"];
        assert!(is_well_formed_id(&four, 4));
        assert!(is_well_formed_id(
            &["<|a_1|>", "<|b_2|>", "<|c_3|>", "<|d_4|>", "<|e_1|>"],
            4
        ));
        assert!(!is_well_formed_id(&four[..3], 4));
        assert!(!is_well_formed_id(
            &["<|a_1|>", "<|c_2|>", "<|b_3|>", "<|d_4|>"],
            4
        ));
        assert!(!is_well_formed_id(
            &["<|a_1|>", "<|b_2|>", "<|c_3|>", "<|d_4|>", "<|d_1|>"],
            4
        ));
    }
}
