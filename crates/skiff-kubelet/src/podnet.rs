//! The pod network across nodes, as flannel's `host-gw` backend does it: every node routes
//! each other node's podCIDR to that node's InternalIP (the nodes share a link), so pod to
//! pod traffic crosses nodes without NAT and keeps its source address; and pod traffic
//! leaving the cluster network is masqueraded to the node's address (one nftables rule in
//! a table of ours, instead of the bridge plugin's per-pod `ipMasq` iptables rules).
//!
//! The decisions are pure ([`desired_routes`], [`plan`], [`masquerade_script`]); [`run`]
//! watches the Nodes through the API and applies them with netlink (routes marked with
//! protocol [`ROUTE_PROTOCOL`], so ours are found again after a restart and never confused
//! with anyone else's) and `nft -f`. The networking stays a CNI configuration: a node with
//! `--cni-conf-dir` brings its own and runs none of this.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;

/// The routing protocol number our routes carry (`ip route show proto 83`): not one of
/// iproute2's named protocols, so no routing daemon claims it.
pub const ROUTE_PROTOCOL: u8 = 83;

/// The nftables table of the masquerade rule.
pub const DEFAULT_TABLE: &str = "skiff-podnet";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("nft: {0}")]
    Nft(String),
    #[error("{0}")]
    Sysctl(String),
    #[error("watching nodes: {0}")]
    Watch(String),
}

/// What the pod network of one node needs.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node (its own podCIDR is on its bridge, not routed).
    pub node_name: String,
    /// The whole pod range (`--cluster-cidr`): traffic from it to anywhere outside it is
    /// masqueraded; inside it, never.
    pub cluster_cidr: Ipv4Net,
    /// The nftables table of ours (`ip <table>`).
    pub table: String,
    /// The `nft` command (an argv prefix, so tests can run it in a network namespace).
    pub nft: Vec<String>,
}

impl Config {
    pub fn new(node_name: &str, cluster_cidr: Ipv4Net) -> Self {
        Self {
            node_name: node_name.to_owned(),
            cluster_cidr,
            table: DEFAULT_TABLE.to_owned(),
            nft: vec!["nft".to_owned()],
        }
    }
}

/// Another node as routing needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    pub pod_cidr: Ipv4Net,
    pub ip: Ipv4Addr,
}

/// The node as a routing peer: its IPv4 podCIDR and InternalIP, if it has both.
pub fn peer(node: &Node) -> Option<Peer> {
    let name = node.metadata.name.clone()?;
    let spec = node.spec.as_ref()?;
    let cidr = spec
        .pod_cidrs
        .iter()
        .flatten()
        .chain(spec.pod_cidr.iter())
        .find_map(|c| c.parse::<Ipv4Net>().ok())?;
    let ip = node
        .status
        .as_ref()?
        .addresses
        .iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse::<Ipv4Addr>().ok())?;
    Some(Peer {
        name,
        pod_cidr: cidr.trunc(),
        ip,
    })
}

/// The routes this node wants: every other node's podCIDR via its InternalIP. A node
/// whose address is ours (a stale registration of this machine) or whose range overlaps
/// ours is left out; of two peers claiming one range, the first by name wins.
pub fn desired_routes(peers: &[Peer], me: &str) -> BTreeMap<Ipv4Net, Ipv4Addr> {
    let own = peers.iter().find(|p| p.name == me);
    let mut sorted: Vec<&Peer> = peers.iter().filter(|p| p.name != me).collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = BTreeMap::new();
    for p in sorted {
        if let Some(own) = own {
            if own.ip == p.ip
                || own.pod_cidr.contains(&p.pod_cidr)
                || p.pod_cidr.contains(&own.pod_cidr)
            {
                continue;
            }
        }
        out.entry(p.pod_cidr).or_insert(p.ip);
    }
    out
}

/// What to change to get from `current` routes (ours, as the kernel has them) to `desired`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Routes to add or replace (a new gateway for a known range).
    pub replace: Vec<(Ipv4Net, Ipv4Addr)>,
    /// Routes of ours to delete (their node is gone or lost its range).
    pub delete: Vec<Ipv4Net>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.replace.is_empty() && self.delete.is_empty()
    }
}

