//! Upstream's defaulting of built-in kinds: the `SetDefaults_*` functions of
//! k8s.io/kubernetes `pkg/apis/*/v1*/defaults.go`, the generated `zz_generated.defaults.go`
//! walks that apply them inside pod templates and volumes, and what decoding into the internal
//! type does to the stored form (canonical quantities, Secret `stringData` folded into `data`).
//! Also the parts of the create strategies that fill fields: a Pod's initial status and a
//! Job's generated selector, as separate functions the server calls when creating.
//!
//! Everything works on the JSON object in its served version and only fills what is unset,
//! so applying it twice changes nothing.

mod go_fields;
mod pod;
#[rustfmt::skip]
mod struct_fields;

#[cfg(test)]
mod tests;

use base64::Engine;
use serde_json::{json, Map, Value};

use crate::validation::quantity::Quantity;

pub use go_fields::fill_go_fields;
pub use pod::pod_status_on_create;

/// Applies upstream's defaults for the kind to the object, then writes in the fields Go's
/// encoding of the kind always carries ([`fill_go_fields`]).
pub fn apply(group: &str, version: &str, kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match (group, kind) {
        ("", "Pod") => pod::pod(obj),
        ("", "PodTemplate") => template_at(obj, &["template"]),
        ("", "ReplicationController") => replication_controller(obj),
        ("", "Service") => service(obj),
        ("", "Secret") => secret(obj),
        ("", "Namespace") => namespace(obj),
        ("", "Node") => node(obj),
        ("", "PersistentVolume") => persistent_volume(obj),
        ("", "PersistentVolumeClaim") => persistent_volume_claim(obj),
        ("", "Endpoints") => endpoints(obj),
        ("", "LimitRange") => limit_range(obj),
        ("apps", "Deployment") => deployment(obj),
        ("apps", "ReplicaSet") => {
            default_value(spec(obj), "replicas", json!(1));
            template_at(obj, &["spec", "template"]);
        }
        ("apps", "StatefulSet") => stateful_set(obj),
        ("apps", "DaemonSet") => daemon_set(obj),
        ("batch", "Job") => job(obj),
        ("batch", "CronJob") => cron_job(obj),
        ("autoscaling", "HorizontalPodAutoscaler") => hpa(version, obj),
        ("networking.k8s.io", "NetworkPolicy") => network_policy(obj),
        ("networking.k8s.io", "IngressClass") => {
            if let Some(params) = obj
                .pointer_mut("/spec/parameters")
                .and_then(Value::as_object_mut)
            {
                default_str(params, "scope", "Cluster");
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            for port in array_mut(obj, "ports") {
                if let Some(p) = port.as_object_mut() {
                    default_value(p, "name", json!(""));
                    default_str(p, "protocol", "TCP");
                }
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => role_binding(obj),
        ("storage.k8s.io", "StorageClass") => {
            if let Some(m) = obj.as_object_mut() {
                default_str(m, "reclaimPolicy", "Delete");
                default_str(m, "volumeBindingMode", "Immediate");
            }
        }
        ("storage.k8s.io", "CSIDriver") => csi_driver(obj),
        ("scheduling.k8s.io", "PriorityClass") => {
            if let Some(m) = obj.as_object_mut() {
                default_str(m, "preemptionPolicy", "PreemptLowerPriority");
            }
        }
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => webhooks(kind == "MutatingWebhookConfiguration", obj),
        _ => {}
    }
    fill_go_fields(group, version, kind, obj);
}

/// Applies upstream's Job create strategy: unless `spec.manualSelector` is true, the pod
/// template gets the `job-name` and `controller-uid` labels (legacy and
/// `batch.kubernetes.io/`-prefixed) and the selector matches the prefixed uid label, from the
/// object's `metadata.uid`. Like a read back from upstream's storage (which defaults again),
/// a Job without labels of its own then carries its template's.
pub fn job_selector_on_create(obj: &mut Value) {
    if !obj.is_object()
        || obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true)
    {
        return;
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let spec = spec(obj);
    let template = child_obj(spec, "template");
    let labels = child_obj(child_obj(template, "metadata"), "labels");
    for key in ["job-name", "batch.kubernetes.io/job-name"] {
        labels.entry(key).or_insert_with(|| json!(name));
    }
    for key in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
        labels.entry(key).or_insert_with(|| json!(uid));
    }
    let template_labels = labels.clone();
    let selector = child_obj(spec, "selector");
    child_obj(selector, "matchLabels")
        .entry("batch.kubernetes.io/controller-uid")
        .or_insert_with(|| json!(uid));
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        let empty = meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
        if empty {
            meta.insert("labels".into(), Value::Object(template_labels));
        }
    }
}

// Helpers. Go leaves a field unset when it is nil, or for plain strings and numbers when it
// is the zero value, so these treat null, "" and 0 (as each default function does) as unset.

/// The object at `key`, created when absent or null (left alone when it is another type).
fn child_obj<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = m.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    match v {
        Value::Object(o) => o,
        // Replaced with an object just above.
        _ => unreachable!("replaced with an object above"),
    }
}

