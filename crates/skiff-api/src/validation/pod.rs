//! Pods and pod templates, as upstream's `ValidatePodSpec` and friends
//! (pkg/apis/core/validation/validation.go), in upstream's order so the cause list reads the
//! same. The v1 JSON shape is validated directly: `hostNetwork`, `hostPID` and friends live
//! in the spec here, where upstream's internal type keeps them in the security context.

use std::collections::{BTreeMap, HashSet};

use serde_json::{Map, Value};

use super::field::{
    self, arr, boolean, duplicate, forbidden, go_quote, int, invalid, not_found, not_supported,
    obj, required, s, set, Path, V,
};
use super::meta;
use super::names::{self, NameRule};
use super::quantity::Quantity;
use crate::status::Cause;

const FILE_MODE_ERROR: &str = "must be a number between 0 and 0777 (octal), both inclusive";

/// Which kind of object the pod spec sits in.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Opts {
    /// The spec is a Pod's (not a template's): host ports must equal container ports.
    pub(crate) resource_is_pod: bool,
}

/// The volumes a spec defines (name -> source), for mounts to refer to.
type Volumes<'a> = BTreeMap<String, &'a Value>;

/// `ValidatePodSpec`.
pub(crate) fn pod_spec(
    spec: &Value,
    pod_name: Option<&str>,
    path: &Path,
    opts: Opts,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    if set(spec, "terminationGracePeriodSeconds").is_none() {
        errs.push(required(&path.child("terminationGracePeriodSeconds"), ""));
    }
    let grace = int(spec, "terminationGracePeriodSeconds");
    let host_users = boolean(field::field(spec, "securityContext"), "hostUsers")
        .or_else(|| boolean(spec, "hostUsers"))
        .unwrap_or(true);
    let (vols, verrs) = volumes(arr(spec, "volumes"), pod_name, &path.child("volumes"), opts);
    errs.extend(verrs);
    let claim_names: HashSet<&str> = arr(spec, "resourceClaims")
        .iter()
        .map(|c| s(c, "name"))
        .filter(|n| !n.is_empty())
        .collect();
    errs.extend(resource_claims(
        arr(spec, "resourceClaims"),
        &path.child("resourceClaims"),
    ));
    let restart = s(spec, "restartPolicy");
    let ctx = Ctx {
        vols: &vols,
        claims: &claim_names,
        grace,
        restart,
        host_users,
    };
    errs.extend(containers(
        arr(spec, "containers"),
        &ctx,
        &path.child("containers"),
    ));
    errs.extend(init_containers(
        arr(spec, "initContainers"),
        arr(spec, "containers"),
        &ctx,
        &path.child("initContainers"),
    ));
    errs.extend(ephemeral_containers(
        spec,
        &ctx,
        &path.child("ephemeralContainers"),
    ));
    errs.extend(host_network_deps(spec, path, opts));
    errs.extend(restart_policy(restart, &path.child("restartPolicy")));
    errs.extend(dns_policy(s(spec, "dnsPolicy"), &path.child("dnsPolicy")));
    errs.extend(meta::labels(
        obj(spec, "nodeSelector"),
        &path.child("nodeSelector"),
    ));
    errs.extend(pod_security_context(spec, &path.child("securityContext")));
    for (i, secret) in arr(spec, "imagePullSecrets").iter().enumerate() {
        if secret
            .as_object()
            .is_some_and(|o| o.keys().any(|k| k != "name"))
        {
            errs.push(invalid(
                &path.child("imagePullSecrets").index(i),
                V::Raw(format!(
                    "core.LocalObjectReference{{Name:{}}}",
                    go_quote(s(secret, "name"))
                )),
                "only name may be set",
            ));
        }
    }
    if let Some(aff) = set(spec, "affinity") {
        errs.extend(affinity(aff, &path.child("affinity")));
    }
    errs.extend(dns_config(
        set(spec, "dnsConfig"),
        s(spec, "dnsPolicy"),
        &path.child("dnsConfig"),
    ));
    for (i, gate) in arr(spec, "readinessGates").iter().enumerate() {
        errs.extend(meta::qualified_name(
            s(gate, "conditionType"),
            &path.child("readinessGates").index(i).child("conditionType"),
        ));
    }
    let mut seen = HashSet::new();
    for (i, gate) in arr(spec, "schedulingGates").iter().enumerate() {
        let p = path.child("schedulingGates").index(i);
        let name = s(gate, "name");
        errs.extend(meta::qualified_name(name, &p));
        if !seen.insert(name) {
            errs.push(duplicate(&p, V::s(name)));
        }
    }
    errs.extend(topology_spread(
        arr(spec, "topologySpreadConstraints"),
        &path.child("topologySpreadConstraints"),
    ));
    if !host_users {
        for (key, child) in [
            ("hostNetwork", "hostNetwork"),
            ("hostPID", "HostPID"),
            ("hostIPC", "HostIPC"),
        ] {
            if boolean(spec, key) == Some(true) {
                errs.push(forbidden(
                    &path.child(child),
                    "when `pod.Spec.HostUsers` is false",
                ));
            }
        }
    }
    for (key, rule) in [
        ("serviceAccountName", NameRule::Subdomain),
        ("nodeName", NameRule::Subdomain),
    ] {
        let v = s(spec, key);
        if !v.is_empty() {
            for msg in names::check_name(rule, v, false) {
                errs.push(invalid(&path.child(key), V::s(v), &msg));
            }
        }
    }
    if let Some(ads) = int(spec, "activeDeadlineSeconds") {
        if !(1..=i64::from(i32::MAX)).contains(&ads) {
            errs.push(invalid(
                &path.child("activeDeadlineSeconds"),
                V::I(ads),
                &names::inclusive_range_error(1, i64::from(i32::MAX)),
            ));
        }
    }
    for key in ["hostname", "subdomain"] {
        let v = s(spec, key);
        if !v.is_empty() {
            errs.extend(dns_label(v, &path.child(key)));
        }
    }
    errs.extend(tolerations(
        arr(spec, "tolerations"),
        &path.child("tolerations"),
    ));
    for (i, alias) in arr(spec, "hostAliases").iter().enumerate() {
        let p = path.child("hostAliases").index(i);
        errs.extend(ip(s(alias, "ip"), &p.child("ip")));
        for (j, host) in arr(alias, "hostnames").iter().enumerate() {
            errs.extend(dns_subdomain(
                host.as_str().unwrap_or(""),
                &p.child("hostnames").index(j),
            ));
        }
    }
    let pcn = s(spec, "priorityClassName");
    if !pcn.is_empty() {
        for msg in names::dns1123_subdomain(pcn) {
            errs.push(invalid(&path.child("priorityClassName"), V::s(pcn), &msg));
        }
    }
    if let Some(rc) = spec.get("runtimeClassName").and_then(Value::as_str) {
        errs.extend(dns_subdomain(rc, &path.child("runtimeClassName")));
    }
    if let Some(pp) = spec.get("preemptionPolicy").and_then(Value::as_str) {
        let p = path.child("preemptionPolicy");
        match pp {
            "PreemptLowerPriority" | "Never" => {}
            "" => errs.push(required(&p, "")),
            other => errs.push(not_supported(
                &p,
                V::s(other),
                &["PreemptLowerPriority", "Never"],
            )),
        }
    }
    if let Some(overhead) = obj(spec, "overhead") {
        errs.extend(resource_requirements(
            Some(overhead),
            None,
            &[],
            &HashSet::new(),
            &path.child("overhead"),
        ));
    }
    if let Some(os) = set(spec, "os") {
        let name = s(os, "name");
        if name.is_empty() {
            errs.push(required(&path.child("os").child("name"), "cannot be empty"));
        } else if name != "linux" && name != "windows" {
            errs.push(not_supported(
                &path.child("os"),
                V::s(name),
                &["linux", "windows"],
            ));
        } else if name == "linux" {
            let forbid = "windows options cannot be set for a linux pod";
            if set(field::field(spec, "securityContext"), "windowsOptions").is_some() {
                errs.push(forbidden(
                    &path.child("securityContext").child("windowsOptions"),
                    forbid,
                ));
            }
            visit_containers(spec, path, |c, p| {
                if set(field::field(c, "securityContext"), "windowsOptions").is_some() {
                    errs.push(forbidden(
                        &p.child("securityContext").child("windowsOptions"),
                        forbid,
                    ));
                }
            });
        }
    }
    errs
}

/// Calls `f` for every init, regular and ephemeral container with its path (upstream's
/// `VisitContainersWithPath` order).
fn visit_containers(spec: &Value, path: &Path, mut f: impl FnMut(&Value, &Path)) {
    for key in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, c) in arr(spec, key).iter().enumerate() {
            f(c, &path.child(key).index(i));
        }
    }
}

fn dns_label(v: &str, path: &Path) -> Vec<Cause> {
    names::dns1123_label(v)
        .into_iter()
        .map(|m| invalid(path, V::s(v), &m))
        .collect()
}

fn dns_subdomain(v: &str, path: &Path) -> Vec<Cause> {
    names::dns1123_subdomain(v)
        .into_iter()
        .map(|m| invalid(path, V::s(v), &m))
        .collect()
}

fn ip(v: &str, path: &Path) -> Vec<Cause> {
    names::ip_problems(v)
        .into_iter()
        .map(|m| invalid(path, V::s(v), &m))
        .collect()
}

/// Context shared by the container checks of one spec.
struct Ctx<'a> {
    vols: &'a Volumes<'a>,
    claims: &'a HashSet<&'a str>,
    grace: Option<i64>,
    restart: &'a str,
    host_users: bool,
}

/// `validateContainers`.
fn containers(list: &[Value], ctx: &Ctx, path: &Path) -> Vec<Cause> {
    if list.is_empty() {
        return vec![required(path, "")];
    }
    let mut errs = Vec::new();
    let mut names_seen = HashSet::new();
    for (i, c) in list.iter().enumerate() {
        let p = path.index(i);
        errs.extend(container_common(c, ctx, &p));
        let name = s(c, "name");
        if !names_seen.insert(name) {
            errs.push(duplicate(&p.child("name"), V::s(name)));
        }
        if let Some(lc) = set(c, "lifecycle") {
            errs.extend(lifecycle(lc, ctx.grace, &p.child("lifecycle")));
        }
        errs.extend(liveness_or_startup(
            set(c, "livenessProbe"),
            ctx.grace,
            &p.child("livenessProbe"),
        ));
        errs.extend(readiness(
            set(c, "readinessProbe"),
            ctx.grace,
            &p.child("readinessProbe"),
        ));
        errs.extend(liveness_or_startup(
            set(c, "startupProbe"),
            ctx.grace,
            &p.child("startupProbe"),
        ));
        if set(c, "restartPolicy").is_some() {
            errs.push(forbidden(
                &p.child("restartPolicy"),
                "may not be set for non-init containers",
            ));
        }
    }
    errs.extend(host_port_conflicts(list, path));
    errs
}

/// `validateInitContainers`.
fn init_containers(list: &[Value], regular: &[Value], ctx: &Ctx, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut all: HashSet<&str> = regular.iter().map(|c| s(c, "name")).collect();
    for (i, c) in list.iter().enumerate() {
        let p = path.index(i);
        errs.extend(container_common(c, ctx, &p));
        let mut restart_always = false;
        if let Some(rp) = c.get("restartPolicy").and_then(Value::as_str) {
            if rp == "Always" {
                restart_always = true;
            } else {
                errs.push(not_supported(
                    &p.child("restartPolicy"),
                    V::s(rp),
                    &["Always"],
                ));
            }
        }
        let name = s(c, "name");
        if all.contains(name) {
            errs.push(duplicate(&p.child("name"), V::s(name)));
        } else if !name.is_empty() {
            all.insert(name);
        }
        errs.extend(host_port_conflicts(std::slice::from_ref(c), path));
        if restart_always {
            if let Some(lc) = set(c, "lifecycle") {
                errs.extend(lifecycle(lc, ctx.grace, &p.child("lifecycle")));
            }
            errs.extend(liveness_or_startup(
                set(c, "livenessProbe"),
                ctx.grace,
                &p.child("livenessProbe"),
            ));
            errs.extend(readiness(
                set(c, "readinessProbe"),
                ctx.grace,
                &p.child("readinessProbe"),
            ));
            errs.extend(liveness_or_startup(
                set(c, "startupProbe"),
                ctx.grace,
                &p.child("startupProbe"),
            ));
        } else {
            for key in [
                "lifecycle",
                "livenessProbe",
                "readinessProbe",
                "startupProbe",
            ] {
                if set(c, key).is_some() {
                    errs.push(forbidden(
                        &p.child(key),
                        "may not be set for init containers without restartPolicy=Always",
                    ));
                }
            }
        }
    }
    errs
}

