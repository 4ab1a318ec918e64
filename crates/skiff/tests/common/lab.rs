//! A lab network for multi-node tests: a test bridge on the host and one network namespace
//! per node with a veth link to it (the test creates them and removes them on drop), plus
//! the helpers the network tests share (kubectl with a time bound, a pod's IP).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;

use super::{wait_for, KUBECTL};

pub const WAIT: Duration = Duration::from_secs(90);

pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The test's network: bridge `<tag>br` with `<prefix>.1/24` on the host, and one network
/// namespace per node (`<tag>-<i>`, address `<prefix>.<i+2>`, default route via the
/// host); removed on drop. `name` (5 letters at most, as interface names are short) and
/// `octet` (the prefix's second byte) keep the labs of different test binaries apart; the
/// process id, those of the same binary.
pub struct Lab {
    tag: String,
    prefix: String,
    nodes: usize,
}

impl Lab {
    pub fn create(name: &str, octet: u8, nodes: usize) -> Result<Self> {
        let n = std::process::id() % 200;
        let lab = Lab {
            tag: format!("{name}{n}"),
            prefix: format!("10.{octet}.{n}"),
            nodes,
        };
        lab.remove();
        let br = lab.bridge();
        run("ip", &["link", "add", &br, "type", "bridge"])?;
        run(
            "ip",
            &["addr", "add", &format!("{}.1/24", lab.prefix), "dev", &br],
        )?;
        run("ip", &["link", "set", &br, "up"])?;
        for i in 0..nodes {
            let ns = lab.netns(i);
            let host_end = format!("{}h{i}", lab.tag);
            run("ip", &["netns", "add", &ns])?;
            run(
                "ip",
                &[
                    "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ],
            )?;
            run("ip", &["link", "set", &host_end, "master", &br, "up"])?;
            lab.exec(i, &["ip", "link", "set", "lo", "up"])?;
            let address = format!("{}/24", lab.node_ip(i));
            lab.exec(i, &["ip", "addr", "add", &address, "dev", "eth0"])?;
            lab.exec(i, &["ip", "link", "set", "eth0", "up"])?;
            lab.exec(i, &["ip", "route", "add", "default", "via", &lab.host_ip()])?;
        }
        Ok(lab)
    }

    pub fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    pub fn netns(&self, i: usize) -> String {
        format!("{}-{i}", self.tag)
    }

    pub fn host_ip(&self) -> String {
        format!("{}.1", self.prefix)
    }

    pub fn node_ip(&self, i: usize) -> String {
        format!("{}.{}", self.prefix, i + 2)
    }

    /// `ip netns exec <node i> args...`
    pub fn exec(&self, i: usize, args: &[&str]) -> Result<String> {
        let ns = self.netns(i);
        let mut all = vec!["netns", "exec", ns.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    pub fn remove(&self) {
        for i in 0..self.nodes {
            let _ = run("ip", &["netns", "del", &self.netns(i)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.remove();
    }
}

/// kubectl, killed after 20 s (an `exec` of a connection that hangs must not hang the
/// test: busybox's `wget -T` crashes in these images, so the bound is outside).
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> Result<String> {
    let mut all = vec![
        "20",
        KUBECTL,
        "--kubeconfig",
        kubeconfig.to_str().context("utf-8 path")?,
    ];
    all.extend_from_slice(args);
    run("timeout", &all)
}

/// What `/cgi-bin/whoami` answered: the pod's name and the client's address as busybox
/// httpd writes it (`[::ffff:10.42.0.2]` on its IPv6 socket) made plain.
pub fn whoami(answer: &str) -> String {
    answer.trim().replace("[::ffff:", "").replace(']', "")
}

pub async fn pod_ip(pods: &Api<Pod>, name: &str) -> Result<String> {
    wait_for(&format!("pod {name} Running"), WAIT, || {
        let pods = pods.clone();
        let name = name.to_owned();
        async move {
            let Some(p) = pods.get_opt(&name).await? else {
                return Ok(None);
            };
            let s = p.status.unwrap_or_default();
            Ok(match (s.phase.as_deref(), s.pod_ip) {
                (Some("Running"), Some(ip)) => Some(ip),
                _ => None,
            })
        }
    })
    .await
}
