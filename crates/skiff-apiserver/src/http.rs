//! The HTTP surface: routes requests to discovery or to a resource's verbs, decodes bodies,
//! negotiates the answer's form (object, list or `Table`), and turns every refusal into a
//! `Status`. Upstream counterpart: `apiserver/pkg/endpoints/handlers`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use skiff_api::apply as ssa;
use skiff_api::meta;
use skiff_api::patch::{apply_strategic_merge_patch, Schema, Schemas, SmpError};
use skiff_api::registry::{unknown_fields, ResourceInfo, Subresource};
use skiff_api::selector::{FieldSelector, LabelSelector};
use skiff_api::status::{ApiError, Cause};
use skiff_api::table;
use skiff_store::Revision;

use crate::discovery;
use crate::objects::{DeleteOptions, Deleted};
use crate::path::{self, Route, Target};
use crate::tables;
use crate::watch::{self, Change, ObjectEvent};
use crate::App;

/// Marks a streaming response (a watch), which must not be compressed: the encoder would
/// hold events back until its buffer fills.
#[derive(Clone, Copy, Debug)]
pub struct Streaming;

/// Compress (gzip, when the client accepts it) everything but streams.
#[derive(Clone, Copy, Debug)]
pub struct NotStreaming;

impl tower_http::compression::Predicate for NotStreaming {
    fn should_compress<B: http_body::Body>(&self, response: &http::Response<B>) -> bool {
        response.extensions().get::<Streaming>().is_none()
    }
}

/// The largest request body accepted (upstream's default is 3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

type ApiResult<T = Response> = Result<T, ApiError>;

pub fn error_response(e: &ApiError) -> Response {
    let mut resp = json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
    );
    if let Some(secs) = e.retry_after_seconds {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

pub fn json_response(code: StatusCode, body: &Value) -> Response {
    // One object is rarely under 1 KiB: start there rather than grow from 128 bytes.
    let mut bytes = Vec::with_capacity(1024);
    if serde_json::to_writer(&mut bytes, body).is_err() {
        bytes.clear();
    }
    (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// How often a patch or apply without a resourceVersion is applied again after losing a
/// race to another writer (upstream's `GuaranteedUpdate` retries without bound).
const MAX_RETRIES_ON_CONFLICT: usize = 100;

/// The query parameters the API understands (unknown ones are ignored, as upstream).
#[derive(Default, Debug)]
pub(crate) struct Query {
    params: HashMap<String, String>,
}

impl Query {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let params = raw
            .map(|q| {
                serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                    .unwrap_or_default()
                    .into_iter()
                    .collect()
            })
            .unwrap_or_default();
        Self { params }
    }

    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.params
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1"))
    }

    pub(crate) fn dry_run(&self) -> ApiResult<bool> {
        match self.get("dryRun") {
            None => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dryRun value: {other:?}: supported values: \"All\""
            ))),
        }
    }

    pub(crate) fn int(&self, k: &str) -> ApiResult<Option<i64>> {
        self.get(k)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}")))
            })
            .transpose()
    }
}

/// How the client wants objects back.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Json,
    Table(table::IncludeObject),
    /// `as=PartialObjectMetadata` (or `...List`): each object's metadata only, as upstream's
    /// metadata clients (the garbage collector's and the namespace controller's informers)
    /// ask for it.
    Metadata,
}

fn form(headers: &HeaderMap, query: &Query) -> Form {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let first = accept.split(',').next().unwrap_or("");
    if !first.contains("g=meta.k8s.io") {
        return Form::Json;
    }
    if first.contains("as=PartialObjectMetadata") {
        return Form::Metadata;
    }
    if !first.contains("as=Table") {
        return Form::Json;
    }
    Form::Table(match query.get("includeObject") {
        Some("None") => table::IncludeObject::None,
        Some("Object") => table::IncludeObject::Object,
        _ => table::IncludeObject::Metadata,
    })
}

