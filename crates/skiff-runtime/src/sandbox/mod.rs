//! Pod sandboxes: the network, IPC and UTS namespaces a pod's containers share, the pod's
//! CNI network, and its `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`.
//!
//! Namespaces are pinned, not held by a process (CRI-O's `pinns`, containerd's sandboxed
//! netns): a short-lived thread `unshare`s new namespaces, sets the UTS hostname, and
//! bind-mounts its `/proc/thread-self/ns/*` onto files under the sandbox's directory; when
//! the thread ends the mounts keep the namespaces alive. Containers join them through
//! [`Sandbox::namespaces`] (`NamespaceMode::Path`) and get the files through
//! [`Sandbox::mounts`]. There is no pause process, except for pods with
//! `shareProcessNamespace: true`: a PID namespace dies with its init, so those sandboxes
//! get a holder ([`pause`]), PID 1 of a new PID namespace in the sandbox's other
//! namespaces, recorded in the state and pinned at `ns/pid` for the containers to join.
//!
//! Everything a sandbox owns is recorded in `<root>/<id>/sandbox.json` *before* it is
//! created, so a restarted kubelet can [`Sandboxes::list`] what is there and
//! [`Sandboxes::remove`] it, finished or half-made. Removal is idempotent: CNI DEL (which
//! releases the IPAM lease and the veth, and succeeds when ADD never completed), unmount
//! with `MNT_DETACH`, delete the files.
//!
//! - [`cni`]: running CNI plugins, skiff's default conflist.
//! - [`files`]: rendering hosts, resolv.conf and hostname (pure).
//! - [`pause`]: the PID namespace holder (`skiff sandbox-pause`).
//!
//! Upstream counterparts: containerd's `internal/cri/server/sandbox_run.go` and
//! `pkg/netns`, CRI-O's `pinns`, the kubelet's `kubelet_pods.go` and `network/dns`.

pub mod cni;
pub mod files;
pub mod pause;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::container::spec::{BindMount, NamespaceMode, Namespaces, Propagation};
use cni::{Attachment, Cni, PortMapping};
use pause::{PauseCommand, PauseProcess};

const STATE_FILE: &str = "sandbox.json";

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid sandbox id {0:?}")]
    InvalidId(String),
    #[error("sandbox {0} already exists")]
    Exists(String),
    #[error("sandbox {0} not found")]
    NotFound(String),
    #[error("no CNI network configured: a pod without hostNetwork cannot be created")]
    NoNetwork,
    #[error("pinning namespaces: {0}")]
    Pin(String),
    #[error("pod PID namespace: {0}")]
    Pause(String),
    #[error("pod network: {0}")]
    Cni(#[from] cni::CniError),
    #[error("sandbox state {0}: {1}")]
    State(PathBuf, String),
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
}

pub type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// The sandbox state directory under the data dir: `<data-dir>/agent/sandboxes`.
pub fn sandboxes_root(data_dir: &Path) -> PathBuf {
    data_dir.join("agent").join("sandboxes")
}

/// What the kubelet asks for (CRI's `PodSandboxConfig`, already reduced to plain values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxConfig {
    /// A file-name-safe id (the kubelet uses one per pod attempt).
    pub id: String,
    pub pod_name: String,
    pub pod_namespace: String,
    pub pod_uid: String,
    /// From [`files::pod_hostname`]; ignored for `hostNetwork` pods (they have the node's).
    pub hostname: String,
    /// `hostNetwork`: the host's network and, as in containerd, the host's UTS namespace.
    pub host_network: bool,
    /// `hostIPC`: the host's IPC namespace.
    pub host_ipc: bool,
    /// `shareProcessNamespace` (and not `hostPID`): one PID namespace for the pod's
    /// containers, held by a [`pause`] process.
    pub share_pid: bool,
    pub port_mappings: Vec<PortMapping>,
    /// From [`files::pod_domain`] (pods with a `subdomain`).
    pub domain: Option<String>,
    pub host_aliases: Vec<files::HostAlias>,
    /// The node's `/etc/hosts` text, which `hostNetwork` pods get.
    pub node_hosts: String,
    pub dns: files::DnsInput,
}

