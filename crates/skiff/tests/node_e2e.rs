//! End to end, as root, on `skiff server` with its own real node (runc, the CNI bridge,
//! the demo image built from busybox-static): the pod lifecycle's faults and features as a
//! user meets them — OOMKilled, a command missing from the image, an image that does not
//! exist, a volume's ConfigMap that appears later and changes while mounted, an emptyDir
//! shared by two containers, init containers and a sidecar, liveness restarts, graceful
//! termination, 100 pods created and deleted leaving nothing behind, an image pulled from a
//! local docker-registry, a pod with `shareProcessNamespace` (one PID namespace whose PID 1
//! is the sandbox's `/pause` holder), and a restart of the server
//! that leaves running containers alone.
//!
//! One test per binary (the node uses the host's `cni0` bridge and pod range); the
//! scenarios run one after the other on one cluster, each in its own namespace, and every
//! failure is reported at the end.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::realnode::{run_cleanly, skip_reason};
use common::{wait_for, Cluster};
use k8s_openapi::api::core::v1::{ContainerStatus, Event, Pod};
use kube::api::{Api, DeleteParams, ListParams};

const IMAGE: &str = "docker.io/skiff/demo-web:v1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_lifecycle_on_a_real_node() -> Result<()> {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    run_cleanly(|data| async move { scenarios(&data).await }).await
}

async fn scenarios(data: &Path) -> Result<()> {
    let registry = Registry::start(data)?;
    std::fs::create_dir_all(data.join("agent"))?;
    std::fs::write(
        data.join("agent/registries.yaml"),
        format!(
            "mirrors:\n  \"{host}\":\n    endpoint:\n      - \"http://{host}\"\n",
            host = registry.host()
        ),
    )?;
    let c = common::realnode::start(data, "fault-node").await?;
    registry.push(&data.join("agent/images/demo-web.tar"), "demo/web:v2")?;

    let mut failures = Vec::new();
    // `SKIFF_E2E_ONLY=oom_killed,liveness_restarts` runs just those (when debugging).
    let only = std::env::var("SKIFF_E2E_ONLY").ok();
    let wanted = |name: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|n| n == name))
    };
    macro_rules! scenario {
        ($name:ident) => {
            let started = Instant::now();
            if !wanted(stringify!($name)) {
            } else {
                match $name(&c, stringify!($name).replace('_', "-").as_str()).await {
                    Ok(()) => eprintln!("{}: ok ({:?})", stringify!($name), started.elapsed()),
                    Err(e) => {
                        eprintln!("{}: FAILED: {e:#}", stringify!($name));
                        failures.push(format!("{}: {e:#}", stringify!($name)));
                    }
                }
            }
        };
    }
    scenario!(oom_killed);
    scenario!(missing_command);
    scenario!(missing_image);
    scenario!(configmap_later_then_updated);
    scenario!(emptydir_shared_init_and_sidecar);
    scenario!(liveness_restarts);
    scenario!(graceful_termination);
    scenario!(termination_messages);
    if wanted("localhost_seccomp") {
        match localhost_seccomp(&c, "localhost-seccomp", &data.join("agent/seccomp")).await {
            Ok(()) => eprintln!("localhost_seccomp: ok"),
            Err(e) => {
                eprintln!("localhost_seccomp: FAILED: {e:#}");
                failures.push(format!("localhost_seccomp: {e:#}"));
            }
        }
    }
    if wanted("shared_process_namespace") {
        match shared_process_namespace(&c, "shared-pid", data).await {
            Ok(()) => eprintln!("shared_process_namespace: ok"),
            Err(e) => {
                eprintln!("shared_process_namespace: FAILED: {e:#}");
                failures.push(format!("shared_process_namespace: {e:#}"));
            }
        }
    }
    if wanted("hundred_pods_leave_nothing") {
        match hundred_pods_leave_nothing(&c, "hundred", data).await {
            Ok(()) => eprintln!("hundred_pods_leave_nothing: ok"),
            Err(e) => {
                eprintln!("hundred_pods_leave_nothing: FAILED: {e:#}");
                failures.push(format!("hundred_pods_leave_nothing: {e:#}"));
            }
        }
    }
    if wanted("pulled_from_registry") {
        match pulled_from_registry(&c, "registry-pull", &registry.host()).await {
            Ok(()) => eprintln!("pulled_from_registry: ok"),
            Err(e) => {
                eprintln!("pulled_from_registry: FAILED: {e:#}");
                failures.push(format!("pulled_from_registry: {e:#}"));
            }
        }
    }
    if wanted("restart_keeps_containers") {
        match restart_keeps_containers(c, data, "restart").await {
            Ok(_) => eprintln!("restart_keeps_containers: ok"),
            Err(e) => {
                eprintln!("restart_keeps_containers: FAILED: {e:#}");
                failures.push(format!("restart_keeps_containers: {e:#}"));
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} scenario(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    Ok(())
}

/// Applies `yaml` in a new namespace `ns`.
fn apply(c: &Cluster, ns: &str, yaml: &str) -> Result<()> {
    c.kubectl(&["create", "namespace", ns])?;
    c.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(yaml))?;
    Ok(())
}

fn statuses(p: &Pod) -> Vec<ContainerStatus> {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default()
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Waits until `check` accepts pod `ns/name`.
async fn wait_pod<T>(
    c: &Cluster,
    ns: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Pod) -> Option<T>,
) -> Result<T> {
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    let check = &check;
    wait_for(what, timeout, || {
        let pods = pods.clone();
        async move {
            let p = pods.get(name).await?;
            Ok(check(&p))
        }
    })
    .await
    .with_context(|| {
        let out = c
            .kubectl(&["get", "pod", "-n", ns, name, "-o", "json"])
            .unwrap_or_default();
        format!("pod {ns}/{name}: {out}")
    })
}

/// `kubectl exec` in pod `ns/name`; stdout on success.
fn exec(c: &Cluster, ns: &str, pod: &str, container: &str, cmd: &[&str]) -> Result<String> {
    let mut args = vec!["exec", "-n", ns, pod, "-c", container, "--"];
    args.extend_from_slice(cmd);
    c.kubectl(&args)
}

async fn events_of(c: &Cluster, ns: &str, pod: &str) -> Result<Vec<Event>> {
    let events: Api<Event> = Api::namespaced(c.client.clone(), ns);
    Ok(events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(pod))
        .collect())
}

