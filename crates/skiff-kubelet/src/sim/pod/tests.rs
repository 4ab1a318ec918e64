//! The simulated pod's life and status, as tables over time.

use super::*;
use k8s_openapi::api::core::v1::PodSpec;

fn pod(yaml_annotations: &[(&str, &str)], restart_policy: &str) -> Pod {
    let mut pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1"},
        "spec": {
            "restartPolicy": restart_policy,
            "containers": [{"name": "web", "image": "nginx:1.25"}],
        }
    }))
    .expect("a pod");
    pod.metadata.annotations = Some(
        yaml_annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    pod
}

fn plan(annotations: &[(&str, &str)], restart_policy: &str) -> PodPlan {
    let (plan, warnings) = PodPlan::from_pod(&pod(annotations, restart_policy));
    assert!(warnings.is_empty(), "{warnings:?}");
    plan
}

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn ts(text: &str) -> Timestamp {
    text.parse().expect("a timestamp")
}

const POD: PodRef<'static> = PodRef {
    namespace: "default",
    name: "web",
    uid: "u-1",
};

fn placement() -> Placement {
    Placement {
        pod_ip: Ipv4Addr::new(10, 42, 1, 2),
        host_ip: Ipv4Addr::new(10, 41, 0, 2),
    }
}

#[test]
fn plans_read_the_annotations_and_default_them() {
    let always = plan(&[], "Always");
    assert_eq!(always.run_for, None);
    assert_eq!(always.exit_code, 0);
    assert_eq!(always.restart_policy, RestartPolicy::Always);
    assert_eq!(plan(&[], "Never").run_for, Some(s(1)));
    assert_eq!(plan(&[], "OnFailure").run_for, Some(s(1)));
    let set = plan(&[(RUN_FOR, "1m30s"), (EXIT_CODE, "3")], "Never");
    assert_eq!((set.run_for, set.exit_code), (Some(s(90)), 3));
    assert_eq!(plan(&[(RUN_FOR, "2s")], "Always").run_for, Some(s(2)));

    let (bad, warnings) = PodPlan::from_pod(&pod(&[(RUN_FOR, "soon"), (EXIT_CODE, "-1")], "Never"));
    assert_eq!((bad.run_for, bad.exit_code), (Some(s(1)), 0));
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains(RUN_FOR), "{warnings:?}");

    let mut p = pod(&[], "Always");
    p.spec = Some(
        serde_json::from_value::<PodSpec>(json!({
            "hostNetwork": true,
            "initContainers": [
                {"name": "setup", "image": "busybox"},
                {"name": "proxy", "image": "envoy", "restartPolicy": "Always"},
            ],
            "containers": [{"name": "web", "image": "nginx"}],
            "readinessGates": [{"conditionType": "example.com/lb"}],
        }))
        .expect("a spec"),
    );
    let (p, _) = PodPlan::from_pod(&p);
    assert!(p.host_network);
    assert_eq!(
        p.init_containers
            .iter()
            .map(|c| (c.name.as_str(), c.restartable))
            .collect::<Vec<_>>(),
        vec![("setup", false), ("proxy", true)]
    );
    assert_eq!(p.readiness_gates, vec!["example.com/lb".to_owned()]);
}

#[test]
fn back_off_is_none_then_ten_seconds_doubling_to_five_minutes() {
    let delays: Vec<u64> = (1..=9).map(|n| restart_delay(n).as_secs()).collect();
    assert_eq!(delays, vec![0, 10, 20, 40, 80, 160, 300, 300, 300]);
}

#[test]
fn a_service_pod_runs_forever_until_it_is_stopped() {
    let p = plan(&[], "Always");
    let state = state_at(&p, s(3600), None);
    assert_eq!(state.phase(), "Running");
    assert_eq!(state.next_change, None);
    assert!(matches!(state.main, Main::Running { restarts: 0, .. }));

    // Deleted with a 30 s grace period at 10 s: it stops at 40 s, cleanly.
    let stop = Some(s(40));
    assert_eq!(state_at(&p, s(20), stop).next_change, Some(s(40)));
    let stopped = state_at(&p, s(41), stop);
    assert_eq!(stopped.phase(), "Succeeded");
    assert_eq!(stopped.next_change, None);
    assert_eq!(
        stopped.main,
        Main::Done {
            restarts: 0,
            last: Run {
                index: 0,
                started: Duration::ZERO,
                finished: s(40),
                exit_code: 0
            },
            previous: None
        }
    );
}

