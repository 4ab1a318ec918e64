//! Data path: the same traffic to a pod directly by its IP and through a ClusterIP (the
//! proxy's rules: DNAT, and masquerade, since the client is outside the cluster range), side
//! by side in one run. Three network namespaces it creates (and deletes, also on failure): a
//! client, a node with a bridge, a pod on the bridge running a TCP server. Three measures,
//! each 2 s per path, alternating paths, 3 rounds, medians reported:
//! - new connections per second (connect, 64-byte request, 64-byte answer, close): the cost of
//!   conntrack and NAT set-up per connection;
//! - requests per second on one kept connection (64 bytes each way);
//! - bulk throughput (MiB/s) on one connection.
//!
//! Goal (issue 15): ClusterIP >= 95% of direct.
//!
//! `cargo bench -p skiff-proxy --bench datapath` (root)

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use skiff_proxy::model::{Protocol, ServicePortInfo, SliceEndpoint, SlicePort};
use skiff_proxy::{Config, Proxier, ServiceInfo, SliceInfo};
use support::{enter, Netns};

const POD_IP: &str = "10.42.0.2";
const CLUSTER_IP: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 20);
const NODE_IP: &str = "192.168.77.1";
const RR_PORT: u16 = 8080;
const SINK_PORT: u16 = 8081;
const MEASURE: Duration = Duration::from_secs(2);

/// The pod's server: on RR_PORT answers each 64-byte request with 64 bytes until EOF; on
/// SINK_PORT reads until EOF. A thread per connection; stops with the namespace.
fn serve(pod: &Netns) -> Result<()> {
    for port in [RR_PORT, SINK_PORT] {
        let path = format!("/run/netns/{}", pod.name);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let bound = enter(&path).and_then(|()| Ok(TcpListener::bind(("0.0.0.0", port))?));
            let listener = match bound {
                Ok(l) => {
                    let _ = tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                std::thread::spawn(move || {
                    let _ = conn.set_nodelay(true);
                    let mut buf = vec![0u8; if port == RR_PORT { 64 } else { 1 << 20 }];
                    loop {
                        if port == RR_PORT {
                            if conn.read_exact(&mut buf).is_err() || conn.write_all(&buf).is_err() {
                                return;
                            }
                        } else if !matches!(conn.read(&mut buf), Ok(n) if n > 0) {
                            return;
                        }
                    }
                });
            }
        });
        rx.recv_timeout(Duration::from_secs(5))
            .context("the pod's server did not start")??;
    }
    Ok(())
}

