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
pub mod qk_norm_rope;
pub mod quantize_rows;
pub mod reduce;
pub mod rmsnorm;
pub mod rope;
pub mod sample;
pub mod softmax;
pub mod srpo;
pub mod swiglu;
mod window_plan;

/// Invocations per workgroup for the kernels that give one workgroup to each row of a
/// vocabulary-wide tensor (sample, softmax): their passes over a row are bound by load latency,
/// so 1024 invocations on a GPU whose limits allow it (`shared_at_1024` bytes of workgroup
/// memory then); 256 elsewhere (on lavapipe every invocation is a coroutine and more of them
/// only cost barrier switches).
pub(crate) fn row_workgroup_size(ctx: &crate::gpu::GpuContext, shared_at_1024: u32) -> u32 {
    let l = ctx.limits();
    let gpu = !ctx.on_cpu();
    if gpu
        && l.max_compute_invocations_per_workgroup >= 1024
        && l.max_compute_workgroup_size_x >= 1024
        && l.max_compute_workgroup_storage_size >= shared_at_1024
    {
        1024
    } else {
        256
    }
}
