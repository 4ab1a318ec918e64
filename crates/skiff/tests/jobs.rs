//! Integration: Jobs, CronJobs and the TTL-after-finished controller through the in-process
//! server, driven by the real kubectl and kube-rs; the server's scheduler binds the pods to
//! its three simulated nodes, which run them (`sim.skiff.dev/run-for` and
//! `sim.skiff.dev/exit-code` on the pod template say how long a pod runs and how it ends).
//!
//! Scenarios: a Job's completions run `parallelism` at a time to `Complete`; a Job whose pods
//! fail backs off and fails with `BackoffLimitExceeded`; an Indexed Job; a Job whose running
//! pod is deleted by hand counts it as failed and still completes; a finished Job with
//! `ttlSecondsAfterFinished` is deleted with its pods; a CronJob every minute creates its
//! Job (one bounded wait for the minute); a bad schedule or time zone is refused with 422.

mod common;

use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use common::{wait_for, Cluster};

const WAIT: Duration = Duration::from_secs(60);

fn job_yaml(name: &str, spec: &str, annotations: &str) -> String {
    format!(
        r#"
apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{spec}
  template:
    metadata:
      annotations:
{annotations}
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
"#
    )
}

async fn condition(jobs: &Api<Job>, name: &str, type_: &str) -> Result<Option<Job>> {
    let job = jobs.get(name).await?;
    let met = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"));
    Ok(met.then_some(job))
}

fn reasons(events: &[Event]) -> Vec<String> {
    events.iter().filter_map(|e| e.reason.clone()).collect()
}

async fn events_of(client: &Client, kind: &str, name: &str) -> Result<Vec<Event>> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let list = api
        .list(&ListParams::default().fields(&format!(
            "involvedObject.name={name},involvedObject.kind={kind}"
        )))
        .await?;
    Ok(list.items)
}

async fn job_completes_parallelism_at_a_time(cluster: &Cluster) -> Result<()> {
    let yaml = job_yaml(
        "pi",
        "  completions: 3\n  parallelism: 2",
        "        sim.skiff.dev/run-for: 1s",
    );
    cluster.kubectl_stdin(&["apply", "-f", "-"], Some(&yaml))?;
    cluster.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/pi",
        "--timeout=60s",
    ])?;
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), "default");
    let job = jobs.get("pi").await?;
    let status = job.status.clone().context("a status")?;
    ensure!(status.succeeded == Some(3), "succeeded: {status:?}");
    ensure!(
        status.failed.is_none() && status.active.is_none(),
        "{status:?}"
    );
    ensure!(
        status.ready == Some(0) && status.terminating == Some(0),
        "{status:?}"
    );
    ensure!(status.start_time.is_some() && status.completion_time.is_some());
    let conditions: Vec<(String, Option<String>)> = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.type_, c.reason))
        .collect();
    ensure!(
        conditions
            == vec![
                (
                    "SuccessCriteriaMet".into(),
                    Some("CompletionsReached".into())
                ),
                ("Complete".into(), Some("CompletionsReached".into())),
            ],
        "{conditions:?}"
    );
    // Every pod: labelled, owned, counted (its finalizer gone).
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let list = pods
        .list(&ListParams::default().labels("job-name=pi"))
        .await?;
    ensure!(list.items.len() == 3, "three pods: {}", list.items.len());
    for p in &list.items {
        let labels = p.labels();
        ensure!(
            labels
                .get("batch.kubernetes.io/job-name")
                .map(String::as_str)
                == Some("pi")
        );
        ensure!(labels.get("batch.kubernetes.io/controller-uid") == job.metadata.uid.as_ref());
        ensure!(
            p.finalizers().is_empty(),
            "counted pods lose the finalizer: {:?}",
            p.finalizers()
        );
        ensure!(p.name_any().starts_with("pi-"));
    }
    let got = wait_for("the Job's events", WAIT, || async {
        let r = reasons(&events_of(&cluster.client, "Job", "pi").await?);
        Ok((r.iter().filter(|r| *r == "SuccessfulCreate").count() >= 3
            && r.contains(&"Completed".to_owned()))
        .then_some(r))
    })
    .await?;
    ensure!(got.contains(&"Completed".to_owned()));
    let describe = cluster.kubectl(&["describe", "job", "pi"])?;
    ensure!(describe.contains("Created pod: pi-"), "{describe}");
    ensure!(describe.contains("Job completed"), "{describe}");
    let table = cluster.kubectl(&["get", "job", "pi"])?;
    ensure!(table.contains("3/3"), "{table}");
    Ok(())
}

