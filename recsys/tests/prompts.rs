//! RL and evaluation prompt sets.

mod common;

use grrm_recsys::{build_prompts, PromptConfig, PromptMode, Split};

#[test]
fn prompt_sets_per_split() {
    let ds = common::indexed(100);
    let split = Split::new(&ds).unwrap();
    let cfg = PromptConfig {
        valid_pool: Some(30),
        ..Default::default()
    };
    let sets = build_prompts(&ds, &cfg).unwrap();
    let rl_expected: usize = split
        .users
        .iter()
        .map(|u| u.train.len().saturating_sub(4))
        .sum();
    assert_eq!(sets.rl.len(), rl_expected);
    assert_eq!(sets.valid.len(), 2 * 30);
    assert_eq!(sets.test.len(), 2 * ds.n_users());
    for p in &sets.rl {
        assert_eq!(p.mode, PromptMode::Reasoning);
        assert_eq!(p.assistant_prefix, "<think>\n");
        assert!(p.history.len() >= 4);
        let train = &split.users[p.user as usize].train;
        assert!(
            train.contains(&p.target),
            "RL targets come from training data"
        );
    }
    let test_direct: Vec<_> = sets
        .test
        .iter()
        .filter(|p| p.mode == PromptMode::Direct)
        .collect();
    assert_eq!(test_direct.len(), ds.n_users());
    let ids: Vec<String> = ds
        .index
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| t.concat())
        .collect();
    for p in &test_direct {
        let u = &split.users[p.user as usize];
        assert_eq!(p.target, u.test.target);
        assert_eq!(p.target_id, ids[p.target as usize]);
        assert_eq!(p.assistant_prefix, "");
        let h: Vec<&str> = u
            .test
            .history
            .iter()
            .map(|&i| ids[i as usize].as_str())
            .collect();
        assert_eq!(
            p.messages[1].content,
            format!(
                "Here is the item interaction history of the user: {}, what to recommend to the user next?",
                h.join(", ")
            )
        );
    }
    for p in sets
        .valid
        .iter()
        .filter(|p| p.mode == PromptMode::Reasoning)
    {
        assert!(p.messages[0].content.contains("<answer>"));
        assert_eq!(p.target, split.users[p.user as usize].valid.target);
    }
    assert_eq!(build_prompts(&ds, &cfg).unwrap(), sets, "deterministic");
    let mut no_index = ds.clone();
    no_index.index = None;
    assert!(build_prompts(&no_index, &cfg)
        .unwrap_err()
        .to_string()
        .contains("grrm index"));
}
