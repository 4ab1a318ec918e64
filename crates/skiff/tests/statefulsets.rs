//! Integration: the StatefulSet controller through the in-process server on three simulated
//! nodes, driven by the real kubectl and kube-rs, on both datastores.
//!
//! Scenarios: a StatefulSet `web` of 3 (OrderedReady, a headless Service, a
//! volumeClaimTemplate `data`) makes `web-0`, `web-1`, `web-2` strictly in order (a watch of
//! the pods shows each created only once the one before is Running and Ready), with their
//! identity (hostname, subdomain, the pod-name, pod-index and controller-revision-hash
//! labels) and their claims `data-web-N`, `kubectl rollout status` returns, the status and
//! the SuccessfulCreate/SuccessfulDelete events are upstream's and the headless Service's
//! Endpoints and EndpointSlice name the pods by hostname; scaled down to 1 (web-2 gone before web-1 goes, claims retained) and up to 3
//! again (the same names, the same claims); `kubectl set image` under `partition: 2` updates
//! only web-2, then `partition: 0` web-1 and then web-0, `rollout history` lists the
//! revisions and `rollout undo` goes back; a pod deleted by hand comes back under its name;
//! deleting the set deletes its pods and keeps its claims. `podManagementPolicy: Parallel`
//! creates every pod and its claim without waiting (none of them can even be scheduled); a
//! burst of 20 makes no pod twice. With
//! `persistentVolumeClaimRetentionPolicy.whenDeleted: Delete` the claims are owned by the set
//! and the garbage collector deletes them with it; with `whenScaled: Delete` a scale down
//! takes the claims of the pods it removes. Also: a pod whose readiness gate is unset holds
//! OrderedReady creation and scale down back, minReadySeconds delays the next pod, OnDelete
//! replaces only what is deleted by hand, `ordinals.start` numbers from 5 and `rollout restart`
//! replaces the highest first, and a set deleted with `--cascade=orphan` and applied again
//! adopts its pods and revision; `maxUnavailable: 2` rolls two pods at a time (never more
//! unavailable, highest first) and `revisionHistoryLimit: 1` keeps one old revision; a pod
//! whose phase turns Failed is deleted and made again.
//!
//! The server's scheduler binds the pods to the simulated nodes, which report them Running
//! and Ready and finish their deletions, as kubelets would.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, ensure, Context as _, Result};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{Endpoints, Event, PersistentVolumeClaim, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};

use common::{wait_for, Cluster};

const WAIT: Duration = Duration::from_secs(90);

const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
const REVISION_LABEL: &str = "controller-revision-hash";

const WEB: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    app: web
spec:
  clusterIP: None
  selector:
    app: web
  ports:
  - name: http
    port: 80
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  serviceName: web
  replicas: 3
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - name: http
          containerPort: 80
        volumeMounts:
        - name: data
          mountPath: /usr/share/nginx/html
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#;

/// Pods that no simulated node can take (until one gets the label), managed in parallel.
const PARALLEL: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: par
spec:
  serviceName: par
  replicas: 3
  podManagementPolicy: Parallel
  selector:
    matchLabels:
      app: par
  template:
    metadata:
      labels:
        app: par
    spec:
      terminationGracePeriodSeconds: 0
      nodeSelector:
        skiff-test: parallel
      containers:
      - name: par
        image: busybox
        volumeMounts:
        - name: data
          mountPath: /data
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#;

const DB: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 2
  persistentVolumeClaimRetentionPolicy:
    whenDeleted: Delete
    whenScaled: Retain
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: db
        image: postgres:16
        volumeMounts:
        - name: data
          mountPath: /var/lib/postgresql/data
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#;

/// Claims deleted on scale down, kept when the set is deleted.
const CACHE: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: cache
spec:
  serviceName: cache
  replicas: 3
  persistentVolumeClaimRetentionPolicy:
    whenDeleted: Retain
    whenScaled: Delete
  selector:
    matchLabels:
      app: cache
  template:
    metadata:
      labels:
        app: cache
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: cache
        image: redis:7
        volumeMounts:
        - name: data
          mountPath: /data
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#;

/// OrderedReady with minReadySeconds: the next pod waits for the last to be available.
const SLOW: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: slow
spec:
  serviceName: slow
  replicas: 2
  minReadySeconds: 3
  selector:
    matchLabels:
      app: slow
  template:
    metadata:
      labels:
        app: slow
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: slow
        image: busybox
"#;

/// The OnDelete update strategy.
const ONDEL: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: ondel
spec:
  serviceName: ondel
  replicas: 2
  updateStrategy:
    type: OnDelete
  selector:
    matchLabels:
      app: ondel
  template:
    metadata:
      labels:
        app: ondel
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: ondel
        image: nginx:1.25
"#;

/// Pods Ready only once the test sets their readiness gate.
const GATE: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: gate
spec:
  serviceName: gate
  replicas: 3
  selector:
    matchLabels:
      app: gate
  template:
    metadata:
      labels:
        app: gate
    spec:
      terminationGracePeriodSeconds: 0
      readinessGates:
      - conditionType: skiff.dev/ok
      containers:
      - name: gate
        image: busybox
"#;

/// Ordinals from 5.
const ORD: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: ord
spec:
  serviceName: ord
  replicas: 2
  ordinals:
    start: 5
  selector:
    matchLabels:
      app: ord
  template:
    metadata:
      labels:
        app: ord
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: ord
        image: busybox
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
"#;

/// A rolling update two pods at a time, and a short history.
const WIDE: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: wide
spec:
  serviceName: wide
  replicas: 4
  revisionHistoryLimit: 1
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 2
  selector:
    matchLabels:
      app: wide
  template:
    metadata:
      labels:
        app: wide
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: wide
        image: nginx:1.25
"#;

// ---------------------------------------------------------------------------------------
// Pod states and a log of every pod event.

fn is_ready(p: &Pod) -> bool {
    let status = p.status.as_ref();
    status.and_then(|s| s.phase.as_deref()) == Some("Running")
        && status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn label<'a>(p: &'a Pod, key: &str) -> Option<&'a str> {
    p.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn revision(p: &Pod) -> String {
    label(p, REVISION_LABEL).unwrap_or_default().to_owned()
}

