//! The StatefulSet's decisions, table by table, over hand-made caches.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

use super::sync::*;
use crate::history;

const CUR: &str = "web-aaa";
const UPD: &str = "web-bbb";

fn now() -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn set(replicas: i32, extra: Value) -> StatefulSet {
    let mut v = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "ns", "uid": "uid-web", "generation": 4},
        "spec": {
            "replicas": replicas, "serviceName": "nginx",
            "selector": {"matchLabels": {"app": "web"}},
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:2"}]}}
        }
    });
    merge(&mut v, extra);
    serde_json::from_value(v).unwrap_or_default()
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

/// The set at the current revision: the old image.
fn at_current(s: &StatefulSet) -> StatefulSet {
    let mut c = s.clone();
    if let Some(spec) = c.spec.as_mut() {
        spec.template = serde_json::from_value(json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}}))
        .unwrap_or_default();
    }
    c
}

/// A pod of `web` at `ordinal`: `state` is "ready" (Running, Ready since 100 s),
/// "fresh" (Ready since 5 s), "pending", "running" (not ready), "failed", "terminating".
fn pod(ordinal: i32, revision: &str, state: &str) -> Arc<Pod> {
    let since = if state == "fresh" { 5 } else { 100 };
    let ready_at = now() - SignedDuration::from_secs(since);
    let (phase, ready) = match state {
        "ready" | "fresh" | "terminating" => ("Running", true),
        "pending" => ("Pending", false),
        "running" => ("Running", false),
        "failed" => ("Failed", false),
        other => (other, false),
    };
    let mut p: Pod = serde_json::from_value(json!({
        "metadata": {"name": format!("web-{ordinal}"), "namespace": "ns",
            "uid": format!("uid-{ordinal}-{revision}"),
            "labels": {"app": "web", POD_NAME_LABEL: format!("web-{ordinal}"),
                POD_INDEX_LABEL: ordinal.to_string(), REVISION_LABEL: revision},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                "uid": "uid-web", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {"containers": [{"name": "nginx", "image": "nginx"}],
            "hostname": format!("web-{ordinal}"), "subdomain": "nginx"},
        "status": {"phase": phase, "conditions": [{"type": "Ready",
            "status": if ready { "True" } else { "False" },
            "lastTransitionTime": ready_at.to_string()}]}
    }))
    .unwrap_or_default();
    if state == "terminating" {
        p.metadata.deletion_timestamp = Some(Time(now()));
    }
    Arc::new(p)
}

/// (what, the set, its pods, the actions wanted).
type Case = (&'static str, StatefulSet, Vec<Arc<Pod>>, Vec<&'static str>);
/// (whenDeleted, whenScaled, replicas, the references wanted as (kind, name, uid)).
type PolicyCase = (
    &'static str,
    &'static str,
    i32,
    Vec<(&'static str, &'static str, &'static str)>,
);

fn no_claims(_: &str) -> Option<Arc<PersistentVolumeClaim>> {
    None
}

fn plan_for(s: &StatefulSet, pods: &[Arc<Pod>], current: &str, update: &str) -> Plan {
    plan_with(s, pods, current, update, &no_claims)
}

fn plan_with(
    s: &StatefulSet,
    pods: &[Arc<Pod>],
    current: &str,
    update: &str,
    claims: &dyn Fn(&str) -> Option<Arc<PersistentVolumeClaim>>,
) -> Plan {
    let current_set = at_current(s);
    let input = Input {
        set: s,
        current_set: &current_set,
        update_set: s,
        current_revision: current,
        update_revision: update,
        collision_count: 0,
        pods,
        claim: claims,
        now: now(),
    };
    plan(&input).unwrap_or_else(|e| panic!("plan: {e}"))
}

/// The plan as `create web-0`, `delete web-2`, `update web-1`, `claims web-1`, ….
fn actions(p: &Plan) -> Vec<String> {
    p.steps()
        .map(|s| {
            let verb = match s {
                Step::CreatePod { .. } => "create",
                Step::CreateClaims { .. } => "claims",
                Step::UpdatePod { .. } => "update",
                Step::UpdateClaims { .. } => "fix-claims",
                Step::DeletePod { .. } => "delete",
            };
            format!("{verb} {}", s.pod().metadata.name.as_deref().unwrap_or(""))
        })
        .collect()
}

#[test]
fn scaling_up_and_down_follow_the_pod_management_policy() {
    let parallel = json!({"spec": {"podManagementPolicy": "Parallel"}});
    let min_ready = json!({"spec": {"minReadySeconds": 10}});
    let cases: Vec<Case> = vec![
        (
            "ordered: only the first pod",
            set(3, json!({})),
            vec![],
            vec!["create web-0"],
        ),
        (
            "ordered: blocks on a pending pod",
            set(3, json!({})),
            vec![pod(0, UPD, "pending")],
            vec![],
        ),
        (
            "ordered: blocks on a running pod not ready",
            set(3, json!({})),
            vec![pod(0, UPD, "running")],
            vec![],
        ),
        (
            "ordered: the next once ready",
            set(3, json!({})),
            vec![pod(0, UPD, "ready")],
            vec!["create web-1"],
        ),
        (
            "ordered: a gap is filled first",
            set(3, json!({})),
            vec![pod(0, UPD, "ready"), pod(2, UPD, "ready")],
            vec!["create web-1"],
        ),
        (
            "ordered: minReadySeconds holds a pod ready for 5 s",
            set(3, min_ready.clone()),
            vec![pod(0, UPD, "fresh")],
            vec![],
        ),
        (
            "ordered: minReadySeconds passed",
            set(3, min_ready),
            vec![pod(0, UPD, "ready")],
            vec!["create web-1"],
        ),
        (
            "ordered: blocks on a terminating pod",
            set(3, json!({})),
            vec![pod(0, UPD, "terminating")],
            vec![],
        ),
        (
            "parallel: all at once",
            set(3, parallel.clone()),
            vec![],
            vec!["create web-0", "create web-1", "create web-2"],
        ),
        (
            "parallel: a pod not ready does not block",
            set(3, parallel.clone()),
            vec![pod(0, UPD, "pending")],
            vec!["create web-1", "create web-2"],
        ),
        (
            "a failed pod is deleted, then the pass ends",
            set(3, json!({})),
            vec![pod(0, UPD, "ready"), pod(1, UPD, "failed")],
            vec!["delete web-1"],
        ),
        (
            "ordered scale down: the highest ordinal alone",
            set(1, json!({})),
            vec![
                pod(0, UPD, "ready"),
                pod(1, UPD, "ready"),
                pod(2, UPD, "ready"),
            ],
            vec!["delete web-2"],
        ),
        (
            "ordered scale down waits for a terminating pod",
            set(1, json!({})),
            vec![
                pod(0, UPD, "ready"),
                pod(1, UPD, "ready"),
                pod(2, UPD, "terminating"),
            ],
            vec![],
        ),
        (
            "ordered scale down: an unhealthy pod blocks unless it is the first unhealthy",
            set(1, json!({})),
            vec![
                pod(0, UPD, "ready"),
                pod(1, UPD, "running"),
                pod(2, UPD, "running"),
            ],
            vec![],
        ),
        (
            "ordered scale down: the first unhealthy pod may go",
            set(1, json!({})),
            vec![
                pod(0, UPD, "ready"),
                pod(1, UPD, "ready"),
                pod(2, UPD, "running"),
            ],
            vec!["delete web-2"],
        ),
        (
            "ordered scale down waits for the replicas",
            set(1, json!({})),
            vec![pod(0, UPD, "running"), pod(1, UPD, "ready")],
            vec![],
        ),
        (
            "parallel scale down: every condemned pod",
            set(1, parallel),
            vec![
                pod(0, UPD, "ready"),
                pod(1, UPD, "running"),
                pod(2, UPD, "ready"),
            ],
            vec!["delete web-2", "delete web-1"],
        ),
    ];
    for (what, s, pods, want) in cases {
        let p = plan_for(&s, &pods, UPD, UPD);
        assert_eq!(actions(&p), want, "{what}");
    }
}

#[test]
fn rolling_updates_go_down_from_the_highest_ordinal_to_the_partition() {
    let all_current = || {
        vec![
            pod(0, CUR, "ready"),
            pod(1, CUR, "ready"),
            pod(2, CUR, "ready"),
        ]
    };
    let partition =
        |p: i32| json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": p}}}});
    let cases: Vec<Case> = vec![
        (
            "the highest first",
            set(3, json!({})),
            all_current(),
            vec!["delete web-2"],
        ),
        (
            "waits for the updated pod to be ready",
            set(3, json!({})),
            vec![
                pod(0, CUR, "ready"),
                pod(1, CUR, "ready"),
                pod(2, UPD, "running"),
            ],
            vec![],
        ),
        (
            "then the next",
            set(3, json!({})),
            vec![
                pod(0, CUR, "ready"),
                pod(1, CUR, "ready"),
                pod(2, UPD, "ready"),
            ],
            vec!["delete web-1"],
        ),
        (
            "a terminating pod is not deleted again, and the pass waits",
            set(3, json!({})),
            vec![
                pod(0, CUR, "ready"),
                pod(1, CUR, "ready"),
                pod(2, CUR, "terminating"),
            ],
            vec![],
        ),
        (
            "partition 2 holds web-0 and web-1",
            set(3, partition(2)),
            vec![
                pod(0, CUR, "ready"),
                pod(1, CUR, "ready"),
                pod(2, UPD, "ready"),
            ],
            vec![],
        ),
        (
            "partition 1 takes web-1",
            set(3, partition(1)),
            vec![
                pod(0, CUR, "ready"),
                pod(1, CUR, "ready"),
                pod(2, UPD, "ready"),
            ],
            vec!["delete web-1"],
        ),
        (
            "maxUnavailable 2: two at once",
            set(
                3,
                json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}}}}),
            ),
            all_current(),
            vec!["delete web-2", "delete web-1"],
        ),
        (
            "maxUnavailable 2 with one unavailable (Parallel, which does not wait): one more",
            set(
                3,
                json!({"spec": {"podManagementPolicy": "Parallel",
                    "updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}}}}),
            ),
            vec![
                pod(0, CUR, "ready"),
                pod(1, CUR, "ready"),
                pod(2, UPD, "running"),
            ],
            vec!["delete web-1"],
        ),
        (
            "maxUnavailable 2, OrderedReady: an unready pod stops the pass before the update",
            set(
                3,
                json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}}}}),
            ),
            vec![
                pod(0, CUR, "ready"),
                pod(1, CUR, "ready"),
                pod(2, UPD, "running"),
            ],
            vec![],
        ),
        (
            "maxUnavailable 50% of 3 rounds down to 1",
            set(
                3,
                json!({"spec": {"updateStrategy": {"rollingUpdate": {"maxUnavailable": "50%"}}}}),
            ),
            all_current(),
            vec!["delete web-2"],
        ),
        (
            "OnDelete does nothing",
            set(
                3,
                json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}}),
            ),
            all_current(),
            vec![],
        ),
    ];
    for (what, s, pods, want) in cases {
        let p = plan_for(&s, &pods, CUR, UPD);
        assert_eq!(actions(&p), want, "{what}");
    }
    // The deleted pod no longer counts as current in the status written.
    let p = plan_for(&set(3, json!({})), &all_current(), CUR, UPD);
    assert_eq!(p.status.current_replicas, Some(2));
    assert_eq!(p.status.updated_replicas, Some(0));
}

