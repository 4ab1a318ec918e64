//! `/exec` and `/attach` over a SPDY/3.1 upgrade (kubectl's fallback when WebSocket fails,
//! and older clients): upstream's pkg/kubelet/cri/streaming/remotecommand/httpstream.go.
//! `X-Stream-Protocol-Version` `v5`..`v2.channel.k8s.io`; the client opens one stream per
//! `streamtype` (`error`, `stdin`, `stdout`, `stderr`, and `resize` with a tty from v3 on),
//! the kubelet waits for all it asked for, runs the session, ends stdout/stderr with FIN and
//! writes the end to the error stream: a metav1.Status JSON (v4, v5) or, on failure only,
//! its message (v2, v3); then the connection closes. Resize messages are consecutive JSON
//! objects on the resize stream. The runtime plumbing and the statuses are ws.rs's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use skiff_runtime::cri::{BoxRead, PodRuntime, StreamRequest, TerminalSize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::portforward::{
    data, frame_ok, spawn_writer, spdy_handshake, spdy_switching, Activity, IDLE_TIMEOUT,
    STREAM_CREATION_TIMEOUT,
};
use super::query::StreamQuery;
use super::spdy::{self, Decoder, Frame, Headers};
use super::ws::{exit_status, internal_error};
use super::{running_container, text, Body};

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";
pub const V3: &str = "v3.channel.k8s.io";
pub const V2: &str = "v2.channel.k8s.io";
/// In the server's preference order (only the client's order counts).
pub const PROTOCOLS: &[&str] = &[V5, V4, V3, V2];

/// The stream types a session waits for.
pub fn expected_streams(q: &StreamQuery, protocol: &str) -> Vec<&'static str> {
    let mut v = vec!["error"];
    if q.stdin {
        v.push("stdin");
    }
    if q.stdout {
        v.push("stdout");
    }
    if q.stderr {
        v.push("stderr");
    }
    if q.tty && protocol != V2 {
        v.push("resize");
    }
    v
}

/// What goes on the error stream at the end (None: nothing, v2/v3 on success).
pub fn status_bytes(status: &serde_json::Value, protocol: &str) -> Option<Vec<u8>> {
    if protocol == V4 || protocol == V5 {
        return Some(status.to_string().into_bytes());
    }
    if status["status"] == "Success" {
        return None;
    }
    Some(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .as_bytes()
            .to_vec(),
    )
}

/// The whole resize messages at the start of `buf` (consumed); a partial one stays.
pub fn take_resizes(buf: &mut BytesMut) -> Vec<TerminalSize> {
    let mut sizes = Vec::new();
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    let mut used = 0;
    loop {
        match it.next() {
            Some(Ok(v)) => {
                used = it.byte_offset();
                let w = v.get("Width").and_then(|x| x.as_u64());
                let h = v.get("Height").and_then(|x| x.as_u64());
                if let (Some(w), Some(h)) = (w, h) {
                    if let (Ok(width), Ok(height)) = (u16::try_from(w), u16::try_from(h)) {
                        sizes.push(TerminalSize { width, height });
                    }
                }
            }
            // Incomplete: wait for more.
            Some(Err(e)) if e.is_eof() => break,
            // Garbage: drop what there is.
            Some(Err(_)) => {
                used = buf.len();
                break;
            }
            None => {
                used = buf.len();
                break;
            }
        }
    }
    let _ = buf.split_to(used.min(buf.len()));
    sizes
}

pub(crate) async fn serve(
    req: Request<Incoming>,
    runtime: Arc<dyn PodRuntime>,
    attach: bool,
    ns: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    let q = match StreamQuery::parse(req.uri().query().unwrap_or_default()) {
        Ok(q) => q,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let protocol = match spdy_handshake(req.headers(), PROTOCOLS) {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
    let id = match running_container(runtime.as_ref(), ns, pod, container).await {
        Ok(id) => id,
        Err(resp) => return *resp,
    };
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!(error = %e, "exec/attach SPDY upgrade failed");
                return;
            }
        };
        run(upgraded, runtime, id, q, attach, protocol, IDLE_TIMEOUT).await;
    });
    spdy_switching(protocol)
}

