//! Pod sandboxes for real: pinned namespaces, the CNI plugins of Debian's
//! containernetworking-plugins (bridge, host-local, portmap, loopback), nsenter from
//! util-linux and busybox-static (scripts/test.sh installs them). Needs root.
//!
//! Each test has a network of its own (bridge `skt<hex>`, subnet 10.244.<n>.0/24, a
//! network name that the ipMasq and portmap rules carry in their comments); its Drop
//! guard removes the sandboxes, the bridge, any iptables rule and chain left with that
//! network's name, and the temp dir, so a failing test leaves the host clean too.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use skiff_runtime::container::spec::NamespaceMode;
use skiff_runtime::sandbox::cni::{Cni, DefaultNetwork, NetworkList, PortMapping};
use skiff_runtime::sandbox::files::{DnsInput, DnsPolicy, HostAlias};
use skiff_runtime::sandbox::{self, SandboxConfig, SandboxError, SandboxState, Sandboxes};

static NEXT: AtomicU32 = AtomicU32::new(0);

struct TestNet {
    dir: tempfile::TempDir,
    name: String,
    bridge: String,
    /// The third octet of 10.244.x.0/24.
    octet: u32,
    sandboxes: Sandboxes,
}

impl TestNet {
    fn new() -> Result<Self> {
        Self::with_conflist(|net| net.conflist())
    }

    /// A network whose conflist is `make(default network)`'s text.
    fn with_conflist(make: impl Fn(&DefaultNetwork) -> String) -> Result<Self> {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        // Tests of one run differ by n; runs (and other test binaries) by the pid.
        let octet = 100 + (std::process::id() * 7 + n) % 150;
        let tag = format!("{:x}{n}", std::process::id() % 0xffff);
        let dir = tempfile::tempdir()?;
        let net = DefaultNetwork {
            name: format!("skiff-test-{tag}"),
            bridge: format!("skt{tag}"),
            pod_cidr: format!("10.244.{octet}.0/24"),
            ipam_data_dir: dir.path().join("ipam"),
            ip_masq: true,
        };
        let conf_dir = dir.path().join("cni");
        std::fs::create_dir_all(&conf_dir)?;
        std::fs::write(conf_dir.join("10-test.conflist"), make(&net))?;
        let list = NetworkList::load_dir(&conf_dir)?;
        let cni = Cni::new(list, vec![PathBuf::from("/usr/lib/cni")]);
        let sandboxes = Sandboxes::new(dir.path().join("sandboxes"), Some(cni));
        Ok(TestNet {
            name: net.name,
            bridge: net.bridge,
            octet,
            sandboxes,
            dir,
        })
    }

    fn config(&self, id: &str) -> SandboxConfig {
        SandboxConfig {
            id: id.into(),
            pod_name: format!("pod-{id}"),
            pod_namespace: "default".into(),
            pod_uid: format!("uid-{id}"),
            hostname: format!("pod-{id}"),
            host_network: false,
            host_ipc: false,
            share_pid: false,
            port_mappings: vec![],
            domain: None,
            host_aliases: vec![],
            node_hosts: "127.0.0.1\tlocalhost\n".into(),
            dns: DnsInput {
                policy: DnsPolicy::ClusterFirst,
                host_network: false,
                namespace: "default".into(),
                cluster_dns: vec!["10.43.0.10".into()],
                cluster_domain: "cluster.local".into(),
                host_resolv_conf: Some("nameserver 192.0.2.53\nsearch example.org\n".into()),
                dns_config: None,
            },
        }
    }

