//! Queries per second for Service names, side by side with dnsmasq serving the same names
//! from a hosts file, and the latency at half of our rate (issue 15's DNS goal: >= 50,000
//! qps, >= dnsmasq's, p99 <= 1 ms at half load). Prints numbers; asserts nothing.
//!
//! `cargo bench -p skiff-dns --bench qps` (needs `dnsperf`; dnsmasq from `dnsmasq-base`
//! is skipped when missing). `SKIFF_DNS_BENCH_SECONDS` sets each run's length (10).
//! The server runs on a 2-thread runtime; dnsperf and the latency probe share the machine
//! with it, so the numbers are what this machine gives, not the server's ceiling.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use k8s_openapi::api::core::v1::Service;
use serde_json::json;

const NAMESPACES: usize = 10;
const SERVICES_PER_NAMESPACE: usize = 100;

fn names() -> Vec<(String, String)> {
    let mut all = Vec::new();
    for ns in 0..NAMESPACES {
        for svc in 0..SERVICES_PER_NAMESPACE {
            let ip = format!("10.43.{}.{}", ns + 1, svc + 2);
            all.push((format!("svc-{svc}.ns-{ns}.svc.cluster.local"), ip));
        }
    }
    all
}

fn dnsperf(
    addr: SocketAddr,
    queries: &std::path::Path,
    seconds: u64,
    rate: Option<u64>,
) -> Option<String> {
    let mut cmd = Command::new("dnsperf");
    cmd.args(["-s", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .arg("-d")
        .arg(queries)
        .args([
            "-l",
            &seconds.to_string(),
            "-c",
            "4",
            "-q",
            "500",
            "-T",
            "1",
        ]);
    if let Some(rate) = rate {
        cmd.args(["-Q", &rate.to_string()]);
    }
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn field(report: &str, label: &str) -> String {
    report
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .map(|l| l.trim().to_owned())
        .unwrap_or_else(|| format!("{label} (missing)"))
}

/// Sends `rate` questions per second for `seconds` from one socket, each answer's
/// latency recorded; returns (p50, p99, p999, lost) in microseconds.
fn latency(
    addr: SocketAddr,
    names: &[(String, String)],
    rate: u64,
    seconds: u64,
) -> (u64, u64, u64, u64) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a socket");
    socket.connect(addr).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let recv = socket.try_clone().expect("clone");
    let total = rate * seconds;
    let sent_at = std::sync::Arc::new(parking_lot::Mutex::new(std::collections::HashMap::<
        u16,
        Instant,
    >::new()));
    let sent_for_reader = sent_at.clone();
    let reader = std::thread::spawn(move || {
        let mut histogram = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
        let mut buf = [0u8; 4096];
        let mut got = 0u64;
        let deadline = Instant::now() + Duration::from_secs(seconds + 2);
        while got < total && Instant::now() < deadline {
            let Ok(n) = recv.recv(&mut buf) else { continue };
            let now = Instant::now();
            if n < 2 {
                continue;
            }
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            if let Some(at) = sent_for_reader.lock().remove(&id) {
                histogram
                    .record(now.duration_since(at).as_micros() as u64)
                    .expect("record");
                got += 1;
            }
        }
        (histogram, got)
    });
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    let start = Instant::now();
    for i in 0..total {
        let due = start + interval * i as u32;
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let id = (i % 65536) as u16;
        let (name, _) = &names[i as usize % names.len()];
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii(format!("{name}.")).expect("name"),
            RecordType::A,
        ));
        let wire = m.to_vec().expect("encode");
        sent_at.lock().insert(id, Instant::now());
        let _ = socket.send(&wire);
    }
    let (histogram, got) = reader.join().expect("reader");
    (
        histogram.value_at_quantile(0.50),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        total - got,
    )
}

fn main() {
    let seconds: u64 = std::env::var("SKIFF_DNS_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    if Command::new("dnsperf").arg("-h").output().is_err() {
        println!("dnsperf is not installed (apt-get install dnsperf): skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    let names = names();
    let queries = dir.path().join("queries");
    let text: String = names.iter().map(|(n, _)| format!("{n} A\n")).collect();
    std::fs::write(&queries, text).expect("the query file");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let addr = runtime.block_on(async {
        let mut config = skiff_dns::Config::new(vec!["127.0.0.1:0".parse().expect("addr")]);
        config.resolv_conf = dir.path().join("none");
        let dns = skiff_dns::bind(&config).await.expect("bind");
        let addr = dns.local_addrs()[0];
        {
            let index = dns.index();
            let mut index = index.write();
            for ns in 0..NAMESPACES {
                index.apply_namespace(&format!("ns-{ns}"));
                for svc in 0..SERVICES_PER_NAMESPACE {
                    let service: Service = serde_json::from_value(json!({
                        "metadata": {"name": format!("svc-{svc}"), "namespace": format!("ns-{ns}")},
                        "spec": {"clusterIP": format!("10.43.{}.{}", ns + 1, svc + 2),
                                 "ports": [{"name": "http", "port": 80}]}
                    }))
                    .expect("a Service");
                    index.apply_service(&service);
                }
            }
            index.set_synced(true);
        }
        tokio::spawn(dns.answer());
        addr
    });
    println!(
        "{} Service names, {seconds} s per run, dnsperf -c 4 -q 500",
        names.len()
    );
    let report = dnsperf(addr, &queries, seconds, None).unwrap_or_default();
    println!(
        "skiff-dns: {} | {} | {}",
        field(&report, "Queries per second"),
        field(&report, "Queries lost"),
        field(&report, "Average Latency")
    );
    let qps: f64 = field(&report, "Queries per second:")
        .split_whitespace()
        .last()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);

    // dnsmasq with the same names from a hosts file, at a free port.
    let hosts = dir.path().join("hosts");
    let text: String = names.iter().map(|(n, ip)| format!("{ip} {n}\n")).collect();
    std::fs::write(&hosts, text).expect("the hosts file");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    match Command::new("dnsmasq")
        .args([
            "--keep-in-foreground",
            "--no-resolv",
            "--no-hosts",
            "--bind-interfaces",
        ])
        .args([
            "--listen-address=127.0.0.1",
            "--user=root",
            "--cache-size=10000",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--addn-hosts={}", hosts.display()))
        .arg(format!(
            "--pid-file={}",
            dir.path().join("dnsmasq.pid").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(mut child) => {
            std::thread::sleep(Duration::from_millis(500));
            let theirs: SocketAddr = ([127, 0, 0, 1], port).into();
            let report = dnsperf(theirs, &queries, seconds, None).unwrap_or_default();
            println!(
                "dnsmasq:   {} | {} | {}",
                field(&report, "Queries per second"),
                field(&report, "Queries lost"),
                field(&report, "Average Latency")
            );
            let _ = child.kill();
            let _ = child.wait();
        }
        Err(e) => println!("dnsmasq: not run ({e}; apt-get install dnsmasq-base)"),
    }

    if qps > 0.0 {
        let half = (qps / 2.0) as u64;
        let (p50, p99, p999, lost) = latency(addr, &names, half, seconds.min(5));
        println!("skiff-dns at half load ({half} qps, one socket): p50 {p50} us, p99 {p99} us, p99.9 {p999} us, {lost} lost");
    }
}
