//! Item indexing on synthetic data: embedder sanity, index invariants, determinism, writing.

use std::collections::BTreeSet;

use grrm_recsys::index::{ItemEmbedder, TfidfEmbedder};
use grrm_recsys::{build_index, index_folder, io, synth, IndexConfig, SynthConfig};

fn small() -> grrm_recsys::Dataset {
    synth(&SynthConfig {
        users: 400,
        items: 240,
        ..Default::default()
    })
    .unwrap()
}

fn cos(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| (*x * *y) as f64).sum();
    let na: f64 = a.iter().map(|x| (*x * *x) as f64).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x * *x) as f64).sum::<f64>().sqrt();
    dot / (na * nb).max(1e-12)
}

#[test]
fn tfidf_puts_same_subcategory_items_closer() {
    let ds = small();
    let texts: Vec<String> = ds
        .items
        .iter()
        .map(|m| grrm_recsys::index::text::fuse(m, &[], &Default::default()))
        .collect();
    let emb = TfidfEmbedder::default().embed(&texts).unwrap();
    assert_eq!(emb.len(), ds.n_items());
    let leaf = |i: usize| ds.items[i].categories.last().cloned();
    let (mut same, mut n_same, mut all, mut n_all) = (0.0, 0, 0.0, 0);
    for i in 0..ds.n_items() {
        for j in i + 1..ds.n_items() {
            let c = cos(&emb[i], &emb[j]);
            all += c;
            n_all += 1;
            if leaf(i).is_some() && leaf(i) == leaf(j) {
                same += c;
                n_same += 1;
            }
        }
    }
    let (same, all) = (same / n_same as f64, all / n_all as f64);
    assert!(n_same > 100);
    assert!(
        same > all + 0.2,
        "same-leaf cosine {same:.3} vs all pairs {all:.3}"
    );
}

#[test]
fn index_is_unique_deterministic_and_balanced() {
    let ds = small();
    let cfg = IndexConfig {
        codes: 16,
        ..Default::default()
    };
    let emb = TfidfEmbedder::default();
    let (ids, report) = build_index(&ds, &cfg, &emb).unwrap();
    let (ids2, report2) = build_index(&ds, &cfg, &emb).unwrap();
    assert_eq!(ids, ids2);
    assert_eq!(report, report2);
    let joined: BTreeSet<String> = ids.iter().map(|t| t.concat()).collect();
    assert_eq!(joined.len(), ds.n_items(), "IDs must be unique");
    let q = ds.n_items() / 16;
    for l in &report.levels {
        assert_eq!(l.codes, 16);
        assert!(l.min_cluster + 1 >= q && l.max_cluster <= q + 1, "{l:?}");
    }
    for t in &ids {
        assert!(t.len() == 4 || t.len() == 5);
        assert!(t[0].starts_with("<|a_") && t[3].starts_with("<|d_"));
        if t.len() == 5 {
            assert!(t[4].starts_with("<|e_"));
        }
    }
    let with_extra = ids.iter().filter(|t| t.len() == 5).count();
    assert!((with_extra as f64 / ds.n_items() as f64 - report.collision_rate).abs() < 1e-12);
    assert!(report.embedding.contains("tfidf") && report.embedding.contains("PPMI"));
    // A different seed gives a different index.
    let other = IndexConfig { seed: 7, ..cfg };
    assert_ne!(build_index(&ds, &other, &emb).unwrap().0, ids);
}

#[test]
fn codes_shrink_when_items_are_few_and_the_file_is_written() {
    let ds = small();
    let dir = tempfile::tempdir().unwrap();
    io::save(&ds, dir.path()).unwrap();
    let cfg = IndexConfig {
        levels: 2,
        codes: 10_000,
        collab: None,
        ..Default::default()
    };
    let report = index_folder(dir.path(), &cfg, &TfidfEmbedder::default()).unwrap();
    assert_eq!(report.levels[0].codes, ds.n_items());
    assert_eq!(report.collision_rate, 0.0);
    assert!(!report.embedding.contains("PPMI"));
    let back = io::load(dir.path()).unwrap();
    let index = back.index.unwrap();
    assert!(index.iter().all(|t| t.len() == 2));
    println!("{report}");
}
