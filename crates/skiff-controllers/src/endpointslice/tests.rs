use super::reconciler::{self, *};
use super::*;
use crate::endpoints::tests::{pod, service};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

fn node(name: &str, zone: Option<&str>) -> Arc<Node> {
    let mut n = Node::default();
    n.metadata.name = Some(name.into());
    if let Some(z) = zone {
        n.metadata.labels = Some([("topology.kubernetes.io/zone".to_owned(), z.to_owned())].into());
    }
    Arc::new(n)
}

fn nodes(name: &str) -> Option<Arc<Node>> {
    (name == "n1").then(|| node("n1", Some("zone-a")))
}

fn pods(n: usize, ready: bool) -> Vec<Arc<Pod>> {
    (0..n)
        .map(|i| {
            pod(
                &format!("p{i:03}"),
                &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                ready,
                8080,
            )
        })
        .collect()
}

/// The plan's slices after applying it, as the API server would: created slices get names.
fn apply(existing: &[Arc<EndpointSlice>], plan: &Plan) -> Vec<Arc<EndpointSlice>> {
    let mut out: Vec<EndpointSlice> = existing
        .iter()
        .map(|s| (**s).clone())
        .filter(|s| {
            !plan
                .delete
                .iter()
                .any(|d| d.metadata.name == s.metadata.name)
        })
        .collect();
    for u in &plan.update {
        if let Some(s) = out.iter_mut().find(|s| s.metadata.name == u.metadata.name) {
            *s = u.clone();
        }
    }
    for (i, c) in plan.create.iter().enumerate() {
        let mut c = c.clone();
        c.metadata.name = Some(format!(
            "{}{}{i}",
            c.metadata.generate_name.clone().unwrap_or_default(),
            out.len()
        ));
        out.push(c);
    }
    out.into_iter().map(Arc::new).collect()
}

fn counts(slices: &[Arc<EndpointSlice>]) -> Vec<usize> {
    let mut v: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v
}

#[test]
fn a_new_service_gets_one_labelled_owned_slice() {
    let svc = service(IntOrString::Int(8080), false);
    let plan = reconciler::reconcile(&svc, &pods(3, true), &[], &nodes, 100);
    assert_eq!(plan.create.len(), 1);
    assert!(plan.update.is_empty() && plan.delete.is_empty());
    let s = &plan.create[0];
    assert_eq!(s.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(s.address_type, "IPv4");
    let labels = s.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels[LABEL_SERVICE_NAME], "web");
    assert_eq!(labels[LABEL_MANAGED_BY], CONTROLLER_NAME);
    assert_eq!(labels["app"], "web");
    let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Service", "svc-uid")
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(s.endpoints.len(), 3);
    let e = &s.endpoints[0];
    assert_eq!(e.node_name.as_deref(), Some("n1"));
    assert_eq!(e.zone.as_deref(), Some("zone-a"));
    assert_eq!(
        e.target_ref.as_ref().and_then(|r| r.name.as_deref()),
        Some("p000")
    );
    let ports = s.ports.clone().unwrap_or_default();
    assert_eq!(ports[0].port, Some(8080));
    assert_eq!(ports[0].name.as_deref(), Some("http"));
}

#[test]
fn conditions_follow_readiness_termination_and_publishing() {
    let mut terminating = (*pod("t", "10.0.0.9", true, 1)).clone();
    terminating.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    let cases = [
        (pod("r", "10.0.0.1", true, 1), false, (true, true, false)),
        (pod("n", "10.0.0.2", false, 1), false, (false, false, false)),
        (Arc::new(terminating.clone()), false, (false, true, true)),
        (pod("n", "10.0.0.2", false, 1), true, (true, false, false)),
        (Arc::new(terminating), true, (true, true, true)),
    ];
    for (p, publish, (ready, serving, term)) in cases {
        let svc = service(IntOrString::Int(1), publish);
        let e = pod_to_endpoint(&p, None, &svc, "IPv4");
        let c = e.conditions.unwrap_or_default();
        assert_eq!(
            (c.ready, c.serving, c.terminating),
            (Some(ready), Some(serving), Some(term)),
            "{:?} publish={publish}",
            p.metadata.name
        );
    }
}

