//! `/portForward/{ns}/{pod}[/{uid}]`: kubectl port-forward's kubelet end, three ways in.
//!
//! - A plain `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version: portforward.k8s.io`
//!   (upstream's pkg/kubelet/cri/streaming/portforward/httpstream.go over apimachinery's
//!   httpstream/spdy): per forwarded connection the client opens two streams with headers
//!   `streamtype` (`error`|`data`), `port` and `requestid`; the pair is matched by request
//!   id, the port dialed in the pod's sandbox ([`PodRuntime::port_forward`]) and bytes
//!   copied both ways as containerd's portforward does (after one direction ends the other
//!   gets a second). A failure is written to the error stream (`error forwarding port 8080
//!   to pod <sandbox>, uid : ...`, which kubectl prints as `an error occurred forwarding
//!   ...`).
//! - A WebSocket offering `SPDY/3.1+portforward.k8s.io` (kubectl v1.30+'s default): the
//!   same SPDY session carried as a byte stream in binary messages, as the API server's
//!   util/proxy/streamtunnel.go and client-go's tunneling_connection.go do (a message is
//!   any slice of the stream; a normal close is the end).
//! - A WebSocket `v4.channel.k8s.io` (`v4.base64.channel.k8s.io`: text messages, base64
//!   payloads; or no subprotocol) with `?port=8080&port=9090` (the
//!   API server's form; `ports=8080,9090`, the PodPortForwardOptions name, is taken too):
//!   upstream's websocket.go, channels `2i` (data) and `2i+1` (error) per port, each of
//!   them opened by a message carrying the port as 2 bytes little-endian.
//!
//! A connection idle (no frame or message either way) for [`IDLE_TIMEOUT`] is closed, as the
//! kubelet's default streaming idle timeout; a stream pair incomplete after
//! [`STREAM_CREATION_TIMEOUT`] gets upstream's timeout message.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use skiff_runtime::cri::PodRuntime;
use skiff_runtime::sandbox::SandboxState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::spdy::{self, Decoder, Encoder, Frame, Headers};
use super::{text, Body};

/// The port-forward subprotocol (X-Stream-Protocol-Version).
pub const PROTOCOL: &str = "portforward.k8s.io";
/// The SPDY upgrade token.
pub const SPDY_31: &str = "SPDY/3.1";
/// The WebSocket subprotocol of SPDY tunneled through WebSocket.
pub const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// The channel WebSocket subprotocol (websocket.go's v4 binary).
pub const V4: &str = "v4.channel.k8s.io";
/// Its text form: a message is `'0' + channel` then the data in base64.
pub const V4_BASE64: &str = "v4.base64.channel.k8s.io";
/// The kubelet's default streaming connection idle timeout.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(4 * 60 * 60);
/// The kubelet's default stream creation timeout.
pub const STREAM_CREATION_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the other direction may go on after one ended (containerd's portforward).
const HALF_CLOSE_GRACE: Duration = Duration::from_secs(1);
const CHUNK: usize = 32 * 1024;

/// The `port` (repeated, comma-separated) or `ports` query values (upstream's NewV4Options,
/// with its messages).
pub fn parse_ports(query: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    let mut any = false;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k != "port" && k != "ports" {
            continue;
        }
        any = true;
        if v.is_empty() {
            return Err("query parameter \"port\" cannot be empty".into());
        }
        for p in v.split(',') {
            let port: u16 = p
                .trim()
                .parse()
                .map_err(|e| format!("unable to parse {v:?} as a port: {e}"))?;
            if port < 1 {
                return Err(format!("port {v:?} must be > 0"));
            }
            ports.push(port);
        }
    }
    if !any {
        return Err("query parameter \"port\" is required".into());
    }
    Ok(ports)
}

/// A channel message of the v4 protocol.
pub fn channel_message(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    v
}

/// How channel messages are framed: binary (`v4.channel.k8s.io`, or no subprotocol) or
/// text with base64 payloads (`v4.base64.channel.k8s.io`), as wsstream's channel.go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Binary,
    Base64,
}

impl Encoding {
    pub fn message(self, channel: u8, data: &[u8]) -> Message {
        use base64::Engine as _;
        match self {
            Encoding::Binary => Message::Binary(Bytes::from(channel_message(channel, data))),
            Encoding::Base64 => {
                let mut t = String::with_capacity(data.len() * 4 / 3 + 4);
                t.push(char::from(b'0'.wrapping_add(channel)));
                base64::engine::general_purpose::STANDARD.encode_string(data, &mut t);
                Message::Text(t.into())
            }
        }
    }

