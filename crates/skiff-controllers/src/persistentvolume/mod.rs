//! The `persistentvolume-binder` controller: upstream's PersistentVolume controller
//! (pkg/controller/volume/persistentvolume, `pv_controller.go`, `index.go`) without its
//! in-tree volume plugins. It binds Pending claims to the best Available volume (or the one
//! either side names), writes what upstream writes (the volume's `claimRef` with the
//! claim's uid and resourceVersion and, when it chose, `pv.kubernetes.io/bound-by-controller`;
//! the claim's `volumeName`, `pv.kubernetes.io/bind-completed`, its status), marks claims
//! `Lost` whose volume went, and releases volumes whose claim went, then applies their
//! reclaim policy. It records upstream's events (`FailedBinding`, `WaitForFirstConsumer`,
//! `ExternalProvisioning`, `ProvisioningFailed`, `VolumeMismatch`, `ClaimLost`, ...) as
//! `persistentvolume-controller`.
//!
//! What it does not do: provision volumes (a class with a provisioner is left to that
//! provisioner, as upstream leaves external ones), recycle (`Recycle` fails, as upstream
//! with no recycler plugin for the volume), delete storage behind a volume (`Delete`
//! deletes the PersistentVolume object only, leaving volumes of CSI drivers and external
//! provisioners to them), or the scheduler's half of `WaitForFirstConsumer`.
//!
//! As upstream: one worker for claims and one for volumes, every object synced again every
//! 15 s (`--pvclaimbinder-sync-period`) so a missed event heals, and a cache of the
//! objects this controller wrote ([`Newer`]) so it does not act on the informers' older
//! copies in between (upstream's `storeObjectUpdate`). The decisions are [`index`] and
//! [`sync`], pure and unit-tested by tables in `tests.rs`.

pub mod index;
pub mod sync;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use parking_lot::Mutex;

use self::sync::{
    claim_bound_to, claim_status, is_released, is_released_or_failed, pod_claim_names, reclaim,
    sync_claim, sync_volume, volume_bound_to, volume_unbound, ClaimDecision, ClaimView, Note,
    Reclaim, VolumeDecision, ANN_BETA_STORAGE_PROVISIONER, ANN_BIND_COMPLETED,
    ANN_STORAGE_PROVISIONER,
};
use crate::events::Recorder;
use crate::pods::is_terminated;
use crate::{Context, Error, Result, Task};

/// Upstream's `--pvclaimbinder-sync-period`.
pub const RESYNC: Duration = Duration::from_secs(15);

/// The objects of one kind this controller wrote, kept until the informer has them (or a
/// newer version): upstream's controller-local cache. A copy is newer when its
/// resourceVersion is larger (the API server's are revisions).
pub struct Newer<K> {
    written: Mutex<HashMap<String, Arc<K>>>,
}

impl<K> Default for Newer<K> {
    fn default() -> Self {
        Self {
            written: Mutex::new(HashMap::new()),
        }
    }
}

fn revision<K: Resource>(obj: &K) -> Option<u64> {
    obj.meta().resource_version.as_deref()?.parse().ok()
}

