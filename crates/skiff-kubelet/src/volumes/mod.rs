//! The kubelet's volume manager: a pod's volumes set up under `pods/<uid>/volumes/` before
//! its containers start, kept current while it runs, and removed with it.
//!
//! Upstream: `pkg/kubelet/volumemanager` (what to set up), the plugins in
//! `pkg/volume/<plugin>` (one module each here: [`empty_dir`], [`host_path`], [`configmap`],
//! [`secret`], [`downwardapi`], [`projected`], [`pvc`]), `pkg/volume/util/atomic_writer.go`
//! ([`atomic_writer`]) and `makeMounts` in `pkg/kubelet/kubelet_pods.go`
//! ([`PodVolumes::mounts_for`]). Layout: `pods/<uid>/volumes/kubernetes.io~<plugin>/<name>`.
//!
//! Work is split in two: the API objects are read first (async, through [`VolumeObjects`]),
//! and the files and payloads computed from them; then the disk is written in one blocking
//! step (`spawn_blocking`). Mounts are made only where a directory will not do: tmpfs for
//! `emptyDir.medium: Memory`, secret, downwardAPI and projected volumes. hostPath and
//! PVC-bound hostPath/local volumes are used directly as the container's bind-mount source.
//! What is mounted is read back from `/proc/self/mountinfo`, so teardown also undoes what a
//! previous kubelet left. The pod's `fsGroup` owns emptyDir and the API-data volumes
//! (`SetVolumeOwnership`). Not done: `fsGroupChangePolicy: OnRootMismatch` (always walked),
//! fsGroup on PVC-backed volumes, SELinux relabelling, subPath bind mounts against symlink races (upstream's
//! `PrepareSafeSubpath`: here the resolved path is checked to stay inside the volume).

pub mod api;
pub mod atomic_writer;
pub mod configmap;
pub mod downwardapi;
pub mod empty_dir;
pub mod host_path;
pub mod mounts;
pub mod projected;
pub mod pvc;
pub mod secret;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Volume,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use skiff_runtime::container::spec::{BindMount, Propagation};

pub use api::ApiObjects;
use atomic_writer::Payload;

/// Where ConfigMaps, Secrets, PVCs and PVs come from (the kubelet implements it over its
/// kube::Client; tests over maps). Ok(None) = not found.
#[async_trait]
pub trait VolumeObjects: Send + Sync {
    async fn config_map(&self, ns: &str, name: &str) -> Result<Option<ConfigMap>, String>;
    async fn secret(&self, ns: &str, name: &str) -> Result<Option<Secret>, String>;
    async fn pvc(&self, ns: &str, name: &str) -> Result<Option<PersistentVolumeClaim>, String>;
    async fn pv(&self, name: &str) -> Result<Option<PersistentVolume>, String>;
    /// A service account token for a projected serviceAccountToken source (TokenRequest);
    /// Ok(None) when the API does not serve tokens yet.
    async fn token(
        &self,
        ns: &str,
        service_account: &str,
        audience: Option<&str>,
        expiration_seconds: i64,
        pod: &Pod,
    ) -> Result<Option<String>, String>;
}

/// The node's allocatable (resourceFieldRef with no limit, memory-backed volume sizes) and
/// name.
#[derive(Clone, Debug, Default)]
pub struct NodeFacts {
    pub allocatable: BTreeMap<String, Quantity>,
    pub node_name: String,
}

/// Why a pod's volumes could not be set up, mounted into a container or removed.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A volume's setup failed; the worker emits it as a `FailedMount` event and retries.
    #[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
    SetUp { volume: String, message: String },
    /// A PVC volume whose claim or volume is not usable (upstream's desired-state
    /// populator: `error processing PVC ns/name: ...`).
    #[error("{message}")]
    Claim { volume: String, message: String },
    /// A volumeMount naming no volume of the pod.
    #[error("cannot find volume \"{volume}\" to mount into container \"{container}\"")]
    NoVolume { volume: String, container: String },
    /// A volumeMount's subPath/subPathExpr that cannot be used (upstream's messages).
    #[error("{0}")]
    SubPath(String),
    /// The pod's uid is not a usable directory name.
    #[error("invalid pod uid {0:?}")]
    InvalidUid(String),
    #[error("UnmountVolume.TearDown failed for pod \"{uid}\" : {source}")]
    TearDown {
        uid: String,
        #[source]
        source: io::Error,
    },
}