    /// A client message's channel and data (None for other messages and bad ones).
    pub fn parse(self, msg: &Message) -> Option<(u8, Vec<u8>)> {
        use base64::Engine as _;
        match (self, msg) {
            (Encoding::Binary, Message::Binary(d)) => {
                let (&ch, rest) = d.split_first()?;
                Some((ch, rest.to_vec()))
            }
            (Encoding::Base64, Message::Text(t)) => {
                let (&ch, rest) = t.as_bytes().split_first()?;
                let data = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .ok()?;
                Some((ch.wrapping_sub(b'0'), data))
            }
            _ => None,
        }
    }
}

/// The data and error channels of the `i`-th port (None past the 128 pairs a byte holds).
pub fn channels(i: usize) -> Option<(u8, u8)> {
    let data = u8::try_from(i.checked_mul(2)?).ok()?;
    Some((data, data.checked_add(1)?))
}

/// What kubectl reads from the error stream when the dial (or the copy) failed.
pub fn forward_error(port: u16, sandbox: &str, err: &str) -> String {
    // The CRI streaming server passes the sandbox id as the pod and no uid.
    format!("error forwarding port {port} to pod {sandbox}, uid : {err}")
}

/// Why a new stream is refused (httpStreamReceived), or its port and whether it is the
/// error stream.
pub fn check_stream(h: &Headers) -> Result<(u16, bool), String> {
    let Some(port) = h.get("port").filter(|p| !p.is_empty()) else {
        return Err("\"port\" header is required".into());
    };
    let n: u16 = port
        .parse()
        .map_err(|e| format!("unable to parse {port:?} as a port: {e}"))?;
    if n < 1 {
        return Err(format!("port {port:?} must be > 0"));
    }
    match h.get("streamtype") {
        None | Some("") => Err("\"streamType\" header is required".into()),
        Some("error") => Ok((n, true)),
        Some("data") => Ok((n, false)),
        Some(t) => Err(format!("invalid stream type {t:?}")),
    }
}

fn tokens(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Vec<&str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect()
}

enum Mode {
    Spdy,
    Tunnel(String),
    Channels(String, Option<&'static str>, Vec<u16>),
}

fn switching(headers: &[(http::header::HeaderName, String)]) -> Response<Body> {
    let mut resp = Response::new(text(StatusCode::OK, "").into_body());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (k, v) in headers {
        if let Ok(v) = http::HeaderValue::from_str(v) {
            resp.headers_mut().append(k.clone(), v);
        }
    }
    resp
}

/// Whether the request asks for a WebSocket (`Upgrade: websocket`).
pub(crate) fn is_websocket(headers: &HeaderMap) -> bool {
    tokens(headers, http::header::UPGRADE)
        .iter()
        .any(|u| u.eq_ignore_ascii_case("websocket"))
}

/// Whether the request is a SPDY/3.1 upgrade (`Connection: Upgrade`, `Upgrade: SPDY/3.1`).
pub(crate) fn is_spdy_upgrade(headers: &HeaderMap) -> bool {
    tokens(headers, http::header::CONNECTION)
        .iter()
        .any(|c| c.eq_ignore_ascii_case("upgrade"))
        && tokens(headers, http::header::UPGRADE)
            .iter()
            .any(|u| u.eq_ignore_ascii_case(SPDY_31))
}

/// The SPDY upgrade's checks and X-Stream-Protocol-Version negotiation (apimachinery's
/// httpstream.Handshake: the first of the client's protocols the server speaks).
pub(crate) fn spdy_handshake(
    headers: &HeaderMap,
    supported: &[&'static str],
) -> Result<&'static str, Box<Response<Body>>> {
    if !is_spdy_upgrade(headers) {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request",
        )));
    }
    let versions = tokens(headers, "x-stream-protocol-version");
    if versions.is_empty() {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: X-Stream-Protocol-Version is required",
        )));
    }
    if let Some(p) = versions
        .iter()
        .find_map(|v| supported.iter().find(|s| *s == v))
    {
        return Ok(p);
    }
    let mut resp = text(
        StatusCode::FORBIDDEN,
        format!(
            "unable to upgrade: unable to negotiate protocol: client supports {versions:?}, server accepts {supported:?}"
        ),
    );
    for p in supported {
        resp.headers_mut().append(
            "x-accepted-stream-protocol-versions",
            http::HeaderValue::from_static(p),
        );
    }
    Err(Box::new(resp))
}

/// The 101 of a SPDY upgrade with the negotiated protocol.
pub(crate) fn spdy_switching(protocol: &str) -> Response<Body> {
    switching(&[
        (http::header::CONNECTION, "Upgrade".to_owned()),
        (http::header::UPGRADE, SPDY_31.to_owned()),
        (
            http::header::HeaderName::from_static("x-stream-protocol-version"),
            protocol.to_owned(),
        ),
    ])
}

