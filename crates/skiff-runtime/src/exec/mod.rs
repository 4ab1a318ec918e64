//! Exec, attach and port-forward into running containers and sandboxes (CRI's
//! `ExecSync`, `Exec`, `Attach` and `PortForward`), as containerd's CRI plugin and runc do
//! them (containerd `internal/cri/server/container_execsync.go`, `sandbox_portforward_linux.go`).

use std::path::Path;
use std::time::Duration;

use crate::container::monitor::ContainerHandle;
use crate::container::runtime::Runtime;
use crate::cri::{self, CriError, ExecOutput, StreamRequest, StreamSession};

/// Runs `cmd` in container `id` (`runc exec`), collects its output, kills it after `timeout`.
pub async fn exec_sync(
    runtime: &Runtime,
    id: &str,
    cmd: &[String],
    timeout: Duration,
) -> cri::Result<ExecOutput> {
    let _ = (runtime, id, cmd, timeout);
    Err(CriError::Other("exec: not built yet".into()))
}

/// Starts `req.cmd` in container `id` with streams (kubectl exec).
pub async fn exec(runtime: &Runtime, id: &str, req: StreamRequest) -> cri::Result<StreamSession> {
    let _ = (runtime, id, req);
    Err(CriError::Other("exec: not built yet".into()))
}

/// Attaches to the container's own stdio (kubectl attach).
pub async fn attach(
    container: &ContainerHandle,
    log_path: &Path,
    req: StreamRequest,
) -> cri::Result<StreamSession> {
    let _ = (container, log_path, req);
    Err(CriError::Other("exec: not built yet".into()))
}

/// A TCP connection to 127.0.0.1:`port` inside the network namespace file `netns`.
pub async fn port_forward(netns: &Path, port: u16) -> cri::Result<tokio::net::TcpStream> {
    let _ = (netns, port);
    Err(CriError::Other("exec: not built yet".into()))
}
