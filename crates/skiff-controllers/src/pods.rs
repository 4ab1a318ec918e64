//! What many controllers need to know about pods and owners: whether a pod is active,
//! ready or available, the controller reference of an object, and a pod made from a
//! template for an owner. Upstream counterpart: pkg/controller/controller_utils.go and
//! k8s.io/kubectl's podutil (the same rules kubectl reads status with).
//!
//! Pure functions over k8s-openapi types; nothing here talks to the API.

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Resource;

/// Phase `Succeeded` or `Failed`.
pub fn is_terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// Not terminated and not being deleted (upstream's `IsPodActive`).
pub fn is_active(pod: &Pod) -> bool {
    !is_terminated(pod) && pod.metadata.deletion_timestamp.is_none()
}

/// The pod's `Ready` condition is `True`.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// When the pod's `Ready` condition last became `True`, if it is `True` (a `True` condition
/// with no time counts as ready since ever).
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    Some(
        condition
            .last_transition_time
            .as_ref()
            .map_or(Timestamp::MIN, |t| t.0),
    )
}

/// Ready for at least `min_ready_seconds` at `now` (upstream's `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    let Some(since) = ready_since(pod) else {
        return false;
    };
    min_ready_seconds <= 0
        || since
            .checked_add(SignedDuration::from_secs(i64::from(min_ready_seconds)))
            .is_ok_and(|t| t <= now)
}

/// The owner reference with `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// A controller reference to `owner`, as upstream's `NewControllerRef`: `controller` and
/// `blockOwnerDeletion` both true.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Upstream's name prefix for an owner's pods: `<owner>-`, shortened so that the
/// generated name stays a valid name (the server adds five characters).
pub fn pods_prefix(owner_name: &str) -> String {
    // 63 for a label value limit that kubectl and DNS rely on, less the generated suffix.
    const MAX: usize = 63 - 5;
    let mut prefix = format!("{owner_name}-");
    if prefix.len() > MAX {
        prefix.truncate(MAX);
    }
    prefix
}

/// A pod from `template` for `owner` (upstream's `GetPodFromTemplate`): the template's
/// labels, annotations, finalizers and spec, `generateName` from the owner, and a
/// controller reference to it.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    generate_name: &str,
    owner: OwnerReference,
) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            namespace: Some(namespace.to_owned()),
            generate_name: Some(generate_name.to_owned()),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// `namespace/name` of an object: the key of controllers' work queues and expectations.
pub fn key_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod_ready_at(t: Option<Timestamp>, phase: &str) -> Pod {
        Pod {
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: t.map(|t| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(t)),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let now = Timestamp::now();
        let pod = pod_ready_at(Some(now - SignedDuration::from_secs(5)), "Running");
        assert!(is_ready(&pod));
        assert!(is_available(&pod, 0, now));
        assert!(is_available(&pod, 5, now));
        assert!(!is_available(&pod, 6, now));
        assert!(!is_available(&pod_ready_at(None, "Running"), 0, now));
    }

    #[test]
    fn terminated_and_deleting_pods_are_not_active() {
        assert!(is_active(&pod_ready_at(None, "Pending")));
        assert!(!is_active(&pod_ready_at(None, "Succeeded")));
        assert!(!is_active(&pod_ready_at(None, "Failed")));
        let mut deleting = pod_ready_at(None, "Running");
        deleting.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        assert!(!is_active(&deleting));
    }

    #[test]
    fn long_owner_names_give_valid_prefixes() {
        assert_eq!(pods_prefix("web"), "web-");
        assert_eq!(pods_prefix(&"a".repeat(80)).len(), 58);
    }
}