fn websocket_headers(accept: &str, proto: Option<&str>) -> Vec<(http::header::HeaderName, String)> {
    let mut h = vec![
        (http::header::UPGRADE, "websocket".to_owned()),
        (http::header::CONNECTION, "Upgrade".to_owned()),
        (http::header::SEC_WEBSOCKET_ACCEPT, accept.to_owned()),
    ];
    if let Some(p) = proto {
        h.push((http::header::SEC_WEBSOCKET_PROTOCOL, p.to_owned()));
    }
    h
}

pub(crate) async fn serve(
    req: Request<Incoming>,
    runtime: Arc<dyn PodRuntime>,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
) -> Response<Body> {
    let headers = req.headers();
    let mode = if is_websocket(headers) {
        let Some(key) = headers.get(http::header::SEC_WEBSOCKET_KEY) else {
            return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
        };
        let accept = derive_accept_key(key.as_bytes());
        let offered = tokens(headers, http::header::SEC_WEBSOCKET_PROTOCOL);
        if offered.contains(&TUNNEL_PROTOCOL) {
            Mode::Tunnel(accept)
        } else if offered.is_empty() || offered.contains(&V4) || offered.contains(&V4_BASE64) {
            let ports = match parse_ports(req.uri().query().unwrap_or_default()) {
                Ok(p) => p,
                Err(e) => return text(StatusCode::BAD_REQUEST, e),
            };
            if channels(ports.len().saturating_sub(1)).is_none() {
                return text(StatusCode::BAD_REQUEST, "too many ports");
            }
            let proto = if offered.contains(&V4) {
                Some(V4)
            } else if offered.contains(&V4_BASE64) {
                Some(V4_BASE64)
            } else {
                None
            };
            Mode::Channels(accept, proto, ports)
        } else {
            return text(
                StatusCode::BAD_REQUEST,
                format!(
                    "unable to upgrade websocket connection: none of the offered subprotocols {offered:?} is supported ({TUNNEL_PROTOCOL}, {V4}, {V4_BASE64})"
                ),
            );
        }
    } else {
        if let Err(resp) = spdy_handshake(headers, &[PROTOCOL]) {
            return *resp;
        }
        Mode::Spdy
    };

    let sandbox = match find_sandbox(runtime.as_ref(), ns, pod, uid).await {
        Ok(id) => id,
        Err(resp) => return resp,
    };

    let resp = match &mode {
        Mode::Spdy => spdy_switching(PROTOCOL),
        Mode::Tunnel(accept) => switching(&websocket_headers(accept, Some(TUNNEL_PROTOCOL))),
        Mode::Channels(accept, proto, _) => switching(&websocket_headers(accept, *proto)),
    };
    tokio::spawn(async move {
        let upgraded = match hyper::upgrade::on(req).await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!(error = %e, "port-forward upgrade failed");
                return;
            }
        };
        match mode {
            Mode::Spdy => run_spdy(upgraded, runtime, sandbox, IDLE_TIMEOUT).await,
            Mode::Tunnel(_) => {
                let ws = WebSocketStream::from_raw_socket(upgraded, Role::Server, None).await;
                run_spdy(tunnel(ws), runtime, sandbox, IDLE_TIMEOUT).await
            }
            Mode::Channels(_, proto, ports) => {
                let ws = WebSocketStream::from_raw_socket(upgraded, Role::Server, None).await;
                let encoding = if proto == Some(V4_BASE64) {
                    Encoding::Base64
                } else {
                    Encoding::Binary
                };
                run_channels(ws, runtime, sandbox, ports, encoding, IDLE_TIMEOUT).await
            }
        }
    });
    resp
}

/// The ready sandbox of pod `ns/pod` (server.go's and the runtime's refusals otherwise).
async fn find_sandbox(
    runtime: &dyn PodRuntime,
    ns: &str,
    pod: &str,
    uid: Option<&str>,
) -> Result<String, Response<Body>> {
    let all = runtime
        .list_sandboxes()
        .await
        .map_err(|e| text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mine: Vec<_> = all
        .into_iter()
        .filter(|s| s.pod_namespace == ns && s.pod_name == pod)
        .collect();
    if mine.is_empty() {
        return Err(text(StatusCode::NOT_FOUND, "pod does not exist"));
    }
    let mine: Vec<_> = mine
        .into_iter()
        .filter(|s| uid.is_none_or(|u| u == s.pod_uid))
        .collect();
    if mine.is_empty() {
        return Err(text(StatusCode::NOT_FOUND, "pod not found"));
    }
    // Ready as CRI's sandbox status says (a set-up sandbox whose namespace is gone is not).
    for s in mine.iter().filter(|s| s.ready) {
        if let Ok(Some((_, SandboxState::Ready))) = runtime.sandbox_status(&s.id).await {
            return Ok(s.id.clone());
        }
    }
    // containerd's PortForward refusal.
    Err(text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "sandbox container is not running",
    ))
}

/// When anything last crossed a connection, for its idle timeout.
pub(crate) struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    pub(crate) fn deadline(&self, idle: Duration) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }
}

