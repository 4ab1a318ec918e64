//! The DaemonSet's decisions, table by table, over hand-made nodes and pods.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use super::sync::*;
use super::util::*;

const NEW: &str = "hash-new";
const OLD: &str = "hash-old";

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// A DaemonSet `ds` in `ns` as the API server defaults it (RollingUpdate, maxUnavailable 1,
/// maxSurge 0), `extra` merged in.
fn ds(extra: Value) -> DaemonSet {
    let mut v = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "ds", "namespace": "ns", "uid": "uid-ds", "generation": 2},
        "spec": {
            "selector": {"matchLabels": {"app": "d"}},
            "updateStrategy": {"type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
            "revisionHistoryLimit": 10,
            "template": {"metadata": {"labels": {"app": "d"}},
                "spec": {"containers": [{"name": "c", "image": "img:2"}]}}
        },
        "status": {"observedGeneration": 2, "currentNumberScheduled": 0,
            "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0}
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap_or_default()
}

fn node(name: &str, extra: Value) -> Arc<Node> {
    let mut v = json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}});
    merge(&mut v, extra);
    Arc::new(serde_json::from_value(v).unwrap_or_default())
}

fn nodes(names: &[&str]) -> Vec<Arc<Node>> {
    names.iter().map(|n| node(n, json!({}))).collect()
}

fn tainted(name: &str, key: &str, effect: &str) -> Arc<Node> {
    node(
        name,
        json!({"spec": {"taints": [{"key": key, "value": "x", "effect": effect}]}}),
    )
}

/// A pod of `ds` on `node` with revision `hash`: `state` is "ready" (Ready since 100 s),
/// "fresh" (Ready since 5 s), "running" (not ready), "pending" (not yet bound: only the
/// node affinity names its node), "failed", "succeeded", "terminating". `age` orders them
/// (a higher age is older).
fn pod(name: &str, node: &str, hash: &str, state: &str, age: i64) -> Arc<Pod> {
    let since = if state == "fresh" { 5 } else { 100 };
    let (phase, ready) = match state {
        "ready" | "fresh" | "terminating" => ("Running", true),
        "running" => ("Running", false),
        "pending" => ("Pending", false),
        "failed" => ("Failed", false),
        "succeeded" => ("Succeeded", false),
        other => (other, false),
    };
    let mut v = json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
            "creationTimestamp": (now() - SignedDuration::from_secs(age)).to_string(),
            "labels": {"app": "d", HASH_LABEL: hash},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds",
                "uid": "uid-ds", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": "c", "image": "img"}],
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchFields": [
                    {"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}},
        "status": {"phase": phase, "conditions": [{"type": "Ready",
            "status": if ready { "True" } else { "False" },
            "lastTransitionTime": (now() - SignedDuration::from_secs(since)).to_string()}]}
    });
    if state != "pending" {
        v["spec"]["nodeName"] = json!(node);
    }
    if state == "terminating" {
        v["metadata"]["deletionTimestamp"] = json!(now().to_string());
    }
    Arc::new(serde_json::from_value(v).unwrap_or_default())
}

fn no_backoff(_: &str) -> Option<Duration> {
    None
}

fn input<'a>(
    ds: &'a DaemonSet,
    nodes: &'a [Arc<Node>],
    pods: &'a [Arc<Pod>],
    backoff: &'a (dyn Fn(&str) -> Option<Duration> + Sync),
) -> Input<'a> {
    Input {
        ds,
        nodes,
        pods,
        hash: NEW,
        now: now(),
        in_backoff: backoff,
    }
}

fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
    pods.iter()
        .map(|p| p.metadata.name.as_deref().unwrap_or(""))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Which nodes run the daemon pod.

