//! The decisions of one Job sync, as upstream's `syncJob` makes them, split into pure steps
//! that the orchestrator in [`super`] runs between its writes:
//!
//! 1. [`assess`]: the Job and its pods -> counts (active, ready, terminating, succeeded,
//!    failed), the pods newly finished, the backoff record, and whether the Job has to end
//!    (pod failure policy, backoff limit, deadline, failed indexes, success policy);
//! 2. [`manage`]: what to create or delete (or how long to wait out the backoff);
//! 3. [`conclude`]: whether the Job is complete, and its `Suspended` condition;
//! 4. [`track`]: which finished pods move into `uncountedTerminatedPods` and lose their
//!    tracking finalizer, and the interim `FailureTarget` / `SuccessCriteriaMet` condition;
//! 5. [`clean_uncounted`] (after the finalizers are gone) and [`enact_finished`] (the final
//!    `Complete` / `Failed` condition, once nothing is uncounted or terminating).
//!
//! This is v1.33's behaviour with its default feature gates (JobPodReplacementPolicy,
//! JobManagedBy, JobSuccessPolicy, JobBackoffLimitPerIndex, PodIndexLabel all on): terminal
//! conditions are delayed behind `FailureTarget` / `SuccessCriteriaMet` until the Job's
//! pods are gone, and `status.terminating` is always written.
//! Upstream counterpart: pkg/controller/job/job_controller.go, success_policy.go.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::backoff::{self, Record};
use super::failure_policy::{match_policy, Action};
use super::indexed::{self, completion_index, Intervals};
use crate::pods;

/// The finalizer on every pod a Job creates, removed once the pod is counted.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Upstream's `MaxUncountedPods`.
pub const MAX_UNCOUNTED_PODS: usize = 500;
/// Upstream's `MaxPodCreateDeletePerSync`.
pub const MAX_POD_CREATE_DELETE_PER_SYNC: usize = 500;

pub const COMPLETE: &str = "Complete";
pub const FAILED: &str = "Failed";
pub const FAILURE_TARGET: &str = "FailureTarget";
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
pub const SUSPENDED: &str = "Suspended";

// ---------------------------------------------------------------------------------------
// What the spec says, with the API's defaults for what is missing.

fn spec(job: &Job) -> Option<&k8s_openapi::api::batch::v1::JobSpec> {
    job.spec.as_ref()
}

pub fn completions(job: &Job) -> Option<i32> {
    spec(job).and_then(|s| s.completions)
}

fn completions_i64(job: &Job) -> i64 {
    i64::from(completions(job).unwrap_or(0))
}

fn parallelism(job: &Job) -> i32 {
    spec(job).and_then(|s| s.parallelism).unwrap_or(1)
}

fn backoff_limit(job: &Job) -> i32 {
    spec(job)
        .and_then(|s| s.backoff_limit)
        .unwrap_or(if backoff_limit_per_index(job).is_some() {
            i32::MAX
        } else {
            6
        })
}

fn backoff_limit_per_index(job: &Job) -> Option<i32> {
    spec(job).and_then(|s| s.backoff_limit_per_index)
}

pub fn suspended(job: &Job) -> bool {
    spec(job).and_then(|s| s.suspend) == Some(true)
}

fn failure_policy(job: &Job) -> Option<&k8s_openapi::api::batch::v1::PodFailurePolicy> {
    spec(job).and_then(|s| s.pod_failure_policy.as_ref())
}

/// Upstream's `onlyReplaceFailedPods`: a pod being deleted is replaced only once it failed.
fn only_replace_failed(job: &Job) -> bool {
    spec(job).and_then(|s| s.pod_replacement_policy.as_deref()) == Some("Failed")
        || failure_policy(job).is_some()
}

fn restart_policy(job: &Job) -> Option<&str> {
    spec(job)?.template.spec.as_ref()?.restart_policy.as_deref()
}

// ---------------------------------------------------------------------------------------
// Pods.

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or("")
}

pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == TRACKING_FINALIZER)
}

/// Being deleted and not yet terminated (upstream's `IsPodTerminating`).
pub fn is_terminating(pod: &Pod) -> bool {
    !pods::is_terminated(pod) && pod.metadata.deletion_timestamp.is_some()
}

