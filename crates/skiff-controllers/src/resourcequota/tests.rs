use serde_json::json;

use super::*;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn each_name_goes_to_the_evaluator_that_measures_it() {
    let hard = names(&[
        "configmaps",
        "count/configmaps",
        "count/deployments.apps",
        "count/pods",
        "requests.cpu",
        "services.nodeports",
        "requests.storage",
        "bogus",
    ]);
    let got: Vec<(String, Vec<String>)> = evaluators_for(&hard)
        .into_iter()
        .map(|(e, m)| (format!("{e:?}"), m))
        .collect();
    assert_eq!(got.len(), 5);
    assert_eq!(
        got[0],
        ("Pods".into(), names(&["count/pods", "requests.cpu"]))
    );
    assert_eq!(got[1], ("Services".into(), names(&["services.nodeports"])));
    assert_eq!(got[2], ("Claims".into(), names(&["requests.storage"])));
    assert_eq!(got[3].1, names(&["configmaps", "count/configmaps"]));
    assert_eq!(got[4].1, names(&["count/deployments.apps"]));
}

fn pod(cpu: &str, phase: &str) -> Value {
    json!({"metadata": {"name": "p", "namespace": "ns"},
           "spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": cpu}}}]},
           "status": {"phase": phase}})
}

#[test]
fn the_status_follows_spec_and_objects() {
    let q = json!({"metadata": {"name": "q", "namespace": "ns"},
                   "spec": {"hard": {"pods": "2", "requests.cpu": "2", "count/configmaps": "5", "widgets": "1"}}});
    let hard = quota::hard_names(&q);
    let evaluators = evaluators_for(&hard);
    let objects = |e: &Evaluator| -> Option<Vec<Value>> {
        Some(match e {
            Evaluator::Pods => vec![
                pod("500m", "Running"),
                pod("1.5", "Pending"),
                pod("1", "Succeeded"),
            ],
            _ => vec![
                json!({"metadata": {"name": "a"}}),
                json!({"metadata": {"name": "b"}}),
            ],
        })
    };
    let measured: Vec<_> = evaluators
        .into_iter()
        .map(|(e, n)| {
            let o = objects(&e);
            (e, n, o)
        })
        .collect();
    let status = plan(&q, &measured, chrono::Utc::now()).unwrap();
    assert_eq!(
        status,
        json!({"hard": {"count/configmaps": "5", "pods": "2", "requests.cpu": "2", "widgets": "1"},
               "used": {"count/configmaps": "2", "pods": "2", "requests.cpu": "2"}})
    );
    // In sync: nothing to write.
    let mut synced = q.clone();
    synced["status"] = status;
    assert!(plan(&synced, &measured, chrono::Utc::now()).is_none());
    // A list that failed keeps its names' last usage.
    let partial: Vec<_> = measured
        .iter()
        .map(|(e, n, o)| {
            (
                e.clone(),
                n.clone(),
                if *e == Evaluator::Pods {
                    None
                } else {
                    o.clone()
                },
            )
        })
        .collect();
    assert!(plan(&synced, &partial, chrono::Utc::now()).is_none());
    // A spec change is written even with the same usage.
    let mut raised = synced.clone();
    raised["spec"]["hard"]["pods"] = json!("3");
    assert_eq!(
        plan(&raised, &measured, chrono::Utc::now()).unwrap()["hard"]["pods"],
        "3"
    );
}
