//! CNI: running standard network plugins for a pod's network namespace, per the CNI
//! specification 1.0 (what libcni does for containerd and CRI-O).
//!
//! A network configuration list (`.conflist`; a single-plugin `.conf` is wrapped into one)
//! is run plugin by plugin: ADD in order with each plugin's result handed to the next as
//! `prevResult`, DEL in reverse order with the cached ADD result, CHECK in order. Only the
//! `runtimeConfig` keys a plugin declares in its `capabilities` are passed to it
//! (portMappings for portmap). Every pod also gets the loopback plugin on `lo`, as
//! containerd runs it besides the configured network.
//!
//! skiff's default list ([`DefaultNetwork`]) is bridge + host-local + portmap over the
//! node's podCIDR, with the IPAM leases under skiff's data directory. This module does not
//! create namespaces (the sandbox does) and does not cache results itself (the sandbox's
//! state file holds the ADD result for DEL).

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Map, Value};

/// The interface name of a pod's network inside its namespace.
pub const POD_IFNAME: &str = "eth0";
/// Where Debian's `containernetworking-plugins` and the upstream tarball put plugins.
pub const DEFAULT_BIN_DIRS: &[&str] = &["/usr/lib/cni", "/opt/cni/bin"];
/// The file name skiff writes its default network under.
pub const DEFAULT_CONFLIST_NAME: &str = "10-skiff.conflist";

/// Where skiff writes (and, without `--cni-conf-dir`, reads) the node's network
/// configuration: `<data-dir>/agent/cni`.
pub fn default_conf_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("agent").join("cni")
}

/// host-local's lease directory for skiff's own network: `<data-dir>/agent/cni-ipam`.
pub fn default_ipam_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("agent").join("cni-ipam")
}

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("no CNI network configuration in {0}")]
    NoConfig(PathBuf),
    #[error("CNI configuration {path}: {reason}")]
    BadConfig { path: PathBuf, reason: String },
    #[error("CNI plugin {0:?} not found in {1}")]
    PluginNotFound(String, String),
    #[error("CNI plugin {plugin} {command} failed: {msg} (code {code}){details}")]
    Plugin {
        plugin: String,
        command: &'static str,
        code: i64,
        msg: String,
        details: String,
    },
    #[error("CNI plugin {plugin} {command} gave a result that is not JSON: {source}")]
    BadResult {
        plugin: String,
        command: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("running CNI plugin {plugin}: {source}")]
    Exec {
        plugin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
}

pub type Result<T, E = CniError> = std::result::Result<T, E>;

/// A network configuration list.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkList {
    pub name: String,
    pub cni_version: String,
    /// Each plugin's configuration object (`type` and its own keys).
    pub plugins: Vec<Map<String, Value>>,
}

impl NetworkList {
    /// Parses a `.conflist`, or a `.conf`/`.json` holding one plugin's configuration.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |reason: String| CniError::BadConfig {
            path: path.to_path_buf(),
            reason,
        };
        let value: Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let obj = value
            .as_object()
            .ok_or_else(|| bad("not a JSON object".into()))?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("no \"name\"".into()))?;
        let cni_version = obj
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or("0.2.0")
            .to_string();
        let plugins: Vec<Map<String, Value>> = match obj.get("plugins") {
            Some(Value::Array(list)) => list
                .iter()
                .map(|p| {
                    p.as_object()
                        .cloned()
                        .ok_or_else(|| bad("a plugin is not an object".into()))
                })
                .collect::<Result<_>>()?,
            Some(_) => return Err(bad("\"plugins\" is not a list".into())),
            None if obj.contains_key("type") => {
                let mut single = obj.clone();
                single.remove("name");
                single.remove("cniVersion");
                vec![single]
            }
            None => return Err(bad("no \"plugins\" and no \"type\"".into())),
        };
        if plugins.is_empty() {
            return Err(bad("no plugins".into()));
        }
        if let Some(p) = plugins
            .iter()
            .find(|p| !p.get("type").is_some_and(Value::is_string))
        {
            return Err(bad(format!(
                "a plugin has no \"type\": {}",
                Value::Object(p.clone())
            )));
        }
        Ok(NetworkList {
            name: name.to_string(),
            cni_version,
            plugins,
        })
    }

    /// The first configuration in `dir` by file name (`.conflist`, `.conf`, `.json`), as
    /// libcni's `ConfFiles` + sort and the kubelet/containerd pick it.
    pub fn load_dir(dir: &Path) -> Result<Self> {
        let entries = std::fs::read_dir(dir).map_err(|e| CniError::Io(dir.to_path_buf(), e))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .is_some_and(|x| x == "conflist" || x == "conf" || x == "json")
            })
            .collect();
        files.sort();
        let first = files
            .into_iter()
            .next()
            .ok_or_else(|| CniError::NoConfig(dir.to_path_buf()))?;
        let text = std::fs::read_to_string(&first).map_err(|e| CniError::Io(first.clone(), e))?;
        Self::parse(&text, &first)
    }
}

