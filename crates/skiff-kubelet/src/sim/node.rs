//! What a simulated node says about itself: the Node it registers (labels as a kubelet sets
//! them, plus kwok's habit of marking fake nodes), its status (capacity = allocatable, the
//! four conditions a kubelet posts, addresses, node info) and its Lease in
//! `kube-node-lease`. Pure: every function takes the time it needs.
//!
//! Upstream: pkg/kubelet/kubelet_node_status.go (`initialNode`, the default labels),
//! pkg/kubelet/nodestatus/setters.go (conditions, their reasons and messages, heartbeats,
//! transition times), pkg/kubelet/nodelease (the Lease and its owner reference).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeDaemonEndpoints, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;

use super::config::SimConfig;
use super::ids::hex_digest;
use crate::node::common::{self, uuid_like, DISK_OK, MEMORY_OK, NETWORK_NOT_READY, PID_OK, READY};
// The pure helpers shared with the real node, under the names the driver uses.
pub use crate::node::common::{
    arch, last_heartbeat, lease, lease_renewal, status_differs, status_patch, KUBELET_PORT,
    LEASE_NAMESPACE,
};

/// The label every simulated node carries (as kwok's nodes carry `type=kwok`), for selectors.
pub const TYPE_LABEL: &str = "type";
pub const TYPE_VALUE: &str = "simulated";
/// The annotation that says a node is simulated (kwok's is `kwok.x-k8s.io/node: fake`).
pub const SIMULATED_ANNOTATION: &str = "sim.skiff.dev/node";

/// The name of node `index`.
pub fn node_name(config: &SimConfig, index: usize) -> String {
    format!("{}{index}", config.name_prefix)
}

/// The InternalIP of node `index`: the configured start plus `index`.
pub fn node_ip(config: &SimConfig, index: usize) -> Ipv4Addr {
    let index = u32::try_from(index).unwrap_or(u32::MAX);
    Ipv4Addr::from(u32::from(config.node_ip_start).wrapping_add(index))
}

/// What does not change between a node's status reports.
#[derive(Clone, Debug)]
pub struct Host {
    /// `nodeInfo.kernelVersion` (the host's, read once).
    pub kernel_version: String,
    /// Changes at every start of the process, as a boot ID changes at every boot.
    pub boot_seed: String,
}

/// The labels a kubelet sets on its node (hostname, os, arch and their beta twins), the
/// simulated marker, then the configured extras.
pub fn labels(config: &SimConfig, name: &str) -> BTreeMap<String, String> {
    let mut labels = common::default_labels(name);
    labels.insert(TYPE_LABEL.to_owned(), TYPE_VALUE.to_owned());
    labels.extend(config.labels.clone());
    labels
}