/// The entry point of every `/api` and `/apis` request.
pub async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    match dispatch(app, req).await {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

async fn dispatch(app: Arc<App>, req: Request) -> ApiResult {
    let (parts, body) = req.into_parts();
    let query = Query::parse(parts.uri.query());
    let route = path::parse(parts.uri.path()).ok_or_else(ApiError::not_found_path)?;
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let discovery_only = |v: Option<Value>| -> ApiResult {
        if parts.method != Method::GET {
            return Err(ApiError {
                code: 405,
                reason: "MethodNotAllowed",
                message: "the server does not allow this method on the requested resource".into(),
                ..ApiError::not_found_path()
            });
        }
        v.map(|v| json_response(StatusCode::OK, &v))
            .ok_or_else(ApiError::not_found_path)
    };
    let target = match route {
        Route::CoreVersions | Route::Groups
            if discovery::wants_aggregated(accept) && parts.method == Method::GET =>
        {
            let doc = discovery::aggregated(&app.registry, matches!(route, Route::CoreVersions));
            let mut resp = json_response(StatusCode::OK, &doc);
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
            );
            return Ok(resp);
        }
        Route::CoreVersions => return discovery_only(Some(discovery::core_versions())),
        Route::Groups => return discovery_only(Some(discovery::group_list(&app.registry))),
        Route::Group(g) => return discovery_only(discovery::group(&app.registry, &g)),
        Route::Resources { group, version } => {
            return discovery_only(discovery::resource_list(&app.registry, &group, &version))
        }
        Route::Resource(t) => t,
    };
    let info = app
        .registry
        .get(&target.group, &target.version, &target.resource)
        .ok_or_else(ApiError::not_found_path)?
        .clone();
    let ns = if info.namespaced {
        target.namespace.clone()
    } else {
        None
    };
    if info.namespaced && target.name.is_some() && ns.is_none() {
        return Err(ApiError::not_found_path());
    }
    let sub = match &target.subresource {
        None => None,
        Some(s) => Some(
            Subresource::parse(s)
                .filter(|s| info.has(*s))
                .ok_or_else(ApiError::not_found_path)?,
        ),
    };
    let body_bytes = read_body(body).await?;
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let form = form(&parts.headers, &query);
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let ctx = Ctx {
        app,
        info,
        target,
        ns,
        query,
        form,
        user_agent,
    };
    let verb_of = |v: &str| {
        if ctx.info.supports(v) {
            Ok(())
        } else {
            Err(ApiError::method_not_supported(
                ctx.info.group,
                ctx.info.plural,
                v,
            ))
        }
    };
    match (&parts.method, ctx.target.name.is_some(), sub) {
        (&Method::GET, false, None) if ctx.query.flag("watch") => {
            verb_of("watch")?;
            ctx.watch().await
        }
        (&Method::GET, false, None) => {
            verb_of("list")?;
            ctx.list().await
        }
        (&Method::POST, false, None) => {
            verb_of("create")?;
            ctx.create(decode_body(&body_bytes, &content_type)?).await
        }
        (&Method::DELETE, false, None) => {
            verb_of("deletecollection")?;
            ctx.delete_collection(&body_bytes).await
        }
        (&Method::GET, true, None) => {
            verb_of("get")?;
            ctx.get().await
        }
        (&Method::PUT, true, None) => {
            verb_of("update")?;
            ctx.update(decode_body(&body_bytes, &content_type)?).await
        }
        (&Method::PATCH, true, None) => {
            verb_of("patch")?;
            ctx.patch(&body_bytes, &content_type).await
        }
        (&Method::DELETE, true, None) => {
            verb_of("delete")?;
            ctx.delete(&body_bytes).await
        }
        (&Method::GET, true, Some(Subresource::Status)) => ctx.get().await,
        (&Method::PUT, true, Some(Subresource::Status)) => {
            ctx.update_status(decode_body(&body_bytes, &content_type)?)
                .await
        }
        (&Method::PUT, true, Some(Subresource::Finalize)) => {
            ctx.finalize(decode_body(&body_bytes, &content_type)?).await
        }
        (&Method::PATCH, true, Some(Subresource::Status)) => {
            ctx.patch_status(&body_bytes, &content_type).await
        }
        (&Method::GET, true, Some(Subresource::Scale)) => ctx.get_scale().await,
        (&Method::PUT, true, Some(Subresource::Scale)) => {
            ctx.update_scale(decode_body(&body_bytes, &content_type)?)
                .await
        }
        (&Method::PATCH, true, Some(Subresource::Scale)) => {
            ctx.patch_scale(&body_bytes, &content_type).await
        }
        (&Method::POST, true, Some(Subresource::Binding)) => {
            ctx.bind(decode_body(&body_bytes, &content_type)?).await
        }
        (&Method::POST, true, Some(Subresource::Eviction)) => {
            ctx.evict(decode_body(&body_bytes, &content_type)?).await
        }
        (method, _, _) => Err(ApiError::method_not_supported(
            ctx.info.group,
            ctx.info.plural,
            method.as_str(),
        )),
    }
}

async fn read_body(body: Body) -> ApiResult<Bytes> {
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::too_large(MAX_BODY_BYTES))
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

/// A request body in JSON, YAML or protobuf.
pub(crate) fn decode_body(bytes: &[u8], content_type: &str) -> ApiResult<Value> {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    let value: Value = match mime {
        "application/json" | "" | "*/*" => serde_json::from_slice(bytes).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as JSON: {e}"
            ))
        })?,
        skiff_api::protobuf::CONTENT_TYPE => skiff_api::protobuf::decode(bytes).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as protobuf: {e}"
            ))
        })?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => serde_yaml::from_slice(bytes)
            .map_err(|e| {
                ApiError::bad_request(format!(
                    "the body of the request could not be decoded as YAML: {e}"
                ))
            })?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be an object",
        ));
    }
    Ok(value)
}

/// One request against one resource.
struct Ctx {
    app: Arc<App>,
    info: ResourceInfo,
    target: Target,
    ns: Option<String>,
    query: Query,
    form: Form,
    /// The `User-Agent`, the manager of writes that name no `fieldManager`.
    user_agent: String,
}

/// The media type of server-side apply patches (the body is YAML or JSON).
const APPLY_PATCH: &str = "application/apply-patch+yaml";

fn is_apply(content_type: &str) -> bool {
    content_type.split(';').next().unwrap_or("").trim() == APPLY_PATCH
}

