//! Reuse of freed buffers (`gpu::pool`), forced on with a limit on whatever adapter runs the
//! tests (lavapipe keeps it off by default): a freed buffer comes back for the next request of
//! its size, `zeros` is zero even when reused, host writes land after the clear rather than
//! under it, a dropped buffer's pending clear is dropped with it, the limit holds, and a whole
//! training run gives bit-identical numbers with and without reuse.

mod common;

use grrm_model::bench_model::{run_model_bench, ModelBenchOpts, Phase};
use grrm_model::gpu::AdapterSelector;
use grrm_model::kernels::elementwise::fill;
use grrm_model::{DType, GpuContext, Recorder, Tensor};

fn pooled(limit: u64) -> GpuContext {
    // A device of its own: the pool and the counters are per device.
    let ctx = GpuContext::open_with(&AdapterSelector::from_arg_or_env(None), false).unwrap();
    ctx.set_buffer_pool_limit(limit);
    ctx
}

fn filled(ctx: &GpuContext, n: usize, v: f32) -> Tensor {
    let t = Tensor::zeros(ctx, &[n], DType::F32).unwrap();
    let mut rec = Recorder::new(ctx, "test");
    fill(&mut rec, &t, v).unwrap();
    rec.submit().unwrap();
    t
}

#[test]
fn a_freed_buffer_is_reused_and_zeros_are_zero() {
    let ctx = pooled(1 << 20);
    let t = filled(&ctx, 1000, 3.0);
    assert_eq!(t.to_f32_vec().unwrap(), vec![3.0; 1000]);
    let before = ctx.memory_stats();
    drop(t);
    let s = ctx.memory_stats();
    assert_eq!(s.cached_bytes, 4000);
    assert_eq!(
        before.live_bytes - s.live_bytes,
        4000,
        "pooled bytes are not live"
    );
    let z = Tensor::zeros(&ctx, &[1000], DType::F32).unwrap();
    let s2 = ctx.memory_stats();
    assert_eq!(s2.buffers_created, s.buffers_created, "reused, not created");
    assert_eq!(s2.cached_bytes, 0);
    assert_eq!(z.to_f32_vec().unwrap(), vec![0.0; 1000]);
    // Another size is created anew.
    let _other = Tensor::zeros(&ctx, &[1001], DType::F32).unwrap();
    assert_eq!(ctx.memory_stats().buffers_created, s.buffers_created + 1);
}

#[test]
fn host_writes_land_after_the_clear_of_a_reused_buffer() {
    let ctx = pooled(1 << 20);
    drop(filled(&ctx, 257, 5.0));
    // Reused with a clear pending; the write must win.
    let z = Tensor::zeros(&ctx, &[257], DType::F32).unwrap();
    let data: Vec<f32> = (0..257).map(|i| i as f32).collect();
    z.write_f32(&data).unwrap();
    assert_eq!(z.to_f32_vec().unwrap(), data);
    // A zeros buffer dropped before any submission takes its clear with it: an upload that
    // reuses the buffer is not wiped by it.
    drop(z);
    let z = Tensor::zeros(&ctx, &[257], DType::F32).unwrap();
    drop(z);
    let u = Tensor::from_f32(&ctx, &[257], &data).unwrap();
    assert_eq!(
        ctx.memory_stats().cached_bytes,
        0,
        "the upload reused the buffer"
    );
    assert_eq!(u.to_f32_vec().unwrap(), data);
    let p = Tensor::poisoned(&ctx, &[257], DType::F32).unwrap();
    drop(p);
    let z = Tensor::zeros(&ctx, &[257], DType::F32).unwrap();
    assert_eq!(z.to_f32_vec().unwrap(), vec![0.0; 257]);
}

#[test]
fn the_limit_caps_cached_bytes() {
    let ctx = pooled(9_999);
    let (a, b, c) = (
        filled(&ctx, 1000, 1.0),
        filled(&ctx, 1000, 2.0),
        filled(&ctx, 500, 3.0),
    );
    drop(a);
    drop(b);
    drop(c);
    // 4000 + 4000 fit; the 2000-byte buffer would pass 9,999.
    assert_eq!(ctx.memory_stats().cached_bytes, 8000);
    ctx.set_buffer_pool_limit(5000);
    assert!(ctx.memory_stats().cached_bytes <= 5000);
    ctx.release_cached_buffers();
    assert_eq!(ctx.memory_stats().cached_bytes, 0);
    ctx.set_buffer_pool_limit(0);
    drop(filled(&ctx, 1000, 1.0));
    assert_eq!(ctx.memory_stats().cached_bytes, 0);
}

