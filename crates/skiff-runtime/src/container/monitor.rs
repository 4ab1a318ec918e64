//! The per-container monitor (conmon's role) and its library side.
//!
//! The monitor is the skiff binary re-executed (`skiff container-monitor <dir>/monitor.json`,
//! dispatched before any async runtime exists): single-threaded, blocking `poll(2)` on the
//! container's stdout/stderr pipes and a signal self-pipe. It outlives whoever started it:
//!
//! 1. Stage 1 (what the caller spawns) re-executes itself as stage 2 and exits at once, so
//!    the caller reaps it and stage 2 is nobody's child (no zombie if the caller forgets).
//! 2. Stage 2 calls `setsid` (own session: signals to the caller's group never reach it),
//!    becomes a child subreaper, makes two pipes and runs `<runtime> run --detach` with them
//!    as the container's stdout/stderr. It writes `started.json` (pid, start time) and
//!    reports `skiff-monitor: ok <pid>` (or `skiff-monitor: error <message>` with the
//!    runtime's own message) on its stdout, then points its stdout at /dev/null.
//! 3. It copies both pipes into the CRI log file (`<RFC3339Nano> stdout|stderr F|P <line>`,
//!    lines longer than 16 KiB split into `P` parts), reaps the container's init, reads the
//!    OOM-kill counter of the container's memory cgroup (v1 `memory.oom_control`, v2
//!    `memory.events`), writes `exit.json` durably (temp, fsync, rename, fsync dir) and exits.
//!    (`monitor.json` and `started.json` are written atomically but not synced.)
//!    SIGUSR1 reopens the log file (for rotation).
//!
//! The library side ([`Containers`], [`ContainerHandle`]) starts monitors, reads their files
//! and finds running containers again after the caller restarts: everything is in the
//! container's directory `<state dir>/<id>/`, nothing in the caller's memory.
//!
//! Not done here: removing the container (the caller's `remove`, as CRI's RemoveContainer),
//! log rotation itself, stdin and terminals.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, Signal, WaitOptions};
use serde::{Deserialize, Serialize};

use super::runtime::{error_message, Runtime, RuntimeError};

/// The CRI log's maximum line: longer lines are split into `P` records (the kubelet's and
/// containerd's `max_container_log_line_size` default).
pub const MAX_LOG_LINE: usize = 16 * 1024;

/// How long the monitor keeps reading the pipes after the container's init exited, for
/// output still buffered or held open by processes that outlive it.
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

const STAGE_ENV: &str = "SKIFF_MONITOR_STAGE";
const REPORT_PREFIX: &str = "skiff-monitor: ";

/// Errors of the library side.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The runtime refused the container; the message is its own (runc's).
    #[error("{0}")]
    Runtime(String),
    #[error("the monitor of {id} failed: {message}")]
    Monitor { id: String, message: String },
    #[error("container {0} is not known")]
    NotFound(String),
    #[error(transparent)]
    RuntimeCall(#[from] RuntimeError),
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> MonitorError + 'a {
    move |source| MonitorError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// What the monitor reads from `monitor.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MonitorConfig {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: Runtime,
    /// The container's state directory (`<state dir>/<id>`).
    pub dir: PathBuf,
    pub log_path: PathBuf,
    #[serde(default = "default_max_line")]
    pub max_line: usize,
    /// Give the container a stdin: the FIFO `<dir>/stdin`, which `attach` writers open.
    /// The container holds it read-write, so it never sees EOF when a writer leaves
    /// (Kubernetes' `stdin: true` without `stdinOnce`).
    #[serde(default)]
    pub stdin: bool,
}

fn default_max_line() -> usize {
    MAX_LOG_LINE
}

/// `started.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub pid: i32,
    pub monitor_pid: i32,
    /// The monitor's start time (clock ticks since boot, /proc/PID/stat field 22): a pid
    /// reused by another process after a reboot is not mistaken for the monitor.
    #[serde(default)]
    pub monitor_start_ticks: u64,
    /// RFC 3339.
    pub started_at: String,
}

/// `exit.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exited {
    /// The exit status, or 128 + the signal that killed the process (137 for SIGKILL).
    pub exit_code: i32,
    pub signal: Option<i32>,
    /// The container's memory cgroup counted an OOM kill.
    pub oom_killed: bool,
    pub started_at: String,
    pub finished_at: String,
}

