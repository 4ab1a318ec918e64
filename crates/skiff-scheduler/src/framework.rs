//! The scheduling framework: one small trait per extension point ([`PreFilter`],
//! [`Filter`], [`PostFilter`] lives in `preemption`, [`PreScore`], [`Score`]), the
//! [`Status`] they return (a code and reasons), the [`CycleState`] a cycle's PreFilter and
//! PreScore leave for the later points, the [`Snapshot`] of the cluster they read, and the
//! [`FitError`] whose text is the `PodScheduled` condition's message. Pure: no I/O.
//!
//! Upstream counterparts: `k8s.io/kube-scheduler/framework/interface.go` (`Status`, `Code`,
//! plugin interfaces), `pkg/scheduler/framework/cycle_state.go`, `FitError` and `Diagnosis`
//! in `pkg/scheduler/framework/types.go`, and `pkg/scheduler/apis/config/v1/default_plugins.go`
//! for the default plugin set and score weights ([`Framework::default_plugins`]).
//!
//! Not here: Reserve, Permit, PreBind, PostBind and extenders (nothing in the default set
//! besides volume binding and DRA, which skiff does not schedule, uses them), and scheduler
//! profiles other than one per scheduler name.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use crate::types::{NodeInfo, PodInfo};
use crate::workloads::Workloads;
use crate::zone_counts::ZoneCounts;

/// The highest score a plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;

/// What a plugin says (upstream's `framework.Code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    Success,
    /// Internal error: the pod is retried with backoff.
    Error,
    /// Does not fit now; preemption might help.
    Unschedulable,
    /// Does not fit and preemption cannot help on this node.
    UnschedulableAndUnresolvable,
    /// The plugin has nothing to do for this pod (PreFilter / PreScore).
    Skip,
}

/// A plugin's answer: a code, reasons, and which plugin said it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub code: Code,
    pub reasons: Vec<Cow<'static, str>>,
    pub plugin: &'static str,
}

impl Status {
    pub const fn success() -> Self {
        Self {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub const fn skip() -> Self {
        Self {
            code: Code::Skip,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    pub fn new(code: Code, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            reasons: vec![reason.into()],
            plugin: "",
        }
    }

    pub fn unschedulable(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::Unschedulable, reason)
    }

    pub fn unresolvable(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::UnschedulableAndUnresolvable, reason)
    }

    pub fn error(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::new(Code::Error, reason)
    }

    pub fn with_plugin(mut self, plugin: &'static str) -> Self {
        self.plugin = plugin;
        self
    }

    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// Unschedulable of either kind.
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable
        )
    }

    /// The reasons joined by `, ` (upstream's `Status.Message`).
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// Per-cycle data a plugin keeps from PreFilter or PreScore for its later extension points.
/// `add_pod` and `remove_pod` are upstream's `PreFilterExtensions`: preemption and nominated
/// pods change a node's pods after PreFilter ran.
pub trait StateData: Any + Send + Sync {
    fn clone_box(&self) -> Box<dyn StateData>;
    fn as_any(&self) -> &dyn Any;
    fn add_pod(&mut self, _pod: &PodInfo, _added: &PodInfo, _node: &NodeInfo) {}
    fn remove_pod(&mut self, _pod: &PodInfo, _removed: &PodInfo, _node: &NodeInfo) {}
}

/// The state of one scheduling cycle (upstream's `CycleState`), keyed by type: each plugin
/// stores its own state type, so lookups are a scan of a few `TypeId`s, no hashing.
#[derive(Default)]
pub struct CycleState {
    entries: Vec<(TypeId, Box<dyn StateData>)>,
    /// Plugins whose PreScore said Skip.
    pub skip_score: BTreeSet<&'static str>,
    /// Plugins whose PreFilter said Skip.
    pub skip_filter: BTreeSet<&'static str>,
}

impl fmt::Debug for CycleState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CycleState")
            .field("entries", &self.entries.len())
            .field("skip_filter", &self.skip_filter)
            .field("skip_score", &self.skip_score)
            .finish()
    }
}

impl Clone for CycleState {
    fn clone(&self) -> Self {
        Self {
            entries: self
                .entries
                .iter()
                .map(|(t, d)| (*t, d.clone_box()))
                .collect(),
            skip_score: self.skip_score.clone(),
            skip_filter: self.skip_filter.clone(),
        }
    }
}

impl CycleState {
    pub fn write<T: StateData>(&mut self, data: T) {
        let id = TypeId::of::<T>();
        self.entries.retain(|(t, _)| *t != id);
        self.entries.push((id, Box::new(data)));
    }

    pub fn read<T: StateData>(&self) -> Option<&T> {
        let id = TypeId::of::<T>();
        self.entries
            .iter()
            .find(|(t, _)| *t == id)
            .and_then(|(_, d)| d.as_any().downcast_ref::<T>())
    }

    /// Tells every state that `added` joins `node` (upstream's `RunPreFilterExtensionAddPod`).
    pub fn add_pod(&mut self, pod: &PodInfo, added: &PodInfo, node: &NodeInfo) {
        for (_, d) in &mut self.entries {
            d.add_pod(pod, added, node);
        }
    }

