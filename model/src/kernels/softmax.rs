//! Softmax and log-softmax over the last dimension (vocabulary-sized rows: 150k+), with a
//! temperature. Inputs larger than one storage binding are processed in windows of whole rows.

use bytemuck::{Pod, Zeroable};

use super::window_plan::{fits_u32, row_windows};
use crate::gpu::{
    grid_1d, Access, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor,
};

static SRC: ShaderSource = crate::shader!("softmax.wgsl");
static SOFTMAX: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "main",
    bindings: &[Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    rows: u32,
    v: u32,
    base: u32,
    flags: u32,
    inv_tau: f32,
    _p: [u32; 3],
}

/// `log`: write log-softmax instead of probabilities. `temperature`: the input is divided by it
/// (must be finite and > 0; 1 is plain softmax).
#[derive(Clone, Copy, Debug)]
pub struct SoftmaxOpts {
    pub log: bool,
    pub temperature: f32,
}

impl Default for SoftmaxOpts {
    fn default() -> Self {
        SoftmaxOpts {
            log: false,
            temperature: 1.0,
        }
    }
}

impl SoftmaxOpts {
    pub fn log() -> Self {
        SoftmaxOpts {
            log: true,
            ..Default::default()
        }
    }
    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = t;
        self
    }
}

/// y = softmax(x / T) (or log-softmax) over the last dimension. `x` and `y` are f32 of the same
/// shape `[..., V]` with V >= 1, and distinct tensors.
pub fn softmax(rec: &mut Recorder, x: &Tensor, y: &Tensor, o: SoftmaxOpts) -> Result<()> {
    const OP: &str = "softmax";
    let err = |why: &str| {
        GpuError::shape(
            OP,
            format!(
                "{why}: x {:?} {:?}, y {:?} {:?}",
                x.shape(),
                x.dtype(),
                y.shape(),
                y.dtype()
            ),
        )
    };
    if x.dtype() != DType::F32 || y.dtype() != DType::F32 {
        return Err(err("x and y must be f32"));
    }
    if x.shape() != y.shape() {
        return Err(err("x and y must have the same shape"));
    }
    let v = *x
        .shape()
        .last()
        .ok_or_else(|| err("x must have at least one dimension"))?;
    if v == 0 {
        return Err(err("the softmax dimension is empty"));
    }
    if x.buffer() == y.buffer() {
        return Err(err("x and y must be distinct buffers"));
    }
    if !(o.temperature.is_finite() && o.temperature > 0.0) {
        return Err(err(&format!(
            "temperature {} must be finite and > 0",
            o.temperature
        )));
    }
    let rows = x.numel() / v;
    let ctx = rec.ctx().clone();
    for w in row_windows(&ctx, OP, rows, v)? {
        let p = Params {
            rows: fits_u32(OP, "rows", w.rows)?,
            v: fits_u32(OP, "V", v)?,
            base: w.base as u32,
            flags: u32::from(o.log),
            inv_tau: 1.0 / o.temperature,
            _p: [0; 3],
        };
        let binds = vec![
            x.binding_range(OP, w.start, w.len)?,
            y.binding_range(OP, w.start, w.len)?,
        ];
        // Two arrays of WG f32s.
        let constants = [("WG", super::row_workgroup_size(rec.ctx(), 1024 * 8) as f64)];
        rec.dispatch(
            &SOFTMAX,
            &constants,
            &p,
            binds,
            grid_1d(p.rows, rec.max_groups()),
        )?;
    }
    Ok(())
}
