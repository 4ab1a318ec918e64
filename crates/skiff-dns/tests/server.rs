//! The real server on 127.0.0.1 (port 0), fed through the index seam (no API server):
//! cluster names over UDP and TCP, with `dig` and with hickory messages; forwarding to a
//! fake upstream the test starts on a loopback address at port 53 (through a resolv.conf
//! it writes), its cache and SERVFAIL; truncation and the TCP retry.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A fake upstream resolver on `127.x.y.z:53`: every A question gets 192.0.2.1 (TTL 60)
/// except names starting `nx`, which get NXDOMAIN, and `big`, which gets 60 addresses
/// (truncated over UDP, so the forwarder asks again over TCP).
struct Upstream {
    addr: SocketAddr,
    questions: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn upstream_answer(request: &Message) -> Message {
    let mut reply = Message::response(request.metadata.id, OpCode::Query);
    reply.metadata.recursion_available = true;
    reply.add_queries(request.queries.iter().cloned());
    let q = &request.queries[0];
    let label = q.name().to_ascii().to_ascii_lowercase();
    if label.starts_with("nx") {
        reply.metadata.response_code = ResponseCode::NXDomain;
    } else if q.query_type() == RecordType::A {
        let count = if label.starts_with("big") { 60 } else { 1 };
        for i in 0..count {
            reply.add_answer(Record::from_rdata(
                q.name().clone(),
                60,
                RData::A(A::new(192, 0, 2, 1 + i as u8)),
            ));
        }
    }
    reply
}

async fn start_upstream() -> Result<Upstream> {
    let questions = Arc::new(AtomicUsize::new(0));
    // A random loopback address at port 53, as resolv.conf nameservers have no port.
    let mut last = None;
    for _ in 0..50 {
        let ip = Ipv4Addr::new(127, rand_byte(), rand_byte(), rand_byte().max(2));
        let addr = SocketAddr::new(IpAddr::V4(ip), 53);
        let udp = match tokio::net::UdpSocket::bind(addr).await {
            Ok(s) => s,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let tcp = match tokio::net::TcpListener::bind(addr).await {
            Ok(s) => s,
            Err(e) => {
                last = Some(e);
                continue;
            }
        };
        let udp_questions = questions.clone();
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = udp.recv_from(&mut buf).await {
                udp_questions.fetch_add(1, Ordering::SeqCst);
                let Ok(request) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let reply = upstream_answer(&request);
                let mut wire = reply.to_vec().expect("encodes");
                if wire.len() > 512 {
                    wire = {
                        let mut t = reply.truncate();
                        t.metadata.id = reply.metadata.id;
                        t.metadata.message_type = MessageType::Response;
                        t.to_vec().expect("encodes")
                    };
                }
                let _ = udp.send_to(&wire, peer).await;
            }
        });
        let tcp_questions = questions.clone();
        let tcp_task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = tcp.accept().await {
                tcp_questions.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let Ok(len) = stream.read_u16().await else {
                        return;
                    };
                    let mut buf = vec![0u8; usize::from(len)];
                    if stream.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    let Ok(request) = Message::from_vec(&buf) else {
                        return;
                    };
                    let wire = upstream_answer(&request).to_vec().expect("encodes");
                    let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&wire);
                    let _ = stream.write_all(&framed).await;
                });
            }
        });
        return Ok(Upstream {
            addr,
            questions,
            tasks: vec![udp_task, tcp_task],
        });
    }
    Err(last
        .map(anyhow::Error::from)
        .unwrap_or_else(|| anyhow::anyhow!("no loopback address")))
}

fn rand_byte() -> u8 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .subsec_nanos();
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst) as u32;
    ((nanos ^ (n.wrapping_mul(2654435761)) ^ std::process::id()) % 250 + 1) as u8
}

/// A server on 127.0.0.1:0 with `upstream` (if any) in its resolv.conf, answering from
/// an index with a few Services; returns its address, the index and the running task.
struct Server {
    addr: SocketAddr,
    index: skiff_dns::SharedIndex,
    task: tokio::task::JoinHandle<skiff_dns::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start_server(upstreams: &[IpAddr]) -> Result<Server> {
    let dir = tempfile::tempdir()?;
    let resolv = dir.path().join("resolv.conf");
    let mut text = String::from("search example.org\n");
    for ip in upstreams {
        text.push_str(&format!("nameserver {ip}\n"));
    }
    std::fs::write(&resolv, text)?;
    let mut config = skiff_dns::Config::new(vec!["127.0.0.1:0".parse()?]);
    config.resolv_conf = resolv;
    config.upstream_timeout = Duration::from_millis(500);
    let dns = skiff_dns::bind(&config).await?;
    let addr = dns.local_addrs()[0];
    assert_ne!(addr.port(), 0);
    let index = dns.index();
    {
        let mut index = index.write();
        index.apply_namespace("default");
        index.apply_service(&serde_json::from_value::<Service>(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.43.0.20", "ports": [{"name": "http", "port": 80}]}
        }))?);
        index.apply_service(&serde_json::from_value::<Service>(json!({
            "metadata": {"name": "many", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]}
        }))?);
        let endpoints: Vec<_> = (0..100)
            .map(|i| json!({"addresses": [format!("10.42.{}.{}", i / 200, i % 200 + 2)]}))
            .collect();
        index.apply_slice(&serde_json::from_value::<EndpointSlice>(json!({
            "metadata": {"name": "many-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "many"}},
            "addressType": "IPv4", "endpoints": endpoints,
            "ports": [{"name": "http", "port": 80}]
        }))?);
        index.apply_service(&serde_json::from_value::<Service>(json!({
            "metadata": {"name": "ext", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "outside.example.net"}
        }))?);
        index.set_synced(true);
    }
    let task = tokio::spawn(dns.answer());
    Ok(Server {
        addr,
        index,
        task,
        _dir: dir,
    })
}

