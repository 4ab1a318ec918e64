//! The volume manager on the real host: tmpfs mounts made and undone, the `..data` swap
//! seen by a concurrent reader, teardown leaving nothing in `/proc/self/mountinfo` or on
//! disk, a missing ConfigMap failing with upstream's message until it exists. Needs root
//! (mount(2)).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use async_trait::async_trait;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, PersistentVolume,
    PersistentVolumeClaim, Pod, PodSpec, ProjectedVolumeSource, Secret, SecretVolumeSource,
    ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use skiff_kubelet::volumes::{mounts, NodeFacts, VolumeManager, VolumeObjects};

/// ConfigMaps and Secrets in maps the test changes while the manager runs.
#[derive(Default)]
struct Objects {
    config_maps: Mutex<BTreeMap<String, ConfigMap>>,
    secrets: Mutex<BTreeMap<String, Secret>>,
    tokens: Mutex<u32>,
    claims: Mutex<BTreeMap<String, PersistentVolumeClaim>>,
    pvs: Mutex<BTreeMap<String, PersistentVolume>>,
}

impl Objects {
    fn put_cm(&self, name: &str, data: &[(&str, &str)]) {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        };
        if let Ok(mut m) = self.config_maps.lock() {
            m.insert(name.into(), cm);
        }
    }

    fn put_secret(&self, name: &str, key: &str, value: &str) {
        let s = Secret {
            data: Some([(key.to_string(), ByteString(value.as_bytes().to_vec()))].into()),
            ..Default::default()
        };
        if let Ok(mut m) = self.secrets.lock() {
            m.insert(name.into(), s);
        }
    }
}

#[async_trait]
impl VolumeObjects for Objects {
    async fn config_map(&self, _: &str, name: &str) -> Result<Option<ConfigMap>, String> {
        let m = self.config_maps.lock().map_err(|e| e.to_string())?;
        Ok(m.get(name).cloned())
    }
    async fn secret(&self, _: &str, name: &str) -> Result<Option<Secret>, String> {
        let m = self.secrets.lock().map_err(|e| e.to_string())?;
        Ok(m.get(name).cloned())
    }
    async fn pvc(&self, _: &str, name: &str) -> Result<Option<PersistentVolumeClaim>, String> {
        let m = self.claims.lock().map_err(|e| e.to_string())?;
        Ok(m.get(name).cloned())
    }
    async fn pv(&self, name: &str) -> Result<Option<PersistentVolume>, String> {
        let m = self.pvs.lock().map_err(|e| e.to_string())?;
        Ok(m.get(name).cloned())
    }
    async fn token(
        &self,
        _: &str,
        sa: &str,
        _: Option<&str>,
        _: i64,
        _: &Pod,
    ) -> Result<Option<String>, String> {
        let mut n = self.tokens.lock().map_err(|e| e.to_string())?;
        *n += 1;
        Ok(Some(format!("token-{sa}-{n}")))
    }
}

/// A temporary pods dir whose mounts are undone however the test ends.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Result<Root> {
        let status = fs::read_to_string("/proc/self/status")?;
        let euid = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .context("no Uid in /proc/self/status")?;
        ensure!(euid == "0", "tests/volumes.rs needs root (mount)");
        Ok(Root {
            dir: tempfile::Builder::new()
                .prefix("skiff-volumes-")
                .tempdir_in("/var/tmp")?,
        })
    }
    fn path(&self) -> PathBuf {
        self.dir.path().to_owned()
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let _ = mounts::unmount_under(self.dir.path());
    }
}

fn mountinfo_under(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(point) = fields.get(4) else { continue };
        let point = PathBuf::from(point);
        if point.starts_with(dir) {
            // The super options (after " - fstype source") hold size=.
            let opts = line.split(" - ").nth(1).unwrap_or_default().to_owned();
            out.push((point, opts));
        }
    }
    Ok(out)
}

