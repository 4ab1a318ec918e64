//! A pod's QoS class, the cgroup its containers go under, and each container's
//! `oom_score_adj`.
//!
//! Upstream: `pkg/apis/core/v1/helper/qos/qos.go` (`ComputePodQOS`, `GetPodQOS`),
//! `pkg/kubelet/qos/policy.go` (`GetContainerOOMScoreAdjust`), `pkg/kubelet/types/pod_update.go`
//! (`IsCriticalPod`, `IsNodeCriticalPod`) and the cgroupfs naming of
//! `pkg/kubelet/cm/pod_container_manager_linux.go` / `qos_container_manager_linux.go`.
//!
//! **cgroup layout.** Upstream's cgroupfs driver puts pods under `kubepods/` (Guaranteed),
//! `kubepods/burstable/` and `kubepods/besteffort/`, each pod in `pod<uid>`. skiff uses the
//! same shape under `/skiff` ([`CGROUP_ROOT`]), so that a skiff node and a kubelet or k3s on
//! the same host never share (or clean up) each other's cgroups.
//!
//! **oom_score_adj.** [`container_oom_score_adj`] returns upstream's value, negative for
//! Guaranteed and node-critical pods (-997). Root on the test machines cannot lower a
//! process's score and `runc create` fails when asked to, so the runtime clamps the value at
//! 0 when it writes config.json (`Resources::oom_score_adj`); that clamp lives there, next
//! to the write, not here. Burstable containers get at least `1000 + (-997) = 3`: that is
//! upstream's code (the documentation's "2" predates the -998 -> -997 change).
//!
//! Not here: pod-level `spec.resources` (the PodLevelResources feature, beta and off by
//! default in 1.33).

use k8s_openapi::api::core::v1::{Container, Pod};

use super::{container_limits, container_requests, is_sidecar, spec_containers};

/// The QoS classes, with upstream's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
}

impl QosClass {
    /// The name in `status.qosClass`.
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "Guaranteed" => Some(QosClass::Guaranteed),
            "Burstable" => Some(QosClass::Burstable),
            "BestEffort" => Some(QosClass::BestEffort),
            _ => None,
        }
    }
}

/// The root of skiff's pod cgroups (upstream: `kubepods`).
pub const CGROUP_ROOT: &str = "/skiff";

/// The score upstream gives Guaranteed and node-critical containers.
pub const GUARANTEED_OOM_SCORE_ADJ: i32 = -997;
/// The score upstream gives BestEffort containers.
pub const BEST_EFFORT_OOM_SCORE_ADJ: i32 = 1000;

/// `SystemCriticalPriority`: pods at or above it are critical.
const SYSTEM_CRITICAL_PRIORITY: i32 = 2_000_000_000;

/// The QoS class from the pod's resources (upstream's `ComputePodQOS`): only cpu and memory
/// count; init containers count as app containers do; BestEffort when nothing is requested
/// or limited; Guaranteed when every container limits both cpu and memory and the pod's
/// summed requests equal its summed limits; Burstable otherwise.
pub fn compute_pod_qos(pod: &Pod) -> QosClass {
    let supported = |name: &str| name == "cpu" || name == "memory";
    let mut requests = super::Amounts::new();
    let mut limits = super::Amounts::new();
    let mut guaranteed = true;
    let init = super::spec_init_containers(pod);
    for c in init.iter().chain(spec_containers(pod)) {
        for (name, v) in container_requests(c) {
            if supported(&name) && v > 0 {
                *requests.entry(name).or_insert(0) += v;
            }
        }
        let mut found = Vec::new();
        for (name, v) in container_limits(c) {
            if supported(&name) && v > 0 {
                found.push(name.clone());
                *limits.entry(name).or_insert(0) += v;
            }
        }
        if !(found.iter().any(|n| n == "cpu") && found.iter().any(|n| n == "memory")) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return QosClass::BestEffort;
    }
    if guaranteed {
        guaranteed = requests.iter().all(|(n, r)| limits.get(n) == Some(r));
    }
    if guaranteed && requests.len() == limits.len() {
        QosClass::Guaranteed
    } else {
        QosClass::Burstable
    }
}

