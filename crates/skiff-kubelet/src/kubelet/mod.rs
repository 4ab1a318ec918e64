//! The real kubelet: pod workers that make the pods bound to this node run on the
//! [`PodRuntime`](skiff_runtime::cri::PodRuntime), as upstream's `pkg/kubelet` does.
//!
//! - [`actions`]: what to do to a pod now (`computePodActions`), pure.
//! - [`sandbox`]: the pod's sandbox request (hostname, DNS, hostPorts), pure.
//! - [`view`]: the runtime's records of a pod as the pure core reads them.
//! - [`users`]: the image's passwd/group files for `runAsUser` names.
//! - [`worker`]: one task per pod: sync, start, status, termination.
//!
//! [`run`] is the pod manager: it watches the node's pods (`spec.nodeName=<node>`), keeps a
//! worker per pod uid, and relists the runtime every second (upstream's PLEG) to wake the
//! workers whose containers changed. After the first list it removes what the runtime has
//! of pods the API no longer has (a restart that missed their deletion).

pub mod actions;
pub mod sandbox;
pub mod static_pods;
pub mod users;
pub mod view;
pub mod worker;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::{mpsc, watch, Notify};

use crate::probes::ProbeEvent;

use skiff_runtime::cri::ContainerState;
pub use worker::Shared;
use worker::{Worker, WorkerInput};

/// How often the runtime is relisted for container changes (upstream's PLEG period).
const RELIST: Duration = Duration::from_secs(1);

struct Entry {
    pod: watch::Sender<Option<Arc<Pod>>>,
    wake: Arc<Notify>,
    probe_events: mpsc::UnboundedSender<ProbeEvent>,
    task: tokio::task::JoinHandle<()>,
}

struct Manager {
    shared: Arc<Shared>,
    workers: HashMap<String, Entry>,
    /// Per pod uid, a digest of its containers' states at the last relist.
    seen: HashMap<String, Vec<(String, String)>>,
}

impl Manager {
    fn update(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        self.workers.retain(|_, e| !e.task.is_finished());
        if let Some(e) = self.workers.get(&uid) {
            e.pod.send_replace(Some(Arc::new(pod)));
            return;
        }
        self.spawn(uid, Some(Arc::new(pod)));
    }

    fn spawn(&mut self, uid: String, pod: Option<Arc<Pod>>) {
        let (tx, rx) = watch::channel(pod);
        let wake = Arc::new(Notify::new());
        let (probe_tx, probe_rx) = mpsc::unbounded_channel();
        let worker = Worker::new(self.shared.clone(), uid.clone());
        let task = tokio::spawn(worker.run(WorkerInput {
            pod: rx,
            wake: wake.clone(),
            probe_events: probe_rx,
        }));
        self.workers.insert(
            uid,
            Entry {
                pod: tx,
                wake,
                probe_events: probe_tx,
                task,
            },
        );
    }

    fn probe_event(&mut self, e: ProbeEvent) {
        if let Some(w) = self.workers.get(&e.pod_uid) {
            let _ = w.probe_events.send(e);
        }
    }

    fn gone(&mut self, uid: &str) {
        if let Some(e) = self.workers.get(uid) {
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

/// Runs the node's pods until the future is dropped. `probe_events` is the receiving end of
/// the channel `shared.probes` was made with. Dropping it leaves every container
/// running (a restarted kubelet adopts them).
pub async fn run(shared: Shared, mut probe_events: mpsc::UnboundedReceiver<ProbeEvent>) {
    let shared = Arc::new(shared);
    let api: Api<Pod> = Api::all(shared.client.clone());
    let selector = format!("spec.nodeName={}", shared.node_name);
    let stream = watcher(api, watcher::Config::default().fields(&selector)).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut m = Manager {
        shared,
        workers: HashMap::new(),
        seen: HashMap::new(),
    };
    let mut listing: Option<Vec<String>> = None;
    let mut tick = tokio::time::interval(RELIST);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            event = stream.next() => {
                let Some(event) = event else { return };
                match event {
                    Ok(watcher::Event::Init) => listing = Some(Vec::new()),
                    Ok(watcher::Event::InitApply(pod)) => {
                        if let (Some(l), Some(uid)) = (listing.as_mut(), pod.metadata.uid.clone()) {
                            l.push(uid);
                        }
                        m.update(pod);
                    }
                    Ok(watcher::Event::InitDone) => {
                        let known = listing.take().unwrap_or_default();
                        // Pods deleted while the watch was down: their workers clean up.
                        let stale: Vec<String> = m
                            .workers
                            .keys()
                            .filter(|u| !known.contains(u))
                            .cloned()
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
                        if let Some(uid) = pod.metadata.uid.as_deref() {
                            m.gone(uid);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "watching the node's pods"),
                }
            }
            _ = tick.tick() => m.relist().await,
            Some(e) = probe_events.recv() => m.probe_event(e),
        }
    }
}
