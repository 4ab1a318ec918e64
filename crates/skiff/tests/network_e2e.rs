//! End to end, as root: a cluster of three machines on one host. The control plane is a
//! `skiff server` process on the host; each of two nodes is a network namespace with its
//! own veth link to a test bridge, running the real `skiff agent` inside it (its own
//! `cni0`, routes and nftables). Pods on different nodes reach each other by pod IP with
//! their source addresses unchanged (host-gw routes, no NAT); pod traffic leaving the
//! cluster range is masqueraded to the node's address; the routes follow the nodes. A
//! Service's name resolves from a pod through the cluster DNS, its ClusterIP balances over
//! the pods of both nodes (the proxy of each agent, in its namespace), its NodePort answers
//! from outside, and its name and rules go with it.
//!
//! One test per binary: it owns a test bridge and two network namespaces (unique names),
//! removed with everything the nodes made, even when it fails.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use common::lab::{kubectl, pod_ip, run, whoami, Lab, WAIT};
use common::procs::{free_port, wait_node_ready, AgentProcess, ServerProcess};
use common::realnode::{remove_everything, skip_reason, stage_demo_image};
use common::wait_for;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, DeleteParams, PostParams};

fn web_pod(name: &str, node: &str) -> Result<Pod> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {
            "nodeName": node,
            "hostname": name,
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "web", "image": "docker.io/skiff/demo-web:v1",
                            "imagePullPolicy": "IfNotPresent"}],
        },
    }))?)
}

