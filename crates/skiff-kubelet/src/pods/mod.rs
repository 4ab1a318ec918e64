//! The kubelet's pure core: decisions with state in and values out, no I/O, no async.
//!
//! - [`qos`]: a pod's QoS class, its cgroup parent, each container's `oom_score_adj`.
//! - [`resources`]: cgroup values (cpu shares, CFS quota, memory limit) for a container and
//!   for the pod's own cgroup.
//! - [`env`]: a container's environment (`envFrom`, `env` with `$(VAR)` expansion and
//!   `valueFrom`, the Service link variables).
//! - [`convert`]: pod + container + image config -> the runtime's
//!   [`ContainerConfig`](skiff_runtime::container::spec::ContainerConfig).
//! - [`status`]: observed container states -> `containerStatuses`, phase and conditions.
//! - [`backoff`]: CrashLoopBackOff timing and the restart decision.
//!
//! The pod worker (the part with I/O) reads the API objects and the runtime's state, calls
//! these, and acts on what they return. Each module names the upstream file it follows.

pub mod backoff;
pub mod convert;
pub mod env;
pub mod qos;
pub mod resources;
pub mod status;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_api::validation::quantity::Quantity as Exact;

/// A quantity in nano units (exact; `Quantity` strings are parsed by `skiff-api`, the same
/// parser the API server validates with). Malformed text counts as zero: the API server
/// has validated every quantity the kubelet sees.
pub(crate) fn nanos(q: &Quantity) -> i128 {
    Exact::parse(&q.0).map(|q| q.nanos).unwrap_or(0)
}

/// A resource list as exact nano amounts.
pub(crate) type Amounts = BTreeMap<String, i128>;

/// A container's requests as the API server's defaulting leaves them: a resource with a
/// limit and no request requests its limit (`SetDefaults_Container` in
/// `pkg/apis/core/v1/defaults.go`). Pods from the API are already defaulted; static pods
/// and tests may not be, and this makes both give the same answers.
pub(crate) fn container_requests(c: &Container) -> Amounts {
    let res = c.resources.as_ref();
    let mut out: Amounts = res
        .and_then(|r| r.requests.as_ref())
        .map(|m| m.iter().map(|(k, q)| (k.clone(), nanos(q))).collect())
        .unwrap_or_default();
    for (k, v) in container_limits(c) {
        out.entry(k).or_insert(v);
    }
    out
}

/// A container's limits.
pub(crate) fn container_limits(c: &Container) -> Amounts {
    c.resources
        .as_ref()
        .and_then(|r| r.limits.as_ref())
        .map(|m| m.iter().map(|(k, q)| (k.clone(), nanos(q))).collect())
        .unwrap_or_default()
}

/// An init container with `restartPolicy: Always`: a sidecar (upstream's
/// `IsRestartableInitContainer`).
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

pub(crate) fn spec_containers(pod: &Pod) -> &[Container] {
    pod.spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[])
}

pub(crate) fn spec_init_containers(pod: &Pod) -> &[Container] {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or(&[])
}
