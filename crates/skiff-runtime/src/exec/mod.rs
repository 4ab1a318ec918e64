//! Exec, attach and port-forward into running containers and sandboxes (CRI's `ExecSync`,
//! `Exec`, `Attach` and `PortForward`), as containerd's CRI plugin and runc do them
//! (containerd `internal/cri/server/container_execsync.go`, `container_exec.go`,
//! `container_attach.go`, `sandbox_portforward_linux.go`).
//!
//! - [`exec_sync`]: `runc exec` with pipes, stdout and stderr kept up to [`OUTPUT_CAP`]
//!   each (the start), killed at the timeout: every descendant of runc gets SIGKILL (found
//!   in /proc with runc stopped), runc then exits and is reaped.
//! - [`exec`]: `runc exec` with streams. Without a terminal, runc's stdio are tokio pipes.
//!   With one, runc runs *not* detached with the slave of a pty pair as its stdio: runc
//!   makes the container's own pty, proxies it to ours in raw mode and resizes it from
//!   ours on SIGWINCH, which we send it after each TIOCSWINSZ. (containerd detaches runc
//!   and takes the container's pty master over `--console-socket`; its shim is a child
//!   subreaper, so it still reaps the exec'd process and learns its exit code. The kubelet
//!   process must not be one - monitors double-fork so that they are nobody's children -
//!   and a detached process's exit code would be lost. Not detaching keeps runc as the
//!   waiting parent, so `exit` is the process's exit code, as without a terminal.)
//! - [`attach`] ([`attach`](mod@attach) module): the container's CRI log followed from
//!   its end, and the monitor's stdin FIFO.
//! - [`port_forward`] ([`netns`] module): a TCP connection made on a thread that entered
//!   the sandbox's network namespace.
//!
//! Every runc child is waited for by a task that owns it (a dropped session does not leave
//! a zombie; the process runs to its end, as upstream's).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::container::monitor::ContainerHandle;
use crate::container::runtime::{error_message, Runtime};
use crate::cri::{self, CriError, ExecOutput, StreamRequest, StreamSession};

mod attach;
mod netns;
mod pty;

/// The most of stdout, and of stderr, [`exec_sync`] keeps (the start of each).
pub const OUTPUT_CAP: usize = 16 * 1024;

/// The longest runc may take to start the exec'd process.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long output is still read after runc exited (a descendant may hold the pipes).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

fn io_error(what: &str) -> impl FnOnce(std::io::Error) -> CriError + '_ {
    move |e| CriError::Other(format!("exec: {what}: {e}"))
}

/// The files of one `runc exec`: its pid file and JSON log, in a private temp dir that
/// lives as long as this does.
struct ExecFiles {
    _dir: tempfile::TempDir,
    pid_file: PathBuf,
    log: PathBuf,
}

impl ExecFiles {
    fn new() -> cri::Result<ExecFiles> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-exec-")
            .tempdir()
            .map_err(io_error("temp dir"))?;
        Ok(ExecFiles {
            pid_file: dir.path().join("pid"),
            log: dir.path().join("runc.log"),
            _dir: dir,
        })
    }

    /// The exec'd process's pid (host namespace), once runc wrote it.
    fn pid(&self) -> Option<i32> {
        std::fs::read_to_string(&self.pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// runc's own error (an `error` entry in its log), if it wrote one.
    fn runtime_error(&self) -> Option<String> {
        let log = std::fs::read(&self.log).ok()?;
        let has_error = String::from_utf8_lossy(&log)
            .lines()
            .any(|l| l.contains("\"level\":\"error\""));
        has_error.then(|| error_message(Some(&log), b""))
    }
}

/// `runc exec [--tty] --pid-file P <id> <cmd...>` (the process spec is the container's
/// own with `args` replaced: env, user, cwd, capabilities as its init's).
fn runc_exec(
    runtime: &Runtime,
    id: &str,
    cmd: &[String],
    tty: bool,
    files: &ExecFiles,
) -> cri::Result<tokio::process::Command> {
    if cmd.is_empty() {
        return Err(CriError::Other("exec: no command given".into()));
    }
    let mut args: Vec<OsString> = vec!["exec".into()];
    if tty {
        args.push("--tty".into());
    }
    args.push("--pid-file".into());
    args.push(files.pid_file.clone().into());
    args.push(id.into());
    args.extend(cmd.iter().map(OsString::from));
    let mut c = tokio::process::Command::from(runtime.command(Some(&files.log), &args));
    c.kill_on_drop(false);
    Ok(c)
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        _ => 255,
    }
}