fn key_of<K: Resource>(obj: &K) -> String {
    format!(
        "{}/{}",
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

impl<K: Resource> Newer<K> {
    /// Remembers what a write returned.
    pub fn wrote(&self, obj: K) -> Arc<K> {
        let obj = Arc::new(obj);
        self.written.lock().insert(key_of(&*obj), obj.clone());
        obj
    }

    /// The newest copy of `cached`: the written one while the cache is behind it.
    pub fn fresh(&self, cached: Arc<K>) -> Arc<K> {
        let key = key_of(&*cached);
        let mut written = self.written.lock();
        let Some(ours) = written.get(&key) else {
            return cached;
        };
        match (revision(&**ours), revision(&*cached)) {
            (Some(w), Some(c)) if w > c && ours.meta().uid == cached.meta().uid => ours.clone(),
            _ => {
                // The cache caught up (or the object was made anew): ours is not needed.
                written.remove(&key);
                cached
            }
        }
    }

    /// Every cached object at its newest; what the cache no longer has is forgotten.
    pub fn merged(&self, cached: Vec<Arc<K>>) -> Vec<Arc<K>> {
        let out: Vec<Arc<K>> = cached.into_iter().map(|o| self.fresh(o)).collect();
        let keys: std::collections::HashSet<String> = out.iter().map(|o| key_of(&**o)).collect();
        self.written.lock().retain(|k, _| keys.contains(k));
        out
    }
}

struct State {
    ctx: Arc<Context>,
    volumes: Store<PersistentVolume>,
    claims: Store<PersistentVolumeClaim>,
    classes: Store<StorageClass>,
    pods: Store<Pod>,
    newer_volumes: Newer<PersistentVolume>,
    newer_claims: Newer<PersistentVolumeClaim>,
    recorder: Recorder,
    /// Claims a volume sync asks the claim worker to sync (upstream's `claimQueue.Add`).
    claim_queue: mpsc::UnboundedSender<ObjectRef<PersistentVolumeClaim>>,
}

impl State {
    fn claim_api(&self, ns: &str) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.ctx.client.clone(), ns)
    }

    fn volume_api(&self) -> Api<PersistentVolume> {
        Api::all(self.ctx.client.clone())
    }

    fn cached_claim(&self, ns: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims
            .get(&ObjectRef::new(name).within(ns))
            .map(|c| self.newer_claims.fresh(c))
    }

    async fn note<K: Resource<DynamicType = ()>>(&self, obj: &K, note: Note) {
        if note.warning {
            self.recorder.warning(obj, note.reason, note.message).await;
        } else {
            self.recorder.normal(obj, note.reason, note.message).await;
        }
    }
}

fn retry_soon<K>(_: Arc<K>, error: &Error, _: Arc<State>) -> Action {
    tracing::debug!(%error, "persistent volume sync failed; retrying");
    Action::requeue(Duration::from_secs(1))
}

/// The claims not yet bound: what a new or freed volume, or a new class, may serve.
fn unbound_claims(claims: &Store<PersistentVolumeClaim>) -> Vec<ObjectRef<PersistentVolumeClaim>> {
    claims
        .state()
        .iter()
        .filter(|c| {
            !c.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(ANN_BIND_COMPLETED))
        })
        .map(|c| ObjectRef::from_obj(&**c))
        .collect()
}

/// Sets up the `persistentvolume-binder` controller.
pub fn controller(ctx: &Arc<Context>) -> Result<Task> {
    let informers = &ctx.informers;
    let volumes = informers.store::<PersistentVolume>();
    let claims = informers.store::<PersistentVolumeClaim>();
    let (claim_queue, queued) = mpsc::unbounded();
    let state = Arc::new(State {
        ctx: ctx.clone(),
        volumes: volumes.clone(),
        claims: claims.clone(),
        classes: informers.store(),
        pods: informers.store(),
        newer_volumes: Newer::default(),
        newer_claims: Newer::default(),
        recorder: Recorder::new(ctx.client.clone(), "persistentvolume-controller"),
        claim_queue,
    });
    let for_volumes = claims.clone();
    let for_classes = claims.clone();
    let claim_worker = Controller::for_shared_stream(
        informers.subscribe::<PersistentVolumeClaim>(),
        claims.clone(),
    )
    .watches_shared_stream(
        informers.subscribe::<PersistentVolume>(),
        move |pv: Arc<PersistentVolume>| {
            // The claim it names, and, while it is free, every claim it might serve (upstream
            // waits for the next resync for those).
            let mut out = Vec::new();
            if let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
                if let (Some(ns), Some(name)) = (&r.namespace, &r.name) {
                    out.push(ObjectRef::new(name).within(ns));
                }
            }
            let free = pv.spec.as_ref().is_none_or(|s| s.claim_ref.is_none());
            if free && pv.metadata.deletion_timestamp.is_none() {
                out.extend(unbound_claims(&for_volumes));
            }
            out
        },
    )
    .watches_shared_stream(
        informers.subscribe::<StorageClass>(),
        move |_: Arc<StorageClass>| unbound_claims(&for_classes),
    )
    .reconcile_on(queued)
    .with_config(controller::Config::default().concurrency(1));
    let for_claims = volumes.clone();
    let volume_worker =
        Controller::for_shared_stream(informers.subscribe::<PersistentVolume>(), volumes.clone())
            .watches_shared_stream(
                informers.subscribe::<PersistentVolumeClaim>(),
                move |pvc: Arc<PersistentVolumeClaim>| {
                    // The volume it names and every volume naming it (a claim deleted, or
                    // bound elsewhere, releases them).
                    let mut out: Vec<ObjectRef<PersistentVolume>> = Vec::new();
                    if let Some(v) = pvc.spec.as_ref().and_then(|s| s.volume_name.as_deref()) {
                        if !v.is_empty() {
                            out.push(ObjectRef::new(v));
                        }
                    }
                    for pv in for_claims.state() {
                        let names = pv
                            .spec
                            .as_ref()
                            .and_then(|s| s.claim_ref.as_ref())
                            .is_some_and(|r| {
                                r.name == pvc.metadata.name && r.namespace == pvc.metadata.namespace
                            });
                        if names {
                            out.push(ObjectRef::from_obj(&*pv));
                        }
                    }
                    out
                },
            )
            .with_config(controller::Config::default().concurrency(1));
    let synced = {
        let waits = (
            informers.synced::<PersistentVolume>(),
            informers.synced::<PersistentVolumeClaim>(),
            informers.synced::<StorageClass>(),
            informers.synced::<Pod>(),
        );
        async move {
            waits.0.await;
            waits.1.await;
            waits.2.await;
            waits.3.await;
        }
    };
    Ok(Box::pin(async move {
        synced.await;
        let claims = claim_worker
            .run(reconcile_claim, retry_soon, state.clone())
            .for_each(|_| async {});
        let volumes = volume_worker
            .run(reconcile_volume, retry_soon, state)
            .for_each(|_| async {});
        futures::future::join(claims, volumes).await;
    }))
}

