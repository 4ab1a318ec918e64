//! The interface the kubelet drives: CRI's `RuntimeService` and `ImageService`, reduced to
//! what skiff's kubelet needs, as one trait.
//!
//! [`PodRuntime`] is implemented by [`local::LocalRuntime`](crate::local) (the real thing:
//! the image store, snapshots, sandboxes with CNI, containers under monitors, cgroups) and
//! by [`testing::RecordingRuntime`](crate::testing) (a double that records every call and
//! lets a test decide what containers do, for the kubelet's unit tests, as youki's tests
//! use recording doubles for syscalls).
//!
//! Methods are async; the real implementation runs its blocking work on
//! `tokio::task::spawn_blocking`. Every method is idempotent where CRI's is: removing what
//! is gone succeeds, so a restarted kubelet can redo any cleanup.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::container::spec::ContainerConfig;
use crate::image::manifest::ImageConfig;
use crate::image::pull::DockerConfigJson;
use crate::sandbox::{Sandbox, SandboxConfig, SandboxState};

/// Free-form key/values recorded with a container (CRI's labels and annotations): the
/// kubelet keeps what it needs to rebuild its view after a restart (container kind, spec
/// hash, termination message path and policy, ...).
pub type Labels = BTreeMap<String, String>;

/// Errors of the runtime, kept apart where the kubelet reports them differently.
#[derive(Debug, thiserror::Error)]
pub enum CriError {
    /// The image, sandbox or container does not exist.
    #[error("{0}")]
    NotFound(String),
    /// A pull failed because the image or tag does not exist in the registry.
    #[error("{0}")]
    ImageNotFound(String),
    /// A pull failed for any other reason (unreachable, unauthorized, bad manifest).
    #[error("{0}")]
    Pull(String),
    /// The sandbox could not be made (namespaces, CNI).
    #[error("{0}")]
    Sandbox(String),
    /// The container could not be created (rootfs, config) - CreateContainerError.
    #[error("{0}")]
    Create(String),
    /// The OCI runtime refused to start it (e.g. the command does not exist) -
    /// StartError / RunContainerError, with the runtime's message.
    #[error("{0}")]
    Start(String),
    /// Anything else (I/O, a broken state file).
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = CriError> = std::result::Result<T, E>;

/// An image on the node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImageInfo {
    /// The config digest (`sha256:...`): CRI's image id.
    pub id: String,
    /// Normalised `repo:tag` names.
    pub repo_tags: Vec<String>,
    /// `repo@sha256:<manifest digest>`: what containerStatuses' `imageID` shows.
    pub repo_digests: Vec<String>,
    pub size: u64,
    /// Imported from a tarball: never garbage-collected.
    pub pinned: bool,
    /// The image's config (entrypoint, cmd, env, user, working dir).
    pub config: ImageConfig,
}

/// The node's image filesystem, for image GC and the DiskPressure condition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FsUsage {
    pub capacity_bytes: u64,
    pub available_bytes: u64,
    /// Bytes the image store itself takes.
    pub used_bytes: u64,
}

/// What the runtime records with a container and gives back in [`ContainerInfo`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMeta {
    pub pod_uid: String,
    pub pod_name: String,
    pub pod_namespace: String,
    pub sandbox_id: String,
    /// The container's name in the pod spec.
    pub name: String,
    /// 0 for the first instance, then one more per restart (the restart count).
    pub attempt: u32,
    /// The image as the pod spec names it.
    pub image: String,
    /// [`ImageInfo::id`] of the image it was made from.
    pub image_id: String,
    /// The image's repo digest (`imageID` in containerStatuses).
    pub image_ref: String,
    /// The CRI log file the monitor appends to (the kubelet chooses it).
    pub log_path: PathBuf,
    pub labels: Labels,
}

/// Where a container is in its life.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    /// Created (rootfs prepared, meta recorded), not started.
    Created,
    Running {
        /// RFC 3339.
        started_at: String,
        pid: i32,
    },
    Exited {
        started_at: String,
        finished_at: String,
        /// The exit status, or 128 + the signal.
        exit_code: i32,
        /// The memory cgroup counted an OOM kill (reason `OOMKilled`).
        oom_killed: bool,
    },
    /// The monitor is gone without recording an exit (killed, or the machine rebooted).
    Unknown { reason: String },
}

/// A container as the runtime knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerInfo {
    pub id: String,
    pub meta: ContainerMeta,
    /// RFC 3339.
    pub created_at: String,
    pub state: ContainerState,
}

/// A rootfs made for a container by [`PodRuntime::create_container`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedContainer {
    /// The overlay mount, absolute: [`ContainerConfig::rootfs`].
    pub rootfs: PathBuf,
}

/// The pod's own cgroup (`<cgroup parent>` of its containers) and its limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodCgroup {
    /// Absolute from the hierarchy roots, e.g. `/skiff/burstable/pod<uid>`.
    pub path: String,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub memory_limit: Option<i64>,
    pub pids_limit: Option<i64>,
}

/// The output of [`PodRuntime::exec_sync`] (exec probes and hooks).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    /// Capped (probes keep at most 10 KiB, as upstream).
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// The timeout passed before the process exited (it was killed).
    pub timed_out: bool,
}

/// A streaming exec or attach request (kubectl exec / attach).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamRequest {
    /// For exec: the argv. Ignored by attach.
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    /// Always false with `tty` (a terminal has one output stream).
    pub stderr: bool,
}

