//! The DaemonSet's decisions, pure: what upstream's `manage` / `podsShouldBeOnNode` and
//! `rollingUpdate` (daemon_controller.go, update.go) would create and delete over the cached
//! nodes and pods, the status `updateDaemonSetStatus` would write, and the revision
//! bookkeeping of `constructHistory` / `cleanupHistory`.
//!
//! A [`Plan`] is the nodes to create a pod on and the pods to delete, with the events and
//! backoff steps that go with them. As upstream, the rolling update only runs when `manage`
//! has nothing to do (its creations and deletions set expectations, which hold the rolling
//! update back until the cache shows them), so [`plan`] is one or the other.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::util::{
    allows_surge, failed_pods_backoff_key, is_pod_updated, min_ready_seconds, node_should_run,
    pod_order, spec_template, surge_count, target_node_name, unavailable_count,
    update_strategy_type, HASH_LABEL,
};
use crate::history;
use crate::pods;

/// Upstream's `BurstReplicas`: at most this many creations and deletions per sync.
pub const BURST_REPLICAS: usize = 250;

/// An event the plan asks for: warning or not, reason, message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// What one sync does to the pods.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// The nodes that get a new daemon pod, in order.
    pub create_on: Vec<String>,
    /// The pods to delete, in order.
    pub delete: Vec<Arc<Pod>>,
    /// Events to record (FailedDaemonPod, SucceededDaemonPod).
    pub notes: Vec<Note>,
    /// Failed-pod backoff keys to step (`Backoff::next`), one per failed pod deleted.
    pub backoff_next: Vec<String>,
    /// Sync again after this long (a failed pod held back by its backoff).
    pub requeue_after: Option<Duration>,
    /// Whether this is the rolling update's plan (else `manage`'s).
    pub rolling: bool,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create_on.is_empty() && self.delete.is_empty()
    }

    fn requeue(&mut self, after: Duration) {
        self.requeue_after = Some(self.requeue_after.map_or(after, |d| d.min(after)));
    }
}

/// What a sync decides over.
pub struct Input<'a> {
    pub ds: &'a DaemonSet,
    pub nodes: &'a [Arc<Node>],
    /// The pods the DaemonSet owns (after claiming), in any phase.
    pub pods: &'a [Arc<Pod>],
    /// The current revision's hash (the label new pods get).
    pub hash: &'a str,
    pub now: Timestamp,
    /// The failed-pod backoff: `Some(delay)` while the key is backing off.
    pub in_backoff: &'a (dyn Fn(&str) -> Option<Duration> + Sync),
}

