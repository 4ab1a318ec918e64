//! The model rendered into a structured ruleset for one `ip` table of ours, with upstream's
//! layout (`pkg/proxy/nftables/proxier.go`): base chains hooked at the filter and nat
//! priorities kube-proxy uses, verdict maps from destination to a per-Service-port chain,
//! the DNAT of the picked endpoint (in a chain per endpoint only under session affinity), a
//! mark plus a postrouting chain for masquerade, hairpin traffic told by a set of endpoint
//! addresses.
//!
//! Pure: the ruleset is data (chains with rule texts, sets and maps with elements); turning it
//! into `nft` input, in full or as a diff, is [`crate::script`]'s job.
//!
//! Chain names carry the Service port (`service-NS/NAME/PROTO/PORT`) instead of upstream's
//! hash prefix: API names are DNS labels, so they are valid nftables identifiers already, and
//! the rules stay readable in `nft list table ip skiff`.

use ipnet::Ipv4Net;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::model::{Endpoint, ServicePortModel};
use crate::{Error, Result};

/// The mark meaning "masquerade this packet" (upstream's `0x4000`).
pub const MASQUERADE_MARK: &str = "0x4000";

const SERVICE_IPS: &str = "service-ips";
const SERVICE_NODEPORTS: &str = "service-nodeports";
const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
const CLUSTER_IPS: &str = "cluster-ips";
const FIREWALL_IPS: &str = "firewall-ips";
const HAIRPIN_ENDPOINTS: &str = "hairpin-endpoints";

/// The key of the part that holds the elements of `hairpin-endpoints` (every endpoint
/// address, shared by the Service ports that use it, so it is one part of its own). No
/// Service key is like it: those start with a namespace, a DNS label.
pub const HAIRPIN_PART: &str = "~hairpin";
const MARK_FOR_MASQUERADE: &str = "mark-for-masquerade";
const REJECT_CHAIN: &str = "reject-chain";

/// One chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// For a base chain, its `type ... hook ... priority ...;` text.
    pub base: Option<String>,
    /// The rules, in order.
    pub rules: Vec<String>,
}

/// One named set or map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    /// Whether this is a map (`add map`) rather than a set.
    pub map: bool,
    /// Its definition: `type ...; flags ...; timeout ...;`.
    pub spec: String,
}

/// One element of a set or map of the fixed part.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Element {
    /// The set or map.
    pub set: &'static str,
    /// The key.
    pub key: String,
    /// The value (empty in a set).
    pub value: String,
}

/// A part of the table: the fixed part, or everything one Service port adds (its chains, its
/// affinity sets, its elements in the fixed part's maps). Chain and set names are unique to
/// the part that owns them, so parts can be compared, kept and diffed one by one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fragment {
    /// The chains by name.
    pub chains: BTreeMap<String, Chain>,
    /// The named sets and maps by name.
    pub sets: BTreeMap<String, Set>,
    /// Elements in the fixed part's sets and maps, sorted.
    pub elements: Vec<Element>,
}

/// Everything our table holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruleset {
    /// The table's name (family `ip`).
    pub table: String,
    /// The fixed part.
    pub base: Fragment,
    /// Each Service port's part, by [`service_key`].
    pub services: BTreeMap<String, Fragment>,
}

/// What rendering needs beyond the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderConfig {
    /// Our table's name.
    pub table: String,
    /// The pod network: traffic to a ClusterIP from outside it is masqueraded, and pods
    /// reaching an externalTrafficPolicy Local destination short-circuit to all endpoints.
    pub cluster_cidr: Ipv4Net,
}

/// Whether `name` is safe as an nftables identifier: a letter, then letters, digits and
/// `/ - _ .` (what the nft scanner accepts unquoted).
pub fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'))
        && name.len() <= 255
}

impl Fragment {
    fn chain(&mut self, name: &str) -> &mut Vec<String> {
        &mut self
            .chains
            .entry(name.to_owned())
            .or_insert(Chain {
                base: None,
                rules: Vec::new(),
            })
            .rules
    }

    fn base_chain(&mut self, name: &str, base: &str, rules: &[&str]) {
        self.chains.insert(
            name.to_owned(),
            Chain {
                base: Some(base.to_owned()),
                rules: rules.iter().map(|r| (*r).to_owned()).collect(),
            },
        );
    }

    fn set(&mut self, name: &str, map: bool, spec: &str) {
        self.sets.insert(
            name.to_owned(),
            Set {
                map,
                spec: spec.to_owned(),
            },
        );
    }

    fn element(&mut self, set: &'static str, key: String, value: String) {
        self.elements.push(Element { set, key, value });
    }
}

/// The key of a Service port's part: `NS/NAME/PROTO/PORT` (also its chains' name suffix).
pub fn service_key(model: &ServicePortModel) -> String {
    format!(
        "{}/{}/{}/{}",
        model.namespace, model.name, model.protocol, model.port_id
    )
}