/// Upstream's `isPodFailed`: failed, or (unless only failed pods are replaced) being
/// deleted before it succeeded, so that a pod deleted by hand counts as a failure.
pub fn is_pod_failed(pod: &Pod, job: &Job) -> bool {
    if phase(pod) == "Failed" {
        return true;
    }
    if only_replace_failed(job) {
        return false;
    }
    pod.metadata.deletion_timestamp.is_some() && phase(pod) != "Succeeded"
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

/// `a` later than `b`, a missing time counting as the earliest-deleted (upstream's
/// `afterOrZero`).
fn after_or_zero(a: Option<Timestamp>, b: Option<Timestamp>) -> bool {
    match (a, b) {
        (None, _) | (_, None) => a.is_none(),
        (Some(a), Some(b)) => a > b,
    }
}

/// Upstream's `ActivePods` order: the pods to delete first sort first (unscheduled before
/// scheduled, pending before running, not ready before ready, ready for less time, more
/// restarts, newer).
pub fn deletion_order(a: &Pod, b: &Pod) -> Ordering {
    let less = |x: &Pod, y: &Pod| -> bool {
        let node = |p: &Pod| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default()
        };
        let (nx, ny) = (node(x), node(y));
        if nx != ny && (nx.is_empty() || ny.is_empty()) {
            return nx.is_empty();
        }
        if phase_ordinal(x) != phase_ordinal(y) {
            return phase_ordinal(x) < phase_ordinal(y);
        }
        let (rx, ry) = (pods::ready_since(x), pods::ready_since(y));
        if rx.is_some() != ry.is_some() {
            return rx.is_none();
        }
        if let (Some(tx), Some(ty)) = (rx, ry) {
            if tx != ty {
                let zero = |t: Timestamp| (t != Timestamp::MIN).then_some(t);
                return after_or_zero(zero(tx), zero(ty));
            }
        }
        if max_restarts(x) != max_restarts(y) {
            return max_restarts(x) > max_restarts(y);
        }
        let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if created(x) != created(y) {
            return after_or_zero(created(x), created(y));
        }
        false
    };
    if less(a, b) {
        Ordering::Less
    } else if less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

// ---------------------------------------------------------------------------------------
// Conditions.

pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> JobCondition {
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    JobCondition {
        type_: type_.into(),
        status: status.into(),
        reason: non_empty(reason),
        message: non_empty(message),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

pub fn find_condition<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

fn condition_true<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    find_condition(status, type_).filter(|c| c.status == "True")
}

/// Upstream's `IsJobFinished`: `Complete` or `Failed` is `True`.
pub fn is_finished(job: &Job) -> bool {
    job.status.as_ref().is_some_and(|s| {
        condition_true(s, COMPLETE).is_some() || condition_true(s, FAILED).is_some()
    })
}

/// Upstream's `ensureJobConditionStatus`: sets the condition of `type_` (a new time only
/// when it changes); a condition that does not exist is not added as `False`.
pub fn ensure_condition(
    status: &mut JobStatus,
    type_: &str,
    cstatus: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> bool {
    let list = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = list.iter_mut().find(|c| c.type_ == type_) {
        if c.status != cstatus
            || c.reason.as_deref().unwrap_or("") != reason
            || c.message.as_deref().unwrap_or("") != message
        {
            *c = condition(type_, cstatus, reason, message, now);
            return true;
        }
        return false;
    }
    if cstatus != "False" {
        list.push(condition(type_, cstatus, reason, message, now));
        return true;
    }
    false
}

fn failure_target(reason: &str, message: &str, now: Timestamp) -> JobCondition {
    condition(FAILURE_TARGET, "True", reason, message, now)
}

fn reason_of(c: &JobCondition) -> &str {
    c.reason.as_deref().unwrap_or("")
}

fn message_of(c: &JobCondition) -> &str {
    c.message.as_deref().unwrap_or("")
}

// ---------------------------------------------------------------------------------------
// 1. Assessment.

/// What a sync knows about the Job before it acts (upstream's `syncJobCtx`).
#[derive(Debug)]
pub struct Assessment<'a> {
    pub pods: Vec<&'a Pod>,
    pub active: Vec<&'a Pod>,
    pub ready: i32,
    pub terminating: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub uncounted_succeeded: HashSet<String>,
    pub uncounted_failed: HashSet<String>,
    pub expected_rm_finalizers: HashSet<String>,
    pub prev_succeeded_indexes: Intervals,
    pub succeeded_indexes: Intervals,
    pub failed_indexes: Option<Intervals>,
    pub delayed_deletion_per_index: HashMap<i64, &'a Pod>,
    /// The backoff record once this sync's newly finished pods are in.
    pub new_backoff: Record,
    /// Set when the Job has to end; interim conditions are replaced when written.
    pub finished: Option<JobCondition>,
    /// Set on the first start: the Job's `status.startTime`.
    pub start_time: Option<Timestamp>,
    /// When `activeDeadlineSeconds` runs out, if it is set and has not yet.
    pub deadline_in: Option<Duration>,
}

fn uncounted_sets(status: &JobStatus) -> (HashSet<String>, HashSet<String>) {
    let u = status.uncounted_terminated_pods.as_ref();
    let set = |v: Option<&Vec<String>>| v.into_iter().flatten().cloned().collect();
    (
        set(u.and_then(|u| u.succeeded.as_ref())),
        set(u.and_then(|u| u.failed.as_ref())),
    )
}

/// Upstream's `getValidPodsWithFilter`: pods not yet counted (with the finalizer, not in
/// `uncounted`, not expected to lose the finalizer) and, for Indexed Jobs, with an index.
fn valid_pods<'a>(
    job: &Job,
    pods: &[&'a Pod],
    uncounted: Option<&HashSet<String>>,
    expected_rm: &HashSet<String>,
    filter: impl Fn(&Pod) -> bool,
) -> Vec<&'a Pod> {
    let indexed = indexed::is_indexed(job);
    let completions = completions_i64(job);
    pods.iter()
        .copied()
        .filter(|p| {
            if !has_tracking_finalizer(p)
                || uncounted.is_some_and(|u| u.contains(uid(p)))
                || expected_rm.contains(uid(p))
            {
                return false;
            }
            if indexed && completion_index(p).is_none_or(|ix| ix >= completions) {
                return false;
            }
            filter(p)
        })
        .collect()
}

/// Upstream's `pastBackoffLimitOnFailure`: restarts of running pods count for
/// `restartPolicy: OnFailure`.
fn past_backoff_limit_on_failure(job: &Job, pods: &[&Pod]) -> bool {
    if restart_policy(job) != Some("OnFailure") {
        return false;
    }
    let restarts: i64 = pods
        .iter()
        .filter(|p| matches!(phase(p), "Running" | "Pending"))
        .filter_map(|p| p.status.as_ref())
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .map(|c| i64::from(c.restart_count))
        .sum();
    let limit = i64::from(backoff_limit(job));
    if limit == 0 {
        restarts > 0
    } else {
        restarts >= limit
    }
}

/// Whether a failed pod fails its index (upstream's `isIndexFailed`).
fn is_index_failed(job: &Job, pod: &Pod) -> bool {
    let mut counted = false;
    if is_pod_failed(pod, job) {
        if let Some(policy) = failure_policy(job) {
            let m = match_policy(Some(policy), pod);
            if m.action == Some(Action::FailIndex) {
                return true;
            }
            counted = m.count_failed;
        } else {
            counted = true;
        }
    }
    counted && indexed::index_failure_count(pod) >= backoff_limit_per_index(job).unwrap_or(0)
}

/// Upstream's `matchSuccessPolicy`.
fn match_success_policy(job: &Job, succeeded: &Intervals) -> Option<String> {
    let policy = spec(job)?.success_policy.as_ref()?;
    if succeeded.is_empty() {
        return None;
    }
    for (index, rule) in policy.rules.iter().enumerate() {
        let matched = if let Some(text) = &rule.succeeded_indexes {
            let required = Intervals::parse(text, completions_i64(job));
            if required.is_empty() {
                continue;
            }
            let contained = required
                .0
                .iter()
                .map(|r| {
                    succeeded
                        .0
                        .iter()
                        .map(|s| (r.last.min(s.last) - r.first.max(s.first) + 1).max(0))
                        .sum::<i64>()
                })
                .sum::<i64>();
            contained == required.total()
                || rule
                    .succeeded_count
                    .is_some_and(|c| contained >= i64::from(c))
        } else if let Some(c) = rule.succeeded_count {
            succeeded.total() >= i64::from(c)
        } else {
            false
        };
        if matched {
            return Some(format!("Matched rules at index {index}"));
        }
    }
    None
}

/// Step 1: everything a sync needs to know, from the Job, its (claimed) pods, the backoff
/// record kept in memory, and the pods whose finalizer removal is still expected.
pub fn assess<'a>(
    job: &Job,
    pods: Vec<&'a Pod>,
    now: Timestamp,
    backoff: Record,
    expected_rm_finalizers: HashSet<String>,
) -> Assessment<'a> {
    let status = job.status.clone().unwrap_or_default();
    let (uncounted_succeeded, uncounted_failed) = uncounted_sets(&status);
    let active: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| pods::is_active(p))
        .collect();
    let ready = active.iter().filter(|p| pods::is_ready(p)).count() as i32;
    let terminating = pods.iter().filter(|p| is_terminating(p)).count() as i32;
    let new_succeeded = valid_pods(
        job,
        &pods,
        Some(&uncounted_succeeded),
        &expected_rm_finalizers,
        |p| phase(p) == "Succeeded",
    );
    let new_failed = valid_pods(
        job,
        &pods,
        Some(&uncounted_failed),
        &expected_rm_finalizers,
        |p| is_pod_failed(p, job),
    );
    let non_ignored = new_failed
        .iter()
        .filter(|p| match_policy(failure_policy(job), p).count_failed)
        .count();
    let mut a = Assessment {
        succeeded: status.succeeded.unwrap_or(0)
            + new_succeeded.len() as i32
            + uncounted_succeeded.len() as i32,
        failed: status.failed.unwrap_or(0) + non_ignored as i32 + uncounted_failed.len() as i32,
        new_backoff: backoff.after(&new_succeeded, &new_failed),
        pods,
        active,
        ready,
        terminating,
        uncounted_succeeded,
        uncounted_failed,
        expected_rm_finalizers,
        prev_succeeded_indexes: Intervals::default(),
        succeeded_indexes: Intervals::default(),
        failed_indexes: None,
        delayed_deletion_per_index: HashMap::new(),
        finished: None,
        start_time: None,
        deadline_in: None,
    };
    let start = match status.start_time.as_ref() {
        Some(t) => Some(t.0),
        None if !suspended(job) => {
            a.start_time = Some(now);
            Some(now)
        }
        None => None,
    };

    // A Job that already met its success criteria is not failed by a later pod failure.
    a.finished = condition_true(&status, SUCCESS_CRITERIA_MET).cloned();
    if a.finished.is_none() {
        if let Some(target) = condition_true(&status, FAILURE_TARGET) {
            a.finished = Some(condition(
                FAILED,
                "True",
                reason_of(target),
                message_of(target),
                now,
            ));
        } else if let Some(message) = a
            .pods
            .iter()
            .filter(|p| is_pod_failed(p, job))
            .find_map(|p| match_policy(failure_policy(job), p).fail_job_message)
        {
            a.finished = Some(failure_target("PodFailurePolicy", &message, now));
        }
    }
    if a.finished.is_none() {
        let deadline = spec(job).and_then(|s| s.active_deadline_seconds);
        let elapsed = start.map(|s| now.duration_since(s));
        if a.failed > backoff_limit(job) || past_backoff_limit_on_failure(job, &a.pods) {
            a.finished = Some(failure_target(
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
                now,
            ));
        } else if let (Some(d), Some(elapsed), false) = (deadline, elapsed, suspended(job)) {
            let allowed = SignedDuration::from_secs(d);
            if elapsed >= allowed {
                a.finished = Some(failure_target(
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                    now,
                ));
            } else {
                a.deadline_in = Duration::try_from(allowed - elapsed).ok();
            }
        }
    }

    if indexed::is_indexed(job) {
        let completions = completions_i64(job);
        a.prev_succeeded_indexes = Intervals::parse(
            status.completed_indexes.as_deref().unwrap_or(""),
            completions,
        );
        let new: std::collections::BTreeSet<i64> = a
            .pods
            .iter()
            .filter(|p| phase(p) == "Succeeded" && has_tracking_finalizer(p))
            .filter_map(|p| completion_index(p))
            .filter(|ix| *ix < completions)
            .collect();
        a.succeeded_indexes = a.prev_succeeded_indexes.with_indexes(new);
        a.succeeded = a.succeeded_indexes.total() as i32;
        if backoff_limit_per_index(job).is_some() {
            let prev =
                Intervals::parse(status.failed_indexes.as_deref().unwrap_or(""), completions);
            let new: std::collections::BTreeSet<i64> = a
                .pods
                .iter()
                .filter(|p| has_tracking_finalizer(p) && is_index_failed(job, p))
                .filter_map(|p| completion_index(p))
                .filter(|ix| *ix < completions)
                .collect();
            let failed = prev.with_indexes(new);
            if a.finished.is_none() {
                let max = spec(job).and_then(|s| s.max_failed_indexes);
                if max.is_some_and(|m| failed.total() > i64::from(m)) {
                    a.finished = Some(failure_target(
                        "MaxFailedIndexesExceeded",
                        "Job has exceeded the specified maximal number of failed indexes",
                        now,
                    ));
                } else if failed.total() > 0
                    && failed.total() + a.succeeded_indexes.total() >= completions
                {
                    a.finished = Some(failure_target(
                        "FailedIndexes",
                        "Job has failed indexes",
                        now,
                    ));
                }
            }
            a.failed_indexes = Some(failed);
            a.delayed_deletion_per_index = delayed_deletion_per_index(job, &a);
        }
        if a.finished.is_none() {
            if let Some(message) = match_success_policy(job, &a.succeeded_indexes) {
                a.finished = Some(condition(
                    SUCCESS_CRITERIA_MET,
                    "True",
                    "SuccessPolicy",
                    &message,
                    now,
                ));
            }
        }
    }
    a
}

