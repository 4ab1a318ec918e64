//! Controller revision history: the ControllerRevisions through which a StatefulSet or a
//! DaemonSet records each template it has had, as upstream's `pkg/controller/history`
//! (`controller_history.go`) and the revision parts of `stateful_set_utils.go` /
//! `stateful_set_control.go` (`getPatch`, `nextRevision`, `getStatefulSetRevisions`,
//! `truncateHistory`).
//!
//! A revision's `data` is a strategic merge patch that restores the parent's template
//! (`kubectl rollout undo` sends it as is). Its name is `<parent>-<hash>`, the hash being
//! upstream's `HashControllerRevision`: FNV-1 **32** (Go's `fnv.New32`, not `New32a`) over
//! the bytes of `data`, then the collision count written in decimal when there is one, the
//! sum written in decimal and mapped through `rand.SafeEncodeString`'s alphabet. The bytes
//! hashed are those Go's `json.Marshal` gives for the data as a generic map (keys sorted,
//! compact, `<`, `>`, `&` escaped), which is what upstream hashes ([`go_json`]). Upstream's
//! `data` comes from the Go structs, which print some empty fields (`"creationTimestamp":
//! null`, `"resources": {}`) that k8s-openapi's types omit, so the same template may hash to
//! another value here than in kube-controller-manager; for the same bytes it is the same.
//!
//! Pure parts (no I/O):
//! - [`template_patch`]: upstream's `getPatch` for a pod template
//!   (`{"spec":{"template":{…,"$patch":"replace"}}}`); a DaemonSet uses the same shape, and
//!   any other patch can be handed to [`new_revision`] directly.
//! - [`hash_data`], [`hash_revision`], [`revision_name`], [`new_revision`] (labels of the
//!   template, the controller reference, [`HASH_LABEL`]).
//! - [`sort_revisions`], [`equal_revision`], [`find_equal_revisions`], [`next_revision`].
//! - [`owned_or_orphan`] (upstream's `ListControllerRevisions` filter: selected by the
//!   parent's selector and controlled by the parent or by no one), over any list, and
//!   [`list_revisions`] over the shared cache.
//! - [`choose_update_revision`]: the update revision as `getStatefulSetRevisions` picks it
//!   (the latest if equal, an older equal one bumped to the next number — a rollback —,
//!   else a new one to create); [`current_revision`] finds the status' current one.
//! - [`history_to_delete`]: `truncateHistory` — the oldest non-live revisions over
//!   `revisionHistoryLimit`; a revision named in `live` is never chosen.
//!
//! Writes (through the API, each one request or a short retry):
//! - [`create_revision`]: creates, and on a name collision with other data increments the
//!   collision count (which the caller then writes into its parent's status) and retries
//!   with the new name; an existing revision with the same data is returned as is.
//! - [`update_revision`] (the `revision` number, retried on conflict), [`delete_revision`],
//!   [`adopt_revision`] / [`release_revision`] (upstream's patches, with the revision's UID
//!   as precondition; see [`crate::owners`]).

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{DeleteParams, PostParams};
use kube::runtime::reflector::Store;
use kube::Api;
use serde_json::{Map, Value};
use skiff_api::selector::LabelSelector;

use crate::owners::{adopt_patch, patch_ownership, release_patch, FIELD_MANAGER};
use crate::pods::controller_of;
use crate::{Error, Result};

/// The label on a revision holding its hash (upstream's `ControllerRevisionHashLabel`).
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// The label on a StatefulSet's or DaemonSet's pods naming their revision (upstream's
/// `apps.ControllerRevisionHashLabelKey`; a StatefulSet puts the revision's name in it, a
/// DaemonSet the hash).
pub const POD_REVISION_LABEL: &str = "controller-revision-hash";

/// How many names [`create_revision`] tries before it gives up.
const MAX_COLLISIONS: usize = 64;