async fn failing_job_exceeds_its_backoff_limit(cluster: &Cluster) -> Result<()> {
    let yaml = job_yaml(
        "broken",
        "  backoffLimit: 1",
        "        sim.skiff.dev/run-for: 100ms\n        sim.skiff.dev/exit-code: \"1\"",
    );
    cluster.kubectl_stdin(&["apply", "-f", "-"], Some(&yaml))?;
    // Two failures, 10 s of backoff between them.
    cluster.kubectl(&[
        "wait",
        "--for=condition=failed",
        "job/broken",
        "--timeout=60s",
    ])?;
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), "default");
    let job = jobs.get("broken").await?;
    let status = job.status.clone().context("a status")?;
    ensure!(status.failed == Some(2), "{status:?}");
    ensure!(
        status.succeeded.is_none() && status.completion_time.is_none(),
        "{status:?}"
    );
    let failed = status
        .conditions
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .context("a Failed condition")?;
    ensure!(
        failed.reason.as_deref() == Some("BackoffLimitExceeded"),
        "{failed:?}"
    );
    ensure!(failed.message.as_deref() == Some("Job has reached the specified backoff limit"));
    let r = wait_for("the BackoffLimitExceeded event", WAIT, || async {
        let r = reasons(&events_of(&cluster.client, "Job", "broken").await?);
        Ok(r.contains(&"BackoffLimitExceeded".to_owned()).then_some(r))
    })
    .await?;
    ensure!(
        r.iter().filter(|r| *r == "SuccessfulCreate").count() == 2,
        "{r:?}"
    );
    Ok(())
}

async fn indexed_job_runs_each_index(cluster: &Cluster) -> Result<()> {
    let yaml = job_yaml(
        "indexed",
        "  completions: 3\n  parallelism: 3\n  completionMode: Indexed",
        "        sim.skiff.dev/run-for: 1s",
    );
    cluster.kubectl_stdin(&["apply", "-f", "-"], Some(&yaml))?;
    cluster.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/indexed",
        "--timeout=60s",
    ])?;
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), "default");
    let status = jobs.get("indexed").await?.status.context("a status")?;
    ensure!(
        status.completed_indexes.as_deref() == Some("0-2"),
        "{status:?}"
    );
    ensure!(status.succeeded == Some(3));
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let list = pods
        .list(&ListParams::default().labels("job-name=indexed"))
        .await?;
    let mut seen: Vec<(String, String)> = list
        .items
        .iter()
        .map(|p| {
            let ix = p
                .labels()
                .get("batch.kubernetes.io/job-completion-index")
                .cloned()
                .unwrap_or_default();
            let host = p
                .spec
                .as_ref()
                .and_then(|s| s.hostname.clone())
                .unwrap_or_default();
            (ix, host)
        })
        .collect();
    seen.sort();
    ensure!(
        seen == vec![
            ("0".into(), "indexed-0".into()),
            ("1".into(), "indexed-1".into()),
            ("2".into(), "indexed-2".into())
        ],
        "{seen:?}"
    );
    for p in &list.items {
        let ix = p
            .labels()
            .get("batch.kubernetes.io/job-completion-index")
            .cloned()
            .unwrap_or_default();
        ensure!(
            p.name_any().starts_with(&format!("indexed-{ix}-")),
            "{}",
            p.name_any()
        );
        ensure!(
            p.annotations()
                .get("batch.kubernetes.io/job-completion-index")
                == Some(&ix)
        );
    }
    Ok(())
}

