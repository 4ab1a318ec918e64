use serde_json::json;

use super::*;

fn q(s: &str) -> Quantity {
    Quantity::parse(s).unwrap()
}

fn list(pairs: &[(&str, &str)]) -> ResourceList {
    pairs.iter().map(|(k, v)| ((*k).into(), q(v))).collect()
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn pod(containers: Value) -> Value {
    json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": containers}})
}

#[test]
fn sums_quantities_in_their_canonical_form() {
    let sum = add(
        &list(&[("cpu", "500m"), ("memory", "1Gi")]),
        &list(&[("cpu", "1.5"), ("memory", "512Mi")]),
    );
    assert_eq!(sum["cpu"].canonical(), "2");
    assert_eq!(sum["memory"].canonical(), "1536Mi");
    // A zero takes the other's format, as upstream's Quantity.Add.
    assert_eq!((Quantity::zero() + q("1Gi")).canonical(), "1Gi");
    let diff = subtract(
        &list(&[("cpu", "2")]),
        &list(&[("cpu", "250m"), ("pods", "1")]),
    );
    assert_eq!(diff["cpu"].canonical(), "1750m");
    assert_eq!(diff["pods"].canonical(), "-1");
    assert_eq!(negative(&diff), vec!["pods".to_string()]);
}

#[test]
fn compares_masks_and_prints_as_upstream() {
    let used = list(&[("pods", "3"), ("requests.cpu", "1500m"), ("secrets", "1")]);
    let hard = list(&[("pods", "2"), ("requests.cpu", "2")]);
    let (ok, exceeded) = less_than_or_equal(&used, &hard);
    assert!(!ok);
    assert_eq!(exceeded, vec!["pods".to_string()]);
    assert_eq!(mask(&used, hard.keys()).len(), 2);
    assert_eq!(pretty_print(&used), "pods=3,requests.cpu=1500m,secrets=1");
    assert!(equals(&list(&[("cpu", "1000m")]), &list(&[("cpu", "1")])));
}

#[test]
fn pod_usage_counts_requests_limits_and_init_containers() {
    let mut p = pod(json!([
        {"name": "a", "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1"}}},
        {"name": "b", "resources": {"requests": {"cpu": "1.5", "example.com/gpu": "1"}}},
    ]));
    p["spec"]["initContainers"] = json!([
        {"name": "init", "resources": {"requests": {"cpu": "3"}}},
    ]);
    let u = pod_usage(&p, now());
    assert_eq!(u["pods"].canonical(), "1");
    assert_eq!(u["count/pods"].canonical(), "1");
    // max(500m + 1.5, 3) = 3 cpu.
    assert_eq!(u["requests.cpu"].canonical(), "3");
    assert_eq!(u["cpu"].canonical(), "3");
    assert_eq!(u["requests.memory"].canonical(), "1Gi");
    assert_eq!(u["limits.cpu"].canonical(), "1");
    assert_eq!(u["requests.example.com/gpu"].canonical(), "1");
    assert!(!u.contains_key("limits.memory"));

    // A restartable sidecar runs alongside: 500m + 1.5 + 250m.
    p["spec"]["initContainers"] = json!([
        {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "250m"}}},
    ]);
    assert_eq!(pod_usage(&p, now())["requests.cpu"].canonical(), "2250m");
}

#[test]
fn terminal_and_long_terminating_pods_use_only_their_object_count() {
    let mut p = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "1"}}}]));
    p["status"] = json!({"phase": "Succeeded"});
    assert_eq!(
        pod_usage(&p, now()).into_keys().collect::<Vec<_>>(),
        vec!["count/pods"]
    );
    p["status"] = json!({"phase": "Running"});
    p["metadata"]["deletionTimestamp"] = json!("2020-01-01T00:00:00Z");
    p["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    assert!(!pod_counts(&p, now()));
    p["metadata"]["deletionTimestamp"] = json!(crate::meta::timestamp(now()));
    assert!(pod_counts(&p, now()));
}

