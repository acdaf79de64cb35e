//! grrm-model: the GPU runtime (wgpu), the WGSL kernel library's launch code, and (later) the
//! Qwen3-family transformer built on it.

pub mod gpu;
pub mod hf;
pub mod kernels;
pub mod tokenizer;

pub use gpu::{DType, GpuContext, GpuError, Recorder, Tensor};