/// The process and every descendant of `pid` (from /proc/<pid>/task/*/children), bounded.
fn descendants(pid: i32) -> Vec<i32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() && all.len() < 4096 {
        let p = all[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let Ok(text) = std::fs::read_to_string(t.path().join("children")) else {
                    continue;
                };
                for c in text.split_whitespace().filter_map(|c| c.parse().ok()) {
                    if !all.contains(&c) {
                        all.push(c);
                    }
                }
            }
        }
        i += 1;
    }
    all
}

fn signal(pid: i32, sig: Signal) {
    if let Some(p) = Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// SIGKILL to every descendant of our `runc exec` (the exec'd process, its children, and
/// orphans of theirs: runc is their subreaper). runc is stopped while its tree is found and
/// killed, so nothing forks in between; then it is resumed (it reaps them and exits, 137
/// for a killed process) or, with `kill_runc`, killed too.
fn kill_exec(runc_pid: Option<u32>, kill_runc: bool) {
    let Some(runc) = runc_pid.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    signal(runc, Signal::STOP);
    let mut tree: Vec<i32> = descendants(runc)
        .into_iter()
        .filter(|p| *p != runc)
        .collect();
    for p in &tree {
        signal(*p, Signal::STOP);
    }
    for p in tree.clone() {
        for c in descendants(p) {
            if !tree.contains(&c) {
                signal(c, Signal::STOP);
                tree.push(c);
            }
        }
    }
    for p in &tree {
        signal(*p, Signal::KILL);
    }
    signal(
        runc,
        if kill_runc {
            Signal::KILL
        } else {
            Signal::CONT
        },
    );
}

/// Reads `r` to its end, keeping the first `cap` bytes.
async fn read_capped(mut r: impl AsyncRead + Unpin, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Kills the exec'd process tree and runc if the future that started it is dropped before
/// it ended (a cancelled `exec_sync` leaves nothing running; tokio reaps the dropped runc).
struct KillOnDrop {
    runc_pid: Option<u32>,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.armed {
            kill_exec(self.runc_pid, true);
        }
    }
}

/// Runs `cmd` in container `id` (`runc exec`), collects its output, kills it after `timeout`.
pub async fn exec_sync(
    runtime: &Runtime,
    id: &str,
    cmd: &[String],
    timeout: Duration,
) -> cri::Result<ExecOutput> {
    let files = ExecFiles::new()?;
    let mut command = runc_exec(runtime, id, cmd, false, &files)?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(io_error("starting runc exec"))?;
    let mut guard = KillOnDrop {
        runc_pid: child.id(),
        armed: true,
    };
    let out = child.stdout.take().map(|s| read_capped(s, OUTPUT_CAP));
    let err = child.stderr.take().map(|s| read_capped(s, OUTPUT_CAP));
    let out = tokio::spawn(async move {
        match out {
            Some(f) => f.await,
            None => Vec::new(),
        }
    });
    let err = tokio::spawn(async move {
        match err {
            Some(f) => f.await,
            None => Vec::new(),
        }
    });
    let (status, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => (status.map_err(io_error("waiting for runc exec"))?, false),
        Err(_) => {
            kill_exec(child.id(), false);
            let status = match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
                Ok(s) => s.map_err(io_error("waiting for runc exec"))?,
                Err(_) => {
                    let _ = child.start_kill();
                    child
                        .wait()
                        .await
                        .map_err(io_error("waiting for runc exec"))?
                }
            };
            (status, true)
        }
    };
    guard.armed = false;
    let collect = |h: tokio::task::JoinHandle<Vec<u8>>| async move {
        match tokio::time::timeout(DRAIN_AFTER_EXIT, h).await {
            Ok(Ok(v)) => v,
            _ => Vec::new(),
        }
    };
    let (stdout, stderr) = (collect(out).await, collect(err).await);
    let code = exit_code(status);
    if !timed_out && files.pid().is_none() {
        // The process never started: runc's own message (e.g. the command does not exist).
        let msg = files
            .runtime_error()
            .unwrap_or_else(|| format!("runc exec exited {code} before starting the process"));
        return Err(CriError::Other(msg));
    }
    Ok(ExecOutput {
        exit_code: code,
        stdout,
        stderr,
        timed_out,
    })
}

