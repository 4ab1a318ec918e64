//! Storage object in-use protection: the `pvc-protection` and `pv-protection` controllers
//! (upstream's pkg/controller/volume/pvcprotection and pvprotection). The API server's
//! StorageObjectInUseProtection admission gives every new claim the finalizer
//! `kubernetes.io/pvc-protection` and every new volume `kubernetes.io/pv-protection`; these
//! controllers add it to objects that lack it and remove it from a deleting object once
//! nothing uses it: a claim once no scheduled pod names it (a pod the kubelet is done with,
//! deleted with grace 0, does not count), a volume once it is not `Bound`.
//!
//! As upstream, a claim the pod cache says is unused is checked again against a live list
//! of its namespace's pods before its finalizer goes: a pod just made may not be cached
//! yet. [`pod_uses_claim`] and [`finalizer_change`] are the pure decisions.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};

use crate::{Context, Error, Result, Task};

pub const PVC_PROTECTION_FINALIZER: &str = "kubernetes.io/pvc-protection";
pub const PV_PROTECTION_FINALIZER: &str = "kubernetes.io/pv-protection";

fn has_finalizer(meta: &ObjectMeta, finalizer: &str) -> bool {
    meta.finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == finalizer))
}

/// What a protection controller does with an object's finalizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinalizerChange {
    Add,
    Remove,
    Keep,
}

/// `IsDeletionCandidate` and `NeedToAddFinalizer`: a deleting object with the finalizer
/// loses it when unused; a live one without it gets it.
pub fn finalizer_change(meta: &ObjectMeta, finalizer: &str, in_use: bool) -> FinalizerChange {
    let has = has_finalizer(meta, finalizer);
    match (meta.deletion_timestamp.is_some(), has) {
        (true, true) if !in_use => FinalizerChange::Remove,
        (false, false) => FinalizerChange::Add,
        _ => FinalizerChange::Keep,
    }
}

/// Whether the kubelet is done with the pod, or it was force-deleted: deleting with a grace
/// period of 0 (upstream's `podIsShutDown`).
pub fn pod_is_shut_down(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
        && pod.metadata.deletion_grace_period_seconds == Some(0)
}

/// Whether `pod` uses `claim` (upstream's `podUsesPVC`): only a scheduled pod counts (the
/// kubelet will not start one whose claim is being deleted); a `persistentVolumeClaim`
/// volume naming it, or a generic ephemeral volume whose claim (`<pod>-<volume>`) it is and
/// that the pod owns, while the pod is not shut down.
pub fn pod_uses_claim(pod: &Pod, claim: &PersistentVolumeClaim) -> bool {
    if pod.metadata.namespace != claim.metadata.namespace {
        return false;
    }
    let Some(spec) = pod.spec.as_ref() else {
        return false;
    };
    if spec.node_name.as_deref().is_none_or(str::is_empty) {
        return false;
    }
    let claim_name = claim.metadata.name.as_deref().unwrap_or("");
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    spec.volumes.iter().flatten().any(|v| {
        if let Some(c) = &v.persistent_volume_claim {
            return c.claim_name == claim_name;
        }
        if v.ephemeral.is_none() || pod_is_shut_down(pod) {
            return false;
        }
        let owned_by_pod = claim
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.controller == Some(true) && Some(&o.uid) == pod.metadata.uid.as_ref());
        format!("{pod_name}-{}", v.name) == claim_name && owned_by_pod
    })
}

/// The claims (in the pod's namespace) that a pod's volumes name.
fn claims_of_pod(pod: &Pod) -> Vec<ObjectRef<PersistentVolumeClaim>> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    crate::persistentvolume::sync::pod_claim_names(pod)
        .into_iter()
        .map(|c| ObjectRef::new(&c).within(&ns))
        .collect()
}

