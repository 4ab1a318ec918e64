//! Strategic merge patch, applied as upstream's API server applies it
//! (`strategicpatch.StrategicMergeMapPatch`: `mergeMap`, `mergeSlice`,
//! `mergePatchIntoOriginal`, `normalizeElementOrder`, with parallel lists merged and unmatched
//! nulls ignored).
//!
//! - Maps merge recursively; `null` deletes a key.
//! - A list whose field has strategy `merge` and a merge key merges element-wise by that key;
//!   a `merge` list of primitives is a set union; every other list is replaced.
//! - Directives: `$patch: replace|delete` on a map, `{"<key>": .., "$patch": "delete"}` and
//!   `{"$patch": "replace"}` inside a merging list, `$retainKeys`, `$setElementOrder/<field>`,
//!   `$deleteFromPrimitiveList/<field>`.
//! - Order, as upstream: `$setElementOrder` first, then the order of the patch list, then that
//!   of the live list; a patch item the live list lacks comes before the live items it is not
//!   ordered against (so a new container without `$setElementOrder` goes first).
//!
//! A field the schema does not know, or a free-form object (RawExtension), is patched with
//! JSON merge patch (RFC 7386) semantics, as for an object without a schema at all. Errors
//! carry upstream's messages (`k8s.io/apimachinery/pkg/util/mergepatch/errors.go`). Input never
//! makes this panic: a bounded random-input test below checks.

use serde_json::{Map, Value};

use super::schema::Schema;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";
const SET_ELEMENT_ORDER: &str = "$setElementOrder";

/// Why a strategic merge patch cannot be applied. The messages are upstream's, Go's `%v`
/// rendering of the values included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmpError {
    #[error("invalid JSON document")]
    BadJsonDoc,
    /// The patch is JSON but not an object (Go's decoding error, as upstream answers it).
    #[error("json: cannot unmarshal {0} into Go value of type map[string]interface {{}}")]
    NotAnObject(&'static str),
    #[error("lists of lists are not supported")]
    NoListOfLists,
    #[error("invalid patch format of primitive list")]
    BadPatchFormatForPrimitiveList,
    #[error("invalid patch format of retainKeys")]
    BadPatchFormatForRetainKeys,
    #[error("invalid patch format of setElementOrder list")]
    BadPatchFormatForSetElementOrderList,
    #[error("map: {map} does not contain declared merge key: {key}")]
    NoMergeKey { map: String, key: String },
    #[error("expected a {expected}, but received a {actual}")]
    BadArgType {
        expected: &'static str,
        actual: &'static str,
    },
    #[error("unknown patch type: {directive} in map: {map}")]
    BadPatchType { directive: String, map: String },
    #[error("merging lists cannot yet be specified in the patch")]
    MergeListDirective,
    #[error("cannot merge lists without merge key for {0}")]
    NoMergeKeyDeclared(&'static str),
    #[error("list element types are not identical: {0}")]
    ElementTypesDiffer(String),
    #[error("no elements in any of the given slices")]
    NoElements,
    #[error("value for key {0} is not a map")]
    NotAMap(usize),
    #[error("The order in patch list:\n{patch}\n doesn't match $setElementOrder list:\n{order}\n")]
    OrderMismatch { patch: String, order: String },
    #[error("unable to find api field in struct {schema} for the json field {field:?}")]
    UnknownField { schema: String, field: String },
    #[error("expected slice or array type, but got: {0}")]
    NotASlice(&'static str),
}

impl SmpError {
    /// Whether upstream answers this 422 Unprocessable Entity (`interpretStrategicMergePatchError`);
    /// every other error is the client's malformed request (400).
    pub fn is_invalid(&self) -> bool {
        matches!(self, SmpError::NoListOfLists)
    }
}

type Result<T, E = SmpError> = std::result::Result<T, E>;

/// Applies the strategic merge patch `patch` to `original`, merging by the patch metadata of
/// `schema`, the root schema of the object's kind (see [`super::Schemas`]). Without a schema
/// (a kind skiff has no types for) the patch is applied as a JSON merge patch. The patch must
/// be a JSON object; `null`, as upstream decodes it, is an empty patch.
pub fn apply_strategic_merge_patch(
    original: &Value,
    patch: &Value,
    schema: Option<Schema<'_>>,
) -> Result<Value> {
    let patch = match patch {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        other => return Err(SmpError::NotAnObject(go_json_word(other))),
    };
    let Value::Object(original) = original else {
        return Err(SmpError::BadJsonDoc);
    };
    match schema {
        Some(schema) => merge_map(original.clone(), patch, schema).map(Value::Object),
        None => {
            let mut out = Value::Object(original.clone());
            json_patch::merge(&mut out, &Value::Object(patch));
            Ok(out)
        }
    }
}

/// Upstream's `mergeMap`.
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    schema: Schema<'_>,
) -> Result<Map<String, Value>> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            // Upstream leaves an empty map where the deleted one was.
            Some("delete") => Ok(Map::new()),
            _ => Err(bad_patch_type(directive, &patch)),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, schema)?;
    for (key, patch_v) in patch {
        let (key, is_delete_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            (
                extract_key(&key, DELETE_FROM_PRIMITIVE_LIST)?.to_owned(),
                true,
            )
        } else {
            (key, false)
        };
        if patch_v.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(original_v) = original.remove(&key) else {
            if !is_delete_list {
                if let Some(v) = cleaned(patch_v) {
                    original.insert(key, v);
                }
            }
            continue;
        };
        let merged = match (original_v, patch_v) {
            (Value::Object(o), Value::Object(p)) => merge_field_map(o, p, schema, &key)?,
            (Value::Array(o), Value::Array(p)) => {
                merge_field_list(o, p, schema, &key, is_delete_list)?
            }
            (o, p) if Kind::of(&o) == Kind::of(&p) => match remove_directives(p) {
                Some(v) => v,
                None => continue,
            },
            (o, _) if is_delete_list => o,
            (_, p) => match cleaned(p) {
                Some(v) => v,
                None => continue,
            },
        };
        original.insert(key, merged);
    }
    Ok(original)
}

