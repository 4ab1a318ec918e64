//! The scheduler's view of pods and nodes: [`PodInfo`] (a pod with everything the plugins
//! need computed once when it is seen: requests, host ports, parsed affinity terms, node
//! affinity, spread constraints, priority) and [`NodeInfo`] (a node with the sum of what its
//! pods request, its pods, used host ports and images). Plugins read these; nothing here
//! talks to the API.
//!
//! Upstream counterparts: `PodInfo`, `NodeInfo`, `AffinityTerm`, `HostPortInfo` in
//! `pkg/scheduler/framework/types.go`, `k8s.io/component-helpers/scheduling/corev1/nodeaffinity`
//! (`RequiredNodeAffinity`, `PreferredSchedulingTerms`) and the toleration helpers of
//! `k8s.io/api/core/v1` (`ToleratesTaint`).
//!
//! Not here: volumes (no VolumeBinding, VolumeRestrictions or CSI limits: pods are placed as
//! if their volumes fit anywhere) and dynamic resource claims.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodAffinityTerm, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use skiff_api::selector::{LabelSelector, Operator, Requirement};

use crate::resources::{self, Resource};

/// The empty label map, for objects without labels.
pub static NO_LABELS: BTreeMap<String, String> = BTreeMap::new();

/// The well-known hostname label (`kubernetes.io/hostname`).
pub const LABEL_HOSTNAME: &str = "kubernetes.io/hostname";

/// The well-known zone label (`topology.kubernetes.io/zone`).
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";

/// A parsed label selector, with upstream's distinction between an absent selector (selects
/// nothing) and an empty one (selects everything).
#[derive(Clone, Debug, Default)]
pub struct Selector {
    /// `None` selects nothing.
    requirements: Option<Vec<Requirement>>,
}

impl Selector {
    /// The selector that matches nothing.
    pub fn nothing() -> Self {
        Self { requirements: None }
    }

    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self {
            requirements: Some(Vec::new()),
        }
    }

    /// Upstream's `LabelSelectorAsSelector`: `None` selects nothing.
    pub fn from_k8s(sel: Option<&metav1::LabelSelector>) -> Result<Self, String> {
        match sel {
            None => Ok(Self::nothing()),
            Some(sel) => {
                let parsed = LabelSelector::from_k8s(sel).map_err(|e| e.to_string())?;
                Ok(Self {
                    requirements: Some(parsed.requirements().to_vec()),
                })
            }
        }
    }

    /// Adds `key=value` requirements (a selector that selects nothing stays so).
    pub fn add_equals(&mut self, key: &str, value: &str) -> Result<(), String> {
        if let Some(reqs) = &mut self.requirements {
            let r = Requirement::new(key, Operator::In, vec![value.to_owned()])
                .map_err(|e| e.to_string())?;
            reqs.push(r);
        }
        Ok(())
    }

    /// `key=value` for each entry of `set` (upstream's `labels.Set.AsSelectorPreValidated`:
    /// an entry that would not validate is left out rather than failing).
    pub fn from_set<'a>(set: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let requirements = set
            .into_iter()
            .filter_map(|(k, v)| Requirement::new(k, Operator::Equals, vec![v.to_owned()]).ok())
            .collect();
        Self {
            requirements: Some(requirements),
        }
    }

    /// Adds the requirements of `other` (upstream's `selector.Add(other.Requirements()...)`:
    /// a selector that selects nothing has none to add; one that selects nothing stays so).
    pub fn add_all(&mut self, other: &Selector) {
        if let (Some(reqs), Some(more)) = (&mut self.requirements, &other.requirements) {
            reqs.extend(more.iter().cloned());
        }
    }

    /// Whether the selector has no requirements (selects everything); upstream's `Empty()`.
    pub fn is_empty(&self) -> bool {
        self.requirements.as_ref().is_some_and(|r| r.is_empty())
    }

    /// Whether the selector selects nothing at all.
    pub fn is_nothing(&self) -> bool {
        self.requirements.is_none()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match &self.requirements {
            None => false,
            Some(reqs) => reqs.iter().all(|r| r.matches(labels)),
        }
    }
}