#[test]
fn services_and_claims_use_what_upstream_charges() {
    let svc = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}});
    let u = Evaluator::Services.usage(&svc, now());
    assert_eq!(
        pretty_print(&u),
        "count/services=1,services=1,services.loadbalancers=0,services.nodeports=2"
    );
    let lb = json!({"spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
                             "ports": [{"port": 80, "nodePort": 30001}, {"port": 81}]}});
    let u = Evaluator::Services.usage(&lb, now());
    assert_eq!(u["services.nodeports"].canonical(), "1");
    assert_eq!(u["services.loadbalancers"].canonical(), "1");

    let pvc = json!({"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}},
                     "status": {"allocatedResources": {"storage": "2Gi"}}});
    let u = Evaluator::Claims.usage(&pvc, now());
    assert_eq!(
        pretty_print(&u),
        "count/persistentvolumeclaims=1,fast.storageclass.storage.k8s.io/persistentvolumeclaims=1,fast.storageclass.storage.k8s.io/requests.storage=2Gi,persistentvolumeclaims=1,requests.storage=2Gi"
    );
}

#[test]
fn evaluators_match_their_resource_names() {
    let names: Vec<String> = [
        "pods",
        "requests.cpu",
        "count/configmaps",
        "configmaps",
        "count/deployments.apps",
        "services.nodeports",
        "gold.storageclass.storage.k8s.io/requests.storage",
        "requests.nvidia.com/gpu",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        Evaluator::Pods.matching_resources(&names),
        vec!["pods", "requests.cpu", "requests.nvidia.com/gpu"]
    );
    let cm = Evaluator::for_resource("", "configmaps").unwrap();
    assert_eq!(
        cm.matching_resources(&names),
        vec!["count/configmaps", "configmaps"]
    );
    let deploy = Evaluator::for_resource("apps", "deployments").unwrap();
    assert_eq!(
        deploy.matching_resources(&names),
        vec!["count/deployments.apps"]
    );
    assert_eq!(
        Evaluator::Claims.matching_resources(&names),
        vec!["gold.storageclass.storage.k8s.io/requests.storage"]
    );
    assert!(Evaluator::for_resource("", "events").is_none());
    assert_eq!(
        Evaluator::for_count_name("count/deployments.apps"),
        Some(("apps".into(), "deployments".into()))
    );
    assert_eq!(
        Evaluator::for_count_name("count/secrets"),
        Some(("".into(), "secrets".into()))
    );
}

fn quota(name: &str, hard: Value, used: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "ns"}, "spec": {"hard": hard},
           "status": {"hard": hard, "used": used}})
}

#[test]
fn a_create_over_the_limit_is_refused_with_upstreams_message() {
    let quotas = vec![quota("q", json!({"pods": "2"}), json!({"pods": "2"}))];
    let p = pod(json!([{"name": "a"}]));
    assert_eq!(
        check_create(&quotas, &Evaluator::Pods, &p, now()).unwrap_err(),
        "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
    );
    let quotas = vec![quota(
        "compute",
        json!({"requests.cpu": "2", "pods": "10"}),
        json!({"requests.cpu": "1500m", "pods": "1"}),
    )];
    let p = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "500m"}}}]));
    let charged = check_create(&quotas, &Evaluator::Pods, &p, now()).unwrap();
    assert_eq!(charged.len(), 1);
    assert_eq!(pretty_print(&charged[0].1), "pods=2,requests.cpu=2");
    let p = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "600m"}}}]));
    assert_eq!(
        check_create(&quotas, &Evaluator::Pods, &p, now()).unwrap_err(),
        "exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=1500m, limited: requests.cpu=2"
    );
}

#[test]
fn a_quota_without_usage_or_a_container_without_requests_is_refused() {
    let mut unknown = quota("q", json!({"pods": "2"}), json!({}));
    unknown["status"] = json!({"hard": {"pods": "2"}});
    let p = pod(json!([{"name": "a"}]));
    assert_eq!(
        check_create(&[unknown], &Evaluator::Pods, &p, now()).unwrap_err(),
        "status unknown for quota: q, resources: pods"
    );
    let cpu = quota(
        "cpu",
        json!({"requests.cpu": "2", "limits.memory": "1Gi"}),
        json!({"requests.cpu": "0", "limits.memory": "0"}),
    );
    let p = pod(json!([{"name": "b"}, {"name": "a", "resources": {"requests": {"cpu": "1"}}}]));
    assert_eq!(
        check_create(&[cpu], &Evaluator::Pods, &p, now()).unwrap_err(),
        "failed quota: cpu: must specify limits.memory for: a,b; requests.cpu for: b"
    );
}

