//! A small synthetic dataset with semantic IDs, shared by the task/prompt tests.

use grrm_recsys::{build_index, synth, Dataset, IndexConfig, SynthConfig, TfidfEmbedder};

pub fn indexed(users: usize) -> Dataset {
    let mut ds = synth(&SynthConfig {
        users,
        items: 200,
        ..Default::default()
    })
    .unwrap();
    let cfg = IndexConfig {
        codes: 8,
        ..Default::default()
    };
    let (ids, _) = build_index(&ds, &cfg, &TfidfEmbedder::default()).unwrap();
    ds.index = Some(ids);
    ds
}
