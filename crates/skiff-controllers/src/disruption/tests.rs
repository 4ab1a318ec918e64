use super::*;
use k8s_openapi::api::core::v1::PodStatus;
use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;

fn pdb(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
    let mut p = PodDisruptionBudget::default();
    p.metadata.name = Some("web".into());
    p.metadata.namespace = Some("ns".into());
    p.metadata.generation = Some(1);
    p.spec = Some(PodDisruptionBudgetSpec {
        min_available: min,
        max_unavailable: max,
        selector: Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                match_labels: Some([("app".to_owned(), "web".to_owned())].into()),
                match_expressions: None,
            },
        ),
        ..Default::default()
    });
    p
}

fn pod(name: &str, ready: bool) -> Arc<Pod> {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.metadata.namespace = Some("ns".into());
    p.metadata.labels = Some([("app".to_owned(), "web".to_owned())].into());
    p.status = Some(PodStatus {
        phase: Some("Running".into()),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Default::default()
        }]),
        ..Default::default()
    });
    Arc::new(p)
}

fn int(n: i32) -> Option<IntOrString> {
    Some(IntOrString::Int(n))
}

fn pct(s: &str) -> Option<IntOrString> {
    Some(IntOrString::String(s.into()))
}

#[test]
fn percentages_round_up_as_upstream() {
    for (v, total, up, want) in [
        (IntOrString::Int(3), 10, true, Ok(3)),
        (IntOrString::String("50%".into()), 3, true, Ok(2)),
        (IntOrString::String("50%".into()), 3, false, Ok(1)),
        (IntOrString::String("34%".into()), 3, true, Ok(2)),
        (IntOrString::String("100%".into()), 7, true, Ok(7)),
        (IntOrString::String("0%".into()), 7, true, Ok(0)),
    ] {
        assert_eq!(scaled_value(&v, total, up), want, "{v:?} of {total}");
    }
    assert!(scaled_value(&IntOrString::String("5".into()), 10, true).is_err());
    assert!(scaled_value(&IntOrString::String("x%".into()), 10, true).is_err());
}

#[test]
fn desired_healthy_from_min_available_or_max_unavailable() {
    // (spec, controllers' scale, matching pods) -> (expected, desired)
    let cases = [
        (pdb(int(2), None), 0, 3, (3, 2)),
        (pdb(pct("50%"), None), 3, 3, (3, 2)),
        (pdb(pct("50%"), None), 5, 3, (5, 3)),
        (pdb(None, int(1)), 3, 3, (3, 2)),
        (pdb(None, pct("50%")), 3, 3, (3, 1)),
        (pdb(None, int(5)), 3, 3, (3, 0)),
        (pdb(None, None), 0, 3, (0, 0)),
    ];
    for (p, scale, pods, want) in cases {
        assert_eq!(desired_healthy(&p, scale, pods), Ok(want), "{:?}", p.spec);
    }
    assert!(!needs_scale(&pdb(int(2), None)));
    assert!(needs_scale(&pdb(pct("10%"), None)));
    assert!(needs_scale(&pdb(None, int(1))));
}

#[test]
fn the_status_allows_what_is_healthy_beyond_desired() {
    let now = Timestamp::now();
    let p = pdb(int(2), None);
    let status = new_status(&p, 3, 2, 3, BTreeMap::new(), now).expect("written");
    assert_eq!(status.disruptions_allowed, 1);
    assert_eq!(status.current_healthy, 3);
    assert_eq!(status.desired_healthy, 2);
    assert_eq!(status.expected_pods, 3);
    assert_eq!(status.observed_generation, Some(1));
    let c = &status.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
        ("DisruptionAllowed", "True", "SufficientPods")
    );

    // Written once, then current.
    let mut written = p.clone();
    written.status = Some(status);
    assert!(new_status(&written, 3, 2, 3, BTreeMap::new(), now).is_none());

    // Fewer healthy: none allowed, InsufficientPods.
    let fewer = new_status(&written, 2, 2, 3, BTreeMap::new(), now).expect("written");
    assert_eq!(fewer.disruptions_allowed, 0);
    let c = &fewer.conditions.as_ref().unwrap()[0];
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "InsufficientPods")
    );

    // No pods expected: none allowed.
    assert_eq!(
        new_status(&p, 3, 0, 0, BTreeMap::new(), now)
            .unwrap()
            .disruptions_allowed,
        0
    );
}

