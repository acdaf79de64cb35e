//! `grrm rollout-worker`: a rollout worker process fed through NATS JetStream.

use std::time::Duration;

use clap::Args;
use grrm_actors::remote::{serve, WorkerOptions};

#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// NATS server of the run, e.g. nats://10.0.0.5:4222.
    #[arg(long)]
    pub nats: String,
    /// The run to serve (`system.remote.run` of the learner's config).
    #[arg(long, default_value = "grrm")]
    pub run: String,
    /// GPU adapter by name substring or index (see `grrm devices`); default GRRM_ADAPTER or the best.
    #[arg(long)]
    pub adapter: Option<String>,
    /// Name in results and logs; default host name and process id.
    #[arg(long)]
    pub name: Option<String>,
    /// Exit after this many tasks.
    #[arg(long)]
    pub max_tasks: Option<u64>,
    /// Fault-injection tests: wait this long before answering each task.
    #[arg(long, default_value_t = 0, hide = true)]
    pub reply_delay_ms: u64,
}

pub fn run(a: WorkerArgs) -> anyhow::Result<()> {
    let name = a.name.unwrap_or_else(|| {
        let host = std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "worker".into());
        format!("{host}-{}", std::process::id())
    });
    serve(WorkerOptions {
        url: a.nats,
        run: a.run,
        adapter: a.adapter,
        name,
        max_tasks: a.max_tasks,
        reply_delay: Duration::from_millis(a.reply_delay_ms),
    })
}
