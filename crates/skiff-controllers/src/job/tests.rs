//! A Job's whole life against a recording double of the API: pods are created, finish or are
//! deleted as the test says, the controller's writes land in memory, and each sync sees
//! what the previous ones wrote (the cache is always current here).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{
    JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateTerminated, ContainerStatus, PodCondition, PodSpec,
    PodStatus, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector as K8sSelector, ObjectMeta, Time,
};
use k8s_openapi::jiff::SignedDuration;

use super::*;

#[derive(Default)]
struct Fake {
    job: Mutex<Job>,
    pods: Mutex<BTreeMap<String, Pod>>,
    events: Mutex<Vec<(String, String)>>,
    counter: Mutex<u32>,
    now: Mutex<Timestamp>,
}

impl Fake {
    fn new(job: Job) -> Self {
        let f = Fake::default();
        *f.job.lock() = job;
        *f.now.lock() = t0();
        f
    }
    fn pods(&self) -> Vec<Pod> {
        self.pods.lock().values().cloned().collect()
    }
    fn status(&self) -> k8s_openapi::api::batch::v1::JobStatus {
        self.job.lock().status.clone().unwrap_or_default()
    }
    fn conditions(&self) -> Vec<(String, String, String)> {
        self.status()
            .conditions
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.type_, c.status, c.reason.unwrap_or_default()))
            .collect()
    }
    fn events(&self) -> Vec<String> {
        self.events
            .lock()
            .iter()
            .map(|(r, m)| format!("{r}: {m}"))
            .collect()
    }
    fn set_phase(&self, name: &str, phase: &str, exit_code: i32) {
        let now = *self.now.lock();
        let mut pods = self.pods.lock();
        let Some(p) = pods.get_mut(name) else {
            panic!("no pod {name}")
        };
        p.status = Some(PodStatus {
            phase: Some(phase.into()),
            container_statuses: Some(vec![ContainerStatus {
                name: "main".into(),
                state: Some(ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code,
                        finished_at: Some(Time(now)),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        });
    }
    fn run_pods(&self) {
        for p in self.pods.lock().values_mut() {
            if p.status.is_none() {
                p.status = Some(PodStatus {
                    phase: Some("Running".into()),
                    conditions: Some(vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        ..Default::default()
                    }]),
                    ..Default::default()
                });
            }
        }
    }
    fn names_in(&self, phase: &str) -> Vec<String> {
        self.pods()
            .into_iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .unwrap_or("Pending")
                    == phase
            })
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter_map(|p| p.metadata.name)
            .collect()
    }
    fn delete_by_hand(&self, name: &str) {
        let now = *self.now.lock();
        if let Some(p) = self.pods.lock().get_mut(name) {
            p.metadata.deletion_timestamp = Some(Time(now));
        }
    }
    fn advance(&self, secs: i64) {
        let mut now = self.now.lock();
        *now = now
            .checked_add(SignedDuration::from_secs(secs))
            .unwrap_or(*now);
    }
    /// Syncs until nothing changes; the last requeue.
    async fn settle(&self, memory: &Memory) -> Option<Duration> {
        let mut last = None;
        for _ in 0..20 {
            let before = (
                format!("{:?}", self.job.lock().status),
                self.pods().len(),
                format!("{:?}", self.pods()),
            );
            let job = self.job.lock().clone();
            let pods: Vec<Arc<Pod>> = self.pods().into_iter().map(Arc::new).collect();
            let now = *self.now.lock();
            last = match sync_job(self, memory, &job, &pods, true, now).await {
                Ok(r) => r,
                Err(e) => panic!("sync failed: {e}"),
            };
            let after = (
                format!("{:?}", self.job.lock().status),
                self.pods().len(),
                format!("{:?}", self.pods()),
            );
            if before == after {
                return last;
            }
        }
        last
    }
}

impl Control for Fake {
    fn create_pod(
        &self,
        _job: &Job,
        mut pod: Pod,
    ) -> impl Future<Output = Result<String, kube::Error>> + Send {
        let n = {
            let mut c = self.counter.lock();
            *c += 1;
            *c
        };
        let name = format!(
            "{}{n:05}",
            pod.metadata.generate_name.clone().unwrap_or_default()
        );
        pod.metadata.name = Some(name.clone());
        pod.metadata.uid = Some(format!("uid-{n}"));
        pod.metadata.creation_timestamp = Some(Time(*self.now.lock()));
        self.pods.lock().insert(name.clone(), pod);
        async move { Ok(name) }
    }

