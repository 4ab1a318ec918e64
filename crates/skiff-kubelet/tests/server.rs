//! The kubelet's HTTPS server over RecordingRuntime (in-memory streams), driven by a TLS
//! client with the API server's kubelet client certificate: authentication, container logs
//! (every option, follow until exit, upstream's errors), exec over WebSocket v5 and v4
//! (stdout/stderr, stdin and its close, exit code statuses, resize), attach, and
//! port-forward over SPDY/3.1, SPDY tunneled in WebSocket and WebSocket v4 channels (a SPDY
//! client written here on the crate's codec; RecordingRuntime's loopback connections as the
//! pod's ports, one of them refused).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use skiff_kubelet::server::{self, KUBELET_CLIENT_CN};
use skiff_runtime::container::spec::ContainerConfig;
use skiff_runtime::cri::{ContainerMeta, PodRuntime};
use skiff_runtime::image::manifest::ImageConfig;
use skiff_runtime::testing::RecordingRuntime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const STEP: Duration = Duration::from_secs(10);

struct Pki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "skiff-test-ca");
        let cert = params.self_signed(&key)?;
        let ca_pem = cert.pem();
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, key)?;
        Ok(Self { ca_pem, issuer })
    }

    fn issue(&self, cn: &str, groups: &[&str], sans: &[&str]) -> Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, cn);
        for g in groups {
            params.distinguished_name.push(DnType::OrganizationName, *g);
        }
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

struct Fixture {
    rt: Arc<RecordingRuntime>,
    addr: std::net::SocketAddr,
    pki: Pki,
    dir: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn meta(name: &str, attempt: u32, log: &std::path::Path) -> ContainerMeta {
    ContainerMeta {
        pod_uid: "uid-1".into(),
        pod_name: "web".into(),
        pod_namespace: "default".into(),
        sandbox_id: "sb".into(),
        name: name.into(),
        attempt,
        log_path: log.to_owned(),
        ..ContainerMeta::default()
    }
}

impl Fixture {
    async fn new() -> Result<Self> {
        let pki = Pki::new()?;
        let (cert, key) = pki.issue("node-1", &[], &["localhost", "127.0.0.1"])?;
        let tls = server::tls_config(cert.as_bytes(), key.as_bytes(), pki.ca_pem.as_bytes())?;
        let rt = Arc::new(RecordingRuntime::new());
        let image = RecordingRuntime::image("busybox", ImageConfig::default());
        rt.add_image(image.clone());
        let dir = tempfile::tempdir()?;
        // app: attempt 0 exited, attempt 1 running.
        for (id, attempt) in [("app0", 0), ("app1", 1)] {
            let log = dir.path().join(format!("app-{attempt}.log"));
            rt.create_container(id, &image, meta("app", attempt, &log))
                .await?;
            rt.start_container(
                id,
                &ContainerConfig {
                    id: id.into(),
                    ..Default::default()
                },
            )
            .await?;
        }
        rt.exit("app0", 1);
        std::fs::write(
            dir.path().join("app-0.log"),
            "2026-01-01T00:00:00.000000000Z stdout F previous run\n",
        )?;
        std::fs::write(
            dir.path().join("app-1.log"),
            "2026-01-01T00:00:01.000000000Z stdout F one\n\
             2026-01-01T00:00:02.000000000Z stderr F two\n\
             2026-01-01T00:00:03.000000000Z stdout F three\n",
        )?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let runtime: Arc<dyn PodRuntime> = rt.clone();
        let server = tokio::spawn(server::serve_on(listener, Arc::new(tls), runtime));
        Ok(Self {
            rt,
            addr,
            pki,
            dir,
            server,
        })
    }

    async fn connect(&self, client: Option<(&str, &[&str])>) -> Result<TlsStream<TcpStream>> {
        let config = self.client_config(client)?;
        let tcp = TcpStream::connect(self.addr).await?;
        let conn = tokio_rustls::TlsConnector::from(config);
        Ok(conn
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?)
    }

