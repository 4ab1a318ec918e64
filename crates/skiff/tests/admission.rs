//! Integration: the admission plugins of the API server (Priority, DefaultTolerationSeconds,
//! LimitRanger, ResourceQuota) and the ResourceQuota controller, through the in-process
//! server, driven by the real kubectl and kube-rs, on both datastores.
//!
//! Scenarios: the built-in PriorityClasses listed as upstream prints them, a pod's
//! priority resolved from its class (the default tolerations added), an unknown class and a
//! second global default refused with upstream's 403; LimitRange defaults applied and its
//! max enforced; a quota whose status the controller fills, refusing the pod and the
//! secret over its limits with upstream's exact message, recalculated when a pod is
//! deleted, and never letting concurrent creates past its limit; a Deployment whose pods
//! the quota refuses gets `FailedCreate` events and `ReplicaFailure` conditions without a
//! hot loop, and its pods once the quota is raised.
//!
//! No simulated nodes: every pod stays Pending (nothing here needs one running).

mod common;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod, ResourceQuota};
use kube::api::{ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use common::{wait_for, Cluster};

const WAIT: Duration = Duration::from_secs(60);

fn pod_yaml(ns: &str, name: &str, extra_spec: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n{extra_spec}  containers:\n  - name: app\n    image: nginx\n"
    )
}

fn create_ns(cluster: &Cluster, ns: &str) -> Result<()> {
    cluster.kubectl(&["create", "namespace", ns])?;
    Ok(())
}

/// The stderr of a kubectl command that must fail.
fn refused(cluster: &Cluster, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let out = cluster.kubectl_output(args, stdin)?;
    ensure!(
        !out.status.success(),
        "kubectl {} succeeded: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout)
    );
    Ok(String::from_utf8_lossy(&out.stderr).trim().to_owned())
}

async fn priority_classes_and_pod_priority(cluster: &Cluster) -> Result<()> {
    // As upstream prints them (the AGE column aside).
    let listed = cluster.kubectl(&["get", "priorityclasses"])?;
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    ensure!(rows.len() == 3, "three lines expected, got:\n{listed}");
    ensure!(
        rows[0] == ["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
        "{listed}"
    );
    for (row, (name, value)) in rows[1..].iter().zip([
        ("system-cluster-critical", "2000000000"),
        ("system-node-critical", "2000001000"),
    ]) {
        ensure!(
            row.len() == 5
                && row[0] == name
                && row[1] == value
                && row[2] == "false"
                && row[4] == "PreemptLowerPriority",
            "{listed}"
        );
    }
    let node_critical = cluster.kubectl(&[
        "get",
        "priorityclass",
        "system-node-critical",
        "-o",
        "jsonpath={.description}|{.preemptionPolicy}|{.globalDefault}",
    ])?;
    ensure!(
        node_critical
            == "Used for system critical pods that must not be moved from their current node.|PreemptLowerPriority|",
        "{node_critical}"
    );

    cluster.kubectl(&["create", "priorityclass", "high", "--value=1000"])?;
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&pod_yaml(
            "default",
            "important",
            "  priorityClassName: high\n",
        )),
    )?;
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&pod_yaml("default", "plain", "")),
    )?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let important = pods.get("important").await?;
    let spec = important.spec.clone().unwrap_or_default();
    ensure!(spec.priority == Some(1000), "{spec:?}");
    ensure!(spec.preemption_policy.as_deref() == Some("PreemptLowerPriority"));
    let tolerations: Vec<(String, Option<i64>)> = spec
        .tolerations
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.toleration_seconds))
        .collect();
    ensure!(
        tolerations
            == [
                ("node.kubernetes.io/not-ready".to_string(), Some(300)),
                ("node.kubernetes.io/unreachable".to_string(), Some(300)),
            ],
        "{tolerations:?}"
    );
    let plain = pods.get("plain").await?.spec.unwrap_or_default();
    ensure!(plain.priority == Some(0) && plain.priority_class_name.is_none());

    let err = refused(
        cluster,
        &["apply", "-f", "-"],
        Some(&pod_yaml("default", "x", "  priorityClassName: foo\n")),
    )?;
    ensure!(
        err.ends_with("pods \"x\" is forbidden: no PriorityClass with name foo was found"),
        "{err}"
    );
    let err = refused(
        cluster,
        &["apply", "-f", "-"],
        Some(&pod_yaml(
            "default",
            "given",
            "  priorityClassName: high\n  priority: 5\n",
        )),
    )?;
    ensure!(
        err.ends_with("pods \"given\" is forbidden: the integer value of priority (5) must not be provided in pod spec; priority admission controller computed 1000 from the given PriorityClass name"),
        "{err}"
    );

    // One global default, which pods without a class then get.
    cluster.kubectl(&[
        "create",
        "priorityclass",
        "normal",
        "--value=100",
        "--global-default",
    ])?;
    let err = refused(
        cluster,
        &[
            "create",
            "priorityclass",
            "other",
            "--value=50",
            "--global-default",
        ],
        None,
    )?;
    ensure!(
        err.ends_with("priorityclasses.scheduling.k8s.io \"other\" is forbidden: PriorityClass normal is already marked as default. Only one default can exist"),
        "{err}"
    );
    let err = refused(
        cluster,
        &["create", "priorityclass", "system-mine", "--value=5"],
        None,
    )?;
    ensure!(
        err.contains("priority class names with 'system-' prefix are reserved for system use only"),
        "{err}"
    );
    let err = refused(
        cluster,
        &["create", "priorityclass", "huge", "--value=2000000000"],
        None,
    )?;
    ensure!(
        err.contains("maximum allowed value of a user defined priority is 1000000000"),
        "{err}"
    );
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&pod_yaml("default", "defaulted", "")),
    )?;
    let defaulted = pods.get("defaulted").await?.spec.unwrap_or_default();
    ensure!(
        defaulted.priority == Some(100)
            && defaulted.priority_class_name.as_deref() == Some("normal"),
        "{defaulted:?}"
    );
    Ok(())
}

