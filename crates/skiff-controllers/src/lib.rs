//! skiff's controller manager: upstream kube-controller-manager's controllers, each a client
//! of the Kubernetes API only (kube-rs), never of the datastore or the API server's
//! internals. In `skiff server` the client goes through the API server's own router in
//! process; `skiff controller-manager --kubeconfig K` runs the same code over HTTPS.
//!
//! Every controller is a reconcile function over the current state read from shared caches
//! ([`informers`]), never over the event that woke it: kube-runtime's `Controller` gives the
//! de-duplicating work queue, one worker per key at a time and rate-limited requeue on
//! error; [`expectations`] keeps a controller from creating twice while its cache catches
//! up. The decision part of each controller is a pure function (state in, actions out),
//! unit-tested without a server.
//!
//! Architecture invariant: nothing here depends on `skiff-store` or `skiff-apiserver`.

pub mod events;
pub mod expectations;
pub mod history;
pub mod informers;
pub mod owners;
pub mod pods;

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod garbagecollector;
pub mod job;
pub mod namespace;
pub mod nodeipam;
pub mod nodelifecycle;
pub mod persistentvolume;
pub mod podgc;
pub mod replicaset;
pub mod resourcequota;
pub mod serviceaccount;
pub mod servicelb;
pub mod statefulset;
pub mod ttlafterfinished;
pub mod volumeprotection;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;

use crate::informers::Informers;

/// A controller's work, started by [`run`].
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Why a reconcile failed (its key is requeued with backoff) or a controller could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Settings of the controller manager (upstream's kube-controller-manager flags).
#[derive(Clone, Debug)]
pub struct Config {
    /// `--cluster-cidr`: where node IPAM takes each node's pod range from.
    pub cluster_cidr: String,
    /// `--node-cidr-mask-size`: the prefix length of each node's range.
    pub node_cidr_mask_size: u8,
    /// The cluster CA certificate (PEM) published as `kube-root-ca.crt` in every namespace.
    pub root_ca_pem: String,
    /// `--node-monitor-grace-period`: a node whose lease is this old is not ready.
    pub node_monitor_grace_period: Duration,
    /// `--terminated-pod-gc-threshold`: terminated pods kept before pod GC deletes the oldest.
    pub terminated_pod_gc_threshold: usize,
    /// Which controllers to run (upstream's `--controllers`): empty means all.
    pub controllers: Vec<String>,
    /// `--max-endpoints-per-slice`: the most endpoints the EndpointSlice controller puts in
    /// one slice.
    pub max_endpoints_per_slice: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            cluster_cidr: "10.42.0.0/16".into(),
            node_cidr_mask_size: 24,
            root_ca_pem: String::new(),
            node_monitor_grace_period: Duration::from_secs(40),
            terminated_pod_gc_threshold: 12_500,
            controllers: Vec::new(),
            max_endpoints_per_slice: 100,
        }
    }
}

/// What every controller is handed.
pub struct Context {
    pub client: Client,
    pub informers: Informers,
    pub config: Config,
}

impl Context {
    pub fn new(client: Client, config: Config) -> Arc<Self> {
        Arc::new(Self {
            informers: Informers::new(client.clone()),
            client,
            config,
        })
    }

    fn enabled(&self, name: &str) -> bool {
        self.config.controllers.is_empty() || self.config.controllers.iter().any(|c| c == name)
    }
}

/// A controller: its upstream name (as `--controllers` names it) and how it sets itself up
/// (subscribing to the informers it needs) before the informers start.
type Setup = fn(&Arc<Context>) -> Result<Task>;

/// Every controller, in upstream's names.
const CONTROLLERS: &[(&str, Setup)] = &[
    ("serviceaccount", serviceaccount::controller),
    (
        "root-ca-certificate-publisher",
        serviceaccount::root_ca_controller,
    ),
    ("namespace", namespace::controller),
    ("garbagecollector", garbagecollector::controller),
    ("nodeipam", nodeipam::controller),
    ("nodelifecycle", nodelifecycle::controller),
    ("podgc", podgc::controller),
    ("deployment", deployment::controller),
    ("replicaset", replicaset::controller),
    ("replicationcontroller", replicaset::replication_controller),
    ("statefulset", statefulset::controller),
    ("daemonset", daemonset::controller),
    ("job", job::controller),
    ("cronjob", cronjob::controller),
    ("ttl-after-finished", ttlafterfinished::controller),
    ("endpoint", endpoints::controller),
    ("endpointslice", endpointslice::controller),
    ("disruption", disruption::controller),
    ("resourcequota", resourcequota::controller),
    ("persistentvolume-binder", persistentvolume::controller),
    ("pvc-protection", volumeprotection::pvc_controller),
    ("pv-protection", volumeprotection::pv_controller),
    // k3s's name for its load balancer controller (`--disable servicelb`).
    ("servicelb", servicelb::controller),
];

/// Runs the controller manager until the returned future is dropped.
pub async fn run(client: Client, config: Config) -> Result<()> {
    let ctx = Context::new(client, config);
    let mut tasks = tokio::task::JoinSet::new();
    for (name, setup) in CONTROLLERS {
        if ctx.enabled(name) {
            tasks.spawn(setup(&ctx)?);
        }
    }
    for informer in ctx.informers.start() {
        tasks.spawn(informer);
    }
    tracing::info!("controller manager started");
    while tasks.join_next().await.is_some() {}
    Ok(())
}