/// Records a non-apply write of `new` over `old` (`{}` for a create) by `manager` in
/// `new`'s managed fields (operation Update). As upstream (`UpdateNoErrors`), a failure drops
/// the managed fields rather than the write.
pub(crate) fn record_update(
    info: &ResourceInfo,
    old: &Value,
    new: &mut Value,
    manager: &str,
    subresource: Option<&str>,
) {
    let schema = (info.schema_name)();
    let api_version = info.api_version();
    let write = ssa::Write {
        manager,
        api_version: &api_version,
        subresource,
        schema: &schema,
        has_status: info.has(Subresource::Status),
        now: now(),
    };
    match ssa::record_update(old, new, &write) {
        Ok(()) => {}
        Err(e) => {
            tracing::warn!(kind = info.kind, name = meta::name(new), error = %e, "managed fields not updated");
            if let Some(m) = new.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("managedFields");
            }
        }
    }
}

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn random_suffix() -> String {
    // Upstream's generateName suffix alphabet (no vowels, no confusable characters).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl Ctx {
    fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or("")
    }

    fn respond(&self, code: StatusCode, obj: Value) -> Response {
        match self.form {
            Form::Json => json_response(code, &obj),
            Form::Metadata => json_response(code, &partial_metadata(obj)),
            Form::Table(include) => {
                let rv = meta::resource_version(&obj).to_owned();
                json_response(
                    code,
                    &table::table(
                        self.info.group,
                        self.info.plural,
                        &[obj],
                        &rv,
                        None,
                        include,
                        now(),
                    ),
                )
            }
        }
    }

    /// Decodes through the typed kind, applying `fieldValidation` to unknown fields.
    /// Returns the normalized object and the warnings to send.
    fn normalize(&self, obj: Value) -> ApiResult<(Value, Vec<String>)> {
        normalize(&self.info, &self.query, obj)
    }

    /// The namespace exists and is not terminating (for creates in it).
    async fn check_namespace_open(&self, name: &str) -> ApiResult<()> {
        let Some(ns) = self.ns.as_deref().filter(|_| self.info.namespaced) else {
            return Ok(());
        };
        let ns_info = self.app.namespaces();
        // The watch cache answers for a namespace it knows to be open (the common case);
        // anything else is read from the datastore, as upstream's NamespaceLifecycle falls
        // back to a live lookup.
        if let Some(meta) = self
            .app
            .hub
            .cached_metadata(&ns_info, &ns_info.key(None, ns))
            .await
        {
            if meta.get("deletionTimestamp").is_none_or(Value::is_null) {
                return Ok(());
            }
        }
        match self.app.objects.try_get(&ns_info, None, ns).await? {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(s) if meta::is_deleting(&s.obj) => {
                let mut e = ApiError::forbidden(
                    self.info.group,
                    self.info.plural,
                    name,
                    &format!("unable to create new content in namespace {ns} because it is being terminated"),
                );
                e.causes.push(Cause {
                    reason: "NamespaceTerminating".into(),
                    message: format!("namespace {ns} is being terminated"),
                    field: "metadata.namespace".into(),
                });
                Err(e)
            }
            Some(_) => Ok(()),
        }
    }

    fn validate_name(&self, obj: &Value) -> ApiResult<()> {
        let name = meta::name(obj);
        if let Some(problem) = meta::path_segment_problems(name) {
            return Err(ApiError::invalid(
                self.info.group,
                self.info.kind,
                name,
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!("Invalid value: {name:?}: {problem}"),
                    field: "metadata.name".into(),
                }],
            ));
        }
        Ok(())
    }

    async fn create(&self, body: Value) -> ApiResult {
        self.create_tracked(body, true).await
    }

    /// Creates the object; `track`: record the write in its managed fields (an apply has
    /// recorded itself already).
    async fn create_tracked(&self, body: Value, track: bool) -> ApiResult {
        let mut obj = body;
        meta::check_type(&self.info, &mut obj)?;
        meta::check_namespace(&self.info, &mut obj, self.ns.as_deref())?;
        let (obj, warnings) = self.normalize(obj)?;
        let dry_run = self.query.dry_run()?;
        let generated = meta::name(&obj).is_empty();
        self.check_namespace_open(meta::name(&obj)).await?;
        let mut attempts = 0;
        let mut obj = Some(obj);
        let created = loop {
            // Kept for another try only where a generated name may collide.
            let mut candidate = match &obj {
                Some(o) if generated => o.clone(),
                _ => obj
                    .take()
                    .ok_or_else(|| ApiError::internal("create retried without its object"))?,
            };
            meta::prepare_create(
                &self.info,
                &mut candidate,
                now(),
                &uuid::Uuid::new_v4().to_string(),
                &random_suffix(),
            )?;
            self.validate_name(&candidate)?;
            self.default_and_validate_create(&mut candidate)?;
            if track {
                self.track(&json!({}), &mut candidate, None);
            }
            self.app
                .admit_create(&self.info, &mut candidate, dry_run)
                .await?;
            // Kept only where a failed create has something to give back.
            let undo = self
                .app
                .has_create_undo(&self.info)
                .then(|| candidate.clone());
            let result = self
                .app
                .objects
                .create_json(&self.info, candidate, dry_run)
                .await;
            if let Some(undo) = undo.filter(|_| result.is_err() || dry_run) {
                self.app.undo_create(&self.info, &undo).await;
            }
            match result {
                Err(e) if e.reason == "AlreadyExists" && generated && attempts < 8 => attempts += 1,
                other => break other?,
            }
        };
        let mut resp = match (created, self.form) {
            // The stored bytes with the resourceVersion: the same JSON, encoded once.
            ((_, Some(json)), Form::Json) => (
                StatusCode::CREATED,
                [(header::CONTENT_TYPE, "application/json")],
                json,
            )
                .into_response(),
            ((obj, _), _) => self.respond(StatusCode::CREATED, obj),
        };
        add_warnings(&mut resp, &warnings);
        Ok(resp)
    }

    /// Upstream's defaults and create strategy, then validation (422 with every bad field).
    fn default_and_validate_create(&self, obj: &mut Value) -> ApiResult<()> {
        let (group, version, kind) = (self.info.group, self.info.version, self.info.kind);
        skiff_api::defaults::apply(group, version, kind, obj);
        match (group, kind) {
            ("", "Pod") => skiff_api::defaults::pod_status_on_create(obj),
            ("batch", "Job") => skiff_api::defaults::job_selector_on_create(obj),
            _ => {}
        }
        let causes = skiff_api::validation::validate_create(group, version, kind, obj);
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(group, kind, meta::name(obj), causes))
        }
    }

    async fn get(&self) -> ApiResult {
        let stored = self
            .app
            .objects
            .get(&self.info, self.ns.as_deref(), self.name())
            .await?;
        Ok(self.respond(StatusCode::OK, stored.obj))
    }

    fn selectors(&self) -> ApiResult<(LabelSelector, FieldSelector)> {
        selectors(&self.info, &self.query)
    }

    fn matcher(&self) -> ApiResult<impl Fn(&Value) -> ApiResult<bool> + Send + Sync + 'static> {
        let (labels, fields) = self.selectors()?;
        Ok(self.matcher_of(labels, fields))
    }

    /// The selection of the query's selectors, parsed already.
    fn matcher_of(
        &self,
        labels: LabelSelector,
        fields: FieldSelector,
    ) -> impl Fn(&Value) -> ApiResult<bool> + Send + Sync + 'static {
        let (group, plural) = (self.info.group, self.info.plural);
        move |obj: &Value| {
            Ok(labels.matches_object(obj)
                && fields
                    .matches_object(group, plural, obj)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?)
        }
    }

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

    async fn list(&self) -> ApiResult {
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
                watch::Selection::Metadata(&keep)
            } else {
                watch::Selection::Object(&keep)
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

    /// The objects a watch starts with (as ADDED events) and the revision they are the
    /// state of: from the watch cache, current as of now, or else from the datastore.
    async fn initial_state(
        &self,
        keep: &(dyn Fn(&Value) -> ApiResult<bool> + Send + Sync),
    ) -> ApiResult<(Vec<Value>, Revision)> {
        let current = self
            .app
            .objects
            .store
            .current_revision()
            .await
            .map_err(|e| crate::objects::store_error(&self.info, "", e))?;
        let cached = self
            .app
            .hub
            .list(
                &self.info,
                self.ns.as_deref(),
                0,
                Some(current),
                watch::Selection::Object(keep),
            )
            .await?;
        if let Some(list) = cached {
            return Ok((decode_all(list.items).await?, list.revision));
        }
        let page = self
            .app
            .objects
            .list(&self.info, self.ns.as_deref(), 0, None, None, keep)
            .await?;
        Ok((page.items, page.revision))
    }

    async fn watch(&self) -> ApiResult {
        let (labels, fields) = self.selectors()?;
        let everything = labels.is_empty() && fields.is_empty();
        let keep = self.matcher_of(labels, fields);
        let rv = self.query.get("resourceVersion");
        let send_initial = self.query.flag("sendInitialEvents");
        let bookmarks = self.query.flag("allowWatchBookmarks");
        if send_initial && !bookmarks {
            return Err(ApiError::bad_request("allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true"));
        }
        let timeout = Duration::from_secs(
            self.query
                .int("timeoutSeconds")?
                .filter(|t| *t > 0)
                .unwrap_or(1800) as u64,
        );
        // Without a resourceVersion (or with "0"), a watch starts with the current state
        // as ADDED events, as upstream's legacy behaviour; sendInitialEvents asks for it.
        let explicit = rv.filter(|r| *r != "0");
        let (initial, start) = match (explicit, send_initial) {
            (Some(rv), false) => {
                let r = rv.parse::<Revision>().map_err(|_| {
                    ApiError::bad_request(format!("resourceVersion: Invalid value: {rv:?}"))
                })?;
                (Vec::new(), r)
            }
            _ => self.initial_state(&keep).await?,
        };
        let mut sub = self.app.hub.subscribe(&self.info, start).await?;
        let info = self.info.clone();
        let ns_prefix = self.ns.clone();
        let form = self.form;
        let bookmark_interval = self.app.config.bookmark_interval;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
        tokio::spawn(async move {
            let mut last_rv = start;
            let send = |ty: &str, obj: &Value| event_line(&info, form, ty, obj);
            for obj in &initial {
                if tx.send(send("ADDED", obj)).await.is_err() {
                    return;
                }
            }
            if send_initial {
                let mark = bookmark(&info, last_rv, true);
                if tx
                    .send(event_line(&info, Form::Json, "BOOKMARK", &mark))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            let deadline = tokio::time::sleep(timeout);
            tokio::pin!(deadline);
            let mut ticker = tokio::time::interval(bookmark_interval);
            ticker.tick().await;
            loop {
                tokio::select! {
                    _ = &mut deadline => return,
                    _ = ticker.tick(), if bookmarks => {
                        let mark = bookmark(&info, last_rv, false);
                        if tx.send(event_line(&info, Form::Json, "BOOKMARK", &mark)).await.is_err() { return; }
                    }
                    ev = sub.next() => {
                        let ev = match ev {
                            None => return,
                            Some(Err(e)) => {
                                let _ = tx.send(event_line(&info, Form::Json, "ERROR", &e.to_status())).await;
                                return;
                            }
                            Some(Ok(ev)) => ev,
                        };
                        last_rv = ev.rev;
                        if let Some(ns) = &ns_prefix {
                            if ev.namespace() != ns { continue; }
                        }
                        let Some(ty) = translate(&ev, (!everything).then_some(&keep as _)) else { continue };
                        if tx.send(object_line(&info, form, ty, &ev)).await.is_err() { return; }
                    }
                }
            }
        });
        let stream =
            tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::convert::Infallible>);
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::CACHE_CONTROL, "no-cache, private")
            .extension(Streaming)
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| error_response(&ApiError::internal("building the watch response"))))
    }

    async fn update(&self, body: Value) -> ApiResult {
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

    async fn update_status(&self, body: Value) -> ApiResult {
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
    async fn finalize(&self, body: Value) -> ApiResult {
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

    /// Writes `new` over `current` (just read), on condition that it is still current.
    async fn write_over(
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

    async fn patch(&self, body: &[u8], content_type: &str) -> ApiResult {
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

    async fn patch_status(&self, body: &[u8], content_type: &str) -> ApiResult {
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

    /// The manager of this write: `fieldManager`, else from the user agent (upstream's
    /// `managerOrUserAgent`).
    fn manager(&self) -> String {
        ssa::manager_name(self.query.get("fieldManager"), Some(&self.user_agent))
    }

    /// Records a non-apply write of `new` over `old` (`{}` for a create) in `new`'s managed
    /// fields, by this request's manager.
    fn track(&self, old: &Value, new: &mut Value, subresource: Option<&str>) {
        record_update(&self.info, old, new, &self.manager(), subresource);
    }

    /// `force` is for apply patches only (upstream's `ValidatePatchOptions`).
    fn check_patch_options(&self) -> ApiResult<()> {
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
    async fn apply(&self, body: &[u8], subresource: Option<&str>) -> ApiResult {
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

    fn scale_of(&self, obj: &Value) -> Value {
        let selector = obj
            .pointer("/spec/selector")
            .map(|s| {
                if s.get("matchLabels").is_some() || s.get("matchExpressions").is_some() {
                    serde_json::from_value::<
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
                    >(s.clone())
                    .ok()
                    .and_then(|ls| LabelSelector::from_k8s(&ls).ok())
                    .map(|ls| ls.to_string())
                    .unwrap_or_default()
                } else {
                    // ReplicationControllers have a plain map selector.
                    s.as_object()
                        .map(|m| {
                            m.iter()
                                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                                .collect::<Vec<_>>()
                                .join(",")
                        })
                        .unwrap_or_default()
                }
            })
            .unwrap_or_default();
        let m = &obj["metadata"];
        json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": m["name"], "namespace": m["namespace"], "uid": m["uid"],
                "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"],
            },
            "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
            "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
        })
    }

    async fn get_scale(&self) -> ApiResult {
        let stored = self
            .app
            .objects
            .get(&self.info, self.ns.as_deref(), self.name())
            .await?;
        Ok(json_response(StatusCode::OK, &self.scale_of(&stored.obj)))
    }

    async fn set_replicas(&self, scale: Value) -> ApiResult {
        let replicas = scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                self.name(),
                vec![Cause {
                    reason: "FieldValueInvalid".into(),
                    message: format!(
                        "Invalid value: {replicas}: must be greater than or equal to 0"
                    ),
                    field: "spec.replicas".into(),
                }],
            ));
        }
        let expected = meta::resource_version(&scale).to_owned();
        let dry_run = self.query.dry_run()?;
        let info = self.info.clone();
        let name = self.name().to_owned();
        let updated = self
            .app
            .objects
            .update_with(
                &self.info,
                self.ns.as_deref(),
                self.name(),
                dry_run,
                |current| {
                    if !expected.is_empty() && expected != current.rev.to_string() {
                        return Err(ApiError::conflict(info.group, info.plural, &name));
                    }
                    let mut new = current.obj.clone();
                    new["spec"]["replicas"] = json!(replicas);
                    meta::prepare_update(&info, &current.obj, &mut new)?;
                    validate_update(&info, &current.obj, &mut new)?;
                    self.track(&current.obj, &mut new, Some("scale"));
                    Ok(Some(new))
                },
            )
            .await?;
        Ok(json_response(StatusCode::OK, &self.scale_of(&updated)))
    }

    async fn update_scale(&self, body: Value) -> ApiResult {
        self.set_replicas(body).await
    }

    async fn patch_scale(&self, body: &[u8], content_type: &str) -> ApiResult {
        if is_apply(content_type) {
            return self.apply(body, Some("scale")).await;
        }
        self.check_patch_options()?;
        let stored = self
            .app
            .objects
            .get(&self.info, self.ns.as_deref(), self.name())
            .await?;
        let mut scale = self.scale_of(&stored.obj);
        // The scale's own resourceVersion is not a precondition unless the patch sets it.
        if let Some(m) = scale.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
        }
        apply_patch(&mut scale, body, content_type, Schemas::builtin().scale())?;
        self.set_replicas(scale).await
    }

    /// `pods/binding`: sets `spec.nodeName` once (and `PodScheduled=True`), as upstream's
    /// `BindingREST`.
    async fn bind(&self, body: Value) -> ApiResult {
        let node = body
            .pointer("/target/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        if node.is_empty() {
            return Err(ApiError::invalid(
                "",
                "Binding",
                self.name(),
                vec![Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value".into(),
                    field: "target.name".into(),
                }],
            ));
        }
        let info = self.info.clone();
        let name = self.name().to_owned();
        let dry_run = self.query.dry_run()?;
        let uid = body
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let annotations = body.pointer("/metadata/annotations").cloned();
        self.app
            .objects
            .update_with(
                &self.info,
                self.ns.as_deref(),
                self.name(),
                dry_run,
                |current| {
                    if meta::is_deleting(&current.obj) {
                        return Err(ApiError::conflict_msg(
                            info.group,
                            info.plural,
                            &name,
                            "pod is being deleted, cannot be assigned to a host",
                        ));
                    }
                    let bound = current
                        .obj
                        .pointer("/spec/nodeName")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    if !bound.is_empty() {
                        return Err(ApiError::conflict_msg(
                            info.group,
                            info.plural,
                            &name,
                            &format!("pod {name} is already assigned to node \"{bound}\""),
                        ));
                    }
                    if let Some(uid) = uid.as_deref().filter(|u| !u.is_empty()) {
                        if meta::uid(&current.obj) != uid {
                            return Err(ApiError::conflict_msg(
                                info.group,
                                info.plural,
                                &name,
                                &format!(
                                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                                    meta::uid(&current.obj)
                                ),
                            ));
                        }
                    }
                    let mut new = current.obj.clone();
                    new["spec"]["nodeName"] = json!(node);
                    // Upstream's setPodNodeAndMetadata: the binding's annotations are
                    // copied, and PodScheduled becomes True.
                    if let Some(extra) = annotations.as_ref().and_then(Value::as_object) {
                        let m = meta::metadata_mut(&mut new)?;
                        let anns = m.entry("annotations").or_insert(json!({}));
                        if let Some(anns) = anns.as_object_mut() {
                            for (k, v) in extra {
                                anns.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    set_pod_scheduled(&mut new);
                    Ok(Some(new))
                },
            )
            .await?;
        Ok(json_response(
            StatusCode::CREATED,
            &skiff_api::status::success(),
        ))
    }

    /// `pods/eviction`: a delete that respects the pod's disruption budget
    /// ([`crate::eviction`]).
    async fn evict(&self, body: Value) -> ApiResult {
        let opts = delete_options(
            &self.query,
            body.get("deleteOptions").cloned().unwrap_or(Value::Null),
        )?;
        let ns = self.ns.as_deref().unwrap_or_default();
        let (code, status) = crate::eviction::evict(
            &self.app,
            &self.info,
            ns,
            self.name(),
            &body,
            self.query.dry_run()?,
            opts,
        )
        .await?;
        Ok(json_response(code, &status))
    }

    async fn delete(&self, body: &[u8]) -> ApiResult {
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

    async fn delete_collection(&self, body: &[u8]) -> ApiResult {
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

/// Upstream's defaults (applied on every write, as decoding does upstream), then update
/// validation against the current object (immutable fields and every rule of a create).
fn validate_update(info: &ResourceInfo, old: &Value, new: &mut Value) -> ApiResult<()> {
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

fn add_warnings(resp: &mut Response, warnings: &[String]) {
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "'"))) {
            resp.headers_mut().append("Warning", v);
        }
    }
}

/// Decodes through the typed kind, applying `fieldValidation` to unknown fields.
/// Returns the normalized object and the warnings to send.
pub(crate) fn normalize(
    info: &ResourceInfo,
    query: &Query,
    obj: Value,
) -> ApiResult<(Value, Vec<String>)> {
    let kind = info.kind;
    let version = info.version;
    let normalized = (info.normalize)(&obj).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}"
        ))
    })?;
    let unknown = unknown_fields(&obj, &normalized);
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        match query.get("fieldValidation").unwrap_or("Warn") {
            "Strict" => {
                let list = unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(ApiError::bad_request(format!(
                    "{kind} in version \"{version}\" cannot be handled as a {kind}: strict decoding error: {list}"
                )));
            }
            "Ignore" => {}
            "Warn" => {
                warnings = unknown
                    .iter()
                    .map(|f| format!("unknown field \"{f}\""))
                    .collect()
            }
            other => {
                return Err(ApiError::bad_request(format!(
                "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", got {other:?}"
            )))
            }
        }
    }
    Ok((normalized, warnings))
}

