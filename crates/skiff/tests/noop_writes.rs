//! Writes that change nothing are not written (upstream's `GuaranteedUpdate`: the new object,
//! encoded without its resourceVersion, equals the stored bytes): the answer is the object as
//! it is, its resourceVersion, generation and managed fields' times unchanged, and no watch
//! sees an event. For PUT, every patch type (server-side apply included), `status`, `scale`
//! and a repeated delete of an object its finalizers hold; a real change still writes.
//!
//! Each scenario runs on a server without controllers or scheduler (nothing else writes the
//! objects it watches), on the embedded datastore and on a real etcd. The "no event" checks
//! are bounded: after the no-op, a real change is made, and the first event the watch
//! (opened before the no-op) delivers must be that change.

mod common;

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Resource, ResourceExt};
use serde_json::{json, Value};

use common::{Cluster, Datastore};

const NS: &str = "default";

/// How long a watch may take to deliver the change that follows a no-op.
const EVENT_WAIT: Duration = Duration::from_secs(30);

/// A server with the API alone: no controller or scheduler writes what the scenarios watch.
async fn api_only(datastore: Datastore) -> Result<Cluster> {
    Cluster::start_with(datastore, |a| {
        a.disable_controller_manager = true;
        a.disable_scheduler = true;
        a.simulated_nodes = 0;
    })
    .await
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(&super::api_only(super::Datastore::Embedded).await?).await
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    super::$name(&super::api_only(super::Datastore::Etcd).await?).await
                }
            )*
        }
    };
}

scenarios!(
    kubectl_apply_of_an_unchanged_manifest_writes_nothing,
    a_put_of_the_object_as_read_writes_nothing,
    patches_to_the_current_values_write_nothing,
    status_and_scale_writes_of_the_same_values_write_nothing,
    a_repeated_delete_of_a_held_object_writes_nothing,
);

fn rv<K: Resource>(obj: &K) -> String {
    obj.resource_version().unwrap_or_default()
}

/// What a no-op must leave alone: resourceVersion, generation and the managed fields (with
/// their times).
fn fingerprint<K: Resource + serde::Serialize>(obj: &K) -> Result<Value> {
    let v = serde_json::to_value(obj)?;
    Ok(json!({
        "resourceVersion": v.pointer("/metadata/resourceVersion"),
        "generation": v.pointer("/metadata/generation"),
        "managedFields": v.pointer("/metadata/managedFields"),
    }))
}

/// The first event a watch delivers (within [`EVENT_WAIT`]), bookmarks skipped.
async fn first_event<K>(
    events: &mut (impl Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
) -> Result<WatchEvent<K>> {
    tokio::time::timeout(EVENT_WAIT, async {
        loop {
            match events.next().await {
                None => bail!("the watch ended"),
                Some(Err(e)) => bail!("the watch failed: {e}"),
                Some(Ok(WatchEvent::Bookmark(_))) => continue,
                Some(Ok(ev)) => return Ok(ev),
            }
        }
    })
    .await
    .context("no event within the bound")?
}

/// The first event after `from` is a MODIFIED of the object at `expected_rv`: nothing came
/// between (the no-ops made no event).
async fn next_event_is_the_change<K: Resource>(
    events: &mut (impl Stream<Item = kube::Result<WatchEvent<K>>> + Unpin),
    expected_rv: &str,
) -> Result<()> {
    match first_event(events).await? {
        WatchEvent::Modified(obj) => ensure!(
            rv(&obj) == expected_rv,
            "the first event after the no-ops is at resourceVersion {}, not the change's {expected_rv}: a no-op made an event",
            rv(&obj)
        ),
        WatchEvent::Error(e) => bail!("watch error: {e:?}"),
        WatchEvent::Added(o) | WatchEvent::Deleted(o) => bail!(
            "expected MODIFIED at {expected_rv}, got ADDED/DELETED at {}",
            rv(&o)
        ),
        WatchEvent::Bookmark(_) => unreachable!("bookmarks are skipped"),
    }
    Ok(())
}

fn deployment_manifest(replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {NS}
  labels:
    app: web
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
        ports:
        - containerPort: 80
"
    )
}

