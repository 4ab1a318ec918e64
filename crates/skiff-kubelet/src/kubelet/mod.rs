//! The real kubelet: pod workers that make the pods bound to this node run on the
//! [`PodRuntime`](skiff_runtime::cri::PodRuntime), as upstream's `pkg/kubelet` does.
//!
//! - [`actions`]: what to do to a pod now (`computePodActions`), pure.
//! - [`sandbox`]: the pod's sandbox request (hostname, DNS, hostPorts), pure.
//! - [`view`]: the runtime's records of a pod as the pure core reads them.
//! - [`users`]: the image's passwd/group files for `runAsUser` names.
//! - [`worker`]: one task per pod: sync, start, status, termination.
//! - [`static_pods`]: the manifest directory's pods and their mirror pods, pure.
//! - [`shutdown`]: graceful node shutdown's groups, grace periods and final status, pure.
//!
//! [`run`] is the pod manager: it watches the node's pods (`spec.nodeName=<node>`), keeps a
//! worker per pod uid, and relists the runtime every second (upstream's PLEG) to wake the
//! workers whose containers changed. After the first list it removes what the runtime has
//! of pods the API no longer has (a restart that missed their deletion).
//!
//! [`run_with_manifests`] adds the static pods (upstream's `pod_manager.go` merge of
//! sources): the desired set is the API's pods of the node and the manifest directory's,
//! read before the API is watched (so a restart adopts their containers, with or without an
//! API server) and again every second. A mirror pod in the API is not a pod to run: it goes
//! to the worker of the static pod of the same name, which keeps it in line. A static pod
//! gone from the directory is terminated as a deleted pod; a new version of it (an edited
//! manifest: a new UID) starts once the old one has terminated, as upstream's pod workers
//! do for static pods of one full name.

pub mod actions;
pub mod admission;
pub mod sandbox;
pub mod shutdown;
pub mod static_pods;
pub mod users;
pub mod view;
pub mod worker;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::{mpsc, watch, Notify};

use crate::probes::ProbeEvent;

pub use shutdown::NodeShutdown;
use skiff_runtime::cri::ContainerState;
pub use worker::Shared;
use worker::{Worker, WorkerInput};

/// How often the runtime is relisted for container changes (upstream's PLEG period).
const RELIST: Duration = Duration::from_secs(1);

struct Entry {
    pod: watch::Sender<Option<Arc<Pod>>>,
    wake: Arc<Notify>,
    probe_events: mpsc::UnboundedSender<ProbeEvent>,
    /// A static pod's mirror pod in the API (always None for API pods).
    mirror: watch::Sender<Option<Arc<Pod>>>,
    /// `namespace/name` (empty for a cleanup worker).
    full_name: String,
    is_static: bool,
    /// A node shutdown's order to the worker: its grace period.
    shutdown: watch::Sender<Option<Duration>>,
    task: tokio::task::JoinHandle<()>,
}

/// A worker goes with its entry: dropping the manager (the kubelet's future) stops every
/// worker, and a new kubelet's workers never run beside the old ones.
impl Drop for Entry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Manager {
    shared: Arc<Shared>,
    workers: HashMap<String, Entry>,
    /// Per pod uid, a digest of its containers' states at the last relist.
    seen: HashMap<String, Vec<(String, String)>>,
    /// The static pods wanted now, by uid.
    statics: BTreeMap<String, Arc<Pod>>,
    /// The mirror pods in the API, by full name.
    mirrors: HashMap<String, Arc<Pod>>,
    /// Whether the API's pods were listed once (orphaned mirrors can be told then).
    api_synced: bool,
    /// Pods refused at admission (they never get a worker), by uid.
    rejected: std::collections::HashSet<String>,
    /// A node shutdown has begun: pods bound from now on are refused (`NodeShutdown`).
    shutting_down: bool,
}

