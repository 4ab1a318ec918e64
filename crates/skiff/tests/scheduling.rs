//! Integration: the scheduler in `skiff server`, on simulated nodes, through kube-rs and the
//! real kubectl: pods spread over the nodes with a `Scheduled` event each; a pod that fits
//! nowhere stays Pending with upstream's `PodScheduled=False` message and a
//! `FailedScheduling` event, and is scheduled once a node with room joins; nodeSelector,
//! cordoned and tainted nodes, required anti-affinity and topology spread as upstream;
//! the replicas of a Deployment spread by count (the system default topology spread) where
//! LeastAllocated alone would crowd them onto the emptier nodes;
//! preemption of a lower-priority pod for a higher one (`nominatedNodeName`, `Preempted`);
//! a pod for another scheduler is left alone.

mod common;

use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use skiff_kubelet::sim::{self, SimConfig};

use common::{wait_for, Cluster};

const WAIT: Duration = Duration::from_secs(30);

fn pod_json(name: &str, spec: serde_json::Value) -> Result<Pod> {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
    }
    spec["terminationGracePeriodSeconds"] = json!(0);
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": spec,
    }))?)
}

fn requesting(cpu: &str) -> serde_json::Value {
    json!({"containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": cpu}}}]})
}

async fn create(client: &Client, pod: Pod) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods.create(&PostParams::default(), &pod).await?;
    Ok(())
}

/// The node `name` is bound to, once it is.
async fn bound_node(client: &Client, name: &str) -> Result<String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let bound = wait_for(&format!("{name} to be bound"), WAIT, || async {
        let p = pods.get(name).await?;
        Ok(p.spec.and_then(|s| s.node_name).filter(|n| !n.is_empty()))
    })
    .await;
    if bound.is_err() {
        // What the scheduler said, for the failure's report.
        let p = pods.get(name).await?;
        eprintln!(
            "{name}: status {:?}\nevents {:?}",
            p.status,
            events_of(client, name).await?
        );
    }
    bound
}

/// The `PodScheduled=False` condition's (reason, message), once there.
async fn unschedulable(client: &Client, name: &str) -> Result<(String, String)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    wait_for(&format!("{name} to be unschedulable"), WAIT, || async {
        let p = pods.get(name).await?;
        ensure!(
            p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none(),
            "{name} was bound"
        );
        Ok(p.status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")
            .map(|c| (c.reason.unwrap_or_default(), c.message.unwrap_or_default())))
    })
    .await
}

/// The (reason, message) of the events about pod `name`.
async fn events_of(client: &Client, name: &str) -> Result<Vec<(String, String)>> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect())
}

async fn wait_event(client: &Client, name: &str, reason: &str) -> Result<String> {
    wait_for(&format!("a {reason} event about {name}"), WAIT, || async {
        Ok(events_of(client, name)
            .await?
            .into_iter()
            .find(|(r, _)| r == reason)
            .map(|(_, m)| m))
    })
    .await
}

/// Simulated nodes of their own (`<prefix>0`...), stopped on drop.
struct ExtraNodes(tokio::task::JoinHandle<()>);

impl Drop for ExtraNodes {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn extra_nodes(client: &Client, prefix: &str, count: usize, capacity: &str) -> Result<ExtraNodes> {
    let config = SimConfig {
        count,
        name_prefix: prefix.into(),
        capacity: sim::parse_capacity(capacity).map_err(|e| anyhow::anyhow!("{e}"))?,
        node_ip_start: "10.99.0.1".parse()?,
        ..SimConfig::default()
    };
    let client = client.clone();
    Ok(ExtraNodes(tokio::spawn(async move {
        if let Err(e) = sim::run(client, config).await {
            eprintln!("extra simulated nodes stopped: {e}");
        }
    })))
}

async fn small_cluster(datastore: common::Datastore, nodes: usize) -> Result<Cluster> {
    let c = Cluster::start_with(datastore, |a| {
        a.simulated_nodes = nodes;
        a.sim_capacity = "cpu=1,memory=4Gi,pods=110".into();
    })
    .await?;
    // Every scenario counts the nodes (messages say 0/3), and the first node rid of its
    // `not-ready` taint would take every waiting pod: wait for all of them.
    c.wait_nodes_ready(nodes).await?;
    Ok(c)
}

async fn pods_spread_with_scheduled_events(c: &Cluster) -> Result<()> {
    let deploy = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 6
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: nginx, resources: {requests: {cpu: 100m}}}
"#;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(deploy))?;
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"])?;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let list = pods.list(&ListParams::default().labels("app=web")).await?;
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    for p in &list.items {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .context("unbound")?;
        *per_node.entry(node).or_default() += 1;
    }
    // LeastAllocated and BalancedAllocation spread equal pods evenly.
    ensure!(
        per_node.len() == 3 && per_node.values().all(|n| *n == 2),
        "pods per node: {per_node:?}"
    );
    let p = &list.items[0];
    let name = p.metadata.name.clone().unwrap_or_default();
    let node = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    let msg = wait_event(&c.client, &name, "Scheduled").await?;
    ensure!(
        msg == format!("Successfully assigned default/{name} to {node}"),
        "{msg}"
    );
    let described = c.kubectl(&["describe", "pod", &name])?;
    ensure!(
        described.contains("default-scheduler")
            && described.contains(&format!("Successfully assigned default/{name} to {node}")),
        "{described}"
    );
    Ok(())
}

