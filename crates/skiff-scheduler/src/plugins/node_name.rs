//! NodeName: a pod that names a node (`spec.nodeName`) fits only there.
//! Upstream: `pkg/scheduler/framework/plugins/nodename`.

use crate::framework::{CycleState, Filter, Plugin, Status};
use crate::plugins::names;
use crate::types::{NodeInfo, PodInfo};

pub const ERR_REASON: &str = "node(s) didn't match the requested node name";

pub struct NodeName;

impl Plugin for NodeName {
    fn name(&self) -> &'static str {
        names::NODE_NAME
    }
}

impl Filter for NodeName {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        match &pod.node_name {
            Some(n) if *n != node.name => Status::unresolvable(ERR_REASON),
            _ => Status::success(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::testing::*;
    use serde_json::json;

    #[test]
    fn only_the_named_node_fits() {
        let st = CycleState::default();
        let p = pod("p", json!({"nodeName": "a"}));
        assert!(NodeName
            .filter(&st, &p, &plain_node("a", json!({})))
            .is_success());
        let s = NodeName.filter(&st, &p, &plain_node("b", json!({})));
        assert_eq!(s.message(), ERR_REASON);
        assert!(NodeName
            .filter(&st, &pod("q", json!({})), &plain_node("b", json!({})))
            .is_success());
    }
}
