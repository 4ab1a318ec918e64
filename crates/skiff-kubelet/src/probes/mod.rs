//! Liveness, readiness and startup probes, and lifecycle hooks.
//!
//! Follows upstream's `pkg/kubelet/prober` (`prober_manager.go`: a worker per container
//! and probe kind; `worker.go`: the timing state machine; `prober.go`: one probe run with
//! its retries and events; `results/`: results kept per container id) and `pkg/probe/{exec,
//! http,tcp,grpc}` for the probe kinds, `pkg/kubelet/lifecycle/handlers.go` for hooks
//! ([`hooks`]).
//!
//! [`ProbeManager`] is what the pod worker drives: [`ProbeManager::sync_pod`] on every sync
//! with the running containers, [`ProbeManager::results`] for the status, and a channel of
//! [`ProbeEvent`]s for what changed (a readiness flip, a startup success, a liveness or
//! startup failure that means the container must be killed) and for the events upstream
//! records (`Unhealthy`, `ProbeWarning`). The manager never kills anything itself: the pod
//! worker does, with [`killing_event`]'s text and the probe's grace period, as upstream's
//! `computePodActions` reads the liveness results.

pub mod exec;
pub mod grpc;
pub mod hooks;
pub mod http;
pub mod tcp;
pub mod worker;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::jiff::Timestamp;
use skiff_runtime::cri::{CriError, PodRuntime};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::pods::status::ProbeResults;
use crate::pods::{is_sidecar, spec_containers, spec_init_containers};

/// Probes and hook handlers keep at most this much of a command's output or a response
/// body (upstream's `maxReadLength` / `maxRespBodyLength`).
pub const MAX_OUTPUT: usize = 10 * 1024;

/// The user agent's version (`kube-probe/<major.minor>`), the API version skiff serves.
pub const KUBE_VERSION: &str = "1.33";

/// The three probe kinds, named as upstream's events name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [Self::Liveness, Self::Readiness, Self::Startup];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Liveness => "Liveness",
            Self::Readiness => "Readiness",
            Self::Startup => "Startup",
        }
    }

    /// The container's probe of this kind.
    pub fn of(self, c: &Container) -> Option<&Probe> {
        match self {
            Self::Liveness => c.liveness_probe.as_ref(),
            Self::Readiness => c.readiness_probe.as_ref(),
            Self::Startup => c.startup_probe.as_ref(),
        }
    }
}

impl std::fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A result as the results manager keeps it (upstream's `results.Result`): `Unknown` is
/// the startup probe's initial value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeResult {
    Success,
    /// With the probe's output (or why it failed).
    Failure(String),
}

impl ProbeResult {
    pub fn is_success(&self) -> bool {
        matches!(self, Self::Success)
    }
}

/// What one probe run found (upstream's `probe.Result` with its output).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success(String),
    /// Counted as a success, with a `ProbeWarning` event (a redirect that was not followed).
    Warning(String),
    Failure(String),
}

/// A probe that could not be run at all (upstream's prober errors: the result is thrown
/// away, an `Unhealthy` event "... probe errored: ..." is recorded).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("missing probe handler for {0}")]
    NoHandler(String),
    #[error("{0}")]
    Port(String),
    #[error("no pod IP to probe")]
    NoHost,
    #[error("{0}")]
    Request(String),
    #[error("{0}")]
    Runtime(#[from] CriError),
}

/// An event for the pod worker to record on the pod (involvedObject the container).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedEvent {
    /// `Normal` or `Warning`.
    pub type_: &'static str,
    pub reason: &'static str,
    pub message: String,
}

/// A running container as the pod worker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningContainer {
    pub name: String,
    /// The runtime's id (no `skiff://` prefix).
    pub id: String,
    pub started_at: Timestamp,
}

