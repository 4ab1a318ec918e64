//! Resource quota arithmetic and usage evaluation, shared by quota admission (the API
//! server charges a create against `status.used`) and the ResourceQuota controller (which
//! recalculates `status.used` from the objects). Upstream counterparts:
//! `k8s.io/apiserver/pkg/quota/v1` (resource lists: add, subtract, mask, compare),
//! `pkg/quota/v1/evaluator/core` (what a pod, service or claim uses, quota scopes),
//! `apiserver/pkg/quota/v1/generic` (object counts) and `CheckRequest` of
//! `apiserver/pkg/admission/plugin/resourcequota/controller.go`.
//!
//! Objects are JSON in their served version. Nothing here reads or writes anything: the
//! callers hand in the quotas and objects and store what comes out.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::validation::quantity::Quantity;

/// A resource list (`corev1.ResourceList`), keys sorted as upstream prints them.
pub type ResourceList = BTreeMap<String, Quantity>;

/// `storageClassSuffix` of the PVC evaluator.
pub const STORAGE_CLASS_SUFFIX: &str = ".storageclass.storage.k8s.io/";

/// The resource list at `v` (a JSON map of quantities); malformed quantities are skipped
/// (validation refuses them before they are stored).
pub fn resource_list(v: Option<&Value>) -> ResourceList {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, q)| Some((k.clone(), Quantity::from_json(q).ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// A resource list as JSON, each quantity in its canonical form.
pub fn to_json(list: &ResourceList) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, q)| (k.clone(), json!(q.canonical())))
            .collect(),
    )
}

/// Upstream's `quota.Add`.
pub fn add(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    for (k, q) in b {
        let sum = match out.get(k) {
            Some(mine) => *mine + *q,
            None => *q,
        };
        out.insert(k.clone(), sum);
    }
    out
}

/// Upstream's `quota.Subtract`: keys of `b` missing from `a` are negated.
pub fn subtract(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = a.clone();
    for (k, q) in b {
        let diff = match out.get(k) {
            Some(mine) => *mine - *q,
            None => Quantity::zero() - *q,
        };
        out.insert(k.clone(), diff);
    }
    out
}

/// Upstream's `quota.SubtractWithNonNegativeResult`: `a - b` per key, never below zero.
pub fn subtract_non_negative(a: &ResourceList, b: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    for (k, q) in a {
        let diff = match b.get(k) {
            Some(other) => *q - *other,
            None => *q,
        };
        out.insert(
            k.clone(),
            if diff.nanos > 0 {
                diff
            } else {
                Quantity::zero()
            },
        );
    }
    for k in b.keys() {
        out.entry(k.clone()).or_insert_with(Quantity::zero);
    }
    out
}

/// Upstream's `quota.Mask`: only the keys in `names`.
pub fn mask<'a>(list: &ResourceList, names: impl IntoIterator<Item = &'a String>) -> ResourceList {
    names
        .into_iter()
        .filter_map(|n| Some((n.clone(), *list.get(n)?)))
        .collect()
}

/// Upstream's `quota.LessThanOrEqual`: whether every key of `b` present in `a` is no more
/// in `a`, and the keys that are more.
pub fn less_than_or_equal(a: &ResourceList, b: &ResourceList) -> (bool, Vec<String>) {
    let exceeded: Vec<String> = b
        .iter()
        .filter(|(k, limit)| a.get(*k).is_some_and(|used| used.nanos > limit.nanos))
        .map(|(k, _)| k.clone())
        .collect();
    (exceeded.is_empty(), exceeded)
}

/// Upstream's `quota.IsZero`.
pub fn is_zero(list: &ResourceList) -> bool {
    list.values().all(Quantity::is_zero)
}

/// Upstream's `quota.IsNegative`: the keys with a negative amount.
pub fn negative(list: &ResourceList) -> Vec<String> {
    list.iter()
        .filter(|(_, q)| q.nanos < 0)
        .map(|(k, _)| k.clone())
        .collect()
}

/// Whether two lists hold the same amounts (upstream's `quota.Equals`).
pub fn equals(a: &ResourceList, b: &ResourceList) -> bool {
    a.len() == b.len()
        && a.iter()
            .all(|(k, q)| b.get(k).is_some_and(|o| o.nanos == q.nanos))
}

