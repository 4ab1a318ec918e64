//! The Job controller: runs a Job's pods to completion, as upstream's
//! (pkg/controller/job/job_controller.go).
//!
//! It owns the pods a Job selects (adopting orphans with the `batch.kubernetes.io/job-tracking`
//! finalizer, releasing those it no longer selects), creates them from the template
//! (`completions` at most `parallelism` at a time; for `Indexed` Jobs one per index, with the
//! index annotation and label, hostname `<job>-<index>` and `JOB_COMPLETION_INDEX`), waits
//! out the failure backoff (10 s doubling), and ends the Job: `backoffLimit`,
//! `activeDeadlineSeconds`, `podFailurePolicy`, `backoffLimitPerIndex`/`maxFailedIndexes`,
//! `successPolicy`, or enough successes. Finished pods are counted through
//! `status.uncountedTerminatedPods`: a pod goes in the status first, loses its finalizer,
//! then moves into `succeeded`/`failed`, so a pod deleted before it was counted (by hand, by
//! pod GC) is counted all the same and never twice. `suspend` deletes the active pods.
//! A second worker removes the finalizer from pods whose Job is gone or finished
//! (upstream's orphan queue).
//!
//! The decisions are pure functions in [`sync`] (with [`indexed`], [`failure_policy`],
//! [`backoff`]); [`sync_job`] runs them between its writes through the [`Control`] trait, so
//! a whole Job's life is tested against a recording double without a server. It does not
//! delete finished Jobs: that is the `ttl-after-finished` controller's.

pub mod backoff;
pub mod failure_policy;
pub mod indexed;
pub mod sync;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;
use skiff_api::selector::LabelSelector;

use crate::events::Recorder;
use crate::expectations::Expectations;
use crate::owners::{self, claim, OwnerIndex, FIELD_MANAGER};
use crate::pods::{self, key_of};
use crate::replicaset::slow_start_batches;
use crate::{Context, Error, Result, Task};

use self::sync::{Manage, TRACKING_FINALIZER};

/// Upstream's component name, the source of the Job controller's events.
pub const COMPONENT: &str = "job-controller";
/// `spec.managedBy` of Jobs this controller syncs (absent means this one too).
const MANAGED_BY: &str = "kubernetes.io/job-controller";
/// How soon a Job waiting for its cache to catch up is looked at again regardless.
const EXPECTATIONS_RECHECK: Duration = Duration::from_secs(30);

/// The writes of a sync. [`KubeControl`] sends them to the API; tests record them.
pub trait Control: Send + Sync {
    /// Creates a pod; the name the server gave it.
    fn create_pod(
        &self,
        job: &Job,
        pod: Pod,
    ) -> impl Future<Output = Result<String, kube::Error>> + Send;
    fn delete_pod(
        &self,
        job: &Job,
        pod: &Pod,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send;
    /// Removes the tracking finalizer (upstream's `$deleteFromPrimitiveList` patch).
    fn remove_finalizer(&self, pod: &Pod) -> impl Future<Output = Result<(), kube::Error>> + Send;
    /// Writes `job.status` through the status subresource; the stored Job.
    fn update_status(&self, job: &Job) -> impl Future<Output = Result<Job, kube::Error>> + Send;
    fn event(&self, job: &Job, warning: bool, reason: &str, message: String);
}

/// What the controller keeps between syncs: pod expectations, the finalizer removals not
/// yet seen in the cache, and the failure backoff records (all memory, as upstream's).
#[derive(Default)]
pub struct Memory {
    pub expectations: Expectations,
    finalizers: Mutex<HashMap<String, HashSet<String>>>,
    backoff: Mutex<HashMap<String, backoff::Record>>,
}

impl Memory {
    /// The UIDs whose finalizer removal the cache does not show yet (upstream's
    /// `finalizerExpectations`, derived from the cache): a pod that lost the finalizer, or
    /// is gone, settles its entry.
    fn expected_rm(&self, key: &str, pods: &[Arc<Pod>]) -> HashSet<String> {
        let mut map = self.finalizers.lock();
        let Some(set) = map.get_mut(key) else {
            return HashSet::new();
        };
        set.retain(|uid| {
            pods.iter().any(|p| {
                p.metadata.uid.as_deref() == Some(uid.as_str()) && sync::has_tracking_finalizer(p)
            })
        });
        let out = set.clone();
        if set.is_empty() {
            map.remove(key);
        }
        out
    }

