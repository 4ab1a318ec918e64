//! End to end, as root: the real kubectl's `logs`, `exec`, `cp`, `attach` and
//! `port-forward` against
//! `skiff server` with its own real node: the API server proxies each to the node's
//! kubelet (TLS both ways: the API server's kubelet client certificate, the kubelet's
//! serving certificate from the cluster CA), which reads the CRI log files, runs the
//! command in the container, or connects to the pod's port; and containers with a
//! terminal (`kubectl run -it`, `kubectl attach -it`).
//!
//! The tests take turns (`NODE`): each starts a node, and nodes use the host's `cni0`
//! bridge and pod range.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use common::realnode::{run_cleanly, skip_reason};
use common::{wait_for, Cluster, KUBECTL};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: stream}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: docker.io/skiff/demo-web:v1
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "echo hello-from-logs; echo line2; exec httpd -f -p 8080 -h /www"]
    ports:
    - containerPort: 8080
  - name: side
    image: docker.io/skiff/demo-web:v1
    imagePullPolicy: IfNotPresent
    # Its stdin is open for `kubectl attach -i`: it echoes what it reads.
    stdin: true
    command: ["sh", "-c", "echo side-says-hi; exec cat"]
"#;

/// One node at a time in this binary.
static NODE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_exec_and_port_forward_reach_real_containers() -> Result<()> {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    let _turn = NODE.lock().await;
    run_cleanly(|data| async move { scenario(&data).await }).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_run_it_and_attach_it_give_a_terminal() -> Result<()> {
    if let Some(why) = skip_reason() {
        eprintln!("skipped: {why}");
        return Ok(());
    }
    let _turn = NODE.lock().await;
    run_cleanly(|data| async move { tty_scenario(&data).await }).await
}

/// `command` (a shell line using kubectl) run under `script`, which gives it a terminal.
fn script(c: &Cluster, command: &str) -> Result<(String, String, i32)> {
    let out = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env("KUBECONFIG", &c.kubeconfig)
        .env("HOME", c.dir.path())
        .stdin(Stdio::null())
        .output()
        .context("running script (util-linux)")?;
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    ))
}

/// kubectl's stdout, stderr and exit code.
fn run(c: &Cluster, args: &[&str], stdin: Option<&str>) -> Result<(String, String, i32)> {
    let out = c.kubectl_output(args, stdin)?;
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    ))
}

