//! A container's description, as the kubelet hands it over, and the OCI `config.json` made
//! from it.
//!
//! [`ContainerConfig`] is modelled on CRI's `ContainerConfig` + `LinuxContainerConfig`: plain
//! data, no Kubernetes API types. [`build_spec`] turns it into an [`oci_spec::runtime::Spec`]
//! the way containerd's CRI plugin does (`internal/cri/server/container_create_linux.go`,
//! `internal/cri/opts/spec_linux.go`, `pkg/oci/spec.go`): the same default mounts, default
//! capability set, masked and read-only paths, privileged handling and cgroup layout.
//!
//! The command is resolved by the caller: `args` is the final argv. [`resolve_command`] is
//! the Kubernetes rule (image entrypoint/cmd vs the pod's `command`/`args`) for the kubelet
//! to use, kept here because it is about the image config, not the pod API.
//!
//! Pure: reads no file, touches no host. Host devices for privileged containers are passed
//! in ([`ContainerConfig::host_devices`]); [`host_devices`] lists them for the caller.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The OCI runtime spec version written into config.json.
pub const OCI_VERSION: &str = "1.0.2-dev";

/// `PATH` when neither the image nor the pod sets one (containerd's default).
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Errors building a spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The description cannot be run (empty command, relative mount target, ...).
    #[error("invalid container config: {0}")]
    Invalid(String),
    /// The JSON we built is not a valid OCI spec (a bug in this module).
    #[error("building the OCI spec")]
    Oci(#[source] serde_json::Error),
}

/// How a namespace is set up for the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum NamespaceMode {
    /// A new namespace of the container's own.
    #[default]
    Private,
    /// Join an existing namespace (the pod sandbox's), e.g. `/proc/<pid>/ns/net` or a
    /// bind-mounted namespace file.
    Path(PathBuf),
    /// The host's namespace (no namespace entry at all).
    Host,
}

/// Which namespaces the container creates or joins. The defaults are a container of its
/// own; the kubelet sets network/ipc/uts to the sandbox's paths, and pid to the sandbox's
/// for `shareProcessNamespace`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Namespaces {
    pub network: NamespaceMode,
    pub ipc: NamespaceMode,
    pub uts: NamespaceMode,
    pub pid: NamespaceMode,
}

/// The process's user (CRI's `LinuxContainerSecurityContext.run_as_user` etc., already
/// resolved to numbers).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UserIds {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// Capabilities added to and dropped from containerd's default set, as Kubernetes writes
/// them (`NET_ADMIN` or `CAP_NET_ADMIN`; `ALL`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CapabilityChanges {
    pub add: Vec<String>,
    pub drop: Vec<String>,
}

/// `securityContext.seccompProfile.type`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Seccomp {
    /// No filter (Kubernetes' default when the field is unset).
    #[default]
    Unconfined,
    /// [`runtime_default_seccomp`]: a deny-list profile.
    RuntimeDefault,
    /// `Localhost`: a profile file in the node's seccomp directory, in the format
    /// containerd and docker read (OCI's `linux.seccomp` fields: `defaultAction`,
    /// `architectures`, `syscalls`...). Relative paths are resolved by the runtime
    /// (`<data-dir>/agent/seccomp/`); the spec is built from an absolute one.
    Localhost(PathBuf),
}

/// The OCI `linux.seccomp` section of a Localhost profile file (docker's format: the OCI
/// fields, plus `archMap`, whose architectures and sub-architectures are taken, and
/// `includes`/`excludes` conditions, which skiff does not evaluate).
pub fn localhost_seccomp(path: &Path) -> Result<Value, SpecError> {
    if !path.is_absolute() {
        return Err(SpecError::Invalid(format!(
            "seccomp profile {path:?} is not resolved to an absolute path"
        )));
    }
    let cannot = |why: String| {
        SpecError::Invalid(format!(
            "cannot load seccomp profile {:?}: {why}",
            path.display().to_string()
        ))
    };
    let text = std::fs::read_to_string(path).map_err(|e| cannot(e.to_string()))?;
    let profile: Value = serde_json::from_str(&text).map_err(|e| cannot(e.to_string()))?;
    let Some(obj) = profile.as_object() else {
        return Err(cannot("not a JSON object".into()));
    };
    let Some(default_action) = obj.get("defaultAction").and_then(Value::as_str) else {
        return Err(cannot("no defaultAction".into()));
    };
    let mut out = json!({"defaultAction": default_action});
    for key in [
        "defaultErrnoRet",
        "listenerPath",
        "listenerMetadata",
        "flags",
    ] {
        if let Some(v) = obj.get(key) {
            out[key] = v.clone();
        }
    }
    let mut arches: Vec<Value> = obj
        .get("architectures")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for entry in obj
        .get("archMap")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(a) = entry.get("architecture") {
            arches.push(a.clone());
        }
        arches.extend(
            entry
                .get("subArchitectures")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        );
    }
    if !arches.is_empty() {
        out["architectures"] = json!(arches);
    }
    let mut syscalls = Vec::new();
    for rule in obj
        .get("syscalls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut names: Vec<Value> = rule
            .get("names")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(name) = rule.get("name") {
            names.push(name.clone());
        }
        let Some(action) = rule.get("action") else {
            return Err(cannot("a syscalls rule has no action".into()));
        };
        if names.is_empty() {
            continue;
        }
        let mut r = json!({"names": names, "action": action});
        for key in ["errnoRet", "args"] {
            if let Some(v) = rule.get(key) {
                r[key] = v.clone();
            }
        }
        syscalls.push(r);
    }
    if !syscalls.is_empty() {
        out["syscalls"] = json!(syscalls);
    }
    Ok(out)
}

