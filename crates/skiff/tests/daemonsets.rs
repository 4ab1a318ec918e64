//! Integration: the DaemonSet controller through the in-process server on three simulated
//! nodes (`sim-0..2`), driven by the real kubectl and kube-rs, on both datastores.
//!
//! Scenarios: a DaemonSet gets one pod on every node (unbound, with the matchFields
//! affinity and the daemon tolerations, then Running), `kubectl rollout status` returns and
//! the status counts are upstream's; a node that joins later gets its pod; a NoSchedule-
//! tainted node is left out unless the template tolerates the taint, and a NoExecute taint
//! added later removes the pod; a nodeSelector picks the labelled node; `kubectl set image`
//! rolls one node at a time (maxUnavailable 1: watched pod by pod, never two nodes without
//! a ready pod), `rollout history` lists both revisions and `rollout undo` goes back;
//! maxSurge 1 with maxUnavailable 0 rolls with a new pod next to the old one on one node at a
//! time and never a node without a ready pod; OnDelete replaces only a pod deleted by hand;
//! a NoSchedule taint on a running pod's node counts it misscheduled; pods and revision
//! orphaned (`--cascade=orphan`) are adopted by a new DaemonSet with nothing made anew, and
//! deleting the DaemonSet deletes its pods; a quota of one pod gets one created and upstream's
//! `FailedCreate` events for the others, retried with backoff until the quota grows.
//!
//! The API server keeps the DaemonSet's template generation
//! (`deprecated.daemonset.template.generation`: 1, then one more per template change, a
//! client's value ignored) and the pods carry it as `pod-template-generation`.
//!
//! The pods are created unbound and the server's scheduler binds each to the node its
//! `matchFields metadata.name` affinity names; the simulated nodes then run them.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Event, Node, Pod, ResourceQuota};
use kube::api::ListParams;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use skiff_kubelet::sim::{self, SimConfig};

use common::{wait_for, Cluster};

const WAIT: Duration = Duration::from_secs(90);

/// Tasks stopped on drop.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The node a daemon pod is meant for: its `matchFields metadata.name In [node]` term.
fn affinity_node(pod: &Pod) -> Option<String> {
    let terms = &pod
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|f| f.key == "metadata.name" && f.operator == "In")
        .and_then(|f| f.values.as_ref()?.first().cloned())
}

/// Simulated nodes `<prefix>0..` joining the cluster now.
fn join_nodes(cluster: &Cluster, prefix: &str, count: usize) -> Tasks {
    let client = cluster.running.local_client(
        &format!("system:node:{prefix}0"),
        &["system:nodes", "system:authenticated"],
        "kubelet/v1.33.0 (linux/amd64) kubernetes/skiff",
    );
    let config = SimConfig {
        count,
        name_prefix: prefix.into(),
        lease_interval: Duration::from_secs(1),
        ..SimConfig::default()
    };
    Tasks(vec![tokio::spawn(async move {
        if let Err(e) = sim::run(client, config).await {
            eprintln!("simulated nodes ended: {e}");
        }
    })])
}

fn ds_yaml(name: &str, image: &str, spec_extra: &str, pod_extra: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: {name}
spec:
  selector:
    matchLabels:
      app: {name}
{spec_extra}
  template:
    metadata:
      labels:
        app: {name}
    spec:
{pod_extra}
      containers:
      - name: main
        image: {image}
"#
    )
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn is_running(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// The DaemonSet's live pods by node (bound or meant for it).
async fn pods_by_node(client: &Client, app: &str) -> Result<BTreeMap<String, Vec<Pod>>> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let list = api
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?;
    let mut out: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    for pod in list.items {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .or_else(|| affinity_node(&pod))
            .unwrap_or_default();
        out.entry(node).or_default().push(pod);
    }
    Ok(out)
}