#[test]
fn node_should_run_as_upstream() {
    let plain = ds(json!({}));
    let selecting = ds(json!({"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}}));
    let affine = ds(
        json!({"spec": {"template": {"spec": {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]},
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n9"]}]}
        ]}}}}}}}),
    );
    let tolerant = ds(json!({"spec": {"template": {"spec": {"tolerations": [
        {"key": "dedicated", "operator": "Exists"}]}}}}));
    let pinned = ds(json!({"spec": {"template": {"spec": {"nodeName": "n2"}}}}));
    let ssd = node(
        "n1",
        json!({"metadata": {"labels": {"disk": "ssd", "zone": "b"}}}),
    );
    type Case<'a> = (&'a str, &'a DaemonSet, Arc<Node>, (bool, bool));
    let cases: Vec<Case> = vec![
        ("plain node", &plain, node("n1", json!({})), (true, true)),
        (
            "nodeSelector misses",
            &selecting,
            node("n1", json!({})),
            (false, false),
        ),
        ("nodeSelector fits", &selecting, ssd.clone(), (true, true)),
        (
            "affinity misses",
            &affine,
            node("n1", json!({})),
            (false, false),
        ),
        ("affinity label term", &affine, ssd.clone(), (true, true)),
        (
            "affinity field term",
            &affine,
            node("n9", json!({})),
            (true, true),
        ),
        (
            "NoSchedule taint: no new pod, a running one stays",
            &plain,
            tainted("n1", "dedicated", "NoSchedule"),
            (false, true),
        ),
        (
            "NoExecute taint: the pod goes",
            &plain,
            tainted("n1", "dedicated", "NoExecute"),
            (false, false),
        ),
        (
            "tolerated taint",
            &tolerant,
            tainted("n1", "dedicated", "NoExecute"),
            (true, true),
        ),
        (
            "PreferNoSchedule is no obstacle",
            &plain,
            tainted("n1", "dedicated", "PreferNoSchedule"),
            (true, true),
        ),
        (
            "a cordoned node still runs daemons",
            &plain,
            tainted("n1", TAINT_UNSCHEDULABLE, "NoSchedule"),
            (true, true),
        ),
        (
            "a not-ready node keeps and gets them",
            &plain,
            tainted("n1", TAINT_NOT_READY, "NoExecute"),
            (true, true),
        ),
        (
            "network-unavailable needs hostNetwork",
            &plain,
            tainted("n1", TAINT_NETWORK_UNAVAILABLE, "NoSchedule"),
            (false, true),
        ),
        (
            "template nodeName elsewhere",
            &pinned,
            node("n1", json!({})),
            (false, false),
        ),
        (
            "template nodeName here",
            &pinned,
            node("n2", json!({})),
            (true, true),
        ),
    ];
    for (what, ds, node, want) in cases {
        assert_eq!(node_should_run(&node, ds), want, "{what}");
    }
    let host = ds(json!({"spec": {"template": {"spec": {"hostNetwork": true}}}}));
    assert_eq!(
        node_should_run(
            &tainted("n1", TAINT_NETWORK_UNAVAILABLE, "NoSchedule"),
            &host
        ),
        (true, true)
    );
}

