//! The proxy's model of the cluster: Services and EndpointSlices reduced to what rendering
//! needs, joined into one [`ServicePortModel`] per Service port (upstream's
//! `pkg/proxy/serviceport.go`, `endpointschangetracker.go`, `endpointslicecache.go`), and the
//! choice of endpoints for each traffic policy (`pkg/proxy/topology.go`).
//!
//! Everything here is pure: no I/O, no API calls. The watch loop converts each object once
//! ([`ServiceInfo::from_service`], [`SliceInfo::from_slice`]) and keeps only the reduced form,
//! so the proxy does not hold whole objects in memory. IPv4 only (the table is `ip`); topology
//! hints are not implemented.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label joining an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The session affinity timeout when `sessionAffinityConfig.clientIP.timeoutSeconds` is unset
/// (upstream's `DefaultClientIPServiceAffinitySeconds`, 3 hours).
pub const DEFAULT_AFFINITY_SECONDS: u32 = 10_800;

/// A Service port's transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (the default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// The API's spelling ("TCP", "UDP", "SCTP"; unset is TCP); `None` for anything else.
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value.unwrap_or("TCP") {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            "SCTP" => Some(Self::Sctp),
            _ => None,
        }
    }

    /// The nftables name (`tcp`, `udp`, `sctp`), also used in chain names.
    pub fn as_nft(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_nft())
    }
}

/// One port of a Service, as the proxy needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePortInfo {
    /// The port's name (empty for the single unnamed port).
    pub name: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The Service port (on the ClusterIP, external IPs and load-balancer IPs).
    pub port: u16,
    /// The node port, for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
}

/// A Service reduced to what the proxy renders. Headless and ExternalName Services, and
/// Services without an IPv4 ClusterIP, have none ([`ServiceInfo::from_service`] is `None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInfo {
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
    /// The ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// The ports.
    pub ports: Vec<ServicePortInfo>,
    /// `spec.externalIPs` (IPv4 ones).
    pub external_ips: Vec<Ipv4Addr>,
    /// `status.loadBalancer.ingress[].ip` (IPv4 ones), answered like external IPs.
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// `spec.loadBalancerSourceRanges` (IPv4 ones) of a LoadBalancer: the only clients its
    /// load-balancer IPs answer (empty: all).
    pub source_ranges: Vec<Ipv4Net>,
    /// Reachable from outside the cluster: NodePort, LoadBalancer, or with external IPs
    /// (upstream's `ExternallyAccessible`).
    pub externally_accessible: bool,
    /// `externalTrafficPolicy: Local` on an externally accessible Service.
    pub external_policy_local: bool,
    /// `internalTrafficPolicy: Local`.
    pub internal_policy_local: bool,
    /// `sessionAffinity: ClientIP`: the timeout in seconds.
    pub affinity_timeout: Option<u32>,
}

impl ServiceInfo {
    /// Reduces a Service; `None` for those the proxy does not serve (headless, ExternalName,
    /// no or a non-IPv4 ClusterIP, no name).
    pub fn from_service(service: &Service) -> Option<Self> {
        let namespace = service.metadata.namespace.clone()?;
        let name = service.metadata.name.clone()?;
        let spec = service.spec.as_ref()?;
        let service_type = spec.type_.as_deref().unwrap_or("ClusterIP");
        if service_type == "ExternalName" {
            return None;
        }
        let cluster_ip: Ipv4Addr = spec.cluster_ip.as_deref()?.parse().ok()?;
        let node_ports = matches!(service_type, "NodePort" | "LoadBalancer");
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(ServicePortInfo {
                    name: p.name.clone().unwrap_or_default(),
                    protocol: Protocol::parse(p.protocol.as_deref())?,
                    port: u16::try_from(p.port).ok().filter(|&p| p != 0)?,
                    node_port: if node_ports {
                        p.node_port
                            .and_then(|n| u16::try_from(n).ok())
                            .filter(|&n| n != 0)
                    } else {
                        None
                    },
                })
            })
            .collect();
        let external_ips: Vec<Ipv4Addr> = spec
            .external_ips
            .iter()
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        let load_balancer_ips: Vec<Ipv4Addr> = if service_type == "LoadBalancer" {
            service
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|i| i.ip.as_deref()?.parse().ok())
                .collect()
        } else {
            Vec::new()
        };
        // As upstream, a range that does not parse is left out (validation refuses them, so
        // only an object older than that validation can hold one); spaces around are trimmed.
        let source_ranges: Vec<Ipv4Net> = if service_type == "LoadBalancer" {
            spec.load_balancer_source_ranges
                .iter()
                .flatten()
                .filter_map(|r| r.trim().parse::<Ipv4Net>().ok())
                .map(|r| r.trunc())
                .collect()
        } else {
            Vec::new()
        };
        let externally_accessible = node_ports || !external_ips.is_empty();
        let affinity_timeout = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|&t| t > 0)
                .unwrap_or(DEFAULT_AFFINITY_SECONDS)
        });
        Some(Self {
            namespace,
            name,
            cluster_ip,
            ports,
            external_ips,
            load_balancer_ips,
            source_ranges,
            externally_accessible,
            external_policy_local: externally_accessible
                && spec.external_traffic_policy.as_deref() == Some("Local"),
            internal_policy_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
            affinity_timeout,
        })
    }
}

