//! What a DaemonSet's decisions are made of, pure: whether a node should run the daemon pod
//! (`NodeShouldRunDaemonPod` of upstream's `daemon_controller.go`: the template's nodeName,
//! nodeSelector and required node affinity, taints against the tolerations), the
//! tolerations every daemon pod gets and the node affinity that pins it to its node
//! (`pkg/controller/daemon/util/daemonset_util.go`), which pods are up to date, the surge
//! and unavailability budgets, upstream's pod order, and the failed-pod backoff
//! (client-go's `flowcontrol.Backoff`, with the clock passed in).
//!
//! Nothing here talks to the API.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, PodTemplateSpec, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use skiff_api::selector::{Operator, Requirement};

use crate::deployment::util::scaled_value;

/// The label naming the revision (hash) a daemon pod was made from (upstream's
/// `DefaultDaemonSetUniqueLabelKey`, also on the DaemonSet's ControllerRevisions).
pub use crate::history::POD_REVISION_LABEL as HASH_LABEL;

/// The label with the template generation a daemon pod was made from (upstream's
/// `DaemonSetTemplateGenerationKey`), kept for backward compatibility.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";

/// The annotation in which the v1 API carries the DaemonSet's template generation
/// (upstream's `apps.DeprecatedTemplateGeneration`).
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const TAINT_DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
pub const TAINT_MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
pub const TAINT_PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
pub const TAINT_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
pub const TAINT_NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

const NO_SCHEDULE: &str = "NoSchedule";
const NO_EXECUTE: &str = "NoExecute";
const OBJECT_NAME_FIELD: &str = "metadata.name";

// ---------------------------------------------------------------------------------------
// The DaemonSet's fields, with upstream's defaults.

pub fn spec_template(ds: &DaemonSet) -> PodTemplateSpec {
    ds.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

pub fn min_ready_seconds(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

pub fn revision_history_limit(ds: &DaemonSet) -> i32 {
    ds.spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
}

/// `RollingUpdate` (the default) or `OnDelete`.
pub fn update_strategy_type(ds: &DaemonSet) -> &str {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

/// Upstream's `GetTemplateGeneration`: the deprecated annotation, `Ok(None)` when absent.
pub fn template_generation(ds: &DaemonSet) -> Result<Option<i64>, String> {
    match ds
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
    {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|e| format!("invalid {TEMPLATE_GENERATION_ANNOTATION} {v:?}: {e}")),
    }
}

/// The rolling update's `(maxSurge, maxUnavailable)` as written (not yet scaled).
fn rolling_params(ds: &DaemonSet) -> (Option<&IntOrString>, Option<&IntOrString>) {
    if update_strategy_type(ds) != "RollingUpdate" {
        return (None, None);
    }
    let ru = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref());
    (
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
    )
}

/// Upstream's `SurgeCount`: 0 unless RollingUpdate with a maxSurge; the percentage of
/// `number_to_schedule` rounded up.
pub fn surge_count(ds: &DaemonSet, number_to_schedule: i32) -> Result<i32, String> {
    if update_strategy_type(ds) != "RollingUpdate" {
        return Ok(0);
    }
    let spec_has_ru = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .is_some();
    match rolling_params(ds).0 {
        Some(v) if spec_has_ru => scaled_value(v, number_to_schedule, true),
        _ => Ok(0),
    }
}

/// Upstream's `UnavailableCount`: 0 unless RollingUpdate with a rollingUpdate; the
/// percentage of `number_to_schedule` rounded up (an unset maxUnavailable is upstream's
/// `nil value for IntOrString` error; the API server always defaults it).
pub fn unavailable_count(ds: &DaemonSet, number_to_schedule: i32) -> Result<i32, String> {
    let has_ru = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .is_some();
    if update_strategy_type(ds) != "RollingUpdate" || !has_ru {
        return Ok(0);
    }
    match rolling_params(ds).1 {
        Some(v) => scaled_value(v, number_to_schedule, true),
        None => Err("nil value for IntOrString".into()),
    }
}

/// Upstream's `AllowsSurge`: more than one pod may run on a node.
pub fn allows_surge(ds: &DaemonSet) -> bool {
    surge_count(ds, 1).is_ok_and(|n| n > 0)
}

// ---------------------------------------------------------------------------------------
// Tolerations, taints, node affinity.

/// Upstream's `Toleration.MatchToleration`: the same key, operator, value and effect.
fn same_toleration(a: &Toleration, b: &Toleration) -> bool {
    a.key.as_deref().unwrap_or("") == b.key.as_deref().unwrap_or("")
        && a.operator.as_deref().unwrap_or("") == b.operator.as_deref().unwrap_or("")
        && a.value.as_deref().unwrap_or("") == b.value.as_deref().unwrap_or("")
        && a.effect.as_deref().unwrap_or("") == b.effect.as_deref().unwrap_or("")
}

/// Upstream's `AddOrUpdateTolerationInPodSpec`: a toleration matching `t` is replaced by
/// it (dropping, say, its tolerationSeconds), else `t` is appended.
fn add_or_update_toleration(spec: &mut PodSpec, t: Toleration) {
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    let mut found = false;
    for existing in tolerations.iter_mut() {
        if same_toleration(existing, &t) {
            *existing = t.clone();
            found = true;
        }
    }
    if !found {
        tolerations.push(t);
    }
}

fn exists(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Toleration::default()
    }
}

