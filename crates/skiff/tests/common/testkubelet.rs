//! The kubelet of an integration test: the real pod workers against the in-process server,
//! on `RecordingRuntime` (no host access), as node `node`.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_kubelet::kubelet::sandbox::SandboxSettings;
use skiff_kubelet::kubelet::Shared;
use skiff_kubelet::probes::ProbeEvent;
use skiff_kubelet::volumes::VolumeManager;
use skiff_runtime::cri::PodRuntime;
use skiff_runtime::testing::RecordingRuntime;
use tokio::sync::mpsc::UnboundedReceiver;

use super::Cluster;

/// What `skiff_kubelet::kubelet::run` takes for node `node` of `c` on `rt`, whose node has
/// `allocatable` (empty: not known, every pod is admitted).
pub fn shared(
    c: &Cluster,
    rt: &RecordingRuntime,
    node: &str,
    allocatable: BTreeMap<String, Quantity>,
) -> (Shared, UnboundedReceiver<ProbeEvent>) {
    let agent_dir = c.dir.path().join("agent");
    let client = c.running.local_client(
        &format!("system:node:{node}"),
        &["system:nodes", "system:authenticated"],
        "kubelet/test",
    );
    let runtime: Arc<dyn PodRuntime> = Arc::new(rt.clone());
    let (probe_tx, probe_rx) = tokio::sync::mpsc::unbounded_channel();
    let shared = Shared {
        client,
        probes: skiff_kubelet::probes::ProbeManager::new(runtime.clone(), probe_tx),
        runtime,
        node_name: node.into(),
        volumes: VolumeManager::new(agent_dir.join("pods")),
        agent_dir,
        sandbox: SandboxSettings {
            cluster_dns: vec!["10.43.0.10".into()],
            cluster_domain: "cluster.local".into(),
            host_resolv_conf: Some("nameserver 1.1.1.1\n".into()),
            node_hosts: "127.0.0.1 localhost\n".into(),
        },
        memory_capacity: 8 << 30,
        allocatable,
        host_ips: vec!["10.0.0.5".into()],
    };
    (shared, probe_rx)
}
