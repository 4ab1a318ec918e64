//! A container's environment, as the kubelet computes it before handing it to the runtime.
//!
//! Upstream: `pkg/kubelet/kubelet_pods.go` (`makeEnvironmentVariables`,
//! `getServiceEnvVarMap`, `podFieldSelectorRuntimeValue`, `containerResourceRuntimeValue`),
//! `pkg/kubelet/envvars/envvars.go` (`FromServices`), `third_party/forked/golang/expansion`
//! (`Expand`, `MappingFuncFor`), `pkg/api/v1/resource/helpers.go`
//! (`ExtractContainerResourceValue`), `pkg/fieldpath/fieldpath.go` and
//! `pkg/kubelet/kubelet_resources.go` (`defaultPodLimitsForDownwardAPI`).
//!
//! Order: upstream collects the variables in a Go map, so its order is random; here it is
//! fixed: `envFrom` sources in order (each source's keys sorted), then `env` in declaration
//! order (a name already present keeps its place and takes the new value), then the
//! Service variables not already set, sorted. The image's variables come before all of
//! these (in [`super::convert`]).
//!
//! Keys: upstream (since `RelaxedEnvironmentVariableValidation`) passes any `envFrom` key
//! through. Keys that cannot be in an environment at all (empty, or containing `=` or NUL)
//! are skipped here and named in [`Environment::skipped`], for the caller to report as
//! upstream used to (an `InvalidEnvironmentVariableNames` warning event).
//!
//! Errors are what the kubelet reports as `CreateContainerConfigError`, with upstream's
//! messages (`configmap "x" not found`, `couldn't find key k in ConfigMap ns/x`).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::nanos;

/// Why a container's environment cannot be built (`CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("configmap \"{0}\" not found")]
    ConfigMapNotFound(String),
    #[error("secret \"{0}\" not found")]
    SecretNotFound(String),
    #[error("couldn't find key {key} in ConfigMap {namespace}/{name}")]
    ConfigMapKeyNotFound {
        key: String,
        namespace: String,
        name: String,
    },
    #[error("couldn't find key {key} in Secret {namespace}/{name}")]
    SecretKeyNotFound {
        key: String,
        namespace: String,
        name: String,
    },
    /// A `fieldRef` path the kubelet does not resolve.
    #[error("field label not supported: {0}")]
    UnsupportedField(String),
    /// A `resourceFieldRef` resource the kubelet does not resolve.
    #[error("unsupported container resource : {0}")]
    UnsupportedResource(String),
    /// `resourceFieldRef.containerName` names no container of the pod.
    #[error("container {0} not found")]
    ContainerNotFound(String),
    /// The lookup itself failed (not a "not found"): the caller retries.
    #[error("{0}")]
    Lookup(String),
}

/// Where ConfigMaps and Secrets come from: the pod worker's informer caches, or maps in
/// tests. `Ok(None)` is "not found" (honoured by `optional`); `Err` is any other failure.
pub trait ObjectSource {
    fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, String>;
    fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, String>;
}

/// An [`ObjectSource`] over maps keyed by `(namespace, name)`.
#[derive(Debug, Default, Clone)]
pub struct Objects {
    pub config_maps: BTreeMap<(String, String), ConfigMap>,
    pub secrets: BTreeMap<(String, String), Secret>,
}

impl Objects {
    pub fn with_config_map(mut self, cm: ConfigMap) -> Self {
        let key = (
            cm.metadata.namespace.clone().unwrap_or_default(),
            cm.metadata.name.clone().unwrap_or_default(),
        );
        self.config_maps.insert(key, cm);
        self
    }

    pub fn with_secret(mut self, s: Secret) -> Self {
        let key = (
            s.metadata.namespace.clone().unwrap_or_default(),
            s.metadata.name.clone().unwrap_or_default(),
        );
        self.secrets.insert(key, s);
        self
    }
}

