//! The pod's PID namespace holder, for `shareProcessNamespace: true`: the part of
//! upstream's pause container that a bind mount cannot play. A PID namespace dies with its
//! init (a pinned one can still be `setns`ed into, but nothing can be forked there), so it
//! needs a live PID 1; this is that process.
//!
//! It is the skiff binary re-executed as the hidden `skiff sandbox-pause` (dispatched in
//! `main.rs` before the logger and the async runtime), in two stages:
//!
//! 1. Stage 1, started by [`start`] with the sandbox's namespace files in its environment,
//!    `setns`es into the sandbox's net, IPC and UTS namespaces, `unshare`s a new PID
//!    namespace, spawns stage 2 (which is PID 1 there, with `argv[0]` `/pause` so that `ps`
//!    in a container shows it as upstream's pause), bind-mounts `/proc/<pid>/ns/pid` onto
//!    the sandbox's `ns/pid` and prints the pid, then exits: stage 2 is nobody's child
//!    (init or the nearest subreaper reaps it), so it outlives the kubelet.
//! 2. Stage 2, [`run`] again, calls `setsid`, reaps every orphan of the namespace on
//!    SIGCHLD and exits 0 on SIGTERM or SIGINT, as upstream's `pause.c`. Signals wake it
//!    through a self-pipe (handlers installed, so they are not ignored as signals to a
//!    namespace's init without handlers are); its loop allocates nothing.
//!
//! [`stop`] kills it with everything in its namespace (the kernel kills a namespace's
//! processes when its init dies), finding it from the record or, for a half-made sandbox,
//! from the pinned namespace file.
//!
//! Not here: joining the pod's cgroup (the sandbox does not know it; containerd puts the
//! pause container there).

use std::ffi::OsString;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

/// The hidden subcommand of the skiff binary.
pub const SUBCOMMAND: &str = "sandbox-pause";
/// What `ps` shows for the holder (`argv[0]`).
pub const ARGV0: &str = "/pause";

const STAGE_ENV: &str = "SKIFF_PAUSE_STAGE";
const NET_ENV: &str = "SKIFF_PAUSE_NET";
const IPC_ENV: &str = "SKIFF_PAUSE_IPC";
const UTS_ENV: &str = "SKIFF_PAUSE_UTS";
const PIN_ENV: &str = "SKIFF_PAUSE_PIN";

/// How to start the holder: a program and its arguments (`<skiff> sandbox-pause`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PauseCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

impl PauseCommand {
    /// This binary's hidden subcommand: `<current exe> sandbox-pause`.
    pub fn current_exe() -> std::io::Result<Self> {
        Ok(Self::skiff(std::env::current_exe()?))
    }

    /// `<skiff> sandbox-pause`.
    pub fn skiff(program: impl Into<PathBuf>) -> Self {
        PauseCommand {
            program: program.into(),
            args: vec![SUBCOMMAND.into()],
        }
    }
}

/// The holder as recorded in `sandbox.json`: its pid (in the node's PID namespace) and
/// when it started (field 22 of `/proc/<pid>/stat`), so that a reused pid is not taken
/// for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseProcess {
    pub pid: i32,
    pub start_ticks: u64,
}

/// Whether this process was started as a holder stage (for test binaries that re-execute
/// themselves; the skiff binary dispatches on [`SUBCOMMAND`]).
pub fn invoked() -> bool {
    std::env::var_os(STAGE_ENV).is_some() || std::env::var_os(PIN_ENV).is_some()
}

/// The entry point of `skiff sandbox-pause` (either stage). Returns the exit code.
pub fn run() -> i32 {
    if std::env::var_os(STAGE_ENV).is_some_and(|s| s == "2") {
        return hold();
    }
    match stage1() {
        Ok(pid) => {
            println!("{pid}");
            0
        }
        Err(e) => {
            eprintln!("skiff {SUBCOMMAND}: {e}");
            1
        }
    }
}

