//! Element types of checkpoint files and their conversion to and from f32 host vectors.
//! bf16 -> f32 is exact (the bf16 bits are the high half of the f32); f32 -> bf16 rounds to
//! nearest even, as `half` and PyTorch do.

use half::{bf16, f16};
use safetensors::Dtype;

/// The element type a checkpoint is stored in (`torch_dtype` / `dtype` in config.json).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageDType {
    F32,
    F16,
    BF16,
}

impl StorageDType {
    /// The name transformers writes in config.json.
    pub fn hf_name(self) -> &'static str {
        match self {
            StorageDType::F32 => "float32",
            StorageDType::F16 => "float16",
            StorageDType::BF16 => "bfloat16",
        }
    }

    /// Parses the config.json spelling (`bfloat16`, also `bf16`, `torch.bfloat16`, ...).
    pub fn from_hf_name(name: &str) -> Option<Self> {
        let name = name.strip_prefix("torch.").unwrap_or(name);
        match name {
            "float32" | "f32" | "float" => Some(StorageDType::F32),
            "float16" | "f16" | "half" => Some(StorageDType::F16),
            "bfloat16" | "bf16" => Some(StorageDType::BF16),
            _ => None,
        }
    }

    pub fn safetensors_dtype(self) -> Dtype {
        match self {
            StorageDType::F32 => Dtype::F32,
            StorageDType::F16 => Dtype::F16,
            StorageDType::BF16 => Dtype::BF16,
        }
    }

    pub fn size_in_bytes(self) -> usize {
        match self {
            StorageDType::F32 => 4,
            StorageDType::F16 | StorageDType::BF16 => 2,
        }
    }
}

/// Decodes little-endian tensor bytes into f32. Returns `None` for dtypes that are not floats
/// (the caller reports them with the tensor's name). The byte length is checked by the caller.
pub fn bytes_to_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    let out = match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
            .collect(),
        _ => return None,
    };
    Some(out)
}

/// Encodes f32 values as little-endian bytes of `dtype`.
pub fn f32_to_bytes(dtype: StorageDType, values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * dtype.size_in_bytes());
    match dtype {
        StorageDType::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        StorageDType::F16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&f16::from_f32(*v).to_bits().to_le_bytes())),
        StorageDType::BF16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&bf16::from_f32(*v).to_bits().to_le_bytes())),
    }
    out
}