// ---------------------------------------------------------------------------------------
// The monitor process.

/// The monitor's entry point (`skiff container-monitor <config>`). Returns the process's
/// exit code. Stage 1 and 2 are told apart by an environment variable.
pub fn run(config_path: &Path) -> i32 {
    if std::env::var_os(STAGE_ENV).is_none() {
        return stage1();
    }
    match stage2(config_path) {
        Ok(()) => 0,
        Err(message) => {
            // Before reporting, this reaches the caller; after, it is in monitor.log.
            report(&format!("error {}", one_line(&message)));
            eprintln!("skiff-monitor: {message}");
            1
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{REPORT_PREFIX}{line}");
    let _ = out.flush();
}

/// Re-executes this very command line as stage 2 and exits, leaving it parentless.
fn stage1() -> i32 {
    let mut args = std::env::args_os();
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            report(&format!("error cannot find the monitor binary: {e}"));
            return 1;
        }
    };
    let _ = args.next();
    // In `/`, so that the monitor keeps no directory of its caller busy (the paths it is
    // given are absolute).
    match Command::new(exe)
        .args(args)
        .env(STAGE_ENV, "2")
        .current_dir("/")
        .stdin(Stdio::null())
        .spawn()
    {
        Ok(_) => 0,
        Err(e) => {
            report(&format!("error cannot start the monitor: {e}"));
            1
        }
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Writes `bytes` to `path` durably: temp file, fsync, rename, fsync of the directory.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomically(path, bytes, true)
}

/// Temp file and rename: readers see the old file or the whole new one. With `sync`, also
/// fsync of the file before and of the directory after the rename (survives power loss).
/// Only `exit.json` is synced: the rest describes running processes, which a power loss
/// ends anyway, and two fsyncs would be most of a start's latency on a busy disk.
fn write_atomically(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
    }
    fs::rename(&tmp, path)?;
    if sync {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn open_log(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn stage2(config_path: &Path) -> Result<(), String> {
    // Own session: the caller's terminal and process group signals do not reach us.
    rustix::process::setsid().map_err(|e| format!("setsid: {e}"))?;
    rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        .map_err(|e| format!("becoming a subreaper: {e}"))?;
    let raw = fs::read(config_path).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let cfg: MonitorConfig =
        serde_json::from_slice(&raw).map_err(|e| format!("{}: {e}", config_path.display()))?;

    // Signals arrive as bytes on a pipe polled with the stdio pipes.
    let (sig_r, sig_w) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    )
    .map_err(|e| format!("pipe: {e}"))?;
    for sig in [signal_hook::consts::SIGCHLD, signal_hook::consts::SIGUSR1] {
        let w = rustix::io::dup(&sig_w).map_err(|e| format!("dup: {e}"))?;
        signal_hook::low_level::pipe::register(sig, w)
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    drop(sig_w);

    let (out_r, out_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("pipe: {e}"))?;
    let (err_r, err_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| format!("pipe: {e}"))?;
    let mut log =
        open_log(&cfg.log_path).map_err(|e| format!("{}: {e}", cfg.log_path.display()))?;

    let pid_file = cfg.dir.join("pid");
    let runtime_log = cfg.dir.join("runtime.log");
    let _ = fs::remove_file(&runtime_log);
    let stdin = if cfg.stdin {
        let fifo = cfg.dir.join("stdin");
        let _ = fs::remove_file(&fifo);
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .map_err(|e| format!("mkfifo {}: {e}", fifo.display()))?;
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .map_err(|e| format!("{}: {e}", fifo.display()))?;
        Stdio::from(f)
    } else {
        Stdio::null()
    };
    let status = {
        // The command owns the pipes' write ends; dropping it closes our copies, so EOF on
        // the read ends means the container (and everything that inherited them) is done.
        let mut cmd = cfg.runtime.command(
            Some(&runtime_log),
            &[
                "run".into(),
                "--detach".into(),
                "--bundle".into(),
                cfg.bundle.clone().into(),
                "--pid-file".into(),
                pid_file.clone().into(),
                cfg.id.clone().into(),
            ],
        );
        cmd.env_remove(STAGE_ENV)
            .stdin(stdin)
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w));
        cmd.status()
            .map_err(|e| format!("cannot run {}: {e}", cfg.runtime.binary.display()))?
    };
    if !status.success() {
        let stderr = read_available(&err_r);
        let message = error_message(fs::read(&runtime_log).ok().as_deref(), &stderr);
        // A failed run can leave a half-made container behind.
        let _ = cfg.runtime.delete(&cfg.id, true);
        // runc's message already says `runc run failed: ...`; crun's does not.
        let name = cfg.runtime.name();
        let message = if message.starts_with(&name) {
            message
        } else {
            format!("{name} run failed: {message}")
        };
        report(&format!("runtime-error {}", one_line(&message)));
        return Err(message);
    }
    let pid: i32 = fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| {
            format!(
                "{} wrote no pid to {}",
                cfg.runtime.name(),
                pid_file.display()
            )
        })?;
    let monitor_pid = rustix::process::getpid().as_raw_nonzero().get();
    let started = Started {
        pid,
        monitor_pid,
        monitor_start_ticks: start_ticks(monitor_pid).unwrap_or(0),
        started_at: now_rfc3339(),
    };
    write_atomically(
        &cfg.dir.join("started.json"),
        &serde_json::to_vec(&started).map_err(|e| e.to_string())?,
        false,
    )
    .map_err(|e| format!("started.json: {e}"))?;
    report(&format!("ok {pid}"));
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = rustix::stdio::dup2_stdout(&null);
    }

    let mut streams = [Stream::new("stdout", out_r), Stream::new("stderr", err_r)];
    let mut exit: Option<(i32, Option<i32>)> = None;
    let mut exited_at: Option<Instant> = None;
    let mut buf = vec![0u8; 32 * 1024];
    let mut sig_buf = [0u8; 64];
    let sig_r = sig_r;
    loop {
        if exit.is_none() {
            exit = reap(pid);
            if exit.is_some() {
                exited_at = Some(Instant::now());
            }
        } else {
            let _ = reap(-1);
        }
        let open = streams.iter().any(|s| s.fd.is_some());
        if let Some(t) = exited_at {
            if !open || t.elapsed() >= DRAIN_AFTER_EXIT {
                break;
            }
        }
        let timeout = exited_at.map(|t| {
            let left = DRAIN_AFTER_EXIT.saturating_sub(t.elapsed());
            rustix::fs::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: i64::from(left.subsec_nanos()),
            }
        });
        let mut fds: Vec<PollFd<'_>> = vec![PollFd::new(&sig_r, PollFlags::IN)];
        let mut which = Vec::new();
        for (i, s) in streams.iter().enumerate() {
            if let Some(fd) = &s.fd {
                fds.push(PollFd::new(fd, PollFlags::IN));
                which.push(i);
            }
        }
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let sig_ready = !fds[0].revents().is_empty();
        let ready: Vec<usize> = fds[1..]
            .iter()
            .zip(&which)
            .filter(|(f, _)| !f.revents().is_empty())
            .map(|(_, i)| *i)
            .collect();
        drop(fds);
        if sig_ready {
            let mut reopen = false;
            while let Ok(n) = rustix::io::read(&sig_r, &mut sig_buf) {
                if n == 0 {
                    break;
                }
                // Which signal is not in the byte; reopening is cheap, so any wake-up that
                // is not ours to reap reopens only when the log file was moved away.
                reopen = true;
            }
            if reopen && !cfg.log_path.exists() {
                if let Ok(f) = open_log(&cfg.log_path) {
                    log = f;
                }
            }
        }
        let mut out = Vec::new();
        for i in ready {
            let s = &mut streams[i];
            let Some(fd) = &s.fd else { continue };
            match rustix::io::read(fd, &mut buf) {
                Ok(0) => {
                    s.finish(&mut out);
                    s.fd = None;
                }
                Ok(n) => s.push(&buf[..n], cfg.max_line, &mut out),
                Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                Err(_) => {
                    s.finish(&mut out);
                    s.fd = None;
                }
            }
        }
        if !out.is_empty() {
            if let Err(e) = log.write_all(&out) {
                eprintln!("skiff-monitor: writing {}: {e}", cfg.log_path.display());
            }
        }
    }
    let mut out = Vec::new();
    for s in &mut streams {
        s.finish(&mut out);
    }
    let _ = log.write_all(&out);
    let _ = log.sync_data();

    let (exit_code, signal) = exit.unwrap_or((255, None));
    let oom_killed = cgroup_oom_killed(&cfg.bundle);
    let exited = Exited {
        exit_code,
        signal,
        oom_killed,
        started_at: started.started_at,
        finished_at: now_rfc3339(),
    };
    write_durably(
        &cfg.dir.join("exit.json"),
        &serde_json::to_vec(&exited).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("exit.json: {e}"))?;
    Ok(())
}

