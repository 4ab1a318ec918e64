//! `list`: the revision a list reads at (`resourceVersion`, `resourceVersionMatch`), whether
//! the watch cache may answer it and how fresh it must be, and the answer assembled from the
//! items' JSON as stored (or a `Table`). Upstream counterpart: `handlers/get.go`
//! (`ListResource`) with the cacher's list. The watch cache itself is [`crate::watch`].

use std::time::Duration;

use axum::response::IntoResponse;
use bytes::Bytes;
use http::{header, StatusCode};
use serde_json::json;
use serde_json::Value;
use skiff_api::status::ApiError;
use skiff_api::table;
use skiff_store::Revision;

use super::{json_response, now, partial_metadata_json, ApiResult, Ctx, Form};
use crate::tables;

impl Ctx {
    /// The revision a list reads at, from `resourceVersion` and `resourceVersionMatch`.
    async fn list_revision(&self) -> ApiResult<Option<Revision>> {
        let rv = self.query.get("resourceVersion");
        let matching = self.query.get("resourceVersionMatch");
        let parse = |rv: &str| {
            rv.parse::<Revision>()
                .ok()
                .filter(|r| *r >= 0)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "resourceVersion: Invalid value: {rv:?}: must be a non-negative integer"
                    ))
                })
        };
        match (rv, matching) {
            (None, Some(_)) => Err(ApiError::bad_request(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
            )),
            (Some(rv), Some("Exact")) => {
                let r = parse(rv)?;
                if r == 0 {
                    return Err(ApiError::bad_request(
                        "resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                    ));
                }
                Ok(Some(r))
            }
            (Some(rv), Some("NotOlderThan") | None) => {
                let r = parse(rv)?;
                if r > 0 {
                    self.wait_for_revision(r).await?;
                }
                Ok(None)
            }
            (Some(_), Some(other)) => Err(ApiError::bad_request(format!(
                "resourceVersionMatch: Unsupported value: {other:?}: supported values: \"Exact\", \"NotOlderThan\""
            ))),
            (None, None) => Ok(None),
        }
    }

    /// Waits (a little) for the store to reach `rev`; 504 as upstream when it does not.
    async fn wait_for_revision(&self, rev: Revision) -> ApiResult<()> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        loop {
            let current = self
                .app
                .objects
                .store
                .current_revision()
                .await
                .map_err(|e| crate::objects::store_error(&self.info, "", e))?;
            if current >= rev {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ApiError::timeout(format!(
                    "Too large resource version: {rev}, current: {current}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether a list may be served by the watch cache, and how fresh it must be: `None`
    /// reads the datastore (a continue token, or an exact revision: history the cache does
    /// not keep); `Some(None)` takes the cache as it is (`resourceVersion=0`); `Some(Some(r))`
    /// needs revision `r` or later (a consistent list needs the datastore's current one).
    async fn cache_freshness(&self) -> ApiResult<Option<Option<Revision>>> {
        if self.query.get("continue").is_some()
            || self.query.get("resourceVersionMatch") == Some("Exact")
        {
            return Ok(None);
        }
        match self.query.get("resourceVersion") {
            None => {
                let current = self
                    .app
                    .objects
                    .store
                    .current_revision()
                    .await
                    .map_err(|e| crate::objects::store_error(&self.info, "", e))?;
                Ok(Some(Some(current)))
            }
            Some("0") => Ok(Some(None)),
            Some(rv) => Ok(Some(rv.parse::<Revision>().ok().filter(|r| *r > 0))),
        }
    }

    pub(super) async fn list(&self) -> ApiResult {
        let limit = self.query.int("limit")?.unwrap_or(0).max(0) as usize;
        let (labels, fields) = self.selectors()?;
        let metadata_only = fields
            .requirements()
            .iter()
            .all(|r| r.field.starts_with("metadata."));
        let keep = self.matcher_of(labels, fields);
        // Checks the resourceVersion rules (and waits for a future revision) first.
        let at = self.list_revision().await?;
        if let Some(min) = self.cache_freshness().await? {
            let selection = if metadata_only {
                crate::watch::Selection::Metadata(&keep)
            } else {
                crate::watch::Selection::Object(&keep)
            };
            let cached = self
                .app
                .hub
                .list(&self.info, self.ns.as_deref(), limit, min, selection)
                .await?;
            if let Some(list) = cached {
                return self
                    .list_answer(Items::Json(list.items), list.revision, list.continue_token)
                    .await;
            }
        }
        if metadata_only {
            let page = self
                .app
                .objects
                .list_raw(
                    &self.info,
                    self.ns.as_deref(),
                    limit,
                    self.query.get("continue"),
                    at,
                    &keep,
                )
                .await?;
            let items = page.items.into_iter().map(Bytes::from).collect();
            return self
                .list_answer(Items::Json(items), page.revision, page.continue_token)
                .await;
        }
        let page = self
            .app
            .objects
            .list(
                &self.info,
                self.ns.as_deref(),
                limit,
                self.query.get("continue"),
                at,
                &keep,
            )
            .await?;
        self.list_answer(
            Items::Values(page.items),
            page.revision,
            page.continue_token,
        )
        .await
    }

    /// A list answer from its items' JSON: a list assembled from the bytes as they are, or
    /// a Table (which needs the objects decoded).
    async fn list_answer(
        &self,
        items: Items,
        revision: Revision,
        continue_token: Option<String>,
    ) -> ApiResult {
        let rv = revision.to_string();
        if let Form::Table(include) = self.form {
            let objects = match items {
                Items::Json(items) => {
                    let large = items.len() >= crate::PARALLEL_FROM;
                    let info = self.info.clone();
                    let token = continue_token.clone();
                    let at = now();
                    let build = move || {
                        tables::table_json(&info, &items, include, &rv, token.as_deref(), at)
                    };
                    // A big Table is CPU work: off the request threads.
                    let body = if large {
                        tokio::task::spawn_blocking(build)
                            .await
                            .map_err(|e| ApiError::internal(format!("building a table: {e}")))??
                    } else {
                        build()?
                    };
                    return Ok((
                        StatusCode::OK,
                        [(header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                        .into_response());
                }
                Items::Values(objects) => objects,
            };
            return Ok(json_response(
                StatusCode::OK,
                &table::table(
                    self.info.group,
                    self.info.plural,
                    &objects,
                    &rv,
                    continue_token.as_deref(),
                    include,
                    now(),
                ),
            ));
        }
        let items = match items {
            Items::Json(items) => items,
            Items::Values(objects) => objects
                .iter()
                .map(|o| serde_json::to_vec(o).map(Bytes::from))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ApiError::internal(format!("encoding a list: {e}")))?,
        };
        let (items, list_kind, api_version) = if self.form == Form::Metadata {
            let items = items
                .iter()
                .map(|i| partial_metadata_json(i))
                .collect::<ApiResult<Vec<_>>>()?;
            (
                items,
                "PartialObjectMetadataList",
                "meta.k8s.io/v1".to_owned(),
            )
        } else {
            (items, self.info.list_kind, self.info.api_version())
        };
        let mut metadata = json!({"resourceVersion": rv});
        if let Some(c) = &continue_token {
            metadata["continue"] = json!(c);
        }
        let head = json!({"kind": list_kind, "apiVersion": api_version, "metadata": metadata});
        let head = serde_json::to_vec(&head).map_err(|e| ApiError::internal(e.to_string()))?;
        let total: usize = items.iter().map(|i| i.len() + 1).sum();
        let mut body = Vec::with_capacity(head.len() + total + 16);
        // `{"apiVersion":..,"kind":..,"metadata":{..}` then `,"items":[...]}`.
        body.extend_from_slice(&head[..head.len() - 1]);
        body.extend_from_slice(b",\"items\":[");
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(item);
        }
        body.extend_from_slice(b"]}");
        Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response())
    }
}

/// A list's items: as JSON (from the watch cache or the stored bytes) or decoded.
enum Items {
    Json(Vec<Bytes>),
    Values(Vec<Value>),
}

/// Decodes a list's items; a large list is split across two threads (decoding is most of
/// the cost of a big list that needs whole objects, such as a Table).
pub(super) async fn decode_all(items: Vec<Bytes>) -> ApiResult<Vec<Value>> {
    let decode_part = |part: &[Bytes]| -> ApiResult<Vec<Value>> {
        part.iter()
            .map(|b| {
                serde_json::from_slice(b).map_err(|e| {
                    ApiError::internal(format!("a listed object cannot be decoded: {e}"))
                })
            })
            .collect()
    };
    // Small lists decode on the request's thread, large ones off it.
    let few = items.len() < crate::PARALLEL_FROM;
    let halves = move || {
        let (mut out, rest) = crate::in_two_halves(&items, decode_part)?;
        out.extend(rest);
        Ok(out)
    };
    if few {
        return halves();
    }
    tokio::task::spawn_blocking(halves)
        .await
        .map_err(|e| ApiError::internal(format!("decoding a list: {e}")))?
}
