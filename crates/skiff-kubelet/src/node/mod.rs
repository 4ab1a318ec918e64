//! The real node: registration ([`registration`]), its Lease ([`lease`]), its status
//! ([`status`]: capacity and allocatable from the host facts of [`host`], conditions, node
//! info, images), image garbage collection ([`image_gc`]), the pod network's readiness (the
//! default CNI conflist written once the Node has a podCIDR) and the air-gap image import
//! at start. [`common`] holds what the simulated nodes ([`crate::sim`]) share.
//!
//! Upstream: pkg/kubelet/kubelet_node_status.go (`registerWithAPIServer`, `syncNodeStatus`,
//! `updateNodeStatus`, `nodeStatusReportFrequency`), pkg/kubelet/nodestatus/setters.go,
//! pkg/kubelet/nodelease, pkg/kubelet/images/image_gc_manager.go.

pub mod common;
pub mod host;
pub mod image_gc;
pub mod lease;
pub mod registration;
pub mod status;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use skiff_runtime::cri::{ImageInfo, PodRuntime};
use skiff_runtime::sandbox::cni::{self, DefaultNetwork, NetworkList};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use host::{FsStats, HostFacts};

/// A status is posted at least this often even when nothing changed (upstream's
/// `nodeStatusReportFrequency`).
pub const STATUS_REPORT_FREQUENCY: Duration = Duration::from_secs(60);

/// How the node registers and reports.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub name: String,
    pub data_dir: PathBuf,
    /// `--node-ip`; default: the source address of the default route, else the first
    /// non-loopback address.
    pub node_ip: Option<IpAddr>,
    /// Extra labels (`--node-label`); servers add `node-role.kubernetes.io/control-plane=true`.
    pub labels: BTreeMap<String, String>,
    /// `--node-taint`, only given at registration.
    pub taints: Vec<Taint>,
    pub kube_reserved: BTreeMap<String, Quantity>,
    pub system_reserved: BTreeMap<String, Quantity>,
    pub max_pods: i64,
    pub kubelet_port: i32,
    /// A user CNI configuration dir (`--cni-conf-dir`): then skiff writes no conflist.
    pub cni_conf_dir: Option<PathBuf>,
    pub image_gc_high_percent: u8,
    pub image_gc_low_percent: u8,
    /// How often the status is computed (posted when it changed, or every minute).
    pub status_update_frequency: Duration,
    pub lease_duration_seconds: i32,
}