fn node_name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or("")
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or("")
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn deleting(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Upstream's `getNodesToDaemonPods`: the pods by the node they are (or are to be) on,
/// skipping those whose node cannot be told and, unless `include_deleted_terminal`,
/// terminal pods already being deleted. Nodes in name order, so plans are deterministic
/// (upstream walks a Go map).
pub fn nodes_to_pods(
    pods: &[Arc<Pod>],
    include_deleted_terminal: bool,
) -> BTreeMap<String, Vec<Arc<Pod>>> {
    let mut out: BTreeMap<String, Vec<Arc<Pod>>> = BTreeMap::new();
    for pod in pods {
        if !include_deleted_terminal && pods::is_terminated(pod) && deleting(pod) {
            continue;
        }
        if let Ok(node) = target_node_name(pod) {
            out.entry(node).or_default().push(pod.clone());
        }
    }
    out
}

/// Upstream's `podsShouldBeOnNode` for one node, into `plan`.
fn pods_should_be_on_node(
    input: &Input<'_>,
    node: &Node,
    on_node: Option<&Vec<Arc<Pod>>>,
    stepped: &mut HashSet<String>,
    plan: &mut Plan,
) {
    let ds = input.ds;
    let name = node_name(node);
    let (should_run, should_continue) = node_should_run(node, ds);
    let namespace = ds.metadata.namespace.as_deref().unwrap_or("");
    match on_node {
        None if should_run => plan.create_on.push(name.to_owned()),
        Some(daemon_pods) if should_continue => {
            let mut running: Vec<&Arc<Pod>> = Vec::new();
            for pod in daemon_pods {
                if deleting(pod) {
                    continue;
                }
                match phase(pod) {
                    "Failed" => {
                        // Upstream backs off here: the controller often fights a kubelet
                        // that rejects the pod.
                        let key = failed_pods_backoff_key(ds, name);
                        if stepped.contains(&key) {
                            continue;
                        }
                        if let Some(delay) = (input.in_backoff)(&key) {
                            plan.requeue(delay);
                            continue;
                        }
                        stepped.insert(key.clone());
                        plan.backoff_next.push(key);
                        plan.notes.push(Note {
                            warning: true,
                            reason: "FailedDaemonPod",
                            message: format!(
                                "Found failed daemon pod {namespace}/{} on node {name}, will try to kill it",
                                pod_name(pod)
                            ),
                        });
                        plan.delete.push(pod.clone());
                    }
                    "Succeeded" => {
                        plan.notes.push(Note {
                            warning: false,
                            reason: "SucceededDaemonPod",
                            message: format!(
                                "Found succeeded daemon pod {namespace}/{} on node {name}, will try to delete it",
                                pod_name(pod)
                            ),
                        });
                        plan.delete.push(pod.clone());
                    }
                    _ => running.push(pod),
                }
            }
            running.sort_by(|a, b| pod_order(a, b));
            if !allows_surge(ds) {
                // More than one running pod: all but the oldest go.
                plan.delete
                    .extend(running.iter().skip(1).map(|p| (*p).clone()));
                return;
            }
            if running.len() <= 1 {
                if running.is_empty() && should_run {
                    // Surging: the node needs at least one pod that is not being deleted.
                    plan.create_on.push(name.to_owned());
                }
                return;
            }
            // Surging: the oldest new and the oldest old pod may both stay while the new one
            // is not available and the old one is ready; every other pod goes.
            let mut oldest_new: Option<&Arc<Pod>> = None;
            let mut oldest_old: Option<&Arc<Pod>> = None;
            for pod in running {
                let is_new = pod
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(HASH_LABEL))
                    .is_some_and(|h| h == input.hash);
                let slot = if is_new {
                    &mut oldest_new
                } else {
                    &mut oldest_old
                };
                if slot.is_none() {
                    *slot = Some(pod);
                    continue;
                }
                plan.delete.push(pod.clone());
            }
            if let (Some(new), Some(old)) = (oldest_new, oldest_old) {
                if !pods::is_ready(old) || pods::is_available(new, min_ready_seconds(ds), input.now)
                {
                    plan.delete.push(old.clone());
                }
            }
        }
        Some(daemon_pods) if !should_continue => {
            plan.delete
                .extend(daemon_pods.iter().filter(|p| !deleting(p)).cloned());
        }
        _ => {}
    }
}

/// Upstream's `manage`: per node what `podsShouldBeOnNode` wants, plus the unscheduled pods
/// aimed at nodes that do not exist (pod GC cannot remove those).
pub fn manage(input: &Input<'_>) -> Plan {
    let by_node = nodes_to_pods(input.pods, false);
    let mut plan = Plan::default();
    let mut stepped = HashSet::new();
    for node in input.nodes {
        pods_should_be_on_node(
            input,
            node,
            by_node.get(node_name(node)),
            &mut stepped,
            &mut plan,
        );
    }
    let existing: HashSet<&str> = input.nodes.iter().map(|n| node_name(n)).collect();
    for (node, on_node) in &by_node {
        if existing.contains(node.as_str()) {
            continue;
        }
        plan.delete.extend(
            on_node
                .iter()
                .filter(|p| {
                    p.spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_deref())
                        .is_none_or(str::is_empty)
                })
                .cloned(),
        );
    }
    plan
}

/// Upstream's `updatedDesiredNodeCounts`: `(maxSurge, maxUnavailable)`, and every desired
/// node in `by_node` (empty when it has no pod).
pub fn desired_node_counts(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    by_node: &mut BTreeMap<String, Vec<Arc<Pod>>>,
) -> Result<(usize, usize), String> {
    let mut desired = 0i32;
    for node in nodes {
        if !node_should_run(node, ds).0 {
            continue;
        }
        desired += 1;
        by_node.entry(node_name(node).to_owned()).or_default();
    }
    let max_unavailable = unavailable_count(ds, desired)
        .map_err(|e| format!("invalid value for MaxUnavailable: {e}"))?;
    let max_surge =
        surge_count(ds, desired).map_err(|e| format!("invalid value for MaxSurge: {e}"))?;
    let mut max_unavailable = usize::try_from(max_unavailable.max(0)).unwrap_or(0);
    let max_surge = usize::try_from(max_surge.max(0)).unwrap_or(0);
    // An impossible configuration (both zero) obeys the default of one unavailable.
    if desired > 0 && max_unavailable == 0 && max_surge == 0 {
        max_unavailable = 1;
    }
    Ok((max_surge, max_unavailable))
}