async fn scenario(data: &Path) -> Result<()> {
    let c = common::realnode::start(data, "stream-node").await?;
    c.kubectl_stdin(&["apply", "-f", "-"], Some(POD))?;
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());
    wait_for("pod web Running", Duration::from_secs(90), || {
        let pods = pods.clone();
        async move {
            let p = pods.get("web").await?;
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            Ok(running.then_some(()))
        }
    })
    .await?;

    // logs: the default container (kubectl picks the first and says so), then options.
    let logs = wait_for("the container's log", Duration::from_secs(10), || async {
        let (out, err, code) = run(&c, &["logs", "web"], None)?;
        if code != 0 {
            bail!("kubectl logs: {err}");
        }
        Ok(out.contains("line2").then_some(out))
    })
    .await?;
    assert_eq!(logs, "hello-from-logs\nline2\n");
    assert_eq!(c.kubectl(&["logs", "web", "-c", "side"])?, "side-says-hi\n");
    assert_eq!(
        c.kubectl(&["logs", "web", "-c", "web", "--tail=1"])?,
        "line2\n"
    );
    let stamped = c.kubectl(&["logs", "web", "-c", "web", "--timestamps"])?;
    let first = stamped.lines().next().unwrap_or("");
    let (stamp, line) = first.split_once(' ').context("a timestamped line")?;
    assert!(
        // RFC 3339 with nanoseconds, as upstream: 2026-12-07T11:40:00.123456789Z.
        stamp.len() == 30
            && stamp.as_bytes()[10] == b'T'
            && stamp.ends_with('Z')
            && line == "hello-from-logs",
        "{stamped}"
    );
    assert_eq!(
        c.kubectl(&["logs", "web", "-c", "web", "--limit-bytes=5"])?,
        "hello"
    );
    let (_, err, code) = run(&c, &["logs", "web", "-c", "nope"], None)?;
    assert_ne!(code, 0);
    assert!(
        err.contains("container nope is not valid for pod web"),
        "{err}"
    );
    let (_, err, code) = run(&c, &["logs", "web", "-c", "web", "--previous"], None)?;
    assert_ne!(code, 0);
    assert!(
        err.contains("previous terminated container \"web\" in pod \"web\" not found"),
        "{err}"
    );

    // kubectl asks for each container's log (in its map's order, which varies).
    let all = c.kubectl(&["logs", "web", "--all-containers"])?;
    let mut lines: Vec<&str> = all.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["hello-from-logs", "line2", "side-says-hi"], "{all}");
    assert_eq!(
        c.kubectl(&["logs", "-l", "app=stream", "-c", "web", "--since=1h"])?,
        "hello-from-logs\nline2\n"
    );

    // logs -f: lines arrive as written (the stream is not held back by compression).
    let mut follow = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .env("HOME", c.dir.path())
        .args(["logs", "-f", "web", "-c", "web"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = follow.stdout.take().context("kubectl's stdout")?;
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            lines.push(line);
            if lines.len() == 2 {
                break;
            }
        }
        lines
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !reader.is_finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let finished = reader.is_finished();
    // Following never ends by itself: the container runs on.
    let still_following = follow.try_wait()?.is_none();
    let _ = follow.kill();
    let _ = follow.wait();
    if !finished {
        bail!("kubectl logs -f printed nothing within 20 s");
    }
    let lines = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))?;
    assert_eq!(lines, ["hello-from-logs", "line2"]);
    assert!(
        still_following,
        "kubectl logs -f ended while the container runs"
    );

    // exec: output streams and the exit code.
    let (out, err, code) = run(
        &c,
        &[
            "exec",
            "web",
            "-c",
            "web",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        None,
    )?;
    assert_eq!((out.as_str(), code), ("out\n", 3), "stderr: {err}");
    assert!(err.contains("err"), "{err}");
    let (out, _, code) = run(&c, &["exec", "web", "-c", "web", "--", "hostname"], None)?;
    assert_eq!((out.as_str(), code), ("web\n", 0));
    // -i: stdin reaches the command, its end ends it.
    let (out, err, code) = run(
        &c,
        &["exec", "-i", "web", "-c", "web", "--", "cat"],
        Some("piped through\n"),
    )?;
    assert_eq!(
        (out.as_str(), code),
        ("piped through\n", 0),
        "stderr: {err}"
    );
    let (_, err, code) = run(&c, &["exec", "web", "-c", "nope", "--", "ls"], None)?;
    assert_ne!(code, 0);
    assert!(
        err.contains("container nope is not valid for pod web"),
        "{err}"
    );
    let (_, err, code) = run(
        &c,
        &["exec", "web", "-c", "web", "--", "/no/such/binary"],
        None,
    )?;
    assert_ne!(code, 0, "{err}");

    // exec -it: a terminal of the client's size (kubectl sends it on the resize channel).
    let (out, err, code) = script(
        &c,
        "stty cols 123 rows 45; kubectl exec -it web -c web -- sh -c 'sleep 1; stty size; tty'",
    )?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("45 123"), "{out}");
    assert!(out.contains("/dev/pts/"), "{out}");

    // cp: tar over exec, both ways.
    let local = data.join("to-pod.txt");
    std::fs::write(&local, "copied into the pod\n")?;
    c.kubectl(&[
        "cp",
        &local.to_string_lossy(),
        "web:/tmp/in.txt",
        "-c",
        "web",
    ])?;
    let (out, _, _) = run(
        &c,
        &["exec", "web", "-c", "web", "--", "cat", "/tmp/in.txt"],
        None,
    )?;
    assert_eq!(out, "copied into the pod\n");
    let back = data.join("from-pod.txt");
    c.kubectl(&[
        "cp",
        "web:/tmp/in.txt",
        &back.to_string_lossy(),
        "-c",
        "web",
    ])?;
    assert_eq!(std::fs::read_to_string(&back)?, "copied into the pod\n");

    // attach -i: stdin reaches the container's own process (cat), its output comes back.
    let mut attach = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .env("HOME", c.dir.path())
        .args(["attach", "-i", "web", "-c", "side"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = attach.stdin.take().context("kubectl's stdin")?;
    let stdout = attach.stdout.take().context("kubectl's stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Written until echoed: the stream may not be attached yet when the first line goes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut echoed = false;
    while !echoed && Instant::now() < deadline {
        use std::io::Write;
        stdin.write_all(b"hello-attach\n")?;
        stdin.flush()?;
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            echoed = line == "hello-attach";
        }
    }
    let _ = attach.kill();
    let _ = attach.wait();
    assert!(
        echoed,
        "kubectl attach -i: the container did not echo stdin"
    );

    // port-forward: kubectl picks a local port and relays connections to the pod's 8080.
    let mut forward = Command::new(KUBECTL)
        .arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .env("HOME", c.dir.path())
        .args(["port-forward", "pod/web", ":8080"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = forward.stdout.take().context("kubectl's stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // `Forwarding from 127.0.0.1:41234 -> 8080`
            if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
                if let Some((port, _)) = rest.split_once(' ') {
                    let _ = tx.send(port.to_owned());
                }
            }
        }
    });
    let port = rx.recv_timeout(Duration::from_secs(20));
    let answers = match &port {
        Ok(port) => {
            let port: u16 = port.parse()?;
            let mut bodies = Vec::new();
            // Two connections, one after the other, over the same forwarding session.
            for _ in 0..2 {
                bodies.push(common::realnode::http_get("127.0.0.1", port));
            }
            bodies
        }
        Err(_) => Vec::new(),
    };
    let _ = forward.kill();
    let output = forward.wait_with_output()?;
    if port.is_err() {
        bail!(
            "kubectl port-forward did not start forwarding: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for body in answers {
        let body = body.with_context(|| {
            format!(
                "GET through the forwarded port; kubectl said: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
        assert!(body.contains("Hello from a pod on skiff"), "{body}");
    }

    c.kubectl(&["delete", "pod", "web", "--wait=true"])?;
    Ok(())
}

/// `command` under `script` (a terminal) with `input` typed once kubectl says it is
/// attached ("If you don't see a command prompt"); its output (the terminal's: stdout and
/// stderr together) and exit code. Bounded in time.
fn interactive(c: &Cluster, command: &str, input: &str) -> Result<(String, i32)> {
    use std::io::{Read, Write};
    let mut child = Command::new("script")
        .args(["-qec", command, "/dev/null"])
        .env("KUBECONFIG", &c.kubeconfig)
        .env("HOME", c.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running script (util-linux)")?;
    let mut stdin = child.stdin.take().context("script's stdin")?;
    let mut stdout = child.stdout.take().context("script's stdout")?;
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut out = String::new();
    let mut typed = false;
    let code = loop {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(100)) {
            out.push_str(&String::from_utf8_lossy(&chunk));
        }
        if !typed && out.contains("If you don't see a command prompt") {
            stdin.write_all(input.as_bytes())?;
            stdin.flush()?;
            typed = true;
        }
        if let Some(status) = child.try_wait()? {
            while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
                out.push_str(&String::from_utf8_lossy(&chunk));
            }
            break status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            bail!("{command}: no end within 90 s; output {out:?}; stderr {err:?}");
        }
    };
    drop(stdin);
    Ok((out, code))
}

const TTY_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: tty
spec:
  terminationGracePeriodSeconds: 1
  restartPolicy: Never
  containers:
  - name: tty
    image: docker.io/skiff/demo-web:v1
    imagePullPolicy: IfNotPresent
    stdin: true
    tty: true
    command: ["sh"]
"#;

async fn tty_scenario(data: &Path) -> Result<()> {
    let c = common::realnode::start(data, "tty-node").await?;
    let pods: Api<Pod> = Api::default_namespaced(c.client.clone());

    // kubectl attach -it to a running tty pod (its image imported first), then its log.
    // (kubectl sends the size plus one, then the size, to force a redraw: the input
    // waits a second so that `stty size` sees the second.)
    c.kubectl_stdin(&["apply", "-f", "-"], Some(TTY_POD))?;
    wait_for("pod tty Running", Duration::from_secs(90), || {
        let pods = pods.clone();
        async move {
            let p = pods.get("tty").await?;
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            Ok(running.then_some(()))
        }
    })
    .await?;
    let (out, code) = interactive(
        &c,
        "stty cols 99 rows 33; kubectl attach -it tty",
        "sleep 1; stty size; echo at-$((2+2)); exit 0\n",
    )?;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("33 99"), "{out}");
    assert!(out.contains("at-4"), "{out}");
    // The terminal's output is the container's log: stdout, lines as the terminal wrote
    // them (`\r\n`).
    let logs = wait_for(
        "the tty container's log",
        Duration::from_secs(20),
        || async {
            let (out, err, code) = run(&c, &["logs", "tty"], None)?;
            if code != 0 {
                bail!("kubectl logs: {err}");
            }
            Ok(out.contains("at-4").then_some(out))
        },
    )
    .await?;
    assert!(logs.contains("at-4\r\n"), "{logs:?}");
    assert!(logs.contains("33 99\r\n"), "{logs:?}");
    wait_for("pod tty Succeeded", Duration::from_secs(30), || {
        let pods = pods.clone();
        async move {
            let p = pods.get("tty").await?;
            let done = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded");
            Ok(done.then_some(()))
        }
    })
    .await?;
    c.kubectl(&["delete", "pod", "tty", "--wait=true"])?;

    // kubectl run -it --rm: the pod has stdin, stdinOnce and tty; kubectl attaches with
    // the terminal's size, the shell runs what is typed, and the pod is deleted after.
    // (Typed text the shell echoes; `$((..))` shows only in its output. `--command`: the
    // demo image's entrypoint is httpd.)
    let (out, code) = interactive(
        &c,
        "stty cols 123 rows 45; kubectl run -it --rm t --image=docker.io/skiff/demo-web:v1 \
         --restart=Never --command -- sh",
        "sleep 1; stty size; tty; echo hi-$((40+2)); exit\n",
    )?;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("45 123"),
        "the terminal size did not reach the container: {out}"
    );
    assert!(out.contains("/dev/pts/"), "{out}");
    assert!(out.contains("hi-42"), "{out}");
    assert!(out.contains("pod \"t\" deleted"), "{out}");
    wait_for("pod t gone", Duration::from_secs(30), || {
        let pods = pods.clone();
        async move { Ok(pods.get_opt("t").await?.is_none().then_some(())) }
    })
    .await?;

    Ok(())
}
