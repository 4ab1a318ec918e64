//! The pod's status from what the runtime observed: `containerStatuses`,
//! `initContainerStatuses`, the phase and the kubelet's conditions.
//!
//! Upstream: `pkg/kubelet/kubelet_pods.go` (`generateAPIPodStatus`,
//! `convertToAPIContainerStatuses`, `getPhase`), `pkg/kubelet/status/generate.go`
//! (`GenerateContainersReadyCondition`, `GeneratePodReadyCondition`,
//! `GeneratePodInitializedCondition`, `GeneratePodReadyToStartContainersCondition`),
//! `pkg/kubelet/prober/prober_manager.go` (`UpdatePodStatus`: `started` and `ready`),
//! `pkg/kubelet/status/status_manager.go` (`updateLastTransitionTime`, `startTime`) and
//! containerd's CRI for the terminated reasons (`Completed`, `Error`, `OOMKilled`,
//! `StartError`; `ContainerCannotRun` was dockershim's and is not used).
//!
//! Container IDs are `skiff://<id>` ([`CONTAINER_ID_SCHEME`]): upstream writes the CRI
//! runtime's name (`containerd://`); ours is skiff's own runtime, whatever OCI runtime
//! (runc, crun) runs under it.
//!
//! Differences, on purpose: probe results are applied before the phase is computed
//! (upstream applies them after, so a sidecar's `started` reaches the phase one sync
//! later); feature-gated alpha behaviour (ContainerRestartRules, RestartAllContainers,
//! in-place resize, pod-level resources) is left out.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::backoff::{should_restart, LastRun};
use super::qos::{is_static_pod, pod_qos};
use super::{is_sidecar, spec_containers, spec_init_containers};

/// The scheme of `containerID` (`skiff://<id>`).
pub const CONTAINER_ID_SCHEME: &str = "skiff";

/// Upstream's reason words.
pub mod reasons {
    pub const CONTAINER_CREATING: &str = "ContainerCreating";
    pub const POD_INITIALIZING: &str = "PodInitializing";
    pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
    pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
    pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
    pub const ERR_IMAGE_NEVER_PULL: &str = "ErrImageNeverPull";
    pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";
    pub const CREATE_CONTAINER_ERROR: &str = "CreateContainerError";
    pub const RUN_CONTAINER_ERROR: &str = "RunContainerError";
    pub const COMPLETED: &str = "Completed";
    pub const ERROR: &str = "Error";
    pub const OOM_KILLED: &str = "OOMKilled";
    pub const START_ERROR: &str = "StartError";
    pub const CONTAINER_STATUS_UNKNOWN: &str = "ContainerStatusUnknown";
    pub const CONTAINERS_NOT_READY: &str = "ContainersNotReady";
    pub const CONTAINERS_NOT_INITIALIZED: &str = "ContainersNotInitialized";
    pub const READINESS_GATES_NOT_READY: &str = "ReadinessGatesNotReady";
    pub const POD_COMPLETED: &str = "PodCompleted";
    pub const POD_FAILED: &str = "PodFailed";
}

/// A container instance's state as the runtime knows it (CRI's `ContainerState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObservedState {
    Created,
    Running,
    Exited,
    Unknown,
}

/// One container instance as the runtime reports it (upstream's `kubecontainer.Status`).
/// A container name may have several instances (the current one and earlier ones).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedContainer {
    pub name: String,
    /// The runtime's id (without a scheme).
    pub id: String,
    pub state: ObservedState,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub exit_code: i32,
    /// The kernel's OOM killer ended it (reason `OOMKilled`).
    pub oom_killed: bool,
    /// The runtime could not start the process: reason `StartError`, with this message.
    pub start_error: Option<String>,
    /// The termination message (file or log tail), if any.
    pub message: Option<String>,
    /// The instance's attempt number (its restart count).
    pub restart_count: i32,
    pub image: String,
    pub image_id: String,
}

impl ObservedContainer {
    /// The terminated reason containerd reports.
    pub fn terminated_reason(&self) -> &'static str {
        if self.oom_killed {
            reasons::OOM_KILLED
        } else if self.start_error.is_some() {
            reasons::START_ERROR
        } else if self.exit_code == 0 {
            reasons::COMPLETED
        } else {
            reasons::ERROR
        }
    }

    /// What the restart decision needs to know of this instance.
    pub fn last_run(&self) -> LastRun {
        match self.state {
            ObservedState::Created => LastRun::Created,
            ObservedState::Running => LastRun::Running,
            ObservedState::Exited => LastRun::Exited {
                exit_code: self.exit_code,
            },
            ObservedState::Unknown => LastRun::Unknown,
        }
    }
}

/// Why a container is waiting, from its last failed start (upstream's reason cache):
/// `CrashLoopBackOff`, `ErrImagePull`, `ImagePullBackOff`, `CreateContainerConfigError`...
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitingReason {
    pub reason: String,
    pub message: String,
}

impl WaitingReason {
    /// `CrashLoopBackOff` with upstream's message.
    pub fn crash_loop(
        backoff: k8s_openapi::jiff::SignedDuration,
        container: &str,
        pod: &Pod,
    ) -> Self {
        Self {
            reason: reasons::CRASH_LOOP_BACK_OFF.into(),
            message: super::backoff::crash_loop_message(backoff, container, pod),
        }
    }

    /// `CreateContainerConfigError`: the container's config could not be built (a missing
    /// ConfigMap or key, a user that cannot run).
    pub fn config_error(err: &super::convert::ConvertError) -> Self {
        Self {
            reason: reasons::CREATE_CONTAINER_CONFIG_ERROR.into(),
            message: err.to_string(),
        }
    }

    /// `CreateContainerError`: the runtime refused to create it.
    pub fn create_error(message: impl Into<String>) -> Self {
        Self {
            reason: reasons::CREATE_CONTAINER_ERROR.into(),
            message: message.into(),
        }
    }
}

