//! Tables for the ReplicaSet decisions.

use super::*;
use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

const NOW: i64 = 1_700_000_000;

fn at(secs_ago: i64) -> Timestamp {
    Timestamp::from_second(NOW - secs_ago).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn now() -> Timestamp {
    at(0)
}

/// A pod: `node` empty for unscheduled, `ready_ago` for a pod ready since then.
#[derive(Clone, Default)]
struct P {
    name: &'static str,
    node: &'static str,
    phase: &'static str,
    ready_ago: Option<i64>,
    created_ago: i64,
    restarts: i32,
    cost: Option<&'static str>,
}

impl P {
    fn pod(&self) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(self.name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{}", self.name)),
                creation_timestamp: Some(Time(at(self.created_ago))),
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                annotations: self
                    .cost
                    .map(|c| BTreeMap::from([(POD_DELETION_COST.into(), c.into())])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: (!self.node.is_empty()).then(|| self.node.into()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(
                    if self.phase.is_empty() {
                        "Running"
                    } else {
                        self.phase
                    }
                    .into(),
                ),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if self.ready_ago.is_some() {
                        "True"
                    } else {
                        "False"
                    }
                    .into(),
                    last_transition_time: self.ready_ago.map(|a| Time(at(a))),
                    ..PodCondition::default()
                }]),
                container_statuses: Some(vec![ContainerStatus {
                    name: "c".into(),
                    restart_count: self.restarts,
                    ..ContainerStatus::default()
                }]),
                ..PodStatus::default()
            }),
        })
    }
}

fn ready(name: &'static str, node: &'static str, ready_ago: i64, created_ago: i64) -> P {
    P {
        name,
        node,
        ready_ago: Some(ready_ago),
        created_ago,
        ..P::default()
    }
}

#[test]
fn manage_creates_and_deletes_the_difference_up_to_the_burst() {
    for (replicas, active, want) in [
        (3, 3, Manage::Nothing),
        (5, 2, Manage::Create(3)),
        (0, 4, Manage::Delete(4)),
        (2, 5, Manage::Delete(3)),
        (1000, 0, Manage::Create(BURST_REPLICAS)),
        (0, 900, Manage::Delete(BURST_REPLICAS)),
        (-1, 0, Manage::Nothing),
    ] {
        assert_eq!(
            manage(replicas, active),
            want,
            "{replicas} replicas, {active} active"
        );
    }
}

#[test]
fn slow_start_doubles_from_one() {
    for (count, want) in [
        (0, vec![]),
        (1, vec![1]),
        (5, vec![1, 2, 2]),
        (7, vec![1, 2, 4]),
        (10, vec![1, 2, 4, 3]),
    ] {
        assert_eq!(slow_start_batches(count, 1), want, "{count}");
    }
    let burst = slow_start_batches(BURST_REPLICAS, 1);
    assert_eq!(burst, vec![1, 2, 4, 8, 16, 32, 64, 128, 245]);
    assert_eq!(burst.iter().sum::<usize>(), BURST_REPLICAS);
}

fn order(pods: &[P], related: &[P]) -> Vec<String> {
    let pods: Vec<Arc<Pod>> = pods.iter().map(P::pod).collect();
    let related: Vec<Arc<Pod>> = related.iter().map(P::pod).collect();
    pods_to_delete(&pods, &related, pods.len() - 1, now())
        .iter()
        .map(|p| p.name_any())
        .collect()
}