    /// Tells every state that `removed` leaves `node`.
    pub fn remove_pod(&mut self, pod: &PodInfo, removed: &PodInfo, node: &NodeInfo) {
        for (_, d) in &mut self.entries {
            d.remove_pod(pod, removed, node);
        }
    }
}

/// Implements the boilerplate of [`StateData`] for a `Clone` type.
#[macro_export]
macro_rules! state_data_boilerplate {
    () => {
        fn clone_box(&self) -> Box<dyn $crate::framework::StateData> {
            Box::new(self.clone())
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    };
}

/// What the plugins see of the cluster during one cycle (upstream's `framework.SharedLister`
/// over the cache snapshot). Borrowed from the cache: nothing is copied per cycle.
#[derive(Clone, Copy)]
pub struct Snapshot<'a> {
    pub nodes: &'a [NodeInfo],
    /// Image name -> on how many nodes it is.
    pub image_nodes: &'a HashMap<String, usize>,
    /// Namespace -> its labels.
    pub namespaces: &'a Arc<HashMap<String, BTreeMap<String, String>>>,
    /// The selectors of Services, ReplicationControllers, ReplicaSets and StatefulSets
    /// (PodTopologySpread's system defaults).
    pub workloads: &'a Workloads,
    /// The pods on `nodes` by namespace, labels and zone (for the system default spreading).
    pub zone_counts: &'a ZoneCounts,
    /// How many nodes have pods with affinity terms, and with required anti-affinity.
    pub nodes_with_affinity_pods: usize,
    pub nodes_with_required_anti_affinity_pods: usize,
}

impl<'a> Snapshot<'a> {
    pub fn namespace_labels(&self, ns: &str) -> Option<&'a BTreeMap<String, String>> {
        self.namespaces.get(ns)
    }
}

/// A plugin's name (used in statuses, logs and the queue's event hints).
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;
}

/// PreFilter: computes per-pod state once per cycle; may reject the pod outright.
pub trait PreFilter: Plugin {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status;
}

/// Filter: can the pod run on this node?
pub trait Filter: Plugin {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// PreScore: computes state for Score over the feasible nodes.
pub trait PreScore: Plugin {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        snapshot: &Snapshot,
    ) -> Status;
}

/// Score: ranks a feasible node; `normalize` maps the raw scores to 0..=100.
pub trait Score: Plugin {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo, snapshot: &Snapshot)
        -> i64;
    fn normalize(
        &self,
        _state: &CycleState,
        _pod: &PodInfo,
        _nodes: &[&NodeInfo],
        _scores: &mut [i64],
    ) {
    }
}

/// A configured set of plugins (upstream's `frameworkImpl` of one profile).
#[derive(Clone)]
pub struct Framework {
    pub pre_filters: Vec<Arc<dyn PreFilter>>,
    pub filters: Vec<Arc<dyn Filter>>,
    pub pre_scores: Vec<Arc<dyn PreScore>>,
    /// Score plugins with their weights.
    pub scores: Vec<(Arc<dyn Score>, i64)>,
}

impl Framework {
    /// Upstream's default plugins and weights: filters in upstream's order, scores
    /// TaintToleration 3, NodeAffinity 2, NodeResourcesFit 1 (LeastAllocated),
    /// PodTopologySpread 2, InterPodAffinity 2, NodeResourcesBalancedAllocation 1,
    /// ImageLocality 1.
    pub fn default_plugins() -> Self {
        use crate::plugins::*;
        let unschedulable = Arc::new(NodeUnschedulable);
        let node_name = Arc::new(NodeName);
        let taints = Arc::new(TaintToleration);
        let affinity = Arc::new(NodeAffinity);
        let ports = Arc::new(NodePorts);
        let fit = Arc::new(NodeResourcesFit);
        let balanced = Arc::new(BalancedAllocation);
        let spread = Arc::new(PodTopologySpread);
        let inter = Arc::new(InterPodAffinity::default());
        let images = Arc::new(ImageLocality);
        Self {
            pre_filters: vec![fit.clone(), spread.clone(), inter.clone()],
            filters: vec![
                unschedulable,
                node_name,
                taints.clone(),
                affinity.clone(),
                ports,
                fit.clone(),
                spread.clone(),
                inter.clone(),
            ],
            pre_scores: vec![
                taints.clone(),
                affinity.clone(),
                spread.clone(),
                inter.clone(),
                balanced.clone(),
            ],
            scores: vec![
                (taints, 3),
                (affinity, 2),
                (fit, 1),
                (spread, 2),
                (inter, 2),
                (balanced, 1),
                (images, 1),
            ],
        }
    }