/// Reaps children without blocking; returns the exit of `pid` if it was among them
/// (`pid == -1` reaps only).
fn reap(pid: i32) -> Option<(i32, Option<i32>)> {
    let mut found = None;
    loop {
        // `wait` is waitpid(-1): any child. (`waitpid(None)` is pid 0, our process group only.)
        match rustix::process::wait(WaitOptions::NOHANG) {
            Ok(Some((p, status))) => {
                if p.as_raw_nonzero().get() == pid {
                    found = Some(match (status.exit_status(), status.terminating_signal()) {
                        (Some(code), _) => (code, None),
                        (None, Some(sig)) => (128 + sig, Some(sig)),
                        _ => (255, None),
                    });
                }
            }
            _ => return found,
        }
    }
}

fn read_available(fd: &OwnedFd) -> Vec<u8> {
    let _ = rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = rustix::io::read(fd, &mut buf) {
        if n == 0 || out.len() > 64 * 1024 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    out
}

/// Whether the memory cgroup of the container in `bundle` counted an OOM kill.
fn cgroup_oom_killed(bundle: &Path) -> bool {
    let Some(path) = fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["linux"]["cgroupsPath"].as_str().map(str::to_string))
    else {
        return false;
    };
    oom_kills(Path::new("/sys/fs/cgroup"), &path).unwrap_or(0) > 0
}

