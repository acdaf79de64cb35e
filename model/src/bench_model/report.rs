//! The benchmark as a markdown table (the JSON is the report struct itself).

use std::fmt::Write as _;

use super::{mib, ModelBenchReport};

impl ModelBenchReport {
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "adapter: {} ({}), driver: {}",
            self.adapter, self.backend, self.driver
        );
        let _ = writeln!(
            s,
            "model: Qwen3, {}; {} parameters, random weights (seed {}), f32\n",
            self.shape.describe(),
            self.parameters,
            self.seed
        );
        s.push_str(
            "| phase | workload | throughput | time | peak counted (MiB) | planned (MiB) |\n",
        );
        s.push_str("|---|---|---:|---:|---:|---:|\n");
        if let Some(t) = &self.train {
            let _ = writeln!(
                s,
                "| training ({}, AdamW{}) | batch {} x {}, {} timed steps after {} warm-up | {:.0} tok/s | {:.3} s/step (median) | {:.1} | {:.1} |",
                t.dtype,
                if t.recompute { ", recomputed activations" } else { "" },
                t.batch,
                t.seq,
                t.steps,
                t.warmup_steps,
                t.tokens_per_s,
                t.median_step_seconds,
                mib(t.peak_bytes),
                mib(t.plan_bytes)
            );
        }
        if let Some(g) = &self.generate {
            let _ = writeln!(
                s,
                "| sampling | {} prompts x {} tokens + {} new, temperature {}, top-p {} | {:.1} new tok/s | {:.2} s | {:.1} | - |",
                g.prompts,
                g.prompt_len,
                g.new_tokens,
                g.temperature,
                g.top_p,
                g.tokens_per_s,
                g.seconds,
                mib(g.peak_bytes)
            );
        }
        if let Some(b) = &self.beam {
            let _ = writeln!(
                s,
                "| constrained beam search | {} users x {} tokens, {} beams, {} per call, trie of {} IDs ({} levels x {} codes) | {:.2} users/s | {:.2} s | {:.1} | - |",
                b.users,
                b.prompt_len,
                b.beams,
                b.batch_users,
                b.catalogue.items,
                b.catalogue.levels,
                b.catalogue.codes,
                b.users_per_s,
                b.seconds,
                mib(b.peak_bytes)
            );
        }
        if let Some(t) = &self.train {
            let _ = writeln!(s, "\ntraining {}", t.plan);
        }
        s
    }
}
