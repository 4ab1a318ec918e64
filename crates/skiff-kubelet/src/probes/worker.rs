//! One probe worker: a container instance's probe of one kind, run every `periodSeconds`
//! (upstream's `pkg/kubelet/prober/worker.go`).
//!
//! The timing decisions are the pure [`WorkerState`] (no clock of its own: every call is
//! given `now`), so they are unit-tested without sleeping; [`run`] is the loop that feeds
//! it with Tokio's clock and the probe runs. A worker lives for one container id: the
//! manager starts a new one for a new instance (upstream's worker resets on a new id), so
//! "on hold after a liveness kill until the new container" is the old worker waiting to be
//! stopped.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::jiff::Timestamp;
use tokio::sync::Notify;

use super::{
    probe_run_event, probed_containers, run_probe, Inner, ProbeEvent, ProbeKind, ProbeResult,
    Target, Value,
};

/// How often a probe that returned an error (not a failure) is retried at once
/// (upstream's `maxProbeRetries`).
const MAX_PROBE_RETRIES: usize = 3;

/// A probe's timing fields, defaulted as the API defaults them (period 10 s, timeout 1 s,
/// success 1, failure 3), never below 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

fn at_least_one(v: Option<i32>, default: i32) -> u32 {
    u32::try_from(v.unwrap_or(default).max(1)).unwrap_or(1)
}

impl Timing {
    pub fn from_probe(p: &Probe) -> Self {
        let secs = |v: Option<i32>, d: i32| Duration::from_secs(u64::from(at_least_one(v, d)));
        Self {
            initial_delay: Duration::from_secs(
                u64::try_from(p.initial_delay_seconds.unwrap_or(0)).unwrap_or(0),
            ),
            period: secs(p.period_seconds, 10),
            timeout: secs(p.timeout_seconds, 1),
            success_threshold: at_least_one(p.success_threshold, 1),
            failure_threshold: at_least_one(p.failure_threshold, 3),
        }
    }
}

/// The value a new container instance starts with: readiness Failure (not ready until a
/// success), liveness Success, startup Unknown (not started until a success).
pub(crate) fn initial_value(kind: ProbeKind) -> Value {
    match kind {
        ProbeKind::Readiness => Value::Known(ProbeResult::Failure(String::new())),
        ProbeKind::Liveness => Value::Known(ProbeResult::Success),
        ProbeKind::Startup => Value::Unknown,
    }
}

/// The random initial delay of a worker started while the kubelet itself started less
/// than a period ago (so a restarted kubelet does not fire every probe at once):
/// `random` in [0, 1) times the period. `None` otherwise.
pub fn initial_jitter(period: Duration, since_start: Duration, random: f64) -> Option<Duration> {
    (period > since_start).then(|| period.mul_f64(random.clamp(0.0, 1.0)))
}

/// What to do at a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    Probe,
    /// Nothing this tick (initial delay, gated by the startup probe, on hold).
    Wait,
    /// The pod is being deleted: liveness and startup stop, counting as success.
    StopSucceeded,
}

/// A result that reached its threshold and is to be stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub result: ProbeResult,
    /// Liveness or startup failure: the container is to be killed; the worker is on hold.
    pub kill: bool,
}

/// The counting part of upstream's `doProbe`.
#[derive(Clone, Debug)]
pub struct WorkerState {
    kind: ProbeKind,
    timing: Timing,
    started_at: Timestamp,
    last_success: Option<bool>,
    run: u32,
    on_hold: bool,
}

impl WorkerState {
    pub fn new(kind: ProbeKind, timing: Timing, started_at: Timestamp) -> Self {
        Self {
            kind,
            timing,
            started_at,
            last_success: None,
            run: 0,
            on_hold: false,
        }
    }

    pub fn on_hold(&self) -> bool {
        self.on_hold
    }

    /// Whether to probe now. `started`: the container's startup probe has succeeded (or
    /// it has none); `deleting`: the pod has a deletion timestamp.
    pub fn gate(&self, now: Timestamp, started: bool, deleting: bool) -> Gate {
        if self.on_hold {
            return Gate::Wait;
        }
        if deleting && matches!(self.kind, ProbeKind::Liveness | ProbeKind::Startup) {
            return Gate::StopSucceeded;
        }
        // Whole seconds, as upstream's int32(time.Since(startedAt).Seconds()).
        let running_for = now.as_second().saturating_sub(self.started_at.as_second());
        let delay = i64::try_from(self.timing.initial_delay.as_secs()).unwrap_or(i64::MAX);
        if running_for < delay {
            return Gate::Wait;
        }
        match (started, self.kind) {
            // A started container is no longer startup-probed.
            (true, ProbeKind::Startup) => Gate::Wait,
            // Liveness and readiness wait for the startup probe.
            (false, ProbeKind::Liveness | ProbeKind::Readiness) => Gate::Wait,
            _ => Gate::Probe,
        }
    }