    fn delete_pod(
        &self,
        _job: &Job,
        pod: &Pod,
    ) -> impl Future<Output = Result<(), kube::Error>> + Send {
        let name = pod.name_any();
        let now = *self.now.lock();
        let mut pods = self.pods.lock();
        if let Some(p) = pods.get_mut(&name) {
            if p.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| !f.is_empty())
            {
                p.metadata.deletion_timestamp = Some(Time(now));
            } else {
                pods.remove(&name);
            }
        }
        async { Ok(()) }
    }

    fn remove_finalizer(&self, pod: &Pod) -> impl Future<Output = Result<(), kube::Error>> + Send {
        let name = pod.name_any();
        let mut pods = self.pods.lock();
        if let Some(p) = pods.get_mut(&name) {
            if let Some(f) = p.metadata.finalizers.as_mut() {
                f.retain(|f| f != TRACKING_FINALIZER);
            }
            if p.metadata.deletion_timestamp.is_some()
                && p.metadata.finalizers.as_ref().is_none_or(Vec::is_empty)
            {
                pods.remove(&name);
            }
        }
        async { Ok(()) }
    }

    fn update_status(&self, job: &Job) -> impl Future<Output = Result<Job, kube::Error>> + Send {
        let mut stored = self.job.lock();
        stored.status = job.status.clone();
        let out = stored.clone();
        async move { Ok(out) }
    }

    fn event(&self, _job: &Job, _warning: bool, reason: &str, message: String) {
        self.events.lock().push((reason.to_owned(), message));
    }
}

fn t0() -> Timestamp {
    Timestamp::from_second(1_700_000_000).unwrap_or(Timestamp::UNIX_EPOCH)
}

fn job(change: impl FnOnce(&mut JobSpec)) -> Job {
    let labels = BTreeMap::from([("batch.kubernetes.io/job-name".to_owned(), "pi".to_owned())]);
    let mut spec = JobSpec {
        completions: Some(1),
        parallelism: Some(1),
        backoff_limit: Some(6),
        completion_mode: Some("NonIndexed".into()),
        pod_replacement_policy: Some("TerminatingOrFailed".into()),
        suspend: Some(false),
        selector: Some(K8sSelector {
            match_labels: Some(labels.clone()),
            ..Default::default()
        }),
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(labels),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "main".into(),
                    image: Some("busybox".into()),
                    ..Default::default()
                }],
                restart_policy: Some("Never".into()),
                ..Default::default()
            }),
        },
        ..Default::default()
    };
    change(&mut spec);
    Job {
        metadata: ObjectMeta {
            name: Some("pi".into()),
            namespace: Some("default".into()),
            uid: Some("job-uid".into()),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

#[tokio::test]
async fn a_job_runs_its_completions_parallelism_at_a_time_and_completes() {
    let fake = Fake::new(job(|s| {
        s.completions = Some(3);
        s.parallelism = Some(2);
    }));
    let memory = Memory::default();
    fake.settle(&memory).await;
    let pods = fake.pods();
    assert_eq!(pods.len(), 2);
    let pod = &pods[0];
    assert_eq!(pod.metadata.generate_name.as_deref(), Some("pi-"));
    assert_eq!(
        pod.metadata.finalizers.as_deref(),
        Some(&[TRACKING_FINALIZER.to_owned()][..])
    );
    let r =
        pods::controller_of(&pod.metadata).map(|r| (r.kind.clone(), r.name.clone(), r.uid.clone()));
    assert_eq!(r, Some(("Job".into(), "pi".into(), "job-uid".into())));
    let s = fake.status();
    assert_eq!(
        (s.active, s.ready, s.terminating),
        (Some(2), Some(0), Some(0))
    );
    assert_eq!(s.start_time.map(|t| t.0), Some(t0()));

    fake.run_pods();
    fake.settle(&memory).await;
    assert_eq!(fake.status().ready, Some(2));

    for name in fake.names_in("Running") {
        fake.set_phase(&name, "Succeeded", 0);
    }
    fake.settle(&memory).await;
    let s = fake.status();
    assert_eq!((s.succeeded, s.active), (Some(2), Some(1)));
    // Counted pods lost their finalizer.
    assert!(fake
        .pods()
        .iter()
        .filter(|p| p.metadata.name.is_some())
        .all(|p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Succeeded")
                || !sync::has_tracking_finalizer(p)
        }));

    fake.run_pods();
    for name in fake.names_in("Running") {
        fake.set_phase(&name, "Succeeded", 0);
    }
    fake.settle(&memory).await;
    let s = fake.status();
    assert_eq!(s.succeeded, Some(3));
    assert_eq!(s.active, None);
    assert_eq!(
        fake.conditions(),
        vec![
            (
                "SuccessCriteriaMet".into(),
                "True".into(),
                "CompletionsReached".into()
            ),
            (
                "Complete".into(),
                "True".into(),
                "CompletionsReached".into()
            ),
        ]
    );
    assert!(s.completion_time.is_some());
    let events = fake.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("SuccessfulCreate: Created pod: pi-"))
            .count(),
        3
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("Completed: Job completed")
    );
    // The status as upstream encodes it.
    let encoded = serde_json::to_value(fake.status()).unwrap_or_default();
    assert_eq!(encoded["uncountedTerminatedPods"], json!({}));
    assert_eq!(encoded["ready"], json!(0));
    assert_eq!(encoded["terminating"], json!(0));
    assert!(encoded.get("failed").is_none() && encoded.get("active").is_none());
    // A finished Job is left alone.
    let before = fake.events().len();
    fake.settle(&memory).await;
    assert_eq!(fake.events().len(), before);
}

