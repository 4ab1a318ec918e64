//! A simulated pod's life, decided from its spec and the time alone: the state of its
//! containers at any moment after it started (running; exited and waiting in
//! `CrashLoopBackOff`; terminated, which ends the pod `Succeeded` or `Failed`), and the
//! status a kubelet would post for that state. Nothing runs. Pure: the driver
//! (`super::driver`) calls [`state_at`] and [`render_status`] whenever a pod changes or its
//! next change is due, and writes what they say.
//!
//! What a pod does is set by annotations (on the pod or its template):
//! - `sim.skiff.dev/run-for` (a Go duration): how long each run of the containers lasts.
//!   Default: forever for `restartPolicy: Always`, 1s for `OnFailure` and `Never`.
//! - `sim.skiff.dev/exit-code`: how each run ends (default 0).
//!
//! A run that ends is restarted as upstream restarts containers: always under `Always`, on a
//! non-zero exit under `OnFailure`, never under `Never`; the first restart at once, then
//! after 10 s, 20 s, 40 s ... up to 5 min (upstream's crash loop back-off). A pod that is
//! deleted has its containers stop when its grace period runs out; they exit 0.
//! Init containers complete the moment the pod starts; sidecars (init containers with
//! `restartPolicy: Always`) run until the pod ends.
//!
//! Upstream: pkg/kubelet/kubelet_pods.go (`generateAPIPodStatus`, `getPhase`),
//! pkg/kubelet/status/generate.go (the conditions, their reasons and messages),
//! pkg/kubelet/kuberuntime (back-off), pkg/kubelet/status/status_manager.go (transition
//! times kept while a condition's status holds).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use super::config::parse_go_duration;
use super::ids::hex_digest;

/// How long each run of a pod's containers lasts (a Go duration).
pub const RUN_FOR: &str = "sim.skiff.dev/run-for";
/// The exit code each run ends with.
pub const EXIT_CODE: &str = "sim.skiff.dev/exit-code";
/// A run's length when `restartPolicy` is `OnFailure` or `Never` and [`RUN_FOR`] is not set.
pub const DEFAULT_RUN_FOR: Duration = Duration::from_secs(1);

/// The back-off before restart number `n` (1-based): none before the first, then 10 s
/// doubling to 5 min (upstream: `initialBackOff`, `MaxContainerBackOff`).
pub fn restart_delay(n: u32) -> Duration {
    match n {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs(10u64 << (n - 2).min(5)).min(Duration::from_secs(300)),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

/// One container as the status names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPlan {
    pub name: String,
    pub image: String,
    /// An init container with `restartPolicy: Always` (a sidecar).
    pub restartable: bool,
}

/// What of a pod's spec its simulated life depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodPlan {
    pub init_containers: Vec<ContainerPlan>,
    pub containers: Vec<ContainerPlan>,
    pub restart_policy: RestartPolicy,
    /// How long each run lasts; `None`: forever.
    pub run_for: Option<Duration>,
    pub exit_code: i32,
    pub host_network: bool,
    /// `spec.readinessGates` condition types.
    pub readiness_gates: Vec<String>,
}