/// Upstream's `getPodsWithDelayedDeletionPerIndex`: per index without a live pod, the last
/// failed pod, kept (with its finalizer) until its replacement carries the failure count.
fn delayed_deletion_per_index<'a>(job: &Job, a: &Assessment<'a>) -> HashMap<i64, &'a Pod> {
    let active = indexed::indexes_of(a.active.iter().copied());
    let failed = a.failed_indexes.clone().unwrap_or_default();
    let completions = completions_i64(job);
    let mut out: HashMap<i64, &'a Pod> = HashMap::new();
    for p in valid_pods(job, &a.pods, None, &a.expected_rm_finalizers, |p| {
        is_pod_failed(p, job)
    }) {
        let Some(ix) = completion_index(p).filter(|ix| *ix < completions) else {
            continue;
        };
        if a.succeeded_indexes.has(ix) || failed.has(ix) || active.contains(&ix) {
            continue;
        }
        match out.get(&ix) {
            Some(last)
                if !(indexed::index_absolute_failure_count(last)
                    <= indexed::index_absolute_failure_count(p)
                    && backoff::finished_time(p) >= backoff::finished_time(last)) => {}
            _ => {
                out.insert(ix, p);
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// 2. Managing pods.

/// A pod to create.
#[derive(Clone, Debug, PartialEq)]
pub struct NewPod {
    pub index: Option<i64>,
    /// For `backoffLimitPerIndex`: the counted and ignored failures of the index so far.
    pub failure_counts: Option<(i32, i32)>,
}

/// What [`manage`] decided.
#[derive(Debug, PartialEq)]
pub enum Manage<'a> {
    Nothing,
    /// Remove the tracking finalizer, then delete (suspension, too many pods, duplicate
    /// indexes).
    Delete(Vec<&'a Pod>),
    Create(Vec<NewPod>),
    /// Pods are missing but the failure backoff has this long to run.
    Wait(Duration),
}

/// Upstream's `activePodsForRemoval`.
pub fn active_pods_for_removal<'a>(job: &Job, active: &[&'a Pod], at_least: usize) -> Vec<&'a Pod> {
    let mut rm: Vec<&Pod> = Vec::new();
    let mut left: Vec<&Pod> = Vec::new();
    if indexed::is_indexed(job) {
        let completions = completions_i64(job);
        let mut sorted: Vec<&Pod> = active.to_vec();
        sorted.sort_by_key(|p| completion_index(p).unwrap_or(-1));
        let mut groups: BTreeMap<i64, Vec<&Pod>> = BTreeMap::new();
        for p in sorted {
            match completion_index(p) {
                None => rm.push(p),
                Some(ix) if ix >= completions => rm.push(p),
                Some(ix) => groups.entry(ix).or_default().push(p),
            }
        }
        for (_, mut same) in groups {
            same.sort_by(|a, b| deletion_order(a, b));
            let keep = same.pop();
            rm.extend(same);
            left.extend(keep);
        }
    } else {
        left = active.to_vec();
    }
    if rm.len() < at_least {
        left.sort_by(|a, b| deletion_order(a, b));
        let n = (at_least - rm.len()).min(left.len());
        rm.extend(left.into_iter().take(n));
    }
    rm
}