    fn client_config(&self, client: Option<(&str, &[&str])>) -> Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.pki.ca_pem.as_bytes()) {
            roots.add(c?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match client {
            Some((cn, groups)) => {
                let (cert, key) = self.pki.issue(cn, groups, &[])?;
                let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()?;
                builder
                    .with_client_auth_cert(certs, PrivateKeyDer::from_pem_slice(key.as_bytes())?)?
            }
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }

    /// A GET as the API server; the status and the whole body.
    async fn get_as(&self, client: Option<(&str, &[&str])>, path: &str) -> Result<(u16, String)> {
        let tls = self.connect(client).await?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
        tokio::spawn(conn);
        let req = http::Request::get(path)
            .header("host", "localhost")
            .body(Empty::<bytes::Bytes>::new())?;
        let resp = tokio::time::timeout(STEP, send.send_request(req)).await??;
        let status = resp.status().as_u16();
        let body = tokio::time::timeout(STEP, resp.into_body().collect()).await??;
        Ok((
            status,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        ))
    }

    async fn get(&self, path: &str) -> Result<(u16, String)> {
        self.get_as(Some((KUBELET_CLIENT_CN, &[])), path).await
    }

    async fn ws(
        &self,
        path: &str,
        proto: &str,
    ) -> Result<tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>> {
        let tls = self.connect(Some((KUBELET_CLIENT_CN, &[]))).await?;
        let mut req = format!("wss://localhost{path}").into_client_request()?;
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", proto.parse()?);
        let (ws, resp) = tokio_tungstenite::client_async(req, tls).await?;
        let got = resp
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        anyhow::ensure!(got.as_deref() == Some(proto), "negotiated {got:?}");
        Ok(ws)
    }
}

/// Reads messages until the status channel; returns (stdout, stderr, status JSON).
async fn collect(
    ws: &mut tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>,
) -> Result<(String, String, serde_json::Value)> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    for _ in 0..1000 {
        let msg = tokio::time::timeout(STEP, ws.next())
            .await?
            .context("stream ended before the status")??;
        let Message::Binary(data) = msg else { continue };
        match data.split_first() {
            Some((1, d)) => out.extend_from_slice(d),
            Some((2, d)) => err.extend_from_slice(d),
            Some((3, d)) => {
                return Ok((
                    String::from_utf8(out)?,
                    String::from_utf8(err)?,
                    serde_json::from_slice(d)?,
                ))
            }
            _ => {}
        }
    }
    anyhow::bail!("no status in 1000 messages")
}

#[tokio::test]
async fn authentication_and_routes() -> Result<()> {
    let f = Fixture::new().await?;
    let logs = "/containerLogs/default/web/app";
    assert_eq!(f.get_as(None, logs).await?.0, 401);
    assert_eq!(
        f.get_as(Some(("alice", &["developers"])), logs).await?.0,
        403
    );
    assert_eq!(
        f.get_as(Some(("admin", &["system:masters"])), logs)
            .await?
            .0,
        200
    );
    assert_eq!(f.get("/nope").await?.0, 404);
    Ok(())
}

#[tokio::test]
async fn container_logs_options_and_errors() -> Result<()> {
    let f = Fixture::new().await?;
    let base = "/containerLogs/default/web/app";
    assert_eq!(f.get(base).await?, (200, "one\ntwo\nthree\n".to_owned()));
    assert_eq!(f.get(&format!("{base}?tailLines=1")).await?.1, "three\n");
    assert_eq!(
        f.get(&format!("{base}?timestamps=true&tailLines=1"))
            .await?
            .1,
        "2026-01-01T00:00:03.000000000Z three\n"
    );
    assert_eq!(
        f.get(&format!("{base}?sinceTime=2026-01-01T00:00:02Z"))
            .await?
            .1,
        "two\nthree\n"
    );
    assert_eq!(f.get(&format!("{base}?limitBytes=6")).await?.1, "one\ntw");
    assert_eq!(
        f.get(&format!("{base}?previous=true")).await?.1,
        "previous run\n"
    );
    assert_eq!(f.get(&format!("{base}?tailLines=-1")).await?.0, 400);
    assert_eq!(
        f.get("/containerLogs/default/web/other").await?,
        (
            400,
            "container \"other\" in pod \"web\" is waiting to start: ContainerCreating".to_owned()
        )
    );
    assert_eq!(f.get("/containerLogs/default/nope/app").await?.0, 404);
    Ok(())
}

#[tokio::test]
async fn follow_streams_appends_until_the_container_exits() -> Result<()> {
    let f = Fixture::new().await?;
    let tls = f.connect(Some((KUBELET_CLIENT_CN, &[]))).await?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let req = http::Request::get("/containerLogs/default/web/app?follow=true&tailLines=1")
        .header("host", "localhost")
        .body(Empty::<bytes::Bytes>::new())?;
    let resp = tokio::time::timeout(STEP, send.send_request(req)).await??;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = String::new();
    while !got.contains("three\n") {
        let frame = tokio::time::timeout(STEP, body.frame())
            .await?
            .context("ended early")??;
        if let Ok(d) = frame.into_data() {
            got.push_str(&String::from_utf8_lossy(&d));
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(f.dir.path().join("app-1.log"))?;
    use std::io::Write;
    file.write_all(b"2026-01-01T00:00:04.000000000Z stdout F four\n")?;
    while !got.contains("four\n") {
        let frame = tokio::time::timeout(STEP, body.frame())
            .await?
            .context("ended early")??;
        if let Ok(d) = frame.into_data() {
            got.push_str(&String::from_utf8_lossy(&d));
        }
    }
    assert_eq!(got, "three\nfour\n");
    // The container exits: the stream drains and ends.
    file.write_all(b"2026-01-01T00:00:05.000000000Z stdout F last\n")?;
    f.rt.exit("app1", 0);
    let mut ended = false;
    for _ in 0..100 {
        match tokio::time::timeout(STEP, body.frame()).await? {
            None => {
                ended = true;
                break;
            }
            Some(frame) => {
                if let Ok(d) = frame?.into_data() {
                    got.push_str(&String::from_utf8_lossy(&d));
                }
            }
        }
    }
    assert!(ended, "the follow did not end after the exit");
    assert_eq!(got, "three\nfour\nlast\n");
    Ok(())
}

#[tokio::test]
async fn exec_v5_stdout_stderr_and_exit_codes() -> Result<()> {
    let f = Fixture::new().await?;
    let mut ws = f
        .ws(
            "/exec/default/web/app?command=sh&command=-c&command=exit%203&stdout=true&stderr=true",
            "v5.channel.k8s.io",
        )
        .await?;
    let mut h = f.rt.next_stream(STEP).await.context("no exec session")?;
    if let Some(o) = h.stdout.as_mut() {
        o.write_all(b"to stdout").await?;
    }
    if let Some(e) = h.stderr.as_mut() {
        e.write_all(b"to stderr").await?;
    }
    h.finish(3);
    let (out, err, status) = collect(&mut ws).await?;
    assert_eq!((out.as_str(), err.as_str()), ("to stdout", "to stderr"));
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(
        status["details"]["causes"],
        serde_json::json!([{"reason": "ExitCode", "message": "3"}])
    );

    let mut ws = f
        .ws(
            "/exec/default/web/app?command=true&stdout=true",
            "v4.channel.k8s.io",
        )
        .await?;
    let mut h = f.rt.next_stream(STEP).await.context("no exec session")?;
    h.finish(0);
    let (_, _, status) = collect(&mut ws).await?;
    assert_eq!(
        status,
        serde_json::json!({"metadata": {}, "status": "Success"})
    );
    Ok(())
}

#[tokio::test]
async fn exec_stdin_close_and_resize() -> Result<()> {
    let f = Fixture::new().await?;
    let mut ws = f
        .ws(
            "/exec/default/web/app?command=sh&stdin=true&stdout=true&tty=true",
            "v5.channel.k8s.io",
        )
        .await?;
    let mut h = f.rt.next_stream(STEP).await.context("no exec session")?;
    ws.send(Message::Binary(
        b"\x04{\"Width\":120,\"Height\":40}".to_vec().into(),
    ))
    .await?;
    let size = tokio::time::timeout(STEP, h.resize.as_mut().context("no resize")?.recv())
        .await?
        .context("resize channel closed")?;
    assert_eq!((size.width, size.height), (120, 40));
    ws.send(Message::Binary(b"\x00echo hi\n".to_vec().into()))
        .await?;
    ws.send(Message::Binary(b"\xff\x00".to_vec().into()))
        .await?;
    let mut input = Vec::new();
    tokio::time::timeout(
        STEP,
        h.stdin
            .as_mut()
            .context("no stdin")?
            .read_to_end(&mut input),
    )
    .await??;
    assert_eq!(input, b"echo hi\n");
    h.finish(0);
    let (_, _, status) = collect(&mut ws).await?;
    assert_eq!(status["status"], "Success");
    Ok(())
}

#[tokio::test]
async fn attach_and_refusals() -> Result<()> {
    let f = Fixture::new().await?;
    let mut ws = f
        .ws(
            "/attach/default/web/app?stdout=true&stderr=true",
            "v5.channel.k8s.io",
        )
        .await?;
    let mut h = f.rt.next_stream(STEP).await.context("no attach session")?;
    assert!(format!("{:?}", h.kind).contains("Attach"));
    if let Some(o) = h.stdout.as_mut() {
        o.write_all(b"attached").await?;
    }
    h.finish(0);
    let (out, _, status) = collect(&mut ws).await?;
    assert_eq!(out, "attached");
    assert_eq!(status["status"], "Success");
    // No stream asked for, no such container, an unknown subprotocol.
    assert_eq!(f.get("/exec/default/web/app?command=ls").await?.0, 400);
    assert!(f
        .ws(
            "/exec/default/web/nope?command=ls&stdout=1",
            "v5.channel.k8s.io"
        )
        .await
        .is_err());
    assert!(f
        .ws(
            "/exec/default/web/app?command=ls&stdout=1",
            "channel.k8s.io"
        )
        .await
        .is_err());
    Ok(())
}

// --- port-forward -----------------------------------------------------------------------

use bytes::BytesMut;
use skiff_kubelet::server::spdy::{self, Decoder, Encoder, Frame, Headers};
use skiff_runtime::sandbox::files::{DnsInput, DnsPolicy};
use skiff_runtime::sandbox::SandboxConfig;
use skiff_runtime::testing::{PortForwardHandle, StreamKind};

const SANDBOX: &str = "sb-web";

/// The pod `default/web` gets a ready sandbox.
async fn with_sandbox(f: &Fixture) -> Result<()> {
    sandbox_for(f, SANDBOX, "web").await
}

async fn sandbox_for(f: &Fixture, id: &str, pod: &str) -> Result<()> {
    f.rt.run_sandbox(SandboxConfig {
        id: id.into(),
        pod_name: pod.into(),
        pod_namespace: "default".into(),
        pod_uid: "uid-1".into(),
        hostname: "web".into(),
        host_network: false,
        host_ipc: false,
        share_pid: false,
        port_mappings: vec![],
        domain: None,
        host_aliases: vec![],
        node_hosts: String::new(),
        dns: DnsInput {
            policy: DnsPolicy::ClusterFirst,
            host_network: false,
            namespace: "default".into(),
            cluster_dns: vec![],
            cluster_domain: "cluster.local".into(),
            host_resolv_conf: None,
            dns_config: None,
        },
    })
    .await?;
    Ok(())
}

enum Wire {
    Tls(Box<TlsStream<TcpStream>>),
    /// SPDY tunneled in WebSocket; each frame is sent split over two messages.
    Ws(Box<tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>>),
}

/// A SPDY/3.1 client end (kubectl's role) that records what the kubelet sends.
struct SpdyClient {
    wire: Wire,
    enc: Encoder,
    dec: Decoder,
    buf: BytesMut,
    replied: std::collections::BTreeSet<u32>,
    fin: std::collections::BTreeSet<u32>,
    reset: std::collections::BTreeSet<u32>,
    data: std::collections::BTreeMap<u32, Vec<u8>>,
    pings: Vec<u32>,
}

impl SpdyClient {
    fn new(wire: Wire) -> Result<Self> {
        Ok(SpdyClient {
            wire,
            enc: Encoder::new()?,
            dec: Decoder::new(),
            buf: BytesMut::new(),
            replied: Default::default(),
            fin: Default::default(),
            reset: Default::default(),
            data: Default::default(),
            pings: Vec::new(),
        })
    }

    async fn send(&mut self, frame: Frame) -> Result<()> {
        let mut out = Vec::new();
        self.enc.encode(&frame, &mut out)?;
        match &mut self.wire {
            Wire::Tls(s) => s.write_all(&out).await?,
            Wire::Ws(ws) => {
                let (a, b) = out.split_at(out.len() / 2);
                ws.send(Message::Binary(a.to_vec().into())).await?;
                ws.send(Message::Binary(b.to_vec().into())).await?;
            }
        }
        Ok(())
    }

    async fn open(&mut self, id: u32, kind: &str, port: u16, request: &str) -> Result<()> {
        self.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            headers: Headers::default()
                .with("streamtype", kind)
                .with("port", &port.to_string())
                .with("requestid", request),
        })
        .await
    }

    async fn write(&mut self, id: u32, bytes: &[u8], fin: bool) -> Result<()> {
        self.send(Frame::Data {
            stream_id: id,
            flags: if fin { spdy::FLAG_FIN } else { 0 },
            data: bytes::Bytes::copy_from_slice(bytes),
        })
        .await
    }

    /// Reads frames until `done(self)` holds.
    async fn until(&mut self, what: &str, done: impl Fn(&Self) -> bool) -> Result<()> {
        for _ in 0..10_000 {
            if done(self) {
                return Ok(());
            }
            if let Some(f) = self.dec.decode(&mut self.buf)? {
                match f {
                    Frame::SynReply { stream_id, .. } => {
                        self.replied.insert(stream_id);
                    }
                    Frame::Data {
                        stream_id,
                        flags,
                        data,
                    } => {
                        self.data
                            .entry(stream_id)
                            .or_default()
                            .extend_from_slice(&data);
                        if flags & spdy::FLAG_FIN != 0 {
                            self.fin.insert(stream_id);
                        }
                    }
                    Frame::RstStream { stream_id, .. } => {
                        self.reset.insert(stream_id);
                    }
                    Frame::Ping { id } => self.pings.push(id),
                    _ => {}
                }
                continue;
            }
            match &mut self.wire {
                Wire::Tls(s) => {
                    let n = tokio::time::timeout(STEP, s.read_buf(&mut self.buf))
                        .await
                        .with_context(|| format!("waiting for {what}"))??;
                    anyhow::ensure!(n > 0, "connection ended waiting for {what}");
                }
                Wire::Ws(ws) => {
                    let msg = tokio::time::timeout(STEP, ws.next())
                        .await
                        .with_context(|| format!("waiting for {what}"))?
                        .with_context(|| format!("connection ended waiting for {what}"))??;
                    match msg {
                        Message::Binary(d) => self.buf.extend_from_slice(&d),
                        Message::Close(_) => anyhow::bail!("closed waiting for {what}"),
                        _ => {}
                    }
                }
            }
        }
        anyhow::bail!("no {what} in 10000 frames")
    }

    fn text(&self, id: u32) -> String {
        String::from_utf8_lossy(self.data.get(&id).map(Vec::as_slice).unwrap_or_default())
            .into_owned()
    }
}

/// The port-forward connections the runtime handed out, by port.
async fn forwards(f: &Fixture, n: usize) -> Result<Vec<PortForwardHandle>> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(
            f.rt.next_port_forward(STEP)
                .await
                .context("no port-forward dial")?,
        );
    }
    got.sort_by_key(|h| h.port);
    Ok(got)
}

