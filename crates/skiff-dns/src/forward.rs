//! Everything that is not the cluster's: CoreDNS's `forward . /etc/resolv.conf`, `cache 30`
//! and `loop` as k3s configures them. The upstreams are the resolv.conf's nameservers
//! (port 53) less our own addresses and the cluster DNS IP (a pod's resolv.conf points at
//! us, so forwarding there would loop); answers are cached for their TTL, at most 30 s,
//! in a cache of bounded size. Upstreams are tried in order, each over UDP (TCP when the
//! answer is truncated); when all fail the client gets SERVFAIL.
//!
//! The rules (which upstreams, what is cached for how long) are pure and unit-tested;
//! [`Forwarder::resolve`] is the thin part that sends.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The most a forwarded answer is cached (k3s's `cache 30`).
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(30);
/// What the EDNS buffer size we offer upstreams is (the DNS flag day's 1232).
const UPSTREAM_PAYLOAD: u16 = 1232;

/// The nameservers of a resolv.conf text, in order.
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            // A zone index (fe80::1%eth0) is dropped: the address alone is what we send to.
            let addr = words.next()?.split('%').next()?;
            addr.parse().ok()
        })
        .collect()
}

/// The upstreams to use: the nameservers less those that would send queries back to us
/// (one of our listen addresses, or the cluster DNS IP, whose Service points at us).
pub fn upstreams(
    nameservers: &[IpAddr],
    listening: &[SocketAddr],
    cluster_dns: &[IpAddr],
) -> Vec<SocketAddr> {
    nameservers
        .iter()
        .map(|ip| SocketAddr::new(*ip, 53))
        .filter(|addr| {
            let ours = listening.iter().any(|l| {
                l.port() == 53
                    && (l.ip() == addr.ip() || (l.ip().is_unspecified() && is_local(addr.ip())))
            });
            !ours && !cluster_dns.contains(&addr.ip())
        })
        .fold(Vec::new(), |mut all, addr| {
            if !all.contains(&addr) {
                all.push(addr);
            }
            all
        })
}

/// Addresses that reach this machine whatever the interfaces (loopback).
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback()
}

/// A cached answer's key: the lowercase name, the type and the class.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    name: Name,
    qtype: RecordType,
    class: u16,
}

impl CacheKey {
    pub fn new(query: &Query) -> Self {
        CacheKey {
            name: query.name().to_lowercase(),
            qtype: query.query_type(),
            class: u16::from(query.query_class()),
        }
    }
}

/// A cached upstream answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    pub code: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

#[derive(Debug)]
struct Slot {
    value: Cached,
    stored: Instant,
    expires: Instant,
}

/// A bounded TTL cache of upstream answers (CoreDNS's `cache`): positive and negative
/// answers, kept for their smallest TTL (a negative answer's SOA minimum), at most
/// [`MAX_CACHE_TTL`]; served with the TTLs counted down.
#[derive(Debug)]
pub struct Cache {
    capacity: usize,
    slots: HashMap<CacheKey, Slot>,
}

