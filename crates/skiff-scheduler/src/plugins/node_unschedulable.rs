//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes only pods that tolerate
//! the `node.kubernetes.io/unschedulable:NoSchedule` taint.
//! Upstream: `pkg/scheduler/framework/plugins/nodeunschedulable`.

use k8s_openapi::api::core::v1::Taint;

use crate::framework::{CycleState, Filter, Plugin, Status};
use crate::plugins::names;
use crate::types::{tolerates, NodeInfo, PodInfo};

pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";

pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        names::NODE_UNSCHEDULABLE
    }
}

impl Filter for NodeUnschedulable {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if !node.unschedulable {
            return Status::success();
        }
        let taint = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        if pod.tolerations().iter().any(|t| tolerates(t, &taint)) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_UNSCHEDULABLE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::testing::*;
    use serde_json::json;

    #[test]
    fn cordoned_nodes_take_only_tolerating_pods() {
        let cordoned = node(
            "n",
            json!({}),
            "1",
            "1Gi",
            json!({"spec": {"unschedulable": true}}),
        );
        let open = plain_node("m", json!({}));
        let plain = pod("p", json!({}));
        let tolerant = pod(
            "t",
            json!({"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        let st = CycleState::default();
        let s = NodeUnschedulable.filter(&st, &plain, &cordoned);
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.message(), "node(s) were unschedulable");
        assert!(NodeUnschedulable
            .filter(&st, &tolerant, &cordoned)
            .is_success());
        assert!(NodeUnschedulable.filter(&st, &plain, &open).is_success());
    }
}
