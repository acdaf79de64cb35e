//! Records a whole step's dispatches and submits them at once: DESIGN.md measured ~28 us per
//! dispatch inside one compute pass on lavapipe versus 100+ us with a submit per dispatch.

use std::collections::HashMap;
use std::sync::Arc;

use super::context::GpuContext;
use super::error::{GpuError, Result};
use super::memory::TrackedBuffer;
use super::pipeline::{Access, Compiled, KernelEntry, PARAM_SLOT};
use super::profiler::QUERIES_PER_SET;
use super::tensor::{DType, Tensor};

/// A byte range of a buffer bound to one storage slot.
#[derive(Clone, Debug)]
pub struct Binding {
    pub buffer: Arc<TrackedBuffer>,
    pub offset: u64,
    pub size: u64,
}

enum Cmd {
    Dispatch {
        kernel: Arc<Compiled>,
        /// `file:entry`, for the profiler.
        name: (&'static str, &'static str),
        param_offset: u32,
        bindings: Vec<Binding>,
        groups: [u32; 3],
    },
    Copy {
        src: Binding,
        dst: Binding,
    },
}

/// Splits `n` workgroups over x and y so neither exceeds `max_per_dim`; kernels recover the
/// linear index as `wg.x + wg.y * num_workgroups.x` and must bounds-check it.
pub fn grid_1d(n: u32, max_per_dim: u32) -> [u32; 3] {
    if n <= max_per_dim {
        [n, 1, 1]
    } else {
        [max_per_dim, n.div_ceil(max_per_dim), 1]
    }
}

/// Commands in the first command buffer of a submission, and in each later one. Smaller
/// chunks start the GPU sooner and keep it closer behind the host: on the H100 machine, 64-row
/// sampling calls ran 7,049-7,129 new tok/s at 32/128, 7,497-8,157 at 8/64, 7,444-8,408 at
/// 4/32 and 6,196-6,765 at 16/256 (bench/NOTES.md).
const FIRST_CHUNK: usize = 8;
const CHUNK: usize = 64;

pub struct Recorder {
    ctx: GpuContext,
    cmds: Vec<Cmd>,
    params: Vec<u8>,
    label: &'static str,
    /// See `scratch_f32`.
    scratch: Option<Tensor>,
    /// Host time spent encoding submissions and dispatches submitted, since creation.
    encode: std::time::Duration,
    submitted: usize,
    /// The uniform buffer every submission's parameter blocks go to (rewritten per submission;
    /// the queue orders the write after the earlier submissions that read it), grown as needed.
    param_buf: Option<wgpu::Buffer>,
    bind_groups: BindGroupCache,
}

/// What a bind group binds: the kernel's layout, the parameter buffer and every storage range.
#[derive(PartialEq, Eq, Hash)]
struct BindGroupKey {
    layout: wgpu::BindGroupLayout,
    params: wgpu::Buffer,
    storage: Vec<(wgpu::Buffer, u64, u64)>,
}

/// Submissions a cached bind group survives unused.
const BIND_GROUP_KEEP: u64 = 8;

/// The bind groups of this recorder's recent submissions. A decode step binds the same kernels
/// to the same buffers as the steps before it (its temporaries come back from the pool, which
/// hands a buffer preferably to the call site that held it: `pool::Site`), and creating a bind
/// group took ~4.4 us of the host's ~10 us a dispatch on the H100 machine (bench/NOTES.md). Entries
/// unused for `BIND_GROUP_KEEP` submissions are dropped, which bounds how long they keep buffers
/// alive (the memory counter and the pool see tensors, not these references). Without buffer
/// reuse (CPU adapters by default) every step binds new buffers, so nothing is kept: a kept
/// bind group would only hold a freed buffer's memory.
#[derive(Default)]
struct BindGroupCache {
    entries: HashMap<BindGroupKey, (wgpu::BindGroup, u64)>,
    submission: u64,
    /// Bind groups created (misses) and reused (hits) since the recorder was made.
    created: usize,
    reused: usize,
}

impl BindGroupCache {
    fn next_submission(&mut self) {
        self.submission += 1;
        let now = self.submission;
        self.entries
            .retain(|_, (_, used)| *used + BIND_GROUP_KEEP >= now);
    }

    /// The bind group for `key`, cached when `keep`.
    fn get(
        &mut self,
        key: BindGroupKey,
        keep: bool,
        create: impl FnOnce(&BindGroupKey) -> wgpu::BindGroup,
    ) -> wgpu::BindGroup {
        if !keep {
            self.created += 1;
            return create(&key);
        }
        let now = self.submission;
        if let Some((bg, used)) = self.entries.get_mut(&key) {
            *used = now;
            self.reused += 1;
            return bg.clone();
        }
        self.created += 1;
        let bg = create(&key);
        self.entries.insert(key, (bg.clone(), now));
        bg
    }
}

