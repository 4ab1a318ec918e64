//! The arithmetic and bookkeeping of Deployments, as upstream's
//! pkg/controller/deployment/util/deployment_util.go (and the ReplicaSet sorts of
//! pkg/controller/controller_utils.go): surge and unavailability from the strategy (percent
//! rounding as upstream: surge up, unavailable down), revisions and the annotations a
//! Deployment writes on its ReplicaSets, conditions, which ReplicaSet is the new one,
//! proportions for scaling during a rollout. Pure functions over k8s-openapi types.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet, ReplicaSetCondition,
};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde_json::Value;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The annotation that carried the removed `spec.rollbackTo` (apps/v1 round trip).
pub const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The label a Deployment adds to its ReplicaSets' selectors, templates and pods.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// Upstream's `maxRevHistoryLengthInChars`.
pub const MAX_REVISION_HISTORY_CHARS: usize = 2000;

// Condition types and reasons (upstream's words).
pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const REPLICA_FAILURE: &str = "ReplicaFailure";
pub const REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
pub const NEW_REPLICA_SET: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const MINIMUM_REPLICAS_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MINIMUM_REPLICAS_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
// Rollback event reasons.
pub const ROLLBACK_REVISION_NOT_FOUND: &str = "DeploymentRollbackRevisionNotFound";
pub const ROLLBACK_TEMPLATE_UNCHANGED: &str = "DeploymentRollbackTemplateUnchanged";
pub const ROLLBACK_DONE: &str = "DeploymentRollback";

/// Annotations never copied between a Deployment and its ReplicaSets.
const ANNOTATIONS_TO_SKIP: [&str; 6] = [
    LAST_APPLIED,
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    ROLLBACK_TO,
];

pub fn skip_copy_annotation(key: &str) -> bool {
    ANNOTATIONS_TO_SKIP.contains(&key)
}

/// `*d.Spec.Replicas` (the server defaults it to 1).
pub fn d_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `*rs.Spec.Replicas` (the server defaults it to 1).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn set_rs_replicas(rs: &mut ReplicaSet, n: i32) {
    rs.spec.get_or_insert_with(Default::default).replicas = Some(n);
}

pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub fn min_ready_seconds(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

pub fn template(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

pub fn rs_template(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

pub fn is_paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

/// The strategy type; the server defaults it to `RollingUpdate`.
pub fn strategy_type(d: &Deployment) -> &str {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

pub fn is_rolling_update(d: &Deployment) -> bool {
    strategy_type(d) == "RollingUpdate"
}

/// Upstream's `GetScaledValueFromIntOrPercent`: an int as it is; `"25%"` of `total`,
/// rounded up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let Some(p) = s.strip_suffix('%') else {
                return Err(
                    "invalid value for IntOrString: invalid type: string is not a percentage"
                        .into(),
                );
            };
            let p: i64 = p
                .parse()
                .map_err(|e| format!("invalid value for IntOrString: invalid value {s:?}: {e}"))?;
            let product = p * i64::from(total);
            let value = if round_up {
                (product as f64 / 100.0).ceil()
            } else {
                (product as f64 / 100.0).floor()
            };
            Ok(value as i32)
        }
    }
}

/// Upstream's `ResolveFenceposts`: (maxSurge, maxUnavailable) for `desired` replicas; both
/// zero after rounding makes maxUnavailable 1.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), String> {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true)?;
    let mut unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false)?;
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    // Errors are caught by validation, as upstream assumes.
    resolve_fenceposts(
        ru.and_then(|r| r.max_surge.as_ref()),
        ru.and_then(|r| r.max_unavailable.as_ref()),
        d_replicas(d),
    )
    .unwrap_or((0, 1))
}

/// Upstream's `MaxUnavailable`: 0 unless rolling, at most the replicas.
pub fn max_unavailable(d: &Deployment) -> i32 {
    if !is_rolling_update(d) || d_replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(d_replicas(d))
}

