//! CrashLoopBackOff and the restart decision.
//!
//! Upstream: `pkg/kubelet/kuberuntime/kuberuntime_manager.go` (`doBackOff`: the back-off
//! window counts from the last exit, the event and the `CrashLoopBackOff` message),
//! `k8s.io/client-go/util/flowcontrol/backoff.go` (`Backoff`: 10 s doubling to 300 s, no
//! jitter for the kubelet, an entry reset when the container ran for longer than twice the
//! maximum, i.e. 10 minutes; `GC`), `pkg/kubelet/kuberuntime/helpers.go` (`GetStableKey`)
//! and `pkg/kubelet/container/helpers.go` (`ShouldContainerBeRestarted`) with
//! `computeInitContainerActions` for init containers and sidecars.
//!
//! Time is passed in (`now`), so the whole thing is a table of numbers in tests.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::convert::pod_desc;
use super::is_sidecar;
use super::status::{ObservedContainer, ObservedState, WaitingReason};

/// The first back-off (`backOffPeriod`).
pub const INITIAL_BACKOFF: SignedDuration = SignedDuration::from_secs(10);
/// The largest back-off (`MaxContainerBackOff`).
pub const MAX_BACKOFF: SignedDuration = SignedDuration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    backoff: SignedDuration,
    last_update: Timestamp,
}

/// What [`CrashLoopBackOff::check`] decided about an exited container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackoffDecision {
    /// Start it now (the window, if any, is over; the next one is already counted).
    Start,
    /// Still backing off: the container waits with reason `CrashLoopBackOff` and this
    /// message, and may start once `retry_at` has passed.
    Wait {
        backoff: SignedDuration,
        retry_at: Timestamp,
    },
}

/// Per-container back-off state (`flowcontrol.Backoff` with the kubelet's settings).
#[derive(Clone, Debug)]
pub struct CrashLoopBackOff {
    initial: SignedDuration,
    max: SignedDuration,
    entries: HashMap<String, Entry>,
}

impl Default for CrashLoopBackOff {
    fn default() -> Self {
        Self::new(INITIAL_BACKOFF, MAX_BACKOFF)
    }
}

impl CrashLoopBackOff {
    pub fn new(initial: SignedDuration, max: SignedDuration) -> Self {
        Self {
            initial,
            max,
            entries: HashMap::new(),
        }
    }

    fn expired(&self, event: Timestamp, last_update: Timestamp) -> bool {
        event.duration_since(last_update) > self.max * 2
    }

    /// The current back-off of `key`, if any.
    pub fn get(&self, key: &str) -> Option<SignedDuration> {
        self.entries.get(key).map(|e| e.backoff)
    }

    /// `IsInBackOffSince`: within the window that started at `event` (the last exit).
    pub fn in_backoff_since(&self, key: &str, event: Timestamp, now: Timestamp) -> bool {
        match self.entries.get(key) {
            None => false,
            Some(e) if self.expired(event, e.last_update) => false,
            Some(e) => now.duration_since(event) < e.backoff,
        }
    }

    /// `Next`: start or double the window (reset when the container outlived it).
    pub fn next(&mut self, key: &str, event: Timestamp, now: Timestamp) {
        let backoff = match self.entries.get(key) {
            Some(e) if !self.expired(event, e.last_update) => (e.backoff * 2).min(self.max),
            _ => self.initial,
        };
        self.entries.insert(
            key.to_owned(),
            Entry {
                backoff,
                last_update: now,
            },
        );
    }

    /// `doBackOff` for a container whose latest instance exited at `finished_at`: wait
    /// while in the window, else count the next window and start.
    pub fn check(&mut self, key: &str, finished_at: Timestamp, now: Timestamp) -> BackoffDecision {
        if self.in_backoff_since(key, finished_at, now) {
            let backoff = self.get(key).unwrap_or(self.initial);
            let retry_at = finished_at.checked_add(backoff).unwrap_or(finished_at);
            return BackoffDecision::Wait { backoff, retry_at };
        }
        self.next(key, finished_at, now);
        BackoffDecision::Start
    }

