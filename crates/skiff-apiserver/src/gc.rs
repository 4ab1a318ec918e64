//! Deletion propagation through `ownerReferences` (upstream's garbage collector, reduced to
//! what the three propagation policies need):
//!
//! - Background: once an owner is gone, its dependents are deleted (and theirs, in turn);
//! - Foreground: an owner marked with the `foregroundDeletion` finalizer stays until its
//!   dependents are gone, then the finalizer is removed (and with it the owner);
//! - Orphan: an owner marked with the `orphan` finalizer has itself removed from its
//!   dependents' `ownerReferences`, then the finalizer is removed.
//!
//! The storage layer reports every removal and every such mark on a channel; this worker
//! acts on them, retrying what cannot finish yet. That queue is memory, so [`resync`] finds
//! again, at start and every half hour, what a restart (or a failed round) left: marked
//! owners, and dependents whose owners are all gone.
//!
//! Upstream runs this in kube-controller-manager; it belongs with the controllers once they
//! exist (then it will work through the API instead of the storage layer).

use std::sync::Weak;
use std::time::Duration;

use futures::TryStreamExt;
use serde_json::{json, Value};
use skiff_api::meta;
use skiff_api::registry::ResourceInfo;
use skiff_api::status::ApiError;
use tokio::sync::mpsc;

use crate::objects::DeleteOptions;
use crate::App;

/// What the storage layer reports.
#[derive(Debug)]
pub enum GcEvent {
    /// An object was removed for good.
    Removed(Box<ResourceInfo>, Value),
    /// An object was marked for deletion with `orphan` or `foregroundDeletion`.
    Marked(Box<ResourceInfo>, Value),
}

fn owned_by(obj: &Value, uid: &str) -> bool {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
        })
}

/// Every object that names `owner` in its ownerReferences: in the owner's namespace, or
/// anywhere for a cluster-scoped owner.
async fn dependents(
    app: &App,
    owner_ns: Option<&str>,
    uid: &str,
) -> Result<Vec<(ResourceInfo, Value)>, ApiError> {
    let mut out = Vec::new();
    // Versions of one kind share their storage (autoscaling/v1 and v2 HPAs, core and
    // events.k8s.io events): walk each storage once, in its storage version.
    for info in app.registry.storage_resources() {
        if !info.supports("list") {
            continue;
        }
        if owner_ns.is_some() && !info.namespaced {
            continue; // a namespaced owner cannot own cluster-scoped objects
        }
        let page = app
            .objects
            .list(info, owner_ns, 0, None, None, &|o| Ok(owned_by(o, uid)))
            .await?;
        out.extend(page.items.into_iter().map(|o| (info.clone(), o)));
    }
    Ok(out)
}

fn ns_of(obj: &Value) -> Option<String> {
    let ns = meta::namespace(obj);
    (!ns.is_empty()).then(|| ns.to_owned())
}

/// The manager the collector's writes are recorded under in managedFields: upstream's
/// garbage collector runs in kube-controller-manager, and a manager is named after the
/// client's user agent up to its first `/`.
pub(crate) const MANAGER: &str = "kube-controller-manager";

/// Removes `finalizer` from the object; the object goes if it was the last one.
async fn drop_finalizer(
    app: &App,
    info: &ResourceInfo,
    obj: &Value,
    finalizer: &str,
) -> Result<(), ApiError> {
    let ns = ns_of(obj);
    let name = meta::name(obj).to_owned();
    let uid = meta::uid(obj).to_owned();
    loop {
        let Some(current) = app.objects.try_get(info, ns.as_deref(), &name).await? else {
            return Ok(());
        };
        if meta::uid(&current.obj) != uid {
            return Ok(());
        }
        let finalizers: Vec<String> = meta::finalizers(&current.obj)
            .into_iter()
            .filter(|f| f != finalizer)
            .collect();
        let result = if finalizers.is_empty() && meta::is_deleting(&current.obj) {
            app.objects
                .remove(info, ns.as_deref(), &name, current.rev)
                .await
                .map(|_| ())
        } else {
            let mut new = current.obj.clone();
            new["metadata"]["finalizers"] = json!(finalizers);
            crate::http::record_update(info, &current.obj, &mut new, MANAGER, None);
            app.objects
                .replace(info, new, current.rev, false)
                .await
                .map(|_| ())
        };
        match result {
            Err(e) if e.code == 409 => continue,
            Err(e) if e.code == 404 => return Ok(()),
            other => return other,
        }
    }
}

