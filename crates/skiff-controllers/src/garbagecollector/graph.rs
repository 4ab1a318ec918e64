//! The dependency graph (upstream's `graph.go` and `graph_builder.go`): one node per uid the
//! monitors have seen or an ownerReference names, each with its owners (the object's
//! `ownerReferences`) and its dependents (the uids of the objects that name it). A node an
//! ownerReference names before any monitor has seen it is *virtual*; the collector checks
//! such an owner with a live read and removes the node if it is absent.
//!
//! [`Graph::apply`] is upstream's `processGraphChanges`: a change in, the graph updated, and
//! what the collector must look at out ([`Effect`]). It is pure (no I/O, no clock), so every
//! transition is table-tested. It does not decide what to delete: that is `decide.rs`, after
//! live reads.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

/// The finalizer of an owner deleted in the foreground (upstream's
/// `metav1.FinalizerDeleteDependents`).
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an owner whose dependents are orphaned
/// (`metav1.FinalizerOrphanDependents`).
pub const ORPHAN: &str = "orphan";

/// An object's coordinates (upstream's `objectReference`): what an ownerReference says,
/// plus the namespace (empty for a cluster-scoped object). Ordered as upstream's
/// `referenceLessThan`: kind, apiVersion, namespace, name, uid.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    pub kind: String,
    pub api_version: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl fmt::Display for ObjectRef {
    /// Upstream's `objectReference.String()`, which its event messages embed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}/{}, namespace: {}, name: {}, uid: {}]",
            self.api_version, self.kind, self.namespace, self.name, self.uid
        )
    }
}

impl ObjectRef {
    /// The object an ownerReference of an object in `namespace` names.
    pub fn of_owner(owner: &OwnerReference, namespace: &str) -> Self {
        Self {
            kind: owner.kind.clone(),
            api_version: owner.api_version.clone(),
            namespace: namespace.to_owned(),
            name: owner.name.clone(),
            uid: owner.uid.clone(),
        }
    }

    /// Whether `owner` names exactly these coordinates (upstream's
    /// `ownerReferenceMatchesCoordinates`: uid, name, kind and apiVersion).
    pub fn matches(&self, owner: &OwnerReference) -> bool {
        owner.uid == self.uid
            && owner.name == self.name
            && owner.kind == self.kind
            && owner.api_version == self.api_version
    }
}

/// Whether an ownerReference blocks its owner's foreground deletion.
pub fn blocks(owner: &OwnerReference) -> bool {
    owner.block_owner_deletion == Some(true)
}

/// The deletion state of an object as a monitor last saw it (upstream compares the informer's
/// old and new object to see a deletion *start* with a finalizer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Seen {
    deleting: bool,
    orphan: bool,
    foreground: bool,
}

/// A node of the graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub identity: ObjectRef,
    /// The object's ownerReferences (empty for a virtual node).
    pub owners: Vec<OwnerReference>,
    /// The uids of the nodes whose ownerReferences name this one.
    pub dependents: BTreeSet<String>,
    /// The object has a deletionTimestamp (one way: never unset).
    pub being_deleted: bool,
    /// The object is being deleted with the `foregroundDeletion` finalizer.
    pub deleting_dependents: bool,
    /// A monitor has seen the object (not only an ownerReference naming it).
    pub observed: bool,
    seen: Option<Seen>,
}

impl Node {
    fn virtual_node(identity: ObjectRef) -> Self {
        Self {
            identity,
            owners: Vec::new(),
            dependents: BTreeSet::new(),
            being_deleted: false,
            deleting_dependents: false,
            observed: false,
            seen: None,
        }
    }
}

/// An object as a monitor reports it (its metadata only).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    pub identity: ObjectRef,
    pub owners: Vec<OwnerReference>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Observed {
    fn seen(&self) -> Seen {
        let has = |f: &str| self.finalizers.iter().any(|x| x == f);
        Seen {
            deleting: self.deleting,
            orphan: has(ORPHAN),
            foreground: has(FOREGROUND),
        }
    }
}

