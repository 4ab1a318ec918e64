//! `skiff server`: the datastore, the certificates, the API server, the admin kubeconfig.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use skiff_apiserver::{tls, App, Config};
use skiff_store::{EmbeddedConfig, EmbeddedStore, EtcdConfig, EtcdStore, Store};

use crate::components;
use crate::pki::{self, Pki};

#[derive(clap::Args, Debug, Clone)]
pub struct ServerArgs {
    /// Where the cluster keeps its state.
    #[arg(long, default_value = "/var/lib/skiff", env = "SKIFF_DATA_DIR")]
    pub data_dir: PathBuf,
    /// The HTTPS port of the API (0: any free port, written to the kubeconfig).
    #[arg(long, default_value_t = 6443)]
    pub https_port: u16,
    /// The address the API listens on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// More names or addresses for the serving certificate (repeatable, comma-separated).
    #[arg(long = "tls-san", value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// Also write the admin kubeconfig here.
    #[arg(long)]
    pub write_kubeconfig: Option<PathBuf>,
    /// An etcd to keep the state in (`http://host:2379[,http://...]`) instead of the
    /// embedded datastore.
    #[arg(long)]
    pub datastore_endpoint: Option<String>,
    /// The key prefix in etcd.
    #[arg(long, default_value = "/registry")]
    pub etcd_prefix: String,
    /// Run no node in this process: only the control plane (k3s's flag). Without it the
    /// server registers this machine as a node and runs pods in real containers (root).
    #[arg(long)]
    pub disable_agent: bool,
    /// The node this server runs (unless --disable-agent).
    #[command(flatten)]
    pub node: crate::node_agent::NodeArgs,
    /// Run no controller manager in this process (k3s's flag).
    #[arg(long)]
    pub disable_controller_manager: bool,
    /// Run no scheduler in this process (k3s's flag).
    #[arg(long)]
    pub disable_scheduler: bool,
    /// Run no cluster DNS in this process (k3s's `--disable coredns`): no `kube-dns`
    /// Service, no answers for cluster.local.
    #[arg(long)]
    pub disable_dns: bool,
    /// The port the cluster DNS listens on at the node IP (0: any free port); the
    /// `kube-dns` Service's port 53 is sent there.
    #[arg(long, default_value_t = 53, hide = true)]
    pub cluster_dns_port: u16,
    /// Where the cluster DNS reads the upstream resolvers it forwards other names to.
    #[arg(long, default_value = "/etc/resolv.conf", hide = true)]
    pub cluster_dns_resolv_conf: PathBuf,
    /// A node whose Lease is not renewed for this long becomes NotReady (a Go duration).
    #[arg(long, default_value = "40s", value_parser = parse_go_duration)]
    pub node_monitor_grace_period: std::time::Duration,
    /// Run this many simulated nodes in this process (`sim-0`, ...): they register, keep
    /// their Leases, and report the pods bound to them running, without running anything.
    #[arg(long, default_value_t = 0)]
    pub simulated_nodes: usize,
    /// The capacity (and allocatable) of each simulated node.
    #[arg(long, default_value = "cpu=32,memory=256Gi,pods=110")]
    pub sim_capacity: String,
    /// Terminated pods kept before pod GC deletes the oldest.
    #[arg(long, default_value_t = 12_500)]
    pub terminated_pod_gc_threshold: usize,
    /// The range Service ClusterIPs come from.
    #[arg(long, default_value = "10.43.0.0/16")]
    pub service_cidr: String,
    /// How long an Event is kept after its last write (a Go duration: 1h, 30m, 1h30m0s).
    #[arg(long, default_value = "1h", value_parser = parse_go_duration)]
    pub event_ttl: std::time::Duration,
    /// How often a watch that allows bookmarks gets one (upstream: every minute); for tests.
    #[arg(long, default_value_t = 60_000, hide = true)]
    pub watch_bookmark_interval_ms: u64,
}

impl ServerArgs {
    /// The defaults of every flag, with the data dir `data_dir` (what tests start from).
    pub fn defaults(data_dir: &std::path::Path) -> Self {
        use clap::{Args, FromArgMatches};
        let command = Self::augment_args(clap::Command::new("server").no_binary_name(true));
        let matches = command
            .try_get_matches_from(["--data-dir", &data_dir.to_string_lossy()])
            .unwrap_or_else(|e| unreachable!("the defaults parse: {e}"));
        Self::from_arg_matches(&matches).unwrap_or_else(|e| unreachable!("the defaults parse: {e}"))
    }
}

