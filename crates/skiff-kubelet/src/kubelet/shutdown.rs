//! Graceful node shutdown, as upstream's `pkg/kubelet/nodeshutdown` (pure): which pods
//! are critical, how long each group gets, and the status a pod killed for the shutdown
//! ends with.
//!
//! Asked for (the node agent's `--shutdown-grace-period`), the kubelet kills the regular
//! pods first, within the grace period minus the critical pods' share, then the critical
//! ones within their share; each pod gets the shorter of its own grace period and its
//! group's. A killed pod ends `Failed` with reason `Terminated`, upstream's message and a
//! `DisruptionTarget` condition (reason `TerminationByKubelet`). A pod bound to the node once
//! the shutdown has begun is refused: `Failed`, reason `NodeShutdown`.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::static_pods;

/// Upstream's `nodeShutdownReason` and `nodeShutdownMessage`.
pub const REASON: &str = "Terminated";
pub const MESSAGE: &str = "Pod was terminated in response to imminent node shutdown.";
/// Upstream's `nodeShutdownNotAdmittedReason` and `nodeShutdownNotAdmittedMessage` (the
/// kubelet's rejection prefixes the status message with `Pod was rejected: `, as upstream's
/// `rejectPod`, so the message says it twice there too).
pub const NOT_ADMITTED_REASON: &str = "NodeShutdown";
pub const NOT_ADMITTED_MESSAGE: &str = "Pod was rejected as the node is shutting down.";
/// `v1.PodReasonTerminationByKubelet`.
pub const CONDITION_REASON: &str = "TerminationByKubelet";
/// Upstream's `scheduling.SystemCriticalPriority`: system-cluster-critical and above.
pub const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// The admission verdict on a pod bound to a node that is shutting down.
pub fn not_admitted() -> super::admission::Rejection {
    super::admission::Rejection {
        reason: NOT_ADMITTED_REASON.to_owned(),
        message: NOT_ADMITTED_MESSAGE.to_owned(),
    }
}

/// A node shutdown asked of the kubelet: the whole grace period and the critical pods'
/// share of it (upstream's `shutdownGracePeriod` and `shutdownGracePeriodCriticalPods`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeShutdown {
    pub grace: Duration,
    pub critical_grace: Duration,
}

impl NodeShutdown {
    /// The regular pods' share, then the critical pods' (upstream's
    /// `migrateInsufficientGracePeriodSeconds` aside: a critical share larger than the
    /// whole leaves the regular pods none).
    pub fn groups(&self) -> (Duration, Duration) {
        let critical = self.critical_grace.min(self.grace);
        (self.grace - critical, critical)
    }
}

/// Upstream's `kubelettypes.IsCriticalPod`: static and mirror pods, and pods of system
/// critical priority.
pub fn is_critical(pod: &Pod) -> bool {
    static_pods::is_static(pod)
        || static_pods::is_mirror(pod)
        || pod
            .spec
            .as_ref()
            .and_then(|s| s.priority)
            .is_some_and(|p| p >= SYSTEM_CRITICAL_PRIORITY)
}

/// The grace period a pod is killed with: its own (`terminationGracePeriodSeconds`,
/// default 30 s), at most its group's.
pub fn pod_grace(pod: &Pod, group: Duration) -> Duration {
    let own = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(own).unwrap_or(0)).min(group)
}

/// What the kubelet's status of a pod killed for the shutdown at `at` becomes: phase
/// Failed, reason Terminated, and the DisruptionTarget condition (kept if already there).
pub fn apply(status: &mut PodStatus, at: Timestamp) {
    status.phase = Some("Failed".into());
    status.reason = Some(REASON.into());
    status.message = Some(MESSAGE.into());
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let wanted = PodCondition {
        type_: "DisruptionTarget".into(),
        status: "True".into(),
        reason: Some(CONDITION_REASON.into()),
        message: Some(MESSAGE.into()),
        last_transition_time: Some(Time(at)),
        ..PodCondition::default()
    };
    match conditions
        .iter_mut()
        .find(|c| c.type_ == "DisruptionTarget")
    {
        Some(c) if c.status == "True" => {
            c.reason = wanted.reason;
            c.message = wanted.message;
        }
        Some(c) => *c = wanted,
        None => conditions.push(wanted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(priority: Option<i32>, grace: Option<i64>, annotations: &[(&str, &str)]) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "p",
                "annotations": annotations.iter().map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<std::collections::BTreeMap<_, _>>(),
            },
            "spec": {"priority": priority, "terminationGracePeriodSeconds": grace,
                     "containers": [{"name": "c"}]},
        }))
        .expect("pod")
    }

    #[test]
    fn critical_pods_are_static_mirror_or_system_critical() {
        assert!(!is_critical(&pod(None, None, &[])));
        assert!(!is_critical(&pod(Some(1_999_999_999), None, &[])));
        assert!(is_critical(&pod(Some(2_000_000_000), None, &[])));
        assert!(is_critical(&pod(Some(2_000_001_000), None, &[])));
        assert!(is_critical(&pod(
            None,
            None,
            &[("kubernetes.io/config.source", "file")]
        )));
        assert!(is_critical(&pod(
            None,
            None,
            &[("kubernetes.io/config.mirror", "abc")]
        )));
    }

    #[test]
    fn groups_split_the_grace_period() {
        let s = |grace, critical| NodeShutdown {
            grace: Duration::from_secs(grace),
            critical_grace: Duration::from_secs(critical),
        };
        assert_eq!(
            s(30, 10).groups(),
            (Duration::from_secs(20), Duration::from_secs(10))
        );
        assert_eq!(s(30, 0).groups(), (Duration::from_secs(30), Duration::ZERO));
        assert_eq!(
            s(10, 30).groups(),
            (Duration::ZERO, Duration::from_secs(10))
        );
    }

    #[test]
    fn a_pod_gets_the_shorter_of_its_grace_and_its_groups() {
        let group = Duration::from_secs(20);
        assert_eq!(pod_grace(&pod(None, None, &[]), group), group);
        assert_eq!(
            pod_grace(&pod(None, Some(5), &[]), group),
            Duration::from_secs(5)
        );
        assert_eq!(pod_grace(&pod(None, Some(0), &[]), group), Duration::ZERO);
    }

    #[test]
    fn a_killed_pod_ends_failed_with_upstreams_reason_and_condition() {
        let at: Timestamp = "2026-01-01T00:00:00Z".parse().expect("t");
        let mut status = PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "False".into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        };
        apply(&mut status, at);
        assert_eq!(status.phase.as_deref(), Some("Failed"));
        assert_eq!(status.reason.as_deref(), Some("Terminated"));
        assert_eq!(
            status.message.as_deref(),
            Some("Pod was terminated in response to imminent node shutdown.")
        );
        let conditions = status.conditions.clone().unwrap_or_default();
        assert_eq!(conditions.len(), 2);
        let d = &conditions[1];
        assert_eq!(
            (d.type_.as_str(), d.status.as_str(), d.reason.as_deref()),
            ("DisruptionTarget", "True", Some("TerminationByKubelet"))
        );
        // Applied again later: the transition time stays.
        let later: Timestamp = "2026-01-01T00:01:00Z".parse().expect("t");
        apply(&mut status, later);
        let conditions = status.conditions.unwrap_or_default();
        assert_eq!(conditions.len(), 2);
        assert_eq!(conditions[1].last_transition_time, Some(Time(at)));
    }
}