#[test]
fn a_batch_pod_succeeds_or_fails_after_its_run() {
    let ok = plan(&[(RUN_FOR, "5s")], "Never");
    let running = state_at(&ok, s(2), None);
    assert_eq!(
        (running.phase(), running.next_change),
        ("Running", Some(s(5)))
    );
    let done = state_at(&ok, s(5), None);
    assert_eq!((done.phase(), done.next_change), ("Succeeded", None));

    let failing = plan(&[(EXIT_CODE, "3")], "Never");
    let failed = state_at(&failing, s(1), None);
    assert_eq!(failed.phase(), "Failed");
    assert!(matches!(
        failed.main,
        Main::Done {
            last: Run { exit_code: 3, .. },
            ..
        }
    ));

    // OnFailure: a clean exit ends the pod.
    let once = plan(&[], "OnFailure");
    assert_eq!(state_at(&once, s(1), None).phase(), "Succeeded");
    // A stop before the run ends stops it there.
    let cut = state_at(&ok, s(3), Some(s(2)));
    assert!(
        matches!(cut.main, Main::Done { last: Run { finished, exit_code: 0, .. }, .. } if finished == s(2))
    );
}

/// OnFailure with a failing run: restart at once, then wait 10 s, 20 s ... in
/// CrashLoopBackOff; the phase stays Running.
#[test]
fn a_failing_pod_crash_loops_with_upstreams_back_off() {
    let p = plan(&[(EXIT_CODE, "1")], "OnFailure");
    let summary = |t: u64| {
        let state = state_at(&p, s(t), None);
        let main = match state.main {
            Main::Running { restarts, .. } => format!("running#{restarts}"),
            Main::BackOff {
                restarts, delay, ..
            } => {
                format!("backoff#{restarts}:{}s", delay.as_secs())
            }
            Main::Done { .. } => "done".into(),
        };
        (state.phase(), main, state.next_change.map(|n| n.as_secs()))
    };
    // Runs: 0-1 s, 1-2 s (restarted at once), back-off 10 s, 12-13 s, back-off 20 s, 33-34 s.
    assert_eq!(summary(0), ("Running", "running#0".into(), Some(1)));
    assert_eq!(summary(1), ("Running", "running#1".into(), Some(2)));
    assert_eq!(summary(2), ("Running", "backoff#1:10s".into(), Some(12)));
    assert_eq!(summary(12), ("Running", "running#2".into(), Some(13)));
    assert_eq!(summary(13), ("Running", "backoff#2:20s".into(), Some(33)));
    assert_eq!(summary(33), ("Running", "running#3".into(), Some(34)));

    // Deleted while backing off: it ends Failed with its last run.
    let stopped = state_at(&p, s(20), Some(s(15)));
    assert_eq!(stopped.phase(), "Failed");
    assert!(matches!(
        stopped.main,
        Main::Done {
            restarts: 2,
            last: Run { index: 2, .. },
            previous: Some(Run { index: 1, .. })
        }
    ));
}

/// The closed form for late runs agrees with counting run by run.
#[test]
fn late_runs_are_found_without_counting_every_restart() {
    for d in [
        Duration::ZERO,
        Duration::from_millis(500),
        s(1),
        s(7),
        s(700),
    ] {
        let mut starts = vec![Duration::ZERO];
        for k in 1..40u32 {
            let prev = starts[k as usize - 1];
            starts.push(prev + d + restart_delay(k));
        }
        for (k, start) in starts.iter().enumerate() {
            assert_eq!(run_start(k as u32, d), *start, "d={d:?} k={k}");
        }
        for t in (0..(starts[39].as_secs())).step_by(37) {
            let t = s(t);
            let want = starts.iter().rposition(|st| *st <= t).unwrap_or(0) as u32;
            assert_eq!(run_index(t, d), want, "d={d:?} t={t:?}");
        }
    }
}

