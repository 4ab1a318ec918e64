//! exec/ for real: exec_sync, streaming exec (pipes and a terminal), attach (pipes and a
//! terminal the monitor holds, stdinOnce) and port-forward, against runc containers under the monitor (this binary re-executed, as
//! tests/containers.rs does) in a busybox rootfs, and a network namespace of the test's.
//!
//! Needs root, runc and busybox-static. Every test removes its containers, monitors,
//! cgroups, namespaces and temp dirs in Drop guards, and checks that no exec'd process is
//! left.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use skiff_runtime::container::monitor::{
    self, ContainerHandle, Containers, MonitorCommand, StartRequest,
};
use skiff_runtime::container::runtime::Runtime;
use skiff_runtime::container::spec::{self, ContainerConfig};
use skiff_runtime::cri::{StreamRequest, StreamSession, TerminalSize};
use skiff_runtime::exec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// The monitor, when this binary is re-executed as one.
#[test]
fn monitor_entry() {
    let Some(last) = std::env::args().next_back() else {
        return;
    };
    if last.ends_with("monitor.json") {
        std::process::exit(monitor::run(Path::new(&last)));
    }
}

fn skip() -> bool {
    let why = if !rustix::process::geteuid().is_root() {
        Some("not root")
    } else if !Path::new("/bin/busybox").exists() {
        Some("/bin/busybox missing (busybox-static)")
    } else {
        None
    };
    if let Some(why) = why {
        eprintln!("skipped: {why}");
    }
    why.is_some()
}

const APPLETS: &[&str] = &[
    "sh", "echo", "sleep", "cat", "tty", "stty", "true", "ps", "nc", "kill",
];

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A busybox rootfs, a runc root and the monitors' state in a temp dir; removes every
/// container, monitor and cgroup it made on drop.
struct Fixture {
    dir: PathBuf,
    cgroup_parent: String,
    ids: std::cell::RefCell<Vec<String>>,
    _tmp: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Result<Fixture> {
        let tmp = tempfile::Builder::new()
            .prefix("skiff-exec-")
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
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n")?;
        Ok(Fixture {
            dir,
            cgroup_parent: format!(
                "/skiff-exec-test-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::SeqCst)
            ),
            ids: Default::default(),
            _tmp: tmp,
        })
    }

    fn runtime(&self) -> Runtime {
        Runtime::new("runc", self.dir.join("root-runc"))
    }

    fn containers(&self) -> Containers {
        let monitor = MonitorCommand {
            program: std::env::current_exe().expect("test binary"),
            args: vec![
                "--exact".into(),
                "monitor_entry".into(),
                "--nocapture".into(),
                "--quiet".into(),
            ],
        };
        let mut c = Containers::new(self.runtime(), self.dir.join("state"), monitor);
        c.start_timeout = Duration::from_secs(30);
        c
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.log"))
    }

    /// Starts `args` as container `id` (with a stdin FIFO when `stdin`).
    fn start(&self, id: &str, args: &[&str], stdin: bool) -> Result<ContainerHandle> {
        self.start_with(
            id,
            args,
            Io {
                stdin,
                ..Default::default()
            },
        )
    }

    /// Starts `args` as container `id` with the stdin and terminal of `io`.
    fn start_with(&self, id: &str, args: &[&str], io: Io) -> Result<ContainerHandle> {
        let cfg = ContainerConfig {
            id: id.into(),
            rootfs: self.dir.join("rootfs"),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: vec!["PATH=/bin".into()],
            cgroup_parent: self.cgroup_parent.clone(),
            hostname: Some(id.into()),
            terminal: io.terminal,
            stdin: io.stdin,
            stdin_once: io.stdin_once,
            ..Default::default()
        };
        let bundle = self.dir.join("bundles").join(id);
        std::fs::create_dir_all(&bundle)?;
        spec::write_config(&bundle, &cfg)?;
        self.ids.borrow_mut().push(id.into());
        Ok(self.containers().start(&StartRequest {
            id: id.into(),
            bundle,
            log_path: self.log_path(id),
            stdin: io.stdin,
            stdin_once: io.stdin_once,
            terminal: io.terminal,
        })?)
    }
}