    /// Runs PreFilter; a rejection is returned with the plugin's name.
    pub fn run_pre_filters(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> Status {
        for p in &self.pre_filters {
            let s = p.pre_filter(state, pod, snapshot);
            match s.code {
                Code::Success => {}
                Code::Skip => {
                    state.skip_filter.insert(p.name());
                }
                _ => return s.with_plugin(p.name()),
            }
        }
        Status::success()
    }

    /// Runs every Filter on one node, stopping at the first rejection (upstream's
    /// `RunFilterPlugins`).
    pub fn run_filters(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        for p in &self.filters {
            if !state.skip_filter.is_empty() && state.skip_filter.contains(p.name()) {
                continue;
            }
            let s = p.filter(state, pod, node);
            if !s.is_success() {
                return s.with_plugin(p.name());
            }
        }
        Status::success()
    }
}

/// Why a pod fits no node (upstream's `framework.Diagnosis`).
#[derive(Clone, Debug, Default)]
pub struct Diagnosis {
    /// The status of every node that was rejected.
    pub node_to_status: Vec<(String, Status)>,
    /// The status of nodes not in `node_to_status` (all of them when PreFilter failed).
    pub absent_status: Option<Status>,
    pub unschedulable_plugins: BTreeSet<&'static str>,
    pub pre_filter_msg: String,
    pub post_filter_msg: String,
}

impl Diagnosis {
    pub fn status_of(&self, node: &str) -> Option<&Status> {
        self.node_to_status
            .iter()
            .find(|(n, _)| n == node)
            .map(|(_, s)| s)
            .or(self.absent_status.as_ref())
    }
}

/// The pod fits no node (upstream's `FitError`); its text is the `PodScheduled` condition's
/// message and the `FailedScheduling` event's note:
/// `0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No
/// preemption victims found for incoming pod.`
#[derive(Clone, Debug, Default)]
pub struct FitError {
    pub num_all_nodes: usize,
    pub diagnosis: Diagnosis,
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        let d = &self.diagnosis;
        if !d.pre_filter_msg.is_empty() {
            write!(f, " {}.", d.pre_filter_msg)?;
        } else {
            let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
            for (_, s) in &d.node_to_status {
                for r in &s.reasons {
                    *counts.entry(r).or_default() += 1;
                }
            }
            if d.node_to_status.len() < self.num_all_nodes {
                if let Some(s) = &d.absent_status {
                    for r in &s.reasons {
                        *counts.entry(r).or_default() +=
                            self.num_all_nodes - d.node_to_status.len();
                    }
                }
            }
            // Upstream sorts the formatted "<count> <reason>" strings, so "10 x" sorts
            // before "2 y".
            let mut lines: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
            lines.sort();
            if !lines.is_empty() {
                write!(f, " {}.", lines.join(", "))?;
            }
        }
        if !d.post_filter_msg.is_empty() {
            write!(f, " {}", d.post_filter_msg)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(node: &str, reasons: &[&'static str]) -> (String, Status) {
        (
            node.to_owned(),
            Status {
                code: Code::Unschedulable,
                reasons: reasons.iter().map(|r| Cow::Borrowed(*r)).collect(),
                plugin: "NodeResourcesFit",
            },
        )
    }

    #[test]
    fn fit_error_message_is_upstreams() {
        let mut e = FitError {
            num_all_nodes: 3,
            diagnosis: Diagnosis {
                node_to_status: vec![
                    rejected("a", &["Insufficient cpu"]),
                    rejected("b", &["Insufficient cpu"]),
                    rejected("c", &["Insufficient cpu"]),
                ],
                ..Default::default()
            },
        };
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 3 Insufficient cpu."
        );
        e.diagnosis.post_filter_msg =
            "preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
                .into();
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn reasons_are_counted_and_sorted_as_strings() {
        let mut statuses: Vec<_> = (0..10)
            .map(|i| rejected(&format!("n{i}"), &["Insufficient memory"]))
            .collect();
        statuses.push(rejected("x", &["Insufficient cpu", "Insufficient memory"]));
        statuses.push(rejected("y", &["node(s) had untolerated taint {k: v}"]));
        statuses.push(rejected("z", &["Insufficient cpu"]));
        let e = FitError {
            num_all_nodes: 13,
            diagnosis: Diagnosis {
                node_to_status: statuses,
                ..Default::default()
            },
        };
        assert_eq!(
            e.to_string(),
            "0/13 nodes are available: 1 node(s) had untolerated taint {k: v}, 11 Insufficient memory, 2 Insufficient cpu."
        );
    }

    #[test]
    fn absent_nodes_get_the_absent_status_and_prefilter_messages_stand_alone() {
        let e = FitError {
            num_all_nodes: 3,
            diagnosis: Diagnosis {
                node_to_status: vec![],
                absent_status: Some(Status::unresolvable(
                    "Preemption is not helpful for scheduling",
                )),
                ..Default::default()
            },
        };
        assert_eq!(
            e.to_string(),
            "0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
        let e = FitError {
            num_all_nodes: 2,
            diagnosis: Diagnosis {
                absent_status: Some(Status::unresolvable("x")),
                pre_filter_msg: "node(s) didn't match pod topology spread constraints".into(),
                ..Default::default()
            },
        };
        assert_eq!(
            e.to_string(),
            "0/2 nodes are available: node(s) didn't match pod topology spread constraints."
        );
    }
}
