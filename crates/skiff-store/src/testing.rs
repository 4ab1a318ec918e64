//! Test support: a real etcd server (Debian's `etcd-server`, `/usr/bin/etcd`) started on
//! random loopback ports in a temp dir, stopped (and its files removed) when dropped. Used by
//! this crate's tests and benchmark, and by other crates' tests that need the etcd backend.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::{EtcdConfig, EtcdStore, Store};

/// The etcd binary: `$SKIFF_ETCD_BIN`, else `/usr/bin/etcd`.
pub fn etcd_binary() -> PathBuf {
    std::env::var_os("SKIFF_ETCD_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/etcd"))
}

/// A running etcd on loopback.
pub struct EtcdProcess {
    child: Option<Child>,
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl EtcdProcess {
    /// Starts etcd in a new temp dir under `parent` and waits until it answers. `None`: on
    /// tmpfs (/dev/shm) where the machine has it, else in the system temp dir. On disk,
    /// every etcd write waits for an fsync, and right after a build (CI: a fresh clone
    /// compiles gigabytes first) the kernel's writeback made those syncs take seconds: a
    /// control plane on etcd then missed its tests' deadlines (a namespace's ServiceAccount
    /// not made within 20 s) while the same tests passed on a quiet disk. The tests are
    /// about skiff, not the disk; etcd's own durability is etcd's.
    pub async fn start_in(parent: Option<&Path>) -> anyhow::Result<Self> {
        let bin = etcd_binary();
        if !bin.exists() {
            bail!(
                "{} not found: install etcd (apt-get install etcd-server) or set SKIFF_ETCD_BIN",
                bin.display()
            );
        }
        let mut last_err = None;
        // A port picked as free may be taken before etcd binds it: try a few times.
        for _ in 0..3 {
            let dir = match parent {
                Some(p) => tempfile::Builder::new()
                    .prefix("skiff-etcd-")
                    .tempdir_in(p)?,
                None if Path::new("/dev/shm").is_dir() => tempfile::Builder::new()
                    .prefix("skiff-etcd-")
                    .tempdir_in("/dev/shm")
                    .or_else(|_| tempfile::Builder::new().prefix("skiff-etcd-").tempdir())?,
                None => tempfile::Builder::new().prefix("skiff-etcd-").tempdir()?,
            };
            let mut etcd = Self {
                child: None,
                client_port: free_port()?,
                peer_port: free_port()?,
                dir,
            };
            match etcd.launch().await {
                Ok(()) => return Ok(etcd),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("etcd did not start")))
    }

    pub async fn start() -> anyhow::Result<Self> {
        Self::start_in(None).await
    }

    /// The client URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// A store config for this etcd, with keys under `prefix`.
    pub fn config(&self, prefix: &str) -> EtcdConfig {
        let mut config = EtcdConfig::new(vec![self.endpoint()]);
        config.prefix = prefix.to_owned();
        config
    }

    /// Connects a store to this etcd, with keys under `prefix`.
    pub async fn store(&self, prefix: &str) -> anyhow::Result<EtcdStore> {
        EtcdStore::connect(self.config(prefix))
            .await
            .context("connecting to the test etcd")
    }

    /// The directory holding etcd's data and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let client = self.endpoint();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))?;
        // A name of its own: another test's etcd may hold the port picked as free (it
        // was free when picked), and then this one fails to bind while the other answers
        // there; only an answer from a member of this name is ours.
        let name = format!("skiff-test-{}-{}", std::process::id(), self.client_port);
        let child = Command::new(etcd_binary())
            .arg(format!("--name={name}"))
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster={name}={peer}"))
            // Room for a value of MAX_VALUE_BYTES plus the request around it.
            .arg(format!(
                "--max-request-bytes={}",
                crate::MAX_VALUE_BYTES + 64 * 1024
            ))
            .arg("--logger=zap")
            .arg("--log-outputs=stderr")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting etcd")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "etcd exited at start ({status}); see {}",
                        self.dir.path().join("etcd.log").display()
                    );
                }
            }
            let members = tokio::time::timeout(Duration::from_secs(2), async {
                let mut c = etcd_client::Client::connect([client.as_str()], None).await?;
                c.member_list().await
            });
            if let Ok(Ok(list)) = members.await {
                if !list.members().iter().any(|m| m.name() == name) {
                    bail!(
                        "another etcd answers on port {} (taken after it was picked as free)",
                        self.client_port
                    );
                }
                let mut config = self.config("/");
                config.request_timeout = Duration::from_secs(1);
                let connect =
                    tokio::time::timeout(Duration::from_secs(2), EtcdStore::connect(config));
                if let Ok(Ok(store)) = connect.await {
                    if store.current_revision().await.is_ok() {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "etcd did not answer within 20 s; see {}",
                    self.dir.path().join("etcd.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops etcd at once (SIGKILL), keeping its data.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts etcd again on the same ports and data.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.launch().await
    }
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
