//! Tables for the Deployment decisions, and a simulated rollout (deployment syncs, ReplicaSet
//! syncs and pods becoming ready, interleaved at random) that checks the surge and
//! availability bounds after every action.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    DeploymentCondition, DeploymentSpec, DeploymentStrategy, ReplicaSetCondition, ReplicaSetStatus,
    RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::hash::compute_hash;
use super::sync::{plan, Plan, PodMap, Step};
use super::*;

const NOW: i64 = 1_700_000_000;

fn at(secs_ago: i64) -> Timestamp {
    Timestamp::from_second(NOW - secs_ago).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn tmpl(image: &str) -> PodTemplateSpec {
    serde_json::from_value(json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": image}]}
    }))
    .unwrap_or_default()
}

fn deployment(
    replicas: i32,
    surge: IntOrString,
    unavailable: IntOrString,
    image: &str,
) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some("d-uid".into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                match_expressions: None,
            },
            template: tmpl(image),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(surge),
                    max_unavailable: Some(unavailable),
                }),
            }),
            progress_deadline_seconds: Some(600),
            revision_history_limit: Some(10),
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

fn int(n: i32) -> IntOrString {
    IntOrString::Int(n)
}

/// A ReplicaSet of the Deployment for `image` (named by its hash as the controller names
/// them), with `spec` replicas and (replicas, ready, available) in its status.
fn rs(
    d: &Deployment,
    image: &str,
    spec: i32,
    status: (i32, i32, i32),
    revision: i64,
    created_ago: i64,
) -> ReplicaSet {
    let mut t = tmpl(image);
    let hash = compute_hash(&t, None);
    t.metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH.into(), hash.clone());
    let desired = d_replicas(d);
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(format!("web-{hash}")),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{image}")),
            creation_timestamp: Some(Time(at(created_ago))),
            generation: Some(1),
            labels: t.metadata.as_ref().and_then(|m| m.labels.clone()),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: "web".into(),
                uid: "d-uid".into(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            annotations: Some(BTreeMap::from([
                (REVISION.into(), revision.to_string()),
                (DESIRED_REPLICAS.into(), desired.to_string()),
                (MAX_REPLICAS.into(), (desired + max_surge(d)).to_string()),
            ])),
            ..ObjectMeta::default()
        },
        spec: Some(k8s_openapi::api::apps::v1::ReplicaSetSpec {
            replicas: Some(spec),
            selector: LabelSelector::default(),
            template: Some(t),
            min_ready_seconds: None,
        }),
        status: Some(ReplicaSetStatus {
            replicas: status.0,
            ready_replicas: Some(status.1),
            available_replicas: Some(status.2),
            observed_generation: Some(1),
            ..ReplicaSetStatus::default()
        }),
    }
}

fn run(d: &Deployment, rss: Vec<ReplicaSet>) -> Plan {
    match plan(d, rss, &PodMap::new(), at(0)) {
        Ok(p) => p,
        Err(e) => panic!("plan failed: {e}"),
    }
}

/// The scaling a plan does, as `name: from -> to` (creations as `name: new -> n`).
fn scalings(p: &Plan) -> Vec<String> {
    p.steps
        .iter()
        .filter_map(|s| match s {
            Step::CreateReplicaSet { rs, .. } => {
                Some(format!("{}: new -> {}", rs.name_any(), rs_replicas(rs)))
            }
            Step::UpdateReplicaSet { rs, event: Some(_) } => {
                Some(format!("{}: -> {}", rs.name_any(), rs_replicas(rs)))
            }
            _ => None,
        })
        .collect()
}

