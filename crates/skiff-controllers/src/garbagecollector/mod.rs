//! The garbage collector, as upstream's (pkg/controller/garbagecollector): deletion
//! propagation through `ownerReferences`, as a client of the API only.
//!
//! - Monitors: one metadata-only list+watch per resource that discovery lists as listable,
//!   watchable and deletable (events excepted, as upstream), discovered again every 30 s so
//!   that new kinds are watched too. Their changes go, in order, to one task that keeps the
//!   dependency graph ([`graph`]).
//! - The graph asks for items to be looked at: an owner that is gone (its dependents), a
//!   virtual owner nobody has seen (is it really absent?), an owner whose deletion started
//!   with the `foregroundDeletion` or the `orphan` finalizer.
//! - Workers take them from two rate-limited queues ([`queue`]): *attempt to delete* reads
//!   the item live, classifies each of its owners by a live read (an owner with another uid
//!   counts as absent), and deletes it (with the uid and resourceVersion it read as
//!   preconditions) when no owner is left, in the background, or in the foreground when an
//!   owner waits for it and it has dependents of its own; an owner deleted in the foreground
//!   has its finalizer removed (a merge patch checked against its resourceVersion) once no
//!   dependent with `blockOwnerDeletion` is left, and the API server then removes it.
//!   *Attempt to orphan* removes the owner's reference from every dependent (a strategic
//!   merge patch by uid, a JSON merge patch where the kind has none), then the `orphan`
//!   finalizer.
//!
//! The API server only marks: it sets the deletionTimestamp and the finalizer the
//! propagation policy asks for, and removes an object once its finalizers are empty.
//! What to do with an item is decided in [`decide`] from what was read; nothing here
//! polls: an item is looked at again when the graph changes, or after a failure, with
//! client-go's backoff.

pub mod decide;
pub mod graph;
pub mod queue;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use kube::core::PartialObjectMeta;
use kube::discovery::{Discovery, Scope};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use self::decide::{Decision, OwnerState, Policy};
use self::graph::{Change, Effect, Graph, Node, ObjectRef, Observed, FOREGROUND, ORPHAN};
use self::queue::WorkQueue;
use crate::events::Recorder;
use crate::{Context, Task};

/// How often discovery is asked for new (or removed) resources (upstream's
/// `--garbage-collector` resync period, 30 s).
const RESYNC: Duration = Duration::from_secs(30);
/// How long the workers wait for the first lists before they start anyway.
const INITIAL_SYNC_TIMEOUT: Duration = Duration::from_secs(30);
/// Upstream's `--concurrent-gc-syncs`.
const WORKERS: usize = 20;

/// Why an item could not be handled (it is retried with backoff, except where said).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
    /// The kind is not (yet) served: a custom resource discovery has not seen, or a bad
    /// reference. Retried: the next discovery may know it.
    #[error("unable to get REST mapping for {api_version}/{kind}.")]
    Mapping { api_version: String, kind: String },
    /// Not retried: it will not resolve.
    #[error("cluster-scoped objects cannot refer to namespaced owners")]
    NamespacedOwnerOfClusterScoped,
    /// The item is gone; the graph was told (not retried).
    #[error("enqueued virtual delete event")]
    VirtualDeleteEnqueued,
    #[error("the object is not found")]
    NotFound,
    #[error("{0}")]
    Retry(String),
}

type Result<T, E = Error> = std::result::Result<T, E>;

fn api_code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

/// apiVersion and kind -> the resource and whether it is namespaced (upstream's RESTMapper),
/// from the last discovery.
#[derive(Default)]
struct Mapper {
    by_kind: HashMap<(String, String), (ApiResource, bool)>,
}

struct Gc {
    client: Client,
    graph: Mutex<Graph>,
    changes: mpsc::UnboundedSender<Change>,
    attempt_to_delete: WorkQueue<String>,
    attempt_to_orphan: WorkQueue<String>,
    mapper: RwLock<Arc<Mapper>>,
    recorder: Recorder,
}

