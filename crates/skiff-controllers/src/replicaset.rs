//! The ReplicaSet controller, and the ReplicationController controller through the same code
//! (upstream's replication controller wraps the ReplicaSet one by converting the objects):
//! keeps `spec.replicas` active pods for every ReplicaSet (or ReplicationController), adopts
//! the orphans its selector matches and releases the pods it no longer selects, and writes
//! `status` (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas,
//! observedGeneration, the `ReplicaFailure` condition). Upstream counterparts:
//! pkg/controller/replicaset/replica_set.go and replica_set_utils.go,
//! pkg/controller/replication/, and pkg/controller/controller_utils.go (`ActivePodsWithRanks`,
//! slow start, `RealPodControl`'s events).
//!
//! The decisions are pure functions: [`manage`] (how many to create or delete, at most
//! [`BURST_REPLICAS`] per sync), [`slow_start_batches`] (1, 2, 4, ... creations at a time,
//! stopping at the first failed batch), [`pods_to_delete`] (upstream's ranking: unscheduled,
//! pending, not ready, lower deletion cost, doubled-up on a node, ready for less time, more
//! restarts, newer, with times compared on a logarithmic scale), [`calculate_status`] and
//! [`next_availability_check`] (minReadySeconds). The reconcile around them reads the pods
//! through an [`OwnerIndex`] (its own and the namespace's orphans, never the namespace's
//! whole list), and [`Expectations`] keep it from creating or deleting twice while the cache
//! catches up. It does not implement the alpha `terminatingReplicas` (upstream's
//! DeploymentPodReplacementPolicy gate, off by default in 1.33).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{
    Pod, PodTemplateSpec, ReplicationController, ReplicationControllerCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use skiff_api::selector::LabelSelector;

use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::informers::Kind;
use crate::owners::{self, claim, OwnerIndex, FIELD_MANAGER};
use crate::pods::{self, is_active, key_of};
use crate::{Context, Error, Result, Task};

/// Upstream's `BurstReplicas`: the most pods one sync creates or deletes.
pub const BURST_REPLICAS: usize = 500;
/// Upstream's `SlowStartInitialBatchSize`.
pub const SLOW_START_INITIAL_BATCH: usize = 1;
/// The annotation that orders pods for deletion (upstream's PodDeletionCost, on by default).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
const REPLICA_FAILURE: &str = "ReplicaFailure";

/// What the ReplicaSet logic needs to know of the kind it runs for.
pub trait Replicated: Kind + Resource<Scope = NamespaceResourceScope> {
    /// Upstream's component name, the events' source.
    const COMPONENT: &'static str;
    /// `spec.replicas` (default 1).
    fn replicas(&self) -> i32;
    fn min_ready_seconds(&self) -> i32;
    /// The pod selector; `Ok(None)` selects nothing (upstream's nil selector).
    fn selector(&self) -> Result<Option<LabelSelector>, String>;
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// The status in the ReplicaSet's shape.
    fn status(&self) -> ReplicaSetStatus;
    /// The `status` to write, from the ReplicaSet's shape.
    fn status_json(status: &ReplicaSetStatus) -> Value;
}

impl Replicated for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn selector(&self) -> Result<Option<LabelSelector>, String> {
        match &self.spec {
            None => Ok(None),
            Some(s) => LabelSelector::from_k8s(&s.selector)
                .map(Some)
                .map_err(|e| e.to_string()),
        }
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }
    fn status(&self) -> ReplicaSetStatus {
        self.status.clone().unwrap_or_default()
    }
    fn status_json(status: &ReplicaSetStatus) -> Value {
        status_json(status)
    }
}