/// Step 2 (upstream's `manageJob`): deletions take precedence over creations; the failure
/// backoff delays creations.
pub fn manage<'a>(job: &Job, a: &Assessment<'a>, now: Timestamp) -> Manage<'a> {
    let active = a.active.len() as i64;
    if suspended(job) {
        let rm = active_pods_for_removal(job, &a.active, a.active.len());
        return if rm.is_empty() {
            Manage::Nothing
        } else {
            Manage::Delete(rm)
        };
    }
    let parallelism = i64::from(parallelism(job));
    let want = match completions(job) {
        None if a.succeeded > 0 => active,
        None => parallelism,
        Some(c) => (i64::from(c) - i64::from(a.succeeded)).clamp(0, parallelism),
    };
    let at_least = (active - want).max(0) as usize;
    let mut rm = active_pods_for_removal(job, &a.active, at_least);
    rm.truncate(MAX_POD_CREATE_DELETE_PER_SYNC);
    if !rm.is_empty() {
        return Manage::Delete(rm);
    }
    let terminating = if only_replace_failed(job) {
        i64::from(a.terminating)
    } else {
        0
    };
    let diff = want - terminating - active;
    if diff <= 0 {
        return Manage::Nothing;
    }
    let per_index = backoff_limit_per_index(job).is_some();
    if !per_index {
        let remaining = a.new_backoff.remaining(now);
        if !remaining.is_zero() {
            return Manage::Wait(remaining);
        }
    }
    let diff = (diff as usize).min(MAX_POD_CREATE_DELETE_PER_SYNC);
    if !indexed::is_indexed(job) {
        return Manage::Create(vec![
            NewPod {
                index: None,
                failure_counts: None
            };
            diff
        ]);
    }
    let completions = completions_i64(job);
    let mut taken = a
        .succeeded_indexes
        .with_indexes(indexed::indexes_of(a.active.iter().copied()));
    if only_replace_failed(job) {
        taken = taken.with_indexes(indexed::indexes_of(
            a.pods.iter().copied().filter(|p| is_terminating(p)),
        ));
    }
    if let Some(f) = &a.failed_indexes {
        taken = taken.merge(f);
    }
    let mut indexes = indexed::first_pending(&taken, diff, completions);
    if per_index {
        let mut now_ready = Vec::new();
        let mut min_wait: Option<Duration> = None;
        for ix in indexes {
            let wait = a
                .delayed_deletion_per_index
                .get(&ix)
                .map_or(Duration::ZERO, |p| {
                    backoff::remaining_for(
                        indexed::index_absolute_failure_count(p).saturating_add(1),
                        Some(backoff::finished_time(p)),
                        now,
                    )
                });
            if wait.is_zero() {
                now_ready.push(ix);
            } else {
                min_wait = Some(min_wait.map_or(wait, |m| m.min(wait)));
            }
        }
        if now_ready.is_empty() {
            return match min_wait {
                Some(w) => Manage::Wait(w),
                None => Manage::Nothing,
            };
        }
        indexes = now_ready;
    }
    if indexes.is_empty() {
        return Manage::Nothing;
    }
    Manage::Create(
        indexes
            .into_iter()
            .map(|ix| NewPod {
                index: Some(ix),
                failure_counts: per_index.then(|| {
                    new_index_failure_counts(job, a.delayed_deletion_per_index.get(&ix).copied())
                }),
            })
            .collect(),
    )
}

