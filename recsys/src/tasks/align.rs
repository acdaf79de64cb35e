//! Alignment tasks (SPEC.md section 3): seqrec, item2index, index2item, fusionseqrec, and —
//! only when user preference text is supplied — itemsearch and preferenceobtain. Interaction
//! tasks draw from training-split examples only; the catalogue tasks use item metadata.
//! Each sample's template is drawn at random from its task's list (seeded).

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::templates::{self as t, render, Template};
use super::{history_ids, title_of, ChatSample, ALIGN_SYSTEM_PROMPT};
use crate::dataset::Dataset;
use crate::index::text::clip;
use crate::split::Example;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Seqrec,
    Item2index,
    Index2item,
    Fusionseqrec,
    Itemsearch,
    Preferenceobtain,
}

impl Task {
    pub fn name(self) -> &'static str {
        match self {
            Task::Seqrec => "seqrec",
            Task::Item2index => "item2index",
            Task::Index2item => "index2item",
            Task::Fusionseqrec => "fusionseqrec",
            Task::Itemsearch => "itemsearch",
            Task::Preferenceobtain => "preferenceobtain",
        }
    }
}

/// What the task builders share.
pub struct Ctx<'a> {
    pub ds: &'a Dataset,
    /// `ids[i]` = item i's semantic ID string.
    pub ids: &'a [String],
    pub max_description_chars: usize,
}

fn pick<'t>(rng: &mut ChaCha8Rng, lists: &[&'t [Template]]) -> (usize, &'t Template) {
    // Returns the index over the concatenated lists, so meta "template" is unambiguous.
    let total: usize = lists.iter().map(|l| l.len()).sum();
    let pick = rng.random_range(0..total);
    let mut k = pick;
    for l in lists {
        if k < l.len() {
            return (pick, &l[k]);
        }
        k -= l.len();
    }
    unreachable!("k < total")
}

fn sample(task: Task, tpl: &Template, vars: &[(&str, &str)]) -> ChatSample {
    ChatSample::new(
        ALIGN_SYSTEM_PROMPT,
        render(tpl.0, vars),
        render(tpl.1, vars),
        task.name(),
    )
}

impl Ctx<'_> {
    fn description(&self, item: u32) -> Option<String> {
        self.ds.items[item as usize]
            .description
            .as_deref()
            .map(|d| clip(d, self.max_description_chars).to_string())
    }

    fn titles(&self, history: &[u32]) -> String {
        history
            .iter()
            .map(|&i| format!("\"{}\"", title_of(self.ds, i)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn seqrec(&self, examples: &[Example], rng: &mut ChaCha8Rng) -> Vec<ChatSample> {
        examples
            .iter()
            .map(|e| {
                let (k, tpl) = pick(rng, &[t::SEQREC]);
                let h = history_ids(self.ids, &e.history);
                let item = &self.ids[e.target as usize];
                sample(Task::Seqrec, tpl, &[("history", &h), ("item", item)])
                    .with("user", e.user)
                    .with("target", e.target)
                    .with("template", k)
            })
            .collect()
    }

    /// One sample per item, from title, description or both (whatever the item has).
    fn catalogue(&self, task: Task, rng: &mut ChaCha8Rng) -> Vec<ChatSample> {
        let (title_l, desc_l, both_l) = match task {
            Task::Item2index => (t::ITEM2INDEX_TITLE, t::ITEM2INDEX_DESC, t::ITEM2INDEX_BOTH),
            _ => (t::INDEX2ITEM_TITLE, t::INDEX2ITEM_DESC, t::INDEX2ITEM_BOTH),
        };
        let mut out = Vec::new();
        for i in 0..self.ds.n_items() as u32 {
            let title = self.ds.items[i as usize]
                .title
                .as_ref()
                .map(|_| title_of(self.ds, i));
            let desc = self.description(i);
            let lists: Vec<&[Template]> = match (&title, &desc) {
                (Some(_), Some(_)) => vec![title_l, desc_l, both_l],
                (Some(_), None) => vec![title_l],
                (None, Some(_)) => vec![desc_l],
                (None, None) => continue,
            };
            let (k, tpl) = pick(rng, &lists);
            let vars = [
                ("item", self.ids[i as usize].as_str()),
                ("title", title.as_deref().unwrap_or("")),
                ("description", desc.as_deref().unwrap_or("")),
            ];
            out.push(
                sample(task, tpl, &vars)
                    .with("target", i)
                    .with("template", k),
            );
        }
        out
    }

    pub fn item2index(&self, rng: &mut ChaCha8Rng) -> Vec<ChatSample> {
        self.catalogue(Task::Item2index, rng)
    }

    pub fn index2item(&self, rng: &mut ChaCha8Rng) -> Vec<ChatSample> {
        self.catalogue(Task::Index2item, rng)
    }

    /// One sample per training example, in either direction (IDs -> title, titles -> ID).
    pub fn fusionseqrec(&self, examples: &[Example], rng: &mut ChaCha8Rng) -> Vec<ChatSample> {
        examples
            .iter()
            .map(|e| {
                let (k, tpl) = pick(rng, &[t::FUSION_IDS_TO_TITLE, t::FUSION_TITLES_TO_ID]);
                let h = history_ids(self.ids, &e.history);
                let titles = self.titles(&e.history);
                let title = title_of(self.ds, e.target);
                let vars = [
                    ("history", h.as_str()),
                    ("titles", titles.as_str()),
                    ("item", self.ids[e.target as usize].as_str()),
                    ("title", title.as_str()),
                ];
                sample(Task::Fusionseqrec, tpl, &vars)
                    .with("user", e.user)
                    .with("target", e.target)
                    .with("template", k)
            })
            .collect()
    }

    /// itemsearch: for each user with preference text, the last training example (the
    /// preference text is the user's own; supplying text written from validation or test
    /// items would leak them, and is the supplier's responsibility).
    pub fn itemsearch(
        &self,
        last_examples: &BTreeMap<u32, Example>,
        prefs: &BTreeMap<u32, String>,
        rng: &mut ChaCha8Rng,
    ) -> Vec<ChatSample> {
        let mut out = Vec::new();
        for (u, pref) in prefs {
            let Some(e) = last_examples.get(u) else {
                continue;
            };
            let (k, tpl) = pick(rng, &[t::ITEMSEARCH]);
            let h = history_ids(self.ids, &e.history);
            let vars = [
                ("history", h.as_str()),
                ("preference", pref.as_str()),
                ("item", self.ids[e.target as usize].as_str()),
            ];
            out.push(
                sample(Task::Itemsearch, tpl, &vars)
                    .with("user", *u)
                    .with("target", e.target)
                    .with("template", k),
            );
        }
        out
    }

    /// preferenceobtain: training history -> the user's preference text.
    pub fn preferenceobtain(
        &self,
        train: &[Vec<u32>],
        prefs: &BTreeMap<u32, String>,
        cap: usize,
        rng: &mut ChaCha8Rng,
    ) -> Vec<ChatSample> {
        let mut out = Vec::new();
        for (&u, pref) in prefs {
            let Some(seq) = train.get(u as usize).filter(|s| !s.is_empty()) else {
                continue;
            };
            let (k, tpl) = pick(rng, &[t::PREFERENCE]);
            let h = history_ids(self.ids, &seq[seq.len().saturating_sub(cap)..]);
            let vars = [("history", h.as_str()), ("preference", pref.as_str())];
            out.push(
                sample(Task::Preferenceobtain, tpl, &vars)
                    .with("user", u)
                    .with("template", k),
            );
        }
        out
    }
}