impl Replicated for ReplicationController {
    const COMPONENT: &'static str = "replication-controller";
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn selector(&self) -> Result<Option<LabelSelector>, String> {
        let Some(labels) = self.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
            return Ok(None);
        };
        let sel = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some(labels.clone()),
            match_expressions: None,
        };
        LabelSelector::from_k8s(&sel)
            .map(Some)
            .map_err(|e| e.to_string())
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.as_ref())
    }
    fn status(&self) -> ReplicaSetStatus {
        let Some(s) = &self.status else {
            return ReplicaSetStatus::default();
        };
        ReplicaSetStatus {
            available_replicas: s.available_replicas,
            conditions: s.conditions.as_ref().map(|cs| {
                cs.iter()
                    .map(|c| ReplicaSetCondition {
                        last_transition_time: c.last_transition_time.clone(),
                        message: c.message.clone(),
                        reason: c.reason.clone(),
                        status: c.status.clone(),
                        type_: c.type_.clone(),
                    })
                    .collect()
            }),
            fully_labeled_replicas: s.fully_labeled_replicas,
            observed_generation: s.observed_generation,
            ready_replicas: s.ready_replicas,
            replicas: s.replicas,
            terminating_replicas: None,
        }
    }
    fn status_json(status: &ReplicaSetStatus) -> Value {
        // The two statuses have the same fields; the conditions differ only in their type.
        let conditions: Option<Vec<ReplicationControllerCondition>> =
            status.conditions.as_ref().map(|cs| {
                cs.iter()
                    .map(|c| ReplicationControllerCondition {
                        last_transition_time: c.last_transition_time.clone(),
                        message: c.message.clone(),
                        reason: c.reason.clone(),
                        status: c.status.clone(),
                        type_: c.type_.clone(),
                    })
                    .collect()
            });
        let mut v = status_json(status);
        v["conditions"] = serde_json::to_value(conditions).unwrap_or(Value::Null);
        v
    }
}

/// A status as a merge patch writes it: every field present, the ones Go omits when zero
/// (all but `replicas`) as `null`, so that a value dropping to zero is removed.
fn status_json(s: &ReplicaSetStatus) -> Value {
    fn nonzero(v: Option<i32>) -> Value {
        v.filter(|n| *n != 0).map_or(Value::Null, Value::from)
    }
    json!({
        "replicas": s.replicas,
        "fullyLabeledReplicas": nonzero(s.fully_labeled_replicas),
        "readyReplicas": nonzero(s.ready_replicas),
        "availableReplicas": nonzero(s.available_replicas),
        "observedGeneration": s.observed_generation.filter(|g| *g != 0),
        "conditions": s.conditions.as_ref().filter(|c| !c.is_empty()),
    })
}

// ---------------------------------------------------------------------------------------
// Decisions.

/// What a sync does about the number of pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Manage {
    Nothing,
    Create(usize),
    Delete(usize),
}

/// Upstream's `manageReplicas` arithmetic: the difference between the active pods and
/// `spec.replicas`, at most [`BURST_REPLICAS`] either way.
pub fn manage(replicas: i32, active: usize) -> Manage {
    let want = usize::try_from(replicas.max(0)).unwrap_or(0);
    if active < want {
        Manage::Create((want - active).min(BURST_REPLICAS))
    } else if active > want {
        Manage::Delete((active - want).min(BURST_REPLICAS))
    } else {
        Manage::Nothing
    }
}

/// Upstream's `slowStartBatch` sizes for `count` calls: `initial`, then doubling, the last
/// one cut to what remains.
pub fn slow_start_batches(count: usize, initial: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut remaining = count;
    let mut batch = remaining.min(initial);
    while batch > 0 {
        out.push(batch);
        remaining -= batch;
        batch = (2 * batch).min(remaining);
    }
    out
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

/// When the pod's `Ready` condition became `True`; `Some(None)` for a ready pod without a
/// time (upstream's zero time), `None` when not ready.
fn ready_time(pod: &Pod) -> Option<Option<Timestamp>> {
    let c = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (c.status == "True").then(|| c.last_transition_time.as_ref().map(|t| t.0))
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| {
            cs.iter().map(|c| c.restart_count).max().unwrap_or(0)
        })
}

/// Upstream's `afterOrZero`: whether `t1` is after `t2`, a zero (absent) time being after
/// every other.
fn after_or_zero(t1: Option<Timestamp>, t2: Option<Timestamp>) -> bool {
    match (t1, t2) {
        (Some(a), Some(b)) => a > b,
        (t1, _) => t1.is_none(),
    }
}

