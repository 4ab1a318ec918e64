//! The StatefulSet's decisions, pure: what `defaultStatefulSetControl.updateStatefulSet`
//! (upstream's `stateful_set_control.go`) would do over the cached pods and claims, as a
//! [`Plan`] of steps for the I/O half to carry out, and the status it would write. Also the
//! identity, storage and claim-ownership rules of `stateful_set_utils.go`.
//!
//! A plan is stages (replicas, claim fixes of condemned pods, condemned deletions, the
//! rolling update), each a list of units (the work on one pod, in order). OrderedReady
//! ("monotonic") runs units one at a time and the plan already stops where upstream's
//! `runForAll` would return (a pod just created, one not Running and Ready or not yet
//! available, one terminating); Parallel runs a stage's units in slow-start batches.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;

use crate::pods::{self, controller_of};

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
pub use crate::history::POD_REVISION_LABEL as REVISION_LABEL;

const RETAIN: &str = "Retain";
const DELETE: &str = "Delete";

// ---------------------------------------------------------------------------------------
// The set's fields, with upstream's defaults.

pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn min_ready_seconds(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// `getStartOrdinal`.
pub fn start_ordinal(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
}

/// `getEndOrdinal` (inclusive).
pub fn end_ordinal(set: &StatefulSet) -> i32 {
    start_ordinal(set) + replicas(set) - 1
}

pub fn set_name(set: &StatefulSet) -> &str {
    set.metadata.name.as_deref().unwrap_or("")
}

fn service_name(set: &StatefulSet) -> Option<String> {
    set.spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .filter(|s| !s.is_empty())
}

/// `allowsBurst`: the Parallel pod management policy.
pub fn allows_burst(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.pod_management_policy.as_deref())
        == Some("Parallel")
}

pub fn update_strategy_type(set: &StatefulSet) -> &str {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

fn partition(set: &StatefulSet) -> Option<i32> {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .map(|r| r.partition.unwrap_or(0))
}

pub fn revision_history_limit(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
        .unwrap_or(10)
}

fn claim_templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or(&[])
}

/// `getPersistentVolumeClaimRetentionPolicy`: (whenDeleted, whenScaled), Retain when unset.
pub fn retention_policy(set: &StatefulSet) -> (&str, &str) {
    let p = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    (
        p.and_then(|p| p.when_deleted.as_deref()).unwrap_or(RETAIN),
        p.and_then(|p| p.when_scaled.as_deref()).unwrap_or(RETAIN),
    )
}

// ---------------------------------------------------------------------------------------
// Pods: ordinals, identity, storage.

/// `getParentNameAndOrdinal`: `(.*)-([0-9]+)$`, the ordinal a 32-bit number.
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i32)> {
    let (parent, digits) = name.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<i32>().ok().map(|o| (parent, o))
}

/// The pod's ordinal, -1 when its name has none.
pub fn ordinal(pod: &Pod) -> i32 {
    pod.metadata
        .name
        .as_deref()
        .and_then(parent_and_ordinal)
        .map_or(-1, |(_, o)| o)
}

/// `isMemberOf`: the name is `<set>-<ordinal>`.
pub fn is_member_of(set: &StatefulSet, pod: &Pod) -> bool {
    pod.metadata
        .name
        .as_deref()
        .and_then(parent_and_ordinal)
        .is_some_and(|(p, _)| p == set_name(set))
}

pub fn pod_name(set: &StatefulSet, ordinal: i32) -> String {
    format!("{}-{ordinal}", set_name(set))
}

/// `getPersistentVolumeClaimName`: `<claim>-<set>-<ordinal>`.
pub fn claim_name(set: &StatefulSet, claim: &PersistentVolumeClaim, ordinal: i32) -> String {
    format!(
        "{}-{}-{ordinal}",
        claim.metadata.name.as_deref().unwrap_or(""),
        set_name(set)
    )
}

pub fn in_ordinal_range(pod: &Pod, set: &StatefulSet) -> bool {
    let o = ordinal(pod);
    o >= start_ordinal(set) && o <= end_ordinal(set)
}

fn label<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// The revision a pod was made from (its `controller-revision-hash` label).
pub fn pod_revision(pod: &Pod) -> &str {
    label(pod, REVISION_LABEL).unwrap_or("")
}

