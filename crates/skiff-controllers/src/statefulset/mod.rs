//! The `statefulset` controller: upstream's `pkg/controller/statefulset` (stateful_set.go,
//! stateful_set_control.go, stateful_pod_control.go, stateful_set_utils.go). Pods named
//! `<set>-<ordinal>` with the pod-name, pod-index and `controller-revision-hash` labels,
//! hostname and subdomain (the serviceName); claims `<template>-<set>-<ordinal>` from the
//! volumeClaimTemplates, created before their pod and owned as the
//! persistentVolumeClaimRetentionPolicy says; OrderedReady (one pod at a time, each Running,
//! Ready and available before the next, scale down from the highest ordinal) or Parallel;
//! RollingUpdate (highest ordinal first, down to the partition, within maxUnavailable when
//! it is set — upstream's MaxUnavailableStatefulSet path —, else one at a time) or OnDelete;
//! a failed or succeeded pod is deleted and made again. Revisions are ControllerRevisions
//! ([`crate::history`]), so that `kubectl rollout history/undo` work; the status is
//! upstream's, field for field.
//!
//! Each sync, from the caches: adopt orphan revisions, claim the pods (selector and name),
//! pick the current and update revisions (creating or renumbering one), plan
//! ([`sync::plan`], pure), carry the plan out, write the status when it changed, truncate
//! the history to revisionHistoryLimit. Expectations keep a sync from acting before the
//! cache shows its previous creations and deletions.

pub mod sync;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::Controller;
use kube::{Api, Resource, ResourceExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use skiff_api::selector::LabelSelector;

use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::history::{self, UpdateRevision};
use crate::owners::{self, claim, OwnerIndex, FIELD_MANAGER};
use crate::pods::{self, key_of};
use crate::replicaset::backoff;
use crate::{Context, Error, Result, Task};

use self::sync::{Input, Plan, Step};

/// Upstream's `MaxBatchSize` for Parallel slow-start batches.
const MAX_BATCH: usize = 500;

struct State {
    ctx: Arc<Context>,
    store: Store<StatefulSet>,
    pods: Arc<OwnerIndex<Pod>>,
    claims: Store<PersistentVolumeClaim>,
    revisions: Store<ControllerRevision>,
    expectations: Expectations,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

/// Sets up the `statefulset` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let store = informers.store::<StatefulSet>();
    let state = Arc::new(State {
        ctx: ctx.clone(),
        store: store.clone(),
        pods: OwnerIndex::new(informers.store::<Pod>()),
        claims: informers.store::<PersistentVolumeClaim>(),
        revisions: informers.store::<ControllerRevision>(),
        expectations: Expectations::new(),
        recorder: Recorder::new(ctx.client.clone(), "statefulset-controller"),
        failures: Mutex::new(HashMap::new()),
    });
    let for_pods = state.clone();
    let for_gone = state.clone();
    let sets = informers.subscribe::<StatefulSet>().inspect(move |obj| {
        if for_gone.store.get(&ObjectRef::from_obj(&**obj)).is_none() {
            for_gone.expectations.forget(&key_of(obj.meta()));
        }
    });
    let synced = {
        let i = &ctx.informers;
        let (a, b, c) = (
            i.synced::<PersistentVolumeClaim>(),
            i.synced::<ControllerRevision>(),
            i.synced::<Pod>(),
        );
        async move {
            a.await;
            b.await;
            c.await;
        }
    };
    let controller = Controller::for_shared_stream(sets, store)
        .watches_shared_stream(informers.subscribe::<Pod>(), move |pod: Arc<Pod>| {
            for_pods.sets_of(&pod)
        });
    Ok(Box::pin(async move {
        synced.await;
        controller
            .run(reconcile, error_policy, state)
            .for_each(|_| async {})
            .await;
    }))
}

fn selector_of(set: &StatefulSet) -> Result<LabelSelector, String> {
    let spec = set.spec.as_ref().ok_or("no spec")?;
    LabelSelector::from_k8s(&spec.selector).map_err(|e| e.to_string())
}

fn labels_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

impl State {
    /// The sets a pod's change concerns: its controller before and after, and for an
    /// orphan every set of its namespace that selects it.
    fn sets_of(&self, pod: &Pod) -> Vec<ObjectRef<StatefulSet>> {
        let moved = self.pods.observe(pod);
        let mut out: Vec<ObjectRef<StatefulSet>> = [&moved.before, &moved.after]
            .into_iter()
            .flatten()
            .filter(|c| c.kind == "StatefulSet")
            .map(|c| ObjectRef::new(&c.name).within(&moved.namespace))
            .collect();
        if moved.exists && moved.after.is_none() {
            let labels = labels_of(&pod.metadata);
            for set in self.store.state() {
                if set.metadata.namespace.as_deref() == Some(moved.namespace.as_str())
                    && matches!(selector_of(&set), Ok(s) if s.matches(&labels))
                {
                    out.push(ObjectRef::from_obj(&*set));
                }
            }
        }
        out.dedup();
        out
    }

    fn claim_lookup(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims.get(&ObjectRef::new(name).within(namespace))
    }

    fn emit(&self, set: &Arc<StatefulSet>, warning: bool, reason: String, note: String) {
        let recorder = self.recorder.clone();
        let set = set.clone();
        tokio::spawn(async move {
            if warning {
                recorder.warning(&*set, &reason, note).await;
            } else {
                recorder.normal(&*set, &reason, note).await;
            }
        });
    }

    /// Upstream's `recordPodEvent`.
    fn pod_event(&self, set: &Arc<StatefulSet>, verb: &str, pod: &str, err: Option<&str>) {
        let title = title(verb);
        let name = set.name_any();
        match err {
            None => self.emit(
                set,
                false,
                format!("Successful{title}"),
                format!("{verb} Pod {pod} in StatefulSet {name} successful"),
            ),
            Some(e) => self.emit(
                set,
                true,
                format!("Failed{title}"),
                format!("{verb} Pod {pod} in StatefulSet {name} failed error: {e}"),
            ),
        }
    }

    /// Upstream's `recordClaimEvent`.
    fn claim_event(
        &self,
        set: &Arc<StatefulSet>,
        verb: &str,
        claim: &str,
        pod: &str,
        err: Option<&str>,
    ) {
        let title = title(verb);
        let name = set.name_any();
        match err {
            None => self.emit(
                set,
                false,
                format!("Successful{title}"),
                format!("{verb} Claim {claim} Pod {pod} in StatefulSet {name} success"),
            ),
            Some(e) => self.emit(
                set,
                true,
                format!("Failed{title}"),
                format!(
                    "{verb} Claim {claim} for Pod {pod} in StatefulSet {name} failed error: {e}"
                ),
            ),
        }
    }
}

fn title(verb: &str) -> String {
    let mut c = verb.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// Go's `utilerrors.NewAggregate(errs).Error()`.
fn aggregate(errs: &[String]) -> String {
    if errs.len() == 1 {
        errs[0].clone()
    } else {
        format!("[{}]", errs.join(", "))
    }
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

fn is_already_exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_already_exists())
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found())
}

