//! Upstream's validation of built-in kinds (k8s.io/kubernetes `pkg/apis/*/validation` plus the
//! checks the registry strategies add, such as selector immutability), on objects as JSON in
//! their served version, after defaulting and metadata bookkeeping. Every problem is reported,
//! each as a [`Cause`] with upstream's reason, message and field path, in upstream's order, so
//! `ApiError::invalid` builds the same 422 a real API server answers.
//!
//! Kinds without a dedicated table still get upstream's metadata validation (name rule per
//! kind, namespace, labels, annotations, owner references, finalizers).

mod core;
mod cron;
mod field;
mod meta;
mod names;
mod pod;
pub mod quantity;
pub mod scheduling;
mod workloads;

#[cfg(test)]
mod tests;

use std::sync::OnceLock;

use serde_json::Value;

use crate::registry::Registry;
use crate::status::Cause;
use field::Path;
use names::NameRule;

/// Whether the kind is namespaced, from the registry (unknown kinds: when the object says so).
fn namespaced(group: &str, version: &str, kind: &str, obj: &Value) -> bool {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    let reg = REGISTRY.get_or_init(Registry::builtin);
    match reg.by_kind(group, version, kind) {
        Some(info) => info.namespaced,
        None => !meta_ns(obj).is_empty(),
    }
}

fn meta_ns(obj: &Value) -> &str {
    field::s(field::field(obj, "metadata"), "namespace")
}

/// How a kind without a dedicated table names its objects.
fn name_rule(group: &str, kind: &str) -> NameRule {
    match (group, kind) {
        ("rbac.authorization.k8s.io", _) | ("certificates.k8s.io", "CertificateSigningRequest") => {
            NameRule::PathSegment
        }
        // IP address objects are named by their address, which a DNS rule would reject.
        ("networking.k8s.io", "IPAddress") => NameRule::PathSegment,
        ("", "Namespace") => NameRule::Label,
        ("", "Service") => NameRule::Dns1035,
        ("apps", "StatefulSet") => NameRule::Label,
        _ => NameRule::Subdomain,
    }
}

/// Validates an object being created; empty when it is valid.
pub fn validate_create(group: &str, version: &str, kind: &str, obj: &Value) -> Vec<Cause> {
    let mp = Path::new("metadata");
    match (group, kind) {
        ("", "Pod") => pod::pod_create(obj),
        ("", "PodTemplate") => workloads::pod_template(obj),
        ("", "ReplicationController") => workloads::replication_controller(obj),
        ("", "Service") => core::service(obj),
        ("", "ConfigMap") => core::config_map(obj),
        ("", "Secret") => core::secret(obj),
        ("", "Namespace") => core::namespace(obj),
        ("", "Node") => core::node(obj),
        ("", "Event") => core::event_create(obj, false),
        ("events.k8s.io", "Event") => core::event_create(obj, true),
        ("", "PersistentVolumeClaim") => core::pvc(obj),
        ("", "PersistentVolume") => core::pv(obj),
        ("apps", "Deployment") => workloads::deployment(obj),
        ("apps", "ReplicaSet") => workloads::replica_set(obj),
        ("apps", "StatefulSet") => workloads::stateful_set(obj),
        ("apps", "DaemonSet") => workloads::daemon_set(obj),
        ("batch", "Job") => workloads::job(obj),
        ("batch", "CronJob") => workloads::cron_job(obj),
        ("coordination.k8s.io", "Lease") => {
            let mut errs = meta::object_meta(obj, true, NameRule::Subdomain, &mp);
            errs.extend(core::lease_spec(obj));
            errs
        }
        ("rbac.authorization.k8s.io", "Role") => core::role(obj, false),
        ("rbac.authorization.k8s.io", "ClusterRole") => core::role(obj, true),
        ("rbac.authorization.k8s.io", "RoleBinding") => core::role_binding(obj, false),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => core::role_binding(obj, true),
        ("policy", "PodDisruptionBudget") => core::pdb(obj),
        ("autoscaling", "HorizontalPodAutoscaler") => core::hpa(obj),
        ("scheduling.k8s.io", "PriorityClass") => scheduling::priority_class(obj),
        _ => meta::object_meta(
            obj,
            namespaced(group, version, kind, obj),
            name_rule(group, kind),
            &mp,
        ),
    }
}

/// Validates an update from `old` to `new`; empty when it is allowed.
pub fn validate_update(
    group: &str,
    version: &str,
    kind: &str,
    old: &Value,
    new: &Value,
) -> Vec<Cause> {
    let mp = Path::new("metadata");
    match (group, kind) {
        ("", "Pod") => pod::pod_update(new, old),
        ("", "PodTemplate") => workloads::pod_template_update(new, old),
        ("", "ReplicationController") => workloads::replication_controller_update(new, old),
        ("", "Service") => core::service_update(new, old),
        ("", "ConfigMap") => core::config_map_update(new, old),
        ("", "Secret") => core::secret_update(new, old),
        ("", "Node") => core::node_update(new, old),
        ("", "ServiceAccount") => {
            let mut errs = meta::object_meta_update(new, old, &mp);
            errs.extend(meta::object_meta(new, true, NameRule::Subdomain, &mp));
            errs
        }
        ("", "Event") => core::event_update(new, old, false),
        ("events.k8s.io", "Event") => core::event_update(new, old, true),
        ("", "PersistentVolumeClaim") => core::pvc_update(new, old),
        ("", "PersistentVolume") => core::pv_update(new, old),
        ("apps", "Deployment") => workloads::deployment_update(new, old),
        ("apps", "ReplicaSet") => workloads::replica_set_update(new, old),
        ("apps", "StatefulSet") => workloads::stateful_set_update(new, old),
        ("apps", "DaemonSet") => workloads::daemon_set_update(new, old),
        ("batch", "Job") => workloads::job_update(new, old),
        ("batch", "CronJob") => workloads::cron_job_update(new, old),
        ("coordination.k8s.io", "Lease") => {
            let mut errs = meta::object_meta_update(new, old, &mp);
            errs.extend(core::lease_spec(new));
            errs
        }
        ("rbac.authorization.k8s.io", "Role") => {
            let mut errs = core::role(new, false);
            errs.extend(meta::object_meta_update(new, old, &mp));
            errs
        }
        ("rbac.authorization.k8s.io", "ClusterRole") => {
            let mut errs = core::role(new, true);
            errs.extend(meta::object_meta_update(new, old, &mp));
            errs
        }
        ("rbac.authorization.k8s.io", "RoleBinding") => core::role_binding_update(new, old, false),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            core::role_binding_update(new, old, true)
        }
        ("policy", "PodDisruptionBudget") => {
            let mut errs = meta::object_meta_update(new, old, &mp);
            errs.extend(core::pdb(new));
            errs
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            let mut errs = meta::object_meta_update(new, old, &mp);
            errs.extend(core::hpa(new));
            errs
        }
        ("scheduling.k8s.io", "PriorityClass") => scheduling::priority_class_update(new, old),
        _ => {
            let _ = version;
            meta::object_meta_update(new, old, &mp)
        }
    }
}
