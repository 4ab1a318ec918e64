//! The I/O around the simulated nodes: ONE task for all of them. It holds one watch of
//! Nodes and one of bound Pods, one timer queue ([`Timers`]) for every Lease renewal, status
//! report and pod transition, and a bounded set of API requests in flight (Leases first,
//! then node writes, then pod writes), so 5,000 nodes cost a few hundred bytes each and
//! no task, thread or timer of their own.
//!
//! Every decision is made from the current state, not from the event that woke it: a pod's
//! status is rendered from its spec, its start and the time ([`super::pod`]), compared with
//! what the API shows (a fingerprint), and written only when it differs. The start, the pod
//! IP and the container states are all read back from the pods, so a restarted simulator
//! picks up where the last one stopped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeStatus, Pod, PodCondition};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use serde_json::json;
use tokio::time::Instant;

use super::config::SimConfig;
use super::ipam::{Cidr, IpPool};
use super::node::{self, Host};
use super::pod::{self, Placement, PodPlan, PodRef};
use super::schedule::{next_slot, retry_delay, slot_offset, Timers};
use super::Error;

/// The longest wait before a failed request is tried again.
const MAX_RETRY: Duration = Duration::from_secs(10);
/// Upstream's node lease controller retries a renewal after at most 7 s.
const MAX_LEASE_RETRY: Duration = Duration::from_secs(7);

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Timer {
    Register(usize),
    Lease(usize),
    NodeStatus(usize),
    Pod(Arc<str>),
}

#[derive(Clone, Debug)]
enum Job {
    Register(usize),
    Lease(usize),
    NodeStatus(usize),
    PodStatus(Arc<str>),
    DeletePod(Arc<str>),
}

