//! Containers in a pod sandbox: config.json from `container::spec` with the sandbox's
//! namespaces (`NamespaceMode::Path`) and files (`Sandbox::mounts`), run by real runc.
//! Two containers of one pod share its network (one serves, the other fetches over
//! localhost), its hostname and its /etc/hosts. With `shareProcessNamespace` they share a
//! PID namespace whose PID 1 is the sandbox's holder (`sandbox::pause`), here this test
//! binary re-executed (`pause_entry`).
//!
//! Needs root, runc, busybox-static and the CNI plugins (scripts/test.sh installs them).
//! The Drop guard deletes the containers, their cgroups, the sandbox, the test bridge and
//! any iptables rule carrying the test network's name.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use skiff_runtime::container::spec::{self, ContainerConfig, NamespaceMode};
use skiff_runtime::sandbox::cni::{Cni, DefaultNetwork, NetworkList};
use skiff_runtime::sandbox::files::{DnsInput, DnsPolicy};
use skiff_runtime::sandbox::pause::{self, PauseCommand, PauseProcess};
use skiff_runtime::sandbox::{is_pinned, SandboxConfig, SandboxState, Sandboxes};

/// The PID namespace holder when this binary is re-executed as one (see `holder`).
#[test]
fn pause_entry() {
    if pause::invoked() {
        std::process::exit(pause::run());
    }
}

fn holder() -> PauseCommand {
    PauseCommand {
        program: std::env::current_exe().expect("test binary"),
        args: vec![
            "--exact".into(),
            "pause_entry".into(),
            "--nocapture".into(),
            "--quiet".into(),
        ],
    }
}

struct Pod {
    dir: tempfile::TempDir,
    network: String,
    bridge: String,
    cgroup_parent: String,
    sandboxes: Sandboxes,
    containers: std::cell::RefCell<Vec<String>>,
}

impl Pod {
    fn new() -> Result<Pod> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-sandbox-")
            .tempdir_in("/var/tmp")?;
        // One bridge, network and range per Pod: the tests of this binary run in parallel,
        // and each Pod's Drop deletes its bridge.
        static PODS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = PODS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tag = format!("{:x}{n}", std::process::id() % 0xffff);
        let net = DefaultNetwork {
            name: format!("skiff-podtest-{tag}"),
            bridge: format!("skp{tag}"),
            pod_cidr: format!("10.244.{}.0/24", 20 + (std::process::id() * 4 + n) % 80),
            ipam_data_dir: dir.path().join("ipam"),
            ip_masq: true,
        };
        let conf = net.write(&dir.path().join("cni"))?;
        let list = NetworkList::load_dir(conf.parent().context("conf dir")?)?;
        let sandboxes = Sandboxes::new(
            dir.path().join("sandboxes"),
            Some(Cni::new(list, vec![PathBuf::from("/usr/lib/cni")])),
        )
        .with_pause(Some(holder()));
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "www"] {
            std::fs::create_dir_all(rootfs.join(d))?;
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).context("busybox-static")?;
        for a in [
            "sh", "cat", "hostname", "ip", "wget", "httpd", "sleep", "readlink", "ps",
        ] {
            symlink("busybox", rootfs.join("bin").join(a))?;
        }
        std::fs::write(
            rootfs.join("www/index.html"),
            "served from the first container\n",
        )?;
        Ok(Pod {
            network: net.name,
            bridge: net.bridge,
            cgroup_parent: format!("/skiff-sandbox-test-{}", std::process::id()),
            sandboxes,
            containers: Default::default(),
            dir,
        })
    }

    fn runc(&self) -> Command {
        let mut c = Command::new("runc");
        c.arg("--root").arg(self.dir.path().join("runc"));
        c
    }

    fn bundle(&self, cfg: &ContainerConfig) -> Result<PathBuf> {
        let bundle = self.dir.path().join("bundles").join(&cfg.id);
        std::fs::create_dir_all(&bundle)?;
        spec::write_config(&bundle, cfg)?;
        self.containers.borrow_mut().push(cfg.id.clone());
        Ok(bundle)
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        for id in self.containers.borrow().iter() {
            let _ = self
                .runc()
                .args(["delete", "--force", id])
                .stderr(Stdio::null())
                .status();
        }
        for id in self.sandboxes.list().unwrap_or_default() {
            if let Err(e) = self.sandboxes.remove(&id) {
                eprintln!("cleanup: sandbox {id}: {e}");
            }
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        if let Ok(out) = Command::new("iptables").args(["-t", "nat", "-S"]).output() {
            for rule in String::from_utf8_lossy(&out.stdout).lines() {
                if rule.starts_with("-A ") && rule.contains(&format!("\\\"{}\\\"", self.network)) {
                    let del = format!("iptables -t nat {}", rule.replacen("-A ", "-D ", 1));
                    let _ = Command::new("sh").args(["-c", &del]).status();
                }
            }
        }
        // The containers' cgroups (runc removes them on delete; a killed run may not).
        let rel = self.cgroup_parent.trim_start_matches('/');
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            for root in entries
                .flatten()
                .map(|e| e.path())
                .chain([PathBuf::from("/sys/fs/cgroup")])
            {
                let top = root.join(rel);
                if let Ok(children) = std::fs::read_dir(&top) {
                    for c in children.flatten().filter(|c| c.path().is_dir()) {
                        let _ = std::fs::remove_dir(c.path());
                    }
                }
                let _ = std::fs::remove_dir(&top);
            }
        }
    }
}

