//! Integration: a server started in-process (random port, temp data dir), driven by kube-rs,
//! the Rust client controllers are written with. Every scenario runs twice: on the embedded
//! store and on a real etcd, to prove the API does not depend on the backend.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;
use skiff::server::{self, ServerArgs};

/// A server in-process on the embedded store, or on the etcd at `datastore_endpoint`.
async fn start(
    datastore_endpoint: Option<String>,
) -> Result<(server::Running, Client, tempfile::TempDir)> {
    start_in(tempfile::tempdir()?, datastore_endpoint).await
}

/// [`start`] on a data dir that may hold data already.
async fn start_in(
    dir: tempfile::TempDir,
    datastore_endpoint: Option<String>,
) -> Result<(server::Running, Client, tempfile::TempDir)> {
    start_with(dir, datastore_endpoint, |_| {}).await
}

/// The arguments tests start servers with (on `dir`, any free port, loopback only).
fn test_args(dir: &std::path::Path, datastore_endpoint: Option<String>) -> Result<ServerArgs> {
    let mut args = ServerArgs::defaults(dir);
    args.https_port = 0;
    args.bind_address = "127.0.0.1".parse()?;
    args.datastore_endpoint = datastore_endpoint;
    args.disable_agent = true;
    args.disable_dns = true;
    // These scenarios test the API server alone (as upstream's apiserver integration tests
    // run without kube-controller-manager): no `kube-root-ca.crt` in every namespace.
    args.disable_controller_manager = true;
    args.disable_scheduler = true;
    Ok(args)
}

/// [`start_in`] with arguments changed by `change`.
async fn start_with(
    dir: tempfile::TempDir,
    datastore_endpoint: Option<String>,
    change: impl FnOnce(&mut ServerArgs),
) -> Result<(server::Running, Client, tempfile::TempDir)> {
    let mut args = test_args(dir.path(), datastore_endpoint)?;
    change(&mut args);
    let running = server::start(&args).await?;
    let kubeconfig = Kubeconfig::read_from(&running.kubeconfig)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = Client::try_from(config)?;
    Ok((running, client, dir))
}

/// Runs each scenario (`async fn(Client) -> Result<()>`) against the embedded store and
/// against a real etcd; the ones after `with_server:` also get the running server (its
/// datastore).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)? ; with_server: $($sname:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    let (_server, client, _dir) = super::start(None).await?;
                    super::$name(client).await
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $sname() -> anyhow::Result<()> {
                    let (server, client, _dir) = super::start(None).await?;
                    super::$sname(client, &server).await
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    let etcd = skiff_store::testing::EtcdProcess::start().await?;
                    let (_server, client, _dir) = super::start(Some(etcd.endpoint())).await?;
                    super::$name(client).await
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $sname() -> anyhow::Result<()> {
                    let etcd = skiff_store::testing::EtcdProcess::start().await?;
                    let (server, client, _dir) = super::start(Some(etcd.endpoint())).await?;
                    super::$sname(client, &server).await
                }
            )*
        }
    };
}

on_both_backends!(
    crud_conflicts_and_selectors,
    patches_status_and_scale,
    watcher_sees_changes_and_a_deleted_namespace_terminates,
    bad_input_gets_upstream_status,
    gzip_when_asked_but_never_for_watches,
    watch_semantics,
    pod_lifecycle,
    strategic_merge_patch_statuses,
    server_side_apply_round_trip,
    events_are_one_resource_in_two_versions,
    hpas_are_one_resource_in_two_versions,
    concurrent_patches_are_reapplied_not_refused,
    apply_based_reconcile_loop,
    server_side_apply_to_scale;
    with_server: history_expires_after_compaction,
);

/// A kube-runtime controller that server-side-applies what it derives, as kube-rs
/// controllers do: a copy of each `role=source` ConfigMap, owned by it. A change to the
/// source flows to the copy, another manager's change to the copy is undone (the controller
/// owns its copies and force-applies). (That deleting the source collects the copy needs the
/// garbage collector, a controller: `tests/garbagecollector.rs`.)
async fn apply_based_reconcile_loop(client: Client) -> Result<()> {
    use kube::runtime::controller::{Action, Controller};
    use kube::Resource;
    use std::sync::Arc;

    async fn reconcile(
        source: Arc<ConfigMap>,
        cms: Arc<Api<ConfigMap>>,
    ) -> Result<Action, kube::Error> {
        let name = format!("{}-copy", source.metadata.name.clone().unwrap_or_default());
        let owner = source.controller_owner_ref(&());
        let copy = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "ownerReferences": owner.into_iter().collect::<Vec<_>>()},
            "data": source.data});
        cms.patch(
            &name,
            &PatchParams::apply("copier").force(),
            &Patch::Apply(copy),
        )
        .await?;
        Ok(Action::await_change())
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let controller = Controller::new(
        cms.clone(),
        watcher::Config::default().labels("role=source"),
    )
    .owns(cms.clone(), watcher::Config::default())
    .run(
        reconcile,
        |_, _, _| Action::requeue(Duration::from_millis(200)),
        Arc::new(cms.clone()),
    )
    .for_each(|_| async {});
    let running = tokio::spawn(controller);
    let result = async {
        let data_of = |cm: &ConfigMap| cm.data.clone().unwrap_or_default().get("a").cloned();
        let eventually = |want: Option<&'static str>| {
            let cms = cms.clone();
            async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                loop {
                    let got = cms.get_opt("src-copy").await?;
                    let value = got.as_ref().map(data_of);
                    let done = match want {
                        Some(w) => value == Some(Some(w.to_owned())),
                        None => got.is_none(),
                    };
                    if done {
                        return Ok::<_, anyhow::Error>(got);
                    }
                    ensure!(
                        tokio::time::Instant::now() < deadline,
                        "src-copy is {value:?}, not {want:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let source: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "src",
            "labels": {"role": "source"}}, "data": {"a": "1"}}))?;
        cms.create(&PostParams::default(), &source).await?;
        let copy = eventually(Some("1")).await?.context("no copy")?;
        let managers: Vec<(String, String)> = copy
            .metadata
            .managed_fields
            .unwrap_or_default()
            .into_iter()
            .map(|m| {
                (
                    m.manager.unwrap_or_default(),
                    m.operation.unwrap_or_default(),
                )
            })
            .collect();
        ensure!(
            managers == [("copier".to_owned(), "Apply".to_owned())],
            "{managers:?}"
        );
        ensure!(
            copy.metadata
                .owner_references
                .unwrap_or_default()
                .first()
                .map(|o| o.name.as_str())
                == Some("src"),
            "the copy is not owned by its source"
        );
        cms.patch(
            "src",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "2"}})),
        )
        .await?;
        eventually(Some("2")).await?;
        cms.patch(
            "src-copy",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": "tampered"}})),
        )
        .await?;
        eventually(Some("2")).await?;
        Ok(())
    }
    .await;
    running.abort();
    result
}