fn image(p: &Pod) -> String {
    p.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// One pod event as the watch saw it.
#[derive(Clone, Debug)]
struct Seen {
    name: String,
    uid: String,
    ready: bool,
    terminating: bool,
    deleted: bool,
    revision: String,
}

impl Seen {
    fn of(p: &Pod, deleted: bool) -> Self {
        Self {
            name: p.name_any(),
            uid: p.metadata.uid.clone().unwrap_or_default(),
            ready: is_ready(p),
            terminating: p.metadata.deletion_timestamp.is_some(),
            deleted,
            revision: revision(p),
        }
    }

    /// Being deleted or gone.
    fn going(&self) -> bool {
        self.terminating || self.deleted
    }

    /// Running and Ready, not being deleted.
    fn healthy(&self) -> bool {
        self.ready && !self.going()
    }
}

/// Every event of the pods with a label, in the order the watch delivered them.
struct PodLog {
    events: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PodLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl PodLog {
    /// Starts watching; returns once the watch has listed (so no later event is missed).
    async fn start(client: &Client, selector: &str) -> Result<Self> {
        let events = Arc::new(Mutex::new(Vec::new()));
        let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
        let shared = events.clone();
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let config = watcher::Config::default().labels(selector);
        let task = tokio::spawn(async move {
            let mut listed = Some(listed_tx);
            let mut stream = std::pin::pin!(watcher(pods, config).default_backoff());
            while let Some(event) = stream.next().await {
                let seen = match event {
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = listed.take() {
                            let _ = tx.send(());
                        }
                        continue;
                    }
                    Ok(watcher::Event::Init) => continue,
                    Ok(watcher::Event::InitApply(p) | watcher::Event::Apply(p)) => {
                        Seen::of(&p, false)
                    }
                    Ok(watcher::Event::Delete(p)) => Seen::of(&p, true),
                    Err(_) => continue,
                };
                shared.lock().unwrap_or_else(|e| e.into_inner()).push(seen);
            }
        });
        tokio::time::timeout(WAIT, listed_rx)
            .await
            .context("the pod watch never listed")??;
        Ok(Self { events, task })
    }

    /// How many events so far (a mark to look after).
    fn mark(&self) -> usize {
        self.snapshot().len()
    }

    fn snapshot(&self) -> Vec<Seen> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The events after `mark`, once `done` says they are complete.
    async fn wait(
        &self,
        what: &str,
        mark: usize,
        done: impl Fn(&[Seen]) -> bool,
    ) -> Result<Vec<Seen>> {
        let r = wait_for(what, WAIT, || async {
            let all = self.snapshot();
            let after = all[mark.min(all.len())..].to_vec();
            Ok(done(&after).then_some(after))
        })
        .await;
        if r.is_err() {
            eprintln!("pod events after the mark: {:#?}", &self.snapshot()[mark..]);
        }
        r
    }
}

fn first(log: &[Seen], pred: impl Fn(&Seen) -> bool) -> Option<usize> {
    log.iter().position(pred)
}

/// The last event of `name` before index `before`.
fn last_before<'a>(log: &'a [Seen], name: &str, before: usize) -> Option<&'a Seen> {
    log[..before].iter().rev().find(|s| s.name == name)
}

/// Each of `names` was first seen only once the one before it was Running and Ready.
fn check_created_in_order(log: &[Seen], names: &[&str]) -> Result<()> {
    for n in names {
        ensure!(
            log.iter().any(|s| s.name == *n),
            "{n} was never created: {log:#?}"
        );
    }
    for pair in names.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let created = first(log, |s| s.name == b).unwrap_or(0);
        let before = last_before(log, a, created);
        ensure!(
            before.is_some_and(Seen::healthy),
            "{b} was created (event {created}) while {a} was {before:?}: {log:#?}"
        );
    }
    Ok(())
}