/// Upstream's `logarithmicRankDiff`: the difference of the base-2 logarithms of the ages.
fn log_rank_diff(t1: Timestamp, t2: Timestamp, now: Timestamp) -> i64 {
    fn rank(t: Timestamp, now: Timestamp) -> i64 {
        let d = now.as_nanosecond() - t.as_nanosecond();
        if d > 0 {
            // Truncation toward zero, as Go's int64(math.Log2(...)).
            (d as f64).log2() as i64
        } else {
            -1
        }
    }
    rank(t1, now) - rank(t2, now)
}

/// Compares two times as upstream's LogarithmicScaleDown does: on a log scale from `now`,
/// ties broken by UID; a zero time falls back to `afterOrZero`.
fn newer_first(
    t1: Option<Timestamp>,
    t2: Option<Timestamp>,
    uids: (&str, &str),
    now: Timestamp,
) -> bool {
    match (t1, t2) {
        (Some(a), Some(b)) => match log_rank_diff(a, b, now) {
            0 => uids.0 < uids.1,
            d => d < 0,
        },
        _ => after_or_zero(t1, t2),
    }
}

/// Upstream's `ActivePodsWithRanks.Less`: whether `a` (with `rank_a` related pods on its
/// node) should be deleted before `b`.
fn delete_before(a: &Pod, rank_a: usize, b: &Pod, rank_b: usize, now: Timestamp) -> bool {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    let (na, nb) = (node(a), node(b));
    // 1. Unassigned < assigned.
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return na.is_empty();
    }
    // 2. Pending < Unknown < Running.
    if phase_ordinal(a) != phase_ordinal(b) {
        return phase_ordinal(a) < phase_ordinal(b);
    }
    // 3. Not ready < ready.
    let (ra, rb) = (ready_time(a), ready_time(b));
    if ra.is_some() != rb.is_some() {
        return ra.is_none();
    }
    // 4. Lower deletion cost first.
    if deletion_cost(a) != deletion_cost(b) {
        return deletion_cost(a) < deletion_cost(b);
    }
    // 5. More colocated related pods first.
    if rank_a != rank_b {
        return rank_a > rank_b;
    }
    let uids = (
        a.metadata.uid.as_deref().unwrap_or(""),
        b.metadata.uid.as_deref().unwrap_or(""),
    );
    // 6. Ready for less time first.
    if let (Some(ta), Some(tb)) = (ra, rb) {
        if ta != tb {
            return newer_first(ta, tb, uids, now);
        }
    }
    // 7. More restarts first.
    if max_restarts(a) != max_restarts(b) {
        return max_restarts(a) > max_restarts(b);
    }
    // 8. Newer first.
    let ca = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let cb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
    if ca != cb {
        return newer_first(ca, cb, uids, now);
    }
    false
}

/// A merge sort driven by a `less` function: never panics, whatever `less` answers
/// (upstream's logarithmic comparison with UID ties is not a total order, which the
/// standard library's sort may refuse).
fn sort_by_less<T: Clone>(items: &mut [T], less: &impl Fn(&T, &T) -> bool) {
    if items.len() <= 1 {
        return;
    }
    let mid = items.len() / 2;
    sort_by_less(&mut items[..mid], less);
    sort_by_less(&mut items[mid..], less);
    let mut merged = Vec::with_capacity(items.len());
    let (mut i, mut j) = (0, mid);
    while i < mid && j < items.len() {
        if less(&items[j], &items[i]) {
            merged.push(items[j].clone());
            j += 1;
        } else {
            merged.push(items[i].clone());
            i += 1;
        }
    }
    merged.extend_from_slice(&items[i..mid]);
    merged.extend_from_slice(&items[j..]);
    items.clone_from_slice(&merged);
}

