//! Tables for the graph's transitions, the decisions and the patch bodies.

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde_json::json;

use super::decide::{self, Decision, OwnerState, Policy};
use super::graph::{
    alternate_owner_identity, partition_dependents, Change, Effect, Graph, ObjectRef, Observed,
    FOREGROUND, ORPHAN,
};
use super::queue::{backoff, WorkQueue};

fn id(kind: &str, ns: &str, name: &str, uid: &str) -> ObjectRef {
    let api_version = match kind {
        "Deployment" | "ReplicaSet" => "apps/v1",
        "Widget" => "example.com/v1",
        _ => "v1",
    };
    ObjectRef {
        kind: kind.into(),
        api_version: api_version.into(),
        namespace: ns.into(),
        name: name.into(),
        uid: uid.into(),
    }
}

fn owner_ref(o: &ObjectRef, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: o.api_version.clone(),
        kind: o.kind.clone(),
        name: o.name.clone(),
        uid: o.uid.clone(),
        controller: Some(true),
        block_owner_deletion: block.then_some(true),
    }
}

fn obj(identity: &ObjectRef, owners: Vec<OwnerReference>) -> Observed {
    Observed {
        identity: identity.clone(),
        owners,
        deleting: false,
        finalizers: Vec::new(),
    }
}

fn deleting(identity: &ObjectRef, owners: Vec<OwnerReference>, finalizers: &[&str]) -> Observed {
    Observed {
        identity: identity.clone(),
        owners,
        deleting: true,
        finalizers: finalizers.iter().map(|f| (*f).to_owned()).collect(),
    }
}

fn del(uid: &str) -> Effect {
    Effect::AttemptToDelete(uid.into())
}

#[test]
fn an_owner_nobody_has_seen_is_a_virtual_node_checked_by_a_live_read() {
    let mut g = Graph::default();
    let deploy = id("Deployment", "default", "web", "d1");
    let rs = id("ReplicaSet", "default", "web-1", "r1");
    // The dependent first: its owner becomes a virtual node, to be verified.
    let fx = g.apply(Change::Upsert(obj(&rs, vec![owner_ref(&deploy, true)])));
    assert_eq!(fx, vec![del("d1")]);
    let virtual_owner = g.node("d1").expect("virtual node");
    assert!(!virtual_owner.observed);
    assert_eq!(virtual_owner.identity, deploy);
    assert!(virtual_owner.dependents.contains("r1"));
    // The owner is then seen: observed, nothing to do.
    assert_eq!(g.apply(Change::Upsert(obj(&deploy, vec![]))), vec![]);
    assert!(g.node("d1").expect("node").observed);
    // The owner first: the dependent joins it without a check.
    let mut g = Graph::default();
    assert_eq!(g.apply(Change::Upsert(obj(&deploy, vec![]))), vec![]);
    assert_eq!(
        g.apply(Change::Upsert(obj(&rs, vec![owner_ref(&deploy, true)]))),
        vec![]
    );
}

#[test]
fn a_deleted_owner_sends_its_dependents_to_attempt_to_delete_and_is_remembered_absent() {
    let mut g = Graph::default();
    let deploy = id("Deployment", "default", "web", "d1");
    let a = id("ReplicaSet", "default", "a", "r1");
    let b = id("ReplicaSet", "default", "b", "r2");
    g.apply(Change::Upsert(obj(&deploy, vec![])));
    g.apply(Change::Upsert(obj(&a, vec![owner_ref(&deploy, true)])));
    g.apply(Change::Upsert(obj(&b, vec![owner_ref(&deploy, false)])));
    let mut fx = g.apply(Change::Deleted(obj(&deploy, vec![])));
    fx.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(fx, vec![del("r1"), del("r2")]);
    assert!(g.node("d1").is_none());
    assert!(
        g.absent.has(&deploy),
        "one live read for all its dependents"
    );
    // A dependent's deletion leaves the graph consistent: the owner forgets it.
    g.apply(Change::Upsert(obj(&deploy, vec![])));
    let c = id("ConfigMap", "default", "c", "c1");
    g.apply(Change::Upsert(obj(&c, vec![owner_ref(&deploy, false)])));
    g.apply(Change::Deleted(obj(&c, vec![owner_ref(&deploy, false)])));
    assert!(g.node("d1").expect("owner").dependents.is_empty());
}