/// The client's streams, by type.
#[derive(Default)]
struct Streams {
    ids: HashMap<&'static str, u32>,
    /// stdin's and resize's data, until their FIN.
    inputs: HashMap<u32, mpsc::Sender<Bytes>>,
}

pub(crate) async fn run<S>(
    io: S,
    runtime: Arc<dyn PodRuntime>,
    id: String,
    q: StreamQuery,
    attach: bool,
    protocol: &'static str,
    idle: Duration,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(io);
    let activity = Activity::new();
    let (out, writer) = spawn_writer(wr, activity.clone());
    let expected = expected_streams(&q, protocol);
    let mut streams = Streams::default();
    let mut receivers: HashMap<&'static str, mpsc::Receiver<Bytes>> = HashMap::new();
    let mut dec = Decoder::new();
    let mut buf = BytesMut::with_capacity(32 * 1024);
    let mut next_id = 1;
    let created_by = Instant::now() + STREAM_CREATION_TIMEOUT;
    let mut session: Option<tokio::task::JoinHandle<()>> = None;
    'conn: loop {
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    let Some(frame) = frame_ok(frame, &mut next_id, false, &out).await else {
                        continue;
                    };
                    handle(frame, &mut streams, &mut receivers, &out).await;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "exec/attach: bad SPDY frame, closing");
                    break 'conn;
                }
            }
        }
        if session.is_none() && expected.iter().all(|t| streams.ids.contains_key(t)) {
            let ids = streams.ids.clone();
            let req = StreamRequest {
                cmd: q.command.clone(),
                tty: q.tty,
                stdin: q.stdin,
                stdout: q.stdout,
                stderr: q.stderr,
            };
            session = Some(tokio::spawn(execute(
                runtime.clone(),
                id.clone(),
                req,
                attach,
                protocol,
                ids,
                receivers.remove("stdin"),
                receivers.remove("resize"),
                out.clone(),
            )));
        }
        tokio::select! {
            n = rd.read_buf(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(_) => activity.touch(),
            },
            _ = join(&mut session), if session.is_some() => {
                // upstream's `defer ctx.conn.Close()`.
                let _ = out.send(Frame::GoAway { last_good_stream_id: next_id.saturating_sub(2), status: 0 }).await;
                break;
            }
            _ = tokio::time::sleep_until(created_by), if session.is_none() => {
                tracing::debug!("exec/attach: timed out waiting for the client's streams");
                break;
            }
            _ = tokio::time::sleep_until(activity.deadline(idle)) => {
                if Instant::now() >= activity.deadline(idle) {
                    break;
                }
            }
        }
    }
    if let Some(s) = &session {
        s.abort();
    }
    drop(streams);
    drop(out);
    let _ = writer.await;
}

/// The session's end (never, without one).
async fn join(session: &mut Option<tokio::task::JoinHandle<()>>) {
    match session {
        Some(h) => {
            let _ = h.await;
        }
        None => std::future::pending().await,
    }
}

