//! downwardAPI volumes (and projected downwardAPI sources): pod fields as files.
//!
//! Upstream: `pkg/volume/downwardapi/downwardapi.go` (`CollectData`): each item's `fieldRef`
//! (`metadata.name`, `namespace`, `uid`, `labels`, `annotations`, or one label/annotation by
//! subscript; `fieldpath.ExtractFieldPathAsString`) or `resourceFieldRef` (a container's
//! request or limit with a divisor, unset limits taking the node's allocatable) becomes
//! the file `path` with the item's `mode` or `defaultMode`. Every failing item is reported,
//! aggregated as upstream's `utilerrors.NewAggregate`. The values come from
//! [`crate::pods::env`] so env vars and files never disagree. The volume is a tmpfs, as
//! upstream's wrapped emptyDir with `medium: Memory`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, Pod};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::atomic_writer::Payload;
use super::configmap::file;
use crate::pods::env;

/// `DownwardAPIVolumeSourceDefaultMode`.
pub const DEFAULT_MODE: i32 = 0o644;

/// Upstream's aggregate message: one error as itself, several as `[a, b]`.
pub(super) fn aggregate(errs: Vec<String>) -> Result<(), String> {
    match errs.len() {
        0 => Ok(()),
        1 => Err(errs.into_iter().next().unwrap_or_default()),
        _ => Err(format!("[{}]", errs.join(", "))),
    }
}

/// The files of a downwardAPI volume or source.
pub fn collect_data(
    items: &[DownwardAPIVolumeFile],
    pod: &Pod,
    node_allocatable: &BTreeMap<String, Quantity>,
    default_mode: Option<i32>,
) -> Result<Payload, String> {
    let default_mode = default_mode.unwrap_or(DEFAULT_MODE);
    let mut out = Payload::new();
    let mut errs = Vec::new();
    for item in items {
        let mode = item.mode.unwrap_or(default_mode);
        if let Some(f) = &item.field_ref {
            let path = f.field_path.as_str();
            // ExtractFieldPathAsString knows metadata only (status and spec fields are for env).
            let value = if path.starts_with("metadata.") {
                env::field_value(pod, path, &[], &[]).map_err(|_| ())
            } else {
                Err(())
            };
            match value {
                Ok(v) => {
                    out.insert(item.path.clone(), file(v.into_bytes(), mode));
                }
                Err(()) => errs.push(format!("unsupported fieldPath: {path}")),
            }
        } else if let Some(r) = &item.resource_field_ref {
            let containers = pod.spec.as_ref().map(|s| s.containers.as_slice());
            let Some(first) = containers.and_then(|c| c.first()) else {
                errs.push("pod has no containers".into());
                continue;
            };
            match env::resource_value(
                pod,
                first,
                &r.resource,
                r.container_name.as_deref(),
                r.divisor.as_ref(),
                node_allocatable,
            ) {
                Ok(v) => {
                    out.insert(item.path.clone(), file(v.into_bytes(), mode));
                }
                Err(e) => errs.push(e.to_string()),
            }
        }
    }
    aggregate(errs).map(|()| out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Container, ObjectFieldSelector, PodSpec, ResourceFieldSelector, ResourceRequirements,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u-1".into()),
                labels: Some([("b".into(), "2".into()), ("a".into(), "1".into())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: Some(ResourceRequirements {
                        limits: Some([("memory".into(), Quantity("64Mi".into()))].into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn field(path: &str, fp: &str) -> DownwardAPIVolumeFile {
        DownwardAPIVolumeFile {
            path: path.into(),
            field_ref: Some(ObjectFieldSelector {
                field_path: fp.into(),
                api_version: None,
            }),
            ..Default::default()
        }
    }

    fn resource(path: &str, res: &str, divisor: Option<&str>) -> DownwardAPIVolumeFile {
        DownwardAPIVolumeFile {
            path: path.into(),
            resource_field_ref: Some(ResourceFieldSelector {
                container_name: Some("c".into()),
                resource: res.into(),
                divisor: divisor.map(|d| Quantity(d.into())),
            }),
            mode: Some(0o400),
            ..Default::default()
        }
    }

    #[test]
    fn fields_and_resources() {
        let alloc = [("cpu".to_string(), Quantity("4".into()))].into();
        let items = [
            field("name", "metadata.name"),
            field("labels", "metadata.labels"),
            field("one", "metadata.labels['b']"),
            resource("mem", "limits.memory", Some("1Mi")),
            resource("cpu", "limits.cpu", Some("1m")),
        ];
        let p = collect_data(&items, &pod(), &alloc, None).unwrap_or_default();
        let s = |k: &str| String::from_utf8_lossy(&p[k].data).to_string();
        assert_eq!(s("name"), "p");
        assert_eq!(s("labels"), "a=\"1\"\nb=\"2\"");
        assert_eq!(s("one"), "2");
        assert_eq!(s("mem"), "64");
        assert_eq!(s("cpu"), "4000", "unset limit: the node's allocatable");
        assert_eq!(p["name"].mode, 0o644);
        assert_eq!(p["mem"].mode, 0o400);
    }

    #[test]
    fn errors_are_aggregated() {
        let items = [
            field("a", "status.podIP"),
            field("b", "metadata.nope"),
            field("ok", "metadata.uid"),
        ];
        assert_eq!(
            collect_data(&items, &pod(), &BTreeMap::new(), None),
            Err(
                "[unsupported fieldPath: status.podIP, unsupported fieldPath: metadata.nope]"
                    .into()
            )
        );
        assert_eq!(
            collect_data(&items[..1], &pod(), &BTreeMap::new(), None),
            Err("unsupported fieldPath: status.podIP".into())
        );
    }
}
