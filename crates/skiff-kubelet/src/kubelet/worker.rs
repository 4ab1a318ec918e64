//! One pod's worker (upstream's `pod_workers.go` + `SyncPod` of
//! `kuberuntime_manager.go`): a task per pod that, each time the pod changes or its
//! containers do, reads the runtime's view of the pod, asks [`compute_pod_actions`] what to
//! do, does it, and posts the status [`generate_pod_status`] makes. A deleted pod is
//! terminated (containers stopped within the grace period, sandbox and cgroup removed) and
//! then removed from the API with grace 0, as upstream's status manager does.
//!
//! A static pod's worker also keeps its mirror pod (`SyncPod`'s mirror pod part, with
//! [`static_pods::mirror_action`]): created when missing, deleted and created again when it
//! is being deleted or mirrors another version; the status goes to the mirror pod (none
//! while there is no mirror: the pod runs all the same). A removed static pod terminates as
//! a deleted pod, then its mirror pod is deleted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Node, Pod, PodStatus, Secret, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Resource;
use skiff_runtime::cri::{ContainerMeta, ImageInfo, PodCgroup, PodRuntime};
use skiff_runtime::image::pull::DockerConfigJson;
use skiff_runtime::sandbox::Sandbox;
use tokio::sync::{watch, Notify};

use super::actions::{compute_pod_actions, PodActions, PodView, SandboxView};
use super::sandbox::{sandbox_config, SandboxSettings};
use super::static_pods::{self, MirrorAction};
use super::users::EtcFiles;
use super::view::{
    observe, termination_message, KIND_LABEL, TERMINATION_MESSAGE_PATH_LABEL,
    TERMINATION_MESSAGE_POLICY_LABEL,
};
use crate::pods::backoff::CrashLoopBackOff;
use crate::pods::convert::{container_config, ContainerInputs, SandboxNamespaces};
use crate::pods::env::{EnvInputs, Objects};
use crate::pods::status::{
    generate_pod_status, ObservedContainer, ObservedState, ProbeResults, StatusInputs,
    WaitingReason,
};
use crate::pods::{qos, resources, spec_containers, spec_init_containers};
use crate::probes::{self, hooks, ProbeEvent, ProbeManager, RunningContainer};
use crate::volumes::{ApiObjects, NodeFacts, PodVolumes, VolumeManager};

/// What every pod worker of a node shares.
pub struct Shared {
    pub client: kube::Client,
    pub runtime: Arc<dyn PodRuntime>,
    pub node_name: String,
    /// `<data-dir>/agent`.
    pub agent_dir: PathBuf,
    pub sandbox: SandboxSettings,
    /// The node's memory in bytes (Burstable `oom_score_adj`).
    pub memory_capacity: i64,
    pub allocatable: BTreeMap<String, Quantity>,
    /// The node's IPs, primary first (`status.hostIP(s)`, hostNetwork pods' IPs).
    pub host_ips: Vec<String>,
    /// `<data-dir>/agent/pods`.
    pub volumes: VolumeManager,
    /// The node's prober; its events reach each pod's worker through the manager.
    pub probes: ProbeManager,
}

/// Image pull back-off: 10 s doubling to 5 min, as the kubelet's image puller.
const IMAGE_BACKOFF_INITIAL: SignedDuration = SignedDuration::from_secs(10);
const IMAGE_BACKOFF_MAX: SignedDuration = SignedDuration::from_secs(300);
/// A pod with something running is looked at again at least this often (upstream's
/// resync period is a minute; the PLEG wakes workers on container changes sooner).
const RESYNC: Duration = Duration::from_secs(10);
/// How soon a failed step (a sandbox, a volume, the API) is retried.
const RETRY: Duration = Duration::from_secs(2);
/// How often a running pod's configMap/secret/downwardAPI volumes are re-rendered
/// (upstream: the sync period, a minute, plus the object cache's TTL).
const VOLUME_REFRESH: Duration = Duration::from_secs(30);

