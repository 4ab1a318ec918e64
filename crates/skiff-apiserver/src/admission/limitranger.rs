//! The LimitRanger admission plugin (upstream's plugin/pkg/admission/limitranger) over the
//! namespace's LimitRanges.
//!
//! Mutating, on a new pod: each `Container` item's `default` (limits) and `defaultRequest`
//! (requests) fill in what a container (or init container) leaves out, recorded in the
//! `kubernetes.io/limit-ranger` annotation. Validating: `Container` and `Pod` items' `min`,
//! `max` and `maxLimitRequestRatio` against each container and against the whole pod (its
//! containers' sum, at least any init container's), `PersistentVolumeClaim` items' `min`
//! and `max` against a new claim's storage request; the first LimitRange a create breaks
//! refuses it with 403 and every problem it has, in upstream's words.

use serde_json::{json, Value};
use skiff_api::meta;
use skiff_api::quota::{pod_resources, resource_list, ResourceList};
use skiff_api::registry::ResourceInfo;
use skiff_api::status::ApiError;
use skiff_api::validation::quantity::Quantity;

/// Upstream's `limitRangerAnnotation`.
pub const ANNOTATION: &str = "kubernetes.io/limit-ranger";

fn items<'a>(range: &'a Value, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    range
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(move |i| i.get("type").and_then(Value::as_str) == Some(kind))
}

/// Upstream's `defaultContainerResourceRequirements`: (requests, limits) from the
/// `Container` items of one LimitRange (a later item's value wins).
fn container_defaults(range: &Value) -> (ResourceList, ResourceList) {
    let mut requests = ResourceList::new();
    let mut limits = ResourceList::new();
    for item in items(range, "Container") {
        requests.extend(resource_list(item.get("defaultRequest")));
        limits.extend(resource_list(item.get("default")));
    }
    (requests, limits)
}

/// Upstream's `mergeContainerResources`: fills what `container` lacks, and says what it
/// set (`cpu, memory request for container app`).
fn merge_container(
    container: &mut Value,
    requests: &ResourceList,
    limits: &ResourceList,
    what: &str,
    notes: &mut Vec<String>,
) {
    let name = container
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let mut set = |field: &str, defaults: &ResourceList| -> Vec<String> {
        let have = container
            .pointer(&format!("/resources/{field}"))
            .and_then(Value::as_object);
        let missing: Vec<(&String, &Quantity)> = defaults
            .iter()
            .filter(|(k, _)| !have.is_some_and(|h| h.contains_key(*k)))
            .collect();
        if missing.is_empty() {
            return Vec::new();
        }
        if !container.get("resources").is_some_and(Value::is_object) {
            container["resources"] = json!({});
        }
        if !container["resources"]
            .get(field)
            .is_some_and(Value::is_object)
        {
            container["resources"][field] = json!({});
        }
        for (k, q) in &missing {
            container["resources"][field][k.as_str()] = json!(q.canonical());
        }
        missing.into_iter().map(|(k, _)| k.clone()).collect()
    };
    let limits_set = set("limits", limits);
    let requests_set = set("requests", requests);
    // Sorted (the lists are maps' keys, already in order).
    if !requests_set.is_empty() {
        notes.push(format!(
            "{} request for {what} {name}",
            requests_set.join(", ")
        ));
    }
    if !limits_set.is_empty() {
        notes.push(format!("{} limit for {what} {name}", limits_set.join(", ")));
    }
}

/// Upstream's `PodMutateLimitFunc` for every LimitRange in turn: whether anything changed.
pub fn default_pod(pod: &mut Value, ranges: &[Value]) -> bool {
    let mut changed = false;
    for range in ranges {
        let (requests, limits) = container_defaults(range);
        if requests.is_empty() && limits.is_empty() {
            continue;
        }
        let mut notes = Vec::new();
        for (field, what) in [
            ("containers", "container"),
            ("initContainers", "init container"),
        ] {
            if let Some(list) = pod
                .pointer_mut(&format!("/spec/{field}"))
                .and_then(Value::as_array_mut)
            {
                for c in list {
                    merge_container(c, &requests, &limits, what, &mut notes);
                }
            }
        }
        if !notes.is_empty() {
            changed = true;
            if let Ok(m) = meta::metadata_mut(pod) {
                let annotations = m.entry("annotations").or_insert_with(|| json!({}));
                if !annotations.is_object() {
                    *annotations = json!({});
                }
                annotations[ANNOTATION] =
                    json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
            }
        }
    }
    changed
}

/// Upstream's `requestLimitEnforcedValues`, at milli precision.
fn milli(q: Option<&Quantity>) -> i128 {
    q.map_or(0, Quantity::milli_value)
}

fn canon(q: Option<&Quantity>) -> String {
    q.map_or_else(|| "0".into(), Quantity::canonical)
}