fn error_policy(set: Arc<StatefulSet>, error: &Error, state: Arc<State>) -> Action {
    let key = key_of(set.meta());
    let mut failures = state.failures.lock();
    let n = failures.entry(key.clone()).or_default();
    *n = n.saturating_add(1);
    let delay = backoff(*n);
    tracing::debug!(%key, %error, ?delay, "statefulset sync failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(set: Arc<StatefulSet>, state: Arc<State>) -> Result<Action> {
    let result = sync_set(&set, &state).await;
    if result.is_ok() {
        state.failures.lock().remove(&key_of(set.meta()));
    }
    result
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    }
}

/// Upstream's `RecheckDeletionTimestamp` (the `canAdoptFunc`): a fresh read of the set.
async fn can_adopt(api: &Api<StatefulSet>, set: &StatefulSet) -> Result<()> {
    let name = set.name_any();
    let fresh = api.get(&name).await?;
    if fresh.metadata.uid != set.metadata.uid {
        return Err(Error::Invalid(format!(
            "original StatefulSet {}/{name} is gone: got uid {}, wanted {}",
            set.namespace().unwrap_or_default(),
            fresh.metadata.uid.as_deref().unwrap_or(""),
            set.metadata.uid.as_deref().unwrap_or("")
        )));
    }
    if let Some(t) = &fresh.metadata.deletion_timestamp {
        return Err(Error::Invalid(format!(
            "{}/{name} has just been deleted at {}",
            set.namespace().unwrap_or_default(),
            t.0
        )));
    }
    Ok(())
}