fn connections_per_second(to: SocketAddr) -> Result<f64> {
    let start = Instant::now();
    let mut n = 0u64;
    let mut buf = [7u8; 64];
    while start.elapsed() < MEASURE {
        let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
        s.set_nodelay(true)?;
        s.write_all(&buf)?;
        s.read_exact(&mut buf)?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn requests_per_second(to: SocketAddr) -> Result<f64> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
    s.set_nodelay(true)?;
    let mut buf = [7u8; 64];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < MEASURE {
        s.write_all(&buf)?;
        s.read_exact(&mut buf)?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn mib_per_second(to: SocketAddr) -> Result<f64> {
    let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(2))?;
    let buf = vec![1u8; 1 << 20];
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < MEASURE {
        s.write_all(&buf)?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<()> {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());
    let base = support::unique("dp");
    let node = Netns::new(format!("{base}n"))?;
    let client = Netns::new(format!("{base}c"))?;
    let pod = Netns::new(format!("{base}p"))?;
    node.ip(&["link", "add", "br0", "type", "bridge"])?;
    node.ip(&["addr", "add", "10.42.0.1/24", "dev", "br0"])?;
    node.ip(&["link", "set", "br0", "up"])?;
    node.ip(&["link", "add", "d0", "type", "veth", "peer", "name", "d1"])?;
    node.ip(&["link", "set", "d0", "up"])?;
    node.ip(&["link", "set", "d1", "up"])?;
    node.ip(&["route", "add", "default", "dev", "d0"])?;
    node.ip(&[
        "link",
        "add",
        "c0",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &client.name,
    ])?;
    node.ip(&["addr", "add", &format!("{NODE_IP}/24"), "dev", "c0"])?;
    node.ip(&["link", "set", "c0", "up"])?;
    client.ip(&["addr", "add", "192.168.77.2/24", "dev", "eth0"])?;
    client.ip(&["link", "set", "eth0", "up"])?;
    client.ip(&["route", "add", "default", "via", NODE_IP])?;
    node.ip(&[
        "link", "add", "p0", "type", "veth", "peer", "name", "eth0", "netns", &pod.name,
    ])?;
    node.ip(&["link", "set", "p0", "master", "br0"])?;
    node.ip(&["link", "set", "p0", "up"])?;
    pod.ip(&["addr", "add", &format!("{POD_IP}/24"), "dev", "eth0"])?;
    pod.ip(&["link", "set", "eth0", "up"])?;
    pod.ip(&["route", "add", "default", "via", "10.42.0.1"])?;
    node.run(skiff_proxy::enable_sysctls)??;
    serve(&pod)?;

    let config = Config {
        table: "skiff-bench".to_owned(),
        nft: node.nft(),
        node_name: "node".to_owned(),
        ..Config::default()
    };
    let port = |name: &str, port: u16| ServicePortInfo {
        name: name.to_owned(),
        protocol: Protocol::Tcp,
        port,
        node_port: None,
    };
    let target = |name: &str, port: u16| SlicePort {
        name: name.to_owned(),
        protocol: Protocol::Tcp,
        port,
    };
    let service = ServiceInfo {
        namespace: "bench".to_owned(),
        name: "web".to_owned(),
        cluster_ip: CLUSTER_IP,
        ports: vec![port("rr", 80), port("sink", 81)],
        external_ips: Vec::new(),
        load_balancer_ips: Vec::new(),
        source_ranges: Vec::new(),
        externally_accessible: false,
        external_policy_local: false,
        internal_policy_local: false,
        affinity_timeout: None,
    };
    let slice = SliceInfo {
        namespace: "bench".to_owned(),
        service_name: "web".to_owned(),
        ports: vec![target("rr", RR_PORT), target("sink", SINK_PORT)],
        endpoints: vec![SliceEndpoint {
            ip: POD_IP.parse()?,
            node_name: Some("node".to_owned()),
            ready: true,
            serving: true,
            terminating: false,
        }],
    };
    let mut proxier = Proxier::new(&config)?;
    proxier.sync(&[service], &[slice])?;

    let pod_ip: Ipv4Addr = POD_IP.parse()?;
    let paths = [
        (
            "pod IP",
            SocketAddr::from((pod_ip, RR_PORT)),
            SocketAddr::from((pod_ip, SINK_PORT)),
        ),
        (
            "ClusterIP",
            SocketAddr::from((CLUSTER_IP, 80)),
            SocketAddr::from((CLUSTER_IP, 81)),
        ),
    ];
    type Measure = fn(SocketAddr) -> Result<f64>;
    let measures: [(&str, Measure, bool); 3] = [
        ("new connections/s", connections_per_second, true),
        ("requests/s, one connection", requests_per_second, true),
        ("MiB/s, one connection", mib_per_second, false),
    ];
    let mut results = vec![[Vec::new(), Vec::new()]; measures.len()];
    for _round in 0..3 {
        for (m, (_, measure, rr)) in measures.iter().enumerate() {
            for (p, (_, rr_addr, sink_addr)) in paths.iter().enumerate() {
                let to = if *rr { *rr_addr } else { *sink_addr };
                let measure = *measure;
                let value = client.run(move || measure(to))??;
                results[m][p].push(value);
            }
        }
    }
    println!(
        "{:<30} {:>12} {:>12} {:>8}",
        "", "pod IP", "ClusterIP", "ratio"
    );
    for (m, (label, _, _)) in measures.iter().enumerate() {
        let direct = median(results[m][0].clone());
        let service = median(results[m][1].clone());
        ensure!(direct > 0.0, "no traffic on the direct path");
        println!(
            "{label:<30} {direct:>12.0} {service:>12.0} {:>7.1}%",
            service / direct * 100.0
        );
    }
    skiff_proxy::remove_table(&config.nft, &config.table)?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end: {}", load.trim());
    Ok(())
}