/// Waits until exactly `nodes` each run one Running, ready pod of `app`, and no other node
/// has one.
async fn wait_running_on(client: &Client, app: &str, nodes: &[&str]) -> Result<()> {
    let want: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    wait_for(&format!("{app} running on {nodes:?}"), WAIT, || async {
        let by_node = pods_by_node(client, app).await?;
        let got: Vec<String> = by_node.keys().cloned().collect();
        let all_one_running = by_node
            .values()
            .all(|p| p.len() == 1 && is_running(&p[0]) && is_ready(&p[0]));
        if got == want && all_one_running {
            return Ok(Some(()));
        }
        let seen: Vec<String> = by_node
            .iter()
            .flat_map(|(n, pods)| {
                pods.iter().map(move |p| {
                    format!(
                        "{n}: {} {:?} ready={} bound to {:?} conditions {:?}",
                        p.name_any(),
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        is_ready(p),
                        p.spec.as_ref().and_then(|s| s.node_name.as_deref()),
                        p.status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .map(|c| c
                                .iter()
                                .map(|c| format!(
                                    "{}={} {}",
                                    c.type_,
                                    c.status,
                                    c.message.as_deref().unwrap_or("")
                                ))
                                .collect::<Vec<_>>())
                    )
                })
            })
            .collect();
        let nodes: Api<Node> = Api::all(client.clone());
        let cidrs: Vec<String> = nodes
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|n| {
                format!(
                    "{} podCIDR {:?} taints {:?}",
                    n.name_any(),
                    n.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()),
                    n.spec.as_ref().and_then(|s| s.taints.as_ref())
                )
            })
            .collect();
        anyhow::bail!("seen {seen:?}; nodes {cidrs:?}")
    })
    .await
}

async fn ds_status(client: &Client, name: &str) -> Result<serde_json::Value> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    Ok(serde_json::to_value(api.get(name).await?.status)?)
}

/// The DaemonSet's `deprecated.daemonset.template.generation` annotation (which the API
/// server keeps) and the `pod-template-generation` label of each of its live pods.
async fn template_generations(client: &Client, name: &str) -> Result<(String, Vec<String>)> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    let ds = api.get(name).await?;
    let annotation = ds
        .annotations()
        .get("deprecated.daemonset.template.generation")
        .cloned()
        .unwrap_or_default();
    let labels = pods_by_node(client, name)
        .await?
        .values()
        .flatten()
        .map(|p| {
            p.labels()
                .get("pod-template-generation")
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    Ok((annotation, labels))
}

async fn every_node_then_a_late_one(c: &Cluster) -> Result<()> {
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&ds_yaml("agent", "agent:1", "", "")),
    )?;
    wait_running_on(&c.client, "agent", &["sim-0", "sim-1", "sim-2"]).await?;
    c.kubectl(&["rollout", "status", "ds/agent", "--timeout=60s"])?;

    // Each pod as upstream makes it: unbound at first, pinned by matchFields, the daemon
    // tolerations, the revision hash label, controlled by the DaemonSet.
    let by_node = pods_by_node(&c.client, "agent").await?;
    let pod = &by_node["sim-1"][0];
    ensure!(affinity_node(pod).as_deref() == Some("sim-1"), "{pod:?}");
    let tolerations: HashSet<String> = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.key)
        .collect();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/pid-pressure",
        "node.kubernetes.io/unschedulable",
    ] {
        ensure!(tolerations.contains(key), "{key} not in {tolerations:?}");
    }
    let hash = pod
        .labels()
        .get("controller-revision-hash")
        .cloned()
        .context("no controller-revision-hash label")?;
    ensure!(
        pod.owner_references()
            .iter()
            .any(|o| o.kind == "DaemonSet" && o.name == "agent" && o.controller == Some(true)),
        "{:?}",
        pod.owner_references()
    );
    let revisions: Api<ControllerRevision> = Api::namespaced(c.client.clone(), "default");
    let rev = revisions.get(&format!("agent-{hash}")).await?;
    ensure!(rev.revision == 1, "{rev:?}");
    // The API server's template generation, 1 on create, and the pods labeled with it.
    let generations = template_generations(&c.client, "agent").await?;
    ensure!(
        generations == ("1".to_string(), vec!["1".to_string(); 3]),
        "{generations:?}"
    );

    let status = ds_status(&c.client, "agent").await?;
    for (field, want) in [
        ("desiredNumberScheduled", 3),
        ("currentNumberScheduled", 3),
        ("numberReady", 3),
        ("updatedNumberScheduled", 3),
        ("numberAvailable", 3),
        ("numberMisscheduled", 0),
    ] {
        ensure!(status[field] == json!(want), "{field} in {status}");
    }
    ensure!(
        status.get("numberUnavailable").is_none_or(|v| v.is_null()),
        "{status}"
    );
    ensure!(status["observedGeneration"] == json!(1), "{status}");

    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    wait_for("SuccessfulCreate events", WAIT, || async {
        let list = events.list(&ListParams::default()).await?;
        let created = list
            .items
            .iter()
            .filter(|e| {
                e.involved_object.name.as_deref() == Some("agent")
                    && e.reason.as_deref() == Some("SuccessfulCreate")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("Created pod: agent-"))
            })
            .count();
        Ok((created == 3).then_some(()))
    })
    .await?;

    // A node joins: it gets its pod.
    let _late = join_nodes(c, "late-", 1);
    wait_running_on(&c.client, "agent", &["late-0", "sim-0", "sim-1", "sim-2"]).await?;
    wait_for("desiredNumberScheduled 4", WAIT, || async {
        let s = ds_status(&c.client, "agent").await?;
        Ok(
            (s["desiredNumberScheduled"] == json!(4) && s["numberAvailable"] == json!(4))
                .then_some(()),
        )
    })
    .await?;
    c.kubectl(&["rollout", "status", "ds/agent", "--timeout=60s"])?;
    Ok(())
}

