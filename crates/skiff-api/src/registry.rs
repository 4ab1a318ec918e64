//! The resource registry: every built-in kind skiff serves, with how it is addressed
//! (group, version, plural, scope), what may be done to it (verbs, subresources), how kubectl
//! finds it (short names, categories) and its schema. Built from k8s-openapi's types, so group,
//! version, kind and plural are upstream's by construction; short names, categories and
//! subresources follow upstream's REST storage definitions (`pkg/registry/*/rest`).
//!
//! The registry is data: it decides nothing about HTTP or storage beyond the key prefix.

use k8s_openapi::{ListableResource, Resource};

/// The standard verbs of a resource that supports everything.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// A subresource served below an object (`.../pods/x/status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    /// `status`: writes change only `.status`.
    Status,
    /// `scale`: an `autoscaling/v1` Scale view of `.spec.replicas`.
    Scale,
    /// `pods/binding`: assigns a pod to a node.
    Binding,
    /// `pods/eviction`: a policy-checked delete.
    Eviction,
    /// `namespaces/finalize`: writes change only `.spec.finalizers` (the namespace
    /// controller removes its `kubernetes` finalizer through it).
    Finalize,
    /// `pods/log`: the container's log, from the pod's node's kubelet.
    Log,
    /// `pods/exec`: a command in a container, an upgraded stream to the kubelet.
    Exec,
    /// `pods/attach`: the container's own stdio, an upgraded stream to the kubelet.
    Attach,
    /// `pods/portforward`: connections to the pod's ports, an upgraded stream to the kubelet.
    PortForward,
}

impl Subresource {
    pub fn name(self) -> &'static str {
        match self {
            Subresource::Status => "status",
            Subresource::Scale => "scale",
            Subresource::Binding => "binding",
            Subresource::Eviction => "eviction",
            Subresource::Finalize => "finalize",
            Subresource::Log => "log",
            Subresource::Exec => "exec",
            Subresource::Attach => "attach",
            Subresource::PortForward => "portforward",
        }
    }

    /// Whether the subresource is a connection to the pod's node (upstream's "connect"
    /// verbs): served by proxying to the kubelet, not by the store.
    pub fn is_connect(self) -> bool {
        matches!(
            self,
            Subresource::Log | Subresource::Exec | Subresource::Attach | Subresource::PortForward
        )
    }

    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Status,
            Self::Scale,
            Self::Binding,
            Self::Eviction,
            Self::Finalize,
            Self::Log,
            Self::Exec,
            Self::Attach,
            Self::PortForward,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

/// One served kind at one group-version.
#[derive(Clone, Debug)]
pub struct ResourceInfo {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub list_kind: &'static str,
    /// The plural, as in URLs (`pods`).
    pub plural: &'static str,
    /// The lowercase kind (`pod`).
    pub singular: String,
    pub namespaced: bool,
    pub verbs: &'static [&'static str],
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Subresource],
    /// The JSON schema of the kind (for OpenAPI).
    pub schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    /// The schema's name (for OpenAPI component names).
    pub schema_name: fn() -> std::borrow::Cow<'static, str>,
    /// Decodes the JSON as the typed kind and encodes it again: fails on a field of the
    /// wrong type; drops fields the kind does not have (see [`unknown_fields`]). Encodes as Go
    /// does: with the fields Go always writes, which k8s-openapi's types omit when unset
    /// (`"status": {}`, a template's `"creationTimestamp": null`).
    pub normalize: fn(&serde_json::Value) -> Result<serde_json::Value, String>,
}

fn normalize<T: Resource + serde::de::DeserializeOwned + serde::Serialize>(
    value: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let typed = T::deserialize(value).map_err(|e| e.to_string())?;
    let mut out = serde_json::to_value(typed).map_err(|e| e.to_string())?;
    crate::defaults::fill_go_fields(T::GROUP, T::VERSION, T::KIND, &mut out);
    Ok(out)
}