/// Server-side apply on `/scale` (what autoscalers that apply do): a Scale configuration
/// owns the object's `spec.replicas`, recorded with subresource `scale`; it conflicts with
/// the manager that applied the replicas until forced; a body that is not a Scale is 400.
async fn server_side_apply_to_scale(client: Client) -> Result<()> {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "scaled"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "s"}},
                 "template": {"metadata": {"labels": {"app": "s"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}}});
    deploys
        .patch(
            "scaled",
            &PatchParams::apply("gitops"),
            &Patch::Apply(&deploy),
        )
        .await?;
    let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": "scaled"}, "spec": {"replicas": 3}});
    let err = deploys
        .patch_scale(
            "scaled",
            &PatchParams::apply("autoscaler"),
            &Patch::Apply(&scale),
        )
        .await
        .expect_err("gitops owns the replicas");
    ensure!(api_error(&err) == Some((409, "Conflict".into())), "{err:?}");
    ensure!(
        err.to_string()
            .contains(r#"conflict with "gitops": .spec.replicas"#),
        "{err}"
    );
    let answered = deploys
        .patch_scale(
            "scaled",
            &PatchParams::apply("autoscaler").force(),
            &Patch::Apply(&scale),
        )
        .await?;
    ensure!(answered.spec.and_then(|s| s.replicas) == Some(3));
    let d = deploys.get("scaled").await?;
    ensure!(d.spec.as_ref().and_then(|s| s.replicas) == Some(3));
    let entries = d.metadata.managed_fields.unwrap_or_default();
    let scaler = entries
        .iter()
        .find(|m| m.manager.as_deref() == Some("autoscaler"))
        .context("no autoscaler entry")?;
    ensure!(
        scaler.operation.as_deref() == Some("Apply")
            && scaler.subresource.as_deref() == Some("scale"),
        "{scaler:?}"
    );
    let owned = serde_json::to_string(&scaler.fields_v1)?;
    ensure!(owned.contains("f:replicas"), "{owned}");
    let (code, status) = raw(
        &client,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/scaled/scale?fieldManager=x",
        "application/apply-patch+yaml",
        serde_json::to_vec(&deploy)?,
    )
    .await?;
    ensure!(code == 400, "{code}: {status}");
    Ok(())
}

/// Once the datastore compacts, a continue token and a watch from before it get 410 Gone
/// with reason `Expired` and upstream's messages; a list without a token still works.
async fn history_expires_after_compaction(client: Client, server: &server::Running) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..3 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("old-{i}")}}))?;
        cms.create(&PostParams::default(), &cm).await?;
    }
    let first = cms.list(&ListParams::default().limit(1)).await?;
    let token = first
        .metadata
        .continue_
        .clone()
        .context("a first page with more to come")?;
    let before: i64 = first
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default()
        .parse()?;
    cms.patch(
        "old-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await?;
    let now = server.store.current_revision().await?;
    server.store.compact(now).await?;
    // A continue token from before the compaction.
    let err = cms
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .expect_err("a continue token from before the compaction");
    ensure!(api_error(&err) == Some((410, "Expired".into())), "{err:?}");
    ensure!(
        err.to_string()
            .contains("The provided continue parameter is too old"),
        "{err}"
    );
    // A watch from before it: 410, as an HTTP status or as an ERROR event.
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={}",
        before - 1
    );
    let req = http::Request::builder().uri(&path).body(Vec::new())?;
    let resp = client.send(req.map(kube::client::Body::from)).await?;
    let code = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await?
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status: serde_json::Value = match code {
        410 => serde_json::from_slice(&bytes)?,
        200 => {
            let first: serde_json::Value =
                serde_json::from_str(text.lines().next().context("no event")?)?;
            ensure!(first["type"] == "ERROR", "{text}");
            first["object"].clone()
        }
        other => anyhow::bail!("watch from a compacted revision answered {other}: {text}"),
    };
    ensure!(
        status["code"] == 410 && status["reason"] == "Expired",
        "{status}"
    );
    ensure!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("too old resource version")),
        "{status}"
    );
    // Lists without a token read the present.
    ensure!(cms.list(&ListParams::default()).await?.items.len() >= 3);
    Ok(())
}

/// Events go once they have not been written for `--event-ttl` (upstream's etcd lease);
/// other kinds stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_expire_after_their_ttl() -> Result<()> {
    let (_server, client, _dir) = start_with(tempfile::tempdir()?, None, |args| {
        args.event_ttl = Duration::from_secs(2);
    })
    .await?;
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let event = serde_json::from_value(json!({
        "metadata": {"name": "short-lived"},
        "involvedObject": {"kind": "ConfigMap", "name": "x", "namespace": "default"},
        "reason": "Tested", "message": "m", "type": "Normal"}))?;
    events.create(&PostParams::default(), &event).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "long-lived"}}))?;
    cms.create(&PostParams::default(), &cm).await?;
    ensure!(events.get_opt("short-lived").await?.is_some());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while events.get_opt("short-lived").await?.is_some() {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the event outlived its TTL"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(cms.get_opt("long-lived").await?.is_some());
    Ok(())
}

/// An etcd shared with another program: its writes (outside skiff's prefix) move etcd's
/// revision without reaching the watch cache, so a consistent list cannot wait for the
/// cache to catch up; it reads the datastore instead, and every list still shows every
/// write acknowledged before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_lists_on_an_etcd_shared_with_another_writer() -> Result<()> {
    use skiff_store::Store;
    let etcd = skiff_store::testing::EtcdProcess::start().await?;
    let (_server, client, _dir) = start(Some(etcd.endpoint())).await?;
    let mut config = skiff_store::EtcdConfig::new(vec![etcd.endpoint()]);
    config.prefix = "/someone-else".into();
    let other = skiff_store::EtcdStore::connect(config).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.list(&ListParams::default()).await?; // the cache is filled
    for i in 0..6 {
        let name = format!("shared-{i}");
        other
            .create(&format!("/their/{i}"), bytes::Bytes::from_static(b"x"))
            .await?;
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        cms.create(&PostParams::default(), &cm).await?;
        other
            .create(
                &format!("/their/after-{i}"),
                bytes::Bytes::from_static(b"y"),
            )
            .await?;
        let names: Vec<String> = cms
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        ensure!(
            (0..=i).all(|j| names.contains(&format!("shared-{j}"))),
            "list after create {i}: {names:?}"
        );
    }
    Ok(())
}

/// A watch that allows bookmarks gets one every interval (upstream: every minute; here set
/// short), carrying the resourceVersion of the last event the watch went past.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_bookmarks() -> Result<()> {
    let (_server, client, _dir) = start_with(tempfile::tempdir()?, None, |args| {
        args.watch_bookmark_interval_ms = 300;
    })
    .await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let list = cms.list(&ListParams::default()).await?;
    let rv = list.metadata.resource_version.unwrap_or_default();
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&resourceVersion={rv}"
    );
    let watching = tokio::spawn({
        let client = client.clone();
        async move { watch_events(&client, &path, 4, Duration::from_secs(10)).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "marked"}}))?;
    let created = cms.create(&PostParams::default(), &cm).await?;
    let created_rv: i64 = created
        .metadata
        .resource_version
        .unwrap_or_default()
        .parse()?;
    let events = watching.await??;
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    ensure!(events.len() == 4, "{types:?}");
    ensure!(types[0] == "BOOKMARK", "{types:?}");
    ensure!(types.contains(&"ADDED"), "{types:?}");
    let added = types.iter().position(|t| *t == "ADDED").unwrap_or(0);
    for e in &events[added + 1..] {
        ensure!(e["type"] == "BOOKMARK", "{events:?}");
        let rv: i64 = e["object"]["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .parse()?;
        ensure!(
            rv >= created_rv,
            "a bookmark behind the event before it: {e}"
        );
        ensure!(e["object"]["kind"] == "ConfigMap", "{e}");
    }
    Ok(())
}

