//! The `daemonset` controller: upstream's `pkg/controller/daemon` (daemon_controller.go,
//! update.go, util/daemonset_util.go). One pod per node that should run it
//! ([`util::node_should_run`]: the template's nodeName, nodeSelector, required node affinity,
//! NoSchedule/NoExecute taints against the tolerations; a pod on a node with a NoExecute
//! taint it does not tolerate is deleted). Each pod is made from the template with the
//! daemon tolerations (not-ready, unreachable, the pressure and unschedulable taints,
//! network-unavailable for host-network pods), the `controller-revision-hash` (and, when
//! the DaemonSet carries `deprecated.daemonset.template.generation`,
//! `pod-template-generation`) labels, and a required node affinity `matchFields
//! metadata.name In [node]`; it is created unbound and the scheduler binds it. Failed pods
//! are deleted (and so made again) under a per-node backoff (1 s doubling to 15 min, as
//! kube-controller-manager's), succeeded ones at once, extra pods on a node too (the oldest
//! running one stays). RollingUpdate within maxUnavailable, or with maxSurge a new pod next
//! to the old one (upstream's surge path); OnDelete leaves old pods alone. Creations go in
//! slow-start batches of at most 250 a sync. Revisions are ControllerRevisions, so that
//! `kubectl rollout history/undo` work; the status is upstream's, field for field, so that
//! `kubectl rollout status` works.
//!
//! Each sync, from the caches: claim the revisions (adopt, release), find or create the
//! current one ([`sync::split_revisions`], a duplicate removed and its pods relabelled, the
//! number raised past the old ones), claim the pods, then — once the expectations of the
//! previous sync are met — plan ([`sync::plan`], pure), carry it out, clean the history up
//! to revisionHistoryLimit and write the status. Upstream's `FailedPlacement` event is no
//! longer emitted upstream (the scheduler places daemon pods), so it is not here either.

pub mod sync;
pub mod util;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::Controller;
use kube::{Api, Resource, ResourceExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use skiff_api::selector::LabelSelector;

use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::history;
use crate::owners::{self, claim, OwnerIndex, FIELD_MANAGER};
use crate::pods::{self, key_of};
use crate::replicaset::{backoff, slow_start_batches};
use crate::{Context, Error, Result, Task};

use self::sync::{Input, Plan, BURST_REPLICAS};
use self::util::{Backoff, HASH_LABEL};

/// kube-controller-manager's failed-pod backoff for the DaemonSet controller.
const FAILED_POD_BACKOFF: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(15 * 60));

struct State {
    ctx: Arc<Context>,
    store: Store<DaemonSet>,
    pods: Arc<OwnerIndex<Pod>>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    expectations: Expectations,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
    failed_pods: Mutex<Backoff>,
    /// The last state of every node the controller heard of, to tell what a change did.
    seen_nodes: Mutex<HashMap<String, Arc<Node>>>,
}

/// Sets up the `daemonset` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let store = informers.store::<DaemonSet>();
    let state = Arc::new(State {
        ctx: ctx.clone(),
        store: store.clone(),
        pods: OwnerIndex::new(informers.store::<Pod>()),
        nodes: informers.store::<Node>(),
        revisions: informers.store::<ControllerRevision>(),
        expectations: Expectations::new(),
        recorder: Recorder::new(ctx.client.clone(), "daemonset-controller"),
        failures: Mutex::new(HashMap::new()),
        failed_pods: Mutex::new(Backoff::new(FAILED_POD_BACKOFF.0, FAILED_POD_BACKOFF.1)),
        seen_nodes: Mutex::new(HashMap::new()),
    });
    let for_pods = state.clone();
    let for_nodes = state.clone();
    let for_revisions = state.clone();
    let for_gone = state.clone();
    let sets = informers.subscribe::<DaemonSet>().inspect(move |obj| {
        if for_gone.store.get(&ObjectRef::from_obj(&**obj)).is_none() {
            for_gone.expectations.forget(&key_of(obj.meta()));
        }
    });
    let synced = {
        let (a, b, c, d) = (
            informers.synced::<Node>(),
            informers.synced::<ControllerRevision>(),
            informers.synced::<Pod>(),
            informers.synced::<DaemonSet>(),
        );
        async move {
            a.await;
            b.await;
            c.await;
            d.await;
        }
    };
    let controller = Controller::for_shared_stream(sets, store)
        .watches_shared_stream(informers.subscribe::<Pod>(), move |pod: Arc<Pod>| {
            for_pods.sets_of_pod(&pod)
        })
        .watches_shared_stream(informers.subscribe::<Node>(), move |node: Arc<Node>| {
            for_nodes.sets_of_node(&node)
        })
        .watches_shared_stream(
            informers.subscribe::<ControllerRevision>(),
            move |r: Arc<ControllerRevision>| for_revisions.sets_of_revision(&r),
        );
    Ok(Box::pin(async move {
        synced.await;
        controller
            .run(reconcile, error_policy, state)
            .for_each(|_| async {})
            .await;
    }))
}