/// Upstream's system default spreading (PodTopologySpread, hostname maxSkew 3, selector
/// from the ReplicaSet): sim-0 holds unrelated pods, so LeastAllocated alone would put all
/// six replicas on sim-1 and sim-2 (3/3); spreading by count puts two on each node.
async fn replicas_spread_by_count_over_least_allocated(c: &Cluster) -> Result<()> {
    // 15% of sim-0's cpu and memory, bound by name (the scheduler only counts them).
    for i in 0..3 {
        let pod = pod_json(
            &format!("load{i}"),
            json!({"nodeName": "sim-0", "containers": [{"name": "c", "image": "nginx",
                "resources": {"requests": {"cpu": "50m", "memory": "200Mi"}}}]}),
        )?;
        create(&c.client, pod).await?;
    }
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    wait_for("the load pods running", WAIT, || async {
        let mut running = 0;
        for i in 0..3 {
            let p = pods.get(&format!("load{i}")).await?;
            if p.status.and_then(|s| s.phase).as_deref() == Some("Running") {
                running += 1;
            }
        }
        Ok((running == 3).then_some(()))
    })
    .await?;
    // The ReplicaSet first, with no pods: the scheduler has its selector by the time the
    // scale-up creates them.
    let deploy = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: spread}
spec:
  replicas: 0
  selector: {matchLabels: {app: spread}}
  template:
    metadata: {labels: {app: spread}}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - {name: c, image: nginx, resources: {requests: {cpu: 25m, memory: 100Mi}}}
"#;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(deploy))?;
    let sets: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(c.client.clone(), "default");
    wait_for("the ReplicaSet", WAIT, || async {
        let list = sets
            .list(&ListParams::default().labels("app=spread"))
            .await?;
        Ok((!list.items.is_empty()).then_some(()))
    })
    .await?;
    c.kubectl(&["scale", "deployment/spread", "--replicas=6"])?;
    c.kubectl(&["rollout", "status", "deployment/spread", "--timeout=60s"])?;
    let list = pods
        .list(&ListParams::default().labels("app=spread"))
        .await?;
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    for p in &list.items {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .context("unbound")?;
        *per_node.entry(node).or_default() += 1;
    }
    if !(per_node.len() == 3 && per_node.values().all(|n| *n == 2)) {
        // What the scheduler saw of the nodes, for the failure's report.
        let nodes = c.kubectl(&["describe", "nodes"])?;
        let events = c.kubectl(&["get", "events", "-o", "wide"])?;
        anyhow::bail!("replicas per node: {per_node:?}\n{nodes}\n{events}");
    }
    Ok(())
}

async fn a_pod_that_fits_nowhere_waits_for_a_node(c: &Cluster) -> Result<()> {
    create(&c.client, pod_json("big", requesting("2"))?).await?;
    let (reason, message) = unschedulable(&c.client, "big").await?;
    ensure!(reason == "Unschedulable", "{reason}");
    let want = "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.";
    ensure!(message == want, "{message}");
    let event = wait_event(&c.client, "big", "FailedScheduling").await?;
    ensure!(event == want, "{event}");
    let out = c.kubectl(&["get", "pod", "big"])?;
    ensure!(out.contains("Pending"), "{out}");
    // A node with room joins: the pod goes there.
    let _extra = extra_nodes(&c.client, "roomy-", 1, "cpu=4,memory=8Gi,pods=110")?;
    let node = bound_node(&c.client, "big").await?;
    ensure!(node == "roomy-0", "{node}");
    Ok(())
}

async fn selectors_cordons_and_taints(c: &Cluster) -> Result<()> {
    c.kubectl(&["label", "node", "sim-1", "disk=ssd"])?;
    create(
        &c.client,
        pod_json(
            "ssd",
            json!({"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c", "image": "busybox"}]}),
        )?,
    )
    .await?;
    ensure!(bound_node(&c.client, "ssd").await? == "sim-1");
    c.kubectl(&["cordon", "sim-0"])?;
    c.kubectl(&["taint", "node", "sim-1", "dedicated=infra:NoSchedule"])?;
    for i in 0..3 {
        create(&c.client, pod_json(&format!("p{i}"), json!({}))?).await?;
        ensure!(bound_node(&c.client, &format!("p{i}")).await? == "sim-2");
    }
    // A pod tolerating the taint may go to sim-1 too; one selecting a missing label nowhere.
    create(
        &c.client,
        pod_json(
            "nowhere",
            json!({"nodeSelector": {"disk": "nvme"}, "containers": [{"name": "c", "image": "busybox"}]}),
        )?,
    )
    .await?;
    let (_, message) = unschedulable(&c.client, "nowhere").await?;
    let want = "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) had untolerated taint {dedicated: infra}, 1 node(s) were unschedulable. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    ensure!(message == want, "{message}");
    // The cluster changes (a node labelled): the pod is tried again and placed.
    c.kubectl(&["label", "node", "sim-2", "disk=nvme"])?;
    ensure!(bound_node(&c.client, "nowhere").await? == "sim-2");
    Ok(())
}

