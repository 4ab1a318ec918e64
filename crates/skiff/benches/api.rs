//! The API server benchmark: the release `skiff server` binary driven over HTTPS by a Rust
//! load generator (so the client is not the bottleneck), on this machine:
//!
//! - start to `/readyz` 200, with an empty data dir and with 10,000 pods stored;
//! - ConfigMap creates/s with 64 concurrent clients (a lean HTTP/1.1-over-TLS load generator
//!   on hyper, and the CPU each side used per create), p50/p99, next to the embedded
//!   datastore's own puts/s with 64 writers (what the API layer costs);
//! - LIST of 10,000 pods as JSON and as a Table (p50);
//! - server RSS idle and with 10,000 pods;
//! - watch fan-out: 500 watchers on pods, delivery latency of an update (p50/p99);
//! - one watcher of ConfigMaps while 64 clients create them at full speed: whether the
//!   watch cache's single dispatcher keeps up (every create delivered, none cut off) and
//!   the delivery latency (`SKIFF_BENCH_ONLY=storm`).
//!
//! `cargo bench -p skiff --bench api` (`SKIFF_BENCH_DIR`, default /var/tmp;
//! `SKIFF_BENCH_SERVER=PATH` measures another `skiff` binary, for an A/B of two builds;
//! `SKIFF_BENCH_ONLY=creates|ratio|floor|fanout|apply|lists|storm` runs one measure alone, for
//! profiling). The pods' measures (lists, RSS with pods, restarts, fan-out, storm) run on a
//! second server with a data dir of its own, so the creates' ConfigMaps are not in them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde_json::json;

struct Server {
    child: Child,
    url: String,
    port: u16,
}

