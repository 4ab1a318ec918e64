//! skiff's cluster DNS: what k3s's CoreDNS serves (`kubernetes cluster.local in-addr.arpa
//! ip6.arpa { pods insecure; fallthrough in-addr.arpa ip6.arpa }`, `forward .
//! /etc/resolv.conf`, `cache 30`, `loop`), on hickory-proto's wire format.
//!
//! - `index.rs`: the cluster's names from Services, EndpointSlices and Namespaces (pure).
//! - `forward.rs`: the upstream resolvers from a resolv.conf, loop rules, the cache.
//! - `server.rs`: UDP and TCP listeners, one answer per question (truncation, EDNS).
//! - `watch.rs`: kube-rs watches (all namespaces) that keep the index current.
//! - `cluster.rs`: the `kube-system/kube-dns` Service and the EndpointSlice that says where
//!   this DNS listens.
//!
//! An API client only: it talks to the cluster through a `kube::Client` and knows nothing
//! of the datastore or the API server. Pods' `a-b-c-d.ns.pod.<domain>` names are answered
//! in `pods insecure` mode, as k3s's: any address in an existing namespace, unverified
//! (so no Pod watch).

pub mod cluster;
mod forward;
mod index;
mod server;
mod watch;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use forward::{
    parse_resolv_conf, upstreams, Cache, CacheKey, Cached, Forwarder, MAX_CACHE_TTL,
};
pub use index::{Answer, Index, Lookup, LABEL_SERVICE_NAME, TTL};

/// A shared index: watch events write it, every question reads it.
pub type SharedIndex = Arc<parking_lot::RwLock<Index>>;

/// Errors of the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("listening for DNS on {addr} ({protocol}): {source}")]
    Bind {
        addr: SocketAddr,
        protocol: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("no address to listen on")]
    NoAddress,
    #[error("the DNS {what} stopped: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the DNS serves and where.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen, each address over UDP and TCP (port 0: any free port, the same
    /// one for both).
    pub listen: Vec<SocketAddr>,
    /// The cluster domain (`--cluster-domain`, `cluster.local`).
    pub domain: String,
    /// Where the upstream resolvers are listed.
    pub resolv_conf: PathBuf,
    /// The cluster DNS Service's IPs (`--cluster-dns`): never an upstream.
    pub cluster_dns: Vec<IpAddr>,
    /// How many forwarded answers the cache keeps at most.
    pub cache_size: usize,
    /// How long one upstream gets to answer.
    pub upstream_timeout: Duration,
}

impl Config {
    /// The defaults for `listen`: `cluster.local`, `/etc/resolv.conf`, 10,000 cached
    /// answers, 2 s per upstream.
    pub fn new(listen: Vec<SocketAddr>) -> Self {
        Config {
            listen,
            domain: "cluster.local".into(),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            cluster_dns: Vec::new(),
            cache_size: 10_000,
            upstream_timeout: Duration::from_secs(2),
        }
    }
}

/// A bound DNS server, not yet answering.
pub struct Dns {
    sockets: Vec<(Arc<tokio::net::UdpSocket>, tokio::net::TcpListener)>,
    addrs: Vec<SocketAddr>,
    index: SharedIndex,
    forwarder: Arc<Forwarder>,
}

/// Binds UDP and TCP on every address of `config` (port 0: one free port, the same for
/// both protocols) and reads the upstream resolvers.
pub async fn bind(config: &Config) -> Result<Dns> {
    if config.listen.is_empty() {
        return Err(Error::NoAddress);
    }
    let mut sockets = Vec::new();
    let mut addrs = Vec::new();
    for addr in &config.listen {
        let (udp, tcp) = server::bind_pair(*addr).await?;
        addrs.push(udp.local_addr().map_err(|source| Error::Io {
            what: "listener",
            source,
        })?);
        sockets.push((Arc::new(udp), tcp));
    }
    let forwarder = Forwarder::from_resolv_conf(
        &config.resolv_conf,
        &addrs,
        &config.cluster_dns,
        config.cache_size,
        config.upstream_timeout,
    );
    Ok(Dns {
        sockets,
        addrs,
        index: Arc::new(parking_lot::RwLock::new(Index::new(&config.domain))),
        forwarder: Arc::new(forwarder),
    })
}

impl Dns {
    /// The bound addresses (UDP and TCP share each).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The index the server answers from (what [`Dns::serve`]'s watches write; tests
    /// write it directly with [`Dns::answer`]).
    pub fn index(&self) -> SharedIndex {
        self.index.clone()
    }

    /// The upstreams questions outside the cluster go to.
    pub fn upstreams(&self) -> &[SocketAddr] {
        self.forwarder.upstreams()
    }

    /// Watches the cluster through `client` (Services, EndpointSlices and Namespaces in
    /// all namespaces; the watches retry with backoff, so an API server restart only
    /// pauses updates) and answers. Runs until dropped or a listener fails.
    pub async fn serve(self, client: kube::Client) -> Result<()> {
        let index = self.index.clone();
        tokio::select! {
            result = self.answer() => result,
            () = watch::run(client, index) => Ok(()),
        }
    }

    /// Answers from the index as it is, with no watches: the seam for tests that fill the
    /// index themselves. Runs until dropped or a listener fails.
    pub async fn answer(self) -> Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        let handler = Arc::new(server::Handler {
            index: self.index,
            forwarder: self.forwarder,
        });
        for (udp, tcp) in self.sockets {
            // Two readers per UDP socket: one can wait on the kernel while the other answers.
            for _ in 0..2 {
                tasks.spawn(server::serve_udp(udp.clone(), handler.clone()));
            }
            tasks.spawn(server::serve_tcp(tcp, handler.clone()));
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {}
            }
        }
        Ok(())
    }
}
