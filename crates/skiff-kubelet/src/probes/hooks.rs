//! Lifecycle hooks: postStart and preStop handlers (upstream's
//! `pkg/kubelet/lifecycle/handlers.go`, and their callers in `kuberuntime_container.go`:
//! `startContainer` step 4 and `executePreStopHook`).
//!
//! Handlers: exec (in the container through the runtime's `exec_sync`), httpGet (any
//! response counts, as upstream: only a request error fails it; user agent
//! `kube-lifecycle/<major.minor>`), sleep (`sleep.seconds`). tcpSocket is accepted by the
//! API for old manifests but is no handler: it fails with upstream's "Cannot run handler".
//! This module does not kill containers: [`post_start`] says what the pod worker must do.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use skiff_runtime::cri::PodRuntime;

use super::exec::combined_output;
use super::http::{Client, ProbeRequest};
use super::RecordedEvent;

/// How long an exec hook may run when nothing else bounds it (upstream passes no
/// timeout; the preStop grace period still bounds preStop).
pub const EXEC_HOOK_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Upstream's `ErrPostStartHook`: the waiting reason of a container whose postStart failed.
pub const POST_START_HOOK_ERROR: &str = "PostStartHookError";

/// The least grace a container gets after its preStop hook (upstream's
/// `minimumGracePeriodInSeconds`).
pub const MINIMUM_GRACE_SECONDS: i64 = 2;

/// A handler that failed: upstream's message (for logs and the waiting message; events
/// never carry it, so that secrets do not leak).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub message: String,
}

/// `name_namespace(uid)`, upstream's `format.Pod`.
pub fn format_pod(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    )
}

/// Runs `handler` for the container (upstream's `handlerRunner.Run`).
pub async fn run_handler(
    runtime: &dyn PodRuntime,
    pod: &Pod,
    container: &Container,
    container_id: &str,
    pod_ip: Option<IpAddr>,
    handler: &LifecycleHandler,
) -> Result<(), HandlerError> {
    let who = format!(
        "for Container {:?} in Pod {:?}",
        container.name,
        format_pod(pod)
    );
    if let Some(e) = &handler.exec {
        let cmd = e.command.clone().unwrap_or_default();
        let fail = |err: String, output: String| HandlerError {
            message: format!(
                "Exec lifecycle hook ([{}]) {who} failed - error: {err}, message: {output:?}",
                cmd.join(" ")
            ),
        };
        return match runtime
            .exec_sync(container_id, &cmd, EXEC_HOOK_TIMEOUT)
            .await
        {
            Err(e) => Err(fail(e.to_string(), String::new())),
            Ok(out) if out.timed_out => Err(fail(
                format!("command {:?} timed out", cmd.join(" ")),
                combined_output(&out),
            )),
            Ok(out) if out.exit_code != 0 => Err(fail(
                format!(
                    "command '{}' exited with {}: {}",
                    cmd.join(" "),
                    out.exit_code,
                    String::from_utf8_lossy(&out.stderr)
                ),
                combined_output(&out),
            )),
            Ok(_) => Ok(()),
        };
    }
    if let Some(h) = &handler.http_get {
        let path = h.path.clone().unwrap_or_default();
        let fail = |err: String| HandlerError {
            message: format!("HTTP lifecycle hook ({path}) {who} failed - error: {err}"),
        };
        let req = ProbeRequest::from_action(h, container, pod_ip, "lifecycle")
            .map_err(|e| fail(e.to_string()))?;
        return Client::new()
            .hook(&req, EXEC_HOOK_TIMEOUT)
            .await
            .map_err(|e| fail(e.to_string()));
    }
    if let Some(s) = &handler.sleep {
        let secs = u64::try_from(s.seconds).unwrap_or(0);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        return Ok(());
    }
    Err(HandlerError {
        message: format!("Cannot run handler: invalid handler: {handler:?}"),
    })
}

/// What the pod worker does when a container's postStart hook failed: record `event`,
/// kill the container with `kill_message` as its `Killing` event, and report the
/// container waiting with `reason` and `message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostStartFailure {
    pub event: RecordedEvent,
    pub kill_message: &'static str,
    pub reason: &'static str,
    pub message: String,
}

impl std::fmt::Display for PostStartFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

/// Runs the container's postStart hook, if it has one.
pub async fn post_start(
    runtime: &dyn PodRuntime,
    pod: &Pod,
    container: &Container,
    container_id: &str,
    pod_ip: Option<IpAddr>,
) -> Result<(), PostStartFailure> {
    let Some(h) = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.post_start.as_ref())
    else {
        return Ok(());
    };
    run_handler(runtime, pod, container, container_id, pod_ip, h)
        .await
        .map_err(|e| PostStartFailure {
            event: RecordedEvent {
                type_: "Warning",
                reason: "FailedPostStartHook",
                message: "PostStartHook failed".into(),
            },
            kill_message: "FailedPostStartHook",
            reason: POST_START_HOOK_ERROR,
            message: e.message,
        })
}

/// What a preStop hook run came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreStopOutcome {
    /// How long it ran (at most the grace period).
    pub elapsed: Duration,
    /// `FailedPreStopHook` when it failed within the grace period.
    pub event: Option<RecordedEvent>,
    /// The hook was still running when the grace period ended.
    pub timed_out: bool,
}

/// Runs the container's preStop hook bounded by `grace` (upstream's
/// `executePreStopHook`); `None` when it has none or the grace period is zero.
pub async fn pre_stop(
    runtime: &dyn PodRuntime,
    pod: &Pod,
    container: &Container,
    container_id: &str,
    pod_ip: Option<IpAddr>,
    grace: Duration,
) -> Option<PreStopOutcome> {
    let h = container
        .lifecycle
        .as_ref()
        .and_then(|l| l.pre_stop.as_ref())?;
    if grace.is_zero() {
        return None;
    }
    let start = Instant::now();
    let run = run_handler(runtime, pod, container, container_id, pod_ip, h);
    let (event, timed_out) = match tokio::time::timeout(grace, run).await {
        Ok(Ok(())) => (None, false),
        Ok(Err(e)) => {
            tracing::warn!(pod = %format_pod(pod), container = %container.name, error = %e, "PreStop hook failed");
            (
                Some(RecordedEvent {
                    type_: "Warning",
                    reason: "FailedPreStopHook",
                    message: "PreStopHook failed".into(),
                }),
                false,
            )
        }
        Err(_) => (None, true),
    };
    Some(PreStopOutcome {
        elapsed: start.elapsed(),
        event,
        timed_out,
    })
}

/// The grace left for SIGTERM after a preStop hook ran `elapsed`, never below
/// [`MINIMUM_GRACE_SECONDS`] (upstream's `killContainer`).
pub fn remaining_grace(grace_seconds: i64, elapsed: Duration) -> i64 {
    let used = i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX);
    grace_seconds
        .saturating_sub(used)
        .max(MINIMUM_GRACE_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_after_pre_stop() {
        assert_eq!(remaining_grace(30, Duration::from_secs(10)), 20);
        assert_eq!(remaining_grace(30, Duration::from_millis(10_999)), 20);
        assert_eq!(remaining_grace(5, Duration::from_secs(10)), 2);
        assert_eq!(remaining_grace(0, Duration::ZERO), 2);
    }

    #[test]
    fn pod_format() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("default".into());
        pod.metadata.uid = Some("u1".into());
        assert_eq!(format_pod(&pod), "web_default(u1)");
    }
}