/// `identityMatches`.
pub fn identity_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let Some((parent, ord)) = pod.metadata.name.as_deref().and_then(parent_and_ordinal) else {
        return false;
    };
    let name = pod.metadata.name.as_deref().unwrap_or("");
    parent == set_name(set)
        && name == pod_name(set, ord)
        && pod.metadata.namespace == set.metadata.namespace
        && label(pod, POD_NAME_LABEL) == Some(name)
}

/// `storageMatches`: a volume per claim template naming the pod's claim.
pub fn storage_matches(set: &StatefulSet, pod: &Pod) -> bool {
    let ord = ordinal(pod);
    if ord < 0 {
        return false;
    }
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or(&[]);
    claim_templates(set).iter().all(|t| {
        let want = claim_name(set, t, ord);
        volumes.iter().any(|v| {
            Some(v.name.as_str()) == t.metadata.name.as_deref()
                && v.persistent_volume_claim
                    .as_ref()
                    .is_some_and(|c| c.claim_name == want)
        })
    })
}

/// `getPersistentVolumeClaims`: the claims of the pod at `ordinal`, by template name, in
/// the templates' order: named, in the set's namespace, labelled with the selector's
/// matchLabels over the template's labels.
pub fn claims_for(set: &StatefulSet, ordinal: i32) -> Vec<(String, PersistentVolumeClaim)> {
    let match_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    claim_templates(set)
        .iter()
        .map(|t| {
            let mut claim = t.clone();
            claim.metadata.name = Some(claim_name(set, t, ordinal));
            claim.metadata.namespace = set.metadata.namespace.clone();
            let mut labels = claim.metadata.labels.take().unwrap_or_default();
            labels.extend(match_labels.clone());
            claim.metadata.labels = (!labels.is_empty()).then_some(labels);
            claim.status = None;
            (t.metadata.name.clone().unwrap_or_default(), claim)
        })
        .collect()
}

/// `updateStorage`: a volume per claim, then the pod's other volumes.
pub fn update_storage(set: &StatefulSet, pod: &mut Pod) {
    let ord = ordinal(pod);
    let claims = claims_for(set, ord);
    let spec = pod.spec.get_or_insert_with(Default::default);
    let current = spec.volumes.take().unwrap_or_default();
    let names: HashSet<&str> = claims.iter().map(|(n, _)| n.as_str()).collect();
    let mut volumes: Vec<Volume> = claims
        .iter()
        .map(|(name, claim)| Volume {
            name: name.clone(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.metadata.name.clone().unwrap_or_default(),
                read_only: None,
            }),
            ..Volume::default()
        })
        .collect();
    volumes.extend(
        current
            .into_iter()
            .filter(|v| !names.contains(v.name.as_str())),
    );
    spec.volumes = Some(volumes);
}

/// `updateIdentity`: name, namespace and the pod-name and pod-index labels.
pub fn update_identity(set: &StatefulSet, pod: &mut Pod) {
    let ord = ordinal(pod);
    let name = pod_name(set, ord);
    pod.metadata.name = Some(name.clone());
    pod.metadata.namespace = set.metadata.namespace.clone();
    let labels = pod.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(POD_NAME_LABEL.into(), name);
    labels.insert(POD_INDEX_LABEL.into(), ord.to_string());
}

/// `newStatefulSetPod`: the template's pod for `ordinal`, controlled by the set, with its
/// identity (hostname and subdomain only at creation) and storage.
pub fn new_pod(set: &StatefulSet, ordinal: i32) -> Pod {
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let namespace = set.metadata.namespace.clone().unwrap_or_default();
    let mut pod = pods::pod_from_template(&template, &namespace, "", pods::controller_ref(set));
    pod.metadata.generate_name = None;
    pod.metadata.name = Some(pod_name(set, ordinal));
    update_identity(set, &mut pod);
    let name = pod.metadata.name.clone();
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.hostname = name;
    spec.subdomain = service_name(set);
    update_storage(set, &mut pod);
    pod
}