fn pod_yaml(name: &str, body: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{body}")
}

/// A memory limit below what the process uses: OOMKilled, exit 137.
async fn oom_killed(c: &Cluster, ns: &str) -> Result<()> {
    apply(
        c,
        ns,
        &pod_yaml(
            "hog",
            &format!(
                "  restartPolicy: Never\n  containers:\n  - name: hog\n    image: {IMAGE}\n    \
                 command: [\"sh\", \"-c\", \"x=$(cat /dev/urandom)\"]\n    resources:\n      \
                 limits: {{memory: 16Mi}}\n"
            ),
        ),
    )?;
    let (reason, code) = wait_pod(
        c,
        ns,
        "hog",
        "the container OOMKilled",
        Duration::from_secs(60),
        |p| {
            let s = statuses(p).into_iter().next()?;
            let t = s.state?.terminated?;
            Some((t.reason.unwrap_or_default(), t.exit_code))
        },
    )
    .await?;
    if (reason.as_str(), code) != ("OOMKilled", 137) {
        bail!("terminated with {reason} {code}, not OOMKilled 137");
    }
    wait_pod(c, ns, "hog", "phase Failed", Duration::from_secs(20), |p| {
        (phase(p) == "Failed").then_some(())
    })
    .await
}

/// A command the image does not have: StartError (128) then CrashLoopBackOff.
async fn missing_command(c: &Cluster, ns: &str) -> Result<()> {
    apply(
        c,
        ns,
        &pod_yaml(
            "nocmd",
            &format!("  containers:\n  - name: app\n    image: {IMAGE}\n    command: [\"/no/such/binary\"]\n"),
        ),
    )?;
    let (last, waiting) = wait_pod(
        c,
        ns,
        "nocmd",
        "StartError then CrashLoopBackOff",
        Duration::from_secs(60),
        |p| {
            let s = statuses(p).into_iter().next()?;
            let last = s.last_state?.terminated?;
            let waiting = s.state?.waiting?;
            (waiting.reason.as_deref() == Some("CrashLoopBackOff")).then_some((last, waiting))
        },
    )
    .await?;
    if last.reason.as_deref() != Some("StartError") || last.exit_code != 128 {
        bail!("last state {last:?}, not StartError 128");
    }
    let message = last.message.unwrap_or_default();
    if !message.contains("/no/such/binary") {
        bail!("the StartError message does not name the command: {message:?}");
    }
    let wmsg = waiting.message.unwrap_or_default();
    if !wmsg.starts_with("back-off 10s restarting failed container=app pod=nocmd_") {
        bail!("CrashLoopBackOff message {wmsg:?}");
    }
    Ok(())
}

