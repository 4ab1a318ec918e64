//! PodTopologySpread: `DoNotSchedule` constraints keep the skew (matching pods in the
//! node's domain, plus the pod itself, minus the least-loaded domain) within `maxSkew`
//! (Filter, honoring `minDomains`, `nodeAffinityPolicy` and `nodeTaintsPolicy`);
//! `ScheduleAnyway` constraints prefer nodes in less-loaded domains (Score).
//! Upstream: `pkg/scheduler/framework/plugins/podtopologyspread` (`filtering.go`,
//! `scoring.go`, `common.go`).
//!
//! A pod with no constraints of its own is scored with the system default constraints
//! (upstream's default profile, `defaultingType: System`): hostname with maxSkew 3 and zone
//! with maxSkew 5, both `ScheduleAnyway`, over the pods its Services and its ReplicaSet,
//! ReplicationController or StatefulSet select ([`crate::workloads`]); none when nothing
//! selects it. Nodes without a zone label are still spread by hostname then. Their zone
//! counts come from the cache's pods per label set and zone ([`crate::zone_counts`]) rather
//! than from every node's pods, when that gives the same numbers.
//!
//! Not here: `defaultingType: List` (configured default constraints): skiff has one profile.

use std::collections::{HashMap, HashSet};

use crate::framework::{
    CycleState, Filter, Plugin, PreFilter, PreScore, Score, Snapshot, StateData, Status,
    MAX_NODE_SCORE,
};
use crate::plugins::names;
use crate::types::{
    is_do_not_schedule, untolerated_taint, NodeInfo, PodInfo, Selector, SpreadConstraint,
    LABEL_HOSTNAME, LABEL_TOPOLOGY_ZONE,
};

pub const ERR_REASON_CONSTRAINTS_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints";
pub const ERR_REASON_NODE_LABEL_NOT_MATCH: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

pub struct PodTopologySpread;

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        names::POD_TOPOLOGY_SPREAD
    }
}

fn hard(pod: &PodInfo) -> impl Iterator<Item = &SpreadConstraint> {
    pod.spread_constraints.iter().filter(|c| c.hard)
}

fn soft(pod: &PodInfo) -> impl Iterator<Item = &SpreadConstraint> {
    pod.spread_constraints.iter().filter(|c| !c.hard)
}

fn has_all_keys<'a>(
    node: &NodeInfo,
    mut constraints: impl Iterator<Item = &'a SpreadConstraint>,
) -> bool {
    let labels = node.labels();
    constraints.all(|c| labels.contains_key(&c.topology_key))
}

/// Whether `node` counts for constraint `c` of `pod` (upstream's
/// `matchNodeInclusionPolicies`).
fn node_included(c: &SpreadConstraint, pod: &PodInfo, node: &NodeInfo) -> bool {
    if c.honor_node_affinity && !pod.node_affinity.matches(&node.name, node.labels()) {
        return false;
    }
    if c.honor_node_taints
        && untolerated_taint(&node.taints, pod.tolerations(), is_do_not_schedule).is_some()
    {
        return false;
    }
    true
}

/// Matching pods on `node` (terminating ones and other namespaces' do not count; an empty
/// selector counts nothing, as upstream's `countPodsMatchSelector`).
fn count_matching(node: &NodeInfo, c: &SpreadConstraint, namespace: &str) -> i64 {
    if c.selector.is_empty() || c.selector.is_nothing() {
        return 0;
    }
    node.pods
        .iter()
        .filter(|p| !p.terminating && p.namespace == namespace && c.selector.matches(p.labels()))
        .count() as i64
}

/// PreFilter state: matching pods per domain, per `DoNotSchedule` constraint.
#[derive(Clone, Debug, Default)]
struct FilterState {
    counts: Vec<HashMap<String, i64>>,
    minimums: Vec<i64>,
}

impl FilterState {
    fn refresh_minimums(&mut self) {
        self.minimums = self
            .counts
            .iter()
            .map(|m| m.values().copied().min().unwrap_or(i64::from(i32::MAX)))
            .collect();
    }

