//! The CronJob controller: creates a Job for each time the schedule comes round, as
//! upstream's (pkg/controller/cronjob/cronjob_controllerv2.go, utils.go).
//!
//! A CronJob's Jobs are named `<cronjob>-<scheduled time in minutes since the epoch>` (so
//! the name is a lock: a time is never run twice), carry the
//! `batch.kubernetes.io/cronjob-scheduled-timestamp` annotation and a controller reference.
//! The controller keeps `status.active` (references to the running Jobs),
//! `lastScheduleTime` and `lastSuccessfulTime`; honours `concurrencyPolicy`
//! (Allow/Forbid/Replace), `startingDeadlineSeconds` (a time missed by more is skipped with
//! `MissSchedule`; more than 100 missed times warn `TooManyMissedTimes`), `suspend`,
//! `timeZone`, and the history limits (the oldest finished Jobs over
//! `successfulJobsHistoryLimit` / `failedJobsHistoryLimit` are deleted). It requeues itself
//! at the next schedule time (plus upstream's 100 ms).
//!
//! The decisions are pure functions of the CronJob, its Jobs and `now` ([`history`],
//! [`reconcile_active`], [`most_recent_schedule_time`], [`plan`]); the reconcile only reads
//! the caches and writes. Invalid schedules and time zones are refused by the API server's
//! validation; one that gets through is reported as an event, as upstream's. It does not
//! run the Jobs: the `job` controller does.

pub mod schedule;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, ResourceExt};
use parking_lot::Mutex;

use crate::events::Recorder;
use crate::job::sync::{find_condition, is_finished};
use crate::owners::FIELD_MANAGER;
use crate::pods::{self, controller_of, key_of};
use crate::{Context, Error, Result, Task};

use self::schedule::{load_location, Schedule};

/// Upstream's component name, the source of the CronJob controller's events.
pub const COMPONENT: &str = "cronjob-controller";
/// The annotation with the time a Job was scheduled for (RFC 3339, in the CronJob's zone).
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// Upstream's `nextScheduleDelta`: requeues land this long after the schedule time.
const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);

/// An event to record about the CronJob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

fn normal(reason: &'static str, message: String) -> Event {
    Event {
        warning: false,
        reason,
        message,
    }
}

fn warning(reason: &'static str, message: String) -> Event {
    Event {
        warning: true,
        reason,
        message,
    }
}

fn spec(cj: &CronJob) -> Option<&k8s_openapi::api::batch::v1::CronJobSpec> {
    cj.spec.as_ref()
}

fn uid(meta: &ObjectMeta) -> &str {
    meta.uid.as_deref().unwrap_or("")
}

fn condition_true(job: &Job, type_: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| find_condition(s, type_))
        .is_some_and(|c| c.status == "True")
}

/// The finished condition's type (`Complete` or `Failed`), upstream's `FinishedCondition`.
fn finished_type(job: &Job) -> Option<&'static str> {
    if condition_true(job, "Complete") {
        Some("Complete")
    } else if condition_true(job, "Failed") {
        Some("Failed")
    } else {
        None
    }
}