#[test]
fn deletions_that_start_with_a_finalizer_are_transitions() {
    let deploy = id("Deployment", "default", "web", "d1");
    let rs = id("ReplicaSet", "default", "web-1", "r1");
    let cases: Vec<(&str, Option<Observed>, Observed, Vec<Effect>)> = vec![
        (
            "orphan starts",
            Some(obj(&deploy, vec![])),
            deleting(&deploy, vec![], &[ORPHAN]),
            vec![Effect::AttemptToOrphan("d1".into())],
        ),
        (
            "orphan already seen: no new work",
            Some(deleting(&deploy, vec![], &[ORPHAN])),
            deleting(&deploy, vec![], &[ORPHAN]),
            vec![],
        ),
        (
            "first seen already orphaning (a restart)",
            None,
            deleting(&deploy, vec![], &[ORPHAN]),
            vec![Effect::AttemptToOrphan("d1".into())],
        ),
        (
            "foreground starts: its dependents, then itself",
            Some(obj(&deploy, vec![])),
            deleting(&deploy, vec![], &[FOREGROUND]),
            vec![del("r1"), del("d1")],
        ),
        (
            "orphan wins over foreground",
            Some(obj(&deploy, vec![])),
            deleting(&deploy, vec![], &[ORPHAN, FOREGROUND]),
            vec![Effect::AttemptToOrphan("d1".into())],
        ),
        (
            "a finalizer without a deletion is nothing",
            Some(obj(&deploy, vec![])),
            Observed {
                finalizers: vec![FOREGROUND.into()],
                ..obj(&deploy, vec![])
            },
            vec![],
        ),
        (
            "background deletion (no finalizer) waits for the owner to go",
            Some(obj(&deploy, vec![])),
            deleting(&deploy, vec![], &[]),
            vec![],
        ),
    ];
    for (name, before, after, want) in cases {
        let mut g = Graph::default();
        if let Some(b) = before {
            g.apply(Change::Upsert(b));
        }
        // Without a `before`, the owner is a virtual node until `after` is seen.
        g.apply(Change::Upsert(obj(&rs, vec![owner_ref(&deploy, true)])));
        let fx = g.apply(Change::Upsert(after.clone()));
        assert_eq!(fx, want, "{name}");
        let node = g.node("d1").expect("owner");
        assert_eq!(node.being_deleted, after.deleting, "{name}");
        assert_eq!(
            node.deleting_dependents,
            after.deleting
                && after.finalizers.iter().any(|f| f == FOREGROUND)
                && !after.finalizers.iter().any(|f| f == ORPHAN),
            "{name}"
        );
    }
}

#[test]
fn a_dependent_leaving_a_foreground_owner_wakes_it() {
    let deploy = id("Deployment", "default", "web", "d1");
    let rs = id("ReplicaSet", "default", "web-1", "r1");
    let mut g = Graph::default();
    g.apply(Change::Upsert(obj(&deploy, vec![])));
    g.apply(Change::Upsert(obj(&rs, vec![owner_ref(&deploy, true)])));
    g.apply(Change::Upsert(deleting(&deploy, vec![], &[FOREGROUND])));
    assert_eq!(g.blocking_dependents("d1").len(), 1);
    // Its blocking reference stops blocking: the owner is looked at again.
    let fx = g.apply(Change::Upsert(obj(&rs, vec![owner_ref(&deploy, false)])));
    assert_eq!(fx, vec![del("d1")]);
    assert!(g.blocking_dependents("d1").is_empty());
    // The dependent goes: the owner again.
    let fx = g.apply(Change::Deleted(obj(&rs, vec![owner_ref(&deploy, false)])));
    assert_eq!(fx, vec![del("d1")]);
    // A reference removed (orphaning) wakes it too.
    let mut g = Graph::default();
    g.apply(Change::Upsert(obj(&deploy, vec![])));
    g.apply(Change::Upsert(obj(&rs, vec![owner_ref(&deploy, true)])));
    let fx = g.apply(Change::Upsert(obj(&rs, vec![])));
    assert_eq!(fx, vec![del("d1")]);
    assert!(g.node("d1").expect("owner").dependents.is_empty());
}

