//! The scheduler as a client of the Kubernetes API (upstream's `pkg/scheduler/scheduler.go`
//! and `schedule_one.go` around the pure cycle): watches of nodes, pods, namespaces and
//! PodDisruptionBudgets feed the [`Cache`] and the [`Queue`] (and watches of Services,
//! ReplicationControllers, ReplicaSets and StatefulSets the cache's selectors for
//! PodTopologySpread's system defaults); one loop, on a thread of its
//! own, pops the next pod, runs the cycle over the cache, assumes the pod on the chosen
//! node and hands the binding (`pods/binding`) and its `Scheduled` event to the async
//! side, then goes on with the next pod without waiting. A pod that fits nowhere runs
//! preemption (victims deleted with a `DisruptionTarget` condition, the pod nominated to
//! the node), gets `PodScheduled=False` with upstream's message and a `FailedScheduling`
//! event, and waits in the queue for a cluster event that may help.
//!
//! The loop applies watch events between cycles, so a cycle borrows the cache as its
//! snapshot and nothing is copied per cycle.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ReplicationController, Service};
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use rand::SeedableRng;
use serde_json::json;

use crate::cache::{Cache, NodeChange};
use crate::framework::Framework;
use crate::preemption::{self, Outcome, Pdb};
use crate::queue::{Queue, Queued, Timing};
use crate::schedule_one::{Algorithm, Nominated, ScheduleError};
use crate::types::PodInfo;
use crate::workloads::{Kind, Workload};

/// Settings of the scheduler (upstream's KubeSchedulerConfiguration, the parts we have).
#[derive(Clone, Debug)]
pub struct Config {
    /// The profile's `schedulerName`: pods naming another scheduler are left alone.
    pub scheduler_name: String,
    /// Threads that filter nodes in parallel.
    pub parallelism: usize,
    /// 0: adaptive, as upstream.
    pub percentage_of_nodes_to_score: u32,
    pub timing: Timing,
    /// The events' `reportingInstance` (upstream: `<schedulerName>-<hostname>`).
    pub instance: String,
    /// Bindings written at once.
    pub max_concurrent_binds: usize,
}

impl Default for Config {
    fn default() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "skiff".into());
        Self {
            scheduler_name: DEFAULT_SCHEDULER.into(),
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            percentage_of_nodes_to_score: 0,
            timing: Timing::default(),
            instance: format!("{DEFAULT_SCHEDULER}-{host}"),
            max_concurrent_binds: 256,
        }
    }
}

pub const DEFAULT_SCHEDULER: &str = "default-scheduler";

/// The kinds whose selectors the scheduler watches, in the order of `Loop::workload_relists`.
const WORKLOAD_KINDS: [Kind; 4] = [
    Kind::Service,
    Kind::ReplicationController,
    Kind::ReplicaSet,
    Kind::StatefulSet,
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the scheduling loop stopped: {0}")]
    Loop(String),
}

/// What the loop is told.
enum Input {
    Node(Box<watcher::Event<Node>>),
    Pod(Box<watcher::Event<Pod>>),
    Pdb(Box<watcher::Event<PodDisruptionBudget>>),
    Namespace(Box<watcher::Event<Namespace>>),
    /// A Service, ReplicationController, ReplicaSet or StatefulSet, reduced to its selector
    /// on the async side.
    Workload(Kind, watcher::Event<Workload>),
    /// A binding's outcome.
    Bound {
        pod: Arc<PodInfo>,
        attempts: u32,
        result: BindResult,
    },
}

enum BindResult {
    Done,
    /// The pod is gone or someone else bound it: the watch tells the rest.
    Gone,
    Failed(String),
}