/// A sandbox as recorded on disk.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sandbox {
    pub id: String,
    pub pod_name: String,
    pub pod_namespace: String,
    pub pod_uid: String,
    /// What the pod sees as its hostname (the node's for hostNetwork pods): for the
    /// containers' `HOSTNAME`. A container's own `ContainerConfig::hostname` stays `None`
    /// when [`Sandbox::uts`] is the host's (runc cannot set one without a UTS namespace).
    pub hostname: String,
    pub host_network: bool,
    pub host_ipc: bool,
    /// Pinned namespace files (`None`: the host's namespace).
    pub netns: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    /// The pod's PID namespace, pinned (`shareProcessNamespace`; `None`: each container
    /// has its own).
    #[serde(default)]
    pub pid: Option<PathBuf>,
    /// The process holding [`Sandbox::pid`] (its PID 1), once started.
    #[serde(default)]
    pub pause: Option<PauseProcess>,
    pub port_mappings: Vec<PortMapping>,
    /// The network ADD ran with, cached so that DEL releases what ADD made even when the
    /// node's configuration changed or is not loaded (libcni caches it the same way).
    #[serde(default)]
    pub cni_network: Option<cni::NetworkList>,
    /// The CNI ADD result, cached for DEL and CHECK.
    pub cni_result: Option<Value>,
    pub ips: Vec<IpAddr>,
    pub hosts_file: PathBuf,
    pub resolv_conf: PathBuf,
    pub hostname_file: PathBuf,
    /// False until create finished: a crash in between leaves a sandbox to remove.
    pub ready: bool,
}

/// [`Sandboxes::status`]'s answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxState {
    /// Created and every pinned namespace still in place (CRI's SANDBOX_READY).
    Ready,
    /// Half-created, or a namespace is gone: the kubelet removes it and makes a new one.
    NotReady,
}

impl Sandbox {
    /// The namespaces for one of the pod's containers (`pid` per `shareProcessNamespace`:
    /// [`Sandbox::pid_namespace`]).
    pub fn namespaces(&self, pid: NamespaceMode) -> Namespaces {
        let mode = |p: &Option<PathBuf>| match p {
            Some(p) => NamespaceMode::Path(p.clone()),
            None => NamespaceMode::Host,
        };
        Namespaces {
            network: mode(&self.netns),
            ipc: mode(&self.ipc),
            uts: mode(&self.uts),
            pid,
        }
    }

    /// What the pod's containers do for their PID namespace: join the sandbox's when it
    /// has one, else make their own.
    pub fn pid_namespace(&self) -> NamespaceMode {
        match &self.pid {
            Some(p) => NamespaceMode::Path(p.clone()),
            None => NamespaceMode::Private,
        }
    }

    /// `/etc/hosts` (writable, as the kubelet mounts it), `/etc/hostname` and
    /// `/etc/resolv.conf` (read-only with a read-only root filesystem, as containerd).
    pub fn mounts(&self, readonly_rootfs: bool) -> Vec<BindMount> {
        let bind = |host: &Path, container: &str, readonly| BindMount {
            host_path: host.to_path_buf(),
            container_path: container.into(),
            readonly,
            propagation: Propagation::Private,
        };
        vec![
            bind(&self.hostname_file, "/etc/hostname", readonly_rootfs),
            bind(&self.hosts_file, "/etc/hosts", false),
            bind(&self.resolv_conf, "/etc/resolv.conf", readonly_rootfs),
        ]
    }

    fn attachment(&self) -> Attachment {
        Attachment {
            container_id: self.id.clone(),
            netns: self.netns.clone(),
            ifname: cni::POD_IFNAME.into(),
            args: vec![
                ("K8S_POD_NAMESPACE".into(), self.pod_namespace.clone()),
                ("K8S_POD_NAME".into(), self.pod_name.clone()),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), self.id.clone()),
                ("K8S_POD_UID".into(), self.pod_uid.clone()),
            ],
            port_mappings: self.port_mappings.clone(),
        }
    }
}

