//! The control-plane benchmark: the release `skiff server` binary with simulated nodes, on
//! this machine, measuring what issue 13 sets goals for:
//!
//! - `rollout`: a Deployment of 1,000 replicas on 100 simulated nodes, from the create to
//!   what `kubectl rollout status` calls success (goal <= 3 s), then a full rolling update
//!   of it with maxSurge 25% (goal <= 8 s);
//! - `scale`: 1,000 simulated nodes with 30,000 pods in the one server process: its RSS
//!   (goal <= 1.5 GB) and its CPU at rest, heartbeats included (goal < 5% of one core);
//! - `schedule`: the scheduler's throughput with 5,000 simulated nodes and 10,000 pods
//!   created as fast as the API takes them (64 at a time): pods/s from the first create to
//!   the last pod bound (goal >= 1,500 pods/s), and the p50/p99 latency from a pod's create
//!   to its binding as a watch sees it;
//! - `idle`: the memory the controller manager and the scheduler add to an idle server
//!   (the same binary with `--disable-controller-manager --disable-scheduler` beside it;
//!   goal <= 10 MB together).
//!
//! `cargo bench -p skiff --bench controlplane` runs all four; `SKIFF_BENCH_ONLY=rollout`
//! (or `schedule`, `scale`, `idle`) one; `SKIFF_BENCH_DIR` (default /var/tmp) holds the data dirs;
//! `SKIFF_BENCH_SERVER=PATH` measures another `skiff` binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::json;

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

/// Starts `skiff server` on a fresh data dir under `base` with `extra` flags, and waits
/// for `/readyz`.
async fn start(base: &Path, name: &str, extra: &[&str]) -> Result<Server> {
    let dir = base.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let bin = std::env::var_os("SKIFF_BENCH_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_skiff")));
    let child = Command::new(bin)
        .args([
            "server",
            // The control plane only: no real node runs the bench's pods.
            "--disable-agent",
            "--disable-dns",
            "--bind-address",
            "127.0.0.1",
            "--https-port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(&dir)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let server = Server { child, dir };
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
            if r.status().is_success() && server.dir.join("kubeconfig.yaml").exists() {
                return Ok(server);
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("server not ready after 60 s");
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

fn rss_mb(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")?;
    Ok(kb / 1024.0)
}

/// CPU time (user + system) a process has used so far, in seconds.
fn cpu_secs(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = stat.rsplit_once(')').context("no command name")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> { Ok(fields.get(i).context("short stat")?.parse()?) };
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image,
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
            }
        }
    }))
    .unwrap_or_default()
}

/// What `kubectl rollout status` calls a finished rollout.
fn rolled_out(d: &Deployment) -> bool {
    let (Some(spec), Some(status)) = (&d.spec, &d.status) else {
        return false;
    };
    let want = spec.replicas.unwrap_or(1);
    status.observed_generation >= d.metadata.generation
        && status.updated_replicas == Some(want)
        && status.replicas == Some(want)
        && status.available_replicas == Some(want)
}

async fn wait_rolled_out(api: &Api<Deployment>, name: &str, limit: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        let d = api.get(name).await?;
        if rolled_out(&d) {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!(
                "{name} not rolled out after {limit:?}: {:?}",
                d.status
                    .map(|s| (s.replicas, s.updated_replicas, s.available_replicas))
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `n` nodes are Ready.
async fn wait_nodes(client: &Client, n: usize) -> Result<()> {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    let started = Instant::now();
    loop {
        let ready = nodes
            .list(&Default::default())
            .await?
            .items
            .iter()
            .filter(|node| {
                node.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
            .count();
        if ready >= n {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("only {ready} of {n} nodes Ready after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn rollout(base: &Path) -> Result<()> {
    let server = start(base, "rollout", &["--simulated-nodes", "100"]).await?;
    let client = client(&server).await?;
    wait_nodes(&client, 100).await?;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    api.create(&PostParams::default(), &deployment("big", 1000, "img:1"))
        .await?;
    wait_rolled_out(&api, "big", Duration::from_secs(120)).await?;
    let created = started.elapsed();
    let started = Instant::now();
    api.patch(
        "big",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "c", "image": "img:2"}]}}}})),
    )
    .await?;
    wait_rolled_out(&api, "big", Duration::from_secs(300)).await?;
    let rolled = started.elapsed();
    println!(
        "rollout: 1,000 replicas on 100 simulated nodes: create -> rolled out {:.2} s (goal <= 3 s); \
         rolling update (maxSurge 25%) {:.2} s (goal <= 8 s)",
        created.as_secs_f64(),
        rolled.as_secs_f64()
    );
    Ok(())
}

