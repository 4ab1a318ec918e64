//! Integration: simulated nodes (`skiff_kubelet::sim`) against an in-process server: three
//! nodes register and stay Ready with their Leases renewed; a pod bound to one of them runs
//! with an address from that node's pod range; batch pods end Succeeded or Failed as their
//! annotations say; a graceful delete is finished when its grace period runs out. Then the
//! real binary: `skiff agent` joins over HTTPS with the join token and registers its nodes,
//! and a wrong token is refused with a message that says what to check. A node that gets no
//! pod range reports Ready=False and gets no pods.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
use skiff_kubelet::sim::{self, ipam::Cidr, SimConfig};

use common::{wait_for, Cluster, Datastore};

const WAIT: Duration = Duration::from_secs(30);

fn condition(node: &Node, kind: &str) -> Option<(String, Option<String>)> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn pod(name: &str, node: &str, restart_policy: &str, annotations: &[(&str, &str)]) -> Pod {
    let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "nodeName": node,
            "restartPolicy": restart_policy,
            "containers": [{"name": "main", "image": "nginx:1.25"}],
        }
    }))
    .expect("a pod")
}

/// The node's pod range: node IPAM's, or one set here if the controller has not run.
async fn pod_cidr(nodes: &Api<Node>, name: &str) -> Result<Cidr> {
    let assigned = wait_for(
        "node IPAM to give sim-1 a pod range",
        Duration::from_secs(10),
        || async { Ok(nodes.get(name).await?.spec.and_then(|s| s.pod_cidr)) },
    )
    .await;
    let text = match assigned {
        Ok(cidr) => cidr,
        Err(_) => {
            let cidr = "10.42.200.0/24".to_owned();
            let patch = json!({"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}});
            nodes
                .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            cidr
        }
    };
    Cidr::parse(&text).with_context(|| format!("podCIDR {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_nodes_register_run_pods_and_finish_deletes() -> Result<()> {
    let cluster = Cluster::start(Datastore::Embedded, 0).await?;
    let client = cluster.running.local_client(
        "system:node:sim-0",
        &["system:nodes", "system:authenticated"],
        "kubelet/v1.33.0 (linux/amd64) kubernetes/skiff",
    );
    let config = SimConfig {
        count: 3,
        lease_interval: Duration::from_secs(1),
        ..SimConfig::default()
    };
    let sims = tokio::spawn(sim::run(client, config));

    // Registered, Ready, labelled as a kubelet labels its node.
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    wait_for("three Ready simulated nodes", WAIT, || async {
        let list = nodes
            .list(&ListParams::default().labels("type=simulated"))
            .await?;
        let ready = list
            .items
            .iter()
            .filter(|n| {
                condition(n, "Ready") == Some(("True".into(), Some("KubeletReady".into())))
                    && condition(n, "MemoryPressure").map(|c| c.0).as_deref() == Some("False")
            })
            .count();
        Ok((ready == 3).then_some(()))
    })
    .await?;
    let sim1 = nodes.get("sim-1").await?;
    let labels = sim1.metadata.labels.clone().unwrap_or_default();
    ensure!(labels.get("kubernetes.io/hostname").map(String::as_str) == Some("sim-1"));
    ensure!(labels.get("kubernetes.io/os").map(String::as_str) == Some("linux"));
    let host_ip = sim1
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
        .map(|a| a.address.clone())
        .context("sim-1 has an InternalIP")?;

    // Leases: held by the node, owned by it, renewed.
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-node-lease");
    let lease = wait_for("sim-1's Lease", WAIT, || async {
        Ok(leases.get_opt("sim-1").await?)
    })
    .await?;
    let spec = lease.spec.clone().context("a lease spec")?;
    ensure!(spec.holder_identity.as_deref() == Some("sim-1"));
    ensure!(spec.lease_duration_seconds == Some(40));
    let owner = lease.metadata.owner_references.clone().unwrap_or_default();
    ensure!(
        owner.len() == 1
            && owner[0].kind == "Node"
            && Some(&owner[0].uid) == sim1.metadata.uid.as_ref(),
        "the Lease is owned by its Node: {owner:?}"
    );
    let first = spec.renew_time.context("a renew time")?;
    wait_for("sim-1's Lease to be renewed", WAIT, || async {
        let renewed = leases.get("sim-1").await?.spec.and_then(|s| s.renew_time);
        Ok(renewed.filter(|r| *r > first).map(|_| ()))
    })
    .await?;

    // A pod bound to sim-1 runs there, with an address from its range.
    let cidr = pod_cidr(&nodes, "sim-1").await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    pods.create(&PostParams::default(), &pod("web", "sim-1", "Always", &[]))
        .await?;
    let web = wait_for("web Running and Ready", WAIT, || async {
        let p = pods.get("web").await?;
        let ready = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        Ok((phase(&p) == Some("Running") && ready).then_some(p))
    })
    .await?;
    let status = web.status.clone().context("a status")?;
    let ip: Ipv4Addr = status
        .pod_ip
        .as_deref()
        .context("a pod IP")?
        .parse()
        .context("an IPv4 pod IP")?;
    ensure!(
        cidr.contains(ip),
        "pod IP {ip} is not in sim-1's range {cidr}"
    );
    ensure!(status.host_ip.as_deref() == Some(host_ip.as_str()));
    ensure!(status.start_time.is_some());
    let types: Vec<_> = status
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.as_str(), c.status.as_str()))
        .collect();
    for want in [
        ("PodReadyToStartContainers", "True"),
        ("Initialized", "True"),
        ("ContainersReady", "True"),
        ("PodScheduled", "True"),
    ] {
        ensure!(types.contains(&want), "{want:?} in {types:?}");
    }
    let main = &status.container_statuses.clone().unwrap_or_default()[0];
    ensure!(main.ready && main.started == Some(true));
    ensure!(main.state.as_ref().is_some_and(|s| s.running.is_some()));
    ensure!(main
        .container_id
        .as_deref()
        .is_some_and(|id| id.starts_with("sim://")));
    // The kubelet's writes are recorded under its name.
    let managers: Vec<_> = web
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    ensure!(
        managers.iter().any(|m| m == "kubelet"),
        "managers: {managers:?}"
    );

    // Settled: neither the pod nor its node is written again (no status chases itself).
    let pod_version = web.metadata.resource_version.clone();
    let node_version = nodes.get("sim-1").await?.metadata.resource_version;
    tokio::time::sleep(Duration::from_secs(2)).await;
    ensure!(
        pods.get("web").await?.metadata.resource_version == pod_version,
        "web was rewritten"
    );
    ensure!(
        nodes.get("sim-1").await?.metadata.resource_version == node_version,
        "sim-1 was rewritten"
    );

    // Batch pods end as their annotations say.
    pods.create(
        &PostParams::default(),
        &pod("done", "sim-0", "Never", &[("sim.skiff.dev/run-for", "1s")]),
    )
    .await?;
    pods.create(
        &PostParams::default(),
        &pod(
            "broken",
            "sim-2",
            "Never",
            &[("sim.skiff.dev/exit-code", "3")],
        ),
    )
    .await?;
    wait_for("done Succeeded", WAIT, || async {
        Ok((phase(&pods.get("done").await?) == Some("Succeeded")).then_some(()))
    })
    .await?;
    let broken = wait_for("broken Failed", WAIT, || async {
        let p = pods.get("broken").await?;
        Ok((phase(&p) == Some("Failed")).then_some(p))
    })
    .await?;
    let terminated = broken
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|cs| cs.into_iter().next())
        .and_then(|c| c.state)
        .and_then(|s| s.terminated)
        .context("a terminated container")?;
    ensure!(
        terminated.exit_code == 3,
        "exit code {}",
        terminated.exit_code
    );
    ensure!(terminated.reason.as_deref() == Some("Error"));

    // A graceful delete is finished when the grace period runs out.
    let asked = Instant::now();
    pods.delete(
        "web",
        &DeleteParams {
            grace_period_seconds: Some(1),
            ..DeleteParams::default()
        },
    )
    .await?;
    wait_for("web to be gone", WAIT, || async {
        Ok(pods.get_opt("web").await?.is_none().then_some(()))
    })
    .await?;
    let took = asked.elapsed();
    ensure!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(5),
        "the delete took {took:?}, not about the 1 s grace period"
    );
    // A finished pod has nothing to stop: deleted at once.
    let asked = Instant::now();
    pods.delete("done", &DeleteParams::default()).await?;
    wait_for("done to be gone", WAIT, || async {
        Ok(pods.get_opt("done").await?.is_none().then_some(()))
    })
    .await?;
    ensure!(asked.elapsed() < Duration::from_secs(5));

    ensure!(
        !sims.is_finished(),
        "the simulated nodes stopped: {:?}",
        sims.await
    );
    sims.abort();
    Ok(())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

/// The built binary's `skiff agent`, its output, after at most `timeout` (killed then).
async fn agent(args: Vec<String>, timeout: Duration) -> Result<(Option<i32>, String)> {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_skiff"))
        .arg("agent")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting skiff agent")?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let read = tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut out = String::new();
        let _ = stderr.read_to_string(&mut out).await;
        out
    });
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status?.code(),
        Err(_) => {
            child.kill().await?;
            None
        }
    };
    Ok((status, read.await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_joins_with_the_token_and_a_wrong_token_is_refused() -> Result<()> {
    let cluster = Cluster::start(Datastore::Embedded, 0).await?;
    let url = cluster.running.url.clone();
    let token_file = cluster.dir.path().join("server").join("token");
    let token = std::fs::read_to_string(&token_file)?.trim().to_owned();

    // A wrong token: refused, non-zero, and told what to check.
    let (code, stderr) = agent(
        strings(&[
            "--server",
            &url,
            "--token",
            "not-the-token",
            "--simulated-nodes",
            "2",
        ]),
        Duration::from_secs(30),
    )
    .await?;
    ensure!(code.is_some_and(|c| c != 0), "exit {code:?}: {stderr}");
    ensure!(
        stderr.contains("the server refused the join token") && stderr.contains("server/token"),
        "{stderr}"
    );

    // The join endpoint itself answers a wrong token 401.
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()?;
    let refused = http
        .post(format!("{url}/v1-skiff/node-join"))
        .bearer_auth("not-the-token")
        .body("intruder")
        .send()
        .await?;
    ensure!(refused.status() == 401, "{}", refused.status());
    // A join that names the node's addresses also gets a kubelet serving certificate for
    // them, signed by the cluster CA (what the API server verifies kubelets with).
    let joined = skiff::join::join(&url, &token, "real-node", &["10.9.8.7".parse()?]).await?;
    let serving = joined
        .serving_cert
        .context("no servingCert in the join answer")?;
    ensure!(joined.serving_key.is_some(), "no servingKey");
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("serving.crt"), &serving)?;
    std::fs::write(dir.path().join("ca.crt"), &joined.ca_cert)?;
    let text = std::process::Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-subject",
            "-ext",
            "subjectAltName",
            "-in",
        ])
        .arg(dir.path().join("serving.crt"))
        .output()?;
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    ensure!(
        text.contains("IP Address:10.9.8.7")
            && text.contains("DNS:real-node")
            && text.contains("system:node:real-node"),
        "{text}"
    );
    let verified = std::process::Command::new("openssl")
        .args(["verify", "-CAfile"])
        .arg(dir.path().join("ca.crt"))
        .arg(dir.path().join("serving.crt"))
        .output()?;
    ensure!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let bad = http
        .post(format!("{url}/v1-skiff/node-join"))
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await?;
    ensure!(bad.status() == 400, "{}", bad.status());

    // The right token (from a file): the agent's nodes register and become Ready.
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let token_path = cluster.dir.path().join("agent-token");
    std::fs::write(&token_path, format!("{token}\n"))?;
    let token_arg = token_path.to_string_lossy().into_owned();
    let run = tokio::spawn(agent(
        strings(&[
            "--server",
            &url,
            "--token-file",
            &token_arg,
            "--simulated-nodes",
            "2",
            "--sim-name-prefix",
            "agent-a-",
        ]),
        Duration::from_secs(60),
    ));
    let registered = wait_for("the agent's two nodes Ready", WAIT, || async {
        let mut ready = 0;
        for name in ["agent-a-0", "agent-a-1"] {
            if let Some(n) = nodes.get_opt(name).await? {
                if condition(&n, "Ready").map(|c| c.0).as_deref() == Some("True") {
                    ready += 1;
                }
            }
        }
        Ok((ready == 2).then_some(()))
    })
    .await;
    let node = nodes.get_opt("agent-a-0").await?;
    run.abort();
    registered?;
    // Its writes were made as the node identity the join issued.
    let managers: Vec<_> = node
        .iter()
        .flat_map(|n| n.metadata.managed_fields.iter().flatten())
        .filter_map(|m| m.manager.clone())
        .collect();
    ensure!(
        managers.iter().any(|m| m == "kubelet"),
        "managers: {managers:?}"
    );
    Ok(())
}