/// An image no registry has: ErrImagePull, then ImagePullBackOff; a Failed event.
async fn missing_image(c: &Cluster, ns: &str) -> Result<()> {
    apply(
        c,
        ns,
        &pod_yaml(
            "noimage",
            "  containers:\n  - name: app\n    image: 127.0.0.1:1/none/such:v9\n",
        ),
    )?;
    // The status says ErrImagePull only until the next sync: the events keep both.
    wait_pod(
        c,
        ns,
        "noimage",
        "ImagePullBackOff",
        Duration::from_secs(60),
        |p| {
            let waiting = statuses(p).into_iter().next()?.state?.waiting?;
            let message = waiting.message.unwrap_or_default();
            (waiting.reason.as_deref() == Some("ImagePullBackOff")
                && message.starts_with("Back-off pulling image \"127.0.0.1:1/none/such:v9\""))
            .then_some(())
        },
    )
    .await?;
    let wanted = [
        (
            "Failed",
            "Failed to pull image \"127.0.0.1:1/none/such:v9\"",
        ),
        ("Failed", "Error: ErrImagePull"),
        (
            "BackOff",
            "Back-off pulling image \"127.0.0.1:1/none/such:v9\"",
        ),
        ("Failed", "Error: ImagePullBackOff"),
    ];
    wait_for(
        "upstream's image pull events",
        Duration::from_secs(30),
        || async {
            let events = events_of(c, ns, "noimage").await?;
            let missing: Vec<_> = wanted
                .iter()
                .filter(|(reason, message)| {
                    !events.iter().any(|e| {
                        e.reason.as_deref() == Some(*reason)
                            && e.message.as_deref().is_some_and(|m| m.starts_with(message))
                    })
                })
                .collect();
            if missing.is_empty() {
                Ok(Some(()))
            } else {
                let seen: Vec<_> = events.iter().map(|e| (&e.reason, &e.message)).collect();
                bail!("missing {missing:?}; seen {seen:?}")
            }
        },
    )
    .await
}

/// A configMap volume whose ConfigMap does not exist yet: ContainerCreating with
/// FailedMount; it starts once the ConfigMap exists; a change reaches the mounted file.
async fn configmap_later_then_updated(c: &Cluster, ns: &str) -> Result<()> {
    apply(
        c,
        ns,
        &pod_yaml(
            "cm",
            &format!(
                "  containers:\n  - name: app\n    image: {IMAGE}\n    command: [\"sleep\", \"3600\"]\n    \
                 volumeMounts:\n    - name: conf\n      mountPath: /etc/conf\n  volumes:\n  \
                 - name: conf\n    configMap:\n      name: later\n"
            ),
        ),
    )?;
    wait_for("a FailedMount event", Duration::from_secs(60), || async {
        let events = events_of(c, ns, "cm").await?;
        Ok(events
            .iter()
            .any(|e| e.reason.as_deref() == Some("FailedMount"))
            .then_some(()))
    })
    .await?;
    wait_pod(
        c,
        ns,
        "cm",
        "Pending in ContainerCreating",
        Duration::from_secs(20),
        |p| {
            let waiting = statuses(p).into_iter().next()?.state?.waiting?.reason;
            (phase(p) == "Pending" && waiting.as_deref() == Some("ContainerCreating")).then_some(())
        },
    )
    .await?;
    c.kubectl(&[
        "create",
        "configmap",
        "later",
        "-n",
        ns,
        "--from-literal=greeting=hello",
    ])?;
    wait_pod(
        c,
        ns,
        "cm",
        "Running once the ConfigMap exists",
        Duration::from_secs(90),
        |p| (phase(p) == "Running").then_some(()),
    )
    .await?;
    let first = exec(c, ns, "cm", "app", &["cat", "/etc/conf/greeting"])?;
    if first != "hello" {
        bail!("the mounted file says {first:?}");
    }
    c.kubectl_stdin(
        &["apply", "-n", ns, "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: later\ndata:\n  greeting: changed\n"),
    )?;
    wait_for(
        "the change in the mounted file",
        Duration::from_secs(90),
        || async {
            let now = exec(c, ns, "cm", "app", &["cat", "/etc/conf/greeting"])?;
            Ok((now == "changed").then_some(()))
        },
    )
    .await
}