/// `--tls-san` names are in the serving certificate, `--write-kubeconfig` gets a working kubeconfig, the health
/// endpoints and `/version` answer without credentials, and everything else refuses them
/// with a 401 Status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sans_kubeconfig_copy_and_unauthenticated_endpoints() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let copy = dir.path().join("elsewhere").join("admin.yaml");
    let data = dir.path().join("data");
    let sans = vec!["skiff.example.test".to_owned(), "10.9.8.7".to_owned()];
    let args = |sans: Vec<String>| -> Result<ServerArgs> {
        let mut args = test_args(&data, None)?;
        args.tls_san = sans;
        args.write_kubeconfig = Some(copy.clone());
        Ok(args)
    };
    let running = server::start(&args(sans.clone())?).await?;
    ensure!(running.kubeconfig == copy, "{:?}", running.kubeconfig);
    let kubeconfig = std::fs::read_to_string(&copy)?;
    ensure!(kubeconfig.contains(&running.url), "{kubeconfig}");
    ensure!(
        kubeconfig == std::fs::read_to_string(data.join("kubeconfig.yaml"))?,
        "the copy differs from the data dir's kubeconfig"
    );
    let client = Client::try_from(
        kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&copy)?,
            &KubeConfigOptions::default(),
        )
        .await?,
    )?;
    let nss: Api<Namespace> = Api::all(client);
    ensure!(nss.get("default").await.is_ok());

    let tls = data.join("server").join("tls");
    let port: u16 = running.url.rsplit(':').next().unwrap_or("").parse()?;
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let ca = reqwest::Certificate::from_pem(&std::fs::read(tls.join("ca.crt"))?)?;
    // No client certificate; the server's name checked against the certificate.
    let anonymous = reqwest::Client::builder()
        .add_root_certificate(ca)
        .resolve("skiff.example.test", addr)
        .resolve("kubernetes.default.svc", addr)
        .build()?;
    for host in ["skiff.example.test", "kubernetes.default.svc"] {
        for path in ["/livez", "/readyz", "/healthz"] {
            let r = anonymous
                .get(format!("https://{host}:{port}{path}"))
                .send()
                .await
                .with_context(|| format!("{host}{path}"))?;
            ensure!(r.status() == 200, "{host}{path}: {}", r.status());
            ensure!(r.text().await? == "ok", "{host}{path}");
        }
    }
    let version: serde_json::Value = anonymous
        .get(format!("https://skiff.example.test:{port}/version"))
        .send()
        .await?
        .json()
        .await?;
    ensure!(
        version["gitVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("v1.") && v.ends_with("+skiff")),
        "{version}"
    );
    for path in ["/api/v1/namespaces", "/apis", "/openapi/v3"] {
        let r = anonymous
            .get(format!("https://skiff.example.test:{port}{path}"))
            .send()
            .await?;
        ensure!(r.status() == 401, "{path}: {}", r.status());
        let status: serde_json::Value = r.json().await?;
        ensure!(
            status["kind"] == "Status"
                && status["code"] == 401
                && status["reason"] == "Unauthorized",
            "{path}: {status}"
        );
    }
    // The IP SAN, as openssl reads the certificate.
    let text = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(tls.join("serving.crt"))
        .output()?;
    let text = String::from_utf8(text.stdout)?;
    ensure!(
        text.contains("IP Address:10.9.8.7") && text.contains("DNS:skiff.example.test"),
        "{text}"
    );
    drop(running);

    // Restarted on the same data dir (in this process: a dropped server lets go of its
    // datastore) with the same names: the same certificate; with one more: a new one under
    // the same CA.
    let (ca_before, cert_before) = (
        std::fs::read(tls.join("ca.crt"))?,
        std::fs::read(tls.join("serving.crt"))?,
    );
    let running = restart(&args(sans.clone())?).await?;
    ensure!(std::fs::read(tls.join("serving.crt"))? == cert_before);
    drop(running);
    let mut more = sans;
    more.push("another.example.test".into());
    let _running = restart(&args(more)?).await?;
    ensure!(std::fs::read(tls.join("serving.crt"))? != cert_before);
    ensure!(std::fs::read(tls.join("ca.crt"))? == ca_before);
    Ok(())
}

/// Starts a server on a data dir a dropped one used: its tasks let go of the datastore
/// file a moment after the drop.
async fn restart(args: &ServerArgs) -> Result<server::Running> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match server::start(args).await {
            Err(e)
                if format!("{e:#}").contains("in use")
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => return other,
        }
    }
}

fn api_error(e: &kube::Error) -> Option<(u16, String)> {
    match e {
        kube::Error::Api(s) => Some((s.code, s.reason.clone())),
        _ => None,
    }
}

async fn crud_conflicts_and_selectors(client: Client) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "a", "labels": {"app": "x"}}, "data": {"k": "1"}
    }))?;
    let created = cms.create(&PostParams::default(), &cm).await?;
    let rv = created
        .metadata
        .resource_version
        .clone()
        .context("no resourceVersion")?;
    let e = cms
        .create(&PostParams::default(), &cm)
        .await
        .err()
        .context("second create succeeded")?;
    ensure!(
        api_error(&e) == Some((409, "AlreadyExists".into())),
        "{e:?}"
    );

    // Replace with the current version, then again with the stale one.
    let mut changed = created.clone();
    changed.data = Some([("k".to_owned(), "2".to_owned())].into());
    let replaced = cms.replace("a", &PostParams::default(), &changed).await?;
    ensure!(
        replaced
            .data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(String::as_str)
            == Some("2")
    );
    let mut stale = changed.clone();
    stale.metadata.resource_version = Some(rv);
    let e = cms
        .replace("a", &PostParams::default(), &stale)
        .await
        .err()
        .context("stale replace succeeded")?;
    ensure!(api_error(&e) == Some((409, "Conflict".into())), "{e:?}");

    let other: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "b", "labels": {"app": "y"}}}))?;
    cms.create(&PostParams::default(), &other).await?;
    let selected = cms.list(&ListParams::default().labels("app=x")).await?;
    ensure!(selected.items.len() == 1 && selected.items[0].metadata.name.as_deref() == Some("a"));
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=b"))
        .await?;
    ensure!(by_name.items.len() == 1);
    // Pagination: pages of one item, consistent.
    let page = cms.list(&ListParams::default().limit(1)).await?;
    ensure!(page.items.len() == 1 && page.metadata.continue_.is_some());

    cms.delete("a", &DeleteParams::default()).await?;
    let e = cms
        .get("a")
        .await
        .err()
        .context("deleted object still there")?;
    ensure!(api_error(&e) == Some((404, "NotFound".into())), "{e:?}");

    let e = Api::<ConfigMap>::namespaced(client.clone(), "missing")
        .create(&PostParams::default(), &cm)
        .await
        .err()
        .context("create in a missing namespace succeeded")?;
    ensure!(api_error(&e) == Some((404, "NotFound".into())), "{e:?}");
    Ok(())
}

/// Patches and server-side applies without a resourceVersion that race each other all land
/// (the server applies each again to what another writer stored, as upstream); a patch that
/// names a stale resourceVersion is refused with 409.
async fn concurrent_patches_are_reapplied_not_refused(client: Client) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "raced"}}))?;
    let created = cms.create(&PostParams::default(), &cm).await?;
    let patches = (0..16).map(|i| {
        let cms = cms.clone();
        tokio::spawn(async move {
            cms.patch(
                "raced",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {format!("l{i}"): "x"}}})),
            )
            .await
        })
    });
    for result in futures::future::join_all(patches).await {
        result??;
    }
    // Server-side applies by as many managers race the same way.
    let applies = (0..8).map(|i| {
        let cms = cms.clone();
        tokio::spawn(async move {
            cms.patch(
                "raced",
                &PatchParams::apply(&format!("manager-{i}")),
                &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "raced", "labels": {format!("a{i}"): "x"}}})),
            )
            .await
        })
    });
    for result in futures::future::join_all(applies).await {
        result??;
    }
    let got = cms.get("raced").await?;
    let managers = got.metadata.managed_fields.clone().unwrap_or_default();
    ensure!(
        managers
            .iter()
            .filter(|m| m.operation.as_deref() == Some("Apply"))
            .count()
            == 8,
        "{managers:?}"
    );
    let labels = got.metadata.labels.unwrap_or_default();
    ensure!(
        labels.len() == 24,
        "labels after 16 racing patches and 8 applies: {labels:?}"
    );
    let stale = created
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default();
    let err = cms
        .patch(
            "raced",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": stale, "labels": {"late": "x"}}})),
        )
        .await
        .expect_err("a stale resourceVersion in a patch");
    ensure!(api_error(&err) == Some((409, "Conflict".into())), "{err:?}");
    let current = got.metadata.resource_version.unwrap_or_default();
    cms.patch(
        "raced",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"resourceVersion": current, "labels": {"late": "x"}}})),
    )
    .await?;
    Ok(())
}

