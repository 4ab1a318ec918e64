//! The components `skiff server` runs beside the API server: the controller manager, the
//! scheduler, the cluster DNS and simulated nodes, each a kube-rs client of the API through
//! the server's own router in process ([`local_client`]), authenticated as upstream's
//! component users. With etcd as the datastore several servers share one cluster, so the
//! controller manager and the scheduler run under leader election ([`crate::leader`]) and
//! only on the server that holds their Lease; on the embedded datastore there is only ever
//! one server, so they start at once.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use skiff_apiserver::local::LocalService;
use skiff_apiserver::tls::User;
use skiff_apiserver::App;

use crate::leader::{self, LeaderConfig};
use crate::pki::Pki;
use crate::server::ServerArgs;

/// A component's User-Agent, as upstream's: `kubelet/v1.33.0+skiff (linux/amd64) kubernetes/skiff`.
pub fn user_agent(component: &str) -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!(
        "{component}/{} ({}/{arch}) kubernetes/skiff",
        skiff_apiserver::GIT_VERSION,
        std::env::consts::OS
    )
}

/// A kube client that calls `app` in process as `user` (in `groups`).
pub fn local_client(app: &Arc<App>, user: &str, groups: &[&str], agent: &str) -> kube::Client {
    let user = User {
        name: user.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    };
    kube::Client::new(LocalService::new(app, user, agent), "default")
}

/// This server's identity in leader election: stable across its restarts (kept in the data
/// dir), so a restarted leader takes its Lease back at once instead of waiting it out.
fn identity(server_dir: &Path) -> Result<String> {
    let path = server_dir.join("identity");
    if let Ok(id) = std::fs::read_to_string(&path) {
        let id = id.trim();
        if !id.is_empty() {
            return Ok(id.to_owned());
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "skiff".into());
    let suffix: String = (0..8)
        .map(|_| {
            const HEX: &[u8] = b"0123456789abcdef";
            HEX[rand::random_range(0..16)] as char
        })
        .collect();
    let id = format!("{host}_{suffix}");
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(id)
}

/// The controller manager's settings from the server's flags.
pub fn controller_config(args: &ServerArgs, ca_pem: &str) -> skiff_controllers::Config {
    skiff_controllers::Config {
        cluster_cidr: args.node.cluster_cidr.clone(),
        root_ca_pem: ca_pem.to_owned(),
        node_monitor_grace_period: args.node_monitor_grace_period,
        terminated_pod_gc_threshold: args.terminated_pod_gc_threshold,
        ..skiff_controllers::Config::default()
    }
}

/// The started components: they stop when the set is dropped.
pub struct Started {
    pub set: tokio::task::JoinSet<()>,
    /// The server's own node, told to stop (gracefully, if its flags say so).
    pub node: Option<NodeStop>,
}

/// Stops a node agent: `stop` asks, `done` answers once it stopped.
pub struct NodeStop {
    pub stop: tokio::sync::watch::Sender<bool>,
    pub done: tokio::sync::oneshot::Receiver<()>,
}

/// Starts the components the flags ask for; they stop when the set is dropped.
pub fn start(app: &Arc<App>, args: &ServerArgs, pki: &Pki, server_dir: &Path) -> Result<Started> {
    let mut set = tokio::task::JoinSet::new();
    let mut node_stop = None;
    let elect = args.datastore_endpoint.is_some();
    let id = if elect {
        identity(server_dir)?
    } else {
        String::new()
    };
    if !args.disable_controller_manager {
        let client = local_client(
            app,
            "system:kube-controller-manager",
            &["system:authenticated"],
            &user_agent("kube-controller-manager"),
        );
        let config = controller_config(args, &pki.ca_cert);
        set.spawn(lead_or_run(
            client,
            elect.then(|| LeaderConfig::new("kube-controller-manager", &id)),
            move |client| {
                let config = config.clone();
                async move {
                    if let Err(e) = skiff_controllers::run(client, config).await {
                        tracing::error!(error = %e, "the controller manager stopped");
                    }
                }
            },
        ));
    }
    if !args.disable_scheduler {
        let client = local_client(
            app,
            "system:kube-scheduler",
            &["system:authenticated"],
            &user_agent("kube-scheduler"),
        );
        set.spawn(lead_or_run(
            client,
            elect.then(|| LeaderConfig::new("kube-scheduler", &id)),
            |client| async move {
                if let Err(e) =
                    skiff_scheduler::run(client, skiff_scheduler::Config::default()).await
                {
                    tracing::error!(error = %e, "the scheduler stopped");
                }
            },
        ));
    }
    if !args.disable_agent {
        let name = args
            .node
            .node_name
            .clone()
            .unwrap_or_else(crate::node_agent::default_node_name);
        let user = crate::join::node_user(&name);
        let client = local_client(
            app,
            &user,
            &[crate::join::NODES_GROUP, "system:authenticated"],
            &user_agent("kubelet"),
        );
        let data_dir = args.data_dir.clone();
        let node = args.node.clone();
        // The server's own kubelet gets its serving certificate straight from the CA.
        let ip = crate::node_agent::node_ip(&node)?;
        let (cert_pem, key_pem) = pki.issue_kubelet_serving_cert(&name, &[ip])?;
        let serving = crate::node_agent::KubeletServing {
            cert_pem,
            key_pem,
            client_ca_pem: pki.ca_cert.clone(),
        };
        // A server's node carries the control-plane role label, as k3s's servers do.
        let labels = [(
            "node-role.kubernetes.io/control-plane".to_owned(),
            "true".to_owned(),
        )]
        .into_iter()
        .collect();
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let (done_tx, done) = tokio::sync::oneshot::channel();
        set.spawn(async move {
            if let Err(e) =
                crate::node_agent::run(client, data_dir, node, name, labels, serving, stopped).await
            {
                tracing::error!("the node agent stopped: {e:#}");
            }
            let _ = done_tx.send(());
        });
        node_stop = Some(NodeStop { stop, done });
    }
    if args.simulated_nodes > 0 {
        // Every simulated node of this server shares one node identity, as an agent's do.
        let capacity = skiff_kubelet::sim::parse_capacity(&args.sim_capacity)
            .map_err(|e| anyhow::anyhow!("--sim-capacity {:?}: {e}", args.sim_capacity))?;
        let config = skiff_kubelet::sim::SimConfig {
            count: args.simulated_nodes,
            capacity,
            ..skiff_kubelet::sim::SimConfig::default()
        };
        let user = crate::join::node_user(&skiff_kubelet::sim::node::node_name(&config, 0));
        let client = local_client(
            app,
            &user,
            &[crate::join::NODES_GROUP, "system:authenticated"],
            &user_agent("kubelet"),
        );
        set.spawn(async move {
            if let Err(e) = skiff_kubelet::sim::run(client, config).await {
                tracing::error!(error = %e, "the simulated nodes stopped");
            }
        });
    }
    Ok(Started {
        set,
        node: node_stop,
    })
}

/// The cluster DNS's kube client: CoreDNS's ServiceAccount in kube-system.
fn dns_client(app: &Arc<App>) -> kube::Client {
    local_client(
        app,
        "system:serviceaccount:kube-system:coredns",
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:kube-system",
            "system:authenticated",
        ],
        &user_agent("coredns"),
    )
}

