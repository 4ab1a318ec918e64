//! Containers run for real: config.json from `spec`, runc (and crun), the monitor, CRI logs.
//!
//! Needs root, runc, crun and busybox-static (scripts/test.sh installs them). The monitor
//! is this test binary re-executed: `monitor_entry` below runs it when the last argument is
//! a monitor.json (the skiff binary does the same with `skiff container-monitor`).
//! Every test cleans up its containers, monitors, cgroups and temp dirs in a Drop guard.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use skiff_runtime::container::logs;
use skiff_runtime::container::monitor::{
    self, ContainerHandle, ContainerStatus, Containers, MonitorCommand, MonitorError, StartRequest,
};
use skiff_runtime::container::runtime::Runtime;
use skiff_runtime::container::spec::{
    self, ContainerConfig, NamespaceMode, Namespaces, Seccomp, UserIds,
};

/// The monitor, when this binary is re-executed as one.
#[test]
fn monitor_entry() {
    let Some(last) = std::env::args().next_back() else {
        return;
    };
    if last.ends_with("monitor.json") {
        std::process::exit(monitor::run(Path::new(&last)));
    }
    if let Some(cfg) = last.strip_suffix(".caller") {
        // A caller that starts a container and then waits to be killed (see
        // `the_container_outlives_its_killed_caller`).
        let f = Fixture::from_saved(Path::new(cfg)).expect("fixture");
        let c = f.containers("runc");
        let h = c
            .start(&f.request("survivor", &["sleep", "1000"]).expect("bundle"))
            .expect("start");
        println!("started {}", h.id);
        std::thread::sleep(Duration::from_secs(600));
        std::process::exit(0);
    }
}

/// A hybrid host (v1 hierarchies plus a v2 mount) whose v2 mount has controllers.
fn crun_refuses_cgroups() -> bool {
    std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .is_ok_and(|c| !c.trim().is_empty())
}

/// crun 1.8 refuses any container on a hybrid host whose v2 hierarchy holds a controller
/// ("cgroups in hybrid mode not supported, drop all controllers from cgroupv2"); this
/// machine's v2 mount has hugetlb. Mounting a v1 hugetlb hierarchy moves the controller
/// to v1 for as long as it is mounted; the guard unmounts it (and the controller goes back
/// to v2 once the hierarchy is released).
struct HugetlbV1 {
    mountpoint: PathBuf,
    cgroup_parent: String,
    crun: Runtime,
    ids: Vec<String>,
}

impl HugetlbV1 {
    fn mount(f: &Fixture) -> Result<HugetlbV1> {
        let mountpoint = f.dir.join("hugetlb");
        std::fs::create_dir_all(&mountpoint)?;
        let st = Command::new("mount")
            .args(["-t", "cgroup", "-o", "hugetlb", "none"])
            .arg(&mountpoint)
            .status()?;
        if !st.success() {
            bail!("cannot mount a v1 hugetlb hierarchy for crun");
        }
        Ok(HugetlbV1 {
            mountpoint,
            cgroup_parent: f.cgroup_parent.clone(),
            crun: f.runtime("crun"),
            ids: vec!["restricted-crun".into()],
        })
    }
}

impl Drop for HugetlbV1 {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = self.crun.delete(id, true);
        }
        let top = self
            .mountpoint
            .join(self.cgroup_parent.trim_start_matches('/'));
        if let Ok(entries) = std::fs::read_dir(&top) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir(e.path());
            }
        }
        let _ = std::fs::remove_dir(&top);
        let st = Command::new("umount").arg(&self.mountpoint).status();
        if !st.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .status();
        }
    }
}

