//! [`RecordingRuntime`]: a [`PodRuntime`] double for the kubelet's unit tests (the pod
//! worker, probes, the streaming server, the node), in youki's style of recording doubles.
//!
//! It touches nothing on the host: images, sandboxes and containers live in memory with
//! the states [`LocalRuntime`](crate::local) reports (Created -> Running -> Exited), every
//! call is recorded as a [`Call`], and the test scripts what happens: which images are
//! present or pullable, which pulls fail and how, which container names fail to start (with
//! the runtime's message) or exit at once, when a running container exits and with which
//! code (optionally OOM-killed), what `exec_sync` answers per command, whether SIGTERM is
//! honoured (143) or the container has to be SIGKILLed (137), and that sandbox creation
//! fails. `exec`/`attach` hand the caller in-memory streams ([`tokio::io::duplex`]) whose
//! other ends the test gets as a [`StreamHandle`]; `port_forward` a loopback TCP pair.
//!
//! Timestamps come from a clock the test can set ([`RecordingRuntime::set_now`],
//! [`RecordingRuntime::advance`]), or the wall clock when it never does.
//!
//! The double is in the library (not `cfg(test)`) so that other crates' tests use it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use tokio::io::DuplexStream;
use tokio::sync::{mpsc, oneshot};

use crate::container::spec::ContainerConfig;
use crate::cri::{
    ContainerInfo, ContainerMeta, ContainerState, CriError, ExecOutput, FsUsage, ImageInfo,
    PodCgroup, PodRuntime, PreparedContainer, Result, StreamRequest, StreamSession, TerminalSize,
};
use crate::image::manifest::ImageConfig;
use crate::image::pull::DockerConfigJson;
use crate::sandbox::{Sandbox, SandboxConfig, SandboxState};

/// Buffer size of the in-memory streams of exec and attach.
const STREAM_BUFFER: usize = 64 * 1024;

/// One call the runtime received, with the arguments that matter.
#[derive(Clone, Debug)]
pub enum Call {
    Version,
    ImageStatus(String),
    PullImage {
        name: String,
        /// The registries the pull secrets had credentials for.
        secret_registries: Vec<String>,
    },
    ListImages,
    RemoveImage(String),
    ImageFsUsage,
    RunSandbox(SandboxConfig),
    SandboxStatus(String),
    RemoveSandbox(String),
    ListSandboxes,
    EnsurePodCgroup(PodCgroup),
    RemovePodCgroup(String),
    CreateContainer {
        id: String,
        image_id: String,
        meta: ContainerMeta,
    },
    StartContainer {
        id: String,
        config: Box<ContainerConfig>,
    },
    KillContainer {
        id: String,
        signal: i32,
    },
    StopContainer {
        id: String,
        grace: Duration,
    },
    RemoveContainer(String),
    ContainerStatus(String),
    ListContainers,
    ExecSync {
        id: String,
        cmd: Vec<String>,
        timeout: Duration,
    },
    Exec {
        id: String,
        req: StreamRequest,
    },
    Attach {
        id: String,
        req: StreamRequest,
    },
    PortForward {
        sandbox_id: String,
        port: u16,
    },
}

/// How a scripted pull of a name fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullFailure {
    /// [`CriError::ImageNotFound`] with this message.
    NotFound(String),
    /// [`CriError::Pull`] with this message.
    Pull(String),
}

/// What a scripted `exec_sync` answers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecAnswer {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Answer as if the timeout passed (`timed_out`, exit code 137 unless set otherwise).
    pub timed_out: bool,
}

impl ExecAnswer {
    /// Exit code `code`, stdout `out`.
    pub fn new(exit_code: i32, stdout: impl Into<Vec<u8>>) -> Self {
        ExecAnswer {
            exit_code,
            stdout: stdout.into(),
            ..ExecAnswer::default()
        }
    }
}

/// What a stream handed out by `exec`, `attach` or `port_forward` is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamKind {
    Exec { id: String, req: StreamRequest },
    Attach { id: String, req: StreamRequest },
}

/// The test's side of an `exec` or `attach` session: read what the caller writes to the
/// process's stdin, write the process's stdout/stderr, see resizes, end it with a code.
#[derive(Debug)]
pub struct StreamHandle {
    pub kind: StreamKind,
    /// What the caller writes to the session's stdin (EOF when it drops it).
    pub stdin: Option<DuplexStream>,
    /// Written here, read by the caller from the session's stdout.
    pub stdout: Option<DuplexStream>,
    pub stderr: Option<DuplexStream>,
    /// Terminal sizes the caller sent (tty only).
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
    exit: Option<oneshot::Sender<Result<i32>>>,
}

impl StreamHandle {
    /// Ends the session with `code` (the caller's `exit` resolves) and closes its output.
    pub fn finish(&mut self, code: i32) {
        self.stdout = None;
        self.stderr = None;
        if let Some(tx) = self.exit.take() {
            let _ = tx.send(Ok(code));
        }
    }

    /// Ends the session with an error.
    pub fn fail(&mut self, err: CriError) {
        self.stdout = None;
        self.stderr = None;
        if let Some(tx) = self.exit.take() {
            let _ = tx.send(Err(err));
        }
    }
}

/// The test's side of a `port_forward`: the other end of the caller's TCP stream.
#[derive(Debug)]
pub struct PortForwardHandle {
    pub sandbox_id: String,
    pub port: u16,
    pub conn: tokio::net::TcpStream,
}