impl PodPlan {
    /// The plan of `pod`, and what was wrong with its annotations (each then takes its
    /// default).
    pub fn from_pod(pod: &Pod) -> (Self, Vec<String>) {
        let mut warnings = Vec::new();
        let no_spec = k8s_openapi::api::core::v1::PodSpec::default();
        let spec = pod.spec.as_ref().unwrap_or(&no_spec);
        let restart_policy = match spec.restart_policy.as_deref() {
            Some("Never") => RestartPolicy::Never,
            Some("OnFailure") => RestartPolicy::OnFailure,
            _ => RestartPolicy::Always,
        };
        let annotation = |key: &str| {
            pod.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(key))
                .map(|v| v.trim().to_owned())
        };
        let default_run = match restart_policy {
            RestartPolicy::Always => None,
            _ => Some(DEFAULT_RUN_FOR),
        };
        let run_for = match annotation(RUN_FOR) {
            None => default_run,
            Some(text) => match parse_go_duration(&text) {
                Ok(d) => Some(d),
                Err(e) => {
                    warnings.push(format!("annotation {RUN_FOR}: {e}"));
                    default_run
                }
            },
        };
        let exit_code = match annotation(EXIT_CODE) {
            None => 0,
            Some(text) => match text.parse::<i32>() {
                Ok(code) if (0..=255).contains(&code) => code,
                _ => {
                    warnings.push(format!(
                        "annotation {EXIT_CODE}: {text:?} is not an exit code (0 to 255)"
                    ));
                    0
                }
            },
        };
        let plan_of = |c: &k8s_openapi::api::core::v1::Container| ContainerPlan {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            restartable: c.restart_policy.as_deref() == Some("Always"),
        };
        let plan = Self {
            init_containers: spec.init_containers.iter().flatten().map(plan_of).collect(),
            containers: spec
                .containers
                .iter()
                .map(|c| ContainerPlan {
                    restartable: false,
                    ..plan_of(c)
                })
                .collect(),
            restart_policy,
            run_for,
            exit_code,
            host_network: spec.host_network == Some(true),
            readiness_gates: spec
                .readiness_gates
                .iter()
                .flatten()
                .map(|g| g.condition_type.clone())
                .collect(),
        };
        (plan, warnings)
    }

    /// Whether a run that ended with this plan's exit code is followed by another.
    fn restarts(&self) -> bool {
        match self.restart_policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => self.exit_code != 0,
            RestartPolicy::Never => false,
        }
    }
}

/// A run of the main containers that ended, as offsets from the pod's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// Which run: the restart count when it started.
    pub index: u32,
    pub started: Duration,
    pub finished: Duration,
    pub exit_code: i32,
}

/// The main containers at one moment (they all live the same life).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Main {
    /// Run `restarts` is running since `started`; `last` is the run before it.
    Running {
        restarts: u32,
        started: Duration,
        last: Option<Run>,
    },
    /// Run `last` ended; the next starts at `until`, after a back-off of `delay`.
    BackOff {
        restarts: u32,
        last: Run,
        until: Duration,
        delay: Duration,
    },
    /// No more runs: `last` ended the pod; `previous` is the run before it.
    Done {
        restarts: u32,
        last: Run,
        previous: Option<Run>,
    },
}

/// A pod's state at one moment and when it next changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PodState {
    pub main: Main,
    /// Offset from the start of the next change; `None`: none is coming.
    pub next_change: Option<Duration>,
}

impl PodState {
    /// `status.phase`.
    pub fn phase(&self) -> &'static str {
        match self.main {
            Main::Done { last, .. } if last.exit_code == 0 => "Succeeded",
            Main::Done { .. } => "Failed",
            _ => "Running",
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self.main, Main::Done { .. })
    }
}

/// The start of run `k` when each lasts `d`: k runs and k back-offs after the start.
fn run_start(k: u32, d: Duration) -> Duration {
    // The back-offs before runs 1..=k: 0, 10, 20, 40, 80, 160 s, then 300 s each.
    let backoffs: Duration = if k <= 7 {
        (1..=k).map(restart_delay).sum()
    } else {
        (1..=7).map(restart_delay).sum::<Duration>() + Duration::from_secs(300) * (k - 7)
    };
    d.saturating_mul(k).saturating_add(backoffs)
}

/// The latest run started by `t` (0 when runs are not restarted).
fn run_index(t: Duration, d: Duration) -> u32 {
    // Runs 0..8 directly; later ones are one run and a 5 min back-off apart.
    let mut k = 0;
    while k < 8 && run_start(k + 1, d) <= t {
        k += 1;
    }
    if k == 8 {
        let period = (d + Duration::from_secs(300)).as_millis().max(1);
        let base = run_start(8, d);
        let guess = 8 + (t.saturating_sub(base).as_millis() / period);
        k = u32::try_from(guess).unwrap_or(u32::MAX - 1);
        while k > 8 && run_start(k, d) > t {
            k -= 1;
        }
        while run_start(k + 1, d) <= t {
            k += 1;
        }
    }
    k
}