impl Server {
    /// Stops the server as `systemctl stop` would (SIGTERM) and waits for it to exit.
    fn stop(mut self) -> Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed: {status}");
        }
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts the server and returns it with the time until `/readyz` answered 200.
async fn start(dir: &Path) -> Result<(Server, Duration)> {
    let port = free_port()?;
    let started = Instant::now();
    // `SKIFF_BENCH_SERVER`: another `skiff` binary to measure (an A/B of two builds).
    let bin = std::env::var_os("SKIFF_BENCH_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_skiff")));
    let child = Command::new(bin)
        .args([
            "server",
            // The control plane only: no real node runs the bench's pods.
            "--disable-agent",
            "--disable-dns",
            "--bind-address",
            "127.0.0.1",
            "--https-port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let server = Server {
        child,
        url: format!("https://127.0.0.1:{port}"),
        port,
    };
    let probe = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()?;
    loop {
        if let Ok(r) = probe.get(format!("{}/readyz", server.url)).send().await {
            if r.status().is_success() {
                return Ok((server, started.elapsed()));
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            bail!("server not ready after 30 s");
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
}

fn client(dir: &Path) -> Result<reqwest::Client> {
    let tls = dir.join("server/tls");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(tls.join("ca.crt"))?)?;
    let mut pem = std::fs::read(tls.join("admin.crt"))?;
    pem.extend(std::fs::read(tls.join("admin.key"))?);
    Ok(reqwest::Client::builder()
        .add_root_certificate(ca)
        .identity(reqwest::Identity::from_pem(&pem)?)
        // One HTTP/1.1 connection per concurrent client: with 64 streams on one HTTP/2
        // connection the client's h2 stack gives up with GOAWAY(too_many_internal_resets)
        // (under investigation; kubectl never runs that many streams at once).
        .http1_only()
        .pool_max_idle_per_host(600)
        .build()?)
}

fn rss_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

/// CPU time (user + system) a process has used so far, in seconds (`pid`: a number or
/// `self`).
fn cpu_secs(pid: &str) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at state, field 3.
    let rest = stat.rsplit_once(')').context("no command name")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<f64> { Ok(fields.get(i).context("short stat")?.parse()?) };
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state; 100 ticks/s.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// The TLS settings of a lean client: the cluster CA and the admin client certificate.
fn tls_config(dir: &Path) -> Result<Arc<rustls::ClientConfig>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let tls = dir.join("server/tls");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(tls.join("ca.crt"))?)?;
    let chain = vec![CertificateDer::from_pem_file(tls.join("admin.crt"))?];
    let key = PrivateKeyDer::from_pem_file(tls.join("admin.key"))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// One kept-alive HTTP/1.1 connection over TLS, as a client library would hold it, without
/// the library: the load generator's own CPU per request stays small, so on a machine it
/// shares with the server it takes as little from the server as it can.
async fn lean_connection(
    tls: Arc<rustls::ClientConfig>,
    port: u16,
) -> Result<hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?.to_owned();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

struct Creates {
    per_sec: f64,
    p50: f64,
    p99: f64,
    /// CPU time (user + system) per create of the server and of this process.
    server_us: f64,
    client_us: f64,
}

/// The creates measure: 64 clients for 5 s, with the CPU both sides used.
async fn measure_creates(dir: &Path, server: &Server) -> Result<Creates> {
    let mark = CpuMark::now(server)?;
    let t = Instant::now();
    let (per_sec, p50, p99) = create_configmaps(dir, server.port, 64, 5.0).await?;
    let (server_us, client_us) = mark.per_request(per_sec * t.elapsed().as_secs_f64())?;
    Ok(Creates {
        per_sec,
        p50,
        p99,
        client_us,
        server_us,
    })
}

/// The CPU time the server and this process had used at some moment.
struct CpuMark {
    pid: String,
    server: f64,
    client: f64,
}

impl CpuMark {
    fn now(server: &Server) -> Result<Self> {
        let pid = server.child.id().to_string();
        Ok(Self {
            server: cpu_secs(&pid)?,
            client: cpu_secs("self")?,
            pid,
        })
    }

    /// The CPU per request since the mark over `n` requests, in us: (server, this process).
    fn per_request(&self, n: f64) -> Result<(f64, f64)> {
        Ok((
            (cpu_secs(&self.pid)? - self.server) / n * 1e6,
            (cpu_secs("self")? - self.client) / n * 1e6,
        ))
    }
}

/// ConfigMap creates by `clients` concurrent clients for `secs`: (creates/s, p50, p99 ms).
async fn create_configmaps(
    dir: &Path,
    port: u16,
    clients: usize,
    secs: f64,
) -> Result<(f64, f64, f64)> {
    let (all, elapsed) = create_configmaps_stamped(dir, port, clients, secs, "cm", None).await?;
    Ok((
        all.len() as f64 / elapsed.as_secs_f64(),
        ms(&all, 0.5),
        ms(&all, 0.99),
    ))
}

/// ConfigMaps `{prefix}-{client}-{i}` created by `clients` concurrent clients for `secs`,
/// each annotated `sent` with the microseconds since `stamp` when it was sent (if given):
/// the latency histogram of the creates and how long they took.
async fn create_configmaps_stamped(
    dir: &Path,
    port: u16,
    clients: usize,
    secs: f64,
    prefix: &'static str,
    stamp: Option<Instant>,
) -> Result<(Histogram<u64>, Duration)> {
    let data = "v".repeat(200);
    let request = move |w: usize, i: u64| {
        let annotations = match stamp {
            Some(base) => format!(
                r#","annotations":{{"sent":"{}"}}"#,
                base.elapsed().as_micros()
            ),
            None => String::new(),
        };
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{prefix}-{w}-{i}"{annotations}}},"data":{{"k":"{data}"}}}}"#
        );
        http::Request::post("/api/v1/namespaces/default/configmaps")
            .header(http::header::HOST, "127.0.0.1")
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(http::header::ACCEPT, "application/json")
            .body(http_body_util::Full::new(Bytes::from(body)))
    };
    drive(dir, port, clients, secs, request, http::StatusCode::CREATED).await
}

type Body = http_body_util::Full<Bytes>;

