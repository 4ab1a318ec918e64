//! Patch metadata: each field's strategic merge patch strategy and merge key, as upstream's
//! `patchStrategy`/`patchMergeKey` struct tags (k8s.io/api `types.go`), and the parsing of a
//! strategy string (upstream's `extractRetainKeysPatchStrategy`). Data only.

/// Upstream's strategic merge patch metadata (`patchStrategy`/`patchMergeKey` struct tags of
/// k8s.io/api) for the served kinds: (schema, field, strategy, merge key). The one table both
/// users read: the SMP engine ([`super::strategic`]) merges by it, and the OpenAPI documents
/// publish it as `x-kubernetes-patch-strategy`/`x-kubernetes-patch-merge-key`, from which
/// client-side `kubectl apply` computes its three-way patch (k8s-openapi drops the tags; without
/// them kubectl would treat `containers` as atomic and could never remove a container or an env
/// var by merge). The list is that of v1.33's tags, checked against the tags compiled into
/// kubectl v1.32/v1.33. A field that is not here has no strategy: maps merge, lists are
/// replaced whole (PodSpec `tolerations`, NodeSpec `taints`, Container `args`, ...).
// One line per field reads as the table it is; rustfmt would spread each over six lines.
#[rustfmt::skip]
pub const PATCH_STRATEGIES: &[(&str, &str, &str, Option<&str>)] = &[
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", "merge", None),
    ("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", "merge", Some("uid")),
    ("io.k8s.api.core.v1.PodSpec", "volumes", "merge,retainKeys", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "initContainers", "merge", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "containers", "merge", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "ephemeralContainers", "merge", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "imagePullSecrets", "merge", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "hostAliases", "merge", Some("ip")),
    ("io.k8s.api.core.v1.PodSpec", "topologySpreadConstraints", "merge", Some("topologyKey")),
    ("io.k8s.api.core.v1.PodSpec", "schedulingGates", "merge", Some("name")),
    ("io.k8s.api.core.v1.PodSpec", "resourceClaims", "merge,retainKeys", Some("name")),
    ("io.k8s.api.core.v1.Container", "ports", "merge", Some("containerPort")),
    ("io.k8s.api.core.v1.Container", "env", "merge", Some("name")),
    ("io.k8s.api.core.v1.Container", "volumeMounts", "merge", Some("mountPath")),
    ("io.k8s.api.core.v1.Container", "volumeDevices", "merge", Some("devicePath")),
    ("io.k8s.api.core.v1.EphemeralContainer", "ports", "merge", Some("containerPort")),
    ("io.k8s.api.core.v1.EphemeralContainer", "env", "merge", Some("name")),
    ("io.k8s.api.core.v1.EphemeralContainer", "volumeMounts", "merge", Some("mountPath")),
    ("io.k8s.api.core.v1.EphemeralContainer", "volumeDevices", "merge", Some("devicePath")),
    ("io.k8s.api.core.v1.ContainerStatus", "volumeMounts", "merge", Some("mountPath")),
    ("io.k8s.api.core.v1.ContainerStatus", "allocatedResourcesStatus", "merge", Some("name")),
    ("io.k8s.api.core.v1.PodStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.core.v1.PodStatus", "podIPs", "merge", Some("ip")),
    ("io.k8s.api.core.v1.PodStatus", "hostIPs", "merge", Some("ip")),
    ("io.k8s.api.core.v1.PodStatus", "resourceClaimStatuses", "merge,retainKeys", Some("name")),
    ("io.k8s.api.core.v1.ServiceSpec", "ports", "merge", Some("port")),
    ("io.k8s.api.core.v1.ServiceStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.core.v1.ServiceAccount", "secrets", "merge", Some("name")),
    ("io.k8s.api.core.v1.NodeSpec", "podCIDRs", "merge", None),
    ("io.k8s.api.core.v1.NodeStatus", "addresses", "merge", Some("type")),
    ("io.k8s.api.core.v1.NodeStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.core.v1.NamespaceStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.core.v1.PersistentVolumeClaimStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.core.v1.ReplicationControllerStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.core.v1.ComponentStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.apps.v1.DeploymentSpec", "strategy", "retainKeys", None),
    ("io.k8s.api.apps.v1.DeploymentStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.apps.v1.ReplicaSetStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.apps.v1.DaemonSetStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.apps.v1.StatefulSetStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.batch.v1.JobStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.policy.v1.PodDisruptionBudgetSpec", "selector", "replace", None),
    ("io.k8s.api.policy.v1.PodDisruptionBudgetStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.networking.v1.ServiceCIDRStatus", "conditions", "merge", Some("type")),
    ("io.k8s.api.storage.v1.CSINodeSpec", "drivers", "merge", Some("name")),
    ("io.k8s.api.admissionregistration.v1.MutatingWebhookConfiguration", "webhooks", "merge", Some("name")),
    ("io.k8s.api.admissionregistration.v1.ValidatingWebhookConfiguration", "webhooks", "merge", Some("name")),
    ("io.k8s.api.admissionregistration.v1.MutatingWebhook", "matchConditions", "merge", Some("name")),
    ("io.k8s.api.admissionregistration.v1.ValidatingWebhook", "matchConditions", "merge", Some("name")),
    ("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec", "matchConditions", "merge", Some("name")),
    ("io.k8s.api.admissionregistration.v1.ValidatingAdmissionPolicySpec", "variables", "merge", Some("name")),
];