const APPLETS: &[&str] = &[
    "sh", "echo", "sleep", "cat", "head", "tail", "dd", "tr", "id", "true", "touch", "ls", "grep",
    "mount", "mkdir", "test", "hostname", "ps",
];

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A temp dir with a busybox rootfs, the runtime roots and the containers' state; removes
/// every container, monitor and cgroup it made on drop.
struct Fixture {
    dir: PathBuf,
    cgroup_parent: String,
    ids: std::cell::RefCell<Vec<String>>,
    keep: Option<tempfile::TempDir>,
}

impl Fixture {
    fn new() -> Result<Fixture> {
        let tmp = tempfile::Builder::new()
            .prefix("skiff-containers-")
            .tempdir_in("/var/tmp")?;
        let dir = tmp.path().to_path_buf();
        let rootfs = dir.join("rootfs");
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
            std::fs::create_dir_all(rootfs.join(d))?;
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).context("busybox-static")?;
        for a in APPLETS {
            symlink("busybox", rootfs.join("bin").join(a))?;
        }
        std::fs::write(
            rootfs.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n",
        )?;
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\nuser:x:1000:\n")?;
        let cgroup_parent = format!(
            "/skiff-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        std::fs::write(dir.join("cgroup_parent"), &cgroup_parent)?;
        Ok(Fixture {
            dir,
            cgroup_parent,
            ids: Default::default(),
            keep: Some(tmp),
        })
    }

    /// The fixture another process made (its Drop stays with the maker).
    fn from_saved(dir: &Path) -> Result<Fixture> {
        Ok(Fixture {
            dir: dir.to_path_buf(),
            cgroup_parent: std::fs::read_to_string(dir.join("cgroup_parent"))?,
            ids: Default::default(),
            keep: None,
        })
    }

    fn runtime(&self, binary: &str) -> Runtime {
        Runtime::new(binary, self.dir.join(format!("root-{binary}")))
    }

    fn containers(&self, binary: &str) -> Containers {
        let monitor = match std::env::var_os("SKIFF_MONITOR_BIN") {
            // The real thing: `skiff container-monitor` (for measurements).
            Some(bin) => MonitorCommand {
                program: bin.into(),
                args: vec!["container-monitor".into()],
            },
            None => MonitorCommand {
                program: std::env::current_exe().expect("test binary"),
                args: vec![
                    "--exact".into(),
                    "monitor_entry".into(),
                    "--nocapture".into(),
                    "--quiet".into(),
                ],
            },
        };
        let mut c = Containers::new(self.runtime(binary), self.dir.join("state"), monitor);
        c.start_timeout = Duration::from_secs(30);
        c
    }

    fn config(&self, id: &str, args: &[&str]) -> ContainerConfig {
        ContainerConfig {
            id: id.into(),
            rootfs: self.dir.join("rootfs"),
            args: args.iter().map(|a| a.to_string()).collect(),
            cgroup_parent: self.cgroup_parent.clone(),
            hostname: Some(id.into()),
            ..Default::default()
        }
    }

    /// A bundle for `cfg` (config.json from spec.rs) and the request to start it.
    fn request_for(&self, cfg: &ContainerConfig) -> Result<StartRequest> {
        let bundle = self.dir.join("bundles").join(&cfg.id);
        std::fs::create_dir_all(&bundle)?;
        spec::write_config(&bundle, cfg)?;
        self.ids.borrow_mut().push(cfg.id.clone());
        Ok(StartRequest {
            id: cfg.id.clone(),
            bundle,
            log_path: self.dir.join(format!("{}.log", cfg.id)),
            ..Default::default()
        })
    }

    fn request(&self, id: &str, args: &[&str]) -> Result<StartRequest> {
        self.request_for(&self.config(id, args))
    }