fn ended(plan: &PodPlan, k: u32, d: Duration) -> Run {
    let started = run_start(k, d);
    Run {
        index: k,
        started,
        finished: started + d,
        exit_code: plan.exit_code,
    }
}

/// The main containers at `t` after the pod's start, with no stop.
fn life_at(plan: &PodPlan, t: Duration) -> PodState {
    let Some(d) = plan.run_for else {
        return PodState {
            main: Main::Running {
                restarts: 0,
                started: Duration::ZERO,
                last: None,
            },
            next_change: None,
        };
    };
    let k = if plan.restarts() { run_index(t, d) } else { 0 };
    let previous = k.checked_sub(1).map(|p| ended(plan, p, d));
    let started = run_start(k, d);
    if t < started + d {
        return PodState {
            main: Main::Running {
                restarts: k,
                started,
                last: previous,
            },
            next_change: Some(started + d),
        };
    }
    let last = ended(plan, k, d);
    if plan.restarts() {
        let until = run_start(k + 1, d);
        PodState {
            main: Main::BackOff {
                restarts: k,
                last,
                until,
                delay: restart_delay(k + 1),
            },
            next_change: Some(until),
        }
    } else {
        PodState {
            main: Main::Done {
                restarts: k,
                last,
                previous,
            },
            next_change: None,
        }
    }
}

/// The pod's state `elapsed` after its start, when its containers are told to stop at
/// `stop_at` (the end of a deletion's grace period), if ever.
pub fn state_at(plan: &PodPlan, elapsed: Duration, stop_at: Option<Duration>) -> PodState {
    match stop_at {
        Some(stop) if elapsed >= stop => {
            let at_stop = life_at(plan, stop);
            let main = match at_stop.main {
                Main::Running {
                    restarts,
                    started,
                    last,
                } => Main::Done {
                    restarts,
                    last: Run {
                        index: restarts,
                        started,
                        finished: stop,
                        exit_code: 0,
                    },
                    previous: last,
                },
                Main::BackOff { restarts, last, .. } => Main::Done {
                    restarts,
                    last,
                    previous: plan
                        .run_for
                        .and_then(|d| restarts.checked_sub(1).map(|p| ended(plan, p, d))),
                },
                done @ Main::Done { .. } => done,
            };
            PodState {
                main,
                next_change: None,
            }
        }
        _ => {
            let mut state = life_at(plan, elapsed);
            if let Some(stop) = stop_at {
                if !state.is_terminal() {
                    state.next_change = Some(state.next_change.map_or(stop, |n| n.min(stop)));
                }
            }
            state
        }
    }
}

/// Which pod a status is for.
#[derive(Clone, Copy, Debug)]
pub struct PodRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

/// Where the pod runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub pod_ip: Ipv4Addr,
    pub host_ip: Ipv4Addr,
}

/// An image reference as the runtime reports it: `nginx:1.25` is
/// `docker.io/library/nginx:1.25`; a reference without tag or digest gets `:latest`.
pub fn normalize_image(image: &str) -> String {
    let (name, suffix) = match image.split_once('@') {
        Some((name, digest)) => (name, format!("@{digest}")),
        None => {
            let last_slash = image.rfind('/').map_or(0, |i| i + 1);
            match image[last_slash..].rfind(':') {
                Some(colon) => (
                    &image[..last_slash + colon],
                    image[last_slash + colon..].to_owned(),
                ),
                None => (image, ":latest".to_owned()),
            }
        }
    };
    let qualified = match name.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => name.to_owned(),
        Some(_) => format!("docker.io/{name}"),
        None => format!("docker.io/library/{name}"),
    };
    format!("{qualified}{suffix}")
}

