//! The real node, in `skiff server` (its own node, unless `--disable-agent`) and in
//! `skiff agent`: the local runtime (images, runc, CNI, cgroups), the node's registration
//! and status (`skiff_kubelet::node`) and the pod workers (`skiff_kubelet::kubelet`), all
//! over one `kube::Client` authenticated as the node.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use skiff_kubelet::kubelet::sandbox::SandboxSettings;
use skiff_kubelet::node::{NodeConfig, NodeHandle};
use skiff_kubelet::volumes::VolumeManager;
use skiff_runtime::container::monitor::MonitorCommand;
use skiff_runtime::cri::PodRuntime;
use skiff_runtime::local::{LocalConfig, LocalRuntime};
use skiff_runtime::sandbox::cni::{self, Cni, NetworkList};

/// The node's flags, shared by `skiff server` and `skiff agent`.
#[derive(clap::Args, Clone, Debug)]
pub struct NodeArgs {
    /// The node's name, and its identity `system:node:<name>` (default: this machine's
    /// hostname; with `skiff agent --simulated-nodes`, the first simulated node's name).
    #[arg(long = "node-name")]
    pub node_name: Option<String>,
    /// The node's InternalIP (default: the source address of the default route).
    #[arg(long = "node-ip")]
    pub node_ip: Option<IpAddr>,
    /// The OCI runtime: `runc`, `crun`, or a path to any compatible binary.
    #[arg(long = "runtime", default_value = "runc")]
    pub runtime: PathBuf,
    /// A directory of CNI configurations to use instead of skiff's own bridge network.
    #[arg(long = "cni-conf-dir")]
    pub cni_conf_dir: Option<PathBuf>,
    /// Where CNI plugins are looked up (repeatable; default /usr/lib/cni and /opt/cni/bin).
    #[arg(long = "cni-bin-dir")]
    pub cni_bin_dir: Vec<PathBuf>,
    /// The range pod IPs come from: the server hands each node a /24 of it; a node
    /// masquerades its pods' traffic leaving it and routes the other nodes' ranges.
    #[arg(long = "cluster-cidr", default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// Run no Service proxy on this node (k3s's flag): ClusterIPs, NodePorts and
    /// load-balancer addresses then answer only through a proxy of your own.
    #[arg(long = "disable-kube-proxy")]
    pub disable_kube_proxy: bool,
    /// The nftables table (family `ip`) the Service proxy owns (tests running several
    /// nodes in one network namespace give each its own).
    #[arg(long = "proxy-table", default_value = "skiff", hide = true)]
    pub proxy_table: String,
    /// The nftables table (family `ip`) of the pods' masquerade rule (tests running nodes
    /// in the host's network namespace give each its own, to remove it afterwards).
    #[arg(long = "podnet-table", default_value = skiff_kubelet::podnet::DEFAULT_TABLE, hide = true)]
    pub podnet_table: String,
    /// The cluster DNS service address pods resolve through.
    #[arg(long = "cluster-dns", default_value = "10.43.0.10")]
    pub cluster_dns: String,
    /// The cluster's DNS domain.
    #[arg(long = "cluster-domain", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Resources held back for Kubernetes' own daemons, as upstream's kubelet flag:
    /// `cpu=200m,memory=500Mi,ephemeral-storage=1Gi` (allocatable = capacity minus this,
    /// minus --system-reserved).
    #[arg(long = "kube-reserved", value_parser = parse_reserved, default_value = "")]
    pub kube_reserved: BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    /// Resources held back for the operating system's daemons (same form as --kube-reserved).
    #[arg(long = "system-reserved", value_parser = parse_reserved, default_value = "")]
    pub system_reserved: BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    /// The most pods the node runs (its `pods` capacity).
    #[arg(long = "max-pods", default_value_t = 110, value_parser = clap::value_parser!(i64).range(1..))]
    pub max_pods: i64,
    /// The port of the kubelet's HTTPS server (logs, exec, attach, port-forward through the
    /// API server); 0 picks a free one.
    #[arg(long = "kubelet-port", default_value_t = 10250)]
    pub kubelet_port: u16,
    /// The directory of static pod manifests, run without the API server and mirrored
    /// into it (default: `<data-dir>/agent/pod-manifests`).
    #[arg(long = "pod-manifest-path")]
    pub pod_manifest_path: Option<PathBuf>,
    /// On SIGTERM or SIGINT, kill the node's pods within this long before stopping
    /// (upstream's graceful node shutdown: the node reports NotReady, pods end Failed with
    /// reason Terminated). 0, the default, stops without touching them: the containers
    /// keep running and a restarted node adopts them.
    #[arg(long = "shutdown-grace-period", default_value = "0s", value_parser = crate::server::parse_go_duration)]
    pub shutdown_grace_period: std::time::Duration,
    /// The part of --shutdown-grace-period kept for critical pods (static pods and pods of
    /// system-critical priority), killed after the others.
    #[arg(long = "shutdown-grace-period-critical-pods", default_value = "0s", value_parser = crate::server::parse_go_duration)]
    pub shutdown_grace_period_critical_pods: std::time::Duration,
    /// The binary run as `<it> container-monitor` for each container (default: this one;
    /// tests, whose own binary is a test harness, point it at skiff's).
    #[arg(long = "container-monitor-bin", hide = true)]
    pub container_monitor_bin: Option<PathBuf>,
}

