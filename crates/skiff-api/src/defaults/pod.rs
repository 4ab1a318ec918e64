//! Pod and pod template defaults: `SetDefaults_Pod`, `SetDefaults_PodSpec` and what the
//! generated defaulters apply to containers, probes, volumes and resource lists, plus the
//! status the pod create strategy gives a new pod.

use serde_json::{json, Map, Value};

use super::{
    array_mut, canonical_quantity, canonical_resource_list, child_obj, default_nonzero,
    default_str, default_value, is_unset, pvc_spec,
};
use crate::validation::quantity::Quantity;

/// `SetObjectDefaults_Pod`: the pod-only defaults, then the spec's.
pub(super) fn pod(obj: &mut Value) {
    let host_network = obj.pointer("/spec/hostNetwork").and_then(Value::as_bool) == Some(true);
    let spec = super::spec(obj);
    // Requests default to limits on pods only (not on templates), per container.
    for key in ["containers", "initContainers"] {
        if let Some(list) = spec.get_mut(key).and_then(Value::as_array_mut) {
            for c in list.iter_mut() {
                requests_from_limits(c);
                if host_network {
                    for port in array_mut(c, "ports") {
                        let cp = port.get("containerPort").cloned();
                        if let (Some(p), Some(cp)) = (port.as_object_mut(), cp) {
                            if is_unset(p.get("hostPort"))
                                || p.get("hostPort").and_then(Value::as_i64) == Some(0)
                            {
                                p.insert("hostPort".into(), cp);
                            }
                        }
                    }
                }
            }
        }
    }
    default_value(spec, "enableServiceLinks", json!(true));
    if let Some(s) = obj.get_mut("spec") {
        pod_spec(s);
    }
}

fn requests_from_limits(c: &mut Value) {
    let Some(limits) = c
        .get("resources")
        .and_then(|r| r.get("limits"))
        .and_then(Value::as_object)
        .cloned()
    else {
        return;
    };
    let Some(cm) = c.as_object_mut() else { return };
    let requests = child_obj(child_obj(cm, "resources"), "requests");
    for (k, v) in limits {
        requests.entry(k).or_insert(v);
    }
}

/// `SetDefaults_PodSpec` and the generated walk over its volumes and containers.
pub(crate) fn pod_spec(spec: &mut Value) {
    let Some(s) = spec.as_object_mut() else {
        return;
    };
    default_str(s, "dnsPolicy", "ClusterFirst");
    default_str(s, "restartPolicy", "Always");
    default_value(s, "securityContext", json!({}));
    default_value(s, "terminationGracePeriodSeconds", json!(30));
    default_str(s, "schedulerName", "default-scheduler");
    if let Some(vols) = s.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols.iter_mut() {
            volume(v);
        }
    }
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(list) = s.get_mut(key).and_then(Value::as_array_mut) {
            for c in list.iter_mut() {
                container(c);
            }
        }
    }
    canonical_resource_list(s.get_mut("overhead"));
    if let Some(res) = s.get_mut("resources") {
        canonical_resource_list(res.get_mut("limits"));
        canonical_resource_list(res.get_mut("requests"));
    }
}

/// `SetDefaults_Container` and the defaults of its ports, env, resources, probes and hooks.
fn container(c: &mut Value) {
    let Some(m) = c.as_object_mut() else { return };
    let image = m
        .get("image")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    default_str(m, "imagePullPolicy", pull_policy_for(&image));
    default_str(m, "terminationMessagePath", "/dev/termination-log");
    default_str(m, "terminationMessagePolicy", "File");
    // Go always writes the (struct-typed) resources field, empty or not.
    let res = child_obj(m, "resources");
    canonical_resource_list(res.get_mut("limits"));
    canonical_resource_list(res.get_mut("requests"));
    if let Some(ports) = m.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            default_str(p, "protocol", "TCP");
        }
    }
    if let Some(env) = m.get_mut("env").and_then(Value::as_array_mut) {
        for e in env.iter_mut() {
            if let Some(fr) = e
                .pointer_mut("/valueFrom/fieldRef")
                .and_then(Value::as_object_mut)
            {
                default_str(fr, "apiVersion", "v1");
            }
            if let Some(rf) = e.pointer_mut("/valueFrom/resourceFieldRef") {
                canonical_quantity(rf.get_mut("divisor"));
            }
        }
    }
    for key in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = m.get_mut(key).and_then(Value::as_object_mut) {
            default_nonzero(p, "timeoutSeconds", 1);
            default_nonzero(p, "periodSeconds", 10);
            default_nonzero(p, "successThreshold", 1);
            default_nonzero(p, "failureThreshold", 3);
            handler(p);
        }
    }
    if let Some(lc) = m.get_mut("lifecycle").and_then(Value::as_object_mut) {
        for key in ["postStart", "preStop"] {
            if let Some(h) = lc.get_mut(key).and_then(Value::as_object_mut) {
                handler(h);
            }
        }
    }
}