impl Cache {
    pub fn new(capacity: usize) -> Self {
        Cache {
            capacity,
            slots: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// How long an answer may be cached: `None` for answers that are not (errors, or
    /// nothing to take a TTL from).
    pub fn ttl_of(answer: &Cached) -> Option<Duration> {
        let ttl = match answer.code {
            ResponseCode::NoError if !answer.answers.is_empty() => {
                answer.answers.iter().map(|r| r.ttl).min()
            }
            ResponseCode::NoError | ResponseCode::NXDomain => answer
                .authorities
                .iter()
                .filter_map(|r| match &r.data {
                    hickory_proto::rr::RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                    _ => None,
                })
                .min(),
            _ => None,
        }?;
        let ttl = Duration::from_secs(u64::from(ttl)).min(MAX_CACHE_TTL);
        (!ttl.is_zero()).then_some(ttl)
    }

    /// Keeps `answer` if it may be cached. When full, drops the expired slots, then (still
    /// full) the slot closest to expiring.
    pub fn insert(&mut self, key: CacheKey, answer: Cached, now: Instant) {
        let Some(ttl) = Self::ttl_of(&answer) else {
            return;
        };
        if self.capacity == 0 {
            return;
        }
        if self.slots.len() >= self.capacity && !self.slots.contains_key(&key) {
            self.slots.retain(|_, s| s.expires > now);
            if self.slots.len() >= self.capacity {
                if let Some(oldest) = self
                    .slots
                    .iter()
                    .min_by_key(|(_, s)| s.expires)
                    .map(|(k, _)| k.clone())
                {
                    self.slots.remove(&oldest);
                }
            }
        }
        self.slots.insert(
            key,
            Slot {
                value: answer,
                stored: now,
                expires: now + ttl,
            },
        );
    }

    /// The answer for `key` if still fresh, its TTLs less the time it was kept.
    pub fn get(&mut self, key: &CacheKey, now: Instant) -> Option<Cached> {
        let slot = self.slots.get(key)?;
        if slot.expires <= now {
            self.slots.remove(key);
            return None;
        }
        let age = now.duration_since(slot.stored).as_secs() as u32;
        let mut value = slot.value.clone();
        for r in value
            .answers
            .iter_mut()
            .chain(value.authorities.iter_mut())
            .chain(value.additionals.iter_mut())
        {
            r.ttl = r.ttl.saturating_sub(age);
        }
        Some(value)
    }
}

/// Forwards questions to the upstreams, through the cache.
#[derive(Debug)]
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    timeout: Duration,
    cache: Mutex<Cache>,
}

impl Forwarder {
    /// The forwarder for the nameservers of `resolv_conf` (a missing file: none, so every
    /// forwarded question is SERVFAIL), less our own addresses.
    pub fn from_resolv_conf(
        resolv_conf: &Path,
        listening: &[SocketAddr],
        cluster_dns: &[IpAddr],
        cache_size: usize,
        timeout: Duration,
    ) -> Self {
        let text = std::fs::read_to_string(resolv_conf).unwrap_or_else(|e| {
            tracing::warn!(path = %resolv_conf.display(), error = %e, "cannot read the upstream resolvers: names outside the cluster will not resolve");
            String::new()
        });
        let all = parse_resolv_conf(&text);
        let upstreams = upstreams(&all, listening, cluster_dns);
        if upstreams.len() < all.len() {
            tracing::info!(
                ?all,
                ?upstreams,
                "dropped upstream resolvers that point back at the cluster DNS"
            );
        }
        Forwarder {
            upstreams,
            timeout,
            cache: Mutex::new(Cache::new(cache_size)),
        }
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.upstreams
    }