impl VolumeError {
    /// The volume the error is about, if one.
    pub fn volume(&self) -> Option<&str> {
        match self {
            VolumeError::SetUp { volume, .. }
            | VolumeError::Claim { volume, .. }
            | VolumeError::NoVolume { volume, .. } => Some(volume),
            _ => None,
        }
    }
}

/// One set-up volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountedVolume {
    /// The host path a container's bind mount starts from.
    pub path: PathBuf,
    /// Mounted read-only into every container whatever `volumeMounts.readOnly` says
    /// (configMap, secret, downwardAPI, projected; PVC with `readOnly`).
    pub readonly: bool,
}

/// A pod's set-up volumes by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodVolumes {
    pub volumes: BTreeMap<String, MountedVolume>,
}

/// The plugin directory names (upstream's escaped plugin names).
pub const EMPTY_DIR: &str = "kubernetes.io~empty-dir";
pub const CONFIG_MAP: &str = "kubernetes.io~configmap";
pub const SECRET: &str = "kubernetes.io~secret";
pub const DOWNWARD_API: &str = "kubernetes.io~downward-api";
pub const PROJECTED: &str = "kubernetes.io~projected";

/// What one volume needs on disk, computed before anything is written.
#[derive(Debug)]
enum Plan {
    /// A directory (disk emptyDir) or a tmpfs of that size (`Some(size)`).
    Dir {
        dir: PathBuf,
        tmpfs: Option<Option<i64>>,
        fs_group: Option<u32>,
    },
    /// A host path, checked against its type.
    Host {
        path: PathBuf,
        typ: Option<String>,
        readonly: bool,
    },
    /// Files through the atomic writer, in a directory or a tmpfs.
    Files {
        dir: PathBuf,
        tmpfs: Option<Option<i64>>,
        payload: Payload,
        fs_group: Option<u32>,
    },
}

fn setup_err(v: &Volume) -> impl Fn(String) -> VolumeError + '_ {
    move |message| VolumeError::SetUp {
        volume: v.name.clone(),
        message,
    }
}

/// A pod uid usable as one path component.
fn check_uid(uid: &str) -> Result<(), VolumeError> {
    let ok =
        !uid.is_empty() && uid != "." && uid != ".." && !uid.contains('/') && !uid.contains('\0');
    if ok {
        Ok(())
    } else {
        Err(VolumeError::InvalidUid(uid.to_owned()))
    }
}

/// The volume manager of one node. Calls for one pod must not overlap (the pod worker
/// serialises them, as upstream's atomic writer requires); different pods are independent.
/// A `refresh` after `teardown` would set the volumes up again: the caller stops
/// refreshing first.
#[derive(Clone, Debug)]
pub struct VolumeManager {
    root: PathBuf,
}

impl VolumeManager {
    /// `pods_dir` is `<data-dir>/agent/pods`.
    pub fn new(pods_dir: PathBuf) -> Self {
        VolumeManager { root: pods_dir }
    }

