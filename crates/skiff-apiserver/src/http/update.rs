//! `update` (PUT), `status` and `namespaces/finalize`, and the write path every change of an
//! existing object goes through ([`Ctx::write_over`]: prepare, validate, managed fields,
//! admission, then a compare-and-swap on the resourceVersion read; or the removal of a
//! deleted object whose last finalizer went). Upstream counterpart: `handlers/update.go`
//! with `registry/generic/registry/store.go` (`Update`).

use http::StatusCode;
use serde_json::Value;
use skiff_api::meta;
use skiff_api::registry::ResourceInfo;
use skiff_api::status::ApiError;
use skiff_store::Revision;

use super::{add_warnings, ApiResult, Ctx};

impl Ctx {
    pub(super) async fn update(&self, body: Value) -> ApiResult {
        let mut obj = body;
        meta::check_type(&self.info, &mut obj)?;
        meta::check_namespace(&self.info, &mut obj, self.ns.as_deref())?;
        let name = meta::name(&obj).to_owned();
        if name != self.name() {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                self.name()
            )));
        }
        let (obj, warnings) = self.normalize(obj)?;
        let updated = self.write(obj, meta::prepare_update).await?;
        let mut resp = self.respond(StatusCode::OK, updated);
        add_warnings(&mut resp, &warnings);
        Ok(resp)
    }

    pub(super) async fn update_status(&self, body: Value) -> ApiResult {
        let mut obj = body;
        meta::check_type(&self.info, &mut obj)?;
        meta::check_namespace(&self.info, &mut obj, self.ns.as_deref())?;
        let (obj, _) = self.normalize(obj)?;
        let updated = self.write(obj, meta::prepare_status_update).await?;
        Ok(self.respond(StatusCode::OK, updated))
    }

    /// `namespaces/<name>/finalize`: writes the namespace's `spec.finalizers` only; a
    /// terminating namespace left with no finalizer is removed (upstream's namespace
    /// finalize and delete).
    pub(super) async fn finalize(&self, body: Value) -> ApiResult {
        let mut obj = body;
        meta::check_type(&self.info, &mut obj)?;
        let (obj, _) = self.normalize(obj)?;
        let updated = self.write(obj, meta::prepare_finalize).await?;
        let spec_finalizers_left = updated
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        if meta::is_deleting(&updated)
            && !spec_finalizers_left
            && meta::finalizers(&updated).is_empty()
        {
            let rev = meta::resource_version(&updated)
                .parse::<Revision>()
                .map_err(|_| ApiError::internal("a stored namespace without a resourceVersion"))?;
            match self
                .app
                .objects
                .remove(&self.info, None, self.name(), rev)
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.respond(StatusCode::OK, updated))
    }

    /// Writes `new` over the current object, with its resourceVersion as precondition (or
    /// unconditionally when it has none), after `prepare`.
    async fn write(
        &self,
        new: Value,
        prepare: impl Fn(&ResourceInfo, &Value, &mut Value) -> ApiResult<()>,
    ) -> ApiResult<Value> {
        self.write_tracked(new, prepare, true).await
    }

    /// [`Ctx::write`]; `track`: record the write in the managed fields (an apply has
    /// recorded itself already).
    async fn write_tracked(
        &self,
        new: Value,
        prepare: impl Fn(&ResourceInfo, &Value, &mut Value) -> ApiResult<()>,
        track: bool,
    ) -> ApiResult<Value> {
        let requested_rv = meta::resource_version(&new).to_owned();
        let expected = if requested_rv.is_empty() {
            None
        } else {
            Some(requested_rv.parse::<Revision>().map_err(|_| {
                ApiError::bad_request(format!(
                    "metadata.resourceVersion: Invalid value: {requested_rv:?}"
                ))
            })?)
        };
        let current = self
            .app
            .objects
            .get(&self.info, self.ns.as_deref(), self.name())
            .await?;
        if expected.is_some_and(|e| e != current.rev) {
            return Err(ApiError::conflict(
                self.info.group,
                self.info.plural,
                self.name(),
            ));
        }
        self.write_over(&current, new, prepare, track).await
    }

    /// Writes `new` over `current` (just read), on condition that it is still current; a
    /// write that would store `current` as it is does not happen (`current` is the answer).
    pub(super) async fn write_over(
        &self,
        current: &crate::objects::Stored,
        new: Value,
        prepare: impl Fn(&ResourceInfo, &Value, &mut Value) -> ApiResult<()>,
        track: bool,
    ) -> ApiResult<Value> {
        let dry_run = self.query.dry_run()?;
        let mut new = new;
        let applied = (!track).then(|| new.pointer("/metadata/managedFields").cloned());
        prepare(&self.info, &current.obj, &mut new)?;
        self.validate_name(&new)?;
        self.app
            .prepare_kind_update(&self.info, &current.obj, &mut new)?;
        validate_update(&self.info, &current.obj, &mut new)?;
        match applied {
            None => self.track(&current.obj, &mut new, self.target.subresource.as_deref()),
            // An apply's managed fields stand, whatever `prepare` took from the old object.
            Some(managed) => {
                if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                    match managed {
                        Some(list) => m.insert("managedFields".into(), list),
                        None => m.remove("managedFields"),
                    };
                }
            }
        }
        let allocation = self
            .app
            .admit_update(
                &self.info,
                &current.obj,
                &mut new,
                self.target.subresource.as_deref(),
                dry_run,
            )
            .await?;
        // An object being deleted goes once its last finalizer is removed, unless it is
        // waiting out a grace period (a bound pod: its kubelet deletes it when stopped), as
        // upstream's `shouldDeleteDuringUpdate`.
        let grace_over = current
            .obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .is_none_or(|g| g == 0);
        // A namespace is also held by its `spec.finalizers` (removed through `finalize`).
        let namespace_held = self.info.group.is_empty()
            && self.info.plural == "namespaces"
            && new
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
        if meta::is_deleting(&current.obj)
            && grace_over
            && meta::finalizers(&new).is_empty()
            && !namespace_held
            && !dry_run
        {
            let gone = self
                .app
                .objects
                .remove(&self.info, self.ns.as_deref(), self.name(), current.rev)
                .await;
            self.app.settle_update(&allocation, false).await;
            gone?;
            return Ok(new);
        }
        // A write that changes nothing is not written: the answer is the object as it is,
        // at its resourceVersion, and no watch sees an event (upstream's `GuaranteedUpdate`
        // compares the encoded object with the stored bytes). The managed fields take part:
        // a write that changes nothing moves no field, and a time that moved all the same
        // is put back (upstream's `IgnoreManagedFieldsTimestampsTransformer`).
        crate::objects::keep_managed_fields_times(&current.obj, &mut new);
        if crate::objects::unchanged(&current.obj, &new) {
            self.app.settle_update(&allocation, false).await;
            return Ok(current.obj.clone());
        }
        let result = self
            .app
            .objects
            .replace(&self.info, new, current.rev, dry_run)
            .await;
        self.app
            .settle_update(&allocation, result.is_ok() && !dry_run)
            .await;
        result
    }
}

/// Upstream's defaults (applied on every write, as decoding does upstream), then update
/// validation against the current object (immutable fields and every rule of a create).
pub(super) fn validate_update(info: &ResourceInfo, old: &Value, new: &mut Value) -> ApiResult<()> {
    skiff_api::defaults::apply(info.group, info.version, info.kind, new);
    let causes =
        skiff_api::validation::validate_update(info.group, info.version, info.kind, old, new);
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(
            info.group,
            info.kind,
            meta::name(new),
            causes,
        ))
    }
}