#[derive(Clone, Debug)]
struct Container {
    info: ContainerInfo,
    /// The config the last start used.
    config: Option<ContainerConfig>,
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    now: Option<DateTime<Utc>>,
    version: Option<String>,
    images: BTreeMap<String, ImageInfo>,
    pullable: BTreeMap<String, ImageInfo>,
    pull_failures: BTreeMap<String, PullFailure>,
    fs_usage: FsUsage,
    sandboxes: BTreeMap<String, Sandbox>,
    not_ready: BTreeSet<String>,
    sandbox_failure: Option<String>,
    next_ip: u32,
    cgroups: BTreeMap<String, PodCgroup>,
    refused_ports: BTreeSet<u16>,
    containers: BTreeMap<String, Container>,
    create_failures: BTreeMap<String, String>,
    start_failures: BTreeMap<String, String>,
    exit_on_start: BTreeMap<String, (i32, bool)>,
    ignore_sigterm: BTreeSet<String>,
    exec_answers: BTreeMap<Vec<String>, ExecAnswer>,
    next_pid: i32,
}

struct Inner {
    state: Mutex<State>,
    streams_tx: mpsc::UnboundedSender<StreamHandle>,
    streams_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<StreamHandle>>,
    forwards_tx: mpsc::UnboundedSender<PortForwardHandle>,
    forwards_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<PortForwardHandle>>,
}

/// The recording double. Cheap to clone: clones share one state.
#[derive(Clone)]
pub struct RecordingRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for RecordingRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingRuntime").finish_non_exhaustive()
    }
}

impl Default for RecordingRuntime {
    fn default() -> Self {
        Self::new()
    }
}

/// `name` in the form images are filed under (`busybox` -> `docker.io/library/busybox:latest`);
/// a name that does not parse stays as it is (the lookups then just miss).
fn normalized(name: &str) -> String {
    crate::image::reference::normalize(name).unwrap_or_else(|_| name.to_owned())
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn find_image<'a>(images: &'a BTreeMap<String, ImageInfo>, name: &str) -> Option<&'a ImageInfo> {
    if let Some(i) = images.get(name) {
        return Some(i);
    }
    let n = normalized(name);
    images.values().find(|i| {
        i.repo_tags.iter().any(|t| *t == n || t == name)
            || i.repo_digests.iter().any(|d| *d == n || d == name)
    })
}

impl RecordingRuntime {
    pub fn new() -> Self {
        let (streams_tx, streams_rx) = mpsc::unbounded_channel();
        let (forwards_tx, forwards_rx) = mpsc::unbounded_channel();
        let state = State {
            next_ip: 2,
            next_pid: 1000,
            fs_usage: FsUsage {
                capacity_bytes: 100 << 30,
                available_bytes: 80 << 30,
                used_bytes: 0,
            },
            ..State::default()
        };
        RecordingRuntime {
            inner: Arc::new(Inner {
                state: Mutex::new(state),
                streams_tx,
                streams_rx: tokio::sync::Mutex::new(streams_rx),
                forwards_tx,
                forwards_rx: tokio::sync::Mutex::new(forwards_rx),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock poisons it; the state is still usable.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record(&self, call: Call) -> MutexGuard<'_, State> {
        let mut s = self.state();
        s.calls.push(call);
        s
    }

    // --- the record -------------------------------------------------------------------

    /// Every call so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Every call so far, and forgets them.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state().calls)
    }

    // --- the clock --------------------------------------------------------------------

    /// Fixes the clock the timestamps come from.
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.state().now = Some(now);
    }

    /// Moves the clock on (from the wall clock's now when it was never set).
    pub fn advance(&self, by: Duration) {
        let mut s = self.state();
        let now = s.now.unwrap_or_else(Utc::now);
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::zero());
        s.now = Some(now + by);
    }

    fn now(s: &State) -> String {
        rfc3339(s.now.unwrap_or_else(Utc::now))
    }

    // --- scripting: images --------------------------------------------------------------

    /// An image made for tests: id `sha256:<64 hex of name>`, `name` normalised as its tag,
    /// a repo digest, and `config` as its config.
    pub fn image(name: &str, config: ImageConfig) -> ImageInfo {
        use sha2::Digest;
        let n = normalized(name);
        let hex = hex::encode(sha2::Sha256::digest(n.as_bytes()));
        let manifest = hex::encode(sha2::Sha256::digest(format!("manifest {n}").as_bytes()));
        let repo = crate::image::reference::split_name(&n).0.to_owned();
        ImageInfo {
            id: format!("sha256:{hex}"),
            repo_tags: vec![n],
            repo_digests: vec![format!("{repo}@sha256:{manifest}")],
            size: 1 << 20,
            pinned: false,
            config,
        }
    }

    /// The node has `image`.
    pub fn add_image(&self, image: ImageInfo) {
        self.state().images.insert(image.id.clone(), image);
    }

    /// A pull of any of `image`'s names (or its repo digest) succeeds and adds it.
    pub fn add_pullable(&self, image: ImageInfo) {
        let mut s = self.state();
        for name in image.repo_tags.iter().chain(&image.repo_digests) {
            s.pullable.insert(name.clone(), image.clone());
        }
    }

    /// A pull of `name` fails so.
    pub fn fail_pull(&self, name: &str, failure: PullFailure) {
        self.state().pull_failures.insert(normalized(name), failure);
    }

    /// What `image_fs_usage` answers (`used_bytes` is replaced by the images' sizes).
    pub fn set_fs_usage(&self, usage: FsUsage) {
        self.state().fs_usage = usage;
    }