/// The fields of `original` that `normalized` lost: the ones its kind does not have, as
/// dotted paths (`spec.replicasx`). Nulls are not fields.
pub fn unknown_fields(original: &serde_json::Value, normalized: &serde_json::Value) -> Vec<String> {
    use serde_json::Value;
    enum Step<'a> {
        Field(&'a str),
        Index(usize),
    }
    fn path_of(steps: &[Step<'_>]) -> String {
        let mut p = String::new();
        for step in steps {
            match step {
                Step::Field(k) => {
                    if !p.is_empty() {
                        p.push('.');
                    }
                    p.push_str(k);
                }
                Step::Index(i) => p.push_str(&format!("[{i}]")),
            }
        }
        p
    }
    // The path is built only for the fields reported.
    fn walk<'a>(a: &'a Value, b: Option<&Value>, steps: &mut Vec<Step<'a>>, out: &mut Vec<String>) {
        match (a, b) {
            (Value::Object(a), Some(Value::Object(b))) => {
                for (k, v) in a {
                    steps.push(Step::Field(k));
                    match b.get(k) {
                        None if !v.is_null() => out.push(path_of(steps)),
                        other => walk(v, other, steps, out),
                    }
                    steps.pop();
                }
            }
            (Value::Array(a), Some(Value::Array(b))) => {
                for (i, v) in a.iter().enumerate() {
                    steps.push(Step::Index(i));
                    walk(v, b.get(i), steps, out);
                    steps.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(original, Some(normalized), &mut Vec::new(), &mut out);
    out
}

impl ResourceInfo {
    /// `v1` for core, `apps/v1` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `pods` for core, `deployments.apps` otherwise (kubectl's fully qualified name).
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_owned()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn has(&self, sub: Subresource) -> bool {
        self.subresources.contains(&sub)
    }

    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    /// The datastore key prefix of every object of this kind: `/pods/`, `/apps/deployments/`.
    /// The group is part of it so two groups' kinds of the same plural never mix. It is the
    /// storage resource's (see [`crate::conversion`]): events.k8s.io/v1 events live under
    /// core's `/events/`, both HPA versions under `/autoscaling/horizontalpodautoscalers/`.
    pub fn key_prefix(&self) -> String {
        self.prefix_with(0)
    }

    /// [`ResourceInfo::key_prefix`] with room for `more` bytes after it.
    fn prefix_with(&self, more: usize) -> String {
        let storage = crate::conversion::storage_resource(self);
        let mut prefix =
            String::with_capacity(storage.group.len() + storage.plural.len() + 3 + more);
        prefix.push('/');
        if !storage.group.is_empty() {
            prefix.push_str(storage.group);
            prefix.push('/');
        }
        prefix.push_str(storage.plural);
        prefix.push('/');
        prefix
    }

    /// The prefix of every object of this kind in `namespace` (or all, when `None`).
    pub fn list_prefix(&self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced => {
                let mut prefix = self.prefix_with(ns.len() + 1);
                prefix.push_str(ns);
                prefix.push('/');
                prefix
            }
            _ => self.key_prefix(),
        }
    }

    /// The datastore key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        let ns = namespace.filter(|_| self.namespaced);
        let mut key = self.prefix_with(ns.map_or(0, |ns| ns.len() + 1) + name.len());
        if let Some(ns) = ns {
            key.push_str(ns);
            key.push('/');
        }
        key.push_str(name);
        key
    }
}

fn info<T>(
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    subresources: &'static [Subresource],
) -> ResourceInfo
where
    T: Resource
        + ListableResource
        + schemars::JsonSchema
        + serde::de::DeserializeOwned
        + serde::Serialize,
{
    let namespaced = std::any::type_name::<T::Scope>().ends_with("NamespaceResourceScope");
    ResourceInfo {
        group: T::GROUP,
        version: T::VERSION,
        kind: T::KIND,
        list_kind: T::LIST_KIND,
        plural: T::URL_PATH_SEGMENT,
        singular: T::KIND.to_ascii_lowercase(),
        namespaced,
        verbs: ALL_VERBS,
        short_names,
        categories,
        subresources,
        schema: T::json_schema,
        schema_name: T::schema_name,
        normalize: normalize::<T>,
    }
}

/// Every served resource, looked up by group, version and plural.
#[derive(Clone, Debug)]
pub struct Registry {
    resources: Vec<ResourceInfo>,
}

const ALL: &[&str] = &["all"];
const STATUS: &[Subresource] = &[Subresource::Status];
const STATUS_SCALE: &[Subresource] = &[Subresource::Status, Subresource::Scale];
const NONE: &[&str] = &[];
const NO_SUB: &[Subresource] = &[];

impl Registry {
    /// The built-in kinds of Kubernetes v1.33 that skiff serves.
    pub fn builtin() -> Self {
        use k8s_openapi::api::*;
        use Subresource::*;
        let resources = vec![
            // core/v1
            info::<core::v1::Pod>(
                &["po"],
                ALL,
                &[Status, Binding, Eviction, Log, Exec, Attach, PortForward],
            ),
            info::<core::v1::Service>(&["svc"], ALL, STATUS),
            info::<core::v1::ConfigMap>(&["cm"], NONE, NO_SUB),
            info::<core::v1::Secret>(NONE, NONE, NO_SUB),
            info::<core::v1::Namespace>(
                &["ns"],
                NONE,
                &[Subresource::Finalize, Subresource::Status],
            ),
            info::<core::v1::Node>(&["no"], NONE, STATUS),
            info::<core::v1::ServiceAccount>(&["sa"], NONE, NO_SUB),
            info::<core::v1::Endpoints>(&["ep"], NONE, NO_SUB),
            info::<core::v1::Event>(&["ev"], NONE, NO_SUB),
            info::<core::v1::LimitRange>(&["limits"], NONE, NO_SUB),
            info::<core::v1::PersistentVolume>(&["pv"], NONE, STATUS),
            info::<core::v1::PersistentVolumeClaim>(&["pvc"], NONE, STATUS),
            info::<core::v1::PodTemplate>(NONE, NONE, NO_SUB),
            info::<core::v1::ReplicationController>(&["rc"], ALL, STATUS_SCALE),
            info::<core::v1::ResourceQuota>(&["quota"], NONE, STATUS),
            ResourceInfo {
                verbs: &["get", "list"],
                ..info::<core::v1::ComponentStatus>(&["cs"], NONE, NO_SUB)
            },
            // apps/v1
            info::<apps::v1::Deployment>(&["deploy"], ALL, STATUS_SCALE),
            info::<apps::v1::ReplicaSet>(&["rs"], ALL, STATUS_SCALE),
            info::<apps::v1::StatefulSet>(&["sts"], ALL, STATUS_SCALE),
            info::<apps::v1::DaemonSet>(&["ds"], ALL, STATUS),
            info::<apps::v1::ControllerRevision>(NONE, NONE, NO_SUB),
            // batch/v1
            info::<batch::v1::Job>(NONE, ALL, STATUS),
            info::<batch::v1::CronJob>(&["cj"], ALL, STATUS),
            // autoscaling
            info::<autoscaling::v2::HorizontalPodAutoscaler>(&["hpa"], ALL, STATUS),
            info::<autoscaling::v1::HorizontalPodAutoscaler>(&["hpa"], ALL, STATUS),
            // policy/v1
            info::<policy::v1::PodDisruptionBudget>(&["pdb"], NONE, STATUS),
            // rbac.authorization.k8s.io/v1
            info::<rbac::v1::ClusterRole>(NONE, NONE, NO_SUB),
            info::<rbac::v1::ClusterRoleBinding>(NONE, NONE, NO_SUB),
            info::<rbac::v1::Role>(NONE, NONE, NO_SUB),
            info::<rbac::v1::RoleBinding>(NONE, NONE, NO_SUB),
            // networking.k8s.io/v1
            info::<networking::v1::Ingress>(&["ing"], NONE, STATUS),
            info::<networking::v1::IngressClass>(NONE, NONE, NO_SUB),
            info::<networking::v1::NetworkPolicy>(&["netpol"], NONE, NO_SUB),
            info::<networking::v1::IPAddress>(&["ip"], NONE, NO_SUB),
            info::<networking::v1::ServiceCIDR>(NONE, NONE, STATUS),
            // discovery.k8s.io/v1
            info::<discovery::v1::EndpointSlice>(NONE, NONE, NO_SUB),
            // coordination.k8s.io/v1
            info::<coordination::v1::Lease>(NONE, NONE, NO_SUB),
            // events.k8s.io/v1
            info::<events::v1::Event>(&["ev"], NONE, NO_SUB),
            // storage.k8s.io/v1
            info::<storage::v1::StorageClass>(&["sc"], NONE, NO_SUB),
            info::<storage::v1::CSIDriver>(NONE, NONE, NO_SUB),
            info::<storage::v1::CSINode>(NONE, NONE, NO_SUB),
            info::<storage::v1::CSIStorageCapacity>(NONE, NONE, NO_SUB),
            info::<storage::v1::VolumeAttachment>(NONE, NONE, STATUS),
            // scheduling.k8s.io/v1
            info::<scheduling::v1::PriorityClass>(&["pc"], NONE, NO_SUB),
            // node.k8s.io/v1
            info::<node::v1::RuntimeClass>(NONE, NONE, NO_SUB),
            // certificates.k8s.io/v1
            info::<certificates::v1::CertificateSigningRequest>(&["csr"], NONE, STATUS),
            // admissionregistration.k8s.io/v1
            info::<admissionregistration::v1::MutatingWebhookConfiguration>(
                NONE,
                &["api-extensions"],
                NO_SUB,
            ),
            info::<admissionregistration::v1::ValidatingWebhookConfiguration>(
                NONE,
                &["api-extensions"],
                NO_SUB,
            ),
            info::<admissionregistration::v1::ValidatingAdmissionPolicy>(
                NONE,
                &["api-extensions"],
                STATUS,
            ),
            info::<admissionregistration::v1::ValidatingAdmissionPolicyBinding>(
                NONE,
                &["api-extensions"],
                NO_SUB,
            ),
        ];
        Self { resources }
    }

    pub fn all(&self) -> &[ResourceInfo] {
        &self.resources
    }

    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    pub fn by_kind(&self, group: &str, version: &str, kind: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
    }

    /// The groups, in the order upstream's discovery lists them (core first), each with its
    /// versions, preferred version first.
    pub fn groups(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
        for r in &self.resources {
            match groups.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) => {
                    if !versions.contains(&r.version) {
                        versions.push(r.version);
                    }
                }
                None => groups.push((r.group, vec![r.version])),
            }
        }
        groups
    }

    /// The resources of one group-version, in registry order.
    pub fn in_group_version<'a>(
        &'a self,
        group: &'a str,
        version: &'a str,
    ) -> impl Iterator<Item = &'a ResourceInfo> + 'a {
        self.resources
            .iter()
            .filter(move |r| r.group == group && r.version == version)
    }

    /// The resources whose versions are the ones their objects are stored in: each stored
    /// object belongs to exactly one of them (what to walk to visit every object once).
    pub fn storage_resources(&self) -> impl Iterator<Item = &ResourceInfo> + '_ {
        self.resources
            .iter()
            .filter(|r| crate::conversion::is_storage_version(r))
    }

    /// The storage resource of `info` (itself, for a kind stored as served).
    pub fn storage_of<'a>(&'a self, info: &'a ResourceInfo) -> &'a ResourceInfo {
        let storage = crate::conversion::storage_resource(info);
        self.get(storage.group, storage.version, storage.plural)
            .unwrap_or(info)
    }

    /// Whether the group-version is served.
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.in_group_version(group, version).next().is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_addressed_as_upstream() {
        let reg = Registry::builtin();
        let pod = reg.get("", "v1", "pods").unwrap();
        assert_eq!(
            (pod.kind, pod.list_kind, pod.namespaced),
            ("Pod", "PodList", true)
        );
        assert_eq!(pod.api_version(), "v1");
        assert_eq!(pod.key(Some("default"), "web"), "/pods/default/web");
        assert_eq!(pod.list_prefix(Some("default")), "/pods/default/");
        assert_eq!(pod.list_prefix(None), "/pods/");
        let ns = reg.get("", "v1", "namespaces").unwrap();
        assert!(!ns.namespaced);
        assert_eq!(ns.key(Some("ignored"), "default"), "/namespaces/default");
        let deploy = reg.get("apps", "v1", "deployments").unwrap();
        assert_eq!(deploy.api_version(), "apps/v1");
        assert_eq!(deploy.key(Some("a"), "b"), "/apps/deployments/a/b");
        assert_eq!(deploy.list_prefix(Some("a")), "/apps/deployments/a/");
        assert_eq!(deploy.list_prefix(None), "/apps/deployments/");
        assert!(deploy.has(Subresource::Scale) && deploy.has(Subresource::Status));
        assert_eq!(deploy.qualified_plural(), "deployments.apps");
        let cs = reg.get("", "v1", "componentstatuses").unwrap();
        assert!(!cs.supports("create") && cs.supports("list"));
    }

    #[test]
    fn every_group_in_the_issue_is_served() {
        let reg = Registry::builtin();
        for (g, v) in [
            ("", "v1"),
            ("apps", "v1"),
            ("batch", "v1"),
            ("autoscaling", "v1"),
            ("autoscaling", "v2"),
            ("policy", "v1"),
            ("rbac.authorization.k8s.io", "v1"),
            ("networking.k8s.io", "v1"),
            ("discovery.k8s.io", "v1"),
            ("coordination.k8s.io", "v1"),
            ("events.k8s.io", "v1"),
            ("storage.k8s.io", "v1"),
            ("scheduling.k8s.io", "v1"),
            ("node.k8s.io", "v1"),
            ("certificates.k8s.io", "v1"),
            ("admissionregistration.k8s.io", "v1"),
        ] {
            assert!(reg.serves(g, v), "{g}/{v}");
        }
        let groups = reg.groups();
        assert_eq!(groups[0].0, "");
        let autoscaling = groups.iter().find(|(g, _)| *g == "autoscaling").unwrap();
        assert_eq!(autoscaling.1, vec!["v2", "v1"], "v2 is preferred");
    }

    #[test]
    fn normalize_finds_wrong_types_and_unknown_fields() {
        let reg = Registry::builtin();
        let deploy = reg.get("apps", "v1", "deployments").unwrap();
        let obj = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "labels": null},
            "spec": {"replicas": 2, "replicasx": 3, "selector": {}, "template": {"spec": {"containers": [{"name": "c", "imagex": "i"}]}}}});
        let normalized = (deploy.normalize)(&obj).unwrap();
        assert_eq!(
            unknown_fields(&obj, &normalized),
            vec!["spec.replicasx", "spec.template.spec.containers[0].imagex"]
        );
        let bad = serde_json::json!({"spec": {"replicas": "two"}});
        assert!((deploy.normalize)(&bad).is_err());
    }

    #[test]
    fn versions_of_one_kind_share_their_storage_and_nothing_else_does() {
        let reg = Registry::builtin();
        let hpa1 = reg
            .get("autoscaling", "v1", "horizontalpodautoscalers")
            .unwrap();
        let hpa2 = reg
            .get("autoscaling", "v2", "horizontalpodautoscalers")
            .unwrap();
        assert_eq!(
            hpa1.key(Some("a"), "h"),
            "/autoscaling/horizontalpodautoscalers/a/h"
        );
        assert_eq!(hpa1.key_prefix(), hpa2.key_prefix());
        let core = reg.get("", "v1", "events").unwrap();
        let events = reg.get("events.k8s.io", "v1", "events").unwrap();
        assert_eq!(events.key(Some("a"), "e"), "/events/a/e");
        assert_eq!(events.key_prefix(), core.key_prefix());
        // Upstream shares storage between no other served resources: every other prefix
        // belongs to one resource, and each shared one has exactly one storage version.
        let mut by_prefix: std::collections::BTreeMap<String, Vec<&ResourceInfo>> =
            Default::default();
        for r in reg.all() {
            by_prefix.entry(r.key_prefix()).or_default().push(r);
        }
        for (prefix, rs) in &by_prefix {
            let storage = rs
                .iter()
                .filter(|r| crate::conversion::is_storage_version(r));
            assert_eq!(storage.count(), 1, "{prefix}");
            if rs.len() > 1 {
                assert!(
                    prefix == "/events/" || prefix == "/autoscaling/horizontalpodautoscalers/",
                    "{prefix} is shared"
                );
            }
        }
        assert_eq!(reg.storage_resources().count(), by_prefix.len());
        assert_eq!(reg.storage_of(hpa1).version, "v2");
        assert_eq!(reg.storage_of(events).group, "");
        assert_eq!(reg.storage_of(core).group, "");
    }

    #[test]
    fn plurals_are_unique_within_a_group_version() {
        let reg = Registry::builtin();
        let mut seen = std::collections::HashSet::new();
        for r in reg.all() {
            assert!(seen.insert((r.group, r.version, r.plural)), "{}", r.plural);
        }
    }
}