/// The `labelSelector` and `fieldSelector` of a list, watch or deletecollection, checked
/// against the fields `info`'s kind supports.
pub(crate) fn selectors(
    info: &ResourceInfo,
    query: &Query,
) -> ApiResult<(LabelSelector, FieldSelector)> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    skiff_api::selector::check_fields(info.group, info.plural, &fields)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((labels, fields))
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

fn delete_options(query: &Query, body: Value) -> ApiResult<DeleteOptions> {
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

/// A list's items: as JSON (from the watch cache or the stored bytes) or decoded.
enum Items {
    Json(Vec<Bytes>),
    Values(Vec<Value>),
}

/// Decodes a list's items; a large list is split across two threads (decoding is most of
/// the cost of a big list that needs whole objects, such as a Table).
async fn decode_all(items: Vec<Bytes>) -> ApiResult<Vec<Value>> {
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

/// A selector over an object.
type Keep = dyn Fn(&Value) -> ApiResult<bool> + Send + Sync;

/// The event type a watcher with selector `keep` (`None`: it keeps everything) sees `ev` as,
/// if it sees it at all: an object entering the selection is ADDED, one leaving it DELETED,
/// as upstream. The object it gets is always `ev.obj()`, whose resourceVersion is the
/// event's (one that stops matching is a DELETED of its new state).
fn translate(ev: &ObjectEvent, keep: Option<&Keep>) -> Option<&'static str> {
    let Some(keep) = keep else {
        return Some(ev.change.as_str());
    };
    let now_matches = ev.change != Change::Deleted && keep(ev.obj()).unwrap_or(false);
    let was = ev.prev().is_some_and(|p| keep(p).unwrap_or(false));
    match ev.change {
        Change::Deleted if keep(ev.obj()).unwrap_or(false) => Some("DELETED"),
        Change::Deleted => None,
        _ if now_matches && was => Some("MODIFIED"),
        _ if now_matches => Some("ADDED"),
        _ if was => Some("DELETED"),
        _ => None,
    }
}

fn bookmark(info: &ResourceInfo, rev: Revision, initial_end: bool) -> Value {
    let mut metadata = json!({"resourceVersion": rev.to_string()});
    if initial_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": info.kind, "apiVersion": info.api_version(), "metadata": metadata})
}

/// An object as upstream's `PartialObjectMetadata` (a Status stays as it is).
fn partial_metadata(obj: Value) -> Value {
    if obj.get("kind").and_then(Value::as_str) == Some("Status") {
        return obj;
    }
    let metadata = match obj {
        Value::Object(mut map) => map.remove("metadata"),
        _ => None,
    };
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata.unwrap_or_else(|| json!({}))})
}