/// Ephemeral containers: names unique across all containers, targets existing, and the
/// fields upstream does not allow them.
fn ephemeral_containers(spec: &Value, ctx: &Ctx, path: &Path) -> Vec<Cause> {
    let list = arr(spec, "ephemeralContainers");
    let mut errs = Vec::new();
    if list.is_empty() {
        return errs;
    }
    let others: HashSet<&str> = arr(spec, "containers")
        .iter()
        .chain(arr(spec, "initContainers"))
        .map(|c| s(c, "name"))
        .collect();
    let mut all = others.clone();
    for (i, c) in list.iter().enumerate() {
        let p = path.index(i);
        errs.extend(container_common(c, ctx, &p));
        errs.extend(container_only_for_pod(c, &p));
        let name = s(c, "name");
        if all.contains(name) {
            errs.push(duplicate(&p.child("name"), V::s(name)));
        } else {
            all.insert(name);
        }
        let target = s(c, "targetContainerName");
        if !target.is_empty() && !others.contains(target) {
            errs.push(not_found(&p.child("targetContainerName"), V::s(target), ""));
        }
        for key in [
            "ports",
            "resources",
            "resizePolicy",
            "lifecycle",
            "livenessProbe",
            "readinessProbe",
            "startupProbe",
            "restartPolicy",
        ] {
            let nonzero = match set(c, key) {
                Some(Value::Object(o)) => !o.is_empty(),
                Some(Value::Array(a)) => !a.is_empty(),
                Some(_) => true,
                None => false,
            };
            if nonzero {
                errs.push(forbidden(
                    &p.child(key),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
        for (j, vm) in arr(c, "volumeMounts").iter().enumerate() {
            for key in ["subPath", "subPathExpr"] {
                if !s(vm, key).is_empty() {
                    errs.push(forbidden(
                        &p.child("volumeMounts").index(j).child(key),
                        "cannot be set for an Ephemeral Container",
                    ));
                }
            }
        }
    }
    errs
}

/// `validateContainerCommon`.
fn container_common(c: &Value, ctx: &Ctx, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let name = s(c, "name");
    if name.is_empty() {
        errs.push(required(&path.child("name"), ""));
    } else {
        errs.extend(dns_label(name, &path.child("name")));
    }
    if s(c, "image").is_empty() {
        errs.push(required(&path.child("image"), ""));
    }
    match s(c, "terminationMessagePolicy") {
        "File" | "FallbackToLogsOnError" => {}
        "" => errs.push(required(&path.child("terminationMessagePolicy"), "")),
        other => errs.push(not_supported(
            &path.child("terminationMessagePolicy"),
            V::s(other),
            &["File", "FallbackToLogsOnError"],
        )),
    }
    let mount_map: BTreeMap<&str, &str> = arr(c, "volumeMounts")
        .iter()
        .map(|m| (s(m, "name"), s(m, "mountPath")))
        .collect();
    let device_map: BTreeMap<&str, &str> = arr(c, "volumeDevices")
        .iter()
        .map(|d| (s(d, "name"), s(d, "devicePath")))
        .collect();
    errs.extend(container_ports(arr(c, "ports"), &path.child("ports")));
    errs.extend(env(arr(c, "env"), &path.child("env")));
    errs.extend(env_from(arr(c, "envFrom"), &path.child("envFrom")));
    errs.extend(volume_mounts(
        c,
        &device_map,
        ctx.vols,
        &path.child("volumeMounts"),
    ));
    errs.extend(volume_devices(
        arr(c, "volumeDevices"),
        &mount_map,
        ctx.vols,
        &path.child("volumeDevices"),
    ));
    errs.extend(pull_policy(
        s(c, "imagePullPolicy"),
        &path.child("imagePullPolicy"),
    ));
    let res = field::field(c, "resources");
    errs.extend(resource_requirements(
        obj(res, "limits"),
        obj(res, "requests"),
        arr(res, "claims"),
        ctx.claims,
        &path.child("resources"),
    ));
    errs.extend(resize_policy(
        arr(c, "resizePolicy"),
        ctx.restart,
        &path.child("resizePolicy"),
    ));
    if let Some(sc) = set(c, "securityContext") {
        errs.extend(security_context(
            sc,
            &path.child("securityContext"),
            ctx.host_users,
        ));
    }
    errs
}

/// `validatePullPolicy`.
pub(crate) fn pull_policy(policy: &str, path: &Path) -> Vec<Cause> {
    match policy {
        "Always" | "IfNotPresent" | "Never" => Vec::new(),
        "" => vec![required(path, "")],
        other => vec![not_supported(
            path,
            V::s(other),
            &["Always", "IfNotPresent", "Never"],
        )],
    }
}

/// `validateContainerOnlyForPod`.
fn container_only_for_pod(c: &Value, path: &Path) -> Vec<Cause> {
    let image = s(c, "image");
    if image.trim() != image {
        vec![invalid(
            &path.child("image"),
            V::s(image),
            "must not have leading or trailing whitespace",
        )]
    } else {
        Vec::new()
    }
}

/// `validateContainerPorts`.
fn container_ports(ports: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut names_seen = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        let name = s(port, "name");
        if !name.is_empty() {
            let msgs = names::port_name(name);
            if !msgs.is_empty() {
                for m in msgs {
                    errs.push(invalid(&p.child("name"), V::s(name), &m));
                }
            } else if !names_seen.insert(name) {
                errs.push(duplicate(&p.child("name"), V::s(name)));
            }
        }
        let cp = int(port, "containerPort").unwrap_or(0);
        if cp == 0 {
            errs.push(required(&p.child("containerPort"), ""));
        } else {
            for m in names::port_num(cp) {
                errs.push(invalid(&p.child("containerPort"), V::I(cp), &m));
            }
        }
        let hp = int(port, "hostPort").unwrap_or(0);
        if hp != 0 {
            for m in names::port_num(hp) {
                errs.push(invalid(&p.child("hostPort"), V::I(hp), &m));
            }
        }
        errs.extend(protocol(s(port, "protocol"), &p.child("protocol")));
    }
    errs
}

/// A port protocol: required, and one of upstream's supported ones.
pub(crate) fn protocol(proto: &str, path: &Path) -> Vec<Cause> {
    match proto {
        "TCP" | "UDP" | "SCTP" => Vec::new(),
        "" => vec![required(path, "")],
        other => vec![not_supported(path, V::s(other), &["SCTP", "TCP", "UDP"])],
    }
}

/// `AccumulateUniqueHostPorts` over the given containers.
fn host_port_conflicts(list: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut seen = HashSet::new();
    for (ci, c) in list.iter().enumerate() {
        for (pi, port) in arr(c, "ports").iter().enumerate() {
            let hp = int(port, "hostPort").unwrap_or(0);
            if hp == 0 {
                continue;
            }
            let key = format!("{}/{}/{hp}", s(port, "protocol"), s(port, "hostIP"));
            if !seen.insert(key.clone()) {
                errs.push(duplicate(
                    &path.index(ci).child("ports").index(pi).child("hostPort"),
                    V::S(key),
                ));
            }
        }
    }
    errs
}

/// `ValidateEnv`.
fn env(vars: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, ev) in vars.iter().enumerate() {
        let p = path.index(i);
        let name = s(ev, "name");
        if name.is_empty() {
            errs.push(required(&p.child("name"), ""));
        } else {
            for m in names::relaxed_env_var_name(name) {
                errs.push(invalid(&p.child("name"), V::s(name), &m));
            }
        }
        if let Some(vf) = set(ev, "valueFrom") {
            errs.extend(env_value_from(vf, s(ev, "value"), &p.child("valueFrom")));
        }
    }
    errs
}

const ENV_FIELD_PATHS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.hostIPs",
    "status.podIP",
    "status.podIPs",
];
const VOLUME_FIELD_PATHS: &[&str] = &[
    "metadata.annotations",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
];
const RESOURCE_FIELD_PATHS: &[&str] = &[
    "limits.cpu",
    "limits.ephemeral-storage",
    "limits.memory",
    "requests.cpu",
    "requests.ephemeral-storage",
    "requests.memory",
];

fn env_value_from(vf: &Value, value: &str, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut sources = 0;
    if let Some(fr) = set(vf, "fieldRef") {
        sources += 1;
        errs.extend(object_field_selector(
            fr,
            ENV_FIELD_PATHS,
            &path.child("fieldRef"),
        ));
    }
    if let Some(rr) = set(vf, "resourceFieldRef") {
        sources += 1;
        errs.extend(resource_field_selector(
            rr,
            false,
            &path.child("resourceFieldRef"),
        ));
    }
    for (key, child) in [
        ("configMapKeyRef", "configMapKeyRef"),
        ("secretKeyRef", "secretKeyRef"),
    ] {
        if let Some(kr) = set(vf, key) {
            sources += 1;
            let p = path.child(child);
            let name = s(kr, "name");
            for m in names::dns1123_subdomain(name) {
                errs.push(invalid(&p.child("name"), V::s(name), &m));
            }
            let k = s(kr, "key");
            if k.is_empty() {
                errs.push(required(&p.child("key"), ""));
            } else {
                for m in names::config_map_key(k) {
                    errs.push(invalid(&p.child("key"), V::s(k), &m));
                }
            }
        }
    }
    if sources == 0 {
        errs.push(invalid(
            path,
            V::s(""),
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        ));
    } else if !value.is_empty() {
        errs.push(invalid(
            path,
            V::s(""),
            "may not be specified when `value` is not empty",
        ));
    } else if sources > 1 {
        errs.push(invalid(
            path,
            V::s(""),
            "may not have more than one field specified at a time",
        ));
    }
    errs
}

/// `validateObjectFieldSelector` (with the downward API's v1 field label conversion).
fn object_field_selector(fs: &Value, allowed: &[&str], path: &Path) -> Vec<Cause> {
    let api_version = s(fs, "apiVersion");
    if api_version.is_empty() {
        return vec![required(&path.child("apiVersion"), "")];
    }
    let fp = s(fs, "fieldPath");
    if fp.is_empty() {
        return vec![required(&path.child("fieldPath"), "")];
    }
    let conversion_error = if api_version != "v1" {
        Some(format!("unsupported pod version: {api_version}"))
    } else if let Some((p, _)) = split_subscript(fp) {
        (p != "metadata.annotations" && p != "metadata.labels")
            .then(|| format!("field label does not support subscript: {fp}"))
    } else {
        let supported = [
            "metadata.annotations",
            "metadata.labels",
            "metadata.name",
            "metadata.namespace",
            "metadata.uid",
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.serviceAccountName",
            "spec.schedulerName",
            "status.phase",
            "status.hostIP",
            "status.hostIPs",
            "status.podIP",
            "status.podIPs",
        ];
        (!supported.contains(&fp)).then(|| format!("field label not supported: {fp}"))
    };
    if let Some(e) = conversion_error {
        return vec![invalid(
            &path.child("fieldPath"),
            V::s(fp),
            &format!("error converting fieldPath: {e}"),
        )];
    }
    if let Some((p, sub)) = split_subscript(fp) {
        return match p {
            "metadata.annotations" => meta::qualified_name(&sub.to_lowercase(), path),
            "metadata.labels" => meta::qualified_name(sub, path),
            other => vec![invalid(path, V::s(other), "does not support subscript")],
        };
    }
    if !allowed.contains(&fp) {
        return vec![not_supported(&path.child("fieldPath"), V::s(fp), allowed)];
    }
    Vec::new()
}

/// `fieldpath.SplitMaybeSubscriptedPath`: `metadata.labels['key']` -> (`metadata.labels`, `key`).
fn split_subscript(fp: &str) -> Option<(&str, &str)> {
    let inner = fp.strip_suffix("']")?;
    let (p, sub) = inner.split_once("['")?;
    Some((p, sub))
}

fn resource_field_selector(rf: &Value, volume: bool, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let resource = s(rf, "resource");
    if volume && s(rf, "containerName").is_empty() {
        errs.push(required(&path.child("containerName"), ""));
    } else if resource.is_empty() {
        errs.push(required(&path.child("resource"), ""));
    } else if !RESOURCE_FIELD_PATHS.contains(&resource)
        && !resource.starts_with("requests.hugepages-")
        && !resource.starts_with("limits.hugepages-")
    {
        errs.push(not_supported(
            &path.child("resource"),
            V::s(resource),
            RESOURCE_FIELD_PATHS,
        ));
    }
    if let Some(d) = set(rf, "divisor") {
        if let Ok(q) = Quantity::from_json(d) {
            if !q.is_zero() {
                let canon = q.canonical();
                let mem_like = [
                    "1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi",
                    "1Ei",
                ];
                let detail = match resource {
                    "limits.cpu" | "requests.cpu" if !["1m", "1"].contains(&canon.as_str()) => {
                        Some("only divisor's values 1m and 1 are supported with the cpu resource")
                    }
                    "limits.memory" | "requests.memory" if !mem_like.contains(&canon.as_str()) => {
                        Some("only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the memory resource")
                    }
                    "limits.ephemeral-storage" | "requests.ephemeral-storage" if !mem_like.contains(&canon.as_str()) => {
                        Some("only divisor's values 1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei are supported with the local ephemeral storage resource")
                    }
                    _ => None,
                };
                if let Some(d) = detail {
                    errs.push(invalid(&path.child("divisor"), V::s(resource), d));
                }
            }
        }
    }
    errs
}

/// `ValidateEnvFrom`.
fn env_from(list: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, ev) in list.iter().enumerate() {
        let p = path.index(i);
        let prefix = s(ev, "prefix");
        if !prefix.is_empty() {
            for m in names::relaxed_env_var_name(prefix) {
                errs.push(invalid(&p.child("prefix"), V::s(prefix), &m));
            }
        }
        let mut sources = 0;
        for key in ["configMapRef", "secretRef"] {
            if let Some(r) = set(ev, key) {
                sources += 1;
                let name = s(r, "name");
                let np = p.child(key).child("name");
                if name.is_empty() {
                    errs.push(required(&np, ""));
                } else {
                    for m in names::check_name(NameRule::Subdomain, name, true) {
                        errs.push(invalid(&np, V::s(name), &m));
                    }
                }
            }
        }
        if sources == 0 {
            errs.push(invalid(
                path,
                V::s(""),
                "must specify one of: `configMapRef` or `secretRef`",
            ));
        } else if sources > 1 {
            errs.push(invalid(
                path,
                V::s(""),
                "may not have more than one field specified at a time",
            ));
        }
    }
    errs
}

