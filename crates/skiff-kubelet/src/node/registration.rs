//! Registering the node: the Node object a kubelet creates, and on `409 AlreadyExists` the
//! takeover of the existing one (its default labels and skiff's extra labels brought up to
//! date, the attach/detach annotation set). Taints are only given at creation.
//!
//! Upstream: pkg/kubelet/kubelet_node_status.go (`initialNode`, `registerWithAPIServer`,
//! `tryRegisterWithAPIServer`, `reconcileDefaultLabels`, `reconcileCMADAnnotationWithExistingNode`).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeSpec, NodeStatus, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{json, Map, Value};

use super::common;

/// The labels the node carries: a kubelet's defaults, then the configured extras.
pub fn labels(name: &str, extra: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut labels = common::default_labels(name);
    labels.extend(extra.clone());
    labels
}

/// The Node to create: labels, the attach/detach annotation, the registration taints and
/// the first status.
pub fn initial_node(
    name: &str,
    extra_labels: &BTreeMap<String, String>,
    taints: &[Taint],
    status: NodeStatus,
) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels(name, extra_labels)),
            annotations: Some(
                [(
                    common::CONTROLLER_MANAGED_ATTACH_DETACH.to_owned(),
                    "true".to_owned(),
                )]
                .into(),
            ),
            ..ObjectMeta::default()
        },
        spec: (!taints.is_empty()).then(|| NodeSpec {
            taints: Some(taints.to_vec()),
            ..NodeSpec::default()
        }),
        status: Some(status),
    }
}

/// The merge patch that takes `existing` over (labels and annotation that differ from
/// `wanted`'s), or `None` when it already matches.
pub fn takeover_patch(existing: &Node, wanted: &Node) -> Option<Value> {
    let differing = |have: Option<&BTreeMap<String, String>>,
                     want: Option<&BTreeMap<String, String>>| {
        let mut out = Map::new();
        for (k, v) in want.into_iter().flatten() {
            if have.and_then(|h| h.get(k)) != Some(v) {
                out.insert(k.clone(), Value::String(v.clone()));
            }
        }
        out
    };
    let labels = differing(
        existing.metadata.labels.as_ref(),
        wanted.metadata.labels.as_ref(),
    );
    let annotations = differing(
        existing.metadata.annotations.as_ref(),
        wanted.metadata.annotations.as_ref(),
    );
    if labels.is_empty() && annotations.is_empty() {
        return None;
    }
    let mut metadata = Map::new();
    if !labels.is_empty() {
        metadata.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        metadata.insert("annotations".into(), Value::Object(annotations));
    }
    Some(json!({ "metadata": metadata }))
}

fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// Whether a registration error may pass (the server unreachable, throttling, a 5xx).
fn retryable(e: &kube::Error) -> bool {
    code(e).is_none_or(|c| c == 429 || c >= 500)
}

/// At most this many registration attempts (upstream retries forever, 100 ms doubling to 7 s;
/// a bounded loop lets the caller report the failure).
pub const MAX_ATTEMPTS: u32 = 40;

/// Creates `wanted`, or takes the existing Node over; retries what may pass.
pub async fn register(api: &Api<Node>, wanted: &Node) -> Result<Node, kube::Error> {
    let name = wanted.metadata.name.clone().unwrap_or_default();
    let mut delay = Duration::from_millis(100);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = match api.create(&PostParams::default(), wanted).await {
            Err(e) if code(&e) == Some(409) => match api.get(&name).await {
                Ok(existing) => match takeover_patch(&existing, wanted) {
                    Some(patch) => {
                        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                            .await
                    }
                    None => Ok(existing),
                },
                Err(e) => Err(e),
            },
            other => other,
        };
        match result {
            Ok(node) => {
                tracing::info!(node = %name, "node registered");
                return Ok(node);
            }
            Err(e) if retryable(&e) && attempt < MAX_ATTEMPTS => {
                tracing::warn!(node = %name, error = %e, "unable to register node with API server; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(7));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_node_has_labels_taints_and_the_annotation() {
        let extra: BTreeMap<String, String> = [(
            "node-role.kubernetes.io/control-plane".to_owned(),
            "true".to_owned(),
        )]
        .into();
        let taint = Taint {
            key: "dedicated".into(),
            value: Some("db".into()),
            effect: "NoSchedule".into(),
            ..Taint::default()
        };
        let node = initial_node(
            "n1",
            &extra,
            std::slice::from_ref(&taint),
            NodeStatus::default(),
        );
        let labels = node.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels["kubernetes.io/hostname"], "n1");
        assert_eq!(labels["kubernetes.io/os"], "linux");
        assert_eq!(labels["beta.kubernetes.io/arch"], common::arch());
        assert_eq!(labels["node-role.kubernetes.io/control-plane"], "true");
        assert_eq!(node.spec.and_then(|s| s.taints), Some(vec![taint]));
        assert!(initial_node("n1", &extra, &[], NodeStatus::default())
            .spec
            .is_none());
    }

    #[test]
    fn taking_over_patches_only_what_differs() {
        let wanted = initial_node("n1", &BTreeMap::new(), &[], NodeStatus::default());
        assert_eq!(takeover_patch(&wanted, &wanted), None);
        let mut existing = wanted.clone();
        existing.metadata.annotations = None;
        if let Some(l) = existing.metadata.labels.as_mut() {
            l.insert("kubernetes.io/arch".into(), "other".into());
            l.insert("someone/else".into(), "x".into());
        }
        assert_eq!(
            takeover_patch(&existing, &wanted),
            Some(json!({"metadata": {
                "labels": {"kubernetes.io/arch": common::arch()},
                "annotations": {common::CONTROLLER_MANAGED_ATTACH_DETACH: "true"},
            }}))
        );
    }
}