/// The `oom_kill` counter of cgroup `path` (absolute from the hierarchy roots) under
/// `root`: v1 `memory/<path>/memory.oom_control`, else v2 `<path>/memory.events`.
pub fn oom_kills(root: &Path, path: &str) -> Option<u64> {
    let rel = path.trim_start_matches('/');
    let v1 = root.join("memory").join(rel).join("memory.oom_control");
    let v2 = root.join(rel).join("memory.events");
    let text = fs::read_to_string(&v1)
        .or_else(|_| fs::read_to_string(&v2))
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill "))
        .and_then(|n| n.trim().parse().ok())
}

/// One of the container's output streams and its unfinished line.
struct Stream {
    name: &'static str,
    fd: Option<OwnedFd>,
    partial: Vec<u8>,
}

impl Stream {
    fn new(name: &'static str, fd: OwnedFd) -> Self {
        Stream {
            name,
            fd: Some(fd),
            partial: Vec::new(),
        }
    }

    fn push(&mut self, data: &[u8], max_line: usize, out: &mut Vec<u8>) {
        let ts = now_rfc3339();
        let mut rest = data;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&rest[..i]);
            let line = std::mem::take(&mut self.partial);
            write_line(out, &ts, self.name, &line, max_line);
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        while self.partial.len() >= max_line.max(1) {
            let tail = self.partial.split_off(max_line.max(1));
            let part = std::mem::replace(&mut self.partial, tail);
            record(out, &ts, self.name, 'P', &part);
        }
    }

    /// At EOF an unterminated last line is written as a full line (containerd does too).
    fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            record(out, &now_rfc3339(), self.name, 'F', &line);
        }
    }
}

/// A complete line, split into `P` parts of `max_line` bytes and a final `F` part.
fn write_line(out: &mut Vec<u8>, ts: &str, stream: &str, line: &[u8], max_line: usize) {
    let max = max_line.max(1);
    let mut line = line;
    while line.len() > max {
        record(out, ts, stream, 'P', &line[..max]);
        line = &line[max..];
    }
    record(out, ts, stream, 'F', line);
}

fn record(out: &mut Vec<u8>, ts: &str, stream: &str, tag: char, content: &[u8]) {
    out.extend_from_slice(ts.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.push(b' ');
    out.push(tag as u8);
    out.push(b' ');
    out.extend_from_slice(content);
    out.push(b'\n');
}

// ---------------------------------------------------------------------------------------
// The library side.

/// How to start a monitor: a program and the arguments before the config path.
#[derive(Clone, Debug)]
pub struct MonitorCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl MonitorCommand {
    /// This binary's hidden subcommand: `<current exe> container-monitor`.
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(MonitorCommand {
            program: std::env::current_exe()?,
            args: vec!["container-monitor".into()],
        })
    }
}

