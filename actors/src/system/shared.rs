//! State shared by the actors: the run context, the published policy weights with their
//! version, counters (DashMap), the in-flight registry and the fault injector.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use grrm_model::hf::Weights;

use crate::srpo::{FaultConfig, RunContext};

/// Weights the learner published.
pub struct Published {
    pub version: u64,
    /// `None` for version 0: the starting model every copy is built from.
    pub weights: Option<Arc<Weights>>,
}

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
    published: RwLock<Arc<Published>>,
    /// Named counters (`rollout.handled`, `reward.restarts`, ...).
    pub counters: DashMap<String, u64>,
    /// Job -> attempts so far.
    pub in_flight: DashMap<JobKey, u64>,
    faults: Vec<FaultConfig>,
    messages: DashMap<&'static str, AtomicU64>,
}

impl Shared {
    pub fn new(run: RunContext) -> Arc<Self> {
        let faults = run.cfg.system.faults.clone();
        Arc::new(Shared {
            run,
            published: RwLock::new(Arc::new(Published {
                version: 0,
                weights: None,
            })),
            counters: DashMap::new(),
            in_flight: DashMap::new(),
            faults,
            messages: DashMap::new(),
        })
    }

    pub fn bump(&self, name: &str, by: u64) {
        *self.counters.entry(name.to_string()).or_insert(0) += by;
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).map_or(0, |v| *v)
    }

    pub fn publish(&self, version: u64, weights: Weights) {
        let mut p = self.published.write().expect("publish lock");
        *p = Arc::new(Published {
            version,
            weights: Some(Arc::new(weights)),
        });
        drop(p);
        self.bump("learner.published", 1);
    }

    pub fn published(&self) -> Arc<Published> {
        self.published.read().expect("publish lock").clone()
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
