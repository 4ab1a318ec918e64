//! Integration: the controllers of the control plane that every cluster runs, through the
//! in-process server with the real kubectl: what a new namespace gets (a `default`
//! ServiceAccount, the `kube-root-ca.crt` ConfigMap), put back when deleted, and pod ranges
//! handed to nodes.

mod common;

use std::time::Duration;

use anyhow::{ensure, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use serde_json::json;

use common::{wait_for, Cluster};

const WAIT: Duration = Duration::from_secs(20);

/// A new namespace gets its `default` ServiceAccount and the cluster CA; both come back when
/// deleted; every system namespace has them too.
async fn new_namespaces_get_a_service_account_and_the_root_ca(c: &Cluster) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "team-a"}}))?,
        )
        .await?;
    for ns in [
        "team-a",
        "default",
        "kube-system",
        "kube-public",
        "kube-node-lease",
    ] {
        let sas: Api<ServiceAccount> = Api::namespaced(c.client.clone(), ns);
        let found = wait_for(
            &format!("the default ServiceAccount in {ns}"),
            WAIT,
            || async { Ok(sas.get_opt("default").await?) },
        )
        .await;
        if let Err(e) = found {
            // Is the namespace in the list (the watch cache the controllers' informers
            // follow) as well as in the datastore (GET)? A lost watch event is the suspect.
            let listed = namespaces
                .list(&Default::default())
                .await?
                .items
                .iter()
                .any(|n| n.metadata.name.as_deref() == Some(ns));
            let direct = namespaces.get_opt(ns).await?.is_some();
            return Err(e.context(format!(
                "namespace {ns}: in the list {listed}, by GET {direct}"
            )));
        }
        let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), ns);
        let cm = wait_for(&format!("kube-root-ca.crt in {ns}"), WAIT, || async {
            Ok(cms.get_opt("kube-root-ca.crt").await?)
        })
        .await?;
        let ca = cm
            .data
            .unwrap_or_default()
            .remove("ca.crt")
            .unwrap_or_default();
        ensure!(
            ca.starts_with("-----BEGIN CERTIFICATE-----"),
            "ca.crt in {ns}: {ca:?}"
        );
    }
    // kubectl lists them as upstream does.
    let out = c.kubectl(&[
        "get",
        "serviceaccounts,configmaps",
        "-n",
        "team-a",
        "-o",
        "name",
    ])?;
    ensure!(
        out.lines().collect::<Vec<_>>() == ["serviceaccount/default", "configmap/kube-root-ca.crt"],
        "{out}"
    );
    // Deleted, they are made again.
    let sas: Api<ServiceAccount> = Api::namespaced(c.client.clone(), "team-a");
    let old = sas.get("default").await?.metadata.uid;
    sas.delete("default", &DeleteParams::default()).await?;
    wait_for("the ServiceAccount made again", WAIT, || async {
        Ok(sas
            .get_opt("default")
            .await?
            .filter(|sa| sa.metadata.uid != old))
    })
    .await?;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "team-a");
    c.kubectl(&[
        "-n",
        "team-a",
        "patch",
        "configmap",
        "kube-root-ca.crt",
        "--type=merge",
        "-p",
        r#"{"data":{"ca.crt":"tampered"}}"#,
    ])?;
    wait_for("the root CA put back", WAIT, || async {
        let cm = cms.get("kube-root-ca.crt").await?;
        Ok(cm.data.and_then(|d| {
            d.get("ca.crt")
                .filter(|v| v.starts_with("-----BEGIN"))
                .cloned()
        }))
    })
    .await?;
    Ok(())
}

/// Every node gets its own /24 of the cluster CIDR, in order.
async fn nodes_get_pod_ranges(c: &Cluster) -> Result<()> {
    let nodes: Api<Node> = Api::all(c.client.clone());
    for name in ["ipam-a", "ipam-b"] {
        nodes
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}}))?,
            )
            .await?;
    }
    let mut cidrs = Vec::new();
    for name in ["ipam-a", "ipam-b"] {
        let cidr = wait_for(&format!("{name}'s podCIDR"), WAIT, || async {
            Ok(nodes.get(name).await?.spec.and_then(|s| s.pod_cidr))
        })
        .await?;
        let spec = nodes.get(name).await?.spec.unwrap_or_default();
        ensure!(spec.pod_cidrs == Some(vec![cidr.clone()]), "{spec:?}");
        cidrs.push(cidr);
    }
    cidrs.sort();
    cidrs.dedup();
    ensure!(cidrs.len() == 2, "{cidrs:?}");
    ensure!(
        cidrs
            .iter()
            .all(|c| c.starts_with("10.42.") && c.ends_with(".0/24")),
        "{cidrs:?}"
    );
    Ok(())
}

