//! [`LocalRuntime`]: the real [`PodRuntime`], over the image store, snapshots, sandboxes,
//! containers under monitors and pod cgroups of this crate - what containerd's CRI plugin
//! (`internal/cri/server/`: `image_pull.go`, `sandbox_run.go`, `container_create.go`,
//! `container_start.go`, `container_stop.go`, `container_remove.go`, `container_status.go`)
//! does for upstream's kubelet.
//!
//! Layout under `<data-dir>/agent/`:
//! - `containers/<id>/`: the bundle (`config.json`, the overlay `rootfs` mount with its
//!   `upper` and `work` dirs) and `meta.json` (the [`ContainerMeta`], when it was created,
//!   a failed start); `containers/<id>/monitor/<id>/` is the monitor's state directory
//!   (kept apart from the bundle: a monitor that fails to start deletes its own directory,
//!   never the mounted rootfs). `remove_container` deletes `containers/<id>/`.
//! - `containers/<runtime>/`: the OCI runtime's `--root` (`runc`, `crun`).
//! - `sandboxes/`, `images-store/`, `registries.yaml`: see [`crate::sandbox`],
//!   [`crate::image`].
//!
//! Everything that blocks runs on `spawn_blocking`. Nothing is kept in memory but the
//! configuration: a second `LocalRuntime` on the same data dir (a restarted kubelet) lists
//! and controls what the first started, since the monitors outlive it.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::cgroups::Cgroups;
use crate::container::monitor::{
    write_durably, ContainerHandle, ContainerStatus, Containers, MonitorCommand, MonitorError,
    StartRequest,
};
use crate::container::runtime::{Runtime, RuntimeError, DEFAULT_RUNTIME};
use crate::container::spec::{self, ContainerConfig};
use crate::cri::{
    ContainerInfo, ContainerMeta, ContainerState, CriError, ExecOutput, FsUsage, ImageInfo,
    PodCgroup, PodRuntime, PreparedContainer, Result, StreamRequest, StreamSession,
};
use crate::image::{
    self, DockerConfigJson, ImageRecord, PullOptions, RegistriesConfig, Snapshots, Store,
};
use crate::sandbox::cni::Cni;
use crate::sandbox::pause::PauseCommand;
use crate::sandbox::{self, Sandbox, SandboxConfig, SandboxError, SandboxState, Sandboxes};

/// The [`ContainerMeta::labels`] key that gives a container a stdin (the pod spec's
/// `stdin: true`): value `"true"`. Its monitor then holds a stdin FIFO that `attach` writes
/// to; without it an attach has no stdin. [`ContainerConfig::stdin`] does the same.
pub const STDIN_LABEL: &str = "io.skiff.container.stdin";

const META_FILE: &str = "meta.json";
const MONITOR_DIR: &str = "monitor";

/// What a [`LocalRuntime`] is made from.
#[derive(Clone, Debug)]
pub struct LocalConfig {
    /// skiff's data dir; everything lives under `<data_dir>/agent/`.
    pub data_dir: PathBuf,
    /// `runc` (default), `crun`, or a path.
    pub runtime_binary: PathBuf,
    /// The node's pod network (`None`: only hostNetwork pods until it is configured).
    pub cni: Option<Cni>,
    /// How to start a container's monitor (`skiff container-monitor`).
    pub monitor: MonitorCommand,
    /// The registries file; `None`: `<data-dir>/agent/registries.yaml`.
    pub registries: Option<PathBuf>,
    /// The cgroup hierarchies' mount point; `None`: `/sys/fs/cgroup`.
    pub cgroup_root: Option<PathBuf>,
    /// How to start a `shareProcessNamespace` pod's PID namespace holder; by default the
    /// monitor's program as `sandbox-pause` when the monitor is `<skiff> container-monitor`.
    pub pause: Option<PauseCommand>,
}

