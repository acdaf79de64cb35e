//! Typed tensors over wgpu buffers. Row-major, contiguous; f16 is stored as packed pairs in u32
//! words so the portable kernels (no shader-f16 needed) can read it with `unpack2x16float`.

use std::sync::Arc;

use super::context::GpuContext;
use super::error::{GpuError, Result};
use super::memory::TrackedBuffer;
use super::recorder::Binding;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    U32,
    I32,
}

impl DType {
    pub fn size_bytes(self) -> usize {
        match self {
            DType::F16 => 2,
            _ => 4,
        }
    }
}

/// A tensor living on one device. Cloning shares the buffer.
#[derive(Clone)]
pub struct Tensor {
    pub(crate) ctx: GpuContext,
    pub(crate) buffer: Arc<TrackedBuffer>,
    shape: Vec<usize>,
    dtype: DType,
    /// First element of this tensor in `buffer` (non-zero for views such as a window of rows).
    offset: usize,
}

/// A tensor's words on their way to the host ([`Tensor::read_later`]).
pub struct PendingRead {
    ctx: GpuContext,
    staging: wgpu::Buffer,
    index: Option<wgpu::SubmissionIndex>,
    rx: std::sync::mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
}

impl PendingRead {
    /// Blocks until the copy is done and returns the words (whole 32-bit words of the tensor).
    pub fn wait(self) -> Result<Vec<u32>> {
        let device = self.ctx.device();
        device
            .poll(wgpu::PollType::Wait {
                submission_index: self.index,
                timeout: None,
            })
            .map_err(|e| GpuError::Validation(e.to_string()))?;
        self.ctx.take_errors()?;
        self.rx
            .recv()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let view = self
            .staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let words = bytemuck::cast_slice::<u8, u32>(&view).to_vec();
        drop(view);
        self.staging.unmap();
        Ok(words)
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?})", self.dtype, self.shape)
    }
}

/// Bit patterns written into outputs before a kernel runs in tests: any element the kernel
/// forgets to write stays NaN (or all-ones for integers) and fails the comparison.
const POISON_F32: u32 = 0x7fc0_dead;
const POISON_INT: u32 = 0xffff_ffff;
const POISON_F16_PAIR: u32 = 0x7e01_7e01;

impl Tensor {
    /// A tensor over a new or reused buffer; `zero` makes a reused one zero (new buffers are).
    /// A tensor on a buffer of the pool's (preferably one `site` held before) or a new one.
    #[track_caller]
    fn alloc(ctx: &GpuContext, shape: &[usize], dtype: DType, zero: bool) -> Result<Self> {
        let site = std::panic::Location::caller();
        let numel: usize = shape.iter().product();
        // Round up to whole 16-byte words: kernels may bind any tensor as an array of vec4
        // (16-byte loads), whose runtime length would otherwise drop a partial last word.
        let bytes = ((numel * dtype.size_bytes()).div_ceil(16) * 16).max(16) as u64;
        let limit = ctx.limits().max_buffer_size;
        if bytes > limit {
            return Err(GpuError::TooLarge {
                op: "alloc",
                bytes,
                limit,
                what: "max_buffer_size",
            });
        }
        let buffer = match ctx.pool().take(bytes, zero, site) {
            Some(b) => b,
            None => {
                let started = std::time::Instant::now();
                let b = ctx.device().create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: bytes,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                ctx.memory_counter().creation_took(started.elapsed());
                b
            }
        };
        Ok(Tensor {
            ctx: ctx.clone(),
            buffer: Arc::new(TrackedBuffer::pooled(
                buffer,
                ctx.memory_counter().clone(),
                Some(ctx.pool().clone()),
                site,
            )),
            shape: shape.to_vec(),
            dtype,
            offset: 0,
        })
    }

    /// A zero-filled tensor (wgpu zero-initialises new buffers).
    #[track_caller]
    pub fn zeros(ctx: &GpuContext, shape: &[usize], dtype: DType) -> Result<Self> {
        Self::alloc(ctx, shape, dtype, true)
    }

    /// A tensor filled with NaN / all-ones bit patterns, for tests that must notice unwritten
    /// outputs.
    #[track_caller]
    pub fn poisoned(ctx: &GpuContext, shape: &[usize], dtype: DType) -> Result<Self> {
        let t = Self::alloc(ctx, shape, dtype, false)?;
        let word = match dtype {
            DType::F32 => POISON_F32,
            DType::F16 => POISON_F16_PAIR,
            DType::U32 | DType::I32 => POISON_INT,
        };
        let words = vec![word; (t.buffer.size() / 4) as usize];
        ctx.queue()
            .write_buffer(&t.buffer, 0, bytemuck::cast_slice(&words));
        t.buffer.note_write();
        Ok(t)
    }