/// Parses a duration as Go's `time.ParseDuration` writes them (what kube-apiserver's and
/// k3s's duration flags take): `1h`, `30m`, `1h30m0s`, `1.5h`, `500ms`, `0`.
pub fn parse_go_duration(text: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {text:?} (expected e.g. 1h, 30m, 1h30m0s)");
    if text == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * seconds;
        rest = &rest[unit_len..];
    }
    if text.is_empty() {
        return Err(bad());
    }
    std::time::Duration::try_from_secs_f64(total).map_err(|_| bad())
}

async fn open_store(args: &ServerArgs) -> Result<Arc<dyn Store>> {
    match &args.datastore_endpoint {
        None => {
            let dir = args.data_dir.join("server").join("db");
            let store =
                tokio::task::spawn_blocking(move || EmbeddedStore::open(EmbeddedConfig::new(dir)))
                    .await?
                    .context("opening the embedded datastore")?;
            Ok(Arc::new(store))
        }
        Some(endpoint) => {
            let endpoints: Vec<String> = endpoint.split(',').map(|s| s.trim().to_owned()).collect();
            if let Some(bad) = endpoints
                .iter()
                .find(|e| !e.starts_with("http://") && !e.starts_with("https://"))
            {
                bail!("--datastore-endpoint {bad:?}: only etcd endpoints (http://host:port) are supported");
            }
            let mut config = EtcdConfig::new(endpoints);
            config.prefix = args.etcd_prefix.clone();
            let store = EtcdStore::connect(config)
                .await
                .with_context(|| format!("connecting to etcd at {endpoint} (is it running?)"))?;
            Ok(Arc::new(store))
        }
    }
}