/// `SetDefaults_HTTPGetAction` and the gRPC service default of a probe or hook handler.
fn handler(h: &mut Map<String, Value>) {
    if let Some(get) = h.get_mut("httpGet").and_then(Value::as_object_mut) {
        default_str(get, "path", "/");
        default_str(get, "scheme", "HTTP");
    }
    if let Some(grpc) = h.get_mut("grpc").and_then(Value::as_object_mut) {
        default_value(grpc, "service", json!(""));
    }
}

/// Upstream's image pull policy default: `Always` for `:latest` or an untagged, undigested
/// image; otherwise (including unparsable references) `IfNotPresent`.
pub(crate) fn pull_policy_for(image: &str) -> &'static str {
    if image_tag(image).as_deref() == Some("latest") {
        "Always"
    } else {
        "IfNotPresent"
    }
}

/// The tag `parsers.ParseImageName` finds: the explicit tag, `latest` when there is neither
/// tag nor digest, `None` when the reference does not parse.
fn image_tag(image: &str) -> Option<String> {
    if image.is_empty() || image.chars().any(char::is_whitespace) {
        return None;
    }
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if digest.is_some_and(|d| !d.contains(':')) {
        return None;
    }
    let last_slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    // Repository path components (after an optional registry host) must be lower case.
    let path = match repo.split_once('/') {
        Some((host, rest)) if host.contains('.') || host.contains(':') || host == "localhost" => {
            rest
        }
        _ => repo,
    };
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    if !path.split('/').all(component_ok) {
        return None;
    }
    if let Some(t) = tag {
        let tag_ok = !t.is_empty()
            && t.len() <= 128
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            && t.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
        return tag_ok.then(|| t.to_owned());
    }
    match digest {
        Some(_) => Some(String::new()),
        None => Some("latest".into()),
    }
}

/// `SetDefaults_Volume` and the defaults of each volume source.
fn volume(v: &mut Value) {
    let Some(m) = v.as_object_mut() else { return };
    const SOURCES: &[&str] = &[
        "hostPath",
        "emptyDir",
        "gcePersistentDisk",
        "awsElasticBlockStore",
        "gitRepo",
        "secret",
        "nfs",
        "iscsi",
        "glusterfs",
        "persistentVolumeClaim",
        "rbd",
        "flexVolume",
        "cinder",
        "cephfs",
        "flocker",
        "downwardAPI",
        "fc",
        "azureFile",
        "configMap",
        "vsphereVolume",
        "quobyte",
        "azureDisk",
        "photonPersistentDisk",
        "projected",
        "portworxVolume",
        "scaleIO",
        "storageos",
        "csi",
        "ephemeral",
        "image",
    ];
    if SOURCES.iter().all(|k| is_unset(m.get(*k))) {
        m.insert("emptyDir".into(), json!({}));
    }
    if let Some(ed) = m.get_mut("emptyDir").and_then(Value::as_object_mut) {
        canonical_quantity(ed.get_mut("sizeLimit"));
    }
    if let Some(hp) = m.get_mut("hostPath").and_then(Value::as_object_mut) {
        default_value(hp, "type", json!(""));
    }
    for key in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(src) = m.get_mut(key).and_then(Value::as_object_mut) {
            default_value(src, "defaultMode", json!(420));
        }
    }
    if let Some(items) = m
        .get_mut("downwardAPI")
        .and_then(|d| d.get_mut("items"))
        .and_then(Value::as_array_mut)
    {
        downward_items(items);
    }
    if let Some(sources) = m
        .get_mut("projected")
        .and_then(|p| p.get_mut("sources"))
        .and_then(Value::as_array_mut)
    {
        for src in sources.iter_mut() {
            if let Some(items) = src
                .pointer_mut("/downwardAPI/items")
                .and_then(Value::as_array_mut)
            {
                downward_items(items);
            }
            if let Some(t) = src
                .get_mut("serviceAccountToken")
                .and_then(Value::as_object_mut)
            {
                default_value(t, "expirationSeconds", json!(3600));
            }
        }
    }
    if let Some(iscsi) = m.get_mut("iscsi").and_then(Value::as_object_mut) {
        default_str(iscsi, "iscsiInterface", "default");
    }
    if let Some(rbd) = m.get_mut("rbd").and_then(Value::as_object_mut) {
        default_str(rbd, "pool", "rbd");
        default_str(rbd, "user", "admin");
        default_str(rbd, "keyring", "/etc/ceph/keyring");
    }
    if let Some(ad) = m.get_mut("azureDisk").and_then(Value::as_object_mut) {
        default_value(ad, "cachingMode", json!("ReadWrite"));
        default_value(ad, "kind", json!("Shared"));
        default_value(ad, "fsType", json!("ext4"));
        default_value(ad, "readOnly", json!(false));
    }
    if let Some(sio) = m.get_mut("scaleIO").and_then(Value::as_object_mut) {
        default_str(sio, "storageMode", "ThinProvisioned");
        default_str(sio, "fsType", "xfs");
    }
    if let Some(t) = m
        .get_mut("ephemeral")
        .and_then(|e| e.get_mut("volumeClaimTemplate"))
        .and_then(Value::as_object_mut)
    {
        pvc_spec(child_obj(t, "spec"));
    }
    if let Some(img) = m.get_mut("image").and_then(Value::as_object_mut) {
        let reference = img
            .get("reference")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        default_str(img, "pullPolicy", pull_policy_for(&reference));
    }
}

