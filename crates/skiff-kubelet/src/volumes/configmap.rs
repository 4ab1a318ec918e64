//! configMap volumes: the payload a ConfigMap projects.
//!
//! Upstream: `pkg/volume/configmap/configmap.go` (`MakePayload`): without `items` every key
//! of `data` and `binaryData` becomes a file with `defaultMode`; with `items` only those
//! keys, at `path`, with the item's `mode` or `defaultMode`; a missing key is an error
//! unless the volume is `optional`. The volume is a plain directory on disk (upstream wraps
//! an emptyDir on the node's disk), written by the atomic writer.

use k8s_openapi::api::core::v1::{ConfigMap, KeyToPath};

use super::atomic_writer::{FileProjection, Payload};

/// `ConfigMapVolumeSourceDefaultMode`.
pub const DEFAULT_MODE: i32 = 0o644;

/// The files of `cm` as `items`/`defaultMode`/`optional` select them.
pub fn make_payload(
    items: Option<&[KeyToPath]>,
    cm: &ConfigMap,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Payload, String> {
    let default_mode = default_mode.unwrap_or(DEFAULT_MODE);
    let lookup = |k: &str| -> Option<Vec<u8>> {
        cm.data
            .as_ref()
            .and_then(|d| d.get(k))
            .map(|s| s.as_bytes().to_vec())
            .or_else(|| {
                cm.binary_data
                    .as_ref()
                    .and_then(|d| d.get(k))
                    .map(|b| b.0.clone())
            })
    };
    let mut out = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in cm.data.iter().flatten() {
                out.insert(k.clone(), file(v.as_bytes().to_vec(), default_mode));
            }
            for (k, v) in cm.binary_data.iter().flatten() {
                out.insert(k.clone(), file(v.0.clone(), default_mode));
            }
        }
        Some(items) => {
            for item in items {
                let Some(data) = lookup(&item.key) else {
                    if optional {
                        continue;
                    }
                    return Err(format!(
                        "configmap references non-existent config key: {}",
                        item.key
                    ));
                };
                out.insert(
                    item.path.clone(),
                    file(data, item.mode.unwrap_or(default_mode)),
                );
            }
        }
    }
    Ok(out)
}

pub(super) fn file(data: Vec<u8>, mode: i32) -> FileProjection {
    FileProjection {
        data,
        mode: u32::try_from(mode).unwrap_or(0o644) & 0o7777,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn cm() -> ConfigMap {
        ConfigMap {
            data: Some([("a".to_string(), "A".to_string())].into()),
            binary_data: Some([("bin".to_string(), ByteString(vec![0, 1]))].into()),
            ..Default::default()
        }
    }

    fn item(key: &str, path: &str, mode: Option<i32>) -> KeyToPath {
        KeyToPath {
            key: key.into(),
            path: path.into(),
            mode,
        }
    }

    #[test]
    fn all_keys_with_default_mode() {
        let p = make_payload(None, &cm(), Some(0o400), false).unwrap_or_default();
        assert_eq!(p.len(), 2);
        assert_eq!(p["a"].data, b"A");
        assert_eq!(p["bin"].data, vec![0, 1]);
        assert!(p.values().all(|f| f.mode == 0o400));
        let p = make_payload(Some(&[]), &cm(), None, false).unwrap_or_default();
        assert!(p.values().all(|f| f.mode == 0o644));
    }

    #[test]
    fn items_paths_and_modes() {
        let items = [item("a", "dir/x", Some(0o600)), item("bin", "y", None)];
        let p = make_payload(Some(&items), &cm(), Some(0o440), false).unwrap_or_default();
        assert_eq!(p.keys().collect::<Vec<_>>(), vec!["dir/x", "y"]);
        assert_eq!(p["dir/x"].mode, 0o600);
        assert_eq!(p["y"].mode, 0o440);
    }

    #[test]
    fn missing_key_errors_unless_optional() {
        let items = [item("nope", "x", None), item("a", "a", None)];
        assert_eq!(
            make_payload(Some(&items), &cm(), None, false),
            Err("configmap references non-existent config key: nope".into())
        );
        let p = make_payload(Some(&items), &cm(), None, true).unwrap_or_default();
        assert_eq!(p.keys().collect::<Vec<_>>(), vec!["a"]);
    }
}