/// One inter-pod (anti-)affinity term, parsed (upstream's `framework.AffinityTerm`).
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    /// Namespaces named by the term, or the pod's own when it names none and has no
    /// namespace selector.
    pub namespaces: Vec<String>,
    pub namespace_selector: Selector,
    pub selector: Selector,
    pub topology_key: String,
    /// The weight of a preferred term (1 for required ones).
    pub weight: i32,
}

impl AffinityTerm {
    fn parse(pod_namespace: &str, term: &PodAffinityTerm, weight: i32) -> Result<Self, String> {
        let selector = Selector::from_k8s(term.label_selector.as_ref())?;
        let namespace_selector = Selector::from_k8s(term.namespace_selector.as_ref())?;
        let names = term.namespaces.clone().unwrap_or_default();
        let namespaces = if names.is_empty() && term.namespace_selector.is_none() {
            vec![pod_namespace.to_owned()]
        } else {
            names
        };
        Ok(Self {
            namespaces,
            namespace_selector,
            selector,
            topology_key: term.topology_key.clone(),
            weight,
        })
    }

    /// Whether `pod` (whose namespace has `ns_labels`) matches the term.
    pub fn matches(&self, pod: &PodInfo, ns_labels: Option<&BTreeMap<String, String>>) -> bool {
        let ns_ok = self.namespaces.contains(&pod.namespace)
            || ns_labels.is_some_and(|l| self.namespace_selector.matches(l));
        ns_ok && self.selector.matches(pod.labels())
    }
}

/// One node selector term (ANDed expressions and fields); a term with neither selects no
/// node, a term that does not parse selects no node either (upstream's lazy errors).
#[derive(Clone, Debug)]
pub struct NodeTerm {
    labels: Vec<Requirement>,
    /// `metadata.name` requirements: (`In`?, name).
    fields: Vec<(bool, String)>,
    valid: bool,
}

impl NodeTerm {
    pub fn parse(term: &NodeSelectorTerm) -> Self {
        let exprs = term.match_expressions.as_deref().unwrap_or_default();
        let fields = term.match_fields.as_deref().unwrap_or_default();
        let mut out = Self {
            labels: Vec::new(),
            fields: Vec::new(),
            valid: !(exprs.is_empty() && fields.is_empty()),
        };
        for e in exprs {
            match node_requirement(e) {
                Some(r) => out.labels.push(r),
                None => out.valid = false,
            }
        }
        for f in fields {
            let values = f.values.as_deref().unwrap_or_default();
            match (f.key.as_str(), f.operator.as_str(), values) {
                ("metadata.name", "In", [v]) => out.fields.push((true, v.clone())),
                ("metadata.name", "NotIn", [v]) => out.fields.push((false, v.clone())),
                _ => out.valid = false,
            }
        }
        out
    }

    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.valid
            && self.labels.iter().all(|r| r.matches(labels))
            && self
                .fields
                .iter()
                .all(|(is_in, v)| (v == node_name) == *is_in)
    }
}

fn node_requirement(e: &NodeSelectorRequirement) -> Option<Requirement> {
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

/// A pod's required node constraints: `spec.nodeSelector` and the required node affinity
/// terms (upstream's `nodeaffinity.RequiredNodeAffinity`).
#[derive(Clone, Debug, Default)]
pub struct RequiredNodeAffinity {
    node_selector: Vec<(String, String)>,
    /// `None`: no required affinity; else a node must match one term.
    terms: Option<Vec<NodeTerm>>,
}

impl RequiredNodeAffinity {
    pub fn of(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        let node_selector = spec
            .and_then(|s| s.node_selector.as_ref())
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let terms = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| {
                na.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|ns| ns.node_selector_terms.iter().map(NodeTerm::parse).collect());
        Self {
            node_selector,
            terms,
        }
    }

    /// Whether there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.node_selector.is_empty() && self.terms.is_none()
    }

    pub fn matches(&self, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.node_selector
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|x| x == v))
            && self
                .terms
                .as_ref()
                .is_none_or(|terms| terms.iter().any(|t| t.matches(node_name, labels)))
    }
}