/// Upstream's `getNewIndexFailureCounts`: the counts the replacement of `replaced` carries.
fn new_index_failure_counts(job: &Job, replaced: Option<&Pod>) -> (i32, i32) {
    let Some(p) = replaced else {
        return (0, 0);
    };
    let mut counted = indexed::index_failure_count(p);
    let mut ignored = indexed::index_absolute_failure_count(p) - counted;
    if match_policy(failure_policy(job), p).count_failed {
        counted = counted.saturating_add(1);
    } else {
        ignored = ignored.saturating_add(1);
    }
    (counted, ignored)
}

/// The pod to create for `new` (upstream's pod template handling in `manageJob`): the
/// template with the tracking finalizer and, for an index, its annotation and label, its
/// hostname `<job>-<index>`, `JOB_COMPLETION_INDEX` and a `<job>-<index>-` name prefix.
pub fn pod_for(job: &Job, new: &NewPod) -> Pod {
    let name = job.metadata.name.as_deref().unwrap_or("");
    let namespace = job.metadata.namespace.as_deref().unwrap_or("");
    let mut template = spec(job).map(|s| s.template.clone()).unwrap_or_default();
    if indexed::is_indexed(job) {
        indexed::add_index_env(&mut template);
    }
    let meta = template.metadata.get_or_insert_with(Default::default);
    let finalizers = meta.finalizers.get_or_insert_with(Vec::new);
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.into());
    }
    let mut generate_name = pods::pods_prefix(name);
    if let Some(ix) = new.index {
        let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
        annotations.insert(indexed::COMPLETION_INDEX.into(), ix.to_string());
        if let Some((counted, ignored)) = new.failure_counts {
            annotations.insert(indexed::INDEX_FAILURE_COUNT.into(), counted.to_string());
            if ignored > 0 {
                annotations.insert(
                    indexed::INDEX_IGNORED_FAILURE_COUNT.into(),
                    ignored.to_string(),
                );
            }
        }
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(indexed::COMPLETION_INDEX.into(), ix.to_string());
        if let Some(s) = template.spec.as_mut() {
            s.hostname = Some(format!("{name}-{ix}"));
        }
        generate_name = indexed::generate_name_with_index(name, ix);
    }
    pods::pod_from_template(
        &template,
        namespace,
        &generate_name,
        pods::controller_ref(job),
    )
}