/// kubectl's use of one connection: two forwarded connections at once (request ids 0 and
/// 1), data both ways, a client half-close, the pod's side closing first, a port nothing
/// listens on, a stream without a port, a ping.
async fn port_forward_session(f: &Fixture, c: &mut SpdyClient) -> Result<()> {
    // Both pairs are opened before either is used; error streams first, as kubectl.
    c.open(1, "error", 8080, "0").await?;
    c.open(3, "data", 8080, "0").await?;
    c.open(5, "error", 9090, "1").await?;
    c.open(7, "data", 9090, "1").await?;
    for id in [1, 5] {
        c.write(id, b"", true).await?; // kubectl closes its side of the error streams
    }
    c.until("the replies", |c| {
        [1, 3, 5, 7].iter().all(|i| c.replied.contains(i))
    })
    .await?;
    let mut h = forwards(f, 2).await?;
    assert_eq!(
        h.iter()
            .map(|h| (h.sandbox_id.as_str(), h.port))
            .collect::<Vec<_>>(),
        [(SANDBOX, 8080), (SANDBOX, 9090)]
    );
    c.write(3, b"ping 8080", false).await?;
    c.write(7, b"ping 9090", false).await?;
    for h in h.iter_mut() {
        let mut got = [0u8; 9];
        tokio::time::timeout(STEP, h.conn.read_exact(&mut got)).await??;
        assert_eq!(got, format!("ping {}", h.port).as_bytes());
        h.conn
            .write_all(format!("pong {}", h.port).as_bytes())
            .await?;
    }
    c.until("both answers", |c| {
        c.text(3) == "pong 8080" && c.text(7) == "pong 9090"
    })
    .await?;
    let (mut h8080, h9090) = (h.remove(0), h.remove(0));

    // The client is done with 8080: the pod's connection sees EOF; when it closes, both
    // streams end and nothing came on the error stream.
    c.write(3, b"", true).await?;
    let mut rest = Vec::new();
    tokio::time::timeout(STEP, h8080.conn.read_to_end(&mut rest)).await??;
    assert!(rest.is_empty());
    drop(h8080);
    c.until("8080's ends", |c| c.fin.contains(&3) && c.fin.contains(&1))
        .await?;
    assert_eq!(c.text(1), "");

    // 9090's pod side closes first: its data stream ends, then the error stream.
    drop(h9090);
    c.until("9090's data end", |c| c.fin.contains(&7)).await?;
    c.write(7, b"", true).await?;
    c.until("9090's error end", |c| c.fin.contains(&5)).await?;
    assert_eq!(c.text(5), "");

    // Nothing listens on 9999: the error stream says so (kubectl prints "an error occurred
    // forwarding 9999 -> 9999: " and this).
    f.rt.refuse_port(9999);
    c.open(9, "error", 9999, "2").await?;
    c.open(11, "data", 9999, "2").await?;
    c.until("9999's ends", |c| c.fin.contains(&9) && c.fin.contains(&11))
        .await?;
    let msg = c.text(9);
    assert!(
        msg.starts_with(&format!(
            "error forwarding port 9999 to pod {SANDBOX}, uid : failed to connect to localhost:9999 inside namespace"
        )),
        "{msg}"
    );
    assert!(msg.contains("connection refused"), "{msg}");

    // A stream without a port is reset; a ping is answered with its id.
    c.send(Frame::SynStream {
        stream_id: 13,
        associated_to: 0,
        priority: 0,
        slot: 0,
        flags: 0,
        headers: Headers::default().with("streamtype", "data"),
    })
    .await?;
    c.send(Frame::Ping { id: 7 }).await?;
    c.until("the reset and the pong", |c| {
        c.reset.contains(&13) && c.pings.contains(&7)
    })
    .await?;
    assert!(!c.replied.contains(&13));
    Ok(())
}

