//! The TTL-after-finished controller: deletes a finished Job (condition `Complete` or
//! `Failed`) `spec.ttlSecondsAfterFinished` seconds after it finished (that condition's
//! `lastTransitionTime`), with foreground propagation and the Job's UID as a precondition,
//! after checking the TTL again on a fresh read of the Job, as upstream's
//! (pkg/controller/ttlafterfinished/ttlafterfinished_controller.go). A Job not yet expired
//! is looked at again when it expires.
//!
//! The decision is [`ttl_state`], a pure function of the Job and `now`. It deletes nothing
//! else: the garbage collector deletes the Job's pods.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Preconditions, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;

use crate::job::sync::is_finished;
use crate::pods::key_of;
use crate::{Context, Error, Result, Task};

/// Where a Job stands with its TTL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ttl {
    /// No TTL, not finished, or being deleted.
    NotNeeded,
    /// Expires in this long.
    Wait(Duration),
    /// Expired at this time.
    Expired(Timestamp),
}

/// Upstream's `processTTL` / `timeLeft`; the error is upstream's for a finished Job without
/// a finish time.
pub fn ttl_state(job: &Job, now: Timestamp) -> Result<Ttl, String> {
    let ttl = job.spec.as_ref().and_then(|s| s.ttl_seconds_after_finished);
    let Some(ttl) = ttl.filter(|_| job.metadata.deletion_timestamp.is_none() && is_finished(job))
    else {
        return Ok(Ttl::NotNeeded);
    };
    let ns = job.metadata.namespace.as_deref().unwrap_or("");
    let name = job.metadata.name.as_deref().unwrap_or("");
    let finished = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .ok_or_else(|| format!("unable to find the status of the finished Job {ns}/{name}"))?;
    let at = finished
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
        .ok_or_else(|| format!("unable to find the time when the Job {ns}/{name} finished"))?;
    if at > now {
        tracing::info!(job = %format!("{ns}/{name}"), "found a Job finished in the future (time skew?): cleanup deferred");
    }
    let expire = at
        .checked_add(SignedDuration::from_secs(i64::from(ttl)))
        .unwrap_or(at);
    if expire <= now {
        return Ok(Ttl::Expired(expire));
    }
    Ok(Ttl::Wait(
        Duration::try_from(expire.duration_since(now)).unwrap_or(Duration::ZERO),
    ))
}

struct State {
    ctx: Arc<Context>,
    failures: Mutex<HashMap<String, u32>>,
}

/// Sets up the `ttl-after-finished` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let state = Arc::new(State {
        ctx: ctx.clone(),
        failures: Mutex::new(HashMap::new()),
    });
    let jobs = informers.subscribe::<Job>().filter(|j| {
        futures::future::ready(
            j.spec
                .as_ref()
                .is_some_and(|s| s.ttl_seconds_after_finished.is_some()),
        )
    });
    let controller = Controller::for_shared_stream(jobs, informers.store::<Job>());
    let synced = informers.synced::<Job>();
    Ok(Box::pin(async move {
        synced.await;
        controller
            .run(reconcile, error_policy, state)
            .for_each(|_| async {})
            .await;
    }))
}

fn error_policy(job: Arc<Job>, error: &Error, state: Arc<State>) -> Action {
    let key = key_of(&job.metadata);
    let mut failures = state.failures.lock();
    let n = failures.entry(key.clone()).or_default();
    *n = n.saturating_add(1);
    let delay = crate::replicaset::backoff(*n);
    tracing::debug!(%key, %error, ?delay, "cleaning up a finished Job failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(job: Arc<Job>, state: Arc<State>) -> Result<Action> {
    let key = key_of(&job.metadata);
    let result = process(&job, &state).await;
    if result.is_ok() {
        state.failures.lock().remove(&key);
    }
    result
}

async fn process(job: &Job, state: &State) -> Result<Action> {
    match ttl_state(job, Timestamp::now()).map_err(Error::Invalid)? {
        Ttl::NotNeeded => return Ok(Action::await_change()),
        Ttl::Wait(d) => return Ok(Action::requeue(d)),
        Ttl::Expired(_) => {}
    }
    // The cached TTL may be stale: decide again on a fresh read.
    let api: Api<Job> = Api::namespaced(
        state.ctx.client.clone(),
        job.metadata.namespace.as_deref().unwrap_or(""),
    );
    let Some(fresh) = api.get_opt(&job.name_any()).await? else {
        return Ok(Action::await_change());
    };
    match ttl_state(&fresh, Timestamp::now()).map_err(Error::Invalid)? {
        Ttl::NotNeeded => return Ok(Action::await_change()),
        Ttl::Wait(d) => return Ok(Action::requeue(d)),
        Ttl::Expired(_) => {}
    }
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Foreground),
        preconditions: Some(Preconditions {
            uid: fresh.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    tracing::debug!(job = %key_of(&fresh.metadata), "cleaning up a finished Job");
    match api.delete(&fresh.name_any(), &params).await {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::batch::v1::{JobCondition, JobSpec, JobStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn job(ttl: Option<i32>, finished: Option<(&str, Option<i64>)>) -> Job {
        Job {
            metadata: ObjectMeta {
                name: Some("pi".into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(JobSpec {
                ttl_seconds_after_finished: ttl,
                ..Default::default()
            }),
            status: finished.map(|(type_, t)| JobStatus {
                conditions: Some(vec![JobCondition {
                    type_: type_.into(),
                    status: "True".into(),
                    last_transition_time: t.map(|t| Time(at(t))),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn finished_jobs_expire_ttl_seconds_after_they_finished() {
        let table = [
            (
                job(None, Some(("Complete", Some(0)))),
                100,
                Ok(Ttl::NotNeeded),
            ),
            (job(Some(10), None), 100, Ok(Ttl::NotNeeded)),
            (
                job(Some(10), Some(("SuccessCriteriaMet", Some(0)))),
                100,
                Ok(Ttl::NotNeeded),
            ),
            (
                job(Some(10), Some(("Complete", Some(0)))),
                4,
                Ok(Ttl::Wait(Duration::from_secs(6))),
            ),
            (
                job(Some(10), Some(("Failed", Some(0)))),
                10,
                Ok(Ttl::Expired(at(10))),
            ),
            (
                job(Some(0), Some(("Complete", Some(5)))),
                5,
                Ok(Ttl::Expired(at(5))),
            ),
            // Finished in the future (clock skew): waits the whole TTL from then.
            (
                job(Some(10), Some(("Complete", Some(50)))),
                0,
                Ok(Ttl::Wait(Duration::from_secs(60))),
            ),
            (
                job(Some(10), Some(("Complete", None))),
                0,
                Err("unable to find the time when the Job default/pi finished".to_owned()),
            ),
        ];
        for (j, now, want) in table {
            assert_eq!(ttl_state(&j, at(now)), want, "{:?}", j.status);
        }
        let mut deleting = job(Some(0), Some(("Complete", Some(0))));
        deleting.metadata.deletion_timestamp = Some(Time(at(1)));
        assert_eq!(ttl_state(&deleting, at(100)), Ok(Ttl::NotNeeded));
    }
}
