//! InterPodAffinity: required pod affinity (some matching pod in the node's domain),
//! required anti-affinity (none), and existing pods' anti-affinity against the incoming pod
//! (Filter); preferred terms of both sides plus existing pods' required affinity at
//! `hardPodAffinityWeight` 1 (Score, min-max normalized).
//! Upstream: `pkg/scheduler/framework/plugins/interpodaffinity` (`filtering.go`,
//! `scoring.go`).
//!
//! Counts are kept as topology key -> value -> count, so lookups need no key allocation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::framework::{
    CycleState, Filter, Plugin, PreFilter, PreScore, Score, Snapshot, StateData, Status,
    MAX_NODE_SCORE,
};
use crate::plugins::names;
use crate::types::{AffinityTerm, NodeInfo, PodInfo};

pub const ERR_REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
pub const ERR_REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ERR_REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";

/// Upstream's default `hardPodAffinityWeight`.
pub const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

pub struct InterPodAffinity {
    pub hard_pod_affinity_weight: i64,
}

impl Default for InterPodAffinity {
    fn default() -> Self {
        Self {
            hard_pod_affinity_weight: HARD_POD_AFFINITY_WEIGHT,
        }
    }
}

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        names::INTER_POD_AFFINITY
    }
}

type Namespaces = Arc<HashMap<String, BTreeMap<String, String>>>;

/// key -> value -> count.
#[derive(Clone, Debug, Default)]
struct Counts(HashMap<String, HashMap<String, i64>>);

impl Counts {
    fn add(&mut self, node: &NodeInfo, key: &str, delta: i64) {
        if let Some(v) = node.labels().get(key) {
            let values = match self.0.get_mut(key) {
                Some(m) => m,
                None => self.0.entry(key.to_owned()).or_default(),
            };
            match values.get_mut(v.as_str()) {
                Some(c) => *c += delta,
                None => {
                    values.insert(v.clone(), delta);
                }
            }
        }
    }

    fn get(&self, key: &str, value: &str) -> i64 {
        self.0
            .get(key)
            .and_then(|m| m.get(value))
            .copied()
            .unwrap_or(0)
    }

    fn is_empty(&self) -> bool {
        self.0.values().all(|m| m.is_empty())
    }
}

fn matches_all(terms: &[AffinityTerm], pod: &PodInfo, ns: &Namespaces) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(pod, ns.get(&pod.namespace)))
}

#[derive(Clone, Debug, Default)]
struct FilterState {
    /// Existing pods' required anti-affinity terms that the incoming pod matches.
    existing_anti_affinity: Counts,
    /// Pods matching all of the incoming pod's required affinity terms.
    affinity: Counts,
    /// Pods matching one of its required anti-affinity terms.
    anti_affinity: Counts,
    namespaces: Namespaces,
}

