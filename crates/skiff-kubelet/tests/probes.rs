//! Probes against real local servers (HTTP with statuses and redirects, a TCP listener, a
//! gRPC health server from tonic-health, all on 127.0.0.1), and the probe manager's
//! workers over `RecordingRuntime` on a paused Tokio clock (exec probes, thresholds,
//! startup gating, kills). No root needed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, Pod, PodSpec,
    Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use skiff_kubelet::probes::http::Client;
use skiff_kubelet::probes::{
    run_probe, Outcome, ProbeEvent, ProbeKind, ProbeManager, ProbeResult, RunningContainer, Target,
    MAX_OUTPUT,
};
use skiff_runtime::cri::{ContainerMeta, PodRuntime};
use skiff_runtime::testing::{Call, ExecAnswer, RecordingRuntime};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A server task aborted when the test ends, pass or fail.
struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn http_server() -> Result<Server> {
    let listener = TcpListener::bind((LOCAL, 0)).await?;
    let addr = listener.local_addr()?;
    let away = format!("http://localhost:{}/ok", addr.port());
    let app = axum::Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "secret body") }),
        )
        .route("/local", get(|| async { Redirect::temporary("/ok") }))
        .route("/loop", get(|| async { Redirect::temporary("/loop") }))
        .route(
            "/away",
            get(move || async move { Redirect::temporary(&away).into_response() }),
        )
        .route(
            "/headers",
            get(|h: HeaderMap| async move {
                let v = |n: &str| {
                    h.get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_string()
                };
                format!(
                    "ua={} host={} accept={} x={}",
                    v("user-agent"),
                    v("host"),
                    v("accept"),
                    v("x-probe")
                )
            }),
        )
        .route("/big", get(|| async { "a".repeat(3 * MAX_OUTPUT) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(Server { addr, task })
}

fn container_with_port(port: u16) -> Container {
    Container {
        name: "web".into(),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: i32::from(port),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

async fn probe_once(probe: &Probe, container: &Container) -> Result<Outcome> {
    let rt = RecordingRuntime::new();
    let pod = Pod::default();
    let t = Target {
        runtime: &rt,
        pod: &pod,
        container,
        container_id: "c",
        pod_ip: Some(LOCAL),
    };
    Ok(run_probe(&t, &Client::new(), probe, Duration::from_secs(5)).await?)
}

fn http_probe(path: &str, headers: Vec<HTTPHeader>) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            http_headers: Some(headers),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn http_statuses_redirects_headers_and_body_cap() -> Result<()> {
    let srv = http_server().await?;
    let c = container_with_port(srv.addr.port());

    assert_eq!(
        probe_once(&http_probe("/ok", vec![]), &c).await?,
        Outcome::Success("fine".into())
    );
    assert_eq!(
        probe_once(&http_probe("/fail", vec![]), &c).await?,
        Outcome::Failure("HTTP probe failed with statuscode: 500".into())
    );
    // Same host: followed.
    assert_eq!(
        probe_once(&http_probe("/local", vec![]), &c).await?,
        Outcome::Success("fine".into())
    );
    // Another host (localhost is not 127.0.0.1 by name): not followed, a success with a warning.
    assert_eq!(
        probe_once(&http_probe("/away", vec![]), &c).await?,
        Outcome::Warning("Probe terminated redirects, Response body: ".into())
    );
    // A redirect loop stops after 10 and is a failure.
    match probe_once(&http_probe("/loop", vec![]), &c).await? {
        Outcome::Failure(m) => assert!(m.contains("stopped after 10 redirects"), "{m}"),
        o => bail!("loop: {o:?}"),
    }
    assert_eq!(
        probe_once(&http_probe("/headers", vec![]), &c).await?,
        Outcome::Success(format!(
            "ua=kube-probe/1.33 host={} accept=*/* x=-",
            srv.addr
        ))
    );
    let headers = vec![
        HTTPHeader {
            name: "Host".into(),
            value: "virtual.test".into(),
        },
        HTTPHeader {
            name: "X-Probe".into(),
            value: "yes".into(),
        },
        HTTPHeader {
            name: "User-Agent".into(),
            value: "mine".into(),
        },
    ];
    assert_eq!(
        probe_once(&http_probe("/headers", headers), &c).await?,
        Outcome::Success("ua=mine host=virtual.test accept=*/* x=yes".into())
    );
    match probe_once(&http_probe("/big", vec![]), &c).await? {
        Outcome::Success(body) => assert_eq!(body.len(), MAX_OUTPUT),
        o => bail!("big: {o:?}"),
    }
    // Nothing listening: a failure, not an error.
    drop(srv);
    tokio::task::yield_now().await;
    let closed = closed_port().await?;
    match probe_once(&http_probe("/ok", vec![]), &container_with_port(closed)).await? {
        Outcome::Failure(m) => assert_eq!(m, format!("Get \"http://127.0.0.1:{closed}/ok\": dial tcp 127.0.0.1:{closed}: connect: connection refused")),
        o => bail!("closed: {o:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn http_timeout_is_a_failure_in_gos_words() -> Result<()> {
    let srv = http_server().await?;
    let c = container_with_port(srv.addr.port());
    let rt = RecordingRuntime::new();
    let pod = Pod::default();
    let t = Target {
        runtime: &rt,
        pod: &pod,
        container: &c,
        container_id: "c",
        pod_ip: Some(LOCAL),
    };
    let o = run_probe(
        &t,
        &Client::new(),
        &http_probe("/slow", vec![]),
        Duration::from_secs(1),
    )
    .await?;
    assert_eq!(
        o,
        Outcome::Failure(format!(
            "Get \"http://{}/slow\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            srv.addr
        ))
    );
    Ok(())
}

/// A port nothing listens on (bound, then released).
async fn closed_port() -> Result<u16> {
    let l = TcpListener::bind((LOCAL, 0)).await?;
    let port = l.local_addr()?.port();
    drop(l);
    Ok(port)
}

#[tokio::test]
async fn tcp_connects_or_fails() -> Result<()> {
    let l = TcpListener::bind((LOCAL, 0)).await?;
    let port = l.local_addr()?.port();
    let tcp = |port: u16| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(i32::from(port)),
            host: None,
        }),
        ..Default::default()
    };
    let c = Container::default();
    assert_eq!(
        probe_once(&tcp(port), &c).await?,
        Outcome::Success(String::new())
    );
    drop(l);
    let closed = closed_port().await?;
    match probe_once(&tcp(closed), &c).await? {
        Outcome::Failure(m) => assert_eq!(
            m,
            format!("dial tcp 127.0.0.1:{closed}: connect: connection refused")
        ),
        o => bail!("closed: {o:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn grpc_health_check() -> Result<()> {
    use tonic_health::ServingStatus;
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("up", ServingStatus::Serving)
        .await;
    reporter
        .set_service_status("down", ServingStatus::NotServing)
        .await;
    let listener = TcpListener::bind((LOCAL, 0)).await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await;
    });
    let _server = Server {
        addr: SocketAddr::new(LOCAL, port),
        task,
    };
    let grpc = |port: u16, service: Option<&str>| Probe {
        grpc: Some(GRPCAction {
            port: i32::from(port),
            service: service.map(str::to_owned),
        }),
        ..Default::default()
    };
    let c = Container::default();
    // The empty service is the server's overall health, SERVING by default.
    assert_eq!(
        probe_once(&grpc(port, None), &c).await?,
        Outcome::Success("service healthy".into())
    );
    assert_eq!(
        probe_once(&grpc(port, Some("up")), &c).await?,
        Outcome::Success("service healthy".into())
    );
    assert_eq!(
        probe_once(&grpc(port, Some("down")), &c).await?,
        Outcome::Failure("service unhealthy (responded with \"NOT_SERVING\")".into())
    );
    match probe_once(&grpc(port, Some("nope")), &c).await? {
        Outcome::Failure(m) => assert!(m.starts_with("error: health rpc probe failed: "), "{m}"),
        o => bail!("unknown service: {o:?}"),
    }
    let closed = closed_port().await?;
    match probe_once(&grpc(closed, None), &c).await? {
        Outcome::Failure(m) => {
            assert!(m.starts_with("error: failed to connect service at "), "{m}")
        }
        o => bail!("closed: {o:?}"),
    }
    Ok(())
}

// --- the manager over RecordingRuntime, on a paused clock ----------------------------

fn exec(cmd: &[&str]) -> Option<ExecAction> {
    Some(ExecAction {
        command: Some(cmd.iter().map(|s| (*s).to_owned()).collect()),
    })
}

fn exec_probe(cmd: &[&str], failure_threshold: i32) -> Probe {
    Probe {
        exec: exec(cmd),
        period_seconds: Some(1),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

fn pod(container: Container) -> Pod {
    let mut p = Pod {
        spec: Some(PodSpec {
            containers: vec![container],
            ..Default::default()
        }),
        ..Default::default()
    };
    p.metadata.uid = Some("uid-1".into());
    p.metadata.name = Some("web".into());
    p.metadata.namespace = Some("default".into());
    p
}

async fn running(rt: &RecordingRuntime, id: &str) -> Result<RunningContainer> {
    let image = RecordingRuntime::image("busybox", Default::default());
    rt.add_image(image.clone());
    let meta = ContainerMeta {
        pod_uid: "uid-1".into(),
        name: "app".into(),
        ..Default::default()
    };
    rt.create_container(id, &image, meta).await?;
    let config = skiff_runtime::container::spec::ContainerConfig {
        id: id.into(),
        ..Default::default()
    };
    rt.start_container(id, &config).await?;
    Ok(RunningContainer {
        name: "app".into(),
        id: id.into(),
        started_at: Timestamp::now(),
    })
}

fn exec_calls(rt: &RecordingRuntime, cmd: &str) -> usize {
    rt.calls()
        .iter()
        .filter(|c| matches!(c, Call::ExecSync { cmd: v, .. } if v.first().map(String::as_str) == Some(cmd)))
        .count()
}

/// The next event matching `pred`, within a bound (of paused time: it auto-advances).
async fn next_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<ProbeEvent>,
    pred: impl Fn(&ProbeEvent) -> bool,
) -> Result<ProbeEvent> {
    let wait = async {
        while let Some(e) = rx.recv().await {
            if pred(&e) {
                return Some(e);
            }
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(120), wait)
        .await
        .context("no such probe event in 120 s")?
        .context("event channel closed")
}

#[tokio::test(start_paused = true)]
async fn liveness_failures_reach_the_threshold_and_ask_for_a_kill() -> Result<()> {
    let rt = Arc::new(RecordingRuntime::new());
    rt.answer_exec(&["check"], ExecAnswer::new(1, "unhealthy"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mgr = ProbeManager::new(rt.clone() as Arc<dyn PodRuntime>, tx);
    let mut probe = exec_probe(&["check"], 2);
    probe.termination_grace_period_seconds = Some(7);
    let p = pod(Container {
        name: "app".into(),
        liveness_probe: Some(probe),
        ..Default::default()
    });
    let c = running(&rt, "c1").await?;
    mgr.sync_pod(&p, Some(LOCAL), std::slice::from_ref(&c));

    let first = next_event(&mut rx, |_| true).await?;
    assert_eq!(first.kind, ProbeKind::Liveness);
    assert!(!first.kill && !first.changed);
    let ev = first.event.context("an Unhealthy event")?;
    assert_eq!((ev.type_, ev.reason), ("Warning", "Unhealthy"));
    assert_eq!(ev.message, "Liveness probe failed: unhealthy");

    let kill = next_event(&mut rx, |e| e.kill).await?;
    assert_eq!(
        (kill.container.as_str(), kill.container_id.as_str()),
        ("app", "c1")
    );
    assert_eq!(kill.result, ProbeResult::Failure("unhealthy".into()));
    assert_eq!(kill.grace_seconds, Some(7));
    assert!(kill.changed);
    // On hold: no more probes of this instance.
    let calls = exec_calls(&rt, "check");
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(exec_calls(&rt, "check"), calls);

    // A new instance is probed again, from liveness's initial success.
    rt.answer_exec(&["check"], ExecAnswer::new(0, "ok"));
    let c2 = running(&rt, "c2").await?;
    mgr.sync_pod(&p, Some(LOCAL), std::slice::from_ref(&c2));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(exec_calls(&rt, "check") > calls);
    assert!(rt
        .calls()
        .iter()
        .any(|c| matches!(c, Call::ExecSync { id, .. } if id == "c2")));
    mgr.remove_pod("uid-1");
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn readiness_starts_false_and_startup_gates_it() -> Result<()> {
    let rt = Arc::new(RecordingRuntime::new());
    rt.answer_exec(&["started"], ExecAnswer::new(1, "not yet"));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mgr = ProbeManager::new(rt.clone() as Arc<dyn PodRuntime>, tx);
    let p = pod(Container {
        name: "app".into(),
        startup_probe: Some(exec_probe(&["started"], 1000)),
        readiness_probe: Some(exec_probe(&["ready"], 3)),
        ..Default::default()
    });
    let c = running(&rt, "c1").await?;
    mgr.sync_pod(&p, Some(LOCAL), std::slice::from_ref(&c));
    let r = mgr.results("uid-1", "app");
    assert_eq!((r.started, r.ready), (Some(false), Some(false)));

    // Several failed startup runs: readiness is never run meanwhile.
    for _ in 0..3 {
        next_event(&mut rx, |e| e.kind == ProbeKind::Startup).await?;
    }
    assert_eq!(exec_calls(&rt, "ready"), 0);

    rt.answer_exec(&["started"], ExecAnswer::new(0, ""));
    let started = next_event(&mut rx, |e| e.kind == ProbeKind::Startup && e.changed).await?;
    assert_eq!(started.result, ProbeResult::Success);
    assert!(!started.kill);
    let ready = next_event(&mut rx, |e| e.kind == ProbeKind::Readiness && e.changed).await?;
    assert_eq!(ready.result, ProbeResult::Success);
    let r = mgr.results("uid-1", "app");
    assert_eq!((r.started, r.ready), (Some(true), Some(true)));
    // The startup probe is not run once the container has started.
    let startup_runs = exec_calls(&rt, "started");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(exec_calls(&rt, "started"), startup_runs);

    // The container stops running: not ready, its workers stop.
    mgr.sync_pod(&p, Some(LOCAL), &[]);
    assert_eq!(mgr.results("uid-1", "app").ready, Some(false));
    let ready_runs = exec_calls(&rt, "ready");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(exec_calls(&rt, "ready"), ready_runs);

    // A pod the manager does not know has no results.
    mgr.remove_pod("uid-1");
    assert_eq!(mgr.results("uid-1", "app"), Default::default());
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn readiness_failure_threshold_flips_back_without_a_kill() -> Result<()> {
    let rt = Arc::new(RecordingRuntime::new());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mgr = ProbeManager::new(rt.clone() as Arc<dyn PodRuntime>, tx);
    let p = pod(Container {
        name: "app".into(),
        readiness_probe: Some(exec_probe(&["ready"], 2)),
        ..Default::default()
    });
    let c = running(&rt, "c1").await?;
    mgr.sync_pod(&p, Some(LOCAL), std::slice::from_ref(&c));
    next_event(&mut rx, |e| e.changed && e.result == ProbeResult::Success).await?;
    rt.answer_exec(
        &["ready"],
        ExecAnswer {
            exit_code: 1,
            stderr: b"down".to_vec(),
            ..Default::default()
        },
    );
    let one = next_event(&mut rx, |e| e.event.is_some()).await?;
    assert!(!one.changed, "one failure is below the threshold of 2");
    assert_eq!(mgr.results("uid-1", "app").ready, Some(true));
    let flip = next_event(&mut rx, |e| e.changed).await?;
    assert_eq!(flip.result, ProbeResult::Failure("down".into()));
    assert!(!flip.kill);
    assert_eq!(mgr.results("uid-1", "app").ready, Some(false));
    Ok(())
}

// --- lifecycle hooks -----------------------------------------------------------------

mod hooks {
    use super::*;
    use k8s_openapi::api::core::v1::{Lifecycle, LifecycleHandler, SleepAction};
    use skiff_kubelet::probes::hooks::{
        post_start, pre_stop, remaining_grace, run_handler, POST_START_HOOK_ERROR,
    };

    fn with_lifecycle(
        post_start: Option<LifecycleHandler>,
        pre_stop: Option<LifecycleHandler>,
    ) -> Container {
        Container {
            name: "app".into(),
            lifecycle: Some(Lifecycle {
                post_start,
                pre_stop,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn exec_post_start_failure_is_upstreams() -> Result<()> {
        let rt = RecordingRuntime::new();
        let c1 = running(&rt, "c1").await?;
        rt.answer_exec(
            &["sh", "-c", "exit 3"],
            ExecAnswer {
                exit_code: 3,
                stdout: b"out".to_vec(),
                stderr: b"bad".to_vec(),
                timed_out: false,
            },
        );
        let h = LifecycleHandler {
            exec: exec(&["sh", "-c", "exit 3"]),
            ..Default::default()
        };
        let c = with_lifecycle(Some(h), None);
        let p = pod(c.clone());
        let f = post_start(&rt, &p, &c, &c1.id, Some(LOCAL))
            .await
            .err()
            .context("a failure")?;
        assert_eq!(
            (f.event.type_, f.event.reason, f.event.message.as_str()),
            ("Warning", "FailedPostStartHook", "PostStartHook failed")
        );
        assert_eq!(
            (f.reason, f.kill_message),
            (POST_START_HOOK_ERROR, "FailedPostStartHook")
        );
        assert_eq!(
            f.message,
            "Exec lifecycle hook ([sh -c exit 3]) for Container \"app\" in Pod \"web_default(uid-1)\" failed - error: command 'sh -c exit 3' exited with 3: bad, message: \"outbad\""
        );
        assert!(f
            .to_string()
            .starts_with("PostStartHookError: Exec lifecycle hook"));
        assert!(rt
            .calls()
            .iter()
            .any(|c| matches!(c, Call::ExecSync { id, .. } if id == "c1")));

        // A succeeding hook, and a container without one.
        let ok = LifecycleHandler {
            exec: exec(&["true"]),
            ..Default::default()
        };
        let c = with_lifecycle(Some(ok), None);
        assert!(post_start(&rt, &p, &c, "c1", Some(LOCAL)).await.is_ok());
        assert!(
            post_start(&rt, &p, &Container::default(), "c1", Some(LOCAL))
                .await
                .is_ok()
        );
        Ok(())
    }

    #[tokio::test]
    async fn http_hooks_count_any_response_and_fail_on_no_server() -> Result<()> {
        let srv = http_server().await?;
        let rt = RecordingRuntime::new();
        let get = |path: &str, port: u16| LifecycleHandler {
            http_get: Some(HTTPGetAction {
                path: Some(path.into()),
                port: IntOrString::Int(i32::from(port)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let c = Container {
            name: "app".into(),
            ..Default::default()
        };
        let p = pod(c.clone());
        run_handler(&rt, &p, &c, "c1", Some(LOCAL), &get("/ok", srv.addr.port())).await?;
        // A 500 is still a response: hooks do not look at the status.
        run_handler(
            &rt,
            &p,
            &c,
            "c1",
            Some(LOCAL),
            &get("/fail", srv.addr.port()),
        )
        .await?;
        let closed = closed_port().await?;
        let e = run_handler(&rt, &p, &c, "c1", Some(LOCAL), &get("/stop", closed))
            .await
            .err()
            .context("no server")?;
        assert!(
            e.message.starts_with("HTTP lifecycle hook (/stop) for Container \"app\" in Pod \"web_default(uid-1)\" failed - error: "),
            "{}",
            e.message
        );
        Ok(())
    }

    #[tokio::test]
    async fn tcp_socket_is_no_handler() -> Result<()> {
        let rt = RecordingRuntime::new();
        let h = LifecycleHandler {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(80),
                host: None,
            }),
            ..Default::default()
        };
        let c = Container {
            name: "app".into(),
            ..Default::default()
        };
        let e = run_handler(&rt, &pod(c.clone()), &c, "c1", Some(LOCAL), &h)
            .await
            .err()
            .context("an error")?;
        assert!(
            e.message
                .starts_with("Cannot run handler: invalid handler: "),
            "{}",
            e.message
        );
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn pre_stop_sleep_is_bounded_by_the_grace_period() -> Result<()> {
        let rt = RecordingRuntime::new();
        let sleep = |s: i64| LifecycleHandler {
            sleep: Some(SleepAction { seconds: s }),
            ..Default::default()
        };
        let c = with_lifecycle(None, Some(sleep(100)));
        let p = pod(c.clone());
        let before = tokio::time::Instant::now();
        let o = pre_stop(&rt, &p, &c, "c1", Some(LOCAL), Duration::from_secs(5))
            .await
            .context("a hook")?;
        assert!(o.timed_out);
        assert_eq!(o.event, None);
        assert_eq!(tokio::time::Instant::now() - before, Duration::from_secs(5));
        assert_eq!(remaining_grace(5, Duration::from_secs(5)), 2);

        let c = with_lifecycle(None, Some(sleep(3)));
        let before = tokio::time::Instant::now();
        let o = pre_stop(&rt, &p, &c, "c1", Some(LOCAL), Duration::from_secs(30))
            .await
            .context("a hook")?;
        assert!(!o.timed_out);
        assert_eq!(tokio::time::Instant::now() - before, Duration::from_secs(3));
        // A zero grace period runs no hook; no hook, nothing.
        assert_eq!(
            pre_stop(&rt, &p, &c, "c1", Some(LOCAL), Duration::ZERO).await,
            None
        );
        assert_eq!(
            pre_stop(
                &rt,
                &p,
                &Container::default(),
                "c1",
                Some(LOCAL),
                Duration::from_secs(30)
            )
            .await,
            None
        );
        Ok(())
    }

    #[tokio::test]
    async fn failed_pre_stop_records_failed_pre_stop_hook() -> Result<()> {
        let rt = RecordingRuntime::new();
        let c1 = running(&rt, "c1").await?;
        rt.answer_exec(&["stop"], ExecAnswer::new(1, "no"));
        let h = LifecycleHandler {
            exec: exec(&["stop"]),
            ..Default::default()
        };
        let c = with_lifecycle(None, Some(h));
        let o = pre_stop(
            &rt,
            &pod(c.clone()),
            &c,
            &c1.id,
            Some(LOCAL),
            Duration::from_secs(30),
        )
        .await
        .context("a hook")?;
        let e = o.event.context("an event")?;
        assert_eq!(
            (e.type_, e.reason, e.message.as_str()),
            ("Warning", "FailedPreStopHook", "PreStopHook failed")
        );
        assert!(!o.timed_out);
        Ok(())
    }
}

/// An HTTPS server with a self-signed certificate for a name that is not the address:
/// probes do not verify certificates, as upstream's `InsecureSkipVerify`.
#[tokio::test]
async fn https_without_certificate_verification() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cert = rcgen::generate_simple_self_signed(vec!["not-this-host.test".to_string()])?;
    let der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.signing_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![der], key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((LOCAL, 0)).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        // Bounded: the test makes one request.
        for _ in 0..4 {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut buf = vec![0u8; 4096];
            let _ = tls.read(&mut buf).await;
            let _ = tls
                .write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure",
                )
                .await;
            let _ = tls.shutdown().await;
        }
    });
    let _server = Server { addr, task };
    let probe = Probe {
        http_get: Some(HTTPGetAction {
            scheme: Some("HTTPS".into()),
            path: Some("/".into()),
            port: IntOrString::Int(i32::from(addr.port())),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        probe_once(&probe, &Container::default()).await?,
        Outcome::Success("secure".into())
    );
    Ok(())
}