fn summary(status: &PodStatus) -> Vec<(String, String, Option<String>)> {
    status
        .conditions
        .iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
        .collect()
}

fn conds(items: &[(&str, &str, Option<&str>)]) -> Vec<(String, String, Option<String>)> {
    items
        .iter()
        .map(|(t, s, r)| ((*t).to_owned(), (*s).to_owned(), r.map(str::to_owned)))
        .collect()
}

#[test]
fn a_running_pod_reports_as_a_kubelet_does() {
    let p = plan(&[], "Always");
    let start = ts("2026-03-01T10:00:00Z");
    let now = ts("2026-03-01T10:00:05Z");
    let state = state_at(&p, s(5), None);
    let status = render_status(POD, &p, start, &state, placement(), &[], now);
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.pod_ip.as_deref(), Some("10.42.1.2"));
    assert_eq!(status.host_ip.as_deref(), Some("10.41.0.2"));
    assert_eq!(
        status.pod_ips.clone().unwrap_or_default()[0].ip,
        "10.42.1.2"
    );
    assert_eq!(
        status.host_ips.clone().unwrap_or_default()[0].ip,
        "10.41.0.2"
    );
    assert_eq!(status.start_time, Some(Time(start)));
    assert_eq!(
        summary(&status),
        conds(&[
            ("PodReadyToStartContainers", "True", None),
            ("Initialized", "True", None),
            ("Ready", "True", None),
            ("ContainersReady", "True", None),
            ("PodScheduled", "True", None),
        ])
    );
    assert!(status
        .conditions
        .iter()
        .flatten()
        .all(|c| c.last_transition_time == Some(Time(now))));
    let c = &status.container_statuses.clone().unwrap_or_default()[0];
    assert_eq!(c.name, "web");
    assert_eq!(c.image, "docker.io/library/nginx:1.25");
    assert!(c.image_id.starts_with("docker.io/library/nginx@sha256:"));
    assert!(c
        .container_id
        .as_deref()
        .is_some_and(|id| id.starts_with("sim://") && id.len() == 70));
    assert!(c.ready);
    assert_eq!(c.started, Some(true));
    assert_eq!(c.restart_count, 0);
    let running = c
        .state
        .as_ref()
        .and_then(|s| s.running.clone())
        .expect("running");
    assert_eq!(running.started_at, Some(Time(start)));
    assert_eq!(status.init_container_statuses, None);
}

#[test]
fn init_containers_complete_and_sidecars_run_until_the_end() {
    let mut p = plan(&[(RUN_FOR, "3s")], "Never");
    p.init_containers = vec![
        ContainerPlan {
            name: "setup".into(),
            image: "busybox".into(),
            restartable: false,
        },
        ContainerPlan {
            name: "proxy".into(),
            image: "envoy".into(),
            restartable: true,
        },
    ];
    let start = ts("2026-03-01T10:00:00Z");
    let running = render_status(
        POD,
        &p,
        start,
        &state_at(&p, s(1), None),
        placement(),
        &[],
        start,
    );
    let init = running.init_container_statuses.clone().unwrap_or_default();
    let setup = init[0]
        .state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .expect("done");
    assert_eq!(
        (setup.exit_code, setup.reason.as_deref()),
        (0, Some("Completed"))
    );
    assert!(init[0].ready, "a completed init container is ready");
    assert!(init[1].state.as_ref().is_some_and(|s| s.running.is_some()));
    assert!(init[1].ready);
    let done = render_status(
        POD,
        &p,
        start,
        &state_at(&p, s(4), None),
        placement(),
        &[],
        start,
    );
    let init = done.init_container_statuses.clone().unwrap_or_default();
    let proxy = init[1]
        .state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .expect("stopped");
    assert_eq!(proxy.finished_at, Some(Time(ts("2026-03-01T10:00:03Z"))));
    assert_eq!(done.phase.as_deref(), Some("Succeeded"));
}