/// The Jobs of a CronJob: those whose controller reference names it (upstream's
/// `getJobsToBeReconciled` matches by name).
pub fn children<'a>(cj: &CronJob, jobs: impl IntoIterator<Item = &'a Arc<Job>>) -> Vec<Arc<Job>> {
    let ns = cj.metadata.namespace.as_deref();
    jobs.into_iter()
        .filter(|j| j.metadata.namespace.as_deref() == ns)
        .filter(|j| {
            controller_of(&j.metadata)
                .is_some_and(|r| Some(r.name.as_str()) == cj.metadata.name.as_deref())
        })
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------
// History.

/// Upstream's `byJobStartTime`: started Jobs first, oldest first, then by name.
fn by_start_time(a: &Job, b: &Job) -> std::cmp::Ordering {
    let start = |j: &Job| {
        j.status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
    };
    match (start(a), start(b)) {
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (x, y) if x == y => a.metadata.name.cmp(&b.metadata.name),
        (x, y) => x.cmp(&y),
    }
}

/// The finished Jobs over the history limits, oldest first (upstream's
/// `cleanupFinishedJobs`).
pub fn history(cj: &CronJob, jobs: &[Arc<Job>]) -> Vec<Arc<Job>> {
    let Some(s) = spec(cj) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (kind, limit) in [
        ("Complete", s.successful_jobs_history_limit),
        ("Failed", s.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let mut of_kind: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| finished_type(j) == Some(kind))
            .collect();
        let excess = of_kind
            .len()
            .saturating_sub(usize::try_from(limit.max(0)).unwrap_or(0));
        of_kind.sort_by(|a, b| by_start_time(a, b));
        out.extend(of_kind.into_iter().take(excess).cloned());
    }
    out
}

// ---------------------------------------------------------------------------------------
// The active list.

/// What [`reconcile_active`] found.
#[derive(Debug, Default)]
pub struct ActiveReport {
    pub changed: bool,
    pub events: Vec<Event>,
    /// Unfinished Jobs of ours missing from `status.active` (upstream re-reads the CronJob
    /// before calling them unexpected).
    pub unexpected: Vec<String>,
    /// Active references with no Job in the cache (upstream asks the API before dropping
    /// them).
    pub missing: Vec<ObjectReference>,
}

/// The first part of upstream's `syncCronJob`: finished Jobs leave `status.active` (with
/// `SawCompletedJob`) and move `lastSuccessfulTime`.
pub fn reconcile_active(status: &mut CronJobStatus, jobs: &[Arc<Job>]) -> ActiveReport {
    let mut r = ActiveReport::default();
    let active = status.active.get_or_insert_with(Vec::new);
    let children: HashSet<&str> = jobs.iter().map(|j| uid(&j.metadata)).collect();
    for j in jobs {
        let id = uid(&j.metadata);
        let found = active.iter().any(|a| a.uid.as_deref() == Some(id));
        if !found && !is_finished(j) {
            r.unexpected.push(j.name_any());
        } else if let Some(kind) = finished_type(j) {
            if found {
                active.retain(|a| a.uid.as_deref() != Some(id));
                r.events.push(normal(
                    "SawCompletedJob",
                    format!("Saw completed job: {}, condition: {kind}", j.name_any()),
                ));
                r.changed = true;
            }
            if kind == "Complete" {
                let completion = j.status.as_ref().and_then(|s| s.completion_time.clone());
                if status.last_successful_time.is_none() {
                    status.last_successful_time = completion.clone();
                    r.changed = true;
                }
                if let (Some(c), Some(last)) = (&completion, &status.last_successful_time) {
                    if c.0 > last.0 {
                        status.last_successful_time = completion;
                        r.changed = true;
                    }
                }
            }
        }
    }
    let active = status.active.get_or_insert_with(Vec::new);
    r.missing = active
        .iter()
        .filter(|a| !children.contains(a.uid.as_deref().unwrap_or("")))
        .cloned()
        .collect();
    r
}

// ---------------------------------------------------------------------------------------
// Schedule times.

/// Upstream's `missedSchedulesType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    None,
    Few,
    Many,
}

/// Upstream's `mostRecentScheduleTime`: the time counted from (last schedule or creation,
/// or the starting deadline), the most recent schedule time not after `now`, and how many
/// were missed. The error is upstream's for a schedule that never comes round.
pub fn most_recent_schedule_time(
    cj: &CronJob,
    now: Timestamp,
    sched: &Schedule,
    include_starting_deadline: bool,
) -> Result<(Timestamp, Option<Timestamp>, Missed), String> {
    let mut earliest = cj
        .status
        .as_ref()
        .and_then(|s| s.last_schedule_time.as_ref())
        .or(cj.metadata.creation_timestamp.as_ref())
        .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
    if include_starting_deadline {
        if let Some(d) = spec(cj).and_then(|s| s.starting_deadline_seconds) {
            let deadline = now.checked_sub(SignedDuration::from_secs(d)).unwrap_or(now);
            if deadline > earliest {
                earliest = deadline;
            }
        }
    }
    let too_close = || "time difference between two schedules is less than 1 second".to_owned();
    let Some(t1) = sched.next(earliest) else {
        return Err(too_close());
    };
    if now < t1 {
        return Ok((earliest, None, Missed::None));
    }
    let Some(t2) = sched.next(t1) else {
        return Err(too_close());
    };
    if now < t2 {
        return Ok((earliest, Some(t1), Missed::None));
    }
    let between = (t2.duration_since(t1).as_millis() as f64 / 1000.0).round() as i64;
    if between < 1 {
        return Err(too_close());
    }
    let elapsed = now.duration_since(t1).as_secs();
    let missed = elapsed / between + 1;
    let potential_earliest = t1
        .checked_add(SignedDuration::from_secs(
            (missed - 2).saturating_mul(between),
        ))
        .unwrap_or(t1);
    let mut most_recent = None;
    let mut t = sched.next(potential_earliest);
    while let Some(x) = t.filter(|x| *x <= now) {
        most_recent = Some(x);
        t = sched.next(x);
    }
    let kind = if missed > 100 {
        Missed::Many
    } else if missed > 0 {
        Missed::Few
    } else {
        Missed::None
    };
    Ok((earliest, most_recent, kind))
}

