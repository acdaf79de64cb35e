//! The residual-sensitive semantic-ID reward, its format gate, and the exact/format rewards.

mod common;

use common::*;
use grrm_rewards::*;

const TABLE: [f64; 4] = [0.5, 0.707, 0.866, 0.95];

fn sid(opts: FormatOptions) -> SemanticIdReward {
    SemanticIdReward::new("semantic_id", opts)
}

fn comp(o: &RewardOutput, k: &str) -> f64 {
    *o.components
        .get(k)
        .unwrap_or_else(|| panic!("no component {k}"))
}

/// Checks score and every component for an answer with prefix `k` against `target`.
fn check(out: &RewardOutput, k: usize, exact: bool) {
    let m = if exact {
        1.0
    } else if k == 0 {
        0.0
    } else {
        TABLE[k.min(4) - 1]
    };
    assert!(
        (out.score - m).abs() < 1e-3,
        "k={k}: score {} != {m}",
        out.score
    );
    assert_eq!(comp(out, "format"), 1.0);
    assert_eq!(comp(out, "match"), out.score);
    assert_eq!(comp(out, "prefix_len"), k as f64);
    assert_eq!(comp(out, "exact"), if exact { 1.0 } else { 0.0 });
}

#[test]
fn credit_is_sqrt_k_over_4_then_095() {
    assert_eq!(prefix_credit(0), 0.0);
    assert_eq!(prefix_credit(1), 0.5);
    assert_eq!(prefix_credit(2), 0.5f64.sqrt());
    assert_eq!(prefix_credit(3), 0.75f64.sqrt());
    assert_eq!(prefix_credit(4), 0.95);
    assert_eq!(prefix_credit(5), 0.95);
}

#[test]
fn every_prefix_length_four_token_ids_both_modes() {
    for opts in [FormatOptions::reasoning(4), FormatOptions::direct(4)] {
        let r = sid(opts.clone());
        for k in 0..=4 {
            let answer = with_prefix(&T4, k).concat();
            let response = match opts.mode {
                Mode::Reasoning => reasoning(&answer),
                Mode::Direct => answer.clone(),
            };
            let out = r.score(&input("s", "p", &response, &T4)).unwrap();
            check(&out, k, k == 4);
        }
        // All four codes right plus a collision token the target does not have: k = 4, not exact.
        let answer = format!("{}<|e_1|>", T4.concat());
        let response = match opts.mode {
            Mode::Reasoning => reasoning(&answer),
            Mode::Direct => answer,
        };
        check(
            &r.score(&input("s", "p", &response, &T4)).unwrap(),
            4,
            false,
        );
    }
}

#[test]
fn every_prefix_length_five_token_ids_both_modes() {
    for opts in [FormatOptions::reasoning(4), FormatOptions::direct(4)] {
        let r = sid(opts.clone());
        for k in 0..=5 {
            let answer = with_prefix(&T5, k).concat();
            let response = match opts.mode {
                Mode::Reasoning => reasoning(&answer),
                Mode::Direct => answer,
            };
            let out = r.score(&input("s", "p", &response, &T5)).unwrap();
            check(&out, k, k == 5);
        }
        // The four codes without the collision token: right prefix of 4, but not the item.
        let answer = T4.concat();
        let response = match opts.mode {
            Mode::Reasoning => reasoning(&answer),
            Mode::Direct => answer,
        };
        check(
            &r.score(&input("s", "p", &response, &T5)).unwrap(),
            4,
            false,
        );
    }
}

fn gate(prompt: &str, response: &str) -> Result<Vec<String>, FormatFailure> {
    extract_answer(prompt, response, &FormatOptions::reasoning(4))
        .map(|v| v.into_iter().map(String::from).collect())
}

fn assert_gate_fails(response: &str, why: FormatFailure) {
    assert_eq!(gate("p", response), Err(why), "{response}");
    // And the reward is 0 with format 0, although the right ID is in there somewhere.
    let out = sid(FormatOptions::reasoning(4))
        .score(&input("s", "p", response, &T4))
        .unwrap();
    assert_eq!(out.score, 0.0, "{response}");
    assert_eq!(comp(&out, "format"), 0.0);
    assert_eq!(comp(&out, "exact"), 0.0);
}