impl Recorder {
    pub fn new(ctx: &GpuContext, label: &'static str) -> Self {
        Recorder {
            ctx: ctx.clone(),
            cmds: Vec::new(),
            params: Vec::new(),
            label,
            scratch: None,
            encode: std::time::Duration::ZERO,
            submitted: 0,
            param_buf: None,
            bind_groups: BindGroupCache::default(),
        }
    }

    /// An f32 scratch tensor of at least `len` elements, shared by every dispatch recorded here
    /// and kept for this recorder's later submissions. Sharing is safe because the dispatches
    /// of a queue run in recording order with barriers between them (wgpu inserts them for
    /// every read-after-write and write-after-read of a storage buffer), so a kernel pair that
    /// writes the scratch and then reads it back is finished with it before the next pair starts.
    /// A larger request replaces it; dispatches already recorded keep the old buffer alive.
    pub fn scratch_f32(&mut self, len: usize) -> Result<Tensor> {
        if let Some(t) = &self.scratch {
            if t.numel() >= len {
                return Ok(t.clone());
            }
        }
        let t = Tensor::zeros(&self.ctx, &[len.max(1)], DType::F32)?;
        self.scratch = Some(t.clone());
        Ok(t)
    }

    pub fn ctx(&self) -> &GpuContext {
        &self.ctx
    }

    /// Host time spent turning recorded commands into command buffers (bind groups, passes,
    /// the pool's clears) and handing them to the queue, and the dispatches submitted, since
    /// this recorder was made: what a step costs the CPU beyond recording.
    pub fn encode_stats(&self) -> (std::time::Duration, usize) {
        (self.encode, self.submitted)
    }

    /// Bind groups created and reused from the submission before, since this recorder was made.
    pub fn bind_group_stats(&self) -> (usize, usize) {
        (self.bind_groups.created, self.bind_groups.reused)
    }

    /// Number of commands recorded and not yet submitted.
    pub fn len(&self) -> usize {
        self.cmds.len()
    }
    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// Largest workgroup count one dispatch dimension may have.
    pub fn max_groups(&self) -> u32 {
        self.ctx.limits().max_compute_workgroups_per_dimension
    }

    /// Records one dispatch. `params` is the kernel's uniform block (a `#[repr(C)]` Pod struct
    /// laid out as the WGSL struct); `bindings` follow the kernel's storage slots in order.
    /// Dispatches with a zero-sized grid are skipped (empty tensors are valid).
    pub fn dispatch<P: bytemuck::Pod>(
        &mut self,
        k: &KernelEntry,
        constants: &[(&str, f64)],
        params: &P,
        bindings: Vec<Binding>,
        groups: [u32; 3],
    ) -> Result<()> {
        let op = k.entry;
        if bindings.len() != k.bindings.len() {
            return Err(GpuError::shape(
                "dispatch",
                format!(
                    "{}::{op} takes {} storage bindings, got {}",
                    k.source.name,
                    k.bindings.len(),
                    bindings.len()
                ),
            ));
        }
        let bytes = bytemuck::bytes_of(params);
        if bytes.len() as u64 > PARAM_SLOT {
            return Err(GpuError::shape(
                "dispatch",
                format!(
                    "{}::{op} params are {} bytes > {PARAM_SLOT}",
                    k.source.name,
                    bytes.len()
                ),
            ));
        }
        let max = self.max_groups();
        if groups.iter().any(|&g| g > max) {
            return Err(GpuError::shape(
                "dispatch",
                format!(
                    "{}::{op} grid {groups:?} exceeds {max} per dimension",
                    k.source.name
                ),
            ));
        }
        if groups.contains(&0) {
            return Ok(());
        }
        let kernel = self
            .ctx
            .inner
            .pipelines
            .get(self.ctx.device(), k, constants)?;
        for (b, access) in bindings.iter().zip(k.bindings) {
            if *access == Access::ReadWrite {
                b.buffer.note_write();
            }
        }
        let param_offset = self.params.len() as u32;
        self.params.extend_from_slice(bytes);
        self.params
            .resize(self.params.len() + (PARAM_SLOT as usize - bytes.len()), 0);
        self.cmds.push(Cmd::Dispatch {
            kernel,
            name: (k.source.name, k.entry),
            param_offset,
            bindings,
            groups,
        });
        Ok(())
    }

