//! grrm-model: the GPU runtime (wgpu), the WGSL kernel library's launch code, Hugging Face
//! checkpoints and tokenizers, the Qwen3-family transformer built on the kernels, and the
//! generation engine.

pub mod bench;
mod bench_decode;
pub mod bench_model;
mod bench_ops;
pub mod generate;
pub mod gpu;
pub mod hf;
pub mod kernels;
pub mod selfcheck;
pub mod tokenizer;
pub mod transformer;

pub use gpu::{DType, GpuContext, GpuError, Recorder, Tensor};