impl NodeConfig {
    /// Upstream's defaults for node `name` with data dir `data_dir`.
    pub fn new(name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        NodeConfig {
            name: name.into(),
            data_dir: data_dir.into(),
            node_ip: None,
            labels: BTreeMap::new(),
            taints: Vec::new(),
            kube_reserved: BTreeMap::new(),
            system_reserved: BTreeMap::new(),
            max_pods: 110,
            kubelet_port: common::KUBELET_PORT,
            cni_conf_dir: None,
            image_gc_high_percent: 85,
            image_gc_low_percent: 80,
            status_update_frequency: Duration::from_secs(10),
            lease_duration_seconds: 40,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("invalid node configuration: {0}")]
    Config(String),
    #[error("unable to register node {name:?} with the API server: {source}")]
    Register {
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// The running node: its latest Node, pod network readiness and air-gap import state. The
/// node's tasks stop when it is dropped.
pub struct NodeHandle {
    node: watch::Receiver<Arc<Node>>,
    network_ready: watch::Receiver<bool>,
    images_imported: watch::Receiver<bool>,
    poke: Arc<Notify>,
    shutting_down: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle").finish_non_exhaustive()
    }
}

impl NodeHandle {
    /// The latest Node as read or written (allocatable, addresses, podCIDR).
    pub fn node(&self) -> watch::Receiver<Arc<Node>> {
        self.node.clone()
    }
    /// True once the pod network is configured (skiff's conflist written for the Node's
    /// podCIDR, or a user CNI dir holds a configuration).
    pub fn network_ready(&self) -> watch::Receiver<bool> {
        self.network_ready.clone()
    }
    /// Asks for a status update now.
    pub fn poke(&self) {
        self.poke.notify_one();
    }
    /// A graceful node shutdown begins: the node reports Ready=False (`node is shutting
    /// down`). Returns once that is posted, or after `timeout`.
    pub async fn shutting_down(&self, timeout: Duration) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.poke.notify_one();
        let mut node = self.node.clone();
        let posted = node.wait_for(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_ == "Ready"
                            && c.message.as_deref() == Some(common::SHUTTING_DOWN.message)
                    })
                })
        });
        let _ = tokio::time::timeout(timeout, posted).await;
    }
    /// True once the air-gap import at start finished (whatever its outcome).
    pub fn images_imported(&self) -> watch::Receiver<bool> {
        self.images_imported.clone()
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What one status computation sees besides the config.
struct Observed {
    images: Vec<ImageInfo>,
    imagefs: Option<FsStats>,
    nodefs: Option<FsStats>,
    memory_available: Option<u64>,
}

/// The node's status loop and what it remembers between reports.
struct StatusLoop {
    client: kube::Client,
    runtime: Arc<dyn PodRuntime>,
    config: NodeConfig,
    node_ip: Option<IpAddr>,
    facts: HostFacts,
    runtime_version: String,
    node_tx: watch::Sender<Arc<Node>>,
    network_tx: watch::Sender<bool>,
    /// The podCIDR skiff's conflist was written for.
    written_cidr: Option<String>,
    last_report: Option<Instant>,
    images: Vec<ImageInfo>,
    shutting_down: Arc<AtomicBool>,
}

impl StatusLoop {
    fn desired(
        &self,
        observed: &Observed,
        network_ready: bool,
        prior: Option<&NodeStatus>,
    ) -> NodeStatus {
        let capacity = status::capacity(&self.facts, observed.nodefs, self.config.max_pods);
        let allocatable = status::allocatable(
            &capacity,
            &self.config.kube_reserved,
            &self.config.system_reserved,
        );
        let inputs = status::StatusInputs {
            name: &self.config.name,
            node_ip: self.node_ip,
            facts: &self.facts,
            capacity,
            allocatable,
            kubelet_port: self.config.kubelet_port,
            runtime_version: &self.runtime_version,
            kubelet_version: skiff_api::GIT_VERSION,
            images: &observed.images,
            pressure: status::Pressure {
                memory_available: observed.memory_available,
                nodefs: observed.nodefs,
                imagefs: observed.imagefs,
            },
            network_ready,
            shutting_down: self.shutting_down.load(Ordering::SeqCst),
        };
        status::node_status(&inputs, Timestamp::now(), prior)
    }

    async fn observe(&mut self) -> Observed {
        match self.runtime.list_images().await {
            Ok(images) => self.images = images,
            Err(e) => tracing::warn!(error = %e, "listing images for the node status failed"),
        }
        if self.runtime_version.is_empty() {
            match self.runtime.version().await {
                Ok(v) => self.runtime_version = v,
                Err(e) => tracing::warn!(error = %e, "the container runtime's version is unknown"),
            }
        }
        let imagefs = self.runtime.image_fs_usage().await.ok().map(|u| FsStats {
            capacity_bytes: u.capacity_bytes,
            available_bytes: u.available_bytes,
        });
        Observed {
            images: self.images.clone(),
            imagefs,
            nodefs: host::fs_usage(&self.config.data_dir),
            memory_available: host::memory_available(),
        }
    }

    /// Whether the pod network is ready, writing skiff's conflist for a new podCIDR.
    fn check_network(&mut self, node: &Node) -> bool {
        if let Some(dir) = &self.config.cni_conf_dir {
            return NetworkList::load_dir(dir).is_ok();
        }
        let cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.clone());
        if let Some(cidr) = cidr.filter(|c| !c.is_empty()) {
            if self.written_cidr.as_deref() != Some(cidr.as_str()) {
                let network = DefaultNetwork::for_node(&self.config.data_dir, &cidr);
                match network.write(&cni::default_conf_dir(&self.config.data_dir)) {
                    Ok(path) => {
                        tracing::info!(pod_cidr = %cidr, path = %path.display(), "wrote the node's CNI configuration");
                        self.written_cidr = Some(cidr);
                    }
                    Err(e) => {
                        tracing::warn!(pod_cidr = %cidr, error = %e, "writing the node's CNI configuration failed")
                    }
                }
            }
        }
        self.written_cidr.is_some()
    }

    /// One status update: computed, posted when it changed or a minute passed.
    async fn update(&mut self) {
        let node = self.node_tx.borrow().clone();
        let network_ready = self.check_network(&node);
        self.network_tx
            .send_if_modified(|v| std::mem::replace(v, network_ready) != network_ready);
        let observed = self.observe().await;
        let desired = self.desired(&observed, network_ready, node.status.as_ref());
        let due = self
            .last_report
            .is_none_or(|t| t.elapsed() >= STATUS_REPORT_FREQUENCY);
        if !due && !common::status_differs(&desired, node.status.as_ref()) {
            return;
        }
        let api: Api<Node> = Api::all(self.client.clone());
        let patch = common::status_patch(&desired);
        match api
            .patch_status(
                &self.config.name,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(written) => {
                self.last_report = Some(Instant::now());
                self.node_tx.send_replace(Arc::new(written));
            }
            Err(e) => {
                tracing::warn!(node = %self.config.name, error = %e, "error updating node status, will retry")
            }
        }
    }

    async fn run(mut self, poke: Arc<Notify>) {
        let frequency = self
            .config
            .status_update_frequency
            .max(Duration::from_millis(100));
        loop {
            self.update().await;
            tokio::select! {
                _ = tokio::time::sleep(frequency) => {}
                _ = poke.notified() => {}
            }
        }
    }
}