fn wait_for(path: &Path, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[test]
fn containers_share_the_sandbox_network_hostname_and_files() -> Result<()> {
    let pod = Pod::new()?;
    let sandbox = pod.sandboxes.create(&SandboxConfig {
        id: "pod1".into(),
        pod_name: "web-7d4b9c".into(),
        pod_namespace: "shop".into(),
        pod_uid: "uid-1".into(),
        hostname: "web-7d4b9c".into(),
        host_network: false,
        host_ipc: false,
        share_pid: false,
        port_mappings: vec![],
        domain: None,
        host_aliases: vec![],
        node_hosts: String::new(),
        dns: DnsInput {
            policy: DnsPolicy::ClusterFirst,
            host_network: false,
            namespace: "shop".into(),
            cluster_dns: vec!["10.43.0.10".into()],
            cluster_domain: "cluster.local".into(),
            host_resolv_conf: Some(String::new()),
            dns_config: None,
        },
    })?;
    let config = |id: &str, args: &[&str]| ContainerConfig {
        id: id.into(),
        rootfs: pod.dir.path().join("rootfs"),
        args: args.iter().map(|a| a.to_string()).collect(),
        cgroup_parent: pod.cgroup_parent.clone(),
        hostname: Some(sandbox.hostname.clone()),
        mounts: sandbox.mounts(false),
        namespaces: sandbox.namespaces(NamespaceMode::Private),
        ..Default::default()
    };

    // The first container serves on 8080 and stays up (detached).
    let server = pod.bundle(&config(
        "server",
        &["httpd", "-f", "-p", "8080", "-h", "/www"],
    ))?;
    let st = pod
        .runc()
        .args(["run", "--detach", "--bundle"])
        .arg(&server)
        .arg("server")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()?;
    assert!(st.success(), "runc run server");

    // The second fetches it over the pod's localhost and reports what it sees.
    let marker = pod.dir.path().join("rootfs/tmp/done");
    let script = "hostname; cat /etc/hosts /etc/resolv.conf; ip -o -4 addr show eth0; \
                  for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://127.0.0.1:8080/ && break; sleep 0.2; done; \
                  readlink /proc/self/ns/net; touch /tmp/done";
    let client = pod.bundle(&config("client", &["sh", "-c", script]))?;
    let out = pod
        .runc()
        .args(["run", "--bundle"])
        .arg(&client)
        .arg("client")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    wait_for(&marker, "the client container")?;
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("web-7d4b9c"), "{out}");
    assert!(out.contains("# Kubernetes-managed hosts file.\n"), "{out}");
    let ip = sandbox.ips[0].to_string();
    assert!(out.contains(&format!("{ip}\tweb-7d4b9c\n")), "{out}");
    assert!(out.contains("search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.43.0.10\noptions ndots:5\n"), "{out}");
    assert!(out.contains(&format!("inet {ip}/24")), "{out}");
    assert!(out.contains("served from the first container"), "{out}");
    // The container's network namespace is the pinned one.
    let pinned = std::fs::metadata(sandbox.netns.as_ref().context("netns")?)?;
    use std::os::unix::fs::MetadataExt;
    assert!(out.contains(&format!("net:[{}]", pinned.ino())), "{out}");

    // Tear down in the kubelet's order: containers, then the sandbox.
    for id in ["server", "client"] {
        let st = pod.runc().args(["delete", "--force", id]).status()?;
        assert!(st.success(), "runc delete {id}");
    }
    pod.sandboxes.remove("pod1")?;
    assert!(pod.sandboxes.list()?.is_empty());
    Ok(())
}