/// Upstream's `MaxSurge`: 0 unless rolling.
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    fenceposts(d).0
}

/// The revision annotation of an object; absent is 0, unparsable an error.
pub fn revision(annotations: Option<&BTreeMap<String, String>>) -> Result<i64, String> {
    match annotations.and_then(|a| a.get(REVISION)) {
        None => Ok(0),
        Some(v) => v.parse::<i64>().map_err(|e| e.to_string()),
    }
}

pub fn rs_revision(rs: &ReplicaSet) -> Result<i64, String> {
    revision(rs.metadata.annotations.as_ref())
}

/// Upstream's `MaxRevision` (unparsable revisions skipped).
pub fn max_revision(rss: &[ReplicaSet]) -> i64 {
    rss.iter()
        .filter_map(|rs| rs_revision(rs).ok())
        .max()
        .unwrap_or(0)
        .max(0)
}

/// Upstream's `LastRevision`: the second highest revision.
pub fn last_revision(rss: &[ReplicaSet]) -> i64 {
    let (mut max, mut sec) = (0, 0);
    for v in rss.iter().filter_map(|rs| rs_revision(rs).ok()) {
        if v >= max {
            sec = max;
            max = v;
        } else if v > sec {
            sec = v;
        }
    }
    sec
}

/// Upstream's `SetDeploymentRevision`: whether it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let annotations = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    if annotations.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    annotations.insert(REVISION.into(), revision.into());
    true
}

/// Upstream's `copyDeploymentAnnotationsToReplicaSet`: whether anything changed.
fn copy_deployment_annotations(d: &Deployment, rs: &mut ReplicaSet) -> bool {
    let mut changed = false;
    let target = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy_annotation(k) || target.get(k) == Some(v) {
            continue;
        }
        target.insert(k.clone(), v.clone());
        changed = true;
    }
    changed
}

/// Upstream's `SetReplicasAnnotations`: desired and max replicas; whether they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let value = value.to_string();
        if a.get(key) != Some(&value) {
            a.insert(key.into(), value);
            changed = true;
        }
    }
    changed
}

/// Upstream's `ReplicasAnnotationsNeedUpdate`.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    let Some(a) = &rs.metadata.annotations else {
        return true;
    };
    a.get(DESIRED_REPLICAS) != Some(&desired.to_string())
        || a.get(MAX_REPLICAS) != Some(&max.to_string())
}

fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, DESIRED_REPLICAS)
}

pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, MAX_REPLICAS)
}

/// Upstream's `SetNewReplicaSetAnnotations`: the Deployment's annotations copied, the
/// revision raised to `new_revision` (the old one appended to the revision history, within
/// `limit` characters), and for a ReplicaSet about to be created the replicas annotations.
/// Whether anything changed.
pub fn set_new_replica_set_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: &str,
    exists: bool,
    limit: usize,
) -> bool {
    let mut changed = copy_deployment_annotations(d, rs);
    let a = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let old = a.get(REVISION).cloned();
    let old_int = match old.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    let Ok(new_int) = new_revision.parse::<i64>() else {
        return false;
    };
    if old_int < new_int {
        a.insert(REVISION.into(), new_revision.into());
        changed = true;
        if let Some(old) = old {
            let history = a.get(REVISION_HISTORY).cloned().unwrap_or_default();
            if history.is_empty() {
                a.insert(REVISION_HISTORY.into(), old);
            } else {
                let parts: Vec<&str> = history.split(',').collect();
                let mut total = history.len() + old.len() + 1;
                let mut start = 0;
                while total > limit && start < parts.len() {
                    total -= parts[start].len() + 1;
                    start += 1;
                }
                if total <= limit {
                    let mut kept: Vec<&str> = parts[start..].to_vec();
                    kept.push(&old);
                    a.insert(REVISION_HISTORY.into(), kept.join(","));
                }
            }
        }
    }
    if !exists && set_replicas_annotations(rs, d_replicas(d), d_replicas(d) + max_surge(d)) {
        changed = true;
    }
    changed
}

