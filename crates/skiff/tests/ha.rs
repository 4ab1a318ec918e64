//! End to end: two `skiff server` processes on one real etcd form one control plane. Both
//! serve the API; the controller manager and the scheduler run on one of them at a time,
//! elected with the `kube-controller-manager` and `kube-scheduler` Leases in kube-system.
//! Killing the leader with SIGKILL hands both to the other within 20 seconds, and the new
//! leader creates no pod twice and goes on scheduling. The simulated nodes run in the
//! second server, so they outlive the first.
//! The second server shares the first one's CA and token, copied from its data dir (as a
//! k3s server joins with the first one's token).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Result};
use common::procs::ServerProcess;
use common::KUBECTL;
use skiff_store::testing::EtcdProcess;

/// One `skiff server` process on the shared etcd; killed (SIGKILL) on drop.
struct Server(ServerProcess);

impl Server {
    fn start(dir: &Path, etcd: &EtcdProcess, extra: &[&str]) -> Result<Self> {
        let endpoint = etcd.endpoint();
        // Control plane only (ServerProcess runs with --disable-agent): a real node would
        // run the test's pods as real containers that outlive the killed server and hold
        // pod IPs on the shared cni0 bridge.
        let mut flags = vec![
            "--bind-address",
            "127.0.0.1",
            "--disable-dns",
            "--datastore-endpoint",
            endpoint.as_str(),
        ];
        flags.extend_from_slice(extra);
        Ok(Self(ServerProcess::start(dir, 0, &flags)?))
    }

    fn identity(&self) -> Result<String> {
        Ok(std::fs::read_to_string(self.0.dir.join("server/identity"))?
            .trim()
            .to_owned())
    }

    fn kubectl(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(self.0.kubeconfig())
            .args(args)
            .env("HOME", &self.0.dir)
            .stdin(Stdio::null())
            .output()?;
        if !out.status.success() {
            bail!(
                "kubectl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    fn lease_holder(&self, lease: &str) -> Result<String> {
        self.kubectl(&[
            "-n",
            "kube-system",
            "get",
            "lease",
            lease,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}

fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = f();
        if let Ok(Some(v)) = last {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {timeout:?} waiting for {what} (last: {:?})",
                last.err()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn pod_names(server: &Server) -> Result<Vec<String>> {
    let out = server.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=ha",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ])?;
    let mut names: Vec<String> = out.split_whitespace().map(str::to_owned).collect();
    names.sort();
    Ok(names)
}

/// How many `app=ha` pods are bound to a node.
fn bound(server: &Server) -> Result<usize> {
    let out = server.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=ha",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ])?;
    Ok(out.split_whitespace().count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_manager_fails_over_to_the_other_server() -> Result<()> {
    let etcd = EtcdProcess::start_in(None).await?;
    let root = tempfile::tempdir()?;
    let (a_dir, b_dir) = (root.path().join("a"), root.path().join("b"));
    let mut a = Server::start(&a_dir, &etcd, &[])?;
    copy_dir(&a_dir.join("server/tls"), &b_dir.join("server/tls"))?;
    std::fs::copy(a_dir.join("server/token"), b_dir.join("server/token"))?;
    let b = Server::start(&b_dir, &etcd, &["--simulated-nodes", "2"])?;
    ensure!(
        a.identity()? != b.identity()?,
        "the two servers have distinct identities"
    );
    // Both serve the API (one cluster: what one writes, the other reads).
    a.kubectl(&["create", "configmap", "shared", "--from-literal=k=v"])?;
    ensure!(
        b.kubectl(&["get", "configmap", "shared", "-o", "name"])?
            .trim()
            == "configmap/shared"
    );

    // The first server started first, so it took the Lease.
    let a_id = a.identity()?;
    wait_until("the first server to lead", Duration::from_secs(30), || {
        Ok((a.lease_holder("kube-controller-manager")? == a_id
            && a.lease_holder("kube-scheduler")? == a_id)
            .then_some(()))
    })?;
    let (leader, follower) = (&mut a, &b);
    leader.kubectl(&[
        "create",
        "deployment",
        "ha",
        "--image=busybox",
        "--replicas=3",
    ])?;
    let before = wait_until(
        "3 pods from the leader's controllers, bound by its scheduler",
        Duration::from_secs(30),
        || {
            let names = pod_names(follower)?;
            Ok((names.len() == 3 && bound(follower)? == 3).then_some(names))
        },
    )?;

    // SIGKILL the leader: the follower takes the Lease within 20 s.
    leader.0.kill()?;
    let killed = Instant::now();
    let follower_id = follower.identity()?;
    wait_until(
        "the follower to take the controller-manager and scheduler Leases",
        Duration::from_secs(25),
        || {
            Ok(
                (follower.lease_holder("kube-controller-manager")? == follower_id
                    && follower.lease_holder("kube-scheduler")? == follower_id)
                    .then_some(()),
            )
        },
    )?;
    let handover = killed.elapsed();
    ensure!(
        handover <= Duration::from_secs(20),
        "leadership moved after {handover:?}"
    );

    // The new leader resumes from a fresh list: it creates nothing twice...
    std::thread::sleep(Duration::from_secs(3));
    ensure!(
        pod_names(follower)? == before,
        "the pods stay the same three"
    );
    // ...and it works: a scale to 5 adds exactly two.
    follower.kubectl(&["scale", "deployment", "ha", "--replicas=5"])?;
    let after = wait_until(
        "5 pods from the new leader, all bound",
        Duration::from_secs(30),
        || {
            let names = pod_names(follower)?;
            Ok((names.len() == 5 && bound(follower)? == 5).then_some(names))
        },
    )?;
    ensure!(
        before.iter().all(|n| after.contains(n)),
        "{before:?} kept in {after:?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    ensure!(pod_names(follower)?.len() == 5, "no pod created twice");
    Ok(())
}
