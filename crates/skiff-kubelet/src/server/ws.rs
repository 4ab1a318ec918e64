//! `/exec` and `/attach` over WebSocket, the channel protocol of apimachinery's
//! wsstream (`v4.channel.k8s.io`, `v5.channel.k8s.io`): binary messages whose first byte
//! is the channel (0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize; v5: 255 close, its
//! payload the channel closed). The status channel carries a metav1.Status as upstream's
//! remotecommand ServeExec/ServeAttach write it (NonZeroExitCode with an ExitCode cause).

use std::sync::Arc;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use skiff_runtime::cri::{BoxRead, PodRuntime, StreamRequest, TerminalSize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::query::StreamQuery;
use super::{running_container, text, Body};

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const STATUS: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

/// The protocol to answer: the first of the client's that skiff speaks, in the client's
/// order (wsstream's handshake).
pub fn negotiate(offered: &str) -> Option<&'static str> {
    offered.split(',').map(str::trim).find_map(|p| match p {
        V5 => Some(V5),
        V4 => Some(V4),
        _ => None,
    })
}

/// One channel message.
pub fn frame(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    v
}

/// The status channel's payload for an exec's end.
pub fn exit_status(code: i32, cmd: &[String]) -> serde_json::Value {
    if code == 0 {
        return serde_json::json!({"metadata": {}, "status": "Success"});
    }
    // containerd's CRI streaming exec error, wrapped by ServeExec.
    let err = format!(
        "error executing command [{}], exit code {code}",
        cmd.join(" ")
    );
    serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: {err}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The status channel's payload for a failure (apierrors.NewInternalError).
pub fn internal_error(err: &str) -> serde_json::Value {
    serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {err}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": err}]},
        "code": 500,
    })
}

