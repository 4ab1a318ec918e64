//! Object metadata on untyped JSON objects: reading names and versions, and the bookkeeping
//! upstream's `rest.BeforeCreate` / `BeforeUpdate` do (uid, creation timestamp, generation,
//! generateName, namespace checks, status/spec separation). Pure: the caller supplies the
//! clock and the uid.

use serde_json::{json, Map, Value};

use crate::registry::ResourceInfo;
use crate::status::ApiError;

pub fn str_at<'a>(obj: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = obj;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str()
}

pub fn name(obj: &Value) -> &str {
    str_at(obj, &["metadata", "name"]).unwrap_or("")
}

pub fn namespace(obj: &Value) -> &str {
    str_at(obj, &["metadata", "namespace"]).unwrap_or("")
}

pub fn uid(obj: &Value) -> &str {
    str_at(obj, &["metadata", "uid"]).unwrap_or("")
}

pub fn resource_version(obj: &Value) -> &str {
    str_at(obj, &["metadata", "resourceVersion"]).unwrap_or("")
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// The object's metadata map, created if missing. Fails if the object is not a JSON object.
pub fn metadata_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    let meta = map.entry("metadata").or_insert_with(|| json!({}));
    if meta.is_null() {
        *meta = json!({});
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// Sets `metadata.resourceVersion` (objects are stored without it; it is the revision).
pub fn set_resource_version(obj: &mut Value, rv: i64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

/// RFC 3339 at second precision, as Kubernetes writes `metav1.Time`.
pub fn timestamp(now: chrono::DateTime<chrono::Utc>) -> String {
    now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Kinds whose `metadata.generation` upstream sets and increments on spec changes.
fn tracks_generation(info: &ResourceInfo) -> bool {
    !matches!(
        (info.group, info.plural),
        ("", "configmaps")
            | ("", "secrets")
            | ("", "endpoints")
            | ("", "events")
            | ("", "serviceaccounts")
            | ("", "namespaces")
            | ("", "nodes")
            | ("", "componentstatuses")
            | ("events.k8s.io", "events")
            | ("coordination.k8s.io", "leases")
            | ("discovery.k8s.io", "endpointslices")
    )
}

/// The annotation in which apps/v1 carries a DaemonSet's template generation (upstream's
/// `appsv1.DeprecatedTemplateGeneration`: the internal `spec.templateGeneration`, which the
/// DaemonSet controller copies into its pods' `pod-template-generation` label).
pub const DAEMONSET_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

fn is_daemonset(info: &ResourceInfo) -> bool {
    info.group == "apps" && info.plural == "daemonsets"
}

/// The template generation `obj` carries in [`DAEMONSET_TEMPLATE_GENERATION`], `None`
/// without one. A value that is no integer is refused, as upstream's conversion into the
/// internal version refuses it (`strconv.ParseInt`).
fn template_generation(obj: &Value) -> Result<Option<i64>, ApiError> {
    let Some(v) = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DAEMONSET_TEMPLATE_GENERATION))
    else {
        return Ok(None);
    };
    let text = v.as_str().unwrap_or_default();
    text.parse::<i64>().map(Some).map_err(|e| {
        let why = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "value out of range"
            }
            _ => "invalid syntax",
        };
        ApiError::bad_request(format!("strconv.ParseInt: parsing {text:?}: {why}"))
    })
}

fn set_template_generation(obj: &mut Value, generation: i64) -> Result<(), ApiError> {
    let meta = metadata_mut(obj)?;
    let annotations = meta.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    if let Some(a) = annotations.as_object_mut() {
        a.insert(
            DAEMONSET_TEMPLATE_GENERATION.into(),
            Value::String(generation.to_string()),
        );
    }
    Ok(())
}

/// Checks `apiVersion` and `kind` against the URL's kind (filling them in when absent).
pub fn check_type(info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    let api_version = info.api_version();
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::String(api_version.clone()));
        }
        Some(v) if v == api_version => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({api_version})"
            )))
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), Value::String(info.kind.to_owned()));
        }
        Some(k) if k == info.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.kind
            )))
        }
    }
    Ok(())
}

