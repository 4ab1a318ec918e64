//! End to end, as root: the real `skiff agent` binary joins a `skiff server` process as a
//! real node over HTTPS and runs a pod in a real container. Stopped, and started again
//! while the server is down, it runs a static pod from its manifest directory without the
//! API server (with its last join's credentials and the pod network it had), and the pod
//! it ran before keeps running; once the server is back on the same address the node
//! registers again, the static pod's mirror pod shows it Running at the same pod IP, and
//! neither container was restarted. Started with `--shutdown-grace-period`, its stop is a
//! graceful node shutdown: the node NotReady (`node is shutting down`), both pods Failed
//! with reason Terminated, their containers stopped.
//!
//! One test per binary: the node uses the host's `cni0` bridge and pod range.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use common::procs::{free_port, wait_node_ready, AgentProcess, ServerProcess};
use common::realnode::{http_get, run_cleanly, skip_reason, stage_demo_image};
use common::wait_for;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use skiff_runtime::cri::PodRuntime;

const NODE: &str = "agent-e2e";
const WAIT: Duration = Duration::from_secs(90);
const SERVER_FLAGS: &[&str] = &["--bind-address", "127.0.0.1", "--disable-dns"];

const STATIC_MANIFEST: &str = "apiVersion: v1
kind: Pod
metadata:
  name: hello
  namespace: kube-system
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: web
    image: docker.io/skiff/demo-web:v1
    imagePullPolicy: IfNotPresent
";

fn start_agent(data: &Path, server: &str, token: &str, extra: &[&str]) -> Result<AgentProcess> {
    let mut flags = vec!["--kubelet-port", "0"];
    flags.extend_from_slice(extra);
    AgentProcess::start(data, server, token, NODE, None, &flags)
}

/// The pod's IP once Running, with its first container's id and restart count.
async fn running(pods: &Api<Pod>, name: &str) -> Result<(String, String, i32)> {
    wait_for(&format!("pod {name} Running"), WAIT, || {
        let pods = pods.clone();
        let name = name.to_owned();
        async move {
            let Some(p) = pods.get_opt(&name).await? else {
                return Ok(None);
            };
            let s = p.status.unwrap_or_default();
            let c = s
                .container_statuses
                .unwrap_or_default()
                .into_iter()
                .next()
                .filter(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()));
            Ok(match (s.phase.as_deref(), s.pod_ip, c) {
                (Some("Running"), Some(ip), Some(c)) => {
                    Some((ip, c.container_id.unwrap_or_default(), c.restart_count))
                }
                _ => None,
            })
        }
    })
    .await
}

