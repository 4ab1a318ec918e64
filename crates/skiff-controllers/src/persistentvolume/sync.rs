//! The binder's decisions, as upstream's `pv_controller.go` takes them (`syncUnboundClaim`,
//! `syncBoundClaim`, `syncVolume`, `reclaimVolume`), and the objects its writes carry
//! (`GetBindVolumeToClaim`, `bindClaimToVolume`, `updateClaimStatus`, `unbindVolume`).
//!
//! Pure: the claim or volume and what the caches hold come in, a decision comes out; the
//! controller (`mod.rs`) makes the writes. Messages and reasons are upstream's word for word.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus, Pod,
};
use k8s_openapi::api::storage::v1::StorageClass;

use super::index::{
    check_volume_satisfies_claim, claim_class, claim_has_class, default_class, find_best_match,
    is_volume_bound_to_claim, volume_mode_mismatch,
};
use crate::pods::is_terminated;

/// Set on claims whose binding is complete; its absence means the claim is still unbound.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Set on a volume or claim when the controller (not the user) chose the binding.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// The plugin or provisioner that created a volume.
pub const ANN_DYNAMICALLY_PROVISIONED: &str = "pv.kubernetes.io/provisioned-by";
/// The provisioner a claim waits for (both are written, as upstream's `setClaimProvisioner`).
pub const ANN_BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
pub const ANN_STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The node the scheduler chose for a `WaitForFirstConsumer` claim.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// StorageClass provisioner of statically provisioned local volumes.
pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// An event to record on the claim or volume synced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Note {
    fn normal(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            warning: false,
            reason,
            message: message.into(),
        }
    }
    fn warning(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            warning: true,
            reason,
            message: message.into(),
        }
    }
}

/// What to do with a claim.
#[derive(Clone, Debug, PartialEq)]
pub enum ClaimDecision {
    /// Bind it to this volume: the volume's `claimRef`, its phase, the claim's
    /// `volumeName` and annotations, its status, in that order (upstream's `bind`).
    Bind(Arc<PersistentVolume>),
    /// Record the event (if any), then keep the claim `Pending` (capacity and access modes
    /// cleared).
    Pending(Option<Note>),
    /// Record the event only: a provisioner is asked for, the claim stays as it is.
    Event(Note),
    /// An external provisioner is to make the volume: annotate the claim with its name,
    /// record the event.
    ExternalProvisioning { provisioner: String, note: Note },
    /// The claim names no class and a default exists: give it that class.
    AssignDefaultClass(String),
    /// Set phase `Lost`, recording the event when the phase changes.
    Lost(Note),
    /// Record the event and fail the sync (it is retried).
    Fail(Note, String),
}

/// What the caches hold, as the claim sync reads them.
pub struct ClaimView<'a> {
    pub volumes: &'a [Arc<PersistentVolume>],
    pub classes: &'a [Arc<StorageClass>],
    /// Pods of the claim's namespace.
    pub pods: &'a [Arc<Pod>],
}

fn has_annotation(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> bool {
    meta.annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(key))
}

fn volume_name_of(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .unwrap_or("")
}

fn claim_ref_of(volume: &PersistentVolume) -> Option<&ObjectReference> {
    volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref())
}

fn volume_phase(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

impl ClaimView<'_> {
    fn volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.volumes
            .iter()
            .find(|v| v.metadata.name.as_deref() == Some(name))
            .cloned()
    }
}

/// The class's `volumeBindingMode` is `WaitForFirstConsumer` (`IsDelayBindingMode`; a
/// missing class binds at once).
pub fn is_delay_binding(claim: &PersistentVolumeClaim, classes: &[Arc<StorageClass>]) -> bool {
    let name = claim_class(claim);
    if name.is_empty() {
        return false;
    }
    classes
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(name.as_str()))
        .is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"))
}

/// In-tree provisioners whose volumes CSI drivers provision now (CSI migration), with the
/// driver that does.
fn migrated_provisioner(provisioner: &str) -> Option<&'static str> {
    Some(match provisioner {
        "kubernetes.io/aws-ebs" => "ebs.csi.aws.com",
        "kubernetes.io/gce-pd" => "pd.csi.storage.gke.io",
        "kubernetes.io/azure-disk" => "disk.csi.azure.com",
        "kubernetes.io/azure-file" => "file.csi.azure.com",
        "kubernetes.io/cinder" => "cinder.csi.openstack.org",
        "kubernetes.io/vsphere-volume" => "csi.vsphere.vmware.com",
        "kubernetes.io/portworx-volume" => "pxd.portworx.com",
        _ => return None,
    })
}