    fn gateway(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 244, self.octet as u8, 1))
    }

    /// host-local's lease files (one per IP) for this network.
    fn leases(&self) -> Vec<String> {
        let dir = self.dir.path().join("ipam").join(&self.name);
        let Ok(entries) = std::fs::read_dir(dir) else {
            return vec![];
        };
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.parse::<IpAddr>().is_ok())
            .collect()
    }

    /// The veths attached to this network's bridge.
    fn veths(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output();
        let Ok(out) = out else { return vec![] };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                l.split(": ")
                    .nth(1)
                    .map(|s| s.split('@').next().unwrap_or(s).to_string())
            })
            .collect()
    }

    /// iptables rules (nat and filter) that mention this network.
    fn rules(&self) -> Vec<(String, String)> {
        let mut found = vec![];
        for table in ["nat", "filter"] {
            let Ok(out) = Command::new("iptables").args(["-t", table, "-S"]).output() else {
                continue;
            };
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                if line.starts_with("-A ") && line.contains(&format!("\\\"{}\\\"", self.name)) {
                    found.push((table.to_string(), line.to_string()));
                }
            }
        }
        found
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if let Ok(ids) = self.sandboxes.list() {
            for id in ids {
                if let Err(e) = self.sandboxes.remove(&id) {
                    eprintln!("cleanup: removing sandbox {id}: {e}");
                    for ns in ["net", "ipc", "uts"] {
                        let _ =
                            sandbox::unpin(&self.sandboxes.root().join(&id).join("ns").join(ns));
                    }
                }
            }
        }
        // Whatever a failed test left: rules with our network's name, the chains they
        // jump to (per-container CNI-* chains, never the shared CNI-HOSTPORT-* ones).
        let mut chains = vec![];
        for (table, rule) in self.rules() {
            let del = format!("iptables -t {table} {}", rule.replacen("-A ", "-D ", 1));
            let _ = Command::new("sh").args(["-c", &del]).status();
            if let Some(chain) = rule
                .split(" -j ")
                .nth(1)
                .and_then(|c| c.split_whitespace().next())
            {
                if chain.starts_with("CNI-") && !chain.starts_with("CNI-HOSTPORT-") {
                    chains.push((table, chain.to_string()));
                }
            }
        }
        for (table, chain) in chains {
            let _ = Command::new("iptables")
                .args(["-t", &table, "-F", &chain])
                .status();
            let _ = Command::new("iptables")
                .args(["-t", &table, "-X", &chain])
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
    }
}