/// A terminal size (columns x rows), from the resize channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

pub type BoxRead = Pin<Box<dyn AsyncRead + Send>>;
pub type BoxWrite = Pin<Box<dyn AsyncWrite + Send>>;

/// A running exec or attach: its streams, a resize channel (tty only) and its end. Dropping
/// `stdin` closes the process's stdin.
pub struct StreamSession {
    pub stdin: Option<BoxWrite>,
    pub stdout: Option<BoxRead>,
    pub stderr: Option<BoxRead>,
    pub resize: Option<tokio::sync::mpsc::Sender<TerminalSize>>,
    /// Resolves with the exit code (exec), or when the attach ends (attach: the
    /// container's exit code if it exited).
    pub exit: tokio::sync::oneshot::Receiver<Result<i32>>,
}

impl std::fmt::Debug for StreamSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSession").finish_non_exhaustive()
    }
}

/// The runtime a kubelet drives.
#[async_trait]
pub trait PodRuntime: Send + Sync + 'static {
    /// The runtime's name and version for the Node's `containerRuntimeVersion`
    /// (e.g. `runc://1.1.15`).
    async fn version(&self) -> Result<String>;

    // --- images ---------------------------------------------------------------------

    /// The image `name` (any reference form: `busybox`, `docker.io/library/busybox:1.36`,
    /// `...@sha256:...`, or an image id) if the node has it.
    async fn image_status(&self, name: &str) -> Result<Option<ImageInfo>>;
    /// Pulls `name` with the pod's pull secrets (and the node's registries file).
    async fn pull_image(&self, name: &str, secrets: &[DockerConfigJson]) -> Result<ImageInfo>;
    async fn list_images(&self) -> Result<Vec<ImageInfo>>;
    /// Removes an image by name or id (its blobs go once nothing else uses them).
    async fn remove_image(&self, name: &str) -> Result<()>;
    /// The image filesystem's usage.
    async fn image_fs_usage(&self) -> Result<FsUsage>;

    // --- sandboxes ------------------------------------------------------------------

    /// Makes a sandbox: pinned namespaces, the pod network (CNI ADD), hosts/resolv.conf.
    async fn run_sandbox(&self, config: SandboxConfig) -> Result<Sandbox>;
    /// The sandbox and whether it is still usable; `None` when there is none.
    async fn sandbox_status(&self, id: &str) -> Result<Option<(Sandbox, SandboxState)>>;
    /// Tears a sandbox down (CNI DEL, namespaces unpinned, files removed). Its containers
    /// must be removed first. Idempotent.
    async fn remove_sandbox(&self, id: &str) -> Result<()>;
    async fn list_sandboxes(&self) -> Result<Vec<Sandbox>>;

    // --- pod cgroups ------------------------------------------------------------------

    /// Creates or updates the pod's cgroup with its limits (every controller hierarchy on
    /// cgroup v1, the unified one on v2).
    async fn ensure_pod_cgroup(&self, cgroup: &PodCgroup) -> Result<()>;
    /// Removes the pod's cgroup (after its containers are gone). Idempotent.
    async fn remove_pod_cgroup(&self, path: &str) -> Result<()>;

    // --- containers -----------------------------------------------------------------

    /// Prepares container `id` (file-name safe): its rootfs over `image` with its own
    /// writable layer, and `meta` recorded. State [`ContainerState::Created`].
    async fn create_container(
        &self,
        id: &str,
        image: &ImageInfo,
        meta: ContainerMeta,
    ) -> Result<PreparedContainer>;
    /// Writes `config` as the bundle's config.json and starts it under a monitor. Returns
    /// once it runs, or with [`CriError::Start`] and the runtime's message.
    async fn start_container(&self, id: &str, config: &ContainerConfig) -> Result<()>;
    /// Sends `signal` to the container's init process.
    async fn kill_container(&self, id: &str, signal: i32) -> Result<()>;
    /// SIGTERM, up to `grace` for the exit, then SIGKILL. Returns when it has exited.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()>;
    /// Removes a container that is not running: from the OCI runtime, its rootfs
    /// (unmounted, upper dir deleted) and state. The log file stays (the kubelet removes
    /// logs with the pod). Idempotent.
    async fn remove_container(&self, id: &str) -> Result<()>;
    async fn container_status(&self, id: &str) -> Result<Option<ContainerInfo>>;
    async fn list_containers(&self) -> Result<Vec<ContainerInfo>>;

    // --- exec, attach, port-forward ---------------------------------------------------

    /// Runs `cmd` in the running container and collects its output, killing it after
    /// `timeout` (exec probes, exec hooks).
    async fn exec_sync(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput>;
    /// Starts `req.cmd` in the running container with streams (kubectl exec).
    async fn exec(&self, id: &str, req: StreamRequest) -> Result<StreamSession>;
    /// Attaches to the container's own stdio (kubectl attach): its output from now on, and
    /// its stdin when it was started with one.
    async fn attach(&self, id: &str, req: StreamRequest) -> Result<StreamSession>;
    /// A TCP connection to `port` on the loopback of the sandbox's network namespace
    /// (kubectl port-forward).
    async fn port_forward(&self, sandbox_id: &str, port: u16) -> Result<tokio::net::TcpStream>;
}
