//! The synthetic catalogue: brands with a home category and a price level, items spread over
//! the category tree's leaves, titles, prices, descriptions, a Zipf-like popularity, and
//! complement links from main products to accessories of the same leaf.

use std::collections::HashSet;

use super::rng::Rng;
use super::words::{self, TREE};
use crate::dataset::ItemMeta;

/// Brand `b`'s home top category is `b / BRANDS_PER_TOP`.
pub struct Brand {
    pub name: String,
    /// Index into `words::PRICE_LEVELS`.
    pub level: usize,
}

pub struct Leaf {
    pub top: usize,
    pub sub: usize,
    pub items: Vec<usize>,
}

pub struct Item {
    pub leaf: usize,
    pub accessory: bool,
    pub brand: usize,
    pub noun: &'static str,
    pub meta: ItemMeta,
    /// Price level relative to the noun's typical price (0 budget, 1 mid, 2 premium).
    pub level: usize,
    pub popularity: f64,
    /// For a main product: accessories that go with it.
    pub complements: Vec<usize>,
}

pub struct Catalogue {
    pub brands: Vec<Brand>,
    pub leaves: Vec<Leaf>,
    pub items: Vec<Item>,
}

pub const BRANDS_PER_TOP: usize = 6;
const ACCESSORY_SHARE: f64 = 0.35;
const ZIPF_EXPONENT: f64 = 0.8;

fn brands(rng: &mut Rng) -> Vec<Brand> {
    let mut names: Vec<String> = words::BRAND_HEADS
        .iter()
        .flat_map(|h| words::BRAND_TAILS.iter().map(move |t| format!("{h}{t}")))
        .collect();
    rng.shuffle(&mut names);
    let mut out = Vec::new();
    for _top in 0..TREE.len() {
        for _ in 0..BRANDS_PER_TOP {
            out.push(Brand {
                name: names.pop().expect("enough brand names"),
                level: rng.below(words::PRICE_LEVELS.len()),
            });
        }
    }
    out
}

/// Round to a shop price: x.99 above a dollar.
fn shop_price(p: f64) -> f64 {
    if p >= 1.0 {
        p.floor() + 0.99
    } else {
        (p * 100.0).round().max(1.0) / 100.0
    }
}