/// `newVersionedStatefulSetPod`: below the partition (or, without a rollingUpdate, below
/// the current replicas) the current revision's pod, else the update revision's. Upstream's
/// condition groups as `(RollingUpdate && nil && o < start+current) || (non-nil && o <
/// start+partition)`, which this keeps.
pub fn new_versioned_pod(
    current_set: &StatefulSet,
    update_set: &StatefulSet,
    current_revision: &str,
    update_revision: &str,
    ordinal: i32,
) -> Pod {
    let start = start_ordinal(current_set);
    let rolling = update_strategy_type(current_set) == "RollingUpdate";
    let current_replicas = current_set
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .unwrap_or(0);
    let use_current = match partition(current_set) {
        None => rolling && ordinal < start + current_replicas,
        Some(p) => ordinal < start + p,
    };
    let (set, revision) = if use_current {
        (current_set, current_revision)
    } else {
        (update_set, update_revision)
    };
    let mut pod = new_pod(set, ordinal);
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_LABEL.into(), revision.into());
    pod
}

/// The template a revision records (its data's `spec.template` without `$patch`).
pub fn revision_template(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = revision
        .data
        .as_ref()?
        .0
        .get("spec")?
        .get("template")?
        .clone();
    if let Some(m) = t.as_object_mut() {
        m.remove("$patch");
    }
    serde_json::from_value(t).ok()
}

/// `ApplyRevision`: the set with the revision's template (the patch replaces the template).
pub fn apply_revision(set: &StatefulSet, revision: &ControllerRevision) -> StatefulSet {
    let mut out = set.clone();
    if let (Some(t), Some(spec)) = (revision_template(revision), out.spec.as_mut()) {
        spec.template = t;
    }
    out
}

// ---------------------------------------------------------------------------------------
// Pod states.

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// `isCreated`: the API server gave it a phase.
pub fn is_created(pod: &Pod) -> bool {
    !phase(pod).is_empty()
}

pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

pub fn is_running_and_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && pods::is_ready(pod)
}

pub fn is_running_and_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    pods::is_available(pod, min_ready_seconds, now)
}

fn is_healthy(pod: &Pod) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}

/// `isUnavailable`.
pub fn is_unavailable(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    !is_healthy(pod) || !is_running_and_available(pod, min_ready_seconds, now)
}

// ---------------------------------------------------------------------------------------
// Claim ownership (the retention policy).

fn uid(meta: &ObjectMeta) -> &str {
    meta.uid.as_deref().unwrap_or("")
}

fn refs(claim: &PersistentVolumeClaim) -> &[OwnerReference] {
    claim.metadata.owner_references.as_deref().unwrap_or(&[])
}

fn matches_set(r: &OwnerReference, set: &StatefulSet) -> bool {
    r.api_version == "apps/v1"
        && r.kind == "StatefulSet"
        && Some(&r.name) == set.metadata.name.as_ref()
}

fn matches_pod(r: &OwnerReference, pod: &Pod) -> bool {
    r.api_version == "v1" && r.kind == "Pod" && Some(&r.name) == pod.metadata.name.as_ref()
}

fn has_owner_ref(claim: &PersistentVolumeClaim, owner_uid: &str) -> bool {
    refs(claim).iter().any(|r| r.uid == owner_uid)
}

/// `hasStaleOwnerRef` for the set.
fn stale_set_ref(claim: &PersistentVolumeClaim, set: &StatefulSet) -> bool {
    refs(claim)
        .iter()
        .find(|r| matches_set(r, set))
        .is_some_and(|r| r.uid != uid(&set.metadata))
}

/// `hasStaleOwnerRef` for the pod: a reference to a pod of this name but another UID
/// (including a pod not created yet, whose UID is empty).
pub fn stale_pod_ref(claim: &PersistentVolumeClaim, pod: &Pod) -> bool {
    refs(claim)
        .iter()
        .find(|r| matches_pod(r, pod))
        .is_some_and(|r| r.uid != uid(&pod.metadata))
}

/// `hasUnexpectedController`.
pub fn has_unexpected_controller(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
) -> bool {
    let (when_deleted, when_scaled) = retention_policy(set);
    if when_deleted == RETAIN && when_scaled == RETAIN {
        return false;
    }
    for r in refs(claim) {
        if matches_set(r, set) {
            if r.uid != uid(&set.metadata) {
                return true;
            }
            continue;
        }
        if matches_pod(r, pod) {
            if r.uid != uid(&pod.metadata) {
                return true;
            }
            continue;
        }
        if r.controller == Some(true) {
            return true;
        }
    }
    false
}