    /// Records a buffer-to-buffer copy of `src.size` bytes (ordered with the dispatches).
    pub fn copy(&mut self, src: Binding, dst: Binding) -> Result<()> {
        if src.size != dst.size || !src.size.is_multiple_of(4) {
            return Err(GpuError::shape(
                "copy",
                format!("source {} bytes, destination {} bytes", src.size, dst.size),
            ));
        }
        dst.buffer.note_write();
        self.cmds.push(Cmd::Copy { src, dst });
        Ok(())
    }

    /// Encodes everything into one command buffer (consecutive dispatches share one compute
    /// pass), submits it, and reports any validation error wgpu raised.
    pub fn submit(&mut self) -> Result<()> {
        if self.cmds.is_empty() {
            return Ok(());
        }
        let t_encode = std::time::Instant::now();
        let device = self.ctx.device();
        let need = self.params.len() as u64;
        if need > 0 && self.param_buf.as_ref().is_none_or(|b| b.size() < need) {
            self.param_buf = Some(device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("params"),
                size: need.next_power_of_two().max(1 << 16),
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let param_buf = (need > 0).then(|| self.param_buf.clone().expect("made above"));
        if let Some(b) = &param_buf {
            self.ctx.queue().write_buffer(b, 0, &self.params);
        }
        self.bind_groups.next_submission();
        let keep_bind_groups = self.ctx.pool().reuses();
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some(self.label),
        });

        let mut pass: Option<wgpu::ComputePass<'static>> = None;
        let mut timing = self
            .ctx
            .profiler()
            .map(|_| Timing::new(&self.ctx, &self.cmds));
        // The commands (and the buffer handles in their bindings) live until the queue has the
        // command buffer: a buffer whose last handle dropped earlier would go back to the pool
        // while encoded here, and another thread could reuse it before this submission.
        let cmds = std::mem::take(&mut self.cmds);
        // Unprofiled work goes to the queue in chunks, so the GPU runs the first dispatches
        // while the host encodes the rest: encoding costs ~5.6 us a dispatch on the H100
        // machine's CPU (bind group, pass commands, barrier tracking), 4.6 ms of a 64-row
        // decode step that the GPU used to wait out (bench/NOTES.md). The first chunk is
        // short so the GPU starts early.
        let mut chunk_end = if timing.is_none() {
            FIRST_CHUNK
        } else {
            usize::MAX
        };
        for (i, cmd) in cmds.iter().enumerate() {
            if i == chunk_end {
                drop(pass.take());
                let full = std::mem::replace(
                    &mut enc,
                    device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some(self.label),
                    }),
                );
                self.ctx
                    .pool()
                    .submit(self.ctx.device(), self.ctx.queue(), Some(full.finish()));
                chunk_end += CHUNK;
            }
            match cmd {
                Cmd::Dispatch {
                    kernel,
                    name,
                    param_offset,
                    bindings,
                    groups,
                } => {
                    let key = BindGroupKey {
                        layout: kernel.layout.clone(),
                        params: param_buf.clone().expect("dispatch has params"),
                        storage: bindings
                            .iter()
                            .map(|b| ((*b.buffer).clone(), b.offset, b.size))
                            .collect(),
                    };
                    let bg = self.bind_groups.get(key, keep_bind_groups, |key| {
                        let mut entries = vec![wgpu::BindGroupEntry {
                            binding: 0,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &key.params,
                                offset: 0,
                                size: std::num::NonZeroU64::new(PARAM_SLOT),
                            }),
                        }];
                        for (i, (buffer, offset, size)) in key.storage.iter().enumerate() {
                            entries.push(wgpu::BindGroupEntry {
                                binding: i as u32 + 1,
                                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                    buffer,
                                    offset: *offset,
                                    size: std::num::NonZeroU64::new(*size),
                                }),
                            });
                        }
                        device.create_bind_group(&wgpu::BindGroupDescriptor {
                            label: None,
                            layout: &key.layout,
                            entries: &entries,
                        })
                    });
                    if let Some(t) = timing.as_mut() {
                        // One pass per dispatch, so its timestamps bracket only it.
                        drop(pass.take());
                        pass = Some(t.timed_pass(&mut enc, *name, *groups));
                    }
                    let p = pass.get_or_insert_with(|| {
                        enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                            label: None,
                            timestamp_writes: None,
                        })
                        .forget_lifetime()
                    });
                    p.set_pipeline(&kernel.pipeline);
                    p.set_bind_group(0, &bg, &[*param_offset]);
                    p.dispatch_workgroups(groups[0], groups[1], groups[2]);
                }
                Cmd::Copy { src, dst } => {
                    pass = None;
                    enc.copy_buffer_to_buffer(
                        &src.buffer,
                        src.offset,
                        &dst.buffer,
                        dst.offset,
                        src.size,
                    );
                }
            }
        }
        drop(pass);
        self.params.clear();
        if let Some(t) = timing.as_ref() {
            t.resolve(&mut enc);
        }
        // Reused buffers handed out as zeros are cleared before anything here touches them.
        self.ctx
            .pool()
            .submit(self.ctx.device(), self.ctx.queue(), Some(enc.finish()));
        self.submitted += cmds.len();
        self.encode += t_encode.elapsed();
        drop(cmds);
        self.ctx.take_errors()?;
        match timing {
            Some(t) => t.collect(&self.ctx),
            None => Ok(()),
        }
    }
}