/// `cpu=200m,memory=500Mi`: resource names and quantities, as upstream's
/// `--kube-reserved`/`--system-reserved` (empty: nothing reserved).
pub fn parse_reserved(
    text: &str,
) -> Result<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>, String> {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let mut out = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not name=quantity (like cpu=200m,memory=500Mi)"))?;
        let (name, value) = (name.trim(), value.trim());
        if !matches!(name, "cpu" | "memory" | "ephemeral-storage" | "pid") {
            return Err(format!(
                "{name:?}: only cpu, memory, ephemeral-storage and pid can be reserved"
            ));
        }
        skiff_api::validation::quantity::Quantity::parse(value)
            .map_err(|e| format!("{name}={value}: not a quantity: {e}"))?;
        out.insert(name.to_owned(), Quantity(value.to_owned()));
    }
    Ok(out)
}

/// The kubelet server's TLS material: its serving certificate (for the node's name and
/// IP) and key, and the CA whose client certificates it accepts (the API server's).
#[derive(Clone)]
pub struct KubeletServing {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: String,
}

/// The node's InternalIP: `--node-ip`, else the source address of the default route.
pub fn node_ip(args: &NodeArgs) -> Result<IpAddr> {
    args.node_ip
        .or_else(skiff_kubelet::node::host::default_node_ip)
        .context("this machine has no address to give the node: pass --node-ip")
}

/// This machine's hostname as a node name: lowercase, anything but `[a-z0-9.-]` a `-`.
pub fn default_node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cleaned: String = host
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned.trim_matches(|c| c == '-' || c == '.').to_owned();
    if cleaned.is_empty() {
        "skiff-node".into()
    } else {
        cleaned
    }
}

/// What the node needs from the host before it can run containers, with what to do.
fn check_host(args: &NodeArgs) -> Result<()> {
    if !rustix::process::geteuid().is_root() {
        bail!(
            "the node agent runs containers and needs root: run as root, or pass \
             --disable-agent to run only the control plane"
        );
    }
    let rt = &args.runtime;
    let found = if rt.components().count() > 1 {
        rt.exists()
    } else {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(rt).exists()))
    };
    if !found {
        bail!(
            "the OCI runtime {:?} is not installed: `apt-get install runc` (or pass --runtime)",
            rt
        );
    }
    Ok(())
}

fn local_config(data_dir: &std::path::Path, args: &NodeArgs) -> Result<LocalConfig> {
    let monitor = match &args.container_monitor_bin {
        Some(bin) => MonitorCommand {
            program: bin.clone(),
            args: vec!["container-monitor".into()],
        },
        None => MonitorCommand::current_exe().context("finding the skiff binary")?,
    };
    let mut config = LocalConfig::new(data_dir, monitor);
    config.runtime_binary = args.runtime.clone();
    Ok(config)
}