/// Reconciles the body's namespace with the URL's: filled in when empty, 400 when different,
/// removed for cluster-scoped kinds.
pub fn check_namespace(
    info: &ResourceInfo,
    obj: &mut Value,
    url_ns: Option<&str>,
) -> Result<(), ApiError> {
    let meta = metadata_mut(obj)?;
    if !info.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    let url_ns = url_ns.unwrap_or("");
    match meta.get("namespace").and_then(Value::as_str) {
        None | Some("") => {
            meta.insert("namespace".into(), Value::String(url_ns.to_owned()));
        }
        Some(ns) if ns == url_ns => {}
        Some(_) => return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
    }
    Ok(())
}

/// Checks a name the way upstream's `path.IsValidPathSegmentName` does (every kind's name
/// must at least be a usable URL segment); kind-specific rules are validation's.
pub fn path_segment_problems(name: &str) -> Option<String> {
    if name == "." || name == ".." {
        return Some(format!("may not be '{name}'"));
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            return Some(format!("may not contain '{bad}'"));
        }
    }
    None
}

/// Prepares a new object for storage: uid, creationTimestamp, generation, cleared fields
/// the server owns. `suffix` supplies the random generateName suffix.
pub fn prepare_create(
    info: &ResourceInfo,
    obj: &mut Value,
    now: chrono::DateTime<chrono::Utc>,
    uid: &str,
    suffix: &str,
) -> Result<(), ApiError> {
    let tracks = tracks_generation(info);
    if is_daemonset(info) {
        // Upstream's daemonSetStrategy.PrepareForCreate: the template generation a client
        // gives is kept, but is at least 1.
        let given = template_generation(obj)?.unwrap_or(0);
        set_template_generation(obj, given.max(1))?;
    }
    let meta = metadata_mut(obj)?;
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if name.is_empty() {
        let generate = meta
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("");
        if generate.is_empty() {
            return Err(ApiError::invalid(
                info.group,
                info.kind,
                "",
                vec![crate::status::Cause {
                    reason: "FieldValueRequired".into(),
                    message: "name or generateName is required".into(),
                    field: "metadata.name".into(),
                }],
            ));
        }
        // Upstream truncates the base so the name stays within 63 characters.
        let base: String = generate.chars().take(58).collect();
        meta.insert("name".into(), Value::String(format!("{base}{suffix}")));
    }
    if meta
        .get("resourceVersion")
        .and_then(Value::as_str)
        .is_some_and(|rv| !rv.is_empty())
    {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    meta.remove("resourceVersion");
    meta.insert("uid".into(), Value::String(uid.to_owned()));
    meta.insert("creationTimestamp".into(), Value::String(timestamp(now)));
    meta.remove("deletionTimestamp");
    meta.remove("deletionGracePeriodSeconds");
    meta.remove("selfLink");
    if tracks {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    // A create sets no status (upstream strategies reset it to the zero value), except for a
    // Node: its kubelet registers it with its status (addresses, capacity, conditions), and
    // upstream's node strategy keeps that.
    let keeps_status = info.group.is_empty() && info.plural == "nodes";
    if info.has(crate::registry::Subresource::Status) && !keeps_status {
        if let Some(map) = obj.as_object_mut() {
            map.remove("status");
        }
    }
    // What Go writes for the zero values (`"status": {}`), also for the objects the server
    // creates itself without defaulting them (the `kubernetes` Service).
    crate::defaults::fill_go_fields(info.group, info.version, info.kind, obj);
    Ok(())
}

/// Prepares an update of the main resource: keeps what the server owns from `old`, ignores
/// status changes for kinds with a status subresource, and bumps generation when the spec
/// (everything but metadata and status) changed.
pub fn prepare_update(info: &ResourceInfo, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    let tracks = tracks_generation(info);
    if info.has(crate::registry::Subresource::Status) {
        if let Some(map) = new.as_object_mut() {
            match old.get("status") {
                Some(status) => map.insert("status".into(), status.clone()),
                None => map.remove("status"),
            };
        }
        // Where a version keeps part of the status in annotations, those are status too.
        copy_annotations(crate::conversion::status_annotations(info), old, new)?;
    }
    check_uid_unchanged(info, old, new)?;
    keep_server_fields(old, new)?;
    let spec_changed = !same_except(old, new, &["metadata", "status"]);
    if is_daemonset(info) {
        // Upstream's daemonSetStrategy.PrepareForUpdate: the client's template generation is
        // ignored (though it must parse); the stored one goes up by one when the pod template
        // changed. An object stored without one reads as 0, as upstream's conversion reads it.
        template_generation(new)?;
        let stored = template_generation(old).ok().flatten().unwrap_or(0);
        let template_changed = old.pointer("/spec/template") != new.pointer("/spec/template");
        set_template_generation(new, stored + i64::from(template_changed))?;
    }
    if tracks {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let next = if spec_changed {
            generation + 1
        } else {
            generation
        };
        metadata_mut(new)?.insert("generation".into(), json!(next));
    }
    Ok(())
}

/// Sets annotations `keys` of `to` to those of `from` (removing the ones `from` lacks).
fn copy_annotations(keys: &[&str], from: &Value, to: &mut Value) -> Result<(), ApiError> {
    for key in keys {
        let kept = from
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(*key));
        let meta = metadata_mut(to)?;
        match (
            kept,
            meta.get_mut("annotations").and_then(Value::as_object_mut),
        ) {
            (Some(v), Some(annotations)) => {
                annotations.insert((*key).into(), v.clone());
            }
            (Some(v), None) => {
                meta.insert("annotations".into(), json!({ *key: v }));
            }
            (None, Some(annotations)) => {
                annotations.remove(*key);
            }
            (None, None) => {}
        }
    }
    Ok(())
}

/// Prepares a status update: only `.status` (and metadata labels/annotations... no: upstream
/// status strategies keep everything but status from the old object). The annotations in
/// which a version keeps part of its status (an autoscaling/v1 HPA's) are the new object's.
pub fn prepare_status_update(
    info: &ResourceInfo,
    old: &Value,
    new: &mut Value,
) -> Result<(), ApiError> {
    let status = new.get("status").cloned();
    let mut merged = old.clone();
    if let Some(map) = merged.as_object_mut() {
        match status {
            Some(s) => map.insert("status".into(), s),
            None => map.remove("status"),
        };
    }
    copy_annotations(
        crate::conversion::status_annotations(info),
        new,
        &mut merged,
    )?;
    *new = merged;
    Ok(())
}

/// A `namespaces/finalize` write: the current object with only `spec.finalizers` taken from
/// `new` (upstream's namespace finalize strategy).
pub fn prepare_finalize(_: &ResourceInfo, old: &Value, new: &mut Value) -> Result<(), ApiError> {
    let finalizers = new.pointer("/spec/finalizers").cloned();
    let mut merged = old.clone();
    if let Some(map) = merged.as_object_mut() {
        let spec = map
            .entry("spec")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(spec) = spec.as_object_mut() {
            match finalizers {
                Some(f) => spec.insert("finalizers".into(), f),
                None => spec.remove("finalizers"),
            };
        }
    }
    *new = merged;
    Ok(())
}

/// A write that names a uid other than the object's is refused, as upstream's
/// `ValidateObjectMetaUpdate` refuses it (so a patch carrying the uid it read is a
/// precondition: controllers adopt and release with one).
fn check_uid_unchanged(info: &ResourceInfo, old: &Value, new: &Value) -> Result<(), ApiError> {
    let given = new
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let stored = old
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    if given.is_empty() || given == stored {
        return Ok(());
    }
    Err(ApiError::invalid(
        info.group,
        info.kind,
        name(old),
        vec![crate::status::Cause {
            reason: "FieldValueInvalid".into(),
            message: format!(
                "Invalid value: {}: field is immutable",
                Value::String(given.to_owned())
            ),
            field: "metadata.uid".into(),
        }],
    ))
}

/// Copies the fields clients may not change from `old` into `new`.
fn keep_server_fields(old: &Value, new: &mut Value) -> Result<(), ApiError> {
    let meta = metadata_mut(new)?;
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old.pointer(&format!("/metadata/{field}")) {
            Some(v) => meta.insert(field.into(), v.clone()),
            None => meta.remove(field),
        };
    }
    meta.remove("selfLink");
    Ok(())
}

