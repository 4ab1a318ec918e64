//! `skiff server` and `skiff agent` as real processes (the binary cargo built), for tests
//! of what crosses a process or a network: killed on drop, their logs kept.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A `skiff server` process (control plane only: `--disable-agent`); killed on drop.
pub struct ServerProcess {
    child: Child,
    pub dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    /// Starts it on `port` with the data dir `dir` and `extra` flags, and waits until it
    /// says it is ready.
    pub fn start(dir: &Path, port: u16, extra: &[&str]) -> Result<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["server", "--disable-agent"])
            .args(["--https-port", &port.to_string()])
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting skiff server")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let (tx, rx) = mpsc::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("skiff is ready") {
                    let _ = tx.send(());
                }
                if let Ok(mut l) = lines.lock() {
                    l.push(line);
                }
            }
        });
        let server = Self {
            child,
            dir: dir.to_path_buf(),
            log,
        };
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            anyhow::bail!("skiff server did not become ready:\n{}", server.log_text());
        }
        Ok(server)
    }

    /// SIGKILL, at once (a crash, as far as the cluster can tell).
    pub fn kill(&mut self) -> std::io::Result<()> {
        self.child.kill()
    }

    /// The node join token it wrote.
    pub fn token(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.dir.join("server/token"))?
            .trim()
            .to_owned())
    }

    /// A client with its admin kubeconfig.
    pub async fn admin_client(&self) -> Result<kube::Client> {
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(self.dir.join("kubeconfig.yaml"))?,
            &KubeConfigOptions::default(),
        )
        .await?;
        Ok(kube::Client::try_from(config)?)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig.yaml")
    }

    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

/// A `skiff agent` process running a real node; its log kept; stopped with SIGTERM (as an
/// operator stops it: the containers keep running), then killed, on drop.
pub struct AgentProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if !self.stop(Duration::from_secs(10)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl AgentProcess {
    /// `skiff agent --server server --token token --node-name node ... extra`, inside the
    /// network namespace `netns` (of `ip netns add`) when given; in the host's namespace
    /// with `--disable-kube-proxy`.
    pub fn start(
        data: &Path,
        server: &str,
        token: &str,
        node: &str,
        netns: Option<&str>,
        extra: &[&str],
    ) -> Result<Self> {
        let mut command = match netns {
            // nsenter, not `ip netns exec`: that also makes a mount namespace with a sysfs
            // of the network namespace's own, which hides the cgroup mounts runc needs.
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}"))
                    .arg(env!("CARGO_BIN_EXE_skiff"));
                c
            }
            // In the host's own namespace: no Service proxy table left there by a test.
            None => {
                let mut c = Command::new(env!("CARGO_BIN_EXE_skiff"));
                c.arg("agent").arg("--disable-kube-proxy");
                c.arg("--podnet-table")
                    .arg(super::realnode::podnet_table(data));
                c
            }
        };
        if netns.is_some() {
            command.arg("agent");
        }
        let mut child = command
            .args(["--server", server, "--token", token])
            .args(["--node-name", node])
            .args(extra)
            .arg("--data-dir")
            .arg(data)
            .env("RUST_LOG", "info,skiff_kubelet::podnet=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting skiff agent")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut l) = lines.lock() {
                    l.push(line);
                }
            }
        });
        Ok(Self { child, log })
    }

    /// SIGTERM, then waits up to `timeout` for the agent to exit; whether it did.
    pub fn stop(&mut self, timeout: Duration) -> bool {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    pub fn logged(&self, needle: &str) -> bool {
        self.log
            .lock()
            .map(|l| l.iter().any(|line| line.contains(needle)))
            .unwrap_or(false)
    }

    pub fn log_text(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

/// Waits up to `timeout` until the node `name` is registered and Ready.
pub async fn wait_node_ready(client: &kube::Client, name: &str, timeout: Duration) -> Result<()> {
    use k8s_openapi::api::core::v1::Node;
    let nodes: kube::Api<Node> = kube::Api::all(client.clone());
    super::wait_for(&format!("node {name} Ready"), timeout, || {
        let nodes = nodes.clone();
        async move {
            let Some(n) = nodes.get_opt(name).await? else {
                return Ok(None);
            };
            let ready = n
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            Ok(ready.then_some(()))
        }
    })
    .await
}

/// A free TCP port on loopback (for a server that must keep its port across restarts).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