    fn expect_rm(&self, key: &str, uid: &str) {
        self.finalizers
            .lock()
            .entry(key.to_owned())
            .or_default()
            .insert(uid.to_owned());
    }

    fn rm_failed(&self, key: &str, uid: &str) {
        if let Some(s) = self.finalizers.lock().get_mut(key) {
            s.remove(uid);
        }
    }

    fn backoff(&self, key: &str) -> backoff::Record {
        self.backoff.lock().get(key).copied().unwrap_or_default()
    }

    /// The Job is finished or gone: forget everything about it.
    pub fn forget(&self, key: &str) {
        self.expectations.forget(key);
        self.finalizers.lock().remove(key);
        self.backoff.lock().remove(key);
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

fn namespace_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")))
}

/// One sync of `job` over its claimed `pods` at `now` (upstream's `syncJob` after
/// `getPodsForJob`); `satisfied` says whether the cache shows every earlier create and
/// delete. Returns when to look at the Job again without an event (backoff, deadline).
pub async fn sync_job<C: Control>(
    control: &C,
    memory: &Memory,
    job: &Job,
    pods: &[Arc<Pod>],
    satisfied: bool,
    now: Timestamp,
) -> Result<Option<Duration>> {
    let key = key_of(&job.metadata);
    if job
        .spec
        .as_ref()
        .and_then(|s| s.managed_by.as_deref())
        .is_some_and(|m| m != MANAGED_BY)
    {
        return Ok(None);
    }
    if sync::is_finished(job) {
        memory.forget(&key);
        return Ok(None);
    }
    if job
        .spec
        .as_ref()
        .and_then(|s| s.completion_mode.as_deref())
        .is_some_and(|m| m != "NonIndexed" && m != "Indexed")
    {
        control.event(
            job,
            true,
            "UnknownCompletionMode",
            "Skipped Job sync because completion mode is unknown".into(),
        );
        return Ok(None);
    }
    let mut job = job.clone();
    let mut status = job.status.clone().unwrap_or_default();
    status
        .uncounted_terminated_pods
        .get_or_insert_with(Default::default);

    let expected_rm = memory.expected_rm(&key, pods);
    let refs: Vec<&Pod> = pods.iter().map(|p| &**p).collect();
    let a = sync::assess(&job, refs, now, memory.backoff(&key), expected_rm);
    if let Some(t) = a.start_time {
        status.start_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(t));
    }
    let mut requeue = a.deadline_in;
    let mut active = a.active.len() as i32;
    let mut ready = a.ready;
    let mut terminating = a.terminating;
    let mut finished = a.finished.clone();
    let mut suspend_changed = false;
    let mut manage_error: Option<kube::Error> = None;

    if finished.is_some() {
        // The Job ends: its active pods are deleted, keeping their finalizers so that
        // they are counted (as failed) before they go.
        let (deleted, deleted_ready, error) =
            delete_pods(control, memory, &job, &key, &a.active, false).await;
        if deleted != active || !satisfied {
            // Not yet: pods may remain or be missing from the cache.
            finished = None;
        }
        active -= deleted;
        terminating += deleted;
        ready -= deleted_ready;
        manage_error = error;
    } else {
        let mut managed = false;
        if satisfied && job.metadata.deletion_timestamp.is_none() {
            managed = true;
            match sync::manage(&job, &a, now) {
                Manage::Nothing => {}
                Manage::Wait(d) => {
                    requeue = Some(requeue.map_or(d, |r| r.min(d)).max(Duration::from_secs(1)))
                }
                Manage::Delete(victims) => {
                    let (deleted, deleted_ready, error) =
                        delete_pods(control, memory, &job, &key, &victims, true).await;
                    active -= deleted;
                    terminating += deleted;
                    ready -= deleted_ready;
                    manage_error = error;
                }
                Manage::Create(new) => {
                    let (created, error) = create_pods(control, memory, &job, &key, &new).await;
                    active += created;
                    manage_error = error;
                }
            }
        }
        let concluded = sync::conclude(&job, &mut status, a.succeeded, active, managed, now);
        finished = concluded.finished;
        suspend_changed = concluded.suspend_changed;
        if let Some((reason, message)) = concluded.event {
            control.event(&job, false, reason, message.into());
        }
    }

    let needs_update = suspend_changed
        || active != status.active.unwrap_or(0)
        || Some(ready) != status.ready
        || Some(terminating) != status.terminating;
    status.active = Some(active);
    status.ready = Some(ready);
    status.terminating = Some(terminating);