/// The Node to register: metadata, and the status its first report would post (not Ready
/// yet: a new node has no podCIDR until the control plane allocates one).
pub fn node_object(
    config: &SimConfig,
    host: &Host,
    name: &str,
    ip: Ipv4Addr,
    now: Timestamp,
) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels(config, name)),
            annotations: Some(
                [
                    (SIMULATED_ANNOTATION, "true"),
                    (common::CONTROLLER_MANAGED_ATTACH_DETACH, "true"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(node_status(config, host, name, ip, now, false, None)),
    }
}

/// The status a node reports at `now`: every condition's heartbeat is `now`; a condition
/// keeps its `lastTransitionTime` from `observed` while its status stays the same. The node
/// is Ready only once it has a pod network (`network_ready`: a podCIDR to give pods IPs from).
pub fn node_status(
    config: &SimConfig,
    host: &Host,
    name: &str,
    ip: Ipv4Addr,
    now: Timestamp,
    network_ready: bool,
    observed: Option<&NodeStatus>,
) -> NodeStatus {
    let ready = if network_ready {
        READY
    } else {
        NETWORK_NOT_READY
    };
    let conditions = common::conditions(&[MEMORY_OK, DISK_OK, PID_OK, ready], now, observed);
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: name.to_owned(),
            },
        ]),
        allocatable: Some(config.capacity.clone()),
        capacity: Some(config.capacity.clone()),
        conditions: Some(conditions),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint { port: KUBELET_PORT }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: arch().into(),
            boot_id: uuid_like(&hex_digest(&[name, &host.boot_seed, "boot"], 32)),
            container_runtime_version: concat!("sim://", env!("CARGO_PKG_VERSION")).into(),
            kernel_version: host.kernel_version.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: config.kubelet_version.clone(),
            machine_id: hex_digest(&[name, "machine"], 32),
            operating_system: "linux".into(),
            os_image: "skiff simulated node".into(),
            system_uuid: uuid_like(&hex_digest(&[name, "system"], 32)),
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeCondition;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn host() -> Host {
        Host {
            kernel_version: "6.1.0".into(),
            boot_seed: "seed".into(),
        }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    #[test]
    fn nodes_are_named_and_addressed_by_index() {
        let config = SimConfig::default();
        assert_eq!(node_name(&config, 0), "sim-0");
        assert_eq!(node_name(&config, 4999), "sim-4999");
        assert_eq!(node_ip(&config, 0), Ipv4Addr::new(10, 41, 0, 1));
        assert_eq!(node_ip(&config, 300), Ipv4Addr::new(10, 41, 1, 45));
    }

    #[test]
    fn a_registered_node_looks_like_a_kubelets() {
        let mut config = SimConfig::default();
        config.labels.insert("zone".into(), "a".into());
        let now = at("2026-01-02T03:04:05Z");
        let node = node_object(&config, &host(), "sim-1", Ipv4Addr::new(10, 41, 0, 2), now);
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels["kubernetes.io/hostname"], "sim-1");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["kubernetes.io/arch"], arch());
        assert_eq!(labels["type"], "simulated");
        assert_eq!(labels["zone"], "a");
        let status = node.status.expect("a status");
        assert_eq!(status.capacity, status.allocatable);
        assert_eq!(status.capacity, Some(config.capacity.clone()));
        let conditions = status.conditions.expect("conditions");
        let summary: Vec<_> = conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_deref()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "MemoryPressure",
                    "False",
                    Some("KubeletHasSufficientMemory")
                ),
                ("DiskPressure", "False", Some("KubeletHasNoDiskPressure")),
                ("PIDPressure", "False", Some("KubeletHasSufficientPID")),
                ("Ready", "False", Some("KubeletNotReady")),
            ]
        );
        assert_eq!(
            conditions[3].message.as_deref(),
            Some("container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized")
        );
        let addresses: Vec<_> = status
            .addresses
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a.type_, a.address))
            .collect();
        assert_eq!(
            addresses,
            vec![
                ("InternalIP".to_owned(), "10.41.0.2".to_owned()),
                ("Hostname".to_owned(), "sim-1".to_owned())
            ]
        );
        let info = status.node_info.expect("node info");
        assert_eq!(info.kubelet_version, "v1.33.0+skiff");
        assert_eq!(info.system_uuid.len(), 36);
        assert_eq!(info.machine_id.len(), 32);
    }

    /// A report keeps the transition times of unchanged conditions and moves the heartbeat;
    /// a condition someone else changed (Ready=Unknown) makes the status differ, a newer
    /// heartbeat alone does not.
    #[test]
    fn reports_keep_transitions_and_notice_changes() {
        let config = SimConfig::default();
        let ip = Ipv4Addr::new(10, 41, 0, 1);
        let first = node_status(
            &config,
            &host(),
            "sim-0",
            ip,
            at("2026-01-01T00:00:00Z"),
            true,
            None,
        );
        let later = at("2026-01-01T00:05:00Z");
        let again = node_status(&config, &host(), "sim-0", ip, later, true, Some(&first));
        let ready = |s: &NodeStatus| {
            s.conditions
                .as_ref()
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready").cloned())
                .expect("ready")
        };
        assert_eq!(
            ready(&again).last_transition_time,
            Some(Time(at("2026-01-01T00:00:00Z")))
        );
        assert_eq!(last_heartbeat(Some(&again)), Some(later));
        assert!(!status_differs(&again, Some(&first)));
        assert!(status_differs(&again, None));

        let mut unknown = first.clone();
        if let Some(c) = unknown
            .conditions
            .as_mut()
            .and_then(|cs| cs.iter_mut().find(|c| c.type_ == "Ready"))
        {
            c.status = "Unknown".into();
            c.reason = Some("NodeStatusUnknown".into());
        }
        assert!(status_differs(&again, Some(&unknown)));
        let recovered = node_status(&config, &host(), "sim-0", ip, later, true, Some(&unknown));
        assert_eq!(ready(&recovered).last_transition_time, Some(Time(later)));

        // Another writer's extra condition or capacity does not count as a difference.
        let mut extra = first.clone();
        if let Some(cs) = extra.conditions.as_mut() {
            cs.push(NodeCondition {
                type_: "NetworkUnavailable".into(),
                status: "False".into(),
                ..NodeCondition::default()
            });
        }
        if let Some(c) = extra.capacity.as_mut() {
            c.insert(
                "example.com/gpu".into(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("1".into()),
            );
        }
        assert!(!status_differs(&again, Some(&extra)));
        let mut smaller = first;
        if let Some(c) = smaller.capacity.as_mut() {
            c.insert(
                "cpu".into(),
                k8s_openapi::apimachinery::pkg::api::resource::Quantity("2".into()),
            );
        }
        assert!(status_differs(&again, Some(&smaller)));
    }

    /// Without a pod network the node is not Ready (and says why); once it has one, Ready
    /// turns True with a new transition time, and the change is worth posting.
    #[test]
    fn ready_waits_for_the_pod_network() {
        let config = SimConfig::default();
        let ip = Ipv4Addr::new(10, 41, 0, 1);
        let t0 = at("2026-01-01T00:00:00Z");
        let waiting = node_status(&config, &host(), "sim-0", ip, t0, false, None);
        let ready = |s: &NodeStatus| {
            s.conditions
                .as_ref()
                .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready").cloned())
                .expect("ready")
        };
        assert_eq!(ready(&waiting).status, "False");
        assert_eq!(ready(&waiting).reason.as_deref(), Some("KubeletNotReady"));
        let t1 = at("2026-01-01T00:00:03Z");
        let up = node_status(&config, &host(), "sim-0", ip, t1, true, Some(&waiting));
        assert_eq!(ready(&up).status, "True");
        assert_eq!(ready(&up).last_transition_time, Some(Time(t1)));
        assert!(status_differs(&up, Some(&waiting)));
        // The other conditions did not change: they keep their first transition.
        let memory = up
            .conditions
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == "MemoryPressure"))
            .and_then(|c| c.last_transition_time.clone());
        assert_eq!(memory, Some(Time(t0)));
    }
}