/// A resize message (`{"Width":..,"Height":..}`).
pub fn parse_resize(data: &[u8]) -> Option<TerminalSize> {
    let v: serde_json::Value = serde_json::from_slice(data).ok()?;
    Some(TerminalSize {
        width: u16::try_from(v.get("Width")?.as_u64()?).ok()?,
        height: u16::try_from(v.get("Height")?.as_u64()?).ok()?,
    })
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
    let headers = req.headers();
    let is_ws = headers
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if !is_ws {
        return text(
            StatusCode::BAD_REQUEST,
            // Not reached from the router, which sends every non-WebSocket request to the SPDY
            // path (remotecommand.rs).
            "unable to upgrade connection: not a WebSocket request",
        );
    }
    let Some(proto) = headers
        .get(http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(negotiate)
    else {
        return text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade connection: none of the offered subprotocols is supported (v5.channel.k8s.io, v4.channel.k8s.io)",
        );
    };
    let Some(key) = headers.get(http::header::SEC_WEBSOCKET_KEY) else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let accept = derive_accept_key(key.as_bytes());
    let id = match running_container(runtime.as_ref(), ns, pod, container).await {
        Ok(id) => id,
        Err(resp) => return *resp,
    };
    let sreq = StreamRequest {
        cmd: q.command.clone(),
        tty: q.tty,
        stdin: q.stdin,
        stdout: q.stdout,
        stderr: q.stderr,
    };
    let v5 = proto == V5;
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "exec/attach upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        run(ws, runtime, id, sreq, attach, v5).await;
    });
    let mut resp = Response::new(super::text(StatusCode::OK, "").into_body());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(
        http::header::UPGRADE,
        http::HeaderValue::from_static("websocket"),
    );
    h.insert(
        http::header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&accept) {
        h.insert(http::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(
        http::header::SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static(proto),
    );
    resp
}

/// A close frame with status 1000: client-go's stream readers take it as the end of the
/// streams; a close without a status (1005) is an error to them, and kubectl then reports
/// `error reading from error stream` instead of the command's exit code.
fn normal_close() -> Message {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

async fn pump(mut r: BoxRead, channel: u8, out: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let msg = Message::Binary(Bytes::from(frame(channel, &buf[..n])));
                if out.send(msg).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn run<S>(
    ws: WebSocketStream<S>,
    runtime: Arc<dyn PodRuntime>,
    id: String,
    req: StreamRequest,
    attach: bool,
    v5: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut incoming) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(16);
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let cmd = req.cmd.clone();
    let session = if attach {
        runtime.attach(&id, req).await
    } else {
        runtime.exec(&id, req).await
    };
    let mut session = match session {
        Ok(s) => s,
        Err(e) => {
            let status = internal_error(&e.to_string());
            let _ = out_tx
                .send(Message::Binary(Bytes::from(frame(
                    STATUS,
                    status.to_string().as_bytes(),
                ))))
                .await;
            let _ = out_tx.send(normal_close()).await;
            drop(out_tx);
            let _ = writer.await;
            return;
        }
    };
    let mut pumps = Vec::new();
    if let Some(r) = session.stdout.take() {
        pumps.push(tokio::spawn(pump(r, STDOUT, out_tx.clone())));
    }
    if let Some(r) = session.stderr.take() {
        pumps.push(tokio::spawn(pump(r, STDERR, out_tx.clone())));
    }
    let mut stdin = session.stdin.take();
    let resize = session.resize.take();
    // The client's messages: stdin, resize, close (v5); ends when the client goes.
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = incoming.next().await {
            let data = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&channel, payload)) = data.split_first() else {
                continue;
            };
            match channel {
                STDIN => {
                    if let Some(w) = stdin.as_mut() {
                        if w.write_all(payload).await.is_err() || w.flush().await.is_err() {
                            stdin = None;
                        }
                    }
                }
                RESIZE => {
                    if let (Some(tx), Some(size)) = (resize.as_ref(), parse_resize(payload)) {
                        let _ = tx.send(size).await;
                    }
                }
                CLOSE if v5 && payload.first() == Some(&STDIN) => {
                    if let Some(mut w) = stdin.take() {
                        let _ = w.shutdown().await;
                    }
                }
                _ => {}
            }
        }
    });
    let exit = (&mut session.exit).await;
    // Output written before the exit is sent before the status.
    for p in pumps {
        let _ = p.await;
    }
    let status = match exit {
        Ok(Ok(code)) if attach => {
            let _ = code;
            serde_json::json!({"metadata": {}, "status": "Success"})
        }
        Ok(Ok(code)) => exit_status(code, &cmd),
        Ok(Err(e)) => internal_error(&e.to_string()),
        Err(_) => internal_error("the runtime dropped the session"),
    };
    let _ = out_tx
        .send(Message::Binary(Bytes::from(frame(
            STATUS,
            status.to_string().as_bytes(),
        ))))
        .await;
    let _ = out_tx.send(normal_close()).await;
    drop(out_tx);
    let _ = writer.await;
    reader.abort();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_in_client_order() {
        assert_eq!(negotiate("v5.channel.k8s.io"), Some(V5));
        assert_eq!(negotiate("v4.channel.k8s.io, v5.channel.k8s.io"), Some(V4));
        assert_eq!(
            negotiate("base64.channel.k8s.io,v5.channel.k8s.io"),
            Some(V5)
        );
        assert_eq!(negotiate("channel.k8s.io"), None);
    }

    #[test]
    fn statuses_as_upstream() {
        assert_eq!(
            exit_status(0, &[]).to_string(),
            r#"{"metadata":{},"status":"Success"}"#
        );
        let s = exit_status(3, &["sh".into(), "-c".into(), "exit 3".into()]);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(
            s["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
        assert_eq!(internal_error("boom")["code"], 500);
    }

    #[test]
    fn frames_and_resize() {
        assert_eq!(frame(STDOUT, b"hi"), b"\x01hi");
        assert_eq!(
            parse_resize(br#"{"Width":80,"Height":24}"#),
            Some(TerminalSize {
                width: 80,
                height: 24
            })
        );
        assert_eq!(parse_resize(b"{"), None);
        assert_eq!(parse_resize(br#"{"Width":-1,"Height":24}"#), None);
    }
}
