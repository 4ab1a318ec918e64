//! `skiff agent`: joins a server with the join token and runs this machine as a real node
//! (`crate::node_agent`), or simulated nodes (`--simulated-nodes N`, `skiff_kubelet::sim`).
//!
//! The agent joins once at every start ([`crate::join`]): it gets the cluster CA and a
//! client certificate for `system:node:<--node-name>` in `system:nodes`, and runs all its
//! simulated nodes over HTTPS with that one identity (kwok's nodes share one client too). A
//! per-node identity matters once authorization (the node authorizer) is enforced. A real
//! node keeps its last join's answer (`<data-dir>/agent/node-credentials.json`, 0600): when
//! the server cannot be reached at start, it starts with those, so its static pods run
//! without the API server.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};

use crate::components;
use crate::join;

#[derive(clap::Args, Debug, Clone)]
pub struct AgentArgs {
    /// The server to join (`https://host:6443`).
    #[arg(long, short = 's', env = "SKIFF_URL")]
    pub server: String,
    /// The join token: the server's `<data-dir>/server/token`.
    #[arg(long, short = 't', env = "SKIFF_TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// A file holding the join token.
    #[arg(long, env = "SKIFF_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Run this many simulated nodes: they register, keep their Leases, and report the pods
    /// bound to them running, without running anything.
    #[arg(long, default_value_t = 0)]
    pub simulated_nodes: usize,
    /// The capacity (and allocatable) of each simulated node.
    #[arg(long, default_value = "cpu=32,memory=256Gi,pods=110")]
    pub sim_capacity: String,
    /// The simulated nodes' name prefix (default: `<hostname>-sim-`).
    #[arg(long)]
    pub sim_name_prefix: Option<String>,
    /// The InternalIP of the first simulated node; the others count up from it.
    #[arg(long, default_value = "10.41.0.1")]
    pub sim_node_ip_start: Ipv4Addr,
    /// Where the node keeps its state (images, containers, pod volumes, logs).
    #[arg(long, default_value = "/var/lib/skiff")]
    pub data_dir: std::path::PathBuf,
    /// The real node (without --simulated-nodes).
    #[command(flatten)]
    pub node: crate::node_agent::NodeArgs,
}

/// This machine's name as a node name prefix: lowercase, anything else a `-`.
fn host_prefix() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cleaned: String = host
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let cleaned = cleaned.trim_matches('-');
    if cleaned.is_empty() {
        "agent-sim-".into()
    } else {
        format!("{cleaned}-sim-")
    }
}

fn token(args: &AgentArgs) -> Result<String> {
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => t.clone(),
        (None, Some(path)) => std::fs::read_to_string(path)
            .with_context(|| format!("reading --token-file {}", path.display()))?,
        (None, None) => bail!(
            "pass --token or --token-file: the join token is <data-dir>/server/token on the server"
        ),
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        bail!("the join token is empty: it is <data-dir>/server/token on the server");
    }
    Ok(token)
}

