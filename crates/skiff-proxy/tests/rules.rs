//! The pure layers, without nft: the model (slices joined, deduplicated, named ports,
//! readiness, the terminating fallback, Local policies), the rendered scripts (snapshots) and
//! the incremental diff (one endpoint change touches only that Service's chains and elements).

mod support;

use expect_test::expect;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{json, Value};
use skiff_proxy::model::{self, Protocol, ServicePortModel};
use skiff_proxy::render::{self, RenderConfig};
use skiff_proxy::{script, ServiceInfo, SliceInfo};

fn models(services: &[Service], slices: &[EndpointSlice]) -> Vec<ServicePortModel> {
    let services: Vec<ServiceInfo> = services
        .iter()
        .filter_map(ServiceInfo::from_service)
        .collect();
    let slices: Vec<SliceInfo> = slices.iter().filter_map(SliceInfo::from_slice).collect();
    model::build(&services, &slices, "node-a")
}

fn config() -> RenderConfig {
    RenderConfig {
        table: "skiff".to_owned(),
        cluster_cidr: "10.42.0.0/16".parse::<Ipv4Net>().expect("a CIDR"),
    }
}

fn ep(
    ip: &str,
    node: &str,
    ready: Option<bool>,
    serving: Option<bool>,
    terminating: Option<bool>,
) -> Value {
    let mut conditions = serde_json::Map::new();
    for (k, v) in [
        ("ready", ready),
        ("serving", serving),
        ("terminating", terminating),
    ] {
        if let Some(v) = v {
            conditions.insert(k.to_owned(), json!(v));
        }
    }
    json!({"addresses": [ip], "nodeName": node, "conditions": conditions})
}

fn ips(which: &[&model::Endpoint]) -> Vec<String> {
    which.iter().map(|e| e.ip.to_string()).collect()
}

fn two_ports() -> Service {
    support::service(
        "ns",
        "web",
        json!({"clusterIP": "10.43.0.10", "ports": [
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 5353},
        ]}),
    )
}

#[test]
fn slices_are_joined_by_label_deduplicated_and_matched_by_port_name() {
    let mut udp = support::slice(
        "ns",
        "web-2",
        "web",
        &[],
        json!([ep("10.42.0.12", "node-a", None, None, None)]),
    );
    udp.ports =
        serde_json::from_value(json!([{"name": "dns", "port": 5353, "protocol": "UDP"}])).ok();
    let slices = [
        support::slice(
            "ns",
            "web-1",
            "web",
            &[("http", 8080)],
            json!([
                ep("10.42.0.10", "node-a", Some(false), None, None),
                ep("10.42.0.11", "node-b", None, None, None),
            ]),
        ),
        // The same address in another slice: counted once, the ready copy wins.
        support::slice(
            "ns",
            "web-3",
            "web",
            &[("http", 8080)],
            json!([ep("10.42.0.10", "node-a", Some(true), None, None),]),
        ),
        udp,
        // Another Service's slice, and one in another namespace.
        support::slice(
            "ns",
            "other-1",
            "other",
            &[("http", 9090)],
            json!([ep("10.42.0.99", "node-a", None, None, None)]),
        ),
        support::slice(
            "elsewhere",
            "web-1",
            "web",
            &[("http", 9090)],
            json!([ep("10.42.0.98", "node-a", None, None, None)]),
        ),
    ];
    let headless = support::service(
        "ns",
        "headless",
        json!({"clusterIP": "None", "ports": [{"port": 80}]}),
    );
    let external = support::service(
        "ns",
        "ext",
        json!({"type": "ExternalName", "externalName": "example.com"}),
    );
    let m = models(&[two_ports(), headless, external], &slices);
    assert_eq!(m.len(), 2, "{m:#?}");
    let (dns, http) = (&m[0], &m[1]);
    assert_eq!(
        (dns.port_id.as_str(), dns.protocol, dns.port),
        ("dns", Protocol::Udp, 53)
    );
    assert_eq!(
        dns.endpoints
            .iter()
            .map(|e| (e.ip.to_string(), e.port))
            .collect::<Vec<_>>(),
        [("10.42.0.12".to_owned(), 5353)]
    );
    assert_eq!(http.port_id, "http");
    let eps: Vec<_> = http
        .endpoints
        .iter()
        .map(|e| (e.ip.to_string(), e.port, e.ready, e.local))
        .collect();
    assert_eq!(
        eps,
        [
            ("10.42.0.10".to_owned(), 8080, true, true),
            ("10.42.0.11".to_owned(), 8080, true, false)
        ]
    );
}