/// The chain names of one Service port.
struct Names {
    prefix: String,
}

impl Names {
    fn new(model: &ServicePortModel) -> Self {
        Self {
            prefix: service_key(model),
        }
    }
    fn service(&self) -> String {
        format!("service-{}", self.prefix)
    }
    fn local(&self) -> String {
        format!("local-{}", self.prefix)
    }
    fn external(&self) -> String {
        format!("external-{}", self.prefix)
    }
    fn endpoint(&self, e: &Endpoint) -> String {
        format!("endpoint-{}__{}/{}", self.prefix, e.ip, e.port)
    }
    fn firewall(&self) -> String {
        format!("firewall-{}", self.prefix)
    }
    fn affinity(&self, e: &Endpoint) -> String {
        format!("affinity-{}__{}/{}", self.prefix, e.ip, e.port)
    }
}

/// Renders the ruleset for the given Service ports (the order of `models` does not matter).
/// Errors when the table name or a name from the model is not a valid identifier.
pub fn render(models: &[ServicePortModel], config: &RenderConfig) -> Result<Ruleset> {
    if !valid_identifier(&config.table) {
        return Err(Error::Render(format!(
            "invalid table name {:?}",
            config.table
        )));
    }
    let mut services = BTreeMap::new();
    for model in models {
        services.insert(service_key(model), render_service(model, config)?);
    }
    services.insert(HAIRPIN_PART.to_owned(), hairpin(models));
    Ok(Ruleset {
        table: config.table.clone(),
        base: base(),
        services,
    })
}

/// Renders one Service port's part; errors when a name is not a valid identifier.
pub fn render_service(model: &ServicePortModel, config: &RenderConfig) -> Result<Fragment> {
    let mut fragment = Fragment::default();
    service_port(&mut fragment, model, config.cluster_cidr.trunc())?;
    fragment.elements.sort();
    Ok(fragment)
}

/// The hairpin part: every endpoint address as `ip . ip` in `hairpin-endpoints`, which the
/// postrouting chain masquerades (a pod that reached itself through a Service would see its
/// own address as the source and drop the answer). Upstream marks hairpin traffic in each
/// endpoint's chain; one set lookup lets Services without affinity have no endpoint chains
/// at all, which is most of the table's chains (BENCHMARKS.md, issue 15).
pub fn hairpin<'a>(models: impl IntoIterator<Item = &'a ServicePortModel>) -> Fragment {
    let ips: BTreeSet<Ipv4Addr> = models
        .into_iter()
        .flat_map(|m| m.endpoints.iter().map(|e| e.ip))
        .collect();
    let mut part = Fragment::default();
    for ip in ips {
        part.element(HAIRPIN_ENDPOINTS, format!("{ip} . {ip}"), String::new());
    }
    // By key text, as every part's elements (and the in-place update relies on it).
    part.elements.sort();
    part
}

/// The hairpin elements of these addresses alone (a part for a diff).
pub fn hairpin_elements(ips: &[Ipv4Addr]) -> Fragment {
    let mut part = Fragment::default();
    for ip in ips {
        part.element(HAIRPIN_ENDPOINTS, format!("{ip} . {ip}"), String::new());
    }
    part
}

/// Updates a hairpin part in place: the elements of `gone` out, those of `new` in (both
/// made by [`hairpin_elements`]; the part's elements stay sorted, as [`hairpin`] makes them).
pub fn update_hairpin(part: &mut Fragment, gone: &Fragment, new: &Fragment) {
    for e in &gone.elements {
        if let Ok(i) = part.elements.binary_search(e) {
            part.elements.remove(i);
        }
    }
    for e in &new.elements {
        if let Err(i) = part.elements.binary_search(e) {
            part.elements.insert(i, e.clone());
        }
    }
}