async fn limit_range_defaults_and_limits(cluster: &Cluster) -> Result<()> {
    create_ns(cluster, "limited")?;
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(
            "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: lr\n  namespace: limited\nspec:\n  limits:\n  - type: Container\n    default:\n      cpu: 500m\n      memory: 256Mi\n    defaultRequest:\n      cpu: 250m\n    max:\n      cpu: \"1\"\n",
        ),
    )?;
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        Some(&pod_yaml("limited", "defaults", "")),
    )?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "limited");
    let pod = pods.get("defaults").await?;
    let resources =
        serde_json::to_value(&pod.spec.as_ref().context("no spec")?.containers[0].resources)?;
    ensure!(
        resources
            == json!({"limits": {"cpu": "500m", "memory": "256Mi"},
                      "requests": {"cpu": "250m", "memory": "256Mi"}}),
        "{resources}"
    );
    let note = pod
        .annotations()
        .get("kubernetes.io/limit-ranger")
        .cloned()
        .unwrap_or_default();
    ensure!(
        note == "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for container app",
        "{note}"
    );
    let err = refused(
        cluster,
        &["apply", "-f", "-"],
        Some(&format!(
            "{}    resources:\n      limits:\n        cpu: \"2\"\n",
            pod_yaml("limited", "big", "")
        )),
    )?;
    ensure!(
        err.ends_with(
            "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
        ),
        "{err}"
    );
    // Claims are held to the PersistentVolumeClaim items.
    cluster.kubectl_stdin(
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: storage\n  namespace: limited\nspec:\n  limits:\n  - type: PersistentVolumeClaim\n    min:\n      storage: 1Gi\n    max:\n      storage: 5Gi\n"),
    )?;
    let claim = |name: &str, size: &str| {
        format!("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\n  namespace: limited\nspec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: {size}\n")
    };
    cluster.kubectl_stdin(&["apply", "-f", "-"], Some(&claim("fits", "2Gi")))?;
    let err = refused(cluster, &["apply", "-f", "-"], Some(&claim("huge", "10Gi")))?;
    ensure!(
        err.ends_with("persistentvolumeclaims \"huge\" is forbidden: maximum storage usage per PersistentVolumeClaim is 5Gi, but request is 10Gi"),
        "{err}"
    );
    Ok(())
}