impl LocalConfig {
    /// runc, no CNI, the default registries file and cgroup root.
    pub fn new(data_dir: impl Into<PathBuf>, monitor: MonitorCommand) -> Self {
        let pause =
            (monitor.args == ["container-monitor"]).then(|| PauseCommand::skiff(&monitor.program));
        LocalConfig {
            pause,
            data_dir: data_dir.into(),
            runtime_binary: PathBuf::from(DEFAULT_RUNTIME),
            cni: None,
            monitor,
            registries: None,
            cgroup_root: None,
        }
    }
}

/// The start that failed, recorded so the container reads as exited (128, as containerd).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct StartFailure {
    finished_at: String,
    message: String,
}

/// `meta.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct MetaFile {
    meta: ContainerMeta,
    created_at: String,
    #[serde(default)]
    start_failure: Option<StartFailure>,
}

struct Inner {
    store: Store,
    snapshots: Snapshots,
    sandboxes: Sandboxes,
    runtime: Runtime,
    containers_root: PathBuf,
    /// `<data-dir>/agent/seccomp`: where `Localhost` seccomp profiles are found.
    seccomp_root: PathBuf,
    monitor: MonitorCommand,
    registries: PathBuf,
    cgroups: Cgroups,
    version: tokio::sync::OnceCell<String>,
}

/// The real runtime. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalRuntime")
            .field("containers", &self.inner.containers_root)
            .finish_non_exhaustive()
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn other(what: &str) -> impl FnOnce(std::io::Error) -> CriError + '_ {
    move |e| CriError::Other(format!("{what}: {e}"))
}

/// A container id is file-name safe: what the kubelet makes (32 hex) or close to it.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn sandbox_err(e: SandboxError) -> CriError {
    match e {
        SandboxError::NotFound(m) => CriError::NotFound(format!("sandbox {m} not found")),
        other => CriError::Sandbox(other.to_string()),
    }
}

fn pull_err(e: image::Error) -> CriError {
    match e {
        image::Error::NotFound { .. } | image::Error::ImageNotFound(_) => {
            CriError::ImageNotFound(e.to_string())
        }
        other => CriError::Pull(other.to_string()),
    }
}

impl Inner {
    fn image_info(&self, rec: ImageRecord) -> Result<ImageInfo> {
        let config = self
            .store
            .image_config(&rec)
            .map_err(|e| CriError::Other(format!("image {}: {e}", rec.id)))?;
        Ok(ImageInfo {
            id: rec.id,
            repo_tags: rec.names,
            repo_digests: rec.repo_digests,
            size: rec.size,
            pinned: rec.pinned,
            config,
        })
    }

    fn container_dir(&self, id: &str) -> Result<PathBuf> {
        if !valid_id(id) {
            return Err(CriError::NotFound(format!("invalid container id {id:?}")));
        }
        Ok(self.containers_root.join(id))
    }

    fn monitors(&self, dir: &Path) -> Containers {
        Containers::new(
            self.runtime.clone(),
            dir.join(MONITOR_DIR),
            self.monitor.clone(),
        )
    }