async fn taints_tolerations_and_node_selectors(c: &Cluster) -> Result<()> {
    c.kubectl(&["taint", "nodes", "sim-1", "dedicated=infra:NoSchedule"])?;
    c.kubectl(&["label", "nodes", "sim-2", "disk=ssd"])?;
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&ds_yaml("plain", "p:1", "", "")),
    )?;
    let tolerating = "      tolerations:\n      - key: dedicated\n        operator: Exists\n";
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&ds_yaml("tolerant", "t:1", "", tolerating)),
    )?;
    let selecting = "      nodeSelector:\n        disk: ssd\n";
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&ds_yaml("ssd", "s:1", "", selecting)),
    )?;
    wait_running_on(&c.client, "plain", &["sim-0", "sim-2"]).await?;
    wait_running_on(&c.client, "tolerant", &["sim-0", "sim-1", "sim-2"]).await?;
    wait_running_on(&c.client, "ssd", &["sim-2"]).await?;
    let status = ds_status(&c.client, "plain").await?;
    ensure!(status["desiredNumberScheduled"] == json!(2), "{status}");
    c.kubectl(&["rollout", "status", "ds/ssd", "--timeout=60s"])?;

    // A NoExecute taint added later takes the untolerating pod away; the label removed
    // takes the selected one away.
    c.kubectl(&["taint", "nodes", "sim-0", "evict=now:NoExecute"])?;
    c.kubectl(&["label", "nodes", "sim-2", "disk-"])?;
    wait_running_on(&c.client, "plain", &["sim-2"]).await?;
    wait_for("ssd gone from sim-2", WAIT, || async {
        Ok(pods_by_node(&c.client, "ssd")
            .await?
            .is_empty()
            .then_some(()))
    })
    .await?;
    wait_running_on(&c.client, "tolerant", &["sim-1", "sim-2"]).await?;
    // A NoSchedule taint leaves a running pod where it is, counted as misscheduled.
    c.kubectl(&["taint", "nodes", "sim-2", "dedicated=infra:NoSchedule"])?;
    wait_for("plain misscheduled on sim-2", WAIT, || async {
        let s = ds_status(&c.client, "plain").await?;
        Ok((s["desiredNumberScheduled"] == json!(0)
            && s["currentNumberScheduled"] == json!(0)
            && s["numberMisscheduled"] == json!(1))
        .then_some(()))
    })
    .await?;
    wait_running_on(&c.client, "plain", &["sim-2"]).await?;
    // Upstream never counts a node the pod should not stay on: 0 desired, 0 misscheduled.
    wait_for("ssd status at zero", WAIT, || async {
        let s = ds_status(&c.client, "ssd").await?;
        Ok(
            (s["desiredNumberScheduled"] == json!(0) && s["currentNumberScheduled"] == json!(0))
                .then_some(()),
        )
    })
    .await?;
    Ok(())
}