    fn log(&self, id: &str) -> Vec<logs::Line> {
        logs::lines(&std::fs::read(self.dir.join(format!("{id}.log"))).unwrap_or_default())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if self.keep.is_none() {
            return;
        }
        let mut ids = self.ids.borrow().clone();
        ids.push("survivor".into());
        for binary in ["runc", "crun"] {
            let rt = self.runtime(binary);
            for id in &ids {
                let _ = rt.delete(id, true);
            }
        }
        // Monitors: each wrote its pid; they exit by themselves once their container is
        // gone, but do not leave one behind if it did not.
        for id in &ids {
            let started = self.dir.join("state").join(id).join("started.json");
            if let Ok(bytes) = std::fs::read(&started) {
                if let Ok(s) = serde_json::from_slice::<monitor::Started>(&bytes) {
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while Path::new(&format!("/proc/{}", s.monitor_pid)).exists()
                        && Instant::now() < deadline
                    {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let _ = Command::new("kill")
                        .args(["-9", &s.monitor_pid.to_string()])
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
        remove_cgroups(&self.cgroup_parent);
    }
}

/// rmdir of the test's cgroup subtree in every hierarchy (v1 and v2), deepest first.
fn remove_cgroups(parent: &str) {
    let rel = parent.trim_start_matches('/');
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        roots.extend(entries.flatten().map(|e| e.path()));
    }
    for root in roots {
        let top = root.join(rel);
        if !top.is_dir() {
            continue;
        }
        let mut dirs = vec![top.clone()];
        let mut i = 0;
        while i < dirs.len() {
            if let Ok(entries) = std::fs::read_dir(&dirs[i]) {
                dirs.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
            i += 1;
        }
        for d in dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn exited(h: &ContainerHandle) -> Result<monitor::Exited> {
    h.wait(Duration::from_secs(30))
        .context("the container did not exit within 30 s")
}

fn content(lines: &[logs::Line], stream: logs::Stream) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.stream == stream)
        .map(|l| String::from_utf8_lossy(&l.content).into_owned())
        .collect()
}

#[test]
fn exit_code_and_both_streams_in_the_cri_log() -> Result<()> {
    let f = Fixture::new()?;
    let c = f.containers("runc");
    let h = c.start(&f.request("streams", &["sh", "-c", "echo out; echo err >&2; exit 3"])?)?;
    let e = exited(&h)?;
    assert_eq!(e.exit_code, 3);
    assert!(!e.oom_killed);
    let lines = f.log("streams");
    assert_eq!(content(&lines, logs::Stream::Stdout), vec!["out"]);
    assert_eq!(content(&lines, logs::Stream::Stderr), vec!["err"]);
    let raw = std::fs::read_to_string(f.dir.join("streams.log"))?;
    assert!(raw.contains(" stdout F out\n"), "{raw}");
    assert!(raw.contains(" stderr F err\n"), "{raw}");
    assert!(matches!(h.status(), ContainerStatus::Exited(_)));
    h.remove()?;
    Ok(())
}

#[test]
fn a_long_line_is_split_into_partial_records_and_joined_back() -> Result<()> {
    let f = Fixture::new()?;
    let c = f.containers("runc");
    let h = c.start(&f.request(
        "longline",
        &[
            "sh",
            "-c",
            "head -c 40000 /dev/zero | tr '\\0' a; echo; echo short",
        ],
    )?)?;
    assert_eq!(exited(&h)?.exit_code, 0);
    let raw = std::fs::read_to_string(f.dir.join("longline.log"))?;
    let tags: Vec<&str> = raw.lines().filter_map(|l| l.split(' ').nth(2)).collect();
    assert_eq!(tags, vec!["P", "P", "F", "F"], "records: {}", raw.len());
    let lines = f.log("longline");
    let out = content(&lines, logs::Stream::Stdout);
    assert_eq!(out.len(), 2);
    assert_eq!(out[0], "a".repeat(40000));
    assert_eq!(out[1], "short");
    h.remove()?;
    Ok(())
}

#[test]
fn memory_limit_ends_in_exit_137_and_the_oom_flag() -> Result<()> {
    let f = Fixture::new()?;
    let c = f.containers("runc");
    let mut cfg = f.config("oom", &["sh", "-c", "head -c 100m /dev/zero | tail"]);
    cfg.resources.memory_limit = Some(16 << 20);
    let h = c.start(&f.request_for(&cfg)?)?;
    let e = exited(&h)?;
    assert_eq!(e.exit_code, 137, "{e:?}");
    assert!(e.oom_killed, "{e:?}");
    // runc put the limit where the monitor looked (v1 here, v2 elsewhere).
    let v1 = Path::new("/sys/fs/cgroup/memory")
        .join(f.cgroup_parent.trim_start_matches('/'))
        .join("oom/memory.limit_in_bytes");
    if v1.exists() {
        assert_eq!(
            std::fs::read_to_string(&v1)?.trim(),
            (16u64 << 20).to_string()
        );
    }
    h.remove()?;
    Ok(())
}

#[test]
fn the_container_outlives_its_killed_caller() -> Result<()> {
    let f = Fixture::new()?;
    f.ids.borrow_mut().push("survivor".into());
    let mut caller = Command::new(std::env::current_exe()?)
        .args(["--exact", "monitor_entry", "--nocapture", "--quiet"])
        .arg(format!("{}.caller", f.dir.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    // Kill the caller whatever happens below.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = caller.stdout.take().context("stdout")?;
    let mut caller = Kill(caller);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(|l| l.ok())
        {
            if line.starts_with("started ") {
                let _ = tx.send(());
                return;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .context("the caller did not start its container")?;
    caller.0.kill()?; // SIGKILL
    caller.0.wait()?;

    // A new caller finds it by its state dir.
    let c = f.containers("runc");
    assert_eq!(c.list()?, vec!["survivor".to_string()]);
    let h = c.open("survivor")?;
    let ContainerStatus::Running(started) = h.status() else {
        bail!("not running after its caller died: {:?}", h.status());
    };
    assert!(Path::new(&format!("/proc/{}", started.pid)).exists());
    assert_eq!(c.runtime.state("survivor")?.status, "running");
    // sleep as pid 1 ignores SIGTERM: the grace period runs out and SIGKILL ends it.
    let e = h.stop(Duration::from_millis(300))?.context("no exit")?;
    assert_eq!(e.exit_code, 137);
    assert!(matches!(h.status(), ContainerStatus::Exited(_)));
    h.remove()?;
    assert!(c.list()?.is_empty());
    Ok(())
}

#[test]
fn stop_sends_sigterm_first_then_sigkill_after_the_grace_period() -> Result<()> {
    let f = Fixture::new()?;
    let c = f.containers("runc");
    let polite = c.start(&f.request(
        "polite",
        &[
            "sh",
            "-c",
            "trap 'echo got TERM; exit 7' TERM; echo ready; sleep 1000 & wait",
        ],
    )?)?;
    let stubborn = c.start(&f.request("stubborn", &["sleep", "1000"])?)?;
    // The trap must be set before the signal comes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !content(&f.log("polite"), logs::Stream::Stdout).contains(&"ready".to_string()) {
        if Instant::now() > deadline {
            bail!("polite never said ready");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let e = polite.stop(Duration::from_secs(20))?.context("no exit")?;
    assert_eq!(e.exit_code, 7, "{e:?}");
    assert_eq!(
        content(&f.log("polite"), logs::Stream::Stdout),
        vec!["ready", "got TERM"]
    );
    let t = Instant::now();
    let grace = Duration::from_millis(500);
    let e = stubborn.stop(grace)?.context("no exit")?;
    assert!(
        t.elapsed() >= grace,
        "SIGKILL came before the grace period ended"
    );
    assert_eq!((e.exit_code, e.signal), (137, Some(9)));
    polite.remove()?;
    stubborn.remove()?;
    Ok(())
}

#[test]
fn a_missing_command_surfaces_the_runtimes_message() -> Result<()> {
    let f = Fixture::new()?;
    let c = f.containers("runc");
    let err = c
        .start(&f.request("missing", &["nope"])?)
        .expect_err("a command that does not exist must not start");
    let MonitorError::Runtime(message) = &err else {
        bail!("not a runtime error: {err:?}");
    };
    assert!(
        message.contains(r#"exec: "nope": executable file not found in $PATH"#),
        "{message}"
    );
    // Nothing is left running or half-created.
    assert!(c.runtime.list()?.is_empty(), "{:?}", c.runtime.list()?);
    assert!(c.list()?.is_empty());
    assert!(!c.state_dir.join("missing").exists());
    Ok(())
}

/// A restricted config (user, read-only root, RuntimeDefault seccomp, dropped caps) runs
/// and is enforced under `binary`.
fn restricted_config_runs(binary: &str) -> Result<()> {
    let f = Fixture::new()?;
    // Declared after the fixture: dropped first, once its containers are gone.
    let _hugetlb = if binary == "crun" && crun_refuses_cgroups() {
        Some(HugetlbV1::mount(&f)?)
    } else {
        None
    };
    let c = f.containers(binary);
    let mut cfg = f.config(
        &format!("restricted-{binary}"),
        &[
            "sh",
            "-c",
            "id -u; id -G; touch /x 2>/dev/null || echo rofs; \
             cat /proc/self/status | grep -E '^(NoNewPrivs|Seccomp):'",
        ],
    );
    cfg.user = UserIds {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![20],
    };
    cfg.readonly_rootfs = true;
    cfg.no_new_privileges = true;
    cfg.seccomp = Seccomp::RuntimeDefault;
    cfg.capabilities.drop = vec!["ALL".into()];
    cfg.resources.pids_limit = Some(50);
    cfg.resources.cpu_shares = Some(512);
    cfg.resources.oom_score_adj = -100; // clamped to 0: negative values fail runc here
    let h = c.start(&f.request_for(&cfg)?)?;
    let e = exited(&h)?;
    let out = content(&f.log(&cfg.id), logs::Stream::Stdout);
    assert_eq!(e.exit_code, 0, "{out:?}");
    assert_eq!(out[0], "1000");
    assert_eq!(out[1], "1000 20");
    assert!(out.contains(&"rofs".to_string()), "{out:?}");
    let status: String = out[2..]
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(status.contains("NoNewPrivs: 1"), "{out:?}");
    assert!(status.contains("Seccomp: 2"), "{out:?}");
    h.remove()?;
    Ok(())
}

#[test]
fn spec_runs_under_runc() -> Result<()> {
    restricted_config_runs("runc")
}

#[test]
fn spec_runs_under_crun() -> Result<()> {
    restricted_config_runs("crun")
}

/// crun takes `--console-socket` as runc does: the monitor gets the terminal's master and
/// logs it (crun's own messages when it fails reach the caller, not a half-read socket).
#[test]
fn a_tty_container_runs_under_crun_too() -> Result<()> {
    let f = Fixture::new()?;
    let mut hugetlb = if crun_refuses_cgroups() {
        Some(HugetlbV1::mount(&f)?)
    } else {
        None
    };
    if let Some(h) = &mut hugetlb {
        h.ids = vec!["tty-crun".into()];
    }
    let c = f.containers("crun");
    let mut cfg = f.config("tty-crun", &["sh", "-c", "tty; echo done"]);
    cfg.terminal = true;
    let mut req = f.request_for(&cfg)?;
    req.terminal = true;
    let h = c.start(&req)?;
    let e = exited(&h)?;
    let out = content(&f.log("tty-crun"), logs::Stream::Stdout);
    assert_eq!(e.exit_code, 0, "{out:?}");
    assert!(
        out[0].starts_with("/dev/pts/") && out[0].ends_with('\r'),
        "{out:?}"
    );
    assert_eq!(out[1..], ["done\r"], "{out:?}");
    h.remove()?;
    Ok(())
}

#[test]
fn stdin_is_a_fifo_the_container_reads() -> Result<()> {
    let f = Fixture::new()?;
    let c = f.containers("runc");
    let mut req = f.request("stdin", &["cat"])?;
    req.stdin = true;
    let h = c.start(&req)?;
    let fifo = h.stdin_path().context("no stdin fifo")?;
    for word in ["hello", "again"] {
        // Each writer comes and goes; cat sees no EOF in between.
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo)?;
        std::io::Write::write_all(&mut w, format!("{word}\n").as_bytes())?;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while content(&f.log("stdin"), logs::Stream::Stdout).len() < 2 {
        if Instant::now() > deadline {
            bail!("cat did not echo: {:?}", f.log("stdin"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        content(&f.log("stdin"), logs::Stream::Stdout),
        vec!["hello", "again"]
    );
    assert!(matches!(h.status(), ContainerStatus::Running(_)));
    // A second start of a running id is refused and leaves the first alone.
    let again = c.start(&req).expect_err("started twice");
    assert!(again.to_string().contains("already running"), "{again}");
    assert!(matches!(h.status(), ContainerStatus::Running(_)));
    let e = h.stop(Duration::from_millis(200))?.context("no exit")?;
    assert_eq!(e.exit_code, 137); // cat as pid 1 ignores SIGTERM
    h.remove()?;
    Ok(())
}

#[test]
fn a_killed_monitor_leaves_the_status_unknown_and_the_container_removable() -> Result<()> {
    let f = Fixture::new()?;
    let c = f.containers("runc");
    let h = c.start(&f.request("orphan", &["sleep", "1000"])?)?;
    let monitor = h.monitor_pid().context("no monitor")?;
    let st = Command::new("kill")
        .args(["-9", &monitor.to_string()])
        .status()?;
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.monitor_pid().is_some() {
        if Instant::now() > deadline {
            bail!("the monitor did not die");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        h.status(),
        ContainerStatus::Unknown {
            running: true,
            reason: "the monitor is gone".into()
        }
    );
    // No monitor, so no exit is recorded: wait says so at once instead of timing out.
    let t = Instant::now();
    assert_eq!(h.wait(Duration::from_secs(20)), None);
    assert!(t.elapsed() < Duration::from_secs(20));
    h.remove()?;
    assert!(c.runtime.list()?.is_empty());
    Ok(())
}

#[test]
fn a_privileged_container_gets_all_capabilities_and_the_host_devices() -> Result<()> {
    let f = Fixture::new()?;
    let c = f.containers("runc");
    let script = "grep CapEff /proc/self/status; test -c /dev/null && echo chardev; \
                  mkdir -p /tmp/m && mount -t tmpfs none /tmp/m && echo mounted";
    let mut cfg = f.config("privileged", &["sh", "-c", script]);
    cfg.privileged = true;
    cfg.host_devices = spec::host_devices(Path::new("/dev"))?;
    cfg.host_capabilities = spec::current_capabilities()?;
    let h = c.start(&f.request_for(&cfg)?)?;
    let e = exited(&h)?;
    let out = content(&f.log("privileged"), logs::Stream::Stdout);
    assert_eq!(e.exit_code, 0, "{out:?} {:?}", f.log("privileged"));
    // The default set is 00000000a80425fb; privileged has every capability the kernel has.
    let capeff = out[0].split_whitespace().last().unwrap_or_default();
    let bits = u64::from_str_radix(capeff, 16)?;
    assert!(bits.count_ones() >= 38, "{capeff}");
    assert_eq!(&out[1..], ["chardev", "mounted"]);
    h.remove()?;
    Ok(())
}

#[test]
fn sigusr1_makes_the_monitor_reopen_a_rotated_log() -> Result<()> {
    let f = Fixture::new()?;
    let c = f.containers("runc");
    let h = c.start(&f.request(
        "rotate",
        &["sh", "-c", "while true; do echo tick; sleep 0.05; done"],
    )?)?;
    let log = f.dir.join("rotate.log");
    let wait_for_lines = |path: &Path| -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while logs::lines(&std::fs::read(path).unwrap_or_default()).is_empty() {
            if Instant::now() > deadline {
                bail!("no lines in {}", path.display());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    };
    wait_for_lines(&log)?;
    let rotated = f.dir.join("rotate.log.1");
    std::fs::rename(&log, &rotated)?;
    let monitor = h.monitor_pid().context("no monitor")?;
    assert!(Command::new("kill")
        .args(["-USR1", &monitor.to_string()])
        .status()?
        .success());
    wait_for_lines(&log)?;
    assert!(logs::lines(&std::fs::read(&rotated)?)
        .iter()
        .all(|l| l.content == b"tick"));
    h.stop(Duration::from_millis(100))?;
    h.remove()?;
    Ok(())
}

/// A stand-in pod sandbox: a process holding new net, ipc, uts and pid namespaces
/// (`unshare`), killed on drop.
struct NamespaceHolder {
    unshare: std::process::Child,
    pid: i32,
}

impl NamespaceHolder {
    fn start(hostname: &str) -> Result<NamespaceHolder> {
        let mut unshare = Command::new("unshare")
            .args([
                "--net",
                "--ipc",
                "--uts",
                "--pid",
                "--fork",
                "--kill-child",
                "sh",
                "-c",
            ])
            .arg(format!("hostname {hostname} && exec sleep 1000"))
            .stdin(Stdio::null())
            .spawn()?;
        let me = unshare.id();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The sleeping child of unshare, once it is in its namespaces with the hostname.
            let child = std::fs::read_to_string(format!("/proc/{me}/task/{me}/children"))
                .ok()
                .and_then(|c| {
                    c.split_whitespace()
                        .next()
                        .and_then(|p| p.parse::<i32>().ok())
                });
            if let Some(pid) = child {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                if comm.trim() == "sleep" {
                    return Ok(NamespaceHolder { unshare, pid });
                }
            }
            if Instant::now() > deadline {
                let _ = unshare.kill();
                let _ = unshare.wait();
                bail!("the namespace holder did not come up");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn ns(&self, kind: &str) -> NamespaceMode {
        NamespaceMode::Path(format!("/proc/{}/ns/{kind}", self.pid).into())
    }
}

impl Drop for NamespaceHolder {
    fn drop(&mut self) {
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

#[test]
fn containers_join_the_sandboxs_namespaces_by_path() -> Result<()> {
    let f = Fixture::new()?;
    let holder = NamespaceHolder::start("pod-a")?;
    let c = f.containers("runc");
    let script = "hostname; echo $HOSTNAME; ls /sys/class/net; echo pid=$$";
    let mut shared = f.config("joined", &["sh", "-c", script]);
    shared.hostname = Some("pod-a".into());
    shared.namespaces = Namespaces {
        network: holder.ns("net"),
        ipc: holder.ns("ipc"),
        uts: holder.ns("uts"),
        pid: NamespaceMode::Private,
    };
    let h = c.start(&f.request_for(&shared)?)?;
    let e = exited(&h)?;
    let out = content(&f.log("joined"), logs::Stream::Stdout);
    assert_eq!(e.exit_code, 0, "{out:?}");
    // The sandbox's hostname and network (a new netns has only lo), its own pid namespace.
    assert_eq!(out, vec!["pod-a", "pod-a", "lo", "pid=1"]);
    h.remove()?;

    // shareProcessNamespace: the sandbox's pid namespace, so the container is not pid 1 and
    // sees the holder's process.
    let mut pidshare = f.config("pidshare", &["sh", "-c", "echo pid=$$; ps -o comm"]);
    pidshare.hostname = None;
    pidshare.namespaces = Namespaces {
        network: holder.ns("net"),
        ipc: holder.ns("ipc"),
        uts: holder.ns("uts"),
        pid: holder.ns("pid"),
    };
    let h = c.start(&f.request_for(&pidshare)?)?;
    let e = exited(&h)?;
    let out = content(&f.log("pidshare"), logs::Stream::Stdout);
    assert_eq!(e.exit_code, 0, "{out:?}");
    assert_ne!(out[0], "pid=1", "{out:?}");
    assert!(out.iter().any(|l| l.trim() == "sleep"), "{out:?}");
    h.remove()?;
    Ok(())
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Private (Private_Clean + Private_Dirty) and RSS of a process, in KiB.
fn memory_kib(pid: i32) -> Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok((
        field("Private_Clean:") + field("Private_Dirty:"),
        field("Rss:"),
    ))
}

/// Not a pass/fail test: prints `runc run` (the floor) against a start through the
/// monitor, p50 over 20 runs, and a running monitor's memory. Run with
/// `--ignored --nocapture`; `SKIFF_MONITOR_BIN=<skiff binary>` measures the real monitor.
#[test]
#[ignore]
fn measure_start_latency_and_monitor_memory() -> Result<()> {
    let f = Fixture::new()?;
    let rt = f.runtime("runc");
    let mut floor = Vec::new();
    for i in 0..20 {
        let req = f.request(&format!("floor{i}"), &["true"])?;
        let t = Instant::now();
        let st = rt
            .command(
                None,
                &[
                    "run".into(),
                    "--bundle".into(),
                    req.bundle.clone().into(),
                    req.id.clone().into(),
                ],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()?;
        floor.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(st.success());
        rt.delete(&req.id, true)?;
    }
    // The same start the monitor makes, without it: `run --detach` of a sleeping container.
    let mut detached = Vec::new();
    for i in 0..20 {
        let req = f.request(&format!("detached{i}"), &["sleep", "1000"])?;
        let t = Instant::now();
        let st = rt
            .command(
                None,
                &[
                    "run".into(),
                    "--detach".into(),
                    "--bundle".into(),
                    req.bundle.clone().into(),
                    req.id.clone().into(),
                ],
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        detached.push(t.elapsed().as_secs_f64() * 1000.0);
        assert!(st.success());
        rt.delete(&req.id, true)?;
    }
    let c = f.containers("runc");
    let mut monitored = Vec::new();
    let mut handles = Vec::new();
    for i in 0..20 {
        let req = f.request(&format!("mon{i}"), &["sleep", "1000"])?;
        let t = Instant::now();
        let h = c.start(&req)?;
        monitored.push(t.elapsed().as_secs_f64() * 1000.0);
        handles.push(h);
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut private = Vec::new();
    let mut rss = Vec::new();
    for h in &handles {
        let pid = h.monitor_pid().context("monitor gone")?;
        let (p, r) = memory_kib(pid)?;
        private.push(p as f64);
        rss.push(r as f64);
    }
    println!(
        "runc run (floor, `true` to exit) p50 {:.1} ms p90 {:.1} ms; runc run --detach (to running) p50 {:.1} ms p90 {:.1} ms; start through the monitor (to running) p50 {:.1} ms p90 {:.1} ms",
        percentile(&mut floor.clone(), 0.5),
        percentile(&mut floor, 0.9),
        percentile(&mut detached.clone(), 0.5),
        percentile(&mut detached, 0.9),
        percentile(&mut monitored.clone(), 0.5),
        percentile(&mut monitored, 0.9),
    );
    println!(
        "monitor memory with 20 running: private p50 {:.0} KiB max {:.0} KiB; RSS p50 {:.0} KiB",
        percentile(&mut private.clone(), 0.5),
        percentile(&mut private, 1.0),
        percentile(&mut rss, 0.5),
    );
    for h in &handles {
        h.stop(Duration::from_millis(10))?;
        h.remove()?;
    }
    Ok(())
}