async fn patches_status_and_scale(client: Client) -> Result<()> {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))?;
    deploys.create(&PostParams::default(), &d).await?;
    let patched = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await?;
    ensure!(
        patched.metadata.generation == Some(1),
        "a metadata patch changed generation"
    );
    let patched = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(json!([
                {"op": "replace", "path": "/spec/replicas", "value": 4}
            ]))?),
        )
        .await?;
    ensure!(patched.spec.as_ref().and_then(|s| s.replicas) == Some(4));
    ensure!(patched.metadata.generation == Some(2));
    // Status: only through the subresource, and it leaves spec alone.
    let with_status = deploys
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 4}, "spec": {"replicas": 9}})),
        )
        .await?;
    ensure!(with_status.status.as_ref().and_then(|s| s.replicas) == Some(4));
    ensure!(with_status.spec.as_ref().and_then(|s| s.replicas) == Some(4));
    let ignored = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 0}})),
        )
        .await?;
    ensure!(
        ignored.status.as_ref().and_then(|s| s.replicas) == Some(4),
        "main resource changed status"
    );
    // Scale.
    let scale = deploys.get_scale("web").await?;
    ensure!(scale.spec.as_ref().and_then(|s| s.replicas) == Some(4));
    ensure!(scale.status.as_ref().and_then(|s| s.selector.as_deref()) == Some("app=web"));
    deploys
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await?;
    ensure!(deploys.get("web").await?.spec.and_then(|s| s.replicas) == Some(2));
    // A failing JSON patch test changes nothing.
    let e = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(json!([
                {"op": "test", "path": "/spec/replicas", "value": 99},
                {"op": "replace", "path": "/spec/replicas", "value": 7}
            ]))?),
        )
        .await
        .err()
        .context("failing test op applied")?;
    ensure!(api_error(&e).map(|(c, _)| c) == Some(422), "{e:?}");
    ensure!(deploys.get("web").await?.spec.and_then(|s| s.replicas) == Some(2));
    Ok(())
}

async fn watcher_sees_changes_and_a_deleted_namespace_terminates(client: Client) -> Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "w"}}))?;
    namespaces.create(&PostParams::default(), &ns).await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "w");
    let mut events = watcher(cms.clone(), watcher::Config::default()).boxed();
    // The initial list completes, then the create arrives.
    let init_done = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = events.try_next().await? {
            if matches!(ev, watcher::Event::InitDone) {
                return Ok::<_, anyhow::Error>(());
            }
        }
        anyhow::bail!("watch ended")
    });
    init_done.await??;
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "seen"}}))?;
    cms.create(&PostParams::default(), &cm).await?;
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = events.try_next().await? {
            if let watcher::Event::Apply(o) = ev {
                return Ok::<_, anyhow::Error>(o.metadata.name);
            }
        }
        anyhow::bail!("watch ended")
    });
    ensure!(seen.await??.as_deref() == Some("seen"));
    // Deleted, the namespace turns Terminating; emptying and removing it is the namespace
    // controller's (tests/controlplane.rs: these scenarios run the API server alone).
    namespaces.delete("w", &DeleteParams::default()).await?;
    let phase = namespaces.get("w").await?.status.and_then(|s| s.phase);
    ensure!(phase.as_deref() == Some("Terminating"), "{phase:?}");
    Ok(())
}

/// Sends a raw request; answers (status code, body as JSON).
async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(u16, serde_json::Value)> {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Content-Type", content_type)
        .body(body)?;
    let resp = client.send(req.map(kube::client::Body::from)).await?;
    let code = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await?
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Ok((code, value))
}

async fn bad_input_gets_upstream_status(client: Client) -> Result<()> {
    let cms = "/api/v1/namespaces/default/configmaps";
    // (method, path, content type, body, expected code, expected reason)
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Vec<u8>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        ("POST", cms, "application/json", b"{not json".to_vec(), 400, "BadRequest"),
        ("POST", cms, "application/json", br#"{"apiVersion":"apps/v1","kind":"ConfigMap","metadata":{"name":"x"}}"#.to_vec(), 400, "BadRequest"),
        ("POST", cms, "application/json", br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#.to_vec(), 400, "BadRequest"),
        ("POST", cms, "application/json", br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x","namespace":"other"}}"#.to_vec(), 400, "BadRequest"),
        ("POST", cms, "application/json", br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a/b"}}"#.to_vec(), 422, "Invalid"),
        ("POST", cms, "application/json", br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#.to_vec(), 422, "Invalid"),
        ("POST", cms, "application/json", br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":5}}"#.to_vec(), 400, "BadRequest"),
        ("POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict", "application/json", br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"dataa":{}}"#.to_vec(), 400, "BadRequest"),
        ("POST", cms, "application/json", vec![b' '; 3 * 1024 * 1024 + 1], 413, "RequestEntityTooLarge"),
        ("POST", cms, "text/plain", b"hello".to_vec(), 415, "UnsupportedMediaType"),
        ("GET", "/api/v1/namespaces/default/flurbs", "application/json", vec![], 404, "NotFound"),
        ("GET", "/apis/nope.example.com/v1/things", "application/json", vec![], 404, "NotFound"),
        ("PUT", cms, "application/json", b"{}".to_vec(), 405, "MethodNotAllowed"),
        ("POST", "/api/v1/componentstatuses", "application/json", b"{}".to_vec(), 405, "MethodNotAllowed"),
        ("GET", "/api/v1/namespaces/default/configmaps?continue=garbage", "application/json", vec![], 400, "BadRequest"),
        ("GET", "/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20(", "application/json", vec![], 400, "BadRequest"),
        ("GET", "/api/v1/namespaces/default/configmaps?resourceVersion=abc&resourceVersionMatch=Exact", "application/json", vec![], 400, "BadRequest"),
        ("GET", "/api/v1/namespaces/default/configmaps?resourceVersionMatch=Exact", "application/json", vec![], 400, "BadRequest"),
        ("PATCH", "/api/v1/namespaces/default/configmaps/kube-root", "application/merge-patch+json", b"{}".to_vec(), 404, "NotFound"),
    ];
    for (method, path, ct, body, code, reason) in cases {
        let (got, status) = raw(&client, method, path, ct, body).await?;
        ensure!(got == code, "{method} {path}: {got} {status}");
        ensure!(
            status["kind"] == "Status" && status["status"] == "Failure" && status["code"] == code,
            "{method} {path}: {status}"
        );
        ensure!(status["reason"] == reason, "{method} {path}: {status}");
        ensure!(
            status["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{status}"
        );
    }
    // Nothing above was stored; unknown query parameters are ignored.
    let (code, list) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps?flurb=1",
        "application/json",
        vec![],
    )
    .await?;
    ensure!(
        code == 200 && list["items"].as_array().is_some_and(Vec::is_empty),
        "{list}"
    );
    Ok(())
}

/// Strategic merge patches over raw HTTP: what a good one does (also on status and scale,
/// with kube-rs's `Patch::Strategic`), and the Status each malformed one gets.
async fn strategic_merge_patch_statuses(client: Client) -> Result<()> {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [
                                  {"name": "a", "image": "busybox", "env": [{"name": "X", "value": "1"}]},
                                  {"name": "b", "image": "busybox"}]}}}
    }))?;
    deploys.create(&PostParams::default(), &d).await?;
    let patched = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
                "containers": [{"name": "a", "image": "nginx"}]}}}})),
        )
        .await?;
    let containers = patched
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    ensure!(names == ["b", "a"], "{names:?}");
    ensure!(containers[1].image.as_deref() == Some("nginx"));
    ensure!(
        containers[1].env.as_ref().map(Vec::len) == Some(1),
        "the env var was merged away"
    );
    let with_status = deploys
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"status": {"replicas": 2}})),
        )
        .await?;
    ensure!(with_status.status.as_ref().and_then(|s| s.replicas) == Some(2));
    let scale = deploys
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"replicas": 5}})),
        )
        .await?;
    ensure!(scale.spec.as_ref().and_then(|s| s.replicas) == Some(5));

    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    let smp = "application/strategic-merge-patch+json";
    // (body, expected code, expected reason, part of the expected message)
    let cases: Vec<(&[u8], u16, &str, &str)> = vec![
        (
            b"{not json",
            400,
            "BadRequest",
            "invalid strategic merge patch",
        ),
        (
            b"[1]",
            400,
            "BadRequest",
            "json: cannot unmarshal array into Go value of type map[string]interface {}",
        ),
        (
            br#"{"spec":{"template":{"spec":{"containers":[{"image":"x"}]}}}}"#,
            400,
            "BadRequest",
            "map: map[image:x] does not contain declared merge key: name",
        ),
        (
            br#"{"spec":{"template":{"spec":{"containers":[{"name":"a","$patch":"frob"}]}}}}"#,
            400,
            "BadRequest",
            "unknown patch type: frob in map: map[$patch:frob name:a]",
        ),
        (
            br#"{"spec":{"template":{"spec":{"$setElementOrder/containers":"a"}}}}"#,
            400,
            "BadRequest",
            "expected a []interface {}, but received a string",
        ),
        (
            br#"{"spec":{"strategy":{"$retainKeys":["type"],"rollingUpdate":{}}}}"#,
            400,
            "BadRequest",
            "invalid patch format of retainKeys",
        ),
        // A valid patch whose result is not a valid Deployment.
        (
            br#"{"spec":{"replicas":-1}}"#,
            422,
            "Invalid",
            "spec.replicas",
        ),
        // A stale resourceVersion in the patch is a precondition.
        (
            br#"{"metadata":{"resourceVersion":"1"},"spec":{"replicas":2}}"#,
            409,
            "Conflict",
            "the object has been modified",
        ),
    ];
    for (body, code, reason, message) in cases {
        let (got, status) = raw(&client, "PATCH", path, smp, body.to_vec()).await?;
        let text = String::from_utf8_lossy(body);
        ensure!(got == code, "{text}: {got} {status}");
        ensure!(status["reason"] == reason, "{text}: {status}");
        ensure!(
            status["message"]
                .as_str()
                .is_some_and(|m| m.contains(message)),
            "{text}: {status}"
        );
    }
    // None of them changed anything.
    let d = deploys.get("web").await?;
    ensure!(d.spec.as_ref().and_then(|s| s.replicas) == Some(5));
    Ok(())
}