#[test]
fn missing_or_broken_think_block_fails() {
    let id = T4.concat();
    assert_gate_fails(
        &format!("I think it is <answer>{id}</answer>"),
        FormatFailure::MissingThink,
    );
    assert_gate_fails(
        &format!("<think>reasoning <answer>{id}</answer>"),
        FormatFailure::MissingThink,
    );
    assert_gate_fails(
        &format!("reasoning</think><answer>{id}</answer>"),
        FormatFailure::MissingThink,
    );
    assert_gate_fails(
        &format!("</think>x<think><answer>{id}</answer>"),
        FormatFailure::MissingThink,
    );
    assert_gate_fails(
        &format!("<think> \n </think><answer>{id}</answer>"),
        FormatFailure::EmptyThink,
    );
    assert_gate_fails(
        &format!("<think>a</think><think>b</think><answer>{id}</answer>"),
        FormatFailure::SeveralThinkBlocks,
    );
}

#[test]
fn empty_think_allowed_when_configured() {
    let opts = FormatOptions {
        require_think_content: false,
        ..FormatOptions::reasoning(4)
    };
    let resp = format!("<think></think><answer>{}</answer>", T4.concat());
    assert_eq!(extract_answer("p", &resp, &opts).unwrap(), T4.to_vec());
}

#[test]
fn prefilled_think_is_continued_from_the_prompt() {
    let prompt = "<|im_start|>assistant\n<think>\n";
    let resp = format!(
        "The user likes capos.\n</think>\n<answer>{}</answer>",
        T4.concat()
    );
    let out = sid(FormatOptions::reasoning(4))
        .score(&input("s", prompt, &resp, &T4))
        .unwrap();
    check(&out, 4, true);
    // Without the prefill the same response has no opening tag.
    assert_eq!(
        gate("plain prompt", &resp),
        Err(FormatFailure::MissingThink)
    );
    // Re-opening a think block after the prefill is a second block.
    let twice = format!("<think>again</think><answer>{}</answer>", T4.concat());
    assert_eq!(gate(prompt, &twice), Err(FormatFailure::SeveralThinkBlocks));
}

#[test]
fn text_around_the_answer_is_fine_whitespace_inside_is_fine() {
    let spaced = "\n <|a_12|> <|b_3|>\n\t<|c_77|>  <|d_5|> ";
    let resp = format!(
        "<think>evidence</think>\nLet's rewrite: <|a_1|><|b_2|>\nBased on the above analysis, \
         the recommended product is <answer>{spaced}</answer>. Enjoy!<|im_end|>"
    );
    assert_eq!(gate("p", &resp).unwrap(), T4.map(String::from).to_vec());
    check(
        &sid(FormatOptions::reasoning(4))
            .score(&input("s", "p", &resp, &T4))
            .unwrap(),
        4,
        true,
    );
}

#[test]
fn several_answers_fail_whichever_is_right() {
    let id = T4.concat();
    let wrong = with_prefix(&T4, 1).concat();
    for resp in [
        format!("<think>x</think><answer>{id}</answer><answer>{wrong}</answer>"),
        format!("<think>x</think><answer>{wrong}</answer><answer>{id}</answer>"),
        format!("<think>x</think><answer>{id}</answer> or <answer>{id}</answer>"),
        format!("<think>x</think><answer>{id}<answer>{wrong}</answer>"),
    ] {
        assert_gate_fails(&resp, FormatFailure::SeveralAnswers);
    }
    // An answer hidden in the think block plus one after it is also two answers.
    assert_gate_fails(
        &format!("<think><answer>{wrong}</answer></think><answer>{id}</answer>"),
        FormatFailure::SeveralAnswers,
    );
}

#[test]
fn misplaced_missing_or_empty_answers_fail() {
    let id = T4.concat();
    assert_gate_fails("<think>x</think> the capo", FormatFailure::MissingAnswer);
    assert_gate_fails(
        &format!("<think>x</think><answer>{id}"),
        FormatFailure::MisplacedAnswer,
    );
    assert_gate_fails(
        &format!("<think>x</think>{id}</answer>"),
        FormatFailure::MisplacedAnswer,
    );
    assert_gate_fails(
        &format!("<think>x</think></answer>{id}<answer>"),
        FormatFailure::MisplacedAnswer,
    );
    assert_gate_fails(
        &format!("<think><answer>{id}</answer></think>"),
        FormatFailure::MisplacedAnswer,
    );
    assert_gate_fails(
        "<think>x</think><answer> </answer>",
        FormatFailure::EmptyAnswer,
    );
}