/// A node whose Lease stops being renewed becomes Unknown with the unreachable taints; its
/// pods are marked not ready and evicted after their tolerationSeconds (at once without a
/// toleration); pod GC removes pods bound to a node that does not exist.
async fn unreachable_nodes_are_tainted_and_their_pods_evicted(c: &Cluster) -> Result<()> {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Patch, PatchParams};
    let nodes: Api<Node> = Api::all(c.client.clone());
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-node-lease");
    let micro = |t: k8s_openapi::jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    // Three nodes as a kubelet registers them; all but `flaky` keep renewing their Leases
    // (upstream stops evicting when every node is down).
    for name in ["flaky", "steady-0", "steady-1"] {
        nodes
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": name}}))?,
            )
            .await?;
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let status = json!({"status": {"conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
             "lastHeartbeatTime": now, "lastTransitionTime": now}]}});
        nodes
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        leases
            .create(&PostParams::default(), &serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": micro(k8s_openapi::jiff::Timestamp::now())}}))?)
            .await?;
    }
    let renewer = {
        let leases = leases.clone();
        tokio::spawn(async move {
            loop {
                for name in ["steady-0", "steady-1"] {
                    let patch =
                        json!({"spec": {"renewTime": micro(k8s_openapi::jiff::Timestamp::now())}});
                    let _ = leases
                        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    struct AbortOnDrop(tokio::task::JoinHandle<()>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _renewer = AbortOnDrop(renewer);
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let pod = |name: &str, seconds: Option<i64>| -> Result<Pod> {
        let mut spec =
            json!({"nodeName": "flaky", "containers": [{"name": "c", "image": "busybox"}]});
        if let Some(s) = seconds {
            spec["tolerations"] = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": s}]);
        }
        Ok(serde_json::from_value(
            json!({"metadata": {"name": name}, "spec": spec}),
        )?)
    };
    pods.create(&PostParams::default(), &pod("patient", Some(3600))?)
        .await?;
    pods.create(&PostParams::default(), &pod("brief", Some(2))?)
        .await?;
    // Ready, as its kubelet reported it before going silent.
    let ready = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
    pods.patch_status("patient", &PatchParams::default(), &Patch::Merge(&ready))
        .await?;
    // The heartbeat stops: no renewals from here on. Grace is 3 s in this cluster.
    let node = wait_for(
        "the node to become Unknown and tainted",
        Duration::from_secs(30),
        || async {
            let n = nodes.get("flaky").await?;
            let taints = n
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default();
            let has = |effect: &str| {
                taints
                    .iter()
                    .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == effect)
            };
            Ok((has("NoSchedule") && has("NoExecute")).then_some(n))
        },
    )
    .await;
    let node = match node {
        Ok(n) => n,
        // What the node lifecycle controller saw: when every node looks down (a steady
        // node's renewals lagging more than the grace period), it taints nothing.
        Err(e) => {
            let mut seen = String::new();
            for n in nodes.list(&Default::default()).await?.items {
                let name = n.metadata.name.clone().unwrap_or_default();
                let ready = n
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .into_iter()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| format!("{}/{:?}", c.status, c.reason));
                let taints: Vec<String> = n
                    .spec
                    .and_then(|s| s.taints)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|t| format!("{}:{}", t.key, t.effect))
                    .collect();
                let renewed = leases
                    .get_opt(&name)
                    .await?
                    .and_then(|l| l.spec)
                    .and_then(|s| s.renew_time)
                    .map(|t| t.0.to_string());
                seen.push_str(&format!(
                    "\n{name}: Ready {ready:?}, taints {taints:?}, lease renewed {renewed:?}"
                ));
            }
            // Whether the node is in the datastore (a GET reads it) though the list (served
            // from the watch cache) lacks it: a lost watch event, the suspect of this flake.
            let direct = nodes
                .get_opt("flaky")
                .await?
                .map(|n| n.metadata.resource_version.unwrap_or_default());
            seen.push_str(&format!("\nGET flaky: resourceVersion {direct:?}"));
            return Err(e.context(format!("at {}:{seen}", k8s_openapi::jiff::Timestamp::now())));
        }
    };
    let ready = node
        .status
        .and_then(|s| s.conditions)
        .and_then(|cs| cs.into_iter().find(|c| c.type_ == "Ready"))
        .ok_or_else(|| anyhow::anyhow!("no Ready condition"))?;
    ensure!(
        ready.status == "Unknown" && ready.reason.as_deref() == Some("NodeStatusUnknown"),
        "{ready:?}"
    );
    wait_for(
        "the brief pod to be evicted",
        Duration::from_secs(30),
        || async {
            Ok(pods
                .get_opt("brief")
                .await?
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
                .then_some(()))
        },
    )
    .await?;
    let patient = pods.get("patient").await?;
    ensure!(
        patient.metadata.deletion_timestamp.is_none(),
        "a pod tolerating for an hour stays"
    );
    let patient_ready = patient
        .status
        .and_then(|s| s.conditions)
        .and_then(|cs| cs.into_iter().find(|c| c.type_ == "Ready"));
    ensure!(
        patient_ready.as_ref().is_some_and(|c| c.status == "False"),
        "the pods of an unreachable node are not ready: {patient_ready:?}"
    );
    let described = c.kubectl(&["describe", "node", "flaky"])?;
    ensure!(
        described.contains("node.kubernetes.io/unreachable:NoExecute"),
        "{described}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_unreachable_nodes_are_tainted_and_their_pods_evicted() -> Result<()> {
    let c = Cluster::start_with(common::Datastore::Embedded, |a| {
        a.node_monitor_grace_period = Duration::from_secs(3)
    })
    .await?;
    unreachable_nodes_are_tainted_and_their_pods_evicted(&c).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_unreachable_nodes_are_tainted_and_their_pods_evicted() -> Result<()> {
    let c = Cluster::start_with(common::Datastore::Etcd, |a| {
        a.node_monitor_grace_period = Duration::from_secs(3)
    })
    .await?;
    unreachable_nodes_are_tainted_and_their_pods_evicted(&c).await
}

/// A pod bound to a node that does not exist stays Pending, then pod GC deletes it (after
/// upstream's 40 s quarantine).
async fn pods_of_missing_nodes_are_collected(c: &Cluster) -> Result<()> {
    use k8s_openapi::api::core::v1::Pod;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    pods.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "lost"},
            "spec": {"nodeName": "no-such-node", "containers": [{"name": "c", "image": "busybox"}]}}))?,
    )
    .await?;
    let phase = pods.get("lost").await?.status.and_then(|s| s.phase);
    ensure!(phase.as_deref() == Some("Pending"), "{phase:?}");
    wait_for(
        "pod GC to delete the pod",
        Duration::from_secs(90),
        || async { Ok(pods.get_opt("lost").await?.is_none().then_some(())) },
    )
    .await
}