/// One port of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlicePort {
    /// The name, matched against the Service port's name.
    pub name: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The port on the endpoints (a named targetPort comes resolved).
    pub port: u16,
}

/// One endpoint of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceEndpoint {
    /// Its (first) address.
    pub ip: Ipv4Addr,
    /// `nodeName`.
    pub node_name: Option<String>,
    /// `conditions.ready` (unset is true).
    pub ready: bool,
    /// `conditions.serving` (unset is the value of ready).
    pub serving: bool,
    /// `conditions.terminating` (unset is false).
    pub terminating: bool,
}

/// An EndpointSlice reduced to what the proxy renders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceInfo {
    /// The namespace (the Service's).
    pub namespace: String,
    /// The Service's name (label `kubernetes.io/service-name`).
    pub service_name: String,
    /// The ports.
    pub ports: Vec<SlicePort>,
    /// The endpoints.
    pub endpoints: Vec<SliceEndpoint>,
}

impl SliceInfo {
    /// Reduces an EndpointSlice; `None` without a Service label or for a non-IPv4 slice.
    pub fn from_slice(slice: &EndpointSlice) -> Option<Self> {
        if slice.address_type != "IPv4" {
            return None;
        }
        let namespace = slice.metadata.namespace.clone()?;
        let service_name = slice
            .metadata
            .labels
            .as_ref()?
            .get(SERVICE_NAME_LABEL)?
            .clone();
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(SlicePort {
                    name: p.name.clone().unwrap_or_default(),
                    protocol: Protocol::parse(p.protocol.as_deref())?,
                    port: u16::try_from(p.port?).ok().filter(|&p| p != 0)?,
                })
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .filter_map(|e| {
                let ip = e.addresses.first()?.parse().ok()?;
                let conditions = e.conditions.as_ref();
                let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
                Some(SliceEndpoint {
                    ip,
                    node_name: e.node_name.clone(),
                    ready,
                    serving: conditions.and_then(|c| c.serving).unwrap_or(ready),
                    terminating: conditions.and_then(|c| c.terminating).unwrap_or(false),
                })
            })
            .collect();
        Some(Self {
            namespace,
            service_name,
            ports,
            endpoints,
        })
    }
}

/// One endpoint of a Service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    /// The address.
    pub ip: Ipv4Addr,
    /// The port.
    pub port: u16,
    /// On this node (`nodeName` is the proxy's node).
    pub local: bool,
    /// Ready.
    pub ready: bool,
    /// Serving.
    pub serving: bool,
    /// Terminating.
    pub terminating: bool,
}

/// One Service port with its endpoints: the unit the renderer turns into chains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePortModel {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The port's name, or its number when unnamed (port names always hold a letter, so the
    /// two never collide); identifies the port in chain names.
    pub port_id: String,
    /// The protocol.
    pub protocol: Protocol,
    /// The ClusterIP.
    pub cluster_ip: Ipv4Addr,
    /// The Service port.
    pub port: u16,
    /// The node port.
    pub node_port: Option<u16>,
    /// External IPs and load-balancer ingress IPs.
    pub external_ips: Vec<Ipv4Addr>,
    /// The load-balancer ingress IPs alone (those [`Self::source_ranges`] guard).
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// See [`ServiceInfo::source_ranges`].
    pub source_ranges: Vec<Ipv4Net>,
    /// See [`ServiceInfo::externally_accessible`].
    pub externally_accessible: bool,
    /// See [`ServiceInfo::external_policy_local`].
    pub external_policy_local: bool,
    /// See [`ServiceInfo::internal_policy_local`].
    pub internal_policy_local: bool,
    /// See [`ServiceInfo::affinity_timeout`].
    pub affinity_timeout: Option<u32>,
    /// Every endpoint of the port, deduplicated by address and sorted.
    pub endpoints: Vec<Endpoint>,
}