/// Mount propagation, as CRI's `MountPropagation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Propagation {
    #[default]
    Private,
    /// `rslave`: host mounts appear in the container.
    HostToContainer,
    /// `rshared`: both ways.
    Bidirectional,
}

/// A bind mount of a host path (volumes, /etc/hosts, /etc/resolv.conf, the termination log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    pub host_path: PathBuf,
    pub container_path: PathBuf,
    pub readonly: bool,
    pub propagation: Propagation,
}

/// A device node made in the container (privileged containers get the host's).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub path: PathBuf,
    /// `c` or `b`.
    pub kind: char,
    pub major: i64,
    pub minor: i64,
    pub file_mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// cgroup limits (CRI's `LinuxContainerResources`), already converted by the kubelet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Resources {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub memory_limit: Option<i64>,
    /// memory + swap; set it only where the host accounts swap (v1 `memory.memsw.*`).
    pub memory_swap_limit: Option<i64>,
    pub pids_limit: Option<i64>,
    /// Clamped at 0: root on some hosts (these test machines) cannot lower it, and a
    /// negative value makes `runc create` fail (containerd's `restrict_oom_score_adj`).
    pub oom_score_adj: i32,
}

/// Everything needed to write one container's config.json.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ContainerConfig {
    /// The container id; the last component of its cgroup path.
    pub id: String,
    /// The root filesystem (the overlay mount made by the image side), absolute.
    pub rootfs: PathBuf,
    /// The final argv (see [`resolve_command`]).
    pub args: Vec<String>,
    /// `NAME=value` entries, image env first, then the pod's (a later entry replaces an
    /// earlier one of the same name). A default `PATH` and `HOSTNAME` come first.
    pub env: Vec<String>,
    /// Empty means `/`.
    pub working_dir: String,
    pub user: UserIds,
    /// The pod's hostname: `HOSTNAME` in the env, and the UTS hostname when the container
    /// has a UTS namespace of its own (a pod's containers join the sandbox's instead).
    pub hostname: Option<String>,
    pub capabilities: CapabilityChanges,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    /// `allowPrivilegeEscalation: false`.
    pub no_new_privileges: bool,
    pub seccomp: Seccomp,
    pub sysctls: BTreeMap<String, String>,
    pub mounts: Vec<BindMount>,
    pub namespaces: Namespaces,
    pub resources: Resources,
    /// The pod's cgroup, absolute from the hierarchy roots (e.g.
    /// `/skiff/burstable/pod<uid>`); the container's is `<parent>/<id>`.
    pub cgroup_parent: String,
    /// Devices made for privileged containers (the host's, listed by the caller).
    pub host_devices: Vec<Device>,
    /// What "all capabilities" means (privileged, `add: [ALL]`): the ones the runtime can
    /// grant, i.e. the caller's bounding set ([`current_capabilities`]; containerd's
    /// `WithAllCurrentCapabilities`). Empty means [`ALL_CAPABILITIES`]. Asking for one the
    /// runtime lacks fails `runc create` ("unable to apply caps: operation not permitted").
    pub host_capabilities: Vec<String>,
    pub annotations: BTreeMap<String, String>,
    /// `tty: true`: the process gets a terminal (`process.terminal`, `TERM=xterm` as
    /// containerd's `WithTTY`); the monitor holds its master.
    #[serde(default)]
    pub terminal: bool,
    /// `stdin: true`: the container has a stdin that `attach` writes to.
    #[serde(default)]
    pub stdin: bool,
    /// `stdinOnce: true`: stdin is closed when the first attach session's input ends.
    #[serde(default)]
    pub stdin_once: bool,
}

/// The Kubernetes rule for the argv: the pod's `command` replaces the image's entrypoint
/// (and then the image's cmd is ignored); the pod's `args` replace the image's cmd.
pub fn resolve_command(
    image_entrypoint: &[String],
    image_cmd: &[String],
    command: &[String],
    args: &[String],
) -> Vec<String> {
    let (entry, rest): (&[String], &[String]) = match (command.is_empty(), args.is_empty()) {
        (false, _) => (command, args),
        (true, false) => (image_entrypoint, args),
        (true, true) => (image_entrypoint, image_cmd),
    };
    entry.iter().chain(rest).cloned().collect()
}

/// containerd's default capability set (`pkg/oci/spec.go` `defaultUnixCaps`).
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability up to Linux 5.9 (`CAP_CHECKPOINT_RESTORE`); runc and crun skip the ones
/// the running kernel does not know.
pub const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// containerd's masked paths (`pkg/oci/spec.go`).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
    "/sys/devices/virtual/powercap",
];

