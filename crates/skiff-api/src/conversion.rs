//! Conversion between the versions a kind is served in and the one version its objects are
//! stored in (upstream's storage version, with the conversions of
//! `pkg/apis/*/v*/conversion.go`). Two kinds are served in two shapes over one storage:
//!
//! - HorizontalPodAutoscaler: autoscaling/v1 and autoscaling/v2, stored as autoscaling/v2
//!   (`pkg/apis/autoscaling/v1/conversion.go`). v1's `targetCPUUtilizationPercentage` is a
//!   v2 `Resource` metric for cpu with a `Utilization` target and
//!   `status.currentCPUUtilizationPercentage` its current value; what v1 cannot say (the
//!   other metrics, all current metrics, the conditions, the behavior) travels in the
//!   `autoscaling.alpha.kubernetes.io/*` annotations, in upstream's encoding (the metrics in
//!   v1's own `MetricSpec` shape, the behavior as Go's `encoding/json` writes the internal
//!   type), so a v2 object read and written back through v1 loses nothing.
//! - Event: core/v1 and events.k8s.io/v1, stored as core/v1 (`pkg/apis/events/v1/conversion.go`:
//!   `note` is `message`, `regarding` is `involvedObject`, `reportingController` is
//!   `reportingComponent`, `deprecatedSource`, `deprecatedFirstTimestamp`,
//!   `deprecatedLastTimestamp` and `deprecatedCount` are `source`, `firstTimestamp`,
//!   `lastTimestamp` and `count`; the rest has the same name in both).
//!
//! Every other kind is stored as it is served: both directions are then the identity, decided
//! from the [`ResourceInfo`] alone, before the object is touched (every read goes through
//! here). Reading honours the stored object's `apiVersion`, as upstream's storage codec does,
//! so objects written in another version before conversion existed still read right.
//!
//! Pure: JSON in, JSON out. Defaulting and validation are not done here; the API server
//! applies them to the request's version before converting.

use serde_json::{json, Map, Value};

use crate::registry::ResourceInfo;

/// `autoscaling.MetricSpecsAnnotation`: v2 metrics other than a CPU utilization target.
pub const METRIC_SPECS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
/// `autoscaling.MetricStatusesAnnotation`: every current metric.
pub const METRIC_STATUSES_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
/// `autoscaling.HorizontalPodAutoscalerConditionsAnnotation`: the status conditions.
pub const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
/// `autoscaling.BehaviorSpecsAnnotation`: the scaling behavior.
pub const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";
/// The tolerance annotations of v2beta2 (which has no `tolerance`); dropped with the rest
/// (upstream's `DropRoundTripHorizontalPodAutoscalerAnnotations`).
const TOLERANCE_ANNOTATIONS: [&str; 2] = [
    "autoscaling.alpha.kubernetes.io/scale-down-tolerance",
    "autoscaling.alpha.kubernetes.io/scale-up-tolerance",
];
/// `autoscaling.DefaultCPUUtilization`: the CPU target of a v1 object that names none.
pub const DEFAULT_CPU_UTILIZATION: i64 = 80;

