//! The files a pod's containers see as `/etc/hosts`, `/etc/resolv.conf` and
//! `/etc/hostname`, rendered as upstream's kubelet renders them (`kubelet_pods.go`'s
//! `managedHostsFileContent`/`nodeHostsFileContent`, `pkg/kubelet/network/dns/dns.go`'s
//! `GetPodDNS`, containerd's resolv.conf writer).
//!
//! Pure functions over plain parameters: the kubelet converts the pod spec (dnsPolicy,
//! dnsConfig, hostAliases, hostname, subdomain) into these inputs; nothing here reads
//! files or knows Kubernetes API types. The host's own files are passed in as text.

/// The header of a hosts file the kubelet manages for a pod with its own network.
pub const MANAGED_HOSTS_HEADER: &str = "# Kubernetes-managed hosts file.\n";
/// The header for a `hostNetwork` pod, followed by the node's own hosts file.
pub const MANAGED_HOSTS_HEADER_HOST_NETWORK: &str =
    "# Kubernetes-managed hosts file (host network).\n";

/// Upstream's limits (`pkg/apis/core/validation`): nameservers, search paths, the search
/// line's length, one search domain's length (a DNS-1123 subdomain).
pub const MAX_DNS_NAMESERVERS: usize = 3;
pub const MAX_DNS_SEARCH_PATHS: usize = 32;
pub const MAX_DNS_SEARCH_LIST_CHARS: usize = 2048;
const MAX_SEARCH_DOMAIN_LEN: usize = 253;

/// A hostname fits in 63 characters (64 bytes with the terminating NUL).
const HOSTNAME_MAX_LEN: usize = 63;

/// The pod's hostname as upstream derives it: `spec.hostname` when set, else the pod's
/// name, cut to 63 characters without a trailing `-` or `.` (`truncatePodHostnameIfNeeded`).
pub fn pod_hostname(pod_name: &str, spec_hostname: Option<&str>) -> String {
    let name = spec_hostname.filter(|h| !h.is_empty()).unwrap_or(pod_name);
    if name.len() <= HOSTNAME_MAX_LEN {
        return name.to_string();
    }
    // Names are DNS labels (ASCII), but cut on a character boundary all the same.
    let mut end = HOSTNAME_MAX_LEN;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].trim_end_matches(['-', '.']).to_string()
}

/// The pod's domain when it has a `subdomain`: `<subdomain>.<namespace>.svc.<cluster-domain>`.
pub fn pod_domain(
    subdomain: Option<&str>,
    namespace: &str,
    cluster_domain: &str,
) -> Option<String> {
    match subdomain {
        Some(s) if !s.is_empty() => Some(format!("{s}.{namespace}.svc.{cluster_domain}")),
        _ => None,
    }
}

/// One `hostAliases` entry: an IP and the names that resolve to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostAlias {
    pub ip: String,
    pub hostnames: Vec<String>,
}

/// What `/etc/hosts` is made of.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostsInput {
    /// The pod's IPs (all families); each gets a line with the hostname.
    pub pod_ips: Vec<String>,
    pub hostname: String,
    /// From [`pod_domain`]: with it, lines read `<ip>\t<hostname>.<domain>\t<hostname>`.
    pub domain: Option<String>,
    pub host_aliases: Vec<HostAlias>,
}

/// `/etc/hosts` for a pod with its own network namespace (`managedHostsFileContent`).
pub fn managed_hosts(input: &HostsInput) -> String {
    let mut out = String::from(MANAGED_HOSTS_HEADER);
    out.push_str("127.0.0.1\tlocalhost\n");
    out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
    out.push_str("fe00::0\tip6-localnet\n");
    out.push_str("fe00::0\tip6-mcastprefix\n");
    out.push_str("fe00::1\tip6-allnodes\n");
    out.push_str("fe00::2\tip6-allrouters\n");
    for ip in &input.pod_ips {
        match &input.domain {
            Some(domain) => out.push_str(&format!(
                "{ip}\t{}.{domain}\t{}\n",
                input.hostname, input.hostname
            )),
            None => out.push_str(&format!("{ip}\t{}\n", input.hostname)),
        }
    }
    out.push_str(&host_alias_entries(&input.host_aliases));
    out
}