fn retry_soon<K, S>(_: Arc<K>, error: &Error, _: Arc<S>) -> Action {
    tracing::debug!(%error, "protection finalizer update failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// The object with `finalizer` added or removed.
fn with_finalizer<K: kube::Resource + Clone>(obj: &K, finalizer: &str, add: bool) -> K {
    let mut new = obj.clone();
    let list = new.meta_mut().finalizers.get_or_insert_with(Vec::new);
    if add {
        list.push(finalizer.to_owned());
    } else {
        list.retain(|f| f != finalizer);
    }
    new
}

struct ClaimState {
    ctx: Arc<Context>,
    pods: Store<Pod>,
}

/// Sets up the `pvc-protection` controller.
pub fn pvc_controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let claims = informers.store::<PersistentVolumeClaim>();
    let state = Arc::new(ClaimState {
        ctx: ctx.clone(),
        pods: informers.store(),
    });
    let controller =
        Controller::for_shared_stream(informers.subscribe::<PersistentVolumeClaim>(), claims)
            // A pod that goes (or changes) may free the claims it names.
            .watches_shared_stream(informers.subscribe::<Pod>(), |pod: Arc<Pod>| {
                claims_of_pod(&pod)
            });
    let synced = futures::future::join(
        informers.synced::<PersistentVolumeClaim>(),
        informers.synced::<Pod>(),
    );
    Ok(Box::pin(async move {
        synced.await;
        controller
            .run(reconcile_claim, retry_soon, state)
            .for_each(|_| async {})
            .await;
    }))
}

async fn reconcile_claim(
    claim: Arc<PersistentVolumeClaim>,
    state: Arc<ClaimState>,
) -> Result<Action> {
    let deleting = claim.metadata.deletion_timestamp.is_some()
        && has_finalizer(&claim.metadata, PVC_PROTECTION_FINALIZER);
    let ns = claim.namespace().unwrap_or_default();
    let in_use = deleting && {
        let cached = state.pods.state().iter().any(|p| pod_uses_claim(p, &claim));
        // The cache may not have a pod just made: a live list has the last word.
        cached || {
            let pods: Api<Pod> = Api::namespaced(state.ctx.client.clone(), &ns);
            let live = pods.list(&ListParams::default()).await?;
            live.items.iter().any(|p| pod_uses_claim(p, &claim))
        }
    };
    let change = finalizer_change(&claim.metadata, PVC_PROTECTION_FINALIZER, in_use);
    if change == FinalizerChange::Keep {
        if in_use {
            tracing::debug!(claim = %claim.name_any(), "keeping a claim a pod uses");
        }
        return Ok(Action::await_change());
    }
    let new = with_finalizer(
        &*claim,
        PVC_PROTECTION_FINALIZER,
        change == FinalizerChange::Add,
    );
    let api: Api<PersistentVolumeClaim> = Api::namespaced(state.ctx.client.clone(), &ns);
    match api
        .replace(&claim.name_any(), &PostParams::default(), &new)
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

/// Whether a volume is in use: it is `Bound` (upstream's pv-protection `isBeingUsed`).
pub fn volume_in_use(volume: &PersistentVolume) -> bool {
    volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound")
}

struct VolumeState {
    ctx: Arc<Context>,
}

/// Sets up the `pv-protection` controller.
pub fn pv_controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let state = Arc::new(VolumeState { ctx: ctx.clone() });
    let controller = Controller::for_shared_stream(
        informers.subscribe::<PersistentVolume>(),
        informers.store::<PersistentVolume>(),
    );
    let synced = informers.synced::<PersistentVolume>();
    Ok(Box::pin(async move {
        synced.await;
        controller
            .run(reconcile_volume, retry_soon, state)
            .for_each(|_| async {})
            .await;
    }))
}

async fn reconcile_volume(
    volume: Arc<PersistentVolume>,
    state: Arc<VolumeState>,
) -> Result<Action> {
    let change = finalizer_change(
        &volume.metadata,
        PV_PROTECTION_FINALIZER,
        volume_in_use(&volume),
    );
    if change == FinalizerChange::Keep {
        return Ok(Action::await_change());
    }
    let new = with_finalizer(
        &*volume,
        PV_PROTECTION_FINALIZER,
        change == FinalizerChange::Add,
    );
    let api: Api<PersistentVolume> = Api::all(state.ctx.client.clone());
    match api
        .replace(&volume.name_any(), &PostParams::default(), &new)
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn meta(deleting: bool, finalizers: &[&str]) -> ObjectMeta {
        ObjectMeta {
            name: Some("x".into()),
            deletion_timestamp: deleting.then(|| Time(k8s_openapi::jiff::Timestamp::now())),
            finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn finalizers_are_added_to_live_objects_and_removed_from_unused_deleting_ones() {
        let f = PVC_PROTECTION_FINALIZER;
        // (deleting, has the finalizer, in use) -> change
        let table = [
            (false, false, false, FinalizerChange::Add),
            (false, false, true, FinalizerChange::Add),
            (false, true, false, FinalizerChange::Keep),
            (false, true, true, FinalizerChange::Keep),
            (true, true, false, FinalizerChange::Remove),
            (true, true, true, FinalizerChange::Keep),
            (true, false, false, FinalizerChange::Keep),
            (true, false, true, FinalizerChange::Keep),
        ];
        for (deleting, has, in_use, want) in table {
            let finalizers: &[&str] = if has { &[f, "other"] } else { &["other"] };
            assert_eq!(
                finalizer_change(&meta(deleting, finalizers), f, in_use),
                want,
                "deleting {deleting}, has {has}, in use {in_use}"
            );
        }
        let kept = with_finalizer(
            &PersistentVolumeClaim {
                metadata: meta(true, &["a", f, "b"]),
                ..Default::default()
            },
            f,
            false,
        );
        assert_eq!(
            kept.metadata.finalizers,
            Some(vec!["a".to_string(), "b".to_string()])
        );
    }

    fn claim(name: &str, owner_uid: Option<&str>) -> PersistentVolumeClaim {
        let owners = owner_uid.map(|u| {
            json!([{"apiVersion": "v1", "kind": "Pod", "name": "p", "uid": u, "controller": true}])
        });
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "ns", "ownerReferences": owners},
            "spec": {}
        }))
        .expect("claim")
    }

    fn pod(
        node: Option<&str>,
        phase: &str,
        deleting_grace: Option<i64>,
        volumes: serde_json::Value,
    ) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": "p", "namespace": "ns", "uid": "pod-uid",
                "deletionTimestamp": deleting_grace.map(|_| "2026-01-01T00:00:00Z"),
                "deletionGracePeriodSeconds": deleting_grace,
            },
            "spec": {"nodeName": node, "containers": [], "volumes": volumes},
            "status": {"phase": phase}
        }))
        .expect("pod")
    }

    #[test]
    fn scheduled_pods_naming_the_claim_use_it() {
        let data = json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]);
        let scratch =
            json!([{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}}]);
        let c = claim("data", None);
        // (pod, claim, uses)
        let table = [
            (
                pod(Some("n1"), "Running", None, data.clone()),
                c.clone(),
                true,
            ),
            // Not scheduled: the kubelet will never start it on a deleting claim.
            (pod(None, "Pending", None, data.clone()), c.clone(), false),
            // Terminated pods still hold the claim until they are deleted, as upstream.
            (
                pod(Some("n1"), "Succeeded", None, data.clone()),
                c.clone(),
                true,
            ),
            // Being deleted gracefully: still mounted.
            (
                pod(Some("n1"), "Running", Some(30), data.clone()),
                c.clone(),
                true,
            ),
            (
                pod(Some("n1"), "Running", None, json!([])),
                c.clone(),
                false,
            ),
            // Another namespace's claim of that name.
            (
                pod(Some("n1"), "Running", None, data.clone()),
                {
                    let mut other = c.clone();
                    other.metadata.namespace = Some("elsewhere".into());
                    other
                },
                false,
            ),
            // A generic ephemeral volume's claim, owned by the pod.
            (
                pod(Some("n1"), "Running", None, scratch.clone()),
                claim("p-scratch", Some("pod-uid")),
                true,
            ),
            // ... but not one of that name someone else owns,
            (
                pod(Some("n1"), "Running", None, scratch.clone()),
                claim("p-scratch", Some("other")),
                false,
            ),
            // ... nor once the pod is shut down.
            (
                pod(Some("n1"), "Running", Some(0), scratch.clone()),
                claim("p-scratch", Some("pod-uid")),
                false,
            ),
        ];
        for (i, (p, c, want)) in table.iter().enumerate() {
            assert_eq!(pod_uses_claim(p, c), *want, "case {i}");
        }
    }

    #[test]
    fn only_bound_volumes_are_in_use() {
        let pv = |phase: &str| -> PersistentVolume {
            serde_json::from_value(json!({"metadata": {"name": "v"}, "status": {"phase": phase}}))
                .expect("pv")
        };
        assert!(volume_in_use(&pv("Bound")));
        for phase in ["Available", "Released", "Failed", "Pending"] {
            assert!(!volume_in_use(&pv(phase)), "{phase}");
        }
    }
}