/// `clients` lean connections sending `request(client, i)` one after another for `secs`,
/// each answer expected to be `expect`: the latency histogram and how long it took.
async fn drive(
    dir: &Path,
    port: u16,
    clients: usize,
    secs: f64,
    request: impl Fn(usize, u64) -> http::Result<http::Request<Body>> + Clone + Send + 'static,
    expect: http::StatusCode,
) -> Result<(Histogram<u64>, Duration)> {
    use http_body_util::BodyExt;
    let tls = tls_config(dir)?;
    let mut senders = Vec::with_capacity(clients);
    for _ in 0..clients {
        senders.push(lean_connection(tls.clone(), port).await?);
    }
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let tasks = senders.into_iter().enumerate().map(|(w, mut sender)| {
        let request = request.clone();
        tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            let mut i = 0;
            while Instant::now() < deadline {
                let request = request(w, i)?;
                let t = Instant::now();
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let status = response.status();
                response.into_body().collect().await?;
                if status != expect {
                    bail!("{expect} expected, answered {status}");
                }
                h.record(t.elapsed().as_micros() as u64)?;
                i += 1;
            }
            Ok::<_, anyhow::Error>(h)
        })
    });
    let mut all = Histogram::<u64>::new(3)?;
    for h in futures::future::join_all(tasks).await {
        all.add(h??)?;
    }
    Ok((all, start.elapsed()))
}

/// The HTTP floor: `GET /healthz` (no handler work, no store) by 64 lean clients for 3 s,
/// what the HTTPS stack alone costs on this machine: (requests/s, CPU per request of the
/// server and of this process in us).
async fn http_floor(dir: &Path, server: &Server) -> Result<(f64, f64, f64)> {
    let mark = CpuMark::now(server)?;
    let request = |_: usize, _: u64| {
        http::Request::get("/healthz")
            .header(http::header::HOST, "127.0.0.1")
            .body(Body::new(Bytes::new()))
    };
    let (h, elapsed) = drive(dir, server.port, 64, 3.0, request, http::StatusCode::OK).await?;
    let n = h.len() as f64;
    let (server_us, client_us) = mark.per_request(n)?;
    Ok((n / elapsed.as_secs_f64(), server_us, client_us))
}

/// What one watcher of ConfigMaps sees while 64 clients create them as fast as the server
/// takes them: whether it gets every create (the watch cache's single dispatcher keeping up,
/// not cut off for falling behind) and how late (p50/p99 ms from send to delivery).
struct Storm {
    creates_per_sec: f64,
    created: u64,
    delivered: u64,
    p50: f64,
    p99: f64,
}

