//! Static pods and their mirror pods against a real in-process server, on the recording
//! runtime double: a manifest dropped in the directory runs and its mirror pod shows its
//! status; a mirror pod deleted through the API comes back without touching the
//! containers; an edited manifest replaces the pod and its mirror; a removed one stops the
//! containers and deletes the mirror; a mirror pod nobody wants is deleted at start.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use common::{wait_for, Cluster, Datastore};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use skiff_runtime::cri::ContainerState;
use skiff_runtime::image::manifest::ImageConfig;
use skiff_runtime::testing::{Call, RecordingRuntime};

const NODE: &str = "static-test";
const MIRROR: &str = "web-static-test";

struct Kubelet(tokio::task::JoinHandle<()>);

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn cluster() -> Result<(Cluster, String)> {
    let c = Cluster::start(Datastore::Embedded, 0).await?;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": NODE}}))?;
    let node = nodes.create(&PostParams::default(), &node).await?;
    let uid = node.metadata.uid.context("the node's uid")?;
    Ok((c, uid))
}

fn kubelet(c: &Cluster, rt: &RecordingRuntime, manifests: &Path) -> Kubelet {
    let (shared, probe_rx) = common::testkubelet::shared(c, rt, NODE, BTreeMap::new());
    Kubelet(tokio::spawn(skiff_kubelet::kubelet::run_with_manifests(
        shared,
        probe_rx,
        Some(manifests.into()),
    )))
}

fn runtime() -> RecordingRuntime {
    let rt = RecordingRuntime::new();
    for tag in ["1.36", "1.37"] {
        rt.add_image(RecordingRuntime::image(
            &format!("docker.io/library/busybox:{tag}"),
            ImageConfig::default(),
        ));
    }
    rt
}

fn manifest(tag: &str) -> String {
    format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {{app: web}}
spec:
  terminationGracePeriodSeconds: 4
  containers:
  - name: c
    image: busybox:{tag}
"
    )
}

fn annotation<'a>(p: &'a Pod, key: &str) -> Option<&'a str> {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .map(String::as_str)
}

/// The running containers as (pod uid, image).
fn running(rt: &RecordingRuntime) -> Vec<(String, String)> {
    rt.containers()
        .into_iter()
        .filter(|c| matches!(c.state, ContainerState::Running { .. }))
        .map(|c| (c.meta.pod_uid, c.meta.image))
        .collect()
}

fn count(rt: &RecordingRuntime, f: impl Fn(&Call) -> bool) -> usize {
    rt.calls().iter().filter(|c| f(c)).count()
}

