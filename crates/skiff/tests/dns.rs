//! Integration: the cluster DNS of `skiff server` (in process, its DNS at a free port, on
//! two simulated nodes that give pods IPs and readiness), fed by the real watches.
//!
//! Scenario: `kube-system/kube-dns` on 10.43.0.10 and the DNS's own EndpointSlice with the
//! bound port; a ClusterIP Service with a named port behind a Deployment, a headless
//! Service with a StatefulSet (its pods' hostnames), an ExternalName; A, the headless A
//! set, `web-0.<svc>`, SRV, PTR, CNAME, NXDOMAIN with the SOA, forwarding to a fake
//! upstream the test starts on a loopback address at port 53; then a scale up, a scale
//! down and a delete, each visible within a bounded poll (the time printed).

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;

use common::{wait_for, Cluster, Datastore};

const WAIT: Duration = Duration::from_secs(60);

/// One question over UDP (over TCP when the answer comes truncated).
async fn ask(server: SocketAddr, name: &str, qtype: RecordType) -> Result<Message> {
    let mut request = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    request.metadata.recursion_desired = true;
    request.add_query(Query::query(Name::from_ascii(name)?, qtype));
    let socket = tokio::net::UdpSocket::bind("0.0.0.0:0").await?;
    socket.send_to(&request.to_vec()?, server).await?;
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .with_context(|| format!("no answer for {name} {qtype}"))??;
    let reply = Message::from_vec(&buf[..n])?;
    ensure!(reply.metadata.id == request.metadata.id);
    ensure!(!reply.metadata.truncation, "{name}: truncated");
    Ok(reply)
}

fn addresses(reply: &Message) -> BTreeSet<String> {
    reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect()
}

/// Polls until `name`'s A set has `want` addresses (or, `want == 0`, is NXDOMAIN); how
/// long it took.
async fn wait_addresses(server: SocketAddr, name: &str, want: usize) -> Result<Duration> {
    let started = Instant::now();
    wait_for(&format!("{name} with {want} addresses"), WAIT, || async {
        let reply = ask(server, name, RecordType::A).await?;
        Ok(match want {
            0 => (reply.metadata.response_code == ResponseCode::NXDomain).then_some(()),
            n => (addresses(&reply).len() == n).then_some(()),
        })
    })
    .await?;
    Ok(started.elapsed())
}

fn dig(server: SocketAddr, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string(), "+time=3", "+tries=1"])
        .args(args)
        .output()
        .context("running dig (dnsutils)")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

const OBJECTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: busybox, ports: [{name: http, containerPort: 8080}]}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: nginx}
  ports: [{name: web, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 2
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: nginx, ports: [{name: web, containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec: {type: ExternalName, externalName: db.example.net}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_dns_answers_from_the_api() -> Result<()> {
    let upstream = common::fakedns::start_upstream().await?;
    let resolv_dir = tempfile::tempdir()?;
    let resolv = resolv_dir.path().join("resolv.conf");
    // The cluster DNS IP is listed too: dropped, it would loop.
    std::fs::write(
        &resolv,
        format!("nameserver 10.43.0.10\nnameserver {}\n", upstream.ip),
    )?;
    let cluster = Cluster::start_with(Datastore::Embedded, |a| {
        a.simulated_nodes = 2;
        a.disable_dns = false;
        a.cluster_dns_port = 0;
        a.cluster_dns_resolv_conf = resolv.clone();
        a.node.node_ip = Some("127.0.0.1".parse().expect("an address"));
    })
    .await?;
    let dns = cluster.running.dns_addr.context("the server runs no DNS")?;
    ensure!(
        dns.port() != 0 && dns.ip() == IpAddr::from([127, 0, 0, 1]),
        "{dns}"
    );

    // The Service, as k3s has it, and the DNS's slice with the port it bound.
    let out = cluster.kubectl(&["get", "svc", "-n", "kube-system", "kube-dns"])?;
    ensure!(out.contains("10.43.0.10"), "{out}");
    ensure!(out.contains("53/UDP,53/TCP"), "{out}");
    let slices: Api<EndpointSlice> = Api::namespaced(cluster.client.clone(), "kube-system");
    let slice = wait_for("the kube-dns EndpointSlice", WAIT, || async {
        Ok(slices
            .list(&kube::api::ListParams::default().labels("kubernetes.io/service-name=kube-dns"))
            .await?
            .items
            .into_iter()
            .next())
    })
    .await?;
    let ports: BTreeSet<(String, i32)> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone().unwrap_or_default(), p.port.unwrap_or(0)))
        .collect();
    let port = i32::from(dns.port());
    ensure!(
        ports == BTreeSet::from([("dns".into(), port), ("dns-tcp".into(), port)]),
        "{ports:?}"
    );
    ensure!(slice.endpoints[0].addresses == ["127.0.0.1"]);
    // kube-dns itself resolves.
    let reply = ask(
        dns,
        "kube-dns.kube-system.svc.cluster.local.",
        RecordType::A,
    )
    .await?;
    ensure!(
        addresses(&reply) == BTreeSet::from(["10.43.0.10".to_owned()]),
        "{reply:?}"
    );

    cluster.wait_nodes_ready(2).await?;
    cluster.kubectl_stdin(&["apply", "-f", "-"], Some(OBJECTS))?;
    let web_ip = cluster
        .kubectl(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"])?
        .trim()
        .to_owned();

    // ClusterIP: A, case-insensitively.
    let reply = ask(dns, "web.default.svc.cluster.local.", RecordType::A).await?;
    ensure!(reply.metadata.authoritative);
    ensure!(
        addresses(&reply) == BTreeSet::from([web_ip.clone()]),
        "{reply:?}"
    );
    let out = dig(dns, &["+short", "WEB.Default.svc.CLUSTER.local"])?;
    ensure!(out.trim() == web_ip, "{out}");

    // Headless: the StatefulSet's pods once they are ready, each by its hostname.
    let took = wait_addresses(dns, "nginx.default.svc.cluster.local.", 2).await?;
    println!("headless Service with 2 ready pods answered after {took:?}");
    let pod_ip = |name: &str| -> Result<String> {
        Ok(cluster
            .kubectl(&["get", "pod", name, "-o", "jsonpath={.status.podIP}"])?
            .trim()
            .to_owned())
    };
    let web0 = pod_ip("web-0")?;
    let reply = ask(dns, "web-0.nginx.default.svc.cluster.local.", RecordType::A).await?;
    ensure!(
        addresses(&reply) == BTreeSet::from([web0.clone()]),
        "{reply:?}"
    );

    // SRV: the ClusterIP's named port, and one per pod for the headless Service.
    let out = dig(
        dns,
        &["+short", "SRV", "_http._tcp.web.default.svc.cluster.local"],
    )?;
    ensure!(
        out.trim() == "0 100 80 web.default.svc.cluster.local.",
        "{out}"
    );
    let out = dig(
        dns,
        &["+short", "SRV", "_web._tcp.nginx.default.svc.cluster.local"],
    )?;
    let mut targets: Vec<&str> = out.lines().collect();
    targets.sort();
    ensure!(
        targets
            == [
                "0 50 80 web-0.nginx.default.svc.cluster.local.",
                "0 50 80 web-1.nginx.default.svc.cluster.local."
            ],
        "{out}"
    );

    // PTR: the ClusterIP and a pod's address.
    let out = dig(dns, &["+short", "-x", &web_ip])?;
    ensure!(out.trim() == "web.default.svc.cluster.local.", "{out}");
    let out = dig(dns, &["+short", "-x", &web0])?;
    ensure!(
        out.trim() == "web-0.nginx.default.svc.cluster.local.",
        "{out}"
    );

    // ExternalName: the CNAME, and the target's address from upstream.
    let out = dig(dns, &["+short", "ext.default.svc.cluster.local"])?;
    ensure!(
        out.lines().collect::<Vec<_>>() == ["db.example.net.", "192.0.2.53"],
        "{out}"
    );

    // NXDOMAIN with CoreDNS's SOA; a search-path expansion too.
    for name in [
        "nope.default.svc.cluster.local",
        "web.default.svc.cluster.local.default.svc.cluster.local",
    ] {
        let out = dig(dns, &[name])?;
        ensure!(out.contains("status: NXDOMAIN"), "{out}");
        ensure!(
            out.contains("SOA\tns.dns.cluster.local. hostmaster.cluster.local."),
            "{out}"
        );
    }

    // Outside the cluster: forwarded to the fake upstream.
    let out = dig(dns, &["+short", "www.example.org"])?;
    ensure!(out.trim() == "192.0.2.53", "{out}");

    // Changes: a scale up, a scale down, a delete.
    cluster.kubectl(&["scale", "statefulset", "web", "--replicas=3"])?;
    let took = wait_addresses(dns, "nginx.default.svc.cluster.local.", 3).await?;
    println!("scale up to 3 visible after {took:?}");
    cluster.kubectl(&["scale", "statefulset", "web", "--replicas=1"])?;
    let took = wait_addresses(dns, "nginx.default.svc.cluster.local.", 1).await?;
    println!("scale down to 1 visible after {took:?}");
    let started = Instant::now();
    cluster.kubectl(&["delete", "svc", "web", "--wait=false"])?;
    let took = wait_addresses(dns, "web.default.svc.cluster.local.", 0).await?;
    println!(
        "Service deletion visible after {took:?} ({:?} with kubectl)",
        started.elapsed()
    );
    Ok(())
}