/// Runs the node until the future is dropped (containers keep running).
///
/// The pod workers do not wait for the API server: with a pod network known on disk (the
/// conflist an earlier run wrote for the node's podCIDR, or `--cni-conf-dir`) or static pod
/// manifests to run, they start at once, so static pods run while the API server is down
/// (upstream's kubelet runs the control plane's own static pods that way). Registration
/// is retried in the background until it succeeds; once the node is registered and its pod
/// network is ready, the workers are restarted on the new network if it differs from the
/// one they started with (a restart adopts the running containers).
///
/// When `stop` turns true the node stops: at once (containers keep running), or, with
/// `--shutdown-grace-period`, after a graceful node shutdown of its pods.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    client: kube::Client,
    data_dir: PathBuf,
    args: NodeArgs,
    node_name: String,
    labels: BTreeMap<String, String>,
    serving: KubeletServing,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    check_host(&args)?;
    let node_ip = node_ip(&args)?;
    let tls = skiff_kubelet::server::tls_config(
        serving.cert_pem.as_bytes(),
        serving.key_pem.as_bytes(),
        serving.client_ca_pem.as_bytes(),
    )
    .context("the kubelet's serving certificate")?;
    let listen = std::net::SocketAddr::new(
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        args.kubelet_port,
    );
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!(
                "listening on {listen} for the kubelet (another kubelet or skiff on this \
             machine?): pass another --kubelet-port"
            )
        })?;
    let kubelet_port = listener.local_addr()?.port();
    // The node's own runtime handle has no pod network: it reports images and the runtime
    // version; the pod workers' handle gets the network.
    let plain: Arc<dyn PodRuntime> = Arc::new(
        LocalRuntime::new(local_config(&data_dir, &args)?).context("opening the node's runtime")?,
    );
    let mut config = NodeConfig::new(&node_name, &data_dir);
    config.node_ip = Some(node_ip);
    config.kubelet_port = i32::from(kubelet_port);
    config.kube_reserved = args.kube_reserved.clone();
    config.system_reserved = args.system_reserved.clone();
    config.max_pods = args.max_pods;
    config.labels = labels;
    config.cni_conf_dir = args.cni_conf_dir.clone();
    // The kubelet's server needs no pod network: logs, exec and port-forward reach the
    // containers and sandboxes the runtime already knows.
    let server = tokio::spawn(skiff_kubelet::server::serve_on(
        listener,
        Arc::new(tls),
        plain.clone(),
    ));
    let _server = AbortOnDrop(server);
    let mut registering = AbortOnDrop(tokio::spawn(register(
        client.clone(),
        plain.clone(),
        config.clone(),
    )));

    let facts = tokio::task::spawn_blocking(skiff_kubelet::node::host::HostFacts::read)
        .await
        .unwrap_or_default();
    let capacity = skiff_kubelet::node::status::capacity(
        &facts,
        skiff_kubelet::node::host::fs_usage(&data_dir),
        args.max_pods,
    );
    let pods = Pods {
        client,
        data_dir: data_dir.clone(),
        args: args.clone(),
        node_name: node_name.clone(),
        memory_capacity: i64::try_from(facts.memory_bytes).unwrap_or(i64::MAX),
        allocatable: skiff_kubelet::node::status::allocatable(
            &capacity,
            &args.kube_reserved,
            &args.system_reserved,
        ),
        host_ips: vec![node_ip.to_string()],
        manifests: args
            .pod_manifest_path
            .clone()
            .unwrap_or_else(|| data_dir.join("agent").join("pod-manifests")),
    };
    if let Err(e) = std::fs::create_dir_all(&pods.manifests) {
        tracing::warn!(path = %pods.manifests.display(), error = %e, "creating the pod manifest path");
    }
    let conf_dir = args
        .cni_conf_dir
        .clone()
        .unwrap_or_else(|| cni::default_conf_dir(&data_dir));

    // skiff's own pod network (not a user's --cni-conf-dir): pod traffic leaving the
    // cluster range is masqueraded (before any pod starts: static pods too), and the
    // other nodes' pod ranges are routed to them.
    let cluster: ipnet::Ipv4Net = args.cluster_cidr.parse().with_context(|| {
        format!(
            "--cluster-cidr {:?} is not an IPv4 CIDR like 10.42.0.0/16",
            args.cluster_cidr
        )
    })?;
    let _podnet = match args.cni_conf_dir {
        Some(_) => None,
        None => {
            let mut config = skiff_kubelet::podnet::Config::new(&node_name, cluster.trunc());
            config.table = args.podnet_table.clone();
            skiff_kubelet::podnet::masquerade(&config)
                .await
                .context("installing the pods' masquerade rule (nftables)")?;
            Some(AbortOnDrop(tokio::spawn({
                let client = pods.client.clone();
                async move {
                    if let Err(e) = skiff_kubelet::podnet::run(client, config).await {
                        tracing::error!(error = %e, "the pod routes to other nodes stopped");
                    }
                }
            })))
        }
    };

    // The Service proxy (whatever the CNI): its table is replaced in full at its first sync,
    // so a restart takes over the rules an earlier run left (and they keep routing meanwhile).
    let _proxy = (!args.disable_kube_proxy).then(|| {
        let config = skiff_proxy::Config {
            table: args.proxy_table.clone(),
            node_name: node_name.clone(),
            cluster_cidr: cluster.trunc(),
            ..skiff_proxy::Config::default()
        };
        let client = pods.client.clone();
        AbortOnDrop(tokio::spawn(async move {
            if let Err(e) = skiff_proxy::run(client, config).await {
                tracing::error!(error = %e, "the Service proxy stopped");
            }
        }))
    });

    // Before registration: the network an earlier run configured, if any.
    let started_with = NetworkList::load_dir(&conf_dir).ok();
    let mut workers = None;
    if started_with.is_some() || has_manifests(&pods.manifests) {
        workers = Some(pods.start(started_with.clone())?);
    }

    let node: NodeHandle = tokio::select! {
        node = &mut registering.0 => node.context("registering the node")?,
        _ = stopped(&mut stop) => {
            return shut_down(&args, None, workers.as_mut()).await;
        }
    };
    let mut ready = node.network_ready();
    if !*ready.borrow() {
        tracing::info!(node = %node_name, "waiting for the node's pod network (its podCIDR)");
    }
    tokio::select! {
        r = async { ready.wait_for(|r| *r).await.map(|_| ()) } => {
            r.context("the node stopped before its pod network was ready")?;
        }
        _ = stopped(&mut stop) => {
            return shut_down(&args, Some(&node), workers.as_mut()).await;
        }
    }
    let network = NetworkList::load_dir(&conf_dir)
        .with_context(|| format!("loading the CNI configuration in {}", conf_dir.display()))?;
    if workers.is_none() || started_with.as_ref() != Some(&network) {
        if workers.take().is_some() {
            tracing::info!(node = %node_name, "the pod network is ready: restarting the pod workers on it");
        }
        workers = Some(pods.start(Some(network))?);
    }
    if let Some(w) = workers.as_mut() {
        tokio::select! {
            // The workers run until this future is dropped or the node stops.
            _ = &mut w.task.0 => {}
            _ = stopped(&mut stop) => {
                return shut_down(&args, Some(&node), Some(w)).await;
            }
        }
    }
    drop(node);
    Ok(())
}

