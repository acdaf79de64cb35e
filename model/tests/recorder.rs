//! One recorder over several submissions reuses its bind groups (same kernel, same buffer
//! ranges) and its parameter buffer: each submission must still see its own parameters and
//! its own buffers, including a buffer that came back from the pool under a new tensor. Run
//! with buffer reuse on (the recorder keeps bind groups only then; lavapipe has it off by
//! default).

use grrm_model::gpu::AdapterSelector;
use grrm_model::kernels::elementwise::{fill, scale};
use grrm_model::{DType, GpuContext, Recorder, Tensor};

#[test]
fn later_submissions_see_their_own_parameters_and_buffers() {
    let ctx = GpuContext::open_with(&AdapterSelector::from_arg_or_env(None), false).unwrap();
    ctx.set_buffer_pool_limit(64 << 20);
    let n = 1000;
    let a = Tensor::zeros(&ctx, &[n], DType::F32).unwrap();
    let b = Tensor::zeros(&ctx, &[n], DType::F32).unwrap();
    let mut rec = Recorder::new(&ctx, "test");
    // The same dispatches (same bindings) with new parameters each submission.
    for step in 1..=4 {
        fill(&mut rec, &a, step as f32).unwrap();
        scale(&mut rec, 0.5 * step as f32, &a).unwrap();
        fill(&mut rec, &b, -(step as f32)).unwrap();
        rec.submit().unwrap();
        let want = 0.5 * (step * step) as f32;
        assert!(
            a.to_f32_vec().unwrap().iter().all(|&v| v == want),
            "a, step {step}"
        );
        assert!(
            b.to_f32_vec().unwrap().iter().all(|&v| v == -(step as f32)),
            "b, step {step}"
        );
    }
    // More parameter blocks than before (the parameter buffer grows), on views of one tensor
    // (offsets of 256 bytes: every adapter's storage alignment).
    let v = Tensor::zeros(&ctx, &[300 * 64], DType::F32).unwrap();
    for i in 0..300 {
        fill(&mut rec, &v.view(i * 64, &[64]).unwrap(), i as f32).unwrap();
    }
    rec.submit().unwrap();
    let got = v.to_f32_vec().unwrap();
    assert!((0..300 * 64).all(|e| got[e] == (e / 64) as f32), "views");
    // A tensor dropped and a new one of the same size (possibly its buffer, from the pool).
    drop(b);
    let c = Tensor::zeros(&ctx, &[n], DType::F32).unwrap();
    fill(&mut rec, &c, 7.0).unwrap();
    rec.submit().unwrap();
    assert!(
        c.to_f32_vec().unwrap().iter().all(|&v| v == 7.0),
        "new tensor"
    );
    let (created, reused) = rec.bind_group_stats();
    assert!(
        reused >= 9,
        "steps 2-4 reuse step 1's bind groups: {created} made, {reused} reused"
    );
}