/// The node's sandboxes: a state directory and the CNI network pods get. Every call
/// blocks (plugins run for tens of milliseconds): async callers use `spawn_blocking`.
#[derive(Clone, Debug)]
pub struct Sandboxes {
    root: PathBuf,
    cni: Option<Cni>,
    /// How to start a PID namespace holder (`None`: `shareProcessNamespace` is refused).
    pause: Option<PauseCommand>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl Sandboxes {
    /// `cni` is `None` when the node has no network configured yet (only hostNetwork pods).
    pub fn new(root: impl Into<PathBuf>, cni: Option<Cni>) -> Self {
        Sandboxes {
            root: root.into(),
            cni,
            pause: None,
        }
    }

    /// Sandboxes with `share_pid` start their holder with `pause`.
    pub fn with_pause(mut self, pause: Option<PauseCommand>) -> Self {
        self.pause = pause;
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir(&self, id: &str) -> Result<PathBuf> {
        if !valid_id(id) {
            return Err(SandboxError::InvalidId(id.to_string()));
        }
        Ok(self.root.join(id))
    }

    /// Creates the sandbox: namespaces, network, files. On failure everything made so far
    /// is torn down again before the error is returned.
    pub fn create(&self, config: &SandboxConfig) -> Result<Sandbox> {
        let dir = self.dir(&config.id)?;
        if !config.host_network && self.cni.is_none() {
            return Err(SandboxError::NoNetwork);
        }
        std::fs::create_dir_all(&self.root).map_err(|e| SandboxError::Io(self.root.clone(), e))?;
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(SandboxError::Exists(config.id.clone()))
            }
            Err(e) => return Err(SandboxError::Io(dir, e)),
        }
        let ns_dir = dir.join("ns");
        // hostNetwork implies the host's UTS namespace (containerd drops both), so the
        // pod's hostname is the node's.
        let own_uts = !config.host_network;
        let hostname = if own_uts {
            config.hostname.clone()
        } else {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| config.hostname.clone())
        };
        let mut sandbox = Sandbox {
            id: config.id.clone(),
            pod_name: config.pod_name.clone(),
            pod_namespace: config.pod_namespace.clone(),
            pod_uid: config.pod_uid.clone(),
            hostname,
            host_network: config.host_network,
            host_ipc: config.host_ipc,
            netns: (!config.host_network).then(|| ns_dir.join("net")),
            ipc: (!config.host_ipc).then(|| ns_dir.join("ipc")),
            uts: own_uts.then(|| ns_dir.join("uts")),
            pid: config.share_pid.then(|| ns_dir.join("pid")),
            pause: None,
            port_mappings: config.port_mappings.clone(),
            cni_network: self
                .cni
                .as_ref()
                .filter(|_| !config.host_network)
                .map(|c| c.network.clone()),
            cni_result: None,
            ips: vec![],
            hosts_file: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
            hostname_file: dir.join("hostname"),
            ready: false,
        };
        let made = self
            .write_state(&sandbox)
            .and_then(|()| self.set_up(&mut sandbox, config));
        match made {
            Ok(()) => Ok(sandbox),
            Err(e) => {
                if let Err(cleanup) = self.tear_down(&sandbox) {
                    tracing::warn!(sandbox = %sandbox.id, error = %cleanup, "cleaning up a sandbox that failed to start");
                }
                Err(e)
            }
        }
    }

    fn set_up(&self, sandbox: &mut Sandbox, config: &SandboxConfig) -> Result<()> {
        let hostname = sandbox.uts.is_some().then_some(config.hostname.as_str());
        pin_namespaces(
            sandbox.netns.as_deref(),
            sandbox.ipc.as_deref(),
            sandbox.uts.as_deref(),
            hostname,
        )?;
        if let Some(pin) = sandbox.pid.clone() {
            self.start_pause(sandbox, &pin)?;
        }
        if let (Some(netns), Some(cni)) = (&sandbox.netns, &self.cni) {
            cni.loopback_up(netns, &sandbox.id)?;
            let att = sandbox.attachment();
            // Recorded before the error is looked at: a failed ADD is torn down with DEL.
            let result = cni.add(&att);
            if let Ok(r) = &result {
                sandbox.ips = cni::result_ips(r);
                sandbox.cni_result = Some(r.clone());
            }
            self.write_state(sandbox)?;
            result?;
        }
        let hosts = if config.host_network {
            files::host_network_hosts(&config.node_hosts, &config.host_aliases)
        } else {
            files::managed_hosts(&files::HostsInput {
                pod_ips: sandbox.ips.iter().map(IpAddr::to_string).collect(),
                hostname: config.hostname.clone(),
                domain: config.domain.clone(),
                host_aliases: config.host_aliases.clone(),
            })
        };
        let resolv = files::resolv_conf(&files::pod_dns_config(&config.dns));
        for (path, text) in [
            (&sandbox.hosts_file, hosts),
            (&sandbox.resolv_conf, resolv),
            (
                &sandbox.hostname_file,
                files::hostname_file(&sandbox.hostname),
            ),
        ] {
            std::fs::write(path, text).map_err(|e| SandboxError::Io(path.clone(), e))?;
        }
        sandbox.ready = true;
        self.write_state(sandbox)
    }

    /// Starts the holder of the pod's PID namespace (in the sandbox's other namespaces)
    /// and records it.
    fn start_pause(&self, sandbox: &mut Sandbox, pin: &Path) -> Result<()> {
        let cmd = self.pause.as_ref().ok_or_else(|| {
            SandboxError::Pause("this runtime has no holder command configured".into())
        })?;
        if let Some(parent) = pin.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| SandboxError::Io(parent.to_path_buf(), e))?;
        }
        std::fs::File::create(pin).map_err(|e| SandboxError::Io(pin.to_path_buf(), e))?;
        let p = pause::start(
            cmd,
            sandbox.netns.as_deref(),
            sandbox.ipc.as_deref(),
            sandbox.uts.as_deref(),
            pin,
        )
        .map_err(SandboxError::Pause)?;
        sandbox.pause = Some(p);
        self.write_state(sandbox)
    }

    /// The network a sandbox was attached with (its cached copy, else the node's), run
    /// from the node's plugin directories (else the default ones).
    fn cni_for(&self, sandbox: &Sandbox) -> Option<Cni> {
        let bin_dirs = match &self.cni {
            Some(c) => c.bin_dirs.clone(),
            None => cni::DEFAULT_BIN_DIRS.iter().map(PathBuf::from).collect(),
        };
        let network = sandbox
            .cni_network
            .clone()
            .or_else(|| self.cni.as_ref().map(|c| c.network.clone()))?;
        Some(Cni::new(network, bin_dirs))
    }

    fn write_state(&self, sandbox: &Sandbox) -> Result<()> {
        let dir = self.root.join(&sandbox.id);
        let path = dir.join(STATE_FILE);
        let tmp = dir.join(format!(".{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(sandbox)
            .map_err(|e| SandboxError::State(path.clone(), e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(|e| SandboxError::Io(tmp.clone(), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| SandboxError::Io(path.clone(), e))
    }

    /// The recorded sandbox.
    pub fn get(&self, id: &str) -> Result<Sandbox> {
        let path = self.dir(id)?.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SandboxError::NotFound(id.to_string()))
            }
            Err(e) => return Err(SandboxError::Io(path, e)),
        };
        serde_json::from_slice(&bytes).map_err(|e| SandboxError::State(path, e.to_string()))
    }

    /// Ready when create finished, every pinned namespace is still mounted and the PID
    /// namespace's holder (if any) still runs.
    pub fn status(&self, id: &str) -> Result<SandboxState> {
        let sandbox = self.get(id)?;
        let pinned = [&sandbox.netns, &sandbox.ipc, &sandbox.uts, &sandbox.pid]
            .into_iter()
            .flatten()
            .all(|p| is_pinned(p));
        let held = sandbox.pid.is_none() || sandbox.pause.as_ref().is_some_and(pause::alive);
        Ok(if sandbox.ready && pinned && held {
            SandboxState::Ready
        } else {
            SandboxState::NotReady
        })
    }

    /// CNI CHECK against the cached ADD result: whether the pod's network is still as ADD
    /// left it (a sandbox on the host network, or not yet networked, has nothing to check).
    pub fn check_network(&self, id: &str) -> Result<()> {
        let sandbox = self.get(id)?;
        match (&sandbox.netns, self.cni_for(&sandbox), &sandbox.cni_result) {
            (Some(_), Some(cni), Some(result)) => Ok(cni.check(&sandbox.attachment(), result)?),
            _ => Ok(()),
        }
    }

    /// Releases host-local leases of the node's network held by no sandbox in the state
    /// directory (their state was lost): for a kubelet's start, after it has removed the
    /// sandboxes it no longer wants. Returns the released IPs.
    pub fn release_orphan_leases(&self) -> Result<Vec<IpAddr>> {
        let Some(dir) = self
            .cni
            .as_ref()
            .and_then(|c| cni::host_local_dir(&c.network))
        else {
            return Ok(vec![]);
        };
        let live = self.list()?;
        Ok(cni::release_orphan_leases(&dir, &|id| {
            live.iter().any(|l| l == id)
        })?)
    }

    /// The ids under the state directory, sorted (a directory without a readable state
    /// file is listed too, so that [`Sandboxes::remove`] can clear it).
    pub fn list(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(SandboxError::Io(self.root.clone(), e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|id| valid_id(id))
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Tears the sandbox down: CNI DEL, unmount the namespaces, delete its directory.
    /// Removing a sandbox that is gone, half-made or whose namespaces were already
    /// unmounted succeeds.
    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.dir(id)?;
        match self.get(id) {
            Ok(sandbox) => self.tear_down(&sandbox),
            Err(SandboxError::NotFound(_)) if !dir.exists() => Ok(()),
            // A directory without usable state (a crash before its first write, a torn
            // file): DEL with the node's network by id alone, which is all host-local
            // needs to release a lease, then unpin whatever namespace files are there.
            Err(SandboxError::NotFound(_)) | Err(SandboxError::State(..)) => {
                let netns = dir.join("ns").join("net");
                if let Some(cni) = &self.cni {
                    let att = Attachment {
                        container_id: id.to_string(),
                        netns: is_pinned(&netns).then(|| netns.clone()),
                        ifname: cni::POD_IFNAME.into(),
                        ..Default::default()
                    };
                    if let Err(e) = cni.del(&att, None) {
                        tracing::warn!(sandbox = id, error = %e, "CNI DEL of a sandbox without state");
                    }
                }
                let pid = dir.join("ns").join("pid");
                pause::stop(None, &pid).map_err(SandboxError::Pause)?;
                for ns in ["net", "ipc", "uts", "pid"] {
                    unpin(&dir.join("ns").join(ns))?;
                }
                remove_dir(&dir)
            }
            Err(e) => Err(e),
        }
    }

    fn tear_down(&self, sandbox: &Sandbox) -> Result<()> {
        // The holder first: its namespace's processes die with it.
        if let Some(pin) = &sandbox.pid {
            pause::stop(sandbox.pause.as_ref(), pin).map_err(SandboxError::Pause)?;
        }
        if let (Some(netns), Some(cni)) = (&sandbox.netns, self.cni_for(sandbox)) {
            let mut att = sandbox.attachment();
            // The spec lets DEL run without a namespace; plugins then release what they
            // can (host-local its lease, portmap its rules).
            if !is_pinned(netns) {
                att.netns = None;
            }
            // On failure the state and the namespace stay for a retried DEL.
            cni.del(&att, sandbox.cni_result.as_ref())?;
        }
        for ns in [&sandbox.netns, &sandbox.ipc, &sandbox.uts, &sandbox.pid]
            .into_iter()
            .flatten()
        {
            unpin(ns)?;
        }
        remove_dir(&self.root.join(&sandbox.id))
    }
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SandboxError::Io(dir.to_path_buf(), e)),
    }
}

