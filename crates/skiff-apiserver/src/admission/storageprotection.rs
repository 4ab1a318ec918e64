//! The StorageObjectInUseProtection admission plugin (upstream's
//! plugin/pkg/admission/storage/storageobjectinuseprotection): a new PersistentVolumeClaim
//! gets the finalizer `kubernetes.io/pvc-protection` and a new PersistentVolume
//! `kubernetes.io/pv-protection`, so neither is removed while in use; the `pvc-protection`
//! and `pv-protection` controllers take the finalizer off once nothing uses it. Creates only,
//! as upstream.

use serde_json::{json, Value};

pub const PVC_PROTECTION_FINALIZER: &str = "kubernetes.io/pvc-protection";
pub const PV_PROTECTION_FINALIZER: &str = "kubernetes.io/pv-protection";

/// The finalizer a new object of the core resource `plural` gets, if any.
pub fn finalizer_for(plural: &str) -> Option<&'static str> {
    match plural {
        "persistentvolumeclaims" => Some(PVC_PROTECTION_FINALIZER),
        "persistentvolumes" => Some(PV_PROTECTION_FINALIZER),
        _ => None,
    }
}

/// Adds `finalizer` to the object's `metadata.finalizers` unless it is there.
pub fn add_finalizer(obj: &mut Value, finalizer: &str) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let list = meta.entry("finalizers").or_insert_with(|| json!([]));
    if !list.is_array() {
        *list = json!([]);
    }
    let Some(list) = list.as_array_mut() else {
        return;
    };
    if !list.iter().any(|f| f.as_str() == Some(finalizer)) {
        list.push(json!(finalizer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_and_volumes_get_their_finalizer_once() {
        // (resource, finalizers before, finalizers after)
        let table = [
            (
                "persistentvolumeclaims",
                json!(null),
                json!([PVC_PROTECTION_FINALIZER]),
            ),
            (
                "persistentvolumeclaims",
                json!(["a"]),
                json!(["a", PVC_PROTECTION_FINALIZER]),
            ),
            (
                "persistentvolumeclaims",
                json!([PVC_PROTECTION_FINALIZER]),
                json!([PVC_PROTECTION_FINALIZER]),
            ),
            (
                "persistentvolumes",
                json!(null),
                json!([PV_PROTECTION_FINALIZER]),
            ),
            (
                "persistentvolumes",
                json!([PV_PROTECTION_FINALIZER, "b"]),
                json!([PV_PROTECTION_FINALIZER, "b"]),
            ),
        ];
        for (plural, before, after) in table {
            let mut obj = json!({"metadata": {"name": "x"}});
            if !before.is_null() {
                obj["metadata"]["finalizers"] = before.clone();
            }
            let f = finalizer_for(plural).expect("protected");
            add_finalizer(&mut obj, f);
            assert_eq!(obj["metadata"]["finalizers"], after, "{plural} {before}");
        }
        assert_eq!(finalizer_for("pods"), None);
        assert_eq!(finalizer_for("configmaps"), None);
    }
}
