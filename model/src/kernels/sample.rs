//! Next-token choice on the GPU from rows of log-probabilities (greedy, top-k, top-p, per-row
//! allowed-id lists, a host-drawn uniform per row), so a decode step reads back only the chosen
//! token ids and their log-probs (2 x rows words) instead of rows x vocabulary floats.
//! The exact semantics are in shaders/sample.wgsl's header; `generate::choose_with` is the host
//! reference of the same definition.

use bytemuck::{Pod, Zeroable};

use super::window_plan::{fits_u32, row_windows};
use crate::gpu::{
    grid_1d, Access, DType, GpuContext, GpuError, KernelEntry, Recorder, Result, ShaderSource,
    Tensor,
};

static SRC: ShaderSource = crate::shader!("sample.wgsl");
static SAMPLE: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "main",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    rows: u32,
    v: u32,
    base: u32,
    row0: u32,
    greedy: u32,
    top_k: u32,
    top_p: f32,
    _p: u32,
}

const CONSTRAINED: u32 = 1;
const SKIP: u32 = 2;

/// How every row is chosen: greedy (argmax, lowest index on ties), or sampled after a top-k cut
/// (0 = none) and a top-p cut (>= 1 = none) from the row's distribution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleOpts {
    pub greedy: bool,
    pub top_k: usize,
    pub top_p: f32,
}

/// What one row draws from.
#[derive(Clone, Copy, Debug)]
pub enum RowChoice<'a> {
    /// Every token of the row.
    Free,
    /// Only these ids (strictly ascending, each below the row length). An empty list yields
    /// token 0; a single id is a forced token (its log-prob is still read from the row).
    Allowed(&'a [u32]),
    /// Nothing: the row's output is (u32::MAX, 0.0).
    Skip,
}

/// Per-row instructions for one `sample` call, built on the host: 4 words per row (allowed
/// start, allowed count, flags, bits of the uniform) and the concatenated allowed ids.
#[derive(Clone, Debug, Default)]
pub struct RowPlan {
    words: Vec<u32>,
    allowed: Vec<u32>,
}

/// The largest f32 below 1: a uniform in [0, 1) stays below 1 after rounding to f32.
const BELOW_ONE: f32 = 1.0 - f32::EPSILON / 2.0;

impl RowPlan {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn rows(&self) -> usize {
        self.words.len() / 4
    }

    /// Appends a row; `u` is its uniform in [0, 1) (ignored by greedy, forced and skipped rows).
    pub fn push(&mut self, choice: RowChoice, u: f64) {
        let (start, count, flags) = match choice {
            RowChoice::Free => (0, 0, 0),
            RowChoice::Allowed(ids) => {
                let start = self.allowed.len() as u32;
                self.allowed.extend_from_slice(ids);
                (start, ids.len() as u32, CONSTRAINED)
            }
            RowChoice::Skip => (0, 0, SKIP),
        };
        let u = (u.clamp(0.0, 1.0) as f32).min(BELOW_ONE);
        self.words.extend([start, count, flags, u.to_bits()]);
    }

    /// Checks the allowed lists against a row length of `v` and uploads the plan.
    pub fn upload(&self, ctx: &GpuContext, v: usize) -> Result<RowTensors> {
        const OP: &str = "sample";
        for (r, w) in self.words.chunks(4).enumerate() {
            if w[2] & CONSTRAINED == 0 {
                continue;
            }
            let ids = &self.allowed[w[0] as usize..(w[0] + w[1]) as usize];
            if ids.windows(2).any(|p| p[0] >= p[1]) || ids.last().is_some_and(|&t| t as usize >= v)
            {
                return Err(GpuError::shape(
                    OP,
                    format!("row {r}: allowed ids must be strictly ascending and below {v}"),
                ));
            }
        }
        let rows = self.rows();
        Ok(RowTensors {
            words: Tensor::from_u32(ctx, &[rows, 4], &self.words)?,
            allowed: if self.allowed.is_empty() {
                None
            } else {
                Some(Tensor::from_u32(ctx, &[self.allowed.len()], &self.allowed)?)
            },
        })
    }
}

/// An uploaded `RowPlan`.
#[derive(Debug)]
pub struct RowTensors {
    words: Tensor,
    allowed: Option<Tensor>,
}

impl RowTensors {
    pub fn rows(&self) -> usize {
        self.words.shape()[0]
    }
}

/// Chooses one token per row of `logp` (f32 `[R, V]`, log-probabilities at the sampling
/// temperature) following `plan` (R rows), writing `out` (u32 `[R, 2]`: token id, bits of its
/// log-prob x[token]). Read the result with `read_choices`.
pub fn sample(
    rec: &mut Recorder,
    logp: &Tensor,
    plan: &RowTensors,
    o: SampleOpts,
    out: &Tensor,
) -> Result<()> {
    const OP: &str = "sample";
    let err = |why: &str| {
        GpuError::shape(
            OP,
            format!(
                "{why}: logp {:?} {:?}, plan {} rows, out {:?} {:?}",
                logp.shape(),
                logp.dtype(),
                plan.rows(),
                out.shape(),
                out.dtype()
            ),
        )
    };
    let &[rows, v] = logp.shape() else {
        return Err(err("logp must be [rows, V]"));
    };
    if logp.dtype() != DType::F32 {
        return Err(err("logp must be f32"));
    }
    if v == 0 {
        return Err(err("rows are empty"));
    }
    if plan.rows() != rows {
        return Err(err("the plan needs one entry per row"));
    }
    if out.dtype() != DType::U32 || out.shape() != [rows, 2] {
        return Err(err("out must be u32 [rows, 2]"));
    }
    if !(o.top_p.is_finite()) {
        return Err(err(&format!("top_p {} must be finite", o.top_p)));
    }
    let ctx = rec.ctx().clone();
    let allowed = match &plan.allowed {
        Some(t) => t.binding(OP)?,
        None => ctx.unused_binding(),
    };
    for w in row_windows(&ctx, OP, rows, v)? {
        let p = Params {
            rows: fits_u32(OP, "rows", w.rows)?,
            v: fits_u32(OP, "V", v)?,
            base: w.base as u32,
            row0: fits_u32(OP, "row", w.row0)?,
            greedy: u32::from(o.greedy),
            top_k: o.top_k.min(u32::MAX as usize) as u32,
            top_p: o.top_p,
            _p: 0,
        };
        let binds = vec![
            logp.binding_range(OP, w.start, w.len)?,
            plan.words.binding(OP)?,
            allowed.clone(),
            out.binding(OP)?,
        ];
        // Four arrays of WG words and one of WG vec4s, the 256 bins.
        let wg = super::row_workgroup_size(&ctx, 1024 * (4 * 4 + 16) + 256 * 4 + 16);
        let constants = [("WG", wg as f64)];
        rec.dispatch(
            &SAMPLE,
            &constants,
            &p,
            binds,
            grid_1d(p.rows, rec.max_groups()),
        )?;
    }
    Ok(())
}

/// Reads `sample`'s output: (token, log-prob) per row; skipped rows read (u32::MAX, 0.0).
pub fn read_choices(out: &Tensor) -> Result<Vec<(u32, f32)>> {
    Ok(choices_of(&out.to_u32_vec()?))
}

/// The (token, log-prob) pairs of an output's words (`read_choices` of words read otherwise).
pub fn choices_of(words: &[u32]) -> Vec<(u32, f32)> {
    words
        .chunks(2)
        .map(|c| (c[0], f32::from_bits(c[1])))
        .collect()
}
