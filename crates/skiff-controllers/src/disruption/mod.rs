//! The disruption controller (upstream's pkg/controller/disruption): keeps every
//! PodDisruptionBudget's status (currentHealthy, desiredHealthy, expectedPods,
//! disruptionsAllowed, observedGeneration, the `DisruptionAllowed` condition with
//! `SufficientPods`/`InsufficientPods`, and the `disruptedPods` the eviction API recorded,
//! dropped once the pod is being deleted or [`DELETION_TIMEOUT`] passed) and resets a pod's
//! stale `DisruptionTarget` condition (True for [`STALE_POD_DISRUPTION_TIMEOUT`] without the
//! pod being deleted) to False.
//!
//! A percentage (or a maxUnavailable) is of the pods' controllers' scale: ReplicaSets,
//! Deployments (through their ReplicaSets), StatefulSets and ReplicationControllers from the
//! caches, any other controller through its `/scale` subresource. An integer minAvailable is
//! of the matching pods. A failed sync writes `disruptionsAllowed: 0` with reason
//! `SyncFailed` (upstream's fail-safe); a conflict is only retried.
//!
//! The arithmetic is pure ([`scaled_value`], [`desired_healthy`], [`build_disrupted_pods`],
//! [`count_healthy`], [`new_status`]) and tested in `tests.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodCondition, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DynamicObject, PostParams};
use kube::core::GroupVersionKind;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;
use skiff_api::selector::LabelSelector;

use crate::endpoints::index::{LabelIndex, Labels};
use crate::events::Recorder;
use crate::owners::FIELD_MANAGER;
use crate::pods::{controller_of, is_ready, key_of};
use crate::replicaset::{backoff, truncate_to_seconds};
use crate::{Context, Error, Result, Task};

/// Upstream's `DeletionTimeout`: how long an eviction's entry in `disruptedPods` waits for
/// the pod to be marked deleted.
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);
/// Upstream's `stalePodDisruptionTimeout`.
pub const STALE_POD_DISRUPTION_TIMEOUT: Duration = Duration::from_secs(120);
pub const DISRUPTION_ALLOWED: &str = "DisruptionAllowed";
pub const SUFFICIENT_PODS: &str = "SufficientPods";
pub const INSUFFICIENT_PODS: &str = "InsufficientPods";
pub const SYNC_FAILED: &str = "SyncFailed";
const DISRUPTION_TARGET: &str = "DisruptionTarget";

// ---------------------------------------------------------------------------------------
// Decisions.

/// Upstream's `intstr.GetScaledValueFromIntOrPercent`: an integer as it is, `N%` of `total`
/// rounded up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(n) => Ok(*n),
        IntOrString::String(s) => {
            let Some(number) = s.strip_suffix('%') else {
                return Err(
                    "invalid value for IntOrString: invalid type: string is not a percentage"
                        .into(),
                );
            };
            let percent: i64 = number
                .parse()
                .map_err(|e| format!("invalid value {s:?}: {e}"))?;
            let product = percent * i64::from(total);
            let value = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(value).map_err(|e| format!("invalid value {s:?}: {e}"))
        }
    }
}

/// Whether the PDB's numbers need the controllers' scale (a maxUnavailable, or a percentage
/// minAvailable).
pub fn needs_scale(pdb: &PodDisruptionBudget) -> bool {
    let spec = pdb.spec.as_ref();
    spec.and_then(|s| s.max_unavailable.as_ref()).is_some()
        || matches!(
            spec.and_then(|s| s.min_available.as_ref()),
            Some(IntOrString::String(_))
        )
}

/// Upstream's `getExpectedPodCount`: (expectedCount, desiredHealthy) from the controllers'
/// total `scale` (when [`needs_scale`]) or the number of matching `pods`.
pub fn desired_healthy(
    pdb: &PodDisruptionBudget,
    scale: i32,
    pods: usize,
) -> Result<(i32, i32), String> {
    let spec = pdb.spec.clone().unwrap_or_default();
    if let Some(max_unavailable) = &spec.max_unavailable {
        let max = scaled_value(max_unavailable, scale, true)?;
        return Ok((scale, (scale - max).max(0)));
    }
    match &spec.min_available {
        Some(IntOrString::Int(n)) => Ok((i32::try_from(pods).unwrap_or(i32::MAX), *n)),
        Some(v @ IntOrString::String(_)) => Ok((scale, scaled_value(v, scale, true)?)),
        None => Ok((0, 0)),
    }
}