/// Probe results for one container. `None`: no such probe (the container counts as
/// started/ready once running); `Some(false)`: a probe that has not succeeded (yet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProbeResults {
    pub started: Option<bool>,
    pub ready: Option<bool>,
}

/// What the status is generated from.
pub struct StatusInputs<'a> {
    pub observed: &'a [ObservedContainer],
    pub waiting: &'a BTreeMap<String, WaitingReason>,
    pub probes: &'a BTreeMap<String, ProbeResults>,
    /// The sandbox exists with its network (PodReadyToStartContainers).
    pub sandbox_ready: bool,
    /// The pod worker has decided the pod is done (no more restarts).
    pub pod_is_terminal: bool,
    pub pod_ips: &'a [String],
    pub host_ips: &'a [String],
    /// The last status the kubelet generated, if it has one (else `pod.status` is used).
    pub previous: Option<&'a PodStatus>,
    pub now: Timestamp,
}

fn time(t: Option<Timestamp>) -> Option<Time> {
    t.map(Time)
}

fn waiting(reason: Option<&str>, message: Option<&str>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: reason.map(str::to_owned),
            message: message.map(str::to_owned),
        }),
        ..Default::default()
    }
}

fn is_running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|s| s.running.is_some())
}

fn terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.state.as_ref().and_then(|s| s.terminated.as_ref())
}

fn waiting_reason(s: &ContainerStatus) -> Option<&str> {
    s.state
        .as_ref()
        .and_then(|s| s.waiting.as_ref())
        .map(|w| w.reason.as_deref().unwrap_or_default())
}

fn convert_one(o: &ObservedContainer, old: Option<&ContainerStatus>) -> ContainerStatus {
    let cid = format!("{CONTAINER_ID_SCHEME}://{}", o.id);
    let mut s = ContainerStatus {
        name: o.name.clone(),
        restart_count: o.restart_count,
        image: o.image.clone(),
        image_id: o.image_id.clone(),
        container_id: Some(cid.clone()),
        ..Default::default()
    };
    s.state = Some(match o.state {
        ObservedState::Running => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: time(o.started_at),
            }),
            ..Default::default()
        },
        ObservedState::Created => waiting(None, None),
        ObservedState::Exited => ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: o.exit_code,
                reason: Some(o.terminated_reason().to_owned()),
                message: o
                    .start_error
                    .clone()
                    .or_else(|| o.message.clone())
                    .filter(|m| !m.is_empty()),
                started_at: time(o.started_at),
                finished_at: time(o.finished_at),
                container_id: Some(cid),
                signal: None,
            }),
            ..Default::default()
        },
        ObservedState::Unknown if old.is_some_and(is_running) => {
            s.restart_count = old.map_or(0, |o| o.restart_count) + 1;
            ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: 137,
                    reason: Some(reasons::CONTAINER_STATUS_UNKNOWN.into()),
                    message: Some(
                        "The container could not be located when the pod was terminated".into(),
                    ),
                    ..Default::default()
                }),
                ..Default::default()
            }
        }
        ObservedState::Unknown => waiting(None, None),
    });
    s
}

