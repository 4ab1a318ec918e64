//! What a real node and a simulated one ([`crate::sim`]) say about themselves in the same
//! way: the default labels, the conditions with their reasons, messages, heartbeats and
//! transition times, the status patch and whether a status is worth posting, and the Lease.
//! Pure: every function takes the time it needs.
//!
//! Upstream: pkg/kubelet/kubelet_node_status.go (`initialNode`'s default labels),
//! pkg/kubelet/nodestatus/setters.go (conditions, their reasons and messages, heartbeats,
//! transition times), pkg/kubelet/nodelease (the Lease and its owner reference).

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

/// Where node Leases live.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";
/// The kubelet's port, published in `status.daemonEndpoints`.
pub const KUBELET_PORT: i32 = 10250;
/// The annotation a kubelet sets so that the attach/detach controller handles its volumes.
pub const CONTROLLER_MANAGED_ATTACH_DETACH: &str =
    "volumes.kubernetes.io/controller-managed-attach-detach";

/// GOARCH of this machine, as `kubernetes.io/arch` spells it.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "arm" => "arm",
        "x86" => "386",
        other => other,
    }
}

/// The labels a kubelet sets on its node (hostname, os, arch and their beta twins), as
/// upstream's `initialNode` and `reconcileDefaultLabels`.
pub fn default_labels(hostname: &str) -> BTreeMap<String, String> {
    [
        ("beta.kubernetes.io/arch", arch()),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", arch()),
        ("kubernetes.io/hostname", hostname),
        ("kubernetes.io/os", "linux"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// One of the conditions a kubelet posts, without its times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Condition {
    pub type_: &'static str,
    pub status: &'static str,
    pub reason: &'static str,
    pub message: &'static str,
}

const fn condition(
    type_: &'static str,
    status: &'static str,
    reason: &'static str,
    message: &'static str,
) -> Condition {
    Condition {
        type_,
        status,
        reason,
        message,
    }
}

pub const MEMORY_OK: Condition = condition(
    "MemoryPressure",
    "False",
    "KubeletHasSufficientMemory",
    "kubelet has sufficient memory available",
);
pub const MEMORY_PRESSURE: Condition = condition(
    "MemoryPressure",
    "True",
    "KubeletHasInsufficientMemory",
    "kubelet has insufficient memory available",
);
pub const DISK_OK: Condition = condition(
    "DiskPressure",
    "False",
    "KubeletHasNoDiskPressure",
    "kubelet has no disk pressure",
);
pub const DISK_PRESSURE: Condition = condition(
    "DiskPressure",
    "True",
    "KubeletHasDiskPressure",
    "kubelet has disk pressure",
);
pub const PID_OK: Condition = condition(
    "PIDPressure",
    "False",
    "KubeletHasSufficientPID",
    "kubelet has sufficient PID available",
);
pub const PID_PRESSURE: Condition = condition(
    "PIDPressure",
    "True",
    "KubeletHasInsufficientPID",
    "kubelet has insufficient PID available",
);
pub const READY: Condition = condition(
    "Ready",
    "True",
    "KubeletReady",
    "kubelet is posting ready status",
);
/// Ready during a graceful node shutdown (upstream's shutdown manager's
/// `ShutdownStatus` error, which its ReadyCondition reports).
pub const SHUTTING_DOWN: Condition =
    condition("Ready", "False", "KubeletNotReady", "node is shutting down");
/// Ready while the pod network is not: a node without a podCIDR has no CNI configuration
/// yet, and upstream's kubelet reports what containerd says then.
pub const NETWORK_NOT_READY: Condition = condition(
    "Ready",
    "False",
    "KubeletNotReady",
    "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
);

/// The conditions as posted at `now`: every heartbeat is `now`; a condition keeps its
/// `lastTransitionTime` from `observed` while its status stays the same.
pub fn conditions(
    wanted: &[Condition],
    now: Timestamp,
    observed: Option<&NodeStatus>,
) -> Vec<NodeCondition> {
    wanted
        .iter()
        .map(|c| {
            let transition = observed
                .and_then(|o| o.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|o| o.type_ == c.type_))
                .filter(|o| o.status == c.status)
                .and_then(|o| o.last_transition_time.clone())
                .unwrap_or(Time(now));
            NodeCondition {
                type_: c.type_.to_owned(),
                status: c.status.to_owned(),
                reason: Some(c.reason.to_owned()),
                message: Some(c.message.to_owned()),
                last_heartbeat_time: Some(Time(now)),
                last_transition_time: Some(transition),
            }
        })
        .collect()
}

/// 32 hex digits as a UUID (8-4-4-4-12).
pub fn uuid_like(hex: &str) -> String {
    let part = |a: usize, b: usize| hex.get(a..b).unwrap_or("0");
    format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

/// The strategic merge patch of `nodes/<name>/status` that posts `status`.
pub fn status_patch(status: &NodeStatus) -> Value {
    json!({ "status": status })
}

/// The parts of a status that a report sets, without the times (heartbeats move at every
/// report; a transition time follows from the status): conditions and addresses by type.
fn comparable(status: &NodeStatus) -> Value {
    let mut value = serde_json::to_value(status).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        if let Some(Value::Array(conditions)) = map.remove("conditions") {
            let by_type: serde_json::Map<String, Value> = conditions
                .into_iter()
                .filter_map(|mut c| {
                    let kind = c.get("type")?.as_str()?.to_owned();
                    if let Some(c) = c.as_object_mut() {
                        c.remove("lastHeartbeatTime");
                        c.remove("lastTransitionTime");
                    }
                    Some((kind, c))
                })
                .collect();
            map.insert("conditions".into(), Value::Object(by_type));
        }
        if let Some(Value::Array(addresses)) = map.remove("addresses") {
            let by_type: serde_json::Map<String, Value> = addresses
                .into_iter()
                .filter_map(|a| {
                    Some((
                        a.get("type")?.as_str()?.to_owned(),
                        a.get("address")?.clone(),
                    ))
                })
                .collect();
            map.insert("addresses".into(), Value::Object(by_type));
        }
    }
    value
}

/// Whether `part` is in `whole`: every key of an object with a value in `whole`'s that
/// holds it, arrays element by element, anything else equal.
fn is_within(part: &Value, whole: &Value) -> bool {
    match (part, whole) {
        (Value::Object(p), Value::Object(w)) => p
            .iter()
            .all(|(k, v)| w.get(k).is_some_and(|wv| is_within(v, wv))),
        (Value::Array(p), Value::Array(w)) => {
            p.len() == w.len() && p.iter().zip(w).all(|(a, b)| is_within(a, b))
        }
        _ => part == whole,
    }
}

/// Whether the node's status says something other than what a report would post (a
/// condition another component changed, such as the node lifecycle controller's `Unknown`;
/// a capacity or address that differs): then the report goes out at once.
pub fn status_differs(desired: &NodeStatus, observed: Option<&NodeStatus>) -> bool {
    match observed {
        None => true,
        Some(observed) => !is_within(&comparable(desired), &comparable(observed)),
    }
}

/// When the node last reported: its Ready condition's heartbeat.
pub fn last_heartbeat(observed: Option<&NodeStatus>) -> Option<Timestamp> {
    observed?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?
        .last_heartbeat_time
        .as_ref()
        .map(|t| t.0)
}

/// The node's Lease as upstream's node lease controller creates it: held by the node, owned
/// by the Node (so it goes when the Node goes).
pub fn lease(name: &str, node_uid: &str, duration_seconds: i32, now: Timestamp) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(LEASE_NAMESPACE.to_owned()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: name.to_owned(),
                uid: node_uid.to_owned(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(name.to_owned()),
            lease_duration_seconds: Some(duration_seconds),
            renew_time: Some(MicroTime(now)),
            ..LeaseSpec::default()
        }),
    }
}