#[test]
fn scopes_and_other_kinds_decide_which_quotas_apply() {
    let mut best_effort = quota("be", json!({"pods": "1"}), json!({"pods": "1"}));
    best_effort["spec"]["scopes"] = json!(["BestEffort"]);
    let burstable = pod(json!([{"name": "a", "resources": {"requests": {"cpu": "1"}}}]));
    assert!(
        check_create(&[best_effort.clone()], &Evaluator::Pods, &burstable, now())
            .unwrap()
            .is_empty()
    );
    assert!(check_create(
        &[best_effort],
        &Evaluator::Pods,
        &pod(json!([{"name": "a"}])),
        now()
    )
    .is_err());

    let mut by_class = quota("high", json!({"pods": "5"}), json!({"pods": "0"}));
    by_class["spec"]["scopeSelector"] = json!({"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]});
    let mut high = pod(json!([{"name": "a"}]));
    assert!(
        check_create(&[by_class.clone()], &Evaluator::Pods, &high, now())
            .unwrap()
            .is_empty()
    );
    high["spec"]["priorityClassName"] = json!("high");
    assert_eq!(
        check_create(&[by_class], &Evaluator::Pods, &high, now()).unwrap()[0].0,
        0
    );

    let counts = quota(
        "objects",
        json!({"count/configmaps": "1", "configmaps": "5", "pods": "1"}),
        json!({"count/configmaps": "1", "configmaps": "1", "pods": "1"}),
    );
    let cm = Evaluator::for_resource("", "configmaps").unwrap();
    assert_eq!(
        check_create(&[counts], &cm, &json!({"metadata": {"name": "c"}}), now()).unwrap_err(),
        "exceeded quota: objects, requested: count/configmaps=1, used: count/configmaps=1, limited: count/configmaps=1"
    );
}

#[test]
fn the_controller_recalculates_used_from_the_objects() {
    let q = json!({"metadata": {"name": "q"}, "spec": {"hard": {"pods": "10", "requests.memory": "2Gi", "secrets": "3"}}});
    let pods = [
        pod(json!([{"name": "a", "resources": {"requests": {"memory": "512Mi"}}}])),
        pod(json!([{"name": "a", "resources": {"requests": {"memory": "512Mi"}}}])),
        {
            let mut done =
                pod(json!([{"name": "a", "resources": {"requests": {"memory": "1Gi"}}}]));
            done["status"] = json!({"phase": "Failed"});
            done
        },
    ];
    let names = hard_names(&q);
    let tracked = Evaluator::Pods.matching_resources(&names);
    let measured = usage_stats(&Evaluator::Pods, &q, &tracked, pods.iter(), now());
    assert_eq!(pretty_print(&measured), "pods=2,requests.memory=1Gi");
    let status = desired_status(&q, &measured).unwrap();
    assert_eq!(
        status,
        json!({"hard": {"pods": "10", "requests.memory": "2Gi", "secrets": "3"},
               "used": {"pods": "2", "requests.memory": "1Gi"}})
    );
    let mut synced = q.clone();
    synced["status"] = status;
    assert!(desired_status(&synced, &measured).is_none());
    // Nothing of a kind: zero, in DecimalSI.
    let none = usage_stats(&Evaluator::Pods, &q, &tracked, [].iter(), now());
    assert_eq!(pretty_print(&none), "pods=0,requests.memory=0");
}

#[test]
fn an_update_is_charged_only_what_it_adds() {
    let q = quota(
        "q",
        json!({"services.nodeports": "1", "services": "5"}),
        json!({"services.nodeports": "0", "services": "1"}),
    );
    let cluster_ip = json!({"metadata": {"name": "s"}, "spec": {"type": "ClusterIP", "ports": [{"port": 80}, {"port": 81}]}});
    let mut node_port = cluster_ip.clone();
    node_port["spec"]["type"] = json!("NodePort");
    assert_eq!(
        check(std::slice::from_ref(&q), &Evaluator::Services, &node_port, Some(&cluster_ip), now()).unwrap_err(),
        "exceeded quota: q, requested: services.nodeports=2, used: services.nodeports=0, limited: services.nodeports=1"
    );
    // Nothing added (the object count stays): nothing charged.
    assert!(check(
        std::slice::from_ref(&q),
        &Evaluator::Services,
        &cluster_ip,
        Some(&cluster_ip),
        now()
    )
    .unwrap()
    .is_empty());
    assert!(!Evaluator::Pods.handles_update());
    let d = subtract_non_negative(
        &list(&[("a", "1"), ("b", "3")]),
        &list(&[("a", "2"), ("c", "1")]),
    );
    assert_eq!(pretty_print(&d), "a=0,b=3,c=0");
}