fn selector_of(ds: &DaemonSet) -> Result<LabelSelector, String> {
    let spec = ds.spec.as_ref().ok_or("no spec")?;
    LabelSelector::from_k8s(&spec.selector).map_err(|e| e.to_string())
}

fn labels_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

/// The selector `{}`, which upstream refuses to act on (`SelectingAll`).
fn selects_everything(ds: &DaemonSet) -> bool {
    ds.spec.as_ref().is_some_and(|s| {
        s.selector
            .match_labels
            .as_ref()
            .is_none_or(|m| m.is_empty())
            && s.selector
                .match_expressions
                .as_ref()
                .is_none_or(|e| e.is_empty())
    })
}

impl State {
    /// The DaemonSets of `namespace` whose selector matches `labels`.
    fn selecting(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<ObjectRef<DaemonSet>> {
        self.store
            .state()
            .into_iter()
            .filter(|ds| ds.metadata.namespace.as_deref() == Some(namespace))
            .filter(|ds| !selects_everything(ds))
            .filter(|ds| matches!(selector_of(ds), Ok(s) if s.matches(labels)))
            .map(|ds| ObjectRef::from_obj(&*ds))
            .collect()
    }

    /// The DaemonSets a pod's change concerns: its controller before and after, and for an
    /// orphan every DaemonSet of its namespace that selects it.
    fn sets_of_pod(&self, pod: &Pod) -> Vec<ObjectRef<DaemonSet>> {
        let moved = self.pods.observe(pod);
        let mut out: Vec<ObjectRef<DaemonSet>> = [&moved.before, &moved.after]
            .into_iter()
            .flatten()
            .filter(|c| c.kind == "DaemonSet")
            .map(|c| ObjectRef::new(&c.name).within(&moved.namespace))
            .collect();
        if moved.exists && moved.after.is_none() {
            out.extend(self.selecting(&moved.namespace, &labels_of(&pod.metadata)));
        }
        out.dedup();
        out
    }

    /// The DaemonSets a revision's change concerns: its controller, or for an orphan the
    /// DaemonSets that select it.
    fn sets_of_revision(&self, r: &ControllerRevision) -> Vec<ObjectRef<DaemonSet>> {
        let namespace = r.metadata.namespace.clone().unwrap_or_default();
        match pods::controller_of(&r.metadata) {
            Some(c) if c.kind == "DaemonSet" => vec![ObjectRef::new(&c.name).within(&namespace)],
            Some(_) => Vec::new(),
            None => self.selecting(&namespace, &labels_of(&r.metadata)),
        }
    }

    /// The DaemonSets a node's change concerns (upstream's `addNode` / `updateNode`): on a
    /// new node those that should run there, on a changed one those for which
    /// `NodeShouldRunDaemonPod` answers differently, on a deleted one all of them (their
    /// desired count drops).
    fn sets_of_node(&self, node: &Node) -> Vec<ObjectRef<DaemonSet>> {
        let name = node.metadata.name.clone().unwrap_or_default();
        let current = self.nodes.get(&ObjectRef::new(&name));
        let before = {
            let mut seen = self.seen_nodes.lock();
            match &current {
                Some(n) => seen.insert(name, n.clone()),
                None => seen.remove(&name),
            }
        };
        self.store
            .state()
            .iter()
            .filter(|ds| util::node_change_concerns(before.as_deref(), current.as_deref(), ds))
            .map(|ds| ObjectRef::from_obj(&**ds))
            .collect()
    }

    fn emit(&self, ds: &Arc<DaemonSet>, warning: bool, reason: &str, note: String) {
        let recorder = self.recorder.clone();
        let ds = ds.clone();
        let reason = reason.to_owned();
        tokio::spawn(async move {
            if warning {
                recorder.warning(&*ds, &reason, note).await;
            } else {
                recorder.normal(&*ds, &reason, note).await;
            }
        });
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

fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

/// Go's `utilerrors.NewAggregate(errs).Error()`.
fn aggregate(errs: &[String]) -> String {
    if errs.len() == 1 {
        errs[0].clone()
    } else {
        format!("[{}]", errs.join(", "))
    }
}

fn error_policy(ds: Arc<DaemonSet>, error: &Error, state: Arc<State>) -> Action {
    let key = key_of(ds.meta());
    let mut failures = state.failures.lock();
    let n = failures.entry(key.clone()).or_default();
    *n = n.saturating_add(1);
    let delay = backoff(*n);
    tracing::debug!(%key, %error, ?delay, "daemonset sync failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(ds: Arc<DaemonSet>, state: Arc<State>) -> Result<Action> {
    let result = sync_daemon_set(&ds, &state).await;
    if result.is_ok() {
        state.failures.lock().remove(&key_of(ds.meta()));
    }
    result
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

/// Upstream's `RecheckDeletionTimestamp` (the `canAdoptFunc`): a fresh read of the DaemonSet.
async fn can_adopt(api: &Api<DaemonSet>, ds: &DaemonSet) -> Result<()> {
    let name = ds.name_any();
    let namespace = ds.namespace().unwrap_or_default();
    let fresh = api.get(&name).await?;
    if fresh.metadata.uid != ds.metadata.uid {
        return Err(Error::Invalid(format!(
            "original DaemonSet {namespace}/{name} is gone: got uid {}, wanted {}",
            fresh.metadata.uid.as_deref().unwrap_or(""),
            ds.metadata.uid.as_deref().unwrap_or("")
        )));
    }
    if let Some(t) = &fresh.metadata.deletion_timestamp {
        return Err(Error::Invalid(format!(
            "{namespace}/{name} has just been deleted at {}",
            t.0
        )));
    }
    Ok(())
}

/// Upstream's `controlledHistories` + `constructHistory`: the current revision (found or
/// created) and the old ones.
async fn construct_history(
    ds: &Arc<DaemonSet>,
    state: &State,
    selector: &LabelSelector,
) -> Result<(Arc<ControllerRevision>, Vec<Arc<ControllerRevision>>)> {
    let meta = ds.meta();
    let namespace = meta.namespace.clone().unwrap_or_default();
    let client = state.ctx.client.clone();
    let ds_api: Api<DaemonSet> = Api::namespaced(client.clone(), &namespace);
    let rev_api: Api<ControllerRevision> = Api::namespaced(client.clone(), &namespace);
    let pods_api: Api<Pod> = Api::namespaced(client, &namespace);
    let controller_ref = pods::controller_ref(&**ds);
    let uid = meta.uid.clone().unwrap_or_default();

    // Claim: ours and selected kept, orphans selected adopted, ours unselected released.
    let candidates: Vec<Arc<ControllerRevision>> = state
        .revisions
        .state()
        .into_iter()
        .filter(|r| r.metadata.namespace.as_deref() == Some(namespace.as_str()))
        .collect();
    let claimed = claim(
        meta,
        |r: &ControllerRevision| selector.matches(&labels_of(&r.metadata)),
        candidates,
    );
    let mut revisions = claimed.owned;
    if !claimed.adopt.is_empty() {
        can_adopt(&ds_api, ds).await?;
        for r in &claimed.adopt {
            if let Some(adopted) = history::adopt_revision(&rev_api, &controller_ref, r).await? {
                revisions.push(Arc::new(adopted));
            }
        }
    }
    for r in &claimed.release {
        history::release_revision(&rev_api, &uid, r).await?;
    }

    // The hash label, where missing, is the revision's name (as upstream).
    for r in revisions.iter_mut() {
        if r.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(HASH_LABEL))
        {
            continue;
        }
        let mut fixed = (**r).clone();
        let name = fixed.metadata.name.clone().unwrap_or_default();
        fixed
            .metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(HASH_LABEL.into(), name.clone());
        *r = Arc::new(rev_api.replace(&name, &post_params(), &fixed).await?);
    }

    let patch = sync::patch_of(ds).map_err(Error::Invalid)?;
    let (current, old) = sync::split_revisions(&patch, &revisions);
    let next = sync::max_revision(&old) + 1;
    let Some((keep, duplicates)) = sync::dedup_current(&current) else {
        let created = snapshot(ds, &ds_api, &rev_api, &controller_ref, patch, next).await?;
        return Ok((Arc::new(created), old));
    };
    if !duplicates.is_empty() {
        let keep_hash = keep
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HASH_LABEL))
            .cloned()
            .unwrap_or_default();
        for dup in &duplicates {
            // Relabel the pods before the duplicate goes.
            for pod in state.pods.controlled_by(&uid) {
                let has = pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(HASH_LABEL))
                    .is_some_and(|h| *h == keep_hash);
                if has {
                    continue;
                }
                let body = json!({"metadata": {"labels": {HASH_LABEL: keep_hash}}});
                match pods_api
                    .patch(&pod.name_any(), &patch_params(), &Patch::Merge(&body))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            history::delete_revision(&rev_api, dup).await?;
        }
    }
    let keep = if keep.revision < next {
        Arc::new(history::update_revision(&rev_api, &keep, next).await?)
    } else {
        keep
    };
    Ok((keep, old))
}

/// Upstream's `snapshot`: creates the current revision; on a name taken by another
/// template raises the collision count in the status (when it was not stale) and fails, so
/// that the next sync names it anew.
async fn snapshot(
    ds: &Arc<DaemonSet>,
    ds_api: &Api<DaemonSet>,
    rev_api: &Api<ControllerRevision>,
    controller_ref: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
    patch: Value,
    revision: i64,
) -> Result<ControllerRevision> {
    let candidate = sync::snapshot(ds, controller_ref, patch.clone(), revision);
    let name = candidate.metadata.name.clone().unwrap_or_default();
    match rev_api.create(&post_params(), &candidate).await {
        Ok(created) => Ok(created),
        Err(e) if is_already_exists(&e) => {
            let existing = rev_api.get(&name).await?;
            if sync::matches(&patch, &existing) {
                return Ok(existing);
            }
            let fresh = ds_api.get(&ds.name_any()).await?;
            let fresh_count = fresh.status.as_ref().and_then(|s| s.collision_count);
            let ours = ds.status.as_ref().and_then(|s| s.collision_count);
            if fresh_count != ours {
                return Err(Error::Invalid(format!(
                    "found a stale collision count ({}, expected {}) of DaemonSet {:?} while processing; will retry until it is updated",
                    ours.unwrap_or(0),
                    fresh_count.unwrap_or(0),
                    ds.name_any()
                )));
            }
            let bumped = fresh_count.unwrap_or(0).saturating_add(1);
            ds_api
                .patch_status(
                    &ds.name_any(),
                    &patch_params(),
                    &Patch::Merge(&json!({"status": {"collisionCount": bumped}})),
                )
                .await?;
            tracing::info!(daemonset = %key_of(ds.meta()), collision_count = bumped,
                "found a hash collision for DaemonSet - bumping collisionCount to resolve it");
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

async fn sync_daemon_set(ds: &Arc<DaemonSet>, state: &State) -> Result<Action> {
    let meta = ds.meta();
    let key = key_of(meta);
    let namespace = meta.namespace.clone().unwrap_or_default();
    let selector = match selector_of(ds) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%key, error = %e, "invalid DaemonSet selector");
            return Ok(Action::await_change());
        }
    };
    if selects_everything(ds) {
        state.emit(
            ds,
            true,
            "SelectingAll",
            "This daemon set is selecting all pods. A non-empty selector is required.".into(),
        );
        return Ok(Action::await_change());
    }
    // A DaemonSet being deleted: its revisions may be gone already, so its status cannot be
    // told; nothing is done (as upstream).
    if meta.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let client = state.ctx.client.clone();
    let ds_api: Api<DaemonSet> = Api::namespaced(client.clone(), &namespace);
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let rev_api: Api<ControllerRevision> = Api::namespaced(client, &namespace);

    let (current, old) = construct_history(ds, state, &selector)
        .await
        .map_err(|e| Error::Invalid(format!("failed to construct revisions of DaemonSet: {e}")))?;
    let hash = current
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(HASH_LABEL))
        .cloned()
        .unwrap_or_default();

    // The pods, claimed by selector.
    let controller_ref = pods::controller_ref(&**ds);
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
    let claimed = claim(
        meta,
        |p: &Pod| selector.matches(&labels_of(&p.metadata)),
        all,
    );
    let mut owned = claimed.owned;
    if !claimed.adopt.is_empty() {
        can_adopt(&ds_api, ds).await?;
        for pod in &claimed.adopt {
            let patch =
                owners::adopt_patch(&controller_ref, pod.metadata.uid.as_deref().unwrap_or(""));
            if let Some(adopted) =
                owners::patch_ownership(&pods_api, &pod.name_any(), &patch, false).await?
            {
                owned.push(Arc::new(adopted));
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

    let nodes = state.nodes.state();
    let in_backoff = |k: &str| {
        let b = state.failed_pods.lock();
        b.in_backoff_since_update(k, Instant::now())
            .then(|| b.get(k))
    };
    let input = Input {
        ds,
        nodes: &nodes,
        pods: &owned,
        hash: &hash,
        now: Timestamp::now(),
        in_backoff: &in_backoff,
    };

    if !satisfied {
        // Only the status, without observing the generation: this sync did not act on it.
        write_status(ds, &ds_api, &sync::counts(&input), false).await?;
        return Ok(Action::requeue(crate::expectations::TIMEOUT));
    }

    let plan = sync::plan(&input).map_err(Error::Invalid);
    let outcome = match &plan {
        Ok(plan) => run_plan(ds, state, &key, &hash, plan).await,
        Err(e) => Err(Error::Invalid(e.to_string())),
    };
    let outcome = match outcome {
        Ok(()) => {
            let limit = util::revision_history_limit(ds);
            let mut result = Ok(());
            for r in sync::history_to_clean(&old, &owned, limit) {
                if let Err(e) = history::delete_revision(&rev_api, &r).await {
                    result = Err(Error::Invalid(format!(
                        "failed to clean up revisions of DaemonSet: {e}"
                    )));
                    break;
                }
            }
            result
        }
        Err(e) => Err(e),
    };
    let counts = sync::counts(&input);
    let status = write_status(ds, &ds_api, &counts, true).await;
    outcome?;
    status?;
    state.failed_pods.lock().gc(Instant::now());

    let mut requeue = plan.ok().and_then(|p| p.requeue_after);
    let min_ready = util::min_ready_seconds(ds);
    if min_ready > 0 && counts.ready != counts.available {
        // Check availability again once minReadySeconds have passed.
        let after = Duration::from_secs(u64::try_from(min_ready).unwrap_or(0) + 1);
        requeue = Some(requeue.map_or(after, |d| d.min(after)));
    }
    Ok(requeue.map_or_else(Action::await_change, Action::requeue))
}

/// Upstream's `storeDaemonSetStatus`: written only when a count changed or the generation
/// was not observed; a merge patch of every field Go writes (the zero optional ones
/// removed, as `omitempty` leaves them out).
async fn write_status(
    ds: &DaemonSet,
    api: &Api<DaemonSet>,
    counts: &sync::Counts,
    observe: bool,
) -> Result<()> {
    if !sync::status_needs_update(ds, counts) {
        return Ok(());
    }
    let status = sync::new_status(ds, counts, observe);
    let body = json!({"status": sync::wire_status(&status)});
    match api
        .patch_status(&ds.name_any(), &patch_params(), &Patch::Merge(&body))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::Invalid(format!(
            "error storing status for daemon set {}: {}",
            key_of(ds.meta()),
            api_message(&e)
        ))),
    }
}

/// Upstream's `syncNodes`: at most 250 creations (in slow-start batches: 1, 2, 4, … until a
/// batch fails) and 250 deletions, expectations recorded as each write succeeds.
async fn run_plan(
    ds: &Arc<DaemonSet>,
    state: &State,
    key: &str,
    hash: &str,
    plan: &Plan,
) -> Result<()> {
    for note in &plan.notes {
        state.emit(ds, note.warning, note.reason, note.message.clone());
    }
    {
        let mut b = state.failed_pods.lock();
        for k in &plan.backoff_next {
            b.next(k, Instant::now());
        }
    }
    let namespace = ds.namespace().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(state.ctx.client.clone(), &namespace);
    let mut errors: Vec<String> = Vec::new();

    let create: Vec<&String> = plan.create_on.iter().take(BURST_REPLICAS).collect();
    let generation = util::template_generation(ds).unwrap_or(None);
    let template = util::create_pod_template(&util::spec_template(ds), generation, hash);
    let controller_ref = pods::controller_ref(&**ds);
    let prefix = pods::pods_prefix(&ds.name_any());
    let mut rest: &[&String] = &create;
    for batch in slow_start_batches(create.len(), 1) {
        let (now, later) = rest.split_at(batch.min(rest.len()));
        rest = later;
        let results = futures::future::join_all(now.iter().map(|node| {
            let mut pod =
                pods::pod_from_template(&template, &namespace, &prefix, controller_ref.clone());
            if let Some(spec) = pod.spec.as_mut() {
                spec.affinity = Some(util::replace_node_name_affinity(spec.affinity.take(), node));
            }
            let api = api.clone();
            async move { api.create(&post_params(), &pod).await }
        }))
        .await;
        let mut failed = false;
        for result in results {
            match result {
                Ok(pod) => {
                    let name = pod.name_any();
                    state.expectations.created(key, &name, Instant::now());
                    state.emit(
                        ds,
                        false,
                        "SuccessfulCreate",
                        format!("Created pod: {name}"),
                    );
                }
                // The namespace is going away: every later creation would fail too.
                Err(e) if namespace_terminating(&e) => {}
                Err(e) => {
                    let msg = api_message(&e);
                    state.emit(ds, true, "FailedCreate", format!("Error creating: {msg}"));
                    errors.push(msg);
                    failed = true;
                }
            }
        }
        if failed {
            break;
        }
    }

    let delete: Vec<&Arc<Pod>> = plan.delete.iter().take(BURST_REPLICAS).collect();
    let results = futures::future::join_all(delete.iter().map(|pod| {
        let api = api.clone();
        let name = pod.name_any();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        state.expectations.deleted(key, &uid, Instant::now());
        async move {
            let result = api.delete(&name, &DeleteParams::default()).await;
            (name, uid, result)
        }
    }))
    .await;
    for (name, uid, result) in results {
        match result {
            Ok(_) => state.emit(
                ds,
                false,
                "SuccessfulDelete",
                format!("Deleted pod: {name}"),
            ),
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                state.expectations.deletion_failed(key, &uid);
                let msg = api_message(&e);
                state.emit(ds, true, "FailedDelete", format!("Error deleting: {msg}"));
                errors.push(msg);
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Invalid(aggregate(&errors)))
    }
}