/// The quota's `status.used`, once the controller (or admission) has written `want`.
async fn wait_used(cluster: &Cluster, ns: &str, name: &str, want: serde_json::Value) -> Result<()> {
    let api: Api<ResourceQuota> = Api::namespaced(cluster.client.clone(), ns);
    wait_for(&format!("quota {ns}/{name} used {want}"), WAIT, || {
        let api = api.clone();
        let want = want.clone();
        async move {
            let q = api.get(name).await?;
            let used = serde_json::to_value(q.status.and_then(|s| s.used))?;
            ensure!(used == want, "used is {used}");
            Ok(Some(()))
        }
    })
    .await
}

fn cpu_pod(ns: &str, name: &str, cpu: &str) -> String {
    format!(
        "{}    resources:\n      requests:\n        cpu: {cpu}\n",
        pod_yaml(ns, name, "")
    )
}

async fn quota_refuses_and_counts(cluster: &Cluster) -> Result<()> {
    create_ns(cluster, "q")?;
    cluster.kubectl(&[
        "create",
        "quota",
        "q",
        "-n",
        "q",
        "--hard=pods=2,requests.cpu=1500m,count/secrets=1",
    ])?;
    wait_used(
        cluster,
        "q",
        "q",
        json!({"count/secrets": "0", "pods": "0", "requests.cpu": "0"}),
    )
    .await?;
    let status_hard = cluster.kubectl(&[
        "get",
        "quota",
        "q",
        "-n",
        "q",
        "-o",
        "jsonpath={.status.hard}",
    ])?;
    ensure!(
        status_hard == r#"{"count/secrets":"1","pods":"2","requests.cpu":"1500m"}"#,
        "{status_hard}"
    );

    cluster.kubectl_stdin(&["apply", "-f", "-"], Some(&cpu_pod("q", "a", "500m")))?;
    cluster.kubectl_stdin(&["apply", "-f", "-"], Some(&cpu_pod("q", "b", "1")))?;
    // Charged at admission: 500m + 1 = 1500m.
    wait_used(
        cluster,
        "q",
        "q",
        json!({"count/secrets": "0", "pods": "2", "requests.cpu": "1500m"}),
    )
    .await?;
    // `kubectl get quota` as upstream prints it: used/hard per resource.
    let row = cluster.kubectl(&["get", "quota", "q", "-n", "q", "--no-headers"])?;
    ensure!(
        row.contains("count/secrets: 0/1, pods: 2/2, requests.cpu: 1500m/1500m"),
        "{row}"
    );
    let err = refused(
        cluster,
        &["apply", "-f", "-"],
        Some(&cpu_pod("q", "c", "500m")),
    )?;
    ensure!(
        err.ends_with("pods \"c\" is forbidden: exceeded quota: q, requested: pods=1,requests.cpu=500m, used: pods=2,requests.cpu=1500m, limited: pods=2,requests.cpu=1500m"),
        "{err}"
    );
    // A container without a cpu request cannot be counted against requests.cpu.
    let err = refused(
        cluster,
        &["apply", "-f", "-"],
        Some(&pod_yaml("q", "d", "")),
    )?;
    ensure!(
        err.ends_with(
            "pods \"d\" is forbidden: failed quota: q: must specify requests.cpu for: app"
        ),
        "{err}"
    );
    cluster.kubectl(&[
        "create",
        "secret",
        "generic",
        "s1",
        "-n",
        "q",
        "--from-literal=k=v",
    ])?;
    let err = refused(
        cluster,
        &[
            "create",
            "secret",
            "generic",
            "s2",
            "-n",
            "q",
            "--from-literal=k=v",
        ],
        None,
    )?;
    ensure!(
        err.ends_with("secrets \"s2\" is forbidden: exceeded quota: q, requested: count/secrets=1, used: count/secrets=1, limited: count/secrets=1"),
        "{err}"
    );

    // A deleted pod gives its share back (the controller recalculates).
    cluster.kubectl(&["delete", "pod", "a", "-n", "q", "--wait=false"])?;
    wait_used(
        cluster,
        "q",
        "q",
        json!({"count/secrets": "1", "pods": "1", "requests.cpu": "1"}),
    )
    .await?;

    // Concurrent creates: of eight pods, exactly the one that fits gets in.
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "q");
    let pod = |i: usize| -> Result<Pod> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": format!("race-{i}")},
            "spec": {"containers": [{"name": "app", "image": "nginx",
                                     "resources": {"requests": {"cpu": "100m"}}}]},
        }))?)
    };
    let candidates = (0..8).map(pod).collect::<Result<Vec<_>>>()?;
    let params = PostParams::default();
    let results =
        futures::future::join_all(candidates.iter().map(|p| pods.create(&params, p))).await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    for r in &results {
        if let Err(e) = r {
            let kube::Error::Api(s) = e else {
                anyhow::bail!("unexpected error {e}");
            };
            ensure!(
                s.code == 403 && s.message.contains("exceeded quota: q"),
                "{s:?}"
            );
        }
    }
    ensure!(admitted == 1, "{admitted} of 8 concurrent creates admitted");
    wait_used(
        cluster,
        "q",
        "q",
        json!({"count/secrets": "1", "pods": "2", "requests.cpu": "1100m"}),
    )
    .await?;

    // A pod that ended (Failed) uses no compute quota any more.
    let failed = json!({"status": {"phase": "Failed"}});
    pods.patch_status(
        "b",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&failed),
    )
    .await?;
    wait_used(
        cluster,
        "q",
        "q",
        json!({"count/secrets": "1", "pods": "1", "requests.cpu": "100m"}),
    )
    .await?;
    Ok(())
}

