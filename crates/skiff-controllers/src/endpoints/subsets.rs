//! The v1 Endpoints of a Service, as upstream's endpoints controller computes them
//! (pkg/controller/endpoint/endpoints_controller.go `syncService`, pkg/api/v1/endpoints
//! `RepackSubsets`): one address per pod that should be in endpoints (ready, or not ready
//! under `notReadyAddresses`; all ready with `publishNotReadyAddresses`), one port per
//! Service port found in the pod, repacked so that pods offering the same ports share a
//! subset, and truncated to [`MAX_CAPACITY`] addresses (ready ones first). Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, ObjectReference, Pod, Service,
};

use super::util::{
    find_port, is_ipv6, is_pod_ready, pod_ips, should_pod_be_in_endpoints, should_set_hostname,
};

/// Upstream's `maxCapacity`: the most addresses one Endpoints object holds.
pub const MAX_CAPACITY: usize = 1000;
/// The annotation marking truncated Endpoints, and its value.
pub const OVER_CAPACITY: &str = "endpoints.kubernetes.io/over-capacity";
pub const TRUNCATED: &str = "truncated";

/// Upstream's `podToEndpointAddressForService`: the pod's IP of the Service's (first) family.
pub fn pod_address(svc: &Service, pod: &Pod) -> Option<EndpointAddress> {
    let spec = svc.spec.as_ref();
    let want_v6 = match spec
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
    {
        Some(family) => family == "IPv6",
        None => match spec.and_then(|s| s.cluster_ip.as_deref()) {
            Some(ip) if !ip.is_empty() && ip != "None" => is_ipv6(ip),
            _ => pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .is_some_and(is_ipv6),
        },
    };
    let ip = pod_ips(pod).into_iter().find(|ip| is_ipv6(ip) == want_v6)?;
    Some(EndpointAddress {
        ip,
        hostname: None,
        node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
    })
}

/// A port, as a key that orders and compares (name, number, protocol, appProtocol).
type PortKey = (String, i32, String, String);

fn port_key(p: &EndpointPort) -> PortKey {
    (
        p.name.clone().unwrap_or_default(),
        p.port,
        p.protocol.clone().unwrap_or_default(),
        p.app_protocol.clone().unwrap_or_default(),
    )
}

fn port_of(key: &PortKey) -> EndpointPort {
    EndpointPort {
        name: (!key.0.is_empty()).then(|| key.0.clone()),
        port: key.1,
        protocol: (!key.2.is_empty()).then(|| key.2.clone()),
        app_protocol: (!key.3.is_empty()).then(|| key.3.clone()),
    }
}

/// An address's identity (IP and target UID, as upstream's `addressKey`), which also orders
/// addresses as upstream's `LessEndpointAddress`.
type AddrKey = (String, String);

fn addr_key(a: &EndpointAddress) -> AddrKey {
    (
        a.ip.clone(),
        a.target_ref
            .as_ref()
            .and_then(|r| r.uid.clone())
            .unwrap_or_default(),
    )
}

/// The subsets of `svc` over `pods` (the pods its selector matches), repacked and sorted.
/// Headless Services without ports get one portless subset per address (not repacked, as
/// upstream).
pub fn desired_subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let spec = svc.spec.clone().unwrap_or_default();
    let publish_not_ready = spec.publish_not_ready_addresses.unwrap_or(false);
    let ports = spec.ports.clone().unwrap_or_default();
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let mut portless: Vec<EndpointSubset> = Vec::new();
    // Port -> address -> ready (not ready wins), as upstream's `mapAddressByPort`.
    let mut by_port: BTreeMap<PortKey, BTreeMap<AddrKey, bool>> = BTreeMap::new();
    let mut addresses: BTreeMap<AddrKey, EndpointAddress> = BTreeMap::new();
    for pod in pods {
        if !should_pod_be_in_endpoints(pod, publish_not_ready) {
            continue;
        }
        let Some(mut address) = pod_address(svc, pod) else {
            continue;
        };
        if should_set_hostname(pod, svc) {
            address.hostname = pod.spec.as_ref().and_then(|s| s.hostname.clone());
        }
        let ready = publish_not_ready || is_pod_ready(pod);
        if ports.is_empty() {
            if headless {
                let (addresses, not_ready) = if ready {
                    (Some(vec![address]), None)
                } else {
                    (None, Some(vec![address]))
                };
                portless.push(EndpointSubset {
                    addresses,
                    not_ready_addresses: not_ready,
                    ports: None,
                });
            }
            continue;
        }
        let key = addr_key(&address);
        for sp in &ports {
            let Some(number) = find_port(pod, sp) else {
                continue;
            };
            let port = EndpointPort {
                name: sp.name.clone().filter(|n| !n.is_empty()),
                port: number,
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            };
            let entry = by_port
                .entry(port_key(&port))
                .or_default()
                .entry(key.clone())
                .or_insert(ready);
            if *entry {
                *entry = ready;
            }
            addresses
                .entry(key.clone())
                .or_insert_with(|| address.clone());
        }
    }
    if ports.is_empty() {
        return portless;
    }
    // Group the ports by the exact set of (address, ready) offering them.
    let mut by_set: BTreeMap<Vec<(AddrKey, bool)>, BTreeSet<PortKey>> = BTreeMap::new();
    for (port, addrs) in by_port {
        let set: Vec<(AddrKey, bool)> = addrs.into_iter().collect();
        by_set.entry(set).or_default().insert(port);
    }
    by_set
        .into_iter()
        .map(|(set, ports)| {
            let (ready, not_ready): (Vec<_>, Vec<_>) = set.into_iter().partition(|(_, r)| *r);
            let take = |v: Vec<(AddrKey, bool)>| {
                let list: Vec<EndpointAddress> = v
                    .into_iter()
                    .filter_map(|(k, _)| addresses.get(&k).cloned())
                    .collect();
                (!list.is_empty()).then_some(list)
            };
            EndpointSubset {
                addresses: take(ready),
                not_ready_addresses: take(not_ready),
                ports: Some(ports.iter().map(port_of).collect()),
            }
        })
        .collect()
}

