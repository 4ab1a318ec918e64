//! `metadata.managedFields`: who owns which fields, updated on every write. Counterpart:
//! `k8s.io/apiserver/pkg/endpoints/handlers/fieldmanager` (the managers chain: strip meta,
//! managed-fields updater, build manager info) over structured-merge-diff's `merge.Updater`
//! (`Update`, `Apply`, `prune`, conflicts).
//!
//! Not done (yet) as upstream: converting between a kind's versions (every manager's set is taken at the object's own version), and
//! the client-side-apply `last-applied-configuration` upgrade path.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use super::fieldpath::{path_string, Path, PathElement, Set};
use super::schema::{GoField, Ty};
use super::typed::{
    added_or_modified_v1, compare, ensure_named_fields_are_members, merge, remove_items,
    to_field_set, Comparison,
};
use super::Error;

/// Upstream's `DefaultMaxUpdateManagers`: more Update entries than this are merged, oldest
/// first, into one `ancient-changes` entry per API version.
pub const MAX_UPDATE_MANAGERS: usize = 10;

/// The manager the oldest Update entries are merged into.
pub const ANCIENT_CHANGES: &str = "ancient-changes";

/// Upstream's `FieldManagerMaxLength`.
pub const FIELD_MANAGER_MAX_LENGTH: usize = 128;

/// The operation of a managed-fields entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Who writes: a manager identity as upstream keys it (`BuildManagerIdentifier`): appliers by
/// name and subresource, updaters also by API version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ManagerId {
    pub manager: String,
    pub operation: Operation,
    /// Empty for appliers (their identity does not change with the version they apply at).
    pub api_version: String,
    pub subresource: String,
}

impl ManagerId {
    /// Upstream's identifier string (the entry without fields and time, as Go's JSON), which
    /// orders the managers of a conflict message.
    fn identifier(&self) -> String {
        let mut s = format!(
            "{{\"manager\":{},\"operation\":\"{}\"",
            Value::String(self.manager.clone()),
            self.operation.as_str()
        );
        if !self.api_version.is_empty() {
            s.push_str(&format!(
                ",\"apiVersion\":{}",
                Value::String(self.api_version.clone())
            ));
        }
        if !self.subresource.is_empty() {
            s.push_str(&format!(
                ",\"subresource\":{}",
                Value::String(self.subresource.clone())
            ));
        }
        s.push('}');
        s
    }
}

/// Upstream's `printManager`: `"kubectl"`, `"kube-controller-manager" with subresource
/// "status"`, `"kubectl-client-side-apply" using apps/v1`.
impl std::fmt::Display for ManagerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", Value::String(self.manager.clone()))?;
        if !self.subresource.is_empty() {
            write!(
                f,
                " with subresource {}",
                Value::String(self.subresource.clone())
            )?;
        }
        if self.operation == Operation::Update {
            write!(f, " using {}", self.api_version)?;
        }
        Ok(())
    }
}

/// One manager's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    api_version: String,
    time: Option<String>,
    set: Set,
}

/// The managed fields of one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManagedFields {
    entries: BTreeMap<ManagerId, Entry>,
}