#[test]
fn node_changes_wake_the_daemon_sets_they_concern() {
    let plain = ds(json!({}));
    let selecting = ds(json!({"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}}));
    let bare = node("n1", json!({}));
    let heartbeat = node(
        "n1",
        json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    let ssd = node("n1", json!({"metadata": {"labels": {"disk": "ssd"}}}));
    let tainted_n1 = tainted("n1", "dedicated", "NoSchedule");
    type Case<'a> = (
        &'a str,
        Option<&'a Node>,
        Option<&'a Node>,
        &'a DaemonSet,
        bool,
    );
    let cases: Vec<Case> = vec![
        ("a new node for it", None, Some(&bare), &plain, true),
        (
            "a new node not for it",
            None,
            Some(&bare),
            &selecting,
            false,
        ),
        ("a heartbeat", Some(&bare), Some(&heartbeat), &plain, false),
        (
            "a label it selects",
            Some(&bare),
            Some(&ssd),
            &selecting,
            true,
        ),
        ("a label it ignores", Some(&bare), Some(&ssd), &plain, false),
        ("a taint", Some(&bare), Some(&tainted_n1), &plain, true),
        ("a deleted node", Some(&bare), None, &selecting, true),
    ];
    for (what, before, after, ds, want) in cases {
        assert_eq!(node_change_concerns(before, after, ds), want, "{what}");
    }
}

#[test]
fn daemon_pods_get_upstreams_tolerations() {
    let mut spec: PodSpec = serde_json::from_value(json!({"containers": [], "tolerations": [
        {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
        {"key": "mine", "operator": "Equal", "value": "v"}]}))
    .unwrap_or_default();
    add_daemon_tolerations(&mut spec);
    let got: Vec<Value> = spec
        .tolerations
        .iter()
        .flatten()
        .map(|t| serde_json::to_value(t).unwrap_or_default())
        .collect();
    assert_eq!(
        got,
        vec![
            // Replaced in place: no tolerationSeconds, the pod is never evicted for it.
            json!({"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute"}),
            json!({"key": "mine", "operator": "Equal", "value": "v"}),
            json!({"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute"}),
            json!({"key": TAINT_DISK_PRESSURE, "operator": "Exists", "effect": "NoSchedule"}),
            json!({"key": TAINT_MEMORY_PRESSURE, "operator": "Exists", "effect": "NoSchedule"}),
            json!({"key": TAINT_PID_PRESSURE, "operator": "Exists", "effect": "NoSchedule"}),
            json!({"key": TAINT_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}),
        ]
    );
    let mut host = PodSpec {
        host_network: Some(true),
        ..PodSpec::default()
    };
    add_daemon_tolerations(&mut host);
    assert_eq!(host.tolerations.as_ref().map(Vec::len), Some(7));
    assert_eq!(
        host.tolerations
            .as_ref()
            .and_then(|t| t.last())
            .and_then(|t| t.key.as_deref()),
        Some(TAINT_NETWORK_UNAVAILABLE)
    );
}

#[test]
fn the_node_affinity_is_replaced_as_upstream() {
    let pinned = |a: Option<Value>| {
        let affinity = a.map(|a| serde_json::from_value(a).unwrap_or_default());
        serde_json::to_value(replace_node_name_affinity(affinity, "n1")).unwrap_or_default()
    };
    let term = json!({"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]});
    assert_eq!(
        pinned(None),
        json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term}})
    );
    let preferred = json!([{"weight": 1, "preference": {"matchExpressions": [
        {"key": "zone", "operator": "In", "values": ["a"]}]}}]);
    let got = pinned(Some(json!({
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["old"]}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": preferred.clone()},
        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname"}]}})));
    assert_eq!(
        got,
        json!({
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": term,
                "preferredDuringSchedulingIgnoredDuringExecution": preferred},
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"topologyKey": "kubernetes.io/hostname"}]}})
    );
}

#[test]
fn target_node_names() {
    assert_eq!(
        target_node_name(&pod("a", "n1", NEW, "ready", 1)),
        Ok("n1".into())
    );
    assert_eq!(
        target_node_name(&pod("a", "n2", NEW, "pending", 1)),
        Ok("n2".into())
    );
    let bare = Pod {
        spec: Some(PodSpec::default()),
        ..Pod::default()
    };
    assert!(target_node_name(&bare).is_err());
    let two: Pod = serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [], "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["a", "b"]}]}]}}}}}))
    .unwrap_or_default();
    assert_eq!(
        target_node_name(&two),
        Err("the matchFields value of 'metadata.name' is not unique for pod ns/p".into())
    );
}

#[test]
fn the_pod_template_carries_the_labels() {
    let t = create_pod_template(&spec_template(&ds(json!({}))), Some(3), NEW);
    let labels = t.metadata.and_then(|m| m.labels).unwrap_or_default();
    assert_eq!(
        labels.get(TEMPLATE_GENERATION_LABEL).map(String::as_str),
        Some("3")
    );
    assert_eq!(labels.get(HASH_LABEL).map(String::as_str), Some(NEW));
    assert_eq!(labels.get("app").map(String::as_str), Some("d"));
    let with_annotation = ds(json!({"metadata": {"annotations": {
        TEMPLATE_GENERATION_ANNOTATION: "4"}}}));
    assert_eq!(template_generation(&with_annotation), Ok(Some(4)));
    assert_eq!(template_generation(&ds(json!({}))), Ok(None));
}

// ---------------------------------------------------------------------------------------
// manage.

#[test]
fn manage_creates_one_pod_per_eligible_node() {
    let d = ds(json!({}));
    let n = vec![
        node("n1", json!({})),
        tainted("n2", "dedicated", "NoSchedule"),
        node("n3", json!({})),
    ];
    let plan = manage(&input(&d, &n, &[], &no_backoff));
    assert_eq!(plan.create_on, vec!["n1", "n3"]);
    assert!(plan.delete.is_empty());

    // A pod waiting for the scheduler counts as the node's pod.
    let pods = vec![pod("a", "n1", NEW, "pending", 5)];
    let plan = manage(&input(&d, &n, &pods, &no_backoff));
    assert_eq!(plan.create_on, vec!["n3"]);
}

#[test]
fn manage_deletes_what_should_not_be_there() {
    let d = ds(json!({}));
    let n = vec![
        tainted("n1", "dedicated", "NoExecute"),
        tainted("n2", "dedicated", "NoSchedule"),
        node("n3", json!({})),
    ];
    let pods = vec![
        pod("evicted", "n1", NEW, "ready", 50),
        pod("evicted-too", "n1", NEW, "terminating", 50),
        pod("stays", "n2", NEW, "ready", 50),
        pod("oldest", "n3", NEW, "ready", 50),
        pod("extra", "n3", NEW, "ready", 10),
        pod("extra-pending", "n3", NEW, "pending", 60),
        pod("lost", "gone", NEW, "pending", 10),
        pod("lost-bound", "gone", NEW, "ready", 10),
    ];
    let plan = manage(&input(&d, &n, &pods, &no_backoff));
    assert!(plan.create_on.is_empty());
    // The NoExecute node's live pod, every pod but the oldest scheduled one on n3 (an
    // unbound one sorts last), and the unbound pod aimed at a node that does not exist (a
    // bound one is pod GC's).
    assert_eq!(
        names(&plan.delete),
        vec!["evicted", "extra", "extra-pending", "lost"]
    );
}

#[test]
fn failed_pods_are_deleted_under_a_backoff() {
    let d = ds(json!({}));
    let n = nodes(&["n1", "n2"]);
    let pods = vec![
        pod("failed", "n1", NEW, "failed", 10),
        pod("done", "n2", NEW, "succeeded", 10),
    ];
    let plan = manage(&input(&d, &n, &pods, &no_backoff));
    assert_eq!(names(&plan.delete), vec!["failed", "done"]);
    assert_eq!(plan.backoff_next, vec!["uid-ds/2/n1"]);
    assert_eq!(
        plan.notes,
        vec![
            Note {
                warning: true,
                reason: "FailedDaemonPod",
                message: "Found failed daemon pod ns/failed on node n1, will try to kill it".into()
            },
            Note {
                warning: false,
                reason: "SucceededDaemonPod",
                message: "Found succeeded daemon pod ns/done on node n2, will try to delete it"
                    .into()
            },
        ]
    );
    // Nothing is created next to them: the next sync, once they are gone, does.
    assert!(plan.create_on.is_empty());

    let backing_off = |k: &str| (k == "uid-ds/2/n1").then_some(Duration::from_secs(4));
    let plan = manage(&input(&d, &n, &pods, &backing_off));
    assert_eq!(names(&plan.delete), vec!["done"]);
    assert!(plan.backoff_next.is_empty());
    assert_eq!(plan.requeue_after, Some(Duration::from_secs(4)));
}

#[test]
fn a_failed_pod_whose_deletion_is_seen_is_replaced() {
    let d = ds(json!({}));
    let n = nodes(&["n1"]);
    let mut failed = (*pod("failed", "n1", NEW, "failed", 10)).clone();
    failed.metadata.deletion_timestamp = pod("x", "n1", NEW, "terminating", 1)
        .metadata
        .deletion_timestamp
        .clone();
    let pods = vec![Arc::new(failed)];
    // A terminal pod being deleted no longer counts as the node's pod.
    let plan = manage(&input(&d, &n, &pods, &no_backoff));
    assert_eq!(plan.create_on, vec!["n1"]);
}

#[test]
fn backoff_doubles_to_its_maximum_and_is_forgotten() {
    let t0 = Instant::now();
    let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(4));
    assert!(!b.in_backoff_since_update("k", t0));
    b.next("k", t0);
    assert_eq!(b.get("k"), Duration::from_secs(1));
    assert!(b.in_backoff_since_update("k", t0));
    assert!(!b.in_backoff_since_update("k", t0 + Duration::from_secs(1)));
    for (i, want) in [2, 4, 4].into_iter().enumerate() {
        let at = t0 + Duration::from_secs(i as u64 + 1);
        b.next("k", at);
        assert_eq!(b.get("k"), Duration::from_secs(want));
    }
    // Quiet for more than twice the maximum: starts again.
    b.next("k", t0 + Duration::from_secs(3 + 9));
    assert_eq!(b.get("k"), Duration::from_secs(1));
    b.gc(t0 + Duration::from_secs(100));
    assert_eq!(b.get("k"), Duration::ZERO);
}

// ---------------------------------------------------------------------------------------
// The rolling update.

#[test]
fn rolling_update_without_surge_respects_max_unavailable() {
    let n = nodes(&["n1", "n2", "n3", "n4"]);
    let all_old = vec![
        pod("a", "n1", OLD, "ready", 50),
        pod("b", "n2", OLD, "ready", 50),
        pod("c", "n3", OLD, "ready", 50),
        pod("d", "n4", OLD, "ready", 50),
    ];
    let one_new_unready = vec![
        pod("a2", "n1", NEW, "running", 5),
        pod("b", "n2", OLD, "ready", 50),
        pod("c", "n3", OLD, "ready", 50),
        pod("d", "n4", OLD, "ready", 50),
    ];
    let old_broken = vec![
        pod("a2", "n1", NEW, "running", 5),
        pod("b", "n2", OLD, "running", 50),
        pod("c", "n3", OLD, "ready", 50),
        pod("d", "n4", OLD, "ready", 50),
    ];
    let one_node_empty = vec![
        pod("b", "n2", OLD, "ready", 50),
        pod("c", "n3", OLD, "ready", 50),
        pod("d", "n4", OLD, "ready", 50),
    ];
    let ru = |mu: Value| {
        ds(json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": mu}}}}))
    };
    type Case<'a> = (&'a str, DaemonSet, &'a [Arc<Pod>], Vec<&'a str>);
    let cases: Vec<Case> = vec![
        ("one at a time", ru(json!(1)), &all_old, vec!["a"]),
        ("two at a time", ru(json!(2)), &all_old, vec!["a", "b"]),
        ("50% of 4", ru(json!("50%")), &all_old, vec!["a", "b"]),
        (
            "30% of 4 rounds up",
            ru(json!("30%")),
            &all_old,
            vec!["a", "b"],
        ),
        (
            "a new pod not yet available uses the budget",
            ru(json!(1)),
            &one_new_unready,
            vec![],
        ),
        (
            "an unavailable old pod is replaced regardless",
            ru(json!(1)),
            &old_broken,
            vec!["b"],
        ),
        (
            "a node without a pod uses the budget",
            ru(json!(1)),
            &one_node_empty,
            vec![],
        ),
        ("zero and zero means one", ru(json!(0)), &all_old, vec!["a"]),
    ];
    for (what, d, pods, want) in cases {
        let plan = rolling_update(&input(&d, &n, pods, &no_backoff));
        let plan = plan.unwrap_or_default();
        assert_eq!(names(&plan.delete), want, "{what}");
        assert!(plan.create_on.is_empty(), "{what}");
    }
}

#[test]
fn min_ready_seconds_decide_availability() {
    let n = nodes(&["n1", "n2"]);
    let d = ds(json!({"spec": {"minReadySeconds": 10}}));
    // The new pod has been ready 5 s: not available yet, so the old one on n2 waits.
    let pods = vec![
        pod("a2", "n1", NEW, "fresh", 5),
        pod("b", "n2", OLD, "ready", 50),
    ];
    let plan = rolling_update(&input(&d, &n, &pods, &no_backoff)).unwrap_or_default();
    assert!(plan.delete.is_empty());
    let d = ds(json!({"spec": {"minReadySeconds": 3}}));
    let plan = rolling_update(&input(&d, &n, &pods, &no_backoff)).unwrap_or_default();
    assert_eq!(names(&plan.delete), vec!["b"]);
}

#[test]
fn rolling_update_with_surge_creates_before_it_deletes() {
    let surge = |s: Value| {
        ds(json!({"spec": {"updateStrategy": {"rollingUpdate":
            {"maxUnavailable": 0, "maxSurge": s}}}}))
    };
    let n = nodes(&["n1", "n2", "n3"]);
    let all_old = vec![
        pod("a", "n1", OLD, "ready", 50),
        pod("b", "n2", OLD, "ready", 50),
        pod("c", "n3", OLD, "ready", 50),
    ];
    let plan =
        rolling_update(&input(&surge(json!(1)), &n, &all_old, &no_backoff)).unwrap_or_default();
    assert_eq!(plan.create_on, vec!["n1"]);
    assert!(plan.delete.is_empty());
    let plan = rolling_update(&input(&surge(json!("100%")), &n, &all_old, &no_backoff))
        .unwrap_or_default();
    assert_eq!(plan.create_on, vec!["n1", "n2", "n3"]);

    // A surged new pod not yet available holds the budget; an available one retires its
    // old pod; an old pod that is not available gets its replacement at once.
    let mid = vec![
        pod("a", "n1", OLD, "ready", 50),
        pod("a2", "n1", NEW, "running", 5),
        pod("b", "n2", OLD, "ready", 50),
        pod("c", "n3", OLD, "running", 50),
    ];
    let plan = rolling_update(&input(&surge(json!(1)), &n, &mid, &no_backoff)).unwrap_or_default();
    assert!(plan.delete.is_empty());
    assert_eq!(plan.create_on, vec!["n3"]);
    let done = vec![
        pod("a", "n1", OLD, "ready", 50),
        pod("a2", "n1", NEW, "ready", 5),
        pod("b", "n2", OLD, "ready", 50),
        pod("c", "n3", OLD, "ready", 50),
    ];
    let plan = rolling_update(&input(&surge(json!(1)), &n, &done, &no_backoff)).unwrap_or_default();
    assert_eq!(names(&plan.delete), vec!["a"]);
    assert_eq!(plan.create_on, vec!["n2"]);
}

#[test]
fn manage_under_surge_keeps_an_old_ready_pod_next_to_a_new_one() {
    let d = ds(json!({"spec": {"updateStrategy": {"rollingUpdate":
        {"maxUnavailable": 0, "maxSurge": 1}}}}));
    let n = nodes(&["n1"]);
    let waiting = vec![
        pod("old", "n1", OLD, "ready", 50),
        pod("new", "n1", NEW, "running", 5),
    ];
    assert!(manage(&input(&d, &n, &waiting, &no_backoff)).is_empty());
    let ready = vec![
        pod("old", "n1", OLD, "ready", 50),
        pod("new", "n1", NEW, "ready", 5),
    ];
    assert_eq!(
        names(&manage(&input(&d, &n, &ready, &no_backoff)).delete),
        vec!["old"]
    );
    let old_broken = vec![
        pod("old", "n1", OLD, "running", 50),
        pod("older", "n1", OLD, "ready", 60),
        pod("new", "n1", NEW, "running", 5),
    ];
    // The oldest old pod is the one kept (and then retired, not being ready).
    assert_eq!(
        names(&manage(&input(&d, &n, &old_broken, &no_backoff)).delete),
        vec!["old"]
    );
    // Only terminating pods: surging needs one live pod, so one is made.
    let gone = vec![pod("old", "n1", OLD, "terminating", 50)];
    assert_eq!(
        manage(&input(&d, &n, &gone, &no_backoff)).create_on,
        vec!["n1"]
    );
}

#[test]
fn the_rolling_update_waits_for_manage_and_on_delete_never_rolls() {
    let n = nodes(&["n1", "n2"]);
    let pods = vec![pod("a", "n1", OLD, "ready", 50)];
    let d = ds(json!({}));
    let plan = plan(&input(&d, &n, &pods, &no_backoff)).unwrap_or_default();
    assert!(!plan.rolling);
    assert_eq!(plan.create_on, vec!["n2"]);
    assert!(plan.delete.is_empty());

    let pods = vec![
        pod("a", "n1", OLD, "ready", 50),
        pod("b", "n2", OLD, "ready", 50),
    ];
    let rolled = super::sync::plan(&input(&d, &n, &pods, &no_backoff)).unwrap_or_default();
    assert!(rolled.rolling);
    assert_eq!(names(&rolled.delete), vec!["a"]);
    let on_delete = ds(json!({"spec": {"updateStrategy": {"type": "OnDelete",
        "rollingUpdate": null}}}));
    let plan = super::sync::plan(&input(&on_delete, &n, &pods, &no_backoff)).unwrap_or_default();
    assert!(plan.is_empty());
}

// ---------------------------------------------------------------------------------------
// Status.

#[test]
fn status_counts_as_upstream() {
    let d = ds(json!({"spec": {"minReadySeconds": 10}}));
    let n = vec![
        node("n1", json!({})),
        node("n2", json!({})),
        node("n3", json!({})),
        node("n4", json!({})),
        tainted("n5", "dedicated", "NoExecute"),
    ];
    let pods = vec![
        pod("a", "n1", NEW, "ready", 50),
        pod("b", "n2", OLD, "fresh", 50),
        pod("c", "n3", NEW, "pending", 50),
        pod("e", "n5", NEW, "ready", 50),
    ];
    let c = counts(&input(&d, &n, &pods, &no_backoff));
    assert_eq!(
        c,
        Counts {
            desired: 4,
            current: 3,
            misscheduled: 1,
            ready: 2,
            updated: 2,
            available: 1,
            unavailable: 3,
        }
    );
    assert!(status_needs_update(&d, &c));
    let s = new_status(&d, &c, true);
    let d2 = ds(json!({"status": serde_json::to_value(&s).unwrap_or_default()}));
    assert!(!status_needs_update(&d2, &c));
    // A new generation must be observed even with the same counts.
    let d3 = ds(json!({"metadata": {"generation": 3},
        "status": serde_json::to_value(&s).unwrap_or_default()}));
    assert!(status_needs_update(&d3, &c));
    assert_eq!(new_status(&d3, &c, false).observed_generation, Some(2));
    assert_eq!(new_status(&d3, &c, true).observed_generation, Some(3));
}

#[test]
fn the_status_is_written_as_go_writes_it() {
    let d = ds(json!({}));
    let c = Counts {
        desired: 3,
        current: 3,
        ready: 3,
        updated: 3,
        available: 3,
        ..Counts::default()
    };
    assert_eq!(
        wire_status(&new_status(&d, &c, true)),
        json!({"currentNumberScheduled": 3, "numberMisscheduled": 0,
            "desiredNumberScheduled": 3, "numberReady": 3, "observedGeneration": 2,
            "updatedNumberScheduled": 3, "numberAvailable": 3, "numberUnavailable": null,
            "collisionCount": null, "conditions": null})
    );
}

// ---------------------------------------------------------------------------------------
// Revisions.

fn controller() -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        name: "ds".into(),
        uid: "uid-ds".into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn revision(name: &str, number: i64, hash: &str, data: Value) -> Arc<ControllerRevision> {
    Arc::new(ControllerRevision {
        metadata: serde_json::from_value(json!({"name": name, "namespace": "ns",
            "labels": {HASH_LABEL: hash}}))
        .unwrap_or_default(),
        data: Some(RawExtension(data)),
        revision: number,
    })
}

#[test]
fn the_snapshot_is_named_and_labelled_by_its_hash() {
    let d = ds(json!({"metadata": {"annotations": {"kubernetes.io/change-cause": "v2"}}}));
    let patch = patch_of(&d).unwrap_or_default();
    assert_eq!(
        history_json(&patch),
        r#"{"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"d"}},"spec":{"containers":[{"image":"img:2","name":"c"}]}}}}"#
    );
    let r = snapshot(&d, &controller(), patch.clone(), 3);
    let hash = hash_of(&patch, None);
    assert_eq!(r.metadata.name, Some(format!("ds-{hash}")));
    assert_eq!(r.revision, 3);
    let labels = r.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get(HASH_LABEL), Some(&hash));
    assert_eq!(labels.get("app").map(String::as_str), Some("d"));
    assert_eq!(
        r.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kubernetes.io/change-cause"))
            .map(String::as_str),
        Some("v2")
    );
    assert!(matches(&patch, &r));
    // A collision count gives another name.
    let bumped = ds(json!({"status": {"collisionCount": 1}}));
    let r2 = snapshot(&bumped, &controller(), patch.clone(), 3);
    assert_ne!(r2.metadata.name, r.metadata.name);
    assert_eq!(hash_of(&patch, Some(1)), hash_of(&patch, Some(1)));
}