/// containerd's read-only paths.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn cap_name(name: &str) -> String {
    let upper = name.trim().to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// The capability set after `add`/`drop`, in containerd's order: `ALL` in add gives every
/// capability, `ALL` in drop empties the set, then the single adds, then the single drops
/// (so `add: [ALL], drop: [CHOWN]` is everything but CAP_CHOWN).
pub fn effective_capabilities(
    changes: &CapabilityChanges,
    privileged: bool,
    host: &[String],
) -> BTreeSet<String> {
    let all = || -> BTreeSet<String> {
        if host.is_empty() {
            ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect()
        } else {
            host.iter().cloned().collect()
        }
    };
    if privileged {
        return all();
    }
    let is_all = |c: &String| c.trim().eq_ignore_ascii_case("ALL");
    let mut set: BTreeSet<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
    if changes.add.iter().any(is_all) {
        set = all();
    }
    if changes.drop.iter().any(is_all) {
        set.clear();
    }
    for c in changes.add.iter().filter(|c| !is_all(c)) {
        set.insert(cap_name(c));
    }
    for c in changes.drop.iter().filter(|c| !is_all(c)) {
        set.remove(&cap_name(c));
    }
    set
}

/// The syscalls the RuntimeDefault profile refuses with EPERM, each unless the container
/// holds the capability named beside it (as Docker's and containerd's default profiles grant
/// them with `includes.caps`).
///
/// This is a deny-list: everything not listed is allowed. containerd's default profile is
/// an allow-list of ~350 syscalls with argument filters; this one blocks the same dangerous
/// families (kernel modules, kexec, reboot, clock setting, mounts and namespaces, keyrings,
/// bpf/perf, process_vm_*, open_by_handle_at, swap, quotas, obsolete syscalls) but not new
/// syscalls a future kernel adds, and it does not filter `clone`/`unshare` flags or
/// `personality` arguments. Documented as the trade-off of a small, readable profile.
pub const SECCOMP_DENY: &[(&str, Option<&str>)] = &[
    ("acct", Some("CAP_SYS_PACCT")),
    ("add_key", None),
    ("bpf", Some("CAP_SYS_ADMIN")),
    ("clock_adjtime", Some("CAP_SYS_TIME")),
    ("clock_settime", Some("CAP_SYS_TIME")),
    ("create_module", None),
    ("delete_module", Some("CAP_SYS_MODULE")),
    ("finit_module", Some("CAP_SYS_MODULE")),
    ("fsconfig", Some("CAP_SYS_ADMIN")),
    ("fsmount", Some("CAP_SYS_ADMIN")),
    ("fsopen", Some("CAP_SYS_ADMIN")),
    ("fspick", Some("CAP_SYS_ADMIN")),
    ("get_kernel_syms", None),
    ("get_mempolicy", Some("CAP_SYS_NICE")),
    ("init_module", Some("CAP_SYS_MODULE")),
    ("ioperm", Some("CAP_SYS_RAWIO")),
    ("iopl", Some("CAP_SYS_RAWIO")),
    ("kcmp", Some("CAP_SYS_PTRACE")),
    ("kexec_file_load", Some("CAP_SYS_BOOT")),
    ("kexec_load", Some("CAP_SYS_BOOT")),
    ("keyctl", None),
    ("lookup_dcookie", Some("CAP_SYS_ADMIN")),
    ("mbind", Some("CAP_SYS_NICE")),
    ("mount", Some("CAP_SYS_ADMIN")),
    ("mount_setattr", Some("CAP_SYS_ADMIN")),
    ("move_mount", Some("CAP_SYS_ADMIN")),
    ("move_pages", Some("CAP_SYS_NICE")),
    ("name_to_handle_at", Some("CAP_SYS_ADMIN")),
    ("nfsservctl", None),
    ("open_by_handle_at", Some("CAP_DAC_READ_SEARCH")),
    ("open_tree", Some("CAP_SYS_ADMIN")),
    ("perf_event_open", Some("CAP_PERFMON")),
    ("pivot_root", Some("CAP_SYS_ADMIN")),
    ("process_vm_readv", Some("CAP_SYS_PTRACE")),
    ("process_vm_writev", Some("CAP_SYS_PTRACE")),
    ("query_module", None),
    ("quotactl", Some("CAP_SYS_ADMIN")),
    ("reboot", Some("CAP_SYS_BOOT")),
    ("request_key", None),
    ("set_mempolicy", Some("CAP_SYS_NICE")),
    ("setns", Some("CAP_SYS_ADMIN")),
    ("settimeofday", Some("CAP_SYS_TIME")),
    ("stime", Some("CAP_SYS_TIME")),
    ("swapoff", Some("CAP_SYS_ADMIN")),
    ("swapon", Some("CAP_SYS_ADMIN")),
    ("syslog", Some("CAP_SYSLOG")),
    ("sysfs", None),
    ("_sysctl", None),
    ("umount", Some("CAP_SYS_ADMIN")),
    ("umount2", Some("CAP_SYS_ADMIN")),
    ("unshare", Some("CAP_SYS_ADMIN")),
    ("uselib", None),
    ("userfaultfd", None),
    ("ustat", None),
    ("vhangup", Some("CAP_SYS_TTY_CONFIG")),
    ("vm86", None),
    ("vm86old", None),
];

