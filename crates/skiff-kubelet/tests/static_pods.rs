//! Static pods without an API server: the kubelet's pod manager, pointed at an API address
//! nobody answers, runs the manifest directory's pods on the recording runtime, a restart
//! adopts their containers, and a removed manifest stops them; an API server that takes
//! connections but never answers does not hold them back. (With a real API server and
//! mirror pods: the skiff crate's tests/static_pods.rs.)

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use skiff_kubelet::kubelet::sandbox::SandboxSettings;
use skiff_kubelet::kubelet::Shared;
use skiff_kubelet::volumes::VolumeManager;
use skiff_runtime::cri::{ContainerState, PodRuntime};
use skiff_runtime::image::manifest::ImageConfig;
use skiff_runtime::testing::{Call, RecordingRuntime};

const NODE: &str = "static-node";

struct Kubelet(tokio::task::JoinHandle<()>);

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A port nothing listens on: bound, then closed.
fn closed_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

fn kubelet(
    agent_dir: &Path,
    manifests: &Path,
    rt: &RecordingRuntime,
    port: u16,
) -> Result<Kubelet> {
    let url: http::Uri = format!("https://127.0.0.1:{port}").parse()?;
    // kube's defaults, as the node agent's client: a connect timeout, no read timeout.
    let config = kube::Config::new(url);
    let client = kube::Client::try_from(config)?;
    let runtime: Arc<dyn PodRuntime> = Arc::new(rt.clone());
    let (probe_tx, probe_rx) = tokio::sync::mpsc::unbounded_channel();
    let shared = Shared {
        client,
        probes: skiff_kubelet::probes::ProbeManager::new(runtime.clone(), probe_tx),
        runtime,
        node_name: NODE.into(),
        volumes: VolumeManager::new(agent_dir.join("pods")),
        agent_dir: agent_dir.to_path_buf(),
        sandbox: SandboxSettings {
            cluster_dns: vec!["10.43.0.10".into()],
            cluster_domain: "cluster.local".into(),
            host_resolv_conf: Some("nameserver 1.1.1.1\n".into()),
            node_hosts: "127.0.0.1 localhost\n".into(),
        },
        memory_capacity: 8 << 30,
        allocatable: BTreeMap::new(),
        host_ips: vec!["10.0.0.5".into()],
    };
    Ok(Kubelet(tokio::spawn(
        skiff_kubelet::kubelet::run_with_manifests(shared, probe_rx, Some(manifests.into())),
    )))
}

fn running(rt: &RecordingRuntime) -> Vec<(String, String)> {
    rt.containers()
        .into_iter()
        .filter(|c| matches!(c.state, ContainerState::Running { .. }))
        .map(|c| (c.meta.pod_name.clone(), c.meta.name.clone()))
        .collect()
}

fn starts(rt: &RecordingRuntime) -> usize {
    rt.calls()
        .iter()
        .filter(|c| matches!(c, Call::StartContainer { .. }))
        .count()
}

async fn wait(what: &str, timeout: Duration, check: impl Fn() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("timed out waiting for {what}")
}

