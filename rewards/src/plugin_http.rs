//! A reward served by an HTTP endpoint: each sample is POSTed as the JSON request of
//! [`crate::protocol`] and the response body is its reply. Non-2xx statuses, transport errors
//! and timeouts are typed errors naming the sample. `https://` needs the crate feature `https`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::checked::validate_output;
use crate::error::{ConfigError, RewardError, RewardErrorKind};
use crate::protocol::{decode_reply, encode_request, snippet};
use crate::reward::{Reward, RewardInput, RewardOutput};

/// Options of the `http` reward.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    pub url: String,
    /// Whole-request limit (connect, send, wait, read).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Extra headers, e.g. `{ Authorization = "Bearer ..." }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Further attempts after a transport error or timeout (not after an HTTP error status or a
    /// malformed reply, which would repeat).
    #[serde(default)]
    pub retries: u32,
    /// Honour `HTTP(S)_PROXY`/`ALL_PROXY` and `NO_PROXY` from the environment.
    #[serde(default = "default_true")]
    pub proxy_from_env: bool,
}

fn default_timeout_ms() -> u64 {
    10_000
}
fn default_true() -> bool {
    true
}

impl HttpOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout_ms: default_timeout_ms(),
            headers: BTreeMap::new(),
            retries: 0,
            proxy_from_env: true,
        }
    }
}

/// Replies larger than this are refused (a reward reply is a few hundred bytes).
const MAX_REPLY_BYTES: u64 = 1 << 20;

pub struct HttpReward {
    name: String,
    opts: HttpOptions,
    agent: ureq::Agent,
}

impl HttpReward {
    pub fn new(name: impl Into<String>, opts: HttpOptions) -> Result<Self, ConfigError> {
        let name = name.into();
        let invalid = |field, message: String| ConfigError::Invalid {
            reward: name.clone(),
            field,
            message,
        };
        let uri: ureq::http::Uri = opts
            .url
            .parse()
            .map_err(|e| invalid("url", format!("{:?}: {e}", opts.url)))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") if cfg!(feature = "https") => {}
            Some("https") => {
                return Err(invalid(
                    "url",
                    "https needs grrm-rewards built with the `https` feature".into(),
                ))
            }
            _ => {
                return Err(invalid(
                    "url",
                    format!("{:?} is not an http(s) URL", opts.url),
                ))
            }
        }
        if opts.timeout_ms == 0 {
            return Err(invalid("timeout_ms", "must be positive".into()));
        }
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_millis(opts.timeout_ms)))
            .http_status_as_error(false);
        if !opts.proxy_from_env {
            config = config.proxy(None);
        }
        Ok(Self {
            agent: config.build().into(),
            name,
            opts,
        })
    }

    fn post(&self, body: &str) -> Result<(u16, String), ureq::Error> {
        let mut req = self
            .agent
            .post(&self.opts.url)
            .header("content-type", "application/json");
        for (k, v) in &self.opts.headers {
            req = req.header(k, v);
        }
        let mut resp = req.send(body)?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(MAX_REPLY_BYTES)
            .read_to_string()?;
        Ok((status, text))
    }
}

impl Reward for HttpReward {
    fn name(&self) -> &str {
        &self.name
    }

    fn score(&self, input: &RewardInput) -> Result<RewardOutput, RewardError> {
        let body = encode_request(input);
        let mut attempt = 0;
        let (status, text) = loop {
            match self.post(&body) {
                Ok(r) => break r,
                Err(e) if attempt < self.opts.retries => {
                    attempt += 1;
                    tracing::warn!(reward = %self.name, sample = %input.meta.sample_id, attempt, "reward endpoint failed, retrying: {e}");
                }
                Err(ureq::Error::Timeout(_)) => {
                    let timeout = Duration::from_millis(self.opts.timeout_ms);
                    return Err(input.error(&self.name, RewardErrorKind::Timeout { timeout }));
                }
                Err(e) => {
                    return Err(input.error(
                        &self.name,
                        RewardErrorKind::Http {
                            detail: format!("POST {}: {e}", self.opts.url),
                        },
                    ))
                }
            }
        };
        if !(200..300).contains(&status) {
            return Err(input.error(
                &self.name,
                RewardErrorKind::Http {
                    detail: format!(
                        "POST {} returned {status}: {}",
                        self.opts.url,
                        snippet(&text)
                    ),
                },
            ));
        }
        let out = decode_reply(&self.name, input, &text)?;
        validate_output(&self.name, &input.meta.sample_id, &out, None)?;
        Ok(out)
    }
}
