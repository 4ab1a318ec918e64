//! `delete` (with finalizers, grace and propagation, in [`crate::objects`]), namespaces
//! (marked Terminating, emptied by the namespace controller), `deletecollection`, and the
//! delete options of the query and body. Upstream counterpart: `handlers/delete.go`.

use http::StatusCode;
use serde_json::{json, Value};
use skiff_api::meta;
use skiff_api::status::ApiError;

use super::{decode_body, json_response, now, ApiResult, Ctx, Query};
use crate::objects::{DeleteOptions, Deleted};

impl Ctx {
    pub(super) async fn delete(&self, body: &[u8]) -> ApiResult {
        let opts = delete_request(&self.query, body)?;
        if self.info.group.is_empty() && self.info.plural == "namespaces" {
            return self.delete_namespace(&opts).await;
        }
        match self
            .app
            .objects
            .delete(&self.info, self.ns.as_deref(), self.name(), &opts, now())
            .await?
        {
            Deleted::Marked(obj) => Ok(self.respond(StatusCode::OK, obj)),
            Deleted::Gone(obj) => Ok(json_response(
                StatusCode::OK,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                        "details": {"name": self.name(), "group": self.info.group, "kind": self.info.plural, "uid": meta::uid(&obj)}}),
            )),
        }
    }

    /// Namespaces are never removed at once: they turn Terminating; the namespace controller
    /// (skiff-controllers) empties them, then removes the `kubernetes` finalizer through
    /// `finalize`, which removes them.
    async fn delete_namespace(&self, opts: &DeleteOptions) -> ApiResult {
        if matches!(self.name(), "default" | "kube-system" | "kube-public") {
            return Err(ApiError::forbidden(
                "",
                "namespaces",
                self.name(),
                "this namespace may not be deleted",
            ));
        }
        let stamp = meta::timestamp(now());
        let marked = self
            .app
            .objects
            .update_with(&self.info, None, self.name(), opts.dry_run, |current| {
                if let Some(uid) = &opts.uid {
                    if uid != meta::uid(&current.obj) {
                        return Err(ApiError::conflict(
                            self.info.group,
                            self.info.plural,
                            self.name(),
                        ));
                    }
                }
                if meta::is_deleting(&current.obj) {
                    return Ok(None);
                }
                let mut new = current.obj.clone();
                new["metadata"]["deletionTimestamp"] = json!(stamp);
                new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                new["status"] = json!({"phase": "Terminating"});
                Ok(Some(new))
            })
            .await?;
        Ok(self.respond(StatusCode::OK, marked))
    }

    pub(super) async fn delete_collection(&self, body: &[u8]) -> ApiResult {
        let opts = delete_request(&self.query, body)?;
        let keep = self.matcher()?;
        let page = self
            .app
            .objects
            .list(&self.info, self.ns.as_deref(), 0, None, None, &keep)
            .await?;
        let mut deleted = Vec::new();
        for obj in page.items {
            let name = meta::name(&obj).to_owned();
            let ns = meta::namespace(&obj).to_owned();
            let ns = (!ns.is_empty()).then_some(ns);
            match self
                .app
                .objects
                .delete(&self.info, ns.as_deref(), &name, &opts, now())
                .await
            {
                Ok(Deleted::Gone(o) | Deleted::Marked(o)) => deleted.push(o),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(json_response(
            StatusCode::OK,
            &json!({"kind": self.info.list_kind, "apiVersion": self.info.api_version(), "metadata": {"resourceVersion": page.revision.to_string()}, "items": deleted}),
        ))
    }
}

/// The options of a delete or deletecollection: the query's, overridden by the body's (a
/// JSON `DeleteOptions`, or nothing).
pub(crate) fn delete_request(query: &Query, body: &[u8]) -> ApiResult<DeleteOptions> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        decode_body(body, "application/json")?
    };
    delete_options(query, body)
}

pub(super) fn delete_options(query: &Query, body: Value) -> ApiResult<DeleteOptions> {
    let mut opts = DeleteOptions {
        dry_run: query.dry_run()?,
        propagation: query.get("propagationPolicy").map(str::to_owned),
        grace_period_seconds: query.int("gracePeriodSeconds")?,
        ..Default::default()
    };
    if let Some(b) = body.as_object() {
        if let Some(p) = b.get("propagationPolicy").and_then(Value::as_str) {
            opts.propagation = Some(p.to_owned());
        }
        if let Some(g) = b.get("gracePeriodSeconds").and_then(Value::as_i64) {
            opts.grace_period_seconds = Some(g);
        }
        if let Some(d) = b.get("dryRun").and_then(Value::as_array) {
            opts.dry_run |= d.iter().any(|v| v == "All");
        }
        let pre = b.get("preconditions");
        opts.resource_version = pre
            .and_then(|p| p.get("resourceVersion"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        opts.uid = pre
            .and_then(|p| p.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    match opts.propagation.as_deref() {
        None | Some("Orphan" | "Background" | "Foreground") => Ok(opts),
        Some(other) => Err(ApiError::bad_request(format!(
            "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
        ))),
    }
}