/// The object's `spec`, created when absent.
fn spec(obj: &mut Value) -> &mut Map<String, Value> {
    match obj {
        Value::Object(m) => child_obj(m, "spec"),
        _ => unreachable!("apply only runs on objects"),
    }
}

fn is_unset(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

/// Sets a pointer-like field when it is absent or null.
fn default_value(m: &mut Map<String, Value>, key: &str, value: Value) {
    if is_unset(m.get(key)) {
        m.insert(key.into(), value);
    }
}

/// Sets a string field when it is absent, null or empty.
fn default_str(m: &mut Map<String, Value>, key: &str, value: &str) {
    if is_unset(m.get(key)) || m.get(key).and_then(Value::as_str) == Some("") {
        m.insert(key.into(), json!(value));
    }
}

/// Sets a number field when it is absent, null or zero.
fn default_nonzero(m: &mut Map<String, Value>, key: &str, value: i64) {
    if is_unset(m.get(key)) || m.get(key).and_then(Value::as_i64) == Some(0) {
        m.insert(key.into(), json!(value));
    }
}

fn array_mut<'a>(v: &'a mut Value, key: &str) -> impl Iterator<Item = &'a mut Value> {
    v.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// Rewrites a resource list's quantities rounded up to milli units and in canonical form,
/// as upstream stores them (`SetDefaults_ResourceList` and `Quantity` serialization).
fn canonical_resource_list(list: Option<&mut Value>) {
    let Some(Value::Object(m)) = list else { return };
    for v in m.values_mut() {
        if let Ok(q) = Quantity::from_json(v) {
            *v = json!(q.round_up_milli().canonical());
        }
    }
}

/// A quantity field in canonical form.
fn canonical_quantity(v: Option<&mut Value>) {
    if let Some(v) = v {
        if let Ok(q) = Quantity::from_json(v) {
            *v = json!(q.canonical());
        }
    }
}

/// Pod template defaults at the given path (a `PodTemplateSpec`).
fn template_at(obj: &mut Value, path: &[&str]) {
    let mut cur = obj;
    for p in path {
        let Some(next) = cur.get_mut(*p) else { return };
        cur = next;
    }
    if let Some(spec) = cur.get_mut("spec") {
        pod::pod_spec(spec);
    }
}

// Kinds.

fn replication_controller(obj: &mut Value) {
    let labels = obj.pointer("/spec/template/metadata/labels").cloned();
    if let Some(Value::Object(labels)) = labels {
        let s = spec(obj);
        if s.get("selector")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
        {
            s.insert("selector".into(), Value::Object(labels.clone()));
        }
        if let Some(m) = obj.as_object_mut() {
            let meta = child_obj(m, "metadata");
            if meta
                .get("labels")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty)
            {
                meta.insert("labels".into(), Value::Object(labels));
            }
        }
    }
    default_value(spec(obj), "replicas", json!(1));
    template_at(obj, &["spec", "template"]);
}