/// Each of `names` (with the uid in `old`) was deleted and came back Running and Ready at
/// `revision`, one after the other: a pod is deleted only once the one before it is back.
fn check_replaced_in_order(
    log: &[Seen],
    names: &[&str],
    old: &HashMap<String, String>,
    revision: &str,
) -> Result<()> {
    let mut back = Vec::new();
    for n in names {
        let old_uid = old.get(*n).map(String::as_str).unwrap_or("");
        let gone = first(log, |s| s.name == *n && s.uid == old_uid && s.going())
            .with_context(|| format!("{n} was never deleted: {log:#?}"))?;
        let new = first(log, |s| {
            s.name == *n && s.uid != old_uid && s.healthy() && s.revision == revision
        })
        .with_context(|| format!("{n} never came back at {revision}: {log:#?}"))?;
        ensure!(gone < new, "{n} back (event {new}) before it went ({gone})");
        back.push((gone, new));
    }
    for (i, pair) in back.windows(2).enumerate() {
        ensure!(
            pair[0].1 < pair[1].0,
            "{} was deleted (event {}) before {} was back (event {}): {log:#?}",
            names[i + 1],
            pair[1].0,
            names[i],
            pair[0].1
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Reads.

async fn pods_of(client: &Client, selector: &str) -> Result<Vec<Pod>> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut list = pods
        .list(&ListParams::default().labels(selector))
        .await?
        .items;
    list.sort_by_key(|p| p.name_any());
    Ok(list)
}

/// The pods' names once they are exactly `names`, all Running and Ready, none going.
async fn wait_pods(client: &Client, selector: &str, names: &[&str]) -> Result<Vec<Pod>> {
    let r = wait_for(&format!("pods {names:?} ready"), WAIT, || async {
        let pods = pods_of(client, selector).await?;
        let got: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
        let all_ready = pods
            .iter()
            .all(|p| is_ready(p) && p.metadata.deletion_timestamp.is_none());
        Ok((got == names && all_ready).then_some(pods))
    })
    .await;
    if r.is_err() {
        for p in pods_of(client, selector).await.unwrap_or_default() {
            eprintln!(
                "{}: deleting {:?} status {:?}",
                p.name_any(),
                p.metadata.deletion_timestamp,
                p.status
            );
        }
    }
    r
}

async fn get_set(client: &Client, name: &str) -> Result<StatefulSet> {
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    Ok(sets.get(name).await?)
}

async fn claims(client: &Client) -> Result<Vec<PersistentVolumeClaim>> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
    let mut list = api.list(&ListParams::default()).await?.items;
    list.sort_by_key(|c| c.name_any());
    Ok(list)
}

fn claim_of(p: &Pod, volume: &str) -> Option<String> {
    p.spec
        .as_ref()?
        .volumes
        .as_ref()?
        .iter()
        .find(|v| v.name == volume)?
        .persistent_volume_claim
        .as_ref()
        .map(|c| c.claim_name.clone())
}

fn uids(pods: &[Pod]) -> HashMap<String, String> {
    pods.iter()
        .map(|p| (p.name_any(), p.metadata.uid.clone().unwrap_or_default()))
        .collect()
}

/// `kubectl rollout status` to the end; its output.
fn rollout_status(c: &Cluster, target: &str) -> Result<String> {
    c.kubectl(&["rollout", "status", target, "--timeout=90s"])
}

/// The status counters, once the controller reports `want` for all of them and the current
/// revision is the update revision.
async fn wait_settled(client: &Client, name: &str, want: i32) -> Result<StatefulSet> {
    wait_for(
        &format!("{name}'s status to settle at {want}"),
        WAIT,
        || async {
            let set = get_set(client, name).await?;
            let s = set.status.clone().unwrap_or_default();
            let counts = (
                s.replicas,
                s.ready_replicas.unwrap_or(0),
                s.current_replicas.unwrap_or(0),
                s.updated_replicas.unwrap_or(0),
                s.available_replicas.unwrap_or(0),
            );
            let settled = counts == (want, want, want, want, want)
                && s.current_revision.is_some()
                && s.current_revision == s.update_revision
                && s.observed_generation == set.metadata.generation;
            Ok(settled.then_some(set))
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Scenarios.

/// Ordered creation, identity, claims, status; scale down and up; a pod deleted by hand;
/// a partitioned rolling update, history and undo; deletion of the set.
async fn ordered_lifecycle(c: &Cluster) -> Result<()> {
    let client = &c.client;
    let log = PodLog::start(client, "app=web").await?;

    // Created strictly in order.
    let out = c.kubectl_stdin(&["apply", "-f", "-"], Some(WEB))?;
    ensure!(
        out.contains("service/web created") && out.contains("statefulset.apps/web created"),
        "{out}"
    );
    let out = rollout_status(c, "sts/web")?;
    ensure!(
        out.contains("partitioned roll out complete: 3 new pods have been updated..."),
        "rollout status: {out}"
    );
    let pods = wait_pods(client, "app=web", &["web-0", "web-1", "web-2"]).await?;
    let events = log
        .wait("the creations of web-0..2", 0, |l| {
            ["web-0", "web-1", "web-2"]
                .iter()
                .all(|n| l.iter().any(|s| s.name == *n && s.healthy()))
        })
        .await?;
    check_created_in_order(&events, &["web-0", "web-1", "web-2"])?;

    // The status.
    let set = wait_settled(client, "web", 3).await?;
    let status = set.status.clone().unwrap_or_default();
    let rev1 = status.current_revision.clone().unwrap_or_default();
    ensure!(rev1.starts_with("web-"), "currentRevision {rev1}");
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");
    let cr = revisions.get(&rev1).await?;
    ensure!(cr.revision == 1, "revision of {rev1}: {}", cr.revision);
    ensure!(
        cr.owner_references()
            .iter()
            .any(|r| r.kind == "StatefulSet" && r.name == "web" && r.controller == Some(true)),
        "{rev1}'s owners: {:?}",
        cr.owner_references()
    );

    // Identity and storage.
    let set_uid = set.uid().unwrap_or_default();
    for (i, p) in pods.iter().enumerate() {
        let name = format!("web-{i}");
        let spec = p.spec.clone().unwrap_or_default();
        ensure!(
            spec.hostname.as_deref() == Some(name.as_str())
                && spec.subdomain.as_deref() == Some("web"),
            "{name}: hostname {:?} subdomain {:?}",
            spec.hostname,
            spec.subdomain
        );
        ensure!(
            label(p, POD_NAME_LABEL) == Some(name.as_str())
                && label(p, POD_INDEX_LABEL) == Some(i.to_string().as_str())
                && label(p, REVISION_LABEL) == Some(rev1.as_str())
                && label(p, "app") == Some("web"),
            "{name}'s labels: {:?}",
            p.metadata.labels
        );
        ensure!(
            p.owner_references()
                .iter()
                .any(|r| r.kind == "StatefulSet" && r.uid == set_uid && r.controller == Some(true)),
            "{name}'s owners: {:?}",
            p.owner_references()
        );
        ensure!(
            claim_of(p, "data") == Some(format!("data-web-{i}")),
            "{name}'s volumes: {:?}",
            spec.volumes
        );
        ensure!(
            spec.node_name
                .as_deref()
                .is_some_and(|n| n.starts_with("sim-")),
            "{name} on {:?}",
            spec.node_name
        );
    }
    let pvcs = claims(client).await?;
    let names: Vec<String> = pvcs.iter().map(|c| c.name_any()).collect();
    ensure!(
        names == ["data-web-0", "data-web-1", "data-web-2"],
        "claims {names:?}"
    );
    for pvc in &pvcs {
        ensure!(
            pvc.labels().get("app").map(String::as_str) == Some("web"),
            "{}'s labels {:?}",
            pvc.name_any(),
            pvc.labels()
        );
        // Retain/Retain: the claims belong to nobody.
        ensure!(
            pvc.owner_references().is_empty(),
            "{}'s owners {:?}",
            pvc.name_any(),
            pvc.owner_references()
        );
        let phase = pvc.status.as_ref().and_then(|s| s.phase.as_deref());
        ensure!(
            phase == Some("Pending"),
            "{}: phase {phase:?}",
            pvc.name_any()
        );
    }
    let claim_uids: HashMap<String, String> = pvcs
        .iter()
        .map(|c| (c.name_any(), c.uid().unwrap_or_default()))
        .collect();
    // The events upstream's controller records.
    for want in [
        "create Claim data-web-0 Pod web-0 in StatefulSet web success",
        "create Pod web-0 in StatefulSet web successful",
        "create Pod web-2 in StatefulSet web successful",
    ] {
        wait_event(client, "web", "SuccessfulCreate", want).await?;
    }
    // The headless Service's endpoints carry the pods' hostnames.
    check_hostnames(client).await?;
    let out = c.kubectl(&["get", "pvc"])?;
    ensure!(
        out.contains("data-web-0") && out.contains("Pending"),
        "kubectl get pvc: {out}"
    );

    // Scale down to 1: web-2 first, and gone before web-1 goes; the claims stay.
    let mark = log.mark();
    let out = c.kubectl(&["scale", "sts/web", "--replicas=1"])?;
    ensure!(out.contains("statefulset.apps/web scaled"), "{out}");
    let events = log
        .wait("web-2 and web-1 deleted", mark, |l| {
            ["web-1", "web-2"]
                .iter()
                .all(|n| l.iter().any(|s| s.name == *n && s.deleted))
        })
        .await?;
    let gone2 = first(&events, |s| s.name == "web-2" && s.deleted).unwrap_or(0);
    let going1 = first(&events, |s| s.name == "web-1" && s.going()).unwrap_or(0);
    ensure!(
        gone2 < going1,
        "web-1 went (event {going1}) before web-2 was gone ({gone2}): {events:#?}"
    );
    ensure!(
        !events.iter().any(|s| s.name == "web-0" && s.going()),
        "web-0 was deleted: {events:#?}"
    );
    wait_pods(client, "app=web", &["web-0"]).await?;
    wait_settled(client, "web", 1).await?;
    wait_event(
        client,
        "web",
        "SuccessfulDelete",
        "delete Pod web-2 in StatefulSet web successful",
    )
    .await?;
    let names: Vec<String> = claims(client).await?.iter().map(|c| c.name_any()).collect();
    ensure!(
        names == ["data-web-0", "data-web-1", "data-web-2"],
        "claims after the scale down {names:?}"
    );

    // Scale up to 3: the same names, in order, on the same claims.
    let mark = log.mark();
    c.kubectl(&["scale", "sts/web", "--replicas=3"])?;
    rollout_status(c, "sts/web")?;
    let pods = wait_pods(client, "app=web", &["web-0", "web-1", "web-2"]).await?;
    let events = log
        .wait("web-1 and web-2 back", mark, |l| {
            ["web-1", "web-2"]
                .iter()
                .all(|n| l.iter().any(|s| s.name == *n && s.healthy()))
        })
        .await?;
    check_created_in_order(&events, &["web-1", "web-2"])?;
    for (i, p) in pods.iter().enumerate() {
        ensure!(
            claim_of(p, "data") == Some(format!("data-web-{i}")),
            "web-{i}'s volumes after the scale up: {:?}",
            p.spec.as_ref().and_then(|s| s.volumes.as_ref())
        );
    }
    let again: HashMap<String, String> = claims(client)
        .await?
        .iter()
        .map(|c| (c.name_any(), c.uid().unwrap_or_default()))
        .collect();
    ensure!(
        again == claim_uids,
        "claims after the scale up {again:?}, before {claim_uids:?}"
    );
    wait_settled(client, "web", 3).await?;

    // A pod deleted by hand comes back under its name, on its claim.
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let old = uids(&pods);
    pods_api.delete("web-1", &DeleteParams::default()).await?;
    let back = wait_for("web-1 recreated", WAIT, || async {
        let p = pods_api.get_opt("web-1").await?;
        Ok(p.filter(|p| p.uid().as_ref() != old.get("web-1") && is_ready(p)))
    })
    .await?;
    ensure!(
        claim_of(&back, "data").as_deref() == Some("data-web-1")
            && label(&back, POD_INDEX_LABEL) == Some("1")
            && back.spec.as_ref().and_then(|s| s.hostname.as_deref()) == Some("web-1"),
        "web-1 again: {:?} {:?}",
        back.metadata.labels,
        back.spec
    );
    let pods = wait_pods(client, "app=web", &["web-0", "web-1", "web-2"]).await?;
    wait_settled(client, "web", 3).await?;

    // A rolling update with partition 2: only web-2.
    let out = c.kubectl(&[
        "patch",
        "sts/web",
        "--type=merge",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":2}}}}"#,
    ])?;
    ensure!(out.contains("statefulset.apps/web patched"), "{out}");
    let before = uids(&pods);
    let mark = log.mark();
    let out = c.kubectl(&["set", "image", "sts/web", "web=nginx:1.26"])?;
    ensure!(out.contains("statefulset.apps/web image updated"), "{out}");
    let out = rollout_status(c, "sts/web")?;
    ensure!(
        out.contains("partitioned roll out complete: 1 new pods have been updated..."),
        "rollout status with partition 2: {out}"
    );
    let set = get_set(client, "web").await?;
    let status = set.status.clone().unwrap_or_default();
    let rev2 = status.update_revision.clone().unwrap_or_default();
    ensure!(
        rev2 != rev1 && status.current_revision.as_deref() == Some(rev1.as_str()),
        "revisions after set image: current {:?} update {rev2}",
        status.current_revision
    );
    ensure!(
        (
            status.replicas,
            status.ready_replicas,
            status.current_replicas,
            status.updated_replicas
        ) == (3, Some(3), Some(2), Some(1)),
        "status under partition 2: {status:?}"
    );
    let pods = wait_pods(client, "app=web", &["web-0", "web-1", "web-2"]).await?;
    for p in &pods {
        let (want_rev, want_image, same) = if p.name_any() == "web-2" {
            (&rev2, "nginx:1.26", false)
        } else {
            (&rev1, "nginx:1.25", true)
        };
        ensure!(
            revision(p) == *want_rev && image(p) == want_image,
            "{} at {} with {}",
            p.name_any(),
            revision(p),
            image(p)
        );
        ensure!(
            (p.uid().as_ref() == before.get(&p.name_any())) == same,
            "{} replaced: {same}",
            p.name_any()
        );
    }
    let events = log
        .wait("web-2 updated", mark, |l| {
            l.iter()
                .any(|s| s.name == "web-2" && s.healthy() && s.revision == rev2)
        })
        .await?;
    check_replaced_in_order(&events, &["web-2"], &before, &rev2)?;

    // Partition 0: web-1, then web-0.
    let before = uids(&pods);
    let mark = log.mark();
    c.kubectl(&[
        "patch",
        "sts/web",
        "--type=merge",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
    ])?;
    let out = rollout_status(c, "sts/web")?;
    ensure!(
        out.contains("partitioned roll out complete: 3 new pods have been updated..."),
        "rollout status with partition 0: {out}"
    );
    let events = log
        .wait("web-1 and web-0 updated", mark, |l| {
            ["web-1", "web-0"].iter().all(|n| {
                l.iter()
                    .any(|s| s.name == *n && s.healthy() && s.revision == rev2)
            })
        })
        .await?;
    check_replaced_in_order(&events, &["web-1", "web-0"], &before, &rev2)?;
    ensure!(
        !events.iter().any(|s| s.name == "web-2" && s.going()),
        "web-2 was replaced again: {events:#?}"
    );
    let set = wait_settled(client, "web", 3).await?;
    ensure!(
        set.status
            .as_ref()
            .and_then(|s| s.current_revision.as_deref())
            == Some(rev2.as_str()),
        "current revision after the rollout {:?}",
        set.status
    );
    let pods = wait_pods(client, "app=web", &["web-0", "web-1", "web-2"]).await?;
    ensure!(
        pods.iter()
            .all(|p| image(p) == "nginx:1.26" && revision(p) == rev2),
        "images {:?}",
        pods.iter().map(image).collect::<Vec<_>>()
    );

    // History and undo.
    let out = c.kubectl(&["rollout", "history", "sts/web"])?;
    let listed = history_revisions(&out);
    ensure!(
        out.contains("REVISION") && listed == [1, 2],
        "rollout history: {out}"
    );
    let out = c.kubectl(&["rollout", "history", "sts/web", "--revision=1"])?;
    ensure!(
        out.contains("nginx:1.25"),
        "rollout history --revision=1: {out}"
    );
    let before = uids(&pods);
    let mark = log.mark();
    let out = c.kubectl(&["rollout", "undo", "sts/web"])?;
    ensure!(out.contains("statefulset.apps/web rolled back"), "{out}");
    rollout_status(c, "sts/web")?;
    let set = wait_for("the undo to roll out", WAIT, || async {
        let set = wait_settled(client, "web", 3).await?;
        let cur = set.status.as_ref().and_then(|s| s.current_revision.clone());
        Ok((cur.as_deref() != Some(rev2.as_str())).then_some(set))
    })
    .await?;
    let rev3 = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .unwrap_or_default();
    // The template of revision 1 again: its revision, renumbered as upstream does.
    ensure!(rev3 == rev1, "undo's revision {rev3}, first {rev1}");
    ensure!(
        revisions.get(&rev1).await?.revision == 3,
        "{rev1} not renumbered"
    );
    let events = log
        .wait("the undo to replace every pod", mark, |l| {
            ["web-2", "web-1", "web-0"].iter().all(|n| {
                l.iter()
                    .any(|s| s.name == *n && s.healthy() && s.revision == rev1)
            })
        })
        .await?;
    check_replaced_in_order(&events, &["web-2", "web-1", "web-0"], &before, &rev1)?;
    let pods = wait_pods(client, "app=web", &["web-0", "web-1", "web-2"]).await?;
    ensure!(
        pods.iter().all(|p| image(p) == "nginx:1.25"),
        "images after undo {:?}",
        pods.iter().map(image).collect::<Vec<_>>()
    );
    let out = c.kubectl(&["rollout", "history", "sts/web"])?;
    ensure!(
        history_revisions(&out) == [2, 3],
        "history after undo: {out}"
    );

    // Deleting the set deletes its pods and revisions (the garbage collector) and keeps the
    // claims (whenDeleted: Retain).
    let out = c.kubectl(&["delete", "sts", "web"])?;
    ensure!(out.contains("statefulset.apps \"web\" deleted"), "{out}");
    wait_for("web's pods deleted", WAIT, || async {
        Ok(pods_of(client, "app=web").await?.is_empty().then_some(()))
    })
    .await?;
    wait_for("web's revisions deleted", WAIT, || async {
        let left = revisions.list(&ListParams::default()).await?.items;
        Ok(left.is_empty().then_some(()))
    })
    .await?;
    let names: Vec<String> = claims(client).await?.iter().map(|c| c.name_any()).collect();
    ensure!(
        names == ["data-web-0", "data-web-1", "data-web-2"],
        "claims after the set's deletion {names:?}"
    );
    Ok(())
}

/// Waits for an event of the StatefulSet `set` with this reason and message.
async fn wait_event(client: &Client, set: &str, reason: &str, message: &str) -> Result<()> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let found = wait_for(&format!("event {reason} {message:?}"), WAIT, || async {
        let list = events
            .list(&ListParams::default().fields(&format!("involvedObject.name={set}")))
            .await?
            .items;
        Ok(list
            .iter()
            .any(|e| {
                e.involved_object.kind.as_deref() == Some("StatefulSet")
                    && e.reason.as_deref() == Some(reason)
                    && e.message.as_deref() == Some(message)
                    && e.type_.as_deref() == Some("Normal")
            })
            .then_some(()))
    })
    .await;
    if found.is_err() {
        let list = events.list(&ListParams::default()).await?.items;
        for e in list
            .iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(set))
        {
            eprintln!("event {:?} {:?} {:?}", e.type_, e.reason, e.message);
        }
    }
    found
}

/// The Endpoints and EndpointSlice of the headless Service `web` name each pod by its
/// hostname (its subdomain is the Service).
async fn check_hostnames(client: &Client) -> Result<()> {
    let want = ["web-0", "web-1", "web-2"];
    let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    wait_for("web's Endpoints with the hostnames", WAIT, || async {
        let Some(ep) = endpoints.get_opt("web").await? else {
            return Ok(None);
        };
        let mut names: Vec<String> = ep
            .subsets
            .iter()
            .flatten()
            .flat_map(|s| s.addresses.iter().flatten())
            .filter_map(|a| a.hostname.clone())
            .collect();
        names.sort();
        Ok((names == want).then_some(()))
    })
    .await?;
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    wait_for("web's EndpointSlice with the hostnames", WAIT, || async {
        let list = slices
            .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
            .await?
            .items;
        let mut names: Vec<String> = list
            .iter()
            .flat_map(|s| s.endpoints.iter())
            .filter_map(|e| e.hostname.clone())
            .collect();
        names.sort();
        Ok((names == want).then_some(()))
    })
    .await
}

/// The revision numbers `kubectl rollout history` lists.
fn history_revisions(out: &str) -> Vec<i64> {
    out.lines()
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect()
}

/// Parallel: all three pods are created though none of them can even be scheduled; a node
/// that gets the label runs them all.
async fn parallel(c: &Cluster) -> Result<()> {
    let client = &c.client;
    let out = c.kubectl_stdin(&["apply", "-f", "-"], Some(PARALLEL))?;
    ensure!(out.contains("statefulset.apps/par created"), "{out}");
    let pods = wait_for("par-0..2 created", WAIT, || async {
        let pods = pods_of(client, "app=par").await?;
        Ok((pods.len() == 3).then_some(pods))
    })
    .await?;
    let names: Vec<String> = pods.iter().map(|p| p.name_any()).collect();
    ensure!(names == ["par-0", "par-1", "par-2"], "pods {names:?}");
    for p in &pods {
        ensure!(
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_none()
                && !is_ready(p),
            "{} is placed: {:?}",
            p.name_any(),
            p.spec.as_ref().and_then(|s| s.node_name.as_deref())
        );
    }
    let set = get_set(client, "par").await?;
    let status = set.status.unwrap_or_default();
    ensure!(
        status.ready_replicas.unwrap_or(0) == 0,
        "status with nothing scheduled: {status:?}"
    );
    let names: Vec<String> = claims(client).await?.iter().map(|c| c.name_any()).collect();
    ensure!(
        names == ["data-par-0", "data-par-1", "data-par-2"],
        "claims of the Pending pods {names:?}"
    );
    let out = c.kubectl(&["label", "node", "sim-1", "skiff-test=parallel"])?;
    ensure!(out.contains("node/sim-1 labeled"), "{out}");
    rollout_status(c, "sts/par")?;
    let pods = wait_pods(client, "app=par", &["par-0", "par-1", "par-2"]).await?;
    ensure!(
        pods.iter()
            .all(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some("sim-1")),
        "nodes {:?}",
        pods.iter()
            .map(|p| p.spec.as_ref().and_then(|s| s.node_name.clone()))
            .collect::<Vec<_>>()
    );
    wait_settled(client, "par", 3).await?;
    // A burst of 20 (slow-start batches), then down to 5: no name made twice.
    let log = PodLog::start(client, "app=par").await?;
    c.kubectl(&["scale", "sts/par", "--replicas=20"])?;
    rollout_status(c, "sts/par")?;
    let twenty: Vec<String> = (0..20).map(|i| format!("par-{i}")).collect();
    let want: Vec<&str> = twenty.iter().map(String::as_str).collect();
    let mut sorted = want.clone();
    sorted.sort();
    wait_pods(client, "app=par", &sorted).await?;
    wait_settled(client, "par", 20).await?;
    let out = c.kubectl(&["get", "sts", "par"])?;
    ensure!(
        out.contains("READY") && out.contains("20/20"),
        "kubectl get sts: {out}"
    );
    c.kubectl(&["scale", "sts/par", "--replicas=5"])?;
    wait_pods(
        client,
        "app=par",
        &["par-0", "par-1", "par-2", "par-3", "par-4"],
    )
    .await?;
    wait_settled(client, "par", 5).await?;
    let mut uids_of: HashMap<String, Vec<String>> = HashMap::new();
    for s in log.snapshot() {
        let seen = uids_of.entry(s.name.clone()).or_default();
        if !seen.contains(&s.uid) {
            seen.push(s.uid);
        }
    }
    let twice: Vec<_> = uids_of.iter().filter(|(_, u)| u.len() > 1).collect();
    ensure!(twice.is_empty(), "pods made twice: {twice:?}");
    ensure!(uids_of.len() == 20, "pods seen: {}", uids_of.len());
    // Scaled to 0 in parallel, then the set deleted.
    c.kubectl(&["scale", "sts/par", "--replicas=0"])?;
    wait_for("par's pods deleted", WAIT, || async {
        Ok(pods_of(client, "app=par").await?.is_empty().then_some(()))
    })
    .await?;
    c.kubectl(&["delete", "sts", "par"])?;
    Ok(())
}

/// whenDeleted: Delete: the claims are owned by the set, and go with it.
async fn claims_deleted_with_set(c: &Cluster) -> Result<()> {
    let client = &c.client;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(DB))?;
    rollout_status(c, "sts/db")?;
    let set = wait_settled(client, "db", 2).await?;
    let set_uid = set.uid().unwrap_or_default();
    let owned = wait_for("db's claims owned by the set", WAIT, || async {
        let pvcs = claims(client).await?;
        let names: Vec<String> = pvcs.iter().map(|c| c.name_any()).collect();
        let owned = pvcs.iter().all(|c| {
            c.owner_references().iter().any(|r| {
                r.kind == "StatefulSet"
                    && r.api_version == "apps/v1"
                    && r.name == "db"
                    && r.uid == set_uid
                    && r.controller == Some(true)
                    && r.block_owner_deletion == Some(true)
            })
        });
        Ok((names == ["data-db-0", "data-db-1"] && owned).then_some(pvcs))
    })
    .await;
    if owned.is_err() {
        for pvc in claims(client).await? {
            eprintln!("{}: owners {:?}", pvc.name_any(), pvc.owner_references());
        }
    }
    owned?;
    let out = c.kubectl(&["delete", "sts", "db"])?;
    ensure!(out.contains("statefulset.apps \"db\" deleted"), "{out}");
    let gone = wait_for("db's pods and claims deleted", WAIT, || async {
        let pods = pods_of(client, "app=db").await?;
        let pvcs = claims(client).await?;
        Ok((pods.is_empty() && pvcs.is_empty()).then_some(()))
    })
    .await;
    if let Err(e) = gone {
        let claims: Vec<String> = claims(client).await?.iter().map(|c| c.name_any()).collect();
        let pods: Vec<String> = pods_of(client, "app=db")
            .await?
            .iter()
            .map(|p| p.name_any())
            .collect();
        bail!("{e}: left after deleting db: claims {claims:?}, pods {pods:?}");
    }
    Ok(())
}

/// whenScaled: Delete: the claims of the pods scaled away are owned by their pod and
/// collected with it; the others stay, and whenDeleted: Retain keeps them with the set gone.
async fn claims_deleted_on_scale_down(c: &Cluster) -> Result<()> {
    let client = &c.client;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(CACHE))?;
    rollout_status(c, "sts/cache")?;
    wait_settled(client, "cache", 3).await?;
    let pvcs = claims(client).await?;
    let names: Vec<String> = pvcs.iter().map(|c| c.name_any()).collect();
    ensure!(
        names == ["data-cache-0", "data-cache-1", "data-cache-2"],
        "claims {names:?}"
    );
    ensure!(
        pvcs.iter().all(|c| c.owner_references().is_empty()),
        "claims of live replicas owned: {:?}",
        pvcs.iter()
            .map(|c| c.owner_references().to_vec())
            .collect::<Vec<_>>()
    );
    let first_uid = pvcs[1].uid();
    c.kubectl(&["scale", "sts/cache", "--replicas=1"])?;
    let left = wait_for("the scaled-down claims collected", WAIT, || async {
        let names: Vec<String> = claims(client).await?.iter().map(|c| c.name_any()).collect();
        Ok((names == ["data-cache-0"]).then_some(names))
    })
    .await;
    if left.is_err() {
        for pvc in claims(client).await? {
            eprintln!("{}: owners {:?}", pvc.name_any(), pvc.owner_references());
        }
    }
    left?;
    wait_pods(client, "app=cache", &["cache-0"]).await?;
    c.kubectl(&["scale", "sts/cache", "--replicas=2"])?;
    rollout_status(c, "sts/cache")?;
    wait_pods(client, "app=cache", &["cache-0", "cache-1"]).await?;
    let pvcs = claims(client).await?;
    let names: Vec<String> = pvcs.iter().map(|c| c.name_any()).collect();
    ensure!(
        names == ["data-cache-0", "data-cache-1"],
        "claims after the scale up {names:?}"
    );
    ensure!(pvcs[1].uid() != first_uid, "data-cache-1 is the old claim");
    ensure!(
        pvcs.iter().all(|c| c.owner_references().is_empty()),
        "claims of live replicas owned after the scale up"
    );
    c.kubectl(&["delete", "sts", "cache"])?;
    wait_for("cache's pods deleted", WAIT, || async {
        Ok(pods_of(client, "app=cache").await?.is_empty().then_some(()))
    })
    .await?;
    let names: Vec<String> = claims(client).await?.iter().map(|c| c.name_any()).collect();
    ensure!(
        names == ["data-cache-0", "data-cache-1"],
        "claims after the set's deletion {names:?}"
    );
    Ok(())
}