const MANIFEST: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: kube-system
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: c
    image: busybox:1.36
    command: [sleep, '3600']
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pods_run_without_an_api_server_and_a_restart_adopts_them() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let agent = dir.path().join("agent");
    let manifests = agent.join("pod-manifests");
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(manifests.join("web.yaml"), MANIFEST)?;
    // A broken manifest is skipped; the other runs.
    std::fs::write(manifests.join("broken.yaml"), "kind: Pod\nspec: [")?;
    let rt = RecordingRuntime::new();
    rt.add_image(RecordingRuntime::image(
        "docker.io/library/busybox:1.36",
        ImageConfig::default(),
    ));
    let port = closed_port()?;
    let k = kubelet(&agent, &manifests, &rt, port)?;
    wait(
        "the static pod's container running",
        Duration::from_secs(20),
        || running(&rt) == vec![("web-static-node".to_owned(), "c".to_owned())],
    )
    .await?;
    let c = rt.containers().remove(0);
    assert_eq!(c.meta.pod_namespace, "kube-system");
    assert_eq!(c.meta.pod_uid.len(), 32, "{}", c.meta.pod_uid);
    let config = rt.started_config(&c.id).context("its config")?;
    assert_eq!(config.args, vec!["sleep", "3600"]);

    // A restarted kubelet (still no API server) adopts the container: same UID, no start.
    drop(k);
    let before = starts(&rt);
    let k = kubelet(&agent, &manifests, &rt, port)?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(starts(&rt), before, "nothing started again");
    assert_eq!(running(&rt).len(), 1);

    // A new file is picked up within a few polls.
    std::fs::write(
        manifests.join("db.json"),
        r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"db"},
            "spec":{"containers":[{"name":"d","image":"busybox:1.36"}]}}"#,
    )?;
    wait(
        "the second static pod running",
        Duration::from_secs(10),
        || running(&rt).len() == 2,
    )
    .await?;

    // The manifest goes: its pod is stopped with its grace period and removed.
    std::fs::remove_file(manifests.join("web.yaml"))?;
    wait("web's container removed", Duration::from_secs(15), || {
        rt.containers()
            .iter()
            .all(|c| c.meta.pod_name != "web-static-node")
    })
    .await?;
    let grace = rt.calls().iter().find_map(|call| match call {
        Call::StopContainer { id, grace } if *id == c.id => Some(*grace),
        _ => None,
    });
    assert_eq!(grace, Some(Duration::from_secs(3)));
    assert_eq!(running(&rt), vec![(format!("db-{NODE}"), "d".to_owned())]);
    assert_eq!(rt.sandboxes().len(), 1, "web's sandbox gone, db's kept");
    drop(k);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_server_that_never_answers_does_not_hold_static_pods_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let agent = dir.path().join("agent");
    let manifests = agent.join("pod-manifests");
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(manifests.join("web.yaml"), MANIFEST)?;
    let rt = RecordingRuntime::new();
    rt.add_image(RecordingRuntime::image(
        "docker.io/library/busybox:1.36",
        ImageConfig::default(),
    ));
    // Bound and listening (the kernel completes the handshakes), never accepted: every
    // request hangs after connecting.
    let hung = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = hung.local_addr()?.port();
    let _k = kubelet(&agent, &manifests, &rt, port)?;
    wait(
        "the static pod's container running",
        Duration::from_secs(30),
        || running(&rt) == vec![(format!("web-{NODE}"), "c".to_owned())],
    )
    .await?;
    // Removing it still stops it.
    std::fs::remove_file(manifests.join("web.yaml"))?;
    wait("its container removed", Duration::from_secs(30), || {
        rt.containers().is_empty()
    })
    .await?;
    drop(hung);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_changed_while_the_kubelet_was_down_replaces_the_old_version() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let agent = dir.path().join("agent");
    let manifests = agent.join("pod-manifests");
    std::fs::create_dir_all(&manifests)?;
    std::fs::write(manifests.join("web.yaml"), MANIFEST)?;
    let rt = RecordingRuntime::new();
    for tag in ["1.36", "1.37"] {
        rt.add_image(RecordingRuntime::image(
            &format!("docker.io/library/busybox:{tag}"),
            ImageConfig::default(),
        ));
    }
    let port = closed_port()?;
    let k = kubelet(&agent, &manifests, &rt, port)?;
    wait("the first version running", Duration::from_secs(20), || {
        running(&rt).len() == 1
    })
    .await?;
    let old = rt.containers().remove(0);
    drop(k);
    std::fs::write(
        manifests.join("web.yaml"),
        MANIFEST.replace("busybox:1.36", "busybox:1.37"),
    )?;
    rt.take_calls();
    let _k = kubelet(&agent, &manifests, &rt, port)?;
    wait("only the new version", Duration::from_secs(20), || {
        let cs = rt.containers();
        cs.len() == 1
            && cs[0].meta.image == "busybox:1.37"
            && matches!(cs[0].state, ContainerState::Running { .. })
    })
    .await?;
    // The old one was stopped before the new one started.
    let calls = rt.calls();
    let stopped = calls
        .iter()
        .position(|c| matches!(c, Call::StopContainer { id, .. } if *id == old.id));
    let started = calls
        .iter()
        .position(|c| matches!(c, Call::StartContainer { .. }));
    assert!(
        stopped.is_some() && stopped < started,
        "stop at {stopped:?}, start at {started:?}"
    );
    assert_eq!(rt.sandboxes().len(), 1);
    Ok(())
}
