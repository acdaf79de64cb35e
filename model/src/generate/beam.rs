//! Beam search constrained by the item trie: every beam is a prefix of a real item's ID, so
//! every result names an existing item and no item is returned twice (the reference
//! implementation constrains each position only to its level's tokens and can emit IDs of no
//! item).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::infer::DecodeState;
use super::trie::{PrefixTrie, TrieNode};
use crate::gpu::{DType, Recorder, Result, Tensor};
use crate::kernels::gather;
use crate::transformer::Transformer;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BeamParams {
    pub num_beams: usize,
    /// How many distinct items to return per prompt.
    pub num_results: usize,
    /// Rank finished IDs by score / len^alpha; `None` ranks by the summed log-prob (all IDs
    /// have L or L+1 tokens, so it rarely matters).
    pub length_penalty: Option<f32>,
}

impl Default for BeamParams {
    fn default() -> Self {
        BeamParams {
            num_beams: 10,
            num_results: 10,
            length_penalty: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BeamHit {
    pub item: usize,
    pub tokens: Vec<u32>,
    /// Sum of token log-probs (before any length penalty).
    pub logprob: f32,
    pub score: f32,
}

#[derive(Clone)]
struct Beam {
    tokens: Vec<u32>,
    logprob: f32,
    node: TrieNode,
}

/// The two caches of users x beams rows that beam search reorders between, kept across calls:
/// allocating them costs about as much as a whole call on an H200 (the driver zero-fills new
/// memory), so callers that search batch after batch pass one workspace to `beam_search_in`.
/// Where the decode kernel reads a shared prefix, a beam's cache holds only the tokens it adds
/// (its user's prompt stays in the prefill's cache, read by all of the user's beams), so a
/// reorder copies a few positions; elsewhere every beam row holds its prompt too.
#[derive(Default)]
pub struct BeamWorkspace {
    spare: [Option<DecodeState>; 2],
    /// Per spare cache and row (caches holding prompts only): the user of the current call
    /// whose prompt positions the row holds (a reorder then copies only the positions after
    /// the prompt; all of a user's beams share them). Cleared at the start of every call.
    owners: [Vec<Option<usize>>; 2],
}

impl BeamWorkspace {
    /// Spare cache `i` of `max_len` positions, (re)allocated when it is too small or of another
    /// capacity. Its weights are never multiplied with (a reorder into it keeps the source
    /// state's), so it takes `like`'s instead of casting them again.
    fn cache(
        &mut self,
        i: usize,
        model: &Transformer,
        rows: usize,
        max_len: usize,
        like: &DecodeState,
    ) -> Result<&DecodeState> {
        let fits = self.spare[i]
            .as_ref()
            .is_some_and(|s| s.batch() >= rows && s.max_len == max_len);
        if !fits {
            // Free the old one first: two generations of caches need not coexist.
            self.spare[i] = None;
            self.owners[i] = vec![None; rows];
            self.spare[i] = Some(DecodeState::alloc(
                model,
                rows,
                max_len,
                like.weights.clone(),
            )?);
        }
        Ok(self.spare[i].as_ref().expect("allocated above"))
    }

    /// The state of the live beams (row `i` continues row `src[i]` of `state`, a beam of user
    /// `user_of[i]`) in spare cache `flip` (of `rows` rows: users x beams), recorded into `rec`.
    #[allow(clippy::too_many_arguments)]
    fn reorder(
        &mut self,
        rec: &mut Recorder,
        model: &Transformer,
        state: &DecodeState,
        src: &[u32],
        user_of: &[usize],
        prompt_lens: &[usize],
        caps: Capacities,
        (flip, rows): (usize, usize),
    ) -> Result<DecodeState> {
        self.cache(flip, model, rows, caps.beam, state)?;
        let dst = self.spare[flip].as_ref().expect("allocated by cache()");
        if caps.shared {
            // From the prefill: nothing to copy. Between beam caches: the few added tokens.
            return if state.reads_prefix() {
                state.record_gather_keeping(rec, src, None, dst)
            } else {
                state.share_prefix(src, dst)
            };
        }
        // A row that already holds its new beam's prompt gets only the positions after it.
        let owners = &mut self.owners[flip];
        let keep: Vec<u32> = user_of
            .iter()
            .zip(owners.iter())
            .map(|(&u, &o)| {
                if o == Some(u) {
                    prompt_lens[u] as u32
                } else {
                    0
                }
            })
            .collect();
        for (o, &u) in owners.iter_mut().zip(user_of) {
            *o = Some(u);
        }
        state.record_gather_keeping(rec, src, Some(&keep), dst)
    }
}

/// Cache capacities of one call: the prefill's and the beams' (equal unless `shared`).
#[derive(Clone, Copy)]
struct Capacities {
    shared: bool,
    prompt: usize,
    beam: usize,
}

impl Capacities {
    fn new(model: &Transformer, longest_prompt: usize, trie: &PrefixTrie) -> Result<Self> {
        let shared = model.decodes_shared_prefixes()?;
        // A beam feeds back at most depth - 1 tokens (an ID's last token ends it). Prompt
        // capacities are rounded up to 16 positions so batches of similar prompts share the
        // workspace's caches (the beams' own capacity is the same for every batch).
        let added = trie.depth().max(1);
        Ok(if shared {
            Capacities {
                shared,
                prompt: longest_prompt.next_multiple_of(16),
                beam: added,
            }
        } else {
            let both = (longest_prompt + added).next_multiple_of(16);
            Capacities {
                shared,
                prompt: both,
                beam: both,
            }
        })
    }
}

/// Top `num_results` distinct items per prompt by constrained beam search.
pub fn beam_search(
    model: &Transformer,
    prompts: &[Vec<u32>],
    trie: &PrefixTrie,
    p: &BeamParams,
) -> Result<Vec<Vec<BeamHit>>> {
    beam_search_in(&mut BeamWorkspace::default(), model, prompts, trie, p)
}

/// `beam_search` reusing `ws`'s caches (same results).
pub fn beam_search_in(
    ws: &mut BeamWorkspace,
    model: &Transformer,
    prompts: &[Vec<u32>],
    trie: &PrefixTrie,
    p: &BeamParams,
) -> Result<Vec<Vec<BeamHit>>> {
    let users = prompts.len();
    if users == 0 || trie.is_empty() || p.num_beams == 0 || p.num_results == 0 {
        return Ok(vec![Vec::new(); users]);
    }
    if prompts.iter().any(Vec::is_empty) {
        return Err(crate::GpuError::shape(
            "beam_search",
            "every prompt needs at least one token",
        ));
    }
    let nb = p.num_beams;
    for o in &mut ws.owners {
        o.iter_mut().for_each(|u| *u = None);
    }
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(1);
    let caps = Capacities::new(model, longest, trie)?;
    let mut state = DecodeState::new(model, users, caps.prompt)?;
    let chunk: Vec<Vec<u32>> = prompts
        .iter()
        .map(|q| {
            let mut c = q.clone();
            c.resize(longest, 0);
            c
        })
        .collect();
    let real: Vec<usize> = prompts.iter().map(Vec::len).collect();
    let t_call = Instant::now();
    let mut rec = Recorder::new(model.ctx(), "beam_prefill");
    let logp = model.record_infer(&mut rec, &mut state, &chunk, &real, 1.0, 1)?;
    let mut rows = allowed_logprobs(rec, &logp, trie, &vec![PrefixTrie::ROOT; users])?;
    // Each user's beams, expanded from one root beam on the prompt's row.
    let mut beams: Vec<Vec<(usize, Beam)>> = (0..users)
        .map(|u| {
            vec![(
                u,
                Beam {
                    tokens: Vec::new(),
                    logprob: 0.0,
                    node: PrefixTrie::ROOT,
                },
            )]
        })
        .collect();
    let mut hits: Vec<Vec<BeamHit>> = vec![Vec::new(); users];
    // Where a call's time goes (debug log): prefill, host work, cache reordering, steps.
    let prefill_ms = t_call.elapsed().as_secs_f64() * 1e3;
    let (mut host_ms, mut reorder_ms, mut step_ms, mut steps) = (0.0, 0.0, 0.0, 0);
    let mut flip = 0;
    loop {
        let t_host = Instant::now();
        let mut next: Vec<Vec<(usize, Beam)>> = Vec::with_capacity(users);
        for (u, ub) in beams.iter().enumerate() {
            let mut cand: Vec<(usize, Beam)> = Vec::new();
            for (row, beam) in ub {
                let lp = rows.row(*row);
                for (j, tok) in trie.allowed(beam.node).enumerate() {
                    let mut t = beam.tokens.clone();
                    t.push(tok);
                    cand.push((
                        *row,
                        Beam {
                            tokens: t,
                            logprob: beam.logprob + lp[j],
                            node: trie.next(beam.node, tok).expect("allowed child"),
                        },
                    ));
                }
            }
            cand.sort_by(|a, b| {
                b.1.logprob
                    .total_cmp(&a.1.logprob)
                    .then(a.1.tokens.cmp(&b.1.tokens))
            });
            cand.truncate(nb);
            let mut live = Vec::new();
            for (row, beam) in cand {
                match trie.item(beam.node) {
                    Some(item) => hits[u].push(BeamHit {
                        item,
                        score: score(beam.logprob, beam.tokens.len(), p.length_penalty),
                        logprob: beam.logprob,
                        tokens: beam.tokens,
                    }),
                    None => live.push((row, beam)),
                }
            }
            // Log-probs only fall as a beam grows: once num_results items are finished and no
            // live beam beats the worst of them, nothing can displace them.
            if p.length_penalty.is_none() && hits[u].len() >= p.num_results {
                let mut best: Vec<f32> = hits[u].iter().map(|h| h.logprob).collect();
                best.sort_by(|a, b| b.total_cmp(a));
                let worst_kept = best[p.num_results - 1];
                live.retain(|(_, b)| b.logprob > worst_kept);
            }
            next.push(live);
        }
        host_ms += t_host.elapsed().as_secs_f64() * 1e3;
        if next.iter().all(Vec::is_empty) {
            break;
        }
        // Reorder the cache: one row per live beam, copied from its parent's row.
        let t_reorder = Instant::now();
        let src: Vec<u32> = next.iter().flatten().map(|(row, _)| *row as u32).collect();
        let user_of: Vec<usize> = next
            .iter()
            .enumerate()
            .flat_map(|(u, ub)| std::iter::repeat_n(u, ub.len()))
            .collect();
        // Two caches of users x beams rows used in turn: the current state lives in one (or
        // in the prefill's), the reordered one goes to the other.
        let mut rec = Recorder::new(model.ctx(), "beam_step");
        let mut st = ws.reorder(
            &mut rec,
            model,
            &state,
            &src,
            &user_of,
            &real,
            caps,
            (flip, users * nb),
        )?;
        flip ^= 1;
        reorder_ms += t_reorder.elapsed().as_secs_f64() * 1e3;
        let t_step = Instant::now();
        let chunk: Vec<Vec<u32>> = next
            .iter()
            .flatten()
            .map(|(_, b)| vec![*b.tokens.last().expect("a token")])
            .collect();
        let logp = model.record_infer(&mut rec, &mut st, &chunk, &vec![1; src.len()], 1.0, 1)?;
        let nodes: Vec<TrieNode> = next.iter().flatten().map(|(_, b)| b.node).collect();
        rows = allowed_logprobs(rec, &logp, trie, &nodes)?;
        state = st;
        step_ms += t_step.elapsed().as_secs_f64() * 1e3;
        steps += 1;
        let mut r = 0;
        beams = next
            .into_iter()
            .map(|ub| {
                ub.into_iter()
                    .map(|(_, b)| {
                        r += 1;
                        (r - 1, b)
                    })
                    .collect()
            })
            .collect();
    }
    tracing::debug!(
        users,
        steps,
        shared_prompts = caps.shared,
        prefill_ms,
        host_ms,
        reorder_ms,
        step_ms,
        total_ms = t_call.elapsed().as_secs_f64() * 1e3,
        "beam search call"
    );
    for h in &mut hits {
        h.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
        h.truncate(p.num_results);
    }
    Ok(hits)
}

/// The log-probs of the tokens the trie allows after each row's node, in `allowed` order.
struct AllowedRows {
    values: Vec<f32>,
    /// Slots per row (the widest node's fan-out).
    width: usize,
}

impl AllowedRows {
    fn row(&self, r: usize) -> &[f32] {
        &self.values[r * self.width..(r + 1) * self.width]
    }
}

/// Gathers, on the GPU, the log-probs of each row's allowed tokens from the `[rows, V]`
/// log-softmax `logp` recorded in `rec`, submits, and reads back only those (a few hundred per
/// row instead of the whole vocabulary).
fn allowed_logprobs(
    mut rec: Recorder,
    logp: &Tensor,
    trie: &PrefixTrie,
    nodes: &[TrieNode],
) -> Result<AllowedRows> {
    let width = nodes
        .iter()
        .map(|&n| trie.allowed(n).count())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut cols = vec![gather::NONE; nodes.len() * width];
    for (r, &n) in nodes.iter().enumerate() {
        for (j, tok) in trie.allowed(n).enumerate() {
            cols[r * width + j] = tok;
        }
    }
    let ctx = logp.ctx();
    let c = Tensor::from_u32(ctx, &[nodes.len(), width], &cols)?;
    let out = Tensor::zeros(ctx, &[nodes.len(), width], DType::F32)?;
    gather::gather_columns(&mut rec, logp, &c, &cols, &out)?;
    rec.submit()?;
    Ok(AllowedRows {
        values: out.to_f32_vec()?,
        width,
    })
}

fn score(logprob: f32, len: usize, alpha: Option<f32>) -> f32 {
    match alpha {
        Some(a) => logprob / (len as f32).powf(a),
        None => logprob,
    }
}
