//! cgroup values from a pod's resources: each container's cpu shares, CFS quota and memory
//! limit, and the pod-level cgroup's.
//!
//! Upstream: `pkg/kubelet/kuberuntime/kuberuntime_container_linux.go`
//! (`generateLinuxContainerResources`, `calculateLinuxResources`),
//! `pkg/kubelet/kuberuntime/helpers_linux.go` (`milliCPUToQuota`),
//! `pkg/kubelet/cm/helpers_linux.go` (`MilliCPUToShares`, `MilliCPUToQuota`,
//! `ResourceConfigForPod`) and `k8s.io/component-helpers/resource` (`PodRequests`,
//! `PodLimits`).
//!
//! Quantities are parsed exactly by `skiff-api` (`validation::quantity`), the parser the API
//! server validates with; `skiff-scheduler::resources` has another (`parse_scaled`, integer
//! results only), which this crate cannot depend on (the scheduler is not a library of the
//! kubelet's).
//!
//! Not here: hugepages, swap (`memory_swap_limit`), the pod pids limit (a kubelet flag), the
//! CPU manager and memory QoS (`memory.min`/`memory.high`); the CFS quota is always enforced
//! (upstream's `--cpu-cfs-quota` default) with the default 100 ms period.

use k8s_openapi::api::core::v1::{Container, Pod};
use skiff_runtime::container::spec::Resources;

use super::qos::{container_oom_score_adj, pod_qos, QosClass};
use super::{container_limits, is_sidecar, spec_containers, spec_init_containers, Amounts};

/// The smallest cpu.shares (the kernel's minimum for an unset request).
pub const MIN_SHARES: u64 = 2;
/// cpu.shares per whole CPU.
pub const SHARES_PER_CPU: u64 = 1024;
/// The CFS period, 100 ms in microseconds.
pub const QUOTA_PERIOD: u64 = 100_000;
/// The smallest CFS quota, 1 ms.
pub const MIN_QUOTA_PERIOD: i64 = 1000;

/// `MilliCPUToShares`: 1024 per CPU, at least 2 (also for no request at all).
pub fn milli_cpu_to_shares(milli_cpu: i64) -> u64 {
    if milli_cpu <= 0 {
        return MIN_SHARES;
    }
    let shares = (i128::from(milli_cpu) * i128::from(SHARES_PER_CPU)) / 1000;
    (shares.min(i128::from(u64::MAX)) as u64).max(MIN_SHARES)
}

/// `MilliCPUToQuota` with the default period: 0 (no quota) for no limit, else the limit's
/// share of a period, at least 1 ms.
pub fn milli_cpu_to_quota(milli_cpu: i64) -> i64 {
    if milli_cpu == 0 {
        return 0;
    }
    let quota = (i128::from(milli_cpu) * i128::from(QUOTA_PERIOD)) / 1000;
    (quota.min(i128::from(i64::MAX)) as i64).max(MIN_QUOTA_PERIOD)
}

fn milli(nanos: i128) -> i64 {
    let m = (nanos + 999_999).div_euclid(1_000_000);
    m.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn whole(nanos: i128) -> i64 {
    let v = (nanos + 999_999_999).div_euclid(1_000_000_000);
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// One container's cgroup values (`generateLinuxContainerResources`): shares from the cpu
/// request (from the limit when only a limit is set, as upstream repeats the API's
/// defaulting), quota from the cpu limit (none without one; the period is always written, as
/// containerd writes any non-zero period), the memory limit, and [`container_oom_score_adj`]
/// for a node of `memory_capacity` bytes.
pub fn container_resources(pod: &Pod, container: &Container, memory_capacity: i64) -> Resources {
    let requests = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref());
    let limits = container_limits(container);
    let cpu_limit = limits.get("cpu").copied().unwrap_or(0);
    let cpu_request = match requests.and_then(|r| r.get("cpu")) {
        Some(q) => super::nanos(q),
        None => cpu_limit,
    };
    let memory_limit = whole(limits.get("memory").copied().unwrap_or(0));
    let quota = milli_cpu_to_quota(milli(cpu_limit));
    Resources {
        cpu_shares: Some(milli_cpu_to_shares(milli(cpu_request))),
        cpu_quota: (quota != 0).then_some(quota),
        cpu_period: Some(QUOTA_PERIOD),
        memory_limit: (memory_limit != 0).then_some(memory_limit),
        memory_swap_limit: None,
        pids_limit: None,
        oom_score_adj: container_oom_score_adj(pod, container, memory_capacity),
    }
}

fn add(into: &mut Amounts, from: &Amounts) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

fn max_into(into: &mut Amounts, from: &Amounts) {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_insert(*v);
        if *v > *e {
            *e = *v;
        }
    }
}