fn history_json(v: &Value) -> String {
    String::from_utf8_lossy(&crate::history::go_json(v)).into_owned()
}

#[test]
fn current_and_old_revisions_and_the_duplicates() {
    let d = ds(json!({}));
    let patch = patch_of(&d).unwrap_or_default();
    let revs = vec![
        revision("ds-1", 1, "h1", json!({"spec": {"template": {"old": 1}}})),
        revision("ds-2", 4, "h2", patch.clone()),
        revision("ds-3", 2, "h3", json!({"spec": {"template": {"old": 2}}})),
        revision("ds-4", 4, "h4", patch.clone()),
    ];
    let (current, old) = split_revisions(&patch, &revs);
    assert_eq!(current.len(), 2);
    assert_eq!(max_revision(&old), 2);
    let (keep, dups) = dedup_current(&current).unwrap_or_else(|| (revs[0].clone(), vec![]));
    // The last of the highest numbers is kept.
    assert_eq!(keep.metadata.name.as_deref(), Some("ds-4"));
    assert_eq!(dups.len(), 1);
    assert_eq!(dups[0].metadata.name.as_deref(), Some("ds-2"));
    assert!(dedup_current(&[]).is_none());
}

#[test]
fn history_is_cleaned_oldest_first_sparing_live_hashes() {
    let old: Vec<Arc<ControllerRevision>> = (1..=5)
        .map(|i| revision(&format!("ds-{i}"), i, &format!("h{i}"), json!({"i": i})))
        .collect();
    let pods = vec![
        pod("a", "n1", "h1", "ready", 10),
        // A terminal pod being deleted still keeps its revision.
        {
            let mut p = (*pod("b", "n2", "h3", "failed", 10)).clone();
            p.metadata.deletion_timestamp = pod("x", "n1", NEW, "terminating", 1)
                .metadata
                .deletion_timestamp
                .clone();
            Arc::new(p)
        },
    ];
    let names_of = |v: Vec<Arc<ControllerRevision>>| {
        v.iter()
            .map(|r| r.metadata.name.clone().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names_of(history_to_clean(&old, &pods, 3)),
        vec!["ds-2", "ds-4"]
    );
    // Live revisions do not count against the kill: limit 2 of 5 kills three.
    assert_eq!(
        names_of(history_to_clean(&old, &pods, 2)),
        vec!["ds-2", "ds-4", "ds-5"]
    );
    assert_eq!(
        names_of(history_to_clean(&old, &pods, 0)),
        vec!["ds-2", "ds-4", "ds-5"]
    );
    assert!(history_to_clean(&old, &pods, 5).is_empty());
    assert!(history_to_clean(&old, &[], 10).is_empty());
}

#[test]
fn surge_and_unavailable_counts() {
    let d = ds(json!({"spec": {"updateStrategy": {"rollingUpdate":
        {"maxUnavailable": "10%", "maxSurge": "25%"}}}}));
    assert_eq!(unavailable_count(&d, 5), Ok(1));
    assert_eq!(surge_count(&d, 5), Ok(2));
    assert!(allows_surge(&d));
    assert!(!allows_surge(&ds(json!({}))));
    let on_delete = ds(json!({"spec": {"updateStrategy": {"type": "OnDelete",
        "rollingUpdate": null}}}));
    assert_eq!(surge_count(&on_delete, 5), Ok(0));
    assert_eq!(unavailable_count(&on_delete, 5), Ok(0));
}
