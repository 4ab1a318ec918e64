//! The listeners: one answer per question over UDP and TCP (RFC 1035 framing, RFC 7766).
//! A question goes to the index; what the index does not own goes to the forwarder.
//! UDP answers larger than the client's buffer (512 bytes, or its EDNS size) are sent
//! truncated (TC) with the question only, so the client asks again over TCP. Requests
//! with EDNS get an OPT back (BADVERS for versions other than 0).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::forward::Forwarder;
use crate::index::Lookup;
use crate::{Error, Result, SharedIndex};

/// The EDNS buffer size we announce (the DNS flag day's 1232).
const OUR_PAYLOAD: u16 = 1232;
/// A TCP connection idle this long is closed (RFC 7766 suggests seconds).
const TCP_IDLE: Duration = Duration::from_secs(10);
/// The most TCP connections served at once; more wait in the kernel's backlog.
const MAX_TCP: usize = 256;

/// Binds UDP and TCP on one address; port 0 picks one free port for both.
pub(crate) async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener)> {
    let bind_error = |protocol, source| Error::Bind {
        addr,
        protocol,
        source,
    };
    // With port 0 the free UDP port may be taken over TCP: a few tries.
    let tries = if addr.port() == 0 { 20 } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|e| bind_error("udp", e))?;
        let port = udp.local_addr().map_err(|e| bind_error("udp", e))?.port();
        match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(bind_error(
        "tcp",
        last.unwrap_or_else(|| std::io::Error::other("no free port")),
    ))
}

/// Answers questions: the index first, the forwarder for the rest.
pub(crate) struct Handler {
    pub(crate) index: SharedIndex,
    pub(crate) forwarder: Arc<Forwarder>,
}

/// A question that needs the network (forwarding, or an ExternalName's target): the reply
/// so far and what to ask.
pub(crate) struct Pending {
    reply: Message,
    query: Query,
    /// Forward `query` as it is (else: chase an ExternalName's target and append).
    forward: bool,
    recursion_desired: bool,
    limit: usize,
}

/// What [`Handler::begin`] made of a request.
pub(crate) enum Step {
    /// The wire answer, or nothing to send.
    Done(Option<Vec<u8>>),
    /// To be finished by [`Handler::finish`].
    Network(Box<Pending>),
}

impl Handler {
    /// The wire answer to the wire request `bytes`, sized for UDP when `udp` (or `None`
    /// for requests that get no answer: responses, garbage without a header).
    pub(crate) async fn handle(&self, bytes: &[u8], udp: bool) -> Option<Vec<u8>> {
        match self.begin(bytes, udp) {
            Step::Done(out) => out,
            Step::Network(pending) => self.finish(*pending, udp).await,
        }
    }

    /// Everything that needs no network: parsing, the checks, the index's answer.
    pub(crate) fn begin(&self, bytes: &[u8], udp: bool) -> Step {
        let request = match Message::from_vec(bytes) {
            Ok(request) => request,
            Err(_) if bytes.len() >= 12 && bytes[2] & 0x80 == 0 => {
                let id = u16::from_be_bytes([bytes[0], bytes[1]]);
                let reply = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
                return Step::Done(reply.to_vec().ok());
            }
            Err(_) => return Step::Done(None),
        };
        if request.metadata.message_type != MessageType::Query {
            return Step::Done(None);
        }
        let mut reply = Message::response(request.metadata.id, request.metadata.op_code);
        reply.metadata.recursion_desired = request.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        reply.metadata.checking_disabled = request.metadata.checking_disabled;
        reply.add_queries(request.queries.iter().cloned());
        let limit = usize::from(
            request
                .edns
                .as_ref()
                .map_or(512, |e| e.max_payload().max(512)),
        );
        if let Some(edns) = &request.edns {
            let mut ours = Edns::new();
            ours.set_max_payload(OUR_PAYLOAD);
            reply.set_edns(ours);
            if edns.version() > 0 {
                reply.metadata.response_code = ResponseCode::BADVERS;
                return Step::Done(reply.to_vec().ok());
            }
        }
        if request.metadata.op_code != OpCode::Query {
            reply.metadata.response_code = ResponseCode::NotImp;
            return Step::Done(encode(&reply, udp, limit));
        }
        let [query] = request.queries.as_slice() else {
            reply.metadata.response_code = ResponseCode::FormErr;
            return Step::Done(encode(&reply, udp, limit));
        };
        let lookup = self.index.read().lookup(query.name(), query.query_type());
        match lookup {
            Lookup::Answer(answer) => {
                reply.metadata.authoritative = true;
                reply.metadata.response_code = answer.code;
                reply.answers = answer.answers;
                reply.authorities = answer.authorities;
                reply.additionals = answer.additionals;
                match answer.chase {
                    None => Step::Done(encode(&reply, udp, limit)),
                    Some(target) => Step::Network(Box::new(Pending {
                        reply,
                        query: Query::query(target, query.query_type()),
                        forward: false,
                        recursion_desired: true,
                        limit,
                    })),
                }
            }
            Lookup::Forward => Step::Network(Box::new(Pending {
                reply,
                query: query.clone(),
                forward: true,
                recursion_desired: request.metadata.recursion_desired,
                limit,
            })),
        }
    }

