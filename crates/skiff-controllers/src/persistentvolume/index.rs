//! Which PersistentVolume fits a claim, as upstream's `index.go` (`findByClaim`,
//! `allPossibleMatchingAccessModes`) and component-helpers' `pv_helpers.go`
//! (`FindMatchingVolume`, `GetPersistentVolumeClaimClass`, `IsVolumeBoundToClaim`,
//! `CheckVolumeModeMismatches`, `CheckAccessModes`) decide it.
//!
//! Volumes are grouped by their set of access modes; the groups whose set holds every mode
//! the claim asks for are searched fewest modes first, and within a group a volume pre-bound
//! to the claim wins, else the smallest that is big enough. Pure: objects in, a volume out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use skiff_api::selector::LabelSelector;
use skiff_api::validation::quantity::Quantity;

/// The beta annotation that named a class before `storageClassName` existed; it still wins.
pub const ANN_BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// A StorageClass that claims without a class get.
pub const ANN_DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
pub const ANN_BETA_DEFAULT_CLASS: &str = "storageclass.beta.kubernetes.io/is-default-class";

fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// The claim's class (`GetPersistentVolumeClaimClass`): the beta annotation, else
/// `spec.storageClassName`, else `""`.
pub fn claim_class(claim: &PersistentVolumeClaim) -> String {
    if let Some(c) = annotation(&claim.metadata, ANN_BETA_STORAGE_CLASS) {
        return c.to_owned();
    }
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

/// Whether the claim names a class at all, even `""` (`PersistentVolumeClaimHasClass`).
pub fn claim_has_class(claim: &PersistentVolumeClaim) -> bool {
    annotation(&claim.metadata, ANN_BETA_STORAGE_CLASS).is_some()
        || claim
            .spec
            .as_ref()
            .is_some_and(|s| s.storage_class_name.is_some())
}

/// The volume's class (`GetPersistentVolumeClass`).
pub fn volume_class(volume: &PersistentVolume) -> String {
    if let Some(c) = annotation(&volume.metadata, ANN_BETA_STORAGE_CLASS) {
        return c.to_owned();
    }
    volume
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.clone())
        .unwrap_or_default()
}

/// Whether the class carries the default-class annotation (`IsDefaultAnnotation`).
pub fn is_default_class(class: &StorageClass) -> bool {
    annotation(&class.metadata, ANN_DEFAULT_CLASS) == Some("true")
        || annotation(&class.metadata, ANN_BETA_DEFAULT_CLASS) == Some("true")
}

