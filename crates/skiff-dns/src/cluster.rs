//! The DNS's own objects in the cluster: the `kube-system/kube-dns` Service (k3s's labels,
//! the `--cluster-dns` ClusterIP, no selector) and the EndpointSlice through which each
//! running DNS publishes where it listens (so the Service proxy sends the ClusterIP's port
//! 53 to the port actually bound). The builders are pure; [`ensure_service`] and
//! [`publish`] are the calls.
//!
//! The slice is labelled `endpointslice.kubernetes.io/managed-by: skiff-dns`: the
//! EndpointSlice controller leaves slices of other managers alone (and kube-dns has no
//! selector), as upstream's does for CoreDNS-less setups that publish their own.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Api;

use crate::index::LABEL_SERVICE_NAME;

/// Where the DNS Service lives.
pub const NAMESPACE: &str = "kube-system";
/// The DNS Service's name (upstream's and k3s's).
pub const SERVICE: &str = "kube-dns";
/// The `managed-by` of the slices the DNS publishes.
pub const MANAGED_BY: &str = "skiff-dns";
const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
/// How often the published slice is written again (it is an apply: a no-op when current).
const REPUBLISH: Duration = Duration::from_secs(10);

/// The `kube-dns` Service as k3s's CoreDNS manifest has it, on `cluster_ip`: ports `dns`
/// 53/UDP and `dns-tcp` 53/TCP, no selector (the running DNS publishes its slice).
pub fn kube_dns_service(cluster_ip: std::net::IpAddr) -> Service {
    let labels: BTreeMap<String, String> = [
        ("k8s-app", "kube-dns"),
        ("kubernetes.io/cluster-service", "true"),
        ("kubernetes.io/name", "CoreDNS"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let port = |name: &str, protocol: &str| ServicePort {
        name: Some(name.to_owned()),
        port: 53,
        protocol: Some(protocol.to_owned()),
        target_port: Some(IntOrString::Int(53)),
        ..ServicePort::default()
    };
    Service {
        metadata: ObjectMeta {
            name: Some(SERVICE.to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            labels: Some(labels),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(cluster_ip.to_string()),
            cluster_ips: Some(vec![cluster_ip.to_string()]),
            ports: Some(vec![port("dns", "UDP"), port("dns-tcp", "TCP")]),
            type_: Some("ClusterIP".to_owned()),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The name of the slice a DNS listening on `addr` publishes: one per address and port,
/// so several servers (or a restart on another port) never fight over one slice.
pub fn slice_name(addr: SocketAddr) -> String {
    let ip = addr.ip().to_string().replace(['.', ':'], "-");
    format!("{SERVICE}-{}-{}", ip.trim_matches('-'), addr.port())
}

/// The slice saying that the DNS answers at `addr` (ports `dns`/UDP and `dns-tcp`/TCP on
/// the bound port), ready, on `node_name` when it runs on a node, owned by the Service.
pub fn kube_dns_slice(
    addr: SocketAddr,
    node_name: Option<&str>,
    owner_uid: Option<&str>,
) -> EndpointSlice {
    let labels: BTreeMap<String, String> = [
        (LABEL_SERVICE_NAME, SERVICE),
        (LABEL_MANAGED_BY, MANAGED_BY),
        ("k8s-app", "kube-dns"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let port = |name: &str, protocol: &str| EndpointPort {
        name: Some(name.to_owned()),
        port: Some(i32::from(addr.port())),
        protocol: Some(protocol.to_owned()),
        app_protocol: None,
    };
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(slice_name(addr)),
            namespace: Some(NAMESPACE.to_owned()),
            labels: Some(labels),
            owner_references: owner_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Service".into(),
                    name: SERVICE.into(),
                    uid: uid.into(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]
            }),
            ..ObjectMeta::default()
        },
        address_type: if addr.is_ipv4() { "IPv4" } else { "IPv6" }.to_owned(),
        endpoints: vec![Endpoint {
            addresses: vec![addr.ip().to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            node_name: node_name.map(str::to_owned),
            ..Endpoint::default()
        }],
        ports: Some(vec![port("dns", "UDP"), port("dns-tcp", "TCP")]),
    }
}

/// Creates the `kube-dns` Service on `cluster_ip` unless it exists (an existing one is
/// left as it is, as k3s leaves a Service a user changed).
pub async fn ensure_service(
    client: &kube::Client,
    cluster_ip: std::net::IpAddr,
) -> Result<(), kube::Error> {
    let api: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    if api.get_opt(SERVICE).await?.is_some() {
        return Ok(());
    }
    match api
        .create(&PostParams::default(), &kube_dns_service(cluster_ip))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Keeps this DNS's slice published for as long as it runs (written again every few
/// seconds, so a deleted slice comes back), and deletes the slices an earlier run on the
/// same address left for other ports. Never returns.
pub async fn publish(client: kube::Client, addr: SocketAddr, node_name: Option<String>) {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    let services: Api<Service> = Api::namespaced(client, NAMESPACE);
    let name = slice_name(addr);
    let mut cleaned = false;
    loop {
        let owner = match services.get_opt(SERVICE).await {
            Ok(svc) => svc.and_then(|s| s.metadata.uid),
            Err(e) => {
                tracing::debug!(error = %e, "reading the kube-dns Service");
                None
            }
        };
        let slice = kube_dns_slice(addr, node_name.as_deref(), owner.as_deref());
        let params = PatchParams::apply(MANAGED_BY).force();
        match slices.patch(&name, &params, &Patch::Apply(&slice)).await {
            Ok(_) if !cleaned => {
                cleaned = remove_stale(&slices, addr, &name).await;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, slice = %name, "publishing the DNS's EndpointSlice")
            }
        }
        tokio::time::sleep(REPUBLISH).await;
    }
}

/// Deletes our slices for `addr`'s IP under another name (an earlier run's port).
async fn remove_stale(slices: &Api<EndpointSlice>, addr: SocketAddr, ours: &str) -> bool {
    let list = match slices
        .list(&ListParams::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}")))
        .await
    {
        Ok(list) => list,
        Err(e) => {
            tracing::debug!(error = %e, "listing the DNS's EndpointSlices");
            return false;
        }
    };
    let ip = addr.ip().to_string();
    for slice in list.items {
        let Some(name) = slice.metadata.name.as_deref() else {
            continue;
        };
        let same_ip = slice.endpoints.iter().any(|e| e.addresses.contains(&ip));
        if name != ours && same_ip {
            if let Err(e) = slices.delete(name, &DeleteParams::default()).await {
                tracing::debug!(error = %e, slice = name, "deleting a stale DNS EndpointSlice");
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_as_k3s_has_it() {
        let svc = kube_dns_service("10.43.0.10".parse().unwrap());
        let labels = svc.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["k8s-app"], "kube-dns");
        assert_eq!(labels["kubernetes.io/cluster-service"], "true");
        assert_eq!(labels["kubernetes.io/name"], "CoreDNS");
        let spec = svc.spec.unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("10.43.0.10"));
        assert!(spec.selector.is_none());
        let ports: Vec<_> = spec
            .ports
            .unwrap()
            .iter()
            .map(|p| (p.name.clone().unwrap(), p.port, p.protocol.clone().unwrap()))
            .collect();
        assert_eq!(
            ports,
            [
                ("dns".into(), 53, "UDP".into()),
                ("dns-tcp".into(), 53, "TCP".into())
            ]
        );
    }

    #[test]
    fn slice_carries_the_bound_port() {
        let addr: SocketAddr = "192.168.1.5:34567".parse().unwrap();
        let slice = kube_dns_slice(addr, Some("node-a"), Some("uid-1"));
        assert_eq!(
            slice.metadata.name.as_deref(),
            Some("kube-dns-192-168-1-5-34567")
        );
        let labels = slice.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_SERVICE_NAME], "kube-dns");
        assert_eq!(labels[LABEL_MANAGED_BY], "skiff-dns");
        assert_eq!(slice.address_type, "IPv4");
        assert_eq!(slice.endpoints[0].addresses, ["192.168.1.5"]);
        assert_eq!(slice.endpoints[0].node_name.as_deref(), Some("node-a"));
        let ports: Vec<_> = slice
            .ports
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p.name.clone().unwrap(),
                    p.port.unwrap(),
                    p.protocol.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            ports,
            [
                ("dns".into(), 34567, "UDP".into()),
                ("dns-tcp".into(), 34567, "TCP".into())
            ]
        );
        assert_eq!(slice.metadata.owner_references.unwrap()[0].uid, "uid-1");
        let v6 = kube_dns_slice("[fd00::5]:53".parse().unwrap(), None, None);
        assert_eq!(v6.metadata.name.as_deref(), Some("kube-dns-fd00--5-53"));
        assert_eq!(v6.address_type, "IPv6");
    }
}
