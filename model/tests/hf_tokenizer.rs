//! The tiny self-made tokenizer: byte-level round trips, ChatML rendering, stop tokens, saving
//! in the layout transformers loads; and the Qwen3 template rules rendered in Rust (expected
//! strings produced by rendering the Qwen3 Jinja template with jinja2).

use grrm_model::tokenizer::{
    build_tiny_tokenizer, render_chat, ChatOptions, ChatStyle, Message, Tokenizer, TINY_CORPUS,
};

fn tiny() -> Tokenizer {
    build_tiny_tokenizer(TINY_CORPUS, 400).unwrap()
}

#[test]
fn tiny_tokenizer_round_trips_any_text() {
    let tok = tiny();
    assert!(tok.len() <= 400 + 4, "{}", tok.len());
    for text in [
        "The user bought a guitar.",
        "完全不同的文字：你好，世界！",
        "emoji 🎸🎶 and naïve café\nnew line\ttab",
        "",
    ] {
        let ids = tok.encode(text, false).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
    }
    // Merges were learned: a corpus word is shorter than its bytes.
    assert!(tok.encode(" recommended", false).unwrap().len() < 4);
}

#[test]
fn special_tokens_encode_to_single_ids() {
    let tok = tiny();
    assert_eq!(tok.token_to_id("<|endoftext|>"), Some(0));
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(1));
    assert_eq!(tok.token_to_id("<|im_end|>"), Some(2));
    assert_eq!(tok.stop_token_ids(), vec![2, 0]);
    assert_eq!(tok.eos_token_id(), Some(2));
    assert_eq!(tok.pad_token_id(), Some(0));
    let think = tok.token_to_id("<think>").unwrap();
    let ids = tok
        .encode("<|im_start|>user\nhi<|im_end|><think>", false)
        .unwrap();
    assert_eq!(ids[0], 1);
    assert!(ids.contains(&2) && ids.ends_with(&[think]));
    // skip_special_tokens drops ChatML markers but keeps <think> (not special).
    assert_eq!(tok.decode(&ids, true).unwrap(), "user\nhi<think>");
}

#[test]
fn chatml_rendering_matches_the_jinja_template() {
    let tok = tiny();
    assert_eq!(tok.chat_style(), ChatStyle::ChatMl);
    let msgs = [
        Message::system("S"),
        Message::user("U"),
        Message::assistant("A"),
        Message::user("U2"),
    ];
    let text = tok.render_chat(&msgs, &ChatOptions::generation(None));
    assert_eq!(
        text,
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n"
    );
    let prefixed = tok.render_chat(&msgs[..2], &ChatOptions::generation(Some("<think>\n")));
    assert!(
        prefixed.ends_with("<|im_start|>assistant\n<think>\n"),
        "{prefixed}"
    );
    let ids = tok
        .encode_chat(&msgs[..2], &ChatOptions::generation(Some("<think>\n")))
        .unwrap();
    assert_eq!(tok.decode(&ids, false).unwrap(), prefixed);
    assert_eq!(ids.iter().filter(|&&i| i == 1).count(), 3);
}

#[test]
fn qwen3_rules_match_the_qwen3_template() {
    let q = ChatStyle::Qwen3;
    let gen = render_chat(
        q,
        &[
            Message::system("You are a recommender."),
            Message::user("History: <|a_1|><|b_2|>. Next?"),
        ],
        &ChatOptions::generation(None),
    );
    assert_eq!(gen, "<|im_start|>system\nYou are a recommender.<|im_end|>\n<|im_start|>user\nHistory: <|a_1|><|b_2|>. Next?<|im_end|>\n<|im_start|>assistant\n");
    let no_think = ChatOptions {
        add_generation_prompt: true,
        enable_thinking: Some(false),
        assistant_prefix: None,
    };
    assert_eq!(
        render_chat(q, &[Message::user("Hi")], &no_think),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    );
    let multi = render_chat(
        q,
        &[
            Message::user("Q1"),
            Message::assistant("<think>\nreason one\n</think>\n\nA1"),
            Message::user("Q2"),
            Message::assistant("<think>\nstep\n</think>\n\n<answer>x</answer>"),
        ],
        &ChatOptions::default(),
    );
    assert_eq!(multi, "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n<think>\nstep\n</think>\n\n<answer>x</answer><|im_end|>\n");
    assert_eq!(
        render_chat(q, &[Message::user("Q"), Message::assistant("A")], &ChatOptions::default()),
        "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nA<|im_end|>\n"
    );
    // ChatML keeps assistant turns verbatim.
    assert_eq!(
        render_chat(
            ChatStyle::ChatMl,
            &[Message::assistant("<think>x</think>y")],
            &ChatOptions::default()
        ),
        "<|im_start|>assistant\n<think>x</think>y<|im_end|>\n"
    );
}

#[test]
fn saved_tokenizer_loads_back_with_its_config() {
    let tok = tiny();
    let dir = tempfile::tempdir().unwrap();
    tok.save(dir.path()).unwrap();
    let back = Tokenizer::from_dir(dir.path()).unwrap();
    let text = "<|im_start|>user\n推荐 🎧<|im_end|>\n";
    assert_eq!(
        back.encode(text, false).unwrap(),
        tok.encode(text, false).unwrap()
    );
    assert_eq!(back.stop_token_ids(), tok.stop_token_ids());
    assert_eq!(back.chat_style(), ChatStyle::ChatMl);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("tokenizer_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["tokenizer_class"], "PreTrainedTokenizerFast");
    assert_eq!(cfg["eos_token"], "<|im_end|>");
    assert_eq!(cfg["added_tokens_decoder"]["1"]["content"], "<|im_start|>");
    assert!(cfg["chat_template"]
        .as_str()
        .unwrap()
        .contains("add_generation_prompt"));
    // A broken tokenizer.json is reported with its path.
    std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
    let e = Tokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
}