impl ObjectSource for Objects {
    fn config_map(&self, namespace: &str, name: &str) -> Result<Option<ConfigMap>, String> {
        Ok(self
            .config_maps
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned())
    }

    fn secret(&self, namespace: &str, name: &str) -> Result<Option<Secret>, String> {
        Ok(self
            .secrets
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned())
    }
}

/// What the environment is built from besides the pod and the container.
pub struct EnvInputs<'a> {
    pub objects: &'a dyn ObjectSource,
    /// Every Service the kubelet knows (all namespaces: `kubernetes` in `default` is seen
    /// by every pod, even with `enableServiceLinks: false`).
    pub services: &'a [Service],
    /// The node's allocatable: the `resourceFieldRef` value of an unset limit.
    pub node_allocatable: &'a BTreeMap<String, Quantity>,
    /// The pod's IPs, primary first (the sandbox's).
    pub pod_ips: &'a [String],
    /// The node's IPs, primary first.
    pub host_ips: &'a [String],
}

/// A container's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Environment {
    /// `(name, value)` in the order described in the module doc.
    pub vars: Vec<(String, String)>,
    /// `envFrom` keys that were skipped as unusable in an environment.
    pub skipped: Vec<String>,
}

/// Expands `$(VAR)` references in `input` (upstream's `expansion.Expand`): `$$` is a
/// literal `$`, an unknown or unterminated reference is left as written.
pub fn expand(input: &str, mapping: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let mut chars = after.chars();
        match chars.next() {
            None => {
                // A trailing `$` is copied as is.
                out.push('$');
                rest = after;
            }
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('(') => match after[1..].find(')') {
                Some(end) => {
                    let name = &after[1..1 + end];
                    match mapping(name) {
                        Some(v) => out.push_str(&v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[2 + end..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            Some(c) => {
                out.push('$');
                out.push(c);
                rest = &after[c.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn env_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

fn join_host_port(host: &str, port: i32) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The variables of one Service (upstream's `FromServices` for one service): `X_SERVICE_HOST`,
/// `X_SERVICE_PORT`, `X_SERVICE_PORT_<NAME>` per named port, and Docker link variables
/// (`X_PORT`, `X_PORT_<port>_<PROTO>` with `_PROTO`, `_PORT`, `_ADDR`). None for headless
/// Services or ones without an IP.
pub fn service_env(service: &Service) -> Vec<(String, String)> {
    let Some(spec) = &service.spec else {
        return Vec::new();
    };
    let ip = spec.cluster_ip.as_deref().unwrap_or_default();
    if ip.is_empty() || ip == "None" {
        return Vec::new();
    }
    let prefix = env_name(service.metadata.name.as_deref().unwrap_or_default());
    let ports = spec.ports.as_deref().unwrap_or(&[]);
    let mut out = vec![(format!("{prefix}_SERVICE_HOST"), ip.to_owned())];
    let Some(first) = ports.first() else {
        return out;
    };
    let port_var = format!("{prefix}_SERVICE_PORT");
    out.push((port_var.clone(), first.port.to_string()));
    for p in ports {
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((format!("{port_var}_{}", env_name(name)), p.port.to_string()));
        }
    }
    for (i, p) in ports.iter().enumerate() {
        let protocol = p.protocol.as_deref().unwrap_or("TCP");
        let lower = protocol.to_lowercase();
        let url = format!("{lower}://{}", join_host_port(ip, p.port));
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let pp = format!("{prefix}_PORT_{}_{}", p.port, protocol.to_uppercase());
        out.push((pp.clone(), url));
        out.push((format!("{pp}_PROTO"), lower));
        out.push((format!("{pp}_PORT"), p.port.to_string()));
        out.push((format!("{pp}_ADDR"), ip.to_owned()));
    }
    out
}

/// The Service variables a pod in `namespace` sees (upstream's `getServiceEnvVarMap`): its
/// namespace's Services when `enable_service_links`, and always `kubernetes` from `default`
/// (which wins over a same-named Service of the pod's namespace).
pub fn service_env_map(
    services: &[Service],
    namespace: &str,
    enable_service_links: bool,
) -> BTreeMap<String, String> {
    let mut chosen: BTreeMap<String, &Service> = BTreeMap::new();
    for s in services {
        let name = s.metadata.name.as_deref().unwrap_or_default();
        let ns = s.metadata.namespace.as_deref().unwrap_or_default();
        if ns == "default" && name == "kubernetes" {
            chosen.insert(name.to_owned(), s);
        } else if ns == namespace && enable_service_links {
            chosen.entry(name.to_owned()).or_insert(s);
        }
    }
    chosen.values().flat_map(|s| service_env(s)).collect()
}

fn format_map(m: Option<&BTreeMap<String, String>>) -> String {
    let Some(m) = m else {
        return String::new();
    };
    m.iter()
        .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
        .collect::<Vec<_>>()
        .join("\n")
}

fn subscript<'a>(path: &'a str, field: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(field)?;
    let inner = rest.strip_prefix("['")?.strip_suffix("']")?;
    Some(inner)
}

/// A `fieldRef` value (upstream's `podFieldSelectorRuntimeValue` + `ExtractFieldPathAsString`).
pub fn field_value(
    pod: &Pod,
    path: &str,
    pod_ips: &[String],
    host_ips: &[String],
) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let s = |v: Option<&String>| v.cloned().unwrap_or_default();
    Ok(match path {
        "metadata.name" => s(meta.name.as_ref()),
        "metadata.namespace" => s(meta.namespace.as_ref()),
        "metadata.uid" => s(meta.uid.as_ref()),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => s(spec.and_then(|s| s.node_name.as_ref())),
        "spec.serviceAccountName" => s(spec.and_then(|s| s.service_account_name.as_ref())),
        "status.hostIP" => host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => host_ips.join(","),
        "status.podIP" => pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => pod_ips.join(","),
        _ => {
            if let Some(k) = subscript(path, "metadata.labels") {
                s(meta.labels.as_ref().and_then(|m| m.get(k)))
            } else if let Some(k) = subscript(path, "metadata.annotations") {
                s(meta.annotations.as_ref().and_then(|m| m.get(k)))
            } else {
                return Err(EnvError::UnsupportedField(path.to_owned()));
            }
        }
    })
}

fn ceil_div(a: i128, b: i128) -> i128 {
    if b == 0 {
        return 0;
    }
    let q = a / b;
    if a % b != 0 && ((a < 0) == (b < 0)) {
        q + 1
    } else {
        q
    }
}

/// A `resourceFieldRef` value (upstream's `ExtractContainerResourceValue`), limits unset
/// on the container taking the node's allocatable (`defaultPodLimitsForDownwardAPI`).
/// CPU is counted in millicores against the divisor's, everything else in units; both
/// rounded up; the divisor defaults to 1.
pub fn resource_value(
    pod: &Pod,
    container: &Container,
    resource: &str,
    container_name: Option<&str>,
    divisor: Option<&Quantity>,
    node_allocatable: &BTreeMap<String, Quantity>,
) -> Result<String, EnvError> {
    let target = match container_name.filter(|n| !n.is_empty()) {
        None => container,
        Some(name) => super::spec_containers(pod)
            .iter()
            .chain(super::spec_init_containers(pod))
            .find(|c| c.name == name)
            .ok_or_else(|| EnvError::ContainerNotFound(name.to_owned()))?,
    };
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| EnvError::UnsupportedResource(resource.to_owned()))?;
    let supported =
        matches!(name, "cpu" | "memory" | "ephemeral-storage") || name.starts_with("hugepages-");
    if !supported || !matches!(kind, "limits" | "requests") {
        return Err(EnvError::UnsupportedResource(resource.to_owned()));
    }
    let mut amount = if kind == "limits" {
        super::container_limits(target).get(name).copied()
    } else {
        target
            .resources
            .as_ref()
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get(name))
            .map(nanos)
    };
    if kind == "limits" && amount.is_none() && !name.starts_with("hugepages-") {
        amount = node_allocatable.get(name).map(nanos);
    }
    let amount = amount.unwrap_or(0);
    let divisor = divisor
        .map(nanos)
        .filter(|d| *d != 0)
        .unwrap_or(1_000_000_000);
    let value = if name == "cpu" {
        // MilliValue of each, rounded up, then the ceiling of their ratio.
        ceil_div(ceil_div(amount, 1_000_000), ceil_div(divisor, 1_000_000))
    } else {
        ceil_div(
            ceil_div(amount, 1_000_000_000),
            ceil_div(divisor, 1_000_000_000),
        )
    };
    Ok(value.to_string())
}

/// Whether a key can be in a process environment at all.
fn usable_key(k: &str) -> bool {
    !k.is_empty() && !k.contains('=') && !k.contains('\0')
}

/// An ordered name -> value map: a new name goes last, a known one keeps its place.
#[derive(Default)]
struct Ordered {
    order: Vec<String>,
    values: HashMap<String, String>,
}

impl Ordered {
    fn set(&mut self, k: String, v: String) {
        if self.values.insert(k.clone(), v).is_none() {
            self.order.push(k);
        }
    }
}

/// The container's environment (upstream's `makeEnvironmentVariables`).
pub fn make_environment(
    pod: &Pod,
    container: &Container,
    inputs: &EnvInputs<'_>,
) -> Result<Environment, EnvError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let service_env = service_env_map(inputs.services, namespace, links);

    let mut config_maps: HashMap<String, Option<ConfigMap>> = HashMap::new();
    let mut secrets: HashMap<String, Option<Secret>> = HashMap::new();
    let mut get_cm = |name: &str| -> Result<Option<ConfigMap>, EnvError> {
        if let Some(c) = config_maps.get(name) {
            return Ok(c.clone());
        }
        let c = inputs
            .objects
            .config_map(namespace, name)
            .map_err(EnvError::Lookup)?;
        config_maps.insert(name.to_owned(), c.clone());
        Ok(c)
    };
    let mut get_secret = |name: &str| -> Result<Option<Secret>, EnvError> {
        if let Some(s) = secrets.get(name) {
            return Ok(s.clone());
        }
        let s = inputs
            .objects
            .secret(namespace, name)
            .map_err(EnvError::Lookup)?;
        secrets.insert(name.to_owned(), s.clone());
        Ok(s)
    };

    let mut env = Ordered::default();
    let mut skipped = Vec::new();
    for from in container.env_from.as_deref().unwrap_or(&[]) {
        let prefix = from.prefix.as_deref().unwrap_or_default();
        let mut put = |k: &str, v: String| {
            let key = format!("{prefix}{k}");
            if usable_key(&key) {
                env.set(key, v);
            } else {
                skipped.push(key);
            }
        };
        if let Some(r) = &from.config_map_ref {
            let optional = r.optional == Some(true);
            match get_cm(&r.name)? {
                None if optional => continue,
                None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
                Some(cm) => {
                    for (k, v) in cm.data.unwrap_or_default() {
                        put(&k, v);
                    }
                }
            }
        } else if let Some(r) = &from.secret_ref {
            let optional = r.optional == Some(true);
            match get_secret(&r.name)? {
                None if optional => continue,
                None => return Err(EnvError::SecretNotFound(r.name.clone())),
                Some(s) => {
                    for (k, v) in s.data.unwrap_or_default() {
                        put(&k, String::from_utf8_lossy(&v.0).into_owned());
                    }
                }
            }
        }
    }

    for var in container.env.as_deref().unwrap_or(&[]) {
        let value = var.value.as_deref().unwrap_or_default();
        let resolved = if !value.is_empty() {
            expand(value, |name| {
                env.values
                    .get(name)
                    .or_else(|| service_env.get(name))
                    .cloned()
            })
        } else if let Some(from) = &var.value_from {
            if let Some(f) = &from.field_ref {
                field_value(pod, &f.field_path, inputs.pod_ips, inputs.host_ips)?
            } else if let Some(r) = &from.resource_field_ref {
                resource_value(
                    pod,
                    container,
                    &r.resource,
                    r.container_name.as_deref(),
                    r.divisor.as_ref(),
                    inputs.node_allocatable,
                )?
            } else if let Some(r) = &from.config_map_key_ref {
                let optional = r.optional == Some(true);
                let cm = match get_cm(&r.name)? {
                    None if optional => continue,
                    None => return Err(EnvError::ConfigMapNotFound(r.name.clone())),
                    Some(cm) => cm,
                };
                match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                    Some(v) => v.clone(),
                    None if optional => continue,
                    None => {
                        return Err(EnvError::ConfigMapKeyNotFound {
                            key: r.key.clone(),
                            namespace: namespace.to_owned(),
                            name: r.name.clone(),
                        })
                    }
                }
            } else if let Some(r) = &from.secret_key_ref {
                let optional = r.optional == Some(true);
                let s = match get_secret(&r.name)? {
                    None if optional => continue,
                    None => return Err(EnvError::SecretNotFound(r.name.clone())),
                    Some(s) => s,
                };
                match s.data.as_ref().and_then(|d| d.get(&r.key)) {
                    Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                    None if optional => continue,
                    None => {
                        return Err(EnvError::SecretKeyNotFound {
                            key: r.key.clone(),
                            namespace: namespace.to_owned(),
                            name: r.name.clone(),
                        })
                    }
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        env.set(var.name.clone(), resolved);
    }

    let Ordered { order, mut values } = env;
    let mut vars: Vec<(String, String)> = order
        .into_iter()
        .map(|k| {
            let v = values.remove(&k).unwrap_or_default();
            (k, v)
        })
        .collect();
    let present: std::collections::HashSet<String> = vars.iter().map(|(k, _)| k.clone()).collect();
    for (k, v) in service_env {
        if !present.contains(&k) {
            vars.push((k, v));
        }
    }
    Ok(Environment { vars, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::qos::tests::pod;
    use serde_json::json;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    /// Mirrors `TestMapReference` / `TestExpand` in
    /// `third_party/forked/golang/expansion/expand_test.go`.
    #[test]
    fn expansion_as_upstream() {
        let vars = [
            ("VAR_A", "A"),
            ("VAR_B", "B"),
            ("VAR_C", "C"),
            ("VAR_REF", "$(VAR_A)"),
            ("VAR_EMPTY", ""),
        ];
        let cases = [
            ("whole string", "$(VAR_A)", "A"),
            ("repeat", "$(VAR_A)-$(VAR_A)", "A-A"),
            ("beginning", "$(VAR_A)-1", "A-1"),
            ("middle", "___$(VAR_B)___", "___B___"),
            ("end", "___$(VAR_C)", "___C"),
            ("compound", "$(VAR_A)_$(VAR_B)_$(VAR_C)", "A_B_C"),
            ("escaped operator", "$$(VAR_B)_$(VAR_A)", "$(VAR_B)_A"),
            ("escaped operator, end", "f000-$$VAR_A", "f000-$VAR_A"),
            ("escaped twice", "$$$$$$(BIG_MONEY)", "$$$(BIG_MONEY)"),
            ("no recursion", "$(VAR_REF)", "$(VAR_A)"),
            ("empty value", "x$(VAR_EMPTY)x", "xx"),
            ("undefined left as is", "$(VAR_DNE)", "$(VAR_DNE)"),
            ("unterminated", "$(VAR_A", "$(VAR_A"),
            ("unterminated at end", "$(", "$("),
            ("lone operator", "$VAR_A", "$VAR_A"),
            ("trailing operator", "foo$", "foo$"),
            ("empty reference", "$()", "$()"),
            ("non-ascii after operator", "$é", "$é"),
        ];
        for (name, input, want) in cases {
            assert_eq!(expand(input, lookup(&vars)), want, "{name}");
        }
    }

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> Service {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "ports": ports}}))
        .unwrap()
    }

    /// Mirrors `TestFromServices` in `pkg/kubelet/envvars/envvars_test.go`.
    #[test]
    fn service_variables_as_upstream() {
        let s = svc(
            "ns",
            "foo-bar",
            "1.2.3.4",
            json!([
            {"port": 8080, "protocol": "TCP"},
            {"name": "udp-port", "port": 8081, "protocol": "UDP"}]),
        );
        let want: Vec<(String, String)> = [
            ("FOO_BAR_SERVICE_HOST", "1.2.3.4"),
            ("FOO_BAR_SERVICE_PORT", "8080"),
            ("FOO_BAR_SERVICE_PORT_UDP_PORT", "8081"),
            ("FOO_BAR_PORT", "tcp://1.2.3.4:8080"),
            ("FOO_BAR_PORT_8080_TCP", "tcp://1.2.3.4:8080"),
            ("FOO_BAR_PORT_8080_TCP_PROTO", "tcp"),
            ("FOO_BAR_PORT_8080_TCP_PORT", "8080"),
            ("FOO_BAR_PORT_8080_TCP_ADDR", "1.2.3.4"),
            ("FOO_BAR_PORT_8081_UDP", "udp://1.2.3.4:8081"),
            ("FOO_BAR_PORT_8081_UDP_PROTO", "udp"),
            ("FOO_BAR_PORT_8081_UDP_PORT", "8081"),
            ("FOO_BAR_PORT_8081_UDP_ADDR", "1.2.3.4"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(service_env(&s), want);
        assert!(service_env(&svc("ns", "headless", "None", json!([{"port": 80}]))).is_empty());
        let v6 = svc("ns", "six", "fd00::1", json!([{"port": 80}]));
        assert!(service_env(&v6).contains(&("SIX_PORT".into(), "tcp://[fd00::1]:80".into())));
    }

    fn services() -> Vec<Service> {
        vec![
            svc(
                "default",
                "kubernetes",
                "10.43.0.1",
                json!([{"name": "https", "port": 443}]),
            ),
            svc("default", "other", "10.43.0.9", json!([{"port": 1}])),
            svc("test", "web", "10.43.0.5", json!([{"port": 80}])),
        ]
    }

    /// Mirrors the service cases of `TestMakeEnvironmentVariables` in
    /// `pkg/kubelet/kubelet_pods_test.go`: `kubernetes` always, the pod's namespace only
    /// with service links.
    #[test]
    fn service_links() {
        let m = service_env_map(&services(), "test", true);
        assert_eq!(
            m.get("KUBERNETES_SERVICE_HOST").map(String::as_str),
            Some("10.43.0.1")
        );
        assert_eq!(
            m.get("KUBERNETES_SERVICE_PORT_HTTPS").map(String::as_str),
            Some("443")
        );
        assert_eq!(
            m.get("WEB_SERVICE_HOST").map(String::as_str),
            Some("10.43.0.5")
        );
        assert!(!m.contains_key("OTHER_SERVICE_HOST"));
        let m = service_env_map(&services(), "test", false);
        assert!(m.contains_key("KUBERNETES_SERVICE_HOST"));
        assert!(!m.contains_key("WEB_SERVICE_HOST"));
    }

    fn inputs<'a>(
        objects: &'a Objects,
        services: &'a [Service],
        alloc: &'a BTreeMap<String, Quantity>,
        pod_ips: &'a [String],
        host_ips: &'a [String],
    ) -> EnvInputs<'a> {
        EnvInputs {
            objects,
            services,
            node_allocatable: alloc,
            pod_ips,
            host_ips,
        }
    }

    fn test_pod(container: serde_json::Value) -> Pod {
        pod(json!({
            "metadata": {"name": "dapi", "namespace": "test", "uid": "u-1",
                         "labels": {"app": "web", "tier": "front"}, "annotations": {"a": "x\"y"}},
            "spec": {"nodeName": "node-1", "serviceAccountName": "sa", "containers": [container]}}))
    }

    fn objects() -> Objects {
        Objects::default()
            .with_config_map(
                serde_json::from_value(json!({"metadata": {"name": "cm", "namespace": "test"},
                "data": {"B": "2", "A": "1", "bad=key": "x"}}))
                .unwrap(),
            )
            .with_secret(
                serde_json::from_value(json!({"metadata": {"name": "s", "namespace": "test"},
                "data": {"password": "aHVudGVyMg=="}}))
                .unwrap(),
            )
    }

    #[test]
    fn env_from_value_from_and_expansion() {
        let container = json!({"name": "c", "image": "i",
        "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"},
                    {"secretRef": {"name": "missing", "optional": true}}],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "LABELS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels"}}},
            {"name": "ANN", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "SA", "valueFrom": {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}},
            {"name": "HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
            {"name": "POD_IPS", "valueFrom": {"fieldRef": {"fieldPath": "status.podIPs"}}},
            {"name": "CPU_REQ_MILLI", "valueFrom": {"resourceFieldRef": {"resource": "requests.cpu", "divisor": "1m"}}},
            {"name": "CPU_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "MEM_LIMIT_MI", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "password"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope", "optional": true}}},
            {"name": "CM_A", "value": "override"},
            {"name": "URL", "value": "http://$(WEB_SERVICE_HOST):$(WEB_SERVICE_PORT)/$(POD_NAME)/$(UNSET)/$$(POD_NAME)"},
        ]});
        let p = test_pod(container);
        let alloc: BTreeMap<String, Quantity> = [("cpu".to_string(), Quantity("4".into()))].into();
        let objects = objects();
        let svcs = services();
        let pod_ips = ["10.42.0.7".to_string(), "fd00::7".to_string()];
        let host_ips = ["192.168.1.10".to_string()];
        let env = make_environment(
            &p,
            &super::super::spec_containers(&p)[0],
            &inputs(&objects, &svcs, &alloc, &pod_ips, &host_ips),
        )
        .unwrap();
        let got: BTreeMap<&str, &str> = env
            .vars
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let want = [
            ("CM_A", "override"),
            ("CM_B", "2"),
            ("POD_NAME", "dapi"),
            ("NS", "test"),
            ("UID", "u-1"),
            ("APP", "web"),
            ("LABELS", "app=\"web\"\ntier=\"front\""),
            ("ANN", "a=\"x\\\"y\""),
            ("NODE", "node-1"),
            ("SA", "sa"),
            ("HOST_IP", "192.168.1.10"),
            ("POD_IPS", "10.42.0.7,fd00::7"),
            ("CPU_REQ_MILLI", "250"),
            ("CPU_LIMIT", "4"),
            ("MEM_LIMIT_MI", "128"),
            ("PASSWORD", "hunter2"),
            ("URL", "http://10.43.0.5:80/dapi/$(UNSET)/$(POD_NAME)"),
            ("KUBERNETES_SERVICE_HOST", "10.43.0.1"),
            ("WEB_PORT", "tcp://10.43.0.5:80"),
        ];
        for (k, v) in want {
            assert_eq!(got.get(k).copied(), Some(v), "{k}");
        }
        assert!(!got.contains_key("OPT"));
        assert_eq!(env.skipped, vec!["CM_bad=key".to_string()]);
        // envFrom first (sorted keys, in place), env in order, then the Services, sorted.
        let names: Vec<&str> = env.vars.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(&names[..3], &["CM_A", "CM_B", "POD_NAME"]);
        let url = names.iter().position(|n| *n == "URL").unwrap();
        assert!(
            names[url + 1..].windows(2).all(|w| w[0] < w[1]),
            "{names:?}"
        );
        assert!(names[url + 1..]
            .iter()
            .all(|n| n.starts_with("KUBERNETES_") || n.starts_with("WEB_")));
    }

    /// The `CreateContainerConfigError` messages of upstream.
    #[test]
    fn missing_sources_fail_with_upstream_messages() {
        let objects = objects();
        let alloc = BTreeMap::new();
        let cases = [
            (
                json!({"envFrom": [{"configMapRef": {"name": "x"}}]}),
                "configmap \"x\" not found",
            ),
            (
                json!({"envFrom": [{"secretRef": {"name": "x"}}]}),
                "secret \"x\" not found",
            ),
            (
                json!({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]}),
                "couldn't find key k in ConfigMap test/cm",
            ),
            (
                json!({"env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}),
                "couldn't find key k in Secret test/s",
            ),
            (
                json!({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k"}}}]}),
                "configmap \"gone\" not found",
            ),
            (
                json!({"env": [{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]}),
                "field label not supported: spec.bogus",
            ),
            (
                json!({"env": [{"name": "A", "valueFrom": {"resourceFieldRef": {"resource": "limits.gpu"}}}]}),
                "unsupported container resource : limits.gpu",
            ),
        ];
        for (extra, want) in cases {
            let mut c = json!({"name": "c", "image": "i"});
            c.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            let p = test_pod(c);
            let err = make_environment(
                &p,
                &super::super::spec_containers(&p)[0],
                &inputs(&objects, &[], &alloc, &[], &[]),
            )
            .unwrap_err();
            assert_eq!(err.to_string(), want);
        }
        // Optional sources that are missing are skipped.
        let p = test_pod(json!({"name": "c", "image": "i",
            "envFrom": [{"configMapRef": {"name": "x", "optional": true}}],
            "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": true}}},
                    {"name": "B", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": true}}}]}));
        let env = make_environment(
            &p,
            &super::super::spec_containers(&p)[0],
            &inputs(&objects, &[], &alloc, &[], &[]),
        )
        .unwrap();
        assert!(env.vars.is_empty());
    }

    /// Mirrors `TestExtractContainerResourceValue` (`pkg/api/v1/resource/helpers_test.go`).
    #[test]
    fn resource_field_values() {
        let p = test_pod(json!({"name": "c", "image": "i", "resources": {
            "requests": {"cpu": "1500m", "memory": "1Gi", "ephemeral-storage": "1G"},
            "limits": {"cpu": "2", "memory": "2Gi"}}}));
        let c = &super::super::spec_containers(&p)[0];
        let alloc: BTreeMap<String, Quantity> =
            [("ephemeral-storage".to_string(), Quantity("10Gi".into()))].into();
        let q = |s: &str| Quantity(s.into());
        let cases = [
            ("requests.cpu", None, "2"),
            ("requests.cpu", Some(q("1m")), "1500"),
            ("requests.cpu", Some(q("100m")), "15"),
            ("limits.cpu", None, "2"),
            ("limits.memory", None, "2147483648"),
            ("limits.memory", Some(q("1Mi")), "2048"),
            ("requests.memory", Some(q("1G")), "2"),
            ("requests.ephemeral-storage", Some(q("1k")), "1000000"),
            ("limits.ephemeral-storage", Some(q("1Gi")), "10"),
        ];
        for (res, div, want) in cases {
            assert_eq!(
                resource_value(&p, c, res, None, div.as_ref(), &alloc).unwrap(),
                want,
                "{res} / {div:?}"
            );
        }
        assert_eq!(
            resource_value(&p, c, "limits.cpu", Some("nope"), None, &alloc)
                .unwrap_err()
                .to_string(),
            "container nope not found"
        );
    }
}