/// A node's new pod and old pod, either possibly absent.
type NewAndOld<'a> = (Option<&'a Arc<Pod>>, Option<&'a Arc<Pod>>);

/// Upstream's `findUpdatedPodsOnNode`: the one new and the one old pod not being deleted,
/// `None` when there are more of either (the manage loop prunes those first).
fn updated_pods_on_node<'a>(pods: &'a [Arc<Pod>], hash: &str) -> Option<NewAndOld<'a>> {
    let mut new = None;
    let mut old = None;
    for pod in pods.iter().filter(|p| !deleting(p)) {
        let slot = if is_pod_updated(pod, hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(pod);
    }
    Some((new, old))
}

/// Upstream's `rollingUpdate`. Without surge: delete old pods while the unavailable count
/// (nodes without an available pod, new pods not yet available) stays within
/// maxUnavailable, and old pods that are not available anyway; the manage loop then makes
/// their replacements. With surge: a new pod next to each old one, at most maxSurge at a time
/// for old pods that are available (at once for those that are not), and the old pod deleted
/// once its replacement is available.
pub fn rolling_update(input: &Input<'_>) -> Result<Plan, String> {
    let ds = input.ds;
    let mut by_node = nodes_to_pods(input.pods, false);
    let (max_surge, max_unavailable) = desired_node_counts(ds, input.nodes, &mut by_node)
        .map_err(|e| format!("couldn't get unavailable numbers: {e}"))?;
    let min_ready = min_ready_seconds(ds);
    let available = |p: &Pod| pods::is_available(p, min_ready, input.now);
    let mut plan = Plan {
        rolling: true,
        ..Plan::default()
    };
    if max_surge == 0 {
        let mut unavailable = 0usize;
        let mut replacements: Vec<Arc<Pod>> = Vec::new();
        let mut candidates: Vec<Arc<Pod>> = Vec::new();
        for pods in by_node.values() {
            let Some((new, old)) = updated_pods_on_node(pods, input.hash) else {
                // Excess pods: the manage loop cleans up first; count it unavailable.
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !available(old) {
                        replacements.push(old.clone());
                    } else if unavailable < max_unavailable {
                        candidates.push(old.clone());
                    }
                }
            }
        }
        let remaining = max_unavailable
            .saturating_sub(unavailable)
            .min(candidates.len());
        plan.delete = replacements;
        plan.delete.extend(candidates.into_iter().take(remaining));
        return Ok(plan);
    }

    let mut surging = 0usize;
    let mut allowed: Vec<String> = Vec::new();
    let mut candidates: Vec<String> = Vec::new();
    for (node, pods) in &by_node {
        let Some((new, old)) = updated_pods_on_node(pods, input.hash) else {
            surging += 1;
            continue;
        };
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !available(old) {
                    allowed.push(node.clone());
                } else if surging < max_surge {
                    candidates.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if !available(new) {
                    surging += 1;
                    continue;
                }
                plan.delete.push(old.clone());
            }
        }
    }
    let remaining = max_surge.saturating_sub(surging).min(candidates.len());
    plan.create_on = allowed;
    plan.create_on
        .extend(candidates.into_iter().take(remaining));
    Ok(plan)
}

/// One sync's work: `manage`'s, or when it has none and the strategy is RollingUpdate, the
/// rolling update's.
pub fn plan(input: &Input<'_>) -> Result<Plan, String> {
    let managed = manage(input);
    if !managed.is_empty() || update_strategy_type(input.ds) != "RollingUpdate" {
        return Ok(managed);
    }
    let mut rolled = rolling_update(input)?;
    rolled.notes.splice(0..0, managed.notes);
    rolled.backoff_next.splice(0..0, managed.backoff_next);
    if let Some(d) = managed.requeue_after {
        rolled.requeue(d);
    }
    Ok(rolled)
}

// ---------------------------------------------------------------------------------------
// Status.

/// The counts `updateDaemonSetStatus` computes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub desired: i32,
    pub current: i32,
    pub misscheduled: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
    pub unavailable: i32,
}