/// Nodes of `app` without a ready, live pod, from the pods seen so far.
fn unavailable_nodes(pods: &HashMap<String, Pod>, nodes: &[&str]) -> usize {
    nodes
        .iter()
        .filter(|n| {
            !pods.values().any(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(**n)
                    && is_ready(p)
            })
        })
        .count()
}

async fn rolling_update_and_undo(c: &Cluster) -> Result<()> {
    let nodes = ["sim-0", "sim-1", "sim-2"];
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&ds_yaml(
            "roll",
            "img:1",
            "  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxUnavailable: 1\n",
            // A replacement waits for the old pod to be gone, as upstream's.
            "      terminationGracePeriodSeconds: 1\n",
        )),
    )?;
    wait_running_on(&c.client, "roll", &nodes).await?;
    c.kubectl(&["rollout", "status", "ds/roll", "--timeout=60s"])?;
    let generations = template_generations(&c.client, "roll").await?;
    ensure!(
        generations == ("1".to_string(), vec!["1".to_string(); 3]),
        "{generations:?}"
    );
    // A client's own value is not taken: the template generation is the server's.
    c.kubectl(&[
        "annotate",
        "--overwrite",
        "ds/roll",
        "deprecated.daemonset.template.generation=7",
    ])?;
    ensure!(
        template_generations(&c.client, "roll").await?.0 == "1",
        "the annotation is the server's"
    );

    // Every pod event from here on, in order.
    let (_watch, mut rx) = watch_pods(c, "roll");
    c.kubectl(&["set", "image", "ds/roll", "main=img:2"])?;
    c.kubectl(&["rollout", "status", "ds/roll", "--timeout=90s"])?;
    let (worst, doubled) = worst_of(&mut rx, &nodes)?;
    ensure!(worst <= 1, "{worst} nodes without a ready pod at once");
    ensure!(worst == 1, "the update never took a pod down");
    ensure!(
        doubled == 0,
        "{doubled} nodes with two live pods without surge"
    );
    let by_node = pods_by_node(&c.client, "roll").await?;
    for (node, pods) in &by_node {
        let image = pods[0]
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.image.clone());
        ensure!(image.as_deref() == Some("img:2"), "{node}: {image:?}");
    }
    let status = ds_status(&c.client, "roll").await?;
    ensure!(status["updatedNumberScheduled"] == json!(3), "{status}");
    ensure!(status["observedGeneration"] == json!(2), "{status}");
    // The template changed: generation 2, on the DaemonSet and its new pods.
    let generations = template_generations(&c.client, "roll").await?;
    ensure!(
        generations == ("2".to_string(), vec!["2".to_string(); 3]),
        "{generations:?}"
    );

    // The history kubectl reads: two revisions; undo goes back to the first template.
    let history = c.kubectl(&["rollout", "history", "ds/roll"])?;
    ensure!(
        history
            .lines()
            .filter(|l| l.trim_start().starts_with(['1', '2']))
            .count()
            == 2,
        "{history}"
    );
    let first = c.kubectl(&["rollout", "history", "ds/roll", "--revision=1"])?;
    ensure!(first.contains("img:1"), "{first}");
    c.kubectl(&["rollout", "undo", "ds/roll"])?;
    c.kubectl(&["rollout", "status", "ds/roll", "--timeout=90s"])?;
    wait_for("img:1 everywhere again", WAIT, || async {
        let by_node = pods_by_node(&c.client, "roll").await?;
        let back = by_node.len() == 3
            && by_node.values().all(|p| {
                p.len() == 1
                    && is_ready(&p[0])
                    && p[0]
                        .spec
                        .as_ref()
                        .and_then(|s| s.containers.first())
                        .and_then(|c| c.image.as_deref())
                        == Some("img:1")
            });
        Ok(back.then_some(()))
    })
    .await?;
    // Undo writes the first template back: a template change, generation 3.
    let generations = template_generations(&c.client, "roll").await?;
    ensure!(
        generations == ("3".to_string(), vec!["3".to_string(); 3]),
        "{generations:?}"
    );
    // The rollback renumbered the first revision: 2 and 3 now.
    let history = c.kubectl(&["rollout", "history", "ds/roll"])?;
    ensure!(
        history.lines().any(|l| l.trim_start().starts_with('3')),
        "{history}"
    );
    Ok(())
}