async fn gzip_when_asked_but_never_for_watches(client: Client) -> Result<()> {
    let encoding = |path: &'static str| {
        let client = client.clone();
        async move {
            let req = http::Request::builder()
                .uri(path)
                .header("Accept-Encoding", "gzip")
                .body(Vec::new())?;
            let resp = client.send(req.map(kube::client::Body::from)).await?;
            Ok::<_, anyhow::Error>(
                resp.headers()
                    .get("content-encoding")
                    .map(|v| v.to_str().unwrap_or("").to_owned()),
            )
        }
    };
    ensure!(encoding("/openapi/v3/api/v1").await?.as_deref() == Some("gzip"));
    ensure!(encoding("/api/v1/namespaces?watch=true&timeoutSeconds=1")
        .await?
        .is_none());
    Ok(())
}

/// Reads watch events (one JSON object per line) until `n` arrived, the server ended the
/// stream, or `wait` passed; answers the events and whether the server ended the stream.
async fn watch_stream(
    client: &Client,
    path: &str,
    n: usize,
    wait: Duration,
) -> Result<(Vec<serde_json::Value>, bool)> {
    let req = http::Request::builder().uri(path).body(Vec::new())?;
    let resp = client.send(req.map(kube::client::Body::from)).await?;
    ensure!(
        resp.status().as_u16() == 200,
        "watch answered {}",
        resp.status()
    );
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut ended = false;
    while events.len() < n {
        let frame = match tokio::time::timeout_at(
            deadline,
            http_body_util::BodyExt::frame(&mut body),
        )
        .await
        {
            Ok(Some(frame)) => frame?,
            Ok(None) => {
                ended = true;
                break;
            }
            Err(_) => break,
        };
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                events.push(serde_json::from_slice(&line)?);
            }
        }
    }
    Ok((events, ended))
}

async fn watch_events(
    client: &Client,
    path: &str,
    n: usize,
    wait: Duration,
) -> Result<Vec<serde_json::Value>> {
    Ok(watch_stream(client, path, n, wait).await?.0)
}