/// Upstream's `updateDaemonSetStatus` counts: per node that should run the pod, whether it
/// has one and whether the oldest is ready, available and of the current revision; a pod on a
/// node that should not run it is misscheduled.
pub fn counts(input: &Input<'_>) -> Counts {
    let ds = input.ds;
    let by_node = nodes_to_pods(input.pods, false);
    let mut c = Counts::default();
    for node in input.nodes {
        let should_run = node_should_run(node, ds).0;
        let on_node = by_node.get(node_name(node)).filter(|p| !p.is_empty());
        if !should_run {
            if on_node.is_some() {
                c.misscheduled += 1;
            }
            continue;
        }
        c.desired += 1;
        let Some(on_node) = on_node else {
            continue;
        };
        c.current += 1;
        let mut sorted: Vec<&Arc<Pod>> = on_node.iter().collect();
        sorted.sort_by(|a, b| pod_order(a, b));
        let pod = sorted[0];
        if pods::is_ready(pod) {
            c.ready += 1;
            if pods::is_available(pod, min_ready_seconds(ds), input.now) {
                c.available += 1;
            }
        }
        if is_pod_updated(pod, input.hash) {
            c.updated += 1;
        }
    }
    c.unavailable = c.desired - c.available;
    c
}

/// Whether `storeDaemonSetStatus` writes: a count differs, or the status has not observed
/// the DaemonSet's generation.
pub fn status_needs_update(ds: &DaemonSet, c: &Counts) -> bool {
    let s = ds.status.clone().unwrap_or_default();
    let generation = ds.metadata.generation.unwrap_or(0);
    !(s.desired_number_scheduled == c.desired
        && s.current_number_scheduled == c.current
        && s.number_misscheduled == c.misscheduled
        && s.number_ready == c.ready
        && s.updated_number_scheduled.unwrap_or(0) == c.updated
        && s.number_available.unwrap_or(0) == c.available
        && s.number_unavailable.unwrap_or(0) == c.unavailable
        && s.observed_generation.unwrap_or(0) >= generation)
}

/// The status `storeDaemonSetStatus` writes: the counts, observedGeneration raised to the
/// generation when `observe`, the rest (collisionCount, conditions) as they were.
pub fn new_status(ds: &DaemonSet, c: &Counts, observe: bool) -> DaemonSetStatus {
    let mut s = ds.status.clone().unwrap_or_default();
    if observe {
        s.observed_generation = ds.metadata.generation;
    }
    s.desired_number_scheduled = c.desired;
    s.current_number_scheduled = c.current;
    s.number_misscheduled = c.misscheduled;
    s.number_ready = c.ready;
    s.updated_number_scheduled = Some(c.updated);
    s.number_available = Some(c.available);
    s.number_unavailable = Some(c.unavailable);
    s
}

/// The status as Go writes it: the four required counts always, the optional ones only
/// when not zero (`omitempty`), the others absent.
pub fn wire_status(s: &DaemonSetStatus) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(
        "currentNumberScheduled".into(),
        s.current_number_scheduled.into(),
    );
    m.insert("numberMisscheduled".into(), s.number_misscheduled.into());
    m.insert(
        "desiredNumberScheduled".into(),
        s.desired_number_scheduled.into(),
    );
    m.insert("numberReady".into(), s.number_ready.into());
    let optional: [(&str, Option<i64>); 5] = [
        ("observedGeneration", s.observed_generation),
        (
            "updatedNumberScheduled",
            s.updated_number_scheduled.map(i64::from),
        ),
        ("numberAvailable", s.number_available.map(i64::from)),
        ("numberUnavailable", s.number_unavailable.map(i64::from)),
        ("collisionCount", s.collision_count.map(i64::from)),
    ];
    for (k, v) in optional {
        m.insert(
            k.into(),
            match v {
                Some(v) if v != 0 => v.into(),
                _ => Value::Null,
            },
        );
    }
    if let Some(conds) = s.conditions.as_ref().filter(|c| !c.is_empty()) {
        m.insert(
            "conditions".into(),
            serde_json::to_value(conds).unwrap_or(Value::Null),
        );
    } else {
        m.insert("conditions".into(), Value::Null);
    }
    Value::Object(m)
}

// ---------------------------------------------------------------------------------------
// Revisions.

/// Upstream's `getPatch` for a DaemonSet: `{"spec":{"template":T}}` with
/// `"$patch":"replace"` in T.
pub fn patch_of(ds: &DaemonSet) -> Result<Value, String> {
    history::template_patch(&spec_template(ds)).map_err(|e| e.to_string())
}