/// The pod's effective amounts (`PodRequests`/`PodLimits` of component-helpers): app
/// containers and sidecars summed; each regular init container needs its own amount plus
/// the sidecars started before it, and the pod the larger of that and the sum. `of` picks a
/// container's list; `each` sees what upstream hands its `ContainerFn` (an app container's
/// own list, a sidecar's running sidecar total, an init container's own plus sidecars).
fn pod_amounts(
    pod: &Pod,
    of: impl Fn(&Container) -> Amounts,
    mut each: impl FnMut(&Amounts),
) -> Amounts {
    let mut sum = Amounts::new();
    for c in spec_containers(pod) {
        let own = of(c);
        each(&own);
        add(&mut sum, &own);
    }
    let mut sidecars = Amounts::new();
    let mut init_max = Amounts::new();
    for c in spec_init_containers(pod) {
        let own = of(c);
        let seen = if is_sidecar(c) {
            add(&mut sum, &own);
            add(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut with = own;
            add(&mut with, &sidecars);
            with
        };
        each(&seen);
        max_into(&mut init_max, &seen);
    }
    max_into(&mut sum, &init_max);
    sum
}

fn overhead(pod: &Pod) -> Amounts {
    pod.spec
        .as_ref()
        .and_then(|s| s.overhead.as_ref())
        .map(|m| {
            m.iter()
                .map(|(k, q)| (k.clone(), super::nanos(q)))
                .collect()
        })
        .unwrap_or_default()
}

/// The pod's requests, as upstream's `PodRequests` (overhead added), over defaulted
/// container requests (a limit with no request requests the limit).
pub(crate) fn pod_requests(pod: &Pod) -> Amounts {
    let mut out = pod_amounts(pod, super::container_requests, |_| {});
    add(&mut out, &overhead(pod));
    out
}

/// The pod's limits, as upstream's `PodLimits` (overhead added to the non-zero limits);
/// `each` as in [`pod_amounts`].
fn pod_limits(pod: &Pod, each: impl FnMut(&Amounts)) -> Amounts {
    let mut out = pod_amounts(pod, container_limits, each);
    for (k, v) in overhead(pod) {
        if let Some(e) = out.get_mut(&k).filter(|e| **e != 0) {
            *e += v;
        }
    }
    out
}

/// The pod cgroup's values (upstream's `ResourceConfig` from `ResourceConfigForPod`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodResourceConfig {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub memory_limit: Option<i64>,
}