#[test]
fn readiness_and_the_terminating_fallback() {
    let svc = || {
        support::service(
            "ns",
            "web",
            json!({"clusterIP": "10.43.0.10", "ports": [{"port": 80}]}),
        )
    };
    let slice = |eps: Value| support::slice("ns", "web-1", "web", &[("", 8080)], eps);
    // Ready unset is ready; not ready is never used while anything is ready.
    let m = models(
        &[svc()],
        &[slice(json!([
            ep("10.42.0.1", "node-a", None, None, None),
            ep("10.42.0.2", "node-a", Some(false), Some(false), None),
            ep("10.42.0.3", "node-a", Some(false), Some(true), Some(true)),
        ]))],
    );
    assert_eq!(m[0].port_id, "80");
    let c = m[0].categorize();
    assert_eq!(ips(&c.cluster), ["10.42.0.1"]);
    assert!(c.has_any);
    // Nothing ready: the serving and terminating ones, never the not-serving ones.
    let m = models(
        &[svc()],
        &[slice(json!([
            ep("10.42.0.2", "node-a", Some(false), Some(false), Some(true)),
            ep("10.42.0.3", "node-a", Some(false), Some(true), Some(true)),
        ]))],
    );
    let c = m[0].categorize();
    assert_eq!(ips(&c.cluster), ["10.42.0.3"]);
    // Only not-ready ones: nothing, the Service has no endpoints.
    let m = models(
        &[svc()],
        &[slice(json!([ep(
            "10.42.0.2",
            "node-a",
            Some(false),
            None,
            None
        )]))],
    );
    let c = m[0].categorize();
    assert!(c.cluster.is_empty() && !c.has_any);
}

