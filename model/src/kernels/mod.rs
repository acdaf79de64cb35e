//! Launch code for the WGSL kernel library: one module per op family, each checking shapes and
//! dtypes before recording a dispatch.

pub mod adamw;
pub mod attention;
mod attention_decode;
pub mod cast;
pub mod cast_scaled;
pub mod cross_entropy;
pub mod elementwise;
pub mod embedding;
pub mod gather;
pub mod grad_norm;
pub mod matmul;
pub mod matmul_rows;
pub mod quantize_rows;
pub mod reduce;
pub mod rmsnorm;
pub mod rope;
pub mod sample;
pub mod softmax;
pub mod srpo;
pub mod swiglu;
mod window_plan;
