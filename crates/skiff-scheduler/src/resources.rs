//! Compute resources as the scheduler counts them: quantities read as integers (CPU in
//! millicores, everything else in units, both rounded up as upstream's `MilliValue` and
//! `Value` round), the [`Resource`] vector of a node's allocatable or requested amounts, and a
//! pod's effective requests (app containers summed, init containers as a maximum, sidecars
//! (init containers with `restartPolicy: Always`) added to both, pod overhead on top).
//!
//! Upstream counterparts: `framework.Resource` in `pkg/scheduler/framework/types.go`,
//! `k8s.io/component-helpers/resource` (`PodRequests`, `AggregateContainerRequests`) and
//! `pkg/scheduler/util` (`DefaultMilliCPURequest`, `DefaultMemoryRequest`).
//!
//! Not here: pod-level `spec.resources` (the PodLevelResources feature, beta and off by
//! default in 1.33) and in-place resize status resources; both are ignored.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// CPU counted for a container that requests none, in scoring only (upstream's
/// `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// Memory counted for a container that requests none, in scoring only (200 MiB, upstream's
/// `DefaultMemoryRequest`).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Parses a quantity (`100m`, `1Gi`, `1e3`, `.5`) and returns it times `10^scale`, rounded
/// up to an integer: `scale` 3 is upstream's `MilliValue`, 0 its `Value`. `None` when the
/// text is not a quantity; values beyond `i64` saturate.
pub fn parse_scaled(text: &str, scale: i32) -> Option<i64> {
    let s = text.trim();
    let (negative, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let num_len = rest
        .bytes()
        .take_while(|c| c.is_ascii_digit() || *c == b'.')
        .count();
    let (number, suffix) = rest.split_at(num_len);
    if number.bytes().filter(|c| *c == b'.').count() > 1
        || !number.bytes().any(|c| c.is_ascii_digit())
    {
        return None;
    }
    let (exp10, exp2) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        s if s.len() > 1 && (s.starts_with('e') || s.starts_with('E')) => {
            (s[1..].parse::<i32>().ok()?, 0)
        }
        _ => return None,
    };
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    let mut mantissa: i128 = 0;
    let mut exp = exp10 + scale;
    for c in int_part.bytes() {
        if mantissa > i128::MAX / 1000 {
            exp += 1;
            continue;
        }
        mantissa = mantissa * 10 + i128::from(c - b'0');
    }
    for c in frac_part.bytes() {
        if mantissa > i128::MAX / 1000 {
            break;
        }
        mantissa = mantissa * 10 + i128::from(c - b'0');
        exp -= 1;
    }
    let mut value = mantissa;
    for _ in 0..exp2 {
        value = value.saturating_mul(2);
    }
    if exp >= 0 {
        for _ in 0..exp {
            value = value.saturating_mul(10);
        }
    } else {
        let mut divisor: i128 = 1;
        for _ in 0..(-exp).min(38) {
            divisor = divisor.saturating_mul(10);
        }
        // Round away from zero, as upstream's ScaledValue rounds up.
        value = (value + divisor - 1) / divisor;
    }
    let value = if negative { -value } else { value };
    Some(value.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// A quantity's `MilliValue` (0 when malformed; the API server validates quantities).
pub fn milli_value(q: &Quantity) -> i64 {
    parse_scaled(&q.0, 3).unwrap_or(0)
}

/// A quantity's `Value`, rounded up (0 when malformed).
pub fn value(q: &Quantity) -> i64 {
    parse_scaled(&q.0, 0).unwrap_or(0)
}

/// Whether the scheduler tracks a resource besides cpu, memory, ephemeral-storage and pods:
/// extended resources (`example.com/gpu`), `hugepages-*`, `attachable-volumes-*` and the
/// prefixed native ones (upstream's `IsScalarResourceName`).
pub fn is_scalar_resource_name(name: &str) -> bool {
    if matches!(name, "cpu" | "memory" | "ephemeral-storage" | "pods") {
        return false;
    }
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/') && !name.starts_with("requests."))
}

/// Whether a resource is an extended one (domain-qualified, outside `kubernetes.io/`).
pub fn is_extended_resource_name(name: &str) -> bool {
    name.contains('/') && !name.contains("kubernetes.io/") && !name.starts_with("requests.")
}

/// Amounts of every resource the scheduler counts (upstream's `framework.Resource`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resource {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Only meaningful for a node's allocatable (`pods`).
    pub allowed_pod_number: i64,
    /// Scalar resources, sorted by name.
    pub scalar: Vec<(String, i64)>,
}

impl Resource {
    /// The sum of a resource list (a node's allocatable, a container's requests).
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Self {
        let mut r = Self::default();
        r.add_list(list);
        r
    }

    /// Whether nothing is requested.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.iter().all(|(_, v)| *v == 0)
    }

    /// The amount of scalar resource `name` (0 when absent).
    pub fn scalar(&self, name: &str) -> i64 {
        match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => self.scalar[i].1,
            Err(_) => 0,
        }
    }

    fn scalar_mut(&mut self, name: &str) -> &mut i64 {
        let i = match self.scalar.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
            Ok(i) => i,
            Err(i) => {
                self.scalar.insert(i, (name.to_owned(), 0));
                i
            }
        };
        &mut self.scalar[i].1
    }

    /// Adds a resource list (upstream's `Resource.Add`).
    pub fn add_list(&mut self, list: &BTreeMap<String, Quantity>) {
        for (name, q) in list {
            match name.as_str() {
                "cpu" => self.milli_cpu += milli_value(q),
                "memory" => self.memory += value(q),
                "ephemeral-storage" => self.ephemeral_storage += value(q),
                "pods" => self.allowed_pod_number += value(q),
                other if is_scalar_resource_name(other) => *self.scalar_mut(other) += value(q),
                _ => {}
            }
        }
    }

    /// Adds another vector.
    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.allowed_pod_number += other.allowed_pod_number;
        for (name, v) in &other.scalar {
            *self.scalar_mut(name) += v;
        }
    }

    /// Subtracts another vector (a pod leaving a node).
    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.allowed_pod_number -= other.allowed_pod_number;
        for (name, v) in &other.scalar {
            *self.scalar_mut(name) -= v;
        }
    }

    /// Takes the maximum in every dimension (upstream's `SetMaxResource`).
    pub fn set_max(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (name, v) in &other.scalar {
            let slot = self.scalar_mut(name);
            *slot = (*slot).max(*v);
        }
    }
}