#[test]
fn hostname_only_when_the_subdomain_is_the_service() {
    let svc = service(IntOrString::Int(1), false);
    let mut p = (*pod("h", "10.0.0.1", true, 1)).clone();
    if let Some(spec) = p.spec.as_mut() {
        spec.hostname = Some("h".into());
        spec.subdomain = Some("other".into());
    }
    assert_eq!(pod_to_endpoint(&p, None, &svc, "IPv4").hostname, None);
    if let Some(spec) = p.spec.as_mut() {
        spec.subdomain = Some("web".into());
    }
    assert_eq!(
        pod_to_endpoint(&p, None, &svc, "IPv4").hostname.as_deref(),
        Some("h")
    );
}

#[test]
fn slices_hold_at_most_max_endpoints() {
    let svc = service(IntOrString::Int(8080), false);
    for (n, max, want) in [
        (250, 100, vec![100, 100, 50]),
        (10, 4, vec![4, 4, 2]),
        (100, 100, vec![100]),
        (0, 100, vec![0]),
    ] {
        let plan = reconciler::reconcile(&svc, &pods(n, true), &[], &nodes, max);
        let slices = apply(&[], &plan);
        assert_eq!(counts(&slices), want, "{n} pods, max {max}");
    }
}

#[test]
fn a_named_target_port_puts_pods_with_different_numbers_in_different_slices() {
    let svc = service(IntOrString::String("http".into()), false);
    let ps = vec![
        pod("a", "10.0.0.1", true, 8080),
        pod("b", "10.0.0.2", true, 9090),
        pod("c", "10.0.0.3", true, 8080),
    ];
    let plan = reconciler::reconcile(&svc, &ps, &[], &nodes, 100);
    let mut by_port: Vec<(i32, usize)> = plan
        .create
        .iter()
        .map(|s| {
            (
                s.ports.as_ref().unwrap()[0].port.unwrap_or(0),
                s.endpoints.len(),
            )
        })
        .collect();
    by_port.sort_unstable();
    assert_eq!(by_port, vec![(8080, 2), (9090, 1)]);
}

#[test]
fn changes_touch_as_few_slices_as_possible() {
    let svc = service(IntOrString::Int(8080), false);
    // 250 pods in 100/100/50.
    let all = pods(250, true);
    let slices = apply(&[], &reconciler::reconcile(&svc, &all, &[], &nodes, 100));

    // Nothing changed: nothing to do.
    assert_eq!(
        reconciler::reconcile(&svc, &all, &slices, &nodes, 100),
        Plan::default()
    );

    // Five new pods fit in the half-full slice: one update, no create.
    let mut more = all.clone();
    more.extend(
        (250..255).map(|i| pod(&format!("q{i}"), &format!("10.1.0.{}", i - 249), true, 8080)),
    );
    let plan = reconciler::reconcile(&svc, &more, &slices, &nodes, 100);
    assert!(plan.create.is_empty() && plan.delete.is_empty());
    assert_eq!(plan.update.len(), 1);
    assert_eq!(plan.update[0].endpoints.len(), 55);

    // A pod turning unready updates only its slice.
    let mut one_unready = all.clone();
    one_unready[0] = pod("p000", "10.0.0.1", false, 8080);
    let plan = reconciler::reconcile(&svc, &one_unready, &slices, &nodes, 100);
    assert_eq!(
        (plan.create.len(), plan.update.len(), plan.delete.len()),
        (0, 1, 0)
    );

    // Scaled to zero: one empty placeholder is left (an update of a slice to delete).
    let plan = reconciler::reconcile(&svc, &[], &slices, &nodes, 100);
    let left = apply(&slices, &plan);
    assert_eq!(counts(&left), vec![0]);
    assert!(plan.create.is_empty());
    // And it stays.
    assert_eq!(
        reconciler::reconcile(&svc, &[], &left, &nodes, 100),
        Plan::default()
    );
}