/// Resolves once the node is told to stop (or whoever could tell it is gone).
async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The node stops: with `--shutdown-grace-period`, a graceful node shutdown first (the node
/// NotReady, then the pods killed in their groups); without, nothing is touched.
async fn shut_down(
    args: &NodeArgs,
    node: Option<&NodeHandle>,
    workers: Option<&mut Workers>,
) -> Result<()> {
    let grace = args.shutdown_grace_period;
    if grace.is_zero() {
        tracing::info!("the node stops; its containers keep running");
        return Ok(());
    }
    tracing::info!(
        grace_seconds = grace.as_secs(),
        "graceful node shutdown: the node's pods are killed"
    );
    if let Some(node) = node {
        node.shutting_down(std::time::Duration::from_secs(5)).await;
    }
    if let Some(w) = workers {
        w.shutdown
            .send_replace(Some(skiff_kubelet::kubelet::NodeShutdown {
                grace,
                critical_grace: args.shutdown_grace_period_critical_pods,
            }));
        let bound = grace + std::time::Duration::from_secs(10);
        if tokio::time::timeout(bound, &mut w.task.0).await.is_err() {
            tracing::warn!("graceful node shutdown: pods still terminating; stopping anyway");
        }
    }
    Ok(())
}

/// The running pod workers and their shutdown order.
struct Workers {
    task: AbortOnDrop<()>,
    shutdown: tokio::sync::watch::Sender<Option<skiff_kubelet::kubelet::NodeShutdown>>,
}

/// Registers the node, retrying until it succeeds (upstream's kubelet never gives up: its
/// static pods run meanwhile).
async fn register(
    client: kube::Client,
    runtime: Arc<dyn PodRuntime>,
    config: NodeConfig,
) -> NodeHandle {
    loop {
        match skiff_kubelet::node::start(client.clone(), runtime.clone(), config.clone()).await {
            Ok(node) => return node,
            Err(e) => {
                tracing::warn!(node = %config.name, error = %e, "registering the node failed; trying again in 10s");
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            }
        }
    }
}

/// Whether the manifest directory holds any file (a static pod to run).
fn has_manifests(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.path().is_file())))
}

