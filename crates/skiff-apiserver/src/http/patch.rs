//! `patch`: JSON patch (RFC 6902), merge patch (RFC 7386), strategic merge patch and
//! server-side apply, on the object and on `status` (apply also on `scale`), re-applied to
//! what another writer stored when a patch without a resourceVersion loses the race
//! (upstream's `GuaranteedUpdate`). Upstream counterpart: `handlers/patch.go`.

use http::StatusCode;
use serde_json::{json, Value};
use skiff_api::apply as ssa;
use skiff_api::meta;
use skiff_api::patch::{apply_strategic_merge_patch, Schema, Schemas, SmpError};
use skiff_api::registry::{ResourceInfo, Subresource};
use skiff_api::status::{ApiError, Cause};
use skiff_store::Revision;

use super::{add_warnings, now, ApiResult, Ctx};

/// How often a patch or apply without a resourceVersion is applied again after losing a
/// race to another writer (upstream's `GuaranteedUpdate` retries without bound).
const MAX_RETRIES_ON_CONFLICT: usize = 100;

/// The media type of server-side apply patches (the body is YAML or JSON).
const APPLY_PATCH: &str = "application/apply-patch+yaml";

pub(super) fn is_apply(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or("").trim() == APPLY_PATCH
}

impl Ctx {
    pub(super) async fn patch(&self, body: &[u8], content_type: &str) -> ApiResult {
        if is_apply(content_type) {
            return self.apply(body, None).await;
        }
        self.check_patch_options()?;
        let (updated, warnings) = self
            .patch_with_retries(body, content_type, meta::prepare_update)
            .await?;
        let mut resp = self.respond(StatusCode::OK, updated);
        add_warnings(&mut resp, &warnings);
        Ok(resp)
    }

    pub(super) async fn patch_status(&self, body: &[u8], content_type: &str) -> ApiResult {
        if is_apply(content_type) {
            return self.apply(body, Some("status")).await;
        }
        self.check_patch_options()?;
        let (updated, _) = self
            .patch_with_retries(body, content_type, meta::prepare_status_update)
            .await?;
        Ok(self.respond(StatusCode::OK, updated))
    }

    /// Reads the object, patches it and writes it back on condition that nobody wrote in
    /// between; if somebody did, the patch is applied again to what they wrote, as
    /// upstream's `GuaranteedUpdate` does (unbounded there; here bounded, far beyond any
    /// real contention). A patch that sets `metadata.resourceVersion` makes it a
    /// precondition instead: a mismatch is a 409 at once.
    async fn patch_with_retries(
        &self,
        body: &[u8],
        content_type: &str,
        prepare: impl Fn(&ResourceInfo, &Value, &mut Value) -> ApiResult<()> + Copy,
    ) -> ApiResult<(Value, Vec<String>)> {
        // Cheap and conservative: a body that mentions the field is taken to set it.
        const FIELD: &[u8] = b"resourceVersion";
        let precondition = body.windows(FIELD.len()).any(|w| w == FIELD);
        let mut attempt = 0;
        loop {
            let current = self
                .app
                .objects
                .get(&self.info, self.ns.as_deref(), self.name())
                .await?;
            let patched = self.patched(&current.obj, body, content_type)?;
            let requested_rv = meta::resource_version(&patched);
            if requested_rv != current.rev.to_string() {
                let expected = requested_rv.parse::<Revision>().map_err(|_| {
                    ApiError::bad_request(format!(
                        "metadata.resourceVersion: Invalid value: {requested_rv:?}"
                    ))
                })?;
                if expected != current.rev {
                    return Err(ApiError::conflict(
                        self.info.group,
                        self.info.plural,
                        self.name(),
                    ));
                }
            }
            let (obj, warnings) = self.normalize(patched)?;
            match self.write_over(&current, obj, prepare, true).await {
                Err(e)
                    if e.reason == "Conflict"
                        && !precondition
                        && attempt < MAX_RETRIES_ON_CONFLICT =>
                {
                    attempt += 1
                }
                other => return other.map(|updated| (updated, warnings)),
            }
        }
    }