/// Sets up the `garbage-collector` controller.
pub fn controller(ctx: &Arc<Context>) -> crate::Result<Task> {
    let (changes, rx) = mpsc::unbounded_channel();
    let gc = Arc::new(Gc {
        client: ctx.client.clone(),
        graph: Mutex::new(Graph::default()),
        changes,
        attempt_to_delete: WorkQueue::default(),
        attempt_to_orphan: WorkQueue::default(),
        mapper: RwLock::new(Arc::default()),
        recorder: Recorder::new(ctx.client.clone(), "garbage-collector-controller"),
    });
    Ok(Box::pin(async move {
        tracing::debug!(controller = "garbagecollector", "starting controller");
        let (synced_tx, synced_rx) = tokio::sync::watch::channel(false);
        let mut tasks = JoinSet::new();
        tasks.spawn(process_graph_changes(gc.clone(), rx));
        tasks.spawn(sync_monitors(gc.clone(), synced_tx));
        let delays = gc.clone();
        tasks.spawn(async move {
            tokio::join!(
                delays.attempt_to_delete.run_delays(),
                delays.attempt_to_orphan.run_delays()
            );
        });
        for _ in 0..WORKERS {
            let (gc1, mut synced1) = (gc.clone(), synced_rx.clone());
            tasks.spawn(async move {
                let _ = synced1.wait_for(|s| *s).await;
                loop {
                    let uid = gc1.attempt_to_delete.get().await;
                    if gc1.attempt_to_delete_worker(&uid).await {
                        gc1.attempt_to_delete.add_rate_limited(uid.clone());
                    } else {
                        gc1.attempt_to_delete.forget(&uid);
                    }
                    gc1.attempt_to_delete.done(&uid);
                }
            });
            let (gc2, mut synced2) = (gc.clone(), synced_rx.clone());
            tasks.spawn(async move {
                let _ = synced2.wait_for(|s| *s).await;
                loop {
                    let uid = gc2.attempt_to_orphan.get().await;
                    if gc2.attempt_to_orphan_worker(&uid).await {
                        gc2.attempt_to_orphan.add_rate_limited(uid.clone());
                    } else {
                        gc2.attempt_to_orphan.forget(&uid);
                    }
                    gc2.attempt_to_orphan.done(&uid);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }))
}

/// The graph builder's loop: applies the monitors' changes in order, queues what they ask.
async fn process_graph_changes(gc: Arc<Gc>, mut rx: mpsc::UnboundedReceiver<Change>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 256).await > 0 {
        let effects: Vec<Effect> = {
            let mut graph = gc.graph.lock();
            batch.drain(..).flat_map(|c| graph.apply(c)).collect()
        };
        for effect in effects {
            match effect {
                Effect::AttemptToDelete(uid) => gc.attempt_to_delete.add(uid),
                Effect::AttemptToDeleteRateLimited(uid) => {
                    gc.attempt_to_delete.add_rate_limited(uid)
                }
                Effect::AttemptToOrphan(uid) => gc.attempt_to_orphan.add(uid),
                Effect::InvalidNamespaceOwnerRef { dependent, owner } => {
                    tracing::debug!(item = %dependent, %owner, "item references an owner but does not match namespaces");
                    let note = format!(
                        "ownerRef {owner} does not exist in namespace {:?}",
                        dependent.namespace
                    );
                    gc.recorder
                        .warning_about(
                            object_reference(&dependent),
                            "OwnerRefInvalidNamespace",
                            note,
                        )
                        .await;
                }
            }
        }
    }
}

fn object_reference(r: &ObjectRef) -> ObjectReference {
    ObjectReference {
        api_version: Some(r.api_version.clone()),
        kind: Some(r.kind.clone()),
        namespace: (!r.namespace.is_empty()).then(|| r.namespace.clone()),
        name: Some(r.name.clone()),
        uid: Some(r.uid.clone()),
        ..Default::default()
    }
}

/// What discovery says: the mapper, and the resources to monitor (keyed `apiVersion/plural`).
async fn discover(client: &Client) -> Result<(Mapper, HashMap<String, ApiResource>)> {
    let discovery = match Discovery::new(client.clone()).run_aggregated().await {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!(error = %e, "aggregated discovery failed; discovering group by group");
            Discovery::new(client.clone()).run().await?
        }
    };
    let mut mapper = Mapper::default();
    let mut deletable = HashMap::new();
    for group in discovery.groups() {
        for version in group.versions() {
            for (ar, caps) in group.versioned_resources(version) {
                mapper.by_kind.insert(
                    (ar.api_version.clone(), ar.kind.clone()),
                    (ar, caps.scope == Scope::Namespaced),
                );
            }
        }
        for (ar, caps) in group.recommended_resources() {
            let ignored =
                ar.plural == "events" && matches!(ar.group.as_str(), "" | "events.k8s.io");
            if ignored
                || !["list", "watch", "delete"]
                    .iter()
                    .all(|v| caps.supports_operation(v))
            {
                continue;
            }
            deletable.insert(format!("{}/{}", ar.api_version, ar.plural), ar);
        }
    }
    Ok((mapper, deletable))
}

/// Upstream's `Sync`: discovery every [`RESYNC`], a monitor started for each new deletable
/// resource and stopped for each one gone. Tells the workers to start once the first
/// monitors have listed (or after [`INITIAL_SYNC_TIMEOUT`]).
async fn sync_monitors(gc: Arc<Gc>, synced: tokio::sync::watch::Sender<bool>) {
    let mut running: HashMap<String, (AbortHandle, Arc<AtomicBool>)> = HashMap::new();
    let mut monitors = JoinSet::new();
    loop {
        let discovered = match discover(&gc.client).await {
            Ok((mapper, deletable)) if !deletable.is_empty() => {
                *gc.mapper.write() = Arc::new(mapper);
                let before = running.len();
                running.retain(|key, (handle, _)| {
                    let keep = deletable.contains_key(key);
                    if !keep {
                        handle.abort();
                    }
                    keep
                });
                let removed = before - running.len();
                let mut added = 0;
                for (key, ar) in deletable {
                    if running.contains_key(&key) {
                        continue;
                    }
                    let listed = Arc::new(AtomicBool::new(false));
                    let handle = monitors.spawn(monitor(gc.clone(), ar, listed.clone()));
                    running.insert(key, (handle, listed));
                    added += 1;
                }
                if added + removed > 0 {
                    tracing::debug!(
                        added,
                        removed,
                        monitors = running.len(),
                        "synced the garbage collector's monitors"
                    );
                }
                true
            }
            Ok(_) => {
                tracing::debug!(
                    "no resources reported by discovery, skipping garbage collector sync"
                );
                false
            }
            Err(e) => {
                tracing::debug!(error = %e, "garbage collector discovery failed");
                false
            }
        };
        if !discovered && !*synced.borrow() {
            // Nothing to collect with yet: try again soon rather than a period later.
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        if !*synced.borrow() {
            let deadline = tokio::time::Instant::now() + INITIAL_SYNC_TIMEOUT;
            while !running.values().all(|(_, l)| l.load(Ordering::Relaxed))
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            if running.values().all(|(_, l)| l.load(Ordering::Relaxed)) {
                tracing::debug!("garbage collector: all resource monitors have synced");
            } else {
                tracing::info!("garbage collector: not all resource monitors could be synced, proceeding anyways");
            }
            synced.send_replace(true);
        }
        while monitors.try_join_next().is_some() {}
        tokio::time::sleep(RESYNC).await;
    }
}

/// The metadata of `obj` as the graph takes it (`None` without a uid).
fn observed(ar: &ApiResource, m: &ObjectMeta) -> Option<Observed> {
    let uid = m.uid.clone().filter(|u| !u.is_empty())?;
    Some(Observed {
        identity: ObjectRef {
            kind: ar.kind.clone(),
            api_version: ar.api_version.clone(),
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            uid,
        },
        owners: m.owner_references.clone().unwrap_or_default(),
        deleting: m.deletion_timestamp.is_some(),
        finalizers: m.finalizers.clone().unwrap_or_default(),
    })
}

/// One resource's monitor: a metadata-only list+watch whose changes go to the graph. A
/// failed watch backs off and lists again; what the new list lacks is reported gone.
async fn monitor(gc: Arc<Gc>, ar: ApiResource, listed: Arc<AtomicBool>) {
    // Metadata-only requests: only `metadata` is kept of each object.
    let api: Api<PartialObjectMeta<DynamicObject>> = Api::all_with(gc.client.clone(), &ar);
    let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
    let mut relist: Option<HashSet<String>> = None;
    let send = |c: Change| {
        let _ = gc.changes.send(c);
    };
    while let Some(event) = events.next().await {
        let event: watcher::Event<PartialObjectMeta<DynamicObject>> = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(resource = %ar.plural, group = %ar.group, error = %e, "garbage collector watch failed; retrying");
                continue;
            }
        };
        match event {
            watcher::Event::Init => relist = Some(HashSet::new()),
            watcher::Event::InitApply(o) => {
                if let Some(o) = observed(&ar, &o.metadata) {
                    if let Some(seen) = &mut relist {
                        seen.insert(o.identity.uid.clone());
                    }
                    send(Change::Upsert(o));
                }
            }
            watcher::Event::InitDone => {
                send(Change::Relisted {
                    api_version: ar.api_version.clone(),
                    kind: ar.kind.clone(),
                    uids: relist.take().unwrap_or_default(),
                });
                listed.store(true, Ordering::Relaxed);
            }
            watcher::Event::Apply(o) => {
                if let Some(o) = observed(&ar, &o.metadata) {
                    send(Change::Upsert(o));
                }
            }
            watcher::Event::Delete(o) => {
                if let Some(o) = observed(&ar, &o.metadata) {
                    send(Change::Deleted(o));
                }
            }
        }
    }
}

impl Gc {
    fn resource(&self, api_version: &str, kind: &str) -> Result<(ApiResource, bool)> {
        self.mapper
            .read()
            .by_kind
            .get(&(api_version.to_owned(), kind.to_owned()))
            .cloned()
            .ok_or_else(|| Error::Mapping {
                api_version: api_version.to_owned(),
                kind: kind.to_owned(),
            })
    }

    fn api(&self, ar: &ApiResource, namespaced: bool, namespace: &str) -> Api<DynamicObject> {
        if namespaced {
            Api::namespaced_with(self.client.clone(), namespace, ar)
        } else {
            Api::all_with(self.client.clone(), ar)
        }
    }

    /// The API of the object `r` names (upstream's `resourceDefaultNamespace`).
    fn api_for(&self, r: &ObjectRef) -> Result<Api<DynamicObject>> {
        let (ar, namespaced) = self.resource(&r.api_version, &r.kind)?;
        if namespaced && r.namespace.is_empty() {
            return Err(Error::NamespacedOwnerOfClusterScoped);
        }
        Ok(self.api(&ar, namespaced, &r.namespace))
    }

    /// The live metadata of the object `r` names (`None`: not found).
    async fn get_object(&self, r: &ObjectRef) -> Result<Option<ObjectMeta>> {
        let api = self.api_for(r)?;
        Ok(api.get_metadata_opt(&r.name).await?.map(|o| o.metadata))
    }

    fn virtual_delete(&self, r: &ObjectRef) -> Error {
        let _ = self.changes.send(Change::VirtualDelete(r.clone()));
        Error::VirtualDeleteEnqueued
    }

    /// One item of the attempt-to-delete queue; answers whether to retry it.
    async fn attempt_to_delete_worker(&self, uid: &str) -> bool {
        let Some(node) = self.graph.lock().node(uid).cloned() else {
            tracing::trace!(
                uid,
                "item no longer in the graph, skipping attemptToDeleteItem"
            );
            return false;
        };
        match self.attempt_to_delete_item(&node).await {
            Ok(()) => {
                if !node.observed {
                    // A virtual node for an object added and removed while a watch was
                    // re-established would otherwise stay in the graph (upstream 56121).
                    tracing::trace!(item = %node.identity, "item hasn't been observed via informer yet");
                }
                !node.observed
            }
            Err(Error::VirtualDeleteEnqueued | Error::NamespacedOwnerOfClusterScoped) => false,
            Err(e @ Error::Mapping { .. }) => {
                tracing::debug!(item = %node.identity, error = %e, "error syncing item");
                true
            }
            Err(e) => {
                tracing::warn!(item = %node.identity, error = %e, "error syncing item");
                true
            }
        }
    }

    /// Upstream's `attemptToDeleteItem`.
    async fn attempt_to_delete_item(&self, item: &Node) -> Result<()> {
        tracing::trace!(item = %item.identity, virtual_ = !item.observed, "processing item");
        if item.being_deleted && !item.deleting_dependents {
            // On its way out: its dependents are handled once it is gone.
            return Ok(());
        }
        let latest = match self.get_object(&item.identity).await? {
            Some(m) if m.uid.as_deref() == Some(item.identity.uid.as_str()) => m,
            _ => {
                tracing::trace!(item = %item.identity, "item not found, generating a virtual delete event");
                return Err(self.virtual_delete(&item.identity));
            }
        };
        if item.deleting_dependents {
            return self.process_deleting_dependents(item).await;
        }
        let refs = latest.owner_references.clone().unwrap_or_default();
        if refs.is_empty() {
            return Ok(());
        }
        let mut classified = Vec::with_capacity(refs.len());
        for r in &refs {
            let state = match self.live_owner(r, item).await? {
                None => OwnerState::Dangling,
                Some(owner) => decide::owner_state(r, Some(&owner)),
            };
            classified.push((r.clone(), state));
        }
        let (dependents, dependent_deleting) = {
            let graph = self.graph.lock();
            let deps = graph.dependents(&item.identity.uid);
            (deps.len(), deps.iter().any(|d| d.deleting_dependents))
        };
        let finalizers = latest.finalizers.clone().unwrap_or_default();
        let rv = latest.resource_version.clone().unwrap_or_default();
        match decide::decide(&classified, &finalizers, dependents, dependent_deleting) {
            Decision::Keep => Ok(()),
            Decision::RemoveReferences(uids) => {
                tracing::debug!(item = %item.identity, owners = ?uids, "remove dangling references and waiting references for item");
                let smp = decide::delete_owner_refs_strategic(&item.identity.uid, &uids);
                self.patch(&item.identity, smp, |m| {
                    decide::delete_owner_refs_merge(
                        m.resource_version.as_deref().unwrap_or(""),
                        m.owner_references.as_deref().unwrap_or(&[]),
                        &uids,
                    )
                })
                .await
            }
            Decision::Delete {
                policy,
                unblock_first,
            } => {
                if unblock_first {
                    tracing::debug!(item = %item.identity, "some of its owners and its dependent have FinalizerDeletingDependents: unblocking its ownerReferences, then deleting it in the foreground");
                    let smp = decide::unblock_strategic(&item.identity.uid, &item.owners);
                    let owners = item.owners.clone();
                    self.patch(&item.identity, smp, |m| {
                        decide::unblock_merge(m.resource_version.as_deref().unwrap_or(""), &owners)
                    })
                    .await?;
                }
                tracing::debug!(item = %item.identity, propagation_policy = ?policy, "deleting item");
                match self.delete_object(&item.identity, &rv, &refs, policy).await {
                    Err(Error::NotFound) => Err(self.virtual_delete(&item.identity)),
                    other => other,
                }
            }
        }
    }

    /// Upstream's `isDangling`: the live owner `reference` names, or `None` when it is
    /// absent (not found, or another uid; remembered in the absent-owner cache).
    async fn live_owner(
        &self,
        reference: &OwnerReference,
        item: &Node,
    ) -> Result<Option<ObjectMeta>> {
        let mut key = ObjectRef::of_owner(reference, "");
        {
            let mut graph = self.graph.lock();
            if graph.absent.has(&key) {
                return Ok(None);
            }
            key.namespace = item.identity.namespace.clone();
            if graph.absent.has(&key) {
                return Ok(None);
            }
        }
        let (ar, namespaced) = self.resource(&reference.api_version, &reference.kind)?;
        if !namespaced {
            key.namespace.clear();
        }
        if item.identity.namespace.is_empty() && namespaced {
            tracing::debug!(item = %item.identity, owner = %key, "item is cluster-scoped, but refers to a namespaced owner");
            return Err(Error::NamespacedOwnerOfClusterScoped);
        }
        let api = self.api(&ar, namespaced, &item.identity.namespace);
        match api.get_metadata_opt(&reference.name).await? {
            Some(o) if o.metadata.uid.as_deref() == Some(reference.uid.as_str()) => {
                Ok(Some(o.metadata))
            }
            _ => {
                tracing::trace!(item = %item.identity, owner = %key, "item's owner is not found");
                self.graph.lock().absent.add(key);
                Ok(None)
            }
        }
    }

    /// Upstream's `processDeletingDependentsItem`: an owner deleted in the foreground loses
    /// its finalizer once no blocking dependent is left; until then its blocking dependents
    /// are looked at (each one's deletion wakes it again).
    async fn process_deleting_dependents(&self, item: &Node) -> Result<()> {
        let blocking = self.graph.lock().blocking_dependents(&item.identity.uid);
        if blocking.is_empty() {
            tracing::debug!(item = %item.identity, "remove DeleteDependents finalizer for item");
            return self.remove_finalizer(&item.identity, FOREGROUND).await;
        }
        for dep in blocking {
            if !dep.deleting_dependents {
                self.attempt_to_delete.add(dep.identity.uid.clone());
            }
        }
        Ok(())
    }

    /// Deletes with the item's uid (and the resourceVersion it was decided at) as
    /// preconditions; a conflict only on the resourceVersion, with the same owners, is
    /// retried without it (upstream's `deleteObject`).
    async fn delete_object(
        &self,
        item: &ObjectRef,
        resource_version: &str,
        owners: &[OwnerReference],
        policy: Policy,
    ) -> Result<()> {
        let api = self.api_for(item)?;
        let mut rv = (!resource_version.is_empty()).then(|| resource_version.to_owned());
        loop {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: Some(item.uid.clone()),
                    resource_version: rv.clone(),
                }),
                propagation_policy: Some(match policy {
                    Policy::Background => PropagationPolicy::Background,
                    Policy::Foreground => PropagationPolicy::Foreground,
                    Policy::Orphan => PropagationPolicy::Orphan,
                }),
                ..Default::default()
            };
            match api.delete(&item.name, &params).await {
                Ok(_) => return Ok(()),
                Err(e) if api_code(&e) == Some(404) => return Err(Error::NotFound),
                Err(e) if api_code(&e) == Some(409) && rv.is_some() => {
                    match api.get_metadata_opt(&item.name).await? {
                        None => return Err(Error::NotFound),
                        Some(live)
                            if live.metadata.uid.as_deref() == Some(item.uid.as_str())
                                && live.metadata.resource_version != rv
                                && live.metadata.owner_references.as_deref().unwrap_or(&[])
                                    == owners =>
                        {
                            // Changed, but not its owners: the decision stands.
                            rv = None;
                        }
                        Some(_) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// A strategic merge patch, or (for kinds without one: 415) the JSON merge patch
    /// `merge` derives from the live object (upstream's `patch`).
    async fn patch(
        &self,
        item: &ObjectRef,
        strategic: Value,
        merge: impl FnOnce(&ObjectMeta) -> Value,
    ) -> Result<()> {
        let api = self.api_for(item)?;
        let params = PatchParams::default();
        match api
            .patch_metadata(&item.name, &params, &Patch::Strategic(strategic))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if api_code(&e) == Some(415) => {
                let live = api
                    .get_metadata_opt(&item.name)
                    .await?
                    .ok_or(Error::NotFound)?;
                let body = merge(&live.metadata);
                api.patch_metadata(&item.name, &params, &Patch::Merge(body))
                    .await?;
                Ok(())
            }
            Err(e) if api_code(&e) == Some(404) => Err(Error::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `finalizer` from the object (upstream's `removeFinalizer`: read, merge patch
    /// checked against the resourceVersion read, four tries on conflict).
    async fn remove_finalizer(&self, owner: &ObjectRef, finalizer: &str) -> Result<()> {
        const STEPS: u32 = 4;
        let api = self.api_for(owner)?;
        let mut pause = Duration::from_millis(10);
        for _ in 0..STEPS {
            let Some(live) = api.get_metadata_opt(&owner.name).await? else {
                return Ok(());
            };
            if live.metadata.uid.as_deref() != Some(owner.uid.as_str()) {
                return Ok(()); // another object by that name: ours is gone
            }
            let Some(patch) = decide::remove_finalizer_patch(&live.metadata, finalizer) else {
                tracing::trace!(object = %owner, finalizer, "finalizer already removed from object");
                return Ok(());
            };
            match api
                .patch_metadata(&owner.name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if api_code(&e) == Some(404) => return Ok(()),
                Err(e) if api_code(&e) == Some(409) => {
                    tokio::time::sleep(pause).await;
                    pause *= 5;
                }
                Err(e) => {
                    return Err(Error::Retry(format!(
                    "cannot finalize owner {owner}: {e}. The garbage collector will retry later"
                )))
                }
            }
        }
        Err(Error::Retry(format!("updateMaxRetries({STEPS}) has reached. The garbage collector will retry later for owner {owner}")))
    }

    /// One item of the attempt-to-orphan queue (upstream's `attemptToOrphanWorker`): its
    /// reference removed from every dependent, then its `orphan` finalizer; answers whether
    /// to retry.
    async fn attempt_to_orphan_worker(&self, uid: &str) -> bool {
        let (owner, dependents) = {
            let graph = self.graph.lock();
            let Some(owner) = graph.node(uid).cloned() else {
                return false;
            };
            (owner, graph.dependents(uid))
        };
        if let Err(e) = self.orphan_dependents(&owner.identity, &dependents).await {
            tracing::warn!(owner = %owner.identity, error = %e, "orphanDependents failed");
            return true;
        }
        if let Err(e) = self.remove_finalizer(&owner.identity, ORPHAN).await {
            tracing::warn!(owner = %owner.identity, error = %e, "removeOrphanFinalizer failed");
            return true;
        }
        false
    }

    async fn orphan_dependents(&self, owner: &ObjectRef, dependents: &[Node]) -> Result<()> {
        let owners = [owner.uid.clone()];
        let owners = &owners;
        let results = futures::future::join_all(dependents.iter().map(|dep| async move {
            let smp = decide::delete_owner_refs_strategic(&dep.identity.uid, owners);
            let result = self
                .patch(&dep.identity, smp, |m| {
                    decide::delete_owner_refs_merge(
                        m.resource_version.as_deref().unwrap_or(""),
                        m.owner_references.as_deref().unwrap_or(&[]),
                        owners,
                    )
                })
                .await;
            (dep, result)
        }))
        .await;
        let failed: Vec<String> = results
            .into_iter()
            .filter_map(|(dep, r)| match r {
                Ok(()) | Err(Error::NotFound) => None,
                Err(e) => Some(format!("orphaning {} failed, {e}", dep.identity)),
            })
            .collect();
        if failed.is_empty() {
            tracing::trace!(%owner, "successfully updated all dependents");
            Ok(())
        } else {
            Err(Error::Retry(format!(
                "failed to orphan dependents of owner {owner}, got errors: {}",
                failed.join(", ")
            )))
        }
    }
}