fn node_runtime(data: &Path) -> Result<skiff_runtime::local::LocalRuntime> {
    let monitor = skiff_runtime::container::monitor::MonitorCommand {
        program: env!("CARGO_BIN_EXE_skiff").into(),
        args: vec!["container-monitor".into()],
    };
    Ok(skiff_runtime::local::LocalRuntime::new(
        skiff_runtime::local::LocalConfig::new(data, monitor),
    )?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_runs_its_static_pods_while_the_server_is_down() -> Result<()> {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    run_cleanly(|data| async move { scenario(&data).await }).await
}

async fn scenario(data: &Path) -> Result<()> {
    let server_dir: PathBuf = tempfile::tempdir()?.keep();
    let result = with_server_dir(data, &server_dir).await;
    let _ = std::fs::remove_dir_all(&server_dir);
    result
}

async fn with_server_dir(data: &Path, server_dir: &Path) -> Result<()> {
    let port = free_port()?;
    let url = format!("https://127.0.0.1:{port}");
    let server = ServerProcess::start(server_dir, port, SERVER_FLAGS)?;
    let token = server.token()?;
    let token = token.as_str();
    stage_demo_image(data)?;

    // Joined and Ready: a pod from the API runs in a real container.
    let agent = start_agent(data, &url, token, &[])?;
    let client = server.admin_client().await?;
    wait_node_ready(&client, NODE, WAIT).await?;
    assert!(
        data.join("agent/node-credentials.json").is_file(),
        "the agent keeps its join's credentials"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let web: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "web", "image": "docker.io/skiff/demo-web:v1",
                            "imagePullPolicy": "IfNotPresent"}],
        },
    }))?;
    pods.create(&PostParams::default(), &web).await?;
    let (web_ip, web_container, _) = running(&pods, "web").await?;

    // The agent stops, then the server goes away; a static pod is added meanwhile.
    drop(agent);
    drop(server);
    std::fs::write(data.join("agent/pod-manifests/hello.yaml"), STATIC_MANIFEST)?;
    let agent = start_agent(data, &url, token, &[])?;
    let rt = node_runtime(data)?;
    let static_ip = wait_for(
        "the static pod's sandbox with a pod IP, without the API server",
        WAIT,
        || {
            let rt = &rt;
            async move {
                let sandboxes = rt.list_sandboxes().await?;
                Ok(sandboxes
                    .into_iter()
                    .find(|s| s.pod_name.starts_with("hello") && s.pod_namespace == "kube-system")
                    .and_then(|s| s.ips.first().map(|ip| ip.to_string())))
            }
        },
    )
    .await
    .with_context(|| agent.log_text())?;
    let answer = wait_for("the static pod answering HTTP", WAIT, || {
        let ip = static_ip.clone();
        async move {
            Ok(http_get(&ip, 8080)
                .ok()
                .filter(|a| a.contains("200 OK"))
                .map(|_| ()))
        }
    })
    .await;
    answer.with_context(|| agent.log_text())?;
    assert!(
        agent.logged("the server is unreachable"),
        "the agent says it started without the server:\n{}",
        agent.log_text()
    );
    assert!(
        http_get(&web_ip, 8080)?.contains("200 OK"),
        "the API's pod kept running while agent and server were down"
    );

    // The server comes back: the node registers, the mirror pod shows the static pod.
    let server = ServerProcess::start(server_dir, port, SERVER_FLAGS)?;
    let client = server.admin_client().await?;
    let system: Api<Pod> = Api::namespaced(client.clone(), "kube-system");
    let (mirror_ip, _, restarts) = running(&system, &format!("hello-{NODE}"))
        .await
        .with_context(|| agent.log_text())?;
    assert_eq!(mirror_ip, static_ip, "the mirror pod shows the running pod");
    assert_eq!(restarts, 0);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (ip, container, restarts) = running(&pods, "web").await?;
    assert_eq!(
        (ip.as_str(), container.as_str(), restarts),
        (web_ip.as_str(), web_container.as_str(), 0),
        "the API's pod is the same container, never restarted"
    );

    // Asked for, a stop is a graceful node shutdown: NotReady, then the pods killed and
    // Failed with upstream's reason, critical (static) pods last.
    drop(agent);
    let mut agent = start_agent(
        data,
        &url,
        token,
        &[
            "--shutdown-grace-period",
            "8s",
            "--shutdown-grace-period-critical-pods",
            "3s",
        ],
    )?;
    wait_for("the agent's pod workers", WAIT, || {
        let up = agent.logged("the node runs pods");
        async move { Ok(up.then_some(())) }
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        agent.stop(Duration::from_secs(30)),
        "the agent stops within its grace period:\n{}",
        agent.log_text()
    );
    let nodes: Api<Node> = Api::all(client.clone());
    let ready = nodes
        .get(NODE)
        .await?
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .context("a Ready condition")?;
    assert_eq!(
        (ready.status.as_str(), ready.message.as_deref()),
        ("False", Some("node is shutting down")),
        "{}",
        agent.log_text()
    );
    for (api, name) in [
        (&pods, "web".to_owned()),
        (&system, format!("hello-{NODE}")),
    ] {
        let s = api.get(&name).await?.status.unwrap_or_default();
        assert_eq!(
            (s.phase.as_deref(), s.reason.as_deref()),
            (Some("Failed"), Some("Terminated")),
            "{name}: {s:#?}\n{}",
            agent.log_text()
        );
    }
    assert!(
        http_get(&web_ip, 8080).is_err(),
        "the pod's container is stopped"
    );
    drop(agent);
    drop(server);
    Ok(())
}
