//! Objects over the datastore: the generic REST storage every kind shares (upstream's
//! `apiserver/pkg/registry/generic/registry.Store`): get, create, update with optimistic
//! concurrency, delete with finalizers and grace, and consistent paginated lists. Objects
//! are stored as JSON without `resourceVersion`, which is the store's mod revision and is
//! set on every read. Every object is stored in its storage version and converted on the
//! way in and out (`skiff_api::conversion`): callers see and give objects in the version of
//! the `ResourceInfo` they pass.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use skiff_api::registry::ResourceInfo;
use skiff_api::status::ApiError;
use skiff_api::{conversion, meta};
use skiff_store::{Error as StoreError, Revision, Store};

/// The message of a request that met the datastore closing (the server shutting down).
pub const STORE_CLOSED: &str = "the datastore is closed: the server is shutting down";

/// Maps a datastore error about `name` of `info` to the API's answer.
pub fn store_error(info: &ResourceInfo, name: &str, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound { .. } => ApiError::not_found(info.group, info.plural, name),
        StoreError::KeyExists { .. } => ApiError::already_exists(info.group, info.plural, name),
        StoreError::Conflict { .. } => ApiError::conflict(info.group, info.plural, name),
        StoreError::Compacted {
            requested,
            compacted,
        } => ApiError::expired(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        StoreError::FutureRevision { requested, .. } => ApiError::timeout(format!(
            "Too large resource version: {requested}, current: unknown"
        )),
        StoreError::InvalidValue { reason, .. } => {
            let mut e = ApiError::too_large(skiff_store::MAX_VALUE_BYTES);
            e.message = format!("Request entity too large: {reason}");
            e
        }
        e @ (StoreError::Unavailable(_) | StoreError::WatcherTooSlow { .. }) => {
            ApiError::service_unavailable(e.to_string())
        }
        StoreError::Closed => ApiError::service_unavailable(STORE_CLOSED),
        other => ApiError::internal(other.to_string()),
    }
}

/// An object as read: its JSON (with `resourceVersion` set) and its revision.
#[derive(Clone, Debug)]
pub struct Stored {
    pub obj: Value,
    pub rev: Revision,
}

pub fn decode(info: &ResourceInfo, bytes: &[u8], rev: Revision) -> Result<Value, ApiError> {
    let mut obj: Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::internal(format!("stored {} cannot be decoded: {e}", info.plural))
    })?;
    meta::set_resource_version(&mut obj, rev);
    Ok(obj)
}

/// A stored object (as [`decode`] gives it) in the version of `info`.
pub fn view(info: &ResourceInfo, stored: Value) -> Result<Value, ApiError> {
    conversion::from_storage(info, stored).map_err(|e| {
        ApiError::internal(format!(
            "stored {} cannot be converted to {}: {e}",
            info.plural,
            info.api_version()
        ))
    })
}

/// An object in the version of `info` as it is stored. A failure is the client's: what it
/// sent cannot be represented in the storage version. An object converted to the storage
/// version gets that version's defaults too (upstream applies them when it decodes the
/// stored object): what it carried in annotations, such as an HPA's behavior, is completed.
/// Borrowed as it is (no copy) for the kinds stored as served.
fn to_storage<'a>(info: &ResourceInfo, obj: &'a Value) -> Result<Cow<'a, Value>, ApiError> {
    if conversion::is_identity(info) {
        return Ok(Cow::Borrowed(obj));
    }
    let kind = info.kind;
    let mut stored = conversion::to_storage(info, obj.clone()).map_err(|e| {
        ApiError::bad_request(format!(
            "{kind} in version \"{}\" cannot be handled as a {kind}: {e}",
            info.version
        ))
    })?;
    if !conversion::is_storage_version(info) {
        let storage = conversion::storage_resource(info);
        skiff_api::defaults::apply(storage.group, storage.version, storage.kind, &mut stored);
    }
    Ok(Cow::Owned(stored))
}

/// What a write answers: the object as stored, read back in the version of `info` (so the
/// answer is what a get would show), at `rev`. Without conversion (`stored` is `None`), the
/// object as given.
fn written(
    info: &ResourceInfo,
    given: Value,
    stored: Option<Value>,
    rev: Option<Revision>,
) -> Result<Value, ApiError> {
    let mut obj = match stored {
        None => given,
        Some(stored) => view(info, stored)?,
    };
    if let Some(rev) = rev {
        meta::set_resource_version(&mut obj, rev);
    }
    Ok(obj)
}

/// The converted object, if conversion made one.
fn owned(stored: Cow<'_, Value>) -> Option<Value> {
    match stored {
        Cow::Borrowed(_) => None,
        Cow::Owned(v) => Some(v),
    }
}