    // Tracking: the finished pods go into the status, lose their finalizers, are counted.
    let track = sync::track(&job, &mut status, &a, finished, needs_update, now);
    let mut needs_flush = track.needs_flush;
    if needs_flush {
        job = write_status(control, &job, &mut status).await?;
        memory.backoff.lock().insert(key.clone(), a.new_backoff);
        needs_flush = false;
    }
    let mut with_finalizer = track.with_finalizer;
    let mut remove_error = None;
    for pod in &track.remove_finalizer {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        memory.expect_rm(&key, &uid);
        match control.remove_finalizer(pod).await {
            Ok(()) => {
                with_finalizer.remove(&uid);
            }
            Err(e) if status_code(&e) == Some(404) => {
                memory.rm_failed(&key, &uid);
                with_finalizer.remove(&uid);
            }
            Err(e) => {
                memory.rm_failed(&key, &uid);
                remove_error.get_or_insert(e);
            }
        }
    }
    if sync::clean_uncounted(&mut status, &with_finalizer) {
        needs_flush = true;
    }
    if let Some(e) = remove_error {
        if needs_flush {
            write_status(control, &job, &mut status).await?;
        }
        return Err(e.into());
    }
    let done = !track.reached_max
        && sync::enact_finished(&mut status, track.finished.as_ref(), terminating, now);
    if done {
        needs_flush = true;
    }
    if needs_flush {
        job = write_status(control, &job, &mut status).await?;
        if done {
            record_finished(control, &job, track.finished.as_ref());
        }
    }
    if let Some(e) = manage_error {
        return Err(e.into());
    }
    if !satisfied {
        requeue = Some(requeue.map_or(EXPECTATIONS_RECHECK, |r| r.min(EXPECTATIONS_RECHECK)));
    }
    Ok(requeue)
}

async fn write_status<C: Control>(
    control: &C,
    job: &Job,
    status: &mut k8s_openapi::api::batch::v1::JobStatus,
) -> Result<Job> {
    sync::normalize(status);
    let mut next = job.clone();
    next.status = Some(status.clone());
    Ok(control.update_status(&next).await?)
}

/// Upstream's `recordJobFinished`.
fn record_finished<C: Control>(
    control: &C,
    job: &Job,
    finished: Option<&k8s_openapi::api::batch::v1::JobCondition>,
) {
    let Some(f) = finished else { return };
    if f.type_ == sync::COMPLETE {
        let succeeded = job.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
        if sync::completions(job).is_some_and(|c| succeeded > c) {
            control.event(
                job,
                true,
                "TooManySucceededPods",
                "Too many succeeded pods running after completion count reached".into(),
            );
        }
        control.event(job, false, "Completed", "Job completed".into());
    } else {
        control.event(
            job,
            true,
            f.reason.as_deref().unwrap_or(""),
            f.message.clone().unwrap_or_default(),
        );
    }
}

/// Deletes `victims` (upstream's `deleteJobPods` when `remove_finalizer`, else
/// `deleteActivePods`); the deleted and deleted-ready counts, and the first error.
async fn delete_pods<C: Control>(
    control: &C,
    memory: &Memory,
    job: &Job,
    key: &str,
    victims: &[&Pod],
    remove_finalizer: bool,
) -> (i32, i32, Option<kube::Error>) {
    let mut deleted = 0;
    let mut deleted_ready = 0;
    let mut first_error = None;
    for pod in victims {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if remove_finalizer {
            memory.expectations.deleted(key, &uid, Instant::now());
            if let Err(e) = control.remove_finalizer(pod).await {
                memory.expectations.deletion_failed(key, &uid);
                if status_code(&e) != Some(404) {
                    first_error.get_or_insert(e);
                    continue;
                }
            }
        }
        let result = control.delete_pod(job, pod).await;
        match result {
            Ok(()) => {
                deleted += 1;
                control.event(
                    job,
                    false,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", pod.name_any()),
                );
            }
            Err(e) if status_code(&e) == Some(404) => {
                deleted += 1;
            }
            Err(e) => {
                if remove_finalizer {
                    memory.expectations.deletion_failed(key, &uid);
                }
                control.event(
                    job,
                    true,
                    "FailedDelete",
                    format!("Error deleting: {}", api_message(&e)),
                );
                first_error.get_or_insert(e);
                continue;
            }
        }
        if pods::is_ready(pod) {
            deleted_ready += 1;
        }
    }
    (deleted, deleted_ready, first_error)
}

/// Creates the pods in slow-start batches; how many were created, and the first error.
async fn create_pods<C: Control>(
    control: &C,
    memory: &Memory,
    job: &Job,
    key: &str,
    new: &[sync::NewPod],
) -> (i32, Option<kube::Error>) {
    let mut created = 0;
    let mut first_error = None;
    let mut rest = new;
    for batch in slow_start_batches(new.len(), 1) {
        let (now, later) = rest.split_at(batch.min(rest.len()));
        rest = later;
        let results = futures::future::join_all(
            now.iter()
                .map(|n| control.create_pod(job, sync::pod_for(job, n))),
        )
        .await;
        let mut failed = false;
        for result in results {
            match result {
                Ok(name) => {
                    memory.expectations.created(key, &name, Instant::now());
                    created += 1;
                    control.event(
                        job,
                        false,
                        "SuccessfulCreate",
                        format!("Created pod: {name}"),
                    );
                }
                Err(e) if namespace_terminating(&e) => {}
                Err(e) => {
                    control.event(
                        job,
                        true,
                        "FailedCreate",
                        format!("Error creating: {}", api_message(&e)),
                    );
                    first_error.get_or_insert(e);
                    failed = true;
                }
            }
        }
        if failed {
            break;
        }
    }
    (created, first_error)
}

// ---------------------------------------------------------------------------------------
// The controller.

/// The writes of a sync, sent to the API.
pub struct KubeControl {
    client: Client,
    recorder: Recorder,
}

impl KubeControl {
    pub fn new(client: Client) -> Self {
        Self {
            recorder: Recorder::new(client.clone(), COMPONENT),
            client,
        }
    }
}

fn pods_api(client: &Client, pod: &Pod) -> Api<Pod> {
    Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or(""),
    )
}

