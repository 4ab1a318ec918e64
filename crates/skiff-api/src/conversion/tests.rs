use serde_json::{json, Value};

use super::*;
use crate::registry::Registry;

fn info(group: &str, version: &str, plural: &str) -> ResourceInfo {
    Registry::builtin()
        .get(group, version, plural)
        .cloned()
        .unwrap_or_else(|| panic!("{group}/{version} {plural} is served"))
}

fn hpa_v1() -> ResourceInfo {
    info("autoscaling", "v1", "horizontalpodautoscalers")
}

fn hpa_v2() -> ResourceInfo {
    info("autoscaling", "v2", "horizontalpodautoscalers")
}

fn annotation(obj: &Value, key: &str) -> Value {
    let text = obj["metadata"]["annotations"][key]
        .as_str()
        .unwrap_or_else(|| panic!("annotation {key} in {obj:#}"));
    serde_json::from_str(text).unwrap()
}

#[test]
fn storage_resources_are_upstreams() {
    let storage = storage_resource(&hpa_v1());
    assert_eq!(storage.api_version(), "autoscaling/v2");
    assert_eq!(storage.plural, "horizontalpodautoscalers");
    assert_eq!(storage_resource(&hpa_v2()), storage);
    let events = storage_resource(&info("events.k8s.io", "v1", "events"));
    assert_eq!(
        (events.api_version(), events.plural),
        ("v1".into(), "events")
    );
    let pods = storage_resource(&info("", "v1", "pods"));
    assert_eq!((pods.group, pods.version, pods.plural), ("", "v1", "pods"));
    assert!(is_storage_version(&hpa_v2()) && !is_storage_version(&hpa_v1()));
    assert!(is_storage_version(&info("", "v1", "events")));
    assert!(!is_storage_version(&info("events.k8s.io", "v1", "events")));
}

#[test]
fn other_kinds_pass_through_untouched() {
    let pods = info("", "v1", "pods");
    assert!(is_identity(&pods) && is_identity(&info("", "v1", "events")));
    assert!(!is_identity(&hpa_v2()) && !is_identity(&hpa_v1()));
    // Not even looked at: a value no conversion could take comes back as it went in.
    for weird in [json!(5), json!({"apiVersion": "autoscaling/v1"})] {
        assert_eq!(to_storage(&pods, weird.clone()).unwrap(), weird);
        assert_eq!(from_storage(&pods, weird.clone()).unwrap(), weird);
    }
}