fn now() -> Timestamp {
    Timestamp::now()
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn name_of(pod: &Pod) -> (String, String, String) {
    (
        pod.metadata.namespace.clone().unwrap_or_default(),
        pod.metadata.name.clone().unwrap_or_default(),
        pod.metadata.uid.clone().unwrap_or_default(),
    )
}

/// A pod's worker state, kept between syncs (upstream's per-pod caches: the reason cache,
/// the back-off, the status manager's last status).
pub struct Worker {
    shared: Arc<Shared>,
    uid: String,
    backoff: CrashLoopBackOff,
    image_backoff: CrashLoopBackOff,
    /// Why containers wait (ErrImagePull, CreateContainerConfigError, ...), by name.
    waiting: BTreeMap<String, WaitingReason>,
    /// Starts the runtime refused (StartError): the runtime keeps nothing of them.
    failed_starts: Vec<ObservedContainer>,
    last_status: Option<PodStatus>,
    /// The pod uid `last_status` was posted to (a static pod's: its mirror pod's).
    posted_to: Option<String>,
    /// A static pod's mirror pod, as last seen in the API or created.
    mirror: Option<Arc<Pod>>,
    terminal: bool,
    /// When the pod was killed for a node shutdown (its status then says so).
    node_shutdown: Option<Timestamp>,
    /// The API had the pod in a terminal phase before this worker posted anything (a
    /// restarted kubelet): it never runs again and its status is left as it is.
    frozen: bool,
    volumes: Option<PodVolumes>,
    volumes_refreshed: Option<std::time::Instant>,
    recorder: Option<Recorder>,
}

/// How a worker is driven: the latest pod (None once the API no longer has it) and a
/// wake-up for container changes.
pub struct WorkerInput {
    pub pod: watch::Receiver<Option<Arc<Pod>>>,
    pub wake: Arc<Notify>,
    /// Probe results and kills for this pod's containers.
    pub probe_events: tokio::sync::mpsc::UnboundedReceiver<ProbeEvent>,
    /// A static pod's mirror pod in the API (None for API pods).
    pub mirror: watch::Receiver<Option<Arc<Pod>>>,
    /// A node shutdown: kill the pod within this grace period, post its final status, and
    /// stop (the containers stay, stopped).
    pub shutdown: watch::Receiver<Option<Duration>>,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, uid: String) -> Self {
        Worker {
            shared,
            uid,
            backoff: CrashLoopBackOff::default(),
            image_backoff: CrashLoopBackOff::new(IMAGE_BACKOFF_INITIAL, IMAGE_BACKOFF_MAX),
            waiting: BTreeMap::new(),
            failed_starts: Vec::new(),
            last_status: None,
            posted_to: None,
            mirror: None,
            terminal: false,
            node_shutdown: None,
            frozen: false,
            volumes: None,
            volumes_refreshed: None,
            recorder: None,
        }
    }

    /// Runs until the pod is gone from the API and from the node.
    pub async fn run(mut self, mut input: WorkerInput) {
        self.mirror = input.mirror.borrow_and_update().clone();
        loop {
            let pod = input.pod.borrow_and_update().clone();
            let next = match pod {
                None => {
                    // Deleted from the API (by us after termination, or by force).
                    if let Err(e) = self.cleanup().await {
                        tracing::warn!(pod_uid = %self.uid, error = %e, "cleaning up a deleted pod; retrying");
                        Some(RETRY)
                    } else {
                        return;
                    }
                }
                Some(pod) if pod.metadata.deletion_timestamp.is_some() => {
                    match self.terminate(&pod).await {
                        // A static pod is gone once terminated (no API deletion to wait for).
                        Ok(()) if static_pods::is_static(&pod) => return,
                        Ok(()) => None,
                        Err(e) => {
                            tracing::warn!(pod_uid = %self.uid, error = %e, "terminating a pod; retrying");
                            Some(RETRY)
                        }
                    }
                }
                Some(pod) => match self.sync(&pod).await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(pod_uid = %self.uid, error = %e, "syncing a pod; retrying");
                        Some(RETRY)
                    }
                },
            };
            let sleep = next.unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                Some(event) = input.probe_events.recv() => {
                    let pod = input.pod.borrow().clone();
                    if let Some(pod) = pod {
                        self.on_probe_event(&pod, event).await;
                    }
                }
                changed = input.pod.changed() => {
                    if changed.is_err() {
                        // The manager is gone (the kubelet stops): leave the containers.
                        return;
                    }
                }
                changed = input.mirror.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    self.mirror = input.mirror.borrow_and_update().clone();
                }
                changed = input.shutdown.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let grace = *input.shutdown.borrow_and_update();
                    let pod = input.pod.borrow().clone();
                    if let (Some(grace), Some(pod)) = (grace, pod) {
                        self.shut_down(&pod, grace).await;
                        return;
                    }
                }
                _ = input.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// A probe's result or kill: record its event; kill a container whose liveness or
    /// startup probe failed (the restart policy then decides, on the next sync).
    async fn on_probe_event(&mut self, pod: &Pod, e: ProbeEvent) {
        if let Some(ev) = &e.event {
            self.event(pod, ev.type_ == "Warning", ev.reason, ev.message.clone())
                .await;
        }
        if e.kill {
            let policy = pod
                .spec
                .as_ref()
                .and_then(|s| s.restart_policy.as_deref())
                .unwrap_or("Always");
            let (reason, message) = probes::killing_event(&e.container, e.kind, policy != "Never");
            self.event(pod, false, reason, message).await;
            let grace = e
                .grace_seconds
                .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)))
                .unwrap_or_else(|| pod_grace(pod));
            if let Err(err) = self
                .shared
                .runtime
                .stop_container(&e.container_id, grace)
                .await
            {
                tracing::warn!(pod_uid = %self.uid, container = %e.container, error = %err, "killing a container that failed its probe");
            }
        }
    }

    /// The runtime's view of this pod, with the failed starts merged in.
    /// The host file behind container instance `id`'s `terminationMessagePath`.
    fn termination_log(&self, container: &str, id: &str) -> PathBuf {
        self.shared
            .agent_dir
            .join("pods")
            .join(&self.uid)
            .join("containers")
            .join(container)
            .join(id)
    }

    async fn view(&self) -> Result<(PodView, Option<Sandbox>), String> {
        let rt = &self.shared.runtime;
        let sandboxes = rt.list_sandboxes().await.map_err(|e| e.to_string())?;
        let mut sandbox = None;
        for s in sandboxes.into_iter().filter(|s| s.pod_uid == self.uid) {
            let ready = match rt.sandbox_status(&s.id).await {
                Ok(Some((_, state))) => {
                    state == skiff_runtime::sandbox::SandboxState::Ready && s.ready
                }
                _ => false,
            };
            if sandbox.as_ref().is_none_or(|(_, r)| !r && ready) {
                sandbox = Some((s, ready));
            }
        }
        let t = now();
        let mut containers: Vec<ObservedContainer> = rt
            .list_containers()
            .await
            .map_err(|e| e.to_string())?
            .iter()
            .filter(|c| c.meta.pod_uid == self.uid)
            .map(|c| {
                let mut o = observe(c, t);
                o.message = termination_message(c, &self.termination_log(&c.meta.name, &c.id));
                o
            })
            .collect();
        containers.extend(self.failed_starts.iter().cloned());
        let view = PodView {
            sandbox: sandbox.as_ref().map(|(s, ready)| SandboxView {
                id: s.id.clone(),
                ready: *ready,
            }),
            containers,
        };
        Ok((view, sandbox.map(|(s, _)| s)))
    }

    /// One sync of a live pod. Returns when to sync again (None: on the next change).
    async fn sync(&mut self, pod: &Pod) -> Result<Option<Duration>, String> {
        if static_pods::is_static(pod) {
            self.sync_mirror(pod).await;
        }
        if self.last_status.is_none()
            && matches!(
                pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                Some("Succeeded" | "Failed")
            )
        {
            // Upstream's pod workers treat a pod the API has in a terminal phase as
            // terminated (a pod killed by a node shutdown, after the kubelet restarted).
            self.terminal = true;
            self.frozen = true;
        }
        let (view, sandbox) = self.view().await?;
        let actions = if self.terminal {
            PodActions {
                terminal: true,
                ..Default::default()
            }
        } else {
            compute_pod_actions(pod, &view, &mut self.backoff, now())
        };
        self.waiting
            .retain(|name, w| w.reason != "CrashLoopBackOff" || actions.waiting.contains_key(name));
        self.waiting.extend(actions.waiting.clone());
        let mut sandbox = sandbox;
        if actions.kill_pod {
            self.stop_containers(&view, pod_grace(pod)).await?;
            if actions.create_sandbox {
                // The old sandbox and its containers go; their logs stay.
                for c in &view.containers {
                    self.shared
                        .runtime
                        .remove_container(&c.id)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                if let Some(s) = sandbox.take() {
                    self.shared
                        .runtime
                        .remove_sandbox(&s.id)
                        .await
                        .map_err(|e| e.to_string())?;
                }
                self.failed_starts.clear();
            }
        }
        if actions.terminal {
            self.terminal = true;
        }
        let mut next = actions
            .retry_at
            .map(|t| Duration::try_from(t.duration_since(now())).unwrap_or_default());
        if actions.create_sandbox && !actions.terminal {
            match self.create_sandbox(pod).await {
                Ok(s) => sandbox = Some(s),
                Err(e) => {
                    tracing::warn!(pod_uid = %self.uid, error = %e, "creating the pod sandbox");
                    self.event(
                        pod,
                        true,
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: {e}"),
                    )
                    .await;
                    self.post_status(pod, false).await?;
                    return Ok(Some(RETRY));
                }
            }
        }
        let volumes_ready = actions.terminal || self.ensure_volumes(pod).await;
        if !volumes_ready {
            self.post_status(pod, sandbox.is_some()).await?;
            return Ok(Some(RETRY));
        }
        if let Some(sb) = sandbox.as_ref().filter(|_| !actions.start.is_empty()) {
            let pull_secrets = self.pull_secrets(pod).await;
            for name in &actions.start {
                if let Some(wait) = self
                    .start_container(pod, sb, &view, name, &pull_secrets)
                    .await
                {
                    next = Some(next.map_or(wait, |n: Duration| n.min(wait)));
                }
            }
        }
        let running = self.post_status(pod, sandbox.is_some()).await?;
        if running {
            next = Some(next.map_or(RESYNC, |n| n.min(RESYNC)));
        }
        Ok(next)
    }

    /// Keeps a static pod's mirror pod in line. Failures (no API server, no Node yet) are
    /// logged and tried again on the next sync: the static pod runs regardless.
    async fn sync_mirror(&mut self, pod: &Pod) {
        let action = static_pods::mirror_action(pod, self.mirror.as_deref());
        if action == MirrorAction::Keep {
            return;
        }
        if let (MirrorAction::Replace { .. }, Some(old)) = (&action, self.mirror.clone()) {
            tracing::info!(pod_uid = %self.uid, mirror_uid = ?old.metadata.uid, "deleting an outdated mirror pod");
            match bounded(pod, super::delete_mirror(&self.shared.client, &old)).await {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    tracing::warn!(pod_uid = %self.uid, error = %e, "deleting an outdated mirror pod");
                    return;
                }
                None => return,
            }
            self.mirror = None;
        }
        let nodes: Api<Node> = Api::all(self.shared.client.clone());
        let node = match bounded(pod, nodes.get_opt(&self.shared.node_name)).await {
            Some(Ok(Some(n))) if n.metadata.deletion_timestamp.is_none() => n,
            Some(Ok(_)) => {
                tracing::debug!(pod_uid = %self.uid, "no mirror pod: the node is not in the API");
                return;
            }
            Some(Err(e)) => {
                tracing::debug!(pod_uid = %self.uid, error = %e, "no mirror pod: the node could not be read");
                return;
            }
            None => {
                tracing::debug!(pod_uid = %self.uid, "no mirror pod: the API server does not answer");
                return;
            }
        };
        let node_uid = node.metadata.uid.clone().unwrap_or_default();
        let mirror = static_pods::mirror_pod(pod, &self.shared.node_name, &node_uid);
        let (ns, _, _) = name_of(pod);
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &ns);
        match bounded(pod, api.create(&PostParams::default(), &mirror)).await {
            Some(Ok(created)) => {
                tracing::info!(pod_uid = %self.uid, mirror_uid = ?created.metadata.uid, "created a mirror pod");
                self.mirror = Some(Arc::new(created));
            }
            // There is one already (the watch brings it).
            Some(Err(kube::Error::Api(e))) if e.code == 409 => {}
            Some(Err(e)) => {
                tracing::warn!(pod_uid = %self.uid, error = %e, "creating a mirror pod");
            }
            None => tracing::debug!(pod_uid = %self.uid, "creating a mirror pod: no answer"),
        }
    }

    /// Where the pod's status is posted: its own uid, or a static pod's mirror pod's (None
    /// while it has no current mirror).
    fn status_target(&self, pod: &Pod) -> Option<String> {
        if !static_pods::is_static(pod) {
            return pod.metadata.uid.clone();
        }
        self.mirror
            .as_deref()
            .filter(|m| {
                m.metadata.deletion_timestamp.is_none() && static_pods::is_mirror_of(m, pod)
            })
            .and_then(|m| m.metadata.uid.clone())
    }

    /// Records an event about the pod (reporting component `kubelet`, this node).
    async fn event(&mut self, pod: &Pod, warning: bool, reason: &str, note: String) {
        let recorder = self.recorder.get_or_insert_with(|| {
            Recorder::new(
                self.shared.client.clone(),
                Reporter {
                    controller: "kubelet".into(),
                    instance: Some(self.shared.node_name.clone()),
                },
            )
        });
        // kube-rs's recorder makes one series of events with the same action, whatever
        // their note; upstream's kubelet keeps events with different messages apart
        // (`Failed: Failed to pull image ...` and `Failed: Error: ErrImagePull`), so the
        // action carries a digest of the note: a repeated message still counts up.
        let action = format!("{reason}-{:08x}", note_digest(&note));
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.to_owned(),
            note: Some(note),
            action,
            secondary: None,
        };
        match bounded(pod, recorder.publish(&event, &pod.object_ref(&()))).await {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::debug!(reason, error = %e, "recording an event failed"),
            None => tracing::debug!(reason, "recording an event: no answer"),
        }
    }

    fn node_facts(&self) -> NodeFacts {
        NodeFacts {
            allocatable: self.shared.allocatable.clone(),
            node_name: self.shared.node_name.clone(),
        }
    }

    /// Sets up the pod's volumes once, and re-renders their contents now and then. An error
    /// is a `FailedMount` event; the pod waits in ContainerCreating and is retried.
    async fn ensure_volumes(&mut self, pod: &Pod) -> bool {
        let objects = ApiObjects {
            client: self.shared.client.clone(),
        };
        let facts = self.node_facts();
        if self.volumes.is_none() {
            match self.shared.volumes.setup(pod, &objects, &facts).await {
                Ok(v) => {
                    self.volumes = Some(v);
                    self.volumes_refreshed = Some(std::time::Instant::now());
                }
                Err(e) => {
                    self.event(pod, true, "FailedMount", e.to_string()).await;
                    return false;
                }
            }
        } else if self
            .volumes_refreshed
            .is_none_or(|t| t.elapsed() >= VOLUME_REFRESH)
        {
            if let Err(e) = self.shared.volumes.refresh(pod, &objects, &facts).await {
                tracing::debug!(pod_uid = %self.uid, error = %e, "refreshing volumes");
            }
            self.volumes_refreshed = Some(std::time::Instant::now());
        }
        true
    }

    async fn create_sandbox(&self, pod: &Pod) -> Result<Sandbox, String> {
        let rt = &self.shared.runtime;
        let prc = resources::pod_resource_config(pod);
        let cgroup = PodCgroup {
            path: qos::pod_cgroup_parent(pod),
            cpu_shares: prc.cpu_shares,
            cpu_quota: prc.cpu_quota,
            cpu_period: prc.cpu_period,
            memory_limit: prc.memory_limit,
            pids_limit: None,
        };
        rt.ensure_pod_cgroup(&cgroup)
            .await
            .map_err(|e| e.to_string())?;
        let config = sandbox_config(pod, &new_id(), &self.shared.sandbox);
        rt.run_sandbox(config).await.map_err(|e| e.to_string())
    }

    /// The pod's `imagePullSecrets` as docker configs (missing ones are skipped, as
    /// upstream does with a warning).
    async fn pull_secrets(&self, pod: &Pod) -> Vec<DockerConfigJson> {
        let (ns, _, _) = name_of(pod);
        let api: Api<Secret> = Api::namespaced(self.shared.client.clone(), &ns);
        let mut out = Vec::new();
        let refs = pod
            .spec
            .as_ref()
            .and_then(|s| s.image_pull_secrets.clone())
            .unwrap_or_default();
        for r in refs {
            let Ok(Some(secret)) = api.get_opt(&r.name).await else {
                tracing::warn!(secret = %r.name, "image pull secret not found");
                continue;
            };
            let data = secret.data.unwrap_or_default();
            let bytes = data
                .get(".dockerconfigjson")
                .or_else(|| data.get(".dockercfg"))
                .map(|b| b.0.clone());
            if let Some(cfg) = bytes.and_then(|b| DockerConfigJson::parse(&b).ok()) {
                out.push(cfg);
            }
        }
        out
    }

    /// The image for `container` per its pull policy. `Err(wait)`: the container waits
    /// (its reason recorded) and is tried again after `wait`.
    async fn ensure_image(
        &mut self,
        pod: &Pod,
        container: &Container,
        secrets: &[DockerConfigJson],
    ) -> Result<ImageInfo, Duration> {
        let image = container.image.clone().unwrap_or_default();
        let rt = &self.shared.runtime;
        let policy = container
            .image_pull_policy
            .clone()
            .unwrap_or_else(|| default_pull_policy(&image).to_owned());
        let present = rt.image_status(&image).await.ok().flatten();
        if let Some(info) = present.clone().filter(|_| policy != "Always") {
            return Ok(info);
        }
        if policy == "Never" {
            self.waiting.insert(
                container.name.clone(),
                WaitingReason {
                    reason: "ErrImageNeverPull".into(),
                    message: format!(
                        "Container image \"{image}\" is not present with pull policy of Never"
                    ),
                },
            );
            return Err(RESYNC);
        }
        let key = format!("{}/{image}", self.uid);
        let t = now();
        if self.image_backoff.in_backoff_since(&key, t, t) {
            self.event(
                pod,
                false,
                "BackOff",
                format!("Back-off pulling image \"{image}\""),
            )
            .await;
            self.event(pod, true, "Failed", "Error: ImagePullBackOff".into())
                .await;
            self.waiting.insert(
                container.name.clone(),
                WaitingReason {
                    reason: "ImagePullBackOff".into(),
                    message: format!("Back-off pulling image \"{image}\""),
                },
            );
            let wait = self
                .image_backoff
                .get(&key)
                .and_then(|d| Duration::try_from(d).ok())
                .unwrap_or(RETRY);
            return Err(wait);
        }
        let started = std::time::Instant::now();
        let rt = rt.clone();
        self.event(pod, false, "Pulling", format!("Pulling image \"{image}\""))
            .await;
        match rt.pull_image(&image, secrets).await {
            Ok(info) => {
                {
                    let took = started.elapsed();
                    self.event(
                        pod,
                        false,
                        "Pulled",
                        format!(
                            "Successfully pulled image \"{image}\" in {took:.3?} ({took:.3?} including waiting). Image size: {} bytes.",
                            info.size
                        ),
                    )
                    .await;
                }
                Ok(info)
            }
            Err(e) => {
                self.image_backoff.next(&key, t, t);
                let message = format!("failed to pull and unpack image \"{image}\": {e}");
                self.event(
                    pod,
                    true,
                    "Failed",
                    format!("Failed to pull image \"{image}\": {message}"),
                )
                .await;
                self.event(pod, true, "Failed", "Error: ErrImagePull".into())
                    .await;
                self.waiting.insert(
                    container.name.clone(),
                    WaitingReason {
                        reason: "ErrImagePull".into(),
                        message,
                    },
                );
                Err(RETRY)
            }
        }
    }

    /// ConfigMaps and Secrets the container's env names, fetched for the env builder.
    async fn env_objects(&self, ns: &str, container: &Container) -> Objects {
        let mut objects = Objects::default();
        let mut cms = Vec::new();
        let mut secrets = Vec::new();
        for e in container.env_from.iter().flatten() {
            if let Some(r) = &e.config_map_ref {
                cms.push(r.name.clone());
            }
            if let Some(r) = &e.secret_ref {
                secrets.push(r.name.clone());
            }
        }
        for e in container.env.iter().flatten() {
            let Some(v) = &e.value_from else { continue };
            if let Some(r) = &v.config_map_key_ref {
                cms.push(r.name.clone());
            }
            if let Some(r) = &v.secret_key_ref {
                secrets.push(r.name.clone());
            }
        }
        let cm_api: Api<ConfigMap> = Api::namespaced(self.shared.client.clone(), ns);
        for n in cms {
            if let Ok(Some(cm)) = cm_api.get_opt(&n).await {
                objects = objects.with_config_map(cm);
            }
        }
        let s_api: Api<Secret> = Api::namespaced(self.shared.client.clone(), ns);
        for n in secrets {
            if let Ok(Some(s)) = s_api.get_opt(&n).await {
                objects = objects.with_secret(s);
            }
        }
        objects
    }

    /// The Services whose variables a container gets: its namespace's (with
    /// `enableServiceLinks`) and `kubernetes` in `default`.
    async fn services(&self, pod: &Pod) -> Vec<Service> {
        let (ns, _, _) = name_of(pod);
        let mut out = Vec::new();
        let links = pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        if links {
            let api: Api<Service> = Api::namespaced(self.shared.client.clone(), &ns);
            if let Some(Ok(list)) = bounded(pod, api.list(&ListParams::default())).await {
                out.extend(list.items);
            }
        }
        if ns != "default" || !links {
            let api: Api<Service> = Api::namespaced(self.shared.client.clone(), "default");
            if let Some(Ok(Some(k))) = bounded(pod, api.get_opt("kubernetes")).await {
                out.push(k);
            }
        }
        out
    }

    /// Pulls, creates and starts container `name`. Returns when to retry if it could not.
    async fn start_container(
        &mut self,
        pod: &Pod,
        sandbox: &Sandbox,
        view: &PodView,
        name: &str,
        secrets: &[DockerConfigJson],
    ) -> Option<Duration> {
        let (ns, pod_name, uid) = name_of(pod);
        let init = spec_init_containers(pod).iter().any(|c| c.name == name);
        let container = spec_init_containers(pod)
            .iter()
            .chain(spec_containers(pod))
            .find(|c| c.name == name)?
            .clone();
        let image = match self.ensure_image(pod, &container, secrets).await {
            Ok(i) => i,
            Err(wait) => return Some(wait),
        };
        let attempt = view
            .latest(name)
            .map_or(0, |c| u32::try_from(c.restart_count).unwrap_or(0) + 1);
        let id = new_id();
        let log_dir = self
            .shared
            .agent_dir
            .join("logs")
            .join(format!("{ns}_{pod_name}_{uid}"))
            .join(name);
        let mut labels = BTreeMap::new();
        labels.insert(KIND_LABEL.into(), if init { "init" } else { "app" }.into());
        if container.stdin == Some(true) {
            // The monitor then holds a stdin FIFO for `kubectl attach`.
            labels.insert(skiff_runtime::local::STDIN_LABEL.into(), "true".into());
        }
        labels.insert(
            TERMINATION_MESSAGE_POLICY_LABEL.into(),
            container
                .termination_message_policy
                .clone()
                .unwrap_or_else(|| "File".into()),
        );
        labels.insert(
            TERMINATION_MESSAGE_PATH_LABEL.into(),
            container
                .termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
        );
        let meta = ContainerMeta {
            pod_uid: uid.clone(),
            pod_name: pod_name.clone(),
            pod_namespace: ns.clone(),
            sandbox_id: sandbox.id.clone(),
            name: name.to_owned(),
            attempt,
            image: container.image.clone().unwrap_or_default(),
            image_id: image.id.clone(),
            image_ref: image
                .repo_digests
                .first()
                .cloned()
                .unwrap_or_else(|| image.id.clone()),
            log_path: log_dir.join(format!("{attempt}.log")),
            labels,
        };
        if let Err(e) = std::fs::create_dir_all(&log_dir) {
            self.waiting.insert(
                name.to_owned(),
                WaitingReason::create_error(format!("creating the log directory: {e}")),
            );
            return Some(RETRY);
        }
        let rt = self.shared.runtime.clone();
        let prepared = match rt.create_container(&id, &image, meta.clone()).await {
            Ok(p) => p,
            Err(e) => {
                self.waiting
                    .insert(name.to_owned(), WaitingReason::create_error(e.to_string()));
                return Some(RETRY);
            }
        };
        let term_log = self.termination_log(name, &id);
        let term_ok = term_log
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|_| std::fs::write(&term_log, b""))
            .is_ok();
        let objects = self.env_objects(&ns, &container).await;
        let services = self.services(pod).await;
        let pod_ips: Vec<String> = if sandbox.host_network {
            self.shared.host_ips.clone()
        } else {
            sandbox.ips.iter().map(|ip| ip.to_string()).collect()
        };
        let users = EtcFiles::read(&prepared.rootfs);
        // subPathExpr expands with the container's own variables.
        let env = {
            let env_inputs = EnvInputs {
                objects: &objects,
                services: &services,
                node_allocatable: &self.shared.allocatable,
                pod_ips: &pod_ips,
                host_ips: &self.shared.host_ips,
            };
            crate::pods::env::make_environment(pod, &container, &env_inputs)
                .map(|e| e.vars)
                .unwrap_or_default()
        };
        let volume_mounts = match self
            .volumes
            .as_ref()
            .map(|v| v.mounts_for(&container, &env))
        {
            Some(Ok(m)) => m,
            None => Vec::new(),
            Some(Err(e)) => {
                let _ = rt.remove_container(&id).await;
                self.waiting
                    .insert(name.to_owned(), WaitingReason::create_error(e.to_string()));
                return Some(RETRY);
            }
        };
        let readonly = container
            .security_context
            .as_ref()
            .and_then(|s| s.read_only_root_filesystem)
            == Some(true);
        let inputs = ContainerInputs {
            id: id.clone(),
            rootfs: prepared.rootfs.clone(),
            env: EnvInputs {
                objects: &objects,
                services: &services,
                node_allocatable: &self.shared.allocatable,
                pod_ips: &pod_ips,
                host_ips: &self.shared.host_ips,
            },
            sandbox: SandboxNamespaces {
                network: sandbox.netns.clone(),
                ipc: sandbox.ipc.clone(),
                uts: sandbox.uts.clone(),
                // Set only for shareProcessNamespace (convert joins it then).
                pid: sandbox.pid.clone(),
            },
            mounts: sandbox
                .mounts(readonly)
                .into_iter()
                .chain(volume_mounts)
                .collect(),
            termination_log: term_ok.then_some(term_log),
            memory_capacity: self.shared.memory_capacity,
            cluster_domain: &self.shared.sandbox.cluster_domain,
            users: Some(&users),
            host_devices: Vec::new(),
            host_capabilities: Vec::new(),
            annotations: BTreeMap::new(),
        };
        let converted = match container_config(pod, &container, &image.config, inputs) {
            Ok(c) => c,
            Err(e) => {
                let _ = rt.remove_container(&id).await;
                self.waiting
                    .insert(name.to_owned(), WaitingReason::config_error(&e));
                return Some(RETRY);
            }
        };
        if let Err(e) = rt.start_container(&id, &converted.config).await {
            let t = now();
            let _ = rt.remove_container(&id).await;
            if let skiff_runtime::cri::CriError::Create(message) = &e {
                // Nothing was started: the container waits (CreateContainerError), as when
                // the runtime refuses to create it.
                self.event(pod, true, "Failed", format!("Error: {message}"))
                    .await;
                self.waiting.insert(
                    name.to_owned(),
                    WaitingReason::create_error(message.clone()),
                );
                return Some(RETRY);
            }
            self.event(pod, true, "Failed", format!("Error: {e}")).await;
            // Only the latest refused start of a container matters (its restart count and
            // back-off); a start that keeps failing must not grow the list.
            self.failed_starts.retain(|c| c.name != name);
            self.failed_starts.push(ObservedContainer {
                name: name.to_owned(),
                id,
                state: ObservedState::Exited,
                created_at: t,
                started_at: None,
                finished_at: Some(t),
                exit_code: 128,
                oom_killed: false,
                start_error: Some(e.to_string()),
                message: None,
                restart_count: i32::try_from(attempt).unwrap_or(i32::MAX),
                image: meta.image,
                image_id: meta.image_ref,
            });
            self.waiting.remove(name);
            return Some(RETRY);
        }
        self.waiting.remove(name);
        self.event(pod, false, "Started", format!("Started container {name}"))
            .await;
        let pod_ip = pod_ips.first().and_then(|ip| ip.parse().ok());
        if let Err(f) = hooks::post_start(rt.as_ref(), pod, &container, &id, pod_ip).await {
            self.event(pod, true, f.event.reason, f.event.message.clone())
                .await;
            self.event(pod, false, "Killing", f.kill_message.to_string())
                .await;
            let _ = rt.stop_container(&id, pod_grace(pod)).await;
            self.waiting.insert(
                name.to_owned(),
                WaitingReason {
                    reason: f.reason.into(),
                    message: f.message,
                },
            );
            return Some(RETRY);
        }
        None
    }

    /// Stops every running container of the pod with `grace` (concurrently).
    async fn stop_containers(&self, view: &PodView, grace: Duration) -> Result<(), String> {
        let rt = &self.shared.runtime;
        let stops = view
            .containers
            .iter()
            .filter(|c| matches!(c.state, ObservedState::Running | ObservedState::Unknown))
            .map(|c| rt.stop_container(&c.id, grace));
        for r in futures::future::join_all(stops).await {
            r.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Posts the pod's status when it changed. Returns whether a container runs.
    async fn post_status(&mut self, pod: &Pod, sandbox_ready: bool) -> Result<bool, String> {
        let (view, sandbox) = self.view().await?;
        let pod_ips: Vec<String> = match &sandbox {
            Some(s) if s.host_network => self.shared.host_ips.clone(),
            Some(s) => s.ips.iter().map(|ip| ip.to_string()).collect(),
            None => Vec::new(),
        };
        let running: Vec<RunningContainer> = if self.terminal {
            Vec::new()
        } else {
            spec_init_containers(pod)
                .iter()
                .chain(spec_containers(pod))
                .filter_map(|c| view.latest(&c.name))
                .filter(|o| o.state == ObservedState::Running)
                .map(|o| RunningContainer {
                    name: o.name.clone(),
                    id: o.id.clone(),
                    started_at: o.started_at.unwrap_or(o.created_at),
                })
                .collect()
        };
        self.shared.probes.sync_pod(
            pod,
            pod_ips.first().and_then(|ip| ip.parse().ok()),
            &running,
        );
        let probes: BTreeMap<String, ProbeResults> = spec_init_containers(pod)
            .iter()
            .chain(spec_containers(pod))
            .map(|c| {
                (
                    c.name.clone(),
                    self.shared.probes.results(&self.uid, &c.name),
                )
            })
            .collect();
        let mut status = generate_pod_status(
            pod,
            &StatusInputs {
                observed: &view.containers,
                waiting: &self.waiting,
                probes: &probes,
                sandbox_ready: sandbox_ready && sandbox.is_some(),
                pod_is_terminal: self.terminal,
                pod_ips: &pod_ips,
                host_ips: &self.shared.host_ips,
                previous: self.last_status.as_ref(),
                now: now(),
            },
        );
        if let Some(at) = self.node_shutdown {
            super::shutdown::apply(&mut status, at);
        }
        let running = view
            .containers
            .iter()
            .any(|c| c.state == ObservedState::Running);
        let Some(uid) = self.status_target(pod).filter(|_| !self.frozen) else {
            return Ok(running);
        };
        if self.last_status.as_ref() == Some(&status) && self.posted_to.as_ref() == Some(&uid) {
            return Ok(running);
        }
        let (ns, name, _) = name_of(pod);
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &ns);
        let patch = crate::sim::pod::status_patch(&uid, &status);
        bounded(
            pod,
            api.patch_status(&name, &PatchParams::default(), &Patch::Strategic(&patch)),
        )
        .await
        .ok_or("posting the status: the API server does not answer")?
        .map_err(|e| e.to_string())?;
        self.last_status = Some(status);
        self.posted_to = Some(uid);
        Ok(running)
    }

    /// A pod being deleted: stop its containers within the grace period, post the final
    /// status, remove everything of it from the node, then delete it with grace 0.
    async fn terminate(&mut self, pod: &Pod) -> Result<(), String> {
        self.kill(pod, pod_grace(pod)).await?;
        self.terminal = true;
        // The final status shows the containers terminated.
        let _ = self.post_status(pod, false).await;
        self.cleanup().await?;
        if static_pods::is_static(pod) {
            // Its mirror pod goes (not a newer version's).
            if let Some(m) = self
                .mirror
                .clone()
                .filter(|m| static_pods::is_mirror_of(m, pod))
            {
                match bounded(pod, super::delete_mirror(&self.shared.client, &m)).await {
                    Some(Ok(())) => {}
                    Some(Err(e)) => {
                        tracing::warn!(pod_uid = %self.uid, error = %e, "deleting the mirror pod of a removed static pod");
                    }
                    None => {
                        tracing::warn!(pod_uid = %self.uid, "deleting the mirror pod of a removed static pod: no answer")
                    }
                }
            }
            return Ok(());
        }
        let (ns, name, uid) = name_of(pod);
        let api: Api<Pod> = Api::namespaced(self.shared.client.clone(), &ns);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Stops the pod's running containers: preStop hooks, each bounded by `grace`, then
    /// SIGTERM with what is left of it, then SIGKILL.
    async fn kill(&mut self, pod: &Pod, grace: Duration) -> Result<(), String> {
        let (view, sandbox) = self.view().await?;
        self.shared.probes.remove_pod(&self.uid);
        let pod_ip = sandbox.as_ref().and_then(|s| s.ips.first().copied());
        // preStop hooks, each bounded by the grace period, then SIGTERM with what is left.
        let rt = self.shared.runtime.clone();
        let stops = view
            .containers
            .iter()
            .filter(|c| c.state == ObservedState::Running)
            .map(|c| {
                let spec = spec_init_containers(pod)
                    .iter()
                    .chain(spec_containers(pod))
                    .find(|s| s.name == c.name)
                    .cloned();
                let rt = rt.clone();
                let id = c.id.clone();
                async move {
                    let mut left = grace;
                    let mut failed = None;
                    if let Some(spec) = &spec {
                        if let Some(out) =
                            hooks::pre_stop(rt.as_ref(), pod, spec, &id, pod_ip, grace).await
                        {
                            left = Duration::from_secs(
                                u64::try_from(hooks::remaining_grace(
                                    i64::try_from(grace.as_secs()).unwrap_or(i64::MAX),
                                    out.elapsed,
                                ))
                                .unwrap_or(0),
                            );
                            failed = out.event;
                        }
                    }
                    (rt.stop_container(&id, left).await, failed)
                }
            })
            .collect::<Vec<_>>();
        for (result, failed) in futures::future::join_all(stops).await {
            if let Some(ev) = failed {
                self.event(pod, true, ev.reason, ev.message).await;
            }
            result.map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// A node shutdown: the pod is killed within `grace`, its status posted as upstream's
    /// shutdown manager writes it (Failed, Terminated, DisruptionTarget); its stopped
    /// containers and sandbox stay (a pod the API still has), and the worker stops.
    async fn shut_down(&mut self, pod: &Pod, grace: Duration) {
        tracing::info!(pod_uid = %self.uid, grace_seconds = grace.as_secs(), "killing the pod for the node shutdown");
        if let Err(e) = self.kill(pod, grace).await {
            tracing::warn!(pod_uid = %self.uid, error = %e, "killing a pod for the node shutdown");
        }
        self.terminal = true;
        self.node_shutdown = Some(now());
        if let Err(e) = self.post_status(pod, false).await {
            tracing::warn!(pod_uid = %self.uid, error = %e, "posting a pod's status at the node shutdown");
        }
    }

    /// Removes every container, the sandbox, the pod's cgroup and files. Idempotent.
    async fn cleanup(&mut self) -> Result<(), String> {
        let rt = &self.shared.runtime;
        self.shared.probes.remove_pod(&self.uid);
        let (view, _) = self.view().await?;
        self.stop_containers(&view, Duration::from_secs(2)).await?;
        for c in view.containers.iter().filter(|c| c.start_error.is_none()) {
            rt.remove_container(&c.id)
                .await
                .map_err(|e| e.to_string())?;
        }
        for s in rt.list_sandboxes().await.map_err(|e| e.to_string())? {
            if s.pod_uid == self.uid {
                rt.remove_sandbox(&s.id).await.map_err(|e| e.to_string())?;
            }
        }
        self.failed_starts.clear();
        self.shared
            .volumes
            .teardown(&self.uid)
            .await
            .map_err(|e| e.to_string())?;
        self.volumes = None;
        // The pod's cgroup, wherever its QoS class put it (the pod itself may be gone).
        for path in qos::pod_cgroup_candidates(&self.uid) {
            rt.remove_pod_cgroup(&path)
                .await
                .map_err(|e| e.to_string())?;
        }
        let pod_dir = self.shared.agent_dir.join("pods").join(&self.uid);
        let mut dirs = vec![pod_dir];
        // The pod's log directory (`logs/<ns>_<name>_<uid>`), as upstream's container GC
        // removes the log directories of removed pods.
        let suffix = format!("_{}", self.uid);
        if let Ok(entries) = std::fs::read_dir(self.shared.agent_dir.join("logs")) {
            dirs.extend(
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(&suffix))
                    .map(|e| e.path()),
            );
        }
        for dir in dirs {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("removing {}: {e}", dir.display())),
            }
        }
        Ok(())
    }
}