fn pod(uid: &str, volumes: Vec<Volume>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("ns".into()),
            uid: Some(uid.into()),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                volume_mounts: Some(
                    volumes
                        .iter()
                        .map(|v| VolumeMount {
                            name: v.name.clone(),
                            mount_path: format!("/mnt/{}", v.name),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }],
            volumes: Some(volumes),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node() -> NodeFacts {
    NodeFacts {
        allocatable: [("memory".to_string(), Quantity("512Mi".into()))].into(),
        node_name: "n1".into(),
    }
}

fn empty_dir(name: &str, memory: bool, size: Option<&str>) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: memory.then(|| "Memory".into()),
            size_limit: size.map(|s| Quantity(s.into())),
        }),
        ..Default::default()
    }
}

fn cm_volume(name: &str, cm: &str) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: cm.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn secret_volume(name: &str, secret: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.into()),
            default_mode: Some(0o400),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn tmpfs_emptydir_and_secret_mounted_then_torn_down() -> Result<()> {
    let root = Root::new()?;
    let vm = VolumeManager::new(root.path());
    let objects = Objects::default();
    objects.put_secret("s", "password", "hunter2");
    objects.put_cm("cfg", &[("k", "v")]);
    let uid = "0a1b2c3d-0000-4000-8000-000000000001";
    let p = pod(
        uid,
        vec![
            empty_dir("cache", true, Some("8Mi")),
            empty_dir("scratch", false, None),
            secret_volume("creds", "s"),
            cm_volume("cfg", "cfg"),
            Volume {
                name: "sa".into(),
                projected: Some(ProjectedVolumeSource {
                    sources: Some(vec![VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            path: "token".into(),
                            expiration_seconds: Some(3600),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    default_mode: Some(0o644),
                }),
                ..Default::default()
            },
        ],
    );
    let vols = vm.setup(&p, &objects, &node()).await?;
    let pod_dir = root.path().join(uid);
    let cache = pod_dir.join("volumes/kubernetes.io~empty-dir/cache");
    let creds = pod_dir.join("volumes/kubernetes.io~secret/creds");
    let projected = pod_dir.join("volumes/kubernetes.io~projected/sa");
    let found = mountinfo_under(&pod_dir)?;
    let points: Vec<&PathBuf> = found.iter().map(|(p, _)| p).collect();
    ensure!(
        points.len() == 3,
        "cache, creds and sa are tmpfs: {found:?}"
    );
    for p in [&cache, &creds, &projected] {
        ensure!(
            points.contains(&p),
            "{} not mounted: {found:?}",
            p.display()
        );
    }
    let cache_opts = &found.iter().find(|(p, _)| p == &cache).context("cache")?.1;
    ensure!(
        cache_opts.starts_with("tmpfs ") && cache_opts.contains("size=8192k"),
        "{cache_opts}"
    );
    // The secret's files on the tmpfs, with defaultMode, through the ..data layout.
    use std::os::unix::fs::PermissionsExt;
    ensure!(fs::read_to_string(creds.join("password"))? == "hunter2");
    ensure!(fs::metadata(creds.join("password"))?.permissions().mode() & 0o777 == 0o400);
    ensure!(fs::read_link(creds.join("password"))? == Path::new("..data/password"));
    ensure!(fs::read_to_string(projected.join("token"))? == "token-default-1");
    // The disk emptyDir is a 0777 directory, no mount.
    let scratch = pod_dir.join("volumes/kubernetes.io~empty-dir/scratch");
    ensure!(fs::metadata(&scratch)?.permissions().mode() & 0o777 == 0o777);
    // Bind mounts for the container: API-data volumes read-only.
    let binds = vols.mounts_for(&p.spec.as_ref().context("spec")?.containers[0], &[])?;
    ensure!(binds.len() == 5);
    for b in &binds {
        let ro = b.container_path.ends_with("creds")
            || b.container_path.ends_with("cfg")
            || b.container_path.ends_with("sa");
        ensure!(b.readonly == ro, "{b:?}");
    }

    // A second setup (a restarted kubelet) mounts nothing twice and keeps the token.
    let again = VolumeManager::new(root.path());
    let vols2 = again.setup(&p, &objects, &node()).await?;
    ensure!(vols2 == vols);
    ensure!(mountinfo_under(&pod_dir)?.len() == 3);
    ensure!(fs::read_to_string(projected.join("token"))? == "token-default-1");
    ensure!(again.pods_on_disk() == vec![uid.to_string()]);

    // Teardown by that new manager undoes the first one's mounts and removes everything.
    again.teardown(uid).await?;
    ensure!(mountinfo_under(&pod_dir)?.is_empty(), "mounts left");
    ensure!(!pod_dir.exists(), "pod dir left");
    again.teardown(uid).await?;
    ensure!(again.pods_on_disk().is_empty());
    Ok(())
}

#[tokio::test]
async fn configmap_update_swaps_data_atomically() -> Result<()> {
    let root = Root::new()?;
    let vm = VolumeManager::new(root.path());
    let objects = Objects::default();
    // Large values, so a torn write would be visible as a short or mixed file.
    let value = |n: u32| format!("{n:08}").repeat(32 * 1024);
    objects.put_cm("cfg", &[("a", &value(0)), ("b", &value(0))]);
    let uid = "0a1b2c3d-0000-4000-8000-000000000002";
    let p = pod(uid, vec![cm_volume("cfg", "cfg")]);
    vm.setup(&p, &objects, &node()).await?;
    let dir = root
        .path()
        .join(uid)
        .join("volumes/kubernetes.io~configmap/cfg");
    ensure!(
        mountinfo_under(&root.path().join(uid))?.is_empty(),
        "configMap: no mount"
    );

    // A reader checks every file it reads is one whole version.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let dir = dir.clone();
        let expected_len = value(0).len();
        std::thread::spawn(move || -> Result<u64> {
            let mut reads = 0u64;
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                for key in ["a", "b"] {
                    // A read can race the old directory's removal (ENOENT): that is not a
                    // torn file, retry.
                    let Ok(s) = fs::read_to_string(dir.join(key)) else {
                        continue;
                    };
                    ensure!(s.len() == expected_len, "short read: {}", s.len());
                    let first = &s[..8];
                    ensure!(
                        s.as_bytes().chunks(8).all(|c| c == first.as_bytes()),
                        "mixed"
                    );
                    reads += 1;
                }
            }
            Ok(reads)
        })
    };
    let mut last_ts = fs::read_link(dir.join("..data"))?;
    for n in 1..=20u32 {
        objects.put_cm("cfg", &[("a", &value(n)), ("b", &value(n))]);
        ensure!(vm.refresh(&p, &objects, &node()).await?, "update {n} seen");
        let ts = fs::read_link(dir.join("..data"))?;
        ensure!(ts != last_ts, "a new data directory");
        ensure!(!dir.join(&last_ts).exists(), "old data directory removed");
        last_ts = ts;
        ensure!(fs::read_to_string(dir.join("a"))? == value(n));
    }
    stop.store(true, Ordering::Relaxed);
    let reads = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    ensure!(reads > 0, "the reader read something");
    // Nothing changed: no new directory.
    ensure!(!vm.refresh(&p, &objects, &node()).await?);
    ensure!(fs::read_link(dir.join("..data"))? == last_ts);
    // A key removed from the ConfigMap disappears from the volume.
    objects.put_cm("cfg", &[("a", "only")]);
    ensure!(vm.refresh(&p, &objects, &node()).await?);
    ensure!(fs::symlink_metadata(dir.join("b")).is_err());
    let mut names: Vec<String> = fs::read_dir(&dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    ensure!(names.len() == 3, "..<ts>, ..data, a: {names:?}");
    vm.teardown(uid).await?;
    ensure!(!root.path().join(uid).exists());
    Ok(())
}

#[tokio::test]
async fn missing_configmap_fails_until_it_exists() -> Result<()> {
    let root = Root::new()?;
    let vm = VolumeManager::new(root.path());
    let objects = Objects::default();
    let uid = "0a1b2c3d-0000-4000-8000-000000000003";
    let p = pod(
        uid,
        vec![secret_volume("creds", "s"), cm_volume("cfg", "missing")],
    );
    objects.put_secret("s", "k", "v");
    let err = vm
        .setup(&p, &objects, &node())
        .await
        .err()
        .context("setup without the ConfigMap must fail")?;
    ensure!(
        err.to_string()
            == "MountVolume.SetUp failed for volume \"cfg\" : configmap \"missing\" not found",
        "{err}"
    );
    ensure!(err.volume() == Some("cfg"));
    // A key the ConfigMap lacks.
    let mut with_items = p.clone();
    if let Some(cm) = with_items
        .spec
        .as_mut()
        .and_then(|s| s.volumes.as_mut())
        .and_then(|v| v.get_mut(1))
        .and_then(|v| v.config_map.as_mut())
    {
        cm.items = Some(vec![k8s_openapi::api::core::v1::KeyToPath {
            key: "nope".into(),
            path: "x".into(),
            mode: None,
        }]);
    }
    objects.put_cm("missing", &[("present", "1")]);
    let err = vm
        .setup(&with_items, &objects, &node())
        .await
        .err()
        .context("a missing key must fail")?;
    ensure!(
        err.to_string()
            == "MountVolume.SetUp failed for volume \"cfg\" : configmap references non-existent config key: nope",
        "{err}"
    );
    // Once it exists with the key, the same pod sets up.
    let vols = vm.setup(&p, &objects, &node()).await?;
    ensure!(fs::read_to_string(vols.volumes["cfg"].path.join("present"))? == "1");
    vm.teardown(uid).await?;
    ensure!(mountinfo_under(&root.path().join(uid))?.is_empty());
    ensure!(!root.path().join(uid).exists());
    Ok(())
}

#[tokio::test]
async fn fs_group_owns_volumes_and_unchanged_refresh_writes_nothing() -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let root = Root::new()?;
    let vm = VolumeManager::new(root.path());
    let objects = Objects::default();
    objects.put_secret("s", "k", "v");
    let uid = "0a1b2c3d-0000-4000-8000-000000000004";
    let mut p = pod(
        uid,
        vec![
            secret_volume("creds", "s"),
            empty_dir("data", false, None),
            Volume {
                name: "sa".into(),
                projected: Some(ProjectedVolumeSource {
                    sources: Some(vec![VolumeProjection {
                        service_account_token: Some(ServiceAccountTokenProjection {
                            path: "token".into(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }]),
                    default_mode: Some(0o644),
                }),
                ..Default::default()
            },
        ],
    );
    if let Some(spec) = p.spec.as_mut() {
        spec.security_context = Some(k8s_openapi::api::core::v1::PodSecurityContext {
            fs_group: Some(2345),
            ..Default::default()
        });
    }
    let vols = vm.setup(&p, &objects, &node()).await?;
    let meta = |v: &str, f: &str| fs::metadata(vols.volumes[v].path.join(f));
    let secret = meta("creds", "k")?;
    ensure!(secret.gid() == 2345, "secret gid {}", secret.gid());
    ensure!(
        secret.permissions().mode() & 0o7777 == 0o440,
        "0400 | 0440: {:o}",
        secret.permissions().mode()
    );
    let token = meta("sa", "token")?;
    ensure!(token.permissions().mode() & 0o7777 == 0o640 && token.gid() == 2345);
    let data = fs::metadata(&vols.volumes["data"].path)?;
    ensure!(data.gid() == 2345 && data.permissions().mode() & 0o7777 == 0o2777);
    let before = fs::read_link(vols.volumes["creds"].path.join("..data"))?;
    ensure!(!vm.refresh(&p, &objects, &node()).await?, "nothing changed");
    ensure!(fs::read_link(vols.volumes["creds"].path.join("..data"))? == before);
    vm.teardown(uid).await?;
    ensure!(!root.path().join(uid).exists());
    Ok(())
}

#[tokio::test]
async fn host_path_and_bound_claim_are_bind_sources() -> Result<()> {
    use k8s_openapi::api::core::v1::{
        HostPathVolumeSource, LocalVolumeSource, ObjectReference, PersistentVolumeClaimSpec,
        PersistentVolumeClaimStatus, PersistentVolumeClaimVolumeSource, PersistentVolumeSpec,
    };
    let root = Root::new()?;
    let host = tempfile::tempdir()?;
    let vm = VolumeManager::new(root.path());
    let objects = Objects::default();
    let uid = "0a1b2c3d-0000-4000-8000-000000000005";
    let local = host.path().join("local-pv");
    fs::create_dir(&local)?;
    let claim = |phase: &str, volume: Option<&str>| PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            uid: Some("claim-uid".into()),
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
    };
    if let Ok(mut m) = objects.claims.lock() {
        m.insert("data".into(), claim("Pending", None));
    }
    let host_vol = |name: &str, path: &Path, typ: Option<&str>| Volume {
        name: name.into(),
        host_path: Some(HostPathVolumeSource {
            path: path.to_string_lossy().into_owned(),
            type_: typ.map(Into::into),
        }),
        ..Default::default()
    };
    let claim_vol = Volume {
        name: "pvc".into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: "data".into(),
            read_only: Some(true),
        }),
        ..Default::default()
    };
    let made = host.path().join("made/by/type");
    let untyped = host.path().join("untyped");
    let p = pod(
        uid,
        vec![
            host_vol("made", &made, Some("DirectoryOrCreate")),
            host_vol("untyped", &untyped, None),
            claim_vol.clone(),
        ],
    );
    let err = vm
        .setup(&p, &objects, &node())
        .await
        .err()
        .context("pending claim")?;
    ensure!(
        err.to_string()
            == "error processing PVC ns/data: PVC ns/data has non-bound phase (\"Pending\") or empty pvc.Spec.VolumeName (\"\")",
        "{err}"
    );
    if let Ok(mut m) = objects.claims.lock() {
        m.insert("data".into(), claim("Bound", Some("pv1")));
    }
    if let Ok(mut m) = objects.pvs.lock() {
        m.insert(
            "pv1".into(),
            PersistentVolume {
                spec: Some(PersistentVolumeSpec {
                    local: Some(LocalVolumeSource {
                        path: local.to_string_lossy().into_owned(),
                        fs_type: None,
                    }),
                    claim_ref: Some(ObjectReference {
                        uid: Some("claim-uid".into()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
        );
    }
    let vols = vm.setup(&p, &objects, &node()).await?;
    ensure!(made.is_dir() && untyped.is_dir());
    ensure!(vols.volumes["made"].path == made && !vols.volumes["made"].readonly);
    ensure!(vols.volumes["pvc"].path == local && vols.volumes["pvc"].readonly);
    ensure!(
        mountinfo_under(&root.path().join(uid))?.is_empty(),
        "no mounts made"
    );
    let binds = vols.mounts_for(&p.spec.as_ref().context("spec")?.containers[0], &[])?;
    ensure!(binds.iter().any(|b| b.host_path == local && b.readonly));

    // A typed hostPath that is not what it says fails with upstream's message.
    let file = host.path().join("a-file");
    fs::write(&file, "x")?;
    let bad = pod(uid, vec![host_vol("bad", &file, Some("Directory"))]);
    let err = vm
        .setup(&bad, &objects, &node())
        .await
        .err()
        .context("not a dir")?;
    ensure!(
        err.to_string()
            == format!(
                "MountVolume.SetUp failed for volume \"bad\" : hostPath type check failed: {} is not a directory",
                file.display()
            ),
        "{err}"
    );
    vm.teardown(uid).await?;
    ensure!(
        local.is_dir() && made.is_dir(),
        "teardown leaves host paths alone"
    );
    ensure!(!root.path().join(uid).exists());
    Ok(())
}