impl ManagedFields {
    /// Reads `metadata.managedFields` (absent or null: none).
    pub fn decode(object: &Value) -> Result<Self, Error> {
        let mut out = ManagedFields::default();
        let Some(list) = object.get("metadata").and_then(|m| m.get("managedFields")) else {
            return Ok(out);
        };
        if list.is_null() {
            return Ok(out);
        }
        let list = list
            .as_array()
            .ok_or_else(|| Error::ManagedFields("expected a list".into()))?;
        for (i, e) in list.iter().enumerate() {
            let bad = |why: &str| Error::ManagedFields(format!("entry {i}: {why}"));
            let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let operation = match e.get("operation").and_then(Value::as_str) {
                Some("Apply") => Operation::Apply,
                Some("Update") => Operation::Update,
                other => return Err(bad(&format!("unknown operation {other:?}"))),
            };
            match e.get("fieldsType").and_then(Value::as_str) {
                Some("FieldsV1") | None => {}
                Some(other) => return Err(bad(&format!("unknown fieldsType {other:?}"))),
            }
            let set = match e.get("fieldsV1") {
                Some(v) if !v.is_null() => Set::from_fields_v1(v)?,
                _ => Set::new(),
            };
            let api_version = text("apiVersion");
            let id = ManagerId {
                manager: text("manager"),
                operation,
                api_version: match operation {
                    Operation::Apply => String::new(),
                    Operation::Update => api_version.clone(),
                },
                subresource: text("subresource"),
            };
            let time = e.get("time").and_then(Value::as_str).map(str::to_owned);
            if out.entries.contains_key(&id) {
                return Err(bad("duplicate manager"));
            }
            out.entries.insert(
                id,
                Entry {
                    api_version,
                    time,
                    set,
                },
            );
        }
        Ok(out)
    }

    /// Whether the object asks for its managed fields to be reset (upstream's
    /// `isResetManagedFields`): an empty list, or one empty entry.
    pub fn is_reset_request(object: &Value) -> bool {
        match object.get("metadata").and_then(|m| m.get("managedFields")) {
            Some(Value::Array(list)) => match list.as_slice() {
                [] => true,
                [only] => only.as_object().is_some_and(Map::is_empty),
                _ => false,
            },
            _ => false,
        }
    }

    /// The entries as `metadata.managedFields` holds them, sorted as upstream: Apply before
    /// Update, then by time, manager, API version and subresource.
    pub fn encode(&self) -> Vec<Value> {
        let mut entries: Vec<(&ManagerId, &Entry)> = self.entries.iter().collect();
        entries.sort_by(|(a, ae), (b, be)| {
            a.operation
                .cmp(&b.operation)
                .then_with(|| ae.time.cmp(&be.time))
                .then_with(|| a.manager.cmp(&b.manager))
                .then_with(|| ae.api_version.cmp(&be.api_version))
                .then_with(|| a.subresource.cmp(&b.subresource))
        });
        entries
            .into_iter()
            .map(|(id, e)| entry_json(id, &e.api_version, e.time.as_deref(), e.set.to_fields_v1()))
            .collect()
    }

    /// Writes the entries into `metadata.managedFields` (removing it when there are none).
    pub fn write_to(&self, object: &mut Value) {
        let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) else {
            return;
        };
        if self.entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(self.encode()));
        }
    }

    /// The set a manager owns.
    pub fn get(&self, id: &ManagerId) -> Option<&Set> {
        self.entries.get(id).map(|e| &e.set)
    }

    pub fn managers(&self) -> impl Iterator<Item = &ManagerId> {
        self.entries.keys()
    }

    fn drop_empty(&mut self) {
        self.entries.retain(|_, e| !e.set.is_empty());
    }

    /// upstream's `capManagersManager`: while there are more than [`MAX_UPDATE_MANAGERS`]
    /// Update entries, the oldest are merged into `ancient-changes` (one per API version;
    /// the first of a version becomes the bucket once a second one joins it).
    fn cap_update_managers(&mut self) {
        let mut updaters: Vec<ManagerId> = self
            .entries
            .keys()
            .filter(|id| id.operation == Operation::Update)
            .cloned()
            .collect();
        if updaters.len() <= MAX_UPDATE_MANAGERS {
            return;
        }
        // Oldest first (RFC 3339 times in UTC order as text), then by identifier.
        updaters.sort_by(|a, b| {
            let time = |id: &ManagerId| self.entries.get(id).and_then(|e| e.time.clone());
            time(a)
                .unwrap_or_default()
                .cmp(&time(b).unwrap_or_default())
                .then_with(|| a.identifier().cmp(&b.identifier()))
        });
        let mut remaining = updaters.len();
        let mut first_of_version: BTreeMap<String, ManagerId> = BTreeMap::new();
        for id in updaters {
            if remaining <= MAX_UPDATE_MANAGERS {
                break;
            }
            let Some(entry) = self.entries.get(&id).cloned() else {
                continue;
            };
            let version = entry.api_version.clone();
            let Some(first) = first_of_version.get(&version).cloned() else {
                first_of_version.insert(version, id);
                continue;
            };
            let bucket = ManagerId {
                manager: ANCIENT_CHANGES.into(),
                operation: Operation::Update,
                api_version: version.clone(),
                subresource: String::new(),
            };
            if !self.entries.contains_key(&bucket) {
                if let Some(moved) = self.entries.remove(&first) {
                    self.entries.insert(bucket.clone(), moved);
                }
            }
            self.entries.remove(&id);
            if let Some(b) = self.entries.get_mut(&bucket) {
                b.set = entry.set.union(&b.set);
                // The merged entry's time is the newer one's.
                b.time = entry.time;
            }
            remaining -= 1;
        }
    }
}