/// Init containers run in order before the app; a sidecar (restartPolicy Always init
/// container) runs beside it; an emptyDir is shared by all of them.
async fn emptydir_shared_init_and_sidecar(c: &Cluster, ns: &str) -> Result<()> {
    apply(
        c,
        ns,
        &pod_yaml(
            "shared",
            &format!(
                "  initContainers:\n  \
                 - name: first\n    image: {IMAGE}\n    command: [\"sh\", \"-c\", \"echo first >> /data/order\"]\n    \
                 volumeMounts: [{{name: data, mountPath: /data}}]\n  \
                 - name: second\n    image: {IMAGE}\n    command: [\"sh\", \"-c\", \"echo second >> /data/order\"]\n    \
                 volumeMounts: [{{name: data, mountPath: /data}}]\n  \
                 - name: sidecar\n    image: {IMAGE}\n    restartPolicy: Always\n    \
                 command: [\"sh\", \"-c\", \"echo sidecar >> /data/order; exec sleep 3600\"]\n    \
                 volumeMounts: [{{name: data, mountPath: /data}}]\n  \
                 containers:\n  - name: writer\n    image: {IMAGE}\n    \
                 command: [\"sh\", \"-c\", \"echo from-writer > /data/shared; exec sleep 3600\"]\n    \
                 volumeMounts: [{{name: data, mountPath: /data}}]\n  \
                 - name: reader\n    image: {IMAGE}\n    command: [\"sleep\", \"3600\"]\n    \
                 volumeMounts: [{{name: data, mountPath: /data}}]\n  \
                 volumes:\n  - name: data\n    emptyDir: {{}}\n"
            ),
        ),
    )?;
    wait_pod(
        c,
        ns,
        "shared",
        "Running and Ready",
        Duration::from_secs(90),
        |p| {
            let ready = p
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            (phase(p) == "Running" && ready).then_some(())
        },
    )
    .await?;
    let order = exec(c, ns, "shared", "reader", &["cat", "/data/order"])?;
    if order != "first\nsecond\nsidecar\n" {
        bail!("init order {order:?}");
    }
    let shared = wait_for("the writer's file", Duration::from_secs(10), || async {
        let s = exec(c, ns, "shared", "reader", &["cat", "/data/shared"]).unwrap_or_default();
        Ok((!s.is_empty()).then_some(s))
    })
    .await?;
    if shared != "from-writer\n" {
        bail!("the reader sees {shared:?}");
    }
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    let p = pods.get("shared").await?;
    let init = p
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.clone())
        .unwrap_or_default();
    let sidecar = init.iter().find(|s| s.name == "sidecar");
    if !sidecar.is_some_and(|s| {
        s.started == Some(true) && s.state.as_ref().is_some_and(|st| st.running.is_some())
    }) {
        bail!("the sidecar's status: {sidecar:?}");
    }
    for name in ["first", "second"] {
        let done = init
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.state.clone()?.terminated);
        if !done
            .as_ref()
            .is_some_and(|t| t.exit_code == 0 && t.reason.as_deref() == Some("Completed"))
        {
            bail!("init container {name}: {done:?}");
        }
    }
    Ok(())
}