/// The fixed part: hooks, the dispatch maps, masquerade and reject chains.
pub fn base() -> Fragment {
    let mut rs = Fragment::default();
    let new = "ct state new jump";
    rs.base_chain(
        "filter-input",
        "type filter hook input priority -110;",
        &[
            &format!("{new} nodeport-endpoints-check"),
            &format!("{new} service-endpoints-check"),
        ],
    );
    rs.base_chain(
        "filter-forward",
        "type filter hook forward priority -110;",
        &[
            &format!("{new} service-endpoints-check"),
            &format!("{new} cluster-ips-check"),
        ],
    );
    rs.base_chain(
        "filter-prerouting",
        "type filter hook prerouting priority -110;",
        &[&format!("{new} firewall-check")],
    );
    rs.base_chain(
        "filter-output",
        "type filter hook output priority -110;",
        &[
            &format!("{new} service-endpoints-check"),
            &format!("{new} firewall-check"),
        ],
    );
    rs.base_chain(
        "filter-output-post-dnat",
        "type filter hook output priority -90;",
        &[&format!("{new} cluster-ips-check")],
    );
    rs.base_chain(
        "nat-prerouting",
        "type nat hook prerouting priority -100;",
        &["jump services"],
    );
    rs.base_chain(
        "nat-output",
        "type nat hook output priority -100;",
        &["jump services"],
    );
    rs.base_chain(
        "nat-postrouting",
        "type nat hook postrouting priority 100;",
        &["jump masquerading"],
    );
    rs.chain("services").extend([
        format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
        format!("fib daddr type local meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"),
    ]);
    rs.chain("service-endpoints-check").push(format!(
        "ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"
    ));
    rs.chain("nodeport-endpoints-check").push(format!(
        "fib daddr type local meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"
    ));
    rs.chain("firewall-check").push(format!(
        "ip daddr . meta l4proto . th dport vmap @{FIREWALL_IPS}"
    ));
    rs.chain("cluster-ips-check")
        .push(format!("ip daddr @{CLUSTER_IPS} reject"));
    rs.chain(MARK_FOR_MASQUERADE)
        .push(format!("mark set mark or {MASQUERADE_MARK}"));
    rs.chain("masquerading").extend([
        format!(
            "ct status dnat ip saddr . ip daddr @{HAIRPIN_ENDPOINTS} jump {MARK_FOR_MASQUERADE}"
        ),
        format!("mark and {MASQUERADE_MARK} == 0 return"),
        format!("mark set mark xor {MASQUERADE_MARK}"),
        "masquerade fully-random".to_owned(),
    ]);
    rs.chain(REJECT_CHAIN).push("reject".to_owned());
    let ip_map = "type ipv4_addr . inet_proto . inet_service : verdict;";
    let port_map = "type inet_proto . inet_service : verdict;";
    rs.set(SERVICE_IPS, true, ip_map);
    rs.set(NO_ENDPOINT_SERVICES, true, ip_map);
    rs.set(SERVICE_NODEPORTS, true, port_map);
    rs.set(NO_ENDPOINT_NODEPORTS, true, port_map);
    rs.set(FIREWALL_IPS, true, ip_map);
    rs.set(CLUSTER_IPS, false, "type ipv4_addr;");
    rs.set(HAIRPIN_ENDPOINTS, false, "type ipv4_addr . ipv4_addr;");
    rs
}

