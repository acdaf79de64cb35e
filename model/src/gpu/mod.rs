//! GPU runtime: adapter selection, typed tensors over buffers, a pipeline cache, and a recorder
//! that batches many dispatches into one submission.

mod adapter;
mod context;
mod error;
mod memory;
mod pipeline;
mod pool;
mod profiler;
mod recorder;
mod tensor;

pub use adapter::{list_adapters, AdapterReport, AdapterSelector, Capabilities};
pub use context::GpuContext;
pub use error::{GpuError, Result};
pub use memory::{MemoryCounter, MemoryStats, TrackedBuffer};
pub use pipeline::{Access, KernelEntry, ShaderSource};
pub use profiler::Profiler;
pub use recorder::{grid_1d, Binding, Recorder};
pub use tensor::{DType, PendingRead, Tensor};