    /// Counts a run's result (`None`: a prober error, thrown away) and returns what to
    /// store once a threshold is reached.
    pub fn record(&mut self, result: Option<ProbeResult>) -> Option<Verdict> {
        let result = result?;
        let success = result.is_success();
        if self.last_success == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last_success = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            self.timing.success_threshold
        } else {
            self.timing.failure_threshold
        };
        if self.run < threshold {
            return None;
        }
        let kill = !success && matches!(self.kind, ProbeKind::Liveness | ProbeKind::Startup);
        if kill {
            // Stop probing until a new container: probing one being stopped helps nobody.
            self.on_hold = true;
            self.run = 0;
        }
        Some(Verdict { result, kill })
    }
}

/// What the manager gives a worker.
#[derive(Clone, Debug)]
pub(crate) struct WorkerSpec {
    pub pod_uid: String,
    pub container: String,
    pub container_id: String,
    pub started_at: Timestamp,
    pub kind: ProbeKind,
    pub timing: Timing,
    pub grace_seconds: Option<i64>,
}

fn now() -> Timestamp {
    Timestamp::now()
}

/// The worker loop: jitter, then a run per period (or when triggered) until the container
/// instance is no longer current or the task is aborted.
pub(crate) async fn run(inner: Arc<Inner>, spec: WorkerSpec, trigger: Arc<Notify>) {
    if let Some(d) = initial_jitter(spec.timing.period, inner.since_start(), rand::random()) {
        tokio::time::sleep(d).await;
    }
    let mut state = WorkerState::new(spec.kind, spec.timing, spec.started_at);
    let mut ticker = tokio::time::interval(spec.timing.period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker.tick().await;
    while do_probe(&inner, &spec, &mut state).await {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = trigger.notified() => {}
        }
    }
}

