//! The offline rationale: steps 1-3 of a reasoning sample written from the history's own
//! evidence — categories, brands, prices and recency — with varied phrasing (seeded), never
//! from the target. Also the inferred intent used to denoise the rewritten history.
//!
//! Intent: the subcategory (last category) of the most recent item, plus the most frequent
//! subcategory of the last five items, plus the most recent item's brand.
//! Denoising rule: keep the history items whose subcategory is in the intent or whose brand is
//! the intent's brand; items with no categories are kept (no evidence to drop them); the most
//! recent item always matches, so at least one item stays.

use std::collections::{BTreeMap, BTreeSet};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::title_of;
use crate::dataset::{Dataset, ItemMeta};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Intent {
    pub leaves: BTreeSet<String>,
    pub brand: Option<String>,
}

fn leaf(m: &ItemMeta) -> Option<&str> {
    m.categories.last().map(String::as_str)
}

/// (name, count) sorted by count descending, then name.
fn ranked<'a>(xs: impl Iterator<Item = &'a str>) -> Vec<(&'a str, usize)> {
    let mut m: BTreeMap<&str, usize> = BTreeMap::new();
    xs.for_each(|x| *m.entry(x).or_insert(0) += 1);
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v
}

pub fn intent(ds: &Dataset, history: &[u32]) -> Intent {
    let meta = |i: u32| &ds.items[i as usize];
    let mut leaves = BTreeSet::new();
    let Some(&last) = history.last() else {
        return Intent::default();
    };
    if let Some(l) = leaf(meta(last)) {
        leaves.insert(l.to_string());
    }
    let recent = &history[history.len().saturating_sub(5)..];
    if let Some((l, _)) = ranked(recent.iter().filter_map(|&i| leaf(meta(i)))).first() {
        leaves.insert(l.to_string());
    }
    Intent {
        leaves,
        brand: meta(last).brand.clone(),
    }
}

/// The history without the items unrelated to `intent` (rule in the module docs).
pub fn denoise(ds: &Dataset, history: &[u32], intent: &Intent) -> Vec<u32> {
    let kept: Vec<u32> = history
        .iter()
        .copied()
        .filter(|&i| {
            let m = &ds.items[i as usize];
            match leaf(m) {
                None => true,
                Some(l) => {
                    intent.leaves.contains(l) || (m.brand.is_some() && m.brand == intent.brand)
                }
            }
        })
        .collect();
    if kept.is_empty() {
        history.last().copied().into_iter().collect()
    } else {
        kept
    }
}

fn choose<'a>(rng: &mut ChaCha8Rng, xs: &[&'a str]) -> &'a str {
    xs[rng.random_range(0..xs.len())]
}

fn money(p: f64) -> String {
    format!("${p:.2}")
}