/// A patch value taken as it is (the original has nothing to merge it with): nulls dropped,
/// directive maps removed. `None` when the value itself is a directive.
fn cleaned(mut v: Value) -> Option<Value> {
    discard_nulls(&mut v);
    remove_directives(v)
}

/// A map field: merged by its schema, replaced with strategy `replace`, JSON-merge-patched
/// when the schema does not know its fields.
fn merge_field_map(
    original: Map<String, Value>,
    patch: Map<String, Value>,
    schema: Schema<'_>,
    key: &str,
) -> Result<Value> {
    match schema.field(key) {
        Some((_, strategy)) if strategy.is_replace() => Ok(Value::Object(patch)),
        Some((sub, _)) => merge_maps(original, patch, Some(sub)).map(Value::Object),
        None => merge_maps(original, patch, None).map(Value::Object),
    }
}

/// Two maps, by their schema if it knows their fields, by JSON merge patch otherwise.
fn merge_maps(
    original: Map<String, Value>,
    patch: Map<String, Value>,
    schema: Option<Schema<'_>>,
) -> Result<Map<String, Value>> {
    match schema {
        Some(schema) if schema.has_fields() => merge_map(original, patch, schema),
        _ => {
            let mut out = Value::Object(original);
            json_patch::merge(&mut out, &Value::Object(patch));
            match out {
                Value::Object(m) => Ok(m),
                _ => Ok(Map::new()),
            }
        }
    }
}

/// A list field: merged when its strategy is `merge` (or it is a `$deleteFromPrimitiveList`),
/// replaced otherwise (and when the schema does not know it).
fn merge_field_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    schema: Schema<'_>,
    key: &str,
    is_delete_list: bool,
) -> Result<Value> {
    let Some((sub, strategy)) = schema.field(key) else {
        return Ok(Value::Array(patch));
    };
    if strategy.is_merge() || is_delete_list {
        let merge_key = strategy.merge_key.unwrap_or("");
        merge_slice(original, patch, sub.items(), merge_key, is_delete_list).map(Value::Array)
    } else {
        Ok(Value::Array(patch))
    }
}

/// Upstream's `mergeSlice`.
fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    elem: Option<Schema<'_>>,
    merge_key: &str,
    is_delete_list: bool,
) -> Result<Vec<Value>> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let kind = element_kind(&original, &patch)?;
    if kind != Kind::Map {
        if is_delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.contains(v))
                .collect());
        }
        let mut merged = original.clone();
        merged.extend(patch.iter().cloned());
        dedup(&mut merged);
        let (patch_items, server_only) = partition_primitives(merged, &patch);
        return normalize_element_order(patch_items, server_only, &patch, &original, "", kind);
    }
    if merge_key.is_empty() {
        return Err(SmpError::NoMergeKeyDeclared("struct"));
    }
    let (original, patch) = merge_special_elements(original, patch, merge_key)?;
    // The live order, after deletions: what server-only items are ordered by.
    let server_order = original.clone();
    let mut merged = original;
    for v in &patch {
        let Value::Object(item) = v else {
            return Err(bad_arg_type("map[string]interface {}", v));
        };
        let Some(value) = item.get(merge_key) else {
            return Err(no_merge_key(item, merge_key));
        };
        match find_by_key(&merged, merge_key, value)? {
            Some(i) => {
                let Value::Object(current) = std::mem::take(&mut merged[i]) else {
                    return Err(SmpError::NotAMap(i));
                };
                merged[i] = Value::Object(merge_maps(current, item.clone(), elem)?);
            }
            None => merged.push(v.clone()),
        }
    }
    let (patch_items, server_only) = partition_maps(merged, &patch, merge_key)?;
    normalize_element_order(
        patch_items,
        server_only,
        &patch,
        &server_order,
        merge_key,
        kind,
    )
}

/// Upstream's `mergeSliceWithSpecialElements`: applies the `$patch` elements of a merging
/// list of maps (deletions by merge key, `replace`), returning the live list and the patch
/// without them.
fn merge_special_elements(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for v in patch {
        let Some(directive) = v.get(DIRECTIVE) else {
            plain.push(v);
            continue;
        };
        match directive.as_str() {
            Some("delete") => match v.get(merge_key) {
                Some(value) => original.retain(|o| o.get(merge_key) != Some(value)),
                None => {
                    let map = v.as_object().cloned().unwrap_or_default();
                    return Err(no_merge_key(&map, merge_key));
                }
            },
            // Keep going: every other `$patch` element is pruned too.
            Some("replace") => replace = true,
            Some("merge") => return Err(SmpError::MergeListDirective),
            _ => {
                let map = v.as_object().cloned().unwrap_or_default();
                return Err(bad_patch_type(directive, &map));
            }
        }
    }
    if replace {
        Ok((plain, Vec::new()))
    } else {
        Ok((original, plain))
    }
}

/// Upstream's `applyRetainKeysDirective`: drops every key of `original` the `$retainKeys`
/// list does not name; every non-null key of the patch must be in that list.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<()> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(SmpError::BadPatchFormatForRetainKeys);
    };
    let retained = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !retained(k) {
            return Err(SmpError::BadPatchFormatForRetainKeys);
        }
    }
    original.retain(|k, _| retained(k));
    Ok(())
}

