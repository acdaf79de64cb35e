//! Generate the default synthetic dataset and print its statistics and baseline metrics:
//! `cargo run -p grrm-recsys --release --example synth_report [SEED]`.

fn main() {
    let mut cfg = grrm_recsys::SynthConfig::default();
    if let Some(seed) = std::env::args().nth(1) {
        cfg.seed = seed.parse().expect("SEED must be an integer");
    }
    let (ds, report) = grrm_recsys::synth_with_report(&cfg).expect("synth");
    println!("{}", serde_json::to_string(&report).unwrap());
    println!("{}", grrm_recsys::stats(&ds));
    println!(
        "{}",
        grrm_recsys::evaluate_baselines(&ds).expect("baselines")
    );
}