#[test]
fn finished_pods_report_completed_or_failed_containers() {
    let start = ts("2026-03-01T10:00:00Z");
    let now = ts("2026-03-01T10:00:02Z");
    let ok = plan(&[], "Never");
    let status = render_status(
        POD,
        &ok,
        start,
        &state_at(&ok, s(2), None),
        placement(),
        &[],
        now,
    );
    assert_eq!(status.phase.as_deref(), Some("Succeeded"));
    assert_eq!(
        summary(&status),
        conds(&[
            ("PodReadyToStartContainers", "False", None),
            ("Initialized", "True", Some("PodCompleted")),
            ("Ready", "False", Some("PodCompleted")),
            ("ContainersReady", "False", Some("PodCompleted")),
            ("PodScheduled", "True", None),
        ])
    );
    let c = &status.container_statuses.clone().unwrap_or_default()[0];
    let t = c
        .state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    assert_eq!(t.started_at, Some(Time(start)));
    assert_eq!(t.finished_at, Some(Time(ts("2026-03-01T10:00:01Z"))));
    assert!(!c.ready);
    assert_eq!(c.started, Some(false));

    let bad = plan(&[(EXIT_CODE, "3")], "Never");
    let status = render_status(
        POD,
        &bad,
        start,
        &state_at(&bad, s(2), None),
        placement(),
        &[],
        now,
    );
    assert_eq!(status.phase.as_deref(), Some("Failed"));
    let c = &status.container_statuses.clone().unwrap_or_default()[0];
    let t = c
        .state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));
    assert_eq!(
        summary(&status)[2..4],
        conds(&[
            ("Ready", "False", Some("PodFailed")),
            ("ContainersReady", "False", Some("PodFailed")),
        ])
    );
}

#[test]
fn a_crash_looping_container_waits_with_its_last_exit() {
    let p = plan(&[(EXIT_CODE, "2")], "OnFailure");
    let start = ts("2026-03-01T10:00:00Z");
    let status = render_status(
        POD,
        &p,
        start,
        &state_at(&p, s(5), None),
        placement(),
        &[],
        start,
    );
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let c = &status.container_statuses.clone().unwrap_or_default()[0];
    let waiting = c
        .state
        .as_ref()
        .and_then(|s| s.waiting.clone())
        .expect("waiting");
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        waiting.message.as_deref(),
        Some("back-off 10s restarting failed container=web pod=web_default(u-1)")
    );
    let last = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.clone())
        .expect("last");
    assert_eq!((last.exit_code, last.reason.as_deref()), (2, Some("Error")));
    assert_eq!(c.restart_count, 1);
    assert!(!c.ready);
    let ready = status.conditions.clone().unwrap_or_default()[2].clone();
    assert_eq!(ready.reason.as_deref(), Some("ContainersNotReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("containers with unready status: [web]")
    );
    assert_eq!(go_seconds(s(80)), "1m20s");
    assert_eq!(go_seconds(s(300)), "5m0s");
}

#[test]
fn readiness_gates_hold_ready_back_until_their_conditions_are_true() {
    let mut p = plan(&[], "Always");
    p.readiness_gates = vec!["example.com/lb".into()];
    let start = ts("2026-03-01T10:00:00Z");
    let state = state_at(&p, s(1), None);
    let ready = |observed: &[PodCondition]| {
        render_status(POD, &p, start, &state, placement(), observed, start)
            .conditions
            .unwrap_or_default()[2]
            .clone()
    };
    let missing = ready(&[]);
    assert_eq!(
        (
            missing.status.as_str(),
            missing.reason.as_deref(),
            missing.message.as_deref()
        ),
        (
            "False",
            Some("ReadinessGatesNotReady"),
            Some(
                "corresponding condition of pod readiness gate \"example.com/lb\" does not exist."
            )
        )
    );
    let gate = |status: &str| PodCondition {
        type_: "example.com/lb".into(),
        status: status.into(),
        ..PodCondition::default()
    };
    assert_eq!(
        ready(&[gate("False")]).message.as_deref(),
        Some("the status of pod readiness gate \"example.com/lb\" is not \"True\", but False")
    );
    assert_eq!(ready(&[gate("True")]).status, "True");
}