/// The RuntimeDefault seccomp section for a container with capabilities `caps`.
pub fn runtime_default_seccomp(caps: &BTreeSet<String>) -> Value {
    let names: Vec<&str> = SECCOMP_DENY
        .iter()
        .filter(|(_, cap)| cap.is_none_or(|c| !caps.contains(c)))
        .map(|(name, _)| *name)
        .collect();
    let arches = if cfg!(target_arch = "aarch64") {
        json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
    } else {
        json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
    };
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": arches,
        "syscalls": [{"names": names, "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
    })
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": typ, "source": source, "options": options})
}

/// The default mounts of a CRI container, in containerd's order (its defaults minus `/run`,
/// then the cgroup filesystem, read-only unless privileged).
pub fn default_mounts(privileged: bool) -> Vec<Value> {
    let ro = if privileged { "rw" } else { "ro" };
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", ro]),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", ro],
        ),
    ]
}

fn path_str(p: &Path) -> Result<&str, SpecError> {
    p.to_str()
        .ok_or_else(|| SpecError::Invalid(format!("path {} is not UTF-8", p.display())))
}

fn bind_mount(m: &BindMount) -> Result<Value, SpecError> {
    let dest = path_str(&m.container_path)?;
    if !dest.starts_with('/') {
        return Err(SpecError::Invalid(format!(
            "mount target {dest} is not absolute"
        )));
    }
    let mut options = vec!["rbind"];
    options.push(match m.propagation {
        Propagation::Private => "rprivate",
        Propagation::HostToContainer => "rslave",
        Propagation::Bidirectional => "rshared",
    });
    options.push(if m.readonly { "ro" } else { "rw" });
    Ok(mount(dest, "bind", path_str(&m.host_path)?, &options))
}

fn namespace(typ: &str, mode: &NamespaceMode) -> Result<Option<Value>, SpecError> {
    Ok(match mode {
        NamespaceMode::Private => Some(json!({"type": typ})),
        NamespaceMode::Path(p) => Some(json!({"type": typ, "path": path_str(p)?})),
        NamespaceMode::Host => None,
    })
}

/// The OCI spec for `c`. Pure.
pub fn build_spec(c: &ContainerConfig) -> Result<Spec, SpecError> {
    serde_json::from_value(build_spec_json(c)?).map_err(SpecError::Oci)
}

