//! Rewards by name: the built-ins plus whatever the user registers, built from config terms.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::batch::RewardSet;
use crate::builtin::{ExactMatchReward, FormatOnlyReward, SemanticIdReward};
use crate::checked::Checked;
use crate::combine::WeightedSum;
use crate::config::{RewardsConfig, TermConfig};
use crate::error::ConfigError;
use crate::plugin_http::{HttpOptions, HttpReward};
use crate::plugin_process::{ProcessOptions, ProcessReward};
use crate::reward::Reward;
use crate::semantic_id::FormatOptions;

/// Builds a reward instance from its label and raw options.
pub type Factory = Box<dyn Fn(&str, Value) -> Result<Arc<dyn Reward>, ConfigError> + Send + Sync>;

/// Name of the weighted sum built from a whole config.
pub const TOTAL: &str = "total";

pub struct Registry {
    factories: BTreeMap<String, Factory>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry without any reward.
    pub fn empty() -> Self {
        Self {
            factories: BTreeMap::new(),
        }
    }

    /// The built-ins: `semantic_id`, `exact_match`, `format_only` (options: [`FormatOptions`]),
    /// `process` ([`ProcessOptions`]) and `http` ([`HttpOptions`]).
    pub fn new() -> Self {
        let mut r = Self::empty();
        let ok = "built-in names are distinct";
        r.register_with("semantic_id", |label, o: FormatOptions| {
            Ok(SemanticIdReward::new(label, o))
        })
        .expect(ok);
        r.register_with("exact_match", |label, o: FormatOptions| {
            Ok(ExactMatchReward::new(label, o))
        })
        .expect(ok);
        r.register_with("format_only", |label, o: FormatOptions| {
            Ok(FormatOnlyReward::new(label, o))
        })
        .expect(ok);
        r.register_with("process", |label, o: ProcessOptions| {
            ProcessReward::new(label, o)
        })
        .expect(ok);
        r.register_with("http", |label, o: HttpOptions| HttpReward::new(label, o))
            .expect(ok);
        r
    }

    /// Registers a factory taking raw options.
    pub fn register<F>(&mut self, name: &str, factory: F) -> Result<(), ConfigError>
    where
        F: Fn(&str, Value) -> Result<Arc<dyn Reward>, ConfigError> + Send + Sync + 'static,
    {
        if self.factories.contains_key(name) {
            return Err(ConfigError::DuplicateName(name.to_string()));
        }
        self.factories.insert(name.to_string(), Box::new(factory));
        Ok(())
    }

    /// Registers a factory whose options deserialise into `O` (use
    /// `#[serde(deny_unknown_fields)]` on it); missing options read as an empty table.
    pub fn register_with<O, R, F>(&mut self, name: &str, factory: F) -> Result<(), ConfigError>
    where
        O: DeserializeOwned,
        R: Reward + 'static,
        F: Fn(&str, O) -> Result<R, ConfigError> + Send + Sync + 'static,
    {
        self.register(name, move |label, raw| {
            let raw = if raw.is_null() {
                Value::Object(Default::default())
            } else {
                raw
            };
            let opts = serde_json::from_value(raw).map_err(|e| ConfigError::Options {
                reward: label.to_string(),
                message: e.to_string(),
            })?;
            Ok(Arc::new(factory(label, opts)?) as Arc<dyn Reward>)
        })
    }

    pub fn names(&self) -> Vec<&str> {
        self.factories.keys().map(String::as_str).collect()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.factories.contains_key(name)
    }

    /// Builds one term, wrapped in [`Checked`] with the term's range.
    pub fn build_term(&self, term: &TermConfig) -> Result<Arc<dyn Reward>, ConfigError> {
        let factory = self
            .factories
            .get(&term.name)
            .ok_or_else(|| ConfigError::UnknownReward {
                name: term.name.clone(),
                known: self.factories.keys().cloned().collect(),
            })?;
        let inner = factory(term.label(), term.options.clone())?;
        let range = term.range.map(|[lo, hi]| (lo, hi));
        Ok(Arc::new(Checked::new(inner, range)))
    }

    /// Validates `cfg` and builds the weighted sum of its terms plus the batch policy.
    pub fn build(&self, cfg: &RewardsConfig) -> Result<RewardSet, ConfigError> {
        cfg.validate()?;
        let terms = cfg
            .terms
            .iter()
            .map(|t| Ok((t.weight, self.build_term(t)?)))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(RewardSet {
            reward: Arc::new(WeightedSum::new(TOTAL, terms)),
            on_error: cfg.on_error,
            threads: cfg.threads,
        })
    }
}