#[test]
fn non_index_text_inside_answer_fails() {
    for inner in [
        format!("item {}", T4.concat()),
        format!("{}.", T4.concat()),
        T4.join(", "),
        "Fender capo".to_string(),
        format!("{}<|im_end|>", T4.concat()),
        "<|a_12|><|B_3|><|c_77|><|d_5|>".to_string(),
        "<|a_12|><|b_3|><|c_77|><|d_|>".to_string(),
        "`<|a_12|><|b_3|><|c_77|><|d_5|>`".to_string(),
    ] {
        assert_gate_fails(
            &format!("<think>x</think><answer>{inner}</answer>"),
            FormatFailure::NonIndexText,
        );
    }
}

#[test]
fn direct_mode_takes_l_or_l_plus_1_tokens_and_nothing_else() {
    let opts = FormatOptions::direct(4);
    let ok = |r: &str| extract_answer("p", r, &opts).map(|v| v.len());
    assert_eq!(ok(&T4.concat()), Ok(4));
    assert_eq!(ok(&T5.concat()), Ok(5));
    assert_eq!(ok(&format!(" {}<|im_end|>\n", T4.join(" "))), Ok(4));
    assert_eq!(
        ok(&format!("{}<|im_end|><|endoftext|>", T5.concat())),
        Ok(5)
    );
    assert_eq!(ok(&T4[..3].concat()), Err(FormatFailure::WrongLength));
    assert_eq!(
        ok(&format!("{}<|e_1|><|f_1|>", T4.concat())),
        Err(FormatFailure::WrongLength)
    );
    assert_eq!(
        ok(&format!("Item: {}", T4.concat())),
        Err(FormatFailure::NonIndexText)
    );
    assert_eq!(
        ok(&format!("<answer>{}</answer>", T4.concat())),
        Err(FormatFailure::NonIndexText)
    );
    assert_eq!(ok(""), Err(FormatFailure::EmptyAnswer));
    // Reasoning output scored in direct mode fails the gate.
    let out = sid(opts)
        .score(&input("s", "p", &reasoning(&T4.concat()), &T4))
        .unwrap();
    assert_eq!((out.score, comp(&out, "format")), (0.0, 0.0));
}

#[test]
fn strict_levels_requires_an_id_shape() {
    let strict = FormatOptions {
        strict_levels: true,
        ..FormatOptions::reasoning(4)
    };
    let resp = |a: &str| format!("<think>x</think><answer>{a}</answer>");
    assert!(extract_answer("p", &resp(&T4.concat()), &strict).is_ok());
    assert!(extract_answer("p", &resp(&T5.concat()), &strict).is_ok());
    for bad in [
        "<|a_12|><|c_3|><|b_77|><|d_5|>",
        "<|a_12|><|b_3|>",
        "<|a_1|><|b_1|><|c_1|><|d_1|><|d_2|>",
    ] {
        assert_eq!(
            extract_answer("p", &resp(bad), &strict),
            Err(FormatFailure::NotAnId),
            "{bad}"
        );
        // The spec's default accepts any run of index tokens.
        assert!(extract_answer("p", &resp(bad), &FormatOptions::reasoning(4)).is_ok());
    }
}

#[test]
fn a_bad_ground_truth_is_an_error_naming_the_sample() {
    let r = sid(FormatOptions::reasoning(4));
    let resp = reasoning(&T4.concat());
    for target in [
        &[][..],
        &["<|a_12|>", "b_3", "<|c_77|>", "<|d_5|>"][..],
        &T4[..3],
    ] {
        let e = r.score(&input("u9/r2", "p", &resp, target)).unwrap_err();
        assert_eq!(
            (e.reward.as_str(), e.sample_id.as_str()),
            ("semantic_id", "u9/r2")
        );
        assert!(
            matches!(e.kind, RewardErrorKind::InvalidInput { .. }),
            "{e}"
        );
    }
}

#[test]
fn exact_match_and_format_only() {
    let exact = ExactMatchReward::new("exact", FormatOptions::reasoning(4));
    let format = FormatOnlyReward::new("format", FormatOptions::reasoning(4));
    let right = input("a", "p", &reasoning(&T4.concat()), &T4);
    let close = input("b", "p", &reasoning(&with_prefix(&T4, 3).concat()), &T4);
    let broken = input("c", "p", &format!("<answer>{}</answer>", T4.concat()), &T4);
    let scores = |r: &dyn Reward| [&right, &close, &broken].map(|i| r.score(i).unwrap().score);
    assert_eq!(scores(&exact), [1.0, 0.0, 0.0]);
    assert_eq!(scores(&format), [1.0, 1.0, 0.0]);
    // format_only needs no ground truth.
    let no_target = input("d", "p", &reasoning(&T4.concat()), &[]);
    assert_eq!(format.score(&no_target).unwrap().score, 1.0);
}