    /// The images the node has.
    pub fn images(&self) -> Vec<ImageInfo> {
        self.state().images.values().cloned().collect()
    }

    // --- scripting: sandboxes -----------------------------------------------------------

    /// The next `run_sandbox` fails with [`CriError::Sandbox`] and `message`.
    pub fn fail_next_sandbox(&self, message: &str) {
        self.state().sandbox_failure = Some(message.to_owned());
    }

    /// `sandbox_status` reports `id` NotReady from now on (its namespace is gone).
    pub fn set_sandbox_not_ready(&self, id: &str) {
        self.state().not_ready.insert(id.to_owned());
    }

    /// `port_forward` to `port` fails from now on as a dial with nothing listening does
    /// (the local runtime's message).
    pub fn refuse_port(&self, port: u16) {
        self.state().refused_ports.insert(port);
    }

    pub fn sandboxes(&self) -> Vec<Sandbox> {
        self.state().sandboxes.values().cloned().collect()
    }

    /// The pod cgroups as last ensured.
    pub fn pod_cgroups(&self) -> Vec<PodCgroup> {
        self.state().cgroups.values().cloned().collect()
    }

    // --- scripting: containers ----------------------------------------------------------

    /// `create_container` of a container named `name` fails with [`CriError::Create`].
    pub fn fail_create(&self, name: &str, message: &str) {
        self.state()
            .create_failures
            .insert(name.to_owned(), message.to_owned());
    }

    /// `start_container` of containers named `name` fails with [`CriError::Start`]; the
    /// container is then Exited with 128, as containerd reports a StartError.
    pub fn fail_start(&self, name: &str, message: &str) {
        self.state()
            .start_failures
            .insert(name.to_owned(), message.to_owned());
    }

    /// Containers named `name` exit with `code` (OOM-killed or not) as soon as they start.
    pub fn exit_on_start(&self, name: &str, code: i32, oom_killed: bool) {
        self.state()
            .exit_on_start
            .insert(name.to_owned(), (code, oom_killed));
    }

    /// Forgets what was scripted for containers named `name` (start failure, exit on start).
    pub fn clear_script(&self, name: &str) {
        let mut s = self.state();
        s.start_failures.remove(name);
        s.exit_on_start.remove(name);
        s.create_failures.remove(name);
        s.ignore_sigterm.remove(name);
    }

    /// Containers named `name` ignore SIGTERM: a stop SIGKILLs them after the grace (137).
    pub fn ignore_sigterm(&self, name: &str) {
        self.state().ignore_sigterm.insert(name.to_owned());
    }

    /// The running container `id` exits now with `code`. False when it was not running.
    pub fn exit(&self, id: &str, code: i32) -> bool {
        self.exit_with(id, code, false)
    }

    /// The running container `id` is OOM-killed now (137, `oom_killed`).
    pub fn oom_kill(&self, id: &str) -> bool {
        self.exit_with(id, 137, true)
    }

    /// The running container `id` exits now. False when it was not running.
    pub fn exit_with(&self, id: &str, code: i32, oom_killed: bool) -> bool {
        let mut s = self.state();
        let now = Self::now(&s);
        match s.containers.get_mut(id) {
            Some(c) => Self::to_exited(c, now, code, oom_killed),
            None => false,
        }
    }

    /// The monitor of `id` vanished without recording an exit.
    pub fn lose(&self, id: &str, reason: &str) -> bool {
        let mut s = self.state();
        match s.containers.get_mut(id) {
            Some(c) => {
                c.info.state = ContainerState::Unknown {
                    reason: reason.to_owned(),
                };
                true
            }
            None => false,
        }
    }

    fn to_exited(c: &mut Container, now: String, code: i32, oom_killed: bool) -> bool {
        if let ContainerState::Running { started_at, .. } = &c.info.state {
            c.info.state = ContainerState::Exited {
                started_at: started_at.clone(),
                finished_at: now,
                exit_code: code,
                oom_killed,
            };
            true
        } else {
            false
        }
    }

    /// `exec_sync` of exactly `cmd` answers `answer` (others: exit 0, no output).
    pub fn answer_exec(&self, cmd: &[&str], answer: ExecAnswer) {
        self.state()
            .exec_answers
            .insert(cmd.iter().map(|s| (*s).to_owned()).collect(), answer);
    }