async fn watch_semantics(client: Client) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mk = |name: &str, tier: &str| -> Result<ConfigMap> {
        Ok(serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"tier": tier}}}),
        )?)
    };
    cms.create(&PostParams::default(), &mk("before", "web")?)
        .await?;
    let rv = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .context("no list rv")?;

    // Selector transitions: leaving the selector is DELETED, coming back is ADDED.
    let path = format!("/api/v1/namespaces/default/configmaps?watch=true&labelSelector=tier%3Dweb&resourceVersion={rv}");
    let watcher = {
        let client = client.clone();
        tokio::spawn(async move { watch_events(&client, &path, 4, Duration::from_secs(15)).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    cms.create(&PostParams::default(), &mk("a", "web")?).await?;
    cms.create(&PostParams::default(), &mk("b", "db")?).await?; // never matches
    let relabel = |tier: &str| Patch::Merge(json!({"metadata": {"labels": {"tier": tier}}}));
    cms.patch("a", &PatchParams::default(), &relabel("db"))
        .await?;
    cms.patch("a", &PatchParams::default(), &relabel("web"))
        .await?;
    cms.delete("a", &DeleteParams::default()).await?;
    let events = watcher.await??;
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("").to_owned(),
                e["object"]["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("ADDED", "a"),
        ("DELETED", "a"),
        ("ADDED", "a"),
        ("DELETED", "a"),
    ]
    .iter()
    .map(|(t, n)| ((*t).into(), (*n).into()))
    .collect();
    ensure!(seen == want, "{seen:?}");
    let rvs: Vec<i64> = events
        .iter()
        .filter_map(|e| {
            e["object"]["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|r| r.parse().ok())
        })
        .collect();
    ensure!(
        rvs.windows(2).all(|w| w[0] < w[1]),
        "resourceVersions not increasing: {rvs:?}"
    );

    // sendInitialEvents: the current state as ADDED, then the initial-events-end bookmark.
    let path = "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&labelSelector=tier%3Dweb";
    let events = watch_events(&client, path, 2, Duration::from_secs(10)).await?;
    ensure!(events.len() == 2, "{events:?}");
    ensure!(
        events[0]["type"] == "ADDED" && events[0]["object"]["metadata"]["name"] == "before",
        "{events:?}"
    );
    ensure!(events[1]["type"] == "BOOKMARK", "{events:?}");
    ensure!(
        events[1]["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"] == "true",
        "{events:?}"
    );
    // sendInitialEvents without bookmarks is refused as upstream.
    let (code, status) = raw(
        &client,
        "GET",
        "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true",
        "application/json",
        vec![],
    )
    .await?;
    ensure!(code == 400, "{status}");

    // timeoutSeconds: the server ends the stream (the 60 s limit here is only a backstop).
    let path = format!(
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1&resourceVersion={rv}"
    );
    let (events, ended) = watch_stream(&client, &path, 100, Duration::from_secs(60)).await?;
    ensure!(
        ended,
        "the server did not end the watch after timeoutSeconds"
    );
    ensure!(events.iter().all(|e| e["type"] != "ERROR"), "{events:?}");
    Ok(())
}

/// Pods: defaulting, binding, graceful deletion of a bound pod (kept through its kubelet's
/// status updates until a delete with grace 0), eviction, and the pod Table.
async fn pod_lifecycle(client: Client) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = |name: &str| -> Result<Pod> {
        Ok(serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "p"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        }))?)
    };
    let created = pods
        .create(&PostParams::default(), &pod("unbound")?)
        .await?;
    let spec = created.spec.as_ref().context("no spec")?;
    ensure!(
        spec.restart_policy.as_deref() == Some("Always")
            && spec.termination_grace_period_seconds == Some(30)
            && spec.containers[0].termination_message_path.as_deref()
                == Some("/dev/termination-log"),
        "pod not defaulted: {spec:?}"
    );
    ensure!(created.status.and_then(|s| s.phase).as_deref() == Some("Pending"));
    // A pod on no node goes at once.
    pods.delete("unbound", &DeleteParams::default()).await?;
    ensure!(pods.get_opt("unbound").await?.is_none());

    // Bound through pods/binding, then deleted: it waits for its kubelet.
    pods.create(&PostParams::default(), &pod("bound")?).await?;
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bound"},
                         "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}});
    let (code, body) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/pods/bound/binding",
        "application/json",
        serde_json::to_vec(&binding)?,
    )
    .await?;
    ensure!(code == 201, "binding answered {code}: {body}");
    let bound = pods.get("bound").await?;
    ensure!(bound.spec.and_then(|s| s.node_name).as_deref() == Some("n1"));
    let (code, body) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/pods/bound/binding",
        "application/json",
        serde_json::to_vec(&binding)?,
    )
    .await?;
    ensure!(code == 409, "a second binding answered {code}: {body}");
    pods.delete("bound", &DeleteParams::default()).await?;
    let marked = pods.get("bound").await?;
    ensure!(
        marked.metadata.deletion_timestamp.is_some()
            && marked.metadata.deletion_grace_period_seconds == Some(30),
        "{:?}",
        marked.metadata
    );
    // The kubelet reports status while it stops the containers: the pod stays.
    pods.patch_status(
        "bound",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"phase": "Running"}})),
    )
    .await?;
    ensure!(
        pods.get_opt("bound").await?.is_some(),
        "a status update removed a pod in its grace period"
    );
    pods.delete("bound", &DeleteParams::default().grace_period(0))
        .await?;
    ensure!(pods.get_opt("bound").await?.is_none());

    // Eviction deletes (no disruption budgets yet).
    pods.create(&PostParams::default(), &pod("evicted")?)
        .await?;
    let eviction = json!({"apiVersion": "policy/v1", "kind": "Eviction",
                          "metadata": {"name": "evicted", "namespace": "default"}});
    let (code, body) = raw(
        &client,
        "POST",
        "/api/v1/namespaces/default/pods/evicted/eviction",
        "application/json",
        serde_json::to_vec(&eviction)?,
    )
    .await?;
    ensure!(code == 201, "eviction answered {code}: {body}");
    ensure!(pods.get_opt("evicted").await?.is_none());

    // The pod Table has upstream's columns.
    pods.create(&PostParams::default(), &pod("listed")?).await?;
    let req = http::Request::builder()
        .uri("/api/v1/namespaces/default/pods")
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Vec::new())?;
    let table: serde_json::Value = client.request(req).await?;
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .context("no columns")?
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    ensure!(
        columns
            == [
                "Name",
                "Ready",
                "Status",
                "Restarts",
                "Age",
                "IP",
                "Node",
                "Nominated Node",
                "Readiness Gates"
            ],
        "{columns:?}"
    );
    let row = &table["rows"][0]["cells"];
    ensure!(
        row[0] == "listed" && row[1] == "0/1" && row[2] == "Pending",
        "{row}"
    );
    Ok(())
}

async fn server_side_apply_round_trip(client: Client) -> Result<()> {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let config = |replicas: i32, image: &str| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "ssa"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "ssa"}},
                "template": {
                    "metadata": {"labels": {"app": "ssa"}},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                },
            },
        })
    };
    // Apply to an absent object creates it.
    let created = deploys
        .patch(
            "ssa",
            &PatchParams::apply("mgr"),
            &Patch::Apply(config(1, "nginx")),
        )
        .await?;
    let spec = created.spec.as_ref().context("spec")?;
    ensure!(spec.replicas == Some(1));
    let managed = created.metadata.managed_fields.clone().unwrap_or_default();
    ensure!(managed.len() == 1, "{managed:?}");
    ensure!(
        managed[0].manager.as_deref() == Some("mgr")
            && managed[0].operation.as_deref() == Some("Apply")
            && managed[0].fields_type.as_deref() == Some("FieldsV1"),
        "{managed:?}"
    );
    // Re-apply changes the image; a merge patch by another client takes replicas.
    let applied = deploys
        .patch(
            "ssa",
            &PatchParams::apply("mgr"),
            &Patch::Apply(config(1, "nginx:2")),
        )
        .await?;
    let image = applied
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone());
    ensure!(image.as_deref() == Some("nginx:2"), "{image:?}");
    deploys
        .patch(
            "ssa",
            &PatchParams {
                field_manager: Some("scaler".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await?;
    let e = deploys
        .patch(
            "ssa",
            &PatchParams::apply("mgr"),
            &Patch::Apply(config(1, "nginx:2")),
        )
        .await
        .err()
        .context("conflicting apply succeeded")?;
    let kube::Error::Api(status) = &e else {
        anyhow::bail!("{e:?}");
    };
    ensure!(
        status.code == 409 && status.reason == "Conflict",
        "{status:?}"
    );
    ensure!(
        status.message
            == r#"Apply failed with 1 conflict: conflict with "scaler" using apps/v1: .spec.replicas"#,
        "{status:?}"
    );
    // The causes, as upstream: one FieldManagerConflict per field.
    let (code, body) = raw(
        &client,
        "PATCH",
        "/apis/apps/v1/namespaces/default/deployments/ssa?fieldManager=mgr",
        "application/apply-patch+yaml",
        config(1, "nginx:2").to_string().into_bytes(),
    )
    .await?;
    ensure!(code == 409, "{body}");
    ensure!(
        body["details"]["causes"]
            == json!([{
                "reason": "FieldManagerConflict",
                "message": "conflict with \"scaler\" using apps/v1",
                "field": ".spec.replicas",
            }]),
        "{body}"
    );
    let forced = deploys
        .patch(
            "ssa",
            &PatchParams::apply("mgr").force(),
            &Patch::Apply(config(1, "nginx:2")),
        )
        .await?;
    ensure!(forced.spec.as_ref().and_then(|s| s.replicas) == Some(1));
    let managers: Vec<_> = forced
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.manager)
        .collect();
    ensure!(
        managers == vec!["mgr".to_owned()],
        "scaler lost its only field: {managers:?}"
    );

    // Apply to the status subresource: its own entry, owning only status.
    let with_status = deploys
        .patch_status(
            "ssa",
            &PatchParams::apply("ctrl"),
            &Patch::Apply(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "ssa"},
                "status": {"observedGeneration": 7},
            })),
        )
        .await?;
    ensure!(
        with_status
            .status
            .as_ref()
            .and_then(|s| s.observed_generation)
            == Some(7),
        "{:?}",
        with_status.status
    );
    let entries = with_status.metadata.managed_fields.unwrap_or_default();
    let ctrl = entries
        .iter()
        .find(|m| m.manager.as_deref() == Some("ctrl"))
        .context("ctrl's entry")?;
    ensure!(
        ctrl.subresource.as_deref() == Some("status")
            && ctrl.operation.as_deref() == Some("Apply")
            && ctrl.fields_v1.as_ref().map(|f| f.0.clone())
                == Some(json!({"f:status": {"f:observedGeneration": {}}})),
        "{ctrl:?}"
    );

    // Refusals, as upstream answers them.
    let path = "/apis/apps/v1/namespaces/default/deployments/ssa";
    let apply_ct = "application/apply-patch+yaml";
    let body = config(1, "nginx").to_string().into_bytes();
    let (code, status) = raw(&client, "PATCH", path, apply_ct, body.clone()).await?;
    ensure!(code == 422, "{status}");
    ensure!(
        status["message"]
            == r#"PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch"#,
        "{status}"
    );
    let (code, status) = raw(
        &client,
        "PATCH",
        &format!("{path}?force=true"),
        "application/merge-patch+json",
        b"{}".to_vec(),
    )
    .await?;
    ensure!(code == 422, "{status}");
    ensure!(
        status["message"]
            == r#"PatchOptions.meta.k8s.io "" is invalid: force: Forbidden: may not be specified for non-apply patch"#,
        "{status}"
    );
    let mut other_name = config(1, "nginx");
    other_name["metadata"]["name"] = json!("other");
    let (code, status) = raw(
        &client,
        "PATCH",
        &format!("{path}?fieldManager=mgr"),
        apply_ct,
        other_name.to_string().into_bytes(),
    )
    .await?;
    ensure!(code == 400, "{status}");
    let mut other_kind = config(1, "nginx");
    other_kind["kind"] = json!("StatefulSet");
    let (code, status) = raw(
        &client,
        "PATCH",
        &format!("{path}?fieldManager=mgr"),
        apply_ct,
        other_kind.to_string().into_bytes(),
    )
    .await?;
    ensure!(code == 400, "{status}");
    ensure!(
        status["message"]
            == "invalid object type: apps/v1, Kind=StatefulSet, expected: apps/v1, Kind=Deployment",
        "{status}"
    );
    // Undeclared fields: refused when strict, dropped (with a warning) otherwise.
    let mut unknown = config(1, "nginx:2");
    unknown["spec"]["replicasx"] = json!(2);
    let (code, status) = raw(
        &client,
        "PATCH",
        &format!("{path}?fieldManager=mgr&fieldValidation=Strict&force=true"),
        apply_ct,
        unknown.to_string().into_bytes(),
    )
    .await?;
    ensure!(code == 400, "{status}");
    ensure!(
        status["message"]
            == "failed to create typed patch object (apps/v1, Kind=Deployment): .spec.replicasx: field not declared in schema",
        "{status}"
    );
    let (code, d) = raw(
        &client,
        "PATCH",
        &format!("{path}?fieldManager=mgr&force=true"),
        apply_ct,
        unknown.to_string().into_bytes(),
    )
    .await?;
    ensure!(
        code == 200 && d["spec"].get("replicasx").is_none(),
        "{code} {d}"
    );
    ensure!(
        !d["metadata"]["managedFields"]
            .to_string()
            .contains("replicasx"),
        "{d}"
    );
    // A YAML body creates (201).
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  k: v\n";
    let (code, cm) = raw(
        &client,
        "PATCH",
        "/api/v1/namespaces/default/configmaps/from-yaml?fieldManager=mgr",
        apply_ct,
        yaml.as_bytes().to_vec(),
    )
    .await?;
    ensure!(code == 201 && cm["data"]["k"] == "v", "{code} {cm}");
    Ok(())
}