/// Upstream's `getPodsToDelete`: the `diff` pods to delete first, each ranked by how many
/// active `related` pods (of the ReplicaSets with the same controller) share its node.
pub fn pods_to_delete(
    pods: &[Arc<Pod>],
    related: &[Arc<Pod>],
    diff: usize,
    now: Timestamp,
) -> Vec<Arc<Pod>> {
    if diff >= pods.len() {
        return pods.to_vec();
    }
    let mut on_node: HashMap<String, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_active(p)) {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        *on_node.entry(node).or_default() += 1;
    }
    let mut ranked: Vec<(Arc<Pod>, usize)> = pods
        .iter()
        .map(|p| {
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            (p.clone(), on_node.get(&node).copied().unwrap_or(0))
        })
        .collect();
    sort_by_less(&mut ranked, &|(a, ra), (b, rb)| {
        delete_before(a, *ra, b, *rb, now)
    });
    ranked.into_iter().take(diff).map(|(p, _)| p).collect()
}

/// Why the last sync failed to create or delete, for the `ReplicaFailure` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManageFailure {
    pub message: String,
}

/// Upstream's `calculateStatus` over the active pods the controller owns (counted before
/// this sync's creations and deletions, as upstream does), at `now`; `failure` is this
/// sync's create/delete error. Leaves `observedGeneration` as it was (set when written).
pub fn calculate_status(
    current: &ReplicaSetStatus,
    replicas: i32,
    min_ready_seconds: i32,
    template_labels: &BTreeMap<String, String>,
    active: &[Arc<Pod>],
    failure: Option<&ManageFailure>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let mut status = current.clone();
    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for pod in active {
        let labels = pod.metadata.labels.as_ref();
        if template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            fully_labeled += 1;
        }
        if pods::is_ready(pod) {
            ready += 1;
            if pods::is_available(pod, min_ready_seconds, now) {
                available += 1;
            }
        }
    }
    let has_failure = current
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == REPLICA_FAILURE);
    match failure {
        Some(f) if !has_failure => {
            let diff = active.len() as i64 - i64::from(replicas);
            let reason = match diff {
                d if d < 0 => "FailedCreate",
                d if d > 0 => "FailedDelete",
                _ => "",
            };
            let mut conditions = status.conditions.take().unwrap_or_default();
            conditions.push(ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(f.message.clone()),
                last_transition_time: Some(Time(truncate_to_seconds(now))),
            });
            status.conditions = Some(conditions);
        }
        None if has_failure => {
            let conditions: Vec<ReplicaSetCondition> = status
                .conditions
                .take()
                .unwrap_or_default()
                .into_iter()
                .filter(|c| c.type_ != REPLICA_FAILURE)
                .collect();
            status.conditions = (!conditions.is_empty()).then_some(conditions);
        }
        _ => {}
    }
    status.replicas = i32::try_from(active.len()).unwrap_or(i32::MAX);
    status.fully_labeled_replicas = Some(fully_labeled);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status
}

/// Upstream's `updateReplicaSetStatus` short cut: nothing to write when the counts and
/// conditions are unchanged and the generation was already observed.
pub fn status_changed(generation: i64, current: &ReplicaSetStatus, new: &ReplicaSetStatus) -> bool {
    let n = |v: Option<i32>| v.unwrap_or(0);
    let conditions = |s: &ReplicaSetStatus| s.conditions.clone().unwrap_or_default();
    !(current.replicas == new.replicas
        && n(current.fully_labeled_replicas) == n(new.fully_labeled_replicas)
        && n(current.ready_replicas) == n(new.ready_replicas)
        && n(current.available_replicas) == n(new.available_replicas)
        && current.observed_generation.unwrap_or(0) == generation
        && conditions(current) == conditions(new))
}

/// When the next of `pods` that is ready but not yet available (minReadySeconds) becomes
/// available, from `now`.
pub fn next_availability_check(
    pods: &[Arc<Pod>],
    min_ready_seconds: i32,
    now: Timestamp,
) -> Option<Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    pods.iter()
        .filter_map(|p| pods::ready_since(p))
        .filter_map(|since| {
            since
                .checked_add(SignedDuration::from_secs(i64::from(min_ready_seconds)))
                .ok()
        })
        .filter(|at| *at > now)
        .map(|at| {
            Duration::try_from(at.duration_since(now)).unwrap_or_default()
                + Duration::from_millis(50)
        })
        .min()
}

/// Condition times are written in whole seconds, as Go's `metav1.Time` marshals them.
pub fn truncate_to_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