/// Upstream's `mergePatchIntoOriginal`: each `$setElementOrder/<field>` with its patch list,
/// merged and put in that order (`$setElementOrder` > patch order > live order). Both are
/// taken out of the patch.
fn merge_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    schema: Schema<'_>,
) -> Result<()> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for key in keys {
        let Some(order) = patch.remove(&key) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(bad_arg_type("[]interface {}", &order));
        };
        let field = extract_key(&key, SET_ELEMENT_ORDER)?.to_owned();
        let original_list = list_at(original, &field)?;
        let patch_list = list_at(patch, &field)?;
        let (sub, strategy) = slice_meta(schema, &field)?;
        let merge_key = strategy.merge_key.unwrap_or("");
        validate_patch_with_set_order(patch_list.as_deref().unwrap_or(&[]), &order, merge_key)?;
        let empty = Vec::new();
        let original_values = original_list.as_ref().unwrap_or(&empty);
        let patch_values = patch_list.as_ref().unwrap_or(&empty);
        let kind_inputs = (original_values.clone(), patch_values.clone());
        let merged = match (original_list.clone(), patch_list) {
            (Some(o), None) => o,
            (None, Some(p)) => p.into_iter().filter_map(remove_directives).collect(),
            (Some(o), Some(p)) if strategy.is_merge() => {
                merge_slice(o, p, sub.items(), merge_key, false)?
            }
            (Some(_), Some(p)) => p,
            (None, None) => continue,
        };
        let (patch_items, server_only) = if merge_key.is_empty() {
            partition_primitives(merged, &order)
        } else {
            partition_maps(merged, &order, merge_key)?
        };
        let kind = element_kind(&kind_inputs.0, &kind_inputs.1)?;
        let both = normalize_element_order(
            patch_items,
            server_only,
            &order,
            original_values,
            merge_key,
            kind,
        )?;
        original.insert(field.clone(), Value::Array(both));
        patch.remove(&field);
    }
    Ok(())
}

/// The list at `key`, if any; an error if something else is there.
fn list_at(map: &Map<String, Value>, key: &str) -> Result<Option<Vec<Value>>> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a.clone())),
        Some(other) => Err(bad_arg_type("[]interface {}", other)),
    }
}

/// The element schema and strategy of list field `field`, for a directive that names it: the
/// field must exist and be a list (upstream's `LookupPatchMetadataForSlice`).
fn slice_meta<'a>(
    schema: Schema<'a>,
    field: &str,
) -> Result<(Schema<'a>, super::meta::FieldStrategy)> {
    let Some((sub, strategy)) = schema.field(field) else {
        let name = schema.name().unwrap_or("struct");
        return Err(SmpError::UnknownField {
            schema: name.rsplit('.').next().unwrap_or(name).to_owned(),
            field: field.to_owned(),
        });
    };
    if sub.items().is_none() {
        return Err(SmpError::NotASlice(if schema.name().is_some() {
            "struct"
        } else {
            "map"
        }));
    }
    Ok((sub, strategy))
}

/// Upstream's `validatePatchWithSetOrderList`: the patch list's items (deletions aside) must
/// appear in the `$setElementOrder` list, in the same relative order.
fn validate_patch_with_set_order(patch: &[Value], order: &[Value], merge_key: &str) -> Result<()> {
    if order.is_empty() || patch.is_empty() {
        return Ok(());
    }
    let mut non_delete = Vec::with_capacity(patch.len());
    for v in patch {
        if !merge_key.is_empty() {
            if !v.is_object() {
                return Err(bad_arg_type("map[string]interface {}", v));
            }
            if is_delete_directive(v) {
                continue;
            }
        }
        non_delete.push(v);
    }
    let (mut p, mut o) = (0, 0);
    while p < non_delete.len() && o < order.len() {
        if non_delete[p].get(DIRECTIVE).is_some() {
            p += 1;
            continue;
        }
        if merge_key_value_equal(non_delete[p], &order[o], merge_key)? {
            p += 1;
        }
        o += 1;
    }
    if p < non_delete.len() && o >= order.len() {
        return Err(SmpError::OrderMismatch {
            patch: go_v(&Value::Array(patch.to_vec())),
            order: go_v(&Value::Array(order.to_vec())),
        });
    }
    Ok(())
}

fn merge_key_value_equal(left: &Value, right: &Value, merge_key: &str) -> Result<bool> {
    if merge_key.is_empty() {
        return Ok(left == right);
    }
    fn key_of<'a>(v: &'a Value, merge_key: &str) -> Result<&'a Value> {
        let Value::Object(m) = v else {
            return Err(bad_arg_type("map[string]interface {}", v));
        };
        m.get(merge_key).ok_or_else(|| no_merge_key(m, merge_key))
    }
    Ok(key_of(left, merge_key)? == key_of(right, merge_key)?)
}

/// Upstream's `normalizeElementOrder`: patch items sorted by the patch order, server-only items
/// by the live order, then interleaved.
fn normalize_element_order(
    patch: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>> {
    let patch = normalize_slice_order(patch, patch_order, merge_key, kind)?;
    let server_only = normalize_slice_order(server_only, server_order, merge_key, kind)?;
    Ok(merge_sorted(
        server_only,
        patch,
        server_order,
        merge_key,
        kind,
    ))
}

/// Upstream's `normalizeSliceOrder`: a stable sort by position in `order`, deletions last.
/// Every item is in `order` whenever this is called (the callers partition by it), so the
/// position is a total order; an item that is not sorts last.
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Result<Vec<Value>> {
    let (mut keep, delete) = if kind == Kind::Map {
        for v in to_sort.iter().chain(order) {
            let Value::Object(m) = v else {
                return Err(bad_arg_type("map[string]interface {}", v));
            };
            if !m.contains_key(merge_key) {
                return Err(no_merge_key(m, merge_key));
            }
        }
        to_sort.into_iter().partition(|v| !is_delete_directive(v))
    } else {
        (to_sort, Vec::new())
    };
    keep.sort_by_cached_key(|v| position(order, v, merge_key, kind).unwrap_or(usize::MAX));
    keep.extend(delete);
    Ok(keep)
}

/// Upstream's `mergeSortedSlice`: inserts the server-only items (`left`) among the patch items
/// (`right`), each before the first patch item it precedes in the live list; a patch item the
/// live list lacks goes before the server-only items still waiting.
fn merge_sorted(
    left: Vec<Value>,
    right: Vec<Value>,
    server_order: &[Value],
    merge_key: &str,
    kind: Kind,
) -> Vec<Value> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let mut left = left.into_iter().peekable();
    let mut right = right.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(l), Some(r)) => {
                match (
                    position(server_order, l, merge_key, kind),
                    position(server_order, r, merge_key, kind),
                ) {
                    (Some(li), Some(ri)) => li < ri,
                    _ => false,
                }
            }
        };
        let next = if take_left { left.next() } else { right.next() };
        out.extend(next);
    }
    out
}