    /// `current` with the patch applied (see [`patched`]).
    fn patched(&self, current: &Value, body: &[u8], content_type: &str) -> ApiResult<Value> {
        patched(&self.info, self.name(), current, body, content_type)
    }

    /// `force` is for apply patches only (upstream's `ValidatePatchOptions`).
    pub(super) fn check_patch_options(&self) -> ApiResult<()> {
        if self.query.get("force").is_some() {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause {
                    reason: "FieldValueForbidden".into(),
                    message: "Forbidden: may not be specified for non-apply patch".into(),
                    field: "force".into(),
                }],
            ));
        }
        Ok(())
    }

    /// Server-side apply (`PATCH` with `application/apply-patch+yaml`): merges the
    /// configuration into the object, or creates the object from it, as the `fieldManager`.
    pub(super) async fn apply(&self, body: &[u8], subresource: Option<&str>) -> ApiResult {
        let Some(manager) = self.query.get("fieldManager").map(str::to_owned) else {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: is required for apply patch".into(),
                    field: "fieldManager".into(),
                }],
            ));
        };
        let force = match self.query.get("force") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "invalid value for force: {other:?}"
                )))
            }
        };
        let mut config: Value = serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "error decoding YAML: the body must be an object",
            ));
        }
        let scale = subresource == Some("scale");
        if scale {
            config = self.scale_apply_config(&config)?;
        }
        self.check_apply_identity(&config)?;
        meta::check_namespace(&self.info, &mut config, self.ns.as_deref())?;
        let schema = (self.info.schema_name)();
        let (config, apply_warnings) = self.drop_undeclared(config, &schema)?;
        let api_version = self.info.api_version();
        let write = ssa::Write {
            manager: &manager,
            api_version: &api_version,
            subresource,
            schema: &schema,
            has_status: self.info.has(Subresource::Status),
            now: now(),
        };
        // The configuration's resourceVersion is a precondition; without one, an apply
        // that loses a race to another writer is applied again to what that writer stored.
        let precondition = config
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut attempt = 0;
        loop {
            let current = self
                .app
                .objects
                .try_get(&self.info, self.ns.as_deref(), self.name())
                .await?;
            let live = match &current {
                Some(c) => c.obj.clone(),
                None if subresource.is_some() => {
                    return Err(ApiError::not_found(
                        self.info.group,
                        self.info.plural,
                        self.name(),
                    ))
                }
                None => ssa::identity_of(&config),
            };
            let applied =
                ssa::apply(&live, &config, &write, force).map_err(|e| self.apply_error(e))?;
            let obj = applied.object;
            let Some(current) = current else {
                match self.create_tracked(obj, false).await {
                    Err(e) if e.reason == "AlreadyExists" && attempt < MAX_RETRIES_ON_CONFLICT => {
                        attempt += 1;
                        continue;
                    }
                    other => {
                        let mut resp = other?;
                        add_warnings(&mut resp, &apply_warnings);
                        return Ok(resp);
                    }
                }
            };
            if precondition
                .as_deref()
                .is_some_and(|rv| rv != current.rev.to_string())
            {
                return Err(ApiError::conflict(
                    self.info.group,
                    self.info.plural,
                    self.name(),
                ));
            }
            let (obj, warnings) = self.normalize(obj)?;
            let written = match subresource {
                Some("status") => {
                    self.write_over(&current, obj, meta::prepare_status_update, false)
                        .await
                }
                _ => {
                    self.write_over(&current, obj, meta::prepare_update, false)
                        .await
                }
            };
            let updated = match written {
                Err(e)
                    if e.reason == "Conflict"
                        && precondition.is_none()
                        && attempt < MAX_RETRIES_ON_CONFLICT =>
                {
                    attempt += 1;
                    continue;
                }
                other => other?,
            };
            let updated = if scale {
                self.scale_of(&updated)
            } else {
                updated
            };
            let mut resp = self.respond(StatusCode::OK, updated);
            add_warnings(&mut resp, &apply_warnings);
            add_warnings(&mut resp, &warnings);
            return Ok(resp);
        }
    }

    /// The apply configuration without the fields its kind does not declare, as
    /// `fieldValidation` says: refused (`Strict`), dropped with a warning (`Warn`, the
    /// default) or dropped (`Ignore`).
    fn drop_undeclared(&self, config: Value, schema: &str) -> ApiResult<(Value, Vec<String>)> {
        let ty = ssa::Ty::of_kind(schema);
        let typed_error = |e: ssa::Error| self.apply_error(e.into());
        let unknown = ssa::typed::undeclared_fields(&config, ty).map_err(typed_error)?;
        if unknown.is_empty() {
            return Ok((config, Vec::new()));
        }
        let paths: Vec<String> = unknown
            .paths()
            .iter()
            .map(|p| ssa::fieldpath::path_string(p))
            .collect();
        let warnings = match self.query.get("fieldValidation").unwrap_or("Warn") {
            "Strict" => {
                let errors: Vec<String> = paths
                    .iter()
                    .map(|p| format!("{p}: field not declared in schema"))
                    .collect();
                return Err(typed_error(ssa::Error::Invalid(errors.join("\n"))));
            }
            "Ignore" => Vec::new(),
            _ => paths
                .iter()
                .map(|p| format!("unknown field \"{}\"", p.trim_start_matches('.')))
                .collect(),
        };
        let config = ssa::typed::remove_items(&config, &unknown, ty).map_err(typed_error)?;
        Ok((config, warnings))
    }

    /// The configuration of an apply names this URL's kind and object (upstream's version
    /// check and `checkName`).
    /// An apply to `/scale` is an `autoscaling/v1` Scale; it is applied to the object as
    /// the configuration of its `spec.replicas` alone, recorded with subresource `scale`
    /// (upstream's scale handler of managed fields).
    fn scale_apply_config(&self, config: &Value) -> ApiResult<Value> {
        check_apply_type(config, ("autoscaling", "v1", "Scale"))?;
        let mut metadata = serde_json::Map::new();
        for k in ["name", "namespace"] {
            if let Some(v) = config.pointer(&format!("/metadata/{k}")) {
                metadata.insert(k.into(), v.clone());
            }
        }
        let mut parent = json!({
            "apiVersion": self.info.api_version(),
            "kind": self.info.kind,
            "metadata": metadata,
        });
        if let Some(replicas) = config.pointer("/spec/replicas") {
            parent["spec"] = json!({ "replicas": replicas });
        }
        Ok(parent)
    }

    fn check_apply_identity(&self, config: &Value) -> ApiResult<()> {
        check_apply_type(config, (self.info.group, self.info.version, self.info.kind))?;
        let name = meta::name(config);
        if name != self.name() {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({})",
                self.name()
            )));
        }
        Ok(())
    }

    /// An apply's refusal as upstream answers it: conflicts are 409 with one
    /// `FieldManagerConflict` cause per field.
    fn apply_error(&self, e: ssa::ApplyError) -> ApiError {
        match e {
            ssa::ApplyError::Conflicts(conflicts) => {
                let mut err = ApiError::conflict(self.info.group, self.info.plural, self.name());
                err.message = conflicts.to_string();
                err.name = None;
                err.group = None;
                err.kind = None;
                err.causes = conflicts
                    .0
                    .iter()
                    .map(|c| Cause {
                        reason: "FieldManagerConflict".into(),
                        message: c.message(),
                        field: c.field(),
                    })
                    .collect();
                err
            }
            ssa::ApplyError::Invalid(e @ ssa::Error::ManagedFieldsInConfig) => {
                ApiError::bad_request(e.to_string())
            }
            ssa::ApplyError::Invalid(e) => ApiError::bad_request(format!(
                "failed to create typed patch object ({}/{}, Kind={}): {e}",
                self.info.group, self.info.version, self.info.kind
            )),
        }
    }
}