/// When a pod's Ready condition turned True.
fn ready_since(p: &Pod) -> Option<i64> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?
        .last_transition_time
        .as_ref()
        .map(|t| t.0.as_second())
}

/// minReadySeconds: slow-1 is created only once slow-0 has been Ready for 3 s, and
/// availableReplicas follows readyReplicas by as much.
async fn min_ready_seconds(c: &Cluster) -> Result<()> {
    let client = &c.client;
    let log = PodLog::start(client, "app=slow").await?;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(SLOW))?;
    // While slow-0 is ready but not yet available, the status says so.
    let status = wait_for("slow-0 ready", WAIT, || async {
        let set = get_set(client, "slow").await?;
        let s = set.status.unwrap_or_default();
        Ok((s.ready_replicas == Some(1)).then_some(s))
    })
    .await?;
    ensure!(
        status.available_replicas.unwrap_or(0) == 0,
        "available at once despite minReadySeconds: {status:?}"
    );
    rollout_status(c, "sts/slow")?;
    let pods = wait_pods(client, "app=slow", &["slow-0", "slow-1"]).await?;
    let ready0 = ready_since(&pods[0]).context("slow-0's Ready condition")?;
    let created1 = pods[1]
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .context("slow-1's creationTimestamp")?;
    ensure!(
        created1 - ready0 >= 3,
        "slow-1 created at {created1}, slow-0 ready at {ready0}"
    );
    let events = log
        .wait("slow-0 and slow-1 ready", 0, |l| {
            ["slow-0", "slow-1"]
                .iter()
                .all(|n| l.iter().any(|s| s.name == *n && s.healthy()))
        })
        .await?;
    check_created_in_order(&events, &["slow-0", "slow-1"])?;
    wait_settled(client, "slow", 2).await?;
    Ok(())
}

