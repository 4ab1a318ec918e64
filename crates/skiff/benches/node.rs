//! The node benchmark (issue 14): the release `skiff server` with its own real node (root,
//! runc, the CNI bridge, the demo image of scripts/demo-image.sh in the air-gap directory)
//! on a fresh data dir, measuring:
//!
//! - `idle`: the server's memory (RSS, PSS, private from `/proc/<pid>/smaps_rollup`) with
//!   its node idle and no pods (goal <= 60 MB), beside a `--disable-agent` server started
//!   at the same time: the difference is the node's share (goal <= 30 MB);
//! - `one`: one pod (image present, `IfNotPresent`, no probes) from the create call to
//!   `Running` and to `Ready` as a watch sees it, deleted (grace 0) and the host clean
//!   between runs; 20 runs, p50/p90/max (goal p50 <= 150 ms); in the same runs, the floor:
//!   `ip netns add`/`del`, a CNI bridge + host-local + portmap ADD/DEL on its own bridge
//!   (the node's plugins, called as the node calls them) and `runc run -d` of a busybox
//!   bundle made with umoci;
//! - `burst`: 100 pods created as fast as the API takes them (32 at a time): until all are
//!   Running (goal <= 2.5 s) and the per-pod create -> Running p50 (goal <= 1.2 s); the
//!   server's memory and each container monitor's private memory (goal <= 1 MB) with the
//!   100 pods; then all deleted (grace 0): the time until the host is clean (no monitors,
//!   mounts under the data dir, sandboxes, containers, pod cgroups, the pods' veths or
//!   IPAM leases), which must leave nothing behind.
//!
//! `cargo bench -p skiff --bench node` runs all three (as root; it says why it skips
//! otherwise); `SKIFF_BENCH_ONLY=idle` (or `one`, `burst`) one; `SKIFF_BENCH_DIR` (default
//! /var/tmp) holds the data dirs; `SKIFF_BENCH_SERVER=PATH` measures another `skiff`
//! binary; `SKIFF_BENCH_RUNS` changes the 20 runs of `one`; `SKIFF_BENCH_TRACE=1` prints
//! each pod's wall-clock times (to line up with an `strace -f -tt` of the server).
//! Everything the node made is removed through `LocalRuntime` when the bench ends,
//! failed or not.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod, ServiceAccount};
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use serde_json::{json, Value};

const IMAGE: &str = "docker.io/skiff/demo-web:v1";
const NODE: &str = "skiff-bench";
const LABEL: &str = "bench=node";
const BURST: usize = 100;

fn skiff_bin() -> PathBuf {
    std::env::var_os("SKIFF_BENCH_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_skiff")))
}

/// Why this machine cannot run the bench, if it cannot.
fn skip_reason() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root".into());
    }
    for tool in [
        "/usr/bin/umoci",
        "/usr/bin/skopeo",
        "/bin/busybox",
        "/usr/lib/cni/bridge",
        "/usr/sbin/runc",
    ] {
        if !Path::new(tool).exists() {
            return Some(format!("{tool} is missing"));
        }
    }
    None
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