impl Manager {
    fn update(&mut self, pod: Pod) {
        if static_pods::is_mirror(&pod) {
            self.mirror_update(pod);
            return;
        }
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        self.workers.retain(|_, e| !e.task.is_finished());
        if let Some(e) = self.workers.get(&uid) {
            e.pod.send_replace(Some(Arc::new(pod)));
            return;
        }
        if self.rejected.contains(&uid) {
            // Nothing of it runs: a delete is final at once.
            if pod.metadata.deletion_timestamp.is_some() {
                let client = self.shared.client.clone();
                tokio::spawn(async move {
                    if let Err(e) = delete_mirror(&client, &pod).await {
                        tracing::debug!(error = %e, "deleting a rejected pod");
                    }
                });
            }
            return;
        }
        if !static_pods::is_static(&pod)
            && pod.metadata.deletion_timestamp.is_none()
            && !admission::already_admitted(&pod)
        {
            let active: Vec<Arc<Pod>> = self
                .workers
                .values()
                .filter_map(|e| e.pod.borrow().clone())
                .filter(|p| {
                    !matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    )
                })
                .collect();
            let active: Vec<&Pod> = active.iter().map(|p| p.as_ref()).collect();
            let verdict = if self.shutting_down {
                Err(shutdown::not_admitted())
            } else {
                admission::admit(&pod, &active, &self.shared.allocatable)
            };
            if let Err(rejection) = verdict {
                self.rejected.insert(uid);
                self.reject(pod, rejection);
                return;
            }
        }
        self.spawn(uid, Some(Arc::new(pod)));
    }

    /// Upstream's `rejectPod`: phase Failed with the reason and `Pod was rejected: ...`, and
    /// a warning event with the same words.
    fn reject(&self, pod: Pod, rejection: admission::Rejection) {
        use kube::runtime::events::{Event, EventType, Recorder, Reporter};
        use kube::Resource;
        let client = self.shared.client.clone();
        let node = self.shared.node_name.clone();
        tracing::info!(
            pod = %static_pods::full_name(&pod),
            reason = %rejection.reason,
            "pod rejected: {}",
            rejection.message
        );
        tokio::spawn(async move {
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
            let status = serde_json::json!({"status": {
                "phase": "Failed",
                "reason": rejection.reason,
                "message": format!("Pod was rejected: {}", rejection.message),
            }});
            if let Err(e) = api
                .patch_status(
                    &name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&status),
                )
                .await
            {
                tracing::debug!(error = %e, "posting a rejected pod's status");
            }
            let recorder = Recorder::new(
                client,
                Reporter {
                    controller: "kubelet".into(),
                    instance: Some(node),
                },
            );
            let event = Event {
                type_: EventType::Warning,
                reason: rejection.reason.clone(),
                note: Some(rejection.message),
                action: rejection.reason,
                secondary: None,
            };
            if let Err(e) = recorder.publish(&event, &pod.object_ref(&())).await {
                tracing::debug!(error = %e, "recording a rejection");
            }
        });
    }

    fn spawn(&mut self, uid: String, pod: Option<Arc<Pod>>) {
        let full_name = pod
            .as_deref()
            .map(static_pods::full_name)
            .unwrap_or_default();
        let is_static = pod.as_deref().is_some_and(static_pods::is_static);
        let mirror = if is_static {
            self.mirrors.get(&full_name).cloned()
        } else {
            None
        };
        let (tx, rx) = watch::channel(pod);
        let (mirror_tx, mirror_rx) = watch::channel(mirror);
        let wake = Arc::new(Notify::new());
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        let (shutdown_tx, shutdown_rx) = watch::channel(None);
        let worker = Worker::new(self.shared.clone(), uid.clone());
        let task = tokio::spawn(worker.run(WorkerInput {
            pod: rx,
            wake: wake.clone(),
            probe_events: probe_rx,
            mirror: mirror_rx,
            shutdown: shutdown_rx,
        }));
        self.workers.insert(
            uid,
            Entry {
                pod: tx,
                wake,
                probe_events: probe_tx,
                mirror: mirror_tx,
                full_name,
                is_static,
                shutdown: shutdown_tx,
                task,
            },
        );
    }

    /// The static pods read from the directory now: new ones start (once an older version
    /// of the same name has terminated), changed ones are updated, gone ones terminate.
    fn set_statics(&mut self, now: BTreeMap<String, Pod>) {
        let before: BTreeMap<String, Pod> = self
            .statics
            .iter()
            .map(|(u, p)| (u.clone(), Pod::clone(p)))
            .collect();
        let changes = static_pods::changes(&before, &now);
        for uid in &changes.removed {
            let Some(pod) = self.statics.remove(uid) else {
                continue;
            };
            if let Some(e) = self.workers.get(uid) {
                tracing::info!(pod = %e.full_name, pod_uid = %uid, "static pod removed: terminating it");
                e.pod.send_replace(Some(Arc::new(deleting(&pod))));
            }
        }
        for (uid, pod) in now {
            let pod = Arc::new(pod);
            if changes.changed.contains(&uid) {
                if let Some(e) = self.workers.get(&uid) {
                    e.pod.send_replace(Some(pod.clone()));
                }
            }
            self.statics.insert(uid, pod);
        }
        self.start_statics();
    }

    /// Starts a worker for each wanted static pod without one, unless a worker of another
    /// pod with its full name still runs (an older version terminating).
    fn start_statics(&mut self) {
        self.workers.retain(|_, e| !e.task.is_finished());
        let wanted: Vec<(String, String)> = self
            .statics
            .iter()
            .map(|(u, p)| (u.clone(), static_pods::full_name(p)))
            .collect();
        let running: Vec<(String, String)> = self
            .workers
            .iter()
            .map(|(u, e)| (u.clone(), e.full_name.clone()))
            .collect();
        for uid in static_pods::to_start(&wanted, &running) {
            let Some(pod) = self.statics.get(&uid).cloned() else {
                continue;
            };
            tracing::info!(pod = %static_pods::full_name(&pod), pod_uid = %uid, "starting a static pod");
            self.spawn(uid, Some(pod));
        }
    }

    /// What the runtime has of older versions of the given static pods (a manifest changed
    /// while the kubelet was down): a cleanup worker each, under the static pod's full name
    /// so that the new version starts once it is done.
    async fn clean_old_versions(&mut self, statics: &BTreeMap<String, Pod>) {
        let by_name: HashMap<String, &String> = statics
            .iter()
            .map(|(uid, p)| (static_pods::full_name(p), uid))
            .collect();
        let mut old: BTreeMap<String, String> = BTreeMap::new();
        let mut note = |ns: &str, name: &str, uid: &str| {
            let full = format!("{ns}/{name}");
            if by_name.get(&full).is_some_and(|u| u.as_str() != uid) {
                old.insert(uid.to_owned(), full);
            }
        };
        if let Ok(cs) = self.shared.runtime.list_containers().await {
            for c in cs {
                note(&c.meta.pod_namespace, &c.meta.pod_name, &c.meta.pod_uid);
            }
        }
        if let Ok(ss) = self.shared.runtime.list_sandboxes().await {
            for sb in ss {
                note(&sb.pod_namespace, &sb.pod_name, &sb.pod_uid);
            }
        }
        for (uid, full) in old {
            if self.workers.contains_key(&uid) {
                continue;
            }
            tracing::info!(pod = %full, pod_uid = %uid, "removing the containers of an older version of a static pod");
            self.spawn(uid.clone(), None);
            if let Some(e) = self.workers.get_mut(&uid) {
                e.full_name = full;
            }
        }
    }

    /// A mirror pod added or changed in the API: to its static pod's worker(s), or deleted
    /// when no static pod has its name.
    fn mirror_update(&mut self, pod: Pod) {
        let name = static_pods::full_name(&pod);
        let pod = Arc::new(pod);
        self.mirrors.insert(name.clone(), pod.clone());
        for e in self.workers.values().filter(|e| e.full_name == name) {
            e.mirror.send_replace(Some(pod.clone()));
        }
        if self.api_synced {
            self.delete_if_orphaned(&pod);
        }
    }

    fn mirror_gone(&mut self, pod: &Pod) {
        let name = static_pods::full_name(pod);
        let same = self
            .mirrors
            .get(&name)
            .is_some_and(|m| m.metadata.uid == pod.metadata.uid);
        if !same {
            return;
        }
        self.mirrors.remove(&name);
        for e in self.workers.values().filter(|e| e.full_name == name) {
            e.mirror.send_replace(None);
        }
    }

    /// Deletes a mirror pod no static pod wants (upstream's orphaned mirror pods in
    /// `HandlePodCleanups`).
    fn delete_if_orphaned(&self, mirror: &Arc<Pod>) {
        let name = static_pods::full_name(mirror);
        let wanted = self
            .statics
            .values()
            .any(|p| static_pods::full_name(p) == name)
            || self
                .workers
                .values()
                .any(|e| e.is_static && e.full_name == name);
        if wanted {
            return;
        }
        tracing::info!(pod = %name, "deleting an orphaned mirror pod");
        let client = self.shared.client.clone();
        let mirror = mirror.clone();
        tokio::spawn(async move {
            if let Err(e) = delete_mirror(&client, &mirror).await {
                tracing::warn!(pod = %name, error = %e, "deleting an orphaned mirror pod");
            }
        });
    }

    fn probe_event(&mut self, e: ProbeEvent) {
        if let Some(w) = self.workers.get(&e.pod_uid) {
            let _ = w.probe_events.send(e);
        }
    }

    fn gone(&mut self, uid: &str) {
        if let Some(e) = self.workers.get(uid).filter(|e| !e.is_static) {
            e.pod.send_replace(None);
        }
    }

    /// Starts a cleanup worker for runtime state of pods the API does not have.
    fn adopt_orphans(&mut self, uids: impl IntoIterator<Item = String>) {
        for uid in uids {
            if self.workers.contains_key(&uid) {
                continue;
            }
            tracing::info!(pod_uid = %uid, "removing the containers of a pod the API no longer has");
            self.spawn(uid, None);
        }
    }

    /// One relist: wakes the workers whose containers changed state.
    async fn relist(&mut self) {
        let Ok(list) = self.shared.runtime.list_containers().await else {
            return;
        };
        let mut now: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for c in list {
            let state = match &c.state {
                ContainerState::Created => "created",
                ContainerState::Running { .. } => "running",
                ContainerState::Exited { .. } => "exited",
                ContainerState::Unknown { .. } => "unknown",
            };
            now.entry(c.meta.pod_uid.clone())
                .or_default()
                .push((c.id.clone(), state.to_owned()));
        }
        for v in now.values_mut() {
            v.sort();
        }
        for (uid, states) in &now {
            if self.seen.get(uid) != Some(states) {
                if let Some(e) = self.workers.get(uid) {
                    e.wake.notify_one();
                }
            }
        }
        self.seen = now;
    }

    /// A graceful node shutdown (upstream's `processShutdownEvent`): the regular pods are
    /// killed within their group's grace period, then the critical ones within theirs;
    /// returns once every pod is done or the grace period is over.
    /// Kills the node's pods, regular ones then critical ones, each group within its share
    /// of the grace period; meanwhile the node's pod watch goes on, so that pods bound to
    /// the node now are refused (upstream's shutdown manager admit handler).
    async fn shut_down<S>(&mut self, order: NodeShutdown, stream: &mut std::pin::Pin<&mut S>)
    where
        S: futures::Stream<Item = Result<watcher::Event<Pod>, watcher::Error>>,
    {
        self.shutting_down = true;
        let (regular, critical) = order.groups();
        tracing::info!(
            grace_seconds = order.grace.as_secs(),
            critical_grace_seconds = order.critical_grace.as_secs(),
            "node shutdown: killing the node's pods"
        );
        let mut watching = true;
        for (is_critical, group) in [(false, regular), (true, critical)] {
            let mut waiting = Vec::new();
            for (uid, e) in &self.workers {
                let Some(pod) = e.pod.borrow().clone() else {
                    continue; // a cleanup worker: nothing of it runs
                };
                if shutdown::is_critical(&pod) != is_critical || e.task.is_finished() {
                    continue;
                }
                e.shutdown
                    .send_replace(Some(shutdown::pod_grace(&pod, group)));
                waiting.push(uid.clone());
            }
            // A pod's kill takes its grace period and a little more (SIGKILL, the status).
            let deadline = tokio::time::Instant::now() + group + Duration::from_secs(2);
            loop {
                let done = waiting
                    .iter()
                    .all(|uid| self.workers.get(uid).is_none_or(|e| e.task.is_finished()));
                if done {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!(
                        critical = is_critical,
                        "node shutdown: pods still terminating at the end of their grace period"
                    );
                    break;
                }
                tokio::select! {
                    event = stream.next(), if watching => match event {
                        Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                            if !static_pods::is_mirror(&pod) {
                                self.update(pod);
                            }
                        }
                        Some(_) => {}
                        None => watching = false,
                    },
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
        tracing::info!("node shutdown: the node's pods are terminated");
    }

    /// Pod uids the runtime has anything of.
    async fn runtime_pods(&self) -> Vec<String> {
        let mut uids: BTreeMap<String, ()> = BTreeMap::new();
        if let Ok(cs) = self.shared.runtime.list_containers().await {
            for c in cs {
                uids.insert(c.meta.pod_uid, ());
            }
        }
        if let Ok(ss) = self.shared.runtime.list_sandboxes().await {
            for s in ss {
                uids.insert(s.pod_uid, ());
            }
        }
        uids.into_keys().collect()
    }
}

/// A static pod as its worker sees it once removed: deleted now, with its grace period.
fn deleting(pod: &Pod) -> Pod {
    let mut p = pod.clone();
    p.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
    p.metadata.deletion_grace_period_seconds = Some(
        pod.spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30),
    );
    p
}

