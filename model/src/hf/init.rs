//! Random initialisation for tests and demos, as transformers' `_init_weights` does it:
//! matrices (embedding included) from N(0, initializer_range^2), RMSNorm weights one, biases zero.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::config::ModelConfig;
use super::weights::{HostTensor, TensorRole, Weights};

/// Draws all weights from a seeded ChaCha8 stream in checkpoint order (same seed, same weights,
/// on every platform).
pub fn init_random(config: &ModelConfig, seed: u64) -> Weights {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, config.initializer_range as f32)
        .expect("initializer_range is validated finite and positive");
    let result: Result<Weights, std::convert::Infallible> = Weights::build(config, |spec| {
        let n: usize = spec.shape.iter().product();
        let data = match spec.role {
            TensorRole::Matrix => (0..n).map(|_| normal.sample(&mut rng)).collect(),
            TensorRole::Norm => vec![1.0; n],
            TensorRole::Bias => vec![0.0; n],
        };
        Ok(HostTensor::new(spec.shape.clone(), data))
    });
    match result {
        Ok(w) => w,
        Err(never) => match never {},
    }
}