struct Server {
    child: Child,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `skiff server` on `dir` (made fresh by the caller) with `extra` flags, and waits
/// for `/readyz` and its kubeconfig.
async fn start(dir: &Path, extra: &[&str]) -> Result<Server> {
    let port = free_port()?;
    let log = std::fs::File::create(dir.with_extension("log"))?;
    let child = Command::new(skiff_bin())
        .args([
            "server",
            // No cluster DNS: port 53 may be taken, and the numbers stay comparable.
            "--disable-dns",
            "--bind-address",
            "127.0.0.1",
            "--https-port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let server = Server {
        child,
        dir: dir.to_path_buf(),
    };
    let probe = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()?;
    let started = Instant::now();
    loop {
        if let Ok(r) = probe
            .get(format!("https://127.0.0.1:{port}/readyz"))
            .send()
            .await
        {
            if r.status().is_success() && dir.join("kubeconfig.yaml").exists() {
                return Ok(server);
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "server not ready after 60 s (see {})",
                dir.with_extension("log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn client(server: &Server) -> Result<Client> {
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(server.dir.join("kubeconfig.yaml"))?,
        &KubeConfigOptions::default(),
    )
    .await?;
    Ok(Client::try_from(config)?)
}

/// Polls `check` every 5 ms until it gives a value, for at most `limit`.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let started = Instant::now();
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if started.elapsed() > limit {
            match last_err {
                Some(e) => bail!("{what}: not after {limit:?}: {e:#}"),
                None => bail!("{what}: not after {limit:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The node Ready with the demo image imported, and the default service account there.
async fn wait_node(client: &Client) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    wait_for(
        "the node Ready with the demo image",
        Duration::from_secs(120),
        || {
            let nodes = nodes.clone();
            async move {
                let Some(node) = nodes.get_opt(NODE).await? else {
                    return Ok(None);
                };
                let status = node.status.unwrap_or_default();
                let ready = status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True");
                let image = status
                    .images
                    .iter()
                    .flatten()
                    .flat_map(|i| i.names.iter().flatten())
                    .any(|n| n == IMAGE);
                Ok((ready && image).then_some(()))
            }
        },
    )
    .await?;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    wait_for(
        "the default service account",
        Duration::from_secs(30),
        || {
            let sas = sas.clone();
            async move { Ok(sas.get_opt("default").await?.map(|_| ())) }
        },
    )
    .await
}

// ---- memory ----

#[derive(Clone, Copy, Default, Debug)]
struct Mem {
    rss_kb: u64,
    pss_kb: u64,
    private_kb: u64,
}

impl Mem {
    fn max(self, o: Mem) -> Mem {
        Mem {
            rss_kb: self.rss_kb.max(o.rss_kb),
            pss_kb: self.pss_kb.max(o.pss_kb),
            private_kb: self.private_kb.max(o.private_kb),
        }
    }
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// `/proc/<pid>/smaps_rollup`: Rss, Pss and Private_Clean + Private_Dirty.
fn mem(pid: u32) -> Result<Mem> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Mem {
        rss_kb: field("Rss:"),
        pss_kb: field("Pss:"),
        private_kb: field("Private_Clean:") + field("Private_Dirty:"),
    })
}

/// The max of 5 samples a second apart.
async fn settled_mem(pid: u32) -> Result<Mem> {
    let mut m = Mem::default();
    for _ in 0..5 {
        m = m.max(mem(pid)?);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(m)
}

/// The pids of processes whose command line (arguments joined by spaces) mentions `needle`.
fn pids_with(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmd)
                .replace('\0', " ")
                .contains(needle)
                .then_some(pid)
        })
        .collect()
}

fn monitors(data: &Path) -> Vec<u32> {
    pids_with(&format!("container-monitor {}", data.display()))
}

// ---- statistics ----

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// p50, p90, max of milliseconds.
fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (pct(&v, 0.5), pct(&v, 0.9), pct(&v, 1.0))
}

fn row(what: &str, v: Vec<f64>) -> f64 {
    let (p50, p90, max) = stats(v);
    println!("| {what} | {p50:.1} | {p90:.1} | {max:.1} |");
    p50
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ---- pods ----

#[derive(Clone, Copy, Default, Debug)]
struct Seen {
    sent: Option<Instant>,
    bound: Option<Instant>,
    running: Option<Instant>,
    ready: Option<Instant>,
}

type Times = Arc<Mutex<HashMap<String, Seen>>>;

fn lock(t: &Times) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// Watches the bench's pods and records when each was first seen bound, Running, Ready.
fn watch_pods(pods: Api<Pod>, times: Times) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(pods, watcher::Config::default().labels(LABEL))
            .default_backoff()
            .applied_objects());
        while let Ok(Some(p)) = events.try_next().await {
            let now = Instant::now();
            let name = p.metadata.name.clone().unwrap_or_default();
            let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
            let status = p.status.unwrap_or_default();
            let running = status.phase.as_deref() == Some("Running");
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let mut t = lock(&times);
            let seen = t.entry(name).or_default();
            if bound {
                seen.bound.get_or_insert(now);
            }
            if running {
                seen.running.get_or_insert(now);
            }
            if ready {
                seen.ready.get_or_insert(now);
            }
        }
    })
}

fn pod(name: &str) -> Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "node"}},
        "spec": {"containers": [{"name": "web", "image": IMAGE,
                                 "imagePullPolicy": "IfNotPresent"}]}
    }))?)
}