/// A deleted namespace is emptied through the API and removed once empty; while something
/// in it has a finalizer it stays Terminating and says so in its conditions; `finalize`
/// is served as upstream.
async fn deleted_namespaces_are_emptied_then_removed(c: &Cluster) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "doomed"}}))?,
        )
        .await?;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "doomed");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "plain"}}))?,
    )
    .await?;
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
        )?,
    )
    .await?;
    // Events written in both versions (one storage) are each deleted once.
    let core_events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(c.client.clone(), "doomed");
    core_events
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": "old"}, "involvedObject": {"kind": "ConfigMap", "namespace": "doomed", "name": "plain"},
            "reason": "Tested", "message": "core", "type": "Normal"}))?)
        .await?;
    let new_events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(c.client.clone(), "doomed");
    new_events
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": "new"}, "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "tester",
            "reportingInstance": "tester-1", "action": "Testing", "reason": "Tested", "type": "Normal",
            "regarding": {"kind": "ConfigMap", "namespace": "doomed", "name": "plain"}}))?)
        .await?;
    c.kubectl(&["delete", "namespace", "doomed", "--wait=false"])?;
    let conditions = wait_for("the namespace to report what holds it", WAIT, || async {
        let ns = namespaces.get("doomed").await?;
        let conditions = ns.status.and_then(|s| s.conditions).unwrap_or_default();
        Ok(conditions
            .iter()
            .any(|c| c.type_ == "NamespaceFinalizersRemaining" && c.status == "True")
            .then_some(conditions))
    })
    .await?;
    let finalizers = conditions
        .iter()
        .find(|c| c.type_ == "NamespaceFinalizersRemaining")
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    ensure!(
        finalizers == "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances",
        "{finalizers}"
    );
    ensure!(cms.get_opt("plain").await?.is_none(), "the rest is deleted");
    c.kubectl(&[
        "-n",
        "doomed",
        "patch",
        "configmap",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])?;
    wait_for("the namespace to be removed", WAIT, || async {
        Ok(namespaces.get_opt("doomed").await?.is_none().then_some(()))
    })
    .await?;
    ensure!(
        core_events
            .list(&Default::default())
            .await?
            .items
            .is_empty(),
        "the events are gone"
    );
    // Discovery lists the subresource as upstream does.
    let resources = c.kubectl(&["get", "--raw", "/api/v1"])?;
    ensure!(
        resources.contains(r#""name":"namespaces/finalize""#),
        "{resources}"
    );
    Ok(())
}

on_both_datastores!(nodes: 0;
    deleted_namespaces_are_emptied_then_removed,
    pods_of_missing_nodes_are_collected,
    new_namespaces_get_a_service_account_and_the_root_ca,
    nodes_get_pod_ranges,
);
