//! persistentVolumeClaim volumes: the claim's bound PersistentVolume, when it is a hostPath
//! or local volume, used as the container's mount source.
//!
//! Upstream: `pkg/kubelet/volumemanager/populator/desired_state_of_world_populator.go`
//! (`getPVCExtractPV`, `getPVSpec`: the claim must exist, not be deleting, be `Bound` with
//! `spec.volumeName`; the PV must exist and its `claimRef` point back at the claim's uid;
//! messages as upstream's) and `pkg/volume/local` / `pkg/volume/hostpath` for the path. No
//! mount is made: the path itself is the source, as a hostPath volume's is.

use std::path::PathBuf;

use super::VolumeObjects;

/// The PV's host path and its hostPath `type` (a local PV's path must exist: `Directory`
/// unless it is a file, checked as upstream's local plugin does by stat).
pub async fn resolve(
    ns: &str,
    claim: &str,
    objects: &dyn VolumeObjects,
) -> Result<(PathBuf, Option<String>), String> {
    let wrap = |m: String| format!("error processing PVC {ns}/{claim}: {m}");
    let pvc = match objects.pvc(ns, claim).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(wrap(format!(
                "failed to fetch PVC from API server: persistentvolumeclaims \"{claim}\" not found"
            )))
        }
        Err(e) => return Err(wrap(format!("failed to fetch PVC from API server: {e}"))),
    };
    if pvc.metadata.deletion_timestamp.is_some() {
        return Err(wrap(format!(
            "can't start pod because PVC {ns}/{claim} is being deleted"
        )));
    }
    let phase = pvc
        .status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default();
    let volume_name = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .unwrap_or_default();
    if phase != "Bound" || volume_name.is_empty() {
        return Err(wrap(format!(
            "PVC {ns}/{claim} has non-bound phase ({phase:?}) or empty pvc.Spec.VolumeName ({volume_name:?})"
        )));
    }
    let pv = match objects.pv(&volume_name).await {
        Ok(Some(pv)) => pv,
        Ok(None) => {
            return Err(wrap(format!(
                "failed to fetch PV {volume_name} from API server: persistentvolumes \"{volume_name}\" not found"
            )))
        }
        Err(e) => {
            return Err(wrap(format!(
                "failed to fetch PV {volume_name} from API server: {e}"
            )))
        }
    };
    let spec = pv.spec.unwrap_or_default();
    let claim_uid = pvc.metadata.uid.clone().unwrap_or_default();
    match spec.claim_ref.as_ref() {
        None => {
            return Err(wrap(format!(
                "found PV object {volume_name} but it has a nil pv.Spec.ClaimRef indicating it is not yet bound to the claim"
            )))
        }
        Some(r) if r.uid.clone().unwrap_or_default() != claim_uid => {
            return Err(wrap(format!(
                "found PV object {volume_name} but its pv.Spec.ClaimRef.UID ({}) does not point to claim.UID ({claim_uid})",
                r.uid.clone().unwrap_or_default()
            )))
        }
        Some(_) => {}
    }
    if let Some(hp) = spec.host_path {
        return Ok((PathBuf::from(hp.path), hp.type_));
    }
    if let Some(local) = spec.local {
        let path = PathBuf::from(local.path);
        let typ = if path.is_file() { "File" } else { "Directory" };
        return Ok((path, Some(typ.into())));
    }
    Err(wrap(format!(
        "PV {volume_name} is neither a hostPath nor a local volume (skiff mounts only those)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use k8s_openapi::api::core::v1::{
        ConfigMap, HostPathVolumeSource, ObjectReference, PersistentVolume, PersistentVolumeClaim,
        PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, PersistentVolumeSpec, Pod, Secret,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    struct One {
        pvc: Option<PersistentVolumeClaim>,
        pv: Option<PersistentVolume>,
    }

    #[async_trait]
    impl VolumeObjects for One {
        async fn config_map(&self, _: &str, _: &str) -> Result<Option<ConfigMap>, String> {
            Ok(None)
        }
        async fn secret(&self, _: &str, _: &str) -> Result<Option<Secret>, String> {
            Ok(None)
        }
        async fn pvc(&self, _: &str, _: &str) -> Result<Option<PersistentVolumeClaim>, String> {
            Ok(self.pvc.clone())
        }
        async fn pv(&self, _: &str) -> Result<Option<PersistentVolume>, String> {
            Ok(self.pv.clone())
        }
        async fn token(
            &self,
            _: &str,
            _: &str,
            _: Option<&str>,
            _: i64,
            _: &Pod,
        ) -> Result<Option<String>, String> {
            Ok(None)
        }
    }

    fn claim(phase: &str, volume: Option<&str>) -> PersistentVolumeClaim {
        PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("c".into()),
                uid: Some("cu".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                volume_name: volume.map(Into::into),
                ..Default::default()
            }),
            status: Some(PersistentVolumeClaimStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    fn pv(claim_uid: Option<&str>) -> PersistentVolume {
        PersistentVolume {
            spec: Some(PersistentVolumeSpec {
                host_path: Some(HostPathVolumeSource {
                    path: "/srv/pv1".into(),
                    type_: Some("DirectoryOrCreate".into()),
                }),
                claim_ref: claim_uid.map(|u| ObjectReference {
                    uid: Some(u.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn run(o: One) -> Result<(PathBuf, Option<String>), String> {
        let rt = tokio::runtime::Builder::new_current_thread().build();
        match rt {
            Ok(rt) => rt.block_on(resolve("ns", "c", &o)),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn claim_to_path_with_upstream_errors() {
        assert_eq!(
            run(One {
                pvc: Some(claim("Bound", Some("pv1"))),
                pv: Some(pv(Some("cu")))
            }),
            Ok((PathBuf::from("/srv/pv1"), Some("DirectoryOrCreate".into())))
        );
        assert_eq!(
            run(One { pvc: Some(claim("Pending", None)), pv: None }),
            Err("error processing PVC ns/c: PVC ns/c has non-bound phase (\"Pending\") or empty pvc.Spec.VolumeName (\"\")".into())
        );
        assert!(run(One {
            pvc: None,
            pv: None
        })
        .is_err_and(|e| e.contains("not found")));
        assert!(run(One {
            pvc: Some(claim("Bound", Some("pv1"))),
            pv: Some(pv(None))
        })
        .is_err_and(|e| e.contains("nil pv.Spec.ClaimRef")));
        assert!(run(One {
            pvc: Some(claim("Bound", Some("pv1"))),
            pv: Some(pv(Some("other")))
        })
        .is_err_and(|e| e.contains("does not point to claim.UID (cu)")));
    }
}
