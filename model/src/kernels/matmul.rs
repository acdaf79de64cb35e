//! Batched matmul with transposed operands, optional bias, accumulation, and chunking of
//! operands larger than one storage binding (a 150k x 1024 f32 LM head is 600 MiB; lavapipe
//! binds at most 128 MiB).

use bytemuck::{Pod, Zeroable};

use crate::gpu::{
    Access, Binding, DType, GpuError, KernelEntry, Recorder, Result, ShaderSource, Tensor,
};

static SRC: ShaderSource = crate::shader!("matmul.wgsl");
static MATMUL: KernelEntry = KernelEntry {
    source: &SRC,
    entry: "main",
    bindings: &[Access::Read, Access::Read, Access::Read, Access::ReadWrite],
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Default)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_off: u32,
    a_bs: u32,
    a_rs: u32,
    a_cs: u32,
    b_off: u32,
    b_bs: u32,
    b_rs: u32,
    b_cs: u32,
    c_off: u32,
    c_bs: u32,
    c_rs: u32,
    flags: u32,
    bias_off: u32,
    alpha: f32,
    _p: [u32; 2],
}

/// How the operands are stored: `trans_a` means A is stored as [K, M], `trans_b` means B is
/// stored as [N, K] (the layout of a PyTorch `Linear` weight, so `x @ W^T` is `trans_b`).
#[derive(Clone, Copy, Debug)]
pub struct MatmulOpts {
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    /// C += result instead of C = result.
    pub accumulate: bool,
}

impl Default for MatmulOpts {
    fn default() -> Self {
        MatmulOpts {
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            accumulate: false,
        }
    }
}

impl MatmulOpts {
    pub fn nt() -> Self {
        MatmulOpts {
            trans_b: true,
            ..Default::default()
        }
    }
    pub fn tn() -> Self {
        MatmulOpts {
            trans_a: true,
            ..Default::default()
        }
    }
    pub fn accumulate(mut self, yes: bool) -> Self {
        self.accumulate = yes;
        self
    }
}

/// Problem dimensions after validating the shapes.
#[derive(Clone, Copy, Debug)]
struct Dims {
    batch: usize,
    m: usize,
    n: usize,
    k: usize,
    b_batched: bool,
}

fn dims(a: &Tensor, b: &Tensor, c: &Tensor, bias: Option<&Tensor>, o: &MatmulOpts) -> Result<Dims> {
    let err = |why: &str| {
        GpuError::shape(
            "matmul",
            format!(
                "{why}: A {:?}{}, B {:?}{}, C {:?}{}",
                a.shape(),
                if o.trans_a { "^T" } else { "" },
                b.shape(),
                if o.trans_b { "^T" } else { "" },
                c.shape(),
                bias.map(|t| format!(", bias {:?}", t.shape()))
                    .unwrap_or_default()
            ),
        )
    };
    for t in [a, b, c].into_iter().chain(bias) {
        if t.dtype() != DType::F32 {
            return Err(err("all operands must be f32"));
        }
    }
    let (batch, ar, ac) = match a.shape() {
        [r, c] => (1, *r, *c),
        [bt, r, c] => (*bt, *r, *c),
        _ => return Err(err("A must be 2-D or 3-D")),
    };
    let (m, k) = if o.trans_a { (ac, ar) } else { (ar, ac) };
    let (b_batched, br, bc) = match b.shape() {
        [r, c] => (false, *r, *c),
        [bt, r, c] if *bt == batch => (true, *r, *c),
        _ => return Err(err("B must be 2-D or 3-D with A's batch")),
    };
    let (kb, n) = if o.trans_b { (bc, br) } else { (br, bc) };
    if kb != k {
        return Err(err("inner dimensions differ"));
    }
    let c_ok = match c.shape() {
        [r, cc] => batch == 1 && *r == m && *cc == n,
        [bt, r, cc] => *bt == batch && *r == m && *cc == n,
        _ => false,
    };
    if !c_ok {
        return Err(err("C must be [batch,] M x N"));
    }
    if let Some(t) = bias {
        if t.shape() != [n] {
            return Err(err("bias must be [N]"));
        }
    }
    Ok(Dims {
        batch,
        m,
        n,
        k,
        b_batched,
    })
}

/// Rows per chunk so that `rows * row_len` f32 fit one binding, in multiples of 64 rows so
/// every chunk starts on a 256-byte boundary.
fn chunk_rows(total: usize, row_len: usize, limit_bytes: u64) -> usize {
    let fit = (limit_bytes / (row_len.max(1) as u64 * 4)) as usize;
    if fit >= total {
        total
    } else {
        (fit / 64 * 64).max(64)
    }
}

