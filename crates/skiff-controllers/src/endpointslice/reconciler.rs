//! Upstream's EndpointSlice reconciler (staging/src/k8s.io/endpointslice `reconciler.go`,
//! `utils.go`, `util/`), as a pure function: the pods a Service selects and its existing
//! slices in, the slices to create, update and delete out. Per address type and per set of
//! resolved ports (a named targetPort may resolve to different numbers in different pods,
//! whose endpoints then go to different slices): endpoints no longer wanted are removed from
//! their slice and changed ones updated in place; the slices being updated anyway are filled
//! up first (fullest first); what is left goes into the one unchanged slice it fits best, or
//! into new slices of at most `max_endpoints_per_slice`. A Service with no endpoints keeps one
//! empty placeholder slice. Creates replace deletes by updating the slice to be deleted.
//!
//! Where upstream picks from a hash set, this picks in pod-name order, so that a plan is
//! deterministic. Topology hints and trafficDistribution are not implemented (no endpoint
//! carries hints).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

use crate::endpoints::util::{
    find_port, is_ipv6, is_pod_ready, is_service_ip_set, pod_ips, rfc3339_nano,
    should_pod_be_in_endpoints, should_set_hostname, HEADLESS, LAST_CHANGE_TRIGGER_TIME,
};

/// The labels upstream's EndpointSlice controller sets and selects its slices by.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// The controller name in `managed-by`.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// What a sync writes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
    /// Pods left out for a reason worth a retry (their node is not known yet).
    pub errors: Vec<String>,
}

/// A set of ports, as a key (sorted `(name, port, protocol, appProtocol)`).
type PortMapKey = Vec<(String, i32, String, String)>;

fn port_map_key(ports: &[EndpointPort]) -> PortMapKey {
    let mut key: PortMapKey = ports
        .iter()
        .map(|p| {
            (
                p.name.clone().unwrap_or_default(),
                p.port.unwrap_or(0),
                p.protocol.clone().unwrap_or_default(),
                p.app_protocol.clone().unwrap_or_default(),
            )
        })
        .collect();
    key.sort();
    key
}

/// An endpoint's identity, as upstream's `hashEndpoint`: its sorted addresses, hostname and
/// target namespace/name.
type EndpointKey = (String, String, String, Vec<String>);

fn endpoint_key(e: &Endpoint) -> EndpointKey {
    let mut addresses = e.addresses.clone();
    addresses.sort();
    let (ns, name) = e
        .target_ref
        .as_ref()
        .map_or((String::new(), String::new()), |r| {
            (
                r.namespace.clone().unwrap_or_default(),
                r.name.clone().unwrap_or_default(),
            )
        });
    (ns, name, e.hostname.clone().unwrap_or_default(), addresses)
}

/// Upstream's `EndpointsEqualBeyondHash`: node, zone, conditions and target (without its
/// resourceVersion).
fn equal_beyond_hash(a: &Endpoint, b: &Endpoint) -> bool {
    let target = |e: &Endpoint| {
        e.target_ref.clone().map(|mut r| {
            r.resource_version = None;
            r
        })
    };
    let cond = |e: &Endpoint| {
        let c = e.conditions.clone().unwrap_or_default();
        (c.ready, c.serving, c.terminating)
    };
    a.node_name == b.node_name && a.zone == b.zone && cond(a) == cond(b) && target(a) == target(b)
}

/// Upstream's `getAddressTypesForService`.
pub fn address_types(svc: &Service) -> BTreeSet<&'static str> {
    let spec = svc.spec.as_ref();
    let mut out = BTreeSet::new();
    for family in spec
        .and_then(|s| s.ip_families.as_ref())
        .into_iter()
        .flatten()
    {
        match family.as_str() {
            "IPv4" => {
                out.insert("IPv4");
            }
            "IPv6" => {
                out.insert("IPv6");
            }
            _ => {}
        }
    }
    if !out.is_empty() {
        return out;
    }
    match spec.and_then(|s| s.cluster_ip.as_deref()) {
        Some(ip) if !ip.is_empty() && ip != "None" => {
            out.insert(if is_ipv6(ip) { "IPv6" } else { "IPv4" });
        }
        _ => {
            out.insert("IPv4");
            out.insert("IPv6");
        }
    }
    out
}