enum Outcome {
    Registered(usize, kube::Result<Box<Node>>),
    Lease(usize, kube::Result<()>),
    NodeStatus(usize, kube::Result<Box<Node>>),
    PodStatus {
        uid: Arc<str>,
        sent: u64,
        result: kube::Result<Box<Pod>>,
    },
    Deleted(Arc<str>, kube::Result<()>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum NodeState {
    Registering,
    Registered,
    /// Someone deleted the Node: as upstream's kubelet, this one does not register it
    /// again until the process restarts.
    Deleted,
}

struct NodeEntry {
    name: String,
    ip: Ipv4Addr,
    uid: Option<String>,
    state: NodeState,
    observed: Option<NodeStatus>,
    pool: Option<IpPool>,
    pods: HashSet<Arc<str>>,
    failures: u32,
    lease_failures: u32,
    queued_lease: bool,
    queued_write: bool,
    /// Seen in the current list of the node watch.
    seen: u64,
    /// The node watch's list count when this node was registered: a node registered after
    /// a list began may be missing from it without having been deleted.
    registered_in: u64,
    /// A pod waits for an address (its range is full).
    starved: bool,
}

struct PodEntry {
    namespace: String,
    name: String,
    node: usize,
    plan: PodPlan,
    start: Option<Timestamp>,
    ip: Option<Ipv4Addr>,
    /// Whether `ip` is counted in the node's pool.
    ip_held: bool,
    deletion: Option<Timestamp>,
    /// The phase the API shows is Succeeded or Failed: nothing more happens to it.
    terminal: bool,
    observed: u64,
    conditions: Vec<PodCondition>,
    /// A status that was written but read back different (a server normalizing what it
    /// stores): not written again, so the two never chase each other.
    unconvergent: Option<u64>,
    queued: bool,
    in_flight: bool,
    dirty: bool,
    failures: u32,
    delete_requested: bool,
    seen: u64,
}

/// What a pod's status should be now.
struct Desired {
    patch: serde_json::Value,
    fingerprint: u64,
    terminal: bool,
    next_change: Option<Timestamp>,
}

pub(super) struct Driver {
    client: Client,
    config: SimConfig,
    host: Host,
    epoch: Instant,
    nodes: Vec<NodeEntry>,
    by_name: HashMap<String, usize>,
    pods: HashMap<Arc<str>, PodEntry>,
    pods_synced: bool,
    pod_list: u64,
    node_list: u64,
    timers: Timers<Instant, Timer>,
    /// Lease renewals, node writes, pod writes: served in that order.
    queues: [VecDeque<Job>; 3],
    in_flight: FuturesUnordered<BoxFuture<'static, Outcome>>,
}

fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// When `ts` comes, on the monotonic clock.
fn instant_of(ts: Timestamp) -> Instant {
    let wait = Duration::try_from(ts.duration_since(Timestamp::now())).unwrap_or_default();
    Instant::now() + wait
}

fn whole_seconds(ts: Timestamp) -> Timestamp {
    Timestamp::from_second(ts.as_second()).unwrap_or(ts)
}

fn since(later: Timestamp, earlier: Timestamp) -> Duration {
    Duration::try_from(later.duration_since(earlier)).unwrap_or_default()
}

/// The node's IPv4 pod range: `spec.podCIDR`, or the first IPv4 one of `spec.podCIDRs`.
fn pod_cidr(node: &Node) -> Option<Cidr> {
    let spec = node.spec.as_ref()?;
    spec.pod_cidr
        .iter()
        .chain(spec.pod_cidrs.iter().flatten())
        .find_map(|c| Cidr::parse(c))
}

impl Driver {
    pub(super) fn new(client: Client, config: SimConfig, host: Host) -> Self {
        let nodes: Vec<NodeEntry> = (0..config.count)
            .map(|i| NodeEntry {
                name: node::node_name(&config, i),
                ip: node::node_ip(&config, i),
                uid: None,
                state: NodeState::Registering,
                observed: None,
                pool: None,
                pods: HashSet::new(),
                failures: 0,
                lease_failures: 0,
                queued_lease: false,
                queued_write: false,
                seen: 0,
                registered_in: 0,
                starved: false,
            })
            .collect();
        let by_name = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        Self {
            client,
            config,
            host,
            epoch: Instant::now(),
            nodes,
            by_name,
            pods: HashMap::new(),
            pods_synced: false,
            pod_list: 0,
            node_list: 0,
            timers: Timers::default(),
            queues: Default::default(),
            in_flight: FuturesUnordered::new(),
        }
    }

    pub(super) async fn run(mut self) -> Result<(), Error> {
        let node_watch = watcher(
            Api::<Node>::all(self.client.clone()),
            watcher::Config::default(),
        )
        .default_backoff();
        // One kubelet watches its own pods; many nodes in one process watch every bound pod.
        let selector = match self.nodes.as_slice() {
            [only] => format!("spec.nodeName={}", only.name),
            _ => "spec.nodeName!=".to_owned(),
        };
        let pod_watch = watcher(
            Api::<Pod>::all(self.client.clone()),
            watcher::Config::default().fields(&selector),
        )
        .default_backoff();
        let mut node_watch = std::pin::pin!(node_watch);
        let mut pod_watch = std::pin::pin!(pod_watch);
        for i in 0..self.nodes.len() {
            self.queues[1].push_back(Job::Register(i));
        }
        tracing::info!(
            nodes = self.nodes.len(),
            prefix = %self.config.name_prefix,
            "simulated nodes starting"
        );
        loop {
            self.dispatch();
            let next = self.timers.next_due();
            tokio::select! {
                biased;
                Some(outcome) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.on_outcome(outcome);
                }
                event = node_watch.next() => match event {
                    Some(Ok(event)) => self.on_node_event(event),
                    Some(Err(e)) => tracing::warn!(error = %e, "simulated nodes: node watch failed; retrying"),
                    None => return Err(Error::WatchEnded("node")),
                },
                event = pod_watch.next() => match event {
                    Some(Ok(event)) => self.on_pod_event(event),
                    Some(Err(e)) => tracing::warn!(error = %e, "simulated nodes: pod watch failed; retrying"),
                    None => return Err(Error::WatchEnded("pod")),
                },
                _ = tokio::time::sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    self.fire_timers();
                }
            }
        }
    }

    fn fire_timers(&mut self) {
        for timer in self.timers.pop_due(Instant::now()) {
            match timer {
                Timer::Register(i) => self.queues[1].push_back(Job::Register(i)),
                Timer::Lease(i) => self.queue_lease(i),
                Timer::NodeStatus(i) => self.queue_node_status(i),
                Timer::Pod(uid) => self.reconcile(&uid),
            }
        }
    }