/// A WebSocket carrying a byte stream (the SPDY tunnel) as an in-memory duplex: binary
/// messages in are bytes in, bytes out go as one binary message per read, the end of the
/// bytes is a normal close.
fn tunnel<S>(ws: WebSocketStream<S>) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(4 * CHUNK);
    let (mut from_session, mut to_session) = tokio::io::split(ours);
    let (mut sink, mut incoming) = ws.split();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = incoming.next().await {
            let d = match msg {
                Message::Binary(d) => d,
                // TunnelingConnection.Read refuses anything but binary messages.
                Message::Text(_) | Message::Close(_) => break,
                _ => continue,
            };
            if to_session.write_all(&d).await.is_err() {
                break;
            }
        }
        let _ = to_session.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match from_session.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let msg = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    if sink.send(msg).await.is_err() {
                        return;
                    }
                }
            }
        }
        let close = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
        let _ = sink.close().await;
    });
    theirs
}

/// Copies between `conn` and a client's stream: `incoming` into the connection (its end is
/// a half-close), the connection's bytes out through `out` as `wrap(Some(bytes))`, its end
/// as `wrap(None)` when that is something. After one direction ends the other gets
/// [`HALF_CLOSE_GRACE`].
async fn splice<T: Send + 'static>(
    conn: tokio::net::TcpStream,
    mut incoming: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<T>,
    wrap: impl Fn(Option<Bytes>) -> Option<T> + Send,
) {
    let (mut r, mut w) = conn.into_split();
    let up = async move {
        while let Some(b) = incoming.recv().await {
            if w.write_all(&b).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(m) = wrap(Some(Bytes::copy_from_slice(&buf[..n]))) {
                        if out.send(m).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
        if let Some(m) = wrap(None) {
            let _ = out.send(m).await;
        }
    };
    tokio::pin!(up, down);
    tokio::select! {
        _ = &mut up => { let _ = tokio::time::timeout(HALF_CLOSE_GRACE, down).await; }
        _ = &mut down => { let _ = tokio::time::timeout(HALF_CLOSE_GRACE, up).await; }
    }
}

pub(crate) fn data(stream_id: u32, flags: u8, data: Bytes) -> Frame {
    Frame::Data {
        stream_id,
        flags,
        data,
    }
}

/// A stream the client opened.
struct Stream {
    /// Where its data goes; `None` after its FIN or RST.
    tx: Option<mpsc::Sender<Bytes>>,
    rx: Option<mpsc::Receiver<Bytes>>,
    /// Part of a pair being forwarded (then data waits for room rather than being refused).
    paired: bool,
}

#[derive(Default)]
struct Pair {
    data: Option<u32>,
    error: Option<u32>,
    port: u16,
}

enum Event {
    PairTimeout(String),
    Done(u32, u32),
}

/// Serves one SPDY/3.1 port-forward connection until the client goes, a protocol error, or
/// `idle` without a frame either way.
pub(crate) async fn run_spdy<S>(
    io: S,
    runtime: Arc<dyn PodRuntime>,
    sandbox: String,
    idle: Duration,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(io);
    let activity = Activity::new();
    let (out, writer) = spawn_writer(wr, activity.clone());

    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Event>();
    let mut streams: HashMap<u32, Stream> = HashMap::new();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut forwards = tokio::task::JoinSet::new();
    let mut dec = Decoder::new();
    let mut buf = BytesMut::with_capacity(2 * CHUNK);
    let mut next_id: u32 = 1;
    let mut gone_away = false;
    let mut ctx = Session {
        out: out.clone(),
        runtime,
        sandbox,
        ev_tx,
    };
    'conn: loop {
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(frame)) => {
                    let Some(frame) = frame_ok(frame, &mut next_id, gone_away, &out).await else {
                        continue;
                    };
                    if matches!(frame, Frame::GoAway { .. }) {
                        gone_away = true;
                        continue;
                    }
                    ctx.handle(frame, &mut streams, &mut pairs, &mut forwards)
                        .await;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "port-forward: bad SPDY frame, closing");
                    break 'conn;
                }
            }
        }
        tokio::select! {
            n = rd.read_buf(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(_) => activity.touch(),
            },
            Some(_) = forwards.join_next(), if !forwards.is_empty() => {}
            Some(ev) = ev_rx.recv() => match ev {
                Event::PairTimeout(id) => {
                    if let Some(p) = pairs.remove(&id) {
                        // monitorStreamPair's message, then the pair is forgotten.
                        let msg = format!("(conn=spdy, request={id}) timed out waiting for streams");
                        if let Some(e) = p.error {
                            let _ = out.send(data(e, 0, Bytes::from(msg))).await;
                            let _ = out.send(data(e, spdy::FLAG_FIN, Bytes::new())).await;
                        }
                        for s in [p.data, p.error].into_iter().flatten() {
                            streams.remove(&s);
                        }
                    }
                }
                Event::Done(d, e) => {
                    streams.remove(&d);
                    streams.remove(&e);
                }
            },
            _ = tokio::time::sleep_until(activity.deadline(idle)) => {
                if Instant::now() >= activity.deadline(idle) {
                    tracing::debug!("port-forward: connection idle, closing");
                    for id in streams.keys() {
                        let _ = out.try_send(Frame::RstStream { stream_id: *id, status: spdy::rst::CANCEL });
                    }
                    let _ = out.try_send(Frame::GoAway { last_good_stream_id: next_id.saturating_sub(2), status: 0 });
                    break;
                }
            }
        }
    }
    forwards.abort_all();
    drop(ctx);
    drop(out);
    let _ = writer.await;
}

