//! Constrained beam-search throughput: every user's prompt is decoded by `beam_search` over a
//! prefix trie of random semantic IDs (the catalogue), `batch_users` users per call, until each
//! has `beams` distinct items. Users per second over all timed calls.

use std::time::Instant;

use serde::Serialize;

use crate::generate::{beam_search_in, BeamParams, BeamWorkspace, PrefixTrie};
use crate::gpu::{GpuError, Result};
use crate::transformer::Transformer;

use super::workload::{token_rows, Catalogue, BEAM_STREAM, CATALOGUE_STREAM};
use super::Progress;

#[derive(Clone, Debug)]
pub struct BeamOpts {
    pub users: usize,
    /// Users per `beam_search` call (the KV cache holds batch_users x beams rows, twice while
    /// beams are reordered).
    pub batch_users: usize,
    pub prompt_len: usize,
    pub beams: usize,
    pub catalogue: Catalogue,
}

#[derive(Clone, Debug, Serialize)]
pub struct BeamResult {
    pub users: usize,
    pub batch_users: usize,
    pub prompt_len: usize,
    pub beams: usize,
    pub catalogue: Catalogue,
    pub seconds: f64,
    pub users_per_s: f64,
    /// Fewest distinct items any user got (should equal `beams`).
    pub min_results: usize,
    pub peak_bytes: u64,
}

/// Untimed calls before the timed ones.
const WARM_UP_CALLS: usize = 2;

pub fn run(
    model: &Transformer,
    o: &BeamOpts,
    seed: u64,
    progress: &mut Progress<'_>,
) -> Result<BeamResult> {
    let ctx = model.ctx();
    let vocab = model.cfg.vocab_size;
    let cat = o.catalogue;
    let bench_err = |e: String| GpuError::shape("bench model beam", e);
    let ids = cat.ids(seed + CATALOGUE_STREAM, vocab).map_err(bench_err)?;
    let trie = PrefixTrie::new(&ids).map_err(bench_err)?;
    let prompts = token_rows(
        seed + BEAM_STREAM,
        o.users,
        o.prompt_len,
        cat.first_token(vocab),
    );
    let params = BeamParams {
        num_beams: o.beams,
        num_results: o.beams,
        length_penalty: None,
    };
    let per_call = o.batch_users.max(1);
    let start = Instant::now();
    // One workspace for every call, as an evaluator keeps one (the warm-up allocates it).
    // Two warm-up calls: the first compiles the pipelines while the GPU idles, and the
    // timed call right after it ran at 1.6-2.5x its steady time in some H100 runs (clocks
    // still rising, bench/NOTES.md); bench/model_transformers.py warms up twice as well.
    let mut ws = BeamWorkspace::default();
    for _ in 0..WARM_UP_CALLS {
        beam_search_in(
            &mut ws,
            model,
            &prompts[..per_call.min(prompts.len())],
            &trie,
            &params,
        )?;
    }
    progress(&format!(
        "beam: warm-up {:.2} s; timing {} users ({} per call) x {} beams over {} items ({} levels x {} codes)",
        start.elapsed().as_secs_f64(),
        o.users,
        per_call,
        o.beams,
        cat.items,
        cat.levels,
        cat.codes
    ));
    ctx.wait_idle()?;
    ctx.reset_memory_peak();
    let start = Instant::now();
    let mut min_results = usize::MAX;
    for (i, chunk) in prompts.chunks(per_call).enumerate() {
        let hits = beam_search_in(&mut ws, model, chunk, &trie, &params)?;
        min_results = hits.iter().map(Vec::len).fold(min_results, usize::min);
        if i == 0 || (i + 1) % 8 == 0 {
            progress(&format!(
                "beam: {} users done, {:.2} s",
                ((i + 1) * per_call).min(o.users),
                start.elapsed().as_secs_f64()
            ));
        }
    }
    ctx.wait_idle()?;
    let seconds = start.elapsed().as_secs_f64();
    let users_per_s = o.users as f64 / seconds.max(1e-12);
    progress(&format!(
        "beam: {} users in {seconds:.2} s = {users_per_s:.2} users/s",
        o.users
    ));
    Ok(BeamResult {
        users: o.users,
        batch_users: per_call,
        prompt_len: o.prompt_len,
        beams: o.beams,
        catalogue: cat,
        seconds,
        users_per_s,
        min_results: if o.users == 0 { 0 } else { min_results },
        peak_bytes: ctx.memory_stats().peak_bytes,
    })
}