/// Upstream's `getEndpointPorts`: each Service port resolved in the pod (headless Services
/// may have none).
pub fn endpoint_ports(svc: &Service, pod: &Pod) -> Vec<EndpointPort> {
    let spec = svc.spec.as_ref();
    spec.and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            let number = find_port(pod, sp)?;
            Some(EndpointPort {
                name: Some(sp.name.clone().unwrap_or_default()),
                port: Some(number),
                protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: sp.app_protocol.clone(),
            })
        })
        .collect()
}

/// Upstream's `podToEndpoint`: serving is the pod's readiness, terminating its deletion,
/// ready both (or always with `publishNotReadyAddresses`).
pub fn pod_to_endpoint(
    pod: &Pod,
    node: Option<&Node>,
    svc: &Service,
    address_type: &str,
) -> Endpoint {
    let serving = is_pod_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    let ready = publish || (serving && !terminating);
    let addresses = pod_ips(pod)
        .into_iter()
        .filter(|ip| is_ipv6(ip) == (address_type == "IPv6"))
        .collect();
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let zone = node
        .and_then(|n| n.metadata.labels.as_ref())
        .and_then(|l| l.get(ZONE_LABEL))
        .filter(|z| !z.is_empty())
        .cloned();
    Endpoint {
        addresses,
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        }),
        node_name,
        zone,
        hostname: should_set_hostname(pod, svc)
            .then(|| pod.spec.as_ref().and_then(|s| s.hostname.clone()))
            .flatten(),
        ..Default::default()
    }
}

fn is_reserved(key: &str) -> bool {
    matches!(key, LABEL_SERVICE_NAME | LABEL_MANAGED_BY | HEADLESS)
}

/// Upstream's `setEndpointSliceLabels`: the Service's labels (not the reserved ones) plus
/// the service name, managed-by and (headless) the headless label; and whether the slice's
/// own non-reserved labels differed from the Service's.
pub fn slice_labels(
    slice: Option<&EndpointSlice>,
    svc: &Service,
) -> (BTreeMap<String, String>, bool) {
    let slice_own: BTreeMap<String, String> = slice
        .and_then(|s| s.metadata.labels.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !is_reserved(k))
        .collect();
    let mut labels: BTreeMap<String, String> = svc
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !is_reserved(k))
        .collect();
    let changed = slice_own != labels;
    if !is_service_ip_set(svc) {
        labels.insert(HEADLESS.into(), String::new());
    }
    labels.insert(
        LABEL_SERVICE_NAME.into(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(LABEL_MANAGED_BY.into(), CONTROLLER_NAME.into());
    (labels, changed)
}

/// The controller reference of a Service's slices.
pub fn service_owner(svc: &Service) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Service".into(),
        name: svc.metadata.name.clone().unwrap_or_default(),
        uid: svc.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn owned_by(slice: &EndpointSlice, svc: &Service) -> bool {
    let uid = svc.metadata.uid.as_deref().unwrap_or("");
    slice
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid && o.kind == "Service" && o.api_version == "v1")
}

/// Upstream's `getEndpointSlicePrefix`: `<service>-` (the name when that is not valid).
fn slice_prefix(name: &str) -> String {
    if name.len() < 253 {
        format!("{name}-")
    } else {
        name.to_owned()
    }
}

/// Upstream's `newEndpointSlice`.
pub fn new_slice(svc: &Service, ports: Vec<EndpointPort>, address_type: &str) -> EndpointSlice {
    let (labels, _) = slice_labels(None, svc);
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(slice_prefix(&svc.metadata.name.clone().unwrap_or_default())),
            namespace: svc.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: Some(vec![service_owner(svc)]),
            ..Default::default()
        },
        address_type: address_type.into(),
        endpoints: Vec::new(),
        ports: Some(ports),
    }
}

/// Upstream's `getSliceToFill`: the slice the `n` endpoints fill most closely.
fn slice_to_fill(slices: &[&EndpointSlice], n: usize, max: usize) -> Option<String> {
    let mut closest_diff = max;
    let mut closest = None;
    for s in slices {
        let used = n + s.endpoints.len();
        if used <= max {
            let diff = max - used;
            if diff < closest_diff {
                closest_diff = diff;
                closest = s.metadata.name.clone();
                if diff == 0 {
                    break;
                }
            }
        }
    }
    closest
}

