//! What the collector does with an item once it has read it live (upstream's
//! `attemptToDeleteItem` after `classifyReferences`), and the bodies of its writes (upstream's
//! `patch.go`). Pure: the reads are done by the caller.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde_json::{json, Value};

use super::graph::{blocks, FOREGROUND, ORPHAN};

/// What an ownerReference's owner turned out to be (upstream's three classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerState {
    /// The owner exists and is not waiting for its dependents' deletion.
    Solid,
    /// No object of that kind and name, or one with another uid.
    Dangling,
    /// The owner is being deleted in the foreground (`foregroundDeletion` finalizer).
    Waiting,
}

/// The class of `reference` given the live owner (`None`: not found).
pub fn owner_state(reference: &OwnerReference, live: Option<&ObjectMeta>) -> OwnerState {
    match live {
        None => OwnerState::Dangling,
        Some(m) if m.uid.as_deref() != Some(reference.uid.as_str()) => OwnerState::Dangling,
        Some(m) if m.deletion_timestamp.is_some() && has_finalizer(m, FOREGROUND) => {
            OwnerState::Waiting
        }
        Some(_) => OwnerState::Solid,
    }
}

pub fn has_finalizer(m: &ObjectMeta, finalizer: &str) -> bool {
    m.finalizers.iter().flatten().any(|f| f == finalizer)
}

/// A propagation policy, as `DeleteOptions.propagationPolicy` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    Background,
    Foreground,
    Orphan,
}

/// What to do with an item that has ownerReferences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// An owner is there: leave the item.
    Keep,
    /// An owner is there, but these references (to absent owners, or to owners waiting for
    /// their dependents' deletion, which would otherwise wait for ever) go.
    RemoveReferences(Vec<String>),
    /// No owner is left: delete the item. `unblock_first`: its references stop blocking
    /// before (a dependent of it is itself waiting: a possible cycle).
    Delete { policy: Policy, unblock_first: bool },
}

/// Upstream's switch at the end of `attemptToDeleteItem`. `refs`: the item's live
/// references, each classified; `finalizers`: the item's; `dependents`: how many the graph
/// knows; `dependent_deleting_dependents`: whether one of them is itself deleting its own in
/// the foreground.
pub fn decide(
    refs: &[(OwnerReference, OwnerState)],
    finalizers: &[String],
    dependents: usize,
    dependent_deleting_dependents: bool,
) -> Decision {
    let of = |s: OwnerState| refs.iter().filter(move |(_, c)| *c == s);
    if refs.is_empty() {
        return Decision::Keep;
    }
    if of(OwnerState::Solid).next().is_some() {
        let mut gone: Vec<String> = of(OwnerState::Dangling)
            .chain(of(OwnerState::Waiting))
            .map(|(r, _)| r.uid.clone())
            .collect();
        if gone.is_empty() {
            return Decision::Keep;
        }
        gone.dedup();
        return Decision::RemoveReferences(gone);
    }
    if of(OwnerState::Waiting).next().is_some() && dependents != 0 {
        // Deleted in the foreground, so that the owner waits for this item's own dependents.
        return Decision::Delete {
            policy: Policy::Foreground,
            unblock_first: dependent_deleting_dependents,
        };
    }
    let has = |f: &str| finalizers.iter().any(|x| x == f);
    // An existing finalizer says how the item wants to go; otherwise in the background.
    let policy = if has(ORPHAN) {
        Policy::Orphan
    } else if has(FOREGROUND) {
        Policy::Foreground
    } else {
        Policy::Background
    };
    Decision::Delete {
        policy,
        unblock_first: false,
    }
}

/// Upstream's `deleteOwnerRefStrategicMergePatch`: removes the references to `owners` by
/// their merge key; the dependent's uid makes it fail on another object of the same name.
pub fn delete_owner_refs_strategic(dependent_uid: &str, owners: &[String]) -> Value {
    let pieces: Vec<Value> = owners
        .iter()
        .map(|u| json!({"$patch": "delete", "uid": u}))
        .collect();
    json!({"metadata": {"ownerReferences": pieces, "uid": dependent_uid}})
}

/// Upstream's `deleteOwnerRefJSONMergePatch` (for kinds without strategic merge patch):
/// the references that stay, checked against the resourceVersion they were read at.
pub fn delete_owner_refs_merge(
    resource_version: &str,
    refs: &[OwnerReference],
    owners: &[String],
) -> Value {
    let kept: Vec<&OwnerReference> = refs.iter().filter(|r| !owners.contains(&r.uid)).collect();
    json!({"metadata": {"resourceVersion": resource_version,
        "ownerReferences": if kept.is_empty() { Value::Null } else { json!(kept) }}})
}

/// Upstream's `unblockOwnerReferencesStrategicMergePatch`: the blocking references, each
/// with `blockOwnerDeletion: false`.
pub fn unblock_strategic(uid: &str, refs: &[OwnerReference]) -> Value {
    let unblocked: Vec<OwnerReference> = refs
        .iter()
        .filter(|r| blocks(r))
        .map(|r| OwnerReference {
            block_owner_deletion: Some(false),
            ..r.clone()
        })
        .collect();
    json!({"metadata": {"uid": uid, "ownerReferences": unblocked}})
}

/// Upstream's `unblockOwnerReferencesJSONMergePatch`: every reference, none blocking.
pub fn unblock_merge(resource_version: &str, refs: &[OwnerReference]) -> Value {
    let unblocked: Vec<OwnerReference> = refs
        .iter()
        .map(|r| OwnerReference {
            block_owner_deletion: Some(false),
            ..r.clone()
        })
        .collect();
    json!({"metadata": {"resourceVersion": resource_version, "ownerReferences": unblocked}})
}

/// Upstream's finalizer removal (`objectForFinalizersPatch`, a JSON merge patch): the
/// finalizers left, checked against the resourceVersion they were read at. `None` when
/// `finalizer` is not there.
pub fn remove_finalizer_patch(meta: &ObjectMeta, finalizer: &str) -> Option<Value> {
    if !has_finalizer(meta, finalizer) {
        return None;
    }
    let left: Vec<&String> = meta
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != finalizer)
        .collect();
    Some(json!({"metadata": {
        "resourceVersion": meta.resource_version.clone().unwrap_or_default(),
        "finalizers": if left.is_empty() { Value::Null } else { json!(left) },
    }}))
}