/// Upstream's `nextScheduleTimeDuration`: how long until the next schedule time (plus
/// 100 ms).
pub fn next_schedule_in(cj: &CronJob, now: Timestamp, sched: &Schedule) -> Option<Duration> {
    let from = match most_recent_schedule_time(cj, now, sched, false) {
        Err(_) => now,
        Ok((_, Some(t), _)) => t,
        Ok((earliest, None, Missed::None)) => earliest,
        Ok((_, None, _)) => now,
    };
    let next = sched.next(from)?;
    let d = Duration::try_from(next.duration_since(now)).unwrap_or(Duration::ZERO);
    Some(d + NEXT_SCHEDULE_DELTA)
}

/// The Job's name for a schedule time (upstream's `getJobName`).
pub fn job_name(cj_name: &str, scheduled: Timestamp) -> String {
    format!("{cj_name}-{}", scheduled.as_second().div_euclid(60))
}

/// Go's RFC 3339 (`Z` for a zero offset).
fn rfc3339_in(t: Timestamp, tz: &TimeZone) -> String {
    let z = t.to_zoned(tz.clone());
    if z.offset().seconds() == 0 {
        z.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

/// Go's RFC 1123 with a numeric zone, in UTC (the `MissSchedule` message).
fn rfc1123z(t: Timestamp) -> String {
    t.to_zoned(TimeZone::UTC)
        .strftime("%a, %d %b %Y %H:%M:%S %z")
        .to_string()
}

/// The Job for a schedule time (upstream's `getJobFromTemplate2`).
pub fn job_for(cj: &CronJob, scheduled: Timestamp) -> Job {
    let template = spec(cj).map(|s| s.job_template.clone()).unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let tz = spec(cj)
        .and_then(|s| s.time_zone.as_deref())
        .and_then(|z| load_location(z).ok())
        .unwrap_or(TimeZone::UTC);
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), rfc3339_in(scheduled, &tz));
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(
                cj.metadata.name.as_deref().unwrap_or(""),
                scheduled,
            )),
            namespace: cj.metadata.namespace.clone(),
            labels: Some(tmeta.labels.unwrap_or_default()),
            annotations: Some(annotations),
            creation_timestamp: Some(Time(scheduled)),
            owner_references: Some(vec![pods::controller_ref(cj)]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Upstream's `formatSchedule`: `spec.timeZone` becomes a `TZ=` prefix; a schedule with
/// its own `TZ` is taken as it is (and warned about).
pub fn format_schedule(cj: &CronJob) -> (String, Option<Event>) {
    let schedule = spec(cj).map(|s| s.schedule.clone()).unwrap_or_default();
    if schedule.contains("TZ") {
        let e = warning(
            "UnsupportedSchedule",
            format!("CRON_TZ or TZ used in schedule {schedule:?} is not officially supported, see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details"),
        );
        return (schedule, Some(e));
    }
    match spec(cj).and_then(|s| s.time_zone.as_deref()) {
        Some(tz) if load_location(tz).is_ok() => (format!("TZ={tz} {schedule}"), None),
        _ => (schedule, None),
    }
}

/// What the scheduling part of a sync decided.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Nothing to start: look again then (if ever).
    Wait(Option<Duration>),
    /// Start `job` for `scheduled`, deleting `replace` first (concurrencyPolicy Replace).
    Start {
        scheduled: Timestamp,
        job: Box<Job>,
        replace: Vec<ObjectReference>,
    },
}

