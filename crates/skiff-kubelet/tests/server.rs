//! The kubelet's HTTPS server over RecordingRuntime (in-memory streams), driven by a TLS
//! client with the API server's kubelet client certificate: authentication, container logs
//! (every option, follow until exit, upstream's errors), exec over WebSocket v5 and v4
//! (stdout/stderr, stdin and its close, exit code statuses, resize), attach.

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
        let tcp = TcpStream::connect(self.addr).await?;
        let conn = tokio_rustls::TlsConnector::from(Arc::new(config));
        Ok(conn
            .connect(ServerName::try_from("localhost")?, tcp)
            .await?)
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
