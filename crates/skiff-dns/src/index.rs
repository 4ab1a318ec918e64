//! The cluster's names: what CoreDNS's `kubernetes` plugin answers (`pods insecure`, as
//! k3s configures it), kept from Services, EndpointSlices and Namespaces and asked by
//! [`Index::lookup`]. Pure: objects in, DNS records out, no I/O; the watchers
//! (`watch.rs`) feed it and the server (`server.rs`) asks it.
//!
//! Upstream counterparts: CoreDNS `plugin/kubernetes` (`parse.go` for the name grammar,
//! `kubernetes.go` findServices/findPods, `reverse.go`, `handler.go` for NXDOMAIN versus
//! NODATA) and `plugin/backend_lookup.go` (A, SRV, PTR and the SOA), following
//! github:kubernetes/dns `docs/specification.md`.
//!
//! It keeps only what answers need (no objects): a Service's kind, addresses and ports; a
//! slice's service, ports and addresses with their hostname and readiness; namespace
//! names. It does not forward and knows nothing about sockets: names outside the cluster
//! domain, and reverse names it does not know, come back as [`Lookup::Forward`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The TTL of every cluster record (CoreDNS's `ttl` default).
pub const TTL: u32 = 5;
/// The TTL of the `dns-version` TXT record (CoreDNS's).
const VERSION_TTL: u32 = 28800;
/// The schema version in `dns-version.<domain>` (the specification's).
const SCHEMA_VERSION: &str = "1.1.0";
/// The label EndpointSlices name their Service with.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";

/// What the index says about a question.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// The cluster's answer.
    Answer(Answer),
    /// Not the cluster's to answer (outside the domain, or a reverse name it does not
    /// know): ask the upstream resolvers.
    Forward,
}

/// An authoritative answer: the response code and the records of each section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    pub code: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
    /// An ExternalName's target outside the cluster, for an A or AAAA question: the
    /// server resolves it upstream and appends those records after the CNAME (what
    /// CoreDNS's upstream lookup does).
    pub chase: Option<Name>,
}

/// A port as DNS sees it: its name and protocol (for SRV names) and number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Port {
    /// Lowercase; empty when unnamed.
    name: String,
    /// Lowercase (`tcp`, `udp`, `sctp`).
    protocol: String,
    /// `None` for a Service or slice without ports (CoreDNS's port -1: addresses, no SRV).
    number: Option<u16>,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// Its ClusterIPs (empty while none is allocated).
    ClusterIp(Vec<IpAddr>),
    Headless,
    /// The external name, without a trailing dot.
    External(String),
}

