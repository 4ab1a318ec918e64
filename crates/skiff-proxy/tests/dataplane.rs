//! The proxy's rules on real nftables, with real packets: a "node" network namespace holding
//! the table (a bridge to three "pod" namespaces on 10.42.0.0/24, a link to a "client"
//! namespace outside the cluster CIDR), TCP responders in the pods answering their names, and
//! connections from the client, the pods and the node itself. Each test builds its own
//! namespaces (unique names, deleted on drop even when the test fails) and drives
//! [`Proxier::sync`] directly, the seam the watch loop calls.
//!
//! Run as root (the tests need `ip netns` and nft).

mod support;

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use skiff_proxy::{remove_table, Config, Proxier, ServiceInfo, SliceInfo};
use support::{request, requests, Netns, Responder};

const NODE: &str = "node-a";
const POD_PORT: u16 = 8080;
const NODE_IP: &str = "192.168.77.1";

/// The namespaces, the responders and a proxier for the node's table.
struct Topology {
    _responders: Vec<Responder>,
    pods: Vec<Netns>,
    client: Netns,
    node: Netns,
    proxier: Proxier,
    config: Config,
}

impl Topology {
    fn new() -> Result<Self> {
        let base = support::unique("");
        let node = Netns::new(format!("{base}n"))?;
        let client = Netns::new(format!("{base}c"))?;
        let mut pods = Vec::new();
        for i in 0..3 {
            pods.push(Netns::new(format!("{base}p{i}"))?);
        }
        // The node: a bridge for the pods, a link to the client, a default route so that
        // packets to Service IPs are routable (as on a real host).
        node.ip(&["link", "add", "br0", "type", "bridge"])?;
        node.ip(&["addr", "add", "10.42.0.1/24", "dev", "br0"])?;
        node.ip(&["link", "set", "br0", "up"])?;
        // (No dummy device module here: a veth pair whose far end answers nothing.)
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
        for (i, pod) in pods.iter().enumerate() {
            let link = format!("p{i}");
            node.ip(&[
                "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns", &pod.name,
            ])?;
            node.ip(&["link", "set", &link, "master", "br0"])?;
            // As the bridge CNI plugin's hairpinMode (skiff's CNI config sets it): with
            // br_netfilter loaded, a pod's packet DNATed back to itself is bridged out of
            // the port it came in by.
            node.ip(&[
                "link",
                "set",
                &link,
                "type",
                "bridge_slave",
                "hairpin",
                "on",
            ])?;
            node.ip(&["link", "set", &link, "up"])?;
            pod.ip(&["addr", "add", &format!("{}/24", pod_ip(i)), "dev", "eth0"])?;
            pod.ip(&["link", "set", "eth0", "up"])?;
            pod.ip(&["route", "add", "default", "via", "10.42.0.1"])?;
        }
        node.run(skiff_proxy::enable_sysctls)??;
        let mut responders = Vec::new();
        for (i, pod) in pods.iter().enumerate() {
            responders.push(Responder::start(pod, POD_PORT, &format!("pod{i}"))?);
        }
        let config = Config {
            table: "skiff-test".to_owned(),
            nft: node.nft(),
            node_name: NODE.to_owned(),
            ..Config::default()
        };
        Ok(Self {
            _responders: responders,
            pods,
            client,
            proxier: Proxier::new(&config)?,
            config,
            node,
        })
    }

    fn sync(
        &mut self,
        services: &[Service],
        slices: &[EndpointSlice],
    ) -> Result<skiff_proxy::SyncReport> {
        let services: Vec<ServiceInfo> = services
            .iter()
            .filter_map(ServiceInfo::from_service)
            .collect();
        let slices: Vec<SliceInfo> = slices.iter().filter_map(SliceInfo::from_slice).collect();
        Ok(self.proxier.sync(&services, &slices)?)
    }
}

fn pod_ip(i: usize) -> String {
    format!("10.42.0.{}", 10 + i)
}

fn addr(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().expect("an IP"), port)
}

/// An endpoint on pod `i`, on node `node`.
fn ep(i: usize, node: &str) -> serde_json::Value {
    json!({"addresses": [pod_ip(i)], "nodeName": node, "conditions": {"ready": true}})
}

