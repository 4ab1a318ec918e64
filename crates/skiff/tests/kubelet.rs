//! The kubelet's pod workers against a real in-process server, on the recording runtime
//! double (no host access): pods bound to the node run, fail, crash-loop, wait for images,
//! run init containers in order, and are terminated and removed; a restarted kubelet adopts
//! running containers without starting them again.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use common::{wait_for, Cluster, Datastore};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use skiff_runtime::image::manifest::ImageConfig;
use skiff_runtime::testing::{Call, RecordingRuntime};

const NODE: &str = "kubelet-test";

struct Kubelet {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn cluster() -> Result<Cluster> {
    let c = Cluster::start(Datastore::Embedded, 0).await?;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": NODE}}))?;
    nodes.create(&PostParams::default(), &node).await?;
    Ok(c)
}

fn kubelet(c: &Cluster, rt: &RecordingRuntime) -> Kubelet {
    kubelet_with(c, rt, BTreeMap::new())
}

/// A kubelet whose node has `allocatable` (empty: not known, everything is admitted).
fn kubelet_with(
    c: &Cluster,
    rt: &RecordingRuntime,
    allocatable: BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
) -> Kubelet {
    let (shared, probe_rx) = common::testkubelet::shared(c, rt, NODE, allocatable);
    Kubelet {
        task: tokio::spawn(skiff_kubelet::kubelet::run(shared, probe_rx)),
    }
}

/// A kubelet that runs until a node shutdown is ordered through the returned sender.
fn kubelet_until_shutdown(
    c: &Cluster,
    rt: &RecordingRuntime,
) -> (
    Kubelet,
    tokio::sync::watch::Sender<Option<skiff_kubelet::kubelet::NodeShutdown>>,
) {
    let (shared, probe_rx) = common::testkubelet::shared(c, rt, NODE, BTreeMap::new());
    let (order, orders) = tokio::sync::watch::channel(None);
    let k = Kubelet {
        task: tokio::spawn(skiff_kubelet::kubelet::run_until_shutdown(
            shared, probe_rx, None, orders,
        )),
    };
    (k, order)
}

fn runtime_with_busybox() -> RecordingRuntime {
    let rt = RecordingRuntime::new();
    rt.add_image(RecordingRuntime::image(
        "docker.io/library/busybox:1.36",
        ImageConfig::default(),
    ));
    rt
}

async fn create_pod(c: &Cluster, spec: serde_json::Value) -> Result<Pod> {
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let mut spec = spec;
    spec["nodeName"] = json!(NODE);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "default"},
        "spec": spec,
    }))?;
    Ok(api.create(&PostParams::default(), &pod).await?)
}