/// Whether storing `new` over `current` would store what is stored already: the objects are
/// equal but for `metadata.resourceVersion`, which is never stored. Upstream's
/// `GuaranteedUpdate` (etcd3 `store.go`) encodes the new object with its resourceVersion
/// cleared and, when the bytes are the stored ones, writes nothing and answers the stored
/// object; this is that comparison on the decoded objects (no encoding, no copy).
pub fn unchanged(current: &Value, new: &Value) -> bool {
    equal_but_metadata(current, new, &["resourceVersion"])
}

/// Upstream's `IgnoreManagedFieldsTimestampsTransformer`: when `new` differs from `current`
/// only in the times of its managed fields (as many entries, in the same order, each equal
/// but for its `time`; the rest of the object equal), it gets `current`'s times back, so
/// that a write changing nothing else is seen as the no-op it is ([`unchanged`]). An entry
/// added or removed, or any other change, leaves `new` as it is.
pub fn keep_managed_fields_times(current: &Value, new: &mut Value) {
    let managed = |o: &Value| {
        o.pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .cloned()
    };
    let (Some(old), Some(now)) = (
        current
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array),
        new.pointer("/metadata/managedFields")
            .and_then(Value::as_array),
    ) else {
        return;
    };
    if old.is_empty() || old.len() != now.len() {
        return;
    }
    let mut times_moved = false;
    for (a, b) in old.iter().zip(now) {
        if !equal_but(a, b, &["time"]) {
            return;
        }
        times_moved |= a.get("time") != b.get("time");
    }
    if !times_moved || !equal_but_metadata(current, new, &["resourceVersion", "managedFields"]) {
        return;
    }
    if let (Some(old), Some(m)) = (
        managed(current),
        new.get_mut("metadata").and_then(Value::as_object_mut),
    ) {
        m.insert("managedFields".into(), Value::Array(old));
    }
}

/// `a == b` for objects but for their members `skip` (non-objects: `a == b`).
fn equal_but(a: &Value, b: &Value, skip: &[&str]) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    let counted = |m: &serde_json::Map<String, Value>| {
        m.keys().filter(|k| !skip.contains(&k.as_str())).count()
    };
    counted(a) == counted(b)
        && a.iter()
            .filter(|(k, _)| !skip.contains(&k.as_str()))
            .all(|(k, v)| b.get(k) == Some(v))
}

/// `a == b` for objects but for the members `skip` of their `metadata`.
fn equal_but_metadata(a: &Value, b: &Value, skip: &[&str]) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    a.len() == b.len()
        && a.iter().all(|(k, v)| match b.get(k) {
            None => false,
            Some(w) if k == "metadata" => equal_but(v, w, skip),
            Some(w) => v == w,
        })
}

/// An object as stored: its JSON without `metadata.resourceVersion` (the store's revision is
/// the resourceVersion; it is never stored).
fn encode(obj: &Value) -> Result<Bytes, ApiError> {
    Ok(encode_with_slot(obj)?.0)
}

/// Where `metadata.resourceVersion` goes in an object's stored bytes: the offset, and whether
/// it comes after another member (then it is written `,"resourceVersion":"N"`) or is first
/// with another member after it (`"resourceVersion":"N",`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RvSlot {
    at: usize,
    after_member: bool,
    before_member: bool,
}

/// [`encode`], also telling where the resourceVersion goes, so that the answer to a write
/// is the stored bytes with it spliced in rather than a second encoding of the object.
/// `None` when the object has no metadata map (then there is nothing to splice into).
/// Written out by hand for the two levels it changes, as serde_json's compact form, without
/// copying the object.
fn encode_with_slot(obj: &Value) -> Result<(Bytes, Option<RvSlot>), ApiError> {
    let bad = |e: serde_json::Error| ApiError::internal(format!("encoding: {e}"));
    let mut out = Vec::with_capacity(1024);
    let Value::Object(top) = obj else {
        serde_json::to_writer(&mut out, obj).map_err(bad)?;
        return Ok((Bytes::from(out), None));
    };
    let mut slot = None;
    out.push(b'{');
    for (i, (k, v)) in top.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, k).map_err(bad)?;
        out.push(b':');
        let meta = match v {
            Value::Object(meta) if k == "metadata" => meta,
            other => {
                serde_json::to_writer(&mut out, other).map_err(bad)?;
                continue;
            }
        };
        out.push(b'{');
        let mut written = false;
        // Keys iterate in order (the map is sorted): the slot is before the first key after
        // `resourceVersion`, or at the end.
        for (mk, mv) in meta {
            if mk == "resourceVersion" {
                continue;
            }
            if slot.is_none() && mk.as_str() > "resourceVersion" {
                slot = Some(RvSlot {
                    at: out.len(),
                    after_member: written,
                    before_member: !written,
                });
            }
            if written {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, mk).map_err(bad)?;
            out.push(b':');
            serde_json::to_writer(&mut out, mv).map_err(bad)?;
            written = true;
        }
        if slot.is_none() {
            slot = Some(RvSlot {
                at: out.len(),
                after_member: written,
                before_member: false,
            });
        }
        out.push(b'}');
    }
    out.push(b'}');
    Ok((Bytes::from(out), slot))
}