fn stage1() -> Result<u32, String> {
    let pin = std::env::var_os(PIN_ENV)
        .map(PathBuf::from)
        .ok_or_else(|| format!("{PIN_ENV} is not set"))?;
    for (var, flag) in [
        (NET_ENV, CloneFlags::CLONE_NEWNET),
        (IPC_ENV, CloneFlags::CLONE_NEWIPC),
        (UTS_ENV, CloneFlags::CLONE_NEWUTS),
    ] {
        if let Some(path) = std::env::var_os(var) {
            let f = std::fs::File::open(&path)
                .map_err(|e| format!("{}: {e}", Path::new(&path).display()))?;
            nix::sched::setns(&f, flag)
                .map_err(|e| format!("setns {}: {e}", Path::new(&path).display()))?;
        }
    }
    // Our children (only the next one) are born in a new PID namespace, as its PID 1.
    nix::sched::unshare(CloneFlags::CLONE_NEWPID).map_err(|e| format!("unshare: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("finding the binary: {e}"))?;
    let mut child = Command::new(exe)
        .arg0(ARGV0)
        .args(std::env::args_os().skip(1))
        .env(STAGE_ENV, "2")
        .env_remove(NET_ENV)
        .env_remove(IPC_ENV)
        .env_remove(UTS_ENV)
        .env_remove(PIN_ENV)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the holder: {e}"))?;
    let pid = child.id();
    let src = format!("/proc/{pid}/ns/pid");
    if let Err(e) = nix::mount::mount(
        Some(src.as_str()),
        &pin,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    ) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(format!("bind mount {src} on {}: {e}", pin.display()));
    }
    Ok(pid)
}

/// PID 1 of the pod's PID namespace.
fn hold() -> i32 {
    // Own session: signals to the kubelet's process group or terminal never reach us.
    let _ = rustix::process::setsid();
    let Ok((mut wake_r, wake_w)) = UnixStream::pair() else {
        return 1;
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if signal_hook::flag::register(sig, Arc::clone(&stop)).is_err() {
            return 1;
        }
    }
    for sig in [
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGCHLD,
    ] {
        let Ok(w) = wake_w.try_clone() else {
            return 1;
        };
        if signal_hook::low_level::pipe::register(sig, w).is_err() {
            return 1;
        }
    }
    drop(wake_w);
    let mut buf = [0u8; 64];
    loop {
        reap_all();
        if stop.load(Ordering::SeqCst) {
            return 0;
        }
        match wake_r.read(&mut buf) {
            Ok(0) => return 1,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return 1,
        }
    }
}

fn reap_all() {
    while let Ok(Some(_)) = rustix::process::wait(rustix::process::WaitOptions::NOHANG) {}
}

/// Starts the holder in the given namespaces and pins its PID namespace on `pin` (an
/// existing empty file). Blocks for the few milliseconds stage 1 takes.
pub fn start(
    cmd: &PauseCommand,
    net: Option<&Path>,
    ipc: Option<&Path>,
    uts: Option<&Path>,
    pin: &Path,
) -> Result<PauseProcess, String> {
    let mut c = Command::new(&cmd.program);
    c.args(&cmd.args)
        .env(PIN_ENV, pin)
        .env_remove(STAGE_ENV)
        .current_dir("/")
        .stdin(Stdio::null());
    for (var, path) in [(NET_ENV, net), (IPC_ENV, ipc), (UTS_ENV, uts)] {
        match path {
            Some(p) => c.env(var, p),
            None => c.env_remove(var),
        };
    }
    let out = c
        .output()
        .map_err(|e| format!("running {}: {e}", cmd.program.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pid = stdout
        .lines()
        .filter_map(|l| l.trim().parse::<i32>().ok())
        .next_back();
    match (out.status.success(), pid) {
        (true, Some(pid)) => {
            let start_ticks =
                start_ticks(pid).ok_or_else(|| format!("the holder (pid {pid}) exited at once"))?;
            Ok(PauseProcess { pid, start_ticks })
        }
        _ => Err(format!(
            "starting the PID namespace holder ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// The fields of /proc/PID/stat after the command name (field 3 onwards).
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn start_ticks(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Whether a `stat` field list is that of a process still running (not a zombie).
fn running(fields: &[String]) -> bool {
    !fields.first().is_some_and(|st| st == "Z" || st == "X")
}

/// Whether the recorded holder is still running (the same process, not a zombie).
pub fn alive(p: &PauseProcess) -> bool {
    p.pid > 0
        && stat_fields(p.pid).is_some_and(|f| {
            running(&f) && f.get(19).and_then(|t| t.parse::<u64>().ok()) == Some(p.start_ticks)
        })
}

/// The running processes whose PID namespace is the one pinned at `pin`.
fn members(ns: (u64, u64)) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::metadata(format!("/proc/{pid}/ns/pid")).is_ok_and(|m| (m.dev(), m.ino()) == ns)
        })
        .filter(|pid| stat_fields(*pid).is_some_and(|f| running(&f)))
        .collect()
}

/// Kills the holder and every process left in its namespace (SIGKILL: the kernel kills
/// the rest when the init dies), and waits until none runs. `pin` is the namespace's
/// pinned file (used to find them when the holder was never recorded); it is left for the
/// caller to unpin.
pub fn stop(recorded: Option<&PauseProcess>, pin: &Path) -> Result<(), String> {
    let ns = super::is_pinned(pin)
        .then(|| std::fs::metadata(pin).ok())
        .flatten()
        .map(|m| (m.dev(), m.ino()));
    let kill = |pid: i32| {
        if let Some(p) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let holder = recorded.filter(|p| alive(p)).map(|p| p.pid);
        let left: Vec<i32> = holder
            .into_iter()
            .chain(ns.map(members).unwrap_or_default())
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "processes {left:?} of the pod's PID namespace outlived SIGKILL"
            ));
        }
        for pid in left {
            kill(pid);
        }
        // Reaps the holder if it is our child (it is not when stage 1 ran as designed).
        if let Some(p) = holder.and_then(rustix::process::Pid::from_raw) {
            let _ = rustix::process::waitpid(Some(p), rustix::process::WaitOptions::NOHANG);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
