//! Leader election with `coordination.k8s.io` Leases, as upstream's components do it
//! (client-go `tools/leaderelection`): the scheduler and the controller manager of a
//! several-server control plane run on one server at a time. A candidate takes the Lease
//! when it is free or expired (its renew time older than its duration), the leader renews
//! it every retry period, and a leader that could not renew within the renew deadline stops
//! its work and becomes a candidate again. Every write is a compare-and-swap on the Lease's
//! resourceVersion, so two candidates never both win.
//!
//! [`decide`] is the pure part (the Lease as read, who we are, the time -> what to write).

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};

/// Upstream's defaults (kube-scheduler and kube-controller-manager `--leader-elect-*`).
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// The Lease's name (`kube-scheduler`, `kube-controller-manager`), in `kube-system`.
    pub name: String,
    pub namespace: String,
    /// Who we are: the Lease's `holderIdentity` while we lead.
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaderConfig {
    pub fn new(name: &str, identity: &str) -> Self {
        Self {
            name: name.to_owned(),
            namespace: "kube-system".into(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// What a candidate or leader does after reading the Lease.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Write this spec (take the Lease, or renew it).
    Write(LeaseSpec),
    /// Someone else holds a Lease that has not expired.
    Wait,
}

/// Whether the Lease `current` (None: there is none) may be taken or renewed by `me` at
/// `now`, and with what.
pub fn decide(
    current: Option<&LeaseSpec>,
    me: &str,
    duration: Duration,
    now: Timestamp,
) -> Decision {
    let seconds = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX);
    let fresh = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(me.to_owned()),
        lease_duration_seconds: Some(seconds),
        acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let Some(spec) = current else {
        return Decision::Write(fresh(0, None));
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    let transitions = spec.lease_transitions.unwrap_or(0);
    if holder == me {
        return Decision::Write(fresh(transitions, spec.acquire_time.clone()));
    }
    let held_for = SignedDuration::from_secs(i64::from(
        spec.lease_duration_seconds.unwrap_or(seconds).max(0),
    ));
    let expired = match &spec.renew_time {
        None => true,
        Some(renewed) => renewed
            .0
            .checked_add(held_for)
            .map_or(true, |end| end <= now),
    };
    if holder.is_empty() || expired {
        Decision::Write(fresh(transitions + 1, None))
    } else {
        Decision::Wait
    }
}

/// One read-decide-write round: Ok(true) when we hold the Lease after it.
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    config: &LeaderConfig,
) -> Result<bool, kube::Error> {
    let now = Timestamp::now();
    let current = match api.get_opt(&config.name).await? {
        Some(lease) => lease,
        None => {
            let Decision::Write(spec) = decide(None, &config.identity, config.lease_duration, now)
            else {
                return Ok(false);
            };
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        }
    };
    match decide(
        current.spec.as_ref(),
        &config.identity,
        config.lease_duration,
        now,
    ) {
        Decision::Wait => Ok(false),
        Decision::Write(spec) => {
            let mut lease = current;
            lease.spec = Some(spec);
            // `replace` carries the resourceVersion read: a concurrent writer makes it 409.
            match api
                .replace(&config.name, &PostParams::default(), &lease)
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Runs `work` whenever this process leads, for ever: waits to take the Lease, starts the
/// work, renews; if a renewal does not succeed within the renew deadline the work is
/// dropped (cancelled) and the process is a candidate again.
pub async fn run_when_leading<F, Fut>(client: Client, config: LeaderConfig, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let api: Api<Lease> = Api::namespaced(client, &config.namespace);
    loop {
        // Candidate.
        loop {
            match try_acquire_or_renew(&api, &config).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::debug!(lease = %config.name, error = %e, "leader election"),
            }
            tokio::time::sleep(config.retry_period).await;
        }
        tracing::info!(lease = %config.name, identity = %config.identity, "became the leader");
        let task = tokio::spawn(work());
        // Leader: renew every retry period; stop once the deadline passes without a renewal.
        // A renewal refused (a 409: e.g. our own earlier write landed after its answer was
        // lost) is retried like an error, as upstream's renew loop does: only the deadline
        // ends the leadership. Another candidate cannot take the Lease before it expires,
        // which is later than the deadline.
        let mut last_renewed = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(config.retry_period).await;
            match try_acquire_or_renew(&api, &config).await {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::debug!(lease = %config.name, "a lease renewal was refused; retrying")
                }
                Err(e) => tracing::debug!(lease = %config.name, error = %e, "renewing the lease"),
            }
            if last_renewed.elapsed() >= config.renew_deadline {
                break;
            }
        }
        task.abort();
        tracing::warn!(lease = %config.name, identity = %config.identity, "lost the leadership; stopped and waiting to lead again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    fn held_by(who: &str, renewed: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(who.into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(renewed)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(2),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_free_or_expired_lease_is_taken_a_held_one_is_not() {
        let now = Timestamp::now();
        let Decision::Write(new) = decide(None, "a", D, now) else {
            panic!("free")
        };
        assert_eq!(new.holder_identity.as_deref(), Some("a"));
        assert_eq!(new.lease_transitions, Some(0));
        let other = held_by("b", now - SignedDuration::from_secs(5));
        assert_eq!(decide(Some(&other), "a", D, now), Decision::Wait);
        let stale = held_by("b", now - SignedDuration::from_secs(15));
        let Decision::Write(taken) = decide(Some(&stale), "a", D, now) else {
            panic!("expired")
        };
        assert_eq!(taken.lease_transitions, Some(3));
        assert_eq!(taken.acquire_time, Some(MicroTime(now)));
    }

    #[test]
    fn the_holder_renews_keeping_its_acquire_time() {
        let now = Timestamp::now();
        let earlier = now - SignedDuration::from_secs(5);
        let mine = held_by("a", earlier);
        let Decision::Write(renewed) = decide(Some(&mine), "a", D, now) else {
            panic!("mine")
        };
        assert_eq!(renewed.acquire_time, Some(MicroTime(earlier)));
        assert_eq!(renewed.renew_time, Some(MicroTime(now)));
        assert_eq!(renewed.lease_transitions, Some(2));
    }
}