#[test]
fn disrupted_pods_wait_for_their_deletion_until_the_timeout() {
    let now = Timestamp::now();
    let recent = Time(now - SignedDuration::from_secs(10));
    let old = Time(now - SignedDuration::from_secs(300));
    let mut deleting = (*pod("c", true)).clone();
    deleting.metadata.deletion_timestamp = Some(Time(now));
    let pods = vec![
        pod("a", true),
        pod("b", true),
        Arc::new(deleting),
        pod("d", true),
    ];
    let recorded: BTreeMap<String, Time> = [
        ("a".to_owned(), recent.clone()),
        ("b".to_owned(), old),
        ("c".to_owned(), recent.clone()),
        ("gone".to_owned(), recent.clone()),
    ]
    .into();
    let (kept, recheck, not_deleted) = build_disrupted_pods(&pods, Some(&recorded), now);
    assert_eq!(kept.keys().collect::<Vec<_>>(), vec!["a"]);
    assert_eq!(recheck, Some(plus(recent.0, DELETION_TIMEOUT)));
    assert_eq!(not_deleted.len(), 1);
    assert_eq!(not_deleted[0].name_any(), "b");
    // a: just disrupted; c: being deleted; so b and d are healthy.
    assert_eq!(count_healthy(&pods, &kept, now), 2);
    let mut unready = pods.clone();
    unready.push(pod("e", false));
    assert_eq!(count_healthy(&unready, &kept, now), 2);
}

#[test]
fn a_failed_sync_allows_nothing() {
    let mut p = pdb(int(1), None);
    p.status = Some(PodDisruptionBudgetStatus {
        disruptions_allowed: 2,
        ..Default::default()
    });
    let s = fail_safe_status(&p, "found no controllers for pod \"x\"", Timestamp::now());
    assert_eq!(s.disruptions_allowed, 0);
    let c = &s.conditions.unwrap()[0];
    assert_eq!(
        (c.reason.as_str(), c.message.as_str()),
        ("SyncFailed", "found no controllers for pod \"x\"")
    );
}

#[test]
fn a_stale_disruption_target_is_cleared_after_two_minutes() {
    let now = Timestamp::now();
    let with = |status: &str, reason: &str, ago: i64| {
        let mut p = (*pod("a", true)).clone();
        if let Some(cs) = p.status.as_mut().and_then(|s| s.conditions.as_mut()) {
            cs.push(PodCondition {
                type_: "DisruptionTarget".into(),
                status: status.into(),
                reason: Some(reason.into()),
                last_transition_time: Some(Time(now - SignedDuration::from_secs(ago))),
                ..Default::default()
            });
        }
        p
    };
    assert_eq!(
        stale_disruption_condition(&with("True", "EvictionByEvictionAPI", 200), now),
        Some(Duration::ZERO)
    );
    assert_eq!(
        stale_disruption_condition(&with("True", "EvictionByEvictionAPI", 20), now),
        Some(Duration::from_secs(100))
    );
    assert_eq!(
        stale_disruption_condition(&with("False", "x", 200), now),
        None
    );
    assert_eq!(
        stale_disruption_condition(&with("True", "TerminationByKubelet", 200), now),
        None
    );
    let mut deleting = with("True", "EvictionByEvictionAPI", 200);
    deleting.metadata.deletion_timestamp = Some(Time(now));
    assert_eq!(stale_disruption_condition(&deleting, now), None);
}

#[test]
fn budgets_select_by_non_empty_selector() {
    let p = pdb(int(1), None);
    assert!(selects(&p, &pod("a", true)));
    let mut other = (*pod("a", true)).clone();
    other.metadata.namespace = Some("other".into());
    assert!(!selects(&p, &other));
    let mut empty = p.clone();
    empty
        .spec
        .iter_mut()
        .for_each(|s| s.selector = Some(Default::default()));
    assert!(!selects(&empty, &pod("a", true)));
}
