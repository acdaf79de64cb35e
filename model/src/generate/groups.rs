//! The one sampling loop: every prompt is prefilled once and its KV cache shared by its n
//! samples (read in place where the decode kernel can, copied elsewhere); each step records the
//! decode forward and the token choice in one submission, and reads back one (token, log-prob)
//! pair per sequence, one step behind on the unconstrained GPU sampler (the next step reads the
//! chosen tokens on the GPU). `generate`, the evaluator's reasoning sampler and SRPO rollouts
//! all run it.

use std::time::Instant;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::answer::{AnswerConstraint, AnswerState};
use super::infer::DecodeState;
use super::sampling::{choose, draws_uniform, sequence_rng, SamplingParams};
use super::{FinishReason, Sample};
use crate::gpu::{DType, GpuError, PendingRead, Recorder, Result, Tensor};
use crate::kernels::sample::{choices_of, read_choices, sample, RowChoice, RowPlan, SampleOpts};
use crate::transformer::Transformer;

/// Sampling caches hold a whole multiple of this many positions. A freed state's buffers go
/// back to the context's pool, which hands them out again for exactly their size, so rounding
/// the capacity lets calls whose longest prompt plus new tokens differ a little (successive RL
/// batches, a warm-up before a timed call) reuse them: creating a fresh 64-row cache of
/// Qwen3-0.6B at 384 positions (5.6 GB in f32) took 129 ms on the H100 machine, 9% of a
/// 64 x 128-token sampling call (bench/NOTES.md). Attention reads only up to each row's length
/// and gathers stop at the longest source row, so the spare capacity costs memory, not time.
pub const KV_CAPACITY_BLOCK: usize = 128;

/// Which RNG stream each sequence draws from (`sequence_rng`).
#[derive(Clone, Copy, Debug)]
pub enum SeedStreams<'a> {
    /// Sequence r of the flattened batch (prompt r / n, sample r % n) uses stream r of
    /// `params.seed`: `generate`'s scheme, so sampling n per prompt here draws exactly what
    /// `generate` draws on the prompts repeated n times.
    Flat,
    /// Sample j of prompt i uses stream j of `seeds[i]` (one seed per prompt).
    PerPrompt(&'a [u64]),
}

/// Where tokens are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Sampler {
    /// `kernels::sample`: only token ids and log-probs are read back.
    #[default]
    Gpu,
    /// `choose` on log-softmax rows read back every step: the reference the GPU path is
    /// tested against (same choices except at rounding-level ties of a boundary).
    Host,
}

impl Sampler {
    /// The faster path for this model's adapter: the GPU kernel, except on a CPU adapter
    /// (lavapipe) with a small vocabulary, where reading a row back is a memcpy and the kernel's
    /// ~130 workgroup barriers per row (coroutine switches there) cost more than the host's
    /// pass over a few thousand entries. Measured on lavapipe: vocab 2,048 host 654-762 vs
    /// kernel 546-633 new tok/s; vocab 153,216 host 49-51 vs kernel 104-143.
    pub fn auto(model: &Transformer) -> Sampler {
        let cpu = model.ctx().on_cpu();
        if cpu && model.cfg.vocab_size <= 32_768 {
            Sampler::Host
        } else {
            Sampler::Gpu
        }
    }
}

/// `n` samples of each prompt (one inner vector per prompt), chosen by `Sampler::auto`.
pub fn generate_groups(
    model: &Transformer,
    prompts: &[&[u32]],
    n: usize,
    seeds: SeedStreams,
    params: &SamplingParams,
    stop_tokens: &[u32],
    constraint: Option<&AnswerConstraint>,
) -> Result<Vec<Vec<Sample>>> {
    generate_groups_on(
        Sampler::auto(model),
        model,
        prompts,
        n,
        seeds,
        params,
        stop_tokens,
        constraint,
    )
}

/// One sequence being generated.
struct Seq {
    rng: ChaCha8Rng,
    sample: Sample,
    answer: AnswerState,
    done: bool,
}

/// What the next token of a sequence may be.
enum Pick {
    Skip,
    Forced(u32),
    Allowed(Vec<u32>),
    Free,
}