/// A failing liveness probe restarts the container; restartCount counts it.
async fn liveness_restarts(c: &Cluster, ns: &str) -> Result<()> {
    apply(
        c,
        ns,
        &pod_yaml(
            "live",
            &format!(
                "  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    image: {IMAGE}\n    \
                 command: [\"sh\", \"-c\", \"echo instance-$(cat /proc/sys/kernel/random/uuid); touch /tmp/healthy; exec sleep 3600\"]\n    \
                 livenessProbe:\n      exec: {{command: [\"cat\", \"/tmp/healthy\"]}}\n      \
                 periodSeconds: 1\n      failureThreshold: 1\n"
            ),
        ),
    )?;
    wait_pod(c, ns, "live", "Running", Duration::from_secs(60), |p| {
        (phase(p) == "Running").then_some(())
    })
    .await?;
    exec(c, ns, "live", "app", &["rm", "/tmp/healthy"])?;
    let (count, last) = wait_pod(
        c,
        ns,
        "live",
        "a liveness restart",
        Duration::from_secs(60),
        |p| {
            let s = statuses(p).into_iter().next()?;
            let running = s.state.as_ref()?.running.is_some();
            (s.restart_count >= 1 && running).then_some((s.restart_count, s.last_state))
        },
    )
    .await?;
    let last = last.and_then(|l| l.terminated);
    if count != 1 || last.as_ref().map(|t| t.exit_code) != Some(137) {
        bail!("restartCount {count}, last state {last:?}");
    }
    // `kubectl logs --previous`: the killed instance's log, not the current one's.
    let previous = c.kubectl(&["logs", "-n", ns, "live", "--previous"])?;
    let current = wait_for(
        "the new instance's log",
        Duration::from_secs(10),
        || async {
            let out = c.kubectl(&["logs", "-n", ns, "live"])?;
            Ok((!out.is_empty()).then_some(out))
        },
    )
    .await?;
    if !previous.starts_with("instance-") || previous == current {
        bail!("logs --previous {previous:?}, current {current:?}");
    }
    let events = events_of(c, ns, "live").await?;
    let unhealthy = events
        .iter()
        .any(|e| e.reason.as_deref() == Some("Unhealthy"));
    let killing = events.iter().any(|e| {
        e.reason.as_deref() == Some("Killing")
            && e.message
                .as_deref()
                .is_some_and(|m| m.contains("failed liveness probe"))
    });
    if !(unhealthy && killing) {
        bail!(
            "events: {:?}",
            events
                .iter()
                .map(|e| (&e.reason, &e.message))
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// A container that ignores SIGTERM is killed at the end of its grace period, not before;
/// one that exits on SIGTERM goes at once.
async fn graceful_termination(c: &Cluster, ns: &str) -> Result<()> {
    apply(
        c,
        ns,
        &format!(
            "{}---\n{}",
            pod_yaml(
                "stubborn",
                &format!(
                    "  terminationGracePeriodSeconds: 3\n  containers:\n  - name: app\n    image: {IMAGE}\n    \
                     command: [\"sh\", \"-c\", \"trap '' TERM; while true; do sleep 1; done\"]\n"
                ),
            ),
            pod_yaml(
                "polite",
                &format!(
                    "  terminationGracePeriodSeconds: 30\n  containers:\n  - name: app\n    image: {IMAGE}\n    \
                     command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\n"
                ),
            )
        ),
    )?;
    for name in ["stubborn", "polite"] {
        wait_pod(c, ns, name, "Running", Duration::from_secs(60), |p| {
            (phase(p) == "Running").then_some(())
        })
        .await?;
    }
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    let gone = |name: &'static str| {
        let pods = pods.clone();
        async move {
            let started = Instant::now();
            pods.delete(name, &DeleteParams::default()).await?;
            wait_for("the pod gone", Duration::from_secs(60), || {
                let pods = pods.clone();
                async move { Ok(pods.get_opt(name).await?.is_none().then_some(())) }
            })
            .await?;
            anyhow::Ok(started.elapsed())
        }
    };
    let stubborn = gone("stubborn").await?;
    let polite = gone("polite").await?;
    // Semantics, not speed: SIGKILL comes no earlier than the grace period, and a process
    // that exits on SIGTERM is not kept for its 30 s.
    if stubborn < Duration::from_secs(3) {
        bail!("the SIGTERM-ignoring pod went after {stubborn:?}, before its 3 s grace period");
    }
    if polite >= Duration::from_secs(25) {
        bail!("the SIGTERM-honouring pod took {polite:?}: it was held for its grace period");
    }
    Ok(())
}

/// A container's termination message: what it wrote to its terminationMessagePath, or
/// with FallbackToLogsOnError and a failure, the end of its log.
async fn termination_messages(c: &Cluster, ns: &str) -> Result<()> {
    apply(
        c,
        ns,
        &pod_yaml(
            "last-words",
            &format!(
                "  restartPolicy: Never\n  containers:\n  \
                 - name: file\n    image: {IMAGE}\n    \
                 command: [\"sh\", \"-c\", \"echo written-message > /dev/termination-log; exit 3\"]\n  \
                 - name: custom\n    image: {IMAGE}\n    terminationMessagePath: /tmp/why\n    \
                 command: [\"sh\", \"-c\", \"echo elsewhere > /tmp/why\"]\n  \
                 - name: logs\n    image: {IMAGE}\n    terminationMessagePolicy: FallbackToLogsOnError\n    \
                 command: [\"sh\", \"-c\", \"echo oops-from-the-log; exit 1\"]\n"
            ),
        ),
    )?;
    let messages = wait_pod(
        c,
        ns,
        "last-words",
        "all three terminated",
        Duration::from_secs(60),
        |p| {
            let all: Vec<(String, Option<String>)> = statuses(p)
                .into_iter()
                .filter_map(|s| Some((s.name, s.state?.terminated?.message)))
                .collect();
            (all.len() == 3).then_some(all)
        },
    )
    .await?;
    let want = [
        ("custom", Some("elsewhere\n")),
        ("file", Some("written-message\n")),
        ("logs", Some("oops-from-the-log\n")),
    ];
    let got: Vec<(&str, Option<&str>)> = messages
        .iter()
        .map(|(n, m)| (n.as_str(), m.as_deref()))
        .collect();
    if got != want {
        bail!("termination messages {got:?}");
    }
    Ok(())
}

/// The node's files that mention `needle`: sandbox and container records, IPAM leases.
fn records_mentioning(data: &Path, needle: &str) -> Vec<String> {
    let agent = data.join("agent");
    let mut found = Vec::new();
    for (dir, file) in [
        ("sandboxes", Some("sandbox.json")),
        ("containers", Some("meta.json")),
        ("cni-ipam/skiff", None),
    ] {
        let Ok(entries) = std::fs::read_dir(agent.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let path = match file {
                Some(f) => e.path().join(f),
                None => e.path(),
            };
            if std::fs::read_to_string(&path).is_ok_and(|t| t.contains(needle)) {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

/// `shareProcessNamespace: true`: `ps` in container a shows container b's process, and PID
/// 1 is the sandbox's `/pause` holder; a pod without it keeps a PID namespace per
/// container. Deleting the pods leaves nothing: no holder process, record, mount or cgroup.
async fn shared_process_namespace(c: &Cluster, ns: &str, data: &Path) -> Result<()> {
    let spec = |share: bool| {
        format!(
            "  shareProcessNamespace: {share}\n  terminationGracePeriodSeconds: 1\n  containers:\n  \
             - name: a\n    image: {IMAGE}\n    command: [\"sleep\", \"3600\"]\n  \
             - name: b\n    image: {IMAGE}\n    command: [\"sleep\", \"7200\"]\n"
        )
    };
    let yaml = [
        pod_yaml("shared", &spec(true)),
        pod_yaml("apart", &spec(false)),
    ]
    .join("---\n");
    apply(c, ns, &yaml)?;
    let mut uids = Vec::new();
    for name in ["shared", "apart"] {
        let uid = wait_pod(
            c,
            ns,
            name,
            "both containers running",
            Duration::from_secs(90),
            |p| {
                let running = statuses(p)
                    .iter()
                    .filter(|s| s.state.as_ref().is_some_and(|st| st.running.is_some()))
                    .count();
                (running == 2).then(|| p.metadata.uid.clone()).flatten()
            },
        )
        .await?;
        uids.push(uid);
    }
    let ps = exec(c, ns, "shared", "a", &["ps"])?;
    if !ps.contains("sleep 7200") {
        bail!("ps in container a does not show container b's process:\n{ps}");
    }
    let pid1 = ps
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .with_context(|| format!("no PID 1 in ps:\n{ps}"))?;
    if !pid1.contains("/pause") {
        bail!("PID 1 is not the pause holder: {pid1:?}\n{ps}");
    }
    let apart = exec(c, ns, "apart", "a", &["ps"])?;
    let apart_pid1 = apart
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .with_context(|| format!("no PID 1 in ps:\n{apart}"))?;
    if apart.contains("sleep 7200") || !apart_pid1.contains("sleep 3600") {
        bail!("without shareProcessNamespace, container a sees more than itself:\n{apart}");
    }

    // The holder, from the shared pod's sandbox record.
    let mut sandboxes = Vec::new();
    let mut holders = Vec::new();
    for uid in &uids {
        for record in records_mentioning(data, uid) {
            if !record.ends_with("sandbox.json") {
                continue;
            }
            let state: serde_json::Value = serde_json::from_slice(&std::fs::read(&record)?)?;
            if let Some(pid) = state["pause"]["pid"].as_i64() {
                holders.push(pid);
            }
            sandboxes.extend(
                Path::new(&record)
                    .parent()
                    .and_then(|d| d.file_name())
                    .map(|n| n.to_string_lossy().into_owned()),
            );
        }
    }
    if holders.len() != 1 || sandboxes.len() != 2 {
        bail!("holders {holders:?} in sandboxes {sandboxes:?}: want one holder in two sandboxes");
    }
    let runs = |pid: i64| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
        })
    };
    if !runs(holders[0]) {
        bail!("the recorded holder {} does not run", holders[0]);
    }

    c.kubectl(&["delete", "pods", "--all", "-n", ns, "--wait=false"])?;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    wait_for("the pods gone", Duration::from_secs(60), || async {
        Ok(pods
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
            .then_some(()))
    })
    .await?;
    wait_for(
        "the host clean of the pods",
        Duration::from_secs(30),
        || async {
            let mut left: Vec<String> = uids
                .iter()
                .chain(&sandboxes)
                .flat_map(|id| records_mentioning(data, id))
                .collect();
            let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            left.extend(
                mounts
                    .lines()
                    .filter(|l| {
                        uids.iter()
                            .chain(&sandboxes)
                            .any(|id| l.contains(id.as_str()))
                    })
                    .map(|l| format!("mount {l}")),
            );
            left.extend(
                uids.iter()
                    .flat_map(|u| skiff_kubelet::pods::qos::pod_cgroup_candidates(u))
                    .flat_map(|p| {
                        ["memory", "cpu", "pids"].map(|h| format!("/sys/fs/cgroup/{h}{p}"))
                    })
                    .filter(|p| Path::new(p).exists()),
            );
            left.extend(
                holders
                    .iter()
                    .filter(|p| runs(**p))
                    .map(|p| format!("holder process {p}")),
            );
            if left.is_empty() {
                Ok(Some(()))
            } else {
                bail!("left behind: {left:?}")
            }
        },
    )
    .await
}

/// 100 pods created and deleted, in four rounds of 25: afterwards nothing of them is left
/// on the host (sandbox and container records, IPAM leases, mounts, pod cgroups,
/// container monitors, veths on cni0, log directories).
async fn hundred_pods_leave_nothing(c: &Cluster, ns: &str, data: &Path) -> Result<()> {
    c.kubectl(&["create", "namespace", ns])?;
    let ports = || {
        std::fs::read_dir("/sys/class/net/cni0/brif")
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let monitors =
        || common::realnode::processes_with(&format!("container-monitor {}", data.display()));
    let (ports_before, monitors_before) = (ports(), monitors());
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), ns);
    let mut uids = Vec::new();
    let mut sandboxes = Vec::new();
    for round in 0..4 {
        let list: String = (0..25)
            .map(|i| {
                pod_yaml(
                    &format!("p{round}-{i}"),
                    &format!(
                        "  terminationGracePeriodSeconds: 1\n  containers:\n  - name: app\n    \
                         image: {IMAGE}\n    command: [\"sleep\", \"3600\"]\n"
                    ),
                )
            })
            .collect::<Vec<_>>()
            .join("---\n");
        c.kubectl_stdin(&["apply", "-n", ns, "-f", "-"], Some(&list))?;
        let running = wait_for("25 pods Running", Duration::from_secs(180), || async {
            let list = pods.list(&ListParams::default()).await?;
            let running: Vec<String> = list
                .items
                .iter()
                .filter(|p| phase(p) == "Running")
                .filter_map(|p| p.metadata.uid.clone())
                .collect();
            Ok((running.len() == 25).then_some(running))
        })
        .await?;
        for uid in &running {
            for record in records_mentioning(data, uid) {
                if record.ends_with("sandbox.json") {
                    let id = Path::new(&record)
                        .parent()
                        .and_then(|d| d.file_name())
                        .map(|n| n.to_string_lossy().into_owned());
                    sandboxes.extend(id);
                }
            }
        }
        uids.extend(running);
        c.kubectl(&["delete", "pods", "--all", "-n", ns, "--wait=false"])?;
        wait_for(
            "the round's pods gone",
            Duration::from_secs(120),
            || async {
                Ok(pods
                    .list(&ListParams::default())
                    .await?
                    .items
                    .is_empty()
                    .then_some(()))
            },
        )
        .await?;
    }
    if uids.len() != 100 || sandboxes.len() < 100 {
        bail!("{} pods and {} sandboxes seen", uids.len(), sandboxes.len());
    }
    wait_for(
        "the host clean of the 100 pods",
        Duration::from_secs(60),
        || async {
            let mut left: Vec<String> = uids
                .iter()
                .chain(&sandboxes)
                .flat_map(|id| records_mentioning(data, id))
                .collect();
            let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            left.extend(
                mounts
                    .lines()
                    .filter(|l| {
                        uids.iter()
                            .chain(&sandboxes)
                            .any(|id| l.contains(id.as_str()))
                    })
                    .map(|l| format!("mount {l}")),
            );
            left.extend(
                uids.iter()
                    .flat_map(|u| skiff_kubelet::pods::qos::pod_cgroup_candidates(u))
                    .flat_map(|p| {
                        ["memory", "cpu", "pids"].map(|h| format!("/sys/fs/cgroup/{h}{p}"))
                    })
                    .filter(|p| Path::new(p).exists()),
            );
            if let Ok(logs) = std::fs::read_dir(data.join("agent/logs")) {
                left.extend(
                    logs.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|name| uids.iter().any(|u| name.ends_with(u.as_str())))
                        .map(|name| format!("log dir {name}")),
                );
            }
            let (ports_now, monitors_now) = (ports(), monitors());
            if ports_now != ports_before {
                left.push(format!("cni0 ports {ports_now}, {ports_before} before"));
            }
            if monitors_now != monitors_before {
                left.push(format!("monitors {monitors_now}, {monitors_before} before"));
            }
            if left.is_empty() {
                Ok(Some(()))
            } else {
                bail!(
                    "left behind: {} (first: {:?})",
                    left.len(),
                    &left[..left.len().min(5)]
                )
            }
        },
    )
    .await
}

/// A `Localhost` seccomp profile from the node's `agent/seccomp/` directory filters the
/// container's syscalls; a profile that is not there fails the start with its path.
async fn localhost_seccomp(c: &Cluster, ns: &str, seccomp: &Path) -> Result<()> {
    std::fs::create_dir_all(seccomp)?;
    std::fs::write(
        seccomp.join("deny-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )?;
    apply(
        c,
        ns,
        &format!(
            "{}---\n{}",
            pod_yaml(
                "filtered",
                &format!(
                    "  securityContext:\n    seccompProfile: {{type: Localhost, localhostProfile: deny-mkdir.json}}\n  \
                     containers:\n  - name: app\n    image: {IMAGE}\n    \
                     command: [\"sh\", \"-c\", \"mkdir /tmp/x && echo made || echo refused; exec sleep 3600\"]\n"
                ),
            ),
            pod_yaml(
                "noprofile",
                &format!(
                    "  restartPolicy: Never\n  containers:\n  - name: app\n    image: {IMAGE}\n    \
                     command: [\"true\"]\n    securityContext:\n      \
                     seccompProfile: {{type: Localhost, localhostProfile: absent.json}}\n"
                ),
            )
        ),
    )?;
    wait_pod(c, ns, "filtered", "Running", Duration::from_secs(60), |p| {
        (phase(p) == "Running").then_some(())
    })
    .await?;
    let logs = wait_for(
        "the filtered container's log",
        Duration::from_secs(10),
        || async {
            let out = c.kubectl(&["logs", "-n", ns, "filtered"])?;
            Ok((!out.is_empty()).then_some(out))
        },
    )
    .await?;
    if !(logs.contains("refused") && logs.contains("Operation not permitted")) {
        bail!("mkdir under the profile: {logs:?}");
    }
    // A profile that is not there: the container is never created (upstream's
    // CreateContainerError, the container waiting), not started and failed.
    let message = wait_pod(
        c,
        ns,
        "noprofile",
        "CreateContainerError",
        Duration::from_secs(60),
        |p| {
            let w = statuses(p).into_iter().next()?.state?.waiting?;
            (w.reason.as_deref() == Some("CreateContainerError")).then_some(w.message?)
        },
    )
    .await?;
    if !(message.contains("cannot load seccomp profile") && message.contains("absent.json")) {
        bail!("the missing profile's message: {message:?}");
    }
    Ok(())
}

/// An image pulled through the kubelet from a local docker-registry (plain HTTP per the
/// node's registries.yaml), with imagePullPolicy Always.
async fn pulled_from_registry(c: &Cluster, ns: &str, host: &str) -> Result<()> {
    let image = format!("{host}/demo/web:v2");
    apply(
        c,
        ns,
        &pod_yaml(
            "pulled",
            &format!(
                "  containers:\n  - name: app\n    image: {image}\n    imagePullPolicy: Always\n    \
                 command: [\"sleep\", \"3600\"]\n"
            ),
        ),
    )?;
    let status = wait_pod(
        c,
        ns,
        "pulled",
        "Running from the pulled image",
        Duration::from_secs(90),
        |p| {
            (phase(p) == "Running")
                .then(|| statuses(p).into_iter().next())
                .flatten()
        },
    )
    .await?;
    if !status.image_id.contains("@sha256:") {
        bail!("imageID {:?} is not a digest reference", status.image_id);
    }
    let events = events_of(c, ns, "pulled").await?;
    let pulled = events.iter().any(|e| {
        e.reason.as_deref() == Some("Pulled")
            && e.message
                .as_deref()
                .is_some_and(|m| m.contains("Successfully pulled image"))
    });
    if !pulled {
        bail!(
            "no Pulled event: {:?}",
            events
                .iter()
                .map(|e| (&e.reason, &e.message))
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// Stopping and starting the server (with its node) on the same data dir: running
/// containers are adopted, not restarted or duplicated.
async fn restart_keeps_containers(c: Cluster, data: &Path, ns: &str) -> Result<Cluster> {
    apply(
        &c,
        ns,
        &pod_yaml(
            "steady",
            &format!("  containers:\n  - name: app\n    image: {IMAGE}\n    command: [\"sleep\", \"3600\"]\n"),
        ),
    )?;
    let before = wait_pod(&c, ns, "steady", "Running", Duration::from_secs(60), |p| {
        (phase(p) == "Running")
            .then(|| statuses(p).into_iter().next())
            .flatten()
    })
    .await?;
    let monitors =
        || common::realnode::processes_with(&format!("container-monitor {}", data.display()));
    let monitors_before = monitors();
    drop(c);
    // The old server's tasks wind down (the datastore's lock goes with them).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let c = common::realnode::start(data, "fault-node").await?;
    // A few status syncs of the adopted pod.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = wait_pod(
        &c,
        ns,
        "steady",
        "Running after the restart",
        Duration::from_secs(60),
        |p| {
            (phase(p) == "Running")
                .then(|| statuses(p).into_iter().next())
                .flatten()
        },
    )
    .await?;
    if after.container_id != before.container_id || after.restart_count != 0 {
        bail!(
            "before: {:?} restarts {}; after: {:?} restarts {}",
            before.container_id,
            before.restart_count,
            after.container_id,
            after.restart_count
        );
    }
    let monitors_after = monitors();
    if monitors_after != monitors_before {
        bail!("container monitors: {monitors_before} before the restart, {monitors_after} after");
    }
    Ok(c)
}

/// A docker-registry on 127.0.0.1, storage in the test's data dir; killed on drop.
struct Registry {
    port: u16,
    child: Child,
}

impl Registry {
    fn start(data: &Path) -> Result<Registry> {
        let dir = data.join("registry");
        std::fs::create_dir_all(dir.join("storage"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.join("storage").display()
            ),
        )?;
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting /usr/bin/docker-registry")?;
        let registry = Registry { port, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("docker-registry did not listen on 127.0.0.1:{port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(registry)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Pushes the OCI archive `archive` as `<registry>/<repo_tag>`.
    fn push(&self, archive: &Path, repo_tag: &str) -> Result<()> {
        let out = Command::new("skopeo")
            .args(["copy", "-q", "--dest-tls-verify=false"])
            .arg(format!("oci-archive:{}", archive.display()))
            .arg(format!("docker://{}/{repo_tag}", self.host()))
            .output()
            .context("running skopeo")?;
        if !out.status.success() {
            bail!("skopeo copy: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
