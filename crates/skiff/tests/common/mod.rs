//! The harness of the control-plane integration tests: a whole `skiff server` in process
//! (API, controller manager, scheduler, simulated nodes) on a temp data dir and a random
//! port, on the embedded datastore or a real etcd, with a kube-rs client and the kubeconfig
//! the real `/usr/bin/kubectl` runs with. [`on_both_datastores!`] runs each scenario on both.
#![allow(dead_code)]

pub mod fakedns;
pub mod lab;
pub mod procs;
pub mod realnode;
pub mod testkubelet;

use std::future::Future;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use skiff::server::{self, ServerArgs};
use skiff_store::testing::EtcdProcess;

pub const KUBECTL: &str = "/usr/bin/kubectl";

/// Which datastore a test cluster runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Datastore {
    Embedded,
    Etcd,
}

/// A running test cluster; dropping it stops everything and removes its data.
pub struct Cluster {
    pub running: server::Running,
    /// The cluster admin, over HTTPS.
    pub client: Client,
    pub kubeconfig: PathBuf,
    pub dir: tempfile::TempDir,
    pub etcd: Option<EtcdProcess>,
}

impl Cluster {
    /// A cluster with `nodes` simulated nodes.
    pub async fn start(datastore: Datastore, nodes: usize) -> Result<Self> {
        Self::start_with(datastore, |a| a.simulated_nodes = nodes).await
    }

    /// A cluster whose server flags `change` adjusts.
    pub async fn start_with(
        datastore: Datastore,
        change: impl FnOnce(&mut ServerArgs),
    ) -> Result<Self> {
        // `RUST_LOG=skiff_controllers=debug cargo test ...` shows the components' logs.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir()?;
        let etcd = match datastore {
            Datastore::Embedded => None,
            Datastore::Etcd => Some(EtcdProcess::start_in(None).await?),
        };
        let mut args = ServerArgs::defaults(dir.path());
        args.https_port = 0;
        args.bind_address = "127.0.0.1".parse()?;
        args.datastore_endpoint = etcd.as_ref().map(|e| e.endpoint());
        args.watch_bookmark_interval_ms = 60_000;
        // No real node: the control-plane scenarios run on simulated nodes; tests of the
        // real kubelet turn it back on.
        args.disable_agent = true;
        // No cluster DNS (tests run servers in parallel; port 53 is one): tests/dns.rs
        // turns it back on at a free port.
        args.disable_dns = true;
        change(&mut args);
        let running = server::start(&args).await?;
        let kubeconfig = running.kubeconfig.clone();
        let config = kube::Config::from_custom_kubeconfig(
            Kubeconfig::read_from(&kubeconfig)?,
            &KubeConfigOptions::default(),
        )
        .await?;
        let client = Client::try_from(config)?;
        Ok(Self {
            running,
            client,
            kubeconfig,
            dir,
            etcd,
        })
    }

    /// Waits (up to 90 s) until `n` nodes are Ready and rid of the `not-ready` taint (a new
    /// node registers not Ready, until its podCIDR comes). On etcd a simulated node's
    /// registration has been seen to take 30-40 s under load (an open issue), so scenarios
    /// that count nodes wait for them first.
    pub async fn wait_nodes_ready(&self, n: usize) -> Result<()> {
        let api: kube::Api<k8s_openapi::api::core::v1::Node> = kube::Api::all(self.client.clone());
        wait_for(
            "every simulated node Ready",
            Duration::from_secs(90),
            || async {
                let ready = api
                    .list(&Default::default())
                    .await?
                    .items
                    .iter()
                    .filter(|node| {
                        let ready = node
                            .status
                            .as_ref()
                            .and_then(|s| s.conditions.as_ref())
                            .is_some_and(|cs| {
                                cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                            });
                        // Node lifecycle lifts the not-ready taint a moment after Ready.
                        let untainted = node
                            .spec
                            .as_ref()
                            .and_then(|s| s.taints.as_ref())
                            .is_none_or(|ts| {
                                ts.iter().all(|t| t.key != "node.kubernetes.io/not-ready")
                            });
                        ready && untainted
                    })
                    .count();
                Ok((ready >= n).then_some(()))
            },
        )
        .await
    }

    /// Runs the real kubectl; its stdout, or an error with its stderr.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_stdin(args, None)
    }

    /// [`Cluster::kubectl`] with `stdin` piped in (e.g. `apply -f -`).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.kubectl_output(args, stdin)?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&out.stdout)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The whole output of kubectl, whether it succeeded or not.
    pub fn kubectl_output(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<std::process::Output> {
        use std::io::Write;
        let mut child = Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            // Its discovery cache stays with this cluster.
            .env("HOME", self.dir.path())
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running /usr/bin/kubectl")?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())?;
        }
        Ok(child.wait_with_output()?)
    }
}

/// Polls `check` every 100 ms until it answers `Some`, for at most `timeout`; the error says
/// what was waited for and the last thing `check` saw.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            match last_error {
                Some(e) => bail!("timed out after {timeout:?} waiting for {what}: {e:#}"),
                None => bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs each scenario (`async fn(&Cluster) -> anyhow::Result<()>`, at the test file's top
/// level) on a fresh cluster with `$nodes` simulated nodes on the embedded datastore and on
/// a real etcd.
#[macro_export]
macro_rules! on_both_datastores {
    (nodes: $nodes:expr; $($name:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    let cluster = super::common::Cluster::start(super::common::Datastore::Embedded, $nodes).await?;
                    super::$name(&cluster).await
                }
            )*
        }
        mod etcd {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> anyhow::Result<()> {
                    let cluster = super::common::Cluster::start(super::common::Datastore::Etcd, $nodes).await?;
                    super::$name(&cluster).await
                }
            )*
        }
    };
}