/// `count/<resource>.<group>` counts any namespaced kind: measured by the controller (which
/// finds the resource through discovery) and charged at admission.
async fn object_counts_of_any_kind(cluster: &Cluster) -> Result<()> {
    create_ns(cluster, "objs")?;
    cluster.kubectl(&[
        "create",
        "quota",
        "objects",
        "-n",
        "objs",
        "--hard=count/deployments.apps=1,count/configmaps=3,services.nodeports=1",
    ])?;
    // The namespace's kube-root-ca.crt is counted.
    wait_used(
        cluster,
        "objs",
        "objects",
        json!({"count/configmaps": "1", "count/deployments.apps": "0", "services.nodeports": "0"}),
    )
    .await?;
    cluster.kubectl(&[
        "create",
        "deployment",
        "d1",
        "-n",
        "objs",
        "--image=nginx",
        "--replicas=0",
    ])?;
    let err = refused(
        cluster,
        &[
            "create",
            "deployment",
            "d2",
            "-n",
            "objs",
            "--image=nginx",
            "--replicas=0",
        ],
        None,
    )?;
    ensure!(
        err.ends_with("deployments.apps \"d2\" is forbidden: exceeded quota: objects, requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1"),
        "{err}"
    );
    // An update is charged what it adds: a ClusterIP Service turning NodePort asks for
    // one node port per port.
    cluster.kubectl(&[
        "create",
        "service",
        "clusterip",
        "s",
        "-n",
        "objs",
        "--tcp=80:80",
        "--tcp=81:81",
    ])?;
    let err = refused(
        cluster,
        &[
            "patch",
            "service",
            "s",
            "-n",
            "objs",
            "-p",
            r#"{"spec":{"type":"NodePort"}}"#,
        ],
        None,
    )?;
    ensure!(
        err.ends_with("services \"s\" is forbidden: exceeded quota: objects, requested: services.nodeports=2, used: services.nodeports=0, limited: services.nodeports=1"),
        "{err}"
    );
    // Deleting it frees the slot once the controller has counted again.
    cluster.kubectl(&["delete", "deployment", "d1", "-n", "objs"])?;
    wait_used(
        cluster,
        "objs",
        "objects",
        json!({"count/configmaps": "1", "count/deployments.apps": "0", "services.nodeports": "0"}),
    )
    .await?;
    Ok(())
}