/// Upstream's `AddOrUpdateDaemonPodTolerations`: not-ready and unreachable NoExecute with
/// no tolerationSeconds (a daemon pod is never evicted for them), the pressure and
/// unschedulable NoSchedule taints, and network-unavailable for host-network pods.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    add_or_update_toleration(spec, exists(TAINT_NOT_READY, NO_EXECUTE));
    add_or_update_toleration(spec, exists(TAINT_UNREACHABLE, NO_EXECUTE));
    add_or_update_toleration(spec, exists(TAINT_DISK_PRESSURE, NO_SCHEDULE));
    add_or_update_toleration(spec, exists(TAINT_MEMORY_PRESSURE, NO_SCHEDULE));
    add_or_update_toleration(spec, exists(TAINT_PID_PRESSURE, NO_SCHEDULE));
    add_or_update_toleration(spec, exists(TAINT_UNSCHEDULABLE, NO_SCHEDULE));
    if spec.host_network == Some(true) {
        add_or_update_toleration(spec, exists(TAINT_NETWORK_UNAVAILABLE, NO_SCHEDULE));
    }
}

/// Upstream's `Toleration.ToleratesTaint`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    if let Some(key) = t.key.as_deref().filter(|k| !k.is_empty()) {
        if key != taint.key {
            return false;
        }
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// Upstream's `FindMatchingUntoleratedTaint`: the first taint `filter` accepts that no
/// toleration tolerates.
pub fn untolerated_taint<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    filter: impl Fn(&Taint) -> bool,
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| filter(t))
        .find(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

fn label_requirement(e: &NodeSelectorRequirement) -> Option<Requirement> {
    let op = match e.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" => Operator::GreaterThan,
        "Lt" => Operator::LessThan,
        _ => return None,
    };
    Requirement::new(&e.key, op, e.values.clone().unwrap_or_default()).ok()
}

/// One required node selector term against a node; `None` when the term does not parse
/// (upstream's lazy-error node selector skips such a term).
fn term_matches(term: &NodeSelectorTerm, node: &Node) -> Option<bool> {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        // An empty term matches no objects.
        return Some(false);
    }
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let mut all = true;
    for e in exprs {
        let r = label_requirement(e)?;
        all &= r.matches(labels);
    }
    let name = node.metadata.name.as_deref().unwrap_or("");
    for f in fields {
        let values = f.values.as_deref().unwrap_or(&[]);
        let is_in = match (f.key.as_str(), f.operator.as_str(), values) {
            (OBJECT_NAME_FIELD, "In", [_]) => true,
            (OBJECT_NAME_FIELD, "NotIn", [_]) => false,
            _ => return None,
        };
        all &= (values[0] == name) == is_in;
    }
    Some(all)
}