async fn watch_under_storm(c: &reqwest::Client, dir: &Path, server: &Server) -> Result<Storm> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let url = &server.url;
    let rv = list_revision(c, &format!("{url}/api/v1/namespaces/default/configmaps")).await?;
    let base = Instant::now();
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let resp = c
        .get(format!(
            "{url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}"
        ))
        .send()
        .await?;
    let watcher = tokio::spawn({
        let expected = expected.clone();
        async move {
            let mut h = Histogram::<u64>::new(3)?;
            let mut stream = resp.bytes_stream();
            let mut buf = Vec::new();
            let mut seen = 0u64;
            while seen < expected.load(Ordering::Acquire) {
                let Ok(chunk) = tokio::time::timeout(Duration::from_secs(1), stream.next()).await
                else {
                    continue; // idle: check whether everything arrived
                };
                let Some(chunk) = chunk else { break }; // the server ended the watch
                buf.extend_from_slice(&chunk?);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let ev: serde_json::Value = serde_json::from_slice(&line)?;
                    if ev["type"] != "ADDED" {
                        continue;
                    }
                    if let Some(sent) = ev["object"]["metadata"]["annotations"]["sent"].as_str() {
                        let sent: u64 = sent.parse()?;
                        h.record((base.elapsed().as_micros() as u64).saturating_sub(sent))?;
                        seen += 1;
                    }
                }
            }
            Ok::<_, anyhow::Error>((seen, h))
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (creates, elapsed) =
        create_configmaps_stamped(dir, server.port, 64, 5.0, "storm", Some(base)).await?;
    expected.store(creates.len(), Ordering::Release);
    let (delivered, h) = tokio::time::timeout(Duration::from_secs(60), watcher)
        .await
        .context("the watcher did not finish within 60 s")???;
    Ok(Storm {
        creates_per_sec: creates.len() as f64 / elapsed.as_secs_f64(),
        created: creates.len(),
        delivered,
        p50: ms(&h, 0.5),
        p99: ms(&h, 0.99),
    })
}

/// The embedded store's own durable puts by `writers` tasks in this process for `secs`:
/// (puts/s, CPU per put in us, the whole process: the store's writer thread and the tasks).
async fn raw_store_puts(dir: &Path, writers: usize, secs: f64) -> Result<(f64, f64)> {
    use skiff_store::{EmbeddedConfig, EmbeddedStore, Store};
    let mut config = EmbeddedConfig::new(dir);
    config.compaction_interval = None;
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(config)?);
    let cpu = cpu_secs("self")?;
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let tasks = (0..writers).map(|w| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                store
                    .create(&format!("/raw/{w}/{n}"), Bytes::from(vec![b'v'; 400]))
                    .await?;
                n += 1;
            }
            Ok::<_, anyhow::Error>(n)
        })
    });
    let mut total = 0;
    for n in futures::future::join_all(tasks).await {
        total += n??;
    }
    let cpu_us = (cpu_secs("self")? - cpu) / total as f64 * 1e6;
    Ok((total as f64 / start.elapsed().as_secs_f64(), cpu_us))
}

fn pod(i: usize) -> serde_json::Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("pod-{i:05}"), "labels": {"app": "bench", "shard": (i % 10).to_string()}},
        "spec": {"containers": [{"name": "c", "image": "busybox:latest", "command": ["sleep", "3600"],
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}})
}

async fn create_pods(c: &reqwest::Client, url: &str, n: usize) -> Result<()> {
    let tasks = (0..64).map(|w| {
        let (c, url) = (c.clone(), url.to_owned());
        tokio::spawn(async move {
            for i in (w..n).step_by(64) {
                let r = c
                    .post(format!("{url}/api/v1/namespaces/default/pods"))
                    .json(&pod(i))
                    .send()
                    .await?;
                if r.status().as_u16() != 201 {
                    bail!(
                        "pod create answered {}: {}",
                        r.status(),
                        r.text().await.unwrap_or_default()
                    );
                }
            }
            Ok::<_, anyhow::Error>(())
        })
    });
    for r in futures::future::join_all(tasks).await {
        r??;
    }
    Ok(())
}