// ---------------------------------------------------------------------------------------
// 3. Completion and suspension.

/// What [`conclude`] found.
#[derive(Debug, Default, PartialEq)]
pub struct Concluded {
    pub finished: Option<JobCondition>,
    pub suspend_changed: bool,
    /// `Suspended` / `Resumed`, with upstream's message.
    pub event: Option<(&'static str, &'static str)>,
}

/// Step 3, when the Job was not already ending: complete once enough pods succeeded and
/// none is active; otherwise (if pods were managed this sync) the `Suspended` condition.
pub fn conclude(
    job: &Job,
    status: &mut JobStatus,
    succeeded: i32,
    active: i32,
    managed: bool,
    now: Timestamp,
) -> Concluded {
    let complete = match completions(job) {
        None => succeeded > 0 && active == 0,
        Some(c) => succeeded >= c && active == 0,
    };
    if complete {
        return Concluded {
            finished: Some(condition(
                SUCCESS_CRITERIA_MET,
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                now,
            )),
            ..Concluded::default()
        };
    }
    if !managed {
        return Concluded::default();
    }
    if suspended(job) {
        if ensure_condition(
            status,
            SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        ) {
            return Concluded {
                finished: None,
                suspend_changed: true,
                event: Some(("Suspended", "Job suspended")),
            };
        }
    } else if ensure_condition(status, SUSPENDED, "False", "JobResumed", "Job resumed", now) {
        // A resumed Job's deadline counts from now, as if it were created now.
        status.start_time = Some(Time(now));
        return Concluded {
            finished: None,
            suspend_changed: true,
            event: Some(("Resumed", "Job resumed")),
        };
    }
    Concluded::default()
}