/// [`build_spec`] as JSON (what is written to config.json).
pub fn build_spec_json(c: &ContainerConfig) -> Result<Value, SpecError> {
    if c.args.is_empty() {
        return Err(SpecError::Invalid("no command specified".into()));
    }
    if c.id.is_empty() || c.id.contains('/') {
        return Err(SpecError::Invalid(format!("bad container id {:?}", c.id)));
    }
    let caps: Vec<String> =
        effective_capabilities(&c.capabilities, c.privileged, &c.host_capabilities)
            .into_iter()
            .collect();
    // containerd's order: the default PATH, TERM with a tty, HOSTNAME, then the given entries, each
    // replacing an earlier one of the same name in place (oci.WithEnv).
    let mut env: Vec<String> = vec![DEFAULT_PATH_ENV.to_string()];
    if c.terminal {
        env.push("TERM=xterm".to_string());
    }
    if let Some(h) = &c.hostname {
        env.push(format!("HOSTNAME={h}"));
    }
    for e in &c.env {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        match env
            .iter_mut()
            .find(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) == key)
        {
            Some(slot) => *slot = e.clone(),
            None => env.push(e.clone()),
        }
    }
    let cwd = if c.working_dir.is_empty() {
        "/"
    } else {
        c.working_dir.as_str()
    };
    let mut process = json!({
        "terminal": c.terminal,
        "user": {"uid": c.user.uid, "gid": c.user.gid},
        "args": c.args,
        "env": env,
        "cwd": cwd,
        "capabilities": {
            "bounding": caps, "effective": caps, "permitted": caps,
        },
        "noNewPrivileges": c.no_new_privileges,
        "oomScoreAdj": c.resources.oom_score_adj.max(0),
    });
    if !c.user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(c.user.additional_gids);
    }

    // User mounts replace default mounts at the same destination (the sandbox's /dev/shm,
    // say) and are sorted by depth, so a mount never hides a deeper one (containerd's
    // WithMounts).
    let mut user_mounts: Vec<(usize, Value)> = Vec::new();
    for m in &c.mounts {
        let depth = m.container_path.components().count();
        user_mounts.push((depth, bind_mount(m)?));
    }
    user_mounts.sort_by_key(|(depth, _)| *depth);
    let taken: BTreeSet<String> = user_mounts
        .iter()
        .filter_map(|(_, m)| m["destination"].as_str().map(str::to_string))
        .collect();
    // A supplied /dev replaces every default mount under it too.
    let dev_taken = taken.contains("/dev");
    let mut mounts: Vec<Value> = default_mounts(c.privileged)
        .into_iter()
        .filter(|m| {
            m["destination"]
                .as_str()
                .is_none_or(|d| !(taken.contains(d) || dev_taken && d.starts_with("/dev/")))
        })
        .collect();
    mounts.extend(user_mounts.into_iter().map(|(_, m)| m));

    let mut namespaces = Vec::new();
    for (typ, mode) in [
        ("pid", &c.namespaces.pid),
        ("ipc", &c.namespaces.ipc),
        ("uts", &c.namespaces.uts),
        ("network", &c.namespaces.network),
    ] {
        namespaces.extend(namespace(typ, mode)?);
    }
    namespaces.push(json!({"type": "mount"}));

    let r = &c.resources;
    let mut cpu = serde_json::Map::new();
    if let Some(v) = r.cpu_shares {
        cpu.insert("shares".into(), json!(v));
    }
    if let Some(v) = r.cpu_quota {
        cpu.insert("quota".into(), json!(v));
    }
    if let Some(v) = r.cpu_period {
        cpu.insert("period".into(), json!(v));
    }
    let mut memory = serde_json::Map::new();
    if let Some(v) = r.memory_limit {
        memory.insert("limit".into(), json!(v));
    }
    if let Some(v) = r.memory_swap_limit {
        memory.insert("swap".into(), json!(v));
    }
    let devices_rules = if c.privileged {
        json!([{"allow": true, "access": "rwm"}])
    } else {
        json!([{"allow": false, "access": "rwm"}])
    };
    let mut resources = json!({"devices": devices_rules});
    if !cpu.is_empty() {
        resources["cpu"] = Value::Object(cpu);
    }
    if !memory.is_empty() {
        resources["memory"] = Value::Object(memory);
    }
    if let Some(v) = r.pids_limit {
        resources["pids"] = json!({"limit": v});
    }

    let parent = c.cgroup_parent.trim_end_matches('/');
    let cgroups_path = if parent.is_empty() {
        format!("/{}", c.id)
    } else if parent.starts_with('/') {
        format!("{parent}/{}", c.id)
    } else {
        format!("/{parent}/{}", c.id)
    };

    let mut linux = json!({
        "resources": resources,
        "cgroupsPath": cgroups_path,
        "namespaces": namespaces,
    });
    if !c.sysctls.is_empty() {
        linux["sysctl"] = json!(c.sysctls);
    }
    if c.privileged {
        let devices: Vec<Value> = c
            .host_devices
            .iter()
            .map(|d| {
                Ok(json!({
                    "path": path_str(&d.path)?, "type": d.kind.to_string(),
                    "major": d.major, "minor": d.minor, "fileMode": d.file_mode,
                    "uid": d.uid, "gid": d.gid,
                }))
            })
            .collect::<Result<_, SpecError>>()?;
        if !devices.is_empty() {
            linux["devices"] = json!(devices);
        }
    } else {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        match &c.seccomp {
            Seccomp::Unconfined => {}
            Seccomp::RuntimeDefault => {
                let set: BTreeSet<String> = caps.iter().cloned().collect();
                linux["seccomp"] = runtime_default_seccomp(&set);
            }
            Seccomp::Localhost(path) => linux["seccomp"] = localhost_seccomp(path)?,
        }
    }

    let mut spec = json!({
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": path_str(&c.rootfs)?, "readonly": c.readonly_rootfs},
        "mounts": mounts,
        "linux": linux,
    });
    // Only a container with a UTS namespace of its own sets its hostname; one that joins
    // the sandbox's has the sandbox's (runc refuses to set it there), and keeps HOSTNAME.
    if let (Some(h), NamespaceMode::Private) = (&c.hostname, &c.namespaces.uts) {
        spec["hostname"] = json!(h);
    }
    if !c.annotations.is_empty() {
        spec["annotations"] = json!(c.annotations);
    }
    Ok(spec)
}

/// The capabilities in this process's bounding set (`CapBnd` of /proc/self/status), by
/// name: what a runtime started by it can grant.
pub fn current_capabilities() -> std::io::Result<Vec<String>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(str::trim)
        .ok_or_else(|| std::io::Error::other("no CapBnd in /proc/self/status"))?;
    let bits = u64::from_str_radix(hex, 16).map_err(std::io::Error::other)?;
    Ok(capabilities_from_mask(bits))
}

