//! A rollout worker process (`grrm rollout-worker --nats URL --run NAME`): takes one task at a
//! time from the run's work queue, brings its policy to the task's version (pulling the weights
//! object when the version moved, so a worker that joins late catches up), samples on its GPU
//! while telling JetStream it is alive, publishes the result, then acknowledges the task. A
//! worker that dies mid-task never acknowledges it, so JetStream hands it to another worker
//! after `ack_wait`; the coordinator keeps the first result of each task.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use async_nats::jetstream::{self, consumer, AckKind};
use futures_util::StreamExt;
use grrm_model::gpu::AdapterSelector;
use grrm_model::hf::{weights_from_bytes, ModelConfig};
use grrm_model::transformer::Transformer;
use grrm_model::GpuContext;
use tokio::io::AsyncReadExt;

use super::wire::{
    decode, encode, valid_run_name, weights_object, Names, Spec, Task, TaskResult, PROTOCOL,
    SPEC_OBJECT, WORKERS_CONSUMER,
};
use crate::srpo::pieces::{sample_groups, upload_into};

#[derive(Clone, Debug)]
pub struct WorkerOptions {
    pub url: String,
    pub run: String,
    /// GPU adapter (name substring or index); `GRRM_ADAPTER` or automatic when absent.
    pub adapter: Option<String>,
    /// Names this worker in results and logs.
    pub name: String,
    /// Stop after this many tasks (None: run until killed).
    pub max_tasks: Option<u64>,
    /// Sleep this long before answering each task (fault-injection tests: a worker killed
    /// "mid-task" must really be mid-task).
    pub reply_delay: Duration,
}