/// The manager name of a write (upstream's `managerOrUserAgent`): the `fieldManager`
/// parameter, else the user agent up to its first `/`, without unprintable characters, cut at
/// 128 bytes.
pub fn manager_name(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    if let Some(m) = field_manager.filter(|m| !m.is_empty()) {
        return m.to_owned();
    }
    let prefix = user_agent.unwrap_or("").split('/').next().unwrap_or("");
    let mut out = String::new();
    for c in prefix.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > FIELD_MANAGER_MAX_LENGTH {
            break;
        }
        out.push(c);
    }
    out
}

/// What a write is: who, at which version, to which part of the object.
#[derive(Clone, Debug)]
pub struct Write<'a> {
    /// The manager name (see [`manager_name`]); empty is recorded as `unknown`, as upstream.
    pub manager: &'a str,
    /// The object's `apiVersion` (`apps/v1`).
    pub api_version: &'a str,
    /// `Some("status")` for writes to the status subresource.
    pub subresource: Option<&'a str>,
    /// The kind's schema name (`io.k8s.api.apps.v1.Deployment`), for [`Ty::of_kind`].
    pub schema: &'a str,
    /// Whether the kind has a `status` subresource: then writes to the main resource ignore
    /// `.status`, and writes to `status` ignore everything else (upstream's reset fields).
    pub has_status: bool,
    pub now: DateTime<Utc>,
}

impl Write<'_> {
    fn id(&self, operation: Operation) -> ManagerId {
        ManagerId {
            manager: if self.manager.is_empty() {
                "unknown".into()
            } else {
                self.manager.to_owned()
            },
            operation,
            api_version: match operation {
                Operation::Apply => String::new(),
                Operation::Update => self.api_version.to_owned(),
            },
            subresource: self.subresource.unwrap_or("").to_owned(),
        }
    }

    fn ty(&self) -> Ty {
        Ty::of_kind(self.schema)
    }

    /// The fields the write may not own (upstream's reset fields of the kind's strategy).
    fn ignored(&self) -> Set {
        let mut set = Set::new();
        if self.has_status {
            if self.subresource == Some("status") {
                set.insert(&[field("metadata")]);
                set.insert(&[field("spec")]);
            } else {
                set.insert(&[field("status")]);
            }
        }
        set
    }

    fn timestamp(&self) -> String {
        crate::meta::timestamp(self.now)
    }
}

fn field(name: &str) -> PathElement {
    PathElement::Field(name.to_owned())
}

/// The fields no manager owns (upstream's `stripMetaManager`): identity and server-set
/// metadata. Only these exact paths go; `metadata.labels` stays ownable.
fn stripped() -> &'static Set {
    static STRIPPED: std::sync::OnceLock<Set> = std::sync::OnceLock::new();
    STRIPPED.get_or_init(|| {
        let mut set = Set::new();
        set.insert(&[field("apiVersion")]);
        set.insert(&[field("kind")]);
        set.insert(&[field("metadata")]);
        for f in STRIPPED_METADATA {
            set.insert(&[field("metadata"), field(f)]);
        }
        set
    })
}