fn web(spec: serde_json::Value) -> Service {
    let mut base = json!({
        "clusterIP": "10.43.0.10",
        "ports": [{"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"}],
    });
    if let (Some(b), Some(extra)) = (base.as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            b.insert(k.clone(), v.clone());
        }
    }
    support::service("default", "web", base)
}

fn web_slice(endpoints: serde_json::Value) -> EndpointSlice {
    support::slice(
        "default",
        "web-abc",
        "web",
        &[("http", POD_PORT)],
        endpoints,
    )
}

/// The responders that answered (their names, without the peer address).
fn names(answers: Vec<std::io::Result<String>>) -> Result<BTreeSet<String>> {
    answers
        .into_iter()
        .map(|a| {
            let a = a.context("a request failed")?;
            Ok(a.split(' ').next().unwrap_or_default().to_owned())
        })
        .collect()
}

/// The source address a responder saw.
fn peer(answer: std::io::Result<String>) -> Result<String> {
    let a = answer.context("the request failed")?;
    Ok(a.split(' ').nth(1).unwrap_or_default().to_owned())
}

#[test]
fn cluster_ip_balances_over_all_ready_endpoints_and_an_incremental_change_takes_effect(
) -> Result<()> {
    let mut t = Topology::new()?;
    let report = t.sync(
        &[web(json!({}))],
        &[web_slice(json!([
            ep(0, NODE),
            ep(1, "node-b"),
            ep(2, "node-b")
        ]))],
    )?;
    ensure!(report.full && report.applied, "{report:?}");
    let seen = names(requests(&t.client, addr("10.43.0.10", 80), 40)?)?;
    ensure!(seen.len() == 3, "answers came from {seen:?}");
    // From the node itself (output hook) and from a pod.
    ensure!(request(&t.node, addr("10.43.0.10", 80))?.is_ok());
    ensure!(request(&t.pods[1], addr("10.43.0.10", 80))?.is_ok());

    // pod1 becomes not ready, pod2 is removed: only pod0 gets new connections.
    let report = t.sync(
        &[web(json!({}))],
        &[web_slice(json!([
            ep(0, NODE),
            {"addresses": [pod_ip(1)], "nodeName": "node-b", "conditions": {"ready": false}},
        ]))],
    )?;
    ensure!(!report.full && report.applied, "{report:?}");
    let seen = names(requests(&t.client, addr("10.43.0.10", 80), 10)?)?;
    ensure!(seen == BTreeSet::from(["pod0".to_owned()]), "{seen:?}");
    Ok(())
}

