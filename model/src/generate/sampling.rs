//! Sampling parameters, the per-sequence RNG streams, and the host reference of the token choice
//! (greedy, or sampling with temperature — applied on the GPU before the log-softmax — top-k and
//! top-p). `kernels::sample` implements the same rule on the GPU; generation uses that one.

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

/// Whether choosing among `n` candidates under `p` consumes one uniform from the sequence's
/// RNG: sampling (not greedy) from a non-empty set. The host and GPU paths draw alike, so a seed
/// means the same stream of choices on both.
pub fn draws_uniform(p: &SamplingParams, n: usize) -> bool {
    p.temperature > 0.0 && n > 0
}

/// Picks a token among `candidates` (ascending ids; the whole row when `None`) of `logp` (a
/// log-softmax row at the sampling temperature), drawing its uniform from `rng` when
/// `draws_uniform`. Returns the token; the caller reads its log-prob from the row.
pub fn choose(
    logp: &[f32],
    candidates: Option<&[u32]>,
    p: &SamplingParams,
    rng: &mut ChaCha8Rng,
) -> u32 {
    let n = candidates.map_or(logp.len(), <[u32]>::len);
    let u = if draws_uniform(p, n) {
        rng.random::<f64>()
    } else {
        0.0
    };
    choose_with(logp, candidates, p, u)
}

/// The choice rule of `shaders/sample.wgsl`, in f64 (the GPU sums in f32, so the two agree
/// except where a cumulative weight lies within rounding of a top-p or inverse-CDF boundary):
/// - candidates j = 0.. in index order (ascending ids); rank order: log-prob descending by
///   IEEE total order, then j ascending; no candidates: token 0;
/// - greedy (temperature <= 0): the first in rank order;
/// - K = the first `top_k` in rank order (all when 0); w = exp(x - x_max); N = the shortest
///   rank-order prefix of K with weight >= top_p * W(K) (K when top_p >= 1, the first alone
///   when top_p <= 0); the token is the first member of N in index order whose cumulative
///   weight exceeds u * W(N), u in [0, 1).
pub fn choose_with(logp: &[f32], candidates: Option<&[u32]>, p: &SamplingParams, u: f64) -> u32 {
    let ids: Vec<u32> = match candidates {
        Some(c) => c.to_vec(),
        None => (0..logp.len() as u32).collect(),
    };
    let x = |j: usize| logp[ids[j] as usize];
    let rank = |a: &usize, b: &usize| x(*b).total_cmp(&x(*a)).then(a.cmp(b));
    let Some(top) = (0..ids.len()).min_by(rank) else {
        return 0;
    };
    if p.temperature <= 0.0 {
        return ids[top];
    }
    let xmax = x(top) as f64;
    let w = |j: usize| (x(j) as f64 - xmax).exp();
    let mut keep = vec![true; ids.len()];
    let k = if p.top_k > 0 {
        p.top_k.min(ids.len())
    } else {
        ids.len()
    };
    if k < ids.len() || p.top_p < 1.0 {
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_unstable_by(rank);
        order.truncate(k);
        let mut cut = order.len();
        if p.top_p <= 0.0 {
            cut = 1;
        } else if p.top_p < 1.0 {
            let target = p.top_p as f64 * order.iter().map(|&j| w(j)).sum::<f64>();
            let mut acc = 0.0;
            for (i, &j) in order.iter().enumerate() {
                acc += w(j);
                if acc >= target {
                    cut = i + 1;
                    break;
                }
            }
        }
        keep.fill(false);
        for &j in &order[..cut] {
            keep[j] = true;
        }
    }
    let total: f64 = (0..ids.len()).filter(|&j| keep[j]).map(w).sum();
    let goal = u * total;
    let mut acc = 0.0;
    let mut last = top;
    for j in (0..ids.len()).filter(|&j| keep[j]) {
        acc += w(j);
        last = j;
        if acc > goal {
            return ids[j];
        }
    }
    ids[last]
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
