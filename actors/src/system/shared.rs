//! State shared by the actors: the run context, the published weights (`WeightBank`),
//! counters (DashMap), the in-flight registry, actor ids, the activity
//! timeline and the fault injector.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Result;
use dashmap::DashMap;
use grrm_model::transformer::{Params, Transformer};

use super::publish::{Snapshot, WeightBank};
use super::timeline::Timeline;
use crate::srpo::{FaultConfig, RunContext};

/// A unit of work in flight (kept until its result is in: a restarted actor's job is sent again
/// from here, so nothing is lost).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JobKey {
    pub kind: &'static str,
    pub step: u64,
    pub id: u64,
}

pub struct Shared {
    pub run: RunContext,
    weights: WeightBank,
    /// Named counters (`rollout.handled`, `reward.restarts`, `publish.host_bytes`, ...).
    pub counters: DashMap<String, u64>,
    /// Job -> attempts so far.
    pub in_flight: DashMap<JobKey, u64>,
    pub timeline: Timeline,
    faults: Vec<FaultConfig>,
    messages: DashMap<&'static str, AtomicU64>,
    ids: DashMap<&'static str, AtomicU64>,
}

impl Shared {
    pub fn new(run: RunContext) -> Arc<Self> {
        let faults = run.cfg.system.faults.clone();
        Arc::new(Shared {
            run,
            weights: WeightBank::default(),
            counters: DashMap::new(),
            in_flight: DashMap::new(),
            timeline: Timeline::default(),
            faults,
            messages: DashMap::new(),
            ids: DashMap::new(),
        })
    }

    pub fn bump(&self, name: &str, by: u64) {
        *self.counters.entry(name.to_string()).or_insert(0) += by;
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).map_or(0, |v| *v)
    }

    /// A fresh id for a new actor instance of `kind` (0, 1, ...; restarts count on).
    pub fn next_id(&self, kind: &'static str) -> u64 {
        self.ids
            .entry(kind)
            .or_insert_with(|| AtomicU64::new(0))
            .fetch_add(1, Ordering::SeqCst)
    }

    /// Publishes the learner's `params` as `version` by copies on the device.
    pub fn publish(&self, version: u64, params: &Params) -> Result<()> {
        let bytes = self
            .weights
            .publish(version, params, || self.run.model_copy())?;
        self.bump("learner.published", 1);
        self.bump("publish.gpu_bytes", bytes);
        Ok(())
    }

    /// The newest published weights.
    pub fn published(&self) -> Result<Arc<Snapshot>> {
        self.weights.current()
    }

    /// Writes `snap` into `model` (a copy on another device) through the host.
    pub fn pull_through_host(&self, snap: &Snapshot, model: &Transformer) -> Result<()> {
        let read = self
            .weights
            .pull_through_host(snap, &self.run.base.weights, model)?;
        self.bump("publish.host_bytes", read);
        self.bump("publish.host_pulls", 1);
        Ok(())
    }

    /// Counts a message of actor kind `kind`; panics when the fault plan says so.
    pub fn tick(&self, kind: &'static str) {
        let k = self
            .messages
            .entry(kind)
            .or_insert_with(|| AtomicU64::new(0))
            .fetch_add(1, Ordering::SeqCst)
            + 1;
        if self
            .faults
            .iter()
            .any(|f| f.actor == kind && f.on_message == k)
        {
            panic!("injected fault: {kind} actor, message {k}");
        }
    }
}