/// The metadata fields of [`stripped`].
const STRIPPED_METADATA: [&str; 11] = [
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
    // Set by the server's delete, never by a manager's write.
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// The object without `metadata.managedFields` (the fields are never part of the comparison).
fn without_managed_fields(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    object
}

/// The object as Go would encode it after decoding, for comparisons, without
/// `metadata.managedFields` (never part of a comparison): upstream compares typed Go objects,
/// where non-pointer struct fields are always present and required lists and maps without
/// `omitempty` are `null` (see [`StructTy::go_fields`](super::schema::StructTy::go_fields)).
/// So a create owns `.spec.replicas` without owning `.spec` itself, and a first status write
/// owns `.status.replicas` without owning `.status`, as upstream records them.
fn go_shape(value: &Value, ty: Ty) -> Value {
    let mut v = match value {
        Value::Object(top) => Value::Object(
            top.iter()
                .map(|(k, child)| {
                    let child = match child {
                        Value::Object(meta) if k == "metadata" => Value::Object(
                            meta.iter()
                                .filter(|(k, _)| k.as_str() != "managedFields")
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                        ),
                        other => other.clone(),
                    };
                    (k.clone(), child)
                })
                .collect(),
        ),
        other => other.clone(),
    };
    go_fill(&mut v, ty, &mut Vec::new(), &mut Vec::new());
    v
}

/// Fills `v` (at `path`) into Go's shape (see [`go_shape`]), noting in `added` the path of
/// every field added where `v` had none (what is filled inside an added field is not noted:
/// it goes with it).
fn go_fill(
    v: &mut Value,
    ty: Ty,
    path: &mut Vec<&'static str>,
    added: &mut Vec<Vec<&'static str>>,
) {
    let (Value::Object(m), Ty::Struct(s)) = (v, ty) else {
        return;
    };
    if path.len() > 8 {
        return;
    }
    for &(k, how) in s.go_fields() {
        path.push(k);
        match (m.get_mut(k), how) {
            (Some(child), GoField::Struct { .. }) => go_fill(child, ty.field(k), path, added),
            (None, GoField::NullIfAbsent) => {
                m.insert(k.to_owned(), Value::Null);
                added.push(path.clone());
            }
            (None, GoField::Struct { always: true }) => {
                let mut child = Value::Object(Map::new());
                go_fill(&mut child, ty.field(k), path, &mut Vec::new());
                m.insert(k.to_owned(), child);
                added.push(path.clone());
            }
            _ => {}
        }
        path.pop();
    }
}

/// Takes out the fields [`go_fill`] added.
fn go_unfill(value: &mut Value, added: &[Vec<&'static str>]) {
    for path in added {
        let Some((last, parents)) = path.split_last() else {
            continue;
        };
        let mut node = Some(&mut *value);
        for k in parents {
            node = node.and_then(|n| n.get_mut(*k));
        }
        if let Some(Value::Object(m)) = node {
            m.remove(*last);
        }
    }
}

/// The children of a create's walk that [`strip_v1`] would take out whole: `apiVersion`,
/// `kind` and the [`STRIPPED_METADATA`] fields when they hold nothing below them (a scalar,
/// null or an empty object or list is recorded as a member and nothing else, which the
/// strip then removes).
fn skip_stripped(parent: &Path, pe: &PathElement, l: Option<&Value>, r: Option<&Value>) -> bool {
    let PathElement::Field(name) = pe else {
        return false;
    };
    let wanted = match parent.as_slice() {
        [] => name == "apiVersion" || name == "kind",
        [PathElement::Field(m)] if m == "metadata" => STRIPPED_METADATA.contains(&name.as_str()),
        _ => false,
    };
    let bare = |v: Option<&Value>| match v {
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => true,
    };
    wanted && bare(l) && bare(r)
}

/// A field another manager owns with a different value than the configuration's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub manager: ManagerId,
    pub path: Path,
}

impl Conflict {
    /// The path as upstream prints it (`.spec.replicas`), the `field` of the Status cause.
    pub fn field(&self) -> String {
        path_string(&self.path)
    }

    /// The message of the Status cause: `conflict with "kubectl" using apps/v1`.
    pub fn message(&self) -> String {
        format!("conflict with {}", self.manager)
    }
}

/// An apply refused because of conflicts; displays as upstream's Status message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Conflicts(pub Vec<Conflict>);

impl std::fmt::Display for Conflicts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let [only] = self.0.as_slice() {
            return write!(
                f,
                "Apply failed with 1 conflict: conflict with {}: {}",
                only.manager,
                only.field()
            );
        }
        let mut by_manager: BTreeMap<String, (&ManagerId, Vec<String>)> = BTreeMap::new();
        for c in &self.0 {
            by_manager
                .entry(c.manager.identifier())
                .or_insert((&c.manager, Vec::new()))
                .1
                .push(c.field());
        }
        let mut lines = Vec::new();
        for (manager, paths) in by_manager.values() {
            lines.push(format!("conflicts with {manager}:"));
            lines.extend(paths.iter().map(|p| format!("- {p}")));
        }
        write!(
            f,
            "Apply failed with {} conflicts: {}",
            self.0.len(),
            lines.join("\n")
        )
    }
}