/// Upstream's `removeTrackingFinalizerPatch`.
fn remove_finalizer_patch() -> serde_json::Value {
    json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}})
}

impl Control for KubeControl {
    fn create_pod(
        &self,
        job: &Job,
        pod: Pod,
    ) -> impl Future<Output = Result<String, kube::Error>> + Send {
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            job.metadata.namespace.as_deref().unwrap_or(""),
        );
        async move {
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            Ok(api.create(&params, &pod).await?.name_any())
        }
    }

    fn delete_pod(
        &self,
        _job: &Job,
        pod: &Pod,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send {
        let api = pods_api(&self.client, pod);
        let name = pod.name_any();
        async move {
            api.delete(&name, &DeleteParams::default())
                .await
                .map(|_| ())
        }
    }

    fn remove_finalizer(&self, pod: &Pod) -> impl Future<Output = Result<(), kube::Error>> + Send {
        let api = pods_api(&self.client, pod);
        let name = pod.name_any();
        async move {
            let params = PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PatchParams::default()
            };
            api.patch(&name, &params, &Patch::Strategic(remove_finalizer_patch()))
                .await
                .map(|_| ())
        }
    }

    fn update_status(&self, job: &Job) -> impl Future<Output = Result<Job, kube::Error>> + Send {
        let api: Api<Job> = Api::namespaced(
            self.client.clone(),
            job.metadata.namespace.as_deref().unwrap_or(""),
        );
        let job = job.clone();
        async move {
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            api.replace_status(&job.name_any(), &params, &job).await
        }
    }

    fn event(&self, job: &Job, warning: bool, reason: &str, message: String) {
        let recorder = self.recorder.clone();
        let job = job.clone();
        let reason = reason.to_owned();
        tokio::spawn(async move {
            if warning {
                recorder.warning(&job, &reason, message).await;
            } else {
                recorder.normal(&job, &reason, message).await;
            }
        });
    }
}

struct State {
    ctx: Arc<Context>,
    jobs: Store<Job>,
    pods: Arc<OwnerIndex<Pod>>,
    control: KubeControl,
    memory: Memory,
    failures: Mutex<HashMap<String, u32>>,
}

fn selector_of(job: &Job) -> Result<Option<LabelSelector>> {
    job.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .map(|s| {
            LabelSelector::from_k8s(s)
                .map_err(|e| Error::Invalid(format!("couldn't convert Job selector: {e}")))
        })
        .transpose()
}