/// The image's ID as containerd reports it: the repository and a content digest (made up
/// from the reference unless it names one).
pub fn image_id(image: &str) -> String {
    let normalized = normalize_image(image);
    if normalized.contains("@sha256:") {
        return normalized;
    }
    let repository = match normalized.rfind(':') {
        Some(colon) if !normalized[colon..].contains('/') => &normalized[..colon],
        _ => normalized.as_str(),
    };
    format!(
        "{repository}@sha256:{}",
        hex_digest(&[&normalized, "image"], 64)
    )
}

/// A container's ID in one run.
fn container_id(pod: PodRef<'_>, container: &str, run: u32) -> String {
    format!(
        "sim://{}",
        hex_digest(&[pod.uid, container, &run.to_string()], 64)
    )
}

/// A duration as Go prints it, to the second (`10s`, `1m20s`, `5m0s`).
fn go_seconds(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, (s % 3600) / 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, min, sec) => format!("{min}m{sec}s"),
        (h, min, sec) => format!("{h}h{min}m{sec}s"),
    }
}

fn at(start: Timestamp, offset: Duration) -> Time {
    Time(start.checked_add(offset).unwrap_or(start))
}

fn terminated(pod: PodRef<'_>, name: &str, start: Timestamp, run: &Run) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: run.exit_code,
            reason: Some(
                if run.exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                }
                .into(),
            ),
            started_at: Some(at(start, run.started)),
            finished_at: Some(at(start, run.finished)),
            container_id: Some(container_id(pod, name, run.index)),
            ..ContainerStateTerminated::default()
        }),
        ..ContainerState::default()
    }
}

fn base_status(c: &ContainerPlan) -> ContainerStatus {
    ContainerStatus {
        name: c.name.clone(),
        image: normalize_image(&c.image),
        image_id: image_id(&c.image),
        // Go always writes `lastState` (a struct value), `{}` when the container never
        // terminated, and the API server returns it so: set alike, so that the status read
        // back has the fingerprint of the one posted (or it would be posted again forever).
        last_state: Some(ContainerState::default()),
        ..ContainerStatus::default()
    }
}

/// A main container's status in state `main`.
fn main_status(
    pod: PodRef<'_>,
    c: &ContainerPlan,
    start: Timestamp,
    main: &Main,
) -> ContainerStatus {
    let mut s = base_status(c);
    match *main {
        Main::Running {
            restarts,
            started,
            last,
        } => {
            s.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(at(start, started)),
                }),
                ..ContainerState::default()
            });
            if let Some(r) = last {
                s.last_state = Some(terminated(pod, &c.name, start, &r));
            }
            s.ready = true;
            s.started = Some(true);
            s.restart_count = i32::try_from(restarts).unwrap_or(i32::MAX);
            s.container_id = Some(container_id(pod, &c.name, restarts));
        }
        Main::BackOff {
            restarts,
            last,
            delay,
            ..
        } => {
            s.state = Some(ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some("CrashLoopBackOff".into()),
                    message: Some(format!(
                        "back-off {} restarting failed container={} pod={}_{}({})",
                        go_seconds(delay),
                        c.name,
                        pod.name,
                        pod.namespace,
                        pod.uid
                    )),
                }),
                ..ContainerState::default()
            });
            s.last_state = Some(terminated(pod, &c.name, start, &last));
            s.ready = false;
            s.started = Some(false);
            s.restart_count = i32::try_from(restarts).unwrap_or(i32::MAX);
            s.container_id = Some(container_id(pod, &c.name, last.index));
        }
        Main::Done {
            restarts,
            last,
            previous,
        } => {
            s.state = Some(terminated(pod, &c.name, start, &last));
            if let Some(r) = previous {
                s.last_state = Some(terminated(pod, &c.name, start, &r));
            }
            s.ready = false;
            s.started = Some(false);
            s.restart_count = i32::try_from(restarts).unwrap_or(i32::MAX);
            s.container_id = Some(container_id(pod, &c.name, last.index));
        }
    }
    s
}

