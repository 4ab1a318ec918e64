//! Rule sync time: render + apply 1,000 and 10,000 Services with 3 endpoints each (a full
//! replace), and one endpoint change at 10,000 Services (incremental). Runs as root, in a
//! network namespace it creates (and deletes, also on failure). Prints p50 and max of several
//! runs; goals: <= 1 s full, <= 100 ms incremental.
//!
//! `cargo bench -p skiff-proxy`

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use skiff_proxy::model::{Protocol, ServicePortInfo, SliceEndpoint, SlicePort};
use skiff_proxy::{Config, Proxier, ServiceInfo, SliceInfo};
use support::Netns;

fn objects(n: usize) -> (Vec<ServiceInfo>, Vec<SliceInfo>) {
    let mut services = Vec::with_capacity(n);
    let mut slices = Vec::with_capacity(n);
    for i in 0..n {
        let i32_ = u32::try_from(i).unwrap_or(u32::MAX);
        let name = format!("svc-{i}");
        services.push(ServiceInfo {
            namespace: "bench".to_owned(),
            name: name.clone(),
            cluster_ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 43, 0, 0)) + i32_ + 1),
            ports: vec![ServicePortInfo {
                name: "http".to_owned(),
                protocol: Protocol::Tcp,
                port: 80,
                node_port: None,
            }],
            external_ips: Vec::new(),
            load_balancer_ips: Vec::new(),
            source_ranges: Vec::new(),
            externally_accessible: false,
            external_policy_local: false,
            internal_policy_local: false,
            affinity_timeout: None,
        });
        slices.push(SliceInfo {
            namespace: "bench".to_owned(),
            service_name: name,
            ports: vec![SlicePort {
                name: "http".to_owned(),
                protocol: Protocol::Tcp,
                port: 8080,
            }],
            endpoints: (0..3)
                .map(|e| SliceEndpoint {
                    ip: Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 42, 0, 0)) + i32_ * 3 + e + 2),
                    node_name: Some("node".to_owned()),
                    ready: true,
                    serving: true,
                    terminating: false,
                })
                .collect(),
        });
    }
    (services, slices)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn stats(label: &str, mut times: Vec<Duration>) {
    times.sort();
    let p50 = times[times.len() / 2];
    let max = times[times.len() - 1];
    println!(
        "{label:<44} runs {:>2}  p50 {:>8.1} ms  max {:>8.1} ms",
        times.len(),
        p50.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
}

fn main() -> Result<()> {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());
    let ns = Netns::new(support::unique("bench"))?;
    let config = Config {
        table: "skiff-bench".to_owned(),
        nft: ns.nft(),
        node_name: "node".to_owned(),
        ..Config::default()
    };
    for n in [1_000, 10_000] {
        let (services, mut slices) = objects(n);
        let mut totals = Vec::new();
        let mut renders = Vec::new();
        for _ in 0..5 {
            // A fresh proxier replaces the table in full (the table of the run before is there,
            // as after a restart).
            let mut proxier = Proxier::new(&config)?;
            let start = Instant::now();
            let report = proxier.sync(&services, &slices)?;
            totals.push(start.elapsed());
            renders.push(report.render_time);
            ensure!(report.full);
        }
        let script_bytes = {
            let mut p = Proxier::new(&config)?;
            p.sync(&services, &slices)?.script_bytes
        };
        let mut proxier = Proxier::new(&config)?;
        proxier.sync(&services, &slices)?;
        stats(&format!("full sync, {n} Services x 3 endpoints"), totals);
        stats("  of which model + render + script", renders);
        println!("  script {} KiB", script_bytes / 1024);

        let mut totals = Vec::new();
        let mut renders = Vec::new();
        for run in 0..9u32 {
            // One endpoint of one Service changes its address.
            let slice = &mut slices[n / 2];
            slice.endpoints[1].ip = Ipv4Addr::new(10, 99, (run / 250) as u8, (run % 250) as u8 + 1);
            let start = Instant::now();
            let report = proxier.sync(&services, &slices)?;
            totals.push(start.elapsed());
            renders.push(report.render_time);
            ensure!(!report.full && report.applied, "{report:?}");
        }
        stats(&format!("one endpoint change, {n} Services"), totals);
        stats("  of which model + render + diff", renders);
        println!("  RSS after {n} Services: {} MiB", rss_kib() / 1024);
    }
    skiff_proxy::remove_table(&config.nft, &config.table)?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at end: {}", load.trim());
    Ok(())
}
