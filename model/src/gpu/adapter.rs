//! Adapter discovery and selection (`--adapter NAME|INDEX` or `GRRM_ADAPTER`), and the report
//! printed by `grrm devices`.

use std::fmt;

use super::error::{GpuError, Result};

/// How the user picked an adapter: an index into `list_adapters()` or a case-insensitive
/// substring of the adapter's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdapterSelector {
    Auto,
    Index(usize),
    Name(String),
}

impl AdapterSelector {
    /// Parses `NAME|INDEX`; empty means automatic choice.
    pub fn parse(s: &str) -> Self {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("auto") {
            AdapterSelector::Auto
        } else if let Ok(i) = s.parse::<usize>() {
            AdapterSelector::Index(i)
        } else {
            AdapterSelector::Name(s.to_string())
        }
    }

    /// The explicit choice if given, else `GRRM_ADAPTER`, else automatic.
    pub fn from_arg_or_env(arg: Option<&str>) -> Self {
        match arg {
            Some(a) => Self::parse(a),
            None => std::env::var("GRRM_ADAPTER")
                .map(|v| Self::parse(&v))
                .unwrap_or(AdapterSelector::Auto),
        }
    }
}

/// What the kernels may rely on. Fast paths are chosen from this, never assumed.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    pub subgroups: bool,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    pub shader_f16: bool,
    pub cooperative_matrix: bool,
    pub cooperative_matrix_shapes: Vec<wgpu::CooperativeMatrixProperties>,
}

impl Capabilities {
    pub(crate) fn of(adapter: &wgpu::Adapter) -> Self {
        let f = adapter.features();
        let info = adapter.get_info();
        let coop = f.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
        Capabilities {
            subgroups: f.contains(wgpu::Features::SUBGROUP),
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
            shader_f16: f.contains(wgpu::Features::SHADER_F16),
            cooperative_matrix: coop,
            cooperative_matrix_shapes: if coop {
                adapter.cooperative_matrix_properties()
            } else {
                Vec::new()
            },
        }
    }

    /// True when a 16x16x16 f16-in/f32-accumulate cooperative matrix is available.
    pub fn has_coop_16x16_f16_f32(&self) -> bool {
        self.cooperative_matrix_shapes.iter().any(|p| {
            p.m_size == 16
                && p.n_size == 16
                && p.k_size == 16
                && p.ab_type == wgpu::CooperativeScalarType::F16
                && p.cr_type == wgpu::CooperativeScalarType::F32
        })
    }

    /// Subgroup size is fixed at exactly `n` (some kernels broadcast across a known width).
    pub fn fixed_subgroup_size(&self) -> Option<u32> {
        (self.subgroups && self.subgroup_min_size == self.subgroup_max_size)
            .then_some(self.subgroup_min_size)
    }
}

/// One adapter as `grrm devices` prints it.
#[derive(Clone, Debug)]
pub struct AdapterReport {
    pub index: usize,
    pub info: wgpu::AdapterInfo,
    pub caps: Capabilities,
    pub limits: wgpu::Limits,
}

impl fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.info;
        let c = &self.caps;
        let l = &self.limits;
        writeln!(f, "[{}] {}", self.index, i.name)?;
        writeln!(
            f,
            "    backend {:?}, type {:?}, driver {} {}",
            i.backend, i.device_type, i.driver, i.driver_info
        )?;
        writeln!(
            f,
            "    features: subgroups {} (size {}..{}), shader-f16 {}, cooperative-matrix {}",
            yes(c.subgroups),
            c.subgroup_min_size,
            c.subgroup_max_size,
            yes(c.shader_f16),
            yes(c.cooperative_matrix)
        )?;
        for p in &c.cooperative_matrix_shapes {
            writeln!(
                f,
                "      coop {}x{}x{} {:?} x {:?} -> {:?}{}",
                p.m_size,
                p.n_size,
                p.k_size,
                p.ab_type,
                p.ab_type,
                p.cr_type,
                if p.saturating_accumulation {
                    " (saturating)"
                } else {
                    ""
                }
            )?;
        }
        writeln!(
            f,
            "    limits: storage binding {} MiB, buffer {} MiB, workgroup storage {} KiB, \
             invocations/workgroup {}, workgroups/dim {}, storage buffers/stage {}",
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_compute_workgroup_storage_size >> 10,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroups_per_dimension,
            l.max_storage_buffers_per_shader_stage
        )
    }
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

pub(crate) fn instance() -> wgpu::Instance {
    // WGPU_BACKEND etc. are honoured, as wgpu users expect.
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

pub(crate) fn enumerate(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    // Stable order: best device kinds first, so index 0 is what `Auto` picks.
    adapters.sort_by_key(|a| rank(&a.get_info()));
    adapters
}

fn rank(info: &wgpu::AdapterInfo) -> (u8, String) {
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    };
    (kind * 2 + backend, info.name.clone())
}

/// Every adapter on this machine, in the order selection indexes them.
pub fn list_adapters() -> Vec<AdapterReport> {
    enumerate(&instance())
        .iter()
        .enumerate()
        .map(|(index, a)| AdapterReport {
            index,
            info: a.get_info(),
            caps: Capabilities::of(a),
            limits: a.limits(),
        })
        .collect()
}

pub(crate) fn select(adapters: Vec<wgpu::Adapter>, sel: &AdapterSelector) -> Result<wgpu::Adapter> {
    if adapters.is_empty() {
        return Err(GpuError::NoAdapter);
    }
    let names = || {
        adapters
            .iter()
            .enumerate()
            .map(|(i, a)| format!("[{i}] {}", a.get_info().name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let pos = match sel {
        AdapterSelector::Auto => Some(0),
        AdapterSelector::Index(i) => (*i < adapters.len()).then_some(*i),
        AdapterSelector::Name(n) => {
            let n = n.to_lowercase();
            adapters
                .iter()
                .position(|a| a.get_info().name.to_lowercase().contains(&n))
        }
    };
    match pos {
        Some(p) => Ok(adapters.into_iter().nth(p).expect("index checked")),
        None => Err(GpuError::AdapterNotFound {
            selector: match sel {
                AdapterSelector::Index(i) => i.to_string(),
                AdapterSelector::Name(n) => n.clone(),
                AdapterSelector::Auto => "auto".into(),
            },
            available: names(),
        }),
    }
}