/// Training steps, sampling and beam search of the quick model, which allocate and drop their
/// activations every step, give the same numbers with reuse as without.
#[test]
fn whole_workloads_are_bit_identical_with_reuse() {
    let opts = ModelBenchOpts {
        phases: vec![Phase::Train, Phase::Generate],
        ..ModelBenchOpts::quick()
    };
    let run = |limit: u64| {
        let ctx = pooled(limit);
        let r = run_model_bench(&ctx, &opts, &mut |_: &str| {}).unwrap();
        let t = r.train.unwrap();
        (
            t.loss_first,
            t.loss_last,
            t.grad_norm_last,
            ctx.memory_stats().buffers_created,
            r.generate.map(|g| g.generated_tokens),
        )
    };
    let plain = run(0);
    let reused = run(1 << 30);
    assert_eq!(
        (plain.0, plain.1, plain.2, plain.4),
        (reused.0, reused.1, reused.2, reused.4)
    );
    assert!(
        reused.3 < plain.3,
        "reuse should create fewer buffers: {} vs {}",
        reused.3,
        plain.3
    );
}

/// Several threads on one device, each uploading its own data, reading it in a kernel and
/// dropping its tensors as soon as they are recorded. A buffer must not go back to the pool
/// while a recorder has encoded it but not yet submitted (another thread would then overwrite
/// it first): every thread must read back exactly its own numbers.
#[test]
fn threads_sharing_a_device_never_see_each_others_buffers() {
    use grrm_model::kernels::elementwise::add;
    let ctx = pooled(1 << 30);
    std::thread::scope(|s| {
        for thread in 0..4u32 {
            let ctx = ctx.clone();
            s.spawn(move || {
                for round in 0..60u32 {
                    let n = 4096;
                    let base = (thread * 1000 + round) as f32;
                    let a = Tensor::from_f32(&ctx, &[n], &vec![base; n]).unwrap();
                    let b = Tensor::from_f32(&ctx, &[n], &vec![0.5; n]).unwrap();
                    let out = Tensor::zeros(&ctx, &[n], DType::F32).unwrap();
                    let mut rec = Recorder::new(&ctx, "test");
                    add(&mut rec, &a, &b, &out).unwrap();
                    drop((a, b));
                    rec.submit().unwrap();
                    let got = out.to_f32_vec().unwrap();
                    assert!(
                        got.iter().all(|&v| v == base + 0.5),
                        "thread {thread} round {round}: got {} want {}",
                        got[0],
                        base + 0.5
                    );
                }
            });
        }
    });
}

/// Freed buffers of one size go back preferably to the call site that held them, so a loop
/// that allocates the same temporaries every step binds the same buffers in the same roles
/// (the recorder then reuses its bind groups): here two sites swap nothing although they free
/// their buffers in the order that would swap them under plain last-in-first-out.
#[test]
fn a_freed_buffer_goes_back_to_its_call_site() {
    let ctx = pooled(1 << 20);
    let created = ctx.memory_stats().buffers_created;
    let mut held: Option<(wgpu::Buffer, wgpu::Buffer)> = None;
    for step in 0..3 {
        let a = Tensor::zeros(&ctx, &[500], DType::F32).unwrap();
        let b = Tensor::zeros(&ctx, &[500], DType::F32).unwrap();
        let now = (a.buffer().clone(), b.buffer().clone());
        if let Some(before) = &held {
            assert!(
                now.0 == before.0 && now.1 == before.1,
                "step {step}: roles swapped"
            );
        }
        held = Some(now);
        // b freed last: plain LIFO would hand b's buffer to a next step.
        drop(a);
        drop(b);
    }
    assert_eq!(ctx.memory_stats().buffers_created - created, 2);
}