/// Sends a raw HTTP/1.1 request head and reads the response head.
async fn raw_request(tls: &mut TlsStream<TcpStream>, head: &str) -> Result<String> {
    tls.write_all(head.as_bytes()).await?;
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        anyhow::ensure!(got.len() < 16 * 1024, "response head too long");
        let n = tokio::time::timeout(STEP, tls.read(&mut byte)).await??;
        anyhow::ensure!(n == 1, "connection ended in the response head");
        got.push(byte[0]);
    }
    Ok(String::from_utf8(got)?.to_ascii_lowercase())
}

#[tokio::test]
async fn port_forward_over_spdy() -> Result<()> {
    let f = Fixture::new().await?;
    with_sandbox(&f).await?;
    let mut tls = f.connect(Some((KUBELET_CLIENT_CN, &[]))).await?;
    let head = raw_request(
        &mut tls,
        "POST /portForward/default/web HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
         Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\
         Content-Length: 0\r\n\r\n",
    )
    .await?;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: spdy/3.1\r\n"), "{head}");
    assert!(head.contains("connection: upgrade\r\n"), "{head}");
    assert!(
        head.contains("x-stream-protocol-version: portforward.k8s.io\r\n"),
        "{head}"
    );
    let mut c = SpdyClient::new(Wire::Tls(Box::new(tls)))?;
    port_forward_session(&f, &mut c).await
}

#[tokio::test]
async fn port_forward_spdy_tunneled_in_websocket() -> Result<()> {
    let f = Fixture::new().await?;
    with_sandbox(&f).await?;
    // kubectl v1.32's default: GET with the tunneling subprotocol.
    let ws = f
        .ws("/portForward/default/web", "SPDY/3.1+portforward.k8s.io")
        .await?;
    let mut c = SpdyClient::new(Wire::Ws(Box::new(ws)))?;
    port_forward_session(&f, &mut c).await?;
    if let Wire::Ws(ws) = &mut c.wire {
        // WebSocket pings are answered under the tunnel.
        ws.send(Message::Ping(b"tunnel".to_vec().into())).await?;
        let mut ponged = false;
        for _ in 0..100 {
            if let Message::Pong(p) = next_message(ws).await? {
                ponged = &p[..] == b"tunnel";
                break;
            }
        }
        assert!(ponged, "no pong");
        // A normal close ends the tunnel.
        ws.send(Message::Close(None)).await?;
        for _ in 0..100 {
            match tokio::time::timeout(STEP, ws.next()).await? {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            }
        }
    }
    Ok(())
}