/// `ResourceConfigForPod`: Guaranteed pods get shares, quota and the memory limit;
/// Burstable pods get shares, and quota and the memory limit only when every container
/// (init containers too) declares that limit; BestEffort pods get the minimum shares.
/// A Guaranteed pod's quota is -1 (unlimited) when its limit sums to nothing, never here
/// since every container has one.
pub fn pod_resource_config(pod: &Pod) -> PodResourceConfig {
    let requests = pod_requests(pod);
    let mut cpu_limits_declared = true;
    let mut memory_limits_declared = true;
    // As upstream's ContainerFn: every list the aggregation sees must have the limit.
    let limits = pod_limits(pod, |l| {
        if l.get("cpu").copied().unwrap_or(0) == 0 {
            cpu_limits_declared = false;
        }
        if l.get("memory").copied().unwrap_or(0) == 0 {
            memory_limits_declared = false;
        }
    });
    let shares = milli_cpu_to_shares(milli(requests.get("cpu").copied().unwrap_or(0)));
    let quota = milli_cpu_to_quota(milli(limits.get("cpu").copied().unwrap_or(0)));
    let memory = whole(limits.get("memory").copied().unwrap_or(0));
    match pod_qos(pod) {
        QosClass::Guaranteed => PodResourceConfig {
            cpu_shares: Some(shares),
            cpu_quota: Some(quota),
            cpu_period: Some(QUOTA_PERIOD),
            memory_limit: Some(memory),
        },
        QosClass::Burstable => PodResourceConfig {
            cpu_shares: Some(shares),
            cpu_quota: cpu_limits_declared.then_some(quota),
            cpu_period: cpu_limits_declared.then_some(QUOTA_PERIOD),
            memory_limit: memory_limits_declared.then_some(memory),
        },
        QosClass::BestEffort => PodResourceConfig {
            cpu_shares: Some(MIN_SHARES),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::qos::tests::pod;
    use serde_json::json;

    /// Mirrors `TestMilliCPUToShares` / `TestMilliCPUToQuota` in
    /// `pkg/kubelet/cm/helpers_linux_test.go`.
    #[test]
    fn shares_and_quota_as_upstream() {
        for (milli, shares) in [
            (0, 2),
            (1, 2),
            (2, 2),
            (3, 3),
            (100, 102),
            (1000, 1024),
            (4000, 4096),
        ] {
            assert_eq!(milli_cpu_to_shares(milli), shares, "{milli}m");
        }
        for (milli, quota) in [
            (0, 0),
            (5, 1000),
            (9, 1000),
            (10, 1000),
            (200, 20000),
            (500, 50000),
            (1000, 100000),
            (1500, 150000),
        ] {
            assert_eq!(milli_cpu_to_quota(milli), quota, "{milli}m");
        }
    }

    fn one(resources: serde_json::Value) -> Pod {
        pod(json!({"metadata": {"name": "p", "uid": "u"},
                   "spec": {"containers": [{"name": "c", "image": "i", "resources": resources}]}}))
    }

    /// Mirrors `TestGenerateLinuxContainerResources` / `TestCalculateLinuxResources` in
    /// `pkg/kubelet/kuberuntime/kuberuntime_container_linux_test.go`.
    #[test]
    fn container_values() {
        const CAP: i64 = 4_000_000_000;
        let cases = [
            (
                json!({"requests": {"cpu": "1", "memory": "128Mi"}, "limits": {"cpu": "2", "memory": "256Mi"}}),
                Some(1024),
                Some(200_000),
                Some(268_435_456),
            ),
            (
                json!({"limits": {"cpu": "500m", "memory": "1Gi"}}),
                Some(512),
                Some(50_000),
                Some(1_073_741_824),
            ),
            (json!({"requests": {"cpu": "250m"}}), Some(256), None, None),
            (json!({}), Some(2), None, None),
            (
                json!({"requests": {"cpu": "0"}, "limits": {"cpu": "1m"}}),
                Some(2),
                Some(1000),
                None,
            ),
            (
                json!({"limits": {"memory": "1.5Gi"}}),
                Some(2),
                None,
                Some(1_610_612_736),
            ),
        ];
        for (r, shares, quota, mem) in cases {
            let p = one(r.clone());
            let got = container_resources(&p, &spec_containers(&p)[0], CAP);
            assert_eq!(
                (got.cpu_shares, got.cpu_quota, got.memory_limit),
                (shares, quota, mem),
                "{r}"
            );
            assert_eq!(got.cpu_period, Some(QUOTA_PERIOD));
        }
        let g = one(json!({"limits": {"cpu": "1", "memory": "1G"}}));
        assert_eq!(
            container_resources(&g, &spec_containers(&g)[0], CAP).oom_score_adj,
            -997
        );
    }

    /// Mirrors `TestResourceConfigForPod` in `pkg/kubelet/cm/helpers_linux_test.go`.
    #[test]
    fn pod_cgroup_values() {
        let c =
            |name: &str, r: serde_json::Value| json!({"name": name, "image": "i", "resources": r});
        let cases = [
            (
                "best effort",
                json!([c("a", json!({}))]),
                json!(null),
                PodResourceConfig {
                    cpu_shares: Some(2),
                    ..Default::default()
                },
            ),
            (
                "burstable no limits",
                json!([c(
                    "a",
                    json!({"requests": {"cpu": "100m", "memory": "100Mi"}})
                )]),
                json!(null),
                PodResourceConfig {
                    cpu_shares: Some(102),
                    ..Default::default()
                },
            ),
            (
                "burstable with limits",
                json!([c(
                    "a",
                    json!({"requests": {"cpu": "100m", "memory": "100Mi"}, "limits": {"cpu": "200m", "memory": "200Mi"}})
                )]),
                json!(null),
                PodResourceConfig {
                    cpu_shares: Some(102),
                    cpu_quota: Some(20000),
                    cpu_period: Some(100_000),
                    memory_limit: Some(209_715_200),
                },
            ),
            (
                "burstable, one container without limits",
                json!([
                    c(
                        "a",
                        json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "200m", "memory": "200Mi"}})
                    ),
                    c("b", json!({"requests": {"cpu": "100m"}}))
                ]),
                json!(null),
                PodResourceConfig {
                    cpu_shares: Some(204),
                    ..Default::default()
                },
            ),
            (
                "guaranteed",
                json!([
                    c("a", json!({"limits": {"cpu": "1", "memory": "1Gi"}})),
                    c("b", json!({"limits": {"cpu": "500m", "memory": "1Gi"}}))
                ]),
                json!(null),
                PodResourceConfig {
                    cpu_shares: Some(1536),
                    cpu_quota: Some(150_000),
                    cpu_period: Some(100_000),
                    memory_limit: Some(2_147_483_648),
                },
            ),
            (
                "guaranteed with overhead",
                json!([c("a", json!({"limits": {"cpu": "1", "memory": "1Gi"}}))]),
                json!({"cpu": "250m", "memory": "1Gi"}),
                PodResourceConfig {
                    cpu_shares: Some(1280),
                    cpu_quota: Some(125_000),
                    cpu_period: Some(100_000),
                    memory_limit: Some(2_147_483_648),
                },
            ),
        ];
        for (name, containers, overhead, want) in cases {
            let p = pod(json!({"metadata": {"name": "p", "uid": "u"},
                               "spec": {"containers": containers, "overhead": overhead}}));
            assert_eq!(pod_resource_config(&p), want, "{name}");
        }
    }

    /// Init containers are a maximum, sidecars add up (component-helpers' `PodRequests`).
    #[test]
    fn pod_requests_with_init_containers_and_sidecars() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "initContainers": [
                {"name": "sidecar", "image": "i", "restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
                {"name": "big-init", "image": "i", "resources": {"requests": {"cpu": "2"}}}],
            "containers": [{"name": "a", "image": "i", "resources": {"requests": {"cpu": "500m"}}}]}}));
        // max(500m + 100m, 2 + 100m) = 2100m
        assert_eq!(pod_requests(&p).get("cpu"), Some(&2_100_000_000));
    }

    /// Init containers take part in "every container declares a limit" the way upstream's
    /// `ContainerFn` sees them: a regular init container with its sidecars' limits.
    #[test]
    fn init_containers_and_limits_declared() {
        let lim = json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "200m", "memory": "64Mi"}});
        let mk = |init: serde_json::Value| {
            pod(json!({"metadata": {"name": "p", "uid": "u"}, "spec": {
                "initContainers": init,
                "containers": [{"name": "a", "image": "i", "resources": lim}]}}))
        };
        let plain = mk(json!([{"name": "init", "image": "i"}]));
        assert_eq!(pod_resource_config(&plain).cpu_quota, None);
        let with_sidecar = mk(json!([
            {"name": "side", "image": "i", "restartPolicy": "Always", "resources": lim},
            {"name": "init", "image": "i"}]));
        let got = pod_resource_config(&with_sidecar);
        // Sum of app + sidecar limits: 400m, 128Mi.
        assert_eq!(
            (got.cpu_quota, got.memory_limit),
            (Some(40_000), Some(134_217_728))
        );
        assert_eq!(got.cpu_shares, Some(204));
    }
}
