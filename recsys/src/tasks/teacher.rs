//! Rationales from a teacher LLM behind an OpenAI-compatible endpoint (`POST
//! {url}/v1/chat/completions`, ureq 3, plain HTTP unless ureq's TLS feature is on). The
//! teacher sees the target, like the reference's, and must not reveal it: a reply that names
//! the target's title or ID, or lacks the three steps, is rejected and asked for again with a
//! different `seed`; after `leak_attempts` rejections the caller falls back to the offline
//! rationale. Transport errors, 429 and 5xx are retried with exponential backoff. Every reply
//! is cached in a JSON-lines file keyed by a hash of the exact request body (the body is kept
//! and compared on a hit), so a rerun costs no request.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::reasoning::leaks_target;
use super::title_of;
use crate::dataset::Dataset;
use crate::error::{DataError, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TeacherConfig {
    /// Base URL (`http://host:port`) or the full `.../chat/completions` URL.
    pub url: String,
    pub model: String,
    /// Name of the environment variable holding the API key (the key is never in a config).
    pub api_key_env: Option<String>,
    pub temperature: f64,
    pub max_tokens: u32,
    pub timeout_ms: u64,
    /// Retries of one request after a transport error, 429 or 5xx.
    pub retries: u32,
    pub backoff_ms: u64,
    /// Requests (with different seeds) before giving up on a leak-free reply.
    pub leak_attempts: u32,
    pub cache: Option<PathBuf>,
}

impl Default for TeacherConfig {
    fn default() -> Self {
        TeacherConfig {
            url: String::new(),
            model: "teacher".into(),
            api_key_env: None,
            temperature: 0.7,
            max_tokens: 600,
            timeout_ms: 120_000,
            retries: 4,
            backoff_ms: 500,
            leak_attempts: 3,
            cache: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TeacherStats {
    pub requests: usize,
    pub cache_hits: usize,
    pub retries: usize,
    pub rejected: usize,
    /// Examples for which no acceptable reply came (the caller fell back or failed).
    pub gave_up: usize,
}

pub struct Teacher {
    cfg: TeacherConfig,
    endpoint: String,
    agent: ureq::Agent,
    api_key: Option<String>,
    cache: HashMap<String, (String, String)>,
    pub stats: TeacherStats,
}

const SYSTEM: &str = "You are an expert e-commerce analyst who explains purchase behaviour. \
You are told which item a user bought next, but you must never reveal it: do not write its \
title, its name or its identifier. Write exactly three short paragraphs starting with \
\"Step 1:\", \"Step 2:\" and \"Step 3:\" and nothing else.";

/// FNV-1a 64: a stable content hash for cache keys (no cryptographic need; the request body is
/// stored beside the key and compared on a hit).
fn fnv1a(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn ext(msg: String) -> DataError {
    DataError::External {
        what: "teacher".into(),
        msg,
    }
}

fn describe(ds: &Dataset, i: u32) -> String {
    let m = &ds.items[i as usize];
    let mut parts = vec![format!("\"{}\"", title_of(ds, i))];
    if !m.categories.is_empty() {
        parts.push(m.categories.join(" > "));
    }
    if let Some(b) = &m.brand {
        parts.push(format!("brand {b}"));
    }
    if let Some(p) = m.price {
        parts.push(format!("${p:.2}"));
    }
    parts.join("; ")
}

/// Keep steps 1-3: drop think tags the teacher may add and anything from "Step 4" on.
pub fn clean_reply(text: &str) -> Option<String> {
    let t = text.replace("<think>", "").replace("</think>", "");
    let t = match t.find("Step 4") {
        Some(p) => t[..p].to_string(),
        None => t,
    };
    let t = t.trim().to_string();
    let ok = ["Step 1", "Step 2", "Step 3"].iter().all(|s| t.contains(s));
    ok.then_some(t)
}

impl Teacher {
    pub fn new(cfg: &TeacherConfig) -> Result<Teacher> {
        if !(cfg.url.starts_with("http://") || cfg.url.starts_with("https://")) {
            return Err(DataError::Config {
                msg: format!("teacher url {:?} is not an http(s) URL", cfg.url),
            });
        }
        let base = cfg.url.trim_end_matches('/');
        let endpoint = if base.ends_with("/chat/completions") {
            base.to_string()
        } else {
            format!("{base}/v1/chat/completions")
        };
        let api_key = match &cfg.api_key_env {
            Some(var) => Some(std::env::var(var).map_err(|_| DataError::Config {
                msg: format!("teacher api_key_env: environment variable {var} is not set"),
            })?),
            None => None,
        };
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(cfg.timeout_ms.max(1))))
            .http_status_as_error(false)
            .build()
            .into();
        let mut cache = HashMap::new();
        if let Some(path) = cfg.cache.as_ref().filter(|p| p.exists()) {
            let f = File::open(path).map_err(|e| DataError::io(path, e))?;
            for (n, line) in BufReader::new(f).lines().enumerate() {
                let line = line.map_err(|e| DataError::io(path, e))?;
                let parsed: Option<(String, String, String)> =
                    serde_json::from_str::<Value>(&line).ok().and_then(|v| {
                        Some((
                            v["key"].as_str()?.to_string(),
                            v["request"].as_str()?.to_string(),
                            v["content"].as_str()?.to_string(),
                        ))
                    });
                match parsed {
                    Some((k, req, content)) => {
                        cache.insert(k, (req, content));
                    }
                    // A line cut by an interrupted run: skip it, the request is made again.
                    None => {
                        tracing::warn!(file = %path.display(), line = n + 1, "skipping unreadable teacher cache line")
                    }
                }
            }
        }
        Ok(Teacher {
            cfg: cfg.clone(),
            endpoint,
            agent,
            api_key,
            cache,
            stats: TeacherStats::default(),
        })
    }

    fn request_body(&self, ds: &Dataset, history: &[u32], target: u32, attempt: u32) -> String {
        let lines: Vec<String> = history
            .iter()
            .enumerate()
            .map(|(k, &i)| format!("{}. {}", k + 1, describe(ds, i)))
            .collect();
        let user = format!(
            "A user bought these items, oldest first:\n{}\n\nThe item the user bought next is {}.\n\n\
             Explain why a recommender could anticipate that purchase, WITHOUT naming or quoting \
             that next item:\nStep 1: behavioural evidence from the history (categories, brands, \
             prices, recency).\nStep 2: the user's latent preferences.\nStep 3: the user's \
             current purchase intent.",
            lines.join("\n"),
            describe(ds, target)
        );
        let body = json!({
            "model": self.cfg.model,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": user},
            ],
            "temperature": self.cfg.temperature,
            "max_tokens": self.cfg.max_tokens,
            "seed": attempt,
        });
        body.to_string()
    }

    fn post(&mut self, body: &str) -> Result<String> {
        let mut attempt = 0;
        loop {
            let mut req = self
                .agent
                .post(&self.endpoint)
                .header("content-type", "application/json");
            if let Some(k) = &self.api_key {
                req = req.header("authorization", &format!("Bearer {k}"));
            }
            self.stats.requests += 1;
            let outcome: std::result::Result<(), String> = match req.send(body) {
                Ok(mut resp) => {
                    let status = resp.status().as_u16();
                    match resp.body_mut().read_to_string() {
                        Ok(text) if status == 200 => return self.content(&text),
                        Ok(text) if status == 429 || status >= 500 => Err(format!(
                            "HTTP {status}: {}",
                            text.chars().take(200).collect::<String>()
                        )),
                        Ok(text) => {
                            return Err(ext(format!(
                                "{}: HTTP {status}: {}",
                                self.endpoint,
                                text.chars().take(300).collect::<String>()
                            )))
                        }
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            let msg = outcome.unwrap_err();
            if attempt >= self.cfg.retries {
                return Err(ext(format!(
                    "{}: giving up after {} attempts: {msg}",
                    self.endpoint,
                    attempt + 1
                )));
            }
            self.stats.retries += 1;
            let wait = self.cfg.backoff_ms.saturating_mul(1 << attempt.min(16));
            tracing::warn!(endpoint = %self.endpoint, attempt, wait_ms = wait, "teacher request failed: {msg}");
            std::thread::sleep(Duration::from_millis(wait));
            attempt += 1;
        }
    }

    fn content(&self, text: &str) -> Result<String> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| ext(format!("{}: reply is not JSON: {e}", self.endpoint)))?;
        v["choices"][0]["message"]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| {
                ext(format!(
                    "{}: reply has no choices[0].message.content",
                    self.endpoint
                ))
            })
    }

    fn cached_or_post(&mut self, body: String) -> Result<String> {
        let key = fnv1a(&body);
        if let Some((req, content)) = self.cache.get(&key) {
            if *req == body {
                self.stats.cache_hits += 1;
                return Ok(content.clone());
            }
        }
        let content = self.post(&body)?;
        if let Some(path) = &self.cfg.cache {
            let line = json!({"key": key, "request": body, "content": content}).to_string();
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| DataError::io(path, e))?;
            writeln!(f, "{line}").map_err(|e| DataError::io(path, e))?;
        }
        self.cache.insert(key, (body, content.clone()));
        Ok(content)
    }

    /// Steps 1-3 for (history, target), or None when every attempt leaked the target or broke
    /// the format.
    pub fn rationale(
        &mut self,
        ds: &Dataset,
        history: &[u32],
        target: u32,
        target_id: &str,
    ) -> Result<Option<String>> {
        for attempt in 0..self.cfg.leak_attempts.max(1) {
            let body = self.request_body(ds, history, target, attempt);
            let reply = self.cached_or_post(body)?;
            match clean_reply(&reply) {
                Some(steps) if !leaks_target(ds, &steps, target, target_id) => {
                    return Ok(Some(steps))
                }
                _ => self.stats.rejected += 1,
            }
        }
        self.stats.gave_up += 1;
        Ok(None)
    }
}