#[test]
fn a_virtual_owner_found_absent_releases_its_dependents() {
    let ghost = id("Deployment", "default", "ghost", "g1");
    let cm = id("ConfigMap", "default", "c", "c1");
    let mut g = Graph::default();
    g.apply(Change::Upsert(obj(&cm, vec![owner_ref(&ghost, false)])));
    let fx = g.apply(Change::VirtualDelete(ghost.clone()));
    assert_eq!(fx, vec![del("c1")]);
    assert!(g.node("g1").is_none());
    assert!(g.absent.has(&ghost));
}

#[test]
fn a_virtual_owner_named_two_ways_keeps_the_other_identity() {
    // Two dependents name uid o1 with different kinds: the one found absent releases its
    // dependent, the node stays under the other identity and is checked again.
    let as_deploy = id("Deployment", "default", "x", "o1");
    let as_rs = id("ReplicaSet", "default", "x", "o1");
    let a = id("ConfigMap", "default", "a", "a1");
    let b = id("ConfigMap", "default", "b", "b1");
    let mut g = Graph::default();
    g.apply(Change::Upsert(obj(&a, vec![owner_ref(&as_deploy, false)])));
    g.apply(Change::Upsert(obj(&b, vec![owner_ref(&as_rs, false)])));
    let fx = g.apply(Change::VirtualDelete(as_deploy.clone()));
    assert_eq!(
        fx,
        vec![del("a1"), Effect::AttemptToDeleteRateLimited("o1".into())]
    );
    assert_eq!(g.node("o1").expect("kept").identity, as_rs);
    let deps: Vec<_> = g.dependents("o1");
    let (matching, nonmatching) = partition_dependents(&deps, &as_rs);
    assert_eq!(matching.len(), 1);
    assert_eq!(nonmatching.len(), 1);
    assert_eq!(alternate_owner_identity(&deps, &as_rs), Some(as_deploy));
}

#[test]
fn an_owner_in_another_namespace_is_reported_and_its_dependent_checked() {
    let owner = id("ConfigMap", "a", "owner", "o1");
    let dependent = id("ConfigMap", "b", "dep", "x1");
    let mut g = Graph::default();
    g.apply(Change::Upsert(obj(&owner, vec![])));
    let fx = g.apply(Change::Upsert(obj(
        &dependent,
        vec![owner_ref(&owner, false)],
    )));
    assert_eq!(
        fx,
        vec![
            Effect::InvalidNamespaceOwnerRef {
                dependent: Box::new(dependent.clone()),
                owner: Box::new(id("ConfigMap", "b", "owner", "o1")),
            },
            del("x1"),
        ]
    );
    assert_eq!(
        id("ConfigMap", "b", "owner", "o1").to_string(),
        "[v1/ConfigMap, namespace: b, name: owner, uid: o1]"
    );
}

#[test]
fn a_relist_reports_what_it_no_longer_has_as_deleted() {
    let deploy = id("Deployment", "default", "web", "d1");
    let other = id("Deployment", "default", "api", "d2");
    let rs = id("ReplicaSet", "default", "web-1", "r1");
    let mut g = Graph::default();
    g.apply(Change::Upsert(obj(&deploy, vec![])));
    g.apply(Change::Upsert(obj(&other, vec![])));
    g.apply(Change::Upsert(obj(&rs, vec![owner_ref(&deploy, true)])));
    let fx = g.apply(Change::Relisted {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        uids: HashSet::from(["d2".to_owned()]),
    });
    assert_eq!(fx, vec![del("r1")]);
    assert!(g.node("d1").is_none());
    assert!(g.node("d2").is_some() && g.node("r1").is_some());
}

fn live(uid: &str, deleting: bool, finalizers: &[&str]) -> ObjectMeta {
    ObjectMeta {
        uid: Some(uid.into()),
        deletion_timestamp: deleting.then_some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
        finalizers: Some(finalizers.iter().map(|f| (*f).to_owned()).collect()),
        resource_version: Some("7".into()),
        ..Default::default()
    }
}

