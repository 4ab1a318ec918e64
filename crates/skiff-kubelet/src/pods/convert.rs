//! A pod's container turned into the runtime's [`ContainerConfig`]: what CRI's
//! `CreateContainer` carries in upstream.
//!
//! Upstream: `pkg/kubelet/kuberuntime/kuberuntime_container.go` (`generateContainerConfig`:
//! command and args expanded with the container's env, working dir, mounts, termination
//! message path), `kuberuntime_container_linux.go` (`generateLinuxContainerConfig`:
//! resources, cgroup parent, security context), `security_context.go` +
//! `pkg/securitycontext/util.go` (`DetermineEffectiveSecurityContext`,
//! `AddNoNewPrivileges`), `security_context_others.go` (`verifyRunAsNonRoot`),
//! `kuberuntime_sandbox.go` (namespace options: hostNetwork/hostIPC/hostPID,
//! `shareProcessNamespace`), `kubelet_pods.go` (`GeneratePodHostNameAndDomain`) and
//! containerd's `WithUser`/`WithUserID`/`WithAdditionalGIDs` for the image's `USER`.
//!
//! Inputs the kubelet prepares with I/O (the rootfs, the sandbox's namespace paths, volume
//! and /etc/hosts mounts, the termination-log file, the image's /etc/passwd) are passed in;
//! nothing here touches the host.
//!
//! `allowPrivilegeEscalation` follows the kubelet, not API validation: no_new_privs only
//! when it is explicitly `false` (`AddNoNewPrivileges`); validation already refuses `false`
//! together with `privileged` or `CAP_SYS_ADMIN`.
//!
//! Not here: user namespaces, SELinux/AppArmor,
//! the image user's supplementary groups from /etc/group (containerd adds them; only the
//! pod's `fsGroup` and `supplementalGroups` are added here), procMount, devices.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Container, Pod, SeccompProfile};
use skiff_runtime::container::spec::{
    resolve_command, BindMount, CapabilityChanges, ContainerConfig, Device, NamespaceMode,
    Namespaces, Propagation, Seccomp, UserIds,
};
use skiff_runtime::image::manifest::ImageConfig;

use super::env::{expand, make_environment, EnvError, EnvInputs};
use super::qos::pod_cgroup_parent;
use super::resources::container_resources;

/// `terminationMessagePath` when the pod does not set one (the API's default).
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// Why a container cannot be configured: the kubelet reports these as
/// `CreateContainerConfigError` with the message as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error(transparent)]
    Env(#[from] EnvError),
    /// The image's `USER` is a name, and no /etc/passwd lookup was given to resolve it.
    #[error("image user {0:?} is not numeric and the image's /etc/passwd was not read")]
    NamedUserWithoutLookup(String),
    /// containerd's message for a user missing from the image's /etc/passwd.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    #[error("container's runAsUser breaks non-root policy (pod: {pod:?}, container: {container})")]
    RunAsUserRoot { pod: String, container: String },
    #[error("container has runAsNonRoot and image will run as root (pod: {pod:?}, container: {container})")]
    ImageRunsAsRoot { pod: String, container: String },
    #[error("container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root (pod: {pod:?}, container: {container})")]
    NonNumericUser {
        user: String,
        pod: String,
        container: String,
    },
    #[error("invalid localhost seccomp profile {0:?}: a relative path without '..' is required")]
    LocalhostSeccomp(String),
}

/// The image's /etc/passwd and /etc/group, read by the caller from the rootfs.
pub trait UserLookup {
    /// A user's uid and primary gid, by name.
    fn user_by_name(&self, name: &str) -> Option<(u32, u32)>;
    /// A uid's primary gid.
    fn primary_gid(&self, uid: u32) -> Option<u32>;
    /// A group's gid, by name.
    fn group_by_name(&self, name: &str) -> Option<u32>;
}