    fn queue_lease(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if n.state == NodeState::Registered && !n.queued_lease {
            n.queued_lease = true;
            self.queues[0].push_back(Job::Lease(i));
        }
    }

    fn queue_node_status(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if n.state == NodeState::Registered && !n.queued_write {
            n.queued_write = true;
            self.queues[1].push_back(Job::NodeStatus(i));
        }
    }

    fn queue_pod(&mut self, uid: &Arc<str>, job: Job) {
        if let Some(p) = self.pods.get_mut(uid) {
            if !p.queued && !p.in_flight {
                p.queued = true;
                self.queues[2].push_back(job);
            }
        }
    }

    /// Starts queued requests while fewer than `max_in_flight` are running.
    fn dispatch(&mut self) {
        while self.in_flight.len() < self.config.max_in_flight.max(1) {
            let Some(job) = self.queues.iter_mut().find_map(VecDeque::pop_front) else {
                return;
            };
            if let Some(request) = self.request(job) {
                self.in_flight.push(request);
            }
        }
    }

    /// The request for `job`, built from the state at this moment (`None`: nothing to do
    /// any more).
    fn request(&mut self, job: Job) -> Option<BoxFuture<'static, Outcome>> {
        let client = self.client.clone();
        let now = Timestamp::now();
        match job {
            Job::Register(i) => {
                let n = &self.nodes[i];
                let object = node::node_object(&self.config, &self.host, &n.name, n.ip, now);
                let labels = node::labels(&self.config, &n.name);
                let name = n.name.clone();
                Some(
                    async move {
                        let api: Api<Node> = Api::all(client);
                        let result = match api.create(&PostParams::default(), &object).await {
                            Err(e) if code(&e) == Some(409) => {
                                // Registered before (an earlier run): take it over, with the
                                // labels a kubelet sets.
                                let patch = json!({"metadata": {"labels": labels}});
                                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                                    .await
                            }
                            other => other,
                        };
                        Outcome::Registered(i, result.map(Box::new))
                    }
                    .boxed(),
                )
            }
            Job::Lease(i) => {
                let n = &mut self.nodes[i];
                n.queued_lease = false;
                let uid = n.uid.clone()?;
                if n.state != NodeState::Registered {
                    return None;
                }
                let name = n.name.clone();
                let duration = self.config.lease_duration_seconds;
                Some(
                    async move {
                        let api: Api<Lease> = Api::namespaced(client, node::LEASE_NAMESPACE);
                        let renewal = node::lease_renewal(&name, duration, now);
                        let result = match api
                            .patch(&name, &PatchParams::default(), &Patch::Merge(&renewal))
                            .await
                        {
                            Ok(_) => Ok(()),
                            Err(e) if code(&e) == Some(404) => {
                                let lease = node::lease(&name, &uid, duration, now);
                                api.create(&PostParams::default(), &lease).await.map(|_| ())
                            }
                            Err(e) => Err(e),
                        };
                        Outcome::Lease(i, result)
                    }
                    .boxed(),
                )
            }
            Job::NodeStatus(i) => {
                let n = &mut self.nodes[i];
                n.queued_write = false;
                if n.state != NodeState::Registered {
                    return None;
                }
                let status = node::node_status(
                    &self.config,
                    &self.host,
                    &n.name,
                    n.ip,
                    now,
                    n.pool.is_some(),
                    n.observed.as_ref(),
                );
                let patch = node::status_patch(&status);
                let name = n.name.clone();
                Some(
                    async move {
                        let api: Api<Node> = Api::all(client);
                        let result = api
                            .patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                            .await;
                        Outcome::NodeStatus(i, result.map(Box::new))
                    }
                    .boxed(),
                )
            }
            Job::PodStatus(uid) => {
                if let Some(p) = self.pods.get_mut(&uid) {
                    p.queued = false;
                }
                let desired = self.desired(&uid, now)?;
                let p = self.pods.get_mut(&uid)?;
                if desired.fingerprint == p.observed {
                    return None;
                }
                p.in_flight = true;
                let (namespace, name) = (p.namespace.clone(), p.name.clone());
                Some(
                    async move {
                        let api: Api<Pod> = Api::namespaced(client, &namespace);
                        let result = api
                            .patch_status(
                                &name,
                                &PatchParams::default(),
                                &Patch::Strategic(&desired.patch),
                            )
                            .await;
                        Outcome::PodStatus {
                            uid,
                            sent: desired.fingerprint,
                            result: result.map(Box::new),
                        }
                    }
                    .boxed(),
                )
            }
            Job::DeletePod(uid) => {
                let p = self.pods.get_mut(&uid)?;
                p.queued = false;
                if p.delete_requested {
                    return None;
                }
                p.delete_requested = true;
                p.in_flight = true;
                let (namespace, name) = (p.namespace.clone(), p.name.clone());
                Some(
                    async move {
                        // As upstream's status manager, once the containers stopped: grace
                        // 0, and only the pod this was (a new one of the same name is not).
                        let api: Api<Pod> = Api::namespaced(client, &namespace);
                        let params = DeleteParams {
                            grace_period_seconds: Some(0),
                            preconditions: Some(Preconditions {
                                uid: Some(uid.to_string()),
                                resource_version: None,
                            }),
                            ..DeleteParams::default()
                        };
                        let result = api.delete(&name, &params).await.map(|_| ());
                        Outcome::Deleted(uid, result)
                    }
                    .boxed(),
                )
            }
        }
    }

    fn on_outcome(&mut self, outcome: Outcome) {
        let now = Instant::now();
        match outcome {
            Outcome::Registered(i, Ok(node)) => {
                self.nodes[i].failures = 0;
                self.observe_node(i, &node);
            }
            Outcome::Registered(i, Err(e)) => {
                let n = &mut self.nodes[i];
                n.failures += 1;
                tracing::warn!(node = %n.name, error = %e, "registering a simulated node failed; retrying");
                let at = now + retry_delay(n.failures, MAX_RETRY);
                self.timers.set(Timer::Register(i), at);
            }
            Outcome::Lease(i, Ok(())) => {
                self.nodes[i].lease_failures = 0;
                let interval = self.config.lease_interval;
                let offset = slot_offset(i, self.nodes.len(), interval);
                self.timers.set(
                    Timer::Lease(i),
                    next_slot(self.epoch, offset, interval, now),
                );
            }
            Outcome::Lease(i, Err(e)) => {
                let n = &mut self.nodes[i];
                n.lease_failures += 1;
                tracing::warn!(node = %n.name, error = %e, "renewing a node lease failed; retrying");
                let at = now + retry_delay(n.lease_failures, MAX_LEASE_RETRY);
                self.timers.set(Timer::Lease(i), at);
            }
            Outcome::NodeStatus(i, Ok(node)) => {
                self.nodes[i].failures = 0;
                self.observe_node(i, &node);
            }
            Outcome::NodeStatus(i, Err(e)) => {
                let n = &mut self.nodes[i];
                if code(&e) == Some(404) {
                    // Gone: the watch says so too, and the node is dropped there.
                    return;
                }
                n.failures += 1;
                tracing::warn!(node = %n.name, error = %e, "posting a node status failed; retrying");
                let at = now + retry_delay(n.failures, MAX_RETRY);
                self.timers.set(Timer::NodeStatus(i), at);
            }
            Outcome::PodStatus { uid, sent, result } => self.on_pod_written(&uid, sent, result),
            Outcome::Deleted(uid, result) => {
                let Some(p) = self.pods.get_mut(&uid) else {
                    return;
                };
                p.in_flight = false;
                match result {
                    // Gone, or a new pod under that name: either way this one is done.
                    Ok(()) => {}
                    Err(e) if matches!(code(&e), Some(404 | 409)) => {}
                    Err(e) => {
                        p.delete_requested = false;
                        p.failures += 1;
                        tracing::warn!(pod = %format!("{}/{}", p.namespace, p.name), error = %e, "deleting a stopped pod failed; retrying");
                        let at = now + retry_delay(p.failures, MAX_RETRY);
                        self.timers.set(Timer::Pod(uid), at);
                    }
                }
            }
        }
    }

    fn on_pod_written(&mut self, uid: &Arc<str>, sent: u64, result: kube::Result<Box<Pod>>) {
        let Some(p) = self.pods.get_mut(uid) else {
            return;
        };
        p.in_flight = false;
        match result {
            Ok(pod) => {
                p.failures = 0;
                Self::observe_pod_status(p, &pod);
                if p.observed != sent && p.unconvergent != Some(sent) {
                    tracing::warn!(
                        pod = %format!("{}/{}", p.namespace, p.name),
                        "the status read back differs from the one written; not writing it again"
                    );
                    p.unconvergent = Some(sent);
                }
                self.reconcile(uid);
            }
            Err(e) if matches!(code(&e), Some(404 | 409)) => {
                // Deleted, or replaced by a pod of the same name (the UID precondition):
                // the watch brings what happened.
                if p.dirty {
                    p.dirty = false;
                    self.reconcile(uid);
                }
            }
            Err(e) => {
                p.failures += 1;
                p.dirty = false;
                tracing::warn!(pod = %format!("{}/{}", p.namespace, p.name), error = %e, "posting a pod status failed; retrying");
                let at = Instant::now() + retry_delay(p.failures, MAX_RETRY);
                self.timers.set(Timer::Pod(uid.clone()), at);
            }
        }
    }

    fn on_node_event(&mut self, event: watcher::Event<Node>) {
        match event {
            watcher::Event::Init => self.node_list += 1,
            watcher::Event::InitApply(node) | watcher::Event::Apply(node) => {
                if let Some(&i) = node
                    .metadata
                    .name
                    .as_ref()
                    .and_then(|n| self.by_name.get(n))
                {
                    self.nodes[i].seen = self.node_list;
                    self.observe_node(i, &node);
                }
            }
            watcher::Event::Delete(node) => {
                if let Some(&i) = node
                    .metadata
                    .name
                    .as_ref()
                    .and_then(|n| self.by_name.get(n))
                {
                    if node.metadata.uid == self.nodes[i].uid {
                        self.node_deleted(i);
                    }
                }
            }
            watcher::Event::InitDone => {
                let missing: Vec<usize> = (0..self.nodes.len())
                    .filter(|&i| {
                        let n = &self.nodes[i];
                        n.state == NodeState::Registered
                            && n.seen != self.node_list
                            && n.registered_in < self.node_list
                    })
                    .collect();
                for i in missing {
                    self.node_deleted(i);
                }
            }
        }
    }

    fn node_deleted(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if n.state != NodeState::Registered {
            return;
        }
        tracing::warn!(node = %n.name, "a simulated node was deleted; it registers again when the process restarts");
        n.state = NodeState::Deleted;
        self.timers.cancel(&Timer::Lease(i));
        self.timers.cancel(&Timer::NodeStatus(i));
    }

    /// Takes in what the API says of node `i` (a watch event or a write's answer).
    fn observe_node(&mut self, i: usize, object: &Node) {
        let n = &mut self.nodes[i];
        if n.state == NodeState::Deleted {
            return;
        }
        let fresh = n.state == NodeState::Registering;
        if fresh {
            n.registered_in = self.node_list;
        }
        n.uid = object.metadata.uid.clone();
        n.state = NodeState::Registered;
        n.observed = object.status.clone();
        self.timers.cancel(&Timer::Register(i));
        if fresh {
            // The Lease at once, as upstream's node lease controller does after registering.
            self.queue_lease(i);
        }
        let n = &mut self.nodes[i];
        if n.pool.is_none() {
            if let Some(cidr) = pod_cidr(object) {
                let mut pool = IpPool::new(cidr);
                for uid in &n.pods {
                    if let Some(p) = self.pods.get_mut(uid) {
                        if let (Some(ip), false, false) = (p.ip, p.ip_held, p.terminal) {
                            p.ip_held = pool.reserve(ip);
                        }
                    }
                }
                n.pool = Some(pool);
                let waiting: Vec<Arc<str>> = n.pods.iter().cloned().collect();
                for uid in waiting {
                    self.reconcile(&uid);
                }
            }
        }
        // Post a status that says something else at once; otherwise report again one
        // report interval after the last, in this node's slot.
        let now = Timestamp::now();
        let n = &self.nodes[i];
        let desired = node::node_status(
            &self.config,
            &self.host,
            &n.name,
            n.ip,
            now,
            n.pool.is_some(),
            n.observed.as_ref(),
        );
        if node::status_differs(&desired, n.observed.as_ref()) {
            self.queue_node_status(i);
        } else {
            let interval = self.config.status_report_interval;
            let last = node::last_heartbeat(n.observed.as_ref()).unwrap_or(now);
            let earliest = last
                .checked_add(interval / 2)
                .map(instant_of)
                .unwrap_or_else(|_| Instant::now());
            let offset = slot_offset(i, self.nodes.len(), interval);
            let at = next_slot(self.epoch, offset, interval, earliest.max(Instant::now()));
            self.timers.set(Timer::NodeStatus(i), at);
        }
    }

    fn on_pod_event(&mut self, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => self.pod_list += 1,
            watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => self.on_pod(&pod),
            watcher::Event::Delete(pod) => {
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    self.forget_pod(uid);
                }
            }
            watcher::Event::InitDone => {
                // Pods deleted while the watch was down are not in the new list.
                let gone: Vec<Arc<str>> = self
                    .pods
                    .iter()
                    .filter(|(_, p)| p.seen != self.pod_list)
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in gone {
                    self.forget_pod(&uid);
                }
                if !self.pods_synced {
                    // Every address in use is known now: pods may get new ones.
                    self.pods_synced = true;
                    let all: Vec<Arc<str>> = self.pods.keys().cloned().collect();
                    for uid in all {
                        self.reconcile(&uid);
                    }
                }
            }
        }
    }

    fn observe_pod_status(p: &mut PodEntry, pod: &Pod) {
        let status = pod.status.as_ref();
        p.observed = pod::fingerprint(status);
        p.conditions = status
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        p.terminal = matches!(
            status.and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        );
        p.deletion = pod.metadata.deletion_timestamp.as_ref().map(|t| t.0);
    }

    fn on_pod(&mut self, pod: &Pod) {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            return;
        };
        let Some(&i) = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_ref())
            .and_then(|n| self.by_name.get(n))
        else {
            return;
        };
        if self.nodes[i].state == NodeState::Deleted {
            return;
        }
        let uid: Arc<str> = match self.pods.get_key_value(uid) {
            Some((k, _)) => k.clone(),
            None => Arc::from(uid),
        };
        let (plan, warnings) = PodPlan::from_pod(pod);
        let list = self.pod_list;
        let entry = self.pods.entry(uid.clone()).or_insert_with(|| {
            let status = pod.status.as_ref();
            let ip = status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                .filter(|_| !plan.host_network);
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            for w in &warnings {
                tracing::warn!(pod = %format!("{namespace}/{name}"), "{w}");
            }
            PodEntry {
                namespace,
                name,
                node: i,
                plan: plan.clone(),
                start: status.and_then(|s| s.start_time.as_ref()).map(|t| t.0),
                ip,
                ip_held: false,
                deletion: None,
                terminal: false,
                observed: 0,
                conditions: Vec::new(),
                unconvergent: None,
                queued: false,
                in_flight: false,
                dirty: false,
                failures: 0,
                delete_requested: false,
                seen: list,
            }
        });
        entry.plan = plan;
        entry.seen = list;
        Self::observe_pod_status(entry, pod);
        let node = &mut self.nodes[i];
        node.pods.insert(uid.clone());
        if let (Some(ip), false, false, Some(pool)) =
            (entry.ip, entry.ip_held, entry.terminal, node.pool.as_mut())
        {
            entry.ip_held = pool.reserve(ip);
        }
        if self.pods_synced {
            self.reconcile(&uid);
        }
    }

    fn forget_pod(&mut self, uid: &str) {
        let Some((uid, p)) = self.pods.remove_entry(uid) else {
            return;
        };
        self.timers.cancel(&Timer::Pod(uid.clone()));
        let node = &mut self.nodes[p.node];
        node.pods.remove(&uid);
        if let (Some(ip), true, Some(pool)) = (p.ip, p.ip_held, node.pool.as_mut()) {
            pool.release(ip);
            self.address_freed(p.node);
        }
    }

    /// An address of node `i` came free: pods waiting for one try again.
    fn address_freed(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        if !node.starved {
            return;
        }
        node.starved = false;
        let waiting: Vec<Arc<str>> = node
            .pods
            .iter()
            .filter(|uid| self.pods.get(*uid).is_some_and(|p| p.start.is_none()))
            .cloned()
            .collect();
        for uid in waiting {
            self.reconcile(&uid);
        }
    }

    fn release_ip(&mut self, uid: &Arc<str>) {
        let Some(p) = self.pods.get_mut(uid) else {
            return;
        };
        if !p.ip_held {
            return;
        }
        p.ip_held = false;
        let i = p.node;
        if let (Some(ip), Some(pool)) = (p.ip, self.nodes[i].pool.as_mut()) {
            pool.release(ip);
            self.address_freed(i);
        }
    }

    /// The status pod `uid` should show at `now`, placing it first if it has not started
    /// (`None`: it cannot start yet, or it needs no status).
    fn desired(&mut self, uid: &Arc<str>, now: Timestamp) -> Option<Desired> {
        let p = self.pods.get_mut(uid)?;
        let node = &mut self.nodes[p.node];
        let pod_ip = if p.plan.host_network {
            node.ip
        } else {
            match p.ip {
                Some(ip) => ip,
                None => {
                    let Some(pool) = node.pool.as_mut() else {
                        // No pod range yet (node IPAM has not got to this node).
                        return None;
                    };
                    match pool.allocate() {
                        Some(ip) => {
                            p.ip = Some(ip);
                            p.ip_held = true;
                            ip
                        }
                        None => {
                            if !node.starved {
                                tracing::warn!(node = %node.name, cidr = %pool.cidr(), pod = %format!("{}/{}", p.namespace, p.name), "no pod address left on the node; the pod waits");
                            }
                            node.starved = true;
                            return None;
                        }
                    }
                }
            }
        };
        let start = *p.start.get_or_insert_with(|| whole_seconds(now));
        let stop_at = p.deletion.map(|d| since(d, start));
        let state = pod::state_at(&p.plan, since(now, start), stop_at);
        let id = PodRef {
            namespace: &p.namespace,
            name: &p.name,
            uid,
        };
        let placement = Placement {
            pod_ip,
            host_ip: node.ip,
        };
        let status = pod::render_status(id, &p.plan, start, &state, placement, &p.conditions, now);
        Some(Desired {
            fingerprint: pod::fingerprint(Some(&status)),
            patch: pod::status_patch(uid, &status),
            terminal: state.is_terminal(),
            next_change: state.next_change.and_then(|n| start.checked_add(n).ok()),
        })
    }

    /// Brings pod `uid` where it should be now: its status written, its next change on the
    /// timer, and once its containers stopped and it is being deleted, the delete.
    fn reconcile(&mut self, uid: &Arc<str>) {
        let Some(p) = self.pods.get_mut(uid) else {
            return;
        };
        if p.delete_requested {
            return;
        }
        if p.in_flight {
            p.dirty = true;
            return;
        }
        p.dirty = false;
        if p.terminal {
            // Nothing more happens to a pod the API shows finished; its address is free.
            let deleting = p.deletion.is_some();
            self.timers.cancel(&Timer::Pod(uid.clone()));
            self.release_ip(uid);
            if deleting {
                self.queue_pod(uid, Job::DeletePod(uid.clone()));
            }
            return;
        }
        if p.start.is_none() && p.deletion.is_some() {
            // Deleted before it started: there is nothing to stop.
            self.queue_pod(uid, Job::DeletePod(uid.clone()));
            return;
        }
        let now = Timestamp::now();
        let Some(desired) = self.desired(uid, now) else {
            return;
        };
        let Some(p) = self.pods.get_mut(uid) else {
            return;
        };
        if desired.fingerprint != p.observed && p.unconvergent != Some(desired.fingerprint) {
            self.queue_pod(uid, Job::PodStatus(uid.clone()));
        } else if desired.terminal {
            let deleting = p.deletion.is_some();
            self.release_ip(uid);
            if deleting {
                self.queue_pod(uid, Job::DeletePod(uid.clone()));
            }
        }
        match desired.next_change {
            Some(at) => self.timers.set(Timer::Pod(uid.clone()), instant_of(at)),
            None => self.timers.cancel(&Timer::Pod(uid.clone())),
        }
    }
}