/// OnDelete: a template change touches no pod; a pod deleted by hand comes back at the
/// update revision; `kubectl rollout status` refuses as upstream's.
async fn on_delete(c: &Cluster) -> Result<()> {
    let client = &c.client;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(ONDEL))?;
    wait_settled(client, "ondel", 2).await?;
    let pods = wait_pods(client, "app=ondel", &["ondel-0", "ondel-1"]).await?;
    let before = uids(&pods);
    let rev1 = revision(&pods[0]);
    c.kubectl(&["set", "image", "sts/ondel", "ondel=nginx:1.26"])?;
    let set = wait_for("the update revision", WAIT, || async {
        let set = get_set(client, "ondel").await?;
        let s = set.status.clone().unwrap_or_default();
        let seen = s.observed_generation == set.metadata.generation
            && s.update_revision.is_some()
            && s.update_revision != s.current_revision;
        Ok(seen.then_some(set))
    })
    .await?;
    let status = set.status.unwrap_or_default();
    let rev2 = status.update_revision.clone().unwrap_or_default();
    ensure!(
        status.current_revision.as_deref() == Some(rev1.as_str())
            && status.updated_replicas.unwrap_or(0) == 0
            && status.current_replicas == Some(2),
        "status after set image under OnDelete: {status:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pods = wait_pods(client, "app=ondel", &["ondel-0", "ondel-1"]).await?;
    ensure!(uids(&pods) == before, "OnDelete replaced pods");
    let out = c.kubectl_output(&["rollout", "status", "sts/ondel"], None)?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success()
            && err.contains("rollout status is only available for RollingUpdate strategy type"),
        "rollout status under OnDelete: {err}"
    );
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    pods_api.delete("ondel-1", &DeleteParams::default()).await?;
    let back = wait_for("ondel-1 recreated", WAIT, || async {
        let p = pods_api.get_opt("ondel-1").await?;
        Ok(p.filter(|p| p.uid().as_ref() != before.get("ondel-1") && is_ready(p)))
    })
    .await?;
    ensure!(
        revision(&back) == rev2 && image(&back) == "nginx:1.26",
        "ondel-1 again at {} with {}",
        revision(&back),
        image(&back)
    );
    let set = wait_for("updatedReplicas 1", WAIT, || async {
        let set = get_set(client, "ondel").await?;
        let s = set.status.clone().unwrap_or_default();
        Ok((s.updated_replicas == Some(1) && s.ready_replicas == Some(2)).then_some(set))
    })
    .await?;
    let status = set.status.unwrap_or_default();
    ensure!(
        status.current_replicas == Some(1)
            && status.current_revision.as_deref() == Some(rev1.as_str()),
        "status with one pod replaced: {status:?}"
    );
    Ok(())
}