/// What can go wrong converting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A round-trip annotation that does not hold what it must.
    #[error("annotation {annotation}: {source}")]
    Annotation {
        annotation: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A round-trip annotation whose JSON has the wrong shape.
    #[error("annotation {annotation}: {what}")]
    AnnotationShape {
        annotation: &'static str,
        what: &'static str,
    },
    /// An object that is not a JSON object at all.
    #[error("{kind} is not a JSON object")]
    NotAnObject { kind: &'static str },
    /// A stored object whose `apiVersion` is no version of its kind.
    #[error("stored {kind} has apiVersion {found:?}, which is no version of it")]
    UnknownVersion { kind: &'static str, found: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kinds served in more than one version over one storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Hpa,
    Event,
}

fn family(info: &ResourceInfo) -> Option<Family> {
    match (info.kind, info.group) {
        ("HorizontalPodAutoscaler", "autoscaling") => Some(Family::Hpa),
        ("Event", "" | "events.k8s.io") => Some(Family::Event),
        _ => None,
    }
}

/// The resource whose datastore prefix holds a kind's objects, in the version they are
/// stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageResource {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
}

impl StorageResource {
    /// `v1` for core, `autoscaling/v2` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const HPA_STORAGE: StorageResource = StorageResource {
    group: "autoscaling",
    version: "v2",
    kind: "HorizontalPodAutoscaler",
    plural: "horizontalpodautoscalers",
};

const EVENT_STORAGE: StorageResource = StorageResource {
    group: "",
    version: "v1",
    kind: "Event",
    plural: "events",
};

/// The storage resource of `info`: autoscaling/v2 for HPAs, core/v1 for events, `info`
/// itself for everything else.
pub fn storage_resource(info: &ResourceInfo) -> StorageResource {
    match family(info) {
        Some(Family::Hpa) => HPA_STORAGE,
        Some(Family::Event) => EVENT_STORAGE,
        None => StorageResource {
            group: info.group,
            version: info.version,
            kind: info.kind,
            plural: info.plural,
        },
    }
}

/// Whether `info` is the version its objects are stored in (the one to walk when every
/// stored object must be visited once, as the garbage collector and the namespace worker do).
pub fn is_storage_version(info: &ResourceInfo) -> bool {
    match family(info) {
        Some(Family::Hpa) => info.version == HPA_STORAGE.version,
        Some(Family::Event) => info.group.is_empty(),
        None => true,
    }
}

/// Whether [`to_storage`] and [`from_storage`] leave every object of `info` exactly as it is,
/// so stored bytes may be served without decoding them. False for autoscaling/v2 HPAs too:
/// writes drop v1's round-trip annotations, and old objects may be stored in v1's shape.
pub fn is_identity(info: &ResourceInfo) -> bool {
    match family(info) {
        None => true,
        // Nothing but core events was ever stored under the core prefix.
        Some(Family::Event) => info.group.is_empty(),
        Some(Family::Hpa) => false,
    }
}

/// The annotations that carry part of the status in the version of `info` (an
/// autoscaling/v1 HPA's current metrics and conditions): an update of the main resource
/// keeps them from the stored object, as it keeps the status.
pub fn status_annotations(info: &ResourceInfo) -> &'static [&'static str] {
    match family(info) {
        Some(Family::Hpa) if info.version == "v1" => {
            &[METRIC_STATUSES_ANNOTATION, CONDITIONS_ANNOTATION]
        }
        _ => &[],
    }
}

/// `obj`, in the version of `info`, as it is stored.
pub fn to_storage(info: &ResourceInfo, obj: Value) -> Result<Value> {
    match family(info) {
        None => Ok(obj),
        Some(Family::Hpa) if info.version == "v1" => hpa_v1_to_v2(obj),
        Some(Family::Hpa) => hpa_v2_to_v2(obj),
        Some(Family::Event) if info.group.is_empty() => Ok(obj),
        Some(Family::Event) => events_to_core(obj),
    }
}

/// A stored object, in the version of `info`.
pub fn from_storage(info: &ResourceInfo, obj: Value) -> Result<Value> {
    if is_identity(info) {
        return Ok(obj);
    }
    let Some(family) = family(info) else {
        return Ok(obj);
    };
    let storage = storage_resource(info);
    let stored_version = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    // First to the storage version, if it was written in another one...
    let obj = match (family, stored_version.as_str()) {
        (_, "") => obj,
        (_, v) if v == storage.api_version() => obj,
        (Family::Hpa, "autoscaling/v1") => hpa_v1_to_v2(obj)?,
        (Family::Event, "events.k8s.io/v1") => events_to_core(obj)?,
        (_, other) => {
            return Err(Error::UnknownVersion {
                kind: storage.kind,
                found: other.to_owned(),
            })
        }
    };
    // ...then to the one asked for.
    match family {
        Family::Hpa if info.version == "v1" => hpa_v2_to_v1(obj),
        Family::Hpa => Ok(obj),
        Family::Event if info.group.is_empty() => Ok(obj),
        Family::Event => core_to_events(obj),
    }
}

// ---------------------------------------------------------------------------------------
// Helpers

fn into_map(obj: Value, kind: &'static str) -> Result<Map<String, Value>> {
    match obj {
        Value::Object(m) => Ok(m),
        _ => Err(Error::NotAnObject { kind }),
    }
}