/// Upstream's `nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)`: the nodeSelector's
/// labels, and one of the required affinity's terms when there are any.
pub fn required_affinity_matches(spec: &PodSpec, node: &Node) -> bool {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if let Some(sel) = &spec.node_selector {
        if !sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    let Some(required) = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
    else {
        return true;
    };
    required
        .node_selector_terms
        .iter()
        .any(|t| term_matches(t, node) == Some(true))
}

/// Upstream's `NewPod`: the template for `node_name`, with the daemon tolerations.
pub fn new_pod(ds: &DaemonSet, node_name: &str) -> Pod {
    let template = spec_template(ds);
    let mut spec = template.spec.unwrap_or_default();
    spec.node_name = Some(node_name.to_owned());
    add_daemon_tolerations(&mut spec);
    Pod {
        metadata: ObjectMeta {
            namespace: ds.metadata.namespace.clone(),
            ..template.metadata.unwrap_or_default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// Upstream's `NodeShouldRunDaemonPod`: `(shouldRun, shouldContinueRunning)`. A node whose
/// name, labels or affinity do not fit runs nothing; one with an untolerated NoSchedule or
/// NoExecute taint gets no new pod, and keeps a running one only if no NoExecute taint is
/// untolerated.
pub fn node_should_run(node: &Node, ds: &DaemonSet) -> (bool, bool) {
    let name = node.metadata.name.as_deref().unwrap_or("");
    let template_node = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("");
    if !(template_node.is_empty() || template_node == name) {
        return (false, false);
    }
    let pod = new_pod(ds, name);
    let spec = pod.spec.unwrap_or_default();
    if !required_affinity_matches(&spec, node) {
        return (false, false);
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let tolerations = spec.tolerations.as_deref().unwrap_or(&[]);
    let blocked = untolerated_taint(taints, tolerations, |t| {
        t.effect == NO_EXECUTE || t.effect == NO_SCHEDULE
    })
    .is_some();
    if blocked {
        let evicting = untolerated_taint(taints, tolerations, |t| t.effect == NO_EXECUTE);
        return (false, evicting.is_none());
    }
    (true, true)
}

/// Whether a node's change (`before` -> `after`, `None` for absent) concerns `ds`, as
/// upstream's `addNode` / `updateNode` decide: a new node that should run the pod, a changed
/// one for which `NodeShouldRunDaemonPod` answers differently (it reads only the name,
/// labels and taints, so a heartbeat concerns no one). Upstream has no node delete handler;
/// here a deleted node concerns every DaemonSet, whose desired count drops.
pub fn node_change_concerns(before: Option<&Node>, after: Option<&Node>, ds: &DaemonSet) -> bool {
    match (before, after) {
        (None, Some(cur)) => node_should_run(cur, ds).0,
        (Some(old), Some(cur)) => {
            let taints = |n: &Node| n.spec.as_ref().and_then(|s| s.taints.clone());
            if old.metadata.labels == cur.metadata.labels && taints(old) == taints(cur) {
                return false;
            }
            node_should_run(old, ds) != node_should_run(cur, ds)
        }
        (Some(_), None) => true,
        (None, None) => false,
    }
}

/// Upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity`: the required node affinity becomes
/// one term `matchFields metadata.name In [node]` (every other required term is dropped;
/// the preferred terms and the pod (anti-)affinities stay).
pub fn replace_node_name_affinity(affinity: Option<Affinity>, node_name: &str) -> Affinity {
    let selector = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: OBJECT_NAME_FIELD.into(),
                operator: "In".into(),
                values: Some(vec![node_name.to_owned()]),
            }]),
            match_expressions: None,
        }],
    };
    let mut affinity = affinity.unwrap_or_default();
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(selector);
    affinity
}

/// Upstream's `GetTargetNodeName`: the pod's nodeName, else the node its
/// `matchFields metadata.name In [one]` affinity names.
pub fn target_node_name(pod: &Pod) -> Result<String, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let spec = pod.spec.as_ref();
    if let Some(n) = spec
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
    {
        return Ok(n.to_owned());
    }
    let Some(required) = spec
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|na| {
            na.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
    else {
        return Err(format!(
            "no spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution for pod {ns}/{name}"
        ));
    };
    if required.node_selector_terms.is_empty() {
        return Err(format!(
            "no nodeSelectorTerms in requiredDuringSchedulingIgnoredDuringExecution of pod {ns}/{name}"
        ));
    }
    for term in &required.node_selector_terms {
        for exp in term.match_fields.as_deref().unwrap_or(&[]) {
            if exp.key == OBJECT_NAME_FIELD && exp.operator == "In" {
                let values = exp.values.as_deref().unwrap_or(&[]);
                if values.len() != 1 {
                    return Err(format!(
                        "the matchFields value of '{OBJECT_NAME_FIELD}' is not unique for pod {ns}/{name}"
                    ));
                }
                return Ok(values[0].clone());
            }
        }
    }
    Err(format!("no node name found for pod {ns}/{name}"))
}