/// What to start.
#[derive(Clone, Debug)]
pub struct StartRequest {
    pub id: String,
    /// A bundle with config.json (and its rootfs).
    pub bundle: PathBuf,
    /// The CRI log file (appended to).
    pub log_path: PathBuf,
    /// Give it a stdin FIFO (see [`MonitorConfig::stdin`]).
    pub stdin: bool,
}

/// Where a container is in its life, from its files and the runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerStatus {
    Running(Started),
    Exited(Exited),
    /// The monitor is gone without writing an exit (killed, or the machine rebooted): the
    /// exit code is lost; `running` says whether the runtime still has the process.
    Unknown {
        running: bool,
        reason: String,
    },
}

/// Starts containers under monitors and finds them again.
#[derive(Clone, Debug)]
pub struct Containers {
    pub runtime: Runtime,
    /// `<state dir>/<id>/` per container.
    pub state_dir: PathBuf,
    pub monitor: MonitorCommand,
    /// The longest a start may take before it is reported as failed.
    pub start_timeout: Duration,
}

impl Containers {
    pub fn new(runtime: Runtime, state_dir: impl Into<PathBuf>, monitor: MonitorCommand) -> Self {
        Containers {
            runtime,
            state_dir: state_dir.into(),
            monitor,
            start_timeout: Duration::from_secs(60),
        }
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.state_dir.join(id)
    }