fn question(name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::new(
        rand_byte() as u16 * 256 + 7,
        MessageType::Query,
        OpCode::Query,
    );
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("a name"), qtype));
    if let Some(payload) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        m.set_edns(e);
    }
    m
}

async fn udp(server: SocketAddr, request: &Message) -> Result<Message> {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    socket.send_to(&request.to_vec()?, server).await?;
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .context("no UDP answer")??;
    let reply = Message::from_vec(&buf[..n])?;
    assert_eq!(reply.metadata.id, request.metadata.id);
    Ok(reply)
}

async fn tcp(server: SocketAddr, requests: &[Message]) -> Result<Vec<Message>> {
    let mut stream = tokio::net::TcpStream::connect(server).await?;
    let mut replies = Vec::new();
    // Several questions on one connection, answered in order.
    for request in requests {
        let wire = request.to_vec()?;
        let mut framed = (wire.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&wire);
        stream.write_all(&framed).await?;
    }
    for _ in requests {
        let len = tokio::time::timeout(Duration::from_secs(5), stream.read_u16())
            .await
            .context("no TCP answer")??;
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await?;
        replies.push(Message::from_vec(&buf)?);
    }
    Ok(replies)
}

/// `dig` with `args`, its stdout.
async fn dig(server: SocketAddr, args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=3", "+tries=1"])
        .args(args)
        .output()
        .await
        .context("running dig (dnsutils)")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test]
async fn cluster_names_over_udp_and_tcp() -> Result<()> {
    let server = start_server(&[]).await?;
    let reply = udp(
        server.addr,
        &question("web.default.svc.cluster.local.", RecordType::A, None),
    )
    .await?;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.metadata.authoritative);
    assert!(reply.metadata.recursion_desired);
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.answers[0].data, RData::A(A::new(10, 43, 0, 20)));
    assert!(reply.edns.is_none(), "no OPT for a request without one");

    let replies = tcp(
        server.addr,
        &[
            question(
                "_http._tcp.web.default.svc.cluster.local.",
                RecordType::SRV,
                None,
            ),
            question("nope.default.svc.cluster.local.", RecordType::A, Some(1232)),
        ],
    )
    .await?;
    assert_eq!(replies[0].answers.len(), 1);
    assert_eq!(replies[0].answers[0].record_type(), RecordType::SRV);
    assert_eq!(replies[0].additionals.len(), 1);
    assert_eq!(replies[1].metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(replies[1].authorities[0].record_type(), RecordType::SOA);
    assert!(replies[1].edns.is_some());

    // dig's view.
    let out = dig(server.addr, &["+short", "web.default.svc.cluster.local"]).await?;
    assert_eq!(out.trim(), "10.43.0.20");
    let out = dig(
        server.addr,
        &[
            "+tcp",
            "+short",
            "SRV",
            "_http._tcp.web.default.svc.cluster.local",
        ],
    )
    .await?;
    assert_eq!(out.trim(), "0 100 80 web.default.svc.cluster.local.");
    let out = dig(server.addr, &["-x", "10.43.0.20", "+short"]).await?;
    assert_eq!(out.trim(), "web.default.svc.cluster.local.");
    let out = dig(server.addr, &["nope.default.svc.cluster.local"]).await?;
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    assert!(
        out.contains(
            "cluster.local.\t\t5\tIN\tSOA\tns.dns.cluster.local. hostmaster.cluster.local."
        ),
        "{out}"
    );

    // A change through the seam is answered at once.
    server.index.write().delete_service("default", "web");
    let reply = udp(
        server.addr,
        &question("web.default.svc.cluster.local.", RecordType::A, None),
    )
    .await?;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    Ok(())
}

