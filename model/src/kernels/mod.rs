//! Launch code for the WGSL kernel library: one module per op family, each checking shapes and
//! dtypes before recording a dispatch.

pub mod matmul;
pub mod srpo;