/// The merge patch that renews a node's Lease at `now`.
pub fn lease_renewal(name: &str, duration_seconds: i32, now: Timestamp) -> Value {
    json!({
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": duration_seconds,
            "renewTime": MicroTime(now),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_held_and_owned_by_their_node() {
        let now: Timestamp = "2026-01-01T00:00:00.123456Z".parse().expect("a timestamp");
        let l = lease("sim-0", "uid-1", 40, now);
        assert_eq!(l.metadata.namespace.as_deref(), Some("kube-node-lease"));
        let owner = &l.metadata.owner_references.clone().unwrap_or_default()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Node", "sim-0", "uid-1")
        );
        let spec = l.spec.expect("spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("sim-0"));
        assert_eq!(spec.lease_duration_seconds, Some(40));
        assert_eq!(
            lease_renewal("sim-0", 40, now),
            json!({"spec": {"holderIdentity": "sim-0", "leaseDurationSeconds": 40,
                "renewTime": "2026-01-01T00:00:00.123456Z"}})
        );
    }

    #[test]
    fn unchanged_conditions_keep_their_transition() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().expect("t0");
        let t1: Timestamp = "2026-01-01T00:01:00Z".parse().expect("t1");
        let first = NodeStatus {
            conditions: Some(conditions(&[MEMORY_OK, NETWORK_NOT_READY], t0, None)),
            ..NodeStatus::default()
        };
        let next = conditions(&[MEMORY_PRESSURE, NETWORK_NOT_READY], t1, Some(&first));
        assert_eq!(next[0].last_transition_time, Some(Time(t1)));
        assert_eq!(
            next[0].reason.as_deref(),
            Some("KubeletHasInsufficientMemory")
        );
        assert_eq!(next[1].last_transition_time, Some(Time(t0)));
        assert_eq!(next[1].last_heartbeat_time, Some(Time(t1)));
    }
}