/// A host port a pod wants (`hostIP` defaulted to `0.0.0.0`, protocol to `TCP`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub ip: String,
    pub protocol: String,
    pub port: i32,
}

/// Whether `wanted` conflicts with one of `used` (upstream's `HostPortInfo.CheckConflict`:
/// `0.0.0.0` conflicts with every address).
pub fn port_conflicts(used: &[HostPort], wanted: &HostPort) -> bool {
    used.iter().any(|u| {
        u.port == wanted.port
            && u.protocol == wanted.protocol
            && (wanted.ip == "0.0.0.0" || u.ip == "0.0.0.0" || u.ip == wanted.ip)
    })
}

/// One topology spread constraint, parsed (upstream's `topologySpreadConstraint`).
#[derive(Clone, Debug)]
pub struct SpreadConstraint {
    pub max_skew: i32,
    pub topology_key: String,
    /// `DoNotSchedule` (filter) or `ScheduleAnyway` (score).
    pub hard: bool,
    pub selector: Selector,
    pub min_domains: i32,
    /// `nodeAffinityPolicy: Honor` (the default).
    pub honor_node_affinity: bool,
    /// `nodeTaintsPolicy: Honor` (default `Ignore`).
    pub honor_node_taints: bool,
}

/// Whether `toleration` tolerates `taint` (upstream's `Toleration.ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    if let Some(key) = toleration.key.as_deref().filter(|k| !k.is_empty()) {
        if key != taint.key {
            return false;
        }
    }
    match toleration.operator.as_deref().unwrap_or("") {
        "" | "Equal" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        "Exists" => true,
        _ => false,
    }
}

/// The first taint with an effect `filter` accepts that no toleration tolerates (upstream's
/// `FindMatchingUntoleratedTaint`).
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

/// Whether a taint's effect keeps pods off (NoSchedule and NoExecute).
pub fn is_do_not_schedule(t: &Taint) -> bool {
    t.effect == "NoSchedule" || t.effect == "NoExecute"
}

/// An image name as the node reports it: `:latest` added when no tag is given.
pub fn normalized_image_name(name: &str) -> String {
    let colon = name.rfind(':');
    let slash = name.rfind('/');
    let has_tag = match (colon, slash) {
        (Some(c), Some(s)) => c > s,
        (Some(_), None) => true,
        _ => false,
    };
    if has_tag || name.contains('@') {
        name.to_owned()
    } else {
        format!("{name}:latest")
    }
}

