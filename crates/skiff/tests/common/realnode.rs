//! A test cluster whose server runs its own real node (root, runc, the CNI bridge): the
//! demo image built from busybox-static and put in the air-gap directory, and, whatever
//! happens, every container and sandbox the node made removed through the runtime.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::{Cluster, Datastore};

/// Why this machine cannot run real containers, if it cannot.
pub fn skip_reason() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root".into());
    }
    for tool in [
        "/usr/bin/umoci",
        "/usr/bin/skopeo",
        "/bin/busybox",
        "/usr/lib/cni/bridge",
    ] {
        if !Path::new(tool).exists() {
            return Some(format!("{tool} is missing"));
        }
    }
    None
}

/// `docker.io/skiff/demo-web:v1` (scripts/demo-image.sh) in `data`'s air-gap directory.
pub fn stage_demo_image(data: &Path) -> Result<()> {
    let images = data.join("agent/images");
    std::fs::create_dir_all(&images)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/demo-image.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(images.join("demo-web.tar"))
        .output()
        .context("running scripts/demo-image.sh")?;
    if !out.status.success() {
        bail!("demo-image.sh: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A server on `data` that runs its own node `node_name` (the kubelet on a free port),
/// with the demo image staged; returns once the node is Ready.
pub async fn start(data: &Path, node_name: &str) -> Result<Cluster> {
    stage_demo_image(data)?;
    let dir = data.to_path_buf();
    let name = node_name.to_owned();
    let c = Cluster::start_with(Datastore::Embedded, |a| {
        a.disable_agent = false;
        a.data_dir = dir.clone();
        a.node.node_name = Some(name);
        a.node.kubelet_port = 0;
        // The host's own network namespace: no Service proxy table of tests' making there
        // (network_e2e runs proxies inside the namespaces it creates).
        a.node.disable_kube_proxy = true;
        a.node.podnet_table = podnet_table(&dir);
        a.node.container_monitor_bin = Some(env!("CARGO_BIN_EXE_skiff").into());
    })
    .await?;
    c.wait_nodes_ready(1).await?;
    Ok(c)
}

/// `GET /` of `ip:port`, the whole answer.
pub fn http_get(ip: &str, port: u16) -> Result<String> {
    let mut s =
        TcpStream::connect_timeout(&format!("{ip}:{port}").parse()?, Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// Processes whose command line (arguments joined by spaces) mentions `needle`.
pub fn processes_with(needle: &str) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| {
            String::from_utf8_lossy(c)
                .replace('\0', " ")
                .contains(needle)
        })
        .count()
}

pub fn mounts_under(dir: &Path) -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&*dir.to_string_lossy()))
        .count()
}

/// Runs `scenario` on a fresh data dir, then removes what the node left there, even when
/// the scenario failed or panicked (an `assert!`): the panic is raised again afterwards.
pub async fn run_cleanly<F, Fut>(scenario: F) -> Result<()>
where
    F: FnOnce(std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let data = tempfile::tempdir()?;
    let path = data.path().to_path_buf();
    // Not spawned: the scenario blocks on kubectl, which must not take a worker thread
    // from the in-process server.
    let outcome =
        futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(scenario(path.clone())))
            .await;
    let cleanup = remove_everything(&path).await;
    match outcome {
        Ok(result) => result?,
        Err(panic) => std::panic::resume_unwind(panic),
    }
    cleanup
}

/// The pods' masquerade table of a node on `data` running in the host's network namespace
/// (`--podnet-table`): its own, so that its test removes it without touching another's.
pub fn podnet_table(data: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    format!("skiff-test-{:016x}", h.finish())
}

/// Removes whatever the node left of its pods (a failed test's too), through the runtime,
/// and its masquerade table in the host's network namespace (see [`podnet_table`]).
pub async fn remove_everything(data_dir: &Path) -> Result<()> {
    let _ = Command::new("nft")
        .args(["delete", "table", "ip", &podnet_table(data_dir)])
        .output();
    let monitor = skiff_runtime::container::monitor::MonitorCommand {
        program: env!("CARGO_BIN_EXE_skiff").into(),
        args: vec!["container-monitor".into()],
    };
    skiff::reset::remove_pods(data_dir, monitor).await?;
    Ok(())
}