fn same_except(a: &Value, b: &Value, skip: &[&str]) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| !skip.contains(&k.as_str()))
        .all(|k| a.get(k) == b.get(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_update_naming_another_uid_is_refused() {
        let info = crate::registry::Registry::builtin()
            .get("", "v1", "configmaps")
            .cloned()
            .expect("configmaps are served");
        let old = serde_json::json!({"metadata": {"name": "c", "uid": "u1", "creationTimestamp": "2026-01-01T00:00:00Z"}});
        let mut same = serde_json::json!({"metadata": {"name": "c", "uid": "u1"}});
        assert!(prepare_update(&info, &old, &mut same).is_ok());
        let mut none = serde_json::json!({"metadata": {"name": "c"}});
        assert!(prepare_update(&info, &old, &mut none).is_ok());
        assert_eq!(none["metadata"]["uid"], "u1");
        let mut other = serde_json::json!({"metadata": {"name": "c", "uid": "u2"}});
        let e = prepare_update(&info, &old, &mut other).expect_err("another uid");
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        assert_eq!(
            e.message,
            r#"ConfigMap "c" is invalid: metadata.uid: Invalid value: "u2": field is immutable"#
        );
    }

    #[test]
    fn timestamps_are_rfc3339_seconds_in_utc() {
        use chrono::TimeZone;
        let t = chrono::Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap()
            + chrono::Duration::milliseconds(678);
        assert_eq!(timestamp(t), "2026-01-02T03:04:05Z");
    }
    use crate::registry::Registry;

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    #[test]
    fn create_fills_server_fields() {
        let reg = Registry::builtin();
        let deploy = reg.get("apps", "v1", "deployments").unwrap();
        let mut obj =
            json!({"metadata": {"generateName": "web-"}, "spec": {}, "status": {"replicas": 3}});
        check_type(deploy, &mut obj).unwrap();
        check_namespace(deploy, &mut obj, Some("default")).unwrap();
        prepare_create(deploy, &mut obj, now(), "u-1", "abcde").unwrap();
        assert_eq!(obj["apiVersion"], "apps/v1");
        assert_eq!(obj["kind"], "Deployment");
        assert_eq!(obj["metadata"]["name"], "web-abcde");
        assert_eq!(obj["metadata"]["namespace"], "default");
        assert_eq!(obj["metadata"]["uid"], "u-1");
        assert_eq!(obj["metadata"]["generation"], 1);
        assert_eq!(obj["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
        assert_eq!(obj["status"], json!({}), "reset to the zero value");
    }

    #[test]
    fn a_node_keeps_the_status_it_registers_with() {
        let reg = Registry::builtin();
        let node = reg.get("", "v1", "nodes").unwrap();
        let status = json!({"addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]});
        let mut obj = json!({"metadata": {"name": "n1"}, "status": status});
        check_type(node, &mut obj).unwrap();
        prepare_create(node, &mut obj, now(), "u-1", "abcde").unwrap();
        assert_eq!(obj["status"]["addresses"], status["addresses"]);
        assert_eq!(
            obj["status"]["daemonEndpoints"],
            json!({"kubeletEndpoint": {"Port": 0}})
        );
        let pod = reg.get("", "v1", "pods").unwrap();
        let mut obj = json!({"metadata": {"name": "p"}, "status": {"phase": "Running"}});
        check_type(pod, &mut obj).unwrap();
        prepare_create(pod, &mut obj, now(), "u-1", "abcde").unwrap();
        assert_eq!(obj["status"], json!({}), "a pod's status is the server's");
    }

    #[test]
    fn updates_keep_the_status_an_hpa_v1_keeps_in_annotations() {
        let reg = Registry::builtin();
        let v1 = reg
            .get("autoscaling", "v1", "horizontalpodautoscalers")
            .unwrap();
        let conditions = crate::conversion::CONDITIONS_ANNOTATION;
        let current = crate::conversion::METRIC_STATUSES_ANNOTATION;
        let old = json!({"metadata": {"name": "h", "annotations": {conditions: "[]", "a": "1"}},
            "spec": {"maxReplicas": 1}, "status": {"currentReplicas": 1}});
        // A client that dropped the annotations (or invented one) does not change the status.
        let mut new = json!({"metadata": {"name": "h", "annotations": {current: "[]"}},
            "spec": {"maxReplicas": 2}});
        prepare_update(v1, &old, &mut new).unwrap();
        assert_eq!(new["metadata"]["annotations"], json!({conditions: "[]"}));
        assert_eq!(new["status"], old["status"]);
        let mut bare = json!({"metadata": {"name": "h"}, "spec": {"maxReplicas": 2}});
        prepare_update(v1, &old, &mut bare).unwrap();
        assert_eq!(bare["metadata"]["annotations"], json!({conditions: "[]"}));
        // A status update takes them from the new object.
        let mut status = json!({"metadata": {"name": "h", "annotations": {current: "[1]"}},
            "status": {"currentReplicas": 2}});
        prepare_status_update(v1, &old, &mut status).unwrap();
        assert_eq!(
            status["metadata"]["annotations"],
            json!({current: "[1]", "a": "1"})
        );
        assert_eq!(status["spec"], old["spec"]);
        // Other kinds' annotations are the client's.
        let cm = reg.get("", "v1", "configmaps").unwrap();
        let mut other = json!({"metadata": {"name": "c", "annotations": {current: "x"}}});
        prepare_update(cm, &json!({"metadata": {"name": "c"}}), &mut other).unwrap();
        assert_eq!(other["metadata"]["annotations"][current], "x");
    }

    #[test]
    fn create_refuses_what_upstream_refuses() {
        let reg = Registry::builtin();
        let cm = reg.get("", "v1", "configmaps").unwrap();
        let mut obj = json!({"apiVersion": "apps/v1", "kind": "ConfigMap"});
        assert_eq!(check_type(cm, &mut obj).unwrap_err().code, 400);
        let mut obj = json!({"metadata": {"namespace": "other"}});
        assert_eq!(
            check_namespace(cm, &mut obj, Some("default"))
                .unwrap_err()
                .code,
            400
        );
        let mut obj = json!({"metadata": {}});
        assert_eq!(
            prepare_create(cm, &mut obj, now(), "u", "x")
                .unwrap_err()
                .code,
            422
        );
        let mut obj = json!({"metadata": {"name": "a", "resourceVersion": "5"}});
        assert_eq!(
            prepare_create(cm, &mut obj, now(), "u", "x")
                .unwrap_err()
                .code,
            400
        );
        assert!(path_segment_problems("a/b").is_some() && path_segment_problems("..").is_some());
    }

    #[test]
    fn a_daemonset_carries_its_template_generation() {
        let reg = Registry::builtin();
        let ds = reg.get("apps", "v1", "daemonsets").unwrap();
        let tg =
            |obj: &Value| obj["metadata"]["annotations"][DAEMONSET_TEMPLATE_GENERATION].clone();
        let template = json!({"metadata": {"labels": {"app": "d"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        // Created: 1, or what the client gave when that is at least 1.
        let mut obj = json!({"metadata": {"name": "d"}, "spec": {"template": template}});
        prepare_create(ds, &mut obj, now(), "u", "x").unwrap();
        assert_eq!(tg(&obj), "1");
        assert_eq!(obj["metadata"]["generation"], 1);
        for (given, want) in [("0", "1"), ("-3", "1"), ("7", "7")] {
            let mut obj = json!({"metadata": {"name": "d", "annotations": {
                DAEMONSET_TEMPLATE_GENERATION: given, "other": "kept"}}});
            prepare_create(ds, &mut obj, now(), "u", "x").unwrap();
            assert_eq!(tg(&obj), want, "{given}");
            assert_eq!(obj["metadata"]["annotations"]["other"], "kept");
        }
        let mut bad = json!({"metadata": {"name": "d", "annotations": {
            DAEMONSET_TEMPLATE_GENERATION: "one"}}});
        let e = prepare_create(ds, &mut bad, now(), "u", "x").unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            r#"strconv.ParseInt: parsing "one": invalid syntax"#
        );

        // Updated: the stored value stands unless the template changed, whatever the client
        // sends; a spec change elsewhere bumps only metadata.generation.
        let old = obj.clone();
        let mut same = old.clone();
        same["metadata"]["annotations"][DAEMONSET_TEMPLATE_GENERATION] = json!("9");
        prepare_update(ds, &old, &mut same).unwrap();
        assert_eq!(
            (tg(&same), same["metadata"]["generation"].clone()),
            (json!("1"), json!(1))
        );
        let mut other_spec = old.clone();
        other_spec["spec"]["minReadySeconds"] = json!(5);
        prepare_update(ds, &old, &mut other_spec).unwrap();
        assert_eq!(
            (
                tg(&other_spec),
                other_spec["metadata"]["generation"].clone()
            ),
            (json!("1"), json!(2))
        );
        let mut changed = old.clone();
        changed["metadata"]["annotations"] = json!({});
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx");
        prepare_update(ds, &old, &mut changed).unwrap();
        assert_eq!(
            (tg(&changed), changed["metadata"]["generation"].clone()),
            (json!("2"), json!(2))
        );
        let mut bad = json!({"metadata": {"name": "d", "annotations": {
            DAEMONSET_TEMPLATE_GENERATION: "x"}}, "spec": {"template": template}});
        assert_eq!(prepare_update(ds, &old, &mut bad).unwrap_err().code, 400);
        // One stored without the annotation reads as generation 0.
        let legacy =
            json!({"metadata": {"name": "d", "generation": 1}, "spec": {"template": template}});
        let mut kept = legacy.clone();
        prepare_update(ds, &legacy, &mut kept).unwrap();
        assert_eq!(tg(&kept), "0");

        // A status update changes neither.
        let mut status = json!({"metadata": {"name": "d", "annotations": {
            DAEMONSET_TEMPLATE_GENERATION: "5"}}, "spec": {"template": {}}, "status": {"numberReady": 1}});
        prepare_status_update(ds, &changed, &mut status).unwrap();
        assert_eq!(tg(&status), "2");
        assert_eq!(status["spec"], changed["spec"]);

        // Other kinds are left alone.
        let deploy = reg.get("apps", "v1", "deployments").unwrap();
        let mut obj = json!({"metadata": {"name": "d"}});
        prepare_create(deploy, &mut obj, now(), "u", "x").unwrap();
        assert!(obj["metadata"].get("annotations").is_none());
    }

    #[test]
    fn update_bumps_generation_on_spec_changes_only() {
        let reg = Registry::builtin();
        let deploy = reg.get("apps", "v1", "deployments").unwrap();
        let old = json!({"metadata": {"name": "d", "uid": "u", "generation": 2, "creationTimestamp": "t"},
                         "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let mut new = json!({"metadata": {"name": "d", "labels": {"a": "b"}}, "spec": {"replicas": 1}, "status": {"replicas": 9}});
        prepare_update(deploy, &old, &mut new).unwrap();
        assert_eq!(
            new["metadata"]["generation"], 2,
            "metadata change keeps generation"
        );
        assert_eq!(new["status"]["replicas"], 1, "main resource ignores status");
        assert_eq!(new["metadata"]["uid"], "u");
        let mut new = json!({"metadata": {"name": "d"}, "spec": {"replicas": 5}});
        prepare_update(deploy, &old, &mut new).unwrap();
        assert_eq!(new["metadata"]["generation"], 3);
        let mut status =
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 99}, "status": {"replicas": 4}});
        prepare_status_update(deploy, &old, &mut status).unwrap();
        assert_eq!(status["spec"]["replicas"], 1, "status update ignores spec");
        assert_eq!(status["status"]["replicas"], 4);
    }
}
