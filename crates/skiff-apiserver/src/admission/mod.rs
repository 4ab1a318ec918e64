//! Admission: what upstream's built-in admission plugins do to an object between its
//! validation and its storage, in upstream's order. Mutating: LimitRanger (container
//! defaults), Priority (`priorityClassName` -> `spec.priority`), DefaultTolerationSeconds,
//! DefaultStorageClass (a claim naming no class gets the default one),
//! StorageObjectInUseProtection (new claims and volumes get their protection finalizer);
//! validating: LimitRanger (min/max/ratio), Priority (one global default), ResourceQuota
//! (charged to `status.used` by a compare-and-swap write, so two creates cannot both take
//! the last unit). Upstream counterparts: `plugin/pkg/admission/{limitranger,priority,
//! defaulttolerationseconds,storage/storageclass/setdefault,
//! storage/storageobjectinuseprotection}` and `apiserver/pkg/admission/plugin/resourcequota`.
//!
//! The plugins read the objects they consult (LimitRanges, PriorityClasses,
//! ResourceQuotas, StorageClasses) from the watch cache, as upstream's read their informers, and the
//! datastore when the cache cannot answer. The decisions are pure functions, unit-tested in
//! each module; this one only reads and dispatches. It does not do webhooks; of updates,
//! quota charges only those of Services and claims (as upstream without in-place pod resize).

pub mod defaultstorageclass;
pub mod limitranger;
pub mod priority;
pub mod quota;
pub mod storageprotection;
pub mod tolerations;

use serde_json::Value;
use skiff_api::registry::ResourceInfo;
use skiff_api::status::ApiError;

use crate::watch::Selection;
use crate::App;

/// The served resource `group/version/plural` (built in, so always there).
pub(crate) fn resource(
    app: &App,
    group: &str,
    version: &str,
    plural: &str,
) -> Result<ResourceInfo, ApiError> {
    app.registry
        .get(group, version, plural)
        .cloned()
        .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))
}

/// Every object of `info` in `ns` (all when `None`), from the watch cache when it can
/// answer (it may lag a moment, as an informer does), else from the datastore.
pub(crate) async fn list(
    app: &App,
    info: &ResourceInfo,
    ns: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let all = |_: &Value| Ok(true);
    if let Some(cached) = app
        .hub
        .list(info, ns, 0, None, Selection::Metadata(&all))
        .await?
    {
        return cached
            .items
            .iter()
            .map(|b| {
                serde_json::from_slice(b).map_err(|e| {
                    ApiError::internal(format!("cached {} cannot be decoded: {e}", info.plural))
                })
            })
            .collect();
    }
    list_fresh(app, info, ns).await
}

/// Every object of `info` in `ns`, read from the datastore now.
pub(crate) async fn list_fresh(
    app: &App,
    info: &ResourceInfo,
    ns: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    Ok(app
        .objects
        .list(info, ns, 0, None, None, &|_| Ok(true))
        .await?
        .items)
}

fn is_pod(info: &ResourceInfo) -> bool {
    info.group.is_empty() && info.plural == "pods"
}

/// Runs the admission plugins on a create of `obj` (prepared, defaulted and validated).
/// `dry_run`: check everything but charge no quota.
pub(crate) async fn admit_create(
    app: &App,
    info: &ResourceInfo,
    obj: &mut Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    let ns = skiff_api::meta::namespace(obj).to_owned();
    let pvc = info.group.is_empty() && info.plural == "persistentvolumeclaims";
    let ranges = if (is_pod(info) || pvc) && !ns.is_empty() {
        let lr = resource(app, "", "v1", "limitranges")?;
        list(app, &lr, Some(&ns)).await?
    } else {
        Vec::new()
    };
    if is_pod(info) {
        // Mutating, in upstream's order.
        let defaulted = limitranger::default_pod(obj, &ranges);
        priority::admit_pod(app, obj).await?;
        tolerations::add_default_tolerations(obj);
        if defaulted {
            // Defaults of a LimitRange can contradict what the pod asked for (a default
            // limit under an explicit request): validation has the last word, as upstream,
            // where mutating admission runs before validation.
            let causes =
                skiff_api::validation::validate_create(info.group, info.version, info.kind, obj);
            if !causes.is_empty() {
                return Err(ApiError::invalid(
                    info.group,
                    info.kind,
                    skiff_api::meta::name(obj),
                    causes,
                ));
            }
        }
    }
    if pvc {
        let classes = resource(app, "storage.k8s.io", "v1", "storageclasses")?;
        defaultstorageclass::admit_claim(obj, &list(app, &classes, None).await?);
    }
    if info.group.is_empty() {
        if let Some(finalizer) = storageprotection::finalizer_for(info.plural) {
            storageprotection::add_finalizer(obj, finalizer);
        }
    }
    // Validating.
    if is_pod(info) || pvc {
        limitranger::validate(info, obj, &ranges)?;
    }
    if info.group == "scheduling.k8s.io" && info.plural == "priorityclasses" {
        priority::validate_class(app, obj, None).await?;
    }
    quota::admit_create(app, info, obj, dry_run).await
}

/// Runs the admission plugins on an update of `old` to `new` (the main resource only).
/// `dry_run`: nothing is stored, so admission charges no quota.
pub(crate) async fn admit_update(
    app: &App,
    info: &ResourceInfo,
    old: &Value,
    new: &mut Value,
    subresource: Option<&str>,
    dry_run: bool,
) -> Result<(), ApiError> {
    if subresource.is_some() {
        return Ok(());
    }
    if info.group == "scheduling.k8s.io" && info.plural == "priorityclasses" {
        priority::validate_class(app, new, Some(old)).await?;
    }
    quota::admit_update(app, info, old, new, dry_run).await
}
