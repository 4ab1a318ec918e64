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
        wait_for(
            &format!("the default ServiceAccount in {ns}"),
            WAIT,
            || async { Ok(sas.get_opt("default").await?) },
        )
        .await?;
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

on_both_datastores!(nodes: 0;
    new_namespaces_get_a_service_account_and_the_root_ca,
    nodes_get_pod_ranges,
);
