//! NodePorts: a pod's host ports must be free on the node (`0.0.0.0` clashes with every
//! address of the same protocol and port).
//! Upstream: `pkg/scheduler/framework/plugins/nodeports`.

use crate::framework::{CycleState, Filter, Plugin, Status};
use crate::plugins::names;
use crate::types::{port_conflicts, NodeInfo, PodInfo};

pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

pub struct NodePorts;

impl Plugin for NodePorts {
    fn name(&self) -> &'static str {
        names::NODE_PORTS
    }
}

impl Filter for NodePorts {
    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if pod.host_ports.is_empty() || node.used_ports.is_empty() {
            return Status::success();
        }
        if pod
            .host_ports
            .iter()
            .any(|p| port_conflicts(&node.used_ports, p))
        {
            Status::unschedulable(ERR_REASON)
        } else {
            Status::success()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::Code;
    use crate::plugins::testing::*;
    use serde_json::json;

    fn with_port(name: &str, ip: Option<&str>, port: i32, proto: &str) -> std::sync::Arc<PodInfo> {
        let mut p = json!({"containerPort": 80, "hostPort": port, "protocol": proto});
        if let Some(ip) = ip {
            p["hostIP"] = json!(ip);
        }
        pod(name, json!({"containers": [{"name": "c", "ports": [p]}]}))
    }

    #[test]
    fn host_ports_conflict() {
        let st = CycleState::default();
        let busy = with_pods(
            plain_node("n", json!({})),
            &[with_port("a", Some("127.0.0.1"), 8080, "TCP")],
        );
        let cases = [
            (with_port("b", None, 8080, "TCP"), Code::Unschedulable),
            (
                with_port("c", Some("127.0.0.1"), 8080, "TCP"),
                Code::Unschedulable,
            ),
            (
                with_port("d", Some("127.0.0.2"), 8080, "TCP"),
                Code::Success,
            ),
            (with_port("e", None, 8080, "UDP"), Code::Success),
            (with_port("f", None, 8081, "TCP"), Code::Success),
            (pod("g", json!({})), Code::Success),
        ];
        for (p, code) in cases {
            let s = NodePorts.filter(&st, &p, &busy);
            assert_eq!(s.code, code, "{}", p.name);
            if code != Code::Success {
                assert_eq!(s.message(), ERR_REASON);
            }
        }
    }

    #[test]
    fn a_removed_pod_frees_its_port() {
        let st = CycleState::default();
        let a = with_port("a", None, 80, "TCP");
        let mut n = with_pods(plain_node("n", json!({})), std::slice::from_ref(&a));
        assert!(!NodePorts
            .filter(&st, &with_port("b", None, 80, "TCP"), &n)
            .is_success());
        n.remove_pod(&a.uid);
        assert!(NodePorts
            .filter(&st, &with_port("b", None, 80, "TCP"), &n)
            .is_success());
    }
}