    /// `pods/<uid>`.
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root.join(uid)
    }

    fn volume_dir(&self, uid: &str, plugin: &str, name: &str) -> PathBuf {
        self.pod_dir(uid).join("volumes").join(plugin).join(name)
    }

    /// Sets up every volume of the pod (idempotent: a second call after a kubelet restart
    /// finds what is there). An error names the volume, with upstream's message, e.g.
    /// `MountVolume.SetUp failed for volume "cfg" : configmap "missing" not found`.
    pub async fn setup(
        &self,
        pod: &Pod,
        objects: &dyn VolumeObjects,
        node: &NodeFacts,
    ) -> Result<PodVolumes, VolumeError> {
        let plans = self.plan(pod, objects, node, false).await?;
        tokio::task::spawn_blocking(move || apply(plans).map(|(v, _)| v))
            .await
            .map_err(|e| VolumeError::SetUp {
                volume: String::new(),
                message: e.to_string(),
            })?
    }

    /// Re-renders configMap/secret/downwardAPI/projected contents that changed (atomically,
    /// the `..data` symlink swap) for a running pod; true if anything changed.
    pub async fn refresh(
        &self,
        pod: &Pod,
        objects: &dyn VolumeObjects,
        node: &NodeFacts,
    ) -> Result<bool, VolumeError> {
        let plans = self.plan(pod, objects, node, true).await?;
        tokio::task::spawn_blocking(move || apply(plans).map(|(_, changed)| changed))
            .await
            .map_err(|e| VolumeError::SetUp {
                volume: String::new(),
                message: e.to_string(),
            })?
    }

    /// Unmounts (tmpfs, binds) and removes everything of the pod. Idempotent; after it
    /// nothing of the pod is left in /proc/self/mountinfo or on disk under pods/<uid>.
    pub async fn teardown(&self, pod_uid: &str) -> Result<(), VolumeError> {
        check_uid(pod_uid)?;
        let dir = self.pod_dir(pod_uid);
        let uid = pod_uid.to_owned();
        let res = tokio::task::spawn_blocking(move || -> io::Result<()> {
            mounts::unmount_under(&dir)?;
            match fs::remove_dir_all(&dir) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(io::Error::other)
        .and_then(|r| r);
        res.map_err(|source| VolumeError::TearDown { uid, source })
    }

    /// Pod uids that have a directory (for cleanup of orphans after a restart).
    pub fn pods_on_disk(&self) -> Vec<String> {
        let mut out: Vec<String> = fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect();
        out.sort();
        out
    }

    /// Reads what each volume needs. `only_files`: just the atomic-writer volumes
    /// (refresh), skipping the others.
    async fn plan(
        &self,
        pod: &Pod,
        objects: &dyn VolumeObjects,
        node: &NodeFacts,
        only_files: bool,
    ) -> Result<Vec<(String, Plan)>, VolumeError> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        check_uid(&uid)?;
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let volumes = pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.as_deref())
            .unwrap_or_default();
        let mem =
            |size: Option<&Quantity>| Some(empty_dir::memory_size(&node.allocatable, pod, size));
        // The pod's fsGroup: group owner of emptyDir, configMap, secret, downwardAPI and
        // projected volumes (upstream's SetVolumeOwnership; not hostPath, not PVCs here).
        let fs_group = pod
            .spec
            .as_ref()
            .and_then(|s| s.security_context.as_ref())
            .and_then(|s| s.fs_group)
            .and_then(|g| u32::try_from(g).ok());
        let mut plans = Vec::new();
        for v in volumes {
            let err = setup_err(v);
            let plan = if let Some(ed) = &v.empty_dir {
                if only_files {
                    continue;
                }
                let memory = ed.medium.as_deref() == Some("Memory");
                Plan::Dir {
                    dir: self.volume_dir(&uid, EMPTY_DIR, &v.name),
                    tmpfs: memory.then(|| mem(ed.size_limit.as_ref())).flatten(),
                    fs_group,
                }
            } else if let Some(hp) = &v.host_path {
                if only_files {
                    continue;
                }
                Plan::Host {
                    path: PathBuf::from(&hp.path),
                    typ: hp.type_.clone(),
                    readonly: false,
                }
            } else if let Some(src) = &v.config_map {
                let optional = src.optional.unwrap_or(false);
                let cm = match objects.config_map(&ns, &src.name).await.map_err(&err)? {
                    Some(cm) => cm,
                    None if optional => ConfigMap::default(),
                    None => return Err(err(format!("configmap \"{}\" not found", src.name))),
                };
                let payload =
                    configmap::make_payload(src.items.as_deref(), &cm, src.default_mode, optional)
                        .map_err(&err)?;
                Plan::Files {
                    dir: self.volume_dir(&uid, CONFIG_MAP, &v.name),
                    tmpfs: None,
                    payload,
                    fs_group,
                }
            } else if let Some(src) = &v.secret {
                let name = src.secret_name.clone().unwrap_or_default();
                let optional = src.optional.unwrap_or(false);
                let s = match objects.secret(&ns, &name).await.map_err(&err)? {
                    Some(s) => s,
                    None if optional => Secret::default(),
                    None => return Err(err(format!("secret \"{name}\" not found"))),
                };
                let payload =
                    secret::make_payload(src.items.as_deref(), &s, src.default_mode, optional)
                        .map_err(&err)?;
                Plan::Files {
                    dir: self.volume_dir(&uid, SECRET, &v.name),
                    tmpfs: mem(None),
                    payload,
                    fs_group,
                }
            } else if let Some(src) = &v.downward_api {
                let payload = downwardapi::collect_data(
                    src.items.as_deref().unwrap_or_default(),
                    pod,
                    &node.allocatable,
                    src.default_mode,
                )
                .map_err(&err)?;
                Plan::Files {
                    dir: self.volume_dir(&uid, DOWNWARD_API, &v.name),
                    tmpfs: mem(None),
                    payload,
                    fs_group,
                }
            } else if let Some(src) = &v.projected {
                let dir = self.volume_dir(&uid, PROJECTED, &v.name);
                let payload =
                    projected::collect(src, pod, &ns, objects, node, &dir, fs_group.is_some())
                        .await
                        .map_err(&err)?;
                Plan::Files {
                    dir,
                    tmpfs: mem(None),
                    payload,
                    fs_group,
                }
            } else if let Some(claim) = &v.persistent_volume_claim {
                if only_files {
                    continue;
                }
                let (path, typ) = pvc::resolve(&ns, &claim.claim_name, objects)
                    .await
                    .map_err(|message| VolumeError::Claim {
                        volume: v.name.clone(),
                        message,
                    })?;
                Plan::Host {
                    path,
                    typ,
                    readonly: claim.read_only.unwrap_or(false),
                }
            } else {
                if only_files {
                    continue;
                }
                return Err(err(
                    "no volume plugin matched (skiff supports emptyDir, hostPath, configMap, \
                     secret, downwardAPI, projected and persistentVolumeClaim)"
                        .into(),
                ));
            };
            plans.push((v.name.clone(), plan));
        }
        Ok(plans)
    }
}