/// The task writing a SPDY connection's frames (one encoder, so one header zlib stream, in
/// the order they were queued); it shuts the connection's write side when every sender
/// is gone.
pub(crate) fn spawn_writer<W>(
    mut wr: W,
    activity: Arc<Activity>,
) -> (mpsc::Sender<Frame>, tokio::task::JoinHandle<()>)
where
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, mut out_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut enc = match Encoder::new() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "SPDY encoder");
                return;
            }
        };
        let mut buf = Vec::new();
        while let Some(f) = out_rx.recv().await {
            buf.clear();
            let mut ok = enc.encode(&f, &mut buf).is_ok();
            while let Ok(f) = out_rx.try_recv() {
                ok &= enc.encode(&f, &mut buf).is_ok();
            }
            if !ok {
                tracing::debug!("SPDY: a frame could not be encoded");
            }
            if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
                break;
            }
            activity.touch();
        }
        let _ = wr.shutdown().await;
    });
    (out, writer)
}

/// Stream-id checks of spdystream's checkStreamFrame, and pings answered.
pub(crate) async fn frame_ok(
    frame: Frame,
    next_id: &mut u32,
    gone_away: bool,
    out: &mpsc::Sender<Frame>,
) -> Option<Frame> {
    match frame {
        Frame::SynStream { stream_id, .. } => {
            if gone_away {
                return None;
            }
            if stream_id < *next_id {
                let _ = out
                    .send(Frame::RstStream {
                        stream_id,
                        status: spdy::rst::PROTOCOL_ERROR,
                    })
                    .await;
                return None;
            }
            *next_id = stream_id.saturating_add(2);
            Some(frame)
        }
        // The client's pings are odd; an even one would answer a ping of ours.
        Frame::Ping { id } => {
            if id % 2 == 1 {
                let _ = out.send(Frame::Ping { id }).await;
            }
            None
        }
        other => Some(other),
    }
}

struct Session {
    out: mpsc::Sender<Frame>,
    runtime: Arc<dyn PodRuntime>,
    sandbox: String,
    ev_tx: mpsc::UnboundedSender<Event>,
}