/// Upstream's `SetDeploymentAnnotationsTo` (rollback): the skipped annotations kept, the
/// rest taken from the ReplicaSet.
pub fn set_deployment_annotations_to(d: &mut Deployment, rs: &ReplicaSet) {
    let mut annotations: BTreeMap<String, String> = d
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| skip_copy_annotation(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in rs.metadata.annotations.iter().flatten() {
        if !skip_copy_annotation(k) {
            annotations.insert(k.clone(), v.clone());
        }
    }
    d.metadata.annotations = Some(annotations);
}

/// Drops `null`s and empty maps and lists, so that templates compare as Go's semantic
/// equality does (nil and empty are equal).
fn pruned(v: Value) -> Option<Value> {
    match v {
        Value::Null => None,
        Value::Object(m) => {
            let m: serde_json::Map<String, Value> = m
                .into_iter()
                .filter_map(|(k, v)| pruned(v).map(|v| (k, v)))
                .collect();
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(a) => {
            let a: Vec<Value> = a
                .into_iter()
                .filter_map(|v| pruned(v).or(Some(Value::Null)))
                .collect();
            (!a.is_empty()).then_some(Value::Array(a))
        }
        other => Some(other),
    }
}

/// A template as a canonical JSON value: the hash label removed, empty values dropped.
pub fn canonical_template(t: &PodTemplateSpec) -> Value {
    let mut t = t.clone();
    if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH);
    }
    serde_json::to_value(&t)
        .ok()
        .and_then(pruned)
        .unwrap_or(Value::Null)
}

/// Upstream's `EqualIgnoreHash`: the templates are equal but for the pod-template-hash label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    canonical_template(a) == canonical_template(b)
}

fn created(rs: &ReplicaSet) -> Option<Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

fn name(rs: &ReplicaSet) -> &str {
    rs.metadata.name.as_deref().unwrap_or("")
}

/// Upstream's `ReplicaSetsByCreationTimestamp` (older first, names break ties).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    if created(a) == created(b) {
        name(a).cmp(name(b))
    } else {
        created(a).cmp(&created(b))
    }
}

/// Upstream's `ReplicaSetsBySizeNewer`: larger first, then newer first.
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(b, a))
}

/// Upstream's `ReplicaSetsBySizeOlder`: larger first, then older first.
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(a, b))
}

/// Upstream's `ReplicaSetsByRevision`: lower revision first; creation when unparsable or
/// equal.
pub fn by_revision(a: &ReplicaSet, b: &ReplicaSet) -> std::cmp::Ordering {
    match (rs_revision(a), rs_revision(b)) {
        (Ok(x), Ok(y)) if x != y => x.cmp(&y),
        _ => by_creation(a, b),
    }
}

/// Upstream's `FindNewReplicaSet`: the oldest ReplicaSet whose template is the Deployment's.
pub fn find_new_replica_set<'a>(d: &Deployment, rss: &'a [ReplicaSet]) -> Option<&'a ReplicaSet> {
    let t = template(d);
    let mut sorted: Vec<&ReplicaSet> = rss.iter().collect();
    sorted.sort_by(|a, b| by_creation(a, b));
    sorted
        .into_iter()
        .find(|rs| equal_ignore_hash(&rs_template(rs), &t))
}

pub fn filter_active(rss: &[ReplicaSet]) -> Vec<ReplicaSet> {
    rss.iter()
        .filter(|rs| rs_replicas(rs) > 0)
        .cloned()
        .collect()
}

/// The sum of `spec.replicas`.
pub fn replica_count(rss: &[ReplicaSet]) -> i32 {
    rss.iter().map(rs_replicas).sum()
}

/// The sum of `status.replicas`.
pub fn actual_replica_count(rss: &[ReplicaSet]) -> i32 {
    rss.iter().map(rs_status_replicas).sum()
}