async fn pods_deleted_by_hand_are_counted(cluster: &Cluster) -> Result<()> {
    let yaml = job_yaml(
        "handy",
        "  completions: 2\n  parallelism: 2",
        "        sim.skiff.dev/run-for: 6s",
    );
    cluster.kubectl_stdin(&["apply", "-f", "-"], Some(&yaml))?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    let victim = wait_for("a running pod of the Job", WAIT, || async {
        let list = pods
            .list(&ListParams::default().labels("job-name=handy"))
            .await?;
        Ok(list
            .items
            .into_iter()
            .find(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .map(|p| p.name_any()))
    })
    .await?;
    cluster.kubectl(&["delete", "pod", &victim, "--wait=false"])?;
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), "default");
    wait_for("the deleted pod counted as failed", WAIT, || async {
        Ok(jobs
            .get("handy")
            .await?
            .status
            .and_then(|s| s.failed)
            .filter(|f| *f == 1))
    })
    .await?;
    // Its finalizer is gone, so the deletion finishes.
    wait_for("the deleted pod gone", WAIT, || async {
        Ok(pods.get_opt(&victim).await?.is_none().then_some(()))
    })
    .await?;
    // The replacement comes after the 10 s backoff and runs 6 s.
    let done = wait_for("the Job complete", Duration::from_secs(90), || async {
        condition(&jobs, "handy", "Complete").await
    })
    .await?;
    let status = done.status.context("a status")?;
    ensure!(
        status.succeeded == Some(2) && status.failed == Some(1),
        "{status:?}"
    );
    Ok(())
}

async fn finished_jobs_are_deleted_after_their_ttl(cluster: &Cluster) -> Result<()> {
    let yaml = job_yaml(
        "brief",
        "  ttlSecondsAfterFinished: 2",
        "        sim.skiff.dev/run-for: 500ms",
    );
    cluster.kubectl_stdin(&["apply", "-f", "-"], Some(&yaml))?;
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), "default");
    let job = wait_for("the Job complete", WAIT, || async {
        condition(&jobs, "brief", "Complete").await
    })
    .await?;
    let uid = job.metadata.uid.clone().unwrap_or_default();
    wait_for("the Job deleted after its TTL", WAIT, || async {
        Ok(match jobs.get_opt("brief").await? {
            None => Some(()),
            Some(j) if j.metadata.uid.as_deref() != Some(uid.as_str()) => Some(()),
            Some(_) => None,
        })
    })
    .await?;
    let pods: Api<Pod> = Api::namespaced(cluster.client.clone(), "default");
    wait_for("its pods deleted too", WAIT, || async {
        Ok(pods
            .list(&ListParams::default().labels("job-name=brief"))
            .await?
            .items
            .is_empty()
            .then_some(()))
    })
    .await?;
    Ok(())
}

async fn bad_schedules_and_time_zones_are_refused(cluster: &Cluster) -> Result<()> {
    let out = cluster.kubectl_output(
        &[
            "create",
            "cronjob",
            "bad",
            "--image=busybox",
            "--schedule=bad",
        ],
        None,
    )?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success(), "a bad schedule is refused");
    ensure!(
        stderr.contains(
            r#"spec.schedule: Invalid value: "bad": expected exactly 5 fields, found 1: [bad]"#
        ),
        "{stderr}"
    );
    ensure!(stderr.contains("is invalid"), "a 422 Invalid: {stderr}");
    let yaml = r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: martian
spec:
  schedule: "0 * * * *"
  timeZone: Mars/Olympus
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: busybox
"#;
    let out = cluster.kubectl_output(&["apply", "-f", "-"], Some(yaml))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(!out.status.success());
    ensure!(
        stderr.contains(
            r#"spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus"#
        ),
        "{stderr}"
    );
    // A real zone is accepted.
    let ok = yaml
        .replace("Mars/Olympus", "Europe/Rome")
        .replace("martian", "roman");
    cluster.kubectl_stdin(&["apply", "-f", "-"], Some(&ok))?;
    Ok(())
}