fn downward_items(items: &mut [Value]) {
    for item in items.iter_mut() {
        if let Some(fr) = item.get_mut("fieldRef").and_then(Value::as_object_mut) {
            default_str(fr, "apiVersion", "v1");
        }
        if let Some(rf) = item.get_mut("resourceFieldRef") {
            canonical_quantity(rf.get_mut("divisor"));
        }
    }
}

/// Upstream's pod create strategy: the status starts as `Pending` with the pod's QoS class
/// (and a `PodScheduled=False` condition while scheduling gates remain), and pod affinity
/// terms' `matchLabelKeys`/`mismatchLabelKeys` are merged into their label selectors.
pub fn pod_status_on_create(obj: &mut Value) {
    let qos = qos_class(obj);
    let gated = obj
        .pointer("/spec/schedulingGates")
        .and_then(Value::as_array)
        .is_some_and(|g| !g.is_empty());
    let mut status = json!({"phase": "Pending", "qosClass": qos});
    if gated {
        status["conditions"] = json!([{
            "type": "PodScheduled",
            "status": "False",
            "reason": "SchedulingGated",
            "message": "Scheduling is blocked due to non-empty scheduling gates",
        }]);
    }
    merge_affinity_label_keys(obj);
    if let Some(m) = obj.as_object_mut() {
        m.insert("status".into(), status);
    }
    super::fill_go_fields("", "v1", "Pod", obj);
}

/// `ComputePodQOS` over containers and init containers (cpu and memory only).
fn qos_class(pod: &Value) -> &'static str {
    let mut requests: Map<String, Value> = Map::new();
    let mut limits: Map<String, Value> = Map::new();
    let mut req_sum: std::collections::BTreeMap<String, i128> = Default::default();
    let mut lim_sum: std::collections::BTreeMap<String, i128> = Default::default();
    let mut guaranteed = true;
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    let containers = ["containers", "initContainers"].into_iter().flat_map(|k| {
        spec.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    });
    for c in containers {
        let res = c.get("resources").cloned().unwrap_or(Value::Null);
        for (name, q) in res
            .get("requests")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if name != "cpu" && name != "memory" {
                continue;
            }
            if let Ok(q) = Quantity::from_json(q) {
                if q.nanos > 0 {
                    *req_sum.entry(name.clone()).or_default() += q.nanos;
                    requests.insert(name.clone(), Value::Null);
                }
            }
        }
        let mut found = Vec::new();
        for (name, q) in res
            .get("limits")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            if name != "cpu" && name != "memory" {
                continue;
            }
            if let Ok(q) = Quantity::from_json(q) {
                if q.nanos > 0 {
                    found.push(name.clone());
                    *lim_sum.entry(name.clone()).or_default() += q.nanos;
                    limits.insert(name.clone(), Value::Null);
                }
            }
        }
        if !(found.iter().any(|n| n == "cpu") && found.iter().any(|n| n == "memory")) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed && req_sum.iter().any(|(name, r)| lim_sum.get(name) != Some(r)) {
        guaranteed = false;
    }
    if guaranteed && req_sum.len() == lim_sum.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// `mutatePodAffinity`: label keys become `In`/`NotIn` requirements on the pod's own labels.
fn merge_affinity_label_keys(pod: &mut Value) {
    let labels = pod
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for kind in ["podAffinity", "podAntiAffinity"] {
        let Some(aff) = pod.pointer_mut(&format!("/spec/affinity/{kind}")) else {
            continue;
        };
        for (list, nested) in [
            ("requiredDuringSchedulingIgnoredDuringExecution", false),
            ("preferredDuringSchedulingIgnoredDuringExecution", true),
        ] {
            for entry in array_mut(aff, list) {
                let term = if nested {
                    entry.get_mut("podAffinityTerm")
                } else {
                    Some(entry)
                };
                if let Some(term) = term {
                    apply_label_keys(term, &labels);
                }
            }
        }
    }
}

fn apply_label_keys(term: &mut Value, labels: &Map<String, Value>) {
    let keys = |k: &str| -> Vec<String> {
        term.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (matching, mismatching) = (keys("matchLabelKeys"), keys("mismatchLabelKeys"));
    if matching.is_empty() && mismatching.is_empty() {
        return;
    }
    let Some(sel) = term.get_mut("labelSelector").and_then(Value::as_object_mut) else {
        return;
    };
    let exprs = sel.entry("matchExpressions").or_insert_with(|| json!([]));
    let Some(exprs) = exprs.as_array_mut() else {
        return;
    };
    for (list, op) in [(matching, "In"), (mismatching, "NotIn")] {
        for key in list {
            if let Some(value) = labels.get(&key) {
                exprs.push(json!({"key": key, "operator": op, "values": [value]}));
            }
        }
    }
}