/// Waits for the mirror pod to satisfy `check`.
async fn wait_mirror(c: &Cluster, what: &str, check: impl Fn(&Pod) -> bool) -> Result<Pod> {
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let last = std::sync::Mutex::new(None);
    let got = wait_for(what, Duration::from_secs(30), || {
        let api = api.clone();
        let (last, check) = (&last, &check);
        async move {
            let p = api.get_opt(MIRROR).await?;
            let hit = p.as_ref().is_some_and(check);
            if let Ok(mut l) = last.lock() {
                *l = p.clone();
            }
            Ok(if hit { p } else { None })
        }
    })
    .await;
    let seen = last.lock().ok().and_then(|mut l| l.take());
    got.with_context(|| format!("last seen: {seen:#?}"))
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .is_some_and(|c| c.ready)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_pod_runs_with_a_mirror_pod_that_follows_its_manifest() -> Result<()> {
    let (c, node_uid) = cluster().await?;
    let manifests = c.dir.path().join("agent").join("pod-manifests");
    std::fs::create_dir_all(&manifests)?;
    let rt = runtime();
    let k = kubelet(&c, &rt, &manifests);

    // Dropped in: containers start, the mirror pod appears with the status.
    std::fs::write(manifests.join("web.yaml"), manifest("1.36"))?;
    let mirror = wait_mirror(&c, "the mirror pod Running and Ready", |p| {
        phase(p) == "Running" && ready(p)
    })
    .await?;
    let run = running(&rt);
    assert_eq!(run.len(), 1, "{run:?}");
    let static_uid = run[0].0.clone();
    assert_ne!(mirror.metadata.uid.as_deref(), Some(static_uid.as_str()));
    assert_eq!(
        annotation(&mirror, "kubernetes.io/config.mirror"),
        Some(static_uid.as_str())
    );
    assert_eq!(
        annotation(&mirror, "kubernetes.io/config.hash"),
        Some(static_uid.as_str())
    );
    assert_eq!(
        annotation(&mirror, "kubernetes.io/config.source"),
        Some("file")
    );
    assert!(annotation(&mirror, "kubernetes.io/config.seen").is_some());
    let owners = mirror.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(
        (
            owners[0].kind.as_str(),
            owners[0].name.as_str(),
            owners[0].uid.as_str()
        ),
        ("Node", NODE, node_uid.as_str())
    );
    let spec = mirror.spec.clone().unwrap_or_default();
    assert_eq!(spec.node_name.as_deref(), Some(NODE));
    assert!(spec.tolerations.iter().flatten().any(
        |t| t.operator.as_deref() == Some("Exists") && t.effect.as_deref() == Some("NoExecute")
    ));
    let status = mirror.status.clone().unwrap_or_default();
    assert_eq!(status.host_ip.as_deref(), Some("10.0.0.5"));
    let cs = status.container_statuses.unwrap_or_default();
    assert!(cs[0]
        .container_id
        .as_deref()
        .is_some_and(|id| id.starts_with("skiff://")));

    // A restarted kubelet adopts the containers (the API's first list does not make them
    // orphans) and keeps the mirror pod.
    drop(k);
    let starts_before = count(&rt, |c| matches!(c, Call::StartContainer { .. }));
    let _k = kubelet(&c, &rt, &manifests);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        count(&rt, |c| matches!(c, Call::StartContainer { .. })),
        starts_before
    );
    assert_eq!(count(&rt, |c| matches!(c, Call::StopContainer { .. })), 0);
    assert_eq!(running(&rt), run);
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    assert_eq!(api.get(MIRROR).await?.metadata.uid, mirror.metadata.uid);

    // Deleted through the API: a new mirror comes, the containers are not touched.
    let first_uid = mirror.metadata.uid.clone();
    api.delete(MIRROR, &DeleteParams::default()).await?;
    let again = wait_mirror(&c, "a new mirror pod with the status", |p| {
        p.metadata.uid != first_uid && p.metadata.deletion_timestamp.is_none() && ready(p)
    })
    .await?;
    assert_eq!(
        annotation(&again, "kubernetes.io/config.mirror"),
        Some(static_uid.as_str())
    );
    assert_eq!(
        count(&rt, |c| matches!(c, Call::StartContainer { .. })),
        starts_before
    );
    assert_eq!(count(&rt, |c| matches!(c, Call::StopContainer { .. })), 0);
    assert_eq!(running(&rt), run);

    // Edited: the old containers stop, the new version runs, its own mirror replaces the old.
    std::fs::write(manifests.join("web.yaml"), manifest("1.37"))?;
    let edited = wait_mirror(&c, "the new version's mirror pod Ready", |p| {
        annotation(p, "kubernetes.io/config.mirror").is_some_and(|h| h != static_uid) && ready(p)
    })
    .await?;
    let new_uid = annotation(&edited, "kubernetes.io/config.mirror")
        .unwrap_or_default()
        .to_owned();
    let run = running(&rt);
    assert_eq!(
        run,
        vec![(new_uid.clone(), "busybox:1.37".to_owned())],
        "only the new version runs"
    );
    assert!(rt.containers().iter().all(|c| c.meta.pod_uid == new_uid));
    let stops: Vec<Duration> = rt
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::StopContainer { grace, .. } => Some(*grace),
            _ => None,
        })
        .collect();
    assert_eq!(stops.first(), Some(&Duration::from_secs(4)), "{stops:?}");
    assert_eq!(
        edited.spec.as_ref().map(|s| s.containers[0].image.clone()),
        Some(Some("busybox:1.37".into()))
    );

    // Removed: the containers stop and go, and so does the mirror pod.
    std::fs::remove_file(manifests.join("web.yaml"))?;
    wait_for("the mirror pod gone", Duration::from_secs(30), || {
        let api = api.clone();
        async move { Ok(api.get_opt(MIRROR).await?.is_none().then_some(())) }
    })
    .await?;
    wait_for(
        "nothing left in the runtime",
        Duration::from_secs(15),
        || {
            let rt = rt.clone();
            async move {
                let clean = rt.containers().is_empty() && rt.sandboxes().is_empty();
                Ok(clean.then_some(()))
            }
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_pod_without_its_static_pod_is_deleted() -> Result<()> {
    let (c, node_uid) = cluster().await?;
    let manifests = c.dir.path().join("agent").join("pod-manifests");
    std::fs::create_dir_all(&manifests)?;
    // A mirror pod left from a manifest removed while the kubelet was down.
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "gone-static-test", "namespace": "default",
            "annotations": {"kubernetes.io/config.mirror": "abc", "kubernetes.io/config.hash": "abc",
                "kubernetes.io/config.source": "file"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": NODE,
                "uid": node_uid, "controller": true}]},
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox:1.36"}]}
    }))?;
    api.create(&PostParams::default(), &orphan).await?;
    let rt = runtime();
    let _k = kubelet(&c, &rt, &manifests);
    wait_for(
        "the orphaned mirror pod deleted",
        Duration::from_secs(30),
        || {
            let api = api.clone();
            async move {
                Ok(api
                    .get_opt("gone-static-test")
                    .await?
                    .is_none()
                    .then_some(()))
            }
        },
    )
    .await?;
    assert!(rt.containers().is_empty(), "a mirror pod is never run");
    Ok(())
}