/// The scheduling part of upstream's `syncCronJob` for a CronJob that is not suspended,
/// being deleted, or in an unknown zone: the step and the events on the way.
pub fn plan(cj: &CronJob, now: Timestamp, sched: &Schedule) -> (Step, Vec<Event>) {
    let mut events = Vec::new();
    let schedule = spec(cj).map(|s| s.schedule.clone()).unwrap_or_default();
    let wait = |cj: &CronJob| Step::Wait(next_schedule_in(cj, now, sched));
    let scheduled = match most_recent_schedule_time(cj, now, sched, true) {
        Err(e) => {
            events.push(warning(
                "InvalidSchedule",
                format!("invalid schedule: {schedule} : {e}"),
            ));
            return (Step::Wait(None), events);
        }
        Ok((_, None, _)) => return (wait(cj), events),
        Ok((_, Some(t), missed)) => {
            if missed == Missed::Many {
                events.push(warning(
                    "TooManyMissedTimes",
                    "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
                ));
            }
            t
        }
    };
    if let Some(d) = spec(cj).and_then(|s| s.starting_deadline_seconds) {
        if scheduled
            .checked_add(SignedDuration::from_secs(d))
            .is_ok_and(|t| t < now)
        {
            events.push(warning(
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    rfc1123z(scheduled)
                ),
            ));
            return (wait(cj), events);
        }
    }
    let status = cj.status.clone().unwrap_or_default();
    let active = status.active.clone().unwrap_or_default();
    let name = job_name(cj.metadata.name.as_deref().unwrap_or(""), scheduled);
    let already = active
        .iter()
        .any(|a| a.name.as_deref() == Some(name.as_str()) && a.namespace == cj.metadata.namespace)
        || status
            .last_schedule_time
            .as_ref()
            .is_some_and(|t| t.0 == scheduled);
    if already {
        return (wait(cj), events);
    }
    let policy = spec(cj)
        .and_then(|s| s.concurrency_policy.as_deref())
        .unwrap_or("Allow");
    if policy == "Forbid" && !active.is_empty() {
        events.push(normal(
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid"
                .into(),
        ));
        return (wait(cj), events);
    }
    let replace = if policy == "Replace" {
        active
    } else {
        Vec::new()
    };
    (
        Step::Start {
            scheduled,
            job: Box::new(job_for(cj, scheduled)),
            replace,
        },
        events,
    )
}

/// The requeue after starting a Job for `scheduled`.
pub fn after_start(
    cj: &CronJob,
    scheduled: Timestamp,
    now: Timestamp,
    sched: &Schedule,
) -> Option<Duration> {
    let mut started = cj.clone();
    started
        .status
        .get_or_insert_with(Default::default)
        .last_schedule_time = Some(Time(scheduled));
    next_schedule_in(&started, now, sched)
}

/// Upstream's `getRef` of a Job.
fn reference(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

// ---------------------------------------------------------------------------------------
// The controller.

struct State {
    ctx: Arc<Context>,
    cronjobs: Store<CronJob>,
    jobs: Store<Job>,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
    /// Go's `time.Local`: the zone of schedules without a time zone.
    local: TimeZone,
}

/// Sets up the `cronjob` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let state = Arc::new(State {
        ctx: ctx.clone(),
        cronjobs: informers.store::<CronJob>(),
        jobs: informers.store::<Job>(),
        recorder: Recorder::new(ctx.client.clone(), COMPONENT),
        failures: Mutex::new(HashMap::new()),
        local: TimeZone::system(),
    });
    let controller =
        Controller::for_shared_stream(informers.subscribe::<CronJob>(), state.cronjobs.clone())
            .watches_shared_stream(informers.subscribe::<Job>(), |job: Arc<Job>| {
                controller_of(&job.metadata)
                    .filter(|r| r.kind == "CronJob")
                    .map(|r| {
                        ObjectRef::<CronJob>::new(&r.name)
                            .within(job.metadata.namespace.as_deref().unwrap_or(""))
                    })
            });
    let synced = futures::future::join(informers.synced::<CronJob>(), informers.synced::<Job>());
    Ok(Box::pin(async move {
        synced.await;
        controller
            .run(reconcile, error_policy, state)
            .for_each(|_| async {})
            .await;
    }))
}