/// Why an apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Conflicts(#[from] Conflicts),
    #[error(transparent)]
    Invalid(#[from] Error),
}

/// The managed fields after a non-apply write (create, update, patch; operation `Update`)
/// that turned `live` into `new`: the fields that changed move to the writer's entry and leave
/// everyone else's. On create, pass an empty object (`{}`) as `live`.
///
/// The managed fields are taken from `new` when it carries a valid, non-empty list of its own
/// (a client editing them) and the write is not to a subresource, else from `live`; an empty
/// list in `new` resets them.
pub fn update(live: &Value, new: &Value, write: &Write<'_>) -> Result<ManagedFields, Error> {
    let mut managed = if write.subresource.is_none() && ManagedFields::is_reset_request(new) {
        ManagedFields::default()
    } else {
        let from_new = if write.subresource.is_none() {
            ManagedFields::decode(new)
                .ok()
                .filter(|m| !m.entries.is_empty())
        } else {
            None
        };
        match from_new {
            Some(m) => m,
            // Upstream resets undecodable managed fields rather than failing the write.
            None => ManagedFields::decode(live).unwrap_or_default(),
        }
    };
    let ty = write.ty();
    let mut cmp = compare(&go_shape(live, ty), &go_shape(new, ty), ty)?;
    cmp.exclude(&write.ignored());
    if !managed.entries.is_empty() {
        take_from_others(&mut managed, &cmp, None);
    }
    let taken = if cmp.modified.is_empty() {
        cmp.added.difference(stripped())
    } else {
        cmp.modified.union(&cmp.added).difference(stripped())
    };
    if !taken.is_empty() {
        let id = write.id(Operation::Update);
        let entry = managed.entries.entry(id).or_insert_with(|| Entry {
            api_version: write.api_version.to_owned(),
            time: None,
            set: Set::new(),
        });
        entry.set = if entry.set.is_empty() {
            taken
        } else {
            entry.set.union(&taken)
        };
        entry.api_version = write.api_version.to_owned();
        entry.time = Some(write.timestamp());
    }
    managed.drop_empty();
    managed.cap_update_managers();
    Ok(managed)
}