async fn list_p50(c: &reqwest::Client, url: &str, table: bool) -> Result<f64> {
    let mut times = Vec::new();
    for _ in 0..9 {
        let mut req = c.get(format!("{url}/api/v1/namespaces/default/pods"));
        if table {
            req = req.header(
                "Accept",
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
            );
        }
        let t = Instant::now();
        let body = req.send().await?.bytes().await?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        let v: serde_json::Value = serde_json::from_slice(&body)?;
        let n = v
            .get("items")
            .or_else(|| v.get("rows"))
            .and_then(|i| i.as_array())
            .map_or(0, Vec::len);
        if n < 10_000 {
            bail!("list returned {n} items");
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// The resourceVersion of a one-item list of `collection` (where a watch starts).
async fn list_revision(c: &reqwest::Client, collection: &str) -> Result<String> {
    let list: serde_json::Value = c
        .get(format!("{collection}?limit=1"))
        .send()
        .await?
        .json()
        .await?;
    Ok(list["metadata"]["resourceVersion"]
        .as_str()
        .context("no resourceVersion")?
        .to_owned())
}

async fn watch_fanout(c: &reqwest::Client, url: &str, watchers: usize) -> Result<(f64, f64)> {
    let rv = list_revision(c, &format!("{url}/api/v1/namespaces/default/pods")).await?;
    let base = Instant::now();
    let updates = 20;
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let resp = c
            .get(format!("{url}/api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&fieldSelector=metadata.name=pod-00000"))
            .send()
            .await?;
        tasks.push(tokio::spawn(async move {
            let mut h = Histogram::<u64>::new(3)?;
            let mut stream = resp.bytes_stream();
            let mut buf = Vec::new();
            let mut seen = 0;
            while seen < updates {
                let chunk = stream.next().await.context("watch ended")??;
                buf.extend_from_slice(&chunk);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let ev: serde_json::Value = serde_json::from_slice(&line)?;
                    if let Some(sent) = ev["object"]["metadata"]["annotations"]["sent"].as_str() {
                        let sent: u64 = sent.parse()?;
                        h.record((base.elapsed().as_micros() as u64).saturating_sub(sent))?;
                        seen += 1;
                    }
                }
            }
            Ok::<_, anyhow::Error>(h)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..updates {
        let sent = base.elapsed().as_micros().to_string();
        let patch = json!({"metadata": {"annotations": {"sent": sent}}});
        let r = c
            .patch(format!("{url}/api/v1/namespaces/default/pods/pod-00000"))
            .header("Content-Type", "application/merge-patch+json")
            .body(patch.to_string())
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("patch answered {}", r.status());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut all = Histogram::<u64>::new(3)?;
    for h in futures::future::join_all(tasks).await {
        all.add(h??)?;
    }
    Ok((ms(&all, 0.5), ms(&all, 0.99)))
}

/// Client-side apply's round trip, as kubectl makes it: GET the live object, then PATCH a
/// strategic merge patch (one image changed, with `$setElementOrder`). Answers p50 and p99 (ms).
async fn apply_round_trips(c: &reqwest::Client, url: &str, n: usize) -> Result<(f64, f64)> {
    let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "applied"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "applied"}},
                 "template": {"metadata": {"labels": {"app": "applied"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox:0"}]}}}});
    let base = format!("{url}/apis/apps/v1/namespaces/default/deployments");
    let r = c.post(&base).json(&deploy).send().await?;
    if r.status().as_u16() != 201 {
        bail!("deployment create answered {}", r.status());
    }
    let mut h = Histogram::<u64>::new(3)?;
    let mut gets = Histogram::<u64>::new(3)?;
    for i in 0..n {
        let t = Instant::now();
        let got = c.get(format!("{base}/applied")).send().await?;
        if !got.status().is_success() {
            bail!("get answered {}", got.status());
        }
        let _live: serde_json::Value = got.json().await?;
        gets.record(t.elapsed().as_micros() as u64)?;
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "c"}],
            "containers": [{"name": "c", "image": format!("busybox:{}", i + 1)}]}}}});
        let r = c
            .patch(format!(
                "{base}/applied?fieldManager=kubectl-client-side-apply&fieldValidation=Strict"
            ))
            .header("Content-Type", "application/strategic-merge-patch+json")
            .body(patch.to_string())
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "patch answered {}: {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        r.bytes().await?;
        h.record(t.elapsed().as_micros() as u64)?;
    }
    eprintln!(
        "apply round trips: GET p50 {:.2} ms, GET + PATCH p50 {:.2} ms",
        ms(&gets, 0.5),
        ms(&h, 0.5)
    );
    Ok((ms(&h, 0.5), ms(&h, 0.99)))
}