/// `rand.SafeEncodeString`'s alphabet: no vowels, no look-alike characters.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Upstream's `rand.SafeEncodeString`: each byte mapped into the alphabet.
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// FNV-1, 32 bits (Go's `hash/fnv.New32`: multiply, then xor).
fn fnv1_32(parts: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for part in parts {
        for b in *part {
            h = h.wrapping_mul(0x0100_0193);
            h ^= u32::from(*b);
        }
    }
    h
}

/// The bytes Go's `json.Marshal` writes for `v` decoded into `interface{}`: object keys
/// sorted, no spaces, HTML characters and U+2028/U+2029 escaped as `\u00XX`/`\u2028`.
pub fn go_json(v: &Value) -> Vec<u8> {
    let mut out = String::new();
    write_go_json(v, &mut out);
    out.into_bytes()
}

fn write_go_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_string(k, out);
                out.push(':');
                if let Some(v) = m.get(k) {
                    write_go_json(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_go_json(v, out);
            }
            out.push(']');
        }
        Value::String(s) => write_go_string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn write_go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Upstream's `getPatch` for a template: `{"spec":{"template":T}}` with `"$patch":
/// "replace"` in T, so that applying it replaces the whole template.
pub fn template_patch(template: &PodTemplateSpec) -> Result<Value> {
    let mut t =
        serde_json::to_value(template).map_err(|e| Error::Invalid(format!("pod template: {e}")))?;
    if !t.is_object() {
        t = Value::Object(Map::new());
    }
    if let Value::Object(m) = &mut t {
        // Go prints the template's ObjectMeta and PodSpec structs even when empty, and an
        // unset creationTimestamp as null: so does this, for upstream's bytes.
        let meta = m
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(meta) = meta {
            meta.entry("creationTimestamp").or_insert(Value::Null);
        }
        m.entry("spec")
            .or_insert_with(|| serde_json::json!({"containers": null}));
        m.insert("$patch".into(), Value::String("replace".into()));
    }
    Ok(serde_json::json!({"spec": {"template": t}}))
}

/// Upstream's `HashControllerRevision` over `data`, with `probe` (the collision count).
pub fn hash_data(data: &Value, probe: Option<i32>) -> String {
    let bytes = go_json(data);
    let probe = probe.map(|p| p.to_string()).unwrap_or_default();
    safe_encode(&fnv1_32(&[&bytes, probe.as_bytes()]).to_string())
}

/// [`hash_data`] of a revision's `data` (an absent `data` hashes as no bytes, as upstream's
/// empty `Raw`).
pub fn hash_revision(revision: &ControllerRevision, probe: Option<i32>) -> String {
    match &revision.data {
        Some(RawExtension(data)) => hash_data(data, probe),
        None => {
            let probe = probe.map(|p| p.to_string()).unwrap_or_default();
            safe_encode(&fnv1_32(&[probe.as_bytes()]).to_string())
        }
    }
}

/// Upstream's `ControllerRevisionName`: `prefix-hash`, the prefix cut to 223 bytes.
pub fn revision_name(prefix: &str, hash: &str) -> String {
    let mut end = prefix.len().min(223);
    while !prefix.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}-{hash}", &prefix[..end])
}

/// Upstream's `NewControllerRevision`: controlled by `parent`, labelled as the template plus
/// [`HASH_LABEL`], named `<parent>-<hash>`.
pub fn new_revision(
    parent: &OwnerReference,
    namespace: &str,
    template_labels: Option<&BTreeMap<String, String>>,
    data: Value,
    revision: i64,
    collision_count: Option<i32>,
) -> ControllerRevision {
    let mut labels = template_labels.cloned().unwrap_or_default();
    let hash = hash_data(&data, collision_count);
    labels.insert(HASH_LABEL.into(), hash.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(revision_name(&parent.name, &hash)),
            namespace: Some(namespace.into()),
            labels: Some(labels),
            owner_references: Some(vec![parent.clone()]),
            ..ObjectMeta::default()
        },
        data: Some(RawExtension(data)),
        revision,
    }
}

