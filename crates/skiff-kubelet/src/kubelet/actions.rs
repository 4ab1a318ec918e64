//! What the pod worker must do to a pod now: upstream's `computePodActions`
//! (`pkg/kubelet/kuberuntime/kuberuntime_manager.go`) with `computeInitContainerActions`
//! for init containers and sidecars. Pure: the runtime's view of the pod and the clock in,
//! the actions out; the worker executes them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::jiff::Timestamp;

use crate::pods::backoff::{container_action, ContainerAction, CrashLoopBackOff};
use crate::pods::status::{ObservedContainer, ObservedState, WaitingReason};
use crate::pods::{is_sidecar, spec_containers, spec_init_containers};

/// The pod's sandbox as the runtime has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxView {
    pub id: String,
    /// Made completely and its namespaces still pinned.
    pub ready: bool,
}

/// Everything the runtime has of one pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodView {
    pub sandbox: Option<SandboxView>,
    /// Every container instance of the pod (current and earlier ones).
    pub containers: Vec<ObservedContainer>,
}

impl PodView {
    /// The latest instance of container `name` (the highest attempt, then the newest).
    pub fn latest(&self, name: &str) -> Option<&ObservedContainer> {
        self.containers
            .iter()
            .filter(|c| c.name == name)
            .max_by_key(|c| (c.restart_count, c.created_at))
    }

    fn running(&self, name: &str) -> bool {
        self.latest(name)
            .is_some_and(|c| c.state == ObservedState::Running)
    }
}

/// The actions for one sync.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodActions {
    /// Stop every container and the sandbox first (the sandbox is gone or broken, or the
    /// pod is done).
    pub kill_pod: bool,
    /// Make a new sandbox (after `kill_pod`'s cleanup).
    pub create_sandbox: bool,
    /// Containers to start now, in order (init containers one at a time; sidecars and app
    /// containers together).
    pub start: Vec<String>,
    /// Why containers that are not started wait (`CrashLoopBackOff`), by name.
    pub waiting: BTreeMap<String, WaitingReason>,
    /// The earliest back-off end: sync again then.
    pub retry_at: Option<Timestamp>,
    /// Nothing of the pod will run again (every container done for good, or an init
    /// container failed under `restartPolicy: Never`): phase Succeeded/Failed.
    pub terminal: bool,
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Whether an app container has an instance: the pod has been initialized (its init
/// containers' instances may since have been removed).
fn initialized(pod: &Pod, view: &PodView) -> bool {
    spec_containers(pod)
        .iter()
        .any(|c| view.latest(&c.name).is_some())
}

struct Decider<'a> {
    pod: &'a Pod,
    view: &'a PodView,
    backoff: &'a mut CrashLoopBackOff,
    now: Timestamp,
    out: PodActions,
}

impl Decider<'_> {
    /// Asks the restart rule and the back-off about `c`; true if it starts now.
    fn consider(&mut self, c: &Container, init: bool) -> bool {
        let latest = self.view.latest(&c.name);
        match container_action(self.pod, c, init, latest, self.backoff, self.now) {
            ContainerAction::Leave => false,
            ContainerAction::Start => {
                self.out.start.push(c.name.clone());
                true
            }
            ContainerAction::BackOff { reason, retry_at } => {
                self.out.waiting.insert(c.name.clone(), reason);
                self.out.retry_at = Some(match self.out.retry_at {
                    Some(t) if t < retry_at => t,
                    _ => retry_at,
                });
                false
            }
        }
    }

    /// Init containers in order (`computeInitContainerActions`). Returns whether the app
    /// containers may start.
    fn init_containers(&mut self) -> bool {
        let pod = self.pod;
        let done_before = initialized(pod, self.view);
        for c in spec_init_containers(pod) {
            if is_sidecar(c) {
                // A sidecar keeps running next to everything after it; a stopped one is
                // restarted (with back-off) whatever the phase.
                if self.view.running(&c.name) {
                    continue;
                }
                self.consider(c, true);
                if !done_before {
                    // The next init container waits for this one to run.
                    return false;
                }
                continue;
            }
            if done_before {
                continue; // regular init containers never run again once the pod is up
            }
            match self.view.latest(&c.name) {
                Some(o) if o.state == ObservedState::Exited && o.exit_code == 0 => continue,
                Some(o) if o.state == ObservedState::Running => return false,
                Some(o) if o.state == ObservedState::Exited && restart_policy(pod) == "Never" => {
                    // A failed init container under Never fails the pod.
                    self.out.terminal = true;
                    self.out.kill_pod = true;
                    return false;
                }
                _ => {
                    self.consider(c, true);
                    return false;
                }
            }
        }
        true
    }
}

