//! The coordinator's side of remote rollouts. `RemoteRollouts` turns a rollout job into a task
//! on the run's JetStream work queue, publishes each policy version once into the object store
//! before the first task that needs it, and waits for the task's result. One router task reads
//! the results stream and hands each result to the job waiting for it; a result whose task is
//! already answered (a redelivered task answered twice) is dropped and counted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use async_nats::jetstream::{self, consumer, object_store, stream};
use dashmap::DashMap;
use futures_util::StreamExt;
use grrm_model::generate::Sample;
use grrm_model::hf::{weights_to_bytes, StorageDType};
use tokio::sync::oneshot;

use super::wire::{
    decode, encode, weights_object, Names, Spec, Task, TaskResult, COORDINATOR_CONSUMER, PROTOCOL,
    SPEC_OBJECT, WORKERS_CONSUMER,
};
use crate::srpo::config::RemoteConfig;
use crate::srpo::pieces::GroupSampling;
use crate::system::publish::Snapshot;
use crate::system::rollout::Generate;
use crate::system::shared::{JobKey, Shared};

pub struct RemoteRollouts {
    cfg: RemoteConfig,
    names: Names,
    js: jetstream::Context,
    store: object_store::ObjectStore,
    epoch: u64,
    /// Task id -> the job waiting for its result.
    pending: Arc<DashMap<String, oneshot::Sender<TaskResult>>>,
    /// Task id -> the worker whose result was taken.
    answered: Arc<DashMap<String, String>>,
    /// Versions in the object store.
    published: tokio::sync::Mutex<BTreeSet<u64>>,
}

