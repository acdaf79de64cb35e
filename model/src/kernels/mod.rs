//! Launch code for the WGSL kernel library: one module per op family, each checking shapes and
//! dtypes before recording a dispatch.

pub mod cast;
pub mod elementwise;
pub mod embedding;
pub mod matmul;
pub mod rmsnorm;
pub mod rope;
pub mod swiglu;