#[test]
fn new_pods_take_the_revision_their_ordinal_falls_in() {
    // Partition 2: a missing web-0 is made at the current revision, web-2 at the update one.
    let s = set(
        3,
        json!({"spec": {"podManagementPolicy": "Parallel",
            "updateStrategy": {"rollingUpdate": {"partition": 2}}}}),
    );
    let p = plan_for(&s, &[pod(1, CUR, "ready")], CUR, UPD);
    let created: Vec<(String, String, String)> = p
        .steps()
        .filter_map(|s| match s {
            Step::CreatePod { pod, .. } => Some((
                pod.metadata.name.clone().unwrap_or_default(),
                pod_revision(pod).to_owned(),
                pod.spec
                    .as_ref()
                    .map(|s| s.containers[0].image.clone().unwrap_or_default())
                    .unwrap_or_default(),
            )),
            _ => None,
        })
        .collect();
    assert_eq!(
        created,
        [
            ("web-0".to_owned(), CUR.to_owned(), "nginx:1".to_owned()),
            ("web-2".to_owned(), UPD.to_owned(), "nginx:2".to_owned())
        ]
    );
}

#[test]
fn a_new_pod_has_its_identity_and_claims() {
    let s = set(
        2,
        json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "data",
            "labels": {"tier": "db"}},
            "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}]}}),
    );
    let p = plan_for(&s, &[], UPD, UPD);
    let Some(Step::CreatePod {
        pod,
        claims,
        deleting,
    }) = p.steps().next()
    else {
        panic!("no create: {:?}", actions(&p));
    };
    assert_eq!(pod.metadata.name.as_deref(), Some("web-0"));
    assert_eq!(pod.metadata.generate_name, None);
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(POD_NAME_LABEL).map(String::as_str),
        Some("web-0")
    );
    assert_eq!(labels.get(POD_INDEX_LABEL).map(String::as_str), Some("0"));
    assert_eq!(labels.get(REVISION_LABEL).map(String::as_str), Some(UPD));
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    let spec = pod.spec.clone().unwrap_or_default();
    assert_eq!(spec.hostname.as_deref(), Some("web-0"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let volumes = spec.volumes.unwrap_or_default();
    assert_eq!(volumes.len(), 1);
    assert_eq!(volumes[0].name, "data");
    assert_eq!(
        volumes[0]
            .persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.as_str()),
        Some("data-web-0")
    );
    assert_eq!(
        pods_controller(pod),
        Some(("StatefulSet".to_owned(), "uid-web".to_owned()))
    );
    assert_eq!(claims.len(), 1);
    assert_eq!(claims[0].metadata.name.as_deref(), Some("data-web-0"));
    assert_eq!(claims[0].metadata.namespace.as_deref(), Some("ns"));
    let cl = claims[0].metadata.labels.clone().unwrap_or_default();
    assert_eq!(cl.get("app").map(String::as_str), Some("web"));
    assert_eq!(cl.get("tier").map(String::as_str), Some("db"));
    assert!(deleting.is_empty());

    // A claim of the pod being deleted: reported, not created again.
    let gone: PersistentVolumeClaim = serde_json::from_value(json!({"metadata": {
        "name": "data-web-0", "namespace": "ns", "deletionTimestamp": "2027-01-15T08:00:00Z"}}))
    .unwrap_or_default();
    let gone = Arc::new(gone);
    let lookup = move |n: &str| (n == "data-web-0").then(|| gone.clone());
    let p = plan_with(&s, &[], UPD, UPD, &lookup);
    let Some(Step::CreatePod {
        claims, deleting, ..
    }) = p.steps().next()
    else {
        panic!("no create");
    };
    assert!(claims.is_empty());
    assert_eq!(deleting, &["data-web-0".to_owned()]);
}

