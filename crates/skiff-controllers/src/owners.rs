//! Ownership: which controller owns which object, as upstream's controller reference
//! managers decide it (pkg/controller/controller_ref_manager.go: `ClaimObject`,
//! `PodControllerRefManager`, `ReplicaSetControllerRefManager`), and an index of a kind's
//! objects by their controller so that a controller reads its own objects without scanning
//! every object of the namespace (upstream lists the namespace and filters).
//!
//! - [`OwnerIndex`]: objects by controller UID, plus the orphans (no controller) of each
//!   namespace, kept from a kind's change stream ([`OwnerIndex::observe`], called from the
//!   controller's trigger mapper, which also learns which owner an object left). Reads go
//!   through the shared store, so what they return is never older than the cache.
//! - [`claim`]: the pure decision of `ClaimObject` (keep, adopt, release, ignore) over the
//!   candidates; [`adopt_patch`] / [`release_patch`] are upstream's strategic merge patches,
//!   which carry the object's UID so that a recreated object of the same name is not touched.
//!
//! Nothing here writes by itself except [`patch_ownership`], which sends one of the patches.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource};
use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::informers::Kind;
use crate::pods::controller_of;

/// The field manager of every controller write, as upstream's controllers are recorded.
pub const FIELD_MANAGER: &str = "kube-controller-manager";

/// Who controls an object, as far as the index knows.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Controller {
    pub kind: String,
    pub name: String,
    pub uid: String,
}

impl Controller {
    fn of(meta: &ObjectMeta) -> Option<Self> {
        controller_of(meta).map(|r| Self {
            kind: r.kind.clone(),
            name: r.name.clone(),
            uid: r.uid.clone(),
        })
    }
}

/// What one observed change did: the controller the object had before and has now (`None`
/// for an orphan), and whether it is gone from the cache.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Moved {
    pub namespace: String,
    pub before: Option<Controller>,
    pub after: Option<Controller>,
    pub exists: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Bucket {
    Controlled(String),
    Orphan(String),
}

struct State<K: Resource<DynamicType = ()>> {
    where_is: HashMap<ObjectRef<K>, (Bucket, Option<Controller>)>,
    buckets: HashMap<Bucket, HashSet<ObjectRef<K>>>,
}

/// A kind's objects by controller UID, and its orphans by namespace.
pub struct OwnerIndex<K: Kind> {
    store: Store<K>,
    state: Mutex<State<K>>,
}

impl<K: Kind> OwnerIndex<K> {
    pub fn new(store: Store<K>) -> Arc<Self> {
        Arc::new(Self {
            store,
            state: Mutex::new(State {
                where_is: HashMap::new(),
                buckets: HashMap::new(),
            }),
        })
    }

    /// The store the index reads through.
    pub fn store(&self) -> &Store<K> {
        &self.store
    }

    /// Takes in a change of `obj`: files the object under the controller the cache now
    /// shows for it (or drops it when the cache no longer has it), and says where it was.
    pub fn observe(&self, obj: &K) -> Moved {
        let key = ObjectRef::from_obj(obj);
        let namespace = obj.meta().namespace.clone().unwrap_or_default();
        let current = self.store.get(&key);
        let after = current.as_deref().map(|o| {
            let controller = Controller::of(o.meta());
            let bucket = match &controller {
                Some(c) => Bucket::Controlled(c.uid.clone()),
                None => Bucket::Orphan(namespace.clone()),
            };
            (bucket, controller)
        });
        let mut state = self.state.lock();
        let before = state.where_is.remove(&key);
        if let Some((bucket, _)) = &before {
            if let Some(set) = state.buckets.get_mut(bucket) {
                set.remove(&key);
                if set.is_empty() {
                    state.buckets.remove(bucket);
                }
            }
        }
        let exists = after.is_some();
        let after_controller = after.as_ref().and_then(|(_, c)| c.clone());
        if let Some((bucket, controller)) = after {
            state
                .buckets
                .entry(bucket.clone())
                .or_default()
                .insert(key.clone());
            state.where_is.insert(key, (bucket, controller));
        }
        Moved {
            namespace,
            before: before.and_then(|(_, c)| c),
            after: after_controller,
            exists,
        }
    }