/// Writes the plans to disk; returns the volumes and whether any file content changed.
fn apply(plans: Vec<(String, Plan)>) -> Result<(PodVolumes, bool), VolumeError> {
    let mut out = PodVolumes::default();
    let mut changed = false;
    for (name, plan) in plans {
        let err = |message: String| VolumeError::SetUp {
            volume: name.clone(),
            message,
        };
        let prepare = |dir: &Path, tmpfs: Option<Option<i64>>| -> Result<(), VolumeError> {
            match tmpfs {
                Some(size) => empty_dir::setup_tmpfs(dir, size),
                None => empty_dir::setup_dir(dir),
            }
            .map_err(|e| err(e.to_string()))
        };
        let vol = match plan {
            Plan::Dir {
                dir,
                tmpfs,
                fs_group,
            } => {
                prepare(&dir, tmpfs)?;
                if let Some(g) = fs_group {
                    empty_dir::set_ownership(&dir, g).map_err(|e| err(e.to_string()))?;
                }
                MountedVolume {
                    path: dir,
                    readonly: false,
                }
            }
            Plan::Host {
                path,
                typ,
                readonly,
            } => {
                host_path::check_type(&path, typ.as_deref()).map_err(err)?;
                // Without a type a missing path is made a directory: containerd's CRI does
                // so for every missing bind source (WithMounts), and skiff has no containerd.
                if typ.as_deref().unwrap_or("").is_empty() && fs::symlink_metadata(&path).is_err() {
                    fs::create_dir_all(&path).map_err(|e| err(e.to_string()))?;
                }
                MountedVolume { path, readonly }
            }
            Plan::Files {
                dir,
                tmpfs,
                payload,
                fs_group,
            } => {
                prepare(&dir, tmpfs)?;
                changed |= atomic_writer::write_owned(&dir, &payload, fs_group)
                    .map_err(|e| err(e.to_string()))?;
                MountedVolume {
                    path: dir,
                    readonly: true,
                }
            }
        };
        out.volumes.insert(name, vol);
    }
    Ok((out, changed))
}