/// `ValidateVolumeMounts`.
fn volume_mounts(
    c: &Value,
    devices: &BTreeMap<&str, &str>,
    vols: &Volumes,
    path: &Path,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut mount_points = HashSet::new();
    let privileged = boolean(field::field(c, "securityContext"), "privileged") == Some(true);
    for (i, m) in arr(c, "volumeMounts").iter().enumerate() {
        let p = path.index(i);
        let name = s(m, "name");
        let mount_path = s(m, "mountPath");
        if name.is_empty() {
            errs.push(required(&p.child("name"), ""));
        }
        if !vols.contains_key(name) {
            errs.push(not_found(&p.child("name"), V::s(name), ""));
        }
        if mount_path.is_empty() {
            errs.push(required(&p.child("mountPath"), ""));
        }
        if !mount_points.insert(mount_path) {
            errs.push(invalid(
                &p.child("mountPath"),
                V::s(mount_path),
                "must be unique",
            ));
        }
        if devices.contains_key(name) {
            errs.push(invalid(
                &p.child("name"),
                V::s(name),
                "must not already exist in volumeDevices",
            ));
        }
        if devices.values().any(|d| *d == mount_path) {
            errs.push(invalid(
                &p.child("mountPath"),
                V::s(mount_path),
                "must not already exist as a path in volumeDevices",
            ));
        }
        let sub_path = s(m, "subPath");
        let sub_expr = s(m, "subPathExpr");
        if vols.get(name).is_some_and(|v| set(v, "image").is_some()) {
            if !sub_path.is_empty() {
                errs.push(invalid(
                    &p.child("subPath"),
                    V::s(sub_path),
                    "not allowed in image volume sources",
                ));
            }
            if !sub_expr.is_empty() {
                errs.push(invalid(
                    &p.child("subPathExpr"),
                    V::s(sub_expr),
                    "not allowed in image volume sources",
                ));
            }
        }
        // Upstream reports sub-path problems under the list's path, not the item's.
        if !sub_path.is_empty() {
            errs.extend(local_descending_path(sub_path, &path.child("subPath")));
        }
        if !sub_expr.is_empty() {
            if !sub_path.is_empty() {
                errs.push(invalid(
                    &p.child("subPathExpr"),
                    V::s(sub_expr),
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            errs.extend(local_descending_path(sub_expr, &path.child("subPathExpr")));
        }
        if let Some(mp) = m.get("mountPropagation").and_then(Value::as_str) {
            let pp = path.child("mountPropagation");
            if !["Bidirectional", "HostToContainer", "None"].contains(&mp) {
                errs.push(not_supported(
                    &pp,
                    V::s(mp),
                    &["Bidirectional", "HostToContainer", "None"],
                ));
            }
            if mp == "Bidirectional" && !privileged {
                errs.push(forbidden(
                    &pp,
                    "Bidirectional mount propagation is available only to privileged containers",
                ));
            }
        }
        if let Some(rro) = m.get("recursiveReadOnly").and_then(Value::as_str) {
            let rp = path.child("recursiveReadOnly");
            match rro {
                "Disabled" => {}
                "Enabled" | "IfPossible" => {
                    if boolean(m, "readOnly") != Some(true) {
                        errs.push(forbidden(
                            &rp,
                            "may only be specified when readOnly is true",
                        ));
                    }
                    if m.get("mountPropagation")
                        .and_then(Value::as_str)
                        .is_some_and(|p| p != "None")
                    {
                        errs.push(forbidden(
                            &rp,
                            "may only be specified when mountPropagation is None or not specified",
                        ));
                    }
                }
                other => errs.push(not_supported(
                    &rp,
                    V::s(other),
                    &["Disabled", "Enabled", "IfPossible"],
                )),
            }
        }
    }
    errs
}

/// `ValidateVolumeDevices`.
fn volume_devices(
    list: &[Value],
    mounts: &BTreeMap<&str, &str>,
    vols: &Volumes,
    path: &Path,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut paths = HashSet::new();
    let mut names_seen = HashSet::new();
    for (i, d) in list.iter().enumerate() {
        let p = path.index(i);
        let name = s(d, "name");
        let dev_path = s(d, "devicePath");
        let source = vols.get(name);
        let is_pvc = source.is_some_and(|v| {
            set(v, "persistentVolumeClaim").is_some() || set(v, "ephemeral").is_some()
        });
        if name.is_empty() {
            errs.push(required(&p.child("name"), ""));
        }
        if names_seen.contains(name) {
            errs.push(invalid(&p.child("name"), V::s(name), "must be unique"));
        }
        if source.is_some() && !is_pvc {
            errs.push(invalid(
                &p.child("name"),
                V::s(name),
                "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode",
            ));
        }
        if source.is_none() {
            errs.push(not_found(&p.child("name"), V::s(name), ""));
        }
        if dev_path.is_empty() {
            errs.push(required(&p.child("devicePath"), ""));
        }
        if paths.contains(dev_path) {
            errs.push(invalid(
                &p.child("devicePath"),
                V::s(dev_path),
                "must be unique",
            ));
        }
        if !dev_path.is_empty() && dev_path.split('/').any(|x| x == "..") {
            errs.push(invalid(
                &p.child("devicePath"),
                V::s(dev_path),
                "can not contain backsteps ('..')",
            ));
        } else {
            paths.insert(dev_path);
        }
        if mounts.contains_key(name) {
            errs.push(invalid(
                &p.child("name"),
                V::s(name),
                "must not already exist in volumeMounts",
            ));
        }
        if mounts.values().any(|m| *m == dev_path) {
            errs.push(invalid(
                &p.child("devicePath"),
                V::s(dev_path),
                "must not already exist as a path in volumeMounts",
            ));
        }
        if !name.is_empty() {
            names_seen.insert(name);
        }
    }
    errs
}

/// `validateLocalDescendingPath`.
fn local_descending_path(p: &str, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if p.starts_with('/') {
        errs.push(invalid(path, V::s(p), "must be a relative path"));
    }
    errs.extend(no_backsteps(p, path));
    errs
}

/// `validatePathNoBacksteps`.
fn no_backsteps(p: &str, path: &Path) -> Vec<Cause> {
    if p.split('/').any(|x| x == "..") {
        vec![invalid(path, V::s(p), "must not contain '..'")]
    } else {
        Vec::new()
    }
}

/// `ValidateLocalNonReservedPath`.
fn local_non_reserved_path(p: &str, path: &Path) -> Vec<Cause> {
    let mut errs = local_descending_path(p, path);
    if p.starts_with("..") && !p.starts_with("../") {
        errs.push(invalid(path, V::s(p), "must not start with '..'"));
    }
    errs
}

/// Checks of one resource list entry's name for containers (`validateContainerResourceName`).
fn container_resource_name(name: &str, path: &Path) -> Vec<Cause> {
    let mut errs: Vec<Cause> = names::qualified_name(name)
        .into_iter()
        .map(|m| invalid(path, V::s(name), &m))
        .collect();
    // `validateResourceName` stops at its first problem; the container check then adds its own.
    if errs.is_empty() && !name.contains('/') && !is_standard_resource_name(name) {
        errs.push(invalid(
            path,
            V::s(name),
            "must be a standard resource type or fully qualified",
        ));
    }
    if !name.contains('/') {
        if !is_standard_container_resource(name) {
            errs.push(invalid(
                path,
                V::s(name),
                "must be a standard resource for containers",
            ));
        }
    } else if !is_native_resource(name) && !is_extended_resource(name) {
        errs.push(invalid(
            path,
            V::s(name),
            "doesn't follow extended resource name standard",
        ));
    }
    errs
}

fn is_standard_resource_name(name: &str) -> bool {
    const STANDARD: &[&str] = &[
        "cpu",
        "memory",
        "ephemeral-storage",
        "requests.cpu",
        "requests.memory",
        "requests.ephemeral-storage",
        "limits.cpu",
        "limits.memory",
        "limits.ephemeral-storage",
        "pods",
        "resourcequotas",
        "services",
        "replicationcontrollers",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "storage",
        "requests.storage",
        "services.nodeports",
        "services.loadbalancers",
    ];
    STANDARD.contains(&name)
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-")
}

fn is_standard_container_resource(name: &str) -> bool {
    ["cpu", "memory", "ephemeral-storage"].contains(&name) || name.starts_with("hugepages-")
}

fn is_native_resource(name: &str) -> bool {
    !name.contains('/') || name.contains("kubernetes.io/")
}

fn is_extended_resource(name: &str) -> bool {
    !is_native_resource(name)
        && !name.starts_with("requests.")
        && names::qualified_name(&format!("requests.{name}")).is_empty()
}

fn is_hugepages(name: &str) -> bool {
    name.starts_with("hugepages-")
}

fn overcommit_allowed(name: &str) -> bool {
    is_native_resource(name) && !is_hugepages(name)
}

/// `ValidateResourceQuantityValue` plus the quantity's own syntax (which upstream rejects
/// while decoding).
fn resource_quantity(name: &str, raw: &Value, path: &Path) -> (Vec<Cause>, Option<Quantity>) {
    let q = match Quantity::from_json(raw) {
        Ok(q) => q,
        Err(e) => {
            let shown = match raw {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            return (vec![invalid(path, V::S(shown), e)], None);
        }
    };
    let mut errs = Vec::new();
    if q.nanos < 0 {
        errs.push(invalid(
            path,
            V::S(q.canonical()),
            "must be greater than or equal to 0",
        ));
    }
    if is_extended_resource(name) && q.milli_value() % 1000 != 0 {
        errs.push(invalid(path, V::Raw(q.canonical()), "must be an integer"));
    }
    (errs, Some(q))
}

/// `validateResourceRequirements` for a container (or pod overhead, with no requests).
fn resource_requirements(
    limits: Option<&Map<String, Value>>,
    requests: Option<&Map<String, Value>>,
    claims: &[Value],
    pod_claims: &HashSet<&str>,
    path: &Path,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    let lim_path = path.child("limits");
    let req_path = path.child("requests");
    let (mut lim_cpu_mem, mut req_cpu_mem, mut lim_huge, mut req_huge) =
        (false, false, false, false);
    let mut parsed_limits = BTreeMap::new();
    for (name, raw) in limits.into_iter().flatten() {
        let p = lim_path.key(name);
        errs.extend(container_resource_name(name, &p));
        let (qerrs, q) = resource_quantity(name, raw, &p);
        errs.extend(qerrs);
        if let Some(q) = q {
            parsed_limits.insert(name.as_str(), q);
            if is_hugepages(name) {
                lim_huge = true;
                errs.extend(hugepage_value(name, q, &p));
            }
        }
        if name == "cpu" || name == "memory" {
            lim_cpu_mem = true;
        }
    }
    for (name, raw) in requests.into_iter().flatten() {
        let p = req_path.key(name);
        errs.extend(container_resource_name(name, &p));
        let (qerrs, q) = resource_quantity(name, raw, &p);
        errs.extend(qerrs);
        if let Some(q) = q {
            match parsed_limits.get(name.as_str()) {
                Some(limit) => {
                    if q.nanos != limit.nanos && !overcommit_allowed(name) {
                        errs.push(invalid(
                            &req_path,
                            V::S(q.canonical()),
                            &format!("must be equal to {name} limit of {}", limit.canonical()),
                        ));
                    } else if q.nanos > limit.nanos {
                        errs.push(invalid(
                            &req_path,
                            V::S(q.canonical()),
                            &format!(
                                "must be less than or equal to {name} limit of {}",
                                limit.canonical()
                            ),
                        ));
                    }
                }
                None if !overcommit_allowed(name)
                    && !limits.is_some_and(|l| l.contains_key(name)) =>
                {
                    errs.push(required(
                        &lim_path,
                        "Limit must be set for non overcommitable resources",
                    ));
                }
                None => {}
            }
            if is_hugepages(name) {
                req_huge = true;
                errs.extend(hugepage_value(name, q, &p));
            }
        }
        if name == "cpu" || name == "memory" {
            req_cpu_mem = true;
        }
    }
    if !lim_cpu_mem && !req_cpu_mem && (req_huge || lim_huge) {
        errs.push(forbidden(path, "HugePages require cpu or memory"));
    }
    let mut seen: Vec<String> = Vec::new();
    for (i, claim) in claims.iter().enumerate() {
        let p = path.child("claims").index(i);
        let name = s(claim, "name");
        if name.is_empty() {
            errs.push(required(&p, ""));
            continue;
        }
        if seen.iter().any(|k| k == name) {
            errs.push(duplicate(&p, V::s(name)));
        } else {
            let request = s(claim, "request");
            let mut key = name.to_owned();
            if !request.is_empty() {
                errs.extend(dns_label(request, &p.child("request")));
                key = format!("{name}/{request}");
            }
            if seen.contains(&key) {
                errs.push(duplicate(&p, V::S(key.clone())));
            } else if request.is_empty() {
                for k in &seen {
                    if k.split_once('/').is_some_and(|(c, _)| c == name) {
                        errs.push(duplicate(&p, V::s(name)));
                    }
                }
            }
            seen.push(key);
        }
        if !pod_claims.contains(name) {
            let mut list: Vec<&&str> = pod_claims.iter().collect();
            list.sort();
            let detail = if list.is_empty() {
                "must be one of the names in pod.spec.resourceClaims which is empty".to_owned()
            } else {
                format!(
                    "must be one of the names in pod.spec.resourceClaims: {}",
                    list.iter().map(|s| **s).collect::<Vec<_>>().join(", ")
                )
            };
            errs.push(not_found(&p, V::s(name), &detail));
        }
    }
    errs
}

fn hugepage_value(name: &str, q: Quantity, path: &Path) -> Vec<Cause> {
    let size = name.trim_start_matches("hugepages-");
    match Quantity::parse(size) {
        Ok(page) if page.nanos > 0 && q.nanos % page.nanos == 0 && q.nanos > 0 => Vec::new(),
        Ok(_) | Err(_) => vec![invalid(
            path,
            V::S(q.canonical()),
            &format!(
                "{} is not positive integer multiple of {name}",
                q.canonical()
            ),
        )],
    }
}

/// `validateResizePolicy`.
fn resize_policy(list: &[Value], restart: &str, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut seen = HashSet::new();
    for (i, p) in list.iter().enumerate() {
        let rn = s(p, "resourceName");
        if !seen.insert(rn) {
            errs.push(duplicate(&path.index(i), V::s(rn)));
        }
        match rn {
            "cpu" | "memory" => {}
            "" => errs.push(required(path, "")),
            other => errs.push(not_supported(path, V::s(other), &["cpu", "memory"])),
        }
        let rp = s(p, "restartPolicy");
        match rp {
            "NotRequired" | "RestartContainer" => {}
            "" => errs.push(required(path, "")),
            other => errs.push(not_supported(
                path,
                V::s(other),
                &["NotRequired", "RestartContainer"],
            )),
        }
        if restart == "Never" && rp != "NotRequired" {
            errs.push(invalid(
                path,
                V::s(rp),
                "must be 'NotRequired' when `restartPolicy` is 'Never'",
            ));
        }
    }
    errs
}

/// `ValidateSecurityContext` (a container's).
fn security_context(sc: &Value, path: &Path, host_users: bool) -> Vec<Cause> {
    let mut errs = Vec::new();
    for key in ["runAsUser", "runAsGroup"] {
        if let Some(id) = int(sc, key) {
            for m in names::unix_id(id) {
                errs.push(invalid(&path.child(key), V::I(id), &m));
            }
        }
    }
    if let Some(pm) = sc.get("procMount").and_then(Value::as_str) {
        if pm != "Default" && pm != "Unmasked" {
            errs.push(not_supported(
                &path.child("procMount"),
                V::s(pm),
                &["Default", "Unmasked"],
            ));
        }
        if host_users && pm == "Unmasked" {
            errs.push(invalid(
                &path.child("procMount"),
                V::s(pm),
                "`hostUsers` must be false to use `Unmasked`",
            ));
        }
    }
    errs.extend(seccomp_profile(
        set(sc, "seccompProfile"),
        &path.child("seccompProfile"),
    ));
    if boolean(sc, "allowPrivilegeEscalation") == Some(false) {
        if boolean(sc, "privileged") == Some(true) {
            errs.push(invalid(
                path,
                V::Raw("&core.SecurityContext{...}".into()),
                "cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
            ));
        }
        if arr(field::field(sc, "capabilities"), "add")
            .iter()
            .any(|c| c.as_str() == Some("CAP_SYS_ADMIN"))
        {
            errs.push(invalid(
                path,
                V::Raw("&core.SecurityContext{...}".into()),
                "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
            ));
        }
    }
    errs.extend(apparmor_profile(
        set(sc, "appArmorProfile"),
        &path.child("appArmorProfile"),
    ));
    errs
}

/// `validateSeccompProfileField`.
fn seccomp_profile(sp: Option<&Value>, path: &Path) -> Vec<Cause> {
    let Some(sp) = sp else { return Vec::new() };
    let mut errs = Vec::new();
    let ty = s(sp, "type");
    match ty {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => errs.push(required(
            &path.child("type"),
            "type is required when seccompProfile is set",
        )),
        other => errs.push(not_supported(
            &path.child("type"),
            V::s(other),
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    let local = sp.get("localhostProfile").and_then(Value::as_str);
    if ty == "Localhost" {
        match local {
            None => errs.push(required(
                &path.child("localhostProfile"),
                "must be set when seccomp type is Localhost",
            )),
            Some(l) => errs.extend(local_descending_path(l, &path.child("localhostProfile"))),
        }
    } else if local.is_some() {
        errs.push(invalid(
            &path.child("localhostProfile"),
            V::Raw("&core.SeccompProfile{...}".into()),
            "can only be set when seccomp type is Localhost",
        ));
    }
    errs
}

/// `ValidateAppArmorProfileField`.
fn apparmor_profile(p: Option<&Value>, path: &Path) -> Vec<Cause> {
    let Some(p) = p else { return Vec::new() };
    let mut errs = Vec::new();
    let local = p.get("localhostProfile").and_then(Value::as_str);
    match s(p, "type") {
        "Localhost" => match local {
            None => errs.push(required(
                &path.child("localhostProfile"),
                "must be set when AppArmor type is Localhost",
            )),
            Some(l) => {
                if l.trim() != l {
                    errs.push(invalid(
                        &path.child("localhostProfile"),
                        V::s(l),
                        "must not be padded with whitespace",
                    ));
                } else if l.is_empty() {
                    errs.push(required(
                        &path.child("localhostProfile"),
                        "must be set when AppArmor type is Localhost",
                    ));
                }
                if l.len() > 4095 {
                    errs.push(field::too_long(&path.child("localhostProfile"), 4095));
                }
            }
        },
        "RuntimeDefault" | "Unconfined" => {
            if let Some(l) = local {
                errs.push(invalid(
                    &path.child("localhostProfile"),
                    V::s(l),
                    "can only be set when AppArmor type is Localhost",
                ));
            }
        }
        "" => errs.push(required(
            &path.child("type"),
            "type is required when appArmorProfile is set",
        )),
        other => errs.push(not_supported(
            &path.child("type"),
            V::s(other),
            &["Localhost", "RuntimeDefault", "Unconfined"],
        )),
    }
    errs
}

/// `validatePodSpecSecurityContext`.
fn pod_security_context(spec: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let Some(sc) = set(spec, "securityContext") else {
        return errs;
    };
    for (key, child) in [
        ("fsGroup", "fsGroup"),
        ("runAsUser", "runAsUser"),
        ("runAsGroup", "runAsGroup"),
    ] {
        if let Some(id) = int(sc, key) {
            for m in names::unix_id(id) {
                errs.push(invalid(&path.child(child), V::I(id), &m));
            }
        }
    }
    for (i, g) in arr(sc, "supplementalGroups").iter().enumerate() {
        let id = g.as_i64().unwrap_or(0);
        for m in names::unix_id(id) {
            errs.push(invalid(
                &path.child("supplementalGroups").index(i),
                V::I(id),
                &m,
            ));
        }
    }
    if boolean(spec, "shareProcessNamespace") == Some(true)
        && boolean(spec, "hostPID") == Some(true)
    {
        errs.push(invalid(
            &path.child("shareProcessNamespace"),
            V::Raw("true".into()),
            "ShareProcessNamespace and HostPID cannot both be enabled",
        ));
    }
    let mut sysctl_names = HashSet::new();
    for (i, sysctl) in arr(sc, "sysctls").iter().enumerate() {
        let p = path.child("sysctls").index(i).child("name");
        let name = s(sysctl, "name");
        if name.is_empty() {
            errs.push(required(&p, ""));
        } else if !valid_sysctl_name(name) {
            errs.push(invalid(
                &p,
                V::s(name),
                "must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
            ));
        } else if sysctl_names.contains(name) {
            errs.push(duplicate(&p, V::s(name)));
        }
        if boolean(spec, "hostNetwork") == Some(true) && name.starts_with("net.") {
            errs.push(invalid(
                &p,
                V::s(name),
                "may not be specified when 'hostNetwork' is true",
            ));
        } else if boolean(spec, "hostIPC") == Some(true)
            && (name.starts_with("kernel.shm")
                || name.starts_with("kernel.msg")
                || name.starts_with("kernel.sem")
                || name.starts_with("fs.mqueue."))
        {
            errs.push(invalid(
                &p,
                V::s(name),
                "may not be specified when 'hostIPC' is true",
            ));
        }
        sysctl_names.insert(name);
    }
    if let Some(fp) = sc.get("fsGroupChangePolicy").and_then(Value::as_str) {
        if fp != "Always" && fp != "OnRootMismatch" {
            errs.push(not_supported(
                &path.child("fsGroupChangePolicy"),
                V::s(fp),
                &["Always", "OnRootMismatch"],
            ));
        }
    }
    errs.extend(seccomp_profile(
        set(sc, "seccompProfile"),
        &path.child("seccompProfile"),
    ));
    errs.extend(apparmor_profile(
        set(sc, "appArmorProfile"),
        &path.child("appArmorProfile"),
    ));
    if let Some(sgp) = sc.get("supplementalGroupsPolicy").and_then(Value::as_str) {
        if sgp != "Merge" && sgp != "Strict" {
            errs.push(not_supported(
                &path.child("supplementalGroupsPolicy"),
                V::s(sgp),
                &["Merge", "Strict"],
            ));
        }
    }
    if let Some(cp) = sc.get("seLinuxChangePolicy").and_then(Value::as_str) {
        if cp != "MountOption" && cp != "Recursive" {
            errs.push(not_supported(
                &path.child("seLinuxChangePolicy"),
                V::s(cp),
                &["MountOption", "Recursive"],
            ));
        }
    }
    errs
}

fn valid_sysctl_name(name: &str) -> bool {
    if name.len() > 253 {
        return false;
    }
    let seg_ok = |seg: &str| {
        let b = seg.as_bytes();
        !b.is_empty()
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
    };
    name.split(['.', '/']).all(seg_ok)
}

/// `validatePodHostNetworkDeps`.
fn host_network_deps(spec: &Value, path: &Path, opts: Opts) -> Vec<Cause> {
    let mut errs = Vec::new();
    if boolean(spec, "hostNetwork") != Some(true) {
        return errs;
    }
    for (i, c) in arr(spec, "containers").iter().enumerate() {
        for (j, port) in arr(c, "ports").iter().enumerate() {
            let hp = int(port, "hostPort").unwrap_or(0);
            let cp = int(port, "containerPort").unwrap_or(0);
            if (opts.resource_is_pod || hp != 0) && hp != cp {
                errs.push(invalid(
                    &path
                        .child("containers")
                        .index(i)
                        .child("ports")
                        .index(j)
                        .child("hostPort"),
                    V::I(hp),
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
    }
    errs
}

fn restart_policy(policy: &str, path: &Path) -> Vec<Cause> {
    match policy {
        "Always" | "OnFailure" | "Never" => Vec::new(),
        "" => vec![required(path, "")],
        other => vec![not_supported(
            path,
            V::s(other),
            &["Always", "OnFailure", "Never"],
        )],
    }
}

fn dns_policy(policy: &str, path: &Path) -> Vec<Cause> {
    match policy {
        "ClusterFirstWithHostNet" | "ClusterFirst" | "Default" | "None" => Vec::new(),
        "" => vec![required(path, "")],
        other => vec![not_supported(
            path,
            V::s(other),
            &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        )],
    }
}

/// `validatePodDNSConfig` (v1.33 relaxes search validation).
fn dns_config(cfg: Option<&Value>, policy: &str, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if policy == "None" {
        match cfg {
            None => {
                return vec![required(
                    path,
                    "must provide `dnsConfig` when `dnsPolicy` is None",
                )]
            }
            Some(c) if arr(c, "nameservers").is_empty() => {
                return vec![required(
                    &path.child("nameservers"),
                    "must provide at least one DNS nameserver when `dnsPolicy` is None",
                )];
            }
            _ => {}
        }
    }
    let Some(cfg) = cfg else { return errs };
    let servers = arr(cfg, "nameservers");
    if servers.len() > 3 {
        errs.push(invalid(
            &path.child("nameservers"),
            V::Raw(field::go_string_slice(
                cfg.get("nameservers").and_then(Value::as_array),
            )),
            "must not have more than 3 nameservers",
        ));
    }
    for (i, ns) in servers.iter().enumerate() {
        errs.extend(ip(
            ns.as_str().unwrap_or(""),
            &path.child("nameservers").index(i),
        ));
    }
    let searches = arr(cfg, "searches");
    let raw = V::Raw(field::go_string_slice(
        cfg.get("searches").and_then(Value::as_array),
    ));
    if searches.len() > 32 {
        errs.push(invalid(
            &path.child("searches"),
            raw.clone(),
            "must not have more than 32 search paths",
        ));
    }
    let total: usize = searches
        .iter()
        .map(|s| s.as_str().map_or(0, str::len))
        .sum::<usize>()
        + searches.len().saturating_sub(1);
    if total > 2048 {
        errs.push(invalid(
            &path.child("searches"),
            raw,
            "must not have more than 2048 characters (including spaces) in the search list",
        ));
    }
    for (i, search) in searches.iter().enumerate() {
        let search = search.as_str().unwrap_or("");
        if search != "." {
            let trimmed = search.strip_suffix('.').unwrap_or(search);
            for m in subdomain_with_underscore(trimmed) {
                errs.push(invalid(&path.child("searches").index(i), V::s(trimmed), &m));
            }
        }
    }
    for (i, opt) in arr(cfg, "options").iter().enumerate() {
        if s(opt, "name").is_empty() {
            errs.push(required(
                &path.child("options").index(i),
                "must not be empty",
            ));
        }
    }
    errs
}

/// `IsDNS1123SubdomainWithUnderscore`.
fn subdomain_with_underscore(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 253 {
        errs.push(names::max_len_error(253));
    }
    let label_ok = |l: &str| {
        let l = l.strip_prefix('_').unwrap_or(l);
        let b = l.as_bytes();
        !b.is_empty()
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
    };
    if v.is_empty() || !v.split('.').all(label_ok) {
        errs.push(names::regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character",
            "_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*",
            &["example.com"],
        ));
    }
    errs
}

/// `ValidateTolerations`.
pub(crate) fn tolerations(list: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, t) in list.iter().enumerate() {
        let p = path.index(i);
        let key = s(t, "key");
        let op = s(t, "operator");
        let effect = s(t, "effect");
        if !key.is_empty() {
            errs.extend(meta::label_name(key, &p.child("key")));
        }
        if key.is_empty() && op != "Exists" {
            errs.push(invalid(
                &p.child("operator"),
                V::s(op),
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if set(t, "tolerationSeconds").is_some() && effect != "NoExecute" {
            errs.push(invalid(
                &p.child("effect"),
                V::s(effect),
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        let value = s(t, "value");
        match op {
            "Equal" | "" => {
                let msgs = names::label_value(value);
                if !msgs.is_empty() {
                    errs.push(invalid(&p.child("operator"), V::s(value), &msgs.join(";")));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(invalid(
                        &p.child("operator"),
                        V::s(value),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(not_supported(
                &p.child("operator"),
                V::s(other),
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() {
            errs.extend(taint_effect(effect, true, &p.child("effect")));
        }
    }
    errs
}

/// `validateTaintEffect`.
pub(crate) fn taint_effect(effect: &str, allow_empty: bool, path: &Path) -> Vec<Cause> {
    if !allow_empty && effect.is_empty() {
        return vec![required(path, "")];
    }
    match effect {
        "NoSchedule" | "PreferNoSchedule" | "NoExecute" => Vec::new(),
        other => vec![not_supported(
            path,
            V::s(other),
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        )],
    }
}

/// `validateAffinity`.
fn affinity(aff: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if let Some(na) = set(aff, "nodeAffinity") {
        let p = path.child("nodeAffinity");
        if let Some(req) = set(na, "requiredDuringSchedulingIgnoredDuringExecution") {
            errs.extend(node_selector(
                req,
                &p.child("requiredDuringSchedulingIgnoredDuringExecution"),
            ));
        }
        for (i, term) in arr(na, "preferredDuringSchedulingIgnoredDuringExecution")
            .iter()
            .enumerate()
        {
            let tp = p
                .child("preferredDuringSchedulingIgnoredDuringExecution")
                .index(i);
            let w = int(term, "weight").unwrap_or(0);
            if !(1..=100).contains(&w) {
                errs.push(invalid(
                    &tp.child("weight"),
                    V::I(w),
                    "must be in the range 1-100",
                ));
            }
            errs.extend(node_selector_term(
                field::field(term, "preference"),
                true,
                &tp.child("preference"),
            ));
        }
    }
    for key in ["podAffinity", "podAntiAffinity"] {
        if let Some(pa) = set(aff, key) {
            let p = path.child(key);
            for (i, term) in arr(pa, "requiredDuringSchedulingIgnoredDuringExecution")
                .iter()
                .enumerate()
            {
                errs.extend(pod_affinity_term(
                    term,
                    &p.child("requiredDuringSchedulingIgnoredDuringExecution")
                        .index(i),
                ));
            }
            for (i, wt) in arr(pa, "preferredDuringSchedulingIgnoredDuringExecution")
                .iter()
                .enumerate()
            {
                let tp = p
                    .child("preferredDuringSchedulingIgnoredDuringExecution")
                    .index(i);
                let w = int(wt, "weight").unwrap_or(0);
                if !(1..=100).contains(&w) {
                    errs.push(invalid(
                        &tp.child("weight"),
                        V::I(w),
                        "must be in the range 1-100",
                    ));
                }
                errs.extend(pod_affinity_term(
                    field::field(wt, "podAffinityTerm"),
                    &tp.child("podAffinityTerm"),
                ));
            }
        }
    }
    errs
}

/// `ValidateNodeSelector`.
pub(crate) fn node_selector(ns: &Value, path: &Path) -> Vec<Cause> {
    let terms = arr(ns, "nodeSelectorTerms");
    let tp = path.child("nodeSelectorTerms");
    if terms.is_empty() {
        return vec![required(&tp, "must have at least one node selector term")];
    }
    terms
        .iter()
        .enumerate()
        .flat_map(|(i, t)| node_selector_term(t, false, &tp.index(i)))
        .collect()
}

fn node_selector_term(term: &Value, allow_invalid_values: bool, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (j, rq) in arr(term, "matchExpressions").iter().enumerate() {
        let p = path.child("matchExpressions").index(j);
        let values = arr(rq, "values");
        match s(rq, "operator") {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(required(
                        &p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(forbidden(
                        &p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            "Gt" | "Lt" => {
                if values.len() != 1 {
                    errs.push(required(
                        &p.child("values"),
                        "must be specified single value when `operator` is 'Lt' or 'Gt'",
                    ));
                }
            }
            op => errs.push(invalid(
                &p.child("operator"),
                V::s(op),
                "not a valid selector operator",
            )),
        }
        errs.extend(meta::label_name(s(rq, "key"), &p.child("key")));
        if !allow_invalid_values {
            for (k, v) in values.iter().enumerate() {
                let v = v.as_str().unwrap_or("");
                for m in names::label_value(v) {
                    errs.push(invalid(&p.child("values").index(k), V::s(v), &m));
                }
            }
        }
    }
    for (j, rq) in arr(term, "matchFields").iter().enumerate() {
        let p = path.child("matchFields").index(j);
        let values = arr(rq, "values");
        match s(rq, "operator") {
            "In" | "NotIn" => {
                if values.len() != 1 {
                    errs.push(required(
                        &p.child("values"),
                        "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                    ));
                }
            }
            op => errs.push(invalid(
                &p.child("operator"),
                V::s(op),
                "not a valid selector operator",
            )),
        }
        let key = s(rq, "key");
        if key != "metadata.name" {
            errs.push(invalid(
                &p.child("key"),
                V::s(key),
                "not a valid field selector key",
            ));
        } else {
            for (k, v) in values.iter().enumerate() {
                errs.extend(dns_subdomain(
                    v.as_str().unwrap_or(""),
                    &p.child("values").index(k),
                ));
            }
        }
    }
    errs
}

fn pod_affinity_term(term: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if let Some(sel) = set(term, "labelSelector") {
        errs.extend(meta::label_selector(sel, &path.child("labelSelector")));
    }
    if let Some(sel) = set(term, "namespaceSelector") {
        errs.extend(meta::label_selector(sel, &path.child("namespaceSelector")));
    }
    for ns in arr(term, "namespaces") {
        let ns = ns.as_str().unwrap_or("");
        for m in names::dns1123_label(ns) {
            errs.push(invalid(&path.child("namespace"), V::s(ns), &m));
        }
    }
    let selector = set(term, "labelSelector");
    for key in ["matchLabelKeys", "mismatchLabelKeys"] {
        let keys = arr(term, key);
        if keys.is_empty() {
            continue;
        }
        if selector.is_none() {
            errs.push(forbidden(
                &path.child(key),
                "must not be specified when labelSelector is not set",
            ));
            continue;
        }
        for (i, k) in keys.iter().enumerate() {
            errs.extend(meta::label_name(
                k.as_str().unwrap_or(""),
                &path.child(key).index(i),
            ));
        }
    }
    let tk = s(term, "topologyKey");
    if tk.is_empty() {
        errs.push(required(&path.child("topologyKey"), "can not be empty"));
    }
    errs.extend(meta::label_name(tk, &path.child("topologyKey")));
    errs
}

/// `validateTopologySpreadConstraints`.
fn topology_spread(list: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let p = path.index(i);
        let skew = int(c, "maxSkew").unwrap_or(0);
        if skew <= 0 {
            errs.push(invalid(
                &p.child("maxSkew"),
                V::I(skew),
                "must be greater than zero",
            ));
        }
        let key = s(c, "topologyKey");
        if key.is_empty() {
            errs.push(required(&p.child("topologyKey"), "can not be empty"));
        }
        let action = s(c, "whenUnsatisfiable");
        if action != "DoNotSchedule" && action != "ScheduleAnyway" {
            errs.push(not_supported(
                &p.child("whenUnsatisfiable"),
                V::s(action),
                &["DoNotSchedule", "ScheduleAnyway"],
            ));
        }
        if list[i + 1..]
            .iter()
            .any(|o| s(o, "topologyKey") == key && s(o, "whenUnsatisfiable") == action)
        {
            errs.push(duplicate(
                &p.child("{topologyKey, whenUnsatisfiable}"),
                V::S(format!("{{{key}, {action}}}")),
            ));
        }
        if let Some(md) = int(c, "minDomains") {
            if md <= 0 {
                errs.push(invalid(
                    &p.child("minDomains"),
                    V::I(md),
                    "must be greater than zero",
                ));
            }
            if action != "DoNotSchedule" {
                errs.push(invalid(
                    &p.child("minDomains"),
                    V::I(md),
                    &format!(
                        "can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {action}"
                    ),
                ));
            }
        }
        for key in ["nodeAffinityPolicy", "nodeTaintsPolicy"] {
            if let Some(v) = c.get(key).and_then(Value::as_str) {
                if v != "Honor" && v != "Ignore" {
                    errs.push(not_supported(&p.child(key), V::s(v), &["Honor", "Ignore"]));
                }
            }
        }
        let sel = set(c, "labelSelector");
        let keys = arr(c, "matchLabelKeys");
        if !keys.is_empty() {
            if sel.is_none() {
                errs.push(forbidden(
                    &p.child("matchLabelKeys"),
                    "must not be specified when labelSelector is not set",
                ));
            }
            let sel_keys: HashSet<&str> = sel
                .map(|s_| {
                    obj(s_, "matchLabels")
                        .into_iter()
                        .flatten()
                        .map(|(k, _)| k.as_str())
                        .chain(arr(s_, "matchExpressions").iter().map(|e| s(e, "key")))
                        .collect()
                })
                .unwrap_or_default();
            for (j, k) in keys.iter().enumerate() {
                let k = k.as_str().unwrap_or("");
                let kp = p.child("matchLabelKeys").index(j);
                errs.extend(meta::label_name(k, &kp));
                if sel_keys.contains(k) {
                    errs.push(invalid(
                        &kp,
                        V::s(k),
                        "exists in both matchLabelKeys and labelSelector",
                    ));
                }
            }
        }
        if let Some(sel) = sel {
            errs.extend(meta::label_selector(sel, &p.child("labelSelector")));
        }
    }
    errs
}

fn resource_claims(list: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut seen = HashSet::new();
    for (i, c) in list.iter().enumerate() {
        let p = path.index(i);
        let name = s(c, "name");
        if name.is_empty() {
            errs.push(required(&p.child("name"), ""));
        } else if seen.contains(name) {
            errs.push(duplicate(&p.child("name"), V::s(name)));
        } else {
            errs.extend(dns_label(name, &p.child("name")));
            seen.insert(name);
        }
        let rcn = c.get("resourceClaimName").and_then(Value::as_str);
        let rctn = c.get("resourceClaimTemplateName").and_then(Value::as_str);
        if rcn.is_some() && rctn.is_some() {
            errs.push(invalid(&p, V::Raw("core.PodResourceClaim{...}".into()), "at most one of `resourceClaimName` or `resourceClaimTemplateName` may be specified"));
        }
        if rcn.is_none() && rctn.is_none() {
            errs.push(invalid(
                &p,
                V::Raw("core.PodResourceClaim{...}".into()),
                "must specify one of: `resourceClaimName`, `resourceClaimTemplateName`",
            ));
        }
        if let Some(n) = rcn {
            errs.extend(dns_subdomain(n, &p.child("resourceClaimName")));
        }
        if let Some(n) = rctn {
            errs.extend(dns_subdomain(n, &p.child("resourceClaimTemplateName")));
        }
    }
    errs
}

// Probes and lifecycle handlers.

fn liveness_or_startup(probe: Option<&Value>, grace: Option<i64>, path: &Path) -> Vec<Cause> {
    let Some(probe) = probe else {
        return Vec::new();
    };
    let mut errs = probe_common(probe, grace, path);
    let st = int(probe, "successThreshold").unwrap_or(0);
    if st != 1 {
        errs.push(invalid(
            &path.child("successThreshold"),
            V::I(st),
            "must be 1",
        ));
    }
    errs
}

fn readiness(probe: Option<&Value>, grace: Option<i64>, path: &Path) -> Vec<Cause> {
    let Some(probe) = probe else {
        return Vec::new();
    };
    let mut errs = probe_common(probe, grace, path);
    if let Some(t) = int(probe, "terminationGracePeriodSeconds") {
        errs.push(invalid(
            &path.child("terminationGracePeriodSeconds"),
            V::I(t),
            "must not be set for readinessProbes",
        ));
    }
    errs
}

/// `validateProbe`.
fn probe_common(probe: &Value, grace: Option<i64>, path: &Path) -> Vec<Cause> {
    let mut errs = handler(
        probe,
        &["exec", "httpGet", "tcpSocket", "grpc"],
        grace,
        path,
    );
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        errs.extend(meta::nonnegative(
            int(probe, key).unwrap_or(0),
            &path.child(key),
        ));
    }
    if let Some(t) = int(probe, "terminationGracePeriodSeconds") {
        if t <= 0 {
            errs.push(invalid(
                &path.child("terminationGracePeriodSeconds"),
                V::I(t),
                "must be greater than 0",
            ));
        }
    }
    errs
}

fn lifecycle(lc: &Value, grace: Option<i64>, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    for key in ["postStart", "preStop"] {
        if let Some(h) = set(lc, key) {
            errs.extend(handler(
                h,
                &["exec", "httpGet", "tcpSocket", "sleep"],
                grace,
                &path.child(key),
            ));
        }
    }
    errs
}

/// `validateHandler`: exactly one of the handler kinds.
fn handler(h: &Value, kinds: &[&str], grace: Option<i64>, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut count = 0;
    for kind in ["exec", "httpGet", "tcpSocket", "grpc", "sleep"] {
        if !kinds.contains(&kind) {
            continue;
        }
        let Some(v) = set(h, kind) else { continue };
        let p = path.child(kind);
        if count > 0 {
            errs.push(forbidden(&p, "may not specify more than 1 handler type"));
            continue;
        }
        count += 1;
        match kind {
            "exec" => {
                if arr(v, "command").is_empty() {
                    errs.push(required(&p.child("command"), ""));
                }
            }
            "httpGet" => {
                if s(v, "path").is_empty() {
                    errs.push(required(&p.child("path"), ""));
                }
                errs.extend(port_num_or_name(field::field(v, "port"), &p.child("port")));
                let scheme = s(v, "scheme");
                if scheme != "HTTP" && scheme != "HTTPS" {
                    errs.push(not_supported(
                        &p.child("scheme"),
                        V::s(scheme),
                        &["HTTP", "HTTPS"],
                    ));
                }
                for header in arr(v, "httpHeaders") {
                    let name = s(header, "name");
                    for m in names::http_header_name(name) {
                        errs.push(invalid(&p.child("httpHeaders"), V::s(name), &m));
                    }
                }
            }
            "tcpSocket" => errs.extend(port_num_or_name(field::field(v, "port"), &p.child("port"))),
            "grpc" => {
                let port = int(v, "port").unwrap_or(0);
                for m in names::port_num(port) {
                    errs.push(invalid(&p.child("port"), V::I(port), &m));
                }
            }
            _ => {
                let secs = int(v, "seconds").unwrap_or(0);
                if let Some(g) = grace {
                    if secs < 0 || secs > g {
                        errs.push(invalid(
                            &p,
                            V::I(secs),
                            &format!("must be non-negative and less than terminationGracePeriodSeconds ({g})"),
                        ));
                    }
                }
            }
        }
    }
    if count == 0 {
        errs.push(required(path, "must specify a handler type"));
    }
    errs
}

/// `ValidatePortNumOrName`.
pub(crate) fn port_num_or_name(port: &Value, path: &Path) -> Vec<Cause> {
    match port {
        Value::String(name) => names::port_name(name)
            .into_iter()
            .map(|m| invalid(path, V::s(name), &m))
            .collect(),
        other => {
            let n = other.as_i64().unwrap_or(0);
            names::port_num(n)
                .into_iter()
                .map(|m| invalid(path, V::I(n), &m))
                .collect()
        }
    }
}

// Volumes.

/// The volume source kinds in upstream's checking order, with the name upstream uses for
/// them in "more than 1 volume type" errors (two differ from the JSON names).
const VOLUME_SOURCES: &[(&str, &str)] = &[
    ("emptyDir", "emptyDir"),
    ("hostPath", "hostPath"),
    ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"),
    ("nfs", "nfs"),
    ("iscsi", "iscsi"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("persistentVolumeClaim", "persistentVolumeClaim"),
    ("rbd", "rbd"),
    ("cinder", "cinder"),
    ("cephfs", "cephFS"),
    ("quobyte", "quobyte"),
    ("downwardAPI", "downwarAPI"),
    ("fc", "fc"),
    ("flexVolume", "flexVolume"),
    ("configMap", "configMap"),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("storageos", "storageos"),
    ("projected", "projected"),
    ("scaleIO", "scaleIO"),
    ("csi", "csi"),
    ("ephemeral", "ephemeral"),
    ("image", "image"),
];

/// `ValidateVolumes`: returns the valid volumes by name and the errors.
fn volumes<'a>(
    list: &'a [Value],
    pod_name: Option<&str>,
    path: &Path,
    opts: Opts,
) -> (Volumes<'a>, Vec<Cause>) {
    let mut vols = Volumes::new();
    let mut errs = Vec::new();
    let created_pvcs: HashSet<String> = match pod_name.filter(|n| !n.is_empty()) {
        Some(pod) => list
            .iter()
            .filter(|v| set(v, "ephemeral").is_some())
            .map(|v| format!("{pod}-{}", s(v, "name")))
            .collect(),
        None => HashSet::new(),
    };
    for (i, vol) in list.iter().enumerate() {
        let p = path.index(i);
        let name = s(vol, "name");
        let mut el = volume_source(vol, &p, name, pod_name, opts);
        if name.is_empty() {
            el.push(required(&p.child("name"), ""));
        } else {
            el.extend(dns_label(name, &p.child("name")));
        }
        if vols.contains_key(name) {
            el.push(duplicate(&p.child("name"), V::s(name)));
        }
        if el.is_empty() {
            vols.insert(name.to_owned(), vol);
        } else {
            errs.extend(el);
        }
        if let Some(pvc) = set(vol, "persistentVolumeClaim") {
            let claim = s(pvc, "claimName");
            if created_pvcs.contains(claim) {
                errs.push(invalid(
                    &p.child("persistentVolumeClaim").child("claimName"),
                    V::s(claim),
                    "must not reference a PVC that gets created for an ephemeral volume",
                ));
            }
        }
    }
    (vols, errs)
}

/// `validateVolumeSource`.
fn volume_source(
    vol: &Value,
    path: &Path,
    vol_name: &str,
    pod_name: Option<&str>,
    opts: Opts,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut count = 0;
    for (key, name) in VOLUME_SOURCES {
        let Some(src) = set(vol, key) else { continue };
        if count > 0 {
            errs.push(forbidden(
                &path.child(name),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        let p = path.child(key);
        match *key {
            "emptyDir" => {
                if let Some(limit) = set(src, "sizeLimit") {
                    if Quantity::from_json(limit).is_ok_and(|q| q.nanos < 0) {
                        errs.push(forbidden(
                            &p.child("sizeLimit"),
                            "SizeLimit field must be a valid resource quantity",
                        ));
                    }
                }
            }
            "hostPath" => {
                let hp = s(src, "path");
                if hp.is_empty() {
                    errs.push(required(&p.child("path"), ""));
                } else {
                    errs.extend(no_backsteps(hp, &p.child("path")));
                    if let Some(t) = src.get("type").and_then(Value::as_str) {
                        let types = [
                            "",
                            "BlockDevice",
                            "CharDevice",
                            "Directory",
                            "DirectoryOrCreate",
                            "File",
                            "FileOrCreate",
                            "Socket",
                        ];
                        if !types.contains(&t) {
                            errs.push(not_supported(&p.child("type"), V::s(t), &types));
                        }
                    }
                }
            }
            "gitRepo" => {
                if s(src, "repository").is_empty() {
                    errs.push(required(&p.child("repository"), ""));
                }
                errs.extend(local_descending_path(
                    s(src, "directory"),
                    &p.child("directory"),
                ));
            }
            "secret" | "configMap" => {
                let name_key = if *key == "secret" {
                    "secretName"
                } else {
                    "name"
                };
                if s(src, name_key).is_empty() {
                    errs.push(required(&p.child(name_key), ""));
                }
                errs.extend(file_mode(src, "defaultMode", &p));
                for (j, item) in arr(src, "items").iter().enumerate() {
                    errs.extend(key_to_path(item, &p.child("items").index(j)));
                }
            }
            "persistentVolumeClaim" => {
                if s(src, "claimName").is_empty() {
                    errs.push(required(&p.child("claimName"), ""));
                }
            }
            "nfs" => {
                if s(src, "server").is_empty() {
                    errs.push(required(&p.child("server"), ""));
                }
                let np = s(src, "path");
                if np.is_empty() {
                    errs.push(required(&p.child("path"), ""));
                }
                if !np.starts_with('/') {
                    errs.push(invalid(
                        &p.child("path"),
                        V::s(np),
                        "must be an absolute path",
                    ));
                }
            }
            "downwardAPI" => {
                errs.extend(file_mode(src, "defaultMode", &p));
                for item in arr(src, "items") {
                    errs.extend(downward_api_file(item, &p));
                }
            }
            "projected" => errs.extend(projected(src, &p)),
            "csi" => errs.extend(csi_driver_name(s(src, "driver"), &p.child("driver"))),
            "ephemeral" => {
                match set(src, "volumeClaimTemplate") {
                    None => errs.push(required(&p.child("volumeClaimTemplate"), "")),
                    Some(t) => {
                        let tp = p.child("volumeClaimTemplate");
                        let tm = field::field(t, "metadata");
                        errs.extend(meta::annotations(
                            obj(tm, "annotations"),
                            &tp.child("metadata").child("annotations"),
                        ));
                        errs.extend(meta::labels(
                            obj(tm, "labels"),
                            &tp.child("metadata").child("labels"),
                        ));
                        if let Some(m) = tm.as_object() {
                            for k in m.keys().filter(|k| {
                                *k != "labels" && *k != "annotations" && *k != "creationTimestamp"
                            }) {
                                errs.push(forbidden(
                                    &tp.child("metadata").child(k),
                                    "cannot be set",
                                ));
                            }
                        }
                        errs.extend(super::core::pvc_spec(
                            field::field(t, "spec"),
                            &tp.child("spec"),
                        ));
                    }
                }
                if let Some(pod) = pod_name.filter(|n| !n.is_empty() && !vol_name.is_empty()) {
                    let pvc = format!("{pod}-{vol_name}");
                    for m in names::dns1123_subdomain(&pvc) {
                        errs.push(invalid(
                            &path.child("name"),
                            V::s(vol_name),
                            &format!("PVC name {}: {m}", go_quote(&pvc)),
                        ));
                    }
                }
            }
            "image" => {
                if opts.resource_is_pod && s(src, "reference").is_empty() {
                    errs.push(required(&p.child("reference"), ""));
                }
                errs.extend(pull_policy(s(src, "pullPolicy"), &p.child("pullPolicy")));
            }
            other => errs.extend(legacy_source_required(other, src, &p)),
        }
    }
    if count == 0 {
        errs.push(required(path, "must specify a volume type"));
    }
    errs
}

/// The required fields of the legacy in-tree volume sources.
fn legacy_source_required(key: &str, src: &Value, path: &Path) -> Vec<Cause> {
    let (sub_path, fields): (&str, &[&str]) = match key {
        "gcePersistentDisk" => ("persistentDisk", &["pdName"]),
        "awsElasticBlockStore" => ("awsElasticBlockStore", &["volumeID"]),
        "iscsi" => ("iscsi", &["targetPortal", "iqn"]),
        "glusterfs" => ("glusterfs", &["endpoints", "path"]),
        "rbd" => ("rbd", &["monitors", "image"]),
        "cinder" => ("cinder", &["volumeID"]),
        "cephfs" => ("cephfs", &["monitors"]),
        "flexVolume" => ("flexVolume", &["driver"]),
        "azureFile" => ("azureFile", &["secretName", "shareName"]),
        "vsphereVolume" => ("vsphereVolume", &["volumePath"]),
        "photonPersistentDisk" => ("photonPersistentDisk", &["pdID"]),
        "portworxVolume" => ("portworxVolume", &["volumeID"]),
        "azureDisk" => ("azureDisk", &["diskName", "diskURI"]),
        "storageos" => ("storageos", &["volumeName"]),
        "scaleIO" => ("scaleIO", &["gateway", "system", "volumeName"]),
        "quobyte" => ("quobyte", &["registry", "volume"]),
        _ => return Vec::new(),
    };
    // Upstream names a few of these differently in their own error paths.
    let base = match path.as_str().rsplit_once('.') {
        Some((parent, _)) => Path::new(parent).child(sub_path),
        None => Path::new(sub_path),
    };
    fields
        .iter()
        .filter(|f| match set(src, f) {
            None => true,
            Some(Value::String(s)) => s.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            Some(_) => false,
        })
        .map(|f| required(&base.child(f), ""))
        .collect()
}

fn file_mode(src: &Value, key: &str, path: &Path) -> Vec<Cause> {
    match int(src, key) {
        Some(m) if !(0..=0o777).contains(&m) => {
            vec![invalid(&path.child(key), V::I(m), FILE_MODE_ERROR)]
        }
        _ => Vec::new(),
    }
}

/// `validateKeyToPath`.
fn key_to_path(kp: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if s(kp, "key").is_empty() {
        errs.push(required(&path.child("key"), ""));
    }
    let p = s(kp, "path");
    if p.is_empty() {
        errs.push(required(&path.child("path"), ""));
    }
    errs.extend(local_non_reserved_path(p, &path.child("path")));
    errs.extend(file_mode(kp, "mode", path));
    errs
}

/// `validateDownwardAPIVolumeFile` (upstream reports item problems under the source's path).
fn downward_api_file(file: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let p = s(file, "path");
    if p.is_empty() {
        errs.push(required(&path.child("path"), ""));
    }
    errs.extend(local_non_reserved_path(p, &path.child("path")));
    if let Some(fr) = set(file, "fieldRef") {
        errs.extend(object_field_selector(
            fr,
            VOLUME_FIELD_PATHS,
            &path.child("fieldRef"),
        ));
        if set(file, "resourceFieldRef").is_some() {
            errs.push(invalid(
                path,
                V::s("resource"),
                "fieldRef and resourceFieldRef can not be specified simultaneously",
            ));
        }
    } else if let Some(rf) = set(file, "resourceFieldRef") {
        errs.extend(resource_field_selector(
            rf,
            true,
            &path.child("resourceFieldRef"),
        ));
    } else {
        errs.push(required(
            path,
            "one of fieldRef and resourceFieldRef is required",
        ));
    }
    errs.extend(file_mode(file, "mode", path));
    errs
}

/// `validateProjectedVolumeSource`.
fn projected(src: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = file_mode(src, "defaultMode", path);
    let mut all_paths = HashSet::new();
    for (i, source) in arr(src, "sources").iter().enumerate() {
        let sp = path.child("sources").index(i);
        let mut count = 0;
        for key in ["secret", "configMap"] {
            if let Some(x) = set(source, key) {
                count += 1;
                let pp = sp.child(key);
                if s(x, "name").is_empty() {
                    errs.push(required(&pp.child("name"), ""));
                }
                for (j, item) in arr(x, "items").iter().enumerate() {
                    errs.extend(key_to_path(item, &pp.child("items").index(j)));
                    let ip_ = s(item, "path");
                    if !ip_.is_empty() && !all_paths.insert(ip_.to_owned()) {
                        errs.push(invalid(
                            path,
                            V::s(s(x, "name")),
                            "conflicting duplicate paths",
                        ));
                    }
                }
            }
        }
        if let Some(d) = set(source, "downwardAPI") {
            count += 1;
            let pp = sp.child("downwardAPI");
            for item in arr(d, "items") {
                errs.extend(downward_api_file(item, &pp));
                let ip_ = s(item, "path");
                if !ip_.is_empty() && !all_paths.insert(ip_.to_owned()) {
                    errs.push(invalid(path, V::s(ip_), "conflicting duplicate paths"));
                }
            }
        }
        if let Some(t) = set(source, "serviceAccountToken") {
            count += 1;
            let pp = sp.child("serviceAccountToken");
            let exp = int(t, "expirationSeconds").unwrap_or(0);
            if exp < 600 {
                errs.push(invalid(
                    &pp.child("expirationSeconds"),
                    V::I(exp),
                    "may not specify a duration less than 10 minutes",
                ));
            }
            if exp > 1 << 32 {
                errs.push(invalid(
                    &pp.child("expirationSeconds"),
                    V::I(exp),
                    "may not specify a duration larger than 2^32 seconds",
                ));
            }
            let tp = s(t, "path");
            if tp.is_empty() {
                errs.push(required(&path.child("path"), ""));
            } else {
                errs.extend(local_non_reserved_path(tp, &path.child("path")));
            }
        }
        if let Some(ctb) = set(source, "clusterTrustBundle") {
            count += 1;
            let pp = sp.child("clusterTrustBundle");
            let cp = s(ctb, "path");
            if cp.is_empty() {
                errs.push(required(&pp.child("path"), ""));
            }
            errs.extend(local_non_reserved_path(cp, &pp.child("path")));
            if !cp.is_empty() && !all_paths.insert(cp.to_owned()) {
                errs.push(invalid(path, V::s(cp), "conflicting duplicate paths"));
            }
        }
        if count > 1 {
            errs.push(forbidden(
                &sp,
                "may not specify more than 1 volume type per source",
            ));
        }
    }
    errs
}

/// `ValidateCSIDriverName`.
pub(crate) fn csi_driver_name(name: &str, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if name.is_empty() {
        errs.push(required(path, ""));
    }
    if name.len() > 63 {
        errs.push(field::too_long(path, 63));
    }
    for m in names::dns1123_subdomain(&name.to_lowercase()) {
        errs.push(invalid(path, V::s(name), &m));
    }
    errs
}

// Pod-level entry points.

/// `ValidatePodSpecificAnnotations` (the checks that apply without the deprecated
/// seccomp/AppArmor annotations).
fn pod_specific_annotations(
    annotations: Option<&Map<String, Value>>,
    spec: &Value,
    path: &Path,
) -> Vec<Cause> {
    let mut errs = Vec::new();
    let get = |k: &str| annotations.and_then(|a| a.get(k)).and_then(Value::as_str);
    if let Some(v) = get("kubernetes.io/config.mirror") {
        if s(spec, "nodeName").is_empty() {
            errs.push(invalid(
                &path.key("kubernetes.io/config.mirror"),
                V::s(v),
                "must set spec.nodeName if mirror pod annotation is set",
            ));
        }
    }
    if let Some(v) = get("controller.kubernetes.io/pod-deletion-cost") {
        if v.parse::<i32>().is_err() {
            errs.push(invalid(
                &path.key("controller.kubernetes.io/pod-deletion-cost"),
                V::s(v),
                "must be a 32bit integer",
            ));
        }
    }
    errs
}

/// `validatePodMetadataAndSpec`.
fn pod_metadata_and_spec(pod: &Value) -> Vec<Cause> {
    let meta_path = Path::new("metadata");
    let spec_path = Path::new("spec");
    let spec = field::field(pod, "spec");
    let md = field::field(pod, "metadata");
    let mut errs = meta::object_meta(pod, true, NameRule::Subdomain, &meta_path);
    errs.extend(pod_specific_annotations(
        obj(md, "annotations"),
        spec,
        &meta_path.child("annotations"),
    ));
    errs.extend(pod_spec(
        spec,
        Some(s(md, "name")),
        &spec_path,
        Opts {
            resource_is_pod: true,
        },
    ));
    if s(spec, "serviceAccountName").is_empty() {
        for (vi, vol) in arr(spec, "volumes").iter().enumerate() {
            if let Some(proj) = set(vol, "projected") {
                for (si, source) in arr(proj, "sources").iter().enumerate() {
                    if set(source, "serviceAccountToken").is_some() {
                        errs.push(forbidden(
                            &spec_path
                                .child("volumes")
                                .index(vi)
                                .child("projected")
                                .child("sources")
                                .index(si)
                                .child("serviceAccountToken"),
                            "must not be specified when serviceAccountName is not set",
                        ));
                    }
                }
            }
        }
    }
    for key in ["containers", "initContainers"] {
        for (i, c) in arr(spec, key).iter().enumerate() {
            errs.extend(container_only_for_pod(c, &spec_path.child(key).index(i)));
        }
    }
    errs
}

/// `ValidatePodCreate`.
pub(crate) fn pod_create(pod: &Value) -> Vec<Cause> {
    let mut errs = pod_metadata_and_spec(pod);
    let spec = field::field(pod, "spec");
    let spec_path = Path::new("spec");
    if !arr(spec, "ephemeralContainers").is_empty() {
        errs.push(forbidden(
            &spec_path.child("ephemeralContainers"),
            "cannot be set on create",
        ));
    }
    if !s(spec, "nodeName").is_empty() && !arr(spec, "schedulingGates").is_empty() {
        errs.push(forbidden(
            &spec_path.child("nodeName"),
            "cannot be set until all schedulingGates have been cleared",
        ));
    }
    errs
}

const UPDATABLE_POD_FIELDS: &str = "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// `ValidatePodUpdate`.
pub(crate) fn pod_update(new: &Value, old: &Value) -> Vec<Cause> {
    let meta_path = Path::new("metadata");
    let mut errs = meta::object_meta_update(new, old, &meta_path);
    errs.extend(pod_metadata_and_spec(new));
    errs.extend(mirror_annotation_updates(
        new,
        old,
        &meta_path.child("annotations"),
    ));
    let spec_path = Path::new("spec");
    let ns = field::field(new, "spec");
    let os = field::field(old, "spec");
    for key in ["containers", "initContainers"] {
        let (nc, oc) = (arr(ns, key), arr(os, key));
        let p = spec_path.child(key);
        if nc.len() != oc.len() {
            errs.push(forbidden(
                &p,
                "pod updates may not add or remove containers",
            ));
            return errs;
        }
        for (i, c) in nc.iter().enumerate() {
            let image = s(c, "image");
            if image.is_empty() {
                errs.push(required(&p.index(i).child("image"), ""));
            }
            if image.trim() != image {
                errs.push(invalid(
                    &p.index(i).child("image"),
                    V::s(image),
                    "must not have leading or trailing whitespace",
                ));
            }
        }
    }
    let ads_path = spec_path.child("activeDeadlineSeconds");
    match (
        int(ns, "activeDeadlineSeconds"),
        int(os, "activeDeadlineSeconds"),
    ) {
        (Some(n), old_ads) => {
            if n < 0 || n > i64::from(i32::MAX) {
                errs.push(invalid(
                    &ads_path,
                    V::I(n),
                    &names::inclusive_range_error(0, i64::from(i32::MAX)),
                ));
                return errs;
            }
            if old_ads.is_some_and(|o| o < n) {
                errs.push(invalid(
                    &ads_path,
                    V::I(n),
                    "must be less than or equal to previous value",
                ));
                return errs;
            }
        }
        (None, Some(_)) => {
            errs.push(invalid(
                &ads_path,
                V::Raw("null".into()),
                "must not update from a positive integer to nil value",
            ));
        }
        (None, None) => {}
    }
    // Only additions to tolerations (changing tolerationSeconds is allowed).
    let new_tols = arr(ns, "tolerations");
    if arr(os, "tolerations")
        .iter()
        .all(|o| new_tols.iter().any(|n| tolerations_match(o, n)))
    {
        errs.extend(tolerations(new_tols, &spec_path.child("tolerations")));
    } else {
        errs.push(forbidden(
            &spec_path.child("tolerations"),
            "existing toleration can not be modified except its tolerationSeconds",
        ));
    }
    let old_gates: HashSet<&str> = arr(os, "schedulingGates")
        .iter()
        .map(|g| s(g, "name"))
        .collect();
    let mut added: Vec<(usize, &str)> = arr(ns, "schedulingGates")
        .iter()
        .enumerate()
        .map(|(i, g)| (i, s(g, "name")))
        .filter(|(_, n)| !old_gates.contains(n))
        .collect();
    added.sort_by_key(|(i, _)| *i);
    for (i, gate) in added {
        errs.push(forbidden(
            &spec_path.child("schedulingGates").index(i).child("name"),
            &format!("only deletion is allowed, but found new scheduling gate '{gate}'"),
        ));
    }
    if field::sem_eq(Some(ns), Some(os)) {
        return errs;
    }
    // Compare with the updatable fields taken from the old spec.
    let mut munged = ns.clone();
    if let Some(m) = munged.as_object_mut() {
        for key in ["containers", "initContainers"] {
            if let Some(list) = m.get_mut(key).and_then(Value::as_array_mut) {
                for (i, c) in list.iter_mut().enumerate() {
                    let old_image = arr(os, key).get(i).and_then(|o| o.get("image")).cloned();
                    if let Some(cm) = c.as_object_mut() {
                        match old_image {
                            Some(img) => cm.insert("image".into(), img),
                            None => cm.remove("image"),
                        };
                    }
                }
            }
        }
        for key in ["activeDeadlineSeconds", "schedulingGates", "tolerations"] {
            match os.get(key) {
                Some(v) => m.insert(key.into(), v.clone()),
                None => m.remove(key),
            };
        }
        if int(os, "terminationGracePeriodSeconds").is_some_and(|g| g < 0)
            && int(ns, "terminationGracePeriodSeconds") == Some(1)
        {
            if let Some(g) = os.get("terminationGracePeriodSeconds") {
                m.insert("terminationGracePeriodSeconds".into(), g.clone());
            }
        }
        if !arr(os, "schedulingGates").is_empty() {
            // Gated pods may gain node selector entries (but not lose or change them).
            let old_sel = obj(os, "nodeSelector");
            let new_sel = obj(ns, "nodeSelector");
            if !field::sem_eq(ns.get("nodeSelector"), os.get("nodeSelector")) {
                let only_added = old_sel
                    .into_iter()
                    .flatten()
                    .all(|(k, v)| new_sel.and_then(|n| n.get(k)) == Some(v));
                if !only_added {
                    errs.push(invalid(
                        &spec_path.child("nodeSelector"),
                        V::Raw(field::go_string_map(new_sel)),
                        "only additions to spec.nodeSelector are allowed (no mutations or deletions)",
                    ));
                }
                match os.get("nodeSelector") {
                    Some(v) => m.insert("nodeSelector".into(), v.clone()),
                    None => m.remove("nodeSelector"),
                };
            }
        }
    }
    if !field::sem_eq(Some(&munged), Some(os)) {
        errs.push(forbidden(
            &spec_path,
            &format!(
                "pod updates may not change fields other than {UPDATABLE_POD_FIELDS}\n{}",
                spec_diff(os, &munged)
            ),
        ));
    }
    errs
}

fn tolerations_match(old: &Value, new: &Value) -> bool {
    let mut o = old.clone();
    if let Some(m) = o.as_object_mut() {
        match new.get("tolerationSeconds") {
            Some(ts) => m.insert("tolerationSeconds".into(), ts.clone()),
            None => m.remove("tolerationSeconds"),
        };
    }
    field::sem_eq(Some(&o), Some(new))
}

/// The mirror pod annotation may be neither added nor changed.
fn mirror_annotation_updates(new: &Value, old: &Value, path: &Path) -> Vec<Cause> {
    let key = "kubernetes.io/config.mirror";
    let get = |v: &Value| {
        field::field(field::field(v, "metadata"), "annotations")
            .get(key)
            .cloned()
    };
    let (n, o) = (get(new), get(old));
    match (o, n) {
        (Some(o), n) if n.as_ref() != Some(&o) => vec![forbidden(
            &path.key(key),
            "may not remove or update mirror pod annotation",
        )],
        (None, Some(_)) => vec![forbidden(
            &path.key(key),
            "may not add mirror pod annotation",
        )],
        _ => Vec::new(),
    }
}

/// A short description of what changed between two specs (upstream prints a Go struct diff;
/// this names the changed fields with their old and new JSON values).
pub(crate) fn spec_diff(old: &Value, new: &Value) -> String {
    fn walk(path: &str, a: Option<&Value>, b: Option<&Value>, out: &mut Vec<String>) {
        if field::sem_eq(a, b) {
            return;
        }
        match (a, b) {
            (Some(Value::Object(x)), Some(Value::Object(y))) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(&p, x.get(k), y.get(k), out);
                }
            }
            (Some(Value::Array(x)), Some(Value::Array(y))) if x.len() == y.len() => {
                for (i, (p_, q)) in x.iter().zip(y).enumerate() {
                    walk(&format!("{path}[{i}]"), Some(p_), Some(q), out);
                }
            }
            _ => {
                let show = |v: Option<&Value>| v.map_or("<unset>".to_owned(), Value::to_string);
                out.push(format!("  spec.{path}: {} -> {}", show(a), show(b)));
            }
        }
    }
    let mut out = Vec::new();
    walk("", Some(old), Some(new), &mut out);
    out.join("\n")
}

/// `ValidatePodTemplateSpec`.
pub(crate) fn pod_template_spec(template: &Value, path: &Path) -> Vec<Cause> {
    let md = field::field(template, "metadata");
    let spec = field::field(template, "spec");
    let mut errs = meta::labels(obj(md, "labels"), &path.child("labels"));
    errs.extend(meta::annotations(
        obj(md, "annotations"),
        &path.child("annotations"),
    ));
    errs.extend(pod_specific_annotations(
        obj(md, "annotations"),
        spec,
        &path.child("annotations"),
    ));
    errs.extend(pod_spec(spec, None, &path.child("spec"), Opts::default()));
    if !arr(spec, "ephemeralContainers").is_empty() {
        errs.push(forbidden(
            &path.child("spec").child("ephemeralContainers"),
            "ephemeral containers not allowed in pod template",
        ));
    }
    errs
}

/// The labels/annotations part of a template that upstream checks for StatefulSets.
pub(crate) fn template_labels_and_annotations(template: &Value, path: &Path) -> Vec<Cause> {
    let md = field::field(template, "metadata");
    let mut errs = meta::labels(obj(md, "labels"), &path.child("labels"));
    errs.extend(meta::annotations(
        obj(md, "annotations"),
        &path.child("annotations"),
    ));
    errs.extend(pod_specific_annotations(
        obj(md, "annotations"),
        field::field(template, "spec"),
        &path.child("annotations"),
    ));
    errs
}