async fn scale(base: &Path) -> Result<()> {
    // A /24 per node: the default 10.42.0.0/16 has room for 256 nodes only (as upstream's
    // node IPAM, the rest get no range and their pods no address).
    let server = start(
        base,
        "scale",
        &[
            "--simulated-nodes",
            "1000",
            "--cluster-cidr",
            "10.128.0.0/12",
        ],
    )
    .await?;
    let pid = server.child.id();
    let client = client(&server).await?;
    wait_nodes(&client, 1000).await?;
    let api: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let started = Instant::now();
    api.create(&PostParams::default(), &deployment("many", 30_000, "img:1"))
        .await?;
    wait_rolled_out(&api, "many", Duration::from_secs(900)).await?;
    println!(
        "scale: 30,000 pods Running on 1,000 simulated nodes after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Let the last status writes settle, then measure at rest.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let rss = rss_mb(pid)?;
    let window = Duration::from_secs(30);
    let cpu0 = cpu_secs(pid)?;
    tokio::time::sleep(window).await;
    let cpu = (cpu_secs(pid)? - cpu0) / window.as_secs_f64() * 100.0;
    println!(
        "scale: server RSS {rss:.0} MB (goal <= 1,536 MB); CPU at rest {cpu:.1}% of one core \
         over {} s (goal < 5%)",
        window.as_secs()
    );
    Ok(())
}

async fn schedule(base: &Path) -> Result<()> {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::{watcher, WatchStreamExt};
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    const NODES: usize = 5_000;
    const PODS: usize = 10_000;
    let server = start(base, "schedule", &["--simulated-nodes", &NODES.to_string()]).await?;
    let client = client(&server).await?;
    let registering = Instant::now();
    wait_nodes(&client, NODES).await?;
    println!(
        "schedule: {NODES} simulated nodes Ready after {:.1} s",
        registering.elapsed().as_secs_f64()
    );
    // Let the scheduler's cache take the nodes in before the clock starts.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let bound: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let watch = {
        let bound = bound.clone();
        let pods = pods.clone();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(pods, watcher::Config::default())
                .default_backoff()
                .applied_objects());
            while let Ok(Some(p)) = events.try_next().await {
                let on_node = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
                if on_node {
                    let mut b = bound.lock().unwrap_or_else(|e| e.into_inner());
                    let name = p.metadata.name.clone().unwrap_or_default();
                    b.entry(name).or_insert_with(Instant::now);
                    if b.len() >= PODS {
                        return;
                    }
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = Instant::now();
    let creates = futures::stream::iter(0..PODS).map(|i| {
        let pods = pods.clone();
        let sent = sent.clone();
        async move {
            let name = format!("p-{i}");
            let pod: Pod = serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "c", "image": "img:1",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
            }))?;
            sent.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(name, Instant::now());
            pods.create(&PostParams::default(), &pod).await?;
            anyhow::Ok(())
        }
    });
    creates
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await?;
    let created = first.elapsed();
    tokio::time::timeout(Duration::from_secs(300), watch)
        .await
        .context("not every pod was bound within 300 s")??;
    let sent = sent.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let bound = bound.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let last = bound.values().max().copied().context("nothing bound")?;
    let total = last.duration_since(first).as_secs_f64();
    let mut latencies: Vec<f64> = bound
        .iter()
        .filter_map(|(name, at)| Some(at.duration_since(*sent.get(name)?).as_secs_f64() * 1e3))
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    println!(
        "schedule: {PODS} pods on {NODES} simulated nodes: created in {:.2} s ({:.0}/s); \
         first create -> last bound {total:.2} s = {:.0} pods/s (goal >= 1,500); \
         create -> bound latency p50 {:.0} ms, p99 {:.0} ms",
        created.as_secs_f64(),
        PODS as f64 / created.as_secs_f64(),
        PODS as f64 / total,
        pct(0.5),
        pct(0.99),
    );
    Ok(())
}