/// Sent when a result changes, and with every event upstream's prober records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeEvent {
    pub pod_uid: String,
    pub container: String,
    pub container_id: String,
    pub kind: ProbeKind,
    pub result: ProbeResult,
    /// The stored result changed (the pod's status needs a sync).
    pub changed: bool,
    /// A liveness or startup probe failed `failureThreshold` times: kill the container
    /// (with [`killing_event`]) and let the restart policy decide.
    pub kill: bool,
    /// The probe's `terminationGracePeriodSeconds`, if set, for that kill.
    pub grace_seconds: Option<i64>,
    /// An event to record (`Unhealthy`, `ProbeWarning`), if any.
    pub event: Option<RecordedEvent>,
}

/// Upstream's `Killing` event for a container that failed its liveness or startup probe
/// (`computePodActions` then `killContainer`): `(reason, message)`.
pub fn killing_event(
    container: &str,
    kind: ProbeKind,
    will_restart: bool,
) -> (&'static str, String) {
    let what = match kind {
        ProbeKind::Startup => "startup",
        _ => "liveness",
    };
    let mut message = format!("Container {container} failed {what} probe");
    if will_restart {
        message.push_str(", will be restarted");
    }
    ("Killing", message)
}

/// The event upstream's `prober.probe` records for one run, and the result it counts
/// (`None`: a prober error, thrown away).
pub fn probe_run_event(
    kind: ProbeKind,
    outcome: &Result<Outcome, Error>,
) -> (Option<ProbeResult>, Option<RecordedEvent>) {
    match outcome {
        Ok(Outcome::Success(_)) => (Some(ProbeResult::Success), None),
        Ok(Outcome::Warning(out)) => (
            Some(ProbeResult::Success),
            Some(RecordedEvent {
                type_: "Warning",
                reason: "ProbeWarning",
                message: format!("{kind} probe warning: {out}"),
            }),
        ),
        Ok(Outcome::Failure(out)) => (
            Some(ProbeResult::Failure(out.clone())),
            Some(RecordedEvent {
                type_: "Warning",
                reason: "Unhealthy",
                message: format!("{kind} probe failed: {out}"),
            }),
        ),
        Err(e) => (
            None,
            Some(RecordedEvent {
                type_: "Warning",
                reason: "Unhealthy",
                message: format!("{kind} probe errored: {e}"),
            }),
        ),
    }
}

/// Where a probe or hook runs: the pod, the container and how to reach it.
pub struct Target<'a> {
    pub runtime: &'a dyn PodRuntime,
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub container_id: &'a str,
    /// The pod's IP (for hostNetwork pods the node's, which is the pod's IP then).
    pub pod_ip: Option<IpAddr>,
}

/// Runs `probe` once (upstream's `prober.runProbe`).
pub async fn run_probe(
    t: &Target<'_>,
    client: &http::Client,
    probe: &Probe,
    timeout: Duration,
) -> Result<Outcome, Error> {
    if let Some(e) = &probe.exec {
        let cmd = e.command.clone().unwrap_or_default();
        return exec::probe(t.runtime, t.container_id, &cmd, timeout).await;
    }
    if let Some(h) = &probe.http_get {
        let req = http::ProbeRequest::from_action(h, t.container, t.pod_ip, "probe")?;
        return client.probe(&req, timeout).await;
    }
    if let Some(s) = &probe.tcp_socket {
        let host = match s.host.as_deref().filter(|h| !h.is_empty()) {
            Some(h) => h.to_string(),
            None => t.pod_ip.ok_or(Error::NoHost)?.to_string(),
        };
        let port = resolve_port(&s.port, t.container)?;
        return Ok(tcp::probe(&host, port, timeout).await);
    }
    if let Some(g) = &probe.grpc {
        let host = t.pod_ip.ok_or(Error::NoHost)?;
        let port = u16::try_from(g.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| Error::Port(format!("invalid port number: {}", g.port)))?;
        let service = g.service.clone().unwrap_or_default();
        return Ok(grpc::probe(host, port, &service, timeout).await);
    }
    Err(Error::NoHandler(t.container.name.clone()))
}