pub fn ready_replica_count(rss: &[ReplicaSet]) -> i32 {
    rss.iter().map(rs_ready).sum()
}

pub fn available_replica_count(rss: &[ReplicaSet]) -> i32 {
    rss.iter().map(rs_available).sum()
}

/// Upstream's `FindActiveOrLatest`: the one active ReplicaSet, or with none active the
/// newest (the new one first); `None` when several are active.
pub fn find_active_or_latest(
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
) -> Option<ReplicaSet> {
    if new_rs.is_none() && old.is_empty() {
        return None;
    }
    let mut sorted = old.to_vec();
    sorted.sort_by(|a, b| by_creation(b, a));
    let mut all = sorted.clone();
    all.extend(new_rs.cloned());
    let active = filter_active(&all);
    match active.len() {
        0 => new_rs.cloned().or_else(|| sorted.first().cloned()),
        1 => active.into_iter().next(),
        _ => None,
    }
}

/// Upstream's `getReplicaSetFraction`.
fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    if d_replicas(d) == 0 {
        return -rs_replicas(rs);
    }
    let deployment_replicas = d_replicas(d) + max_surge(d);
    let annotated = max_replicas_annotation(rs)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(rs_replicas(rs)) * f64::from(deployment_replicas) / f64::from(annotated);
    // Go's math.Round: half away from zero, as f64::round.
    (size.round() as i32) - rs_replicas(rs)
}

/// Upstream's `GetProportion`.
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// Upstream's `NewRSNewReplicas`, counting an old ReplicaSet's pods as the larger of its
/// `spec.replicas` and the active pods it still reports (`status.replicas`): the surge
/// ceiling then holds for running pods, not only for specs, while an old ReplicaSet's
/// controller is still deleting what the Deployment scaled away (upstream counts specs).
pub fn new_rs_new_replicas(
    d: &Deployment,
    all: &[ReplicaSet],
    new_rs: &ReplicaSet,
) -> Result<i32, String> {
    match strategy_type(d) {
        "RollingUpdate" => {
            let ru = d
                .spec
                .as_ref()
                .and_then(|s| s.strategy.as_ref())
                .and_then(|s| s.rolling_update.as_ref());
            let zero = IntOrString::Int(0);
            let surge = scaled_value(
                ru.and_then(|r| r.max_surge.as_ref()).unwrap_or(&zero),
                d_replicas(d),
                true,
            )?;
            let new_name = name(new_rs);
            let current: i32 = all
                .iter()
                .map(|rs| {
                    if name(rs) == new_name {
                        rs_replicas(rs)
                    } else {
                        rs_replicas(rs).max(rs_status_replicas(rs))
                    }
                })
                .sum();
            let max_total = d_replicas(d) + surge;
            if current >= max_total {
                return Ok(rs_replicas(new_rs));
            }
            let up = (max_total - current).min(d_replicas(d) - rs_replicas(new_rs));
            Ok(rs_replicas(new_rs) + up)
        }
        "Recreate" => Ok(d_replicas(d)),
        other => Err(format!("deployment type {other} isn't supported")),
    }
}

/// Upstream's `IsSaturated`.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else {
        return false;
    };
    let Some(desired) = desired_replicas_annotation(rs) else {
        return false;
    };
    rs_replicas(rs) == d_replicas(d)
        && desired == d_replicas(d)
        && rs_available(rs) == d_replicas(d)
}

/// Upstream's `HasProgressDeadline`.
pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|p| p != i32::MAX)
}

/// Upstream's `HasRevisionHistoryLimit`.
pub fn revision_history_limit(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .filter(|l| *l != i32::MAX)
}

fn n(v: Option<i32>) -> i32 {
    v.unwrap_or(0)
}

