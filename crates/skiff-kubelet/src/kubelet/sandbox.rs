//! A pod's sandbox request (upstream's `generatePodSandboxConfig` in
//! `pkg/kubelet/kuberuntime/kuberuntime_sandbox.go`, with `dns.go`'s inputs): hostname,
//! domain, host aliases, DNS, hostPorts. Pure.

use k8s_openapi::api::core::v1::Pod;
use skiff_runtime::sandbox::cni::PortMapping;
use skiff_runtime::sandbox::files::{
    pod_domain, pod_hostname, DnsInput, DnsOption, DnsPolicy, HostAlias, PodDnsConfig,
};
use skiff_runtime::sandbox::SandboxConfig;

/// The node's settings a sandbox is made with.
#[derive(Clone, Debug, Default)]
pub struct SandboxSettings {
    /// `--cluster-dns` (10.43.0.10).
    pub cluster_dns: Vec<String>,
    /// `--cluster-domain` (cluster.local).
    pub cluster_domain: String,
    /// The node's resolv.conf text (`None`: `--resolv-conf=""`).
    pub host_resolv_conf: Option<String>,
    /// The node's /etc/hosts text (hostNetwork pods get it).
    pub node_hosts: String,
}

fn dns_policy(p: Option<&str>) -> DnsPolicy {
    match p {
        Some("ClusterFirstWithHostNet") => DnsPolicy::ClusterFirstWithHostNet,
        Some("Default") => DnsPolicy::Default,
        Some("None") => DnsPolicy::None,
        _ => DnsPolicy::ClusterFirst,
    }
}

/// The sandbox config of `pod` for a new sandbox `id`.
pub fn sandbox_config(pod: &Pod, id: &str, s: &SandboxSettings) -> SandboxConfig {
    let m = &pod.metadata;
    let spec = pod.spec.clone().unwrap_or_default();
    let name = m.name.clone().unwrap_or_default();
    let namespace = m.namespace.clone().unwrap_or_default();
    let host_network = spec.host_network == Some(true);
    let mut port_mappings = Vec::new();
    for c in &spec.containers {
        for p in c.ports.iter().flatten() {
            let Some(host_port) = p.host_port.and_then(|h| u16::try_from(h).ok()) else {
                continue;
            };
            if host_port == 0 || host_network {
                continue; // hostNetwork pods use the host's ports directly
            }
            port_mappings.push(PortMapping {
                host_port,
                container_port: u16::try_from(p.container_port).unwrap_or(0),
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    let dns_config = spec.dns_config.as_ref().map(|d| PodDnsConfig {
        nameservers: d.nameservers.clone().unwrap_or_default(),
        searches: d.searches.clone().unwrap_or_default(),
        options: d
            .options
            .iter()
            .flatten()
            .map(|o| DnsOption {
                name: o.name.clone().unwrap_or_default(),
                value: o.value.clone(),
            })
            .collect(),
    });
    SandboxConfig {
        id: id.to_owned(),
        pod_name: name.clone(),
        pod_namespace: namespace.clone(),
        pod_uid: m.uid.clone().unwrap_or_default(),
        hostname: pod_hostname(&name, spec.hostname.as_deref()),
        host_network,
        host_ipc: spec.host_ipc == Some(true),
        // As upstream's namespacesForPod: hostPID wins (validation refuses both).
        share_pid: spec.share_process_namespace == Some(true) && spec.host_pid != Some(true),
        port_mappings,
        domain: pod_domain(spec.subdomain.as_deref(), &namespace, &s.cluster_domain),
        host_aliases: spec
            .host_aliases
            .iter()
            .flatten()
            .map(|a| HostAlias {
                ip: a.ip.clone(),
                hostnames: a.hostnames.clone().unwrap_or_default(),
            })
            .collect(),
        node_hosts: s.node_hosts.clone(),
        dns: DnsInput {
            policy: dns_policy(spec.dns_policy.as_deref()),
            host_network,
            namespace,
            cluster_dns: s.cluster_dns.clone(),
            cluster_domain: s.cluster_domain.clone(),
            host_resolv_conf: s.host_resolv_conf.clone(),
            dns_config,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn host_ports_hostname_domain_and_dns_come_from_the_spec() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0", "namespace": "shop", "uid": "u1"},
            "spec": {
                "subdomain": "web", "dnsPolicy": "None",
                "dnsConfig": {"nameservers": ["1.1.1.1"], "options": [{"name": "ndots", "value": "2"}]},
                "hostAliases": [{"ip": "10.0.0.9", "hostnames": ["db"]}],
                "containers": [{"name": "c", "image": "busybox", "ports": [
                    {"containerPort": 80, "hostPort": 8080},
                    {"containerPort": 53, "protocol": "UDP", "hostPort": 5353},
                    {"containerPort": 9000}
                ]}]
            }
        }))
        .unwrap();
        let s = SandboxSettings {
            cluster_dns: vec!["10.43.0.10".into()],
            cluster_domain: "cluster.local".into(),
            ..Default::default()
        };
        let c = sandbox_config(&pod, "sb1", &s);
        assert_eq!(c.hostname, "web-0");
        assert_eq!(c.domain.as_deref(), Some("web.shop.svc.cluster.local"));
        assert_eq!(c.port_mappings.len(), 2);
        assert_eq!(c.port_mappings[1].protocol, "udp");
        assert_eq!(c.dns.policy, DnsPolicy::None);
        assert_eq!(
            c.dns.dns_config.unwrap().options[0].value.as_deref(),
            Some("2")
        );
        assert_eq!(c.host_aliases[0].hostnames, vec!["db"]);
    }

    #[test]
    fn host_network_pods_map_no_ports() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "h", "namespace": "kube-system", "uid": "u2"},
            "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "busybox",
                "ports": [{"containerPort": 80, "hostPort": 80}]}]}
        }))
        .unwrap();
        let c = sandbox_config(&pod, "sb2", &SandboxSettings::default());
        assert!(c.host_network && c.port_mappings.is_empty());
        assert_eq!(c.dns.policy, DnsPolicy::ClusterFirst);
    }

    #[test]
    fn share_process_namespace_asks_for_a_pod_pid_namespace_unless_host_pid() {
        let config = |spec: serde_json::Value| {
            let mut spec = spec;
            spec["containers"] = json!([{"name": "c", "image": "busybox"}]);
            let pod: Pod =
                serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap();
            sandbox_config(&pod, "sb", &SandboxSettings::default()).share_pid
        };
        assert!(config(json!({"shareProcessNamespace": true})));
        assert!(!config(json!({})));
        assert!(!config(json!({"shareProcessNamespace": false})));
        assert!(!config(
            json!({"shareProcessNamespace": true, "hostPID": true})
        ));
    }
}