fn has_non_controller_owner(claim: &PersistentVolumeClaim, set: &StatefulSet, pod: &Pod) -> bool {
    refs(claim).iter().any(|r| {
        (r.uid == uid(&set.metadata) || r.uid == uid(&pod.metadata)) && r.controller != Some(true)
    })
}

/// `isClaimOwnerUpToDate`: Retain/Retain no reference; Retain on scale, Delete on deletion
/// the set's; Delete on scale the pod's once it is scaled down (and, with Delete on
/// deletion, the set's while it is not).
pub fn is_claim_owner_up_to_date(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
) -> bool {
    if stale_set_ref(claim, set) || stale_pod_ref(claim, pod) {
        return true;
    }
    let (set_uid, pod_uid) = (uid(&set.metadata), uid(&pod.metadata));
    if has_unexpected_controller(claim, set, pod) {
        return !(has_owner_ref(claim, set_uid) || has_owner_ref(claim, pod_uid));
    }
    if has_non_controller_owner(claim, set, pod) {
        return false;
    }
    let scaled_down = !in_ordinal_range(pod, set);
    let has_set = has_owner_ref(claim, set_uid);
    let has_pod = has_owner_ref(claim, pod_uid);
    match retention_policy(set) {
        (DELETE, RETAIN) => has_set && !has_pod,
        (RETAIN, DELETE) => !has_set && scaled_down == has_pod,
        (DELETE, DELETE) => scaled_down != has_set && scaled_down == has_pod,
        _ => !has_set && !has_pod,
    }
}

fn controller_ref_to(api_version: &str, kind: &str, meta: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.into(),
        kind: kind.into(),
        name: meta.name.clone().unwrap_or_default(),
        uid: uid(meta).into(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// `updateClaimOwnerRefForSetAndPod`: the claim's references with ours replaced as the
/// policy wants them.
pub fn claim_owner_refs(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
) -> Vec<OwnerReference> {
    let unexpected = has_unexpected_controller(claim, set, pod);
    let mut out: Vec<OwnerReference> = refs(claim)
        .iter()
        .filter(|r| !matches_set(r, set) && !matches_pod(r, pod))
        .cloned()
        .collect();
    if unexpected {
        return out;
    }
    let scaled_down = !in_ordinal_range(pod, set);
    let add = |out: &mut Vec<OwnerReference>, r: OwnerReference| {
        if !out.iter().any(|o| o.uid == r.uid) {
            out.push(r);
        }
    };
    let set_ref = controller_ref_to("apps/v1", "StatefulSet", &set.metadata);
    let pod_ref = controller_ref_to("v1", "Pod", &pod.metadata);
    match retention_policy(set) {
        (DELETE, RETAIN) => add(&mut out, set_ref),
        (RETAIN, DELETE) if scaled_down => add(&mut out, pod_ref),
        (DELETE, DELETE) => {
            if scaled_down {
                add(&mut out, pod_ref);
            } else {
                add(&mut out, set_ref);
            }
        }
        _ => {}
    }
    out
}

/// `hasUnexpectedController` of a claim whose retention policy is ignored, for the
/// `ConflictingController` warning.
pub fn conflicting_controller_message(claim_name: &str) -> String {
    format!("PersistentVolumeClaim {claim_name} has a conflicting OwnerReference that acts as a manging controller, the retention policy is ignored for this claim")
}

// ---------------------------------------------------------------------------------------
// The plan.

/// One write, as the I/O half carries it out.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `CreateStatefulPod`: the missing claims first (an error on any ends the step with
    /// `FailedCreate`), then the pod, then the claims' references.
    CreatePod {
        pod: Box<Pod>,
        claims: Vec<PersistentVolumeClaim>,
        /// Claims of the pod being deleted: the pod cannot be created yet.
        deleting: Vec<String>,
    },
    /// `createMissingPersistentVolumeClaims` for a pending pod.
    CreateClaims {
        pod: Box<Pod>,
        claims: Vec<PersistentVolumeClaim>,
        deleting: Vec<String>,
    },
    /// `UpdateStatefulPod`: claims (missing ones created, references fixed), then the pod
    /// when its identity or storage changed.
    UpdatePod {
        pod: Box<Pod>,
        changed: bool,
        create_claims: Vec<PersistentVolumeClaim>,
        claims: Vec<PersistentVolumeClaim>,
    },
    /// `UpdatePodClaimForRetentionPolicy` for a condemned pod: claims with new references.
    UpdateClaims {
        pod: Box<Pod>,
        claims: Vec<PersistentVolumeClaim>,
    },
    /// `DeleteStatefulPod` (the pod's UID as precondition).
    DeletePod { pod: Box<Pod> },
}

impl Step {
    pub fn pod(&self) -> &Pod {
        match self {
            Step::CreatePod { pod, .. }
            | Step::CreateClaims { pod, .. }
            | Step::UpdatePod { pod, .. }
            | Step::UpdateClaims { pod, .. }
            | Step::DeletePod { pod } => pod,
        }
    }
}

/// What one sync does: stages of units (each unit's steps in order), one unit at a time
/// when `monotonic`, and the status to record.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub monotonic: bool,
    pub stages: Vec<Vec<Vec<Step>>>,
    pub status: StatefulSetStatus,
}

