//! emptyDir volumes: a directory of the pod, on the node's disk or a tmpfs.
//!
//! Upstream: `pkg/volume/emptydir/empty_dir.go` (`SetUpAt`, `setupDir` with mode 0777,
//! `setupTmpfs`) and `calculateEmptyDirMemorySize` (`SizeMemoryBackedVolumes`): a
//! `medium: Memory` tmpfs is sized to the node's allocatable memory, lowered to the pod's
//! memory limit (`ResourceConfigForPod`) and then to `sizeLimit` when those are smaller.
//! The same tmpfs backs secret, downwardAPI and projected volumes (upstream's wrapped
//! emptyDir with `medium: Memory`, no sizeLimit).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::mounts;
use crate::pods::{nanos, resources};

/// Upstream's `calculateEmptyDirMemorySize`, in bytes; None: no size option (tmpfs's own
/// default, half the host's memory), when nothing is known.
pub fn memory_size(
    node_allocatable: &BTreeMap<String, Quantity>,
    pod: &Pod,
    size_limit: Option<&Quantity>,
) -> Option<i64> {
    let bytes = |q: &Quantity| i64::try_from(nanos(q).div_euclid(1_000_000_000)).ok();
    let mut size = node_allocatable.get("memory").and_then(bytes);
    let lower = |size: Option<i64>, v: i64| match size {
        _ if v <= 0 => size,
        Some(s) if v > s => Some(s),
        _ => Some(v),
    };
    if let Some(limit) = resources::pod_resource_config(pod).memory_limit {
        size = lower(size, limit);
    }
    if let Some(v) = size_limit.and_then(bytes) {
        size = lower(size, v);
    }
    size
}

/// A disk-backed emptyDir: the directory, mode 0777 whatever the umask.
pub fn setup_dir(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path)?;
    let mode = fs::metadata(path)?.permissions().mode() & 0o7777;
    if mode & 0o777 != 0o777 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o777))?;
    }
    Ok(())
}

/// A memory-backed directory: a tmpfs on it unless one is there already (a restarted
/// kubelet finds its earlier mount in mountinfo).
pub fn setup_tmpfs(path: &Path, size: Option<i64>) -> io::Result<()> {
    fs::create_dir_all(path)?;
    if mounts::is_mount_point(path)? {
        return Ok(());
    }
    mounts::mount_tmpfs(path, size)
}

/// Upstream's `SetVolumeOwnership` for a writable volume with the pod's `fsGroup`: every
/// file and directory under `dir` gets group `gid` and `| 0660` (directories also
/// `| 02110`, setgid so new files inherit the group); symlinks are chowned, not chmodded.
/// Walks everything each time (upstream's default `fsGroupChangePolicy: Always`).
pub fn set_ownership(dir: &Path, gid: u32) -> io::Result<()> {
    use std::os::unix::fs::lchown;
    let meta = fs::symlink_metadata(dir)?;
    lchown(dir, None, Some(gid))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mut mask = 0o660;
    if meta.is_dir() {
        mask |= 0o2110;
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & mask != mask {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode | mask))?;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(dir)? {
            set_ownership(&entry?.path(), gid)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec, ResourceRequirements};

    fn pod(limit: Option<&str>) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: limit.map(|l| ResourceRequirements {
                        limits: Some(
                            [
                                ("memory".into(), Quantity(l.into())),
                                ("cpu".into(), Quantity("1".into())),
                            ]
                            .into(),
                        ),
                        requests: Some(
                            [
                                ("memory".into(), Quantity(l.into())),
                                ("cpu".into(), Quantity("1".into())),
                            ]
                            .into(),
                        ),
                        ..Default::default()
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn memory_size_as_upstream() {
        let alloc: BTreeMap<String, Quantity> =
            [("memory".to_string(), Quantity("1Gi".into()))].into();
        let q = |s: &str| Quantity(s.into());
        assert_eq!(memory_size(&alloc, &pod(None), None), Some(1 << 30));
        assert_eq!(
            memory_size(&alloc, &pod(Some("256Mi")), None),
            Some(256 << 20)
        );
        assert_eq!(
            memory_size(&alloc, &pod(Some("256Mi")), Some(&q("64Mi"))),
            Some(64 << 20)
        );
        assert_eq!(
            memory_size(&alloc, &pod(Some("256Mi")), Some(&q("512Mi"))),
            Some(256 << 20),
            "a sizeLimit above what the pod may use is ignored"
        );
        assert_eq!(
            memory_size(&alloc, &pod(None), Some(&q("0"))),
            Some(1 << 30)
        );
        assert_eq!(memory_size(&BTreeMap::new(), &pod(None), None), None);
        assert_eq!(
            memory_size(&BTreeMap::new(), &pod(None), Some(&q("1Mi"))),
            Some(1 << 20)
        );
    }

    #[test]
    fn disk_dir_is_0777() -> anyhow::Result<()> {
        let d = tempfile::tempdir()?;
        let p = d.path().join("v/x");
        setup_dir(&p)?;
        assert_eq!(fs::metadata(&p)?.permissions().mode() & 0o777, 0o777);
        setup_dir(&p)?;
        Ok(())
    }
}