/// How long a static pod waits for one API call: it runs without the API server, and one
/// that takes connections but does not answer (the client has no read timeout) must not
/// hold its containers back. API pods wait as long as the client does.
const STATIC_API_TIMEOUT: Duration = Duration::from_secs(2);

/// `fut`, bounded by [`STATIC_API_TIMEOUT`] for a static pod; None when it took longer.
async fn bounded<F: std::future::Future>(pod: &Pod, fut: F) -> Option<F::Output> {
    if !static_pods::is_static(pod) {
        return Some(fut.await);
    }
    tokio::time::timeout(STATIC_API_TIMEOUT, fut).await.ok()
}

/// The grace period a pod's containers get: the deletion's, else the spec's (default 30).
fn pod_grace(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// The API server's default (`SetDefaults_Container`): `Always` for `:latest` or no tag,
/// else `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.split_once(':') {
        Some((_, tag)) if tag != "latest" => "IfNotPresent",
        _ if image.contains('@') => "IfNotPresent",
        _ => "Always",
    }
}

/// A short, stable digest of an event's note (FNV-1a), to tell messages apart.
fn note_digest(note: &str) -> u32 {
    note.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_defaults_as_the_api_server() {
        assert_eq!(default_pull_policy("busybox"), "Always");
        assert_eq!(default_pull_policy("busybox:latest"), "Always");
        assert_eq!(default_pull_policy("busybox:1.36"), "IfNotPresent");
        assert_eq!(default_pull_policy("127.0.0.1:5000/busybox"), "Always");
        assert_eq!(
            default_pull_policy("127.0.0.1:5000/busybox:v1"),
            "IfNotPresent"
        );
        assert_eq!(default_pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn grace_comes_from_the_deletion_then_the_spec() {
        let mut pod = Pod::default();
        assert_eq!(pod_grace(&pod), Duration::from_secs(30));
        pod.spec = Some(Default::default());
        pod.spec.as_mut().unwrap().termination_grace_period_seconds = Some(5);
        assert_eq!(pod_grace(&pod), Duration::from_secs(5));
        pod.metadata.deletion_grace_period_seconds = Some(1);
        assert_eq!(pod_grace(&pod), Duration::from_secs(1));
    }
}