fn load_token(path: &std::path::Path) -> Result<String> {
    if let Ok(t) = std::fs::read_to_string(path) {
        let t = t.trim().to_owned();
        if !t.is_empty() {
            return Ok(t);
        }
    }
    let token: String = (0..40)
        .map(|_| {
            const HEX: &[u8] = b"0123456789abcdef";
            HEX[rand::random_range(0..16)] as char
        })
        .collect();
    std::fs::write(path, format!("{token}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

/// A started server: where it listens and where its kubeconfig is. Dropping it stops it.
pub struct Running {
    pub url: String,
    pub kubeconfig: PathBuf,
    /// The datastore it serves from.
    pub store: Arc<dyn Store>,
    /// The API server's state (for in-process clients).
    pub app: Arc<App>,
    /// Where the cluster DNS answers (unless --disable-dns).
    pub dns_addr: Option<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
    /// The components started with it (controller manager, scheduler, nodes).
    components: tokio::task::JoinSet<()>,
    /// The server's own node.
    node: Option<components::NodeStop>,
}

impl Running {
    /// Stops the server's own node, if it runs one: at once, or after a graceful node
    /// shutdown of its pods with `--shutdown-grace-period` (the API serves meanwhile).
    pub async fn stop_node(&mut self) {
        if let Some(node) = self.node.take() {
            node.stop.send_replace(true);
            let _ = node.done.await;
        }
    }

    /// A kube client that calls this server in process, as `user` in `groups`.
    pub fn local_client(&self, user: &str, groups: &[&str], user_agent: &str) -> kube::Client {
        components::local_client(&self.app, user, groups, user_agent)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.components.abort_all();
        self.task.abort();
    }
}

/// Starts the server: datastore, certificates, API, kubeconfig. Returns once it serves.
pub async fn start(args: &ServerArgs) -> Result<Running> {
    let server_dir = args.data_dir.join("server");
    std::fs::create_dir_all(&server_dir).with_context(|| {
        format!(
            "creating the data dir {} (run as root or pass --data-dir)",
            server_dir.display()
        )
    })?;
    let store = open_store(args).await?;

    let service_ip: IpAddr = first_service_ip(&args.service_cidr)?;
    let sans = pki::serving_sans(&args.tls_san, service_ip);
    let pki = Pki::load_or_create(&server_dir.join("tls"), &sans)?;
    let token = load_token(&server_dir.join("token"))?;
    let join_routes = crate::join::router(&token, pki.clone());

    let ranges =
        skiff_apiserver::services::ServiceRanges::parse(&args.service_cidr).with_context(|| {
            format!(
                "--service-cidr {:?} is not an IPv4 CIDR like 10.43.0.0/16",
                args.service_cidr
            )
        })?;
    let addr = SocketAddr::new(args.bind_address, args.https_port);
    let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!("listening on {addr} (is another server running? pick another --https-port)")
    })?;
    let port = listener.local_addr()?.port();
    let (kubelet_cert, kubelet_key) = pki.kubelet_client_cert(&server_dir.join("tls"))?;
    let kubelet_client = tls::kubelet_client_config(&pki.ca_cert, &kubelet_cert, &kubelet_key)
        .context("the API server's kubelet client certificate")?;
    let app = App::new(
        store.clone(),
        Config {
            admin_tokens: vec![token],
            services: ranges,
            https_port: port,
            bookmark_interval: std::time::Duration::from_millis(
                args.watch_bookmark_interval_ms.max(1),
            ),
            event_ttl: args.event_ttl,
            kubelet_client: Some(kubelet_client),
        },
    );
    app.bootstrap()
        .await
        .map_err(|e| anyhow::anyhow!("bootstrapping the cluster: {e}"))?;
    // Bound before the API serves, so a port already taken fails the start cleanly.
    let dns = components::bind_dns(&app, args).await?;

    let tls_config = tls::server_config(&tls::TlsMaterial {
        cert_chain_pem: format!("{}{}", pki.serving_cert, pki.ca_cert),
        key_pem: pki.serving_key.clone(),
        client_ca_pem: pki.ca_cert.clone(),
    })?;
    let host = if args.bind_address.is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        args.bind_address.to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let url = format!("https://{host}:{port}");
    let kubeconfig = pki::kubeconfig(&pki, &url);
    let kubeconfig_path = args.data_dir.join("kubeconfig.yaml");
    pki::write_kubeconfig(&kubeconfig_path, &kubeconfig)?;
    if let Some(extra) = &args.write_kubeconfig {
        pki::write_kubeconfig(extra, &kubeconfig)?;
    }
    let task = tokio::spawn(tls::serve_with(
        listener,
        tls_config,
        app.clone(),
        Some(join_routes),
    ));
    let mut started = components::start(&app, args, &pki, &server_dir)?;
    let dns_addr = dns.map(|dns| components::run_dns(&app, args, dns, &mut started.set));
    Ok(Running {
        url,
        kubeconfig: args.write_kubeconfig.clone().unwrap_or(kubeconfig_path),
        store,
        app,
        dns_addr,
        task,
        components: started.set,
        node: started.node,
    })
}

/// `skiff server`: starts, logs one ready line, serves until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> Result<()> {
    let started = Instant::now();
    let running = start(&args).await?;
    tracing::info!(
        "skiff is ready: API at {}, kubeconfig at {} ({} ms)",
        running.url,
        running.kubeconfig.display(),
        started.elapsed().as_millis()
    );
    shutdown_signal().await;
    tracing::info!("shutting down");
    let mut running = running;
    running.stop_node().await;
    drop(running);
    Ok(())
}

pub async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// The first usable address of a CIDR (10.43.0.0/16 -> 10.43.0.1): the `kubernetes`
/// Service's ClusterIP.
pub fn first_service_ip(cidr: &str) -> Result<IpAddr> {
    let (net, bits) = cidr
        .split_once('/')
        .with_context(|| format!("--service-cidr {cidr:?} is not a CIDR (like 10.43.0.0/16)"))?;
    let net: std::net::Ipv4Addr = net
        .parse()
        .with_context(|| format!("--service-cidr {cidr:?}: bad address"))?;
    let bits: u32 = bits
        .parse()
        .with_context(|| format!("--service-cidr {cidr:?}: bad prefix length"))?;
    if !(8..=30).contains(&bits) {
        bail!("--service-cidr {cidr:?}: the prefix length must be between 8 and 30");
    }
    let mask = u32::MAX << (32 - bits);
    Ok(IpAddr::V4(std::net::Ipv4Addr::from(
        (u32::from(net) & mask) + 1,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn go_durations_parse_as_go_parses_them() {
        for (text, want) in [
            ("1h", Duration::from_secs(3600)),
            ("1h0m0s", Duration::from_secs(3600)),
            ("30m", Duration::from_secs(1800)),
            ("1h30m", Duration::from_secs(5400)),
            ("1.5h", Duration::from_secs(5400)),
            ("500ms", Duration::from_millis(500)),
            ("2s", Duration::from_secs(2)),
            ("0", Duration::ZERO),
        ] {
            assert_eq!(parse_go_duration(text), Ok(want), "{text}");
        }
        for bad in ["", "1", "h", "1x", "-1h", "1h-", "1..5s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }
}