/// Upstream's `DeploymentComplete`.
pub fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let r = d_replicas(d);
    n(s.updated_replicas) == r
        && n(s.replicas) == r
        && n(s.available_replicas) == r
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Upstream's `DeploymentProgressing`: more updated, fewer old, more ready or available.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(new.replicas) - n(new.updated_replicas);
    n(new.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(new.ready_replicas) > n(old.ready_replicas)
        || n(new.available_replicas) > n(old.available_replicas)
}

/// Upstream's `DeploymentTimedOut`.
pub fn deployment_timed_out(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(c) = get_condition(new, PROGRESSING) else {
        return false;
    };
    match c.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => return false,
        Some(TIMED_OUT) => return true,
        _ => {}
    }
    let deadline = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(0);
    let from = c.last_update_time.as_ref().map_or(Timestamp::MIN, |t| t.0);
    from.checked_add(SignedDuration::from_secs(i64::from(deadline)))
        .is_ok_and(|t| t < now)
}

/// When a deployment without progress would time out, from `now` (upstream's
/// `requeueStuckDeployment`); `None` when it needs no progress check.
pub fn stuck_requeue(d: &Deployment, new: &DeploymentStatus, now: Timestamp) -> Option<Duration> {
    let current = get_condition(d.status.as_ref()?, PROGRESSING)?;
    if !has_progress_deadline(d)
        || deployment_complete(d, new)
        || current.reason.as_deref() == Some(TIMED_OUT)
    {
        return None;
    }
    let deadline = d.spec.as_ref()?.progress_deadline_seconds?;
    let from = current
        .last_update_time
        .as_ref()
        .map_or(Timestamp::MIN, |t| t.0);
    let at = from
        .checked_add(SignedDuration::from_secs(i64::from(deadline)))
        .ok()?;
    let after = at.duration_since(now);
    if after < SignedDuration::from_secs(1) {
        // Upstream requeues rate-limited at once; a short pause does the same here.
        return Some(Duration::from_millis(500));
    }
    // Upstream adds a second to avoid skew.
    Some(Duration::try_from(after).unwrap_or_default() + Duration::from_secs(1))
}

pub fn get_condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.iter().flatten().find(|c| c.type_ == type_)
}

/// Upstream's `NewDeploymentCondition` at `now` (whole seconds, as Go writes times).
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    let now = Time(crate::replicaset::truncate_to_seconds(now));
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

/// Upstream's `SetDeploymentCondition`: nothing when the status and reason are unchanged;
/// the transition time kept when only the reason changes; the condition moves to the end.
pub fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(current) = get_condition(s, &c.type_) {
        if current.status == c.status && current.reason == c.reason {
            return;
        }
        if current.status == c.status {
            c.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(s, &c.type_);
    s.conditions.get_or_insert_with(Vec::new).push(c);
}

pub fn remove_condition(s: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = s.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
        if cs.is_empty() {
            s.conditions = None;
        }
    }
}

/// Upstream's `ReplicaSetToDeploymentCondition`.
pub fn replica_set_to_deployment_condition(c: &ReplicaSetCondition) -> DeploymentCondition {
    DeploymentCondition {
        type_: c.type_.clone(),
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        last_transition_time: c.last_transition_time.clone(),
        last_update_time: c.last_transition_time.clone(),
    }
}