/// [`partial_metadata`] from an object's JSON, without decoding the rest of it.
fn partial_metadata_json(object: &[u8]) -> ApiResult<Bytes> {
    #[derive(serde::Deserialize)]
    struct MetadataOf<'a> {
        #[serde(borrow, default)]
        metadata: Option<&'a serde_json::value::RawValue>,
    }
    let of: MetadataOf = serde_json::from_slice(object)
        .map_err(|e| ApiError::internal(format!("reading stored metadata: {e}")))?;
    let metadata = of.metadata.map_or("{}", |m| m.get());
    let mut out = Vec::with_capacity(metadata.len() + 72);
    out.extend_from_slice(
        br#"{"apiVersion":"meta.k8s.io/v1","kind":"PartialObjectMetadata","metadata":"#,
    );
    out.extend_from_slice(metadata.as_bytes());
    out.push(b'}');
    Ok(Bytes::from(out))
}

/// One line of a watch: `{"type":TYPE,"object":OBJECT}` and a newline, as upstream writes it.
fn event_line(info: &ResourceInfo, form: Form, ty: &str, obj: &Value) -> Bytes {
    match form {
        Form::Metadata if ty != "BOOKMARK" && ty != "ERROR" => line_with(ty, |out| {
            serde_json::to_writer(out, &partial_metadata(obj.clone()))
        }),
        Form::Table(include) if ty != "BOOKMARK" && ty != "ERROR" => {
            let rv = meta::resource_version(obj).to_owned();
            let table = table::table(
                info.group,
                info.plural,
                std::slice::from_ref(obj),
                &rv,
                None,
                include,
                now(),
            );
            line_with(ty, |out| serde_json::to_writer(out, &table))
        }
        _ => line_with(ty, |out| serde_json::to_writer(out, obj)),
    }
}