/// `/etc/hosts` for a `hostNetwork` pod: the node's hosts file under the kubelet's header,
/// then the pod's host aliases (`nodeHostsFileContent`).
pub fn host_network_hosts(node_hosts: &str, host_aliases: &[HostAlias]) -> String {
    let mut out = String::from(MANAGED_HOSTS_HEADER_HOST_NETWORK);
    out.push_str(node_hosts);
    out.push_str(&host_alias_entries(host_aliases));
    out
}

fn host_alias_entries(aliases: &[HostAlias]) -> String {
    if aliases.is_empty() {
        return String::new();
    }
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for alias in aliases {
        out.push_str(&format!("{}\t{}\n", alias.ip, alias.hostnames.join("\t")));
    }
    out
}

/// `/etc/hostname`: the hostname and a newline (as containerd writes it).
pub fn hostname_file(hostname: &str) -> String {
    format!("{hostname}\n")
}

/// The pod's `dnsPolicy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DnsPolicy {
    #[default]
    ClusterFirst,
    ClusterFirstWithHostNet,
    Default,
    None,
}

/// One `dnsConfig.options` entry (`value` is optional: `options rotate`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsOption {
    pub name: String,
    pub value: Option<String>,
}

/// The pod's `dnsConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodDnsConfig {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<DnsOption>,
}

/// What the kubelet knows about DNS: its flags and the node's resolv.conf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsInput {
    pub policy: DnsPolicy,
    pub host_network: bool,
    pub namespace: String,
    /// `--cluster-dns` (10.43.0.10 by default); empty: ClusterFirst falls back to Default.
    pub cluster_dns: Vec<String>,
    /// `--cluster-domain` (cluster.local).
    pub cluster_domain: String,
    /// The text of the node's resolv.conf (`--resolv-conf`); `None` when that flag is the
    /// empty string (upstream then points pods at 127.0.0.1 with search `.`).
    pub host_resolv_conf: Option<String>,
    pub dns_config: Option<PodDnsConfig>,
}

/// Parsed resolv.conf, in the CRI's shape (`runtimeapi.DNSConfig`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsConfig {
    pub servers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

/// Reads a resolv.conf as upstream's `parseResolvConf`: comments (`#`, `;`) dropped, the
/// first address of each `nameserver` line, the last `search` line (without `.` and with
/// trailing dots removed), all `options` (a later option of the same name replacing the
/// earlier one).
pub fn parse_resolv_conf(text: &str) -> DnsConfig {
    let mut cfg = DnsConfig::default();
    for line in text.lines() {
        let line = match line.find(['#', ';']) {
            Some(i) => &line[..i],
            None => line,
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["nameserver", addr, ..] => cfg.servers.push(addr.to_string()),
            ["search", domains @ ..] => {
                cfg.searches = domains
                    .iter()
                    .filter(|d| **d != ".")
                    .map(|d| d.trim_end_matches('.').to_string())
                    .collect();
            }
            ["options", opts @ ..] => {
                let opts: Vec<String> = opts.iter().map(|o| o.to_string()).collect();
                cfg.options = merge_options(&cfg.options, opts.iter().map(|o| split_option(o)));
            }
            _ => {}
        }
    }
    cfg
}

fn split_option(op: &str) -> (String, Option<String>) {
    match op.split_once(':') {
        Some((name, value)) => (name.to_string(), Some(value.to_string())),
        None => (op.to_string(), None),
    }
}

/// Upstream's `mergeDNSOptions`: later entries of the same name win. Upstream iterates a Go
/// map (random order); skiff keeps first-seen order so the file is stable.
fn merge_options(
    existing: &[String],
    more: impl IntoIterator<Item = (String, Option<String>)>,
) -> Vec<String> {
    let mut merged: Vec<(String, Option<String>)> =
        existing.iter().map(|o| split_option(o)).collect();
    for (name, value) in more {
        let value = value.filter(|v| !v.is_empty());
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => merged.push((name, value)),
        }
    }
    merged
        .into_iter()
        .map(|(n, v)| match v {
            Some(v) => format!("{n}:{v}"),
            None => n,
        })
        .collect()
}

