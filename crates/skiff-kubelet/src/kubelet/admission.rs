//! Admission of a pod bound to this node before anything of it runs, as upstream's
//! `lifecycle.PredicateAdmitHandler` (pkg/kubelet/lifecycle/predicate.go) does with the
//! scheduler's resource fit: a pod that does not fit beside the pods already admitted is
//! rejected (phase Failed, reason `OutOf<resource>`, message `Pod was rejected: Node didn't
//! have enough resource: cpu, requested: 3000, used: 100, capacity: 2000`). A binding the
//! scheduler made always fits; one written straight into `spec.nodeName` may not.
//!
//! Pure: the node's allocatable and the active pods in, the verdict out.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_scheduler::resources::{pod_requests, Resource};

/// Why a pod was not admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// `OutOfcpu`, `OutOfmemory`, `OutOfpods`, ...
    pub reason: String,
    /// Without upstream's `Pod was rejected: ` prefix (the status adds it).
    pub message: String,
}

/// Whether the pod has been past admission already: it ran or ended here (a restarted
/// kubelet sees it again and must not reject what it admitted before).
pub fn already_admitted(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    status.phase.as_deref().is_some_and(|p| p != "Pending")
        || status
            .container_statuses
            .as_ref()
            .is_some_and(|cs| !cs.is_empty())
}

/// Upstream's `noderesources.Fits` for the kubelet: pods count first, then cpu, memory,
/// ephemeral storage and extended resources; the first shortage is the verdict. An empty
/// `allocatable` (the node's status is not known yet) admits everything.
pub fn admit(
    pod: &Pod,
    active: &[&Pod],
    allocatable: &BTreeMap<String, Quantity>,
) -> Result<(), Rejection> {
    if allocatable.is_empty() {
        return Ok(());
    }
    let capacity = Resource::from_list(allocatable);
    let mut used = Resource::default();
    for p in active {
        used.add(&pod_requests(p, false));
    }
    let want = pod_requests(pod, false);
    let short = |name: &str, requested: i64, used: i64, capacity: i64| {
        Rejection {
        reason: format!("OutOf{name}"),
        message: format!(
            "Node didn't have enough resource: {name}, requested: {requested}, used: {used}, capacity: {capacity}"
        ),
    }
    };
    let count = active.len() as i64;
    if count + 1 > capacity.allowed_pod_number {
        return Err(short("pods", 1, count, capacity.allowed_pod_number));
    }
    if want.milli_cpu > 0 && want.milli_cpu > capacity.milli_cpu - used.milli_cpu {
        return Err(short(
            "cpu",
            want.milli_cpu,
            used.milli_cpu,
            capacity.milli_cpu,
        ));
    }
    if want.memory > 0 && want.memory > capacity.memory - used.memory {
        return Err(short("memory", want.memory, used.memory, capacity.memory));
    }
    if want.ephemeral_storage > 0
        && want.ephemeral_storage > capacity.ephemeral_storage - used.ephemeral_storage
    {
        return Err(short(
            "ephemeral-storage",
            want.ephemeral_storage,
            used.ephemeral_storage,
            capacity.ephemeral_storage,
        ));
    }
    for (name, q) in &want.scalar {
        if *q > 0 && *q > capacity.scalar(name) - used.scalar(name) {
            return Err(short(name, *q, used.scalar(name), capacity.scalar(name)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(cpu: &str, memory: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}}))
        .expect("pod")
    }

    fn node(cpu: &str, memory: &str, pods: &str) -> BTreeMap<String, Quantity> {
        [("cpu", cpu), ("memory", memory), ("pods", pods)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
            .collect()
    }

    #[test]
    fn pods_that_do_not_fit_are_rejected_with_upstreams_words() {
        let alloc = node("2", "1Gi", "3");
        let small = pod("500m", "100Mi");
        assert_eq!(admit(&small, &[&small, &small], &alloc), Ok(()));
        let big = pod("1600m", "100Mi");
        assert_eq!(
            admit(&big, &[&small], &alloc),
            Err(Rejection {
                reason: "OutOfcpu".into(),
                message: "Node didn't have enough resource: cpu, requested: 1600, used: 500, capacity: 2000".into(),
            })
        );
        let fat = pod("100m", "2Gi");
        assert_eq!(admit(&fat, &[], &alloc).unwrap_err().reason, "OutOfmemory");
        let e = admit(&small, &[&small, &small, &small], &alloc).unwrap_err();
        assert_eq!(
            (e.reason.as_str(), e.message.as_str()),
            (
                "OutOfpods",
                "Node didn't have enough resource: pods, requested: 1, used: 3, capacity: 3"
            )
        );
        // Unknown allocatable: nothing to judge by.
        assert_eq!(admit(&fat, &[], &BTreeMap::new()), Ok(()));
    }

    #[test]
    fn a_pod_that_ran_here_was_admitted() {
        let mut p = pod("1", "1Mi");
        assert!(!already_admitted(&p));
        p.status = Some(serde_json::from_value(json!({"phase": "Running"})).expect("status"));
        assert!(already_admitted(&p));
        p.status = Some(
            serde_json::from_value(json!({"phase": "Pending", "containerStatuses": [
                {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 0}]}))
            .expect("status"),
        );
        assert!(already_admitted(&p));
    }
}