/// The scheduler alone on a backlog: 10,000 pending pods created with no scheduler running,
/// then `skiff scheduler --kubeconfig` started as a process of its own (over HTTPS), timed
/// from its start (its initial lists included) to the last pod bound.
async fn schedule_backlog(base: &Path) -> Result<()> {
    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::core::v1::Pod;

    const NODES: usize = 5_000;
    const PODS: usize = 10_000;
    let server = start(
        base,
        "schedule-backlog",
        &[
            "--simulated-nodes",
            &NODES.to_string(),
            "--disable-scheduler",
        ],
    )
    .await?;
    let client = client(&server).await?;
    wait_nodes(&client, NODES).await?;
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    futures::stream::iter(0..PODS)
        .map(|i| {
            let pods = pods.clone();
            async move {
                let pod: Pod = serde_json::from_value(json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("p-{i}"), "labels": {"app": "bench"}},
                    "spec": {"containers": [{"name": "c", "image": "img:1",
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
                }))?;
                pods.create(&PostParams::default(), &pod).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(64)
        .try_collect::<Vec<()>>()
        .await?;
    let bin = std::env::var_os("SKIFF_BENCH_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_skiff")));
    let started = Instant::now();
    let mut scheduler = Command::new(bin)
        .args(["scheduler", "--leader-elect=false", "--kubeconfig"])
        .arg(server.dir.join("kubeconfig.yaml"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    // Every pod is pending: a watch from now sees each binding once.
    let result = async {
        use kube::runtime::{watcher, WatchStreamExt};
        let mut seen = std::collections::HashSet::new();
        let mut events = std::pin::pin!(watcher(pods.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects());
        let deadline = Duration::from_secs(300);
        while seen.len() < PODS {
            let next = tokio::time::timeout(
                deadline.saturating_sub(started.elapsed()),
                events.try_next(),
            )
            .await
            .with_context(|| format!("only {} of {PODS} bound after 300 s", seen.len()))??;
            let Some(p) = next else {
                bail!("the watch ended")
            };
            if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                seen.insert(p.metadata.name.clone().unwrap_or_default());
            }
        }
        anyhow::Ok(started.elapsed())
    }
    .await;
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    let took = result?.as_secs_f64();
    println!(
        "schedule (backlog): {PODS} pending pods on {NODES} nodes, a scheduler process started: \
         all bound after {took:.2} s = {:.0} pods/s, its start and initial lists included \
         (goal >= 1,500)",
        PODS as f64 / took
    );
    Ok(())
}

async fn idle(base: &Path) -> Result<()> {
    // Both servers side by side, settled, sampled the same way.
    let bare = start(
        base,
        "idle-bare",
        &["--disable-controller-manager", "--disable-scheduler"],
    )
    .await?;
    let full = start(base, "idle-full", &[]).await?;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut bare_mb = 0.0f64;
    let mut full_mb = 0.0f64;
    for _ in 0..5 {
        bare_mb = bare_mb.max(rss_mb(bare.child.id())?);
        full_mb = full_mb.max(rss_mb(full.child.id())?);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!(
        "idle: server RSS {bare_mb:.1} MB without, {full_mb:.1} MB with the controller manager \
         and the scheduler: {:.1} MB added (goal <= 10 MB)",
        full_mb - bare_mb
    );
    Ok(())
}

fn main() -> Result<()> {
    let base = std::env::var_os("SKIFF_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp"))
        .join("skiff-bench-controlplane");
    let only = std::env::var("SKIFF_BENCH_ONLY").ok();
    let runs = |what: &str| only.as_deref().is_none_or(|o| o == what);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if runs("idle") {
            idle(&base).await?;
        }
        if runs("rollout") {
            rollout(&base).await?;
        }
        if runs("schedule") {
            schedule(&base).await?;
            schedule_backlog(&base).await?;
        }
        if runs("scale") {
            scale(&base).await?;
        }
        let _ = std::fs::remove_dir_all(&base);
        Ok(())
    })
}