#[test]
fn pods_without_ip_or_terminal_are_left_out_and_unknown_nodes_reported() {
    let svc = service(IntOrString::Int(8080), false);
    let mut no_ip = (*pod("a", "10.0.0.1", true, 1)).clone();
    no_ip.status.iter_mut().for_each(|s| {
        s.pod_ip = None;
        s.pod_ips = None;
    });
    let mut done = (*pod("b", "10.0.0.2", true, 1)).clone();
    done.status
        .iter_mut()
        .for_each(|s| s.phase = Some("Succeeded".into()));
    let mut elsewhere = (*pod("c", "10.0.0.3", true, 1)).clone();
    elsewhere
        .spec
        .iter_mut()
        .for_each(|s| s.node_name = Some("gone".into()));
    let plan = reconciler::reconcile(
        &svc,
        &[Arc::new(no_ip), Arc::new(done), Arc::new(elsewhere.clone())],
        &[],
        &nodes,
        100,
    );
    assert_eq!(plan.create.len(), 1);
    assert!(plan.create[0].endpoints.is_empty());
    assert_eq!(plan.errors.len(), 1);
    // Published anyway when the Service asks for it.
    let published = service(IntOrString::Int(8080), true);
    let plan = reconciler::reconcile(&published, &[Arc::new(elsewhere)], &[], &nodes, 100);
    assert_eq!(plan.create[0].endpoints.len(), 1);
    assert!(plan.errors.is_empty());
}

#[test]
fn slices_not_owned_or_of_another_family_are_deleted() {
    let svc = service(IntOrString::Int(8080), false);
    let mut foreign = new_slice(&svc, vec![], "IPv4");
    foreign.metadata.name = Some("web-old".into());
    foreign
        .metadata
        .owner_references
        .iter_mut()
        .for_each(|o| o[0].uid = "other".into());
    let mut v6 = new_slice(&svc, vec![], "IPv6");
    v6.metadata.name = Some("web-v6".into());
    let plan = reconciler::reconcile(
        &svc,
        &pods(1, true),
        &[Arc::new(foreign), Arc::new(v6)],
        &nodes,
        100,
    );
    let mut deleted: Vec<_> = plan
        .delete
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    deleted.sort();
    // The foreign one is replaced by an update? No: only owned slices are reused.
    assert!(deleted.contains(&"web-v6".to_owned()));
    assert!(deleted.contains(&"web-old".to_owned()));
    assert_eq!(plan.create.len(), 1);
}

#[test]
fn a_stale_cache_is_not_trusted() {
    let slice = |name: &str, rv: &str| {
        let mut s = EndpointSlice::default();
        s.metadata.name = Some(name.into());
        s.metadata.resource_version = Some(rv.into());
        Arc::new(s)
    };
    let written: Written = [("a".to_owned(), Some(5)), ("b".to_owned(), None)].into();
    assert!(!stale(&written, &[slice("a", "5")]));
    assert!(!stale(&written, &[slice("a", "7")]));
    assert!(stale(&written, &[slice("a", "4")]));
    assert!(stale(&written, &[]));
    assert!(stale(&written, &[slice("a", "5"), slice("b", "3")]));
}

#[test]
fn the_trigger_time_annotation_is_set_or_removed() {
    let svc = service(IntOrString::Int(8080), false);
    let mut s = new_slice(&svc, vec![], "IPv4");
    set_trigger_time(&mut s, Timestamp::from_second(0).ok());
    assert_eq!(
        s.metadata.annotations.as_ref().unwrap()[crate::endpoints::util::LAST_CHANGE_TRIGGER_TIME],
        "1970-01-01T00:00:00Z"
    );
    set_trigger_time(&mut s, None);
    assert!(s.metadata.annotations.as_ref().unwrap().is_empty());
}
