//! Launch code for the WGSL kernel library: one module per op family, each checking shapes and
//! dtypes before recording a dispatch.

pub mod adamw;
pub mod cross_entropy;
pub mod grad_norm;
pub mod matmul;
pub mod reduce;
pub mod softmax;
mod window_plan;
