//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets
//! named `<deployment>-<pod-template-hash>` (RollingUpdate within maxSurge and
//! maxUnavailable, or Recreate), scales them proportionally when the Deployment is scaled in
//! the middle of a rollout, keeps `revisionHistoryLimit` old ones for `kubectl rollout
//! undo` (their `deployment.kubernetes.io/revision`, `revision-history`,
//! `desired-replicas` and `max-replicas` annotations, and controller references), honours
//! pause and resume, and writes the status `kubectl rollout status` reads (replicas,
//! updatedReplicas, readyReplicas, availableReplicas, unavailableReplicas,
//! observedGeneration, collisionCount, the Available and Progressing conditions, with
//! `ProgressDeadlineExceeded` past `progressDeadlineSeconds`). Upstream counterpart:
//! pkg/controller/deployment/ (deployment_controller.go, sync.go, rolling.go, recreate.go,
//! progress.go, rollback.go, util/deployment_util.go).
//!
//! A sync claims the ReplicaSets (adopting orphans the selector matches, releasing its own
//! that it no longer selects, as upstream's `ClaimReplicaSets`), then [`sync::plan`] decides
//! its writes as a list of [`sync::Step`]s from the cached objects alone, which this module
//! carries out in order. Deleting a Deployment is the garbage collector's work (the
//! ReplicaSets carry its controller reference); it does not run pods or delete them: the
//! ReplicaSet controller does.
//!
//! Deliberately different from upstream: the revision annotation is written with a metadata
//! patch of the Deployment, not through the status subresource (whose upstream strategy
//! keeps the new annotations; ours keeps only the status); the pod-template-hash is a stable
//! hash of the template's canonical JSON, not upstream's go-spew one ([`hash`]).

pub mod hash;
mod progress;
mod rolling;
pub mod sync;
pub mod util;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use skiff_api::selector::LabelSelector;

use crate::events::Recorder;
use crate::owners::{self, claim, OwnerIndex, FIELD_MANAGER};
use crate::pods::{controller_of, controller_ref, key_of};
use crate::replicaset::backoff;
use crate::{Context, Error, Result, Task};

use sync::{PodMap, Step};
use util::*;

struct State {
    ctx: Arc<Context>,
    deployments: Store<Deployment>,
    replica_sets: Arc<OwnerIndex<ReplicaSet>>,
    pods: Arc<OwnerIndex<Pod>>,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

/// Sets up the `deployment` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let deployments = informers.store::<Deployment>();
    let state = Arc::new(State {
        ctx: ctx.clone(),
        deployments: deployments.clone(),
        replica_sets: OwnerIndex::new(informers.store::<ReplicaSet>()),
        pods: OwnerIndex::new(informers.store::<Pod>()),
        recorder: Recorder::new(ctx.client.clone(), "deployment-controller"),
        failures: Mutex::new(HashMap::new()),
    });
    let for_rs = state.clone();
    let for_pods = state.clone();
    let controller =
        Controller::for_shared_stream(informers.subscribe::<Deployment>(), deployments)
            .watches_shared_stream(
                informers.subscribe::<ReplicaSet>(),
                move |rs: Arc<ReplicaSet>| for_rs.owners_of_replica_set(&rs),
            )
            .watches_shared_stream(informers.subscribe::<Pod>(), move |pod: Arc<Pod>| {
                for_pods.recreate_owner_of_pod(&pod)
            });
    Ok(Box::pin(
        controller
            .run(reconcile, error_policy, state)
            .for_each(|_| async {}),
    ))
}

fn selector_of(d: &Deployment) -> Option<LabelSelector> {
    LabelSelector::from_k8s(&d.spec.as_ref()?.selector).ok()
}

