//! The DefaultStorageClass admission plugin (upstream's
//! plugin/pkg/admission/storage/storageclass/setdefault): a new PersistentVolumeClaim that
//! names no class (no `spec.storageClassName`, not even `""`, and no beta
//! `volume.beta.kubernetes.io/storage-class` annotation) gets the default StorageClass, the
//! one annotated `storageclass.kubernetes.io/is-default-class: "true"` (of several, the
//! newest, then the first by name). Without a default the claim is left as it is; the
//! PersistentVolume controller gives it one later if a default appears.

use serde_json::Value;

const ANN_BETA_STORAGE_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
const ANN_DEFAULT: &str = "storageclass.kubernetes.io/is-default-class";
const ANN_BETA_DEFAULT: &str = "storageclass.beta.kubernetes.io/is-default-class";

fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")?.get(key)?.as_str()
}

/// Whether the claim names a class (`PersistentVolumeClaimHasClass`).
pub fn has_class(claim: &Value) -> bool {
    annotation(claim, ANN_BETA_STORAGE_CLASS).is_some()
        || claim
            .pointer("/spec/storageClassName")
            .is_some_and(|v| !v.is_null())
}

/// The default class's name among `classes` (`GetDefaultClass`).
pub fn default_class(classes: &[Value]) -> Option<String> {
    let mut defaults: Vec<(&str, &str)> = classes
        .iter()
        .filter(|c| {
            annotation(c, ANN_DEFAULT) == Some("true")
                || annotation(c, ANN_BETA_DEFAULT) == Some("true")
        })
        .filter_map(|c| {
            let name = c.pointer("/metadata/name")?.as_str()?;
            let created = c
                .pointer("/metadata/creationTimestamp")
                .and_then(Value::as_str)
                .unwrap_or("");
            Some((created, name))
        })
        .collect();
    // Newest first (RFC 3339 in UTC sorts as time does), then by name.
    defaults.sort_by(|a, b| b.0.cmp(a.0).then_with(|| a.1.cmp(b.1)));
    defaults.first().map(|(_, n)| (*n).to_owned())
}

/// Sets the default class on a claim that names none.
pub fn admit_claim(claim: &mut Value, classes: &[Value]) {
    if has_class(claim) {
        return;
    }
    let Some(name) = default_class(classes) else {
        return;
    };
    if let Some(spec) = claim.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("storageClassName".into(), Value::String(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn class(name: &str, default: Option<&str>, created: &str) -> Value {
        let annotations = match default {
            Some(v) => json!({ANN_DEFAULT: v}),
            None => json!({}),
        };
        json!({"metadata": {"name": name, "annotations": annotations, "creationTimestamp": created},
               "provisioner": "p"})
    }

    #[test]
    fn claims_without_a_class_get_the_newest_default() {
        let classes = [
            class("old", Some("true"), "2026-01-01T00:00:00Z"),
            class("off", Some("false"), "2026-05-01T00:00:00Z"),
            class("b", Some("true"), "2026-02-01T00:00:00Z"),
            class("a", Some("true"), "2026-02-01T00:00:00Z"),
            class("plain", None, "2026-06-01T00:00:00Z"),
        ];
        // (claim spec and metadata, classes, class after)
        let table: Vec<(Value, &[Value], Value)> = vec![
            (json!({"spec": {}}), &classes, json!("a")),
            (
                json!({"spec": {"storageClassName": null}}),
                &classes,
                json!("a"),
            ),
            (
                json!({"spec": {"storageClassName": ""}}),
                &classes,
                json!(""),
            ),
            (
                json!({"spec": {"storageClassName": "x"}}),
                &classes,
                json!("x"),
            ),
            (
                json!({"metadata": {"annotations": {ANN_BETA_STORAGE_CLASS: "y"}}, "spec": {}}),
                &classes,
                json!(null),
            ),
            (json!({"spec": {}}), &classes[1..2], json!(null)),
            (json!({"spec": {}}), &[], json!(null)),
        ];
        for (i, (claim, classes, want)) in table.into_iter().enumerate() {
            let mut claim = claim;
            admit_claim(&mut claim, classes);
            assert_eq!(claim["spec"]["storageClassName"], want, "case {i}");
        }
    }
}