/// Treats a missing object as done: it was deleted meanwhile, and its own events say so.
fn gone_is_ok<T>(r: kube::Result<T>) -> Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

async fn reconcile_claim(claim: Arc<PersistentVolumeClaim>, state: Arc<State>) -> Result<Action> {
    let claim = state.newer_claims.fresh(claim);
    let volumes = state.newer_volumes.merged(state.volumes.state());
    let classes = state.classes.state();
    let pods: Vec<Arc<Pod>> = state
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace == claim.metadata.namespace)
        .collect();
    let decision = sync_claim(
        &claim,
        &ClaimView {
            volumes: &volumes,
            classes: &classes,
            pods: &pods,
        },
    )
    .map_err(Error::Invalid)?;
    let ns = claim.namespace().unwrap_or_default();
    let api = state.claim_api(&ns);
    match decision {
        ClaimDecision::Bind(volume) => bind(&state, volume, claim).await?,
        ClaimDecision::Pending(note) => {
            if let Some(note) = note {
                state.note(&*claim, note).await;
            }
            update_claim_status(&state, &claim, "Pending", None).await?;
        }
        ClaimDecision::Event(note) => state.note(&*claim, note).await,
        ClaimDecision::ExternalProvisioning { provisioner, note } => {
            let annotated = claim
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANN_BETA_STORAGE_PROVISIONER))
                == Some(&provisioner);
            let claim = if annotated {
                claim
            } else {
                let mut new = (*claim).clone();
                let a = new
                    .metadata
                    .annotations
                    .get_or_insert_with(Default::default);
                a.insert(ANN_BETA_STORAGE_PROVISIONER.into(), provisioner.clone());
                a.insert(ANN_STORAGE_PROVISIONER.into(), provisioner);
                match gone_is_ok(
                    api.replace(&claim.name_any(), &PostParams::default(), &new)
                        .await,
                )? {
                    Some(saved) => state.newer_claims.wrote(saved),
                    None => return Ok(Action::await_change()),
                }
            };
            state.note(&*claim, note).await;
        }
        ClaimDecision::AssignDefaultClass(class) => {
            let mut new = (*claim).clone();
            new.spec
                .get_or_insert_with(Default::default)
                .storage_class_name = Some(class);
            if let Some(saved) = gone_is_ok(
                api.replace(&claim.name_any(), &PostParams::default(), &new)
                    .await,
            )? {
                state.newer_claims.wrote(saved);
            }
            // The claim's own update syncs it again, now with its class.
        }
        ClaimDecision::Lost(note) => {
            let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
            if phase != Some("Lost") {
                if let Some(saved) = update_claim_status(&state, &claim, "Lost", None).await? {
                    state.note(&*saved, note).await;
                }
            }
        }
        ClaimDecision::Fail(note, error) => {
            state.note(&*claim, note).await;
            return Err(Error::Invalid(error));
        }
    }
    Ok(Action::requeue(RESYNC))
}