    /// Starts `req` under a new monitor; returns once the container runs, or with the
    /// runtime's message when it does not.
    pub fn start(&self, req: &StartRequest) -> Result<ContainerHandle, MonitorError> {
        if req.id.is_empty() || req.id.contains('/') || req.id.starts_with('.') {
            return Err(MonitorError::Monitor {
                id: req.id.clone(),
                message: "bad container id".into(),
            });
        }
        let abs = |p: &Path| std::path::absolute(p).map_err(io_err("resolving", p));
        let dir = abs(&self.dir(&req.id))?;
        if let Some(s) = read_json::<Started>(&dir.join("started.json")) {
            if alive(&s) {
                return Err(MonitorError::Monitor {
                    id: req.id.clone(),
                    message: "already running".into(),
                });
            }
        }
        fs::create_dir_all(&dir).map_err(io_err("creating", &dir))?;
        for stale in ["exit.json", "started.json", "pid"] {
            let _ = fs::remove_file(dir.join(stale));
        }
        let mut runtime = self.runtime.clone();
        runtime.root = abs(&runtime.root)?;
        if runtime.binary.components().count() > 1 {
            runtime.binary = abs(&runtime.binary)?; // a bare name is looked up in PATH
        }
        let cfg = MonitorConfig {
            id: req.id.clone(),
            bundle: abs(&req.bundle)?,
            runtime,
            dir: dir.clone(),
            log_path: abs(&req.log_path)?,
            max_line: MAX_LOG_LINE,
            stdin: req.stdin,
        };
        let cfg_path = dir.join("monitor.json");
        let bytes = serde_json::to_vec_pretty(&cfg).map_err(|e| MonitorError::Monitor {
            id: req.id.clone(),
            message: e.to_string(),
        })?;
        write_atomically(&cfg_path, &bytes, false).map_err(io_err("writing", &cfg_path))?;
        let mlog_path = dir.join("monitor.log");
        let mlog = open_log(&mlog_path).map_err(io_err("opening", &mlog_path))?;
        let mut child = Command::new(&self.monitor.program)
            .args(&self.monitor.args)
            .arg(&cfg_path)
            .env_remove(STAGE_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(mlog))
            .spawn()
            .map_err(io_err("starting the monitor", &self.monitor.program))?;
        let stdout = child.stdout.take();
        let (tx, rx) = std::sync::mpsc::channel();
        // The report is read on a thread so the wait for it is bounded.
        std::thread::spawn(move || {
            let mut found = None;
            if let Some(out) = stdout {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if let Some(r) = line.strip_prefix(REPORT_PREFIX) {
                        found = Some(r.to_string());
                        break;
                    }
                }
            }
            let _ = tx.send(found);
        });
        let got = rx.recv_timeout(self.start_timeout);
        let _ = child.wait(); // stage 1 exits right after spawning stage 2
        let handle = self.open_dir(&req.id)?;
        let result = match got {
            Ok(Some(r)) if r.starts_with("ok ") => return Ok(handle),
            Ok(Some(r)) => match r.strip_prefix("runtime-error ") {
                Some(m) => Err(MonitorError::Runtime(m.to_string())),
                None => Err(MonitorError::Monitor {
                    id: req.id.clone(),
                    message: r.strip_prefix("error ").unwrap_or(&r).to_string(),
                }),
            },
            Ok(None) => Err(MonitorError::Monitor {
                id: req.id.clone(),
                message: format!(
                    "exited without reporting: {}",
                    tail(&fs::read_to_string(&mlog_path).unwrap_or_default())
                ),
            }),
            Err(_) => {
                let _ = self.runtime.kill(&req.id, 9, true);
                Err(MonitorError::Monitor {
                    id: req.id.clone(),
                    message: format!("no report within {:?}", self.start_timeout),
                })
            }
        };
        // A start that failed leaves nothing behind: no container, no state directory.
        let _ = handle.remove();
        result
    }

    fn open_dir(&self, id: &str) -> Result<ContainerHandle, MonitorError> {
        Ok(ContainerHandle {
            id: id.to_string(),
            dir: self.dir(id),
            runtime: self.runtime.clone(),
        })
    }

    /// The container `id` as left by an earlier caller (after a restart).
    pub fn open(&self, id: &str) -> Result<ContainerHandle, MonitorError> {
        let dir = self.dir(id);
        if !dir.join("monitor.json").exists() {
            return Err(MonitorError::NotFound(id.to_string()));
        }
        self.open_dir(id)
    }

    /// The ids of every container with a state directory.
    pub fn list(&self) -> Result<Vec<String>, MonitorError> {
        let mut ids = Vec::new();
        let entries = match fs::read_dir(&self.state_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(io_err("listing", &self.state_dir)(e)),
        };
        for e in entries.flatten() {
            if e.path().join("monitor.json").exists() {
                ids.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// One container's files and runtime state. Cheap; holds no process.
#[derive(Clone, Debug)]
pub struct ContainerHandle {
    pub id: String,
    pub dir: PathBuf,
    runtime: Runtime,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let bytes = fs::read(path).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The fields of /proc/PID/stat after the command name (field 3 onwards).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
fn start_ticks(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether the monitor described by `s` is still running: the pid exists, is not a zombie,
/// and started when the monitor did (not a reused pid).
fn alive(s: &Started) -> bool {
    if Pid::from_raw(s.monitor_pid).is_none() {
        return false;
    }
    let Some(fields) = stat_fields(s.monitor_pid) else {
        return false;
    };
    let zombie = fields.first().is_some_and(|st| st == "Z" || st == "X");
    let same = s.monitor_start_ticks == 0
        || fields.get(19).and_then(|t| t.parse::<u64>().ok()) == Some(s.monitor_start_ticks);
    !zombie && same
}

impl ContainerHandle {
    pub fn started(&self) -> Option<Started> {
        read_json(&self.dir.join("started.json"))
    }

    pub fn exited(&self) -> Option<Exited> {
        read_json(&self.dir.join("exit.json"))
    }

    /// The container's status from its files, the monitor's liveness and the runtime.
    pub fn status(&self) -> ContainerStatus {
        if let Some(e) = self.exited() {
            return ContainerStatus::Exited(e);
        }
        let Some(s) = self.started() else {
            return ContainerStatus::Unknown {
                running: false,
                reason: "never started".into(),
            };
        };
        if alive(&s) {
            return ContainerStatus::Running(s);
        }
        // The monitor may have written exit.json between the two reads.
        if let Some(e) = self.exited() {
            return ContainerStatus::Exited(e);
        }
        let running = self
            .runtime
            .state(&self.id)
            .map(|st| st.status == "running")
            .unwrap_or(false);
        ContainerStatus::Unknown {
            running,
            reason: "the monitor is gone".into(),
        }
    }

    /// Waits up to `timeout` for the exit; `None` if it is still running then, or at once
    /// when there is no monitor left to record one (see [`ContainerStatus::Unknown`]).
    pub fn wait(&self, timeout: Duration) -> Option<Exited> {
        let deadline = Instant::now() + timeout;
        let mut polls = 0u32;
        loop {
            if let Some(e) = self.exited() {
                return Some(e);
            }
            if Instant::now() >= deadline {
                return None;
            }
            polls += 1;
            if polls.is_multiple_of(10) && !self.started().is_some_and(|s| alive(&s)) {
                return self.exited();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` to the container's init (through the runtime).
    pub fn kill(&self, signal: i32) -> Result<(), MonitorError> {
        Ok(self.runtime.kill(&self.id, signal, false)?)
    }

    /// SIGTERM, up to `grace` for the exit, then SIGKILL to every process of the container
    /// and up to 10 s more. Returns the exit (None if even that did not come).
    pub fn stop(&self, grace: Duration) -> Result<Option<Exited>, MonitorError> {
        if let Some(e) = self.exited() {
            return Ok(Some(e));
        }
        match self.runtime.kill(&self.id, Signal::TERM.as_raw(), false) {
            Ok(()) => {}
            Err(_) if self.exited().is_some() => return Ok(self.exited()),
            Err(e) => return Err(e.into()),
        }
        if let Some(e) = self.wait(grace) {
            return Ok(Some(e));
        }
        let _ = self.runtime.kill(&self.id, Signal::KILL.as_raw(), true);
        Ok(self.wait(Duration::from_secs(10)))
    }

    /// The container's stdin FIFO, if it was started with one.
    pub fn stdin_path(&self) -> Option<PathBuf> {
        Some(self.dir.join("stdin")).filter(|p| p.exists())
    }

    /// Removes the container from the runtime (forcefully) and its state directory. The
    /// log file stays (the kubelet removes logs with the pod).
    pub fn remove(&self) -> Result<(), MonitorError> {
        self.runtime.delete(&self.id, true)?;
        match fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("removing", &self.dir)(e)),
        }
    }

    /// The monitor's pid, if it is still alive.
    pub fn monitor_pid(&self) -> Option<i32> {
        self.started().filter(alive).map(|s| s.monitor_pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(out: &[u8]) -> Vec<(String, String, String)> {
        String::from_utf8_lossy(out)
            .lines()
            .map(|l| {
                let mut it = l.splitn(4, ' ');
                let _ts = it.next();
                (
                    it.next().unwrap_or_default().to_string(),
                    it.next().unwrap_or_default().to_string(),
                    it.next().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    fn stream() -> Stream {
        Stream {
            name: "stdout",
            fd: None,
            partial: Vec::new(),
        }
    }

    #[test]
    fn lines_are_split_at_the_max_size_and_joined_across_reads() {
        let mut s = stream();
        let mut out = Vec::new();
        s.push(b"hel", 4, &mut out);
        s.push(b"lo\nab", 4, &mut out);
        s.push(b"cdefghij\n\n", 4, &mut out);
        s.push(b"tail", 4, &mut out);
        s.finish(&mut out);
        let got = lines(&out);
        let want: Vec<(String, String, String)> = [
            ("P", "hell"),
            ("F", "o"),
            ("P", "abcd"),
            ("P", "efgh"),
            ("F", "ij"),
            ("F", ""),
            ("P", "tail"),
        ]
        .iter()
        .map(|(t, c)| ("stdout".to_string(), t.to_string(), c.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn timestamps_are_rfc3339_nano() {
        let mut s = stream();
        let mut out = Vec::new();
        s.push(b"x\n", 16, &mut out);
        let text = String::from_utf8_lossy(&out);
        let ts = text.split(' ').next().unwrap_or_default();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert_eq!(ts.len(), "2026-01-01T00:00:00.000000000Z".len());
    }

    #[test]
    fn oom_counter_v1_then_v2() {
        let root = tempfile::tempdir().expect("tempdir");
        let v2 = root.path().join("skiff/pod/c");
        fs::create_dir_all(&v2).expect("mkdir");
        fs::write(
            v2.join("memory.events"),
            "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
        )
        .expect("write");
        assert_eq!(oom_kills(root.path(), "/skiff/pod/c"), Some(1));
        let v1 = root.path().join("memory/skiff/pod/c");
        fs::create_dir_all(&v1).expect("mkdir");
        fs::write(
            v1.join("memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        )
        .expect("write");
        assert_eq!(oom_kills(root.path(), "/skiff/pod/c"), Some(0));
        assert_eq!(oom_kills(root.path(), "/nope"), None);
    }
}