fn list(xs: &[String]) -> String {
    match xs {
        [] => String::new(),
        [a] => a.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Steps 1-3 (without the `<think>` tags) for a user with `history`; items equal to the target
/// (same index or same title) are never named, and with `name_items` false no item title is
/// (the fallback when a history title happens to contain the target's).
pub fn offline_rationale(
    ds: &Dataset,
    history: &[u32],
    target: u32,
    name_items: bool,
    rng: &mut ChaCha8Rng,
) -> String {
    let meta = |i: u32| &ds.items[i as usize];
    let target_title = title_of(ds, target).to_lowercase();
    let nameable =
        |i: u32| name_items && i != target && title_of(ds, i).to_lowercase() != target_title;
    let n = history.len();
    let tops = ranked(
        history
            .iter()
            .filter_map(|&i| meta(i).categories.first().map(String::as_str)),
    );
    let leaves = ranked(history.iter().filter_map(|&i| leaf(meta(i))));
    let brands = ranked(history.iter().filter_map(|&i| meta(i).brand.as_deref()));
    let mut prices: Vec<f64> = history.iter().filter_map(|&i| meta(i).price).collect();
    prices.sort_by(f64::total_cmp);
    let recent: Vec<String> = history
        .iter()
        .rev()
        .copied()
        .filter(|&i| nameable(i))
        .take(3)
        .map(|i| format!("\"{}\"", title_of(ds, i)))
        .collect();

    // Step 1: behavioural evidence.
    let mut s1 = format!(
        "{} {n} item{}.",
        choose(
            rng,
            &[
                "The user has bought",
                "The history holds",
                "So far the user has purchased"
            ]
        ),
        if n == 1 { "" } else { "s" }
    );
    if let Some((top, c)) = tops.first() {
        s1 += &format!(
            " {} {top} ({c} of {n})",
            choose(
                rng,
                &[
                    "Most of them belong to",
                    "The dominant category is",
                    "Purchases concentrate in"
                ]
            )
        );
        if let Some((top2, c2)) = tops.get(1) {
            s1 += &format!(", followed by {top2} ({c2})");
        }
        s1 += ".";
    }
    if let Some((l, c)) = leaves.first() {
        s1 += &format!(
            " {l} {} {c} time{}.",
            choose(rng, &["appears", "comes up", "shows up"]),
            if *c == 1 { "" } else { "s" }
        );
    }
    if !recent.is_empty() {
        s1 += &format!(
            " {} {}.",
            choose(
                rng,
                &[
                    "The most recent purchases are",
                    "Lately the user bought",
                    "Recent items include"
                ]
            ),
            list(&recent)
        );
    }

    // Step 2: latent preferences.
    let mut s2 = match brands.first() {
        Some((b, c)) if *c >= 2 => format!(
            "{} {b} ({c} of {n} purchases).",
            choose(
                rng,
                &[
                    "The user shows loyalty to",
                    "A favourite brand stands out:",
                    "The user keeps returning to"
                ]
            )
        ),
        Some(_) => choose(
            rng,
            &[
                "The user does not stick to one brand.",
                "No single brand dominates the history.",
            ],
        )
        .to_string(),
        None => "Brands are not known for these items.".to_string(),
    };
    if let (Some(lo), Some(hi)) = (prices.first(), prices.last()) {
        let med = prices[prices.len() / 2];
        let band = if med < 30.0 {
            "inexpensive items and accessories"
        } else if med < 150.0 {
            "mid-priced products"
        } else {
            "higher-end products"
        };
        s2 += &format!(
            " Prices range from {} to {} with a median of {}, {} {band}.",
            money(*lo),
            money(*hi),
            money(med),
            choose(
                rng,
                &[
                    "which points to",
                    "suggesting a taste for",
                    "so the user is comfortable with"
                ]
            )
        );
    }
    if leaves.len() > 1 {
        let top_leaves: Vec<String> = leaves.iter().take(3).map(|(l, _)| l.to_string()).collect();
        s2 += &format!(" Interests span {}.", list(&top_leaves));
    }

    // Step 3: purchase intent, from the most recent item.
    let it = intent(ds, history);
    let last = *history.last().expect("reasoning needs a non-empty history");
    let last_leaf = leaf(meta(last)).unwrap_or("the same area");
    let last_name = if nameable(last) {
        format!("\"{}\"", title_of(ds, last))
    } else {
        "an item".to_string()
    };
    let mut s3 = format!(
        "{} {last_name} in {last_leaf}, {}",
        choose(
            rng,
            &[
                "The latest purchase is",
                "Most recently the user bought",
                "The last item bought is"
            ]
        ),
        choose(
            rng,
            &[
                "so the user is likely to keep shopping in this area",
                "which suggests the next need is related to it",
                "and follow-up purchases usually stay close to it",
            ]
        )
    );
    let other: Vec<String> = it
        .leaves
        .iter()
        .filter(|l| *l != last_leaf)
        .cloned()
        .collect();
    if !other.is_empty() {
        s3 += &format!(", with {} as a second candidate area", list(&other));
    }
    if let Some(b) = &it.brand {
        s3 += &format!("; a product from {b} or a compatible brand would fit");
    }
    s3 += ".";
    format!("Step 1: {s1}\nStep 2: {s2}\nStep 3: {s3}")
}

/// A one-line-per-step rationale from the same evidence (top category, brand loyalty or price
/// band, the most recent item's subcategory and brand), naming no item: a few dozen tokens
/// instead of a few hundred, for small models and CPU runs where every generated token counts.
pub fn brief_rationale(ds: &Dataset, history: &[u32]) -> String {
    let meta = |i: u32| &ds.items[i as usize];
    let n = history.len();
    let tops = ranked(
        history
            .iter()
            .filter_map(|&i| meta(i).categories.first().map(String::as_str)),
    );
    let s1 = match tops.first() {
        Some((top, c)) => format!("{n} items, mostly {top} ({c})."),
        None => format!("{n} items of unknown category."),
    };
    let brands = ranked(history.iter().filter_map(|&i| meta(i).brand.as_deref()));
    let mut prices: Vec<f64> = history.iter().filter_map(|&i| meta(i).price).collect();
    prices.sort_by(f64::total_cmp);
    let mut s2 = match brands.first() {
        Some((b, c)) if *c >= 2 => format!("Loyal to {b}."),
        _ => "No favourite brand.".to_string(),
    };
    if let Some(med) = prices.get(prices.len() / 2) {
        s2 += &format!(" Median price {}.", money(*med));
    }
    let it = intent(ds, history);
    let mut s3 = format!(
        "Next need: {}",
        list(&it.leaves.iter().cloned().collect::<Vec<_>>())
    );
    if let Some(b) = &it.brand {
        s3 += &format!(", maybe {b}");
    }
    s3 += ".";
    format!("Step 1: {s1}\nStep 2: {s2}\nStep 3: {s3}")
}
