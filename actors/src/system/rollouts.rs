//! Where rollout jobs go: pools of local rollout actors, one pool per device (a job goes to the
//! pool with the fewest jobs in flight), or worker processes through NATS JetStream
//! (`crate::remote`). Both answer the same `Generate` job with the same samples.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use anyhow::Result;
use grrm_model::generate::Sample;
use grrm_model::GpuContext;

use super::call::call;
use super::rollout::{Generate, RolloutActor};
use super::shared::{JobKey, Shared};
use crate::remote::RemoteRollouts;

/// The rollout actors of one device.
pub struct RolloutPool {
    /// Position in `system.rollout_adapters` (0 for the learner's device).
    pub index: usize,
    pub device: String,
    pub addr: Addr<RolloutActor>,
    in_flight: AtomicUsize,
}

impl RolloutPool {
    /// Starts `workers` rollout actors (sync threads) sampling on `ctx`.
    pub fn start(shared: &Arc<Shared>, index: usize, ctx: GpuContext, workers: usize) -> Self {
        let device = ctx.info().name.clone();
        let s = shared.clone();
        let addr = SyncArbiter::start(workers, move || RolloutActor::new(s.clone(), ctx.clone()));
        RolloutPool {
            index,
            device,
            addr,
            in_flight: AtomicUsize::new(0),
        }
    }
}

#[derive(Clone)]
pub enum Rollouts {
    Local(Arc<[RolloutPool]>),
    Remote(Arc<RemoteRollouts>),
}

/// Decrements a pool's in-flight count when the job ends, however it ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Rollouts {
    /// Samples `msg`'s groups; returns them with the version they were sampled with.
    pub async fn generate(
        &self,
        shared: &Arc<Shared>,
        key: JobKey,
        msg: Generate,
    ) -> Result<(Vec<Vec<Sample>>, u64)> {
        match self {
            Rollouts::Local(pools) => {
                let pool = pools
                    .iter()
                    .min_by_key(|p| p.in_flight.load(Ordering::SeqCst))
                    .expect("at least one rollout pool");
                pool.in_flight.fetch_add(1, Ordering::SeqCst);
                shared.bump(&format!("rollout.pool{}.jobs", pool.index), 1);
                let _guard = InFlight(&pool.in_flight);
                call(shared, &pool.addr, key, msg).await
            }
            Rollouts::Remote(remote) => remote.generate(shared, key, msg).await,
        }
    }
}