/// Writes the claim's status in `phase` when it changes; the saved claim (the same one
/// when nothing changed), `None` when the claim is gone.
async fn update_claim_status(
    state: &State,
    claim: &Arc<PersistentVolumeClaim>,
    phase: &str,
    volume: Option<&PersistentVolume>,
) -> Result<Option<Arc<PersistentVolumeClaim>>> {
    let Some(status) = claim_status(claim, phase, volume) else {
        return Ok(Some(claim.clone()));
    };
    let mut new = (**claim).clone();
    new.status = Some(status);
    let api = state.claim_api(&claim.namespace().unwrap_or_default());
    let saved = gone_is_ok(
        api.replace_status(&claim.name_any(), &PostParams::default(), &new)
            .await,
    )?;
    if saved.is_some() {
        tracing::debug!(claim = %key_of(&**claim), phase, "claim entered phase");
    }
    Ok(saved.map(|s| state.newer_claims.wrote(s)))
}

/// Writes the volume's phase (and message) when the phase changes (`updateVolumePhase`).
async fn update_volume_phase(
    state: &State,
    volume: &Arc<PersistentVolume>,
    phase: &str,
    message: Option<String>,
) -> Result<Option<Arc<PersistentVolume>>> {
    let current = volume.status.as_ref().and_then(|s| s.phase.as_deref());
    if current == Some(phase) {
        return Ok(Some(volume.clone()));
    }
    let mut new = (**volume).clone();
    let status = new.status.get_or_insert_with(Default::default);
    status.phase = Some(phase.to_owned());
    status.message = message;
    let saved = gone_is_ok(
        state
            .volume_api()
            .replace_status(&volume.name_any(), &PostParams::default(), &new)
            .await,
    )?;
    if saved.is_some() {
        tracing::debug!(volume = %volume.name_any(), phase, "volume entered phase");
    }
    Ok(saved.map(|s| state.newer_volumes.wrote(s)))
}

/// Upstream's `bind`: the volume's `claimRef`, its phase, the claim's `volumeName` and
/// annotations, its status; each write from what the one before returned, so a conflict
/// can only come from someone else (the sync is then retried).
async fn bind(
    state: &State,
    volume: Arc<PersistentVolume>,
    claim: Arc<PersistentVolumeClaim>,
) -> Result<()> {
    let volume = match volume_bound_to(&volume, &claim) {
        Some(new) => {
            let saved = gone_is_ok(
                state
                    .volume_api()
                    .replace(&volume.name_any(), &PostParams::default(), &new)
                    .await,
            )?;
            let Some(saved) = saved else { return Ok(()) };
            tracing::info!(volume = %volume.name_any(), claim = %key_of(&*claim), "claim bound to volume");
            state.newer_volumes.wrote(saved)
        }
        None => volume,
    };
    let Some(volume) = update_volume_phase(state, &volume, "Bound", None).await? else {
        return Ok(());
    };
    let claim = match claim_bound_to(&claim, &volume) {
        Some(new) => {
            let api = state.claim_api(&claim.namespace().unwrap_or_default());
            let Some(saved) = gone_is_ok(
                api.replace(&claim.name_any(), &PostParams::default(), &new)
                    .await,
            )?
            else {
                return Ok(());
            };
            state.newer_claims.wrote(saved)
        }
        None => claim,
    };
    update_claim_status(state, &claim, "Bound", Some(&volume)).await?;
    Ok(())
}

/// The claim a volume's `claimRef` names, as upstream's `syncVolume` finds it: the cache,
/// then the API when the cache has none (unless the volume is already Released or Failed)
/// or one with another uid; `None` when it is gone or another claim has its name.
async fn claim_of_volume(
    state: &State,
    volume: &PersistentVolume,
) -> Result<Option<Arc<PersistentVolumeClaim>>> {
    let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return Ok(None);
    };
    let (ns, name) = (
        r.namespace.clone().unwrap_or_default(),
        r.name.clone().unwrap_or_default(),
    );
    let mut claim = state.cached_claim(&ns, &name);
    if claim.is_none() && !is_released_or_failed(volume) {
        // Under load the cache may not have a claim just made: ask the API before
        // releasing a volume by mistake.
        claim = state.claim_api(&ns).get_opt(&name).await?.map(Arc::new);
    }
    if let Some(c) = &claim {
        if c.metadata.uid != r.uid {
            claim = state
                .claim_api(&ns)
                .get_opt(&name)
                .await?
                .map(Arc::new)
                .filter(|c| c.metadata.uid == r.uid);
        }
    }
    Ok(claim)
}