// ---------------------------------------------------------------------------------------
// 4. Tracking finished pods.

/// What [`track`] decided.
#[derive(Debug)]
pub struct Track<'a> {
    /// Pods whose tracking finalizer goes, now that they are in the status.
    pub remove_finalizer: Vec<&'a Pod>,
    /// UIDs of the pods that still have the finalizer (those removed are taken out as the
    /// removals succeed).
    pub with_finalizer: HashSet<String>,
    pub needs_flush: bool,
    /// The uncounted lists are full: the rest waits for the next sync.
    pub reached_max: bool,
    /// The terminal condition to set once nothing is uncounted or terminating.
    pub finished: Option<JobCondition>,
}

fn uncounted_mut(status: &mut JobStatus) -> &mut UncountedTerminatedPods {
    status
        .uncounted_terminated_pods
        .get_or_insert_with(Default::default)
}

/// Step 4 (upstream's first half of `trackJobStatusAndRemoveFinalizers`): updates
/// `status` with the newly finished pods and the interim condition.
pub fn track<'a>(
    job: &Job,
    status: &mut JobStatus,
    a: &Assessment<'a>,
    finished: Option<JobCondition>,
    mut needs_flush: bool,
    now: Timestamp,
) -> Track<'a> {
    let indexed = indexed::is_indexed(job);
    let completions = completions_i64(job);
    let mut pods = a.pods.clone();
    if indexed {
        pods.sort_by_key(|p| completion_index(p).unwrap_or(-1));
    }
    let with_finalizer: HashSet<String> = pods
        .iter()
        .filter(|p| has_tracking_finalizer(p) && !a.expected_rm_finalizers.contains(uid(p)))
        .map(|p| uid(p).to_owned())
        .collect();
    if clean_uncounted(status, &with_finalizer) {
        needs_flush = true;
    }
    let success_met = finished
        .as_ref()
        .is_some_and(|c| c.type_ == SUCCESS_CRITERIA_MET);
    let mut remove = Vec::new();
    let mut new_succeeded_indexes = Vec::new();
    let mut reached_max = false;
    for pod in pods {
        let id = uid(pod);
        if !has_tracking_finalizer(pod) || a.expected_rm_finalizers.contains(id) {
            continue;
        }
        let considered_failed = is_pod_failed(pod, job);
        if !can_remove_finalizer(job, a, finished.is_some(), pod, considered_failed) {
            continue;
        }
        remove.push(pod);
        let ix = completion_index(pod);
        if phase(pod) == "Succeeded" && !a.uncounted_failed.contains(id) {
            if indexed {
                if let Some(ix) =
                    ix.filter(|ix| *ix < completions && !a.prev_succeeded_indexes.has(*ix))
                {
                    new_succeeded_indexes.push(ix);
                    needs_flush = true;
                }
            } else if !a.uncounted_succeeded.contains(id) {
                needs_flush = true;
                uncounted_mut(status)
                    .succeeded
                    .get_or_insert_with(Vec::new)
                    .push(id.to_owned());
            }
        } else if (considered_failed || (finished.is_some() && !success_met))
            && !a.uncounted_failed.contains(id)
            && (!indexed || ix.is_some_and(|ix| ix < completions))
            && match_policy(failure_policy(job), pod).count_failed
        {
            needs_flush = true;
            uncounted_mut(status)
                .failed
                .get_or_insert_with(Vec::new)
                .push(id.to_owned());
        }
        let u = uncounted_mut(status);
        let uncounted =
            u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len);
        if new_succeeded_indexes.len() + uncounted >= MAX_UNCOUNTED_PODS {
            reached_max = true;
            break;
        }
    }
    if indexed {
        new_succeeded_indexes.sort_unstable();
        let succeeded = a.succeeded_indexes.with_indexes(new_succeeded_indexes);
        let text = succeeded.to_string();
        if text != status.completed_indexes.as_deref().unwrap_or("") {
            needs_flush = true;
        }
        status.succeeded = Some(succeeded.total() as i32);
        status.completed_indexes = Some(text);
        let failed = a.failed_indexes.as_ref().map(ToString::to_string);
        if failed != status.failed_indexes {
            status.failed_indexes = failed;
            needs_flush = true;
        }
    }
    let mut finished = finished;
    if let Some(f) = finished.take() {
        finished = Some(match f.type_.as_str() {
            FAILURE_TARGET => {
                status
                    .conditions
                    .get_or_insert_with(Vec::new)
                    .push(f.clone());
                needs_flush = true;
                condition(FAILED, "True", reason_of(&f), message_of(&f), now)
            }
            SUCCESS_CRITERIA_MET => {
                if condition_true(status, SUCCESS_CRITERIA_MET).is_none() {
                    status
                        .conditions
                        .get_or_insert_with(Vec::new)
                        .push(f.clone());
                    needs_flush = true;
                }
                condition(COMPLETE, "True", reason_of(&f), message_of(&f), now)
            }
            _ => f,
        });
    }
    Track {
        remove_finalizer: remove,
        with_finalizer,
        needs_flush,
        reached_max,
        finished,
    }
}