#[test]
fn hpa_v1_round_trips_through_v2() {
    let v1 = json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                 "minReplicas": 1, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50},
        "status": {"currentReplicas": 2, "desiredReplicas": 2, "currentCPUUtilizationPercentage": 30,
                   "observedGeneration": 1, "lastScaleTime": "2024-01-01T00:00:00Z"},
    });
    let v2 = to_storage(&hpa_v1(), v1.clone()).unwrap();
    assert_eq!(
        v2,
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 1, "maxReplicas": 3,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                         "target": {"type": "Utilization", "averageUtilization": 50}}}]},
            "status": {"currentReplicas": 2, "desiredReplicas": 2, "observedGeneration": 1,
                       "lastScaleTime": "2024-01-01T00:00:00Z",
                       "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
                           "current": {"averageUtilization": 30}}}]},
        })
    );
    // Read back through v1: the same object. The CPU status also goes into the
    // current-metrics annotation, as upstream (it may carry a raw value too).
    let back = from_storage(&hpa_v1(), v2.clone()).unwrap();
    assert_eq!(
        annotation(&back, METRIC_STATUSES_ANNOTATION),
        json!([{"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 30}}])
    );
    let mut expected = v1.clone();
    expected["metadata"]["annotations"] = back["metadata"]["annotations"].clone();
    assert_eq!(back, expected);
    // Written again through v1 as read: the stored object does not change.
    assert_eq!(to_storage(&hpa_v1(), back).unwrap(), v2);
    // Read through v2: as stored.
    assert_eq!(from_storage(&hpa_v2(), v2.clone()).unwrap(), v2);
}

#[test]
fn hpa_v1_without_a_target_gets_upstreams_default_cpu_metric() {
    let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"}, "spec": {"maxReplicas": 3}});
    let v2 = to_storage(&hpa_v1(), v1).unwrap();
    assert_eq!(
        v2["spec"]["metrics"],
        json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    assert!(v2.get("status").is_none());
    let back = from_storage(&hpa_v1(), v2).unwrap();
    assert_eq!(back["spec"]["targetCPUUtilizationPercentage"], 80);
    assert!(back["metadata"].get("annotations").is_none());
}

fn rich_v2() -> Value {
    json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "default", "uid": "u-1",
                     "annotations": {"owner": "me"}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2, "maxReplicas": 10,
            "metrics": [
                {"type": "Resource", "resource": {"name": "memory",
                    "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
                    "target": {"type": "Utilization", "averageUtilization": 60}}},
                {"type": "Pods", "pods": {"metric": {"name": "qps", "selector": {"matchLabels": {"a": "b"}}},
                    "target": {"type": "AverageValue", "averageValue": "1k"}}},
                {"type": "Object", "object": {
                    "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                    "metric": {"name": "requests"}, "target": {"type": "Value", "value": "10k"}}},
                {"type": "External", "external": {"metric": {"name": "queue"},
                    "target": {"type": "AverageValue", "averageValue": "30"}}},
                {"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 70}}},
            ],
            "behavior": {
                "scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                    {"type": "Percent", "value": 100, "periodSeconds": 15}]},
                "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Min", "tolerance": "0.05",
                    "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]},
            },
        },
        "status": {
            "observedGeneration": 3, "currentReplicas": 4, "desiredReplicas": 5,
            "currentMetrics": [
                {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "90Mi"}}},
                {"type": "Object", "object": {
                    "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                    "metric": {"name": "requests"}, "current": {"value": "9k"}}},
                {"type": "External", "external": {"metric": {"name": "queue"},
                    "current": {"averageValue": "25"}}},
                {"type": "Resource", "resource": {"name": "cpu",
                    "current": {"averageUtilization": 65, "averageValue": "650m"}}},
            ],
            "conditions": [
                {"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale",
                 "lastTransitionTime": "2024-01-01T00:00:00Z", "message": "ok"},
                {"type": "ScalingActive", "status": "True", "reason": "ValidMetricFound"},
            ],
        },
    })
}

#[test]
fn hpa_v2_round_trips_through_v1_with_upstreams_annotations() {
    let v2 = rich_v2();
    let v1 = from_storage(&hpa_v1(), v2.clone()).unwrap();
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(
        v1["spec"],
        json!({"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
               "minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 70})
    );
    assert_eq!(
        v1["status"],
        json!({"observedGeneration": 3, "currentReplicas": 4, "desiredReplicas": 5,
               "currentCPUUtilizationPercentage": 65})
    );
    assert_eq!(v1["metadata"]["annotations"]["owner"], "me");
    // The metrics v1 cannot say, in v1's own MetricSpec shape.
    assert_eq!(
        annotation(&v1, METRIC_SPECS_ANNOTATION),
        json!([
            {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}},
            {"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
                "targetAverageUtilization": 60}},
            {"type": "Pods", "pods": {"metricName": "qps", "selector": {"matchLabels": {"a": "b"}},
                "targetAverageValue": "1k"}},
            {"type": "Object", "object": {
                "target": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                "metricName": "requests", "targetValue": "10k"}},
            {"type": "External", "external": {"metricName": "queue", "targetAverageValue": "30"}},
        ])
    );
    assert_eq!(
        annotation(&v1, METRIC_STATUSES_ANNOTATION),
        json!([
            {"type": "Resource", "resource": {"name": "memory", "currentAverageValue": "90Mi"}},
            {"type": "Object", "object": {
                "target": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                "metricName": "requests", "currentValue": "9k"}},
            {"type": "External", "external": {"metricName": "queue", "currentAverageValue": "25"}},
            {"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 65,
                "currentAverageValue": "650m"}},
        ])
    );
    assert_eq!(
        annotation(&v1, CONDITIONS_ANNOTATION),
        v2["status"]["conditions"]
    );
    // The behavior as Go's encoding/json writes the internal type: Go field names.
    let behavior = annotation(&v1, BEHAVIOR_ANNOTATION);
    assert_eq!(behavior["ScaleUp"]["Policies"][0]["PeriodSeconds"], 15);
    assert_eq!(behavior["ScaleDown"]["StabilizationWindowSeconds"], 300);
    assert_eq!(behavior["ScaleDown"]["Tolerance"], "0.05");

    // Written back through v1 as read: nothing is lost.
    assert_eq!(to_storage(&hpa_v1(), v1).unwrap(), v2);
}

#[test]
fn hpa_metrics_come_back_after_the_other_metrics_as_upstream_orders_them() {
    // Upstream puts the CPU target after the annotation's metrics; order is all that moves.
    let mut v2 = rich_v2();
    let metrics = v2["spec"]["metrics"].as_array_mut().unwrap();
    let cpu = metrics.pop().unwrap();
    metrics.insert(0, cpu);
    let back = to_storage(&hpa_v1(), from_storage(&hpa_v1(), v2.clone()).unwrap()).unwrap();
    assert_eq!(back["spec"]["metrics"], rich_v2()["spec"]["metrics"]);
}

#[test]
fn hpa_behavior_annotations_are_read_whatever_the_case_of_their_fields() {
    let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "annotations": {
            BEHAVIOR_ANNOTATION: r#"{"ScaleUp":{"StabilizationWindowSeconds":0,"SelectPolicy":"Max","Policies":[{"Type":"Pods","Value":4,"PeriodSeconds":15}],"Tolerance":null},"scaleDown":null}"#}},
        "spec": {"maxReplicas": 3, "targetCPUUtilizationPercentage": 50}});
    let v2 = to_storage(&hpa_v1(), v1).unwrap();
    assert_eq!(
        v2["spec"]["behavior"],
        json!({"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
            "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]}})
    );
    // The annotations were consumed, and the map with them.
    assert!(v2["metadata"].get("annotations").is_none());
}

#[test]
fn hpa_v2_writes_drop_v1s_round_trip_annotations() {
    let mut v2 = rich_v2();
    v2["metadata"]["annotations"][METRIC_SPECS_ANNOTATION] = json!("[]");
    v2["metadata"]["annotations"][CONDITIONS_ANNOTATION] = json!("garbage");
    assert_eq!(to_storage(&hpa_v2(), v2).unwrap(), rich_v2());
}

#[test]
fn hpa_stored_in_v1s_shape_reads_right_through_both_versions() {
    // Written before conversion existed: a v1 object under the shared prefix.
    let legacy = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "resourceVersion": "7"},
        "spec": {"maxReplicas": 3, "targetCPUUtilizationPercentage": 40}});
    let v2 = from_storage(&hpa_v2(), legacy.clone()).unwrap();
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(v2["metadata"]["resourceVersion"], "7");
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        40
    );
    assert_eq!(from_storage(&hpa_v1(), legacy.clone()).unwrap(), legacy);
    let unknown = json!({"apiVersion": "autoscaling/v9", "kind": "HorizontalPodAutoscaler"});
    assert!(matches!(
        from_storage(&hpa_v1(), unknown),
        Err(Error::UnknownVersion { .. })
    ));
}