    /// Drops the entries not updated for twice the maximum (`GC`).
    pub fn gc(&mut self, now: Timestamp) {
        let max = self.max;
        self.entries
            .retain(|_, e| now.duration_since(e.last_update) <= max * 2);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `GetStableKey`: pod name, namespace, uid, container name and a hash of the container's
/// spec (a changed spec starts with a fresh back-off). The hash is of the container's JSON
/// and stable within one process, which is as long as the back-off state lives.
pub fn stable_key(pod: &Pod, container: &Container) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    serde_json::to_string(container)
        .unwrap_or_default()
        .hash(&mut h);
    let m = &pod.metadata;
    format!(
        "{}_{}_{}_{}_{:x}",
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default(),
        container.name,
        h.finish()
    )
}

/// A duration as Go prints one (`10s`, `1m20s`, `5m0s`), for upstream's messages.
pub fn go_duration(d: SignedDuration) -> String {
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// The waiting message of a container in CrashLoopBackOff, as upstream words it.
pub fn crash_loop_message(backoff: SignedDuration, container: &str, pod: &Pod) -> String {
    format!(
        "back-off {} restarting failed container={container} pod={}",
        go_duration(backoff),
        pod_desc(pod)
    )
}

/// What became of a container's latest instance, for the restart decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LastRun {
    /// Never created (or every instance garbage-collected).
    None,
    Created,
    Running,
    Exited {
        exit_code: i32,
    },
    Unknown,
}

/// Whether a container should be (re)started now, back-off aside
/// (`ShouldContainerBeRestarted`, and `computeInitContainerActions` for init containers):
/// never for a pod being deleted; always when it never ran, or is created or unknown;
/// never while running; after an exit, by kind: a sidecar (`restartPolicy: Always` on an
/// init container) always restarts, a regular init container only after a failure and
/// unless the pod's policy is `Never`, an app container per the pod's policy (`OnFailure`:
/// after a non-zero exit).
pub fn should_restart(pod: &Pod, container: &Container, init: bool, last: LastRun) -> bool {
    if pod.metadata.deletion_timestamp.is_some() {
        return false;
    }
    let exit_code = match last {
        LastRun::None | LastRun::Created | LastRun::Unknown => return true,
        LastRun::Running => return false,
        LastRun::Exited { exit_code } => exit_code,
    };
    let policy = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    if init && is_sidecar(container) {
        return true;
    }
    if init {
        return exit_code != 0 && policy != "Never";
    }
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// What the pod worker should do with one container now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerAction {
    /// Nothing: it runs, or it is done for good.
    Leave,
    /// (Re)start it.
    Start,
    /// Not yet: it waits in CrashLoopBackOff until `retry_at`.
    BackOff {
        reason: WaitingReason,
        retry_at: Timestamp,
    },
}

/// The restart decision and the back-off together, for a container whose latest
/// instance is `latest` (upstream's `computePodActions` asking `ShouldContainerBeRestarted`,
/// then `doBackOff` before the start). Init-container ordering is the caller's.
pub fn container_action(
    pod: &Pod,
    container: &Container,
    init: bool,
    latest: Option<&ObservedContainer>,
    backoff: &mut CrashLoopBackOff,
    now: Timestamp,
) -> ContainerAction {
    let last = latest.map_or(LastRun::None, ObservedContainer::last_run);
    if !should_restart(pod, container, init, last) {
        return ContainerAction::Leave;
    }
    if let Some(o) = latest.filter(|o| o.state == ObservedState::Exited) {
        let finished = o.finished_at.unwrap_or(o.created_at);
        if let BackoffDecision::Wait { backoff, retry_at } =
            backoff.check(&stable_key(pod, container), finished, now)
        {
            return ContainerAction::BackOff {
                reason: WaitingReason::crash_loop(backoff, &container.name, pod),
                retry_at,
            };
        }
    }
    ContainerAction::Start
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::qos::tests::pod;
    use serde_json::json;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    /// Mirrors `TestSlowBackoff` / `TestBackoffReset` / `TestBackoffHighWaterMark` in
    /// client-go's `flowcontrol/backoff_test.go` with the kubelet's 10 s / 300 s, and the
    /// crash-loop walk of `TestSyncPodBackoff` in `kubelet_test.go`.
    #[test]
    fn crash_loop_doubles_to_five_minutes_and_resets_after_ten() {
        let mut b = CrashLoopBackOff::default();
        let k = "p_ns_u_c_1";
        // A container that exits immediately every time it is started: the first exit
        // restarts at once and opens a 10 s window.
        assert_eq!(b.check(k, t(0), t(0)), BackoffDecision::Start);
        let mut finished = 0;
        let mut seen = Vec::new();
        for _ in 0..8 {
            // It exited again at `finished`: a sync one second later waits.
            let window = match b.check(k, t(finished), t(finished + 1)) {
                BackoffDecision::Wait { backoff, retry_at } => {
                    assert_eq!(retry_at, t(finished).checked_add(backoff).unwrap());
                    backoff
                }
                other => panic!("expected a wait, got {other:?}"),
            };
            seen.push(window.as_secs());
            let w = window.as_secs();
            assert!(matches!(
                b.check(k, t(finished), t(finished + w - 1)),
                BackoffDecision::Wait { .. }
            ));
            assert_eq!(
                b.check(k, t(finished), t(finished + w)),
                BackoffDecision::Start
            );
            finished += w;
        }
        assert_eq!(seen, vec![10, 20, 40, 80, 160, 300, 300, 300]);
        // Started at `finished`, it runs for 10 min and a second, then exits: reset.
        let exit = t(finished + 601);
        assert_eq!(b.check(k, exit, exit), BackoffDecision::Start);
        assert_eq!(b.get(k), Some(INITIAL_BACKOFF));
        // Ten minutes exactly is not enough (upstream's strict `>`).
        let mut b2 = CrashLoopBackOff::default();
        b2.next(k, t(0), t(0));
        b2.next(k, t(0), t(0));
        assert_eq!(b2.get(k).unwrap().as_secs(), 20);
        b2.next(k, t(600), t(600));
        assert_eq!(b2.get(k).unwrap().as_secs(), 40);
    }

    #[test]
    fn gc_drops_idle_entries() {
        let mut b = CrashLoopBackOff::default();
        b.next("a", t(0), t(0));
        b.next("b", t(500), t(500));
        b.gc(t(601));
        assert_eq!((b.get("a"), b.get("b").is_some()), (None, true));
    }

    #[test]
    fn messages_as_upstream() {
        let p = pod(
            json!({"metadata": {"name": "web", "namespace": "shop", "uid": "u-1"}, "spec": {"containers": []}}),
        );
        assert_eq!(
            crash_loop_message(SignedDuration::from_secs(10), "app", &p),
            "back-off 10s restarting failed container=app pod=web_shop(u-1)"
        );
        for (secs, want) in [
            (10, "10s"),
            (80, "1m20s"),
            (160, "2m40s"),
            (300, "5m0s"),
            (3725, "1h2m5s"),
        ] {
            assert_eq!(go_duration(SignedDuration::from_secs(secs)), want);
        }
    }

    #[test]
    fn stable_keys_change_with_the_spec() {
        let p = pod(
            json!({"metadata": {"name": "web", "namespace": "shop", "uid": "u"}, "spec": {"containers": [
            {"name": "a", "image": "x:1"}]}}),
        );
        let mut c = p.spec.as_ref().unwrap().containers[0].clone();
        let k1 = stable_key(&p, &c);
        assert!(k1.starts_with("web_shop_u_a_"));
        assert_eq!(k1, stable_key(&p, &c));
        c.image = Some("x:2".into());
        assert_ne!(k1, stable_key(&p, &c));
    }

    /// Mirrors `TestShouldContainerBeRestarted` in `pkg/kubelet/container/helpers_test.go`
    /// and the init/sidecar cases of `computeInitContainerActions`.
    #[test]
    fn restart_decisions() {
        use LastRun::*;
        let mk = |policy: &str| {
            pod(
                json!({"metadata": {"name": "p"}, "spec": {"restartPolicy": policy,
                "initContainers": [{"name": "init", "image": "i"}, {"name": "side", "image": "i", "restartPolicy": "Always"}],
                "containers": [{"name": "app", "image": "i"}]}}),
            )
        };
        let cases = [
            // (pod policy, which, last run, restart?)
            ("Always", "app", None, true),
            ("Always", "app", Created, true),
            ("Always", "app", Unknown, true),
            ("Always", "app", Running, false),
            ("Always", "app", Exited { exit_code: 0 }, true),
            ("Always", "app", Exited { exit_code: 1 }, true),
            ("OnFailure", "app", Exited { exit_code: 0 }, false),
            ("OnFailure", "app", Exited { exit_code: 137 }, true),
            ("Never", "app", Exited { exit_code: 1 }, false),
            ("Never", "app", None, true),
            ("Always", "init", Exited { exit_code: 0 }, false),
            ("Always", "init", Exited { exit_code: 1 }, true),
            ("OnFailure", "init", Exited { exit_code: 1 }, true),
            ("Never", "init", Exited { exit_code: 1 }, false),
            ("Never", "side", Exited { exit_code: 0 }, true),
            ("Never", "side", Exited { exit_code: 1 }, true),
            ("Never", "side", Running, false),
        ];
        for (policy, which, last, want) in cases {
            let p = mk(policy);
            let spec = p.spec.as_ref().unwrap();
            let (c, init) = match which {
                "app" => (&spec.containers[0], false),
                "init" => (&spec.init_containers.as_ref().unwrap()[0], true),
                _ => (&spec.init_containers.as_ref().unwrap()[1], true),
            };
            assert_eq!(
                should_restart(&p, c, init, last),
                want,
                "{policy} {which} {last:?}"
            );
        }
        let mut deleting = mk("Always");
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t(0)));
        let c = deleting.spec.as_ref().unwrap().containers[0].clone();
        assert!(!should_restart(
            &deleting,
            &c,
            false,
            Exited { exit_code: 1 }
        ));
    }

    /// The pod worker's walk through a crash loop: start, back off with upstream's
    /// message, start again when the window is over; nothing for a Never pod.
    #[test]
    fn container_actions() {
        let p = pod(
            json!({"metadata": {"name": "web", "namespace": "shop", "uid": "u"},
            "spec": {"containers": [{"name": "app", "image": "x"}]}}),
        );
        let c = p.spec.as_ref().unwrap().containers[0].clone();
        let mut b = CrashLoopBackOff::default();
        assert_eq!(
            container_action(&p, &c, false, None, &mut b, t(0)),
            ContainerAction::Start
        );
        let mut o = ObservedContainer {
            name: "app".into(),
            id: "a1".into(),
            state: ObservedState::Running,
            created_at: t(0),
            started_at: Some(t(0)),
            finished_at: None,
            exit_code: 0,
            oom_killed: false,
            start_error: None,
            message: None,
            restart_count: 0,
            image: "x".into(),
            image_id: "x@sha".into(),
        };
        assert_eq!(
            container_action(&p, &c, false, Some(&o), &mut b, t(1)),
            ContainerAction::Leave
        );
        o.state = ObservedState::Exited;
        o.exit_code = 1;
        o.finished_at = Some(t(2));
        assert_eq!(
            container_action(&p, &c, false, Some(&o), &mut b, t(2)),
            ContainerAction::Start
        );
        o.finished_at = Some(t(3));
        let want = ContainerAction::BackOff {
            reason: WaitingReason {
                reason: "CrashLoopBackOff".into(),
                message: "back-off 10s restarting failed container=app pod=web_shop(u)".into(),
            },
            retry_at: t(13),
        };
        assert_eq!(
            container_action(&p, &c, false, Some(&o), &mut b, t(4)),
            want
        );
        assert_eq!(
            container_action(&p, &c, false, Some(&o), &mut b, t(13)),
            ContainerAction::Start
        );
        let mut never = p.clone();
        never.spec.as_mut().unwrap().restart_policy = Some("Never".into());
        assert_eq!(
            container_action(&never, &c, false, Some(&o), &mut b, t(100)),
            ContainerAction::Leave
        );
    }
}