/// Timestamp query sets for one profiled submission: two queries per dispatch.
struct Timing {
    sets: Vec<wgpu::QuerySet>,
    /// Per dispatch: its name and grid, in recording order.
    sites: Vec<((&'static str, &'static str), [u32; 3])>,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
}

impl Timing {
    fn new(ctx: &GpuContext, cmds: &[Cmd]) -> Self {
        let dispatches = cmds
            .iter()
            .filter(|c| matches!(c, Cmd::Dispatch { .. }))
            .count() as u32;
        let per_set = QUERIES_PER_SET / 2;
        let sets = (0..dispatches.div_ceil(per_set).max(1))
            .map(|_| {
                ctx.device().create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("profile"),
                    ty: wgpu::QueryType::Timestamp,
                    count: QUERIES_PER_SET,
                })
            })
            .collect::<Vec<_>>();
        let bytes = sets.len() as u64 * QUERIES_PER_SET as u64 * 8;
        let buffer = |usage, label| {
            ctx.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        Timing {
            sets,
            sites: Vec::with_capacity(dispatches as usize),
            resolve: buffer(
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                "profile-resolve",
            ),
            readback: buffer(
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                "profile-readback",
            ),
        }
    }

    fn timed_pass(
        &mut self,
        enc: &mut wgpu::CommandEncoder,
        name: (&'static str, &'static str),
        groups: [u32; 3],
    ) -> wgpu::ComputePass<'static> {
        let i = self.sites.len() as u32;
        self.sites.push((name, groups));
        let per_set = QUERIES_PER_SET / 2;
        let slot = (i % per_set) * 2;
        enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &self.sets[(i / per_set) as usize],
                beginning_of_pass_write_index: Some(slot),
                end_of_pass_write_index: Some(slot + 1),
            }),
        })
        .forget_lifetime()
    }

    fn resolve(&self, enc: &mut wgpu::CommandEncoder) {
        let per_set = QUERIES_PER_SET / 2;
        for (s, set) in self.sets.iter().enumerate() {
            let used = (self.sites.len() as u32)
                .saturating_sub(s as u32 * per_set)
                .min(per_set);
            if used > 0 {
                let at = s as u64 * QUERIES_PER_SET as u64 * 8;
                enc.resolve_query_set(set, 0..used * 2, &self.resolve, at);
            }
        }
        enc.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, self.resolve.size());
    }

    /// Waits for the submission and adds each dispatch's time to the profiler.
    fn collect(self, ctx: &GpuContext) -> Result<()> {
        let Some(profiler) = ctx.profiler() else {
            return Ok(());
        };
        let (tx, rx) = std::sync::mpsc::channel();
        self.readback.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        ctx.wait_idle()?;
        rx.recv()
            .map_err(|e| GpuError::Readback(e.to_string()))?
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let data = self
            .readback
            .get_mapped_range(..)
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let ticks: &[u64] = bytemuck::cast_slice(&data);
        let per_set = (QUERIES_PER_SET / 2) as usize;
        let (mut first, mut last) = (u64::MAX, 0);
        for (i, ((file, entry), groups)) in self.sites.iter().enumerate() {
            let at = (i / per_set) * QUERIES_PER_SET as usize + (i % per_set) * 2;
            profiler.add(format!("{file}:{entry}"), *groups, ticks[at], ticks[at + 1]);
            first = first.min(ticks[at]);
            last = last.max(ticks[at + 1]);
        }
        if !self.sites.is_empty() {
            profiler.add_span(first, last);
        }
        drop(data);
        self.readback.unmap();
        Ok(())
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if !self.cmds.is_empty() {
            tracing::warn!(
                label = self.label,
                pending = self.cmds.len(),
                "recorder dropped with unsubmitted commands"
            );
        }
    }
}