impl State {
    /// The Deployments a ReplicaSet's change concerns: the one it had, the one it has, and
    /// for an orphan every one of its namespace whose selector matches its labels.
    fn owners_of_replica_set(&self, rs: &ReplicaSet) -> Vec<ObjectRef<Deployment>> {
        let moved = self.replica_sets.observe(rs);
        let mut out: Vec<ObjectRef<Deployment>> = [&moved.before, &moved.after]
            .into_iter()
            .flatten()
            .filter(|c| c.kind == "Deployment")
            .map(|c| ObjectRef::new(&c.name).within(&moved.namespace))
            .collect();
        if moved.exists && moved.after.is_none() {
            let empty = BTreeMap::new();
            let labels = rs.metadata.labels.as_ref().unwrap_or(&empty);
            for d in self.deployments.state() {
                if d.metadata.namespace.as_deref() == Some(moved.namespace.as_str())
                    && !selects_everything(&d)
                    && selector_of(&d).is_some_and(|s| s.matches(labels))
                {
                    out.push(ObjectRef::from_obj(&*d));
                }
            }
        }
        out.dedup();
        out
    }

    /// A pod's change wakes its Deployment only for Recreate, which waits for old pods to
    /// stop (upstream's `deletePod` handler); RollingUpdate follows the ReplicaSets' status.
    fn recreate_owner_of_pod(&self, pod: &Pod) -> Vec<ObjectRef<Deployment>> {
        let moved = self.pods.observe(pod);
        let mut out = Vec::new();
        for c in [&moved.before, &moved.after].into_iter().flatten() {
            if c.kind != "ReplicaSet" {
                continue;
            }
            let key = ObjectRef::<ReplicaSet>::new(&c.name).within(&moved.namespace);
            let Some(rs) = self.replica_sets.store().get(&key) else {
                continue;
            };
            let Some(owner) = controller_of(&rs.metadata).filter(|o| o.kind == "Deployment") else {
                continue;
            };
            let dkey = ObjectRef::<Deployment>::new(&owner.name).within(&moved.namespace);
            if self
                .deployments
                .get(&dkey)
                .is_some_and(|d| strategy_type(&d) == "Recreate")
            {
                out.push(dkey);
            }
        }
        out.dedup();
        out
    }
}