/// The statuses of `containers` (the pod's init containers when `init`), as upstream's
/// `convertToAPIContainerStatuses` builds them, with probe results applied. Init
/// container statuses come in spec order, app container statuses sorted by name.
pub fn container_statuses(
    pod: &Pod,
    containers: &[Container],
    init: bool,
    previous: &[ContainerStatus],
    inputs: &StatusInputs<'_>,
) -> Vec<ContainerStatus> {
    let has_init = !spec_init_containers(pod).is_empty();
    let default_reason = if has_init {
        reasons::POD_INITIALIZING
    } else {
        reasons::CONTAINER_CREATING
    };
    let old: BTreeMap<&str, &ContainerStatus> =
        previous.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut statuses: BTreeMap<String, ContainerStatus> = BTreeMap::new();
    for c in containers {
        let mut s = ContainerStatus {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            state: Some(waiting(Some(default_reason), None)),
            ..Default::default()
        };
        if let Some(o) = old.get(c.name.as_str()) {
            if terminated(o).is_some() {
                s = (*o).clone();
            } else {
                s.restart_count = o.restart_count;
                s.last_state = o.last_state.clone();
            }
        }
        statuses.insert(c.name.clone(), s);
    }

    // A container that was running and vanished from the runtime stopped, with an
    // unknown exit: say so rather than fall back to "waiting".
    for c in containers {
        if inputs.observed.iter().any(|o| o.name == c.name) {
            continue;
        }
        let Some(o) = old.get(c.name.as_str()) else {
            continue;
        };
        if terminated(o).is_some() || !is_running(o) {
            continue;
        }
        let Some(s) = statuses.get_mut(&c.name) else {
            continue;
        };
        if waiting_reason(s) != Some(default_reason) {
            continue;
        }
        if s.last_state
            .as_ref()
            .is_some_and(|l| l.terminated.is_some())
        {
            continue;
        }
        s.last_state = Some(ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: 137,
                reason: Some(reasons::CONTAINER_STATUS_UNKNOWN.into()),
                message: Some("The container could not be located when the pod was deleted.  The container used to be Running".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
        if pod.metadata.deletion_timestamp.is_none() {
            s.restart_count += 1;
        }
    }

    // The latest instance is the state, the one before it the last state.
    let mut observed: Vec<&ObservedContainer> = inputs.observed.iter().collect();
    observed.sort_by_key(|o| std::cmp::Reverse(o.created_at));
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &observed {
        if !statuses.contains_key(&o.name) {
            continue;
        }
        let n = seen.entry(o.name.as_str()).or_insert(0);
        if *n >= 2 {
            continue;
        }
        let prev = old.get(o.name.as_str()).copied();
        let mut s = convert_one(o, prev);
        if o.state == ObservedState::Running {
            if let Some(started) = prev.and_then(|p| p.started) {
                s.started = Some(started);
            }
        }
        if *n == 0 {
            statuses.insert(o.name.clone(), s);
        } else if let Some(cur) = statuses.get_mut(&o.name) {
            cur.last_state = s.state;
        }
        *n += 1;
    }

    // Containers that will be started again wait, with the reason of their last failure.
    let latest = |name: &str| observed.iter().find(|o| o.name == name).copied();
    for c in containers {
        let last = latest(&c.name);
        if init {
            if let Some(l) = last {
                if l.state == ObservedState::Exited && l.exit_code == 0 {
                    continue;
                }
            }
        }
        let last_run = last.map_or(LastRun::None, ObservedContainer::last_run);
        if !should_restart(pod, c, init, last_run) {
            continue;
        }
        let Some(reason) = inputs.waiting.get(&c.name) else {
            continue;
        };
        let Some(s) = statuses.get_mut(&c.name) else {
            continue;
        };
        if terminated(s).is_some() {
            s.last_state = s.state.clone();
        }
        s.state = Some(waiting(Some(&reason.reason), Some(&reason.message)));
    }

    // Probes (prober_manager.UpdatePodStatus).
    for c in containers {
        let Some(s) = statuses.get_mut(&c.name) else {
            continue;
        };
        let probes = inputs.probes.get(&c.name).copied().unwrap_or_default();
        let running = is_running(s);
        let started = running && probes.started.unwrap_or(true);
        s.started = Some(started);
        if init && !is_sidecar(c) {
            s.ready = terminated(s).is_some_and(|t| t.exit_code == 0);
            continue;
        }
        s.ready = started && probes.ready.unwrap_or(true);
    }

    if init {
        containers
            .iter()
            .filter_map(|c| statuses.remove(&c.name))
            .collect()
    } else {
        statuses.into_values().collect()
    }
}

fn find<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn last_terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.last_state.as_ref().and_then(|l| l.terminated.as_ref())
}

/// The pod's phase (upstream's `getPhase`, without the alpha ContainerRestartRules).
/// `statuses` holds both init and app container statuses; `initialized` is whether an app
/// container has run (so restarting sidecars do not send the pod back to Pending).
pub fn pod_phase(
    pod: &Pod,
    statuses: &[ContainerStatus],
    pod_is_terminal: bool,
    initialized: bool,
) -> &'static str {
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    let mut pending_sidecars = 0;
    let mut pending_init = 0;
    let mut failed_init = 0;
    for c in spec_init_containers(pod).iter().filter(|c| !is_sidecar(c)) {
        let Some(s) = find(statuses, &c.name) else {
            pending_init += 1;
            continue;
        };
        if is_running(s) {
            pending_init += 1;
        } else if let Some(t) = terminated(s) {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if waiting_reason(s).is_some() {
            match last_terminated(s) {
                Some(t) if t.exit_code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut unknown, mut running, mut waiting_n, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in spec_init_containers(pod).iter().filter(|c| is_sidecar(c)) {
        let Some(s) = find(statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        if is_running(s) {
            if s.started != Some(true) {
                pending_sidecars += 1;
            }
            running += 1;
        } else if terminated(s).is_some() {
        } else if waiting_reason(s).is_some() {
            if last_terminated(s).is_none() {
                pending_sidecars += 1;
                waiting_n += 1;
            }
        } else {
            pending_sidecars += 1;
            unknown += 1;
        }
    }
    for c in spec_containers(pod) {
        let Some(s) = find(statuses, &c.name) else {
            unknown += 1;
            continue;
        };
        if is_running(s) {
            running += 1;
        } else if let Some(t) = terminated(s) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if waiting_reason(s).is_some() {
            if last_terminated(s).is_some() {
                stopped += 1;
            } else {
                waiting_n += 1;
            }
        } else {
            unknown += 1;
        }
    }
    if failed_init > 0 && policy == "Never" {
        return "Failed";
    }
    if pending_init > 0 || (pending_sidecars > 0 && !initialized) || waiting_n > 0 {
        return "Pending";
    }
    if running > 0 && unknown == 0 {
        return "Running";
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if pod_is_terminal && !is_static_pod(pod) {
            return if stopped == succeeded {
                "Succeeded"
            } else {
                "Failed"
            };
        }
        if policy == "Always" {
            return "Running";
        }
        if stopped == succeeded {
            return "Succeeded";
        }
        if policy == "Never" {
            return "Failed";
        }
        return "Running";
    }
    "Pending"
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        reason: reason.map(str::to_owned),
        message,
        ..Default::default()
    }
}

fn go_list(names: &[String]) -> String {
    format!("[{}]", names.join(" "))
}

/// `ContainersReady` (`GenerateContainersReadyCondition`): sidecars and app containers.
pub fn containers_ready_condition(
    pod: &Pod,
    statuses: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let mut unknown = Vec::new();
    let mut unready = Vec::new();
    let sidecars = spec_init_containers(pod).iter().filter(|c| is_sidecar(c));
    for c in sidecars.chain(spec_containers(pod)) {
        match find(statuses, &c.name) {
            Some(s) if !s.ready => unready.push(c.name.clone()),
            Some(_) => {}
            None => unknown.push(c.name.clone()),
        }
    }
    if phase == "Succeeded" && unknown.is_empty() {
        return condition("ContainersReady", false, Some(reasons::POD_COMPLETED), None);
    }
    if phase == "Failed" {
        return condition("ContainersReady", false, Some(reasons::POD_FAILED), None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !unready.is_empty() {
        messages.push(format!(
            "containers with unready status: {}",
            go_list(&unready)
        ));
    }
    if messages.is_empty() {
        condition("ContainersReady", true, None, None)
    } else {
        condition(
            "ContainersReady",
            false,
            Some(reasons::CONTAINERS_NOT_READY),
            Some(messages.join(", ")),
        )
    }
}

/// `Ready` (`GeneratePodReadyCondition`): ContainersReady, then the readiness gates
/// against `conditions` (the pod's other conditions).
pub fn ready_condition(
    pod: &Pod,
    conditions: &[PodCondition],
    statuses: &[ContainerStatus],
    phase: &str,
) -> PodCondition {
    let cr = containers_ready_condition(pod, statuses, phase);
    if cr.status != "True" {
        return PodCondition {
            type_: "Ready".into(),
            ..cr
        };
    }
    let mut messages = Vec::new();
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or(&[]);
    for g in gates {
        match conditions.iter().find(|c| c.type_ == g.condition_type) {
            None => messages.push(format!(
                "corresponding condition of pod readiness gate {:?} does not exist.",
                g.condition_type
            )),
            Some(c) if c.status != "True" => messages.push(format!(
                "the status of pod readiness gate {:?} is not \"True\", but {}",
                g.condition_type, c.status
            )),
            Some(_) => {}
        }
    }
    if messages.is_empty() {
        condition("Ready", true, None, None)
    } else {
        condition(
            "Ready",
            false,
            Some(reasons::READINESS_GATES_NOT_READY),
            Some(messages.join(", ")),
        )
    }
}

/// `Initialized` (`GeneratePodInitializedCondition`): every regular init container done
/// (ready) and every sidecar started, or an app container already ran.
pub fn initialized_condition(pod: &Pod, statuses: &[ContainerStatus], phase: &str) -> PodCondition {
    let mut unknown = Vec::new();
    let mut incomplete = Vec::new();
    for c in spec_init_containers(pod) {
        let Some(s) = find(statuses, &c.name) else {
            unknown.push(c.name.clone());
            continue;
        };
        let done = if is_sidecar(c) {
            s.started == Some(true)
        } else {
            s.ready
        };
        if !done {
            incomplete.push(c.name.clone());
        }
    }
    if phase == "Succeeded" && unknown.is_empty() {
        return condition("Initialized", true, Some(reasons::POD_COMPLETED), None);
    }
    if has_any_regular_container_started(pod, statuses) {
        return condition("Initialized", true, None, None);
    }
    let mut messages = Vec::new();
    if !unknown.is_empty() {
        messages.push(format!(
            "containers with unknown status: {}",
            go_list(&unknown)
        ));
    }
    if !incomplete.is_empty() {
        messages.push(format!(
            "containers with incomplete status: {}",
            go_list(&incomplete)
        ));
    }
    if messages.is_empty() {
        condition("Initialized", true, None, None)
    } else {
        condition(
            "Initialized",
            false,
            Some(reasons::CONTAINERS_NOT_INITIALIZED),
            Some(messages.join(", ")),
        )
    }
}

/// `HasAnyRegularContainerStarted`: an app container is running or has terminated.
fn has_any_regular_container_started(pod: &Pod, statuses: &[ContainerStatus]) -> bool {
    spec_containers(pod)
        .iter()
        .any(|c| find(statuses, &c.name).is_some_and(|s| is_running(s) || terminated(s).is_some()))
}

/// The conditions the kubelet owns (upstream's `PodConditionByKubelet`).
pub fn is_kubelet_condition(type_: &str) -> bool {
    matches!(
        type_,
        "PodScheduled" | "Ready" | "Initialized" | "ContainersReady" | "PodReadyToStartContainers"
    )
}

/// The pod's status (upstream's `generateAPIPodStatus` and the status manager's
/// `lastTransitionTime` and `startTime` handling).
pub fn generate_pod_status(pod: &Pod, inputs: &StatusInputs<'_>) -> PodStatus {
    let api = pod.status.clone().unwrap_or_default();
    let old = inputs.previous.cloned().unwrap_or_else(|| api.clone());
    let init = container_statuses(
        pod,
        spec_init_containers(pod),
        true,
        old.init_container_statuses.as_deref().unwrap_or(&[]),
        inputs,
    );
    let app = container_statuses(
        pod,
        spec_containers(pod),
        false,
        old.container_statuses.as_deref().unwrap_or(&[]),
        inputs,
    );
    let all: Vec<ContainerStatus> = app.iter().chain(init.iter()).cloned().collect();
    let initialized = inputs.observed.iter().any(|o| {
        o.state == ObservedState::Running && spec_containers(pod).iter().any(|c| c.name == o.name)
    });
    let terminal = |p: &str| p == "Succeeded" || p == "Failed";
    let mut phase = pod_phase(pod, &all, inputs.pod_is_terminal, initialized).to_owned();
    if !terminal(&phase) {
        if let Some(p) = old.phase.as_deref().filter(|p| terminal(p)) {
            phase = p.to_owned();
        } else if let Some(p) = api.phase.as_deref().filter(|p| terminal(p)) {
            phase = p.to_owned();
        }
    }
    if let Some(p) = api.phase.as_deref().filter(|p| terminal(p)) {
        // Pods never leave a terminal phase the API has recorded.
        phase = p.to_owned();
    }
    let (reason, message) = if old.phase.as_deref() == Some(phase.as_str()) {
        (
            old.reason.clone().or(api.reason.clone()),
            old.message.clone().or(api.message.clone()),
        )
    } else {
        (None, None)
    };

    let mut conditions: Vec<PodCondition> = api
        .conditions
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !is_kubelet_condition(&c.type_))
        .collect();
    let ordered_all: Vec<ContainerStatus> = init.iter().chain(app.iter()).cloned().collect();
    let mut own = vec![
        condition(
            "PodReadyToStartContainers",
            inputs.sandbox_ready,
            None,
            None,
        ),
        initialized_condition(pod, &ordered_all, &phase),
        ready_condition(pod, &conditions, &ordered_all, &phase),
        containers_ready_condition(pod, &ordered_all, &phase),
        condition("PodScheduled", true, None, None),
    ];
    let old_conditions = old.conditions.clone().unwrap_or_default();
    for c in &mut own {
        let same = old_conditions
            .iter()
            .find(|o| o.type_ == c.type_ && o.status == c.status);
        c.last_transition_time = match same {
            Some(o) => o.last_transition_time.clone(),
            None => Some(Time(inputs.now)),
        };
    }
    conditions.extend(own);

    let pod_ips: Vec<PodIP> = inputs
        .pod_ips
        .iter()
        .map(|ip| PodIP { ip: ip.clone() })
        .collect();
    let host_ips: Vec<HostIP> = inputs
        .host_ips
        .iter()
        .map(|ip| HostIP { ip: ip.clone() })
        .collect();
    PodStatus {
        phase: Some(phase),
        reason,
        message,
        conditions: Some(conditions),
        container_statuses: Some(app),
        init_container_statuses: (!init.is_empty()).then_some(init),
        qos_class: Some(pod_qos(pod).as_str().to_owned()),
        pod_ip: inputs.pod_ips.first().cloned(),
        pod_ips: (!pod_ips.is_empty()).then_some(pod_ips),
        host_ip: inputs.host_ips.first().cloned(),
        host_ips: (!host_ips.is_empty()).then_some(host_ips),
        start_time: old.start_time.clone().or(Some(Time(inputs.now))),
        nominated_node_name: api.nominated_node_name.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::qos::tests::pod;
    use serde_json::json;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn st(v: serde_json::Value) -> ContainerStatus {
        serde_json::from_value(v).unwrap()
    }
    fn running(name: &str) -> ContainerStatus {
        st(
            json!({"name": name, "image": "i", "imageID": "", "ready": true, "restartCount": 0, "started": true,
                  "state": {"running": {}}}),
        )
    }
    fn running_unstarted(name: &str) -> ContainerStatus {
        let mut s = running(name);
        s.started = Some(false);
        s
    }
    fn stopped(name: &str, code: i32) -> ContainerStatus {
        st(
            json!({"name": name, "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                  "state": {"terminated": {"exitCode": code}}}),
        )
    }
    fn waiting_only(name: &str) -> ContainerStatus {
        st(
            json!({"name": name, "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                  "state": {"waiting": {}}}),
        )
    }
    fn waiting_after(name: &str, code: i32) -> ContainerStatus {
        st(
            json!({"name": name, "image": "i", "imageID": "", "ready": false, "restartCount": 1,
                  "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                  "lastState": {"terminated": {"exitCode": code}}}),
        )
    }

    fn spec_pod(policy: &str, init: &[(&str, bool)], app: &[&str]) -> Pod {
        let init: Vec<_> = init
            .iter()
            .map(|(n, sidecar)| {
                if *sidecar {
                    json!({"name": n, "image": "i", "restartPolicy": "Always"})
                } else {
                    json!({"name": n, "image": "i"})
                }
            })
            .collect();
        let app: Vec<_> = app
            .iter()
            .map(|n| json!({"name": n, "image": "i"}))
            .collect();
        pod(
            json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
                   "spec": {"restartPolicy": policy, "initContainers": init, "containers": app}}),
        )
    }

    /// Mirrors `TestPodPhaseWithRestartAlways`, `...Never`, `...OnFailure` in
    /// `pkg/kubelet/kubelet_pods_test.go`.
    #[test]
    fn phases_by_restart_policy() {
        let cases: Vec<(&str, Vec<ContainerStatus>, bool, &str)> = vec![
            (
                "Always",
                vec![waiting_only("a"), waiting_only("b")],
                false,
                "Pending",
            ),
            ("Always", vec![running("a"), running("b")], false, "Running"),
            (
                "Always",
                vec![stopped("a", 0), stopped("b", 0)],
                false,
                "Running",
            ),
            (
                "Always",
                vec![stopped("a", 0), stopped("b", 0)],
                true,
                "Succeeded",
            ),
            (
                "Always",
                vec![stopped("a", 0), stopped("b", 1)],
                true,
                "Failed",
            ),
            (
                "Always",
                vec![running("a"), stopped("b", 1)],
                false,
                "Running",
            ),
            ("Always", vec![running("a")], false, "Pending"),
            (
                "Always",
                vec![running("a"), waiting_after("b", 1)],
                false,
                "Running",
            ),
            (
                "Never",
                vec![waiting_only("a"), waiting_only("b")],
                false,
                "Pending",
            ),
            ("Never", vec![running("a"), running("b")], false, "Running"),
            (
                "Never",
                vec![stopped("a", 0), stopped("b", 0)],
                false,
                "Succeeded",
            ),
            (
                "Never",
                vec![stopped("a", 0), stopped("b", 1)],
                false,
                "Failed",
            ),
            (
                "Never",
                vec![running("a"), stopped("b", 1)],
                false,
                "Running",
            ),
            (
                "OnFailure",
                vec![stopped("a", 0), stopped("b", 0)],
                false,
                "Succeeded",
            ),
            (
                "OnFailure",
                vec![stopped("a", 0), stopped("b", 1)],
                false,
                "Running",
            ),
            (
                "OnFailure",
                vec![stopped("a", 0), waiting_after("b", 1)],
                false,
                "Running",
            ),
        ];
        for (i, (policy, statuses, terminal, want)) in cases.into_iter().enumerate() {
            let p = spec_pod(policy, &[], &["a", "b"]);
            assert_eq!(
                pod_phase(&p, &statuses, terminal, false),
                want,
                "case {i}: {policy}"
            );
        }
    }

    /// Mirrors `TestPodPhaseWithRestartAlwaysInitContainers`, `...NeverInitContainers` and
    /// `...RestartableInitContainers` in `kubelet_pods_test.go`.
    #[test]
    fn phases_with_init_containers_and_sidecars() {
        type Case<'a> = (
            &'a str,
            Vec<(&'a str, bool)>,
            Vec<ContainerStatus>,
            bool,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                "Always",
                vec![("init", false)],
                vec![running("init"), waiting_only("a")],
                false,
                "Pending",
            ),
            (
                "Always",
                vec![("init", false)],
                vec![stopped("init", 1), waiting_only("a")],
                false,
                "Pending",
            ),
            (
                "Always",
                vec![("init", false)],
                vec![waiting_after("init", 1), waiting_only("a")],
                false,
                "Pending",
            ),
            (
                "Always",
                vec![("init", false)],
                vec![stopped("init", 0), running("a")],
                false,
                "Running",
            ),
            (
                "Never",
                vec![("init", false)],
                vec![stopped("init", 1), waiting_only("a")],
                false,
                "Failed",
            ),
            (
                "Never",
                vec![("init", false)],
                vec![waiting_after("init", 1), waiting_only("a")],
                false,
                "Failed",
            ),
            (
                "Never",
                vec![("init", false)],
                vec![stopped("init", 0), stopped("a", 0)],
                false,
                "Succeeded",
            ),
            // Sidecars.
            (
                "Always",
                vec![("side", true)],
                vec![running_unstarted("side"), waiting_only("a")],
                false,
                "Pending",
            ),
            (
                "Always",
                vec![("side", true)],
                vec![running("side"), waiting_only("a")],
                false,
                "Pending",
            ),
            (
                "Always",
                vec![("side", true)],
                vec![running("side"), running("a")],
                false,
                "Running",
            ),
            (
                "Always",
                vec![("side", true)],
                vec![waiting_after("side", 1), running("a")],
                true,
                "Running",
            ),
            (
                "Never",
                vec![("side", true)],
                vec![running("side"), stopped("a", 0)],
                false,
                "Running",
            ),
            (
                "Never",
                vec![("side", true)],
                vec![stopped("side", 143), stopped("a", 0)],
                false,
                "Succeeded",
            ),
            (
                "Never",
                vec![("side", true)],
                vec![stopped("side", 143), stopped("a", 1)],
                true,
                "Failed",
            ),
            // Restarting sidecar after the pod was initialized: stays Running.
            (
                "Always",
                vec![("side", true)],
                vec![running_unstarted("side"), running("a")],
                true,
                "Running",
            ),
        ];
        for (i, (policy, init, statuses, initialized, want)) in cases.into_iter().enumerate() {
            let p = spec_pod(policy, &init, &["a"]);
            assert_eq!(
                pod_phase(&p, &statuses, false, initialized),
                want,
                "case {i}"
            );
        }
    }

    /// Mirrors `TestGenerateContainersReadyCondition` and `TestGeneratePodReadyCondition`
    /// in `pkg/kubelet/status/generate_test.go`.
    #[test]
    fn ready_conditions() {
        let p = spec_pod("Always", &[("side", true)], &["a", "b"]);
        let c = containers_ready_condition(&p, &[running("side"), running("a")], "Running");
        assert_eq!(
            (c.status.as_str(), c.reason.as_deref(), c.message.as_deref()),
            (
                "False",
                Some("ContainersNotReady"),
                Some("containers with unknown status: [b]")
            )
        );
        let mut a = running("a");
        a.ready = false;
        let mut side = running("side");
        side.ready = false;
        let c = containers_ready_condition(&p, &[side, a, running("b")], "Running");
        assert_eq!(
            c.message.as_deref(),
            Some("containers with unready status: [side a]")
        );
        let c = ready_condition(
            &p,
            &[],
            &[running("side"), running("a"), running("b")],
            "Running",
        );
        assert_eq!((c.type_.as_str(), c.status.as_str()), ("Ready", "True"));
        let c = ready_condition(
            &p,
            &[],
            &[running("side"), stopped("a", 0), stopped("b", 0)],
            "Succeeded",
        );
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_deref()),
            ("Ready", "False", Some("PodCompleted"))
        );
        let c = containers_ready_condition(
            &p,
            &[running("side"), running("a"), running("b")],
            "Failed",
        );
        assert_eq!(c.reason.as_deref(), Some("PodFailed"));
        // Readiness gates.
        let mut gated = p.clone();
        gated.spec.as_mut().unwrap().readiness_gates = Some(vec![serde_json::from_value(
            json!({"conditionType": "example.com/lb"}),
        )
        .unwrap()]);
        let all = [running("side"), running("a"), running("b")];
        let c = ready_condition(&gated, &[], &all, "Running");
        assert_eq!(
            c.message.as_deref(),
            Some(
                "corresponding condition of pod readiness gate \"example.com/lb\" does not exist."
            )
        );
        let lb = condition("example.com/lb", false, None, None);
        let c = ready_condition(&gated, &[lb], &all, "Running");
        assert_eq!(
            c.message.as_deref(),
            Some("the status of pod readiness gate \"example.com/lb\" is not \"True\", but False")
        );
        assert_eq!(c.reason.as_deref(), Some("ReadinessGatesNotReady"));
    }

    /// Mirrors `TestGeneratePodInitializedCondition` in `generate_test.go`.
    #[test]
    fn initialized_conditions() {
        let p = spec_pod("Always", &[("init", false), ("side", true)], &["a"]);
        let mut done = stopped("init", 0);
        done.ready = true;
        let mut init_running = running("init");
        init_running.ready = false;
        let c = initialized_condition(&p, &[init_running, waiting_only("a")], "Pending");
        assert_eq!((c.status.as_str(), c.message.as_deref()),
                   ("False", Some("containers with unknown status: [side], containers with incomplete status: [init]")));
        let c = initialized_condition(
            &p,
            &[done.clone(), running_unstarted("side"), waiting_only("a")],
            "Pending",
        );
        assert_eq!(
            c.message.as_deref(),
            Some("containers with incomplete status: [side]")
        );
        let c = initialized_condition(
            &p,
            &[done.clone(), running("side"), waiting_only("a")],
            "Pending",
        );
        assert_eq!(c.status, "True");
        // An app container that ran means initialized, even while a sidecar restarts.
        let c = initialized_condition(
            &p,
            &[done, running_unstarted("side"), running("a")],
            "Running",
        );
        assert_eq!(c.status, "True");
    }

    fn observed(name: &str, id: &str, state: ObservedState, created: i64) -> ObservedContainer {
        ObservedContainer {
            name: name.into(),
            id: id.into(),
            state,
            created_at: t(created),
            started_at: (state != ObservedState::Created).then(|| t(created + 1)),
            finished_at: (state == ObservedState::Exited).then(|| t(created + 5)),
            exit_code: 0,
            oom_killed: false,
            start_error: None,
            message: None,
            restart_count: 0,
            image: "docker.io/library/busybox:latest".into(),
            image_id: "docker.io/library/busybox@sha256:abc".into(),
        }
    }

    struct Fixture {
        observed: Vec<ObservedContainer>,
        waiting: BTreeMap<String, WaitingReason>,
        probes: BTreeMap<String, ProbeResults>,
        previous: Option<PodStatus>,
        sandbox_ready: bool,
    }

    impl Fixture {
        fn new(observed: Vec<ObservedContainer>) -> Self {
            Self {
                observed,
                waiting: BTreeMap::new(),
                probes: BTreeMap::new(),
                previous: None,
                sandbox_ready: true,
            }
        }
        fn status(&self, pod: &Pod) -> PodStatus {
            let ips = ["10.42.0.5".to_string()];
            let host = ["192.168.1.10".to_string()];
            generate_pod_status(
                pod,
                &StatusInputs {
                    observed: &self.observed,
                    waiting: &self.waiting,
                    probes: &self.probes,
                    sandbox_ready: self.sandbox_ready,
                    pod_is_terminal: false,
                    pod_ips: &ips,
                    host_ips: &host,
                    previous: self.previous.as_ref(),
                    now: t(100),
                },
            )
        }
    }

    fn conds(s: &PodStatus) -> Vec<(String, String, Option<String>)> {
        s.conditions
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect()
    }

    /// A pod seen before anything was created: ContainerCreating, Pending.
    #[test]
    fn new_pod_is_pending_and_creating() {
        let p = spec_pod("Always", &[], &["web"]);
        let mut f = Fixture::new(vec![]);
        f.sandbox_ready = false;
        let s = f.status(&p);
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            cs.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ContainerCreating")
        );
        assert_eq!(
            (cs.ready, cs.started, cs.restart_count),
            (false, Some(false), 0)
        );
        assert_eq!(
            conds(&s)[0],
            ("PodReadyToStartContainers".into(), "False".into(), None)
        );
        assert_eq!(s.qos_class.as_deref(), Some("BestEffort"));
        assert_eq!(s.start_time, Some(Time(t(100))));
    }

    /// A running pod: the full status, as a snapshot.
    #[test]
    fn running_pod_snapshot() {
        let p = spec_pod("Always", &[("init", false)], &["web"]);
        let mut init = observed("init", "i1", ObservedState::Exited, 0);
        init.exit_code = 0;
        let f = Fixture::new(vec![
            init,
            observed("web", "w1", ObservedState::Running, 10),
        ]);
        let s = f.status(&p);
        let got = serde_json::to_value(&s).unwrap();
        let want = json!({
            "phase": "Running",
            "conditions": [
                {"type": "PodReadyToStartContainers", "status": "True", "lastTransitionTime": "2027-01-15T08:01:40Z"},
                {"type": "Initialized", "status": "True", "lastTransitionTime": "2027-01-15T08:01:40Z"},
                {"type": "Ready", "status": "True", "lastTransitionTime": "2027-01-15T08:01:40Z"},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": "2027-01-15T08:01:40Z"},
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2027-01-15T08:01:40Z"}],
            "initContainerStatuses": [{
                "name": "init", "image": "docker.io/library/busybox:latest",
                "imageID": "docker.io/library/busybox@sha256:abc", "containerID": "skiff://i1",
                "ready": true, "started": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "containerID": "skiff://i1",
                                         "startedAt": "2027-01-15T08:00:01Z", "finishedAt": "2027-01-15T08:00:05Z"}}}],
            "containerStatuses": [{
                "name": "web", "image": "docker.io/library/busybox:latest",
                "imageID": "docker.io/library/busybox@sha256:abc", "containerID": "skiff://w1",
                "ready": true, "started": true, "restartCount": 0,
                "state": {"running": {"startedAt": "2027-01-15T08:00:11Z"}}}],
            "qosClass": "BestEffort",
            "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}],
            "hostIP": "192.168.1.10", "hostIPs": [{"ip": "192.168.1.10"}],
            "startTime": "2027-01-15T08:01:40Z"
        });
        assert_eq!(got, want);
        // Transition times stay while a condition keeps its status.
        let mut f2 = Fixture::new(f.observed.clone());
        let mut prev = s.clone();
        for c in prev.conditions.as_mut().unwrap() {
            c.last_transition_time = Some(Time(t(50)));
        }
        f2.previous = Some(prev);
        f2.probes.insert(
            "web".into(),
            ProbeResults {
                started: None,
                ready: Some(false),
            },
        );
        let s2 = f2.status(&p);
        let c = s2.conditions.as_ref().unwrap();
        assert_eq!(
            c[1].last_transition_time,
            Some(Time(t(50))),
            "Initialized unchanged"
        );
        assert_eq!(
            (c[2].status.as_str(), c[2].last_transition_time.clone()),
            ("False", Some(Time(t(100))))
        );
        assert_eq!(
            c[2].message.as_deref(),
            Some("containers with unready status: [web]")
        );
        assert_eq!(s2.start_time, Some(Time(t(100))));
    }

    /// A crash-looping container: waiting CrashLoopBackOff with the last exit as lastState,
    /// as `TestConvertToAPIContainerStatuses` expects; OOM kills and start errors get
    /// containerd's reasons.
    #[test]
    fn crash_loop_oom_and_start_errors() {
        let p = spec_pod("Always", &[], &["app"]);
        let mut first = observed("app", "a1", ObservedState::Exited, 0);
        first.exit_code = 137;
        first.oom_killed = true;
        let mut second = observed("app", "a2", ObservedState::Exited, 20);
        second.exit_code = 1;
        second.restart_count = 1;
        second.message = Some("boom".into());
        let mut f = Fixture::new(vec![first, second]);
        // Without a reason: the latest exit is the state, the one before the last state.
        let s = f.status(&p);
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        let term = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(
            (
                term.exit_code,
                term.reason.as_deref(),
                term.message.as_deref()
            ),
            (1, Some("Error"), Some("boom"))
        );
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(
            (last.exit_code, last.reason.as_deref()),
            (137, Some("OOMKilled"))
        );
        assert_eq!(cs.restart_count, 1);
        // In back-off: waiting, with the exit that caused it as the last state.
        let msg = "back-off 10s restarting failed container=app pod=p_ns(u)";
        f.waiting.insert(
            "app".into(),
            WaitingReason {
                reason: "CrashLoopBackOff".into(),
                message: msg.into(),
            },
        );
        let s = f.status(&p);
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        let w = cs.state.as_ref().unwrap().waiting.as_ref().unwrap();
        assert_eq!(
            (w.reason.as_deref(), w.message.as_deref()),
            (Some("CrashLoopBackOff"), Some(msg))
        );
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(
            (
                last.exit_code,
                last.reason.as_deref(),
                last.container_id.as_deref()
            ),
            (1, Some("Error"), Some("skiff://a2"))
        );
        assert_eq!(s.phase.as_deref(), Some("Running"));
        assert_eq!(
            conds(&s)[2],
            (
                "Ready".into(),
                "False".into(),
                Some("ContainersNotReady".into())
            )
        );
        // With restartPolicy Never nothing restarts: the reason is not shown.
        let never = spec_pod("Never", &[], &["app"]);
        let s = f.status(&never);
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        assert!(cs.state.as_ref().unwrap().terminated.is_some());
        assert_eq!(s.phase.as_deref(), Some("Failed"));
        // A start error.
        let mut bad = observed("app", "a3", ObservedState::Exited, 0);
        bad.exit_code = 128;
        bad.start_error = Some("exec: \"/nope\": stat /nope: no such file or directory".into());
        let s = Fixture::new(vec![bad]).status(&never);
        let term = s.container_statuses.as_ref().unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!(
            (term.reason.as_deref(), term.exit_code),
            (Some("StartError"), 128)
        );
        assert!(term.message.unwrap().contains("no such file"));
    }

    /// Image pull and config errors keep the container waiting, the pod Pending.
    #[test]
    fn waiting_reasons_before_the_first_start() {
        let p = spec_pod("Always", &[("init", false)], &["app"]);
        let mut f = Fixture::new(vec![]);
        f.waiting.insert(
            "init".into(),
            WaitingReason {
                reason: "ErrImagePull".into(),
                message: "pull failed".into(),
            },
        );
        let s = f.status(&p);
        let init = &s.init_container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            init.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("ErrImagePull")
        );
        let app = &s.container_statuses.as_ref().unwrap()[0];
        assert_eq!(
            app.state
                .as_ref()
                .unwrap()
                .waiting
                .as_ref()
                .unwrap()
                .reason
                .as_deref(),
            Some("PodInitializing")
        );
        assert_eq!(s.phase.as_deref(), Some("Pending"));
        let c = conds(&s);
        assert_eq!(
            c[1],
            (
                "Initialized".into(),
                "False".into(),
                Some("ContainersNotInitialized".into())
            )
        );
    }

    /// A container that was running and vanished from the runtime: its last state is
    /// `ContainerStatusUnknown` (137) and its restart count goes up.
    #[test]
    fn vanished_running_container() {
        let p = spec_pod("Always", &[], &["app"]);
        let mut f = Fixture::new(vec![]);
        let mut prev = PodStatus::default();
        let mut was = running("app");
        was.restart_count = 2;
        prev.container_statuses = Some(vec![was]);
        f.previous = Some(prev);
        let s = f.status(&p);
        let cs = &s.container_statuses.as_ref().unwrap()[0];
        let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
        assert_eq!(
            (last.exit_code, last.reason.as_deref()),
            (137, Some("ContainerStatusUnknown"))
        );
        assert_eq!(cs.restart_count, 3);
        assert_eq!(
            s.phase.as_deref(),
            Some("Running"),
            "stopped, restarting: not Pending"
        );
    }

    #[test]
    fn terminal_phases_stick_and_other_conditions_are_kept() {
        let mut p = spec_pod("Always", &[], &["app"]);
        p.status = Some(serde_json::from_value(json!({"phase": "Failed", "reason": "Evicted", "message": "low memory",
            "conditions": [{"type": "DisruptionTarget", "status": "True"}, {"type": "Ready", "status": "True"}]})).unwrap());
        let s = Fixture::new(vec![observed("app", "a1", ObservedState::Running, 0)]).status(&p);
        assert_eq!(
            (s.phase.as_deref(), s.reason.as_deref()),
            (Some("Failed"), Some("Evicted"))
        );
        let c = conds(&s);
        assert_eq!(c[0].0, "DisruptionTarget");
        assert_eq!(c.iter().filter(|c| c.0 == "Ready").count(), 1);
        assert_eq!(
            c.iter().find(|c| c.0 == "Ready").unwrap().2.as_deref(),
            Some("PodFailed")
        );
    }
}
