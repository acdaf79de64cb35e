//! Weight publication. The learner copies its parameters into a published model on its own
//! device with buffer-to-buffer copies (one recorder copy per tensor, one submit: nothing read
//! back to the host), and rollouts and the evaluator read that model in place. A published model
//! is immutable while anyone holds it, so a rollout of step k+1 can sample from version k while
//! the learner already trains; retired models nobody holds are reused for later versions. Only
//! a consumer on another device pulls the weights through the host, once per version.

use std::sync::{Arc, Mutex, RwLock};

use anyhow::{anyhow, bail, Result};
use grrm_model::hf::Weights;
use grrm_model::transformer::{Params, Transformer};
use grrm_model::{GpuContext, Recorder};

use crate::srpo::pieces::upload_into;

/// Unused retired models kept for reuse (each is a full copy of the model on the device).
const SPARES: usize = 1;

/// One published policy version.
pub struct Snapshot {
    pub version: u64,
    /// On the learner's device; its parameters are the version's weights.
    pub model: Transformer,
    /// The weights on the host, made on the first request of a consumer on another device.
    host: Mutex<Option<Arc<Weights>>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Snapshot(version {})", self.version)
    }
}

impl Snapshot {
    /// Whether `ctx` is the device this snapshot lives on (then it can be read in place).
    pub fn on_device(&self, ctx: &GpuContext) -> bool {
        same_device(self.model.ctx(), ctx)
    }

    /// The weights on the host (`layout` gives names and shapes), read back on the first
    /// request only; returns them with the bytes read back by this call.
    pub fn host_weights(&self, layout: &Weights) -> Result<(Arc<Weights>, u64)> {
        let mut host = self.host.lock().expect("host weights lock");
        if let Some(w) = &*host {
            return Ok((w.clone(), 0));
        }
        let w = Arc::new(self.model.params.download(layout)?);
        *host = Some(w.clone());
        let read = self
            .model
            .params
            .tensors()
            .iter()
            .map(|t| t.size_bytes())
            .sum();
        Ok((w, read))
    }
}

/// The published versions: the current one plus retired ones that may still be in use.
#[derive(Default)]
pub struct WeightBank {
    current: RwLock<Option<Arc<Snapshot>>>,
    retired: Mutex<Vec<Arc<Snapshot>>>,
}

impl WeightBank {
    /// Publishes `params` (the learner's) as `version`; returns the bytes copied on the device.
    /// `alloc` makes a new model on the learner's device when no retired one is free.
    pub fn publish(
        &self,
        version: u64,
        params: &Params,
        alloc: impl FnOnce() -> Result<Transformer>,
    ) -> Result<u64> {
        let mut snap = match self.take_spare() {
            Some(s) => s,
            None => Snapshot {
                version,
                model: alloc()?,
                host: Mutex::new(None),
            },
        };
        let bytes = copy_params(params, &snap.model.params)?;
        snap.version = version;
        *snap.host.get_mut().expect("host weights lock") = None;
        let old = self
            .current
            .write()
            .expect("published lock")
            .replace(Arc::new(snap));
        let mut retired = self.retired.lock().expect("retired lock");
        retired.extend(old);
        // Free unused retired models beyond the spares (the newest retired are kept).
        let mut unused = 0;
        for i in (0..retired.len()).rev() {
            if Arc::strong_count(&retired[i]) == 1 {
                unused += 1;
                if unused > SPARES {
                    retired.remove(i);
                }
            }
        }
        Ok(bytes)
    }

    /// A retired model nobody holds any more (only this list could hand out clones of it).
    fn take_spare(&self) -> Option<Snapshot> {
        let mut retired = self.retired.lock().expect("retired lock");
        let i = retired.iter().position(|s| Arc::strong_count(s) == 1)?;
        Arc::try_unwrap(retired.remove(i)).ok()
    }

    /// The newest published version.
    pub fn current(&self) -> Result<Arc<Snapshot>> {
        self.current
            .read()
            .expect("published lock")
            .clone()
            .ok_or_else(|| anyhow!("no weights published yet"))
    }

    /// Writes `snap`'s weights into `model` on another device through the host; returns the
    /// bytes read back (0 when an earlier consumer already fetched this version).
    pub fn pull_through_host(
        &self,
        snap: &Snapshot,
        layout: &Weights,
        model: &Transformer,
    ) -> Result<u64> {
        let (w, read) = snap.host_weights(layout)?;
        upload_into(&model.params, &w)?;
        Ok(read)
    }
}

/// Whether two contexts share one opened device. Contexts share it by reference (clones of one
/// `GpuContext`); wgpu's own `Device` equality compares per-instance ids, which collide across
/// two openings of an adapter.
pub fn same_device(a: &GpuContext, b: &GpuContext) -> bool {
    std::ptr::eq(a.device(), b.device())
}

/// Records one copy per tensor (split where a tensor exceeds the adapter's binding size) from
/// `src` into `dst` on the same device and submits once; returns the bytes copied.
pub fn copy_params(src: &Params, dst: &Params) -> Result<u64> {
    let (s, d) = (src.tensors(), dst.tensors());
    let ctx = src.embed_tokens.ctx();
    if !same_device(dst.embed_tokens.ctx(), ctx) {
        bail!("copy_params: source and destination are on different devices");
    }
    if s.len() != d.len() {
        bail!("copy_params: {} tensors vs {}", s.len(), d.len());
    }
    // Chunks start on the storage offset alignment and stay within one binding.
    let align = (ctx.limits().min_storage_buffer_offset_alignment as usize / 4).max(1);
    let limit = ctx
        .max_binding_bytes()
        .min(dst.embed_tokens.ctx().max_binding_bytes()) as usize;
    let chunk = (limit / 4 / align * align).max(align);
    let mut rec = Recorder::new(ctx, "publish_weights");
    let mut bytes = 0;
    for (i, (a, b)) in s.into_iter().zip(d).enumerate() {
        if a.shape() != b.shape() || a.dtype() != b.dtype() {
            bail!(
                "copy_params: tensor {i}: {:?} {:?} vs {:?} {:?}",
                a.dtype(),
                a.shape(),
                b.dtype(),
                b.shape()
            );
        }
        let n = a.numel();
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            rec.copy(
                a.binding_range("publish", start, len)?,
                b.binding_range("publish", start, len)?,
            )?;
            start += len;
        }
        bytes += a.size_bytes();
    }
    rec.submit()?;
    Ok(bytes)
}