/// One step for one event; answers whether it is finished.
async fn handle(app: &App, event: &GcEvent) -> Result<bool, ApiError> {
    match event {
        GcEvent::Removed(..) => Ok(true), // handled in batches by `collect_removed`
        GcEvent::Marked(info, owner) => {
            // The owner is rewritten in its storage version, whichever version marked it,
            // so no conversion moves anything (v1 would reorder an HPA's metrics).
            let info = app.registry.storage_of(info);
            let finalizers = meta::finalizers(owner);
            let uid = meta::uid(owner).to_owned();
            if finalizers.iter().any(|f| f == "orphan") {
                for (dep_info, dep) in dependents(app, ns_of(owner).as_deref(), &uid).await? {
                    let ns = ns_of(&dep);
                    let strip =
                        |current: &crate::objects::Stored| -> Result<Option<Value>, ApiError> {
                            if !owned_by(&current.obj, &uid) {
                                return Ok(None);
                            }
                            let mut new = current.obj.clone();
                            if let Some(refs) = new
                                .pointer_mut("/metadata/ownerReferences")
                                .and_then(Value::as_array_mut)
                            {
                                refs.retain(|r| {
                                    r.get("uid").and_then(Value::as_str) != Some(uid.as_str())
                                });
                            }
                            crate::http::record_update(
                                &dep_info,
                                &current.obj,
                                &mut new,
                                MANAGER,
                                None,
                            );
                            Ok(Some(new))
                        };
                    match app
                        .objects
                        .update_with(&dep_info, ns.as_deref(), meta::name(&dep), false, strip)
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if e.code == 404 => {}
                        Err(e) => return Err(e),
                    }
                }
                drop_finalizer(app, info, owner, "orphan").await?;
                return Ok(true);
            }
            if finalizers.iter().any(|f| f == "foregroundDeletion") {
                let deps = dependents(app, ns_of(owner).as_deref(), &uid).await?;
                if deps.is_empty() {
                    drop_finalizer(app, info, owner, "foregroundDeletion").await?;
                    return Ok(true);
                }
                let opts = DeleteOptions {
                    propagation: Some("Foreground".into()),
                    ..Default::default()
                };
                for (dep_info, dep) in deps {
                    if meta::is_deleting(&dep) {
                        continue;
                    }
                    let ns = ns_of(&dep);
                    match app
                        .objects
                        .delete(
                            &dep_info,
                            ns.as_deref(),
                            meta::name(&dep),
                            &opts,
                            chrono::Utc::now(),
                        )
                        .await
                    {
                        Ok(_) => {}
                        Err(e) if e.code == 404 || e.code == 409 => {}
                        Err(e) => return Err(e),
                    }
                }
                return Ok(false); // come back when the dependents are gone
            }
            Ok(true)
        }
    }
}

