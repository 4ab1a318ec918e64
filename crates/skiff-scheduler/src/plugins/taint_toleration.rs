//! TaintToleration: a node's NoSchedule and NoExecute taints keep off pods that do not
//! tolerate them (Filter); its PreferNoSchedule taints count against it (Score, reversed so
//! fewer intolerable taints score higher).
//! Upstream: `pkg/scheduler/framework/plugins/tainttoleration`.

use crate::framework::{CycleState, Filter, Plugin, PreScore, Score, Snapshot, Status};
use crate::plugins::{default_normalize_score, names};
use crate::types::{is_do_not_schedule, tolerates, untolerated_taint, NodeInfo, PodInfo};

pub struct TaintToleration;

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        names::TAINT_TOLERATION
    }
}

impl Filter for TaintToleration {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if node.taints.is_empty() {
            return Status::success();
        }
        match untolerated_taint(&node.taints, pod.tolerations(), is_do_not_schedule) {
            None => Status::success(),
            Some(t) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            )),
        }
    }
}

impl PreScore for TaintToleration {
    fn pre_score(&self, _: &mut CycleState, _: &PodInfo, _: &[&NodeInfo], _: &Snapshot) -> Status {
        Status::success()
    }
}

impl Score for TaintToleration {
    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        if node.taints.is_empty() {
            return 0;
        }
        let prefer = |tol: &&k8s_openapi::api::core::v1::Toleration| {
            matches!(
                tol.effect.as_deref(),
                None | Some("") | Some("PreferNoSchedule")
            )
        };
        node.taints
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule")
            .filter(|t| {
                !pod.tolerations()
                    .iter()
                    .filter(prefer)
                    .any(|tol| tolerates(tol, t))
            })
            .count() as i64
    }

    fn normalize(&self, _: &CycleState, _: &PodInfo, _: &[&NodeInfo], scores: &mut [i64]) {
        default_normalize_score(true, scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::testing::*;
    use serde_json::json;

    fn tainted(name: &str, taints: serde_json::Value) -> NodeInfo {
        node(
            name,
            json!({}),
            "1",
            "1Gi",
            json!({"spec": {"taints": taints}}),
        )
    }

    #[test]
    fn filter_table() {
        let st = CycleState::default();
        let n = tainted(
            "n",
            json!([{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]),
        );
        let x = tainted("x", json!([{"key": "evict", "effect": "NoExecute"}]));
        let soft = tainted("s", json!([{"key": "soft", "effect": "PreferNoSchedule"}]));
        let plain = pod("p", json!({}));
        let tol = pod(
            "t",
            json!({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
        );
        let all = pod("a", json!({"tolerations": [{"operator": "Exists"}]}));
        let s = TaintToleration.filter(&st, &plain, &n);
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(
            s.message(),
            "node(s) had untolerated taint {dedicated: gpu}"
        );
        assert!(TaintToleration.filter(&st, &tol, &n).is_success());
        assert_eq!(
            TaintToleration.filter(&st, &plain, &x).message(),
            "node(s) had untolerated taint {evict: }"
        );
        assert!(!TaintToleration.filter(&st, &tol, &x).is_success());
        assert!(TaintToleration.filter(&st, &all, &x).is_success());
        // PreferNoSchedule never filters.
        assert!(TaintToleration.filter(&st, &plain, &soft).is_success());
    }

    #[test]
    fn prefer_no_schedule_taints_lower_the_score() {
        let world = World::new(vec![
            plain_node("clean", json!({})),
            tainted("one", json!([{"key": "a", "effect": "PreferNoSchedule"}])),
            tainted(
                "two",
                json!([{"key": "a", "effect": "PreferNoSchedule"}, {"key": "b", "effect": "PreferNoSchedule"}]),
            ),
        ]);
        let snap = world.snapshot();
        let st = CycleState::default();
        let p = pod(
            "p",
            json!({"tolerations": [{"key": "b", "operator": "Exists", "effect": "PreferNoSchedule"}]}),
        );
        let mut scores: Vec<i64> = world
            .nodes
            .iter()
            .map(|n| TaintToleration.score(&st, &p, n, &snap))
            .collect();
        assert_eq!(scores, [0, 1, 1]);
        TaintToleration.normalize(&st, &p, &[], &mut scores);
        assert_eq!(scores, [100, 0, 0]);
        let q = pod("q", json!({}));
        let mut scores: Vec<i64> = world
            .nodes
            .iter()
            .map(|n| TaintToleration.score(&st, &q, n, &snap))
            .collect();
        TaintToleration.normalize(&st, &q, &[], &mut scores);
        assert_eq!(scores, [100, 50, 0]);
    }
}