/// What changes the graph.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A monitor saw an object added or changed.
    Upsert(Observed),
    /// A monitor saw an object deleted.
    Deleted(Observed),
    /// The collector found no object with this identity (a live read answered 404 or
    /// another uid): upstream's virtual delete event.
    VirtualDelete(ObjectRef),
    /// A monitor listed its resource again (after a watch expired): these uids are what the
    /// list had; the graph's other observed objects of that apiVersion and kind are gone.
    Relisted {
        api_version: String,
        kind: String,
        uids: HashSet<String>,
    },
}

/// What the graph asks of the collector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Look at this uid in the attempt-to-delete queue.
    AttemptToDelete(String),
    /// The same, after the queue's rate limit (a virtual node given another identity).
    AttemptToDeleteRateLimited(String),
    /// Orphan the dependents of this uid, then remove its `orphan` finalizer.
    AttemptToOrphan(String),
    /// Warn on the dependent: its ownerReference names an owner in another namespace
    /// (upstream's `OwnerRefInvalidNamespace` event).
    InvalidNamespaceOwnerRef {
        dependent: Box<ObjectRef>,
        owner: Box<ObjectRef>,
    },
}

/// Owners known to be absent (upstream's `ReferenceCache`, an LRU of 500), so that the
/// dependents of one deleted owner cost one live read, not one each.
#[derive(Debug)]
pub struct AbsentOwners {
    capacity: usize,
    tick: u64,
    by_ref: HashMap<ObjectRef, u64>,
}

impl AbsentOwners {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            tick: 0,
            by_ref: HashMap::new(),
        }
    }

    pub fn add(&mut self, r: ObjectRef) {
        self.tick += 1;
        self.by_ref.insert(r, self.tick);
        if self.by_ref.len() > self.capacity {
            // The least recently used goes; 500 entries make a scan cheap.
            if let Some(oldest) = self
                .by_ref
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(r, _)| r.clone())
            {
                self.by_ref.remove(&oldest);
            }
        }
    }

    /// Whether `r` is known absent (which makes it the most recently used).
    pub fn has(&mut self, r: &ObjectRef) -> bool {
        self.tick += 1;
        match self.by_ref.get_mut(r) {
            Some(t) => {
                *t = self.tick;
                true
            }
            None => false,
        }
    }
}

/// The dependency graph and the absent-owner cache it shares with the collector.
#[derive(Debug)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    pub absent: AbsentOwners,
}

impl Default for Graph {
    fn default() -> Self {
        Self {
            nodes: HashMap::new(),
            absent: AbsentOwners::new(500),
        }
    }
}

/// Upstream's `referencesDiffs`: added, removed, and changed (old, new) references by uid.
type RefPair = (OwnerReference, OwnerReference);
fn references_diffs(
    old: &[OwnerReference],
    new: &[OwnerReference],
) -> (Vec<OwnerReference>, Vec<OwnerReference>, Vec<RefPair>) {
    let mut old_by_uid: HashMap<&str, &OwnerReference> =
        old.iter().map(|r| (r.uid.as_str(), r)).collect();
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for r in new {
        match old_by_uid.remove(r.uid.as_str()) {
            Some(o) if o != r => changed.push((o.clone(), r.clone())),
            Some(_) => {}
            None => added.push(r.clone()),
        }
    }
    let mut removed: Vec<OwnerReference> = old_by_uid.into_values().cloned().collect();
    removed.sort_by(|a, b| a.uid.cmp(&b.uid));
    (added, removed, changed)
}