/// Upstream's `prettyPrint`: `k=v` sorted by key, joined by commas.
pub fn pretty_print(list: &ResourceList) -> String {
    list.iter()
        .map(|(k, q)| format!("{k}={}", q.canonical()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Upstream's `prettyPrintResourceNames`.
pub fn pretty_print_names(names: &[String]) -> String {
    let mut sorted: Vec<&str> = names.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.join(",")
}

/// `count/<resource>` for the core group, `count/<resource>.<group>` otherwise.
pub fn object_count_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

/// Resources never charged to a quota (upstream's `ignoredResources` of
/// `pkg/quota/v1/install`): virtual ones, and events.
pub fn is_ignored(group: &str, resource: &str) -> bool {
    matches!(
        (group, resource),
        ("", "events" | "bindings" | "componentstatuses")
            | ("events.k8s.io", "events")
            | ("authentication.k8s.io", _)
            | ("authorization.k8s.io", _)
    )
}

/// What measures a kind's use of quota.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evaluator {
    /// Pods: compute resources, `pods`, `count/pods`, scopes.
    Pods,
    /// Services: `services`, `services.loadbalancers`, `services.nodeports`.
    Services,
    /// PersistentVolumeClaims: `persistentvolumeclaims`, `requests.storage`, per class.
    Claims,
    /// Any other kind: `count/<resource>.<group>` (and the legacy name of the core kinds
    /// that had one: `configmaps`, `secrets`, `replicationcontrollers`, `resourcequotas`).
    ObjectCount {
        group: String,
        resource: String,
        legacy: Option<String>,
    },
}

const POD_RESOURCES: &[&str] = &[
    "count/pods",
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
];

/// The resources whose containers must each name them when a quota tracks them
/// (upstream's pod `validationSet`).
const POD_CONSTRAINED: &[&str] = &[
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// Whether `name` is native to Kubernetes (no domain, or a `kubernetes.io` one).
fn is_native(name: &str) -> bool {
    match name.split_once('/') {
        None => true,
        Some((domain, _)) => domain == "kubernetes.io" || domain.ends_with(".kubernetes.io"),
    }
}

/// An extended resource a quota can name: `requests.<domain>/<name>` (overcommit is not
/// supported for extended resources, so only their requests are quota'd).
fn is_extended_for_quota(name: &str) -> bool {
    name.strip_prefix("requests.")
        .is_some_and(|rest| !is_native(rest) && !rest.starts_with("hugepages-"))
}

fn is_extended(name: &str) -> bool {
    !is_native(name) && !name.starts_with("requests.")
}

impl Evaluator {
    /// The evaluator of a resource (`None`: never quota'd).
    pub fn for_resource(group: &str, resource: &str) -> Option<Self> {
        if is_ignored(group, resource) {
            return None;
        }
        Some(match (group, resource) {
            ("", "pods") => Self::Pods,
            ("", "services") => Self::Services,
            ("", "persistentvolumeclaims") => Self::Claims,
            _ => Self::ObjectCount {
                group: group.into(),
                resource: resource.into(),
                legacy: matches!(
                    (group, resource),
                    (
                        "",
                        "configmaps" | "secrets" | "replicationcontrollers" | "resourcequotas"
                    )
                )
                .then(|| resource.to_owned()),
            },
        })
    }

    /// The evaluator a quota's resource name belongs to (`count/deployments.apps` ->
    /// deployments of apps), for the controller: `None` for compute and other names the
    /// three typed evaluators own, or names nothing measures.
    pub fn for_count_name(name: &str) -> Option<(String, String)> {
        let rest = name.strip_prefix("count/")?;
        let (resource, group) = rest.split_once('.').unwrap_or((rest, ""));
        Some((group.to_owned(), resource.to_owned()))
    }

    /// Upstream's `MatchingResources`: which of `names` this evaluator measures.
    pub fn matching_resources(&self, names: &[String]) -> Vec<String> {
        names.iter().filter(|n| self.measures(n)).cloned().collect()
    }

    fn measures(&self, name: &str) -> bool {
        match self {
            Self::Pods => {
                POD_RESOURCES.contains(&name)
                    || name.starts_with("hugepages-")
                    || name.starts_with("requests.hugepages-")
                    || is_extended_for_quota(name)
            }
            Self::Services => matches!(
                name,
                "count/services" | "services" | "services.loadbalancers" | "services.nodeports"
            ),
            Self::Claims => {
                matches!(
                    name,
                    "count/persistentvolumeclaims" | "persistentvolumeclaims" | "requests.storage"
                ) || ["persistentvolumeclaims", "requests.storage"]
                    .iter()
                    .any(|r| name.ends_with(&format!("{STORAGE_CLASS_SUFFIX}{r}")))
            }
            Self::ObjectCount {
                group,
                resource,
                legacy,
            } => name == object_count_name(group, resource) || legacy.as_deref() == Some(name),
        }
    }

    /// Whether the evaluator charges an update (upstream's `Handles`: a Service can change
    /// type, a claim can grow; object counts and pods are charged on create only).
    pub fn handles_update(&self) -> bool {
        matches!(self, Self::Services | Self::Claims)
    }

    /// Upstream's `Usage`: what `obj` uses. `now` decides whether a terminating pod's grace
    /// period is over.
    pub fn usage(&self, obj: &Value, now: chrono::DateTime<chrono::Utc>) -> ResourceList {
        match self {
            Self::Pods => pod_usage(obj, now),
            Self::Services => service_usage(obj),
            Self::Claims => claim_usage(obj),
            Self::ObjectCount {
                group,
                resource,
                legacy,
            } => {
                let mut out = ResourceList::new();
                out.insert(object_count_name(group, resource), Quantity::from_int(1));
                if let Some(l) = legacy {
                    out.insert(l.clone(), Quantity::from_int(1));
                }
                out
            }
        }
    }

    /// Whether `obj` falls under one scope requirement of a quota.
    fn matches_scope(&self, scope: &ScopeRequirement, obj: &Value) -> bool {
        match self {
            Self::Pods => pod_matches_scope(scope, obj),
            // Upstream's `MatchesNoScopeFunc`: scoped quotas are about pods only.
            _ => false,
        }
    }

    /// Upstream's `Matches`: the quota tracks something this evaluator measures and `obj`
    /// is in every one of its scopes.
    pub fn matches(&self, quota: &Value, obj: &Value) -> bool {
        let hard: Vec<String> = resource_list(quota.pointer("/status/hard"))
            .into_keys()
            .collect();
        !self.matching_resources(&hard).is_empty()
            && scopes_of(quota).iter().all(|s| self.matches_scope(s, obj))
    }

    /// Upstream's `Constraints`: a quota that tracks cpu or memory needs every container to
    /// name them. The error is the text after `failed quota: <name>: `.
    pub fn constraints(&self, required: &[String], obj: &Value) -> Result<(), String> {
        if *self != Self::Pods {
            return Ok(());
        }
        let required: BTreeSet<&str> = required
            .iter()
            .map(String::as_str)
            .filter(|r| POD_CONSTRAINED.contains(r))
            .collect();
        if required.is_empty() {
            return Ok(());
        }
        let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for c in containers(obj).chain(init_containers(obj)) {
            let usage = compute_usage(
                &resource_list(c.pointer("/resources/requests")),
                &resource_list(c.pointer("/resources/limits")),
            );
            for r in &required {
                if !usage.contains_key(*r) {
                    missing
                        .entry(r)
                        .or_default()
                        .insert(c.get("name").and_then(Value::as_str).unwrap_or("").into());
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let parts: Vec<String> = missing
            .iter()
            .map(|(r, names)| {
                format!(
                    "{r} for: {}",
                    names.iter().cloned().collect::<Vec<_>>().join(",")
                )
            })
            .collect();
        Err(format!("must specify {}", parts.join("; ")))
    }
}

/// One scope requirement of a quota (`spec.scopes` as `Exists`, and
/// `spec.scopeSelector.matchExpressions`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeRequirement {
    pub scope: String,
    pub operator: String,
    pub values: Vec<String>,
}

/// Upstream's `getScopeSelectorsFromQuota`.
pub fn scopes_of(quota: &Value) -> Vec<ScopeRequirement> {
    let mut out: Vec<ScopeRequirement> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| ScopeRequirement {
            scope: s.into(),
            operator: "Exists".into(),
            values: Vec::new(),
        })
        .collect();
    for e in quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push(ScopeRequirement {
            scope: e
                .get("scopeName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            operator: e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or("")
                .into(),
            values: e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        });
    }
    out
}

fn containers(pod: &Value) -> impl Iterator<Item = &Value> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn init_containers(pod: &Value) -> impl Iterator<Item = &Value> {
    pod.pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Upstream's `QuotaV1Pod`: terminal pods, and terminating pods past their grace period
/// (a lost node's), use no compute quota.
pub fn pod_counts(pod: &Value, now: chrono::DateTime<chrono::Utc>) -> bool {
    if matches!(phase(pod), "Succeeded" | "Failed") {
        return false;
    }
    let deletion = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    if let (Some(at), Some(grace)) = (deletion, grace) {
        if now > at.with_timezone(&chrono::Utc) + chrono::Duration::seconds(grace) {
            return false;
        }
    }
    true
}

fn max_into(into: &mut ResourceList, other: &ResourceList) {
    for (k, q) in other {
        match into.get(k) {
            Some(mine) if mine.nanos >= q.nanos => {}
            _ => {
                into.insert(k.clone(), *q);
            }
        }
    }
}

/// Upstream's `resourcehelper.PodRequests` (or `PodLimits` with `limits`): the containers'
/// sum, at least each init container's (restartable sidecars run alongside the others and
/// add up), plus the pod overhead (for limits, only of what a limit is set for).
pub fn pod_resources(pod: &Value, limits: bool, overhead: bool) -> ResourceList {
    let field = if limits {
        "/resources/limits"
    } else {
        "/resources/requests"
    };
    let mut total = ResourceList::new();
    for c in containers(pod) {
        total = add(&total, &resource_list(c.pointer(field)));
    }
    let mut sidecars = ResourceList::new();
    let mut init = ResourceList::new();
    for c in init_containers(pod) {
        let mut own = resource_list(c.pointer(field));
        if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            total = add(&total, &own);
            sidecars = add(&sidecars, &own);
            own = sidecars.clone();
        } else {
            own = add(&own, &sidecars);
        }
        max_into(&mut init, &own);
    }
    max_into(&mut total, &init);
    if overhead {
        let extra = resource_list(pod.pointer("/spec/overhead"));
        if limits {
            let present: Vec<String> = total.keys().cloned().collect();
            total = add(&total, &mask(&extra, &present));
        } else {
            total = add(&total, &extra);
        }
    }
    total
}

/// Upstream's `podComputeUsageHelper`.
fn compute_usage(requests: &ResourceList, limits: &ResourceList) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("pods".into(), Quantity::from_int(1));
    for r in ["cpu", "memory", "ephemeral-storage"] {
        if let Some(q) = requests.get(r) {
            out.insert(r.into(), *q);
            out.insert(format!("requests.{r}"), *q);
        }
        if let Some(q) = limits.get(r) {
            out.insert(format!("limits.{r}"), *q);
        }
    }
    for (r, q) in requests {
        if r.starts_with("hugepages-") {
            out.insert(r.clone(), *q);
            out.insert(format!("requests.{r}"), *q);
        }
        if is_extended(r) {
            out.insert(format!("requests.{r}"), *q);
        }
    }
    out
}

/// Upstream's `PodUsageFunc`: `count/pods` always (object counts track what is stored),
/// compute resources and `pods` only for a pod that still counts ([`pod_counts`]).
pub fn pod_usage(pod: &Value, now: chrono::DateTime<chrono::Utc>) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("count/pods".into(), Quantity::from_int(1));
    if !pod_counts(pod, now) {
        return out;
    }
    let requests = pod_resources(pod, false, true);
    let limits = pod_resources(pod, true, true);
    add(&out, &compute_usage(&requests, &limits))
}

fn service_usage(svc: &Value) -> ResourceList {
    let ports: Vec<&Value> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut out = ResourceList::new();
    out.insert("count/services".into(), Quantity::from_int(1));
    out.insert("services".into(), Quantity::from_int(1));
    out.insert("services.loadbalancers".into(), Quantity::zero());
    out.insert("services.nodeports".into(), Quantity::zero());
    let n = |k: usize| Quantity::from_int(i64::try_from(k).unwrap_or(i64::MAX));
    match svc.pointer("/spec/type").and_then(Value::as_str) {
        Some("NodePort") => {
            out.insert("services.nodeports".into(), n(ports.len()));
        }
        Some("LoadBalancer") => {
            let no_node_ports = svc
                .pointer("/spec/allocateLoadBalancerNodePorts")
                .and_then(Value::as_bool)
                == Some(false);
            let count = if no_node_ports {
                ports
                    .iter()
                    .filter(|p| p.get("nodePort").and_then(Value::as_i64).unwrap_or(0) != 0)
                    .count()
            } else {
                ports.len()
            };
            out.insert("services.nodeports".into(), n(count));
            out.insert("services.loadbalancers".into(), Quantity::from_int(1));
        }
        _ => {}
    }
    out
}

/// Upstream's `GetPersistentVolumeClaimClass`: the beta annotation, else the spec's.
fn claim_class(pvc: &Value) -> &str {
    pvc.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .and_then(Value::as_str)
        .or_else(|| {
            pvc.pointer("/spec/storageClassName")
                .and_then(Value::as_str)
        })
        .unwrap_or("")
}

fn claim_usage(pvc: &Value) -> ResourceList {
    let mut out = ResourceList::new();
    out.insert("persistentvolumeclaims".into(), Quantity::from_int(1));
    out.insert("count/persistentvolumeclaims".into(), Quantity::from_int(1));
    let class = claim_class(pvc);
    if !class.is_empty() {
        out.insert(
            format!("{class}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"),
            Quantity::from_int(1),
        );
    }
    // The larger of what is asked for and what was allocated (a resize in progress).
    let requested = pvc
        .pointer("/spec/resources/requests/storage")
        .and_then(|q| Quantity::from_json(q).ok());
    let allocated = pvc
        .pointer("/status/allocatedResources/storage")
        .and_then(|q| Quantity::from_json(q).ok());
    let storage = match (requested, allocated) {
        (Some(r), Some(a)) if a.nanos > r.nanos => Some(a),
        (Some(r), _) => Some(r),
        (None, a) => a,
    };
    if let Some(q) = storage {
        out.insert("requests.storage".into(), q);
        if !class.is_empty() {
            out.insert(format!("{class}{STORAGE_CLASS_SUFFIX}requests.storage"), q);
        }
    }
    out
}

/// Upstream's `qos.GetPodQOS(pod) == BestEffort`: no container requests or limits cpu or
/// memory.
pub fn is_best_effort(pod: &Value) -> bool {
    containers(pod).chain(init_containers(pod)).all(|c| {
        ["/resources/requests", "/resources/limits"]
            .iter()
            .all(|f| {
                let list = resource_list(c.pointer(f));
                !list.contains_key("cpu") && !list.contains_key("memory")
            })
    })
}

fn is_terminating(pod: &Value) -> bool {
    pod.pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_i64)
        .is_some_and(|s| s >= 0)
}

fn uses_cross_namespace_affinity(pod: &Value) -> bool {
    let Some(affinity) = pod.pointer("/spec/affinity") else {
        return false;
    };
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let Some(a) = affinity.get(*kind) else {
            return false;
        };
        let required = a
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let preferred = a
            .get("preferredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|w| w.get("podAffinityTerm"));
        required.chain(preferred).any(|t| {
            t.get("namespaces")
                .and_then(Value::as_array)
                .is_some_and(|n| !n.is_empty())
                || t.get("namespaceSelector").is_some_and(|s| !s.is_null())
        })
    })
}