/// GETs `path`, which must answer 200; answers the body.
async fn get_json(client: &Client, path: &str) -> Result<serde_json::Value> {
    let (code, body) = raw(client, "GET", path, "application/json", vec![]).await?;
    ensure!(code == 200, "GET {path} answered {code}: {body}");
    Ok(body)
}

async fn hpas_are_one_resource_in_two_versions(client: Client) -> Result<()> {
    use k8s_openapi::api::autoscaling::{v1, v2};
    let v2s: Api<v2::HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let v1s: Api<v1::HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let hpa: v2::HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 5,
            "metrics": [
                {"type": "Resource", "resource": {"name": "memory",
                    "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                {"type": "Resource", "resource": {"name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 60}}},
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120}},
        },
    }))?;
    let created = v2s.create(&PostParams::default(), &hpa).await?;
    let rv_before = created.metadata.resource_version.clone();

    // Read through v1: v1's shape, with what v1 cannot say in the annotations.
    let path = "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers/web";
    let as_v1 = get_json(&client, path).await?;
    ensure!(as_v1["apiVersion"] == "autoscaling/v1", "{as_v1}");
    ensure!(
        as_v1["spec"]["targetCPUUtilizationPercentage"] == 60,
        "{as_v1}"
    );
    ensure!(as_v1["spec"].get("metrics").is_none(), "{as_v1}");
    let annotations = &as_v1["metadata"]["annotations"];
    ensure!(
        annotations["autoscaling.alpha.kubernetes.io/metrics"]
            .as_str()
            .is_some_and(|m| m.contains("memory")),
        "{as_v1}"
    );
    ensure!(
        annotations["autoscaling.alpha.kubernetes.io/behavior"].is_string(),
        "{as_v1}"
    );

    // Written back through v1 as read (a label added): v2 sees everything it had.
    let mut through_v1 = v1s.get("web").await?;
    through_v1
        .metadata
        .labels
        .get_or_insert_default()
        .insert("via".into(), "v1".into());
    v1s.replace("web", &PostParams::default(), &through_v1)
        .await?;
    let after = v2s.get("web").await?;
    ensure!(after.metadata.resource_version != rv_before);
    ensure!(after.metadata.labels.as_ref().and_then(|l| l.get("via")) == Some(&"v1".to_owned()));
    ensure!(
        after.spec == created.spec,
        "{:?} != {:?}",
        after.spec,
        created.spec
    );
    ensure!(
        after.metadata.annotations.is_none(),
        "{:?}",
        after.metadata.annotations
    );

    // Created through v1, read through v2: the CPU target is a Resource metric.
    let small: v1::HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "small"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "small"},
                 "maxReplicas": 3, "targetCPUUtilizationPercentage": 50},
    }))?;
    let answer = v1s.create(&PostParams::default(), &small).await?;
    ensure!(
        answer
            .spec
            .and_then(|s| s.target_cpu_utilization_percentage)
            == Some(50)
    );
    let as_v2 = get_json(
        &client,
        "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/small",
    )
    .await?;
    ensure!(as_v2["apiVersion"] == "autoscaling/v2", "{as_v2}");
    ensure!(
        as_v2["spec"]["metrics"]
            == json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 50}}}]),
        "{as_v2}"
    );

    // The status v1 keeps in annotations is status: a v1 update that drops them keeps it.
    let status = json!({"status": {"currentReplicas": 1, "desiredReplicas": 1,
        "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
            "current": {"averageUtilization": 20, "averageValue": "100m"}}}],
        "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"}]}});
    v2s.patch_status(
        "small",
        &PatchParams::default(),
        &Patch::Merge(status.clone()),
    )
    .await?;
    let mut bare = v1s.get("small").await?;
    ensure!(
        bare.status
            .as_ref()
            .and_then(|s| s.current_cpu_utilization_percentage)
            == Some(20),
        "{bare:?}"
    );
    bare.metadata.annotations = None;
    v1s.replace("small", &PostParams::default(), &bare).await?;
    let kept = v2s.get("small").await?;
    ensure!(
        serde_json::to_value(&kept.status)? == status["status"],
        "{:?}",
        kept.status
    );

    // A behavior given to v1 in upstream's annotation lands in v2's field, with v2's
    // defaults filled in.
    let tuned: v1::HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "tuned", "annotations": {
            "autoscaling.alpha.kubernetes.io/behavior": r#"{"ScaleDown":{"StabilizationWindowSeconds":60}}"#}},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tuned"},
                 "maxReplicas": 3},
    }))?;
    v1s.create(&PostParams::default(), &tuned).await?;
    let tuned = v2s.get("tuned").await?;
    let behavior = tuned.spec.and_then(|s| s.behavior).context("no behavior")?;
    let down = behavior.scale_down.context("no scaleDown")?;
    ensure!(down.stabilization_window_seconds == Some(60));
    ensure!(down.select_policy.as_deref() == Some("Max"), "{down:?}");
    ensure!(behavior
        .scale_up
        .is_some_and(|up| up.policies.is_some_and(|p| p.len() == 2)));
    ensure!(tuned.metadata.annotations.is_none());
    v2s.delete("tuned", &DeleteParams::default()).await?;

    // Lists of either version see both, each in the version asked for (the JSON list path
    // and the typed one).
    for (version, field) in [("v1", "targetCPUUtilizationPercentage"), ("v2", "metrics")] {
        let list = get_json(
            &client,
            &format!("/apis/autoscaling/{version}/namespaces/default/horizontalpodautoscalers"),
        )
        .await?;
        let items = list["items"].as_array().context("no items")?;
        ensure!(items.len() == 2, "{list}");
        for item in items {
            ensure!(
                item["apiVersion"] == format!("autoscaling/{version}")
                    && item["spec"].get(field).is_some(),
                "{item}"
            );
        }
    }
    ensure!(v1s.list(&ListParams::default()).await?.items.len() == 2);
    ensure!(
        v2s.list(&ListParams::default().labels("via=v1"))
            .await?
            .items
            .len()
            == 1
    );

    // A v1 watcher sees a change made through v2, in v1's shape.
    let rv = v1s
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .context("no list rv")?;
    v2s.patch(
        "small",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"maxReplicas": 4}})),
    )
    .await?;
    let events = watch_events(
        &client,
        &format!(
            "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers?watch=true&resourceVersion={rv}"
        ),
        1,
        Duration::from_secs(10),
    )
    .await?;
    ensure!(events.len() == 1, "{events:?}");
    let object = &events[0]["object"];
    ensure!(
        events[0]["type"] == "MODIFIED"
            && object["apiVersion"] == "autoscaling/v1"
            && object["spec"]["maxReplicas"] == 4
            && object["spec"]["targetCPUUtilizationPercentage"] == 50,
        "{events:?}"
    );

    // Deleted through one version, gone from the other.
    v1s.delete("web", &DeleteParams::default()).await?;
    ensure!(v2s.get_opt("web").await?.is_none());
    Ok(())
}