/// `generate_groups` with the token choice on `sampler`.
#[allow(clippy::too_many_arguments)]
pub fn generate_groups_on(
    sampler: Sampler,
    model: &Transformer,
    prompts: &[&[u32]],
    n: usize,
    seeds: SeedStreams,
    params: &SamplingParams,
    stop_tokens: &[u32],
    constraint: Option<&AnswerConstraint>,
) -> Result<Vec<Vec<Sample>>> {
    let g = prompts.len();
    if prompts.iter().any(|p| p.is_empty()) {
        return Err(GpuError::shape(
            "generate",
            "every prompt needs at least one token",
        ));
    }
    if let SeedStreams::PerPrompt(s) = seeds {
        if s.len() != g {
            return Err(GpuError::shape(
                "generate",
                format!("{g} prompts need {g} seeds, got {}", s.len()),
            ));
        }
    }
    let b = g * n;
    let mut seqs: Vec<Seq> = (0..b)
        .map(|r| Seq {
            rng: match seeds {
                SeedStreams::Flat => sequence_rng(params.seed, r),
                SeedStreams::PerPrompt(s) => sequence_rng(s[r / n], r % n),
            },
            sample: Sample {
                tokens: Vec::new(),
                logprobs: Vec::new(),
                finish: FinishReason::Length,
            },
            answer: AnswerState::start(prompts[r / n], constraint),
            done: false,
        })
        .collect();
    if b > 0 && params.max_new_tokens > 0 {
        decode(
            sampler,
            model,
            prompts,
            n,
            params,
            stop_tokens,
            constraint,
            &mut seqs,
        )?;
    }
    let mut it = seqs.into_iter().map(|s| s.sample);
    Ok((0..g).map(|_| it.by_ref().take(n).collect()).collect())
}

#[allow(clippy::too_many_arguments)]
fn decode(
    sampler: Sampler,
    model: &Transformer,
    prompts: &[&[u32]],
    n: usize,
    params: &SamplingParams,
    stop_tokens: &[u32],
    constraint: Option<&AnswerConstraint>,
    seqs: &mut [Seq],
) -> Result<()> {
    let b = seqs.len();
    let longest = prompts.iter().map(|p| p.len()).max().unwrap_or(1);
    let chunk: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            let mut c = p.to_vec();
            c.resize(longest, 0);
            c
        })
        .collect();
    let real: Vec<usize> = prompts.iter().map(|p| p.len()).collect();
    let t_call = Instant::now();
    let mut rec = Recorder::new(model.ctx(), "generate");
    // n samples of a prompt read its positions from the prefill's cache where the decode
    // kernel can (their own caches hold only what they generate), instead of n copies of it.
    let shared = n > 1 && model.decodes_shared_prefixes()?;
    let new_cap = params.max_new_tokens.next_multiple_of(KV_CAPACITY_BLOCK);
    let capacity = if shared {
        longest.next_multiple_of(KV_CAPACITY_BLOCK)
    } else {
        (longest + params.max_new_tokens).next_multiple_of(KV_CAPACITY_BLOCK)
    };
    let mut prefill = DecodeState::new(model, prompts.len(), capacity)?;
    let state_ms = t_call.elapsed().as_secs_f64() * 1e3;
    let logp = model.record_infer(&mut rec, &mut prefill, &chunk, &real, params.temperature, n)?;
    let src: Vec<u32> = (0..b).map(|r| (r / n) as u32).collect();
    let mut state = if n == 1 {
        prefill
    } else if shared {
        let own = DecodeState::alloc(model, b, new_cap, prefill.weights.clone())?;
        prefill.share_prefix(&src, &own)?
    } else {
        prefill.record_gather(&mut rec, model, &src)?
    };
    // Where the time goes (debug log): recording on the host vs submit-and-wait (GPU work and
    // read-back), the first choice (which waits for the prefill) apart.
    let prefill_record_ms = t_call.elapsed().as_secs_f64() * 1e3;
    let mut t = StepTimes::default();
    // Without a constraint on the GPU sampler, no step's recording needs the previous choice:
    // the next step reads it on the GPU, and the host records while the GPU runs.
    let pipelined = sampler == Sampler::Gpu && constraint.is_none();
    if pipelined {
        decode_ahead(
            model,
            &mut rec,
            &mut state,
            logp,
            params,
            stop_tokens,
            seqs,
            &mut t,
        )?;
    } else {
        decode_step_by_step(
            sampler,
            model,
            &mut rec,
            &mut state,
            logp,
            params,
            stop_tokens,
            constraint,
            seqs,
            &mut t,
        )?;
    }
    let (encode, commands) = rec.encode_stats();
    let (bind_groups_created, bind_groups_reused) = rec.bind_group_stats();
    tracing::debug!(
        rows = b,
        shared_prompts = shared,
        pipelined,
        steps = t.steps,
        commands,
        bind_groups_created,
        bind_groups_reused,
        encode_ms = encode.as_secs_f64() * 1e3,
        state_ms,
        prefill_record_ms,
        first_wait_ms = t.first_wait_ms,
        decode_record_ms = t.record_ms,
        decode_wait_ms = t.wait_ms,
        total_ms = t_call.elapsed().as_secs_f64() * 1e3,
        "sampling call"
    );
    Ok(())
}