#[tokio::test]
async fn failures_back_off_then_exceed_the_backoff_limit() {
    let fake = Fake::new(job(|s| s.backoff_limit = Some(1)));
    let memory = Memory::default();
    fake.settle(&memory).await;
    let first = fake.names_in("Pending");
    assert_eq!(first.len(), 1);
    fake.set_phase(&first[0], "Failed", 1);
    // Counted as failed; the replacement waits 10 s.
    let requeue = fake.settle(&memory).await;
    assert_eq!(fake.status().failed, Some(1));
    assert_eq!(requeue, Some(Duration::from_secs(10)));
    assert_eq!(fake.names_in("Pending").len(), 0);
    fake.advance(4);
    assert_eq!(fake.settle(&memory).await, Some(Duration::from_secs(6)));
    fake.advance(6);
    fake.settle(&memory).await;
    let second = fake.names_in("Pending");
    assert_eq!(second.len(), 1);
    fake.set_phase(&second[0], "Failed", 1);
    fake.settle(&memory).await;
    let s = fake.status();
    assert_eq!(s.failed, Some(2));
    assert_eq!(
        fake.conditions(),
        vec![
            (
                "FailureTarget".into(),
                "True".into(),
                "BackoffLimitExceeded".into()
            ),
            (
                "Failed".into(),
                "True".into(),
                "BackoffLimitExceeded".into()
            ),
        ]
    );
    assert!(s.completion_time.is_none());
    assert_eq!(
        fake.events().last().map(String::as_str),
        Some("BackoffLimitExceeded: Job has reached the specified backoff limit")
    );
    // Every pod is counted and free of the finalizer.
    assert!(fake.pods().iter().all(|p| !sync::has_tracking_finalizer(p)));
}

#[tokio::test]
async fn the_active_deadline_fails_the_job_after_its_pods_are_gone() {
    let fake = Fake::new(job(|s| s.active_deadline_seconds = Some(5)));
    let memory = Memory::default();
    let requeue = fake.settle(&memory).await;
    assert_eq!(requeue, Some(Duration::from_secs(5)));
    fake.run_pods();
    fake.advance(6);
    fake.settle(&memory).await;
    let s = fake.status();
    assert_eq!(s.failed, Some(1));
    assert_eq!(
        fake.pods().len(),
        0,
        "the active pod was deleted and counted"
    );
    assert_eq!(
        fake.conditions().last(),
        Some(&("Failed".into(), "True".into(), "DeadlineExceeded".into()))
    );
    assert!(fake
        .events()
        .contains(&"DeadlineExceeded: Job was active longer than specified deadline".to_owned()));
}