async fn next_message(
    ws: &mut tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>,
) -> Result<Message> {
    Ok(tokio::time::timeout(STEP, ws.next())
        .await?
        .context("websocket ended")??)
}

#[tokio::test]
async fn port_forward_over_websocket_channels() -> Result<()> {
    let f = Fixture::new().await?;
    with_sandbox(&f).await?;
    f.rt.refuse_port(9999);
    let mut ws = f
        .ws(
            "/portForward/default/web?ports=8080,9999",
            "v4.channel.k8s.io",
        )
        .await?;
    let mut h = forwards(&f, 1).await?.remove(0);
    assert_eq!(h.port, 8080);
    let mut by_channel: std::collections::BTreeMap<u8, Vec<Vec<u8>>> = Default::default();
    // Every channel opens with its port (little-endian); 9999's error channel then says
    // why.
    while by_channel.get(&3).map_or(0, Vec::len) < 2 || by_channel.len() < 4 {
        let Message::Binary(d) = next_message(&mut ws).await? else {
            continue;
        };
        let (&ch, payload) = d.split_first().context("empty message")?;
        by_channel.entry(ch).or_default().push(payload.to_vec());
    }
    assert_eq!(by_channel[&0], [8080u16.to_le_bytes().to_vec()]);
    assert_eq!(by_channel[&1], [8080u16.to_le_bytes().to_vec()]);
    assert_eq!(by_channel[&2], [9999u16.to_le_bytes().to_vec()]);
    assert_eq!(by_channel[&3][0], 9999u16.to_le_bytes().to_vec());
    let msg = String::from_utf8(by_channel[&3][1].clone())?;
    assert!(
        msg.starts_with(&format!(
            "error forwarding port 9999 to pod {SANDBOX}, uid : "
        )),
        "{msg}"
    );
    // Data channel 0 is 8080's connection both ways.
    ws.send(Message::Binary(b"\x00hello".to_vec().into()))
        .await?;
    let mut got = [0u8; 5];
    tokio::time::timeout(STEP, h.conn.read_exact(&mut got)).await??;
    assert_eq!(&got, b"hello");
    h.conn.write_all(b"world").await?;
    let mut answer = Vec::new();
    while answer != b"world" {
        if let Message::Binary(d) = next_message(&mut ws).await? {
            anyhow::ensure!(d.first() == Some(&0), "unexpected message {d:?}");
            answer.extend_from_slice(&d[1..]);
        }
    }
    // The pod's side closes: every port is done, so the WebSocket closes.
    drop(h);
    let mut closed = false;
    for _ in 0..100 {
        match tokio::time::timeout(STEP, ws.next()).await? {
            None | Some(Ok(Message::Close(_))) => {
                closed = true;
                break;
            }
            Some(Err(e)) => anyhow::bail!("{e}"),
            Some(Ok(_)) => {}
        }
    }
    assert!(closed, "the websocket was not closed");
    Ok(())
}

#[tokio::test]
async fn port_forward_refusals() -> Result<()> {
    let f = Fixture::new().await?;
    with_sandbox(&f).await?;
    let spdy_head = |path: &str, version: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\
             Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {version}\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    let status = |head: &str| head.get(9..12).unwrap_or_default().to_owned();
    let mut tls = f.connect(Some((KUBELET_CLIENT_CN, &[]))).await?;
    let head = raw_request(
        &mut tls,
        &spdy_head("/portForward/default/nope", "portforward.k8s.io"),
    )
    .await?;
    assert_eq!(status(&head), "404", "{head}");
    let mut tls = f.connect(Some((KUBELET_CLIENT_CN, &[]))).await?;
    let head = raw_request(
        &mut tls,
        &spdy_head("/portForward/default/web/other-uid", "portforward.k8s.io"),
    )
    .await?;
    assert_eq!(status(&head), "404", "{head}");
    let mut tls = f.connect(Some((KUBELET_CLIENT_CN, &[]))).await?;
    let head = raw_request(
        &mut tls,
        &spdy_head("/portForward/default/web", "v4.channel.k8s.io"),
    )
    .await?;
    assert_eq!(status(&head), "403", "{head}");
    assert!(
        head.contains("x-accepted-stream-protocol-versions: portforward.k8s.io"),
        "{head}"
    );
    // A pod whose only sandbox is not ready (its namespace is gone).
    sandbox_for(&f, "sb-down", "down").await?;
    f.rt.set_sandbox_not_ready("sb-down");
    let mut tls = f.connect(Some((KUBELET_CLIENT_CN, &[]))).await?;
    let head = raw_request(
        &mut tls,
        &spdy_head("/portForward/default/down", "portforward.k8s.io"),
    )
    .await?;
    assert_eq!(status(&head), "500", "{head}");
    // No upgrade at all; a channel WebSocket without ports.
    assert_eq!(f.get("/portForward/default/web").await?.0, 400);
    assert!(f
        .ws("/portForward/default/web", "v4.channel.k8s.io")
        .await
        .is_err());
    // The base64 channel protocol is negotiated.
    let mut ws = f
        .ws(
            "/portForward/default/web?port=1",
            "v4.base64.channel.k8s.io",
        )
        .await?;
    let Message::Text(first) = next_message(&mut ws).await? else {
        anyhow::bail!("not a text message");
    };
    assert_eq!(first.as_str(), "0AQA=", "channel 0, port 1 little-endian");
    // The uid form reaches the same pod.
    let mut tls = f.connect(Some((KUBELET_CLIENT_CN, &[]))).await?;
    let head = raw_request(
        &mut tls,
        &spdy_head("/portForward/default/web/uid-1", "portforward.k8s.io"),
    )
    .await?;
    assert_eq!(status(&head), "101", "{head}");
    Ok(())
}

// --- the real kubectl through a stand-in API server ----------------------------------------

/// Reads an HTTP/1.1 request or response head (through the blank line, nothing more).
async fn read_head<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Result<String> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        anyhow::ensure!(got.len() < 64 * 1024, "head too long");
        anyhow::ensure!(
            s.read(&mut byte).await? == 1,
            "connection ended in the head"
        );
        got.push(byte[0]);
    }
    Ok(String::from_utf8(got)?)
}