/// The strategy of one field, parsed: `merge,retainKeys` is the list strategy `merge` with
/// `retain_keys` (which matters only to clients building `$retainKeys`; the server applies a
/// `$retainKeys` directive wherever it finds one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldStrategy {
    /// `merge`, `replace` or empty (the default: maps merge, lists are replaced).
    pub strategy: &'static str,
    pub retain_keys: bool,
    pub merge_key: Option<&'static str>,
}

impl FieldStrategy {
    pub fn is_merge(&self) -> bool {
        self.strategy == "merge"
    }

    pub fn is_replace(&self) -> bool {
        self.strategy == "replace"
    }
}

/// The strategy of `field` in the schema named `schema` (`io.k8s.api.core.v1.PodSpec`); the
/// default (no strategy) for a field that has none.
pub fn lookup(schema: &str, field: &str) -> FieldStrategy {
    PATCH_STRATEGIES
        .iter()
        .find(|(s, f, _, _)| *s == schema && *f == field)
        .map(|&(_, _, strategy, merge_key)| {
            let (retain_keys, strategy) = split_retain_keys(strategy);
            FieldStrategy {
                strategy,
                retain_keys,
                merge_key,
            }
        })
        .unwrap_or_default()
}

/// `retainKeys` and the other strategy of a comma-separated strategy string. The table holds
/// only well-formed strings (a unit test checks), so there is no error case to carry.
fn split_retain_keys(strategies: &'static str) -> (bool, &'static str) {
    let mut retain_keys = false;
    let mut other = "";
    for s in strategies.split(',').filter(|s| !s.is_empty()) {
        if s == "retainKeys" {
            retain_keys = true;
        } else {
            other = s;
        }
    }
    (retain_keys, other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_parse_as_upstream() {
        let volumes = lookup("io.k8s.api.core.v1.PodSpec", "volumes");
        assert!(volumes.is_merge() && volumes.retain_keys);
        assert_eq!(volumes.merge_key, Some("name"));
        let strategy = lookup("io.k8s.api.apps.v1.DeploymentSpec", "strategy");
        assert_eq!((strategy.strategy, strategy.retain_keys), ("", true));
        let ports = lookup("io.k8s.api.core.v1.Container", "ports");
        assert_eq!(ports.merge_key, Some("containerPort"));
        let tolerations = lookup("io.k8s.api.core.v1.PodSpec", "tolerations");
        assert_eq!(tolerations, FieldStrategy::default());
        let finalizers = lookup(
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta",
            "finalizers",
        );
        assert!(finalizers.is_merge() && finalizers.merge_key.is_none());
    }

    #[test]
    fn every_strategy_string_is_well_formed() {
        for (schema, field, strategy, merge_key) in PATCH_STRATEGIES {
            let parts: Vec<&str> = strategy.split(',').collect();
            let others = parts.iter().filter(|p| **p != "retainKeys").count();
            assert!(parts.len() <= 2 && others <= 1, "{schema}.{field}");
            for p in parts {
                assert!(
                    ["merge", "replace", "retainKeys"].contains(&p),
                    "{schema}.{field}"
                );
            }
            // A merge key means a list of maps merged by it.
            if merge_key.is_some() {
                assert!(strategy.contains("merge"), "{schema}.{field}");
            }
        }
    }
}