async fn handle(
    frame: Frame,
    streams: &mut Streams,
    receivers: &mut HashMap<&'static str, mpsc::Receiver<Bytes>>,
    out: &mpsc::Sender<Frame>,
) {
    match frame {
        Frame::SynStream {
            stream_id,
            flags,
            headers,
            ..
        } => {
            let kind = match headers.get("streamtype") {
                Some("error") => "error",
                Some("stdin") => "stdin",
                Some("stdout") => "stdout",
                Some("stderr") => "stderr",
                Some("resize") => "resize",
                other => {
                    tracing::debug!(?other, "exec/attach: unexpected stream type");
                    let _ = out
                        .send(Frame::RstStream {
                            stream_id,
                            status: spdy::rst::CANCEL,
                        })
                        .await;
                    return;
                }
            };
            if streams.ids.contains_key(kind) {
                let _ = out
                    .send(Frame::RstStream {
                        stream_id,
                        status: spdy::rst::CANCEL,
                    })
                    .await;
                return;
            }
            let _ = out
                .send(Frame::SynReply {
                    stream_id,
                    flags: 0,
                    headers: Headers::default(),
                })
                .await;
            streams.ids.insert(kind, stream_id);
            if kind == "stdin" || kind == "resize" {
                let (tx, rx) = mpsc::channel(16);
                if flags & spdy::FLAG_FIN == 0 {
                    streams.inputs.insert(stream_id, tx);
                }
                receivers.insert(kind, rx);
            }
        }
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            if !data.is_empty() {
                if let Some(tx) = streams.inputs.get(&stream_id) {
                    if tx.send(data).await.is_err() {
                        streams.inputs.remove(&stream_id);
                    }
                }
            }
            if flags & spdy::FLAG_FIN != 0 {
                streams.inputs.remove(&stream_id);
            }
        }
        Frame::RstStream { stream_id, .. } => {
            streams.inputs.remove(&stream_id);
        }
        _ => {}
    }
}