impl Graph {
    pub fn node(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The dependents of `uid` as nodes.
    pub fn dependents(&self, uid: &str) -> Vec<Node> {
        self.nodes
            .get(uid)
            .map(|n| {
                n.dependents
                    .iter()
                    .filter_map(|d| self.nodes.get(d).cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The dependents whose reference to `uid` has `blockOwnerDeletion: true` (upstream's
    /// `blockingDependents`): what a foreground deletion of `uid` waits for.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<Node> {
        self.dependents(uid)
            .into_iter()
            .filter(|d| d.owners.iter().any(|o| o.uid == uid && blocks(o)))
            .collect()
    }

    /// Applies one change; answers what the collector must look at.
    pub fn apply(&mut self, change: Change) -> Vec<Effect> {
        let mut fx = Vec::new();
        match change {
            Change::Upsert(o) => {
                self.mark_observed(&o.identity, &mut fx);
                self.upsert(o, &mut fx);
            }
            Change::Deleted(o) => {
                self.mark_observed(&o.identity, &mut fx);
                self.delete(&o.identity, false, &mut fx);
            }
            Change::VirtualDelete(identity) => self.delete(&identity, true, &mut fx),
            Change::Relisted {
                api_version,
                kind,
                uids,
            } => {
                let mut gone: Vec<ObjectRef> = self
                    .nodes
                    .values()
                    .filter(|n| {
                        n.observed
                            && n.identity.api_version == api_version
                            && n.identity.kind == kind
                            && !uids.contains(&n.identity.uid)
                    })
                    .map(|n| n.identity.clone())
                    .collect();
                gone.sort();
                for identity in gone {
                    self.delete(&identity, false, &mut fx);
                }
            }
        }
        fx
    }

    /// A monitor's event for a virtual node makes it observed; if it was known by other
    /// coordinates, its dependents that name those are looked at again.
    fn mark_observed(&mut self, observed: &ObjectRef, fx: &mut Vec<Effect>) {
        let Some(existing) = self.nodes.get(&observed.uid) else {
            return;
        };
        if existing.observed {
            return;
        }
        if existing.identity != *observed {
            let dependents: Vec<Node> = self.dependents(&observed.uid);
            let (_, mismatched) = partition_dependents(&dependents, observed);
            for dep in mismatched {
                if !observed.namespace.is_empty() && dep.identity.namespace != observed.namespace {
                    if let Some(e) = invalid_namespace_event(&dep, &observed.uid) {
                        fx.push(e);
                    }
                }
                fx.push(Effect::AttemptToDelete(dep.identity.uid.clone()));
            }
        }
        if let Some(n) = self.nodes.get_mut(&observed.uid) {
            n.identity = observed.clone();
            n.observed = true;
        }
    }

    fn upsert(&mut self, o: Observed, fx: &mut Vec<Effect>) {
        let uid = o.identity.uid.clone();
        let seen = o.seen();
        let mut diffs = None;
        let old = match self.nodes.get_mut(&uid) {
            None => {
                let node = Node {
                    identity: o.identity.clone(),
                    owners: o.owners.clone(),
                    dependents: BTreeSet::new(),
                    being_deleted: o.deleting,
                    deleting_dependents: o.deleting && seen.foreground,
                    observed: true,
                    seen: None,
                };
                self.nodes.insert(uid.clone(), node);
                self.add_dependent_to_owners(&uid, &o.owners, fx);
                None
            }
            Some(existing) => {
                // A new apiVersion or kind for the same uid (the preferred version changed).
                existing.identity.api_version = o.identity.api_version.clone();
                existing.identity.kind = o.identity.kind.clone();
                let (added, removed, changed) = references_diffs(&existing.owners, &o.owners);
                if !added.is_empty() || !removed.is_empty() || !changed.is_empty() {
                    existing.owners = o.owners.clone();
                    diffs = Some((added, removed, changed));
                }
                if o.deleting {
                    existing.being_deleted = true;
                }
                existing.seen
            }
        };
        if let Some((added, removed, changed)) = diffs {
            self.add_unblocked_owners_to_delete_queue(&removed, &changed, fx);
            self.add_dependent_to_owners(&uid, &added, fx);
            for r in &removed {
                if let Some(owner) = self.nodes.get_mut(&r.uid) {
                    owner.dependents.remove(&uid);
                }
            }
        }
        self.process_transitions(&uid, old, seen, fx);
        if let Some(n) = self.nodes.get_mut(&uid) {
            n.seen = Some(seen);
        }
    }

    /// Upstream's `processTransitions`: a deletion that *starts* with the `orphan` or the
    /// `foregroundDeletion` finalizer (against the monitor's last view of the object).
    fn process_transitions(
        &mut self,
        uid: &str,
        old: Option<Seen>,
        new: Seen,
        fx: &mut Vec<Effect>,
    ) {
        let starts = |has_new: bool, has_old: fn(&Seen) -> bool| {
            new.deleting && has_new && old.is_none_or(|o| !o.deleting || !has_old(&o))
        };
        if starts(new.orphan, |s| s.orphan) {
            fx.push(Effect::AttemptToOrphan(uid.to_owned()));
            return;
        }
        if starts(new.foreground, |s| s.foreground) {
            if let Some(n) = self.nodes.get_mut(uid) {
                n.deleting_dependents = true;
                for dep in &n.dependents {
                    fx.push(Effect::AttemptToDelete(dep.clone()));
                }
            }
            fx.push(Effect::AttemptToDelete(uid.to_owned()));
        }
    }

    /// Upstream's `addUnblockedOwnersToDeleteQueue`: an owner waiting for its blocking
    /// dependents is looked at again when a reference to it goes or stops blocking.
    fn add_unblocked_owners_to_delete_queue(
        &self,
        removed: &[OwnerReference],
        changed: &[RefPair],
        fx: &mut Vec<Effect>,
    ) {
        for r in removed {
            if blocks(r) && self.nodes.contains_key(&r.uid) {
                fx.push(Effect::AttemptToDelete(r.uid.clone()));
            }
        }
        for (old, new) in changed {
            if blocks(old) && !blocks(new) && self.nodes.contains_key(&new.uid) {
                fx.push(Effect::AttemptToDelete(new.uid.clone()));
            }
        }
    }

    /// Upstream's `addDependentToOwners`: `uid` joins each owner's dependents; an owner not
    /// in the graph becomes a virtual node, to be verified by a live read. A reference whose
    /// coordinates disagree with the owner's observed ones has its dependent looked at.
    fn add_dependent_to_owners(
        &mut self,
        uid: &str,
        owners: &[OwnerReference],
        fx: &mut Vec<Effect>,
    ) {
        let Some(dependent) = self.nodes.get(uid).cloned() else {
            return;
        };
        let mut potentially_invalid = false;
        for owner in owners {
            match self.nodes.get_mut(&owner.uid) {
                None => {
                    let mut node = Node::virtual_node(ObjectRef::of_owner(
                        owner,
                        &dependent.identity.namespace,
                    ));
                    node.dependents.insert(uid.to_owned());
                    self.nodes.insert(owner.uid.clone(), node);
                    fx.push(Effect::AttemptToDelete(owner.uid.clone()));
                }
                Some(owner_node) => {
                    owner_node.dependents.insert(uid.to_owned());
                    if potentially_invalid {
                        continue;
                    }
                    let owner_namespaced = !owner_node.identity.namespace.is_empty();
                    if owner_namespaced
                        && owner_node.identity.namespace != dependent.identity.namespace
                    {
                        if owner_node.observed {
                            if let Some(e) = invalid_namespace_event(&dependent, &owner.uid) {
                                fx.push(e);
                            }
                        }
                        potentially_invalid = true;
                    } else if !owner_node.identity.matches(owner) {
                        potentially_invalid = true;
                    } else if !owner_namespaced
                        && owner_node.identity.namespace != dependent.identity.namespace
                        && !owner_node.observed
                    {
                        // A virtual cluster-scoped owner of a namespaced dependent may be a
                        // missing namespaced owner (upstream issue 98040).
                        potentially_invalid = true;
                    }
                }
            }
        }
        if potentially_invalid {
            fx.push(Effect::AttemptToDelete(uid.to_owned()));
        }
    }

    /// Upstream's delete-event branch of `processGraphChanges`.
    fn delete(&mut self, deleted: &ObjectRef, virtual_event: bool, fx: &mut Vec<Effect>) {
        let Some(existing) = self.nodes.get(&deleted.uid).cloned() else {
            return;
        };
        let mut remove = true;
        if virtual_event {
            let dependents = self.dependents(&deleted.uid);
            if !existing.observed {
                // Not sure of its coordinates: dependents may name it differently.
                let (matching, nonmatching) = partition_dependents(&dependents, deleted);
                if !nonmatching.is_empty() {
                    remove = false;
                    if !matching.is_empty() {
                        self.absent.add(deleted.clone());
                        for d in &matching {
                            fx.push(Effect::AttemptToDelete(d.identity.uid.clone()));
                        }
                    }
                    if existing.identity == *deleted {
                        if let Some(other) = alternate_owner_identity(&nonmatching, deleted) {
                            if let Some(n) = self.nodes.get_mut(&deleted.uid) {
                                n.identity = other;
                            }
                            fx.push(Effect::AttemptToDeleteRateLimited(deleted.uid.clone()));
                        }
                    }
                }
            } else if existing.identity != *deleted {
                // The observed object is another than the one found absent.
                remove = false;
                let (matching, _) = partition_dependents(&dependents, deleted);
                if !matching.is_empty() {
                    self.absent.add(deleted.clone());
                    for d in &matching {
                        fx.push(Effect::AttemptToDelete(d.identity.uid.clone()));
                    }
                }
            }
        }
        if !remove {
            return;
        }
        self.nodes.remove(&deleted.uid);
        for owner in &existing.owners {
            if let Some(o) = self.nodes.get_mut(&owner.uid) {
                o.dependents.remove(&deleted.uid);
            }
        }
        if !existing.dependents.is_empty() {
            self.absent.add(if virtual_event {
                deleted.clone()
            } else {
                existing.identity.clone()
            });
        }
        for d in &existing.dependents {
            fx.push(Effect::AttemptToDelete(d.clone()));
        }
        for owner in &existing.owners {
            if self
                .nodes
                .get(&owner.uid)
                .is_some_and(|o| o.deleting_dependents)
            {
                // Its foreground deletion may be waiting for this one.
                fx.push(Effect::AttemptToDelete(owner.uid.clone()));
            }
        }
    }
}

/// The `OwnerRefInvalidNamespace` warning for `dependent`'s reference to `owner_uid`.
fn invalid_namespace_event(dependent: &Node, owner_uid: &str) -> Option<Effect> {
    let r = dependent.owners.iter().find(|o| o.uid == owner_uid)?;
    Some(Effect::InvalidNamespaceOwnerRef {
        dependent: Box::new(dependent.identity.clone()),
        owner: Box::new(ObjectRef::of_owner(r, &dependent.identity.namespace)),
    })
}

/// Upstream's `partitionDependents`: the dependents whose reference to `owner.uid` matches
/// its coordinates (and namespace), and those with one that does not (a dependent can be in
/// both).
pub fn partition_dependents(dependents: &[Node], owner: &ObjectRef) -> (Vec<Node>, Vec<Node>) {
    let owner_namespaced = !owner.namespace.is_empty();
    let mut matching = Vec::new();
    let mut nonmatching = Vec::new();
    for dep in dependents {
        let mut found_match = false;
        let mut found_mismatch = false;
        if owner_namespaced && owner.namespace != dep.identity.namespace {
            found_mismatch = true;
        } else {
            for r in dep.owners.iter().filter(|r| r.uid == owner.uid) {
                if owner.matches(r) {
                    found_match = true;
                } else {
                    found_mismatch = true;
                }
            }
        }
        if found_match {
            matching.push(dep.clone());
        }
        if found_mismatch {
            nonmatching.push(dep.clone());
        }
    }
    (matching, nonmatching)
}

/// Upstream's `getAlternateOwnerIdentity`: another identity the dependents give the absent
/// owner's uid, the first after `absent` in order (else the first), or none.
pub fn alternate_owner_identity(deps: &[Node], absent: &ObjectRef) -> Option<ObjectRef> {
    let cluster_scoped = absent.namespace.is_empty();
    let mut seen: HashSet<ObjectRef> = HashSet::from([absent.clone()]);
    let mut first: Option<ObjectRef> = None;
    let mut first_following: Option<ObjectRef> = None;
    for dep in deps {
        for r in dep.owners.iter().filter(|r| r.uid == absent.uid) {
            if absent.matches(r) && (cluster_scoped || absent.namespace == dep.identity.namespace) {
                continue;
            }
            let mut candidate = ObjectRef::of_owner(r, &dep.identity.namespace);
            if cluster_scoped
                && candidate.api_version == absent.api_version
                && candidate.kind == absent.kind
            {
                candidate.namespace.clear();
            }
            if !seen.insert(candidate.clone()) {
                continue;
            }
            if first.as_ref().is_none_or(|f| candidate < *f) {
                first = Some(candidate.clone());
            }
            if *absent < candidate && first_following.as_ref().is_none_or(|f| candidate < *f) {
                first_following = Some(candidate);
            }
        }
    }
    first_following.or(first)
}