    /// Asks upstream what `pending` needs and encodes the answer.
    pub(crate) async fn finish(&self, pending: Pending, udp: bool) -> Option<Vec<u8>> {
        let Pending {
            mut reply,
            query,
            forward,
            recursion_desired,
            limit,
        } = pending;
        let answer = self.forwarder.resolve(&query, recursion_desired).await;
        if forward {
            reply.metadata.response_code = answer.code;
            reply.answers = answer.answers;
            reply.authorities = answer.authorities;
            reply.additionals = answer.additionals;
        } else if answer.code == ResponseCode::NoError {
            reply.answers.extend(answer.answers);
        }
        encode(&reply, udp, limit)
    }
}

/// The wire form of `reply`; over UDP, past the client's `limit`, the truncated form (the
/// header with TC and the question only).
fn encode(reply: &Message, udp: bool, limit: usize) -> Option<Vec<u8>> {
    let wire = reply.to_vec().ok()?;
    if udp && wire.len() > limit {
        let mut truncated = reply.truncate();
        truncated.metadata.id = reply.metadata.id;
        truncated.metadata.message_type = MessageType::Response;
        return truncated.to_vec().ok();
    }
    Some(wire)
}

/// Reads questions from `socket` and answers each: the cluster's inline, those that need
/// the network in their own task (an upstream's delay must not hold the cluster's answers).
pub(crate) async fn serve_udp(socket: Arc<UdpSocket>, handler: Arc<Handler>) -> Result<()> {
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = match socket.recv_from(&mut buf).await {
            Ok(got) => got,
            // An ICMP error from an earlier send (port unreachable) surfaces here on
            // Linux; it says nothing about this socket.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(source) => {
                return Err(Error::Io {
                    what: "UDP listener",
                    source,
                })
            }
        };
        match handler.begin(&buf[..n], true) {
            Step::Done(Some(out)) => {
                let _ = socket.send_to(&out, peer).await;
            }
            Step::Done(None) => {}
            Step::Network(pending) => {
                let socket = socket.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    if let Some(out) = handler.finish(*pending, true).await {
                        let _ = socket.send_to(&out, peer).await;
                    }
                });
            }
        }
    }
}

/// Accepts TCP connections and answers each one's questions in order.
pub(crate) async fn serve_tcp(listener: TcpListener, handler: Arc<Handler>) -> Result<()> {
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_TCP));
    loop {
        let permit = limit.clone().acquire_owned().await.map_err(|e| Error::Io {
            what: "TCP listener",
            source: std::io::Error::other(e),
        })?;
        let (stream, _) = match listener.accept().await {
            Ok(got) => got,
            Err(e) => {
                // Out of file descriptors and the like: wait and go on.
                tracing::warn!(error = %e, "accepting a DNS connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let _ = serve_connection(stream, &handler).await;
            drop(permit);
        });
    }
}

async fn serve_connection(mut stream: TcpStream, handler: &Handler) -> std::io::Result<()> {
    loop {
        let len = match tokio::time::timeout(TCP_IDLE, stream.read_u16()).await {
            Ok(Ok(len)) => len,
            Ok(Err(_)) | Err(_) => return Ok(()),
        };
        let mut buf = vec![0u8; usize::from(len)];
        tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle"))??;
        let Some(out) = handler.handle(&buf, false).await else {
            continue;
        };
        let Ok(out_len) = u16::try_from(out.len()) else {
            continue;
        };
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&out_len.to_be_bytes());
        framed.extend_from_slice(&out);
        stream.write_all(&framed).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handler() -> Handler {
        let mut index = crate::Index::new("cluster.local");
        index.apply_namespace("default");
        index.set_synced(true);
        Handler {
            index: Arc::new(parking_lot::RwLock::new(index)),
            forwarder: Arc::new(Forwarder::from_resolv_conf(
                std::path::Path::new("/nonexistent"),
                &[],
                &[],
                10,
                Duration::from_millis(100),
            )),
        }
    }

    fn request(name: &str, edns: Option<(u8, u16)>) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            hickory_proto::rr::Name::from_ascii(name).unwrap(),
            hickory_proto::rr::RecordType::A,
        ));
        if let Some((version, payload)) = edns {
            let mut e = Edns::new();
            e.set_version(version).set_max_payload(payload);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    #[tokio::test]
    async fn edns_versions_and_garbage() {
        let h = handler();
        let out = h
            .handle(
                &request("a.default.svc.cluster.local.", Some((1, 4096))),
                true,
            )
            .await
            .unwrap();
        let reply = Message::from_vec(&out).unwrap();
        // BADVERS and BADSIG share code 16; hickory decodes it as BADSIG.
        assert_eq!(u16::from(reply.metadata.response_code), 16);
        assert!(reply.edns.is_some());
        let out = h
            .handle(
                &request("a.default.svc.cluster.local.", Some((0, 4096))),
                true,
            )
            .await
            .unwrap();
        let reply = Message::from_vec(&out).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(
            reply.edns.as_ref().map(|e| e.max_payload()),
            Some(OUR_PAYLOAD)
        );
        // A header with a broken body: FORMERR with the id; less than a header: nothing.
        let mut broken = request("a.default.svc.cluster.local.", None);
        broken.truncate(16);
        let reply = Message::from_vec(&h.handle(&broken, true).await.unwrap()).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(reply.metadata.id, 7);
        assert!(h.handle(&[1, 2, 3], true).await.is_none());
        // No upstreams: SERVFAIL for a name outside the cluster.
        let reply = Message::from_vec(
            &h.handle(&request("example.com.", None), true)
                .await
                .unwrap(),
        )
        .unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    }
}