/// One Service port's elements and chains (upstream's per-service loop of `syncProxyRules`).
fn service_port(rs: &mut Fragment, model: &ServicePortModel, cluster_cidr: Ipv4Net) -> Result<()> {
    let names = Names::new(model);
    if !valid_identifier(&names.service()) {
        return Err(Error::Render(format!(
            "invalid name in Service port {}",
            names.prefix
        )));
    }
    let proto = model.protocol.as_nft();
    let cat = model.categorize();
    let has_endpoints = cat.has_any;
    let uses_cluster_chain = !cat.cluster.is_empty() && model.uses_cluster_endpoints();
    let uses_local_chain = !cat.local.is_empty() && model.uses_local_endpoints();
    let cluster_chain = names.service();
    let local_chain = names.local();

    let (internal_chain, has_internal) = if model.internal_policy_local {
        (&local_chain, has_endpoints && !cat.local.is_empty())
    } else {
        (&cluster_chain, has_endpoints)
    };
    let (external_policy_chain, has_external) = if model.external_policy_local {
        (&local_chain, has_endpoints && !cat.local.is_empty())
    } else {
        (&cluster_chain, has_endpoints)
    };
    let external_chain = names.external();
    let uses_external_chain = has_endpoints && model.externally_accessible;
    let (internal_verdict, external_verdict) = if has_endpoints {
        ("drop".to_owned(), "drop".to_owned())
    } else {
        let reject = format!("goto {REJECT_CHAIN}");
        (reject.clone(), reject)
    };

    rs.element(CLUSTER_IPS, model.cluster_ip.to_string(), String::new());
    let cluster_key = format!("{} . {proto} . {}", model.cluster_ip, model.port);
    if has_internal {
        rs.element(SERVICE_IPS, cluster_key, format!("goto {internal_chain}"));
    } else {
        rs.element(NO_ENDPOINT_SERVICES, cluster_key, internal_verdict);
    }
    for ip in &model.external_ips {
        let key = format!("{ip} . {proto} . {}", model.port);
        if uses_external_chain {
            rs.element(SERVICE_IPS, key.clone(), format!("goto {external_chain}"));
        }
        if !has_external {
            rs.element(NO_ENDPOINT_SERVICES, key, external_verdict.clone());
        }
    }
    // loadBalancerSourceRanges: new connections to a load-balancer IP from anywhere else
    // are dropped before the DNAT (upstream's firewall chain; node ports and external IPs
    // are not guarded, as upstream).
    if !model.source_ranges.is_empty() && !model.load_balancer_ips.is_empty() {
        let firewall = names.firewall();
        let sources = model
            .source_ranges
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        rs.chain(&firewall)
            .push(format!("ip saddr != {{ {sources} }} drop"));
        for ip in &model.load_balancer_ips {
            rs.element(
                FIREWALL_IPS,
                format!("{ip} . {proto} . {}", model.port),
                format!("goto {firewall}"),
            );
        }
    }
    if let Some(node_port) = model.node_port {
        let key = format!("{proto} . {node_port}");
        if uses_external_chain {
            rs.element(
                SERVICE_NODEPORTS,
                key.clone(),
                format!("goto {external_chain}"),
            );
        }
        if !has_external {
            rs.element(NO_ENDPOINT_NODEPORTS, key, external_verdict.clone());
        }
    }

    if has_internal {
        rs.chain(internal_chain).push(format!(
            "ip daddr {} {proto} dport {} ip saddr != {cluster_cidr} jump {MARK_FOR_MASQUERADE}",
            model.cluster_ip, model.port
        ));
    }
    if uses_external_chain {
        let rules = rs.chain(&external_chain);
        if !model.external_policy_local {
            rules.push(format!("jump {MARK_FOR_MASQUERADE}"));
        } else {
            // Pods and the node itself are not subject to the Local policy (as if they went
            // out to a load balancer and came back); the node's own traffic needs masquerade
            // because its source would be the destination's local address.
            let short_circuit = if uses_cluster_chain {
                Some(&cluster_chain)
            } else if uses_local_chain {
                Some(&local_chain)
            } else {
                None
            };
            if let Some(target) = short_circuit {
                rules.push(format!("ip saddr {cluster_cidr} goto {target}"));
            }
            rules.push(format!("fib saddr type local jump {MARK_FOR_MASQUERADE}"));
            if let Some(target) = short_circuit {
                rules.push(format!("fib saddr type local goto {target}"));
            }
        }
        if has_external {
            rules.push(format!("goto {external_policy_chain}"));
        }
    }
    if uses_cluster_chain {
        balance(rs, model, &names, &cluster_chain, &cat.cluster);
    }
    if uses_local_chain {
        balance(rs, model, &names, &local_chain, &cat.local);
    }
    // Endpoint chains only where affinity needs a step after the pick (recording the
    // client); without it the balancing chain DNATs directly.
    if let Some(timeout) = model.affinity_timeout {
        for e in &cat.all {
            let set = names.affinity(e);
            rs.set(
                &set,
                false,
                &format!("type ipv4_addr; flags dynamic,timeout; timeout {timeout}s;"),
            );
            rs.chain(&names.endpoint(e))
                .extend([format!("update @{set} {{ ip saddr }}"), dnat(model, e)]);
        }
    }
    Ok(())
}

/// The DNAT of one endpoint.
fn dnat(model: &ServicePortModel, e: &Endpoint) -> String {
    format!(
        "meta l4proto {} dnat to {}:{}",
        model.protocol.as_nft(),
        e.ip,
        e.port
    )
}

/// A balancing chain: affinity first, then a uniformly random pick among the endpoints.
fn balance(
    rs: &mut Fragment,
    model: &ServicePortModel,
    names: &Names,
    chain: &str,
    endpoints: &[&Endpoint],
) {
    let mut rules = Vec::new();
    let affinity = model.affinity_timeout.is_some();
    if affinity {
        for e in endpoints {
            rules.push(format!(
                "ip saddr @{} goto {}",
                names.affinity(e),
                names.endpoint(e)
            ));
        }
    }
    // The endpoint's step: its chain (affinity), or its DNAT in place.
    let to = |e: &Endpoint| {
        if affinity {
            format!("goto {}", names.endpoint(e))
        } else {
            dnat(model, e)
        }
    };
    // A pick among n endpoints as iptables mode's statistic cascade: endpoint i is taken
    // with probability 1/(n-i), which is uniform overall. Upstream's nftables mode uses
    // `numgen random mod n vmap { ... }`, but every anonymous map costs the kernel a walk of
    // the whole transaction when it is bound to its rule (`__nft_set_trans_bind`), so a full
    // sync of 10,000 Services took minutes; a named map per Service is quadratic in set-name
    // lookups instead (see BENCHMARKS.md, issue 15).
    let n = endpoints.len();
    for (i, e) in endpoints.iter().enumerate() {
        if i + 1 == n {
            rules.push(to(e));
        } else {
            rules.push(format!("numgen random mod {} 0 {}", n - i, to(e)));
        }
    }
    rs.chain(chain).extend(rules);
}