impl Session {
    async fn handle(
        &mut self,
        frame: Frame,
        streams: &mut HashMap<u32, Stream>,
        pairs: &mut HashMap<String, Pair>,
        forwards: &mut tokio::task::JoinSet<()>,
    ) {
        match frame {
            Frame::SynStream {
                stream_id,
                flags,
                headers,
                ..
            } => {
                let (port, is_error) = match check_stream(&headers) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::debug!(stream_id, error = %e, "port-forward: stream rejected");
                        let _ = self
                            .out
                            .send(Frame::RstStream {
                                stream_id,
                                status: spdy::rst::CANCEL,
                            })
                            .await;
                        return;
                    }
                };
                let _ = self
                    .out
                    .send(Frame::SynReply {
                        stream_id,
                        flags: 0,
                        headers: Headers::default(),
                    })
                    .await;
                let (tx, rx) = mpsc::channel(16);
                let fin = flags & spdy::FLAG_FIN != 0;
                streams.insert(
                    stream_id,
                    Stream {
                        tx: (!fin).then_some(tx),
                        rx: Some(rx),
                        paired: false,
                    },
                );
                // httpStreamHandler.requestID, with its fallback for old clients.
                let request_id = match headers.get("requestid").filter(|r| !r.is_empty()) {
                    Some(r) => r.to_owned(),
                    None if is_error => stream_id.to_string(),
                    None => stream_id.saturating_sub(2).to_string(),
                };
                let created = !pairs.contains_key(&request_id);
                let pair = pairs.entry(request_id.clone()).or_default();
                if created {
                    let ev = self.ev_tx.clone();
                    let id = request_id.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(STREAM_CREATION_TIMEOUT).await;
                        let _ = ev.send(Event::PairTimeout(id));
                    });
                }
                let taken = if is_error {
                    pair.error.is_some()
                } else {
                    pair.data.is_some()
                };
                if taken {
                    let kind = if is_error { "error" } else { "data" };
                    let msg = format!(
                        "error processing stream for request {request_id}: {kind} stream already assigned"
                    );
                    if let Some(e) = pair.error {
                        let _ = self.out.send(data(e, 0, Bytes::from(msg))).await;
                    }
                    streams.remove(&stream_id);
                    let _ = self
                        .out
                        .send(Frame::RstStream {
                            stream_id,
                            status: spdy::rst::CANCEL,
                        })
                        .await;
                    return;
                }
                if is_error {
                    pair.error = Some(stream_id);
                } else {
                    pair.data = Some(stream_id);
                    pair.port = port;
                }
                if let (Some(d), Some(e)) = (pair.data, pair.error) {
                    let port = pair.port;
                    pairs.remove(&request_id);
                    let rx = streams.get_mut(&d).and_then(|s| {
                        s.paired = true;
                        s.rx.take()
                    });
                    if let Some(s) = streams.get_mut(&e) {
                        s.paired = true;
                        // Nothing reads the error stream's data (kubectl sends none).
                        s.rx = None;
                    }
                    let Some(rx) = rx else { return };
                    forwards.spawn(forward(
                        self.runtime.clone(),
                        self.sandbox.clone(),
                        port,
                        d,
                        e,
                        rx,
                        self.out.clone(),
                        self.ev_tx.clone(),
                    ));
                }
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                let Some(s) = streams.get_mut(&stream_id) else {
                    return;
                };
                if !data.is_empty() {
                    if let Some(tx) = &s.tx {
                        let sent = if s.paired {
                            tx.send(data).await.is_ok()
                        } else {
                            // Not forwarded yet: refuse rather than stall the connection.
                            tx.try_send(data).is_ok()
                        };
                        if !sent {
                            s.tx = None;
                        }
                    }
                }
                if flags & spdy::FLAG_FIN != 0 {
                    s.tx = None;
                }
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(s) = streams.get_mut(&stream_id) {
                    s.tx = None;
                }
            }
            // SYN_REPLY (the kubelet opens no streams), HEADERS, SETTINGS, WINDOW_UPDATE
            // (no flow control, as spdystream) and unknown frames.
            _ => {}
        }
    }
}

// A task body: its inputs are moved in one by one rather than bundled for a single caller.
#[allow(clippy::too_many_arguments)]
async fn forward(
    runtime: Arc<dyn PodRuntime>,
    sandbox: String,
    port: u16,
    data_id: u32,
    error_id: u32,
    incoming: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Frame>,
    ev: mpsc::UnboundedSender<Event>,
) {
    match runtime.port_forward(&sandbox, port).await {
        Err(e) => {
            let msg = forward_error(port, &sandbox, &e.to_string());
            tracing::debug!(%msg, "port-forward");
            let _ = out.send(data(error_id, 0, Bytes::from(msg))).await;
            let _ = out.send(data(data_id, spdy::FLAG_FIN, Bytes::new())).await;
        }
        Ok(conn) => {
            // The data stream's FIN goes out as soon as the pod's side ends.
            splice(conn, incoming, out.clone(), move |b| {
                Some(match b {
                    Some(b) => data(data_id, 0, b),
                    None => data(data_id, spdy::FLAG_FIN, Bytes::new()),
                })
            })
            .await;
        }
    }
    let _ = out.send(data(error_id, spdy::FLAG_FIN, Bytes::new())).await;
    let _ = ev.send(Event::Done(data_id, error_id));
}

