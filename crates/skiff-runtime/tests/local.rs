//! LocalRuntime through the `PodRuntime` trait, for real: an image built from
//! busybox-static with umoci and imported, a sandbox with CNI (bridge + host-local),
//! containers run by runc under monitors, a pod cgroup on this host's cgroup v1.
//!
//! Needs root, runc, umoci, skopeo, busybox-static and the CNI plugins (scripts/test.sh
//! installs them). The monitor is this test binary re-executed (`monitor_entry`). The Drop
//! guard removes containers, rootfs mounts, sandboxes, the test bridge, its iptables rules
//! and the cgroups even when a test fails.

mod images_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use skiff_runtime::cgroups::{Cgroups, Version};
use skiff_runtime::container::monitor::{self, MonitorCommand};
use skiff_runtime::container::spec::{ContainerConfig, NamespaceMode};
use skiff_runtime::cri::{
    ContainerInfo, ContainerMeta, ContainerState, CriError, ImageInfo, PodCgroup, PodRuntime,
    StreamRequest, TerminalSize,
};
use skiff_runtime::image::{self, Store};
use skiff_runtime::local::{LocalConfig, LocalRuntime};
use skiff_runtime::sandbox::cni::{Cni, DefaultNetwork, NetworkList};
use skiff_runtime::sandbox::files::{DnsInput, DnsPolicy};
use skiff_runtime::sandbox::{self as sb, Sandbox, SandboxConfig, Sandboxes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The monitor, when this binary is re-executed as one.
#[test]
fn monitor_entry() {
    let Some(last) = std::env::args().next_back() else {
        return;
    };
    if last.ends_with("monitor.json") {
        std::process::exit(monitor::run(Path::new(&last)));
    }
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

struct Node {
    data: tempfile::TempDir,
    _images: images_support::TestImages,
    network: String,
    bridge: String,
    cni: Cni,
    /// The test's cgroup top; pods go below it.
    cgroup_top: String,
}

impl Node {
    fn new() -> Result<Node> {
        let data = tempfile::Builder::new()
            .prefix("skiff-local-")
            .tempdir_in("/var/tmp")?;
        let images = images_support::build()?;
        let store = Store::open(image::store_root(data.path()))?;
        image::import_archive(&store, &images.oci_archive)?;
        let seq = SEQ.fetch_add(1, Ordering::SeqCst);
        let tag = format!("{:x}{seq}", std::process::id() % 0xfff);
        let net = DefaultNetwork {
            name: format!("skiff-localtest-{tag}"),
            bridge: format!("skl{tag}"),
            pod_cidr: format!(
                "10.245.{}.0/24",
                (std::process::id() as usize * 3 + seq) % 250
            ),
            ipam_data_dir: data.path().join("agent/cni-ipam"),
            ip_masq: true,
        };
        let conf = net.write(&data.path().join("agent/cni"))?;
        let list = NetworkList::load_dir(conf.parent().context("conf dir")?)?;
        Ok(Node {
            cni: Cni::new(list, vec![PathBuf::from("/usr/lib/cni")]),
            network: net.name,
            bridge: net.bridge,
            cgroup_top: format!("/skiff-local-test-{}-{seq}", std::process::id()),
            _images: images,
            data,
        })
    }

    /// A LocalRuntime on this node's data dir (a new one per call: a "restarted kubelet").
    fn runtime(&self) -> Result<LocalRuntime> {
        let monitor = MonitorCommand {
            program: std::env::current_exe()?,
            args: vec![
                "--exact".into(),
                "monitor_entry".into(),
                "--nocapture".into(),
                "--quiet".into(),
            ],
        };
        let mut config = LocalConfig::new(self.data.path(), monitor);
        config.cni = Some(self.cni.clone());
        Ok(LocalRuntime::new(config)?)
    }

    fn pod_cgroup(&self, uid: &str) -> String {
        format!("{}/pod{uid}", self.cgroup_top)
    }

    fn mounts_under_data(&self) -> Vec<String> {
        let d = self.data.path().display().to_string();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&d))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let agent = self.data.path().join("agent");
        let containers = agent.join("containers");
        if let Ok(entries) = std::fs::read_dir(&containers) {
            for e in entries.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                let _ = Command::new("runc")
                    .arg("--root")
                    .arg(containers.join("runc"))
                    .args(["delete", "--force", &id])
                    .stderr(Stdio::null())
                    .status();
                let _ = image::unmount_rootfs(&e.path());
            }
        }
        let sandboxes =
            Sandboxes::new(sb::sandboxes_root(self.data.path()), Some(self.cni.clone()));
        for id in sandboxes.list().unwrap_or_default() {
            if let Err(e) = sandboxes.remove(&id) {
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
        let _ = Cgroups::detect().remove(&self.cgroup_top);
    }
}

fn sandbox_config(id: &str, uid: &str) -> SandboxConfig {
    SandboxConfig {
        id: id.into(),
        pod_name: "web".into(),
        pod_namespace: "shop".into(),
        pod_uid: uid.into(),
        hostname: "web".into(),
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
    }
}

fn new_id() -> String {
    let mut b = [0u8; 16];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

struct Made {
    id: String,
    config: ContainerConfig,
}

/// Creates container `name` of the pod with `args`, ready to start.
async fn create(
    rt: &LocalRuntime,
    node: &Node,
    sandbox: &Sandbox,
    image: &ImageInfo,
    cgroup: &str,
    name: &str,
    args: &[&str],
) -> Result<Made> {
    let id = new_id();
    let meta = ContainerMeta {
        pod_uid: sandbox.pod_uid.clone(),
        pod_name: sandbox.pod_name.clone(),
        pod_namespace: sandbox.pod_namespace.clone(),
        sandbox_id: sandbox.id.clone(),
        name: name.into(),
        attempt: 0,
        image: images_support::NAME.into(),
        image_id: image.id.clone(),
        image_ref: image.repo_digests.first().cloned().unwrap_or_default(),
        log_path: node
            .data
            .path()
            .join("agent/logs/shop_web_uid")
            .join(name)
            .join("0.log"),
        // `web` is given a stdin (the pod spec's `stdin: true`).
        labels: if name == "web" {
            [(
                skiff_runtime::local::STDIN_LABEL.to_owned(),
                "true".to_owned(),
            )]
            .into()
        } else {
            Default::default()
        },
    };
    let prepared = rt.create_container(&id, image, meta).await?;
    let config = ContainerConfig {
        id: id.clone(),
        rootfs: prepared.rootfs,
        args: args.iter().map(|a| a.to_string()).collect(),
        env: vec!["PATH=/bin".into()],
        cgroup_parent: cgroup.into(),
        mounts: sandbox.mounts(false),
        namespaces: sandbox.namespaces(NamespaceMode::Private),
        ..Default::default()
    };
    Ok(Made { id, config })
}

async fn wait_exited(rt: &LocalRuntime, id: &str, within: Duration) -> Result<ContainerInfo> {
    let deadline = Instant::now() + within;
    loop {
        let info = rt.container_status(id).await?.context("container gone")?;
        if matches!(info.state, ContainerState::Exited { .. }) {
            return Ok(info);
        }
        if Instant::now() > deadline {
            bail!("{id} did not exit: {:?}", info.state);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn exit_code(info: &ContainerInfo) -> Option<(i32, bool)> {
    match info.state {
        ContainerState::Exited {
            exit_code,
            oom_killed,
            ..
        } => Some((exit_code, oom_killed)),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_through_the_trait_and_a_restarted_runtime() -> Result<()> {
    if let Some(why) = images_support::skip_reason() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    let node = Node::new()?;
    let rt = node.runtime()?;

    // Images in every reference form.
    let image = rt
        .image_status(images_support::NAME)
        .await?
        .context("imported image")?;
    for name in [
        images_support::FULL_NAME.to_owned(),
        image.id.clone(),
        image.repo_digests[0].clone(),
    ] {
        let found = rt.image_status(&name).await?;
        assert_eq!(found.map(|i| i.id), Some(image.id.clone()), "{name}");
    }
    let digest = image.repo_digests[0]
        .split_once('@')
        .map(|(_, d)| d.to_owned())
        .context("repo digest")?;
    let short = format!("busybox@{digest}");
    assert_eq!(
        rt.image_status(&short).await?.map(|i| i.id),
        Some(image.id.clone()),
        "{short}"
    );
    assert!(rt
        .image_status("docker.io/library/absent:1")
        .await?
        .is_none());
    assert!(rt.image_status("NOT a reference").await?.is_none());
    let usage = rt.image_fs_usage().await?;
    assert!(usage.used_bytes > 0 && usage.capacity_bytes >= usage.available_bytes);
    assert!(rt.version().await?.starts_with("runc://"));

    // A pod cgroup with limits, read back from the v1 files.
    let cgroups = Cgroups::detect();
    let pod_cg = PodCgroup {
        path: node.pod_cgroup("uid1"),
        cpu_shares: Some(512),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        memory_limit: Some(128 << 20),
        pids_limit: Some(64),
    };
    rt.ensure_pod_cgroup(&pod_cg).await?;
    if cgroups.version() == Version::V1 {
        let read = |c: &str, f: &str| -> Result<String> {
            Ok(
                std::fs::read_to_string(cgroups.dir(c, &pod_cg.path)?.join(f))?
                    .trim()
                    .to_owned(),
            )
        };
        assert_eq!(read("cpu", "cpu.shares")?, "512");
        assert_eq!(read("cpu", "cpu.cfs_quota_us")?, "50000");
        assert_eq!(read("cpu", "cpu.cfs_period_us")?, "100000");
        assert_eq!(
            read("memory", "memory.limit_in_bytes")?,
            (128u64 << 20).to_string()
        );
        assert_eq!(read("pids", "pids.max")?, "64");
        // An update lifts the quota.
        rt.ensure_pod_cgroup(&PodCgroup {
            cpu_quota: None,
            ..pod_cg.clone()
        })
        .await?;
        assert_eq!(read("cpu", "cpu.cfs_quota_us")?, "-1");
    }

    let t = Instant::now();
    let sandbox = rt.run_sandbox(sandbox_config(&new_id(), "uid1")).await?;
    let sandbox_took = t.elapsed();
    assert!(!sandbox.ips.is_empty());

    // Two containers: one runs, one exits 3; and one whose command does not exist.
    let web = create(
        &rt,
        &node,
        &sandbox,
        &image,
        &pod_cg.path,
        "web",
        &["sleep", "1000"],
    )
    .await?;
    let once = create(
        &rt,
        &node,
        &sandbox,
        &image,
        &pod_cg.path,
        "once",
        &["sh", "-c", "echo hi; exit 3"],
    )
    .await?;
    let bad = create(&rt, &node, &sandbox, &image, &pod_cg.path, "bad", &["nope"]).await?;
    // A shell with a terminal and a stdin (the pod spec's tty and stdin).
    let mut tty = create(&rt, &node, &sandbox, &image, &pod_cg.path, "tty", &["sh"]).await?;
    tty.config.terminal = true;
    tty.config.stdin = true;
    assert_eq!(
        rt.container_status(&web.id).await?.map(|i| i.state),
        Some(ContainerState::Created)
    );
    let t = Instant::now();
    rt.start_container(&web.id, &web.config).await?;
    // Measured, not asserted (shared machine): the floor is runc run ~25 ms.
    eprintln!(
        "measured: run_sandbox {sandbox_took:?}, start_container {:?}",
        t.elapsed()
    );
    rt.start_container(&once.id, &once.config).await?;
    rt.start_container(&tty.id, &tty.config).await?;
    match rt.start_container(&bad.id, &bad.config).await {
        Err(CriError::Start(m)) => assert!(
            m.contains("\"nope\": executable file not found in $PATH"),
            "runc's message: {m}"
        ),
        other => bail!("a missing command started: {other:?}"),
    }
    assert_eq!(
        exit_code(&rt.container_status(&bad.id).await?.context("bad")?),
        Some((128, false))
    );
    let once_info = wait_exited(&rt, &once.id, Duration::from_secs(20)).await?;
    assert_eq!(exit_code(&once_info), Some((3, false)));
    assert_eq!(once_info.meta.name, "once");
    let log = std::fs::read_to_string(&once_info.meta.log_path)?;
    assert!(log.contains(" stdout F hi"), "{log}");
    assert!(matches!(
        rt.container_status(&web.id).await?.map(|i| i.state),
        Some(ContainerState::Running { .. })
    ));
    // The monitor of `web` holds a stdin FIFO for attach; `once` has none.
    let fifo = |id: &str| {
        node.data
            .path()
            .join("agent/containers")
            .join(id)
            .join("monitor")
            .join(id)
            .join("stdin")
    };
    assert!(fifo(&web.id).exists(), "{}", fifo(&web.id).display());
    assert!(!fifo(&once.id).exists());
    // The container's cgroup nests in the pod's.
    if cgroups.version() == Version::V1 {
        let c = cgroups.dir("memory", &format!("{}/{}", pod_cg.path, web.id))?;
        assert!(c.is_dir(), "{} missing", c.display());
    }

    // A restarted runtime sees and controls all of it.
    drop(rt);
    let rt2 = node.runtime()?;
    let listed = rt2.list_containers().await?;
    let mut names: Vec<&str> = listed.iter().map(|c| c.meta.name.as_str()).collect();
    names.sort();
    assert_eq!(names, ["bad", "once", "tty", "web"]);
    assert_eq!(rt2.list_sandboxes().await?.len(), 1);
    // It attaches to the terminal the old one's container has (the monitor holds it):
    // input, output and a resize.
    let mut s = rt2
        .attach(
            &tty.id,
            StreamRequest {
                tty: true,
                stdin: true,
                stdout: true,
                ..Default::default()
            },
        )
        .await?;
    let mut input = s.stdin.take().context("stdin")?;
    let mut output = s.stdout.take().context("stdout")?;
    let resize = s.resize.take().context("resize")?;
    resize
        .send(TerminalSize {
            width: 120,
            height: 40,
        })
        .await?;
    let mut got = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    // Asked until the size shows (the resize and the input take different ways).
    while !got.contains("40 120\r\n") {
        if Instant::now() > deadline {
            bail!("no resize seen through the terminal: {got:?}");
        }
        input.write_all(b"stty size\n").await?;
        if let Ok(n) = tokio::time::timeout(Duration::from_millis(300), output.read(&mut buf)).await
        {
            got.push_str(&String::from_utf8_lossy(&buf[..n?]));
        }
    }
    drop((input, output, resize, s));
    rt2.stop_container(&tty.id, Duration::from_millis(300))
        .await?;
    // sleep as pid 1 ignores SIGTERM: SIGKILL after the grace.
    rt2.stop_container(&web.id, Duration::from_millis(300))
        .await?;
    assert_eq!(
        exit_code(&rt2.container_status(&web.id).await?.context("web")?),
        Some((137, false))
    );
    assert!(rt2.start_container(&web.id, &web.config).await.is_err());

    // Removal leaves nothing.
    for id in [&web.id, &once.id, &bad.id, &tty.id] {
        rt2.remove_container(id).await?;
        rt2.remove_container(id).await?;
        assert!(rt2.container_status(id).await?.is_none());
    }
    rt2.remove_sandbox(&sandbox.id).await?;
    rt2.remove_sandbox(&sandbox.id).await?;
    rt2.remove_pod_cgroup(&pod_cg.path).await?;
    rt2.remove_pod_cgroup(&pod_cg.path).await?;
    assert!(rt2.list_containers().await?.is_empty());
    assert!(rt2.list_sandboxes().await?.is_empty());
    assert_eq!(node.mounts_under_data(), Vec::<String>::new());
    assert!(!cgroups.exists(&pod_cg.path), "pod cgroup left");
    if let Some(ns) = &sandbox.netns {
        assert!(!ns.exists(), "netns pin left: {}", ns.display());
    }
    let left: Vec<String> = std::fs::read_dir(node.data.path().join("agent/containers"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "runc")
        .collect();
    assert!(left.is_empty(), "container dirs left: {left:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_memory_limit_oom_kills_and_is_reported() -> Result<()> {
    if let Some(why) = images_support::skip_reason() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    let node = Node::new()?;
    let rt = node.runtime()?;
    let image = rt
        .image_status(images_support::NAME)
        .await?
        .context("imported image")?;
    let pod_cg = PodCgroup {
        path: node.pod_cgroup("uid2"),
        memory_limit: Some(16 << 20),
        ..PodCgroup::default()
    };
    rt.ensure_pod_cgroup(&pod_cg).await?;
    let sandbox = rt.run_sandbox(sandbox_config(&new_id(), "uid2")).await?;
    // The string doubles without bound; only the pod's limit stops it.
    let hog = create(
        &rt,
        &node,
        &sandbox,
        &image,
        &pod_cg.path,
        "hog",
        &["sh", "-c", "x=a; while true; do x=$x$x; done"],
    )
    .await?;
    rt.start_container(&hog.id, &hog.config).await?;
    let info = wait_exited(&rt, &hog.id, Duration::from_secs(60)).await?;
    assert_eq!(exit_code(&info), Some((137, true)), "{:?}", info.state);
    rt.remove_container(&hog.id).await?;
    rt.remove_sandbox(&sandbox.id).await?;
    rt.remove_pod_cgroup(&pod_cg.path).await?;
    assert!(!Cgroups::detect().exists(&pod_cg.path));
    assert_eq!(node.mounts_under_data(), Vec::<String>::new());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_leaves_nothing_and_pull_errors_are_kept_apart() -> Result<()> {
    if let Some(why) = images_support::skip_reason() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    let node = Node::new()?;
    let rt = node.runtime()?;
    let image = rt
        .image_status(images_support::NAME)
        .await?
        .context("imported image")?;
    // An image record without its snapshots' layers cannot give a rootfs.
    let missing = ImageInfo {
        id: format!("sha256:{}", "0".repeat(64)),
        ..image.clone()
    };
    let id = new_id();
    let meta = ContainerMeta {
        name: "x".into(),
        ..ContainerMeta::default()
    };
    assert!(matches!(
        rt.create_container(&id, &missing, meta.clone()).await,
        Err(CriError::NotFound(_))
    ));
    assert!(rt
        .create_container("../escape", &image, meta.clone())
        .await
        .is_err());
    assert!(!node.data.path().join("agent/containers").join(&id).exists());
    let made = rt.create_container(&id, &image, meta.clone()).await?;
    assert!(made.rootfs.join("bin/busybox").exists());
    assert!(matches!(
        rt.create_container(&id, &image, meta).await,
        Err(CriError::Create(_))
    ));
    rt.remove_container(&id).await?;
    assert_eq!(node.mounts_under_data(), Vec::<String>::new());

    // A sandbox directory without state (a crash before its first write) is listed as
    // not ready, and removed.
    let torn = new_id();
    std::fs::create_dir_all(sb::sandboxes_root(node.data.path()).join(&torn))?;
    let listed = rt.list_sandboxes().await?;
    assert!(
        listed.iter().any(|s| s.id == torn && !s.ready),
        "{listed:?}"
    );
    assert_eq!(
        rt.sandbox_status(&torn).await?.map(|(_, st)| st),
        Some(skiff_runtime::sandbox::SandboxState::NotReady)
    );
    rt.remove_sandbox(&torn).await?;
    assert!(rt.sandbox_status(&torn).await?.is_none());
    assert!(rt.list_sandboxes().await?.is_empty());

    // Nothing listens on port 1: unreachable is a Pull error, not ImageNotFound.
    match rt.pull_image("127.0.0.1:1/app:v1", &[]).await {
        Err(CriError::Pull(_)) => {}
        other => bail!("unreachable registry: {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_use_the_pods_secrets_and_the_nodes_registries_file() -> Result<()> {
    if let Some(why) = images_support::skip_reason() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    let node = Node::new()?;
    let reg = images_support::Registry::start(Some(("puller", "s3cret")))?;
    reg.push(&node._images, "team/app:v1", Some("puller:s3cret"))?;
    // The node's registries.yaml says the registry speaks plain HTTP.
    std::fs::write(
        image::registries_file(node.data.path()),
        format!(
            "mirrors:\n  \"{0}\":\n    endpoint: [\"http://{0}\"]\n",
            reg.host()
        ),
    )?;
    let rt = node.runtime()?;
    let name = format!("{}/team/app:v1", reg.host());
    match rt.pull_image(&name, &[]).await {
        Err(CriError::Pull(m)) => assert!(m.contains("pull access denied"), "{m}"),
        other => bail!("anonymous pull: {other:?}"),
    }
    let secret = |host: &str| {
        skiff_runtime::image::DockerConfigJson::parse(
            format!(r#"{{"auths": {{"{host}": {{"username": "puller", "password": "s3cret"}}}}}}"#)
                .as_bytes(),
        )
    };
    // Two secrets merged; the second has the registry's credentials.
    let secrets = [secret("other.example:5000")?, secret(&reg.host())?];
    let pulled = rt.pull_image(&name, &secrets).await?;
    // The same image as the imported busybox:t (same config): one image, both names.
    assert!(pulled.repo_tags.contains(&name), "{:?}", pulled.repo_tags);
    assert_eq!(
        rt.image_status(&name).await?.map(|i| i.id),
        Some(pulled.id.clone())
    );
    match rt
        .pull_image(&format!("{}/team/absent:v1", reg.host()), &secrets)
        .await
    {
        Err(CriError::ImageNotFound(_)) => {}
        other => bail!("a missing tag: {other:?}"),
    }
    rt.remove_image(&name).await?;
    rt.remove_image(&name).await?;
    assert!(rt.image_status(&name).await?.is_none());
    // Removing a name untags (as crictl rmi): the imported name still has the image.
    assert_eq!(
        rt.image_status(images_support::NAME).await?.map(|i| i.id),
        Some(pulled.id)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_pod_cgroup_with_a_process_kills_nothing() -> Result<()> {
    if let Some(why) = images_support::skip_reason() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    let node = Node::new()?;
    let rt = node.runtime()?;
    let cgroups = Cgroups::detect();
    let pod_cg = PodCgroup {
        path: node.pod_cgroup("uid3"),
        pids_limit: Some(10),
        ..PodCgroup::default()
    };
    rt.ensure_pod_cgroup(&pod_cg).await?;
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut sleeper = Kill(Command::new("sleep").arg("1000").spawn()?);
    let procs = cgroups.dir("pids", &pod_cg.path)?.join("cgroup.procs");
    let procs = if cgroups.version() == Version::V1 {
        procs
    } else {
        cgroups.dir("", &pod_cg.path)?.join("cgroup.procs")
    };
    std::fs::write(&procs, sleeper.0.id().to_string())?;
    assert!(rt.remove_pod_cgroup(&pod_cg.path).await.is_err(), "busy");
    assert!(sleeper.0.try_wait()?.is_none(), "the process was killed");
    assert!(cgroups.exists(&pod_cg.path));
    sleeper.0.kill()?;
    sleeper.0.wait()?;
    // A zombie-free, exited process leaves the cgroup: now it goes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(e) = rt.remove_pod_cgroup(&pod_cg.path).await {
        if Instant::now() > deadline {
            bail!("pod cgroup still busy: {e}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!cgroups.exists(&pod_cg.path));
    Ok(())
}