/// Upstream's `index`: where `v` is in `list`, by merge key value for maps, by value otherwise.
fn position(list: &[Value], v: &Value, merge_key: &str, kind: Kind) -> Option<usize> {
    if kind == Kind::Map {
        fn key_of<'a>(x: &'a Value, merge_key: &str) -> Option<&'a Value> {
            x.as_object().and_then(|m| m.get(merge_key))
        }
        let wanted = key_of(v, merge_key);
        list.iter().position(|x| key_of(x, merge_key) == wanted)
    } else {
        list.iter().position(|x| x == v)
    }
}

fn partition_primitives(merged: Vec<Value>, by: &[Value]) -> (Vec<Value>, Vec<Value>) {
    merged.into_iter().partition(|v| by.contains(v))
}

/// Upstream's `partitionMapsByPresentInList`: the items whose merge key value is in `by`, and
/// the rest.
fn partition_maps(
    merged: Vec<Value>,
    by: &[Value],
    merge_key: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut present = Vec::with_capacity(merged.len());
    let mut rest = Vec::new();
    for v in merged {
        let Value::Object(m) = &v else {
            return Err(bad_arg_type("map[string]interface {}", &v));
        };
        let Some(value) = m.get(merge_key) else {
            return Err(no_merge_key(m, merge_key));
        };
        if find_by_key(by, merge_key, value)?.is_some() {
            present.push(v);
        } else {
            rest.push(v);
        }
    }
    Ok((present, rest))
}