/// `readOnly`, `subPath` and `mountPropagation` of one volumeMount.
fn propagation(p: Option<&str>) -> Propagation {
    match p {
        Some("HostToContainer") => Propagation::HostToContainer,
        Some("Bidirectional") => Propagation::Bidirectional,
        _ => Propagation::Private,
    }
}

/// `ExpandContainerVolumeMounts`: `$(VAR)` from the container's env; an unknown or empty
/// variable is an error naming them all.
pub fn expand_subpath_expr(expr: &str, env: &[(String, String)]) -> Result<String, VolumeError> {
    let map: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let missing = std::cell::RefCell::new(BTreeSet::new());
    let out = crate::pods::env::expand(expr, |k| match map.get(k) {
        Some(v) if !v.is_empty() => Some((*v).to_owned()),
        _ => {
            missing.borrow_mut().insert(k.to_owned());
            Some(String::new())
        }
    });
    let missing = missing.into_inner();
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(VolumeError::SubPath(format!(
            "missing value for {}",
            missing.into_iter().collect::<Vec<_>>().join(", ")
        )))
    }
}

/// The host path of `sub` inside `volume`, as makeMounts: absolute or `..` refused; made
/// (with the volume directory's mode) when missing; its resolved path must stay inside
/// the volume's.
fn subpath_host(
    volume: &Path,
    sub: &str,
    mount: &str,
    container: &str,
) -> Result<PathBuf, VolumeError> {
    if sub.starts_with('/') {
        return Err(VolumeError::SubPath(format!(
            "error SubPath `{sub}` must not be an absolute path"
        )));
    }
    if Path::new(sub)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return Err(VolumeError::SubPath(format!(
            "unable to provision SubPath `{sub}`: must not contain '..'"
        )));
    }
    let host = volume.join(sub);
    let prepare_err = || {
        VolumeError::SubPath(format!(
            "failed to prepare subPath for volumeMount \"{mount}\" of container \"{container}\""
        ))
    };
    if fs::symlink_metadata(&host).is_err() {
        let mode = fs::metadata(volume)
            .map(|m| m.permissions().mode() & 0o7777)
            .unwrap_or(0o755);
        let made = fs::create_dir_all(&host)
            .and_then(|()| fs::set_permissions(&host, fs::Permissions::from_mode(mode)));
        if made.is_err() {
            return Err(VolumeError::SubPath(format!(
                "failed to create subPath directory for volumeMount \"{mount}\" of container \"{container}\""
            )));
        }
    }
    let base = fs::canonicalize(volume).map_err(|_| prepare_err())?;
    let resolved = fs::canonicalize(&host).map_err(|_| prepare_err())?;
    if !resolved.starts_with(&base) {
        return Err(prepare_err());
    }
    Ok(resolved)
}