/// A node that gets no pod range (the cluster CIDR holds one /24, there are two nodes) says
/// so as upstream's kubelet does when its CNI has no configuration: Ready=False,
/// `KubeletNotReady`, the runtime's network message; node lifecycle taints it `not-ready`,
/// so the scheduler places pods on the node that has a range, and nothing stays Pending on
/// a node that cannot give it an address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_pod_range_is_not_ready() -> Result<()> {
    let cluster = Cluster::start_with(Datastore::Embedded, |a| {
        a.simulated_nodes = 2;
        a.node.cluster_cidr = "10.42.0.0/24".into();
    })
    .await?;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let (ready, not_ready) = wait_for("one node Ready, one not", WAIT, || async {
        let list = nodes.list(&ListParams::default()).await?;
        let with = |status: &str| {
            list.items
                .iter()
                .filter(|n| condition(n, "Ready").map(|c| c.0).as_deref() == Some(status))
                .cloned()
                .collect::<Vec<_>>()
        };
        let (t, f) = (with("True"), with("False"));
        Ok((t.len() == 1 && f.len() == 1).then(|| (t[0].clone(), f[0].clone())))
    })
    .await?;
    ensure!(ready.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()) == Some("10.42.0.0/24"));
    ensure!(not_ready
        .spec
        .as_ref()
        .and_then(|s| s.pod_cidr.as_ref())
        .is_none());
    let message = not_ready
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    ensure!(
        condition(&not_ready, "Ready") == Some(("False".into(), Some("KubeletNotReady".into())))
            && message.starts_with("container runtime network not ready: NetworkReady=false"),
        "the node without a range reports: {message}"
    );
    let not_ready_name = not_ready.metadata.name.clone().unwrap_or_default();
    wait_for(
        "the not-ready taint on the node without a range",
        WAIT,
        || async {
            let node = nodes.get(&not_ready_name).await?;
            let tainted = node
                .spec
                .and_then(|s| s.taints)
                .unwrap_or_default()
                .iter()
                .any(|t| t.key == "node.kubernetes.io/not-ready" && t.effect == "NoSchedule");
            Ok(tainted.then_some(()))
        },
    )
    .await?;

    // Pods go to the node that can give them an address, and run there.
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    for i in 0..4 {
        let mut p = pod(&format!("p{i}"), "", "Always", &[]);
        if let Some(spec) = p.spec.as_mut() {
            spec.node_name = None;
        }
        pods.create(&PostParams::default(), &p).await?;
    }
    let ready_name = ready.metadata.name.clone().unwrap_or_default();
    wait_for(
        "four pods Running on the node with a range",
        WAIT,
        || async {
            let list = pods.list(&ListParams::default()).await?;
            let running = list
                .items
                .iter()
                .filter(|p| phase(p) == Some("Running"))
                .filter(|p| {
                    p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&ready_name)
                })
                .count();
            Ok((running == 4).then_some(()))
        },
    )
    .await?;
    Ok(())
}