/// Upstream's `Match`: the revision's data is the DaemonSet's patch.
pub fn matches(patch: &Value, revision: &ControllerRevision) -> bool {
    let data = revision
        .data
        .as_ref()
        .map(|d| history::go_json(&d.0))
        .unwrap_or_default();
    data == history::go_json(patch)
}

/// The DaemonSet's hash for a collision count: upstream's `ComputeHash` of the template
/// with the collision count, here [`history::hash_data`] over the revision's data (the same
/// template), as skiff cannot reproduce go-spew's rendering (see `deployment/hash.rs`).
pub fn hash_of(patch: &Value, collision_count: Option<i32>) -> String {
    history::hash_data(patch, collision_count)
}

/// Upstream's `snapshot` before the create: `<ds>-<hash>`, the template's labels plus the
/// hash, the DaemonSet's annotations (so `kubernetes.io/change-cause` shows in `kubectl
/// rollout history`), controlled by the DaemonSet.
pub fn snapshot(
    ds: &DaemonSet,
    controller: &OwnerReference,
    patch: Value,
    revision: i64,
) -> ControllerRevision {
    let collision_count = ds.status.as_ref().and_then(|s| s.collision_count);
    let hash = hash_of(&patch, collision_count);
    let mut labels = spec_template(ds)
        .metadata
        .and_then(|m| m.labels)
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), hash.clone());
    let name = ds.metadata.name.as_deref().unwrap_or("");
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: ds.metadata.annotations.clone(),
            owner_references: Some(vec![controller.clone()]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(patch)),
        revision,
    }
}

/// The revisions of `constructHistory`: those matching the DaemonSet's patch (current) and
/// the others (old).
pub fn split_revisions(
    patch: &Value,
    revisions: &[Arc<ControllerRevision>],
) -> (Vec<Arc<ControllerRevision>>, Vec<Arc<ControllerRevision>>) {
    revisions.iter().cloned().partition(|r| matches(patch, r))
}

/// Upstream's `maxRevision`.
pub fn max_revision(revisions: &[Arc<ControllerRevision>]) -> i64 {
    revisions
        .iter()
        .map(|r| r.revision)
        .max()
        .unwrap_or(0)
        .max(0)
}

/// Upstream's `dedupCurHistories`: the current revision with the highest number (the last
/// of equals) is kept, the others are duplicates.
pub fn dedup_current(
    current: &[Arc<ControllerRevision>],
) -> Option<(Arc<ControllerRevision>, Vec<Arc<ControllerRevision>>)> {
    let mut keep: Option<&Arc<ControllerRevision>> = None;
    let mut max = 0i64;
    for r in current {
        if keep.is_none() || r.revision >= max {
            keep = Some(r);
            max = r.revision;
        }
    }
    let keep = keep?.clone();
    let dups = current
        .iter()
        .filter(|r| r.metadata.name != keep.metadata.name)
        .cloned()
        .collect();
    Some((keep, dups))
}

/// Upstream's `cleanupHistory`: the oldest old revisions beyond revisionHistoryLimit, never
/// one whose hash a pod (any claimed pod, deleted terminal ones too) still carries.
pub fn history_to_clean(
    old: &[Arc<ControllerRevision>],
    pods: &[Arc<Pod>],
    limit: i32,
) -> Vec<Arc<ControllerRevision>> {
    let limit = usize::try_from(limit.max(0)).unwrap_or(0);
    let Some(mut to_kill) = old.len().checked_sub(limit).filter(|n| *n > 0) else {
        return Vec::new();
    };
    let live: HashSet<String> = nodes_to_pods(pods, true)
        .into_values()
        .flatten()
        .filter_map(|p| {
            p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(HASH_LABEL))
                .filter(|h| !h.is_empty())
                .cloned()
        })
        .collect();
    let mut sorted: Vec<&Arc<ControllerRevision>> = old.iter().collect();
    sorted.sort_by_key(|r| r.revision);
    let mut out = Vec::new();
    for r in sorted {
        if to_kill == 0 {
            break;
        }
        let hash = r
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(HASH_LABEL))
            .map_or("", String::as_str);
        if live.contains(hash) {
            continue;
        }
        out.push(r.clone());
        to_kill -= 1;
    }
    out
}