#[derive(Debug, Clone, PartialEq)]
struct Svc {
    kind: Kind,
    ports: Vec<Port>,
    publish_not_ready: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Endpoint {
    addresses: Vec<IpAddr>,
    /// Lowercase `hostname` (StatefulSet pods through hostname/subdomain).
    hostname: Option<String>,
    /// `conditions.ready`, nil counting as true.
    ready: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Slice {
    /// The Service (lowercase) in the slice's namespace.
    service: String,
    ports: Vec<Port>,
    endpoints: Vec<Endpoint>,
}

type Key = (String, String);

/// The cluster's names. See the module docs.
#[derive(Debug)]
pub struct Index {
    /// The cluster domain, lowercase, without a trailing dot (`cluster.local`).
    domain: String,
    domain_name: Name,
    namespaces: HashSet<String>,
    services: HashMap<Key, Svc>,
    slices: HashMap<Key, Slice>,
    /// (namespace, service) -> its slices' names.
    slices_of: HashMap<Key, BTreeSet<String>>,
    /// ClusterIP -> its Service.
    cluster_ips: HashMap<IpAddr, Key>,
    /// Endpoint address -> the slices listing it.
    endpoint_ips: HashMap<IpAddr, BTreeSet<Key>>,
    /// Whether every watch listed once: before that, a missing name is SERVFAIL, not
    /// NXDOMAIN (as CoreDNS before its caches sync).
    synced: bool,
    /// The SOA serial: the Unix time of the last change (CoreDNS's `Modified`).
    serial: u32,
}

/// What a name refers to, CoreDNS's `msg.Service`.
#[derive(Debug, Clone)]
enum Entry {
    Address {
        ip: IpAddr,
        port: Option<u16>,
        /// The name an SRV record points to: `svc.ns.svc.<domain>` or
        /// `<endpoint>.svc.ns.svc.<domain>`.
        target: String,
    },
    /// An ExternalName's target.
    Alias(String),
}

/// The name does not exist (CoreDNS's errNoItems / errInvalidRequest).
struct NameError;

impl Index {
    /// An empty index for `domain` (`cluster.local`), not yet synced.
    pub fn new(domain: &str) -> Self {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let domain_name = Name::from_ascii(format!("{domain}.")).unwrap_or_else(|_| Name::root());
        Index {
            domain,
            domain_name,
            namespaces: HashSet::new(),
            services: HashMap::new(),
            slices: HashMap::new(),
            slices_of: HashMap::new(),
            cluster_ips: HashMap::new(),
            endpoint_ips: HashMap::new(),
            synced: false,
            serial: now_serial(),
        }
    }

    /// The cluster domain (lowercase, no trailing dot).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Marks the index complete: names it lacks now really do not exist.
    pub fn set_synced(&mut self, synced: bool) {
        self.synced = synced;
    }

    pub fn is_synced(&self) -> bool {
        self.synced
    }

    fn touch(&mut self) {
        self.serial = now_serial().max(self.serial);
    }

    /// A namespace exists (names in a missing namespace are NXDOMAIN, as CoreDNS).
    pub fn apply_namespace(&mut self, name: &str) {
        if self.namespaces.insert(name.to_ascii_lowercase()) {
            self.touch();
        }
    }

    pub fn delete_namespace(&mut self, name: &str) {
        if self.namespaces.remove(&name.to_ascii_lowercase()) {
            self.touch();
        }
    }

    /// Keeps the namespaces in `names` only (after a relist).
    pub fn retain_namespaces(&mut self, names: &HashSet<String>) {
        self.namespaces.retain(|n| names.contains(n));
        self.touch();
    }

    /// Adds or replaces a Service.
    pub fn apply_service(&mut self, service: &Service) {
        let Some(key) = key_of(&service.metadata) else {
            return;
        };
        let svc = svc_of(service);
        self.remove_service(&key);
        if let Kind::ClusterIp(ips) = &svc.kind {
            for ip in ips {
                self.cluster_ips.insert(*ip, key.clone());
            }
        }
        self.services.insert(key, svc);
        self.touch();
    }

    /// Removes a Service by namespace and name.
    pub fn delete_service(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_ascii_lowercase(), name.to_ascii_lowercase());
        self.remove_service(&key);
        self.touch();
    }

    fn remove_service(&mut self, key: &Key) {
        if let Some(old) = self.services.remove(key) {
            if let Kind::ClusterIp(ips) = old.kind {
                for ip in ips {
                    if self.cluster_ips.get(&ip) == Some(key) {
                        self.cluster_ips.remove(&ip);
                    }
                }
            }
        }
    }

    /// The Services' keys (namespace, name), for a relist.
    pub fn service_keys(&self) -> Vec<(String, String)> {
        self.services.keys().cloned().collect()
    }

    /// Adds or replaces an EndpointSlice (one without the service-name label is ignored).
    pub fn apply_slice(&mut self, slice: &EndpointSlice) {
        let Some(key) = key_of(&slice.metadata) else {
            return;
        };
        self.remove_slice(&key);
        let Some(new) = slice_of(slice) else {
            self.touch();
            return;
        };
        for ep in &new.endpoints {
            for ip in &ep.addresses {
                self.endpoint_ips
                    .entry(*ip)
                    .or_default()
                    .insert(key.clone());
            }
        }
        self.slices_of
            .entry((key.0.clone(), new.service.clone()))
            .or_default()
            .insert(key.1.clone());
        self.slices.insert(key, new);
        self.touch();
    }

    /// Removes an EndpointSlice by namespace and name.
    pub fn delete_slice(&mut self, namespace: &str, name: &str) {
        let key = (namespace.to_ascii_lowercase(), name.to_ascii_lowercase());
        self.remove_slice(&key);
        self.touch();
    }

    fn remove_slice(&mut self, key: &Key) {
        let Some(old) = self.slices.remove(key) else {
            return;
        };
        for ep in &old.endpoints {
            for ip in &ep.addresses {
                if let Some(set) = self.endpoint_ips.get_mut(ip) {
                    set.remove(key);
                    if set.is_empty() {
                        self.endpoint_ips.remove(ip);
                    }
                }
            }
        }
        let of = (key.0.clone(), old.service);
        if let Some(set) = self.slices_of.get_mut(&of) {
            set.remove(&key.1);
            if set.is_empty() {
                self.slices_of.remove(&of);
            }
        }
    }

    /// The slices' keys (namespace, name), for a relist.
    pub fn slice_keys(&self) -> Vec<(String, String)> {
        self.slices.keys().cloned().collect()
    }

    /// Answers `qname`/`qtype`, or says to forward it. Names compare case-insensitively;
    /// records carry `qname` as asked.
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Lookup {
        let labels: Vec<String> = qname
            .iter()
            .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
            .collect();
        let domain: Vec<&str> = self.domain.split('.').filter(|l| !l.is_empty()).collect();
        let in_domain = labels.len() >= domain.len()
            && labels[labels.len() - domain.len()..]
                .iter()
                .zip(&domain)
                .all(|(a, b)| a == b);
        if !in_domain {
            if qtype == RecordType::PTR {
                if let Some(ip) = reverse_address(&labels) {
                    let names = self.reverse(ip);
                    if !names.is_empty() {
                        let answers = names
                            .into_iter()
                            .filter_map(|n| fqdn(&n))
                            .map(|n| record(qname, TTL, RData::PTR(PTR(n))))
                            .collect();
                        return Lookup::Answer(Answer {
                            answers,
                            ..Answer::default()
                        });
                    }
                }
            }
            return Lookup::Forward;
        }
        let base = &labels[..labels.len() - domain.len()];
        Lookup::Answer(self.answer_in_zone(qname, base, qtype))
    }

    fn answer_in_zone(&self, qname: &Name, base: &[String], qtype: RecordType) -> Answer {
        let zone = self.zone_of(qname, base.len());
        let mut answer = Answer::default();
        match qtype {
            RecordType::AXFR | RecordType::IXFR => {
                answer.code = ResponseCode::Refused;
                return answer;
            }
            RecordType::SOA if base.is_empty() => {
                answer.answers.push(self.soa(&zone));
                return answer;
            }
            RecordType::NS if base.is_empty() => {
                if let Some(ns) = fqdn(&format!("ns.dns.{}", self.domain)) {
                    answer.answers.push(record(qname, TTL, RData::NS(NS(ns))));
                }
                return answer;
            }
            RecordType::TXT if base.len() == 1 && base[0] == "dns-version" => {
                let txt = TXT::new(vec![SCHEMA_VERSION.to_owned()]);
                answer
                    .answers
                    .push(record(qname, VERSION_TTL, RData::TXT(txt)));
                return answer;
            }
            _ => {}
        }
        let entries = match self.find(base) {
            Ok(entries) => entries,
            Err(NameError) => return self.name_error(&zone),
        };
        match qtype {
            RecordType::A | RecordType::AAAA => {
                let v4 = qtype == RecordType::A;
                let mut seen = HashSet::new();
                for entry in &entries {
                    match entry {
                        Entry::Address { ip, .. } if ip.is_ipv4() == v4 => {
                            if seen.insert(*ip) {
                                answer.answers.push(address(qname, *ip));
                            }
                        }
                        Entry::Address { .. } => {}
                        Entry::Alias(target) => self.alias(qname, target, qtype, &mut answer),
                    }
                }
            }
            RecordType::CNAME => {
                for entry in &entries {
                    if let Entry::Alias(target) = entry {
                        if let Some(t) = fqdn(target) {
                            answer
                                .answers
                                .push(record(qname, TTL, RData::CNAME(CNAME(t))));
                        }
                    }
                }
            }
            RecordType::SRV => self.srv(qname, &entries, &mut answer),
            _ => {}
        }
        if answer.answers.is_empty() {
            // The name exists but has no records of this type: NODATA, with the SOA.
            answer.authorities.push(self.soa(&zone));
        } else {
            answer.code = ResponseCode::NoError;
        }
        answer
    }

    /// An ExternalName's CNAME, and the target's addresses when the target is in the
    /// cluster (else the server chases it upstream).
    fn alias(&self, qname: &Name, target: &str, qtype: RecordType, answer: &mut Answer) {
        let Some(target_name) = fqdn(target) else {
            return;
        };
        answer
            .answers
            .push(record(qname, TTL, RData::CNAME(CNAME(target_name.clone()))));
        match self.lookup(&target_name, qtype) {
            Lookup::Forward => answer.chase = Some(target_name),
            Lookup::Answer(inner) => {
                // One level only: an ExternalName pointing at another ExternalName in the
                // cluster gets that CNAME, not a chain followed forever.
                answer.answers.extend(
                    inner
                        .answers
                        .into_iter()
                        .filter(|r| r.record_type() != RecordType::CNAME),
                );
            }
        }
    }

    /// SRV records (CoreDNS's plugin.SRV): priority 0, weight 100/n, the target's address
    /// in the additional section.
    fn srv(&self, qname: &Name, entries: &[Entry], answer: &mut Answer) {
        let count = entries
            .iter()
            .filter(|e| matches!(e, Entry::Address { .. }))
            .count();
        if count == 0 {
            return;
        }
        let weight = ((100.0 / count as f64).floor() as u16).max(1);
        let mut seen_srv = HashSet::new();
        let mut seen_extra = HashSet::new();
        for entry in entries {
            let Entry::Address { ip, port, target } = entry else {
                continue;
            };
            let Some(port) = port else {
                continue;
            };
            let Some(target_name) = fqdn(target) else {
                continue;
            };
            if seen_srv.insert((target.clone(), *port)) {
                answer.answers.push(record(
                    qname,
                    TTL,
                    RData::SRV(SRV::new(0, weight, *port, target_name.clone())),
                ));
            }
            if seen_extra.insert((target.clone(), *ip)) {
                answer.additionals.push(address(&target_name, *ip));
            }
        }
    }

    /// NXDOMAIN with the SOA, or SERVFAIL before the watches synced.
    fn name_error(&self, zone: &Name) -> Answer {
        Answer {
            code: if self.synced {
                ResponseCode::NXDomain
            } else {
                ResponseCode::ServFail
            },
            authorities: vec![self.soa(zone)],
            ..Answer::default()
        }
    }

    /// CoreDNS's SOA: `ns.dns.<zone> hostmaster.<zone> <serial> 7200 1800 86400 5`, TTL 5.
    fn soa(&self, zone: &Name) -> Record {
        let mname =
            Name::from_ascii(format!("ns.dns.{}.", self.domain)).unwrap_or_else(|_| Name::root());
        let rname = Name::from_ascii(format!("hostmaster.{}.", self.domain))
            .unwrap_or_else(|_| Name::root());
        let soa = SOA::new(mname, rname, self.serial, 7200, 1800, 86400, TTL);
        record(zone, TTL.min(300), RData::SOA(soa))
    }

    /// The zone as the question spelled it (CoreDNS keeps the query's case).
    fn zone_of(&self, qname: &Name, base_labels: usize) -> Name {
        let keep = qname.num_labels() as usize - base_labels;
        let zone = qname.trim_to(keep);
        if zone.is_fqdn() {
            zone
        } else {
            self.domain_name.clone()
        }
    }

    /// What a name under the domain refers to (CoreDNS's parseRequest and Records).
    fn find(&self, base: &[String]) -> Result<Vec<Entry>, NameError> {
        let Some((kind, rest)) = base.split_last() else {
            return Ok(Vec::new());
        };
        if kind != "svc" && kind != "pod" {
            return Err(NameError);
        }
        let Some((namespace, rest)) = rest.split_last() else {
            return Ok(Vec::new());
        };
        if !self.namespaces.contains(namespace) {
            return Err(NameError);
        }
        let Some((name, rest)) = rest.split_last() else {
            return Ok(Vec::new());
        };
        if kind == "pod" {
            return if rest.is_empty() {
                pod_address(name)
                    .map(|ip| {
                        vec![Entry::Address {
                            ip,
                            port: None,
                            target: String::new(),
                        }]
                    })
                    .ok_or(NameError)
            } else {
                Err(NameError)
            };
        }
        let (endpoint, port, protocol) = match rest {
            [] => (None, None, None),
            [endpoint] => (Some(endpoint.as_str()), None, None),
            [port, protocol] => (
                None,
                Some(strip_underscore(port)),
                Some(strip_underscore(protocol)),
            ),
            _ => return Err(NameError),
        };
        let key = (namespace.clone(), name.clone());
        let svc = self.services.get(&key).ok_or(NameError)?;
        let mut entries = Vec::new();
        let matches = |p: &Port| {
            port.is_none_or(|want| want == p.name) && protocol.is_none_or(|want| want == p.protocol)
        };
        let service_name = format!("{name}.{namespace}.svc.{}", self.domain);
        match &svc.kind {
            Kind::External(target) => {
                if endpoint.is_some() || port.is_some() || target.parse::<IpAddr>().is_ok() {
                    return Err(NameError);
                }
                entries.push(Entry::Alias(target.clone()));
            }
            Kind::ClusterIp(ips) if endpoint.is_none() => {
                let mut any = false;
                for p in svc.ports.iter().filter(|p| matches(p)) {
                    any = true;
                    for ip in ips {
                        entries.push(Entry::Address {
                            ip: *ip,
                            port: p.number,
                            target: service_name.clone(),
                        });
                    }
                }
                if !any {
                    return Err(NameError);
                }
            }
            _ => {
                for slice_name in self.slices_of.get(&key).into_iter().flatten() {
                    let Some(slice) = self.slices.get(&(namespace.clone(), slice_name.clone()))
                    else {
                        continue;
                    };
                    for ep in &slice.endpoints {
                        if !(ep.ready || svc.publish_not_ready) {
                            continue;
                        }
                        for ip in &ep.addresses {
                            let host = endpoint_hostname(ep, ip);
                            if endpoint.is_some_and(|want| want != host) {
                                continue;
                            }
                            for p in slice.ports.iter().filter(|p| matches(p)) {
                                entries.push(Entry::Address {
                                    ip: *ip,
                                    port: p.number,
                                    target: format!("{host}.{service_name}"),
                                });
                            }
                        }
                    }
                }
                if entries.is_empty() {
                    return Err(NameError);
                }
            }
        }
        Ok(entries)
    }

    /// The names of an address (CoreDNS's serviceRecordForIP): its Service's name for a
    /// ClusterIP, else `<endpoint>.svc.ns.svc.<domain>` for each ready endpoint with it.
    fn reverse(&self, ip: IpAddr) -> Vec<String> {
        if let Some((ns, name)) = self.cluster_ips.get(&ip) {
            return vec![format!("{name}.{ns}.svc.{}", self.domain)];
        }
        let mut names = Vec::new();
        for key in self.endpoint_ips.get(&ip).into_iter().flatten() {
            let Some(slice) = self.slices.get(key) else {
                continue;
            };
            let publish = self
                .services
                .get(&(key.0.clone(), slice.service.clone()))
                .is_some_and(|s| s.publish_not_ready);
            for ep in &slice.endpoints {
                if (ep.ready || publish) && ep.addresses.contains(&ip) {
                    let name = format!(
                        "{}.{}.{}.svc.{}",
                        endpoint_hostname(ep, &ip),
                        slice.service,
                        key.0,
                        self.domain
                    );
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        names
    }
}

fn now_serial() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<Key> {
    Some((
        meta.namespace.as_deref()?.to_ascii_lowercase(),
        meta.name.as_deref()?.to_ascii_lowercase(),
    ))
}

fn svc_of(service: &Service) -> Svc {
    let spec = service.spec.clone().unwrap_or_default();
    let kind = if spec.type_.as_deref() == Some("ExternalName") {
        Kind::External(
            spec.external_name
                .unwrap_or_default()
                .trim_end_matches('.')
                .to_ascii_lowercase(),
        )
    } else if spec.cluster_ip.as_deref() == Some("None") {
        Kind::Headless
    } else {
        let mut ips: Vec<IpAddr> = spec
            .cluster_ips
            .unwrap_or_default()
            .iter()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        if ips.is_empty() {
            ips.extend(
                spec.cluster_ip
                    .as_deref()
                    .and_then(|ip| ip.parse::<IpAddr>().ok()),
            );
        }
        Kind::ClusterIp(ips)
    };
    let mut ports: Vec<Port> = spec
        .ports
        .unwrap_or_default()
        .iter()
        .map(|p| Port {
            name: p.name.as_deref().unwrap_or("").to_ascii_lowercase(),
            protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
            number: u16::try_from(p.port).ok(),
        })
        .collect();
    if ports.is_empty() {
        ports.push(no_port());
    }
    Svc {
        kind,
        ports,
        publish_not_ready: spec.publish_not_ready_addresses.unwrap_or(false),
    }
}

fn no_port() -> Port {
    Port {
        name: String::new(),
        protocol: String::new(),
        number: None,
    }
}

fn slice_of(slice: &EndpointSlice) -> Option<Slice> {
    let service = slice
        .metadata
        .labels
        .as_ref()?
        .get(LABEL_SERVICE_NAME)?
        .to_ascii_lowercase();
    let mut ports: Vec<Port> = slice
        .ports
        .iter()
        .flatten()
        .map(|p| Port {
            name: p.name.as_deref().unwrap_or("").to_ascii_lowercase(),
            protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
            number: p.port.and_then(|n| u16::try_from(n).ok()),
        })
        .collect();
    if ports.is_empty() {
        ports.push(no_port());
    }
    let endpoints = slice
        .endpoints
        .iter()
        .map(|ep| Endpoint {
            addresses: ep.addresses.iter().filter_map(|a| a.parse().ok()).collect(),
            hostname: ep.hostname.as_ref().map(|h| h.to_ascii_lowercase()),
            ready: ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true),
        })
        .collect();
    Some(Slice {
        service,
        ports,
        endpoints,
    })
}

/// CoreDNS's endpointHostname: the hostname, else the address with dashes.
fn endpoint_hostname(ep: &Endpoint, ip: &IpAddr) -> String {
    if let Some(h) = &ep.hostname {
        if !h.is_empty() {
            return h.clone();
        }
    }
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => {
            let dashed = v6.to_string().replace(':', "-");
            if dashed.ends_with('-') {
                format!("{dashed}0")
            } else {
                dashed
            }
        }
    }
}

/// A pod name's address in `pods insecure` mode: `10-42-0-5` or an IPv6 with dashes.
fn pod_address(label: &str) -> Option<IpAddr> {
    let text = if label.matches('-').count() == 3 && !label.contains("--") {
        label.replace('-', ".")
    } else {
        label.replace('-', ":")
    };
    text.parse().ok()
}

fn strip_underscore(label: &str) -> &str {
    label.strip_prefix('_').unwrap_or(label)
}

/// The address of `d.c.b.a.in-addr.arpa` or a nibble `ip6.arpa` name.
fn reverse_address(labels: &[String]) -> Option<IpAddr> {
    match labels {
        [a, b, c, d, in_addr, arpa] if in_addr == "in-addr" && arpa == "arpa" => {
            format!("{d}.{c}.{b}.{a}").parse().ok()
        }
        _ if labels.len() == 34 && labels[32] == "ip6" && labels[33] == "arpa" => {
            let mut hex = String::with_capacity(39);
            for (i, nibble) in labels[..32].iter().rev().enumerate() {
                if nibble.len() != 1 {
                    return None;
                }
                if i > 0 && i % 4 == 0 {
                    hex.push(':');
                }
                hex.push_str(nibble);
            }
            hex.parse().ok()
        }
        _ => None,
    }
}

fn fqdn(name: &str) -> Option<Name> {
    let name = name.trim_end_matches('.');
    Name::from_ascii(format!("{name}.")).ok()
}

fn record(name: &Name, ttl: u32, data: RData) -> Record {
    Record::from_rdata(name.clone(), ttl, data)
}

fn address(name: &Name, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => record(name, TTL, RData::A(A(v4))),
        IpAddr::V6(v6) => record(name, TTL, RData::AAAA(AAAA(v6))),
    }
}

#[cfg(test)]
mod tests;