#[test]
fn scale_down_ranks_pods_as_upstream() {
    let keep = ready("keep", "n1", 10_000, 20_000);
    // Each row: pods listed in the wrong order; the first `len - 1` to delete in order.
    let cases: Vec<(&str, Vec<P>, Vec<&str>)> = vec![
        (
            "unscheduled before scheduled",
            vec![
                keep.clone(),
                P {
                    name: "unscheduled",
                    phase: "Pending",
                    ..P::default()
                },
            ],
            vec!["unscheduled"],
        ),
        (
            "pending before running",
            vec![
                keep.clone(),
                P {
                    name: "running",
                    node: "n1",
                    ..P::default()
                },
                P {
                    name: "pending",
                    node: "n1",
                    phase: "Pending",
                    ..P::default()
                },
            ],
            vec!["pending", "running"],
        ),
        (
            "unknown between pending and running",
            vec![
                keep.clone(),
                P {
                    name: "unknown",
                    node: "n1",
                    phase: "Unknown",
                    ..P::default()
                },
                P {
                    name: "pending",
                    node: "n1",
                    phase: "Pending",
                    ..P::default()
                },
            ],
            vec!["pending", "unknown"],
        ),
        (
            "not ready before ready",
            vec![
                keep.clone(),
                P {
                    name: "not-ready",
                    node: "n1",
                    ..P::default()
                },
            ],
            vec!["not-ready"],
        ),
        (
            "lower deletion cost first",
            vec![
                P {
                    cost: Some("10"),
                    ..keep.clone()
                },
                P {
                    cost: Some("-5"),
                    ..ready("cheap", "n1", 10_000, 20_000)
                },
            ],
            vec!["cheap"],
        ),
        (
            "ready for less time first (log scale)",
            vec![keep.clone(), ready("recent", "n1", 10, 20_000)],
            vec!["recent"],
        ),
        (
            "more restarts first",
            vec![
                keep.clone(),
                P {
                    restarts: 3,
                    ..ready("crashy", "n1", 10_000, 20_000)
                },
            ],
            vec!["crashy"],
        ),
        (
            "newer first (log scale)",
            vec![keep.clone(), ready("young", "n1", 10_000, 15)],
            vec!["young"],
        ),
    ];
    for (what, pods, want) in cases {
        assert_eq!(order(&pods, &[]), want, "{what}");
    }
}

#[test]
fn scale_down_prefers_pods_doubled_up_on_a_node() {
    let a = ready("a", "n1", 10_000, 20_000);
    let b = ready("b", "n2", 10_000, 20_000);
    // Related pods (of the other ReplicaSets of the same Deployment) crowd n2.
    let related = vec![
        a.clone(),
        b.clone(),
        ready("other-1", "n2", 1, 1),
        ready("other-2", "n2", 1, 1),
    ];
    assert_eq!(order(&[a, b], &related), ["b"]);
}

#[test]
fn all_pods_are_deleted_without_ranking() {
    let pods: Vec<Arc<Pod>> = [ready("a", "n1", 1, 1), ready("b", "n1", 1, 1)]
        .iter()
        .map(P::pod)
        .collect();
    assert_eq!(pods_to_delete(&pods, &[], 5, now()).len(), 2);
}

#[test]
fn the_sort_survives_a_comparator_that_is_not_a_total_order() {
    // Rock-paper-scissors: upstream's Less can be cyclic with logarithmic ties.
    let mut v: Vec<u8> = (0..200).map(|i| i % 3).collect();
    sort_by_less(&mut v, &|a, b| (a + 1) % 3 == *b);
    assert_eq!(v.len(), 200);
}

fn template_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app".to_owned(), "web".to_owned()),
        ("pod-template-hash".to_owned(), "abc".to_owned()),
    ])
}

#[test]
fn status_counts_fully_labeled_ready_and_available_pods() {
    let mut labeled = (*ready("a", "n1", 30, 60).pod()).clone();
    labeled.metadata.labels = Some(template_labels());
    let pods = vec![
        Arc::new(labeled),
        ready("b", "n1", 5, 60).pod(),
        P {
            name: "c",
            node: "n1",
            ..P::default()
        }
        .pod(),
    ];
    let status = calculate_status(
        &ReplicaSetStatus::default(),
        3,
        10,
        &template_labels(),
        &pods,
        None,
        now(),
    );
    assert_eq!(status.replicas, 3);
    assert_eq!(status.fully_labeled_replicas, Some(1));
    assert_eq!(status.ready_replicas, Some(2));
    // b has been ready 5 s of the 10 minReadySeconds.
    assert_eq!(status.available_replicas, Some(1));
    assert!(status.conditions.is_none());
    // b becomes available in 5 s (plus the margin).
    let next = next_availability_check(&pods, 10, now());
    assert!(next.is_some_and(|d| d > Duration::from_secs(5) && d < Duration::from_secs(6)));
    assert_eq!(next_availability_check(&pods, 0, now()), None);
}