fn error_policy(cj: Arc<CronJob>, error: &Error, state: Arc<State>) -> Action {
    let key = key_of(&cj.metadata);
    let mut failures = state.failures.lock();
    let n = failures.entry(key.clone()).or_default();
    *n = n.saturating_add(1);
    let delay = crate::replicaset::backoff(*n);
    tracing::debug!(%key, %error, ?delay, "cronjob sync failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(cj: Arc<CronJob>, state: Arc<State>) -> Result<Action> {
    let key = key_of(&cj.metadata);
    let result = sync(&cj, &state).await;
    if result.is_ok() {
        state.failures.lock().remove(&key);
    }
    result
}

impl State {
    fn emit(&self, cj: &CronJob, e: Event) {
        let recorder = self.recorder.clone();
        let cj = cj.clone();
        tokio::spawn(async move {
            if e.warning {
                recorder.warning(&cj, e.reason, e.message).await;
            } else {
                recorder.normal(&cj, e.reason, e.message).await;
            }
        });
    }
}

fn status_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Deletes a Job with background propagation (upstream's `deleteJob`); whether it went.
async fn delete_job(
    state: &State,
    cj: &CronJob,
    status: &mut CronJobStatus,
    name: &str,
    job_uid: Option<&str>,
) -> bool {
    let api: Api<Job> = Api::namespaced(
        state.ctx.client.clone(),
        cj.metadata.namespace.as_deref().unwrap_or(""),
    );
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    if let Err(e) = api.delete(name, &params).await {
        state.emit(
            cj,
            warning("FailedDelete", format!("Deleted job: {}", api_message(&e))),
        );
        return false;
    }
    if let Some(active) = status.active.as_mut() {
        active.retain(|a| a.uid.as_deref() != job_uid);
    }
    state.emit(
        cj,
        normal("SuccessfulDelete", format!("Deleted job {name}")),
    );
    true
}

async fn sync(cached: &Arc<CronJob>, state: &State) -> Result<Action> {
    let namespace = cached.metadata.namespace.clone().unwrap_or_default();
    let name = cached.name_any();
    let cj_api: Api<CronJob> = Api::namespaced(state.ctx.client.clone(), &namespace);
    let jobs_api: Api<Job> = Api::namespaced(state.ctx.client.clone(), &namespace);
    let mut cj = (**cached).clone();
    let all = state.jobs.state();
    let jobs = children(&cj, &all);
    let mut status = cj.status.clone().unwrap_or_default();
    let before = status.clone();

    // History limits.
    for job in history(&cj, &jobs) {
        delete_job(
            state,
            &cj,
            &mut status,
            &job.name_any(),
            job.metadata.uid.as_deref(),
        )
        .await;
    }

    // The active list.
    let mut report = reconcile_active(&mut status, &jobs);
    if !report.unexpected.is_empty() {
        // Our own status update may not be in the cache yet: read it.
        if let Some(fresh) = cj_api.get_opt(&name).await? {
            let fresh_active: HashSet<String> = fresh
                .status
                .as_ref()
                .and_then(|s| s.active.as_ref())
                .into_iter()
                .flatten()
                .filter_map(|a| a.name.clone())
                .collect();
            if report.unexpected.iter().any(|n| fresh_active.contains(n)) {
                cj = fresh;
                status = cj.status.clone().unwrap_or_default();
                report = reconcile_active(&mut status, &jobs);
            }
        }
        for n in &report.unexpected {
            state.emit(
                &cj,
                warning(
                    "UnexpectedJob",
                    format!("Saw a job that the controller did not create or forgot: {n}"),
                ),
            );
        }
    }
    for e in report.events {
        state.emit(&cj, e);
    }
    for missing in &report.missing {
        let n = missing.name.clone().unwrap_or_default();
        match jobs_api.get(&n).await {
            Err(e) if status_code(&e) == Some(404) => {
                state.emit(
                    &cj,
                    normal("MissingJob", format!("Active job went missing: {n}")),
                );
                if let Some(active) = status.active.as_mut() {
                    active.retain(|a| a.uid != missing.uid);
                }
            }
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
    }

    let requeue = schedule(state, &cj, &mut status).await;
    if status != before {
        cj.status = Some(status);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        match cj_api.replace_status(&name, &params, &cj).await {
            Ok(_) => {}
            Err(e) if status_code(&e) == Some(404) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    match requeue? {
        Some(d) => Ok(Action::requeue(d)),
        None => Ok(Action::await_change()),
    }
}

/// The scheduling part of a sync: the requeue, or the error to retry with (the status
/// changes made so far are written either way, as upstream's).
async fn schedule(
    state: &State,
    cj: &CronJob,
    status: &mut CronJobStatus,
) -> Result<Option<Duration>> {
    if cj.metadata.deletion_timestamp.is_some() {
        return Ok(None);
    }
    if let Some(tz) = spec(cj).and_then(|s| s.time_zone.as_deref()) {
        if let Err(e) = load_location(tz) {
            state.emit(
                cj,
                warning("UnknownTimeZone", format!("invalid timeZone: {tz:?}: {e}")),
            );
            return Ok(None);
        }
    }
    if spec(cj).and_then(|s| s.suspend) == Some(true) {
        return Ok(None);
    }
    let (text, unsupported) = format_schedule(cj);
    if let Some(e) = unsupported {
        state.emit(cj, e);
    }
    let sched = match Schedule::parse(&text, &state.local) {
        Ok(s) => s,
        Err(e) => {
            let schedule = spec(cj).map(|s| s.schedule.clone()).unwrap_or_default();
            state.emit(
                cj,
                warning(
                    "UnparseableSchedule",
                    format!("unparseable schedule: {schedule:?} : {e}"),
                ),
            );
            return Ok(None);
        }
    };
    let mut current = cj.clone();
    current.status = Some(status.clone());
    let now = Timestamp::now();
    let (step, events) = plan(&current, now, &sched);
    for e in events {
        state.emit(cj, e);
    }
    let Step::Start {
        scheduled,
        job,
        replace,
    } = step
    else {
        let Step::Wait(d) = step else {
            unreachable!("the other step")
        };
        return Ok(d);
    };
    let namespace = cj.metadata.namespace.clone().unwrap_or_default();
    let jobs_api: Api<Job> = Api::namespaced(state.ctx.client.clone(), &namespace);
    for r in &replace {
        let n = r.name.clone().unwrap_or_default();
        let existing = match jobs_api.get(&n).await {
            Ok(j) => j,
            Err(e) => {
                state.emit(
                    cj,
                    warning("FailedGet", format!("Get job: {}", api_message(&e))),
                );
                return Err(e.into());
            }
        };
        if !delete_job(state, cj, status, &n, existing.metadata.uid.as_deref()).await {
            return Err(Error::Invalid(format!(
                "could not replace job {namespace}/{n}"
            )));
        }
    }
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    let created = match jobs_api.create(&params, &job).await {
        Ok(j) => {
            state.emit(
                cj,
                normal("SuccessfulCreate", format!("Created job {}", j.name_any())),
            );
            j
        }
        Err(kube::Error::Api(s))
            if s.details
                .as_ref()
                .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")) =>
        {
            return Err(Error::Kube(kube::Error::Api(s)));
        }
        Err(e) if status_code(&e) == Some(409) => {
            // Created before (a status update lost), or by someone else.
            let existing = jobs_api.get(&job.name_any()).await?;
            let ours =
                controller_of(&existing.metadata).is_some_and(|r| r.uid == uid(&cj.metadata));
            let listed = status
                .active
                .iter()
                .flatten()
                .any(|a| a.uid.as_deref() == existing.metadata.uid.as_deref());
            if !ours || listed {
                return Ok(None);
            }
            tracing::info!(job = %existing.name_any(), "job already exists");
            existing
        }
        Err(e) => {
            state.emit(
                cj,
                warning(
                    "FailedCreate",
                    format!("Error creating job: {}", api_message(&e)),
                ),
            );
            return Err(e.into());
        }
    };
    status
        .active
        .get_or_insert_with(Vec::new)
        .push(reference(&created));
    status.last_schedule_time = Some(Time(scheduled));
    Ok(after_start(&current, scheduled, now, &sched))
}

#[cfg(test)]
mod tests;