#[tokio::test]
async fn an_indexed_job_runs_each_index_once() {
    let fake = Fake::new(job(|s| {
        s.completions = Some(3);
        s.parallelism = Some(2);
        s.completion_mode = Some("Indexed".into());
    }));
    let memory = Memory::default();
    fake.settle(&memory).await;
    let mut pods = fake.pods();
    pods.sort_by_key(indexed::completion_index);
    let ix: Vec<Option<i64>> = pods.iter().map(indexed::completion_index).collect();
    assert_eq!(ix, vec![Some(0), Some(1)]);
    let p1 = &pods[1];
    assert_eq!(p1.metadata.generate_name.as_deref(), Some("pi-1-"));
    assert_eq!(
        p1.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(indexed::COMPLETION_INDEX))
            .map(String::as_str),
        Some("1")
    );
    let spec = p1
        .spec
        .as_ref()
        .map(|s| (s.hostname.clone(), s.containers[0].env.clone()));
    let (hostname, env) = spec.unwrap_or_default();
    assert_eq!(hostname.as_deref(), Some("pi-1"));
    let env = env.unwrap_or_default();
    assert_eq!(env[0].name, "JOB_COMPLETION_INDEX");
    let path = env[0]
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .map(|f| f.field_path.clone());
    assert_eq!(
        path.as_deref(),
        Some("metadata.labels['batch.kubernetes.io/job-completion-index']")
    );

    let name1 = p1.name_any();
    fake.set_phase(&name1, "Succeeded", 0);
    fake.settle(&memory).await;
    assert_eq!(fake.status().completed_indexes.as_deref(), Some("1"));
    let running: Vec<Option<i64>> = fake
        .pods()
        .iter()
        .filter(|p| pods::is_active(p))
        .map(indexed::completion_index)
        .collect();
    assert_eq!(running.len(), 2);
    assert!(running.contains(&Some(0)) && running.contains(&Some(2)));
    for p in fake.pods().iter().filter(|p| pods::is_active(p)) {
        fake.set_phase(&p.name_any(), "Succeeded", 0);
    }
    fake.settle(&memory).await;
    let s = fake.status();
    assert_eq!(
        (s.completed_indexes.as_deref(), s.succeeded),
        (Some("0-2"), Some(3))
    );
    assert_eq!(
        fake.conditions().last().map(|c| c.0.as_str()),
        Some("Complete")
    );
}

#[tokio::test]
async fn pods_deleted_by_hand_are_counted_as_failed_and_replaced() {
    let fake = Fake::new(job(|s| {
        s.completions = Some(2);
        s.parallelism = Some(2);
    }));
    let memory = Memory::default();
    fake.settle(&memory).await;
    fake.run_pods();
    let names = fake.names_in("Running");
    fake.delete_by_hand(&names[0]);
    fake.settle(&memory).await;
    let s = fake.status();
    assert_eq!(s.failed, Some(1));
    assert!(
        !fake.pods.lock().contains_key(&names[0]),
        "its finalizer went, so the pod went"
    );
    fake.advance(10);
    fake.settle(&memory).await;
    assert_eq!(
        fake.names_in("Pending").len(),
        1,
        "a replacement (after the backoff)"
    );
    fake.run_pods();
    for n in fake.names_in("Running") {
        fake.set_phase(&n, "Succeeded", 0);
    }
    // A succeeded pod deleted before the sync is still counted once.
    let done = fake.names_in("Succeeded");
    fake.delete_by_hand(&done[0]);
    fake.settle(&memory).await;
    let s = fake.status();
    assert_eq!((s.succeeded, s.failed), (Some(2), Some(1)));
    assert_eq!(
        fake.conditions().last().map(|c| c.0.as_str()),
        Some("Complete")
    );
}

#[tokio::test]
async fn suspend_deletes_active_pods_and_resume_restarts_the_clock() {
    let fake = Fake::new(job(|s| s.parallelism = Some(1)));
    let memory = Memory::default();
    fake.settle(&memory).await;
    fake.run_pods();
    if let Some(s) = fake.job.lock().spec.as_mut() {
        s.suspend = Some(true);
    }
    fake.settle(&memory).await;
    assert!(fake.names_in("Running").is_empty());
    assert_eq!(
        fake.conditions(),
        vec![("Suspended".into(), "True".into(), "JobSuspended".into())]
    );
    let s = fake.status();
    assert_eq!(
        (s.active, s.failed),
        (None, None),
        "a suspended pod is not a failure"
    );
    assert!(fake
        .events()
        .contains(&"Suspended: Job suspended".to_owned()));
    fake.advance(30);
    if let Some(s) = fake.job.lock().spec.as_mut() {
        s.suspend = Some(false);
    }
    fake.settle(&memory).await;
    assert_eq!(
        fake.conditions(),
        vec![("Suspended".into(), "False".into(), "JobResumed".into())]
    );
    assert!(fake.events().contains(&"Resumed: Job resumed".to_owned()));
    assert_eq!(
        fake.status().start_time.map(|t| t.0),
        fake.now.lock().checked_add(SignedDuration::ZERO).ok()
    );
    assert_eq!(fake.names_in("Pending").len(), 1);
}