/// The sandbox's namespaces, as paths the container joins (`None`: the runtime makes a
/// private one, as for a pod without a pinned pid namespace).
#[derive(Clone, Debug, Default)]
pub struct SandboxNamespaces {
    pub network: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
    /// Joined for `shareProcessNamespace: true`.
    pub pid: Option<PathBuf>,
}

/// Everything besides the pod, the container and the image that goes into the config.
pub struct ContainerInputs<'a> {
    pub id: String,
    pub rootfs: PathBuf,
    pub env: EnvInputs<'a>,
    pub sandbox: SandboxNamespaces,
    /// Volume mounts, /etc/hosts, /etc/resolv.conf: made by the caller.
    pub mounts: Vec<BindMount>,
    /// The host file behind `terminationMessagePath` (per container instance).
    pub termination_log: Option<PathBuf>,
    /// The node's memory in bytes (`oom_score_adj` of Burstable containers).
    pub memory_capacity: i64,
    /// For `hostname` with `setHostnameAsFQDN`.
    pub cluster_domain: &'a str,
    pub users: Option<&'a dyn UserLookup>,
    pub host_devices: Vec<Device>,
    pub host_capabilities: Vec<String>,
    pub annotations: BTreeMap<String, String>,
}

/// The config, and the `envFrom` keys skipped (for a warning event).
#[derive(Clone, Debug)]
pub struct Converted {
    pub config: ContainerConfig,
    pub skipped_env: Vec<String>,
}

/// Upstream's `format.Pod`: `name_namespace(uid)`.
pub fn pod_desc(pod: &Pod) -> String {
    let m = &pod.metadata;
    format!(
        "{}_{}({})",
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or_default(),
        m.uid.as_deref().unwrap_or_default()
    )
}

/// The pod's hostname (upstream's `GeneratePodHostNameAndDomain`): `spec.hostname` or the
/// pod's name cut to 63 characters (without a trailing `-` or `.`), as an FQDN with
/// `setHostnameAsFQDN` and a subdomain. `None` for host-network pods (the node's).
pub fn pod_hostname(pod: &Pod, cluster_domain: &str) -> Option<String> {
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.host_network) == Some(true) {
        return None;
    }
    let mut name = match spec
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
    {
        Some(h) => h.to_owned(),
        None => {
            let n = pod.metadata.name.as_deref().unwrap_or_default();
            let cut: String = n.chars().take(63).collect();
            cut.trim_end_matches(['-', '.']).to_owned()
        }
    };
    let subdomain = spec
        .and_then(|s| s.subdomain.as_deref())
        .filter(|s| !s.is_empty());
    if let (Some(sub), Some(true)) = (subdomain, spec.and_then(|s| s.set_hostname_as_fqdn)) {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        name = format!("{name}.{sub}.{ns}.svc.{cluster_domain}");
    }
    Some(name)
}

fn seccomp(profile: Option<&SeccompProfile>) -> Result<Option<Seccomp>, ConvertError> {
    match profile.map(|p| p.type_.as_str()) {
        None => Ok(None),
        Some("RuntimeDefault") => Ok(Some(Seccomp::RuntimeDefault)),
        Some("Localhost") => {
            // The API validated it: relative, no `..` (checked again: the runtime joins it
            // to the node's seccomp directory).
            let name = profile
                .and_then(|p| p.localhost_profile.as_deref())
                .unwrap_or("");
            let path = PathBuf::from(name);
            let safe = !name.is_empty()
                && path.is_relative()
                && path
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !safe {
                return Err(ConvertError::LocalhostSeccomp(name.to_owned()));
            }
            Ok(Some(Seccomp::Localhost(path)))
        }
        Some(_) => Ok(Some(Seccomp::Unconfined)),
    }
}