/// Whether `path` is a namespace bind mount (nsfs).
pub fn is_pinned(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// Creates new namespaces for each given file and pins them there; the UTS namespace gets
/// `hostname`. A thread of our own does the `unshare` (network, IPC and UTS namespaces
/// are per thread), so the rest of the process is untouched and no child is spawned.
pub fn pin_namespaces(
    net: Option<&Path>,
    ipc: Option<&Path>,
    uts: Option<&Path>,
    hostname: Option<&str>,
) -> Result<()> {
    let wanted: Vec<(&Path, &str, CloneFlags)> = [
        (net, "net", CloneFlags::CLONE_NEWNET),
        (ipc, "ipc", CloneFlags::CLONE_NEWIPC),
        (uts, "uts", CloneFlags::CLONE_NEWUTS),
    ]
    .into_iter()
    .filter_map(|(p, name, flag)| p.map(|p| (p, name, flag)))
    .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    for (path, _, _) in &wanted {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| SandboxError::Io(parent.to_path_buf(), e))?;
        }
        std::fs::File::create(path).map_err(|e| SandboxError::Io(path.to_path_buf(), e))?;
    }
    let flags = wanted
        .iter()
        .fold(CloneFlags::empty(), |f, (_, _, flag)| f | *flag);
    let pinned = std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<(), String> {
                nix::sched::unshare(flags).map_err(|e| format!("unshare: {e}"))?;
                if let (Some(name), Some(_)) = (hostname, uts) {
                    nix::unistd::sethostname(name)
                        .map_err(|e| format!("sethostname {name:?}: {e}"))?;
                }
                for (path, name, _) in &wanted {
                    let src = format!("/proc/thread-self/ns/{name}");
                    nix::mount::mount(
                        Some(src.as_str()),
                        *path,
                        None::<&str>,
                        MsFlags::MS_BIND,
                        None::<&str>,
                    )
                    .map_err(|e| format!("bind mount {src} on {}: {e}", path.display()))?;
                }
                Ok(())
            })
            .join()
            .unwrap_or_else(|_| Err("the pinning thread panicked".into()))
    });
    pinned.map_err(SandboxError::Pin)
}