/// One tick; false ends the worker.
async fn do_probe(inner: &Inner, spec: &WorkerSpec, state: &mut WorkerState) -> bool {
    let Some(snap) = inner.snapshot(spec) else {
        return false;
    };
    match state.gate(now(), snap.started, snap.deleting) {
        Gate::Wait => return true,
        Gate::StopSucceeded => {
            inner.set(spec, &ProbeResult::Success);
            return false;
        }
        Gate::Probe => {}
    }
    let Some(container) = probed_containers(&snap.pod).find(|c| c.name == spec.container) else {
        return false;
    };
    let Some(probe) = spec.kind.of(container) else {
        return false;
    };
    let target = Target {
        runtime: inner.runtime(),
        pod: &snap.pod,
        container,
        container_id: &spec.container_id,
        pod_ip: snap.pod_ip,
    };
    let mut outcome = run_probe(&target, inner.client(), probe, spec.timing.timeout).await;
    for _ in 1..MAX_PROBE_RETRIES {
        if outcome.is_ok() {
            break;
        }
        outcome = run_probe(&target, inner.client(), probe, spec.timing.timeout).await;
    }
    let (result, event) = probe_run_event(spec.kind, &outcome);
    let verdict = state.record(result.clone());
    let changed = verdict.as_ref().is_some_and(|v| inner.set(spec, &v.result));
    let kill = verdict.as_ref().is_some_and(|v| v.kill);
    if event.is_some() || changed || kill {
        inner.send(ProbeEvent {
            pod_uid: spec.pod_uid.clone(),
            container: spec.container.clone(),
            container_id: spec.container_id.clone(),
            kind: spec.kind,
            result: verdict
                .map(|v| v.result)
                .or(result)
                .unwrap_or_else(|| ProbeResult::Failure(String::new())),
            changed,
            kill,
            grace_seconds: if kill { spec.grace_seconds } else { None },
            event,
        });
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn timing(initial: u64, success: u32, failure: u32) -> Timing {
        Timing {
            initial_delay: Duration::from_secs(initial),
            period: Duration::from_secs(10),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    fn fail() -> Option<ProbeResult> {
        Some(ProbeResult::Failure("x".into()))
    }

    #[test]
    fn defaults_are_the_apis_and_never_zero() {
        let p = Probe::default();
        let tm = Timing::from_probe(&p);
        assert_eq!(
            tm,
            Timing {
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(1),
                success_threshold: 1,
                failure_threshold: 3,
            }
        );
        let p = Probe {
            period_seconds: Some(0),
            timeout_seconds: Some(-5),
            failure_threshold: Some(0),
            initial_delay_seconds: Some(-1),
            ..Default::default()
        };
        let tm = Timing::from_probe(&p);
        assert_eq!(
            (
                tm.period.as_secs(),
                tm.timeout.as_secs(),
                tm.failure_threshold
            ),
            (1, 1, 1)
        );
        assert_eq!(tm.initial_delay, Duration::ZERO);
    }

    #[test]
    fn initial_values() {
        assert_eq!(
            initial_value(ProbeKind::Liveness),
            Value::Known(ProbeResult::Success)
        );
        assert!(matches!(
            initial_value(ProbeKind::Readiness),
            Value::Known(ProbeResult::Failure(_))
        ));
        assert_eq!(initial_value(ProbeKind::Startup), Value::Unknown);
    }

    #[test]
    fn initial_delay_in_whole_seconds() {
        let s = WorkerState::new(ProbeKind::Readiness, timing(5, 1, 3), t(0));
        assert_eq!(s.gate(t(0), true, false), Gate::Wait);
        assert_eq!(s.gate(t(4), true, false), Gate::Wait);
        assert_eq!(s.gate(t(5), true, false), Gate::Probe);
        // A clock behind the start (skew) is still waiting, not an overflow.
        assert_eq!(s.gate(t(-100), true, false), Gate::Wait);
    }

    #[test]
    fn startup_gates_liveness_and_readiness() {
        let tm = timing(0, 1, 3);
        let live = WorkerState::new(ProbeKind::Liveness, tm, t(0));
        let ready = WorkerState::new(ProbeKind::Readiness, tm, t(0));
        let startup = WorkerState::new(ProbeKind::Startup, tm, t(0));
        assert_eq!(live.gate(t(1), false, false), Gate::Wait);
        assert_eq!(ready.gate(t(1), false, false), Gate::Wait);
        assert_eq!(startup.gate(t(1), false, false), Gate::Probe);
        assert_eq!(live.gate(t(1), true, false), Gate::Probe);
        assert_eq!(ready.gate(t(1), true, false), Gate::Probe);
        assert_eq!(startup.gate(t(1), true, false), Gate::Wait);
    }

    #[test]
    fn deletion_stops_liveness_and_startup_as_success_not_readiness() {
        let tm = timing(0, 1, 3);
        for kind in [ProbeKind::Liveness, ProbeKind::Startup] {
            let s = WorkerState::new(kind, tm, t(0));
            assert_eq!(
                s.gate(t(1), kind == ProbeKind::Liveness, true),
                Gate::StopSucceeded
            );
        }
        let s = WorkerState::new(ProbeKind::Readiness, tm, t(0));
        assert_eq!(s.gate(t(1), true, true), Gate::Probe);
    }

    #[test]
    fn failure_threshold_then_kill_and_hold() {
        let mut s = WorkerState::new(ProbeKind::Liveness, timing(0, 1, 3), t(0));
        assert_eq!(s.record(fail()), None);
        assert_eq!(s.record(fail()), None);
        let v = s.record(fail()).expect("third failure");
        assert!(v.kill);
        assert!(s.on_hold());
        assert_eq!(s.gate(t(100), true, false), Gate::Wait);
    }

    #[test]
    fn a_success_resets_the_failure_run() {
        let mut s = WorkerState::new(ProbeKind::Liveness, timing(0, 1, 3), t(0));
        assert_eq!(s.record(fail()), None);
        assert_eq!(s.record(fail()), None);
        assert_eq!(
            s.record(Some(ProbeResult::Success)),
            Some(Verdict {
                result: ProbeResult::Success,
                kill: false
            })
        );
        assert_eq!(s.record(fail()), None);
        assert_eq!(s.record(fail()), None);
        assert!(s.record(fail()).is_some_and(|v| v.kill));
    }

    #[test]
    fn prober_errors_are_thrown_away() {
        let mut s = WorkerState::new(ProbeKind::Liveness, timing(0, 1, 2), t(0));
        assert_eq!(s.record(fail()), None);
        assert_eq!(s.record(None), None);
        assert!(s.record(fail()).is_some_and(|v| v.kill));
    }

    #[test]
    fn success_threshold_for_readiness_and_no_kill() {
        let mut s = WorkerState::new(ProbeKind::Readiness, timing(0, 2, 1), t(0));
        assert_eq!(s.record(Some(ProbeResult::Success)), None);
        assert_eq!(
            s.record(Some(ProbeResult::Success)),
            Some(Verdict {
                result: ProbeResult::Success,
                kill: false
            })
        );
        // Every further success reaches the threshold again (stored, unchanged).
        assert!(s.record(Some(ProbeResult::Success)).is_some());
        let v = s.record(fail()).expect("failure threshold 1");
        assert!(!v.kill);
        assert!(!s.on_hold());
        assert_eq!(s.record(Some(ProbeResult::Success)), None);
    }

    #[test]
    fn startup_failure_kills() {
        let mut s = WorkerState::new(ProbeKind::Startup, timing(0, 1, 1), t(0));
        assert!(s.record(fail()).is_some_and(|v| v.kill));
    }

    #[test]
    fn jitter_bounds() {
        let p = Duration::from_secs(10);
        assert_eq!(initial_jitter(p, Duration::from_secs(11), 0.5), None);
        assert_eq!(
            initial_jitter(p, Duration::from_secs(1), 0.0),
            Some(Duration::ZERO)
        );
        assert_eq!(
            initial_jitter(p, Duration::from_secs(1), 0.5),
            Some(Duration::from_secs(5))
        );
        for _ in 0..100 {
            let d = initial_jitter(p, Duration::ZERO, rand::random()).unwrap_or(p);
            assert!(d < p, "{d:?}");
        }
        // Out-of-range randomness is clamped to at most the period.
        assert_eq!(initial_jitter(p, Duration::ZERO, 7.0), Some(p));
    }
}