// ---------------------------------------------------------------------------------------
// The controller.

struct State<K: Replicated> {
    ctx: Arc<Context>,
    store: Store<K>,
    pods: Arc<OwnerIndex<Pod>>,
    expectations: Expectations,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

/// Sets up the `replicaset` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    setup::<ReplicaSet>(ctx)
}

/// Sets up the `replicationcontroller` controller.
pub fn replication_controller(ctx: &Arc<Context>) -> Result<Task> {
    setup::<ReplicationController>(ctx)
}

fn setup<K: Replicated>(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let store = informers.store::<K>();
    let state = Arc::new(State {
        ctx: ctx.clone(),
        store: store.clone(),
        pods: OwnerIndex::new(informers.store::<Pod>()),
        expectations: Expectations::new(),
        recorder: Recorder::new(ctx.client.clone(), K::COMPONENT),
        failures: Mutex::new(HashMap::new()),
    });
    let for_owners = state.clone();
    let for_gone = state.clone();
    let owners = informers.subscribe::<K>().inspect(move |obj| {
        // An owner gone from the cache: forget what it waited for.
        if for_gone.store.get(&ObjectRef::from_obj(&**obj)).is_none() {
            for_gone.expectations.forget(&key_of(obj.meta()));
        }
    });
    let controller = Controller::for_shared_stream(owners, store)
        .watches_shared_stream(informers.subscribe::<Pod>(), move |pod: Arc<Pod>| {
            for_owners.owners_of(&pod)
        });
    Ok(Box::pin(
        controller
            .run(reconcile::<K>, error_policy::<K>, state)
            .for_each(|_| async {}),
    ))
}

impl<K: Replicated> State<K> {
    /// The controllers a pod's change concerns: the one it had, the one it has, and for an
    /// orphan every one of its namespace whose selector matches it.
    fn owners_of(&self, pod: &Pod) -> Vec<ObjectRef<K>> {
        let moved = self.pods.observe(pod);
        let kind = K::kind(&());
        let mut out: Vec<ObjectRef<K>> = [&moved.before, &moved.after]
            .into_iter()
            .flatten()
            .filter(|c| c.kind == kind)
            .map(|c| ObjectRef::new(&c.name).within(&moved.namespace))
            .collect();
        if moved.exists && moved.after.is_none() {
            let empty = BTreeMap::new();
            let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
            for owner in self.store.state() {
                if owner.meta().namespace.as_deref() == Some(moved.namespace.as_str())
                    && matches!(owner.selector(), Ok(Some(s)) if s.matches(labels))
                {
                    out.push(ObjectRef::from_obj(&*owner));
                }
            }
        }
        out.dedup();
        out
    }
}

fn error_policy<K: Replicated>(obj: Arc<K>, error: &Error, state: Arc<State<K>>) -> Action {
    let key = key_of(obj.meta());
    let mut failures = state.failures.lock();
    let n = failures.entry(key.clone()).or_default();
    *n = n.saturating_add(1);
    let delay = backoff(*n);
    tracing::debug!(%key, %error, ?delay, "sync failed; retrying");
    Action::requeue(delay)
}

/// Upstream's default per-item rate limiter: 5 ms doubling per failure, at most 1000 s.
pub fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(30);
    Duration::from_millis(5u64.saturating_mul(1u64 << exp)).min(Duration::from_secs(1000))
}

async fn reconcile<K: Replicated>(obj: Arc<K>, state: Arc<State<K>>) -> Result<Action> {
    let result = sync(&obj, &state).await;
    if result.is_ok() {
        state.failures.lock().remove(&key_of(obj.meta()));
    }
    result
}

fn matches(selector: &Option<LabelSelector>, pod: &Pod) -> bool {
    let empty = BTreeMap::new();
    selector
        .as_ref()
        .is_some_and(|s| s.matches(pod.metadata.labels.as_ref().unwrap_or(&empty)))
}