/// Replays the pod events `rx` collected: the most nodes without a ready pod at once, the
/// most nodes with two live pods at once.
fn worst_of(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<watcher::Event<Pod>>,
    nodes: &[&str],
) -> Result<(usize, usize)> {
    let mut seen: HashMap<String, Pod> = HashMap::new();
    let (mut unavailable, mut doubled) = (0, 0);
    let mut listed = false;
    while let Ok(e) = rx.try_recv() {
        match e {
            watcher::Event::InitApply(p) | watcher::Event::Apply(p) => {
                seen.insert(p.name_any(), p);
            }
            watcher::Event::Delete(p) => {
                seen.remove(&p.name_any());
            }
            watcher::Event::InitDone => listed = true,
            watcher::Event::Init => seen.clear(),
        }
        if listed {
            unavailable = unavailable.max(unavailable_nodes(&seen, nodes));
            let mut live: HashMap<String, usize> = HashMap::new();
            for p in seen
                .values()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
            {
                if let Some(n) = p.spec.as_ref().and_then(|s| s.node_name.clone()) {
                    *live.entry(n).or_default() += 1;
                }
            }
            doubled = doubled.max(live.values().filter(|n| **n > 1).count());
        }
    }
    ensure!(listed, "the watch never listed");
    Ok((unavailable, doubled))
}

/// Every pod event of `app` from now on.
fn watch_pods(
    c: &Cluster,
    app: &str,
) -> (
    Tasks,
    tokio::sync::mpsc::UnboundedReceiver<watcher::Event<Pod>>,
) {
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let labels = format!("app={app}");
    let watch = tokio::spawn(async move {
        let mut events = std::pin::pin!(
            watcher(api, watcher::Config::default().labels(&labels)).default_backoff()
        );
        while let Some(Ok(e)) = events.next().await {
            if tx.send(e).is_err() {
                break;
            }
        }
    });
    (Tasks(vec![watch]), rx)
}

fn images(by_node: &BTreeMap<String, Vec<Pod>>) -> Vec<String> {
    by_node
        .values()
        .flatten()
        .filter_map(|p| p.spec.as_ref()?.containers.first()?.image.clone())
        .collect()
}

