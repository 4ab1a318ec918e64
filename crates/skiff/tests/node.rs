//! The real node (`skiff_kubelet::node`) against a whole in-process `skiff server` (no agent,
//! no simulated nodes) with the in-memory runtime double: registration with labels and
//! taints, Ready only once the podCIDR came and skiff's conflist is written, the status a
//! kubelet posts (capacity, allocatable, node info, images), the Lease, and a restart that
//! takes the existing Node over.

mod common;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Taint};
use kube::Api;
use skiff_kubelet::node::{self, NodeConfig};
use skiff_runtime::testing::RecordingRuntime;

use common::{wait_for, Cluster, Datastore};

fn ready(node: &Node) -> Option<(String, String)> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_node_registers_reports_and_keeps_its_lease() -> Result<()> {
    let cluster = Cluster::start(Datastore::Embedded, 0).await?;
    let runtime = Arc::new(RecordingRuntime::new());
    runtime.add_image(RecordingRuntime::image("busybox:1.36", Default::default()));
    let mut big = RecordingRuntime::image("nginx:1.27", Default::default());
    big.size = 50 << 20;
    runtime.add_image(big);
    let data_dir = cluster.dir.path().join("node-a-data");
    let mut config = NodeConfig::new("node-a", &data_dir);
    config.node_ip = Some("10.9.8.7".parse()?);
    config.labels.insert(
        "node-role.kubernetes.io/control-plane".into(),
        "true".into(),
    );
    config.taints.push(Taint {
        key: "dedicated".into(),
        value: Some("test".into()),
        effect: "NoSchedule".into(),
        ..Taint::default()
    });
    config.kube_reserved.insert(
        "cpu".into(),
        k8s_openapi::apimachinery::pkg::api::resource::Quantity("100m".into()),
    );
    config.status_update_frequency = Duration::from_millis(500);

    let handle = node::start(cluster.client.clone(), runtime.clone(), config.clone()).await?;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let registered = nodes.get("node-a").await?;
    let labels = registered.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["kubernetes.io/hostname"], "node-a");
    assert_eq!(labels["node-role.kubernetes.io/control-plane"], "true");
    let taints = registered
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    assert!(
        taints.iter().any(|t| t.key == "dedicated"),
        "taints: {taints:?}"
    );

    // The control plane allocates a podCIDR; the node writes its conflist and turns Ready.
    let mut network = handle.network_ready();
    tokio::time::timeout(Duration::from_secs(60), network.wait_for(|r| *r))
        .await
        .context("the pod network never became ready")??;
    assert!(data_dir.join("agent/cni").read_dir()?.next().is_some());
    let node = wait_for("node-a Ready", Duration::from_secs(60), || async {
        let n = nodes.get("node-a").await?;
        Ok((ready(&n) == Some(("True".into(), "KubeletReady".into()))).then_some(n))
    })
    .await?;
    let status = node.status.clone().context("status")?;
    let capacity = status.capacity.clone().unwrap_or_default();
    let allocatable = status.allocatable.clone().unwrap_or_default();
    assert_eq!(capacity["pods"].0, "110");
    assert!(capacity.contains_key("memory") && capacity.contains_key("ephemeral-storage"));
    assert_ne!(
        capacity["cpu"], allocatable["cpu"],
        "kube-reserved cpu is not allocatable"
    );
    assert_ne!(
        capacity["memory"], allocatable["memory"],
        "eviction memory is not allocatable"
    );
    let info = status.node_info.clone().context("node info")?;
    assert_eq!(info.kubelet_version, skiff_api::GIT_VERSION);
    assert_eq!(info.container_runtime_version, "fake://0.1");
    assert_eq!(info.operating_system, "linux");
    let addresses: Vec<_> = status
        .addresses
        .unwrap_or_default()
        .into_iter()
        .map(|a| (a.type_, a.address))
        .collect();
    assert!(addresses.contains(&("InternalIP".into(), "10.9.8.7".into())));
    let images = status.images.unwrap_or_default();
    assert_eq!(images.len(), 2);
    assert_eq!(images[0].size_bytes, Some(50 << 20));
    assert!(images[0]
        .names
        .clone()
        .unwrap_or_default()
        .iter()
        .any(|n| n.ends_with("nginx:1.27")));

    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-node-lease");
    let lease = wait_for("node-a's Lease", Duration::from_secs(30), || async {
        Ok(leases.get_opt("node-a").await?)
    })
    .await?;
    let spec = lease.spec.clone().context("lease spec")?;
    assert_eq!(spec.holder_identity.as_deref(), Some("node-a"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owner = lease.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(
        owner.first().map(|o| o.uid.clone()),
        node.metadata.uid.clone()
    );

    let mut imported = handle.images_imported();
    tokio::time::timeout(Duration::from_secs(30), imported.wait_for(|d| *d))
        .await
        .context("the air-gap import never finished")??;

    // A restart takes the existing Node over: same uid, labels put back.
    drop(handle);
    let patch = serde_json::json!({"metadata": {"labels": {"kubernetes.io/os": "other"}}});
    nodes
        .patch(
            "node-a",
            &Default::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await?;
    let again = node::start(cluster.client.clone(), runtime, config).await?;
    let taken = nodes.get("node-a").await?;
    assert_eq!(taken.metadata.uid, node.metadata.uid);
    assert_eq!(
        taken.metadata.labels.unwrap_or_default()["kubernetes.io/os"],
        "linux"
    );
    assert_eq!(again.node().borrow().metadata.uid, node.metadata.uid);
    Ok(())
}