async fn create(pods: &Api<Pod>, times: &Times, name: &str) -> Result<String> {
    let p = pod(name)?;
    lock(times).entry(name.into()).or_default().sent = Some(Instant::now());
    let made = pods.create(&PostParams::default(), &p).await?;
    made.metadata.uid.context("no uid")
}

fn grace0() -> DeleteParams {
    DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    }
}

/// Host-side veth names in the node's sandbox records (their CNI results).
fn sandbox_veths(data: &Path) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::Array(ifs)) = m.get("interfaces") {
                    for i in ifs {
                        if i.get("sandbox").is_none() {
                            if let Some(n) = i.get("name").and_then(Value::as_str) {
                                if n.starts_with("veth") {
                                    out.push(n.into());
                                }
                            }
                        }
                    }
                }
                m.values().for_each(|v| walk(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = vec![];
    let root = data.join("agent/sandboxes");
    for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
        if let Ok(text) = std::fs::read_to_string(e.path().join("sandbox.json")) {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                walk(&v, &mut out);
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// What the node's pods left on the host, by kind (all zero when clean).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Leftovers {
    monitors: usize,
    mounts: usize,
    sandboxes: usize,
    containers: usize,
    pod_cgroups: usize,
    veths: usize,
    leases: usize,
    /// `logs/<ns>_<pod>_<uid>` of the pods (upstream's container GC removes them, within
    /// its minute): counted, not required for clean.
    log_dirs: usize,
}

impl Leftovers {
    fn clean(&self) -> bool {
        Leftovers {
            log_dirs: 0,
            ..*self
        } == Leftovers::default()
    }
}

fn dir_len(p: &Path) -> usize {
    std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0)
}

fn leftovers(data: &Path, uids: &[String], veths: &[String]) -> Leftovers {
    let agent = data.join("agent");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&*data.to_string_lossy()))
        .count();
    let pod_cgroups = uids
        .iter()
        .flat_map(|u| skiff_kubelet::pods::qos::pod_cgroup_candidates(u))
        .flat_map(|path| ["memory", "cpu", "pids"].map(|h| format!("/sys/fs/cgroup/{h}{path}")))
        .filter(|p| Path::new(p).exists())
        .count();
    let veths = veths
        .iter()
        .filter(|v| Path::new("/sys/class/net").join(v).exists())
        .count();
    // host-local keeps one file per leased address (beside `lock` and `last_reserved_ip.*`).
    let ipam = skiff_runtime::sandbox::cni::default_ipam_dir(data);
    let leases = std::fs::read_dir(&ipam)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|net| {
            std::fs::read_dir(net.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .filter(|f| {
            f.file_name()
                .to_str()
                .is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok())
        })
        .count();
    Leftovers {
        monitors: monitors(data).len(),
        mounts,
        sandboxes: dir_len(&agent.join("sandboxes")),
        // Container state directories (beside runc's root, `containers/runc`).
        containers: std::fs::read_dir(agent.join("containers"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name() != "runc")
            .count(),
        pod_cgroups,
        veths,
        leases,
        log_dirs: std::fs::read_dir(agent.join("logs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                uids.iter()
                    .any(|u| name.to_string_lossy().ends_with(u.as_str()))
            })
            .count(),
    }
}

async fn wait_clean(data: &Path, uids: &[String], veths: &[String], limit: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        let left = leftovers(data, uids, veths);
        if left.clean() {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!("the host is not clean {limit:?} after the deletes: {left:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---- the floor ----

/// What the floor made, removed on drop.
struct Floor {
    dir: PathBuf,
    cni: skiff_runtime::sandbox::cni::Cni,
    bundle: PathBuf,
    runc_root: PathBuf,
    netns: Vec<String>,
    containers: Vec<String>,
}

const FLOOR_BRIDGE: &str = "skbench0";

impl Floor {
    fn new(base: &Path) -> Result<Floor> {
        use skiff_runtime::sandbox::cni::{self, Cni, DefaultNetwork, NetworkList};
        let dir = base.join("floor");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        // The node's plugins (bridge + host-local + portmap, ipMasq as the node's) on a
        // bridge and range of their own.
        let net = DefaultNetwork {
            name: "skiff-bench".into(),
            bridge: FLOOR_BRIDGE.into(),
            pod_cidr: "10.199.0.0/24".into(),
            ipam_data_dir: dir.join("ipam"),
            ip_masq: false,
        };
        let conf = dir.join("cni");
        net.write(&conf)?;
        let cni = Cni::new(
            NetworkList::load_dir(&conf)?,
            cni::DEFAULT_BIN_DIRS.iter().map(Into::into).collect(),
        );
        // A busybox bundle: `runc run -d` of `sleep`.
        let layout = dir.join("layout");
        let bundle = dir.join("bundle");
        run(Command::new("umoci")
            .arg("init")
            .arg("--layout")
            .arg(&layout))?;
        run(Command::new("umoci")
            .arg("new")
            .arg("--image")
            .arg(format!("{}:b", layout.display())))?;
        run(Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:b", layout.display()))
            .arg(&bundle))?;
        std::fs::create_dir_all(bundle.join("rootfs/bin"))?;
        std::fs::copy("/bin/busybox", bundle.join("rootfs/bin/busybox"))?;
        let config_path = bundle.join("config.json");
        let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&config_path)?)?;
        config["process"]["args"] = json!(["/bin/busybox", "sleep", "3600"]);
        config["process"]["terminal"] = json!(false);
        std::fs::write(&config_path, serde_json::to_vec(&config)?)?;
        Ok(Floor {
            runc_root: dir.join("runc"),
            dir,
            cni,
            bundle,
            netns: vec![],
            containers: vec![],
        })
    }

    fn netns(&mut self, name: &str) -> Result<(Duration, Duration)> {
        let t = Instant::now();
        run(Command::new("ip").args(["netns", "add", name]))?;
        let add = t.elapsed();
        let t = Instant::now();
        run(Command::new("ip").args(["netns", "del", name]))?;
        Ok((add, t.elapsed()))
    }

    fn cni(&mut self, i: usize) -> Result<(Duration, Duration)> {
        use skiff_runtime::sandbox::cni::{Attachment, POD_IFNAME};
        let ns = format!("skiff-bench-{i}");
        run(Command::new("ip").args(["netns", "add", &ns]))?;
        self.netns.push(ns.clone());
        let id = format!("{:032x}", rand::random::<u128>());
        let att = Attachment {
            container_id: id.clone(),
            netns: Some(Path::new("/run/netns").join(&ns)),
            ifname: POD_IFNAME.into(),
            args: vec![
                ("K8S_POD_NAMESPACE".into(), "default".into()),
                ("K8S_POD_NAME".into(), format!("floor-{i}")),
                ("K8S_POD_INFRA_CONTAINER_ID".into(), id),
                (
                    "K8S_POD_UID".into(),
                    format!("{:032x}", rand::random::<u128>()),
                ),
            ],
            port_mappings: vec![],
        };
        let t = Instant::now();
        let result = self.cni.add(&att)?;
        let add = t.elapsed();
        let t = Instant::now();
        self.cni.del(&att, Some(&result))?;
        let del = t.elapsed();
        run(Command::new("ip").args(["netns", "del", &ns]))?;
        self.netns.retain(|n| n != &ns);
        Ok((add, del))
    }

    fn runc(&mut self, i: usize) -> Result<(Duration, Duration)> {
        let id = format!("skiff-bench-{i}");
        self.containers.push(id.clone());
        let t = Instant::now();
        // The container inherits runc's stdio: no pipes, or reading them waits for it.
        let status = Command::new("runc")
            .arg("--root")
            .arg(&self.runc_root)
            .args(["run", "-d", "--bundle"])
            .arg(&self.bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        let started = t.elapsed();
        if !status.success() {
            bail!("runc run -d {id}: {status}");
        }
        let t = Instant::now();
        run(Command::new("runc")
            .arg("--root")
            .arg(&self.runc_root)
            .args(["delete", "-f", &id]))?;
        self.containers.retain(|c| c != &id);
        Ok((started, t.elapsed()))
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        for id in &self.containers {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&self.runc_root)
                .args(["delete", "-f", id])
                .output();
        }
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = Command::new("ip")
            .args(["link", "del", FLOOR_BRIDGE])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---- the scenarios ----

async fn idle(base: &Path, node: &Server) -> Result<()> {
    let bare_dir = base.join("bare");
    let _ = std::fs::remove_dir_all(&bare_dir);
    std::fs::create_dir_all(&bare_dir)?;
    let bare = start(&bare_dir, &["--disable-agent"]).await?;
    // Both settled, sampled the same way.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let with = settled_mem(node.child.id()).await?;
    let without = settled_mem(bare.child.id()).await?;
    println!("\n### idle: `skiff server`, no pods (max of 5 samples 1 s apart)\n");
    println!("| process | RSS MB | PSS MB | private MB |");
    println!("|---|---|---|---|");
    for (what, m) in [
        ("server with its node (goal <= 60 MB)", with),
        ("server --disable-agent", without),
    ] {
        println!(
            "| {what} | {:.1} | {:.1} | {:.1} |",
            mb(m.rss_kb),
            mb(m.pss_kb),
            mb(m.private_kb)
        );
    }
    println!(
        "| the node's share (difference; goal <= 30 MB) | {:.1} | {:.1} | {:.1} |",
        mb(with.rss_kb) - mb(without.rss_kb),
        mb(with.pss_kb) - mb(without.pss_kb),
        mb(with.private_kb) - mb(without.private_kb)
    );
    Ok(())
}

async fn one(base: &Path, server: &Server, client: &Client) -> Result<()> {
    let runs: usize = std::env::var("SKIFF_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(20);
    let trace = std::env::var_os("SKIFF_BENCH_TRACE").is_some();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let times: Times = Arc::default();
    let watch = watch_pods(pods.clone(), times.clone());
    let mut floor = Floor::new(base)?;
    let data = server.dir.clone();
    let mut seen = vec![];
    let mut cleaned = vec![];
    let (mut ns_add, mut ns_del, mut cni_add, mut cni_del, mut runc_run, mut runc_del) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    // One untimed run first: the first pod pays for the first overlay mount of the image.
    for i in 0..=runs {
        let name = format!("one-{i}");
        let wall = SystemTime::now();
        let uid = create(&pods, &times, &name).await?;
        let s = wait_for("the pod Ready", Duration::from_secs(60), || {
            let t = lock(&times).get(&name).copied().unwrap_or_default();
            async move { Ok(t.ready.and(t.running).map(|_| t)) }
        })
        .await?;
        if trace {
            let at = |x: Option<Instant>| {
                x.zip(s.sent)
                    .map(|(x, s)| ms(x.duration_since(s)))
                    .unwrap_or(f64::NAN)
            };
            println!(
                "trace {name}: sent at {:.6} (unix), bound +{:.1} ms, Running +{:.1} ms, Ready +{:.1} ms",
                wall.duration_since(SystemTime::UNIX_EPOCH)?.as_secs_f64(),
                at(s.bound),
                at(s.running),
                at(s.ready)
            );
        }
        let veths = sandbox_veths(&data);
        let t = Instant::now();
        pods.delete(&name, &grace0()).await?;
        wait_clean(&data, &[uid], &veths, Duration::from_secs(60)).await?;
        if i == 0 {
            continue;
        }
        seen.push(s);
        cleaned.push(ms(t.elapsed()));
        // The floor, in the same run.
        let (a, d) = floor.netns(&format!("skiff-bench-ns-{i}"))?;
        ns_add.push(ms(a));
        ns_del.push(ms(d));
        let (a, d) = floor.cni(i)?;
        cni_add.push(ms(a));
        cni_del.push(ms(d));
        let (a, d) = floor.runc(i)?;
        runc_run.push(ms(a));
        runc_del.push(ms(d));
    }
    watch.abort();
    let since = |f: fn(&Seen) -> Option<Instant>, g: fn(&Seen) -> Option<Instant>| {
        seen.iter()
            .filter_map(|s| Some(ms(f(s)?.duration_since(g(s)?))))
            .collect::<Vec<f64>>()
    };
    println!("\n### one pod, {runs} runs (ms; the image present, deleted with grace 0 and the host clean between runs)\n");
    println!("| step | p50 | p90 | max |");
    println!("|---|---|---|---|");
    let running = row(
        "**create -> Running** (goal p50 <= 150)",
        since(|s| s.running, |s| s.sent),
    );
    row("create -> Ready", since(|s| s.ready, |s| s.sent));
    row(
        "create -> bound (API + scheduler + watch)",
        since(|s| s.bound, |s| s.sent),
    );
    row(
        "bound -> Running (the node: sync, sandbox, CNI, runc, status write)",
        since(|s| s.running, |s| s.bound),
    );
    row("delete (grace 0) -> host clean", cleaned);
    let a = row("floor: `ip netns add`", ns_add);
    row("floor: `ip netns del`", ns_del);
    let b = row("floor: CNI ADD (bridge, host-local, portmap)", cni_add);
    row("floor: CNI DEL", cni_del);
    let c = row("floor: `runc run -d` (busybox bundle)", runc_run);
    row("floor: `runc delete -f`", runc_del);
    let floor_sum = a + b + c;
    println!(
        "\nfloor (netns add + CNI ADD + runc run, p50s) {floor_sum:.1} ms; create -> Running p50 \
         {running:.1} ms = {:.1}x the floor",
        running / floor_sum
    );
    Ok(())
}

async fn burst(server: &Server, client: &Client) -> Result<()> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let times: Times = Arc::default();
    let watch = watch_pods(pods.clone(), times.clone());
    let data = server.dir.clone();
    // Let the watch's initial list finish.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = Instant::now();
    let uids: Vec<String> = futures::stream::iter(0..BURST)
        .map(|i| {
            let pods = pods.clone();
            let times = times.clone();
            async move { create(&pods, &times, &format!("burst-{i}")).await }
        })
        .buffer_unordered(32)
        .try_collect()
        .await?;
    let created = first.elapsed();
    let running_count = || {
        lock(&times)
            .iter()
            .filter(|(n, s)| n.starts_with("burst-") && s.running.is_some())
            .count()
    };
    let all = wait_for("all pods Running", Duration::from_secs(120), || {
        let n = running_count();
        async move { Ok((n >= BURST).then(|| first.elapsed())) }
    })
    .await
    .with_context(|| format!("{} of {BURST} Running", running_count()))?;
    let seen: Vec<Seen> = lock(&times)
        .iter()
        .filter(|(n, _)| n.starts_with("burst-"))
        .map(|(_, s)| *s)
        .collect();
    let lat = |f: fn(&Seen) -> Option<Instant>, g: fn(&Seen) -> Option<Instant>| {
        seen.iter()
            .filter_map(|s| Some(ms(f(s)?.duration_since(g(s)?))))
            .collect::<Vec<f64>>()
    };
    println!("\n### a burst of {BURST} pods (created 32 at a time, no requests)\n");
    println!(
        "created in {:.0} ms; **first create -> all Running {:.0} ms** (goal <= 2,500)\n",
        ms(created),
        ms(all)
    );
    println!("| per pod (ms) | p50 | p90 | max |");
    println!("|---|---|---|---|");
    row(
        "**create -> Running** (goal p50 <= 1,200)",
        lat(|s| s.running, |s| s.sent),
    );
    row("create -> Ready", lat(|s| s.ready, |s| s.sent));
    row("create -> bound", lat(|s| s.bound, |s| s.sent));
    row("bound -> Running", lat(|s| s.running, |s| s.bound));

    // Memory with the pods running.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let server_mem = settled_mem(server.child.id()).await?;
    let mons = monitors(&data);
    let per: Vec<Mem> = mons.iter().filter_map(|p| mem(*p).ok()).collect();
    let col = |f: fn(&Mem) -> u64| per.iter().map(|m| mb(f(m))).collect::<Vec<f64>>();
    println!("\n### memory with {} pods Running (MB)\n", BURST);
    println!(
        "server with its node: RSS {:.1}, PSS {:.1}, private {:.1}\n",
        mb(server_mem.rss_kb),
        mb(server_mem.pss_kb),
        mb(server_mem.private_kb)
    );
    println!(
        "| each of the {} container monitors (MB) | p50 | p90 | max |",
        per.len()
    );
    println!("|---|---|---|---|");
    row(
        "**private** (Private_Clean + Private_Dirty; goal <= 1)",
        col(|m| m.private_kb),
    );
    row("PSS", col(|m| m.pss_kb));
    row("RSS", col(|m| m.rss_kb));
    let total_private: u64 = per.iter().map(|m| m.private_kb).sum();
    let total_pss: u64 = per.iter().map(|m| m.pss_kb).sum();
    println!(
        "\nall monitors together: private {:.1} MB, PSS {:.1} MB",
        mb(total_private),
        mb(total_pss)
    );

    // Delete them all; time until the host is clean.
    let veths = sandbox_veths(&data);
    let t = Instant::now();
    futures::stream::iter(0..BURST)
        .map(|i| {
            let pods = pods.clone();
            async move {
                pods.delete(&format!("burst-{i}"), &grace0()).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    let deleted = t.elapsed();
    let clean = wait_clean(&data, &uids, &veths, Duration::from_secs(120)).await;
    let took = t.elapsed();
    watch.abort();
    let left = leftovers(&data, &uids, &veths);
    println!(
        "\n### {BURST} pods deleted (grace 0)\n\ndeletes sent in {:.0} ms; first delete -> host \
         clean {:.0} ms; left behind: {left:?} ({} veths were tracked)",
        ms(deleted),
        ms(took),
        veths.len()
    );
    clean
}

/// `docker.io/skiff/demo-web:v1` (scripts/demo-image.sh) in `data`'s air-gap directory.
fn stage_demo_image(data: &Path) -> Result<()> {
    let images = data.join("agent/images");
    std::fs::create_dir_all(&images)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/demo-image.sh");
    run(Command::new("bash")
        .arg(&script)
        .arg(images.join("demo-web.tar")))
}

/// Removes whatever the node left of its pods (a failed run's too), through the runtime.
async fn remove_everything(data_dir: &Path) -> Result<()> {
    use skiff_runtime::cri::PodRuntime;
    use skiff_runtime::sandbox::cni::{self, Cni, NetworkList};
    let monitor = skiff_runtime::container::monitor::MonitorCommand {
        program: skiff_bin(),
        args: vec!["container-monitor".into()],
    };
    let mut config = skiff_runtime::local::LocalConfig::new(data_dir, monitor);
    if let Ok(net) = NetworkList::load_dir(&cni::default_conf_dir(data_dir)) {
        config.cni = Some(Cni::new(
            net,
            cni::DEFAULT_BIN_DIRS.iter().map(Into::into).collect(),
        ));
    }
    let rt = skiff_runtime::local::LocalRuntime::new(config)?;
    for c in rt.list_containers().await? {
        let _ = rt.stop_container(&c.id, Duration::from_secs(1)).await;
        rt.remove_container(&c.id).await?;
        for path in skiff_kubelet::pods::qos::pod_cgroup_candidates(&c.meta.pod_uid) {
            let _ = rt.remove_pod_cgroup(&path).await;
        }
    }
    for s in rt.list_sandboxes().await? {
        rt.remove_sandbox(&s.id).await?;
    }
    Ok(())
}

async fn scenarios(base: &Path, only: Option<&str>) -> Result<()> {
    let runs = |what: &str| only.is_none_or(|o| o == what);
    let data = base.join("node");
    let server = start(&data, &["--kubelet-port", "0", "--node-name", NODE]).await?;
    let client = client(&server).await?;
    let t = Instant::now();
    wait_node(&client).await?;
    println!(
        "the node Ready with the demo image {:.1} s after the API",
        t.elapsed().as_secs_f64()
    );
    if runs("idle") {
        idle(base, &server).await?;
    }
    if runs("one") {
        one(base, &server, &client).await?;
    }
    if runs("burst") {
        burst(&server, &client).await?;
    }
    Ok(())
}

fn main() -> Result<()> {
    if let Some(why) = skip_reason() {
        println!("node bench skipped: {why}");
        return Ok(());
    }
    let base = std::env::var_os("SKIFF_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"))
        .join("skiff-bench-node");
    let _ = std::fs::remove_dir_all(&base);
    let data = base.join("node");
    std::fs::create_dir_all(&data)?;
    stage_demo_image(&data)?;
    let only = std::env::var("SKIFF_BENCH_ONLY").ok();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let uptime = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("## skiff node bench; load average {}", uptime.trim());
    let result = runtime.block_on(scenarios(&base, only.as_deref()));
    // The server is gone (dropped in scenarios); its containers are not.
    let cleanup = runtime.block_on(remove_everything(&data));
    let uptime = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\nload average at the end {}", uptime.trim());
    result?;
    cleanup?;
    let _ = std::fs::remove_dir_all(&base);
    Ok(())
}