/// skiff's own network: a bridge with host-local IPAM over the node's podCIDR, portmap
/// for hostPorts. Upstream kubelets leave this to the CNI installer; skiff writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultNetwork {
    pub name: String,
    pub bridge: String,
    pub pod_cidr: String,
    /// host-local's lease directory (skiff's, so teardown and crashes are ours).
    pub ipam_data_dir: PathBuf,
    /// The bridge plugin's own masquerade (iptables rules per pod). The node turns it off:
    /// it masquerades the whole cluster range with one nftables rule instead, so pod to
    /// pod traffic across nodes keeps its source address.
    pub ip_masq: bool,
}

impl DefaultNetwork {
    /// The node's network: `skiff` on bridge `cni0`, leases in `<data-dir>/agent/cni-ipam`.
    pub fn for_node(data_dir: &Path, pod_cidr: &str) -> Self {
        DefaultNetwork {
            name: "skiff".into(),
            bridge: "cni0".into(),
            pod_cidr: pod_cidr.into(),
            ipam_data_dir: default_ipam_dir(data_dir),
            ip_masq: false,
        }
    }

    /// The conflist's JSON text.
    pub fn conflist(&self) -> String {
        let list = json!({
            "cniVersion": "1.0.0",
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    "ipMasq": self.ip_masq,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{ "subnet": self.pod_cidr }]],
                        "routes": [{ "dst": "0.0.0.0/0" }],
                        "dataDir": self.ipam_data_dir,
                    }
                },
                { "type": "portmap", "capabilities": { "portMappings": true } }
            ]
        });
        // A json! value always serialises.
        serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
    }

    /// Writes the conflist to `<conf_dir>/10-skiff.conflist` (atomically, by rename) and
    /// returns its path.
    pub fn write(&self, conf_dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(conf_dir).map_err(|e| CniError::Io(conf_dir.to_path_buf(), e))?;
        let path = conf_dir.join(DEFAULT_CONFLIST_NAME);
        let tmp = conf_dir.join(format!(".{DEFAULT_CONFLIST_NAME}.tmp"));
        std::fs::write(&tmp, self.conflist()).map_err(|e| CniError::Io(tmp.clone(), e))?;
        std::fs::rename(&tmp, &path).map_err(|e| CniError::Io(path.clone(), e))?;
        Ok(path)
    }
}

/// A hostPort: portmap's `runtimeConfig.portMappings` entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    /// `tcp`, `udp` or `sctp` (lowercase, as the kubelet passes them).
    pub protocol: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// What one pod's ADD/DEL/CHECK is about.
#[derive(Clone, Debug, Default)]
pub struct Attachment {
    pub container_id: String,
    /// The pinned network namespace; `None` on a DEL whose namespace is gone.
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// `CNI_ARGS` pairs (K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_INFRA_CONTAINER_ID, K8S_POD_UID).
    pub args: Vec<(String, String)>,
    pub port_mappings: Vec<PortMapping>,
}

/// A configured network and where its plugins are.
#[derive(Clone, Debug)]
pub struct Cni {
    pub network: NetworkList,
    pub bin_dirs: Vec<PathBuf>,
}

#[derive(Clone, Copy)]
enum Op {
    Add,
    Del,
    Check,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Add => "ADD",
            Op::Del => "DEL",
            Op::Check => "CHECK",
        }
    }
}