    /// The answer to `query`: cached, or from the first upstream that answers; SERVFAIL
    /// when none does.
    pub async fn resolve(&self, query: &Query, recursion_desired: bool) -> Cached {
        let key = CacheKey::new(query);
        if let Some(hit) = self.cache.lock().get(&key, Instant::now()) {
            return hit;
        }
        for upstream in &self.upstreams {
            match exchange(*upstream, query, recursion_desired, self.timeout).await {
                Ok(reply) => {
                    let mut answer = Cached {
                        code: reply.metadata.response_code,
                        answers: reply.answers,
                        authorities: reply.authorities,
                        additionals: reply.additionals,
                    };
                    if matches!(answer.code, ResponseCode::NoError | ResponseCode::NXDomain) {
                        // As CoreDNS's cache: the client sees TTLs no longer than the time
                        // the answer is kept.
                        if let Some(ttl) = Cache::ttl_of(&answer) {
                            let cap = ttl.as_secs() as u32;
                            for r in answer
                                .answers
                                .iter_mut()
                                .chain(answer.authorities.iter_mut())
                                .chain(answer.additionals.iter_mut())
                            {
                                r.ttl = r.ttl.min(cap);
                            }
                        }
                        self.cache
                            .lock()
                            .insert(key, answer.clone(), Instant::now());
                        return answer;
                    }
                    tracing::debug!(%upstream, code = %answer.code, "upstream failed the question");
                }
                Err(e) => tracing::debug!(%upstream, error = %e, "upstream did not answer"),
            }
        }
        Cached {
            code: ResponseCode::ServFail,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

/// One question to one upstream: UDP, then TCP if the answer came truncated.
async fn exchange(
    upstream: SocketAddr,
    query: &Query,
    recursion_desired: bool,
    timeout: Duration,
) -> std::io::Result<Message> {
    let id: u16 = rand::random();
    let mut request = Message::new(id, MessageType::Query, OpCode::Query);
    request.metadata.recursion_desired = recursion_desired;
    request.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(UPSTREAM_PAYLOAD);
    request.set_edns(edns);
    let bytes = request
        .to_vec()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let reply = tokio::time::timeout(timeout, udp_exchange(upstream, &bytes, id, query))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))??;
    if !reply.metadata.truncation {
        return Ok(reply);
    }
    tokio::time::timeout(timeout, tcp_exchange(upstream, &bytes, id))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out over TCP"))?
}

async fn udp_exchange(
    upstream: SocketAddr,
    bytes: &[u8],
    id: u16,
    query: &Query,
) -> std::io::Result<Message> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = tokio::net::UdpSocket::bind(bind).await?;
    socket.connect(upstream).await?;
    socket.send(bytes).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Anything but the answer to our question (a late reply, a spoof) is ignored.
        let Ok(reply) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let same_question = reply.queries.first().is_some_and(|q| {
            q.name().to_lowercase() == query.name().to_lowercase()
                && q.query_type() == query.query_type()
        });
        if reply.metadata.id == id
            && reply.metadata.message_type == MessageType::Response
            && same_question
        {
            return Ok(reply);
        }
    }
}