/// Copies `from[key]` to `to[as_key]` when it is there and not null.
fn copy(from: &Value, key: &str, to: &mut Map<String, Value>, as_key: &str) {
    if let Some(v) = from.get(key).filter(|v| !v.is_null()) {
        to.insert(as_key.to_owned(), v.clone());
    }
}

/// Copies each of `keys` under its own name.
fn copy_all(from: &Value, keys: &[&str], to: &mut Map<String, Value>) {
    for key in keys {
        copy(from, key, to, key);
    }
}

fn non_empty_array(v: Option<&Value>) -> Option<&Vec<Value>> {
    v.and_then(Value::as_array).filter(|a| !a.is_empty())
}

fn annotations_mut(metadata: &mut Map<String, Value>) -> Option<&mut Map<String, Value>> {
    metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
}

/// Removes v1's round-trip annotations (upstream's
/// `DropRoundTripHorizontalPodAutoscalerAnnotations`), and the map if that empties it.
fn drop_round_trip_annotations(metadata: &mut Map<String, Value>) {
    let Some(annotations) = annotations_mut(metadata) else {
        return;
    };
    let mut removed = false;
    for key in [
        METRIC_SPECS_ANNOTATION,
        METRIC_STATUSES_ANNOTATION,
        CONDITIONS_ANNOTATION,
        BEHAVIOR_ANNOTATION,
    ]
    .into_iter()
    .chain(TOLERANCE_ANNOTATIONS)
    {
        removed |= annotations.remove(key).is_some();
    }
    if removed && annotations.is_empty() {
        metadata.remove("annotations");
    }
}

/// The JSON held by annotation `key`, if there is one.
fn annotation_json(metadata: &Value, key: &'static str) -> Result<Option<Value>> {
    match metadata.pointer("/annotations").and_then(|a| a.get(key)) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            serde_json::from_str(text)
                .map(Some)
                .map_err(|source| Error::Annotation {
                    annotation: key,
                    source,
                })
        }
        Some(_) => Err(Error::AnnotationShape {
            annotation: key,
            what: "must be a string",
        }),
    }
}

/// The list held by annotation `key`, if there is one.
fn annotation_list(metadata: &Value, key: &'static str) -> Result<Option<Vec<Value>>> {
    match annotation_json(metadata, key)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => Ok(Some(items)),
        Some(_) => Err(Error::AnnotationShape {
            annotation: key,
            what: "must hold a JSON list",
        }),
    }
}

// ---------------------------------------------------------------------------------------
// HorizontalPodAutoscaler

fn is_cpu_resource(metric: &Value) -> bool {
    metric.get("type").and_then(Value::as_str) == Some("Resource")
        && metric.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
}

/// A v2 write: the storage version as it is, without v1's round-trip annotations (upstream
/// drops them converting v2 to the internal version).
fn hpa_v2_to_v2(obj: Value) -> Result<Value> {
    let mut out = into_map(obj, "HorizontalPodAutoscaler")?;
    if let Some(metadata) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        drop_round_trip_annotations(metadata);
    }
    Ok(Value::Object(out))
}