/// Deletes the dependents of removed owners: one scan per namespace for every owner removed
/// since the last round (mass deletions stay linear). A dependent goes when every owner it
/// names is among the removed ones; one with another owner left is kept, as upstream.
async fn collect_removed(app: &App, removed: &[(Option<String>, String)]) -> Result<(), ApiError> {
    let mut by_ns: std::collections::BTreeMap<Option<String>, std::collections::HashSet<&str>> =
        Default::default();
    for (ns, uid) in removed {
        by_ns.entry(ns.clone()).or_default().insert(uid.as_str());
    }
    let opts = DeleteOptions {
        propagation: Some("Background".into()),
        ..Default::default()
    };
    for (ns, uids) in by_ns {
        // Each storage once (see `dependents`).
        for info in app.registry.storage_resources() {
            if !info.supports("list") || (ns.is_some() && !info.namespaced) {
                continue;
            }
            let owned = |o: &Value| -> Result<bool, ApiError> {
                let refs = o
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array);
                Ok(refs.is_some_and(|refs| {
                    !refs.is_empty()
                        && refs.iter().all(|r| {
                            r.get("uid")
                                .and_then(Value::as_str)
                                .is_some_and(|u| uids.contains(u))
                        })
                }))
            };
            let page = app
                .objects
                .list(info, ns.as_deref(), 0, None, None, &owned)
                .await?;
            for dep in page.items {
                if meta::is_deleting(&dep) {
                    continue;
                }
                let dep_ns = ns_of(&dep);
                let precondition = DeleteOptions {
                    uid: Some(meta::uid(&dep).to_owned()),
                    ..opts.clone()
                };
                match app
                    .objects
                    .delete(
                        info,
                        dep_ns.as_deref(),
                        meta::name(&dep),
                        &precondition,
                        chrono::Utc::now(),
                    )
                    .await
                {
                    Ok(_) => {}
                    Err(e) if e.code == 404 || e.code == 409 => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

/// How often [`resync`] looks at everything again (after its first look at start).
const RESYNC_EVERY: Duration = Duration::from_secs(30 * 60);

/// What the worker's queue cannot remember across a restart (and what a failed round
/// dropped), found again from the stored objects, as upstream's garbage collector rebuilds
/// its graph from informers when it starts: owners marked `orphan` or `foregroundDeletion`
/// are queued again, and dependents whose every owner is gone (checked by a live read of
/// each owner, by name, comparing uids) are collected. Runs at start, then every
/// [`RESYNC_EVERY`].
pub(crate) async fn resync(app: Weak<App>) {
    loop {
        {
            let Some(app) = app.upgrade() else { return };
            if let Err(e) = resync_once(&app).await {
                if e.message == crate::objects::STORE_CLOSED {
                    return;
                }
                tracing::warn!(error = %e, "garbage collection resync");
            }
        }
        tokio::time::sleep(RESYNC_EVERY).await;
    }
}

async fn resync_once(app: &App) -> Result<(), ApiError> {
    let Some(queue) = &app.objects.gc else {
        return Ok(());
    };
    // Read page by page, keeping only uids and ownerReferences: a cluster with many pods
    // has many owned objects, and this runs as the server starts.
    const PAGE: usize = 500;
    let mut uids = std::collections::HashSet::new();
    let mut with_owners: Vec<Value> = Vec::new();
    for info in app.registry.storage_resources() {
        if !info.supports("list") {
            continue;
        }
        let mut pages = std::pin::pin!(app.objects.pages(info, None, PAGE));
        while let Some(objects) = pages.try_next().await? {
            for obj in objects {
                uids.insert(meta::uid(&obj).to_owned());
                let finalizers = meta::finalizers(&obj);
                if meta::is_deleting(&obj)
                    && finalizers
                        .iter()
                        .any(|f| f == "orphan" || f == "foregroundDeletion")
                {
                    let _ = queue.send(GcEvent::Marked(Box::new(info.clone()), obj.clone()));
                }
                if let Some(refs) = obj
                    .pointer("/metadata/ownerReferences")
                    .filter(|r| r.as_array().is_some_and(|a| !a.is_empty()))
                {
                    with_owners.push(json!({"metadata": {
                        "namespace": meta::namespace(&obj), "ownerReferences": refs}}));
                }
            }
        }
    }
    let mut gone = std::collections::HashSet::new();
    for dep in &with_owners {
        let refs = dep
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        for r in refs {
            let uid = r.get("uid").and_then(Value::as_str).unwrap_or("");
            if uid.is_empty() || uids.contains(uid) || gone.contains(&(ns_of(dep), uid.to_owned()))
            {
                continue;
            }
            // Not seen in the listing (which is not one snapshot): read the owner itself.
            if owner_is_gone(app, dep, r).await? {
                gone.insert((ns_of(dep), uid.to_owned()));
            }
        }
    }
    for (ns, uid) in gone {
        let owner = json!({"metadata": {"uid": uid, "namespace": ns}});
        let _ = queue.send(GcEvent::Removed(Box::new(app.namespaces()), owner));
    }
    Ok(())
}

/// Whether the owner an ownerReference names is gone: no object of its kind by its name (in
/// the dependent's namespace, for a namespaced kind), or one with another uid. An owner of
/// a kind this server does not serve is never taken for gone.
async fn owner_is_gone(app: &App, dep: &Value, owner: &Value) -> Result<bool, ApiError> {
    let text = |k: &str| owner.get(k).and_then(Value::as_str).unwrap_or("");
    let (group, version) = match text("apiVersion").split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", text("apiVersion")),
    };
    let Some(info) = app.registry.by_kind(group, version, text("kind")) else {
        return Ok(false);
    };
    let ns = if info.namespaced { ns_of(dep) } else { None };
    match app
        .objects
        .try_get(info, ns.as_deref(), text("name"))
        .await?
    {
        Some(found) => Ok(meta::uid(&found.obj) != text("uid")),
        None => Ok(true),
    }
}

/// The worker: handles events as they come, retries unfinished ones twice a second.
pub(crate) async fn worker(app: Weak<App>, mut rx: mpsc::UnboundedReceiver<GcEvent>) {
    let mut pending: Vec<GcEvent> = Vec::new();
    loop {
        let next = if pending.is_empty() {
            match rx.recv().await {
                Some(ev) => Some(ev),
                None => return,
            }
        } else {
            match tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
                Ok(Some(ev)) => Some(ev),
                Ok(None) => return,
                Err(_) => None,
            }
        };
        pending.extend(next);
        while let Ok(ev) = rx.try_recv() {
            pending.push(ev);
        }
        let Some(app) = app.upgrade() else { return };
        let removed: Vec<(Option<String>, String)> = pending
            .iter()
            .filter_map(|ev| match ev {
                GcEvent::Removed(_, obj) if !meta::uid(obj).is_empty() => {
                    Some((ns_of(obj), meta::uid(obj).to_owned()))
                }
                _ => None,
            })
            .collect();
        pending.retain(|ev| !matches!(ev, GcEvent::Removed(..)));
        if !removed.is_empty() {
            if let Err(e) = collect_removed(&app, &removed).await {
                tracing::warn!(error = %e, "garbage collection of dependents");
            }
        }
        let mut still = Vec::new();
        for ev in pending.drain(..) {
            match handle(&app, &ev).await {
                Ok(true) => {}
                Ok(false) => still.push(ev),
                Err(e) => {
                    tracing::warn!(error = %e, "garbage collection");
                    still.push(ev);
                }
            }
        }
        pending = still;
    }
}