fn selects(selector: &Option<LabelSelector>, pod: &Pod) -> bool {
    let empty = BTreeMap::new();
    selector
        .as_ref()
        .is_some_and(|s| s.matches(pod.metadata.labels.as_ref().unwrap_or(&empty)))
}

impl State {
    /// The Jobs a pod's change concerns (upstream's pod event handlers).
    fn jobs_of(&self, pod: &Pod) -> Vec<ObjectRef<Job>> {
        let moved = self.pods.observe(pod);
        let mut out: Vec<ObjectRef<Job>> = [&moved.before, &moved.after]
            .into_iter()
            .flatten()
            .filter(|c| c.kind == "Job")
            .map(|c| ObjectRef::new(&c.name).within(&moved.namespace))
            .collect();
        if moved.exists && moved.after.is_none() {
            for job in self.jobs.state() {
                if job.metadata.namespace.as_deref() == Some(moved.namespace.as_str())
                    && matches!(selector_of(&job), Ok(s) if selects(&s, pod))
                {
                    out.push(ObjectRef::from_obj(&*job));
                }
            }
        }
        out.dedup();
        out
    }
}

/// Sets up the `job` controller (and its orphan pod worker).
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let jobs = informers.store::<Job>();
    let state = Arc::new(State {
        ctx: ctx.clone(),
        jobs: jobs.clone(),
        pods: OwnerIndex::new(informers.store::<Pod>()),
        control: KubeControl::new(ctx.client.clone()),
        memory: Memory::default(),
        failures: Mutex::new(HashMap::new()),
    });
    let for_gone = state.clone();
    let job_changes = informers.subscribe::<Job>().inspect(move |job| {
        if for_gone.jobs.get(&ObjectRef::from_obj(&**job)).is_none() {
            for_gone.memory.forget(&key_of(&job.metadata));
        }
    });
    let for_pods = state.clone();
    let jobs_controller = Controller::for_shared_stream(job_changes, jobs)
        .watches_shared_stream(informers.subscribe::<Pod>(), move |pod: Arc<Pod>| {
            for_pods.jobs_of(&pod)
        });

    // The orphan worker: pods with the finalizer whose Job is gone or finished.
    let for_orphan_jobs = state.clone();
    let orphans = Controller::for_shared_stream(
        informers
            .subscribe::<Pod>()
            .filter(|p| futures::future::ready(sync::has_tracking_finalizer(p))),
        informers.store::<Pod>(),
    )
    .watches_shared_stream(informers.subscribe::<Job>(), move |job: Arc<Job>| {
        let gone = for_orphan_jobs
            .jobs
            .get(&ObjectRef::from_obj(&*job))
            .is_none();
        if !gone && !sync::is_finished(&job) {
            return Vec::new();
        }
        for_orphan_jobs
            .pods
            .controlled_by(job.metadata.uid.as_deref().unwrap_or(""))
            .iter()
            .filter(|p| sync::has_tracking_finalizer(p))
            .map(|p| ObjectRef::from_obj(&**p))
            .collect()
    });

    let synced = futures::future::join(informers.synced::<Job>(), informers.synced::<Pod>());
    let for_orphans = state.clone();
    Ok(Box::pin(async move {
        synced.await;
        futures::future::join(
            jobs_controller
                .run(reconcile, error_policy, state)
                .for_each(|_| async {}),
            orphans
                .run(reconcile_orphan, orphan_error_policy, for_orphans)
                .for_each(|_| async {}),
        )
        .await;
    }))
}

fn error_policy(job: Arc<Job>, error: &Error, state: Arc<State>) -> Action {
    let key = key_of(&job.metadata);
    let mut failures = state.failures.lock();
    let n = failures.entry(key.clone()).or_default();
    *n = n.saturating_add(1);
    // Upstream's Job queue: 1 s doubling, at most a minute.
    let delay = Duration::from_secs(1u64 << (*n - 1).min(6)).min(Duration::from_secs(60));
    tracing::debug!(%key, %error, ?delay, "job sync failed; retrying");
    Action::requeue(delay)
}

async fn reconcile(job: Arc<Job>, state: Arc<State>) -> Result<Action> {
    let key = key_of(&job.metadata);
    let result = reconcile_job(&job, &state).await;
    if result.is_ok() {
        state.failures.lock().remove(&key);
    }
    result
}