impl RemoteRollouts {
    /// Connects to the server of `system.remote`, makes the run's streams, consumers and weight
    /// bucket afresh (what an earlier coordinator of this run left is obsolete), writes the
    /// spec and starts the result router on the current arbiter.
    pub async fn connect(cfg: &RemoteConfig, shared: &Arc<Shared>) -> Result<Self> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(10))
            .name("grrm coordinator")
            .connect(cfg.url.as_str())
            .await
            .with_context(|| {
                format!(
                    "rl config: key `system.remote.url`: cannot reach NATS at {}",
                    cfg.url
                )
            })?;
        let js = jetstream::new(client);
        let names = Names::of_run(&cfg.run);
        let epoch = new_epoch();

        for s in [&names.tasks_stream, &names.results_stream] {
            // Absent on a run's first start.
            let _ = js.delete_stream(s).await;
        }
        let _ = js.delete_object_store(&names.weights_bucket).await;
        let work_queue = |name: &str, subject: &str| stream::Config {
            name: name.to_string(),
            subjects: vec![subject.to_string()],
            retention: stream::RetentionPolicy::WorkQueue,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        let tasks = js
            .create_stream(work_queue(&names.tasks_stream, &names.tasks_subject))
            .await
            .map_err(|e| anyhow!("creating stream {}: {e}", names.tasks_stream))?;
        tasks
            .create_consumer(consumer::pull::Config {
                durable_name: Some(WORKERS_CONSUMER.into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_secs_f64(cfg.ack_wait_s),
                max_ack_pending: cfg.max_in_flight as i64,
                max_deliver: -1,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("creating consumer {WORKERS_CONSUMER}: {e}"))?;
        let results = js
            .create_stream(work_queue(&names.results_stream, &names.results_subject))
            .await
            .map_err(|e| anyhow!("creating stream {}: {e}", names.results_stream))?;
        let results = results
            .create_consumer(consumer::pull::Config {
                durable_name: Some(COORDINATOR_CONSUMER.into()),
                ack_policy: consumer::AckPolicy::Explicit,
                max_deliver: -1,
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("creating consumer {COORDINATOR_CONSUMER}: {e}"))?;
        let store = js
            .create_object_store(object_store::Config {
                bucket: names.weights_bucket.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| anyhow!("creating object store {}: {e}", names.weights_bucket))?;

        let run = &shared.run;
        let spec = Spec {
            protocol: PROTOCOL,
            epoch,
            config: run.base.config.to_json(),
            max_positions: run.cfg.max_positions(),
        };
        let spec = serde_json::to_vec(&spec)?;
        store
            .put(SPEC_OBJECT, &mut spec.as_slice())
            .await
            .map_err(|e| anyhow!("writing the run spec: {e}"))?;

        let me = RemoteRollouts {
            cfg: cfg.clone(),
            names,
            js,
            store,
            epoch,
            pending: Arc::new(DashMap::new()),
            answered: Arc::new(DashMap::new()),
            published: tokio::sync::Mutex::new(BTreeSet::new()),
        };
        let messages = results
            .messages()
            .await
            .map_err(|e| anyhow!("reading results: {e}"))?;
        actix::spawn(route_results(
            messages,
            epoch,
            me.pending.clone(),
            me.answered.clone(),
            shared.clone(),
        ));
        tracing::info!(
            url = %cfg.url,
            run = %cfg.run,
            epoch,
            "rollouts go to remote workers (`grrm rollout-worker --nats {} --run {}`)",
            cfg.url,
            cfg.run
        );
        Ok(me)
    }

    /// This coordinator start's epoch (in every task and result).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The run's NATS names.
    pub fn names(&self) -> &Names {
        &self.names
    }

    /// The worker that answered each task so far.
    pub fn answered(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .answered
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        v.sort();
        v
    }

    /// Samples a rollout job's groups on whichever worker takes its task.
    pub async fn generate(
        &self,
        shared: &Arc<Shared>,
        key: JobKey,
        msg: Generate,
    ) -> Result<(Vec<Vec<Sample>>, u64)> {
        let Generate {
            step,
            draws,
            weights,
        } = msg;
        self.ensure_published(shared, &weights).await?;
        let run = &shared.run;
        let (prompts, seeds) = run.rollout_inputs(step, &draws);
        let task = Task {
            protocol: PROTOCOL,
            epoch: self.epoch,
            id: format!("{step}.{}", draws[0].draw),
            step,
            version: weights.version,
            prompts: prompts.into_iter().map(<[u32]>::to_vec).collect(),
            seeds,
            sampling: GroupSampling::of_run(&run.cfg, run.cfg.n),
            stop: run.stop.clone(),
        };
        if shared.in_flight.insert(key.clone(), 0).is_some() {
            bail!("job {key:?} issued twice");
        }
        let r = self.run_task(shared, &task).await;
        shared.in_flight.remove(&key);
        let r = r?;
        if r.groups.len() != task.prompts.len()
            || r.groups.iter().any(|g| g.len() != task.sampling.n)
        {
            bail!(
                "worker {} answered task {} with {} groups, expected {} of {}",
                r.worker,
                task.id,
                r.groups.len(),
                task.prompts.len(),
                task.sampling.n
            );
        }
        Ok((r.groups, r.version))
    }

    async fn run_task(&self, shared: &Shared, task: &Task) -> Result<TaskResult> {
        let (tx, rx) = oneshot::channel();
        self.pending.insert(task.id.clone(), tx);
        let payload = encode("task", task)?;
        let mut headers = async_nats::HeaderMap::new();
        // JetStream drops a second publish of the same id (a retried publish).
        headers.insert(
            "Nats-Msg-Id",
            format!("{}.{}", self.epoch, task.id).as_str(),
        );
        let bytes = payload.len() as u64;
        let published = async {
            self.js
                .publish_with_headers(self.names.tasks_subject.clone(), headers, payload.into())
                .await?
                .await
        }
        .await;
        if let Err(e) = published {
            self.pending.remove(&task.id);
            bail!("publishing task {}: {e}", task.id);
        }
        shared.bump("remote.tasks_published", 1);
        shared.bump("remote.task_bytes", bytes);
        let waited = if self.cfg.result_timeout_s > 0.0 {
            let limit = Duration::from_secs_f64(self.cfg.result_timeout_s);
            match tokio::time::timeout(limit, rx).await {
                Ok(r) => r,
                Err(_) => {
                    self.pending.remove(&task.id);
                    bail!(
                        "task {} (step {}) has no result after {} s \
                         (system.remote.result_timeout_s): are workers running with \
                         `--run {}`?",
                        task.id,
                        task.step + 1,
                        self.cfg.result_timeout_s,
                        self.cfg.run
                    );
                }
            }
        } else {
            rx.await
        };
        waited.map_err(|_| anyhow!("the result router stopped before task {}", task.id))
    }

    /// Puts `w`'s weights into the object store unless they are there; drops versions that no
    /// task can name any more (older than the staleness bound allows).
    async fn ensure_published(&self, shared: &Arc<Shared>, w: &Arc<Snapshot>) -> Result<()> {
        let mut published = self.published.lock().await;
        if published.contains(&w.version) {
            return Ok(());
        }
        let (s, snap) = (shared.clone(), w.clone());
        let bytes = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
            let (host, _) = snap.host_weights(&s.run.base.weights)?;
            Ok(weights_to_bytes(&host, StorageDType::F32)?)
        })
        .await
        .map_err(|e| anyhow!("encoding weights: {e}"))??;
        let name = weights_object(w.version);
        self.store
            .put(name.as_str(), &mut bytes.as_slice())
            .await
            .map_err(|e| anyhow!("putting weights {name}: {e}"))?;
        published.insert(w.version);
        shared.bump("remote.versions_published", 1);
        shared.bump("remote.weight_bytes_published", bytes.len() as u64);
        let keep_from = w
            .version
            .saturating_sub(shared.run.cfg.system.max_staleness + 1);
        let old: Vec<u64> = published.range(..keep_from).copied().collect();
        for v in old {
            if let Err(e) = self.store.delete(weights_object(v)).await {
                tracing::warn!("deleting weights v{v}: {e}");
            }
            published.remove(&v);
        }
        Ok(())
    }
}

/// Counters of what crossed the network, and the per-step metric each becomes.
const NET_METRICS: [(&str, &str); 4] = [
    ("remote.task_bytes", "net_task_bytes"),
    ("remote.result_bytes", "net_result_bytes"),
    (
        "remote.weight_bytes_published",
        "net_weight_bytes_published",
    ),
    ("remote.weight_bytes_pulled", "net_weight_bytes_pulled"),
];

/// The network counters now; `net_metrics` turns two readings into a step's metrics.
pub fn net_counters(shared: &Shared) -> [u64; 4] {
    NET_METRICS.map(|(c, _)| shared.counter(c))
}

/// Bytes that crossed the network between two readings of `net_counters` (with a round sampled
/// ahead, its traffic counts in the step during which it ran).
pub fn net_metrics(before: [u64; 4], after: [u64; 4]) -> Vec<(&'static str, f64)> {
    NET_METRICS
        .iter()
        .zip(before.iter().zip(after))
        .map(|((_, m), (b, a))| (*m, (a - b) as f64))
        .collect()
}

/// A fresh epoch per coordinator start, so results of an earlier start are told apart.
fn new_epoch() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32)
}