async fn sync_set(set: &Arc<StatefulSet>, state: &State) -> Result<Action> {
    let meta = set.meta();
    let key = key_of(meta);
    let namespace = meta.namespace.clone().unwrap_or_default();
    let selector = match selector_of(set) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%key, error = %e, "invalid StatefulSet selector");
            return Ok(Action::await_change());
        }
    };
    let client = state.ctx.client.clone();
    let sets_api: Api<StatefulSet> = Api::namespaced(client.clone(), &namespace);
    let rev_api: Api<ControllerRevision> = Api::namespaced(client.clone(), &namespace);
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let controller_ref = pods::controller_ref(&**set);

    // Orphan revisions the selector matches are adopted.
    let orphans: Vec<_> = history::list_revisions(&state.revisions, meta, &selector)
        .into_iter()
        .filter(|r| pods::controller_of(&r.metadata).is_none())
        .collect();
    if !orphans.is_empty() {
        can_adopt(&sets_api, set)
            .await
            .map_err(|e| Error::Invalid(format!("can't adopt ControllerRevisions: {e}")))?;
        for r in &orphans {
            history::adopt_revision(&rev_api, &controller_ref, r).await?;
        }
    }

    // The pods: claimed by selector and name.
    let all = state.pods.candidates(meta);
    let now = Instant::now();
    let satisfied = state.expectations.satisfied(
        &key,
        now,
        |n| all.iter().any(|p| p.metadata.name.as_deref() == Some(n)),
        |u| {
            !all.iter().any(|p| {
                p.metadata.uid.as_deref() == Some(u) && p.metadata.deletion_timestamp.is_none()
            })
        },
    );
    let selected =
        |p: &Pod| selector.matches(&labels_of(&p.metadata)) && sync::is_member_of(set, p);
    let claimed = claim(meta, selected, all);
    let mut pods = claimed.owned;
    if !claimed.adopt.is_empty() {
        can_adopt(&sets_api, set).await?;
        for pod in &claimed.adopt {
            let patch =
                owners::adopt_patch(&controller_ref, pod.metadata.uid.as_deref().unwrap_or(""));
            if let Some(adopted) =
                owners::patch_ownership(&pods_api, &pod.name_any(), &patch, false).await?
            {
                pods.push(Arc::new(adopted));
            }
        }
    }
    for pod in &claimed.release {
        let patch = owners::release_patch(
            meta.uid.as_deref().unwrap_or(""),
            pod.metadata.uid.as_deref().unwrap_or(""),
        );
        owners::patch_ownership(&pods_api, &pod.name_any(), &patch, true).await?;
    }
    if !satisfied {
        // The pod events that satisfy them wake the set again; the timeout is the backstop.
        return Ok(Action::requeue(crate::expectations::TIMEOUT));
    }

    // The revisions.
    let mut revisions = history::list_revisions(&state.revisions, meta, &selector);
    history::sort_revisions(&mut revisions);
    let mut collision_count = set
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let spec = set
        .spec
        .as_ref()
        .ok_or_else(|| Error::Invalid("no spec".into()))?;
    let mut candidate = history::new_revision(
        &controller_ref,
        &namespace,
        spec.template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref()),
        history::template_patch(&spec.template)?,
        history::next_revision(&revisions),
        Some(collision_count),
    );
    if let Some(a) = &meta.annotations {
        candidate
            .metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .extend(a.clone());
    }
    let update: Arc<ControllerRevision> =
        match history::choose_update_revision(&revisions, candidate) {
            UpdateRevision::Latest(r) => r,
            UpdateRevision::Renumber(r, n) => {
                Arc::new(history::update_revision(&rev_api, &r, n).await?)
            }
            UpdateRevision::Create(r) => Arc::new(
                history::create_revision(&rev_api, &set.name_any(), &r, &mut collision_count)
                    .await?,
            ),
        };
    let status_current = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.as_deref());
    let current =
        history::current_revision(&revisions, status_current).unwrap_or_else(|| update.clone());
    let current_name = current.metadata.name.clone().unwrap_or_default();
    let update_name = update.metadata.name.clone().unwrap_or_default();
    let current_set = sync::apply_revision(set, &current);
    let update_set = sync::apply_revision(set, &update);

    let plan = {
        let lookup = |name: &str| state.claim_lookup(&namespace, name);
        let input = Input {
            set,
            current_set: &current_set,
            update_set: &update_set,
            current_revision: &current_name,
            update_revision: &update_name,
            collision_count,
            pods: &pods,
            claim: &lookup,
            now: Timestamp::now(),
        };
        sync::plan(&input).map_err(Error::Invalid)?
    };
    let outcome = run_plan(set, state, &key, &plan).await;

    // The status, even after a failed step (as upstream).
    let mut status = plan.status.clone();
    sync::complete_rolling_update(set, &mut status);
    if sync::inconsistent_status(set, &status) {
        write_status(&sets_api, &set.name_any(), &status).await?;
    }

    // The history, whatever happened.
    let live = sync::live_revisions(&current_name, &update_name, &pods);
    for r in history::history_to_delete(&revisions, &live, sync::revision_history_limit(set)) {
        history::delete_revision(&rev_api, &r).await?;
    }
    outcome?;

    let min_ready = sync::min_ready_seconds(set);
    if min_ready > 0 && status.available_replicas.unwrap_or(0) != sync::replicas(set) {
        return Ok(Action::requeue(Duration::from_secs(
            u64::try_from(min_ready).unwrap_or(0),
        )));
    }
    Ok(Action::await_change())
}