/// What the stand-in answers kubectl with: discovery, a Running pod `default/web`, and
/// `pods/web/{portforward,exec,attach}` spliced byte for byte to the kubelet as
/// `/portForward/default/web`, `/exec/default/web/<container>`, ... (what skiff's API server
/// proxy does). Records each proxied request's Upgrade header.
async fn stand_in_request(
    mut tcp: TcpStream,
    kubelet: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    upgrades: Arc<std::sync::Mutex<Vec<String>>>,
) -> Result<()> {
    let head = read_head(&mut tcp).await?;
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default().to_owned();
    let mut parts = first.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let container = form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| "app".into());
    let kubelet_path = match path.strip_prefix("/api/v1/namespaces/default/pods/web/") {
        Some("portforward") => Some("/portForward/default/web".to_owned()),
        Some(sub @ ("exec" | "attach")) => Some(format!("/{sub}/default/web/{container}")),
        _ => None,
    };
    if let Some(kubelet_path) = kubelet_path {
        let upgrade = lines
            .clone()
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(k, _)| k.eq_ignore_ascii_case("upgrade"))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default();
        if let Ok(mut u) = upgrades.lock() {
            u.push(upgrade);
        }
        let mut out = format!(
            "{method} {kubelet_path}{}{query} HTTP/1.1\r\n",
            if query.is_empty() { "" } else { "?" }
        );
        for l in lines.filter(|l| !l.is_empty()) {
            if !l.to_ascii_lowercase().starts_with("host:") {
                out.push_str(l);
                out.push_str("\r\n");
            }
        }
        out.push_str("Host: localhost\r\n\r\n");
        let conn = tokio_rustls::TlsConnector::from(tls);
        let mut up = conn
            .connect(
                ServerName::try_from("localhost")?,
                TcpStream::connect(kubelet).await?,
            )
            .await?;
        up.write_all(out.as_bytes()).await?;
        tokio::io::copy_bidirectional(&mut tcp, &mut up).await?;
        return Ok(());
    }
    let (status, body) = match path {
        "/version" => (
            200,
            r#"{"major":"1","minor":"32","gitVersion":"v1.32.0+skiff","platform":"linux/amd64"}"#,
        ),
        "/api" => (
            200,
            r#"{"kind":"APIVersions","versions":["v1"],"serverAddressByClientCIDRs":[{"clientCIDR":"0.0.0.0/0","serverAddress":"127.0.0.1"}]}"#,
        ),
        "/apis" => (
            200,
            r#"{"kind":"APIGroupList","apiVersion":"v1","groups":[]}"#,
        ),
        "/api/v1" => (
            200,
            r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"v1","resources":[{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod","verbs":["get","list"],"shortNames":["po"]},{"name":"pods/portforward","singularName":"","namespaced":true,"kind":"PodPortForwardOptions","verbs":["create","get"]}]}"#,
        ),
        "/api/v1/namespaces/default/pods/web" => (
            200,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"default","uid":"uid-1"},"spec":{"containers":[{"name":"app","image":"busybox"}]},"status":{"phase":"Running"}}"#,
        ),
        _ => (
            404,
            r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#,
        ),
    };
    let resp = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(resp.as_bytes()).await?;
    tcp.shutdown().await?;
    Ok(())
}

struct StandIn {
    kubeconfig: std::path::PathBuf,
    upgrades: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn stand_in(f: &Fixture) -> Result<StandIn> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let tls = f.client_config(Some((KUBELET_CLIENT_CN, &[])))?;
    let kubelet = f.addr;
    let upgrades = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = upgrades.clone();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (tls, upgrades) = (tls.clone(), recorded.clone());
            tokio::spawn(async move {
                let _ = stand_in_request(tcp, kubelet, tls, upgrades).await;
            });
        }
    });
    let kubeconfig = f.dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://{addr}\n\
             users:\n- name: u\n  user: {{}}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n\
             current-context: c\n"
        ),
    )?;
    Ok(StandIn {
        kubeconfig,
        upgrades,
        task,
    })
}

/// `kubectl port-forward pod/web :<port>`, killed when dropped; its local port and stderr.
struct Kubectl {
    child: tokio::process::Child,
    local_port: u16,
    stderr: Arc<std::sync::Mutex<String>>,
}