    fn read(&self, bucket: &Bucket, keep: impl Fn(&K) -> bool) -> Vec<Arc<K>> {
        let keys: Vec<ObjectRef<K>> = self
            .state
            .lock()
            .buckets
            .get(bucket)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        keys.iter()
            .filter_map(|k| self.store.get(k))
            .filter(|o| keep(o))
            .collect()
    }

    /// The cached objects whose controller has `uid`.
    pub fn controlled_by(&self, uid: &str) -> Vec<Arc<K>> {
        self.read(&Bucket::Controlled(uid.to_owned()), |o| {
            controller_of(o.meta()).is_some_and(|r| r.uid == uid)
        })
    }

    /// The cached objects of `namespace` that no controller owns.
    pub fn orphans_in(&self, namespace: &str) -> Vec<Arc<K>> {
        self.read(&Bucket::Orphan(namespace.to_owned()), |o| {
            controller_of(o.meta()).is_none()
        })
    }

    /// What a controller may claim: its own objects and the orphans of its namespace.
    pub fn candidates(&self, owner: &ObjectMeta) -> Vec<Arc<K>> {
        let mut all = self.controlled_by(owner.uid.as_deref().unwrap_or(""));
        all.extend(self.orphans_in(owner.namespace.as_deref().unwrap_or("")));
        all
    }
}

/// What [`claim`] decided.
#[derive(Debug)]
pub struct Claim<K> {
    /// Ours and selected: kept.
    pub owned: Vec<Arc<K>>,
    /// Orphans the selector matches: to adopt.
    pub adopt: Vec<Arc<K>>,
    /// Ours but no longer selected: to release.
    pub release: Vec<Arc<K>>,
}

/// Upstream's `ClaimObject` over `candidates`, for the controller `owner`: an object another
/// controller owns is ignored; one we own is kept while `selected`, else released (unless we
/// are being deleted); an orphan is adopted when selected, in our namespace, not being
/// deleted, and we are not being deleted.
pub fn claim<K: Resource>(
    owner: &ObjectMeta,
    selected: impl Fn(&K) -> bool,
    candidates: impl IntoIterator<Item = Arc<K>>,
) -> Claim<K> {
    let uid = owner.uid.as_deref().unwrap_or("");
    let owner_deleting = owner.deletion_timestamp.is_some();
    let mut out = Claim {
        owned: Vec::new(),
        adopt: Vec::new(),
        release: Vec::new(),
    };
    for obj in candidates {
        let meta = obj.meta();
        match controller_of(meta) {
            Some(r) if r.uid != uid => {}
            Some(_) if selected(&obj) => out.owned.push(obj),
            Some(_) if owner_deleting => {}
            Some(_) => out.release.push(obj),
            None => {
                if owner_deleting
                    || !selected(&obj)
                    || meta.deletion_timestamp.is_some()
                    || meta.namespace != owner.namespace
                {
                    continue;
                }
                out.adopt.push(obj);
            }
        }
    }
    out
}

/// Upstream's adoption patch (`ownerRefControllerPatch`): our controller reference, with
/// the object's UID as a precondition.
pub fn adopt_patch(controller: &OwnerReference, object_uid: &str) -> Value {
    json!({"metadata": {"ownerReferences": [controller], "uid": object_uid}})
}

/// Upstream's release patch (`GenerateDeleteOwnerRefStrategicMergeBytes`): our reference
/// deleted by its UID, with the object's UID as a precondition.
pub fn release_patch(owner_uid: &str, object_uid: &str) -> Value {
    json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": owner_uid}], "uid": object_uid}})
}