fn pod_config(id: &str, share_pid: bool) -> SandboxConfig {
    SandboxConfig {
        id: id.into(),
        pod_name: id.into(),
        pod_namespace: "shop".into(),
        pod_uid: format!("uid-{id}"),
        hostname: id.into(),
        host_network: false,
        host_ipc: false,
        share_pid,
        port_mappings: vec![],
        domain: None,
        host_aliases: vec![],
        node_hosts: String::new(),
        dns: DnsInput {
            policy: DnsPolicy::ClusterFirst,
            host_network: false,
            namespace: "shop".into(),
            cluster_dns: vec!["10.43.0.10".into()],
            cluster_domain: "cluster.local".into(),
            host_resolv_conf: Some(String::new()),
            dns_config: None,
        },
    }
}

/// Whether `pid` is a process that runs (present and not a zombie).
fn runs(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
    })
}

fn holder_of(pod: &Pod, id: &str) -> Result<PauseProcess> {
    pod.sandboxes.get(id)?.pause.context("no holder recorded")
}

/// The host pids of the processes whose cmdline is `/pause` with our entry's arguments
/// (what a leak of holders would leave).
fn holders_running(pid_ns_ino: u64) -> Vec<i32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| {
            std::fs::metadata(format!("/proc/{p}/ns/pid")).is_ok_and(|m| m.ino() == pid_ns_ino)
        })
        .filter(|p| runs(*p))
        .collect()
}

#[test]
fn containers_share_the_pods_pid_namespace_whose_pid_1_is_the_holder() -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let pod = Pod::new()?;
    let sandbox = pod.sandboxes.create(&pod_config("shared", true))?;
    let pin = sandbox.pid.clone().context("no pid namespace pinned")?;
    assert!(is_pinned(&pin), "{}", pin.display());
    let holder = sandbox.pause.context("no holder recorded")?;
    assert!(pause::alive(&holder));
    let ns_ino = std::fs::metadata(&pin)?.ino();
    assert_eq!(
        std::fs::metadata(format!("/proc/{}/ns/pid", holder.pid))?.ino(),
        std::fs::metadata(format!("/proc/{}/ns/pid_for_children", holder.pid))?.ino(),
        "the holder is not inside the namespace it pins"
    );
    assert_eq!(
        ns_ino,
        std::fs::metadata(format!("/proc/{}/ns/pid", holder.pid))?.ino()
    );
    // It is in the sandbox's network namespace too.
    assert_eq!(
        std::fs::metadata(format!("/proc/{}/ns/net", holder.pid))?.ino(),
        std::fs::metadata(sandbox.netns.as_ref().context("netns")?)?.ino()
    );
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", holder.pid))?;
    assert!(cmdline.starts_with(b"/pause\0"), "{cmdline:?}");
    assert_eq!(pod.sandboxes.status("shared")?, SandboxState::Ready);
    let status = std::fs::read_to_string(format!("/proc/{}/status", holder.pid))?;
    let nspid = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .context("NSpid")?;
    assert!(
        nspid.ends_with("\t1"),
        "not PID 1 in its namespace: {nspid}"
    );

    let config = |id: &str, args: &[&str]| ContainerConfig {
        id: id.into(),
        rootfs: pod.dir.path().join("rootfs"),
        args: args.iter().map(|a| a.to_string()).collect(),
        cgroup_parent: pod.cgroup_parent.clone(),
        hostname: Some(sandbox.hostname.clone()),
        mounts: sandbox.mounts(false),
        namespaces: sandbox.namespaces(sandbox.pid_namespace()),
        ..Default::default()
    };
    let a = pod.bundle(&config("a", &["sleep", "1000"]))?;
    let st = pod
        .runc()
        .args(["run", "--detach", "--bundle"])
        .arg(&a)
        .arg("a")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()?;
    assert!(st.success(), "runc run a");
    let state = pod.runc().args(["state", "a"]).output()?;
    let state: serde_json::Value = serde_json::from_slice(&state.stdout)?;
    let a_pid = i32::try_from(state["pid"].as_i64().context("a's pid")?)?;
    assert_eq!(
        std::fs::metadata(format!("/proc/{a_pid}/ns/pid"))?.ino(),
        ns_ino
    );

    // b sees a and PID 1; an orphan it leaves is reaped by PID 1 (no zombie remains).
    let script = "cat /proc/1/cmdline; echo; ps; (sleep 0.1 &); sleep 1; \
                  echo zombies:; grep -l ') Z ' /proc/[0-9]*/stat; echo end";
    let b = pod.bundle(&config("b", &["sh", "-c", script]))?;
    let out = pod
        .runc()
        .args(["run", "--bundle"])
        .arg(&b)
        .arg("b")
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.starts_with("/pause\0"), "{out}");
    assert!(out.contains("sleep 1000"), "b does not see a: {out}");
    let ps_pid1 = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some("1"))
        .context(format!("no PID 1 in ps: {out}"))?;
    assert!(ps_pid1.contains("/pause"), "{ps_pid1}");
    assert!(out.contains("zombies:\nend"), "a zombie was left: {out}");
    let st = pod.runc().args(["delete", "--force", "b"]).status()?;
    assert!(st.success(), "runc delete b");

    // Removal with a still running: the holder and everything in the namespace go, and
    // no mount is left.
    pod.sandboxes.remove("shared")?;
    assert!(!runs(holder.pid), "the holder survived removal");
    assert!(!runs(a_pid), "a's process survived the sandbox's removal");
    assert!(holders_running(ns_ino).is_empty());
    assert!(!pin.exists() && !is_pinned(&pin));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    assert!(
        !mounts.contains(&pod.dir.path().display().to_string()),
        "{mounts}"
    );
    let _ = pod.runc().args(["delete", "--force", "a"]).status();
    assert!(pod.sandboxes.list()?.is_empty());
    Ok(())
}