fn phase(p: &Pod) -> &str {
    p.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Sets the pod's readiness gate condition `skiff.dev/ok`.
async fn set_gate(client: &Client, name: &str, ok: bool) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let patch = serde_json::json!({"status": {"conditions": [
        {"type": "skiff.dev/ok", "status": if ok { "True" } else { "False" }}
    ]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await?;
    wait_for(&format!("{name} ready: {ok}"), WAIT, || async {
        let p = pods.get(name).await?;
        Ok((is_ready(&p) == ok).then_some(()))
    })
    .await
}

async fn names_of(client: &Client, selector: &str) -> Result<Vec<String>> {
    Ok(pods_of(client, selector)
        .await?
        .iter()
        .map(|p| p.name_any())
        .collect())
}

/// OrderedReady waits on readiness, not on time: gate-1 is not created while gate-0 runs
/// unready, and a replica gone unready holds a scale down back until it is Ready again.
async fn unready_pod_blocks(c: &Cluster) -> Result<()> {
    let client = &c.client;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(GATE))?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (i, name) in ["gate-0", "gate-1", "gate-2"].iter().enumerate() {
        wait_for(&format!("{name} running"), WAIT, || async {
            let p = pods.get_opt(name).await?;
            Ok(p.filter(|p| phase(p) == "Running").map(|_| ()))
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let names = names_of(client, "app=gate").await?;
        let want: Vec<String> = (0..=i).map(|o| format!("gate-{o}")).collect();
        ensure!(
            names == want,
            "with {name} running unready the pods are {names:?}"
        );
        let p = pods.get(name).await?;
        ensure!(!is_ready(&p), "{name} ready without its gate");
        set_gate(client, name, true).await?;
    }
    rollout_status(c, "sts/gate")?;
    wait_settled(client, "gate", 3).await?;

    // gate-0 unready: the scale down waits for it.
    set_gate(client, "gate-0", false).await?;
    c.kubectl(&["scale", "sts/gate", "--replicas=1"])?;
    wait_for("the scale down observed", WAIT, || async {
        let set = get_set(client, "gate").await?;
        let s = set.status.unwrap_or_default();
        Ok(
            (s.observed_generation == set.metadata.generation && s.ready_replicas == Some(2))
                .then_some(()),
        )
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let left = pods_of(client, "app=gate").await?;
    ensure!(
        left.len() == 3 && left.iter().all(|p| p.metadata.deletion_timestamp.is_none()),
        "scaled down past an unready gate-0: {:?}",
        left.iter().map(|p| p.name_any()).collect::<Vec<_>>()
    );
    let log = PodLog::start(client, "app=gate").await?;
    set_gate(client, "gate-0", true).await?;
    let events = log
        .wait("gate-2 and gate-1 deleted", 0, |l| {
            ["gate-1", "gate-2"]
                .iter()
                .all(|n| l.iter().any(|s| s.name == *n && s.deleted))
        })
        .await?;
    let gone2 = first(&events, |s| s.name == "gate-2" && s.deleted).unwrap_or(0);
    let going1 = first(&events, |s| s.name == "gate-1" && s.going()).unwrap_or(0);
    ensure!(
        gone2 < going1,
        "gate-1 went before gate-2 was gone: {events:#?}"
    );
    wait_settled(client, "gate", 1).await?;
    Ok(())
}

/// Deleted with `--cascade=orphan`, the set leaves its pods and revisions; the same set
/// applied again adopts them and makes no pod.
async fn orphan_and_adopt(c: &Cluster) -> Result<()> {
    let client = &c.client;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(WEB))?;
    rollout_status(c, "sts/web")?;
    let old = wait_settled(client, "web", 3).await?;
    let rev = old
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .unwrap_or_default();
    let pods = wait_pods(client, "app=web", &["web-0", "web-1", "web-2"]).await?;
    let before = uids(&pods);
    let out = c.kubectl(&["delete", "sts", "web", "--cascade=orphan"])?;
    ensure!(out.contains("statefulset.apps \"web\" deleted"), "{out}");
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");
    wait_for("pods and revision orphaned", WAIT, || async {
        let pods = pods_of(client, "app=web").await?;
        let revs = revisions.list(&ListParams::default()).await?.items;
        let orphaned = get_set(client, "web").await.is_err()
            && pods.len() == 3
            && pods.iter().all(|p| p.owner_references().is_empty())
            && revs.len() == 1
            && revs.iter().all(|r| r.owner_references().is_empty());
        Ok(orphaned.then_some(()))
    })
    .await?;
    let log = PodLog::start(client, "app=web").await?;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(WEB))?;
    let set = wait_settled(client, "web", 3).await?;
    let new_uid = set.uid().unwrap_or_default();
    ensure!(Some(&new_uid) != old.uid().as_ref(), "the same set");
    ensure!(
        set.status
            .as_ref()
            .and_then(|s| s.current_revision.as_deref())
            == Some(rev.as_str()),
        "revision after adoption {:?}, before {rev}",
        set.status
    );
    wait_for("pods and revision adopted", WAIT, || async {
        let pods = pods_of(client, "app=web").await?;
        let revs = revisions.list(&ListParams::default()).await?.items;
        let owned = |refs: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]| {
            refs.iter()
                .any(|r| r.uid == new_uid && r.controller == Some(true))
        };
        let adopted = pods.len() == 3
            && pods.iter().all(|p| owned(p.owner_references()))
            && revs.len() == 1
            && revs.iter().all(|r| owned(r.owner_references()));
        Ok(adopted.then_some(()))
    })
    .await?;
    let pods = wait_pods(client, "app=web", &["web-0", "web-1", "web-2"]).await?;
    ensure!(uids(&pods) == before, "pods replaced on adoption");
    let events = log.snapshot();
    ensure!(
        !events.iter().any(Seen::going),
        "a pod was deleted on adoption: {events:#?}"
    );
    Ok(())
}

/// `ordinals.start: 5`: pods ord-5 and ord-6 and their claims; scale down takes ord-6;
/// `kubectl rollout restart` replaces ord-6, then ord-5.
async fn start_ordinal(c: &Cluster) -> Result<()> {
    let client = &c.client;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(ORD))?;
    rollout_status(c, "sts/ord")?;
    let pods = wait_pods(client, "app=ord", &["ord-5", "ord-6"]).await?;
    for p in &pods {
        let name = p.name_any();
        let index = name.trim_start_matches("ord-");
        ensure!(
            label(p, POD_INDEX_LABEL) == Some(index)
                && claim_of(p, "data") == Some(format!("data-{name}")),
            "{name}: labels {:?}, volumes {:?}",
            p.metadata.labels,
            p.spec.as_ref().and_then(|s| s.volumes.as_ref())
        );
    }
    let names: Vec<String> = claims(client).await?.iter().map(|c| c.name_any()).collect();
    ensure!(names == ["data-ord-5", "data-ord-6"], "claims {names:?}");
    let set = wait_settled(client, "ord", 2).await?;
    let rev1 = set
        .status
        .and_then(|s| s.current_revision)
        .unwrap_or_default();

    let log = PodLog::start(client, "app=ord").await?;
    let out = c.kubectl(&["rollout", "restart", "sts/ord"])?;
    ensure!(out.contains("statefulset.apps/ord restarted"), "{out}");
    rollout_status(c, "sts/ord")?;
    let set = wait_for("the restart to roll out", WAIT, || async {
        let set = wait_settled(client, "ord", 2).await?;
        let cur = set.status.as_ref().and_then(|s| s.current_revision.clone());
        Ok((cur.as_deref() != Some(rev1.as_str())).then_some(set))
    })
    .await?;
    let rev2 = set
        .status
        .and_then(|s| s.current_revision)
        .unwrap_or_default();
    let events = log
        .wait("ord-6 and ord-5 restarted", 0, |l| {
            ["ord-6", "ord-5"].iter().all(|n| {
                l.iter()
                    .any(|s| s.name == *n && s.healthy() && s.revision == rev2)
            })
        })
        .await?;
    check_replaced_in_order(&events, &["ord-6", "ord-5"], &uids(&pods), &rev2)?;

    c.kubectl(&["scale", "sts/ord", "--replicas=1"])?;
    wait_pods(client, "app=ord", &["ord-5"]).await?;
    wait_settled(client, "ord", 1).await?;
    Ok(())
}

/// The most pods of `names` not Running and Ready (or missing) after any one event.
fn most_unavailable(log: &[Seen], names: &[&str]) -> usize {
    let mut healthy: HashMap<&str, bool> = names.iter().map(|n| (*n, true)).collect();
    let mut most = 0;
    for s in log {
        if let Some(h) = healthy.get_mut(s.name.as_str()) {
            *h = s.healthy();
        }
        most = most.max(healthy.values().filter(|h| !**h).count());
    }
    most
}

/// maxUnavailable 2: the rollout replaces two pods at a time, highest ordinals first, never
/// more; revisionHistoryLimit 1 keeps one old revision.
async fn max_unavailable(c: &Cluster) -> Result<()> {
    let client = &c.client;
    let names = ["wide-0", "wide-1", "wide-2", "wide-3"];
    c.kubectl_stdin(&["apply", "-f", "-"], Some(WIDE))?;
    rollout_status(c, "sts/wide")?;
    wait_settled(client, "wide", 4).await?;
    let mut pods = wait_pods(client, "app=wide", &names).await?;
    for (round, image_ref) in ["nginx:1.26", "nginx:1.27"].iter().enumerate() {
        let before = uids(&pods);
        let log = PodLog::start(client, "app=wide").await?;
        c.kubectl(&["set", "image", "sts/wide", &format!("wide={image_ref}")])?;
        rollout_status(c, "sts/wide")?;
        let set = wait_for("the update to settle", WAIT, || async {
            let set = wait_settled(client, "wide", 4).await?;
            let s = set.status.clone().unwrap_or_default();
            let done = s
                .current_revision
                .as_deref()
                .is_some_and(|r| pods.iter().all(|p| revision(p) != r));
            Ok(done.then_some(set))
        })
        .await?;
        let rev = set
            .status
            .and_then(|s| s.current_revision)
            .unwrap_or_default();
        let events = log
            .wait("every pod replaced", 0, |l| {
                names.iter().all(|n| {
                    l.iter()
                        .any(|s| s.name == *n && s.healthy() && s.revision == rev)
                })
            })
            .await?;
        let most = most_unavailable(&events, &names);
        ensure!(
            most == 2,
            "round {round}: at most {most} pods unavailable at once: {events:#?}"
        );
        // The two highest went first, together: both gone before either of the two lowest.
        let gone = |n: &str| {
            first(&events, |s| {
                s.name == n && Some(&s.uid) == before.get(n) && s.going()
            })
            .unwrap_or(usize::MAX)
        };
        ensure!(
            gone("wide-3").max(gone("wide-2")) < gone("wide-1").min(gone("wide-0")),
            "round {round}: not the highest two first: {events:#?}"
        );
        pods = wait_pods(client, "app=wide", &names).await?;
        ensure!(
            pods.iter().all(|p| image(p) == *image_ref),
            "images {:?}",
            pods.iter().map(image).collect::<Vec<_>>()
        );
    }
    // Three revisions made, the live one and one more kept.
    let revisions: Api<ControllerRevision> = Api::namespaced(client.clone(), "default");
    let kept = wait_for("the history truncated", WAIT, || async {
        let mut revs: Vec<i64> = revisions
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|r| r.revision)
            .collect();
        revs.sort();
        Ok((revs == [2, 3]).then_some(revs))
    })
    .await;
    if kept.is_err() {
        let revs: Vec<(String, i64)> = revisions
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|r| (r.name_any(), r.revision))
            .collect();
        bail!("revisions left: {revs:?}");
    }
    Ok(())
}