/// The default StorageClass (`GetDefaultClass`): of several, the newest, then the first by
/// name.
pub fn default_class(classes: &[Arc<StorageClass>]) -> Option<Arc<StorageClass>> {
    let mut defaults: Vec<&Arc<StorageClass>> =
        classes.iter().filter(|c| is_default_class(c)).collect();
    defaults.sort_by(|a, b| {
        let created = |c: &StorageClass| c.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(b)
            .cmp(&created(a))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    defaults.first().map(|c| (*c).clone())
}

/// Whether the volume's `claimRef` names the claim (and its uid, when the ref has one).
pub fn is_volume_bound_to_claim(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(r) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    if r.name != claim.metadata.name || r.namespace != claim.metadata.namespace {
        return false;
    }
    match r.uid.as_deref() {
        None | Some("") => true,
        Some(uid) => claim.metadata.uid.as_deref() == Some(uid),
    }
}

/// Whether the volume modes differ, an unset mode being `Filesystem`.
pub fn volume_mode_mismatch(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let claim_mode = claim.spec.as_ref().and_then(|s| s.volume_mode.as_deref());
    let volume_mode = volume.spec.as_ref().and_then(|s| s.volume_mode.as_deref());
    claim_mode.unwrap_or("Filesystem") != volume_mode.unwrap_or("Filesystem")
}

fn claim_modes(claim: &PersistentVolumeClaim) -> Vec<String> {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default()
}

fn volume_modes(volume: &PersistentVolume) -> Vec<String> {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.access_modes.clone())
        .unwrap_or_default()
}

/// Whether the volume has every access mode the claim asks for (`CheckAccessModes`).
pub fn access_modes_satisfied(claim: &PersistentVolumeClaim, volume: &PersistentVolume) -> bool {
    let have: BTreeSet<String> = volume_modes(volume).into_iter().collect();
    claim_modes(claim).iter().all(|m| have.contains(m))
}

/// The storage the claim requests (zero when unset or unreadable, as upstream's map lookup).
pub fn requested_storage(claim: &PersistentVolumeClaim) -> Quantity {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .unwrap_or_else(Quantity::zero)
}

/// The volume's storage capacity (zero when unset).
pub fn volume_capacity(volume: &PersistentVolume) -> Quantity {
    volume
        .spec
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
        .and_then(|q| Quantity::parse(&q.0).ok())
        .unwrap_or_else(Quantity::zero)
}

fn phase(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// The canonical order of access modes in an index key (`GetAccessModesAsString`).
fn mode_rank(mode: &str) -> usize {
    match mode {
        "ReadWriteOnce" => 0,
        "ReadOnlyMany" => 1,
        "ReadWriteMany" => 2,
        "ReadWriteOncePod" => 3,
        _ => 4,
    }
}

/// The volume's access modes as the index keys them: deduplicated, in upstream's order.
fn mode_key(volume: &PersistentVolume) -> Vec<String> {
    let mut modes = volume_modes(volume);
    modes.sort_by(|a, b| mode_rank(a).cmp(&mode_rank(b)).then_with(|| a.cmp(b)));
    modes.dedup();
    modes
}

/// The best volume for the claim, or `None` (`findBestMatchForClaim`). `delay_binding`
/// (the class binds `WaitForFirstConsumer`): only a volume pre-bound to the claim is
/// returned, the others are the scheduler's to choose.
pub fn find_best_match(
    claim: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    delay_binding: bool,
) -> Result<Option<Arc<PersistentVolume>>, String> {
    let mut groups: BTreeMap<Vec<String>, Vec<Arc<PersistentVolume>>> = BTreeMap::new();
    for v in volumes {
        groups.entry(mode_key(v)).or_default().push(v.clone());
    }
    let wanted = claim_modes(claim);
    let mut keys: Vec<&Vec<String>> = groups
        .keys()
        .filter(|k| wanted.iter().all(|m| k.contains(m)))
        .collect();
    // Fewest modes first: the closest to what the claim asked for.
    keys.sort_by_key(|k| k.len());
    for key in keys {
        if let Some(v) = find_matching_volume(claim, &groups[key], delay_binding)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// One group's match (`FindMatchingVolume` without a node): a volume pre-bound to the claim
/// and big enough, else the smallest Available volume of the claim's class that is big
/// enough and matches its selector and volume mode.
pub fn find_matching_volume(
    claim: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    delay_binding: bool,
) -> Result<Option<Arc<PersistentVolume>>, String> {
    let requested = requested_storage(claim);
    let class = claim_class(claim);
    let selector = match claim.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(s) => Some(LabelSelector::from_k8s(s).map_err(|e| {
            format!(
                "error creating internal label selector for claim: {}/{}: {e}",
                claim.metadata.namespace.as_deref().unwrap_or(""),
                claim.metadata.name.as_deref().unwrap_or("")
            )
        })?),
        None => None,
    };
    let claim_vac = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_attributes_class_name.as_deref())
        .unwrap_or("");
    let no_labels = BTreeMap::new();
    let mut smallest: Option<(&Arc<PersistentVolume>, Quantity)> = None;
    for volume in volumes {
        let spec = volume.spec.as_ref();
        if spec.and_then(|s| s.claim_ref.as_ref()).is_some()
            && !is_volume_bound_to_claim(volume, claim)
        {
            continue;
        }
        let capacity = volume_capacity(volume);
        if capacity < requested {
            continue;
        }
        if volume_mode_mismatch(claim, volume) {
            continue;
        }
        let volume_vac = spec
            .and_then(|s| s.volume_attributes_class_name.as_deref())
            .unwrap_or("");
        if claim_vac != volume_vac {
            continue;
        }
        if volume.metadata.deletion_timestamp.is_some() {
            continue;
        }
        if is_volume_bound_to_claim(volume, claim) {
            return Ok(Some(volume.clone()));
        }
        if delay_binding {
            continue;
        }
        // Volumes not yet Available are skipped: binding them now would likely conflict
        // with the write that makes them Available.
        if phase(volume) != "Available" {
            continue;
        }
        if let Some(sel) = &selector {
            if !sel.matches(volume.metadata.labels.as_ref().unwrap_or(&no_labels)) {
                continue;
            }
        }
        if volume_class(volume) != class {
            continue;
        }
        if smallest.as_ref().is_none_or(|(_, q)| *q > capacity) {
            smallest = Some((volume, capacity));
        }
    }
    Ok(smallest.map(|(v, _)| v.clone()))
}

/// Why a volume the claim names cannot be bound to it (`checkVolumeSatisfyClaim`).
pub fn check_volume_satisfies_claim(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
) -> Result<(), String> {
    if volume.metadata.deletion_timestamp.is_some() {
        return Err(format!(
            "the volume is marked for deletion {:?}",
            volume.metadata.name.as_deref().unwrap_or("")
        ));
    }
    if volume_capacity(volume).value() < requested_storage(claim).value() {
        return Err("requested PV is too small".into());
    }
    if volume_class(volume) != claim_class(claim) {
        return Err("storageClassName does not match".into());
    }
    if volume_mode_mismatch(claim, volume) {
        return Err("incompatible volumeMode".into());
    }
    if !access_modes_satisfied(claim, volume) {
        return Err("incompatible accessMode".into());
    }
    Ok(())
}