/// Unless --disable-dns: creates the `kube-system/kube-dns` Service on `--cluster-dns`
/// (when missing) and binds the cluster DNS on the node IP at `--cluster-dns-port`.
pub async fn bind_dns(app: &Arc<App>, args: &ServerArgs) -> Result<Option<skiff_dns::Dns>> {
    if args.disable_dns {
        return Ok(None);
    }
    let cluster_dns: std::net::IpAddr = args.node.cluster_dns.parse().with_context(|| {
        format!(
            "--cluster-dns {:?} is not an IP address",
            args.node.cluster_dns
        )
    })?;
    skiff_dns::cluster::ensure_service(&dns_client(app), cluster_dns)
        .await
        .with_context(|| {
            format!(
                "creating the kube-dns Service on {cluster_dns} (--cluster-dns must be an \
                 address of --service-cidr {})",
                args.service_cidr
            )
        })?;
    let ip = crate::node_agent::node_ip(&args.node)?;
    let listen = std::net::SocketAddr::new(ip, args.cluster_dns_port);
    let mut config = skiff_dns::Config::new(vec![listen]);
    config.domain = args.node.cluster_domain.clone();
    config.resolv_conf = args.cluster_dns_resolv_conf.clone();
    config.cluster_dns = vec![cluster_dns];
    let dns = skiff_dns::bind(&config).await.with_context(|| {
        format!(
            "starting the cluster DNS on {listen} (is another DNS server using the port? pass \
             --cluster-dns-port to use another one, or --disable-dns to run none)"
        )
    })?;
    Ok(Some(dns))
}

/// Runs the bound cluster DNS in `set` and publishes where it listens as an EndpointSlice
/// of `kube-dns`; returns that address.
pub fn run_dns(
    app: &Arc<App>,
    args: &ServerArgs,
    dns: skiff_dns::Dns,
    set: &mut tokio::task::JoinSet<()>,
) -> std::net::SocketAddr {
    let addr = dns.local_addrs()[0];
    let client = dns_client(app);
    let node_name = (!args.disable_agent).then(|| {
        args.node
            .node_name
            .clone()
            .unwrap_or_else(crate::node_agent::default_node_name)
    });
    set.spawn(skiff_dns::cluster::publish(client.clone(), addr, node_name));
    set.spawn(async move {
        if let Err(e) = dns.serve(client).await {
            tracing::error!(error = %e, "the cluster DNS stopped");
        }
    });
    tracing::info!(%addr, "cluster DNS listening");
    addr
}

/// Runs `work` with `client`: under leader election when `election` is set, else at once.
pub async fn lead_or_run<F, Fut>(client: kube::Client, election: Option<LeaderConfig>, work: F)
where
    F: Fn(kube::Client) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    match election {
        None => work(client).await,
        Some(config) => {
            let for_work = client.clone();
            leader::run_when_leading(client, config, || work(for_work.clone())).await
        }
    }
}