async fn kubectl_port_forward(s: &StandIn, port: u16, websockets: bool) -> Result<Kubectl> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        // Its discovery and HTTP caches go to the test's directory.
        .env(
            "HOME",
            s.kubeconfig
                .parent()
                .unwrap_or(std::path::Path::new("/nonexistent")),
        )
        .args([
            "port-forward",
            "pod/web",
            &format!(":{port}"),
            "-n",
            "default",
        ])
        .env(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS",
            if websockets { "true" } else { "false" },
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("run /usr/bin/kubectl")?;
    let stderr = Arc::new(std::sync::Mutex::new(String::new()));
    if let Some(err) = child.stderr.take() {
        let stderr = stderr.clone();
        tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(err).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if let Ok(mut s) = stderr.lock() {
                    s.push_str(&l);
                    s.push('\n');
                }
            }
        });
    }
    let out = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(out).lines();
    let mut local_port = None;
    for _ in 0..20 {
        let Some(line) = tokio::time::timeout(STEP, lines.next_line()).await?? else {
            break;
        };
        // "Forwarding from 127.0.0.1:41234 -> 8080"
        if let Some(rest) = line.strip_prefix("Forwarding from 127.0.0.1:") {
            local_port = rest.split(' ').next().and_then(|p| p.parse().ok());
            break;
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let Some(local_port) = local_port else {
        let err = stderr.lock().map(|s| s.clone()).unwrap_or_default();
        anyhow::bail!("kubectl did not start forwarding: {err}");
    };
    Ok(Kubectl {
        child,
        local_port,
        stderr,
    })
}

async fn real_kubectl(websockets: bool) -> Result<()> {
    if !std::path::Path::new("/usr/bin/kubectl").exists() {
        eprintln!("SKIPPED: /usr/bin/kubectl is not installed");
        return Ok(());
    }
    let f = Fixture::new().await?;
    with_sandbox(&f).await?;
    f.rt.refuse_port(9999);
    let s = stand_in(&f).await?;
    let mut k = kubectl_port_forward(&s, 8080, websockets).await?;
    // Two local connections at once, each its own pair of streams and pod connection.
    let mut a = TcpStream::connect(("127.0.0.1", k.local_port)).await?;
    let mut b = TcpStream::connect(("127.0.0.1", k.local_port)).await?;
    a.write_all(b"from a").await?;
    b.write_all(b"from b").await?;
    let mut h = forwards(&f, 2).await?;
    for h in h.iter_mut() {
        assert_eq!((h.sandbox_id.as_str(), h.port), (SANDBOX, 8080));
        let mut got = [0u8; 6];
        tokio::time::timeout(STEP, h.conn.read_exact(&mut got)).await??;
        let answer = if &got == b"from a" { "to a" } else { "to b" };
        h.conn.write_all(answer.as_bytes()).await?;
    }
    for (c, want) in [(&mut a, "to a"), (&mut b, "to b")] {
        let mut got = vec![0u8; want.len()];
        tokio::time::timeout(STEP, c.read_exact(&mut got)).await??;
        assert_eq!(got, want.as_bytes());
    }
    // The pod closes both: the local connections end too.
    drop(h.remove(0));
    drop(h.remove(0));
    let mut rest = Vec::new();
    tokio::time::timeout(STEP, a.read_to_end(&mut rest)).await??;
    let _ = k.child.kill().await;

    // Nothing listens on 9999: kubectl reports the kubelet's message.
    let mut k = kubectl_port_forward(&s, 9999, websockets).await?;
    let mut c = TcpStream::connect(("127.0.0.1", k.local_port)).await?;
    c.write_all(b"hello").await?;
    let mut seen = String::new();
    for _ in 0..100 {
        seen = k.stderr.lock().map(|s| s.clone()).unwrap_or_default();
        if seen.contains("an error occurred forwarding") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen.contains(&format!(
            "an error occurred forwarding {} -> 9999: error forwarding port 9999 to pod {SANDBOX}, uid : failed to connect to localhost:9999",
            k.local_port
        )),
        "{seen}"
    );
    let _ = k.child.kill().await;
    // The transport kubectl used is the one asked for (no silent fallback).
    let upgrades = s.upgrades.lock().map(|u| u.clone()).unwrap_or_default();
    let want = if websockets { "websocket" } else { "SPDY/3.1" };
    assert!(
        !upgrades.is_empty() && upgrades.iter().all(|u| u.eq_ignore_ascii_case(want)),
        "{upgrades:?}"
    );
    Ok(())
}

#[tokio::test]
async fn real_kubectl_port_forward_over_websocket_tunnel() -> Result<()> {
    real_kubectl(true).await
}

#[tokio::test]
async fn real_kubectl_port_forward_over_spdy() -> Result<()> {
    real_kubectl(false).await
}

#[tokio::test]
async fn exec_over_spdy() -> Result<()> {
    let f = Fixture::new().await?;
    let mut tls = f.connect(Some((KUBELET_CLIENT_CN, &[]))).await?;
    let head = raw_request(
        &mut tls,
        "POST /exec/default/web/app?command=sh&stdin=true&stdout=true&tty=true HTTP/1.1\r\n\
         Host: localhost\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\
         X-Stream-Protocol-Version: v4.channel.k8s.io\r\n\
         X-Stream-Protocol-Version: v3.channel.k8s.io\r\nContent-Length: 0\r\n\r\n",
    )
    .await?;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(
        head.contains("x-stream-protocol-version: v4.channel.k8s.io\r\n"),
        "{head}"
    );
    let mut c = SpdyClient::new(Wire::Tls(Box::new(tls)))?;
    // kubectl's order: error, stdin, stdout, resize (a tty has no stderr).
    for (id, kind) in [(1, "error"), (3, "stdin"), (5, "stdout"), (7, "resize")] {
        c.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            headers: Headers::default().with("streamtype", kind),
        })
        .await?;
    }
    c.until("the replies", |c| c.replied.len() == 4).await?;
    let mut h = f.rt.next_stream(STEP).await.context("no exec session")?;
    // A resize split over two frames.
    c.write(7, br#"{"Width":100,"#, false).await?;
    c.write(7, br#""Height":30}"#, false).await?;
    let size = tokio::time::timeout(STEP, h.resize.as_mut().context("no resize")?.recv())
        .await?
        .context("resize channel closed")?;
    assert_eq!((size.width, size.height), (100, 30));
    c.write(3, b"echo hi\n", true).await?;
    let mut input = Vec::new();
    tokio::time::timeout(
        STEP,
        h.stdin
            .as_mut()
            .context("no stdin")?
            .read_to_end(&mut input),
    )
    .await??;
    assert_eq!(input, b"echo hi\n");
    if let Some(o) = h.stdout.as_mut() {
        o.write_all(b"hi\r\n").await?;
    }
    h.finish(7);
    c.until("the ends", |c| c.fin.contains(&5) && c.fin.contains(&1))
        .await?;
    assert_eq!(c.text(5), "hi\r\n");
    let status: serde_json::Value = serde_json::from_str(&c.text(1))?;
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "7");

    // v2 writes only a failure's message; a protocol the kubelet does not speak is 403.
    let mut tls = f.connect(Some((KUBELET_CLIENT_CN, &[]))).await?;
    let head = raw_request(
        &mut tls,
        "POST /exec/default/web/app?command=ls&stdout=1 HTTP/1.1\r\nHost: localhost\r\n\
         Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: channel.k8s.io\r\n\
         Content-Length: 0\r\n\r\n",
    )
    .await?;
    assert!(head.starts_with("http/1.1 403"), "{head}");
    let mut tls = f.connect(Some((KUBELET_CLIENT_CN, &[]))).await?;
    let head = raw_request(
        &mut tls,
        "POST /attach/default/web/app?stdout=1 HTTP/1.1\r\nHost: localhost\r\n\
         Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v2.channel.k8s.io\r\n\
         Content-Length: 0\r\n\r\n",
    )
    .await?;
    assert!(
        head.contains("x-stream-protocol-version: v2.channel.k8s.io"),
        "{head}"
    );
    let mut c = SpdyClient::new(Wire::Tls(Box::new(tls)))?;
    for (id, kind) in [(1, "error"), (3, "stdout")] {
        c.send(Frame::SynStream {
            stream_id: id,
            associated_to: 0,
            priority: 0,
            slot: 0,
            flags: 0,
            headers: Headers::default().with("streamtype", kind),
        })
        .await?;
    }
    let mut h = f.rt.next_stream(STEP).await.context("no attach session")?;
    assert!(format!("{:?}", h.kind).contains("Attach"));
    h.fail(skiff_runtime::cri::CriError::Other("boom".into()));
    c.until("the ends", |c| c.fin.contains(&3) && c.fin.contains(&1))
        .await?;
    assert_eq!(
        c.text(1),
        "Internal error occurred: error executing command in container: boom"
    );
    Ok(())
}