fn events(p: &Plan) -> Vec<String> {
    p.steps
        .iter()
        .filter_map(|s| match s {
            Step::CreateReplicaSet { event: Some(e), .. }
            | Step::UpdateReplicaSet { event: Some(e), .. } => Some(e.clone()),
            Step::Event { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn last_status(p: &Plan) -> DeploymentStatus {
    p.steps
        .iter()
        .rev()
        .find_map(|s| match s {
            Step::Status(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn condition(s: &DeploymentStatus, type_: &str) -> (String, String, String) {
    get_condition(s, type_).map_or_else(Default::default, |c| {
        (
            c.status.clone(),
            c.reason.clone().unwrap_or_default(),
            c.message.clone().unwrap_or_default(),
        )
    })
}

fn name_for(image: &str) -> String {
    format!("web-{}", compute_hash(&tmpl(image), None))
}

#[test]
fn a_new_deployment_gets_its_replica_set_revision_and_conditions() {
    let d = deployment(
        5,
        IntOrString::String("25%".into()),
        IntOrString::String("25%".into()),
        "nginx:1",
    );
    let p = run(&d, vec![]);
    let new = name_for("nginx:1");
    let Some(Step::CreateReplicaSet { rs, event }) = p.steps.first() else {
        panic!("first step creates the ReplicaSet: {:?}", p.steps);
    };
    assert_eq!(rs.name_any(), new);
    assert_eq!(
        event.as_deref(),
        Some(format!("Scaled up replica set {new} from 0 to 5").as_str())
    );
    let hash = new.trim_start_matches("web-");
    let labels = rs.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(POD_TEMPLATE_HASH).map(String::as_str),
        Some(hash)
    );
    let spec = rs.spec.clone().unwrap_or_default();
    assert_eq!(
        spec.selector
            .match_labels
            .unwrap_or_default()
            .get(POD_TEMPLATE_HASH)
            .map(String::as_str),
        Some(hash)
    );
    let a = rs.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(a.get(REVISION).map(String::as_str), Some("1"));
    assert_eq!(a.get(DESIRED_REPLICAS).map(String::as_str), Some("5"));
    assert_eq!(a.get(MAX_REPLICAS).map(String::as_str), Some("7"));
    let owner = controller_of(&rs.metadata).cloned().unwrap_or_default();
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Deployment", "d-uid")
    );
    assert!(p.steps.contains(&Step::AnnotateDeployment {
        revision: "1".into()
    }));
    let status = last_status(&p);
    assert_eq!(
        condition(&status, PROGRESSING),
        (
            "True".into(),
            NEW_REPLICA_SET.into(),
            format!("Created new replica set \"{new}\"")
        )
    );
    assert_eq!(
        condition(&status, AVAILABLE),
        (
            "False".into(),
            MINIMUM_REPLICAS_UNAVAILABLE.into(),
            "Deployment does not have minimum availability.".into()
        )
    );
    assert_eq!(status.observed_generation, Some(1));
}

#[test]
fn rolling_steps_respect_surge_and_unavailability() {
    // 10 replicas, maxSurge 3, maxUnavailable 2: old is nginx:1, the template is nginx:2.
    let d = deployment(10, int(3), int(2), "nginx:2");
    let (old, new) = (name_for("nginx:1"), name_for("nginx:2"));
    type Case = (
        &'static str,
        Vec<(&'static str, i32, (i32, i32, i32))>,
        Vec<String>,
    );
    let cases: Vec<Case> = vec![
        (
            "start: new gets the surge, old loses what unavailability allows",
            vec![("nginx:1", 10, (10, 10, 10))],
            vec![format!("{new}: new -> 3"), format!("{old}: -> 8")],
        ),
        (
            "old still runs 10 pods (its controller is behind): no more surge",
            vec![("nginx:1", 8, (10, 10, 10)), ("nginx:2", 3, (3, 0, 0))],
            vec![],
        ),
        (
            "old caught up: new scales up to the ceiling",
            vec![("nginx:1", 8, (8, 8, 8)), ("nginx:2", 3, (3, 0, 0))],
            vec![format!("{new}: -> 5")],
        ),
        (
            "new pods available: old scales down to keep 8 available",
            vec![("nginx:1", 8, (8, 8, 8)), ("nginx:2", 5, (5, 3, 3))],
            vec![format!("{old}: -> 5")],
        ),
        (
            "unhealthy old replicas go first",
            vec![("nginx:1", 10, (10, 7, 7)), ("nginx:2", 3, (3, 0, 0))],
            vec![format!("{old}: -> 8")],
        ),
        (
            "nothing available to spare: no scale down",
            vec![("nginx:1", 8, (8, 6, 6)), ("nginx:2", 5, (5, 0, 0))],
            vec![],
        ),
        (
            "last step: old to zero",
            vec![("nginx:1", 2, (2, 2, 2)), ("nginx:2", 10, (10, 10, 10))],
            vec![format!("{old}: -> 0")],
        ),
    ];
    for (what, state, want) in cases {
        let rss: Vec<ReplicaSet> = state
            .iter()
            .enumerate()
            .map(|(i, (image, spec, st))| rs(&d, image, *spec, *st, i as i64 + 1, 1000 - i as i64))
            .collect();
        let p = run(&d, rss);
        assert_eq!(scalings(&p), want, "{what}");
    }
}

#[test]
fn scaling_events_are_recorded_in_upstreams_words() {
    let d = deployment(10, int(3), int(2), "nginx:2");
    let (old, new) = (name_for("nginx:1"), name_for("nginx:2"));
    let p = run(&d, vec![rs(&d, "nginx:1", 10, (10, 10, 10), 1, 100)]);
    assert_eq!(
        events(&p),
        [
            format!("Scaled up replica set {new} from 0 to 3"),
            format!("Scaled down replica set {old} from 10 to 8")
        ]
    );
}

#[test]
fn scaling_during_a_rollout_is_proportional() {
    // The Deployment went from 10 to 15 replicas while old had 8 and new 5 (max-replicas 13).
    let before = deployment(10, int(3), int(2), "nginx:2");
    let mut d = before.clone();
    if let Some(s) = d.spec.as_mut() {
        s.replicas = Some(15);
    }
    let (old, new) = (name_for("nginx:1"), name_for("nginx:2"));
    let rss = vec![
        rs(&before, "nginx:1", 8, (8, 8, 8), 1, 100),
        rs(&before, "nginx:2", 5, (5, 5, 5), 2, 50),
    ];
    let p = run(&d, rss);
    assert_eq!(
        scalings(&p),
        [format!("{old}: -> 11"), format!("{new}: -> 7")]
    );
    for step in &p.steps {
        if let Step::UpdateReplicaSet { rs, .. } = step {
            let a = rs.metadata.annotations.clone().unwrap_or_default();
            assert_eq!(a.get(DESIRED_REPLICAS).map(String::as_str), Some("15"));
            assert_eq!(a.get(MAX_REPLICAS).map(String::as_str), Some("18"));
        }
    }
    // Scaled to zero: everything goes.
    let mut zero = d.clone();
    if let Some(s) = zero.spec.as_mut() {
        s.replicas = Some(0);
    }
    let p = run(
        &zero,
        vec![
            rs(&before, "nginx:1", 8, (8, 8, 8), 1, 100),
            rs(&before, "nginx:2", 5, (5, 5, 5), 2, 50),
        ],
    );
    assert_eq!(
        scalings(&p),
        [format!("{old}: -> 0"), format!("{new}: -> 0")]
    );
}

#[test]
fn a_scale_with_one_active_replica_set_resizes_it() {
    let before = deployment(
        3,
        IntOrString::String("25%".into()),
        IntOrString::String("25%".into()),
        "nginx:1",
    );
    let mut d = before.clone();
    if let Some(s) = d.spec.as_mut() {
        s.replicas = Some(6);
    }
    let p = run(&d, vec![rs(&before, "nginx:1", 3, (3, 3, 3), 1, 100)]);
    let name = name_for("nginx:1");
    assert_eq!(
        events(&p),
        [format!("Scaled up replica set {name} from 3 to 6")]
    );
}

#[test]
fn a_complete_rollout_reports_success_and_cleans_old_revisions() {
    let mut d = deployment(
        3,
        IntOrString::String("25%".into()),
        IntOrString::String("25%".into()),
        "nginx:4",
    );
    if let Some(s) = d.spec.as_mut() {
        s.revision_history_limit = Some(1);
    }
    let new = name_for("nginx:4");
    let rss = vec![
        rs(&d, "nginx:1", 0, (0, 0, 0), 1, 400),
        rs(&d, "nginx:2", 0, (0, 0, 0), 2, 300),
        rs(&d, "nginx:3", 0, (0, 0, 0), 3, 200),
        rs(&d, "nginx:4", 3, (3, 3, 3), 4, 100),
    ];
    // The previous sync wrote a complete status: cleanup runs.
    d.status = Some(DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(3),
        updated_replicas: Some(3),
        ready_replicas: Some(3),
        available_replicas: Some(3),
        ..DeploymentStatus::default()
    });
    let p = run(&d, rss);
    let deleted: Vec<&str> = p
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::DeleteReplicaSet { name } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, [name_for("nginx:1"), name_for("nginx:2")]);
    let status = last_status(&p);
    assert_eq!(
        condition(&status, PROGRESSING),
        (
            "True".into(),
            NEW_RS_AVAILABLE.into(),
            format!("ReplicaSet \"{new}\" has successfully progressed.")
        )
    );
    assert_eq!(
        condition(&status, AVAILABLE),
        (
            "True".into(),
            MINIMUM_REPLICAS_AVAILABLE.into(),
            "Deployment has minimum availability.".into()
        )
    );
    assert_eq!(
        (
            status.replicas,
            status.updated_replicas,
            status.available_replicas,
            status.unavailable_replicas
        ),
        (Some(3), Some(3), Some(3), None)
    );
}

#[test]
fn recreate_stops_every_old_pod_before_the_new_replica_set() {
    let mut d = deployment(3, int(0), int(1), "nginx:2");
    if let Some(s) = d.spec.as_mut() {
        s.strategy = Some(DeploymentStrategy {
            type_: Some("Recreate".into()),
            rolling_update: None,
        });
    }
    let old = name_for("nginx:1");
    // Old still scaled: down to zero, nothing created.
    let p = run(&d, vec![rs(&d, "nginx:1", 3, (3, 3, 3), 1, 100)]);
    assert_eq!(scalings(&p), [format!("{old}: -> 0")]);
    // Scaled down but a pod still runs: wait.
    let stopped = rs(&d, "nginx:1", 0, (0, 0, 0), 1, 100);
    let running: Pod =
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}}))
            .unwrap_or_default();
    let pods = PodMap::from([("uid-nginx:1".to_owned(), vec![Arc::new(running)])]);
    let p = plan(&d, vec![stopped.clone()], &pods, at(0)).unwrap_or_default();
    assert_eq!(scalings(&p), Vec::<String>::new());
    // Every old pod gone: the new ReplicaSet, at full size.
    let p = run(&d, vec![stopped]);
    assert_eq!(scalings(&p), [format!("{}: new -> 3", name_for("nginx:2"))]);
}

#[test]
fn a_paused_deployment_does_not_roll_out() {
    let mut d = deployment(3, int(1), int(0), "nginx:2");
    if let Some(s) = d.spec.as_mut() {
        s.paused = Some(true);
    }
    let p = run(&d, vec![rs(&d, "nginx:1", 3, (3, 3, 3), 1, 100)]);
    assert_eq!(scalings(&p), Vec::<String>::new());
    assert_eq!(
        condition(&last_status(&p), PROGRESSING),
        (
            "Unknown".into(),
            PAUSED.into(),
            "Deployment is paused".into()
        )
    );
    // Resumed: the condition says so, and the rollout starts.
    let mut resumed = d.clone();
    if let Some(s) = resumed.spec.as_mut() {
        s.paused = None;
    }
    resumed.status = Some(last_status(&p));
    let p = run(&resumed, vec![rs(&d, "nginx:1", 3, (3, 3, 3), 1, 100)]);
    assert!(p.steps.iter().any(|s| matches!(s, Step::Status(st)
        if condition(st, PROGRESSING).1 == RESUMED)));
    assert_eq!(
        scalings(&p)[0],
        format!("{}: new -> 1", name_for("nginx:2"))
    );
}

fn progressing(reason: &str, updated_ago: i64) -> DeploymentCondition {
    DeploymentCondition {
        type_: PROGRESSING.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some("m".into()),
        last_update_time: Some(Time(at(updated_ago))),
        last_transition_time: Some(Time(at(updated_ago))),
    }
}

#[test]
fn no_progress_past_the_deadline_is_progress_deadline_exceeded() {
    let mut d = deployment(2, int(1), int(0), "nginx:2");
    d.metadata.annotations = Some(BTreeMap::from([(REVISION.into(), "2".into())]));
    let old = rs(&d, "nginx:1", 2, (2, 2, 2), 1, 1000);
    let new = rs(&d, "nginx:2", 1, (1, 0, 0), 2, 900);
    let new_name = new.name_any();
    let status = |c: DeploymentCondition| DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(3),
        updated_replicas: Some(1),
        ready_replicas: Some(2),
        available_replicas: Some(2),
        unavailable_replicas: Some(1),
        conditions: Some(vec![c]),
        ..DeploymentStatus::default()
    };
    // Last progress 200 s ago: check again when the 600 s are up.
    d.status = Some(status(progressing(REPLICA_SET_UPDATED, 200)));
    let p = run(&d, vec![old.clone(), new.clone()]);
    let available = last_status(&p);
    // (Only the Available condition was added.)
    assert_eq!(condition(&available, PROGRESSING).1, REPLICA_SET_UPDATED);
    d.status = Some(available);
    let p = run(&d, vec![old.clone(), new.clone()]);
    assert!(p.steps.is_empty(), "{:?}", p.steps);
    assert_eq!(p.requeue, Some(Duration::from_secs(401)));
    // 601 s: timed out.
    let mut late = d.clone();
    let mut st = late.status.clone().unwrap_or_default();
    remove_condition(&mut st, PROGRESSING);
    set_condition(&mut st, progressing(REPLICA_SET_UPDATED, 601));
    late.status = Some(st);
    let p = run(&late, vec![old, new]);
    assert_eq!(
        condition(&last_status(&p), PROGRESSING),
        (
            "False".into(),
            TIMED_OUT.into(),
            format!("ReplicaSet \"{new_name}\" has timed out progressing.")
        )
    );
}