/// C = alpha * op(A) @ op(B) (+ bias) (+ C).
pub fn matmul(
    rec: &mut Recorder,
    a: &Tensor,
    b: &Tensor,
    bias: Option<&Tensor>,
    c: &Tensor,
    o: MatmulOpts,
) -> Result<()> {
    let d = dims(a, b, c, bias, &o)?;
    let limit = rec.ctx().max_binding_bytes();
    let fits = |t: &Tensor| t.size_bytes() <= limit;
    let bias_b = match bias {
        Some(t) => t.binding("matmul")?,
        None => rec.ctx().unused_binding(),
    };
    if fits(a) && fits(b) && fits(c) {
        let whole = [
            a.binding("matmul")?,
            b.binding("matmul")?,
            bias_b,
            c.binding("matmul")?,
        ];
        return record(rec, &d, &o, bias.is_some(), whole, d.m, Chunk::Whole);
    }
    if d.batch != 1 || o.trans_a {
        return Err(GpuError::TooLarge {
            op: "matmul",
            bytes: a.size_bytes().max(b.size_bytes()).max(c.size_bytes()),
            limit,
            what: "chunking supports unbatched, non-transposed A only",
        });
    }
    // Rows of A and C are contiguous: chunk over M. B is chunked over N when stored [N, K]
    // (rows contiguous) and over K otherwise (accumulating partial products into C).
    let mc = chunk_rows(d.m, d.k.max(d.n), limit);
    let bc = chunk_rows(
        if o.trans_b { d.n } else { d.k },
        if o.trans_b { d.k } else { d.n },
        limit,
    );
    for m0 in (0..d.m).step_by(mc) {
        let mlen = mc.min(d.m - m0);
        let a_b = a.binding_range("matmul", m0 * d.k, mlen * d.k)?;
        let c_b = c.binding_range("matmul", m0 * d.n, mlen * d.n)?;
        let total = if o.trans_b { d.n } else { d.k };
        for j0 in (0..total).step_by(bc) {
            let jlen = bc.min(total - j0);
            let row_len = if o.trans_b { d.k } else { d.n };
            let b_b = b.binding_range("matmul", j0 * row_len, jlen * row_len)?;
            let binds = [a_b.clone(), b_b, bias_b.clone(), c_b.clone()];
            let mut oo = o;
            let chunk = if o.trans_b {
                Chunk::N { n0: j0, len: jlen }
            } else {
                oo.accumulate = o.accumulate || j0 > 0;
                Chunk::K { k0: j0, len: jlen }
            };
            let with_bias = bias.is_some() && (o.trans_b || j0 == 0);
            record(rec, &d, &oo, with_bias, binds, mlen, chunk)?;
        }
    }
    Ok(())
}

/// Which window of the problem one dispatch covers.
#[derive(Clone, Copy)]
enum Chunk {
    Whole,
    /// Output columns [n0, n0+len): B's binding starts at row n0 of its [N, K] storage.
    N {
        n0: usize,
        len: usize,
    },
    /// Inner indices [k0, k0+len): B's binding starts at row k0 of its [K, N] storage.
    K {
        k0: usize,
        len: usize,
    },
}

/// Records one dispatch over `rows` rows of the bound A/C windows.
fn record(
    rec: &mut Recorder,
    d: &Dims,
    o: &MatmulOpts,
    with_bias: bool,
    binds: [Binding; 4],
    rows: usize,
    chunk: Chunk,
) -> Result<()> {
    let (n0, n, k0, k) = match chunk {
        Chunk::Whole => (0, d.n, 0, d.k),
        Chunk::N { n0, len } => (n0, len, 0, d.k),
        Chunk::K { k0, len } => (0, d.n, k0, len),
    };
    let (a_rs, a_cs) = if o.trans_a { (1, d.m) } else { (d.k, 1) };
    let (b_rs, b_cs) = if o.trans_b { (1, d.k) } else { (d.n, 1) };
    let p = Params {
        m: rows as u32,
        n: n as u32,
        k: k as u32,
        batch: d.batch as u32,
        a_off: k0 as u32,
        a_bs: (d.m * d.k) as u32,
        a_rs: a_rs as u32,
        a_cs: a_cs as u32,
        b_off: 0,
        b_bs: if d.b_batched { (d.k * d.n) as u32 } else { 0 },
        b_rs: b_rs as u32,
        b_cs: b_cs as u32,
        c_off: n0 as u32,
        c_bs: (d.m * d.n) as u32,
        c_rs: d.n as u32,
        flags: u32::from(with_bias) | (u32::from(o.accumulate) << 1),
        bias_off: n0 as u32,
        alpha: o.alpha,
        _p: [0; 2],
    };
    let groups = [
        (n as u32).div_ceil(32),
        (rows as u32).div_ceil(32),
        d.batch as u32,
    ];
    rec.dispatch(&MATMUL, &[], &p, binds.to_vec(), groups)
}