/// The watch line of an event, from the object's JSON when the cache made it.
fn object_line(info: &ResourceInfo, form: Form, ty: &str, ev: &ObjectEvent) -> Bytes {
    match (&ev.json, form) {
        (Some(json), Form::Json) => line_with(ty, |out| {
            out.extend_from_slice(json);
            Ok(())
        }),
        // The metadata cut out of the cached JSON: the object is never decoded.
        (Some(json), Form::Metadata) => match partial_metadata_json(json) {
            Ok(partial) => line_with(ty, |out| {
                out.extend_from_slice(&partial);
                Ok(())
            }),
            Err(_) => event_line(info, form, ty, ev.obj()),
        },
        _ => event_line(info, form, ty, ev.obj()),
    }
}

fn line_with(
    ty: &str,
    object: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
) -> Bytes {
    let mut line = Vec::with_capacity(512);
    line.extend_from_slice(b"{\"type\":");
    let written = serde_json::to_writer(&mut line, ty).and_then(|()| {
        line.extend_from_slice(b",\"object\":");
        object(&mut line)
    });
    if let Err(e) = written {
        // Only a map with non-string keys fails to encode, which no object or Status has.
        tracing::error!(error = %e, "encoding a watch event");
        return Bytes::new();
    }
    line.extend_from_slice(b"}\n");
    Bytes::from(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_watch_line_from_the_cached_json_is_the_encoded_line() {
        let info = skiff_api::registry::Registry::builtin()
            .get("", "v1", "configmaps")
            .cloned()
            .unwrap();
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "default", "resourceVersion": "7"},
            "data": {"k": "v \"quoted\""}});
        let mut ev = ObjectEvent::decoded(Change::Added, Arc::new(obj.clone()), None, 7);
        ev.json = Some(Bytes::from(serde_json::to_vec(&obj).unwrap()));
        let line = object_line(&info, Form::Json, "ADDED", &ev);
        assert_eq!(line, event_line(&info, Form::Json, "ADDED", &obj));
        assert!(line.starts_with(br#"{"type":"ADDED","object":{"#) && line.ends_with(b"}\n"));
        let parsed: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(parsed, json!({"type": "ADDED", "object": obj}));
        // A Table watch encodes its row, not the cached JSON.
        let table = object_line(
            &info,
            Form::Table(table::IncludeObject::Metadata),
            "ADDED",
            &ev,
        );
        let parsed: Value = serde_json::from_slice(&table).unwrap();
        assert_eq!(parsed["object"]["kind"], "Table");
        // A metadata watch gets the metadata cut from the cached JSON, the same as from the
        // decoded object.
        let partial = object_line(&info, Form::Metadata, "ADDED", &ev);
        let parsed: Value = serde_json::from_slice(&partial).unwrap();
        assert_eq!(
            parsed,
            json!({"type": "ADDED", "object": {"kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}})
        );
        assert_eq!(partial, event_line(&info, Form::Metadata, "ADDED", &obj));
    }

    #[test]
    fn metadata_is_asked_for_with_as_partial_object_metadata() {
        let headers = |accept: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, accept.parse().unwrap());
            h
        };
        let q = Query::parse(None);
        for (accept, metadata) in [
            (
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
                true,
            ),
            (
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                true,
            ),
            (
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json",
                true,
            ),
            ("application/json", false),
            (
                "application/json,application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
                false,
            ),
        ] {
            assert_eq!(
                form(&headers(accept), &q) == Form::Metadata,
                metadata,
                "{accept}"
            );
        }
        assert!(matches!(
            form(&headers("application/json;as=Table;v=v1;g=meta.k8s.io"), &q),
            Form::Table(_)
        ));
        let status = json!({"kind": "Status", "status": "Success"});
        assert_eq!(partial_metadata(status.clone()), status);
    }
}

/// Bounded random-input robustness of every request-decoding path: bodies (JSON, YAML,
/// protobuf), patches, selectors, continue tokens and paths get mutated seeds and must give
/// an answer (a value or a 4xx `Status`), never a panic. Seeded, so a failure reproduces.
/// Not coverage-guided (cargo-fuzz needs a nightly toolchain this project does not have).
#[cfg(test)]
mod fuzz {
    use super::*;

    use skiff_api::testing::Rng;

    const SEEDS: &[&[u8]] = &[
        br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","labels":{"x":"y"}},"data":{"k":"v"}}"#,
        br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":2,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}"#,
        b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n",
        br#"[{"op":"replace","path":"/spec/replicas","value":3},{"op":"test","path":"/metadata/name","value":"d"}]"#,
        br#"{"metadata":{"labels":{"a":null}},"spec":{"replicas":1}}"#,
        br#"{"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"c"}],"containers":[{"$patch":"delete","name":"c"},{"name":"d","$retainKeys":["name"]}]}}}}"#,
        b"app in (a,b),tier!=x,!legacy,env",
        b"metadata.name=a,spec.nodeName!=n\\,1",
        b"/apis/apps/v1/namespaces/default/deployments/web/scale",
        b"k8s\x00\n\x0f\n\x02v1\x12\tConfigMap\x12\x0c\n\x03\n\x01a\x12\x05\n\x01k\x12\x00",
    ];

    fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
        let mut data = seed.to_vec();
        for _ in 0..=rng.below(8) {
            match rng.below(5) {
                0 if !data.is_empty() => {
                    let i = rng.below(data.len());
                    data[i] = rng.word() as u8;
                }
                1 if !data.is_empty() => {
                    let i = rng.below(data.len());
                    data.remove(i);
                }
                2 => {
                    let i = rng.below(data.len() + 1);
                    let tokens: &[&[u8]] = &[
                        b"{", b"}", b"[", b"]", b"\"", b":", b",", b"null", b"\\", b"(", b")",
                        b"=", b"!", b"\x00", b"\xff", b"-1", b"1e309",
                    ];
                    let t = tokens[rng.below(tokens.len())];
                    data.splice(i..i, t.iter().copied());
                }
                3 if data.len() > 1 => {
                    let cut = rng.below(data.len());
                    data.truncate(cut);
                }
                _ => {
                    let other = SEEDS[rng.below(SEEDS.len())];
                    let i = rng.below(data.len() + 1);
                    let j = rng.below(other.len() + 1);
                    data.splice(i..i, other[..j].iter().copied());
                }
            }
        }
        data
    }

    fn check(e: ApiError) {
        assert!(
            (400..500).contains(&e.code),
            "a client mistake answered {}: {}",
            e.code,
            e.message
        );
    }

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

    #[test]
    fn decoding_paths_never_panic_and_answer_4xx() {
        let registry = skiff_api::registry::Registry::builtin();
        let deploy = registry.get("apps", "v1", "deployments").cloned();
        let mut rng = Rng::seeded(0x5eed_cafe_f00d_d00d);
        for _ in 0..20_000 {
            let seed = SEEDS[rng.below(SEEDS.len())];
            let input = mutate(&mut rng, seed);
            for ct in [
                "application/json",
                "application/yaml",
                skiff_api::protobuf::CONTENT_TYPE,
            ] {
                if let Err(e) = decode_body(&input, ct) {
                    check(e);
                }
            }
            let mut target =
                serde_json::json!({"metadata": {"name": "d"}, "spec": {"replicas": 1}});
            for ct in [
                "application/merge-patch+json",
                "application/json-patch+json",
                "application/strategic-merge-patch+json",
            ] {
                let schema = deploy.as_ref().and_then(|d| Schemas::builtin().kind(d));
                if let Err(e) = apply_patch(&mut target, &input, ct, schema) {
                    check(e);
                }
            }
            let text = String::from_utf8_lossy(&input);
            let _ = skiff_api::selector::LabelSelector::parse(&text);
            if let Ok(fields) = skiff_api::selector::FieldSelector::parse(&text) {
                let _ = skiff_api::selector::check_fields("", "pods", &fields);
            }
            if let Err(e) = crate::objects::decode_continue(&text) {
                check(e);
            }
            let _ = crate::path::parse(&text);
            if let (Some(info), Ok(value)) = (&deploy, serde_json::from_slice::<Value>(&input)) {
                let mut obj = value.clone();
                if let Err(e) = meta::check_type(info, &mut obj) {
                    check(e);
                }
                let _ = (info.normalize)(&value);
            }
        }
    }
}

/// Upstream's `UpdatePodCondition` with `PodScheduled=True`: the transition time moves only
/// when the status changes.
fn set_pod_scheduled(pod: &mut Value) {
    let now = meta::timestamp(now());
    let status = &mut pod["status"];
    if !status.is_object() {
        *status = json!({});
    }
    let conditions = &mut status["conditions"];
    if !conditions.is_array() {
        *conditions = json!([]);
    }
    let Some(list) = conditions.as_array_mut() else {
        return;
    };
    match list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("PodScheduled"))
    {
        Some(c) => {
            if c.get("status").and_then(Value::as_str) != Some("True") {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!("True");
            if let Some(m) = c.as_object_mut() {
                m.remove("reason");
                m.remove("message");
            }
        }
        None => list.push(json!({
            "type": "PodScheduled", "status": "True",
            "lastProbeTime": null, "lastTransitionTime": now,
        })),
    }
}