fn by_revision(a: &ControllerRevision, b: &ControllerRevision) -> Ordering {
    a.revision
        .cmp(&b.revision)
        .then_with(|| {
            let ta = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
            let tb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
            ta.cmp(&tb)
        })
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Upstream's `SortControllerRevisions`: by revision number, then creation time, then name.
pub fn sort_revisions<R: AsRef<ControllerRevision>>(revisions: &mut [R]) {
    revisions.sort_by(|a, b| by_revision(a.as_ref(), b.as_ref()));
}

fn label_hash(r: &ControllerRevision) -> Option<u32> {
    let s = r.metadata.labels.as_ref()?.get(HASH_LABEL)?;
    // Go: strconv.ParseInt(hs, 10, 32), then uint32.
    s.parse::<i32>().ok().map(|v| v as u32)
}

/// Upstream's `EqualRevision`: hash labels that both read as numbers must agree, and the
/// data must be equal.
pub fn equal_revision(a: &ControllerRevision, b: &ControllerRevision) -> bool {
    if let (Some(x), Some(y)) = (label_hash(a), label_hash(b)) {
        if x != y {
            return false;
        }
    }
    let da = a.data.as_ref().map(|d| go_json(&d.0)).unwrap_or_default();
    let db = b.data.as_ref().map(|d| go_json(&d.0)).unwrap_or_default();
    da == db
}

/// Upstream's `FindEqualRevisions`, in the order of `revisions`.
pub fn find_equal_revisions<'a, R: AsRef<ControllerRevision>>(
    revisions: &'a [R],
    needle: &ControllerRevision,
) -> Vec<&'a R> {
    revisions
        .iter()
        .filter(|r| equal_revision(r.as_ref(), needle))
        .collect()
}

/// Upstream's `nextRevision`: one more than the last of the sorted `revisions`, 1 if none.
pub fn next_revision<R: AsRef<ControllerRevision>>(sorted: &[R]) -> i64 {
    sorted.last().map_or(1, |r| r.as_ref().revision + 1)
}

/// Upstream's `ListControllerRevisions` filter: in the parent's namespace, selected, and
/// controlled by the parent or by no controller.
pub fn owned_or_orphan(
    parent: &ObjectMeta,
    selector: &LabelSelector,
    revisions: impl IntoIterator<Item = Arc<ControllerRevision>>,
) -> Vec<Arc<ControllerRevision>> {
    let empty = BTreeMap::new();
    let uid = parent.uid.as_deref().unwrap_or("");
    revisions
        .into_iter()
        .filter(|r| r.metadata.namespace == parent.namespace)
        .filter(|r| selector.matches(r.metadata.labels.as_ref().unwrap_or(&empty)))
        .filter(|r| controller_of(&r.metadata).is_none_or(|c| c.uid == uid))
        .collect()
}

/// [`owned_or_orphan`] over the shared cache.
pub fn list_revisions(
    store: &Store<ControllerRevision>,
    parent: &ObjectMeta,
    selector: &LabelSelector,
) -> Vec<Arc<ControllerRevision>> {
    owned_or_orphan(parent, selector, store.state())
}

/// What the update revision is, as `getStatefulSetRevisions` decides it.
#[derive(Clone, Debug, PartialEq)]
pub enum UpdateRevision {
    /// The latest revision already has the parent's data.
    Latest(Arc<ControllerRevision>),
    /// An older revision has it (a rollback): renumber it to the given revision.
    Renumber(Arc<ControllerRevision>, i64),
    /// None has it: create this one (with [`create_revision`]).
    Create(Box<ControllerRevision>),
}

