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
//! With a terminal (`tty: true`, as conmon) the runtime runs with `--console-socket` (a
//! socket in a fresh temp dir: state paths can be too long for a socket address) and sends
//! the pty master over it (SCM_RIGHTS); the monitor holds it for the container's life, sets
//! `onlcr` as conmon does, logs what it reads as `stdout` records (unfinished lines at once
//! as `P` records, so that attach shows a prompt), copies the stdin FIFO into it and
//! applies `1 <height> <width>` lines from the control FIFO `<dir>/ctl` with TIOCSWINSZ.
//! With stdinOnce the monitor reads the stdin FIFO read-only and, when the first session's
//! writer leaves, removes it and closes the container's stdin (a pipe's EOF; a terminal
//! stays open, as conmon and containerd leave it). Stdin without either is the FIFO itself,
//! held read-write by the container.
//!
//! The library side ([`Containers`], [`ContainerHandle`]) starts monitors, reads their files
//! and finds running containers again after the caller restarts: everything is in the
//! container's directory `<state dir>/<id>/`, nothing in the caller's memory.
//!
//! Not done here: removing the container (the caller's `remove`, as CRI's RemoveContainer),
//! log rotation itself.

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
    /// Without a terminal the container's stdin is then a pipe the monitor copies the FIFO
    /// into and closes when the first attach session's input ends (`stdinOnce: true`).
    #[serde(default)]
    pub stdin_once: bool,
    /// The container has a terminal (config.json `process.terminal`): the runtime sends
    /// its pty master over a console socket, the monitor holds it for the container's
    /// life, logs it as stdout, copies the stdin FIFO into it and applies the resizes
    /// written to the control FIFO `<dir>/ctl`.
    #[serde(default)]
    pub terminal: bool,
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
    let mut stdin = StdinSetup::new(&cfg)?;
    let console = if cfg.terminal {
        Some(ConsoleSocket::new()?)
    } else {
        None
    };
    let mut run_args: Vec<OsString> = vec!["run".into(), "--detach".into()];
    if let Some(c) = &console {
        run_args.push("--console-socket".into());
        run_args.push(c.path.clone().into());
    }
    run_args.extend([
        "--bundle".into(),
        cfg.bundle.clone().into(),
        "--pid-file".into(),
        pid_file.clone().into(),
        cfg.id.clone().into(),
    ]);
    let mut child = {
        // The command owns the pipes' write ends; dropping it closes our copies, so EOF on
        // the read ends means the container (and everything that inherited them) is done.
        let mut cmd = cfg.runtime.command(Some(&runtime_log), &run_args);
        cmd.env_remove(STAGE_ENV)
            .stdin(std::mem::replace(&mut stdin.runtime_stdin, Stdio::null()))
            .stdout(Stdio::from(out_w))
            .stderr(Stdio::from(err_w));
        cmd.spawn()
            .map_err(|e| format!("cannot run {}: {e}", cfg.runtime.binary.display()))?
    };
    // With a terminal the runtime sends the pty master over the console socket before it
    // exits (conmon's terminal_accept_cb); accepted while it runs.
    let mut master: Option<OwnedFd> = None;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) => {}
            Err(e) => return Err(format!("waiting for {}: {e}", cfg.runtime.name())),
        }
        match (&console, &master) {
            (Some(c), None) => master = c.receive(Duration::from_millis(50))?,
            _ => {
                break child
                    .wait()
                    .map_err(|e| format!("waiting for {}: {e}", cfg.runtime.name()))?
            }
        }
    };
    if let (Some(c), None, true) = (&console, &master, status.success()) {
        master = c.receive(Duration::ZERO)?;
    }
    drop(console);
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
    if cfg.terminal && master.is_none() {
        let _ = cfg.runtime.delete(&cfg.id, true);
        return Err(format!(
            "{} sent no terminal on the console socket",
            cfg.runtime.name()
        ));
    }
    if let Some(m) = &master {
        setup_master(m)?;
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

    let dup =
        |fd: &OwnedFd| rustix::io::fcntl_dupfd_cloexec(fd, 3).map_err(|e| format!("dup: {e}"));
    // With a terminal everything the container writes is one stream, logged as stdout
    // (upstream's rule), and unfinished lines are logged as `P` records at once: attach
    // follows the log, and a shell's prompt has no newline.
    let mut streams = match &master {
        Some(m) => {
            drop((out_r, err_r));
            let mut s = Stream::new("stdout", dup(m)?);
            s.flush_partial = true;
            vec![s]
        }
        None => vec![Stream::new("stdout", out_r), Stream::new("stderr", err_r)],
    };
    let mut input = stdin.into_input(master.as_ref().map(dup).transpose()?);
    let mut ctl = match &master {
        Some(_) => Some(Control::new(&cfg.dir.join("ctl"))?),
        None => None,
    };
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
        let mut slots = vec![Slot::Signal];
        for (i, s) in streams.iter().enumerate() {
            if let Some(fd) = &s.fd {
                fds.push(PollFd::new(fd, PollFlags::IN));
                slots.push(Slot::Stream(i));
            }
        }
        if let Some(inp) = &input {
            match (&inp.fifo, &inp.to) {
                (Some(f), _) if inp.pending.is_empty() => {
                    fds.push(PollFd::new(f, PollFlags::IN));
                    slots.push(Slot::Input);
                }
                (_, Some(t)) if !inp.pending.is_empty() => {
                    fds.push(PollFd::new(t, PollFlags::OUT));
                    slots.push(Slot::InputOut);
                }
                _ => {}
            }
        }
        if let Some(c) = &ctl {
            fds.push(PollFd::new(&c.fd, PollFlags::IN));
            slots.push(Slot::Control);
        }
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let ready: Vec<Slot> = fds
            .iter()
            .zip(&slots)
            .filter(|(f, _)| !f.revents().is_empty())
            .map(|(_, s)| *s)
            .collect();
        drop(fds);
        let mut out = Vec::new();
        for slot in ready {
            match slot {
                Slot::Signal => {
                    let mut reopen = false;
                    while let Ok(n) = rustix::io::read(&sig_r, &mut sig_buf) {
                        if n == 0 {
                            break;
                        }
                        // Which signal is not in the byte; reopening is cheap, so any
                        // wake-up that is not ours to reap reopens only when the log file
                        // was moved away.
                        reopen = true;
                    }
                    if reopen && !cfg.log_path.exists() {
                        if let Ok(f) = open_log(&cfg.log_path) {
                            log = f;
                        }
                    }
                }
                Slot::Stream(i) => {
                    let s = &mut streams[i];
                    let Some(fd) = &s.fd else { continue };
                    match rustix::io::read(fd, &mut buf) {
                        Ok(0) => {
                            s.finish(&mut out);
                            s.fd = None;
                        }
                        Ok(n) => s.push(&buf[..n], cfg.max_line, &mut out),
                        Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                        // EIO from a pty master: every slave is closed.
                        Err(_) => {
                            s.finish(&mut out);
                            s.fd = None;
                        }
                    }
                }
                Slot::Input | Slot::InputOut => {
                    if let Some(inp) = &mut input {
                        inp.step(slot == Slot::Input, &mut buf);
                    }
                }
                Slot::Control => {
                    if let (Some(c), Some(m)) = (&mut ctl, &master) {
                        c.step(m, &mut buf);
                    }
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

/// What the monitor polls, besides the signal pipe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Slot {
    Signal,
    Stream(usize),
    /// The stdin FIFO has input (or its last writer left).
    Input,
    /// The container can take the input read but not yet written.
    InputOut,
    /// The control FIFO (resizes).
    Control,
}

fn make_fifo(path: &Path) -> Result<(), String> {
    let _ = fs::remove_file(path);
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .map_err(|e| format!("mkfifo {}: {e}", path.display()))
}

fn open_fifo(path: &Path, flags: rustix::fs::OFlags) -> Result<OwnedFd, String> {
    use rustix::fs::OFlags;
    rustix::fs::open(
        path,
        flags | OFlags::NONBLOCK | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}

/// The container's stdin as the runtime gets it, and what the monitor keeps of it.
struct StdinSetup {
    runtime_stdin: Stdio,
    /// The FIFO the monitor reads and copies into the container (terminal or stdinOnce).
    fifo: Option<OwnedFd>,
    /// The write end of the container's stdin pipe (stdinOnce without a terminal).
    pipe: Option<OwnedFd>,
    once: bool,
    fifo_path: PathBuf,
}

impl StdinSetup {
    fn new(cfg: &MonitorConfig) -> Result<StdinSetup, String> {
        use rustix::fs::OFlags;
        let fifo_path = cfg.dir.join("stdin");
        let mut s = StdinSetup {
            runtime_stdin: Stdio::null(),
            fifo: None,
            pipe: None,
            once: cfg.stdin_once,
            fifo_path,
        };
        if !cfg.stdin {
            return Ok(s);
        }
        make_fifo(&s.fifo_path)?;
        if !cfg.terminal && !cfg.stdin_once {
            // The container holds the FIFO read-write: it never sees EOF, attach writers
            // come and go (stdin: true without stdinOnce).
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&s.fifo_path)
                .map_err(|e| format!("{}: {e}", s.fifo_path.display()))?;
            s.runtime_stdin = Stdio::from(f);
            return Ok(s);
        }
        // Read-only for stdinOnce: the last writer leaving shows as a hang-up (Linux
        // reports it only after a writer came, so not before the first attach).
        // Read-write otherwise: no hang-up ever, stdin stays open across attaches.
        let mode = if cfg.stdin_once {
            OFlags::RDONLY
        } else {
            OFlags::RDWR
        };
        s.fifo = Some(open_fifo(&s.fifo_path, mode)?);
        if !cfg.terminal {
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| format!("pipe: {e}"))?;
            rustix::fs::fcntl_setfl(&w, OFlags::NONBLOCK).map_err(|e| format!("fcntl: {e}"))?;
            s.runtime_stdin = Stdio::from(r);
            s.pipe = Some(w);
        }
        Ok(s)
    }

    /// The copier from the FIFO into the container: into `master` with a terminal, else
    /// into the stdin pipe. `None` when the container reads the FIFO itself (or has none).
    fn into_input(self, master: Option<OwnedFd>) -> Option<Input> {
        let fifo = self.fifo?;
        Some(Input {
            fifo: Some(fifo),
            to: self.pipe.or(master),
            pending: Vec::new(),
            close_after: false,
            once: self.once,
            fifo_path: self.fifo_path,
        })
    }
}

/// Copies attach input from the stdin FIFO into the container (conmon's stdin handling).
struct Input {
    /// `None` once stdin was closed (stdinOnce after the first session).
    fifo: Option<OwnedFd>,
    /// The pty master or the container's stdin pipe; `None` once closed or broken.
    to: Option<OwnedFd>,
    /// Read but not yet taken by the container.
    pending: Vec<u8>,
    /// Close `to` once `pending` is written (the pipe's EOF).
    close_after: bool,
    once: bool,
    fifo_path: PathBuf,
}

impl Input {
    fn step(&mut self, readable: bool, buf: &mut [u8]) {
        if readable {
            if let Some(f) = &self.fifo {
                match rustix::io::read(f, &mut *buf) {
                    Ok(0) => self.session_ended(),
                    Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                    Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => {}
                    Err(_) => self.session_ended(),
                }
            }
        }
        self.flush();
    }

    /// The last writer left a read-only FIFO: with stdinOnce, stdin is closed for good.
    /// Without a terminal the container reads EOF; with one, as conmon (which closes its
    /// stdin fd, the master staying open for output) and containerd (which closes stdin
    /// only without a tty), the terminal stays open and further input is refused.
    fn session_ended(&mut self) {
        if !self.once {
            return;
        }
        self.fifo = None;
        let _ = fs::remove_file(&self.fifo_path);
        self.close_after = true;
    }

    fn flush(&mut self) {
        while !self.pending.is_empty() {
            let Some(to) = &self.to else {
                self.pending.clear();
                break;
            };
            match rustix::io::write(to, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(rustix::io::Errno::AGAIN) => return,
                // The container closed its stdin or is gone: input is dropped.
                Err(_) => {
                    self.to = None;
                    self.pending.clear();
                }
            }
        }
        if self.close_after {
            self.to = None;
        }
    }
}

/// The control FIFO `<dir>/ctl`: lines `1 <height> <width>` resize the terminal (conmon's
/// ctl FIFO format). Held read-write, so writers come and go.
struct Control {
    fd: OwnedFd,
    line: Vec<u8>,
}

impl Control {
    fn new(path: &Path) -> Result<Control, String> {
        make_fifo(path)?;
        Ok(Control {
            fd: open_fifo(path, rustix::fs::OFlags::RDWR)?,
            line: Vec::new(),
        })
    }

    fn step(&mut self, master: &OwnedFd, buf: &mut [u8]) {
        let n = match rustix::io::read(&self.fd, &mut *buf) {
            Ok(n) => n,
            Err(_) => return,
        };
        self.line.extend_from_slice(&buf[..n]);
        while let Some(i) = self.line.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.line.drain(..=i).collect();
            if let Some(ws) = parse_control(&line) {
                let _ = rustix::termios::tcsetwinsize(master, ws);
            }
        }
        if self.line.len() > 4096 {
            self.line.clear(); // not ours: no line that long is
        }
    }
}

/// A control line: `1 <height> <width>` is a resize; anything else is ignored.
fn parse_control(line: &[u8]) -> Option<rustix::termios::Winsize> {
    let text = std::str::from_utf8(line).ok()?;
    let mut it = text.split_whitespace();
    if it.next()? != "1" {
        return None;
    }
    let ws_row: u16 = it.next()?.parse().ok()?;
    let ws_col: u16 = it.next()?.parse().ok()?;
    Some(rustix::termios::Winsize {
        ws_row,
        ws_col,
        ws_xpixel: 0,
        ws_ypixel: 0,
    })
}

/// The listening socket the runtime sends the pty master to (`--console-socket`), in a
/// directory of its own under the temp dir: the state dir's paths can be longer than a
/// socket address takes (108 bytes), as conmon's `/tmp/conmon-term.XXXXXX`.
struct ConsoleSocket {
    dir: PathBuf,
    path: PathBuf,
    fd: OwnedFd,
}

impl ConsoleSocket {
    fn new() -> Result<ConsoleSocket, String> {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "skiff-console-{}-{nanos}",
            rustix::process::getpid().as_raw_nonzero()
        ));
        rustix::fs::mkdir(&dir, rustix::fs::Mode::from_raw_mode(0o700))
            .map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let path = dir.join("sock");
        let made = (|| {
            let fd = rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::STREAM,
                SocketFlags::CLOEXEC,
                None,
            )?;
            rustix::net::bind(&fd, &SocketAddrUnix::new(&path)?)?;
            rustix::net::listen(&fd, 1)?;
            Ok::<_, rustix::io::Errno>(fd)
        })();
        match made {
            Ok(fd) => Ok(ConsoleSocket { dir, path, fd }),
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                Err(format!("console socket {}: {e}", path.display()))
            }
        }
    }

    /// Waits up to `timeout` for the runtime's connection; returns the fd it sent.
    fn receive(&self, timeout: Duration) -> Result<Option<OwnedFd>, String> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketFlags};
        let ts = rustix::fs::Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => return Ok(None),
            Ok(_) => {}
            Err(e) => return Err(format!("poll: {e}")),
        }
        let conn = rustix::net::accept_with(&self.fd, SocketFlags::CLOEXEC)
            .map_err(|e| format!("accepting on the console socket: {e}"))?;
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        // The message is the pty's name; only the fd matters.
        let mut name = [0u8; 4096];
        let msg = rustix::net::recvmsg(
            &conn,
            &mut [std::io::IoSliceMut::new(&mut name)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        )
        .map_err(|e| format!("receiving the terminal: {e}"))?;
        let mut got = None;
        for msg in control.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
                if got.is_none() {
                    got = fds.next();
                }
            }
        }
        match got {
            Some(fd) => Ok(Some(fd)),
            // A connection closed without a message: wait for the next one.
            None if msg.bytes == 0 => Ok(None),
            None => Err("the console socket message carried no fd".to_string()),
        }
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The master as the monitor uses it: non-blocking, and `onlcr` on as conmon sets it ("to
/// match kube settings": runc's pty clears it, a terminal's output then ends lines `\r\n`).
fn setup_master(master: &OwnedFd) -> Result<(), String> {
    use rustix::termios::{OptionalActions, OutputModes};
    rustix::fs::fcntl_setfl(master, rustix::fs::OFlags::NONBLOCK)
        .map_err(|e| format!("pty non-blocking: {e}"))?;
    if let Ok(mut t) = rustix::termios::tcgetattr(master) {
        t.output_modes |= OutputModes::OPOST | OutputModes::ONLCR;
        let _ = rustix::termios::tcsetattr(master, OptionalActions::Now, &t);
    }
    Ok(())
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
    /// Log an unfinished line as a `P` record after each read instead of keeping it.
    flush_partial: bool,
    /// The last record written was a `P`: the line is still open.
    open_partial: bool,
}

impl Stream {
    fn new(name: &'static str, fd: OwnedFd) -> Self {
        Stream {
            name,
            fd: Some(fd),
            partial: Vec::new(),
            flush_partial: false,
            open_partial: false,
        }
    }

    fn push(&mut self, data: &[u8], max_line: usize, out: &mut Vec<u8>) {
        let ts = now_rfc3339();
        let mut rest = data;
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&rest[..i]);
            let line = std::mem::take(&mut self.partial);
            write_line(out, &ts, self.name, &line, max_line);
            self.open_partial = false;
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        while self.partial.len() >= max_line.max(1) {
            let tail = self.partial.split_off(max_line.max(1));
            let part = std::mem::replace(&mut self.partial, tail);
            record(out, &ts, self.name, 'P', &part);
            self.open_partial = true;
        }
        if self.flush_partial && !self.partial.is_empty() {
            let part = std::mem::take(&mut self.partial);
            record(out, &ts, self.name, 'P', &part);
            self.open_partial = true;
        }
    }

    /// At EOF an unterminated last line is written as a full line (containerd does too);
    /// one already logged in `P` parts gets an empty `F` record to end it.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.partial.is_empty() || self.open_partial {
            let line = std::mem::take(&mut self.partial);
            record(out, &now_rfc3339(), self.name, 'F', &line);
        }
        self.open_partial = false;
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
#[derive(Clone, Debug, Default)]
pub struct StartRequest {
    pub id: String,
    /// A bundle with config.json (and its rootfs).
    pub bundle: PathBuf,
    /// The CRI log file (appended to).
    pub log_path: PathBuf,
    /// Give it a stdin FIFO (see [`MonitorConfig::stdin`]).
    pub stdin: bool,
    /// See [`MonitorConfig::stdin_once`].
    pub stdin_once: bool,
    /// The bundle asks for a terminal (see [`MonitorConfig::terminal`]).
    pub terminal: bool,
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
            stdin_once: req.stdin_once,
            terminal: req.terminal,
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