async fn deployment_refused_by_quota(cluster: &Cluster) -> Result<()> {
    create_ns(cluster, "dq")?;
    cluster.kubectl(&["create", "quota", "q", "-n", "dq", "--hard=pods=1"])?;
    wait_used(cluster, "dq", "q", json!({"pods": "0"})).await?;
    cluster.kubectl(&[
        "create",
        "deployment",
        "web",
        "-n",
        "dq",
        "--image=nginx",
        "--replicas=3",
    ])?;
    let rs_api: Api<ReplicaSet> = Api::namespaced(cluster.client.clone(), "dq");
    let rs = wait_for("the ReplicaSet's ReplicaFailure condition", WAIT, || {
        let rs_api = rs_api.clone();
        async move {
            let list = rs_api.list(&ListParams::default()).await?;
            Ok(list.items.into_iter().find(|rs| {
                rs.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| {
                        cs.iter().any(|c| {
                            c.type_ == "ReplicaFailure"
                                && c.status == "True"
                                && c.reason.as_deref() == Some("FailedCreate")
                                && c.message.as_deref().is_some_and(|m| {
                                    m.contains("exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1")
                                })
                        })
                    })
            }))
        }
    })
    .await?;
    let deployments: Api<Deployment> = Api::namespaced(cluster.client.clone(), "dq");
    wait_for("the Deployment's ReplicaFailure condition", WAIT, || {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get("web").await?;
            let has = d
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "ReplicaFailure" && c.status == "True");
            Ok(has.then_some(()))
        }
    })
    .await?;
    let events: Api<Event> = Api::namespaced(cluster.client.clone(), "dq");
    let failed_creates = || async {
        let list = events.list(&ListParams::default()).await?;
        let relevant: Vec<Event> = list
            .items
            .into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some("FailedCreate")
                    && e.involved_object.name.as_deref() == Some(rs.name_any().as_str())
            })
            .collect();
        anyhow::Ok(relevant)
    };
    let first = wait_for("a FailedCreate event", WAIT, || async {
        let evs = failed_creates().await?;
        Ok((!evs.is_empty()).then_some(evs))
    })
    .await?;
    let message = first[0].message.clone().unwrap_or_default();
    ensure!(
        message.starts_with("Error creating: pods \"web-")
            && message.ends_with(
                "is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1"
            ),
        "{message}"
    );
    // Retried with backoff, not in a hot loop: a handful of attempts in 8 s.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let attempts: i32 = failed_creates()
        .await?
        .iter()
        .map(|e| e.count.unwrap_or(1).max(1))
        .sum();
    ensure!(attempts < 30, "{attempts} failed creates in 8 s");
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "dq");
    ensure!(pods.list(&ListParams::default()).await?.items.len() == 1);

    // Room in the quota: the ReplicaSet's next retry creates the rest.
    cluster.kubectl(&[
        "patch",
        "quota",
        "q",
        "-n",
        "dq",
        "-p",
        r#"{"spec":{"hard":{"pods":"3"}}}"#,
    ])?;
    wait_for("three pods", Duration::from_secs(120), || {
        let pods = pods.clone();
        async move {
            let n = pods.list(&ListParams::default()).await?.items.len();
            Ok((n == 3).then_some(()))
        }
    })
    .await?;
    Ok(())
}

on_both_datastores!(nodes: 0;
    priority_classes_and_pod_priority,
    limit_range_defaults_and_limits,
    quota_refuses_and_counts,
    object_counts_of_any_kind,
    deployment_refused_by_quota,
);
