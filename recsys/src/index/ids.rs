//! From codes to semantic-ID tokens: level l's code c is written 1-based as `<|{letter}_{c+1}|>`
//! with letters a, b, c, ... by level; items sharing all L codes get one more token
//! `<|{letter L}_r|>`, r = 1, 2, ... their rank (by item index) in the collision group, so every
//! ID is unique and items with a unique code tuple keep exactly L tokens.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Letter of level `l` (the collision token uses letter L).
pub fn level_letter(l: usize) -> char {
    (b'a' + l as u8) as char
}

pub fn token(level: usize, one_based: usize) -> String {
    format!("<|{}_{}|>", level_letter(level), one_based)
}

/// Every token an index of `levels` levels x `codes` codes may use: L x K code tokens, then the
/// collision tokens 1..=max(K, max_collision) (so (L+1) x K by SPEC.md unless a collision
/// group is larger than K). Add them to the tokenizer as special tokens.
pub fn all_index_tokens(levels: usize, codes: usize, max_collision: usize) -> Vec<String> {
    let mut out: Vec<String> = (0..levels)
        .flat_map(|l| (1..=codes).map(move |c| token(l, c)))
        .collect();
    out.extend((1..=codes.max(max_collision)).map(|r| token(levels, r)));
    out
}

/// Per-depth prefix statistics: how many items share a prefix of this many tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefixStats {
    pub depth: usize,
    pub prefixes: usize,
    pub max_items: usize,
    pub mean_items: f64,
}

/// The tokens of every item and the collision statistics.
pub struct Ids {
    pub tokens: Vec<Vec<String>>,
    /// Items whose L codes are shared with another item / all items.
    pub collision_rate: f64,
    pub collision_groups: usize,
    /// Largest collision group (= largest r used; 0 when there is none).
    pub max_collision: usize,
}

/// `codes[i][l]` = item i's 0-based code at level l.
pub fn assign_ids(codes: &[Vec<usize>]) -> Ids {
    let mut groups: BTreeMap<&[usize], Vec<usize>> = BTreeMap::new();
    for (i, c) in codes.iter().enumerate() {
        groups.entry(c.as_slice()).or_default().push(i);
    }
    let levels = codes.first().map_or(0, Vec::len);
    let mut tokens: Vec<Vec<String>> = codes
        .iter()
        .map(|c| {
            c.iter()
                .enumerate()
                .map(|(l, &k)| token(l, k + 1))
                .collect()
        })
        .collect();
    let (mut collided, mut n_groups, mut max_group) = (0, 0, 0);
    for members in groups.values().filter(|m| m.len() > 1) {
        n_groups += 1;
        collided += members.len();
        max_group = max_group.max(members.len());
        for (rank, &i) in members.iter().enumerate() {
            tokens[i].push(token(levels, rank + 1));
        }
    }
    Ids {
        tokens,
        collision_rate: if codes.is_empty() {
            0.0
        } else {
            collided as f64 / codes.len() as f64
        },
        collision_groups: n_groups,
        max_collision: max_group,
    }
}

/// Items per code prefix at depths 1..=L (before the collision token).
pub fn prefix_stats(codes: &[Vec<usize>]) -> Vec<PrefixStats> {
    let levels = codes.first().map_or(0, Vec::len);
    (1..=levels)
        .map(|depth| {
            let mut count: BTreeMap<&[usize], usize> = BTreeMap::new();
            for c in codes {
                *count.entry(&c[..depth]).or_insert(0) += 1;
            }
            PrefixStats {
                depth,
                prefixes: count.len(),
                max_items: count.values().copied().max().unwrap_or(0),
                mean_items: codes.len() as f64 / count.len().max(1) as f64,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collision_token_only_when_needed() {
        let codes = vec![vec![0, 1], vec![0, 1], vec![2, 0], vec![0, 1]];
        let ids = assign_ids(&codes);
        assert_eq!(ids.tokens[0], ["<|a_1|>", "<|b_2|>", "<|c_1|>"]);
        assert_eq!(ids.tokens[1], ["<|a_1|>", "<|b_2|>", "<|c_2|>"]);
        assert_eq!(ids.tokens[3], ["<|a_1|>", "<|b_2|>", "<|c_3|>"]);
        assert_eq!(ids.tokens[2], ["<|a_3|>", "<|b_1|>"]);
        assert_eq!(ids.collision_rate, 0.75);
        assert_eq!((ids.collision_groups, ids.max_collision), (1, 3));
        let p = prefix_stats(&codes);
        assert_eq!((p[0].prefixes, p[0].max_items), (2, 3));
        assert_eq!(p[1].mean_items, 2.0);
    }

    #[test]
    fn token_list() {
        let t = all_index_tokens(4, 256, 3);
        assert_eq!(t.len(), 5 * 256);
        assert_eq!(t[0], "<|a_1|>");
        assert_eq!(t[256 * 3 + 255], "<|d_256|>");
        assert_eq!(t[1279], "<|e_256|>");
        assert_eq!(all_index_tokens(2, 2, 5).len(), 4 + 5);
    }
}