fn exit_rule(action: &str, values: &[i32]) -> PodFailurePolicyRule {
    PodFailurePolicyRule {
        action: action.into(),
        on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
            container_name: None,
            operator: "In".into(),
            values: values.to_vec(),
        }),
        on_pod_conditions: None,
    }
}

#[tokio::test]
async fn the_pod_failure_policy_ignores_or_fails_the_job() {
    let fake = Fake::new(job(|s| {
        s.pod_replacement_policy = Some("Failed".into());
        s.pod_failure_policy = Some(PodFailurePolicy {
            rules: vec![exit_rule("Ignore", &[3]), exit_rule("FailJob", &[42])],
        });
    }));
    let memory = Memory::default();
    fake.settle(&memory).await;
    let p = fake.names_in("Pending");
    fake.set_phase(&p[0], "Failed", 3);
    fake.settle(&memory).await;
    assert_eq!(
        fake.status().failed,
        None,
        "an ignored failure is not counted"
    );
    // It still backs off, as upstream's backoff record takes every failed pod.
    fake.advance(10);
    fake.settle(&memory).await;
    let p = fake.names_in("Pending");
    assert_eq!(p.len(), 1, "and is replaced");
    fake.set_phase(&p[0], "Failed", 42);
    fake.settle(&memory).await;
    let s = fake.status();
    assert_eq!(s.failed, Some(1));
    assert_eq!(
        fake.conditions(),
        vec![
            (
                "FailureTarget".into(),
                "True".into(),
                "PodFailurePolicy".into()
            ),
            ("Failed".into(), "True".into(), "PodFailurePolicy".into()),
        ]
    );
    let message = s.conditions.unwrap_or_default()[1]
        .message
        .clone()
        .unwrap_or_default();
    assert_eq!(
        message,
        format!("Container main for pod default/{} failed with exit code 42 matching FailJob rule at index 1", p[0])
    );
}

#[tokio::test]
async fn backoff_limit_per_index_fails_the_index_and_then_the_job() {
    let fake = Fake::new(job(|s| {
        s.completions = Some(2);
        s.parallelism = Some(2);
        s.completion_mode = Some("Indexed".into());
        s.backoff_limit = None;
        s.backoff_limit_per_index = Some(0);
        s.pod_replacement_policy = Some("Failed".into());
    }));
    let memory = Memory::default();
    fake.settle(&memory).await;
    let pods = fake.pods();
    assert!(pods.iter().all(|p| p
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(indexed::INDEX_FAILURE_COUNT))
        .is_some_and(|v| v == "0")));
    for p in &pods {
        match indexed::completion_index(p) {
            Some(0) => fake.set_phase(&p.name_any(), "Failed", 1),
            _ => fake.set_phase(&p.name_any(), "Succeeded", 0),
        }
    }
    fake.settle(&memory).await;
    let s = fake.status();
    assert_eq!(
        (s.failed_indexes.as_deref(), s.completed_indexes.as_deref()),
        (Some("0"), Some("1"))
    );
    assert_eq!(
        fake.conditions().last(),
        Some(&("Failed".into(), "True".into(), "FailedIndexes".into()))
    );
}

#[test]
fn orphan_pods_lose_the_finalizer_only_without_a_live_job() {
    let j = job(|_| {});
    let mut pod = sync::pod_for(
        &j,
        &sync::NewPod {
            index: None,
            failure_counts: None,
        },
    );
    assert!(orphan_needs_release(&pod, None), "its Job is gone");
    assert!(!orphan_needs_release(&pod, Some(&j)), "its Job runs");
    let mut finished = j.clone();
    finished.status = Some(k8s_openapi::api::batch::v1::JobStatus {
        conditions: Some(vec![sync::condition("Complete", "True", "", "", t0())]),
        ..Default::default()
    });
    assert!(orphan_needs_release(&pod, Some(&finished)));
    pod.metadata.owner_references = None;
    assert!(orphan_needs_release(&pod, None), "an orphan");
    pod.metadata.finalizers = None;
    assert!(!orphan_needs_release(&pod, None));
}