impl FilterState {
    fn update(&mut self, pod: &PodInfo, other: &PodInfo, node: &NodeInfo, delta: i64) {
        let own_ns = self.namespaces.get(&pod.namespace);
        for t in &other.required_anti_affinity {
            if t.matches(pod, own_ns) {
                self.existing_anti_affinity
                    .add(node, &t.topology_key, delta);
            }
        }
        if matches_all(&pod.required_affinity, other, &self.namespaces) {
            for t in &pod.required_affinity {
                self.affinity.add(node, &t.topology_key, delta);
            }
        }
        let other_ns = self.namespaces.get(&other.namespace);
        for t in &pod.required_anti_affinity {
            if t.matches(other, other_ns) {
                self.anti_affinity.add(node, &t.topology_key, delta);
            }
        }
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

impl PreFilter for InterPodAffinity {
    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo, snapshot: &Snapshot) -> Status {
        if let Some(e) = &pod.parse_error {
            return Status::error(format!("parsing pod: {e}"));
        }
        let has_own = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
        if !has_own && snapshot.nodes_with_required_anti_affinity_pods == 0 {
            return Status::skip();
        }
        let mut s = FilterState {
            namespaces: snapshot.namespaces.clone(),
            ..Default::default()
        };
        let own_ns = snapshot.namespace_labels(&pod.namespace);
        for node in snapshot.nodes {
            if node.pods_with_required_anti_affinity > 0 {
                for existing in &node.pods {
                    for t in &existing.required_anti_affinity {
                        if t.matches(pod, own_ns) {
                            s.existing_anti_affinity.add(node, &t.topology_key, 1);
                        }
                    }
                }
            }
            if has_own {
                for existing in &node.pods {
                    if matches_all(&pod.required_affinity, existing, &s.namespaces) {
                        for t in &pod.required_affinity {
                            s.affinity.add(node, &t.topology_key, 1);
                        }
                    }
                    let ns = snapshot.namespace_labels(&existing.namespace);
                    for t in &pod.required_anti_affinity {
                        if t.matches(existing, ns) {
                            s.anti_affinity.add(node, &t.topology_key, 1);
                        }
                    }
                }
            }
        }
        state.write(s);
        Status::success()
    }
}

impl Filter for InterPodAffinity {
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(s) = state.read::<FilterState>() else {
            return Status::success();
        };
        let labels = node.labels();
        // Required affinity: every topology key on the node, a matching pod in each domain;
        // or, for the first pod of a group with affinity to itself, no matching pod anywhere
        // and the pod matching its own terms.
        if !pod.required_affinity.is_empty() {
            let mut pods_exist = true;
            for t in &pod.required_affinity {
                match labels.get(&t.topology_key) {
                    None => return Status::unresolvable(ERR_REASON_AFFINITY),
                    Some(v) => {
                        if s.affinity.get(&t.topology_key, v) <= 0 {
                            pods_exist = false;
                        }
                    }
                }
            }
            if !pods_exist
                && (!s.affinity.is_empty()
                    || !matches_all(&pod.required_affinity, pod, &s.namespaces))
            {
                return Status::unresolvable(ERR_REASON_AFFINITY);
            }
        }
        if !s.anti_affinity.is_empty() {
            for t in &pod.required_anti_affinity {
                if let Some(v) = labels.get(&t.topology_key) {
                    if s.anti_affinity.get(&t.topology_key, v) > 0 {
                        return Status::unschedulable(ERR_REASON_ANTI_AFFINITY);
                    }
                }
            }
        }
        if !s.existing_anti_affinity.is_empty() {
            for (k, v) in labels {
                if s.existing_anti_affinity.get(k, v) > 0 {
                    return Status::unschedulable(ERR_REASON_EXISTING_ANTI_AFFINITY);
                }
            }
        }
        Status::success()
    }
}

#[derive(Clone, Debug, Default)]
struct ScoreState {
    topology_score: Counts,
}

impl StateData for ScoreState {
    crate::state_data_boilerplate!();
}

impl InterPodAffinity {
    fn process_existing(
        &self,
        scores: &mut Counts,
        pod: &PodInfo,
        existing: &PodInfo,
        node: &NodeInfo,
        snapshot: &Snapshot,
    ) {
        if node.labels().is_empty() {
            return;
        }
        let existing_ns = snapshot.namespace_labels(&existing.namespace);
        let own_ns = snapshot.namespace_labels(&pod.namespace);
        for t in &pod.preferred_affinity {
            if t.matches(existing, existing_ns) {
                scores.add(node, &t.topology_key, i64::from(t.weight));
            }
        }
        for t in &pod.preferred_anti_affinity {
            if t.matches(existing, existing_ns) {
                scores.add(node, &t.topology_key, -i64::from(t.weight));
            }
        }
        if self.hard_pod_affinity_weight > 0 {
            for t in &existing.required_affinity {
                if t.matches(pod, own_ns) {
                    scores.add(node, &t.topology_key, self.hard_pod_affinity_weight);
                }
            }
        }
        for t in &existing.preferred_affinity {
            if t.matches(pod, own_ns) {
                scores.add(node, &t.topology_key, i64::from(t.weight));
            }
        }
        for t in &existing.preferred_anti_affinity {
            if t.matches(pod, own_ns) {
                scores.add(node, &t.topology_key, -i64::from(t.weight));
            }
        }
    }
}