/// A later report keeps the transition times of conditions whose status held, and its
/// fingerprint equals the one posted before (nothing to write); a change moves both.
#[test]
fn unchanged_statuses_have_one_fingerprint() {
    let p = plan(&[(RUN_FOR, "10s")], "Never");
    let start = ts("2026-03-01T10:00:00Z");
    let first = render_status(
        POD,
        &p,
        start,
        &state_at(&p, s(1), None),
        placement(),
        &[],
        start,
    );
    let later = ts("2026-03-01T10:00:05Z");
    let observed = first.conditions.clone().unwrap_or_default();
    let again = render_status(
        POD,
        &p,
        start,
        &state_at(&p, s(5), None),
        placement(),
        &observed,
        later,
    );
    assert_eq!(again.conditions, first.conditions);
    assert_eq!(fingerprint(Some(&again)), fingerprint(Some(&first)));

    // Round trip through the patch and the API's JSON: still the same.
    let patch = status_patch("u-1", &first);
    let read_back: PodStatus = serde_json::from_value(patch["status"].clone()).expect("a status");
    assert_eq!(fingerprint(Some(&read_back)), fingerprint(Some(&first)));

    // Another component's condition and the server's qosClass do not count.
    let mut theirs = read_back.clone();
    theirs.qos_class = Some("BestEffort".into());
    theirs
        .conditions
        .get_or_insert_with(Vec::new)
        .push(PodCondition {
            type_: "DisruptionTarget".into(),
            status: "True".into(),
            ..PodCondition::default()
        });
    assert_eq!(fingerprint(Some(&theirs)), fingerprint(Some(&first)));

    let done = render_status(
        POD,
        &p,
        start,
        &state_at(&p, s(10), None),
        placement(),
        &observed,
        later,
    );
    assert_ne!(fingerprint(Some(&done)), fingerprint(Some(&first)));
    let ready = done.conditions.clone().unwrap_or_default()[2].clone();
    assert_eq!(ready.last_transition_time, Some(Time(later)));
    assert_eq!(fingerprint(None), 0);
}

#[test]
fn the_patch_spells_out_missing_reasons_and_carries_the_uid() {
    let p = plan(&[], "Always");
    let start = ts("2026-03-01T10:00:00Z");
    let status = render_status(
        POD,
        &p,
        start,
        &state_at(&p, s(1), None),
        placement(),
        &[],
        start,
    );
    let patch = status_patch("u-1", &status);
    assert_eq!(patch["metadata"]["uid"], "u-1");
    let ready = &patch["status"]["conditions"][2];
    assert_eq!(ready["type"], "Ready");
    assert!(ready.get("reason").is_some_and(Value::is_null));
    assert!(ready.get("message").is_some_and(Value::is_null));
    assert_eq!(ready["lastTransitionTime"], "2026-03-01T10:00:00Z");
}

#[test]
fn images_are_normalized_as_the_runtime_reports_them() {
    for (image, want) in [
        ("nginx", "docker.io/library/nginx:latest"),
        ("nginx:1.25", "docker.io/library/nginx:1.25"),
        ("bitnami/redis:7", "docker.io/bitnami/redis:7"),
        ("registry.k8s.io/pause:3.10", "registry.k8s.io/pause:3.10"),
        ("localhost:5000/app", "localhost:5000/app:latest"),
        ("localhost/app:v1", "localhost/app:v1"),
        ("quay.io/a/b@sha256:abc", "quay.io/a/b@sha256:abc"),
    ] {
        assert_eq!(normalize_image(image), want, "{image}");
    }
    assert_eq!(image_id("quay.io/a/b@sha256:abc"), "quay.io/a/b@sha256:abc");
    let id = image_id("localhost:5000/app:v2");
    assert!(id.starts_with("localhost:5000/app@sha256:"), "{id}");
    assert_eq!(id.len(), "localhost:5000/app@sha256:".len() + 64);
    assert_eq!(
        image_id("nginx:1.25"),
        image_id("docker.io/library/nginx:1.25")
    );
}