/// Runs the scheduler until the returned future is dropped.
pub async fn run(client: Client, config: Config) -> Result<(), Error> {
    let (tx, rx) = mpsc::channel::<Input>();
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_drop = StopOnDrop(stop.clone());
    let mut watches = tokio::task::JoinSet::new();
    watches.spawn(forward(
        Api::<Node>::all(client.clone()),
        tx.clone(),
        Input::Node,
    ));
    watches.spawn(forward(
        Api::<Pod>::all(client.clone()),
        tx.clone(),
        Input::Pod,
    ));
    watches.spawn(forward(
        Api::<PodDisruptionBudget>::all(client.clone()),
        tx.clone(),
        Input::Pdb,
    ));
    watches.spawn(forward(
        Api::<Namespace>::all(client.clone()),
        tx.clone(),
        Input::Namespace,
    ));
    watches.spawn(forward(
        Api::<Service>::all(client.clone()),
        tx.clone(),
        |e| workload_input(Kind::Service, *e, Workload::of_service),
    ));
    watches.spawn(forward(
        Api::<ReplicationController>::all(client.clone()),
        tx.clone(),
        |e| {
            workload_input(
                Kind::ReplicationController,
                *e,
                Workload::of_replication_controller,
            )
        },
    ));
    watches.spawn(forward(
        Api::<ReplicaSet>::all(client.clone()),
        tx.clone(),
        |e| workload_input(Kind::ReplicaSet, *e, Workload::of_replica_set),
    ));
    watches.spawn(forward(
        Api::<StatefulSet>::all(client.clone()),
        tx.clone(),
        |e| workload_input(Kind::StatefulSet, *e, Workload::of_stateful_set),
    ));
    let side = ApiSide {
        client: client.clone(),
        events: Arc::new(Events::new(client, config.instance.clone())),
        binds: Arc::new(tokio::sync::Semaphore::new(
            config.max_concurrent_binds.max(1),
        )),
        tx,
        handle: tokio::runtime::Handle::current(),
        scheduler_name: config.scheduler_name.clone(),
    };
    let mut l = Loop::new(config, side);
    let stopped = stop.clone();
    tracing::info!("the scheduler started");
    tokio::task::spawn_blocking(move || l.run(rx, &stopped))
        .await
        .map_err(|e| Error::Loop(e.to_string()))
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Forwards a watch of `api` to the loop until the loop is gone.
async fn forward<K>(api: Api<K>, tx: mpsc::Sender<Input>, wrap: fn(Box<watcher::Event<K>>) -> Input)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    // Without managed fields, as upstream's scheduler informers keep objects
    // (`TransformStripManagedFields`): no plugin reads them, and a cached pod holds on to
    // its whole object.
    let stream = watcher(api, watcher::Config::default())
        .modify(|o: &mut K| o.meta_mut().managed_fields = None)
        .default_backoff();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(e) => {
                if tx.send(wrap(Box::new(e))).is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!(error = %e, "scheduler watch"),
        }
    }
}