async fn events_are_one_resource_in_two_versions(client: Client) -> Result<()> {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "ev"}}))?;
    namespaces.create(&PostParams::default(), &ns).await?;
    let news: Api<Event> = Api::namespaced(client.clone(), "ev");
    let cores: Api<CoreEvent> = Api::namespaced(client.clone(), "ev");
    let rv = cores
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .context("no list rv")?;

    let new: Event = serde_json::from_value(json!({
        "metadata": {"name": "cm.1"},
        "eventTime": "2024-01-01T00:00:00.000000Z",
        "reportingController": "skiff.io/test", "reportingInstance": "test-1",
        "action": "Testing", "reason": "Tested", "type": "Normal", "note": "from events.k8s.io",
        "regarding": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "ev", "name": "cm"},
    }))?;
    news.create(&PostParams::default(), &new).await?;

    // The same object through core/v1: get, list with core's field names, watch.
    let core = cores.get("cm.1").await?;
    ensure!(core.message.as_deref() == Some("from events.k8s.io"));
    ensure!(core.involved_object.name.as_deref() == Some("cm"));
    ensure!(core.reporting_component.as_deref() == Some("skiff.io/test"));
    let by_object = cores
        .list(&ListParams::default().fields("involvedObject.kind=ConfigMap,involvedObject.name=cm"))
        .await?;
    ensure!(by_object.items.len() == 1);
    let events = watch_events(
        &client,
        &format!("/api/v1/namespaces/ev/events?watch=true&resourceVersion={rv}"),
        1,
        Duration::from_secs(10),
    )
    .await?;
    ensure!(events.len() == 1, "{events:?}");
    let object = &events[0]["object"];
    ensure!(
        events[0]["type"] == "ADDED"
            && object["apiVersion"] == "v1"
            && object["message"] == "from events.k8s.io"
            && object["involvedObject"]["name"] == "cm",
        "{events:?}"
    );

    // And the other way: a core event through events.k8s.io/v1.
    let old: CoreEvent = serde_json::from_value(json!({
        "metadata": {"name": "cm.2"},
        "involvedObject": {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "ev", "name": "cm"},
        "reason": "Old", "message": "from core", "type": "Warning", "count": 3,
        "source": {"component": "tester"},
        "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:05:00Z",
    }))?;
    let rv = news
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .context("no list rv")?;
    cores.create(&PostParams::default(), &old).await?;
    let seen = news.get("cm.2").await?;
    ensure!(seen.note.as_deref() == Some("from core"));
    ensure!(seen.regarding.and_then(|r| r.name).as_deref() == Some("cm"));
    ensure!(seen.deprecated_count == Some(3));
    ensure!(seen.deprecated_source.and_then(|s| s.component).as_deref() == Some("tester"));
    let list = get_json(&client, "/apis/events.k8s.io/v1/namespaces/ev/events").await?;
    let items = list["items"].as_array().context("no items")?;
    ensure!(items.len() == 2, "{list}");
    ensure!(
        items
            .iter()
            .all(|i| i["apiVersion"] == "events.k8s.io/v1" && i.get("regarding").is_some()),
        "{list}"
    );
    let regarding = news
        .list(&ListParams::default().fields("regarding.name=cm,type=Warning"))
        .await?;
    ensure!(regarding.items.len() == 1);
    let events = watch_events(
        &client,
        &format!("/apis/events.k8s.io/v1/namespaces/ev/events?watch=true&resourceVersion={rv}"),
        1,
        Duration::from_secs(10),
    )
    .await?;
    ensure!(events.len() == 1, "{events:?}");
    ensure!(
        events[0]["object"]["apiVersion"] == "events.k8s.io/v1"
            && events[0]["object"]["note"] == "from core",
        "{events:?}"
    );

    // Patched through one version, seen by the other (events.k8s.io keeps an event's
    // fields immutable, core does not).
    news.patch(
        "cm.2",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"seen": "yes"}}})),
    )
    .await?;
    let patched = cores.get("cm.2").await?;
    ensure!(patched.metadata.labels.and_then(|l| l.get("seen").cloned()) == Some("yes".into()));
    ensure!(patched.message.as_deref() == Some("from core"));
    cores
        .patch(
            "cm.2",
            &PatchParams::default(),
            &Patch::Merge(json!({"message": "changed"})),
        )
        .await?;
    ensure!(news.get("cm.2").await?.note.as_deref() == Some("changed"));
    // A deletecollection through one version empties the other's view.
    news.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("seen=yes"),
    )
    .await?;
    ensure!(cores.get_opt("cm.2").await?.is_none());
    ensure!(cores.get_opt("cm.1").await?.is_some());

    // Deleting a namespace with events of both versions: tests/controlplane.rs (it takes the
    // namespace controller, which these scenarios run without).
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stored_under_the_old_events_k8s_io_prefix_are_moved() -> Result<()> {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event;
    use skiff_store::{EmbeddedConfig, EmbeddedStore, Store};
    // What an events.k8s.io/v1 create stored before the two versions shared core's storage.
    let dir = tempfile::tempdir()?;
    {
        let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("server").join("db")))?;
        let old = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "old.1", "namespace": "default", "uid": "u-old"},
            "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "skiff.io/test",
            "reportingInstance": "i", "action": "A", "reason": "Old", "type": "Normal",
            "note": "from before", "regarding": {"kind": "ConfigMap", "namespace": "default", "name": "cm"}});
        store
            .create(
                "/events.k8s.io/events/default/old.1",
                serde_json::to_vec(&old)?.into(),
            )
            .await?;
    }
    let (_server, client, _dir) = start_in(dir, None).await?;
    let core = Api::<CoreEvent>::namespaced(client.clone(), "default")
        .get("old.1")
        .await?;
    ensure!(core.message.as_deref() == Some("from before"));
    ensure!(core.metadata.uid.as_deref() == Some("u-old"));
    let new = Api::<Event>::namespaced(client.clone(), "default")
        .get("old.1")
        .await?;
    ensure!(new.note.as_deref() == Some("from before"));
    Ok(())
}