/// `SetDefaults_Service`.
fn service(obj: &mut Value) {
    let s = spec(obj);
    default_str(s, "sessionAffinity", "None");
    match s.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            s.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = s
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                s.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    default_str(s, "type", "ClusterIP");
    if let Some(ports) = s.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default_str(p, "protocol", "TCP");
            let unset = match p.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::String(t)) => t.is_empty(),
                Some(Value::Number(n)) => n.as_i64() == Some(0),
                _ => false,
            };
            if unset {
                let port = p.get("port").cloned().unwrap_or(json!(0));
                p.insert("targetPort".into(), port);
            }
        }
    }
    let ty = s
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let has_external_ips = s
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let externally_accessible =
        ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && has_external_ips);
    if externally_accessible {
        default_str(s, "externalTrafficPolicy", "Cluster");
    }
    if ["NodePort", "LoadBalancer", "ClusterIP"].contains(&ty.as_str()) {
        default_value(s, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        default_value(s, "allocateLoadBalancerNodePorts", json!(true));
        if let Some(ingress) = obj
            .pointer_mut("/status/loadBalancer/ingress")
            .and_then(Value::as_array_mut)
        {
            for ing in ingress.iter_mut().filter_map(Value::as_object_mut) {
                let has_ip = ing
                    .get("ip")
                    .and_then(Value::as_str)
                    .is_some_and(|ip| !ip.is_empty());
                if has_ip {
                    default_value(ing, "ipMode", json!("VIP"));
                }
            }
        }
    }
}

/// `SetDefaults_Secret`, plus the v1 decoding that folds `stringData` into `data`.
fn secret(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    default_str(m, "type", "Opaque");
    if let Some(Value::Object(string_data)) = m.remove("stringData") {
        if string_data.is_empty() {
            return;
        }
        let data = child_obj(m, "data");
        for (k, v) in string_data {
            let text = v.as_str().unwrap_or("");
            data.insert(
                k,
                json!(base64::engine::general_purpose::STANDARD.encode(text.as_bytes())),
            );
        }
    }
}

/// `SetDefaults_Namespace` and `SetDefaults_NamespaceStatus`.
fn namespace(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    let meta = child_obj(m, "metadata");
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if !name.is_empty() {
        child_obj(meta, "labels").insert("kubernetes.io/metadata.name".into(), json!(name));
    }
    default_str(child_obj(m, "status"), "phase", "Active");
}

/// `SetDefaults_NodeStatus`: allocatable defaults to capacity.
fn node(obj: &mut Value) {
    let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) else {
        return;
    };
    if is_unset(status.get("allocatable")) {
        if let Some(cap) = status.get("capacity").cloned().filter(|c| !c.is_null()) {
            status.insert("allocatable".into(), cap);
        }
    }
}

fn persistent_volume(obj: &mut Value) {
    let s = spec(obj);
    default_str(s, "persistentVolumeReclaimPolicy", "Retain");
    default_value(s, "volumeMode", json!("Filesystem"));
    canonical_resource_list(s.get_mut("capacity"));
    if let Some(m) = obj.as_object_mut() {
        default_str(child_obj(m, "status"), "phase", "Pending");
    }
}

fn persistent_volume_claim(obj: &mut Value) {
    pvc_spec(spec(obj));
    if let Some(m) = obj.as_object_mut() {
        default_str(child_obj(m, "status"), "phase", "Pending");
    }
}

/// `SetDefaults_PersistentVolumeClaimSpec` and its resource lists.
fn pvc_spec(s: &mut Map<String, Value>) {
    default_value(s, "volumeMode", json!("Filesystem"));
    if let Some(res) = s.get_mut("resources") {
        canonical_resource_list(res.get_mut("requests"));
        canonical_resource_list(res.get_mut("limits"));
    }
}

fn endpoints(obj: &mut Value) {
    for subset in array_mut(obj, "subsets") {
        for port in array_mut(subset, "ports") {
            if let Some(p) = port.as_object_mut() {
                default_str(p, "protocol", "TCP");
            }
        }
    }
}

/// `SetDefaults_LimitRangeItem`: container defaults from max, requests from defaults or min.
fn limit_range(obj: &mut Value) {
    let Some(limits) = obj
        .pointer_mut("/spec/limits")
        .and_then(Value::as_array_mut)
    else {
        return;
    };
    for item in limits.iter_mut().filter_map(Value::as_object_mut) {
        if item.get("type").and_then(Value::as_str) != Some("Container") {
            continue;
        }
        let max = item
            .get("max")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let min = item
            .get("min")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let default = child_obj(item, "default");
        for (k, v) in max {
            default.entry(k).or_insert(v);
        }
        let default = default.clone();
        let request = child_obj(item, "defaultRequest");
        for (k, v) in default.into_iter().chain(min) {
            request.entry(k).or_insert(v);
        }
    }
}