/// The stored bytes with `metadata.resourceVersion` set to `rev`: the same bytes as encoding
/// the object with it.
fn insert_resource_version(bytes: &[u8], slot: RvSlot, rev: Revision) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 40);
    out.extend_from_slice(&bytes[..slot.at]);
    if slot.after_member {
        out.push(b',');
    }
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(rev.to_string().as_bytes());
    out.extend_from_slice(b"\"");
    if slot.before_member {
        out.push(b',');
    }
    out.extend_from_slice(&bytes[slot.at..]);
    out
}

/// An object's stored JSON with its `resourceVersion` set, without decoding more than its
/// metadata: the top-level fields are carried as raw JSON, only `metadata` is parsed (and
/// returned, for selectors). This is what makes large lists cheap.
pub fn splice_resource_version(
    info: &ResourceInfo,
    bytes: &[u8],
    rev: Revision,
) -> Result<(Vec<u8>, Value), ApiError> {
    use serde_json::value::RawValue;
    let bad = |e: serde_json::Error| {
        ApiError::internal(format!("stored {} cannot be decoded: {e}", info.plural))
    };
    let mut fields: std::collections::BTreeMap<&str, &RawValue> =
        serde_json::from_slice(bytes).map_err(bad)?;
    let mut metadata: Value = match fields.get("metadata") {
        Some(raw) => serde_json::from_str(raw.get()).map_err(bad)?,
        None => json!({}),
    };
    match metadata.as_object_mut() {
        Some(m) => {
            m.insert("resourceVersion".into(), Value::String(rev.to_string()));
        }
        None => {
            return Err(ApiError::internal(format!(
                "stored {} has metadata that is not an object",
                info.plural
            )))
        }
    }
    // The object as serde_json writes the map (keys in order), the new metadata in place of
    // the old, the other fields as they were stored: no second parse, no copy of the map.
    if !fields.contains_key("metadata") {
        let placeholder: &RawValue = serde_json::from_str("{}").map_err(bad)?;
        fields.insert("metadata", placeholder);
    }
    let mut out = Vec::with_capacity(bytes.len() + 48);
    out.push(b'{');
    for (i, (key, raw)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut out, key).map_err(bad)?;
        out.push(b':');
        if *key == "metadata" {
            serde_json::to_writer(&mut out, &metadata).map_err(bad)?;
        } else {
            out.extend_from_slice(raw.get().as_bytes());
        }
    }
    out.push(b'}');
    Ok((out, metadata))
}

/// How a delete goes.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// Only delete this version (`preconditions.resourceVersion`).
    pub resource_version: Option<String>,
    /// Only delete this object (`preconditions.uid`).
    pub uid: Option<String>,
    /// `Orphan`, `Background` or `Foreground`.
    pub propagation: Option<String>,
    pub grace_period_seconds: Option<i64>,
    pub dry_run: bool,
}

/// What a delete did.
pub enum Deleted {
    /// The object is gone: here is its last state.
    Gone(Value),
    /// The object was marked for deletion (finalizers or grace) and is still there.
    Marked(Value),
}

/// A page of a list, as JSON bytes per object.
pub struct RawPage {
    pub items: Vec<Vec<u8>>,
    pub revision: Revision,
    pub continue_token: Option<String>,
}

/// A page of a list.
pub struct Page {
    pub items: Vec<Value>,
    pub revision: Revision,
    pub continue_token: Option<String>,
    pub remaining: Option<i64>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    v: String,
    rv: Revision,
    start: String,
}

pub fn encode_continue(rv: Revision, last_key: &str) -> String {
    let token = ContinueToken {
        v: "meta.k8s.io/v1".into(),
        rv,
        start: last_key.to_owned(),
    };
    let json = serde_json::to_vec(&token).unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(json)
}