pub fn plan(current: &BTreeMap<Ipv4Net, Ipv4Addr>, desired: &BTreeMap<Ipv4Net, Ipv4Addr>) -> Plan {
    Plan {
        replace: desired
            .iter()
            .filter(|(net, gw)| current.get(net) != Some(gw))
            .map(|(n, g)| (*n, *g))
            .collect(),
        delete: current
            .keys()
            .filter(|n| !desired.contains_key(n))
            .copied()
            .collect(),
    }
}

/// The masquerade table, replaced as a whole in one transaction: pod traffic (from the
/// cluster range) to anywhere outside it and not multicast leaves with the node's address;
/// pod to pod traffic, on one node or across nodes, keeps its source. Service traffic was
/// DNATed before this hook, so a pod reaching a Service whose endpoint is a pod is pod to
/// pod here (the Service proxy masquerades its own hairpin cases).
pub fn masquerade_script(table: &str, cluster: Ipv4Net) -> String {
    format!(
        "add table ip {table}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {cluster} ip daddr {cluster} return\n\
         \t\tip saddr {cluster} ip daddr 224.0.0.0/4 return\n\
         \t\tip saddr {cluster} masquerade\n\
         \t}}\n\
         }}\n"
    )
}

/// Runs `nft -f -` with `script` on stdin.
pub async fn nft(argv: &[String], script: &str) -> Result<(), Error> {
    use tokio::io::AsyncWriteExt;
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| Error::Nft("no nft command".into()))?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Error::Nft(format!(
                "running {program}: {e} (install nftables: apt-get install nftables)"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(|e| Error::Nft(format!("writing to nft: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| Error::Nft(format!("waiting for nft: {e}")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Nft(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// Installs the masquerade table and turns on IPv4 forwarding (the node routes pod
/// traffic); needs no API server, so static pods get it too.
pub async fn masquerade(config: &Config) -> Result<(), Error> {
    let forward = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(forward)
        .map(|v| v.trim() != "1")
        .unwrap_or(true)
    {
        std::fs::write(forward, "1")
            .map_err(|e| Error::Sysctl(format!("turning on IPv4 forwarding ({forward}): {e}")))?;
    }
    nft(
        &config.nft,
        &masquerade_script(&config.table, config.cluster_cidr),
    )
    .await
}

/// Routes through netlink, only ever ours (protocol [`ROUTE_PROTOCOL`], main table).
struct Routes {
    handle: rtnetlink::Handle,
}

impl Routes {
    fn open() -> Result<Self, Error> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(|e| Error::Netlink(e.to_string()))?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    fn ours(msg: &rtnetlink::packet_route::route::RouteMessage) -> Option<(Ipv4Net, Ipv4Addr)> {
        use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol};
        if msg.header.protocol != RouteProtocol::Other(ROUTE_PROTOCOL) {
            return None;
        }
        let mut dst = None;
        let mut gw = None;
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(*a),
                RouteAttribute::Gateway(RouteAddress::Inet(a)) => gw = Some(*a),
                _ => {}
            }
        }
        let net = Ipv4Net::new(dst?, msg.header.destination_prefix_length).ok()?;
        Some((net, gw.unwrap_or(Ipv4Addr::UNSPECIFIED)))
    }

    async fn current(&self) -> Result<BTreeMap<Ipv4Net, Ipv4Addr>, Error> {
        use rtnetlink::RouteMessageBuilder;
        let filter = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let mut stream = self.handle.route().get(filter).execute();
        let mut out = BTreeMap::new();
        while let Some(msg) = stream
            .try_next()
            .await
            .map_err(|e| Error::Netlink(e.to_string()))?
        {
            if let Some((net, gw)) = Self::ours(&msg) {
                out.insert(net, gw);
            }
        }
        Ok(out)
    }

    fn message(net: Ipv4Net, gw: Option<Ipv4Addr>) -> rtnetlink::packet_route::route::RouteMessage {
        use rtnetlink::packet_route::route::RouteProtocol;
        use rtnetlink::RouteMessageBuilder;
        let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(net.network(), net.prefix_len())
            .protocol(RouteProtocol::Other(ROUTE_PROTOCOL));
        if let Some(gw) = gw {
            b = b.gateway(gw);
        }
        b.build()
    }

    /// Applies `plan`; every step is tried, the first error is returned.
    async fn apply(&self, plan: &Plan) -> Result<(), Error> {
        let mut first = None;
        for net in &plan.delete {
            if let Err(e) = self
                .handle
                .route()
                .del(Self::message(*net, None))
                .execute()
                .await
            {
                first.get_or_insert(Error::Netlink(format!("deleting the route to {net}: {e}")));
            }
        }
        for (net, gw) in &plan.replace {
            if let Err(e) = self
                .handle
                .route()
                .add(Self::message(*net, Some(*gw)))
                .replace()
                .execute()
                .await
            {
                first.get_or_insert(Error::Netlink(format!(
                    "routing {net} via {gw} (is {gw} on a link of this machine? host-gw needs the nodes on one network): {e}"
                )));
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// How often the routes and the table are checked against what they should be, even
/// without a change (someone flushed them by hand).
const RESYNC: Duration = Duration::from_secs(30);

/// Keeps the masquerade table and the routes to other nodes' pod ranges current, until
/// dropped. The table is expected installed already by [`masquerade`] (the node agent does
/// it before any pod starts, and fails if it cannot); this checks it again at every resync.
/// Errors applying them are logged and retried; it returns only if it cannot talk to
/// netlink at all.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let routes = Routes::open()?;
    let api: Api<Node> = Api::all(client);
    let (reader, writer) = kube::runtime::reflector::store();
    // The reflector only advances while its stream is polled: a task of its own drives it
    // and wakes the loop on every change.
    let changed = std::sync::Arc::new(tokio::sync::Notify::new());
    let driver = {
        let changed = changed.clone();
        tokio::spawn(async move {
            let stream = kube::runtime::reflector(writer, watcher(api, watcher::Config::default()))
                .default_backoff()
                .touched_objects();
            let mut stream = std::pin::pin!(stream);
            while let Some(next) = stream.next().await {
                match next {
                    Ok(_) => changed.notify_one(),
                    Err(e) => tracing::debug!(error = %e, "watching nodes for pod routes"),
                }
            }
        })
    };
    struct Abort(tokio::task::JoinHandle<()>);
    impl Drop for Abort {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let _driver = Abort(driver);
    let mut masq_ok = true;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + RESYNC, RESYNC);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = changed.notified() => {
                // Coalesce a burst of node updates (every node's status every minute).
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ = tick.tick() => masq_ok = false,
        }
        if !masq_ok {
            match masquerade(&config).await {
                Ok(()) => masq_ok = true,
                Err(e) => {
                    tracing::warn!(error = %e, "installing the pod masquerade rule failed; retrying")
                }
            }
        }
        if reader.wait_until_ready().await.is_err() {
            return Err(Error::Watch("the node watch ended".into()));
        }
        let peers: Vec<Peer> = reader.state().iter().filter_map(|n| peer(n)).collect();
        let desired = desired_routes(&peers, &config.node_name);
        let current = match routes.current().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "reading the routes failed");
                continue;
            }
        };
        let plan = plan(&current, &desired);
        tracing::debug!(peers = peers.len(), desired = ?desired, current = ?current, "pod routes");
        if plan.is_empty() {
            continue;
        }
        tracing::info!(add = ?plan.replace, delete = ?plan.delete, "pod routes to other nodes");
        if let Err(e) = routes.apply(&plan).await {
            tracing::warn!(error = %e, "updating pod routes failed; retrying at the next change or in 30s");
        }
    }
}

/// Removes what [`run`] made: our routes and the masquerade table (`skiff reset`, tests).
pub async fn remove(config: &Config) -> Result<(), Error> {
    let routes = Routes::open()?;
    let current = routes.current().await?;
    routes
        .apply(&Plan {
            replace: vec![],
            delete: current.into_keys().collect(),
        })
        .await?;
    let table = &config.table;
    nft(
        &config.nft,
        &format!("add table ip {table}\ndelete table ip {table}\n"),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Node {
        let mut v = json!({"metadata": {"name": name}, "spec": {}, "status": {}});
        if let Some(c) = cidr {
            v["spec"] = json!({"podCIDR": c, "podCIDRs": [c]});
        }
        if let Some(ip) = ip {
            v["status"] = json!({"addresses": [
                {"type": "Hostname", "address": name},
                {"type": "InternalIP", "address": ip}]});
        }
        serde_json::from_value(v).expect("node")
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("net")
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().expect("ip")
    }

    #[test]
    fn a_peer_needs_a_range_and_an_internal_ip() {
        assert_eq!(
            peer(&node("a", Some("10.42.1.0/24"), Some("192.168.1.2"))),
            Some(Peer {
                name: "a".into(),
                pod_cidr: net("10.42.1.0/24"),
                ip: ip("192.168.1.2")
            })
        );
        assert_eq!(peer(&node("b", None, Some("192.168.1.3"))), None);
        assert_eq!(peer(&node("c", Some("10.42.2.0/24"), None)), None);
        assert_eq!(
            peer(&node("d", Some("not-a-cidr"), Some("192.168.1.4"))),
            None
        );
    }

    #[test]
    fn every_other_node_is_routed_via_its_address() {
        let peers: Vec<Peer> = [
            node("me", Some("10.42.0.0/24"), Some("10.0.0.1")),
            node("b", Some("10.42.1.0/24"), Some("10.0.0.2")),
            node("c", Some("10.42.2.0/24"), Some("10.0.0.3")),
            // Same address as me: a stale registration of this machine.
            node("old-me", Some("10.42.9.0/24"), Some("10.0.0.1")),
            // Claims my range.
            node("clash", Some("10.42.0.0/24"), Some("10.0.0.7")),
            // A second claim of b's range loses to b (sorted by name).
            node("z", Some("10.42.1.0/24"), Some("10.0.0.9")),
        ]
        .iter()
        .filter_map(peer)
        .collect();
        let want: BTreeMap<_, _> = [
            (net("10.42.1.0/24"), ip("10.0.0.2")),
            (net("10.42.2.0/24"), ip("10.0.0.3")),
        ]
        .into();
        assert_eq!(desired_routes(&peers, "me"), want);
    }

    #[test]
    fn without_its_own_node_every_peer_is_routed() {
        let peers: Vec<Peer> = [node("b", Some("10.42.1.0/24"), Some("10.0.0.2"))]
            .iter()
            .filter_map(peer)
            .collect();
        assert_eq!(desired_routes(&peers, "me").len(), 1);
    }

    #[test]
    fn the_plan_adds_moves_and_deletes() {
        let current: BTreeMap<_, _> = [
            (net("10.42.1.0/24"), ip("10.0.0.2")),
            (net("10.42.2.0/24"), ip("10.0.0.3")),
            (net("10.42.3.0/24"), ip("10.0.0.4")),
        ]
        .into();
        let desired: BTreeMap<_, _> = [
            (net("10.42.1.0/24"), ip("10.0.0.2")),
            (net("10.42.2.0/24"), ip("10.0.0.8")),
            (net("10.42.4.0/24"), ip("10.0.0.5")),
        ]
        .into();
        assert_eq!(
            plan(&current, &desired),
            Plan {
                replace: vec![
                    (net("10.42.2.0/24"), ip("10.0.0.8")),
                    (net("10.42.4.0/24"), ip("10.0.0.5"))
                ],
                delete: vec![net("10.42.3.0/24")],
            }
        );
        assert!(plan(&desired, &desired).is_empty());
    }

    #[test]
    fn the_masquerade_table_is_replaced_whole_and_spares_pod_to_pod() {
        let s = masquerade_script("skiff-podnet", net("10.42.0.0/16"));
        assert!(s.starts_with("add table ip skiff-podnet\ndelete table ip skiff-podnet\n"));
        let rules: Vec<&str> = s
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("ip "))
            .collect();
        assert_eq!(
            rules,
            [
                "ip saddr 10.42.0.0/16 ip daddr 10.42.0.0/16 return",
                "ip saddr 10.42.0.0/16 ip daddr 224.0.0.0/4 return",
                "ip saddr 10.42.0.0/16 masquerade",
            ]
        );
    }
}
