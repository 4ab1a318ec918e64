//! NodeAffinity: `spec.nodeSelector` and required node affinity must match the node's labels
//! (Filter); preferred node affinity terms add their weights (Score, normalized to 0-100).
//! Upstream: `pkg/scheduler/framework/plugins/nodeaffinity`.
//!
//! Not here: the plugin's `addedAffinity` argument and the PreFilter that narrows the nodes
//! to those named by `matchFields` on `metadata.name` (the Filter gives the same answer, with
//! this plugin's reason instead of "didn't satisfy plugin(s)").

use crate::framework::{CycleState, Filter, Plugin, PreScore, Score, Snapshot, Status};
use crate::plugins::{default_normalize_score, names};
use crate::types::{NodeInfo, PodInfo};

pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";

pub struct NodeAffinity;

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        names::NODE_AFFINITY
    }
}

impl Filter for NodeAffinity {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if pod.node_affinity.is_empty() || pod.node_affinity.matches(&node.name, node.labels()) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_POD)
        }
    }
}

impl PreScore for NodeAffinity {
    fn pre_score(
        &self,
        _: &mut CycleState,
        pod: &PodInfo,
        _: &[&NodeInfo],
        _: &Snapshot,
    ) -> Status {
        if pod.preferred_node_terms.is_empty() {
            Status::skip()
        } else {
            Status::success()
        }
    }
}

impl Score for NodeAffinity {
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        pod.preferred_node_terms
            .iter()
            .filter(|(_, t)| t.matches(&node.name, node.labels()))
            .map(|(w, _)| i64::from(*w))
            .sum()
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, _: &[&NodeInfo], scores: &mut [i64]) {
        default_normalize_score(false, scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::testing::*;
    use serde_json::json;

    #[test]
    fn selector_and_required_affinity() {
        let st = CycleState::default();
        let a = plain_node("a", json!({"zone": "z1", "disk": "ssd"}));
        let b = plain_node("b", json!({"zone": "z2"}));
        let sel = pod("s", json!({"nodeSelector": {"disk": "ssd"}}));
        assert!(NodeAffinity.filter(&st, &sel, &a).is_success());
        let s = NodeAffinity.filter(&st, &sel, &b);
        assert_eq!(
            (s.code, s.message().as_str()),
            (Code::UnschedulableAndUnresolvable, ERR_REASON_POD)
        );
        // Terms are ORed, expressions within a term ANDed.
        let aff = pod(
            "r",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z9"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z2"]},
                                      {"key": "disk", "operator": "DoesNotExist"}]}]}}}}),
        );
        assert!(!NodeAffinity.filter(&st, &aff, &a).is_success());
        assert!(NodeAffinity.filter(&st, &aff, &b).is_success());
        // nodeSelector and affinity must both hold.
        let both = pod(
            "b",
            json!({"nodeSelector": {"disk": "ssd"}, "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z1"]}]}]}}}}),
        );
        assert!(!NodeAffinity.filter(&st, &both, &a).is_success());
        // An empty term list matches nothing.
        let none = pod(
            "n",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}}}),
        );
        assert!(!NodeAffinity.filter(&st, &none, &a).is_success());
    }

    #[test]
    fn preferred_terms_add_weights() {
        let world = World::new(vec![
            plain_node("a", json!({"zone": "z1", "disk": "ssd"})),
            plain_node("b", json!({"zone": "z1"})),
            plain_node("c", json!({})),
        ]);
        let snap = world.snapshot();
        let st = CycleState::default();
        let p = pod(
            "p",
            json!({"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 2, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}},
            {"weight": 6, "preference": {"matchExpressions": [{"key": "disk", "operator": "Exists"}]}}]}}}),
        );
        let mut scores: Vec<i64> = world
            .nodes
            .iter()
            .map(|n| NodeAffinity.score(&st, &p, n, &snap))
            .collect();
        assert_eq!(scores, [8, 2, 0]);
        NodeAffinity.normalize(&st, &p, &[], &mut scores);
        assert_eq!(scores, [100, 25, 0]);
    }
}