/// Upstream's `probe.ResolveContainerPort`: a number, or a name looked up in the
/// container's ports (or a number written as a string).
pub fn resolve_port(
    port: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
    container: &Container,
) -> Result<u16, Error> {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let n: i64 = match port {
        IntOrString::Int(n) => i64::from(*n),
        IntOrString::String(name) => {
            let found = container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| i64::from(p.container_port));
            match found {
                Some(n) => n,
                None => name
                    .parse::<i64>()
                    .map_err(|_| Error::Port(format!("port {name} not found")))?,
            }
        }
    };
    u16::try_from(n)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| Error::Port(format!("invalid port number: {n}")))
}

/// The stored value of one probe for the current container instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Value {
    Unknown,
    Known(ProbeResult),
}

struct ContainerResults {
    container_id: String,
    values: HashMap<ProbeKind, Value>,
}

struct WorkerHandle {
    container_id: String,
    task: JoinHandle<()>,
    trigger: Arc<Notify>,
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct PodEntry {
    pod: Arc<Pod>,
    pod_ip: Option<IpAddr>,
    workers: HashMap<(String, ProbeKind), WorkerHandle>,
    results: HashMap<String, ContainerResults>,
}

pub(crate) struct Inner {
    runtime: Arc<dyn PodRuntime>,
    events: UnboundedSender<ProbeEvent>,
    client: http::Client,
    start: Instant,
    pods: Mutex<HashMap<String, PodEntry>>,
}

/// Runs the probes of a node's pods (upstream's `prober.Manager`). Cheap to clone.
#[derive(Clone)]
pub struct ProbeManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProbeManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeManager").finish_non_exhaustive()
    }
}

fn pod_uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// The containers that can have probes: app containers and sidecar init containers.
fn probed_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    spec_init_containers(pod)
        .iter()
        .filter(|c| is_sidecar(c))
        .chain(spec_containers(pod).iter())
}