/// Host time of a sampling call's steps (debug log).
#[derive(Default)]
struct StepTimes {
    first_wait_ms: f64,
    wait_ms: f64,
    record_ms: f64,
    steps: usize,
}

impl StepTimes {
    /// Step `step`'s choices arrived; the wait began at `since`.
    fn waited(&mut self, step: usize, since: Instant) {
        let ms = since.elapsed().as_secs_f64() * 1e3;
        if step == 0 {
            self.first_wait_ms = ms;
        } else {
            self.wait_ms += ms;
        }
        self.steps += 1;
    }
}

/// The step-by-step loop (constraints, the host sampler): each step's choices are read back
/// before the next step is recorded with them. `logp` is the prefill's log-probs, recorded in
/// `rec`.
#[allow(clippy::too_many_arguments)]
fn decode_step_by_step(
    sampler: Sampler,
    model: &Transformer,
    rec: &mut Recorder,
    state: &mut DecodeState,
    mut logp: Tensor,
    params: &SamplingParams,
    stop_tokens: &[u32],
    constraint: Option<&AnswerConstraint>,
    seqs: &mut [Seq],
    t: &mut StepTimes,
) -> Result<()> {
    let b = seqs.len();
    for step in 0..params.max_new_tokens {
        let picks: Vec<Pick> = seqs.iter().map(|s| pick(s, constraint)).collect();
        let t_wait = Instant::now();
        let chosen = match sampler {
            Sampler::Gpu => {
                let out = record_choice(rec, &logp, &picks, seqs, params)?;
                rec.submit()?;
                sampled_only(read_choices(&out)?, &picks)
            }
            Sampler::Host => {
                rec.submit()?;
                choose_on_host(&logp.to_f32_vec()?, &picks, seqs, params)
            }
        };
        t.waited(step, t_wait);
        apply(seqs, chosen, stop_tokens, constraint);
        if seqs.iter().all(|s| s.done) || step + 1 == params.max_new_tokens {
            break;
        }
        let next: Vec<Vec<u32>> = seqs
            .iter()
            .map(|s| {
                vec![if s.done {
                    0
                } else {
                    *s.sample.tokens.last().expect("a token")
                }]
            })
            .collect();
        let t_record = Instant::now();
        logp = model.record_infer(rec, state, &next, &vec![1; b], params.temperature, 1)?;
        t.record_ms += t_record.elapsed().as_secs_f64() * 1e3;
    }
    Ok(())
}

/// The unconstrained GPU-sampler loop, one step ahead: step t's forward (fed from step t-1's
/// choices on the GPU) and token choice are recorded and submitted before step t-1's choices
/// are read back, so the host records while the GPU computes. A sequence that stops is seen
/// one step late: the step it still sampled is discarded, and its draws from then on are
/// never used, so every sequence gets what the step-by-step loop gives it (bit for bit where
/// rows do not share operand scales; f16 steps of 256+ rows cast all rows with one scale, and
/// a stopped row's input differs here). `logp` is the prefill's log-probs, recorded in `rec`.
#[allow(clippy::too_many_arguments)]
fn decode_ahead(
    model: &Transformer,
    rec: &mut Recorder,
    state: &mut DecodeState,
    mut logp: Tensor,
    params: &SamplingParams,
    stop_tokens: &[u32],
    seqs: &mut [Seq],
    t: &mut StepTimes,
) -> Result<()> {
    let mut in_flight: Option<(PendingRead, Vec<Pick>)> = None;
    let mut prev: Option<Tensor> = None;
    for step in 0..params.max_new_tokens {
        let t_record = Instant::now();
        if let Some(chosen) = &prev {
            logp = model.record_decode_chosen(rec, state, chosen, params.temperature)?;
        }
        let picks: Vec<Pick> = seqs.iter().map(|s| pick(s, None)).collect();
        let out = record_choice(rec, &logp, &picks, seqs, params)?;
        rec.submit()?;
        let read = out.read_later()?;
        t.record_ms += t_record.elapsed().as_secs_f64() * 1e3;
        if let Some((r, picks)) = in_flight.replace((read, picks)) {
            settle(r, &picks, step - 1, seqs, stop_tokens, t)?;
            if seqs.iter().all(|s| s.done) {
                return Ok(());
            }
        }
        prev = Some(out);
    }
    if let Some((r, picks)) = in_flight {
        settle(r, &picks, params.max_new_tokens - 1, seqs, stop_tokens, t)?;
    }
    Ok(())
}