impl PreScore for InterPodAffinity {
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
        let has_constraints =
            !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        if !has_constraints && snapshot.nodes_with_affinity_pods == 0 {
            return Status::skip();
        }
        let mut scores = Counts::default();
        for node in snapshot.nodes {
            if !has_constraints && node.pods_with_affinity == 0 {
                continue;
            }
            for existing in &node.pods {
                if !has_constraints && !existing.has_affinity() {
                    continue;
                }
                self.process_existing(&mut scores, pod, existing, node, snapshot);
            }
        }
        if scores.0.is_empty() {
            return Status::skip();
        }
        state.write(ScoreState {
            topology_score: scores,
        });
        Status::success()
    }
}

impl Score for InterPodAffinity {
    fn score(&self, state: &CycleState, _pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        let Some(s) = state.read::<ScoreState>() else {
            return 0;
        };
        let labels = node.labels();
        s.topology_score
            .0
            .iter()
            .filter_map(|(k, values)| labels.get(k).and_then(|v| values.get(v.as_str())))
            .sum()
    }

    fn normalize(&self, state: &CycleState, _: &PodInfo, _: &[&NodeInfo], scores: &mut [i64]) {
        if state.read::<ScoreState>().is_none() {
            return;
        }
        let min = scores.iter().copied().min().unwrap_or(0);
        let max = scores.iter().copied().max().unwrap_or(0);
        let diff = max - min;
        for s in scores.iter_mut() {
            *s = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::testing::*;
    use serde_json::json;

    fn app(name: &str, app: &str) -> Arc<PodInfo> {
        pod_labeled(name, json!({"app": app}), json!({}))
    }

    fn with_affinity(
        name: &str,
        labels: serde_json::Value,
        kind: &str,
        app: &str,
        key: &str,
    ) -> Arc<PodInfo> {
        pod_labeled(
            name,
            labels,
            json!({"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}}}),
        )
    }

    fn run(world: &World, p: &PodInfo) -> Vec<(Code, String)> {
        let snap = world.snapshot();
        let mut st = CycleState::default();
        let s = InterPodAffinity::default().pre_filter(&mut st, p, &snap);
        assert!(s.is_success() || s.code == Code::Skip, "{s:?}");
        world
            .nodes
            .iter()
            .map(|n| {
                let s = InterPodAffinity::default().filter(&st, p, n);
                (s.code, s.message())
            })
            .collect()
    }

    #[test]
    fn required_affinity_needs_a_matching_pod_in_the_domain() {
        let world = World::new(vec![
            with_pods(plain_node("a1", json!({"zone": "a"})), &[app("db", "db")]),
            plain_node("a2", json!({"zone": "a"})),
            plain_node("b1", json!({"zone": "b"})),
            plain_node("none", json!({})),
        ]);
        let p = with_affinity("p", json!({"app": "web"}), "podAffinity", "db", "zone");
        let got = run(&world, &p);
        assert_eq!(got[0].0, Code::Success);
        assert_eq!(got[1].0, Code::Success);
        assert_eq!(
            got[2],
            (
                Code::UnschedulableAndUnresolvable,
                ERR_REASON_AFFINITY.to_string()
            )
        );
        assert_eq!(got[3].0, Code::UnschedulableAndUnresolvable);
    }

    #[test]
    fn the_first_pod_of_a_self_affine_group_may_go_anywhere() {
        let world = World::new(vec![
            plain_node("a1", json!({"zone": "a"})),
            plain_node("n", json!({})),
        ]);
        let p = with_affinity("p", json!({"app": "web"}), "podAffinity", "web", "zone");
        let got = run(&world, &p);
        assert_eq!(got[0].0, Code::Success);
        // Still, the node must have the topology key.
        assert_eq!(got[1].0, Code::UnschedulableAndUnresolvable);
        // A pod not matching its own terms has no such pass.
        let q = with_affinity("q", json!({"app": "other"}), "podAffinity", "web", "zone");
        assert_eq!(run(&world, &q)[0].0, Code::UnschedulableAndUnresolvable);
    }

    #[test]
    fn anti_affinity_both_ways() {
        let world = World::new(vec![
            with_pods(plain_node("a", json!({})), &[app("w1", "web")]),
            plain_node("b", json!({})),
        ]);
        let p = with_affinity(
            "p",
            json!({"app": "web"}),
            "podAntiAffinity",
            "web",
            "kubernetes.io/hostname",
        );
        let got = run(&world, &p);
        assert_eq!(
            got[0],
            (Code::Unschedulable, ERR_REASON_ANTI_AFFINITY.to_string())
        );
        assert_eq!(got[1].0, Code::Success);
        // An existing pod's anti-affinity keeps a matching newcomer off its node.
        let world = World::new(vec![
            with_pods(
                plain_node("a", json!({})),
                &[with_affinity(
                    "lonely",
                    json!({"app": "x"}),
                    "podAntiAffinity",
                    "web",
                    "kubernetes.io/hostname",
                )],
            ),
            plain_node("b", json!({})),
        ]);
        let got = run(&world, &app("w", "web"));
        assert_eq!(
            got[0],
            (
                Code::Unschedulable,
                ERR_REASON_EXISTING_ANTI_AFFINITY.to_string()
            )
        );
        assert_eq!(got[1].0, Code::Success);
        // A pod it does not select is welcome.
        assert_eq!(run(&world, &app("d", "db"))[0].0, Code::Success);
    }

    #[test]
    fn other_namespaces_do_not_match_unless_named() {
        let other = pod_with(
            "w1",
            json!({"namespace": "other", "labels": {"app": "web"}}),
            json!({}),
        );
        let world = World::new(vec![with_pods(plain_node("a", json!({})), &[other])]);
        let p = with_affinity(
            "p",
            json!({}),
            "podAntiAffinity",
            "web",
            "kubernetes.io/hostname",
        );
        assert_eq!(run(&world, &p)[0].0, Code::Success);
        let named = pod(
            "n",
            json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname", "namespaces": ["other"]}]}}}),
        );
        assert_eq!(run(&world, &named)[0].0, Code::Unschedulable);
    }

    #[test]
    fn preferred_terms_score() {
        let world = World::new(vec![
            with_pods(
                plain_node("a", json!({"zone": "z1"})),
                &[app("c1", "cache")],
            ),
            plain_node("b", json!({"zone": "z1"})),
            plain_node("c", json!({"zone": "z2"})),
        ]);
        let p = pod(
            "p",
            json!({"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "zone"}}]}}}),
        );
        let snap = world.snapshot();
        let mut st = CycleState::default();
        let nodes: Vec<&NodeInfo> = world.nodes.iter().collect();
        let plugin = InterPodAffinity::default();
        assert!(plugin.pre_score(&mut st, &p, &nodes, &snap).is_success());
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| plugin.score(&st, &p, n, &snap))
            .collect();
        assert_eq!(scores, [10, 10, 0]);
        plugin.normalize(&st, &p, &nodes, &mut scores);
        assert_eq!(scores, [100, 100, 0]);
        // Without any affinity anywhere the plugin skips.
        let mut st = CycleState::default();
        assert_eq!(
            plugin
                .pre_score(&mut st, &pod("q", json!({})), &nodes, &snap)
                .code,
            Code::Skip
        );
    }
}