#[test]
fn progress_moves_the_update_time_and_keeps_the_transition_time() {
    let mut d = deployment(2, int(1), int(0), "nginx:2");
    d.status = Some(DeploymentStatus {
        observed_generation: Some(1),
        replicas: Some(3),
        updated_replicas: Some(1),
        available_replicas: Some(2),
        conditions: Some(vec![progressing(NEW_REPLICA_SET, 300)]),
        ..DeploymentStatus::default()
    });
    // The new pod became available.
    let rss = vec![
        rs(&d, "nginx:1", 2, (2, 2, 2), 1, 1000),
        rs(&d, "nginx:2", 1, (1, 1, 1), 2, 900),
    ];
    let p = run(&d, rss);
    let st = last_status(&p);
    let c = get_condition(&st, PROGRESSING)
        .cloned()
        .unwrap_or_else(|| progressing("", 0));
    assert_eq!(c.reason.as_deref(), Some(REPLICA_SET_UPDATED));
    assert_eq!(c.last_transition_time, Some(Time(at(300))));
    assert_eq!(c.last_update_time, Some(Time(at(0))));
}

#[test]
fn a_replica_failure_is_carried_up() {
    let d = deployment(3, int(1), int(0), "nginx:1");
    let mut new = rs(&d, "nginx:1", 3, (1, 1, 1), 1, 100);
    if let Some(s) = new.status.as_mut() {
        s.conditions = Some(vec![ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some("pods \"web-x\" is forbidden: exceeded quota".into()),
            last_transition_time: Some(Time(at(10))),
        }]);
    }
    let p = run(&d, vec![new]);
    assert_eq!(
        condition(&last_status(&p), REPLICA_FAILURE),
        (
            "True".into(),
            "FailedCreate".into(),
            "pods \"web-x\" is forbidden: exceeded quota".into()
        )
    );
}