fn resolve_user(
    pod: &Pod,
    container: &Container,
    image_user: &str,
    users: Option<&dyn UserLookup>,
) -> Result<UserIds, ConvertError> {
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let csc = container.security_context.as_ref();
    let run_as_user = csc
        .and_then(|s| s.run_as_user)
        .or_else(|| psc.and_then(|s| s.run_as_user));
    let run_as_group = csc
        .and_then(|s| s.run_as_group)
        .or_else(|| psc.and_then(|s| s.run_as_group));
    let non_root = csc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| psc.and_then(|s| s.run_as_non_root))
        == Some(true);
    let to_id = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);

    let (user_part, group_part) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };
    // verifyRunAsNonRoot, before anything is resolved.
    if non_root {
        let err_pod = pod_desc(pod);
        match run_as_user {
            Some(0) => {
                return Err(ConvertError::RunAsUserRoot {
                    pod: err_pod,
                    container: container.name.clone(),
                })
            }
            Some(_) => {}
            None => match user_part.parse::<u32>() {
                Ok(0) => {
                    return Err(ConvertError::ImageRunsAsRoot {
                        pod: err_pod,
                        container: container.name.clone(),
                    })
                }
                Ok(_) => {}
                Err(_) if user_part.is_empty() => {
                    return Err(ConvertError::ImageRunsAsRoot {
                        pod: err_pod,
                        container: container.name.clone(),
                    })
                }
                Err(_) => {
                    return Err(ConvertError::NonNumericUser {
                        user: user_part.to_owned(),
                        pod: err_pod,
                        container: container.name.clone(),
                    })
                }
            },
        }
    }

    let primary = |uid: u32| users.and_then(|u| u.primary_gid(uid)).unwrap_or(0);
    let (uid, mut gid) = match run_as_user {
        Some(u) => {
            let uid = to_id(u);
            (uid, primary(uid))
        }
        None => {
            let (uid, gid_of_user) = if user_part.is_empty() {
                (0, primary(0))
            } else if let Ok(uid) = user_part.parse::<u32>() {
                (uid, primary(uid))
            } else {
                let lookup = users
                    .ok_or_else(|| ConvertError::NamedUserWithoutLookup(user_part.to_owned()))?;
                lookup
                    .user_by_name(user_part)
                    .ok_or_else(|| ConvertError::UnknownUser(user_part.to_owned()))?
            };
            let gid = match group_part.filter(|g| !g.is_empty()) {
                None => gid_of_user,
                Some(g) => match g.parse::<u32>() {
                    Ok(gid) => gid,
                    Err(_) => {
                        let lookup = users
                            .ok_or_else(|| ConvertError::NamedUserWithoutLookup(g.to_owned()))?;
                        lookup
                            .group_by_name(g)
                            .ok_or_else(|| ConvertError::UnknownGroup(g.to_owned()))?
                    }
                },
            };
            (uid, gid)
        }
    };
    if let Some(g) = run_as_group {
        gid = to_id(g);
    }
    let mut additional_gids = Vec::new();
    if let Some(fs) = psc.and_then(|s| s.fs_group) {
        additional_gids.push(to_id(fs));
    }
    for g in psc
        .and_then(|s| s.supplemental_groups.as_deref())
        .unwrap_or(&[])
    {
        additional_gids.push(to_id(*g));
    }
    Ok(UserIds {
        uid,
        gid,
        additional_gids,
    })
}