#[test]
fn a_restarted_runtime_finds_and_removes_the_holder_and_sigterm_stops_it() -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let pod = Pod::new()?;
    // Without shareProcessNamespace there is no holder and no pid namespace.
    let plain = pod.sandboxes.create(&pod_config("plain", false))?;
    assert_eq!((plain.pid.clone(), plain.pause), (None, None));
    assert!(!pod.dir.path().join("sandboxes/plain/ns/pid").exists());
    assert_eq!(
        plain.namespaces(plain.pid_namespace()).pid,
        NamespaceMode::Private
    );

    let made = pod.sandboxes.create(&pod_config("kept", true))?;
    let kept = made.pause.context("holder")?;
    let pin = made.pid.clone().context("pin")?;
    let ns_ino = std::fs::metadata(&pin)?.ino();
    // A new runtime instance (a restarted kubelet) sees it ready and removes it.
    let restarted = Sandboxes::new(pod.sandboxes.root(), None).with_pause(Some(holder()));
    assert_eq!(restarted.status("kept")?, SandboxState::Ready);
    restarted.remove("kept")?;
    assert!(!runs(kept.pid) && holders_running(ns_ino).is_empty());
    assert!(!is_pinned(&pin) && !pin.exists());

    // SIGTERM ends the holder (as upstream's pause); the sandbox is then not ready.
    pod.sandboxes.create(&pod_config("termed", true))?;
    let h = holder_of(&pod, "termed")?;
    let st = Command::new("kill")
        .args(["-TERM", &h.pid.to_string()])
        .status()?;
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while pause::alive(&h) {
        if Instant::now() > deadline {
            bail!("the holder ignored SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(pod.sandboxes.status("termed")?, SandboxState::NotReady);
    pod.sandboxes.remove("termed")?;

    // A crash between pinning and recording the holder: removal finds it by its namespace.
    pod.sandboxes.create(&pod_config("halfmade", true))?;
    let h = holder_of(&pod, "halfmade")?;
    let state = pod.dir.path().join("sandboxes/halfmade/sandbox.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&state)?)?;
    v["pause"] = serde_json::Value::Null;
    v["ready"] = serde_json::Value::Bool(false);
    std::fs::write(&state, serde_json::to_vec(&v)?)?;
    assert_eq!(pod.sandboxes.status("halfmade")?, SandboxState::NotReady);
    pod.sandboxes.remove("halfmade")?;
    assert!(!runs(h.pid), "the unrecorded holder survived removal");

    // And with no state file at all.
    pod.sandboxes.create(&pod_config("nostate", true))?;
    let h = holder_of(&pod, "nostate")?;
    std::fs::remove_file(pod.dir.path().join("sandboxes/nostate/sandbox.json"))?;
    pod.sandboxes.remove("nostate")?;
    assert!(
        !runs(h.pid),
        "the holder of a stateless sandbox survived removal"
    );
    pod.sandboxes.remove("plain")?;
    assert!(pod.sandboxes.list()?.is_empty());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    assert!(
        !mounts.contains(&pod.dir.path().display().to_string()),
        "{mounts}"
    );
    Ok(())
}