    fn update(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, delta: i64) {
        if other.namespace != pod.namespace || !has_all_keys(node, hard(pod)) {
            return;
        }
        for (i, c) in hard(pod).enumerate() {
            if !c.selector.matches(other.labels()) || !node_included(c, pod, node) {
                continue;
            }
            let v = node
                .labels()
                .get(&c.topology_key)
                .cloned()
                .unwrap_or_default();
            *self.counts[i].entry(v).or_insert(0) += delta;
        }
        self.refresh_minimums();
    }
}

impl StateData for FilterState {
    crate::state_data_boilerplate!();
    fn add_pod(&mut self, pod: &PodInfo, added: &PodInfo, node: &NodeInfo) {
        self.update(pod, added, node, 1);
    }
    fn remove_pod(&mut self, pod: &PodInfo, removed: &PodInfo, node: &NodeInfo) {
        self.update(pod, removed, node, -1);
    }
}

impl PreFilter for PodTopologySpread {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status {
        let n = hard(pod).count();
        if n == 0 {
            return Status::skip();
        }
        let mut s = FilterState {
            counts: vec![HashMap::new(); n],
            minimums: Vec::new(),
        };
        for node in snapshot.nodes {
            if !has_all_keys(node, hard(pod)) {
                continue;
            }
            for (i, c) in hard(pod).enumerate() {
                if !node_included(c, pod, node) {
                    continue;
                }
                let value = &node.labels()[&c.topology_key];
                let count = count_matching(node, c, &pod.namespace);
                match s.counts[i].get_mut(value.as_str()) {
                    Some(v) => *v += count,
                    None => {
                        s.counts[i].insert(value.clone(), count);
                    }
                }
            }
        }
        s.refresh_minimums();
        state.write(s);
        Status::success()
    }
}

impl Filter for PodTopologySpread {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<FilterState>() else {
            return Status::success();
        };
        let labels = node.labels();
        for (i, c) in hard(pod).enumerate() {
            let Some(value) = labels.get(&c.topology_key) else {
                return Status::unresolvable(ERR_REASON_NODE_LABEL_NOT_MATCH);
            };
            let domains = s.counts[i].len() as i64;
            let min = if domains < i64::from(c.min_domains) {
                0
            } else {
                s.minimums[i]
            };
            let self_match = i64::from(c.selector.matches(pod.labels()));
            let matching = s.counts[i].get(value.as_str()).copied().unwrap_or(0);
            if matching + self_match - min > i64::from(c.max_skew) {
                return Status::unschedulable(ERR_REASON_CONSTRAINTS_NOT_MATCH);
            }
        }
        Status::success()
    }
}

/// The system default constraints (upstream's `systemDefaultConstraints`, the default
/// profile's `defaultingType: System`): scoring only, for a pod with no constraints of its
/// own, over the pods `selector` (its Services' and controller's) selects.
fn system_default_constraints(selector: Selector) -> Vec<SpreadConstraint> {
    let constraint = |key: &str, max_skew| SpreadConstraint {
        max_skew,
        topology_key: key.to_owned(),
        hard: false,
        selector: selector.clone(),
        min_domains: 1,
        honor_node_affinity: true,
        honor_node_taints: false,
    };
    vec![
        constraint(LABEL_HOSTNAME, 3),
        constraint(LABEL_TOPOLOGY_ZONE, 5),
    ]
}

/// Whether the pod names spread constraints of its own (any kind: then no system default
/// applies, as upstream's `initPreScoreState`).
fn has_own_constraints(pod: &PodInfo) -> bool {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_ref())
        .is_some_and(|c| !c.is_empty())
}

/// PreScore state: matching pods per domain per `ScheduleAnyway` constraint (hostname
/// constraints are counted per node in Score), and the nodes without every topology key.
#[derive(Clone, Debug, Default)]
struct ScoreState {
    /// The system default constraints, when they apply (the pod has none then, so
    /// [`ScoreState::constraints`] is these or the pod's own soft ones).
    defaults: Vec<SpreadConstraint>,
    ignored: HashSet<String>,
    counts: Vec<HashMap<String, i64>>,
    weights: Vec<f64>,
}