/// A pod with what the plugins need computed once (upstream's `framework.PodInfo` plus the
/// per-pod parts of several plugins' PreFilter state).
#[derive(Clone, Debug)]
pub struct PodInfo {
    pub pod: Arc<Pod>,
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub priority: i32,
    /// Effective requests (what NodeResourcesFit checks and a node's `requested` sums).
    pub requests: Resource,
    /// Requests with 100m/200Mi for containers that ask nothing (what the scorers use).
    pub non_zero_requests: Resource,
    pub host_ports: Vec<HostPort>,
    pub required_affinity: Vec<AffinityTerm>,
    pub required_anti_affinity: Vec<AffinityTerm>,
    pub preferred_affinity: Vec<AffinityTerm>,
    pub preferred_anti_affinity: Vec<AffinityTerm>,
    /// Why the affinity terms did not parse, if they did not.
    pub parse_error: Option<String>,
    pub node_affinity: RequiredNodeAffinity,
    pub preferred_node_terms: Vec<(i32, NodeTerm)>,
    pub spread_constraints: Vec<SpreadConstraint>,
    /// Normalized images of every container (init containers first).
    pub images: Vec<String>,
    pub node_name: Option<String>,
    pub terminating: bool,
    /// Start time in seconds since the epoch (now when not started), for preemption order.
    pub start_time: i64,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> Self {
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let spec = pod.spec.as_ref();
        let mut parse_error = None;
        let mut terms = |list: Option<&Vec<PodAffinityTerm>>| -> Vec<AffinityTerm> {
            list.into_iter()
                .flatten()
                .filter_map(|t| match AffinityTerm::parse(&namespace, t, 1) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        parse_error = Some(e);
                        None
                    }
                })
                .collect()
        };
        let affinity = spec.and_then(|s| s.affinity.as_ref());
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let required_affinity = terms(pa.and_then(|p| {
            p.required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let required_anti_affinity = terms(paa.and_then(|p| {
            p.required_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let mut weighted =
            |list: Option<&Vec<k8s_openapi::api::core::v1::WeightedPodAffinityTerm>>| {
                list.into_iter()
                    .flatten()
                    .filter_map(|w| {
                        match AffinityTerm::parse(&namespace, &w.pod_affinity_term, w.weight) {
                            Ok(t) => Some(t),
                            Err(e) => {
                                parse_error = Some(e);
                                None
                            }
                        }
                    })
                    .collect::<Vec<_>>()
            };
        let preferred_affinity = weighted(pa.and_then(|p| {
            p.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let preferred_anti_affinity = weighted(paa.and_then(|p| {
            p.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        }));
        let preferred_node_terms = affinity
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|na| {
                na.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .filter(|p| p.weight != 0)
            .map(|p| (p.weight, NodeTerm::parse(&p.preference)))
            .collect();
        let labels = meta.labels.as_ref().unwrap_or(&NO_LABELS);
        let spread_constraints = spec
            .and_then(|s| s.topology_spread_constraints.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let mut selector = match Selector::from_k8s(c.label_selector.as_ref()) {
                    Ok(s) => s,
                    Err(e) => {
                        parse_error = Some(e);
                        return None;
                    }
                };
                for key in c.match_label_keys.iter().flatten() {
                    if let Some(v) = labels.get(key) {
                        if let Err(e) = selector.add_equals(key, v) {
                            parse_error = Some(e);
                        }
                    }
                }
                Some(SpreadConstraint {
                    max_skew: c.max_skew,
                    topology_key: c.topology_key.clone(),
                    hard: c.when_unsatisfiable == "DoNotSchedule",
                    selector,
                    min_domains: c.min_domains.unwrap_or(1),
                    honor_node_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                    honor_node_taints: c.node_taints_policy.as_deref() == Some("Honor"),
                })
            })
            .collect();
        let mut host_ports = Vec::new();
        let mut images = Vec::new();
        if let Some(spec) = spec {
            for c in spec.init_containers.iter().flatten() {
                if let Some(i) = &c.image {
                    images.push(normalized_image_name(i));
                }
            }
            for c in &spec.containers {
                if let Some(i) = &c.image {
                    images.push(normalized_image_name(i));
                }
            }
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            for c in spec.containers.iter().chain(sidecars) {
                for p in c.ports.iter().flatten() {
                    if let Some(port) = p.host_port.filter(|p| *p > 0) {
                        host_ports.push(HostPort {
                            ip: p
                                .host_ip
                                .clone()
                                .filter(|i| !i.is_empty())
                                .unwrap_or_else(|| "0.0.0.0".into()),
                            protocol: p
                                .protocol
                                .clone()
                                .filter(|i| !i.is_empty())
                                .unwrap_or_else(|| "TCP".into()),
                            port,
                        });
                    }
                }
            }
        }
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.as_second())
            .unwrap_or_else(|| k8s_openapi::jiff::Timestamp::now().as_second());
        Self {
            uid: meta.uid.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            requests: resources::pod_requests(&pod, false),
            non_zero_requests: resources::pod_requests(&pod, true),
            host_ports,
            required_affinity,
            required_anti_affinity,
            preferred_affinity,
            preferred_anti_affinity,
            parse_error,
            node_affinity: RequiredNodeAffinity::of(&pod),
            preferred_node_terms,
            spread_constraints,
            images,
            node_name: spec
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            terminating: meta.deletion_timestamp.is_some(),
            start_time,
            namespace,
            pod,
        }
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
    }

    pub fn tolerations(&self) -> &[Toleration] {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default()
    }

    /// Whether the pod has inter-pod affinity or anti-affinity terms of any kind.
    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }

    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Whether this pod goes before `other` when both are victims (upstream's
    /// `MoreImportantPod`: higher priority, then started earlier).
    pub fn more_important_than(&self, other: &PodInfo) -> bool {
        if self.priority != other.priority {
            return self.priority > other.priority;
        }
        self.start_time < other.start_time
    }
}

/// A node's image: its size and names.
#[derive(Clone, Debug)]
pub struct NodeImage {
    pub size: i64,
}

/// A node and what is on it (upstream's `framework.NodeInfo`).
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub name: String,
    pub node: Arc<Node>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    pub allocatable: Resource,
    /// The sum of the requests of the pods on the node.
    pub requested: Resource,
    /// The same with the scorers' non-zero defaults.
    pub non_zero_requested: Resource,
    pub pods: Vec<Arc<PodInfo>>,
    /// How many of the pods have inter-pod affinity terms of any kind.
    pub pods_with_affinity: usize,
    /// How many have required anti-affinity terms.
    pub pods_with_required_anti_affinity: usize,
    pub used_ports: Vec<HostPort>,
    /// Image name -> size in bytes.
    pub images: BTreeMap<String, i64>,
}

impl NodeInfo {
    pub fn new(node: Arc<Node>) -> Self {
        let mut info = Self {
            name: String::new(),
            node: node.clone(),
            taints: Vec::new(),
            unschedulable: false,
            allocatable: Resource::default(),
            requested: Resource::default(),
            non_zero_requested: Resource::default(),
            pods: Vec::new(),
            pods_with_affinity: 0,
            pods_with_required_anti_affinity: 0,
            used_ports: Vec::new(),
            images: BTreeMap::new(),
        };
        info.set_node(node);
        info
    }

    /// Replaces the node object, keeping the pods.
    pub fn set_node(&mut self, node: Arc<Node>) {
        self.name = node.metadata.name.clone().unwrap_or_default();
        let spec = node.spec.as_ref();
        self.taints = spec.and_then(|s| s.taints.clone()).unwrap_or_default();
        self.unschedulable = spec.and_then(|s| s.unschedulable).unwrap_or(false);
        let status = node.status.as_ref();
        self.allocatable = status
            .and_then(|s| s.allocatable.as_ref())
            .map(Resource::from_list)
            .unwrap_or_default();
        self.images = status
            .and_then(|s| s.images.as_ref())
            .into_iter()
            .flatten()
            .flat_map(|i| {
                let size = i.size_bytes.unwrap_or(0);
                i.names.iter().flatten().map(move |n| (n.clone(), size))
            })
            .collect();
        self.node = node;
    }

    pub fn labels(&self) -> &BTreeMap<String, String> {
        self.node.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
    }

    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests);
        self.non_zero_requested.milli_cpu += pod.non_zero_requests.milli_cpu;
        self.non_zero_requested.memory += pod.non_zero_requests.memory;
        if pod.has_affinity() {
            self.pods_with_affinity += 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity += 1;
        }
        self.used_ports.extend(pod.host_ports.iter().cloned());
        self.pods.push(pod);
    }

    /// Removes the pod with `uid`; whether it was there.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let i = self.pods.iter().position(|p| p.uid == uid)?;
        let pod = self.pods.swap_remove(i);
        self.requested.sub(&pod.requests);
        self.non_zero_requested.milli_cpu -= pod.non_zero_requests.milli_cpu;
        self.non_zero_requested.memory -= pod.non_zero_requests.memory;
        if pod.has_affinity() {
            self.pods_with_affinity -= 1;
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity -= 1;
        }
        for p in &pod.host_ports {
            if let Some(j) = self.used_ports.iter().position(|u| u == p) {
                self.used_ports.swap_remove(j);
            }
        }
        Some(pod)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn toleration(v: serde_json::Value) -> Toleration {
        serde_json::from_value(v).unwrap()
    }
    fn taint(v: serde_json::Value) -> Taint {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn tolerations_match_as_upstream() {
        let t = taint(json!({"key": "k", "value": "v", "effect": "NoSchedule"}));
        let cases = [
            (
                json!({"key": "k", "value": "v", "effect": "NoSchedule"}),
                true,
            ),
            (json!({"key": "k", "operator": "Equal", "value": "v"}), true),
            (json!({"key": "k", "operator": "Exists"}), true),
            (json!({"operator": "Exists"}), true),
            (json!({"key": "k", "value": "w"}), false),
            (
                json!({"key": "k", "operator": "Exists", "effect": "NoExecute"}),
                false,
            ),
            (json!({"key": "other", "operator": "Exists"}), false),
            (json!({"key": "k", "operator": "Bogus"}), false),
        ];
        for (tol, want) in cases {
            assert_eq!(tolerates(&toleration(tol.clone()), &t), want, "{tol}");
        }
    }

    #[test]
    fn host_port_conflicts() {
        let hp = |ip: &str, proto: &str, port| HostPort {
            ip: ip.into(),
            protocol: proto.into(),
            port,
        };
        let used = vec![hp("127.0.0.1", "TCP", 8080)];
        assert!(port_conflicts(&used, &hp("0.0.0.0", "TCP", 8080)));
        assert!(port_conflicts(&used, &hp("127.0.0.1", "TCP", 8080)));
        assert!(!port_conflicts(&used, &hp("127.0.0.2", "TCP", 8080)));
        assert!(!port_conflicts(&used, &hp("127.0.0.1", "UDP", 8080)));
        let used = vec![hp("0.0.0.0", "TCP", 80)];
        assert!(port_conflicts(&used, &hp("10.0.0.1", "TCP", 80)));
    }

    #[test]
    fn image_names_get_latest() {
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(normalized_image_name("nginx:1.25"), "nginx:1.25");
        assert_eq!(
            normalized_image_name("localhost:5000/nginx"),
            "localhost:5000/nginx:latest"
        );
        assert_eq!(normalized_image_name("r.io/a/b:v1"), "r.io/a/b:v1");
    }

    #[test]
    fn node_terms_parse_lazily() {
        let term: NodeSelectorTerm = serde_json::from_value(json!({
            "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]},
                                 {"key": "gen", "operator": "Gt", "values": ["3"]}]}))
        .unwrap();
        let t = NodeTerm::parse(&term);
        let labels: BTreeMap<String, String> = [
            ("zone".to_string(), "a".to_string()),
            ("gen".into(), "4".into()),
        ]
        .into();
        assert!(t.matches("n", &labels));
        let labels: BTreeMap<String, String> = [
            ("zone".to_string(), "a".to_string()),
            ("gen".into(), "3".into()),
        ]
        .into();
        assert!(!t.matches("n", &labels));
        // Empty terms and bad operators select nothing.
        let empty = NodeTerm::parse(&NodeSelectorTerm::default());
        assert!(!empty.matches("n", &NO_LABELS));
        let bad: NodeSelectorTerm = serde_json::from_value(json!({
            "matchExpressions": [{"key": "zone", "operator": "Near"}]}))
        .unwrap();
        assert!(!NodeTerm::parse(&bad).matches("n", &NO_LABELS));
        let by_name: NodeSelectorTerm = serde_json::from_value(json!({
            "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]}))
        .unwrap();
        assert!(NodeTerm::parse(&by_name).matches("n1", &NO_LABELS));
        assert!(!NodeTerm::parse(&by_name).matches("n2", &NO_LABELS));
    }
}