fn omit_duplicates(items: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// The pod's DNS settings as upstream's `GetPodDNS` computes them.
pub fn pod_dns_config(input: &DnsInput) -> DnsConfig {
    let host = input
        .host_resolv_conf
        .as_deref()
        .map(parse_resolv_conf)
        .unwrap_or_default();
    // getPodDNSType: ClusterFirst on the host network falls back to Default.
    let cluster = match input.policy {
        DnsPolicy::None => None,
        DnsPolicy::ClusterFirstWithHostNet => Some(true),
        DnsPolicy::ClusterFirst => Some(!input.host_network),
        DnsPolicy::Default => Some(false),
    };
    let mut cfg = match cluster {
        None => DnsConfig::default(),
        Some(true) if !input.cluster_dns.is_empty() => {
            let searches = if input.cluster_domain.is_empty() {
                host.searches
            } else {
                let d = &input.cluster_domain;
                let mut s = vec![
                    format!("{}.svc.{d}", input.namespace),
                    format!("svc.{d}"),
                    d.clone(),
                ];
                s.extend(host.searches);
                omit_duplicates(s)
            };
            DnsConfig {
                servers: input.cluster_dns.clone(),
                searches,
                options: vec!["ndots:5".to_string()],
            }
        }
        // Default, or ClusterFirst without a cluster DNS (upstream falls through).
        Some(_) => {
            let mut cfg = host;
            if input.host_resolv_conf.is_none() {
                cfg.servers = vec!["127.0.0.1".to_string()];
                cfg.searches = vec![".".to_string()];
            }
            cfg
        }
    };
    if let Some(extra) = &input.dns_config {
        let mut servers = cfg.servers;
        servers.extend(extra.nameservers.iter().cloned());
        cfg.servers = omit_duplicates(servers);
        let mut searches = cfg.searches;
        searches.extend(extra.searches.iter().cloned());
        cfg.searches = omit_duplicates(searches);
        cfg.options = merge_options(
            &cfg.options,
            extra
                .options
                .iter()
                .map(|o| (o.name.clone(), o.value.clone())),
        );
    }
    cfg.servers.truncate(MAX_DNS_NAMESERVERS);
    cfg.searches = search_fits_limits(cfg.searches);
    cfg
}

/// Upstream's `formDNSSearchFitsLimits`: at most 32 paths, none longer than 253
/// characters, the whole line at most 2048 (dropping domains from the end).
fn search_fits_limits(searches: Vec<String>) -> Vec<String> {
    let mut searches: Vec<String> = searches
        .into_iter()
        .take(MAX_DNS_SEARCH_PATHS)
        .filter(|s| s.len() <= MAX_SEARCH_DOMAIN_LEN)
        .collect();
    let mut line_len = searches.join(" ").len();
    while line_len > MAX_DNS_SEARCH_LIST_CHARS {
        match searches.pop() {
            Some(last) => line_len = line_len.saturating_sub(last.len() + 1),
            None => break,
        }
    }
    searches
}

/// resolv.conf as containerd writes the CRI's DNS config: `search`, then one `nameserver`
/// line each, then `options`.
pub fn resolv_conf(cfg: &DnsConfig) -> String {
    let mut out = String::new();
    if !cfg.searches.is_empty() {
        out.push_str(&format!("search {}\n", cfg.searches.join(" ")));
    }
    for server in &cfg.servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !cfg.options.is_empty() {
        out.push_str(&format!("options {}\n", cfg.options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(policy: DnsPolicy, host_network: bool, host: &str) -> DnsInput {
        DnsInput {
            policy,
            host_network,
            namespace: "default".into(),
            cluster_dns: vec!["10.43.0.10".into()],
            cluster_domain: "cluster.local".into(),
            host_resolv_conf: Some(host.into()),
            dns_config: None,
        }
    }

    const HOST: &str = "# generated\nnameserver 192.168.1.1 \nnameserver 8.8.8.8\nsearch corp.example. lab.example .\noptions timeout:2 attempts:3\n";

    #[test]
    fn hosts_file_as_upstream_writes_it() {
        // Upstream's TestManagedHostsFileContent, the case with a subdomain and aliases.
        let got = managed_hosts(&HostsInput {
            pod_ips: vec!["203.0.113.1".into()],
            hostname: "podFoo".into(),
            domain: Some("domainFoo".into()),
            host_aliases: vec![
                HostAlias {
                    ip: "123.45.67.89".into(),
                    hostnames: vec!["foo".into(), "bar".into(), "baz".into()],
                },
                HostAlias {
                    ip: "456.78.90.123".into(),
                    hostnames: vec!["park".into(), "doo".into(), "boo".into()],
                },
            ],
        });
        let want = "# Kubernetes-managed hosts file.\n\
                    127.0.0.1\tlocalhost\n\
                    ::1\tlocalhost ip6-localhost ip6-loopback\n\
                    fe00::0\tip6-localnet\n\
                    fe00::0\tip6-mcastprefix\n\
                    fe00::1\tip6-allnodes\n\
                    fe00::2\tip6-allrouters\n\
                    203.0.113.1\tpodFoo.domainFoo\tpodFoo\n\
                    \n\
                    # Entries added by HostAliases.\n\
                    123.45.67.89\tfoo\tbar\tbaz\n\
                    456.78.90.123\tpark\tdoo\tboo\n";
        assert_eq!(got, want);
    }

    #[test]
    fn hosts_file_without_domain_has_one_name_per_ip() {
        let got = managed_hosts(&HostsInput {
            pod_ips: vec!["10.42.0.5".into(), "fd00::5".into()],
            hostname: "web-0".into(),
            domain: None,
            host_aliases: vec![],
        });
        assert!(
            got.ends_with("fe00::2\tip6-allrouters\n10.42.0.5\tweb-0\nfd00::5\tweb-0\n"),
            "{got}"
        );
        assert!(!got.contains("HostAliases"));
    }

    #[test]
    fn host_network_hosts_file_is_the_nodes() {
        let got = host_network_hosts(
            "127.0.0.1\tlocalhost\n10.0.0.2\tnode1\n",
            &[HostAlias {
                ip: "1.2.3.4".into(),
                hostnames: vec!["a".into()],
            }],
        );
        assert_eq!(
            got,
            "# Kubernetes-managed hosts file (host network).\n127.0.0.1\tlocalhost\n10.0.0.2\tnode1\n\n# Entries added by HostAliases.\n1.2.3.4\ta\n"
        );
    }

    #[test]
    fn fqdn_and_hostname_truncation() {
        assert_eq!(
            pod_domain(Some("web"), "prod", "cluster.local").as_deref(),
            Some("web.prod.svc.cluster.local")
        );
        assert_eq!(pod_domain(None, "prod", "cluster.local"), None);
        assert_eq!(pod_domain(Some(""), "prod", "cluster.local"), None);
        assert_eq!(pod_hostname("nginx-abc", None), "nginx-abc");
        assert_eq!(pod_hostname("nginx-abc", Some("web-0")), "web-0");
        // 62 characters then '-' and more: cut at 63, trailing '-' and '.' trimmed.
        let long = format!("{}.-xyz", "a".repeat(61));
        assert_eq!(pod_hostname(&long, None), "a".repeat(61));
        assert_eq!(pod_hostname(&"b".repeat(70), None), "b".repeat(63));
        assert_eq!(hostname_file("web-0"), "web-0\n");
    }

    #[test]
    fn parse_host_resolv_conf() {
        let got = parse_resolv_conf(HOST);
        assert_eq!(got.servers, vec!["192.168.1.1", "8.8.8.8"]);
        assert_eq!(got.searches, vec!["corp.example", "lab.example"]);
        assert_eq!(got.options, vec!["timeout:2", "attempts:3"]);
        let got = parse_resolv_conf("search a b\nsearch c ; comment\nnameserver 1.1.1.1 # x\n");
        assert_eq!(got.searches, vec!["c"]);
        assert_eq!(got.servers, vec!["1.1.1.1"]);
    }

    #[test]
    fn cluster_first() {
        let cfg = pod_dns_config(&dns(DnsPolicy::ClusterFirst, false, HOST));
        assert_eq!(
            resolv_conf(&cfg),
            "search default.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n\
             nameserver 10.43.0.10\n\
             options ndots:5\n"
        );
    }

    #[test]
    fn cluster_first_on_host_network_is_default_unless_with_host_net() {
        let cfg = pod_dns_config(&dns(DnsPolicy::ClusterFirst, true, HOST));
        assert_eq!(
            resolv_conf(&cfg),
            "search corp.example lab.example\nnameserver 192.168.1.1\nnameserver 8.8.8.8\noptions timeout:2 attempts:3\n"
        );
        let cfg = pod_dns_config(&dns(DnsPolicy::ClusterFirstWithHostNet, true, HOST));
        assert_eq!(cfg.servers, vec!["10.43.0.10"]);
        assert_eq!(cfg.options, vec!["ndots:5"]);
    }

    #[test]
    fn default_without_resolv_conf_uses_localhost() {
        let mut input = dns(DnsPolicy::Default, false, "");
        input.host_resolv_conf = None;
        assert_eq!(
            resolv_conf(&pod_dns_config(&input)),
            "search .\nnameserver 127.0.0.1\n"
        );
        // ClusterFirst with no cluster DNS falls back to Default.
        let mut input = dns(DnsPolicy::ClusterFirst, false, HOST);
        input.cluster_dns.clear();
        assert_eq!(
            pod_dns_config(&input).servers,
            vec!["192.168.1.1", "8.8.8.8"]
        );
    }

    #[test]
    fn none_is_only_dns_config() {
        let mut input = dns(DnsPolicy::None, false, HOST);
        input.dns_config = Some(PodDnsConfig {
            nameservers: vec!["1.2.3.4".into()],
            searches: vec![
                "ns1.svc.cluster-domain.example".into(),
                "my.dns.search.suffix".into(),
            ],
            options: vec![
                DnsOption {
                    name: "ndots".into(),
                    value: Some("2".into()),
                },
                DnsOption {
                    name: "edns0".into(),
                    value: None,
                },
            ],
        });
        assert_eq!(
            resolv_conf(&pod_dns_config(&input)),
            "search ns1.svc.cluster-domain.example my.dns.search.suffix\n\
             nameserver 1.2.3.4\n\
             options ndots:2 edns0\n"
        );
        input.dns_config = None;
        assert_eq!(resolv_conf(&pod_dns_config(&input)), "");
    }

    #[test]
    fn dns_config_merges_and_limits() {
        let mut input = dns(DnsPolicy::ClusterFirst, false, HOST);
        input.dns_config = Some(PodDnsConfig {
            nameservers: vec![
                "10.43.0.10".into(),
                "1.1.1.1".into(),
                "2.2.2.2".into(),
                "3.3.3.3".into(),
            ],
            searches: vec!["svc.cluster.local".into(), "extra.example".into()],
            options: vec![DnsOption {
                name: "ndots".into(),
                value: Some("1".into()),
            }],
        });
        let cfg = pod_dns_config(&input);
        // Duplicates dropped, then cut to three nameservers.
        assert_eq!(cfg.servers, vec!["10.43.0.10", "1.1.1.1", "2.2.2.2"]);
        assert_eq!(
            cfg.searches,
            vec![
                "default.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example",
                "lab.example",
                "extra.example"
            ]
        );
        assert_eq!(cfg.options, vec!["ndots:1"]);

        let mut input = dns(DnsPolicy::None, false, HOST);
        input.dns_config = Some(PodDnsConfig {
            searches: (0..40)
                .map(|i| format!("d{i}.example"))
                .chain([format!("{}.x", "l".repeat(260))])
                .collect(),
            ..Default::default()
        });
        let cfg = pod_dns_config(&input);
        assert_eq!(cfg.searches.len(), MAX_DNS_SEARCH_PATHS);
        assert_eq!(cfg.searches[31], "d31.example");

        // Long domains: the line is cut to 2048 characters from the end.
        let mut input = dns(DnsPolicy::None, false, HOST);
        input.dns_config = Some(PodDnsConfig {
            searches: (0..10).map(|i| format!("{i}{}", "x".repeat(249))).collect(),
            ..Default::default()
        });
        let cfg = pod_dns_config(&input);
        assert_eq!(cfg.searches.len(), 8);
        assert!(cfg.searches.join(" ").len() <= MAX_DNS_SEARCH_LIST_CHARS);
    }
}