fn plus(t: Timestamp, d: Duration) -> Timestamp {
    SignedDuration::try_from(d)
        .ok()
        .and_then(|d| t.checked_add(d).ok())
        .unwrap_or(Timestamp::MAX)
}

/// Upstream's `buildDisruptedPodMap`: the entries still awaiting their pod's deletion, when
/// to look again (the earliest expiry), and the pods that were not deleted in time.
pub fn build_disrupted_pods(
    pods: &[Arc<Pod>],
    disrupted: Option<&BTreeMap<String, Time>>,
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Timestamp>, Vec<Arc<Pod>>) {
    let mut result = BTreeMap::new();
    let mut recheck: Option<Timestamp> = None;
    let mut not_deleted = Vec::new();
    let Some(disrupted) = disrupted else {
        return (result, recheck, not_deleted);
    };
    for pod in pods {
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(at) = disrupted.get(&pod.name_any()) else {
            continue;
        };
        let expected = plus(at.0, DELETION_TIMEOUT);
        if expected < now {
            not_deleted.push(pod.clone());
        } else {
            if recheck.is_none_or(|r| expected < r) {
                recheck = Some(expected);
            }
            result.insert(pod.name_any(), at.clone());
        }
    }
    (result, recheck, not_deleted)
}

/// Upstream's `countHealthyPods`: ready pods not being deleted and not just disrupted.
pub fn count_healthy(pods: &[Arc<Pod>], disrupted: &BTreeMap<String, Time>, now: Timestamp) -> i32 {
    let n = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            disrupted
                .get(&p.name_any())
                .is_none_or(|at| plus(at.0, DELETION_TIMEOUT) <= now)
        })
        .filter(|p| is_ready(p))
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// Upstream's `apimeta.SetStatusCondition`: replaces the condition of the same type, keeping
/// its transition time when the status did not change.
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == new.type_) {
        if c.status == new.status {
            new.last_transition_time = c.last_transition_time.clone();
        }
        *c = new;
    } else {
        conditions.push(new);
    }
}

/// Upstream's `UpdateDisruptionAllowedCondition`.
pub fn update_disruption_allowed_condition(status: &mut PodDisruptionBudgetStatus, now: Timestamp) {
    let (state, reason) = if status.disruptions_allowed > 0 {
        ("True", SUFFICIENT_PODS)
    } else {
        ("False", INSUFFICIENT_PODS)
    };
    let mut conditions = status.conditions.take().unwrap_or_default();
    set_condition(
        &mut conditions,
        Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: state.into(),
            reason: reason.into(),
            message: String::new(),
            observed_generation: status.observed_generation,
            last_transition_time: Time(truncate_to_seconds(now)),
        },
    );
    status.conditions = Some(conditions);
}

/// Upstream's `ConditionsAreUpToDate`.
pub fn conditions_up_to_date(pdb: &PodDisruptionBudget) -> bool {
    let Some(status) = &pdb.status else {
        return false;
    };
    let Some(c) = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == DISRUPTION_ALLOWED)
    else {
        return false;
    };
    if status.observed_generation.unwrap_or(0) != pdb.metadata.generation.unwrap_or(0) {
        return false;
    }
    if status.disruptions_allowed > 0 {
        c.status == "True" && c.reason == SUFFICIENT_PODS
    } else {
        c.status == "False" && c.reason == INSUFFICIENT_PODS
    }
}

/// Upstream's `updatePdbStatus`: the status to write, or `None` when it is current. No pod
/// expected means no disruption allowed (the first pods may not be counted yet).
pub fn new_status(
    pdb: &PodDisruptionBudget,
    current_healthy: i32,
    desired_healthy: i32,
    expected: i32,
    disrupted: BTreeMap<String, Time>,
    now: Timestamp,
) -> Option<PodDisruptionBudgetStatus> {
    let mut allowed = current_healthy - desired_healthy;
    if expected <= 0 || allowed <= 0 {
        allowed = 0;
    }
    let old = pdb.status.clone().unwrap_or_default();
    let generation = pdb.metadata.generation.unwrap_or(0);
    if old.current_healthy == current_healthy
        && old.desired_healthy == desired_healthy
        && old.expected_pods == expected
        && old.disruptions_allowed == allowed
        && old.disrupted_pods.clone().unwrap_or_default() == disrupted
        && old.observed_generation.unwrap_or(0) == generation
        && conditions_up_to_date(pdb)
    {
        return None;
    }
    let mut status = PodDisruptionBudgetStatus {
        current_healthy,
        desired_healthy,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: Some(generation),
        conditions: old.conditions,
    };
    update_disruption_allowed_condition(&mut status, now);
    Some(status)
}