fn pods_controller(pod: &Pod) -> Option<(String, String)> {
    crate::pods::controller_of(&pod.metadata).map(|r| (r.kind.clone(), r.uid.clone()))
}

#[test]
fn ordinals_are_parsed_as_upstreams_regex() {
    for (name, want) in [
        ("web-0", Some(("web", 0))),
        ("web-12", Some(("web", 12))),
        ("my-web-3", Some(("my-web", 3))),
        ("web-", None),
        ("web", None),
        ("web-x1", None),
        ("web-99999999999", None),
    ] {
        assert_eq!(parent_and_ordinal(name), want, "{name}");
    }
}

fn claim_with(refs: &[(&str, &str, &str)]) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some("data-web-1".into()),
            namespace: Some("ns".into()),
            owner_references: Some(
                refs.iter()
                    .map(|(kind, name, uid)| OwnerReference {
                        api_version: if *kind == "Pod" { "v1" } else { "apps/v1" }.into(),
                        kind: (*kind).into(),
                        name: (*name).into(),
                        uid: (*uid).into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    })
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn claim_references_follow_the_retention_policy() {
    let policy = |deleted: &str, scaled: &str, replicas: i32| {
        set(
            replicas,
            json!({"spec": {"persistentVolumeClaimRetentionPolicy":
                {"whenDeleted": deleted, "whenScaled": scaled}}}),
        )
    };
    let p1 = pod(1, UPD, "ready");
    let set_ref = ("StatefulSet", "web", "uid-web");
    let pod_ref = ("Pod", "web-1", "uid-1-web-bbb");
    // (policy, replicas: web-1 in range with 2, scaled down with 1, refs wanted)
    let cases: Vec<PolicyCase> = vec![
        ("Retain", "Retain", 2, vec![]),
        ("Delete", "Retain", 2, vec![set_ref]),
        ("Delete", "Retain", 1, vec![set_ref]),
        ("Retain", "Delete", 2, vec![]),
        ("Retain", "Delete", 1, vec![pod_ref]),
        ("Delete", "Delete", 2, vec![set_ref]),
        ("Delete", "Delete", 1, vec![pod_ref]),
    ];
    for (deleted, scaled, replicas, want) in cases {
        let s = policy(deleted, scaled, replicas);
        let what = format!("{deleted}/{scaled} with {replicas} replicas");
        let bare = claim_with(&[]);
        let fixed = claim_owner_refs(&bare, &s, &p1);
        let got: Vec<(String, String)> = fixed
            .iter()
            .map(|r| (r.kind.clone(), r.uid.clone()))
            .collect();
        let want_pairs: Vec<(String, String)> = want
            .iter()
            .map(|(k, _, u)| ((*k).to_owned(), (*u).to_owned()))
            .collect();
        assert_eq!(got, want_pairs, "{what}");
        assert!(
            is_claim_owner_up_to_date(&claim_with(&want), &s, &p1),
            "{what}: the wanted refs are up to date"
        );
        assert_eq!(
            is_claim_owner_up_to_date(&bare, &s, &p1),
            want.is_empty(),
            "{what}: no refs"
        );
    }
    // Retain/Retain removes our references, keeps others'.
    let s = policy("Retain", "Retain", 2);
    let c = claim_with(&[set_ref, ("ConfigMap", "x", "uid-x")]);
    assert!(!is_claim_owner_up_to_date(&c, &s, &p1));
    let refs = claim_owner_refs(&c, &s, &p1);
    assert_eq!(refs.len(), 1);
    assert_eq!(refs[0].uid, "uid-x");
    // A reference to an older pod of the same name is stale: left alone, and it blocks a
    // new pod's creation when claims are deleted on scale down.
    let s = policy("Retain", "Delete", 2);
    let stale = claim_with(&[("Pod", "web-1", "uid-old")]);
    assert!(is_claim_owner_up_to_date(&stale, &s, &p1));
    assert!(stale_pod_ref(&stale, &p1));
    let stale = Arc::new(stale);
    let lookup = move |n: &str| (n == "data-web-1").then(|| stale.clone());
    let s = set(
        2,
        json!({"spec": {"persistentVolumeClaimRetentionPolicy":
            {"whenDeleted": "Retain", "whenScaled": "Delete"},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}}),
    );
    let p = plan_with(&s, &[pod(0, UPD, "ready")], UPD, UPD, &lookup);
    assert!(
        !actions(&p).contains(&"create web-1".to_owned()),
        "{:?}",
        actions(&p)
    );
    // An unexpected controller: the retention policy is ignored for the claim.
    let s = policy("Delete", "Delete", 2);
    let other = claim_with(&[("ReplicaSet", "rs", "uid-rs")]);
    assert!(has_unexpected_controller(&other, &s, &p1));
    assert!(is_claim_owner_up_to_date(&other, &s, &p1));
}

#[test]
fn the_status_counts_as_upstream() {
    let pods = vec![
        pod(0, CUR, "ready"),
        pod(1, UPD, "fresh"),
        pod(2, UPD, "pending"),
        pod(3, CUR, "terminating"),
    ];
    let s = set(3, json!({"spec": {"minReadySeconds": 10}}));
    let p = plan_for(&s, &pods, CUR, UPD);
    let st = &p.status;
    assert_eq!(st.replicas, 4);
    assert_eq!(st.ready_replicas, Some(3));
    assert_eq!(st.available_replicas, Some(2));
    assert_eq!(st.current_replicas, Some(1));
    assert_eq!(st.updated_replicas, Some(2));
    assert_eq!(st.observed_generation, Some(4));
    assert_eq!(st.current_revision.as_deref(), Some(CUR));
    assert_eq!(st.update_revision.as_deref(), Some(UPD));
    assert_eq!(st.collision_count, Some(0));

    // All updated and ready: the update revision becomes the current one.
    let s = set(2, json!({}));
    let p = plan_for(&s, &[pod(0, UPD, "ready"), pod(1, UPD, "ready")], CUR, UPD);
    let mut st = p.status.clone();
    complete_rolling_update(&s, &mut st);
    assert_eq!(st.current_revision.as_deref(), Some(UPD));
    assert_eq!(st.current_replicas, Some(2));
    assert!(inconsistent_status(&s, &st));
    let mut written = s.clone();
    written.status = Some(st.clone());
    assert!(!inconsistent_status(&written, &st));
    // Go's omitempty: zero counts are not written, availableReplicas always is.
    let w = wire_status(&plan_for(&set(0, json!({})), &[], UPD, UPD).status);
    let v = serde_json::to_value(w).unwrap_or_default();
    assert_eq!(v.get("readyReplicas"), None);
    assert_eq!(v.get("availableReplicas"), Some(&json!(0)));
    assert_eq!(v.get("replicas"), Some(&json!(0)));
}

#[test]
fn a_revision_restores_its_template() {
    let s = set(1, json!({}));
    let old = at_current(&s);
    let data =
        history::template_patch(&old.spec.clone().unwrap_or_default().template).unwrap_or_default();
    let rev = ControllerRevision {
        data: Some(k8s_openapi::apimachinery::pkg::runtime::RawExtension(data)),
        ..Default::default()
    };
    let applied = apply_revision(&s, &rev);
    assert_eq!(
        applied.spec.as_ref().map(|s| &s.template),
        old.spec.as_ref().map(|s| &s.template)
    );
    // The rest of the set is the set's.
    assert_eq!(applied.spec.as_ref().and_then(|s| s.replicas), Some(1));
}

#[test]
fn a_pod_with_a_wrong_identity_is_updated() {
    let mut p = (*pod(0, UPD, "ready")).clone();
    if let Some(l) = p.metadata.labels.as_mut() {
        l.remove(POD_NAME_LABEL);
    }
    let plan = plan_for(&set(1, json!({})), &[Arc::new(p)], UPD, UPD);
    let Some(Step::UpdatePod { pod, changed, .. }) = plan.steps().next() else {
        panic!("{:?}", actions(&plan));
    };
    assert!(changed);
    assert_eq!(
        pod.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(POD_NAME_LABEL))
            .map(String::as_str),
        Some("web-0")
    );
}