/// `skiff controller-manager`: the controller manager alone, over HTTPS.
#[derive(clap::Args, Debug, Clone)]
pub struct ControllerManagerArgs {
    /// The kubeconfig to reach the API with.
    #[arg(long)]
    pub kubeconfig: std::path::PathBuf,
    /// Run only while holding the `kube-controller-manager` Lease in kube-system.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Where node IPAM takes each node's pod range from.
    #[arg(long, default_value = "10.42.0.0/16")]
    pub cluster_cidr: String,
    /// The CA published as `kube-root-ca.crt` (default: the kubeconfig's cluster CA).
    #[arg(long)]
    pub root_ca_file: Option<std::path::PathBuf>,
    /// A node whose Lease is not renewed for this long becomes NotReady.
    #[arg(long, default_value = "40s", value_parser = crate::server::parse_go_duration)]
    pub node_monitor_grace_period: std::time::Duration,
    /// Terminated pods kept before pod GC deletes the oldest.
    #[arg(long, default_value_t = 12_500)]
    pub terminated_pod_gc_threshold: usize,
}

/// A client over HTTPS from a kubeconfig, with `component`'s User-Agent (so its writes are
/// recorded under upstream's manager name), and the kubeconfig's cluster CA (PEM) if it has one.
pub async fn https_client(
    kubeconfig: &Path,
    component: &str,
) -> Result<(kube::Client, Option<String>)> {
    use base64::Engine;
    let file = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading the kubeconfig {}", kubeconfig.display()))?;
    let ca = file
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.certificate_authority_data.as_deref())
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|pem| String::from_utf8(pem).ok());
    let config =
        kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
            .await
            .with_context(|| format!("the kubeconfig {} is not usable", kubeconfig.display()))?;
    let agent = http::HeaderValue::from_str(&user_agent(component))
        .unwrap_or_else(|_| http::HeaderValue::from_static("skiff"));
    let client = kube::client::ClientBuilder::try_from(config)
        .context("building the API client")?
        .with_layer(&tower::util::MapRequestLayer::new(
            move |mut req: http::Request<kube::client::Body>| {
                req.headers_mut()
                    .insert(http::header::USER_AGENT, agent.clone());
                req
            },
        ))
        .build();
    Ok((client, ca))
}

/// A leader-election identity for a component process: the host name and a random suffix,
/// as upstream's (`<hostname>_<uuid>`).
fn process_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "skiff".into());
    format!("{host}_{:016x}", rand::random::<u64>())
}

/// `skiff scheduler`: the scheduler alone, over HTTPS.
#[derive(clap::Args, Debug, Clone)]
pub struct SchedulerArgs {
    /// The kubeconfig to reach the API with.
    #[arg(long)]
    pub kubeconfig: std::path::PathBuf,
    /// Run only while holding the `kube-scheduler` Lease in kube-system.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
}

/// Runs `skiff scheduler` until SIGINT or SIGTERM.
pub async fn run_scheduler(args: SchedulerArgs) -> Result<()> {
    let (client, _) = https_client(&args.kubeconfig, "kube-scheduler").await?;
    let election = args
        .leader_elect
        .then(|| LeaderConfig::new("kube-scheduler", &process_identity()));
    tracing::info!("skiff scheduler started");
    tokio::select! {
        _ = lead_or_run(client, election, |client| async move {
            if let Err(e) = skiff_scheduler::run(client, skiff_scheduler::Config::default()).await {
                tracing::error!(error = %e, "the scheduler stopped");
            }
        }) => {}
        _ = crate::server::shutdown_signal() => {}
    }
    Ok(())
}

/// Runs `skiff controller-manager` until SIGINT or SIGTERM.
pub async fn run_controller_manager(args: ControllerManagerArgs) -> Result<()> {
    let (client, kubeconfig_ca) = https_client(&args.kubeconfig, "kube-controller-manager").await?;
    let ca = match &args.root_ca_file {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("reading --root-ca-file {}", path.display()))?,
        None => kubeconfig_ca.unwrap_or_default(),
    };
    let config = skiff_controllers::Config {
        cluster_cidr: args.cluster_cidr.clone(),
        root_ca_pem: ca,
        node_monitor_grace_period: args.node_monitor_grace_period,
        terminated_pod_gc_threshold: args.terminated_pod_gc_threshold,
        ..skiff_controllers::Config::default()
    };
    let election = args
        .leader_elect
        .then(|| LeaderConfig::new("kube-controller-manager", &process_identity()));
    tracing::info!("skiff controller-manager started");
    tokio::select! {
        _ = lead_or_run(client, election, move |client| {
            let config = config.clone();
            async move {
                if let Err(e) = skiff_controllers::run(client, config).await {
                    tracing::error!(error = %e, "the controller manager stopped");
                }
            }
        }) => {}
        _ = crate::server::shutdown_signal() => {}
    }
    Ok(())
}