/// `SetDefaults_Deployment`.
fn deployment(obj: &mut Value) {
    let s = spec(obj);
    default_value(s, "replicas", json!(1));
    let strategy = child_obj(s, "strategy");
    default_str(strategy, "type", "RollingUpdate");
    if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = child_obj(strategy, "rollingUpdate");
        default_value(ru, "maxUnavailable", json!("25%"));
        default_value(ru, "maxSurge", json!("25%"));
    }
    default_value(s, "revisionHistoryLimit", json!(10));
    default_value(s, "progressDeadlineSeconds", json!(600));
    template_at(obj, &["spec", "template"]);
}

/// `SetDefaults_StatefulSet` (with `StatefulSetAutoDeletePVC` on and `MaxUnavailableStatefulSet`
/// off, as in v1.33).
fn stateful_set(obj: &mut Value) {
    let s = spec(obj);
    default_str(s, "podManagementPolicy", "OrderedReady");
    let us = child_obj(s, "updateStrategy");
    if us
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        us.insert("type".into(), json!("RollingUpdate"));
        default_value(us, "rollingUpdate", json!({}));
    }
    if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        if let Some(ru) = us.get_mut("rollingUpdate").and_then(Value::as_object_mut) {
            default_value(ru, "partition", json!(0));
        }
    }
    let policy = child_obj(s, "persistentVolumeClaimRetentionPolicy");
    default_str(policy, "whenDeleted", "Retain");
    default_str(policy, "whenScaled", "Retain");
    default_value(s, "replicas", json!(1));
    default_value(s, "revisionHistoryLimit", json!(10));
    if let Some(templates) = s
        .get_mut("volumeClaimTemplates")
        .and_then(Value::as_array_mut)
    {
        for t in templates.iter_mut() {
            if let Some(ts) = t.as_object_mut().map(|m| child_obj(m, "spec")) {
                pvc_spec(ts);
            }
            if let Some(m) = t.as_object_mut() {
                default_str(child_obj(m, "status"), "phase", "Pending");
            }
        }
    }
    template_at(obj, &["spec", "template"]);
}

/// `SetDefaults_DaemonSet`.
fn daemon_set(obj: &mut Value) {
    let s = spec(obj);
    let us = child_obj(s, "updateStrategy");
    default_str(us, "type", "RollingUpdate");
    if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
        let ru = child_obj(us, "rollingUpdate");
        default_value(ru, "maxUnavailable", json!(1));
        default_value(ru, "maxSurge", json!(0));
    }
    default_value(s, "revisionHistoryLimit", json!(10));
    template_at(obj, &["spec", "template"]);
}

/// `SetDefaults_Job` (with `JobPodReplacementPolicy` on, as in v1.33).
fn job(obj: &mut Value) {
    let s = spec(obj);
    if is_unset(s.get("completions")) && is_unset(s.get("parallelism")) {
        s.insert("completions".into(), json!(1));
        s.insert("parallelism".into(), json!(1));
    }
    default_value(s, "parallelism", json!(1));
    if is_unset(s.get("backoffLimit")) {
        let limit = if is_unset(s.get("backoffLimitPerIndex")) {
            6
        } else {
            i64::from(i32::MAX)
        };
        s.insert("backoffLimit".into(), json!(limit));
    }
    default_value(s, "completionMode", json!("NonIndexed"));
    default_value(s, "suspend", json!(false));
    let has_failure_policy = !is_unset(s.get("podFailurePolicy"));
    if let Some(rules) = s
        .get_mut("podFailurePolicy")
        .and_then(|p| p.get_mut("rules"))
        .and_then(Value::as_array_mut)
    {
        for rule in rules.iter_mut() {
            for pattern in array_mut(rule, "onPodConditions") {
                if let Some(p) = pattern.as_object_mut() {
                    default_str(p, "status", "True");
                }
            }
        }
    }
    default_value(
        s,
        "podReplacementPolicy",
        json!(if has_failure_policy {
            "Failed"
        } else {
            "TerminatingOrFailed"
        }),
    );
    let template_labels = s
        .get("template")
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned();
    if let (Some(labels), Some(m)) = (template_labels, obj.as_object_mut()) {
        let meta = child_obj(m, "metadata");
        if meta
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty)
        {
            meta.insert("labels".into(), Value::Object(labels));
        }
    }
    template_at(obj, &["spec", "template"]);
}