/// A pod that failed is deleted and made again under its name.
async fn failed_pod_replaced(c: &Cluster) -> Result<()> {
    let client = &c.client;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(ORD))?;
    rollout_status(c, "sts/ord")?;
    let pods = wait_pods(client, "app=ord", &["ord-5", "ord-6"]).await?;
    let before = uids(&pods);
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let patch = serde_json::json!({"status": {"phase": "Failed"}});
    api.patch_status("ord-6", &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    wait_for("ord-6 made again", WAIT, || async {
        let p = api.get_opt("ord-6").await?;
        Ok(
            p.filter(|p| p.uid().as_ref() != before.get("ord-6") && is_ready(p))
                .map(|_| ()),
        )
    })
    .await?;
    let pods = wait_pods(client, "app=ord", &["ord-5", "ord-6"]).await?;
    ensure!(
        pods[0].uid().as_ref() == before.get("ord-5"),
        "ord-5 replaced too"
    );
    wait_event(
        client,
        "ord",
        "SuccessfulDelete",
        "delete Pod ord-6 in StatefulSet ord successful",
    )
    .await?;
    Ok(())
}

on_both_datastores!(nodes: 3;
    max_unavailable,
    failed_pod_replaced,
    unready_pod_blocks,
    orphan_and_adopt,
    start_ordinal,
    ordered_lifecycle,
    parallel,
    claims_deleted_with_set,
    claims_deleted_on_scale_down,
    min_ready_seconds,
    on_delete,
);
