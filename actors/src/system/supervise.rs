//! Supervision of the sync actors: a handler that panics stops its actor, which the
//! `SyncArbiter` rebuilds from its factory (a restart: fresh model state, fresh plug-ins); the
//! reply names the failure so the sender can send the job again.

use std::panic::{catch_unwind, AssertUnwindSafe};

use actix::prelude::*;
use anyhow::Result;

use super::shared::Shared;

/// Why a job did not produce a result.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkFailure {
    /// The actor panicked or its plug-in failed; it is being restarted. Retry the job.
    Restarted(String),
    /// A deterministic error (bad input, device error): retrying would not help.
    Failed(String),
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Runs `f`; a panic stops (restarts) the actor.
pub fn supervised<A, T>(
    shared: &Shared,
    kind: &str,
    ctx: &mut SyncContext<A>,
    f: impl FnOnce() -> Result<T>,
) -> Result<T, WorkFailure>
where
    A: Actor<Context = SyncContext<A>>,
{
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => {
            shared.bump(&format!("{kind}.handled"), 1);
            Ok(v)
        }
        Ok(Err(e)) => Err(WorkFailure::Failed(format!("{kind} actor: {e:#}"))),
        Err(p) => {
            let why = panic_text(p);
            tracing::warn!("{kind} actor panicked ({why}); restarting it");
            shared.bump(&format!("{kind}.panics"), 1);
            ctx.stop();
            Err(WorkFailure::Restarted(why))
        }
    }
}