/// Picks the update revision for `candidate` (a [`new_revision`] numbered
/// [`next_revision`]) among the `sorted` revisions.
pub fn choose_update_revision(
    sorted: &[Arc<ControllerRevision>],
    candidate: ControllerRevision,
) -> UpdateRevision {
    let equal = find_equal_revisions(sorted, &candidate);
    match (equal.last(), sorted.last()) {
        (Some(eq), Some(latest)) if equal_revision(latest, eq) => {
            UpdateRevision::Latest(latest.clone())
        }
        (Some(eq), _) => UpdateRevision::Renumber((*eq).clone(), candidate.revision),
        (None, _) => UpdateRevision::Create(Box::new(candidate)),
    }
}

/// The revision named `name` (the parent's `status.currentRevision`), if any.
pub fn current_revision(
    revisions: &[Arc<ControllerRevision>],
    name: Option<&str>,
) -> Option<Arc<ControllerRevision>> {
    let name = name?;
    revisions
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(name))
        .cloned()
}

/// Upstream's `truncateHistory`: of the `sorted` revisions not named in `live` (the current
/// and update revisions and every pod's), the oldest beyond `limit`.
pub fn history_to_delete(
    sorted: &[Arc<ControllerRevision>],
    live: &HashSet<String>,
    limit: i32,
) -> Vec<Arc<ControllerRevision>> {
    let history: Vec<&Arc<ControllerRevision>> = sorted
        .iter()
        .filter(|r| !live.contains(r.metadata.name.as_deref().unwrap_or("")))
        .collect();
    let limit = usize::try_from(limit.max(0)).unwrap_or(0);
    if history.len() <= limit {
        return Vec::new();
    }
    history[..history.len() - limit]
        .iter()
        .map(|r| (*r).clone())
        .collect()
}

fn post_params() -> PostParams {
    PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    }
}

