//! Deterministic inputs shared with bench/model_transformers.py: token ids and the semantic-ID
//! catalogue come from splitmix64 streams, so both engines see the same prompts and the same
//! trie. Keep the two implementations in step.

use std::collections::HashSet;

/// Stream offsets added to the seed, one per input.
pub const TRAIN_STREAM: u64 = 1;
pub const SAMPLE_STREAM: u64 = 2;
pub const CATALOGUE_STREAM: u64 = 3;
pub const BEAM_STREAM: u64 = 4;

/// splitmix64 (Steele, Lea, Flood 2014): one 64-bit value per call.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `[0, n)` (modulo; the bias is irrelevant for benchmark inputs).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// `rows` sequences of `len` token ids in `[0, vocab)`.
pub fn token_rows(seed: u64, rows: usize, len: usize, vocab: usize) -> Vec<Vec<u32>> {
    let mut r = SplitMix64::new(seed);
    (0..rows)
        .map(|_| (0..len).map(|_| r.below(vocab as u64) as u32).collect())
        .collect()
}

/// The semantic-ID layout: `levels` tokens per item, level `l` drawn from its own `codes`
/// tokens at the end of the vocabulary (where vocabulary extension puts them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Catalogue {
    pub items: usize,
    pub levels: usize,
    pub codes: usize,
}

impl Catalogue {
    /// First ID token; prompts use only tokens below it.
    pub fn first_token(&self, vocab: usize) -> usize {
        vocab.saturating_sub(self.levels * self.codes)
    }

    /// Distinct random IDs, item by item (a repeated ID is drawn again).
    pub fn ids(&self, seed: u64, vocab: usize) -> Result<Vec<Vec<u32>>, String> {
        let base = self.first_token(vocab);
        if base == 0 || self.levels == 0 || self.codes == 0 {
            return Err(format!(
                "{} levels x {} codes need more than a vocabulary of {vocab}",
                self.levels, self.codes
            ));
        }
        let space = (self.codes as f64).powi(self.levels as i32);
        if self.items as f64 > space / 2.0 {
            return Err(format!(
                "{} items do not fit comfortably in {} levels x {} codes",
                self.items, self.levels, self.codes
            ));
        }
        let mut r = SplitMix64::new(seed);
        let mut seen = HashSet::new();
        let mut ids = Vec::with_capacity(self.items);
        while ids.len() < self.items {
            let id: Vec<u32> = (0..self.levels)
                .map(|l| (base + l * self.codes + r.below(self.codes as u64) as usize) as u32)
                .collect();
            if seen.insert(id.clone()) {
                ids.push(id);
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_matches_the_reference_values() {
        // splitmix64 seeded with 0: the first outputs of the published reference code.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    /// The same values bench/model_transformers.py computes (`token_rows(1, 1, 8, 2048)` and
    /// `catalogue_ids(3, 5, 3, 16, 2048)`), so both engines see the same inputs.
    #[test]
    fn inputs_match_the_python_benchmark() {
        assert_eq!(
            token_rows(1, 1, 8, 2048),
            vec![vec![1217, 1127, 1374, 267, 1465, 640, 1189, 1397]]
        );
        let c = Catalogue {
            items: 5,
            levels: 3,
            codes: 16,
        };
        assert_eq!(c.first_token(2048), 2000);
        assert_eq!(
            c.ids(3, 2048).unwrap(),
            vec![
                vec![2013, 2025, 2033],
                vec![2015, 2022, 2039],
                vec![2008, 2022, 2042],
                vec![2002, 2028, 2047],
                vec![2004, 2019, 2044]
            ]
        );
    }

    #[test]
    fn catalogue_ids_are_distinct_and_levelled() {
        let c = Catalogue {
            items: 200,
            levels: 3,
            codes: 8,
        };
        let ids = c.ids(7, 100).unwrap();
        assert_eq!(ids.len(), 200);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 200);
        for id in &ids {
            for (l, &t) in id.iter().enumerate() {
                let lo = (76 + l * 8) as u32;
                assert!((lo..lo + 8).contains(&t), "level {l} token {t}");
            }
        }
        assert!(Catalogue { items: 400, ..c }.ids(7, 100).is_err());
    }
}