/// `Convert_autoscaling_HorizontalPodAutoscaler_To_v1_HorizontalPodAutoscaler`.
fn hpa_v2_to_v1(obj: Value) -> Result<Value> {
    let mut v2 = into_map(obj, "HorizontalPodAutoscaler")?;
    let spec = v2.remove("spec");
    let status = v2.remove("status");
    let mut metadata = match v2.remove("metadata") {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    drop_round_trip_annotations(&mut metadata);

    let mut out = v2;
    out.insert("apiVersion".into(), json!("autoscaling/v1"));
    out.insert("kind".into(), json!("HorizontalPodAutoscaler"));

    let mut annotations: Vec<(&'static str, String)> = Vec::new();
    let encode = |v: &Value| serde_json::to_string(v).unwrap_or_default();

    if let Some(spec) = &spec {
        let mut v1 = Map::new();
        copy_all(
            spec,
            &["scaleTargetRef", "minReplicas", "maxReplicas"],
            &mut v1,
        );
        let metrics = spec
            .get("metrics")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        // The first cpu Resource metric is the CPU target, if it is a utilization.
        if let Some(cpu) = metrics.iter().find(|m| is_cpu_resource(m)) {
            copy(
                &cpu["resource"]["target"],
                "averageUtilization",
                &mut v1,
                "targetCPUUtilizationPercentage",
            );
        }
        let others: Vec<Value> = metrics
            .iter()
            .filter(|m| {
                !(is_cpu_resource(m)
                    && m.pointer("/resource/target/averageUtilization")
                        .is_some_and(|u| !u.is_null()))
            })
            .map(metric_spec_to_v1)
            .collect();
        if !others.is_empty() {
            annotations.push((METRIC_SPECS_ANNOTATION, encode(&Value::Array(others))));
        }
        if let Some(behavior) = spec.get("behavior").filter(|b| !b.is_null()) {
            annotations.push((BEHAVIOR_ANNOTATION, encode(&go_field_names(behavior))));
        }
        out.insert("spec".into(), Value::Object(v1));
    }

    if let Some(status) = &status {
        let mut v1 = Map::new();
        copy_all(
            status,
            &[
                "observedGeneration",
                "lastScaleTime",
                "currentReplicas",
                "desiredReplicas",
            ],
            &mut v1,
        );
        // v1 writes both counts always (no `omitempty`); v2 omits a zero currentReplicas.
        for key in ["currentReplicas", "desiredReplicas"] {
            v1.entry(key).or_insert(json!(0));
        }
        if let Some(current) = non_empty_array(status.get("currentMetrics")) {
            for m in current.iter().filter(|m| is_cpu_resource(m)) {
                copy(
                    &m["resource"]["current"],
                    "averageUtilization",
                    &mut v1,
                    "currentCPUUtilizationPercentage",
                );
            }
            // All of them, the CPU one too: it may carry a raw value as well.
            let list: Vec<Value> = current.iter().map(metric_status_to_v1).collect();
            annotations.push((METRIC_STATUSES_ANNOTATION, encode(&Value::Array(list))));
        }
        if let Some(conditions) = non_empty_array(status.get("conditions")) {
            annotations.push((
                CONDITIONS_ANNOTATION,
                encode(&Value::Array(conditions.clone())),
            ));
        }
        out.insert("status".into(), Value::Object(v1));
    }

    if !annotations.is_empty() {
        let map = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if !map.is_object() {
            *map = Value::Object(Map::new());
        }
        if let Some(map) = map.as_object_mut() {
            for (k, v) in annotations {
                map.insert(k.to_owned(), Value::String(v));
            }
        }
    }
    out.insert("metadata".into(), Value::Object(metadata));
    Ok(Value::Object(out))
}

/// `Convert_v1_HorizontalPodAutoscaler_To_autoscaling_HorizontalPodAutoscaler`.
fn hpa_v1_to_v2(obj: Value) -> Result<Value> {
    let mut v1 = into_map(obj, "HorizontalPodAutoscaler")?;
    let spec = v1.remove("spec");
    let status = v1.remove("status");
    let metadata_value = v1.remove("metadata").unwrap_or_else(|| json!({}));
    let other_metrics = annotation_list(&metadata_value, METRIC_SPECS_ANNOTATION)?;
    let current_metrics = annotation_list(&metadata_value, METRIC_STATUSES_ANNOTATION)?;
    let conditions = annotation_list(&metadata_value, CONDITIONS_ANNOTATION)?;
    let behavior = annotation_json(&metadata_value, BEHAVIOR_ANNOTATION)?;
    let mut metadata = match metadata_value {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    drop_round_trip_annotations(&mut metadata);

    let mut out = v1;
    out.insert("apiVersion".into(), json!("autoscaling/v2"));
    out.insert("kind".into(), json!("HorizontalPodAutoscaler"));
    out.insert("metadata".into(), Value::Object(metadata));

    let spec = spec.unwrap_or_else(|| json!({}));
    let mut v2 = Map::new();
    copy_all(
        &spec,
        &["scaleTargetRef", "minReplicas", "maxReplicas"],
        &mut v2,
    );
    let cpu = |utilization: Value| {
        json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": utilization}}})
    };
    let mut metrics: Vec<Value> = other_metrics
        .unwrap_or_default()
        .iter()
        .map(metric_spec_from_v1)
        .collect();
    if let Some(target) = spec
        .get("targetCPUUtilizationPercentage")
        .filter(|t| !t.is_null())
    {
        metrics.push(cpu(target.clone()));
    }
    // autoscaling/v1 used to default this in the controller; v2 says it.
    if metrics.is_empty() {
        metrics.push(cpu(json!(DEFAULT_CPU_UTILIZATION)));
    }
    v2.insert("metrics".into(), Value::Array(metrics));
    if let Some(behavior) = behavior.filter(|b| !b.is_null()) {
        if !behavior.is_object() {
            return Err(Error::AnnotationShape {
                annotation: BEHAVIOR_ANNOTATION,
                what: "must hold a JSON object",
            });
        }
        v2.insert("behavior".into(), json_field_names(&behavior));
    }
    out.insert("spec".into(), Value::Object(v2));

    if status.is_some() || current_metrics.is_some() || conditions.is_some() {
        let status = status.unwrap_or_else(|| json!({}));
        let mut v2 = Map::new();
        copy_all(
            &status,
            &[
                "observedGeneration",
                "lastScaleTime",
                "currentReplicas",
                "desiredReplicas",
            ],
            &mut v2,
        );
        // The annotation has more than the CPU percentage: it wins.
        let current = match current_metrics {
            Some(list) => Some(list.iter().map(metric_status_from_v1).collect()),
            None => status
                .get("currentCPUUtilizationPercentage")
                .filter(|c| !c.is_null())
                .map(|c| {
                    vec![json!({"type": "Resource", "resource": {"name": "cpu",
                        "current": {"averageUtilization": c}}})]
                }),
        };
        if let Some(current) = current {
            v2.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(conditions) = conditions {
            v2.insert("conditions".into(), Value::Array(conditions));
        }
        out.insert("status".into(), Value::Object(v2));
    }
    Ok(Value::Object(out))
}

/// The source of `metric` of type `ty` (`resource`, `pods`, ...) as its own field name.
fn source_field(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "Resource" => "resource",
        "ContainerResource" => "containerResource",
        "Pods" => "pods",
        "Object" => "object",
        "External" => "external",
        _ => return None,
    })
}

/// A v2 `MetricSpec` in v1's annotation shape (`autoscalingv1.MetricSpec`). Absent values
/// stay absent (upstream writes a zero quantity for some), so the way back is exact.
fn metric_spec_to_v1(m: &Value) -> Value {
    metric_to_v1(m, "target")
}

/// A v2 `MetricSpec` (`values` = "target") or `MetricStatus` (`values` = "current") in v1's
/// annotation shape: the two differ only in where the values are and v1's name prefix for
/// them (`targetAverageValue`, `currentAverageValue`).
fn metric_to_v1(m: &Value, values: &str) -> Value {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    out.insert("type".into(), json!(ty));
    let Some(field) = source_field(ty) else {
        return Value::Object(out);
    };
    let Some(src) = m.get(field).filter(|s| s.is_object()) else {
        return Value::Object(out);
    };
    let given = src.get(values).cloned().unwrap_or_else(|| json!({}));
    let metric = src.get("metric").cloned().unwrap_or_else(|| json!({}));
    let v1_name = |name: &str| format!("{values}{name}");
    let mut v1 = Map::new();
    match ty {
        "Resource" | "ContainerResource" => {
            copy_all(src, &["name", "container"], &mut v1);
            copy(
                &given,
                "averageUtilization",
                &mut v1,
                &v1_name("AverageUtilization"),
            );
            copy(&given, "averageValue", &mut v1, &v1_name("AverageValue"));
        }
        "Pods" => {
            copy(&metric, "name", &mut v1, "metricName");
            copy(&metric, "selector", &mut v1, "selector");
            copy(&given, "averageValue", &mut v1, &v1_name("AverageValue"));
        }
        "Object" => {
            copy(src, "describedObject", &mut v1, "target");
            copy(&metric, "name", &mut v1, "metricName");
            copy(&metric, "selector", &mut v1, "selector");
            copy(&given, "value", &mut v1, &v1_name("Value"));
            copy(&given, "averageValue", &mut v1, "averageValue");
        }
        _ => {
            copy(&metric, "name", &mut v1, "metricName");
            copy(&metric, "selector", &mut v1, "metricSelector");
            copy(&given, "value", &mut v1, &v1_name("Value"));
            copy(&given, "averageValue", &mut v1, &v1_name("AverageValue"));
        }
    }
    out.insert(field.into(), Value::Object(v1));
    Value::Object(out)
}

/// The other way: v1's annotation shape to a v2 `MetricSpec` (the target type follows from
/// which values are set, as upstream's conversions decide it).
fn metric_spec_from_v1(m: &Value) -> Value {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    out.insert("type".into(), json!(ty));
    let Some(field) = source_field(ty) else {
        return Value::Object(out);
    };
    let Some(src) = m.get(field).filter(|s| s.is_object()) else {
        return Value::Object(out);
    };
    let has = |k: &str| src.get(k).is_some_and(|v| !v.is_null());
    let mut v2 = Map::new();
    let mut target = Map::new();
    let mut metric = Map::new();
    match ty {
        "Resource" | "ContainerResource" => {
            copy_all(src, &["name", "container"], &mut v2);
            let kind = if has("targetAverageUtilization") {
                "Utilization"
            } else {
                "AverageValue"
            };
            target.insert("type".into(), json!(kind));
            copy(
                src,
                "targetAverageUtilization",
                &mut target,
                "averageUtilization",
            );
            copy(src, "targetAverageValue", &mut target, "averageValue");
        }
        "Pods" => {
            copy(src, "metricName", &mut metric, "name");
            copy(src, "selector", &mut metric, "selector");
            target.insert("type".into(), json!("AverageValue"));
            copy(src, "targetAverageValue", &mut target, "averageValue");
        }
        "Object" => {
            copy(src, "target", &mut v2, "describedObject");
            copy(src, "metricName", &mut metric, "name");
            copy(src, "selector", &mut metric, "selector");
            let kind = if has("averageValue") {
                "AverageValue"
            } else {
                "Value"
            };
            target.insert("type".into(), json!(kind));
            copy(src, "targetValue", &mut target, "value");
            copy(src, "averageValue", &mut target, "averageValue");
        }
        _ => {
            copy(src, "metricName", &mut metric, "name");
            copy(src, "metricSelector", &mut metric, "selector");
            let kind = if has("targetValue") {
                "Value"
            } else {
                "AverageValue"
            };
            target.insert("type".into(), json!(kind));
            copy(src, "targetValue", &mut target, "value");
            copy(src, "targetAverageValue", &mut target, "averageValue");
        }
    }
    if !metric.is_empty() {
        v2.insert("metric".into(), Value::Object(metric));
    }
    v2.insert("target".into(), Value::Object(target));
    out.insert(field.into(), Value::Object(v2));
    Value::Object(out)
}

/// A v2 `MetricStatus` in v1's annotation shape (`autoscalingv1.MetricStatus`).
fn metric_status_to_v1(m: &Value) -> Value {
    metric_to_v1(m, "current")
}

/// The other way: v1's annotation shape to a v2 `MetricStatus`.
fn metric_status_from_v1(m: &Value) -> Value {
    let ty = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let mut out = Map::new();
    out.insert("type".into(), json!(ty));
    let Some(field) = source_field(ty) else {
        return Value::Object(out);
    };
    let Some(src) = m.get(field).filter(|s| s.is_object()) else {
        return Value::Object(out);
    };
    let mut v2 = Map::new();
    let mut current = Map::new();
    let mut metric = Map::new();
    match ty {
        "Resource" | "ContainerResource" => {
            copy_all(src, &["name", "container"], &mut v2);
            copy(
                src,
                "currentAverageUtilization",
                &mut current,
                "averageUtilization",
            );
            copy(src, "currentAverageValue", &mut current, "averageValue");
        }
        "Pods" => {
            copy(src, "metricName", &mut metric, "name");
            copy(src, "selector", &mut metric, "selector");
            copy(src, "currentAverageValue", &mut current, "averageValue");
        }
        "Object" => {
            copy(src, "target", &mut v2, "describedObject");
            copy(src, "metricName", &mut metric, "name");
            copy(src, "selector", &mut metric, "selector");
            copy(src, "currentValue", &mut current, "value");
            copy(src, "averageValue", &mut current, "averageValue");
        }
        _ => {
            copy(src, "metricName", &mut metric, "name");
            copy(src, "metricSelector", &mut metric, "selector");
            copy(src, "currentValue", &mut current, "value");
            copy(src, "currentAverageValue", &mut current, "averageValue");
        }
    }
    if !metric.is_empty() {
        v2.insert("metric".into(), Value::Object(metric));
    }
    v2.insert("current".into(), Value::Object(current));
    out.insert(field.into(), Value::Object(v2));
    Value::Object(out)
}

/// The behavior as upstream writes it into its annotation: the internal Go type through
/// `encoding/json`, which has no JSON tags, so every field is named as in Go (`ScaleUp`,
/// `StabilizationWindowSeconds`, `Policies[].PeriodSeconds`, ...).
fn go_field_names(v: &Value) -> Value {
    rename_keys(v, |k| {
        let mut chars = k.chars();
        match chars.next() {
            Some(first) => first.to_uppercase().chain(chars).collect(),
            None => String::new(),
        }
    })
}

/// The behavior read back: `encoding/json` matches field names case-insensitively, so
/// `ScaleUp` and `scaleUp` are both the v2 field `scaleUp`. Nulls (Go's nil pointers) are
/// absent fields.
fn json_field_names(v: &Value) -> Value {
    const FIELDS: &[&str] = &[
        "scaleUp",
        "scaleDown",
        "stabilizationWindowSeconds",
        "selectPolicy",
        "policies",
        "tolerance",
        "type",
        "value",
        "periodSeconds",
    ];
    rename_keys(v, |k| {
        FIELDS
            .iter()
            .find(|f| f.eq_ignore_ascii_case(k))
            .map(|f| (*f).to_owned())
            .unwrap_or_else(|| k.to_owned())
    })
}

fn rename_keys(v: &Value, rename: impl Fn(&str) -> String + Copy) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (rename(k), rename_keys(v, rename)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|i| rename_keys(i, rename)).collect()),
        other => other.clone(),
    }
}