/// The pod's QoS class: `status.qosClass` once set (it never changes for a pod), else
/// computed (upstream's `GetPodQOS`).
pub fn pod_qos(pod: &Pod) -> QosClass {
    pod.status
        .as_ref()
        .and_then(|s| s.qos_class.as_deref())
        .and_then(QosClass::parse)
        .unwrap_or_else(|| compute_pod_qos(pod))
}

/// The pod's cgroup, absolute from the hierarchy roots: `/skiff/pod<uid>` (Guaranteed),
/// `/skiff/burstable/pod<uid>`, `/skiff/besteffort/pod<uid>`.
pub fn pod_cgroup_parent(pod: &Pod) -> String {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    match pod_qos(pod) {
        QosClass::Guaranteed => format!("{CGROUP_ROOT}/pod{uid}"),
        QosClass::Burstable => format!("{CGROUP_ROOT}/burstable/pod{uid}"),
        QosClass::BestEffort => format!("{CGROUP_ROOT}/besteffort/pod{uid}"),
    }
}

/// Every cgroup a pod with `uid` may have, one per QoS class (for cleanup after the pod
/// object is gone).
pub fn pod_cgroup_candidates(uid: &str) -> [String; 3] {
    [
        format!("{CGROUP_ROOT}/pod{uid}"),
        format!("{CGROUP_ROOT}/burstable/pod{uid}"),
        format!("{CGROUP_ROOT}/besteffort/pod{uid}"),
    ]
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// A static pod: one whose source is not the API (`kubernetes.io/config.source`).
pub fn is_static_pod(pod: &Pod) -> bool {
    annotation(pod, "kubernetes.io/config.source").is_some_and(|s| s != "api")
}

/// A mirror pod: the API's copy of a static pod.
pub fn is_mirror_pod(pod: &Pod) -> bool {
    annotation(pod, "kubernetes.io/config.mirror").is_some()
}

/// Upstream's `IsCriticalPod`: static, mirror, or at system-critical priority.
pub fn is_critical_pod(pod: &Pod) -> bool {
    let priority = pod.spec.as_ref().and_then(|s| s.priority);
    is_static_pod(pod)
        || is_mirror_pod(pod)
        || priority.is_some_and(|p| p >= SYSTEM_CRITICAL_PRIORITY)
}

/// Upstream's `IsNodeCriticalPod`: critical and of class `system-node-critical`.
pub fn is_node_critical_pod(pod: &Pod) -> bool {
    let class = pod
        .spec
        .as_ref()
        .and_then(|s| s.priority_class_name.as_deref());
    is_critical_pod(pod) && class == Some("system-node-critical")
}

fn memory_request(c: &Container) -> i64 {
    let nanos = container_requests(c).get("memory").copied().unwrap_or(0);
    // Value(): whole bytes, rounded up.
    let bytes = (nanos + 999_999_999).div_euclid(1_000_000_000);
    bytes.clamp(0, i128::from(i64::MAX)) as i64
}

/// The container's `oom_score_adj` (upstream's `GetContainerOOMScoreAdjust`), for a node
/// with `memory_capacity` bytes. Negative for Guaranteed and node-critical pods: see the
/// module doc for who clamps it.
pub fn container_oom_score_adj(pod: &Pod, container: &Container, memory_capacity: i64) -> i32 {
    if is_node_critical_pod(pod) {
        return GUARANTEED_OOM_SCORE_ADJ;
    }
    match pod_qos(pod) {
        QosClass::Guaranteed => return GUARANTEED_OOM_SCORE_ADJ,
        QosClass::BestEffort => return BEST_EFFORT_OOM_SCORE_ADJ,
        QosClass::Burstable => {}
    }
    let capacity = i128::from(memory_capacity.max(1));
    let adj_for = |request: i64| 1000 - (1000 * i128::from(request)) / capacity;
    let mut adj = adj_for(memory_request(container));
    // A sidecar scores no higher than the app container with the smallest request.
    let sidecar = is_sidecar(container)
        && super::spec_init_containers(pod)
            .iter()
            .any(|c| c.name == container.name);
    if sidecar {
        if let Some(min) = spec_containers(pod).iter().map(memory_request).min() {
            adj = adj.min(adj_for(min));
        }
    }
    let floor = i128::from(1000 + GUARANTEED_OOM_SCORE_ADJ);
    if adj < floor {
        return floor as i32;
    }
    if adj == i128::from(BEST_EFFORT_OOM_SCORE_ADJ) {
        return (adj - 1) as i32;
    }
    adj as i32
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).expect("test pod")
    }

    fn res(req: &[(&str, &str)], lim: &[(&str, &str)]) -> serde_json::Value {
        let m = |l: &[(&str, &str)]| {
            serde_json::Value::Object(l.iter().map(|(k, v)| (k.to_string(), json!(v))).collect())
        };
        json!({"requests": m(req), "limits": m(lim)})
    }

    fn pod_with(init: Vec<serde_json::Value>, app: Vec<serde_json::Value>) -> Pod {
        let c = |i: usize, r: &serde_json::Value, prefix: &str| json!({"name": format!("{prefix}{i}"), "image": "busybox", "resources": r});
        let init: Vec<_> = init
            .iter()
            .enumerate()
            .map(|(i, r)| c(i, r, "init"))
            .collect();
        let app: Vec<_> = app.iter().enumerate().map(|(i, r)| c(i, r, "c")).collect();
        pod(json!({"metadata": {"name": "p", "uid": "u1"},
                   "spec": {"initContainers": init, "containers": app}}))
    }

    /// Mirrors `TestComputePodQOS` in `pkg/apis/core/v1/helper/qos/qos_test.go`.
    #[test]
    fn qos_classes_as_upstream_computes_them() {
        use QosClass::*;
        let g = res(
            &[("cpu", "100m"), ("memory", "100Mi")],
            &[("cpu", "100m"), ("memory", "100Mi")],
        );
        let cases: Vec<(
            &str,
            Vec<serde_json::Value>,
            Vec<serde_json::Value>,
            QosClass,
        )> = vec![
            ("nothing", vec![], vec![res(&[], &[])], BestEffort),
            (
                "two empty",
                vec![],
                vec![res(&[], &[]), res(&[], &[])],
                BestEffort,
            ),
            (
                "equal requests and limits",
                vec![],
                vec![g.clone()],
                Guaranteed,
            ),
            (
                "limits only default requests",
                vec![],
                vec![res(&[], &[("cpu", "1"), ("memory", "1Gi")])],
                Guaranteed,
            ),
            (
                "0.1 cpu equals 100m",
                vec![],
                vec![res(
                    &[("cpu", "0.1"), ("memory", "100Mi")],
                    &[("cpu", "100m"), ("memory", "100Mi")],
                )],
                Guaranteed,
            ),
            (
                "one guaranteed one best effort",
                vec![],
                vec![g.clone(), res(&[], &[])],
                Burstable,
            ),
            (
                "requests below limits",
                vec![],
                vec![res(
                    &[("cpu", "100m"), ("memory", "100Mi")],
                    &[("cpu", "200m"), ("memory", "100Mi")],
                )],
                Burstable,
            ),
            (
                "cpu limit only",
                vec![],
                vec![res(&[], &[("cpu", "100m")])],
                Burstable,
            ),
            (
                "memory request only",
                vec![],
                vec![res(&[("memory", "1Gi")], &[])],
                Burstable,
            ),
            (
                "extended resources do not count",
                vec![],
                vec![res(
                    &[("example.com/gpu", "1")],
                    &[("example.com/gpu", "1")],
                )],
                BestEffort,
            ),
            (
                "zero requests are nothing",
                vec![],
                vec![res(&[("cpu", "0"), ("memory", "0")], &[])],
                BestEffort,
            ),
            (
                "best effort init makes it burstable",
                vec![res(&[], &[])],
                vec![g.clone()],
                Burstable,
            ),
            (
                "burstable init",
                vec![res(&[("cpu", "10m")], &[])],
                vec![res(&[], &[])],
                Burstable,
            ),
            (
                "guaranteed init and app",
                vec![g.clone()],
                vec![g.clone()],
                Guaranteed,
            ),
        ];
        for (name, init, app, want) in cases {
            assert_eq!(compute_pod_qos(&pod_with(init, app)), want, "{name}");
        }
    }

    #[test]
    fn status_qos_class_wins_and_cgroup_parents_follow_it() {
        let mut p = pod_with(vec![], vec![res(&[], &[])]);
        assert_eq!(pod_cgroup_parent(&p), "/skiff/besteffort/podu1");
        p.status = Some(serde_json::from_value(json!({"qosClass": "Guaranteed"})).unwrap());
        assert_eq!(pod_qos(&p), QosClass::Guaranteed);
        assert_eq!(pod_cgroup_parent(&p), "/skiff/podu1");
        let b = pod_with(vec![], vec![res(&[("cpu", "1")], &[])]);
        assert_eq!(pod_cgroup_parent(&b), "/skiff/burstable/podu1");
    }

    /// Mirrors `TestGetContainerOOMScoreAdjust` in `pkg/kubelet/qos/policy_test.go`
    /// (capacity 4000000000 bytes there too).
    #[test]
    fn oom_score_adj_as_upstream_policy() {
        const CAP: i64 = 4_000_000_000;
        let be = pod_with(vec![], vec![res(&[], &[])]);
        assert_eq!(
            container_oom_score_adj(&be, &spec_containers(&be)[0], CAP),
            1000
        );
        let g = pod_with(
            vec![],
            vec![res(
                &[("cpu", "1"), ("memory", "1G")],
                &[("cpu", "1"), ("memory", "1G")],
            )],
        );
        assert_eq!(
            container_oom_score_adj(&g, &spec_containers(&g)[0], CAP),
            -997
        );
        let cases = [
            ("1G of 4G", "1G", 750),
            ("tiny request rounds to 999, not 1000", "1", 999),
            ("all memory floors at 3", "4G", 3),
            ("more than capacity floors at 3", "8G", 3),
            ("3.99G", "3990000000", 3),
            ("2G", "2G", 500),
        ];
        for (name, mem, want) in cases {
            let p = pod_with(vec![], vec![res(&[("memory", mem)], &[])]);
            assert_eq!(
                container_oom_score_adj(&p, &spec_containers(&p)[0], CAP),
                want,
                "{name}"
            );
        }
        // Node-critical pods are -997 whatever their class.
        let mut crit = be.clone();
        let spec = crit.spec.as_mut().unwrap();
        spec.priority = Some(2_000_001_000);
        spec.priority_class_name = Some("system-node-critical".into());
        assert_eq!(
            container_oom_score_adj(&crit, &spec_containers(&crit)[0], CAP),
            -997
        );
    }

    /// Mirrors the sidecar cases of `policy_test.go`: a sidecar scores no higher than the app
    /// container with the smallest memory request.
    #[test]
    fn sidecar_oom_score_adj_follows_the_smallest_app_container() {
        const CAP: i64 = 4_000_000_000;
        let mut p = pod_with(
            vec![res(&[("memory", "1")], &[])],
            vec![res(&[("memory", "1G")], &[]), res(&[("memory", "2G")], &[])],
        );
        let sidecar = {
            let init = p.spec.as_mut().unwrap().init_containers.as_mut().unwrap();
            init[0].restart_policy = Some("Always".into());
            init[0].clone()
        };
        assert_eq!(container_oom_score_adj(&p, &sidecar, CAP), 750);
        let mut plain = sidecar.clone();
        plain.restart_policy = None;
        p.spec.as_mut().unwrap().init_containers.as_mut().unwrap()[0] = plain.clone();
        assert_eq!(container_oom_score_adj(&p, &plain, CAP), 999);
    }
}