/// Records a non-apply write in `new`'s `metadata.managedFields`: [`update`] then
/// [`ManagedFields::write_to`], in one walk for the most common write, a create without
/// managed fields of its own (`live` is `{}`): then the writer's entry is the only one and
/// owns what the create sets, so no sets are built.
pub fn record_update(live: &Value, new: &mut Value, write: &Write<'_>) -> Result<(), Error> {
    let fresh = write.subresource.is_none()
        && live.as_object().is_some_and(Map::is_empty)
        && new
            .get("metadata")
            .and_then(|m| m.get("managedFields"))
            .is_none_or(Value::is_null);
    if !fresh {
        update(live, new, write)?.write_to(new);
        return Ok(());
    }
    let ty = write.ty();
    // A null `managedFields` is replaced below, or goes with nothing to replace it.
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    // `new` in Go's shape for the walk, and back as it was after it: no copy of the object.
    let mut added = Vec::new();
    go_fill(new, ty, &mut Vec::new(), &mut added);
    let fields = added_or_modified_v1(&go_shape(live, ty), new, ty, &skip_stripped);
    go_unfill(new, &added);
    let mut fields = fields?;
    if let Value::Object(root) = &mut fields {
        if write.has_status {
            // The ignored fields of a main-resource write, and everything below them.
            root.remove("f:status");
        }
        strip_v1(root);
    }
    let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    if fields.as_object().is_some_and(Map::is_empty) {
        meta.remove("managedFields");
        return Ok(());
    }
    let id = write.id(Operation::Update);
    let entry = entry_json(&id, write.api_version, Some(&write.timestamp()), fields);
    meta.insert("managedFields".into(), Value::Array(vec![entry]));
    Ok(())
}

/// [`stripped`] taken from `FieldsV1` JSON: those exact paths stop being members, what is
/// below them stays, and nodes left with nothing go.
fn strip_v1(root: &mut Map<String, Value>) {
    fn unmember(map: &mut Map<String, Value>, key: &str) {
        if let Some(Value::Object(node)) = map.get_mut(key) {
            node.remove(".");
            if node.is_empty() {
                map.remove(key);
            }
        }
    }
    for key in ["f:apiVersion", "f:kind"] {
        unmember(root, key);
    }
    if let Some(Value::Object(meta)) = root.get_mut("f:metadata") {
        let strip: Vec<String> = meta
            .keys()
            .filter(|k| {
                k.strip_prefix("f:")
                    .is_some_and(|f| STRIPPED_METADATA.contains(&f))
            })
            .cloned()
            .collect();
        for key in strip {
            unmember(meta, &key);
        }
    }
    unmember(root, "f:metadata");
}

/// One entry of `metadata.managedFields`.
fn entry_json(id: &ManagerId, api_version: &str, time: Option<&str>, fields_v1: Value) -> Value {
    let mut m = Map::new();
    m.insert("manager".into(), id.manager.clone().into());
    m.insert("operation".into(), id.operation.as_str().into());
    m.insert("apiVersion".into(), api_version.into());
    if let Some(t) = time {
        m.insert("time".into(), t.into());
    }
    m.insert("fieldsType".into(), "FieldsV1".into());
    m.insert("fieldsV1".into(), fields_v1);
    if !id.subresource.is_empty() {
        m.insert("subresource".into(), id.subresource.clone().into());
    }
    Value::Object(m)
}

/// Removes from every manager but `except` the fields a write changed or removed.
fn take_from_others(managed: &mut ManagedFields, cmp: &Comparison, except: Option<&ManagerId>) {
    let changed = cmp.modified.union(&cmp.added);
    for (id, entry) in managed.entries.iter_mut() {
        if Some(id) == except {
            continue;
        }
        entry.set = entry.set.difference(&changed).difference(&cmp.removed);
    }
}

/// The result of an apply.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The new object, with its `metadata.managedFields`.
    pub object: Value,
    pub managed: ManagedFields,
}