impl Cni {
    pub fn new(network: NetworkList, bin_dirs: Vec<PathBuf>) -> Self {
        Cni { network, bin_dirs }
    }

    fn find_plugin(&self, kind: &str) -> Result<PathBuf> {
        // A type is a file name, never a path.
        if !kind.contains('/') {
            for dir in &self.bin_dirs {
                let p = dir.join(kind);
                if p.is_file() {
                    return Ok(p);
                }
            }
        }
        let dirs: Vec<String> = self
            .bin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        Err(CniError::PluginNotFound(kind.to_string(), dirs.join(":")))
    }

    /// One plugin's stdin: its object plus the list's name and version, `prevResult` and
    /// the runtimeConfig keys it has the capabilities for (libcni's `buildOneConfig`).
    fn plugin_config(
        &self,
        plugin: &Map<String, Value>,
        prev: Option<&Value>,
        att: &Attachment,
    ) -> Value {
        let mut conf = plugin.clone();
        conf.insert("name".into(), Value::String(self.network.name.clone()));
        conf.insert(
            "cniVersion".into(),
            Value::String(self.network.cni_version.clone()),
        );
        if let Some(prev) = prev {
            conf.insert("prevResult".into(), prev.clone());
        }
        let caps = plugin.get("capabilities").and_then(Value::as_object);
        let mut runtime = Map::new();
        if caps
            .and_then(|c| c.get("portMappings"))
            .and_then(Value::as_bool)
            == Some(true)
        {
            runtime.insert(
                "portMappings".into(),
                serde_json::to_value(&att.port_mappings).unwrap_or(Value::Array(vec![])),
            );
        }
        if !runtime.is_empty() {
            conf.insert("runtimeConfig".into(), Value::Object(runtime));
        }
        Value::Object(conf)
    }

    fn exec(
        &self,
        op: Op,
        plugin: &Map<String, Value>,
        stdin: &Value,
        att: &Attachment,
    ) -> Result<Option<Value>> {
        let kind = plugin
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        exec_plugin(&self.find_plugin(kind)?, op, stdin, att, &self.bin_dirs)
    }

    /// ADD: every plugin in order; the last result is the attachment's result.
    pub fn add(&self, att: &Attachment) -> Result<Value> {
        let mut prev: Option<Value> = None;
        for plugin in &self.network.plugins {
            let conf = self.plugin_config(plugin, prev.as_ref(), att);
            if let Some(result) = self.exec(Op::Add, plugin, &conf, att)? {
                prev = Some(result);
            }
        }
        Ok(prev.unwrap_or_else(|| json!({ "cniVersion": self.network.cni_version })))
    }

    /// DEL: every plugin in reverse order with the cached ADD result (if any). All plugins
    /// are tried; the first error is returned after the rest have run, so one failing
    /// plugin does not leave the others' resources behind.
    pub fn del(&self, att: &Attachment, cached: Option<&Value>) -> Result<()> {
        let mut first_err = None;
        for plugin in self.network.plugins.iter().rev() {
            let conf = self.plugin_config(plugin, cached, att);
            if let Err(e) = self.exec(Op::Del, plugin, &conf, att) {
                first_err.get_or_insert(e);
            }
        }
        self.clear_bridge_masquerade(att, cached);
        first_err.map_or(Ok(()), Err)
    }