#[test]
fn undo_makes_an_old_replica_set_new_with_the_next_revision() {
    // kubectl rollout undo put nginx:1's template back: its ReplicaSet (revision 1) is the
    // new one and takes revision 3, keeping 1 in its history.
    let d = deployment(3, int(1), int(0), "nginx:1");
    let rss = vec![
        rs(&d, "nginx:1", 0, (0, 0, 0), 1, 200),
        rs(&d, "nginx:2", 3, (3, 3, 3), 2, 100),
    ];
    let p = run(&d, rss);
    let Some(Step::UpdateReplicaSet {
        rs: updated,
        event: None,
    }) = p.steps.first()
    else {
        panic!("the revision is raised first: {:?}", p.steps);
    };
    let a = updated.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(updated.name_any(), name_for("nginx:1"));
    assert_eq!(a.get(REVISION).map(String::as_str), Some("3"));
    assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("1"));
    assert!(p.steps.contains(&Step::AnnotateDeployment {
        revision: "3".into()
    }));
    assert_eq!(scalings(&p), [format!("{}: -> 1", name_for("nginx:1"))]);
}

#[test]
fn the_deprecated_rollback_annotation_rolls_back_and_is_cleared() {
    let mut d = deployment(3, int(1), int(0), "nginx:2");
    d.metadata.annotations = Some(BTreeMap::from([(ROLLBACK_TO.into(), "0".into())]));
    let rss = vec![
        rs(&d, "nginx:1", 0, (0, 0, 0), 1, 200),
        rs(&d, "nginx:2", 3, (3, 3, 3), 2, 100),
    ];
    let p = run(&d, rss);
    let updated = p.steps.iter().find_map(|s| match s {
        Step::UpdateDeployment(d) => Some(d.clone()),
        _ => None,
    });
    let updated = updated.unwrap_or_default();
    assert!(equal_ignore_hash(&template(&updated), &tmpl("nginx:1")));
    assert!(!updated
        .metadata
        .annotations
        .unwrap_or_default()
        .contains_key(ROLLBACK_TO));
    assert!(events(&p).contains(&"Rolled back deployment \"web\" to revision 1".to_owned()));
}

