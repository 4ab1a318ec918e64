//! Entry points for the fuzz targets of `fuzz/` (cargo feature `fuzzing`): the
//! request-decoding and patch paths of [`crate::http`], which are private otherwise, each as
//! a request reaches it but without a server or a datastore.
//!
//! Not part of skiff's API: only the fuzz targets enable the feature, and these functions
//! change whenever the paths they reach do. Each answers a value or the `Status` the server
//! would send; a client's input must never make one panic or answer anything but a 4xx.

use serde_json::Value;
use skiff_api::meta;
use skiff_api::patch::Schema;
use skiff_api::registry::ResourceInfo;
use skiff_api::status::ApiError;

use crate::http::{self, Query};

/// A create or update body of `content_type` (JSON, YAML or protobuf), decoded.
pub fn decode_body(bytes: &[u8], content_type: &str) -> Result<Value, ApiError> {
    http::decode_body(bytes, content_type)
}

/// A create body as the server takes it before defaulting and validation: decoded, its
/// `apiVersion` and `kind` checked against `info`, normalized through the kind's type with
/// the `fieldValidation` of `query` (a raw query string).
pub fn create_body(
    info: &ResourceInfo,
    bytes: &[u8],
    content_type: &str,
    query: &str,
) -> Result<Value, ApiError> {
    let query = Query::parse(Some(query));
    let mut obj = http::decode_body(bytes, content_type)?;
    meta::check_type(info, &mut obj)?;
    http::normalize(info, &query, obj).map(|(obj, _warnings)| obj)
}

/// A JSON patch, merge patch or strategic merge patch (by `content_type`) applied to `obj`,
/// following `schema` for a strategic merge patch. On an error `obj` is left as it was.
pub fn apply_patch(
    obj: &mut Value,
    body: &[u8],
    content_type: &str,
    schema: Option<Schema<'_>>,
) -> Result<(), ApiError> {
    http::patch::apply_patch(obj, body, content_type, schema)
}

/// A PATCH of the object `name` of `info`'s kind as the server computes it before defaulting
/// and writing: `body` applied to `current` with the kind's strategic-merge schema, the
/// result's name and type checked, then normalized through the kind's type.
pub fn patch(
    info: &ResourceInfo,
    name: &str,
    current: &Value,
    body: &[u8],
    content_type: &str,
) -> Result<Value, ApiError> {
    let patched = http::patch::patched(info, name, current, body, content_type)?;
    http::normalize(info, &Query::default(), patched).map(|(obj, _warnings)| obj)
}

/// The options a list, watch or delete of `info`'s kind reads from `query` (a raw query
/// string) and a delete's `body`: label and field selectors (checked against the kind's
/// fields), `limit`, `timeoutSeconds`, the `continue` token, `dryRun` and the delete options.
pub fn request_options(info: &ResourceInfo, query: &str, body: &[u8]) -> Result<(), ApiError> {
    let query = Query::parse(Some(query));
    http::selectors(info, &query)?;
    query.int("limit")?;
    query.int("timeoutSeconds")?;
    if let Some(token) = query.get("continue") {
        crate::objects::decode_continue(token)?;
    }
    query.dry_run()?;
    http::delete::delete_request(&query, body)?;
    Ok(())
}