/// The names of the capabilities set in `mask` (bit n = capability n); bits past the
/// ones we know are left out.
pub fn capabilities_from_mask(mask: u64) -> Vec<String> {
    ALL_CAPABILITIES
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// The host's device nodes under `/dev` (not /dev/pts, /dev/shm, /dev/mqueue), for a
/// privileged container's [`ContainerConfig::host_devices`] (containerd's
/// `WithHostDevices`). The one function here that reads the host.
pub fn host_devices(dev: &Path) -> std::io::Result<Vec<Device>> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut dirs = vec![dev.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                let skip = ["pts", "shm", "mqueue"].iter().any(|s| path == dev.join(s));
                if !skip {
                    dirs.push(path);
                }
                continue;
            }
            let kind = if ft.is_char_device() {
                'c'
            } else if ft.is_block_device() {
                'b'
            } else {
                continue;
            };
            let rdev = meta.rdev();
            out.push(Device {
                path: Path::new("/dev").join(path.strip_prefix(dev).unwrap_or(&path)),
                kind,
                major: i64::from(rustix::fs::major(rdev)),
                minor: i64::from(rustix::fs::minor(rdev)),
                file_mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Writes `config.json` for `c` into `bundle` (which must exist).
pub fn write_config(bundle: &Path, c: &ContainerConfig) -> Result<(), std::io::Error> {
    let spec = build_spec_json(c).map_err(std::io::Error::other)?;
    // Typed check first: a spec oci-spec cannot read is a bug here, not runc's to find.
    let _: Spec = serde_json::from_value(spec.clone()).map_err(std::io::Error::other)?;
    let bytes = serde_json::to_vec_pretty(&spec).map_err(std::io::Error::other)?;
    std::fs::write(bundle.join("config.json"), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ContainerConfig {
        ContainerConfig {
            id: "c1".into(),
            rootfs: "/var/lib/skiff/rootfs/c1".into(),
            args: vec!["/bin/sh".into(), "-c".into(), "echo hi".into()],
            env: vec!["A=1".into()],
            cgroup_parent: "/skiff/besteffort/pod123".into(),
            ..Default::default()
        }
    }

    /// Spec JSON through the typed `Spec` and back, with the capability sets sorted (they
    /// are hash sets in oci-spec, so their order is not stable).
    fn render(c: &ContainerConfig) -> Value {
        let spec = build_spec(c).expect("spec");
        let mut v = serde_json::to_value(&spec).expect("json");
        if let Some(caps) = v["process"]["capabilities"].as_object_mut() {
            for set in caps.values_mut() {
                if let Some(a) = set.as_array_mut() {
                    a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
                }
            }
        }
        v
    }

    fn sorted(caps: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = caps.iter().map(|c| c.to_string()).collect();
        v.sort();
        v
    }

    fn default_mounts_json(sys: &str) -> Value {
        json!([
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", sys]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", sys]},
        ])
    }

    #[test]
    fn minimal_container_snapshot() {
        let caps = sorted(DEFAULT_CAPABILITIES);
        let expected = json!({
            "ociVersion": "1.0.2-dev",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": ["/bin/sh", "-c", "echo hi"],
                "env": [DEFAULT_PATH_ENV, "A=1"],
                "cwd": "/",
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
                "noNewPrivileges": false,
                "oomScoreAdj": 0,
            },
            "root": {"path": "/var/lib/skiff/rootfs/c1", "readonly": false},
            "mounts": default_mounts_json("ro"),
            "linux": {
                "resources": {"devices": [{"allow": false, "access": "rwm"}]},
                "cgroupsPath": "/skiff/besteffort/pod123/c1",
                "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}, {"type": "mount"}],
                "maskedPaths": MASKED_PATHS,
                "readonlyPaths": READONLY_PATHS,
            },
        });
        assert_eq!(render(&base()), expected);
    }

    #[test]
    fn a_tty_container_gets_a_terminal_and_term_xterm_before_the_hostname() {
        let mut c = base();
        c.terminal = true;
        c.hostname = Some("web-0".into());
        c.env = vec!["TERM=vt100".into(), "A=1".into()];
        let v = render(&c);
        assert_eq!(v["process"]["terminal"], json!(true));
        // As containerd's WithTTY: TERM=xterm after PATH; the pod's own TERM replaces it.
        assert_eq!(
            v["process"]["env"],
            json!([DEFAULT_PATH_ENV, "TERM=vt100", "HOSTNAME=web-0", "A=1"])
        );
        c.env = vec![];
        let v = render(&c);
        assert_eq!(
            v["process"]["env"],
            json!([DEFAULT_PATH_ENV, "TERM=xterm", "HOSTNAME=web-0"])
        );
    }

    #[test]
    fn pod_container_snapshot() {
        let mut c = base();
        c.working_dir = "/work".into();
        c.env = vec!["PATH=/bin".into(), "B=2".into(), "B=3".into()];
        c.user = UserIds {
            uid: 1000,
            gid: 1000,
            additional_gids: vec![10, 20],
        };
        c.hostname = Some("web-0".into());
        c.capabilities = CapabilityChanges {
            add: vec!["NET_ADMIN".into()],
            drop: vec!["CAP_KILL".into(), "mknod".into()],
        };
        c.readonly_rootfs = true;
        c.no_new_privileges = true;
        c.sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
        c.mounts = vec![
            BindMount {
                host_path: "/pods/p/volumes/data/sub".into(),
                container_path: "/data/sub".into(),
                readonly: false,
                propagation: Propagation::HostToContainer,
            },
            BindMount {
                host_path: "/pods/p/shm".into(),
                container_path: "/dev/shm".into(),
                readonly: false,
                propagation: Propagation::Private,
            },
            BindMount {
                host_path: "/pods/p/volumes/data".into(),
                container_path: "/data".into(),
                readonly: true,
                propagation: Propagation::Bidirectional,
            },
        ];
        c.namespaces = Namespaces {
            network: NamespaceMode::Path("/proc/42/ns/net".into()),
            ipc: NamespaceMode::Path("/proc/42/ns/ipc".into()),
            uts: NamespaceMode::Path("/proc/42/ns/uts".into()),
            pid: NamespaceMode::Path("/proc/42/ns/pid".into()),
        };
        c.resources = Resources {
            cpu_shares: Some(256),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            memory_limit: Some(64 << 20),
            memory_swap_limit: None,
            pids_limit: Some(100),
            oom_score_adj: -998,
        };
        let mut caps: Vec<&str> = DEFAULT_CAPABILITIES
            .iter()
            .copied()
            .filter(|c| *c != "CAP_KILL" && *c != "CAP_MKNOD")
            .collect();
        caps.push("CAP_NET_ADMIN");
        let caps = sorted(&caps);
        let mut mounts = default_mounts_json("ro");
        let mounts_arr = mounts.as_array_mut().expect("array");
        mounts_arr.retain(|m| m["destination"] != "/dev/shm");
        mounts_arr.extend([
            json!({"destination": "/data", "type": "bind", "source": "/pods/p/volumes/data", "options": ["rbind", "rshared", "ro"]}),
            json!({"destination": "/data/sub", "type": "bind", "source": "/pods/p/volumes/data/sub", "options": ["rbind", "rslave", "rw"]}),
            json!({"destination": "/dev/shm", "type": "bind", "source": "/pods/p/shm", "options": ["rbind", "rprivate", "rw"]}),
        ]);
        let expected = json!({
            "ociVersion": "1.0.2-dev",
            "process": {
                "terminal": false,
                "user": {"uid": 1000, "gid": 1000, "additionalGids": [10, 20]},
                "args": ["/bin/sh", "-c", "echo hi"],
                "env": ["PATH=/bin", "HOSTNAME=web-0", "B=3"],
                "cwd": "/work",
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
                "noNewPrivileges": true,
                "oomScoreAdj": 0,
            },
            "root": {"path": "/var/lib/skiff/rootfs/c1", "readonly": true},
            "mounts": mounts,
            "linux": {
                "resources": {
                    "devices": [{"allow": false, "access": "rwm"}],
                    "cpu": {"shares": 256, "quota": 50000, "period": 100000},
                    "memory": {"limit": 67108864},
                    "pids": {"limit": 100},
                },
                "cgroupsPath": "/skiff/besteffort/pod123/c1",
                "namespaces": [
                    {"type": "pid", "path": "/proc/42/ns/pid"},
                    {"type": "ipc", "path": "/proc/42/ns/ipc"},
                    {"type": "uts", "path": "/proc/42/ns/uts"},
                    {"type": "network", "path": "/proc/42/ns/net"},
                    {"type": "mount"},
                ],
                "sysctl": {"net.ipv4.ip_forward": "1"},
                "maskedPaths": MASKED_PATHS,
                "readonlyPaths": READONLY_PATHS,
            },
        });
        assert_eq!(render(&c), expected);
    }

    #[test]
    fn privileged_snapshot() {
        let mut c = base();
        c.privileged = true;
        c.seccomp = Seccomp::RuntimeDefault; // ignored: privileged is unconfined
        c.namespaces.network = NamespaceMode::Host;
        c.host_devices = vec![Device {
            path: "/dev/fuse".into(),
            kind: 'c',
            major: 10,
            minor: 229,
            file_mode: 0o666,
            uid: 0,
            gid: 0,
        }];
        let caps = sorted(ALL_CAPABILITIES);
        let expected = json!({
            "ociVersion": "1.0.2-dev",
            "process": {
                "terminal": false,
                "user": {"uid": 0, "gid": 0},
                "args": ["/bin/sh", "-c", "echo hi"],
                "env": [DEFAULT_PATH_ENV, "A=1"],
                "cwd": "/",
                "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
                "noNewPrivileges": false,
                "oomScoreAdj": 0,
            },
            "root": {"path": "/var/lib/skiff/rootfs/c1", "readonly": false},
            "mounts": default_mounts_json("rw"),
            "linux": {
                "resources": {"devices": [{"allow": true, "access": "rwm"}]},
                "cgroupsPath": "/skiff/besteffort/pod123/c1",
                "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
                "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}],
            },
        });
        assert_eq!(render(&c), expected);
    }

    #[test]
    fn localhost_seccomp_profiles_in_docker_format_become_oci() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.json");
        std::fs::write(
            &path,
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
                "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                             {"name": "mkdir", "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
        )
        .expect("write");
        let mut c = base();
        c.seccomp = Seccomp::Localhost(path.clone());
        let v = build_spec_json(&c).expect("spec");
        assert_eq!(
            v["linux"]["seccomp"],
            json!({
                "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
                "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                             {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
            })
        );
        c.seccomp = Seccomp::Localhost(dir.path().join("missing.json"));
        let e = build_spec_json(&c).unwrap_err().to_string();
        assert!(
            e.contains("cannot load seccomp profile") && e.contains("missing.json"),
            "{e}"
        );
        c.seccomp = Seccomp::Localhost("relative.json".into());
        assert!(build_spec_json(&c).is_err());
        std::fs::write(&path, "{\"syscalls\": []}").expect("write");
        c.seccomp = Seccomp::Localhost(path);
        assert!(build_spec_json(&c)
            .unwrap_err()
            .to_string()
            .contains("no defaultAction"));
    }

    #[test]
    fn runtime_default_seccomp_lets_capabilities_unlock_their_syscalls() {
        let mut c = base();
        c.seccomp = Seccomp::RuntimeDefault;
        let v = render(&c);
        let names = |v: &Value| -> Vec<String> {
            v["linux"]["seccomp"]["syscalls"][0]["names"]
                .as_array()
                .expect("names")
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        };
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ALLOW");
        assert_eq!(
            v["linux"]["seccomp"]["syscalls"][0]["action"],
            "SCMP_ACT_ERRNO"
        );
        let denied = names(&v);
        assert!(denied.contains(&"mount".to_string()));
        assert!(denied.contains(&"kexec_load".to_string()));
        assert!(!denied.contains(&"read".to_string()));
        c.capabilities.add = vec!["SYS_ADMIN".into()];
        let denied = names(&render(&c));
        assert!(!denied.contains(&"mount".to_string()));
        assert!(denied.contains(&"kexec_load".to_string()));
    }

    #[test]
    fn capability_all_rules_follow_containerd() {
        let all_but_chown = effective_capabilities(
            &CapabilityChanges {
                add: vec!["ALL".into()],
                drop: vec!["CHOWN".into()],
            },
            false,
            &[],
        );
        assert_eq!(all_but_chown.len(), ALL_CAPABILITIES.len() - 1);
        assert!(!all_but_chown.contains("CAP_CHOWN"));
        let only_net_bind = effective_capabilities(
            &CapabilityChanges {
                add: vec!["NET_BIND_SERVICE".into()],
                drop: vec!["all".into()],
            },
            false,
            &[],
        );
        assert_eq!(
            only_net_bind.into_iter().collect::<Vec<_>>(),
            vec!["CAP_NET_BIND_SERVICE"]
        );
    }

    #[test]
    fn command_resolution_is_the_kubernetes_rule() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (ep, cmd) = (s(&["/entry"]), s(&["arg0"]));
        assert_eq!(resolve_command(&ep, &cmd, &[], &[]), s(&["/entry", "arg0"]));
        assert_eq!(
            resolve_command(&ep, &cmd, &[], &s(&["x"])),
            s(&["/entry", "x"])
        );
        assert_eq!(
            resolve_command(&ep, &cmd, &s(&["/bin/sh"]), &[]),
            s(&["/bin/sh"])
        );
        assert_eq!(
            resolve_command(&ep, &cmd, &s(&["/bin/sh"]), &s(&["-c"])),
            s(&["/bin/sh", "-c"])
        );
    }

    #[test]
    fn all_means_the_hosts_capabilities_when_given() {
        // 0x...a80425fb is containerd's default set, bit for bit.
        let mut default: Vec<String> = DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect();
        default.sort();
        let mut from_mask = capabilities_from_mask(0xa80425fb);
        from_mask.sort();
        assert_eq!(from_mask, default);
        let host = capabilities_from_mask(0x3fffffffff & !(1 << 21)); // no CAP_SYS_ADMIN
        let privileged = effective_capabilities(&CapabilityChanges::default(), true, &host);
        assert_eq!(privileged.len(), 37);
        assert!(!privileged.contains("CAP_SYS_ADMIN"));
        assert!(current_capabilities()
            .expect("CapBnd")
            .contains(&"CAP_CHOWN".to_string()));
    }

    #[test]
    fn host_devices_include_dev_null() {
        let devs = host_devices(Path::new("/dev")).expect("read /dev");
        let null = devs
            .iter()
            .find(|d| d.path == Path::new("/dev/null"))
            .expect("/dev/null");
        assert_eq!((null.kind, null.major, null.minor), ('c', 1, 3));
        assert!(!devs.iter().any(|d| d.path.starts_with("/dev/pts")));
    }

    #[test]
    fn a_supplied_dev_replaces_every_default_mount_under_it() {
        let mut c = base();
        c.mounts.push(BindMount {
            host_path: "/host/dev".into(),
            container_path: "/dev".into(),
            readonly: false,
            propagation: Propagation::Private,
        });
        let v = render(&c);
        let dests: Vec<&str> = v["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .filter_map(|m| m["destination"].as_str())
            .collect();
        assert_eq!(dests, vec!["/proc", "/sys", "/sys/fs/cgroup", "/dev"]);
    }

    #[test]
    fn bad_configs_are_refused() {
        let mut c = base();
        c.args.clear();
        assert!(matches!(build_spec(&c), Err(SpecError::Invalid(_))));
        let mut c = base();
        c.mounts.push(BindMount {
            host_path: "/x".into(),
            container_path: "relative".into(),
            readonly: false,
            propagation: Propagation::Private,
        });
        assert!(matches!(build_spec(&c), Err(SpecError::Invalid(_))));
    }
}