/// Applies `config` to `live` as `write.manager` (upstream's `Updater.Apply` under the
/// fieldmanager chain): merges it in, removes what the manager applied before and no longer
/// applies unless someone else owns it, and refuses (without `force`) to change fields other
/// managers own. The manager's Apply entry then owns exactly the configuration's fields.
///
/// For an object that does not exist yet, pass `live` as the configuration's identity only
/// (`{"apiVersion", "kind", "metadata": {"name", "namespace"}}`).
pub fn apply(
    live: &Value,
    config: &Value,
    write: &Write<'_>,
    force: bool,
) -> Result<Applied, ApplyError> {
    if !config.is_object() {
        return Err(Error::Invalid("an apply configuration must be an object".into()).into());
    }
    // Where the managed fields are written: a configuration replacing it by a scalar or a
    // list would leave an object that cannot record who owns what.
    if config
        .get("metadata")
        .is_some_and(|m| !m.is_object() && !m.is_null())
    {
        return Err(Error::Invalid(".metadata: expected map".into()).into());
    }
    if config
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(Error::ManagedFieldsInConfig.into());
    }
    let ty = write.ty();
    let mut managed = ManagedFields::decode(live).unwrap_or_default();
    let live = without_managed_fields(live);
    let merged = merge(&live, config, ty)?;
    let id = write.id(Operation::Apply);
    let last = managed.get(&id).cloned();
    let ignored = write.ignored();
    let set = to_field_set(config, ty)?.recursive_difference(&ignored);
    let previous_time = managed.entries.get(&id).and_then(|e| e.time.clone());
    managed.entries.insert(
        id.clone(),
        Entry {
            api_version: write.api_version.to_owned(),
            time: previous_time,
            set,
        },
    );
    let new = match &last {
        Some(last) if !last.is_empty() => prune(&merged, &managed, last, ty)?,
        _ => merged,
    };
    let mut cmp = compare(&go_shape(&live, ty), &go_shape(&new, ty), ty)?;
    cmp.exclude(&ignored);
    let changed = cmp.modified.union(&cmp.added);
    let mut conflicts = Vec::new();
    for (other, entry) in &managed.entries {
        if *other == id {
            continue;
        }
        for path in entry.set.intersection(&changed).paths() {
            conflicts.push(Conflict {
                manager: other.clone(),
                path,
            });
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(Conflicts(conflicts).into());
    }
    take_from_others(&mut managed, &cmp, Some(&id));
    if let Some(entry) = managed.entries.get_mut(&id) {
        entry.set = entry.set.difference(stripped());
        if new != live || entry.time.is_none() {
            entry.time = Some(write.timestamp());
        }
    }
    managed.drop_empty();
    let mut object = new;
    managed.write_to(&mut object);
    Ok(Applied { object, managed })
}

/// upstream's `Updater.prune`: removes from the merged object what the manager applied last
/// time and not this time, then adds back what any manager (the applier included) owns and
/// what the applier never owned.
fn prune(merged: &Value, managed: &ManagedFields, last: &Set, ty: Ty) -> Result<Value, Error> {
    let named = |s: &Set| ensure_named_fields_are_members(s, ty);
    let last = named(last);
    let pruned = remove_items(merged, &last, ty)?;
    // Add back what someone owns.
    let owned = managed
        .entries
        .values()
        .fold(Set::new(), |acc, e| acc.union(&e.set));
    let merged_set = named(&to_field_set(merged, ty)?);
    let pruned_set = named(&to_field_set(&pruned, ty)?);
    let pruned = remove_items(
        merged,
        &merged_set.difference(&pruned_set.union(&named(&owned))),
        ty,
    )?;
    // Add back what the applier did not own (removed only as a container's content).
    let pruned_set = named(&to_field_set(&pruned, ty)?);
    remove_items(
        merged,
        &merged_set.difference(&pruned_set).intersection(&last),
        ty,
    )
}

/// A JSON object with just the identity of `config` (what an absent object is, for
/// [`apply`]).
pub fn identity_of(config: &Value) -> Value {
    let mut meta = Map::new();
    for k in ["name", "namespace"] {
        if let Some(v) = config.pointer(&format!("/metadata/{k}")) {
            meta.insert(k.into(), v.clone());
        }
    }
    json!({
        "apiVersion": config.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": config.get("kind").cloned().unwrap_or(Value::Null),
        "metadata": meta,
    })
}