/// Waits until `check` accepts the pod's status.
async fn wait_pod(c: &Cluster, what: &str, check: impl Fn(&Pod) -> bool) -> Result<Pod> {
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let last = std::sync::Mutex::new(None);
    let got = wait_for(what, Duration::from_secs(30), || {
        let api = api.clone();
        let last = &last;
        let ok = &check;
        async move {
            let p = api.get("p").await?;
            let hit = ok(&p);
            if let Ok(mut l) = last.lock() {
                *l = Some(p.clone());
            }
            Ok(hit.then_some(p))
        }
    })
    .await;
    let seen = last.lock().ok().and_then(|mut l| l.take());
    got.with_context(|| format!("last seen: {:#?}", seen.and_then(|p| p.status)))
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn container_state(p: &Pod, init: bool) -> serde_json::Value {
    let s = p.status.clone().unwrap_or_default();
    let list = if init {
        s.init_container_statuses
    } else {
        s.container_statuses
    };
    serde_json::to_value(list.unwrap_or_default()).unwrap_or_default()
}

fn starts(rt: &RecordingRuntime) -> Vec<String> {
    let names: BTreeMap<String, String> = rt
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::CreateContainer { id, meta, .. } => Some((id.clone(), meta.name.clone())),
            _ => None,
        })
        .collect();
    rt.calls()
        .iter()
        .filter_map(|c| match c {
            Call::StartContainer { id, .. } => names.get(id).cloned(),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_runs_and_its_status_says_so() -> Result<()> {
    let c = cluster().await?;
    let rt = runtime_with_busybox();
    let _k = kubelet(&c, &rt);
    create_pod(
        &c,
        json!({"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}),
    )
    .await?;
    let p = wait_pod(&c, "the pod Running and Ready", |p| {
        phase(p) == "Running" && container_state(p, false)[0]["ready"] == json!(true)
    })
    .await?;
    let s = p.status.clone().unwrap_or_default();
    let cs = container_state(&p, false);
    assert!(cs[0]["state"]["running"]["startedAt"].is_string(), "{cs}");
    assert!(cs[0]["containerID"]
        .as_str()
        .is_some_and(|id| id.starts_with("skiff://")));
    assert_eq!(cs[0]["restartCount"], json!(0));
    assert_eq!(s.host_ip.as_deref(), Some("10.0.0.5"));
    assert!(s.pod_ip.is_some(), "a pod IP from the sandbox");
    let conditions: BTreeMap<String, String> = s
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.status))
        .collect();
    for t in [
        "Ready",
        "ContainersReady",
        "Initialized",
        "PodScheduled",
        "PodReadyToStartContainers",
    ] {
        assert_eq!(
            conditions.get(t).map(String::as_str),
            Some("True"),
            "{t}: {conditions:?}"
        );
    }
    // The container got the pod's command and the sandbox's namespaces and files.
    let (id, _) = rt
        .containers()
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .next()
        .context("one container")?;
    let config = rt.started_config(&id).context("its config")?;
    assert_eq!(config.args, vec!["sleep", "3600"]);
    assert!(config
        .mounts
        .iter()
        .any(|m| m.container_path.ends_with("resolv.conf")));
    assert_eq!(starts(&rt), vec!["c"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_container_fails_a_never_pod_and_crash_loops_an_always_pod() -> Result<()> {
    let c = cluster().await?;
    let rt = runtime_with_busybox();
    rt.exit_on_start("c", 3, false);
    let _k = kubelet(&c, &rt);
    create_pod(
        &c,
        json!({"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}),
    )
    .await?;
    let p = wait_pod(&c, "the pod Failed", |p| phase(p) == "Failed").await?;
    let cs = container_state(&p, false);
    assert_eq!(cs[0]["state"]["terminated"]["exitCode"], json!(3), "{cs}");
    assert_eq!(cs[0]["state"]["terminated"]["reason"], json!("Error"));
    assert_eq!(starts(&rt), vec!["c"], "never restarted");

    // The same under Always: restarted once at once, then CrashLoopBackOff.
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    api.delete("p", &DeleteParams::default()).await?;
    wait_for("the failed pod gone", Duration::from_secs(30), || {
        let api = api.clone();
        async move { Ok(api.get_opt("p").await?.is_none().then_some(())) }
    })
    .await?;
    create_pod(
        &c,
        json!({"containers": [{"name": "c", "image": "busybox:1.36"}]}),
    )
    .await?;
    let p = wait_pod(&c, "CrashLoopBackOff", |p| {
        container_state(p, false)[0]["state"]["waiting"]["reason"] == json!("CrashLoopBackOff")
    })
    .await?;
    let cs = container_state(&p, false);
    assert!(cs[0]["restartCount"].as_i64() >= Some(1), "{cs}");
    assert_eq!(
        cs[0]["lastState"]["terminated"]["exitCode"],
        json!(3),
        "{cs}"
    );
    assert!(
        cs[0]["state"]["waiting"]["message"].as_str().is_some_and(
            |m| m.starts_with("back-off 10s restarting failed container=c pod=p_default")
        )
    );
    assert_eq!(phase(&p), "Running");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_containers_run_in_order_before_the_app() -> Result<()> {
    let c = cluster().await?;
    let rt = runtime_with_busybox();
    rt.exit_on_start("i1", 0, false);
    rt.exit_on_start("i2", 0, false);
    let _k = kubelet(&c, &rt);
    create_pod(
        &c,
        json!({
            "initContainers": [
                {"name": "i1", "image": "busybox:1.36"},
                {"name": "i2", "image": "busybox:1.36"}
            ],
            "containers": [{"name": "c", "image": "busybox:1.36"}]
        }),
    )
    .await?;
    let p = wait_pod(&c, "the pod Running", |p| phase(p) == "Running").await?;
    assert_eq!(starts(&rt), vec!["i1", "i2", "c"]);
    let init = container_state(&p, true);
    assert_eq!(
        init[0]["state"]["terminated"]["reason"],
        json!("Completed"),
        "{init}"
    );
    assert_eq!(
        init[1]["state"]["terminated"]["reason"],
        json!("Completed"),
        "{init}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_follow_the_pull_policy_and_failures_wait() -> Result<()> {
    let c = cluster().await?;
    let rt = runtime_with_busybox();
    rt.fail_pull(
        "docker.io/library/nope:v1",
        skiff_runtime::testing::PullFailure::NotFound("not found".into()),
    );
    let _k = kubelet(&c, &rt);
    create_pod(
        &c,
        json!({"containers": [
            {"name": "never", "image": "missing:v1", "imagePullPolicy": "Never"},
            {"name": "bad", "image": "nope:v1"}
        ]}),
    )
    .await?;
    let p = wait_pod(&c, "both containers waiting for their images", |p| {
        let cs = container_state(p, false);
        let reasons: Vec<_> = cs
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                s["state"]["waiting"]["reason"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        reasons.contains(&"ErrImageNeverPull".to_owned())
            && reasons
                .iter()
                .any(|r| r == "ErrImagePull" || r == "ImagePullBackOff")
    })
    .await?;
    let cs = container_state(&p, false);
    let never = cs
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == json!("never"))
        .context("never")?;
    assert_eq!(
        never["state"]["waiting"]["message"],
        json!("Container image \"missing:v1\" is not present with pull policy of Never")
    );
    assert_eq!(phase(&p), "Pending");
    assert!(starts(&rt).is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_is_stopped_removed_and_gone_and_a_restart_adopts_containers() -> Result<()> {
    let c = cluster().await?;
    let rt = runtime_with_busybox();
    let k = kubelet(&c, &rt);
    create_pod(
        &c,
        json!({"terminationGracePeriodSeconds": 5,
               "containers": [{"name": "c", "image": "busybox:1.36"}]}),
    )
    .await?;
    wait_pod(&c, "the pod Running", |p| phase(p) == "Running").await?;

    // A restarted kubelet finds the running container and starts nothing new.
    drop(k);
    let before = starts(&rt).len();
    let _k = kubelet(&c, &rt);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(starts(&rt).len(), before, "no container started twice");
    assert_eq!(rt.containers().len(), 1);

    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    api.delete("p", &DeleteParams::default()).await?;
    wait_for("the pod gone from the API", Duration::from_secs(30), || {
        let api = api.clone();
        async move { Ok(api.get_opt("p").await?.is_none().then_some(())) }
    })
    .await?;
    let stops: Vec<Duration> = rt
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::StopContainer { grace, .. } => Some(*grace),
            _ => None,
        })
        .collect();
    assert_eq!(stops.first(), Some(&Duration::from_secs(5)), "{stops:?}");
    wait_for(
        "nothing left in the runtime",
        Duration::from_secs(10),
        || {
            let rt = rt.clone();
            async move {
                let clean = rt.containers().is_empty()
                    && rt.sandboxes().is_empty()
                    && rt.pod_cgroups().is_empty();
                Ok(clean.then_some(()))
            }
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_gate_readiness_and_a_failed_liveness_probe_restarts_the_container() -> Result<()> {
    use skiff_runtime::testing::ExecAnswer;
    let c = cluster().await?;
    let rt = runtime_with_busybox();
    rt.answer_exec(&["ready"], ExecAnswer::new(1, "not yet"));
    rt.answer_exec(&["alive"], ExecAnswer::new(0, ""));
    let _k = kubelet(&c, &rt);
    create_pod(
        &c,
        json!({"containers": [{"name": "c", "image": "busybox:1.36",
            "readinessProbe": {"exec": {"command": ["ready"]}, "periodSeconds": 1},
            "livenessProbe": {"exec": {"command": ["alive"]}, "periodSeconds": 1, "failureThreshold": 1}}]}),
    )
    .await?;
    let p = wait_pod(&c, "Running but not ready", |p| phase(p) == "Running").await?;
    assert_eq!(container_state(&p, false)[0]["ready"], json!(false));
    rt.answer_exec(&["ready"], ExecAnswer::new(0, ""));
    wait_pod(&c, "ready once the probe succeeds", |p| {
        container_state(p, false)[0]["ready"] == json!(true)
    })
    .await?;
    rt.answer_exec(&["alive"], ExecAnswer::new(1, "dead"));
    let p = wait_pod(&c, "restarted after the liveness failure", |p| {
        container_state(p, false)[0]["restartCount"].as_i64() >= Some(1)
    })
    .await?;
    let cs = container_state(&p, false);
    assert!(cs[0]["lastState"]["terminated"].is_object(), "{cs}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_the_runtime_cannot_start_is_a_start_error_then_crash_loops() -> Result<()> {
    let c = cluster().await?;
    let rt = runtime_with_busybox();
    let message = "exec: \"nope\": executable file not found in $PATH";
    rt.fail_start("c", message);
    let _k = kubelet(&c, &rt);
    create_pod(
        &c,
        json!({"containers": [{"name": "c", "image": "busybox:1.36", "command": ["nope"]}]}),
    )
    .await?;
    let p = wait_pod(&c, "CrashLoopBackOff after a StartError", |p| {
        let cs = container_state(p, false);
        cs[0]["state"]["waiting"]["reason"] == json!("CrashLoopBackOff")
            && cs[0]["lastState"]["terminated"]["reason"] == json!("StartError")
    })
    .await?;
    let cs = container_state(&p, false);
    assert_eq!(
        cs[0]["lastState"]["terminated"]["exitCode"],
        json!(128),
        "{cs}"
    );
    assert!(cs[0]["lastState"]["terminated"]["message"]
        .as_str()
        .is_some_and(|m| m.contains(message)));
    assert!(cs[0]["restartCount"].as_i64() >= Some(1), "{cs}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_does_not_fit_the_node_is_rejected() -> Result<()> {
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let c = cluster().await?;
    let rt = runtime_with_busybox();
    let allocatable = [("cpu", "1"), ("memory", "1Gi"), ("pods", "110")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
        .collect();
    let _k = kubelet_with(&c, &rt, allocatable);
    // Bound straight to the node (no scheduler in the way), asking for more than it has.
    create_pod(
        &c,
        json!({"containers": [{"name": "c", "image": "busybox:1.36",
            "resources": {"requests": {"cpu": "1500m"}}}]}),
    )
    .await?;
    let p = wait_pod(&c, "the pod rejected", |p| phase(p) == "Failed").await?;
    let s = p.status.clone().unwrap_or_default();
    assert_eq!(s.reason.as_deref(), Some("OutOfcpu"));
    assert_eq!(
        s.message.as_deref(),
        Some("Pod was rejected: Node didn't have enough resource: cpu, requested: 1500, used: 0, capacity: 1000")
    );
    assert!(
        !rt.calls()
            .iter()
            .any(|c| matches!(c, Call::CreateContainer { .. } | Call::RunSandbox { .. })),
        "nothing of a rejected pod runs: {:?}",
        rt.calls()
    );
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(c.client.clone(), "default");
    let warned = wait_for("the OutOfcpu event", Duration::from_secs(10), || async {
        Ok(events
            .list(&Default::default())
            .await?
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("OutOfcpu"))
            .then_some(()))
    })
    .await;
    warned?;
    // Deleting it needs no kubelet work: it is gone at once.
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    api.delete("p", &DeleteParams::default()).await?;
    wait_for("the rejected pod gone", Duration::from_secs(10), || async {
        Ok(api.get_opt("p").await?.is_none().then_some(()))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_shutdown_kills_regular_pods_then_critical_ones_and_they_end_failed() -> Result<()> {
    use skiff_kubelet::kubelet::NodeShutdown;
    let c = cluster().await?;
    let rt = runtime_with_busybox();
    let (mut k, order) = kubelet_until_shutdown(&c, &rt);
    create_pod(
        &c,
        json!({"containers": [{"name": "c", "image": "busybox:1.36"}]}),
    )
    .await?;
    let system: Api<Pod> = Api::namespaced(c.client.clone(), "kube-system");
    let critical: Pod = serde_json::from_value(json!({
        "metadata": {"name": "crit"},
        "spec": {"nodeName": NODE, "priorityClassName": "system-node-critical",
                 "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": "busybox:1.36"}]},
    }))?;
    system.create(&PostParams::default(), &critical).await?;
    wait_pod(&c, "the regular pod Running", |p| phase(p) == "Running").await?;
    wait_for("the critical pod Running", Duration::from_secs(30), || {
        let system = system.clone();
        async move {
            let p = system.get("crit").await?;
            Ok((phase(&p) == "Running").then_some(()))
        }
    })
    .await?;

    order.send_replace(Some(NodeShutdown {
        grace: Duration::from_secs(6),
        critical_grace: Duration::from_secs(2),
    }));
    tokio::time::timeout(Duration::from_secs(30), &mut k.task)
        .await
        .context("the kubelet returns once the pods are terminated")??;

    // Each pod was stopped with the shorter of its grace and its group's, regular first.
    let pods: BTreeMap<String, String> = rt
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::CreateContainer { id, meta, .. } => Some((id.clone(), meta.pod_name.clone())),
            _ => None,
        })
        .collect();
    let stops: Vec<(String, Duration)> = rt
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::StopContainer { id, grace } => Some((pods.get(id)?.clone(), *grace)),
            _ => None,
        })
        .collect();
    assert_eq!(
        stops,
        [
            ("p".to_owned(), Duration::from_secs(4)),
            ("crit".to_owned(), Duration::from_secs(1))
        ]
    );
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    for p in [api.get("p").await?, system.get("crit").await?] {
        let s = p.status.clone().unwrap_or_default();
        assert_eq!(s.phase.as_deref(), Some("Failed"), "{s:#?}");
        assert_eq!(s.reason.as_deref(), Some("Terminated"));
        assert_eq!(
            s.message.as_deref(),
            Some("Pod was terminated in response to imminent node shutdown.")
        );
        let disruption = s
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "DisruptionTarget")
            .context("a DisruptionTarget condition")?;
        assert_eq!(
            (disruption.status.as_str(), disruption.reason.as_deref()),
            ("True", Some("TerminationByKubelet"))
        );
    }

    // The kubelet started again: a pod the API has Failed never runs again, its status stays.
    let before = starts(&rt).len();
    let _k = kubelet(&c, &rt);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(starts(&rt).len(), before, "no container started again");
    let p = api.get("p").await?;
    assert_eq!(phase(&p), "Failed");
    assert_eq!(
        p.status.and_then(|s| s.reason).as_deref(),
        Some("Terminated")
    );
    Ok(())
}

#[tokio::test]
async fn a_pod_bound_while_the_node_shuts_down_is_rejected() -> Result<()> {
    use skiff_kubelet::kubelet::NodeShutdown;
    let c = cluster().await?;
    let rt = runtime_with_busybox();
    let (mut k, order) = kubelet_until_shutdown(&c, &rt);
    // Its preStop hook keeps the shutdown going for 3 s.
    create_pod(
        &c,
        json!({"containers": [{"name": "c", "image": "busybox:1.36",
                               "lifecycle": {"preStop": {"sleep": {"seconds": 3}}}}]}),
    )
    .await?;
    wait_pod(&c, "the pod Running", |p| phase(p) == "Running").await?;
    order.send_replace(Some(NodeShutdown {
        grace: Duration::from_secs(10),
        critical_grace: Duration::ZERO,
    }));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !k.task.is_finished(),
        "the shutdown waits for the preStop hook"
    );
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let late: Pod = serde_json::from_value(json!({
        "metadata": {"name": "late"},
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "busybox:1.36"}]},
    }))?;
    api.create(&PostParams::default(), &late).await?;
    let rejected = wait_for("the late pod rejected", Duration::from_secs(30), || {
        let api = api.clone();
        async move {
            let p = api.get("late").await?;
            Ok((phase(&p) == "Failed").then_some(p))
        }
    })
    .await?;
    let s = rejected.status.unwrap_or_default();
    assert_eq!(s.reason.as_deref(), Some("NodeShutdown"));
    assert_eq!(
        s.message.as_deref(),
        Some("Pod was rejected: Pod was rejected as the node is shutting down.")
    );
    tokio::time::timeout(Duration::from_secs(30), &mut k.task)
        .await
        .context("the kubelet returns once the pods are terminated")??;
    let names: Vec<String> = rt
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::CreateContainer { meta, .. } => Some(meta.pod_name.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["p"], "nothing of the late pod ran");
    let p = api.get("p").await?;
    assert_eq!(
        p.status.and_then(|s| s.reason).as_deref(),
        Some("Terminated")
    );
    Ok(())
}