fn main() -> Result<()> {
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(());
    }
    let parent =
        PathBuf::from(std::env::var("SKIFF_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let dir = tempfile::Builder::new()
            .prefix("skiff-apibench-")
            .tempdir_in(&parent)?;
        let (server, ready_empty) = start(dir.path()).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss_idle = rss_kb(server.child.id())?;
        let c = client(dir.path())?;
        // `SKIFF_BENCH_ONLY=creates|ratio|floor|fanout|apply|lists|storm`: that measure alone (for
        // profiling; `ratio` is the creates and the raw store's puts); `SKIFF_BENCH_KEEP=1` with `creates` or `lists` keeps the data dir.
        let only = std::env::var("SKIFF_BENCH_ONLY").ok();
        match only.as_deref() {
            None => {}
            Some("creates") => {
                let cm = measure_creates(dir.path(), &server).await?;
                println!("creates: {:.0}/s p50 {:.2} ms p99 {:.2} ms; CPU per create: server {:.0} us, load generator {:.0} us", cm.per_sec, cm.p50, cm.p99, cm.server_us, cm.client_us);
                if std::env::var_os("SKIFF_BENCH_KEEP").is_some() {
                    // For timing a start with the ConfigMaps stored.
                    server.stop()?;
                    eprintln!("data dir kept: {}", dir.keep().display());
                }
                return Ok(());
            }
            Some("ratio") => {
                let cm = measure_creates(dir.path(), &server).await?;
                drop(server);
                let raw_dir = tempfile::Builder::new()
                    .prefix("skiff-apibench-raw-")
                    .tempdir_in(&parent)?;
                let (raw, raw_us) = raw_store_puts(raw_dir.path(), 64, 5.0).await?;
                println!("creates: {:.0}/s (server {:.0} us, load generator {:.0} us per create); raw store puts: {raw:.0}/s ({raw_us:.0} us per put); API / raw {:.0}%", cm.per_sec, cm.server_us, cm.client_us, cm.per_sec / raw * 100.0);
                return Ok(());
            }
            Some("floor") => {
                let (rate, server_us, client_us) = http_floor(dir.path(), &server).await?;
                println!("GET /healthz: {rate:.0}/s; CPU per request: server {server_us:.0} us, load generator {client_us:.0} us");
                return Ok(());
            }
            Some("storm") => {
                let st = watch_under_storm(&c, dir.path(), &server).await?;
                println!("watch under a write storm: {:.0} creates/s, {} of {} delivered, p50 {:.2} ms p99 {:.2} ms", st.creates_per_sec, st.delivered, st.created, st.p50, st.p99);
                return Ok(());
            }
            Some("fanout") => {
                create_pods(&c, &server.url, 1_000).await?;
                let (w50, w99) = watch_fanout(&c, &server.url, 500).await?;
                println!("watch fan-out, 500 watchers: update delivery p50 {w50:.2} ms p99 {w99:.2} ms");
                return Ok(());
            }
            Some("apply") => {
                let (apply50, apply99) = apply_round_trips(&c, &server.url, 2000).await?;
                println!("client-side apply round trip p50 {apply50:.2} ms p99 {apply99:.2} ms");
                return Ok(());
            }
            Some("lists") => {
                create_pods(&c, &server.url, 10_000).await?;
                if std::env::var_os("SKIFF_BENCH_KEEP").is_some() {
                    // For profiling a start with 10,000 pods stored.
                    eprintln!("data dir kept: {}", dir.keep().display());
                    return Ok(());
                }
                let list_json = list_p50(&c, &server.url, false).await?;
                let list_table = list_p50(&c, &server.url, true).await?;
                let rss = rss_kb(server.child.id())? as f64 / 1024.0;
                println!("LIST JSON p50 {list_json:.1} ms, Table p50 {list_table:.1} ms, RSS {rss:.1} MB");
                return Ok(());
            }
            Some(other) => {
                bail!("SKIFF_BENCH_ONLY={other}: expected creates, ratio, floor, fanout, apply, lists or storm")
            }
        }
        let (floor, floor_server, floor_client) = http_floor(dir.path(), &server).await?;
        let cm = measure_creates(dir.path(), &server).await?;
        let (creates, p50, p99) = (cm.per_sec, cm.p50, cm.p99);
        eprintln!("creates: {creates:.0}/s p50 {p50:.2} ms p99 {p99:.2} ms");
        let (apply50, apply99) = apply_round_trips(&c, &server.url, 500).await?;
        server.stop()?;
        // The pods' measures on a data dir of their own: the creates above stored tens of
        // thousands of ConfigMaps (more, the faster the machine), which would otherwise be
        // in the RSS and the restarts measured "with 10,000 pods".
        let dir = tempfile::Builder::new()
            .prefix("skiff-apibench-pods-")
            .tempdir_in(&parent)?;
        let (server, _) = start(dir.path()).await?;
        let c = client(dir.path())?;
        create_pods(&c, &server.url, 10_000).await?;
        let list_json = list_p50(&c, &server.url, false).await?;
        let list_table = list_p50(&c, &server.url, true).await?;
        let rss_pods = rss_kb(server.child.id())?;
        // The restarts with the pods stored, before the storm below adds tens of thousands
        // more objects: after a clean stop, and after a kill, as a crash would leave it (the
        // store checks its whole file at every open, and replays its log after a kill).
        server.stop()?;
        let (server, ready_pods) = start(dir.path()).await?;
        drop(server);
        let (server, ready_pods_killed) = start(dir.path()).await?;
        let (w50, w99) = watch_fanout(&c, &server.url, 500).await?;
        let storm = watch_under_storm(&c, dir.path(), &server).await?;
        drop(server);
        let raw_dir = tempfile::Builder::new()
            .prefix("skiff-apibench-raw-")
            .tempdir_in(&parent)?;
        let (raw, raw_us) = raw_store_puts(raw_dir.path(), 64, 5.0).await?;

        println!("| measure | skiff | goal |");
        println!("|---|---|---|");
        println!(
            "| start to /readyz 200, empty data dir | {} ms | <= 300 ms |",
            ready_empty.as_millis()
        );
        println!(
            "| start to /readyz 200, 10,000 pods stored, after a clean stop / after a kill | {} / {} ms | <= 300 ms |",
            ready_pods.as_millis(),
            ready_pods_killed.as_millis()
        );
        println!("| ConfigMap creates/s, 64 clients | {creates:.0} | >= 5,000 |");
        println!("| create latency p50 / p99 (ms) | {p50:.2} / {p99:.2} | p99 <= 50 ms |");
        println!(
            "| CPU per create: server / load generator | {:.0} / {:.0} us | |",
            cm.server_us, cm.client_us
        );
        println!("| embedded store puts/s, 64 writers (same machine); CPU per put | {raw:.0}; {raw_us:.0} us | |");
        println!(
            "| HTTP floor: GET /healthz, 64 clients: requests/s; CPU per request server / load generator | {floor:.0}; {floor_server:.0} / {floor_client:.0} us | |"
        );
        println!(
            "| API creates / raw store puts | {:.0}% | >= 50% |",
            creates / raw * 100.0
        );
        println!(
            "| client-side apply round trip (GET + strategic PATCH) p50 / p99 | {apply50:.2} / {apply99:.2} ms | < 2 ms |"
        );
        println!("| LIST 10,000 pods as JSON, p50 | {list_json:.1} ms | <= 100 ms |");
        println!("| LIST 10,000 pods as Table, p50 | {list_table:.1} ms | <= 150 ms |");
        println!(
            "| RSS idle | {:.1} MB | <= 40 MB |",
            rss_idle as f64 / 1024.0
        );
        println!(
            "| RSS with 10,000 pods (after lists and watches) | {:.1} MB | <= 200 MB |",
            rss_pods as f64 / 1024.0
        );
        println!(
            "| watch fan-out, 500 watchers: update delivery p50 / p99 | {w50:.2} / {w99:.2} ms | |"
        );
        println!(
            "| one watcher during a create storm (64 clients, {:.0} creates/s): delivered / created, p50 / p99 | {} / {}, {:.2} / {:.2} ms | all delivered |",
            storm.creates_per_sec, storm.delivered, storm.created, storm.p50, storm.p99
        );
        Ok(())
    })
}