#[test]
fn a_selector_of_everything_is_refused() {
    let mut d = deployment(3, int(1), int(0), "nginx:1");
    d.metadata.generation = Some(4);
    if let Some(s) = d.spec.as_mut() {
        s.selector = LabelSelector::default();
    }
    let p = run(&d, vec![]);
    assert_eq!(
        events(&p),
        ["This deployment is selecting all pods. A non-empty selector is required."]
    );
    assert_eq!(last_status(&p).observed_generation, Some(4));
}

#[test]
fn an_existing_new_replica_set_is_found() {
    let d = deployment(3, int(1), int(0), "nginx:1");
    let p = run(&d, vec![rs(&d, "nginx:1", 3, (3, 3, 3), 1, 100)]);
    let first = p.steps.iter().find_map(|s| match s {
        Step::Status(s) => Some(s.clone()),
        _ => None,
    });
    assert_eq!(
        condition(&first.unwrap_or_default(), PROGRESSING),
        (
            "True".into(),
            FOUND_NEW_RS.into(),
            format!("Found new replica set \"{}\"", name_for("nginx:1"))
        )
    );
}

// ---------------------------------------------------------------------------------------
// A simulated rollout.

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

struct World {
    d: Deployment,
    rss: Vec<ReplicaSet>,
    /// Each ReplicaSet's active pods (by name): ready or not.
    pods: BTreeMap<String, Vec<bool>>,
    clock: i64,
}