/// Upstream's `findMapInSliceBasedOnKeyValue`: every element must be a map.
fn find_by_key(list: &[Value], merge_key: &str, value: &Value) -> Result<Option<usize>> {
    for (i, v) in list.iter().enumerate() {
        let Value::Object(m) = v else {
            return Err(SmpError::NotAMap(i));
        };
        if m.get(merge_key) == Some(value) {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

fn is_delete_directive(v: &Value) -> bool {
    v.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")
}

/// Upstream's `extractKey`: `$setElementOrder/containers` -> `containers`.
fn extract_key<'k>(key: &'k str, prefix: &str) -> Result<&'k str> {
    match key.split_once('/') {
        Some((p, rest)) if p == prefix => Ok(rest),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST => Err(SmpError::BadPatchFormatForPrimitiveList),
        _ => Err(SmpError::BadPatchFormatForSetElementOrderList),
    }
}

/// Removes the first duplicate of every repeated scalar (the result is ordered afterwards, so
/// which copy stays does not matter).
fn dedup(values: &mut Vec<Value>) {
    let mut out: Vec<Value> = Vec::with_capacity(values.len());
    for v in values.drain(..) {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    *values = out;
}

/// The Go type of a decoded JSON value, which upstream compares list elements by (integers
/// and floats are different types there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Map,
    List,
    String,
    Int,
    Float,
    Bool,
    Null,
}

impl Kind {
    fn of(v: &Value) -> Kind {
        match v {
            Value::Object(_) => Kind::Map,
            Value::Array(_) => Kind::List,
            Value::String(_) => Kind::String,
            Value::Number(n) if n.is_f64() => Kind::Float,
            Value::Number(_) => Kind::Int,
            Value::Bool(_) => Kind::Bool,
            Value::Null => Kind::Null,
        }
    }
}

/// Upstream's `sliceElementType`: the one element type of both lists.
fn element_kind(a: &[Value], b: &[Value]) -> Result<Kind> {
    let mut kind = None;
    for v in a.iter().chain(b) {
        let k = Kind::of(v);
        match kind {
            None if k == Kind::List => return Err(SmpError::NoListOfLists),
            None => kind = Some(k),
            Some(prev) if prev != k => {
                let lists = Value::Array(vec![Value::Array(a.to_vec()), Value::Array(b.to_vec())]);
                return Err(SmpError::ElementTypesDiffer(go_v(&lists)));
            }
            Some(_) => {}
        }
    }
    kind.ok_or(SmpError::NoElements)
}

/// Upstream's `removeDirectives`: `None` for a map carrying `$patch`, else the value without
/// such maps inside.
fn remove_directives(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) if m.contains_key(DIRECTIVE) => None,
        Value::Object(m) => Some(Value::Object(
            m.into_iter()
                .filter_map(|(k, v)| remove_directives(v).map(|v| (k, v)))
                .collect(),
        )),
        Value::Array(a) => Some(Value::Array(
            a.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// Upstream's `discardNullValuesFromPatch`: null-valued keys removed, at every depth.
fn discard_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(discard_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

fn no_merge_key(map: &Map<String, Value>, key: &str) -> SmpError {
    SmpError::NoMergeKey {
        map: go_v(&Value::Object(map.clone())),
        key: key.to_owned(),
    }
}

fn bad_patch_type(directive: &Value, map: &Map<String, Value>) -> SmpError {
    SmpError::BadPatchType {
        directive: go_s(directive),
        map: go_v(&Value::Object(map.clone())),
    }
}

fn bad_arg_type(expected: &'static str, actual: &Value) -> SmpError {
    SmpError::BadArgType {
        expected,
        actual: go_type(actual),
    }
}

/// The Go type name of a decoded JSON value, as `reflect.TypeOf(v)` prints it.
fn go_type(v: &Value) -> &'static str {
    match Kind::of(v) {
        Kind::Map => "map[string]interface {}",
        Kind::List => "[]interface {}",
        Kind::String => "string",
        Kind::Int => "int64",
        Kind::Float => "float64",
        Kind::Bool => "bool",
        Kind::Null => "%!s(<nil>)",
    }
}

/// The JSON kind word of Go's "cannot unmarshal X into" error.
fn go_json_word(v: &Value) -> &'static str {
    match v {
        Value::Array(_) => "array",
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

/// Go's `%v` of a decoded JSON value: `map[image:x name:a]`, `[a b]`, `<nil>`.
fn go_v(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_owned(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(go_v).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(m) => {
            let items: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{}", go_v(v))).collect();
            format!("map[{}]", items.join(" "))
        }
    }
}

/// Go's `%s` of a decoded JSON value: strings as they are, anything else flagged as Go does.
fn go_s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "%!s(<nil>)".to_owned(),
        Value::Object(_) | Value::Array(_) => go_v(v),
        other => format!("%!s({}={})", go_type(other), go_v(other)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::patch::Schemas;
    use crate::registry::Registry;

    /// The root schema of a served kind, by (group, version, plural).
    fn kind(group: &str, plural: &str) -> Schema<'static> {
        let registry = Registry::builtin();
        let version = if group.is_empty() || group == "apps" || group == "batch" {
            "v1"
        } else {
            "v2"
        };
        let info = registry.get(group, version, plural).expect("served kind");
        Schemas::builtin().kind(info).expect("schema")
    }

    fn smp(kind_of: (&str, &str), original: Value, patch: Value) -> Result<Value> {
        apply_strategic_merge_patch(&original, &patch, Some(kind(kind_of.0, kind_of.1)))
    }

    const DEPLOY: (&str, &str) = ("apps", "deployments");
    const POD: (&str, &str) = ("", "pods");
    const SERVICE: (&str, &str) = ("", "services");

    /// A Deployment whose pod template spec is `spec`.
    fn deploy(spec: Value) -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"template": {"spec": spec}}})
    }

    fn template_patch(spec: Value) -> Value {
        json!({"spec": {"template": {"spec": spec}}})
    }

    fn c(name: &str, image: &str) -> Value {
        json!({"name": name, "image": image})
    }

    /// (what, kind, original, patch, expected).
    type Case = (
        &'static str,
        (&'static str, &'static str),
        Value,
        Value,
        Value,
    );

    /// Every directive, every merge-key list of the core kinds, and the patches kubectl sends.
    fn cases() -> Vec<Case> {
        vec![
            (
                "maps merge recursively, null deletes a key",
                DEPLOY,
                json!({"metadata": {"name": "web", "labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 1}}),
                json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"replicas": 3}}),
                json!({"metadata": {"name": "web", "labels": {"b": "2", "c": "3"}}, "spec": {"replicas": 3}}),
            ),
            (
                "null for a missing key is ignored",
                DEPLOY,
                json!({"metadata": {"name": "web"}}),
                json!({"metadata": {"labels": null}, "spec": {"paused": null}}),
                // The map the null was in is added, as upstream adds it.
                json!({"metadata": {"name": "web"}, "spec": {}}),
            ),
            (
                "a whole new field is added, nulls and directives inside dropped",
                DEPLOY,
                deploy(json!({"containers": [c("a", "x")]})),
                template_patch(json!({"nodeSelector": {"disk": "ssd", "gone": null},
                    "affinity": {"podAffinity": {"$patch": "delete"}, "nodeAffinity": {}}})),
                deploy(
                    json!({"containers": [c("a", "x")], "nodeSelector": {"disk": "ssd"},
                    "affinity": {"nodeAffinity": {}}}),
                ),
            ),
            (
                "containers merge by name",
                DEPLOY,
                deploy(json!({"containers": [c("a", "x"), c("b", "y")]})),
                template_patch(json!({"containers": [{"name": "b", "image": "y2"}]})),
                deploy(json!({"containers": [c("a", "x"), c("b", "y2")]})),
            ),
            (
                "a new container without $setElementOrder goes first (upstream's order)",
                DEPLOY,
                deploy(json!({"containers": [c("a", "x"), c("b", "y")]})),
                template_patch(json!({"containers": [c("n", "z")]})),
                deploy(json!({"containers": [c("n", "z"), c("a", "x"), c("b", "y")]})),
            ),
            (
                "kubectl set image",
                DEPLOY,
                deploy(
                    json!({"containers": [{"name": "a", "image": "old", "ports": [{"containerPort": 80}]}]}),
                ),
                json!({"spec":{"template":{"spec":{"$setElementOrder/containers":[{"name":"a"}],"containers":[{"image":"x","name":"a"}]}}}}),
                deploy(
                    json!({"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80}]}]}),
                ),
            ),
            (
                "kubectl rollout restart",
                DEPLOY,
                json!({"metadata": {"name": "web"}, "spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}),
                json!({"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-12-01T21:00:00Z"}}}}}),
                json!({"metadata": {"name": "web"}, "spec": {"template": {"metadata": {"labels": {"app": "web"},
                    "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-12-01T21:00:00Z"}}}}}),
            ),
            (
                "kubectl rollout pause, then resume",
                DEPLOY,
                json!({"metadata": {"name": "web"}, "spec": {"paused": true}}),
                json!({"spec": {"paused": null}}),
                json!({"metadata": {"name": "web"}, "spec": {}}),
            ),
            (
                "apply removes a container ($patch: delete with $setElementOrder)",
                DEPLOY,
                deploy(json!({"containers": [c("a", "x"), c("b", "y")]})),
                template_patch(json!({"$setElementOrder/containers": [{"name": "a"}],
                    "containers": [{"$patch": "delete", "name": "b"}]})),
                deploy(json!({"containers": [c("a", "x")]})),
            ),
            (
                "apply removes an env var",
                DEPLOY,
                deploy(
                    json!({"containers": [{"name": "a", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}),
                ),
                template_patch(json!({"$setElementOrder/containers": [{"name": "a"}],
                    "containers": [{"name": "a", "$setElementOrder/env": [{"name": "A"}],
                        "env": [{"$patch": "delete", "name": "B"}]}]})),
                deploy(
                    json!({"containers": [{"name": "a", "env": [{"name": "A", "value": "1"}]}]}),
                ),
            ),
            (
                "$setElementOrder reorders, server-only items interleaved by live order",
                DEPLOY,
                deploy(json!({"containers": [c("a", "1"), c("b", "2"), c("s", "9"), c("c", "3")]})),
                template_patch(
                    json!({"$setElementOrder/containers": [{"name": "c"}, {"name": "n"}, {"name": "a"}],
                    "containers": [c("n", "4")]}),
                ),
                deploy(
                    json!({"containers": [c("b", "2"), c("s", "9"), c("c", "3"), c("n", "4"), c("a", "1")]}),
                ),
            ),
            (
                "$setElementOrder without the list only reorders",
                DEPLOY,
                deploy(json!({"containers": [c("a", "1"), c("b", "2")]})),
                template_patch(
                    json!({"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}),
                ),
                deploy(json!({"containers": [c("b", "2"), c("a", "1")]})),
            ),
            (
                "$setElementOrder for a list the object lacks adds it without directives",
                DEPLOY,
                deploy(json!({"containers": [{"name": "a"}]})),
                template_patch(json!({"$setElementOrder/containers": [{"name": "a"}],
                    "containers": [{"name": "a", "$setElementOrder/env": [{"name": "X"}],
                        "env": [{"name": "X", "value": "1"}, {"name": "Y", "$patch": "delete"}]}]})),
                deploy(
                    json!({"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}]}),
                ),
            ),
            (
                "initContainers merge by name",
                POD,
                json!({"spec": {"initContainers": [c("i", "x")], "containers": [c("a", "x")]}}),
                json!({"spec": {"initContainers": [{"name": "i", "image": "y"}]}}),
                json!({"spec": {"initContainers": [c("i", "y")], "containers": [c("a", "x")]}}),
            ),
            (
                "ports merge by containerPort",
                POD,
                json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}]}}),
                json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "web"}]}]}}),
                json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "web"}, {"containerPort": 443}]}]}}),
            ),
            (
                "volumeMounts merge by mountPath",
                POD,
                json!({"spec": {"containers": [{"name": "a", "volumeMounts": [{"mountPath": "/d", "name": "v"}]}]}}),
                json!({"spec": {"containers": [{"name": "a", "volumeMounts": [{"mountPath": "/d", "readOnly": true}, {"mountPath": "/e", "name": "w"}]}]}}),
                json!({"spec": {"containers": [{"name": "a", "volumeMounts": [{"mountPath": "/d", "name": "v", "readOnly": true}, {"mountPath": "/e", "name": "w"}]}]}}),
            ),
            (
                "volumes merge by name and honour $retainKeys",
                POD,
                json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}, {"name": "w", "emptyDir": {}}]}}),
                json!({"spec": {"$setElementOrder/volumes": [{"name": "v"}, {"name": "w"}],
                    "volumes": [{"$retainKeys": ["configMap", "name"], "name": "v", "configMap": {"name": "cm"}}]}}),
                json!({"spec": {"volumes": [{"name": "v", "configMap": {"name": "cm"}}, {"name": "w", "emptyDir": {}}]}}),
            ),
            (
                "deployment strategy retainKeys drops rollingUpdate",
                DEPLOY,
                json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
                json!({"spec": {"strategy": {"type": "Recreate"}}}),
            ),
            (
                "tolerations are replaced whole (no merge strategy)",
                POD,
                json!({"spec": {"tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]}}),
                json!({"spec": {"tolerations": [{"key": "c", "operator": "Exists"}]}}),
                json!({"spec": {"tolerations": [{"key": "c", "operator": "Exists"}]}}),
            ),
            (
                "container args are replaced whole",
                POD,
                json!({"spec": {"containers": [{"name": "a", "args": ["x", "y"]}]}}),
                json!({"spec": {"containers": [{"name": "a", "args": ["z"]}]}}),
                json!({"spec": {"containers": [{"name": "a", "args": ["z"]}]}}),
            ),
            (
                "imagePullSecrets merge by name",
                POD,
                json!({"spec": {"imagePullSecrets": [{"name": "a"}]}}),
                json!({"spec": {"imagePullSecrets": [{"name": "b"}, {"name": "a"}]}}),
                json!({"spec": {"imagePullSecrets": [{"name": "b"}, {"name": "a"}]}}),
            ),
            (
                "finalizers are a set",
                POD,
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"finalizers": ["b", "c"]}}),
                json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
            ),
            (
                "$deleteFromPrimitiveList removes from a set",
                POD,
                json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"], "finalizers": ["d"]}}),
                json!({"metadata": {"finalizers": ["d", "a", "c"]}}),
            ),
            (
                "apply removes a finalizer",
                POD,
                json!({"metadata": {"finalizers": ["a", "b"]}}),
                json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"], "$setElementOrder/finalizers": ["a"]}}),
                json!({"metadata": {"finalizers": ["a"]}}),
            ),
            (
                "$setElementOrder of primitives",
                POD,
                json!({"metadata": {"finalizers": ["a", "b", "c"]}}),
                json!({"metadata": {"$setElementOrder/finalizers": ["c", "a", "b"]}}),
                json!({"metadata": {"finalizers": ["c", "a", "b"]}}),
            ),
            (
                "ownerReferences merge by uid",
                POD,
                json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "rs", "kind": "ReplicaSet", "apiVersion": "apps/v1"}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}, {"$patch": "delete", "uid": "2"}]}}),
                json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "rs", "kind": "ReplicaSet", "apiVersion": "apps/v1", "controller": true}]}}),
            ),
            (
                "conditions merge by type",
                DEPLOY,
                json!({"status": {"conditions": [{"type": "Available", "status": "False"}, {"type": "Progressing", "status": "True"}]}}),
                json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}}),
                json!({"status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}}),
            ),
            (
                "pod conditions merge by type",
                POD,
                json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]}}),
                json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}]}}),
            ),
            (
                "service ports merge by port",
                SERVICE,
                json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}}),
                json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
                json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
            ),
            (
                "$patch: replace on a map",
                DEPLOY,
                json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
                json!({"metadata": {"labels": {"$patch": "replace", "c": "3"}}}),
                json!({"metadata": {"labels": {"c": "3"}}}),
            ),
            (
                "$patch: delete on a map leaves an empty map, as upstream",
                DEPLOY,
                json!({"metadata": {"labels": {"a": "1"}}}),
                json!({"metadata": {"labels": {"$patch": "delete"}}}),
                json!({"metadata": {"labels": {}}}),
            ),
            (
                "$patch: replace inside a merging list",
                DEPLOY,
                deploy(json!({"containers": [c("a", "x"), c("b", "y")]})),
                template_patch(json!({"containers": [c("z", "1"), {"$patch": "replace"}]})),
                deploy(json!({"containers": [c("z", "1")]})),
            ),
            (
                "a field the schema does not know is merge-patched",
                DEPLOY,
                json!({"spec": {"x": {"a": 1, "b": [1, 2]}}}),
                json!({"spec": {"x": {"a": null, "b": [3], "c": {"d": null}}}}),
                json!({"spec": {"x": {"b": [3], "c": {}}}}),
            ),
            (
                "a free-form object (RawExtension) is merge-patched",
                ("apps", "controllerrevisions"),
                json!({"data": {"spec": {"a": 1, "b": 2}}, "revision": 1}),
                json!({"data": {"spec": {"a": null, "c": 3}}}),
                json!({"data": {"spec": {"b": 2, "c": 3}}, "revision": 1}),
            ),
            (
                "a value of another type replaces",
                DEPLOY,
                json!({"metadata": {"labels": {"a": "1"}}}),
                json!({"metadata": {"labels": "x"}}),
                json!({"metadata": {"labels": "x"}}),
            ),
        ]
    }

    #[test]
    fn patches_apply_as_upstream() {
        for (what, kind_of, original, patch, expected) in cases() {
            let got = smp(kind_of, original, patch).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(got, expected, "{what}");
        }
    }

    #[test]
    fn the_scale_subresource_patches_by_its_schema() {
        let scale = Schemas::builtin().scale();
        let original = json!({"kind": "Scale", "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let got = apply_strategic_merge_patch(&original, &json!({"spec": {"replicas": 3}}), scale);
        assert_eq!(
            got.unwrap(),
            json!({"kind": "Scale", "spec": {"replicas": 3}, "status": {"replicas": 1}})
        );
    }

    #[test]
    fn without_a_schema_it_is_a_json_merge_patch() {
        let original = json!({"spec": {"list": [1, 2], "keep": 1, "gone": 2}});
        let patch = json!({"spec": {"list": [3], "gone": null, "$patch": "x"}});
        let got = apply_strategic_merge_patch(&original, &patch, None).unwrap();
        assert_eq!(
            got,
            json!({"spec": {"list": [3], "keep": 1, "$patch": "x"}})
        );
    }

    #[test]
    fn a_null_patch_changes_nothing_as_upstream() {
        let original = json!({"metadata": {"name": "a"}});
        let got = apply_strategic_merge_patch(&original, &Value::Null, Some(kind("", "pods")));
        assert_eq!(got.unwrap(), original);
    }

    #[test]
    fn errors_carry_upstream_messages() {
        let mut two = deploy(json!({"containers": [c("a", "x"), c("b", "y")]}));
        two["spec"]["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}});
        let cases: Vec<(&str, Value, Value, &str)> = vec![
            (
                "a patch that is not an object",
                two.clone(),
                json!([1]),
                "json: cannot unmarshal array into Go value of type map[string]interface {}",
            ),
            (
                "an unknown $patch on a map",
                two.clone(),
                json!({"metadata": {"$patch": "frob"}}),
                "unknown patch type: frob in map: map[$patch:frob]",
            ),
            (
                "an unknown $patch in a list",
                two.clone(),
                template_patch(json!({"containers": [{"name": "a", "$patch": "frob"}]})),
                "unknown patch type: frob in map: map[$patch:frob name:a]",
            ),
            (
                "$patch: merge on a map (upstream knows only replace and delete there)",
                json!({"metadata": {"labels": {"a": "1"}}}),
                json!({"metadata": {"labels": {"$patch": "merge"}}}),
                "unknown patch type: merge in map: map[$patch:merge]",
            ),
            (
                "$patch: merge in a list",
                two.clone(),
                template_patch(json!({"containers": [{"$patch": "merge"}]})),
                "merging lists cannot yet be specified in the patch",
            ),
            (
                "a delete directive without the merge key",
                two.clone(),
                template_patch(json!({"containers": [{"$patch": "delete", "image": "x"}]})),
                "map: map[$patch:delete image:x] does not contain declared merge key: name",
            ),
            (
                "a merging list element without the merge key",
                two.clone(),
                template_patch(json!({"containers": [{"image": "x"}]})),
                "map: map[image:x] does not contain declared merge key: name",
            ),
            (
                "$setElementOrder that is not a list",
                two.clone(),
                template_patch(json!({"$setElementOrder/containers": {"name": "a"}})),
                "expected a []interface {}, but received a map[string]interface {}",
            ),
            (
                "$setElementOrder without a field",
                two.clone(),
                template_patch(json!({"$setElementOrder": [{"name": "a"}]})),
                "invalid patch format of setElementOrder list",
            ),
            (
                "$setElementOrder contradicting the patch list",
                two.clone(),
                template_patch(json!({"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                    "containers": [{"name": "b"}, {"name": "a"}]})),
                "The order in patch list:\n[map[name:b] map[name:a]]\n doesn't match $setElementOrder list:\n[map[name:a] map[name:b]]\n",
            ),
            (
                "$setElementOrder of a field the kind lacks",
                two.clone(),
                template_patch(json!({"$setElementOrder/sidecars": [{"name": "a"}]})),
                "unable to find api field in struct PodSpec for the json field \"sidecars\"",
            ),
            (
                "$deleteFromPrimitiveList without a field",
                two.clone(),
                json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
                "invalid patch format of primitive list",
            ),
            (
                "$retainKeys that is not a list",
                two.clone(),
                json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
                "invalid patch format of retainKeys",
            ),
            (
                "a patch key missing from $retainKeys",
                two.clone(),
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
                "invalid patch format of retainKeys",
            ),
            (
                "a list of lists in a merging list",
                json!({"metadata": {"finalizers": ["a"]}}),
                json!({"metadata": {"finalizers": [["b"]]}}),
                "list element types are not identical: [[a] [[b]]]",
            ),
            (
                "only lists in a merging list",
                json!({"metadata": {"finalizers": [["a"]]}}),
                json!({"metadata": {"finalizers": [["b"]]}}),
                "lists of lists are not supported",
            ),
        ];
        for (what, original, patch, message) in cases {
            let err = smp(DEPLOY, original, patch).expect_err(what);
            assert_eq!(err.to_string(), message, "{what}");
        }
        assert!(SmpError::NoListOfLists.is_invalid());
        assert!(!SmpError::BadPatchFormatForRetainKeys.is_invalid());
    }

    /// Nearly the deepest JSON serde_json parses (128 levels), in a known map and in an unknown
    /// field, both patching a value as deep: no stack overflow.
    #[test]
    fn deeply_nested_patches_are_fine() {
        let deep = |leaf: &str| {
            let mut text = leaf.to_owned();
            for _ in 0..120 {
                text = format!(r#"{{"x":{text}}}"#);
            }
            serde_json::from_str::<Value>(&text).unwrap()
        };
        let original = json!({"metadata": {"labels": deep("1")}, "spec": {"y": deep("2")}});
        let patch = json!({"metadata": {"labels": deep("null")}, "spec": {"y": deep("3")}});
        let got = smp(DEPLOY, original, patch).unwrap();
        assert_eq!(got["spec"]["y"], deep("3"));
    }

    use crate::testing::Rng;

    /// A random value built from the words a strategic merge patch is made of.
    fn random_value(rng: &mut Rng, depth: usize) -> Value {
        const KEYS: &[&str] = &[
            "spec",
            "template",
            "containers",
            "initContainers",
            "volumes",
            "env",
            "ports",
            "name",
            "image",
            "containerPort",
            "metadata",
            "labels",
            "finalizers",
            "ownerReferences",
            "uid",
            "strategy",
            "type",
            "rollingUpdate",
            "tolerations",
            "$patch",
            "$retainKeys",
            "$setElementOrder/containers",
            "$setElementOrder/env",
            "$setElementOrder/finalizers",
            "$deleteFromPrimitiveList/finalizers",
            "$setElementOrder",
            "$deleteFromPrimitiveList",
            "status",
            "conditions",
            "x",
        ];
        const WORDS: &[&str] = &["delete", "replace", "merge", "a", "b", "name", "type", ""];
        match rng.below(if depth == 0 { 4 } else { 7 }) {
            0 => Value::Null,
            1 => json!(rng.below(3) as i64 - 1),
            2 => json!(WORDS[rng.below(WORDS.len())]),
            3 => json!(rng.below(2) == 0),
            4 | 5 => {
                let mut m = Map::new();
                for _ in 0..rng.below(4) {
                    let k = KEYS[rng.below(KEYS.len())];
                    m.insert(k.to_owned(), random_value(rng, depth - 1));
                }
                Value::Object(m)
            }
            _ => Value::Array(
                (0..rng.below(4))
                    .map(|_| random_value(rng, depth - 1))
                    .collect(),
            ),
        }
    }

    /// Puts `v` somewhere in `target` (or replaces it), so seeds get mutated in place.
    fn graft(rng: &mut Rng, target: &mut Value, v: Value) {
        match target {
            Value::Object(m) if !m.is_empty() && rng.below(3) > 0 => {
                let i = rng.below(m.len());
                if let Some(child) = m.values_mut().nth(i) {
                    graft(rng, child, v);
                }
            }
            Value::Array(a) if !a.is_empty() && rng.below(3) > 0 => {
                let i = rng.below(a.len());
                graft(rng, &mut a[i], v);
            }
            Value::Object(m) if rng.below(2) == 0 => {
                m.insert("$patch".to_owned(), v);
            }
            _ => *target = v,
        }
    }

    /// Bounded random-input robustness: mutated patches (seeded, so a failure reproduces)
    /// against live objects of several kinds give a value or an error, never a panic.
    #[test]
    fn random_patches_never_panic() {
        let mut seeds: Vec<(Value, Value)> =
            cases().into_iter().map(|(_, _, o, p, _)| (o, p)).collect();
        seeds.push((
            deploy(json!({"containers": [c("a", "x"), c("b", "y")]})),
            template_patch(json!({"$setElementOrder/containers": [{"name": "a"}],
                "containers": [{"$patch": "delete", "name": "b"}]})),
        ));
        let kinds = [DEPLOY, POD, SERVICE, ("apps", "controllerrevisions")];
        let mut rng = Rng::seeded(0x5eed_5a7e_91c0_ffee);
        let (mut ok, mut failed) = (0, 0);
        for _ in 0..20_000 {
            let (mut original, mut patch) = seeds[rng.below(seeds.len())].clone();
            for _ in 0..=rng.below(4) {
                let v = random_value(&mut rng, 3);
                if rng.below(4) == 0 {
                    graft(&mut rng, &mut original, v);
                } else {
                    graft(&mut rng, &mut patch, v);
                }
            }
            let schema = match rng.below(kinds.len() + 1) {
                0 => None,
                i => Some(kind(kinds[i - 1].0, kinds[i - 1].1)),
            };
            match apply_strategic_merge_patch(&original, &patch, schema) {
                Ok(_) => ok += 1,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    failed += 1;
                }
            }
        }
        // Both outcomes are exercised, or the mutations are too tame (or too wild) to test much.
        assert!(ok > 1000 && failed > 1000, "ok {ok}, failed {failed}");
    }
}