async fn reconcile_job(job: &Arc<Job>, state: &State) -> Result<Action> {
    let key = key_of(&job.metadata);
    if sync::is_finished(job) {
        state.memory.forget(&key);
        return Ok(Action::await_change());
    }
    let namespace = job.namespace().unwrap_or_default();
    let all = state.pods.candidates(&job.metadata);
    let satisfied = state.memory.expectations.satisfied(
        &key,
        Instant::now(),
        |n| all.iter().any(|p| p.metadata.name.as_deref() == Some(n)),
        |u| {
            !all.iter().any(|p| {
                p.metadata.uid.as_deref() == Some(u) && p.metadata.deletion_timestamp.is_none()
            })
        },
    );
    let selector = selector_of(job)?;
    let claimed = claim(&job.metadata, |p: &Pod| selects(&selector, p), all);
    let mut owned = claimed.owned;
    let api: Api<Pod> = Api::namespaced(state.ctx.client.clone(), &namespace);
    if !claimed.adopt.is_empty() && can_adopt(state, job).await? {
        let controller_ref = pods::controller_ref(&**job);
        for pod in &claimed.adopt {
            let uid = pod.metadata.uid.as_deref().unwrap_or("");
            let mut patch = owners::adopt_patch(&controller_ref, uid);
            patch["metadata"]["finalizers"] = json!([TRACKING_FINALIZER]);
            if let Some(adopted) =
                owners::patch_ownership(&api, &pod.name_any(), &patch, false).await?
            {
                owned.push(Arc::new(adopted));
            }
        }
    }
    for pod in &claimed.release {
        let patch = owners::release_patch(
            job.metadata.uid.as_deref().unwrap_or(""),
            pod.metadata.uid.as_deref().unwrap_or(""),
        );
        owners::patch_ownership(&api, &pod.name_any(), &patch, true).await?;
    }
    match sync_job(
        &state.control,
        &state.memory,
        job,
        &owned,
        satisfied,
        Timestamp::now(),
    )
    .await
    {
        Ok(Some(after)) => Ok(Action::requeue(after)),
        Ok(None) => Ok(Action::await_change()),
        // The Job is gone: the next event says so.
        Err(Error::Kube(kube::Error::Api(s))) if s.is_not_found() => Ok(Action::await_change()),
        Err(e) => Err(e),
    }
}

/// Upstream's `RecheckDeletionTimestamp`: adopt only for a Job that is still the same one
/// and not being deleted, read from the API rather than the cache.
async fn can_adopt(state: &State, job: &Job) -> Result<bool> {
    let api: Api<Job> = Api::namespaced(
        state.ctx.client.clone(),
        job.metadata.namespace.as_deref().unwrap_or(""),
    );
    let fresh = api.get(&job.name_any()).await?;
    Ok(fresh.metadata.uid == job.metadata.uid && fresh.metadata.deletion_timestamp.is_none())
}

fn orphan_error_policy(_: Arc<Pod>, error: &Error, _: Arc<State>) -> Action {
    tracing::debug!(%error, "removing an orphan pod's job-tracking finalizer failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// Whether an orphan worker removes the tracking finalizer of `pod` (upstream's
/// `syncOrphanPod`): an orphan, or a pod of a batch/v1 Job that is gone or finished.
pub fn orphan_needs_release(pod: &Pod, job: Option<&Job>) -> bool {
    if !sync::has_tracking_finalizer(pod) {
        return false;
    }
    let Some(r) = pods::controller_of(&pod.metadata) else {
        return true;
    };
    if r.kind != "Job" || r.api_version != "batch/v1" {
        return false;
    }
    match job.filter(|j| j.metadata.uid.as_deref() == Some(r.uid.as_str())) {
        Some(j)
            if j.spec
                .as_ref()
                .and_then(|s| s.managed_by.as_deref())
                .is_some_and(|m| m != MANAGED_BY) =>
        {
            false
        }
        Some(j) => sync::is_finished(j),
        None => true,
    }
}

async fn reconcile_orphan(pod: Arc<Pod>, state: Arc<State>) -> Result<Action> {
    let job = pods::controller_of(&pod.metadata).and_then(|r| {
        state
            .jobs
            .get(&ObjectRef::new(&r.name).within(pod.metadata.namespace.as_deref().unwrap_or("")))
    });
    if !orphan_needs_release(&pod, job.as_deref()) {
        return Ok(Action::await_change());
    }
    match state.control.remove_finalizer(&pod).await {
        Ok(()) => Ok(Action::await_change()),
        Err(e) if status_code(&e) == Some(404) => Ok(Action::await_change()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests;