/// Upstream's `reconcileByPortMapping`: (create, update, delete) for one set of ports.
fn reconcile_port_mapping(
    svc: &Service,
    existing: &[&EndpointSlice],
    mut desired: BTreeMap<EndpointKey, Endpoint>,
    ports: &[EndpointPort],
    address_type: &str,
    max: usize,
) -> (Vec<EndpointSlice>, Vec<EndpointSlice>, Vec<EndpointSlice>) {
    let mut by_name: BTreeMap<String, EndpointSlice> = BTreeMap::new();
    let mut unchanged: BTreeSet<String> = BTreeSet::new();
    let mut to_update: BTreeSet<String> = BTreeSet::new();
    let mut to_delete: BTreeSet<String> = BTreeSet::new();

    // 1. Remove what is no longer wanted, update what changed, note the rest.
    for slice in existing {
        let name = slice.metadata.name.clone().unwrap_or_default();
        let mut kept = Vec::new();
        let mut updated = false;
        for ep in &slice.endpoints {
            if let Some(want) = desired.remove(&endpoint_key(ep)) {
                if !equal_beyond_hash(&want, ep) {
                    updated = true;
                }
                kept.push(want);
            }
        }
        let (labels, labels_changed) = slice_labels(Some(slice), svc);
        if updated || kept.len() != slice.endpoints.len() {
            if kept.is_empty() {
                to_delete.insert(name.clone());
                by_name.insert(name, (*slice).clone());
            } else {
                let mut s = (*slice).clone();
                s.endpoints = kept;
                s.metadata.labels = Some(labels);
                to_update.insert(name.clone());
                by_name.insert(name, s);
            }
        } else if labels_changed {
            let mut s = (*slice).clone();
            s.metadata.labels = Some(labels);
            to_update.insert(name.clone());
            by_name.insert(name, s);
        } else {
            unchanged.insert(name.clone());
            by_name.insert(name, (*slice).clone());
        }
    }

    // 2. Fill the slices updated anyway, fullest first.
    if !desired.is_empty() && !to_update.is_empty() {
        let mut names: Vec<String> = to_update.iter().cloned().collect();
        names.sort_by_key(|n| std::cmp::Reverse(by_name.get(n).map_or(0, |s| s.endpoints.len())));
        for name in names {
            let Some(slice) = by_name.get_mut(&name) else {
                continue;
            };
            while slice.endpoints.len() < max {
                let Some((_, ep)) = desired.pop_first() else {
                    break;
                };
                slice.endpoints.push(ep);
            }
        }
    }

    // 3. The rest: into the unchanged slice it fits best, else into new slices.
    let mut create = Vec::new();
    while !desired.is_empty() {
        let mut fill_name = None;
        if desired.len() < max && !unchanged.is_empty() {
            let candidates: Vec<&EndpointSlice> =
                unchanged.iter().filter_map(|n| by_name.get(n)).collect();
            fill_name = slice_to_fill(&candidates, desired.len(), max);
        }
        let mut slice = match &fill_name {
            Some(name) => by_name
                .remove(name)
                .unwrap_or_else(|| new_slice(svc, ports.to_vec(), address_type)),
            None => new_slice(svc, ports.to_vec(), address_type),
        };
        while slice.endpoints.len() < max {
            let Some((_, ep)) = desired.pop_first() else {
                break;
            };
            slice.endpoints.push(ep);
        }
        match fill_name {
            Some(name) => {
                unchanged.remove(&name);
                to_update.insert(name.clone());
                by_name.insert(name, slice);
            }
            None => create.push(slice),
        }
    }
    let pick = |names: &BTreeSet<String>, by_name: &BTreeMap<String, EndpointSlice>| {
        names
            .iter()
            .filter_map(|n| by_name.get(n).cloned())
            .collect::<Vec<_>>()
    };
    (
        create,
        pick(&to_update, &by_name),
        pick(&to_delete, &by_name),
    )
}

fn is_placeholder_of(slice: &EndpointSlice, svc: &Service, address_type: &str) -> bool {
    let (labels, _) = slice_labels(None, svc);
    slice.endpoints.is_empty()
        && slice.ports.as_ref().is_none_or(Vec::is_empty)
        && slice.address_type == address_type
        && slice.metadata.namespace == svc.metadata.namespace
        && slice.metadata.labels.clone().unwrap_or_default() == labels
        && slice.metadata.owner_references.clone().unwrap_or_default() == vec![service_owner(svc)]
}