/// Upstream's `CreatePodTemplate`: the template with the daemon tolerations, the
/// `pod-template-generation` label when the DaemonSet has a generation, and the hash label.
pub fn create_pod_template(
    template: &PodTemplateSpec,
    generation: Option<i64>,
    hash: &str,
) -> PodTemplateSpec {
    let mut t = template.clone();
    add_daemon_tolerations(t.spec.get_or_insert_with(PodSpec::default));
    let meta = t.metadata.get_or_insert_with(ObjectMeta::default);
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    if let Some(g) = generation {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), g.to_string());
    }
    if !hash.is_empty() {
        labels.insert(HASH_LABEL.into(), hash.to_owned());
    }
    t
}

/// Upstream's `IsPodUpdated`, as it behaves: the pod carries the current hash. (Upstream
/// also compares the `pod-template-generation` label, but with `fmt.Sprint` of a pointer,
/// which prints an address and so never matches; a pod counts as updated by its hash.)
pub fn is_pod_updated(pod: &Pod, hash: &str) -> bool {
    !hash.is_empty()
        && pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HASH_LABEL))
            .is_some_and(|h| h == hash)
}

/// Upstream's `podByCreationTimestampAndPhase`: scheduled pods first, then the oldest, then
/// by name.
pub fn pod_order(a: &Pod, b: &Pod) -> std::cmp::Ordering {
    let scheduled = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
    };
    scheduled(b)
        .cmp(&scheduled(a))
        .then_with(|| {
            let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
            ta.cmp(&tb)
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Upstream's `failedPodsBackoffKey`: per DaemonSet, observed generation and node.
pub fn failed_pods_backoff_key(ds: &DaemonSet, node: &str) -> String {
    format!(
        "{}/{}/{node}",
        ds.metadata.uid.as_deref().unwrap_or(""),
        ds.status
            .as_ref()
            .and_then(|s| s.observed_generation)
            .unwrap_or(0)
    )
}

// ---------------------------------------------------------------------------------------
// The failed-pod backoff.

/// client-go's `flowcontrol.Backoff` without its own clock: per key a delay that doubles
/// from `initial` up to `max` on each [`Backoff::next`], forgotten after `2 * max` of quiet.
/// kube-controller-manager gives the DaemonSet controller 1 s and 15 min.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    entries: HashMap<String, (Duration, Instant)>,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    /// The key's current delay (zero when it has none).
    pub fn get(&self, key: &str) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |(d, _)| *d)
    }

    /// `IsInBackOffSinceUpdate`: less than the key's delay has passed since its last update.
    pub fn in_backoff_since_update(&self, key: &str, now: Instant) -> bool {
        self.entries
            .get(key)
            .is_some_and(|(d, at)| now.saturating_duration_since(*at) < *d)
    }

    /// `Next`: the first delay, or the doubled one (at most `max`); an entry quiet for more
    /// than `2 * max` starts again.
    pub fn next(&mut self, key: &str, now: Instant) {
        let (initial, max) = (self.initial, self.max);
        match self.entries.get_mut(key) {
            Some((d, at)) if now.saturating_duration_since(*at) <= max * 2 => {
                *d = (*d * 2).min(max);
                *at = now;
            }
            _ => {
                self.entries.insert(key.to_owned(), (initial, now));
            }
        }
    }

    /// `GC`: drops the entries quiet for more than `2 * max`.
    pub fn gc(&mut self, now: Instant) {
        let max = self.max;
        self.entries
            .retain(|_, (_, at)| now.saturating_duration_since(*at) <= max * 2);
    }
}