impl PodVolumes {
    /// The bind mounts of one container (volumeMounts: readOnly, subPath - created in the
    /// volume when missing, as upstream; subPathExpr expanded with the container's env if
    /// given; mountPropagation None/HostToContainer/Bidirectional -> spec::Propagation).
    /// Blocking (it may make subPath directories).
    pub fn mounts_for(
        &self,
        container: &Container,
        env: &[(String, String)],
    ) -> Result<Vec<BindMount>, VolumeError> {
        let mut out = Vec::new();
        for m in container.volume_mounts.iter().flatten() {
            let vol = self
                .volumes
                .get(&m.name)
                .ok_or_else(|| VolumeError::NoVolume {
                    volume: m.name.clone(),
                    container: container.name.clone(),
                })?;
            let sub = match m.sub_path_expr.as_deref().filter(|s| !s.is_empty()) {
                Some(expr) => expand_subpath_expr(expr, env)?,
                None => m.sub_path.clone().unwrap_or_default(),
            };
            let host_path = if sub.is_empty() {
                vol.path.clone()
            } else {
                subpath_host(&vol.path, &sub, &m.name, &container.name)?
            };
            out.push(BindMount {
                host_path,
                container_path: PathBuf::from(&m.mount_path),
                readonly: m.read_only.unwrap_or(false) || vol.readonly,
                propagation: propagation(m.mount_propagation.as_deref()),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::VolumeMount;

    fn vm(name: &str, path: &str) -> VolumeMount {
        VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            ..Default::default()
        }
    }

    #[test]
    fn mounts_for_subpath_readonly_propagation() -> anyhow::Result<()> {
        let d = tempfile::tempdir()?;
        let data = d.path().join("data");
        fs::create_dir(&data)?;
        fs::set_permissions(&data, fs::Permissions::from_mode(0o750))?;
        let cfg = d.path().join("cfg");
        fs::create_dir(&cfg)?;
        let vols = PodVolumes {
            volumes: [
                (
                    "data".to_string(),
                    MountedVolume {
                        path: data.clone(),
                        readonly: false,
                    },
                ),
                (
                    "cfg".to_string(),
                    MountedVolume {
                        path: cfg.clone(),
                        readonly: true,
                    },
                ),
            ]
            .into(),
        };
        let c = Container {
            name: "app".into(),
            volume_mounts: Some(vec![
                VolumeMount {
                    read_only: Some(true),
                    mount_propagation: Some("HostToContainer".into()),
                    ..vm("data", "/ro")
                },
                VolumeMount {
                    sub_path: Some("a/b".into()),
                    mount_propagation: Some("Bidirectional".into()),
                    ..vm("data", "/sub")
                },
                VolumeMount {
                    sub_path_expr: Some("logs/$(POD)".into()),
                    ..vm("data", "/expr")
                },
                vm("cfg", "/etc/cfg"),
            ]),
            ..Default::default()
        };
        let env = vec![("POD".to_string(), "p1".to_string())];
        let m = vols.mounts_for(&c, &env)?;
        let base = fs::canonicalize(&data)?;
        assert_eq!(m.len(), 4);
        assert_eq!(
            (m[0].readonly, m[0].propagation),
            (true, Propagation::HostToContainer)
        );
        assert_eq!(m[1].host_path, base.join("a/b"));
        assert_eq!(m[1].propagation, Propagation::Bidirectional);
        assert!(!m[1].readonly);
        assert_eq!(
            fs::metadata(data.join("a/b"))?.permissions().mode() & 0o777,
            0o750,
            "made with the volume's mode"
        );
        assert_eq!(m[2].host_path, base.join("logs/p1"));
        assert!(m[3].readonly, "configMap-like volumes are read-only");
        assert_eq!(m[3].container_path, PathBuf::from("/etc/cfg"));

        // Errors as upstream.
        let one = |mount: VolumeMount, env: &[(String, String)]| {
            let c = Container {
                name: "app".into(),
                volume_mounts: Some(vec![mount]),
                ..Default::default()
            };
            vols.mounts_for(&c, env).err().map(|e| e.to_string())
        };
        assert_eq!(
            one(vm("nope", "/x"), &[]),
            Some("cannot find volume \"nope\" to mount into container \"app\"".into())
        );
        assert_eq!(
            one(
                VolumeMount {
                    sub_path: Some("../up".into()),
                    ..vm("data", "/x")
                },
                &[]
            ),
            Some("unable to provision SubPath `../up`: must not contain '..'".into())
        );
        assert_eq!(
            one(
                VolumeMount {
                    sub_path: Some("/abs".into()),
                    ..vm("data", "/x")
                },
                &[]
            ),
            Some("error SubPath `/abs` must not be an absolute path".into())
        );
        assert_eq!(
            one(
                VolumeMount {
                    sub_path_expr: Some("$(B)/$(A)".into()),
                    ..vm("data", "/x")
                },
                &[("A".into(), String::new())]
            ),
            Some("missing value for A, B".into())
        );
        // A symlink out of the volume is refused.
        std::os::unix::fs::symlink("/etc", data.join("escape"))?;
        assert_eq!(
            one(
                VolumeMount {
                    sub_path: Some("escape".into()),
                    ..vm("data", "/x")
                },
                &[]
            ),
            Some("failed to prepare subPath for volumeMount \"data\" of container \"app\"".into())
        );
        Ok(())
    }

    #[test]
    fn uid_must_be_one_component() {
        assert!(check_uid("3f2a-1").is_ok());
        for bad in ["", ".", "..", "a/b", "../x"] {
            assert!(check_uid(bad).is_err(), "{bad}");
        }
    }
}