async fn sync<K: Replicated>(rs: &Arc<K>, state: &State<K>) -> Result<Action> {
    let meta = rs.meta();
    let key = key_of(meta);
    let namespace = meta.namespace.clone().unwrap_or_default();
    let name = rs.name_any();
    let selector = match rs.selector() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%key, error = %e, "invalid pod selector");
            return Ok(Action::await_change());
        }
    };
    let all = state.pods.candidates(meta);
    let now = Instant::now();
    // A created pod counts as seen in any phase (one may fail at once); a deleted one is
    // gone once it is no longer active.
    let satisfied = state.expectations.satisfied(
        &key,
        now,
        |n| all.iter().any(|p| p.metadata.name.as_deref() == Some(n)),
        |u| {
            !all.iter()
                .any(|p| p.metadata.uid.as_deref() == Some(u) && is_active(p))
        },
    );
    let candidates: Vec<Arc<Pod>> = all.into_iter().filter(|p| is_active(p)).collect();

    let pods_api: Api<Pod> = Api::namespaced(state.ctx.client.clone(), &namespace);
    let claimed = claim(meta, |p: &Pod| matches(&selector, p), candidates);
    let mut owned = claimed.owned;
    if !claimed.adopt.is_empty() {
        recheck_not_deleting::<K>(&state.ctx, &namespace, &name, meta.uid.as_deref()).await?;
        let controller_ref = pods::controller_ref(&**rs);
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

    let now_ts = Timestamp::now();
    let mut failure = None;
    if satisfied && meta.deletion_timestamp.is_none() {
        match manage(rs.replicas(), owned.len()) {
            Manage::Nothing => {}
            Manage::Create(n) => {
                if let Err(e) = create_pods(rs, state, &pods_api, &key, n).await {
                    failure = Some(e);
                }
            }
            Manage::Delete(n) => {
                let related = related_pods(&**rs, state);
                let victims = pods_to_delete(&owned, &related, n, now_ts);
                if let Err(e) = delete_pods(rs, state, &pods_api, &key, &victims).await {
                    failure = Some(e);
                }
            }
        }
    }

    let current = rs.status();
    let template_labels = rs
        .template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut status = calculate_status(
        &current,
        rs.replicas(),
        rs.min_ready_seconds(),
        &template_labels,
        &owned,
        failure.as_ref(),
        now_ts,
    );
    let generation = meta.generation.unwrap_or(0);
    if status_changed(generation, &current, &status) {
        status.observed_generation = Some(generation);
        let api: Api<K> = Api::namespaced(state.ctx.client.clone(), &namespace);
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        let patch = json!({ "status": K::status_json(&status) });
        match api
            .patch_status(&name, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_not_found() => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(f) = failure {
        return Err(Error::Invalid(f.message));
    }
    if !satisfied {
        // A lost watch event must not stall the controller longer than the expectations.
        return Ok(Action::requeue(crate::expectations::TIMEOUT));
    }
    Ok(
        match next_availability_check(&owned, rs.min_ready_seconds(), now_ts) {
            Some(after) => Action::requeue(after),
            None => Action::await_change(),
        },
    )
}

/// Upstream's `RecheckDeletionTimestamp`: before adopting, a fresh read of the owner, which
/// must still be the same object and not being deleted.
async fn recheck_not_deleting<K: Replicated>(
    ctx: &Context,
    namespace: &str,
    name: &str,
    uid: Option<&str>,
) -> Result<()> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let fresh = api.get(name).await?;
    if fresh.meta().uid.as_deref() != uid {
        return Err(Error::Invalid(format!(
            "original {} {namespace}/{name} is gone: got uid {}, wanted {}",
            K::kind(&()),
            fresh.meta().uid.as_deref().unwrap_or(""),
            uid.unwrap_or("")
        )));
    }
    if let Some(t) = &fresh.meta().deletion_timestamp {
        return Err(Error::Invalid(format!(
            "{namespace}/{name} has just been deleted at {}",
            t.0
        )));
    }
    Ok(())
}

/// The pods of every ReplicaSet with the same controller as `rs` (upstream's
/// `getIndirectlyRelatedPods`), which rank pods doubled up on a node first.
fn related_pods<K: Replicated>(rs: &K, state: &State<K>) -> Vec<Arc<Pod>> {
    let Some(controller) = pods::controller_of(rs.meta()) else {
        return state
            .pods
            .controlled_by(rs.meta().uid.as_deref().unwrap_or(""));
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for other in state.store.state() {
        if other.meta().namespace != rs.meta().namespace
            || pods::controller_of(other.meta()).map(|c| &c.uid) != Some(&controller.uid)
        {
            continue;
        }
        for pod in state
            .pods
            .controlled_by(other.meta().uid.as_deref().unwrap_or(""))
        {
            if seen.insert(pod.metadata.uid.clone()) {
                out.push(pod);
            }
        }
    }
    out
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

/// Creates `count` pods in slow-start batches; the error of the first failed batch ends it.
async fn create_pods<K: Replicated>(
    rs: &Arc<K>,
    state: &State<K>,
    api: &Api<Pod>,
    key: &str,
    count: usize,
) -> Result<(), ManageFailure> {
    let Some(template) = rs.template() else {
        return Err(ManageFailure {
            message: "unable to create pods, no template".into(),
        });
    };
    if template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.as_ref())
        .is_none_or(|l| l.is_empty())
    {
        return Err(ManageFailure {
            message: "unable to create pods, no labels".into(),
        });
    }
    let namespace = rs.meta().namespace.clone().unwrap_or_default();
    let pod = pods::pod_from_template(
        template,
        &namespace,
        &pods::pods_prefix(&rs.name_any()),
        pods::controller_ref(&**rs),
    );
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    for batch in slow_start_batches(count, SLOW_START_INITIAL_BATCH) {
        let results =
            futures::future::join_all((0..batch).map(|_| api.create(&params, &pod))).await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(created) => {
                    let created_name = created.name_any();
                    state
                        .expectations
                        .created(key, &created_name, Instant::now());
                    emit(
                        state,
                        rs,
                        false,
                        "SuccessfulCreate",
                        format!("Created pod: {created_name}"),
                    );
                }
                Err(e) if namespace_terminating(&e) => {}
                Err(e) => {
                    let message = api_message(&e);
                    emit(
                        state,
                        rs,
                        true,
                        "FailedCreate",
                        format!("Error creating: {message}"),
                    );
                    first_error.get_or_insert(ManageFailure { message });
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    Ok(())
}

/// Deletes `victims` at once; the first error other than "not found" is returned.
async fn delete_pods<K: Replicated>(
    rs: &Arc<K>,
    state: &State<K>,
    api: &Api<Pod>,
    key: &str,
    victims: &[Arc<Pod>],
) -> Result<(), ManageFailure> {
    let now = Instant::now();
    for pod in victims {
        state
            .expectations
            .deleted(key, pod.metadata.uid.as_deref().unwrap_or(""), now);
    }
    let results = futures::future::join_all(victims.iter().map(|pod| async move {
        let name = pod.name_any();
        (pod, api.delete(&name, &DeleteParams::default()).await)
    }))
    .await;
    let mut first_error = None;
    for (pod, result) in results {
        let name = pod.name_any();
        match result {
            Ok(_) => emit(
                state,
                rs,
                false,
                "SuccessfulDelete",
                format!("Deleted pod: {name}"),
            ),
            Err(kube::Error::Api(s)) if s.is_not_found() => {}
            Err(e) => {
                state
                    .expectations
                    .deletion_failed(key, pod.metadata.uid.as_deref().unwrap_or(""));
                let message = api_message(&e);
                emit(
                    state,
                    rs,
                    true,
                    "FailedDelete",
                    format!("Error deleting: {message}"),
                );
                first_error.get_or_insert(ManageFailure {
                    message: format!("unable to delete pods: {message}"),
                });
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Records an event without waiting for it.
fn emit<K: Replicated>(
    state: &State<K>,
    obj: &Arc<K>,
    warning: bool,
    reason: &'static str,
    note: String,
) {
    let recorder = state.recorder.clone();
    let obj = obj.clone();
    tokio::spawn(async move {
        if warning {
            recorder.warning(&*obj, reason, note).await;
        } else {
            recorder.normal(&*obj, reason, note).await;
        }
    });
}

#[cfg(test)]
mod tests;
