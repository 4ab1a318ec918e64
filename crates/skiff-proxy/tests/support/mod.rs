//! Test support: network namespaces removed on drop, threads that run inside one (setns),
//! TCP responders answering their name, and Services / EndpointSlices built as the API serves
//! them. Shared by tests/dataplane.rs and benches/sync.rs.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{json, Value};

/// Runs a command, failing with its stderr.
pub fn sh(args: &[&str]) -> Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {args:?}"))?;
    if !out.status.success() {
        bail!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A unique prefix for this process's namespaces.
pub fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "skp{}{tag}{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace, deleted on drop (its links go with it).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: String) -> Result<Self> {
        sh(&["ip", "netns", "add", &name])?;
        let ns = Self { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["ip", "-n", self.name.as_str()];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// `ip netns exec NAME ARGS`.
    pub fn exec(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["ip", "netns", "exec", self.name.as_str()];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// The nft argv prefix for this namespace.
    pub fn nft(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.name, "nft"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    }

    /// Runs `f` on a thread that has entered this namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || -> Result<T> {
            enter(&path)?;
            Ok(f())
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the thread in {} panicked", self.name))?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Moves the calling thread into the network namespace at `path`.
pub fn enter(path: &str) -> Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("setns {path}"))?;
    Ok(())
}

/// A TCP responder inside a namespace that answers every connection with its name and the
/// peer's address (`pod0 10.42.0.1`), and closes; stops on drop (and after five minutes whatever happens).
pub struct Responder {
    stop: Arc<AtomicBool>,
}

impl Responder {
    pub fn start(ns: &Netns, port: u16, name: &str) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let path = format!("/run/netns/{}", ns.name);
        let (tx, rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let name = name.to_owned();
        std::thread::spawn(move || {
            let listener = enter(&path).and_then(|()| {
                let l = TcpListener::bind(("0.0.0.0", port))?;
                l.set_nonblocking(true)?;
                Ok(l)
            });
            let listener = match listener {
                Ok(l) => {
                    let _ = tx.send(Ok(()));
                    l
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let until = Instant::now() + Duration::from_secs(300);
            while !flag.load(Ordering::Relaxed) && Instant::now() < until {
                match listener.accept() {
                    Ok((mut s, peer)) => {
                        let _ = s.set_nonblocking(false);
                        let _ = s.write_all(format!("{name} {}", peer.ip()).as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(5))
            .context("the responder did not start")??;
        Ok(Self { stop })
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `n` connections to `addr` from inside `ns`, each answered with what the server sent.
pub fn requests(ns: &Netns, addr: SocketAddr, n: usize) -> Result<Vec<std::io::Result<String>>> {
    ns.run(move || {
        (0..n)
            .map(|_| {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(1500))?;
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                let mut out = String::new();
                s.read_to_string(&mut out)?;
                Ok(out)
            })
            .collect()
    })
}

/// One answer, or the error.
pub fn request(ns: &Netns, addr: SocketAddr) -> Result<std::io::Result<String>> {
    requests(ns, addr, 1)?.pop().context("no answer")
}

/// A Service from JSON fragments: `spec` merged over a ClusterIP Service.
pub fn service(ns: &str, name: &str, spec: Value) -> Service {
    service_with_status(ns, name, spec, json!({}))
}

pub fn service_with_status(ns: &str, name: &str, spec: Value, status: Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": spec,
        "status": status,
    }))
    .expect("a valid Service")
}

/// An EndpointSlice for Service `svc` with the given ports (`[name, port]`, TCP) and
/// endpoints (JSON, e.g. `{"addresses": ["10.42.0.10"], "nodeName": "n1"}`).
pub fn slice(
    ns: &str,
    name: &str,
    svc: &str,
    ports: &[(&str, u16)],
    endpoints: Value,
) -> EndpointSlice {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(n, p)| {
            if n.is_empty() {
                json!({"port": p, "protocol": "TCP"})
            } else {
                json!({"name": n, "port": p, "protocol": "TCP"})
            }
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name,
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    }))
    .expect("a valid EndpointSlice")
}