/// Follows the Node (podCIDR, conditions others set) into `node_tx`; pokes the status loop
/// when its podCIDR or its conditions' statuses changed.
async fn watch_node(
    client: kube::Client,
    name: String,
    node_tx: watch::Sender<Arc<Node>>,
    poke: Arc<Notify>,
) {
    let api: Api<Node> = Api::all(client);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let summary = |n: &Node| {
        let cidr = n.spec.as_ref().and_then(|s| s.pod_cidr.clone());
        let conditions: Vec<(String, String)> = n
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|cs| {
                cs.iter()
                    .map(|c| (c.type_.clone(), c.status.clone()))
                    .collect()
            })
            .unwrap_or_default();
        (cidr, conditions)
    };
    let mut stream = std::pin::pin!(watcher(api, config));
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => {
                let changed = summary(&node_tx.borrow()) != summary(&n);
                node_tx.send_replace(Arc::new(n));
                if changed {
                    poke.notify_one();
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(node = %name, error = %e, "watching the node failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Imports every tarball in `<data-dir>/agent/images/` into the image store (pinned),
/// skipping unchanged ones; errors are logged.
async fn import_images(data_dir: PathBuf) {
    let dir = data_dir.join("agent").join("images");
    let result = tokio::task::spawn_blocking(move || {
        let store = skiff_runtime::image::Store::open(skiff_runtime::image::store_root(&data_dir))?;
        skiff_runtime::image::import_dir(&store, &dir)
    })
    .await;
    match result {
        Ok(Ok(report)) => {
            for (path, error) in &report.failed {
                tracing::warn!(file = %path.display(), error = %error, "importing an image archive failed");
            }
            tracing::info!(
                imported = report.imported.len(),
                skipped = report.skipped.len(),
                failed = report.failed.len(),
                "air-gap image import finished"
            );
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "air-gap image import failed"),
        Err(e) => tracing::warn!(error = %e, "air-gap image import task failed"),
    }
}

async fn image_gc_loop(runtime: Arc<dyn PodRuntime>, high: u8, low: u8) {
    let mut tracker = image_gc::ImageTracker::default();
    loop {
        if let Err(e) =
            image_gc::collect(runtime.as_ref(), &mut tracker, high, low, image_gc::MIN_AGE).await
        {
            tracing::warn!(error = %e, "image garbage collection failed");
        }
        tokio::time::sleep(image_gc::GC_PERIOD).await;
    }
}

fn validate(config: &NodeConfig) -> Result<(), NodeError> {
    if config.name.is_empty() {
        return Err(NodeError::Config("the node has no name".into()));
    }
    if config.image_gc_low_percent > config.image_gc_high_percent
        || config.image_gc_high_percent > 100
    {
        return Err(NodeError::Config(format!(
            "image GC low threshold {}% must not exceed the high threshold {}% (at most 100%)",
            config.image_gc_low_percent, config.image_gc_high_percent
        )));
    }
    if config.lease_duration_seconds <= 0 {
        return Err(NodeError::Config(
            "the lease duration must be positive".into(),
        ));
    }
    Ok(())
}

/// Registers the node (creates it, or takes the existing one over), then spawns the lease
/// loop, the status loop, the Node watch, image GC and the air-gap import; returns once
/// registered (before the podCIDR is known).
pub async fn start(
    client: kube::Client,
    runtime: Arc<dyn PodRuntime>,
    config: NodeConfig,
) -> Result<NodeHandle, NodeError> {
    validate(&config)?;
    let node_ip = config.node_ip.or_else(host::default_node_ip);
    let facts = tokio::task::spawn_blocking(HostFacts::read)
        .await
        .unwrap_or_default();
    let (images_tx, images_imported) = watch::channel(false);
    let poke = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    {
        let data_dir = config.data_dir.clone();
        let poke = poke.clone();
        tasks.push(tokio::spawn(async move {
            import_images(data_dir).await;
            images_tx.send_replace(true);
            poke.notify_one();
        }));
    }
    let runtime_version = runtime.version().await.unwrap_or_default();
    let mut status_loop = StatusLoop {
        client: client.clone(),
        runtime: runtime.clone(),
        config: config.clone(),
        node_ip,
        facts,
        runtime_version,
        node_tx: watch::channel(Arc::new(Node::default())).0,
        network_tx: watch::channel(false).0,
        written_cidr: None,
        last_report: None,
        images: Vec::new(),
        shutting_down: Arc::new(AtomicBool::new(false)),
    };
    let observed = status_loop.observe().await;
    let first_status = status_loop.desired(&observed, false, None);
    let wanted =
        registration::initial_node(&config.name, &config.labels, &config.taints, first_status);
    let api: Api<Node> = Api::all(client.clone());
    let registered = match registration::register(&api, &wanted).await {
        Ok(node) => node,
        Err(source) => {
            for task in &tasks {
                task.abort();
            }
            return Err(NodeError::Register {
                name: config.name.clone(),
                source,
            });
        }
    };
    let (node_tx, node) = watch::channel(Arc::new(registered));
    let (network_tx, network_ready) = watch::channel(false);
    status_loop.node_tx = node_tx.clone();
    status_loop.network_tx = network_tx;
    tasks.push(tokio::spawn(lease::run(
        client.clone(),
        config.name.clone(),
        config.lease_duration_seconds,
        node.clone(),
    )));
    tasks.push(tokio::spawn(watch_node(
        client,
        config.name.clone(),
        node_tx,
        poke.clone(),
    )));
    let status_loop_flag = status_loop.shutting_down.clone();
    tasks.push(tokio::spawn(status_loop.run(poke.clone())));
    tasks.push(tokio::spawn(image_gc_loop(
        runtime,
        config.image_gc_high_percent,
        config.image_gc_low_percent,
    )));
    Ok(NodeHandle {
        node,
        network_ready,
        images_imported,
        poke,
        shutting_down: status_loop_flag,
        tasks,
    })
}
