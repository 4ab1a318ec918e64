//! A fake upstream DNS resolver for tests of forwarding: at `127.x.y.z:53` (resolv.conf
//! nameservers have no port), every A question gets 192.0.2.53.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::{bail, Result};
use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};

/// What the fake upstream answers every A question with.
pub const ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);

/// A fake upstream resolver at `127.x.y.z:53` (resolv.conf nameservers have no port):
/// every A question gets 192.0.2.53.
pub struct Upstream {
    pub ip: IpAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub async fn start_upstream() -> Result<Upstream> {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64;
    for i in 0..50u64 {
        let n = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(i * 1442695040888963407);
        let ip = Ipv4Addr::new(
            127,
            (n >> 8) as u8,
            (n >> 16) as u8,
            ((n >> 24) as u8).max(2),
        );
        let Ok(socket) = tokio::net::UdpSocket::bind((ip, 53)).await else {
            continue;
        };
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                let Ok(request) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut reply = Message::response(request.metadata.id, OpCode::Query);
                reply.add_queries(request.queries.iter().cloned());
                if let Some(q) = request.queries.first() {
                    if q.query_type() == RecordType::A {
                        reply.add_answer(Record::from_rdata(
                            q.name().clone(),
                            60,
                            RData::A(A(ANSWER)),
                        ));
                    }
                }
                if let Ok(wire) = reply.to_vec() {
                    let _ = socket.send_to(&wire, peer).await;
                }
            }
        });
        return Ok(Upstream {
            ip: IpAddr::V4(ip),
            task,
        });
    }
    bail!("no free loopback address at port 53 for the fake upstream")
}