async fn pump(mut r: BoxRead, stream_id: u32, out: mpsc::Sender<Frame>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if out
                    .send(data(stream_id, 0, Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    let _ = out
        .send(data(stream_id, spdy::FLAG_FIN, Bytes::new()))
        .await;
}

// A task body: its inputs are moved in one by one rather than bundled for a single caller.
#[allow(clippy::too_many_arguments)]
async fn execute(
    runtime: Arc<dyn PodRuntime>,
    id: String,
    req: StreamRequest,
    attach: bool,
    protocol: &'static str,
    ids: HashMap<&'static str, u32>,
    stdin_rx: Option<mpsc::Receiver<Bytes>>,
    resize_rx: Option<mpsc::Receiver<Bytes>>,
    out: mpsc::Sender<Frame>,
) {
    let error_id = ids.get("error").copied();
    let finish = |status: serde_json::Value| {
        let out = out.clone();
        async move {
            if let Some(e) = error_id {
                if let Some(b) = status_bytes(&status, protocol) {
                    let _ = out.send(data(e, 0, Bytes::from(b))).await;
                }
                let _ = out.send(data(e, spdy::FLAG_FIN, Bytes::new())).await;
            }
        }
    };
    let cmd = req.cmd.clone();
    let session = if attach {
        runtime.attach(&id, req).await
    } else {
        runtime.exec(&id, req).await
    };
    let mut session = match session {
        Ok(s) => s,
        Err(e) => {
            // ServeExec's "error executing command in container".
            let msg = format!("error executing command in container: {e}");
            finish(internal_error(&msg)).await;
            return;
        }
    };
    let mut pumps = Vec::new();
    for (kind, r) in [
        ("stdout", session.stdout.take()),
        ("stderr", session.stderr.take()),
    ] {
        if let (Some(r), Some(&sid)) = (r, ids.get(kind)) {
            pumps.push(tokio::spawn(pump(r, sid, out.clone())));
        }
    }
    let mut aux = Vec::new();
    if let (Some(mut w), Some(mut rx)) = (session.stdin.take(), stdin_rx) {
        aux.push(tokio::spawn(async move {
            while let Some(b) = rx.recv().await {
                if w.write_all(&b).await.is_err() || w.flush().await.is_err() {
                    return;
                }
            }
            // The client's FIN on stdin closes the process's stdin.
            let _ = w.shutdown().await;
        }));
    }
    if let (Some(tx), Some(mut rx)) = (session.resize.take(), resize_rx) {
        aux.push(tokio::spawn(async move {
            let mut buf = BytesMut::new();
            while let Some(b) = rx.recv().await {
                buf.extend_from_slice(&b);
                for size in take_resizes(&mut buf) {
                    if tx.send(size).await.is_err() {
                        return;
                    }
                }
                if buf.len() > 64 * 1024 {
                    buf.clear();
                }
            }
        }));
    }
    let exit = (&mut session.exit).await;
    for p in pumps {
        let _ = p.await;
    }
    for a in aux {
        a.abort();
    }
    let status = match exit {
        Ok(Ok(_)) if attach => serde_json::json!({"metadata": {}, "status": "Success"}),
        Ok(Ok(code)) => exit_status(code, &cmd),
        Ok(Err(e)) => internal_error(&format!("error executing command in container: {e}")),
        Err(_) => internal_error("the runtime dropped the session"),
    };
    finish(status).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_per_protocol() {
        let q = StreamQuery::parse("command=sh&stdin=1&stdout=1&tty=1").unwrap();
        assert_eq!(
            expected_streams(&q, V4),
            ["error", "stdin", "stdout", "resize"]
        );
        assert_eq!(expected_streams(&q, V2), ["error", "stdin", "stdout"]);
        let q = StreamQuery::parse("command=ls&stdout=1&stderr=1").unwrap();
        assert_eq!(expected_streams(&q, V5), ["error", "stdout", "stderr"]);
    }

    #[test]
    fn statuses_per_protocol() {
        let ok = serde_json::json!({"metadata": {}, "status": "Success"});
        let bad = exit_status(2, &["false".into()]);
        assert_eq!(
            status_bytes(&ok, V4).unwrap(),
            br#"{"metadata":{},"status":"Success"}"#
        );
        assert_eq!(status_bytes(&ok, V3), None);
        assert_eq!(
            String::from_utf8(status_bytes(&bad, V2).unwrap()).unwrap(),
            "command terminated with non-zero exit code: error executing command [false], exit code 2"
        );
        let v5: serde_json::Value =
            serde_json::from_slice(&status_bytes(&bad, V5).unwrap()).unwrap();
        assert_eq!(v5["reason"], "NonZeroExitCode");
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_never_opens_its_streams_is_dropped() {
        let rt: Arc<dyn PodRuntime> = Arc::new(skiff_runtime::testing::RecordingRuntime::new());
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let q = StreamQuery::parse("command=ls&stdout=1").unwrap();
        let session = tokio::spawn(run(server, rt, "c".into(), q, false, V4, IDLE_TIMEOUT));
        // Only the error stream of the two asked for.
        let mut wire = Vec::new();
        super::super::spdy::Encoder::new()
            .unwrap()
            .encode(
                &Frame::SynStream {
                    stream_id: 1,
                    associated_to: 0,
                    priority: 0,
                    slot: 0,
                    flags: 0,
                    headers: Headers::default().with("streamtype", "error"),
                },
                &mut wire,
            )
            .unwrap();
        client.write_all(&wire).await.unwrap();
        let mut got = Vec::new();
        // Ends (EOF) once the creation timeout passed, without a session.
        tokio::time::timeout(STREAM_CREATION_TIMEOUT * 2, client.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        let mut buf = BytesMut::from(&got[..]);
        let frame = Decoder::new().decode(&mut buf).unwrap();
        assert!(
            matches!(frame, Some(Frame::SynReply { stream_id: 1, .. })),
            "{frame:?}"
        );
        session.await.unwrap();
    }

    #[test]
    fn resize_messages_split_anywhere() {
        let mut buf = BytesMut::from(&br#"{"Width":80,"Height":24}{"Width":1"#[..]);
        assert_eq!(
            take_resizes(&mut buf),
            [TerminalSize {
                width: 80,
                height: 24
            }]
        );
        buf.extend_from_slice(br#"20,"Height":40}"#);
        assert_eq!(
            take_resizes(&mut buf),
            [TerminalSize {
                width: 120,
                height: 40
            }]
        );
        assert!(buf.is_empty());
        let mut junk = BytesMut::from(&b"]]"[..]);
        assert!(take_resizes(&mut junk).is_empty());
        assert!(junk.is_empty());
    }
}