impl World {
    fn now(&self) -> Timestamp {
        at(-self.clock)
    }

    fn sync_deployment(&mut self) {
        let p = match plan(&self.d, self.rss.clone(), &PodMap::new(), self.now()) {
            Ok(p) => p,
            Err(e) => panic!("plan: {e}"),
        };
        for step in p.steps {
            match step {
                Step::CreateReplicaSet { mut rs, .. } => {
                    rs.metadata.uid = rs.metadata.name.clone();
                    rs.metadata.creation_timestamp = Some(Time(self.now()));
                    rs.metadata.generation = Some(1);
                    self.pods.insert(rs.name_any(), Vec::new());
                    self.rss.push(rs);
                }
                Step::UpdateReplicaSet { rs, .. } => {
                    if let Some(slot) = self.rss.iter_mut().find(|r| r.name_any() == rs.name_any())
                    {
                        let generation = slot.metadata.generation.unwrap_or(1) + 1;
                        let status = slot.status.clone();
                        *slot = rs;
                        slot.metadata.generation = Some(generation);
                        slot.status = status;
                    }
                }
                Step::DeleteReplicaSet { name } => self.rss.retain(|r| r.name_any() != name),
                Step::AnnotateDeployment { revision } => {
                    set_deployment_revision(&mut self.d, &revision);
                }
                Step::Status(s) => self.d.status = Some(s),
                Step::UpdateDeployment(_) | Step::Event { .. } => {}
            }
        }
    }

    /// One ReplicaSet sync: the status of the pods as they are, then creations or
    /// deletions (not-ready pods first), as upstream's syncReplicaSet orders them.
    fn sync_replica_set(&mut self, i: usize) {
        let Some(rs) = self.rss.get_mut(i) else {
            return;
        };
        let pods = self.pods.entry(rs.name_any()).or_default();
        let ready = pods.iter().filter(|r| **r).count() as i32;
        rs.status = Some(ReplicaSetStatus {
            replicas: pods.len() as i32,
            ready_replicas: Some(ready),
            available_replicas: Some(ready),
            observed_generation: rs.metadata.generation,
            ..ReplicaSetStatus::default()
        });
        let want = rs_replicas(rs) as usize;
        while pods.len() < want {
            pods.push(false);
        }
        while pods.len() > want {
            match pods.iter().position(|r| !*r) {
                Some(p) => pods.remove(p),
                None => pods.remove(0),
            };
        }
    }