pub fn build(rng: &mut Rng, n_items: usize) -> Catalogue {
    let brands = brands(rng);
    let mut leaves: Vec<Leaf> = TREE
        .iter()
        .enumerate()
        .flat_map(|(t, (_, subs))| (0..subs.len()).map(move |s| (t, s)))
        .map(|(top, sub)| Leaf {
            top,
            sub,
            items: Vec::new(),
        })
        .collect();
    // Even spread over leaves, the remainder to a random subset.
    let mut order: Vec<usize> = (0..leaves.len()).collect();
    rng.shuffle(&mut order);
    let mut per_leaf = vec![n_items / leaves.len(); leaves.len()];
    for &l in order.iter().take(n_items % leaves.len()) {
        per_leaf[l] += 1;
    }

    let mut items: Vec<Item> = Vec::with_capacity(n_items);
    let mut titles = HashSet::new();
    for (l, &count) in per_leaf.iter().enumerate() {
        let (top, sub) = (leaves[l].top, leaves[l].sub);
        let (top_name, subs) = TREE[top];
        let (leaf_name, mains, accessories) = subs[sub];
        let n_acc = if count >= 2 {
            ((count as f64 * ACCESSORY_SHARE).round() as usize).clamp(1, count - 1)
        } else {
            0
        };
        for k in 0..count {
            let accessory = k >= count - n_acc;
            let &(noun, base) = rng.pick(if accessory { accessories } else { mains });
            let brand = if rng.chance(0.85) {
                top * BRANDS_PER_TOP + rng.below(BRANDS_PER_TOP)
            } else {
                rng.below(brands.len())
            };
            let b = &brands[brand];
            let adj = *rng.pick(words::ADJECTIVES);
            let mut title = format!("{} {adj} {noun}", b.name);
            if rng.chance(0.5) || titles.contains(&title) {
                title = format!("{title}, {}", rng.pick(words::VARIANTS));
            }
            let mut n = 2;
            while titles.contains(&title) {
                title = format!("{} {adj} {noun} {n}", b.name);
                n += 1;
            }
            titles.insert(title.clone());
            let level = b.level;
            let price =
                shop_price(base * words::PRICE_LEVELS[level].1 * (0.2 * rng.normal()).exp());
            let description = format!(
                "{adj} {} by {} for {} ({top_name}). {} {}",
                noun.to_lowercase(),
                b.name,
                leaf_name.to_lowercase(),
                words::LEVEL_PHRASES[level],
                rng.pick(words::FEATURES)
            );
            leaves[l].items.push(items.len());
            items.push(Item {
                leaf: l,
                accessory,
                brand,
                noun,
                meta: ItemMeta {
                    title: Some(title),
                    description: Some(description),
                    brand: Some(b.name.clone()),
                    categories: vec![top_name.to_string(), leaf_name.to_string()],
                    price: Some(price),
                },
                level,
                popularity: 0.0,
                complements: Vec::new(),
            });
        }
    }

    // Zipf-like popularity over a random order of the items.
    let mut ranks: Vec<usize> = (0..items.len()).collect();
    rng.shuffle(&mut ranks);
    for (r, &i) in ranks.iter().enumerate() {
        items[i].popularity = 1.0 / ((r + 1) as f64).powf(ZIPF_EXPONENT);
    }

    // Each main product gets 1-3 accessories of its leaf, a same-brand one first if any.
    for leaf in &leaves {
        let accs: Vec<usize> = leaf
            .items
            .iter()
            .copied()
            .filter(|&i| items[i].accessory)
            .collect();
        if accs.is_empty() {
            continue;
        }
        let mains: Vec<usize> = leaf
            .items
            .iter()
            .copied()
            .filter(|&i| !items[i].accessory)
            .collect();
        for m in mains {
            let want = rng.range(1, 3).min(accs.len());
            let mut pool = accs.clone();
            rng.shuffle(&mut pool);
            let brand = items[m].brand;
            pool.sort_by_key(|&a| items[a].brand != brand); // stable: same brand first
            items[m].complements = pool[..want].to_vec();
        }
    }
    Catalogue {
        brands,
        leaves,
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_shape() {
        let c = build(&mut Rng::new(1), 600);
        assert_eq!(c.items.len(), 600);
        assert_eq!(c.brands.len(), TREE.len() * BRANDS_PER_TOP);
        let titles: HashSet<_> = c.items.iter().map(|i| i.meta.title.clone()).collect();
        assert_eq!(titles.len(), 600, "titles are unique");
        for it in &c.items {
            assert!(it.meta.price.unwrap() > 0.0);
            assert_eq!(it.meta.categories.len(), 2);
            for &a in &it.complements {
                assert!(c.items[a].accessory && c.items[a].leaf == it.leaf);
            }
            assert!(!it.accessory || it.complements.is_empty());
        }
        let mains_with = c
            .items
            .iter()
            .filter(|i| !i.accessory && !i.complements.is_empty())
            .count();
        let mains = c.items.iter().filter(|i| !i.accessory).count();
        assert_eq!(mains_with, mains);
        let home = c
            .items
            .iter()
            .filter(|i| i.brand / BRANDS_PER_TOP == c.leaves[i.leaf].top)
            .count();
        assert!(
            home as f64 / 600.0 > 0.8,
            "most items are made by a brand of their category"
        );
        assert!(
            (c.items.iter().filter(|i| i.accessory).count() as f64 / 600.0 - ACCESSORY_SHARE).abs()
                < 0.05
        );
    }
}