async fn surge_and_on_delete(c: &Cluster) -> Result<()> {
    let nodes = ["sim-0", "sim-1", "sim-2"];
    // maxSurge 1, maxUnavailable 0: a new pod next to the old one, one node at a time, and
    // never a node without a ready pod.
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&ds_yaml(
            "surge",
            "img:1",
            "  updateStrategy:\n    type: RollingUpdate\n    rollingUpdate:\n      maxUnavailable: 0\n      maxSurge: 1\n",
            "      terminationGracePeriodSeconds: 1\n",
        )),
    )?;
    wait_running_on(&c.client, "surge", &nodes).await?;
    let (_watch, mut rx) = watch_pods(c, "surge");
    c.kubectl(&["set", "image", "ds/surge", "main=img:2"])?;
    c.kubectl(&["rollout", "status", "ds/surge", "--timeout=90s"])?;
    wait_running_on(&c.client, "surge", &nodes).await?;
    let (unavailable, doubled) = worst_of(&mut rx, &nodes)?;
    ensure!(
        unavailable == 0,
        "{unavailable} nodes without a ready pod at once"
    );
    ensure!(
        doubled == 1,
        "{doubled} nodes with two live pods at once (want 1)"
    );
    let by_node = pods_by_node(&c.client, "surge").await?;
    ensure!(images(&by_node) == ["img:2"; 3], "{:?}", images(&by_node));

    // OnDelete: a new template touches no pod until one is deleted by hand.
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&ds_yaml(
            "manual",
            "img:1",
            "  updateStrategy:\n    type: OnDelete\n",
            "      terminationGracePeriodSeconds: 1\n",
        )),
    )?;
    wait_running_on(&c.client, "manual", &nodes).await?;
    c.kubectl(&["set", "image", "ds/manual", "main=img:2"])?;
    wait_for("the new generation observed", WAIT, || async {
        let s = ds_status(&c.client, "manual").await?;
        Ok((s["observedGeneration"] == json!(2)
            && s.get("updatedNumberScheduled").is_none_or(|v| v.is_null()))
        .then_some(()))
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let by_node = pods_by_node(&c.client, "manual").await?;
    ensure!(images(&by_node) == ["img:1"; 3], "{:?}", images(&by_node));
    let victim = by_node["sim-1"][0].name_any();
    c.kubectl(&["delete", "pod", &victim])?;
    wait_for("sim-1 on img:2, the others on img:1", WAIT, || async {
        let by_node = pods_by_node(&c.client, "manual").await?;
        let ready = by_node.len() == 3 && by_node.values().all(|p| p.len() == 1 && is_ready(&p[0]));
        Ok((ready && images(&by_node) == ["img:1", "img:2", "img:1"]).then_some(()))
    })
    .await?;
    // The status follows the pods (the controller's next sync after the new pod).
    wait_for("the status counting one updated pod", WAIT, || async {
        let s = ds_status(&c.client, "manual").await?;
        Ok(
            (s["updatedNumberScheduled"] == json!(1) && s["currentNumberScheduled"] == json!(3))
                .then_some(()),
        )
    })
    .await?;
    Ok(())
}

async fn quota_refuses_daemon_pods(c: &Cluster) -> Result<()> {
    c.kubectl(&["create", "namespace", "dq"])?;
    c.kubectl(&["create", "quota", "q", "-n", "dq", "--hard=pods=1"])?;
    let quotas: Api<ResourceQuota> = Api::namespaced(c.client.clone(), "dq");
    wait_for("the quota's status", WAIT, || async {
        let q = quotas.get("q").await?;
        Ok(q.status.and_then(|s| s.used).is_some().then_some(()))
    })
    .await?;
    c.kubectl_stdin(
        &["apply", "-n", "dq", "-f", "-"],
        Some(&ds_yaml("capped", "c:1", "", "")),
    )?;
    let events: Api<Event> = Api::namespaced(c.client.clone(), "dq");
    let failed_creates = || async {
        let list = events.list(&ListParams::default()).await?;
        anyhow::Ok(
            list.items
                .into_iter()
                .filter(|e| {
                    e.reason.as_deref() == Some("FailedCreate")
                        && e.involved_object.name.as_deref() == Some("capped")
                })
                .collect::<Vec<Event>>(),
        )
    };
    let first = wait_for("a FailedCreate event", WAIT, || async {
        let evs = failed_creates().await?;
        Ok((!evs.is_empty()).then_some(evs))
    })
    .await?;
    let message = first[0].message.clone().unwrap_or_default();
    ensure!(
        message.starts_with("Error creating: pods \"capped-")
            && message.ends_with(
                "is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1"
            ),
        "{message}"
    );
    // Retried with backoff, not in a hot loop.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let attempts: i32 = failed_creates()
        .await?
        .iter()
        .map(|e| e.count.unwrap_or(1).max(1))
        .sum();
    ensure!(attempts < 30, "{attempts} failed creates in 8 s");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "dq");
    let count = pods.list(&ListParams::default()).await?.items.len();
    ensure!(count == 1, "{count} pods under a quota of 1");
    // More room: every node gets its pod.
    c.kubectl(&[
        "patch",
        "quota",
        "q",
        "-n",
        "dq",
        "-p",
        r#"{"spec":{"hard":{"pods":"3"}}}"#,
    ])?;
    wait_for("three running pods", WAIT, || async {
        let list = pods.list(&ListParams::default()).await?;
        let running = list
            .items
            .iter()
            .filter(|p| is_running(p) && is_ready(p))
            .count();
        Ok((running == 3).then_some(()))
    })
    .await?;
    Ok(())
}