/// A container's stdin and terminal (the pod spec's stdin, stdinOnce, tty).
#[derive(Clone, Copy, Default)]
struct Io {
    stdin: bool,
    stdin_once: bool,
    terminal: bool,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let rt = self.runtime();
        for id in self.ids.borrow().iter() {
            let _ = rt.kill(id, 9, true);
            let _ = rt.delete(id, true);
            let started = self.dir.join("state").join(id).join("started.json");
            if let Ok(s) = std::fs::read(&started)
                .map_err(anyhow::Error::from)
                .and_then(|b| Ok(serde_json::from_slice::<monitor::Started>(&b)?))
            {
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
        let rel = self.cgroup_parent.trim_start_matches('/');
        let mut roots = vec![PathBuf::from("/sys/fs/cgroup")];
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            roots.extend(entries.flatten().map(|e| e.path()));
        }
        for root in roots {
            let top = root.join(rel);
            if let Ok(entries) = std::fs::read_dir(&top) {
                for e in entries.flatten().filter(|e| e.path().is_dir()) {
                    let _ = std::fs::remove_dir(e.path());
                }
            }
            let _ = std::fs::remove_dir(&top);
        }
    }
}

fn block_on<F: std::future::Future<Output = Result<()>>>(f: F) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(f)
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// The pids of the container's processes (runc ps), init included.
fn container_pids(rt: &Runtime, id: &str) -> Result<Vec<i32>> {
    let out = rt
        .command(
            None,
            &["ps".into(), "--format".into(), "json".into(), id.into()],
        )
        .output()?;
    if !out.status.success() {
        bail!("runc ps: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice::<Option<Vec<i32>>>(&out.stdout)?.unwrap_or_default())
}

/// Reads `r` until `want` appears in what was read (bounded in time).
async fn read_until(r: &mut (impl AsyncRead + Unpin), want: &str, got: &mut String) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 4096];
    while !got.contains(want) {
        let n = tokio::time::timeout_at(deadline, r.read(&mut buf))
            .await
            .with_context(|| format!("no {want:?} within 20 s; got {got:?}"))??;
        if n == 0 {
            bail!("EOF before {want:?}; got {got:?}");
        }
        got.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    Ok(())
}

async fn exit_of(s: StreamSession) -> Result<i32> {
    tokio::time::timeout(Duration::from_secs(20), s.exit)
        .await
        .context("no exit within 20 s")??
        .map_err(|e| anyhow::anyhow!("{e}"))
}

#[test]
fn exec_sync_exit_code_output_and_missing_command() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let f = Fixture::new()?;
    let h = f.start("sync", &["sleep", "1000"], false)?;
    let rt = f.runtime();
    block_on(async {
        let out = exec::exec_sync(
            &rt,
            &h.id,
            &args(&["sh", "-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(20),
        )
        .await?;
        assert_eq!(out.exit_code, 3);
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert!(!out.timed_out);

        // Output past the cap is dropped, its start kept.
        let big = exec::exec_sync(
            &rt,
            &h.id,
            &args(&[
                "sh",
                "-c",
                "i=0; while [ $i -lt 3000 ]; do echo 0123456789; i=$((i+1)); done",
            ]),
            Duration::from_secs(20),
        )
        .await?;
        assert_eq!(big.exit_code, 0);
        assert_eq!(big.stdout.len(), exec::OUTPUT_CAP);
        assert!(big.stdout.starts_with(b"0123456789\n0123456789\n"));

        let missing = exec::exec_sync(&rt, &h.id, &args(&["nope"]), Duration::from_secs(20))
            .await
            .expect_err("a missing command runs");
        assert!(missing.to_string().contains("nope"), "{missing}");
        Ok(())
    })?;
    assert_eq!(
        container_pids(&rt, &h.id)?.len(),
        1,
        "exec'd processes left"
    );
    Ok(())
}

#[test]
fn exec_sync_timeout_kills_the_process_and_its_children() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let f = Fixture::new()?;
    let h = f.start("timeout", &["sleep", "1000"], false)?;
    let rt = f.runtime();
    block_on(async {
        let plain = exec::exec_sync(
            &rt,
            &h.id,
            &args(&["sleep", "100"]),
            Duration::from_millis(500),
        )
        .await?;
        assert!(plain.timed_out);
        assert_eq!(plain.exit_code, 137);
        // A shell with a child in the background and one in the foreground.
        let tree = exec::exec_sync(
            &rt,
            &h.id,
            &args(&["sh", "-c", "sleep 101 & sleep 102; echo never"]),
            Duration::from_millis(500),
        )
        .await?;
        assert!(tree.timed_out);
        assert!(tree.stdout.is_empty());
        Ok(())
    })?;
    // A caller that gives up (drops the future) mid-way leaves nothing running either.
    block_on(async {
        let gave_up = tokio::time::timeout(
            Duration::from_millis(700),
            exec::exec_sync(
                &rt,
                &h.id,
                &args(&["sleep", "103"]),
                Duration::from_secs(60),
            ),
        )
        .await;
        assert!(gave_up.is_err(), "sleep 103 ended within 700 ms");
        Ok(())
    })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = container_pids(&rt, &h.id)?;
        if pids.len() == 1 {
            break;
        }
        if Instant::now() > deadline {
            bail!("processes left after the timeout: {pids:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[test]
fn streaming_exec_with_stdin_and_exit_code() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let f = Fixture::new()?;
    let h = f.start("stream", &["sleep", "1000"], false)?;
    let rt = f.runtime();
    block_on(async {
        let req = StreamRequest {
            cmd: args(&["sh", "-c", "cat; echo bye >&2; exit 4"]),
            stdin: true,
            stdout: true,
            stderr: true,
            tty: false,
        };
        let mut s = exec::exec(&rt, &h.id, req).await?;
        let mut stdin = s.stdin.take().context("stdin")?;
        let mut stdout = s.stdout.take().context("stdout")?;
        let mut stderr = s.stderr.take().context("stderr")?;
        stdin.write_all(b"hello\n").await?;
        stdin.flush().await?;
        let mut got = String::new();
        read_until(&mut stdout, "hello\n", &mut got).await?;
        drop(stdin); // cat sees EOF
        let mut err = String::new();
        read_until(&mut stderr, "bye\n", &mut err).await?;
        assert_eq!(exit_of(s).await?, 4);

        let missing = exec::exec(
            &rt,
            &h.id,
            StreamRequest {
                cmd: args(&["nope"]),
                stdout: true,
                ..Default::default()
            },
        )
        .await
        .expect_err("a missing command runs");
        assert!(missing.to_string().contains("nope"), "{missing}");

        // A dropped session: the process runs to its end and is reaped, nothing left.
        let s = exec::exec(
            &rt,
            &h.id,
            StreamRequest {
                cmd: args(&["sleep", "1"]),
                ..Default::default()
            },
        )
        .await?;
        drop(s);
        Ok(())
    })?;
    let deadline = Instant::now() + Duration::from_secs(15);
    while container_pids(&rt, &h.id)?.len() > 1 {
        if Instant::now() > deadline {
            bail!("exec'd processes left: {:?}", container_pids(&rt, &h.id)?);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

#[test]
fn terminal_exec_has_a_pts_and_sees_resizes() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let f = Fixture::new()?;
    let h = f.start("tty", &["sleep", "1000"], false)?;
    let rt = f.runtime();
    block_on(async {
        let req = StreamRequest {
            cmd: args(&["sh"]),
            stdin: true,
            stdout: true,
            stderr: false,
            tty: true,
        };
        let mut s = exec::exec(&rt, &h.id, req).await?;
        assert!(s.stderr.is_none());
        let mut stdin = s.stdin.take().context("stdin")?;
        let mut out = s.stdout.take().context("stdout")?;
        let resize = s.resize.take().context("resize")?;
        resize
            .send(TerminalSize {
                width: 100,
                height: 30,
            })
            .await?;
        let mut got = String::new();
        stdin.write_all(b"tty; echo T-$?\n").await?;
        read_until(&mut out, "T-0", &mut got).await?;
        assert!(got.contains("/dev/pts/"), "{got:?}");
        // The size is applied asynchronously: ask until it shows.
        let mut seen = false;
        for _ in 0..50 {
            resize
                .send(TerminalSize {
                    width: 120,
                    height: 40,
                })
                .await?;
            stdin.write_all(b"stty size\n").await?;
            let mut chunk = String::new();
            let _ = tokio::time::timeout(
                Duration::from_millis(200),
                read_until(&mut out, "40 120", &mut chunk),
            )
            .await;
            if chunk.contains("40 120") {
                seen = true;
                break;
            }
        }
        assert!(seen, "the resize never reached the terminal");
        stdin.write_all(b"exit 5\n").await?;
        assert_eq!(exit_of(s).await?, 5);
        Ok(())
    })
}

#[test]
fn attach_sees_new_output_per_stream_and_writes_stdin() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let f = Fixture::new()?;
    // Echoes each stdin line to stdout and, tagged, to stderr; ends at "quit".
    let h = f.start(
        "attach",
        &[
            "sh",
            "-c",
            "echo before; while read l; do [ \"$l\" = quit ] && exit 6; echo \"o:$l\"; echo \"e:$l\" >&2; done",
        ],
        true,
    )?;
    // "before" was written before the attach: it must not be seen.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(f.log_path("attach"))
        .unwrap_or_default()
        .contains("before")
    {
        if Instant::now() > deadline {
            bail!("the container wrote nothing");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let log = f.log_path("attach");
    block_on(async {
        let req = StreamRequest {
            stdin: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let mut s = exec::attach(&h, &log, req).await?;
        let mut stdin = s.stdin.take().context("stdin")?;
        let mut out = s.stdout.take().context("stdout")?;
        let mut err = s.stderr.take().context("stderr")?;
        stdin.write_all(b"one\n").await?;
        let (mut o, mut e) = (String::new(), String::new());
        read_until(&mut out, "o:one\n", &mut o).await?;
        read_until(&mut err, "e:one\n", &mut e).await?;
        assert_eq!(o, "o:one\n");
        assert_eq!(e, "e:one\n");
        stdin.write_all(b"quit\n").await?;
        assert_eq!(exit_of(s).await?, 6);
        Ok(())
    })?;
    // Attaching to an exited container is refused.
    let refused = block_on(async {
        exec::attach(&h, &log, StreamRequest::default())
            .await
            .map(drop)
            .map_err(|e| anyhow::anyhow!("{e}"))
    });
    assert!(refused.is_err());
    Ok(())
}

/// A network namespace of the test's (`ip netns add`), with lo up; deleted on drop.
struct NetNs {
    name: String,
    listener: Option<std::process::Child>,
}

impl NetNs {
    fn new() -> Result<NetNs> {
        let name = format!(
            "skiff-exec-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let ok = Command::new("ip").args(["netns", "add", &name]).status()?;
        if !ok.success() {
            bail!("ip netns add {name}");
        }
        let ns = NetNs {
            name,
            listener: None,
        };
        let ok = Command::new("ip")
            .args(["-n", &ns.name, "link", "set", "lo", "up"])
            .status()?;
        if !ok.success() {
            bail!("lo up in {}", ns.name);
        }
        Ok(ns)
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if let Some(mut l) = self.listener.take() {
            let _ = l.kill();
            let _ = l.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

#[test]
fn port_forward_connects_inside_the_namespace() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let mut ns = NetNs::new()?;
    // busybox nc listening in the namespace (its only interface is lo), sending a greeting.
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "/bin/busybox",
            "nc",
            "-l",
            "-p",
            "8080",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut nc_in = child.stdin.take().context("nc stdin")?;
    let nc_out = child.stdout.take().context("nc stdout")?;
    ns.listener = Some(child);
    std::io::Write::write_all(&mut nc_in, b"hello from the pod\n")?;
    let path = ns.path();
    block_on(async {
        // Until nc listens (bounded).
        let mut conn = None;
        for _ in 0..100 {
            match exec::port_forward(&path, 8080).await {
                Ok(c) => {
                    conn = Some(c);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let mut conn = conn.context("nc never listened")?;
        let mut got = String::new();
        read_until(&mut conn, "hello from the pod\n", &mut got).await?;
        conn.write_all(b"and back\n").await?;
        conn.flush().await?;
        Ok(())
    })?;
    let mut back = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(nc_out), &mut back)?;
    assert_eq!(back, "and back\n");
    drop(nc_in);

    let refused = block_on(async {
        match exec::port_forward(&path, 8081).await {
            Ok(_) => bail!("connected to a port nobody listens on"),
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.starts_with("failed to connect to localhost:8081 inside namespace"),
                    "{msg}"
                );
                assert!(msg.contains("connection refused"), "{msg}");
                Ok(())
            }
        }
    });
    refused?;
    Ok(())
}

/// Not a check: prints how long an exec_sync of `true` takes (p50/max of 20), for the
/// report (exec probes run one per period per container).
#[test]
fn measure_exec_sync_latency() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let f = Fixture::new()?;
    let h = f.start("measure", &["sleep", "1000"], false)?;
    let rt = f.runtime();
    block_on(async {
        let mut took = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let out =
                exec::exec_sync(&rt, &h.id, &args(&["true"]), Duration::from_secs(20)).await?;
            took.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(out.exit_code, 0);
        }
        took.sort_by(f64::total_cmp);
        eprintln!(
            "exec_sync(true): p50 {:.1} ms, max {:.1} ms over {}",
            took[took.len() / 2],
            took[took.len() - 1],
            took.len()
        );
        Ok(())
    })
}

#[test]
fn attach_without_a_stdin_fifo_and_exec_in_a_stopped_one() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let f = Fixture::new()?;
    let h = f.start("nostdin", &["sleep", "1000"], false)?;
    let log = f.log_path("nostdin");
    let rt = f.runtime();
    block_on(async {
        // No FIFO (started without stdin): no stdin stream, output still attached.
        let s = exec::attach(
            &h,
            &log,
            StreamRequest {
                stdin: true,
                stdout: true,
                ..Default::default()
            },
        )
        .await?;
        assert!(s.stdin.is_none());
        assert!(s.stdout.is_some());
        drop(s);
        Ok(())
    })?;
    h.stop(Duration::from_millis(200))?;
    let stopped = block_on(async {
        match exec::exec_sync(&rt, &h.id, &args(&["true"]), Duration::from_secs(10)).await {
            Ok(o) => bail!("exec in a stopped container: {o:?}"),
            Err(e) => {
                assert!(e.to_string().contains("stopped container"), "{e}");
                Ok(())
            }
        }
    });
    stopped
}

#[test]
fn attach_follows_a_rotated_log() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let f = Fixture::new()?;
    let h = f.start(
        "rotate",
        &["sh", "-c", "while read l; do echo \"o:$l\"; done"],
        true,
    )?;
    let log = f.log_path("rotate");
    block_on(async {
        let req = StreamRequest {
            stdin: true,
            stdout: true,
            ..Default::default()
        };
        let mut s = exec::attach(&h, &log, req).await?;
        let mut stdin = s.stdin.take().context("stdin")?;
        let mut out = s.stdout.take().context("stdout")?;
        let mut got = String::new();
        stdin.write_all(b"one\n").await?;
        read_until(&mut out, "o:one\n", &mut got).await?;
        // Rotate as the kubelet does: move the file away, SIGUSR1 the monitor.
        std::fs::rename(&log, log.with_extension("log.1"))?;
        let monitor = h.monitor_pid().context("no monitor")?;
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(monitor).context("pid")?,
            rustix::process::Signal::USR1,
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !log.exists() {
            if Instant::now() > deadline {
                bail!("the monitor did not reopen the log");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stdin.write_all(b"two\n").await?;
        read_until(&mut out, "o:two\n", &mut got).await?;
        assert_eq!(got, "o:one\no:two\n");
        assert!(std::fs::read_to_string(&log)?.contains("o:two"));
        Ok(())
    })
}

/// Waits until `path`'s CRI log holds `want` (bounded).
fn wait_for_log(path: &Path, want: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(want) {
            return Ok(text);
        }
        if Instant::now() > deadline {
            bail!("no {want:?} in the log within 20 s: {text:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_tty_container_logs_its_terminal_as_stdout_records() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let f = Fixture::new()?;
    let io = Io {
        terminal: true,
        ..Default::default()
    };
    let h = f.start_with(
        "ttylog",
        &[
            "sh",
            "-c",
            "tty; echo \"term=$TERM\"; echo err >&2; printf 'no newline'; exit 3",
        ],
        io,
    )?;
    let exited = h.wait(Duration::from_secs(20)).context("no exit")?;
    assert_eq!(exited.exit_code, 3);
    let raw = std::fs::read(f.log_path("ttylog"))?;
    let lines = skiff_runtime::container::logs::lines(&raw);
    let text: Vec<String> = lines
        .iter()
        .map(|l| String::from_utf8_lossy(&l.content).into_owned())
        .collect();
    // One stream, stdout; the terminal's `\r\n` kept (onlcr on, as conmon sets it).
    assert!(
        lines
            .iter()
            .all(|l| l.stream == skiff_runtime::container::logs::Stream::Stdout),
        "{text:?}"
    );
    assert!(
        text[0].starts_with("/dev/pts/") && text[0].ends_with('\r'),
        "{text:?}"
    );
    assert_eq!(
        text[1..],
        ["term=xterm\r", "err\r", "no newline"],
        "{text:?}"
    );
    Ok(())
}

#[test]
fn attach_to_a_tty_container_resizes_writes_input_and_survives_a_new_caller() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let f = Fixture::new()?;
    let io = Io {
        stdin: true,
        terminal: true,
        ..Default::default()
    };
    let h = f.start_with("ttyattach", &["sh"], io)?;
    let log = f.log_path("ttyattach");
    wait_for_log(&log, "# ")?; // the prompt: the shell reads its terminal
    let req = StreamRequest {
        stdin: true,
        stdout: true,
        stderr: true,
        tty: true,
        ..Default::default()
    };
    block_on(async {
        let mut s = exec::attach(&h, &log, req.clone()).await?;
        assert!(s.stderr.is_none(), "a terminal has one output stream");
        let mut stdin = s.stdin.take().context("stdin")?;
        let mut out = s.stdout.take().context("stdout")?;
        let resize = s.resize.take().context("no resize channel")?;
        resize
            .send(TerminalSize {
                width: 120,
                height: 40,
            })
            .await?;
        let mut got = String::new();
        // Output a command's echo cannot contain: the shell's arithmetic.
        stdin.write_all(b"tty; echo A$((40+2))\n").await?;
        read_until(&mut out, "A42\r\n", &mut got).await?;
        assert!(got.contains("/dev/pts/"), "{got:?}");
        // The size is applied by the monitor asynchronously: ask until it shows.
        let mut seen = false;
        for _ in 0..50 {
            stdin.write_all(b"stty size\n").await?;
            let mut chunk = String::new();
            let _ = tokio::time::timeout(
                Duration::from_millis(200),
                read_until(&mut out, "40 120", &mut chunk),
            )
            .await;
            if chunk.contains("40 120") {
                seen = true;
                break;
            }
        }
        assert!(seen, "the resize never reached the terminal");
        drop((stdin, out, resize, s));
        Ok(())
    })?;
    // A restarted caller (new Containers, as a new LocalRuntime) attaches again; stdin
    // stayed open (no stdinOnce).
    let again = f.containers().open("ttyattach")?;
    block_on(async {
        let mut s = exec::attach(&again, &log, req).await?;
        let mut stdin = s.stdin.take().context("stdin after the first session")?;
        let mut out = s.stdout.take().context("stdout")?;
        let mut got = String::new();
        stdin.write_all(b"echo B$((1+1))\n").await?;
        read_until(&mut out, "B2\r\n", &mut got).await?;
        stdin.write_all(b"exit 7\n").await?;
        assert_eq!(exit_of(s).await?, 7);
        Ok(())
    })
}

#[test]
fn stdin_once_closes_stdin_after_the_first_attach_session() -> Result<()> {
    if skip() {
        return Ok(());
    }
    let f = Fixture::new()?;
    // Without a terminal: the container reads EOF when the first session's input ends.
    let io = Io {
        stdin: true,
        stdin_once: true,
        ..Default::default()
    };
    let h = f.start_with(
        "once",
        &[
            "sh",
            "-c",
            "while read l; do echo \"o:$l\"; done; echo eof; exit 4",
        ],
        io,
    )?;
    let log = f.log_path("once");
    let req = StreamRequest {
        stdin: true,
        stdout: true,
        ..Default::default()
    };
    // An attach without stdin is not the session that closes it.
    block_on(async {
        let s = exec::attach(
            &h,
            &log,
            StreamRequest {
                stdout: true,
                ..Default::default()
            },
        )
        .await?;
        drop(s);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut s = exec::attach(&h, &log, req.clone()).await?;
        let mut stdin = s.stdin.take().context("stdin")?;
        let mut out = s.stdout.take().context("stdout")?;
        let mut got = String::new();
        stdin.write_all(b"one\n").await?;
        read_until(&mut out, "o:one\n", &mut got).await?;
        drop(stdin);
        read_until(&mut out, "eof\n", &mut got).await?;
        assert_eq!(got, "o:one\neof\n");
        assert_eq!(exit_of(s).await?, 4);
        Ok(())
    })?;
    assert!(h.stdin_path().is_none(), "the stdin FIFO is gone");

    // With a terminal (as conmon, and containerd, which closes stdin only without one):
    // the terminal stays open, the container runs on, later sessions get no stdin.
    let io = Io {
        stdin: true,
        stdin_once: true,
        terminal: true,
    };
    let h = f.start_with("ttyonce", &["sh"], io)?;
    let log = f.log_path("ttyonce");
    wait_for_log(&log, "# ")?;
    let req = StreamRequest { tty: true, ..req };
    block_on(async {
        let mut s = exec::attach(&h, &log, req.clone()).await?;
        let mut stdin = s.stdin.take().context("stdin")?;
        let mut out = s.stdout.take().context("stdout")?;
        let mut got = String::new();
        stdin.write_all(b"echo C$((2+3))\n").await?;
        read_until(&mut out, "C5\r\n", &mut got).await?;
        drop((stdin, out, s));
        let deadline = Instant::now() + Duration::from_secs(10);
        while h.stdin_path().is_some() {
            if Instant::now() > deadline {
                bail!("stdin was not closed after the first session");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let s = exec::attach(&h, &log, req).await?;
        assert!(s.stdin.is_none(), "a second session got a stdin");
        Ok(())
    })?;
    assert!(matches!(h.status(), monitor::ContainerStatus::Running(_)));
    h.stop(Duration::from_millis(200))?;
    Ok(())
}