#[tokio::test]
async fn real_kubectl_exec_over_spdy() -> Result<()> {
    if !std::path::Path::new("/usr/bin/kubectl").exists() {
        eprintln!("SKIPPED: /usr/bin/kubectl is not installed");
        return Ok(());
    }
    let f = Fixture::new().await?;
    let s = stand_in(&f).await?;
    let child = tokio::process::Command::new("/usr/bin/kubectl")
        .arg("--kubeconfig")
        .arg(&s.kubeconfig)
        // Its discovery and HTTP caches go to the test's directory.
        .env(
            "HOME",
            s.kubeconfig
                .parent()
                .unwrap_or(std::path::Path::new("/nonexistent")),
        )
        .args([
            "exec",
            "-i",
            "web",
            "-c",
            "app",
            "--",
            "sh",
            "-c",
            "cat; exit 3",
        ])
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("run /usr/bin/kubectl")?;
    let mut child = child;
    let mut stdin = child.stdin.take().context("no stdin")?;
    stdin.write_all(b"input\n").await?;
    drop(stdin);
    let mut h = f.rt.next_stream(STEP).await.context("no exec session")?;
    assert!(
        format!("{:?}", h.kind).contains("cat; exit 3"),
        "{:?}",
        h.kind
    );
    let mut input = Vec::new();
    tokio::time::timeout(
        STEP,
        h.stdin
            .as_mut()
            .context("no stdin")?
            .read_to_end(&mut input),
    )
    .await??;
    assert_eq!(input, b"input\n");
    if let Some(o) = h.stdout.as_mut() {
        o.write_all(b"input\n").await?;
    }
    if let Some(e) = h.stderr.as_mut() {
        e.write_all(b"to stderr\n").await?;
    }
    h.finish(3);
    let out = tokio::time::timeout(STEP, child.wait_with_output()).await??;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(stdout, "input\n", "{stderr}");
    assert!(stderr.contains("to stderr\n"), "{stderr}");
    assert!(
        stderr.contains("command terminated with exit code 3"),
        "{stderr}"
    );
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let upgrades = s.upgrades.lock().map(|u| u.clone()).unwrap_or_default();
    assert_eq!(upgrades, ["SPDY/3.1"]);
    Ok(())
}

/// 16 MiB each way through the real kubectl and the kubelet at once, compared byte for
/// byte (prints the rate for the record; asserts only the bytes).
async fn real_kubectl_bulk(websockets: bool) -> Result<()> {
    if !std::path::Path::new("/usr/bin/kubectl").exists() {
        eprintln!("SKIPPED: /usr/bin/kubectl is not installed");
        return Ok(());
    }
    const N: usize = 16 << 20;
    let f = Fixture::new().await?;
    with_sandbox(&f).await?;
    let s = stand_in(&f).await?;
    let mut k = kubectl_port_forward(&s, 8080, websockets).await?;
    let local = TcpStream::connect(("127.0.0.1", k.local_port)).await?;
    // kubectl opens the streams when it accepts the connection.
    let pod = forwards(&f, 1).await?.remove(0).conn;
    let pattern = |seed: u32| -> Vec<u8> {
        (0..N as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
            .collect()
    };
    let (up, down) = (pattern(1), pattern(2));
    let started = std::time::Instant::now();
    let (mut lr, mut lw) = local.into_split();
    let (mut pr, mut pw) = pod.into_split();
    let up_send = up.clone();
    let down_send = down.clone();
    let send_up = tokio::spawn(async move { lw.write_all(&up_send).await.map(|_| lw) });
    let send_down = tokio::spawn(async move { pw.write_all(&down_send).await.map(|_| pw) });
    let mut got_up = vec![0u8; N];
    let mut got_down = vec![0u8; N];
    let (a, b) = tokio::join!(
        tokio::time::timeout(STEP * 6, pr.read_exact(&mut got_up)),
        tokio::time::timeout(STEP * 6, lr.read_exact(&mut got_down)),
    );
    a??;
    b??;
    let elapsed = started.elapsed();
    let _ = send_up.await?;
    let _ = send_down.await?;
    assert!(got_up == up, "the bytes to the pod differ");
    assert!(got_down == down, "the bytes from the pod differ");
    eprintln!(
        "port-forward ({}): 2 x {} MiB in {:?}",
        if websockets {
            "websocket tunnel"
        } else {
            "spdy"
        },
        N >> 20,
        elapsed
    );
    let _ = k.child.kill().await;
    Ok(())
}

#[tokio::test]
async fn real_kubectl_port_forward_bulk_over_websocket_tunnel() -> Result<()> {
    real_kubectl_bulk(true).await
}

#[tokio::test]
async fn real_kubectl_port_forward_bulk_over_spdy() -> Result<()> {
    real_kubectl_bulk(false).await
}

#[tokio::test]
async fn real_kubectl_exec_tty_over_spdy() -> Result<()> {
    if !std::path::Path::new("/usr/bin/kubectl").exists()
        || !std::path::Path::new("/usr/bin/script").exists()
    {
        eprintln!("SKIPPED: /usr/bin/kubectl or /usr/bin/script (util-linux) is not installed");
        return Ok(());
    }
    let f = Fixture::new().await?;
    let s = stand_in(&f).await?;
    // `script` gives kubectl a terminal of a known size, which it sends on the resize stream.
    let line = format!(
        "stty cols 123 rows 45; kubectl --kubeconfig {} exec -it web -c app -- sh",
        s.kubeconfig.display()
    );
    let child = tokio::process::Command::new("/usr/bin/script")
        .args(["-qec", &line, "/dev/null"])
        .env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")
        .env("HOME", f.dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("run script")?;
    let mut h = f.rt.next_stream(STEP).await.context("no exec session")?;
    let StreamKind::Exec { req, .. } = &h.kind else {
        anyhow::bail!("{:?}", h.kind);
    };
    assert!(req.tty && req.stdin && req.stdout && !req.stderr, "{req:?}");
    let size = tokio::time::timeout(STEP, h.resize.as_mut().context("no resize")?.recv())
        .await?
        .context("resize channel closed")?;
    assert_eq!((size.width, size.height), (123, 45));
    if let Some(o) = h.stdout.as_mut() {
        o.write_all(b"hello from the tty\r\n").await?;
    }
    h.finish(0);
    let out = tokio::time::timeout(STEP, child.wait_with_output()).await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("hello from the tty"), "{stdout}");
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let upgrades = s.upgrades.lock().map(|u| u.clone()).unwrap_or_default();
    assert_eq!(upgrades, ["SPDY/3.1"]);
    Ok(())
}