/// Upstream's `failSafe`: no disruption allowed, condition `SyncFailed` with the error.
pub fn fail_safe_status(
    pdb: &PodDisruptionBudget,
    error: &str,
    now: Timestamp,
) -> PodDisruptionBudgetStatus {
    let mut status = pdb.status.clone().unwrap_or_default();
    status.disruptions_allowed = 0;
    let mut conditions = status.conditions.take().unwrap_or_default();
    set_condition(
        &mut conditions,
        Condition {
            type_: DISRUPTION_ALLOWED.into(),
            status: "False".into(),
            reason: SYNC_FAILED.into(),
            message: error.to_owned(),
            observed_generation: status.observed_generation,
            last_transition_time: Time(truncate_to_seconds(now)),
        },
    );
    status.conditions = Some(conditions);
    status
}

/// Upstream's `nonTerminatingPodHasStaleDisruptionCondition`: how long until a pod's
/// `DisruptionTarget=True` condition (not the kubelet's, on a pod neither deleted nor
/// terminal) is stale; `None` when it has no such condition.
pub fn stale_disruption_condition(pod: &Pod, now: Timestamp) -> Option<Duration> {
    if pod.metadata.deletion_timestamp.is_some() || crate::pods::is_terminated(pod) {
        return None;
    }
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == DISRUPTION_TARGET)?;
    if c.status != "True" || c.reason.as_deref() == Some("TerminationByKubelet") {
        return None;
    }
    let since = c
        .last_transition_time
        .as_ref()
        .map_or(Timestamp::MIN, |t| t.0);
    let stale_at = plus(since, STALE_POD_DISRUPTION_TIMEOUT);
    Some(if stale_at <= now {
        Duration::ZERO
    } else {
        Duration::try_from(stale_at.duration_since(now)).unwrap_or_default()
    })
}