#[tokio::test]
async fn big_answers_are_truncated_over_udp_and_whole_over_tcp() -> Result<()> {
    let server = start_server(&[]).await?;
    let name = "many.default.svc.cluster.local.";
    // 100 addresses do not fit in 512 bytes, nor in 1232.
    for edns in [None, Some(1232)] {
        let reply = udp(server.addr, &question(name, RecordType::A, edns)).await?;
        assert!(reply.metadata.truncation, "{edns:?}");
        assert!(reply.answers.is_empty());
        assert_eq!(reply.queries.len(), 1);
    }
    // A client with a big enough buffer gets it all over UDP.
    let reply = udp(server.addr, &question(name, RecordType::A, Some(4096))).await?;
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 100);
    let replies = tcp(server.addr, &[question(name, RecordType::A, None)]).await?;
    assert!(!replies[0].metadata.truncation);
    assert_eq!(replies[0].answers.len(), 100);
    // dig retries over TCP by itself when it sees TC.
    let out = dig(
        server.addr,
        &["+noedns", "+short", "many.default.svc.cluster.local"],
    )
    .await?;
    assert_eq!(out.lines().count(), 100, "{out}");
    Ok(())
}

#[tokio::test]
async fn other_names_are_forwarded_and_cached() -> Result<()> {
    let upstream = start_upstream().await?;
    let server = start_server(&[upstream.addr.ip()]).await?;
    let reply = udp(
        server.addr,
        &question("www.example.com.", RecordType::A, None),
    )
    .await?;
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(!reply.metadata.authoritative);
    assert_eq!(reply.answers[0].data, RData::A(A::new(192, 0, 2, 1)));
    assert_eq!(
        reply.answers[0].ttl, 30,
        "cached answers are capped at 30 s"
    );
    let asked = upstream.questions.load(Ordering::SeqCst);
    assert_eq!(asked, 1);
    // Again (other case): from the cache.
    let reply = udp(
        server.addr,
        &question("WWW.example.COM.", RecordType::A, None),
    )
    .await?;
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(upstream.questions.load(Ordering::SeqCst), 1);
    // NXDOMAIN is passed on; unknown reverse names go upstream too.
    let reply = udp(
        server.addr,
        &question("nx.example.com.", RecordType::A, None),
    )
    .await?;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    udp(
        server.addr,
        &question("9.9.9.9.in-addr.arpa.", RecordType::PTR, None),
    )
    .await?;
    assert_eq!(upstream.questions.load(Ordering::SeqCst), 3);
    // A truncated upstream answer is fetched again over TCP; the client gets it over TCP.
    let replies = tcp(
        server.addr,
        &[question("big.example.com.", RecordType::A, None)],
    )
    .await?;
    assert_eq!(replies[0].answers.len(), 60);
    // An ExternalName: the CNAME and the target's addresses from upstream.
    let reply = udp(
        server.addr,
        &question("ext.default.svc.cluster.local.", RecordType::A, None),
    )
    .await?;
    assert_eq!(reply.answers.len(), 2, "{reply:?}");
    assert_eq!(reply.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(reply.answers[1].data, RData::A(A::new(192, 0, 2, 1)));
    // Search-path expansions under the domain never reach upstream.
    let before = upstream.questions.load(Ordering::SeqCst);
    let reply = udp(
        server.addr,
        &question(
            "www.example.com.default.svc.cluster.local.",
            RecordType::A,
            None,
        ),
    )
    .await?;
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(upstream.questions.load(Ordering::SeqCst), before);
    let out = dig(server.addr, &["+short", "host.example.com"]).await?;
    assert_eq!(out.trim(), "192.0.2.1");
    Ok(())
}

#[tokio::test]
async fn servfail_when_upstreams_fail_or_loop() -> Result<()> {
    // An address nothing listens on (and the cluster DNS IP, dropped as a loop).
    let dead: IpAddr = "127.254.254.254".parse()?;
    let server = start_server(&[dead]).await?;
    let reply = udp(
        server.addr,
        &question("www.example.com.", RecordType::A, None),
    )
    .await?;
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);

    let dir = tempfile::tempdir()?;
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 10.43.0.10\nnameserver 127.0.0.1\n")?;
    let mut config = skiff_dns::Config::new(vec!["0.0.0.0:0".parse()?]);
    config.resolv_conf = resolv;
    config.cluster_dns = vec!["10.43.0.10".parse()?];
    let dns = skiff_dns::bind(&config).await?;
    assert_eq!(dns.upstreams(), ["127.0.0.1:53".parse::<SocketAddr>()?]);
    Ok(())
}

#[tokio::test]
async fn port_in_use_is_a_clear_error() -> Result<()> {
    let taken = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
    let config = skiff_dns::Config::new(vec![taken.local_addr()?]);
    let Err(e) = skiff_dns::bind(&config).await else {
        panic!("bound a port in use");
    };
    let text = e.to_string();
    assert!(
        text.contains("listening for DNS on 127.0.0.1:") && text.contains("udp"),
        "{text}"
    );
    Ok(())
}