#[test]
fn a_service_without_endpoints_refuses_at_once() -> Result<()> {
    let mut t = Topology::new()?;
    t.sync(
        &[web(json!({"type": "NodePort", "ports": [
        {"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]}))],
        &[],
    )?;
    for (from, to) in [
        (&t.client, addr("10.43.0.10", 80)),
        (&t.node, addr("10.43.0.10", 80)),
        (&t.client, addr(NODE_IP, 30080)),
        // A ClusterIP on a port no Service uses.
        (&t.client, addr("10.43.0.10", 81)),
    ] {
        let start = Instant::now();
        let answer = request(from, to)?;
        let kind = answer.as_ref().err().map(std::io::Error::kind);
        ensure!(
            kind == Some(ErrorKind::ConnectionRefused),
            "{to}: {answer:?}"
        );
        ensure!(
            start.elapsed() < Duration::from_secs(1),
            "{to}: refused only after {:?}",
            start.elapsed()
        );
    }
    Ok(())
}

#[test]
fn node_port_answers_on_node_addresses_and_loopback() -> Result<()> {
    let mut t = Topology::new()?;
    t.sync(
        &[web(json!({"type": "NodePort", "ports": [
            {"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]}))],
        &[web_slice(json!([ep(0, NODE), ep(1, "node-b")]))],
    )?;
    let seen = names(requests(&t.client, addr(NODE_IP, 30080), 20)?)?;
    ensure!(seen.len() == 2, "{seen:?}");
    // Policy Cluster: masqueraded (the endpoint may be on another node).
    let source = peer(request(&t.client, addr(NODE_IP, 30080))?)?;
    ensure!(source == "10.42.0.1", "not masqueraded: {source}");
    ensure!(request(&t.pods[2], addr("10.42.0.1", 30080))?.is_ok());
    let seen = names(requests(&t.node, addr("127.0.0.1", 30080), 20)?)?;
    ensure!(seen.len() == 2, "from 127.0.0.1: {seen:?}");
    Ok(())
}

#[test]
fn session_affinity_pins_a_client() -> Result<()> {
    let mut t = Topology::new()?;
    t.sync(
        &[web(json!({"sessionAffinity": "ClientIP",
                     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}))],
        &[web_slice(json!([ep(0, NODE), ep(1, NODE), ep(2, NODE)]))],
    )?;
    let seen = names(requests(&t.client, addr("10.43.0.10", 80), 15)?)?;
    ensure!(seen.len() == 1, "a pinned client reached {seen:?}");
    Ok(())
}

#[test]
fn a_pod_reaches_itself_through_its_service() -> Result<()> {
    let mut t = Topology::new()?;
    t.sync(&[web(json!({}))], &[web_slice(json!([ep(1, NODE)]))])?;
    let seen = names(requests(&t.pods[1], addr("10.43.0.10", 80), 3)?)?;
    ensure!(seen == BTreeSet::from(["pod1".to_owned()]), "{seen:?}");
    // Masqueraded, or the pod would answer itself from its own address and drop it.
    let source = peer(request(&t.pods[1], addr("10.43.0.10", 80))?)?;
    ensure!(source == "10.42.0.1", "{source}");
    // Another pod keeps its address (inside the cluster CIDR).
    let source = peer(request(&t.pods[0], addr("10.43.0.10", 80))?)?;
    ensure!(source == pod_ip(0), "{source}");
    Ok(())
}

/// The hairpin set's elements in the node's table.
fn hairpin_set(t: &Topology) -> Result<BTreeSet<String>> {
    let mut args: Vec<String> = t.config.nft.clone();
    args.extend(
        ["list", "set", "ip", &t.config.table, "hairpin-endpoints"]
            .iter()
            .map(|s| (*s).to_owned()),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = support::sh(&refs)?;
    let Some((_, rest)) = out.split_once("elements = {") else {
        return Ok(BTreeSet::new());
    };
    Ok(rest
        .split('}')
        .next()
        .unwrap_or_default()
        .split(',')
        .map(|e| e.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|e| !e.is_empty())
        .collect())
}

#[test]
fn hairpin_follows_every_service_of_an_endpoint_through_incremental_syncs() -> Result<()> {
    let mut t = Topology::new()?;
    let other = support::service(
        "default",
        "other",
        json!({"clusterIP": "10.43.0.11",
               "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}),
    );
    let other_slice = |endpoints: serde_json::Value| {
        support::slice(
            "default",
            "other-abc",
            "other",
            &[("http", POD_PORT)],
            endpoints,
        )
    };
    let services = [web(json!({})), other];
    t.sync(
        &services,
        &[
            web_slice(json!([ep(1, NODE)])),
            other_slice(json!([ep(1, NODE), ep(2, NODE)])),
        ],
    )?;
    let pair = |i: usize| format!("{} . {}", pod_ip(i), pod_ip(i));
    ensure!(hairpin_set(&t)? == BTreeSet::from([pair(1), pair(2)]));
    // pod1 leaves `other` but still backs `web`: it stays in the set, and reaching itself
    // through `web` is still masqueraded.
    let report = t.sync(
        &services,
        &[
            web_slice(json!([ep(1, NODE)])),
            other_slice(json!([ep(2, NODE)])),
        ],
    )?;
    ensure!(!report.full, "{report:?}");
    ensure!(hairpin_set(&t)? == BTreeSet::from([pair(1), pair(2)]));
    let source = peer(request(&t.pods[1], addr("10.43.0.10", 80))?)?;
    ensure!(source == "10.42.0.1", "{source}");
    // pod1 leaves `web` too, pod0 joins it: the set follows; pod2 reaching `other` (itself)
    // is masqueraded, pod0 reaching `other` keeps its address.
    let report = t.sync(
        &services,
        &[
            web_slice(json!([ep(0, NODE)])),
            other_slice(json!([ep(2, NODE)])),
        ],
    )?;
    ensure!(!report.full, "{report:?}");
    ensure!(hairpin_set(&t)? == BTreeSet::from([pair(0), pair(2)]));
    let source = peer(request(&t.pods[2], addr("10.43.0.11", 80))?)?;
    ensure!(source == "10.42.0.1", "{source}");
    let source = peer(request(&t.pods[0], addr("10.43.0.11", 80))?)?;
    ensure!(source == pod_ip(0), "{source}");
    // What the proxier believes it applied is what a full render of the same state is.
    let infos: Vec<ServiceInfo> = services
        .iter()
        .filter_map(ServiceInfo::from_service)
        .collect();
    let slices = [
        web_slice(json!([ep(0, NODE)])),
        other_slice(json!([ep(2, NODE)])),
    ];
    let slice_infos: Vec<SliceInfo> = slices.iter().filter_map(SliceInfo::from_slice).collect();
    let fresh = skiff_proxy::render::render(
        &skiff_proxy::model::build(&infos, &slice_infos, NODE),
        &t.config.render_config(),
    )?;
    ensure!(t.proxier.last_applied() == Some(&fresh));
    Ok(())
}

#[test]
fn external_and_load_balancer_ips_answer() -> Result<()> {
    let mut t = Topology::new()?;
    let svc = support::service_with_status(
        "default",
        "web",
        json!({"type": "LoadBalancer", "clusterIP": "10.43.0.10",
               "externalIPs": ["198.51.100.100"],
               "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
        json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.101"}]}}),
    );
    t.sync(&[svc], &[web_slice(json!([ep(0, NODE), ep(2, "node-b")]))])?;
    for ip in ["198.51.100.100", "198.51.100.101"] {
        let seen = names(requests(&t.client, addr(ip, 80), 20)?)?;
        ensure!(seen.len() == 2, "{ip}: {seen:?}");
    }
    Ok(())
}

#[test]
fn load_balancer_source_ranges_admit_only_their_clients() -> Result<()> {
    let mut t = Topology::new()?;
    let lb = |ranges: serde_json::Value| {
        support::service_with_status(
            "default",
            "web",
            json!({"type": "LoadBalancer", "clusterIP": "10.43.0.10",
                   "loadBalancerSourceRanges": ranges,
                   "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]}),
            json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.101"}]}}),
        )
    };
    let slice = web_slice(json!([ep(0, NODE)]));
    // The client (192.168.77.2) is outside the ranges: dropped at the load-balancer IP.
    t.sync(
        &[lb(json!(["203.0.113.0/24", " 10.0.0.0/8 "]))],
        std::slice::from_ref(&slice),
    )?;
    let answer = request(&t.client, addr("198.51.100.101", 80))?;
    let kind = answer.as_ref().err().map(std::io::Error::kind);
    ensure!(
        matches!(kind, Some(ErrorKind::TimedOut | ErrorKind::WouldBlock)),
        "not dropped: {answer:?}"
    );
    // Its ClusterIP and node port are not guarded (as upstream).
    ensure!(request(&t.client, addr("10.43.0.10", 80))?.is_ok());
    ensure!(request(&t.client, addr(NODE_IP, 30080))?.is_ok());
    // With the client's range in the list, it answers.
    t.sync(
        &[lb(json!(["203.0.113.0/24", "192.168.77.0/24"]))],
        std::slice::from_ref(&slice),
    )?;
    ensure!(request(&t.client, addr("198.51.100.101", 80))?.is_ok());
    Ok(())
}

#[test]
fn external_traffic_policy_local_drops_without_a_local_endpoint() -> Result<()> {
    let mut t = Topology::new()?;
    let svc = web(json!({"type": "NodePort", "externalTrafficPolicy": "Local",
        "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}]}));
    t.sync(
        std::slice::from_ref(&svc),
        &[web_slice(json!([ep(1, "node-b")]))],
    )?;
    let answer = request(&t.client, addr(NODE_IP, 30080))?;
    let kind = answer.as_ref().err().map(std::io::Error::kind);
    ensure!(
        matches!(kind, Some(ErrorKind::TimedOut | ErrorKind::WouldBlock)),
        "not dropped: {answer:?}"
    );
    // Pods are not subject to the policy; the ClusterIP still reaches every endpoint.
    ensure!(request(&t.pods[0], addr("10.42.0.1", 30080))?.is_ok());
    ensure!(request(&t.client, addr("10.43.0.10", 80))?.is_ok());

    // With a local endpoint, only it answers, and the client's address is kept.
    let report = t.sync(&[svc], &[web_slice(json!([ep(1, "node-b"), ep(2, NODE)]))])?;
    ensure!(!report.full, "{report:?}");
    let seen = names(requests(&t.client, addr(NODE_IP, 30080), 10)?)?;
    ensure!(seen == BTreeSet::from(["pod2".to_owned()]), "{seen:?}");
    let source = peer(request(&t.client, addr(NODE_IP, 30080))?)?;
    ensure!(
        source == "192.168.77.2",
        "the client's address was not kept: {source}"
    );
    Ok(())
}

#[test]
fn internal_traffic_policy_local_uses_only_local_endpoints() -> Result<()> {
    let mut t = Topology::new()?;
    let svc = web(json!({"internalTrafficPolicy": "Local"}));
    t.sync(
        std::slice::from_ref(&svc),
        &[web_slice(json!([ep(0, "node-b"), ep(1, NODE)]))],
    )?;
    let seen = names(requests(&t.client, addr("10.43.0.10", 80), 10)?)?;
    ensure!(seen == BTreeSet::from(["pod1".to_owned()]), "{seen:?}");
    // No local endpoint: dropped (not rejected, the Service has endpoints elsewhere).
    t.sync(&[svc], &[web_slice(json!([ep(0, "node-b")]))])?;
    let answer = request(&t.client, addr("10.43.0.10", 80))?;
    ensure!(
        answer.is_err()
            && answer.as_ref().err().map(std::io::Error::kind)
                != Some(ErrorKind::ConnectionRefused),
        "{answer:?}"
    );
    Ok(())
}

#[test]
fn a_deleted_table_is_replaced_in_full_and_remove_table_leaves_nothing() -> Result<()> {
    let mut t = Topology::new()?;
    let services = [web(json!({}))];
    let slices = [web_slice(json!([ep(0, NODE)]))];
    t.sync(&services, &slices)?;
    t.node
        .exec(&["nft", "delete", "table", "ip", &t.config.table])?;
    ensure!(request(&t.client, addr("10.43.0.10", 80))?.is_err());
    ensure!(!t.proxier.check_table()?, "the table should be gone");
    let report = t.sync(&services, &slices)?;
    ensure!(report.full, "{report:?}");
    ensure!(request(&t.client, addr("10.43.0.10", 80))?.is_ok());

    // Another table in the namespace is never touched.
    t.node
        .exec(&["nft", "add", "table", "ip", "someone-else"])?;
    remove_table(&t.config.nft, &t.config.table)?;
    remove_table(&t.config.nft, &t.config.table)?;
    let tables = t.node.exec(&["nft", "list", "tables"])?;
    ensure!(tables.trim() == "table ip someone-else", "{tables}");
    Ok(())
}

#[test]
fn apply_and_render_errors_are_errors() -> Result<()> {
    let t = Topology::new()?;
    // nft refuses the script: an error, and the next sync is a full replace.
    let mut bad = Proxier::new(&Config {
        nft: vec!["false".to_owned()],
        ..t.config.clone()
    })?;
    ensure!(bad.sync(&[], &[]).is_err());
    ensure!(bad.last_applied().is_none());
    let nft = skiff_proxy::Nft::new(t.config.nft.clone())?;
    let err = nft
        .apply("add chain ip nowhere x\n")
        .err()
        .context("a bad script applied")?;
    ensure!(err.to_string().contains("nft failed"), "{err}");
    ensure!(Proxier::new(&Config {
        table: "bad table".to_owned(),
        ..t.config.clone()
    })
    .is_err());
    ensure!(Proxier::new(&Config {
        nft: vec![],
        ..t.config.clone()
    })
    .is_err());
    ensure!(remove_table(&t.config.nft, "x;flush ruleset").is_err());
    Ok(())
}
