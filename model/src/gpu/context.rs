//! One opened device: the adapter's capabilities and limits, the queue, and the pipeline cache.
//! Cheap to clone (everything is reference counted); actors on one adapter share one context.

use std::sync::{Arc, Mutex};

use super::adapter::{self, AdapterSelector, Capabilities};
use super::error::{GpuError, Result};
use super::memory::{MemoryCounter, MemoryStats, TrackedBuffer};
use super::pipeline::PipelineCache;
use super::pool::{self, BufferPool};
use super::profiler::{self, Profiler};
use super::recorder::Binding;

#[derive(Clone)]
pub struct GpuContext {
    pub(crate) inner: Arc<Inner>,
    /// Storage-binding limit the launch code plans with; tests lower it to exercise chunking.
    binding_limit: u64,
}

pub(crate) struct Inner {
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub caps: Capabilities,
    pub limits: wgpu::Limits,
    pub pipelines: PipelineCache,
    /// Errors wgpu reports asynchronously; drained and returned by the next flush or readback.
    pub errors: Arc<Mutex<Vec<String>>>,
    /// Bound where a kernel's optional input (a bias, a mask) is absent.
    pub unused_buffer: Arc<TrackedBuffer>,
    /// Bytes of tensor buffers alive now and at peak.
    pub memory: Arc<MemoryCounter>,
    /// Per-kernel GPU time (`GRRM_PROFILE=1` on an adapter with timestamp queries).
    pub profiler: Option<Profiler>,
    /// Freed tensor buffers kept for reuse (see `pool.rs`).
    pub pool: Arc<BufferPool>,
}

impl GpuContext {
    /// Opens the adapter chosen by `sel`, with every capability it has (subgroups, f16,
    /// cooperative matrix through wgpu's experimental opt-in) and its best limits.
    /// Profiles per-kernel GPU time when `GRRM_PROFILE` is set (see `gpu::Profiler`).
    pub fn open(sel: &AdapterSelector) -> Result<Self> {
        Self::open_with(sel, profiler::requested())
    }

