//! Index the synthetic default with the offline embedder and print the index report.

use grrm_recsys::{build_index, synth, IndexConfig, SynthConfig, TfidfEmbedder};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let ds = synth(&SynthConfig::default())?;
    let (_, report) = build_index(&ds, &IndexConfig::default(), &TfidfEmbedder::default())?;
    println!("{report}");
    Ok(())
}