async fn deleting_the_daemonset_deletes_its_pods(c: &Cluster) -> Result<()> {
    c.kubectl_stdin(&["apply", "-f", "-"], Some(&ds_yaml("gone", "g:1", "", "")))?;
    wait_running_on(&c.client, "gone", &["sim-0", "sim-1", "sim-2"]).await?;
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let names = |pods: &[Pod]| {
        let mut v: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
        v.sort();
        v
    };
    let before = names(
        &api.list(&ListParams::default().labels("app=gone"))
            .await?
            .items,
    );

    // Orphaned, then adopted again by a new DaemonSet of the same template: the same pods
    // and revision, nothing made anew.
    c.kubectl(&["delete", "ds", "gone", "--cascade=orphan", "--timeout=60s"])?;
    wait_for("the pods orphaned", WAIT, || async {
        let pods = api
            .list(&ListParams::default().labels("app=gone"))
            .await?
            .items;
        Ok(pods
            .iter()
            .all(|p| p.owner_references().is_empty())
            .then_some(()))
    })
    .await?;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(&ds_yaml("gone", "g:1", "", "")))?;
    let uid = {
        let dss: Api<DaemonSet> = Api::namespaced(c.client.clone(), "default");
        dss.get("gone").await?.uid().unwrap_or_default()
    };
    wait_for("the pods adopted", WAIT, || async {
        let pods = api
            .list(&ListParams::default().labels("app=gone"))
            .await?
            .items;
        let adopted = pods.len() == 3
            && pods
                .iter()
                .all(|p| p.owner_references().iter().any(|o| o.uid == uid));
        Ok(adopted.then_some(()))
    })
    .await?;
    let revisions: Api<ControllerRevision> = Api::namespaced(c.client.clone(), "default");
    wait_for("the revision adopted", WAIT, || async {
        let list = revisions
            .list(&ListParams::default().labels("app=gone"))
            .await?
            .items;
        let adopted = list.len() == 1
            && list[0]
                .owner_references()
                .iter()
                .any(|o| o.uid == uid && o.controller == Some(true));
        Ok(adopted.then_some(()))
    })
    .await?;
    wait_for("the status of the adopted pods", WAIT, || async {
        let s = ds_status(&c.client, "gone").await?;
        Ok(
            (s["numberAvailable"] == json!(3) && s["updatedNumberScheduled"] == json!(3))
                .then_some(()),
        )
    })
    .await?;
    let after = names(
        &api.list(&ListParams::default().labels("app=gone"))
            .await?
            .items,
    );
    ensure!(before == after, "{before:?} became {after:?}");

    c.kubectl(&["delete", "ds", "gone", "--timeout=60s"])?;
    wait_for("the pods gone", WAIT, || async {
        let left = api
            .list(&ListParams::default().labels("app=gone"))
            .await?
            .items
            .len();
        Ok((left == 0).then_some(()))
    })
    .await?;
    wait_for("the revisions gone", WAIT, || async {
        let left = revisions
            .list(&ListParams::default().labels("app=gone"))
            .await?
            .items
            .len();
        Ok((left == 0).then_some(()))
    })
    .await?;
    Ok(())
}

on_both_datastores!(nodes: 3;
    every_node_then_a_late_one,
    taints_tolerations_and_node_selectors,
    rolling_update_and_undo,
    surge_and_on_delete,
    quota_refuses_daemon_pods,
    deleting_the_daemonset_deletes_its_pods,
);
