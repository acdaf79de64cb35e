//! Sending a job to a supervised actor: the job is in the in-flight registry until its result
//! is in, and a restarted actor's job is sent again (at most `system.max_retries` times), so
//! nothing is lost and nothing is counted twice.

use actix::dev::ToEnvelope;
use actix::prelude::*;
use anyhow::{bail, Result};

use super::shared::{JobKey, Shared};
use super::supervise::WorkFailure;

/// Sends `msg` until it succeeds: a restarted actor's job is re-sent (at most `max_retries`
/// times); the job is in `in_flight` meanwhile.
pub async fn call<A, M, R>(shared: &Shared, addr: &Addr<A>, key: JobKey, msg: M) -> Result<R>
where
    A: Actor + Handler<M>,
    A::Context: ToEnvelope<A, M>,
    M: Message<Result = Result<R, WorkFailure>> + Clone + Send + 'static,
    R: Send + 'static,
{
    if shared.in_flight.insert(key.clone(), 0).is_some() {
        bail!("job {key:?} issued twice");
    }
    let max = shared.run.cfg.system.max_retries as u64;
    loop {
        let why = match addr.send(msg.clone()).await {
            Ok(Ok(r)) => {
                shared.in_flight.remove(&key);
                return Ok(r);
            }
            Ok(Err(WorkFailure::Failed(e))) => {
                shared.in_flight.remove(&key);
                bail!("{} job {}: {e}", key.kind, key.id);
            }
            Ok(Err(WorkFailure::Restarted(why))) => why,
            Err(e) => format!("mailbox: {e}"),
        };
        let attempts = {
            let mut a = shared.in_flight.get_mut(&key).expect("in flight");
            *a += 1;
            *a
        };
        shared.bump(&format!("{}.requeued", key.kind), 1);
        tracing::warn!(
            "{} job {} of step {} re-queued after: {why}",
            key.kind,
            key.id,
            key.step
        );
        if attempts > max {
            shared.in_flight.remove(&key);
            bail!(
                "{} job {} failed {attempts} times (system.max_retries = {max}): {why}",
                key.kind,
                key.id
            );
        }
    }
}