async fn cronjob_every_minute_creates_its_job(cluster: &Cluster) -> Result<()> {
    let yaml = r#"
apiVersion: batch/v1
kind: CronJob
metadata:
  name: hello
spec:
  schedule: "* * * * *"
  jobTemplate:
    metadata:
      labels:
        from: cron
    spec:
      template:
        metadata:
          annotations:
            sim.skiff.dev/run-for: 500ms
        spec:
          restartPolicy: Never
          containers:
          - name: main
            image: busybox
"#;
    cluster.kubectl_stdin(&["apply", "-f", "-"], Some(yaml))?;
    let cronjobs: Api<CronJob> = Api::namespaced(cluster.client.clone(), "default");
    let cj = cronjobs.get("hello").await?;
    let jobs: Api<Job> = Api::namespaced(cluster.client.clone(), "default");
    // The next minute comes round within 60 s; the Job is created right after it.
    let job = wait_for(
        "the CronJob's first Job",
        Duration::from_secs(80),
        || async {
            Ok(jobs
                .list(&ListParams::default().labels("from=cron"))
                .await?
                .items
                .into_iter()
                .next())
        },
    )
    .await?;
    let name = job.name_any();
    let minutes: i64 = name
        .strip_prefix("hello-")
        .and_then(|m| m.parse().ok())
        .with_context(|| format!("hello-<minutes since the epoch>: {name}"))?;
    let owner = job
        .owner_references()
        .first()
        .cloned()
        .context("an owner")?;
    ensure!(
        owner.kind == "CronJob"
            && Some(&owner.uid) == cj.metadata.uid.as_ref()
            && owner.controller == Some(true)
    );
    let scheduled = job
        .annotations()
        .get("batch.kubernetes.io/cronjob-scheduled-timestamp")
        .cloned()
        .context("the scheduled-timestamp annotation")?;
    let at: k8s_openapi::jiff::Timestamp = scheduled.parse().with_context(|| scheduled.clone())?;
    ensure!(
        at.as_second() == minutes * 60,
        "{scheduled} is minute {minutes}"
    );
    ensure!(scheduled.ends_with('Z'), "RFC 3339 in UTC: {scheduled}");
    // The Job runs; the CronJob sees it complete.
    let cj = wait_for("lastSuccessfulTime", WAIT, || async {
        let cj = cronjobs.get("hello").await?;
        let s = cj.status.clone().unwrap_or_default();
        Ok(
            (s.last_successful_time.is_some() && s.active.as_ref().is_none_or(Vec::is_empty))
                .then_some(cj),
        )
    })
    .await?;
    let status = cj.status.context("a status")?;
    ensure!(
        status.last_schedule_time.map(|t| t.0) == Some(at),
        "lastScheduleTime is the scheduled time"
    );
    let r = reasons(&events_of(&cluster.client, "CronJob", "hello").await?);
    ensure!(r.contains(&"SuccessfulCreate".to_owned()), "{r:?}");
    let describe = cluster.kubectl(&["describe", "cronjob", "hello"])?;
    ensure!(
        describe.contains(&format!("Created job {name}")),
        "{describe}"
    );
    Ok(())
}

on_both_datastores!(nodes: 3;
    job_completes_parallelism_at_a_time,
    failing_job_exceeds_its_backoff_limit,
    indexed_job_runs_each_index,
    pods_deleted_by_hand_are_counted,
    finished_jobs_are_deleted_after_their_ttl,
    bad_schedules_and_time_zones_are_refused,
);

/// The one test that waits for a real minute: on the embedded datastore only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cronjob_every_minute() -> Result<()> {
    let cluster = Cluster::start(common::Datastore::Embedded, 3).await?;
    cronjob_every_minute_creates_its_job(&cluster).await
}