/// Upstream's `CreateControllerRevision`: creates `revision` named `<parent>-<hash>` with
/// `collision_count` as the probe; on a name taken by other data, increments
/// `collision_count` and tries the next name. A revision already there with the same data
/// is returned.
pub async fn create_revision(
    api: &Api<ControllerRevision>,
    parent_name: &str,
    revision: &ControllerRevision,
    collision_count: &mut i32,
) -> Result<ControllerRevision> {
    let mut clone = revision.clone();
    for _ in 0..MAX_COLLISIONS {
        let hash = hash_revision(revision, Some(*collision_count));
        let name = revision_name(parent_name, &hash);
        clone.metadata.name = Some(name.clone());
        match api.create(&post_params(), &clone).await {
            Ok(created) => return Ok(created),
            Err(kube::Error::Api(s)) if s.is_already_exists() => {
                let exists = api.get(&name).await?;
                let same =
                    go_json(
                        &exists
                            .data
                            .as_ref()
                            .map(|d| d.0.clone())
                            .unwrap_or_default(),
                    ) == go_json(&clone.data.as_ref().map(|d| d.0.clone()).unwrap_or_default());
                if same {
                    return Ok(exists);
                }
                *collision_count = collision_count.saturating_add(1);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Invalid(format!(
        "controller revision of {parent_name}: {MAX_COLLISIONS} name collisions"
    )))
}

/// Upstream's `UpdateControllerRevision`: sets the revision number, rereading and retrying
/// on a conflict.
pub async fn update_revision(
    api: &Api<ControllerRevision>,
    revision: &ControllerRevision,
    new_revision: i64,
) -> Result<ControllerRevision> {
    let name = revision.metadata.name.clone().unwrap_or_default();
    let mut clone = revision.clone();
    for _ in 0..5 {
        if clone.revision == new_revision {
            return Ok(clone);
        }
        clone.revision = new_revision;
        match api.replace(&name, &post_params(), &clone).await {
            Ok(updated) => return Ok(updated),
            Err(kube::Error::Api(s)) if s.is_conflict() => clone = api.get(&name).await?,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Invalid(format!(
        "controller revision {name}: conflicts on every update"
    )))
}

/// Deletes a revision (one already gone is not an error).
pub async fn delete_revision(
    api: &Api<ControllerRevision>,
    revision: &ControllerRevision,
) -> Result<()> {
    let name = revision.metadata.name.as_deref().unwrap_or_default();
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.is_not_found() => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Upstream's `AdoptControllerRevision`: refuses a revision another controller owns, else
/// patches in `controller` (a controller reference to the parent). `Ok(None)` when gone.
pub async fn adopt_revision(
    api: &Api<ControllerRevision>,
    controller: &OwnerReference,
    revision: &ControllerRevision,
) -> Result<Option<ControllerRevision>> {
    if let Some(owner) = controller_of(&revision.metadata) {
        return Err(Error::Invalid(format!(
            "attempt to adopt revision owned by {} {}",
            owner.kind, owner.name
        )));
    }
    let patch = adopt_patch(controller, revision.metadata.uid.as_deref().unwrap_or(""));
    let name = revision.metadata.name.as_deref().unwrap_or_default();
    Ok(patch_ownership(api, name, &patch, false).await?)
}

/// Upstream's `ReleaseControllerRevision`: removes the parent's reference; a revision gone
/// or no longer the parent's is ignored (`Ok(None)`).
pub async fn release_revision(
    api: &Api<ControllerRevision>,
    parent_uid: &str,
    revision: &ControllerRevision,
) -> Result<Option<ControllerRevision>> {
    let patch = release_patch(parent_uid, revision.metadata.uid.as_deref().unwrap_or(""));
    let name = revision.metadata.name.as_deref().unwrap_or_default();
    Ok(patch_ownership(api, name, &patch, true).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;
    use serde_json::json;

    fn web_template() -> PodTemplateSpec {
        serde_json::from_value(json!({"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}))
        .unwrap_or_default()
    }

    fn parent() -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: "StatefulSet".into(),
            name: "web".into(),
            uid: "uid-web".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn rev(name: &str, revision: i64, data: Value) -> Arc<ControllerRevision> {
        Arc::new(ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            data: Some(RawExtension(data)),
            revision,
        })
    }

    fn names(v: &[Arc<ControllerRevision>]) -> Vec<&str> {
        v.iter()
            .map(|r| r.metadata.name.as_deref().unwrap_or(""))
            .collect()
    }

    #[test]
    fn fnv1_is_gos_fnv_new32() {
        // Go: fnv.New32() over "hello" sums to 0xb6fa7167 (FNV-1a would be 0x4f9f2cab).
        assert_eq!(fnv1_32(&[b"hello"]), 3_069_866_343);
        assert_eq!(fnv1_32(&[b"he", b"llo"]), 3_069_866_343);
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn the_patch_and_its_hash_are_upstreams() {
        let patch = template_patch(&web_template()).unwrap_or_default();
        let bytes = go_json(&patch);
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r#"{"spec":{"template":{"$patch":"replace","metadata":{"creationTimestamp":null,"labels":{"app":"web"}},"spec":{"containers":[{"image":"nginx:1.25","name":"nginx"}]}}}}"#
        );
        // Expected values computed with upstream's algorithm (FNV-1 32 over these bytes,
        // then strconv.FormatInt(probe), fmt.Sprint of the sum, rand.SafeEncodeString):
        // sums 98561898, 2844124142, 2844124143.
        assert_eq!(hash_data(&patch, None), "fd9b5dfd");
        assert_eq!(hash_data(&patch, Some(0)), "6d88568586");
        assert_eq!(hash_data(&patch, Some(1)), "6d88568587");

        let r = new_revision(
            &parent(),
            "ns",
            web_template().metadata.and_then(|m| m.labels).as_ref(),
            patch,
            1,
            Some(0),
        );
        assert_eq!(r.metadata.name.as_deref(), Some("web-6d88568586"));
        let labels = r.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(
            labels.get(HASH_LABEL).map(String::as_str),
            Some("6d88568586")
        );
        assert_eq!(
            controller_of(&r.metadata).map(|c| c.uid.as_str()),
            Some("uid-web")
        );
        assert_eq!(hash_revision(&r, Some(0)), "6d88568586");
    }

    #[test]
    fn the_hash_of_a_revision_written_by_kube_controller_manager_1_33() {
        // Upstream's pkg/controller/statefulset/testdata/compatibility_revision_1.33.0.json:
        // revision test-c77f6d978 (collisionCount 0) with these data.
        let data: Value = serde_json::from_str(
            r#"{"spec":{"template":{"$patch":"replace","metadata":{"annotations":{"test":"value"},"creationTimestamp":null,"labels":{"app":"foo"}},"spec":{"containers":[{"image":"test","imagePullPolicy":"Always","name":"test","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File"}],"dnsPolicy":"ClusterFirst","restartPolicy":"Always","schedulerName":"default-scheduler","securityContext":{},"terminationGracePeriodSeconds":30}}}}"#,
        )
        .unwrap_or_default();
        assert_eq!(hash_data(&data, Some(0)), "c77f6d978");
        // And the template as our API server holds it gives the same patch.
        let template: PodTemplateSpec = serde_json::from_value(json!({
            "metadata": {"annotations": {"test": "value"}, "labels": {"app": "foo"}},
            "spec": {"containers": [{"image": "test", "imagePullPolicy": "Always", "name": "test",
                "resources": {}, "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File"}], "dnsPolicy": "ClusterFirst",
                "restartPolicy": "Always", "schedulerName": "default-scheduler",
                "securityContext": {}, "terminationGracePeriodSeconds": 30}}))
        .unwrap_or_default();
        let patch = template_patch(&template).unwrap_or_default();
        assert_eq!(go_json(&patch), go_json(&data));
        assert_eq!(hash_data(&patch, Some(0)), "c77f6d978");
    }

    #[test]
    fn go_json_escapes_as_go() {
        let v = json!({"b": "<a&b>\u{2028}\n\u{1}", "a": [1, true, null, 1.5]});
        assert_eq!(
            String::from_utf8_lossy(&go_json(&v)),
            r#"{"a":[1,true,null,1.5],"b":"\u003ca\u0026b\u003e\u2028\n\u0001"}"#
        );
    }

    #[test]
    fn names_are_cut_to_223_bytes_of_prefix() {
        assert_eq!(revision_name("web", "abc"), "web-abc");
        let long = "x".repeat(300);
        assert_eq!(revision_name(&long, "abc").len(), 223 + 4);
    }

    #[test]
    fn sorting_equality_and_next_revision() {
        let t0 = Time(Timestamp::from_second(100).unwrap_or(Timestamp::UNIX_EPOCH));
        let t1 = Time(Timestamp::from_second(200).unwrap_or(Timestamp::UNIX_EPOCH));
        let mut a = (*rev("a", 2, json!(1))).clone();
        a.metadata.creation_timestamp = Some(t1);
        let mut b = (*rev("b", 2, json!(1))).clone();
        b.metadata.creation_timestamp = Some(t0);
        let mut v = vec![
            Arc::new(a),
            rev("c", 1, json!(2)),
            Arc::new(b),
            rev("d", 2, json!(1)),
        ];
        sort_revisions(&mut v);
        // No creation time sorts first; then older first.
        assert_eq!(names(&v), ["c", "d", "b", "a"]);
        assert_eq!(next_revision(&v), 3);
        assert_eq!(next_revision::<Arc<ControllerRevision>>(&[]), 1);

        let needle = rev("n", 9, json!({"x": 1}));
        let list = vec![rev("p", 1, json!({"x": 1})), rev("q", 2, json!({"x": 2}))];
        let eq: Vec<_> = find_equal_revisions(&list, &needle)
            .into_iter()
            .cloned()
            .collect();
        assert_eq!(names(&eq), ["p"]);
        // Numeric hash labels that differ make revisions unequal whatever their data.
        let mut l = (*rev("l", 1, json!({"x": 1}))).clone();
        l.metadata.labels = Some([(HASH_LABEL.to_owned(), "123".to_owned())].into());
        let mut m = l.clone();
        m.metadata.labels = Some([(HASH_LABEL.to_owned(), "124".to_owned())].into());
        assert!(!equal_revision(&l, &m));
        m.metadata.labels = Some([(HASH_LABEL.to_owned(), "db45f7d56".to_owned())].into());
        assert!(equal_revision(&l, &m));
    }

    #[test]
    fn update_revision_choice_follows_get_stateful_set_revisions() {
        let d1 = json!({"v": 1});
        let d2 = json!({"v": 2});
        let d3 = json!({"v": 3});
        let sorted = vec![rev("r1", 1, d1.clone()), rev("r2", 2, d2.clone())];
        let cand = |d: &Value| new_revision(&parent(), "ns", None, d.clone(), 3, Some(0));
        assert_eq!(
            choose_update_revision(&sorted, cand(&d2)),
            UpdateRevision::Latest(sorted[1].clone())
        );
        assert_eq!(
            choose_update_revision(&sorted, cand(&d1)),
            UpdateRevision::Renumber(sorted[0].clone(), 3)
        );
        assert!(matches!(
            choose_update_revision(&sorted, cand(&d3)),
            UpdateRevision::Create(r) if r.revision == 3
        ));
        assert!(matches!(
            choose_update_revision(&[], cand(&d3)),
            UpdateRevision::Create(_)
        ));
        assert_eq!(
            current_revision(&sorted, Some("r1")).map(|r| r.revision),
            Some(1)
        );
        assert_eq!(current_revision(&sorted, Some("zz")), None);
        assert_eq!(current_revision(&sorted, None), None);
    }

    #[test]
    fn truncation_keeps_live_revisions_and_the_newest_history() {
        let sorted: Vec<_> = (1..=6)
            .map(|i| rev(&format!("r{i}"), i, json!(i)))
            .collect();
        let live: HashSet<String> = ["r1", "r6"].iter().map(|s| s.to_string()).collect();
        // History (non-live): r2..r5; limit 2 deletes the two oldest.
        assert_eq!(names(&history_to_delete(&sorted, &live, 2)), ["r2", "r3"]);
        assert_eq!(
            names(&history_to_delete(&sorted, &live, 0)),
            ["r2", "r3", "r4", "r5"]
        );
        assert!(history_to_delete(&sorted, &live, 4).is_empty());
        assert!(history_to_delete(&sorted, &live, 10).is_empty());
    }

    #[test]
    fn listing_takes_owned_and_orphans_that_are_selected() {
        let selector = LabelSelector::from_k8s(
            &serde_json::from_value(json!({"matchLabels": {"app": "web"}})).unwrap_or_default(),
        )
        .unwrap_or_else(|_| unreachable!("a valid selector"));
        let parent_meta = ObjectMeta {
            name: Some("web".into()),
            namespace: Some("ns".into()),
            uid: Some("uid-web".into()),
            ..ObjectMeta::default()
        };
        let mk = |name: &str, ns: &str, app: &str, owner: Option<&str>| {
            let mut r = (*rev(name, 1, json!(1))).clone();
            r.metadata.namespace = Some(ns.into());
            r.metadata.labels = Some([("app".to_owned(), app.to_owned())].into());
            r.metadata.owner_references = owner.map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    ..parent()
                }]
            });
            Arc::new(r)
        };
        let all = vec![
            mk("mine", "ns", "web", Some("uid-web")),
            mk("orphan", "ns", "web", None),
            mk("theirs", "ns", "web", Some("other")),
            mk("unselected", "ns", "db", None),
            mk("elsewhere", "other", "web", None),
        ];
        assert_eq!(
            names(&owned_or_orphan(&parent_meta, &selector, all)),
            ["mine", "orphan"]
        );
    }
}