/// Serves the v4 channel protocol: one connection per port for the WebSocket's life.
pub(crate) async fn run_channels<S>(
    ws: WebSocketStream<S>,
    runtime: Arc<dyn PodRuntime>,
    sandbox: String,
    ports: Vec<u16>,
    encoding: Encoding,
    idle: Duration,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let (mut sink, mut incoming) = ws.split();
    let (out, mut out_rx) = mpsc::channel::<Message>(64);
    let writer_activity = activity.clone();
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
            writer_activity.touch();
        }
        let _ = sink.close().await;
    });
    let mut inputs: Vec<mpsc::Sender<Bytes>> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, &port) in ports.iter().enumerate() {
        let Some((data_ch, error_ch)) = channels(i) else {
            break;
        };
        // Each channel starts with its port, little-endian.
        for ch in [data_ch, error_ch] {
            let _ = out.send(encoding.message(ch, &port.to_le_bytes())).await;
        }
        let (tx, rx) = mpsc::channel::<Bytes>(16);
        inputs.push(tx);
        let (runtime, sandbox, out) = (runtime.clone(), sandbox.clone(), out.clone());
        tasks.spawn(async move {
            match runtime.port_forward(&sandbox, port).await {
                Err(e) => {
                    let msg = forward_error(port, &sandbox, &e.to_string());
                    let _ = out.send(encoding.message(error_ch, msg.as_bytes())).await;
                }
                Ok(conn) => {
                    splice(conn, rx, out, move |b| {
                        b.map(|b| encoding.message(data_ch, &b))
                    })
                    .await
                }
            }
        });
    }
    loop {
        tokio::select! {
            msg = incoming.next() => {
                let Some(Ok(msg)) = msg else { break };
                activity.touch();
                if matches!(msg, Message::Close(_)) {
                    break;
                }
                let Some((ch, payload)) = encoding.parse(&msg) else { continue };
                // Only data channels take input; the error channels are write-only.
                if ch % 2 == 0 {
                    if let Some(tx) = inputs.get(usize::from(ch / 2)) {
                        let _ = tx.send(Bytes::from(payload)).await;
                    }
                }
            }
            done = tasks.join_next() => {
                if done.is_none() {
                    // Every port is done: the connection ends (wsstream's Close).
                    let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
                    let _ = out.send(Message::Close(Some(close))).await;
                    break;
                }
            }
            _ = tokio::time::sleep_until(activity.deadline(idle)) => {
                if Instant::now() >= activity.deadline(idle) {
                    break;
                }
            }
        }
    }
    tasks.abort_all();
    drop(inputs);
    drop(out);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_runtime::testing::RecordingRuntime;

    #[test]
    fn ports_as_upstream_reads_them() {
        assert_eq!(
            parse_ports("port=8080&port=9090,53"),
            Ok(vec![8080, 9090, 53])
        );
        assert_eq!(parse_ports("ports=8080%2C9090"), Ok(vec![8080, 9090]));
        assert_eq!(
            parse_ports(""),
            Err("query parameter \"port\" is required".into())
        );
        assert!(parse_ports("port=").is_err());
        assert!(parse_ports("port=0").unwrap_err().contains("must be > 0"));
        assert!(parse_ports("port=70000").is_err());
        assert!(parse_ports("port=http").is_err());
    }

    #[test]
    fn v4_channel_framing() {
        assert_eq!(channels(0), Some((0, 1)));
        assert_eq!(channels(3), Some((6, 7)));
        assert_eq!(channels(127), Some((254, 255)));
        assert_eq!(channels(128), None);
        // 8080 = 0x1f90, little-endian after the channel byte.
        assert_eq!(channel_message(1, &8080u16.to_le_bytes()), [1, 0x90, 0x1f]);
        assert_eq!(channel_message(2, b"hi"), b"\x02hi");
        // The base64 form: '0' + channel, then the data.
        let m = Encoding::Base64.message(1, &8080u16.to_le_bytes());
        assert_eq!(m, Message::Text("1kB8=".into()));
        assert_eq!(Encoding::Base64.parse(&m), Some((1, vec![0x90, 0x1f])));
        assert_eq!(
            Encoding::Base64.parse(&Message::Text("0aGk=".into())),
            Some((0, b"hi".to_vec()))
        );
        assert_eq!(Encoding::Base64.parse(&Message::Text("0!!".into())), None);
        assert_eq!(Encoding::Binary.parse(&Message::Text("0aGk=".into())), None);
        assert_eq!(
            Encoding::Binary.parse(&Encoding::Binary.message(4, b"x")),
            Some((4, b"x".to_vec()))
        );
    }

    #[test]
    fn streams_need_a_port_and_a_type() {
        let h = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .fold(Headers::default(), |h, (k, v)| h.with(k, v))
        };
        assert_eq!(
            check_stream(&h(&[("port", "8080"), ("streamtype", "error")])),
            Ok((8080, true))
        );
        assert_eq!(
            check_stream(&h(&[("port", "80"), ("streamtype", "data")])),
            Ok((80, false))
        );
        assert!(check_stream(&h(&[("streamtype", "data")])).is_err());
        assert!(check_stream(&h(&[("port", "0"), ("streamtype", "data")])).is_err());
        assert!(check_stream(&h(&[("port", "80")])).is_err());
        assert_eq!(
            check_stream(&h(&[("port", "80"), ("streamtype", "stdin")])),
            Err("invalid stream type \"stdin\"".into())
        );
        assert_eq!(
            forward_error(8080, "sb1", "refused"),
            "error forwarding port 8080 to pod sb1, uid : refused"
        );
    }

    /// Reads frames from the session's side until `want` says stop (bounded).
    async fn frames_until(
        io: &mut tokio::io::DuplexStream,
        dec: &mut Decoder,
        buf: &mut BytesMut,
        mut want: impl FnMut(&Frame) -> bool,
    ) -> Vec<Frame> {
        let mut got = Vec::new();
        for _ in 0..1000 {
            while let Some(f) = dec.decode(buf).unwrap() {
                let stop = want(&f);
                got.push(f);
                if stop {
                    return got;
                }
            }
            if io.read_buf(buf).await.unwrap() == 0 {
                return got;
            }
        }
        got
    }

    #[tokio::test(start_paused = true)]
    async fn idle_channel_websocket_is_closed() {
        let rt = Arc::new(RecordingRuntime::new());
        let mut pod = k8s_openapi::api::core::v1::Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("default".into());
        let config = crate::kubelet::sandbox::sandbox_config(&pod, "sb", &Default::default());
        rt.run_sandbox(config).await.unwrap();
        let (client, server) = tokio::io::duplex(64 * 1024);
        let idle = Duration::from_secs(60);
        let ws = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
        let runtime: Arc<dyn PodRuntime> = rt.clone();
        let session = tokio::spawn(run_channels(
            ws,
            runtime,
            "sb".into(),
            vec![80],
            Encoding::Binary,
            idle,
        ));
        let mut ws = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        // The pod's side stays open and silent, and so does the client.
        let _pod_side = rt.next_port_forward(Duration::from_secs(5)).await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(idle * 10, async {
            for _ in 0..10 {
                match ws.next().await {
                    Some(Ok(Message::Binary(d))) => got.push(d.to_vec()),
                    _ => break,
                }
            }
        })
        .await
        .expect("the idle connection was not closed");
        assert_eq!(got, [vec![0, 80, 0], vec![1, 80, 0]]);
        tokio::time::timeout(Duration::from_secs(1), session)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_dial_ends_the_channel_websocket() {
        let rt = Arc::new(RecordingRuntime::new());
        let (client, server) = tokio::io::duplex(64 * 1024);
        let idle = Duration::from_secs(60);
        let ws = WebSocketStream::from_raw_socket(server, Role::Server, None).await;
        let runtime: Arc<dyn PodRuntime> = rt.clone();
        // No such sandbox: the dial fails, yet the connection stays until it is idle.
        let session = tokio::spawn(run_channels(
            ws,
            runtime,
            "gone".into(),
            vec![80],
            Encoding::Base64,
            idle,
        ));
        let mut ws = WebSocketStream::from_raw_socket(client, Role::Client, None).await;
        let mut got = Vec::new();
        // In base64 text messages this time.
        for _ in 0..10 {
            match ws.next().await {
                Some(Ok(m @ Message::Text(_))) => got.push(Encoding::Base64.parse(&m).unwrap()),
                _ => break,
            }
        }
        assert_eq!(got[0], (0, vec![80, 0]));
        assert_eq!(got[1], (1, vec![80, 0]));
        assert_eq!(got[2].0, 1);
        assert!(
            String::from_utf8_lossy(&got[2].1)
                .starts_with("error forwarding port 80 to pod gone, uid : "),
            "{got:?}"
        );
        tokio::time::timeout(Duration::from_secs(1), session)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connection_is_closed_and_incomplete_pairs_time_out() {
        let rt: Arc<dyn PodRuntime> = Arc::new(RecordingRuntime::new());
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let idle = STREAM_CREATION_TIMEOUT * 4;
        let session = tokio::spawn(run_spdy(server, rt, "sb".into(), idle));
        let mut enc = Encoder::new().unwrap();
        let mut wire = Vec::new();
        // An error stream whose data stream never comes, and a ping.
        enc.encode(
            &Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                slot: 0,
                flags: 0,
                headers: Headers::default()
                    .with("streamtype", "error")
                    .with("port", "80")
                    .with("requestid", "0"),
            },
            &mut wire,
        )
        .unwrap();
        enc.encode(&Frame::Ping { id: 1 }, &mut wire).unwrap();
        client.write_all(&wire).await.unwrap();
        let (mut dec, mut buf) = (Decoder::new(), BytesMut::new());
        let got = frames_until(&mut client, &mut dec, &mut buf, |f| {
            matches!(
                f,
                Frame::Data {
                    flags: spdy::FLAG_FIN,
                    ..
                }
            )
        })
        .await;
        assert!(
            matches!(got[0], Frame::SynReply { stream_id: 1, .. }),
            "{got:?}"
        );
        assert!(got.contains(&Frame::Ping { id: 1 }), "{got:?}");
        assert!(
            got.contains(&data(
                1,
                0,
                Bytes::from("(conn=spdy, request=0) timed out waiting for streams")
            )),
            "{got:?}"
        );
        // Then nothing for `idle`: the kubelet ends the connection.
        let rest = tokio::time::timeout(
            idle * 10,
            frames_until(&mut client, &mut dec, &mut buf, |_| false),
        )
        .await
        .expect("the idle connection was not closed");
        assert!(
            rest.iter().any(|f| matches!(f, Frame::GoAway { .. })),
            "{rest:?}"
        );
        tokio::time::timeout(Duration::from_secs(1), session)
            .await
            .unwrap()
            .unwrap();
    }
}
