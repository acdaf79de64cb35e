//! Rollout worker processes through NATS JetStream, end to end: a real nats-server on loopback,
//! `grrm rollout-worker` processes, and an SRPO run whose rollouts all go to them. One worker
//! is killed mid-task, a duplicate result is injected, the other worker is killed between
//! steps and a late worker joins. Every task must be answered exactly once and the run's
//! metrics must equal those of the same run with in-process rollout actors, bit for bit.

#[path = "../actors/tests/rl_common/mod.rs"]
mod rl_common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use grrm_actors::remote::wire::{encode, TaskResult};
use grrm_actors::srpo::run::Trainer;
use grrm_actors::srpo::{RemoteConfig, RunContext};
use grrm_actors::system::ActorTrainer;
use grrm_rewards::Registry;

/// nats-server with JetStream on a free loopback port, stopped on drop.
struct NatsServer {
    child: Child,
    url: String,
    _store: tempfile::TempDir,
}

impl NatsServer {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let store = tempfile::tempdir().unwrap();
        let child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting nats-server: {e}. scripts/setup.sh installs it (Debian package \
                     nats-server)"
                )
            });
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "nats-server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        NatsServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _store: store,
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `grrm rollout-worker` process whose stdout lines are kept; killed (SIGKILL) on drop, or
/// as soon as it prints a line containing `kill_on`.
struct Worker {
    child: Arc<Mutex<Child>>,
    lines: Arc<Mutex<Vec<String>>>,
    killed: Arc<AtomicBool>,
}

impl Worker {
    fn spawn(url: &str, run: &str, name: &str, delay_ms: u64, kill_on: Option<&str>) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_grrm"))
            .args([
                "rollout-worker",
                "--nats",
                url,
                "--run",
                run,
                "--name",
                name,
            ])
            .args(["--reply-delay-ms", &delay_ms.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let child = Arc::new(Mutex::new(child));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let killed = Arc::new(AtomicBool::new(false));
        let (c, l, k, name) = (
            child.clone(),
            lines.clone(),
            killed.clone(),
            name.to_string(),
        );
        let kill_on = kill_on.map(str::to_string);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                eprintln!("[worker {name}] {line}");
                let hit = kill_on.as_ref().is_some_and(|p| line.contains(p.as_str()));
                l.lock().unwrap().push(line);
                if hit && !k.swap(true, Ordering::SeqCst) {
                    let mut c = c.lock().unwrap();
                    c.kill().unwrap();
                    c.wait().unwrap();
                    eprintln!("[worker {name}] killed mid-task");
                }
            }
        });
        Worker {
            child,
            lines,
            killed,
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let mut c = self.child.lock().unwrap();
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A step's metrics without its wall time and without the bytes that crossed the network
/// (`net_*`, remote runs only), which come back separately.
fn step(t: &mut ActorTrainer) -> BTreeMap<String, f64> {
    step_and_net(t).0
}

fn step_and_net(t: &mut ActorTrainer) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let mut m = t.step().unwrap().metrics;
    m.remove("step_seconds");
    let net = m
        .iter()
        .filter(|(k, _)| k.starts_with("net_"))
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    m.retain(|k, _| !k.starts_with("net_"));
    (m, net)
}

fn counter(t: &ActorTrainer, k: &str) -> u64 {
    t.shared.counter(k)
}

/// Publishes a second result for an answered task, as a worker that died between publishing
/// its result and acknowledging the task would leave behind.
fn publish_duplicate(url: &str, t: &ActorTrainer) {
    let remote = t.remote().unwrap();
    let (id, _) = remote.answered()[0].clone();
    let dup = TaskResult {
        epoch: remote.epoch(),
        id,
        worker: "replayed".into(),
        version: 0,
        delivered: 2,
        weight_bytes: 0,
        groups: Vec::new(),
    };
    let subject = remote.names().results_subject.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(url).await.unwrap());
        let payload = encode("result", &dup).unwrap();
        js.publish(subject, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
}