#[test]
fn owners_are_classified_by_their_live_state() {
    let r = owner_ref(&id("Deployment", "default", "web", "d1"), true);
    let cases = [
        ("not found", None, OwnerState::Dangling),
        (
            "another uid",
            Some(live("d2", false, &[])),
            OwnerState::Dangling,
        ),
        ("there", Some(live("d1", false, &[])), OwnerState::Solid),
        (
            "deleting in the background",
            Some(live("d1", true, &[])),
            OwnerState::Solid,
        ),
        (
            "orphaning",
            Some(live("d1", true, &[ORPHAN])),
            OwnerState::Solid,
        ),
        (
            "foreground",
            Some(live("d1", true, &[FOREGROUND])),
            OwnerState::Waiting,
        ),
        (
            "the finalizer without deletion",
            Some(live("d1", false, &[FOREGROUND])),
            OwnerState::Solid,
        ),
    ];
    for (name, owner, want) in cases {
        assert_eq!(decide::owner_state(&r, owner.as_ref()), want, "{name}");
    }
}

/// Name, classified references, the item's finalizers, its dependents, whether one of them
/// deletes its own in the foreground, and the decision.
type ItemCase = (
    &'static str,
    Vec<(OwnerReference, OwnerState)>,
    Vec<&'static str>,
    usize,
    bool,
    Decision,
);

#[test]
fn what_to_do_with_an_item() {
    use OwnerState::*;
    let a = owner_ref(&id("Deployment", "default", "a", "a1"), true);
    let b = owner_ref(&id("Deployment", "default", "b", "b1"), false);
    let bg = Decision::Delete {
        policy: Policy::Background,
        unblock_first: false,
    };
    let cases: Vec<ItemCase> = vec![
        ("no owners", vec![], vec![], 0, false, Decision::Keep),
        (
            "a solid owner",
            vec![(a.clone(), Solid)],
            vec![],
            0,
            false,
            Decision::Keep,
        ),
        (
            "its only owner is gone",
            vec![(a.clone(), Dangling)],
            vec![],
            0,
            false,
            bg.clone(),
        ),
        (
            "every owner is gone",
            vec![(a.clone(), Dangling), (b.clone(), Dangling)],
            vec![],
            3,
            false,
            bg.clone(),
        ),
        (
            "one owner gone, one there: the dangling reference goes",
            vec![(a.clone(), Dangling), (b.clone(), Solid)],
            vec![],
            0,
            false,
            Decision::RemoveReferences(vec!["a1".into()]),
        ),
        (
            "one owner waiting, one there: the waiting reference goes",
            vec![(a.clone(), Waiting), (b.clone(), Solid)],
            vec![],
            0,
            false,
            Decision::RemoveReferences(vec!["a1".into()]),
        ),
        (
            "a foreground owner, no dependents of its own: background",
            vec![(a.clone(), Waiting)],
            vec![],
            0,
            false,
            bg.clone(),
        ),
        (
            "a foreground owner and dependents of its own: foreground",
            vec![(a.clone(), Waiting)],
            vec![],
            2,
            false,
            Decision::Delete {
                policy: Policy::Foreground,
                unblock_first: false,
            },
        ),
        (
            "a foreground owner and a dependent deleting its own: unblock first (cycle)",
            vec![(a.clone(), Waiting), (b.clone(), Dangling)],
            vec![],
            2,
            true,
            Decision::Delete {
                policy: Policy::Foreground,
                unblock_first: true,
            },
        ),
        (
            "its own orphan finalizer is honoured",
            vec![(a.clone(), Dangling)],
            vec![ORPHAN],
            0,
            false,
            Decision::Delete {
                policy: Policy::Orphan,
                unblock_first: false,
            },
        ),
        (
            "its own foreground finalizer is honoured",
            vec![(a.clone(), Dangling)],
            vec![FOREGROUND],
            0,
            false,
            Decision::Delete {
                policy: Policy::Foreground,
                unblock_first: false,
            },
        ),
    ];
    for (name, refs, finalizers, dependents, cycle, want) in cases {
        let finalizers: Vec<String> = finalizers.into_iter().map(str::to_owned).collect();
        assert_eq!(
            decide::decide(&refs, &finalizers, dependents, cycle),
            want,
            "{name}"
        );
    }
}