/// Sends an ownership patch; `Ok(None)` when the object is gone (upstream ignores that) or,
/// for a release, refused as invalid (upstream ignores that too).
pub async fn patch_ownership<K: Kind>(
    api: &Api<K>,
    name: &str,
    patch: &Value,
    release: bool,
) -> Result<Option<K>, kube::Error> {
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    match api.patch(name, &params, &Patch::Strategic(patch)).await {
        Ok(obj) => Ok(Some(obj)),
        Err(kube::Error::Api(s)) if s.is_not_found() || (release && s.is_invalid()) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::Timestamp;

    fn pod(name: &str, ns: &str, owner: Option<&str>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                uid: Some(format!("uid-{name}")),
                owner_references: owner.map(|uid| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: format!("rs-{uid}"),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]
                }),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        })
    }

    fn names(v: &[Arc<Pod>]) -> Vec<&str> {
        v.iter()
            .map(|p| p.metadata.name.as_deref().unwrap_or(""))
            .collect()
    }

    #[test]
    fn claim_keeps_adopts_releases_and_ignores_as_upstream() {
        let owner = ObjectMeta {
            name: Some("rs-a".into()),
            namespace: Some("ns".into()),
            uid: Some("a".into()),
            ..ObjectMeta::default()
        };
        let mut deleting_orphan = (*pod("orphan-deleting", "ns", None)).clone();
        deleting_orphan.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        let candidates = vec![
            pod("mine", "ns", Some("a")),
            pod("mine-unselected", "ns", Some("a")),
            pod("theirs", "ns", Some("b")),
            pod("orphan", "ns", None),
            pod("orphan-unselected", "ns", None),
            pod("orphan-elsewhere", "other", None),
            Arc::new(deleting_orphan),
        ];
        let selected = |p: &Pod| {
            !p.metadata
                .name
                .as_deref()
                .unwrap_or("")
                .ends_with("unselected")
        };
        let c = claim(&owner, selected, candidates.clone());
        assert_eq!(names(&c.owned), ["mine"]);
        assert_eq!(names(&c.adopt), ["orphan"]);
        assert_eq!(names(&c.release), ["mine-unselected"]);

        // An owner being deleted keeps what it has and neither adopts nor releases.
        let mut deleting = owner.clone();
        deleting.deletion_timestamp = Some(Time(Timestamp::now()));
        let c = claim(&deleting, selected, candidates);
        assert_eq!(names(&c.owned), ["mine"]);
        assert!(c.adopt.is_empty() && c.release.is_empty());
    }

    #[test]
    fn patches_are_upstreams() {
        let r = OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: "web".into(),
            uid: "u1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        assert_eq!(
            adopt_patch(&r, "p1"),
            json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "web", "uid": "u1", "controller": true, "blockOwnerDeletion": true}], "uid": "p1"}})
        );
        assert_eq!(
            release_patch("u1", "p1"),
            json!({"metadata": {"ownerReferences": [{"$patch": "delete", "uid": "u1"}], "uid": "p1"}})
        );
    }

    #[test]
    fn the_index_follows_the_store_and_reports_moves() {
        use kube::runtime::reflector::store::Writer;
        use kube::runtime::watcher::Event;
        let mut writer = Writer::<Pod>::new(());
        let index = OwnerIndex::new(writer.as_reader());
        let p = pod("p", "ns", None);
        writer.apply_watcher_event(&Event::Apply((*p).clone()));
        let m = index.observe(&p);
        assert_eq!((m.before, m.after.is_none(), m.exists), (None, true, true));
        assert_eq!(names(&index.orphans_in("ns")), ["p"]);

        let adopted = pod("p", "ns", Some("a"));
        writer.apply_watcher_event(&Event::Apply((*adopted).clone()));
        let m = index.observe(&adopted);
        assert_eq!(m.after.map(|c| c.uid), Some("a".to_owned()));
        assert!(index.orphans_in("ns").is_empty());
        assert_eq!(names(&index.controlled_by("a")), ["p"]);

        writer.apply_watcher_event(&Event::Delete((*adopted).clone()));
        let m = index.observe(&adopted);
        assert_eq!(m.before.map(|c| c.name), Some("rs-a".to_owned()));
        assert!(!m.exists);
        assert!(index.controlled_by("a").is_empty());
    }
}