/// Waits until runc wrote the exec'd pid (the process runs) or exited (then: its own
/// error if it failed to start the process, else the process's quick exit).
async fn wait_started(
    child: &mut tokio::process::Child,
    files: &ExecFiles,
) -> cri::Result<Option<i32>> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        if files.pid().is_some() {
            return Ok(None);
        }
        if let Some(status) = child
            .try_wait()
            .map_err(io_error("waiting for runc exec"))?
        {
            if files.pid().is_some() {
                return Ok(Some(exit_code(status)));
            }
            let code = exit_code(status);
            return Err(CriError::Other(files.runtime_error().unwrap_or_else(
                || format!("runc exec exited {code} before starting the process"),
            )));
        }
        if tokio::time::Instant::now() >= deadline {
            let _ = child.start_kill();
            return Err(CriError::Other(format!(
                "runc exec did not start the process within {START_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Starts `req.cmd` in container `id` with streams (kubectl exec).
pub async fn exec(runtime: &Runtime, id: &str, req: StreamRequest) -> cri::Result<StreamSession> {
    let files = ExecFiles::new()?;
    let mut command = runc_exec(runtime, id, &req.cmd, req.tty, &files)?;
    let piped = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
    let mut term = None;
    if req.tty {
        let p = pty::Pty::open()?;
        command
            .stdin(p.slave()?)
            .stdout(p.slave()?)
            .stderr(p.slave()?);
        term = Some(p);
    } else {
        command
            .stdin(piped(req.stdin))
            .stdout(piped(req.stdout))
            .stderr(piped(req.stderr));
    }
    let mut child = command.spawn().map_err(io_error("starting runc exec"))?;
    drop(command); // our copies of the pty slave
    let runc_pid = child.id();
    let early_exit = wait_started(&mut child, &files).await?;

    let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
    let mut session = StreamSession {
        stdin: None,
        stdout: None,
        stderr: None,
        resize: None,
        exit: exit_rx,
    };
    if let Some(p) = term {
        let (r, w) = p.into_halves()?;
        if req.stdin {
            session.stdin = Some(Box::pin(w.clone()));
        }
        if req.stdout {
            session.stdout = Some(Box::pin(r));
        }
        let (tx, mut rx) = tokio::sync::mpsc::channel::<cri::TerminalSize>(8);
        session.resize = Some(tx);
        tokio::spawn(async move {
            while let Some(size) = rx.recv().await {
                if w.resize(size).is_ok() {
                    if let Some(pid) = runc_pid.and_then(|p| i32::try_from(p).ok()) {
                        // runc copies our size to the container's terminal on SIGWINCH.
                        signal(pid, Signal::WINCH);
                    }
                }
            }
        });
    } else {
        if let Some(s) = child.stdin.take() {
            session.stdin = Some(Box::pin(s));
        }
        if let Some(s) = child.stdout.take() {
            session.stdout = Some(Box::pin(s));
        }
        if let Some(s) = child.stderr.take() {
            session.stderr = Some(Box::pin(s));
        }
    }
    // The waiter owns runc and the temp files: a dropped session still reaps it.
    tokio::spawn(async move {
        let _files = files;
        let result = match early_exit {
            Some(code) => Ok(code),
            None => child
                .wait()
                .await
                .map(exit_code)
                .map_err(io_error("waiting for runc exec")),
        };
        let _ = exit_tx.send(result);
    });
    Ok(session)
}

/// Attaches to the container's own stdio (kubectl attach): see [`attach`](mod@attach).
pub async fn attach(
    container: &ContainerHandle,
    log_path: &Path,
    req: StreamRequest,
) -> cri::Result<StreamSession> {
    attach::attach(container, log_path, req).await
}

/// A TCP connection to 127.0.0.1:`port` inside the network namespace file `netns`
/// (see [`netns`]).
pub async fn port_forward(netns: &Path, port: u16) -> cri::Result<tokio::net::TcpStream> {
    netns::connect(netns, port).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_of_signals_are_128_plus() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(9)), 137);
    }

    #[tokio::test]
    async fn output_is_capped_keeping_the_start() {
        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let got = read_capped(&data[..], OUTPUT_CAP).await;
        assert_eq!(got.len(), OUTPUT_CAP);
        assert_eq!(&got[..], &data[..OUTPUT_CAP]);
        assert_eq!(read_capped(&b"short"[..], OUTPUT_CAP).await, b"short");
    }

    #[test]
    fn an_empty_command_is_refused() {
        let files = ExecFiles::new().expect("temp dir");
        let rt = Runtime::new("runc", "/nonexistent");
        assert!(runc_exec(&rt, "c", &[], false, &files).is_err());
    }
}