/// The container's [`ContainerConfig`].
pub fn container_config(
    pod: &Pod,
    container: &Container,
    image: &ImageConfig,
    inputs: ContainerInputs<'_>,
) -> Result<Converted, ConvertError> {
    let run = image.config.clone().unwrap_or_default();
    let spec = pod.spec.as_ref();
    let psc = spec.and_then(|s| s.security_context.as_ref());
    let csc = container.security_context.as_ref();

    let environment = make_environment(pod, container, &inputs.env)?;
    // Command and args see the container's own variables (ExpandContainerCommandAndArgs).
    let lookup = |name: &str| {
        environment
            .vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let expand_all = |v: Option<&Vec<String>>| -> Vec<String> {
        v.map(|v| v.iter().map(|s| expand(s, lookup)).collect())
            .unwrap_or_default()
    };
    let command = expand_all(container.command.as_ref());
    let args = expand_all(container.args.as_ref());
    let argv = resolve_command(
        run.entrypoint.as_deref().unwrap_or(&[]),
        run.cmd.as_deref().unwrap_or(&[]),
        &command,
        &args,
    );

    let mut env: Vec<String> = run.env.clone().unwrap_or_default();
    env.extend(environment.vars.iter().map(|(k, v)| format!("{k}={v}")));

    let working_dir = container
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or(run.working_dir.clone())
        .unwrap_or_default();

    let user = resolve_user(
        pod,
        container,
        run.user.as_deref().unwrap_or_default(),
        inputs.users,
    )?;

    let caps = csc.and_then(|s| s.capabilities.as_ref());
    let capabilities = CapabilityChanges {
        add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
    };
    let privileged = csc.and_then(|s| s.privileged) == Some(true);
    let seccomp = match seccomp(csc.and_then(|s| s.seccomp_profile.as_ref()))? {
        Some(s) => s,
        None => seccomp(psc.and_then(|s| s.seccomp_profile.as_ref()))?.unwrap_or_default(),
    };
    let sysctls: BTreeMap<String, String> = psc
        .and_then(|s| s.sysctls.as_deref())
        .unwrap_or(&[])
        .iter()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();

    let host = |flag: Option<bool>| flag == Some(true);
    let join = |path: &Option<PathBuf>| match path {
        Some(p) => NamespaceMode::Path(p.clone()),
        None => NamespaceMode::Private,
    };
    let host_network = host(spec.and_then(|s| s.host_network));
    let namespaces = Namespaces {
        network: if host_network {
            NamespaceMode::Host
        } else {
            join(&inputs.sandbox.network)
        },
        ipc: if host(spec.and_then(|s| s.host_ipc)) {
            NamespaceMode::Host
        } else {
            join(&inputs.sandbox.ipc)
        },
        uts: if host_network {
            NamespaceMode::Host
        } else {
            join(&inputs.sandbox.uts)
        },
        pid: if host(spec.and_then(|s| s.host_pid)) {
            NamespaceMode::Host
        } else if host(spec.and_then(|s| s.share_process_namespace)) {
            join(&inputs.sandbox.pid)
        } else {
            NamespaceMode::Private
        },
    };

    let mut mounts = inputs.mounts;
    let message_path = container
        .termination_message_path
        .clone()
        .unwrap_or_else(|| DEFAULT_TERMINATION_MESSAGE_PATH.to_owned());
    if let (false, Some(host_path)) = (message_path.is_empty(), inputs.termination_log) {
        mounts.push(BindMount {
            host_path,
            container_path: PathBuf::from(message_path),
            readonly: false,
            propagation: Propagation::Private,
        });
    }

    let config = ContainerConfig {
        id: inputs.id,
        rootfs: inputs.rootfs,
        args: argv,
        env,
        working_dir,
        user,
        hostname: pod_hostname(pod, inputs.cluster_domain),
        capabilities,
        privileged,
        readonly_rootfs: csc.and_then(|s| s.read_only_root_filesystem) == Some(true),
        no_new_privileges: csc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        seccomp,
        sysctls,
        mounts,
        namespaces,
        resources: container_resources(pod, container, inputs.memory_capacity),
        cgroup_parent: pod_cgroup_parent(pod),
        host_devices: inputs.host_devices,
        host_capabilities: inputs.host_capabilities,
        annotations: inputs.annotations,
        terminal: container.tty == Some(true),
        stdin: container.stdin == Some(true),
        stdin_once: container.stdin_once == Some(true),
    };
    Ok(Converted {
        config,
        skipped_env: environment.skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pods::env::Objects;
    use crate::pods::qos::tests::pod;
    use serde_json::json;
    use skiff_runtime::container::spec::build_spec_json;

    fn image(v: serde_json::Value) -> ImageConfig {
        serde_json::from_value(v).expect("image config")
    }

    struct Passwd;
    impl UserLookup for Passwd {
        fn user_by_name(&self, name: &str) -> Option<(u32, u32)> {
            (name == "nginx").then_some((101, 101))
        }
        fn primary_gid(&self, uid: u32) -> Option<u32> {
            (uid == 101).then_some(101)
        }
        fn group_by_name(&self, name: &str) -> Option<u32> {
            (name == "www").then_some(33)
        }
    }

    fn convert(
        p: &Pod,
        img: &ImageConfig,
        users: Option<&dyn UserLookup>,
    ) -> Result<Converted, ConvertError> {
        let objects = Objects::default();
        let services = [];
        let alloc = BTreeMap::new();
        let pod_ips = ["10.42.0.12".to_string()];
        let host_ips = ["192.168.1.10".to_string()];
        let inputs = ContainerInputs {
            id: "c1".into(),
            rootfs: "/var/lib/skiff/agent/containers/c1/rootfs".into(),
            env: EnvInputs {
                objects: &objects,
                services: &services,
                node_allocatable: &alloc,
                pod_ips: &pod_ips,
                host_ips: &host_ips,
            },
            sandbox: SandboxNamespaces {
                network: Some("/run/skiff/netns/pod-u1".into()),
                ipc: Some("/proc/42/ns/ipc".into()),
                uts: Some("/proc/42/ns/uts".into()),
                pid: Some("/proc/42/ns/pid".into()),
            },
            mounts: vec![BindMount {
                host_path: "/var/lib/skiff/agent/pods/u1/etc-hosts".into(),
                container_path: "/etc/hosts".into(),
                readonly: false,
                propagation: Propagation::Private,
            }],
            termination_log: Some("/var/lib/skiff/agent/pods/u1/containers/web/c1".into()),
            memory_capacity: 4_000_000_000,
            cluster_domain: "cluster.local",
            users,
            host_devices: vec![],
            host_capabilities: vec![],
            annotations: BTreeMap::new(),
        };
        let first = p.spec.as_ref().unwrap().containers[0].clone();
        container_config(p, &first, img, inputs)
    }

    fn nginx_image() -> ImageConfig {
        image(json!({"architecture": "amd64", "os": "linux", "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.25.3"],
            "Entrypoint": ["/docker-entrypoint.sh"], "Cmd": ["nginx", "-g", "daemon off;"],
            "WorkingDir": "", "StopSignal": "SIGQUIT"}}))
    }

    /// A restricted-profile web pod, as a Deployment makes one.
    #[test]
    fn restricted_web_pod_snapshot() {
        let p = pod(json!({
            "metadata": {"name": "web-7d4b9c-x2x9q", "namespace": "shop", "uid": "u1"},
            "spec": {
                "nodeName": "node-1",
                "securityContext": {"runAsNonRoot": true, "runAsUser": 101, "fsGroup": 2000,
                                    "seccompProfile": {"type": "RuntimeDefault"},
                                    "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
                "containers": [{
                    "name": "web", "image": "nginx:1.25",
                    "args": ["nginx", "-g", "daemon off; worker_processes $(WORKERS);"],
                    "env": [{"name": "WORKERS", "value": "2"},
                            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                    "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}},
                    "terminationMessagePath": "/dev/termination-log"}]}}));
        let got = convert(&p, &nginx_image(), None).expect("config");
        assert!(got.skipped_env.is_empty());
        let want = json!({
            "id": "c1",
            "rootfs": "/var/lib/skiff/agent/containers/c1/rootfs",
            "args": ["/docker-entrypoint.sh", "nginx", "-g", "daemon off; worker_processes 2;"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "NGINX_VERSION=1.25.3", "WORKERS=2", "POD_IP=10.42.0.12"],
            "working_dir": "",
            "user": {"uid": 101, "gid": 0, "additional_gids": [2000]},
            "hostname": "web-7d4b9c-x2x9q",
            "capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["ALL"]},
            "privileged": false,
            "readonly_rootfs": true,
            "no_new_privileges": true,
            "seccomp": "RuntimeDefault",
            "stdin": false, "stdin_once": false, "terminal": false,
            "sysctls": {"net.ipv4.ip_unprivileged_port_start": "0"},
            "mounts": [
                {"host_path": "/var/lib/skiff/agent/pods/u1/etc-hosts", "container_path": "/etc/hosts",
                 "readonly": false, "propagation": "Private"},
                {"host_path": "/var/lib/skiff/agent/pods/u1/containers/web/c1", "container_path": "/dev/termination-log",
                 "readonly": false, "propagation": "Private"}],
            "namespaces": {"network": {"Path": "/run/skiff/netns/pod-u1"}, "ipc": {"Path": "/proc/42/ns/ipc"},
                           "uts": {"Path": "/proc/42/ns/uts"}, "pid": "Private"},
            "resources": {"cpu_shares": 102, "cpu_quota": null, "cpu_period": 100000,
                          "memory_limit": 268435456, "memory_swap_limit": null, "pids_limit": null,
                          "oom_score_adj": 967},
            "cgroup_parent": "/skiff/burstable/podu1",
            "host_devices": [],
            "host_capabilities": [],
            "annotations": {}
        });
        assert_eq!(serde_json::to_value(&got.config).unwrap(), want);
        // The runtime accepts it.
        let spec = build_spec_json(&got.config).expect("oci spec");
        assert_eq!(spec["process"]["noNewPrivileges"], json!(true));
    }

    /// A privileged, host-network, Guaranteed system pod sharing its process namespace.
    #[test]
    fn privileged_host_network_pod_snapshot() {
        let p = pod(json!({
            "metadata": {"name": "node-agent", "namespace": "kube-system", "uid": "u2"},
            "spec": {
                "hostNetwork": true, "shareProcessNamespace": true, "hostname": "ignored",
                "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000, 5000]},
                "containers": [{
                    "name": "agent", "image": "agent:1", "command": ["/agent"], "workingDir": "/work",
                    "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                    "securityContext": {"privileged": true, "runAsUser": 0,
                                        "seccompProfile": {"type": "Unconfined"}},
                    "terminationMessagePath": ""}]}}));
        let img =
            image(json!({"config": {"Cmd": ["--help"], "WorkingDir": "/app", "User": "65534"}}));
        let got = convert(&p, &img, None).expect("config").config;
        assert_eq!(got.args, vec!["/agent"]);
        assert_eq!(got.working_dir, "/work");
        assert_eq!(
            got.user,
            UserIds {
                uid: 0,
                gid: 3000,
                additional_gids: vec![4000, 5000]
            }
        );
        assert_eq!(got.hostname, None);
        assert!(got.privileged);
        assert!(!got.no_new_privileges);
        assert_eq!(got.seccomp, Seccomp::Unconfined);
        assert_eq!(
            serde_json::to_value(&got.namespaces).unwrap(),
            json!({"network": "Host", "ipc": {"Path": "/proc/42/ns/ipc"}, "uts": "Host", "pid": {"Path": "/proc/42/ns/pid"}})
        );
        assert_eq!(
            got.mounts.len(),
            1,
            "no termination-log mount for an empty path"
        );
        assert_eq!(got.cgroup_parent, "/skiff/podu2");
        assert_eq!(
            (
                got.resources.cpu_shares,
                got.resources.cpu_quota,
                got.resources.memory_limit,
                got.resources.oom_score_adj
            ),
            (Some(512), Some(50_000), Some(67_108_864), -997)
        );
        build_spec_json(&got).expect("oci spec");
    }

    /// The pod `kubectl run -it --rm t --image=busybox -- sh` makes: its terminal and stdin
    /// reach the runtime (process.terminal and TERM=xterm in the OCI spec).
    #[test]
    fn kubectl_run_it_gives_a_terminal_and_a_stdin_closed_after_one_attach() {
        let p = pod(json!({
            "metadata": {"name": "t", "namespace": "default", "uid": "u3"},
            "spec": {"containers": [{
                "name": "t", "image": "busybox", "args": ["sh"],
                "stdin": true, "stdinOnce": true, "tty": true}]}}));
        let img = image(json!({"config": {"Cmd": ["sh"]}}));
        let got = convert(&p, &img, None).expect("config").config;
        assert_eq!(
            (got.terminal, got.stdin, got.stdin_once),
            (true, true, true)
        );
        let spec = build_spec_json(&got).expect("oci spec");
        assert_eq!(spec["process"]["terminal"], json!(true));
        assert!(spec["process"]["env"]
            .as_array()
            .is_some_and(|e| e.contains(&json!("TERM=xterm"))));

        // A plain container has neither.
        let p = pod(json!({
            "metadata": {"name": "t", "namespace": "default", "uid": "u3"},
            "spec": {"containers": [{"name": "t", "image": "busybox"}]}}));
        let got = convert(&p, &img, None).expect("config").config;
        assert_eq!(
            (got.terminal, got.stdin, got.stdin_once),
            (false, false, false)
        );
    }

    /// The image's `USER` and the pod's security context (containerd's `WithUser` rules and
    /// upstream's `verifyRunAsNonRoot` messages from `security_context_others_test.go`).
    #[test]
    fn users() {
        let mk = |psc: serde_json::Value, csc: serde_json::Value| {
            pod(
                json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
                       "spec": {"securityContext": psc,
                                "containers": [{"name": "c", "image": "i", "command": ["/bin/sh"], "securityContext": csc}]}}),
            )
        };
        let img = |user: &str| image(json!({"config": {"User": user}}));
        let ok = |uid, gid, extra: Vec<u32>| {
            Ok(UserIds {
                uid,
                gid,
                additional_gids: extra,
            })
        };
        let lookup: &dyn UserLookup = &Passwd;
        type Case<'a> = (
            &'a str,
            serde_json::Value,
            serde_json::Value,
            &'a str,
            Option<&'a dyn UserLookup>,
            Result<UserIds, String>,
        );
        let cases: Vec<Case> = vec![
            ("no user: root", json!({}), json!({}), "", None, ok(0, 0, vec![])),
            ("numeric image user", json!({}), json!({}), "1001", None, ok(1001, 0, vec![])),
            ("numeric user and group", json!({}), json!({}), "1001:1002", None, ok(1001, 1002, vec![])),
            ("named user resolved", json!({}), json!({}), "nginx", Some(lookup), ok(101, 101, vec![])),
            ("named user and group resolved", json!({}), json!({}), "nginx:www", Some(lookup), ok(101, 33, vec![])),
            ("uid's primary group", json!({}), json!({}), "101", Some(lookup), ok(101, 101, vec![])),
            ("named user without lookup", json!({}), json!({}), "nginx", None,
             Err("image user \"nginx\" is not numeric and the image's /etc/passwd was not read".into())),
            ("unknown named user", json!({}), json!({}), "nobody", Some(lookup),
             Err("unable to find user nobody: no matching entries in passwd file".into())),
            ("pod runAsUser beats the image", json!({"runAsUser": 7}), json!({}), "nginx", None, ok(7, 0, vec![])),
            ("container beats pod", json!({"runAsUser": 7, "runAsGroup": 8}), json!({"runAsUser": 9}), "", None, ok(9, 8, vec![])),
            ("runAsGroup beats the image group", json!({}), json!({"runAsGroup": 5}), "1:2", None, ok(1, 5, vec![])),
            ("fsGroup first, then supplementalGroups", json!({"fsGroup": 10, "supplementalGroups": [11, 12]}), json!({}), "1", None, ok(1, 0, vec![10, 11, 12])),
            ("non-root with root runAsUser", json!({"runAsNonRoot": true}), json!({"runAsUser": 0}), "", None,
             Err("container's runAsUser breaks non-root policy (pod: \"p_ns(u)\", container: c)".into())),
            ("non-root with a root image", json!({}), json!({"runAsNonRoot": true}), "0", None,
             Err("container has runAsNonRoot and image will run as root (pod: \"p_ns(u)\", container: c)".into())),
            ("non-root with no image user", json!({"runAsNonRoot": true}), json!({}), "", None,
             Err("container has runAsNonRoot and image will run as root (pod: \"p_ns(u)\", container: c)".into())),
            ("non-root with a named image user", json!({"runAsNonRoot": true}), json!({}), "nginx", Some(lookup),
             Err("container has runAsNonRoot and image has non-numeric user (nginx), cannot verify user is non-root (pod: \"p_ns(u)\", container: c)".into())),
            ("non-root satisfied by runAsUser", json!({"runAsNonRoot": true}), json!({"runAsUser": 1000}), "", None, ok(1000, 0, vec![])),
            ("non-root satisfied by the image", json!({"runAsNonRoot": true}), json!({}), "1000", None, ok(1000, 0, vec![])),
        ];
        for (name, psc, csc, user, users, want) in cases {
            let got = convert(&mk(psc, csc), &img(user), users)
                .map(|c| c.config.user)
                .map_err(|e| e.to_string());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn hostnames() {
        let long = "a".repeat(62) + "-b";
        let cases = [
            (
                json!({"name": "web-0"}),
                json!({}),
                Some("web-0".to_string()),
            ),
            (
                json!({"name": "web-0"}),
                json!({"hostname": "db"}),
                Some("db".into()),
            ),
            (json!({"name": long}), json!({}), Some("a".repeat(62))),
            (
                json!({"name": "web-0", "namespace": "ns"}),
                json!({"hostname": "db", "subdomain": "svc", "setHostnameAsFQDN": true}),
                Some("db.svc.ns.svc.cluster.local".into()),
            ),
            (json!({"name": "web-0"}), json!({"hostNetwork": true}), None),
        ];
        for (meta, spec, want) in cases {
            let mut spec = spec;
            spec["containers"] = json!([]);
            let p = pod(json!({"metadata": meta, "spec": spec}));
            assert_eq!(pod_hostname(&p, "cluster.local"), want);
        }
    }

    #[test]
    fn env_errors_and_bad_localhost_seccomp_are_config_errors() {
        let p = pod(
            json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"containers": [{
            "name": "c", "image": "i", "envFrom": [{"configMapRef": {"name": "absent"}}]}]}}),
        );
        let err = convert(&p, &nginx_image(), None).unwrap_err();
        assert_eq!(err.to_string(), "configmap \"absent\" not found");
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "x.json"}},
            "containers": [{"name": "c", "image": "i"}]}}));
        assert_eq!(
            convert(&p, &nginx_image(), None).unwrap().config.seccomp,
            Seccomp::Localhost("x.json".into())
        );
        for bad in ["", "/etc/x.json", "../x.json", "a/../../x.json"] {
            let p = pod(json!({"metadata": {"name": "p"}, "spec": {
                "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": bad}},
                "containers": [{"name": "c", "image": "i"}]}}));
            assert_eq!(
                convert(&p, &nginx_image(), None).unwrap_err(),
                ConvertError::LocalhostSeccomp(bad.into()),
                "{bad}"
            );
        }
        // A container-level profile wins over the pod's.
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "x.json"}},
            "containers": [{"name": "c", "image": "i", "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}}}]}}));
        assert_eq!(
            convert(&p, &nginx_image(), None).unwrap().config.seccomp,
            Seccomp::RuntimeDefault
        );
    }
}