#[test]
fn local_policies_choose_this_nodes_endpoints() {
    let slice = support::slice(
        "ns",
        "web-1",
        "web",
        &[("", 8080)],
        json!([
            ep("10.42.0.1", "node-a", Some(false), Some(true), Some(true)),
            ep("10.42.0.2", "node-b", None, None, None),
            ep("10.42.0.3", "node-b", None, None, None),
        ]),
    );
    let svc = |extra: Value| {
        let mut spec = json!({"clusterIP": "10.43.0.10", "type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]});
        for (k, v) in extra.as_object().into_iter().flatten() {
            spec[k] = v.clone();
        }
        support::service("ns", "web", spec)
    };
    // eTP Local: cluster traffic uses the ready remote ones, local traffic the local
    // terminating one (no local ready endpoint); both get endpoint chains.
    let m = models(
        &[svc(json!({"externalTrafficPolicy": "Local"}))],
        std::slice::from_ref(&slice),
    );
    assert!(m[0].external_policy_local);
    let c = m[0].categorize();
    assert_eq!(ips(&c.cluster), ["10.42.0.2", "10.42.0.3"]);
    assert_eq!(ips(&c.local), ["10.42.0.1"]);
    assert_eq!(ips(&c.all), ["10.42.0.1", "10.42.0.2", "10.42.0.3"]);
    // iTP Local on a ClusterIP Service: only local ones, no cluster chain.
    let clusterip = support::service(
        "ns",
        "web",
        json!({"clusterIP": "10.43.0.10", "internalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
    );
    let m = models(&[clusterip], std::slice::from_ref(&slice));
    let c = m[0].categorize();
    assert!(c.cluster.is_empty());
    assert_eq!(ips(&c.local), ["10.42.0.1"]);
    assert!(c.has_any);
    // eTP Local on a Service nobody reaches from outside means nothing.
    let m = models(
        &[support::service(
            "ns",
            "web",
            json!({"clusterIP": "10.43.0.10", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
        )],
        &[slice],
    );
    assert!(!m[0].external_policy_local);
}

#[test]
fn a_cluster_ip_service_renders_as_upstream() {
    let slices = [support::slice(
        "ns",
        "web-1",
        "web",
        &[("http", 8080)],
        json!([
            ep("10.42.0.10", "node-a", None, None, None),
            ep("10.42.0.11", "node-b", None, None, None),
        ]),
    )];
    let svc = support::service(
        "ns",
        "web",
        json!({"clusterIP": "10.43.0.10", "ports": [{"name": "http", "port": 80}]}),
    );
    let rs = render::render(&models(&[svc], &slices), &config()).expect("renders");
    expect![[r#"
        add table ip skiff
        delete table ip skiff
        add table ip skiff
        add chain ip skiff cluster-ips-check
        add chain ip skiff filter-forward { type filter hook forward priority -110; }
        add chain ip skiff filter-input { type filter hook input priority -110; }
        add chain ip skiff filter-output { type filter hook output priority -110; }
        add chain ip skiff filter-output-post-dnat { type filter hook output priority -90; }
        add chain ip skiff filter-prerouting { type filter hook prerouting priority -110; }
        add chain ip skiff firewall-check
        add chain ip skiff mark-for-masquerade
        add chain ip skiff masquerading
        add chain ip skiff nat-output { type nat hook output priority -100; }
        add chain ip skiff nat-postrouting { type nat hook postrouting priority 100; }
        add chain ip skiff nat-prerouting { type nat hook prerouting priority -100; }
        add chain ip skiff nodeport-endpoints-check
        add chain ip skiff reject-chain
        add chain ip skiff service-endpoints-check
        add chain ip skiff services
        add chain ip skiff service-ns/web/tcp/http
        add set ip skiff cluster-ips { type ipv4_addr; }
        add map ip skiff firewall-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
        add set ip skiff hairpin-endpoints { type ipv4_addr . ipv4_addr; }
        add map ip skiff no-endpoint-nodeports { type inet_proto . inet_service : verdict; }
        add map ip skiff no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict; }
        add map ip skiff service-ips { type ipv4_addr . inet_proto . inet_service : verdict; }
        add map ip skiff service-nodeports { type inet_proto . inet_service : verdict; }
        add rule ip skiff cluster-ips-check ip daddr @cluster-ips reject
        add rule ip skiff filter-forward ct state new jump service-endpoints-check
        add rule ip skiff filter-forward ct state new jump cluster-ips-check
        add rule ip skiff filter-input ct state new jump nodeport-endpoints-check
        add rule ip skiff filter-input ct state new jump service-endpoints-check
        add rule ip skiff filter-output ct state new jump service-endpoints-check
        add rule ip skiff filter-output ct state new jump firewall-check
        add rule ip skiff filter-output-post-dnat ct state new jump cluster-ips-check
        add rule ip skiff filter-prerouting ct state new jump firewall-check
        add rule ip skiff firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips
        add rule ip skiff mark-for-masquerade mark set mark or 0x4000
        add rule ip skiff masquerading ct status dnat ip saddr . ip daddr @hairpin-endpoints jump mark-for-masquerade
        add rule ip skiff masquerading mark and 0x4000 == 0 return
        add rule ip skiff masquerading mark set mark xor 0x4000
        add rule ip skiff masquerading masquerade fully-random
        add rule ip skiff nat-output jump services
        add rule ip skiff nat-postrouting jump masquerading
        add rule ip skiff nat-prerouting jump services
        add rule ip skiff nodeport-endpoints-check fib daddr type local meta l4proto . th dport vmap @no-endpoint-nodeports
        add rule ip skiff reject-chain reject
        add rule ip skiff service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services
        add rule ip skiff services ip daddr . meta l4proto . th dport vmap @service-ips
        add rule ip skiff services fib daddr type local meta l4proto . th dport vmap @service-nodeports
        add rule ip skiff service-ns/web/tcp/http ip daddr 10.43.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
        add rule ip skiff service-ns/web/tcp/http numgen random mod 2 0 meta l4proto tcp dnat to 10.42.0.10:8080
        add rule ip skiff service-ns/web/tcp/http meta l4proto tcp dnat to 10.42.0.11:8080
        add element ip skiff cluster-ips { 10.43.0.10 }
        add element ip skiff hairpin-endpoints { 10.42.0.10 . 10.42.0.10, 10.42.0.11 . 10.42.0.11 }
        add element ip skiff service-ips { 10.43.0.10 . tcp . 80 : goto service-ns/web/tcp/http }
    "#]]
    .assert_eq(&script::full(&rs));
}

/// Only the per-Service lines of a full script (the fixed part is in the test above).
fn service_lines(script: &str) -> String {
    script
        .lines()
        .filter(|l| l.contains("ns/") || l.contains("element"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn node_port_external_ips_local_policy_affinity_and_source_ranges_render_as_upstream() {
    let svc = support::service_with_status(
        "ns",
        "lb",
        json!({"clusterIP": "10.43.0.20", "type": "LoadBalancer", "externalTrafficPolicy": "Local",
               "externalIPs": ["198.51.100.1"], "sessionAffinity": "ClientIP",
               "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
               "loadBalancerSourceRanges": ["192.0.2.0/24", "bogus", " 203.0.113.7/32 "],
               "ports": [{"port": 443, "nodePort": 30443, "protocol": "SCTP"}]}),
        json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.2"}, {"hostname": "lb.example"}]}}),
    );
    let mut slice = support::slice(
        "ns",
        "lb-1",
        "lb",
        &[],
        json!([
            ep("10.42.0.10", "node-a", None, None, None),
            ep("10.42.0.11", "node-b", None, None, None),
        ]),
    );
    slice.ports = serde_json::from_value(json!([{"port": 8443, "protocol": "SCTP"}])).ok();
    let rs = render::render(&models(&[svc], &[slice]), &config()).expect("renders");
    expect![[r#"
        add chain ip skiff endpoint-ns/lb/sctp/443__10.42.0.10/8443
        add chain ip skiff endpoint-ns/lb/sctp/443__10.42.0.11/8443
        add chain ip skiff external-ns/lb/sctp/443
        add chain ip skiff firewall-ns/lb/sctp/443
        add chain ip skiff local-ns/lb/sctp/443
        add chain ip skiff service-ns/lb/sctp/443
        add set ip skiff affinity-ns/lb/sctp/443__10.42.0.10/8443 { type ipv4_addr; flags dynamic,timeout; timeout 60s; }
        add set ip skiff affinity-ns/lb/sctp/443__10.42.0.11/8443 { type ipv4_addr; flags dynamic,timeout; timeout 60s; }
        add rule ip skiff endpoint-ns/lb/sctp/443__10.42.0.10/8443 update @affinity-ns/lb/sctp/443__10.42.0.10/8443 { ip saddr }
        add rule ip skiff endpoint-ns/lb/sctp/443__10.42.0.10/8443 meta l4proto sctp dnat to 10.42.0.10:8443
        add rule ip skiff endpoint-ns/lb/sctp/443__10.42.0.11/8443 update @affinity-ns/lb/sctp/443__10.42.0.11/8443 { ip saddr }
        add rule ip skiff endpoint-ns/lb/sctp/443__10.42.0.11/8443 meta l4proto sctp dnat to 10.42.0.11:8443
        add rule ip skiff external-ns/lb/sctp/443 ip saddr 10.42.0.0/16 goto service-ns/lb/sctp/443
        add rule ip skiff external-ns/lb/sctp/443 fib saddr type local jump mark-for-masquerade
        add rule ip skiff external-ns/lb/sctp/443 fib saddr type local goto service-ns/lb/sctp/443
        add rule ip skiff external-ns/lb/sctp/443 goto local-ns/lb/sctp/443
        add rule ip skiff firewall-ns/lb/sctp/443 ip saddr != { 192.0.2.0/24, 203.0.113.7/32 } drop
        add rule ip skiff local-ns/lb/sctp/443 ip saddr @affinity-ns/lb/sctp/443__10.42.0.10/8443 goto endpoint-ns/lb/sctp/443__10.42.0.10/8443
        add rule ip skiff local-ns/lb/sctp/443 goto endpoint-ns/lb/sctp/443__10.42.0.10/8443
        add rule ip skiff service-ns/lb/sctp/443 ip daddr 10.43.0.20 sctp dport 443 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
        add rule ip skiff service-ns/lb/sctp/443 ip saddr @affinity-ns/lb/sctp/443__10.42.0.10/8443 goto endpoint-ns/lb/sctp/443__10.42.0.10/8443
        add rule ip skiff service-ns/lb/sctp/443 ip saddr @affinity-ns/lb/sctp/443__10.42.0.11/8443 goto endpoint-ns/lb/sctp/443__10.42.0.11/8443
        add rule ip skiff service-ns/lb/sctp/443 numgen random mod 2 0 goto endpoint-ns/lb/sctp/443__10.42.0.10/8443
        add rule ip skiff service-ns/lb/sctp/443 goto endpoint-ns/lb/sctp/443__10.42.0.11/8443
        add element ip skiff cluster-ips { 10.43.0.20 }
        add element ip skiff firewall-ips { 198.51.100.2 . sctp . 443 : goto firewall-ns/lb/sctp/443 }
        add element ip skiff hairpin-endpoints { 10.42.0.10 . 10.42.0.10, 10.42.0.11 . 10.42.0.11 }
        add element ip skiff service-ips { 10.43.0.20 . sctp . 443 : goto service-ns/lb/sctp/443, 198.51.100.1 . sctp . 443 : goto external-ns/lb/sctp/443, 198.51.100.2 . sctp . 443 : goto external-ns/lb/sctp/443 }
        add element ip skiff service-nodeports { sctp . 30443 : goto external-ns/lb/sctp/443 }
    "#]]
    .assert_eq(&service_lines(&script::full(&rs)));
}

#[test]
fn services_without_usable_endpoints_reject_or_drop() {
    let np = |name: &str, extra: Value| {
        let mut spec = json!({"clusterIP": "10.43.0.30", "type": "NodePort", "externalIPs": ["198.51.100.9"],
                              "ports": [{"port": 80, "nodePort": 30090}]});
        for (k, v) in extra.as_object().into_iter().flatten() {
            spec[k] = v.clone();
        }
        support::service("ns", name, spec)
    };
    // No endpoints at all: everything rejected, no chains.
    let rs = render::render(&models(&[np("none", json!({}))], &[]), &config()).expect("renders");
    expect![[r#"
        add element ip skiff cluster-ips { 10.43.0.30 }
        add element ip skiff no-endpoint-nodeports { tcp . 30090 : goto reject-chain }
        add element ip skiff no-endpoint-services { 10.43.0.30 . tcp . 80 : goto reject-chain, 198.51.100.9 . tcp . 80 : goto reject-chain }
    "#]]
    .assert_eq(&service_lines(&script::full(&rs)));
    // Endpoints only elsewhere, both policies Local: dropped, not rejected. No policy is
    // Cluster, so there is no chain for pods and the node to short-circuit to either.
    let slice = support::slice(
        "ns",
        "l-1",
        "l",
        &[("", 8080)],
        json!([ep("10.42.0.10", "node-b", None, None, None)]),
    );
    let rs = render::render(
        &models(
            &[np(
                "l",
                json!({"externalTrafficPolicy": "Local", "internalTrafficPolicy": "Local"}),
            )],
            &[slice],
        ),
        &config(),
    )
    .expect("renders");
    expect![[r#"
        add chain ip skiff external-ns/l/tcp/80
        add rule ip skiff external-ns/l/tcp/80 fib saddr type local jump mark-for-masquerade
        add element ip skiff cluster-ips { 10.43.0.30 }
        add element ip skiff hairpin-endpoints { 10.42.0.10 . 10.42.0.10 }
        add element ip skiff no-endpoint-nodeports { tcp . 30090 : drop }
        add element ip skiff no-endpoint-services { 10.43.0.30 . tcp . 80 : drop, 198.51.100.9 . tcp . 80 : drop }
        add element ip skiff service-ips { 198.51.100.9 . tcp . 80 : goto external-ns/l/tcp/80 }
        add element ip skiff service-nodeports { tcp . 30090 : goto external-ns/l/tcp/80 }
    "#]]
    .assert_eq(&service_lines(&script::full(&rs)));
}

#[test]
fn one_endpoint_change_touches_only_its_service() {
    let services: Vec<Service> = (0..3)
        .map(|i| {
            support::service(
                "ns",
                &format!("s{i}"),
                json!({"clusterIP": format!("10.43.0.{}", i + 1), "ports": [{"port": 80}]}),
            )
        })
        .collect();
    let slices = |last: &str| -> Vec<EndpointSlice> {
        (0..3)
            .map(|i| {
                let second = if i == 1 {
                    last.to_owned()
                } else {
                    format!("10.42.{i}.2")
                };
                support::slice(
                    "ns",
                    &format!("s{i}-1"),
                    &format!("s{i}"),
                    &[("", 8080)],
                    json!([
                        ep(&format!("10.42.{i}.1"), "node-a", None, None, None),
                        ep(&second, "node-a", None, None, None),
                    ]),
                )
            })
            .collect()
    };
    let old = render::render(&models(&services, &slices("10.42.1.2")), &config()).expect("renders");
    let new = render::render(&models(&services, &slices("10.42.1.9")), &config()).expect("renders");
    expect![[r#"
        flush chain ip skiff service-ns/s1/tcp/80
        add rule ip skiff service-ns/s1/tcp/80 ip daddr 10.43.0.2 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade
        add rule ip skiff service-ns/s1/tcp/80 numgen random mod 2 0 meta l4proto tcp dnat to 10.42.1.1:8080
        add rule ip skiff service-ns/s1/tcp/80 meta l4proto tcp dnat to 10.42.1.9:8080
        delete element ip skiff hairpin-endpoints { 10.42.1.2 . 10.42.1.2 }
        add element ip skiff hairpin-endpoints { 10.42.1.9 . 10.42.1.9 }
    "#]]
    .assert_eq(&script::incremental(&old, &new).expect("incremental"));
    assert_eq!(script::incremental(&new, &new).as_deref(), Some(""));

    // The Service loses its endpoints: its map element moves, its chains go.
    let mut none = slices("10.42.1.2");
    none[1].endpoints.clear();
    let gone = render::render(&models(&services, &none), &config()).expect("renders");
    expect![[r#"
        delete element ip skiff hairpin-endpoints { 10.42.1.1 . 10.42.1.1, 10.42.1.2 . 10.42.1.2 }
        delete element ip skiff service-ips { 10.43.0.2 . tcp . 80 }
        add element ip skiff no-endpoint-services { 10.43.0.2 . tcp . 80 : goto reject-chain }
        flush chain ip skiff service-ns/s1/tcp/80
        delete chain ip skiff service-ns/s1/tcp/80
    "#]]
    .assert_eq(&script::incremental(&old, &gone).expect("incremental"));

    // Another table, or a changed set definition: no diff, a full replace.
    let other = render::render(
        &models(&services, &slices("10.42.1.2")),
        &RenderConfig {
            table: "other".to_owned(),
            ..config()
        },
    )
    .expect("renders");
    assert!(script::incremental(&old, &other).is_none());
}

#[test]
fn invalid_names_are_render_errors() {
    let mut m = models(&[two_ports()], &[]);
    m[0].name = "web; flush ruleset".to_owned();
    assert!(render::render(&m, &config()).is_err());
    assert!(render::render(
        &[],
        &RenderConfig {
            table: "".to_owned(),
            ..config()
        }
    )
    .is_err());
}
