//! The runtime's records of a pod turned into what the pure core reads: container
//! instances as [`ObservedContainer`]s and the sandbox as a [`SandboxView`] (upstream's
//! `kubecontainer.PodStatus` made by `GetPodStatus`).

use k8s_openapi::jiff::Timestamp;
use skiff_runtime::cri::{ContainerInfo, ContainerState};

use super::actions::{PodView, SandboxView};
use crate::pods::status::{ObservedContainer, ObservedState};

/// The label a container's kind is recorded under (`init`, `app`).
pub const KIND_LABEL: &str = "skiff.dev/container-kind";
/// The label holding the termination message path inside the container.
pub const TERMINATION_MESSAGE_PATH_LABEL: &str = "skiff.dev/termination-message-path";
/// The label holding the container's `terminationMessagePolicy` (`File`,
/// `FallbackToLogsOnError`).
pub const TERMINATION_MESSAGE_POLICY_LABEL: &str = "skiff.dev/termination-message-policy";

/// The most of a termination message file that is read (upstream's
/// `MaxContainerTerminationMessageLength`).
pub const MAX_TERMINATION_MESSAGE: usize = 4 * 1024;
/// `FallbackToLogsOnError`: the log's last lines and bytes taken (upstream's
/// `MaxContainerTerminationMessageLogLines` and `...LogLength`).
pub const FALLBACK_LOG_LINES: usize = 80;
pub const FALLBACK_LOG_BYTES: usize = 2 * 1024;

/// The termination message of an exited container, as upstream's `getTerminationMessage`:
/// the file behind its `terminationMessagePath` (`file`, at most 4 KiB); when that is empty,
/// the policy is `FallbackToLogsOnError` and the container failed, the end of its log.
pub fn termination_message(info: &ContainerInfo, file: &std::path::Path) -> Option<String> {
    use std::io::Read;
    let ContainerState::Exited { exit_code, .. } = &info.state else {
        return None;
    };
    let mut message = Vec::new();
    if let Ok(f) = std::fs::File::open(file) {
        let _ = f
            .take(MAX_TERMINATION_MESSAGE as u64)
            .read_to_end(&mut message);
    }
    let fallback = info
        .meta
        .labels
        .get(TERMINATION_MESSAGE_POLICY_LABEL)
        .is_some_and(|p| p == "FallbackToLogsOnError");
    if message.is_empty() && fallback && *exit_code != 0 {
        let opts = skiff_runtime::container::logs::Options {
            tail: Some(FALLBACK_LOG_LINES),
            ..Default::default()
        };
        let mut tail = Vec::new();
        if skiff_runtime::container::logs::read(&info.meta.log_path, &opts, &mut tail).is_ok() {
            let start = tail.len().saturating_sub(FALLBACK_LOG_BYTES);
            message = tail.split_off(start);
        }
    }
    (!message.is_empty()).then(|| String::from_utf8_lossy(&message).into_owned())
}

fn ts(s: &str) -> Option<Timestamp> {
    s.parse().ok()
}

/// One runtime container as an observed instance. Timestamps the runtime could not give
/// (a lost monitor) fall back to `now`.
pub fn observe(info: &ContainerInfo, now: Timestamp) -> ObservedContainer {
    let created = ts(&info.created_at).unwrap_or(now);
    let mut o = ObservedContainer {
        name: info.meta.name.clone(),
        id: info.id.clone(),
        state: ObservedState::Unknown,
        created_at: created,
        started_at: None,
        finished_at: None,
        exit_code: 0,
        oom_killed: false,
        start_error: None,
        message: None,
        restart_count: i32::try_from(info.meta.attempt).unwrap_or(i32::MAX),
        image: info.meta.image.clone(),
        image_id: info.meta.image_ref.clone(),
    };
    match &info.state {
        ContainerState::Created => o.state = ObservedState::Created,
        ContainerState::Running { started_at, .. } => {
            o.state = ObservedState::Running;
            o.started_at = ts(started_at).or(Some(created));
        }
        ContainerState::Exited {
            started_at,
            finished_at,
            exit_code,
            oom_killed,
        } => {
            o.state = ObservedState::Exited;
            o.started_at = ts(started_at);
            o.finished_at = ts(finished_at).or(Some(now));
            o.exit_code = *exit_code;
            o.oom_killed = *oom_killed;
        }
        ContainerState::Unknown { .. } => o.state = ObservedState::Unknown,
    }
    o
}