    /// `open` with per-kernel GPU timing on or off (on only where the adapter has timestamp
    /// queries; `profiler()` tells).
    pub fn open_with(sel: &AdapterSelector, profile: bool) -> Result<Self> {
        let instance = adapter::instance();
        let adapter = adapter::select(adapter::enumerate(&instance), sel)?;
        let info = adapter.get_info();
        let caps = Capabilities::of(&adapter);
        let wanted = wgpu::Features::SUBGROUP
            | wgpu::Features::SHADER_F16
            | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX;
        let wanted_profile = profile;
        let profile = profile && adapter.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        if wanted_profile && !profile {
            tracing::warn!(adapter = %info.name, "GRRM_PROFILE set, but the adapter has no timestamp queries");
        }
        let wanted = if profile {
            wanted | wgpu::Features::TIMESTAMP_QUERY
        } else {
            wanted
        };
        let features = adapter.features() & wanted;
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("grrm"),
            required_features: features,
            required_limits: limits.clone(),
            // SAFETY: cooperative matrix is the only experimental feature requested, and only
            // when the adapter reports it; its kernels are checked against the portable path.
            experimental_features: if features
                .contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
            {
                unsafe { wgpu::ExperimentalFeatures::enabled() }
            } else {
                wgpu::ExperimentalFeatures::disabled()
            },
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            GpuError::DeviceRequest {
                adapter: info.name.clone(),
                reason: e.to_string(),
            }
        })?;
        let errors = Arc::new(Mutex::new(Vec::new()));
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().expect("error sink").push(e.to_string());
        }));
        let memory = Arc::new(MemoryCounter::default());
        let unused_buffer = Arc::new(TrackedBuffer::new(
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("unused-binding"),
                size: 256,
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            }),
            memory.clone(),
        ));
        tracing::info!(adapter = %info.name, backend = ?info.backend, "opened GPU device");
        let profiler = profile.then(|| Profiler::new(queue.get_timestamp_period()));
        let pool_limit = pool::default_limit(info.device_type);
        Ok(GpuContext {
            binding_limit: limits.max_storage_buffer_binding_size as u64,
            inner: Arc::new(Inner {
                adapter,
                device,
                queue,
                info,
                caps,
                limits,
                pipelines: PipelineCache::default(),
                errors,
                unused_buffer,
                memory,
                profiler,
                pool: Arc::new(BufferPool::new(pool_limit)),
            }),
        })
    }

    /// Opens the adapter named by `GRRM_ADAPTER`, or the best one.
    pub fn from_env() -> Result<Self> {
        Self::open(&AdapterSelector::from_arg_or_env(None))
    }

    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }
    /// Whether the adapter runs on the CPU (lavapipe reports `Cpu`; unknown types count too):
    /// the kernels choose their geometry for a GPU or a CPU by this.
    pub fn on_cpu(&self) -> bool {
        matches!(
            self.inner.info.device_type,
            wgpu::DeviceType::Cpu | wgpu::DeviceType::Other
        )
    }
    pub fn caps(&self) -> &Capabilities {
        &self.inner.caps
    }
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }
    pub fn adapter(&self) -> &wgpu::Adapter {
        &self.inner.adapter
    }

    /// Per-kernel GPU time, when the device was opened with `GRRM_PROFILE=1`.
    pub fn profiler(&self) -> Option<&Profiler> {
        self.inner.profiler.as_ref()
    }

    /// Largest byte range one storage binding may cover on this adapter.
    pub fn max_binding_bytes(&self) -> u64 {
        self.binding_limit
    }

    /// The same device, planning as if one binding could hold at most `bytes` (rounded down to
    /// 256). Lets tests run the large-tensor chunking paths on small data.
    pub fn with_binding_limit(&self, bytes: u64) -> Self {
        GpuContext {
            inner: self.inner.clone(),
            binding_limit: (bytes / 256 * 256).clamp(256, self.binding_limit),
        }
    }

    /// Number of compiled pipelines (each costs 0.3-1.9 s on a cold lavapipe cache).
    pub fn pipeline_count(&self) -> usize {
        self.inner.pipelines.len()
    }

    /// grrm's own count of tensor-buffer bytes on this device: live now and the peak since the
    /// context opened or since the last `reset_memory_peak` (shared by every clone).
    pub fn memory_stats(&self) -> MemoryStats {
        MemoryStats {
            cached_bytes: self.inner.pool.cached_bytes(),
            ..self.inner.memory.stats()
        }
    }

    /// Caps the bytes of freed buffers kept for reuse (0 disables reuse; default 16 GiB on
    /// GPUs, 0 on CPU adapters, or `GRRM_BUFFER_POOL_MIB`), dropping what is over.
    pub fn set_buffer_pool_limit(&self, bytes: u64) {
        self.inner.pool.set_limit(bytes)
    }

    /// Drops every freed buffer held for reuse (e.g. between phases that allocate different
    /// shapes).
    pub fn release_cached_buffers(&self) {
        self.inner.pool.release()
    }

    pub(crate) fn pool(&self) -> &Arc<BufferPool> {
        &self.inner.pool
    }

    /// Starts a new peak window at the bytes live now.
    pub fn reset_memory_peak(&self) {
        self.inner.memory.reset_peak()
    }

    pub(crate) fn memory_counter(&self) -> &Arc<MemoryCounter> {
        &self.inner.memory
    }

    /// A small read-only binding for a kernel's absent optional input.
    pub fn unused_binding(&self) -> Binding {
        Binding {
            buffer: self.inner.unused_buffer.clone(),
            offset: 0,
            size: 256,
        }
    }

    /// Returns (and clears) errors wgpu reported since the last check.
    pub fn take_errors(&self) -> Result<()> {
        let mut errs = self.inner.errors.lock().expect("error sink");
        if errs.is_empty() {
            Ok(())
        } else {
            let msg = errs.join("; ");
            errs.clear();
            Err(GpuError::Validation(msg))
        }
    }

    /// Blocks until all submitted work has finished.
    pub fn wait_idle(&self) -> Result<()> {
        self.inner
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Validation(e.to_string()))?;
        self.take_errors()
    }
}