/// The PDB's selector: `None` selects nothing, an empty one every pod of the namespace
/// (policy/v1).
fn selector_of(pdb: &PodDisruptionBudget) -> Result<Option<LabelSelector>, String> {
    match pdb.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        None => Ok(None),
        Some(s) => LabelSelector::from_k8s(s)
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

/// Whether `pdb` selects `pod` (upstream's `GetPodPodDisruptionBudgets`: an empty selector
/// selects nothing there).
pub fn selects(pdb: &PodDisruptionBudget, pod: &Pod) -> bool {
    if pdb.metadata.namespace != pod.metadata.namespace {
        return false;
    }
    match selector_of(pdb) {
        Ok(Some(s)) if !s.is_empty() => {
            s.matches(pod.metadata.labels.as_ref().unwrap_or(&Labels::new()))
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// The controller.

struct State {
    ctx: Arc<Context>,
    pdbs: Store<PodDisruptionBudget>,
    pods: Arc<LabelIndex<Pod>>,
    replicasets: Store<ReplicaSet>,
    deployments: Store<Deployment>,
    statefulsets: Store<StatefulSet>,
    rcs: Store<ReplicationController>,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
    /// Pods with a stale-condition check scheduled.
    stale_pending: Mutex<HashSet<String>>,
}

/// Sets up the `disruption` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let pdbs = informers.store::<PodDisruptionBudget>();
    let state = Arc::new(State {
        ctx: ctx.clone(),
        pdbs: pdbs.clone(),
        pods: LabelIndex::new(informers.store::<Pod>(), None, |_| 0),
        replicasets: informers.store(),
        deployments: informers.store(),
        statefulsets: informers.store(),
        rcs: informers.store(),
        recorder: Recorder::new(ctx.client.clone(), "controllermanager"),
        failures: Mutex::new(HashMap::new()),
        stale_pending: Mutex::new(HashSet::new()),
    });
    let for_pods = state.clone();
    let controller =
        Controller::for_shared_stream(informers.subscribe::<PodDisruptionBudget>(), pdbs)
            .watches_shared_stream(informers.subscribe::<Pod>(), move |pod: Arc<Pod>| {
                for_pods.pods.observe(&pod);
                check_stale_condition(&for_pods, &pod);
                pdb_for_pod(&for_pods, &pod)
            });
    let synced = futures::future::join(
        futures::future::join3(
            informers.synced::<PodDisruptionBudget>(),
            informers.synced::<Pod>(),
            informers.synced::<ReplicaSet>(),
        ),
        futures::future::join3(
            informers.synced::<Deployment>(),
            informers.synced::<StatefulSet>(),
            informers.synced::<ReplicationController>(),
        ),
    );
    Ok(Box::pin(async move {
        synced.await;
        controller
            .run(reconcile, error_policy, state)
            .for_each(|_| async {})
            .await;
    }))
}

/// Upstream's `getPdbForPod`: the first PDB selecting the pod (a warning event when there
/// are several).
fn pdb_for_pod(state: &Arc<State>, pod: &Pod) -> Option<ObjectRef<PodDisruptionBudget>> {
    let mut matching: Vec<Arc<PodDisruptionBudget>> = state
        .pdbs
        .state()
        .into_iter()
        .filter(|pdb| selects(pdb, pod))
        .collect();
    matching.sort_by_key(|p| p.name_any());
    let first = matching.first()?;
    if matching.len() > 1 {
        let msg = format!(
            "Pod {:?}/{:?} matches multiple PodDisruptionBudgets.  Chose {:?} arbitrarily.",
            pod.namespace().unwrap_or_default(),
            pod.name_any(),
            first.name_any()
        );
        let recorder = state.recorder.clone();
        let pod = pod.clone();
        tokio::spawn(async move {
            recorder
                .warning(&pod, "MultiplePodDisruptionBudgets", msg)
                .await
        });
    }
    Some(ObjectRef::from_obj(&**first))
}

fn check_stale_condition(state: &Arc<State>, pod: &Pod) {
    let Some(after) = stale_disruption_condition(pod, Timestamp::now()) else {
        return;
    };
    let key = key_of(&pod.metadata);
    if !state.stale_pending.lock().insert(key.clone()) {
        return;
    }
    let state = state.clone();
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    tokio::spawn(async move {
        tokio::time::sleep(after + Duration::from_millis(50)).await;
        state.stale_pending.lock().remove(&key);
        if let Err(e) = clear_stale_condition(&state, &ns, &name).await {
            tracing::debug!(%key, error = %e, "clearing a stale DisruptionTarget condition");
        }
    });
}

/// Upstream's `syncStalePodDisruption`: the condition set to False once stale.
async fn clear_stale_condition(state: &Arc<State>, ns: &str, name: &str) -> Result<()> {
    let Some(pod) = state.pods.store().get(&ObjectRef::new(name).within(ns)) else {
        return Ok(());
    };
    match stale_disruption_condition(&pod, Timestamp::now()) {
        None => return Ok(()),
        Some(d) if !d.is_zero() => {
            check_stale_condition(state, &pod);
            return Ok(());
        }
        Some(_) => {}
    }
    let mut new = (*pod).clone();
    if let Some(conditions) = new.status.as_mut().and_then(|s| s.conditions.as_mut()) {
        for c in conditions
            .iter_mut()
            .filter(|c| c.type_ == DISRUPTION_TARGET)
        {
            *c = PodCondition {
                type_: DISRUPTION_TARGET.into(),
                status: "False".into(),
                last_transition_time: Some(Time(truncate_to_seconds(Timestamp::now()))),
                ..PodCondition::default()
            };
        }
    }
    let api: Api<Pod> = Api::namespaced(state.ctx.client.clone(), ns);
    api.replace_status(name, &PostParams::default(), &new)
        .await?;
    tracing::debug!(%ns, %name, "reset a stale DisruptionTarget condition to False");
    Ok(())
}

fn error_policy(pdb: Arc<PodDisruptionBudget>, error: &Error, state: Arc<State>) -> Action {
    let key = key_of(&pdb.metadata);
    let mut failures = state.failures.lock();
    let n = failures.entry(key.clone()).or_default();
    *n = n.saturating_add(1);
    let delay = backoff(*n);
    tracing::debug!(%key, %error, ?delay, "pdb sync failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, state: Arc<State>) -> Result<Action> {
    let result = sync(&pdb, &state).await;
    if result.is_ok() {
        state.failures.lock().remove(&key_of(&pdb.metadata));
    }
    result
}

fn is_conflict(e: &Error) -> bool {
    matches!(e, Error::Kube(kube::Error::Api(s)) if s.code == 409)
}

async fn sync(pdb: &Arc<PodDisruptionBudget>, state: &Arc<State>) -> Result<Action> {
    match try_sync(pdb, state).await {
        Ok(action) => Ok(action),
        Err(e) if is_conflict(&e) => Err(e),
        Err(e) => {
            tracing::debug!(pdb = %key_of(&pdb.metadata), error = %e, "failed to sync PDB");
            let status = fail_safe_status(pdb, &e.to_string(), Timestamp::now());
            write_status(state, pdb, status).await?;
            Err(e)
        }
    }
}

async fn write_status(
    state: &State,
    pdb: &PodDisruptionBudget,
    status: PodDisruptionBudgetStatus,
) -> Result<()> {
    let mut new = pdb.clone();
    new.status = Some(status);
    let api: Api<PodDisruptionBudget> = Api::namespaced(
        state.ctx.client.clone(),
        &pdb.namespace().unwrap_or_default(),
    );
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    match api.replace_status(&pdb.name_any(), &params, &new).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The pods `pdb` selects (upstream's `getPodsForPdb`).
fn pods_for(state: &State, pdb: &PodDisruptionBudget) -> Result<Vec<Arc<Pod>>> {
    let Some(selector) = selector_of(pdb).map_err(Error::Invalid)? else {
        return Ok(Vec::new());
    };
    let ns = pdb.namespace().unwrap_or_default();
    let match_labels: Labels = pdb
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|s| s.match_labels.clone())
        .unwrap_or_default();
    let empty = Labels::new();
    let candidates = if match_labels.is_empty() {
        state
            .pods
            .store()
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()))
            .collect()
    } else {
        state.pods.matching(&ns, &match_labels)
    };
    Ok(candidates
        .into_iter()
        .filter(|p| selector.matches(p.metadata.labels.as_ref().unwrap_or(&empty)))
        .collect())
}

/// Upstream's `getExpectedScale`: the sum of the scale of the pods' controllers, and the
/// pods without a controller.
async fn expected_scale(state: &State, pods: &[Arc<Pod>]) -> Result<(i32, Vec<String>)> {
    let mut scales: HashMap<String, i32> = HashMap::new();
    let mut unmanaged = Vec::new();
    for pod in pods {
        let Some(owner) = controller_of(&pod.metadata) else {
            unmanaged.push(pod.name_any());
            continue;
        };
        if scales.contains_key(&owner.uid) {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        match find_scale(state, owner, &ns).await? {
            Some((uid, scale)) => {
                scales.insert(uid, scale);
            }
            None => {
                return Err(Error::Invalid(format!(
                    "found no controllers for pod {:?}",
                    pod.name_any()
                )))
            }
        }
    }
    Ok((scales.values().sum(), unmanaged))
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// Upstream's finders: ReplicationController, Deployment (through the ReplicaSet),
/// ReplicaSet (not a Deployment's), StatefulSet, and any other kind's `/scale`.
async fn find_scale(
    state: &State,
    owner: &OwnerReference,
    ns: &str,
) -> Result<Option<(String, i32)>> {
    let group = group_of(&owner.api_version);
    let uid_matches = |uid: Option<&String>| uid.map(String::as_str) == Some(owner.uid.as_str());
    match (owner.kind.as_str(), group) {
        ("ReplicationController", "") => {
            let found = state.rcs.get(&ObjectRef::new(&owner.name).within(ns));
            return Ok(found
                .filter(|rc| uid_matches(rc.metadata.uid.as_ref()))
                .map(|rc| {
                    (
                        owner.uid.clone(),
                        rc.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    )
                }));
        }
        ("ReplicaSet", "apps" | "extensions") => {
            let Some(rs) = state
                .replicasets
                .get(&ObjectRef::new(&owner.name).within(ns))
                .filter(|rs| uid_matches(rs.metadata.uid.as_ref()))
            else {
                return Ok(None);
            };
            if let Some(dref) = controller_of(&rs.metadata) {
                if dref.kind == "Deployment" {
                    if !matches!(group_of(&dref.api_version), "apps" | "extensions") {
                        return Ok(None);
                    }
                    return Ok(state
                        .deployments
                        .get(&ObjectRef::new(&dref.name).within(ns))
                        .filter(|d| d.metadata.uid.as_deref() == Some(dref.uid.as_str()))
                        .map(|d| {
                            (
                                dref.uid.clone(),
                                d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                            )
                        }));
                }
            }
            return Ok(Some((
                owner.uid.clone(),
                rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
            )));
        }
        ("StatefulSet", "apps") => {
            let found = state
                .statefulsets
                .get(&ObjectRef::new(&owner.name).within(ns));
            return Ok(found
                .filter(|s| uid_matches(s.metadata.uid.as_ref()))
                .map(|s| {
                    (
                        owner.uid.clone(),
                        s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
                    )
                }));
        }
        _ => {}
    }
    // Any other controller: its scale subresource.
    let (g, v) = match owner.api_version.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", owner.api_version.as_str()),
    };
    let gvk = GroupVersionKind::gvk(g, v, &owner.kind);
    let (resource, caps) = kube::discovery::pinned_kind(&state.ctx.client, &gvk).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(state.ctx.client.clone(), ns, &resource);
    match api.get_scale(&owner.name).await {
        Ok(scale) => {
            if scale.metadata.uid.as_deref() != Some(owner.uid.as_str()) {
                return Ok(None);
            }
            Ok(Some((
                owner.uid.clone(),
                scale.spec.and_then(|s| s.replicas).unwrap_or(0),
            )))
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {
            if caps.subresources.iter().any(|(r, _)| r.plural == "scale") {
                Ok(None)
            } else {
                let gr = if g.is_empty() {
                    resource.plural.clone()
                } else {
                    format!("{}.{g}", resource.plural)
                };
                Err(Error::Invalid(format!(
                    "{gr} does not implement the scale subresource"
                )))
            }
        }
        Err(e) => Err(e.into()),
    }
}

async fn try_sync(pdb: &Arc<PodDisruptionBudget>, state: &Arc<State>) -> Result<Action> {
    let pods = match pods_for(state, pdb) {
        Ok(p) => p,
        Err(e) => {
            let recorder = state.recorder.clone();
            let (obj, note) = ((**pdb).clone(), format!("Failed to get pods: {e}"));
            tokio::spawn(async move { recorder.warning(&obj, "NoPods", note).await });
            return Err(e);
        }
    };
    if pods.is_empty() {
        let recorder = state.recorder.clone();
        let obj = (**pdb).clone();
        tokio::spawn(async move {
            recorder
                .normal(&obj, "NoPods", "No matching pods found".into())
                .await
        });
    }
    let (scale, unmanaged) = if needs_scale(pdb) {
        match expected_scale(state, &pods).await {
            Ok(v) => v,
            Err(e) => {
                let recorder = state.recorder.clone();
                let obj = (**pdb).clone();
                let note = format!("Failed to calculate the number of expected pods: {e}");
                tokio::spawn(async move {
                    recorder
                        .warning(&obj, "CalculateExpectedPodCountFailed", note)
                        .await
                });
                return Err(e);
            }
        }
    } else {
        (0, Vec::new())
    };
    let (expected, desired) = desired_healthy(pdb, scale, pods.len()).map_err(Error::Invalid)?;
    if !unmanaged.is_empty() {
        let recorder = state.recorder.clone();
        let obj = (**pdb).clone();
        let selector = pdb
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .map(|s| format!("{s:?}"))
            .unwrap_or_default();
        let note = format!("Pods selected by this PodDisruptionBudget (selector: {selector}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.");
        tokio::spawn(async move { recorder.warning(&obj, "UnmanagedPods", note).await });
    }
    let now = Timestamp::now();
    let disrupted = pdb.status.as_ref().and_then(|s| s.disrupted_pods.as_ref());
    let (disrupted, recheck, not_deleted) = build_disrupted_pods(&pods, disrupted, now);
    for pod in not_deleted {
        let recorder = state.recorder.clone();
        let ns = pdb.namespace().unwrap_or_default();
        // Upstream's message names the namespace twice.
        let note = format!("Pod was expected by PDB {ns}/{ns} to be deleted but it wasn't");
        tokio::spawn(async move { recorder.warning(&*pod, "NotDeleted", note).await });
    }
    let healthy = count_healthy(&pods, &disrupted, now);
    if let Some(status) = new_status(pdb, healthy, desired, expected, disrupted, now) {
        write_status(state, pdb, status).await?;
    }
    Ok(match recheck {
        Some(at) => Action::requeue(
            Duration::try_from(at.duration_since(now)).unwrap_or_default()
                + Duration::from_millis(50),
        ),
        None => Action::await_change(),
    })
}

#[cfg(test)]
mod tests;