/// Runs a worker on a runtime of its own until `max_tasks` are done or an error ends it.
pub fn serve(opts: WorkerOptions) -> Result<()> {
    if !valid_run_name(&opts.run) {
        bail!("--run {:?}: letters, digits, `-` and `_` only", opts.run);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the worker's async runtime")?;
    rt.block_on(async { Worker::connect(opts).await?.run().await })
}

/// The policy a worker holds: built for one coordinator epoch, at one version.
struct Policy {
    epoch: u64,
    config: ModelConfig,
    max_positions: usize,
    version: Option<u64>,
    model: Option<Transformer>,
}

pub struct Worker {
    opts: WorkerOptions,
    names: Names,
    js: jetstream::Context,
    ctx: GpuContext,
    policy: Option<Policy>,
    done: u64,
}

impl Worker {
    /// Opens the GPU and connects to NATS.
    pub async fn connect(opts: WorkerOptions) -> Result<Self> {
        let ctx = GpuContext::open(&AdapterSelector::from_arg_or_env(opts.adapter.as_deref()))
            .context("opening the worker's GPU adapter")?;
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(10))
            .name(format!("grrm rollout-worker {}", opts.name))
            .connect(opts.url.as_str())
            .await
            .with_context(|| format!("--nats: cannot reach NATS at {}", opts.url))?;
        Ok(Worker {
            names: Names::of_run(&opts.run),
            js: jetstream::new(client),
            ctx,
            policy: None,
            done: 0,
            opts,
        })
    }

    /// Takes tasks until `max_tasks` (or for ever). Waits for the run to exist.
    pub async fn run(mut self) -> Result<()> {
        say(&format!(
            "worker {} on {} waiting for tasks of run {} at {}",
            self.opts.name,
            self.ctx.info().name,
            self.opts.run,
            self.opts.url
        ));
        let mut waiting_since: Option<Instant> = None;
        loop {
            if self.opts.max_tasks.is_some_and(|m| self.done >= m) {
                return Ok(());
            }
            // Looked up each round: a coordinator that starts again makes the consumer afresh.
            let consumer: consumer::PullConsumer = match self.workers_consumer().await {
                Ok(c) => c,
                Err(e) => {
                    if waiting_since.is_none() {
                        tracing::info!("run {} not there yet: {e:#}", self.opts.run);
                        waiting_since = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            waiting_since = None;
            let ack_wait = consumer.cached_info().config.ack_wait;
            let mut batch = match consumer
                .batch()
                .max_messages(1)
                .expires(Duration::from_secs(2))
                .messages()
                .await
            {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!("fetching a task: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            while let Some(m) = batch.next().await {
                match m {
                    Ok(m) => self.handle(m, ack_wait).await?,
                    Err(e) => {
                        tracing::warn!("fetching a task: {e}");
                        break;
                    }
                }
            }
        }
    }

    async fn workers_consumer(&self) -> Result<consumer::PullConsumer> {
        let stream = self
            .js
            .get_stream(&self.names.tasks_stream)
            .await
            .map_err(|e| anyhow!("stream {}: {e}", self.names.tasks_stream))?;
        stream
            .get_consumer(WORKERS_CONSUMER)
            .await
            .map_err(|e| anyhow!("consumer {WORKERS_CONSUMER}: {e}"))
    }

    /// One task: errors of this worker (GPU, network) end the process; a task it cannot
    /// serve (bad payload, a version no longer stored) is terminated so nobody retries it.
    async fn handle(&mut self, m: jetstream::Message, ack_wait: Duration) -> Result<()> {
        let delivered = m.info().map(|i| i.delivered as u64).unwrap_or(1);
        let task: Task = match decode("task", &m.payload) {
            Ok(t) => t,
            Err(e) => return terminate(&m, &format!("{e:#}")).await,
        };
        if task.protocol != PROTOCOL {
            let why = format!("protocol {} (this worker speaks {PROTOCOL})", task.protocol);
            return terminate(&m, &why).await;
        }
        say(&format!(
            "task {} started (step {}, version {}, delivery {delivered})",
            task.id,
            task.step + 1,
            task.version
        ));
        let weights = match self.fetch_policy(&task).await {
            Ok(w) => w,
            Err(e) => return terminate(&m, &format!("{e:#}")).await,
        };
        let weight_bytes = weights.as_ref().map_or(0, |w| w.len() as u64);
        let mut policy = self.policy.take().expect("fetch_policy sets the policy");
        let (ctx, delay) = (self.ctx.clone(), self.opts.reply_delay);
        let job = task.clone();
        let work = tokio::task::spawn_blocking(move || {
            let r = sample_with(&ctx, &mut policy, &job, weights.as_deref(), delay);
            (policy, r)
        });
        tokio::pin!(work);
        // Progress acks keep the task ours while it runs longer than ack_wait.
        let mut alive = tokio::time::interval((ack_wait / 3).max(Duration::from_millis(100)));
        let (policy, groups) = loop {
            tokio::select! {
                r = &mut work => break r.map_err(|e| anyhow!("sampling thread: {e}"))?,
                _ = alive.tick() => {
                    if let Err(e) = m.ack_with(AckKind::Progress).await {
                        tracing::warn!("progress ack of task {}: {e}", task.id);
                    }
                }
            }
        };
        self.policy = Some(policy);
        let groups = groups.with_context(|| format!("task {}: sampling", task.id))?;
        let result = TaskResult {
            epoch: task.epoch,
            id: task.id.clone(),
            worker: self.opts.name.clone(),
            version: task.version,
            delivered,
            weight_bytes,
            groups,
        };
        let payload = encode("result", &result)?;
        self.js
            .publish(self.names.results_subject.clone(), payload.into())
            .await
            .map_err(|e| anyhow!("publishing the result of task {}: {e}", task.id))?
            .await
            .map_err(|e| anyhow!("publishing the result of task {}: {e}", task.id))?;
        m.double_ack()
            .await
            .map_err(|e| anyhow!("acknowledging task {}: {e}", task.id))?;
        self.done += 1;
        say(&format!("task {} done by {}", task.id, self.opts.name));
        Ok(())
    }

    /// Makes sure the policy is built for the task's epoch; returns the weights object's bytes
    /// when the task's version is not the one held.
    async fn fetch_policy(&mut self, task: &Task) -> Result<Option<Vec<u8>>> {
        let store = self
            .js
            .get_object_store(&self.names.weights_bucket)
            .await
            .map_err(|e| anyhow!("object store {}: {e}", self.names.weights_bucket))?;
        if self.policy.as_ref().is_none_or(|p| p.epoch != task.epoch) {
            let bytes = read_object(&store, SPEC_OBJECT).await?;
            let spec: Spec = serde_json::from_slice(&bytes)
                .with_context(|| format!("run spec of {}", self.opts.run))?;
            if spec.protocol != PROTOCOL || spec.epoch != task.epoch {
                bail!(
                    "the run's spec is of epoch {} (protocol {}), the task of epoch {}: a \
                     task of an earlier coordinator",
                    spec.epoch,
                    spec.protocol,
                    task.epoch
                );
            }
            let config = ModelConfig::from_json(&spec.config, &PathBuf::from("spec/config.json"))?;
            self.policy = Some(Policy {
                epoch: spec.epoch,
                config,
                max_positions: spec.max_positions,
                version: None,
                model: None,
            });
        }
        let policy = self.policy.as_ref().expect("set above");
        if policy.version == Some(task.version) {
            return Ok(None);
        }
        let name = weights_object(task.version);
        let bytes = read_object(&store, &name).await?;
        say(&format!(
            "pulled weights version {} ({} bytes)",
            task.version,
            bytes.len()
        ));
        Ok(Some(bytes))
    }
}

async fn read_object(store: &jetstream::object_store::ObjectStore, name: &str) -> Result<Vec<u8>> {
    let mut obj = store
        .get(name)
        .await
        .map_err(|e| anyhow!("object {name}: {e}"))?;
    let mut bytes = Vec::new();
    obj.read_to_end(&mut bytes)
        .await
        .with_context(|| format!("reading object {name}"))?;
    Ok(bytes)
}

/// On the blocking pool: loads new weights if given, then samples the task's groups.
fn sample_with(
    ctx: &GpuContext,
    policy: &mut Policy,
    task: &Task,
    weights: Option<&[u8]>,
    delay: Duration,
) -> Result<Vec<Vec<grrm_model::generate::Sample>>> {
    if let Some(bytes) = weights {
        let origin = PathBuf::from(format!("object {}", weights_object(task.version)));
        let w = weights_from_bytes(&origin, bytes, &policy.config)?;
        match &policy.model {
            Some(m) => upload_into(&m.params, &w)?,
            None => {
                policy.model = Some(Transformer::new(
                    ctx,
                    &policy.config,
                    &w,
                    policy.max_positions,
                )?)
            }
        }
        policy.version = Some(task.version);
    }
    let model = policy
        .model
        .as_ref()
        .ok_or_else(|| anyhow!("task {}: no weights loaded", task.id))?;
    std::thread::sleep(delay);
    let prompts: Vec<&[u32]> = task.prompts.iter().map(Vec::as_slice).collect();
    sample_groups(model, &prompts, &task.seeds, &task.sampling, &task.stop)
}

/// Ends a task nobody can serve (JetStream will not deliver it again).
async fn terminate(m: &jetstream::Message, why: &str) -> Result<()> {
    tracing::warn!("terminating a task: {why}");
    m.ack_with(AckKind::Term)
        .await
        .map_err(|e| anyhow!("terminating a task: {e}"))
}

/// A line on stdout (tests and operators follow a worker through it).
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