/// Reads the results stream for the coordinator's life and hands each result to its job.
async fn route_results(
    mut messages: consumer::pull::Stream,
    epoch: u64,
    pending: Arc<DashMap<String, oneshot::Sender<TaskResult>>>,
    answered: Arc<DashMap<String, String>>,
    shared: Arc<Shared>,
) {
    while let Some(m) = messages.next().await {
        let m = match m {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("results stream: {e}");
                continue;
            }
        };
        shared.bump("remote.result_bytes", m.payload.len() as u64);
        if let Err(e) = m.ack().await {
            tracing::warn!("acking a result: {e}");
        }
        let r: TaskResult = match decode("result", &m.payload) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("dropping a result: {e:#}");
                shared.bump("remote.bad_results", 1);
                continue;
            }
        };
        if r.epoch != epoch {
            shared.bump("remote.stale_results", 1);
            continue;
        }
        match pending.remove(&r.id) {
            Some((_, tx)) => {
                answered.insert(r.id.clone(), r.worker.clone());
                shared.bump("remote.results_accepted", 1);
                shared.bump("remote.weight_bytes_pulled", r.weight_bytes);
                if r.delivered > 1 {
                    shared.bump("remote.redelivered_tasks", 1);
                }
                tracing::debug!(task = %r.id, worker = %r.worker, "result in");
                let _ = tx.send(r);
            }
            None => {
                tracing::info!(
                    task = %r.id,
                    worker = %r.worker,
                    "dropping a duplicate result (the task was redelivered and answered twice)"
                );
                shared.bump("remote.duplicate_results", 1);
            }
        }
    }
    tracing::warn!("the results stream ended");
}
