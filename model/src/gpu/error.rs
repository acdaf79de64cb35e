use thiserror::Error;

/// Everything the GPU layer can report. Shape errors name the op and the shapes so a caller's bug
/// surfaces here instead of as a validation panic deep inside wgpu.
#[derive(Debug, Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found. Install a Vulkan driver for your GPU, or the CPU driver lavapipe: \
         `apt-get install mesa-vulkan-drivers` (Debian/Ubuntu; on bookworm prefer \
         `apt-get install -t bookworm-backports mesa-vulkan-drivers`), then check with `grrm devices`"
    )]
    NoAdapter,
    #[error("no adapter matches {selector:?}; available: {available}")]
    AdapterNotFound { selector: String, available: String },
    #[error("could not open device on adapter {adapter}: {reason}")]
    DeviceRequest { adapter: String, reason: String },
    #[error("{op}: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error(
        "{op}: tensor of {bytes} bytes exceeds this adapter's limit of {limit} bytes ({what})"
    )]
    TooLarge {
        op: &'static str,
        bytes: u64,
        limit: u64,
        what: &'static str,
    },
    #[error("{op}: needs adapter feature {feature}, which {adapter} lacks")]
    MissingFeature {
        op: &'static str,
        feature: &'static str,
        adapter: String,
    },
    #[error("GPU validation error: {0}")]
    Validation(String),
    #[error("GPU readback failed: {0}")]
    Readback(String),
}

impl GpuError {
    pub fn shape(op: &'static str, detail: impl Into<String>) -> Self {
        GpuError::Shape {
            op,
            detail: detail.into(),
        }
    }
}

pub type Result<T, E = GpuError> = std::result::Result<T, E>;