pub fn decode_continue(token: &str) -> Result<(Revision, String), ApiError> {
    let bad = || {
        ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if t.v != "meta.k8s.io/v1" || t.rv <= 0 || t.start.is_empty() {
        return Err(bad());
    }
    Ok((t.rv, t.start))
}

/// The generic storage of every kind.
#[derive(Clone)]
pub struct Objects {
    pub store: Arc<dyn Store>,
    /// Service allocations, released when a Service is removed.
    pub services: Option<crate::services::Allocator>,
}

impl Objects {
    pub async fn get(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Stored, ApiError> {
        self.try_get(info, ns, name)
            .await?
            .ok_or_else(|| ApiError::not_found(info.group, info.plural, name))
    }

    pub async fn try_get(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<Stored>, ApiError> {
        let key = info.key(ns, name);
        match self
            .store
            .get(&key)
            .await
            .map_err(|e| store_error(info, name, e))?
        {
            Some(kv) => Ok(Some(Stored {
                obj: view(info, decode(info, &kv.value, kv.mod_revision)?)?,
                rev: kv.mod_revision,
            })),
            None => Ok(None),
        }
    }

    /// Stores a new object (already prepared and validated). With `dry_run` nothing is stored
    /// and the answer is the object as it would be.
    pub async fn create(
        &self,
        info: &ResourceInfo,
        obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        Ok(self.create_json(info, obj, dry_run).await?.0)
    }

    /// [`Objects::create`], also giving the created object's JSON when it is the stored bytes
    /// with the resourceVersion spliced in (no conversion, not a dry run), so the answer
    /// need not encode the object again.
    pub async fn create_json(
        &self,
        info: &ResourceInfo,
        obj: Value,
        dry_run: bool,
    ) -> Result<(Value, Option<Vec<u8>>), ApiError> {
        let name = meta::name(&obj).to_owned();
        let ns = meta::namespace(&obj).to_owned();
        let key = info.key(Some(&ns), &name);
        let stored = to_storage(info, &obj)?;
        let (bytes, slot) = encode_with_slot(&stored)?;
        // Only where the answer is the given object itself.
        let slot = slot.filter(|_| matches!(stored, Cow::Borrowed(_)));
        let stored = owned(stored);
        if dry_run {
            if self
                .store
                .get(&key)
                .await
                .map_err(|e| store_error(info, &name, e))?
                .is_some()
            {
                return Err(ApiError::already_exists(info.group, info.plural, &name));
            }
            return Ok((written(info, obj, stored, None)?, None));
        }
        let rev = self
            .store
            .create(&key, bytes.clone())
            .await
            .map_err(|e| store_error(info, &name, e))?;
        let json = slot.map(|slot| insert_resource_version(&bytes, slot, rev));
        Ok((written(info, obj, stored, Some(rev))?, json))
    }

    /// Replaces an object if it is still at `expected`.
    pub async fn replace(
        &self,
        info: &ResourceInfo,
        obj: Value,
        expected: Revision,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let name = meta::name(&obj).to_owned();
        let ns = meta::namespace(&obj).to_owned();
        let key = info.key(Some(&ns), &name);
        let stored = to_storage(info, &obj)?;
        let bytes = encode(&stored)?;
        let stored = owned(stored);
        if dry_run {
            return written(info, obj, stored, Some(expected));
        }
        let rev = self
            .store
            .update(&key, bytes, expected)
            .await
            .map_err(|e| store_error(info, &name, e))?;
        written(info, obj, stored, Some(rev))
    }

    /// Removes an object at `expected` for good.
    pub async fn remove(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        expected: Revision,
    ) -> Result<Value, ApiError> {
        let key = info.key(ns, name);
        let (_, prev) = self
            .store
            .delete(&key, Some(expected))
            .await
            .map_err(|e| store_error(info, name, e))?;
        let gone = view(info, decode(info, &prev.value, prev.mod_revision)?)?;
        if info.group.is_empty() && info.plural == "services" {
            if let Some(alloc) = &self.services {
                alloc.release(&gone).await;
            }
        }
        Ok(gone)
    }

    /// Reads, changes and writes an object, retrying when another writer got there first
    /// (upstream's GuaranteedUpdate). `change` gets the current object; it answers the new
    /// one, or `None` to leave it as it is. A new object that is the current one (see
    /// [`unchanged`]) is not written either.
    pub async fn update_with<F>(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        dry_run: bool,
        mut change: F,
    ) -> Result<Value, ApiError>
    where
        F: FnMut(&Stored) -> Result<Option<Value>, ApiError>,
    {
        for _ in 0..16 {
            let current = self.get(info, ns, name).await?;
            let Some(new) = change(&current)? else {
                return Ok(current.obj);
            };
            let mut new = new;
            keep_managed_fields_times(&current.obj, &mut new);
            if unchanged(&current.obj, &new) {
                return Ok(current.obj);
            }
            match self.replace(info, new, current.rev, dry_run).await {
                Err(e) if e.code == 409 && e.reason == "Conflict" => continue,
                other => return other,
            }
        }
        Err(ApiError::conflict(info.group, info.plural, name))
    }

    /// Deletes an object as upstream does: refused on failed preconditions; marked (not
    /// removed) while it has finalizers, or a grace period for a pod bound to a node.
    pub async fn delete(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Deleted, ApiError> {
        for _ in 0..16 {
            let current = self.get(info, ns, name).await?;
            if let Some(rv) = &opts.resource_version {
                if rv != &current.rev.to_string() {
                    return Err(ApiError::conflict_msg(
                        info.group,
                        info.plural,
                        name,
                        &format!(
                            "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                            current.rev
                        ),
                    ));
                }
            }
            if let Some(uid) = &opts.uid {
                if uid != meta::uid(&current.obj) {
                    return Err(ApiError::conflict_msg(
                        info.group,
                        info.plural,
                        name,
                        &format!(
                            "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                            meta::uid(&current.obj)
                        ),
                    ));
                }
            }
            let mut obj = current.obj.clone();
            let graceful = graceful_seconds(info, &obj, opts.grace_period_seconds);
            // A pod whose graceful deletion is under way keeps its finalizers (upstream's
            // `errAlreadyDeleting`); anything else gets the garbage collector's finalizers
            // the delete asks for.
            let finalizers = if meta::is_deleting(&obj) && graceful.is_some() {
                meta::finalizers(&obj)
            } else {
                gc_finalizers(&meta::finalizers(&obj), opts.propagation.as_deref())
            };
            if finalizers.is_empty() && graceful.is_none() {
                if opts.dry_run {
                    return Ok(Deleted::Gone(obj));
                }
                match self.remove(info, ns, name, current.rev).await {
                    Ok(gone) => return Ok(Deleted::Gone(gone)),
                    Err(e) if e.code == 409 => continue,
                    Err(e) => return Err(e),
                }
            }
            // Mark for deletion: the finalizers' owners (or the kubelet) finish it.
            let m = meta::metadata_mut(&mut obj)?;
            let first_mark = !m.contains_key("deletionTimestamp");
            if first_mark {
                let grace = graceful.unwrap_or(0);
                let at = now + chrono::Duration::seconds(grace);
                m.insert("deletionTimestamp".into(), json!(meta::timestamp(at)));
                m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            } else if let Some(g) = graceful {
                // A second delete may only shorten the grace period.
                let old = m
                    .get("deletionGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                if g < old {
                    m.insert("deletionGracePeriodSeconds".into(), json!(g));
                    m.insert(
                        "deletionTimestamp".into(),
                        json!(meta::timestamp(now + chrono::Duration::seconds(g))),
                    );
                }
            }
            if finalizers.is_empty() {
                m.remove("finalizers");
            } else {
                m.insert("finalizers".into(), json!(finalizers));
            }
            // The generation counts the mark once (upstream's `markAsDeleting` and
            // `BeforeDelete`): a delete repeated while finalizers hold the object changes
            // nothing, and writes nothing.
            if first_mark && m.get("generation").is_some() {
                let g = m.get("generation").and_then(Value::as_i64).unwrap_or(0);
                m.insert("generation".into(), json!(g + 1));
            }
            if obj == current.obj {
                return Ok(Deleted::Marked(current.obj));
            }
            match self.replace(info, obj, current.rev, opts.dry_run).await {
                // The garbage collector (skiff-controllers) sees the mark in its watch.
                Ok(marked) => return Ok(Deleted::Marked(marked)),
                Err(e) if e.code == 409 => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::conflict(info.group, info.plural, name))
    }

    /// Like [`Objects::list`], but answers each object as JSON bytes and decodes only its
    /// metadata, which `keep` gets (wrapped as `{"metadata": ...}`) to select on. Kinds
    /// stored in another version than `info`'s are decoded and converted instead (`keep`
    /// then gets the whole object).
    pub async fn list_raw(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        limit: usize,
        continue_token: Option<&str>,
        at: Option<Revision>,
        keep: &(dyn Fn(&Value) -> Result<bool, ApiError> + Send + Sync),
    ) -> Result<RawPage, ApiError> {
        let prefix = info.list_prefix(ns);
        let (mut revision, mut start) = match continue_token {
            Some(token) => {
                let (rv, start) = decode_continue(token)?;
                (Some(rv), Some(start))
            }
            None => (at, None),
        };
        let mut items = Vec::new();
        loop {
            let want = if limit == 0 {
                0
            } else {
                (limit - items.len()).max(1)
            };
            let page = self.store.range(&prefix, start.as_deref(), want, revision).await.map_err(|e| match e {
                StoreError::Compacted { .. } if continue_token.is_some() => ApiError::expired(
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ),
                other => store_error(info, "", other),
            })?;
            revision = Some(page.revision);
            let mut last_key = None;
            let identity = conversion::is_identity(info);
            for kv in &page.kvs {
                last_key = Some(kv.key.clone());
                if identity {
                    let (bytes, metadata) =
                        splice_resource_version(info, &kv.value, kv.mod_revision)?;
                    if keep(&json!({ "metadata": metadata }))? {
                        items.push(bytes);
                    }
                    continue;
                }
                let obj = view(info, decode(info, &kv.value, kv.mod_revision)?)?;
                if keep(&obj)? {
                    items.push(
                        serde_json::to_vec(&obj)
                            .map_err(|e| ApiError::internal(format!("encoding: {e}")))?,
                    );
                }
            }
            if !page.more {
                return Ok(RawPage {
                    items,
                    revision: page.revision,
                    continue_token: None,
                });
            }
            start = last_key.clone().or(start);
            if limit > 0 && items.len() >= limit {
                return Ok(RawPage {
                    items,
                    revision: page.revision,
                    continue_token: Some(encode_continue(
                        page.revision,
                        start.as_deref().unwrap_or_default(),
                    )),
                });
            }
        }
    }

    /// Every stored object of `info`, as stored (bytes, not decoded), `page` at a time.
    pub fn stored_pages<'a>(
        &'a self,
        info: &'a ResourceInfo,
        page: usize,
    ) -> impl futures::Stream<Item = Result<Vec<skiff_store::KeyValue>, ApiError>> + Send + 'a {
        let prefix = info.list_prefix(None);
        // The state: the key to continue after, or `None` once the last page was read.
        futures::stream::try_unfold(Some((None::<String>, None::<Revision>)), move |state| {
            let prefix = prefix.clone();
            async move {
                let Some((after, at)) = state else {
                    return Ok(None);
                };
                let read = self
                    .store
                    .range(&prefix, after.as_deref(), page, at)
                    .await
                    .map_err(|e| store_error(info, "", e))?;
                let next = match read.kvs.last() {
                    Some(last) if read.more => Some((Some(last.key.clone()), Some(read.revision))),
                    _ => None,
                };
                Ok(Some((read.kvs, next)))
            }
        })
    }

    /// A page of objects of `info` in `ns` (all namespaces when `None`) that pass `keep`,
    /// read at `at` (now when `None`), starting after the continue token's key.
    pub async fn list(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        limit: usize,
        continue_token: Option<&str>,
        at: Option<Revision>,
        keep: &(dyn Fn(&Value) -> Result<bool, ApiError> + Send + Sync),
    ) -> Result<Page, ApiError> {
        let prefix = info.list_prefix(ns);
        let (mut revision, mut start) = match continue_token {
            Some(token) => {
                let (rv, start) = decode_continue(token)?;
                (Some(rv), Some(start))
            }
            None => (at, None),
        };
        let mut items = Vec::new();
        let mut last_key = None;
        loop {
            // Fetch a little more than needed: filtered-out objects do not count.
            let want = if limit == 0 {
                0
            } else {
                (limit - items.len()).max(1)
            };
            let page = self
                .store
                .range(&prefix, start.as_deref(), want, revision)
                .await
                .map_err(|e| match e {
                    StoreError::Compacted { .. } if continue_token.is_some() => ApiError::expired(
                        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                    ),
                    other => store_error(info, "", other),
                })?;
            revision = Some(page.revision);
            for kv in &page.kvs {
                let obj = view(info, decode(info, &kv.value, kv.mod_revision)?)?;
                last_key = Some(kv.key.clone());
                if keep(&obj)? {
                    items.push(obj);
                }
            }
            if !page.more {
                return Ok(Page {
                    items,
                    revision: page.revision,
                    continue_token: None,
                    remaining: None,
                });
            }
            start = last_key.clone();
            if limit > 0 && items.len() >= limit {
                let key = last_key.unwrap_or_default();
                return Ok(Page {
                    items,
                    revision: page.revision,
                    continue_token: Some(encode_continue(page.revision, &key)),
                    remaining: None,
                });
            }
        }
    }
}

/// The grace period a delete waits for, if any: only pods bound to a node wait (for their
/// kubelet to stop them); everything else goes at once.
/// Upstream's `deletionFinalizersForGarbageCollection`: the object's finalizers with the
/// garbage collector's as the delete's propagationPolicy says (`Orphan`: `orphan`,
/// `Foreground`: `foregroundDeletion`, `Background`: neither), or, when it says nothing, as
/// the first of the two the object has says. Unchanged as a set, the list is kept as it is.
pub fn gc_finalizers(current: &[String], propagation: Option<&str>) -> Vec<String> {
    const ORPHAN: &str = "orphan";
    const FOREGROUND: &str = "foregroundDeletion";
    let (orphan, foreground) = match propagation {
        Some("Orphan") => (true, false),
        Some("Foreground") => (false, true),
        Some(_) => (false, false),
        None => match current.iter().find(|f| *f == ORPHAN || *f == FOREGROUND) {
            Some(f) if f == ORPHAN => (true, false),
            Some(_) => (false, true),
            None => (false, false),
        },
    };
    let mut wanted: Vec<String> = current
        .iter()
        .filter(|f| *f != ORPHAN && *f != FOREGROUND)
        .cloned()
        .collect();
    if orphan {
        wanted.push(ORPHAN.to_owned());
    }
    if foreground {
        wanted.push(FOREGROUND.to_owned());
    }
    let set = |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<_>>();
    if set(&wanted) == set(current) {
        current.to_vec()
    } else {
        wanted
    }
}

fn graceful_seconds(info: &ResourceInfo, obj: &Value, requested: Option<i64>) -> Option<i64> {
    if !info.group.is_empty() || info.plural != "pods" {
        return None;
    }
    let bound = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    let phase = obj
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !bound || phase == "Succeeded" || phase == "Failed" {
        return None;
    }
    let default = obj
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(30);
    match requested.unwrap_or(default) {
        0 => None,
        g => Some(g.max(1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delete_sets_the_garbage_collectors_finalizers_as_upstream() {
        let v = |f: &[&str]| f.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>();
        let cases: &[(&[&str], Option<&str>, &[&str])] = &[
            (&[], None, &[]),
            (&[], Some("Background"), &[]),
            (&[], Some("Orphan"), &["orphan"]),
            (&[], Some("Foreground"), &["foregroundDeletion"]),
            (
                &["x/keep"],
                Some("Foreground"),
                &["x/keep", "foregroundDeletion"],
            ),
            // Another policy replaces the one marked before; background removes both.
            (
                &["foregroundDeletion", "x/keep"],
                Some("Orphan"),
                &["x/keep", "orphan"],
            ),
            (&["orphan", "x/keep"], Some("Background"), &["x/keep"]),
            // No policy: the object's own finalizer says, the first of the two if both.
            (&["orphan"], None, &["orphan"]),
            (
                &["foregroundDeletion", "orphan"],
                None,
                &["foregroundDeletion"],
            ),
            // Unchanged as a set: the order is kept.
            (&["orphan", "x/keep"], Some("Orphan"), &["orphan", "x/keep"]),
        ];
        for (current, policy, want) in cases {
            assert_eq!(
                gc_finalizers(&v(current), *policy),
                v(want),
                "{current:?} {policy:?}"
            );
        }
    }

    /// The answer built from the stored bytes is byte for byte the encoding of the object
    /// with its resourceVersion, wherever the resourceVersion sorts among the metadata.
    #[test]
    fn stored_bytes_with_the_resource_version_are_the_encoded_answer() {
        let objects = [
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "a", "namespace": "d", "uid": "u", "creationTimestamp": "t",
                    "managedFields": [{"manager": "m"}]}, "data": {"k": "v\"\n"}}),
            serde_json::json!({"kind": "X", "metadata": {}}),
            serde_json::json!({"kind": "X", "metadata": {"name": "only-before"}}),
            serde_json::json!({"kind": "X", "metadata": {"uid": "only-after", "selfLink": "s"}}),
            serde_json::json!({"kind": "X", "metadata": {"name": "n", "resourceVersion": "7", "uid": "u"}}),
            serde_json::json!({"a": 1, "metadata": {"annotations": {"resourceVersion": "x"}}, "z": [null]}),
        ];
        // What is stored: the object without its resourceVersion, as serde_json encodes it.
        let without = |obj: &Value| {
            let mut obj = obj.clone();
            if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            serde_json::to_vec(&obj).unwrap()
        };
        for obj in objects {
            let (bytes, slot) = encode_with_slot(&obj).unwrap();
            assert_eq!(bytes, without(&obj), "{obj}");
            let mut expected = obj.clone();
            meta::set_resource_version(&mut expected, 12345);
            let spliced = insert_resource_version(&bytes, slot.expect("a metadata map"), 12345);
            assert_eq!(
                String::from_utf8(spliced).unwrap(),
                serde_json::to_string(&expected).unwrap(),
                "{obj}"
            );
        }
        // Without a metadata map there is nowhere to splice.
        for obj in [
            serde_json::json!({"kind": "X"}),
            serde_json::json!({"metadata": 1}),
            serde_json::json!([1]),
        ] {
            let (bytes, slot) = encode_with_slot(&obj).unwrap();
            assert_eq!(bytes, without(&obj));
            assert_eq!(slot, None, "{obj}");
        }
    }

    #[test]
    fn an_object_differing_only_in_its_resource_version_is_unchanged() {
        let current = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "resourceVersion": "7", "labels": {"a": "b"}},
            "data": {"k": "v"}});
        let mut same = current.clone();
        same["metadata"]["resourceVersion"] = json!("3");
        assert!(unchanged(&current, &same));
        // Without one (a write that names none) it is the same object too.
        if let Some(m) = same["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        assert!(unchanged(&current, &same));
        assert!(unchanged(&same, &current));
        for changed in [
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "resourceVersion": "7", "labels": {"a": "b"}},
                "data": {"k": "w"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "resourceVersion": "7", "labels": {"a": "c"}},
                "data": {"k": "v"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "resourceVersion": "7"}, "data": {"k": "v"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "resourceVersion": "7", "labels": {"a": "b"}},
                "data": {"k": "v"}, "immutable": true}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"},
                "metadata": {"name": "c", "resourceVersion": "7", "labels": {"a": "b"},
                    "managedFields": [{"manager": "m", "operation": "Update",
                        "time": "2026-01-01T00:00:00Z"}]}}),
        ] {
            assert!(!unchanged(&current, &changed), "{changed}");
            assert!(!unchanged(&changed, &current), "{changed}");
        }
        // A nested resourceVersion is data like any other.
        let nested =
            json!({"metadata": {"name": "r"}, "data": {"metadata": {"resourceVersion": "1"}}});
        let mut other = nested.clone();
        other["data"]["metadata"]["resourceVersion"] = json!("2");
        assert!(!unchanged(&nested, &other));
    }

    #[test]
    fn managed_fields_times_alone_are_no_change() {
        let entry = |manager: &str, time: &str| {
            json!({"manager": manager, "operation": "Apply", "apiVersion": "v1", "time": time,
                "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:k": {}}}})
        };
        let object = |data: &str, entries: Vec<Value>| {
            json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": data},
                "metadata": {"name": "c", "resourceVersion": "5", "managedFields": entries}})
        };
        let current = object(
            "v",
            vec![
                entry("a", "2026-01-01T00:00:00Z"),
                entry("b", "2026-01-02T00:00:00Z"),
            ],
        );
        // Only a time moved: the old times come back, and the write is a no-op.
        let mut new = object(
            "v",
            vec![
                entry("a", "2026-12-07T02:00:00Z"),
                entry("b", "2026-01-02T00:00:00Z"),
            ],
        );
        new["metadata"]["resourceVersion"] = json!("4");
        keep_managed_fields_times(&current, &mut new);
        assert_eq!(
            new["metadata"]["managedFields"],
            current["metadata"]["managedFields"]
        );
        assert!(unchanged(&current, &new));
        // Anything else changed too, or an entry more: the times stand.
        for mut other in [
            object(
                "w",
                vec![
                    entry("a", "2026-12-07T02:00:00Z"),
                    entry("b", "2026-01-02T00:00:00Z"),
                ],
            ),
            object("v", vec![entry("a", "2026-12-07T02:00:00Z")]),
            object(
                "v",
                vec![
                    entry("a", "2026-12-07T02:00:00Z"),
                    entry("b", "2026-01-02T00:00:00Z"),
                    entry("c", "2026-12-07T02:00:00Z"),
                ],
            ),
            object(
                "v",
                vec![
                    entry("a", "2026-12-07T02:00:00Z"),
                    entry("c", "2026-01-02T00:00:00Z"),
                ],
            ),
        ] {
            let before = other.clone();
            keep_managed_fields_times(&current, &mut other);
            assert_eq!(other, before);
            assert!(!unchanged(&current, &other));
        }
    }

    #[test]
    fn splicing_sets_the_resource_version_and_keeps_the_rest() {
        let reg = skiff_api::registry::Registry::builtin();
        let info = reg.get("apps", "v1", "controllerrevisions").unwrap();
        // A nested "metadata" (in the revision's data) must stay as it is.
        let stored = br#"{"apiVersion":"apps/v1","data":{"metadata":{"name":"inner"}},"kind":"ControllerRevision","metadata":{"name":"r","labels":{"a":"b"}},"revision":3}"#;
        let (bytes, metadata) = splice_resource_version(info, stored, 42).unwrap();
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["metadata"]["resourceVersion"], "42");
        assert_eq!(v["data"]["metadata"], json!({"name": "inner"}));
        assert_eq!(v["revision"], 3);
        assert_eq!(metadata["labels"]["a"], "b");
        // Byte for byte what encoding the object with its resourceVersion gives, with or
        // without metadata stored.
        let mut obj: Value = serde_json::from_slice(stored).unwrap();
        obj["metadata"]["resourceVersion"] = json!("42");
        assert_eq!(bytes, serde_json::to_vec(&obj).unwrap());
        let (bytes, _) =
            splice_resource_version(info, br#"{"kind":"K","spec":{"a":[1]}}"#, 7).unwrap();
        assert_eq!(
            bytes,
            br#"{"kind":"K","metadata":{"resourceVersion":"7"},"spec":{"a":[1]}}"#
        );
        assert!(splice_resource_version(info, b"[1]", 1).is_err());
        assert!(splice_resource_version(info, br#"{"metadata":5}"#, 1).is_err());
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "/pods/default/web");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "/pods/default/web".to_owned())
        );
        for bad in [
            "",
            "!!!",
            "e30=",
            &base64::engine::general_purpose::STANDARD
                .encode(b"{\"v\":\"x\",\"rv\":1,\"start\":\"a\"}"),
        ] {
            assert_eq!(decode_continue(bad).unwrap_err().code, 400, "{bad}");
        }
    }
}
