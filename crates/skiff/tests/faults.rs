//! Faults under the controllers, on both datastores:
//!
//! - the API server restarts while a controller manager in another process
//!   (`skiff controller-manager --kubeconfig`, over HTTPS) keeps running: it must resume from
//!   a fresh list and create nothing twice;
//! - a simulated node goes silent: it becomes NotReady/Unknown, its pods (tolerating the
//!   unreachable taint for 2 s) are evicted and the Deployment's replacements are scheduled
//!   on the other nodes;
//! - a node is deleted in the middle of a rolling update: the rollout still completes, on
//!   the nodes that are left, and pod GC removes what was bound to the gone node.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use skiff::server::{self, ServerArgs};
use skiff_store::testing::EtcdProcess;

use common::wait_for;

const WAIT: Duration = Duration::from_secs(60);

/// A controller manager in a process of its own; killed when dropped.
struct ControllerManager(Child);

impl Drop for ControllerManager {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts a server on `args`' data dir, waiting while a dropped one still holds it.
async fn start(args: &ServerArgs) -> Result<server::Running> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match server::start(args).await {
            Err(e)
                if format!("{e:#}").contains("in use")
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => return other,
        }
    }
}

async fn admin(running: &server::Running) -> Result<Client> {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&running.kubeconfig)?,
        &KubeConfigOptions::default(),
    )
    .await?;
    Ok(Client::try_from(config)?)
}

/// The pods the Deployment `web` owns (through its ReplicaSets), by name.
async fn web_pods(client: &Client) -> Result<BTreeSet<String>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    Ok(pods
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.name_any())
        .collect())
}