/// Upstream's `minConstraint`.
fn min_constraint(
    kind: &str,
    resource: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let req = requests.get(resource);
    let lim = limits.get(resource);
    let e = enforced.canonical();
    if req.is_none() {
        return Some(format!(
            "minimum {resource} usage per {kind} is {e}.  No request is specified"
        ));
    }
    if milli(req) < enforced.milli_value() {
        return Some(format!(
            "minimum {resource} usage per {kind} is {e}, but request is {}",
            canon(req)
        ));
    }
    if lim.is_some() && milli(lim) < enforced.milli_value() {
        return Some(format!(
            "minimum {resource} usage per {kind} is {e}, but limit is {}",
            canon(lim)
        ));
    }
    None
}

/// Upstream's `maxConstraint`.
fn max_constraint(
    kind: &str,
    resource: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let req = requests.get(resource);
    let lim = limits.get(resource);
    let e = enforced.canonical();
    if lim.is_none() {
        return Some(format!(
            "maximum {resource} usage per {kind} is {e}.  No limit is specified"
        ));
    }
    if milli(lim) > enforced.milli_value() {
        return Some(format!(
            "maximum {resource} usage per {kind} is {e}, but limit is {}",
            canon(lim)
        ));
    }
    if req.is_some() && milli(req) > enforced.milli_value() {
        return Some(format!(
            "maximum {resource} usage per {kind} is {e}, but request is {}",
            canon(req)
        ));
    }
    None
}

/// Upstream's `maxRequestConstraint` (claims have no limits).
fn max_request_constraint(
    kind: &str,
    resource: &str,
    enforced: &Quantity,
    requests: &ResourceList,
) -> Option<String> {
    let req = requests.get(resource);
    let e = enforced.canonical();
    if req.is_none() {
        return Some(format!(
            "maximum {resource} usage per {kind} is {e}.  No request is specified"
        ));
    }
    if milli(req) > enforced.milli_value() {
        return Some(format!(
            "maximum {resource} usage per {kind} is {e}, but request is {}",
            canon(req)
        ));
    }
    None
}

/// Upstream's `limitRequestRatioConstraint`.
fn ratio_constraint(
    kind: &str,
    resource: &str,
    enforced: &Quantity,
    requests: &ResourceList,
    limits: &ResourceList,
) -> Option<String> {
    let req = milli(requests.get(resource));
    let lim = milli(limits.get(resource));
    let e = enforced.canonical();
    if req == 0 {
        return Some(format!("{resource} max limit to request ratio per {kind} is {e}, but no request is specified or request is 0"));
    }
    if lim == 0 {
        return Some(format!("{resource} max limit to request ratio per {kind} is {e}, but no limit is specified or limit is 0"));
    }
    let ratio = lim as f64 / req as f64;
    if ratio * 1000.0 > enforced.milli_value() as f64 {
        return Some(format!("{resource} max limit to request ratio per {kind} is {e}, but provided ratio is {ratio:.6}"));
    }
    None
}

/// min, max and maxLimitRequestRatio of one item against one set of requests and limits.
fn check_item(
    item: &Value,
    kind: &str,
    requests: &ResourceList,
    limits: &ResourceList,
    errs: &mut Vec<String>,
) {
    for (r, q) in resource_list(item.get("min")) {
        errs.extend(min_constraint(kind, &r, &q, requests, limits));
    }
    for (r, q) in resource_list(item.get("max")) {
        errs.extend(max_constraint(kind, &r, &q, requests, limits));
    }
    for (r, q) in resource_list(item.get("maxLimitRequestRatio")) {
        errs.extend(ratio_constraint(kind, &r, &q, requests, limits));
    }
}

/// Upstream's `PodValidateLimitFunc` for one LimitRange: every problem found.
pub fn pod_problems(range: &Value, pod: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    for item in range
        .pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match item.get("type").and_then(Value::as_str) {
            Some("Container") => {
                for field in ["containers", "initContainers"] {
                    for c in pod
                        .pointer(&format!("/spec/{field}"))
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        let requests = resource_list(c.pointer("/resources/requests"));
                        let limits = resource_list(c.pointer("/resources/limits"));
                        check_item(item, "Container", &requests, &limits, &mut errs);
                    }
                }
            }
            Some("Pod") => {
                let requests = pod_resources(pod, false, false);
                let limits = pod_resources(pod, true, false);
                check_item(item, "Pod", &requests, &limits, &mut errs);
            }
            _ => {}
        }
    }
    errs
}

/// Upstream's `PersistentVolumeClaimValidateLimitFunc` for one LimitRange.
pub fn claim_problems(range: &Value, pvc: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let requests = resource_list(pvc.pointer("/spec/resources/requests"));
    for item in items(range, "PersistentVolumeClaim") {
        for (r, q) in resource_list(item.get("min")) {
            errs.extend(min_constraint(
                "PersistentVolumeClaim",
                &r,
                &q,
                &requests,
                &ResourceList::new(),
            ));
        }
        for (r, q) in resource_list(item.get("max")) {
            errs.extend(max_request_constraint(
                "PersistentVolumeClaim",
                &r,
                &q,
                &requests,
            ));
        }
    }
    errs
}

