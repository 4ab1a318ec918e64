//! The ResourceQuota admission plugin (upstream's
//! apiserver/pkg/admission/plugin/resourcequota): a create in a namespace with quotas is
//! measured by the kind's evaluator (`skiff_api::quota`) and charged to every quota that
//! covers it, by a compare-and-swap write of the quota's `status.used` at the
//! resourceVersion it was read at. A write that loses to another (a concurrent create, the
//! controller) reads the quotas again from the datastore and decides again, so two creates
//! can never both take the last unit. Over the limit: 403 with upstream's `exceeded quota:
//! <name>, requested: ..., used: ..., limited: ...`. An update of a Service or claim is
//! charged what it adds (a new type's node ports, a larger request). A dry run is checked,
//! never charged.
//!
//! What a create charged stays charged if the create then fails (upstream does the same);
//! the controller's next full recalculation gives it back.

use std::collections::HashSet;

use serde_json::Value;
use skiff_api::meta;
use skiff_api::quota::{check, to_json, Evaluator};
use skiff_api::registry::ResourceInfo;
use skiff_api::status::ApiError;

use crate::App;

/// How often a charge that lost a race is decided again.
const ATTEMPTS: usize = 16;

fn revision(quota: &Value) -> Result<skiff_store::Revision, ApiError> {
    meta::resource_version(quota).parse().map_err(|_| {
        ApiError::internal(format!(
            "quota {} has no resourceVersion",
            meta::name(quota)
        ))
    })
}

/// Checks and charges a create of `obj` (see the module docs).
pub async fn admit_create(
    app: &App,
    info: &ResourceInfo,
    obj: &Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    admit(app, info, obj, None, dry_run).await
}

/// Checks and charges what an update from `old` to `obj` adds, for the kinds whose usage
/// an update can change (Services, claims).
pub async fn admit_update(
    app: &App,
    info: &ResourceInfo,
    old: &Value,
    obj: &Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    admit(app, info, obj, Some(old), dry_run).await
}

async fn admit(
    app: &App,
    info: &ResourceInfo,
    obj: &Value,
    old: Option<&Value>,
    dry_run: bool,
) -> Result<(), ApiError> {
    let ns = meta::namespace(obj);
    if ns.is_empty() || !info.namespaced {
        return Ok(());
    }
    let Some(evaluator) = Evaluator::for_resource(info.group, info.plural) else {
        return Ok(());
    };
    if old.is_some() && !evaluator.handles_update() {
        return Ok(());
    }
    let quota_info = super::resource(app, "", "v1", "resourcequotas")?;
    let mut quotas = super::list(app, &quota_info, Some(ns)).await?;
    if quotas.is_empty() {
        return Ok(());
    }
    let mut charged: HashSet<String> = HashSet::new();
    for _ in 0..ATTEMPTS {
        quotas.retain(|q| !charged.contains(meta::name(q)));
        let now = chrono::Utc::now();
        let changes = check(&quotas, &evaluator, obj, old, now)
            .map_err(|why| ApiError::forbidden(info.group, info.plural, meta::name(obj), &why))?;
        if changes.is_empty() || dry_run {
            return Ok(());
        }
        let mut lost = false;
        for (i, used) in changes {
            let mut quota = quotas[i].clone();
            let rev = revision(&quota)?;
            if !quota.get("status").is_some_and(Value::is_object) {
                quota["status"] = serde_json::json!({});
            }
            quota["status"]["used"] = to_json(&used);
            let name = meta::name(&quota).to_owned();
            match app.objects.replace(&quota_info, quota, rev, false).await {
                Ok(_) => {
                    charged.insert(name);
                }
                Err(e) if e.code == 409 => lost = true,
                // A quota deleted meanwhile limits nothing any more.
                Err(e) if e.code == 404 => {
                    charged.insert(name);
                }
                Err(e) => return Err(e),
            }
        }
        if !lost {
            return Ok(());
        }
        quotas = super::list_fresh(app, &quota_info, Some(ns)).await?;
    }
    let name = quotas
        .first()
        .map(|q| meta::name(q).to_owned())
        .unwrap_or_default();
    Err(ApiError::conflict("", "resourcequotas", &name))
}