/// Deletes a mirror pod at once, if it is still the one given (`DeleteMirrorPod` with its
/// UID as precondition). Gone already, or replaced: nothing to do.
pub(crate) async fn delete_mirror(client: &kube::Client, mirror: &Pod) -> Result<(), kube::Error> {
    let api: Api<Pod> = Api::namespaced(
        client.clone(),
        mirror.metadata.namespace.as_deref().unwrap_or("default"),
    );
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: mirror.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api
        .delete(mirror.metadata.name.as_deref().unwrap_or(""), &params)
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Runs the node's pods until the future is dropped. `probe_events` is the receiving end of
/// the channel `shared.probes` was made with. Dropping it stops every pod worker and
/// leaves every container running (a restarted kubelet adopts them).
pub async fn run(shared: Shared, probe_events: mpsc::UnboundedReceiver<ProbeEvent>) {
    run_with_manifests(shared, probe_events, None).await;
}

/// [`run`], plus the static pods of the manifest directory `manifests`.
pub async fn run_with_manifests(
    shared: Shared,
    probe_events: mpsc::UnboundedReceiver<ProbeEvent>,
    manifests: Option<PathBuf>,
) {
    run_until_shutdown(shared, probe_events, manifests, watch::channel(None).1).await;
}

/// [`run_with_manifests`] that also takes a graceful node shutdown: when `shutdown` gets an
/// order, the node's pods are killed as [`shutdown`] says and it returns once they are
/// (or their grace period is over).
pub async fn run_until_shutdown(
    shared: Shared,
    mut probe_events: mpsc::UnboundedReceiver<ProbeEvent>,
    manifests: Option<PathBuf>,
    mut shutdown: watch::Receiver<Option<NodeShutdown>>,
) {
    let shared = Arc::new(shared);
    let mut source = manifests.map(|dir| {
        tracing::info!(path = %dir.display(), "watching the pod manifest path for static pods");
        static_pods::FileSource::new(dir, shared.node_name.clone())
    });
    let api: Api<Pod> = Api::all(shared.client.clone());
    let selector = format!("spec.nodeName={}", shared.node_name);
    let stream = watcher(api, watcher::Config::default().fields(&selector)).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut m = Manager {
        shared,
        workers: HashMap::new(),
        seen: HashMap::new(),
        statics: BTreeMap::new(),
        mirrors: HashMap::new(),
        api_synced: false,
        rejected: Default::default(),
        shutting_down: false,
    };
    // The static pods first: they run without the API, and the orphan cleanup after the
    // first list must know them.
    if let Some(src) = source.as_mut() {
        let initial = src.scan(&seen_now());
        m.clean_old_versions(&initial).await;
        m.set_statics(initial);
    }
    let mut listing: Option<Vec<String>> = None;
    let mut mirrors_listed: Vec<String> = Vec::new();
    let mut tick = tokio::time::interval(RELIST);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = stream.next() => {
                let Some(event) = event else { return };
                match event {
                    Ok(watcher::Event::Init) => {
                        listing = Some(Vec::new());
                        mirrors_listed.clear();
                    }
                    Ok(watcher::Event::InitApply(pod)) => {
                        if let (Some(l), Some(uid)) = (listing.as_mut(), pod.metadata.uid.clone()) {
                            l.push(uid);
                        }
                        if static_pods::is_mirror(&pod) {
                            mirrors_listed.push(static_pods::full_name(&pod));
                        }
                        m.update(pod);
                    }
                    Ok(watcher::Event::InitDone) => {
                        let mut known = listing.take().unwrap_or_default();
                        known.extend(m.statics.keys().cloned());
                        // Mirror pods deleted while the watch was down.
                        let gone: Vec<Arc<Pod>> = m
                            .mirrors
                            .iter()
                            .filter(|(name, _)| !mirrors_listed.contains(name))
                            .map(|(_, p)| p.clone())
                            .collect();
                        for p in gone {
                            m.mirror_gone(&p);
                        }
                        m.api_synced = true;
                        let listed: Vec<Arc<Pod>> = m.mirrors.values().cloned().collect();
                        for p in listed {
                            m.delete_if_orphaned(&p);
                        }
                        // Pods deleted while the watch was down: their workers clean up.
                        let stale: Vec<String> = m
                            .workers
                            .iter()
                            .filter(|(u, e)| !e.is_static && !known.contains(u))
                            .map(|(u, _)| u.clone())
                            .collect();
                        for uid in stale {
                            m.gone(&uid);
                        }
                        let orphans: Vec<String> = m
                            .runtime_pods()
                            .await
                            .into_iter()
                            .filter(|u| !known.contains(u))
                            .collect();
                        m.adopt_orphans(orphans);
                    }
                    Ok(watcher::Event::Apply(pod)) => m.update(pod),
                    Ok(watcher::Event::Delete(pod)) => {
                        if static_pods::is_mirror(&pod) {
                            m.mirror_gone(&pod);
                        } else if let Some(uid) = pod.metadata.uid.as_deref() {
                            m.gone(uid);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "watching the node's pods"),
                }
            }
            _ = tick.tick() => {
                if let Some(src) = source.as_mut() {
                    m.set_statics(src.scan(&seen_now()));
                }
                m.relist().await;
            }
            Some(e) = probe_events.recv() => m.probe_event(e),
            Ok(()) = shutdown.changed() => {
                let order = *shutdown.borrow_and_update();
                if let Some(order) = order {
                    m.shut_down(order, &mut stream).await;
                    return;
                }
            }
        }
    }
}

/// `kubernetes.io/config.seen`'s format: RFC 3339 with nanoseconds, as Go's `RFC3339Nano`.
fn seen_now() -> String {
    // jiff prints only the fraction's significant digits, as Go does.
    k8s_openapi::jiff::Timestamp::now().to_string()
}