#[test]
fn bad_hpa_annotations_are_errors_not_panics() {
    for (key, text) in [
        (METRIC_SPECS_ANNOTATION, "not json"),
        (METRIC_SPECS_ANNOTATION, "{}"),
        (METRIC_STATUSES_ANNOTATION, "[1"),
        (CONDITIONS_ANNOTATION, "5"),
        (BEHAVIOR_ANNOTATION, "[]"),
    ] {
        let v1 = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "annotations": {key: text}}, "spec": {"maxReplicas": 1}});
        let e = to_storage(&hpa_v1(), v1).unwrap_err();
        assert!(e.to_string().contains(key), "{e}");
    }
    // Odd but harmless shapes convert without panicking.
    for odd in [
        json!({"metadata": {"name": "x", "annotations": {METRIC_SPECS_ANNOTATION: "[5, {\"type\": \"Pods\"}, {\"type\": \"Pods\", \"pods\": 1}]"}}}),
        json!({"metadata": 5, "spec": {"metrics": 7}, "status": []}),
    ] {
        let _ = to_storage(&hpa_v1(), odd.clone()).unwrap();
        let _ = from_storage(&hpa_v1(), odd).unwrap();
    }
    assert!(to_storage(&hpa_v1(), json!([])).is_err());
}

fn events_v1() -> ResourceInfo {
    info("events.k8s.io", "v1", "events")
}