impl Plan {
    /// Every step, in order (for tests and logs).
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.stages.iter().flatten().flatten()
    }
}

/// What [`plan`] reads.
pub struct Input<'a> {
    pub set: &'a StatefulSet,
    /// The set at its current and update revisions (`ApplyRevision`).
    pub current_set: &'a StatefulSet,
    pub update_set: &'a StatefulSet,
    pub current_revision: &'a str,
    pub update_revision: &'a str,
    pub collision_count: i32,
    /// The set's pods (claimed).
    pub pods: &'a [Arc<Pod>],
    /// A claim of the set's namespace by name, from the cache.
    pub claim: &'a dyn Fn(&str) -> Option<Arc<PersistentVolumeClaim>>,
    pub now: Timestamp,
}

/// `updateStatus` over `pods` (those with an ordinal).
pub fn replica_status(
    status: &mut StatefulSetStatus,
    pods: &[&Pod],
    min_ready_seconds: i32,
    current_revision: &str,
    update_revision: &str,
    now: Timestamp,
) {
    let (mut replicas, mut ready, mut available, mut current, mut updated) = (0, 0, 0, 0, 0);
    for pod in pods {
        if is_created(pod) {
            replicas += 1;
        }
        if is_running_and_ready(pod) {
            ready += 1;
            if is_running_and_available(pod, min_ready_seconds, now) {
                available += 1;
            }
        }
        if is_created(pod) && !is_terminating(pod) {
            let rev = pod_revision(pod);
            if rev == current_revision {
                current += 1;
            }
            if rev == update_revision {
                updated += 1;
            }
        }
    }
    status.replicas = replicas;
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.current_replicas = Some(current);
    status.updated_replicas = Some(updated);
}

fn missing_claims(
    set: &StatefulSet,
    ordinal: i32,
    lookup: &dyn Fn(&str) -> Option<Arc<PersistentVolumeClaim>>,
) -> (Vec<PersistentVolumeClaim>, Vec<String>) {
    let mut create = Vec::new();
    let mut deleting = Vec::new();
    for (_, claim) in claims_for(set, ordinal) {
        let name = claim.metadata.name.clone().unwrap_or_default();
        match lookup(&name) {
            None => create.push(claim),
            Some(c) if c.metadata.deletion_timestamp.is_some() => deleting.push(name),
            Some(_) => {}
        }
    }
    (create, deleting)
}

/// The pod's existing claims whose references the policy wants changed, changed.
fn claims_to_fix(
    set: &StatefulSet,
    pod: &Pod,
    lookup: &dyn Fn(&str) -> Option<Arc<PersistentVolumeClaim>>,
) -> Vec<PersistentVolumeClaim> {
    let ord = ordinal(pod);
    claim_templates(set)
        .iter()
        .filter_map(|t| lookup(&claim_name(set, t, ord)))
        .filter(|c| !is_claim_owner_up_to_date(c, set, pod))
        .map(|c| {
            let mut c = (*c).clone();
            c.metadata.owner_references = Some(claim_owner_refs(&c, set, pod));
            c
        })
        .collect()
}

