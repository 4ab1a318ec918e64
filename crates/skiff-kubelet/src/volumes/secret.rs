//! secret volumes: the payload a Secret projects.
//!
//! Upstream: `pkg/volume/secret/secret.go` (`MakePayload`): as configMap's, over `data`
//! (`stringData` is folded into `data` by the API server), with upstream's message for a
//! missing key. The volume is a tmpfs (upstream wraps an emptyDir with `medium: Memory`),
//! so secrets never reach the node's disk.

use k8s_openapi::api::core::v1::{KeyToPath, Secret};

use super::atomic_writer::Payload;
use super::configmap::file;

/// `SecretVolumeSourceDefaultMode`.
pub const DEFAULT_MODE: i32 = 0o644;

/// The files of `secret` as `items`/`defaultMode`/`optional` select them.
pub fn make_payload(
    items: Option<&[KeyToPath]>,
    secret: &Secret,
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Payload, String> {
    let default_mode = default_mode.unwrap_or(DEFAULT_MODE);
    let mut out = Payload::new();
    match items.filter(|i| !i.is_empty()) {
        None => {
            for (k, v) in secret.data.iter().flatten() {
                out.insert(k.clone(), file(v.0.clone(), default_mode));
            }
        }
        Some(items) => {
            for item in items {
                let Some(v) = secret.data.as_ref().and_then(|d| d.get(&item.key)) else {
                    if optional {
                        continue;
                    }
                    return Err(format!("references non-existent secret key: {}", item.key));
                };
                out.insert(
                    item.path.clone(),
                    file(v.0.clone(), item.mode.unwrap_or(default_mode)),
                );
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    #[test]
    fn keys_items_and_missing() {
        let s = Secret {
            data: Some([("k".to_string(), ByteString(b"v".to_vec()))].into()),
            ..Default::default()
        };
        let p = make_payload(None, &s, None, false).unwrap_or_default();
        assert_eq!(p["k"].data, b"v");
        assert_eq!(p["k"].mode, 0o644);
        let items = [KeyToPath {
            key: "x".into(),
            path: "x".into(),
            mode: None,
        }];
        assert_eq!(
            make_payload(Some(&items), &s, None, false),
            Err("references non-existent secret key: x".into())
        );
        assert_eq!(
            make_payload(Some(&items), &s, None, true),
            Ok(Payload::new())
        );
    }
}