async fn tcp_exchange(upstream: SocketAddr, bytes: &[u8], id: u16) -> std::io::Result<Message> {
    let mut stream = tokio::net::TcpStream::connect(upstream).await?;
    let len = u16::try_from(bytes.len()).map_err(std::io::Error::other)?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await?;
    let len = stream.read_u16().await?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    let reply = Message::from_vec(&buf).map_err(|e| std::io::Error::other(e.to_string()))?;
    if reply.metadata.id != id {
        return Err(std::io::Error::other("the TCP answer has another id"));
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::RData;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn a(ttl: u32) -> Record {
        Record::from_rdata(name("example.com."), ttl, RData::A(A::new(192, 0, 2, 1)))
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        let soa = SOA::new(
            name("ns.example.com."),
            name("h.example.com."),
            1,
            1,
            1,
            1,
            minimum,
        );
        Record::from_rdata(name("example.com."), ttl, RData::SOA(soa))
    }

    fn answer(code: ResponseCode, answers: Vec<Record>, authorities: Vec<Record>) -> Cached {
        Cached {
            code,
            answers,
            authorities,
            additionals: Vec::new(),
        }
    }

    fn key(text: &str) -> CacheKey {
        CacheKey::new(&Query::query(name(text), RecordType::A))
    }

    #[test]
    fn resolv_conf_nameservers_in_order() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.2\nnameserver  fe80::1%eth0\noptions ndots:5\nnameserver bad\nnameserver 1.1.1.1 # comment\n";
        let want: Vec<IpAddr> = vec![
            "10.0.0.2".parse().unwrap(),
            "fe80::1".parse().unwrap(),
            "1.1.1.1".parse().unwrap(),
        ];
        assert_eq!(parse_resolv_conf(text), want);
    }

    #[test]
    fn upstreams_that_loop_back_are_dropped() {
        let ns: Vec<IpAddr> = [
            "10.43.0.10",
            "192.168.1.5",
            "127.0.0.53",
            "8.8.8.8",
            "8.8.8.8",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        let cluster_dns = ["10.43.0.10".parse().unwrap()];
        // Listening on the node IP at port 53: that address and the cluster IP go.
        let listening = ["192.168.1.5:53".parse().unwrap()];
        assert_eq!(
            upstreams(&ns, &listening, &cluster_dns),
            vec![
                "127.0.0.53:53".parse().unwrap(),
                "8.8.8.8:53".parse::<SocketAddr>().unwrap()
            ]
        );
        // Listening on another port: the node IP's port 53 is someone else.
        let listening = ["192.168.1.5:5353".parse().unwrap()];
        assert_eq!(upstreams(&ns, &listening, &cluster_dns).len(), 3);
        // Listening on every address at 53: loopback resolvers would be us.
        let listening = ["0.0.0.0:53".parse().unwrap()];
        assert_eq!(
            upstreams(&ns, &listening, &cluster_dns),
            vec![
                "192.168.1.5:53".parse().unwrap(),
                "8.8.8.8:53".parse::<SocketAddr>().unwrap()
            ]
        );
    }

    #[test]
    fn cache_ttls_follow_the_records_capped_at_30s() {
        let ok = answer(ResponseCode::NoError, vec![a(300), a(60)], vec![]);
        assert_eq!(Cache::ttl_of(&ok), Some(Duration::from_secs(30)));
        let short = answer(ResponseCode::NoError, vec![a(7)], vec![]);
        assert_eq!(Cache::ttl_of(&short), Some(Duration::from_secs(7)));
        let nx = answer(ResponseCode::NXDomain, vec![], vec![soa(3600, 10)]);
        assert_eq!(Cache::ttl_of(&nx), Some(Duration::from_secs(10)));
        let nodata = answer(ResponseCode::NoError, vec![], vec![soa(4, 900)]);
        assert_eq!(Cache::ttl_of(&nodata), Some(Duration::from_secs(4)));
        // Nothing to take a TTL from, a zero TTL, or an error: not cached.
        assert_eq!(
            Cache::ttl_of(&answer(ResponseCode::NXDomain, vec![], vec![])),
            None
        );
        assert_eq!(
            Cache::ttl_of(&answer(ResponseCode::NoError, vec![a(0)], vec![])),
            None
        );
        assert_eq!(
            Cache::ttl_of(&answer(ResponseCode::ServFail, vec![a(60)], vec![])),
            None
        );
    }

    #[test]
    fn cache_counts_ttls_down_and_expires() {
        let mut cache = Cache::new(10);
        let t0 = Instant::now();
        cache.insert(
            key("Example.COM."),
            answer(ResponseCode::NoError, vec![a(10)], vec![]),
            t0,
        );
        // Keys are case-insensitive.
        let hit = cache
            .get(&key("example.com."), t0 + Duration::from_secs(4))
            .unwrap();
        assert_eq!(hit.answers[0].ttl, 6);
        assert!(cache
            .get(&key("example.com."), t0 + Duration::from_secs(10))
            .is_none());
        assert!(cache.is_empty());
    }

    #[test]
    fn cache_is_bounded() {
        let mut cache = Cache::new(3);
        let t0 = Instant::now();
        for (i, ttl) in [5, 20, 25].iter().enumerate() {
            cache.insert(
                key(&format!("n{i}.example.")),
                answer(ResponseCode::NoError, vec![a(*ttl)], vec![]),
                t0,
            );
        }
        // Full: the one closest to expiring goes.
        cache.insert(
            key("n3.example."),
            answer(ResponseCode::NoError, vec![a(30)], vec![]),
            t0,
        );
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&key("n0.example."), t0).is_none());
        assert!(cache.get(&key("n3.example."), t0).is_some());
        // Expired slots go first.
        let later = t0 + Duration::from_secs(21);
        cache.insert(
            key("n4.example."),
            answer(ResponseCode::NoError, vec![a(30)], vec![]),
            later,
        );
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&key("n2.example."), later).is_some());
        assert!(cache.get(&key("n4.example."), later).is_some());
        let mut none = Cache::new(0);
        none.insert(
            key("x."),
            answer(ResponseCode::NoError, vec![a(30)], vec![]),
            t0,
        );
        assert!(none.is_empty());
    }
}
