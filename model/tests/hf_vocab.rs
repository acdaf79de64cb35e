//! Vocabulary extension: semantic-ID tokens added to the tokenizer encode to one id each; the
//! embedding and an untied LM head grow, new rows equal the mean of the old ones; the extended
//! checkpoint saves and loads.

mod hf_util;

use grrm_model::hf::{
    extend_vocab, init_random, row_mean, save_pretrained, Arch, Checkpoint, ConfigBuilder,
    SaveOptions, StorageDType, VocabExtension,
};
use grrm_model::tokenizer::{build_tiny_tokenizer, semantic_id_tokens, TINY_CORPUS};

#[test]
fn semantic_id_token_names() {
    let t = semantic_id_tokens(5, 256);
    assert_eq!(t.len(), 1280);
    assert_eq!((t[0].as_str(), t[255].as_str()), ("<|a_1|>", "<|a_256|>"));
    assert_eq!(
        (t[256].as_str(), t[1279].as_str()),
        ("<|b_1|>", "<|e_256|>")
    );
}

#[test]
fn extension_grows_rows_with_the_old_mean() {
    let mut tok = build_tiny_tokenizer(TINY_CORPUS, 300).unwrap();
    let old_len = tok.len();
    let ids_tokens = semantic_id_tokens(5, 8);
    let ids = tok.add_special_tokens(&ids_tokens).unwrap();
    assert_eq!(
        ids,
        (old_len as u32..old_len as u32 + 40).collect::<Vec<_>>()
    );
    // Adding again is a no-op that returns the same ids.
    assert_eq!(tok.add_special_tokens(&ids_tokens[..3]).unwrap(), ids[..3]);
    for (t, id) in ids_tokens.iter().zip(&ids) {
        assert_eq!(tok.encode(t, false).unwrap(), vec![*id], "{t}");
    }
    let text = "history <|a_3|><|b_8|><|c_1|><|d_2|> next";
    let enc = tok.encode(text, false).unwrap();
    assert!(
        enc.windows(4)
            .any(|w| w == [ids[2], ids[15], ids[16], ids[25]]),
        "{enc:?}"
    );
    assert_eq!(tok.decode(&enc, false).unwrap(), text);

    for tied in [true, false] {
        let mut c = ConfigBuilder::new(Arch::Qwen3)
            .layers(1)
            .hidden(16)
            .heads(2)
            .ffn(24)
            .vocab(old_len)
            .tied(tied)
            .build()
            .unwrap();
        let mut w = init_random(&c, 4);
        let before = w.clone();
        let mean_e = row_mean(&w.embed_tokens, old_len);
        let growth = extend_vocab(
            &mut c,
            &mut w,
            &VocabExtension {
                new_ids: ids.clone(),
                reference_rows: old_len,
                pad_to_multiple_of: 64,
            },
        )
        .unwrap();
        let needed = old_len + 40;
        let rows = needed.div_ceil(64) * 64;
        assert_eq!((growth.old_rows, growth.new_rows), (old_len, rows));
        assert_eq!(growth.initialised_rows, rows - old_len);
        assert_eq!(c.vocab_size, rows);
        w.check_shapes(&c).unwrap();
        assert_eq!(
            w.embed_tokens.data[..old_len * 16],
            before.embed_tokens.data[..]
        );
        for r in old_len..rows {
            assert_eq!(w.embed_tokens.row(r), &mean_e[..], "row {r}");
        }
        // The mean matches a direct f64 computation.
        for (j, &got) in mean_e.iter().enumerate() {
            let m: f64 = (0..old_len)
                .map(|r| before.embed_tokens.data[r * 16 + j] as f64)
                .sum::<f64>()
                / old_len as f64;
            assert!((got as f64 - m).abs() < 1e-7);
        }
        if tied {
            assert!(w.lm_head.is_none());
        } else {
            let head = w.lm_head.as_ref().unwrap();
            let old_head = before.lm_head.as_ref().unwrap();
            let mean_h = row_mean(old_head, old_len);
            assert_ne!(mean_h, mean_e);
            assert_eq!(head.shape, vec![rows, 16]);
            assert_eq!(head.row(old_len + 7), &mean_h[..]);
            assert_eq!(head.row(3), old_head.row(3));
        }

        // The extended model and tokenizer save and load together.
        let dir = tempfile::tempdir().unwrap();
        let o = SaveOptions {
            dtype: StorageDType::F32,
            ..SaveOptions::default()
        };
        save_pretrained(dir.path(), &c, &w, Some(&tok), &o).unwrap();
        let back = Checkpoint::load(dir.path()).unwrap();
        assert_eq!(back.weights, w);
        let bt = back.tokenizer.unwrap();
        assert_eq!(bt.len(), tok.len());
        assert_eq!(bt.encode("<|e_8|>", false).unwrap(), vec![ids[39]]);
        let cfg = bt.config();
        assert_eq!(
            cfg["added_tokens_decoder"][ids[39].to_string()]["content"],
            "<|e_8|>"
        );
        assert_eq!(
            cfg["added_tokens_decoder"][ids[39].to_string()]["special"],
            true
        );
        assert!(cfg["additional_special_tokens"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("<|a_1|>")));
    }
}

#[test]
fn new_ids_inside_the_old_matrix_are_reinitialised() {
    // Like Qwen: 60 embedding rows, a 50-id tokenizer; new ids 50..55 reuse padding rows.
    let mut c = ConfigBuilder::new(Arch::Llama)
        .layers(1)
        .hidden(8)
        .heads(2)
        .ffn(8)
        .vocab(60)
        .tied(false)
        .build()
        .unwrap();
    let mut w = init_random(&c, 2);
    let mean = row_mean(&w.embed_tokens, 50);
    let before = w.clone();
    let g = extend_vocab(
        &mut c,
        &mut w,
        &VocabExtension {
            new_ids: (50..55).collect(),
            reference_rows: 50,
            pad_to_multiple_of: 1,
        },
    )
    .unwrap();
    assert_eq!((g.old_rows, g.new_rows, g.initialised_rows), (60, 60, 5));
    for r in 50..55 {
        assert_eq!(w.embed_tokens.row(r), &mean[..]);
    }
    assert_eq!(w.embed_tokens.row(57), before.embed_tokens.row(57));
    // A new id among the reference rows is refused.
    let e = extend_vocab(
        &mut c,
        &mut w,
        &VocabExtension {
            new_ids: vec![10],
            reference_rows: 50,
            pad_to_multiple_of: 1,
        },
    );
    assert!(e.unwrap_err().contains("10"));
}
