//! The HTTP surface: routes requests to discovery or to a resource's verbs, decodes bodies,
//! negotiates the answer's form (object, list or `Table`), and turns every refusal into a
//! `Status`. Upstream counterpart: `apiserver/pkg/endpoints/handlers`.
//!
//! This module is the entry ([`handle`]), what every verb shares (the request's `Ctx`,
//! `Query`, bodies, answers) and routing; each verb family is a submodule with its own
//! `impl Ctx` block, named as upstream's handler files: `get`, `list`, `watch`, `create`,
//! `update` (also the write path of every change to an existing object), `patch` (with
//! server-side apply), `delete`, and the subresources `scale`, `pods` (binding,
//! eviction) and `connect` (pods' log, exec, attach and portforward, proxied to the
//! kubelet).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use skiff_api::apply as ssa;
use skiff_api::meta;
use skiff_api::registry::{unknown_fields, ResourceInfo, Subresource};
use skiff_api::selector::{FieldSelector, LabelSelector};
use skiff_api::status::{ApiError, Cause};
use skiff_api::table;

use crate::discovery;
use crate::path::{self, Route, Target};
use crate::App;

mod connect;
mod create;
pub(crate) mod delete;
mod get;
mod list;
pub(crate) mod patch;
mod pods;
mod scale;
mod update;
mod watch;

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
    if let Some(sub) = sub.filter(|s| s.is_connect()) {
        // Answered by the pod's kubelet; the body (if any) is the upgraded stream's.
        let name = target.name.clone().ok_or_else(ApiError::not_found_path)?;
        let ns = ns.unwrap_or_default();
        return connect::serve(app, &info, &ns, &name, sub, parts).await;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
    use super::patch::apply_patch;
    use super::*;

    use skiff_api::patch::Schemas;
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
