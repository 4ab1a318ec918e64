//! The CronJob decisions at chosen times: missed schedules, deadlines, concurrency
//! policies, time zones, history and the active list.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJobSpec, JobCondition, JobSpec, JobStatus, JobTemplateSpec};

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
}

fn cronjob(schedule: &str, created: &str, change: impl FnOnce(&mut CronJobSpec)) -> CronJob {
    let mut spec = CronJobSpec {
        schedule: schedule.into(),
        concurrency_policy: Some("Allow".into()),
        successful_jobs_history_limit: Some(3),
        failed_jobs_history_limit: Some(1),
        suspend: Some(false),
        job_template: JobTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".to_owned(), "hello".to_owned())])),
                annotations: Some(BTreeMap::from([("note".to_owned(), "kept".to_owned())])),
                ..Default::default()
            }),
            spec: Some(JobSpec {
                backoff_limit: Some(2),
                ..Default::default()
            }),
        },
        ..Default::default()
    };
    change(&mut spec);
    CronJob {
        metadata: ObjectMeta {
            name: Some("hello".into()),
            namespace: Some("default".into()),
            uid: Some("cj-uid".into()),
            creation_timestamp: Some(Time(ts(created))),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

fn with_last(mut cj: CronJob, last: &str) -> CronJob {
    cj.status
        .get_or_insert_with(Default::default)
        .last_schedule_time = Some(Time(ts(last)));
    cj
}

fn sched(cj: &CronJob) -> Schedule {
    let (text, _) = format_schedule(cj);
    match Schedule::parse(&text, &TimeZone::UTC) {
        Ok(s) => s,
        Err(e) => panic!("{text}: {e}"),
    }
}

#[test]
fn most_recent_schedule_times_and_missed_counts() {
    let every_minute = cronjob("* * * * *", "2024-03-01T10:00:30Z", |_| {});
    let s = sched(&every_minute);
    let table: Vec<(&CronJob, &str, bool, Option<&str>, Missed)> = vec![
        (
            &every_minute,
            "2024-03-01T10:00:45Z",
            true,
            None,
            Missed::None,
        ),
        (
            &every_minute,
            "2024-03-01T10:01:10Z",
            true,
            Some("2024-03-01T10:01:00Z"),
            Missed::None,
        ),
        (
            &every_minute,
            "2024-03-01T10:05:10Z",
            true,
            Some("2024-03-01T10:05:00Z"),
            Missed::Few,
        ),
        (
            &every_minute,
            "2024-03-01T12:00:10Z",
            true,
            Some("2024-03-01T12:00:00Z"),
            Missed::Many,
        ),
    ];
    for (cj, now, deadline, want, missed) in table {
        let got = most_recent_schedule_time(cj, ts(now), &s, deadline);
        assert_eq!(
            got.map(|(_, t, m)| (t, m)),
            Ok((want.map(ts), missed)),
            "{now}"
        );
    }
    let last = with_last(every_minute.clone(), "2024-03-01T10:05:00Z");
    assert_eq!(
        most_recent_schedule_time(&last, ts("2024-03-01T10:05:30Z"), &s, true).map(|(_, t, _)| t),
        Ok(None)
    );
    // The starting deadline moves the start of the count: no flood of missed times.
    let deadline = cronjob("* * * * *", "2024-03-01T00:00:00Z", |s| {
        s.starting_deadline_seconds = Some(90)
    });
    assert_eq!(
        most_recent_schedule_time(
            &deadline,
            ts("2024-03-01T12:00:10Z"),
            &sched(&deadline),
            true
        )
        .map(|(_, t, m)| (t, m)),
        Ok((Some(ts("2024-03-01T12:00:00Z")), Missed::Few))
    );
    // A schedule that never comes round is an error, as upstream's.
    let never = cronjob("59 23 31 2 *", "2024-03-01T00:00:00Z", |_| {});
    assert_eq!(
        most_recent_schedule_time(&never, ts("2024-03-02T00:00:00Z"), &sched(&never), true)
            .map(|_| ()),
        Err("time difference between two schedules is less than 1 second".into())
    );
}

#[test]
fn the_requeue_is_the_next_schedule_time_plus_100ms() {
    let cj = cronjob("*/5 * * * *", "2024-03-01T10:00:30Z", |_| {});
    let s = sched(&cj);
    assert_eq!(
        next_schedule_in(&cj, ts("2024-03-01T10:02:00Z"), &s),
        Some(Duration::from_millis(180_100))
    );
    let hourly = cronjob("@hourly", "2024-03-01T10:00:30Z", |_| {});
    assert_eq!(
        next_schedule_in(&hourly, ts("2024-03-01T10:59:59Z"), &sched(&hourly)),
        Some(Duration::from_millis(1_100))
    );
}

#[test]
fn a_due_time_starts_a_job_named_after_its_minute() {
    let cj = cronjob("* * * * *", "2024-03-01T10:00:30Z", |_| {});
    let now = ts("2024-03-01T10:01:00.2Z");
    let (step, events) = plan(&cj, now, &sched(&cj));
    assert!(events.is_empty());
    let Step::Start {
        scheduled,
        job,
        replace,
    } = step
    else {
        panic!("a due time starts a job: {step:?}")
    };
    assert_eq!(scheduled, ts("2024-03-01T10:01:00Z"));
    assert!(replace.is_empty());
    assert_eq!(job.metadata.name.as_deref(), Some("hello-28488121"));
    assert_eq!(
        job_name("hello", scheduled),
        format!("hello-{}", scheduled.as_second() / 60)
    );
    let annotations = job.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get(SCHEDULED_TIMESTAMP).map(String::as_str),
        Some("2024-03-01T10:01:00Z")
    );
    assert_eq!(annotations.get("note").map(String::as_str), Some("kept"));
    assert_eq!(
        job.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app"))
            .map(String::as_str),
        Some("hello")
    );
    let owner = controller_of(&job.metadata)
        .map(|r| (r.kind.clone(), r.uid.clone(), r.block_owner_deletion));
    assert_eq!(owner, Some(("CronJob".into(), "cj-uid".into(), Some(true))));
    assert_eq!(job.spec.as_ref().and_then(|s| s.backoff_limit), Some(2));
    assert_eq!(
        after_start(&cj, scheduled, now, &sched(&cj)),
        Some(Duration::from_millis(59_900))
    );

    // The same time is not started twice.
    let done = with_last(cj.clone(), "2024-03-01T10:01:00Z");
    assert_eq!(
        plan(&done, now, &sched(&done)).0,
        Step::Wait(Some(Duration::from_millis(59_900)))
    );
}

fn active_ref(name: &str) -> ObjectReference {
    ObjectReference {
        kind: Some("Job".into()),
        name: Some(name.into()),
        namespace: Some("default".into()),
        uid: Some(format!("uid-{name}")),
        ..Default::default()
    }
}

#[test]
fn concurrency_policies_allow_forbid_and_replace() {
    let now = ts("2024-03-01T10:02:00.1Z");
    let mk = |policy: &str| {
        let mut cj = with_last(
            cronjob("* * * * *", "2024-03-01T10:00:30Z", |s| {
                s.concurrency_policy = Some(policy.into())
            }),
            "2024-03-01T10:01:00Z",
        );
        cj.status.get_or_insert_with(Default::default).active =
            Some(vec![active_ref("hello-28488121")]);
        cj
    };
    let allow = mk("Allow");
    assert!(
        matches!(plan(&allow, now, &sched(&allow)).0, Step::Start { ref replace, .. } if replace.is_empty())
    );
    let forbid = mk("Forbid");
    let (step, events) = plan(&forbid, now, &sched(&forbid));
    assert_eq!(step, Step::Wait(Some(Duration::from_millis(60_000))));
    assert_eq!(
        events,
        vec![normal(
            "JobAlreadyActive",
            "Not starting job because prior execution is running and concurrency policy is Forbid"
                .into()
        )]
    );
    let replace = mk("Replace");
    let Step::Start {
        replace: victims, ..
    } = plan(&replace, now, &sched(&replace)).0
    else {
        panic!("Replace starts the new job");
    };
    assert_eq!(victims, vec![active_ref("hello-28488121")]);
}

#[test]
fn a_time_missed_by_more_than_the_starting_deadline_is_skipped() {
    let cj = with_last(
        cronjob("*/10 * * * *", "2024-03-01T09:00:00Z", |s| {
            s.starting_deadline_seconds = Some(30)
        }),
        "2024-03-01T10:00:00Z",
    );
    // Due at 10:10, now 10:11: missed by more than 30 s.
    let (step, events) = plan(&cj, ts("2024-03-01T10:11:00Z"), &sched(&cj));
    assert!(matches!(step, Step::Wait(_)));
    assert!(
        events.is_empty(),
        "past the deadline there is no unmet time at all: {events:?}"
    );
    let late = with_last(
        cronjob("*/10 * * * *", "2024-03-01T09:00:00Z", |s| {
            s.starting_deadline_seconds = Some(120)
        }),
        "2024-03-01T10:00:00Z",
    );
    // Within the deadline: still started.
    assert!(matches!(
        plan(&late, ts("2024-03-01T10:11:00Z"), &sched(&late)).0,
        Step::Start { .. }
    ));
    // A deadline shorter than the period: a time inside the window still starts. (With the
    // count starting at `now - startingDeadlineSeconds`, as upstream's, an unmet time is
    // never older than the deadline, so upstream's MissSchedule branch does not fire.)
    let tight = with_last(
        cronjob("* * * * *", "2024-03-01T09:00:00Z", |s| {
            s.starting_deadline_seconds = Some(10)
        }),
        "2024-03-01T10:00:00Z",
    );
    let (step, events) = plan(&tight, ts("2024-03-01T10:01:09Z"), &sched(&tight));
    assert!(matches!(step, Step::Start { .. }));
    assert!(events.is_empty());
    let many = cronjob("* * * * *", "2024-03-01T00:00:00Z", |_| {});
    let (_, events) = plan(&many, ts("2024-03-01T12:00:05Z"), &sched(&many));
    assert_eq!(events.first().map(|e| e.reason), Some("TooManyMissedTimes"));
}

#[test]
fn missed_schedule_event_has_upstreams_time_format() {
    assert_eq!(
        rfc1123z(ts("2024-03-01T10:01:00Z")),
        "Fri, 01 Mar 2024 10:01:00 +0000"
    );
}

#[test]
fn time_zones_shift_the_schedule_and_the_annotation() {
    let cj = cronjob("0 9 * * *", "2024-01-15T00:00:00Z", |s| {
        s.time_zone = Some("Asia/Tokyo".into())
    });
    assert_eq!(
        format_schedule(&cj),
        ("TZ=Asia/Tokyo 0 9 * * *".into(), None)
    );
    let (step, _) = plan(&cj, ts("2024-01-16T00:00:05Z"), &sched(&cj));
    let Step::Start { scheduled, job, .. } = step else {
        panic!("09:00 in Tokyo is due");
    };
    assert_eq!(scheduled, ts("2024-01-16T00:00:00Z"));
    let annotation = job
        .metadata
        .annotations
        .and_then(|a| a.get(SCHEDULED_TIMESTAMP).cloned());
    assert_eq!(annotation.as_deref(), Some("2024-01-16T09:00:00+09:00"));
    let tz_in_schedule = cronjob("CRON_TZ=UTC * * * * *", "2024-01-15T00:00:00Z", |_| {});
    assert_eq!(
        format_schedule(&tz_in_schedule).1.map(|e| e.reason),
        Some("UnsupportedSchedule")
    );
}

fn finished_job(name: &str, kind: &str, start: &str) -> Arc<Job> {
    Arc::new(Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            owner_references: Some(vec![pods::controller_ref(&cronjob(
                "* * * * *",
                start,
                |_| {},
            ))]),
            ..Default::default()
        },
        spec: None,
        status: Some(JobStatus {
            start_time: (!start.is_empty()).then(|| Time(ts(start))),
            completion_time: (kind == "Complete").then(|| Time(ts(start))),
            conditions: (!kind.is_empty()).then(|| {
                vec![JobCondition {
                    type_: kind.into(),
                    status: "True".into(),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }),
    })
}

#[test]
fn history_limits_delete_the_oldest_finished_jobs() {
    let cj = cronjob("* * * * *", "2024-03-01T00:00:00Z", |_| {});
    let jobs = vec![
        finished_job("c4", "Complete", "2024-03-01T10:04:00Z"),
        finished_job("c1", "Complete", "2024-03-01T10:01:00Z"),
        finished_job("c3", "Complete", "2024-03-01T10:03:00Z"),
        finished_job("c2", "Complete", "2024-03-01T10:02:00Z"),
        finished_job("f1", "Failed", "2024-03-01T10:01:30Z"),
        finished_job("f2", "Failed", "2024-03-01T10:02:30Z"),
        finished_job("running", "", "2024-03-01T10:00:00Z"),
    ];
    let names: Vec<String> = history(&cj, &jobs).iter().map(|j| j.name_any()).collect();
    assert_eq!(names, ["c1", "f1"]);
    let keep_none = cronjob("* * * * *", "2024-03-01T00:00:00Z", |s| {
        s.successful_jobs_history_limit = Some(0)
    });
    assert_eq!(history(&keep_none, &jobs).len(), 5);
}

#[test]
fn the_active_list_follows_the_jobs() {
    let mut status = CronJobStatus {
        active: Some(vec![
            active_ref("done"),
            active_ref("gone"),
            active_ref("running"),
        ]),
        ..Default::default()
    };
    let mut running = (*finished_job("running", "", "2024-03-01T10:00:00Z")).clone();
    running.status = None;
    let jobs = vec![
        finished_job("done", "Complete", "2024-03-01T10:05:00Z"),
        Arc::new(running),
        finished_job("stranger", "", "2024-03-01T10:00:00Z"),
    ];
    let r = reconcile_active(&mut status, &jobs);
    assert!(r.changed);
    assert_eq!(
        r.events,
        vec![normal(
            "SawCompletedJob",
            "Saw completed job: done, condition: Complete".into()
        )]
    );
    assert_eq!(r.unexpected, ["stranger"]);
    assert_eq!(r.missing, vec![active_ref("gone")]);
    let names: Vec<_> = status
        .active
        .iter()
        .flatten()
        .filter_map(|a| a.name.clone())
        .collect();
    assert_eq!(names, ["gone", "running"]);
    assert_eq!(
        status.last_successful_time.map(|t| t.0),
        Some(ts("2024-03-01T10:05:00Z"))
    );
}

#[test]
fn children_are_the_jobs_naming_the_cronjob_as_controller() {
    let cj = cronjob("* * * * *", "2024-03-01T00:00:00Z", |_| {});
    let mine = finished_job("mine", "", "");
    let mut other = (*finished_job("other", "", "")).clone();
    other.metadata.owner_references = None;
    let all = vec![mine, Arc::new(other)];
    let names: Vec<String> = children(&cj, &all).iter().map(|j| j.name_any()).collect();
    assert_eq!(names, ["mine"]);
}