/// The names of the pods not yet scheduled that use the claim (`findNonScheduledPodsByPVC`).
fn unscheduled_pods_of(claim: &PersistentVolumeClaim, pods: &[Arc<Pod>]) -> Vec<String> {
    pods.iter()
        .filter(|p| p.metadata.namespace == claim.metadata.namespace)
        .filter(|p| !is_terminated(p))
        .filter(|p| {
            pod_claim_names(p)
                .iter()
                .any(|c| Some(c) == claim.metadata.name.as_ref())
        })
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_none_or(str::is_empty)
        })
        .filter_map(|p| p.metadata.name.clone())
        .collect()
}

/// The claims a pod's volumes name: `persistentVolumeClaim.claimName`, and
/// `<pod>-<volume>` for generic ephemeral volumes (upstream's `PodPVCIndexFunc`).
pub fn pod_claim_names(pod: &Pod) -> Vec<String> {
    let pod_name = pod.metadata.name.as_deref().unwrap_or("");
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .map(|vs| {
            vs.iter()
                .filter_map(|v| {
                    if let Some(c) = &v.persistent_volume_claim {
                        Some(c.claim_name.clone())
                    } else if v.ephemeral.is_some() {
                        Some(format!("{pod_name}-{}", v.name))
                    } else {
                        None
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `syncClaim`: what to do with `claim`.
pub fn sync_claim(
    claim: &PersistentVolumeClaim,
    view: &ClaimView,
) -> Result<ClaimDecision, String> {
    if has_annotation(&claim.metadata, ANN_BIND_COMPLETED) {
        Ok(sync_bound_claim(claim, view))
    } else {
        sync_unbound_claim(claim, view)
    }
}

fn sync_unbound_claim(
    claim: &PersistentVolumeClaim,
    view: &ClaimView,
) -> Result<ClaimDecision, String> {
    let requested = volume_name_of(claim);
    if requested.is_empty() {
        // The user did not ask for a particular volume.
        let delay = is_delay_binding(claim, view.classes);
        if let Some(volume) = find_best_match(claim, view.volumes, delay)? {
            return Ok(ClaimDecision::Bind(volume));
        }
        if !claim_has_class(claim) {
            if let Some(class) = default_class(view.classes) {
                if let Some(name) = class.metadata.name.clone() {
                    return Ok(ClaimDecision::AssignDefaultClass(name));
                }
            }
        }
        let class = claim_class(claim);
        if delay && !has_annotation(&claim.metadata, ANN_SELECTED_NODE) {
            let pods = unscheduled_pods_of(claim, view.pods);
            let note = match pods.as_slice() {
                [] => Note::normal(
                    "WaitForFirstConsumer",
                    "waiting for first consumer to be created before binding",
                ),
                [one] => Note::normal(
                    "WaitForPodScheduled",
                    format!("waiting for pod {one} to be scheduled"),
                ),
                many => Note::normal(
                    "WaitForPodScheduled",
                    format!("waiting for pods {} to be scheduled", many.join(",")),
                ),
            };
            return Ok(ClaimDecision::Pending(Some(note)));
        }
        if !class.is_empty() {
            return Ok(provision(&class, view.classes));
        }
        return Ok(ClaimDecision::Pending(Some(Note::normal(
            "FailedBinding",
            "no persistent volumes available for this claim and no storage class is set",
        ))));
    }
    // The user asked for a particular volume.
    let Some(volume) = view.volume(requested) else {
        // Not there (yet): retried on the next sync.
        return Ok(ClaimDecision::Pending(None));
    };
    if claim_ref_of(&volume).is_none() {
        return Ok(match check_volume_satisfies_claim(&volume, claim) {
            Err(why) => ClaimDecision::Pending(Some(Note::warning(
                "VolumeMismatch",
                format!("Cannot bind to requested volume {requested:?}: {why}"),
            ))),
            Ok(()) => ClaimDecision::Bind(volume),
        });
    }
    if is_volume_bound_to_claim(&volume, claim) {
        // Pre-bound both ways: finish the binding (the claim's uid into the volume).
        return Ok(ClaimDecision::Bind(volume));
    }
    let note = Note::warning(
        "FailedBinding",
        format!("volume {requested:?} already bound to a different claim."),
    );
    if !has_annotation(&claim.metadata, ANN_BOUND_BY_CONTROLLER) {
        // The user asked for a volume someone else has: retried later.
        return Ok(ClaimDecision::Pending(Some(note)));
    }
    let r = claim_ref_of(&volume).cloned().unwrap_or_default();
    Ok(ClaimDecision::Fail(
        note,
        format!(
            "invalid binding of claim \"{}/{}\" to volume {requested:?}: volume already claimed by \"{}/{}\"",
            claim.metadata.namespace.as_deref().unwrap_or(""),
            claim.metadata.name.as_deref().unwrap_or(""),
            r.namespace.as_deref().unwrap_or(""),
            r.name.as_deref().unwrap_or("")
        ),
    ))
}

/// `provisionClaim` for a claim of `class` no volume matched: the class must exist; an
/// in-tree provisioner name (`kubernetes.io/...`) other than a CSI-migrated one has no
/// plugin here; any other provisioner is external, and is waited for.
fn provision(class: &str, classes: &[Arc<StorageClass>]) -> ClaimDecision {
    let Some(sc) = classes
        .iter()
        .find(|c| c.metadata.name.as_deref() == Some(class))
    else {
        return ClaimDecision::Event(Note::warning(
            "ProvisioningFailed",
            format!("storageclass.storage.k8s.io {class:?} not found"),
        ));
    };
    let provisioner = match migrated_provisioner(&sc.provisioner) {
        Some(csi) => csi.to_owned(),
        None if sc.provisioner.starts_with("kubernetes.io/") => {
            return ClaimDecision::Event(Note::warning(
                "ProvisioningFailed",
                format!("no volume plugin matched name: {}", sc.provisioner),
            ));
        }
        None => sc.provisioner.clone(),
    };
    let note = Note::normal(
        "ExternalProvisioning",
        format!(
            "Waiting for a volume to be created either by the external provisioner '{provisioner}' \
             or manually by the system administrator. If volume creation is delayed, please verify \
             that the provisioner is running and correctly registered."
        ),
    );
    ClaimDecision::ExternalProvisioning { provisioner, note }
}

fn sync_bound_claim(claim: &PersistentVolumeClaim, view: &ClaimView) -> ClaimDecision {
    let name = volume_name_of(claim);
    if name.is_empty() {
        return ClaimDecision::Lost(Note::warning(
            "ClaimLost",
            "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!",
        ));
    }
    let Some(volume) = view.volume(name) else {
        return ClaimDecision::Lost(Note::warning(
            "ClaimLost",
            "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
        ));
    };
    match claim_ref_of(&volume) {
        // Come unbound, or its update not seen yet: bind again.
        None => ClaimDecision::Bind(volume),
        Some(r) if r.uid.is_some() && r.uid == claim.metadata.uid => ClaimDecision::Bind(volume),
        Some(_) => ClaimDecision::Lost(Note::warning(
            "ClaimMisbound",
            "Two claims are bound to the same volume, this one is bound incorrectly",
        )),
    }
}

/// What to do with a volume.
#[derive(Clone, Debug, PartialEq)]
pub enum VolumeDecision {
    /// Set this phase (no event).
    Phase(&'static str),
    /// Its claim is gone (or bound elsewhere and the volume was provisioned for it): phase
    /// `Released` unless already `Released` or `Failed`, then its reclaim policy.
    Reclaim,
    /// Bound to a claim that does not name it yet: sync that claim (namespace, name).
    SyncClaim(String, String),
    /// The claim it is pre-bound to has another volume mode: these events, nothing else.
    Mismatch { volume: Note, claim: Note },
    /// Bound by the controller to a claim bound elsewhere: undo (`unbindVolume`).
    Unbind,
}

/// `syncVolume`: what to do with `volume`, given the claim its `claimRef` names as the
/// controller found it (cache, then the API; `None`: gone, or another claim of that name).
pub fn sync_volume(
    volume: &PersistentVolume,
    claim: Option<&PersistentVolumeClaim>,
) -> VolumeDecision {
    let Some(r) = claim_ref_of(volume) else {
        return VolumeDecision::Phase("Available");
    };
    if r.uid.as_deref().unwrap_or("").is_empty() {
        // Reserved for a claim that has not bound it yet: the claim sync does that.
        return VolumeDecision::Phase("Available");
    }
    let Some(claim) = claim else {
        return VolumeDecision::Reclaim;
    };
    let claims_volume = volume_name_of(claim);
    let name = volume.metadata.name.as_deref().unwrap_or("");
    if claims_volume.is_empty() {
        if volume_mode_mismatch(claim, volume) {
            let claim_name = claim.metadata.name.as_deref().unwrap_or("");
            return VolumeDecision::Mismatch {
                volume: Note::warning("VolumeMismatch", format!("Cannot bind PersistentVolume to requested PersistentVolumeClaim {claim_name:?} due to incompatible volumeMode.")),
                claim: Note::warning("VolumeMismatch", format!("Cannot bind PersistentVolume {name:?} to requested PersistentVolumeClaim due to incompatible volumeMode.")),
            };
        }
        return VolumeDecision::SyncClaim(
            claim.metadata.namespace.clone().unwrap_or_default(),
            claim.metadata.name.clone().unwrap_or_default(),
        );
    }
    if claims_volume == name {
        return VolumeDecision::Phase("Bound");
    }
    // The claim is bound to another volume.
    let provisioned = has_annotation(&volume.metadata, ANN_DYNAMICALLY_PROVISIONED);
    if provisioned && reclaim_policy(volume) == "Delete" {
        return VolumeDecision::Reclaim;
    }
    VolumeDecision::Unbind
}

/// The volume's reclaim policy (`Retain` when unset, the API's default).
pub fn reclaim_policy(volume: &PersistentVolume) -> &str {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain")
}

/// What a released volume's reclaim policy asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Reclaim {
    /// `Retain`: nothing; the volume stays `Released` for an administrator.
    Retain,
    /// `Delete`: delete the PersistentVolume object.
    Delete,
    /// `Delete` of a volume an external deleter (a CSI driver, an external provisioner)
    /// owns: nothing here.
    External,
    /// Phase `Failed` with this message, the event recorded when the phase changes.
    Fail(Note),
    /// `Recycle` of a volume pods still use: this event, retried later.
    InUse(Note),
}

/// The reclaim of a released volume (`reclaimVolume`). `users`: the pods (namespace/name,
/// sorted) not terminated that still use its claim.
pub fn reclaim(volume: &PersistentVolume, users: &[String]) -> Reclaim {
    match reclaim_policy(volume) {
        "Retain" => Reclaim::Retain,
        "Recycle" => {
            if !users.is_empty() {
                return Reclaim::InUse(Note::normal(
                    "VolumeFailedRecycle",
                    format!("Volume is used by pods: {}", users.join(",")),
                ));
            }
            // skiff has no recycler (upstream's are the in-tree NFS and hostPath plugins).
            Reclaim::Fail(Note::warning(
                "VolumeFailedRecycle",
                "No recycler plugin found for the volume!",
            ))
        }
        "Delete" => {
            let spec = volume.spec.as_ref();
            let external_csi = spec.is_some_and(|s| s.csi.is_some());
            let external_provisioner = volume
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANN_DYNAMICALLY_PROVISIONED))
                .is_some_and(|p| !p.is_empty() && !p.starts_with("kubernetes.io/"));
            if external_csi || external_provisioner {
                Reclaim::External
            } else {
                Reclaim::Delete
            }
        }
        _ => Reclaim::Fail(Note::warning(
            "VolumeUnknownReclaimPolicy",
            "Volume has unrecognized PersistentVolumeReclaimPolicy",
        )),
    }
}

/// Whether the volume still needs its reclaim (`isVolumeReleased`): bound (with a uid) to a
/// claim that is gone, has another uid, or is bound to another volume.
pub fn is_released(volume: &PersistentVolume, claim: Option<&PersistentVolumeClaim>) -> bool {
    let Some(r) = claim_ref_of(volume) else {
        return false;
    };
    let Some(uid) = r.uid.as_deref().filter(|u| !u.is_empty()) else {
        return false;
    };
    match claim {
        Some(c) if c.metadata.uid.as_deref() == Some(uid) => {
            let v = volume_name_of(c);
            !v.is_empty() && Some(v) != volume.metadata.name.as_deref()
        }
        _ => true,
    }
}

/// The volume with `claimRef` set to the claim and, when the controller chose it, the
/// bound-by-controller annotation; `None` when nothing changes (`GetBindVolumeToClaim`).
pub fn volume_bound_to(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Option<PersistentVolume> {
    let chosen_by_controller = !is_volume_bound_to_claim(volume, claim);
    let mut out = volume.clone();
    let mut dirty = false;
    let current = claim_ref_of(volume);
    if current.is_none_or(|r| {
        r.name != claim.metadata.name
            || r.namespace != claim.metadata.namespace
            || r.uid != claim.metadata.uid
    }) {
        out.spec.get_or_insert_with(Default::default).claim_ref = Some(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("PersistentVolumeClaim".into()),
            namespace: claim.metadata.namespace.clone(),
            name: claim.metadata.name.clone(),
            uid: claim.metadata.uid.clone(),
            resource_version: claim.metadata.resource_version.clone(),
            field_path: None,
        });
        dirty = true;
    }
    if chosen_by_controller && !has_annotation(&out.metadata, ANN_BOUND_BY_CONTROLLER) {
        out.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ANN_BOUND_BY_CONTROLLER.into(), "yes".into());
        dirty = true;
    }
    dirty.then_some(out)
}

/// The claim with `volumeName` and the bind annotations; `None` when nothing changes
/// (`bindClaimToVolume`).
pub fn claim_bound_to(
    claim: &PersistentVolumeClaim,
    volume: &PersistentVolume,
) -> Option<PersistentVolumeClaim> {
    let mut out = claim.clone();
    let mut dirty = false;
    let name = volume.metadata.name.clone().unwrap_or_default();
    if volume_name_of(claim) != name {
        out.spec.get_or_insert_with(Default::default).volume_name = Some(name);
        out.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .entry(ANN_BOUND_BY_CONTROLLER.into())
            .or_insert_with(|| "yes".into());
        dirty = true;
    }
    if !has_annotation(&out.metadata, ANN_BIND_COMPLETED) {
        out.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(ANN_BIND_COMPLETED.into(), "yes".into());
        dirty = true;
    }
    dirty.then_some(out)
}

/// The claim's status in `phase`: with a volume, its access modes (and its capacity when
/// the claim is becoming Bound); without, both cleared. `None` when nothing changes
/// (`updateClaimStatus`).
pub fn claim_status(
    claim: &PersistentVolumeClaim,
    phase: &str,
    volume: Option<&PersistentVolume>,
) -> Option<PersistentVolumeClaimStatus> {
    let old = claim.status.clone().unwrap_or_default();
    let mut new = old.clone();
    let old_phase = old.phase.as_deref().unwrap_or("");
    new.phase = Some(phase.to_owned());
    match volume {
        None => {
            new.access_modes = None;
            new.capacity = None;
        }
        Some(v) => {
            let spec = v.spec.clone().unwrap_or_default();
            new.access_modes = spec.access_modes.clone();
            if old_phase != phase {
                // Only when becoming Bound: a capacity that differs later may mean the
                // file system was resized on purpose.
                let volume_cap = spec.capacity.as_ref().and_then(|c| c.get("storage"));
                let claim_cap = old.capacity.as_ref().and_then(|c| c.get("storage"));
                let same = match (volume_cap, claim_cap) {
                    (Some(a), Some(b)) => {
                        let parse =
                            |q: &k8s_openapi::apimachinery::pkg::api::resource::Quantity| {
                                skiff_api::validation::quantity::Quantity::parse(&q.0)
                                    .ok()
                                    .map(|q| q.nanos)
                            };
                        parse(a).is_some() && parse(a) == parse(b)
                    }
                    _ => false,
                };
                if !same {
                    new.capacity = spec.capacity.clone();
                }
            }
        }
    }
    (new != old).then_some(new)
}

/// The volume with its binding undone (`unbindVolume`): a binding the controller made is
/// removed whole, a user's pre-binding keeps the claim's name and loses only the uid.
pub fn volume_unbound(volume: &PersistentVolume) -> PersistentVolume {
    let mut out = volume.clone();
    if has_annotation(&volume.metadata, ANN_BOUND_BY_CONTROLLER) {
        if let Some(spec) = out.spec.as_mut() {
            spec.claim_ref = None;
        }
        if let Some(a) = out.metadata.annotations.as_mut() {
            a.remove(ANN_BOUND_BY_CONTROLLER);
            if a.is_empty() {
                out.metadata.annotations = None;
            }
        }
    } else if let Some(r) = out.spec.as_mut().and_then(|s| s.claim_ref.as_mut()) {
        r.uid = None;
    }
    out
}

/// Whether the volume's phase is `Released` or `Failed` (left alone by the release).
pub fn is_released_or_failed(volume: &PersistentVolume) -> bool {
    matches!(volume_phase(volume), "Released" | "Failed")
}
