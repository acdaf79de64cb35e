//! grrm-model: the GPU runtime (wgpu), the WGSL kernel library's launch code, and (later) the
//! Qwen3-family transformer built on it.

pub mod bench;
pub mod gpu;
pub mod kernels;

pub use gpu::{DType, GpuContext, GpuError, Recorder, Tensor};