fn error_policy(d: Arc<Deployment>, error: &Error, state: Arc<State>) -> Action {
    let key = key_of(&d.metadata);
    let mut failures = state.failures.lock();
    let n = failures.entry(key.clone()).or_default();
    *n = n.saturating_add(1);
    let delay = backoff(*n);
    tracing::debug!(%key, %error, ?delay, "deployment sync failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(d: Arc<Deployment>, state: Arc<State>) -> Result<Action> {
    let result = sync_deployment(&d, &state).await;
    if result.is_ok() {
        state.failures.lock().remove(&key_of(&d.metadata));
    }
    result
}

/// Upstream's `getReplicaSetsForDeployment`: claims the ReplicaSets (adopting and
/// releasing through patches).
async fn claim_replica_sets(d: &Arc<Deployment>, state: &State) -> Result<Vec<ReplicaSet>> {
    let Some(selector) = selector_of(d) else {
        return Err(Error::Invalid(format!(
            "deployment {} has invalid label selector",
            key_of(&d.metadata)
        )));
    };
    let empty = BTreeMap::new();
    let claimed = claim(
        &d.metadata,
        |rs: &ReplicaSet| selector.matches(rs.metadata.labels.as_ref().unwrap_or(&empty)),
        state.replica_sets.candidates(&d.metadata),
    );
    let namespace = d.namespace().unwrap_or_default();
    let api: Api<ReplicaSet> = Api::namespaced(state.ctx.client.clone(), &namespace);
    let mut owned: Vec<ReplicaSet> = claimed.owned.iter().map(|rs| (**rs).clone()).collect();
    if !claimed.adopt.is_empty() {
        // Upstream's RecheckDeletionTimestamp: a fresh read before adopting.
        let fresh = Api::<Deployment>::namespaced(state.ctx.client.clone(), &namespace)
            .get(&d.name_any())
            .await?;
        if fresh.metadata.uid != d.metadata.uid {
            return Err(Error::Invalid(format!(
                "original Deployment {} is gone: got uid {}, wanted {}",
                key_of(&d.metadata),
                fresh.metadata.uid.unwrap_or_default(),
                d.metadata.uid.clone().unwrap_or_default()
            )));
        }
        if fresh.metadata.deletion_timestamp.is_some() {
            return Err(Error::Invalid(format!(
                "{} has just been deleted",
                key_of(&d.metadata)
            )));
        }
        let reference = controller_ref(&**d);
        for rs in &claimed.adopt {
            let patch = owners::adopt_patch(&reference, rs.metadata.uid.as_deref().unwrap_or(""));
            if let Some(adopted) =
                owners::patch_ownership(&api, &rs.name_any(), &patch, false).await?
            {
                owned.push(adopted);
            }
        }
    }
    for rs in &claimed.release {
        let patch = owners::release_patch(
            d.metadata.uid.as_deref().unwrap_or(""),
            rs.metadata.uid.as_deref().unwrap_or(""),
        );
        owners::patch_ownership(&api, &rs.name_any(), &patch, true).await?;
    }
    Ok(owned)
}

async fn sync_deployment(d: &Arc<Deployment>, state: &State) -> Result<Action> {
    let now = Timestamp::now();
    let rss = if selects_everything(d) {
        Vec::new()
    } else {
        claim_replica_sets(d, state).await?
    };
    // Only Recreate looks at pods (whether old ones still run).
    let mut pods = PodMap::new();
    if strategy_type(d) == "Recreate" {
        for rs in &rss {
            let uid = rs.metadata.uid.clone().unwrap_or_default();
            let owned = state.pods.controlled_by(&uid);
            pods.insert(uid, owned);
        }
    }
    let plan = sync::plan(d, rss, &pods, now).map_err(Error::Invalid)?;
    let requeue = plan.requeue;
    execute(d, state, plan.steps).await?;
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// A status as a merge patch writes it: every field present, zeros (omitted by Go) as null.
fn status_json(s: &DeploymentStatus) -> Value {
    let nz = |v: Option<i32>| v.filter(|n| *n != 0);
    json!({
        "observedGeneration": s.observed_generation.filter(|g| *g != 0),
        "replicas": nz(s.replicas),
        "updatedReplicas": nz(s.updated_replicas),
        "readyReplicas": nz(s.ready_replicas),
        "availableReplicas": nz(s.available_replicas),
        "unavailableReplicas": nz(s.unavailable_replicas),
        "conditions": s.conditions.as_ref().filter(|c| !c.is_empty()),
        "collisionCount": s.collision_count,
    })
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

fn emit(state: &State, d: &Arc<Deployment>, warning: bool, reason: &'static str, note: String) {
    let recorder = state.recorder.clone();
    let d = d.clone();
    tokio::spawn(async move {
        if warning {
            recorder.warning(&*d, reason, note).await;
        } else {
            recorder.normal(&*d, reason, note).await;
        }
    });
}

/// Carries out a plan's steps in order; the first failure ends it (the key is retried with
/// backoff, and a fresh sync decides again from the cache).
async fn execute(d: &Arc<Deployment>, state: &State, steps: Vec<Step>) -> Result<()> {
    let namespace = d.namespace().unwrap_or_default();
    let name = d.name_any();
    let client = state.ctx.client.clone();
    let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), &namespace);
    let d_api: Api<Deployment> = Api::namespaced(client, &namespace);
    // The versions our own writes produced, for the next write of the same object.
    let mut rs_versions: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
    let mut d_version = d.metadata.resource_version.clone();
    let post = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    for step in steps {
        match step {
            Step::CreateReplicaSet { rs, event } => {
                let rs_name = rs.name_any();
                match rs_api.create(&post, &rs).await {
                    Ok(created) => {
                        rs_versions.insert(
                            rs_name,
                            (
                                created.metadata.uid.clone(),
                                created.metadata.resource_version.clone(),
                            ),
                        );
                        if let Some(note) = event {
                            emit(state, d, false, "ScalingReplicaSet", note);
                        }
                    }
                    Err(kube::Error::Api(s)) if s.is_already_exists() => {
                        return already_exists(d, &rs_api, &d_api, &rs_name).await;
                    }
                    Err(e) => {
                        let terminating = matches!(&e, kube::Error::Api(s) if s.details.as_ref().is_some_and(|dt| dt.causes.iter().any(|c| c.reason == "NamespaceTerminating")));
                        if !terminating {
                            let message = format!(
                                "Failed to create new replica set {}: {}",
                                sync::quote(&rs_name),
                                api_message(&e)
                            );
                            if has_progress_deadline(d) {
                                let mut status = d.status.clone().unwrap_or_default();
                                set_condition(
                                    &mut status,
                                    new_condition(
                                        PROGRESSING,
                                        "False",
                                        FAILED_RS_CREATE,
                                        message.clone(),
                                        Timestamp::now(),
                                    ),
                                );
                                let patch = json!({ "status": status_json(&status) });
                                let _ = d_api
                                    .patch_status(&name, &patch_params(), &Patch::Merge(&patch))
                                    .await;
                            }
                            emit(state, d, true, FAILED_RS_CREATE, message);
                        }
                        return Err(e.into());
                    }
                }
            }
            Step::UpdateReplicaSet { mut rs, event } => {
                let rs_name = rs.name_any();
                if let Some((uid, version)) = rs_versions.get(&rs_name) {
                    rs.metadata.uid.clone_from(uid);
                    rs.metadata.resource_version.clone_from(version);
                }
                let updated = rs_api.replace(&rs_name, &post, &rs).await?;
                rs_versions.insert(
                    rs_name,
                    (
                        updated.metadata.uid.clone(),
                        updated.metadata.resource_version.clone(),
                    ),
                );
                if let Some(note) = event {
                    emit(state, d, false, "ScalingReplicaSet", note);
                }
            }
            Step::DeleteReplicaSet { name: rs_name } => {
                match rs_api.delete(&rs_name, &DeleteParams::default()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.is_not_found() => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Step::AnnotateDeployment { revision } => {
                let patch = json!({"metadata": {"annotations": {REVISION: revision}}});
                let updated = d_api
                    .patch(&name, &patch_params(), &Patch::Merge(&patch))
                    .await?;
                d_version = updated.metadata.resource_version;
            }
            Step::UpdateDeployment(mut updated) => {
                updated.metadata.resource_version.clone_from(&d_version);
                let written = d_api.replace(&name, &post, &updated).await?;
                d_version = written.metadata.resource_version;
            }
            Step::Status(status) => {
                let patch = json!({ "status": status_json(&status) });
                match d_api
                    .patch_status(&name, &patch_params(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(written) => d_version = written.metadata.resource_version,
                    Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
            Step::Event {
                warning,
                reason,
                message,
            } => emit(state, d, warning, reason, message),
        }
    }
    Ok(())
}

/// The new ReplicaSet's name is taken: ours (the cache is behind) or a hash collision,
/// which raises `collisionCount` so that the next sync hashes to another name (upstream's
/// handling in `getNewReplicaSet`).
async fn already_exists(
    d: &Arc<Deployment>,
    rs_api: &Api<ReplicaSet>,
    d_api: &Api<Deployment>,
    rs_name: &str,
) -> Result<()> {
    let existing = rs_api.get(rs_name).await?;
    let ours =
        controller_of(&existing.metadata).is_some_and(|c| Some(&c.uid) == d.metadata.uid.as_ref());
    if ours && equal_ignore_hash(&template(d), &rs_template(&existing)) {
        // The cache will show it; the next sync goes on from there.
        return Err(Error::Invalid(format!(
            "replica set {rs_name} exists but is not cached yet"
        )));
    }
    let before = d
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let patch = json!({"status": {"collisionCount": before + 1}});
    d_api
        .patch_status(&d.name_any(), &patch_params(), &Patch::Merge(&patch))
        .await?;
    tracing::info!(
        deployment = %key_of(&d.metadata),
        old = before,
        new = before + 1,
        "found a hash collision for deployment - bumping collisionCount to resolve it"
    );
    Err(Error::Invalid(format!(
        "replicasets.apps {rs_name:?} already exists"
    )))
}