/// `current` (the object `name` of `info`'s kind) with the patch applied, its type checked.
/// The result keeps the current resourceVersion unless the patch set one (then it is a
/// precondition).
pub(crate) fn patched(
    info: &ResourceInfo,
    name: &str,
    current: &Value,
    body: &[u8],
    content_type: &str,
) -> ApiResult<Value> {
    let mut obj = current.clone();
    apply_patch(&mut obj, body, content_type, Schemas::builtin().kind(info))?;
    if meta::name(&obj) != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            meta::name(&obj),
            name
        )));
    }
    meta::check_type(info, &mut obj)?;
    Ok(obj)
}

/// Applies a JSON (RFC 6902), merge (RFC 7386) or strategic merge patch; `schema` is the
/// root schema of the object's kind, which the strategic merge follows (upstream's
/// `strategicPatchObject`). Server-side apply is refused as unsupported.
pub(crate) fn apply_patch(
    obj: &mut Value,
    body: &[u8],
    content_type: &str,
    schema: Option<Schema<'_>>,
) -> ApiResult<()> {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    match mime {
        "application/strategic-merge-patch+json" => {
            let patch: Value = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("invalid strategic merge patch: {e}"))
            })?;
            *obj = apply_strategic_merge_patch(obj, &patch, schema).map_err(smp_error)?;
            Ok(())
        }
        "application/merge-patch+json" => {
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid merge patch: {e}")))?;
            if !patch.is_object() {
                return Err(ApiError::bad_request("merge patch must be a JSON object"));
            }
            json_patch::merge(obj, &patch);
            Ok(())
        }
        "application/json-patch+json" => {
            let patch: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            // Applied to a copy, which replaces `obj` only when every operation succeeded.
            // Not `json_patch::patch`: its undo of a failed patch is wrong after a `move`
            // whose target is invalid (the moved value is already gone), and it panics when
            // the undo then fails (`unable to undo applied patches`).
            let mut patched = obj.clone();
            json_patch::patch_unsafe(&mut patched, &patch).map_err(|e| match e.kind {
                json_patch::PatchErrorKind::TestFailed => ApiError {
                    code: 422,
                    reason: "Invalid",
                    ..ApiError::bad_request(format!(
                        "the server rejected our request due to an error in our request: {e}"
                    ))
                },
                _ => ApiError::bad_request(format!(
                    "the server rejected our request due to an error in our request: {e}"
                )),
            })?;
            *obj = patched;
            Ok(())
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// An apply configuration's `apiVersion` and `kind` are `expected` (group, version, kind),
/// else 400 with upstream's message.
fn check_apply_type(config: &Value, expected: (&str, &str, &str)) -> ApiResult<()> {
    let api_version = config
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = config.get("kind").and_then(Value::as_str).unwrap_or("");
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = |g: &str, v: &str, k: &str| format!("{g}/{v}, Kind={k}");
    if kind.is_empty() || version.is_empty() {
        return Err(ApiError::bad_request(format!(
            "invalid object type: {}",
            gvk(group, version, kind)
        )));
    }
    if (group, version, kind) != expected {
        return Err(ApiError::bad_request(format!(
            "invalid object type: {}, expected: {}",
            gvk(group, version, kind),
            gvk(expected.0, expected.1, expected.2)
        )));
    }
    Ok(())
}

/// A strategic merge patch that cannot be applied, as upstream answers it
/// (`interpretStrategicMergePatchError`): 422 for the few errors upstream calls invalid, 400
/// for the rest (where upstream answers some with a 500, a client's mistake all the same).
fn smp_error(e: SmpError) -> ApiError {
    if e.is_invalid() {
        ApiError {
            code: 422,
            reason: "Invalid",
            ..ApiError::bad_request(e.to_string())
        }
    } else {
        ApiError::bad_request(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `json_patch` fuzz target: a `move` to an invalid path after another
    /// operation made `json_patch::patch`'s undo fail, and it panicked. Now a 400, and a
    /// failed patch leaves the object as it was.
    #[test]
    fn a_json_patch_failing_after_a_move_is_a_400_and_changes_nothing() {
        let live = serde_json::json!({"a": {"c": 1}, "metadata": {"name": "x"}});
        for body in [
            br#"[{"op":"add","path":"/a/b","value":1},{"op":"move","from":"/a","path":"/nope/x"}]"#
                .as_slice(),
            br#"[{"op":"move","from":"/metadata/name","path":"/nope/x"}]"#,
        ] {
            let mut obj = live.clone();
            let e = apply_patch(&mut obj, body, "application/json-patch+json", None)
                .expect_err("the move's target does not exist");
            assert_eq!(e.code, 400, "{}", e.message);
            assert_eq!(obj, live);
        }
    }
}