/// Unmounts a pinned namespace file (lazily: a container still inside keeps it alive
/// until it leaves) and deletes it. Missing or already unmounted files are fine.
pub fn unpin(path: &Path) -> Result<()> {
    // A file pinned twice (a retried create) has two mounts stacked.
    for _ in 0..8 {
        match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => break,
            Err(e) => {
                return Err(SandboxError::Io(
                    path.to_path_buf(),
                    std::io::Error::from(e),
                ))
            }
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SandboxError::Io(path.to_path_buf(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::spec::{build_spec_json, ContainerConfig};
    use serde_json::json;

    fn sandbox(pid: bool) -> Sandbox {
        let ns = |n: &str| Some(PathBuf::from(format!("/sb/p1/ns/{n}")));
        Sandbox {
            id: "p1".into(),
            pod_name: "web".into(),
            pod_namespace: "shop".into(),
            pod_uid: "u1".into(),
            hostname: "web".into(),
            host_network: false,
            host_ipc: false,
            netns: ns("net"),
            ipc: ns("ipc"),
            uts: ns("uts"),
            pid: if pid { ns("pid") } else { None },
            pause: pid.then_some(PauseProcess {
                pid: 42,
                start_ticks: 7,
            }),
            port_mappings: vec![],
            cni_network: None,
            cni_result: None,
            ips: vec![],
            hosts_file: "/sb/p1/hosts".into(),
            resolv_conf: "/sb/p1/resolv.conf".into(),
            hostname_file: "/sb/p1/hostname".into(),
            ready: true,
        }
    }

    fn namespaces_json(s: &Sandbox) -> Value {
        let c = ContainerConfig {
            id: "c1".into(),
            rootfs: "/rootfs".into(),
            args: vec!["sh".into()],
            namespaces: s.namespaces(s.pid_namespace()),
            ..Default::default()
        };
        build_spec_json(&c).expect("spec")["linux"]["namespaces"].clone()
    }

    #[test]
    fn containers_join_the_pinned_pid_namespace_of_a_shared_pid_sandbox() {
        assert_eq!(
            namespaces_json(&sandbox(true)),
            json!([
                {"type": "pid", "path": "/sb/p1/ns/pid"},
                {"type": "ipc", "path": "/sb/p1/ns/ipc"},
                {"type": "uts", "path": "/sb/p1/ns/uts"},
                {"type": "network", "path": "/sb/p1/ns/net"},
                {"type": "mount"},
            ])
        );
    }

    #[test]
    fn without_share_process_namespace_each_container_has_its_own_pid_namespace() {
        assert_eq!(
            namespaces_json(&sandbox(false)),
            json!([
                {"type": "pid"},
                {"type": "ipc", "path": "/sb/p1/ns/ipc"},
                {"type": "uts", "path": "/sb/p1/ns/uts"},
                {"type": "network", "path": "/sb/p1/ns/net"},
                {"type": "mount"},
            ])
        );
    }

    #[test]
    fn the_holder_is_recorded_in_sandbox_json_and_old_state_still_reads() {
        let v = serde_json::to_value(sandbox(true)).expect("json");
        assert_eq!(v["pid"], json!("/sb/p1/ns/pid"));
        assert_eq!(v["pause"], json!({"pid": 42, "startTicks": 7}));
        // A sandbox.json written before the holder existed.
        let mut old = serde_json::to_value(sandbox(false)).expect("json");
        let obj = old.as_object_mut().expect("object");
        obj.remove("pid");
        obj.remove("pause");
        let back: Sandbox = serde_json::from_value(old).expect("old state");
        assert_eq!(back, sandbox(false));
    }
}