    /// The container's stdin FIFO, if it was started with one and it is still open (a
    /// stdinOnce stdin is closed after the first attach session).
    pub fn stdin_path(&self) -> Option<PathBuf> {
        Some(self.dir.join("stdin")).filter(|p| p.exists())
    }

    /// The monitor's control FIFO (a container with a terminal): `1 <height> <width>\n`
    /// resizes the terminal.
    pub fn control_path(&self) -> Option<PathBuf> {
        Some(self.dir.join("ctl")).filter(|p| p.exists())
    }

    /// What the monitor was started with (`monitor.json`).
    pub fn config(&self) -> Option<MonitorConfig> {
        read_json(&self.dir.join("monitor.json"))
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
            flush_partial: false,
            open_partial: false,
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
            // EOF ends the line split exactly at the maximum.
            ("F", ""),
        ]
        .iter()
        .map(|(t, c)| ("stdout".to_string(), t.to_string(), c.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_terminal_stream_logs_unfinished_lines_at_once_and_ends_them_at_eof() {
        let mut s = stream();
        s.flush_partial = true;
        let mut out = Vec::new();
        s.push(b"a\r\n/ # ", 16, &mut out);
        s.push(b"ls\r\n", 16, &mut out);
        s.push(b"bye", 16, &mut out);
        s.finish(&mut out);
        // (`lines` goes through str::lines, which drops the `\r`; the join below keeps it.)
        let got = lines(&out);
        let want: Vec<(String, String, String)> = [
            ("F", "a"),
            ("P", "/ # "),
            ("F", "ls"),
            ("P", "bye"),
            ("F", ""),
        ]
        .iter()
        .map(|(t, c)| ("stdout".to_string(), t.to_string(), c.to_string()))
        .collect();
        assert_eq!(got, want);
        // As kubectl logs reads it: the parts joined into whole lines.
        let joined: Vec<Vec<u8>> = crate::container::logs::lines(&out)
            .into_iter()
            .map(|l| l.content)
            .collect();
        assert_eq!(
            joined,
            vec![b"a\r".to_vec(), b"/ # ls\r".to_vec(), b"bye".to_vec()]
        );
    }

    #[test]
    fn control_lines_are_resizes_height_first() {
        let ws = parse_control(b"1 40 120\n").expect("resize");
        assert_eq!((ws.ws_row, ws.ws_col), (40, 120));
        assert!(parse_control(b"2\n").is_none());
        assert!(parse_control(b"1 x 3\n").is_none());
        assert!(parse_control(b"1 70000 3\n").is_none());
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