/// Whether the selector selects everything (upstream refuses to act on it).
pub fn selects_everything(d: &Deployment) -> bool {
    d.spec.as_ref().is_some_and(|s| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};

    fn deployment(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..DeploymentSpec::default()
            }),
            ..Deployment::default()
        }
    }

    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn surge_rounds_up_and_unavailable_rounds_down() {
        use IntOrString::Int;
        for (replicas, surge, unavailable, want) in [
            (10, pct("25%"), pct("25%"), (3, 2)),
            (4, pct("25%"), pct("25%"), (1, 1)),
            (1, pct("25%"), pct("25%"), (1, 0)),
            (1000, pct("25%"), pct("25%"), (250, 250)),
            (3, pct("50%"), pct("50%"), (2, 1)),
            (5, Int(2), Int(0), (2, 0)),
            // Both round to zero: unavailable becomes 1.
            (2, pct("0%"), pct("1%"), (0, 1)),
            (7, Int(0), pct("10%"), (0, 1)),
            // maxUnavailable never exceeds the replicas.
            (2, Int(0), Int(5), (0, 2)),
        ] {
            let d = deployment(replicas, surge.clone(), unavailable.clone());
            assert_eq!(
                (max_surge(&d), max_unavailable(&d)),
                want,
                "{replicas} replicas, surge {surge:?}, unavailable {unavailable:?}"
            );
        }
        let mut recreate = deployment(10, pct("25%"), pct("25%"));
        if let Some(s) = recreate.spec.as_mut().and_then(|s| s.strategy.as_mut()) {
            s.type_ = Some("Recreate".into());
        }
        assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
        assert!(scaled_value(&pct("abc"), 10, true).is_err());
        assert!(scaled_value(&IntOrString::String("5".into()), 10, true).is_err());
    }

    fn rs_with(annotations: &[(&str, &str)]) -> ReplicaSet {
        ReplicaSet {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..ReplicaSet::default()
        }
    }

    #[test]
    fn revisions_are_raised_and_the_old_one_kept_in_the_history() {
        let mut d = deployment(3, pct("25%"), pct("25%"));
        d.metadata.annotations = Some(BTreeMap::from([
            ("kubernetes.io/change-cause".into(), "edit".into()),
            (REVISION.into(), "9".into()),
            (LAST_APPLIED.into(), "{}".into()),
        ]));
        // A new ReplicaSet: revision, copied annotations, replicas annotations.
        let mut rs = rs_with(&[]);
        assert!(set_new_replica_set_annotations(
            &d, &mut rs, "4", false, 2000
        ));
        let a = rs.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(a.get(REVISION).map(String::as_str), Some("4"));
        assert_eq!(
            a.get("kubernetes.io/change-cause").map(String::as_str),
            Some("edit")
        );
        assert_eq!(a.get(DESIRED_REPLICAS).map(String::as_str), Some("3"));
        assert_eq!(a.get(MAX_REPLICAS).map(String::as_str), Some("4"));
        assert!(!a.contains_key(LAST_APPLIED));
        // Nothing new the second time.
        assert!(!set_new_replica_set_annotations(
            &d, &mut rs, "4", true, 2000
        ));
        // A rollback to it: revision 6, history "4".
        assert!(set_new_replica_set_annotations(
            &d, &mut rs, "6", true, 2000
        ));
        assert!(set_new_replica_set_annotations(
            &d, &mut rs, "8", true, 2000
        ));
        let a = rs.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(a.get(REVISION).map(String::as_str), Some("8"));
        assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("4,6"));
        // The history is cut from the front to its character limit.
        assert!(set_new_replica_set_annotations(&d, &mut rs, "10", true, 4));
        let a = rs.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(a.get(REVISION_HISTORY).map(String::as_str), Some("6,8"));
        // A lower revision is never written.
        assert!(!set_new_replica_set_annotations(
            &d, &mut rs, "2", true, 2000
        ));

        let rss = [
            rs_with(&[(REVISION, "3")]),
            rs_with(&[(REVISION, "7")]),
            rs_with(&[(REVISION, "x")]),
            rs_with(&[]),
        ];
        assert_eq!((max_revision(&rss), last_revision(&rss)), (7, 3));
    }

    #[test]
    fn proportions_follow_the_max_replicas_annotation() {
        // 10 -> 15 replicas during a rollout with surge 3 (max-replicas 13 before).
        let d = deployment(15, IntOrString::Int(3), IntOrString::Int(2));
        let mut big = rs_with(&[(MAX_REPLICAS, "13")]);
        set_rs_replicas(&mut big, 8);
        let mut small = rs_with(&[(MAX_REPLICAS, "13")]);
        set_rs_replicas(&mut small, 5);
        // 8 * 18 / 13 = 11.08 -> 11: +3; 5 * 18 / 13 = 6.92 -> 7: +2.
        assert_eq!(proportion(&big, &d, 5, 0), 3);
        assert_eq!(proportion(&small, &d, 5, 3), 2);
        // Never more than what is left to add.
        assert_eq!(proportion(&small, &d, 5, 4), 1);
        // Scaling to zero removes everything.
        let zero = deployment(0, IntOrString::Int(3), IntOrString::Int(2));
        assert_eq!(proportion(&big, &zero, -13, 0), -8);
    }

    #[test]
    fn templates_compare_without_the_hash_label_and_empty_fields() {
        let t: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}
        }))
        .unwrap_or_default();
        let with_hash: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web", "pod-template-hash": "abc"}, "annotations": {}},
            "spec": {"containers": [{"name": "c", "image": "nginx", "env": []}]}
        }))
        .unwrap_or_default();
        assert!(equal_ignore_hash(&t, &with_hash));
        let other: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}
        }))
        .unwrap_or_default();
        assert!(!equal_ignore_hash(&t, &other));
    }

    #[test]
    fn conditions_keep_their_transition_time_while_the_status_holds() {
        let t0 = Timestamp::from_second(1_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let t1 = Timestamp::from_second(2_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut s = DeploymentStatus::default();
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "True", NEW_REPLICA_SET, "a".into(), t0),
        );
        set_condition(
            &mut s,
            new_condition(
                AVAILABLE,
                "True",
                MINIMUM_REPLICAS_AVAILABLE,
                "b".into(),
                t0,
            ),
        );
        // Same status and reason: unchanged.
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "True", NEW_REPLICA_SET, "x".into(), t1),
        );
        assert_eq!(
            get_condition(&s, PROGRESSING).and_then(|c| c.message.as_deref()),
            Some("a")
        );
        // New reason, same status: moved to the end, transition time kept.
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE, "c".into(), t1),
        );
        let cs = s.conditions.clone().unwrap_or_default();
        assert_eq!(
            cs.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
            [AVAILABLE, PROGRESSING]
        );
        assert_eq!(cs[1].last_transition_time, Some(Time(t0)));
        assert_eq!(cs[1].last_update_time, Some(Time(t1)));
        // New status: new transition time.
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "False", TIMED_OUT, "d".into(), t1),
        );
        assert_eq!(
            get_condition(&s, PROGRESSING).and_then(|c| c.last_transition_time.clone()),
            Some(Time(t1))
        );
    }

    #[test]
    fn the_progress_deadline_times_out_from_the_last_update() {
        let mut d = deployment(3, pct("25%"), pct("25%"));
        if let Some(s) = d.spec.as_mut() {
            s.progress_deadline_seconds = Some(600);
        }
        let t0 = Timestamp::from_second(10_000).unwrap_or(Timestamp::UNIX_EPOCH);
        let mut s = DeploymentStatus::default();
        set_condition(
            &mut s,
            new_condition(PROGRESSING, "True", REPLICA_SET_UPDATED, "m".into(), t0),
        );
        let at = |secs| {
            t0.checked_add(SignedDuration::from_secs(secs))
                .unwrap_or(t0)
        };
        assert!(!deployment_timed_out(&d, &s, at(600)));
        assert!(deployment_timed_out(&d, &s, at(601)));
        d.status = Some(s.clone());
        // 200 s in: the check is requeued for the remaining 400 s (plus a second).
        assert_eq!(
            stuck_requeue(&d, &s, at(200)),
            Some(Duration::from_secs(401))
        );
        // No deadline: no check.
        if let Some(spec) = d.spec.as_mut() {
            spec.progress_deadline_seconds = Some(i32::MAX);
        }
        assert!(!deployment_timed_out(&d, &s, at(10_000)));
        assert_eq!(stuck_requeue(&d, &s, at(200)), None);
    }
}