fn count(subsets: &[EndpointSubset]) -> (usize, usize) {
    subsets.iter().fold((0, 0), |(r, n), s| {
        (
            r + s.addresses.as_ref().map_or(0, Vec::len),
            n + s.not_ready_addresses.as_ref().map_or(0, Vec::len),
        )
    })
}

/// Upstream's `truncateEndpoints`: over [`MAX_CAPACITY`] addresses, each subset keeps its
/// share (rounded up) of the room, ready addresses first; true when it truncated.
pub fn truncate(subsets: &mut [EndpointSubset]) -> bool {
    let (total_ready, total_not_ready) = count(subsets);
    if total_ready + total_not_ready <= MAX_CAPACITY {
        return false;
    }
    let truncate_ready = total_ready > MAX_CAPACITY;
    let (max, total) = if truncate_ready {
        (MAX_CAPACITY, total_ready)
    } else {
        (MAX_CAPACITY - total_ready, total_not_ready)
    };
    let mut can_be_added = max;
    for subset in subsets.iter_mut() {
        let in_subset = if truncate_ready {
            subset.addresses.as_ref().map_or(0, Vec::len)
        } else {
            subset.not_ready_addresses.as_ref().map_or(0, Vec::len)
        };
        let share = ((in_subset as f64 / total as f64) * max as f64).ceil() as usize;
        let to_add = share.min(can_be_added);
        if truncate_ready {
            if let Some(a) = subset.addresses.as_mut() {
                a.truncate(to_add);
                can_be_added -= a.len();
            }
            subset.not_ready_addresses = None;
        } else if let Some(a) = subset.not_ready_addresses.as_mut() {
            a.truncate(to_add);
            can_be_added -= a.len();
        }
        for list in [&mut subset.addresses, &mut subset.not_ready_addresses] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                *list = None;
            }
        }
    }
    true
}

/// Upstream's `capacityAnnotationSetCorrectly`: under capacity and not annotated.
pub fn capacity_annotation_correct(
    annotations: Option<&BTreeMap<String, String>>,
    subsets: &[EndpointSubset],
) -> bool {
    let (r, n) = count(subsets);
    if r + n > MAX_CAPACITY {
        return false;
    }
    !annotations.is_some_and(|a| a.contains_key(OVER_CAPACITY))
}

/// Subsets compared as upstream's semantic equality ignoring the targets' resourceVersion;
/// an empty list equals none.
pub fn subsets_equal(a: &[EndpointSubset], b: &[EndpointSubset]) -> bool {
    fn norm(s: &[EndpointSubset]) -> Vec<EndpointSubset> {
        s.iter()
            .map(|s| {
                let clean = |v: &Option<Vec<EndpointAddress>>| {
                    v.as_ref()
                        .map(|v| {
                            v.iter()
                                .map(|a| {
                                    let mut a = a.clone();
                                    if let Some(r) = a.target_ref.as_mut() {
                                        r.resource_version = None;
                                    }
                                    a
                                })
                                .collect::<Vec<_>>()
                        })
                        .filter(|v| !v.is_empty())
                };
                EndpointSubset {
                    addresses: clean(&s.addresses),
                    not_ready_addresses: clean(&s.not_ready_addresses),
                    ports: s.ports.clone().filter(|p| !p.is_empty()),
                }
            })
            .collect()
    }
    norm(a) == norm(b)
}
