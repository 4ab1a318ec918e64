//! The pod failure backoff of a Job: after `n` failures since the last success, a
//! replacement pod waits 10 s doubled `n - 1` times, at most 10 minutes (upstream's
//! `DefaultJobPodFailureBackOff` and `MaxJobPodFailureBackOff`; the documentation still says
//! six minutes, the code has said ten since v1.29), counted from the last failure.
//! Upstream counterpart: pkg/controller/job/backoff_utils.go.
//!
//! The record is memory only (as upstream's `backoffStore`): a restart forgets it.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The first delay.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
/// The longest delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10 * 60);

/// Failures since the last success, and when the last one was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub failures_after_last_success: i32,
    pub last_failure_time: Option<Timestamp>,
}

impl Record {
    /// The record after the newly finished pods (upstream's `newBackoffRecord`).
    pub fn after(self, new_succeeded: &[&Pod], new_failed: &[&Pod]) -> Record {
        let latest = |pods: &[&Pod]| pods.iter().map(|p| finished_time(p)).max();
        let mut failed: Vec<Timestamp> = new_failed.iter().map(|p| finished_time(p)).collect();
        failed.sort();
        match latest(new_succeeded) {
            None if failed.is_empty() => self,
            None => Record {
                failures_after_last_success: self
                    .failures_after_last_success
                    .saturating_add(failed.len() as i32),
                last_failure_time: failed.last().copied(),
            },
            Some(last_success) => {
                let after: Vec<&Timestamp> = failed.iter().filter(|t| **t > last_success).collect();
                Record {
                    failures_after_last_success: after.len() as i32,
                    last_failure_time: after.last().map(|t| **t),
                }
            }
        }
    }

    /// How long a replacement still has to wait at `now`.
    pub fn remaining(&self, now: Timestamp) -> Duration {
        remaining_for(
            self.failures_after_last_success,
            self.last_failure_time,
            now,
        )
    }
}

/// The delay after `failures` failures, the last at `last_failure`
/// (upstream's `getRemainingTimeForFailuresCount`).
pub fn remaining_for(failures: i32, last_failure: Option<Timestamp>, now: Timestamp) -> Duration {
    let (Some(last), true) = (last_failure, failures > 0) else {
        return Duration::ZERO;
    };
    let mut delay = DEFAULT_BACKOFF;
    for _ in 1..failures {
        delay = delay.saturating_mul(2);
        if delay >= MAX_BACKOFF {
            delay = MAX_BACKOFF;
            break;
        }
    }
    let elapsed = now.duration_since(last);
    let elapsed = Duration::try_from(elapsed).unwrap_or(Duration::ZERO);
    delay.saturating_sub(elapsed)
}

/// When a pod finished (upstream's `getFinishedTime`): the latest container finish if every
/// container finished, else when `Ready` turned `False`, else its deletion time less the
/// grace period, else its creation.
pub fn finished_time(pod: &Pod) -> Timestamp {
    let status = pod.status.as_ref();
    let from_containers = status.and_then(|s| {
        let mut latest: Option<Timestamp> = None;
        for cs in s.container_statuses.iter().flatten() {
            let t = cs
                .state
                .as_ref()
                .and_then(|st| st.terminated.as_ref())
                .and_then(|t| t.finished_at.as_ref())?;
            latest = Some(latest.map_or(t.0, |l| l.max(t.0)));
        }
        latest
    });
    if let Some(t) = from_containers {
        return t;
    }
    let ready_false = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .filter(|c| c.status == "False")
        .and_then(|c| c.last_transition_time.as_ref());
    if let Some(t) = ready_false {
        return t.0;
    }
    if let Some(d) = &pod.metadata.deletion_timestamp {
        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
        return d
            .0
            .checked_sub(SignedDuration::from_secs(grace))
            .unwrap_or(d.0);
    }
    pod.metadata
        .creation_timestamp
        .as_ref()
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ContainerState, ContainerStateTerminated, ContainerStatus, PodCondition, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn finished_at(secs: i64) -> Pod {
        Pod {
            status: Some(PodStatus {
                container_statuses: Some(vec![ContainerStatus {
                    name: "c".into(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            finished_at: Some(Time(at(secs))),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn delays_double_from_ten_seconds_up_to_the_cap() {
        let t0 = at(0);
        let table = [
            (0, 0),
            (1, 10),
            (2, 20),
            (3, 40),
            (4, 80),
            (6, 320),
            (7, 600),
            (20, 600),
        ];
        for (failures, secs) in table {
            assert_eq!(
                remaining_for(failures, Some(t0), t0),
                Duration::from_secs(secs),
                "{failures} failures"
            );
        }
        // Time since the failure is taken off.
        assert_eq!(remaining_for(2, Some(t0), at(15)), Duration::from_secs(5));
        assert_eq!(remaining_for(2, Some(t0), at(25)), Duration::ZERO);
        assert_eq!(remaining_for(3, None, t0), Duration::ZERO);
    }

    #[test]
    fn the_record_counts_failures_after_the_last_success() {
        let none = Record::default();
        let (f1, f2, s3, f4) = (
            finished_at(1),
            finished_at(2),
            finished_at(3),
            finished_at(4),
        );
        let r = none.after(&[], &[&f2, &f1]);
        assert_eq!(
            r,
            Record {
                failures_after_last_success: 2,
                last_failure_time: Some(at(2))
            }
        );
        assert_eq!(r.after(&[], &[]), r);
        // A success resets; failures after it count.
        let r2 = r.after(&[&s3], &[&f4, &f1]);
        assert_eq!(
            r2,
            Record {
                failures_after_last_success: 1,
                last_failure_time: Some(at(4))
            }
        );
        assert_eq!(r.after(&[&s3], &[]), none);
    }

    #[test]
    fn finish_time_falls_back_as_upstream() {
        assert_eq!(finished_time(&finished_at(7)), at(7));
        let mut p = Pod::default();
        p.metadata.creation_timestamp = Some(Time(at(1)));
        assert_eq!(finished_time(&p), at(1));
        p.metadata.deletion_timestamp = Some(Time(at(40)));
        p.metadata.deletion_grace_period_seconds = Some(30);
        assert_eq!(finished_time(&p), at(10));
        p.status = Some(PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "False".into(),
                last_transition_time: Some(Time(at(5))),
                ..Default::default()
            }]),
            ..Default::default()
        });
        assert_eq!(finished_time(&p), at(5));
    }
}
