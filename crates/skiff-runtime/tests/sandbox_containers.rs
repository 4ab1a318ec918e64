//! Containers in a pod sandbox: config.json from `container::spec` with the sandbox's
//! namespaces (`NamespaceMode::Path`) and files (`Sandbox::mounts`), run by real runc.
//! Two containers of one pod share its network (one serves, the other fetches over
//! localhost), its hostname and its /etc/hosts.
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
use skiff_runtime::sandbox::{SandboxConfig, Sandboxes};

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
        let tag = format!("{:x}", std::process::id() % 0xffff);
        let net = DefaultNetwork {
            name: format!("skiff-podtest-{tag}"),
            bridge: format!("skp{tag}"),
            pod_cidr: format!("10.244.{}.0/24", 20 + std::process::id() % 80),
            ipam_data_dir: dir.path().join("ipam"),
        };
        let conf = net.write(&dir.path().join("cni"))?;
        let list = NetworkList::load_dir(conf.parent().context("conf dir")?)?;
        let sandboxes = Sandboxes::new(
            dir.path().join("sandboxes"),
            Some(Cni::new(list, vec![PathBuf::from("/usr/lib/cni")])),
        );
        let rootfs = dir.path().join("rootfs");
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "www"] {
            std::fs::create_dir_all(rootfs.join(d))?;
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).context("busybox-static")?;
        for a in [
            "sh", "cat", "hostname", "ip", "wget", "httpd", "sleep", "readlink",
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