async fn kubectl_apply_of_an_unchanged_manifest_writes_nothing(c: &Cluster) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), NS);
    // Client-side apply: kubectl sends nothing when its patch is empty ("unchanged").
    let out = c.kubectl_stdin(&["apply", "-f", "-"], Some(&deployment_manifest(2)))?;
    ensure!(out.contains("created"), "{out}");
    let created = api.get("web").await?;
    let out = c.kubectl_stdin(&["apply", "-f", "-"], Some(&deployment_manifest(2)))?;
    ensure!(out.contains("unchanged"), "{out}");
    ensure!(fingerprint(&api.get("web").await?)? == fingerprint(&created)?);

    // Server-side apply: the first takes the fields over (a change of the managed fields),
    // the same manifest again changes nothing.
    c.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        Some(&deployment_manifest(2)),
    )?;
    let applied = api.get("web").await?;
    let mut events = api
        .watch(&WatchParams::default(), &rv(&applied))
        .await?
        .boxed();
    for _ in 0..2 {
        let out = c.kubectl_stdin(
            &["apply", "--server-side", "-f", "-"],
            Some(&deployment_manifest(2)),
        )?;
        ensure!(out.contains("serverside-applied"), "{out}");
        let again = api.get("web").await?;
        ensure!(
            fingerprint(&again)? == fingerprint(&applied)?,
            "an unchanged server-side apply wrote: {} then {}",
            fingerprint(&applied)?,
            fingerprint(&again)?
        );
    }
    // And client-side apply of the manifest, which now differs from its last-applied
    // annotation in nothing: still nothing sent, nothing written.
    let out = c.kubectl_stdin(&["apply", "-f", "-"], Some(&deployment_manifest(2)))?;
    ensure!(out.contains("unchanged"), "{out}");

    // A real change writes, bumps the generation, and is the watch's first event.
    c.kubectl_stdin(
        &["apply", "--server-side", "-f", "-"],
        Some(&deployment_manifest(3)),
    )?;
    let changed = api.get("web").await?;
    ensure!(
        rv(&changed) != rv(&applied),
        "a real change kept the resourceVersion"
    );
    ensure!(
        changed.metadata.generation == applied.metadata.generation.map(|g| g + 1),
        "generation {:?} after {:?}",
        changed.metadata.generation,
        applied.metadata.generation
    );
    next_event_is_the_change(&mut events, &rv(&changed)).await
}

async fn a_put_of_the_object_as_read_writes_nothing(c: &Cluster) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), NS);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "same", "labels": {"a": "b"}},
        "data": {"k": "v"},
    }))?;
    let cm = cms.create(&PostParams::default(), &cm).await?;
    let mut events = cms.watch(&WatchParams::default(), &rv(&cm)).await?.boxed();
    let put = cms.replace("same", &PostParams::default(), &cm).await?;
    ensure!(
        rv(&put) == rv(&cm),
        "PUT answered {} for {}",
        rv(&put),
        rv(&cm)
    );
    // Without the managed fields (a client that drops them keeps what is recorded) and
    // without the resourceVersion (an unconditional PUT): the same object.
    let mut bare = cm.clone();
    bare.metadata.managed_fields = None;
    bare.metadata.resource_version = None;
    cms.replace("same", &PostParams::default(), &bare).await?;
    ensure!(fingerprint(&cms.get("same").await?)? == fingerprint(&cm)?);

    // A Deployment: generation and managed fields stay too.
    let deploys: Api<Deployment> = Api::namespaced(c.client.clone(), NS);
    c.kubectl_stdin(&["create", "-f", "-"], Some(&deployment_manifest(1)))?;
    let d = deploys.get("web").await?;
    let put = deploys.replace("web", &PostParams::default(), &d).await?;
    ensure!(
        fingerprint(&put)? == fingerprint(&d)?,
        "{}",
        fingerprint(&put)?
    );
    ensure!(fingerprint(&deploys.get("web").await?)? == fingerprint(&d)?);

    // A PUT that changes something writes.
    let mut changed = cm.clone();
    changed
        .data
        .get_or_insert_default()
        .insert("k".into(), "w".into());
    let put = cms
        .replace("same", &PostParams::default(), &changed)
        .await?;
    ensure!(
        rv(&put) != rv(&cm),
        "a real change kept the resourceVersion"
    );
    next_event_is_the_change(&mut events, &rv(&put)).await
}

