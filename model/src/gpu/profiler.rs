//! Per-kernel GPU time from timestamp queries, for finding where a step's time goes.
//!
//! Enabled by `GRRM_PROFILE=1` when the device opens (and only where the adapter has timestamp
//! queries). While enabled, `Recorder::submit` gives every dispatch its own compute pass with
//! begin/end timestamps, waits for the submission and adds each dispatch's GPU time to a total
//! per kernel and per (kernel, grid). The wait and the pass per dispatch change wall-clock
//! timings, so a profiled run measures where GPU time goes, not how fast the step is.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Timestamps one query set holds (wgpu's maximum): two per dispatch.
pub(crate) const QUERIES_PER_SET: u32 = 4096;

#[derive(Clone, Copy, Default, Debug)]
struct Total {
    calls: u64,
    ns: f64,
}

/// Accumulated GPU time per kernel since the context opened or the last `reset`.
pub struct Profiler {
    /// Nanoseconds per timestamp tick (`Queue::get_timestamp_period`).
    period_ns: f64,
    totals: Mutex<HashMap<(String, [u32; 3]), Total>>,
    /// Sum over submissions of first-begin to last-end: dispatch time plus the gaps between
    /// dispatches (barriers, buffer clears, copies).
    span_ns: Mutex<f64>,
}

impl Profiler {
    pub(crate) fn new(period_ns: f32) -> Self {
        Profiler {
            period_ns: period_ns as f64,
            totals: Mutex::new(HashMap::new()),
            span_ns: Mutex::new(0.0),
        }
    }

    /// Adds one submission's span (its first dispatch's begin to its last one's end).
    pub(crate) fn add_span(&self, begin: u64, end: u64) {
        *self.span_ns.lock().expect("profiler span") +=
            end.saturating_sub(begin) as f64 * self.period_ns;
    }

    /// Milliseconds from each submission's first dispatch to its last, summed.
    pub fn span_ms(&self) -> f64 {
        *self.span_ns.lock().expect("profiler span") / 1e6
    }

    /// Adds one dispatch's begin/end ticks. A driver may report end < begin for a dispatch it
    /// overlapped or skipped; those count as zero rather than wrapping.
    pub(crate) fn add(&self, kernel: String, groups: [u32; 3], begin: u64, end: u64) {
        let ns = end.saturating_sub(begin) as f64 * self.period_ns;
        let mut totals = self.totals.lock().expect("profiler totals");
        let t = totals.entry((kernel, groups)).or_default();
        t.calls += 1;
        t.ns += ns;
    }

    pub fn reset(&self) {
        self.totals.lock().expect("profiler totals").clear();
        *self.span_ns.lock().expect("profiler span") = 0.0;
    }

    /// Total GPU milliseconds and dispatch count per kernel, most expensive first.
    pub fn by_kernel(&self) -> Vec<(String, u64, f64)> {
        let totals = self.totals.lock().expect("profiler totals");
        let mut per: HashMap<&str, Total> = HashMap::new();
        for ((k, _), t) in totals.iter() {
            let e = per.entry(k.as_str()).or_default();
            e.calls += t.calls;
            e.ns += t.ns;
        }
        let mut v: Vec<_> = per
            .into_iter()
            .map(|(k, t)| (k.to_string(), t.calls, t.ns / 1e6))
            .collect();
        v.sort_by(|a, b| b.2.total_cmp(&a.2));
        v
    }

    /// A markdown report: the per-kernel table, then the `top` most expensive (kernel, grid)
    /// pairs, which tell the call sites of one kernel apart by problem size.
    pub fn report(&self, top: usize) -> String {
        let kernels = self.by_kernel();
        let total_ms: f64 = kernels.iter().map(|k| k.2).sum();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "GPU time by kernel: {total_ms:.2} ms in all, within submissions spanning {:.2} ms \
             (the rest is gaps between dispatches: barriers, buffer clears, copies)\n",
            self.span_ms()
        );
        let _ = writeln!(out, "| kernel | dispatches | ms | mean us | share |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for (k, calls, ms) in &kernels {
            let _ = writeln!(
                out,
                "| {k} | {calls} | {ms:.2} | {:.1} | {:.1}% |",
                ms * 1e3 / *calls as f64,
                100.0 * ms / total_ms.max(1e-12)
            );
        }
        let totals = self.totals.lock().expect("profiler totals");
        let mut sites: Vec<_> = totals.iter().collect();
        sites.sort_by(|a, b| b.1.ns.total_cmp(&a.1.ns));
        let _ = writeln!(out, "\n| kernel | grid | dispatches | ms | mean us |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for ((k, g), t) in sites.into_iter().take(top) {
            let _ = writeln!(
                out,
                "| {k} | {}x{}x{} | {} | {:.2} | {:.1} |",
                g[0],
                g[1],
                g[2],
                t.calls,
                t.ns / 1e6,
                t.ns / 1e3 / t.calls as f64
            );
        }
        out
    }
}

/// Whether `GRRM_PROFILE` asks for profiling (any value but empty or `0`).
pub(crate) fn requested() -> bool {
    std::env::var("GRRM_PROFILE").is_ok_and(|v| !v.is_empty() && v != "0")
}