/// What the pod workers are started from, before and after registration.
struct Pods {
    client: kube::Client,
    data_dir: PathBuf,
    args: NodeArgs,
    node_name: String,
    memory_capacity: i64,
    allocatable: BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    host_ips: Vec<String>,
    manifests: PathBuf,
}

impl Pods {
    /// Starts the pod workers on `network` (None: hostNetwork pods only, until it is known).
    fn start(&self, network: Option<NetworkList>) -> Result<Workers> {
        let args = &self.args;
        let bin_dirs = if args.cni_bin_dir.is_empty() {
            cni::DEFAULT_BIN_DIRS.iter().map(PathBuf::from).collect()
        } else {
            args.cni_bin_dir.clone()
        };
        let mut local = local_config(&self.data_dir, args)?;
        local.cni = network.map(|n| Cni::new(n, bin_dirs));
        let runtime: Arc<dyn PodRuntime> =
            Arc::new(LocalRuntime::new(local).context("opening the pods' runtime")?);
        let agent_dir = self.data_dir.join("agent");
        let (probe_tx, probe_rx) = tokio::sync::mpsc::unbounded_channel();
        let shared = skiff_kubelet::kubelet::Shared {
            client: self.client.clone(),
            probes: skiff_kubelet::probes::ProbeManager::new(runtime.clone(), probe_tx),
            runtime,
            node_name: self.node_name.clone(),
            volumes: VolumeManager::new(agent_dir.join("pods")),
            agent_dir,
            sandbox: SandboxSettings {
                cluster_dns: vec![args.cluster_dns.clone()],
                cluster_domain: args.cluster_domain.clone(),
                host_resolv_conf: std::fs::read_to_string("/etc/resolv.conf").ok(),
                node_hosts: std::fs::read_to_string("/etc/hosts").unwrap_or_default(),
            },
            memory_capacity: self.memory_capacity,
            allocatable: self.allocatable.clone(),
            host_ips: self.host_ips.clone(),
        };
        tracing::info!(node = %self.node_name, "the node runs pods");
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(None);
        let task = AbortOnDrop(tokio::spawn(skiff_kubelet::kubelet::run_until_shutdown(
            shared,
            probe_rx,
            Some(self.manifests.clone()),
            shutdown_rx,
        )));
        Ok(Workers { task, shutdown })
    }
}

/// Stops a spawned task when dropped (the kubelet server and the pod workers go with the
/// node).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_resources_parse_as_upstream_writes_them() {
        let r = parse_reserved("cpu=200m, memory=500Mi,ephemeral-storage=1Gi").expect("parse");
        let got: Vec<(&str, &str)> = r.iter().map(|(k, v)| (k.as_str(), v.0.as_str())).collect();
        assert_eq!(
            got,
            [
                ("cpu", "200m"),
                ("ephemeral-storage", "1Gi"),
                ("memory", "500Mi")
            ]
        );
        assert!(parse_reserved("").expect("empty").is_empty());
        assert!(parse_reserved("cpu").is_err());
        assert!(parse_reserved("gpu=1").is_err());
        assert!(parse_reserved("memory=lots").is_err());
    }
}
