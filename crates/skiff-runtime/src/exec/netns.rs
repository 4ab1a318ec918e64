//! Port-forward: a TCP connection to the loopback of a sandbox's network namespace, as
//! containerd's `sandbox_portforward_linux.go` (127.0.0.1 first, then ::1, each bounded).
//!
//! The socket is made on a dedicated thread that `setns`es into the namespace file and
//! ends after the connect (it never returns to a pool in the wrong namespace); a socket
//! keeps the namespace it was made in, so tokio uses it from any thread afterwards.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sched::CloneFlags;

use crate::cri::{self, CriError};

/// Each connect attempt's bound (upstream's `dialTimeout`).
const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

fn describe(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut => "i/o timeout".into(),
        _ => e.to_string(),
    }
}

fn connect_in(netns: &Path, port: u16) -> cri::Result<TcpStream> {
    let ns = std::fs::File::open(netns).map_err(|e| {
        CriError::Other(format!(
            "failed to open network namespace {}: {e}",
            netns.display()
        ))
    })?;
    nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| {
        CriError::Other(format!(
            "failed to enter network namespace {}: {e}",
            netns.display()
        ))
    })?;
    let v4 = SocketAddr::from(([127, 0, 0, 1], port));
    let e4 = match TcpStream::connect_timeout(&v4, DIAL_TIMEOUT) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    let v6 = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port));
    let e6 = match TcpStream::connect_timeout(&v6, DIAL_TIMEOUT) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    Err(CriError::Other(format!(
        "failed to connect to localhost:{port} inside namespace {:?}: IPv4: {} IPv6: {}",
        netns.display().to_string(),
        describe(&e4),
        describe(&e6)
    )))
}

pub(super) async fn connect(netns: &Path, port: u16) -> cri::Result<tokio::net::TcpStream> {
    let path: PathBuf = netns.to_path_buf();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("skiff-portforward".into())
        .spawn(move || {
            // This thread ends here: its namespace dies with it.
            let _ = tx.send(connect_in(&path, port));
        })
        .map_err(|e| CriError::Other(format!("port-forward thread: {e}")))?;
    let std_stream = rx
        .await
        .map_err(|_| CriError::Other("port-forward thread ended without an answer".into()))??;
    std_stream
        .set_nonblocking(true)
        .map_err(|e| CriError::Other(format!("port-forward: {e}")))?;
    tokio::net::TcpStream::from_std(std_stream)
        .map_err(|e| CriError::Other(format!("port-forward: {e}")))
}