async fn patches_to_the_current_values_write_nothing(c: &Cluster) -> Result<()> {
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), NS);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "patched", "labels": {"a": "b"}},
        "data": {"k": "v"},
    }))?;
    cms.create(&PostParams::default(), &cm).await?;
    // The first apply takes ownership (the managed fields change), so it goes first.
    let ssa = PatchParams::apply("noop-test");
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "patched", "labels": {"a": "b"}}, "data": {"k": "v"}});
    cms.patch("patched", &ssa, &Patch::Apply(&config)).await?;
    let before = cms.get("patched").await?;
    let mut events = cms
        .watch(&WatchParams::default(), &rv(&before))
        .await?
        .boxed();
    let pp = PatchParams::default();
    let answers = [
        cms.patch("patched", &pp, &Patch::Merge(json!({"data": {"k": "v"}})))
            .await?,
        cms.patch(
            "patched",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await?,
        cms.patch(
            "patched",
            &pp,
            &Patch::Strategic(json!({"data": {"k": "v"}})),
        )
        .await?,
        cms.patch(
            "patched",
            &pp,
            &Patch::<Value>::Json(serde_json::from_value(json!([
                {"op": "replace", "path": "/data/k", "value": "v"},
                {"op": "test", "path": "/metadata/labels/a", "value": "b"},
            ]))?),
        )
        .await?,
        cms.patch("patched", &ssa, &Patch::Apply(&config)).await?,
    ];
    for (i, answer) in answers.iter().enumerate() {
        ensure!(
            rv(answer) == rv(&before),
            "no-op patch {i} answered resourceVersion {} for {}",
            rv(answer),
            rv(&before)
        );
    }
    ensure!(fingerprint(&cms.get("patched").await?)? == fingerprint(&before)?);
    // A patch with the resourceVersion as its precondition, changing nothing: the same.
    let with_rv = cms
        .patch(
            "patched",
            &pp,
            &Patch::Merge(
                json!({"metadata": {"resourceVersion": rv(&before)}, "data": {"k": "v"}}),
            ),
        )
        .await?;
    ensure!(rv(&with_rv) == rv(&before));

    let changed = cms
        .patch("patched", &pp, &Patch::Merge(json!({"data": {"k": "w"}})))
        .await?;
    ensure!(
        rv(&changed) != rv(&before),
        "a real change kept the resourceVersion"
    );
    next_event_is_the_change(&mut events, &rv(&changed)).await
}

async fn status_and_scale_writes_of_the_same_values_write_nothing(c: &Cluster) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), NS);
    c.kubectl_stdin(&["create", "-f", "-"], Some(&deployment_manifest(2)))?;
    let mut d = api.get("web").await?;
    // No controller runs: the test writes the status, as the Deployment controller would.
    d.status = Some(serde_json::from_value(json!({
        "observedGeneration": 1, "replicas": 2, "updatedReplicas": 2,
        "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
            "message": "ok", "lastUpdateTime": "2026-01-01T00:00:00Z",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    }))?);
    let with_status = api
        .replace_status("web", &PostParams::default(), &d)
        .await?;
    ensure!(
        rv(&with_status) != rv(&d),
        "the first status write kept the resourceVersion"
    );
    let mut events = api
        .watch(&WatchParams::default(), &rv(&with_status))
        .await?
        .boxed();
    // The controller's next sync, finding nothing to change, writes the same status again.
    let again = api
        .replace_status("web", &PostParams::default(), &with_status)
        .await?;
    ensure!(
        fingerprint(&again)? == fingerprint(&with_status)?,
        "a status PUT of the same status wrote: {}",
        fingerprint(&again)?
    );
    let patched = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 2}})),
        )
        .await?;
    ensure!(rv(&patched) == rv(&with_status));
    let scale = api
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await?;
    ensure!(
        scale.metadata.resource_version.as_deref() == Some(rv(&with_status).as_str()),
        "a scale to the same replicas answered {:?}",
        scale.metadata.resource_version
    );
    ensure!(fingerprint(&api.get("web").await?)? == fingerprint(&with_status)?);

    let changed = api
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"readyReplicas": 1}})),
        )
        .await?;
    ensure!(
        rv(&changed) != rv(&with_status),
        "a real change kept the resourceVersion"
    );
    ensure!(changed.metadata.generation == with_status.metadata.generation);
    next_event_is_the_change(&mut events, &rv(&changed)).await
}

async fn a_repeated_delete_of_a_held_object_writes_nothing(c: &Cluster) -> Result<()> {
    // A Deployment: it has a generation, which the first delete's mark bumps, and only it.
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), NS);
    let manifest = deployment_manifest(1).replace(
        "  labels:\n    app: web\nspec:",
        "  labels:\n    app: web\n  finalizers:\n  - example.com/hold\nspec:",
    );
    c.kubectl_stdin(&["create", "-f", "-"], Some(&manifest))?;
    let created = api.get("web").await?;
    ensure!(
        created.finalizers() == ["example.com/hold"],
        "{:?}",
        created.finalizers()
    );
    api.delete("web", &DeleteParams::default()).await?;
    let marked = api.get("web").await?;
    ensure!(marked.metadata.deletion_timestamp.is_some());
    ensure!(marked.metadata.generation == created.metadata.generation.map(|g| g + 1));
    let mut events = api
        .watch(&WatchParams::default(), &rv(&marked))
        .await?
        .boxed();
    for _ in 0..2 {
        api.delete("web", &DeleteParams::default()).await?;
        let again = api.get("web").await?;
        ensure!(
            fingerprint(&again)? == fingerprint(&marked)?,
            "a repeated delete of a held object wrote: {} then {}",
            fingerprint(&marked)?,
            fingerprint(&again)?
        );
    }
    // Releasing it changes it (and removes it: its last finalizer went).
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    match first_event(&mut events).await? {
        WatchEvent::Deleted(_) => Ok(()),
        _ => bail!("the first event after the repeated deletes is not the removal"),
    }
}