    #[track_caller]
    fn from_bytes(ctx: &GpuContext, shape: &[usize], dtype: DType, bytes: &[u8]) -> Result<Self> {
        let t = Self::alloc(ctx, shape, dtype, false)?;
        let numel: usize = shape.iter().product();
        if bytes.len() != numel * dtype.size_bytes() {
            return Err(GpuError::shape(
                "upload",
                format!(
                    "shape {shape:?} ({numel} x {dtype:?}) but {} bytes given",
                    bytes.len()
                ),
            ));
        }
        if !bytes.is_empty() {
            let mut padded;
            let data = if !bytes.len().is_multiple_of(4) {
                padded = bytes.to_vec();
                padded.resize(bytes.len().div_ceil(4) * 4, 0);
                &padded[..]
            } else {
                bytes
            };
            ctx.queue().write_buffer(&t.buffer, 0, data);
            t.buffer.note_write();
        }
        // A reused buffer's last partial 16-byte word may hold old bytes; kernels that read
        // whole words expect zeros there, as in a new buffer.
        let written = bytes.len().div_ceil(4) as u64 * 4;
        let tail = t.buffer.size() - written;
        if tail > 0 {
            ctx.queue()
                .write_buffer(&t.buffer, written, &[0u8; 16][..tail as usize]);
        }
        Ok(t)
    }

    #[track_caller]
    pub fn from_f32(ctx: &GpuContext, shape: &[usize], data: &[f32]) -> Result<Self> {
        Self::from_bytes(ctx, shape, DType::F32, bytemuck::cast_slice(data))
    }
    #[track_caller]
    pub fn from_f16(ctx: &GpuContext, shape: &[usize], data: &[half::f16]) -> Result<Self> {
        Self::from_bytes(ctx, shape, DType::F16, bytemuck::cast_slice(data))
    }
    #[track_caller]
    pub fn from_u32(ctx: &GpuContext, shape: &[usize], data: &[u32]) -> Result<Self> {
        Self::from_bytes(ctx, shape, DType::U32, bytemuck::cast_slice(data))
    }
    #[track_caller]
    pub fn from_i32(ctx: &GpuContext, shape: &[usize], data: &[i32]) -> Result<Self> {
        Self::from_bytes(ctx, shape, DType::I32, bytemuck::cast_slice(data))
    }

    /// Overwrites the whole tensor from host data of the same dtype.
    pub fn write_f32(&self, data: &[f32]) -> Result<()> {
        self.expect_dtype("write_f32", DType::F32)?;
        if data.len() != self.numel() {
            return Err(GpuError::shape(
                "write_f32",
                format!("tensor {:?} but {} values", self.shape, data.len()),
            ));
        }
        // A pending clear of a reused buffer must land before this write, not after it.
        self.ctx
            .pool()
            .flush_clears(self.ctx.device(), self.ctx.queue());
        self.ctx
            .queue()
            .write_buffer(&self.buffer, self.byte_offset(), bytemuck::cast_slice(data));
        self.buffer.note_write();
        Ok(())
    }

    fn byte_offset(&self) -> u64 {
        (self.offset * self.dtype.size_bytes()) as u64
    }

    /// Bytes a binding of this tensor covers: whole 4-byte words, widened to 16 bytes when the
    /// buffer allows (kernels may read any tensor as an array of vec4).
    fn bound_bytes(&self) -> u64 {
        let exact = self.size_bytes();
        let wide = exact.div_ceil(16).max(1) * 16;
        if self.byte_offset() + wide <= self.buffer.size() {
            wide
        } else {
            exact.div_ceil(4).max(1) * 4
        }
    }

    /// A view of `shape` starting at element `start` of this tensor, sharing its buffer. The
    /// start must fall on the adapter's storage offset alignment (256 bytes on most adapters):
    /// e.g. a window of rows of a `[R, C]` tensor starting at a multiple of 64 rows.
    pub fn view(&self, start: usize, shape: &[usize]) -> Result<Self> {
        let n: usize = shape.iter().product();
        let align = self.ctx.limits().min_storage_buffer_offset_alignment as usize;
        let es = self.dtype.size_bytes();
        if start + n > self.numel() || !((self.offset + start) * es).is_multiple_of(align) {
            return Err(GpuError::shape(
                "view",
                format!(
                    "{shape:?} at element {start} of {:?}: out of range or not {align}-byte aligned",
                    self.shape
                ),
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            offset: self.offset + start,
            ..self.clone()
        })
    }

    /// Where this tensor starts in its buffer, in elements (non-zero for views).
    pub(crate) fn element_offset(&self) -> usize {
        self.offset
    }

    /// Rows `[r0, r0+n)` of a tensor along its first dimension.
    pub fn rows(&self, r0: usize, n: usize) -> Result<Self> {
        let row: usize = self.shape.iter().skip(1).product();
        let mut shape = self.shape.clone();
        match shape.first_mut() {
            Some(d) if r0 + n <= *d => *d = n,
            _ => {
                return Err(GpuError::shape(
                    "rows",
                    format!("rows [{r0}, {r0}+{n}) of {:?}", self.shape),
                ))
            }
        }
        self.view(r0 * row, &shape)
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn size_bytes(&self) -> u64 {
        (self.numel() * self.dtype.size_bytes()) as u64
    }
    pub fn ctx(&self) -> &GpuContext {
        &self.ctx
    }
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Same buffer, new shape with the same element count (row-major reinterpretation).
    pub fn reshape(&self, shape: &[usize]) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != self.numel() {
            return Err(GpuError::shape(
                "reshape",
                format!("{:?} -> {shape:?} changes the element count", self.shape),
            ));
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            ..self.clone()
        })
    }