    /// The containers as `list_containers` would give them, without recording a call.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        self.state()
            .containers
            .values()
            .map(|c| c.info.clone())
            .collect()
    }

    /// The config container `id` was last started with.
    pub fn started_config(&self, id: &str) -> Option<ContainerConfig> {
        self.state()
            .containers
            .get(id)
            .and_then(|c| c.config.clone())
    }

    /// Sets what `version` answers (`fake://0.1` otherwise).
    pub fn set_version(&self, version: &str) {
        self.state().version = Some(version.to_owned());
    }

    // --- streams ------------------------------------------------------------------------

    /// The next exec/attach session handed out, waiting up to `timeout` for one.
    pub async fn next_stream(&self, timeout: Duration) -> Option<StreamHandle> {
        let mut rx = self.inner.streams_rx.lock().await;
        tokio::time::timeout(timeout, rx.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next port-forward connection handed out, waiting up to `timeout` for one.
    pub async fn next_port_forward(&self, timeout: Duration) -> Option<PortForwardHandle> {
        let mut rx = self.inner.forwards_rx.lock().await;
        tokio::time::timeout(timeout, rx.recv())
            .await
            .ok()
            .flatten()
    }

    fn running(s: &State, id: &str) -> Result<()> {
        match s.containers.get(id).map(|c| &c.info.state) {
            None => Err(CriError::NotFound(format!("container {id} not found"))),
            Some(ContainerState::Running { .. }) => Ok(()),
            Some(_) => Err(CriError::Other(format!("container {id} is not running"))),
        }
    }

    fn session(&self, kind: StreamKind, req: &StreamRequest) -> StreamSession {
        let pair = |on: bool| on.then(|| tokio::io::duplex(STREAM_BUFFER));
        let (stdin_caller, stdin_test) = pair(req.stdin).unzip();
        let (stdout_caller, stdout_test) = pair(req.stdout).unzip();
        let (stderr_caller, stderr_test) = pair(req.stderr && !req.tty).unzip();
        let (resize_tx, resize_rx) = if req.tty {
            let (tx, rx) = mpsc::channel(8);
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (exit_tx, exit_rx) = oneshot::channel();
        let handle = StreamHandle {
            kind,
            stdin: stdin_test,
            stdout: stdout_test,
            stderr: stderr_test,
            resize: resize_rx,
            exit: Some(exit_tx),
        };
        // The receiver lives as long as the runtime: sending cannot fail.
        let _ = self.inner.streams_tx.send(handle);
        StreamSession {
            stdin: stdin_caller.map(|s| Box::pin(s) as crate::cri::BoxWrite),
            stdout: stdout_caller.map(|s| Box::pin(s) as crate::cri::BoxRead),
            stderr: stderr_caller.map(|s| Box::pin(s) as crate::cri::BoxRead),
            resize: resize_tx,
            exit: exit_rx,
        }
    }
}

#[async_trait]
impl PodRuntime for RecordingRuntime {
    async fn version(&self) -> Result<String> {
        let s = self.record(Call::Version);
        Ok(s.version.clone().unwrap_or_else(|| "fake://0.1".to_owned()))
    }

    async fn image_status(&self, name: &str) -> Result<Option<ImageInfo>> {
        let s = self.record(Call::ImageStatus(name.to_owned()));
        Ok(find_image(&s.images, name).cloned())
    }

    async fn pull_image(&self, name: &str, secrets: &[DockerConfigJson]) -> Result<ImageInfo> {
        let secret_registries = secrets
            .iter()
            .flat_map(|c| c.auths.keys().cloned())
            .collect();
        let mut s = self.record(Call::PullImage {
            name: name.to_owned(),
            secret_registries,
        });
        let n = normalized(name);
        if let Some(f) = s.pull_failures.get(&n) {
            return Err(match f {
                PullFailure::NotFound(m) => CriError::ImageNotFound(m.clone()),
                PullFailure::Pull(m) => CriError::Pull(m.clone()),
            });
        }
        let image = s.pullable.get(&n).or_else(|| s.pullable.get(name)).cloned();
        match image {
            Some(image) => {
                s.images.insert(image.id.clone(), image.clone());
                Ok(image)
            }
            None => Err(CriError::ImageNotFound(format!(
                "failed to resolve reference \"{n}\": {n}: not found"
            ))),
        }
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>> {
        let s = self.record(Call::ListImages);
        Ok(s.images.values().cloned().collect())
    }

    async fn remove_image(&self, name: &str) -> Result<()> {
        let mut s = self.record(Call::RemoveImage(name.to_owned()));
        if let Some(id) = find_image(&s.images, name).map(|i| i.id.clone()) {
            s.images.remove(&id);
        }
        Ok(())
    }

    async fn image_fs_usage(&self) -> Result<FsUsage> {
        let s = self.record(Call::ImageFsUsage);
        let mut usage = s.fs_usage;
        usage.used_bytes = s.images.values().map(|i| i.size).sum();
        Ok(usage)
    }

    async fn run_sandbox(&self, config: SandboxConfig) -> Result<Sandbox> {
        let mut s = self.record(Call::RunSandbox(config.clone()));
        if let Some(m) = s.sandbox_failure.take() {
            return Err(CriError::Sandbox(m));
        }
        if let Some(existing) = s.sandboxes.get(&config.id) {
            return Ok(existing.clone());
        }
        let dir = PathBuf::from("/recording/sandboxes").join(&config.id);
        let ns = |on: bool, name: &str| on.then(|| dir.join("ns").join(name));
        let ips = if config.host_network {
            vec![IpAddr::from([10, 0, 0, 1])]
        } else {
            let n = s.next_ip;
            s.next_ip = s.next_ip.wrapping_add(1);
            let b = n.to_be_bytes();
            vec![IpAddr::from([10, 42, b[2], b[3]])]
        };
        let sandbox = Sandbox {
            id: config.id.clone(),
            pod_name: config.pod_name.clone(),
            pod_namespace: config.pod_namespace.clone(),
            pod_uid: config.pod_uid.clone(),
            hostname: if config.host_network {
                "recording-node".to_owned()
            } else {
                config.hostname.clone()
            },
            host_network: config.host_network,
            host_ipc: config.host_ipc,
            netns: ns(!config.host_network, "net"),
            ipc: ns(!config.host_ipc, "ipc"),
            uts: ns(!config.host_network, "uts"),
            pid: ns(config.share_pid, "pid"),
            pause: None,
            port_mappings: config.port_mappings.clone(),
            cni_network: None,
            cni_result: None,
            ips,
            hosts_file: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
            hostname_file: dir.join("hostname"),
            ready: true,
        };
        s.sandboxes.insert(config.id, sandbox.clone());
        Ok(sandbox)
    }

    async fn sandbox_status(&self, id: &str) -> Result<Option<(Sandbox, SandboxState)>> {
        let s = self.record(Call::SandboxStatus(id.to_owned()));
        Ok(s.sandboxes.get(id).map(|sb| {
            let state = if s.not_ready.contains(id) {
                SandboxState::NotReady
            } else {
                SandboxState::Ready
            };
            (sb.clone(), state)
        }))
    }

    async fn remove_sandbox(&self, id: &str) -> Result<()> {
        let mut s = self.record(Call::RemoveSandbox(id.to_owned()));
        s.sandboxes.remove(id);
        s.not_ready.remove(id);
        Ok(())
    }

    async fn list_sandboxes(&self) -> Result<Vec<Sandbox>> {
        let s = self.record(Call::ListSandboxes);
        Ok(s.sandboxes.values().cloned().collect())
    }

    async fn ensure_pod_cgroup(&self, cgroup: &PodCgroup) -> Result<()> {
        let mut s = self.record(Call::EnsurePodCgroup(cgroup.clone()));
        s.cgroups.insert(cgroup.path.clone(), cgroup.clone());
        Ok(())
    }

    async fn remove_pod_cgroup(&self, path: &str) -> Result<()> {
        let mut s = self.record(Call::RemovePodCgroup(path.to_owned()));
        s.cgroups.remove(path);
        Ok(())
    }

    async fn create_container(
        &self,
        id: &str,
        image: &ImageInfo,
        meta: ContainerMeta,
    ) -> Result<PreparedContainer> {
        let mut s = self.record(Call::CreateContainer {
            id: id.to_owned(),
            image_id: image.id.clone(),
            meta: meta.clone(),
        });
        if let Some(m) = s.create_failures.get(&meta.name) {
            return Err(CriError::Create(m.clone()));
        }
        if s.containers.contains_key(id) {
            return Err(CriError::Create(format!("container {id} already exists")));
        }
        if !s.images.contains_key(&image.id) {
            return Err(CriError::NotFound(format!("image {} not found", image.id)));
        }
        let rootfs = PathBuf::from("/recording/containers")
            .join(id)
            .join("rootfs");
        let created_at = Self::now(&s);
        s.containers.insert(
            id.to_owned(),
            Container {
                info: ContainerInfo {
                    id: id.to_owned(),
                    meta,
                    created_at,
                    state: ContainerState::Created,
                },
                config: None,
            },
        );
        Ok(PreparedContainer { rootfs })
    }

    async fn start_container(&self, id: &str, config: &ContainerConfig) -> Result<()> {
        let mut s = self.record(Call::StartContainer {
            id: id.to_owned(),
            config: Box::new(config.clone()),
        });
        let now = Self::now(&s);
        let pid = s.next_pid;
        s.next_pid += 1;
        let State {
            containers,
            start_failures,
            exit_on_start,
            ..
        } = &mut *s;
        let c = containers
            .get_mut(id)
            .ok_or_else(|| CriError::NotFound(format!("container {id} not found")))?;
        if c.info.state != ContainerState::Created {
            return Err(CriError::Other(format!(
                "container {id} is not in the created state"
            )));
        }
        c.config = Some(config.clone());
        if let Some(m) = start_failures.get(&c.info.meta.name) {
            c.info.state = ContainerState::Exited {
                started_at: String::new(),
                finished_at: now,
                exit_code: 128,
                oom_killed: false,
            };
            return Err(CriError::Start(m.clone()));
        }
        c.info.state = ContainerState::Running {
            started_at: now.clone(),
            pid,
        };
        if let Some(&(code, oom)) = exit_on_start.get(&c.info.meta.name) {
            Self::to_exited(c, now, code, oom);
        }
        Ok(())
    }

    async fn kill_container(&self, id: &str, signal: i32) -> Result<()> {
        let mut s = self.record(Call::KillContainer {
            id: id.to_owned(),
            signal,
        });
        let now = Self::now(&s);
        let State {
            containers,
            ignore_sigterm,
            ..
        } = &mut *s;
        let c = containers
            .get_mut(id)
            .ok_or_else(|| CriError::NotFound(format!("container {id} not found")))?;
        match signal {
            9 => {
                Self::to_exited(c, now, 137, false);
            }
            15 if !ignore_sigterm.contains(&c.info.meta.name) => {
                Self::to_exited(c, now, 143, false);
            }
            _ => {}
        }
        Ok(())
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let mut s = self.record(Call::StopContainer {
            id: id.to_owned(),
            grace,
        });
        let State {
            containers,
            ignore_sigterm,
            now,
            ..
        } = &mut *s;
        let c = containers
            .get_mut(id)
            .ok_or_else(|| CriError::NotFound(format!("container {id} not found")))?;
        let at = now.unwrap_or_else(Utc::now);
        if ignore_sigterm.contains(&c.info.meta.name) {
            // SIGKILL after the grace: the exit is `grace` later on the test's clock.
            let later = at + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::zero());
            if Self::to_exited(c, rfc3339(later), 137, false) && now.is_some() {
                *now = Some(later);
            }
        } else {
            Self::to_exited(c, rfc3339(at), 143, false);
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let mut s = self.record(Call::RemoveContainer(id.to_owned()));
        if let Some(c) = s.containers.get(id) {
            if matches!(c.info.state, ContainerState::Running { .. }) {
                return Err(CriError::Other(format!(
                    "container {id} is running: stop it first"
                )));
            }
        }
        s.containers.remove(id);
        Ok(())
    }

    async fn container_status(&self, id: &str) -> Result<Option<ContainerInfo>> {
        let s = self.record(Call::ContainerStatus(id.to_owned()));
        Ok(s.containers.get(id).map(|c| c.info.clone()))
    }

    async fn list_containers(&self) -> Result<Vec<ContainerInfo>> {
        let s = self.record(Call::ListContainers);
        Ok(s.containers.values().map(|c| c.info.clone()).collect())
    }

    async fn exec_sync(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecOutput> {
        let s = self.record(Call::ExecSync {
            id: id.to_owned(),
            cmd: cmd.to_vec(),
            timeout,
        });
        Self::running(&s, id)?;
        let answer = s.exec_answers.get(cmd).cloned().unwrap_or_default();
        Ok(ExecOutput {
            exit_code: answer.exit_code,
            stdout: answer.stdout,
            stderr: answer.stderr,
            timed_out: answer.timed_out,
        })
    }

    async fn exec(&self, id: &str, req: StreamRequest) -> Result<StreamSession> {
        {
            let s = self.record(Call::Exec {
                id: id.to_owned(),
                req: req.clone(),
            });
            Self::running(&s, id)?;
        }
        let kind = StreamKind::Exec {
            id: id.to_owned(),
            req: req.clone(),
        };
        Ok(self.session(kind, &req))
    }

    async fn attach(&self, id: &str, req: StreamRequest) -> Result<StreamSession> {
        {
            let s = self.record(Call::Attach {
                id: id.to_owned(),
                req: req.clone(),
            });
            Self::running(&s, id)?;
        }
        let kind = StreamKind::Attach {
            id: id.to_owned(),
            req: req.clone(),
        };
        Ok(self.session(kind, &req))
    }

    async fn port_forward(&self, sandbox_id: &str, port: u16) -> Result<tokio::net::TcpStream> {
        {
            let s = self.record(Call::PortForward {
                sandbox_id: sandbox_id.to_owned(),
                port,
            });
            let Some(sandbox) = s.sandboxes.get(sandbox_id) else {
                return Err(CriError::NotFound(format!(
                    "sandbox {sandbox_id} not found"
                )));
            };
            if s.refused_ports.contains(&port) {
                let netns = sandbox.netns.clone().unwrap_or_default();
                return Err(CriError::Other(format!(
                    "failed to connect to localhost:{port} inside namespace {:?}: IPv4: connect: connection refused IPv6: connect: connection refused",
                    netns.display().to_string()
                )));
            }
        }
        let io = |e: std::io::Error| CriError::Other(format!("port-forward pair: {e}"));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(io)?;
        let addr = listener.local_addr().map_err(io)?;
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let client = client.map_err(io)?;
        let (conn, _) = accepted.map_err(io)?;
        let _ = self.inner.forwards_tx.send(PortForwardHandle {
            sandbox_id: sandbox_id.to_owned(),
            port,
            conn,
        });
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::files::{DnsInput, DnsPolicy};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn sandbox_config(id: &str) -> SandboxConfig {
        SandboxConfig {
            id: id.to_owned(),
            pod_name: "web".to_owned(),
            pod_namespace: "default".to_owned(),
            pod_uid: "uid-1".to_owned(),
            hostname: "web".to_owned(),
            host_network: false,
            host_ipc: false,
            share_pid: false,
            port_mappings: vec![],
            domain: None,
            host_aliases: vec![],
            node_hosts: String::new(),
            dns: DnsInput {
                policy: DnsPolicy::default(),
                host_network: false,
                namespace: "default".to_owned(),
                cluster_dns: vec!["10.43.0.10".to_owned()],
                cluster_domain: "cluster.local".to_owned(),
                host_resolv_conf: None,
                dns_config: None,
            },
        }
    }

    fn meta(name: &str) -> ContainerMeta {
        ContainerMeta {
            pod_uid: "uid-1".to_owned(),
            pod_name: "web".to_owned(),
            pod_namespace: "default".to_owned(),
            sandbox_id: "sb".to_owned(),
            name: name.to_owned(),
            ..ContainerMeta::default()
        }
    }

    fn config(id: &str) -> ContainerConfig {
        ContainerConfig {
            id: id.to_owned(),
            ..ContainerConfig::default()
        }
    }

    async fn runtime_with_busybox() -> (RecordingRuntime, ImageInfo) {
        let rt = RecordingRuntime::new();
        let image = RecordingRuntime::image("busybox", ImageConfig::default());
        rt.add_image(image.clone());
        (rt, image)
    }

    #[tokio::test]
    async fn images_are_found_by_any_reference_form() {
        let (rt, image) = runtime_with_busybox().await;
        for name in [
            "busybox",
            "busybox:latest",
            "docker.io/library/busybox:latest",
            image.id.as_str(),
            image.repo_digests[0].as_str(),
        ] {
            let found = rt.image_status(name).await.unwrap();
            assert_eq!(found.map(|i| i.id), Some(image.id.clone()), "{name}");
        }
        assert!(rt.image_status("nginx").await.unwrap().is_none());
        let digest = image.repo_digests[0].split('@').nth(1).unwrap().to_owned();
        assert!(rt
            .image_status(&format!("busybox@{digest}"))
            .await
            .unwrap()
            .is_some());
    }

    #[tokio::test]
    async fn pulls_succeed_fail_or_miss_as_scripted() {
        let rt = RecordingRuntime::new();
        let nginx = RecordingRuntime::image("nginx:1.25", ImageConfig::default());
        rt.add_pullable(nginx.clone());
        rt.fail_pull("private/app", PullFailure::Pull("unauthorized".to_owned()));
        let secrets = vec![DockerConfigJson::parse(br#"{"auths":{"reg.example":{}}}"#).unwrap()];
        assert_eq!(
            rt.pull_image("nginx:1.25", &secrets).await.unwrap().id,
            nginx.id
        );
        assert!(rt.image_status("nginx:1.25").await.unwrap().is_some());
        assert!(matches!(
            rt.pull_image("private/app", &[]).await,
            Err(CriError::Pull(m)) if m == "unauthorized"
        ));
        assert!(matches!(
            rt.pull_image("nope", &[]).await,
            Err(CriError::ImageNotFound(_))
        ));
        let calls = rt.take_calls();
        assert!(matches!(
            &calls[0],
            Call::PullImage { name, secret_registries } if name == "nginx:1.25" && secret_registries == &["reg.example".to_owned()]
        ));
        assert!(rt.calls().is_empty());
        rt.remove_image("nginx:1.25").await.unwrap();
        assert!(rt.list_images().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn container_lifecycle_created_running_exited() {
        let (rt, image) = runtime_with_busybox().await;
        let t0 = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        rt.set_now(t0);
        rt.create_container("c1", &image, meta("app"))
            .await
            .unwrap();
        let info = rt.container_status("c1").await.unwrap().unwrap();
        assert_eq!(info.state, ContainerState::Created);
        assert_eq!(info.created_at, "2026-01-02T03:04:05.000000000Z");
        rt.advance(Duration::from_secs(1));
        rt.start_container("c1", &config("c1")).await.unwrap();
        assert!(matches!(
            rt.container_status("c1").await.unwrap().unwrap().state,
            ContainerState::Running { ref started_at, .. } if started_at == "2026-01-02T03:04:06.000000000Z"
        ));
        assert!(rt.remove_container("c1").await.is_err(), "running");
        rt.advance(Duration::from_secs(2));
        assert!(rt.exit("c1", 3));
        assert!(!rt.exit("c1", 4), "exits once");
        assert_eq!(
            rt.container_status("c1").await.unwrap().unwrap().state,
            ContainerState::Exited {
                started_at: "2026-01-02T03:04:06.000000000Z".to_owned(),
                finished_at: "2026-01-02T03:04:08.000000000Z".to_owned(),
                exit_code: 3,
                oom_killed: false,
            }
        );
        assert!(rt.start_container("c1", &config("c1")).await.is_err());
        assert_eq!(rt.started_config("c1").unwrap().id, "c1");
        rt.remove_container("c1").await.unwrap();
        rt.remove_container("c1").await.unwrap();
        assert!(rt.list_containers().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn scripted_start_failures_exits_and_ooms() {
        let (rt, image) = runtime_with_busybox().await;
        rt.fail_start("bad", "exec: \"nope\": executable file not found in $PATH");
        rt.exit_on_start("oom", 137, true);
        rt.create_container("b", &image, meta("bad")).await.unwrap();
        rt.create_container("o", &image, meta("oom")).await.unwrap();
        let err = rt.start_container("b", &config("b")).await.unwrap_err();
        assert!(matches!(err, CriError::Start(m) if m.contains("executable file not found")));
        assert!(matches!(
            rt.container_status("b").await.unwrap().unwrap().state,
            ContainerState::Exited { exit_code: 128, .. }
        ));
        rt.start_container("o", &config("o")).await.unwrap();
        assert!(matches!(
            rt.container_status("o").await.unwrap().unwrap().state,
            ContainerState::Exited {
                exit_code: 137,
                oom_killed: true,
                ..
            }
        ));
        rt.fail_create("x", "no space");
        assert!(matches!(
            rt.create_container("x1", &image, meta("x")).await,
            Err(CriError::Create(m)) if m == "no space"
        ));
        rt.clear_script("x");
        rt.create_container("x1", &image, meta("x")).await.unwrap();
    }

    #[tokio::test]
    async fn stop_honours_sigterm_or_kills_after_the_grace() {
        let (rt, image) = runtime_with_busybox().await;
        let t0 = Utc::now();
        rt.set_now(t0);
        rt.ignore_sigterm("stubborn");
        for (id, name) in [("a", "polite"), ("b", "stubborn")] {
            rt.create_container(id, &image, meta(name)).await.unwrap();
            rt.start_container(id, &config(id)).await.unwrap();
        }
        rt.stop_container("a", Duration::from_secs(30))
            .await
            .unwrap();
        rt.stop_container("b", Duration::from_secs(30))
            .await
            .unwrap();
        let code = |info: ContainerInfo| match info.state {
            ContainerState::Exited { exit_code, .. } => exit_code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(rt.container_status("a").await.unwrap().unwrap()), 143);
        assert_eq!(code(rt.container_status("b").await.unwrap().unwrap()), 137);
        match rt.container_status("b").await.unwrap().unwrap().state {
            ContainerState::Exited { finished_at, .. } => {
                assert_eq!(finished_at, rfc3339(t0 + chrono::Duration::seconds(30)))
            }
            other => panic!("{other:?}"),
        }
        rt.create_container("c", &image, meta("stubborn"))
            .await
            .unwrap();
        rt.start_container("c", &config("c")).await.unwrap();
        rt.kill_container("c", 15).await.unwrap();
        assert!(matches!(
            rt.container_status("c").await.unwrap().unwrap().state,
            ContainerState::Running { .. }
        ));
        rt.kill_container("c", 9).await.unwrap();
        assert_eq!(code(rt.container_status("c").await.unwrap().unwrap()), 137);
    }

    #[tokio::test]
    async fn exec_sync_answers_per_command() {
        let (rt, image) = runtime_with_busybox().await;
        rt.answer_exec(&["cat", "/tmp/healthy"], ExecAnswer::new(1, "no such file"));
        let cmd = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(matches!(
            rt.exec_sync("c", &cmd(&["true"]), Duration::from_secs(1))
                .await,
            Err(CriError::NotFound(_))
        ));
        rt.create_container("c", &image, meta("app")).await.unwrap();
        rt.start_container("c", &config("c")).await.unwrap();
        let out = rt
            .exec_sync("c", &cmd(&["cat", "/tmp/healthy"]), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(
            (out.exit_code, out.stdout.as_slice()),
            (1, &b"no such file"[..])
        );
        let out = rt
            .exec_sync("c", &cmd(&["true"]), Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(out, ExecOutput::default());
    }

    #[tokio::test]
    async fn sandboxes_and_cgroups() {
        let rt = RecordingRuntime::new();
        rt.fail_next_sandbox("CNI ADD failed");
        assert!(matches!(
            rt.run_sandbox(sandbox_config("s1")).await,
            Err(CriError::Sandbox(_))
        ));
        let a = rt.run_sandbox(sandbox_config("s1")).await.unwrap();
        let b = rt.run_sandbox(sandbox_config("s2")).await.unwrap();
        assert_ne!(a.ips, b.ips);
        assert!(a.netns.is_some());
        assert_eq!(
            rt.sandbox_status("s1").await.unwrap().map(|(_, s)| s),
            Some(SandboxState::Ready)
        );
        rt.set_sandbox_not_ready("s1");
        assert_eq!(
            rt.sandbox_status("s1").await.unwrap().map(|(_, s)| s),
            Some(SandboxState::NotReady)
        );
        rt.remove_sandbox("s1").await.unwrap();
        rt.remove_sandbox("s1").await.unwrap();
        assert_eq!(rt.list_sandboxes().await.unwrap().len(), 1);
        let cg = PodCgroup {
            path: "/skiff/burstable/poduid-1".to_owned(),
            memory_limit: Some(1 << 20),
            ..PodCgroup::default()
        };
        rt.ensure_pod_cgroup(&cg).await.unwrap();
        assert_eq!(rt.pod_cgroups(), vec![cg.clone()]);
        rt.remove_pod_cgroup(&cg.path).await.unwrap();
        assert!(rt.pod_cgroups().is_empty());
    }

    #[tokio::test]
    async fn exec_attach_and_port_forward_streams() {
        let (rt, image) = runtime_with_busybox().await;
        rt.run_sandbox(sandbox_config("sb")).await.unwrap();
        rt.create_container("c", &image, meta("app")).await.unwrap();
        rt.start_container("c", &config("c")).await.unwrap();
        let req = StreamRequest {
            cmd: vec!["sh".to_owned()],
            tty: false,
            stdin: true,
            stdout: true,
            stderr: true,
        };
        let mut session = rt.exec("c", req.clone()).await.unwrap();
        let mut handle = rt.next_stream(Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            handle.kind,
            StreamKind::Exec {
                id: "c".to_owned(),
                req
            }
        );
        let mut stdin = session.stdin.take().unwrap();
        stdin.write_all(b"echo hi\n").await.unwrap();
        drop(stdin);
        let mut got = Vec::new();
        handle
            .stdin
            .as_mut()
            .unwrap()
            .read_to_end(&mut got)
            .await
            .unwrap();
        assert_eq!(got, b"echo hi\n");
        handle
            .stdout
            .as_mut()
            .unwrap()
            .write_all(b"hi\n")
            .await
            .unwrap();
        handle.finish(7);
        let mut out = Vec::new();
        session
            .stdout
            .take()
            .unwrap()
            .read_to_end(&mut out)
            .await
            .unwrap();
        assert_eq!(out, b"hi\n");
        assert_eq!(session.exit.await.unwrap().unwrap(), 7);

        let tty = StreamRequest {
            tty: true,
            stdout: true,
            stderr: true,
            ..StreamRequest::default()
        };
        let session = rt.attach("c", tty).await.unwrap();
        assert!(session.stderr.is_none(), "a terminal has one output stream");
        let mut handle = rt.next_stream(Duration::from_secs(5)).await.unwrap();
        session
            .resize
            .as_ref()
            .unwrap()
            .send(TerminalSize {
                width: 80,
                height: 24,
            })
            .await
            .unwrap();
        assert_eq!(
            handle.resize.as_mut().unwrap().recv().await,
            Some(TerminalSize {
                width: 80,
                height: 24
            })
        );

        let mut conn = rt.port_forward("sb", 80).await.unwrap();
        let mut pf = rt.next_port_forward(Duration::from_secs(5)).await.unwrap();
        assert_eq!((pf.sandbox_id.as_str(), pf.port), ("sb", 80));
        conn.write_all(b"GET /").await.unwrap();
        let mut buf = [0u8; 5];
        pf.conn.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"GET /");
        assert!(matches!(
            rt.port_forward("missing", 80).await,
            Err(CriError::NotFound(_))
        ));
        rt.refuse_port(81);
        match rt.port_forward("sb", 81).await {
            Err(CriError::Other(m)) => assert!(m.contains("connection refused"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(rt.port_forward("sb", 82).await.is_ok());
        rt.exit("c", 0);
        assert!(rt.attach("c", StreamRequest::default()).await.is_err());
    }

    #[test]
    fn is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<RecordingRuntime>();
        let _: Arc<dyn PodRuntime> = Arc::new(RecordingRuntime::new());
    }
}