async fn controllers_resume_after_an_api_server_restart(etcd: Option<EtcdProcess>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut args = ServerArgs::defaults(dir.path());
    args.https_port = free_port()?;
    args.bind_address = "127.0.0.1".parse()?;
    args.datastore_endpoint = etcd.as_ref().map(|e| e.endpoint());
    args.disable_controller_manager = true;
    args.disable_scheduler = true;
    args.disable_dns = true;
    // The control plane only: `defaults` runs the machine's own real node, whose Service
    // proxy and masquerade tables would stay in the host's network namespace.
    args.disable_agent = true;
    let running = start(&args).await?;
    let kubeconfig = running.kubeconfig.clone();
    let log_path = dir.path().join("controller-manager.log");
    let log = std::fs::File::create(&log_path)?;
    let cm = ControllerManager(
        Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["controller-manager", "--leader-elect=false", "--kubeconfig"])
            .arg(&kubeconfig)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting skiff controller-manager")?,
    );

    let client = admin(&running).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "c", "image": "img:1"}]}}
        }
    }))?;
    deployments
        .create(&PostParams::default(), &deployment)
        .await?;
    let before = wait_for("the Deployment's 3 pods", WAIT, || async {
        let pods = web_pods(&client).await?;
        Ok((pods.len() == 3).then_some(pods))
    })
    .await?;

    // The API server goes away under the controller manager, stays away long enough for
    // its watches to fail and back off, and comes back on the same port and data.
    drop(client);
    drop(running);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let running = start(&args).await?;
    let client = admin(&running).await?;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");

    // Nothing was created twice while the controllers resynced...
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = web_pods(&client).await?;
    ensure!(
        after == before,
        "pods changed across the restart: {before:?} -> {after:?}"
    );

    // ... and they act on what changes after it, exactly once.
    deployments
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await?;
    let scaled = wait_for("5 pods after the scale", WAIT, || async {
        let pods = web_pods(&client).await?;
        Ok((pods.len() == 5).then_some(pods))
    })
    .await?;
    ensure!(scaled.is_superset(&before), "{before:?} -> {scaled:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let settled = web_pods(&client).await?;
    ensure!(settled == scaled, "{scaled:?} -> {settled:?}");
    let rs: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(client.clone(), "default");
    let sets = rs
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items;
    ensure!(sets.len() == 1, "one ReplicaSet, not {}", sets.len());
    drop(cm);
    // Its informers backed off while the server was away instead of spinning.
    let lines = std::fs::read_to_string(&log_path)?.lines().count();
    // (35 warnings on this machine; a client retrying without backoff writes thousands.)
    ensure!(
        lines < 1_000,
        "the controller manager logged {lines} lines in a few seconds"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_controllers_resume_after_an_api_server_restart() -> Result<()> {
    controllers_resume_after_an_api_server_restart(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_controllers_resume_after_an_api_server_restart() -> Result<()> {
    let etcd = EtcdProcess::start_in(None).await?;
    controllers_resume_after_an_api_server_restart(Some(etcd)).await
}

/// Simulated nodes of the test's own (`<prefix>0`...), which go silent when dropped.
struct ExtraNodes(tokio::task::JoinHandle<()>);

impl Drop for ExtraNodes {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn extra_nodes(client: &Client, prefix: &str, ip: &str) -> Result<ExtraNodes> {
    use skiff_kubelet::sim::{self, SimConfig};
    let config = SimConfig {
        count: 1,
        name_prefix: prefix.into(),
        node_ip_start: ip.parse()?,
        ..SimConfig::default()
    };
    let client = client.clone();
    Ok(ExtraNodes(tokio::spawn(async move {
        if let Err(e) = sim::run(client, config).await {
            eprintln!("extra simulated node stopped: {e}");
        }
    })))
}

fn pod_node(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Where `app=<app>`'s pods are and what the nodes look like, for a failure's message.
async fn placement(client: &Client, app: &str) -> Result<String> {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let mut out = String::new();
    for n in nodes.list(&ListParams::default()).await?.items {
        let ready = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone());
        let taints: Vec<String> = n
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default()
            .iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect();
        out += &format!("node {} ready={ready:?} taints={taints:?}; ", n.name_any());
    }
    for p in live_pods(client, app).await? {
        out += &format!("pod {} on {:?}; ", p.name_any(), pod_node(&p));
    }
    Ok(out)
}

/// The live (not terminating) pods of `app=<app>`.
async fn live_pods(client: &Client, app: &str) -> Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    Ok(pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect())
}

fn deployment_yaml(name: &str, replicas: usize, tolerate_seconds: Option<u32>) -> String {
    let tolerations = match tolerate_seconds {
        Some(s) => format!(
            "
      tolerations:
      - {{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: {s}}}
      - {{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: {s}}}"
        ),
        None => String::new(),
    };
    format!(
        "
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 0{tolerations}
      containers:
      - {{name: c, image: 'img:1', resources: {{requests: {{cpu: 100m}}}}}}
"
    )
}

async fn a_silent_nodes_pods_are_replaced_elsewhere(datastore: common::Datastore) -> Result<()> {
    let c = common::Cluster::start_with(datastore, |a| {
        a.simulated_nodes = 2;
        // Above the simulated nodes' 10 s Lease renewals (upstream: 40 s over 10 s): the
        // live nodes never look silent between two renewals, only the one that stops.
        a.node_monitor_grace_period = Duration::from_secs(20);
    })
    .await?;
    let lone = extra_nodes(&c.client, "lone-", "10.98.0.1")?;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(c.client.clone());
    c.wait_nodes_ready(3).await?;
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&deployment_yaml("web", 9, Some(2))),
    )?;
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"])?;
    let on_lone: Vec<String> = live_pods(&c.client, "web")
        .await?
        .iter()
        .filter(|p| pod_node(p) == "lone-0")
        .map(|p| p.name_any())
        .collect();
    ensure!(
        !on_lone.is_empty(),
        "the scheduler put nothing on lone-0: {}",
        placement(&c.client, "web").await?
    );
    // The node goes silent: no more Lease renewals or status.
    drop(lone);
    wait_for("lone-0 to be NotReady", WAIT, || async {
        let n = nodes.get("lone-0").await?;
        let ready = n
            .status
            .and_then(|s| s.conditions)
            .into_iter()
            .flatten()
            .find(|c| c.type_ == "Ready")
            .map(|c| c.status);
        Ok((ready.as_deref() == Some("Unknown")).then_some(()))
    })
    .await?;
    // Its pods are evicted after 2 s; their replacements run on sim-0 and sim-1.
    let replaced = wait_for("9 ready pods away from lone-0", WAIT, || async {
        let live = live_pods(&c.client, "web").await?;
        let away: Vec<&Pod> = live
            .iter()
            .filter(|p| pod_node(p) != "lone-0" && is_ready(p))
            .collect();
        let gone = on_lone
            .iter()
            .all(|name| live.iter().all(|p| &p.name_any() != name));
        Ok((away.len() == 9 && live.len() == 9 && gone).then_some(live))
    })
    .await;
    let replaced = match replaced {
        Ok(live) => live,
        Err(e) => anyhow::bail!("{e:#}: {}", placement(&c.client, "web").await?),
    };
    ensure!(
        replaced.iter().all(|p| pod_node(p).starts_with("sim-")),
        "a replacement went to the silent node"
    );
    let out = c.kubectl(&["get", "node", "lone-0"])?;
    ensure!(out.contains("NotReady"), "{out}");
    Ok(())
}

async fn a_node_deleted_mid_rollout(datastore: common::Datastore) -> Result<()> {
    let c = common::Cluster::start(datastore, 2).await?;
    let gone = extra_nodes(&c.client, "gone-", "10.97.0.1")?;
    c.wait_nodes_ready(3).await?;
    c.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&deployment_yaml("roll", 6, None)),
    )?;
    c.kubectl(&["rollout", "status", "deployment/roll", "--timeout=60s"])?;
    ensure!(
        live_pods(&c.client, "roll")
            .await?
            .iter()
            .any(|p| pod_node(p) == "gone-0"),
        "nothing on gone-0"
    );
    // The rolling update starts; the node disappears under it (machine gone, object deleted).
    c.kubectl(&["set", "image", "deployment/roll", "c=img:2"])?;
    drop(gone);
    c.kubectl(&["delete", "node", "gone-0"])?;
    // The rollout completes on the nodes that are left (pod GC frees what was bound to
    // gone-0 after its 40 s quarantine, if the rollout needs it).
    c.kubectl(&["rollout", "status", "deployment/roll", "--timeout=120s"])?;
    let live = live_pods(&c.client, "roll").await?;
    ensure!(live.len() == 6, "{} live pods", live.len());
    ensure!(
        live.iter().all(|p| pod_node(p).starts_with("sim-")),
        "a pod of the new revision is on the deleted node"
    );
    let names: BTreeSet<String> = live.iter().map(|p| p.name_any()).collect();
    ensure!(names.len() == 6, "duplicate names");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_silent_nodes_pods_are_replaced_elsewhere() -> Result<()> {
    a_silent_nodes_pods_are_replaced_elsewhere(common::Datastore::Embedded).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_a_silent_nodes_pods_are_replaced_elsewhere() -> Result<()> {
    a_silent_nodes_pods_are_replaced_elsewhere(common::Datastore::Etcd).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_a_node_deleted_mid_rollout() -> Result<()> {
    a_node_deleted_mid_rollout(common::Datastore::Embedded).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_a_node_deleted_mid_rollout() -> Result<()> {
    a_node_deleted_mid_rollout(common::Datastore::Etcd).await
}