/// The actions for `pod` given what the runtime has of it. `pod` is not being deleted (the
/// worker terminates deleted pods without asking this).
pub fn compute_pod_actions(
    pod: &Pod,
    view: &PodView,
    backoff: &mut CrashLoopBackOff,
    now: Timestamp,
) -> PodActions {
    let mut d = Decider {
        pod,
        view,
        backoff,
        now,
        out: PodActions::default(),
    };
    let sandbox_ok = view.sandbox.as_ref().is_some_and(|s| s.ready);
    if !sandbox_ok {
        // podSandboxChanged: a new sandbox, and everything of the old one goes. A pod that
        // must not restart and already ran gets no new sandbox: it is done.
        d.out.kill_pod = view.sandbox.is_some() || !view.containers.is_empty();
        if restart_policy(pod) == "Never" && !view.containers.is_empty() {
            d.out.terminal = true;
            return d.out;
        }
        d.out.create_sandbox = true;
    }
    if !d.init_containers() {
        return d.out;
    }
    let mut keep = 0;
    for c in spec_containers(pod) {
        if d.view.running(&c.name) {
            keep += 1;
            continue;
        }
        if d.consider(c, false) || d.out.waiting.contains_key(&c.name) {
            keep += 1;
        }
    }
    if keep == 0 {
        // Every app container is done for good: stop the sidecars, the pod is finished.
        d.out.terminal = true;
        d.out.kill_pod = !view.containers.is_empty() || view.sandbox.is_some();
        d.out.create_sandbox = false;
        d.out.start.clear();
    }
    d.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn pod(policy: &str, init: &[(&str, bool)], app: &[&str]) -> Pod {
        let init: Vec<_> = init
            .iter()
            .map(|(n, sidecar)| {
                let mut c = json!({"name": n, "image": "busybox"});
                if *sidecar {
                    c["restartPolicy"] = json!("Always");
                }
                c
            })
            .collect();
        let app: Vec<_> = app
            .iter()
            .map(|n| json!({"name": n, "image": "busybox"}))
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": {"restartPolicy": policy, "initContainers": init, "containers": app}
        }))
        .unwrap()
    }

    fn inst(name: &str, attempt: i32, state: ObservedState, exit: i32) -> ObservedContainer {
        ObservedContainer {
            name: name.into(),
            id: format!("{name}-{attempt}"),
            state,
            created_at: t(attempt as i64),
            started_at: Some(t(attempt as i64)),
            finished_at: (state == ObservedState::Exited).then(|| t(attempt as i64 + 1)),
            exit_code: exit,
            oom_killed: false,
            start_error: None,
            message: None,
            restart_count: attempt,
            image: "busybox".into(),
            image_id: String::new(),
        }
    }

    fn ready(containers: Vec<ObservedContainer>) -> PodView {
        PodView {
            sandbox: Some(SandboxView {
                id: "sb".into(),
                ready: true,
            }),
            containers,
        }
    }

    #[test]
    fn a_new_pod_gets_a_sandbox_and_its_first_init_container() {
        let p = pod("Always", &[("i1", false), ("i2", false)], &["a", "b"]);
        let got = compute_pod_actions(&p, &PodView::default(), &mut Default::default(), t(0));
        assert!(got.create_sandbox && !got.kill_pod);
        assert_eq!(got.start, vec!["i1"]);
        let p = pod("Always", &[], &["a", "b"]);
        let got = compute_pod_actions(&p, &PodView::default(), &mut Default::default(), t(0));
        assert_eq!(got.start, vec!["a", "b"]);
    }

    #[test]
    fn init_containers_run_one_after_another() {
        let p = pod("Always", &[("i1", false), ("i2", false)], &["a"]);
        let mut b = CrashLoopBackOff::default();
        let running = ready(vec![inst("i1", 0, ObservedState::Running, 0)]);
        assert!(compute_pod_actions(&p, &running, &mut b, t(5))
            .start
            .is_empty());
        let done = ready(vec![inst("i1", 0, ObservedState::Exited, 0)]);
        assert_eq!(
            compute_pod_actions(&p, &done, &mut b, t(5)).start,
            vec!["i2"]
        );
        let both = ready(vec![
            inst("i1", 0, ObservedState::Exited, 0),
            inst("i2", 0, ObservedState::Exited, 0),
        ]);
        assert_eq!(
            compute_pod_actions(&p, &both, &mut b, t(5)).start,
            vec!["a"]
        );
    }

    #[test]
    fn a_failed_init_container_restarts_with_backoff_or_fails_the_pod_under_never() {
        let mut b = CrashLoopBackOff::default();
        let failed = ready(vec![inst("i1", 0, ObservedState::Exited, 1)]);
        let p = pod("Always", &[("i1", false)], &["a"]);
        // First failure: restart at once; the next one within 10 s waits.
        assert_eq!(
            compute_pod_actions(&p, &failed, &mut b, t(2)).start,
            vec!["i1"]
        );
        let again = ready(vec![inst("i1", 1, ObservedState::Exited, 1)]);
        let got = compute_pod_actions(&p, &again, &mut b, t(3));
        assert!(got.start.is_empty());
        assert_eq!(got.waiting["i1"].reason, "CrashLoopBackOff");
        assert!(got.retry_at.is_some());

        let p = pod("Never", &[("i1", false)], &["a"]);
        let got = compute_pod_actions(&p, &failed, &mut Default::default(), t(2));
        assert!(got.terminal && got.kill_pod && got.start.is_empty());
    }

    #[test]
    fn a_sidecar_must_run_before_the_next_init_container_and_keeps_running() {
        let p = pod("Never", &[("side", true), ("i1", false)], &["a"]);
        let mut b = CrashLoopBackOff::default();
        let got = compute_pod_actions(&p, &ready(vec![]), &mut b, t(0));
        assert_eq!(got.start, vec!["side"]);
        let side = inst("side", 0, ObservedState::Running, 0);
        let got = compute_pod_actions(&p, &ready(vec![side.clone()]), &mut b, t(1));
        assert_eq!(got.start, vec!["i1"]);
        let up = ready(vec![
            side,
            inst("i1", 0, ObservedState::Exited, 0),
            inst("a", 0, ObservedState::Running, 0),
        ]);
        assert!(compute_pod_actions(&p, &up, &mut b, t(2)).start.is_empty());
        // The sidecar died while the app runs: restarted even under Never.
        let died = ready(vec![
            inst("side", 0, ObservedState::Exited, 1),
            inst("a", 0, ObservedState::Running, 0),
        ]);
        assert_eq!(
            compute_pod_actions(&p, &died, &mut b, t(3)).start,
            vec!["side"]
        );
        // The app finished: the pod is done, the sidecar is stopped, not restarted.
        let finished = ready(vec![
            inst("side", 0, ObservedState::Running, 0),
            inst("a", 0, ObservedState::Exited, 0),
        ]);
        let got = compute_pod_actions(&p, &finished, &mut b, t(4));
        assert!(got.terminal && got.kill_pod && got.start.is_empty());
    }

    #[test]
    fn app_containers_follow_the_restart_policy() {
        let exited = |code| ready(vec![inst("a", 0, ObservedState::Exited, code)]);
        let cases = [
            ("Always", 0, true),
            ("Always", 1, true),
            ("OnFailure", 0, false),
            ("OnFailure", 1, true),
            ("Never", 0, false),
            ("Never", 1, false),
        ];
        for (policy, code, restarts) in cases {
            let p = pod(policy, &[], &["a"]);
            let got = compute_pod_actions(&p, &exited(code), &mut Default::default(), t(5));
            assert_eq!(got.start == vec!["a"], restarts, "{policy} exit {code}");
            assert_eq!(got.terminal, !restarts, "{policy} exit {code}");
        }
    }

    #[test]
    fn a_crash_looping_container_waits_and_the_pod_is_not_terminal() {
        let p = pod("Always", &[], &["a", "b"]);
        let mut b = CrashLoopBackOff::default();
        let v = |attempt| {
            ready(vec![
                inst("a", attempt, ObservedState::Exited, 2),
                inst("b", 0, ObservedState::Running, 0),
            ])
        };
        assert_eq!(
            compute_pod_actions(&p, &v(0), &mut b, t(1)).start,
            vec!["a"]
        );
        let got = compute_pod_actions(&p, &v(1), &mut b, t(2));
        assert!(got.start.is_empty() && !got.terminal && !got.kill_pod);
        assert!(got.waiting["a"]
            .message
            .contains("back-off 10s restarting failed"));
    }

    #[test]
    fn a_lost_sandbox_is_replaced_unless_the_pod_must_not_restart() {
        let lost = PodView {
            sandbox: Some(SandboxView {
                id: "sb".into(),
                ready: false,
            }),
            containers: vec![inst("a", 0, ObservedState::Exited, 137)],
        };
        let p = pod("Always", &[], &["a"]);
        let got = compute_pod_actions(&p, &lost, &mut Default::default(), t(5));
        assert!(got.kill_pod && got.create_sandbox);
        assert_eq!(got.start, vec!["a"]);
        let p = pod("Never", &[], &["a"]);
        let got = compute_pod_actions(&p, &lost, &mut Default::default(), t(5));
        assert!(got.kill_pod && !got.create_sandbox && got.terminal);
    }

    #[test]
    fn latest_is_the_highest_attempt() {
        let v = ready(vec![
            inst("a", 2, ObservedState::Exited, 1),
            inst("a", 3, ObservedState::Running, 0),
            inst("a", 1, ObservedState::Exited, 1),
        ]);
        assert_eq!(v.latest("a").map(|c| c.restart_count), Some(3));
        assert!(v.latest("b").is_none());
    }
}