    fn a_pod_gets_ready(&mut self, pick: usize) {
        let not_ready: Vec<(String, usize)> = self
            .pods
            .iter()
            .flat_map(|(n, ps)| {
                ps.iter()
                    .enumerate()
                    .filter(|(_, r)| !**r)
                    .map(move |(i, _)| (n.clone(), i))
            })
            .collect();
        if let Some((n, i)) = not_ready.get(pick % not_ready.len().max(1)) {
            if let Some(p) = self.pods.get_mut(n).and_then(|ps| ps.get_mut(*i)) {
                *p = true;
            }
        }
    }

    fn totals(&self) -> (usize, usize) {
        let all: Vec<bool> = self.pods.values().flatten().copied().collect();
        (all.len(), all.iter().filter(|r| **r).count())
    }

    fn settled(&self) -> bool {
        let t = template(&self.d);
        let replicas = d_replicas(&self.d) as usize;
        self.rss.iter().all(|rs| {
            let pods = self.pods.get(&rs.name_any()).cloned().unwrap_or_default();
            if equal_ignore_hash(&rs_template(rs), &t) {
                pods.len() == replicas
                    && pods.iter().all(|r| *r)
                    && rs_available(rs) == replicas as i32
            } else {
                pods.is_empty() && rs_replicas(rs) == 0
            }
        }) && self.d.status.as_ref().is_some_and(|s| {
            get_condition(s, PROGRESSING).and_then(|c| c.reason.as_deref())
                == Some(NEW_RS_AVAILABLE)
        })
    }

    /// Runs random actions until settled; `check` sees the totals after every action.
    fn run(&mut self, rng: &mut Rng, mut check: impl FnMut(usize, usize)) {
        for _ in 0..200_000 {
            if self.settled() {
                return;
            }
            self.clock += 1;
            match rng.below(4) {
                0 => self.sync_deployment(),
                1 | 2 => {
                    let i = rng.below(self.rss.len());
                    self.sync_replica_set(i);
                }
                _ => {
                    let pick = rng.below(1000);
                    self.a_pod_gets_ready(pick);
                }
            }
            let (total, ready) = self.totals();
            check(total, ready);
        }
        panic!("the rollout did not settle: {:?}", self.d.status);
    }
}

#[test]
fn a_rollout_never_exceeds_its_surge_nor_drops_below_its_availability() {
    for (replicas, surge, unavailable) in [
        (
            5,
            IntOrString::String("25%".into()),
            IntOrString::String("25%".into()),
        ),
        (10, int(3), int(2)),
        (7, int(0), int(1)),
        (4, int(1), int(0)),
        (
            20,
            IntOrString::String("50%".into()),
            IntOrString::String("10%".into()),
        ),
    ] {
        for seed in 1..=20u64 {
            let d = deployment(replicas, surge.clone(), unavailable.clone(), "nginx:1");
            let (max_surge, max_unavailable) = (max_surge(&d), max_unavailable(&d));
            let mut world = World {
                d,
                rss: Vec::new(),
                pods: BTreeMap::new(),
                clock: 0,
            };
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            world.run(&mut rng, |total, _| {
                assert!(total <= (replicas + max_surge) as usize)
            });
            // The template changes: roll out nginx:2 within the bounds.
            if let Some(s) = world.d.spec.as_mut() {
                s.template = tmpl("nginx:2");
            }
            world.d.metadata.generation = Some(2);
            let most = (replicas + max_surge) as usize;
            let least = (replicas - max_unavailable) as usize;
            world.run(&mut rng, |total, ready| {
                assert!(
                    total <= most,
                    "{replicas}/{max_surge}/{max_unavailable} seed {seed}: {total} pods"
                );
                assert!(
                    ready >= least,
                    "{replicas}/{max_surge}/{max_unavailable} seed {seed}: {ready} ready"
                );
            });
            let revision = world
                .d
                .metadata
                .annotations
                .clone()
                .unwrap_or_default()
                .get(REVISION)
                .cloned();
            assert_eq!(revision.as_deref(), Some("2"));
        }
    }
}