/// Upstream's `canRemoveFinalizer`.
fn can_remove_finalizer(
    job: &Job,
    a: &Assessment<'_>,
    finished: bool,
    pod: &Pod,
    considered_failed: bool,
) -> bool {
    if job.metadata.deletion_timestamp.is_some() || finished || phase(pod) == "Succeeded" {
        return true;
    }
    if !considered_failed {
        return false;
    }
    if backoff_limit_per_index(job).is_some() {
        if let Some(ix) = completion_index(pod) {
            if a.delayed_deletion_per_index
                .get(&ix)
                .is_some_and(|p| uid(p) == uid(pod))
            {
                return false;
            }
        }
    }
    true
}

/// Step 5a (upstream's `cleanUncountedPodsWithoutFinalizers`): pods in the uncounted lists
/// that no longer have the finalizer are counted into `succeeded` / `failed`.
pub fn clean_uncounted(status: &mut JobStatus, with_finalizer: &HashSet<String>) -> bool {
    let mut updated = false;
    let mut succeeded_add = 0;
    let mut failed_add = 0;
    let u = uncounted_mut(status);
    for (list, add) in [
        (&mut u.succeeded, &mut succeeded_add),
        (&mut u.failed, &mut failed_add),
    ] {
        let Some(v) = list.as_mut() else { continue };
        let before = v.len();
        v.retain(|id| with_finalizer.contains(id));
        if v.len() != before {
            updated = true;
            *add = (before - v.len()) as i32;
        }
        if v.is_empty() {
            *list = None;
        }
    }
    if succeeded_add > 0 {
        status.succeeded = Some(status.succeeded.unwrap_or(0) + succeeded_add);
    }
    if failed_add > 0 {
        status.failed = Some(status.failed.unwrap_or(0) + failed_add);
    }
    updated
}

/// Step 5b (upstream's `enactJobFinished`): the final condition, once every finished pod
/// is counted and no pod is terminating.
pub fn enact_finished(
    status: &mut JobStatus,
    finished: Option<&JobCondition>,
    terminating: i32,
    now: Timestamp,
) -> bool {
    let Some(f) = finished else {
        return false;
    };
    let uncounted = status.uncounted_terminated_pods.as_ref().map_or(0, |u| {
        u.succeeded.as_ref().map_or(0, Vec::len) + u.failed.as_ref().map_or(0, Vec::len)
    });
    if uncounted > 0 || terminating > 0 {
        return false;
    }
    ensure_condition(
        status,
        &f.type_,
        &f.status,
        reason_of(f),
        message_of(f),
        now,
    );
    if f.type_ == COMPLETE {
        status.completion_time = f.last_transition_time.clone();
    }
    true
}

/// The status as upstream's Go encoding writes it: zero counters left out, `ready` and
/// `terminating` always present, `uncountedTerminatedPods: {}`.
pub fn normalize(status: &mut JobStatus) {
    for v in [
        &mut status.active,
        &mut status.succeeded,
        &mut status.failed,
    ] {
        if *v == Some(0) {
            *v = None;
        }
    }
    if status.completed_indexes.as_deref() == Some("") {
        status.completed_indexes = None;
    }
    let u = uncounted_mut(status);
    for list in [&mut u.succeeded, &mut u.failed] {
        if list.as_ref().is_some_and(Vec::is_empty) {
            *list = None;
        }
    }
    status.ready.get_or_insert(0);
    status.terminating.get_or_insert(0);
}
