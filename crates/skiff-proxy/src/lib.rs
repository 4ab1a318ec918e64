//! skiff's Service proxy: kube-proxy's nftables mode. Services and EndpointSlices, watched
//! through the API, become one nftables table of ours (`ip skiff`) that DNATs ClusterIPs,
//! NodePorts, external IPs and load-balancer IPs to endpoints.
//!
//! The layers, least powerful first:
//! - [`model`]: objects reduced and joined into one model per Service port; which endpoints
//!   each traffic policy uses (pure);
//! - [`render`]: the model as a structured ruleset (pure);
//! - [`script`]: the ruleset as an `nft -f` script, in full or as a diff (pure);
//! - [`nft`]: running `nft` (the only part touching the host, with the sysctls);
//! - [`proxier`]: the sync step over the current objects ([`Proxier::sync`]) and the watch
//!   loop ([`run`]).
//!
//! The proxy never touches a table that is not its own, and talks to the cluster only through
//! `kube::Client`.

pub mod model;
pub mod nft;
pub mod proxier;
pub mod render;
pub mod script;

use std::time::Duration;

use ipnet::Ipv4Net;

pub use model::{ServiceInfo, SliceInfo};
pub use nft::{enable_sysctls, remove_table, Nft};
pub use proxier::{run, run_with_status, Proxier, SyncReport};

/// The proxy's errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error("invalid proxy configuration: {0}")]
    Config(String),
    /// The model could not be rendered (a name nftables cannot take).
    #[error("rendering the ruleset: {0}")]
    Render(String),
    /// `nft` could not be run.
    #[error("running {command}")]
    Spawn {
        /// The command.
        command: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `nft` refused the script (nothing of it was applied).
    #[error("nft failed ({status}): {stderr}")]
    Apply {
        /// The exit status.
        status: String,
        /// What nft said.
        stderr: String,
    },
    /// A sysctl could not be set.
    #[error("setting {path}")]
    Sysctl {
        /// The /proc/sys path.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A blocking sync task died.
    #[error("the sync task failed: {0}")]
    Task(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The proxy's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Our table (family `ip`); default `skiff`. Several instances (and tests) use different
    /// names.
    pub table: String,
    /// The `nft` command as an argv prefix; default `["nft"]`.
    pub nft: Vec<String>,
    /// This node's name, for the `Local` traffic policies (EndpointSlice `nodeName`).
    pub node_name: String,
    /// The pod network; default 10.42.0.0/16.
    pub cluster_cidr: Ipv4Net,
    /// The shortest time between two syncs (changes in between are coalesced); default 100 ms.
    pub min_sync_interval: Duration,
    /// How often the proxy checks that its table is still there (and re-creates it if someone
    /// deleted it); default 30 s.
    pub resync_interval: Duration,
    /// How often the table is replaced in full even when nothing seems wrong (repairs any
    /// hand edit); default 1 h, as upstream's full sync period.
    pub full_sync_interval: Duration,
    /// Whether [`run`] sets `net.ipv4.ip_forward` and `route_localnet` at start (in the
    /// proxy's own network namespace); default true.
    pub set_sysctls: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            table: "skiff".to_owned(),
            nft: vec!["nft".to_owned()],
            node_name: String::new(),
            cluster_cidr: Ipv4Net::new(std::net::Ipv4Addr::new(10, 42, 0, 0), 16)
                .unwrap_or_default(),
            min_sync_interval: Duration::from_millis(100),
            resync_interval: Duration::from_secs(30),
            full_sync_interval: Duration::from_secs(3600),
            set_sysctls: true,
        }
    }
}

impl Config {
    /// The part of the configuration rendering needs.
    pub fn render_config(&self) -> render::RenderConfig {
        render::RenderConfig {
            table: self.table.clone(),
            cluster_cidr: self.cluster_cidr,
        }
    }
}