    pub fn expect_dtype(&self, op: &'static str, dtype: DType) -> Result<()> {
        if self.dtype != dtype {
            return Err(GpuError::shape(
                op,
                format!("expected {dtype:?}, got {:?} {:?}", self.dtype, self.shape),
            ));
        }
        Ok(())
    }

    /// Binding of the whole tensor; errors when it exceeds the adapter's storage binding limit
    /// (callers with large tensors chunk them with `binding_range`).
    pub fn binding(&self, op: &'static str) -> Result<Binding> {
        let size = self.bound_bytes();
        let limit = self.ctx.max_binding_bytes();
        if size > limit {
            return Err(GpuError::TooLarge {
                op,
                bytes: size,
                limit,
                what: "max_storage_buffer_binding_size; this op must chunk",
            });
        }
        Ok(Binding {
            buffer: self.buffer.clone(),
            offset: self.byte_offset(),
            size,
        })
    }

    /// Binding of elements `[start, start+len)`. The byte offset must honour the adapter's
    /// storage offset alignment (256 bytes on most adapters); the chunking code picks aligned
    /// chunk boundaries.
    pub fn binding_range(&self, op: &'static str, start: usize, len: usize) -> Result<Binding> {
        let es = self.dtype.size_bytes() as u64;
        let offset = self.byte_offset() + start as u64 * es;
        let size = (len as u64 * es).div_ceil(4) * 4;
        let align = self.ctx.limits().min_storage_buffer_offset_alignment as u64;
        if !offset.is_multiple_of(align) || start + len > self.numel() || size == 0 {
            return Err(GpuError::shape(
                op,
                format!(
                    "bad sub-range [{start}, {start}+{len}) of {:?} (offset alignment {align})",
                    self.shape
                ),
            ));
        }
        if size > self.ctx.max_binding_bytes() {
            return Err(GpuError::TooLarge {
                op,
                bytes: size,
                limit: self.ctx.max_binding_bytes(),
                what: "max_storage_buffer_binding_size",
            });
        }
        Ok(Binding {
            buffer: self.buffer.clone(),
            offset,
            size,
        })
    }

    /// Reads raw words back to the host (waits for all submitted work first).
    fn read_words(&self) -> Result<Vec<u32>> {
        self.read_later()?.wait()
    }

    /// Starts reading this tensor back: a copy into host-visible memory is submitted now,
    /// after everything submitted before it; [`PendingRead::wait`] then waits for that copy
    /// only, not for work submitted later (a decode loop submits its next step first).
    pub fn read_later(&self) -> Result<PendingRead> {
        let ctx = &self.ctx;
        let size = self.size_bytes().div_ceil(4).max(1) * 4;
        let staging = ctx.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = ctx
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        enc.copy_buffer_to_buffer(&self.buffer, self.byte_offset(), &staging, 0, size);
        let index = ctx
            .pool()
            .submit(ctx.device(), ctx.queue(), Some(enc.finish()));
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        Ok(PendingRead {
            ctx: ctx.clone(),
            staging,
            index,
            rx,
        })
    }

    /// Values as f32 (f16 tensors are widened).
    pub fn to_f32_vec(&self) -> Result<Vec<f32>> {
        let words = self.read_words()?;
        let n = self.numel();
        match self.dtype {
            DType::F32 => Ok(bytemuck::cast_slice::<u32, f32>(&words)[..n].to_vec()),
            DType::F16 => Ok(bytemuck::cast_slice::<u32, half::f16>(&words)[..n]
                .iter()
                .map(|h| h.to_f32())
                .collect()),
            d => Err(GpuError::shape(
                "to_f32_vec",
                format!("tensor is {d:?}; use to_u32_vec / to_i32_vec"),
            )),
        }
    }

    pub fn to_f16_vec(&self) -> Result<Vec<half::f16>> {
        self.expect_dtype("to_f16_vec", DType::F16)?;
        let words = self.read_words()?;
        Ok(bytemuck::cast_slice::<u32, half::f16>(&words)[..self.numel()].to_vec())
    }

    pub fn to_u32_vec(&self) -> Result<Vec<u32>> {
        self.expect_dtype("to_u32_vec", DType::U32)?;
        let mut w = self.read_words()?;
        w.truncate(self.numel());
        Ok(w)
    }

    pub fn to_i32_vec(&self) -> Result<Vec<i32>> {
        self.expect_dtype("to_i32_vec", DType::I32)?;
        let w = self.read_words()?;
        Ok(bytemuck::cast_slice::<u32, i32>(&w)[..self.numel()].to_vec())
    }
}