    /// The bridge plugin (1.1) deletes its ipMasq rules only when it still finds the pod's
    /// interface, so a DEL after the namespace (or just its eth0) went leaves them: a
    /// POSTROUTING rule per pod IP and a `CNI-<hash>` chain. They are named after the
    /// network and the container id (the plugins' `utils.FormatChainName`/`FormatComment`),
    /// so skiff deletes them itself when the chain is still there, best-effort as the
    /// plugin does (one `iptables -S` when there is nothing left, about 2 ms).
    fn clear_bridge_masquerade(&self, att: &Attachment, cached: Option<&Value>) {
        let masq = self.network.plugins.iter().any(|p| {
            p.get("type").and_then(Value::as_str) == Some("bridge")
                && p.get("ipMasq").and_then(Value::as_bool) == Some(true)
        });
        let ips = cached.map(result_ips).unwrap_or_default();
        if !masq || ips.is_empty() {
            return;
        }
        let chain = masquerade_chain(&self.network.name, &att.container_id);
        let comment = format!("name: {:?} id: {:?}", self.network.name, att.container_id);
        for ip in &ips {
            let (tool, host) = match ip {
                IpAddr::V4(_) => ("iptables", format!("{ip}/32")),
                IpAddr::V6(_) => ("ip6tables", format!("{ip}/128")),
            };
            let run = |args: &[&str]| {
                Command::new(tool)
                    .args(["-w", "-t", "nat"])
                    .args(args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !run(&["-S", &chain]) {
                continue;
            }
            run(&[
                "-D",
                "POSTROUTING",
                "-s",
                &host,
                "-j",
                &chain,
                "-m",
                "comment",
                "--comment",
                &comment,
            ]);
            run(&["-F", &chain]);
            run(&["-X", &chain]);
        }
    }

    /// CHECK (CNI >= 0.4.0): every plugin in order against the cached ADD result.
    pub fn check(&self, att: &Attachment, cached: &Value) -> Result<()> {
        for plugin in &self.network.plugins {
            let conf = self.plugin_config(plugin, Some(cached), att);
            self.exec(Op::Check, plugin, &conf, att)?;
        }
        Ok(())
    }

    /// Brings `lo` up in the namespace with the loopback plugin (containerd's
    /// `WithLoNetwork`); its DEL releases nothing, so there is none.
    pub fn loopback_up(&self, netns: &Path, container_id: &str) -> Result<()> {
        let conf = json!({ "cniVersion": "1.0.0", "name": "cni-loopback", "type": "loopback" });
        let att = Attachment {
            container_id: container_id.into(),
            netns: Some(netns.to_path_buf()),
            ifname: "lo".into(),
            ..Default::default()
        };
        exec_plugin(
            &self.find_plugin("loopback")?,
            Op::Add,
            &conf,
            &att,
            &self.bin_dirs,
        )
        .map(drop)
    }
}

fn exec_plugin(
    binary: &Path,
    op: Op,
    stdin: &Value,
    att: &Attachment,
    bin_dirs: &[PathBuf],
) -> Result<Option<Value>> {
    let plugin = binary
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let exec_err = |source| CniError::Exec {
        plugin: plugin.clone(),
        source,
    };
    let path = std::env::join_paths(bin_dirs).map_err(|e| exec_err(std::io::Error::other(e)))?;
    let mut args = vec!["IgnoreUnknown=1".to_string()];
    args.extend(att.args.iter().map(|(k, v)| format!("{k}={v}")));
    let netns = att
        .netns
        .as_deref()
        .map(|p| p.as_os_str())
        .unwrap_or_default();
    let mut child = Command::new(binary)
        .env("CNI_COMMAND", op.name())
        .env("CNI_CONTAINERID", &att.container_id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", &att.ifname)
        .env("CNI_ARGS", args.join(";"))
        .env("CNI_PATH", path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(exec_err)?;
    if let Some(mut input) = child.stdin.take() {
        // A plugin that exits without reading gives EPIPE; its exit status says why.
        let _ = input.write_all(stdin.to_string().as_bytes());
    }
    let out = child.wait_with_output().map_err(exec_err)?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        // The spec's error object: {"code", "msg", "details"} on stdout.
        let err: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        let msg = err
            .get("msg")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                let stderr = String::from_utf8_lossy(&out.stderr);
                format!("{} {}", stdout.trim(), stderr.trim())
                    .trim()
                    .to_string()
            });
        let details = err
            .get("details")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
            .map(|d| format!(": {d}"))
            .unwrap_or_default();
        return Err(CniError::Plugin {
            plugin,
            command: op.name(),
            code: err.get("code").and_then(Value::as_i64).unwrap_or(-1),
            msg,
            details,
        });
    }
    if stdout.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&stdout)
        .map(Some)
        .map_err(|source| CniError::BadResult {
            plugin,
            command: op.name(),
            source,
        })
}