/// Writes the status as upstream's `UpdateStatus` leaves it: every field of the computed
/// status, the ones Go omits (zero counts, conditions) removed.
async fn write_status(
    api: &Api<StatefulSet>,
    name: &str,
    status: &StatefulSetStatus,
) -> Result<()> {
    let mut body = serde_json::to_value(sync::wire_status(status))
        .map_err(|e| Error::Invalid(format!("status: {e}")))?;
    if let Value::Object(m) = &mut body {
        for field in [
            "replicas",
            "readyReplicas",
            "currentReplicas",
            "updatedReplicas",
            "availableReplicas",
            "currentRevision",
            "updateRevision",
            "observedGeneration",
            "collisionCount",
            "conditions",
        ] {
            m.entry(field).or_insert(Value::Null);
        }
    }
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    match api
        .patch_status(name, &params, &Patch::Merge(&json!({ "status": body })))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Carries out a plan: stage after stage, one unit at a time when monotonic, else in
/// slow-start batches (1, 2, 4, … at most 500) until a batch fails.
async fn run_plan(set: &Arc<StatefulSet>, state: &State, key: &str, plan: &Plan) -> Result<()> {
    for stage in &plan.stages {
        if plan.monotonic {
            for unit in stage {
                run_unit(set, state, key, unit).await?;
            }
            continue;
        }
        let mut rest: &[Vec<Step>] = stage;
        let mut batch = 1usize;
        while !rest.is_empty() {
            let n = batch.min(rest.len());
            let (now, later) = rest.split_at(n);
            let results =
                futures::future::join_all(now.iter().map(|unit| run_unit(set, state, key, unit)))
                    .await;
            if let Some(e) = results.into_iter().find_map(|r| r.err()) {
                return Err(e);
            }
            rest = later;
            batch = (batch * 2).min(MAX_BATCH);
        }
    }
    Ok(())
}

async fn run_unit(set: &Arc<StatefulSet>, state: &State, key: &str, unit: &[Step]) -> Result<()> {
    for step in unit {
        run_step(set, state, key, step).await?;
    }
    Ok(())
}

/// `createPersistentVolumeClaims`: the missing claims (events for each), the errors.
async fn create_claims(
    set: &Arc<StatefulSet>,
    state: &State,
    pod: &str,
    claims: &[PersistentVolumeClaim],
    deleting: &[String],
) -> Vec<String> {
    let namespace = set.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(state.ctx.client.clone(), &namespace);
    let mut errs = Vec::new();
    for claim in claims {
        let name = claim.name_any();
        match api.create(&post_params(), claim).await {
            Ok(_) => state.claim_event(set, "create", &name, pod, None),
            Err(e) => {
                let msg = api_message(&e);
                if !is_already_exists(&e) {
                    state.claim_event(set, "create", &name, pod, Some(&msg));
                }
                errs.push(format!("failed to create PVC {name}: {msg}"));
            }
        }
    }
    errs.extend(deleting.iter().map(|n| format!("pvc {n} is being deleted")));
    errs
}

/// `UpdatePodClaimForRetentionPolicy` with the claims already computed.
async fn update_claims(
    set: &Arc<StatefulSet>,
    state: &State,
    pod: &Pod,
    claims: &[PersistentVolumeClaim],
) -> Result<(), String> {
    let namespace = set.namespace().unwrap_or_default();
    let api: Api<PersistentVolumeClaim> = Api::namespaced(state.ctx.client.clone(), &namespace);
    for claim in claims {
        let name = claim.name_any();
        if state
            .claim_lookup(&namespace, &name)
            .is_some_and(|c| sync::has_unexpected_controller(&c, set, pod))
        {
            state.emit(
                set,
                true,
                "ConflictingController".into(),
                sync::conflicting_controller_message(&name),
            );
        }
        match api.replace(&name, &post_params(), claim).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(format!(
                    "could not update claim {name} for delete policy ownerRefs: {}",
                    api_message(&e)
                ))
            }
        }
    }
    Ok(())
}

