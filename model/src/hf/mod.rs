//! Hugging Face model folders for the Qwen3 family (Qwen3, Qwen2, Llama), on the CPU:
//! `config.json` ([`ModelConfig`]), safetensors weights ([`Weights`], single or sharded,
//! bf16/f16/f32), random initialisation, vocabulary growth, and atomic saving in the layout
//! transformers and vLLM load. The GPU model uploads [`Weights`]; nothing here touches wgpu.
//!
//! ```text
//! arch.rs        Arch and its switches
//! config.rs      config.json parse / validate / write
//! builder.rs     ConfigBuilder for tiny models
//! dtype.rs       bf16/f16/f32 <-> f32
//! weights.rs     Weights, Layer, Attention, Mlp, Linear, HostTensor; tensor_specs
//! load.rs        model.safetensors / model.safetensors.index.json readers
//! save.rs        safetensors writer (sharding, index.json)
//! checkpoint.rs  Checkpoint: a whole folder, loaded or saved atomically
//! init.rs        init_random
//! vocab.rs       extend_vocab (mean-initialised new rows)
//! ```

mod arch;
mod builder;
mod checkpoint;
mod config;
mod dtype;
pub(crate) mod error;
mod init;
mod load;
pub(crate) mod save;
mod vocab;
mod weights;

pub use arch::Arch;
pub use builder::ConfigBuilder;
pub use checkpoint::{save_pretrained, Checkpoint, CONFIG_FILE};
pub use config::ModelConfig;
pub use dtype::{bytes_to_f32, f32_to_bytes, StorageDType};
pub use error::HfError;
pub use init::init_random;
pub use load::{
    load_sharded, load_single, load_weights, weights_from_bytes, ShardIndex, INDEX_FILE,
    SINGLE_FILE,
};
pub use save::{weights_to_bytes, write_weights, SaveOptions};
pub use vocab::{extend_vocab, row_mean, VocabExtension, VocabGrowth};
pub use weights::{
    tensor_specs, Attention, HostTensor, Layer, Linear, Mlp, TensorRole, TensorSpec, Weights,
};