/// The simulated nodes' settings from the flags.
pub fn sim_config(args: &AgentArgs) -> Result<skiff_kubelet::sim::SimConfig> {
    let capacity = skiff_kubelet::sim::parse_capacity(&args.sim_capacity)
        .map_err(|e| anyhow::anyhow!("--sim-capacity: {e}"))?;
    let config = skiff_kubelet::sim::SimConfig {
        count: args.simulated_nodes,
        name_prefix: args.sim_name_prefix.clone().unwrap_or_else(host_prefix),
        capacity,
        node_ip_start: args.sim_node_ip_start,
        ..skiff_kubelet::sim::SimConfig::default()
    };
    skiff_kubelet::sim::validate(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(config)
}

/// A kube client for `config` that names itself `component` (so the server records its
/// writes under upstream's manager name).
pub fn client_as(config: kube::Config, component: &str) -> Result<kube::Client> {
    let agent = http::HeaderValue::from_str(&components::user_agent(component))
        .unwrap_or_else(|_| http::HeaderValue::from_static("skiff"));
    Ok(kube::client::ClientBuilder::try_from(config)
        .context("building the API client")?
        .with_layer(&tower::util::MapRequestLayer::new(
            move |mut req: http::Request<kube::client::Body>| {
                req.headers_mut()
                    .insert(http::header::USER_AGENT, agent.clone());
                req
            },
        ))
        .build())
}

/// `skiff agent`: joins, then runs the nodes until SIGINT or SIGTERM.
pub async fn run(args: AgentArgs) -> Result<()> {
    let token = token(&args)?;
    if args.simulated_nodes == 0 {
        return run_node(args, &token).await;
    }
    let config = sim_config(&args)?;
    // The agent's identity: --node-name, else its first simulated node's name.
    let node_name = args
        .node
        .node_name
        .clone()
        .unwrap_or_else(|| skiff_kubelet::sim::node::node_name(&config, 0));
    if !join::valid_node_name(&node_name) {
        bail!("--node-name {node_name:?} is not a valid node name (a lowercase DNS subdomain)");
    }
    let credentials = join::join(&args.server, &token, &node_name, &[]).await?;
    let client = client_as(join::node_config(&args.server, &credentials)?, "kubelet")?;
    tracing::info!(
        "skiff agent joined {} as {}; running {} simulated nodes ({}0 ...)",
        args.server,
        credentials.user,
        config.count,
        config.name_prefix
    );
    tokio::select! {
        result = skiff_kubelet::sim::run(client, config) => {
            result.context("the simulated nodes stopped")?;
        }
        _ = crate::server::shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}

/// `skiff agent` without `--simulated-nodes`: this machine joins as a real node.
async fn run_node(args: AgentArgs, token: &str) -> Result<()> {
    let node_name = args
        .node
        .node_name
        .clone()
        .unwrap_or_else(crate::node_agent::default_node_name);
    if !join::valid_node_name(&node_name) {
        bail!("--node-name {node_name:?} is not a valid node name (a lowercase DNS subdomain)");
    }
    let node_ip = crate::node_agent::node_ip(&args.node)?;
    let credentials = match join::join(&args.server, token, &node_name, &[node_ip]).await {
        Ok(credentials) => {
            tracing::info!("skiff agent joined {} as {}", args.server, credentials.user);
            if let Err(e) = join::save(&args.data_dir, &args.server, &node_name, &credentials) {
                tracing::warn!(error = %e, "keeping the node's credentials failed: a restart needs the server");
            }
            credentials
        }
        Err(e) if join::unreachable(&e) => {
            let Some(saved) = join::load_saved(&args.data_dir, &args.server, &node_name) else {
                return Err(e);
            };
            tracing::warn!(
                error = %format!("{e:#}"),
                "the server is unreachable: starting with the credentials of the last join \
                 (static pods run; the node registers once the server answers)"
            );
            saved
        }
        Err(e) => return Err(e),
    };
    let client = client_as(join::node_config(&args.server, &credentials)?, "kubelet")?;
    let (Some(cert_pem), Some(key_pem)) = (
        credentials.serving_cert.clone(),
        credentials.serving_key.clone(),
    ) else {
        bail!(
            "the server at {} gave no kubelet serving certificate: it runs an older skiff; \
             upgrade the server first",
            args.server
        );
    };
    let serving = crate::node_agent::KubeletServing {
        cert_pem,
        key_pem,
        client_ca_pem: credentials.ca_cert.clone(),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let node = crate::node_agent::run(
        client,
        args.data_dir.clone(),
        args.node.clone(),
        node_name,
        Default::default(),
        serving,
        stopped,
    );
    tokio::pin!(node);
    tokio::select! {
        result = &mut node => result.context("the node agent stopped")?,
        _ = crate::server::shutdown_signal() => {
            tracing::info!("shutting down");
            stop.send_replace(true);
            node.await.context("the node agent stopped")?;
        }
    }
    Ok(())
}