/// The routes of ours (`proto 83`) in a node's namespace: `<range> via <gateway>` lines.
fn routes(lab: &Lab, i: usize) -> Result<Vec<String>> {
    Ok(lab
        .exec(i, &["ip", "route", "show", "proto", "83"])?
        .lines()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_on_two_nodes_talk_without_nat() -> Result<()> {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    let lab = Lab::create("sknet", 251, 2)?;
    let server_dir = tempfile::tempdir()?;
    let data: Vec<tempfile::TempDir> = (0..2)
        .map(|_| tempfile::tempdir())
        .collect::<std::io::Result<_>>()?;
    let paths: Vec<PathBuf> = data.iter().map(|d| d.path().to_path_buf()).collect();
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(scenario(
        &lab,
        server_dir.path(),
        &paths,
    )))
    .await;
    // Whatever happened: the nodes' containers and sandboxes go before their namespaces.
    for p in &paths {
        let _ = remove_everything(p).await;
    }
    drop(lab);
    match outcome {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

async fn scenario(lab: &Lab, server_dir: &Path, data: &[PathBuf]) -> Result<()> {
    let port = free_port()?;
    let host = lab.host_ip();
    let server = ServerProcess::start(server_dir, port, &["--node-ip", &host, "--tls-san", &host])?;
    let token = server.token()?;
    let url = format!("https://{host}:{port}");
    let names = ["net-a", "net-b"];
    let mut agents = Vec::new();
    for (i, name) in names.iter().enumerate() {
        stage_demo_image(&data[i])?;
        let ns = lab.netns(i);
        let ip = lab.node_ip(i);
        agents.push(AgentProcess::start(
            &data[i],
            &url,
            &token,
            name,
            Some(&ns),
            &["--node-ip", &ip],
        )?);
    }
    let client = server.admin_client().await?;
    for (i, name) in names.iter().enumerate() {
        wait_node_ready(&client, name, WAIT)
            .await
            .with_context(|| agents[i].log_text())?;
    }

    for a in &agents {
        wait_for("the demo image imported", WAIT, || {
            let done = a.logged("air-gap image import finished");
            async move { Ok(done.then_some(())) }
        })
        .await?;
    }

    // Each node routes the other's pod range to it, and only that.
    let nodes: Api<Node> = Api::all(client.clone());
    let mut cidrs = Vec::new();
    for name in names {
        let n = nodes.get(name).await?;
        cidrs.push(n.spec.and_then(|s| s.pod_cidr).context("a podCIDR")?);
    }
    for (i, agent) in agents.iter().enumerate() {
        let other = 1 - i;
        let want = format!("{} via {}", cidrs[other], lab.node_ip(other));
        wait_for(&format!("node {i}'s route {want}"), WAIT, || {
            let got = routes(lab, i);
            let want = want.clone();
            async move { Ok((got? == [want]).then_some(())) }
        })
        .await
        .with_context(|| agent.log_text())?;
    }

    // A pod on each node; each reaches the other by pod IP and is seen with its own
    // address (no NAT between nodes).
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (pod, node) in [("web-a", names[0]), ("web-b", names[1])] {
        pods.create(&PostParams::default(), &web_pod(pod, node)?)
            .await?;
    }
    let ip_a = pod_ip(&pods, "web-a").await?;
    let ip_b = pod_ip(&pods, "web-b").await?;
    let kubeconfig = server.kubeconfig();
    for (from, from_ip, to, to_ip) in [
        ("web-a", &ip_a, "web-b", &ip_b),
        ("web-b", &ip_b, "web-a", &ip_a),
    ] {
        let url = format!("http://{to_ip}:8080/cgi-bin/whoami");
        let answer = wait_for(&format!("{from} reaching {to}"), WAIT, || {
            let got = kubectl(&kubeconfig, &["exec", from, "--", "wget", "-qO-", &url]);
            async move { Ok(got.ok()) }
        })
        .await?;
        assert_eq!(
            whoami(&answer),
            format!("{to} {from_ip}"),
            "{from} -> {to} keeps its source address"
        );
    }

    // Traffic leaving the cluster range leaves with the node's address.
    let listener = std::net::TcpListener::bind((host.parse::<Ipv4Addr>()?, 0))?;
    let outside = listener.local_addr()?;
    let accept = std::thread::spawn(move || -> Result<String> {
        listener.set_nonblocking(false)?;
        let (mut conn, peer) = listener.accept()?;
        use std::io::{Read, Write};
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut request = [0u8; 1024];
        let _ = conn.read(&mut request);
        let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n");
        Ok(peer.ip().to_string())
    });
    kubectl(
        &kubeconfig,
        &[
            "exec",
            "web-a",
            "--",
            "wget",
            "-qO-",
            &format!("http://{outside}/"),
        ],
    )?;
    let seen = accept
        .join()
        .map_err(|_| anyhow::anyhow!("the listener panicked"))??;
    assert_eq!(seen, lab.node_ip(0), "masqueraded to node a's address");
    let table = lab.exec(0, &["nft", "list", "table", "ip", "skiff-podnet"])?;
    assert!(table.contains("masquerade"), "{table}");

    // A Service over both pods: from a pod, by name through the cluster DNS (10.43.0.10,
    // which the node's proxy sends to the server's DNS), its ClusterIP reaches the pods on
    // both nodes, the pod on the other node seeing the caller's own address; its NodePort
    // answers on a node's address from outside.
    let services: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web"},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
                 "ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
    }))?;
    let svc = services.create(&PostParams::default(), &svc).await?;
    let spec = svc.spec.context("the Service's spec")?;
    let cluster_ip = spec.cluster_ip.context("a ClusterIP")?;
    let node_port = spec
        .ports
        .and_then(|p| p.first().and_then(|p| p.node_port))
        .context("a nodePort")?;
    let fqdn = "web.default.svc.cluster.local";
    let lookup = wait_for("web-b resolving the Service", WAIT, || {
        let got = kubectl(&kubeconfig, &["exec", "web-b", "--", "nslookup", fqdn]);
        let ip = cluster_ip.clone();
        async move { Ok(got.ok().filter(|out| out.contains(&ip))) }
    })
    .await
    .with_context(|| agents[1].log_text())?;
    assert!(lookup.contains(&cluster_ip), "{lookup}");
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let Ok(answer) = kubectl(
            &kubeconfig,
            &[
                "exec",
                "web-a",
                "--",
                "wget",
                "-qO-",
                &format!("http://{fqdn}/cgi-bin/whoami"),
            ],
        ) else {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        };
        let seen = whoami(&answer);
        if seen.starts_with("web-b ") {
            assert_eq!(
                seen,
                format!("web-b {ip_a}"),
                "no NAT on the way to the other node"
            );
        }
        answered.insert(seen.split(' ').next().unwrap_or_default().to_owned());
        if answered.len() == 2 {
            break;
        }
    }
    assert_eq!(
        answered.into_iter().collect::<Vec<_>>(),
        ["web-a", "web-b"],
        "the ClusterIP balances over both nodes' pods (web-a reaching itself too)"
    );
    let from_outside = wait_for("the NodePort on node b", WAIT, || {
        let got = common::realnode::http_get(&lab.node_ip(1), node_port as u16);
        async move { Ok(got.ok()) }
    })
    .await?;
    assert!(from_outside.starts_with("HTTP/1."), "{from_outside}");
    let rules = lab.exec(0, &["nft", "list", "table", "ip", "skiff"])?;
    assert!(rules.contains(&cluster_ip), "{rules}");
    // The Service goes: so do its name and its rules.
    services.delete("web", &DeleteParams::default()).await?;
    wait_for("the Service's rules gone from node a", WAIT, || {
        let rules = lab.exec(0, &["nft", "list", "table", "ip", "skiff"]);
        let ip = cluster_ip.clone();
        async move { Ok(rules.ok().filter(|r| !r.contains(&ip)).map(|_| ())) }
    })
    .await?;
    let gone = kubectl(&kubeconfig, &["exec", "web-b", "--", "nslookup", fqdn]);
    assert!(gone.is_err(), "{gone:?}");

    // Node b goes: its agent stops and the node is deleted; node a drops the route.
    pods.delete("web-b", &DeleteParams::default().grace_period(0))
        .await?;
    let mut b = agents.pop().context("agent b")?;
    b.stop(Duration::from_secs(10));
    drop(b);
    nodes.delete(names[1], &DeleteParams::default()).await?;
    wait_for("node a's route to b removed", WAIT, || {
        let got = routes(lab, 0);
        async move { Ok(got?.is_empty().then_some(())) }
    })
    .await
    .with_context(|| agents[0].log_text())?;
    drop(agents);
    drop(server);

    // `skiff reset` in node a's namespace takes away its pods, tables, routes and bridge.
    // (nsenter, not `ip netns exec`, which remounts /sys and hides the cgroups from runc.)
    let reset = run(
        "nsenter",
        &[
            &format!("--net=/run/netns/{}", lab.netns(0)),
            env!("CARGO_BIN_EXE_skiff"),
            "reset",
            "--data-dir",
            &data[0].to_string_lossy(),
        ],
    );
    let reset = reset.context("skiff reset")?;
    assert!(
        reset.contains("removed 1 containers and 1 pod sandboxes"),
        "{reset}"
    );
    let tables = lab.exec(0, &["nft", "list", "tables"])?;
    assert!(!tables.contains("skiff"), "tables left: {tables}");
    assert!(routes(lab, 0)?.is_empty());
    let links = lab.exec(0, &["ip", "-o", "link"])?;
    assert!(!links.contains("cni0"), "{links}");
    Ok(())
}
