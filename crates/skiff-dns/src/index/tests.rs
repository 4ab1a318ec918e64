//! The index by table: every record type, NXDOMAIN with the SOA, NODATA, case, search
//! path names, and the deletes that take names away.

use super::*;
use serde_json::json;

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn service(value: serde_json::Value) -> Service {
    serde_json::from_value(value).unwrap()
}

fn slice(value: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(value).unwrap()
}

/// `default` and `db` namespaces; `web` ClusterIP (http/TCP 80, dns/UDP 53) with a slice;
/// `nginx` headless with a StatefulSet's hostnames (one not ready); `ext` ExternalName;
/// `dual` with an IPv4 and an IPv6 ClusterIP; `pub` headless publishing not-ready pods.
fn cluster() -> Index {
    let mut index = Index::new("cluster.local");
    index.apply_namespace("default");
    index.apply_namespace("db");
    index.apply_service(&service(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20"], "type": "ClusterIP",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                           {"name": "dns", "port": 53, "protocol": "UDP"}]}
    })));
    index.apply_slice(&slice(json!({
        "metadata": {"name": "web-abc", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.42.0.5"], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    })));
    index.apply_service(&service(json!({
        "metadata": {"name": "nginx", "namespace": "default"},
        "spec": {"clusterIP": "None", "clusterIPs": ["None"],
                 "ports": [{"name": "web", "port": 80, "protocol": "TCP"}]}
    })));
    index.apply_slice(&slice(json!({
        "metadata": {"name": "nginx-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "nginx"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.42.1.2"], "hostname": "web-0", "conditions": {"ready": true}},
            {"addresses": ["10.42.1.3"], "hostname": "web-1"},
            {"addresses": ["10.42.1.4"], "hostname": "web-2", "conditions": {"ready": false}},
            {"addresses": ["10.42.1.9"]}
        ],
        "ports": [{"name": "web", "port": 80, "protocol": "TCP"}]
    })));
    index.apply_service(&service(json!({
        "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "Example.COM."}
    })));
    index.apply_service(&service(json!({
        "metadata": {"name": "dual", "namespace": "db"},
        "spec": {"clusterIP": "10.43.0.30", "clusterIPs": ["10.43.0.30", "fd00:43::30"],
                 "ports": [{"port": 5432}]}
    })));
    index.apply_service(&service(json!({
        "metadata": {"name": "pub", "namespace": "db"},
        "spec": {"clusterIP": "None", "publishNotReadyAddresses": true}
    })));
    index.apply_slice(&slice(json!({
        "metadata": {"name": "pub-1", "namespace": "db",
                     "labels": {"kubernetes.io/service-name": "pub"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.42.2.7"], "conditions": {"ready": false}}]
    })));
    index.set_synced(true);
    index
}

fn answer(index: &Index, qname: &str, qtype: RecordType) -> Answer {
    match index.lookup(&name(qname), qtype) {
        Lookup::Answer(a) => a,
        Lookup::Forward => panic!("{qname} {qtype} was forwarded"),
    }
}

/// The answer section as `name TTL TYPE data` lines.
fn lines(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn cluster_ip_service_a() {
    let index = cluster();
    let a = answer(&index, "web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.code, ResponseCode::NoError);
    // Two ports, one address: deduplicated.
    assert_eq!(
        lines(&a.answers),
        ["web.default.svc.cluster.local. 5 A 10.43.0.20"]
    );
    assert!(a.authorities.is_empty());
}

#[test]
fn names_are_case_insensitive_and_answered_as_asked() {
    let index = cluster();
    let a = answer(&index, "WEB.Default.SVC.Cluster.Local.", RecordType::A);
    assert_eq!(
        lines(&a.answers),
        ["WEB.Default.SVC.Cluster.Local. 5 A 10.43.0.20"]
    );
}

#[test]
fn ipv6_cluster_ips_answer_aaaa() {
    let index = cluster();
    let a = answer(&index, "dual.db.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&a.answers),
        ["dual.db.svc.cluster.local. 5 A 10.43.0.30"]
    );
    let aaaa = answer(&index, "dual.db.svc.cluster.local.", RecordType::AAAA);
    assert_eq!(
        lines(&aaaa.answers),
        ["dual.db.svc.cluster.local. 5 AAAA fd00:43::30"]
    );
}

#[test]
fn nodata_when_the_name_exists_but_not_the_type() {
    let index = cluster();
    for (qname, qtype) in [
        ("web.default.svc.cluster.local.", RecordType::AAAA),
        ("web.default.svc.cluster.local.", RecordType::MX),
        ("web.default.svc.cluster.local.", RecordType::TXT),
        ("web.default.svc.cluster.local.", RecordType::CNAME),
        ("default.svc.cluster.local.", RecordType::A),
        ("svc.cluster.local.", RecordType::A),
        ("cluster.local.", RecordType::A),
    ] {
        let a = answer(&index, qname, qtype);
        assert_eq!(a.code, ResponseCode::NoError, "{qname} {qtype}");
        assert!(a.answers.is_empty(), "{qname} {qtype}");
        assert_eq!(a.authorities.len(), 1, "{qname} {qtype}: the SOA");
        assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
    }
}

#[test]
fn nxdomain_with_coredns_soa() {
    let index = cluster();
    for qname in [
        "nope.default.svc.cluster.local.",
        "web.nons.svc.cluster.local.",
        "nons.svc.cluster.local.",
        "foo.cluster.local.",
        "a.b.c.d.web.default.svc.cluster.local.",
        "_http._udp.web.default.svc.cluster.local.",
        "_nope._tcp.web.default.svc.cluster.local.",
        "web-7.nginx.default.svc.cluster.local.",
        "web-2.nginx.default.svc.cluster.local.",
        "x.web.nginx.default.svc.cluster.local.",
        "not-an-ip.default.pod.cluster.local.",
        "1-2-3-4.nons.pod.cluster.local.",
    ] {
        let a = answer(&index, qname, RecordType::A);
        assert_eq!(a.code, ResponseCode::NXDomain, "{qname}");
        assert!(a.answers.is_empty(), "{qname}");
        let soa = &a.authorities[0];
        assert_eq!(soa.name, name("cluster.local."), "{qname}");
        assert_eq!(soa.ttl, 5);
        let RData::SOA(soa) = &soa.data else {
            panic!("not an SOA")
        };
        assert_eq!(soa.mname, name("ns.dns.cluster.local."));
        assert_eq!(soa.rname, name("hostmaster.cluster.local."));
        assert_eq!(
            (soa.refresh, soa.retry, soa.expire, soa.minimum),
            (7200, 1800, 86400, 5)
        );
    }
    // The SOA's owner keeps the question's spelling of the zone.
    let a = answer(&index, "nope.default.svc.Cluster.LOCAL.", RecordType::A);
    assert_eq!(a.authorities[0].name.to_string(), "Cluster.LOCAL.");
}

#[test]
fn search_path_expansions_are_nxdomain_never_forwarded() {
    let index = cluster();
    for qname in [
        "web.default.svc.cluster.local.default.svc.cluster.local.",
        "web.default.svc.cluster.local.svc.cluster.local.",
        "web.default.svc.cluster.local.cluster.local.",
        "example.com.default.svc.cluster.local.",
        "example.com.svc.cluster.local.",
        "example.com.cluster.local.",
    ] {
        let a = answer(&index, qname, RecordType::A);
        assert_eq!(a.code, ResponseCode::NXDomain, "{qname}");
        let a = answer(&index, qname, RecordType::AAAA);
        assert_eq!(a.code, ResponseCode::NXDomain, "{qname}");
    }
}

#[test]
fn servfail_instead_of_nxdomain_before_sync() {
    let mut index = cluster();
    index.set_synced(false);
    let a = answer(&index, "nope.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.code, ResponseCode::ServFail);
    // What it knows it answers.
    let a = answer(&index, "web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.code, ResponseCode::NoError);
}

#[test]
fn headless_service_answers_ready_endpoints() {
    let index = cluster();
    let a = answer(&index, "nginx.default.svc.cluster.local.", RecordType::A);
    // web-2 is not ready; ready nil counts as ready.
    assert_eq!(
        sorted(lines(&a.answers)),
        [
            "nginx.default.svc.cluster.local. 5 A 10.42.1.2",
            "nginx.default.svc.cluster.local. 5 A 10.42.1.3",
            "nginx.default.svc.cluster.local. 5 A 10.42.1.9",
        ]
    );
    // publishNotReadyAddresses: all of them.
    let a = answer(&index, "pub.db.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&a.answers),
        ["pub.db.svc.cluster.local. 5 A 10.42.2.7"]
    );
}

#[test]
fn headless_without_ready_endpoints_is_nxdomain() {
    let mut index = cluster();
    index.delete_slice("default", "nginx-1");
    let a = answer(&index, "nginx.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.code, ResponseCode::NXDomain);
}

#[test]
fn endpoint_hostnames_and_dashed_addresses() {
    let index = cluster();
    let a = answer(
        &index,
        "web-0.nginx.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        lines(&a.answers),
        ["web-0.nginx.default.svc.cluster.local. 5 A 10.42.1.2"]
    );
    let a = answer(
        &index,
        "Web-1.Nginx.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        lines(&a.answers),
        ["Web-1.Nginx.default.svc.cluster.local. 5 A 10.42.1.3"]
    );
    // Without a hostname, the address with dashes names the endpoint.
    let a = answer(
        &index,
        "10-42-1-9.nginx.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        lines(&a.answers),
        ["10-42-1-9.nginx.default.svc.cluster.local. 5 A 10.42.1.9"]
    );
    // Endpoint names work for ClusterIP Services too (CoreDNS's endpoint query).
    let a = answer(
        &index,
        "10-42-0-5.web.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        lines(&a.answers),
        ["10-42-0-5.web.default.svc.cluster.local. 5 A 10.42.0.5"]
    );
}

#[test]
fn srv_for_cluster_ip_named_ports() {
    let index = cluster();
    let a = answer(
        &index,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        lines(&a.answers),
        ["_http._tcp.web.default.svc.cluster.local. 5 SRV 0 100 80 web.default.svc.cluster.local."]
    );
    assert_eq!(
        lines(&a.additionals),
        ["web.default.svc.cluster.local. 5 A 10.43.0.20"]
    );
    let a = answer(
        &index,
        "_DNS._UDP.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        lines(&a.answers),
        ["_DNS._UDP.web.default.svc.cluster.local. 5 SRV 0 100 53 web.default.svc.cluster.local."]
    );
    // The Service's own name: one per port.
    let a = answer(&index, "web.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(
        sorted(lines(&a.answers)),
        [
            "web.default.svc.cluster.local. 5 SRV 0 50 53 web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. 5 SRV 0 50 80 web.default.svc.cluster.local.",
        ]
    );
    // A port-qualified name answers A too.
    let a = answer(
        &index,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        lines(&a.answers),
        ["_http._tcp.web.default.svc.cluster.local. 5 A 10.43.0.20"]
    );
}

#[test]
fn srv_for_headless_one_per_endpoint() {
    let index = cluster();
    let a = answer(
        &index,
        "_web._tcp.nginx.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        sorted(lines(&a.answers)),
        [
            "_web._tcp.nginx.default.svc.cluster.local. 5 SRV 0 33 80 10-42-1-9.nginx.default.svc.cluster.local.",
            "_web._tcp.nginx.default.svc.cluster.local. 5 SRV 0 33 80 web-0.nginx.default.svc.cluster.local.",
            "_web._tcp.nginx.default.svc.cluster.local. 5 SRV 0 33 80 web-1.nginx.default.svc.cluster.local.",
        ]
    );
    assert_eq!(
        sorted(lines(&a.additionals)),
        [
            "10-42-1-9.nginx.default.svc.cluster.local. 5 A 10.42.1.9",
            "web-0.nginx.default.svc.cluster.local. 5 A 10.42.1.2",
            "web-1.nginx.default.svc.cluster.local. 5 A 10.42.1.3",
        ]
    );
    // A Service without ports has addresses but no SRV: NODATA.
    let a = answer(&index, "pub.db.svc.cluster.local.", RecordType::SRV);
    assert_eq!(a.code, ResponseCode::NoError);
    assert!(a.answers.is_empty());
}

#[test]
fn external_name_is_a_cname() {
    let index = cluster();
    let a = answer(&index, "ext.default.svc.cluster.local.", RecordType::CNAME);
    assert_eq!(
        lines(&a.answers),
        ["ext.default.svc.cluster.local. 5 CNAME example.com."]
    );
    // An address question gets the CNAME and the target to chase upstream.
    let a = answer(&index, "ext.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&a.answers),
        ["ext.default.svc.cluster.local. 5 CNAME example.com."]
    );
    assert_eq!(a.chase, Some(name("example.com.")));
    // No SRV, endpoint or port names under an ExternalName.
    let a = answer(
        &index,
        "_http._tcp.ext.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(a.code, ResponseCode::NXDomain);
}

#[test]
fn external_name_into_the_cluster_is_followed_here() {
    let mut index = cluster();
    index.apply_service(&service(json!({
        "metadata": {"name": "alias", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "web.default.svc.cluster.local"}
    })));
    let a = answer(&index, "alias.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&a.answers),
        [
            "alias.default.svc.cluster.local. 5 CNAME web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. 5 A 10.43.0.20",
        ]
    );
    assert_eq!(a.chase, None);
}

#[test]
fn pods_insecure_mode() {
    let index = cluster();
    let a = answer(
        &index,
        "10-42-0-9.default.pod.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        lines(&a.answers),
        ["10-42-0-9.default.pod.cluster.local. 5 A 10.42.0.9"]
    );
    let a = answer(&index, "fd00-42--9.db.pod.cluster.local.", RecordType::AAAA);
    assert_eq!(
        lines(&a.answers),
        ["fd00-42--9.db.pod.cluster.local. 5 AAAA fd00:42::9"]
    );
    let a = answer(
        &index,
        "10-42-0-9.default.pod.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(a.code, ResponseCode::NoError);
    assert!(a.answers.is_empty());
}

#[test]
fn ptr_for_cluster_ips_and_endpoints() {
    let index = cluster();
    let a = answer(&index, "20.0.43.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        lines(&a.answers),
        ["20.0.43.10.in-addr.arpa. 5 PTR web.default.svc.cluster.local."]
    );
    let a = answer(&index, "2.1.42.10.IN-ADDR.ARPA.", RecordType::PTR);
    assert_eq!(
        lines(&a.answers),
        ["2.1.42.10.IN-ADDR.ARPA. 5 PTR web-0.nginx.default.svc.cluster.local."]
    );
    let a = answer(&index, "5.0.42.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        lines(&a.answers),
        ["5.0.42.10.in-addr.arpa. 5 PTR 10-42-0-5.web.default.svc.cluster.local."]
    );
    let v6 = "0.3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.3.4.0.0.0.0.d.f.ip6.arpa.";
    let a = answer(&index, v6, RecordType::PTR);
    assert_eq!(
        lines(&a.answers),
        [format!("{v6} 5 PTR dual.db.svc.cluster.local.")]
    );
}

#[test]
fn unknown_reverse_names_and_other_domains_are_forwarded() {
    let index = cluster();
    for (qname, qtype) in [
        ("4.1.42.10.in-addr.arpa.", RecordType::PTR), // not ready
        ("8.8.8.8.in-addr.arpa.", RecordType::PTR),
        ("20.0.43.10.in-addr.arpa.", RecordType::A),
        ("43.10.in-addr.arpa.", RecordType::PTR),
        ("example.com.", RecordType::A),
        ("local.", RecordType::A),
        ("cluster.local.example.com.", RecordType::A),
    ] {
        assert_eq!(
            index.lookup(&name(qname), qtype),
            Lookup::Forward,
            "{qname} {qtype}"
        );
    }
}

#[test]
fn apex_soa_ns_and_dns_version() {
    let index = cluster();
    let a = answer(&index, "cluster.local.", RecordType::SOA);
    assert_eq!(a.answers.len(), 1);
    assert_eq!(a.answers[0].record_type(), RecordType::SOA);
    let a = answer(&index, "cluster.local.", RecordType::NS);
    assert_eq!(
        lines(&a.answers),
        ["cluster.local. 5 NS ns.dns.cluster.local."]
    );
    let a = answer(&index, "dns-version.cluster.local.", RecordType::TXT);
    assert_eq!(
        lines(&a.answers),
        ["dns-version.cluster.local. 28800 TXT 1.1.0"]
    );
    let a = answer(&index, "cluster.local.", RecordType::AXFR);
    assert_eq!(a.code, ResponseCode::Refused);
}

#[test]
fn changes_and_deletes() {
    let mut index = cluster();
    // A new slice for web's headless sibling; web's ClusterIP changes; ext goes.
    index.apply_service(&service(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "10.43.0.21", "ports": [{"name": "http", "port": 80}]}
    })));
    let a = answer(&index, "web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        lines(&a.answers),
        ["web.default.svc.cluster.local. 5 A 10.43.0.21"]
    );
    assert_eq!(
        index.lookup(&name("20.0.43.10.in-addr.arpa."), RecordType::PTR),
        Lookup::Forward
    );
    index.delete_service("default", "ext");
    assert_eq!(
        answer(&index, "ext.default.svc.cluster.local.", RecordType::CNAME).code,
        ResponseCode::NXDomain
    );
    // A slice moves to another service: its old service loses it.
    index.apply_slice(&slice(json!({
        "metadata": {"name": "nginx-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "other"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.42.1.2"]}]
    })));
    assert_eq!(
        answer(&index, "nginx.default.svc.cluster.local.", RecordType::A).code,
        ResponseCode::NXDomain
    );
    let a = answer(&index, "2.1.42.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(
        lines(&a.answers),
        ["2.1.42.10.in-addr.arpa. 5 PTR 10-42-1-2.other.default.svc.cluster.local."]
    );
    // A namespace that goes takes its names with it.
    index.delete_namespace("db");
    assert_eq!(
        answer(&index, "dual.db.svc.cluster.local.", RecordType::A).code,
        ResponseCode::NXDomain
    );
    index.delete_slice("default", "nginx-1");
    assert_eq!(
        index.lookup(&name("2.1.42.10.in-addr.arpa."), RecordType::PTR),
        Lookup::Forward
    );
    assert!(!index
        .endpoint_ips
        .contains_key(&"10.42.1.2".parse::<IpAddr>().unwrap()));
}

#[test]
fn another_cluster_domain() {
    let mut index = Index::new("Corp.Example.");
    index.apply_namespace("default");
    index.apply_service(&service(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "10.43.0.20", "ports": [{"port": 80}]}
    })));
    index.set_synced(true);
    let a = answer(&index, "web.default.svc.corp.example.", RecordType::A);
    assert_eq!(
        lines(&a.answers),
        ["web.default.svc.corp.example. 5 A 10.43.0.20"]
    );
    assert_eq!(
        index.lookup(&name("web.default.svc.cluster.local."), RecordType::A),
        Lookup::Forward
    );
}