/// Step `step`'s choices, read back (waiting for that step only), applied to the sequences.
fn settle(
    read: PendingRead,
    picks: &[Pick],
    step: usize,
    seqs: &mut [Seq],
    stop_tokens: &[u32],
    t: &mut StepTimes,
) -> Result<()> {
    let t_wait = Instant::now();
    let chosen = sampled_only(choices_of(&read.wait()?), picks);
    t.waited(step, t_wait);
    apply(seqs, chosen, stop_tokens, None);
    Ok(())
}

/// One step's choices appended to the sequences still running (a finished one ignores what
/// it was still sampled), ending those that chose a stop token.
fn apply(
    seqs: &mut [Seq],
    chosen: Vec<Option<(u32, f32)>>,
    stop_tokens: &[u32],
    constraint: Option<&AnswerConstraint>,
) {
    for (s, choice) in seqs.iter_mut().zip(chosen) {
        let Some((tok, lp)) = choice else { continue };
        if s.done {
            continue;
        }
        s.sample.tokens.push(tok);
        s.sample.logprobs.push(lp);
        if let Some(c) = constraint {
            s.answer = s.answer.advance(c, &s.sample.tokens, tok);
        }
        if stop_tokens.contains(&tok) {
            s.done = true;
            s.sample.finish = FinishReason::Stop;
        }
    }
}

fn pick(s: &Seq, constraint: Option<&AnswerConstraint>) -> Pick {
    if s.done {
        return Pick::Skip;
    }
    match (s.answer, constraint) {
        (AnswerState::InTrie(node), Some(c)) => Pick::Allowed(c.trie.allowed(node).collect()),
        (AnswerState::Closing(k), Some(c)) => Pick::Forced(c.close[k]),
        _ => Pick::Free,
    }
}

/// Records the token choice after everything `rec` holds (drawing each sampled row's uniform
/// from its sequence's RNG) and returns its output, `[rows, 2]` u32: token, log-prob bits.
fn record_choice(
    rec: &mut Recorder,
    logp: &Tensor,
    picks: &[Pick],
    seqs: &mut [Seq],
    params: &SamplingParams,
) -> Result<Tensor> {
    let v = logp.shape()[1];
    let mut plan = RowPlan::new();
    for (p, s) in picks.iter().zip(seqs.iter_mut()) {
        let mut draw = |n: usize| {
            if draws_uniform(params, n) {
                s.rng.random::<f64>()
            } else {
                0.0
            }
        };
        match p {
            Pick::Skip => plan.push(RowChoice::Skip, 0.0),
            Pick::Forced(t) => plan.push(RowChoice::Allowed(std::slice::from_ref(t)), 0.0),
            Pick::Allowed(ids) => plan.push(RowChoice::Allowed(ids), draw(ids.len())),
            Pick::Free => plan.push(RowChoice::Free, draw(v)),
        }
    }
    let ctx = rec.ctx().clone();
    let rows = plan.upload(&ctx, v)?;
    let out = Tensor::zeros(&ctx, &[picks.len(), 2], DType::U32)?;
    let opts = SampleOpts {
        greedy: params.temperature <= 0.0,
        top_k: params.top_k,
        top_p: params.top_p,
    };
    sample(rec, logp, &rows, opts, &out)?;
    Ok(out)
}

/// The choices of the rows that were sampled (`None` for skipped ones).
fn sampled_only(chosen: Vec<(u32, f32)>, picks: &[Pick]) -> Vec<Option<(u32, f32)>> {
    chosen
        .into_iter()
        .zip(picks)
        .map(|(c, p)| (!matches!(p, Pick::Skip)).then_some(c))
        .collect()
}

/// The host reference: `choose` on every row of `rows` (log-softmax, read back).
fn choose_on_host(
    rows: &[f32],
    picks: &[Pick],
    seqs: &mut [Seq],
    params: &SamplingParams,
) -> Vec<Option<(u32, f32)>> {
    let v = rows.len() / picks.len().max(1);
    picks
        .iter()
        .zip(seqs.iter_mut())
        .enumerate()
        .map(|(r, (p, s))| {
            let row = &rows[r * v..(r + 1) * v];
            let tok = match p {
                Pick::Skip => return None,
                Pick::Forced(t) => *t,
                Pick::Allowed(ids) => choose(row, Some(ids), params, &mut s.rng),
                Pick::Free => choose(row, None, params, &mut s.rng),
            };
            Some((tok, row[tok as usize]))
        })
        .collect()
}
