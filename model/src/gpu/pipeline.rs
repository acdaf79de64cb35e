//! Kernels are WGSL files under `shaders/`, embedded at build time, compiled once per
//! (file, entry point, override constants) and cached for the life of the device.
//!
//! Every kernel follows one binding convention, so launch code stays uniform:
//! `@group(0) @binding(0)` is a uniform block of parameters (at most `PARAM_SLOT` bytes, bound
//! with a dynamic offset into one arena per submission), and bindings 1..=n are storage buffers
//! in the order of `KernelEntry::bindings`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::error::{GpuError, Result};

/// Bytes reserved per dispatch for its parameter block.
pub const PARAM_SLOT: u64 = 256;

/// One WGSL file.
#[derive(Debug)]
pub struct ShaderSource {
    pub name: &'static str,
    pub wgsl: &'static str,
    /// Compiled without wgpu's runtime checks (index clamping of workgroup and storage arrays,
    /// forced loop bounding). Only for files whose every access is proven in bounds, for every
    /// launch the launch code makes, and whose loops all terminate: the proof belongs in the
    /// file's header comment. Set with `shader!(trusted "file.wgsl")`.
    pub trusted: bool,
}

/// Embeds `shaders/<file>` from the workspace root; `shader!(trusted "file.wgsl")` marks it
/// for compilation without runtime checks (see `ShaderSource::trusted`).
/// `shader!("file.wgsl" after "prelude.wgsl", ..)` (or `trusted "file.wgsl" after ..`)
/// compiles the preludes, in order, in front of the file: WGSL has no includes, and a prelude
/// lets several passes share declarations while each declares only its own workgroup memory.
#[macro_export]
macro_rules! shader {
    ($name:literal after $($pre:literal),+) => {
        $crate::gpu::ShaderSource {
            name: $name,
            wgsl: concat!(
                $(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../shaders/", $pre)), "\n",)+
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../shaders/", $name))
            ),
            trusted: false,
        }
    };
    (trusted $name:literal after $($pre:literal),+) => {
        $crate::gpu::ShaderSource {
            name: $name,
            wgsl: concat!(
                $(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../shaders/", $pre)), "\n",)+
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../shaders/", $name))
            ),
            trusted: true,
        }
    };
    ($name:literal) => {
        $crate::gpu::ShaderSource {
            name: $name,
            wgsl: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../shaders/", $name)),
            trusted: false,
        }
    };
    (trusted $name:literal) => {
        $crate::gpu::ShaderSource {
            name: $name,
            wgsl: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../shaders/", $name)),
            trusted: true,
        }
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    Read,
    ReadWrite,
}

/// One entry point of a shader with the access mode of each storage binding.
#[derive(Debug)]
pub struct KernelEntry {
    pub source: &'static ShaderSource,
    pub entry: &'static str,
    pub bindings: &'static [Access],
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    shader: &'static str,
    trusted: bool,
    entry: &'static str,
    constants: Vec<(String, u64)>,
}

pub(crate) struct Compiled {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

#[derive(Default)]
pub(crate) struct PipelineCache {
    map: Mutex<HashMap<Key, Arc<Compiled>>>,
}

impl PipelineCache {
    pub fn get(
        &self,
        device: &wgpu::Device,
        k: &KernelEntry,
        constants: &[(&str, f64)],
    ) -> Result<Arc<Compiled>> {
        let key = Key {
            shader: k.source.name,
            trusted: k.source.trusted,
            entry: k.entry,
            constants: constants
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_bits()))
                .collect(),
        };
        if let Some(c) = self.map.lock().expect("pipeline cache").get(&key) {
            return Ok(c.clone());
        }
        let compiled = Arc::new(compile(device, k, constants)?);
        self.map
            .lock()
            .expect("pipeline cache")
            .insert(key, compiled.clone());
        Ok(compiled)
    }

    pub fn len(&self) -> usize {
        self.map.lock().expect("pipeline cache").len()
    }
}

fn compile(device: &wgpu::Device, k: &KernelEntry, constants: &[(&str, f64)]) -> Result<Compiled> {
    let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let label = format!("{}::{}", k.source.name, k.entry);
    let desc = wgpu::ShaderModuleDescriptor {
        label: Some(&label),
        source: wgpu::ShaderSource::Wgsl(k.source.wgsl.into()),
    };
    let module = if k.source.trusted {
        // SAFETY: `trusted` sources carry a proof that every access is in bounds and every
        // loop terminates for all launches their launch code makes (see `ShaderSource`).
        unsafe { device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked()) }
    } else {
        device.create_shader_module(desc)
    };
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: true,
            min_binding_size: None,
        },
        count: None,
    }];
    for (i, a) in k.bindings.iter().enumerate() {
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: i as u32 + 1,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage {
                    read_only: *a == Access::Read,
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
    }
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(&label),
        entries: &entries,
    });
    let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(&label),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(&label),
        layout: Some(&pl),
        module: &module,
        entry_point: Some(k.entry),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            zero_initialize_workgroup_memory: false,
        },
        cache: None,
    });
    if let Some(e) = pollster::block_on(scope.pop()) {
        return Err(GpuError::Validation(format!(
            "compiling kernel {label}: {e}"
        )));
    }
    Ok(Compiled { pipeline, layout })
}