/// The plan for `svc` over the `pods` its selector matches and its `existing` slices (the
/// ones labelled with its name and managed by this controller); `node` looks a node up in
/// the cache.
pub fn reconcile(
    svc: &Service,
    pods: &[Arc<Pod>],
    existing: &[Arc<EndpointSlice>],
    node: &dyn Fn(&str) -> Option<Arc<Node>>,
    max: usize,
) -> Plan {
    let max = max.max(1);
    let mut plan = Plan::default();
    let types = address_types(svc);
    let publish = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    for slice in existing {
        if !types.contains(slice.address_type.as_str()) {
            plan.delete.push((**slice).clone());
        }
    }
    for address_type in types {
        let slices: Vec<&EndpointSlice> = existing
            .iter()
            .map(|s| &**s)
            .filter(|s| s.address_type == address_type)
            .collect();
        let mut create = Vec::new();
        let mut update = Vec::new();
        let mut delete = Vec::new();
        let mut existing_by_ports: BTreeMap<PortMapKey, Vec<&EndpointSlice>> = BTreeMap::new();
        for s in &slices {
            if owned_by(s, svc) {
                existing_by_ports
                    .entry(port_map_key(s.ports.as_deref().unwrap_or(&[])))
                    .or_default()
                    .push(s);
            } else {
                delete.push((*s).clone());
            }
        }
        let mut desired: BTreeMap<
            PortMapKey,
            (Vec<EndpointPort>, BTreeMap<EndpointKey, Endpoint>),
        > = BTreeMap::new();
        for pod in pods {
            if !should_pod_be_in_endpoints(pod, true) {
                continue;
            }
            let ports = endpoint_ports(svc, pod);
            let key = port_map_key(&ports);
            let node_name = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            let found = node(&node_name);
            if found.is_none() && !publish {
                plan.errors.push(format!(
                    "skipping Pod {} for Service {}/{}: Node {} Not Found",
                    pod.metadata.name.as_deref().unwrap_or(""),
                    svc.metadata.namespace.as_deref().unwrap_or(""),
                    svc.metadata.name.as_deref().unwrap_or(""),
                    node_name
                ));
                continue;
            }
            let ep = pod_to_endpoint(pod, found.as_deref(), svc, address_type);
            let entry = desired
                .entry(key)
                .or_insert_with(|| (ports, BTreeMap::new()));
            if !ep.addresses.is_empty() {
                entry.1.insert(endpoint_key(&ep), ep);
            }
        }
        for (key, (ports, endpoints)) in desired.iter() {
            let old = existing_by_ports.get(key).cloned().unwrap_or_default();
            let (c, u, d) =
                reconcile_port_mapping(svc, &old, endpoints.clone(), ports, address_type, max);
            create.extend(c);
            update.extend(u);
            delete.extend(d);
        }
        for (key, old) in &existing_by_ports {
            if !desired.contains_key(key) {
                delete.extend(old.iter().map(|s| (*s).clone()));
            }
        }
        // No slice would be left: keep (or make) one empty placeholder.
        if slices.len() == delete.len() && create.is_empty() {
            if delete.len() == 1 && is_placeholder_of(&delete[0], svc, address_type) {
                delete.clear();
            } else {
                create.push(new_slice(svc, Vec::new(), address_type));
            }
        }
        // Creates become updates of slices that would be deleted (upstream's finalize).
        let mut i = 0;
        while i < delete.len() && !create.is_empty() {
            if delete[i].address_type == address_type && owned_by(&delete[i], svc) {
                let Some(mut slice) = create.pop() else {
                    break;
                };
                let old = delete.remove(i);
                slice.metadata = ObjectMeta {
                    name: old.metadata.name.clone(),
                    generate_name: old.metadata.generate_name.clone(),
                    resource_version: old.metadata.resource_version.clone(),
                    uid: old.metadata.uid.clone(),
                    annotations: old.metadata.annotations.clone(),
                    ..slice.metadata
                };
                update.push(slice);
            } else {
                i += 1;
            }
        }
        plan.create.extend(create);
        plan.update.extend(update);
        plan.delete.extend(delete);
    }
    plan
}

/// Upstream's `addTriggerTimeAnnotation`: set to the trigger time, removed when none.
pub fn set_trigger_time(slice: &mut EndpointSlice, trigger: Option<Timestamp>) {
    let mut annotations = slice.metadata.annotations.take().unwrap_or_default();
    match trigger {
        Some(t) => {
            annotations.insert(LAST_CHANGE_TRIGGER_TIME.into(), rfc3339_nano(t));
        }
        None => {
            annotations.remove(LAST_CHANGE_TRIGGER_TIME);
        }
    }
    slice.metadata.annotations = Some(annotations);
}