/// Upstream's `utilerrors.NewAggregate(...).Error()`: one message as it is, several
/// (duplicates dropped) as `[a, b]`.
pub fn aggregate(errs: &[String]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for e in errs {
        if !seen.contains(&e.as_str()) {
            seen.push(e);
        }
    }
    match seen.as_slice() {
        [one] => (*one).to_owned(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// Refuses a pod or claim that breaks one of `ranges` (403 with that range's problems).
pub fn validate(info: &ResourceInfo, obj: &Value, ranges: &[Value]) -> Result<(), ApiError> {
    for range in ranges {
        let errs = if info.plural == "pods" {
            pod_problems(range, obj)
        } else {
            claim_problems(range, obj)
        };
        if !errs.is_empty() {
            return Err(ApiError::forbidden(
                info.group,
                info.plural,
                meta::name(obj),
                &aggregate(&errs),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(limits: Value) -> Value {
        json!({"metadata": {"name": "lr"}, "spec": {"limits": limits}})
    }

    #[test]
    fn container_defaults_fill_what_is_missing_and_are_annotated() {
        let lr = range(json!([{"type": "Container",
            "default": {"cpu": "500m", "memory": "512Mi"},
            "defaultRequest": {"cpu": "100m", "memory": "256Mi"}}]));
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {
            "containers": [
                {"name": "app"},
                {"name": "side", "resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}}],
            "initContainers": [{"name": "init"}]}});
        assert!(default_pod(&mut pod, std::slice::from_ref(&lr)));
        assert_eq!(
            pod["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "100m", "memory": "256Mi"}})
        );
        assert_eq!(
            pod["spec"]["containers"][1]["resources"],
            json!({"limits": {"cpu": "1", "memory": "512Mi"}, "requests": {"cpu": "1", "memory": "256Mi"}})
        );
        assert_eq!(pod["metadata"]["annotations"][ANNOTATION],
            "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for container app; memory request for container side; memory limit for container side; cpu, memory request for init container init; cpu, memory limit for init container init");
        // Nothing left to fill: unchanged.
        let before = pod.clone();
        assert!(!default_pod(&mut pod, &[lr]));
        assert_eq!(pod, before);
    }

    #[test]
    fn min_max_and_ratio_are_checked_per_container_and_per_pod() {
        let lr = range(json!([
            {"type": "Container", "min": {"cpu": "100m"}, "max": {"cpu": "1"}, "maxLimitRequestRatio": {"cpu": "2"}},
        ]));
        let pod = |req: &str, lim: &str| {
            json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": req}, "limits": {"cpu": lim}}}]}})
        };
        assert!(pod_problems(&lr, &pod("500m", "1")).is_empty());
        assert_eq!(
            pod_problems(&lr, &pod("50m", "100m")),
            vec!["minimum cpu usage per Container is 100m, but request is 50m".to_string()]
        );
        assert_eq!(
            pod_problems(&lr, &pod("500m", "1500m")),
            vec![
                "maximum cpu usage per Container is 1, but limit is 1500m".to_string(),
                "cpu max limit to request ratio per Container is 2, but provided ratio is 3.000000"
                    .to_string()
            ]
        );
        let none = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(aggregate(&pod_problems(&lr, &none)),
            "[minimum cpu usage per Container is 100m.  No request is specified, maximum cpu usage per Container is 1.  No limit is specified, cpu max limit to request ratio per Container is 2, but no request is specified or request is 0]");

        let per_pod = range(json!([{"type": "Pod", "max": {"memory": "1Gi"}}]));
        let two = json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"memory": "512Mi"}, "limits": {"memory": "768Mi"}}},
            {"name": "b", "resources": {"requests": {"memory": "256Mi"}, "limits": {"memory": "512Mi"}}}]}});
        assert_eq!(
            pod_problems(&per_pod, &two),
            vec!["maximum memory usage per Pod is 1Gi, but limit is 1280Mi".to_string()]
        );
    }

    #[test]
    fn claims_are_held_to_min_and_max_storage() {
        let lr = range(
            json!([{"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]),
        );
        let pvc = |s: &str| json!({"spec": {"resources": {"requests": {"storage": s}}}});
        assert!(claim_problems(&lr, &pvc("5Gi")).is_empty());
        assert_eq!(
            claim_problems(&lr, &pvc("20Gi")),
            vec![
                "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"
                    .to_string()
            ]
        );
        assert_eq!(
            claim_problems(&lr, &pvc("500Mi")),
            vec![
                "minimum storage usage per PersistentVolumeClaim is 1Gi, but request is 500Mi"
                    .to_string()
            ]
        );
    }
}