    fn read_meta(&self, dir: &Path) -> Result<Option<MetaFile>> {
        let path = dir.join(META_FILE);
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| CriError::Other(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CriError::Other(format!("{}: {e}", path.display()))),
        }
    }

    fn write_meta(&self, dir: &Path, meta: &MetaFile) -> Result<()> {
        let path = dir.join(META_FILE);
        let bytes = serde_json::to_vec_pretty(meta).map_err(|e| CriError::Other(e.to_string()))?;
        write_durably(&path, &bytes).map_err(other("writing meta.json"))
    }

    fn handle(&self, dir: &Path, id: &str) -> Option<ContainerHandle> {
        self.monitors(dir).open(id).ok()
    }

    fn info(&self, id: &str) -> Result<Option<ContainerInfo>> {
        let dir = self.container_dir(id)?;
        let Some(m) = self.read_meta(&dir)? else {
            return Ok(None);
        };
        let state = if let Some(f) = &m.start_failure {
            ContainerState::Exited {
                started_at: String::new(),
                finished_at: f.finished_at.clone(),
                exit_code: 128,
                oom_killed: false,
            }
        } else {
            match self.handle(&dir, id).map(|h| h.status()) {
                None => ContainerState::Created,
                Some(ContainerStatus::Running(s)) => ContainerState::Running {
                    started_at: s.started_at,
                    pid: s.pid,
                },
                Some(ContainerStatus::Exited(e)) => ContainerState::Exited {
                    started_at: e.started_at,
                    finished_at: e.finished_at,
                    exit_code: e.exit_code,
                    oom_killed: e.oom_killed,
                },
                Some(ContainerStatus::Unknown { reason, .. }) => ContainerState::Unknown { reason },
            }
        };
        Ok(Some(ContainerInfo {
            id: id.to_owned(),
            meta: m.meta,
            created_at: m.created_at,
            state,
        }))
    }

    fn create(
        &self,
        id: &str,
        image: &ImageInfo,
        meta: ContainerMeta,
    ) -> Result<PreparedContainer> {
        if !valid_id(id) {
            return Err(CriError::Create(format!("invalid container id {id:?}")));
        }
        let dir = self.containers_root.join(id);
        if dir.join(META_FILE).exists() {
            return Err(CriError::Create(format!("container {id} already exists")));
        }
        let rec = self
            .store
            .get(&image.id)
            .map_err(|e| CriError::Other(e.to_string()))?
            .ok_or_else(|| CriError::NotFound(format!("image {} not found", image.id)))?;
        fs::create_dir_all(&dir).map_err(other("creating the container dir"))?;
        let made = (|| {
            // meta.json before the mount: a crash in between leaves a container that is
            // listed (Created) and so removed by the kubelet, never a mount nobody knows.
            self.write_meta(
                &dir,
                &MetaFile {
                    meta,
                    created_at: now_rfc3339(),
                    start_failure: None,
                },
            )?;
            let rootfs = self
                .snapshots
                .mount_rootfs(&rec, &dir)
                .map_err(|e| CriError::Create(format!("preparing the rootfs: {e}")))?;
            Ok(PreparedContainer { rootfs })
        })();
        if made.is_err() {
            let _ = image::remove_rootfs(&dir);
            let _ = fs::remove_dir_all(&dir);
        }
        made
    }

    fn start(&self, id: &str, config: &ContainerConfig) -> Result<()> {
        let dir = self.container_dir(id)?;
        let mut m = self
            .read_meta(&dir)?
            .ok_or_else(|| CriError::NotFound(format!("container {id} not found")))?;
        if m.start_failure.is_some() || self.handle(&dir, id).is_some() {
            return Err(CriError::Other(format!(
                "container {id} is not in the created state"
            )));
        }
        let attempt = (|| {
            // A Localhost seccomp profile named relative to the node's seccomp directory.
            let resolved;
            let config = match &config.seccomp {
                spec::Seccomp::Localhost(p) if p.is_relative() => {
                    let mut c = config.clone();
                    c.seccomp = spec::Seccomp::Localhost(self.seccomp_root.join(p));
                    resolved = c;
                    &resolved
                }
                _ => config,
            };
            // A config that cannot be made (a Localhost seccomp profile that is missing, a
            // bad mount) is the runtime refusing to create the container, as containerd's
            // CreateContainer does: CreateContainerError, not a failed start.
            spec::write_config(&dir, config).map_err(|e| CriError::Create(e.to_string()))?;
            if let Some(parent) = m.meta.log_path.parent() {
                fs::create_dir_all(parent)
                    .map_err(|e| CriError::Start(format!("creating the log dir: {e}")))?;
            }
            let req = StartRequest {
                id: id.to_owned(),
                bundle: dir.clone(),
                log_path: m.meta.log_path.clone(),
                stdin: config.stdin || m.meta.labels.get(STDIN_LABEL).is_some_and(|v| v == "true"),
                stdin_once: config.stdin_once,
                terminal: config.terminal,
            };
            self.monitors(&dir).start(&req).map_err(|e| match e {
                MonitorError::Runtime(msg) => CriError::Start(msg),
                other => CriError::Start(other.to_string()),
            })
        })();
        match attempt {
            Ok(_) => Ok(()),
            Err(e) => {
                m.start_failure = Some(StartFailure {
                    finished_at: now_rfc3339(),
                    message: e.to_string(),
                });
                self.write_meta(&dir, &m)?;
                Err(e)
            }
        }
    }

    fn running_handle(&self, id: &str) -> Result<Option<ContainerHandle>> {
        let dir = self.container_dir(id)?;
        if self.read_meta(&dir)?.is_none() {
            return Err(CriError::NotFound(format!("container {id} not found")));
        }
        Ok(self.handle(&dir, id))
    }

    fn kill(&self, id: &str, signal: i32) -> Result<()> {
        let Some(h) = self.running_handle(id)? else {
            return Ok(()); // never started: nothing to signal
        };
        match h.kill(signal) {
            Ok(()) => Ok(()),
            Err(_) if !matches!(h.status(), ContainerStatus::Running(_)) => Ok(()),
            Err(e) => Err(CriError::Other(e.to_string())),
        }
    }

    fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        let Some(h) = self.running_handle(id)? else {
            return Ok(());
        };
        match h.status() {
            ContainerStatus::Running(_) => {}
            // The monitor is gone but runc still has the process: nobody records its exit,
            // so there is nothing to wait for but the kill.
            ContainerStatus::Unknown { running: true, .. } => {
                return match self.runtime.kill(id, 9, true) {
                    Ok(()) | Err(RuntimeError::NotFound(_)) => Ok(()),
                    Err(e) => Err(CriError::Other(e.to_string())),
                };
            }
            _ => return Ok(()),
        }
        match h.stop(grace) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(CriError::Other(format!(
                "container {id} did not exit after SIGKILL"
            ))),
            Err(_) if !matches!(h.status(), ContainerStatus::Running(_)) => Ok(()),
            Err(e) => Err(CriError::Other(e.to_string())),
        }
    }

    fn remove(&self, id: &str) -> Result<()> {
        let dir = self.container_dir(id)?;
        if !dir.exists() {
            return Ok(());
        }
        if let Some(h) = self.handle(&dir, id) {
            if matches!(h.status(), ContainerStatus::Running(_)) {
                return Err(CriError::Other(format!(
                    "container {id} is running: stop it first"
                )));
            }
        }
        match self.runtime.delete(id, true) {
            Ok(()) | Err(RuntimeError::NotFound(_)) => {}
            Err(e) => return Err(CriError::Other(e.to_string())),
        }
        let monitor = dir.join(MONITOR_DIR);
        match fs::remove_dir_all(&monitor) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(other("removing the monitor dir")(e)),
        }
        image::remove_rootfs(&dir).map_err(|e| CriError::Other(e.to_string()))?;
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(other("removing the container dir")(e)),
        }
    }

    fn list(&self) -> Result<Vec<ContainerInfo>> {
        let entries = match fs::read_dir(&self.containers_root) {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(other("listing containers")(e)),
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !valid_id(&name) || !e.path().join(META_FILE).exists() {
                continue;
            }
            match self.info(&name) {
                Ok(Some(i)) => out.push(i),
                Ok(None) => {}
                Err(err) => tracing::warn!(id = %name, error = %err, "unreadable container"),
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    fn fs_usage(&self) -> Result<FsUsage> {
        let root = self.store.root();
        let st = nix::sys::statvfs::statvfs(root)
            .map_err(|e| CriError::Other(format!("statvfs {}: {e}", root.display())))?;
        let frag = st.fragment_size() as u64;
        Ok(FsUsage {
            capacity_bytes: st.blocks() as u64 * frag,
            available_bytes: st.blocks_available() as u64 * frag,
            used_bytes: disk_usage(root),
        })
    }
}

/// What a sandbox directory without usable state is listed as: its id, not ready.
fn unusable_sandbox(id: &str) -> Sandbox {
    Sandbox {
        id: id.to_owned(),
        pod_name: String::new(),
        pod_namespace: String::new(),
        pod_uid: String::new(),
        hostname: String::new(),
        host_network: false,
        host_ipc: false,
        netns: None,
        ipc: None,
        uts: None,
        pid: None,
        pause: None,
        port_mappings: Vec::new(),
        cni_network: None,
        cni_result: None,
        ips: Vec::new(),
        hosts_file: PathBuf::new(),
        resolv_conf: PathBuf::new(),
        hostname_file: PathBuf::new(),
        ready: false,
    }
}

/// Bytes on disk under `root` (each inode once; bounded in entries).
fn disk_usage(root: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    const MAX_ENTRIES: usize = 2_000_000;
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root.to_path_buf()];
    let mut total = 0u64;
    let mut n = 0usize;
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            n += 1;
            if n > MAX_ENTRIES {
                return total;
            }
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if seen.insert((md.dev(), md.ino())) {
                total += md.blocks() * 512;
            }
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

impl LocalRuntime {
    /// Opens (creating) the image store and the state directories under the data dir.
    pub fn new(config: LocalConfig) -> Result<Self> {
        let agent = config.data_dir.join("agent");
        let store = Store::open(image::store_root(&config.data_dir))
            .map_err(|e| CriError::Other(format!("opening the image store: {e}")))?;
        let snapshots = Snapshots::new(&store);
        let containers_root = agent.join("containers");
        fs::create_dir_all(&containers_root).map_err(other("creating the containers dir"))?;
        let binary_name = config
            .runtime_binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| DEFAULT_RUNTIME.to_owned());
        let runtime = Runtime::new(
            config.runtime_binary.clone(),
            containers_root.join(binary_name),
        );
        let sandboxes = Sandboxes::new(sandbox::sandboxes_root(&config.data_dir), config.cni)
            .with_pause(config.pause);
        let registries = config
            .registries
            .unwrap_or_else(|| image::registries_file(&config.data_dir));
        let cgroups = Cgroups::detect_at(
            config
                .cgroup_root
                .unwrap_or_else(|| PathBuf::from(crate::cgroups::CGROUP_ROOT)),
        );
        Ok(LocalRuntime {
            inner: Arc::new(Inner {
                store,
                snapshots,
                sandboxes,
                runtime,
                containers_root,
                seccomp_root: agent.join("seccomp"),
                monitor: config.monitor,
                registries,
                cgroups,
                version: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The OCI runtime driver (for exec).
    pub fn runtime(&self) -> &Runtime {
        &self.inner.runtime
    }

    pub fn cgroups(&self) -> &Cgroups {
        &self.inner.cgroups
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| CriError::Other(format!("blocking task failed: {e}")))?
    }

    /// The container's handle and log path, if it was started.
    async fn started(&self, id: &str) -> Result<(ContainerHandle, PathBuf)> {
        let id = id.to_owned();
        self.blocking(move |i| {
            let dir = i.container_dir(&id)?;
            let m = i
                .read_meta(&dir)?
                .ok_or_else(|| CriError::NotFound(format!("container {id} not found")))?;
            let h = i
                .handle(&dir, &id)
                .ok_or_else(|| CriError::Other(format!("container {id} is not running")))?;
            Ok((h, m.meta.log_path))
        })
        .await
    }
}

#[async_trait]
impl PodRuntime for LocalRuntime {
    async fn version(&self) -> Result<String> {
        let runtime = self.inner.runtime.clone();
        self.inner
            .version
            .get_or_try_init(|| async move {
                let out = tokio::process::Command::new(&runtime.binary)
                    .arg("--version")
                    .output()
                    .await
                    .map_err(other("running the runtime's --version"))?;
                let text = String::from_utf8_lossy(&out.stdout);
                let first = text.lines().next().unwrap_or_default();
                // "runc version 1.1.5+ds1", "crun version 1.8.1"
                let version = first
                    .split_whitespace()
                    .last()
                    .filter(|_| out.status.success())
                    .ok_or_else(|| {
                        CriError::Other(format!("{} --version: {first:?}", runtime.name()))
                    })?;
                Ok(format!("{}://{version}", runtime.name()))
            })
            .await
            .cloned()
    }

    async fn image_status(&self, name: &str) -> Result<Option<ImageInfo>> {
        let name = name.to_owned();
        self.blocking(move |i| match i.store.get(&name) {
            Ok(Some(rec)) => i.image_info(rec).map(Some),
            Ok(None) => Ok(None),
            // A name that cannot be an image reference names no image here.
            Err(image::Error::InvalidReference { .. }) => Ok(None),
            Err(e) => Err(CriError::Other(e.to_string())),
        })
        .await
    }

    async fn pull_image(&self, name: &str, secrets: &[DockerConfigJson]) -> Result<ImageInfo> {
        let path = self.inner.registries.clone();
        let registries = tokio::task::spawn_blocking(move || RegistriesConfig::load(&path))
            .await
            .map_err(|e| CriError::Other(e.to_string()))?
            .map_err(|e| CriError::Pull(e.to_string()))?;
        let opts = PullOptions {
            pull_secrets: DockerConfigJson::merge(secrets),
            registries,
        };
        let rec = image::pull(&self.inner.store, name, &opts)
            .await
            .map_err(pull_err)?;
        self.blocking(move |i| i.image_info(rec)).await
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>> {
        self.blocking(|i| {
            let recs = i.store.list().map_err(|e| CriError::Other(e.to_string()))?;
            recs.into_iter().map(|r| i.image_info(r)).collect()
        })
        .await
    }

    async fn remove_image(&self, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.blocking(move |i| match i.store.remove(&name) {
            Ok(_) => {
                let _ = i.snapshots.gc();
                Ok(())
            }
            Err(image::Error::ImageNotFound(_)) | Err(image::Error::InvalidReference { .. }) => {
                Ok(())
            }
            Err(e) => Err(CriError::Other(e.to_string())),
        })
        .await
    }

    async fn image_fs_usage(&self) -> Result<FsUsage> {
        self.blocking(|i| i.fs_usage()).await
    }

    async fn run_sandbox(&self, config: SandboxConfig) -> Result<Sandbox> {
        self.blocking(move |i| i.sandboxes.create(&config).map_err(sandbox_err))
            .await
    }

    async fn sandbox_status(&self, id: &str) -> Result<Option<(Sandbox, SandboxState)>> {
        let id = id.to_owned();
        self.blocking(move |i| {
            let sandbox = match i.sandboxes.get(&id) {
                Ok(s) => s,
                Err(SandboxError::InvalidId(_)) => return Ok(None),
                // A directory without usable state (a crash before its first write, a torn
                // file): NotReady, so that the kubelet removes it.
                Err(_) if i.sandboxes.list().is_ok_and(|ids| ids.contains(&id)) => {
                    return Ok(Some((unusable_sandbox(&id), SandboxState::NotReady)))
                }
                Err(SandboxError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(sandbox_err(e)),
            };
            let state = i.sandboxes.status(&id).unwrap_or(SandboxState::NotReady);
            Ok(Some((sandbox, state)))
        })
        .await
    }

    async fn remove_sandbox(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.blocking(move |i| match i.sandboxes.remove(&id) {
            Ok(()) | Err(SandboxError::NotFound(_)) => Ok(()),
            Err(e) => Err(sandbox_err(e)),
        })
        .await
    }

    async fn list_sandboxes(&self) -> Result<Vec<Sandbox>> {
        self.blocking(|i| {
            let ids = i.sandboxes.list().map_err(sandbox_err)?;
            // Half-made ones too (not ready), so that a restarted kubelet removes them.
            Ok(ids
                .iter()
                .map(|id| i.sandboxes.get(id).unwrap_or_else(|_| unusable_sandbox(id)))
                .collect())
        })
        .await
    }

    async fn ensure_pod_cgroup(&self, cgroup: &PodCgroup) -> Result<()> {
        let cgroup = cgroup.clone();
        self.blocking(move |i| {
            i.cgroups
                .ensure(&cgroup)
                .map_err(|e| CriError::Other(format!("pod cgroup: {e}")))
        })
        .await
    }

    async fn remove_pod_cgroup(&self, path: &str) -> Result<()> {
        let path = path.to_owned();
        self.blocking(move |i| {
            i.cgroups
                .remove(&path)
                .map_err(|e| CriError::Other(format!("pod cgroup: {e}")))
        })
        .await
    }

    async fn create_container(
        &self,
        id: &str,
        image: &ImageInfo,
        meta: ContainerMeta,
    ) -> Result<PreparedContainer> {
        let id = id.to_owned();
        let image = image.clone();
        self.blocking(move |i| i.create(&id, &image, meta)).await
    }

    async fn start_container(&self, id: &str, config: &ContainerConfig) -> Result<()> {
        let id = id.to_owned();
        let config = config.clone();
        self.blocking(move |i| i.start(&id, &config)).await
    }

    async fn kill_container(&self, id: &str, signal: i32) -> Result<()> {
        let id = id.to_owned();
        self.blocking(move |i| i.kill(&id, signal)).await
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let id = id.to_owned();
        self.blocking(move |i| i.stop(&id, grace)).await
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        self.blocking(move |i| i.remove(&id)).await
    }

    async fn container_status(&self, id: &str) -> Result<Option<ContainerInfo>> {
        let id = id.to_owned();
        self.blocking(move |i| match i.info(&id) {
            Err(CriError::NotFound(_)) => Ok(None),
            other => other,
        })
        .await
    }

    async fn list_containers(&self) -> Result<Vec<ContainerInfo>> {
        self.blocking(|i| i.list()).await
    }

    async fn exec_sync(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput> {
        self.started(id).await?;
        crate::exec::exec_sync(&self.inner.runtime, id, cmd, timeout).await
    }

    async fn exec(&self, id: &str, req: StreamRequest) -> Result<StreamSession> {
        self.started(id).await?;
        crate::exec::exec(&self.inner.runtime, id, req).await
    }

    async fn attach(&self, id: &str, req: StreamRequest) -> Result<StreamSession> {
        let (handle, log_path) = self.started(id).await?;
        crate::exec::attach(&handle, &log_path, req).await
    }

    async fn port_forward(&self, sandbox_id: &str, port: u16) -> Result<tokio::net::TcpStream> {
        let id = sandbox_id.to_owned();
        let sandbox = self
            .blocking(move |i| i.sandboxes.get(&id).map_err(sandbox_err))
            .await?;
        // A hostNetwork pod's ports are the node's.
        let netns = sandbox
            .netns
            .unwrap_or_else(|| PathBuf::from("/proc/1/ns/net"));
        crate::exec::port_forward(&netns, port).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_file_name_safe() {
        assert!(valid_id("0123456789abcdef0123456789abcdef"));
        for bad in ["", ".", "..", "a/b", ".hidden", "a b"] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn pull_errors_keep_not_found_apart() {
        let nf = image::Error::NotFound {
            reference: "docker.io/library/nope:latest".into(),
            detail: "manifest unknown".into(),
        };
        assert!(matches!(pull_err(nf), CriError::ImageNotFound(_)));
        let un = image::Error::Unreachable {
            reference: "x".into(),
            detail: "connection refused".into(),
        };
        assert!(matches!(pull_err(un), CriError::Pull(_)));
    }

    #[test]
    fn meta_file_round_trips_without_a_start_failure_field() {
        let m: MetaFile = serde_json::from_str(
            r#"{"meta":{"pod_uid":"u","pod_name":"p","pod_namespace":"n","sandbox_id":"s","name":"c","attempt":1,"image":"busybox","image_id":"sha256:x","image_ref":"r","log_path":"/l","labels":{}},"created_at":"t"}"#,
        )
        .unwrap();
        assert_eq!(m.meta.attempt, 1);
        assert!(m.start_failure.is_none());
    }
}