fn core_events() -> ResourceInfo {
    info("", "v1", "events")
}

#[test]
fn events_k8s_io_events_are_stored_as_core_events() {
    let reference = json!({"apiVersion": "v1", "kind": "ConfigMap", "namespace": "default",
        "name": "cm", "uid": "u-1"});
    let related = json!({"apiVersion": "v1", "kind": "Node", "name": "n1"});
    let new = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "cm.1", "namespace": "default"},
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "series": {"count": 2, "lastObservedTime": "2024-01-01T00:01:00.000000Z"},
        "reportingController": "skiff.io/tester", "reportingInstance": "tester-1",
        "action": "Testing", "reason": "Tested", "type": "Normal",
        "regarding": reference, "related": related, "note": "it works",
        "deprecatedSource": {"component": "tester", "host": "h"},
        "deprecatedFirstTimestamp": "2024-01-01T00:00:00Z",
        "deprecatedLastTimestamp": "2024-01-01T00:01:00Z",
        "deprecatedCount": 2,
    });
    let core = to_storage(&events_v1(), new.clone()).unwrap();
    assert_eq!(
        core,
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "cm.1", "namespace": "default"},
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "series": {"count": 2, "lastObservedTime": "2024-01-01T00:01:00.000000Z"},
            "reportingComponent": "skiff.io/tester", "reportingInstance": "tester-1",
            "action": "Testing", "reason": "Tested", "type": "Normal",
            "involvedObject": reference, "related": related, "message": "it works",
            "source": {"component": "tester", "host": "h"},
            "firstTimestamp": "2024-01-01T00:00:00Z",
            "lastTimestamp": "2024-01-01T00:01:00Z",
            "count": 2,
        })
    );
    assert_eq!(from_storage(&events_v1(), core.clone()).unwrap(), new);
    assert_eq!(from_storage(&core_events(), core.clone()).unwrap(), core);
}

#[test]
fn core_events_read_through_events_k8s_io_and_back() {
    let core = json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web.1", "namespace": "default", "uid": "u-2"},
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "reason": "Scheduled", "message": "assigned", "type": "Normal",
        "source": {"component": "default-scheduler"}, "count": 1,
        "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:00:00Z",
    });
    let new = from_storage(&events_v1(), core.clone()).unwrap();
    assert_eq!(new["apiVersion"], "events.k8s.io/v1");
    assert_eq!(new["regarding"]["name"], "web");
    assert_eq!(new["note"], "assigned");
    assert_eq!(new["deprecatedSource"]["component"], "default-scheduler");
    assert_eq!(new["deprecatedCount"], 1);
    assert_eq!(new["deprecatedFirstTimestamp"], "2024-01-01T00:00:00Z");
    for gone in [
        "involvedObject",
        "message",
        "source",
        "count",
        "firstTimestamp",
    ] {
        assert!(new.get(gone).is_none(), "{gone}");
    }
    assert_eq!(to_storage(&events_v1(), new).unwrap(), core);
    // A core write is stored as it is.
    assert_eq!(to_storage(&core_events(), core.clone()).unwrap(), core);
}