/// host-local's lease directory for a network: its `dataDir` (default
/// `/var/lib/cni/networks`) joined with the network's name; `None` when the network does
/// not use host-local.
pub fn host_local_dir(network: &NetworkList) -> Option<PathBuf> {
    let ipam = network
        .plugins
        .iter()
        .filter_map(|p| p.get("ipam"))
        .find(|i| i.get("type").and_then(Value::as_str) == Some("host-local"))?;
    let data_dir = ipam
        .get("dataDir")
        .and_then(Value::as_str)
        .unwrap_or("/var/lib/cni/networks");
    Some(Path::new(data_dir).join(&network.name))
}

/// Deletes host-local leases (files named by IP, holding the container id on their first
/// line) whose container `is_live` says is gone, under host-local's own lock, and returns
/// their IPs. The safety net for leases whose sandbox state was lost (CNI 1.1's GC verb,
/// which these plugins predate).
pub fn release_orphan_leases(dir: &Path, is_live: &dyn Fn(&str) -> bool) -> Result<Vec<IpAddr>> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |e| CniError::Io(p, e)
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(CniError::Io(dir.to_path_buf(), e)),
    };
    let lock_path = dir.join("lock");
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io(&lock_path))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| CniError::Io(lock_path.clone(), e.into()))?;
    let mut released = vec![];
    for entry in entries.flatten() {
        let Some(ip) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<IpAddr>().ok())
        else {
            continue;
        };
        let path = entry.path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let owner = text.lines().next().unwrap_or_default().trim();
        if owner.is_empty() || is_live(owner) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => released.push(ip),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CniError::Io(path, e)),
        }
    }
    released.sort();
    Ok(released)
}

/// The plugins' per-container chain name: `CNI-` and the first 24 hex digits of
/// sha512(network name + container id).
fn masquerade_chain(network: &str, container_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha512::digest(format!("{network}{container_id}").as_bytes());
    format!("CNI-{}", &hex::encode(digest)[..24])
}