/// Upstream's `podMatchesScopeFunc`.
fn pod_matches_scope(scope: &ScopeRequirement, pod: &Value) -> bool {
    match scope.scope.as_str() {
        "Terminating" => is_terminating(pod),
        "NotTerminating" => !is_terminating(pod),
        "BestEffort" => is_best_effort(pod),
        "NotBestEffort" => !is_best_effort(pod),
        "CrossNamespacePodAffinity" => uses_cross_namespace_affinity(pod),
        "PriorityClass" => {
            let class = pod
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str)
                .unwrap_or("");
            match scope.operator.as_str() {
                "Exists" => !class.is_empty(),
                "DoesNotExist" => class.is_empty(),
                "In" => !class.is_empty() && scope.values.iter().any(|v| v == class),
                "NotIn" => class.is_empty() || !scope.values.iter().any(|v| v == class),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Upstream's `hasUsageStats`: every resource of interest the quota limits has a usage.
fn has_usage_stats(quota: &Value, interesting: &[String]) -> bool {
    let hard = resource_list(quota.pointer("/status/hard"));
    let used = resource_list(quota.pointer("/status/used"));
    hard.keys()
        .filter(|k| interesting.contains(k))
        .all(|k| used.contains_key(k))
}

/// Upstream's `CheckRequest` for a create: `Ok` with the quotas (by index into `quotas`)
/// whose `status.used` must become the given list, or `Err` with the reason of the 403
/// (`exceeded quota: ...`), the text after `<kind> "<name>" is forbidden: `.
pub fn check_create(
    quotas: &[Value],
    evaluator: &Evaluator,
    obj: &Value,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(usize, ResourceList)>, String> {
    check(quotas, evaluator, obj, None, now)
}

/// Upstream's `CheckRequest`: as [`check_create`], and for an update (`old`: the object
/// before it) only what the update adds is charged.
pub fn check(
    quotas: &[Value],
    evaluator: &Evaluator,
    obj: &Value,
    old: Option<&Value>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<(usize, ResourceList)>, String> {
    let mut interesting = Vec::new();
    for (i, quota) in quotas.iter().enumerate() {
        if !evaluator.matches(quota, obj) {
            continue;
        }
        let hard: Vec<String> = resource_list(quota.pointer("/status/hard"))
            .into_keys()
            .collect();
        let restricted = evaluator.matching_resources(&hard);
        let name = crate::meta::name(quota);
        evaluator
            .constraints(&restricted, obj)
            .map_err(|e| format!("failed quota: {name}: {e}"))?;
        if !has_usage_stats(quota, &restricted) {
            return Err(format!(
                "status unknown for quota: {name}, resources: {}",
                pretty_print_names(&restricted)
            ));
        }
        interesting.push(i);
    }
    if interesting.is_empty() {
        return Ok(Vec::new());
    }
    let mut delta = evaluator.usage(obj, now);
    let neg = negative(&delta);
    if !neg.is_empty() {
        return Err(format!(
            "quota usage is negative for resource(s): {}",
            pretty_print_names(&neg)
        ));
    }
    if let Some(old) = old {
        delta = subtract_non_negative(&delta, &evaluator.usage(old, now));
    }
    if is_zero(&delta) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for i in interesting {
        let quota = &quotas[i];
        let hard = resource_list(quota.pointer("/status/hard"));
        let used = resource_list(quota.pointer("/status/used"));
        let requested = mask(&delta, hard.keys());
        let new_used = add(&used, &requested);
        let masked_new = mask(&new_used, requested.keys());
        let (ok, exceeded) = less_than_or_equal(&masked_new, &hard);
        if !ok {
            return Err(format!(
                "exceeded quota: {}, requested: {}, used: {}, limited: {}",
                crate::meta::name(quota),
                pretty_print(&mask(&requested, &exceeded)),
                pretty_print(&mask(&used, &exceeded)),
                pretty_print(&mask(&hard, &exceeded)),
            ));
        }
        out.push((i, new_used));
    }
    Ok(out)
}

/// Upstream's `CalculateUsageStats` for one evaluator: every resource of `resources`
/// (starting at zero) summed over the objects in the quota's scopes.
pub fn usage_stats<'a>(
    evaluator: &Evaluator,
    quota: &Value,
    resources: &[String],
    objects: impl IntoIterator<Item = &'a Value>,
    now: chrono::DateTime<chrono::Utc>,
) -> ResourceList {
    let mut used: ResourceList = resources
        .iter()
        .map(|r| (r.clone(), Quantity::zero()))
        .collect();
    let scopes = scopes_of(quota);
    for obj in objects {
        if scopes.iter().all(|s| evaluator.matches_scope(s, obj)) {
            used = add(&used, &evaluator.usage(obj, now));
        }
    }
    mask(&used, resources)
}

/// Upstream's `syncResourceQuota` decision: the status a quota should have given the
/// usage measured for the resources it tracks (`measured`, from [`usage_stats`] of each
/// evaluator), or `None` when its status is already that.
pub fn desired_status(quota: &Value, measured: &ResourceList) -> Option<Value> {
    let hard = resource_list(quota.pointer("/spec/hard"));
    let status_hard = quota.pointer("/status/hard");
    let old_used = quota.pointer("/status/used");
    let mut used = resource_list(old_used);
    for (k, q) in measured {
        used.insert(k.clone(), *q);
    }
    let used = mask(&used, hard.keys());
    let dirty = status_hard.is_none()
        || old_used.is_none()
        || !equals(&hard, &resource_list(status_hard))
        || !equals(&used, &resource_list(old_used));
    dirty.then(|| json!({"hard": to_json(&hard), "used": to_json(&used)}))
}

/// The resource names of a quota's `spec.hard`.
pub fn hard_names(quota: &Value) -> Vec<String> {
    resource_list(quota.pointer("/spec/hard"))
        .into_keys()
        .collect()
}
