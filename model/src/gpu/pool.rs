//! Reuse of freed tensor buffers. Creating a buffer is slow on some drivers: on an H100 a
//! training step of Qwen3-0.6B at 8 x 1024 tokens created 738 buffers in 0.40 s of its 1.58 s
//! (bench/NOTES.md), because each step allocates its activations afresh. A buffer whose last
//! tensor handle is dropped goes into this pool (up to `limit` bytes) and the next request for
//! exactly its size takes it back, as PyTorch's caching allocator does for CUDA.
//!
//! Reuse is safe without waiting for the GPU: every submission goes to the one queue, in order,
//! and wgpu inserts the barriers between a finished user of a buffer and the next one. A reused
//! buffer is not zero, so `Tensor::zeros` asks for a clear, which the next submission runs
//! before its own commands (`submit`); writes from the host (`Queue::write_buffer`) run before
//! the next submission's command buffers, so `flush_clears` submits pending clears first. Every
//! submission goes through `submit`, which holds the pool's lock from taking the pending clears
//! to handing them to the queue: otherwise a thread could take another thread's clear and
//! submit it after that thread's first use of the buffer.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Where a tensor was allocated (`#[track_caller]` on the constructors): a buffer goes back
/// preferably to the call site that held it before, so a loop that allocates the same
/// temporaries every step (a decode step) binds the same buffers in the same roles, and the
/// recorder's bind groups for them can be reused.
pub(crate) type Site = &'static Location<'static>;

#[derive(Default)]
struct Free {
    by_size: HashMap<u64, Vec<(wgpu::Buffer, Site)>>,
    bytes: u64,
    /// Buffers handed out by `Tensor::zeros` and not yet cleared on the GPU.
    pending_clears: Vec<wgpu::Buffer>,
}

pub(crate) struct BufferPool {
    limit: AtomicU64,
    free: Mutex<Free>,
}

impl BufferPool {
    pub(crate) fn new(limit: u64) -> Self {
        BufferPool {
            limit: AtomicU64::new(limit),
            free: Mutex::new(Free::default()),
        }
    }

    pub(crate) fn set_limit(&self, bytes: u64) {
        self.limit.store(bytes, Ordering::SeqCst);
        let mut free = self.free.lock().expect("buffer pool");
        while free.bytes > bytes {
            let Some(size) = free.by_size.keys().next().copied() else {
                break;
            };
            let list = free.by_size.get_mut(&size).expect("size listed");
            list.pop();
            if list.is_empty() {
                free.by_size.remove(&size);
            }
            free.bytes -= size;
        }
    }

    /// Whether freed buffers are kept at all (a limit above zero).
    pub(crate) fn reuses(&self) -> bool {
        self.limit.load(Ordering::SeqCst) > 0
    }

    /// Bytes of buffers held for reuse.
    pub(crate) fn cached_bytes(&self) -> u64 {
        self.free.lock().expect("buffer pool").bytes
    }

    /// A free buffer of exactly `size` bytes, if one is held (the latest freed by `site` if
    /// any, else the latest freed); `zero` queues a clear of it.
    pub(crate) fn take(&self, size: u64, zero: bool, site: Site) -> Option<wgpu::Buffer> {
        let mut free = self.free.lock().expect("buffer pool");
        let list = free.by_size.get_mut(&size)?;
        let at = list.iter().rposition(|(_, s)| *s == site);
        let (buffer, _) = match at {
            Some(i) => list.remove(i),
            None => list.pop()?,
        };
        if list.is_empty() {
            free.by_size.remove(&size);
        }
        free.bytes -= size;
        if zero {
            free.pending_clears.push(buffer.clone());
        }
        Some(buffer)
    }

    /// Keeps `buffer` (allocated at `site`) for reuse, or drops it when that would pass the
    /// limit.
    pub(crate) fn give(&self, buffer: wgpu::Buffer, site: Site) {
        let mut free = self.free.lock().expect("buffer pool");
        // Nobody will read its zeros now; a later user must not see a late clear.
        free.pending_clears.retain(|b| b != &buffer);
        let size = buffer.size();
        if free.bytes + size > self.limit.load(Ordering::SeqCst) {
            return;
        }
        free.bytes += size;
        free.by_size.entry(size).or_default().push((buffer, site));
    }

    /// Drops every held buffer.
    pub(crate) fn release(&self) {
        let mut free = self.free.lock().expect("buffer pool");
        free.by_size.clear();
        free.bytes = 0;
    }

    /// Submits `work` (possibly nothing) after a command buffer clearing the pending buffers.
    pub(crate) fn submit(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        work: Option<wgpu::CommandBuffer>,
    ) -> Option<wgpu::SubmissionIndex> {
        let mut free = self.free.lock().expect("buffer pool");
        let clears = (!free.pending_clears.is_empty()).then(|| {
            let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("pool-clears"),
            });
            for b in free.pending_clears.drain(..) {
                enc.clear_buffer(&b, 0, None);
            }
            enc.finish()
        });
        let cbs: Vec<_> = clears.into_iter().chain(work).collect();
        let index = (!cbs.is_empty()).then(|| queue.submit(cbs));
        drop(free);
        index
    }

    /// Submits the pending clears now (before a host write that must land after them).
    pub(crate) fn flush_clears(&self, device: &wgpu::Device, queue: &wgpu::Queue) {
        self.submit(device, queue, None);
    }
}

/// Default pool limit: 16 GiB on GPUs (`GRRM_BUFFER_POOL_MIB` overrides, 0 disables), none on
/// CPU adapters, where creating a buffer is a host allocation and memory is the host's.
pub(crate) fn default_limit(device_type: wgpu::DeviceType) -> u64 {
    if let Ok(v) = std::env::var("GRRM_BUFFER_POOL_MIB") {
        match v.trim().parse::<u64>() {
            Ok(mib) => return mib << 20,
            Err(_) => {
                tracing::warn!(value = %v, "GRRM_BUFFER_POOL_MIB is not a whole number of MiB; ignored")
            }
        }
    }
    match device_type {
        wgpu::DeviceType::Cpu | wgpu::DeviceType::Other => 0,
        _ => 16 << 30,
    }
}