/// The pod's IPs from an ADD result: 1.0/0.3/0.4's `ips` (those on an interface inside the
/// sandbox, or without an interface index), or 0.2's `ip4`/`ip6`.
pub fn result_ips(result: &Value) -> Vec<IpAddr> {
    let parse = |addr: &str| {
        addr.split('/')
            .next()
            .and_then(|a| a.parse::<IpAddr>().ok())
    };
    if let Some(ips) = result.get("ips").and_then(Value::as_array) {
        let interfaces = result.get("interfaces").and_then(Value::as_array);
        return ips
            .iter()
            .filter(|ip| {
                let iface = ip.get("interface").and_then(Value::as_u64);
                match (iface, interfaces) {
                    (Some(i), Some(list)) => list
                        .get(i as usize)
                        .and_then(|d| d.get("sandbox"))
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty()),
                    _ => true,
                }
            })
            .filter_map(|ip| ip.get("address").and_then(Value::as_str).and_then(parse))
            .collect();
    }
    ["ip4", "ip6"]
        .iter()
        .filter_map(|k| result.get(*k)?.get("ip")?.as_str().and_then(parse))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_and_single_conf() {
        let net = DefaultNetwork {
            name: "skiff".into(),
            bridge: "cni0".into(),
            pod_cidr: "10.42.0.0/24".into(),
            ipam_data_dir: "/var/lib/skiff/agent/cni-ipam".into(),
            ip_masq: true,
        };
        let list = NetworkList::parse(&net.conflist(), Path::new("x")).unwrap();
        assert_eq!(list.name, "skiff");
        assert_eq!(list.cni_version, "1.0.0");
        assert_eq!(list.plugins.len(), 2);
        assert_eq!(list.plugins[0]["ipMasq"], true);
        let node = DefaultNetwork::for_node(Path::new("/d"), "10.42.0.0/24");
        let node = NetworkList::parse(&node.conflist(), Path::new("x")).unwrap();
        assert_eq!(
            node.plugins[0]["ipMasq"], false,
            "the node masquerades with nftables"
        );
        assert_eq!(
            list.plugins[0]["ipam"]["ranges"][0][0]["subnet"],
            "10.42.0.0/24"
        );
        assert_eq!(
            list.plugins[0]["ipam"]["dataDir"],
            "/var/lib/skiff/agent/cni-ipam"
        );
        let single = NetworkList::parse(
            r#"{"cniVersion":"0.4.0","name":"n","type":"bridge","bridge":"b0"}"#,
            Path::new("x.conf"),
        )
        .unwrap();
        assert_eq!(single.plugins.len(), 1);
        assert_eq!(single.plugins[0]["bridge"], "b0");
        assert!(!single.plugins[0].contains_key("name"));
        assert!(NetworkList::parse(r#"{"name":"n","plugins":[{"x":1}]}"#, Path::new("x")).is_err());
        assert!(NetworkList::parse("not json", Path::new("x")).is_err());
    }

    #[test]
    fn the_first_configuration_by_name_wins() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let conf_dir = default_conf_dir(&data);
        let written = DefaultNetwork::for_node(&data, "10.42.3.0/24")
            .write(&conf_dir)
            .unwrap();
        assert_eq!(written, data.join("agent/cni/10-skiff.conflist"));
        let list = NetworkList::load_dir(&conf_dir).unwrap();
        assert_eq!(list.name, "skiff");
        assert_eq!(
            list.plugins[0]["ipam"]["dataDir"],
            data.join("agent/cni-ipam").display().to_string()
        );
        // A user's file sorting first is the one used; other extensions are ignored.
        std::fs::write(conf_dir.join("00-notes.txt"), "not a config").unwrap();
        std::fs::write(
            conf_dir.join("05-mine.conf"),
            r#"{"cniVersion":"1.0.0","name":"mine","type":"ptp"}"#,
        )
        .unwrap();
        assert_eq!(NetworkList::load_dir(&conf_dir).unwrap().name, "mine");
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        assert!(matches!(
            NetworkList::load_dir(&empty),
            Err(CniError::NoConfig(_))
        ));
    }

    #[test]
    fn runtime_config_only_for_capable_plugins() {
        let net = DefaultNetwork::for_node(Path::new("/d"), "10.42.0.0/24");
        let cni = Cni::new(
            NetworkList::parse(&net.conflist(), Path::new("x")).unwrap(),
            vec![],
        );
        let att = Attachment {
            port_mappings: vec![PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: "tcp".into(),
                host_ip: String::new(),
            }],
            ..Default::default()
        };
        let prev = json!({"cniVersion": "1.0.0", "ips": []});
        let bridge = cni.plugin_config(&cni.network.plugins[0], None, &att);
        assert!(bridge.get("runtimeConfig").is_none());
        assert!(bridge.get("prevResult").is_none());
        assert_eq!(bridge["name"], "skiff");
        let portmap = cni.plugin_config(&cni.network.plugins[1], Some(&prev), &att);
        assert_eq!(
            portmap["runtimeConfig"]["portMappings"],
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}])
        );
        assert_eq!(portmap["prevResult"], prev);
    }

    #[test]
    fn masquerade_chain_as_the_plugins_name_it() {
        // Seen on this machine: network "skiff-test-76bf5", container "gone".
        assert_eq!(
            masquerade_chain("skiff-test-76bf5", "gone"),
            "CNI-d467ed3763a0fa37b28937a6"
        );
    }

    #[test]
    fn ips_from_results() {
        let r = json!({
            "cniVersion": "1.0.0",
            "interfaces": [
                {"name": "cni0", "mac": "x"},
                {"name": "veth1", "mac": "y"},
                {"name": "eth0", "mac": "z", "sandbox": "/run/x/ns/net"}
            ],
            "ips": [
                {"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 2},
                {"address": "10.99.0.1/24", "interface": 0}
            ]
        });
        assert_eq!(
            result_ips(&r),
            vec!["10.244.1.2".parse::<IpAddr>().unwrap()]
        );
        let old = json!({"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.5/16"}});
        assert_eq!(
            result_ips(&old),
            vec!["10.1.0.5".parse::<IpAddr>().unwrap()]
        );
        assert!(result_ips(&json!({})).is_empty());
    }
}