/// `PodClaimIsStale`: with Delete on scale down, a claim referring to another pod of this
/// name blocks the pod's creation (the garbage collector is about to delete it).
fn claim_is_stale(
    set: &StatefulSet,
    pod: &Pod,
    lookup: &dyn Fn(&str) -> Option<Arc<PersistentVolumeClaim>>,
) -> bool {
    if retention_policy(set).1 == RETAIN {
        return false;
    }
    claims_for(set, ordinal(pod))
        .iter()
        .filter_map(|(_, c)| lookup(c.metadata.name.as_deref().unwrap_or("")))
        .any(|c| stale_pod_ref(&c, pod))
}

/// What `processReplica` does with the replica `pod` (`Err(())` = stop the pass, as
/// upstream's `true` return in monotonic mode; the steps so far still run).
fn process_replica(
    input: &Input<'_>,
    monotonic: bool,
    pod: &Pod,
    exists: bool,
    unit: &mut Vec<Step>,
) -> Result<(), ()> {
    let set = input.set;
    let lookup = input.claim;
    let min_ready = min_ready_seconds(set);
    if matches!(phase(pod), "Failed" | "Succeeded") {
        if !is_terminating(pod) {
            unit.push(Step::DeletePod {
                pod: Box::new(pod.clone()),
            });
        }
        // The new pod comes on the next sync, once this one is gone.
        return Err(());
    }
    if !exists {
        if claim_is_stale(set, pod, lookup) {
            return Err(());
        }
        let (claims, deleting) = missing_claims(set, ordinal(pod), lookup);
        unit.push(Step::CreatePod {
            pod: Box::new(pod.clone()),
            claims,
            deleting,
        });
        // In monotonic mode (and in any mode for a pod not there yet: nothing else can be
        // done with it before the cache has it) the pass ends here.
        return if monotonic { Err(()) } else { Ok(()) };
    }
    if phase(pod) == "Pending" {
        let (claims, deleting) = missing_claims(set, ordinal(pod), lookup);
        if !claims.is_empty() || !deleting.is_empty() {
            unit.push(Step::CreateClaims {
                pod: Box::new(pod.clone()),
                claims,
                deleting,
            });
        }
    }
    if monotonic
        && (is_terminating(pod)
            || !is_running_and_ready(pod)
            || !is_running_and_available(pod, min_ready, input.now))
    {
        return Err(());
    }
    let fix = claims_to_fix(input.update_set, pod, lookup);
    let identity = identity_matches(set, pod);
    let storage = storage_matches(set, pod);
    if identity && storage && fix.is_empty() {
        return Ok(());
    }
    let mut updated = pod.clone();
    let mut create_claims = Vec::new();
    if !identity {
        update_identity(input.update_set, &mut updated);
    }
    if !storage {
        update_storage(input.update_set, &mut updated);
        create_claims = missing_claims(input.update_set, ordinal(pod), lookup).0;
    }
    unit.push(Step::UpdatePod {
        pod: Box::new(updated),
        changed: !identity || !storage,
        create_claims,
        claims: fix,
    });
    Ok(())
}

/// Upstream's `getStatefulSetMaxUnavailable`: maxUnavailable (default 1) of the replicas,
/// rounded down, at least 1.
pub fn max_unavailable(set: &StatefulSet) -> Result<i32, String> {
    let v = set
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.clone());
    let n = match v {
        Some(v) => crate::deployment::util::scaled_value(&v, replicas(set), false)?,
        None => 1,
    };
    Ok(n.max(1))
}

fn max_unavailable_set(set: &StatefulSet) -> bool {
    set.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .is_some_and(|r| r.max_unavailable.is_some())
}