#[test]
fn workers_answer_every_task_once_through_a_kill_and_a_late_join() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = rl_common::setup(dir.path(), 30);
    // Four tasks per sampling round, so both workers hold one at once.
    cfg.rollout_batch = 1;
    cfg.steps = 4;
    let ctx = rl_common::ctx();
    let load = |cfg: &grrm_actors::srpo::RlConfig| {
        ActorTrainer::new(RunContext::load(cfg, &ctx, Registry::new()).unwrap()).unwrap()
    };
    let local: Vec<_> = {
        let mut t = load(&cfg);
        (0..4).map(|_| step(&mut t)).collect()
    };

    let nats = NatsServer::start();
    let run = "e2e";
    cfg.system.remote = Some(RemoteConfig {
        url: nats.url.clone(),
        run: run.into(),
        ack_wait_s: 2.0,
        max_in_flight: 8,
        result_timeout_s: 300.0,
    });
    // `a` answers slowly and is killed as soon as it starts a task of step 2.
    let a = Worker::spawn(&nats.url, run, "a", 600, Some("started (step 2,"));
    let b = Worker::spawn(&nats.url, run, "b", 20, None);
    let mut t = load(&cfg);
    let mut remote = vec![step(&mut t), step(&mut t)];
    assert!(
        a.killed.load(Ordering::SeqCst),
        "worker a never started a task of step 2"
    );
    assert!(
        counter(&t, "remote.redelivered_tasks") >= 1,
        "the killed worker's task was not redelivered"
    );
    publish_duplicate(&nats.url, &t);
    drop(b);
    // A worker that joins after two learner steps catches up on the weights.
    let c = Worker::spawn(&nats.url, run, "c", 0, None);
    let (m, net) = step_and_net(&mut t);
    remote.push(m);
    remote.push(step(&mut t));
    assert_eq!(remote, local, "remote rollouts changed the run");

    let t0 = Instant::now();
    while counter(&t, "remote.duplicate_results") == 0 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The injected one at least (a loaded machine may also redeliver a slow task whose worker
    // then answers twice: dropped the same way).
    assert!(counter(&t, "remote.duplicate_results") >= 1);
    let published = counter(&t, "remote.tasks_published");
    let answered = t.remote().unwrap().answered();
    assert_eq!(counter(&t, "remote.results_accepted"), published);
    assert_eq!(answered.len() as u64, published, "every task answered once");
    // Prompts sampled (issued) = tasks, one prompt each.
    assert_eq!(counter(&t, "coordinator.prompts_issued"), published);
    assert!(t.shared.in_flight.is_empty());
    for (task, worker) in &answered {
        let step: u64 = task.split('.').next().unwrap().parse().unwrap();
        match step {
            0 => assert!(worker == "a" || worker == "b", "{task} by {worker}"),
            1 => assert_eq!(worker, "b", "task {task} of step 2"),
            _ => assert_eq!(worker, "c", "task {task} after b left"),
        }
    }
    let c_lines = c.lines();
    assert!(
        c_lines
            .iter()
            .any(|l| l.starts_with("pulled weights version 2 ")),
        "the late worker did not pull version 2: {c_lines:?}"
    );
    // What crossed the network: 4 versions put once each, tasks and results. In step 3 the
    // one worker pulled the version the coordinator put.
    assert_eq!(counter(&t, "remote.versions_published"), 4);
    assert!(counter(&t, "remote.task_bytes") > 0 && counter(&t, "remote.result_bytes") > 0);
    let put = net["net_weight_bytes_published"];
    assert!(put > 0.0);
    assert_eq!(net["net_weight_bytes_pulled"], put);
    assert!(net["net_task_bytes"] > 0.0 && net["net_result_bytes"] > net["net_task_bytes"]);
}

#[test]
fn rounds_sampled_ahead_by_workers_keep_the_staleness_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = rl_common::setup(dir.path(), 30);
    cfg.system.max_staleness = 1;
    let ctx = rl_common::ctx();
    let load = |cfg: &grrm_actors::srpo::RlConfig| {
        ActorTrainer::new(RunContext::load(cfg, &ctx, Registry::new()).unwrap()).unwrap()
    };
    let local: Vec<_> = {
        let mut t = load(&cfg);
        (0..3).map(|_| step(&mut t)).collect()
    };
    let nats = NatsServer::start();
    cfg.system.remote = Some(RemoteConfig {
        url: nats.url.clone(),
        run: "ahead".into(),
        result_timeout_s: 300.0,
        ..Default::default()
    });
    let _w = [
        Worker::spawn(&nats.url, "ahead", "x", 0, None),
        Worker::spawn(&nats.url, "ahead", "y", 0, None),
    ];
    let mut t = load(&cfg);
    let remote: Vec<_> = (0..3).map(|_| step(&mut t)).collect();
    assert_eq!(remote, local);
    // Steps 2 and 3 consumed a round sampled with the version before theirs.
    assert_eq!(remote[1]["staleness_max"], 1.0);
    assert_eq!(remote[2]["staleness_max"], 1.0);
    assert_eq!(
        counter(&t, "remote.results_accepted"),
        counter(&t, "remote.tasks_published")
    );
}