/// The view of pod `uid` from the runtime's lists.
pub fn pod_view(
    uid: &str,
    sandboxes: &[(String, bool, String)],
    containers: &[ContainerInfo],
    now: Timestamp,
) -> PodView {
    let sandbox = sandboxes
        .iter()
        .filter(|(_, _, pod_uid)| pod_uid == uid)
        .max_by_key(|(_, ready, _)| *ready)
        .map(|(id, ready, _)| SandboxView {
            id: id.clone(),
            ready: *ready,
        });
    let containers = containers
        .iter()
        .filter(|c| c.meta.pod_uid == uid)
        .map(|c| observe(c, now))
        .collect();
    PodView {
        sandbox,
        containers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_runtime::cri::ContainerMeta;

    fn exited(code: i32) -> ContainerState {
        ContainerState::Exited {
            started_at: "2026-12-07T10:00:01Z".into(),
            finished_at: "2026-12-07T10:00:02Z".into(),
            exit_code: code,
            oom_killed: false,
        }
    }

    #[test]
    fn termination_messages_come_from_the_file_then_the_log_as_upstream() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("term");
        let log = dir.path().join("0.log");
        let mut lines = String::new();
        for i in 0..100 {
            lines.push_str(&format!(
                "2026-12-07T10:00:01.000000000Z stderr F line {i}\n"
            ));
        }
        std::fs::write(&log, lines).expect("log");
        let mut c = info(exited(2), 0);
        c.meta.log_path = log.clone();
        // No file, policy File: nothing.
        assert_eq!(termination_message(&c, &file), None);
        // The file, capped at 4 KiB.
        std::fs::write(&file, "x".repeat(5000)).expect("file");
        assert_eq!(
            termination_message(&c, &file).map(|m| m.len()),
            Some(MAX_TERMINATION_MESSAGE)
        );
        // FallbackToLogsOnError with an empty file and a failure: the log's last 80 lines.
        std::fs::write(&file, "").expect("file");
        c.meta.labels.insert(
            TERMINATION_MESSAGE_POLICY_LABEL.into(),
            "FallbackToLogsOnError".into(),
        );
        let m = termination_message(&c, &file).expect("fallback");
        assert!(
            m.starts_with("line 20\n") && m.ends_with("line 99\n"),
            "{m}"
        );
        // ... never for a success, nor for a running container.
        c.state = exited(0);
        assert_eq!(termination_message(&c, &file), None);
        c.state = ContainerState::Running {
            started_at: "2026-12-07T10:00:01Z".into(),
            pid: 1,
        };
        assert_eq!(termination_message(&c, &file), None);
        // A message the process wrote wins over the log.
        std::fs::write(&file, "bye").expect("file");
        c.state = exited(1);
        assert_eq!(termination_message(&c, &file).as_deref(), Some("bye"));
    }

    fn info(state: ContainerState, attempt: u32) -> ContainerInfo {
        ContainerInfo {
            id: format!("c{attempt}"),
            meta: ContainerMeta {
                pod_uid: "u1".into(),
                name: "app".into(),
                attempt,
                image: "busybox".into(),
                image_ref: "docker.io/library/busybox@sha256:ab".into(),
                ..Default::default()
            },
            created_at: "2026-12-07T10:00:00Z".into(),
            state,
        }
    }

    #[test]
    fn runtime_states_map_to_observed_states() {
        let now: Timestamp = "2026-12-07T10:05:00Z".parse().unwrap();
        let o = observe(
            &info(
                ContainerState::Exited {
                    started_at: "2026-12-07T10:00:01Z".into(),
                    finished_at: "2026-12-07T10:00:02Z".into(),
                    exit_code: 137,
                    oom_killed: true,
                },
                2,
            ),
            now,
        );
        assert_eq!(o.state, ObservedState::Exited);
        assert_eq!((o.exit_code, o.oom_killed, o.restart_count), (137, true, 2));
        assert_eq!(o.terminated_reason(), "OOMKilled");
        assert_eq!(o.image_id, "docker.io/library/busybox@sha256:ab");
        let r = observe(
            &info(
                ContainerState::Running {
                    started_at: "2026-12-07T10:00:01Z".into(),
                    pid: 5,
                },
                0,
            ),
            now,
        );
        assert_eq!(r.state, ObservedState::Running);
        assert!(r.started_at.is_some());
        let c = observe(&info(ContainerState::Created, 0), now);
        assert_eq!(c.state, ObservedState::Created);
    }

    #[test]
    fn a_pod_view_keeps_only_its_own_and_prefers_a_ready_sandbox() {
        let now: Timestamp = "2026-12-07T10:05:00Z".parse().unwrap();
        let mut other = info(ContainerState::Created, 0);
        other.meta.pod_uid = "u2".into();
        let v = pod_view(
            "u1",
            &[
                ("old".into(), false, "u1".into()),
                ("new".into(), true, "u1".into()),
                ("x".into(), true, "u2".into()),
            ],
            &[info(ContainerState::Created, 0), other],
            now,
        );
        assert_eq!(v.sandbox.map(|s| s.id), Some("new".into()));
        assert_eq!(v.containers.len(), 1);
    }
}
