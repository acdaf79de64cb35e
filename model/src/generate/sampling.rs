//! Choosing the next token from a row of log-probabilities: greedy, or sampling with
//! temperature (applied on the GPU before the log-softmax), top-k and top-p, from a seeded RNG.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingParams {
    /// 0 = greedy.
    pub temperature: f32,
    /// 0 = no top-k cut.
    pub top_k: usize,
    /// 1 = no nucleus cut.
    pub top_p: f32,
    pub max_new_tokens: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            max_new_tokens: 128,
            seed: 0,
        }
    }
}

/// One RNG per sequence, derived from the seed and the sequence's index, so a sequence's
/// sample does not depend on which other sequences share its batch.
pub fn sequence_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(index as u64);
    r
}

/// Picks a token among `candidates` (or the whole row when `None`) of `logp` (a log-softmax
/// row). Returns the token; the caller reads its log-prob from the row.
pub fn choose(
    logp: &[f32],
    candidates: Option<&[u32]>,
    p: &SamplingParams,
    rng: &mut ChaCha8Rng,
) -> u32 {
    let mut cand: Vec<(u32, f32)> = match candidates {
        Some(c) => c.iter().map(|&t| (t, logp[t as usize])).collect(),
        None => logp
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l))
            .collect(),
    };
    if cand.is_empty() {
        return 0;
    }
    let by_logp_desc = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if p.temperature <= 0.0 {
        return cand
            .iter()
            .min_by(|a, b| by_logp_desc(a, b))
            .expect("non-empty")
            .0;
    }
    // Keep the top-k (and, for top-p, enough of the head of the distribution); a partial
    // selection keeps this O(V) for a 150k vocabulary.
    let keep = if p.top_k > 0 {
        p.top_k.min(cand.len())
    } else {
        cand.len()
    };
    if keep < cand.len() {
        cand.select_nth_unstable_by(keep - 1, by_logp_desc);
        cand.truncate(keep);
    }
    if p.top_p < 1.0 {
        cand.sort_unstable_by(by_logp_desc);
        let total: f64 = cand.iter().map(|c| (c.1 as f64).exp()).sum();
        let mut acc = 0.0;
        let mut cut = cand.len();
        for (i, c) in cand.iter().enumerate() {
            acc += (c.1 as f64).exp() / total;
            if acc >= p.top_p as f64 {
                cut = i + 1;
                break;
            }
        }
        cand.truncate(cut.max(1));
    }
    let max = cand.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
    let weights: Vec<f64> = cand.iter().map(|c| ((c.1 - max) as f64).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (c, w) in cand.iter().zip(&weights) {
        if u < *w {
            return c.0;
        }
        u -= w;
    }
    cand.last().expect("non-empty").0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logsoftmax(x: &[f32]) -> Vec<f32> {
        let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = x.iter().map(|v| (v - m).exp()).sum();
        x.iter().map(|v| v - m - s.ln()).collect()
    }

    #[test]
    fn greedy_top_k_top_p_and_frequencies() {
        let lp = logsoftmax(&[0.0, 2.0, 1.0, -1.0, 1.5]);
        let mut rng = sequence_rng(1, 0);
        let greedy = SamplingParams {
            temperature: 0.0,
            ..Default::default()
        };
        assert_eq!(choose(&lp, None, &greedy, &mut rng), 1);
        assert_eq!(choose(&lp, Some(&[0, 3]), &greedy, &mut rng), 0);
        let k2 = SamplingParams {
            top_k: 2,
            ..Default::default()
        };
        for _ in 0..200 {
            assert!(matches!(choose(&lp, None, &k2, &mut rng), 1 | 4));
        }
        // Nucleus 0.5: token 1 alone holds ~0.39, tokens 1 and 4 ~0.63 -> {1, 4}.
        let p5 = SamplingParams {
            top_p: 0.5,
            ..Default::default()
        };
        for _ in 0..200 {
            assert!(matches!(choose(&lp, None, &p5, &mut rng), 1 | 4));
        }
        // Plain sampling matches the distribution within 3 sigma over 20k draws.
        let plain = SamplingParams::default();
        let mut counts = [0usize; 5];
        let draws = 20_000;
        for _ in 0..draws {
            counts[choose(&lp, None, &plain, &mut rng) as usize] += 1;
        }
        for (i, &c) in counts.iter().enumerate() {
            let p = (lp[i] as f64).exp();
            let sd = (draws as f64 * p * (1.0 - p)).sqrt();
            assert!(
                (c as f64 - draws as f64 * p).abs() < 3.0 * sd + 1.0,
                "token {i}: {c} vs {p}"
            );
        }
    }

    #[test]
    fn rng_streams_are_per_sequence() {
        let a: u64 = sequence_rng(7, 3).random();
        let b: u64 = sequence_rng(7, 3).random();
        let c: u64 = sequence_rng(7, 4).random();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