/// Upstream's `updateStatefulSet` over the cache, as a plan.
pub fn plan(input: &Input<'_>) -> Result<Plan, String> {
    let set = input.set;
    let min_ready = min_ready_seconds(set);
    let now = input.now;
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        current_revision: Some(input.current_revision.to_owned()),
        update_revision: Some(input.update_revision.to_owned()),
        collision_count: Some(input.collision_count),
        ..StatefulSetStatus::default()
    };

    let start = start_ordinal(set);
    let count = usize::try_from(replicas(set).max(0)).unwrap_or(0);
    let mut replicas_slots: Vec<Option<Arc<Pod>>> = vec![None; count];
    let mut condemned: Vec<Arc<Pod>> = Vec::new();
    for pod in input.pods {
        let o = ordinal(pod);
        if in_ordinal_range(pod, set) {
            if let Some(slot) = usize::try_from(o - start)
                .ok()
                .and_then(|i| replicas_slots.get_mut(i))
            {
                *slot = Some(pod.clone());
            }
        } else if o >= 0 {
            condemned.push(pod.clone());
        }
    }
    let with_ordinal: Vec<&Pod> = replicas_slots
        .iter()
        .flatten()
        .chain(condemned.iter())
        .map(|p| &**p)
        .collect();
    replica_status(
        &mut status,
        &with_ordinal,
        min_ready,
        input.current_revision,
        input.update_revision,
        now,
    );

    // Every empty slot gets a new pod at the right revision.
    let replicas: Vec<(Pod, bool)> = replicas_slots
        .iter()
        .enumerate()
        .map(|(i, p)| match p {
            Some(p) => ((**p).clone(), true),
            None => (
                new_versioned_pod(
                    input.current_set,
                    input.update_set,
                    input.current_revision,
                    input.update_revision,
                    start + i as i32,
                ),
                false,
            ),
        })
        .collect();
    condemned.sort_by_key(|p| std::cmp::Reverse(ordinal(p)));

    let first_unavailable: Option<String> = replicas
        .iter()
        .map(|(p, _)| p)
        .chain(condemned.iter().rev().map(|p| &**p))
        .find(|p| is_unavailable(p, min_ready, now))
        .and_then(|p| p.metadata.name.clone());

    let monotonic = !allows_burst(set);
    let mut out = Plan {
        monotonic,
        stages: Vec::new(),
        status: status.clone(),
    };
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(out);
    }

    // Stage 1: the replicas.
    let mut stage = Vec::new();
    let mut stop = false;
    for (pod, exists) in &replicas {
        let mut unit = Vec::new();
        let r = process_replica(input, monotonic, pod, *exists, &mut unit);
        if !unit.is_empty() {
            stage.push(unit);
        }
        if r.is_err() && monotonic {
            stop = true;
            break;
        }
    }
    // (Parallel: upstream's runForAll ignores a unit's "stop", only errors end the pass.)
    out.stages.push(stage);
    if stop {
        return Ok(out);
    }

    // Stage 2: claims of condemned pods.
    let mut stage = Vec::new();
    for pod in &condemned {
        let fix = claims_to_fix(input.update_set, pod, input.claim);
        if !fix.is_empty() {
            stage.push(vec![Step::UpdateClaims {
                pod: Box::new((**pod).clone()),
                claims: fix,
            }]);
        }
    }
    out.stages.push(stage);

    // Stage 3: condemned pods, highest ordinal first.
    let mut stage = Vec::new();
    for pod in &condemned {
        if is_terminating(pod) {
            if monotonic {
                out.stages.push(stage);
                return Ok(out);
            }
            continue;
        }
        let first = first_unavailable.as_deref() == pod.metadata.name.as_deref();
        if monotonic
            && !first
            && (!is_running_and_ready(pod) || !is_running_and_available(pod, min_ready, now))
        {
            out.stages.push(stage);
            return Ok(out);
        }
        stage.push(vec![Step::DeletePod {
            pod: Box::new((**pod).clone()),
        }]);
        if monotonic {
            // processCondemned returns true after a deletion: one per pass.
            out.stages.push(stage);
            return Ok(out);
        }
    }
    // (Monotonic: any condemned pod has ended the pass above.)
    out.stages.push(stage);

    if update_strategy_type(set) == "OnDelete" {
        return Ok(out);
    }

    // Stage 4: the rolling update, highest ordinal first, down to the partition.
    let update_min = usize::try_from(partition(set).unwrap_or(0).max(0)).unwrap_or(0);
    let mut stage = Vec::new();
    let mut current = out.status.current_replicas.unwrap_or(0);
    if max_unavailable_set(set) {
        // MaxUnavailableStatefulSet: up to maxUnavailable minus the unavailable replicas.
        let max = max_unavailable(set)?;
        let unavailable = replicas
            .iter()
            .filter(|(p, _)| is_unavailable(p, min_ready, now))
            .count() as i32;
        if unavailable <= max {
            let mut budget = max - unavailable;
            for (target, (pod, exists)) in replicas.iter().enumerate().rev() {
                if target < update_min || budget <= 0 {
                    break;
                }
                if pod_revision(pod) != input.update_revision && !is_terminating(pod) {
                    // (A pod not created yet is "deleted" as upstream's NotFound: counted.)
                    if *exists {
                        stage.push(vec![Step::DeletePod {
                            pod: Box::new(pod.clone()),
                        }]);
                    }
                    budget -= 1;
                    current -= 1;
                }
            }
        }
    } else {
        for (target, (pod, exists)) in replicas.iter().enumerate().rev() {
            if target < update_min {
                break;
            }
            if pod_revision(pod) != input.update_revision && !is_terminating(pod) {
                if *exists {
                    stage.push(vec![Step::DeletePod {
                        pod: Box::new(pod.clone()),
                    }]);
                }
                current -= 1;
                break;
            }
            if is_unavailable(pod, min_ready, now) {
                break;
            }
        }
    }
    out.status.current_replicas = Some(current);
    out.stages.push(stage);
    Ok(out)
}