/// Joins Services and their EndpointSlices into one model per Service port, sorted by
/// namespace, name and port. Slices are joined by namespace and label; slice ports are matched
/// to Service ports by name and protocol; an address in several slices counts once (a ready
/// copy wins, as upstream's endpoint slice cache).
pub fn build<'a>(
    services: impl IntoIterator<Item = &'a ServiceInfo>,
    slices: impl IntoIterator<Item = &'a SliceInfo>,
    node_name: &str,
) -> Vec<ServicePortModel> {
    let mut by_service: HashMap<(&str, &str), Vec<&SliceInfo>> = HashMap::new();
    for slice in slices {
        by_service
            .entry((slice.namespace.as_str(), slice.service_name.as_str()))
            .or_default()
            .push(slice);
    }
    let mut out = Vec::new();
    for service in services {
        let slices = by_service
            .get(&(service.namespace.as_str(), service.name.as_str()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let external_ips: Vec<Ipv4Addr> = {
            let mut ips = service.external_ips.clone();
            ips.extend(&service.load_balancer_ips);
            ips.sort();
            ips.dedup();
            ips
        };
        for port in &service.ports {
            let mut endpoints: BTreeMap<(Ipv4Addr, u16), Endpoint> = BTreeMap::new();
            for slice in slices {
                let Some(slice_port) = slice
                    .ports
                    .iter()
                    .find(|p| p.name == port.name && p.protocol == port.protocol)
                else {
                    continue;
                };
                for e in &slice.endpoints {
                    let endpoint = Endpoint {
                        ip: e.ip,
                        port: slice_port.port,
                        local: e.node_name.as_deref() == Some(node_name),
                        ready: e.ready,
                        serving: e.serving,
                        terminating: e.terminating,
                    };
                    let key = (e.ip, slice_port.port);
                    match endpoints.get(&key) {
                        Some(existing) if existing.ready || !endpoint.ready => {}
                        _ => {
                            endpoints.insert(key, endpoint);
                        }
                    }
                }
            }
            out.push(ServicePortModel {
                namespace: service.namespace.clone(),
                name: service.name.clone(),
                port_id: if port.name.is_empty() {
                    port.port.to_string()
                } else {
                    port.name.clone()
                },
                protocol: port.protocol,
                cluster_ip: service.cluster_ip,
                port: port.port,
                node_port: port.node_port,
                external_ips: external_ips.clone(),
                load_balancer_ips: service.load_balancer_ips.clone(),
                source_ranges: service.source_ranges.clone(),
                externally_accessible: service.externally_accessible,
                external_policy_local: service.external_policy_local,
                internal_policy_local: service.internal_policy_local,
                affinity_timeout: service.affinity_timeout,
                endpoints: endpoints.into_values().collect(),
            });
        }
    }
    out.sort_by(|a, b| {
        (&a.namespace, &a.name, &a.port_id, a.protocol).cmp(&(
            &b.namespace,
            &b.name,
            &b.port_id,
            b.protocol,
        ))
    });
    out
}

/// The endpoints each traffic policy uses (upstream's `CategorizeEndpoints`, without
/// topology hints).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Categorized<'a> {
    /// For `Cluster` policies: the ready endpoints, or when none is ready the serving and
    /// terminating ones. Empty when no policy of the Service is `Cluster`.
    pub cluster: Vec<&'a Endpoint>,
    /// For `Local` policies: this node's ready endpoints, or when none is ready its serving and
    /// terminating ones. Empty when no policy of the Service is `Local`.
    pub local: Vec<&'a Endpoint>,
    /// The union of the two: the endpoints that get an endpoint chain.
    pub all: Vec<&'a Endpoint>,
    /// Whether the Service has any usable endpoint anywhere (else its traffic is rejected
    /// rather than dropped).
    pub has_any: bool,
}

impl ServicePortModel {
    /// Whether some traffic uses the `Cluster` policy.
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_policy_local || (self.externally_accessible && !self.external_policy_local)
    }

    /// Whether some traffic uses the `Local` policy.
    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_policy_local || (self.externally_accessible && self.external_policy_local)
    }

    /// Chooses the endpoints of each policy. Not-ready endpoints are never chosen unless they
    /// are serving and terminating and nothing ready exists (in the cluster, or on this node
    /// for `Local`).
    pub fn categorize(&self) -> Categorized<'_> {
        let usable_fallback = |e: &&Endpoint| e.serving && e.terminating;
        let mut out = Categorized::default();
        if self.uses_cluster_endpoints() {
            out.cluster = self.endpoints.iter().filter(|e| e.ready).collect();
            if out.cluster.is_empty() {
                out.cluster = self.endpoints.iter().filter(usable_fallback).collect();
            }
            out.has_any = !out.cluster.is_empty();
        }
        if !self.uses_local_endpoints() {
            out.all = out.cluster.clone();
            return out;
        }
        let mut local_ready = false;
        let mut local_terminating = false;
        for e in &self.endpoints {
            if e.ready {
                out.has_any = true;
                local_ready |= e.local;
            } else if e.serving && e.terminating {
                out.has_any = true;
                local_terminating |= e.local;
            }
        }
        if local_ready {
            out.local = self
                .endpoints
                .iter()
                .filter(|e| e.local && e.ready)
                .collect();
        } else if local_terminating {
            out.local = self
                .endpoints
                .iter()
                .filter(|e| e.local && usable_fallback(e))
                .collect();
        }
        if !self.uses_cluster_endpoints() {
            out.all = out.local.clone();
            return out;
        }
        let mut all = out.cluster.clone();
        for e in &out.local {
            if !all.contains(e) {
                all.push(e);
            }
        }
        all.sort();
        out.all = all;
        out
    }
}