/// An init container's status: a regular one completed at the start; a sidecar runs from
/// the start until the pod ends (`end`).
fn init_status(
    pod: PodRef<'_>,
    c: &ContainerPlan,
    start: Timestamp,
    end: Option<Duration>,
) -> ContainerStatus {
    let mut s = base_status(c);
    s.container_id = Some(container_id(pod, &c.name, 0));
    match (c.restartable, end) {
        (true, None) => {
            s.state = Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(at(start, Duration::ZERO)),
                }),
                ..ContainerState::default()
            });
            s.ready = true;
            s.started = Some(true);
        }
        (restartable, end) => {
            let finished = if restartable {
                end.unwrap_or_default()
            } else {
                Duration::ZERO
            };
            let run = Run {
                index: 0,
                started: Duration::ZERO,
                finished,
                exit_code: 0,
            };
            s.state = Some(terminated(pod, &c.name, start, &run));
            // A regular init container that succeeded reports ready (what `Initialized`
            // checks); a stopped sidecar does not.
            s.ready = !restartable;
            s.started = Some(false);
        }
    }
    s
}

/// The conditions a kubelet owns, in the order it writes them.
pub const OWNED_CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

fn condition(
    kind: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<String>,
    observed: &[PodCondition],
    now: Timestamp,
) -> PodCondition {
    let status = if status { "True" } else { "False" };
    let transition = observed
        .iter()
        .find(|c| c.type_ == kind && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    PodCondition {
        type_: kind.to_owned(),
        status: status.to_owned(),
        reason: reason.map(str::to_owned),
        message,
        last_transition_time: Some(transition),
        ..PodCondition::default()
    }
}

/// Go's `%s` of a string slice: `[a b]`.
fn go_list(names: &[&str]) -> String {
    format!("[{}]", names.join(" "))
}

/// The status a kubelet posts for `pod` in `state`. Conditions keep their transition time
/// from `observed` (the pod's current conditions) while their status holds; readiness gates
/// are read from `observed` too.
pub fn render_status(
    pod: PodRef<'_>,
    plan: &PodPlan,
    start: Timestamp,
    state: &PodState,
    placement: Placement,
    observed: &[PodCondition],
    now: Timestamp,
) -> PodStatus {
    let phase = state.phase();
    let end = match state.main {
        Main::Done { last, .. } => Some(last.finished),
        _ => None,
    };
    let init: Vec<ContainerStatus> = plan
        .init_containers
        .iter()
        .map(|c| init_status(pod, c, start, end))
        .collect();
    let main: Vec<ContainerStatus> = plan
        .containers
        .iter()
        .map(|c| main_status(pod, c, start, &state.main))
        .collect();

    let terminal = state.is_terminal();
    let containers_ready = if phase == "Succeeded" {
        condition(
            "ContainersReady",
            false,
            Some("PodCompleted"),
            None,
            observed,
            now,
        )
    } else if phase == "Failed" {
        condition(
            "ContainersReady",
            false,
            Some("PodFailed"),
            None,
            observed,
            now,
        )
    } else {
        let unready: Vec<&str> = plan
            .init_containers
            .iter()
            .zip(&init)
            .filter(|(c, s)| c.restartable && !s.ready)
            .map(|(c, _)| c.name.as_str())
            .chain(
                plan.containers
                    .iter()
                    .zip(&main)
                    .filter(|(_, s)| !s.ready)
                    .map(|(c, _)| c.name.as_str()),
            )
            .collect();
        if unready.is_empty() {
            condition("ContainersReady", true, None, None, observed, now)
        } else {
            condition(
                "ContainersReady",
                false,
                Some("ContainersNotReady"),
                Some(format!(
                    "containers with unready status: {}",
                    go_list(&unready)
                )),
                observed,
                now,
            )
        }
    };
    let ready = if containers_ready.status != "True" {
        condition(
            "Ready",
            false,
            containers_ready.reason.as_deref(),
            containers_ready.message.clone(),
            observed,
            now,
        )
    } else {
        let gates: Vec<String> = plan
            .readiness_gates
            .iter()
            .filter_map(|gate| match observed.iter().find(|c| &c.type_ == gate) {
                None => Some(format!(
                    "corresponding condition of pod readiness gate {gate:?} does not exist."
                )),
                Some(c) if c.status != "True" => Some(format!(
                    "the status of pod readiness gate {gate:?} is not \"True\", but {}",
                    c.status
                )),
                Some(_) => None,
            })
            .collect();
        if gates.is_empty() {
            condition("Ready", true, None, None, observed, now)
        } else {
            condition(
                "Ready",
                false,
                Some("ReadinessGatesNotReady"),
                Some(gates.join(", ")),
                observed,
                now,
            )
        }
    };
    let conditions = vec![
        condition(
            "PodReadyToStartContainers",
            !terminal,
            None,
            None,
            observed,
            now,
        ),
        condition(
            "Initialized",
            true,
            (phase == "Succeeded").then_some("PodCompleted"),
            None,
            observed,
            now,
        ),
        ready,
        containers_ready,
        condition("PodScheduled", true, None, None, observed, now),
    ];
    let host_ip = placement.host_ip.to_string();
    let pod_ip = placement.pod_ip.to_string();
    PodStatus {
        phase: Some(phase.to_owned()),
        conditions: Some(conditions),
        host_ip: Some(host_ip.clone()),
        host_ips: Some(vec![HostIP { ip: host_ip }]),
        pod_ip: Some(pod_ip.clone()),
        pod_ips: Some(vec![PodIP { ip: pod_ip }]),
        start_time: Some(Time(start)),
        init_container_statuses: (!init.is_empty()).then_some(init),
        container_statuses: Some(main),
        ..PodStatus::default()
    }
}

/// The strategic merge patch of `pods/<name>/status` that posts `status`, as the kubelet's
/// status manager sends it: the UID as a precondition, and every condition's `reason` and
/// `message` spelled out (null when there is none), so a merge by type drops stale ones.
pub fn status_patch(uid: &str, status: &PodStatus) -> Value {
    let mut status = serde_json::to_value(status).unwrap_or(Value::Null);
    if let Some(Value::Array(conditions)) = status.get_mut("conditions") {
        for c in conditions.iter_mut().filter_map(Value::as_object_mut) {
            for key in ["reason", "message", "lastProbeTime"] {
                c.entry(key).or_insert(Value::Null);
            }
        }
    }
    json!({ "metadata": { "uid": uid }, "status": status })
}

/// A digest of what a kubelet sets in a pod's status (phase, addresses, start time,
/// container statuses, its conditions without their times): equal for a posted status and
/// the pod read back, so an unchanged status is not written again.
pub fn fingerprint(status: Option<&PodStatus>) -> u64 {
    let mut hasher = DefaultHasher::new();
    let Some(status) = status else {
        return 0;
    };
    let value = serde_json::to_value(status).unwrap_or(Value::Null);
    for key in [
        "phase",
        "hostIP",
        "hostIPs",
        "podIP",
        "podIPs",
        "startTime",
        "initContainerStatuses",
        "containerStatuses",
    ] {
        key.hash(&mut hasher);
        value.get(key).map(Value::to_string).hash(&mut hasher);
    }
    let mut owned: Vec<(&str, &str, Option<&str>, Option<&str>)> = status
        .conditions
        .iter()
        .flatten()
        .filter(|c| OWNED_CONDITIONS.contains(&c.type_.as_str()))
        .map(|c| {
            (
                c.type_.as_str(),
                c.status.as_str(),
                c.reason.as_deref().filter(|r| !r.is_empty()),
                c.message.as_deref().filter(|m| !m.is_empty()),
            )
        })
        .collect();
    owned.sort_unstable();
    owned.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests;