#[test]
fn a_refused_create_sets_replica_failure_and_a_later_success_clears_it() {
    let quota = ManageFailure {
        message: "pods \"web-abcde\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2".into(),
    };
    let pods = vec![ready("a", "n1", 30, 60).pod()];
    let failed = calculate_status(
        &ReplicaSetStatus::default(),
        3,
        0,
        &template_labels(),
        &pods,
        Some(&quota),
        now(),
    );
    let conditions = failed.conditions.clone().unwrap_or_default();
    assert_eq!(conditions.len(), 1);
    assert_eq!(conditions[0].type_, "ReplicaFailure");
    assert_eq!(conditions[0].status, "True");
    assert_eq!(conditions[0].reason.as_deref(), Some("FailedCreate"));
    assert_eq!(
        conditions[0].message.as_deref(),
        Some(quota.message.as_str())
    );
    assert!(status_changed(1, &ReplicaSetStatus::default(), &failed));

    // Failing again keeps the condition as it was (time included): no new write.
    let mut written = failed.clone();
    written.observed_generation = Some(1);
    let again = calculate_status(
        &written,
        3,
        0,
        &template_labels(),
        &pods,
        Some(&quota),
        at(-60),
    );
    assert_eq!(again.conditions, written.conditions);
    assert!(!status_changed(1, &written, &again));

    // A delete failure names FailedDelete.
    let too_many = vec![pods[0].clone(), ready("b", "n1", 1, 1).pod()];
    let delete = calculate_status(
        &ReplicaSetStatus::default(),
        1,
        0,
        &template_labels(),
        &too_many,
        Some(&ManageFailure {
            message: "unable to delete pods: boom".into(),
        }),
        now(),
    );
    assert_eq!(
        delete.conditions.unwrap_or_default()[0].reason.as_deref(),
        Some("FailedDelete")
    );

    // Success removes it.
    let ok = calculate_status(&written, 3, 0, &template_labels(), &pods, None, now());
    assert!(ok.conditions.is_none());
    assert!(status_changed(1, &written, &ok));
}

#[test]
fn status_is_rewritten_only_on_change_or_a_new_generation() {
    let s = ReplicaSetStatus {
        replicas: 2,
        ready_replicas: Some(2),
        available_replicas: Some(2),
        fully_labeled_replicas: Some(2),
        observed_generation: Some(3),
        ..ReplicaSetStatus::default()
    };
    assert!(!status_changed(3, &s, &s));
    assert!(status_changed(4, &s, &s));
    let fewer = ReplicaSetStatus {
        ready_replicas: Some(1),
        ..s.clone()
    };
    assert!(status_changed(3, &s, &fewer));
    // Go omits zeros: absent and 0 are the same count.
    let zero = ReplicaSetStatus {
        replicas: 0,
        observed_generation: Some(1),
        ready_replicas: Some(0),
        ..ReplicaSetStatus::default()
    };
    let absent = ReplicaSetStatus {
        ready_replicas: None,
        ..zero.clone()
    };
    assert!(!status_changed(1, &zero, &absent));
}

#[test]
fn the_written_status_omits_zeros_as_go_does() {
    let s = ReplicaSetStatus {
        replicas: 0,
        ready_replicas: Some(0),
        available_replicas: Some(0),
        fully_labeled_replicas: Some(0),
        observed_generation: Some(2),
        ..ReplicaSetStatus::default()
    };
    assert_eq!(
        ReplicaSet::status_json(&s),
        json!({"replicas": 0, "fullyLabeledReplicas": null, "readyReplicas": null,
               "availableReplicas": null, "observedGeneration": 2, "conditions": null})
    );
}

#[test]
fn replication_controllers_go_through_the_same_shapes() {
    let rc = ReplicationController {
        spec: Some(k8s_openapi::api::core::v1::ReplicationControllerSpec {
            replicas: Some(4),
            selector: Some(BTreeMap::from([("app".into(), "web".into())])),
            ..Default::default()
        }),
        ..ReplicationController::default()
    };
    assert_eq!(rc.replicas(), 4);
    let sel = rc.selector().ok().flatten();
    assert!(matches(&sel, &ready("a", "n1", 1, 1).pod()));
    let none = ReplicationController::default();
    assert_eq!(none.replicas(), 1);
    assert!(!matches(
        &none.selector().ok().flatten(),
        &ready("a", "n1", 1, 1).pod()
    ));
    let status = ReplicaSetStatus {
        replicas: 1,
        conditions: Some(vec![ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some("FailedCreate".into()),
            message: Some("m".into()),
            last_transition_time: None,
        }]),
        ..ReplicaSetStatus::default()
    };
    let v = ReplicationController::status_json(&status);
    assert_eq!(v["conditions"][0]["type"], "ReplicaFailure");
    assert_eq!(v["replicas"], 1);
}

#[test]
fn failures_back_off_exponentially_to_a_ceiling() {
    assert_eq!(backoff(1), Duration::from_millis(5));
    assert_eq!(backoff(2), Duration::from_millis(10));
    assert_eq!(backoff(11), Duration::from_millis(5 * 1024));
    assert_eq!(backoff(40), Duration::from_secs(1000));
}