/// The claims of `pod` (now with its UID) whose references the policy wants changed.
fn claims_needing_refs(state: &State, set: &StatefulSet, pod: &Pod) -> Vec<PersistentVolumeClaim> {
    let namespace = set.namespace().unwrap_or_default();
    let ordinal = sync::ordinal(pod);
    sync::claims_for(set, ordinal)
        .into_iter()
        .filter_map(|(_, c)| state.claim_lookup(&namespace, &c.name_any()))
        .filter(|c| !sync::is_claim_owner_up_to_date(c, set, pod))
        .map(|c| {
            let mut c = (*c).clone();
            c.metadata.owner_references = Some(sync::claim_owner_refs(&c, set, pod));
            c
        })
        .collect()
}

async fn run_step(set: &Arc<StatefulSet>, state: &State, key: &str, step: &Step) -> Result<()> {
    let namespace = set.namespace().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced(state.ctx.client.clone(), &namespace);
    let pod_name = step.pod().name_any();
    match step {
        Step::CreatePod {
            pod,
            claims,
            deleting,
        } => {
            let errs = create_claims(set, state, &pod_name, claims, deleting).await;
            if !errs.is_empty() {
                let msg = aggregate(&errs);
                state.pod_event(set, "create", &pod_name, Some(&msg));
                return Err(Error::Invalid(msg));
            }
            let created = match pods_api.create(&post_params(), pod).await {
                Ok(p) => p,
                // Upstream sinks the event of an existing pod, and retries.
                Err(e) if is_already_exists(&e) => return Err(e.into()),
                Err(e) => {
                    state.pod_event(set, "create", &pod_name, Some(&api_message(&e)));
                    return Err(e.into());
                }
            };
            state.expectations.created(key, &pod_name, Instant::now());
            let fix = claims_needing_refs(state, set, &created);
            if let Err(msg) = update_claims(set, state, &created, &fix).await {
                state.pod_event(set, "update", &pod_name, Some(&msg));
                return Err(Error::Invalid(msg));
            }
            state.pod_event(set, "create", &pod_name, None);
        }
        Step::CreateClaims {
            pod,
            claims,
            deleting,
        } => {
            let errs = create_claims(set, state, &pod_name, claims, deleting).await;
            if !errs.is_empty() {
                return Err(Error::Invalid(aggregate(&errs)));
            }
            let fix = claims_needing_refs(state, set, pod);
            if let Err(msg) = update_claims(set, state, pod, &fix).await {
                state.pod_event(set, "update", &pod_name, Some(&msg));
                return Err(Error::Invalid(msg));
            }
        }
        Step::UpdatePod {
            pod,
            changed,
            create_claims: missing,
            claims,
        } => {
            let errs = create_claims(set, state, &pod_name, missing, &[]).await;
            if !errs.is_empty() {
                let msg = aggregate(&errs);
                state.pod_event(set, "update", &pod_name, Some(&msg));
                return Err(Error::Invalid(msg));
            }
            if let Err(msg) = update_claims(set, state, pod, claims).await {
                state.pod_event(set, "update", &pod_name, Some(&msg));
                return Err(Error::Invalid(msg));
            }
            if *changed {
                if let Err(e) = pods_api.replace(&pod_name, &post_params(), pod).await {
                    state.pod_event(set, "update", &pod_name, Some(&api_message(&e)));
                    return Err(e.into());
                }
            }
            state.pod_event(set, "update", &pod_name, None);
        }
        Step::UpdateClaims { pod, claims } => {
            update_claims(set, state, pod, claims)
                .await
                .map_err(Error::Invalid)?;
        }
        Step::DeletePod { pod } => {
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            state.expectations.deleted(key, &uid, Instant::now());
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(uid.clone()),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match pods_api.delete(&pod_name, &params).await {
                Ok(_) => state.pod_event(set, "delete", &pod_name, None),
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    state.expectations.deletion_failed(key, &uid);
                    state.pod_event(set, "delete", &pod_name, Some(&api_message(&e)));
                    return Err(e.into());
                }
            }
        }
    }
    Ok(())
}