async fn anti_affinity_and_spread(c: &Cluster) -> Result<()> {
    let spec = |extra: serde_json::Value| {
        let mut s = json!({"containers": [{"name": "c", "image": "busybox"}]});
        if let (Some(s), Some(e)) = (s.as_object_mut(), extra.as_object()) {
            s.extend(e.clone());
        }
        s
    };
    let anti = json!({"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"group": "solo"}}, "topologyKey": "kubernetes.io/hostname"}]}}});
    let mut nodes = std::collections::BTreeSet::new();
    for i in 0..3 {
        let mut pod = pod_json(&format!("solo{i}"), spec(anti.clone()))?;
        pod.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("group".into(), "solo".into());
        create(&c.client, pod).await?;
        nodes.insert(bound_node(&c.client, &format!("solo{i}")).await?);
    }
    ensure!(nodes.len() == 3, "{nodes:?}");
    let mut pod = pod_json("solo3", spec(anti))?;
    pod.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert("group".into(), "solo".into());
    create(&c.client, pod).await?;
    let (_, message) = unschedulable(&c.client, "solo3").await?;
    ensure!(
        message.starts_with(
            "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
        ),
        "{message}"
    );
    // Topology spread over a zone label: 2 zones, maxSkew 1 -> 2 and 2 for 4 pods.
    c.kubectl(&["label", "node", "sim-0", "zone=a"])?;
    c.kubectl(&["label", "node", "sim-1", "zone=b"])?;
    c.kubectl(&["label", "node", "sim-2", "zone=b"])?;
    let spread = json!({"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"group": "spread"}}}]});
    let mut zones = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..4 {
        let mut pod = pod_json(&format!("spread{i}"), spec(spread.clone()))?;
        pod.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("group".into(), "spread".into());
        create(&c.client, pod).await?;
        let node = bound_node(&c.client, &format!("spread{i}")).await?;
        let zone = if node == "sim-0" { "a" } else { "b" };
        *zones.entry(zone.into()).or_default() += 1;
    }
    ensure!(zones.values().all(|n| *n == 2), "{zones:?}");
    Ok(())
}

async fn preemption_makes_room_for_a_higher_priority(c: &Cluster) -> Result<()> {
    let classes = r#"
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: low}
value: 10
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata: {name: high}
value: 1000
"#;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(classes))?;
    // One node of 1 cpu, filled by a low-priority pod.
    let mut low = requesting("800m");
    low["priorityClassName"] = json!("low");
    create(&c.client, pod_json("low", low)?).await?;
    ensure!(bound_node(&c.client, "low").await? == "sim-0");
    let mut high = requesting("800m");
    high["priorityClassName"] = json!("high");
    create(&c.client, pod_json("high", high)?).await?;
    let msg = wait_event(&c.client, "low", "Preempted").await?;
    ensure!(
        msg.starts_with("Preempted by pod ") && msg.ends_with(" on node sim-0"),
        "{msg}"
    );
    ensure!(bound_node(&c.client, "high").await? == "sim-0");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    wait_for("the victim to be gone", WAIT, || async {
        Ok(pods.get_opt("low").await?.is_none().then_some(()))
    })
    .await?;
    // Another low pod now fits nowhere and preempts nothing.
    let mut low2 = requesting("800m");
    low2["priorityClassName"] = json!("low");
    create(&c.client, pod_json("low2", low2)?).await?;
    let (_, message) = unschedulable(&c.client, "low2").await?;
    ensure!(
        message == "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.",
        "{message}"
    );
    Ok(())
}

async fn other_schedulers_pods_are_left_alone(c: &Cluster) -> Result<()> {
    let mut spec = json!({"schedulerName": "my-scheduler"});
    spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
    create(&c.client, pod_json("mine", spec)?).await?;
    create(&c.client, pod_json("theirs", json!({}))?).await?;
    bound_node(&c.client, "theirs").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let p = pods.get("mine").await?;
    ensure!(p.spec.and_then(|s| s.node_name).is_none());
    ensure!(events_of(&c.client, "mine").await?.is_empty());
    Ok(())
}

macro_rules! scenarios {
    ($($name:ident: $nodes:expr),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    let c = super::small_cluster(super::common::Datastore::Embedded, $nodes).await?;
                    super::$name(&c).await
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    let c = super::small_cluster(super::common::Datastore::Etcd, $nodes).await?;
                    super::$name(&c).await
                }
            )*
        }
    };
}

scenarios!(
    pods_spread_with_scheduled_events: 3,
    replicas_spread_by_count_over_least_allocated: 3,
    a_pod_that_fits_nowhere_waits_for_a_node: 3,
    selectors_cordons_and_taints: 3,
    anti_affinity_and_spread: 3,
    preemption_makes_room_for_a_higher_priority: 1,
    other_schedulers_pods_are_left_alone: 1,
);
