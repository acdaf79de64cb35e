//! The rollout actor: samples the groups of some prompt draws with the published weights the
//! coordinator names (a version pinned per job, so a prefetched round is reproducible). Each
//! actor belongs to the pool of one device. On the learner's device it reads the published
//! model in place; on another device it keeps its own copy and pulls each new version through
//! the host (read back once per version for all devices, uploaded once per actor).

use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use anyhow::Result;
use grrm_model::generate::Sample;
use grrm_model::transformer::Transformer;
use grrm_model::GpuContext;

use super::publish::Snapshot;
use super::shared::Shared;
use super::supervise::{supervised, WorkFailure};
use super::timeline::Activity;
use crate::srpo::pieces::Draw;

/// Sample the groups of some prompt draws (one batched call) for step `step` with `weights`.
#[derive(Clone, Debug, Message)]
#[rtype(result = "Result<(Vec<Vec<Sample>>, u64), WorkFailure>")]
pub struct Generate {
    pub step: u64,
    pub draws: Vec<Draw>,
    pub weights: Arc<Snapshot>,
}

pub struct RolloutActor {
    shared: Arc<Shared>,
    /// The device this actor samples on.
    ctx: GpuContext,
    id: u64,
    /// Own copy on another device, with the version it holds.
    local: Option<(Transformer, u64)>,
    last_version: Option<u64>,
}

impl RolloutActor {
    pub fn new(shared: Arc<Shared>, ctx: GpuContext) -> Self {
        shared.bump("rollout.starts", 1);
        RolloutActor {
            id: shared.next_id("rollout"),
            shared,
            ctx,
            local: None,
            last_version: None,
        }
    }

    /// The model holding `w`'s weights on this actor's device.
    fn model<'a>(&'a mut self, w: &'a Snapshot) -> Result<&'a Transformer> {
        let shared = &self.shared;
        if w.on_device(&self.ctx) {
            return Ok(&w.model);
        }
        if self.local.is_none() {
            self.local = Some((shared.run.model_copy_on(&self.ctx)?, u64::MAX));
        }
        let (m, v) = self.local.as_mut().expect("built above");
        if *v != w.version {
            shared.pull_through_host(w, m)?;
            *v = w.version;
        }
        Ok(m)
    }
}

impl Actor for RolloutActor {
    type Context = SyncContext<Self>;
}

impl Handler<Generate> for RolloutActor {
    type Result = Result<(Vec<Vec<Sample>>, u64), WorkFailure>;
    fn handle(&mut self, msg: Generate, ctx: &mut SyncContext<Self>) -> Self::Result {
        let shared = self.shared.clone();
        let version = msg.weights.version;
        let _span = tracing::info_span!(
            "rollout",
            actor = self.id,
            step = msg.step,
            version,
            groups = msg.draws.len()
        )
        .entered();
        let start = Instant::now();
        supervised(&shared, "rollout", ctx, || {
            shared.tick("rollout");
            if self.last_version != Some(version) {
                shared.bump("rollout.versions_adopted", 1);
                self.last_version = Some(version);
            }
            let model = self.model(&msg.weights)?;
            let samples = shared.run.rollout(model, msg.step, &msg.draws)?;
            shared.timeline.record(Activity {
                actor: "rollout",
                id: self.id,
                step: msg.step,
                version,
                start,
                end: Instant::now(),
            });
            tracing::debug!(
                responses = samples.iter().map(Vec::len).sum::<usize>(),
                "sampled"
            );
            Ok((samples, version))
        })
    }
}