fn nsenter(args: &[&str]) -> Result<String> {
    let out = Command::new("nsenter")
        .args(args)
        .output()
        .context("nsenter")?;
    if !out.status.success() {
        bail!(
            "nsenter {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ping_from(netns: Option<&Path>, ip: IpAddr) -> Result<()> {
    let ip = ip.to_string();
    let out = match netns {
        Some(ns) => {
            let net = format!("--net={}", ns.display());
            nsenter(&[net.as_str(), "/bin/busybox", "ping", "-c1", "-W2", &ip]).map(drop)
        }
        None => {
            let st = Command::new("/bin/busybox")
                .args(["ping", "-c1", "-W2", &ip])
                .stdout(Stdio::null())
                .status()?;
            if st.success() {
                Ok(())
            } else {
                bail!("the host cannot ping {ip}")
            }
        }
    };
    out.with_context(|| format!("ping {ip} from {netns:?}"))
}

fn ns_path(mode: &NamespaceMode) -> Result<&Path> {
    match mode {
        NamespaceMode::Path(p) => Ok(p),
        other => bail!("expected a pinned namespace, got {other:?}"),
    }
}

#[test]
fn two_pods_reach_each_other_the_gateway_and_the_host() -> Result<()> {
    let t = TestNet::new()?;
    let mut cfg = t.config("a");
    cfg.domain = Some("web.default.svc.cluster.local".into());
    cfg.host_aliases = vec![HostAlias {
        ip: "192.0.2.9".into(),
        hostnames: vec!["alias".into()],
    }];
    let a = t.sandboxes.create(&cfg)?;
    let b = t.sandboxes.create(&t.config("b"))?;
    assert_eq!(t.sandboxes.list()?, vec!["a", "b"]);
    assert_eq!(t.sandboxes.status("a")?, SandboxState::Ready);

    let (ip_a, ip_b) = (a.ips[0], b.ips[0]);
    assert_eq!(a.ips.len(), 1);
    assert_ne!(ip_a, ip_b);
    for ip in [ip_a, ip_b] {
        assert!(
            ip.to_string().starts_with(&format!("10.244.{}.", t.octet)),
            "{ip}"
        );
    }
    let ns_a = a.netns.clone().context("netns")?;
    let ns_b = b.netns.clone().context("netns")?;
    assert!(sandbox::is_pinned(&ns_a));
    ping_from(Some(&ns_a), ip_b)?;
    ping_from(Some(&ns_b), ip_a)?;
    ping_from(Some(&ns_a), t.gateway())?;
    ping_from(None, ip_a)?;
    // lo is up (the loopback plugin).
    ping_from(Some(&ns_a), "127.0.0.1".parse()?)?;

    // The containers' view: namespaces and files.
    let ns = a.namespaces(NamespaceMode::Private);
    assert_eq!(ns_path(&ns.network)?, ns_a);
    assert_eq!(ns.pid, NamespaceMode::Private);
    let uts = format!("--uts={}", ns_path(&ns.uts)?.display());
    assert_eq!(nsenter(&[uts.as_str(), "hostname"])?.trim(), "pod-a");
    assert_ne!(
        nsenter(&[uts.as_str(), "hostname"])?,
        nsenter(&["hostname"])?
    );
    let ipc = format!("--ipc={}", ns_path(&ns.ipc)?.display());
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").context("host ipc")?;
    let pod_ipc = nsenter(&[ipc.as_str(), "readlink", "/proc/self/ns/ipc"])?;
    assert_ne!(pod_ipc.trim(), host_ipc.to_string_lossy());

    let mounts = a.mounts(false);
    let paths: Vec<_> = mounts
        .iter()
        .map(|m| m.container_path.display().to_string())
        .collect();
    assert_eq!(
        paths,
        vec!["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]
    );
    let hosts = std::fs::read_to_string(&a.hosts_file).context("hosts")?;
    assert!(
        hosts.starts_with("# Kubernetes-managed hosts file.\n"),
        "{hosts}"
    );
    assert!(
        hosts.contains(&format!(
            "{ip_a}\tpod-a.web.default.svc.cluster.local\tpod-a\n"
        )),
        "{hosts}"
    );
    assert!(
        hosts.ends_with("# Entries added by HostAliases.\n192.0.2.9\talias\n"),
        "{hosts}"
    );
    assert_eq!(
        std::fs::read_to_string(&a.resolv_conf).context("resolv.conf")?,
        "search default.svc.cluster.local svc.cluster.local cluster.local example.org\nnameserver 10.43.0.10\noptions ndots:5\n"
    );
    assert_eq!(std::fs::read_to_string(&a.hostname_file)?, "pod-a\n");

    // Teardown: the veth, the lease, the masquerade rules and the files go.
    assert_eq!(t.veths().len(), 2);
    assert_eq!(t.leases().len(), 2);
    assert!(!t.rules().is_empty(), "ipMasq adds rules");
    t.sandboxes.remove("a")?;
    assert_eq!(t.veths().len(), 1);
    assert_eq!(t.leases(), vec![ip_b.to_string()]);
    assert!(!ns_a.exists());
    assert!(!t.sandboxes.root().join("a").exists());
    assert!(matches!(
        t.sandboxes.status("a"),
        Err(SandboxError::NotFound(_))
    ));
    t.sandboxes.remove("a")?;
    ping_from(None, ip_b)?;

    // CHECK passes while the network is intact and fails once eth0 is gone; remove then
    // still clears everything, the masquerade rules included.
    t.sandboxes.check_network("b")?;
    let net_b = format!("--net={}", ns_b.display());
    nsenter(&[net_b.as_str(), "ip", "link", "del", "eth0"])?;
    let err = t
        .sandboxes
        .check_network("b")
        .err()
        .context("CHECK should fail without eth0")?;
    assert!(err.to_string().contains("CHECK"), "{err}");
    t.sandboxes.remove("b")?;
    assert!(t.veths().is_empty());
    assert!(t.leases().is_empty());
    assert_eq!(t.rules(), vec![]);
    assert!(t.sandboxes.list()?.is_empty());
    Ok(())
}

#[test]
fn remove_after_the_namespace_is_gone_releases_the_lease() -> Result<()> {
    let t = TestNet::new()?;
    let s = t.sandboxes.create(&t.config("gone"))?;
    let netns = s.netns.clone().context("netns")?;
    // Someone (a reboot, an admin) unmounted the namespace: the veth went with it.
    sandbox::unpin(&netns)?;
    // The kernel destroys an unreferenced namespace (and its veth) asynchronously.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t.veths().is_empty() {
        if Instant::now() > deadline {
            bail!("the veth outlived its namespace: {:?}", t.veths());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(t.sandboxes.status("gone")?, SandboxState::NotReady);
    assert_eq!(t.leases().len(), 1);
    t.sandboxes.remove("gone")?;
    assert!(t.leases().is_empty());
    assert!(t.sandboxes.list()?.is_empty());
    // The bridge plugin (1.1.1) leaves its masquerade rules when the namespace is gone;
    // skiff deletes them by name.
    assert_eq!(t.rules(), vec![]);
    Ok(())
}

#[test]
fn a_failed_add_is_rolled_back() -> Result<()> {
    // bridge succeeds, then a plugin that does not exist: create fails and DEL releases
    // the bridge's lease and veth.
    let t = TestNet::with_conflist(|net| {
        let mut v: serde_json::Value = serde_json::from_str(&net.conflist()).unwrap_or_default();
        if let Some(plugins) = v["plugins"].as_array_mut() {
            plugins.push(serde_json::json!({ "type": "no-such-plugin" }));
        }
        v.to_string()
    })?;
    let err = t
        .sandboxes
        .create(&t.config("broken"))
        .err()
        .context("create should fail")?;
    assert!(err.to_string().contains("no-such-plugin"), "{err}");
    // The bridge's DEL ran (lease and veth gone) although the missing plugin's DEL
    // failed; that failure keeps the sandbox recorded, not ready, for a retried remove.
    assert_eq!(t.leases().len(), 0, "bridge's DEL ran");
    assert!(t.veths().is_empty());
    assert_eq!(t.sandboxes.list()?, vec!["broken"]);
    assert_eq!(t.sandboxes.status("broken")?, SandboxState::NotReady);
    assert!(t.sandboxes.remove("broken").is_err());
    Ok(())
}

#[test]
fn orphans_from_a_crash_are_listed_and_removed() -> Result<()> {
    let t = TestNet::new()?;
    // A crash between pinning and writing state: namespace files without sandbox.json.
    let dir = t.sandboxes.root().join("orphan");
    let (net, uts) = (dir.join("ns/net"), dir.join("ns/uts"));
    sandbox::pin_namespaces(Some(&net), None, Some(&uts), Some("orphan"))?;
    assert!(sandbox::is_pinned(&net) && sandbox::is_pinned(&uts));
    assert_eq!(t.sandboxes.list()?, vec!["orphan"]);
    assert_eq!(
        nsenter(&[&format!("--uts={}", uts.display()), "hostname"])?.trim(),
        "orphan"
    );
    // A fresh Sandboxes over the same root (a restarted kubelet) cleans it up.
    let restarted = Sandboxes::new(t.sandboxes.root(), None);
    restarted.remove("orphan")?;
    assert!(!dir.exists());
    assert!(restarted.list()?.is_empty());
    assert!(matches!(
        restarted.create(&t.config("x")),
        Err(SandboxError::NoNetwork)
    ));
    // A torn state file (a power loss mid-write): the lease is still released by id.
    let s = t.sandboxes.create(&t.config("torn"))?;
    assert_eq!(t.leases(), vec![s.ips[0].to_string()]);
    std::fs::write(
        t.sandboxes.root().join("torn/sandbox.json"),
        b"{\"id\": \"to",
    )?;
    assert!(t.sandboxes.get("torn").is_err());
    t.sandboxes.remove("torn")?;
    assert!(t.leases().is_empty());
    assert!(t.veths().is_empty());
    assert!(t.sandboxes.list()?.is_empty());
    // Leases whose sandbox is unknown (state lost) are released; live ones are kept.
    let live = t.sandboxes.create(&t.config("live"))?;
    let ghost = format!("10.244.{}.250", t.octet);
    let lease_dir = t.dir.path().join("ipam").join(&t.name);
    std::fs::write(lease_dir.join(&ghost), "ghost\r\neth0")?;
    assert_eq!(
        t.sandboxes.release_orphan_leases()?,
        vec![ghost.parse::<IpAddr>()?]
    );
    assert_eq!(t.leases(), vec![live.ips[0].to_string()]);
    t.sandboxes.remove("live")?;
    // A networked sandbox is released with the network it was attached with, even by a
    // kubelet that has no CNI configuration loaded (the state caches it).
    let s = t.sandboxes.create(&t.config("cached"))?;
    assert_eq!(t.leases(), vec![s.ips[0].to_string()]);
    restarted.remove("cached")?;
    assert!(t.leases().is_empty());
    assert!(t.veths().is_empty());
    assert_eq!(t.rules(), vec![]);
    assert!(matches!(
        restarted.remove("../etc"),
        Err(SandboxError::InvalidId(_))
    ));
    Ok(())
}

#[test]
fn host_network_pods_share_the_nodes_network_and_hostname() -> Result<()> {
    let t = TestNet::new()?;
    let mut cfg = t.config("hostnet");
    cfg.host_network = true;
    cfg.dns.host_network = true;
    let s = t.sandboxes.create(&cfg)?;
    let ns = s.namespaces(NamespaceMode::Private);
    assert_eq!(ns.network, NamespaceMode::Host);
    assert_eq!(ns.uts, NamespaceMode::Host);
    assert!(matches!(ns.ipc, NamespaceMode::Path(_)));
    assert!(s.ips.is_empty());
    assert!(t.veths().is_empty());
    assert_eq!(
        std::fs::read_to_string(&s.hosts_file)?,
        "# Kubernetes-managed hosts file (host network).\n127.0.0.1\tlocalhost\n"
    );
    // ClusterFirst on the host network is the node's resolv.conf.
    assert_eq!(
        std::fs::read_to_string(&s.resolv_conf)?,
        "search example.org\nnameserver 192.0.2.53\n"
    );
    let node = nix::unistd::gethostname()?.to_string_lossy().into_owned();
    assert_eq!(
        std::fs::read_to_string(&s.hostname_file)?,
        format!("{node}\n")
    );
    assert_eq!(s.hostname, node);
    t.sandboxes.remove("hostnet")?;
    assert!(t.sandboxes.list()?.is_empty());
    Ok(())
}

/// A process in a namespace, killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(addr: &str) -> Result<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse()?, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

fn node_ip() -> Result<String> {
    let out = Command::new("ip")
        .args(["-o", "-4", "route", "get", "1.1.1.1"])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "src" {
            return words.next().map(str::to_string).context("no src");
        }
    }
    bail!("no node IP in {text}")
}

#[test]
fn host_port_reaches_the_pod_through_portmap() -> Result<()> {
    let t = TestNet::new()?;
    let host_port = 31000 + (std::process::id() % 2000) as u16;
    let mut cfg = t.config("web");
    cfg.port_mappings = vec![PortMapping {
        host_port,
        container_port: 8080,
        protocol: "tcp".into(),
        host_ip: String::new(),
    }];
    let s = t.sandboxes.create(&cfg)?;
    let www = t.dir.path().join("www");
    std::fs::create_dir_all(&www)?;
    std::fs::write(www.join("index.html"), "hello from the pod\n")?;
    let net = format!("--net={}", s.netns.as_ref().context("netns")?.display());
    let _httpd = Proc(
        Command::new("nsenter")
            .args([
                net.as_str(),
                "/bin/busybox",
                "httpd",
                "-f",
                "-p",
                "8080",
                "-h",
            ])
            .arg(&www)
            .spawn()?,
    );
    let pod = format!("{}:8080", s.ips[0]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while http_get(&pod).is_err() {
        if Instant::now() > deadline {
            bail!("httpd in the pod never answered on {pod}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let node = format!("{}:{host_port}", node_ip()?);
    let body = http_get(&node).with_context(|| format!("hostPort at {node}"))?;
    assert!(body.contains("hello from the pod"), "{body}");
    // 127.0.0.1 works too: portmap sets route_localnet on the bridge and masquerades.
    let local = format!("127.0.0.1:{host_port}");
    let body = http_get(&local).with_context(|| format!("hostPort at {local}"))?;
    assert!(body.contains("hello from the pod"), "{body}");
    t.sandboxes.remove("web")?;
    assert!(
        http_get(&node).is_err(),
        "the hostPort is gone with the pod"
    );
    assert_eq!(t.rules(), vec![]);
    Ok(())
}

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The floor under pod start: a pinned netns, CNI ADD (loopback + bridge/host-local +
/// portmap), DEL. Printed, not asserted (run with --nocapture to see it).
#[test]
fn floor_timings() -> Result<()> {
    let t = TestNet::new()?;
    let (mut pin, mut add, mut del, mut create, mut remove) =
        (vec![], vec![], vec![], vec![], vec![]);
    let cni = {
        let list = NetworkList::load_dir(&t.dir.path().join("cni"))?;
        Cni::new(list, vec![PathBuf::from("/usr/lib/cni")])
    };
    let bridge_only = Cni::new(
        NetworkList {
            plugins: cni.network.plugins[..1].to_vec(),
            ..cni.network.clone()
        },
        cni.bin_dirs.clone(),
    );
    let (mut add_bridge, mut del_bridge) = (vec![], vec![]);
    // Warm up the bridge once (its creation is a one-off per node).
    t.sandboxes.create(&t.config("warm"))?;
    for i in 0..20 {
        let dir = t.dir.path().join(format!("bench{i}"));
        let net = dir.join("net");
        let start = Instant::now();
        sandbox::pin_namespaces(Some(&net), None, None, None)?;
        pin.push(start.elapsed());
        let att = skiff_runtime::sandbox::cni::Attachment {
            container_id: format!("bench{i}"),
            netns: Some(net.clone()),
            ifname: "eth0".into(),
            ..Default::default()
        };
        let start = Instant::now();
        let result = cni.add(&att);
        add.push(start.elapsed());
        let start = Instant::now();
        cni.del(&att, result.as_ref().ok())?;
        del.push(start.elapsed());
        sandbox::unpin(&net)?;
        result?;

        let bare = dir.join("bare");
        sandbox::pin_namespaces(Some(&bare), None, None, None)?;
        let att = skiff_runtime::sandbox::cni::Attachment {
            container_id: format!("bare{i}"),
            netns: Some(bare.clone()),
            ifname: "eth0".into(),
            ..Default::default()
        };
        let start = Instant::now();
        let result = bridge_only.add(&att);
        add_bridge.push(start.elapsed());
        let start = Instant::now();
        bridge_only.del(&att, result.as_ref().ok())?;
        del_bridge.push(start.elapsed());
        sandbox::unpin(&bare)?;
        result?;

        let id = format!("s{i}");
        let start = Instant::now();
        t.sandboxes.create(&t.config(&id))?;
        create.push(start.elapsed());
        let start = Instant::now();
        t.sandboxes.remove(&id)?;
        remove.push(start.elapsed());
    }
    t.sandboxes.remove("warm")?;
    // Twenty cycles of everything leave nothing behind.
    assert!(t.sandboxes.list()?.is_empty());
    assert!(t.leases().is_empty());
    assert!(t.veths().is_empty());
    assert_eq!(t.rules(), vec![]);
    assert_eq!(mounts_under(t.dir.path()), Vec::<String>::new());
    println!(
        "p50 over 20: pinned netns {:?}, CNI ADD (bridge+host-local+portmap) {:?}, DEL {:?}; \
         bridge+host-local alone ADD {:?}, DEL {:?}; \
         whole sandbox create (net+ipc+uts, loopback, ADD, files) {:?}, remove {:?}",
        p50(pin),
        p50(add),
        p50(del),
        p50(add_bridge),
        p50(del_bridge),
        p50(create),
        p50(remove)
    );
    Ok(())
}

/// Mounts under `dir` (pinned namespaces left behind would show here).
fn mounts_under(dir: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let prefix = dir.display().to_string();
    info.lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_burst_of_sandboxes_in_parallel_gets_distinct_ips_and_leaves_nothing() -> Result<()> {
    let t = TestNet::new()?;
    // The bridge exists before the burst, as on a node that runs pods.
    t.sandboxes.create(&t.config("first"))?;
    let start = Instant::now();
    let made: Vec<Result<IpAddr>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let t = &t;
                scope.spawn(move || -> Result<IpAddr> {
                    let s = t.sandboxes.create(&t.config(&format!("p{i}")))?;
                    s.ips.first().copied().context("no IP")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| bail!("a create panicked")))
            .collect()
    });
    let elapsed = start.elapsed();
    let mut ips = made.into_iter().collect::<Result<Vec<_>>>()?;
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 12, "distinct IPs: {ips:?}");
    assert_eq!(t.veths().len(), 13);
    println!("12 sandboxes created in parallel in {elapsed:?}");
    let ids = t.sandboxes.list()?;
    std::thread::scope(|scope| {
        for id in &ids {
            let t = &t;
            scope.spawn(move || t.sandboxes.remove(id));
        }
    });
    assert!(t.sandboxes.list()?.is_empty());
    assert!(t.leases().is_empty());
    assert!(t.veths().is_empty());
    assert_eq!(t.rules(), vec![]);
    assert_eq!(mounts_under(t.dir.path()), Vec::<String>::new());
    Ok(())
}