async fn reconcile_volume(volume: Arc<PersistentVolume>, state: Arc<State>) -> Result<Action> {
    let volume = state.newer_volumes.fresh(volume);
    let uid_bound = volume
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .is_some_and(|r| r.uid.as_deref().is_some_and(|u| !u.is_empty()));
    let claim = if uid_bound {
        claim_of_volume(&state, &volume).await?
    } else {
        None
    };
    match sync_volume(&volume, claim.as_deref()) {
        VolumeDecision::Phase(phase) => {
            update_volume_phase(&state, &volume, phase, None).await?;
        }
        VolumeDecision::Reclaim => {
            let volume = if is_released_or_failed(&volume) {
                volume
            } else {
                tracing::info!(volume = %volume.name_any(), "volume is released and its reclaim policy will be executed");
                match update_volume_phase(&state, &volume, "Released", None).await? {
                    Some(v) => v,
                    None => return Ok(Action::await_change()),
                }
            };
            reclaim_volume(&state, volume).await?;
        }
        VolumeDecision::SyncClaim(ns, name) => {
            let _ = state
                .claim_queue
                .unbounded_send(ObjectRef::new(&name).within(&ns));
        }
        VolumeDecision::Mismatch {
            volume: on_volume,
            claim: on_claim,
        } => {
            state.note(&*volume, on_volume).await;
            if let Some(c) = &claim {
                state.note(&**c, on_claim).await;
            }
        }
        VolumeDecision::Unbind => {
            let new = volume_unbound(&volume);
            let saved = gone_is_ok(
                state
                    .volume_api()
                    .replace(&volume.name_any(), &PostParams::default(), &new)
                    .await,
            )?;
            if let Some(saved) = saved {
                let saved = state.newer_volumes.wrote(saved);
                update_volume_phase(&state, &saved, "Available", None).await?;
            }
        }
    }
    Ok(Action::requeue(RESYNC))
}

/// The pods (namespace/name, sorted) not terminated that use the claim the volume names
/// (`isVolumeUsed`).
fn users_of(state: &State, volume: &PersistentVolume) -> Vec<String> {
    let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return Vec::new();
    };
    let mut users: Vec<String> = state
        .pods
        .state()
        .iter()
        .filter(|p| p.metadata.namespace == r.namespace && !is_terminated(p))
        .filter(|p| {
            pod_claim_names(p)
                .iter()
                .any(|c| Some(c) == r.name.as_ref())
        })
        .map(|p| key_of(&**p))
        .collect();
    users.sort();
    users.dedup();
    users
}

/// Applies a released volume's reclaim policy (`reclaimVolume`).
async fn reclaim_volume(state: &State, volume: Arc<PersistentVolume>) -> Result<()> {
    match reclaim(&volume, &users_of(state, &volume)) {
        Reclaim::Retain | Reclaim::External => {}
        Reclaim::InUse(note) => state.note(&*volume, note).await,
        Reclaim::Fail(note) => {
            let failed = volume.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed");
            if !failed {
                let message = Some(note.message.clone());
                if let Some(saved) = update_volume_phase(state, &volume, "Failed", message).await? {
                    state.note(&*saved, note).await;
                }
            }
        }
        Reclaim::Delete => {
            // Read it afresh and check again that it is released, as upstream's
            // `deleteVolumeOperation` does before it deletes.
            let api = state.volume_api();
            let Some(fresh) = api.get_opt(&volume.name_any()).await? else {
                return Ok(());
            };
            let claim = fresh
                .spec
                .as_ref()
                .and_then(|s| s.claim_ref.as_ref())
                .and_then(|r| state.cached_claim(r.namespace.as_deref()?, r.name.as_deref()?));
            if !is_released(&fresh, claim.as_deref()) {
                return Ok(());
            }
            tracing::info!(volume = %volume.name_any(), "deleting a released volume (reclaim policy Delete)");
            let params = DeleteParams {
                preconditions: fresh.metadata.uid.clone().map(|uid| Preconditions {
                    uid: Some(uid),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&volume.name_any(), &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