#[test]
fn patch_bodies_are_upstreams() {
    let a = owner_ref(&id("Deployment", "default", "a", "a1"), true);
    let b = owner_ref(&id("Deployment", "default", "b", "b1"), false);
    assert_eq!(
        decide::delete_owner_refs_strategic("dep", &["a1".into()]),
        json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "a1"}], "uid": "dep"}})
    );
    let merge = decide::delete_owner_refs_merge("5", &[a.clone(), b.clone()], &["a1".into()]);
    assert_eq!(merge["metadata"]["resourceVersion"], "5");
    assert_eq!(merge["metadata"]["ownerReferences"][0]["uid"], "b1");
    assert_eq!(
        decide::delete_owner_refs_merge("5", std::slice::from_ref(&a), &["a1".into()])["metadata"]
            ["ownerReferences"],
        json!(null)
    );
    let unblock = decide::unblock_strategic("dep", &[a.clone(), b.clone()]);
    assert_eq!(unblock["metadata"]["uid"], "dep");
    assert_eq!(
        unblock["metadata"]["ownerReferences"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        unblock["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
        false
    );
    let unblock = decide::unblock_merge("5", &[a, b]);
    assert_eq!(
        unblock["metadata"]["ownerReferences"][1]["blockOwnerDeletion"],
        false
    );
    let m = live("d1", true, &[FOREGROUND, "example.com/keep"]);
    assert_eq!(
        decide::remove_finalizer_patch(&m, FOREGROUND),
        Some(json!({"metadata": {"resourceVersion": "7", "finalizers": ["example.com/keep"]}}))
    );
    assert_eq!(
        decide::remove_finalizer_patch(&live("d1", true, &[ORPHAN]), ORPHAN),
        Some(json!({"metadata": {"resourceVersion": "7", "finalizers": null}}))
    );
    assert_eq!(decide::remove_finalizer_patch(&m, ORPHAN), None);
}

#[test]
fn backoff_doubles_from_5ms_to_1000s() {
    assert_eq!(backoff(0), Duration::from_millis(5));
    assert_eq!(backoff(1), Duration::from_millis(10));
    assert_eq!(backoff(10), Duration::from_millis(5120));
    assert_eq!(backoff(40), Duration::from_secs(1000));
}

#[tokio::test]
async fn the_queue_dedups_and_holds_an_item_being_processed() {
    let q: WorkQueue<String> = WorkQueue::default();
    q.add("a".into());
    q.add("a".into());
    q.add("b".into());
    assert_eq!(q.len(), 2);
    let first = q.get().await;
    assert_eq!(first, "a");
    // Added while processed: not handed out twice, queued again when done.
    q.add("a".into());
    assert_eq!(q.get().await, "b");
    q.done(&"b".to_owned());
    assert_eq!(q.len(), 0);
    q.done(&first);
    assert_eq!(q.get().await, "a");
    // Rate-limited adds wait their backoff.
    q.add_rate_limited("c".into());
    q.add_rate_limited("c".into());
    assert_eq!(q.failures(&"c".to_owned()), 2);
    let delays = async { q.run_delays().await };
    let got = tokio::select! {
        () = delays => unreachable!("runs for ever"),
        got = q.get() => got,
    };
    assert_eq!(got, "c");
    q.forget(&got);
    assert_eq!(q.failures(&got), 0);
}

#[test]
fn the_absent_owner_cache_forgets_the_least_recently_used() {
    let mut absent = super::graph::AbsentOwners::new(2);
    let (a, b, c) = (
        id("Deployment", "default", "a", "a1"),
        id("Deployment", "default", "b", "b1"),
        id("Deployment", "default", "c", "c1"),
    );
    absent.add(a.clone());
    absent.add(b.clone());
    assert!(absent.has(&a)); // a is now the most recently used
    absent.add(c.clone());
    assert!(absent.has(&a) && absent.has(&c));
    assert!(!absent.has(&b));
    // A namespaced key is another key than the cluster-scoped one.
    let cluster_scoped = ObjectRef {
        namespace: String::new(),
        ..a.clone()
    };
    assert!(!absent.has(&cluster_scoped));
}