fn container_requests(c: &Container, non_zero: bool) -> Resource {
    let requests = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut r = requests.map(Resource::from_list).unwrap_or_default();
    if non_zero {
        let has = |name: &str| requests.is_some_and(|m| m.contains_key(name));
        if !has("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !has("memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// A pod's effective requests (upstream's `resourcehelper.PodRequests`): the sum of its app
/// containers and sidecars, or the largest init container's need if that is more (an init
/// container runs beside the sidecars started before it), plus `spec.overhead`. With
/// `non_zero`, containers without a cpu or memory request count as requesting 100m and
/// 200Mi, as the scorers count them.
pub fn pod_requests(pod: &Pod, non_zero: bool) -> Resource {
    let Some(spec) = pod.spec.as_ref() else {
        return Resource::default();
    };
    let mut reqs = Resource::default();
    for c in &spec.containers {
        reqs.add(&container_requests(c, non_zero));
    }
    let mut restartable = Resource::default();
    let mut init_max = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let r = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&r);
            restartable.add(&r);
            init_max.set_max(&restartable);
        } else {
            let mut use_ = r;
            use_.add(&restartable);
            init_max.set_max(&use_);
        }
    }
    reqs.set_max(&init_max);
    if let Some(overhead) = &spec.overhead {
        reqs.add_list(overhead);
    }
    reqs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantities_round_up_like_upstream() {
        assert_eq!(parse_scaled("100m", 3), Some(100));
        assert_eq!(parse_scaled("1", 3), Some(1000));
        assert_eq!(parse_scaled("0.5", 3), Some(500));
        assert_eq!(parse_scaled("1.5", 0), Some(2));
        assert_eq!(parse_scaled("1Gi", 0), Some(1 << 30));
        assert_eq!(parse_scaled("128Mi", 0), Some(128 << 20));
        assert_eq!(parse_scaled("1k", 0), Some(1000));
        assert_eq!(parse_scaled("1e3", 0), Some(1000));
        assert_eq!(parse_scaled("1n", 3), Some(1));
        assert_eq!(parse_scaled(".5", 3), Some(500));
        assert_eq!(parse_scaled("110", 0), Some(110));
        assert_eq!(parse_scaled("-1", 3), Some(-1000));
        assert_eq!(parse_scaled("abc", 0), None);
        assert_eq!(parse_scaled("1Xi", 0), None);
        assert_eq!(parse_scaled("", 0), None);
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    #[test]
    fn init_containers_are_a_maximum_and_app_containers_a_sum() {
        // Upstream's example: init 2/1G and 2/3G, app 2/1G and 1/1G -> cpu 3, memory 3G.
        let p = pod(json!({
            "initContainers": [
                {"name": "i1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
                {"name": "i2", "resources": {"requests": {"cpu": "2", "memory": "3G"}}}],
            "containers": [
                {"name": "c1", "resources": {"requests": {"cpu": "2", "memory": "1G"}}},
                {"name": "c2", "resources": {"requests": {"cpu": "1", "memory": "1G"}}}]
        }));
        let r = pod_requests(&p, false);
        assert_eq!((r.milli_cpu, r.memory), (3000, 3_000_000_000));
    }

    #[test]
    fn sidecars_add_to_the_sum_and_to_later_init_containers() {
        // A sidecar (1 cpu) then an init container of 2: while it runs 3 are in use; the
        // app (1) beside the sidecar makes 2; the pod needs 3.
        let p = pod(json!({
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}},
                {"name": "init", "resources": {"requests": {"cpu": "2"}}}],
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}],
            "overhead": {"cpu": "250m", "example.com/gpu": "1"}
        }));
        let r = pod_requests(&p, false);
        assert_eq!(r.milli_cpu, 3250);
        assert_eq!(r.scalar("example.com/gpu"), 1);
        // A sidecar after the init container only adds to the sum.
        let p = pod(json!({
            "initContainers": [
                {"name": "init", "resources": {"requests": {"cpu": "2"}}},
                {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}}],
            "containers": [{"name": "c", "resources": {"requests": {"cpu": "500m"}}}]
        }));
        assert_eq!(pod_requests(&p, false).milli_cpu, 2000);
    }

    #[test]
    fn non_zero_requests_fill_missing_cpu_and_memory() {
        let p = pod(json!({"containers": [
            {"name": "a"},
            {"name": "b", "resources": {"requests": {"cpu": "0", "memory": "1Gi"}}}]}));
        let r = pod_requests(&p, true);
        assert_eq!(r.milli_cpu, 100);
        assert_eq!(r.memory, DEFAULT_MEMORY_REQUEST + (1 << 30));
        let r = pod_requests(&p, false);
        assert_eq!((r.milli_cpu, r.memory), (0, 1 << 30));
    }

    #[test]
    fn scalar_names() {
        assert!(is_scalar_resource_name("example.com/gpu"));
        assert!(is_scalar_resource_name("hugepages-2Mi"));
        assert!(!is_scalar_resource_name("cpu"));
        assert!(!is_scalar_resource_name("storage"));
        assert!(is_extended_resource_name("example.com/gpu"));
        assert!(!is_extended_resource_name("kubernetes.io/foo"));
    }
}