// ---------------------------------------------------------------------------------------
// Event

/// (events.k8s.io/v1 name, core/v1 name) of the fields named differently; every other field
/// has the same name in both.
const EVENT_RENAMES: &[(&str, &str)] = &[
    ("note", "message"),
    ("regarding", "involvedObject"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename_event(obj: Value, api_version: &str, to_core: bool) -> Result<Value> {
    let mut m = into_map(obj, "Event")?;
    let mut moved = Vec::new();
    for (events, core) in EVENT_RENAMES {
        let (from, to) = if to_core {
            (events, core)
        } else {
            (core, events)
        };
        // A field of the other version's name that has none here is dropped, as decoding
        // into the typed kind would.
        m.remove(*to);
        if let Some(v) = m.remove(*from) {
            moved.push((*to, v));
        }
    }
    for (k, v) in moved {
        m.insert(k.to_owned(), v);
    }
    m.insert("apiVersion".into(), json!(api_version));
    m.insert("kind".into(), json!("Event"));
    Ok(Value::Object(m))
}

/// `Convert_v1_Event_To_core_Event`.
fn events_to_core(obj: Value) -> Result<Value> {
    rename_event(obj, "v1", true)
}

/// `Convert_core_Event_To_v1_Event`. core/v1 always writes `reportingComponent` and
/// `reportingInstance`; events.k8s.io/v1 omits them when empty.
fn core_to_events(obj: Value) -> Result<Value> {
    let mut obj = rename_event(obj, "events.k8s.io/v1", false)?;
    if let Some(m) = obj.as_object_mut() {
        for key in ["reportingController", "reportingInstance"] {
            if m.get(key).and_then(Value::as_str) == Some("") {
                m.remove(key);
            }
        }
    }
    Ok(obj)
}

#[cfg(test)]
mod tests;
