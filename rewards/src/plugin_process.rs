//! A reward served by an external program speaking JSON lines (see [`crate::protocol`]).
//!
//! The program is started directly (no shell), once per worker, when the reward is built, and
//! gets one request line on stdin per sample; it must answer with one line on stdout and flush.
//! Its stderr is logged through `tracing` with the sample id in flight, and its last lines are
//! attached to the error when it dies. I/O runs on helper threads so that a program that stops
//! reading or writing can never block the trainer past the timeout:
//! - no reply within `timeout_ms`: the process is killed (a late reply would desynchronise the
//!   stream), the sample fails with `Timeout`, and the next request starts a fresh process
//!   (the first request of a fresh process gets `startup_timeout_ms` more);
//! - the process dies (stdout closes): it is restarted and the request is sent once more; a
//!   second death fails the sample with `ProcessDied`.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, Receiver, RecvTimeoutError, Sender};
use serde::Deserialize;

use crate::checked::validate_output;
use crate::error::{ConfigError, RewardError, RewardErrorKind};
use crate::protocol::{decode_reply, encode_request, reply_id, snippet};
use crate::reward::{Reward, RewardInput, RewardOutput};

/// Options of the `process` reward.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessOptions {
    /// Executable, found through `PATH` when it has no slash (e.g. `"python3"`).
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables (the trainer's environment is inherited).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Per-request limit, from writing the request to reading the reply.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Extra time granted to the first request a fresh process serves, for interpreter start-up
    /// and whatever the plugin loads before reading stdin.
    #[serde(default = "default_startup_ms")]
    pub startup_timeout_ms: u64,
    /// Number of processes run side by side (each serves one request at a time).
    #[serde(default = "default_workers")]
    pub workers: usize,
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_startup_ms() -> u64 {
    30_000
}
fn default_workers() -> usize {
    1
}

impl ProcessOptions {
    pub fn new(program: impl Into<String>, args: Vec<String>) -> Self {
        Self {
            program: program.into(),
            args,
            env: BTreeMap::new(),
            cwd: None,
            timeout_ms: default_timeout_ms(),
            startup_timeout_ms: default_startup_ms(),
            workers: default_workers(),
        }
    }
}

/// Lines of stderr kept for error messages.
const STDERR_TAIL_LINES: usize = 20;
/// How long to wait for a dead process's last stderr lines.
const STDERR_DRAIN: Duration = Duration::from_millis(500);
/// How long a process may take to exit after its stdin is closed before it is killed.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// What the stdout reader thread sends.
enum Line {
    Text(String),
    Closed(String),
}

#[derive(Default)]
struct StderrState {
    in_flight: Option<String>,
    tail: VecDeque<String>,
}

/// One live process and its I/O threads.
struct Running {
    child: Child,
    requests: Option<Sender<String>>,
    lines: Receiver<Line>,
    stderr: Arc<Mutex<StderrState>>,
    stderr_done: Receiver<()>,
    /// No request served yet: the first one gets the start-up allowance.
    fresh: bool,
}

enum Exchange {
    Reply(String),
    Timeout,
    /// Only replies for other ids came before the deadline.
    Mismatched(String),
    Died(String),
}

impl Running {
    fn spawn(reward: &str, opts: &ProcessOptions) -> std::io::Result<Self> {
        let mut cmd = Command::new(&opts.program);
        cmd.args(&opts.args)
            .envs(&opts.env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(dir) = &opts.cwd {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr_pipe = child.stderr.take().expect("piped stderr");

        let (req_tx, req_rx) = channel::unbounded::<String>();
        thread::spawn(move || write_requests(stdin, req_rx));

        let (line_tx, lines) = channel::unbounded();
        thread::spawn(move || read_lines(stdout, line_tx));

        let stderr = Arc::new(Mutex::new(StderrState::default()));
        let (done_tx, stderr_done) = channel::bounded(1);
        let (state, name) = (stderr.clone(), reward.to_string());
        thread::spawn(move || {
            read_stderr(stderr_pipe, &state, &name);
            let _ = done_tx.send(());
        });

        Ok(Self {
            child,
            requests: Some(req_tx),
            lines,
            stderr,
            stderr_done,
            fresh: true,
        })
    }

    fn exchange(
        &mut self,
        reward: &str,
        sample_id: &str,
        line: String,
        timeout: Duration,
        startup: Duration,
    ) -> Exchange {
        // Lines nobody asked for (debug prints) would be taken for the next reply: drop them now.
        while let Ok(stray) = self.lines.try_recv() {
            match stray {
                Line::Text(t) => tracing::warn!(
                    reward,
                    "plugin wrote a line outside any request, ignored: {}",
                    snippet(&t)
                ),
                Line::Closed(why) => return Exchange::Died(why),
            }
        }
        self.stderr.lock().unwrap().in_flight = Some(sample_id.to_string());
        let sent = self
            .requests
            .as_ref()
            .is_some_and(|tx| tx.send(line).is_ok());
        let outcome = if sent {
            let allowance = if self.fresh { startup } else { Duration::ZERO };
            self.fresh = false;
            self.await_reply(reward, sample_id, Instant::now() + timeout + allowance)
        } else {
            Exchange::Died("its stdin writer stopped".into())
        };
        self.stderr.lock().unwrap().in_flight = None;
        outcome
    }

    /// Waits for the reply to `sample_id`. Replies to other ids are stale (a plugin that once
    /// wrote an extra line answers one request late) and are skipped; if nothing else comes,
    /// the last of them is returned as `Mismatched`.
    fn await_reply(&self, reward: &str, sample_id: &str, deadline: Instant) -> Exchange {
        let mut skipped = None;
        loop {
            match self.lines.recv_deadline(deadline) {
                Ok(Line::Text(t)) => match reply_id(&t) {
                    Some(id) if id != sample_id => {
                        tracing::warn!(
                            reward,
                            sample = sample_id,
                            "skipping a reply for another id: {}",
                            snippet(&t)
                        );
                        skipped = Some(t);
                    }
                    _ => return Exchange::Reply(t),
                },
                Ok(Line::Closed(why)) => return Exchange::Died(why),
                Err(RecvTimeoutError::Timeout) => {
                    return skipped.map_or(Exchange::Timeout, Exchange::Mismatched)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Exchange::Died("stdout reader stopped".into())
                }
            }
        }
    }

    /// Kills the process (if still alive) and returns how it ended plus its last stderr lines.
    fn kill(mut self) -> (String, String) {
        self.requests = None;
        let _ = self.child.kill();
        let status = match self.child.wait() {
            Ok(s) => s.to_string(),
            Err(e) => format!("wait failed: {e}"),
        };
        let _ = self.stderr_done.recv_timeout(STDERR_DRAIN);
        let tail = Vec::from(std::mem::take(&mut self.stderr.lock().unwrap().tail)).join("\n");
        (status, tail)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Closing stdin asks a well-behaved plugin to exit; kill it if it does not.
        self.requests = None;
        let deadline = Instant::now() + EXIT_GRACE;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => thread::sleep(Duration::from_millis(10)),
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_requests(mut stdin: ChildStdin, requests: Receiver<String>) {
    for mut line in requests {
        line.push('\n');
        if stdin
            .write_all(line.as_bytes())
            .and_then(|_| stdin.flush())
            .is_err()
        {
            return; // the process is gone; the reader side reports it
        }
    }
}

fn read_lines(stdout: impl Read, tx: Sender<Line>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut buf = Vec::new();
        let msg = match reader.read_until(b'\n', &mut buf) {
            Ok(0) => Line::Closed("its stdout closed".into()),
            Ok(_) => Line::Text(String::from_utf8_lossy(&buf).trim_end().to_string()),
            Err(e) => Line::Closed(format!("reading its stdout failed: {e}")),
        };
        let last = matches!(msg, Line::Closed(_));
        if tx.send(msg).is_err() || last {
            return;
        }
    }
}

fn read_stderr(stderr: impl Read, state: &Mutex<StderrState>, reward: &str) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    while matches!(reader.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
        buf.clear();
        let mut s = state.lock().unwrap();
        let sample = s.in_flight.as_deref().unwrap_or("-");
        tracing::warn!(reward, sample, "plugin stderr: {line}");
        if s.tail.len() == STDERR_TAIL_LINES {
            s.tail.pop_front();
        }
        s.tail.push_back(line);
    }
}

/// The JSON-lines plug-in reward. Idle processes wait in a pool; a request takes one, so up to
/// `workers` samples are scored at once.
pub struct ProcessReward {
    name: String,
    opts: ProcessOptions,
    idle_tx: Sender<Option<Running>>,
    idle_rx: Receiver<Option<Running>>,
    spawns: AtomicU64,
    restarts: AtomicU64,
}

impl ProcessReward {
    /// Starts `opts.workers` processes now so that a wrong program path fails at start-up.
    pub fn new(name: impl Into<String>, opts: ProcessOptions) -> Result<Self, ConfigError> {
        let name = name.into();
        let invalid = |field, message| ConfigError::Invalid {
            reward: name.clone(),
            field,
            message,
        };
        if opts.workers == 0 {
            return Err(invalid("workers", "must be at least 1".into()));
        }
        if opts.timeout_ms == 0 {
            return Err(invalid("timeout_ms", "must be positive".into()));
        }
        let (idle_tx, idle_rx) = channel::bounded(opts.workers);
        for _ in 0..opts.workers {
            let p = Running::spawn(&name, &opts)
                .map_err(|e| invalid("program", format!("cannot start {:?}: {e}", opts.program)))?;
            idle_tx
                .send(Some(p))
                .expect("pool has room for every worker");
        }
        Ok(Self {
            spawns: AtomicU64::new(opts.workers as u64),
            restarts: AtomicU64::new(0),
            name,
            opts,
            idle_tx,
            idle_rx,
        })
    }

    /// Processes started so far, the initial ones included.
    pub fn spawns(&self) -> u64 {
        self.spawns.load(Ordering::Relaxed)
    }

    /// Restarts after a death or a timeout.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    fn start(&self, sample_id: &str, restart: bool) -> Result<Running, RewardError> {
        let p = Running::spawn(&self.name, &self.opts).map_err(|e| {
            RewardError::new(
                &self.name,
                sample_id,
                RewardErrorKind::Spawn {
                    detail: format!("{:?}: {e}", self.opts.program),
                },
            )
        })?;
        self.spawns.fetch_add(1, Ordering::Relaxed);
        if restart {
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
        Ok(p)
    }

    fn request(
        &self,
        slot: &mut Option<Running>,
        input: &RewardInput,
    ) -> Result<RewardOutput, RewardError> {
        let sample_id = &input.meta.sample_id;
        let line = encode_request(input);
        let timeout = Duration::from_millis(self.opts.timeout_ms);
        for attempt in 0..2 {
            let mut proc = match slot.take() {
                Some(p) => p,
                None => self.start(sample_id, true)?,
            };
            let startup = Duration::from_millis(self.opts.startup_timeout_ms);
            match proc.exchange(&self.name, sample_id, line.clone(), timeout, startup) {
                Exchange::Reply(text) => {
                    *slot = Some(proc);
                    let out = decode_reply(&self.name, input, &text)?;
                    validate_output(&self.name, sample_id, &out, None)?;
                    return Ok(out);
                }
                Exchange::Mismatched(text) => {
                    // The stream is out of step; start over with a fresh process.
                    proc.kill();
                    return Err(input.error(
                        &self.name,
                        RewardErrorKind::MalformedReply {
                            detail: format!(
                                "no reply with this id within {timeout:?}, only for others, last {}",
                                snippet(&text)
                            ),
                        },
                    ));
                }
                Exchange::Timeout => {
                    let (status, _) = proc.kill();
                    tracing::warn!(reward = %self.name, sample = %sample_id, "plugin timed out and was killed ({status})");
                    return Err(input.error(&self.name, RewardErrorKind::Timeout { timeout }));
                }
                Exchange::Died(why) => {
                    let (status, stderr_tail) = proc.kill();
                    let detail = format!("{why} ({status}) while scoring this sample");
                    tracing::warn!(reward = %self.name, sample = %sample_id, attempt, "plugin died: {detail}; restarting");
                    if attempt == 1 {
                        return Err(input.error(
                            &self.name,
                            RewardErrorKind::ProcessDied {
                                detail,
                                stderr_tail,
                            },
                        ));
                    }
                }
            }
        }
        unreachable!("the second attempt always returns")
    }
}

/// Returns a pool slot even when scoring panics, so the pool never shrinks.
struct Slot<'a> {
    pool: &'a Sender<Option<Running>>,
    proc: Option<Running>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let _ = self.pool.send(self.proc.take());
    }
}

impl Reward for ProcessReward {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, input: &RewardInput) -> Result<RewardOutput, RewardError> {
        let proc = self.idle_rx.recv().expect("the reward owns both pool ends");
        let mut slot = Slot {
            pool: &self.idle_tx,
            proc,
        };
        self.request(&mut slot.proc, input)
    }
}