#[test]
fn deletion_prefers_unscheduled_pending_unready_then_newer_pods() {
    let mk = |name: &str, node: Option<&str>, phase: &str, ready: bool, created: i64| Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            creation_timestamp: Some(Time(
                t0().checked_add(SignedDuration::from_secs(created))
                    .unwrap_or(t0()),
            )),
            ..Default::default()
        },
        spec: Some(PodSpec {
            node_name: node.map(Into::into),
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            conditions: ready.then(|| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    };
    let pods = [
        mk("ready-old", Some("n"), "Running", true, 0),
        mk("unscheduled", None, "Pending", false, 0),
        mk("running-unready", Some("n"), "Running", false, 0),
        mk("pending", Some("n"), "Pending", false, 0),
        mk("ready-new", Some("n"), "Running", true, 10),
    ];
    let mut refs: Vec<&Pod> = pods.iter().collect();
    refs.sort_by(|a, b| sync::deletion_order(a, b));
    let names: Vec<&str> = refs
        .iter()
        .map(|p| p.metadata.name.as_deref().unwrap_or(""))
        .collect();
    assert_eq!(
        names,
        [
            "unscheduled",
            "pending",
            "running-unready",
            "ready-new",
            "ready-old"
        ]
    );
}

#[test]
fn duplicate_and_out_of_range_indexes_are_removed_first() {
    let j = job(|s| {
        s.completions = Some(2);
        s.completion_mode = Some("Indexed".into());
    });
    let mk = |name: &str, ix: Option<&str>| Pod {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: ix
                .map(|i| BTreeMap::from([(indexed::COMPLETION_INDEX.to_owned(), i.to_owned())])),
            ..Default::default()
        },
        ..Default::default()
    };
    let pods = [
        mk("a0", Some("0")),
        mk("b0", Some("0")),
        mk("c5", Some("5")),
        mk("none", None),
        mk("d1", Some("1")),
    ];
    let refs: Vec<&Pod> = pods.iter().collect();
    let rm = sync::active_pods_for_removal(&j, &refs, 0);
    let mut names: Vec<&str> = rm
        .iter()
        .map(|p| p.metadata.name.as_deref().unwrap_or(""))
        .collect();
    names.sort_unstable();
    assert_eq!(names.len(), 3);
    assert!(names.contains(&"c5") && names.contains(&"none"));
    assert!(names.contains(&"a0") ^ names.contains(&"b0"));
}

#[test]
fn success_policy_meets_the_criteria_early() {
    let j = job(|s| {
        s.completions = Some(5);
        s.completion_mode = Some("Indexed".into());
        s.success_policy = Some(k8s_openapi::api::batch::v1::SuccessPolicy {
            rules: vec![k8s_openapi::api::batch::v1::SuccessPolicyRule {
                succeeded_indexes: Some("0-2".into()),
                succeeded_count: Some(2),
            }],
        });
    });
    let mk = |ix: &str| Pod {
        metadata: ObjectMeta {
            uid: Some(format!("u{ix}")),
            annotations: Some(BTreeMap::from([(
                indexed::COMPLETION_INDEX.to_owned(),
                ix.to_owned(),
            )])),
            finalizers: Some(vec![TRACKING_FINALIZER.into()]),
            ..Default::default()
        },
        status: Some(PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let (p0, p4, p2) = (mk("0"), mk("4"), mk("2"));
    let a = sync::assess(
        &j,
        vec![&p0, &p4],
        t0(),
        backoff::Record::default(),
        HashSet::new(),
    );
    assert!(a.finished.is_none());
    let a = sync::assess(
        &j,
        vec![&p0, &p4, &p2],
        t0(),
        backoff::Record::default(),
        HashSet::new(),
    );
    let f = a
        .finished
        .unwrap_or_else(|| sync::condition("", "", "", "", t0()));
    assert_eq!(
        (f.type_.as_str(), f.reason.as_deref()),
        ("SuccessCriteriaMet", Some("SuccessPolicy"))
    );
    assert_eq!(f.message.as_deref(), Some("Matched rules at index 0"));
}