impl ProbeManager {
    pub fn new(runtime: Arc<dyn PodRuntime>, events: UnboundedSender<ProbeEvent>) -> Self {
        Self {
            inner: Arc::new(Inner {
                runtime,
                events,
                client: http::Client::new(),
                start: Instant::now(),
                pods: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Called on every sync of a pod: starts a worker per (container, probe kind) for
    /// running containers that have the probe, restarts it for a new container id, stops
    /// workers of containers that are no longer running (readiness then reads false).
    /// Must be called within a Tokio runtime.
    pub fn sync_pod(&self, pod: &Pod, pod_ip: Option<IpAddr>, running: &[RunningContainer]) {
        let uid = pod_uid(pod);
        let pod = Arc::new(pod.clone());
        let mut pods = lock(&self.inner.pods);
        let entry = pods.entry(uid.clone()).or_insert_with(|| PodEntry {
            pod: pod.clone(),
            pod_ip,
            workers: HashMap::new(),
            results: HashMap::new(),
        });
        entry.pod = pod.clone();
        entry.pod_ip = pod_ip;
        let mut wanted: Vec<(String, ProbeKind)> = Vec::new();
        for c in probed_containers(&pod) {
            let Some(rc) = running.iter().find(|r| r.name == c.name) else {
                continue;
            };
            // A new instance: fresh results with each probe's initial value (upstream's
            // worker on a new container id).
            let fresh = entry
                .results
                .get(&c.name)
                .is_none_or(|r| r.container_id != rc.id);
            if fresh {
                let values = ProbeKind::ALL
                    .iter()
                    .filter(|k| k.of(c).is_some())
                    .map(|k| (*k, worker::initial_value(*k)))
                    .collect();
                entry.results.insert(
                    c.name.clone(),
                    ContainerResults {
                        container_id: rc.id.clone(),
                        values,
                    },
                );
            }
            for kind in ProbeKind::ALL {
                let Some(probe) = kind.of(c) else { continue };
                let key = (c.name.clone(), kind);
                wanted.push(key.clone());
                if entry
                    .workers
                    .get(&key)
                    .is_some_and(|w| w.container_id == rc.id)
                {
                    continue;
                }
                let trigger = Arc::new(Notify::new());
                let spec = worker::WorkerSpec {
                    pod_uid: uid.clone(),
                    container: c.name.clone(),
                    container_id: rc.id.clone(),
                    started_at: rc.started_at,
                    kind,
                    timing: worker::Timing::from_probe(probe),
                    grace_seconds: probe.termination_grace_period_seconds,
                };
                let task = tokio::spawn(worker::run(self.inner.clone(), spec, trigger.clone()));
                entry.workers.insert(
                    key,
                    WorkerHandle {
                        container_id: rc.id.clone(),
                        task,
                        trigger,
                    },
                );
            }
        }
        entry.workers.retain(|k, _| wanted.contains(k));
        // A container that is not running is not ready (upstream sets Failure for it).
        let running_names: Vec<&str> = running.iter().map(|r| r.name.as_str()).collect();
        for (name, r) in entry.results.iter_mut() {
            if !running_names.contains(&name.as_str()) {
                if let Some(v) = r.values.get_mut(&ProbeKind::Readiness) {
                    *v = Value::Known(ProbeResult::Failure(String::new()));
                }
            }
        }
    }

    /// Stops the pod's workers and forgets its results.
    pub fn remove_pod(&self, pod_uid: &str) {
        lock(&self.inner.pods).remove(pod_uid);
    }

    /// The started/ready results of the container's current instance, for
    /// `pods::status` (`None`: the container has no such probe).
    pub fn results(&self, pod_uid: &str, container: &str) -> ProbeResults {
        let pods = lock(&self.inner.pods);
        let Some(entry) = pods.get(pod_uid) else {
            return ProbeResults::default();
        };
        let Some(c) = probed_containers(&entry.pod).find(|c| c.name == container) else {
            return ProbeResults::default();
        };
        let r = entry.results.get(container);
        let success = |k: ProbeKind| {
            r.and_then(|r| r.values.get(&k))
                .is_some_and(|v| *v == Value::Known(ProbeResult::Success))
        };
        ProbeResults {
            started: c
                .startup_probe
                .as_ref()
                .map(|_| success(ProbeKind::Startup)),
            ready: c
                .readiness_probe
                .as_ref()
                .map(|_| success(ProbeKind::Readiness)),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means a worker panicked mid-update; the map is still usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a worker reads before a run.
pub(crate) struct Snapshot {
    pod: Arc<Pod>,
    pod_ip: Option<IpAddr>,
    /// The container's startup probe has succeeded (or it has none).
    started: bool,
    deleting: bool,
}

impl Inner {
    /// `None`: the worker's container instance is no longer the current one.
    pub(crate) fn snapshot(&self, spec: &worker::WorkerSpec) -> Option<Snapshot> {
        let pods = lock(&self.pods);
        let entry = pods.get(&spec.pod_uid)?;
        let r = entry.results.get(&spec.container)?;
        if r.container_id != spec.container_id {
            return None;
        }
        let started = match r.values.get(&ProbeKind::Startup) {
            None => true,
            Some(v) => *v == Value::Known(ProbeResult::Success),
        };
        Some(Snapshot {
            pod: entry.pod.clone(),
            pod_ip: entry.pod_ip,
            started,
            deleting: entry.pod.metadata.deletion_timestamp.is_some(),
        })
    }

    pub(crate) fn runtime(&self) -> &dyn PodRuntime {
        self.runtime.as_ref()
    }

    pub(crate) fn client(&self) -> &http::Client {
        &self.client
    }

    pub(crate) fn since_start(&self) -> Duration {
        self.start.elapsed()
    }

    /// Stores `result` for the worker's container instance; returns whether it changed.
    /// A startup success wakes the container's other workers (upstream's manual trigger
    /// of the readiness worker once the container has started).
    pub(crate) fn set(&self, spec: &worker::WorkerSpec, result: &ProbeResult) -> bool {
        let mut pods = lock(&self.pods);
        let Some(entry) = pods.get_mut(&spec.pod_uid) else {
            return false;
        };
        let Some(r) = entry.results.get_mut(&spec.container) else {
            return false;
        };
        if r.container_id != spec.container_id {
            return false;
        }
        let new = Value::Known(result.clone());
        let old = r.values.insert(spec.kind, new.clone());
        let changed = match &old {
            // Failure messages may differ between runs; the result is what counts.
            Some(Value::Known(o)) => o.is_success() != result.is_success(),
            _ => true,
        };
        if changed && spec.kind == ProbeKind::Startup && result.is_success() {
            for ((name, kind), w) in &entry.workers {
                if *name == spec.container && *kind != ProbeKind::Startup {
                    w.trigger.notify_one();
                }
            }
        }
        changed
    }

    pub(crate) fn send(&self, event: ProbeEvent) {
        // The receiver gone means the kubelet is shutting down; nothing to tell.
        let _ = self.events.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ContainerPort;
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    #[test]
    fn ports_resolve_by_number_name_or_numeric_string() {
        let c = Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(resolve_port(&IntOrString::Int(80), &c).ok(), Some(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c).ok(),
            Some(8080)
        );
        assert_eq!(
            resolve_port(&IntOrString::String("9090".into()), &c).ok(),
            Some(9090)
        );
        let e = resolve_port(&IntOrString::String("grpc".into()), &c);
        assert_eq!(
            e.err().map(|e| e.to_string()).as_deref(),
            Some("port grpc not found")
        );
        let e = resolve_port(&IntOrString::Int(70000), &c);
        assert_eq!(
            e.err().map(|e| e.to_string()).as_deref(),
            Some("invalid port number: 70000")
        );
        assert!(resolve_port(&IntOrString::Int(0), &c).is_err());
    }

    #[test]
    fn event_texts_are_upstreams() {
        let (r, e) = probe_run_event(
            ProbeKind::Liveness,
            &Ok(Outcome::Failure(
                "HTTP probe failed with statuscode: 500".into(),
            )),
        );
        assert_eq!(
            r,
            Some(ProbeResult::Failure(
                "HTTP probe failed with statuscode: 500".into()
            ))
        );
        let e = e.expect("an event");
        assert_eq!((e.type_, e.reason), ("Warning", "Unhealthy"));
        assert_eq!(
            e.message,
            "Liveness probe failed: HTTP probe failed with statuscode: 500"
        );

        let (r, e) = probe_run_event(ProbeKind::Readiness, &Ok(Outcome::Warning("x".into())));
        assert_eq!(r, Some(ProbeResult::Success));
        assert_eq!(
            e.map(|e| (e.reason, e.message)),
            Some(("ProbeWarning", "Readiness probe warning: x".into()))
        );

        let (r, e) = probe_run_event(ProbeKind::Startup, &Err(Error::NoHost));
        assert_eq!(r, None);
        assert_eq!(
            e.map(|e| e.message).as_deref(),
            Some("Startup probe errored: no pod IP to probe")
        );

        assert_eq!(
            probe_run_event(ProbeKind::Startup, &Ok(Outcome::Success(String::new()))),
            (Some(ProbeResult::Success), None)
        );

        assert_eq!(
            killing_event("web", ProbeKind::Liveness, true),
            (
                "Killing",
                "Container web failed liveness probe, will be restarted".to_string()
            )
        );
        assert_eq!(
            killing_event("web", ProbeKind::Startup, false),
            ("Killing", "Container web failed startup probe".to_string())
        );
    }
}