/// `completeRollingUpdate`: every replica updated and ready makes the update revision
/// the current one.
pub fn complete_rolling_update(set: &StatefulSet, status: &mut StatefulSetStatus) {
    let want = replicas(set);
    if update_strategy_type(set) == "RollingUpdate"
        && status.updated_replicas.unwrap_or(0) == want
        && status.ready_replicas.unwrap_or(0) == want
        && status.replicas == want
    {
        status.current_replicas = status.updated_replicas;
        status.current_revision = status.update_revision.clone();
    }
}

/// `inconsistentStatus`: whether `status` differs from the set's in a field upstream
/// compares.
pub fn inconsistent_status(set: &StatefulSet, status: &StatefulSetStatus) -> bool {
    let old = set.status.clone().unwrap_or_default();
    let z = |v: Option<i32>| v.unwrap_or(0);
    status.observed_generation.unwrap_or(0) > old.observed_generation.unwrap_or(0)
        || status.replicas != old.replicas
        || z(status.current_replicas) != z(old.current_replicas)
        || z(status.ready_replicas) != z(old.ready_replicas)
        || z(status.updated_replicas) != z(old.updated_replicas)
        || status.current_revision.as_deref().unwrap_or("")
            != old.current_revision.as_deref().unwrap_or("")
        || z(status.available_replicas) != z(old.available_replicas)
        || status.update_revision.as_deref().unwrap_or("")
            != old.update_revision.as_deref().unwrap_or("")
}

/// The status as Go writes it: `omitempty` counts and strings left out when zero, the
/// others kept (availableReplicas, replicas), the conditions dropped as upstream's fresh
/// status has none.
pub fn wire_status(status: &StatefulSetStatus) -> StatefulSetStatus {
    let nz = |v: Option<i32>| v.filter(|n| *n != 0);
    StatefulSetStatus {
        replicas: status.replicas,
        ready_replicas: nz(status.ready_replicas),
        current_replicas: nz(status.current_replicas),
        updated_replicas: nz(status.updated_replicas),
        available_replicas: Some(status.available_replicas.unwrap_or(0)),
        current_revision: status.current_revision.clone().filter(|s| !s.is_empty()),
        update_revision: status.update_revision.clone().filter(|s| !s.is_empty()),
        observed_generation: status.observed_generation.filter(|g| *g != 0),
        collision_count: status.collision_count,
        conditions: None,
    }
}

/// The revisions in use (`truncateHistory`'s live set): current, update and every pod's.
pub fn live_revisions(current: &str, update: &str, pods: &[Arc<Pod>]) -> HashSet<String> {
    let mut live: HashSet<String> = [current.to_owned(), update.to_owned()].into();
    live.extend(pods.iter().map(|p| pod_revision(p).to_owned()));
    live
}

/// Whether the pod is controlled by the set (by UID).
pub fn controlled_by(pod: &Pod, set: &StatefulSet) -> bool {
    controller_of(&pod.metadata).is_some_and(|r| r.uid == uid(&set.metadata))
}
