//! grrm's own account of device memory: every tensor buffer adds its size to a per-context
//! counter when created and subtracts it when its last handle (a tensor, a view, or a binding
//! a recorder holds until submit) is dropped. The peak is what benchmarks report per phase.
//!
//! This counts what grrm asks for, not what the driver reserves: wgpu frees a dropped buffer
//! once the GPU has finished the submissions using it, and allocators round sizes up, so the
//! driver's figure (e.g. nvidia-smi) runs somewhat higher.

use std::ops::Deref;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::pool::{BufferPool, Site};

/// Live and peak bytes of the tensor buffers of one device.
#[derive(Debug, Default)]
pub struct MemoryCounter {
    live: AtomicU64,
    peak: AtomicU64,
    /// Buffers ever created through `Tensor` allocation (reused ones are not counted again).
    buffers: AtomicU64,
    /// Host nanoseconds spent creating them (drivers may clear new memory synchronously).
    create_ns: AtomicU64,
}

/// A snapshot of the counter.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MemoryStats {
    pub live_bytes: u64,
    pub peak_bytes: u64,
    pub buffers_created: u64,
    /// Host seconds spent in buffer creation since the context opened.
    pub create_seconds: f64,
    /// Bytes of freed buffers the context holds for reuse (not in `live_bytes`).
    pub cached_bytes: u64,
}

impl MemoryCounter {
    fn allocated(&self, bytes: u64) {
        let live = self.live.fetch_add(bytes, Ordering::SeqCst) + bytes;
        self.peak.fetch_max(live, Ordering::SeqCst);
    }

    /// Counts one newly created buffer and the host time its creation took.
    pub(crate) fn creation_took(&self, d: std::time::Duration) {
        self.buffers.fetch_add(1, Ordering::SeqCst);
        self.create_ns
            .fetch_add(d.as_nanos() as u64, Ordering::SeqCst);
    }

    fn freed(&self, bytes: u64) {
        self.live.fetch_sub(bytes, Ordering::SeqCst);
    }

    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            live_bytes: self.live.load(Ordering::SeqCst),
            peak_bytes: self.peak.load(Ordering::SeqCst),
            buffers_created: self.buffers.load(Ordering::SeqCst),
            create_seconds: self.create_ns.load(Ordering::SeqCst) as f64 * 1e-9,
            cached_bytes: 0,
        }
    }

    /// Starts a new peak window at the bytes live now (e.g. at the start of a benchmark phase).
    pub fn reset_peak(&self) {
        self.peak
            .store(self.live.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// A wgpu buffer whose size stays on its context's counter for as long as it exists; when
/// dropped it goes back to the context's buffer pool, if it came with one.
pub struct TrackedBuffer {
    /// `None` only while being dropped.
    buffer: Option<wgpu::Buffer>,
    counter: Arc<MemoryCounter>,
    pool: Option<Arc<BufferPool>>,
    /// Where its tensor was allocated (the pool's hint for the next request).
    site: Site,
    /// Writes recorded or queued into it so far (`note_write`): lets a derived copy (the f16
    /// weights) tell whether its source changed since it was made.
    writes: AtomicU64,
}

impl std::fmt::Debug for TrackedBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrackedBuffer({} bytes)", self.size())
    }
}

impl TrackedBuffer {
    #[track_caller]
    pub(crate) fn new(buffer: wgpu::Buffer, counter: Arc<MemoryCounter>) -> Self {
        Self::pooled(buffer, counter, None, std::panic::Location::caller())
    }

    pub(crate) fn pooled(
        buffer: wgpu::Buffer,
        counter: Arc<MemoryCounter>,
        pool: Option<Arc<BufferPool>>,
        site: Site,
    ) -> Self {
        counter.allocated(buffer.size());
        TrackedBuffer {
            buffer: Some(buffer),
            counter,
            pool,
            site,
            writes: AtomicU64::new(0),
        }
    }

    /// Counts one write: a dispatch that binds it writable or a copy into it (counted when
    /// recorded), or a host write (when queued).
    pub(crate) fn note_write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes counted so far.
    pub(crate) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}

impl Deref for TrackedBuffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }
}

impl Drop for TrackedBuffer {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.counter.freed(b.size());
            if let Some(pool) = &self.pool {
                pool.give(b, self.site);
            }
        }
    }
}