impl ScoreState {
    fn constraints<'a>(&'a self, pod: &'a PodInfo) -> impl Iterator<Item = &'a SpreadConstraint> {
        self.defaults.iter().chain(soft(pod))
    }
}

impl StateData for ScoreState {
    crate::state_data_boilerplate!();
}

impl PreScore for PodTopologySpread {
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        snapshot: &Snapshot,
    ) -> Status {
        if nodes.is_empty() {
            return Status::skip();
        }
        let mut s = ScoreState::default();
        if !has_own_constraints(pod) {
            let selector = snapshot.workloads.default_selector(pod);
            if selector.is_empty() {
                return Status::skip();
            }
            s.defaults = system_default_constraints(selector);
        }
        let n = s.constraints(pod).count();
        if n == 0 {
            return Status::skip();
        }
        // Only the pod's own constraints require every topology key on a node: with the
        // system defaults a node without a zone label is still spread by hostname.
        let require_all = s.defaults.is_empty();
        s.counts = vec![HashMap::new(); n];
        for node in nodes {
            if require_all && !has_all_keys(node, s.constraints(pod)) {
                s.ignored.insert(node.name.clone());
                continue;
            }
            for (i, c) in s.defaults.iter().chain(soft(pod)).enumerate() {
                if c.topology_key == LABEL_HOSTNAME {
                    continue;
                }
                let v = node
                    .labels()
                    .get(&c.topology_key)
                    .map_or("", String::as_str);
                if !s.counts[i].contains_key(v) {
                    s.counts[i].insert(v.to_owned(), 0);
                }
            }
        }
        s.weights = s
            .constraints(pod)
            .enumerate()
            .map(|(i, c)| {
                let size = if c.topology_key == LABEL_HOSTNAME {
                    nodes.len() - s.ignored.len()
                } else {
                    s.counts[i].len()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        if by_label_sets(&s, pod, snapshot) {
            count_by_label_sets(&mut s, pod, snapshot);
        } else {
            count_by_nodes(&mut s, pod, snapshot, require_all);
        }
        state.write(s);
        Status::success()
    }
}

/// Whether the system defaults' zone counts can come from the cache's per-label-set counts
/// ([`crate::zone_counts`]): every node counts for them (no required node affinity to
/// honor; taints are ignored and no topology key is required), and the pod's namespace has
/// fewer distinct label sets than there are nodes to visit. The counts are the same.
fn by_label_sets(s: &ScoreState, pod: &PodInfo, snapshot: &Snapshot) -> bool {
    !s.defaults.is_empty()
        && pod.node_affinity.is_empty()
        && s.defaults.iter().all(|c| {
            !c.honor_node_taints
                && (c.topology_key == LABEL_HOSTNAME || c.topology_key == LABEL_TOPOLOGY_ZONE)
        })
        && snapshot.zone_counts.label_set_count(&pod.namespace) < snapshot.nodes.len()
}

/// Adds the matching pods of every included node to their domain's count (hostname
/// constraints are counted in Score), as upstream's PreScore does.
fn count_by_nodes(s: &mut ScoreState, pod: &PodInfo, snapshot: &Snapshot, require_all: bool) {
    for node in snapshot.nodes {
        if require_all && !has_all_keys(node, s.constraints(pod)) {
            continue;
        }
        for (i, c) in s.defaults.iter().chain(soft(pod)).enumerate() {
            if c.topology_key == LABEL_HOSTNAME || !node_included(c, pod, node) {
                continue;
            }
            let v = node
                .labels()
                .get(&c.topology_key)
                .map_or("", String::as_str);
            if let Some(slot) = s.counts[i].get_mut(v) {
                *slot += count_matching(node, c, &pod.namespace);
            }
        }
    }
}

/// The same for the system defaults' zone constraint from the per-label-set counts: the
/// label sets of the pod's namespace that the selector takes, their pods per zone.
fn count_by_label_sets(s: &mut ScoreState, pod: &PodInfo, snapshot: &Snapshot) {
    for (i, c) in s.defaults.iter().enumerate() {
        if c.topology_key != LABEL_TOPOLOGY_ZONE {
            continue;
        }
        for (labels, per_zone) in snapshot.zone_counts.label_sets(&pod.namespace) {
            if !c.selector.matches(labels) {
                continue;
            }
            for (zone, n) in per_zone {
                if let Some(slot) = s.counts[i].get_mut(zone.as_str()) {
                    *slot += n;
                }
            }
        }
    }
}

impl Score for PodTopologySpread {
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        let Some(s) = state.read::<ScoreState>() else {
            return 0;
        };
        if s.ignored.contains(&node.name) {
            return 0;
        }
        let mut score = 0.0;
        for (i, c) in s.constraints(pod).enumerate() {
            if let Some(v) = node.labels().get(&c.topology_key) {
                let count = if c.topology_key == LABEL_HOSTNAME {
                    count_matching(node, c, &pod.namespace)
                } else {
                    s.counts[i].get(v.as_str()).copied().unwrap_or(0)
                };
                score += count as f64 * s.weights[i] + f64::from(c.max_skew - 1);
            }
        }
        score.round() as i64
    }

    fn normalize(&self, state: &CycleState, _: &PodInfo, nodes: &[&NodeInfo], scores: &mut [i64]) {
        let Some(s) = state.read::<ScoreState>() else {
            return;
        };
        let ignored = |i: usize| nodes.get(i).is_some_and(|n| s.ignored.contains(&n.name));
        let (mut min, mut max) = (i64::MAX, 0i64);
        for (i, v) in scores.iter().enumerate() {
            if ignored(i) {
                continue;
            }
            min = min.min(*v);
            max = max.max(*v);
        }
        for (i, v) in scores.iter_mut().enumerate() {
            if ignored(i) {
                *v = 0;
            } else if max == 0 {
                *v = MAX_NODE_SCORE;
            } else {
                *v = MAX_NODE_SCORE * (max + min - *v) / max;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::framework::Framework;
    use crate::plugins::testing::*;
    use crate::workloads::Workload;
    use serde_json::json;
    use std::sync::Arc;

    fn spread(
        name: &str,
        key: &str,
        skew: i32,
        when: &str,
        extra: serde_json::Value,
    ) -> Arc<PodInfo> {
        let mut c = json!({"maxSkew": skew, "topologyKey": key, "whenUnsatisfiable": when,
            "labelSelector": {"matchLabels": {"app": "web"}}});
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                c.insert(k.clone(), v.clone());
            }
        }
        pod_labeled(
            name,
            json!({"app": "web"}),
            json!({"topologySpreadConstraints": [c]}),
        )
    }

    fn web(name: &str) -> Arc<PodInfo> {
        pod_labeled(name, json!({"app": "web"}), json!({}))
    }

    fn filter_all(world: &World, p: &PodInfo) -> Vec<Code> {
        let snap = world.snapshot();
        let mut st = CycleState::default();
        assert!(PodTopologySpread.pre_filter(&mut st, p, &snap).is_success());
        world
            .nodes
            .iter()
            .map(|n| PodTopologySpread.filter(&st, p, n).code)
            .collect()
    }

    #[test]
    fn max_skew_across_zones() {
        // zone a: 2 matching pods, zone b: 0 -> only zone b fits with maxSkew 1.
        let world = World::new(vec![
            with_pods(plain_node("a1", json!({"zone": "a"})), &[web("w1")]),
            with_pods(plain_node("a2", json!({"zone": "a"})), &[web("w2")]),
            plain_node("b1", json!({"zone": "b"})),
            plain_node("nolabel", json!({})),
        ]);
        let p = spread("p", "zone", 1, "DoNotSchedule", json!({}));
        assert_eq!(
            filter_all(&world, &p),
            [
                Code::Unschedulable,
                Code::Unschedulable,
                Code::Success,
                Code::UnschedulableAndUnresolvable
            ]
        );
        let snap = world.snapshot();
        let mut st = CycleState::default();
        PodTopologySpread.pre_filter(&mut st, &p, &snap);
        assert_eq!(
            PodTopologySpread.filter(&st, &p, &world.nodes[0]).message(),
            ERR_REASON_CONSTRAINTS_NOT_MATCH
        );
        assert_eq!(
            PodTopologySpread.filter(&st, &p, &world.nodes[3]).message(),
            ERR_REASON_NODE_LABEL_NOT_MATCH
        );
        // maxSkew 2 lets zone a take one more.
        let p = spread("p", "zone", 2, "DoNotSchedule", json!({}));
        assert_eq!(
            filter_all(&world, &p)[..3],
            [Code::Unschedulable, Code::Unschedulable, Code::Success]
        );
    }

    #[test]
    fn min_domains_treats_the_minimum_as_zero() {
        // One domain with 1 pod: without minDomains skew is 1+1-1 = 1 (fits); with minDomains
        // 2 the global minimum is 0, skew 2 > 1.
        let world = World::new(vec![with_pods(
            plain_node("a1", json!({"zone": "a"})),
            &[web("w1")],
        )]);
        let p = spread("p", "zone", 1, "DoNotSchedule", json!({}));
        assert_eq!(filter_all(&world, &p), [Code::Success]);
        let p = spread("p", "zone", 1, "DoNotSchedule", json!({"minDomains": 2}));
        assert_eq!(filter_all(&world, &p), [Code::Unschedulable]);
    }

    #[test]
    fn node_inclusion_policies() {
        // Zone b's only node is tainted: with nodeTaintsPolicy Honor it is no domain, so zone
        // a (1 pod) is the minimum and fits again.
        let tainted = node(
            "b1",
            json!({"zone": "b"}),
            "1",
            "1Gi",
            json!({"spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]}}),
        );
        let world = World::new(vec![
            with_pods(plain_node("a1", json!({"zone": "a"})), &[web("w1")]),
            tainted,
        ]);
        let p = spread("p", "zone", 1, "DoNotSchedule", json!({}));
        assert_eq!(filter_all(&world, &p)[0], Code::Unschedulable);
        let p = spread(
            "p",
            "zone",
            1,
            "DoNotSchedule",
            json!({"nodeTaintsPolicy": "Honor"}),
        );
        assert_eq!(filter_all(&world, &p)[0], Code::Success);
        // nodeAffinityPolicy Honor (the default) leaves out nodes the pod cannot go to.
        let world = World::new(vec![
            with_pods(
                plain_node("a1", json!({"zone": "a", "pool": "x"})),
                &[web("w1")],
            ),
            plain_node("b1", json!({"zone": "b"})),
        ]);
        let mut p = json!({"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "web"}}});
        let honor = pod_labeled(
            "h",
            json!({"app": "web"}),
            json!({"nodeSelector": {"pool": "x"}, "topologySpreadConstraints": [p.clone()]}),
        );
        assert_eq!(filter_all(&world, &honor)[0], Code::Success);
        p["nodeAffinityPolicy"] = json!("Ignore");
        let ignore = pod_labeled(
            "i",
            json!({"app": "web"}),
            json!({"nodeSelector": {"pool": "x"}, "topologySpreadConstraints": [p]}),
        );
        assert_eq!(filter_all(&world, &ignore)[0], Code::Unschedulable);
    }

    #[test]
    fn removing_a_pod_updates_the_counts() {
        let w1 = web("w1");
        let world = World::new(vec![
            with_pods(
                plain_node("a1", json!({"zone": "a"})),
                std::slice::from_ref(&w1),
            ),
            plain_node("b1", json!({"zone": "b"})),
        ]);
        let p = spread("p", "zone", 1, "DoNotSchedule", json!({}));
        let snap = world.snapshot();
        let mut st = CycleState::default();
        PodTopologySpread.pre_filter(&mut st, &p, &snap);
        assert_eq!(
            PodTopologySpread.filter(&st, &p, &world.nodes[0]).code,
            Code::Unschedulable
        );
        st.remove_pod(&p, &w1, &world.nodes[0]);
        assert!(PodTopologySpread
            .filter(&st, &p, &world.nodes[0])
            .is_success());
    }

    #[test]
    fn schedule_anyway_prefers_emptier_domains() {
        let world = World::new(vec![
            with_pods(
                plain_node("a1", json!({"zone": "a"})),
                &[web("w1"), web("w2")],
            ),
            with_pods(plain_node("b1", json!({"zone": "b"})), &[web("w3")]),
            plain_node("c1", json!({"zone": "c"})),
            plain_node("x", json!({})),
        ]);
        let p = spread("p", "zone", 1, "ScheduleAnyway", json!({}));
        let snap = world.snapshot();
        let mut st = CycleState::default();
        let nodes: Vec<&NodeInfo> = world.nodes.iter().collect();
        assert!(PodTopologySpread
            .pre_score(&mut st, &p, &nodes, &snap)
            .is_success());
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| PodTopologySpread.score(&st, &p, n, &snap))
            .collect();
        // weight ln(3+2) = 1.609: a = 3.2 -> 3, b = 1.6 -> 2, c = 0.
        assert_eq!(scores, [3, 2, 0, 0]);
        PodTopologySpread.normalize(&st, &p, &nodes, &mut scores);
        // 100*(3+0-s)/3; the node without the key gets 0.
        assert_eq!(scores, [0, 33, 100, 0]);
    }

    /// A pod of ReplicaSet `web-1` (what a Deployment makes), requesting 100m / 200Mi.
    fn replica(name: &str) -> Arc<PodInfo> {
        pod_with(
            name,
            json!({"labels": {"app": "web", "pod-template-hash": "1"}, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs-uid",
                 "controller": true}]}),
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}}}]}),
        )
    }

    /// A world whose ReplicaSet `web-1` selects `app=web, pod-template-hash=1`.
    fn with_replica_set(nodes: Vec<NodeInfo>) -> World {
        let mut world = World::new(nodes);
        let rs = serde_json::from_value(
            json!({"metadata": {"name": "web-1", "namespace": "default"},
            "spec": {"selector": {"matchLabels": {"app": "web", "pod-template-hash": "1"}},
                     "template": {}}}),
        )
        .expect("a ReplicaSet");
        world.workloads.upsert(Workload::of_replica_set(&rs));
        world
    }

    /// PreScore's status, then each node's normalized score.
    fn scores(world: &World, p: &PodInfo) -> (Code, Vec<i64>) {
        let snap = world.snapshot();
        let mut st = CycleState::default();
        let nodes: Vec<&NodeInfo> = world.nodes.iter().collect();
        let code = PodTopologySpread.pre_score(&mut st, p, &nodes, &snap).code;
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| PodTopologySpread.score(&st, p, n, &snap))
            .collect();
        PodTopologySpread.normalize(&st, p, &nodes, &mut scores);
        (code, scores)
    }

    #[test]
    fn system_defaults_spread_the_pods_of_a_replica_set() {
        // Three nodes without zone labels, 2, 1 and 0 replicas: hostname weight ln(3+2),
        // raw 2*1.61+2 = 5, 1.61+2 = 4 and 2; normalized 100*(5+2-s)/5. The zone default
        // adds nothing on nodes without the label, and does not make them ignored.
        let world = with_replica_set(vec![
            with_pods(plain_node("a", json!({})), &[replica("r1"), replica("r2")]),
            with_pods(plain_node("b", json!({})), &[replica("r3")]),
            plain_node("c", json!({})),
        ]);
        assert_eq!(
            scores(&world, &replica("p")),
            (Code::Success, vec![40, 60, 100])
        );
        // With zones, both count: zone z1 (a, b) holds 3 replicas, z2 (c) none; weights
        // ln(3+2) for hostname and ln(2+2) for zone, maxSkew-1 = 2 and 4.
        let world = with_replica_set(vec![
            with_pods(
                plain_node("a", json!({LABEL_TOPOLOGY_ZONE: "z1"})),
                &[replica("r1"), replica("r2")],
            ),
            with_pods(
                plain_node("b", json!({LABEL_TOPOLOGY_ZONE: "z1"})),
                &[replica("r3")],
            ),
            plain_node("c", json!({LABEL_TOPOLOGY_ZONE: "z2"})),
        ]);
        // a: 3.22+2 + 4.16+4 = 13.4 -> 13; b: 1.61+2 + 8.16 = 11.8 -> 12; c: 2 + 4 = 6.
        // 100*(13+6-s)/13.
        assert_eq!(
            scores(&world, &replica("p")),
            (Code::Success, vec![46, 53, 100])
        );
        // Other namespaces' pods and pods the selector does not take do not count.
        let stranger = pod_with(
            "s",
            json!({"namespace": "other", "labels": {"app": "web", "pod-template-hash": "1"}}),
            json!({}),
        );
        let world = with_replica_set(vec![
            with_pods(plain_node("a", json!({})), &[stranger, web("w1")]),
            plain_node("b", json!({})),
        ]);
        assert_eq!(
            scores(&world, &replica("p")),
            (Code::Success, vec![100, 100])
        );
    }

    #[test]
    fn system_defaults_apply_only_to_pods_something_selects_without_constraints() {
        let world = with_replica_set(vec![
            with_pods(plain_node("a", json!({})), &[replica("r1"), replica("r2")]),
            plain_node("b", json!({})),
        ]);
        // No Service or controller selects the pod: no default, Skip.
        let lone = pod_labeled(
            "lone",
            json!({"app": "web", "pod-template-hash": "1"}),
            json!({}),
        );
        assert_eq!(scores(&world, &lone).0, Code::Skip);
        // Its own soft constraint (over pods labeled app=db: none) replaces the defaults.
        let own = pod_with(
            "own",
            json!({"labels": {"app": "web", "pod-template-hash": "1"}, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs-uid",
                 "controller": true}]}),
            json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": LABEL_HOSTNAME,
                "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "db"}}}]}),
        );
        assert_eq!(scores(&world, &own), (Code::Success, vec![100, 100]));
        // Only hard constraints of its own: no soft ones and no defaults either.
        let mut hard = own.pod.as_ref().clone();
        if let Some(c) = hard
            .spec
            .as_mut()
            .and_then(|s| s.topology_spread_constraints.as_mut())
        {
            c[0].when_unsatisfiable = "DoNotSchedule".into();
        }
        let hard = PodInfo::new(Arc::new(hard));
        assert_eq!(scores(&world, &hard).0, Code::Skip);
        // The same pod without constraints is spread by the defaults: weight ln(2+2), raw
        // 2*1.39+2 = 5 and 2, so 100*(5+2-s)/5.
        assert_eq!(
            scores(&world, &replica("p")),
            (Code::Success, vec![40, 100])
        );
        // A Service that selects the lone pod gives it a default selector too.
        let mut world = world;
        let svc =
            serde_json::from_value(json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}}}))
            .expect("a Service");
        world.workloads.upsert(Workload::of_service(&svc));
        assert_eq!(scores(&world, &lone), (Code::Success, vec![40, 100]));
    }

    #[test]
    fn a_replica_goes_to_the_node_with_fewest_replicas_over_least_allocated() {
        use crate::schedule_one::{Algorithm, Nominated};
        // Equal nodes; a and b hold a replica each, c an unrelated pod of 1 cpu / 2Gi, so
        // LeastAllocated prefers a and b (95 against 72). The system default gives c 100
        // and a, b 50, at weight 2: c wins. A pod nothing selects goes to a or b.
        let unrelated = pod_requesting("big", "1", "2Gi");
        let world = with_replica_set(vec![
            with_pods(
                node("a", json!({}), "4", "8Gi", json!({})),
                &[replica("r1")],
            ),
            with_pods(
                node("b", json!({}), "4", "8Gi", json!({})),
                &[replica("r2")],
            ),
            with_pods(node("c", json!({}), "4", "8Gi", json!({})), &[unrelated]),
        ]);
        let snap = world.snapshot();
        let nominated = Nominated::new();
        let lone = pod_with(
            "lone",
            json!({"labels": {"app": "solo"}}),
            json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m", "memory": "200Mi"}}}]}),
        );
        for seed in 0..8 {
            let mut algo = Algorithm::seeded(Framework::default_plugins(), 1, seed);
            let got = algo
                .schedule_pod(&replica("p"), &snap, &nominated)
                .expect("fits");
            assert_eq!(got.node, "c", "seed {seed}");
            let got = algo.schedule_pod(&lone, &snap, &nominated).expect("fits");
            assert_ne!(got.node, "c", "seed {seed}");
        }
    }

    #[test]
    fn zone_counts_by_label_sets_are_the_counts_by_nodes() {
        let in_ns = |name: &str, ns: &str, labels: serde_json::Value| {
            pod_with(name, json!({"namespace": ns, "labels": labels}), json!({}))
        };
        let terminating = pod_with(
            "t",
            json!({"labels": {"app": "web", "pod-template-hash": "1"},
                   "deletionTimestamp": "2026-01-01T00:00:00Z"}),
            json!({}),
        );
        let world = with_replica_set(vec![
            with_pods(
                plain_node("a1", json!({LABEL_TOPOLOGY_ZONE: "a"})),
                &[replica("r1"), replica("r2"), web("w1"), terminating],
            ),
            with_pods(
                plain_node("a2", json!({LABEL_TOPOLOGY_ZONE: "a"})),
                &[
                    replica("r3"),
                    in_ns(
                        "o1",
                        "other",
                        json!({"app": "web", "pod-template-hash": "1"}),
                    ),
                ],
            ),
            with_pods(
                plain_node("b1", json!({LABEL_TOPOLOGY_ZONE: "b"})),
                &[replica("r4")],
            ),
            with_pods(plain_node("x", json!({})), &[replica("r5"), replica("r6")]),
            plain_node("c1", json!({LABEL_TOPOLOGY_ZONE: "c"})),
        ]);
        let snap = world.snapshot();
        let p = replica("p");
        let nodes: Vec<&NodeInfo> = world.nodes.iter().collect();
        // Only some nodes feasible (domains a, "" and c): the other domains are not counted.
        for feasible in [&nodes[..], &nodes[2..], &nodes[..1]] {
            let mut st = CycleState::default();
            assert!(PodTopologySpread
                .pre_score(&mut st, &p, feasible, &snap)
                .is_success());
            let Some(s) = st.read::<ScoreState>() else {
                panic!("no state");
            };
            assert!(by_label_sets(s, &p, &snap), "fewer label sets than nodes");
            let mut by_nodes = s.clone();
            for c in &mut by_nodes.counts {
                c.values_mut().for_each(|v| *v = 0);
            }
            let mut by_sets = by_nodes.clone();
            count_by_nodes(&mut by_nodes, &p, &snap, false);
            count_by_label_sets(&mut by_sets, &p, &snap);
            assert_eq!(by_nodes.counts, by_sets.counts);
            assert_eq!(by_nodes.counts, s.counts);
        }
        let mut st = CycleState::default();
        PodTopologySpread.pre_score(&mut st, &p, &nodes, &snap);
        let counts = &st.read::<ScoreState>().expect("state").counts[1];
        let want: HashMap<String, i64> = [
            ("a".into(), 3),
            ("b".into(), 1),
            ("c".into(), 0),
            ("".into(), 2),
        ]
        .into();
        assert_eq!(counts, &want);
        // A pod with required node affinity visits the nodes (some may not count).
        let picky = pod_with(
            "picky",
            json!({"labels": {"app": "web", "pod-template-hash": "1"}, "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "rs-uid",
                 "controller": true}]}),
            json!({"nodeSelector": {LABEL_TOPOLOGY_ZONE: "a"}}),
        );
        let mut st = CycleState::default();
        PodTopologySpread.pre_score(&mut st, &picky, &nodes[..2], &snap);
        let s = st.read::<ScoreState>().expect("state");
        assert!(!by_label_sets(s, &picky, &snap));
        assert_eq!(s.counts[1], HashMap::from([("a".to_string(), 3)]));
    }
}