/// `SetDefaults_CronJob` (the job template gets pod defaults only, not Job defaults).
fn cron_job(obj: &mut Value) {
    let s = spec(obj);
    default_str(s, "concurrencyPolicy", "Allow");
    default_value(s, "suspend", json!(false));
    default_value(s, "successfulJobsHistoryLimit", json!(3));
    default_value(s, "failedJobsHistoryLimit", json!(1));
    template_at(obj, &["spec", "jobTemplate", "spec", "template"]);
}

/// `SetDefaults_HorizontalPodAutoscaler` (v2, with its behavior defaults; v1 only has the
/// replica floor, and reads back its CPU target from the stored v2 default metric).
fn hpa(version: &str, obj: &mut Value) {
    let s = spec(obj);
    default_value(s, "minReplicas", json!(1));
    if version == "v1" {
        default_value(s, "targetCPUUtilizationPercentage", json!(80));
        return;
    }
    if s.get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        s.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    if let Some(behavior) = s.get_mut("behavior").and_then(Value::as_object_mut) {
        let up = json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}]});
        let down = json!({"selectPolicy": "Max", "policies": [
            {"type": "Percent", "value": 100, "periodSeconds": 15}]});
        for (key, defaults) in [("scaleUp", up), ("scaleDown", down)] {
            let rules = child_obj(behavior, key);
            if let Value::Object(d) = defaults {
                for (k, v) in d {
                    default_value(rules, &k, v);
                }
            }
        }
    }
}

/// `SetDefaults_NetworkPolicy` and `SetDefaults_NetworkPolicyPort`.
fn network_policy(obj: &mut Value) {
    let s = spec(obj);
    for dir in ["ingress", "egress"] {
        if let Some(rules) = s.get_mut(dir).and_then(Value::as_array_mut) {
            for rule in rules.iter_mut() {
                for port in array_mut(rule, "ports") {
                    if let Some(p) = port.as_object_mut() {
                        default_value(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
    if s.get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        let has_egress = s
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|e| !e.is_empty());
        let types = if has_egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        s.insert("policyTypes".into(), types);
    }
}

/// `SetDefaults_RoleBinding` / `SetDefaults_ClusterRoleBinding` and `SetDefaults_Subject`.
fn role_binding(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    default_str(
        child_obj(m, "roleRef"),
        "apiGroup",
        "rbac.authorization.k8s.io",
    );
    if let Some(subjects) = m.get_mut("subjects").and_then(Value::as_array_mut) {
        for subject in subjects.iter_mut().filter_map(Value::as_object_mut) {
            let kind = subject.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind == "User" || kind == "Group" {
                default_str(subject, "apiGroup", "rbac.authorization.k8s.io");
            }
        }
    }
}

/// `SetDefaults_CSIDriver`.
fn csi_driver(obj: &mut Value) {
    let s = spec(obj);
    default_value(s, "attachRequired", json!(true));
    default_value(s, "podInfoOnMount", json!(false));
    default_value(s, "storageCapacity", json!(false));
    default_value(s, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
    if s.get("volumeLifecycleModes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        s.insert("volumeLifecycleModes".into(), json!(["Persistent"]));
    }
    default_value(s, "requiresRepublish", json!(false));
}

/// The admissionregistration/v1 webhook defaults.
fn webhooks(mutating: bool, obj: &mut Value) {
    for hook in array_mut(obj, "webhooks") {
        let Some(h) = hook.as_object_mut() else {
            continue;
        };
        default_value(h, "failurePolicy", json!("Fail"));
        default_value(h, "matchPolicy", json!("Equivalent"));
        default_value(h, "namespaceSelector", json!({}));
        default_value(h, "objectSelector", json!({}));
        default_value(h, "timeoutSeconds", json!(10));
        if mutating {
            default_value(h, "reinvocationPolicy", json!("Never"));
        }
        if let Some(rules) = h.get_mut("rules").and_then(Value::as_array_mut) {
            for rule in rules.iter_mut().filter_map(Value::as_object_mut) {
                default_value(rule, "scope", json!("*"));
            }
        }
        if let Some(svc) = h
            .get_mut("clientConfig")
            .and_then(|c| c.get_mut("service"))
            .and_then(Value::as_object_mut)
        {
            default_value(svc, "port", json!(443));
        }
    }
}