/// A watch event of one of the selector kinds, with the object reduced to its selector (the
/// loop never holds the whole object).
fn workload_input<K>(kind: Kind, e: watcher::Event<K>, reduce: fn(&K) -> Workload) -> Input {
    let e = match e {
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(reduce(&o)),
        watcher::Event::InitDone => watcher::Event::InitDone,
        watcher::Event::Apply(o) => watcher::Event::Apply(reduce(&o)),
        watcher::Event::Delete(o) => watcher::Event::Delete(reduce(&o)),
    };
    Input::Workload(kind, e)
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn nominated_node(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// Relist bookkeeping of one watch: the keys seen since `Init`.
#[derive(Default)]
struct Relist {
    seen: Option<HashSet<String>>,
    synced: bool,
}

impl Relist {
    fn init(&mut self) {
        self.seen = Some(HashSet::new());
    }
    fn see(&mut self, key: &str) {
        if let Some(s) = &mut self.seen {
            s.insert(key.to_owned());
        }
    }
    /// The keys seen in the relist (and the watch is now synced).
    fn done(&mut self) -> HashSet<String> {
        self.synced = true;
        self.seen.take().unwrap_or_default()
    }
}

struct Loop {
    config: Config,
    cache: Cache,
    queue: Queue,
    algo: Algorithm,
    framework: Framework,
    rng: rand::rngs::StdRng,
    pdbs: BTreeMap<String, Pdb>,
    /// Pending pod uid -> the node it is nominated to.
    nominations: HashMap<String, String>,
    nominated: Nominated,
    nodes: Relist,
    pods: Relist,
    pdb_relist: Relist,
    namespaces: Relist,
    /// One per selector kind, in [`WORKLOAD_KINDS`] order.
    workload_relists: [Relist; 4],
    side: ApiSide,
    last_leftover_flush: Instant,
}

impl Loop {
    fn new(config: Config, side: ApiSide) -> Self {
        let framework = Framework::default_plugins();
        let mut algo = Algorithm::new(framework.clone(), config.parallelism);
        algo.percentage_of_nodes_to_score = config.percentage_of_nodes_to_score;
        Self {
            queue: Queue::new(config.timing),
            config,
            cache: Cache::new(),
            algo,
            framework,
            rng: rand::rngs::StdRng::seed_from_u64(rand::random()),
            pdbs: BTreeMap::new(),
            nominations: HashMap::new(),
            nominated: Nominated::new(),
            nodes: Relist::default(),
            pods: Relist::default(),
            pdb_relist: Relist::default(),
            namespaces: Relist::default(),
            workload_relists: Default::default(),
            side,
            last_leftover_flush: Instant::now(),
        }
    }

    fn run(&mut self, rx: mpsc::Receiver<Input>, stop: &AtomicBool) {
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            loop {
                match rx.try_recv() {
                    Ok(input) => self.handle(input),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => return,
                }
            }
            let now = Instant::now();
            if now.duration_since(self.last_leftover_flush) >= Duration::from_secs(30) {
                self.last_leftover_flush = now;
                self.queue.flush_unschedulable_leftover(now);
            }
            // Upstream waits for its informers to sync before the first cycle (the listers
            // of the system default spreading's selectors included).
            if self.nodes.synced
                && self.pods.synced
                && self.workload_relists.iter().all(|r| r.synced)
            {
                if let Some(pod) = self.queue.pop(now) {
                    self.schedule_one(pod);
                    continue;
                }
            }
            let wait = self
                .queue
                .next_backoff()
                .map(|t| t.saturating_duration_since(now))
                .unwrap_or(Duration::from_secs(1))
                .clamp(Duration::from_millis(1), Duration::from_secs(1));
            match rx.recv_timeout(wait) {
                Ok(input) => self.handle(input),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Node(e) => self.on_node_event(*e),
            Input::Pod(e) => self.on_pod_event(*e),
            Input::Pdb(e) => self.on_pdb_event(*e),
            Input::Namespace(e) => self.on_namespace_event(*e),
            Input::Workload(kind, e) => self.on_workload_event(kind, e),
            Input::Bound {
                pod,
                attempts,
                result,
            } => self.on_bound(pod, attempts, result),
        }
    }

    // ---- nodes ----

    fn on_node_event(&mut self, e: watcher::Event<Node>) {
        match e {
            watcher::Event::Init => self.nodes.init(),
            watcher::Event::InitApply(n) => {
                self.nodes.see(&n.name_any());
                self.node_upsert(n);
            }
            watcher::Event::InitDone => {
                let seen = self.nodes.done();
                for name in self.cache.node_names() {
                    if !seen.contains(&name) {
                        self.cache.remove_node(&name);
                    }
                }
            }
            watcher::Event::Apply(n) => self.node_upsert(n),
            watcher::Event::Delete(n) => self.cache.remove_node(&n.name_any()),
        }
    }

    fn node_upsert(&mut self, node: Node) {
        match self.cache.upsert_node(Arc::new(node)) {
            NodeChange::Added | NodeChange::Relevant => {
                self.queue.move_unschedulable(|_| true, Instant::now())
            }
            NodeChange::Irrelevant => {}
        }
    }

    // ---- pods ----

    fn on_pod_event(&mut self, e: watcher::Event<Pod>) {
        match e {
            watcher::Event::Init => self.pods.init(),
            watcher::Event::InitApply(p) => {
                if let Some(uid) = &p.metadata.uid {
                    self.pods.see(uid);
                }
                self.pod_upsert(p);
            }
            watcher::Event::InitDone => {
                let seen = self.pods.done();
                for (uid, _) in self.cache.pod_uids() {
                    if !seen.contains(&uid) {
                        self.pod_gone(&uid);
                    }
                }
                let queued: Vec<String> = self
                    .nominations
                    .keys()
                    .filter(|u| !seen.contains(*u))
                    .cloned()
                    .collect();
                for uid in queued {
                    self.pod_gone(&uid);
                }
                self.queue.retain(|uid| seen.contains(uid));
            }
            watcher::Event::Apply(p) => self.pod_upsert(p),
            watcher::Event::Delete(p) => {
                if let Some(uid) = &p.metadata.uid {
                    self.pod_gone(uid);
                }
            }
        }
    }

    fn pod_gone(&mut self, uid: &str) {
        self.queue.remove(uid);
        self.clear_nomination(uid);
        if self.cache.remove_pod(uid).is_some() {
            // Upstream's AssignedPodDelete: room was freed.
            self.queue.move_unschedulable(|_| true, Instant::now());
        }
    }

    fn pod_upsert(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let assigned = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        if assigned {
            self.queue.remove(&uid);
            self.clear_nomination(&uid);
            if is_terminal(&pod) {
                // Terminal pods hold nothing (upstream's assigned-pod informer leaves them out).
                self.pod_gone(&uid);
                return;
            }
            let info = Arc::new(PodInfo::new(Arc::new(pod)));
            let affinity_relevant = !info.labels().is_empty();
            self.cache.upsert_bound_pod(info);
            if affinity_relevant {
                // Upstream's AssignedPodAdd/Update: pods whose affinity or spread may now
                // be met.
                self.queue.move_unschedulable(
                    |p| !p.required_affinity.is_empty() || !p.spread_constraints.is_empty(),
                    Instant::now(),
                );
            }
            return;
        }
        let scheduler = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(DEFAULT_SCHEDULER);
        if scheduler != self.config.scheduler_name
            || pod.metadata.deletion_timestamp.is_some()
            || is_terminal(&pod)
        {
            self.queue.remove(&uid);
            self.clear_nomination(&uid);
            // An assumed pod being deleted: its binding will fail and forget it.
            return;
        }
        if self.cache.pod_state(&uid).is_some() {
            // Assumed, its binding in flight: this is an older version of it.
            return;
        }
        let node = nominated_node(&pod).map(str::to_owned);
        let changed = self.queue.get(&uid).is_some_and(|q| {
            q.info.pod.spec != pod.spec || q.info.pod.metadata.labels != pod.metadata.labels
        });
        let info = Arc::new(PodInfo::new(Arc::new(pod)));
        self.queue
            .add_or_update(info.clone(), changed, Instant::now());
        match node {
            Some(node) => self.nominate(info, node),
            None => self.clear_nomination(&uid),
        }
    }

    fn nominate(&mut self, info: Arc<PodInfo>, node: String) {
        self.clear_nomination(&info.uid);
        self.nominated
            .entry(node.clone())
            .or_default()
            .push(info.clone());
        self.nominations.insert(info.uid.clone(), node);
    }

    /// Clears the pod's nomination; [`Loop::nominate`] sets one.
    fn clear_nomination(&mut self, uid: &str) {
        if let Some(old) = self.nominations.remove(uid) {
            if let Some(list) = self.nominated.get_mut(&old) {
                list.retain(|p| p.uid != uid);
                if list.is_empty() {
                    self.nominated.remove(&old);
                }
            }
        }
    }

    fn on_bound(&mut self, pod: Arc<PodInfo>, attempts: u32, result: BindResult) {
        match result {
            BindResult::Done => {}
            // Deleted (the watch has removed it already, or will), bound by another
            // scheduler (the watch shows it bound), or a conflict: still assumed, it is
            // tried again.
            BindResult::Gone => {
                if self
                    .cache
                    .pod_state(&pod.uid)
                    .is_some_and(|(_, assumed)| assumed)
                {
                    self.cache.forget(&pod.uid);
                    self.queue
                        .requeue_after_error(pod, attempts, Instant::now());
                }
            }
            BindResult::Failed(msg) => {
                if self
                    .cache
                    .pod_state(&pod.uid)
                    .is_some_and(|(_, assumed)| assumed)
                {
                    self.cache.forget(&pod.uid);
                    self.queue
                        .requeue_after_error(pod.clone(), attempts, Instant::now());
                    self.side.failed(
                        pod,
                        "SchedulerError",
                        format!("Binding rejected: {msg}"),
                        None,
                    );
                }
            }
        }
    }

    // ---- PDBs and namespaces ----

    fn on_pdb_event(&mut self, e: watcher::Event<PodDisruptionBudget>) {
        let key = |p: &PodDisruptionBudget| {
            format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any())
        };
        match e {
            watcher::Event::Init => self.pdb_relist.init(),
            watcher::Event::InitApply(p) => {
                self.pdb_relist.see(&key(&p));
                self.pdbs.insert(key(&p), Pdb::from_k8s(&p));
            }
            watcher::Event::InitDone => {
                let seen = self.pdb_relist.done();
                self.pdbs.retain(|k, _| seen.contains(k));
            }
            watcher::Event::Apply(p) => {
                self.pdbs.insert(key(&p), Pdb::from_k8s(&p));
            }
            watcher::Event::Delete(p) => {
                self.pdbs.remove(&key(&p));
            }
        }
    }

    fn on_namespace_event(&mut self, e: watcher::Event<Namespace>) {
        match e {
            watcher::Event::Init => self.namespaces.init(),
            watcher::Event::InitApply(n) => {
                self.namespaces.see(&n.name_any());
                self.namespace_upsert(n);
            }
            watcher::Event::InitDone => {
                let seen = self.namespaces.done();
                for name in self.cache.namespace_names() {
                    if !seen.contains(&name) {
                        self.cache.remove_namespace(&name);
                    }
                }
            }
            watcher::Event::Apply(n) => self.namespace_upsert(n),
            watcher::Event::Delete(n) => self.cache.remove_namespace(&n.name_any()),
        }
    }

    fn namespace_upsert(&mut self, ns: Namespace) {
        let name = ns.name_any();
        let labels = ns.metadata.labels.unwrap_or_default();
        let changed = self.cache.snapshot().namespace_labels(&name) != Some(&labels);
        self.cache.upsert_namespace(&name, labels);
        if changed {
            self.queue
                .move_unschedulable(|p| p.has_affinity(), Instant::now());
        }
    }

    // ---- the selectors of Services, ReplicationControllers, ReplicaSets, StatefulSets ----

    fn on_workload_event(&mut self, kind: Kind, e: watcher::Event<Workload>) {
        let slot = WORKLOAD_KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        let relist = &mut self.workload_relists[slot];
        let key = |w: &Workload| format!("{}/{}", w.namespace, w.name);
        match e {
            watcher::Event::Init => relist.init(),
            watcher::Event::InitApply(w) => {
                relist.see(&key(&w));
                self.cache.upsert_workload(w);
            }
            watcher::Event::InitDone => {
                let seen = relist.done();
                for (ns, name) in self.cache.workload_keys(kind) {
                    if !seen.contains(&format!("{ns}/{name}")) {
                        self.cache.remove_workload(kind, &ns, &name);
                    }
                }
            }
            // Scoring only: no parked pod can become schedulable by it.
            watcher::Event::Apply(w) => self.cache.upsert_workload(w),
            watcher::Event::Delete(w) => self.cache.remove_workload(kind, &w.namespace, &w.name),
        }
    }

    // ---- the cycle ----

    fn schedule_one(&mut self, queued: Queued) {
        let info = queued.info.clone();
        let uid = info.uid.clone();
        let snapshot = self.cache.snapshot();
        let outcome = self.algo.schedule_pod(&info, &snapshot, &self.nominated);
        match outcome {
            Ok(result) => {
                self.cache.assume(&info, &result.node);
                self.queue.remove(&uid);
                self.clear_nomination(&uid);
                self.side.bind(info, result.node, queued.attempts);
            }
            Err(ScheduleError::Fit(mut fit, state)) => {
                let pdbs: Vec<Pdb> = self.pdbs.values().cloned().collect();
                let outcome = preemption::preempt(
                    &self.framework,
                    &state,
                    &info,
                    &snapshot,
                    &fit.diagnosis,
                    &pdbs,
                    &self.nominated,
                    &mut self.rng,
                );
                let mut nominate = None;
                match outcome {
                    Outcome::Preempt(candidate) => {
                        let node = candidate.node.clone();
                        // Lower-priority pods nominated there lose their nomination.
                        let demoted: Vec<Arc<PodInfo>> = self
                            .nominated
                            .get(&node)
                            .into_iter()
                            .flatten()
                            .filter(|p| p.priority < info.priority && p.uid != uid)
                            .cloned()
                            .collect();
                        for p in &demoted {
                            self.clear_nomination(&p.uid);
                        }
                        self.side
                            .preempt(info.clone(), node.clone(), candidate.victims, demoted);
                        self.nominate(info.clone(), node.clone());
                        nominate = Some(Some(node));
                    }
                    Outcome::NotHelpful {
                        status,
                        clear_nomination,
                    } => {
                        fit.diagnosis.post_filter_msg = status.message();
                        if clear_nomination && self.nominations.contains_key(&uid) {
                            self.clear_nomination(&uid);
                            nominate = Some(None);
                        }
                    }
                }
                self.queue.failed(&uid, false, Instant::now());
                self.side
                    .failed(info, "Unschedulable", fit.to_string(), nominate);
            }
            Err(ScheduleError::NoNodes) => {
                self.queue.failed(&uid, false, Instant::now());
                self.side.failed(
                    info,
                    "Unschedulable",
                    ScheduleError::NoNodes.to_string(),
                    None,
                );
            }
            Err(ScheduleError::Internal(msg)) => {
                self.queue.failed(&uid, true, Instant::now());
                self.side.failed(info, "SchedulerError", msg, None);
            }
        }
    }
}

/// The loop's writes, done on the async runtime so the loop never waits for the API.
struct ApiSide {
    client: Client,
    events: Arc<Events>,
    binds: Arc<tokio::sync::Semaphore>,
    tx: mpsc::Sender<Input>,
    handle: tokio::runtime::Handle,
    scheduler_name: String,
}

fn pods_api(client: &Client, pod: &PodInfo) -> Api<Pod> {
    Api::namespaced(client.clone(), &pod.namespace)
}

fn now_micro() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

impl ApiSide {
    /// Writes the binding, then the `Scheduled` event; tells the loop how it went.
    fn bind(&self, pod: Arc<PodInfo>, node: String, attempts: u32) {
        let client = self.client.clone();
        let events = self.events.clone();
        let binds = self.binds.clone();
        let tx = self.tx.clone();
        self.handle.spawn(async move {
            let _permit = binds.acquire_owned().await;
            let body = json!({
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node},
            });
            let result = pods_api(&client, &pod)
                .create_subresource::<_, serde_json::Value>(
                    "binding",
                    &pod.name,
                    &PostParams::default(),
                    &body,
                )
                .await
                .map(|_| ());
            let result = match result {
                Ok(()) => {
                    events
                        .publish(
                            &pod,
                            "Normal",
                            "Scheduled",
                            "Binding",
                            format!(
                                "Successfully assigned {}/{} to {node}",
                                pod.namespace, pod.name
                            ),
                        )
                        .await;
                    BindResult::Done
                }
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => BindResult::Gone,
                Err(e) => BindResult::Failed(e.to_string()),
            };
            let _ = tx.send(Input::Bound {
                pod,
                attempts,
                result,
            });
        });
    }

    /// Records a failed attempt: the `FailedScheduling` event, and `PodScheduled=False`
    /// (with the nomination: `Some(Some(node))` set, `Some(None)` cleared) when it changed.
    fn failed(
        &self,
        pod: Arc<PodInfo>,
        reason: &'static str,
        message: String,
        nominate: Option<Option<String>>,
    ) {
        let client = self.client.clone();
        let events = self.events.clone();
        self.handle.spawn(async move {
            events
                .publish(
                    &pod,
                    "Warning",
                    "FailedScheduling",
                    "Scheduling",
                    message.clone(),
                )
                .await;
            let current = pod
                .pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
            let same = current.is_some_and(|c| {
                c.status == "False"
                    && c.reason.as_deref() == Some(reason)
                    && c.message.as_deref() == Some(message.as_str())
            });
            if same && nominate.is_none() {
                return;
            }
            let transition = current
                .filter(|c| c.status == "False")
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0.to_string())
                .unwrap_or_else(now_rfc3339);
            let mut status = json!({"conditions": [{
                "type": "PodScheduled", "status": "False", "reason": reason,
                "message": message, "lastProbeTime": null, "lastTransitionTime": transition,
            }]});
            if let Some(n) = nominate {
                status["nominatedNodeName"] = json!(n);
            }
            let patch = json!({"status": status});
            match pods_api(&client, &pod)
                .patch_status(
                    &pod.name,
                    &PatchParams::default(),
                    &Patch::Strategic(&patch),
                )
                .await
            {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(e) => tracing::debug!(error = %e, pod = %pod.key(), "pod condition"),
            }
        });
    }

    /// Deletes `victims` for `pod` on `node` (each first marked with a `DisruptionTarget`
    /// condition, as upstream's `PrepareCandidate`), with a `Preempted` event each, and
    /// clears the nominations of the lower-priority pods `demoted` from that node.
    fn preempt(
        &self,
        pod: Arc<PodInfo>,
        node: String,
        victims: Vec<Arc<PodInfo>>,
        demoted: Vec<Arc<PodInfo>>,
    ) {
        let client = self.client.clone();
        let events = self.events.clone();
        let scheduler = self.scheduler_name.clone();
        self.handle.spawn(async move {
            for v in &victims {
                let api = pods_api(&client, v);
                let condition = json!({"status": {"conditions": [{
                    "type": "DisruptionTarget", "status": "True",
                    "reason": "PreemptionByScheduler",
                    "message": format!("{scheduler}: preempting to accommodate a higher priority pod"),
                    "lastTransitionTime": now_rfc3339(),
                }]}});
                if let Err(e) = api
                    .patch_status(&v.name, &PatchParams::default(), &Patch::Strategic(&condition))
                    .await
                {
                    tracing::debug!(error = %e, victim = %v.key(), "preemption condition");
                }
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(v.uid.clone()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match api.delete(&v.name, &dp).await {
                    Ok(_) => {
                        events
                            .publish(
                                v,
                                "Normal",
                                "Preempted",
                                "Preempting",
                                format!("Preempted by pod {} on node {node}", pod.uid),
                            )
                            .await
                    }
                    Err(e) => tracing::debug!(error = %e, victim = %v.key(), "preemption"),
                }
            }
            for p in &demoted {
                let patch = json!({"status": {"nominatedNodeName": null}});
                let _ = pods_api(&client, p)
                    .patch_status(&p.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
            }
        });
    }
}

/// The scheduler's events (events.k8s.io/v1, as upstream's scheduler writes them): a
/// repeat of the same reason about the same pod within six minutes becomes a `series` on
/// the first event (upstream's events broadcaster keys by regarding, reason and action).
struct Events {
    client: Client,
    instance: String,
    series: parking_lot::Mutex<HashMap<(String, &'static str), SeriesEntry>>,
}

struct SeriesEntry {
    name: String,
    namespace: String,
    count: i32,
    last: Instant,
}

const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);

impl Events {
    fn new(client: Client, instance: String) -> Self {
        Self {
            client,
            instance,
            series: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    async fn publish(
        &self,
        pod: &PodInfo,
        type_: &'static str,
        reason: &'static str,
        action: &'static str,
        note: String,
    ) {
        let key = (pod.uid.clone(), reason);
        let now = Instant::now();
        let repeat = {
            let mut series = self.series.lock();
            if series.len() > 10_000 {
                series.retain(|_, e| now.duration_since(e.last) < SERIES_WINDOW);
            }
            match series.get_mut(&key) {
                Some(e) if now.duration_since(e.last) < SERIES_WINDOW => {
                    e.count += 1;
                    e.last = now;
                    Some((e.name.clone(), e.namespace.clone(), e.count))
                }
                _ => None,
            }
        };
        let api_for = |ns: &str| Api::<K8sEvent>::namespaced(self.client.clone(), ns);
        if let Some((name, ns, count)) = repeat {
            let patch = json!({"series": EventSeries {
                count,
                last_observed_time: now_micro(),
            }});
            match api_for(&ns)
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return,
                // The event expired or was deleted: write a new one.
                Err(_) => {
                    self.series.lock().remove(&key);
                }
            }
        }
        let t = k8s_openapi::jiff::Timestamp::now();
        let name = format!("{}.{:x}", pod.name, t.as_nanosecond());
        let event = K8sEvent {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(pod.namespace.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(t)),
            reporting_controller: Some(DEFAULT_SCHEDULER.into()),
            reporting_instance: Some(self.instance.clone()),
            action: Some(action.into()),
            reason: Some(reason.into()),
            note: Some(note),
            type_: Some(type_.into()),
            regarding: Some(pod.pod.object_ref(&())),
            ..K8sEvent::default()
        };
        match api_for(&pod.namespace)
            .create(&PostParams::default(), &event)
            .await
        {
            Ok(_) if reason == "FailedScheduling" => {
                self.series.lock().insert(
                    key,
                    SeriesEntry {
                        name,
                        namespace: pod.namespace.clone(),
                        count: 1,
                        last: now,
                    },
                );
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, pod = %pod.key(), "scheduler event"),
        }
    }
}
